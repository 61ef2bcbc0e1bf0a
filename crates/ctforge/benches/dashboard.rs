//! Dashboard benchmark: the real application (SQLite) against the simulator with 1,000 CTs on
//! 8 nodes (TLS, pinned fingerprint), 300 of them with ctforge records. Measures the time of
//! `GET /` (HTML, first page) and `GET /api/v1/containers` over loopback HTTP (median, p99,
//! max) and counts the Proxmox API calls one refresh makes (a zero-effect counting rule in the
//! simulator's fault table: 1 ms latency, a hit budget that decrements per matching request).
//!
//! Run with `cargo bench -p ctforge --bench dashboard` (`DASH_CTS`, `DASH_NODES`,
//! `DASH_REQUESTS` override the defaults 1000, 8, 200).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ctforge::config::{CliOverrides, ClusterBootstrap, Config, Secret};
use ctforge::storage::model::{NewContainer, NewJob};
use ctforge_pve_sim::SimConfig;
use ctforge_pve_sim::scenario::FaultRule;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn measure(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    n: u32,
) -> (f64, f64, f64, usize) {
    let mut times = Vec::with_capacity(n as usize);
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        size = r.bytes().await.unwrap().len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times.last().copied().unwrap_or(0.0),
        size,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ctforge::install_crypto_provider();
    let cts = env_u32("DASH_CTS", 1000);
    let nodes = env_u32("DASH_NODES", 8);
    let requests = env_u32("DASH_REQUESTS", 200);
    let sim = ctforge_pve_sim::start(
        SimConfig::for_tests()
            .with_tls(true)
            .with_nodes(nodes)
            .with_containers(cts),
    )
    .await?;

    let data_dir = tempfile::tempdir()?;
    let mut config = Config::load_from(&CliOverrides::default(), &[])?.config;
    config.listen = "127.0.0.1:0".to_owned();
    config.data_dir = data_dir.path().to_owned();
    config.workers.concurrency = 0;
    config.clusters = vec![ClusterBootstrap {
        name: "sim".into(),
        url: sim.base_url.clone(),
        token_id: sim.token_id.clone(),
        token_secret: Some(Secret::new(sim.token_secret.clone())),
        token_secret_file: None,
        fingerprint: Some(sim.fingerprint.clone()),
        ssh_user: "root".into(),
        ssh_port: 22,
        ssh_password: None,
        ssh_key_file: None,
        ssh_host_key: None,
        default: true,
        allow_insecure_http: false,
    }];
    let app = ctforge::startup::App::build(config).await?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));

    let client = reqwest::Client::new();
    let login = client
        .post(format!("{address}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await?;
    anyhow::ensure!(login.status() == 200, "login failed: {}", login.status());
    let cookie = login.headers()["set-cookie"]
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();

    // Records for 300 of the CTs (managed), so the merge has work to do.
    let listing: serde_json::Value = client
        .get(format!("{address}/api/v1/containers?page=1"))
        .header("cookie", &cookie)
        .send()
        .await?
        .json()
        .await?;
    let total = listing["counts"]["total"].as_u64().unwrap_or(0);
    let cluster = state.store.get_cluster_by_name("sim").await?;
    let mut managed = 0;
    for page in 1..=6 {
        let body: serde_json::Value = client
            .get(format!("{address}/api/v1/containers?page={page}"))
            .header("cookie", &cookie)
            .send()
            .await?
            .json()
            .await?;
        for item in body["items"].as_array().cloned().unwrap_or_default() {
            let container = NewContainer {
                cluster_id: cluster.id,
                node: item["node"].as_str().unwrap_or_default().to_owned(),
                vmid: item["vmid"].as_i64().unwrap_or_default(),
                hostname: item["hostname"].as_str().unwrap_or_default().to_owned(),
                status: ctforge::status::RecordStatus::Ready,
                spec_json: "{}".into(),
                created_by: "root@pam".into(),
                ..NewContainer::default()
            };
            let job = NewJob {
                kind: "create_container".into(),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
                ..NewJob::default()
            };
            state
                .store
                .create_container_with_job(&container, &job)
                .await?;
            managed += 1;
        }
    }

    let page_url = format!("{address}/");
    let api_url = format!("{address}/api/v1/containers");
    // Warm-up.
    measure(&client, &page_url, &cookie, 5).await;

    // Proxmox calls of one refresh, counted by the simulator.
    let budget = u32::MAX - 1;
    let mut rule = FaultRule::error(".*", "counting only");
    rule.error_rate = 0.0;
    rule.latency_ms = 1;
    rule.times = Some(budget);
    sim.state().clear_faults();
    sim.state()
        .add_fault(rule)
        .map_err(|e| anyhow::anyhow!(e))?;
    measure(&client, &page_url, &cookie, 1).await;
    let left = sim
        .state()
        .with(|c| c.fault_hits.first().copied().unwrap_or(budget));
    let calls_page = budget - left;
    measure(&client, &api_url, &cookie, 1).await;
    let left2 = sim
        .state()
        .with(|c| c.fault_hits.first().copied().unwrap_or(budget));
    let calls_api = left - left2;
    sim.state().clear_faults();

    // What the simulated Proxmox itself takes to answer one refresh's call (same kind of
    // pooled, pinned TLS client ctforge uses), to tell ctforge's own time from Proxmox's.
    let pve = ctforge_pve::PveClient::new(
        ctforge_pve::ClientConfig::new(sim.base_url.clone())
            .with_tls(ctforge_pve::TlsMode::Fingerprint(sim.fingerprint.clone()))
            .with_auth(ctforge_pve::Auth::token(
                sim.token_id
                    .split_once('!')
                    .map(|(u, _)| u)
                    .unwrap_or("root@pam"),
                sim.token_id
                    .split_once('!')
                    .map(|(_, t)| t)
                    .unwrap_or("ctforge"),
                sim.token_secret.clone(),
            )),
    )?;
    let mut pve_times = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let t = Instant::now();
        let items = ctforge_pve::PveApi::cluster_resources(
            &pve,
            Some(ctforge_pve::types::ResourceKind::Vm),
        )
        .await?;
        assert_eq!(items.len(), total as usize);
        pve_times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    pve_times.sort_by(f64::total_cmp);
    let pve50 = percentile(&pve_times, 50.0);

    let (p50, p99, max, size) = measure(&client, &page_url, &cookie, requests).await;
    let (a50, a99, amax, asize) = measure(&client, &api_url, &cookie, requests).await;
    let filtered = format!("{address}/?q=ct-1&status=running&view=table");
    let (f50, f99, fmax, _) = measure(&client, &filtered, &cookie, requests).await;

    println!(
        "dashboard benchmark: {total} CTs on {nodes} nodes ({managed} with ctforge records), {requests} sequential requests each"
    );
    println!(
        "  Proxmox calls per refresh: GET / = {calls_page}, GET /api/v1/containers = {calls_api}"
    );
    println!(
        "  GET /                      median {p50:.1} ms  p99 {p99:.1} ms  max {max:.1} ms  ({size} bytes, first page of 50)"
    );
    println!(
        "  GET /api/v1/containers     median {a50:.1} ms  p99 {a99:.1} ms  max {amax:.1} ms  ({asize} bytes)"
    );
    println!(
        "  GET /?q=…&status=…&view=table median {f50:.1} ms  p99 {f99:.1} ms  max {fmax:.1} ms"
    );
    println!(
        "  the simulated Proxmox alone: GET /cluster/resources?type=vm median {pve50:.1} ms (over HTTPS, {total} items)"
    );
    println!(
        "  ctforge's own time per refresh (median total − median Proxmox): GET / {:.1} ms, GET /api/v1/containers {:.1} ms",
        p50 - pve50,
        a50 - pve50
    );

    let _ = tx.send(());
    server.await??;
    sim.shutdown().await;
    Ok(())
}
