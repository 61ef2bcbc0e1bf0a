//! Package managers in the shell emulator (apt, apk, dnf, pip, npm): installs recorded per
//! guest; well-known packages add their service and port.

use super::*;

impl Shell<'_> {
    pub(super) fn pkg(&mut self, mgr: &str, args: &[String], out: &mut Vec<u8>) -> u32 {
        // Positional words, without options and the values of those taking one (apt's
        // `-o Key=Value`, `-c file`, `-t release`).
        let mut pos: Vec<&String> = Vec::new();
        let mut skip_value = false;
        for a in args {
            if skip_value {
                skip_value = false;
            } else if mgr == "apt" && matches!(a.as_str(), "-o" | "-c" | "-t") {
                skip_value = true;
            } else if !a.starts_with('-') {
                pos.push(a);
            }
        }
        let Some(sub) = pos.first() else {
            return 0;
        };
        let install = matches!(sub.as_str(), "install" | "add");
        if mgr == "apt" && sub.as_str() == "update" {
            out.extend(b"Hit:1 http://deb.debian.org/debian bookworm InRelease\nHit:2 http://deb.debian.org/debian bookworm-updates InRelease\nHit:3 http://security.debian.org bookworm-security InRelease\nReading package lists...\n");
            return 0;
        }
        if !install {
            return 0;
        }
        let pkgs: Vec<String> = pos[1..].iter().map(|p| p.to_string()).collect();
        for p in &pkgs {
            if p.starts_with("no-such-") {
                return match mgr {
                    "apt" => {
                        out.extend(b"Reading package lists...\nBuilding dependency tree...\n");
                        self.e(format!("E: Unable to locate package {p}\n"));
                        100
                    }
                    "pip" => {
                        self.e(format!("ERROR: Could not find a version that satisfies the requirement {p}\nERROR: No matching distribution found for {p}\n"));
                        1
                    }
                    "npm" => {
                        self.e(format!("npm ERR! 404 Not Found - GET https://registry.npmjs.org/{p} - Not found\n"));
                        1
                    }
                    _ => {
                        self.e(format!(
                            "No match for argument: {p}\nError: Unable to find a match: {p}\n"
                        ));
                        1
                    }
                };
            }
        }
        if mgr == "apt" {
            out.extend(b"Reading package lists...\nBuilding dependency tree...\nReading state information...\nThe following NEW packages will be installed:\n");
            out.extend(format!("  {}\n", pkgs.join(" ")).bytes());
            out.extend(
                format!(
                    "0 upgraded, {} newly installed, 0 to remove and 0 not upgraded.\n",
                    pkgs.len()
                )
                .bytes(),
            );
        }
        for p in &pkgs {
            let name = p.split(['=', '@']).next().unwrap_or(p).to_string();
            let name = if mgr == "npm" && p.starts_with('@') {
                p.clone()
            } else {
                name
            };
            self.g.packages.insert(format!("{mgr}:{name}"));
            if mgr == "apt" {
                out.extend(format!("Setting up {name} ...\n").bytes());
            } else {
                out.extend(format!("Installed {name}\n").bytes());
            }
            if let Some((_, svc, port, process, desc)) = KNOWN_SERVICES.iter().find(|k| k.0 == name)
                && !self.g.services.contains_key(*svc)
            {
                let pid = 400 + (self.g.services.len() as u32) * 53;
                self.g.services.insert(
                    svc.to_string(),
                    GService {
                        name: svc.to_string(),
                        description: desc.to_string(),
                        active: mgr != "pip" && mgr != "npm",
                        enabled: true,
                        port: *port,
                        process: process.to_string(),
                        pid,
                    },
                );
                self.g.files.insert(
                    format!("/lib/systemd/system/{svc}.service"),
                    GFile {
                        data: format!("[Unit]\nDescription={desc}\n\n[Service]\nExecStart=/usr/sbin/{process}\n").into_bytes(),
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                    },
                );
            }
        }
        0
    }
}
