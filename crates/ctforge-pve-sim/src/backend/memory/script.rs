//! The shell emulator's language: parameters (`VAR=value`, `export`, `$NAME`, `${NAME}`,
//! `${NAME:-word}`, `$(command)`), `if … then … elif … else … fi`, `set -e` as POSIX `sh`
//! applies it (not inside an `if` condition, not for a command followed by `&&`/`||`), child
//! shells (`sh FILE`, `su USER -c`, `runuser -u USER --`) that see only exported variables and
//! keep their own `set -e` and `exit`, and the device files scripts read (`/dev/urandom`,
//! `/dev/zero`, `/dev/null`).

use super::*;

/// An `if` compound command: its `(condition, body)` arms and the `else` part.
struct IfBlock {
    arms: Vec<(Vec<Segment>, Vec<Segment>)>,
    otherwise: Vec<Segment>,
}

/// The first word of a segment (a keyword like `if` or `then`) and the segment without it.
fn keyword(seg: &Segment) -> (&str, Option<Segment>) {
    let Some(first) = seg.pipeline.first() else {
        return ("", None);
    };
    let text = first.text.trim_start();
    let (word, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    if !matches!(word, "if" | "then" | "elif" | "else" | "fi") {
        return ("", None);
    }
    let mut pipeline = seg.pipeline.clone();
    let rest_seg = if rest.is_empty() && pipeline.len() == 1 {
        None
    } else {
        if let Some(c) = pipeline.first_mut() {
            c.text = rest.to_string();
        }
        pipeline.retain(|c| !c.text.is_empty());
        Some(Segment {
            sep: Sep::Seq,
            pipeline,
        })
    };
    (word, rest_seg)
}

/// Parses the `if` starting at `segs[start]`; returns it and the index after its `fi`.
fn if_block(segs: &[Segment], start: usize) -> Option<(IfBlock, usize)> {
    let mut arms = Vec::new();
    let mut cond: Vec<Segment> = Vec::new();
    let mut cur: Vec<Segment> = Vec::new();
    let mut in_else = false;
    let mut depth = 0u32;
    for (j, seg) in segs.iter().enumerate().skip(start) {
        let (word, rest) = keyword(seg);
        if j == start {
            depth = 1;
            cur.extend(rest);
            continue;
        }
        match word {
            "if" => {
                depth += 1;
                cur.push(seg.clone());
            }
            "fi" if depth > 1 => {
                depth -= 1;
                cur.push(seg.clone());
            }
            "then" if depth == 1 => {
                cond = std::mem::take(&mut cur);
                cur.extend(rest);
            }
            "elif" if depth == 1 => {
                arms.push((std::mem::take(&mut cond), std::mem::take(&mut cur)));
                cur.extend(rest);
            }
            "else" if depth == 1 => {
                arms.push((std::mem::take(&mut cond), std::mem::take(&mut cur)));
                in_else = true;
                cur.extend(rest);
            }
            "fi" => {
                let otherwise = if in_else {
                    std::mem::take(&mut cur)
                } else {
                    arms.push((std::mem::take(&mut cond), std::mem::take(&mut cur)));
                    Vec::new()
                };
                return Some((IfBlock { arms, otherwise }, j + 1));
            }
            _ => cur.push(seg.clone()),
        }
    }
    None
}

/// Index of the `)` closing the `(` at `open`, skipping quoted text and nested parentheses.
fn closing_paren(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0u32;
    let mut quote: Option<char> = None;
    let mut i = open;
    while let Some(&c) = chars.get(i) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => i += 1,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => i += 1,
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `value` written so that the command line's word splitting gives it back: inside double
/// quotes `\` and `"` are escaped; unquoted, quotes and backslashes are escaped and blanks
/// still split words, as an unquoted expansion does.
fn requote(value: &str, double: bool) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        let special = if double {
            matches!(c, '\\' | '"')
        } else {
            matches!(c, '\\' | '"' | '\'' | '#')
        };
        if special {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

impl Shell<'_> {
    /// Runs a parsed list of pipelines: `&&`/`||`, `if` blocks, `set -e`, `exit`.
    pub(super) fn run_segments(&mut self, segs: &[Segment], stdin: &[u8]) -> u32 {
        let mut last = 0u32;
        let mut i = 0;
        while i < segs.len() {
            if let Some(code) = self.exited {
                return code;
            }
            let seg = &segs[i];
            let skip = match seg.sep {
                Sep::And => last != 0,
                Sep::Or => last == 0,
                Sep::Seq => false,
            };
            let mut ran = !skip;
            if keyword(seg).0 == "if" {
                let Some((block, next)) = if_block(segs, i) else {
                    self.e(
                        "sh: 1: Syntax error: end of file unexpected (expecting \"fi\")\n".into(),
                    );
                    return 2;
                };
                if !skip {
                    last = self.run_if(&block, stdin);
                    self.status = last;
                }
                // A failing command inside the body already ended the script under `set -e`.
                ran = false;
                i = next;
            } else if skip {
                i += 1;
            } else {
                let n = seg.pipeline.len();
                let mut input: Vec<u8> = stdin.to_vec();
                for (idx, cmd) in seg.pipeline.iter().enumerate() {
                    let stage_in = cmd.heredoc.clone().unwrap_or_else(|| input.clone());
                    let (out, code) = self.command(&cmd.text, &stage_in);
                    last = code;
                    self.status = code;
                    if idx + 1 < n {
                        input = out;
                    } else {
                        self.out.extend(out);
                    }
                }
                i += 1;
            }
            if let Some(code) = self.exited {
                return code;
            }
            // `set -e` ignores a failure followed by `&&` or `||`, and any inside a condition.
            let in_list = segs.get(i).is_some_and(|s| s.sep != Sep::Seq);
            if self.errexit && self.conditions == 0 && ran && last != 0 && !in_list {
                self.exited = Some(last);
                return last;
            }
        }
        last
    }

    fn run_if(&mut self, block: &IfBlock, stdin: &[u8]) -> u32 {
        for (cond, body) in &block.arms {
            self.conditions += 1;
            let c = self.run_segments(cond, stdin);
            self.conditions -= 1;
            if self.exited.is_some() {
                return c;
            }
            if c == 0 {
                return self.run_segments(body, stdin);
            }
        }
        self.run_segments(&block.otherwise, stdin)
    }

    /// Expands parameters and command substitutions outside single quotes (`$?` is done by
    /// [`expand_status`]). Arithmetic (`$((…))`) and positional parameters stay as written.
    pub(super) fn expand(&mut self, text: &str) -> String {
        if !text.contains('$') {
            return text.to_string();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let (mut single, mut double) = (false, false);
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            match c {
                '\\' if !single => {
                    out.push(c);
                    if let Some(&n) = chars.get(i + 1) {
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '$' if !single => {
                    if let Some((value, next)) = self.dollar(&chars, i + 1) {
                        out.push_str(&requote(&value, double));
                        i = next;
                        continue;
                    }
                }
                _ => {}
            }
            out.push(c);
            i += 1;
        }
        out
    }

    /// The value of the expansion whose text starts at `chars[at]` (after the `$`) and the
    /// index after it; `None` leaves the `$` as written.
    fn dollar(&mut self, chars: &[char], at: usize) -> Option<(String, usize)> {
        match *chars.get(at)? {
            '(' if chars.get(at + 1) != Some(&'(') => {
                let end = closing_paren(chars, at)?;
                let inner: String = chars[at + 1..end].iter().collect();
                Some((self.substitute(&inner), end + 1))
            }
            '{' => {
                let end = at + chars[at..].iter().position(|c| *c == '}')?;
                let body: String = chars[at + 1..end].iter().collect();
                let name_len = body
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(body.len());
                let (name, op) = body.split_at(name_len);
                let value = self.vars.get(name).cloned();
                let value = match op {
                    "" => value.unwrap_or_default(),
                    _ if op.starts_with(":-") => match value.filter(|v| !v.is_empty()) {
                        Some(v) => v,
                        None => self.expand_word(&op[2..]),
                    },
                    _ if op.starts_with('-') => match value {
                        Some(v) => v,
                        None => self.expand_word(&op[1..]),
                    },
                    _ if op.starts_with(":+") => match value.filter(|v| !v.is_empty()) {
                        Some(_) => self.expand_word(&op[2..]),
                        None => String::new(),
                    },
                    _ => return None,
                };
                Some((value, end + 1))
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = chars[at..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                    .unwrap_or(chars.len() - at);
                let name: String = chars[at..at + len].iter().collect();
                Some((self.vars.get(&name).cloned().unwrap_or_default(), at + len))
            }
            _ => None,
        }
    }

    /// The word of `${NAME:-word}`: expanded, its quotes removed.
    fn expand_word(&mut self, word: &str) -> String {
        let expanded = self.expand(word);
        shell_words::split(&expanded)
            .map(|w| w.join(" "))
            .unwrap_or(expanded)
    }

    /// `$(command)`: its standard output without trailing newlines; it runs in a subshell
    /// (its variables and `exit` stay there).
    fn substitute(&mut self, script: &str) -> String {
        let saved_out = std::mem::take(&mut self.out);
        let saved_vars = self.vars.clone();
        let saved_exit = self.exited.take();
        let code = self.run_script(script, b"");
        let produced = std::mem::replace(&mut self.out, saved_out);
        self.vars = saved_vars;
        if self.blocked.is_none() {
            self.exited = saved_exit;
        }
        self.substitution = Some(code);
        let mut s = String::from_utf8_lossy(&produced).into_owned();
        while s.ends_with('\n') {
            s.pop();
        }
        s
    }

    /// Sets `VAR=value` words as shell variables (`export` when `export`).
    pub(super) fn assign(&mut self, words: &[String], export: bool) {
        for w in words {
            match w.split_once('=') {
                Some((k, v)) if is_assignment(w) => {
                    self.vars.insert(k.to_string(), v.to_string());
                    if export {
                        self.exported.insert(k.to_string());
                    }
                }
                _ if export => {
                    self.exported.insert(w.clone());
                }
                _ => {}
            }
        }
    }

    /// Runs `argv` (`sh …`/`bash …`) as a child shell: it sees the exported variables plus
    /// `env`; its variables, `set -e` and `exit` do not reach this shell.
    pub(super) fn child_shell(
        &mut self,
        argv: &[String],
        env: &[String],
        stdin: &[u8],
    ) -> (Vec<u8>, u32) {
        let saved_out = std::mem::take(&mut self.out);
        let saved_vars = self.vars.clone();
        let saved_exported = self.exported.clone();
        let saved_errexit = std::mem::replace(&mut self.errexit, false);
        let saved_conditions = std::mem::replace(&mut self.conditions, 0);
        self.vars.retain(|k, _| saved_exported.contains(k));
        self.assign(env, true);
        let code = self.run_argv(argv, stdin);
        let produced = std::mem::replace(&mut self.out, saved_out);
        self.vars = saved_vars;
        self.exported = saved_exported;
        self.errexit = saved_errexit;
        self.conditions = saved_conditions;
        if self.blocked.is_none() {
            self.exited = None;
        }
        (produced, code)
    }

    /// `su [-] [-l] USER -c CMD`, `runuser -u USER -- CMD…`, `sudo -u USER CMD…`: the command
    /// in a child shell (the guest has one identity for files). `None` when `argv` is none of
    /// them.
    pub(super) fn as_user(&mut self, argv: &[String], stdin: &[u8]) -> Option<(Vec<u8>, u32)> {
        let base = argv.first()?.rsplit('/').next()?;
        let child: Vec<String> = match base {
            "su" => {
                let script = argv
                    .windows(2)
                    .find(|w| w[0] == "-c")
                    .map(|w| w[1].clone())?;
                vec!["sh".into(), "-c".into(), script]
            }
            "runuser" | "sudo" => {
                let mut i = 1;
                while let Some(a) = argv.get(i) {
                    match a.as_str() {
                        "--" => {
                            i += 1;
                            break;
                        }
                        "-u" | "-g" => i += 2,
                        a if a.starts_with('-') => i += 1,
                        _ => break,
                    }
                }
                let rest = argv.get(i..).filter(|r| !r.is_empty())?;
                let line = rest
                    .iter()
                    .map(|w| shell_words::quote(w).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                vec!["sh".into(), "-c".into(), line]
            }
            _ => return None,
        };
        Some(self.child_shell(&child, &[], stdin))
    }

    /// The first `n` bytes (all when `None`) a device file gives, or `None` for other paths.
    pub(super) fn device(path: &str, n: Option<usize>) -> Option<Vec<u8>> {
        use rand::Rng as _;
        match path {
            "/dev/null" => Some(Vec::new()),
            "/dev/zero" => Some(vec![0; n.unwrap_or(0)]),
            "/dev/urandom" | "/dev/random" => {
                let mut bytes = vec![0u8; n.unwrap_or(0)];
                rand::rng().fill(&mut bytes[..]);
                Some(bytes)
            }
            _ => None,
        }
    }

    /// `tr [-d] [-c] SET1 [SET2]`: deletes or translates characters (ranges like `a-z`).
    pub(super) fn tr(&mut self, args: &[String], stdin: &[u8], out: &mut Vec<u8>) -> u32 {
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-') && a.len() > 1)
            .map(|a| a.trim_start_matches('-'))
            .collect();
        let sets: Vec<Vec<char>> = args
            .iter()
            .filter(|a| !(a.starts_with('-') && a.len() > 1))
            .map(|s| tr_set(s))
            .collect();
        let Some(set1) = sets.first() else {
            self.e("tr: missing operand\n".into());
            return 1;
        };
        let complement = flags.contains('c') || flags.contains('C');
        let text = String::from_utf8_lossy(stdin);
        let in_set1 = |c: char| set1.contains(&c) != complement;
        if flags.contains('d') {
            out.extend(
                text.chars()
                    .filter(|c| !in_set1(*c))
                    .collect::<String>()
                    .bytes(),
            );
            return 0;
        }
        let Some(set2) = sets.get(1).filter(|s| !s.is_empty()) else {
            self.e("tr: missing operand after SET1\n".into());
            return 1;
        };
        let mapped: String = text
            .chars()
            .map(|c| match set1.iter().position(|x| *x == c) {
                Some(i) if !complement => set2.get(i).or(set2.last()).copied().unwrap_or(c),
                _ => c,
            })
            .collect();
        out.extend(mapped.bytes());
        0
    }
}

/// A `tr` set: characters with `a-z` ranges and `\n`, `\t` escapes.
fn tr_set(s: &str) -> Vec<char> {
    let mut chars: Vec<char> = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        let c = if c == '\\' {
            match it.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some(o) => o,
                None => '\\',
            }
        } else {
            c
        };
        if it.peek() == Some(&'-') {
            let mut ahead = it.clone();
            ahead.next();
            if let Some(end) = ahead.next() {
                it = ahead;
                chars.extend(c..=end);
                continue;
            }
        }
        chars.push(c);
    }
    chars
}
