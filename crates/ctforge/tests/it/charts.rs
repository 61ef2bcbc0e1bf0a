//! Resource charts: the SVG renderer against known points (gaps split the line, units on the
//! axis, min/max/last in the description, hover read-outs), and the container Resources tab and
//! node page over real HTTP against the simulator for every timeframe.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge::config::{ClusterBootstrap, Secret};
use ctforge::web::components::chart::{Chart, Series, Unit, fmt_value, line_chart};
use ctforge_pve_sim::SimHandle;
use serde_json::{Value, json};

const MIB: f64 = 1024.0 * 1024.0;

fn chart(unit: Unit, values: Vec<Option<f64>>) -> String {
    let times = (0..values.len() as i64)
        .map(|i| 1_700_000_000 + 60 * i)
        .collect();
    line_chart(&Chart {
        id: "c".into(),
        title: "Test chart".into(),
        unit,
        times,
        series: vec![Series {
            label: "Used".into(),
            values,
        }],
    })
    .into_string()
}

#[test]
fn gaps_split_the_line_and_units_are_labelled() {
    let svg = chart(
        Unit::Bytes,
        vec![
            Some(100.0 * MIB),
            Some(200.0 * MIB),
            None,
            None,
            Some(300.0 * MIB),
            Some(250.0 * MIB),
        ],
    );
    assert!(svg.contains(r#"role="img""#), "{svg}");
    assert!(
        svg.contains("<title id=\"c-t\">Test chart</title>"),
        "{svg}"
    );
    assert_eq!(svg.matches("<path").count(), 2, "two segments: {svg}");
    assert_eq!(svg.matches(r#"class="chart-line chart-s0""#).count(), 2);
    assert!(svg.contains("MiB"), "{svg}");
    assert!(
        svg.contains("min 100 MiB, max 300 MiB, last 250 MiB"),
        "{svg}"
    );
    // No point drawn at the bottom of the plot (a zero) for the missing values.
    let bottom = format!("{:.1}", 200.0 - 26.0);
    for d in svg.split(" d=\"").skip(1) {
        let d = d.split('"').next().unwrap();
        assert!(!d.contains(&format!(" {bottom}")), "zero drawn: {d}");
        assert_eq!(d.matches('M').count(), 1);
    }
    // Hover read-out per point, including the gaps.
    assert_eq!(svg.matches("<rect").count(), 6);
    assert!(svg.contains("— Used: 200 MiB"), "{svg}");
    assert!(svg.contains("— Used: no data"), "{svg}");

    let rates = chart(
        Unit::BytesPerSec,
        vec![Some(1536.0), None, Some(4096.0), Some(3000.0)],
    );
    assert!(rates.contains("KiB/s"), "{rates}");
    assert_eq!(rates.matches("<path").count(), 2);

    let empty = chart(Unit::Percent, vec![None, None, None]);
    assert_eq!(empty.matches("<path").count(), 0);
    assert!(empty.contains("No data for this period."), "{empty}");
}

#[test]
fn values_are_formatted_in_binary_units() {
    assert_eq!(fmt_value(Unit::Bytes, 512.0), "512 B");
    assert_eq!(fmt_value(Unit::Bytes, 1536.0), "1.5 KiB");
    assert_eq!(fmt_value(Unit::Bytes, 2.0 * 1024.0 * MIB), "2 GiB");
    assert_eq!(fmt_value(Unit::BytesPerSec, 10.0), "10 B/s");
    assert_eq!(fmt_value(Unit::BytesPerSec, 5.0 * MIB), "5 MiB/s");
    assert_eq!(fmt_value(Unit::Percent, 12.5), "12.5 %");
}

const SCENARIO: &str = r#"
node_count = 1

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"
"#;

async fn sim() -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(SCENARIO, |c| c.with_nodes(1)).await
}

#[tokio::test]
async fn resources_tab_and_node_page_show_five_charts_per_timeframe() {
    let sim = sim().await;
    let c = ClusterBootstrap {
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
    };
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![c];
        config.workers.concurrency = 0;
    })
    .await;
    let response = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let _: Value = response.json().await.unwrap();
    let get = |path: String| {
        let (client, cookie, address) = (app.client.clone(), cookie.clone(), app.address.clone());
        async move {
            let r = client
                .get(format!("{address}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for tf in ["hour", "day", "week", "month", "year"] {
        let (status, body) = get(format!("/containers/sim:200?tab=resources&timeframe={tf}")).await;
        assert_eq!(status, 200, "{tf}: {body}");
        assert_eq!(body.matches("<svg").count(), 5, "{tf}: {body}");
        assert_eq!(body.matches(r#"role="img""#).count(), 5, "{tf}");
        assert!(
            body.contains(&format!(
                r#"href="/containers/sim:200?tab=resources&amp;timeframe={tf}" aria-current="page""#
            )),
            "{tf}: toggle"
        );
        for unit in ["%", "B/s"] {
            assert!(body.contains(unit), "{tf}: {unit}");
        }
        assert!(body.contains("last "), "{tf}: summary");
        // Downsampled to at most 240 points per chart: the page stays light.
        assert!(body.len() < 300_000, "{tf}: {} bytes", body.len());

        let (status, body) = get(format!("/nodes/pve1?timeframe={tf}")).await;
        assert_eq!(status, 200, "node {tf}: {body}");
        assert_eq!(
            body.matches("<svg class=\"chart-svg\"").count(),
            5,
            "node {tf}"
        );
    }
    let (status, body) = get("/nodes/nope".to_owned()).await;
    assert_eq!(status, 404, "{body}");
}
