//! Layered configuration: built-in defaults → TOML file → `CTFORGE_*` environment → CLI flags.
//!
//! Nested keys use `__` in the environment (`CTFORGE_TEMPLATES__ROOTS`). Any key can be read
//! from a file instead by appending `_FILE` (`CTFORGE_SECRET_KEY_FILE=/run/secrets/key`).
//! Secrets are wrapped in [`Secret`], which never prints its value.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A string that must never be printed: `Debug`, `Display` and `Serialize` show `<redacted>`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value; call only where the value is actually used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Where templates are discovered from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Directories that each contain one folder per template.
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Git repositories holding templates (`[[templates.git]]`), fetched into
    /// `<data_dir>/git/` and discovered like `roots`.
    #[serde(default)]
    pub git: Vec<GitSource>,
    /// Seconds between background syncs of the git sources (also synced at startup); 0 turns
    /// both off (sync on demand only).
    #[serde(default = "default_git_sync_interval")]
    pub git_sync_interval_secs: u64,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            git: Vec::new(),
            git_sync_interval_secs: default_git_sync_interval(),
        }
    }
}

fn default_git_sync_interval() -> u64 {
    3600
}

/// One git repository that holds templates.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    /// Clone URL (`https://…`, `file://…`, `ssh://…`, `git@host:…`).
    pub url: String,
    /// Branch to follow.
    #[serde(default = "default_git_branch")]
    pub branch: String,
    /// Subdirectory holding the template folders (default: the repository root).
    #[serde(default)]
    pub path: Option<String>,
    /// ssh sources: a file holding the private deploy key. Read once at start (and on each
    /// sync), stored sealed in the database; the file can then go.
    #[serde(default)]
    pub deploy_key_file: Option<std::path::PathBuf>,
    /// ssh sources: an environment variable holding the private deploy key (as above).
    #[serde(default)]
    pub deploy_key_env: Option<String>,
    /// ssh sources: the confirmed fingerprint (`SHA256:…`) of the git server's host key;
    /// nothing is fetched over ssh until it is pinned here or in Settings → Template
    /// sources.
    #[serde(default)]
    pub host_key: Option<String>,
}

fn default_git_branch() -> String {
    "main".to_owned()
}

/// Background job workers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Jobs run at once by one process (0 disables in-process workers in `serve`).
    pub concurrency: u32,
    /// Jobs run at once against one Proxmox node.
    pub per_node: u32,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            per_node: 2,
        }
    }
}

/// Background monitoring of managed containers (`[monitoring]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Seconds between two checks of every running managed container (0 disables the
    /// periodic checks; on-demand refreshes still work). Runs where workers run.
    pub interval_secs: u64,
    /// Containers checked at once by one process.
    pub concurrency: u32,
    /// Probe services' ports from ctforge for web links (scheme and page title). Turn off when
    /// ctforge cannot reach the containers' network.
    pub web_links: bool,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            concurrency: 4,
            web_links: true,
        }
    }
}

/// The dashboard's reads of Proxmox (`[dashboard]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Milliseconds a cluster's guest list (`/cluster/resources`) read for one identity is
    /// reused by every view of that identity (dashboard, API listing, live refresh); views
    /// show the read's time as "as of". 0 still shares reads in flight.
    pub fresh_ms: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self { fresh_ms: 2000 }
    }
}

/// Images baked from templates (`[images]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Bake an image automatically after the first successful creation from a template on a
    /// node and storage that has no current image of it.
    pub auto_build: bool,
    /// Seconds between garbage collections of superseded images no container was made from
    /// and of failed ones (0: only on `DELETE`).
    pub gc_interval_secs: u64,
    /// Re-apply snapshots (`ctforge-reapply-<job>`) kept per container: after a successful
    /// re-apply or rollout the older ones are deleted (0: not even the one it took). The
    /// user's own snapshots are never touched.
    pub keep_reapply_snapshots: usize,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            auto_build: true,
            gc_interval_secs: 3600,
            keep_reapply_snapshots: crate::containers::reapply::DEFAULT_KEEP_SNAPSHOTS,
        }
    }
}

