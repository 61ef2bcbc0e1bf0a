//! The simulated cluster's data model: nodes, storages, volumes, snapshots, containers, tasks,
//! pools, appliances and the [`Cluster`] that holds them, plus size and pseudo-random helpers.

use super::*;

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
    /// Virtual machines (qemu guests) by VMID: the same shape as a container (config,
    /// pending values, run history, snapshots); VMIDs are unique across both maps.
    #[serde(default)]
    pub vms: BTreeMap<u32, Ct>,
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
    /// Groups (name → member user ids); ACL entries name a group as `@name`.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeSet<String>>,
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
        while self.vmid_used(id) {
            id += 1;
        }
        id
    }

    /// Whether a container or a VM has this VMID.
    pub fn vmid_used(&self, vmid: u32) -> bool {
        self.cts.contains_key(&vmid) || self.vms.contains_key(&vmid)
    }

    /// `PVE::Cluster::check_vmid_unused`: `Err` with Proxmox's text when a guest has the VMID.
    pub fn check_vmid_unused(&self, vmid: u32) -> Result<(), String> {
        if let Some(vm) = self.vms.get(&vmid) {
            return Err(format!("VM {vmid} already exists on node '{}'", vm.node));
        }
        if let Some(ct) = self.cts.get(&vmid) {
            return Err(format!("CT {vmid} already exists on node '{}'", ct.node));
        }
        Ok(())
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
}
