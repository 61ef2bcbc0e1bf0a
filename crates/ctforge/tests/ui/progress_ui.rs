//! Live progress as the user watches it: a creation job slowed by the simulator's task timings,
//! the job page sampled while the job runs (no reload between samples), screenshots on the way.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::browser;
use crate::common;

use ctforge_pve_sim::Timings;
use serde::Deserialize;
use serde_json::json;

/// Simulator timings that make a creation take several seconds (create and start dominate).
pub fn slow_timings() -> Timings {
    let mut t = Timings::instant();
    t.create = Duration::from_secs(3);
    t.start = Duration::from_secs(3);
    t
}

/// What the progress view shows at one moment.
#[derive(Debug, Deserialize, PartialEq)]
struct Sample {
    state: String,
    attempt: String,
    current: String,
    percent: f64,
    log: String,
    current_step: String,
    same_document: bool,
}

const SAMPLE: &str = r#"(() => {
  const q = (s) => document.querySelector(s);
  const cur = q('[data-step].current');
  return {
    state: (q('[data-job-state]') || {}).innerText || '',
    attempt: (q('[data-job-attempt]') || {}).innerText || '',
    current: (q('[data-job-current]') || {}).innerText || '',
    percent: Number((q('[data-job-percent]') || {}).value || 0),
    log: (q('[data-job-log]') || {}).innerText || '',
    current_step: cur ? cur.getAttribute('data-step') : '',
    same_document: window.__progressMarker === 1,
  };
})()"#;

#[tokio::test]
async fn the_progress_page_moves_while_the_job_runs() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_timings(slow_timings())).await;
    let cluster = common::sim_cluster(&sim);
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let (_, secret) = ctforge::tokens::create(&app.state, "root@pam", "progress", "127.0.0.1")
        .await
        .unwrap();
    let r = app
        .client
        .post(format!("{}/api/v1/templates/discover", app.address))
        .bearer_auth(&secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (session, _) = browser::session(&app.state, "root@pam").await;
    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &session).await;
    let base = app.address.clone();
    let client = app.client.clone();
    browser::run("progress-live", &page, async {
        let created: serde_json::Value = client
            .post(format!("{base}/api/v1/containers"))
            .bearer_auth(&secret)
            .json(&json!({ "template": "webapp", "hostname": "live-01", "password": "secret99" }))
            .send()
            .await?
            .json()
            .await?;
        let job = created["job_id"].as_i64().unwrap();
        browser::goto(&page, &format!("{base}/jobs/{job}")).await?;
        let _: serde_json::Value = browser::eval(&page, "window.__progressMarker = 1").await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut samples: Vec<Sample> = Vec::new();
        let mut shots = 0;
        let mut last_shot = Instant::now() - Duration::from_secs(10);
        loop {
            let s: Sample = browser::eval(&page, SAMPLE).await?;
            anyhow::ensure!(
                !s.log.contains("{\""),
                "raw JSON in the log while running:\n{}",
                s.log
            );
            let running = s.same_document && !s.state.contains("succeeded");
            if !running {
                break;
            }
            let changed = samples.last().is_none_or(|p| {
                p.current != s.current || p.percent != s.percent || p.state != s.state
            });
            if shots < 8 && (changed || last_shot.elapsed() > Duration::from_millis(1500)) {
                shots += 1;
                last_shot = Instant::now();
                browser::screenshot(&page, &format!("progress-{shots}")).await;
            }
            samples.push(s);
            anyhow::ensure!(
                Instant::now() < deadline,
                "the job did not finish within 60 s: {:?}",
                samples.last()
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        anyhow::ensure!(shots >= 3, "only {shots} intermediate screenshots");
        anyhow::ensure!(
            samples
                .iter()
                .any(|s| s.state.contains("running") && s.attempt.contains("attempt 1")),
            "the badge left queued (running, attempt 1): {samples:#?}"
        );
        let steps: Vec<&str> = samples.iter().map(|s| s.current_step.as_str()).collect();
        let mut distinct = steps.clone();
        distinct.dedup();
        distinct.retain(|s| !s.is_empty());
        anyhow::ensure!(
            distinct.len() >= 2,
            "the current step advanced live: {distinct:?}"
        );
        anyhow::ensure!(
            samples.iter().any(|s| s.percent > 0.0 && s.percent < 100.0),
            "the bar moved before the end: {:?}",
            samples.iter().map(|s| s.percent).collect::<Vec<_>>()
        );
        anyhow::ensure!(
            samples.iter().any(|s| s.current.starts_with("Step ")),
            "the current step is named: {samples:#?}"
        );
        // The end: reloaded once, ready, and still no JSON.
        browser::wait_for(&page, "document.body.innerText.includes('Ready')", 30).await?;
        let text: String = browser::eval(&page, "document.body.innerText").await?;
        anyhow::ensure!(!text.contains("{\""), "raw JSON after the end:\n{text}");
        browser::screenshot(&page, "progress-done").await;
        Ok(())
    })
    .await;
    b.close().await;
}
