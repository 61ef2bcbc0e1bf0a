//! `ctforge sim`: run the simulator from the command line, print how to reach
//! it, and write `<state-dir>/cluster.toml` for `ctforge serve --config`.
//!
//! `--setup-lxc` prepares the machine for `--backend lxc` first by running
//! `scripts/setup-lxc.sh`, which is embedded in the binary ([`SETUP_LXC_SCRIPT`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Backend, LxcOptions, SimConfig, Timings};
use crate::scenario::Scenario;

/// Arguments of `ctforge sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// HTTP(S) listen address of the API.
    #[arg(long, default_value = "127.0.0.1:8006")]
    pub listen: SocketAddr,
    /// SSH listen address of the nodes' `pct` endpoints: one address (node 1; on 127.0.0.1
    /// node N listens on 127.0.0.N with the same port, elsewhere on port + N - 1) or a comma
    /// list with one address per node.
    #[arg(long, default_value = "127.0.0.1:2222", value_delimiter = ',')]
    pub ssh_listen: Vec<SocketAddr>,
    /// Disable the SSH endpoint.
    #[arg(long)]
    pub no_ssh: bool,
    /// Container backend: memory or lxc.
    #[arg(long, default_value = "memory")]
    pub backend: Backend,
    /// Number of nodes (pve1…pveN).
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Number of pre-existing containers.
    #[arg(long, default_value_t = 20)]
    pub containers: u32,
    /// Scenario TOML file.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// State directory (state.json, TLS cert, SSH host key, cluster.toml).
    #[arg(long, default_value = "ctforge-sim")]
    pub state_dir: PathBuf,
    /// Password of root@pam (random when absent).
    #[arg(long)]
    pub root_password: Option<String>,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    pub plain_http: bool,
    /// Task duration factor (0 = instant, 1 = realistic).
    #[arg(long, default_value_t = 1.0)]
    pub task_speed: f64,
    /// Delay of 401 answers in milliseconds (real PVE: 3000).
    #[arg(long, default_value_t = 3000)]
    pub auth_delay_ms: u64,
    /// Run the lxc setup (bridge, apt proxy, Debian 12 template; as root) before
    /// starting; with `--setup-only`, exit afterwards.
    #[arg(long)]
    pub setup_lxc: bool,
    /// With `--setup-lxc`: only prepare the machine, do not start the simulator.
    #[arg(long)]
    pub setup_only: bool,
    /// lxc backend: the Debian 12 template tarball (default
    /// `$CTFORGE_SIM_CACHE/debian-12.tar.zst`, `/var/cache/ctforge-sim/…`).
    #[arg(long)]
    pub lxc_template: Option<PathBuf>,
}

/// `scripts/setup-lxc.sh`, embedded: installs the packages, creates the bridge,
/// starts apt-cacher-ng and builds the Debian 12 template (idempotent).
pub const SETUP_LXC_SCRIPT: &str = include_str!("../../../scripts/setup-lxc.sh");

/// Run the embedded setup script with bash (as root), streaming its output.
pub fn setup_lxc() -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("bash")
        .arg("-s")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut w) = child.stdin.take() {
        w.write_all(SETUP_LXC_SCRIPT.as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        anyhow::bail!("setup-lxc failed ({status})");
    }
    Ok(())
}

