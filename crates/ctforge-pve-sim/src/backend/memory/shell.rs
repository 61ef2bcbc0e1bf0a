//! The shell emulator's core: running argv, scripts and command lines against a guest
//! (redirections, `set -e`, `$?`) and dispatching each simple command to its implementation.

use super::*;

pub(super) struct Shell<'a> {
    pub(super) g: &'a mut GuestData,
    pub(super) out: Vec<u8>,
    pub(super) err: Vec<u8>,
    pub(super) errexit: bool,
    pub(super) exited: Option<u32>,
    pub(super) depth: u32,
    /// Status of the last command (`$?`).
    pub(super) status: u32,
    /// The command that never ends, once one ran (the script stops there).
    pub(super) blocked: Option<Blocked>,
    /// Shell variables.
    pub(super) vars: BTreeMap<String, String>,
    /// The names of exported variables (what a child shell sees).
    pub(super) exported: BTreeSet<String>,
    /// How many `if` conditions are running (`set -e` does not apply inside one).
    pub(super) conditions: u32,
    /// The status of the last command substitution of the current command.
    pub(super) substitution: Option<u32>,
    /// Shell functions a `BASH_ENV` file defined (the script runtime's helpers).
    pub(super) functions: BTreeSet<String>,
}

impl<'a> Shell<'a> {
    pub(super) fn new(g: &'a mut GuestData) -> Self {
        Shell {
            g,
            out: Vec::new(),
            err: Vec::new(),
            errexit: false,
            exited: None,
            depth: 0,
            status: 0,
            blocked: None,
            vars: [
                ("HOME", "/root"),
                (
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ),
                ("USER", "root"),
                ("LOGNAME", "root"),
                ("SHELL", "/bin/bash"),
                ("PWD", "/root"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            exported: ["HOME", "PATH", "USER", "LOGNAME", "SHELL", "PWD"]
                .into_iter()
                .map(String::from)
                .collect(),
            conditions: 0,
            substitution: None,
            functions: BTreeSet::new(),
        }
    }

    pub(super) fn run_argv(&mut self, argv: &[String], stdin: &[u8]) -> u32 {
        let Some(first) = argv.first() else {
            return 0;
        };
        let base = first.rsplit('/').next().unwrap_or(first).to_string();
        if matches!(base.as_str(), "bash" | "sh" | "dash") {
            let mut i = 1;
            let mut script: Option<String> = None;
            while i < argv.len() {
                let a = &argv[i];
                if a.starts_with('-') && !a.starts_with("--") && a.contains('c') {
                    if a.contains('e') {
                        self.errexit = true;
                    }
                    script = argv.get(i + 1).cloned();
                    break;
                }
                if a == "-e" {
                    self.errexit = true;
                } else if !a.starts_with('-') {
                    // bash FILE
                    match self.g.files.get(&abs(a)) {
                        Some(f) => script = Some(String::from_utf8_lossy(&f.data).into_owned()),
                        None => {
                            self.err.extend(
                                format!("{base}: {a}: No such file or directory\n").bytes(),
                            );
                            return 127;
                        }
                    }
                    break;
                }
                i += 1;
            }
            let script = script.unwrap_or_else(|| String::from_utf8_lossy(stdin).into_owned());
            if base != "bash" {
                // Debian's /bin/sh is dash: bash-only syntax fails there, with dash's words.
                let label = argv
                    .iter()
                    .skip(1)
                    .find(|a| !a.starts_with('-'))
                    .filter(|_| {
                        !argv
                            .iter()
                            .skip(1)
                            .any(|a| a.starts_with('-') && a.contains('c'))
                    })
                    .cloned()
                    .unwrap_or_else(|| base.clone());
                return self.run_dash(&script, &label, stdin);
            }
            return self.run_script(&script, stdin);
        }
        let (out, code) = self.simple(argv, stdin);
        self.out.extend(out);
        code
    }

    /// Runs `script` as dash would: up to the first bash-only construct, which fails with
    /// dash's message (`LABEL: LINE: …`) — `set -o pipefail` and an array assignment end the
    /// script with status 2, `[[` is a command not found (127).
    pub(super) fn run_dash(&mut self, script: &str, label: &str, stdin: &[u8]) -> u32 {
        let Some((line, problem)) = dash_incompatibility(script) else {
            return self.run_script(script, stdin);
        };
        let lines: Vec<&str> = script.lines().collect();
        let before = lines[..line - 1].join("\n");
        let code = self.run_script(&before, stdin);
        if self.exited.is_some() || (self.errexit && code != 0) {
            return code;
        }
        match problem {
            DashProblem::NotFound(word) => {
                self.e(format!("{label}: {line}: {word}: not found\n"));
                self.status = 127;
                if self.errexit {
                    self.exited = Some(127);
                    return 127;
                }
                let rest = lines[line..].join("\n");
                self.run_script(&rest, stdin)
            }
            DashProblem::Fatal(message) => {
                self.e(format!("{label}: {line}: {message}\n"));
                self.status = 2;
                self.exited = Some(2);
                2
            }
        }
    }

    /// A call of a function the `BASH_ENV` file defined: the script runtime's helpers do what
    /// the runtime does (log lines in its format, credentials in the library's file, …);
    /// other functions succeed without effect.
    fn helper(&mut self, name: &str, args: &[String], out: &mut Vec<u8>) -> u32 {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let level = match name {
            "log_info" => Some("INFO"),
            "log_warn" => Some("WARNING"),
            "log_error" => Some("ERROR"),
            _ => None,
        };
        if let Some(level) = level {
            out.extend(format!("[{stamp}] [{level:<7}] {}\n", args.join(" ")).bytes());
            return 0;
        }
        match name {
            "is_installed" if args.len() == 1 => u32::from(!self.has_binary(&args[0])),
            "is_installed" | "ensure_installed" if args.len() != 1 => 2,
            "ensure_installed" => {
                if self.has_binary(&args[0]) {
                    0
                } else {
                    self.pkg(
                        "apt",
                        &["install".into(), "-y".into(), args[0].clone()],
                        out,
                    )
                }
            }
            "run_as_user" => {
                let (o, c) = self.simple(args, b"");
                out.extend(o);
                c
            }
            "generate_password" => {
                let len: usize = args.first().and_then(|n| n.parse().ok()).unwrap_or(16);
                let set = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                let pw: String = (0..len)
                    .map(|_| set[rand::random_range(0..set.len())] as char)
                    .collect();
                out.extend(format!("{pw}\n").bytes());
                0
            }
            "save_credential" if args.len() == 2 => {
                let file = "/etc/infrahaus/credentials";
                self.g.dirs.insert("/etc/infrahaus".into());
                self.g.dirs.insert("/etc".into());
                let line = format!("{}={}\n", args[0], args[1]);
                self.write(file, line.as_bytes(), true);
                if let Some(f) = self.g.files.get_mut(file) {
                    f.mode = 0o600;
                }
                0
            }
            "save_credential" => 2,
            "detect_container_user" => self.detect_container_user(),
            _ => 0,
        }
    }

    pub(super) fn run_script(&mut self, script: &str, stdin: &[u8]) -> u32 {
        self.depth += 1;
        if self.depth > 16 {
            self.err.extend(b"bash: maximum nesting level exceeded\n");
            return 1;
        }
        let segs = split_script(script);
        let last = self.run_segments(&segs, stdin);
        self.depth -= 1;
        last
    }

    /// One command with redirections; returns (stdout not redirected, status).
    pub(super) fn command(&mut self, text: &str, stdin: &[u8]) -> (Vec<u8>, u32) {
        let text = expand_status(text, self.status);
        self.substitution = None;
        let text = self.expand(&text);
        let words = match shell_words::split(&text) {
            Ok(w) => w,
            Err(_) => {
                self.err
                    .extend(b"bash: syntax error: unexpected end of file\n");
                return (Vec::new(), 2);
            }
        };
        let mut argv = Vec::new();
        let mut out_redirect: Option<(String, bool)> = None;
        let mut err_redirect: Option<String> = None;
        let mut err_to_out = false;
        let mut in_file: Option<String> = None;
        let mut it = words.into_iter().peekable();
        while let Some(w) = it.next() {
            match w.as_str() {
                ">" | "1>" => out_redirect = it.next().map(|f| (f, false)),
                ">>" | "1>>" => out_redirect = it.next().map(|f| (f, true)),
                "2>" | "2>>" => err_redirect = it.next(),
                "&>" => {
                    out_redirect = it.next().map(|f| (f, false));
                    err_to_out = true;
                }
                "2>&1" => err_to_out = true,
                "<" => in_file = it.next(),
                _ if w.starts_with(">>") => out_redirect = Some((w[2..].to_string(), true)),
                _ if w.starts_with("2>") => err_redirect = Some(w[2..].to_string()),
                _ if w.starts_with('>') => out_redirect = Some((w[1..].to_string(), false)),
                _ if w.starts_with('<') && w.len() > 1 => in_file = Some(w[1..].to_string()),
                _ => argv.push(w),
            }
        }
        // Leading VAR=value assignments: shell variables on their own, else the command's
        // environment; bash sources a `BASH_ENV` file first (its functions become commands).
        let mut env = Vec::new();
        while argv.first().map(|a| is_assignment(a)).unwrap_or(false) {
            let a = argv.remove(0);
            if let Some(path) = a.strip_prefix("BASH_ENV=")
                && let Some(file) = self.g.files.get(&abs(path))
            {
                let text = String::from_utf8_lossy(&file.data).into_owned();
                self.functions.extend(function_names(&text));
            }
            env.push(a);
        }
        if argv.is_empty() {
            self.assign(&env, false);
            return (Vec::new(), self.substitution.unwrap_or(0));
        }
        if argv.first().is_some_and(|a| a == "export") {
            self.assign(&argv[1..], true);
            return (Vec::new(), 0);
        }
        let input = match in_file {
            Some(f) => match self.g.files.get(&abs(&f)) {
                Some(file) => file.data.clone(),
                None => {
                    self.err
                        .extend(format!("bash: {f}: No such file or directory\n").bytes());
                    return (Vec::new(), 1);
                }
            },
            None => stdin.to_vec(),
        };
        let err_before = self.err.len();
        let (out, code) = if argv
            .first()
            .map(|a| matches!(a.rsplit('/').next().unwrap_or(a), "bash" | "sh" | "dash"))
            .unwrap_or(false)
        {
            self.child_shell(&argv, &env, &input)
        } else if let Some(done) = self.as_user(&argv, &input) {
            done
        } else {
            self.simple(&argv, &input)
        };
        let errs: Vec<u8> = self.err.split_off(err_before);
        let mut out = out;
        if err_to_out {
            out.extend(&errs);
        } else if let Some(f) = err_redirect {
            if f != "/dev/null" {
                self.write(&f, &errs, true);
            }
        } else {
            self.err.extend(errs);
        }
        if let Some((f, append)) = out_redirect {
            if f != "/dev/null" && !self.write(&f, &out, append) {
                self.err
                    .extend(format!("bash: {f}: No such file or directory\n").bytes());
                return (Vec::new(), 1);
            }
            return (Vec::new(), code);
        }
        (out, code)
    }

    pub(super) fn write(&mut self, path: &str, data: &[u8], append: bool) -> bool {
        let p = abs(path);
        if !self.g.dirs.contains(&parent_dir(&p)) {
            return false;
        }
        let entry = self.g.files.entry(p).or_insert_with(|| GFile {
            data: Vec::new(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
        if !append {
            entry.data.clear();
        }
        entry.data.extend_from_slice(data);
        true
    }

    /// A command that never ends: the script stops here.
    pub(super) fn block(&mut self, what: String) {
        if self.blocked.is_none() {
            self.blocked = Some(Blocked { what, limit: None });
        }
        self.exited = Some(0);
    }

    /// `timeout [-k K] [-s SIG] SECS CMD…`: runs CMD; when it never ends, it is killed after
    /// SECS (see [`MemoryBackend`]'s exec).
    pub(super) fn timeout(&mut self, args: &[String], stdin: &[u8]) -> u32 {
        let mut i = 0;
        while let Some(a) = args.get(i) {
            match a.as_str() {
                "-k" | "-s" | "--kill-after" | "--signal" => i += 2,
                a if a.starts_with('-') => i += 1,
                _ => break,
            }
        }
        let Some(limit) = args.get(i).and_then(|d| parse_duration(d)) else {
            self.e("timeout: invalid time interval\n".into());
            return 125;
        };
        let inner = &args[i + 1..];
        if inner.is_empty() {
            self.e("timeout: missing operand\n".into());
            return 125;
        }
        let code = self.run_argv(inner, stdin);
        if let Some(b) = self.blocked.as_mut()
            && b.limit.is_none()
        {
            b.limit = Some(limit);
        }
        code
    }

    /// `ps` (any options): one line per running process, `PID ARGS`.
    pub(super) fn ps(&self, out: &mut Vec<u8>) {
        out.extend(b"    PID COMMAND\n");
        out.extend(b"      1 /sbin/init\n");
        for (pid, cmd) in &self.g.procs {
            out.extend(format!("{pid:>7} {cmd}\n").bytes());
        }
    }

    /// `pgrep [-f] [-a] PATTERN`: running processes whose command line (`-f`) or name contains
    /// PATTERN (a one-character class like `[s]` counts as that character).
    pub(super) fn pgrep(&self, args: &[String], out: &mut Vec<u8>) -> u32 {
        let full = args.iter().any(|a| a.starts_with('-') && a.contains('f'));
        let list = args.iter().any(|a| a.starts_with('-') && a.contains('a'));
        let Some(pattern) = args.iter().find(|a| !a.starts_with('-')) else {
            return 2;
        };
        let pattern = literal(pattern);
        let mut found = false;
        for (pid, cmd) in &self.g.procs {
            let hay = if full {
                cmd.as_str()
            } else {
                cmd.split_whitespace().next().unwrap_or("")
            };
            if hay.contains(&pattern) {
                found = true;
                if list {
                    out.extend(format!("{pid} {cmd}\n").bytes());
                } else {
                    out.extend(format!("{pid}\n").bytes());
                }
            }
        }
        if found { 0 } else { 1 }
    }

    pub(super) fn e(&mut self, s: String) {
        self.err.extend(s.into_bytes());
    }

    pub(super) fn simple(&mut self, argv: &[String], stdin: &[u8]) -> (Vec<u8>, u32) {
        let Some(first) = argv.first() else {
            return (Vec::new(), 0);
        };
        let cmd = first.rsplit('/').next().unwrap_or(first).to_string();
        let args: Vec<String> = argv[1..].to_vec();
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-') && !a.starts_with("--"))
            .map(|a| a.trim_start_matches('-'))
            .collect();
        let pos: Vec<String> = args
            .iter()
            .filter(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        let mut out = Vec::new();
        if self.g.missing.contains(&cmd) {
            self.e(format!("sh: 1: {cmd}: not found\n"));
            return (out, 127);
        }
        if self.functions.contains(&cmd) {
            let code = self.helper(&cmd, &args, &mut out);
            return (out, code);
        }
        let code: u32 = match cmd.as_str() {
            "tar" => self.tar(&args, &mut out),
            "sleep" if pos.first().is_some_and(|d| d == "infinity" || d == "inf") => {
                self.block(argv.join(" "));
                0
            }
            "timeout" => self.timeout(&args, stdin),
            "ps" => {
                self.ps(&mut out);
                0
            }
            "pgrep" => self.pgrep(&args, &mut out),
            "tr" => self.tr(&args, stdin, &mut out),
            "true" | ":" | "sleep" | "sync" | "export" | "cd" | "umask" | "daemon-reload"
            | "source" | "." => 0,
            "false" => 1,
            "set" => {
                if args.iter().any(|a| a.starts_with('-') && a.contains('e')) {
                    self.errexit = true;
                }
                if args.iter().any(|a| a.starts_with('+') && a.contains('e')) {
                    self.errexit = false;
                }
                0
            }
            "exit" => {
                let c = pos.first().and_then(|c| c.parse().ok()).unwrap_or(0);
                self.exited = Some(c);
                c
            }
            "echo" => {
                let no_nl = args.first().map(|a| a == "-n").unwrap_or(false);
                let words: Vec<&str> = args
                    .iter()
                    .skip_while(|a| *a == "-n" || *a == "-e")
                    .map(String::as_str)
                    .collect();
                out.extend(words.join(" ").bytes());
                if !no_nl {
                    out.push(b'\n');
                }
                0
            }
            "printf" | "cat" | "tee" | "mkdir" | "test" | "[" | "touch" | "cp" | "mv" | "rm"
            | "chmod" | "chown" | "ln" | "ls" | "head" | "tail" | "wc" | "grep" | "base64"
            | "sha256sum" | "seq" => self.coreutils(&cmd, &args, &pos, &flags, stdin, &mut out),
            "hostname" => {
                if flags.contains('I') {
                    out.extend(b"10.10.0.100 \n");
                } else {
                    out.extend(format!("{}\n", self.g.hostname).bytes());
                }
                0
            }
            "whoami" => {
                out.extend(b"root\n");
                0
            }
            "id" => self.id(&pos, &flags, &mut out),
            "getent" => self.getent(&pos, &mut out),
            "useradd" => self.useradd(&args),
            "install" => self.install(&args),
            "uname" => {
                let s = if flags.contains('a') {
                    "Linux ".to_string()
                        + &self.g.hostname
                        + " 6.14.11-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4 x86_64 GNU/Linux\n"
                } else if flags.contains('r') {
                    "6.14.11-4-pve\n".into()
                } else if flags.contains('m') {
                    "x86_64\n".into()
                } else {
                    "Linux\n".into()
                };
                out.extend(s.bytes());
                0
            }
            "which" | "command" => {
                let names: Vec<&String> = pos.iter().collect();
                let mut code = 0;
                for n in names {
                    if self.has_binary(n) {
                        out.extend(format!("/usr/bin/{n}\n").bytes());
                    } else {
                        code = 1;
                    }
                }
                code
            }
            "systemctl" => self.systemctl(&args, &mut out),
            "service" => {
                if pos.len() >= 2 {
                    let sub = pos[1].clone();
                    let name = pos[0].clone();
                    self.systemctl(&[sub, name], &mut out)
                } else {
                    1
                }
            }
            "ss" | "netstat" => {
                self.ss(&flags, &mut out);
                0
            }
            "curl" | "wget" => self.curl(&pos, &mut out),
            "apt-get" | "apt" => self.pkg("apt", &args, &mut out),
            "apk" => self.pkg("apk", &args, &mut out),
            "dnf" | "yum" => self.pkg("dnf", &args, &mut out),
            "pip" | "pip3" => self.pkg("pip", &args, &mut out),
            "npm" => self.pkg("npm", &args, &mut out),
            "dpkg" if flags.contains('s') || args.iter().any(|a| a == "--status") => {
                let mut code = 0;
                for p in &pos {
                    if self.g.packages.contains(&format!("apt:{p}")) {
                        out.extend(format!("Package: {p}\nStatus: install ok installed\n").bytes());
                    } else {
                        self.e(format!(
                            "dpkg-query: package '{p}' is not installed and no information is available\n"
                        ));
                        code = 1;
                    }
                }
                code
            }
            _ => 0,
        };
        (out, code)
    }

    pub(super) fn has_binary(&self, n: &str) -> bool {
        if self.g.missing.contains(n) {
            return false;
        }
        matches!(
            n,
            "bash"
                | "sh"
                | "cat"
                | "echo"
                | "systemctl"
                | "apt-get"
                | "apt"
                | "ss"
                | "mkdir"
                | "cp"
                | "mv"
                | "rm"
                | "ls"
                | "test"
                | "grep"
                | "base64"
                | "sha256sum"
                | "seq"
                | "curl"
                | "tar"
                | "head"
        ) || self
            .g
            .packages
            .iter()
            .any(|p| p.rsplit(':').next() == Some(n))
            || self.g.services.values().any(|s| s.process == n)
    }
}

/// Whether a unit's file makes it never finish starting: an `ExecStart=` or `ExecStartPre=`
/// that runs `sleep infinity`.
pub(super) fn never_starts(g: &GuestData, name: &str) -> bool {
    [
        "/etc/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ]
    .iter()
    .filter_map(|dir| g.files.get(&format!("{dir}/{name}.service")))
    .any(|f| {
        String::from_utf8_lossy(&f.data).lines().any(|l| {
            (l.starts_with("ExecStart=") || l.starts_with("ExecStartPre="))
                && l.contains("sleep infinity")
        })
    })
}

/// Names of the functions a shell file defines (`name() {` at the start of a line).
pub(super) fn function_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once("()")?;
            let ok = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && rest.trim_start().starts_with('{');
            ok.then(|| name.to_owned())
        })
        .collect()
}

/// What dash makes of a bash-only construct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DashProblem {
    /// A command dash does not have (`[[`): status 127, the script goes on.
    NotFound(String),
    /// An error that ends the script with status 2 (the message after `LABEL: LINE: `).
    Fatal(String),
}

/// The first line (1-based) of `script` that dash cannot run, and why.
pub(super) fn dash_incompatibility(script: &str) -> Option<(usize, DashProblem)> {
    for (i, line) in script.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line).trim();
        if code.starts_with('#') || code.is_empty() {
            continue;
        }
        let words: Vec<&str> = code.split_whitespace().collect();
        if words.first() == Some(&"set") {
            let mut it = words.iter().skip(1).peekable();
            while let Some(w) = it.next() {
                if (w.starts_with('-') && w.ends_with('o'))
                    && let Some(opt) = it.peek()
                    && matches!(**opt, "pipefail" | "errtrace" | "functrace")
                {
                    return Some((
                        i + 1,
                        DashProblem::Fatal(format!("set: Illegal option -o {opt}")),
                    ));
                }
            }
        }
        if words.contains(&"[[")
            && words.first().is_some_and(|w| {
                matches!(
                    *w,
                    "[[" | "if" | "while" | "until" | "elif" | "!" | "&&" | "||"
                )
            })
        {
            return Some((i + 1, DashProblem::NotFound("[[".into())));
        }
        let first = words.first().copied().unwrap_or("");
        if let Some((name, value)) = first.split_once('=')
            && value.starts_with('(')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Some((
                i + 1,
                DashProblem::Fatal("Syntax error: \"(\" unexpected".into()),
            ));
        }
        if matches!(first, "declare" | "typeset") {
            return Some((i + 1, DashProblem::NotFound(first.to_owned())));
        }
    }
    None
}

