#![allow(clippy::unwrap_used)]
//! The performance mechanisms, checked for correctness (no timings): jobs start on a wake-up
//! (in-process, PostgreSQL `NOTIFY`, Redis pub/sub) with a worker whose fallback poll is an
//! hour; concurrent dashboard views share one `/cluster/resources` (counted at the simulator)
//! within the freshness window, per identity, and say "as of"; streaming discovery stores what
//! the all-at-once discovery did.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ctforge::clock::{Clock, ManualClock, SystemClock};
use ctforge::events::{EventBus, JobProgress, LocalBus, RedisBus};
use ctforge::jobs::{
    JobContext, JobHandler, JobQueue, JobRegistry, StepError, WakeChannel, Worker, WorkerOptions,
};
use ctforge::storage::Store;
use ctforge::storage::model::{Job, NewJob};
use ctforge::templates::discovery::{Status, discover_roots};
use serde_json::Value;

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// One step that does nothing.
struct Noop;

#[async_trait]
impl JobHandler for Noop {
    fn kind(&self) -> &'static str {
        "noop"
    }
    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec!["only"]
    }
    async fn run_step(&self, _ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        Ok(())
    }
}

fn queue(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, channel: WakeChannel) -> Arc<JobQueue> {
    let registry = Arc::new(JobRegistry::new());
    registry.register(Arc::new(Noop));
    let progress = JobProgress::new(store.clone(), bus, Arc::new(SystemClock));
    Arc::new(JobQueue::new(store, progress, registry).with_channel(channel))
}

/// A worker that would poll only once an hour: whatever it runs, a wake-up started.
fn hour_poll_worker(queue: &Arc<JobQueue>) -> ctforge::jobs::WorkerHandle {
    Worker::new(
        queue.clone(),
        WorkerOptions {
            idle_poll: Duration::from_secs(3600),
            ..WorkerOptions::default()
        },
    )
    .spawn()
}

fn noop_job() -> NewJob {
    NewJob {
        kind: "noop".to_owned(),
        payload_json: "{}".to_owned(),
        created_by: "root@pam".to_owned(),
        ..NewJob::default()
    }
}

