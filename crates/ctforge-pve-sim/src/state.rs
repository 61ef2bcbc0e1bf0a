//! The simulated cluster: nodes, storages, containers, tasks, users, pools and
//! fault settings, behind one mutex ([`SimState`]). The container backend keeps
//! the in-guest state (files, services) separately.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SimError;
use crate::auth::{AclEntry, Identity, Token, User, acl_privs};
use crate::backend::{CtBackend, memory::MemoryBackend};
use crate::config::{Backend, SimConfig, Timings};
use crate::scenario::{ContainerSpec, FaultRule, FaultsSpec, ServiceSpec, StorageSpec};

/// Bytes per GiB.
pub const GIB: u64 = 1024 * 1024 * 1024;
/// Bytes per MiB.
pub const MIB: u64 = 1024 * 1024;

/// A cluster node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Online (false = proxied calls fail with `down_code`).
    pub online: bool,
    /// 595 (connection) or 596 (TLS) when down.
    pub down_code: u16,
    /// CPU threads.
    pub maxcpu: u32,
    /// Memory bytes.
    pub maxmem: u64,
    /// Root filesystem bytes.
    pub maxdisk: u64,
}

/// A storage (defined cluster-wide, present on every node unless shared).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageDef {
    /// Storage id.
    pub id: String,
    /// Plugin type (`dir`, `lvmthin`, `zfspool`, …).
    pub kind: String,
    /// Content types.
    pub content: Vec<String>,
    /// Size in bytes.
    pub total: u64,
    /// Shared.
    pub shared: bool,
}

impl StorageDef {
    /// Whether the storage accepts this content type.
    pub fn supports(&self, content: &str) -> bool {
        self.content.iter().any(|c| c == content)
    }
    /// Volume id of a CT disk on this storage.
    pub fn disk_volid(&self, vmid: u32, n: u32) -> String {
        match self.kind.as_str() {
            "dir" | "nfs" | "cifs" => format!("{}:{vmid}/vm-{vmid}-disk-{n}.raw", self.id),
            "zfspool" => format!("{}:subvol-{vmid}-disk-{n}", self.id),
            _ => format!("{}:vm-{vmid}-disk-{n}", self.id),
        }
    }
}

/// A file volume on a storage (templates, ISOs, backups).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    /// Node holding it (`None` = every node).
    pub node: Option<String>,
    /// Storage id.
    pub storage: String,
    /// Volume id, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    pub volid: String,
    /// Content type.
    pub content: String,
    /// Format (`tzst`, `tgz`, `txz`, `iso`, …).
    pub format: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation time.
    pub ctime: u64,
}

/// A snapshot of a CT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    pub snaptime: u64,
    /// Parent snapshot.
    pub parent: Option<String>,
    /// Config at snapshot time.
    pub conf: BTreeMap<String, String>,
}

/// A container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ct {
    /// VMID.
    pub vmid: u32,
    /// Node it lives on.
    pub node: String,
    /// Current config (values as in the config file).
    pub conf: BTreeMap<String, String>,
    /// Pending values.
    pub pending: BTreeMap<String, String>,
    /// Pending deletions.
    pub pending_delete: BTreeSet<String>,
    /// Running.
    pub running: bool,
    /// Start time (sim clock) when running.
    pub started_at: Option<u64>,
    /// Creation time.
    pub created_at: u64,
    /// Running intervals `(from, to)` for rrddata.
    pub history: Vec<(u64, Option<u64>)>,
    /// Snapshots by name.
    pub snapshots: BTreeMap<String, Snapshot>,
    /// Current parent snapshot.
    pub parent: Option<String>,
    /// The guest ignores clean shutdown requests.
    pub hang_on_shutdown: bool,
}

