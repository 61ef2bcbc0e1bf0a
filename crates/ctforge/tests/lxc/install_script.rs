//! `deploy/install-in-ct.sh` run the way an admin runs it on a Proxmox VE host, against the
//! simulator's lxc backend: `pct`, `pvesh` and `pveam` are thin shims
//! (`tests/fixtures/pve-shims`) that send create/start/nextid/storage queries to the
//! simulator's HTTP API and everything else (`pct exec`, `pct push`, `pct status`) to its SSH
//! `pct` endpoint. The script creates a real LXC container, installs this build of ctforge
//! with the hardened systemd unit, and prints the URL; the test then reaches `/readyz` at that
//! URL, runs the script a second time (idempotent: same CT, still ready) and checks the unit
//! runs as the unprivileged `ctforge` user.
//!
//! Needs root and the machine prepared by `scripts/setup-lxc.sh`; skipped with a message when
//! not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn run_script(env: &[(String, String)], vmid: &str) -> (bool, String) {
    let out = tokio::process::Command::new("bash")
        .arg(repo().join("deploy/install-in-ct.sh"))
        .arg(vmid)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The unit's status and journal inside the CT, for failure messages.
fn diagnose(lxc: &Path, vmid: &str) -> String {
    let out = Command::new("lxc-attach")
        .arg("-P")
        .arg(lxc)
        .args([
            "-n",
            vmid,
            "--",
            "sh",
            "-c",
            "systemctl status ctforge --no-pager; journalctl -u ctforge --no-pager -n 40",
        ])
        .output();
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => e.to_string(),
    }
}

async fn ready(url: &str) -> Result<(), String> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{url}/readyz")).send().await {
            Ok(r) if r.status() == 200 => return Ok(()),
            other => {
                if Instant::now() > deadline {
                    return Err(format!("{url}/readyz: {other:?}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// Multi-threaded: the test blocks on child processes (ssh-keyscan, the script) that talk to
// the simulator running on this same runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_script_sets_ctforge_up_in_a_new_container_idempotently() {
    if common::lxc::unavailable("install_script") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let sim = common::lxc::sim(&dir.path().join("sim"), vec![public.trim().to_owned()]).await;
    let ssh_port = sim.ssh_addr.unwrap().port().to_string();

    // Pin the simulator's SSH host key: scan it, check it against the fingerprint the
    // simulator reports, and only then trust it.
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &ssh_port, "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        !scan.stdout.is_empty(),
        "ssh-keyscan of the simulator on port {ssh_port}: {}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, &scan.stdout).unwrap();
    let fingerprint = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&known_hosts)
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout).to_string();
    let expected = sim.ssh_host_key_fingerprint.clone().unwrap();
    assert!(
        fingerprint.contains(expected.trim_start_matches("SHA256:")),
        "scanned host key {fingerprint} is the simulator's {expected}"
    );

    let shims = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pve-shims");
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env: Vec<(String, String)> = vec![
        ("PATH".into(), path),
        (
            "SIM_URL".into(),
            sim.base_url.trim_end_matches('/').to_owned(),
        ),
        (
            "SIM_TOKEN".into(),
            format!("{}={}", sim.token_id, sim.token_secret),
        ),
        ("SIM_NODE".into(), "pve1".into()),
        ("SIM_SSH_PORT".into(), ssh_port),
        ("SIM_KEY".into(), key.display().to_string()),
        ("SIM_KNOWN_HOSTS".into(), known_hosts.display().to_string()),
        (
            "CTFORGE_BINARY".into(),
            env!("CARGO_BIN_EXE_ctforge").into(),
        ),
        ("CT_HOSTNAME".into(), "ctforge-app".into()),
        ("CT_BRIDGE".into(), "vmbr0".into()),
    ];

    let started = Instant::now();
    let (ok, first) = run_script(&env, "").await;
    assert!(ok, "first run failed:\n{first}");
    let took = started.elapsed();
    let url = first
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("the script prints the URL:\n{first}"))
        .to_owned();
    assert!(!url.contains("<container-ip>"), "{first}");
    let vmid = first
        .lines()
        .find_map(|l| l.strip_prefix("ctforge is running in CT "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let lxc = dir.path().join("sim/lxc");
    if let Err(e) = ready(&url).await {
        panic!(
            "{e}\nscript output:\n{first}\nservice:\n{}",
            diagnose(&lxc, &vmid)
        );
    }

    // Runs as the unprivileged user under the hardened unit.
    let user = Command::new("lxc-attach")
        .arg("-P")
        .arg(&lxc)
        .args([
            "-n",
            &vmid,
            "--",
            "sh",
            "-c",
            "ps -o user= -C ctforge; systemctl show -p ProtectSystem,NoNewPrivileges ctforge",
        ])
        .output()
        .unwrap();
    let user = String::from_utf8_lossy(&user.stdout).to_string();
    assert!(
        user.contains("ctforge")
            && user.contains("ProtectSystem=strict")
            && user.contains("NoNewPrivileges=yes"),
        "{user}"
    );

    // Idempotent: a second run reuses the container and leaves ctforge ready.
    let (ok, second) = run_script(&env, &vmid).await;
    assert!(ok, "second run failed:\n{second}");
    assert!(
        second.contains(&format!("container {vmid} exists; reusing it")),
        "{second}"
    );
    assert!(second.contains(&url), "same URL:\n{second}");
    if let Err(e) = ready(&url).await {
        panic!(
            "{e}\nscript output:\n{second}\nservice:\n{}",
            diagnose(&lxc, &vmid)
        );
    }
    println!(
        "install-in-ct.sh: CT {vmid} serving at {url} after {:.1} s (first run)",
        took.as_secs_f64()
    );
}
