//! The in-memory backend: every CT is a small scripted guest with files, a
//! systemd-like service table and installed packages. Commands are recorded
//! and answered by a tiny shell emulator:
//!
//! * `bash -c '…'` / `sh -c` / `bash FILE` / `bash -s` (script on stdin): the
//!   script is split on `;`, `&&`, `||`, newlines and `|`, with heredocs
//!   (`<<EOF`) and redirections (`>`, `>>`, `<`, `2>…`) honoured. The language of `sh`
//!   scripts (`script.rs`): variables (`VAR=value`, `export`, `$NAME`, `${NAME:-word}`,
//!   `$(command)`), `if … then … elif … else … fi`, `set -e` with POSIX's exceptions, child
//!   shells (`sh FILE`, `su USER -c`, `runuser`) that see only exported variables.
//! * Files: `cat`, `echo`, `printf`, `tee`, `mkdir -p`, `test`/`[`, `cp`, `mv`,
//!   `rm`, `touch`, `chmod`, `chown`, `ls`, `ln -s`, `head`, `tail`, `wc -l`,
//!   `grep`, `base64 [-d]`, `sha256sum`, `tr`, `head -c` of `/dev/urandom`.
//! * Services: `systemctl start|stop|restart|enable|disable|is-active|is-enabled|
//!   status|show|list-units|list-unit-files|daemon-reload`, `service`,
//!   `ss -tlnp`, `curl` against a local port.
//! * `tar -C DIR -cf - .` (an archive of a directory to stdout) and `$?` (the
//!   status of the previous command) for ctforge's batched monitoring command.
//! * Commands can be made missing per guest ([`MemoryBackend::set_missing_commands`]):
//!   they then fail like an uninstalled binary (`sh: 1: ss: not found`, 127).
//! * Packages: `apt-get|apt install`, `apk add`, `dnf|yum install`, `pip install`,
//!   `npm install -g`; well-known packages add a service (nginx → 80,
//!   postgresql → 5432, redis-server → 6379, …). A package whose name starts
//!   with `no-such-` fails with `E: Unable to locate package`.
//! * Commands that never end: `sleep infinity`, `systemctl start` of a unit that never
//!   finishes starting (an `ExecStart=`/`ExecStartPre=` line running `sleep infinity`: the
//!   unit stays `activating`, `systemctl list-jobs` shows its job), and
//!   `systemctl is-system-running --wait` while such a unit holds up the boot. A command
//!   that never ends ends the emulated script there: it shows in `ps`/`pgrep -f` and its
//!   exec waits forever, unless it runs under `timeout [-k K] SECS …`, which kills it after
//!   SECS real seconds (exit 124, the process gone). `sleep N` returns at once.
//! * Anything else succeeds with empty output (and is recorded).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::mpsc::UnboundedSender;

use super::{CreateSpec, CtBackend, ExecChunk, ExecFuture, PushOptions};
use crate::scenario::ServiceSpec;

mod accounts;
mod coreutils;
mod packages;
mod parse;
mod script;
mod shell;
mod systemctl;
mod tools;

pub(crate) use self::parse::*;
pub(crate) use self::shell::*;

/// A file in a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GFile {
    /// Content.
    pub data: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
}

/// A systemd service in a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GService {
    /// Unit name without `.service`.
    pub name: String,
    /// Description.
    pub description: String,
    /// Active (running).
    pub active: bool,
    /// Enabled.
    pub enabled: bool,
    /// Listening TCP port.
    pub port: Option<u16>,
    /// Process name shown by `ss`.
    pub process: String,
    /// Main PID.
    pub pid: u32,
}

/// Snapshot-able guest content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestData {
    /// Hostname.
    pub hostname: String,
    /// Files by absolute path.
    pub files: BTreeMap<String, GFile>,
    /// Directories.
    pub dirs: BTreeSet<String>,
    /// Services by name.
    pub services: BTreeMap<String, GService>,
    /// Installed packages (`manager:name`).
    pub packages: BTreeSet<String>,
    /// Commands that are not installed (they fail with 127, `not found`).
    #[serde(default)]
    pub missing: BTreeSet<String>,
    /// Units that were started but never finish starting (`activating`).
    #[serde(default)]
    pub activating: BTreeSet<String>,
    /// Whether the boot still waits for an activating unit (`is-system-running`: `starting`).
    #[serde(default)]
    pub booting: bool,
    /// Processes of commands that have not ended, pid → command line.
    #[serde(default)]
    pub procs: BTreeMap<u32, String>,
}