impl Ct {
    /// Hostname or `CT<vmid>`.
    pub fn name(&self) -> String {
        self.conf
            .get("hostname")
            .cloned()
            .unwrap_or_else(|| format!("CT{}", self.vmid))
    }
    /// Config lock, if any.
    pub fn lock(&self) -> Option<&str> {
        self.conf.get("lock").map(String::as_str)
    }
    /// Memory in MiB (default 512).
    pub fn memory_mib(&self) -> u64 {
        self.conf
            .get("memory")
            .and_then(|m| m.parse().ok())
            .unwrap_or(512)
    }
    /// Swap in MiB (default 512).
    pub fn swap_mib(&self) -> u64 {
        self.conf
            .get("swap")
            .and_then(|m| m.parse().ok())
            .unwrap_or(512)
    }
    /// Root disk size in bytes (default 4 GiB).
    pub fn rootfs_bytes(&self) -> u64 {
        self.conf
            .get("rootfs")
            .and_then(|r| r.split(',').find_map(|p| p.strip_prefix("size=")))
            .and_then(parse_size)
            .unwrap_or(4 * GIB)
    }
    /// Mark running from `now`.
    pub fn set_running(&mut self, now: u64) {
        if !self.running {
            self.running = true;
            self.started_at = Some(now);
            self.history.push((now, None));
        }
    }
    /// Mark stopped at `now`.
    pub fn set_stopped(&mut self, now: u64) {
        if self.running {
            self.running = false;
            self.started_at = None;
            if let Some(last) = self.history.last_mut()
                && last.1.is_none()
            {
                last.1 = Some(now);
            }
        }
    }
    /// Whether the CT was running at time `t`.
    pub fn running_at(&self, t: u64) -> bool {
        self.history
            .iter()
            .any(|(a, b)| *a <= t && b.map(|b| t < b).unwrap_or(true))
    }
    /// The config as `GET config` shows it: pending values merged unless `current`.
    pub fn effective_conf(&self, current: bool) -> BTreeMap<String, String> {
        let mut c = self.conf.clone();
        if !current {
            for (k, v) in &self.pending {
                c.insert(k.clone(), v.clone());
            }
            for k in &self.pending_delete {
                c.remove(k);
            }
        }
        c
    }
    /// SHA-1 digest of the config "file".
    pub fn digest(&self) -> String {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        for (k, v) in &self.conf {
            h.update(format!("{k}: {v}\n").as_bytes());
        }
        for (k, v) in &self.pending {
            h.update(format!("[pending] {k}: {v}\n").as_bytes());
        }
        for k in &self.pending_delete {
            h.update(format!("[pending] delete: {k}\n").as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Parse a PVE disk size (`8G`, `512M`, `1T`, bytes without unit).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024u64),
        'M' => (&s[..s.len() - 1], MIB),
        'G' => (&s[..s.len() - 1], GIB),
        'T' => (&s[..s.len() - 1], GIB * 1024),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    if v < 0.0 || !v.is_finite() {
        return None;
    }
    Some((v * mult as f64) as u64)
}

/// Format a size in GiB the way PVE prints `size=`.
pub fn format_size_gib(gib: f64) -> String {
    if gib.fract() == 0.0 {
        format!("{}G", gib as u64)
    } else {
        format!("{}M", (gib * 1024.0).round() as u64)
    }
}

/// A task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// UPID.
    pub upid: String,
    /// Node.
    pub node: String,
    /// PID.
    pub pid: u32,
    /// Process start (clock ticks).
    pub pstart: u64,
    /// Start time (epoch).
    pub starttime: u64,
    /// End time.
    pub endtime: Option<u64>,
    /// Type (`vzcreate`, `vzstart`, …).
    pub ttype: String,
    /// Id (vmid or file name).
    pub id: String,
    /// `user@realm[!token]`.
    pub user: String,
    /// Token name, for token tasks.
    pub tokenid: Option<String>,
    /// Running?
    pub running: bool,
    /// Exit status when stopped.
    pub exitstatus: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
}

/// A resource pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pool {
    /// Comment.
    pub comment: Option<String>,
    /// Member VMIDs.
    pub vms: BTreeSet<u32>,
    /// Member storages.
    pub storages: BTreeSet<String>,
}

/// An appliance template available for download (`aplinfo`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Appliance {
    /// Template file name.
    pub template: String,
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// OS.
    pub os: String,
    /// Section.
    pub section: String,
    /// Headline.
    pub headline: String,
    /// Size in bytes (of the downloaded file).
    pub size: u64,
}

/// Everything about the simulated cluster except in-guest state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Storages.
    pub storages: Vec<StorageDef>,
    /// File volumes (templates, ISOs, backups).
    pub volumes: Vec<Volume>,
    /// Bridges.
    pub bridges: Vec<String>,
    /// Containers by VMID.
    pub cts: BTreeMap<u32, Ct>,
    /// Tasks by UPID.
    pub tasks: BTreeMap<String, Task>,
    /// Users by id.
    pub users: BTreeMap<String, User>,
    /// Tokens by full id.
    pub tokens: BTreeMap<String, Token>,
    /// ACL.
    pub acl: Vec<AclEntry>,
    /// Pools.
    pub pools: BTreeMap<String, Pool>,
    /// Ticket lifetime in seconds.
    pub ticket_lifetime: u64,
    /// Task durations.
    pub timings: Timings,
    /// Faults.
    pub faults: FaultsSpec,
    /// Offset added to the wall clock (seconds), to age tickets in tests.
    pub clock_offset: i64,
    /// Next task PID.
    pub next_pid: u32,
    /// Node boot time (epoch).
    pub boot_time: u64,
    /// MAC counter.
    pub mac_counter: u64,
    /// Seed.
    pub seed: u64,
    /// Downloadable appliances.
    pub appliances: Vec<Appliance>,
    /// SSH public keys accepted for root.
    pub ssh_authorized_keys: Vec<String>,
    /// Per-rule remaining hits (index-aligned with `faults.rules`).
    #[serde(skip)]
    pub fault_hits: Vec<u32>,
}

/// Wall-clock seconds since the epoch.
pub fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// SplitMix64: deterministic pseudo-random numbers from a seed.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic fraction in `[0, 1)` from two keys.
pub fn frac(a: u64, b: u64) -> f64 {
    (mix(a.wrapping_mul(31).wrapping_add(mix(b))) >> 11) as f64 / (1u64 << 53) as f64
}

impl Cluster {
    /// The simulated clock (epoch seconds).
    pub fn now(&self) -> u64 {
        (wall_now() as i64 + self.clock_offset).max(0) as u64
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A storage by id.
    pub fn storage(&self, id: &str) -> Option<&StorageDef> {
        self.storages.iter().find(|s| s.id == id)
    }

    /// Generate a MAC address with the Proxmox OUI `BC:24:11`.
    pub fn next_mac(&mut self) -> String {
        self.mac_counter += 1;
        let r = mix(self.seed ^ self.mac_counter.wrapping_mul(0x1234_5678_9abc));
        format!(
            "BC:24:11:{:02X}:{:02X}:{:02X}",
            (r >> 16) & 0xff,
            (r >> 8) & 0xff,
            r & 0xff
        )
    }

    /// The next free VMID (≥ 100).
    pub fn next_vmid(&self) -> u32 {
        let mut id = 100;
        while self.cts.contains_key(&id) {
            id += 1;
        }
        id
    }

    /// Effective privileges of an identity on an ACL path.
    pub fn privs(&self, ident: &Identity, path: &str) -> BTreeSet<&'static str> {
        let user_privs = if ident.userid == "root@pam" {
            crate::auth::ALL_PRIVS.iter().copied().collect()
        } else {
            acl_privs(&self.acl, &ident.userid, path)
        };
        match &ident.tokenid {
            None => user_privs,
            Some(t) => {
                let full = format!("{}!{t}", ident.userid);
                match self.tokens.get(&full) {
                    Some(tok) if !tok.privsep => user_privs,
                    Some(_) => {
                        let tp = acl_privs(&self.acl, &full, path);
                        user_privs.intersection(&tp).copied().collect()
                    }
                    None => BTreeSet::new(),
                }
            }
        }
    }

