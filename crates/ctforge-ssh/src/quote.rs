//! POSIX shell quoting for every command line ctforge sends to a shell.
//!
//! Every argument is wrapped in single quotes, inside which a POSIX shell
//! interprets nothing; an embedded `'` becomes `'\''` (close, escaped quote,
//! reopen). This is safe for any string: spaces, quotes, `$(…)`, backticks,
//! `;`, `|`, `&`, globs, newlines, leading dashes and the empty string.
//! Arguments made only of characters that are never special are left bare so
//! command lines stay readable in logs.

/// Characters that never need quoting in a POSIX shell word (anywhere in it).
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ',' | ':' | '@' | '%' | '+')
}

/// Quote one argument for a POSIX shell (`sh`, `bash`, `dash`, `ash`).
///
/// The result, parsed by the shell, is exactly one word equal to `arg`.
/// Strings that only contain `[A-Za-z0-9_./,:@%+-]` (and do not start with
/// `~` or `=`) are returned unchanged; everything else is single-quoted, and
/// the empty string becomes `''`.
///
/// ```
/// assert_eq!(ctforge_ssh::quote("plain-name"), "plain-name");
/// assert_eq!(ctforge_ssh::quote("it's $(x)"), r#"'it'\''s $(x)'"#);
/// assert_eq!(ctforge_ssh::quote(""), "''");
/// ```
pub fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(is_plain) {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Join arguments into one command line, each quoted with [`quote`].
///
/// ```
/// assert_eq!(
///     ctforge_ssh::command_line(&["pct", "exec", "100", "--", "sh", "-c", "echo hi; id"]),
///     "pct exec 100 -- sh -c 'echo hi; id'"
/// );
/// ```
pub fn command_line(args: &[&str]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_words_stay_bare() {
        assert_eq!(quote("abc-DEF_1.2/x,y:z@h%+"), "abc-DEF_1.2/x,y:z@h%+");
        assert_eq!(quote("--perms"), "--perms");
    }

    #[test]
    fn special_words_are_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("'"), r"''\'''");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("`id`"), "'`id`'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("x=1"), "'x=1'");
        assert_eq!(quote("\\"), "'\\'");
    }

    #[test]
    fn command_line_joins() {
        assert_eq!(command_line(&[]), "");
        assert_eq!(command_line(&["echo", "", "a b"]), "echo '' 'a b'");
    }
}