/// Waits (without a deadline shorter than the test's own) until the job succeeded.
async fn succeeded(store: &dyn Store, id: i64) {
    let wait = async {
        loop {
            if store.get_job(id).await.unwrap().state == "succeeded" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("job {id} did not run: no wake-up reached the idle worker"));
}

/// Two jobs submitted on `submit` run on `worker`'s idle worker, one after the other (the
/// second only after the worker went idle again).
async fn submitted_jobs_wake(worker: Arc<JobQueue>, submit: Arc<JobQueue>) {
    let handle = hour_poll_worker(&worker);
    worker.listening().await;
    for _ in 0..2 {
        let id = submit.enqueue(&noop_job()).await.unwrap();
        succeeded(submit.store().as_ref(), id).await;
    }
    handle.stop().await;
}

#[tokio::test]
async fn a_submitted_job_wakes_the_idle_worker_in_process() {
    let (store, _clock, _dir) = common::fresh_store("sqlite").await;
    let q = queue(store, Arc::new(LocalBus::new()), WakeChannel::Local);
    submitted_jobs_wake(q.clone(), q).await;
}

#[tokio::test]
async fn a_job_submitted_by_another_process_wakes_the_worker_through_postgres_notify() {
    let url = common::fresh_pg_url().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Two stores (two pools) on one database: a web process and a worker process.
    let web = ctforge::storage::connect(&url, clock.clone())
        .await
        .unwrap();
    web.migrate().await.unwrap();
    let worker = ctforge::storage::connect(&url, clock).await.unwrap();
    let bus: Arc<dyn EventBus> = Arc::new(LocalBus::new());
    assert!(matches!(
        WakeChannel::choose(false, web.as_ref(), &bus),
        WakeChannel::Database
    ));
    submitted_jobs_wake(
        queue(worker, Arc::new(LocalBus::new()), WakeChannel::Database),
        queue(web, bus, WakeChannel::Database),
    )
    .await;
}

#[tokio::test]
async fn a_job_submitted_by_another_process_wakes_the_worker_through_redis() {
    let (store, _clock, _dir) = common::fresh_store("sqlite").await;
    let prefix = format!("ctforge-test-{}:", uuid::Uuid::new_v4().simple());
    let web_bus: Arc<dyn EventBus> = Arc::new(RedisBus::connect(REDIS_URL, &prefix).await.unwrap());
    let worker_bus: Arc<dyn EventBus> =
        Arc::new(RedisBus::connect(REDIS_URL, &prefix).await.unwrap());
    submitted_jobs_wake(
        queue(
            store.clone(),
            worker_bus.clone(),
            WakeChannel::Bus(worker_bus),
        ),
        queue(store, web_bus.clone(), WakeChannel::Bus(web_bus)),
    )
    .await;
}

const RESOURCES: &str = "GET /cluster/resources";

fn resource_calls(sim: &ctforge_pve_sim::SimHandle) -> u64 {
    sim.state().calls().get(RESOURCES).copied().unwrap_or(0)
}

async fn listing(app: &common::TestApp, auth: &Auth) -> Value {
    let request = app.client.get(format!("{}/api/v1/containers", app.address));
    let request = match auth {
        Auth::Cookie(cookie) => request.header("cookie", cookie),
        Auth::Token(token) => request.bearer_auth(token),
    };
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

enum Auth {
    Cookie(String),
    Token(String),
}

#[tokio::test]
async fn concurrent_views_share_one_proxmox_read_per_identity_and_window() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(8).with_containers(200)).await;
    let cluster = common::sim_cluster(&sim);
    let clock = ManualClock::new(SystemClock.now_ms());
    let app = common::spawn_app_clocked(
        "sqlite",
        move |c| {
            c.clusters = vec![cluster];
            c.workers.concurrency = 0;
            c.dashboard.fresh_ms = 2000;
        },
        None,
        clock.clone(),
    )
    .await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let root = Auth::Cookie(root.cookie);
    sim.state().reset_calls();

    // Eight views at once: one Proxmox read, the same "as of" for all.
    let views = (0..8).map(|_| listing(&app, &root));
    let views = futures_util::future::join_all(views).await;
    assert_eq!(resource_calls(&sim), 1);
    let as_of = views[0]["as_of"].as_i64().expect("as_of");
    assert!(views.iter().all(|v| v["as_of"] == views[0]["as_of"]));
    assert!(views.iter().all(|v| v["counts"]["total"] == 200));

    // Within the window: no new read. The dashboard page says when the read was made.
    clock.advance(1999);
    listing(&app, &root).await;
    assert_eq!(resource_calls(&sim), 1);
    let cookie = match &root {
        Auth::Cookie(c) => c.clone(),
        Auth::Token(_) => unreachable!(),
    };
    let html = app
        .client
        .get(format!("{}/", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Proxmox as of"), "{html}");
    assert_eq!(resource_calls(&sim), 1);

    // Another identity (the same user through an API token) never shares root's read.
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "perf", "127.0.0.1")
        .await
        .unwrap();
    listing(&app, &Auth::Token(token)).await;
    assert_eq!(resource_calls(&sim), 2);

    // Past the window: a new read, a later "as of".
    clock.advance(1);
    let after = listing(&app, &root).await;
    assert_eq!(resource_calls(&sim), 3);
    assert!(after["as_of"].as_i64().unwrap() > as_of);
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn template(root: &Path, name: &str, packages: &str) {
    let dir = root.join(name);
    write(
        &dir.join("template.conf"),
        &format!("TEMPLATE_APP=\"{name}\"\nTEMPLATE_OS=\"debian\"\nTEMPLATE_VERSION=\"12\"\n"),
    );
    write(
        &dir.join("container-configs/packages/base.apt"),
        &format!("{packages}\n"),
    );
    write(
        &dir.join("container-configs/scripts/10-setup.sh"),
        &format!("#!/bin/sh\necho {name}\n"),
    );
}

#[tokio::test]
async fn streaming_discovery_stores_every_template_once_and_compares_by_content() {
    let (store, _clock, _dir) = common::fresh_store("sqlite").await;
    let root = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    for i in 0..40 {
        template(root.path(), &format!("app-{i:02}"), "curl");
    }
    write(
        &root.path().join("broken/template.conf"),
        "TEMPLATE_APP=\"x\nTEMPLATE_RAM=lots\n",
    );
    template(other.path(), "app-07", "wget"); // a second `app-07`: not stored
    let roots = vec![root.path().to_owned(), other.path().to_owned()];

    let first = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert_eq!(first.count(Status::Added), 40);
    assert_eq!(first.count(Status::Failed), 2);
    assert!(first.get("broken").unwrap().reason.is_some());
    let names: Vec<&str> = first.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"app-00"));
    assert_eq!(names.last(), Some(&"app-07")); // root order, then name order
    assert_eq!(store.list_templates().await.unwrap().len(), 40);
    let seven = store.get_template_by_name("app-07").await.unwrap();
    assert!(seven.packages.iter().any(|p| p.name == "curl"));

    // Again: nothing changed, nothing written.
    let again = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert_eq!(again.count(Status::Unchanged), 40);
    // One template changed: only it is stored again.
    template(root.path(), "app-13", "curl\nvim");
    let third = discover_roots(store.as_ref(), &roots).await.unwrap();
    assert_eq!(third.count(Status::Changed), 1);
    assert_eq!(third.get("app-13").unwrap().status, Status::Changed);
    assert_eq!(
        third.get("app-13").unwrap().changes.packages.added,
        vec!["base.apt:vim".to_owned()]
    );
}
