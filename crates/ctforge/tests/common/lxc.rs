//! Helpers for the tests that run real LXC containers through the simulator's lxc backend:
//! whether they can run here, and a simulator on the machine's test bridge whose containers
//! are removed when it goes away.

use std::path::Path;

use ctforge_pve_sim::{Backend, LxcOptions, SimConfig, SimHandle};

/// True (after printing `SKIPPED <name>`) when real containers cannot be made here: not root,
/// or `CTFORGE_SKIP_LXC=1`.
pub fn unavailable(name: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false);
    if !root || std::env::var("CTFORGE_SKIP_LXC").is_ok_and(|v| v == "1") {
        println!("SKIPPED {name}: needs root (creates LXC containers)");
        return true;
    }
    false
}

/// Starts a simulator (TLS, SSH) with the lxc backend keeping its state in `state_dir`,
/// preparing the machine with `scripts/setup-lxc.sh` first when the bridge or the OS template
/// is missing. `authorized_keys` may log in to its SSH endpoint besides the root password.
pub async fn sim(state_dir: &Path, authorized_keys: Vec<String>) -> SimHandle {
    ctforge::install_crypto_provider();
    let opts = LxcOptions {
        destroy_on_drop: true,
        ..LxcOptions::default()
    };
    if !opts.template.is_file() || !Path::new("/sys/class/net").join(&opts.bridge).exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-lxc.sh");
        assert!(
            std::process::Command::new("bash")
                .arg(&script)
                .status()
                .unwrap()
                .success(),
            "setup-lxc.sh failed"
        );
    }
    let mut cfg = SimConfig::for_tests().with_ssh().with_tls(true);
    cfg.backend = Backend::Lxc;
    cfg.state_dir = Some(state_dir.to_owned());
    cfg.lxc = opts;
    cfg.ssh_authorized_keys = authorized_keys;
    ctforge_pve_sim::start(cfg).await.unwrap()
}
