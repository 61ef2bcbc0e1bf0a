//! Simulator configuration: listeners, size of the fake cluster, credentials,
//! scenario, and how long simulated work takes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;

/// Which container backend answers exec/push and container lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// All container state in memory; commands answered from scripted state.
    #[default]
    Memory,
    /// Real LXC containers on a bridge ([`crate::backend::lxc`]); needs a state dir
    /// and the machine prepared by `scripts/setup-lxc.sh`.
    Lxc,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(Backend::Memory),
            "lxc" => Ok(Backend::Lxc),
            other => Err(format!(
                "unknown backend '{other}' (expected memory or lxc)"
            )),
        }
    }
}

/// Where the lxc backend finds its OS template, bridge and apt proxy. The defaults
/// match `scripts/setup-lxc.sh` and follow the same environment variables
/// (`CTFORGE_SIM_CACHE`, `CTFORGE_SIM_BRIDGE`, `CTFORGE_SIM_BRIDGE_ADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxcOptions {
    /// The Debian 12 root filesystem tarball (`<cache>/debian-12.tar.zst`).
    pub template: PathBuf,
    /// The host bridge the containers' veth devices join.
    pub bridge: String,
    /// The bridge's own address: gateway, DNS stub and apt proxy of the containers.
    pub bridge_ip: Ipv4Addr,
    /// Prefix length of the bridge network.
    pub bridge_prefix: u8,
    /// Port of apt-cacher-ng on the bridge address.
    pub proxy_port: u16,
    /// Stop and remove every container when the simulator goes away (tests; a long-running
    /// `ctforge sim` keeps its containers, like a Proxmox node whose API restarts).
    pub destroy_on_drop: bool,
}

impl Default for LxcOptions {
    fn default() -> Self {
        let cache = std::env::var("CTFORGE_SIM_CACHE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/var/cache/ctforge-sim".into());
        let bridge = std::env::var("CTFORGE_SIM_BRIDGE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "ctfbr0".into());
        let (bridge_ip, bridge_prefix) = std::env::var("CTFORGE_SIM_BRIDGE_ADDR")
            .ok()
            .and_then(|a| {
                let (ip, p) = a.split_once('/')?;
                Some((ip.parse().ok()?, p.parse().ok()?))
            })
            .unwrap_or((Ipv4Addr::new(10, 151, 0, 1), 24));
        LxcOptions {
            template: PathBuf::from(cache).join("debian-12.tar.zst"),
            bridge,
            bridge_ip,
            bridge_prefix,
            proxy_port: 3142,
            destroy_on_drop: false,
        }
    }
}

/// Durations of simulated work. [`Timings::realistic`] mirrors a real node,
/// [`Timings::instant`] makes everything (almost) immediate for fast tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Total duration of a `vzcreate` task.
    #[serde(with = "millis")]
    pub create: Duration,
    /// Duration of `vzstart`.
    #[serde(with = "millis")]
    pub start: Duration,
    /// Duration of `vzstop`.
    #[serde(with = "millis")]
    pub stop: Duration,
    /// Duration of `vzshutdown` (when the guest cooperates).
    #[serde(with = "millis")]
    pub shutdown: Duration,
    /// Duration of `vzreboot`.
    #[serde(with = "millis")]
    pub reboot: Duration,
    /// Duration of `vzdestroy`.
    #[serde(with = "millis")]
    pub destroy: Duration,
    /// Duration of snapshot create/delete/rollback tasks.
    #[serde(with = "millis")]
    pub snapshot: Duration,
    /// Duration of an appliance template download.
    #[serde(with = "millis")]
    pub download: Duration,
    /// Delay before answering a 401 (real pveproxy waits about 3 s).
    #[serde(with = "millis")]
    pub auth_failure_delay: Duration,
    /// Time from a VM's start until its guest agent answers (the guest boots; memory backend).
    #[serde(with = "millis")]
    pub vm_boot: Duration,
}

impl Timings {
    /// Durations close to a real Proxmox node (create 4 s, start/stop 1 s, 401 after 3 s).
    pub fn realistic() -> Self {
        Timings {
            create: Duration::from_secs(4),
            start: Duration::from_millis(1000),
            stop: Duration::from_millis(800),
            shutdown: Duration::from_millis(1500),
            reboot: Duration::from_millis(2000),
            destroy: Duration::from_millis(800),
            snapshot: Duration::from_millis(800),
            download: Duration::from_secs(3),
            auth_failure_delay: Duration::from_secs(3),
            vm_boot: Duration::from_secs(8),
        }
    }

