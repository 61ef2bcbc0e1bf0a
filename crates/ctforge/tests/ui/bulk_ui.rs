//! Bulk actions in headless Chromium against the simulator: tick containers on the dashboard,
//! "select all on this page", a destructive action confirmed in the dialog that names how many
//! and which containers, then the job's page with a result per container.

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use ctforge::config::{ClusterBootstrap, Secret};
use ctforge_pve_sim::Timings;
use serde_json::json;

const SCENARIO: &str = r#"
node_count = 1

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"

[[containers]]
vmid = 201
node = "pve1"
hostname = "web2"
status = "running"

[[containers]]
vmid = 202
node = "pve1"
hostname = "db1"
status = "running"
"#;

#[tokio::test]
async fn select_confirm_in_the_dialog_and_follow_the_job() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| c.with_timings(Timings::instant())).await;
    let cluster = ClusterBootstrap {
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
    let app = common::spawn_app_with("sqlite", move |c| c.clusters = vec![cluster]).await;
    let login = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ctforge_session=")
        .to_owned();

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("bulk-stop", &page, async {
        browser::goto(&page, &format!("{base}/")).await?;
        browser::wait_for(&page, "document.querySelectorAll('[data-bulk-pick]').length === 3", 10)
            .await?;
        // Select all on this page, then clear, without leaving the page.
        browser::click(&page, "[data-bulk-all]").await?;
        browser::wait_for(
            &page,
            "document.querySelectorAll('[data-bulk-pick]:checked').length === 3 && document.querySelector('[data-bulk-count]').textContent === '3 containers selected.'",
            5,
        )
        .await?;
        anyhow::ensure!(browser::url(&page).await.ends_with('/'), "no navigation");
        browser::click(&page, "[data-bulk-all]").await?;
        browser::wait_for(&page, "document.querySelectorAll('[data-bulk-pick]:checked').length === 0", 5)
            .await?;
        // Pick two and stop them: the dialog names how many and which.
        browser::click(&page, "input[data-bulk-pick][value='sim:200']").await?;
        browser::click(&page, "input[data-bulk-pick][value='sim:201']").await?;
        browser::wait_for(
            &page,
            "document.querySelector('[data-bulk-count]').textContent === '2 containers selected.'",
            5,
        )
        .await?;
        browser::click(&page, "button[data-bulk-confirm='dlg-bulk-stop']").await?;
        browser::wait_for(&page, "document.getElementById('dlg-bulk-stop').open", 5).await?;
        let (title, text): (String, String) = page
            .evaluate("[document.querySelector('#dlg-bulk-stop h2').textContent, document.querySelector('#dlg-bulk-stop p').textContent]")
            .await?
            .into_value()?;
        anyhow::ensure!(title == "Stop 2 containers?", "dialog title: {title}");
        anyhow::ensure!(
            text.starts_with("web1 (CT 200), web2 (CT 201): stopped immediately"),
            "dialog text: {text}"
        );
        anyhow::ensure!(sim.state().ct_running(200) == Some(true), "nothing ran before confirming");
        browser::click(&page, "#dlg-bulk-stop button[type='submit']").await?;
        // The job's page: one row per container, filled in as results arrive.
        browser::wait_for(&page, "location.pathname.startsWith('/jobs/')", 10).await?;
        browser::wait_for(
            &page,
            "document.querySelectorAll('[data-bulk-results] [data-result-outcome] .badge-ok').length === 2",
            15,
        )
        .await?;
        let rows: String = page
            .evaluate("document.querySelector('[data-bulk-results]').innerText")
            .await?
            .into_value()?;
        anyhow::ensure!(
            rows.contains("web1 (CT 200)") && rows.contains("web2 (CT 201)") && !rows.contains("db1"),
            "results: {rows}"
        );
        Ok(())
    })
    .await;
    b.close().await;
    assert_eq!(sim.state().ct_running(200), Some(false));
    assert_eq!(sim.state().ct_running(201), Some(false));
    assert_eq!(sim.state().ct_running(202), Some(true));
}