/// Bounds of provisioning's waits (`[provisioning]`): nothing a job does in a container waits
/// forever.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// Seconds one in-guest command (package install, script, file step) may run; then it is
    /// killed inside the container and the step fails. A script may set its own limit with a
    /// `# ctforge-timeout: SECS` line.
    pub command_timeout_secs: u64,
    /// Seconds to wait for systemd to settle after start and before discovery; past that the
    /// job goes on with a warning naming the units still activating.
    pub settle_timeout_secs: u64,
    /// Seconds a short read-only probe may take (readiness, unit listings, monitoring).
    pub probe_timeout_secs: u64,
    /// Pin a node's SSH host key the first time it is seen instead of refusing the node until
    /// an admin confirmed its key (Settings → Clusters → Test → Confirm). File only; off by
    /// default: with it, whoever answers first on a node's address receives the SSH secret.
    pub ssh_trust_on_first_use: bool,
    /// Seconds a VM's QEMU guest agent may take to answer after start; then (and at once when
    /// the VM has the agent turned off) the job reaches the VM over SSH with ctforge's own key
    /// for it, or fails saying why it cannot.
    pub agent_timeout_secs: u64,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        Self {
            command_timeout_secs: 1800,
            settle_timeout_secs: 120,
            probe_timeout_secs: 60,
            ssh_trust_on_first_use: false,
            agent_timeout_secs: 300,
        }
    }
}

/// The HTTP side (`[server]`): how ctforge is reached, which proxy to believe.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address users reach ctforge at, e.g. `https://ctforge.example` (redirect targets
    /// are resolved against it; an `https` URL turns `secure_cookies` on).
    pub public_url: Option<String>,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Unset: on when `public_url`
    /// is `https`, otherwise when the request says it came over HTTPS (`X-Forwarded-Proto`).
    pub secure_cookies: Option<bool>,
    /// A header a reverse proxy sets to the client's address (e.g. `X-Forwarded-For`); read
    /// only on connections from `trusted_proxies`, otherwise the socket peer is the client.
    pub trusted_proxy_header: Option<String>,
    /// Addresses or networks (`10.0.0.0/8`) of the reverse proxies whose header is believed;
    /// empty: loopback only.
    pub trusted_proxies: Vec<String>,
}

impl ServerConfig {
    /// Whether session cookies carry `Secure` for a request with these headers.
    pub fn secure_cookies(&self, headers: &axum::http::HeaderMap) -> bool {
        if let Some(explicit) = self.secure_cookies {
            return explicit;
        }
        if let Some(url) = &self.public_url {
            return url
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("https://");
        }
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            == Some("https")
    }

    /// The parsed `trusted_proxies` (loopback when empty).
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        if self.trusted_proxies.is_empty() {
            return Ok(vec![
                ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1])),
                ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ]);
        }
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "server.trusted_proxies: {entry:?} is not an address or network like 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }

    /// The client of a request: the address the trusted proxy reports in
    /// `trusted_proxy_header` (the right-most entry not itself a trusted proxy) when the socket
    /// peer is a trusted proxy, otherwise the peer.
    pub fn client_addr(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        let Some(name) = &self.trusted_proxy_header else {
            return peer;
        };
        let trusted = self.trusted_networks().unwrap_or_default();
        let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
        if !is_trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage in the chain: nothing left of it can be believed.
                break;
            };
            client = ip;
            if !is_trusted(&ip) {
                break;
            }
        }
        client
    }
}

/// One entry of a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678` or `::1`.
fn parse_hop(hop: &str) -> Option<std::net::IpAddr> {
    hop.parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Caps of a job's log (`[job_log]`): a step that prints more keeps its first `head_lines` and
/// its last `tail_lines` lines and one line saying how many were dropped in between.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct JobLogConfig {
    /// Lines kept from the start of each step.
    pub head_lines: u32,
    /// Lines kept from the end of each step.
    pub tail_lines: u32,
}

impl Default for JobLogConfig {
    fn default() -> Self {
        Self {
            head_lines: 1000,
            tail_lines: 1000,
        }
    }
}

/// Scheduled backups (`[backup]`): every `interval_secs` the serving process writes an
/// encrypted backup (`ctforge backup`'s format) into `dir` and keeps the newest `keep`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Where backups go; unset turns scheduled backups off.
    pub dir: Option<PathBuf>,
    /// Seconds between backups.
    pub interval_secs: u64,
    /// How many backups to keep (older ones are deleted after a new one is written).
    pub keep: u32,
    /// File holding the passphrase that encrypts them (first line).
    pub passphrase_file: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval_secs: 86_400,
            keep: 7,
            passphrase_file: None,
        }
    }
}

