//! The scale-out profile as deployed: one `ctforge serve` without workers and two
//! `ctforge worker` processes sharing PostgreSQL and Redis. A container created through the web
//! process is provisioned by a worker process, and its progress reaches the web process's SSE
//! stream through Redis.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serve_and_two_workers_on_postgres_and_redis() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/templates");
    let config = dir.path().join("ctforge.toml");
    std::fs::write(
        &config,
        format!("[templates]\nroots = [{templates:?}]\n\n[workers]\nconcurrency = 0\nper_node = 2\n\n{}", ctforge_pve_sim::cli::cluster_toml(&sim)),
    )
    .unwrap();
    let database = common::fresh_pg_url().await;
    let redis =
        std::env::var("CTFORGE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let key = "c2NhbGUtb3V0LXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmc=";
    let port = free_port();
    let spawn = |args: &[&str], concurrency: &str| {
        Command::new(env!("CARGO_BIN_EXE_ctforge"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .env("CTFORGE_DATABASE_URL", &database)
            .env("CTFORGE_REDIS_URL", &redis)
            .env("CTFORGE_SECRET_KEY", key)
            .env("CTFORGE_WORKERS__CONCURRENCY", concurrency)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children = Kill(vec![spawn(
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
        "0",
    )]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    children.0.push(spawn(&["worker"], "2"));
    children.0.push(spawn(&["worker"], "2"));

    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |path: String, body: serde_json::Value| {
        client
            .post(path)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(format!("{base}/api/v1/templates/discover"), json!({}))
            .await
            .unwrap()
            .status(),
        200
    );

    let mut jobs = Vec::new();
    for i in 0..3 {
        let r = post(
            format!("{base}/api/v1/containers"),
            json!({ "template": "webapp", "hostname": format!("scale-{i}") }),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        jobs.push(
            r.json::<serde_json::Value>().await.unwrap()["job_id"]
                .as_i64()
                .unwrap(),
        );
    }
    // Follow the first job's SSE stream on the web process: events come from a worker.
    let stream = client
        .get(format!("{base}/api/v1/jobs/{}/events", jobs[0]))
        .header("cookie", &cookie)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stream.contains("event: done"), "{stream}");
    assert!(
        stream.contains("running 10-credentials.sh"),
        "log lines reach the web process"
    );

    let store =
        ctforge::storage::connect(&database, std::sync::Arc::new(ctforge::clock::SystemClock))
            .await
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<String> = {
            let mut v = Vec::new();
            for id in &jobs {
                v.push(store.get_job(*id).await.unwrap().state);
            }
            v
        };
        if states.iter().all(|s| s == "succeeded") {
            break;
        }
        assert!(!states.iter().any(|s| s == "failed"), "{states:?}");
        assert!(Instant::now() < deadline, "jobs did not finish: {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = store.job_events_after(jobs[0], 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "no event lost or duplicated"
    );
    for c in store.list_containers().await.unwrap() {
        assert_eq!(c.status, "ready", "{}", c.hostname);
    }
}
