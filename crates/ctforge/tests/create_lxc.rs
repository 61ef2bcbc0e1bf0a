//! Real provisioning on real LXC containers through the simulator's lxc backend: the API
//! creates a CT from a template that installs nginx-light from Debian, deploys a file with each
//! policy, and runs a script that writes a credential and starts the service. Then the test
//! looks inside the real container and at ctforge's records.
//!
//! Needs root and the machine prepared by `scripts/setup-lxc.sh` (`.ci/run` runs it); skipped
//! with a message when not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctforge::config::ClusterBootstrap;
use ctforge_ssh::{
    HostKeyPolicy, PctChannel, PctOptions, PushMode, RemoteExec, SshAuth, SshSession, SshTarget,
};
use serde_json::json;

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    let out = channel.exec(cmd, &mut ignore).await.unwrap();
    (out.exit_code, out.stream_text(ctforge_ssh::Stream::Stdout))
}

#[tokio::test]
async fn real_provisioning_on_lxc() {
    if common::lxc::unavailable("real_provisioning_on_lxc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = common::lxc::sim(dir.path(), Vec::new()).await;
    let cluster = ClusterBootstrap {
        name: "lab".into(),
        ssh_host_key: sim.ssh_host_key_fingerprint.clone(),
        ..common::sim_cluster(&sim)
    };
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lxc-templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let session =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let (cookie, csrf) = (session.cookie.clone(), session.csrf.clone());
    let post = |path: &str, body: serde_json::Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    assert_eq!(
        post("/api/v1/templates/discover", json!({}))
            .await
            .unwrap()
            .status(),
        200
    );

    let started = Instant::now();
    let r = post("/api/v1/containers", json!({ "template": "nginx", "hostname": "web-real", "vmid": 4301, "password": "provision-me" })).await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    let (id, job_id) = (
        created["id"].as_i64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );

    // Destroy the CT whatever happens.
    struct Destroy(Option<tokio::runtime::Handle>, String, String, String);
    impl Drop for Destroy {
        fn drop(&mut self) {
            let _ = std::process::Command::new("lxc-stop")
                .args(["-P", &self.1, "-n", &self.2, "-k"])
                .output();
            let _ = std::process::Command::new("lxc-destroy")
                .args(["-P", &self.1, "-n", &self.2])
                .output();
            let _ = (&self.0, &self.3);
        }
    }
    let _guard = Destroy(
        None,
        dir.path().join("lxc").display().to_string(),
        "4301".into(),
        String::new(),
    );

    let job = loop {
        let job: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/jobs/{job_id}", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(job["state"].as_str(), Some("succeeded" | "failed")) {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "job did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let pipeline = started.elapsed();
    if job["state"] != "succeeded" {
        let events: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/jobs/{job_id}/events", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        panic!("job failed: {job}\n{events}");
    }
    println!("provisioning pipeline took {:.1} s", pipeline.as_secs_f64());

    // Inside the real container.
    let target = SshTarget::new(
        "127.0.0.1",
        sim.ssh_addr.unwrap().port(),
        "root",
        SshAuth::Password(sim.root_password.clone().into()),
        HostKeyPolicy::TrustOnFirstUse,
    );
    let session = Arc::new(SshSession::connect(&target).await.unwrap());
    let ct = PctChannel::new(session, 4301).with_options(PctOptions {
        push_mode: PushMode::ExecCat,
        ..PctOptions::default()
    });
    assert_eq!(
        sh(
            &ct,
            "dpkg -s nginx-light | grep -q 'Status: install ok installed'"
        )
        .await
        .0,
        0,
        "package installed"
    );
    assert_eq!(
        sh(&ct, "cat /var/www/html/index.html").await.1,
        "<h1>provisioned by ctforge</h1>\n",
        "replace policy"
    );
    assert_eq!(
        sh(&ct, "cat /etc/motd").await.1,
        "welcome to a ctforge container\n",
        "backup policy writes"
    );
    assert_eq!(
        sh(&ct, "ls /etc/motd.bak.* | wc -l").await.1.trim(),
        "1",
        "backup policy keeps the old file"
    );
    assert!(
        !sh(&ct, "cat /etc/issue")
            .await
            .1
            .contains("should not replace"),
        "default policy keeps an existing file"
    );
    assert_eq!(
        sh(&ct, "cat /etc/ctforge-test/fresh.txt").await.1,
        "created only when missing\n",
        "default policy writes a missing file"
    );
    assert_eq!(
        sh(&ct, "systemctl is-enabled ctforge-apply.service")
            .await
            .1
            .trim(),
        "enabled",
        "config-manager installed"
    );
    let (_, ports) = sh(&ct, "ss -tlnp").await;
    assert!(ports.contains(":80 ") && ports.contains("nginx"), "{ports}");
    let (_, secret) = sh(&ct, "cat /etc/ctforge/credentials/admin-password").await;

    // In ctforge's records.
    let record = app.state.store.get_container(id).await.unwrap();
    assert_eq!(record.status, "ready");
    let ip = record.ip.clone().unwrap();
    assert!(ip.starts_with("10.151.0."), "{ip}");
    let services = app.state.store.list_services(id).await.unwrap();
    let nginx = services
        .iter()
        .find(|s| s.unit == "nginx.service")
        .unwrap_or_else(|| panic!("{services:?}"));
    assert_eq!(
        (nginx.active_state.as_str(), nginx.port),
        ("active", Some(80))
    );
    assert_eq!(
        nginx.url.as_deref(),
        Some(format!("http://{ip}:80").as_str())
    );
    let credentials = app.state.store.list_credentials(id).await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert!(
        !credentials[0].value_sealed.contains(secret.trim()),
        "sealed at rest"
    );
    assert_eq!(
        app.state
            .keyring
            .open(&credentials[0].value_sealed)
            .unwrap()
            .expose(),
        secret.trim()
    );
}
