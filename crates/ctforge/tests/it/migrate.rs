//! Per-node SSH and migration over real HTTP against a three-node simulator (memory backend,
//! one SSH endpoint per node): monitoring reaches each guest through its own node (the
//! simulator's per-node SSH log proves it), `POST /api/v1/containers/{id}/migrate` runs as a
//! job with Proxmox's task log, behind `VM.Migrate` and the container's lock, audited, and the
//! next `pct` goes to the new node — also after a move ctforge did not make (re-resolved and
//! retried once on Proxmox's "does not exist").

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use ctforge::storage::model::{AuditFilter, NewContainer, NewJob};
use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

const SCENARIO: &str = r#"
node_count = 3

[[containers]]
vmid = 300
node = "pve1"
hostname = "mover"
status = "running"

[[containers]]
vmid = 301
node = "pve2"
hostname = "middle"
status = "running"

[[containers]]
vmid = 302
node = "pve3"
hostname = "far"
status = "running"
"#;

async fn sim() -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(SCENARIO, |c| {
        c.with_nodes(3).with_timings(Timings::instant())
    })
    .await
}

async fn app_for(sim: &SimHandle) -> common::TestApp {
    let c = common::sim_cluster(sim);
    common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![c];
    })
    .await
}

type Session = common::ApiSession;

async fn record(app: &common::TestApp, vmid: i64, node: &str, hostname: &str) -> i64 {
    let cluster = app.state.store.get_cluster_by_name("sim").await.unwrap();
    let (id, _) = app
        .state
        .store
        .create_container_with_job(
            &NewContainer {
                cluster_id: cluster.id,
                node: node.into(),
                vmid,
                hostname: hostname.into(),
                template_id: None,
                status: ctforge::status::RecordStatus::Ready,
                spec_json: "{}".into(),
                root_password_sealed: None,
                created_by: "root@pam".into(),
            },
            &NewJob {
                // No handler knows this kind: the workers fail it without touching the record.
                kind: "test_record".into(),
                container_id: None,
                node: Some(node.into()),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
            },
        )
        .await
        .unwrap();
    id
}

