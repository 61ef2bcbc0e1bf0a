//! `deploy/install-in-ct.sh` run the way an admin runs it on a Proxmox VE host, against the
//! simulator's lxc backend: `pct`, `pvesh` and `pveam` are thin shims
//! (`tests/fixtures/pve-shims`) that send create/start/nextid/storage queries to the
//! simulator's HTTP API and everything else (`pct exec`, `pct push`, `pct status`) to its SSH
//! `pct` endpoint. The test first builds ctforge's Debian package from this build
//! (`cargo deb --no-build --profile dev`), the script creates a real Debian 12 LXC container
//! and installs the package, and the test then reaches `/readyz` at the URL it prints, runs
//! the script a second time (idempotent: same CT, still ready) and checks the unit runs as the
//! unprivileged `ctforge` user. Then the package's life cycle: enabled unit, modes of the data
//! and configuration, `apt remove` keeps the data and stops the service, a reinstall enables
//! but does not start it, `systemctl start` serves again, `apt purge` deletes the data.
//!
//! Needs root, `cargo-deb` (`.ci/run` installs it) and the machine prepared by
//! `scripts/setup-lxc.sh`; skipped with a message when not root or when `CTFORGE_SKIP_LXC=1`.

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

    let deb = build_deb(dir.path());
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
        ("CTFORGE_DEB".into(), deb.display().to_string()),
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
    // The simulator keeps each node's containers under their own LXC path (`lxc/<node>/<vmid>`).
    let lxc = std::fs::read_dir(dir.path().join("sim/lxc"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|node| node.join(&vmid).is_dir())
        .unwrap_or_else(|| dir.path().join("sim/lxc/pve1"));
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
    package_life_cycle(&env, &lxc, &vmid, &deb, &url).await;
}

/// Builds the .deb from this build's binary (the test profile's `ctforge`) into `out`.
fn build_deb(out: &Path) -> PathBuf {
    let built = Command::new("cargo")
        .args([
            "deb",
            "-p",
            "ctforge",
            "--no-build",
            "--profile",
            "dev",
            "--output",
        ])
        .arg(out)
        .current_dir(repo())
        .output()
        .expect("cargo is on PATH");
    assert!(
        built.status.success(),
        "cargo deb (install it with `cargo install cargo-deb --locked`; .ci/run does): {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("cargo deb wrote a .deb");
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for path in [
        "./usr/bin/ctforge",
        "/systemd/system/ctforge.service",
        "/systemd/system/ctforge-worker.service",
        "./etc/ctforge/ctforge.toml",
    ] {
        assert!(listing.contains(path), "{path} in the package:\n{listing}");
    }
    deb
}

/// `sh -c SCRIPT` in the CT; (exit status, stdout + stderr).
fn in_ct(lxc: &Path, vmid: &str, script: &str) -> (bool, String) {
    let out = Command::new("lxc-attach")
        .arg("-P")
        .arg(lxc)
        .args(["-n", vmid, "--", "sh", "-c", script])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn package_life_cycle(
    env: &[(String, String)],
    lxc: &Path,
    vmid: &str,
    deb: &Path,
    url: &str,
) {
    let (_, state) = in_ct(
        lxc,
        vmid,
        "systemctl is-enabled ctforge; stat -c '%U:%G %a' /var/lib/ctforge /etc/ctforge/ctforge.toml; \
         dpkg-query -W -f='${Conffiles}' ctforge",
    );
    assert!(state.starts_with("enabled\n"), "{state}");
    assert!(
        state.contains("ctforge:ctforge 700"),
        "data directory: {state}"
    );
    assert!(state.contains("root:ctforge 640"), "configuration: {state}");
    assert!(
        state.contains("/etc/ctforge/ctforge.toml"),
        "a conffile: {state}"
    );
    // Man pages and completions, generated by postinst from the installed binary.
    let (_, docs) = in_ct(
        lxc,
        vmid,
        "test -s /usr/share/man/man1/ctforge.1 && echo man; \
         test -s /usr/share/man/man1/ctforge-apply.1 && echo subcommand; \
         grep -q _ctforge /usr/share/bash-completion/completions/ctforge && echo bash",
    );
    assert_eq!(
        docs.trim(),
        "man\nsubcommand\nbash",
        "man pages and completions: {docs}"
    );

    // Remove: the service stops, the data and the configuration stay.
    let (ok, out) = in_ct(
        lxc,
        vmid,
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q ctforge",
    );
    assert!(ok, "apt remove: {out}");
    let (_, out) = in_ct(
        lxc,
        vmid,
        "test -x /usr/bin/ctforge && echo binary; test -f /var/lib/ctforge/ctforge.db && echo data; \
         test -f /etc/ctforge/ctforge.toml && echo config; pgrep -x ctforge || echo stopped",
    );
    assert_eq!(out.trim(), "data\nconfig\nstopped", "after apt remove");
    let (_, docs) = in_ct(
        lxc,
        vmid,
        "ls /usr/share/man/man1/ctforge* /usr/share/bash-completion/completions/ctforge 2>/dev/null; echo checked",
    );
    assert_eq!(
        docs.trim(),
        "checked",
        "generated docs left after apt remove"
    );

    // Reinstall: enabled again, not started until the admin starts it; then it serves the
    // data it kept.
    let path = env.iter().find(|(k, _)| k == "PATH").unwrap();
    let pushed = Command::new("pct")
        .args(["push", vmid])
        .arg(deb)
        .args(["/tmp/ctforge.deb"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", &path.1)
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{pushed:?}");
    let (ok, out) = in_ct(
        lxc,
        vmid,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/ctforge.deb",
    );
    assert!(ok, "reinstall: {out}");
    let (_, out) = in_ct(
        lxc,
        vmid,
        "systemctl is-enabled ctforge; systemctl is-active ctforge",
    );
    assert_eq!(out.trim(), "enabled\ninactive", "installed, not started");
    let (ok, out) = in_ct(lxc, vmid, "systemctl start ctforge");
    assert!(ok, "{out}");
    if let Err(e) = ready(url).await {
        panic!("{e}\nservice:\n{}", diagnose(lxc, vmid));
    }

    // Purge: the data and the configuration go.
    let (ok, out) = in_ct(
        lxc,
        vmid,
        "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ctforge",
    );
    assert!(ok, "apt purge: {out}");
    let (_, out) = in_ct(
        lxc,
        vmid,
        "test -e /var/lib/ctforge && echo data; test -e /etc/ctforge && echo config; \
         systemctl is-enabled ctforge 2>/dev/null; echo purged",
    );
    assert!(
        !out.lines()
            .any(|l| l == "data" || l == "config" || l == "enabled"),
        "after apt purge: {out}"
    );
}