    /// Whether the identity has `privilege` on `path`.
    pub fn has_priv(&self, ident: &Identity, path: &str, privilege: &str) -> bool {
        if ident.userid == "root@pam" {
            match &ident.tokenid {
                None => return true,
                Some(t) => {
                    if let Some(tok) = self.tokens.get(&format!("root@pam!{t}"))
                        && !tok.privsep
                    {
                        return true;
                    }
                }
            }
        }
        self.privs(ident, path).contains(privilege)
    }

    /// Whether the identity holds `privilege` anywhere below `prefix` (for `cap`).
    pub fn has_priv_below(&self, ident: &Identity, prefix: &str, privilege: &str) -> bool {
        if self.has_priv(ident, prefix, privilege) {
            return true;
        }
        let ugids = [ident.userid.clone(), ident.auth_id()];
        self.acl
            .iter()
            .filter(|e| ugids.contains(&e.ugid))
            .filter(|e| {
                prefix == "/" || e.path == prefix || e.path.starts_with(&format!("{prefix}/"))
            })
            .any(|e| self.has_priv(ident, &e.path, privilege))
    }

    /// Allocate a task PID and UPID.
    pub fn new_upid(
        &mut self,
        node: &str,
        ttype: &str,
        id: &str,
        user: &str,
    ) -> (String, u32, u64, u64) {
        self.next_pid = self.next_pid.wrapping_add(1).max(0x1000);
        let pid = self.next_pid;
        let now = self.now();
        let pstart = now.saturating_sub(self.boot_time) * 100 + 1234;
        let upid = format!("UPID:{node}:{pid:08X}:{pstart:08X}:{now:08X}:{ttype}:{id}:{user}:");
        (upid, pid, pstart, now)
    }

    /// `cluster/resources`-style node entry.
    pub fn node_resource(&self, n: &Node) -> Value {
        let now = self.now();
        if !n.online {
            return json!({"id": format!("node/{}", n.name), "type": "node", "node": n.name,
                "status": "offline", "level": ""});
        }
        let running: u64 = self
            .cts
            .values()
            .filter(|c| c.node == n.name && c.running)
            .map(|c| c.memory_mib() * MIB / 3)
            .sum();
        json!({
            "id": format!("node/{}", n.name), "type": "node", "node": n.name, "status": "online",
            "cpu": 0.02 + 0.1 * frac(self.seed, now / 10), "maxcpu": n.maxcpu,
            "mem": (2 * GIB + running).min(n.maxmem), "maxmem": n.maxmem,
            "disk": n.maxdisk / 5, "maxdisk": n.maxdisk, "uptime": now.saturating_sub(self.boot_time),
            "level": "", "cgroup-mode": 2,
        })
    }

    /// Status fields of a CT as `status/current` and the `lxc` list report them.
    pub fn ct_status(&self, ct: &Ct, full: bool) -> Value {
        let now = self.now();
        let cores: Option<f64> = ct.conf.get("cores").and_then(|c| c.parse().ok());
        let cpulimit: Option<f64> = ct
            .conf
            .get("cpulimit")
            .and_then(|c| c.parse().ok())
            .filter(|c: &f64| *c > 0.0);
        let node_cpus = self.node(&ct.node).map(|n| n.maxcpu).unwrap_or(4) as f64;
        let cpus = cores.or(cpulimit).unwrap_or(node_cpus);
        let maxmem = ct.memory_mib() * MIB;
        let maxswap = ct.swap_mib() * MIB;
        let maxdisk = ct.rootfs_bytes();
        let v = u64::from(ct.vmid);
        let mut o = serde_json::Map::new();
        o.insert("vmid".into(), json!(ct.vmid));
        o.insert("type".into(), json!("lxc"));
        o.insert("name".into(), json!(ct.name()));
        o.insert(
            "status".into(),
            json!(if ct.running { "running" } else { "stopped" }),
        );
        o.insert("cpus".into(), json!(cpus));
        o.insert("maxmem".into(), json!(maxmem));
        o.insert("maxswap".into(), json!(maxswap));
        o.insert("maxdisk".into(), json!(maxdisk));
        if ct.running {
            let uptime = now.saturating_sub(ct.started_at.unwrap_or(now));
            let cpu = if uptime < 10 {
                0.0
            } else {
                0.005 + 0.15 * frac(v, now / 10)
            };
            o.insert("cpu".into(), json!(cpu));
            o.insert(
                "mem".into(),
                json!((maxmem as f64 * (0.08 + 0.3 * frac(v, 7))) as u64),
            );
            o.insert("swap".into(), json!(0));
            o.insert(
                "disk".into(),
                json!((maxdisk as f64 * (0.1 + 0.4 * frac(v, 3))) as u64),
            );
            o.insert("uptime".into(), json!(uptime));
            o.insert(
                "netin".into(),
                json!(uptime * (200 + (frac(v, 11) * 5000.0) as u64)),
            );
            o.insert(
                "netout".into(),
                json!(uptime * (100 + (frac(v, 13) * 3000.0) as u64)),
            );
            o.insert("diskread".into(), json!(50 * MIB + uptime * 1024));
            o.insert("diskwrite".into(), json!(20 * MIB + uptime * 2048));
            o.insert("pid".into(), json!(1000 + v * 7));
            let p = (frac(v, now / 10 + 1) * 0.5 * 100.0).round() / 100.0;
            for k in [
                "pressurecpusome",
                "pressurecpufull",
                "pressureiosome",
                "pressureiofull",
                "pressurememorysome",
                "pressurememoryfull",
            ] {
                o.insert(k.into(), json!(p));
            }
        } else {
            for k in [
                "cpu",
                "mem",
                "swap",
                "disk",
                "uptime",
                "netin",
                "netout",
                "diskread",
                "diskwrite",
            ] {
                o.insert(k.into(), json!(0));
            }
        }
        if let Some(t) = ct.conf.get("tags") {
            o.insert("tags".into(), json!(t));
        }
        if let Some(l) = ct.lock() {
            o.insert("lock".into(), json!(l));
        }
        if ct.conf.get("template").map(String::as_str) == Some("1") {
            o.insert("template".into(), json!(1));
        }
        if full {
            o.insert("ha".into(), json!({"managed": 0}));
        }
        Value::Object(o)
    }

