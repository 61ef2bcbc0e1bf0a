//! The shell emulator's user accounts: `/etc/passwd` as Debian ships it, `useradd` adding to it
//! (with `--create-home`), `id USER` and `getent passwd USER` answering from it, `install -d`
//! (directories a script prepares for a user), and the script runtime's
//! `detect_container_user`, which scripts call to learn the desktop/service user.

use super::*;

/// A fresh Debian guest's accounts (the system users scripts may look up).
pub(super) const BASE_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
bin:x:2:2:bin:/bin:/usr/sbin/nologin\n\
sys:x:3:3:sys:/dev:/usr/sbin/nologin\n\
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

/// One `/etc/passwd` line's fields.
struct Account {
    name: String,
    uid: u32,
    shell: String,
    line: String,
}

impl Shell<'_> {
    fn accounts(&self) -> Vec<Account> {
        let Some(file) = self.g.files.get("/etc/passwd") else {
            return Vec::new();
        };
        String::from_utf8_lossy(&file.data)
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                let [name, _, uid, _, _, _, shell] = f[..] else {
                    return None;
                };
                Some(Account {
                    name: name.to_string(),
                    uid: uid.parse().ok()?,
                    shell: shell.to_string(),
                    line: line.to_string(),
                })
            })
            .collect()
    }

    fn account(&self, name: &str) -> Option<Account> {
        self.accounts().into_iter().find(|a| a.name == name)
    }

    /// `useradd [-m|--create-home] [-s|--shell SHELL] [-d|--home-dir DIR] [-G|--groups G] NAME`.
    pub(super) fn useradd(&mut self, args: &[String]) -> u32 {
        let mut create_home = false;
        let mut shell = "/bin/sh".to_string();
        let mut home = None;
        let mut name = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-m" | "--create-home" => create_home = true,
                "-M" | "--no-create-home" | "-r" | "--system" | "-U" | "--user-group" => {}
                "-s" | "--shell" => shell = it.next().cloned().unwrap_or(shell),
                "-d" | "--home-dir" => home = it.next().cloned(),
                "-G" | "--groups" | "-g" | "--gid" | "-c" | "--comment" | "-u" | "--uid" | "-p"
                | "--password" => {
                    it.next();
                }
                other if other.starts_with("--shell=") => shell = other[8..].to_string(),
                other if other.starts_with("--home-dir=") => home = Some(other[11..].to_string()),
                other if other.starts_with('-') => {}
                other => name = Some(other.to_string()),
            }
        }
        let Some(name) = name else {
            self.e("Usage: useradd [options] LOGIN\n".into());
            return 2;
        };
        if self.account(&name).is_some() {
            self.e(format!("useradd: user '{name}' already exists\n"));
            return 9;
        }
        let uid = self
            .accounts()
            .iter()
            .map(|a| a.uid)
            .filter(|u| (1000..60000).contains(u))
            .max()
            .map_or(1000, |u| u + 1);
        let home = home.unwrap_or_else(|| format!("/home/{name}"));
        let line = format!("{name}:x:{uid}:{uid}::{home}:{shell}\n");
        if !self.g.files.contains_key("/etc/passwd") {
            self.write("/etc/passwd", BASE_PASSWD.as_bytes(), false);
        }
        self.write("/etc/passwd", line.as_bytes(), true);
        if create_home {
            self.make_dirs(&home);
        }
        0
    }

    fn make_dirs(&mut self, path: &str) {
        let mut q = abs(path);
        while q != "/" {
            self.g.dirs.insert(q.clone());
            q = parent_dir(&q);
        }
    }

    /// `id [-u] [USER]`: root, or the named account; "no such user" otherwise.
    pub(super) fn id(&mut self, pos: &[String], flags: &str, out: &mut Vec<u8>) -> u32 {
        let (name, uid) = match pos.first() {
            None => ("root".to_string(), 0),
            Some(user) => match self.account(user) {
                Some(a) => (a.name, a.uid),
                None => {
                    self.e(format!("id: '{user}': no such user\n"));
                    return 1;
                }
            },
        };
        if flags.contains('u') && flags.contains('n') {
            out.extend(format!("{name}\n").bytes());
        } else if flags.contains('u') {
            out.extend(format!("{uid}\n").bytes());
        } else {
            out.extend(
                format!("uid={uid}({name}) gid={uid}({name}) groups={uid}({name})\n").bytes(),
            );
        }
        0
    }

    /// `getent passwd [NAME…]`: the matching lines, exit 2 when a name is unknown.
    pub(super) fn getent(&mut self, pos: &[String], out: &mut Vec<u8>) -> u32 {
        if pos.first().map(String::as_str) != Some("passwd") {
            return 2;
        }
        let accounts = self.accounts();
        if pos.len() == 1 {
            for a in &accounts {
                out.extend(format!("{}\n", a.line).bytes());
            }
            return 0;
        }
        let mut code = 0;
        for name in &pos[1..] {
            match accounts.iter().find(|a| &a.name == name) {
                Some(a) => out.extend(format!("{}\n", a.line).bytes()),
                None => code = 2,
            }
        }
        code
    }

    /// `install -d [-m MODE] [-o USER] [-g GROUP] DIR…` creates the directories; the file form
    /// (`install [-m MODE] SRC DEST`) copies.
    pub(super) fn install(&mut self, args: &[String]) -> u32 {
        let mut dirs = false;
        let mut mode = None;
        let mut operands = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-d" | "--directory" => dirs = true,
                "-m" | "--mode" => mode = it.next().and_then(|m| u32::from_str_radix(m, 8).ok()),
                "-o" | "--owner" | "-g" | "--group" | "-t" | "--target-directory" => {
                    it.next();
                }
                other if other.starts_with('-') => {
                    if other.len() > 1 && !other.starts_with("--") && other.contains('d') {
                        dirs = true;
                    }
                }
                other => operands.push(other.to_string()),
            }
        }
        if dirs {
            for d in &operands {
                self.make_dirs(d);
            }
            return 0;
        }
        let [src, dest] = &operands[..] else {
            self.e("install: missing destination file operand\n".into());
            return 1;
        };
        let Some(file) = self.g.files.get(&abs(src)).map(|f| f.data.clone()) else {
            self.e(format!(
                "install: cannot stat '{src}': No such file or directory\n"
            ));
            return 1;
        };
        let dest = if self.g.dirs.contains(&abs(dest)) {
            format!("{}/{}", abs(dest), src.rsplit('/').next().unwrap_or(src))
        } else {
            abs(dest)
        };
        if !self.write(&dest, &file, false) {
            self.e(format!(
                "install: cannot create regular file '{dest}': No such file or directory\n"
            ));
            return 1;
        }
        if let (Some(m), Some(f)) = (mode, self.g.files.get_mut(&dest)) {
            f.mode = m;
        }
        0
    }

    /// The runtime's `detect_container_user`: `CONFIG_CONTAINER_USER`, else the first login
    /// account with a UID from 1000, else the first home directory, else `coder`; exported.
    pub(super) fn detect_container_user(&mut self) -> u32 {
        let configured = self
            .vars
            .get("CONFIG_CONTAINER_USER")
            .filter(|u| !u.is_empty())
            .cloned();
        let user = configured
            .or_else(|| {
                self.accounts()
                    .into_iter()
                    .find(|a| {
                        (1000..=65533).contains(&a.uid)
                            && !a.shell.is_empty()
                            && !a.shell.ends_with("nologin")
                            && !a.shell.ends_with("false")
                    })
                    .map(|a| a.name)
            })
            .or_else(|| {
                self.g
                    .dirs
                    .iter()
                    .find_map(|d| d.strip_prefix("/home/").filter(|n| !n.contains('/')))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "coder".to_string());
        self.vars.insert("CONTAINER_USER".into(), user);
        self.exported.insert("CONTAINER_USER".into());
        0
    }
}