/// A cluster bootstrapped from the configuration file (`[[clusters]]`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterBootstrap {
    /// Unique display name.
    pub name: String,
    /// API base URL, e.g. `https://pve1.example:8006`.
    pub url: String,
    /// API token id, `user@realm!tokenid`.
    pub token_id: String,
    /// API token secret.
    pub token_secret: Option<Secret>,
    /// File holding the API token secret.
    pub token_secret_file: Option<PathBuf>,
    /// Pinned SHA-256 fingerprint of the API's TLS certificate.
    pub fingerprint: Option<String>,
    /// SSH user for `pct` on the nodes.
    #[serde(default = "default_ssh_user")]
    pub ssh_user: String,
    /// SSH port of the nodes.
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// SSH password.
    pub ssh_password: Option<Secret>,
    /// File with an OpenSSH private key.
    pub ssh_key_file: Option<PathBuf>,
    /// Pinned SSH host key (`ssh-ed25519 AAAA…` or its SHA256 fingerprint).
    pub ssh_host_key: Option<String>,
    /// Whether this is the default cluster.
    #[serde(default)]
    pub default: bool,
    /// Allow an `http://` API URL for this cluster (in this file and in Settings). Off by
    /// default: the service token and users' passwords would cross the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// Who holds ctforge's own roles from the start (`[auth]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Cluster-qualified identities that are always ctforge admins, `user@realm@cluster`
    /// (`root@pam@lab`). Empty: `root@pam` of the first configured cluster.
    #[serde(default)]
    pub admins: Vec<String>,
}

fn default_ssh_user() -> String {
    "root".to_owned()
}

fn default_ssh_port() -> u16 {
    22
}

/// The effective configuration of one ctforge process.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub listen: String,
    /// Directory for the SQLite database, the secret key and other state.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `sqlite://<data_dir>/ctforge.db`.
    pub database_url: Option<Secret>,
    /// Redis for the scale-out profile (event bus, sessions, locks).
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel ctforge uses (sessions, locks, events), so several
    /// installations (or tests) can share one Redis.
    pub redis_prefix: String,
    /// Base64 AES-256 key(s) for secrets at rest, comma separated, the first one active.
    pub secret_key: Option<Secret>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info` or `ctforge=debug,info`.
    pub log_level: String,
    /// Template discovery.
    pub templates: TemplatesConfig,
    /// Background workers.
    pub workers: WorkersConfig,
    /// Background monitoring of managed containers.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Bounds of provisioning's waits.
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    /// The dashboard's shared Proxmox reads.
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// Images baked from templates.
    #[serde(default)]
    pub images: ImagesConfig,
    /// The HTTP side: public URL, cookies, trusted proxy.
    #[serde(default)]
    pub server: ServerConfig,
    /// Caps of a job's log per step.
    #[serde(default)]
    pub job_log: JobLogConfig,
    /// Clusters created on start if they do not exist yet.
    #[serde(default)]
    pub clusters: Vec<ClusterBootstrap>,
    /// ctforge's own roles: the bootstrap admins.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Notifications: delivery limits and targets created on start (`[[notifications.targets]]`).
    #[serde(default)]
    pub notifications: crate::notify::config::NotificationsConfig,
    /// Scheduled backups.
    #[serde(default)]
    pub backup: BackupConfig,
    /// Per-node SSH address/port overrides (`[[node_ssh]]`), applied on start.
    #[serde(default)]
    pub node_ssh: Vec<NodeSshBootstrap>,
}

/// A node reached elsewhere than its `/cluster/status` address and the cluster's SSH port
/// (`[[node_ssh]]`: NAT, a management network, the simulator's per-node ports).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSshBootstrap {
    /// The cluster's name (`[[clusters]]` `name`).
    pub cluster: String,
    /// The node's name.
    pub node: String,
    /// Address to reach its SSH at (default: its `/cluster/status` ip).
    pub address: Option<String>,
    /// Port (default: the cluster's `ssh_port`).
    pub port: Option<u16>,
    /// The node's confirmed SSH host key (`SHA256:…`); set here, it is pinned on every start.
    #[serde(default)]
    pub host_key: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            redis_prefix: "ctforge:".to_owned(),
            secret_key: None,
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            templates: TemplatesConfig::default(),
            workers: WorkersConfig::default(),
            monitoring: MonitoringConfig::default(),
            provisioning: ProvisioningConfig::default(),
            dashboard: DashboardConfig::default(),
            images: ImagesConfig::default(),
            server: ServerConfig::default(),
            job_log: JobLogConfig::default(),
            clusters: Vec::new(),
            auth: AuthConfig::default(),
            notifications: crate::notify::config::NotificationsConfig::default(),
            backup: BackupConfig::default(),
            node_ssh: Vec::new(),
        }
    }
}

/// Values given on the command line; they win over every other layer.
#[derive(Clone, Debug, Default)]
pub struct CliOverrides {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url URL`.
    pub database_url: Option<String>,
}

