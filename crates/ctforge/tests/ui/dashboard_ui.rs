//! The "Container management" must-show in headless Chromium against the simulator (50 CTs on
//! two nodes, one of them managed with a service and a credential): dashboard filters in the
//! URL (opened from a link, changed in the form, kept by the 30 s live refresh), a quick stop
//! from a card through its confirmation dialog (Cancel does nothing, confirming stops the CT),
//! the detail page's tabs, and a credential revealed on the Services tab (hidden until Reveal,
//! then shown with a copy button, and recorded in the audit log). Finally it measures the
//! dashboard's page weight and time to first render and prints them.

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use chromiumoxide::Page;
use ctforge::storage::model::{AuditFilter, ContainerService, NewContainer, NewJob};
use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::Value;

/// 46 generated CTs (every fifth stopped) plus these four: 50 in all, one page.
const SCENARIO: &str = r#"
node_count = 2
container_count = 46

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"
tags = "web;prod"

[[containers]]
vmid = 201
node = "pve1"
hostname = "api"
status = "running"

[[containers]]
vmid = 202
node = "pve2"
hostname = "legacy-db"
status = "stopped"
tags = "db"

[[containers]]
vmid = 203
node = "pve2"
hostname = "cache"
status = "running"
tags = "db;cache"
"#;

const SECRET: &str = "s3cret-Value-42";

/// VMIDs and statuses of the cards (or table rows) shown.
async fn shown(page: &Page) -> anyhow::Result<Vec<(u32, String)>> {
    browser::eval(
        page,
        "[...document.querySelectorAll('#ct-live [data-vmid]')].map(e => [Number(e.dataset.vmid), e.dataset.status])",
    )
    .await
}

fn running_in_sim(sim: &SimHandle, node: Option<&str>) -> Vec<u32> {
    sim.state().with(|c| {
        c.cts
            .values()
            .filter(|t| t.running && node.is_none_or(|n| t.node == n))
            .map(|t| t.vmid)
            .collect()
    })
}

