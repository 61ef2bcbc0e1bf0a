//! `ctforge serve --demo`: everything a newcomer needs in one process — an embedded Proxmox
//! simulator (memory backend, 3 nodes, a few existing containers), configured as the cluster,
//! and the example templates that ship with ctforge (a web server, a database, a dev box),
//! discovered on start together with the configured roots (`templates.roots`,
//! `CTFORGE_TEMPLATES__ROOTS`, `serve --templates DIR`). The demo keeps its own database under `<data-dir>/demo`, recreated on
//! every start, because the simulated cluster starts fresh too.

use std::path::Path;

use anyhow::Context;
use ctforge_pve_sim::{SimConfig, SimHandle, Timings};
use include_dir::{Dir, include_dir};
use rand::Rng;

use crate::config::{ClusterBootstrap, Config, Secret};

/// The example templates, embedded in the binary.
static EXAMPLES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/templates");

/// A running demo environment.
pub struct Demo {
    /// The simulator (dropped = stopped).
    pub sim: SimHandle,
    /// Password of `root@pam` in the simulator.
    pub password: String,
}

/// Writes the embedded example templates to `dir`.
pub fn write_examples(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    EXAMPLES
        .extract(dir)
        .with_context(|| format!("cannot write the example templates to {}", dir.display()))
}

/// Starts the simulator and points `config` at it (cluster, fresh demo database, the example
/// templates ahead of the configured roots, so a user's own templates show up in the demo too).
pub async fn prepare(config: &mut Config) -> anyhow::Result<Demo> {
    let demo_dir = config.data_dir.join("demo");
    for file in ["ctforge.db", "ctforge.db-wal", "ctforge.db-shm"] {
        let _ = std::fs::remove_file(demo_dir.join(file));
    }
    std::fs::create_dir_all(&demo_dir)
        .with_context(|| format!("cannot create {}", demo_dir.display()))?;
    let templates = demo_dir.join("templates");
    let _ = std::fs::remove_dir_all(&templates);
    write_examples(&templates)?;

    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    let mut sim_config = SimConfig::for_tests()
        .with_tls(true)
        .with_ssh()
        .with_nodes(3)
        .with_containers(6);
    sim_config.root_password = Some(password.clone());
    // Tasks take a fraction of real Proxmox's time: long enough to watch, short enough to wait.
    sim_config.timings = Timings::realistic().scaled(0.4);
    sim_config.timings.auth_failure_delay = std::time::Duration::from_millis(500);
    let sim = ctforge_pve_sim::start(sim_config)
        .await
        .context("cannot start the embedded Proxmox simulator")?;

    config.data_dir = demo_dir;
    config.database_url = None;
    let own = std::mem::take(&mut config.templates.roots);
    config.templates.roots = std::iter::once(templates).chain(own).collect();
    // The demo's containers are simulated; their addresses lead nowhere.
    config.monitoring.web_links = false;
    config.clusters = vec![ClusterBootstrap {
        name: "demo".into(),
        url: sim.base_url.clone(),
        token_id: sim.token_id.clone(),
        token_secret: Some(Secret::new(sim.token_secret.clone())),
        token_secret_file: None,
        fingerprint: Some(sim.fingerprint.clone()),
        ssh_user: "root".into(),
        ssh_port: sim.ssh_addr.map(|a| a.port()).unwrap_or(22),
        ssh_password: Some(Secret::new(password.clone())),
        ssh_key_file: None,
        ssh_host_key: sim.ssh_host_key_fingerprint.clone(),
        default: true,
        allow_insecure_http: false,
    }];
    // The embedded simulator's host keys are known here: every node's key is confirmed.
    config.node_ssh = sim
        .ssh_nodes
        .iter()
        .map(|n| crate::config::NodeSshBootstrap {
            cluster: "demo".into(),
            node: n.node.clone(),
            address: None,
            port: None,
            host_key: Some(n.fingerprint.clone()),
        })
        .collect();
    Ok(Demo { sim, password })
}

/// The banner printed once the demo is up.
pub fn banner(url: &str, demo: &Demo) -> String {
    format!(
        "\nctforge demo is running\n  open:      {url}\n  sign in:   user root, realm pam, password {}\n  simulator: {} (3 nodes, memory backend)\n  also try:  alice / alice (realm pve) — a user without power rights\nPress Ctrl-C to stop.\n",
        demo.password, demo.sim.base_url
    )
}
