//! Day-two operations on a real LXC container (the simulator's lxc backend): a snapshot copies
//! the root filesystem, a clone from it copies the snapshot's files (not the current ones), a
//! file changed afterwards inside the running container is back as it was after the rollback,
//! and a file created afterwards is gone.
//!
//! Needs root and the machine prepared by `scripts/setup-lxc.sh`; skipped with a message when
//! not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common;

use ctforge_ssh::{PctChannel, RemoteExec};
use serde_json::{Value, json};

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    match channel.exec(cmd, &mut ignore).await {
        Ok(out) => (out.exit_code, out.stream_text(ctforge_ssh::Stream::Stdout)),
        Err(e) => (255, e.to_string()),
    }
}

async fn call(p: &common::lxc::Provisioned, path: &str, body: Value) -> (u16, Value) {
    let r = p
        .session
        .post(&p.app.client, &p.app.address, path, body)
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn snapshot_change_rollback_restores_the_files_on_lxc() {
    if common::lxc::unavailable("snapshot_change_rollback_restores_the_files_on_lxc") {
        return;
    }
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lxc-templates");
    let body = json!({ "hostname": "snap-real", "vmid": 4341, "password": "provision-me" });
    let (p, job) = common::lxc::provision_from(root, body, |_| {}).await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", p.events().await);
    let id = p.id;
    let ct = p.channel().await;
    assert_eq!(sh(&ct, "echo before > /root/marker.txt").await.0, 0);

    let (st, out) = call(
        &p,
        &format!("/api/v1/containers/{id}/snapshots"),
        json!({"name": "before", "description": "real"}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    // Each node has its own namespace: `<state>/lxc/<node>/<vmid>`.
    let snapdir = p.dir.path().join("lxc/pve1/4341/snapshots/before");
    assert!(
        snapdir.join("root/marker.txt").is_file(),
        "the snapshot holds a copy of the root filesystem"
    );

    assert_eq!(
        sh(&ct, "echo after > /root/marker.txt && touch /root/new-file")
            .await
            .0,
        0
    );
    assert_eq!(sh(&ct, "cat /root/marker.txt").await.1, "after\n");

    // A clone from the snapshot copies the snapshot's files, not the current ones (Proxmox's
    // `snapname`): a running CT is fully cloned from a snapshot.
    let (st, out) = call(
        &p,
        &format!("/api/v1/containers/{id}/clone"),
        json!({"newid": 4342, "hostname": "snap-clone", "snapshot": "before"}),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let clone_root = p.dir.path().join("lxc/pve1/4342/rootfs");
    assert_eq!(
        std::fs::read_to_string(clone_root.join("root/marker.txt")).unwrap(),
        "before\n",
        "the clone has the snapshot's file"
    );
    assert!(
        !clone_root.join("root/new-file").exists(),
        "and not what was created after the snapshot"
    );

    let (st, out) = call(
        &p,
        &format!("/api/v1/containers/{id}/snapshots/before/rollback"),
        json!({"start": true}),
    )
    .await;
    assert_eq!(st, 200, "{out}");

    // The start after the rollback is its own task: wait for the guest to answer again.
    let started = Instant::now();
    let (code, text) = loop {
        let ct = p.channel().await;
        let (code, text) = sh(&ct, "cat /root/marker.txt").await;
        if code == 0 || started.elapsed() > Duration::from_secs(60) {
            break (code, text);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!((code, text.as_str()), (0, "before\n"), "the file is back");
    let ct = p.channel().await;
    assert_ne!(
        sh(&ct, "test -e /root/new-file").await.0,
        0,
        "the newer file is gone"
    );

    // The boot log of the real guest, live over the pct channel.
    let mut r = p
        .app
        .client
        .get(format!("{}/api/v1/containers/{id}/journal", p.app.address))
        .header("cookie", &p.session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !body.contains("event: line") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), r.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    assert!(body.contains("event: line"), "boot log lines: {body}");
}