fn stopped_in_sim(sim: &SimHandle) -> Vec<u32> {
    sim.state().with(|c| {
        c.cts
            .values()
            .filter(|t| !t.running)
            .map(|t| t.vmid)
            .collect()
    })
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn filters_quick_stop_tabs_and_credential_reveal_in_the_browser() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| {
        c.with_nodes(2).with_timings(Timings::instant())
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
    })
    .await;
    let (token, _csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    // web1 is managed: a record, a tracked service and a sealed credential.
    let store = &app.state.store;
    let sim_cluster = store.get_cluster_by_name("sim").await.unwrap();
    let (web1, _) = store
        .create_container_with_job(
            &NewContainer {
                cluster_id: sim_cluster.id,
                node: "pve1".into(),
                vmid: 200,
                hostname: "web1".into(),
                template_id: None,
                status: ctforge::status::RecordStatus::Ready,
                spec_json: r#"{"template":"webapp"}"#.into(),
                root_password_sealed: None,
                created_by: "root@pam".into(),
            },
            &NewJob {
                kind: "create_container".into(),
                container_id: None,
                node: Some("pve1".into()),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
            },
        )
        .await
        .unwrap();
    store
        .replace_services(
            web1,
            &[ContainerService {
                unit: "nginx.service".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                enabled: true,
                port: Some(80),
                url: Some("http://10.0.0.5/".into()),
                updated_at: 1_700_000_000_000,
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let sealed = app.state.keyring.seal(SECRET).unwrap();
    store
        .put_credential(web1, "admin-password", &sealed)
        .await
        .unwrap();
    assert_eq!(sim.state().with(|c| c.cts.len()), 50);

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("dashboard-management", &page, async {
        // 1. A filter in the URL: only stopped CTs, and the select says so.
        browser::goto(&page, &format!("{base}/?status=stopped")).await?;
        let cards = shown(&page).await?;
        let stopped = sorted(stopped_in_sim(&sim));
        anyhow::ensure!(stopped.len() >= 5, "the scenario has stopped CTs: {stopped:?}");
        anyhow::ensure!(
            sorted(cards.iter().map(|c| c.0).collect()) == stopped,
            "exactly the stopped CTs are shown: {cards:?} vs {stopped:?}"
        );
        anyhow::ensure!(cards.iter().all(|c| c.1 == "stopped"), "{cards:?}");
        anyhow::ensure!(
            browser::eval::<String>(&page, "document.querySelector('select#status').value").await?
                == "stopped",
            "the status select shows the URL's filter"
        );

        // 2. Change the filters in the form: the URL and the results follow.
        browser::set_value(&page, "select#status", "running").await?;
        browser::set_value(&page, "select#node", "pve2").await?;
        browser::click(&page, "form.filters button[type=submit]").await?;
        browser::wait_for(&page, "location.search.includes('status=running')", 10).await?;
        browser::wait_for(&page, "document.readyState === 'complete'", 10).await?;
        let url = browser::url(&page).await;
        anyhow::ensure!(
            url.ends_with("/?status=running&node=pve2"),
            "the URL holds the filters (and no empty ones): {url}"
        );
        let cards = shown(&page).await?;
        let expected = sorted(running_in_sim(&sim, Some("pve2")));
        anyhow::ensure!(
            sorted(cards.iter().map(|c| c.0).collect()) == expected && expected.contains(&203),
            "running CTs on pve2: {cards:?} vs {expected:?}"
        );

        // 3. The live refresh (what the 30 s timer runs) keeps the filter and shows news:
        //    stop CT 203 behind the page's back, then refresh.
        let r = app
            .client
            .post(format!("{base}/api/v1/containers/sim:203/stop"))
            .header("cookie", format!("ctforge_session={token}"))
            .header("x-csrf-token", &_csrf)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "stop 203: {}", r.status());
        browser::eval::<bool>(
            &page,
            "(document.querySelector('#ct-live').firstElementChild.dataset.stale = '1', true)",
        )
        .await?;
        let swapped: u32 = browser::eval(&page, "window.ctforgeRefresh()").await?;
        anyhow::ensure!(swapped == 1, "one live region refreshed, not {swapped}");
        anyhow::ensure!(
            browser::eval::<bool>(&page, "!document.querySelector('#ct-live [data-stale]')").await?,
            "the region's content was replaced"
        );
        let cards = shown(&page).await?;
        let expected = sorted(running_in_sim(&sim, Some("pve2")));
        anyhow::ensure!(
            !expected.contains(&203)
                && sorted(cards.iter().map(|c| c.0).collect()) == expected,
            "after the refresh: still running on pve2 only, 203 gone: {cards:?} vs {expected:?}"
        );
        anyhow::ensure!(
            browser::url(&page).await == url
                && browser::eval::<String>(&page, "document.querySelector('select#status').value")
                    .await?
                    == "running",
            "URL and select unchanged by the refresh"
        );

        // 4. Quick stop from a card, through the confirmation dialog.
        browser::goto(&page, &format!("{base}/")).await?;
        let card = "article[data-vmid='201']";
        let opener = format!("{card} [data-dialog-open]");
        browser::click(&page, &opener).await?;
        browser::wait_for(&page, "document.querySelector('dialog[open]')", 5).await?;
        let title: String = browser::eval(
            &page,
            "document.querySelector('dialog[open] h2').textContent",
        )
        .await?;
        anyhow::ensure!(title == "Stop api (CT 201)?", "the dialog names the CT: {title:?}");
        browser::click(&page, "dialog[open] [data-dialog-close]").await?;
        browser::wait_for(&page, "!document.querySelector('dialog[open]')", 5).await?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        anyhow::ensure!(
            running_in_sim(&sim, None).contains(&201),
            "Cancel leaves CT 201 running"
        );
        anyhow::ensure!(
            browser::url(&page).await == format!("{base}/"),
            "Cancel does not navigate"
        );
        browser::click(&page, &opener).await?;
        browser::wait_for(&page, "document.querySelector('dialog[open]')", 5).await?;
        browser::click(&page, "dialog[open] button[type=submit]").await?;
        browser::wait_for(
            &page,
            &format!("document.querySelector(\"{card}\") && document.querySelector(\"{card}\").dataset.status === 'stopped'"),
            10,
        )
        .await?;
        anyhow::ensure!(
            !running_in_sim(&sim, None).contains(&201),
            "confirming stopped CT 201 in Proxmox"
        );
        let badge: String = browser::eval(
            &page,
            &format!("document.querySelector(\"{card} .status\").textContent"),
        )
        .await?;
        anyhow::ensure!(badge.contains("stopped"), "the card's badge: {badge:?}");
        let toast: String =
            browser::eval(&page, "(document.querySelector('.toast') || {}).textContent || ''")
                .await?;
        anyhow::ensure!(
            toast.contains("CT 201") && toast.contains("stopped"),
            "a message says what happened: {toast:?}"
        );

        // 5. Detail page tabs, by clicking.
        browser::goto(&page, &format!("{base}/containers/{web1}")).await?;
        for (tab, key, expect) in [
            ("Services", "services", "nginx.service"),
            ("Events", "events", "Type"),
            ("Resources", "resources", "Resource history"),
            ("Overview", "overview", "Network"),
        ] {
            let selector = format!("[role=tab][href$='tab={key}']");
            browser::click(&page, &selector).await?;
            browser::wait_for(&page, &format!("location.search.includes('tab={key}')"), 10)
                .await?;
            browser::wait_for(&page, "document.readyState === 'complete'", 10).await?;
            let selected: String = browser::eval(
                &page,
                "document.querySelector('[role=tab][aria-selected=true]').textContent",
            )
            .await?;
            let panel: String =
                browser::eval(&page, "document.querySelector('[role=tabpanel]').innerText").await?;
            anyhow::ensure!(
                selected == tab && panel.contains(expect),
                "tab {tab}: selected {selected:?}, panel lacks {expect:?}:\n{panel}"
            );
        }

        // 6a. The Events tab follows the container live: a stop and a start made through the
        //     API appear in the list and the status badge without a reload; the page holds one
        //     stream, so the Reveal below still gets its answer.
        browser::goto(&page, &format!("{base}/containers/{web1}?tab=events")).await?;
        browser::eval::<bool>(&page, "(window.__sameDocument = true, true)").await?;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        for (action, kind, status) in [("stop", "stopped", "stopped"), ("start", "started", "running")] {
            let r = app
                .client
                .post(format!("{base}/api/v1/containers/{web1}/{action}"))
                .header("cookie", format!("ctforge_session={token}"))
                .header("x-csrf-token", &_csrf)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "{action} web1: {}", r.status());
            browser::wait_for(
                &page,
                &format!(
                    "(document.querySelector('[data-live-events] li') || {{}}).innerText?.includes('{kind}')"
                ),
                15,
            )
            .await
            .map_err(|e| anyhow::anyhow!("the {kind} event did not appear live: {e}"))?;
            browser::wait_for(
                &page,
                &format!("document.querySelector('.ct-detail-head').innerText.includes('{status}')"),
                15,
            )
            .await
            .map_err(|e| anyhow::anyhow!("the badge did not become {status}: {e}"))?;
        }
        let same: bool = browser::eval(&page, "window.__sameDocument === true").await?;
        anyhow::ensure!(same, "the page was not reloaded");
        let streams: u32 = browser::eval(
            &page,
            "document.querySelectorAll('[data-container-events]').length + document.querySelectorAll('[data-job-stream]').length",
        )
        .await?;
        anyhow::ensure!(streams == 1, "one stream source on the page, found {streams}");

        // 6. Credential reveal on the Services tab: hidden, Reveal, shown with a copy button.
        browser::goto(&page, &format!("{base}/containers/{web1}?tab=services")).await?;
        let html = page.content().await?;
        anyhow::ensure!(
            html.contains("admin-password") && !html.contains(SECRET),
            "the credential is listed, its value is not in the page"
        );
        browser::click(&page, ".creds form button[type=submit]").await?;
        browser::wait_for(&page, "document.querySelector('input.secret')", 10).await?;
        let value: String =
            browser::eval(&page, "document.querySelector('input.secret').value").await?;
        anyhow::ensure!(value == SECRET, "the revealed value: {value:?}");
        let copy: String = browser::eval(
            &page,
            "(document.querySelector('.creds button[data-copy]') || {}).textContent || ''",
        )
        .await?;
        anyhow::ensure!(copy.contains("Copy"), "a copy button next to the value");
        browser::goto(&page, &format!("{base}/audit?action=credential.reveal")).await?;
        let audit: String = browser::eval(&page, "document.querySelector('main').innerText").await?;
        anyhow::ensure!(
            audit.contains("credential.reveal") && audit.contains("root@pam"),
            "the reveal is in the audit log:\n{audit}"
        );
        Ok(())
    })
    .await;
    let reveals = store
        .list_audit(&AuditFilter {
            action: Some("credential.reveal".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reveals.len(), 1, "{reveals:?}");
    assert!(!reveals[0].detail_json.contains(SECRET));

    // Dashboard weight and first render with 50 CTs, cache off (a first visit).
    let metrics = b.anonymous_page().await;
    browser::run("dashboard-metrics", &metrics, async {
        measure_dashboard(&metrics, &base).await
    })
    .await;
    b.close().await;
}

/// Loads `/` five times with the HTTP cache off and prints the median page weight (HTML, CSS,
/// JS: bytes on the wire, compressed bodies, uncompressed bodies), first-contentful-paint,
/// DOMContentLoaded and time to first byte, from the Performance API.
async fn measure_dashboard(page: &Page, base: &str) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::network::{EnableParams, SetCacheDisabledParams};
    page.execute(EnableParams::default()).await?;
    page.execute(SetCacheDisabledParams::new(true)).await?;
    let js = r#"(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        const res = performance.getEntriesByType('resource')
            .filter(r => r.name.includes('/static/'));
        const sum = (k) => res.reduce((a, r) => a + r[k], 0);
        return {
            cards: document.querySelectorAll('#ct-live [data-vmid]').length,
            html: [nav.transferSize, nav.encodedBodySize, nav.decodedBodySize],
            assets: [sum('transferSize'), sum('encodedBodySize'), sum('decodedBodySize')],
            files: res.length,
            fcp: fcp ? fcp.startTime : -1,
            ttfb: nav.responseStart,
            dcl: nav.domContentLoadedEventEnd,
            load: nav.loadEventEnd,
        };
    })()"#;
    let mut runs: Vec<Value> = Vec::new();
    for _ in 0..5 {
        browser::goto(page, &format!("{base}/")).await?;
        browser::wait_for(
            page,
            "performance.getEntriesByName('first-contentful-paint').length > 0 && performance.getEntriesByType('navigation')[0].loadEventEnd > 0",
            10,
        )
        .await?;
        runs.push(browser::eval(page, js).await?);
    }
    let median = |f: &dyn Fn(&Value) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let n = |v: &Value, k: &str, i: usize| v[k][i].as_f64().unwrap_or(0.0);
    let cards = runs[0]["cards"].as_u64().unwrap_or(0);
    anyhow::ensure!(cards == 50, "the dashboard shows all 50 CTs, not {cards}");
    let html = [0, 1, 2].map(|i| median(&|v| n(v, "html", i)));
    let assets = [0, 1, 2].map(|i| median(&|v| n(v, "assets", i)));
    let fcp = median(&|v| v["fcp"].as_f64().unwrap_or(-1.0));
    let dcl = median(&|v| v["dcl"].as_f64().unwrap_or(-1.0));
    let ttfb = median(&|v| v["ttfb"].as_f64().unwrap_or(-1.0));
    let kib = |b: f64| b / 1024.0;
    println!(
        "dashboard, 50 CTs, cache off, median of 5 (gzip over HTTP):\n  \
         HTML:    {:.1} KiB on the wire, {:.1} KiB compressed body, {:.1} KiB uncompressed\n  \
         CSS+JS:  {:.1} KiB on the wire, {:.1} KiB compressed, {:.1} KiB uncompressed ({} files)\n  \
         total:   {:.1} KiB on the wire, {:.1} KiB uncompressed\n  \
         first-contentful-paint {fcp:.0} ms, DOMContentLoaded {dcl:.0} ms \
         (first byte of the HTML at {ttfb:.0} ms: the server's work, one Proxmox call)",
        kib(html[0]),
        kib(html[1]),
        kib(html[2]),
        kib(assets[0]),
        kib(assets[1]),
        kib(assets[2]),
        runs[0]["files"],
        kib(html[0] + assets[0]),
        kib(html[2] + assets[2]),
    );
    // Budgets with plenty of headroom: they fail when the page balloons, not on noise.
    anyhow::ensure!(
        html[1] > 0.0 && html[1] < html[2],
        "the HTML is served compressed ({} of {} bytes)",
        html[1],
        html[2]
    );
    anyhow::ensure!(
        html[0] + assets[0] < 150.0 * 1024.0,
        "dashboard weight over budget"
    );
    anyhow::ensure!(
        fcp > 0.0 && fcp < 2000.0,
        "first paint over budget: {fcp} ms"
    );
    Ok(())
}
