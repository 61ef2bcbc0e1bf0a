//! `/metrics` scrape cost with many finished jobs: the real application on SQLite with
//! `METRICS_JOBS` (default 50,000) finished jobs, each with a 2 KB payload like a creation
//! job's plan snapshot. Prints the wall time of
//! - the old job count (`list_jobs(10_000)` and counting the states in Rust, what `/metrics`
//!   did before), and
//! - the new one (`count_jobs_by_state`, one `GROUP BY`), and
//! - a whole `GET /metrics` over HTTP (which uses the new one),
//!
//! each as p50 / max over `METRICS_RUNS` (default 20) runs.
//!
//! Run with `cargo bench -p ctforge --bench metrics`.

use std::time::{Duration, Instant};

use ctforge::auth::SessionData;
use ctforge::auth::login::{SignIn, create_session};
use ctforge::config::{CliOverrides, Config};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} ms, max {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    )
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let jobs = env_usize("METRICS_JOBS", 50_000);
    let runs = env_usize("METRICS_RUNS", 20).max(1);
    ctforge::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let mut config = Config::load_from(&CliOverrides::default(), &[])?.config;
    config.listen = "127.0.0.1:0".to_owned();
    config.data_dir = dir.path().to_owned();
    config.workers.concurrency = 0;
    let database_url = config.database_url();
    let app = ctforge::startup::App::build(config).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // Fill the jobs table in one statement (the store has no bulk insert, and 50,000 single
    // inserts would time the filling rather than the scrape).
    let pool = sqlx::SqlitePool::connect(&database_url).await?;
    let t = Instant::now();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO jobs (kind, state, payload_json, completed_steps, attempts, created_by, created_at, started_at, finished_at) \
         SELECT 'create_container', CASE i % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'cancelled' ELSE 'succeeded' END, \
                '{\"plan\":\"' || replace(hex(zeroblob(1000)), '0', 'x') || '\"}', \
                'create,start,deploy,install,scripts,discover', 1, 'bench@pve', i, i, i FROM n",
    )
    .bind(i64::try_from(jobs)?)
    .execute(&pool)
    .await?;
    println!(
        "filled {jobs} finished jobs in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut old = Vec::new();
    let mut new = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let listed = state.store.list_jobs(10_000).await?;
        let counted = ["queued", "running", "succeeded", "failed", "cancelled"]
            .map(|s| listed.iter().filter(|j| j.state == s).count());
        old.push(t.elapsed());
        std::hint::black_box(counted);
        let t = Instant::now();
        let counts = state.store.count_jobs_by_state().await?;
        new.push(t.elapsed());
        std::hint::black_box(counts);
    }
    let counts = state.store.count_jobs_by_state().await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    anyhow::ensure!(total == i64::try_from(jobs)?, "counted {total} jobs");

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
    let client = reqwest::Client::new();
    let mut scrapes = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let response = client
            .get(format!("{address}/metrics"))
            .header("cookie", &cookie)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "status {}", response.status());
        let body = response.text().await?;
        scrapes.push(t.elapsed());
        anyhow::ensure!(
            body.contains("ctforge_jobs{state=\"succeeded\"}"),
            "no job gauge in the scrape"
        );
    }
    println!("{counts:?}");
    println!(
        "job count, before (list_jobs(10_000) + count in Rust; sees only the newest 10,000): {}",
        summary(old)
    );
    println!(
        "job count, after (count_jobs_by_state, GROUP BY; sees all {jobs}): {}",
        summary(new)
    );
    println!("GET /metrics over HTTP (after): {}", summary(scrapes));
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
