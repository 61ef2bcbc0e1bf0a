//! Provisioning figures (run with `cargo bench -p ctforge --bench provisioning`):
//!
//! 1. Orchestration overhead: the webapp template provisioned on the simulator's memory
//!    backend with instant Proxmox tasks, so the pipeline time is ctforge's own work (database
//!    checkpoints, events, SSH round trips, task polling).
//! 2. Ten containers created at once on the lxc backend (real containers; needs root and
//!    `scripts/setup-lxc.sh`; skipped otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use ctforge_pve_sim::{Backend, LxcOptions, SimConfig};
use serde_json::json;

async fn app_for(
    sim: &ctforge_pve_sim::SimHandle,
    root: &str,
    concurrency: u32,
) -> (common::TestApp, String) {
    let cluster = common::sim_cluster(sim);
    let root = std::path::PathBuf::from(root);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
        c.workers.concurrency = concurrency;
        c.workers.per_node = concurrency;
    })
    .await;
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "bench", "127.0.0.1")
        .await
        .unwrap();
    let r = app
        .client
        .post(format!("{}/api/v1/templates/discover", app.address))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (app, token)
}

async fn create(app: &common::TestApp, token: &str, template: &str, hostname: &str) -> i64 {
    let r = app
        .client
        .post(format!("{}/api/v1/containers", app.address))
        .bearer_auth(token)
        .json(&json!({ "template": template, "hostname": hostname, "password": "bench-pw-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    r.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_i64()
        .unwrap()
}

async fn wait(app: &common::TestApp, job_id: i64, limit: Duration) -> ctforge::storage::model::Job {
    let started = Instant::now();
    loop {
        let job = app.state.store.get_job(job_id).await.unwrap();
        if matches!(job.state.as_str(), "succeeded" | "failed") {
            return job;
        }
        assert!(started.elapsed() < limit, "job {job_id} did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

#[tokio::main]
async fn main() {
    ctforge::install_crypto_provider();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/templates");

    // 1. Overhead on the memory backend with instant tasks.
    let sim = ctforge_pve_sim::start(SimConfig::for_tests().with_tls(true).with_ssh())
        .await
        .unwrap();
    let (app, token) = app_for(&sim, fixtures, 1).await;
    let mut durations = Vec::new();
    for i in 0..10 {
        let job = create(&app, &token, "webapp", &format!("overhead-{i}")).await;
        let job = wait(&app, job, Duration::from_secs(60)).await;
        assert_eq!(job.state, "succeeded");
        durations.push((job.finished_at.unwrap() - job.started_at.unwrap()) as f64);
    }
    durations.sort_by(f64::total_cmp);
    let commands = sim
        .state()
        .memory_backend()
        .map(|m| m.commands(100).len())
        .unwrap_or(0);
    println!(
        "orchestration overhead (webapp template: 3 files, 2 packages, 2 scripts; {} in-CT commands; tasks instant): median {:.0} ms, min {:.0} ms, max {:.0} ms per container",
        commands,
        durations[durations.len() / 2],
        durations[0],
        durations[durations.len() - 1]
    );
    drop(app);
    sim.shutdown().await;

    // 2. Ten at once on real LXC.
    if !is_root() || std::env::var("CTFORGE_SKIP_LXC").is_ok_and(|v| v == "1") {
        println!("ten at once on lxc: SKIPPED (needs root)");
        return;
    }
    let opts = LxcOptions {
        destroy_on_drop: true,
        ..LxcOptions::default()
    };
    if !opts.template.is_file() {
        println!("ten at once on lxc: SKIPPED (run scripts/setup-lxc.sh first)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::for_tests().with_tls(true).with_ssh();
    cfg.backend = Backend::Lxc;
    cfg.state_dir = Some(dir.path().to_owned());
    cfg.lxc = opts;
    let sim = ctforge_pve_sim::start(cfg).await.unwrap();
    let lxc_fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lxc-templates");
    let (app, token) = app_for(&sim, lxc_fixtures, 10).await;
    let started = Instant::now();
    let mut jobs = Vec::new();
    for i in 0..10 {
        jobs.push(create(&app, &token, "nginx", &format!("ten-{i}")).await);
    }
    let mut per_job = Vec::new();
    for job in jobs {
        let job = wait(&app, job, Duration::from_secs(900)).await;
        assert_eq!(job.state, "succeeded", "{job:?}");
        per_job.push((job.finished_at.unwrap() - job.started_at.unwrap()) as f64 / 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    per_job.sort_by(f64::total_cmp);
    println!(
        "ten at once on lxc (nginx-light from Debian via the apt proxy): all ready after {total:.1} s; per job median {:.1} s, max {:.1} s",
        per_job[per_job.len() / 2],
        per_job[per_job.len() - 1]
    );
    for i in 0..10 {
        let name = format!("{}", 100 + i);
        let path = dir.path().join("lxc");
        let _ = std::process::Command::new("lxc-stop")
            .args(["-P", &path.display().to_string(), "-n", &name, "-k"])
            .output();
        let _ = std::process::Command::new("lxc-destroy")
            .args(["-P", &path.display().to_string(), "-n", &name])
            .output();
    }
}
