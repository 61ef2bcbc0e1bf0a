//! A small, total lexer for the right-hand side of a bash `KEY=VALUE` line.
//!
//! It understands what `template.conf` files use in practice: unquoted words with
//! `\` escapes, `'single'` and `"double"` quotes (with `\\ \" \$ \`` escapes),
//! `${VAR:-default}` / `${VAR-default}` / `${VAR:=default}` (the default is the
//! value, as documented for the format), and `$VAR` / `${VAR}` references to keys
//! assigned earlier in the same file. Everything else that bash would expand
//! (command substitution, `${#VAR}`, `${VAR:+x}`, positional parameters, ...)
//! is kept as literal text and reported.
//!
//! The lexer works on a `Vec<char>` through a cursor whose accessors return
//! `Option`, so no input can make it index out of bounds.

use std::collections::HashMap;

use crate::diagnostic::Severity;

/// A problem found while lexing one value: severity and message.
pub(crate) type Issue = (Severity, String);

/// The result of lexing the value part of one assignment.
pub(crate) struct Lexed {
    /// The value as bash would assign it (under the rules above).
    pub value: String,
    /// Problems found, in the order they were met.
    pub issues: Vec<Issue>,
}

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    vars: &'a HashMap<String, String>,
    issues: Vec<Issue>,
    /// Nesting depth of `${...}` defaults, bounded so that hostile input
    /// cannot overflow the stack.
    depth: usize,
    /// Set once the depth limit was hit: the rest of the line is abandoned and
    /// the enclosing expansions do not report their missing `}` again.
    too_deep: bool,
}

