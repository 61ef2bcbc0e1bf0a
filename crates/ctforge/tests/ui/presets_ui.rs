//! Presets in headless Chromium against a three-node simulator: fill the wizard with a
//! hostname pattern, save it as a preset on Review, start a new wizard from that preset, create
//! three containers at once round-robin, and find web-1..3 on pve1..3 — while another creation
//! runs at the same time, with no VMID shared.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::browser;
use crate::common;

use serde_json::{Value, json};

/// Clicks through the DOM once the page has loaded (a node looked up during a navigation
/// would be gone by the time it is clicked).
async fn tap(page: &chromiumoxide::Page, selector: &str) -> anyhow::Result<()> {
    browser::wait_for(page, "document.readyState === 'complete'", 10).await?;
    browser::wait_for(
        page,
        &format!(
            "document.querySelector({})",
            serde_json::to_string(selector)?
        ),
        10,
    )
    .await?;
    let js = format!(
        "(() => {{ const el = document.querySelector({}); if (!el) return false; el.click(); return true; }})()",
        serde_json::to_string(selector)?
    );
    let done: bool = browser::eval(page, &js).await?;
    anyhow::ensure!(done, "no element matches `{selector}`");
    Ok(())
}

#[tokio::test]
async fn save_a_preset_from_the_wizard_and_create_three_from_it() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(3)).await;
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
    let (token, csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let cookie = format!("ctforge_session={token}");
    let post = |path: &str, body: Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    assert_eq!(
        post("/api/v1/templates/discover", json!({}))
            .await
            .unwrap()
            .status(),
        200
    );

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("preset-save", &page, async {
        browser::goto(&page, &format!("{base}/containers/new")).await?;
        tap(&page, "input[name=\"template\"][value=\"webapp\"]").await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(&page, "document.querySelector('input[name=\"hostname\"]')", 10).await?;
        browser::set_value(&page, "input[name=\"hostname\"]", "web-{n}").await?;
        browser::set_value(&page, "input[name=\"memory\"]", "640").await?;
        browser::set_value(&page, "input[name=\"password\"]", "wizard-pw-1").await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(&page, "document.querySelector('input[name=\"bucket\"]')", 10).await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(&page, "document.querySelector('input[name=\"enabled\"]')", 10).await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        // Review: the plan of the first container, and the batch fields.
        browser::wait_for(&page, "document.body.innerText.includes('Proxmox create call')", 10)
            .await?;
        let text: String = browser::eval(&page, "document.body.innerText").await?;
        anyhow::ensure!(text.contains("web-1"), "the pattern is planned as web-1:\n{text}");
        browser::set_value(&page, "input[name=\"count\"]", "3").await?;
        browser::set_value(&page, "select[name=\"placement\"]", "round-robin").await?;
        browser::set_value(&page, "input[name=\"preset_name\"]", "web-small").await?;
        tap(&page, "button[name=\"go\"][value=\"save_preset\"]").await?;
        browser::wait_for(&page, "document.body.innerText.includes('Preset web-small saved.')", 10)
            .await?;
        browser::screenshot(&page, "preset-saved").await;

        // A new wizard from the preset: its values fill the form.
        browser::goto(&page, &format!("{base}/containers/new")).await?;
        tap(&page, "input[name=\"preset\"][value=\"web-small\"]").await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"memory\"]') && document.querySelector('input[name=\"memory\"]').value === '640'",
            10,
        )
        .await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"hostname\"]').value === 'web-{n}'",
            5,
        )
        .await?;
        browser::set_value(&page, "input[name=\"password\"]", "wizard-pw-1").await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(&page, "document.querySelector('input[name=\"bucket\"]')", 10).await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(&page, "document.querySelector('input[name=\"enabled\"]')", 10).await?;
        tap(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"count\"]') && document.querySelector('input[name=\"count\"]').value === '3'",
            10,
        )
        .await?;
        Ok(())
    })
    .await;

    // The stored preset holds the pattern, the batch fields, and never the password.
    let preset: Value = app
        .client
        .get(format!("{}/api/v1/presets/web-small", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preset["template"], "webapp", "{preset}");
    assert_eq!(preset["values"]["hostname"], "web-{n}", "{preset}");
    assert_eq!(preset["values"]["memory"], 640, "{preset}");
    assert_eq!(preset["values"]["count"], 3, "{preset}");
    assert_eq!(preset["values"]["placement"], "round-robin", "{preset}");
    assert!(!preset.to_string().contains("wizard-pw-1"), "{preset}");

    // Create from the Review page while another creation is submitted at the same moment.
    let concurrent = post(
        "/api/v1/containers",
        json!({"template": "webapp", "hostname": "solo", "password": "secret99"}),
    );
    let create = async {
        browser::run("preset-create", &page, async {
            tap(&page, "button[name=\"go\"][value=\"create\"]").await?;
            browser::wait_for(&page, "location.pathname.startsWith('/jobs/')", 10).await?;
            Ok(())
        })
        .await;
    };
    let (solo, ()) = tokio::join!(concurrent, create);
    let solo: Value = solo.unwrap().json().await.unwrap();
    let job_path: String = browser::eval(&page, "location.pathname").await.unwrap();
    let job_id: i64 = job_path.trim_start_matches("/jobs/").parse().unwrap();
    let job = loop {
        let job: Value = app
            .client
            .get(format!("{}/api/v1/jobs/{job_id}", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser::screenshot(&page, "preset-batch-job").await;
    b.close().await;
    assert_eq!(job["kind"], "create_batch", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    let containers = app.state.store.list_containers().await.unwrap();
    let mut vmids: Vec<i64> = containers.iter().map(|c| c.vmid).collect();
    vmids.sort_unstable();
    vmids.dedup();
    assert_eq!(
        vmids.len(),
        containers.len(),
        "no VMID shared: {containers:?}"
    );
    assert!(
        containers
            .iter()
            .any(|c| c.vmid == solo["vmid"].as_i64().unwrap())
    );
    for (h, node) in [("web-1", "pve1"), ("web-2", "pve2"), ("web-3", "pve3")] {
        let c = containers
            .iter()
            .find(|c| c.hostname == h)
            .unwrap_or_else(|| panic!("{h} created: {containers:?}"));
        assert_eq!(c.node, node, "{h} placed round-robin");
    }
}