/// One guest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Guest {
    /// Current content.
    pub data: GuestData,
    /// Every command run, in order (the argv joined with spaces).
    pub commands: Vec<String>,
    /// Snapshots of the content.
    pub snapshots: BTreeMap<String, GuestData>,
    /// Root password set at create time.
    pub root_password: Option<String>,
}

/// Most stdout bytes sent in one chunk (a pipe's block buffer).
const STDOUT_CHUNK: usize = 8 * 1024;

/// The in-memory backend.
#[derive(Default)]
pub struct MemoryBackend {
    guests: Arc<Mutex<HashMap<u32, Guest>>>,
}

/// Stdout, stderr, status, and the command that blocked with the pids it runs as.
type RunOutcome = (Vec<u8>, Vec<u8>, u32, Option<(Blocked, Vec<u32>)>);

/// A command that does not end by itself (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Blocked {
    /// The command that blocks, as written.
    what: String,
    /// The `timeout` it runs under, if any.
    limit: Option<std::time::Duration>,
}

const KNOWN_SERVICES: &[(&str, &str, Option<u16>, &str, &str)] = &[
    (
        "nginx",
        "nginx",
        Some(80),
        "nginx",
        "A high performance web server and a reverse proxy server",
    ),
    (
        "nginx-light",
        "nginx",
        Some(80),
        "nginx",
        "A high performance web server and a reverse proxy server",
    ),
    (
        "nginx-full",
        "nginx",
        Some(80),
        "nginx",
        "A high performance web server and a reverse proxy server",
    ),
    (
        "apache2",
        "apache2",
        Some(80),
        "apache2",
        "The Apache HTTP Server",
    ),
    ("caddy", "caddy", Some(80), "caddy", "Caddy"),
    (
        "lightdm",
        "lightdm",
        None,
        "lightdm",
        "Light Display Manager",
    ),
    (
        "postgresql",
        "postgresql",
        Some(5432),
        "postgres",
        "PostgreSQL RDBMS",
    ),
    (
        "redis-server",
        "redis-server",
        Some(6379),
        "redis-server",
        "Advanced key-value store",
    ),
    (
        "redis",
        "redis-server",
        Some(6379),
        "redis-server",
        "Advanced key-value store",
    ),
    (
        "mariadb-server",
        "mariadb",
        Some(3306),
        "mariadbd",
        "MariaDB database server",
    ),
    (
        "mysql-server",
        "mysql",
        Some(3306),
        "mysqld",
        "MySQL Community Server",
    ),
    (
        "openssh-server",
        "ssh",
        Some(22),
        "sshd",
        "OpenBSD Secure Shell server",
    ),
    (
        "grafana",
        "grafana-server",
        Some(3000),
        "grafana",
        "Grafana instance",
    ),
    (
        "prometheus",
        "prometheus",
        Some(9090),
        "prometheus",
        "Monitoring system and time series database",
    ),
    (
        "prometheus-node-exporter",
        "prometheus-node-exporter",
        Some(9100),
        "prometheus-node",
        "Prometheus exporter for machine metrics",
    ),
    (
        "memcached",
        "memcached",
        Some(11211),
        "memcached",
        "memcached daemon",
    ),
    (
        "rabbitmq-server",
        "rabbitmq-server",
        Some(5672),
        "beam.smp",
        "RabbitMQ Messaging Server",
    ),
    (
        "mosquitto",
        "mosquitto",
        Some(1883),
        "mosquitto",
        "Mosquitto MQTT Broker",
    ),
    (
        "docker.io",
        "docker",
        None,
        "dockerd",
        "Docker Application Container Engine",
    ),
    (
        "cron",
        "cron",
        None,
        "cron",
        "Regular background program processing daemon",
    ),
];

