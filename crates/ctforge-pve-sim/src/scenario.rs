//! Scenarios: a TOML file (or a [`Scenario`] value) describing the simulated
//! cluster and the faults to inject.
//!
//! ```toml
//! cluster_name = "lab"
//! nodes = ["pve1", "pve2"]          # or node_count = 3
//! down_nodes = ["pve2"]
//! bridges = ["vmbr0", "vmbr1"]
//! ticket_lifetime_secs = 60
//! alice_password = "secret"
//! ssh_authorized_keys = ["ssh-ed25519 AAAA... me@host"]
//!
//! [timings]                          # milliseconds
//! create = 500
//! start = 100
//!
//! [[storages]]
//! id = "tank"
//! type = "zfspool"
//! content = "rootdir,images"
//!
//! [[templates]]
//! storage = "local"
//! file = "alpine-3.20-default_20240908_amd64.tar.xz"
//!
//! [[images]]                       # cloud images VMs import (`import-from=`)
//! storage = "local"
//! file = "ubuntu-24.04-server-cloudimg-amd64.qcow2"
//!
//! [[containers]]
//! vmid = 150
//! node = "pve1"
//! hostname = "legacy-db"
//! status = "running"
//! tags = "db;legacy"
//! services = [{ name = "postgresql", port = 5432 }]
//! files = { "/etc/motd" = "hello\n" }
//!
//! [[users]]
//! userid = "bob@pve"
//! password = "bobpw"
//! role = "PVEVMAdmin"
//! totp_secret = "JBSWY3DPEHPK3PXP"
//!
//! [[acl]]                           # more roles: a user, `@group` or token on a path
//! path = "/storage/tank"
//! ugid = "bob@pve"
//! role = "PVEDatastoreUser"
//! propagate = true                   # default
//!
//! [[groups]]
//! id = "ops"
//! members = ["bob@pve"]
//!
//! [[pools]]                          # guests and storages lending the pool's roles
//! id = "team"
//! vms = [150]
//! storages = ["tank"]
//!
//! [[tokens]]
//! id = "bob@pve!ci"
//! secret = "2f0b2a8e-0000-4000-8000-000000000001"
//! privsep = false
//!
//! [faults]
//! latency_ms = 20
//! [[faults.rules]]
//! path = "^/nodes/[^/]+/lxc$"
//! method = "POST"
//! error_rate = 0.5
//! status = 500
//! message = "got timeout"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// A scenario file. Every field is optional; absent fields keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Cluster name (shown in `/cluster/status`-like places and tickets' `clustername`).
    pub cluster_name: Option<String>,
    /// Node names (overrides `node_count` and the config's `nodes`).
    pub nodes: Option<Vec<String>>,
    /// Number of nodes `pve1…pveN`.
    pub node_count: Option<u32>,
    /// Nodes that start out down.
    pub down_nodes: Vec<String>,
    /// Bridges on every node (default `vmbr0`).
    pub bridges: Option<Vec<String>>,
    /// Storages (replace the defaults `local` + `local-lvm`).
    pub storages: Option<Vec<StorageSpec>>,
    /// Extra OS templates present in storage content.
    pub templates: Vec<TemplateSpec>,
    /// Extra cloud images (`import` content, e.g. `debian-12-genericcloud-amd64.qcow2`) on a
    /// storage holding `import` content; two Debian images are always there.
    pub images: Vec<TemplateSpec>,
    /// Number of generated pre-existing CTs (overrides the config's `containers`).
    pub container_count: Option<u32>,
    /// Explicit pre-existing containers (in addition to generated ones).
    pub containers: Vec<ContainerSpec>,
    /// Extra users.
    pub users: Vec<UserSpec>,
    /// Extra API tokens.
    pub tokens: Vec<TokenSpec>,
    /// Extra ACL entries (after each user's `role`/`path`).
    pub acl: Vec<AclSpec>,
    /// Groups of users (`@id` in ACL entries).
    pub groups: Vec<GroupSpec>,
    /// Resource pools.
    pub pools: Vec<PoolSpec>,
    /// Password of `alice@pve` (default `alice`).
    pub alice_password: Option<String>,
    /// Ticket lifetime in seconds (default 7200).
    pub ticket_lifetime_secs: Option<u64>,
    /// Task durations (milliseconds).
    pub timings: Option<crate::config::Timings>,
    /// SSH public keys accepted for root.
    pub ssh_authorized_keys: Vec<String>,
    /// Fault injection.
    pub faults: Option<FaultsSpec>,
}

/// A storage definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    /// Storage id.
    pub id: String,
    /// Plugin type: `dir`, `lvmthin`, `zfspool`, `nfs`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Content types, comma separated (`rootdir,images`).
    pub content: String,
    /// Size in GiB (default 100).
    #[serde(default)]
    pub total_gib: Option<u64>,
    /// Shared storage.
    #[serde(default)]
    pub shared: bool,
}

/// An OS template volume present on a storage of every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Storage id (default `local`).
    #[serde(default = "default_local")]
    pub storage: String,
    /// File name, e.g. `debian-12-standard_12.7-1_amd64.tar.zst`.
    pub file: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

fn default_local() -> String {
    "local".into()
}

