//! `deploy/build-image` run in the suite: it builds `localhost/ctforge-test:<pid>` from this
//! build's binary (stripped copy) with podman and no registry, the container starts, its
//! health check passes, `/readyz` answers through the published port and the process is not
//! root. The image size is printed. Skipped with the reason when podman is absent or the test
//! does not run as root (the lxc binary's rule).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn podman(args: &[&str]) -> (bool, String) {
    let out = Command::new("podman").args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Removes the test's container and image however the test ends.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.container]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_image_makes_a_working_non_root_image_without_a_registry() {
    if common::lxc::unavailable("build_image") {
        return;
    }
    ctforge::install_crypto_provider();
    if Command::new("podman").arg("--version").output().is_err() {
        println!("SKIPPED build_image: podman is not installed (apt-get install podman)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("ctforge");
    assert!(
        Command::new("strip")
            .arg("-o")
            .arg(&binary)
            .arg(env!("CARGO_BIN_EXE_ctforge"))
            .status()
            .unwrap()
            .success()
    );
    let tag = format!("localhost/ctforge-test:{}", std::process::id());
    let name = format!("ctforge-image-test-{}", std::process::id());
    let _cleanup = Cleanup {
        container: name.clone(),
        image: tag.clone(),
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/build-image");
    let built = Command::new(&script)
        .arg("--binary")
        .arg(&binary)
        .args(["--tag", &tag, "--print-size"])
        .env("CONTAINER_ENGINE", "podman")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(built.status.success(), "deploy/build-image:\n{log}");
    let size: u64 = log
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Sandboxed CI hosts (hybrid cgroups, capped rlimits) need runc and explicit ulimits no
    // higher than the host's; on an ordinary host these change nothing that matters.
    let mut run: Vec<String> = Vec::new();
    if Command::new("runc").arg("--version").output().is_ok() {
        run.extend(["--runtime".into(), "runc".into()]);
    }
    run.extend(
        [
            "run",
            "-d",
            "--name",
            &name,
            "--pull=never",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            "-p",
            &format!("127.0.0.1:{port}:8080"),
            &tag,
        ]
        .map(str::to_owned),
    );
    let (ok, out) = podman(&run.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "podman run: {out}");

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if matches!(&r, Ok(r) if r.status() == 200) {
            break;
        }
        if Instant::now() > deadline {
            let (_, logs) = podman(&["logs", &name]);
            panic!("/readyz did not answer: {r:?}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The image's HEALTHCHECK (`ctforge healthcheck`), run now rather than after its interval.
    let (ok, out) = podman(&["healthcheck", "run", &name]);
    assert!(ok, "health check: {out}");
    let (_, health) = podman(&["inspect", "--format", "{{.State.Health.Status}}", &name]);
    assert_eq!(health.trim(), "healthy");
    let (_, user) = podman(&["top", &name, "user", "huser", "args"]);
    assert!(
        user.lines()
            .skip(1)
            .filter(|l| l.contains("ctforge"))
            .all(|l| !l.split_whitespace().next().unwrap_or("root").eq("root")),
        "the process is not root:\n{user}"
    );
    let (_, config_user) = podman(&["image", "inspect", "--format", "{{.Config.User}}", &tag]);
    assert_eq!(config_user.trim(), "10001:10001");
    println!(
        "build-image: {tag} is {:.1} MB (stripped test build; no registry pulled)",
        size as f64 / 1e6
    );
}
