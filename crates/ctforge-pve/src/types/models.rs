//! Response types for the endpoints ctforge uses.
//!
//! All numeric and boolean fields go through the lenient helpers in
//! [`super::de`], and almost every field is optional, because Proxmox omits
//! fields freely (stopped CTs, rrddata points without samples, older
//! versions). Unknown fields are ignored except where noted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::de;
use super::propstring::{Features, MountPoint, NetConfig, RootFs};

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Version {
    /// Full pve-manager version, e.g. `9.1.9`.
    #[serde(default)]
    pub version: String,
    /// Point release, e.g. `9.1`.
    #[serde(default)]
    pub release: String,
    /// Short git revision.
    #[serde(default)]
    pub repoid: String,
    /// Default console viewer.
    #[serde(default)]
    pub console: Option<String>,
}

/// An authentication realm, `GET /access/domains`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Domain {
    /// Realm id, e.g. `pam`, `pve`.
    pub realm: String,
    /// Realm type, e.g. `pam`, `pve`, `ldap`, `openid`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Comment shown in the login box.
    #[serde(default)]
    pub comment: Option<String>,
    /// Realm-wide TFA provider (`oath`, `yubico`).
    #[serde(default)]
    pub tfa: Option<String>,
}

/// A cluster node, `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default)]
    pub status: String,
    /// CPU utilisation 0..1.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Number of CPUs.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxcpu: Option<u64>,
    /// Used memory in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Total memory in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Uptime in seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Support level.
    #[serde(default)]
    pub level: Option<String>,
    /// SHA-256 fingerprint of the node certificate.
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
}

/// Memory or disk usage block of [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageInfo {
    /// Total bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Free bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub free: Option<u64>,
    /// Available bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
    /// Available bytes (memory, newer versions).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub available: Option<u64>,
}

/// CPU description of [`NodeStatus`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Physical cores.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub cores: Option<u64>,
    /// Logical CPUs.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub cpus: Option<u64>,
    /// Sockets.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub sockets: Option<u64>,
    /// CPU model.
    #[serde(default)]
    pub model: Option<String>,
}

/// `GET /nodes/{node}/status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    /// CPU utilisation 0..1.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Memory usage.
    #[serde(default)]
    pub memory: UsageInfo,
    /// Root filesystem usage.
    #[serde(default)]
    pub rootfs: UsageInfo,
    /// Swap usage.
    #[serde(default)]
    pub swap: UsageInfo,
    /// Uptime in seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Load averages (1, 5, 15 min) as strings.
    #[serde(default)]
    pub loadavg: Vec<String>,
    /// pve-manager version string.
    #[serde(default)]
    pub pveversion: Option<String>,
    /// Kernel version string.
    #[serde(default)]
    pub kversion: Option<String>,
    /// CPU description.
    #[serde(default)]
    pub cpuinfo: CpuInfo,
}

/// Resource type filter for `GET /cluster/resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// Guests (qemu and lxc).
    Vm,
    /// Storages.
    Storage,
    /// Nodes.
    Node,
    /// SDN entities.
    Sdn,
}

impl ResourceKind {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Vm => "vm",
            ResourceKind::Storage => "storage",
            ResourceKind::Node => "node",
            ResourceKind::Sdn => "sdn",
        }
    }
}

/// One entry of `GET /cluster/resources` (node, guest, storage, pool, sdn).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterResource {
    /// Resource id, e.g. `lxc/100`, `node/pve`, `storage/pve/local`.
    pub id: String,
    /// `node`, `storage`, `pool`, `qemu`, `lxc`, `sdn`, `network`...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Node name.
    #[serde(default)]
    pub node: Option<String>,
    /// Guest id.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Guest name.
    #[serde(default)]
    pub name: Option<String>,
    /// Type dependent status (`running`, `stopped`, `online`, `available`...).
    #[serde(default)]
    pub status: Option<String>,
    /// CPU utilisation 0..1.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPUs available.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxcpu: Option<f64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory limit, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Used disk, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub disk: Option<u64>,
    /// Disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Network bytes in (cumulative).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netin: Option<u64>,
    /// Network bytes out (cumulative).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netout: Option<u64>,
    /// Disk bytes read (cumulative).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskread: Option<u64>,
    /// Disk bytes written (cumulative).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskwrite: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Guest is a template.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Guest tags, `;`-separated.
    #[serde(default)]
    pub tags: Option<String>,
    /// Guest config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// HA state.
    #[serde(default)]
    pub hastate: Option<String>,
    /// Pool name.
    #[serde(default)]
    pub pool: Option<String>,
    /// Storage id.
    #[serde(default)]
    pub storage: Option<String>,
    /// Storage content types.
    #[serde(default)]
    pub content: Option<String>,
    /// Storage plugin type.
    #[serde(default)]
    pub plugintype: Option<String>,
    /// Storage is shared.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Node support level.
    #[serde(default)]
    pub level: Option<String>,
    /// Node cgroup mode.
    #[serde(default, rename = "cgroup-mode", deserialize_with = "de::opt_u64")]
    pub cgroup_mode: Option<u64>,
}