/// A configuration problem, phrased so the user knows what to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The configuration plus the warnings produced while loading it.
#[derive(Debug)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Problems that do not stop start-up (unknown variables, …).
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads the configuration from the process environment.
    pub fn load(cli: &CliOverrides) -> Result<Loaded, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(cli, &env)
    }

    /// Loads the configuration from the given environment (tests pass their own).
    pub fn load_from(cli: &CliOverrides, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let mut warnings = Vec::new();
        let env_data_dir = env
            .iter()
            .find(|(k, _)| k == "CTFORGE_DATA_DIR")
            .map(|(_, v)| PathBuf::from(v));
        let data_dir = cli
            .data_dir
            .clone()
            .or(env_data_dir)
            .unwrap_or_else(|| Config::default().data_dir);
        let env_config_file = env
            .iter()
            .find(|(k, _)| k == "CTFORGE_CONFIG")
            .map(|(_, v)| PathBuf::from(v));

        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match cli.config_file.clone().or(env_config_file) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!(
                        "cannot read config file {}: {e}; check the --config path",
                        path.display()
                    ))
                })?;
                figment = figment.merge(Toml::string(&text));
                check_toml(&path, &text)?;
            }
            None => {
                let default_path = data_dir.join("ctforge.toml");
                if let Ok(text) = std::fs::read_to_string(&default_path) {
                    check_toml(&default_path, &text)?;
                    figment = figment.merge(Toml::string(&text));
                }
            }
        }

        let known = known_env_keys();
        let mut plain = Vec::new();
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("CTFORGE_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue;
            }
            let (name, from_file) = match rest.strip_suffix("_FILE") {
                Some(base) if known.contains(&base.to_ascii_lowercase()) => (base, true),
                _ => (rest, false),
            };
            let lower = name.to_ascii_lowercase();
            if OTHER_ENV
                .iter()
                .any(|p| lower == *p || (p.ends_with('_') && lower.starts_with(p)))
            {
                continue;
            }
            if !known.contains(&lower) {
                warnings.push(format!("unknown environment variable {key} is ignored"));
                continue;
            }
            let value = if from_file {
                read_secret_file(key, Path::new(value))?
            } else {
                value.clone()
            };
            plain.push((lower.replace("__", "."), value));
        }
        for (key, value) in plain {
            let parsed = parse_env_value(&key, &value);
            figment = figment.merge(Serialized::global(&key, parsed));
        }

        if let Some(listen) = &cli.listen {
            figment = figment.merge(Serialized::global("listen", listen));
        }
        if let Some(dir) = &cli.data_dir {
            figment = figment.merge(Serialized::global("data_dir", dir));
        }
        if let Some(url) = &cli.database_url {
            figment = figment.merge(Serialized::global("database_url", url));
        }

        let mut config: Config = figment.extract().map_err(|e| {
            ConfigError(format!(
                "invalid configuration: {}",
                one_line(&e.to_string())
            ))
        })?;
        for target in &mut config.notifications.targets {
            if target.secret.is_none()
                && let Some(file) = &target.secret_file
            {
                let secret = read_secret_file(
                    &format!("notifications.targets.{}.secret_file", target.name),
                    file,
                )?;
                target.secret = Some(Secret::new(secret));
            }
        }
        for cluster in &mut config.clusters {
            if cluster.token_secret.is_none()
                && let Some(file) = &cluster.token_secret_file
            {
                let secret = read_secret_file(
                    &format!("clusters.{}.token_secret_file", cluster.name),
                    file,
                )?;
                cluster.token_secret = Some(Secret::new(secret));
            }
        }
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    /// Checks values that deserialise fine but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError(format!(
                "database_url must start with sqlite:// or postgres://, got {:?}; fix CTFORGE_DATABASE_URL",
                redact_url(&url)
            )));
        }
        if let Some(redis) = &self.redis_url
            && !(redis.expose().starts_with("redis://") || redis.expose().starts_with("rediss://"))
        {
            return Err(ConfigError(
                "redis_url must start with redis:// or rediss://; fix CTFORGE_REDIS_URL".to_owned(),
            ));
        }
        self.server.trusted_networks()?;
        if let Some(public) = &self.server.public_url {
            let parsed = url::Url::parse(public).map_err(|e| {
                ConfigError(format!("server.public_url {public:?} is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError(format!(
                    "server.public_url {public:?} must start with http:// or https://"
                )));
            }
        }
        for cluster in &self.clusters {
            let url = url::Url::parse(&cluster.url).map_err(|e| {
                ConfigError(format!(
                    "cluster {:?} has an invalid url {:?}: {e}",
                    cluster.name, cluster.url
                ))
            })?;
            if url.scheme() == "http" && !cluster.allow_insecure_http {
                return Err(ConfigError(format!(
                    "cluster {:?} has an http:// url; use https:// or set allow_insecure_http = true for it",
                    cluster.name
                )));
            }
        }
        self.notifications.validate().map_err(ConfigError)?;
        if self.backup.dir.is_some() {
            if self.backup.passphrase_file.is_none() {
                return Err(ConfigError(
                    "[backup] dir is set but passphrase_file is not: name a file holding the backup passphrase".to_owned(),
                ));
            }
            if self.backup.keep == 0 || self.backup.interval_secs < 60 {
                return Err(ConfigError(
                    "[backup] keep must be at least 1 and interval_secs at least 60".to_owned(),
                ));
            }
        }
        for admin in &self.auth.admins {
            if crate::roles::split_identity(admin).is_none() {
                return Err(ConfigError(format!(
                    "[auth] admins: {admin:?} is not user@realm@cluster (e.g. root@pam@lab)"
                )));
            }
        }
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError(format!(
                "listen address {:?} is not HOST:PORT (e.g. 127.0.0.1:8080); fix --listen or CTFORGE_LISTEN",
                self.listen
            ))
        })
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("ctforge.db").display()),
        }
    }

    /// The configuration as TOML with every secret redacted (for `ctforge config show`).
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = Some(Secret::new(redact_url(&self.database_url())));
        let mut value = toml::Value::try_from(&shown).unwrap_or(toml::Value::String(String::new()));
        if let (Some(table), Some(url)) = (value.as_table_mut(), shown.database_url.as_ref()) {
            table.insert(
                "database_url".to_owned(),
                toml::Value::String(url.expose().to_owned()),
            );
        }
        toml::to_string_pretty(&value).unwrap_or_default()
    }
}