const MAX_DEPTH: usize = 32;

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos.saturating_add(offset)).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos = self.pos.saturating_add(1);
        }
        c
    }

    fn warn(&mut self, message: String) {
        self.issues.push((Severity::Warning, message));
    }

    fn error(&mut self, message: String) {
        self.issues.push((Severity::Error, message));
    }

    fn slice(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to.min(self.chars.len()))
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// Reads one word. Outside of a `${...}` default, unquoted whitespace ends
    /// it; inside one, an unquoted `}` ends it (and is not consumed).
    fn word(&mut self, in_braces: bool, in_dquote: bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            match c {
                c if c.is_whitespace() && !in_braces => break,
                '}' if in_braces => break,
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some(next) => out.push(next),
                        None => self.warn(
                            "line continuation (`\\` at the end of the line) is not supported: \
                             put the whole value on one line"
                                .to_string(),
                        ),
                    }
                }
                '\'' if !in_dquote => {
                    self.bump();
                    self.single_quoted(&mut out);
                }
                '"' => {
                    self.bump();
                    self.double_quoted(&mut out);
                }
                '$' => self.dollar(&mut out),
                '`' => self.backticks(&mut out),
                _ => {
                    self.bump();
                    out.push(c);
                }
            }
        }
        out
    }

    fn single_quoted(&mut self, out: &mut String) {
        loop {
            match self.bump() {
                Some('\'') => return,
                Some(c) => out.push(c),
                None => {
                    self.error("unterminated single quote: add the closing `'`".to_string());
                    return;
                }
            }
        }
    }

    fn double_quoted(&mut self, out: &mut String) {
        loop {
            match self.peek() {
                None => {
                    self.error("unterminated double quote: add the closing `\"`".to_string());
                    return;
                }
                Some('"') => {
                    self.bump();
                    return;
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(next @ ('\\' | '"' | '$' | '`')) => {
                            self.bump();
                            out.push(next);
                        }
                        // Any other escape keeps its backslash, as in bash; an
                        // escape at the end of the line is reported as an
                        // unterminated quote on the next turn.
                        _ => out.push('\\'),
                    }
                }
                Some('$') => self.dollar(out),
                Some('`') => self.backticks(out),
                Some(c) => {
                    self.bump();
                    out.push(c);
                }
            }
        }
    }

    /// Handles a `$` at the cursor.
    fn dollar(&mut self, out: &mut String) {
        let start = self.pos;
        self.bump();
        match self.peek() {
            Some('{') => {
                self.bump();
                self.braced(start, out);
            }
            Some('(') => {
                let end = self.skip_balanced('(', ')');
                let text = self.slice(start, end);
                self.warn(format!(
                    "command substitution `{text}` is not run by ctforge and is kept as \
                     literal text: write the value directly"
                ));
                out.push_str(&text);
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name = self.name();
                self.reference(&name, out);
            }
            Some(c) if c.is_ascii_digit() || "?$!#@*-".contains(c) => {
                self.bump();
                let text = self.slice(start, self.pos);
                self.warn(format!(
                    "special parameter `{text}` is not supported and is kept as literal \
                     text: write the value directly"
                ));
                out.push_str(&text);
            }
            _ => out.push('$'),
        }
    }

    /// Handles what follows `${`; `start` is the index of the `$`.
    fn braced(&mut self, start: usize, out: &mut String) {
        let name = self.name();
        let op = (self.peek(), self.peek_at(1));
        if !name.is_empty() {
            match op {
                (Some('}'), _) => {
                    self.bump();
                    self.reference(&name, out);
                    return;
                }
                (Some(':'), Some('-' | '=')) | (Some('-' | '='), _) => {
                    let skip = if op.0 == Some(':') { 2 } else { 1 };
                    for _ in 0..skip {
                        self.bump();
                    }
                    if self.depth >= MAX_DEPTH {
                        self.error(
                            "`${...}` defaults are nested too deeply: write the value directly"
                                .to_string(),
                        );
                        self.pos = self.chars.len();
                        self.too_deep = true;
                        return;
                    }
                    self.depth = self.depth.saturating_add(1);
                    let default = self.word(true, false);
                    self.depth = self.depth.saturating_sub(1);
                    if self.peek() == Some('}') {
                        self.bump();
                    } else if !self.too_deep {
                        self.error(format!(
                            "missing `}}` after `${{{name}`: write `${{{name}:-value}}`"
                        ));
                    }
                    out.push_str(&default);
                    return;
                }
                (None, _) => {
                    self.error(format!(
                        "missing `}}` after `${{{name}`: write `${{{name}:-value}}`"
                    ));
                    return;
                }
                _ => {}
            }
        }
        // Anything else: `${#VAR}`, `${VAR:+x}`, `${VAR/a/b}`, `${!VAR}`, ...
        self.pos = start.saturating_add(1);
        let end = self.skip_balanced('{', '}');
        let text = self.slice(start, end);
        if self.chars.get(end.saturating_sub(1)) == Some(&'}') && end > start.saturating_add(2) {
            self.warn(format!(
                "unsupported expansion `{text}` is kept as literal text: use a plain value \
                 or `${{NAME:-value}}`"
            ));
        } else {
            self.error(format!(
                "missing `}}` in `{text}`: close the expansion, like `${{NAME:-value}}`"
            ));
        }
        out.push_str(&text);
    }

    /// Skips from an opening `open` at the cursor to just after its matching
    /// `close` (or the end of the line) and returns the index after it.
    fn skip_balanced(&mut self, open: char, close: char) -> usize {
        let mut depth = 0usize;
        while let Some(c) = self.bump() {
            if c == open {
                depth = depth.saturating_add(1);
            } else if c == close {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
        }
        self.pos
    }

    fn backticks(&mut self, out: &mut String) {
        let start = self.pos;
        self.bump();
        while let Some(c) = self.bump() {
            if c == '`' {
                break;
            }
        }
        let text = self.slice(start, self.pos);
        let inner = text.trim_matches('`');
        self.warn(format!(
            "command substitution in backticks (`{inner}`) is not run by ctforge and is kept \
             as literal text: write the value directly"
        ));
        out.push_str(&text);
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            let ok =
                c == '_' || c.is_ascii_alphabetic() || (c.is_ascii_digit() && !name.is_empty());
            if !ok {
                break;
            }
            name.push(c);
            self.bump();
        }
        name
    }

    fn reference(&mut self, name: &str, out: &mut String) {
        match self.vars.get(name) {
            Some(value) => out.push_str(value),
            None => self.warn(format!(
                "`${name}` is not set earlier in this file, so its value is empty: write the \
                 value directly or use `${{{name}:-value}}`"
            )),
        }
    }
}