impl ClusterResource {
    /// True for LXC containers.
    pub fn is_lxc(&self) -> bool {
        self.kind == "lxc"
    }
    /// Tags split on `;`, `,` or whitespace.
    pub fn tag_list(&self) -> Vec<&str> {
        split_tags(self.tags.as_deref())
    }
}

pub(crate) fn split_tags(tags: Option<&str>) -> Vec<&str> {
    tags.map(|t| t.split([';', ',', ' ']).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// CT status: `GET …/lxc/{vmid}/status/current` and the items of
/// `GET /nodes/{node}/lxc`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LxcStatus {
    /// CT id.
    #[serde(deserialize_with = "de::u32")]
    pub vmid: u32,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Hostname (or `CT<vmid>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Usable CPUs.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpus: Option<f64>,
    /// CPU usage as a fraction of `cpus`.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory limit, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Used swap, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub swap: Option<u64>,
    /// Swap limit, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxswap: Option<u64>,
    /// Used root disk, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub disk: Option<u64>,
    /// Root disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Network bytes in since start.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netin: Option<u64>,
    /// Network bytes out since start.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netout: Option<u64>,
    /// Disk bytes read since start.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskread: Option<u64>,
    /// Disk bytes written since start.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskwrite: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Init pid (only when running).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    /// Config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Tags, `;`-separated.
    #[serde(default)]
    pub tags: Option<String>,
    /// Is a template.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// HA status object.
    #[serde(default)]
    pub ha: Option<serde_json::Value>,
}

impl LxcStatus {
    /// True when `status == "running"`.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// A CT configuration, `GET …/lxc/{vmid}/config`.
///
/// Known keys are typed; property strings are parsed into their types.
/// Everything else — and any property string that fails to parse — is kept
/// verbatim in `extra`, so nothing is lost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcConfig {
    /// SHA-1 digest of the config file (pass back in PUT for optimistic locking).
    pub digest: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// OS type.
    pub ostype: Option<String>,
    /// Architecture.
    pub arch: Option<String>,
    /// Cores.
    pub cores: Option<u64>,
    /// Memory, MiB.
    pub memory: Option<u64>,
    /// Swap, MiB.
    pub swap: Option<u64>,
    /// Unprivileged CT.
    pub unprivileged: Option<bool>,
    /// Start on boot.
    pub onboot: Option<bool>,
    /// Protection flag.
    pub protection: Option<bool>,
    /// Is a template.
    pub template: Option<bool>,
    /// Tags, `;`-separated.
    pub tags: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// DNS servers.
    pub nameserver: Option<String>,
    /// DNS search domains.
    pub searchdomain: Option<String>,
    /// Config lock.
    pub lock: Option<String>,
    /// Feature flags.
    pub features: Option<Features>,
    /// Root filesystem.
    pub rootfs: Option<RootFs>,
    /// Network interfaces by index (`net0` → 0).
    pub nets: BTreeMap<u8, NetConfig>,
    /// Mount points by index (`mp0` → 0).
    pub mounts: BTreeMap<u16, MountPoint>,
    /// All other keys, verbatim.
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn val_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

impl LxcConfig {
    /// Build from the raw JSON object.
    pub fn from_map(map: serde_json::Map<String, serde_json::Value>) -> Self {
        let mut c = LxcConfig::default();
        for (k, v) in map {
            let s = val_str(&v);
            let num = || {
                s.as_deref()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .map(|f| f as u64)
            };
            let flag = || s.as_deref().and_then(super::de::parse_bool);
            let handled = match k.as_str() {
                "digest" => {
                    c.digest = s.clone();
                    true
                }
                "hostname" => {
                    c.hostname = s.clone();
                    true
                }
                "ostype" => {
                    c.ostype = s.clone();
                    true
                }
                "arch" => {
                    c.arch = s.clone();
                    true
                }
                "tags" => {
                    c.tags = s.clone();
                    true
                }
                "description" => {
                    c.description = s.clone();
                    true
                }
                "nameserver" => {
                    c.nameserver = s.clone();
                    true
                }
                "searchdomain" => {
                    c.searchdomain = s.clone();
                    true
                }
                "lock" => {
                    c.lock = s.clone();
                    true
                }
                "cores" => {
                    c.cores = num();
                    c.cores.is_some()
                }
                "memory" => {
                    c.memory = num();
                    c.memory.is_some()
                }
                "swap" => {
                    c.swap = num();
                    c.swap.is_some()
                }
                "unprivileged" => {
                    c.unprivileged = flag();
                    c.unprivileged.is_some()
                }
                "onboot" => {
                    c.onboot = flag();
                    c.onboot.is_some()
                }
                "protection" => {
                    c.protection = flag();
                    c.protection.is_some()
                }
                "template" => {
                    c.template = flag();
                    c.template.is_some()
                }
                "features" => {
                    c.features = s.as_deref().and_then(|s| s.parse().ok());
                    c.features.is_some()
                }
                "rootfs" => {
                    c.rootfs = s.as_deref().and_then(|s| s.parse().ok());
                    c.rootfs.is_some()
                }
                _ => {
                    if let Some(i) = k.strip_prefix("net").and_then(|i| i.parse::<u8>().ok()) {
                        match s.as_deref().and_then(|s| s.parse().ok()) {
                            Some(n) => {
                                c.nets.insert(i, n);
                                true
                            }
                            None => false,
                        }
                    } else if let Some(i) = k.strip_prefix("mp").and_then(|i| i.parse::<u16>().ok())
                    {
                        match s.as_deref().and_then(|s| s.parse().ok()) {
                            Some(m) => {
                                c.mounts.insert(i, m);
                                true
                            }
                            None => false,
                        }
                    } else {
                        false
                    }
                }
            };
            if !handled {
                c.extra.insert(k, v);
            }
        }
        c
    }

    /// Tags split on `;`, `,` or whitespace.
    pub fn tag_list(&self) -> Vec<&str> {
        split_tags(self.tags.as_deref())
    }
}

impl<'de> Deserialize<'de> for LxcConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        Ok(LxcConfig::from_map(map))
    }
}

/// RRD consolidation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsolidationFn {
    /// `AVERAGE` (the server default).
    #[default]
    Average,
    /// `MAX`.
    Max,
}

impl ConsolidationFn {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsolidationFn::Average => "AVERAGE",
            ConsolidationFn::Max => "MAX",
        }
    }
}

/// RRD time frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeframe {
    /// Last hour, 60 s resolution.
    Hour,
    /// Last day.
    Day,
    /// Last week.
    Week,
    /// Last month.
    Month,
    /// Last year.
    Year,
}

impl Timeframe {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::Hour => "hour",
            Timeframe::Day => "day",
            Timeframe::Week => "week",
            Timeframe::Month => "month",
            Timeframe::Year => "year",
        }
    }
}

/// One rrddata point. Fields with no data are omitted by Proxmox and are
/// `None` here; `netin`/`netout`/`diskread`/`diskwrite` are bytes per second.
/// Node-only and future data sources land in `other`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RrdPoint {
    /// Bucket time, Unix seconds.
    #[serde(deserialize_with = "de::i64")]
    pub time: i64,
    /// CPU fraction 0..1.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPUs.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxcpu: Option<f64>,
    /// Memory used, bytes.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub mem: Option<f64>,
    /// Memory limit, bytes.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxmem: Option<f64>,
    /// Disk used, bytes.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub disk: Option<f64>,
    /// Disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxdisk: Option<f64>,
    /// Network in, bytes/s.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub netin: Option<f64>,
    /// Network out, bytes/s.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub netout: Option<f64>,
    /// Disk read, bytes/s.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub diskread: Option<f64>,
    /// Disk write, bytes/s.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub diskwrite: Option<f64>,
    /// Other data sources (pressure*, node fields like loadavg, memused...).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The UPID.
    #[serde(default)]
    pub upid: String,
    /// Node.
    #[serde(default)]
    pub node: String,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Set once stopped: `OK`, `WARNINGS: n` or an error text.
    #[serde(default)]
    pub exitstatus: Option<String>,
    /// Task type.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Task object id.
    #[serde(default, deserialize_with = "de::string")]
    pub id: String,
    /// User.
    #[serde(default)]
    pub user: String,
    /// Token id for token tasks.
    #[serde(default)]
    pub tokenid: Option<String>,
    /// Worker pid.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    /// Start time, Unix seconds.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub starttime: Option<i64>,
}

impl TaskStatus {
    /// True while `status == "running"`.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// One task log line (`n` is 1-based).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskLogLine {
    /// Line number, 1-based.
    #[serde(deserialize_with = "de::u64")]
    pub n: u64,
    /// Line text.
    #[serde(default)]
    pub t: String,
}

/// A page of a task log plus the `total` line count when sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskLog {
    /// Lines of this page.
    pub lines: Vec<TaskLogLine>,
    /// Total number of lines in the log.
    pub total: Option<u64>,
}

/// A datastore, `GET /nodes/{node}/storage`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Storage {
    /// Storage id.
    pub storage: String,
    /// Storage type (`dir`, `lvmthin`, `zfspool`...).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Allowed content types, comma-separated.
    #[serde(default)]
    pub content: String,
    /// Accessible.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// Enabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enabled: Option<bool>,
    /// Shared.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Total bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Available bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
    /// used/total.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub used_fraction: Option<f64>,
}

impl Storage {
    /// True when the storage accepts `content` (e.g. `vztmpl`, `rootdir`).
    pub fn supports(&self, content: &str) -> bool {
        self.content.split(',').any(|c| c.trim() == content)
    }
}

/// A volume on a storage, `GET …/storage/{storage}/content`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StorageContent {
    /// Volume id, e.g. `local:vztmpl/debian-13-standard_13.6-1_amd64.tar.zst`.
    pub volid: String,
    /// Format (`tzst`, `raw`, `subvol`...).
    #[serde(default)]
    pub format: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// Creation time, Unix seconds.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub ctime: Option<i64>,
    /// Content type (`vztmpl`, `rootdir`...).
    #[serde(default)]
    pub content: Option<String>,
    /// Owner VMID.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
}

/// An appliance template, `GET /nodes/{node}/aplinfo`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AplInfo {
    /// Template file name, e.g. `debian-13-standard_13.6-1_amd64.tar.zst`.
    #[serde(default)]
    pub template: String,
    /// Package name.
    #[serde(default)]
    pub package: Option<String>,
    /// Version.
    #[serde(default)]
    pub version: Option<String>,
    /// `lxc`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// OS, e.g. `debian-13`.
    #[serde(default)]
    pub os: Option<String>,
    /// Section (`system`, `turnkeylinux`...).
    #[serde(default)]
    pub section: Option<String>,
    /// One-line headline.
    #[serde(default)]
    pub headline: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Download URL.
    #[serde(default)]
    pub location: Option<String>,
    /// Info page URL.
    #[serde(default)]
    pub infopage: Option<String>,
    /// Architecture.
    #[serde(default)]
    pub architecture: Option<String>,
    /// SHA-512.
    #[serde(default)]
    pub sha512sum: Option<String>,
}

/// A host network interface, `GET /nodes/{node}/network`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkIface {
    /// Interface name, e.g. `vmbr0`.
    pub iface: String,
    /// Type (`bridge`, `eth`, `bond`, `OVSBridge`, `vnet`...).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Active.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// Autostart.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub autostart: Option<bool>,
    /// IPv4 address.
    #[serde(default)]
    pub address: Option<String>,
    /// IPv4 CIDR.
    #[serde(default)]
    pub cidr: Option<String>,
    /// IPv4 gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// Bridge ports.
    #[serde(default)]
    pub bridge_ports: Option<String>,
    /// VLAN aware bridge.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub bridge_vlan_aware: Option<bool>,
    /// IPv4 method.
    #[serde(default)]
    pub method: Option<String>,
    /// Comments.
    #[serde(default)]
    pub comments: Option<String>,
}

/// An address of a CT interface.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpAddress {
    /// The address.
    #[serde(default, rename = "ip-address")]
    pub ip_address: Option<String>,
    /// `inet` or `inet6`.
    #[serde(default, rename = "ip-address-type")]
    pub ip_address_type: Option<String>,
    /// Prefix length.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub prefix: Option<u64>,
}

/// A CT interface, `GET …/lxc/{vmid}/interfaces` (running CTs only).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LxcInterface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub hwaddr: Option<String>,
    /// Last IPv4 address with prefix.
    #[serde(default)]
    pub inet: Option<String>,
    /// Last IPv6 address with prefix.
    #[serde(default)]
    pub inet6: Option<String>,
    /// All addresses.
    #[serde(default, rename = "ip-addresses")]
    pub ip_addresses: Vec<IpAddress>,
}

/// One key of `GET …/lxc/{vmid}/pending`: the current value, the value waiting for the next
/// start (`pending`), or a delete waiting for it (`delete`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PendingEntry {
    /// Config key (`memory`, `net0`, …).
    pub key: String,
    /// Current value.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub value: Option<String>,
    /// Value applied at the next start.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub pending: Option<String>,
    /// `1` (or `2`, forced) when the key is deleted at the next start.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub delete: Option<u32>,
}

impl PendingEntry {
    /// Whether a change of this key waits for the next start.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some() || self.delete.is_some_and(|d| d > 0)
    }
}

/// A snapshot, `GET …/lxc/{vmid}/snapshot` (`current` is the live state).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Snapshot name (`current` for the live state).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Parent snapshot.
    #[serde(default)]
    pub parent: Option<String>,
    /// Creation time, Unix seconds.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub snaptime: Option<i64>,
}

/// A pool member.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PoolMember {
    /// Member id, e.g. `lxc/100`.
    pub id: String,
    /// Node.
    #[serde(default)]
    pub node: Option<String>,
    /// `qemu`, `lxc`, `storage`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Guest id.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Storage id.
    #[serde(default)]
    pub storage: Option<String>,
}

/// A resource pool, `GET /pools`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pool {
    /// Pool id.
    pub poolid: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Members (only when listing one pool).
    #[serde(default)]
    pub members: Vec<PoolMember>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_resource_quirks() {
        let r: ClusterResource = serde_json::from_str(
            r#"{"id":"lxc/100","type":"lxc","vmid":"100","node":"pve","status":"running","maxcpu":2,"cpu":0.013,"template":0,"mem":"52428800","tags":"web;prod"}"#,
        )
        .unwrap();
        assert_eq!(r.vmid, Some(100));
        assert_eq!(r.template, Some(false));
        assert_eq!(r.mem, Some(52_428_800));
        assert_eq!(r.tag_list(), vec!["web", "prod"]);
    }

    #[test]
    fn rrd_point_omits_fields() {
        let p: Vec<RrdPoint> = serde_json::from_str(
            r#"[{"time":1700000000,"maxcpu":2,"maxmem":536870912,"maxdisk":8589934592,"disk":0},
                {"time":1700000060,"cpu":0.05,"mem":1.5e7,"netin":120.5,"pressurecpusome":0.1}]"#,
        )
        .unwrap();
        assert_eq!(p[0].cpu, None);
        assert_eq!(p[1].cpu, Some(0.05));
        assert_eq!(p[1].other["pressurecpusome"], serde_json::json!(0.1));
    }

    #[test]
    fn lxc_config_keeps_unknown_keys() {
        let c: LxcConfig = serde_json::from_str(
            r#"{"arch":"amd64","cores":2,"memory":"512","hostname":"www","ostype":"debian",
                "net0":"name=eth0,bridge=vmbr0,hwaddr=BC:24:11:A7:86:4A,ip=dhcp,type=veth",
                "rootfs":"local-lvm:vm-100-disk-0,size=8G","features":"nesting=1",
                "mp0":"local-lvm:vm-100-disk-1,mp=/data,size=32G","unprivileged":1,
                "lxc":[["lxc.apparmor.profile","unconfined"]],"net1":"garbage","digest":"abc"}"#,
        )
        .unwrap();
        assert_eq!(c.memory, Some(512));
        assert_eq!(c.cores, Some(2));
        assert_eq!(c.unprivileged, Some(true));
        assert_eq!(c.nets[&0].bridge.as_deref(), Some("vmbr0"));
        assert_eq!(c.mounts[&0].mp, "/data");
        assert_eq!(c.features.as_ref().and_then(|f| f.nesting), Some(true));
        assert!(c.extra.contains_key("lxc"));
        assert!(c.extra.contains_key("net1"));
    }
}
