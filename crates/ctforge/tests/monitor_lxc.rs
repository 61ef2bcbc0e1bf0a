//! Monitoring on a real LXC container through the simulator's lxc backend: provisions the
//! nginx fixture once (as `create_lxc.rs` does), then stops and starts nginx inside the real
//! container and refreshes through the API: `service_down` and `service_up` are recorded, and
//! nginx's web link is probed over the bridge (plain HTTP, title "Welcome to nginx!"). Prints
//! how long one refresh takes.
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
use serde_json::{Value, json};

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    let out = channel.exec(cmd, &mut ignore).await.unwrap();
    (out.exit_code, out.tail_text())
}

fn nginx(body: &Value) -> &Value {
    body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["unit"] == "nginx.service")
        .unwrap_or_else(|| panic!("nginx.service in {body}"))
}

fn kinds(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn monitoring_on_a_real_lxc_container() {
    if common::lxc::unavailable("monitoring_on_a_real_lxc_container") {
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
        // The CT sits on the test bridge (10.151.0.0/24) this machine set up: probe it.
        c.monitoring.web_links = true;
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
    let r = post("/api/v1/containers", json!({ "template": "nginx", "hostname": "web-watch", "vmid": 4302, "password": "provision-me" })).await.unwrap();
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
        "4302".into(),
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

    let target = SshTarget::new(
        "127.0.0.1",
        sim.ssh_addr.unwrap().port(),
        "root",
        SshAuth::Password(sim.root_password.clone().into()),
        HostKeyPolicy::TrustOnFirstUse,
    );
    let session = Arc::new(SshSession::connect(&target).await.unwrap());
    let ct = PctChannel::new(session, 4302).with_options(PctOptions {
        push_mode: PushMode::ExecCat,
        ..PctOptions::default()
    });
    // The fixture's index.html has no title; Debian's default page has one.
    let (code, out) = sh(&ct, "rm -f /var/www/html/index.html").await;
    assert_eq!(code, 0, "{out}");

    let refresh = || async {
        let started = Instant::now();
        let r = post(
            &format!("/api/v1/containers/{id}/services/refresh"),
            json!({}),
        )
        .await
        .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        (started.elapsed(), body)
    };

    // Up, with its web link.
    let (took, body) = refresh().await;
    println!(
        "lxc backend: one refresh took {} ms over HTTP ({} ms for the batched command; the rest is SSH set-up, the web-link probe and the records)",
        took.as_millis(),
        body["duration_ms"]
    );
    assert_eq!(body["ok"], true, "{body}");
    let ip = app.state.store.get_container(id).await.unwrap().ip.unwrap();
    let web = nginx(&body);
    assert_eq!(web["active_state"], "active", "{body}");
    assert_eq!(web["port"], 80);
    assert_eq!(web["url"], format!("http://{ip}:80"));
    assert_eq!(web["web_title"], "Welcome to nginx!", "{body}");
    assert_eq!(web["web_answered"], true);
    assert!(kinds(&body).is_empty(), "{body}");
    assert_eq!(body["credentials"], json!(["admin-password"]));
    assert_eq!(body["config_manager"]["enabled"], true, "{body}");

    // Down inside the real container.
    let (code, out) = sh(&ct, "systemctl stop nginx").await;
    assert_eq!(code, 0, "{out}");
    let (took_down, body) = refresh().await;
    assert_eq!(kinds(&body), ["service_down"], "{body}");
    let web = nginx(&body);
    assert_eq!(
        (&web["active_state"], &web["sub_state"]),
        (&json!("inactive"), &json!("dead"))
    );
    assert_eq!(web["web_answered"], false, "nothing listens on :80 now");

    // And up again.
    let (code, out) = sh(&ct, "systemctl start nginx").await;
    assert_eq!(code, 0, "{out}");
    let (took_up, body) = refresh().await;
    assert_eq!(kinds(&body), ["service_up"], "{body}");
    assert_eq!(nginx(&body)["active_state"], "active");
    assert_eq!(nginx(&body)["web_title"], "Welcome to nginx!");
    println!(
        "lxc backend: refresh after stop {} ms, after start {} ms",
        took_down.as_millis(),
        took_up.as_millis()
    );
    let events = app
        .state
        .store
        .list_container_events(id, None, None, 50)
        .await
        .unwrap();
    let recorded: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.starts_with("service_"))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(recorded, ["service_up", "service_down"]);
}
