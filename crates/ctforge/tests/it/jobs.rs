#![allow(clippy::unwrap_used)]
//! The durable job runner and progress events: success, failure and retry from the failed
//! step, crash and resume on another worker, cancel, per-node limit, and SSE over real HTTP
//! (backlog, live, close, `Last-Event-ID`) with the in-process bus and with Redis between two
//! bus instances — on SQLite and PostgreSQL.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ctforge::auth::SessionData;
use ctforge::auth::login::{SignIn, create_session};
use ctforge::clock::{Clock, ManualClock, SystemClock};
use ctforge::events::{EventBus, JobProgress, LocalBus, RedisBus};
use ctforge::jobs::{
    JobContext, JobHandler, JobQueue, JobRegistry, StepError, Worker, WorkerOptions,
};
use ctforge::storage::Store;
use ctforge::storage::model::{Job, JobEvent, NewJob};
use tokio::sync::Notify;

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Three steps that log lines; can be told to fail or block at a step. Counts invocations.
#[derive(Default)]
struct ThreeSteps {
    calls: Mutex<HashMap<String, usize>>,
    fail_at: Mutex<Option<&'static str>>,
    block_at: Mutex<Option<&'static str>>,
    entered: Notify,
    gate: Notify,
}

impl ThreeSteps {
    fn calls(&self, step: &str) -> usize {
        self.calls.lock().unwrap().get(step).copied().unwrap_or(0)
    }
    fn fail_at(&self, step: Option<&'static str>) {
        *self.fail_at.lock().unwrap() = step;
    }
    fn block_at(&self, step: Option<&'static str>) {
        *self.block_at.lock().unwrap() = step;
    }
    async fn wait_entered(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.entered.notified())
            .await
            .expect("the blocking step started");
    }
}

#[async_trait]
impl JobHandler for ThreeSteps {
    fn kind(&self) -> &'static str {
        "test"
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec!["one", "two", "three"]
    }

    async fn run_step(&self, ctx: &JobContext, step: &str) -> Result<(), StepError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(step.to_owned())
            .or_default() += 1;
        ctx.log(format!("{step}: begin")).await?;
        let block = *self.block_at.lock().unwrap() == Some(step);
        if block {
            self.entered.notify_one();
            tokio::select! {
                () = self.gate.notified() => {}
                () = ctx.cancelled() => return Err(StepError::Cancelled),
            }
        }
        if *self.fail_at.lock().unwrap() == Some(step) {
            return Err(StepError::failed(format!("boom in {step}")));
        }
        ctx.percent(100).await?;
        ctx.log(format!("{step}: end")).await?;
        Ok(())
    }
}

/// One step that takes a while, tracking how many run at once per node.
#[derive(Default)]
struct Slow {
    current: Mutex<HashMap<String, usize>>,
    max: Mutex<HashMap<String, usize>>,
    max_total: AtomicUsize,
    total: AtomicUsize,
}

#[async_trait]
impl JobHandler for Slow {
    fn kind(&self) -> &'static str {
        "slow"
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec!["work"]
    }

    async fn run_step(&self, ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        let node = ctx.job.node.clone().unwrap_or_default();
        {
            let mut current = self.current.lock().unwrap();
            let n = current.entry(node.clone()).or_default();
            *n += 1;
            let mut max = self.max.lock().unwrap();
            let m = max.entry(node.clone()).or_default();
            *m = (*m).max(*n);
        }
        let total = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_total.fetch_max(total, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.total.fetch_sub(1, Ordering::SeqCst);
        *self.current.lock().unwrap().get_mut(&node).unwrap() -= 1;
        Ok(())
    }
}

fn options(concurrency: usize, per_node: i64) -> WorkerOptions {
    WorkerOptions {
        concurrency,
        per_node,
        idle_poll: Duration::from_millis(20),
        ..WorkerOptions::default()
    }
}

fn new_job(kind: &str, node: Option<&str>) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        node: node.map(str::to_owned),
        payload_json: "{}".to_owned(),
        created_by: "root@pam".to_owned(),
        ..NewJob::default()
    }
}

