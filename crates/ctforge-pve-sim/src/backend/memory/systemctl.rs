//! `systemctl` and unit files in the shell emulator: start/stop/enable, `show` batches,
//! `list-units`, custom units written by scripts.

use super::*;

impl Shell<'_> {
    pub(super) fn service_from_unit_file(&mut self, name: &str) -> bool {
        for dir in [
            "/etc/systemd/system",
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
        ] {
            let path = format!("{dir}/{name}.service");
            if let Some(f) = self.g.files.get(&path) {
                let text = String::from_utf8_lossy(&f.data).into_owned();
                let desc = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Description="))
                    .unwrap_or(name)
                    .to_string();
                let port = text
                    .lines()
                    .filter(|l| l.starts_with("ExecStart=") || l.starts_with("Environment="))
                    .find_map(port_in);
                let process = text
                    .lines()
                    .find_map(|l| l.strip_prefix("ExecStart="))
                    .and_then(|l| l.split_whitespace().next())
                    .map(|b| {
                        b.trim_start_matches(['-', '@', '+', '!'])
                            .rsplit('/')
                            .next()
                            .unwrap_or(name)
                            .to_string()
                    })
                    .unwrap_or_else(|| name.to_string());
                let pid = 300 + (self.g.services.len() as u32) * 43;
                self.g.services.insert(
                    name.to_string(),
                    GService {
                        name: name.to_string(),
                        description: desc,
                        active: false,
                        enabled: false,
                        port,
                        process,
                        pid,
                    },
                );
                return true;
            }
        }
        false
    }

    pub(super) fn systemctl(&mut self, args: &[String], out: &mut Vec<u8>) -> u32 {
        let now_flag = args.iter().any(|a| a == "--now");
        let no_block = args.iter().any(|a| a == "--no-block");
        let wait = args.iter().any(|a| a == "--wait");
        let value_only = args.iter().any(|a| a == "--value");
        let mut props: Vec<String> = Vec::new();
        let mut pos: Vec<String> = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "-p" || a == "--property" {
                if let Some(p) = it.next() {
                    props.extend(p.split(',').map(str::to_string));
                }
            } else if let Some(p) = a.strip_prefix("--property=") {
                props.extend(p.split(',').map(str::to_string));
            } else if let Some(p) = a.strip_prefix("-p").filter(|p| !p.is_empty()) {
                props.extend(p.split(',').map(str::to_string));
            } else if !a.starts_with('-') {
                pos.push(a.clone());
            }
        }
        let Some(sub) = pos.first().cloned() else {
            return 0;
        };
        let units: Vec<String> = pos[1..]
            .iter()
            .map(|u| u.trim_end_matches(".service").to_string())
            .collect();
        match sub.as_str() {
            "start" | "restart" | "reload" | "try-restart" | "reload-or-restart" => {
                for u in &units {
                    if !self.g.services.contains_key(u) && !self.service_from_unit_file(u) {
                        self.e(format!(
                            "Failed to {sub} {u}.service: Unit {u}.service not found.\n"
                        ));
                        return 5;
                    }
                    if never_starts(self.g, u) {
                        self.g.activating.insert(u.clone());
                        if !no_block {
                            self.block(format!("systemctl {sub} {u}.service"));
                            return 0;
                        }
                        continue;
                    }
                    if let Some(s) = self.g.services.get_mut(u) {
                        s.active = true;
                    }
                }
                0
            }
            "is-system-running" => {
                if self.g.booting && !self.g.activating.is_empty() {
                    if wait {
                        self.block("systemctl is-system-running --wait".into());
                        return 0;
                    }
                    out.extend(b"starting\n");
                    1
                } else {
                    out.extend(b"running\n");
                    0
                }
            }
            "list-jobs" => {
                let legend = !args.iter().any(|a| a == "--no-legend");
                if self.g.activating.is_empty() {
                    if legend {
                        out.extend(b"No jobs running.\n");
                    }
                    return 0;
                }
                if legend {
                    out.extend(b"JOB UNIT TYPE STATE\n");
                }
                for (i, u) in self.g.activating.iter().enumerate() {
                    out.extend(format!("{} {u}.service start running\n", 100 + i).bytes());
                }
                if legend {
                    out.extend(format!("\n{} jobs listed.\n", self.g.activating.len()).bytes());
                }
                0
            }
            "stop" => {
                for u in &units {
                    match self.g.services.get_mut(u) {
                        Some(s) => s.active = false,
                        None => {
                            self.e(format!(
                                "Failed to stop {u}.service: Unit {u}.service not loaded.\n"
                            ));
                            return 5;
                        }
                    }
                }
                0
            }
            "enable" | "disable" => {
                for u in &units {
                    if !self.g.services.contains_key(u) && !self.service_from_unit_file(u) {
                        self.e(format!(
                            "Failed to {sub} unit: Unit file {u}.service does not exist.\n"
                        ));
                        return 1;
                    }
                    if let Some(s) = self.g.services.get_mut(u) {
                        s.enabled = sub == "enable";
                        if now_flag {
                            s.active = sub == "enable";
                        }
                    }
                    if sub == "enable" {
                        self.e(format!("Created symlink /etc/systemd/system/multi-user.target.wants/{u}.service → /etc/systemd/system/{u}.service.\n"));
                    }
                }
                0
            }
            "is-active" => {
                let mut all = true;
                for u in &units {
                    let a = self.g.services.get(u).map(|s| s.active).unwrap_or(false);
                    all &= a;
                    let state = if a {
                        "active\n"
                    } else if self.g.activating.contains(u) {
                        "activating\n"
                    } else {
                        "inactive\n"
                    };
                    out.extend(state.bytes());
                }
                if all { 0 } else { 3 }
            }
            "is-enabled" => {
                let mut all = true;
                for u in &units {
                    match self.g.services.get(u) {
                        Some(s) => {
                            all &= s.enabled;
                            out.extend(if s.enabled { "enabled\n" } else { "disabled\n" }.bytes());
                        }
                        None => {
                            all = false;
                            self.e(format!("Failed to get unit file state for {u}.service: No such file or directory\n"));
                        }
                    }
                }
                if all { 0 } else { 1 }
            }
            "status" => {
                let mut code = 0;
                for u in &units {
                    match self.g.services.get(u) {
                        Some(s) => {
                            let en = if s.enabled { "enabled" } else { "disabled" };
                            let act = if s.active {
                                "active (running)"
                            } else {
                                "inactive (dead)"
                            };
                            out.extend(format!("● {u}.service - {}\n     Loaded: loaded (/lib/systemd/system/{u}.service; {en}; preset: enabled)\n     Active: {act}\n", s.description).bytes());
                            if s.active {
                                out.extend(
                                    format!("   Main PID: {} ({})\n", s.pid, s.process).bytes(),
                                );
                            } else {
                                code = 3;
                            }
                        }
                        None => {
                            self.e(format!("Unit {u}.service could not be found.\n"));
                            code = 4;
                        }
                    }
                }
                code
            }
            "show" => {
                let props = if props.is_empty() {
                    [
                        "Id",
                        "Names",
                        "Description",
                        "LoadState",
                        "ActiveState",
                        "SubState",
                        "UnitFileState",
                        "MainPID",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
                } else {
                    props
                };
                let mut blocks = Vec::new();
                for u in &units {
                    let s = self.g.services.get(u);
                    let mut b = String::new();
                    for p in &props {
                        let v = match (p.as_str(), s) {
                            ("Id" | "Names", _) => format!("{u}.service"),
                            ("Description", Some(s)) => s.description.clone(),
                            ("Description", None) => format!("{u}.service"),
                            ("LoadState", Some(_)) => "loaded".into(),
                            ("LoadState", None) => "not-found".into(),
                            ("ActiveState", Some(s)) => {
                                if s.active { "active" } else { "inactive" }.into()
                            }
                            ("ActiveState", None) => "inactive".into(),
                            ("SubState", Some(s)) => {
                                if s.active { "running" } else { "dead" }.into()
                            }
                            ("SubState", None) => "dead".into(),
                            ("UnitFileState", Some(s)) => {
                                if s.enabled { "enabled" } else { "disabled" }.into()
                            }
                            ("UnitFileState", None) => String::new(),
                            ("MainPID", Some(s)) => {
                                if s.active {
                                    s.pid.to_string()
                                } else {
                                    "0".into()
                                }
                            }
                            ("MainPID", None) => "0".into(),
                            ("Result", _) => "success".into(),
                            _ => String::new(),
                        };
                        if value_only {
                            b.push_str(&format!("{v}\n"));
                        } else {
                            b.push_str(&format!("{p}={v}\n"));
                        }
                    }
                    blocks.push(b);
                }
                out.extend(blocks.join("\n").bytes());
                0
            }
            "list-units" => {
                let all = args.iter().any(|a| a == "--all" || a == "-a");
                let legend = !args.iter().any(|a| a == "--no-legend");
                if legend {
                    out.extend(b"  UNIT LOAD ACTIVE SUB DESCRIPTION\n");
                }
                let mut n = 0;
                for s in self.g.services.values() {
                    if !s.active && !all {
                        continue;
                    }
                    n += 1;
                    let (a, sub) = if s.active {
                        ("active", "running")
                    } else {
                        ("inactive", "dead")
                    };
                    out.extend(
                        format!("{}.service loaded {a} {sub} {}\n", s.name, s.description).bytes(),
                    );
                }
                if legend {
                    out.extend(format!("\n{n} loaded units listed.\n").bytes());
                }
                0
            }
            "list-unit-files" => {
                let legend = !args.iter().any(|a| a == "--no-legend");
                if legend {
                    out.extend(b"UNIT FILE STATE PRESET\n");
                }
                for s in self.g.services.values() {
                    let st = if s.enabled { "enabled" } else { "disabled" };
                    out.extend(format!("{}.service {st} enabled\n", s.name).bytes());
                }
                0
            }
            _ => 0,
        }
    }
}