    /// `cluster/resources` entry of a CT.
    pub fn ct_resource(&self, ct: &Ct) -> Value {
        let online = self.node(&ct.node).map(|n| n.online).unwrap_or(false);
        let st = self.ct_status(ct, false);
        let g = |k: &str| st.get(k).cloned().unwrap_or(json!(0));
        let mut o = json!({
            "id": format!("lxc/{}", ct.vmid), "type": "lxc", "vmid": ct.vmid, "node": ct.node,
            "name": ct.name(), "status": if online { g("status") } else { json!("unknown") },
            "maxcpu": g("cpus"), "cpu": g("cpu"), "maxmem": g("maxmem"), "mem": g("mem"),
            "maxdisk": g("maxdisk"), "disk": g("disk"), "netin": g("netin"), "netout": g("netout"),
            "diskread": g("diskread"), "diskwrite": g("diskwrite"), "uptime": g("uptime"),
            "template": if ct.conf.get("template").map(String::as_str) == Some("1") { 1 } else { 0 },
        });
        if let Some(m) = o.as_object_mut() {
            if let Some(t) = ct.conf.get("tags") {
                m.insert("tags".into(), json!(t));
            }
            if let Some(l) = ct.lock() {
                m.insert("lock".into(), json!(l));
            }
            if let Some((p, _)) = self.pools.iter().find(|(_, p)| p.vms.contains(&ct.vmid)) {
                m.insert("pool".into(), json!(p));
            }
        }
        o
    }

    /// Used bytes of a storage on a node (CT disks + file volumes).
    pub fn storage_used(&self, node: &str, st: &StorageDef) -> u64 {
        let disks: u64 = self
            .cts
            .values()
            .filter(|c| c.node == node || st.shared)
            .flat_map(|c| {
                c.conf
                    .iter()
                    .filter(|(k, _)| *k == "rootfs" || k.starts_with("mp"))
            })
            .filter(|(_, v)| v.starts_with(&format!("{}:", st.id)))
            .filter_map(|(_, v)| {
                v.split(',')
                    .find_map(|p| p.strip_prefix("size="))
                    .and_then(parse_size)
            })
            .sum();
        let files: u64 = self
            .volumes
            .iter()
            .filter(|v| v.storage == st.id && v.node.as_deref().map(|n| n == node).unwrap_or(true))
            .map(|v| v.size)
            .sum();
        disks / 3 + files
    }
}

/// Credentials generated or configured at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Password of root@pam.
    pub root_password: String,
    /// `root@pam!ctforge`.
    pub token_id: String,
    /// Its secret.
    pub token_secret: String,
    /// Secret of `root@pam!noperm`.
    pub noperm_token_secret: String,
}

struct Inner {
    cluster: Mutex<Cluster>,
    backend: Arc<dyn CtBackend>,
    key: Vec<u8>,
    creds: Credentials,
    state_dir: Option<PathBuf>,
    aborts: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    holds: crate::hold::Holds,
}

/// Shared handle on the simulator state (cheap to clone).
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    cluster: Cluster,
    creds: Credentials,
    key: Vec<u8>,
    guests: Value,
}

const WORDS: &[&str] = &[
    "web", "db", "cache", "proxy", "git", "ci", "mail", "dns", "vpn", "media", "wiki", "monitor",
    "backup", "build", "api", "queue", "auth", "files", "chat", "metrics",
];

const DEFAULT_TEMPLATE: &str = "debian-12-standard_12.7-1_amd64.tar.zst";