/// Lexes `input`, the text after `KEY=`, resolving references with `vars`
/// (the keys assigned earlier in the file).
pub(crate) fn lex_value(input: &str, vars: &HashMap<String, String>) -> Lexed {
    let mut cursor = Cursor {
        chars: input.chars().collect(),
        pos: 0,
        vars,
        issues: Vec::new(),
        depth: 0,
        too_deep: false,
    };
    let value = cursor.word(false, false);
    // After the word only whitespace and a `#` comment may follow.
    while cursor.peek().is_some_and(char::is_whitespace) {
        cursor.bump();
    }
    if let Some(c) = cursor.peek()
        && c != '#'
    {
        let rest = cursor.slice(cursor.pos, cursor.chars.len());
        let rest = rest
            .split('#')
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_string();
        cursor.error(format!(
            "unexpected text `{rest}` after the value: quote values that contain spaces, \
             like `KEY=\"a b\"`"
        ));
    }
    Lexed {
        value,
        issues: cursor.issues,
    }
}

/// Quotes `value` so that [`lex_value`] reads it back unchanged: double quotes,
/// with `\`, `"`, `$` and `` ` `` escaped.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len().saturating_add(2));
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(s: &str) -> (String, Vec<String>) {
        let mut vars = HashMap::new();
        vars.insert("A".to_string(), "alpha".to_string());
        let l = lex_value(s, &vars);
        (l.value, l.issues.into_iter().map(|(_, m)| m).collect())
    }

    #[test]
    fn plain_and_quoted() {
        assert_eq!(lex("debian").0, "debian");
        assert_eq!(lex("\"a b\"").0, "a b");
        assert_eq!(lex("'a $b'").0, "a $b");
        assert_eq!(lex("x'y'\"z\"").0, "xyz");
        assert_eq!(lex("2   # cores"), ("2".to_string(), vec![]));
        assert_eq!(lex("a#b").0, "a#b");
        assert_eq!(lex("\"q\\\"q\\\\\\$\"").0, "q\"q\\$");
        assert_eq!(lex("\"a\\nb\"").0, "a\\nb");
    }

    #[test]
    fn defaults_and_references() {
        assert_eq!(lex("${TEMPLATE_CPU:-2}"), ("2".to_string(), vec![]));
        assert_eq!(lex("\"${X:-a b}\"").0, "a b");
        assert_eq!(lex("${X-1}").0, "1");
        assert_eq!(lex("${X:=1}").0, "1");
        assert_eq!(lex("${X:-${Y:-deep}}").0, "deep");
        assert_eq!(lex("\"$A-${A}\"").0, "alpha-alpha");
        let (v, issues) = lex("$NOPE");
        assert_eq!(v, "");
        assert_eq!(issues.len(), 1);
    }

    #[test]
    fn unsupported_is_literal() {
        assert_eq!(lex("\"$(date)\"").0, "$(date)");
        assert_eq!(lex("`date`").0, "`date`");
        assert_eq!(lex("${#A}").0, "${#A}");
        assert_eq!(lex("${A:+x}").0, "${A:+x}");
        assert_eq!(lex("$1").0, "$1");
        assert_eq!(lex("a$").0, "a$");
    }

    #[test]
    fn errors() {
        assert_eq!(lex("\"abc").1.len(), 1);
        assert_eq!(lex("'abc").1.len(), 1);
        assert_eq!(lex("a b").1.len(), 1);
        assert_eq!(lex("${A:-x").1.len(), 1);
        assert_eq!(lex("${").1.len(), 1);
        assert_eq!(lex("abc\\").1.len(), 1);
    }

    #[test]
    fn quote_round_trips() {
        for s in ["", "a b", "\"$`\\", "it's", "#x", "${A:-1}", " x "] {
            assert_eq!(lex(&quote(s)), (s.to_string(), vec![]), "{s:?}");
        }
    }
}