fn base_guest(hostname: &str) -> GuestData {
    let mut g = GuestData {
        hostname: hostname.to_string(),
        ..GuestData::default()
    };
    for d in [
        "/",
        "/etc",
        "/etc/systemd",
        "/etc/systemd/system",
        "/root",
        "/tmp",
        "/var",
        "/var/log",
        "/var/lib",
        "/usr",
        "/usr/bin",
        "/usr/local",
        "/usr/local/bin",
        "/opt",
        "/srv",
        "/home",
        "/run",
        "/lib",
        "/lib/systemd",
        "/lib/systemd/system",
        // apt's directories, as on every Debian (repositories are added there).
        "/etc/apt",
        "/etc/apt/sources.list.d",
        "/etc/apt/trusted.gpg.d",
        "/usr/share/keyrings",
    ] {
        g.dirs.insert(d.to_string());
    }
    let file = |s: &str| GFile {
        data: s.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    g.files
        .insert("/etc/hostname".into(), file(&format!("{hostname}\n")));
    g.files.insert(
        "/etc/hosts".into(),
        file(&format!("127.0.0.1 localhost\n127.0.1.1 {hostname}\n")),
    );
    g.files.insert(
        "/etc/os-release".into(),
        file("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"),
    );
    g.files.insert("/etc/debian_version".into(), file("12.7\n"));
    g.files
        .insert("/etc/passwd".into(), file(accounts::BASE_PASSWD));
    add_service(
        &mut g,
        "ssh",
        "OpenBSD Secure Shell server",
        Some(22),
        "sshd",
    );
    add_service(
        &mut g,
        "cron",
        "Regular background program processing daemon",
        None,
        "cron",
    );
    g
}

fn add_service(g: &mut GuestData, name: &str, desc: &str, port: Option<u16>, process: &str) {
    let pid = 100 + (g.services.len() as u32) * 37;
    g.services.insert(
        name.to_string(),
        GService {
            name: name.to_string(),
            description: desc.to_string(),
            active: true,
            enabled: true,
            port,
            process: process.to_string(),
            pid,
        },
    );
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_guest<R>(&self, vmid: u32, f: impl FnOnce(&mut Guest) -> R) -> Option<R> {
        let mut m = match self.guests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.get_mut(&vmid).map(f)
    }

    /// A copy of a guest (for tests and the admin endpoint).
    pub fn guest(&self, vmid: u32) -> Option<Guest> {
        self.with_guest(vmid, |g| g.clone())
    }

    /// The commands recorded for a guest.
    pub fn commands(&self, vmid: u32) -> Vec<String> {
        self.with_guest(vmid, |g| g.commands.clone())
            .unwrap_or_default()
    }

    /// A file's content.
    pub fn file(&self, vmid: u32, path: &str) -> Option<Vec<u8>> {
        self.with_guest(vmid, |g| g.data.files.get(path).map(|f| f.data.clone()))
            .flatten()
    }

    /// Makes `commands` missing in a guest (replacing the previous set): running one fails
    /// with `sh: 1: NAME: not found` and status 127, as an uninstalled binary does. Returns
    /// false when the guest does not exist.
    pub fn set_missing_commands(&self, vmid: u32, commands: &[String]) -> bool {
        self.with_guest(vmid, |g| {
            g.data.missing = commands.iter().cloned().collect();
        })
        .is_some()
    }

    /// Run a command synchronously (what `exec` does), returning stdout, stderr, status. A
    /// command that never ends stops the script where it blocks (status 0 here).
    pub fn run(&self, vmid: u32, argv: &[String], stdin: &[u8]) -> (Vec<u8>, Vec<u8>, u32) {
        let (o, e, code, _) = self.run_full(vmid, argv, stdin, false);
        (o, e, code)
    }

    /// [`MemoryBackend::run`], plus the command that blocked, registered as a process when
    /// `register` (an exec that will wait for it).
    fn run_full(&self, vmid: u32, argv: &[String], stdin: &[u8], register: bool) -> RunOutcome {
        self.with_guest(vmid, |g| {
            g.commands.push(argv.join(" "));
            let mut sh = Shell::new(&mut g.data);
            let code = sh.run_argv(argv, stdin);
            let (out, err, blocked) = (sh.out, sh.err, sh.blocked);
            let blocked = blocked.filter(|_| register).map(|b| {
                let mut pids = Vec::new();
                for line in [argv.join(" "), b.what.clone()] {
                    let pid = g.data.procs.keys().next_back().map_or(1000, |p| p + 1);
                    g.data.procs.insert(pid, line);
                    pids.push(pid);
                }
                (b, pids)
            });
            (out, err, code, blocked)
        })
        .unwrap_or_else(|| (Vec::new(), b"no such container\n".to_vec(), 255, None))
    }
}

impl CtBackend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn create(&self, vmid: u32, spec: &CreateSpec) -> Result<Vec<String>, String> {
        let mut data = base_guest(&spec.hostname);
        if let Some(keys) = &spec.ssh_public_keys {
            data.dirs.insert("/root/.ssh".into());
            data.files.insert(
                "/root/.ssh/authorized_keys".into(),
                GFile {
                    data: format!("{}\n", keys.trim_end()).into_bytes(),
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                },
            );
        }
        for s in data.services.values_mut() {
            s.active = false;
        }
        let guest = Guest {
            data,
            commands: Vec::new(),
            snapshots: BTreeMap::new(),
            root_password: spec.password.clone(),
        };
        let mut m = match self.guests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.insert(vmid, guest);
        Ok(Vec::new())
    }

    fn start(&self, vmid: u32) -> Result<(), String> {
        self.with_guest(vmid, |g| {
            let stuck: Vec<String> = g
                .data
                .services
                .keys()
                .filter(|n| never_starts(&g.data, n))
                .cloned()
                .collect();
            for s in g.data.services.values_mut() {
                s.active = s.enabled && !stuck.contains(&s.name);
            }
            for n in stuck {
                if g.data.services.get(&n).is_some_and(|s| s.enabled) {
                    g.data.activating.insert(n);
                    g.data.booting = true;
                }
            }
        })
        .ok_or_else(|| format!("guest {vmid} missing"))
    }

    fn stop(&self, vmid: u32) -> Result<(), String> {
        self.with_guest(vmid, |g| {
            for s in g.data.services.values_mut() {
                s.active = false;
            }
            g.data.activating.clear();
            g.data.booting = false;
            g.data.procs.clear();
        })
        .ok_or_else(|| format!("guest {vmid} missing"))
    }

    fn destroy(&self, vmid: u32) -> Result<(), String> {
        let mut m = match self.guests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.remove(&vmid);
        Ok(())
    }

    fn exec(
        &self,
        vmid: u32,
        argv: Vec<String>,
        stdin: Vec<u8>,
        out: UnboundedSender<ExecChunk>,
    ) -> ExecFuture {
        let (o, e, code, blocked) = self.run_full(vmid, &argv, &stdin, true);
        let guests = self.guests.clone();
        Box::pin(async move {
            // Stream stdout in whole lines of up to 8 KiB per chunk (a process writing into a
            // pipe is block-buffered; a million-line output is not a million SSH packets), then
            // stderr.
            let mut chunk = Vec::new();
            for line in o.split_inclusive(|b| *b == b'\n') {
                if !chunk.is_empty() && chunk.len() + line.len() > STDOUT_CHUNK {
                    let _ = out.send(ExecChunk::Stdout(std::mem::take(&mut chunk)));
                }
                chunk.extend_from_slice(line);
            }
            if !chunk.is_empty() {
                let _ = out.send(ExecChunk::Stdout(chunk));
            }
            if !e.is_empty() {
                let _ = out.send(ExecChunk::Stderr(e));
            }
            let Some((blocked, pids)) = blocked else {
                return code;
            };
            let Some(limit) = blocked.limit else {
                return std::future::pending::<u32>().await;
            };
            // `timeout` kills the command (and its children) when the limit passes.
            tokio::time::sleep(limit).await;
            let mut m = match guests.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            if let Some(g) = m.get_mut(&vmid) {
                for pid in pids {
                    g.data.procs.remove(&pid);
                }
            }
            124
        })
    }

    fn needs_stdin(&self, argv: &[String]) -> bool {
        argv_reads_stdin(argv)
    }

    fn push(&self, vmid: u32, path: &str, data: &[u8], opts: &PushOptions) -> Result<(), String> {
        self.with_guest(vmid, |g| {
            g.commands.push(format!("<push> {path}"));
            let parent = parent_dir(path);
            if !g.data.dirs.contains(&parent) {
                return Err(format!(
                    "failed to open {path} for writing: No such file or directory"
                ));
            }
            if g.data.dirs.contains(path) {
                return Err(format!("failed to open {path} for writing: Is a directory"));
            }
            g.data.files.insert(
                path.to_string(),
                GFile {
                    data: data.to_vec(),
                    mode: opts.perms.unwrap_or(0o644),
                    uid: opts.user.as_deref().map(id_of).unwrap_or(0),
                    gid: opts.group.as_deref().map(id_of).unwrap_or(0),
                },
            );
            Ok(())
        })
        .unwrap_or_else(|| Err(format!("guest {vmid} missing")))
    }

    fn pull(&self, vmid: u32, path: &str) -> Result<Vec<u8>, String> {
        self.file(vmid, path)
            .ok_or_else(|| format!("failed to open {path}: No such file or directory"))
    }

    fn snapshot(&self, vmid: u32, name: &str) -> Result<(), String> {
        self.with_guest(vmid, |g| {
            let d = g.data.clone();
            g.snapshots.insert(name.to_string(), d);
        })
        .ok_or_else(|| format!("guest {vmid} missing"))
    }

    fn rollback(&self, vmid: u32, name: &str) -> Result<(), String> {
        self.with_guest(vmid, |g| match g.snapshots.get(name) {
            Some(d) => {
                g.data = d.clone();
                Ok(())
            }
            None => Err(format!("snapshot '{name}' does not exist")),
        })
        .unwrap_or_else(|| Err(format!("guest {vmid} missing")))
    }

    fn clone_guest(&self, vmid: u32, newid: u32, spec: &CreateSpec) -> Result<Vec<String>, String> {
        // From a snapshot, the snapshot's files (Proxmox's `snapname`); else the current ones.
        let mut data = self
            .with_guest(vmid, |g| match &spec.snapname {
                Some(name) => g
                    .snapshots
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("snapshot '{name}' does not exist")),
                None => Ok(g.data.clone()),
            })
            .ok_or_else(|| format!("guest {vmid} missing"))??;
        data.hostname = spec.hostname.clone();
        for s in data.services.values_mut() {
            s.active = false;
        }
        let guest = Guest {
            data,
            commands: Vec::new(),
            snapshots: BTreeMap::new(),
            root_password: None,
        };
        let mut m = match self.guests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.insert(newid, guest);
        Ok(Vec::new())
    }

    fn delete_snapshot(&self, vmid: u32, name: &str) -> Result<(), String> {
        self.with_guest(vmid, |g| {
            g.snapshots.remove(name);
        })
        .ok_or_else(|| format!("guest {vmid} missing"))
    }

    fn set_services(&self, vmid: u32, services: &[ServiceSpec]) {
        self.with_guest(vmid, |g| {
            for s in services {
                let known = KNOWN_SERVICES.iter().find(|k| k.1 == s.name);
                let pid = 200 + (g.data.services.len() as u32) * 41;
                g.data.services.insert(
                    s.name.clone(),
                    GService {
                        name: s.name.clone(),
                        description: known
                            .map(|k| k.4.to_string())
                            .unwrap_or_else(|| s.name.clone()),
                        active: s.active,
                        enabled: s.enabled,
                        port: s.port,
                        process: known
                            .map(|k| k.3.to_string())
                            .unwrap_or_else(|| s.name.clone()),
                        pid,
                    },
                );
            }
        });
    }

    fn write_file(&self, vmid: u32, path: &str, data: &[u8]) {
        self.with_guest(vmid, |g| {
            let mut p = parent_dir(path);
            while p != "/" && !g.data.dirs.contains(&p) {
                g.data.dirs.insert(p.clone());
                p = parent_dir(&p);
            }
            g.data.files.insert(
                path.to_string(),
                GFile {
                    data: data.to_vec(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            );
        });
    }

    fn save(&self) -> Value {
        let m = match self.guests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let ordered: BTreeMap<String, &Guest> = m.iter().map(|(k, v)| (k.to_string(), v)).collect();
        serde_json::to_value(ordered).unwrap_or(Value::Null)
    }

    fn load(&self, v: &Value) -> Result<(), String> {
        let parsed: BTreeMap<String, Guest> =
            serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let mut m = match self.guests.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        for (k, g) in parsed {
            if let Ok(id) = k.parse() {
                m.insert(id, g);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