async fn get_json(app: &common::TestApp, s: &Session, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(app: &common::TestApp, s: &Session, path: &str, body: Value) -> (u16, Value) {
    let r = s.post(&app.client, &app.address, path, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_job(app: &common::TestApp, s: &Session, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = get_json(app, s, &format!("/api/v1/jobs/{id}")).await;
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn job_log(app: &common::TestApp, id: i64) -> Vec<String> {
    app.state
        .store
        .job_events_after(id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "log")
        .map(|e| e.data)
        .collect()
}

async fn refresh(app: &common::TestApp, s: &Session, id: i64) -> (u16, Value) {
    post(
        app,
        s,
        &format!("/api/v1/containers/{id}/services/refresh"),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn each_guest_is_monitored_through_its_own_node_and_follows_a_migration() {
    let sim = sim().await;
    let app = app_for(&sim).await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let state = sim.state();
    let mut ids = Vec::new();
    for (vmid, node, name) in [
        (300, "pve1", "mover"),
        (301, "pve2", "middle"),
        (302, "pve3", "far"),
    ] {
        let id = record(&app, vmid, node, name).await;
        let (status, body) = refresh(&app, &root, id).await;
        assert_eq!(status, 200, "refresh of CT {vmid}: {body}");
        let here = state.ssh_commands_for(node, vmid as u32);
        assert!(!here.is_empty(), "CT {vmid} was probed through {node}");
        for other in ["pve1", "pve2", "pve3"].into_iter().filter(|n| *n != node) {
            assert!(
                state.ssh_commands_for(other, vmid as u32).is_empty(),
                "CT {vmid} must not be reached through {other}"
            );
        }
        ids.push(id);
    }

    // Migrate pve1 → pve3 in restart mode: a job with Proxmox's task log, audited.
    let (status, accepted) = post(
        &app,
        &root,
        &format!("/api/v1/containers/{}/migrate", ids[0]),
        json!({"target": "pve3", "restart": true}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["from"], "pve1");
    let job_id = accepted["job_id"].as_i64().unwrap();
    let job = wait_job(&app, &root, job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "migrate_container");
    let log = job_log(&app, job_id).await;
    assert!(
        log.iter()
            .any(|l| l.starts_with("starting migration of CT 300 to node 'pve3'")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l == "start container on target node"),
        "{log:?}"
    );
    let (_, detail) = get_json(&app, &root, &format!("/api/v1/containers/{}", ids[0])).await;
    assert_eq!(detail["node"], "pve3", "{detail}");
    let audit = app
        .state
        .store
        .list_audit(&AuditFilter {
            action: Some("ct.migrate".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].outcome, "ok");
    assert_eq!(audit[0].target, "ct:sim:300");

    // Monitoring goes to pve3 now, without anyone telling it.
    let before_pve1 = state.ssh_commands_for("pve1", 300).len();
    let (status, body) = refresh(&app, &root, ids[0]).await;
    assert_eq!(status, 200, "{body}");
    assert!(!state.ssh_commands_for("pve3", 300).is_empty());
    assert_eq!(state.ssh_commands_for("pve1", 300).len(), before_pve1);

    // Moved behind ctforge's back (as HA would): pve2's answer "does not exist" sends the
    // command to pve1 once, found again in /cluster/resources.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let upid: Value = client
        .post(format!("{}/nodes/pve2/lxc/301/migrate", sim.api_url()))
        .header("Authorization", sim.token_header())
        .form(&[("target", "pve1"), ("restart", "1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upid = upid["data"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.task(&upid).map(|t| t.running).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the migration task did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pve2_before = state.ssh_commands_for("pve2", 301).len();
    let (status, body) = refresh(&app, &root, ids[1]).await;
    assert_eq!(status, 200, "{body}");
    assert!(state.ssh_commands_for("pve2", 301).len() >= pve2_before);
    assert!(
        !state.ssh_commands_for("pve1", 301).is_empty(),
        "retried on pve1"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn migrate_needs_vm_migrate_the_lock_and_restart_for_a_running_guest() {
    let sim = sim().await;
    let app = app_for(&sim).await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let id = record(&app, 300, "pve1", "mover").await;
    let path = format!("/api/v1/containers/{id}/migrate");

    // alice holds VM.Audit and VM.Console, not VM.Migrate: Proxmox's refusal, audited.
    let alice = common::api_login(&app.client, &app.address, "alice", "alice", "pve").await;
    let (status, body) = post(&app, &alice, &path, json!({"target": "pve2"})).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("VM.Migrate"), "{body}");
    let denied = app
        .state
        .store
        .list_audit(&AuditFilter {
            action: Some("ct.migrate".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].outcome, "denied");

    // Running without restart mode: Proxmox's rule, before anything is queued.
    let (status, body) = post(&app, &root, &path, json!({"target": "pve2"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("--restart"), "{body}");

    // Another action holds the container's lock.
    assert!(
        app.state
            .locks
            .try_lock("ct:sim:300", "someone-else", 60_000)
            .await
            .unwrap()
    );
    let (status, body) = post(
        &app,
        &root,
        &path,
        json!({"target": "pve2", "restart": true}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("another action"), "{body}");
    app.state
        .locks
        .unlock("ct:sim:300", "someone-else")
        .await
        .unwrap();

    // Not another node / not a node at all.
    let (status, _) = post(
        &app,
        &root,
        &path,
        json!({"target": "pve1", "restart": true}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(
        &app,
        &root,
        &path,
        json!({"target": "pve9", "restart": true}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post(&app, &root, &path, json!({"target": "../x"})).await;
    assert_eq!(status, 400);

    // The page's choices: the other nodes with their free resources.
    let (status, targets) = get_json(&app, &root, &path).await;
    assert_eq!(status, 200, "{targets}");
    assert_eq!(targets["node"], "pve1");
    assert_eq!(targets["running"], true);
    let names: Vec<&str> = targets["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pve2", "pve3"]);
    assert!(targets["nodes"][0]["free_mem"].as_u64().unwrap() > 0);

    // While a migration runs, the lock turns other actions away.
    let hold = sim
        .state()
        .hold(ctforge_pve_sim::HoldPoint::Task("vzmigrate".into()));
    let (status, accepted) = post(
        &app,
        &root,
        &path,
        json!({"target": "pve2", "restart": true}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let (status, body) = post(
        &app,
        &root,
        &format!("/api/v1/containers/{id}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    hold.release();
    let job = wait_job(&app, &root, accepted["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (status, body) = post(
        &app,
        &root,
        &format!("/api/v1/containers/{id}/stop"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node"], "pve2");
    app.stop().await.unwrap();
}