impl SimArgs {
    /// The simulator config these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let scenario = match &self.scenario {
            Some(p) => Some(Scenario::load(p)?),
            None => None,
        };
        let mut timings = Timings::realistic().scaled(self.task_speed);
        timings.auth_failure_delay = std::time::Duration::from_millis(self.auth_delay_ms);
        Ok(SimConfig {
            listen: self.listen,
            ssh_listen: if self.no_ssh {
                None
            } else {
                self.ssh_listen.first().copied()
            },
            ssh_node_listen: if self.ssh_listen.len() > 1 {
                self.ssh_listen.clone()
            } else {
                Vec::new()
            },
            tls: !self.plain_http,
            nodes: self.nodes,
            containers: self.containers,
            root_password: self.root_password.clone(),
            token_secret: None,
            scenario,
            state_dir: Some(self.state_dir.clone()),
            backend: self.backend,
            lxc: {
                let mut o = LxcOptions::default();
                if let Some(t) = &self.lxc_template {
                    o.template = t.clone();
                }
                o
            },
            timings,
            ssh_authorized_keys: Vec::new(),
            seed: 0x5eed,
        })
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The `[[clusters]]` entry for ctforge's configuration.
pub fn cluster_toml(h: &crate::SimHandle) -> String {
    let mut s = String::from("[[clusters]]\n");
    s.push_str("name = \"sim\"\n");
    s.push_str(&format!("url = {}\n", toml_str(&h.base_url)));
    s.push_str(&format!("token_id = {}\n", toml_str(&h.token_id)));
    s.push_str(&format!("token_secret = {}\n", toml_str(&h.token_secret)));
    if !h.fingerprint.is_empty() {
        s.push_str(&format!("fingerprint = {}\n", toml_str(&h.fingerprint)));
    }
    s.push_str("ssh_user = \"root\"\n");
    if let Some(a) = h.ssh_addr {
        s.push_str(&format!("ssh_port = {}\n", a.port()));
    }
    s.push_str(&format!("ssh_password = {}\n", toml_str(&h.root_password)));
    s.push_str("default = true\n");
    // Every node's host key is written as confirmed (the simulator knows its own keys); a
    // node whose endpoint is not at its `/cluster/status` address with the cluster's SSH port
    // also gets an override, so ctforge reaches every node.
    let port = h.ssh_addr.map(|a| a.port());
    for n in &h.ssh_nodes {
        s.push_str("\n[[node_ssh]]\ncluster = \"sim\"\n");
        s.push_str(&format!("node = {}\n", toml_str(&n.node)));
        if Some(n.addr.port()) != port {
            s.push_str(&format!(
                "address = {}\n",
                toml_str(&n.addr.ip().to_string())
            ));
            s.push_str(&format!("port = {}\n", n.addr.port()));
        }
        s.push_str(&format!("host_key = {}\n", toml_str(&n.fingerprint)));
    }
    s
}

/// Run the simulator until Ctrl-C.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    if args.setup_lxc {
        tokio::task::spawn_blocking(setup_lxc).await??;
        if args.setup_only {
            return Ok(());
        }
    }
    let cfg = args.to_config()?;
    let handle = crate::start(cfg).await?;
    std::fs::create_dir_all(&args.state_dir)?;
    let toml_path = args.state_dir.join("cluster.toml");
    std::fs::write(&toml_path, cluster_toml(&handle))?;
    println!("ctforge PVE simulator ({} backend)", args.backend_name());
    println!("  URL:             {}", handle.base_url);
    if !handle.fingerprint.is_empty() {
        println!("  TLS fingerprint: {}", handle.fingerprint);
    }
    println!("  root@pam:        {}", handle.root_password);
    println!(
        "  API token:       {}={}",
        handle.token_id, handle.token_secret
    );
    println!(
        "  no-rights token: root@pam!noperm={}",
        handle.noperm_token_secret
    );
    println!(
        "  alice@pve:       alice (VM.Audit + VM.Console)   carol@pve: carol + TOTP JBSWY3DPEHPK3PXP"
    );
    if handle.ssh_nodes.is_empty() {
        println!("  SSH:             disabled");
    }
    for n in &handle.ssh_nodes {
        println!(
            "  SSH {:<12} root@{} port {} ({})",
            format!("{}:", n.node),
            n.addr.ip(),
            n.addr.port(),
            n.fingerprint
        );
    }
    println!("  cluster config:  {}", toml_path.display());
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

impl SimArgs {
    fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory => "memory",
            Backend::Lxc => "lxc",
        }
    }
}