/// Removes the password from a URL (`postgres://u:pw@h/db` → `postgres://u:<redacted>@h/db`).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("<redacted>"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| {
            ConfigError(format!(
                "cannot read {key} file {}: {e}; check the path and its permissions",
                path.display()
            ))
        })
}

fn check_toml(path: &Path, text: &str) -> Result<(), ConfigError> {
    text.parse::<toml::Table>().map(|_| ()).map_err(|e| {
        ConfigError(format!(
            "config file {} is not valid TOML: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Environment values are strings; lists (`a,b`) and numbers are recognised for known keys.
fn parse_env_value(key: &str, value: &str) -> toml::Value {
    match key {
        "auth.admins" => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        "templates.roots" => toml::Value::Array(
            value
                .split([',', ':'])
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        "workers.concurrency"
        | "templates.git_sync_interval_secs"
        | "workers.per_node"
        | "monitoring.interval_secs"
        | "monitoring.concurrency"
        | "provisioning.command_timeout_secs"
        | "provisioning.settle_timeout_secs"
        | "provisioning.probe_timeout_secs"
        | "dashboard.fresh_ms"
        | "images.gc_interval_secs"
        | "job_log.head_lines"
        | "job_log.tail_lines"
        | "backup.interval_secs"
        | "backup.keep"
        | "notifications.dedupe_window_secs"
        | "notifications.max_per_minute"
        | "notifications.queue_capacity"
        | "notifications.retries"
        | "notifications.retry_backoff_ms"
        | "notifications.timeout_secs" => value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or_else(|_| toml::Value::String(value.to_owned())),
        "server.trusted_proxies" => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        "monitoring.web_links" | "server.secure_cookies" | "images.auto_build" => {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => toml::Value::String(value.to_owned()),
            }
        }
        _ => toml::Value::String(value.to_owned()),
    }
}

/// `CTFORGE_*` variables read by other parts (the CLI client, tests, the simulator), lower-case;
/// a trailing `_` matches a prefix.
const OTHER_ENV: &[&str] = &[
    "url",
    "token",
    "pve_schema",
    "ct_password",
    "git_revision",
    "skip_lxc",
    "sim_",
    "lxc_",
    "fuzz_seconds",
    "test_",
];

/// Every key that may be set from the environment, lower-case with `__` for nesting.
fn known_env_keys() -> BTreeSet<String> {
    [
        "listen",
        "data_dir",
        "database_url",
        "redis_url",
        "redis_prefix",
        "secret_key",
        "log_format",
        "log_level",
        "templates__roots",
        "templates__git_sync_interval_secs",
        "workers__concurrency",
        "workers__per_node",
        "monitoring__interval_secs",
        "monitoring__concurrency",
        "monitoring__web_links",
        "provisioning__command_timeout_secs",
        "provisioning__settle_timeout_secs",
        "provisioning__probe_timeout_secs",
        "dashboard__fresh_ms",
        "images__auto_build",
        "images__gc_interval_secs",
        "server__public_url",
        "server__secure_cookies",
        "server__trusted_proxy_header",
        "server__trusted_proxies",
        "job_log__head_lines",
        "job_log__tail_lines",
        "auth__admins",
        "notifications__dedupe_window_secs",
        "notifications__max_per_minute",
        "notifications__queue_capacity",
        "notifications__retries",
        "notifications__retry_backoff_ms",
        "notifications__timeout_secs",
        "backup__dir",
        "backup__interval_secs",
        "backup__keep",
        "backup__passphrase_file",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply() {
        let loaded = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        assert_eq!(loaded.config.listen, "127.0.0.1:8080");
        assert_eq!(loaded.config.database_url(), "sqlite://./data/ctforge.db");
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlog_level = \"debug\"\n[workers]\nconcurrency = 9\nper_node = 1\n").unwrap();
        let cli = CliOverrides {
            config_file: Some(file),
            listen: Some("127.0.0.1:3".into()),
            ..Default::default()
        };
        let loaded = Config::load_from(
            &cli,
            &env(&[
                ("CTFORGE_LISTEN", "127.0.0.1:2"),
                ("CTFORGE_LOG_LEVEL", "warn"),
                ("CTFORGE_WORKERS__PER_NODE", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.config.listen, "127.0.0.1:3");
        assert_eq!(loaded.config.log_level, "warn");
        assert_eq!(loaded.config.workers.concurrency, 9);
        assert_eq!(loaded.config.workers.per_node, 5);
    }

    #[test]
    fn monitoring_defaults_file_and_env() {
        let defaults = Config::load_from(&CliOverrides::default(), &[]).unwrap();
        let m = &defaults.config.monitoring;
        assert_eq!(
            (m.interval_secs, m.concurrency, m.web_links),
            (300, 4, true)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[monitoring]\ninterval_secs = 0\n").unwrap();
        let cli = CliOverrides {
            config_file: Some(file),
            ..Default::default()
        };
        let loaded = Config::load_from(
            &cli,
            &env(&[
                ("CTFORGE_MONITORING__CONCURRENCY", "2"),
                ("CTFORGE_MONITORING__WEB_LINKS", "false"),
            ]),
        )
        .unwrap();
        let m = &loaded.config.monitoring;
        assert_eq!((m.interval_secs, m.concurrency, m.web_links), (0, 2, false));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn admins_and_insecure_http_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let load = |text: &str, vars: &[(&str, &str)]| {
            std::fs::write(&file, text).unwrap();
            let cli = CliOverrides {
                config_file: Some(file.clone()),
                ..Default::default()
            };
            Config::load_from(&cli, &env(vars))
        };
        let cluster =
            "[[clusters]]\nname = \"lab\"\nurl = \"http://pve:8006\"\ntoken_id = \"root@pam!c\"\n";
        let err = load(cluster, &[]).unwrap_err().to_string();
        assert!(err.contains("allow_insecure_http"), "{err}");
        let allowed = format!("{cluster}allow_insecure_http = true\n");
        assert!(load(&allowed, &[]).unwrap().config.clusters[0].allow_insecure_http);
        let loaded = load(
            "[auth]\nadmins = [\"root@pam@lab\"]\n",
            &[("CTFORGE_AUTH__ADMINS", "alice@pve@lab, bob@pve@b")],
        )
        .unwrap();
        assert_eq!(loaded.config.auth.admins, ["alice@pve@lab", "bob@pve@b"]);
        let err = load("[auth]\nadmins = [\"root@pam\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("user@realm@cluster"), "{err}");
    }

    #[test]
    fn server_and_job_log_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\npublic_url = \"https://ctforge.example\"\ntrusted_proxy_header = \"X-Forwarded-For\"\n[job_log]\nhead_lines = 10\n",
        )
        .unwrap();
        let cli = CliOverrides {
            config_file: Some(file),
            ..Default::default()
        };
        let loaded = Config::load_from(
            &cli,
            &env(&[
                ("CTFORGE_SERVER__TRUSTED_PROXIES", "10.0.0.1, 10.1.0.0/16"),
                ("CTFORGE_JOB_LOG__TAIL_LINES", "20"),
            ]),
        )
        .unwrap();
        let c = &loaded.config;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!((c.job_log.head_lines, c.job_log.tail_lines), (10, 20));
        let none = axum::http::HeaderMap::new();
        assert!(c.server.secure_cookies(&none), "https public URL");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("203.0.113.7, 10.1.2.3"),
        );
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // From a trusted proxy: the right-most address that is not a proxy.
        assert_eq!(
            c.server.client_addr(ip("10.0.0.1"), &headers),
            ip("203.0.113.7")
        );
        // From anyone else: the peer, whatever the header says.
        assert_eq!(
            c.server.client_addr(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        // No header configured: the peer.
        assert_eq!(
            ServerConfig::default().client_addr(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
        let bad = Config::load_from(
            &CliOverrides::default(),
            &env(&[("CTFORGE_SERVER__TRUSTED_PROXIES", "not-an-address")]),
        );
        assert!(
            bad.is_err_and(|e| e.to_string().contains("trusted_proxies")),
            "a bad proxy address stops start-up"
        );
    }

    #[test]
    fn secret_from_file_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "c2VjcmV0\n").unwrap();
        let loaded = Config::load_from(
            &CliOverrides::default(),
            &env(&[
                ("CTFORGE_SECRET_KEY_FILE", file.to_str().unwrap()),
                ("CTFORGE_DATABASE_URL", "postgres://u:hunter2@localhost/db"),
            ]),
        )
        .unwrap();
        assert_eq!(
            loaded.config.secret_key.as_ref().unwrap().expose(),
            "c2VjcmV0"
        );
        let shown = loaded.config.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(format!("{:?}", loaded.config).contains("<redacted>"));
    }

    #[test]
    fn unknown_env_warns_and_bad_values_fail_clearly() {
        let loaded =
            Config::load_from(&CliOverrides::default(), &env(&[("CTFORGE_LISTN", "x")])).unwrap();
        assert_eq!(
            loaded.warnings,
            vec!["unknown environment variable CTFORGE_LISTN is ignored"]
        );
        let err = Config::load_from(
            &CliOverrides::default(),
            &env(&[("CTFORGE_LISTEN", "nope")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CTFORGE_LISTEN"), "{err}");
        let err = Config::load_from(
            &CliOverrides::default(),
            &env(&[("CTFORGE_DATABASE_URL", "mysql://x")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("sqlite:// or postgres://"),
            "{err}"
        );
        let err = Config::load_from(
            &CliOverrides::default(),
            &env(&[("CTFORGE_SECRET_KEY_FILE", "/nonexistent/k")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn bad_toml_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \n").unwrap();
        let cli = CliOverrides {
            config_file: Some(file),
            ..Default::default()
        };
        let err = Config::load_from(&cli, &[]).unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
        assert!(!err.contains('\n'));
    }
}
