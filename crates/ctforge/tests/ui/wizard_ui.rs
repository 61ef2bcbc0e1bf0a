//! The creation wizard in headless Chromium against the simulator: pick a template, configure,
//! keep the packages and scripts, read the plan on Review, create, and watch the progress page
//! reach "Ready".

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use serde_json::json;

/// Root signed in through the API (the wizard acts with the user's own Proxmox ticket) and
/// the app's template roots discovered: the session token.
async fn signed_in_with_templates(app: &common::TestApp, root_password: &str) -> String {
    let (token, csrf) =
        browser::login_via_api(&app.client, &app.address, "root", root_password, "pam").await;
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
    token
}

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
    let token = signed_in_with_templates(&app, &sim.root_password).await;

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

/// A vm template's Configure step: choosing "a clone of a VM template" shows the cluster's VM
/// templates and the clone mode in place of the cloud image (the stylesheet, no script), axe
/// finds no serious violation there, and Review shows Proxmox's clone call.
#[tokio::test]
async fn a_vm_is_configured_as_a_clone_of_a_vm_template_and_reviewed() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| {
        c.with_nodes(1)
            .with_containers(0)
            .with_timings(ctforge_pve_sim::Timings::instant())
    })
    .await;
    common::pve::Pve::new(&sim)
        .create_vm_template(9000, "pve1", "debian-tpl")
        .await;
    let cluster = common::sim_cluster(&sim);
    let templates = tempfile::tempdir().unwrap();
    ctforge::demo::write_examples(templates.path()).unwrap();
    let root = templates.path().to_path_buf();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
        c.workers.concurrency = 0;
    })
    .await;
    let token = signed_in_with_templates(&app, &sim.root_password).await;

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    let shown = |selector: &str| {
        format!("document.querySelector('{selector}').getClientRects().length > 0")
    };
    browser::run("wizard-vm-clone", &page, async {
        browser::goto(&page, &format!("{base}/containers/new?template=vm-web")).await?;
        // The cloud image first; the clone's fields only once chosen.
        browser::wait_for(&page, &shown("#image"), 10).await?;
        anyhow::ensure!(!browser::eval::<bool>(&page, &shown("#clone_from")).await?);
        browser::click(&page, "input[name=\"disk_from\"][value=\"clone\"]").await?;
        browser::wait_for(&page, &shown("#clone_from"), 5).await?;
        anyhow::ensure!(!browser::eval::<bool>(&page, &shown("#image")).await?);
        let offered: Vec<String> = browser::eval(
            &page,
            "[...document.querySelectorAll('#clone_from option')].map(o => o.textContent.trim())",
        )
        .await?;
        anyhow::ensure!(offered == ["9000 — debian-tpl"], "{offered:?}");
        browser::assert_no_serious_axe(&page, "wizard-vm-clone").await?;
        browser::screenshot(&page, "wizard-vm-clone").await;
        browser::set_value(&page, "input[name=\"hostname\"]", "vm-clone").await?;
        browser::set_value(
            &page,
            "textarea[name=\"ssh_public_keys\"]",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx alice@laptop",
        )
        .await?;
        for step in ["Packages", "Scripts", "Review"] {
            browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
            browser::wait_for(
                &page,
                &format!(
                    "document.querySelector('li[aria-current=step]').textContent.includes('{step}')"
                ),
                10,
            )
            .await?;
        }
        browser::wait_for(
            &page,
            "document.body.innerText.includes('Proxmox clone call')",
            10,
        )
        .await?;
        let text: String = browser::eval(&page, "document.body.innerText").await?;
        anyhow::ensure!(
            text.contains("POST /nodes/pve1/qemu/9000/clone")
                && text.contains("PUT /nodes/pve1/qemu/")
                && !text.contains("import-from"),
            "{text}"
        );
        browser::screenshot(&page, "wizard-vm-clone-review").await;
        Ok(())
    })
    .await;
    b.close().await;
}