struct Setup {
    queue: Arc<JobQueue>,
    clock: Arc<ManualClock>,
    handler: Arc<ThreeSteps>,
    _dir: tempfile::TempDir,
}

fn queue_over(
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    handlers: Vec<Arc<dyn JobHandler>>,
) -> Arc<JobQueue> {
    let registry = Arc::new(JobRegistry::new());
    for handler in handlers {
        registry.register(handler);
    }
    let progress = JobProgress::new(store.clone(), bus, clock);
    Arc::new(JobQueue::new(store, progress, registry))
}

async fn setup(backend: &str) -> Setup {
    let (store, clock, dir) = common::fresh_store(backend).await;
    let handler = Arc::new(ThreeSteps::default());
    let queue = queue_over(
        store,
        Arc::new(LocalBus::new()),
        clock.clone(),
        vec![handler.clone()],
    );
    Setup {
        queue,
        clock,
        handler,
        _dir: dir,
    }
}

/// Waits until the job is in `state` and, for a terminal state, its terminal event is stored
/// too (the worker stores that event right after the job row is final, so a reader that only
/// watched the row could look at the events a moment too early).
async fn wait_state(store: &dyn Store, id: i64, state: &str) -> Job {
    let terminal_event = match state {
        "succeeded" => Some("done"),
        "failed" => Some("error"),
        "cancelled" => Some("cancelled"),
        _ => None,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.get_job(id).await.unwrap();
        if job.state == state {
            let Some(kind) = terminal_event else {
                return job;
            };
            let events = store.job_events_after(id, 0, 10_000).await.unwrap();
            if events.last().is_some_and(|e| e.kind == kind) {
                return job;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} did not reach {state} (with its terminal event) within 60 s: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_events(store: &dyn Store, id: i64) -> Vec<JobEvent> {
    store.job_events_after(id, 0, 10_000).await.unwrap()
}

fn summary(events: &[JobEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match (&e.step, e.kind.as_str()) {
            (Some(_), "log") => format!("log:{}", e.data),
            (Some(step), kind) => format!("{kind}:{step}"),
            (None, kind) => kind.to_owned(),
        })
        .collect()
}

fn assert_consecutive(events: &[JobEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i64::try_from(i).unwrap() + 1, "sequence has no gaps");
    }
}

async fn runs_to_success_with_events_in_order(backend: &str) {
    let s = setup(backend).await;
    let worker = Worker::new(s.queue.clone(), options(2, 2)).spawn();
    let id = s
        .queue
        .enqueue(&new_job("test", Some("pve1")))
        .await
        .unwrap();
    let job = wait_state(s.queue.store().as_ref(), id, "succeeded").await;
    assert_eq!(job.completed_steps, "one,two,three");
    assert_eq!(job.attempts, 1);
    assert!(job.error.is_none());
    let events = all_events(s.queue.store().as_ref(), id).await;
    assert_consecutive(&events);
    let mut expected = vec!["start".to_owned()];
    for step in ["one", "two", "three"] {
        expected.extend([
            format!("step:{step}"),
            format!("log:{step}: begin"),
            format!("progress:{step}"),
            format!("log:{step}: end"),
            format!("complete:{step}"),
        ]);
    }
    expected.push("done".to_owned());
    assert_eq!(summary(&events), expected);
    let complete: serde_json::Value = serde_json::from_str(&events[5].data).unwrap();
    assert_eq!(complete["percent"], 33);
    worker.stop().await;
}

#[tokio::test]
async fn job_succeeds_with_events_in_order_sqlite() {
    runs_to_success_with_events_in_order("sqlite").await;
}

#[tokio::test]
async fn job_succeeds_with_events_in_order_postgres() {
    runs_to_success_with_events_in_order("postgres").await;
}

async fn failure_then_retry_from_failed_step(backend: &str) {
    let s = setup(backend).await;
    s.handler.fail_at(Some("two"));
    let worker = Worker::new(s.queue.clone(), options(2, 2)).spawn();
    let id = s.queue.enqueue(&new_job("test", None)).await.unwrap();
    let job = wait_state(s.queue.store().as_ref(), id, "failed").await;
    assert_eq!(job.current_step.as_deref(), Some("two"));
    assert_eq!(job.completed_steps, "one");
    let error = job.error.unwrap();
    assert!(
        error.contains("two") && error.contains("boom in two"),
        "{error}"
    );
    let events = all_events(s.queue.store().as_ref(), id).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, "error");
    assert_eq!(last.step.as_deref(), Some("two"));
    let before = events.len();

    s.handler.fail_at(None);
    let retried = s.queue.retry(id, "root@pam").await.unwrap();
    assert_ne!(
        retried.state, "failed",
        "back in the queue (or already claimed)"
    );
    let job = wait_state(s.queue.store().as_ref(), id, "succeeded").await;
    assert_eq!(job.completed_steps, "one,two,three");
    assert_eq!(s.handler.calls("one"), 1, "completed steps are not re-run");
    assert_eq!(s.handler.calls("two"), 2);
    assert_eq!(s.handler.calls("three"), 1);
    let events = all_events(s.queue.store().as_ref(), id).await;
    assert_consecutive(&events);
    assert!(
        events.len() > before,
        "events of the failed attempt are kept"
    );
    assert_eq!(events[before].kind, "retry");
    let start: serde_json::Value = serde_json::from_str(&events[before + 1].data).unwrap();
    assert_eq!(start["completed"], serde_json::json!(["one"]));
    assert!(
        !summary(&events[before..]).contains(&"step:one".to_owned()),
        "step one does not start again"
    );
    // Only failed/cancelled jobs can be retried.
    assert!(s.queue.retry(id, "root@pam").await.is_err());
    worker.stop().await;
}

#[tokio::test]
async fn failed_step_then_retry_sqlite() {
    failure_then_retry_from_failed_step("sqlite").await;
}

#[tokio::test]
async fn failed_step_then_retry_postgres() {
    failure_then_retry_from_failed_step("postgres").await;
}

async fn crash_mid_step_resumes_elsewhere(backend: &str) {
    let s = setup(backend).await;
    s.handler.block_at(Some("two"));
    let first = Worker::new(s.queue.clone(), options(2, 2)).spawn();
    let id = s
        .queue
        .enqueue(&new_job("test", Some("pve1")))
        .await
        .unwrap();
    s.handler.wait_entered().await;
    // The worker dies mid-step: no clean-up, no lease release.
    first.abort();
    for _ in 0..100 {
        if first.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = s.queue.store().get_job(id).await.unwrap();
    assert_eq!(job.state, "running");
    assert_eq!(job.lease_owner.as_deref(), Some(first.owner()));
    assert_eq!(job.current_step.as_deref(), Some("two"));

    s.handler.block_at(None);
    let second = Worker::new(s.queue.clone(), options(2, 2)).spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = s.queue.store().get_job(id).await.unwrap();
    assert_eq!(
        job.lease_owner.as_deref(),
        Some(first.owner()),
        "a live lease is not taken over"
    );
    s.clock.advance(31_000);
    let job = wait_state(s.queue.store().as_ref(), id, "succeeded").await;
    assert_eq!(job.attempts, 2);
    assert_eq!(job.completed_steps, "one,two,three");
    assert_eq!(
        s.handler.calls("one"),
        1,
        "no step before the interrupted one re-ran"
    );
    assert_eq!(s.handler.calls("two"), 2);
    assert_eq!(s.handler.calls("three"), 1);
    let events = all_events(s.queue.store().as_ref(), id).await;
    assert_consecutive(&events);
    let starts: Vec<&JobEvent> = events.iter().filter(|e| e.kind == "start").collect();
    assert_eq!(starts.len(), 2);
    let resumed: serde_json::Value = serde_json::from_str(&starts[1].data).unwrap();
    assert_eq!(resumed["completed"], serde_json::json!(["one"]));
    assert_eq!(resumed["owner"], second.owner());
    assert_eq!(events.last().unwrap().kind, "done");
    second.stop().await;
}

#[tokio::test]
async fn crash_mid_step_resumes_on_another_worker_sqlite() {
    crash_mid_step_resumes_elsewhere("sqlite").await;
}

#[tokio::test]
async fn crash_mid_step_resumes_on_another_worker_postgres() {
    crash_mid_step_resumes_elsewhere("postgres").await;
}

#[tokio::test]
async fn graceful_stop_releases_the_job_for_the_next_worker() {
    let s = setup("sqlite").await;
    s.handler.block_at(Some("two"));
    let first = Worker::new(
        s.queue.clone(),
        WorkerOptions {
            shutdown_grace: Duration::from_millis(200),
            ..options(1, 1)
        },
    )
    .spawn();
    let id = s.queue.enqueue(&new_job("test", None)).await.unwrap();
    s.handler.wait_entered().await;
    first.stop().await;
    s.handler.block_at(None);
    // No clock change needed: the lease was given back.
    let second = Worker::new(s.queue.clone(), options(1, 1)).spawn();
    let job = wait_state(s.queue.store().as_ref(), id, "succeeded").await;
    assert_eq!(s.handler.calls("one"), 1);
    assert_eq!(s.handler.calls("two"), 2);
    assert_eq!(job.attempts, 2);
    second.stop().await;
}

async fn cancel_running_job(backend: &str) {
    let s = setup(backend).await;
    s.handler.block_at(Some("two"));
    let worker = Worker::new(s.queue.clone(), options(1, 1)).spawn();
    let id = s.queue.enqueue(&new_job("test", None)).await.unwrap();
    s.handler.wait_entered().await;
    let job = s.queue.cancel(id, "root@pam").await.unwrap();
    assert_eq!(job.state, "cancelled");
    // The running step saw its context cancelled and nothing ran after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = s.queue.store().get_job(id).await.unwrap();
    assert_eq!(job.state, "cancelled");
    assert_eq!(s.handler.calls("three"), 0);
    let events = all_events(s.queue.store().as_ref(), id).await;
    assert!(events.iter().any(|e| e.kind == "cancelled"));
    assert!(events.iter().all(|e| e.kind != "done"));
    assert!(
        s.queue.cancel(id, "root@pam").await.is_err(),
        "already over"
    );
    // A cancelled job can be resumed too.
    s.handler.block_at(None);
    s.queue.retry(id, "root@pam").await.unwrap();
    wait_state(s.queue.store().as_ref(), id, "succeeded").await;
    assert_eq!(s.handler.calls("one"), 1);
    worker.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_running_step_sqlite() {
    cancel_running_job("sqlite").await;
}

#[tokio::test]
async fn cancel_stops_the_running_step_postgres() {
    cancel_running_job("postgres").await;
}

#[tokio::test]
async fn unknown_kind_fails_clearly() {
    let s = setup("sqlite").await;
    let worker = Worker::new(s.queue.clone(), options(1, 1)).spawn();
    let id = s.queue.enqueue(&new_job("nope", None)).await.unwrap();
    let job = wait_state(s.queue.store().as_ref(), id, "failed").await;
    assert!(job.error.unwrap().contains("no handler"));
    worker.stop().await;
}

async fn per_node_limit(backend: &str, workers: usize) {
    let (store, clock, _dir) = common::fresh_store(backend).await;
    let slow = Arc::new(Slow::default());
    let queue = queue_over(store, Arc::new(LocalBus::new()), clock, vec![slow.clone()]);
    // Several workers (think: processes) share the limit through the database.
    let handles: Vec<_> = (0..workers)
        .map(|_| Worker::new(queue.clone(), options(4, 1)).spawn())
        .collect();
    let mut ids = Vec::new();
    for node in ["n1", "n1", "n1", "n2", "n2"] {
        ids.push(queue.enqueue(&new_job("slow", Some(node))).await.unwrap());
    }
    for id in ids {
        wait_state(queue.store().as_ref(), id, "succeeded").await;
    }
    let max = slow.max.lock().unwrap().clone();
    assert_eq!(max.get("n1"), Some(&1), "{max:?}");
    assert_eq!(max.get("n2"), Some(&1), "{max:?}");
    assert!(
        slow.max_total.load(Ordering::SeqCst) >= 2,
        "different nodes run in parallel"
    );
    for handle in handles {
        handle.stop().await;
    }
}

#[tokio::test]
async fn per_node_limit_sqlite() {
    per_node_limit("sqlite", 2).await;
}

#[tokio::test]
async fn per_node_limit_postgres() {
    per_node_limit("postgres", 1).await;
}

/// Reproducer: two concurrent claimers on PostgreSQL both count 0 running jobs on the node
/// (READ COMMITTED snapshot, different rows locked with SKIP LOCKED) and both claim.
#[tokio::test]
async fn per_node_limit_postgres_two_workers() {
    per_node_limit("postgres", 2).await;
}

/// A step that stops making progress is failed by the watchdog after the limit: the job keeps
/// its log, frees its node for the next job, and a retry resumes at that step.
#[tokio::test]
async fn the_watchdog_fails_a_stalled_step_and_frees_its_node() {
    let s = setup("sqlite").await;
    s.handler.block_at(Some("two"));
    let worker = Worker::new(
        s.queue.clone(),
        WorkerOptions {
            step_timeout: Duration::from_secs(1),
            ..options(2, 1)
        },
    )
    .spawn();
    let store = s.queue.store().clone();
    let stalled = s
        .queue
        .enqueue(&new_job("test", Some("pve1")))
        .await
        .unwrap();
    s.handler.wait_entered().await;
    let job = wait_state(store.as_ref(), stalled, "failed").await;
    assert_eq!(job.current_step.as_deref(), Some("two"));
    let error = job.error.unwrap();
    assert!(
        error.starts_with(
            "step two failed: no progress for 1s (the step allows 1s), so the watchdog stopped it"
        ),
        "{error}"
    );
    let events = all_events(store.as_ref(), stalled).await;
    assert!(
        summary(&events).contains(&"log:two: begin".to_owned()),
        "the log is kept"
    );
    assert_eq!(events.last().unwrap().kind, "error");

    // The node's only slot is free again.
    s.handler.block_at(None);
    let next = s
        .queue
        .enqueue(&new_job("test", Some("pve1")))
        .await
        .unwrap();
    wait_state(store.as_ref(), next, "succeeded").await;

    s.queue.retry(stalled, "root@pam").await.unwrap();
    let job = wait_state(store.as_ref(), stalled, "succeeded").await;
    assert_eq!(job.completed_steps, "one,two,three");
    worker.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SSE over real HTTP.

async fn signed_in(app: &common::TestApp) -> (String, String) {
    let data = SessionData {
        cluster_id: common::home_cluster(&app.state).await,
        ticket: "PVE:root@pam:00000000::sig".into(),
        pve_csrf: "x".into(),
        cap: Default::default(),
        issued_at: app.state.clock.now_ms() / 1000,
        tfa_challenge: None,
    };
    match create_session(&app.state, data, "root@pam").await.unwrap() {
        SignIn::Done {
            token, csrf_token, ..
        } => (format!("ctforge_session={token}"), csrf_token),
        other => panic!("unexpected {other:?}"),
    }
}

#[derive(Debug)]
struct Frame {
    id: i64,
    event: String,
    data: serde_json::Value,
}

/// Reads `text/event-stream` frames from a streaming response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// The next event, or `None` once the server closed the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                match id {
                    Some(id) => {
                        return Some(Frame {
                            id,
                            event,
                            data: serde_json::from_str(&data).unwrap(),
                        });
                    }
                    None => continue, // keep-alive comment
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("SSE stream stalled")
                .unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn open_sse(
    app: &common::TestApp,
    cookie: &str,
    id: i64,
    last: Option<i64>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}/api/v1/jobs/{id}/events", app.address))
        .header("cookie", cookie)
        .header("accept", "text/event-stream");
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    request.send().await.unwrap()
}

/// A late viewer gets the backlog, then live events, then the stream closes; a reconnect with
/// `Last-Event-ID` gets only what is newer; nothing newer on a finished job is a 204.
async fn sse_scenario(app: &common::TestApp, queue: &JobQueue, handler: &ThreeSteps) {
    let (cookie, csrf) = signed_in(app).await;
    let store = queue.store().clone();
    handler.block_at(Some("two"));
    let id = queue.enqueue(&new_job("test", Some("pve1"))).await.unwrap();
    handler.wait_entered().await;
    let backlog = all_events(store.as_ref(), id).await;
    let backlog_last = backlog.last().unwrap().seq;
    assert_eq!(backlog.last().unwrap().data, "two: begin");

    let response = open_sse(app, &cookie, id, None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut reader = SseReader {
        response,
        buffer: String::new(),
    };
    let mut seen = Vec::new();
    while seen.len() < backlog.len() {
        seen.push(reader.next().await.unwrap());
    }
    assert_eq!(seen.last().unwrap().id, backlog_last);
    // Live from here on.
    handler.gate.notify_one();
    while let Some(frame) = reader.next().await {
        seen.push(frame);
    }
    let stored = all_events(store.as_ref(), id).await;
    assert_eq!(
        seen.len(),
        stored.len(),
        "every event delivered exactly once"
    );
    for (frame, event) in seen.iter().zip(&stored) {
        assert_eq!(frame.id, event.seq);
        assert_eq!(frame.event, event.kind);
        assert_eq!(frame.data["seq"], event.seq);
        assert_eq!(frame.data["job_id"], id);
    }
    assert_eq!(seen.last().unwrap().event, "done");
    assert_eq!(seen[2].data["data"], "one: begin");
    // The terminal event is persisted just before the job row is finished.
    wait_state(store.as_ref(), id, "succeeded").await;

    // Reconnect: only newer events, then close (the job is finished).
    let mut reader = SseReader {
        response: open_sse(app, &cookie, id, Some(backlog_last)).await,
        buffer: String::new(),
    };
    let mut again = Vec::new();
    while let Some(frame) = reader.next().await {
        again.push(frame.id);
    }
    let expected: Vec<i64> = stored
        .iter()
        .map(|e| e.seq)
        .filter(|s| *s > backlog_last)
        .collect();
    assert_eq!(again, expected);
    let last = stored.last().unwrap().seq;
    assert_eq!(open_sse(app, &cookie, id, Some(last)).await.status(), 204);

    // JSON forms.
    let body: serde_json::Value = app
        .client
        .get(format!(
            "{}/api/v1/jobs/{id}/events?after={backlog_last}",
            app.address
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["events"].as_array().unwrap().len(), expected.len());
    let job: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/jobs/{id}", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "succeeded");
    assert_eq!(
        job["completed_steps"],
        serde_json::json!(["one", "two", "three"])
    );
    assert_eq!(job["attempts"], 1);
    let list: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/jobs", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"][0]["id"], id);
    for action in ["retry", "cancel"] {
        let response = app
            .client
            .post(format!("{}/api/v1/jobs/{id}/{action}", app.address))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409, "{action} on a succeeded job");
    }
    let response = app
        .client
        .get(format!("{}/api/v1/jobs/999999", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

async fn sse_in_process(backend: &str) {
    let app = common::spawn_app_with(backend, |c| c.workers.concurrency = 2).await;
    let handler = Arc::new(ThreeSteps::default());
    app.state.jobs.registry().register(handler.clone());
    sse_scenario(&app, &app.state.jobs, &handler).await;

    // Retry and cancel over HTTP on a failing job.
    let (cookie, csrf) = signed_in(&app).await;
    handler.block_at(None);
    handler.fail_at(Some("three"));
    let id = app
        .state
        .jobs
        .enqueue(&new_job("test", None))
        .await
        .unwrap();
    let job = wait_state(app.state.store.as_ref(), id, "failed").await;
    assert!(job.error.unwrap().contains("three"));
    handler.fail_at(None);
    let response = app
        .client
        .post(format!("{}/api/v1/jobs/{id}/retry", app.address))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_state(app.state.store.as_ref(), id, "succeeded").await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sse_backlog_live_and_reconnect_sqlite() {
    sse_in_process("sqlite").await;
}

#[tokio::test]
async fn sse_backlog_live_and_reconnect_postgres() {
    sse_in_process("postgres").await;
}

/// The web process serves SSE from its Redis bus; a separate "worker process" (its own bus
/// instance, queue and worker on the same database) runs the job and publishes.
async fn sse_over_redis(backend: &str) {
    let prefix = format!("ctforge-test-{}:", uuid::Uuid::new_v4().simple());
    let web_bus: Arc<dyn EventBus> = Arc::new(RedisBus::connect(REDIS_URL, &prefix).await.unwrap());
    let app = common::spawn_app_custom(backend, |c| c.workers.concurrency = 0, Some(web_bus)).await;
    let worker_bus: Arc<dyn EventBus> =
        Arc::new(RedisBus::connect(REDIS_URL, &prefix).await.unwrap());
    let handler = Arc::new(ThreeSteps::default());
    let queue = queue_over(
        app.state.store.clone(),
        worker_bus,
        Arc::new(SystemClock),
        vec![handler.clone()],
    );
    let worker = Worker::new(queue.clone(), options(2, 2)).spawn();
    sse_scenario(&app, &queue, &handler).await;
    worker.stop().await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sse_over_redis_between_bus_instances_sqlite() {
    sse_over_redis("sqlite").await;
}

#[tokio::test]
async fn sse_over_redis_between_bus_instances_postgres() {
    sse_over_redis("postgres").await;
}

#[tokio::test]
async fn redis_bus_delivers_between_instances_and_unsubscribes() {
    let prefix = format!("ctforge-test-{}:", uuid::Uuid::new_v4().simple());
    let a = RedisBus::connect(REDIS_URL, &prefix).await.unwrap();
    let b = RedisBus::connect(REDIS_URL, &prefix).await.unwrap();
    let mut sub = b.subscribe("job:1").await.unwrap();
    let mut other = b.subscribe("job:2").await.unwrap();
    let event = ctforge::events::BusEvent {
        job_id: 1,
        seq: 1,
        kind: "log".into(),
        step: Some("one".into()),
        data: serde_json::json!("hello"),
        at: 0,
    };
    a.publish("job:1", &event).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.event, event);
    drop(sub);
    a.publish(
        "job:2",
        &ctforge::events::BusEvent {
            job_id: 2,
            ..event.clone()
        },
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), other.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.job_id, 2);
}

/// The job page renders the newest `LOG_PAGE` log lines (following them live) and links to
/// the older ones, which render as a static page with a way back; nothing loads every event.
#[tokio::test]
async fn job_page_shows_the_newest_log_lines_and_pages_older_ones() {
    let app = common::spawn_app_with("sqlite", |c| c.workers.concurrency = 0).await;
    let (cookie, _) = signed_in(&app).await;
    let id = app
        .state
        .jobs
        .enqueue(&new_job("paged", None))
        .await
        .unwrap();
    let page = ctforge::web::jobs::LOG_PAGE;
    let total = page + 3;
    for i in 1..=total {
        app.state
            .store
            .append_job_event(id, "log", Some("one"), &format!("line {i}"))
            .await
            .unwrap();
    }
    let get = |query: &'static str| {
        let request = app
            .client
            .get(format!("{}/jobs/{id}{query}", app.address))
            .header("cookie", &cookie);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "GET /jobs/{id}{query}");
            response.text().await.unwrap()
        }
    };
    let newest = get("").await;
    assert!(
        newest.contains(&format!("data-seq=\"{total}\"")),
        "newest line shown"
    );
    assert!(newest.contains("data-seq=\"4\""), "a full page is shown");
    assert!(
        !newest.contains("data-seq=\"3\""),
        "older lines are not loaded"
    );
    assert!(
        newest.contains("data-job-stream"),
        "the newest page follows live"
    );
    assert!(
        newest.contains(&format!("href=\"/jobs/{id}?before=4\"")),
        "a link leads to the older lines"
    );
    let older = get("?before=4").await;
    for seq in 1..=3 {
        assert!(
            older.contains(&format!("data-seq=\"{seq}\"")),
            "line {seq} on the older page"
        );
    }
    assert!(!older.contains("data-seq=\"4\""));
    assert!(
        !older.contains("data-job-stream"),
        "a history page is static"
    );
    assert!(
        older.contains(&format!("href=\"/jobs/{id}\"")),
        "a link leads back"
    );
}