impl SimState {
    /// Build the state from a config (and its scenario), or load it from
    /// `<state_dir>/state.json` when present.
    pub fn build(cfg: &SimConfig) -> Result<SimState, SimError> {
        let backend: Arc<dyn CtBackend> = match cfg.backend {
            Backend::Memory => Arc::new(MemoryBackend::new()),
            Backend::Lxc => {
                let dir = cfg.state_dir.as_deref().ok_or_else(|| {
                    SimError::Backend("the lxc backend needs a state directory".into())
                })?;
                Arc::new(
                    crate::backend::lxc::LxcBackend::new(dir, cfg.lxc.clone())
                        .map_err(SimError::Backend)?,
                )
            }
        };
        if let Some(dir) = &cfg.state_dir {
            let path = dir.join("state.json");
            if path.exists() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| SimError::State(format!("{}: {e}", path.display())))?;
                let p: Persisted = serde_json::from_str(&text)
                    .map_err(|e| SimError::State(format!("{}: {e}", path.display())))?;
                backend.load(&p.guests).map_err(SimError::State)?;
                let mut cluster = p.cluster;
                // Running tasks did not survive the restart.
                let now = cluster.now();
                for t in cluster.tasks.values_mut().filter(|t| t.running) {
                    t.running = false;
                    t.endtime = Some(now);
                    t.exitstatus = Some("unexpected status".into());
                }
                for ct in cluster.cts.values_mut() {
                    if ct.lock() == Some("create") {
                        ct.conf.remove("lock");
                    }
                }
                cluster.fault_hits = cluster
                    .faults
                    .rules
                    .iter()
                    .map(|r| r.times.unwrap_or(u32::MAX))
                    .collect();
                return Ok(SimState::from_parts(
                    cluster,
                    backend,
                    p.key,
                    p.creds,
                    cfg.state_dir.clone(),
                ));
            }
        }
        let scen = cfg.scenario.clone().unwrap_or_default();
        let mut rng_key = vec![0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut rng_key[..]);
        let root_password = cfg.root_password.clone().unwrap_or_else(random_password);
        let token_secret = cfg
            .token_secret
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let noperm_secret = uuid::Uuid::new_v4().to_string();
        let now = wall_now();

        let node_names: Vec<String> = match (&scen.nodes, scen.node_count) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, Some(c)) => (1..=c.max(1)).map(|i| format!("pve{i}")).collect(),
            _ => (1..=cfg.nodes.max(1)).map(|i| format!("pve{i}")).collect(),
        };
        for n in &node_names {
            if crate::validate::check_named_format("pve-node", n).is_err() {
                return Err(SimError::Scenario(format!("invalid node name '{n}'")));
            }
        }
        for d in &scen.down_nodes {
            if !node_names.contains(d) {
                return Err(SimError::Scenario(format!("down node '{d}' is not a node")));
            }
        }
        let nodes = node_names
            .iter()
            .map(|n| Node {
                name: n.clone(),
                online: !scen.down_nodes.contains(n),
                down_code: 595,
                maxcpu: 16,
                maxmem: 64 * GIB,
                maxdisk: 100 * GIB,
            })
            .collect();
        let storages = scen
            .storages
            .clone()
            .unwrap_or_else(|| {
                vec![
                    StorageSpec {
                        id: "local".into(),
                        kind: "dir".into(),
                        content: "vztmpl,iso,backup".into(),
                        total_gib: Some(100),
                        shared: false,
                    },
                    StorageSpec {
                        id: "local-lvm".into(),
                        kind: "lvmthin".into(),
                        content: "rootdir,images".into(),
                        total_gib: Some(400),
                        shared: false,
                    },
                ]
            })
            .into_iter()
            .map(|s| StorageDef {
                content: crate::validate::split_list(&s.content),
                id: s.id,
                kind: s.kind,
                total: s.total_gib.unwrap_or(100) * GIB,
                shared: s.shared,
            })
            .collect::<Vec<_>>();
        let tmpl_storage = storages
            .iter()
            .find(|s| s.supports("vztmpl"))
            .map(|s| s.id.clone())
            .unwrap_or_else(|| "local".into());
        let mut volumes = vec![
            Volume {
                node: None,
                storage: tmpl_storage.clone(),
                volid: format!("{tmpl_storage}:vztmpl/{DEFAULT_TEMPLATE}"),
                content: "vztmpl".into(),
                format: "tzst".into(),
                size: 126_674_371,
                ctime: now - 40 * 86400,
            },
            Volume {
                node: None,
                storage: tmpl_storage.clone(),
                volid: format!("{tmpl_storage}:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"),
                content: "vztmpl".into(),
                format: "tzst".into(),
                size: 141_557_442,
                ctime: now - 20 * 86400,
            },
        ];
        if let Some(iso) = storages.iter().find(|s| s.supports("iso")) {
            volumes.push(Volume {
                node: None,
                storage: iso.id.clone(),
                volid: format!("{}:iso/debian-12.7.0-amd64-netinst.iso", iso.id),
                content: "iso".into(),
                format: "iso".into(),
                size: 661_651_456,
                ctime: now - 60 * 86400,
            });
        }
        for t in &scen.templates {
            volumes.push(Volume {
                node: None,
                storage: t.storage.clone(),
                volid: format!("{}:vztmpl/{}", t.storage, t.file),
                content: "vztmpl".into(),
                format: template_format(&t.file),
                size: t.size.unwrap_or(100_000_000),
                ctime: now - 86400,
            });
        }

        let mut users = BTreeMap::new();
        let mut acl = Vec::new();
        users.insert(
            "root@pam".to_string(),
            User {
                userid: "root@pam".into(),
                password: root_password.clone(),
                totp_secret: None,
                enabled: true,
            },
        );
        users.insert(
            "alice@pve".to_string(),
            User {
                userid: "alice@pve".into(),
                password: scen
                    .alice_password
                    .clone()
                    .unwrap_or_else(|| "alice".into()),
                totp_secret: None,
                enabled: true,
            },
        );
        acl.push(AclEntry {
            path: "/vms".into(),
            ugid: "alice@pve".into(),
            role: "SimCtViewer".into(),
            propagate: true,
        });
        users.insert(
            "carol@pve".to_string(),
            User {
                userid: "carol@pve".into(),
                password: "carol".into(),
                totp_secret: Some("JBSWY3DPEHPK3PXP".into()),
                enabled: true,
            },
        );
        acl.push(AclEntry {
            path: "/".into(),
            ugid: "carol@pve".into(),
            role: "PVEAdmin".into(),
            propagate: true,
        });
        for u in &scen.users {
            if !u.userid.contains('@') {
                return Err(SimError::Scenario(format!(
                    "user id '{}' lacks a realm",
                    u.userid
                )));
            }
            users.insert(
                u.userid.clone(),
                User {
                    userid: u.userid.clone(),
                    password: u.password.clone(),
                    totp_secret: u.totp_secret.clone(),
                    enabled: u.enabled,
                },
            );
            if let Some(role) = &u.role {
                acl.push(AclEntry {
                    path: u.path.clone().unwrap_or_else(|| "/".into()),
                    ugid: u.userid.clone(),
                    role: role.clone(),
                    propagate: true,
                });
            }
        }
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "root@pam!ctforge".to_string(),
            Token {
                full_id: "root@pam!ctforge".into(),
                secret: token_secret.clone(),
                privsep: false,
                expire: 0,
                comment: Some("ctforge simulator".into()),
            },
        );
        tokens.insert(
            "root@pam!noperm".to_string(),
            Token {
                full_id: "root@pam!noperm".into(),
                secret: noperm_secret.clone(),
                privsep: true,
                expire: 0,
                comment: Some("privilege separated, no ACL".into()),
            },
        );
        for t in &scen.tokens {
            let Some((user, _)) = t.id.split_once('!') else {
                return Err(SimError::Scenario(format!("token id '{}' lacks '!'", t.id)));
            };
            if !users.contains_key(user) {
                return Err(SimError::Scenario(format!(
                    "token '{}': no such user",
                    t.id
                )));
            }
            tokens.insert(
                t.id.clone(),
                Token {
                    full_id: t.id.clone(),
                    secret: t.secret.clone(),
                    privsep: t.privsep,
                    expire: t.expire,
                    comment: None,
                },
            );
            if let Some(role) = &t.role {
                acl.push(AclEntry {
                    path: "/".into(),
                    ugid: t.id.clone(),
                    role: role.clone(),
                    propagate: true,
                });
            }
        }
        let faults = scen.faults.clone().unwrap_or_default();
        for r in &faults.rules {
            if regex::Regex::new(&r.path).is_err() {
                return Err(SimError::Scenario(format!(
                    "bad fault path regex '{}'",
                    r.path
                )));
            }
        }
        let mut ssh_keys = cfg.ssh_authorized_keys.clone();
        ssh_keys.extend(scen.ssh_authorized_keys.iter().cloned());
        let mut cluster = Cluster {
            name: scen.cluster_name.clone().unwrap_or_else(|| "sim".into()),
            nodes,
            storages,
            volumes,
            bridges: scen.bridges.clone().unwrap_or_else(|| vec!["vmbr0".into()]),
            cts: BTreeMap::new(),
            tasks: BTreeMap::new(),
            users,
            tokens,
            acl,
            pools: BTreeMap::new(),
            ticket_lifetime: scen.ticket_lifetime_secs.unwrap_or(7200),
            timings: scen.timings.clone().unwrap_or_else(|| cfg.timings.clone()),
            fault_hits: faults
                .rules
                .iter()
                .map(|r| r.times.unwrap_or(u32::MAX))
                .collect(),
            faults,
            clock_offset: 0,
            next_pid: 0x1000 + (mix(cfg.seed) % 0x10000) as u32,
            boot_time: now - 3 * 86400 - 1234,
            mac_counter: 0,
            seed: cfg.seed,
            appliances: default_appliances(),
            ssh_authorized_keys: ssh_keys,
        };
        let creds = Credentials {
            root_password,
            token_id: "root@pam!ctforge".into(),
            token_secret,
            noperm_token_secret: noperm_secret,
        };
        // Pre-existing containers.
        let count = scen.container_count.unwrap_or(cfg.containers);
        let mut specs: Vec<ContainerSpec> = Vec::new();
        let explicit: BTreeSet<u32> = scen.containers.iter().map(|c| c.vmid).collect();
        let mut vmid = 100u32;
        for i in 0..count {
            while explicit.contains(&vmid) {
                vmid += 1;
            }
            let r = mix(cfg.seed ^ u64::from(vmid));
            let word = WORDS[(r % WORDS.len() as u64) as usize];
            let running = i % 5 != 3;
            let services = if running {
                match r % 4 {
                    0 => vec![svc("nginx", Some(80))],
                    1 => vec![svc("postgresql", Some(5432))],
                    2 => vec![svc("redis-server", Some(6379)), svc("nginx", Some(80))],
                    _ => vec![],
                }
            } else {
                vec![]
            };
            specs.push(ContainerSpec {
                vmid,
                node: Some(node_names[(i as usize) % node_names.len()].clone()),
                hostname: Some(format!("{word}-{:02}", i + 1)),
                status: Some(if running { "running" } else { "stopped" }.into()),
                cores: Some([1, 2, 4][(r >> 8) as usize % 3]),
                memory: Some([512, 1024, 2048][(r >> 12) as usize % 3]),
                disk_gib: Some([4, 8, 16][(r >> 16) as usize % 3]),
                tags: match (r >> 20) % 4 {
                    0 => Some("prod".into()),
                    1 => Some("dev;test".into()),
                    _ => None,
                },
                ip: Some(if (r >> 24).is_multiple_of(2) {
                    "dhcp".into()
                } else {
                    format!("10.10.{}.{}/16", (vmid / 250) % 250, vmid % 250 + 2)
                }),
                services,
                ..ContainerSpec::default()
            });
            vmid += 1;
        }
        specs.extend(scen.containers.iter().cloned());
        let disk_storage = cluster
            .storages
            .iter()
            .find(|s| s.supports("rootdir"))
            .cloned();
        for spec in specs {
            let node = spec.node.clone().unwrap_or_else(|| node_names[0].clone());
            if !node_names.contains(&node) {
                return Err(SimError::Scenario(format!(
                    "CT {}: unknown node '{node}'",
                    spec.vmid
                )));
            }
            if !(100..=999_999_999).contains(&spec.vmid) || cluster.cts.contains_key(&spec.vmid) {
                return Err(SimError::Scenario(format!(
                    "bad or duplicate vmid {}",
                    spec.vmid
                )));
            }
            let mut conf = BTreeMap::new();
            conf.insert("arch".to_string(), "amd64".to_string());
            conf.insert("ostype".into(), "debian".into());
            conf.insert(
                "hostname".into(),
                spec.hostname
                    .clone()
                    .unwrap_or_else(|| format!("CT{}", spec.vmid)),
            );
            conf.insert("cores".into(), spec.cores.unwrap_or(1).to_string());
            conf.insert("memory".into(), spec.memory.unwrap_or(512).to_string());
            conf.insert("swap".into(), "512".into());
            conf.insert("unprivileged".into(), "1".into());
            conf.insert("features".into(), "nesting=1".into());
            if let Some(ds) = &disk_storage {
                conf.insert(
                    "rootfs".into(),
                    format!(
                        "{},size={}G",
                        ds.disk_volid(spec.vmid, 0),
                        spec.disk_gib.unwrap_or(8)
                    ),
                );
            }
            let mac = cluster.next_mac();
            let ip = spec.ip.clone().unwrap_or_else(|| "dhcp".into());
            let gw = if ip == "dhcp" {
                String::new()
            } else {
                ",gw=10.10.0.1".into()
            };
            conf.insert(
                "net0".into(),
                format!(
                    "name=eth0,bridge={}{gw},hwaddr={mac},ip={ip},type=veth",
                    cluster
                        .bridges
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "vmbr0".into())
                ),
            );
            if let Some(t) = &spec.tags {
                conf.insert("tags".into(), t.clone());
            }
            if let Some(d) = &spec.description {
                conf.insert("description".into(), d.clone());
            }
            let running = spec.status.as_deref() == Some("running");
            let created = now - 30 * 86400;
            let r = mix(cfg.seed ^ u64::from(spec.vmid) ^ 0xabc);
            let started = now - 3600 - r % (10 * 86400);
            let history = if running {
                vec![(started, None)]
            } else {
                vec![(created, Some(now - 2 * 86400 - r % 86400))]
            };
            cluster.cts.insert(
                spec.vmid,
                Ct {
                    vmid: spec.vmid,
                    node: node.clone(),
                    conf,
                    pending: BTreeMap::new(),
                    pending_delete: BTreeSet::new(),
                    running,
                    started_at: if running { Some(started) } else { None },
                    created_at: created,
                    history,
                    snapshots: BTreeMap::new(),
                    parent: None,
                    hang_on_shutdown: spec.hang_on_shutdown,
                },
            );
            backend
                .create(
                    spec.vmid,
                    &crate::backend::CreateSpec {
                        hostname: spec
                            .hostname
                            .clone()
                            .unwrap_or_else(|| format!("CT{}", spec.vmid)),
                        ostemplate: format!("{tmpl_storage}:vztmpl/{DEFAULT_TEMPLATE}"),
                        password: None,
                        ssh_public_keys: None,
                        conf: cluster
                            .cts
                            .get(&spec.vmid)
                            .map(|c| c.conf.clone())
                            .unwrap_or_default(),
                    },
                )
                .map_err(SimError::Scenario)?;
            backend.set_services(spec.vmid, &spec.services);
            for (path, content) in &spec.files {
                backend.write_file(spec.vmid, path, content.as_bytes());
            }
            // A real backend boots the CTs the scenario says are running.
            if running && backend.name() != "memory" {
                backend.start(spec.vmid).map_err(SimError::Backend)?;
            }
        }
        Ok(SimState::from_parts(
            cluster,
            backend,
            rng_key,
            creds,
            cfg.state_dir.clone(),
        ))
    }

    fn from_parts(
        cluster: Cluster,
        backend: Arc<dyn CtBackend>,
        key: Vec<u8>,
        creds: Credentials,
        state_dir: Option<PathBuf>,
    ) -> SimState {
        SimState {
            inner: Arc::new(Inner {
                cluster: Mutex::new(cluster),
                backend,
                key,
                creds,
                state_dir,
                aborts: Mutex::new(HashMap::new()),
                holds: crate::hold::Holds::default(),
            }),
        }
    }

    /// Lock the cluster (never hold the guard across an `.await`).
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        match self.inner.cluster.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Run `f` with the cluster locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.lock())
    }

    /// Holds a CT command or a task at `point` until the returned [`crate::Hold`] is
    /// released (tests choose where a job is interrupted).
    pub fn hold(&self, point: crate::HoldPoint) -> crate::Hold {
        self.inner.holds.add(point)
    }

    pub(crate) fn holds(&self) -> &crate::hold::Holds {
        &self.inner.holds
    }

    /// The container backend.
    pub fn backend(&self) -> &Arc<dyn CtBackend> {
        &self.inner.backend
    }

    /// The in-memory backend, when that is the active one (for test helpers).
    pub fn memory_backend(&self) -> Option<&MemoryBackend> {
        self.inner.backend.as_any().downcast_ref::<MemoryBackend>()
    }

    /// Ticket/CSRF signing key.
    pub fn key(&self) -> &[u8] {
        &self.inner.key
    }

    /// Generated credentials.
    pub fn credentials(&self) -> Credentials {
        self.inner.creds.clone()
    }

    /// The state directory, if any.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.inner.state_dir.clone()
    }

    /// Node names.
    pub fn node_names(&self) -> Vec<String> {
        self.lock().nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub(crate) fn register_abort(&self, upid: &str, h: tokio::task::AbortHandle) {
        if let Ok(mut m) = self.inner.aborts.lock() {
            m.insert(upid.to_string(), h);
        }
    }

    pub(crate) fn take_abort(&self, upid: &str) -> Option<tokio::task::AbortHandle> {
        self.inner
            .aborts
            .lock()
            .ok()
            .and_then(|mut m| m.remove(upid))
    }

    /// Mark a node down (`code` 595 or 596) or up.
    pub fn set_node_online(&self, node: &str, online: bool, code: u16) -> bool {
        self.with(|c| match c.nodes.iter_mut().find(|n| n.name == node) {
            Some(n) => {
                n.online = online;
                n.down_code = if code == 596 { 596 } else { 595 };
                true
            }
            None => false,
        })
    }

    /// Add a fault rule.
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        regex::Regex::new(&rule.path).map_err(|e| e.to_string())?;
        self.with(|c| {
            c.fault_hits.push(rule.times.unwrap_or(u32::MAX));
            c.faults.rules.push(rule);
        });
        Ok(())
    }

    /// Remove all fault rules and the global latency.
    pub fn clear_faults(&self) {
        self.with(|c| {
            c.faults = FaultsSpec::default();
            c.fault_hits.clear();
        });
    }

    /// Set the latency added to every API call.
    pub fn set_latency(&self, d: Duration) {
        self.with(|c| c.faults.latency_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    /// Set the ticket lifetime.
    pub fn set_ticket_lifetime(&self, secs: u64) {
        self.with(|c| c.ticket_lifetime = secs);
    }

    /// Move the simulated clock forward (negative: back).
    pub fn advance_clock(&self, secs: i64) {
        self.with(|c| c.clock_offset += secs);
    }

    /// Replace the task durations.
    pub fn set_timings(&self, t: Timings) {
        self.with(|c| c.timings = t);
    }

    /// Replace a CT's service table (memory backend).
    pub fn set_services(&self, vmid: u32, services: &[ServiceSpec]) {
        self.inner.backend.set_services(vmid, services);
    }

    /// Whether a CT exists and runs.
    pub fn ct_running(&self, vmid: u32) -> Option<bool> {
        self.with(|c| c.cts.get(&vmid).map(|ct| ct.running))
    }

    /// A task by UPID.
    pub fn task(&self, upid: &str) -> Option<Task> {
        self.with(|c| c.tasks.get(upid).cloned())
    }

    /// Persist the state to `<state_dir>/state.json` (no-op without a state dir).
    pub fn persist(&self) -> Result<(), SimError> {
        let Some(dir) = &self.inner.state_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|e| SimError::State(e.to_string()))?;
        let p = Persisted {
            cluster: self.lock().clone(),
            creds: self.inner.creds.clone(),
            key: self.inner.key.clone(),
            guests: self.inner.backend.save(),
        };
        let text = serde_json::to_string(&p).map_err(|e| SimError::State(e.to_string()))?;
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, text).map_err(|e| SimError::State(e.to_string()))?;
        std::fs::rename(&tmp, dir.join("state.json")).map_err(|e| SimError::State(e.to_string()))
    }
}

