//! SSE fan-out benchmark: the real application (SQLite, in-process bus) with `VIEWERS`
//! concurrent SSE viewers on one job; `EVENTS` progress events are emitted (persisted, then
//! published) and every viewer measures the delay from just before `emit` to parsing the event.
//! Prints p50/p99/max delivery latency over all (viewer, event) pairs.
//!
//! Run with `ulimit -n 65536; cargo bench -p ctforge --bench sse` (`SSE_VIEWERS`, `SSE_EVENTS`
//! and `CTFORGE_REDIS_URL` to use the Redis bus, override).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ctforge::auth::SessionData;
use ctforge::auth::login::{SignIn, create_session};
use ctforge::config::{CliOverrides, Config};
use ctforge::storage::model::NewJob;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// One viewer: opens the stream, reports it is connected, then records the latency of every
/// `progress` event until the stream closes.
async fn viewer(
    client: reqwest::Client,
    url: String,
    cookie: String,
    start: Instant,
    connected: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<u64>> {
    let mut response = client
        .get(&url)
        .header("cookie", cookie)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "status {}", response.status());
    connected.fetch_add(1, Ordering::SeqCst);
    let mut buffer = String::new();
    let mut latencies = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let now = start.elapsed().as_micros() as u64;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(data)?;
            if let Some(sent) = event["data"]["sent_us"].as_u64() {
                latencies.push(now.saturating_sub(sent));
            }
        }
    }
    Ok(latencies)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let viewers = env_usize("SSE_VIEWERS", 2000);
    let events = env_usize("SSE_EVENTS", 50);
    ctforge::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let mut config = Config::load_from(&CliOverrides::default(), &[])?.config;
    config.listen = "127.0.0.1:0".to_owned();
    config.data_dir = dir.path().to_owned();
    config.workers.concurrency = 0;
    let app = ctforge::startup::App::build(config).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let data = SessionData {
        cluster_id: 0,
        ticket: "PVE:root@pam:00000000::sig".into(),
        pve_csrf: "x".into(),
        cap: Default::default(),
        issued_at: state.clock.now_ms() / 1000,
        tfa_challenge: None,
    };
    let cookie = match create_session(&state, data, "root@pam").await? {
        SignIn::Done { token, .. } => format!("ctforge_session={token}"),
        _ => anyhow::bail!("no session"),
    };
    let job_id = state
        .jobs
        .enqueue(&NewJob {
            kind: "bench".into(),
            payload_json: "{}".into(),
            created_by: "root@pam".into(),
            ..NewJob::default()
        })
        .await?;
    let url = format!("{address}/api/v1/jobs/{job_id}/events");

    let start = Instant::now();
    let connected = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let mut tasks = tokio::task::JoinSet::new();
    let t_connect = Instant::now();
    for _ in 0..viewers {
        tasks.spawn(viewer(
            client.clone(),
            url.clone(),
            cookie.clone(),
            start,
            connected.clone(),
        ));
    }
    while connected.load(Ordering::SeqCst) < viewers {
        if tasks.len() < viewers - connected.load(Ordering::SeqCst) {
            // Some viewer failed to connect.
            if let Some(Ok(Err(e))) = tasks.try_join_next() {
                anyhow::bail!("viewer failed: {e:#} (raise the fd limit: ulimit -n 65536)");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_time = t_connect.elapsed();

    let progress = state.jobs.progress().clone();
    let mut emit_times = Vec::new();
    for i in 0..events {
        let sent = start.elapsed().as_micros() as u64;
        let t = Instant::now();
        progress
            .emit(
                job_id,
                "progress",
                Some("bench"),
                serde_json::json!({ "sent_us": sent, "i": i }),
            )
            .await?;
        emit_times.push(t.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress
        .emit(job_id, "done", None, serde_json::json!({}))
        .await?;

    let mut all = Vec::with_capacity(viewers * events);
    let mut incomplete = 0;
    while let Some(result) = tasks.join_next().await {
        let latencies = result??;
        if latencies.len() != events {
            incomplete += 1;
        }
        all.extend(latencies);
    }
    all.sort_unstable();
    emit_times.sort_unstable();
    println!(
        "sse fan-out: {viewers} viewers connected in {:.2} s; {events} events, {} deliveries ({incomplete} viewers missed events)",
        connect_time.as_secs_f64(),
        all.len()
    );
    println!(
        "delivery latency (emit incl. SQLite insert -> parsed by viewer): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        percentile(&all, 100.0)
    );
    println!(
        "emit (persist + publish): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&emit_times, 50.0),
        percentile(&emit_times, 99.0)
    );
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
