//! The creation wizard in headless Chromium against the simulator: pick a template, configure,
//! keep the packages and scripts, read the plan on Review, create, and watch the progress page
//! reach "Ready".

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use serde_json::json;

#[tokio::test]
async fn walk_the_wizard_read_the_plan_create_and_watch_progress() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_containers(1)).await;
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
    // Sign in for real (the wizard acts with the user's Proxmox ticket).
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
    let csrf = login.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .post(format!("{}/api/v1/templates/discover", app.address))
        .header("cookie", format!("ctforge_session={token}"))
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("wizard-create", &page, async {
        browser::goto(&page, &format!("{base}/containers/new")).await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"template\"][value=\"webapp\"]')",
            10,
        )
        .await?;
        browser::click(&page, "input[name=\"template\"][value=\"webapp\"]").await?;
        browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
        // Configure: defaults come from the template and the cluster.
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"hostname\"]')",
            10,
        )
        .await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"memory\"]').value === '512'",
            5,
        )
        .await?;
        browser::type_into(&page, "input[name=\"hostname\"]", "bad_name").await?;
        browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
        // A rejected step keeps what was typed and says what is wrong.
        browser::wait_for(
            &page,
            "document.querySelector('#hostname-error') !== null",
            10,
        )
        .await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"hostname\"]').value === 'bad_name'",
            5,
        )
        .await?;
        browser::set_value(&page, "input[name=\"hostname\"]", "wiz-01").await?;
        browser::set_value(&page, "input[name=\"password\"]", "wizard-pw-1").await?;
        browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
        // Packages, then scripts: keep everything.
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"bucket\"][value=\"web\"]')",
            10,
        )
        .await?;
        browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"enabled\"]')",
            10,
        )
        .await?;
        browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
        // Review: the exact create parameters, password masked, and every step.
        browser::wait_for(
            &page,
            "document.body.innerText.includes('Proxmox create call')",
            10,
        )
        .await?;
        let text: String = page
            .evaluate("document.body.innerText")
            .await?
            .into_value()?;
        anyhow::ensure!(
            text.contains("wiz-01") && text.contains("********"),
            "plan shows hostname and masks the password:\n{text}"
        );
        anyhow::ensure!(
            !text.contains("wizard-pw-1"),
            "the password never appears in the plan"
        );
        anyhow::ensure!(
            text.contains("Run script 10-credentials.sh") && text.contains("Install with apt"),
            "{text}"
        );
        browser::screenshot(&page, "wizard-review").await;
        browser::click(&page, "button[name=\"go\"][value=\"create\"]").await?;
        // Progress page, live until ready.
        browser::wait_for(&page, "location.pathname.startsWith('/jobs/')", 10).await?;
        browser::wait_for(&page, "document.body.innerText.includes('Ready')", 30).await?;
        browser::wait_for(
            &page,
            "document.body.innerText.includes('nginx.service')",
            5,
        )
        .await?;
        browser::screenshot(&page, "wizard-progress-ready").await;
        Ok(())
    })
    .await;
    b.close().await;
    let containers = app.state.store.list_containers().await.unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].status, "ready");
}
