//! Memory-backend calls per second over HTTP (plain tokio, no criterion):
//! `cargo bench -p ctforge-pve-sim --bench calls`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctforge_pve_sim::{SimConfig, start};

async fn measure(
    client: &reqwest::Client,
    url: &str,
    auth: &str,
    concurrency: usize,
    dur: Duration,
) -> (f64, usize) {
    let deadline = Instant::now() + dur;
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..concurrency {
        let c = client.clone();
        let (u, a, n) = (url.to_string(), auth.to_string(), count.clone());
        joins.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = c.get(&u).header("Authorization", &a).send().await;
                if let Ok(r) = r {
                    let ok = r.status().is_success();
                    let _ = r.bytes().await;
                    if ok {
                        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for j in joins {
        let _ = j.await;
    }
    let n = count.load(std::sync::atomic::Ordering::Relaxed);
    (n as f64 / dur.as_secs_f64(), n)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cfg = SimConfig::for_tests().with_nodes(8).with_containers(1000);
        let t0 = Instant::now();
        let h = start(cfg).await.expect("sim");
        println!("startup with 1000 CTs on 8 nodes: {:?}", t0.elapsed());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        let auth = h.token_header();
        let dur = Duration::from_secs(3);
        for (name, path) in [
            (
                "GET /cluster/resources (1000 CTs, ~300 KB)",
                "/cluster/resources",
            ),
            (
                "GET /nodes/pve1/lxc/100/status/current",
                "/nodes/pve1/lxc/100/status/current",
            ),
            ("GET /version", "/version"),
        ] {
            let url = format!("{}{}", h.api_url(), path);
            let size = client
                .get(&url)
                .header("Authorization", &auth)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body")
                .len();
            for conc in [1usize, 8] {
                let (rate, n) = measure(&client, &url, &auth, conc, dur).await;
                println!(
                    "{name}: concurrency {conc}: {rate:.0} calls/s ({n} calls, {size} bytes each)"
                );
            }
        }
        h.shutdown().await;
    });
}
