//! The in-memory backend: every CT is a small scripted guest with files, a
//! systemd-like service table and installed packages. Commands are recorded
//! and answered by a tiny shell emulator:
//!
//! * `bash -c '…'` / `sh -c` / `bash FILE` / `bash -s` (script on stdin): the
//!   script is split on `;`, `&&`, `||`, newlines and `|`, with heredocs
//!   (`<<EOF`) and redirections (`>`, `>>`, `<`, `2>…`) honoured; `set -e` works.
//! * Files: `cat`, `echo`, `printf`, `tee`, `mkdir -p`, `test`/`[`, `cp`, `mv`,
//!   `rm`, `touch`, `chmod`, `chown`, `ls`, `ln -s`, `head`, `tail`, `wc -l`,
//!   `grep`, `base64 -d`, `sha256sum`.
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
        "apache2",
        "apache2",
        Some(80),
        "apache2",
        "The Apache HTTP Server",
    ),
    ("caddy", "caddy", Some(80), "caddy", "Caddy"),
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
            // Stream stdout line by line, then stderr.
            for line in o.split_inclusive(|b| *b == b'\n') {
                let _ = out.send(ExecChunk::Stdout(line.to_vec()));
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

fn id_of(name: &str) -> u32 {
    match name {
        "root" => 0,
        "www-data" => 33,
        "nobody" => 65534,
        "postgres" => 105,
        other => other.parse().unwrap_or(1000),
    }
}

/// Parent directory of an absolute path.
pub fn parent_dir(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((p, _)) => p.to_string(),
    }
}

fn simple_reads_stdin(argv: &[String]) -> bool {
    let Some(first) = argv.first() else {
        return false;
    };
    let args: Vec<&String> = argv
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match first.rsplit('/').next().unwrap_or(first) {
        "cat" | "base64" | "sha256sum" | "wc" | "head" | "tail" | "sort" => {
            args.is_empty() || args.iter().any(|a| *a == "-")
        }
        "tee" | "dd" => true,
        "grep" => args.len() <= 1,
        _ => false,
    }
}

fn script_reads_stdin(script: &str) -> bool {
    // A command of the script (outside pipelines' non-first stages and without
    // an input redirection or heredoc) that reads stdin.
    for seg in split_script(script) {
        for (i, cmd) in seg.pipeline.iter().enumerate() {
            if i > 0 || cmd.heredoc.is_some() || cmd.text.contains('<') {
                continue;
            }
            let words = shell_words::split(&cmd.text).unwrap_or_default();
            let mut argv = Vec::new();
            let mut skip = false;
            for w in words {
                if skip {
                    skip = false;
                    continue;
                }
                if matches!(w.as_str(), ">" | ">>" | "1>" | "2>" | "&>" | "2>>") {
                    skip = true;
                    continue;
                }
                if w.starts_with('>') || w.starts_with("2>") || w.starts_with("&>") {
                    continue;
                }
                argv.push(w);
            }
            if simple_reads_stdin(&argv) {
                return true;
            }
        }
    }
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Seq,
    And,
    Or,
}