/// `timeout`'s duration: `N`, `Ns`, `Nm`, `Nh`, `Nd` (fractions allowed).
pub(super) fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let (num, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: f64 = num.parse().ok()?;
    let secs = n * match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => return None,
    };
    std::time::Duration::try_from_secs_f64(secs).ok()
}

/// A `pgrep` pattern with one-character classes (`[s]leep`) turned into their character.
pub(super) fn literal(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut s = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' && chars.get(i + 2) == Some(&']') {
            if let Some(c) = chars.get(i + 1) {
                s.push(*c);
            }
            i += 3;
        } else {
            s.push(chars[i]);
            i += 1;
        }
    }
    s
}

pub(super) fn port_in(line: &str) -> Option<u16> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| regex::Regex::new(r"(?:--port[= ]|-p |PORT=|:)(\d{2,5})\b").ok())
        .as_ref()?;
    re.captures(line)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
}

/// Replaces `$?` outside single quotes with `status`.
pub(super) fn expand_status(text: &str, status: u32) -> String {
    if !text.contains("$?") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let (mut single, mut double) = (false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => {
                single = !single;
                out.push(c);
            }
            '"' if !single => {
                double = !double;
                out.push(c);
            }
            '$' if !single && chars.peek() == Some(&'?') => {
                chars.next();
                out.push_str(&status.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn is_assignment(a: &str) -> bool {
    match a.split_once('=') {
        Some((k, _)) => {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

pub(super) fn abs(p: &str) -> String {
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/root/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether running `argv` reads standard input (shell heuristics shared by backends).
pub(crate) fn argv_reads_stdin(argv: &[String]) -> bool {
    let Some(first) = argv.first() else {
        return false;
    };
    let base = first.rsplit('/').next().unwrap_or(first);
    match base {
        "bash" | "sh" | "dash" => {
            let has_c = argv
                .iter()
                .skip(1)
                .any(|a| a.starts_with('-') && a.contains('c') && !a.starts_with("--"));
            if !has_c {
                // `bash FILE` reads the file; `bash` / `bash -s` read stdin.
                return !argv.iter().skip(1).any(|a| !a.starts_with('-'));
            }
            let script = argv
                .iter()
                .skip_while(|a| !(a.starts_with('-') && a.contains('c')))
                .nth(1)
                .cloned()
                .unwrap_or_default();
            script_reads_stdin(&script)
        }
        "timeout" => {
            let mut i = 1;
            while let Some(a) = argv.get(i) {
                match a.as_str() {
                    "-k" | "-s" | "--kill-after" | "--signal" => i += 2,
                    a if a.starts_with('-') => i += 1,
                    _ => break,
                }
            }
            argv.get(i + 1..).is_some_and(argv_reads_stdin)
        }
        _ => simple_reads_stdin(argv),
    }
}
