//! File and text commands of the shell emulator: `printf`, `cat`, `tee`, `mkdir`, `test`,
//! `touch`, `cp`/`mv`, `rm`, `chmod`, `chown`, `ln`, `ls`, `head`/`tail`, `wc`, `grep`, `base64`,
//! `sha256sum`, `seq`, working on the guest's file table.

use super::*;

impl Shell<'_> {
    /// File and text commands (`cat`, `printf`, `mkdir`, `test`, `cp`, `grep`, `base64`, …).
    pub(super) fn coreutils(
        &mut self,
        cmd: &str,
        args: &[String],
        pos: &[String],
        flags: &str,
        stdin: &[u8],
        out: &mut Vec<u8>,
    ) -> u32 {
        match cmd {
            "printf" => {
                let fmt = args.first().cloned().unwrap_or_default();
                let mut rest = args.iter().skip(1);
                let mut s = String::new();
                let mut chars = fmt.chars().peekable();
                while let Some(c) = chars.next() {
                    match (c, chars.peek()) {
                        ('%', Some('s')) | ('%', Some('d')) => {
                            chars.next();
                            s.push_str(rest.next().map(String::as_str).unwrap_or(""));
                        }
                        ('%', Some('%')) => {
                            chars.next();
                            s.push('%');
                        }
                        ('\\', Some('n')) => {
                            chars.next();
                            s.push('\n');
                        }
                        ('\\', Some('t')) => {
                            chars.next();
                            s.push('\t');
                        }
                        _ => s.push(c),
                    }
                }
                out.extend(s.bytes());
                0
            }
            "cat" => {
                let mut code = 0;
                if pos.is_empty() {
                    out.extend(stdin);
                }
                for f in pos {
                    if f == "-" {
                        out.extend(stdin);
                        continue;
                    }
                    let p = abs(f);
                    match self.g.files.get(&p) {
                        Some(file) => out.extend(&file.data),
                        None if self.g.dirs.contains(&p) => {
                            self.e(format!("cat: {f}: Is a directory\n"));
                            code = 1;
                        }
                        None => {
                            self.e(format!("cat: {f}: No such file or directory\n"));
                            code = 1;
                        }
                    }
                }
                code
            }
            "tee" => {
                let append = flags.contains('a');
                for f in pos {
                    if !self.write(f, stdin, append) {
                        self.e(format!("tee: {f}: No such file or directory\n"));
                    }
                }
                out.extend(stdin);
                0
            }
            "mkdir" => {
                let parents = flags.contains('p');
                let mut code = 0;
                let mut skip_next = false;
                for a in args {
                    if skip_next {
                        skip_next = false;
                        continue;
                    }
                    if a == "-m" {
                        skip_next = true;
                        continue;
                    }
                    if a.starts_with('-') {
                        continue;
                    }
                    let p = abs(a);
                    if self.g.dirs.contains(&p) {
                        if !parents {
                            self.e(format!(
                                "mkdir: cannot create directory '{a}': File exists\n"
                            ));
                            code = 1;
                        }
                        continue;
                    }
                    if self.g.files.contains_key(&p) {
                        self.e(format!(
                            "mkdir: cannot create directory '{a}': File exists\n"
                        ));
                        code = 1;
                        continue;
                    }
                    if !parents && !self.g.dirs.contains(&parent_dir(&p)) {
                        self.e(format!(
                            "mkdir: cannot create directory '{a}': No such file or directory\n"
                        ));
                        code = 1;
                        continue;
                    }
                    let mut q = p.clone();
                    while q != "/" {
                        self.g.dirs.insert(q.clone());
                        q = parent_dir(&q);
                    }
                }
                code
            }
            "test" | "[" => {
                let mut a: Vec<String> = args.to_vec();
                if cmd == "[" && a.last().map(|l| l == "]").unwrap_or(false) {
                    a.pop();
                }
                u32::from(!self.test(&a))
            }
            "touch" => {
                for f in pos {
                    let p = abs(f);
                    if !self.g.files.contains_key(&p)
                        && !self.g.dirs.contains(&p)
                        && !self.write(&p, b"", true)
                    {
                        self.e(format!(
                            "touch: cannot touch '{f}': No such file or directory\n"
                        ));
                        return 1;
                    }
                }
                0
            }
            "cp" | "mv" => {
                if pos.len() < 2 {
                    self.e(format!("{cmd}: missing file operand\n"));
                    return 1;
                }
                let dst = abs(&pos[pos.len() - 1]);
                let mut code = 0;
                for s in &pos[..pos.len() - 1] {
                    let sp = abs(s);
                    let target = if self.g.dirs.contains(&dst) {
                        format!(
                            "{}/{}",
                            dst.trim_end_matches('/'),
                            sp.rsplit('/').next().unwrap_or("")
                        )
                    } else {
                        dst.clone()
                    };
                    if let Some(f) = self.g.files.get(&sp).cloned() {
                        if !self.g.dirs.contains(&parent_dir(&target)) {
                            self.e(format!("{cmd}: cannot create regular file '{}': No such file or directory\n", pos[pos.len() - 1]));
                            code = 1;
                            continue;
                        }
                        // `cp` onto an existing file keeps that file's mode and owner
                        // (`-p`/`-a` take the source's); a new file gets the source's mode.
                        let kept = self.g.files.get(&target).cloned();
                        let f = match kept {
                            Some(old)
                                if cmd == "cp" && !flags.contains('p') && !flags.contains('a') =>
                            {
                                GFile {
                                    data: f.data,
                                    ..old
                                }
                            }
                            _ => f,
                        };
                        self.g.files.insert(target, f);
                        if cmd == "mv" {
                            self.g.files.remove(&sp);
                        }
                    } else if self.g.dirs.contains(&sp)
                        && (flags.contains('r') || flags.contains('a') || cmd == "mv")
                    {
                        let prefix = format!("{}/", sp.trim_end_matches('/'));
                        let moved: Vec<(String, GFile)> = self
                            .g
                            .files
                            .iter()
                            .filter(|(k, _)| k.starts_with(&prefix))
                            .map(|(k, v)| {
                                (
                                    format!(
                                        "{}/{}",
                                        target.trim_end_matches('/'),
                                        &k[prefix.len()..]
                                    ),
                                    v.clone(),
                                )
                            })
                            .collect();
                        self.g.dirs.insert(target.clone());
                        for (k, v) in moved {
                            self.g.dirs.insert(parent_dir(&k));
                            self.g.files.insert(k, v);
                        }
                    } else {
                        self.e(format!(
                            "{cmd}: cannot stat '{s}': No such file or directory\n"
                        ));
                        code = 1;
                    }
                }
                code
            }
            "rm" => {
                let mut code = 0;
                for f in pos {
                    let p = abs(f);
                    if self.g.files.remove(&p).is_some() {
                        continue;
                    }
                    if self.g.dirs.contains(&p) && flags.contains('r') {
                        let prefix = format!("{}/", p.trim_end_matches('/'));
                        self.g.files.retain(|k, _| !k.starts_with(&prefix));
                        self.g.dirs.retain(|k| k != &p && !k.starts_with(&prefix));
                        continue;
                    }
                    if !flags.contains('f') {
                        self.e(format!(
                            "rm: cannot remove '{f}': No such file or directory\n"
                        ));
                        code = 1;
                    }
                }
                code
            }
            "chmod" => {
                let Some(mode) = pos.first() else {
                    return 1;
                };
                for f in pos.iter().skip(1) {
                    if let Some(file) = self.g.files.get_mut(&abs(f)) {
                        if let Ok(m) = u32::from_str_radix(mode, 8) {
                            file.mode = m;
                        } else if mode.contains("+x") {
                            file.mode |= 0o111;
                        } else if mode.contains("-x") {
                            file.mode &= !0o111;
                        }
                    }
                }
                0
            }
            "chown" => {
                let Some(owner) = pos.first() else {
                    return 1;
                };
                let (u, g) = owner.split_once(':').unwrap_or((owner, ""));
                for f in pos.iter().skip(1) {
                    if let Some(file) = self.g.files.get_mut(&abs(f)) {
                        if !u.is_empty() {
                            file.uid = id_of(u);
                        }
                        if !g.is_empty() {
                            file.gid = id_of(g);
                        }
                    }
                }
                0
            }
            "ln" => {
                if pos.len() >= 2 {
                    let target = abs(&pos[0]);
                    let data = self
                        .g
                        .files
                        .get(&target)
                        .map(|f| f.data.clone())
                        .unwrap_or_default();
                    self.write(&pos[1], &data, false);
                }
                0
            }
            "ls" => {
                let dir = abs(pos.first().map(String::as_str).unwrap_or("/root"));
                if self.g.files.contains_key(&dir) {
                    out.extend(format!("{}\n", pos.first().cloned().unwrap_or_default()).bytes());
                    return 0;
                }
                if !self.g.dirs.contains(&dir) {
                    self.e(format!(
                        "ls: cannot access '{}': No such file or directory\n",
                        pos.first().cloned().unwrap_or_default()
                    ));
                    return 2;
                }
                let prefix = if dir == "/" {
                    "/".to_string()
                } else {
                    format!("{dir}/")
                };
                let mut names: BTreeSet<String> = BTreeSet::new();
                for k in self.g.files.keys().chain(self.g.dirs.iter()) {
                    if let Some(rest) = k.strip_prefix(&prefix)
                        && !rest.is_empty()
                        && !rest.contains('/')
                    {
                        names.insert(rest.to_string());
                    }
                }
                for n in names {
                    out.extend(n.bytes());
                    out.push(b'\n');
                }
                0
            }
            "head" | "tail" => {
                let n = args
                    .windows(2)
                    .find(|w| w[0] == "-n")
                    .and_then(|w| w[1].parse::<usize>().ok())
                    .or_else(|| {
                        args.iter()
                            .find_map(|a| a.strip_prefix('-').and_then(|x| x.parse().ok()))
                    })
                    .unwrap_or(10);
                let bytes = args
                    .windows(2)
                    .find(|w| w[0] == "-c")
                    .and_then(|w| w[1].parse::<usize>().ok())
                    .or_else(|| {
                        args.iter()
                            .find_map(|a| a.strip_prefix("-c").and_then(|x| x.parse().ok()))
                    });
                let file = pos.iter().find(|p| p.parse::<usize>().is_err());
                if let Some(n) = bytes {
                    let data = match file {
                        Some(f) => match Shell::device(f, Some(n)) {
                            Some(d) => d,
                            None => match self.g.files.get(&abs(f)) {
                                Some(file) => file.data.clone(),
                                None => {
                                    self.e(format!("{cmd}: cannot open '{f}' for reading: No such file or directory\n"));
                                    return 1;
                                }
                            },
                        },
                        None => stdin.to_vec(),
                    };
                    let sel = if cmd == "head" {
                        &data[..n.min(data.len())]
                    } else {
                        &data[data.len().saturating_sub(n)..]
                    };
                    out.extend_from_slice(sel);
                    return 0;
                }
                let data = match file {
                    Some(f) => {
                        match self.g.files.get(&abs(f)) {
                            Some(file) => file.data.clone(),
                            None => {
                                self.e(format!("{cmd}: cannot open '{f}' for reading: No such file or directory\n"));
                                return 1;
                            }
                        }
                    }
                    None => stdin.to_vec(),
                };
                let text = String::from_utf8_lossy(&data);
                let lines: Vec<&str> = text.lines().collect();
                let sel: Vec<&str> = if cmd == "head" {
                    lines.iter().take(n).copied().collect()
                } else {
                    lines
                        .iter()
                        .skip(lines.len().saturating_sub(n))
                        .copied()
                        .collect()
                };
                for l in sel {
                    out.extend(l.bytes());
                    out.push(b'\n');
                }
                0
            }
            "wc" => {
                let data = match pos.first() {
                    Some(f) => self
                        .g
                        .files
                        .get(&abs(f))
                        .map(|f| f.data.clone())
                        .unwrap_or_default(),
                    None => stdin.to_vec(),
                };
                let lines = data.iter().filter(|b| **b == b'\n').count();
                out.extend(format!("{lines}\n").bytes());
                0
            }
            "grep" => self.grep(args, stdin, out),
            // `seq [FIRST [INCREMENT]] LAST`, integers (what scripts use to count or flood).
            "seq" => {
                const HELP: &str = "Try 'seq --help' for more information.\n";
                let mut numbers = Vec::with_capacity(3);
                for a in args {
                    match a.parse::<i64>() {
                        Ok(n) => numbers.push(n),
                        Err(_) => {
                            self.e(format!(
                                "seq: invalid floating point argument: ‘{a}’\n{HELP}"
                            ));
                            return 1;
                        }
                    }
                }
                let (first, step, last) = match numbers.as_slice() {
                    [last] => (1, 1, *last),
                    [first, last] => (*first, 1, *last),
                    [first, step, last] => (*first, *step, *last),
                    [] => {
                        self.e(format!("seq: missing operand\n{HELP}"));
                        return 1;
                    }
                    [_, _, _, extra, ..] => {
                        self.e(format!("seq: extra operand ‘{extra}’\n{HELP}"));
                        return 1;
                    }
                };
                if step == 0 {
                    self.e(format!("seq: invalid Zero increment value: ‘0’\n{HELP}"));
                    return 1;
                }
                let mut n = first;
                while (step > 0 && n <= last) || (step < 0 && n >= last) {
                    out.extend(n.to_string().bytes());
                    out.push(b'\n');
                    match n.checked_add(step) {
                        Some(next) => n = next,
                        None => break,
                    }
                }
                0
            }
            "base64" => {
                if flags.contains('d') {
                    let text: String = String::from_utf8_lossy(stdin).split_whitespace().collect();
                    match base64::engine::general_purpose::STANDARD.decode(text) {
                        Ok(d) => out.extend(d),
                        Err(_) => {
                            self.e("base64: invalid input\n".into());
                            return 1;
                        }
                    }
                } else {
                    out.extend(
                        base64::engine::general_purpose::STANDARD
                            .encode(stdin)
                            .bytes(),
                    );
                    out.push(b'\n');
                }
                0
            }
            "sha256sum" => {
                if pos.is_empty() {
                    out.extend(format!("{}  -\n", hex(&sha2::Sha256::digest(stdin))).bytes());
                }
                for f in pos {
                    match self.g.files.get(&abs(f)) {
                        Some(file) => out.extend(
                            format!("{}  {f}\n", hex(&sha2::Sha256::digest(&file.data))).bytes(),
                        ),
                        None => {
                            self.e(format!("sha256sum: {f}: No such file or directory\n"));
                            return 1;
                        }
                    }
                }
                0
            }
            _ => 0,
        }
    }

    pub(super) fn test(&self, a: &[String]) -> bool {
        match a {
            [] => false,
            [bang, rest @ ..] if bang == "!" => !self.test(rest),
            [s] => !s.is_empty(),
            [op, f] => {
                let p = abs(f);
                match op.as_str() {
                    "-e" => self.g.files.contains_key(&p) || self.g.dirs.contains(&p),
                    "-f" => self.g.files.contains_key(&p),
                    "-d" => self.g.dirs.contains(&p),
                    "-s" => self
                        .g
                        .files
                        .get(&p)
                        .map(|f| !f.data.is_empty())
                        .unwrap_or(false),
                    "-x" => {
                        self.g
                            .files
                            .get(&p)
                            .map(|f| f.mode & 0o111 != 0)
                            .unwrap_or(false)
                            || self.g.dirs.contains(&p)
                    }
                    "-r" | "-w" => self.g.files.contains_key(&p) || self.g.dirs.contains(&p),
                    "-L" | "-h" => false,
                    "-z" => f.is_empty(),
                    "-n" => !f.is_empty(),
                    _ => false,
                }
            }
            [l, op, r] => match op.as_str() {
                "=" | "==" => l == r,
                "!=" => l != r,
                "-eq" => l.parse::<i64>().ok() == r.parse::<i64>().ok(),
                "-ne" => l.parse::<i64>().ok() != r.parse::<i64>().ok(),
                "-lt" => l.parse::<i64>().unwrap_or(0) < r.parse::<i64>().unwrap_or(0),
                "-gt" => l.parse::<i64>().unwrap_or(0) > r.parse::<i64>().unwrap_or(0),
                _ => false,
            },
            _ => false,
        }
    }

    pub(super) fn grep(&mut self, args: &[String], stdin: &[u8], out: &mut Vec<u8>) -> u32 {
        let mut quiet = false;
        let mut invert = false;
        let mut icase = false;
        let mut count = false;
        let mut fixed = false;
        let mut pos = Vec::new();
        for a in args {
            if a.starts_with('-') && a.len() > 1 && pos.is_empty() {
                quiet |= a.contains('q');
                invert |= a.contains('v');
                icase |= a.contains('i');
                count |= a.contains('c');
                fixed |= a.contains('F');
            } else {
                pos.push(a.clone());
            }
        }
        let Some(pat) = pos.first().cloned() else {
            self.e("Usage: grep [OPTION]... PATTERNS [FILE]...\n".into());
            return 2;
        };
        let data = match pos.get(1) {
            Some(f) => match self.g.files.get(&abs(f)) {
                Some(file) => file.data.clone(),
                None => {
                    if !quiet {
                        self.e(format!("grep: {f}: No such file or directory\n"));
                    }
                    return 2;
                }
            },
            None => stdin.to_vec(),
        };
        let re = if fixed {
            regex::RegexBuilder::new(&regex::escape(&pat))
                .case_insensitive(icase)
                .build()
        } else {
            regex::RegexBuilder::new(&pat.replace("\\|", "|"))
                .case_insensitive(icase)
                .build()
        };
        let Ok(re) = re else {
            self.e("grep: Invalid regular expression\n".into());
            return 2;
        };
        let text = String::from_utf8_lossy(&data);
        let mut n = 0;
        for line in text.lines() {
            if re.is_match(line) != invert {
                n += 1;
                if !quiet && !count {
                    out.extend(line.bytes());
                    out.push(b'\n');
                }
            }
        }
        if count {
            out.extend(format!("{n}\n").bytes());
        }
        if n > 0 { 0 } else { 1 }
    }
}
