//! Killing the worker in the middle of each creation step in turn: every job still ends ready,
//! with no duplicate CT and no lost or repeated event. A killed worker's lease expires and a new
//! worker resumes from the first step not completed.
//!
//! The kill point is explicit: the simulator holds a task or an in-CT command of the step
//! (`SimState::hold`) until the test has killed the worker, so no step can finish first.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use ctforge::jobs::{Worker, WorkerOptions};
use ctforge_pve_sim::HoldPoint;
use serde_json::json;

fn options(owner: &str) -> WorkerOptions {
    WorkerOptions {
        lease: Duration::from_millis(1500),
        idle_poll: Duration::from_millis(50),
        owner: owner.to_owned(),
        ..WorkerOptions::default()
    }
}

#[tokio::test]
async fn killing_the_worker_mid_step_never_loses_or_duplicates() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c).await;
    let cluster = common::sim_cluster(&sim);
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
        c.workers.concurrency = 0;
    })
    .await;
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "t", "127.0.0.1")
        .await
        .unwrap();
    let post = |path: &str, body: serde_json::Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&token)
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
    // Where each step is held: its Proxmox task, or an in-CT command only that step runs.
    let holds = [
        ("create", HoldPoint::Task("vzcreate".into())),
        ("start", HoldPoint::Task("vzstart".into())),
        (
            "deploy",
            HoldPoint::Exec("enable ctforge-apply.service".into()),
        ),
        ("install", HoldPoint::Exec("apt-get install".into())),
        ("scripts", HoldPoint::Exec("CTFORGE_HOSTNAME=".into())),
        (
            "discover",
            HoldPoint::Exec(format!("cat {}", ctforge::guest::commands::BASELINE)),
        ),
    ];
    for (i, (step, point)) in holds.into_iter().enumerate() {
        let hold = sim.state().hold(point);
        let r = post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": format!("crash-{i}") }),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 202);
        let created: serde_json::Value = r.json().await.unwrap();
        let (id, job_id, vmid) = (
            created["id"].as_i64().unwrap(),
            created["job_id"].as_i64().unwrap(),
            created["vmid"].as_u64().unwrap(),
        );

        let first = Worker::new(app.state.jobs.clone(), options(&format!("first-{i}"))).spawn();
        if tokio::time::timeout(Duration::from_secs(60), hold.reached())
            .await
            .is_err()
        {
            let job = app.state.store.get_job(job_id).await.unwrap();
            panic!("the job did not reach the hold in step {step} within 60 s: {job:?}");
        }
        let job = app.state.store.get_job(job_id).await.unwrap();
        assert_eq!(
            (job.current_step.as_deref(), job.state.as_str()),
            (Some(step), "running"),
            "held in step {step}"
        );
        first.abort();
        hold.release();

        let second = Worker::new(app.state.jobs.clone(), options(&format!("second-{i}"))).spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        let job = loop {
            let job = app.state.store.get_job(job_id).await.unwrap();
            if matches!(job.state.as_str(), "succeeded" | "failed") {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "job did not finish after the kill at {step}: {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        second.stop().await;
        assert_eq!(job.state, "succeeded", "killed at {step}: {job:?}");
        assert!(job.attempts >= 2, "resumed by the second worker");
        assert_eq!(
            app.state.store.get_container(id).await.unwrap().status,
            "ready",
            "killed at {step}"
        );
        let hostname = format!("crash-{i}");
        let same_host: Vec<u32> = sim.state().with(|c| {
            c.cts
                .values()
                .filter(|ct| ct.conf.get("hostname") == Some(&hostname))
                .map(|ct| ct.vmid)
                .collect()
        });
        assert_eq!(
            same_host,
            vec![u32::try_from(vmid).unwrap()],
            "exactly one CT after a kill at {step}"
        );
        let seqs: Vec<i64> = app
            .state
            .store
            .job_events_after(job_id, 0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "events contiguous after a kill at {step}"
        );
    }
}