#[derive(Debug, Clone)]
struct Cmd {
    text: String,
    heredoc: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Segment {
    sep: Sep,
    pipeline: Vec<Cmd>,
}

/// Split a script into `;`/`&&`/`||`/newline separated pipelines, collecting heredocs.
fn split_script(script: &str) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    let mut pipeline: Vec<Cmd> = Vec::new();
    let mut cur = String::new();
    let mut sep = Sep::Seq;
    let mut pending_heredocs: Vec<(usize, usize, String, bool)> = Vec::new(); // (segment idx, cmd idx, delim, strip tabs)
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    let mut cur_heredoc: Option<(String, bool)> = None;
    let flush_cmd = |cur: &mut String,
                     pipeline: &mut Vec<Cmd>,
                     hd: &mut Option<(String, bool)>,
                     pend: &mut Vec<(usize, usize, String, bool)>,
                     seg_idx: usize| {
        let t = cur.trim().to_string();
        if !t.is_empty() {
            if let Some((d, strip)) = hd.take() {
                pend.push((seg_idx, pipeline.len(), d, strip));
            }
            pipeline.push(Cmd {
                text: t,
                heredoc: None,
            });
        }
        hd.take();
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            cur.push(c);
            if c == '\\' && q == '"' && i + 1 < chars.len() {
                cur.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                cur.push(c);
            }
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] == '\n' {
                    i += 2;
                    continue;
                }
                cur.push(c);
                cur.push(chars[i + 1]);
                i += 2;
                continue;
            }
            '#' if cur.trim().is_empty() || cur.ends_with(' ') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '<' if i + 1 < chars.len() && chars[i + 1] == '<' && chars.get(i + 2) != Some(&'<') => {
                let mut j = i + 2;
                let strip = chars.get(j) == Some(&'-');
                if strip {
                    j += 1;
                }
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let mut delim = String::new();
                while j < chars.len() && !chars[j].is_whitespace() && !";|&".contains(chars[j]) {
                    if chars[j] != '\'' && chars[j] != '"' {
                        delim.push(chars[j]);
                    }
                    j += 1;
                }
                cur_heredoc = Some((delim, strip));
                i = j;
                continue;
            }
            '\n' | ';' => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
                if !pipeline.is_empty() {
                    segs.push(Segment {
                        sep,
                        pipeline: std::mem::take(&mut pipeline),
                    });
                    sep = Sep::Seq;
                }
                if c == '\n' && !pending_heredocs.is_empty() {
                    // Read heredoc bodies from the following lines.
                    i += 1;
                    for (si, ci, delim, strip) in std::mem::take(&mut pending_heredocs) {
                        let mut body = String::new();
                        loop {
                            if i >= chars.len() {
                                break;
                            }
                            let start = i;
                            while i < chars.len() && chars[i] != '\n' {
                                i += 1;
                            }
                            let line: String = chars[start..i].iter().collect();
                            i += 1;
                            let cmp = if strip {
                                line.trim_start_matches('\t')
                            } else {
                                line.as_str()
                            };
                            if cmp == delim {
                                break;
                            }
                            body.push_str(cmp);
                            body.push('\n');
                        }
                        if let Some(seg) = segs.get_mut(si)
                            && let Some(cmd) = seg.pipeline.get_mut(ci)
                        {
                            cmd.heredoc = Some(body.into_bytes());
                        }
                    }
                    continue;
                }
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
                segs.push(Segment {
                    sep,
                    pipeline: std::mem::take(&mut pipeline),
                });
                sep = Sep::And;
                i += 2;
                continue;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
                segs.push(Segment {
                    sep,
                    pipeline: std::mem::take(&mut pipeline),
                });
                sep = Sep::Or;
                i += 2;
                continue;
            }
            '|' => {
                let seg_idx = segs.len();
                flush_cmd(
                    &mut cur,
                    &mut pipeline,
                    &mut cur_heredoc,
                    &mut pending_heredocs,
                    seg_idx,
                );
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    let seg_idx = segs.len();
    flush_cmd(
        &mut cur,
        &mut pipeline,
        &mut cur_heredoc,
        &mut pending_heredocs,
        seg_idx,
    );
    if !pipeline.is_empty() {
        segs.push(Segment { sep, pipeline });
    }
    segs.retain(|s| !s.pipeline.is_empty());
    segs
}

struct Shell<'a> {
    g: &'a mut GuestData,
    out: Vec<u8>,
    err: Vec<u8>,
    errexit: bool,
    exited: Option<u32>,
    depth: u32,
    /// Status of the last command (`$?`).
    status: u32,
    /// The command that never ends, once one ran (the script stops there).
    blocked: Option<Blocked>,
}

