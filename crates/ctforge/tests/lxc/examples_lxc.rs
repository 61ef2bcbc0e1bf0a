//! The shipped example templates (`examples/templates/`) provisioned to Ready on real LXC, as
//! the demo provisions them on the memory backend (`it/journey.rs`). `dev-box`'s pip bucket is
//! left out: it downloads from PyPI, which the guests here cannot reach (only Debian, through
//! the apt proxy), so the request picks its apt buckets as a user would in the wizard.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge_ssh::{PctChannel, RemoteExec};

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/templates")
}

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    let out = channel.exec(cmd, &mut ignore).await.unwrap();
    (out.exit_code, out.stream_text(ctforge_ssh::Stream::Stdout))
}

/// Provisions `body` from the examples and asserts the job succeeded and the record is ready.
async fn ready(name: &str, body: serde_json::Value) -> common::lxc::Provisioned {
    let (p, job) = common::lxc::provision_from(examples(), body, |_| {}).await;
    let log: Vec<String> = p
        .app
        .state
        .store
        .job_events_after(p.job_id, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "log")
        .map(|e| e.data)
        .collect();
    assert_eq!(
        job["state"],
        "succeeded",
        "{name}: {job}\n{}",
        log.join("\n")
    );
    let record = p.app.state.store.get_container(p.id).await.unwrap();
    assert_eq!(record.status, "ready", "{name}");
    p
}

#[tokio::test]
async fn the_shipped_examples_reach_ready_on_lxc() {
    if common::lxc::unavailable("the_shipped_examples_reach_ready_on_lxc") {
        return;
    }
    // nginx-web: the site is served.
    let p = ready(
        "nginx-web",
        serde_json::json!({ "template": "nginx-web", "hostname": "ex-web", "vmid": 4401 }),
    )
    .await;
    let ct = p.channel().await;
    assert_eq!(
        sh(&ct, "systemctl is-active nginx").await.1.trim(),
        "active"
    );
    drop(ct);
    drop(p);

    // postgres-db: the database runs and its password is a sealed credential.
    let p = ready(
        "postgres-db",
        serde_json::json!({ "template": "postgres-db", "hostname": "ex-db", "vmid": 4402 }),
    )
    .await;
    let ct = p.channel().await;
    assert_eq!(
        sh(&ct, "systemctl is-active postgresql").await.1.trim(),
        "active"
    );
    let creds = p.app.state.store.list_credentials(p.id).await.unwrap();
    assert!(!creds.is_empty(), "postgres-db leaves its password");
    drop(ct);
    drop(p);

    // dev-box: keyctl (root@pam's own ticket creates it), the apt buckets installed.
    let p = ready(
        "dev-box",
        serde_json::json!({
            "template": "dev-box", "hostname": "ex-dev", "vmid": 4403,
            "buckets": ["languages", "tools"],
        }),
    )
    .await;
    let ct = p.channel().await;
    for tool in ["git", "node", "python3", "make"] {
        assert_eq!(
            sh(&ct, &format!("command -v {tool} >/dev/null")).await.0,
            0,
            "{tool} installed"
        );
    }
}