    /// Everything immediate (tasks still run asynchronously, but without sleeping).
    pub fn instant() -> Self {
        Timings {
            create: Duration::ZERO,
            start: Duration::ZERO,
            stop: Duration::ZERO,
            shutdown: Duration::ZERO,
            reboot: Duration::ZERO,
            destroy: Duration::ZERO,
            snapshot: Duration::ZERO,
            download: Duration::ZERO,
            auth_failure_delay: Duration::ZERO,
            vm_boot: Duration::ZERO,
        }
    }

    /// Multiply every task duration by `factor` (0 = instant). The 401 delay is kept.
    pub fn scaled(&self, factor: f64) -> Self {
        let f = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            0.0
        };
        let s = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() * f);
        Timings {
            create: s(self.create),
            start: s(self.start),
            stop: s(self.stop),
            shutdown: s(self.shutdown),
            reboot: s(self.reboot),
            destroy: s(self.destroy),
            snapshot: s(self.snapshot),
            download: s(self.download),
            auth_failure_delay: self.auth_failure_delay,
            vm_boot: s(self.vm_boot),
        }
    }
}

impl Default for Timings {
    fn default() -> Self {
        Timings::realistic()
    }
}

/// Serde helper: durations as integer milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Everything [`crate::start`] needs. Use [`SimConfig::default`] (realistic timings,
/// TLS, fixed ports) or [`SimConfig::for_tests`] (port 0, plain HTTP, instant).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// HTTP(S) listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// SSH listen address for `pct` of the first node; `None` disables SSH. The other nodes
    /// listen on 127.0.0.N (same port) when this is 127.0.0.1, else on port + N - 1
    /// (`crate::ssh::spawn_nodes`).
    pub ssh_listen: Option<SocketAddr>,
    /// Explicit SSH addresses, one per node in order (overrides the rule above).
    pub ssh_node_listen: Vec<SocketAddr>,
    /// Serve HTTPS with a self-signed certificate (true) or plain HTTP (false).
    pub tls: bool,
    /// Number of nodes (`pve1…pveN`) when the scenario does not name them.
    pub nodes: u32,
    /// Number of pre-existing containers spread across the nodes.
    pub containers: u32,
    /// Password of `root@pam` (random when `None`).
    pub root_password: Option<String>,
    /// Secret of the `root@pam!ctforge` token (random UUID when `None`).
    pub token_secret: Option<String>,
    /// Scenario (nodes, storages, users, faults, …) applied on top of the defaults.
    pub scenario: Option<Scenario>,
    /// Directory for `state.json`, the TLS certificate and the SSH host key.
    pub state_dir: Option<PathBuf>,
    /// Container backend.
    pub backend: Backend,
    /// Settings of the lxc backend (template, bridge, proxy).
    pub lxc: LxcOptions,
    /// Task durations and the 401 delay.
    pub timings: Timings,
    /// Public keys (OpenSSH one-line format) accepted for SSH login as root.
    pub ssh_authorized_keys: Vec<String>,
    /// Seed for the pseudo-random parts (MAC addresses, metrics, pre-existing CTs).
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8006)),
            ssh_listen: Some(SocketAddr::from(([127, 0, 0, 1], 2222))),
            ssh_node_listen: Vec::new(),
            tls: true,
            nodes: 3,
            containers: 20,
            root_password: None,
            token_secret: None,
            scenario: None,
            state_dir: None,
            backend: Backend::Memory,
            lxc: LxcOptions::default(),
            timings: Timings::realistic(),
            ssh_authorized_keys: Vec::new(),
            seed: 0x5eed,
        }
    }
}

impl SimConfig {
    /// Config for tests: `127.0.0.1:0`, no SSH, plain HTTP, 1 node, no CTs,
    /// instant tasks, no 401 delay, root password `rootpw`.
    pub fn for_tests() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ssh_listen: None,
            tls: false,
            nodes: 1,
            containers: 0,
            root_password: Some("rootpw".into()),
            timings: Timings::instant(),
            ..SimConfig::default()
        }
    }

    /// Builder: set the number of nodes.
    pub fn with_nodes(mut self, n: u32) -> Self {
        self.nodes = n;
        self
    }

    /// Builder: set the number of pre-existing containers.
    pub fn with_containers(mut self, n: u32) -> Self {
        self.containers = n;
        self
    }

    /// Builder: enable TLS.
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Builder: enable SSH on `127.0.0.1:0`.
    pub fn with_ssh(mut self) -> Self {
        self.ssh_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        self
    }

    /// Builder: set the scenario.
    pub fn with_scenario(mut self, s: Scenario) -> Self {
        self.scenario = Some(s);
        self
    }

    /// Builder: set the timings.
    pub fn with_timings(mut self, t: Timings) -> Self {
        self.timings = t;
        self
    }
}
