//! Drift and re-apply on a real LXC container (the simulator's lxc backend): a managed file
//! changed inside the container, another changed in the template, a third changed in both
//! (the conflict) — the Template tab shows all three with their diffs; a re-apply resolves the
//! conflict as chosen (checked inside the container); a re-apply whose script fails is rolled
//! back to its snapshot and the container's file is as before (checked inside the container).
//!
//! Needs root and the machine prepared by `scripts/setup-lxc.sh`; skipped with a message when
//! not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use ctforge_ssh::{PctChannel, RemoteExec};
use serde_json::{Value, json};

use crate::common;

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    match channel.exec(cmd, &mut ignore).await {
        Ok(out) => (out.exit_code, out.stream_text(ctforge_ssh::Stream::Stdout)),
        Err(e) => (255, e.to_string()),
    }
}

async fn get(p: &common::lxc::Provisioned, path: &str) -> (u16, String) {
    let r = p
        .app
        .client
        .get(format!("{}{path}", p.app.address))
        .header("cookie", &p.session.cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(p: &common::lxc::Provisioned, path: &str, body: Value) -> (u16, Value) {
    let r = p
        .session
        .post(&p.app.client, &p.app.address, path, body)
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_job(p: &common::lxc::Provisioned, id: i64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let (_, text) = get(p, &format!("/api/v1/jobs/{id}")).await;
        let job: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "job {id}: {job}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn drift(p: &common::lxc::Provisioned) -> Value {
    let (status, text) = get(p, &format!("/api/v1/containers/{}/drift", p.id)).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn state_of<'a>(drift: &'a Value, name: &str) -> &'a str {
    drift["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["state"].as_str())
        .unwrap_or_else(|| panic!("{name} in {drift}"))
}

#[tokio::test]
async fn drift_reapply_and_a_failed_reapply_rolled_back_on_lxc() {
    if common::lxc::unavailable("drift_reapply_and_a_failed_reapply_rolled_back_on_lxc") {
        return;
    }
    let templates = tempfile::tempdir().unwrap();
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lxc-templates"),
        templates.path(),
    );
    let files = templates.path().join("nginx/container-configs/files");
    let body = json!({ "template": "nginx", "hostname": "drift-real", "vmid": 4351, "password": "provision-me" });
    let (p, job) = common::lxc::provision_from(templates.path().to_owned(), body, |_| {}).await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", p.events().await);
    let ct = p.channel().await;

    // Inside: motd (only here) and fresh.txt (also in the template: the conflict).
    assert_eq!(sh(&ct, "echo 'local motd' > /etc/motd").await.0, 0);
    assert_eq!(
        sh(&ct, "echo 'local fresh' > /etc/ctforge-test/fresh.txt")
            .await
            .0,
        0
    );
    // In the template: index.html (only there) and fresh.txt.
    let index = std::fs::read_to_string(files.join("index.html")).unwrap();
    std::fs::write(files.join("index.html"), format!("{index}<!-- v2 -->\n")).unwrap();
    std::fs::write(files.join("fresh.txt"), "template fresh v2\n").unwrap();
    let (status, out) = post(&p, "/api/v1/templates/discover", json!({})).await;
    assert_eq!(status, 200, "{out}");

    let d = drift(&p).await;
    assert_eq!(d["container_checked"], true, "{d}");
    assert_eq!(state_of(&d, "motd"), "changed_here", "{d}");
    assert_eq!(state_of(&d, "index.html"), "changed_in_template", "{d}");
    assert_eq!(state_of(&d, "fresh.txt"), "conflict", "{d}");
    assert_eq!(d["conflicts"], 1, "{d}");

    let (status, html) = get(&p, &format!("/containers/{}?tab=template", p.id)).await;
    assert_eq!(status, 200);
    for needle in [
        "changed in the container",
        "changed in the template",
        "conflict: changed in both",
        "+local motd",
        "+&lt;!-- v2 --&gt;",
        "+template fresh v2",
    ] {
        assert!(html.contains(needle), "the Template tab shows {needle:?}");
    }

    // Re-apply: the conflict resolved by taking the template's version.
    let (status, accepted) = post(
        &p,
        &format!("/api/v1/containers/{}/reapply", p.id),
        json!({"files": {"fresh.txt": "take"}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = wait_job(&p, accepted["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        sh(&ct, "cat /etc/ctforge-test/fresh.txt").await.1,
        "template fresh v2\n"
    );
    assert_eq!(sh(&ct, "cat /etc/motd").await.1, "local motd\n", "kept");
    assert!(
        sh(&ct, "cat /var/www/html/index.html")
            .await
            .1
            .contains("<!-- v2 -->")
    );

    // A template change whose script fails: rolled back, the file as before.
    let before = sh(&ct, "cat /var/www/html/index.html").await.1;
    std::fs::write(files.join("index.html"), "<h1>v3</h1>\n").unwrap();
    std::fs::write(
        templates
            .path()
            .join("nginx/container-configs/scripts/30-fail.sh"),
        "#!/bin/bash\necho 'failing on purpose'\nexit 3\n",
    )
    .unwrap();
    let (status, out) = post(&p, "/api/v1/templates/discover", json!({})).await;
    assert_eq!(status, 200, "{out}");
    let (status, accepted) = post(
        &p,
        &format!("/api/v1/containers/{}/reapply", p.id),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = wait_job(&p, accepted["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["result"]["items"][0]["outcome"], "rolled_back", "{job}");
    // The rollback stopped and started the container: a new channel, the file as before.
    let ct = p.channel().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let now = loop {
        let (code, text) = sh(&ct, "cat /var/www/html/index.html").await;
        if code == 0 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(now, before, "the file is as before the failed re-apply");
    assert_eq!(drift(&p).await["newer_template"], true);
}
