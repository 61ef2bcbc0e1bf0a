//! Networking and archive tools of the shell emulator: `tar` (an archive of a directory to
//! stdout), `ss`/`netstat` listening ports, `curl`/`wget` against a local port.

use super::*;

impl Shell<'_> {
    /// `tar -C DIR -cf - MEMBERS…`: a ustar archive of files under DIR on stdout (members
    /// `.` or relative paths, each recursively). Only creation to stdout is simulated.
    pub(super) fn tar(&mut self, args: &[String], out: &mut Vec<u8>) -> u32 {
        let mut dir = "/root".to_string();
        let mut create = false;
        let mut to_stdout = true;
        let mut members: Vec<String> = Vec::new();
        let mut it = args.iter().enumerate().peekable();
        while let Some((i, a)) = it.next() {
            let bundled = i == 0 && !a.starts_with('-') && a.chars().all(|c| "cfvz".contains(c));
            if a == "-C" || a == "--directory" {
                if let Some((_, d)) = it.next() {
                    dir = abs(d);
                }
            } else if let Some(d) = a.strip_prefix("--directory=") {
                dir = abs(d);
            } else if a == "-f" || a == "--file" {
                to_stdout = it.next().is_some_and(|(_, f)| f == "-");
            } else if bundled || (a.starts_with('-') && !a.starts_with("--")) {
                let flags = a.trim_start_matches('-');
                create |= flags.contains('c');
                if flags.ends_with('f') {
                    to_stdout = it.next().is_some_and(|(_, f)| f == "-");
                }
            } else if !a.starts_with("--") {
                members.push(a.clone());
            }
        }
        if !create || !to_stdout {
            self.e("tar: the simulator only creates archives on stdout (tar -cf - …)\n".into());
            return 2;
        }
        if !self.g.dirs.contains(&dir) {
            self.e(format!(
                "tar: {dir}: Cannot open: No such file or directory\ntar: Error is not recoverable: exiting now\n"
            ));
            return 2;
        }
        let mut builder = tar::Builder::new(Vec::new());
        let base = format!("{}/", dir.trim_end_matches('/'));
        for member in &members {
            let rel = member.trim_start_matches("./").trim_end_matches('/');
            let root = if rel.is_empty() || rel == "." {
                dir.clone()
            } else {
                format!("{base}{rel}")
            };
            let prefix = format!("{}/", root.trim_end_matches('/'));
            let name = |path: &str| format!("./{}", path.strip_prefix(&base).unwrap_or(path));
            let mut dirs: Vec<&String> = self
                .g
                .dirs
                .iter()
                .filter(|d| **d == root || d.starts_with(&prefix))
                .collect();
            dirs.sort();
            let files: Vec<(&String, &GFile)> = self
                .g
                .files
                .iter()
                .filter(|(p, _)| **p == root || p.starts_with(&prefix))
                .collect();
            if dirs.is_empty() && files.is_empty() {
                self.e(format!(
                    "tar: {member}: Cannot stat: No such file or directory\n"
                ));
                return 2;
            }
            for d in dirs {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                let path = if *d == dir {
                    "./".to_string()
                } else {
                    format!("{}/", name(d))
                };
                if builder.append_data(&mut h, path, std::io::empty()).is_err() {
                    return 2;
                }
            }
            for (p, f) in files {
                let mut h = tar::Header::new_ustar();
                h.set_mode(f.mode);
                h.set_uid(u64::from(f.uid));
                h.set_gid(u64::from(f.gid));
                h.set_size(f.data.len() as u64);
                if builder
                    .append_data(&mut h, name(p), f.data.as_slice())
                    .is_err()
                {
                    return 2;
                }
            }
        }
        match builder.into_inner() {
            Ok(bytes) => {
                out.extend(bytes);
                0
            }
            Err(e) => {
                self.e(format!("tar: {e}\n"));
                2
            }
        }
    }

    pub(super) fn ss(&self, flags: &str, out: &mut Vec<u8>) {
        if !flags.contains('H') {
            out.extend(b"State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n");
        }
        let mut rows: Vec<(u16, &GService)> = self
            .g
            .services
            .values()
            .filter(|s| s.active)
            .filter_map(|s| s.port.map(|p| (p, s)))
            .collect();
        rows.sort_by_key(|(p, _)| *p);
        for (port, s) in rows {
            let local = format!("0.0.0.0:{port}");
            let proc_ = if flags.contains('p') {
                format!("users:((\"{}\",pid={},fd=6))", s.process, s.pid)
            } else {
                String::new()
            };
            out.extend(
                format!("LISTEN 0      511    {local:>18}  0.0.0.0:*         {proc_}\n").bytes(),
            );
        }
    }

    pub(super) fn curl(&mut self, pos: &[String], out: &mut Vec<u8>) -> u32 {
        let Some(url) = pos.iter().find(|p| p.contains("://")) else {
            return 0;
        };
        let rest = url.split("://").nth(1).unwrap_or("");
        let hostport = rest.split('/').next().unwrap_or("");
        let port: u16 = hostport
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(if url.starts_with("https") { 443 } else { 80 });
        let local = hostport.starts_with("localhost")
            || hostport.starts_with("127.")
            || hostport.starts_with("[::1]");
        if !local {
            return 0;
        }
        if self
            .g
            .services
            .values()
            .any(|s| s.active && s.port == Some(port))
        {
            out.extend(b"<html><body>OK</body></html>\n");
            0
        } else {
            self.e(format!("curl: (7) Failed to connect to localhost port {port} after 0 ms: Couldn't connect to server\n"));
            7
        }
    }
}