impl<'a> Shell<'a> {
    fn new(g: &'a mut GuestData) -> Self {
        Shell {
            g,
            out: Vec::new(),
            err: Vec::new(),
            errexit: false,
            exited: None,
            depth: 0,
            status: 0,
            blocked: None,
        }
    }

    fn run_argv(&mut self, argv: &[String], stdin: &[u8]) -> u32 {
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
            return self.run_script(&script, stdin);
        }
        let (out, code) = self.simple(argv, stdin);
        self.out.extend(out);
        code
    }

    fn run_script(&mut self, script: &str, stdin: &[u8]) -> u32 {
        self.depth += 1;
        if self.depth > 16 {
            self.err.extend(b"bash: maximum nesting level exceeded\n");
            return 1;
        }
        let mut last = 0u32;
        for seg in split_script(script) {
            if self.exited.is_some() {
                break;
            }
            match seg.sep {
                Sep::And if last != 0 => continue,
                Sep::Or if last == 0 => continue,
                _ => {}
            }
            let mut input: Vec<u8> = stdin.to_vec();
            let n = seg.pipeline.len();
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
            if let Some(code) = self.exited {
                self.depth -= 1;
                return code;
            }
            if self.errexit && last != 0 && seg.sep == Sep::Seq {
                self.depth -= 1;
                return last;
            }
        }
        self.depth -= 1;
        last
    }

    /// One command with redirections; returns (stdout not redirected, status).
    fn command(&mut self, text: &str, stdin: &[u8]) -> (Vec<u8>, u32) {
        let text = expand_status(text, self.status);
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
        // Leading VAR=value assignments.
        while argv.first().map(|a| is_assignment(a)).unwrap_or(false) {
            argv.remove(0);
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
            .map(|a| matches!(a.rsplit('/').next().unwrap_or(a), "bash" | "sh"))
            .unwrap_or(false)
        {
            let saved = std::mem::take(&mut self.out);
            let code = self.run_argv(&argv, &input);
            let produced = std::mem::replace(&mut self.out, saved);
            (produced, code)
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

    fn write(&mut self, path: &str, data: &[u8], append: bool) -> bool {
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
    fn block(&mut self, what: String) {
        if self.blocked.is_none() {
            self.blocked = Some(Blocked { what, limit: None });
        }
        self.exited = Some(0);
    }

    /// `timeout [-k K] [-s SIG] SECS CMD…`: runs CMD; when it never ends, it is killed after
    /// SECS (see [`MemoryBackend`]'s exec).
    fn timeout(&mut self, args: &[String], stdin: &[u8]) -> u32 {
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
    fn ps(&self, out: &mut Vec<u8>) {
        out.extend(b"    PID COMMAND\n");
        out.extend(b"      1 /sbin/init\n");
        for (pid, cmd) in &self.g.procs {
            out.extend(format!("{pid:>7} {cmd}\n").bytes());
        }
    }

    /// `pgrep [-f] [-a] PATTERN`: running processes whose command line (`-f`) or name contains
    /// PATTERN (a one-character class like `[s]` counts as that character).
    fn pgrep(&self, args: &[String], out: &mut Vec<u8>) -> u32 {
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

    fn e(&mut self, s: String) {
        self.err.extend(s.into_bytes());
    }

    fn simple(&mut self, argv: &[String], stdin: &[u8]) -> (Vec<u8>, u32) {
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
                for f in &pos {
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
                for f in &pos {
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
                for a in &args {
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
                let mut a: Vec<String> = args.clone();
                if cmd == "[" && a.last().map(|l| l == "]").unwrap_or(false) {
                    a.pop();
                }
                u32::from(!self.test(&a))
            }
            "touch" => {
                for f in &pos {
                    let p = abs(f);
                    if !self.g.files.contains_key(&p)
                        && !self.g.dirs.contains(&p)
                        && !self.write(&p, b"", true)
                    {
                        self.e(format!(
                            "touch: cannot touch '{f}': No such file or directory\n"
                        ));
                        return (out, 1);
                    }
                }
                0
            }
            "cp" | "mv" => {
                if pos.len() < 2 {
                    self.e(format!("{cmd}: missing file operand\n"));
                    return (out, 1);
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
                for f in &pos {
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
                    return (out, 1);
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
                    return (out, 1);
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
                    return (out, 0);
                }
                if !self.g.dirs.contains(&dir) {
                    self.e(format!(
                        "ls: cannot access '{}': No such file or directory\n",
                        pos.first().cloned().unwrap_or_default()
                    ));
                    return (out, 2);
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
                let data = match pos.iter().find(|p| p.parse::<usize>().is_err()) {
                    Some(f) => {
                        match self.g.files.get(&abs(f)) {
                            Some(file) => file.data.clone(),
                            None => {
                                self.e(format!("{cmd}: cannot open '{f}' for reading: No such file or directory\n"));
                                return (out, 1);
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
            "grep" => self.grep(&args, stdin, &mut out),
            "base64" => {
                if flags.contains('d') {
                    let text: String = String::from_utf8_lossy(stdin).split_whitespace().collect();
                    match base64::engine::general_purpose::STANDARD.decode(text) {
                        Ok(d) => out.extend(d),
                        Err(_) => {
                            self.e("base64: invalid input\n".into());
                            return (out, 1);
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
                for f in &pos {
                    match self.g.files.get(&abs(f)) {
                        Some(file) => out.extend(
                            format!("{}  {f}\n", hex(&sha2::Sha256::digest(&file.data))).bytes(),
                        ),
                        None => {
                            self.e(format!("sha256sum: {f}: No such file or directory\n"));
                            return (out, 1);
                        }
                    }
                }
                0
            }
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
            "id" => {
                out.extend(
                    if flags.contains('u') {
                        "0\n"
                    } else {
                        "uid=0(root) gid=0(root) groups=0(root)\n"
                    }
                    .bytes(),
                );
                0
            }
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

    fn has_binary(&self, n: &str) -> bool {
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

    fn test(&self, a: &[String]) -> bool {
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

    fn grep(&mut self, args: &[String], stdin: &[u8], out: &mut Vec<u8>) -> u32 {
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

    fn service_from_unit_file(&mut self, name: &str) -> bool {
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

    fn systemctl(&mut self, args: &[String], out: &mut Vec<u8>) -> u32 {
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

    /// `tar -C DIR -cf - MEMBERS…`: a ustar archive of files under DIR on stdout (members
    /// `.` or relative paths, each recursively). Only creation to stdout is simulated.
    fn tar(&mut self, args: &[String], out: &mut Vec<u8>) -> u32 {
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

    fn ss(&self, flags: &str, out: &mut Vec<u8>) {
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

    fn curl(&mut self, pos: &[String], out: &mut Vec<u8>) -> u32 {
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

    fn pkg(&mut self, mgr: &str, args: &[String], out: &mut Vec<u8>) -> u32 {
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

/// Whether a unit's file makes it never finish starting: an `ExecStart=` or `ExecStartPre=`
/// that runs `sleep infinity`.
fn never_starts(g: &GuestData, name: &str) -> bool {
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

/// `timeout`'s duration: `N`, `Ns`, `Nm`, `Nh`, `Nd` (fractions allowed).
fn parse_duration(text: &str) -> Option<std::time::Duration> {
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
fn literal(pattern: &str) -> String {
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

fn port_in(line: &str) -> Option<u16> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| regex::Regex::new(r"(?:--port[= ]|-p |PORT=|:)(\d{2,5})\b").ok())
        .as_ref()?;
    re.captures(line)
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse().ok())
}

/// Replaces `$?` outside single quotes with `status`.
fn expand_status(text: &str, status: u32) -> String {
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

fn is_assignment(a: &str) -> bool {
    match a.split_once('=') {
        Some((k, _)) => {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit())
        }
        None => false,
    }
}

fn abs(p: &str) -> String {
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

fn hex(b: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> (MemoryBackend, u32) {
        let b = MemoryBackend::new();
        b.create(
            100,
            &CreateSpec {
                conf: Default::default(),
                hostname: "t".into(),
                ostemplate: "local:vztmpl/x.tar.zst".into(),
                password: None,
                ssh_public_keys: None,
            },
        )
        .expect("create");
        b.start(100).expect("start");
        (b, 100)
    }

    fn sh(b: &MemoryBackend, script: &str) -> (String, String, u32) {
        let (o, e, c) = b.run(100, &["bash".into(), "-c".into(), script.into()], b"");
        (
            String::from_utf8_lossy(&o).into(),
            String::from_utf8_lossy(&e).into(),
            c,
        )
    }

    #[test]
    fn install_adds_service_and_ss_shows_it() {
        let (b, _) = guest();
        let (_, _, c) = sh(&b, "apt-get update && apt-get install -y nginx");
        assert_eq!(c, 0);
        let (o, _, _) = sh(&b, "ss -tlnp");
        assert!(o.contains("0.0.0.0:80"), "{o}");
        assert!(o.contains("\"nginx\""), "{o}");
        let (o, _, c) = sh(&b, "systemctl is-active nginx");
        assert_eq!((o.as_str(), c), ("active\n", 0));
    }

    #[test]
    fn apt_option_values_are_not_packages() {
        let (b, _) = guest();
        let (_, e, c) = sh(
            &b,
            "apt-get install -y -q -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 nginx",
        );
        assert_eq!(c, 0, "{e}");
        let (o, _, c) = sh(&b, "dpkg -s nginx");
        assert!(c == 0 && o.contains("install ok installed"), "{o}");
        let (_, _, c) = sh(&b, "dpkg -s Acquire::Retries=3");
        assert_eq!(c, 1, "an option's value is not installed as a package");
    }

    #[test]
    fn files_heredoc_and_errexit() {
        let (b, _) = guest();
        let (_, _, c) = sh(
            &b,
            "mkdir -p /opt/app/conf\ncat > /opt/app/conf/a.txt <<'EOF'\nhello $X\nworld\nEOF\ncp /opt/app/conf/a.txt /tmp/",
        );
        assert_eq!(c, 0);
        assert_eq!(
            b.file(100, "/tmp/a.txt").as_deref(),
            Some(&b"hello $X\nworld\n"[..])
        );
        let (_, e, c) = sh(&b, "set -e; cat /nope; echo never");
        assert_eq!(c, 1);
        assert!(e.contains("No such file"));
        let (o, _, c) = sh(&b, "test -e /tmp/a.txt && echo yes || echo no");
        assert_eq!((o.as_str(), c), ("yes\n", 0));
        let (o, _, _) = sh(&b, "[ -d /nope ] || echo missing");
        assert_eq!(o, "missing\n");
    }

    #[test]
    fn systemctl_show_batch_and_custom_unit() {
        let (b, _) = guest();
        b.write_file(
            100,
            "/etc/systemd/system/myapp.service",
            b"[Unit]\nDescription=My App\n[Service]\nExecStart=/usr/local/bin/myapp --port 8080\n",
        );
        let (_, _, c) = sh(
            &b,
            "systemctl daemon-reload && systemctl enable --now myapp",
        );
        assert_eq!(c, 0);
        let (o, _, _) = sh(
            &b,
            "systemctl show -p Id,ActiveState,UnitFileState myapp.service nope.service",
        );
        assert_eq!(
            o,
            "Id=myapp.service\nActiveState=active\nUnitFileState=enabled\n\nId=nope.service\nActiveState=inactive\nUnitFileState=\n"
        );
        let (o, _, _) = sh(&b, "ss -tlnp | grep 8080");
        assert!(o.contains("myapp"), "{o}");
        let (_, e, c) = sh(&b, "apt-get install -y no-such-pkg");
        assert_eq!(c, 100);
        assert!(e.contains("Unable to locate package no-such-pkg"));
    }

    #[test]
    fn status_tar_and_missing_commands() {
        let (b, _) = guest();
        let (o, _, _) = sh(&b, "false\necho \"rc $?\" 'lit $?'\ntrue; echo \"rc=$?\"");
        assert_eq!(o, "rc 1 lit $?\nrc=0\n");
        b.write_file(100, "/etc/ctforge/credentials/admin", b"s3cret\n");
        b.write_file(100, "/etc/ctforge/credentials/@@x", b"a\nb");
        let (o, e, c) = sh(&b, "tar -C /etc/ctforge/credentials -cf - . | base64");
        assert_eq!(c, 0, "{e}");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(o.trim())
            .expect("base64");
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut found = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).expect("read");
            found.push((path, text));
        }
        assert_eq!(
            found,
            [
                ("./".to_string(), String::new()),
                ("@@x".to_string(), "a\nb".to_string()),
                ("admin".to_string(), "s3cret\n".to_string())
            ]
        );
        let (_, e, c) = sh(&b, "tar -C /nope -cf - .");
        assert_eq!(c, 2);
        assert!(e.contains("Cannot open"), "{e}");
        assert!(b.set_missing_commands(100, &["ss".to_string()]));
        let (o, e, _) = sh(&b, "ss -tlnp 2>&1\necho \"rc $?\"");
        assert_eq!(
            (o.as_str(), e.as_str()),
            ("sh: 1: ss: not found\nrc 127\n", "")
        );
        assert!(b.set_missing_commands(100, &[]));
        let (o, _, _) = sh(&b, "ss -tlnp");
        assert!(o.contains("sshd"), "{o}");
    }

    #[tokio::test]
    async fn never_ending_commands_block_until_their_timeout_kills_them() {
        let (b, vmid) = guest();
        b.write_file(
            vmid,
            "/etc/systemd/system/stuck.service",
            b"[Service]\nExecStartPre=/bin/sleep infinity\nExecStart=/bin/true\n",
        );
        let (_, _, c) = sh(
            &b,
            "systemctl enable stuck && systemctl start --no-block stuck",
        );
        assert_eq!(c, 0);
        assert_eq!(sh(&b, "systemctl is-active stuck").0, "activating\n");
        assert_eq!(
            sh(&b, "systemctl list-jobs --no-legend").0,
            "100 stuck.service start running\n"
        );
        assert_eq!(
            sh(&b, "systemctl is-system-running").0,
            "running\n",
            "booted"
        );
        b.stop(vmid).unwrap();
        b.start(vmid).unwrap();
        assert_eq!(sh(&b, "systemctl is-system-running").0, "starting\n");

        let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let run = b.exec(
            vmid,
            argv("timeout -k 5 1 systemctl is-system-running --wait"),
            Vec::new(),
            tx,
        );
        assert_eq!(
            sh(&b, "pgrep -f is-system-running").2,
            0,
            "running while it waits"
        );
        assert_eq!(run.await, 124, "killed by timeout");
        assert_eq!(sh(&b, "pgrep -f is-system-running").2, 1, "and gone");
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let forever = b.exec(vmid, argv("sleep infinity"), Vec::new(), tx);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), forever)
                .await
                .is_err(),
            "without timeout it never ends"
        );
    }

    #[test]
    fn stdin_detection() {
        let b = MemoryBackend::new();
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(b.needs_stdin(&v(&["bash", "-c", "cat > /etc/x"])));
        assert!(!b.needs_stdin(&v(&["bash", "-c", "cat /etc/x"])));
        assert!(!b.needs_stdin(&v(&["systemctl", "status", "x"])));
        assert!(b.needs_stdin(&v(&["bash", "-s"])));
        assert!(!b.needs_stdin(&v(&["bash", "/root/x.sh"])));
    }
}