fn svc(name: &str, port: Option<u16>) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        port,
        active: true,
        enabled: true,
    }
}

/// Random 16-character alphanumeric password.
pub fn random_password() -> String {
    use rand::Rng as _;
    let mut r = rand::rng();
    (0..16)
        .map(|_| {
            let chars = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            chars[r.random_range(0..chars.len())] as char
        })
        .collect()
}

/// Storage `format` of a template file name.
pub fn template_format(file: &str) -> String {
    if file.ends_with(".tar.zst") {
        "tzst"
    } else if file.ends_with(".tar.gz") || file.ends_with(".tgz") {
        "tgz"
    } else if file.ends_with(".tar.xz") {
        "txz"
    } else if file.ends_with(".tar.bz2") {
        "tbz2"
    } else {
        "tar"
    }
    .to_string()
}

fn default_appliances() -> Vec<Appliance> {
    let a = |template: &str,
             package: &str,
             version: &str,
             os: &str,
             section: &str,
             headline: &str,
             size: u64| Appliance {
        template: template.into(),
        package: package.into(),
        version: version.into(),
        os: os.into(),
        section: section.into(),
        headline: headline.into(),
        size,
    };
    vec![
        a(
            "alpine-3.22-default_20250617_amd64.tar.xz",
            "alpine-3.22-default",
            "20250617",
            "alpine",
            "system",
            "Alpine Linux 3.22 (standard)",
            3_141_592,
        ),
        a(
            "debian-12-standard_12.7-1_amd64.tar.zst",
            "debian-12-standard",
            "12.7-1",
            "debian-12",
            "system",
            "Debian 12 Bookworm (standard)",
            126_674_371,
        ),
        a(
            "debian-13-standard_13.1-2_amd64.tar.zst",
            "debian-13-standard",
            "13.1-2",
            "debian-13",
            "system",
            "Debian 13 Trixie (standard)",
            131_072_000,
        ),
        a(
            "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "ubuntu-24.04-standard",
            "24.04-2",
            "ubuntu-24.04",
            "system",
            "Ubuntu 24.04 Noble (standard)",
            141_557_442,
        ),
        a(
            "rockylinux-9-default_20240912_amd64.tar.xz",
            "rockylinux-9-default",
            "20240912",
            "rockylinux-9",
            "system",
            "Rocky Linux 9 (default)",
            104_857_600,
        ),
        a(
            "debian-12-turnkey-wordpress_18.1-1_amd64.tar.gz",
            "turnkey-wordpress",
            "18.1-1",
            "debian-12",
            "turnkeylinux",
            "TurnKey WordPress",
            314_572_800,
        ),
    ]
}
