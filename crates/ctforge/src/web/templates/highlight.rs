//! A small server-side highlighter for shell scripts: comments, strings (single- and
//! double-quoted, also across lines), variables and keywords. It only wraps escaped text in
//! `<span class="hl-…">`; it never drops or reorders characters, so the read view shows exactly
//! the script's text.

use maud::{Markup, PreEscaped};

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "function", "return", "local", "export", "set", "select", "break", "continue", "exit",
    "readonly", "shift", "source", "unset", "trap", "eval", "exec",
];

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn span(out: &mut String, class: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push_str("<span class=\"");
    out.push_str(class);
    out.push_str("\">");
    escape_into(out, text);
    out.push_str("</span>");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Single,
    Double,
}

/// Plain lines (escaped, no highlighting), for config files of unknown type.
pub fn plain(text: &str) -> Vec<Markup> {
    text.split('\n')
        .map(|line| {
            let mut out = String::new();
            escape_into(&mut out, line.strip_suffix('\r').unwrap_or(line));
            PreEscaped(out)
        })
        .collect()
}

/// Highlights `text` as shell; one markup per line.
pub fn shell(text: &str) -> Vec<Markup> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut state = State::Code;
    let mut lines = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let mut out = String::new();
        state = highlight_line(line, state, &mut out);
        lines.push(PreEscaped(out));
    }
    lines
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn highlight_line(line: &str, mut state: State, out: &mut String) -> State {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let slice = |from: usize, to: usize| line.get(from..to).unwrap_or_default();
    let end_of = |i: usize| chars.get(i).map_or(line.len(), |(b, _)| *b);
    let mut i = 0;
    let mut plain_start = 0usize;
    let flush = |out: &mut String, from: usize, to: usize| escape_into(out, slice(from, to));
    while i < chars.len() {
        let (byte, c) = chars[i];
        match state {
            State::Single => {
                // Find the closing quote.
                let close = chars[i..].iter().position(|(_, ch)| *ch == '\'');
                let stop = close.map_or(chars.len(), |p| i + p + 1);
                span(out, "hl-s", slice(byte, end_of(stop)));
                i = stop;
                plain_start = end_of(i);
                if close.is_some() {
                    state = State::Code;
                }
                continue;
            }
            State::Double => {
                let mut j = i;
                let mut closed = false;
                while j < chars.len() {
                    match chars[j].1 {
                        '\\' => j += 2,
                        '"' => {
                            j += 1;
                            closed = true;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                let stop = j.min(chars.len());
                span(out, "hl-s", slice(byte, end_of(stop)));
                i = stop;
                plain_start = end_of(i);
                if closed {
                    state = State::Code;
                }
                continue;
            }
            State::Code => {}
        }
        let prev = i.checked_sub(1).map(|p| chars[p].1);
        match c {
            '#' if prev.is_none_or(char::is_whitespace) => {
                flush(out, plain_start, byte);
                span(out, "hl-c", slice(byte, line.len()));
                return state;
            }
            '\\' => {
                i += 2;
                continue;
            }
            '\'' => {
                flush(out, plain_start, byte);
                state = State::Single;
                // Emit the opening quote with the string.
                let close = chars[i + 1..].iter().position(|(_, ch)| *ch == '\'');
                let stop = close.map_or(chars.len(), |p| i + 1 + p + 1);
                span(out, "hl-s", slice(byte, end_of(stop)));
                if close.is_some() {
                    state = State::Code;
                }
                i = stop;
                plain_start = end_of(i);
                continue;
            }
            '"' => {
                flush(out, plain_start, byte);
                let mut j = i + 1;
                let mut closed = false;
                while j < chars.len() {
                    match chars[j].1 {
                        '\\' => j += 2,
                        '"' => {
                            j += 1;
                            closed = true;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                let stop = j.min(chars.len());
                span(out, "hl-s", slice(byte, end_of(stop)));
                state = if closed { State::Code } else { State::Double };
                i = stop;
                plain_start = end_of(i);
                continue;
            }
            '$' => {
                flush(out, plain_start, byte);
                let mut j = i + 1;
                if chars.get(j).map(|(_, ch)| *ch) == Some('{') {
                    while j < chars.len() && chars[j].1 != '}' {
                        j += 1;
                    }
                    j = (j + 1).min(chars.len());
                } else {
                    while j < chars.len() && is_word_char(chars[j].1) {
                        j += 1;
                    }
                    if j == i + 1 && j < chars.len() && "?#@*!$0-".contains(chars[j].1) {
                        j += 1;
                    }
                }
                span(out, "hl-v", slice(byte, end_of(j)));
                i = j;
                plain_start = end_of(i);
                continue;
            }
            c if is_word_char(c) && !prev.is_some_and(|p| is_word_char(p) || p == '-') => {
                let mut j = i;
                while j < chars.len() && is_word_char(chars[j].1) {
                    j += 1;
                }
                let word = slice(byte, end_of(j));
                let next = chars.get(j).map(|(_, ch)| *ch);
                if KEYWORDS.contains(&word) && !matches!(next, Some('=' | '-' | '.' | '/')) {
                    flush(out, plain_start, byte);
                    span(out, "hl-k", word);
                    plain_start = end_of(j);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    flush(out, plain_start.min(line.len()), line.len());
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn keeps_every_character() {
        let src = "#!/bin/sh\nif [ -n \"$X\" ]; then # check\n  echo 'a # b' ${Y:-1} <x> &\nfi\necho \"multi\nline\" done\n";
        let lines = shell(src);
        let text: Vec<String> = lines.iter().map(|m| strip(&m.0)).collect();
        assert_eq!(text.join("\n") + "\n", src);
        assert!(lines[0].0.contains("hl-c"));
        assert!(lines[1].0.contains("<span class=\"hl-k\">if</span>"));
        assert!(lines[1].0.contains("hl-c\"># check"));
        assert!(
            lines[2]
                .0
                .contains("<span class=\"hl-s\">&#39;a # b&#39;</span>")
        );
        assert!(lines[5].0.contains("hl-s\">line&quot;"));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in ["\\", "$", "${", "'", "\"\\", "é'ü\"$ä", "a\\\n"] {
            let _ = shell(s);
        }
    }
}