/// A service inside a CT (memory backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unit name without `.service`.
    pub name: String,
    /// TCP port it listens on, if any.
    #[serde(default)]
    pub port: Option<u16>,
    /// Active (running).
    #[serde(default = "yes")]
    pub active: bool,
    /// Enabled at boot.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A pre-existing container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerSpec {
    /// VMID.
    pub vmid: u32,
    /// Node (default: first node).
    pub node: Option<String>,
    /// Hostname.
    pub hostname: Option<String>,
    /// `running` or `stopped`.
    pub status: Option<String>,
    /// Cores.
    pub cores: Option<u32>,
    /// Memory MiB.
    pub memory: Option<u64>,
    /// Root disk GiB.
    pub disk_gib: Option<u64>,
    /// Tags (`a;b`).
    pub tags: Option<String>,
    /// IPv4 config for net0 (`dhcp` or CIDR).
    pub ip: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Refuse a clean shutdown (tests the timeout / forceStop path).
    pub hang_on_shutdown: bool,
    /// Services in the CT.
    pub services: Vec<ServiceSpec>,
    /// Files in the CT (path → content).
    pub files: BTreeMap<String, String>,
}

/// An extra user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// `name@realm`.
    pub userid: String,
    /// Password.
    pub password: String,
    /// Role granted on `path` (Administrator, PVEAdmin, PVEVMAdmin, PVEVMUser,
    /// PVEAuditor, SimCtViewer, NoAccess).
    #[serde(default)]
    pub role: Option<String>,
    /// ACL path of the role (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// Base32 TOTP secret: the user then needs a second factor.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// Disabled users get 401 everywhere.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// An ACL entry: `role` for `ugid` (a user id, `@group` or full token id) on `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSpec {
    /// ACL path (`/vms/100`, `/pool/team`, `/storage/local`, `/sdn/zones/localnetwork`).
    pub path: String,
    /// User id, `@group` or `user@realm!token`.
    pub ugid: String,
    /// Role name.
    pub role: String,
    /// Whether the role reaches paths below `path` (default true).
    #[serde(default = "yes")]
    pub propagate: bool,
}

/// A group of users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub id: String,
    /// Member user ids.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A resource pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Pool id.
    pub id: String,
    /// Member VMIDs.
    #[serde(default)]
    pub vms: Vec<u32>,
    /// Member storages.
    #[serde(default)]
    pub storages: Vec<String>,
}

/// An extra API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Full token id `user@realm!name`.
    pub id: String,
    /// Secret.
    pub secret: String,
    /// Privilege separation (default true).
    #[serde(default = "yes")]
    pub privsep: bool,
    /// Role for the token's own ACL (on `/`), when privsep.
    #[serde(default)]
    pub role: Option<String>,
    /// Expiry (epoch seconds, 0 = never).
    #[serde(default)]
    pub expire: u64,
}

/// Fault injection settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsSpec {
    /// Latency added to every API call (ms).
    pub latency_ms: u64,
    /// Per-path rules.
    pub rules: Vec<FaultRule>,
}

/// A fault rule, matched against the API path relative to `/api2/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Regex on the path (`^/nodes/pve1/` works as a prefix).
    pub path: String,
    /// Only this HTTP method (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Probability (0..1) of answering with `status`/`message`.
    #[serde(default)]
    pub error_rate: f64,
    /// Status code of injected errors (default 500).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Message of injected errors.
    #[serde(default = "default_message")]
    pub message: String,
    /// Probability (0..1) of dropping the connection without an answer.
    #[serde(default)]
    pub drop_rate: f64,
    /// Extra latency for matching calls (ms).
    #[serde(default)]
    pub latency_ms: u64,
    /// Apply only this many times (unlimited when absent).
    #[serde(default)]
    pub times: Option<u32>,
}

fn default_status() -> u16 {
    500
}

fn default_message() -> String {
    "simulated failure".into()
}

impl FaultRule {
    /// A rule that fails every call on `path` with 500 `message`.
    pub fn error(path: &str, message: &str) -> Self {
        FaultRule {
            path: path.into(),
            method: None,
            error_rate: 1.0,
            status: 500,
            message: message.into(),
            drop_rate: 0.0,
            latency_ms: 0,
            times: None,
        }
    }
}

impl Scenario {
    /// Parse a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))
    }

    /// Read and parse a scenario file.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Scenario(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_example_parses() {
        let text = r#"
cluster_name = "lab"
nodes = ["pve1", "pve2"]
down_nodes = ["pve2"]
ticket_lifetime_secs = 60
[timings]
create = 500
[[containers]]
vmid = 150
node = "pve1"
status = "running"
services = [{ name = "postgresql", port = 5432 }]
files = { "/etc/motd" = "hello\n" }
[[users]]
userid = "bob@pve"
password = "bobpw"
totp_secret = "JBSWY3DPEHPK3PXP"
[faults]
latency_ms = 20
[[faults.rules]]
path = "^/nodes"
error_rate = 0.5
"#;
        let s = Scenario::from_toml(text).expect("parse");
        assert_eq!(s.nodes.as_ref().map(Vec::len), Some(2));
        assert_eq!(s.containers[0].services[0].port, Some(5432));
        let t = s.timings.expect("timings");
        assert_eq!(t.create.as_millis(), 500);
        assert_eq!(t.start, crate::config::Timings::realistic().start);
        assert_eq!(s.faults.expect("faults").rules[0].status, 500);
    }

    #[test]
    fn unknown_key_rejected() {
        assert!(Scenario::from_toml("bogus = 1").is_err());
    }
}
