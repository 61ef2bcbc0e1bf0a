//! A failed creation in the browser: the container page names the step and the message, shows
//! the last log lines and leads to the log, Retry and Delete; Delete of a guest Proxmox no
//! longer has removes ctforge's record and says so.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::browser;
use crate::common;

use ctforge_pve_sim::Timings;
use serde_json::json;

#[tokio::test]
async fn a_failed_creation_leads_somewhere() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_timings(Timings::instant())).await;
    let cluster = common::sim_cluster(&sim);
    let templates = tempfile::tempdir().unwrap();
    let t = templates.path().join("broken");
    std::fs::create_dir_all(t.join("container-configs/scripts")).unwrap();
    std::fs::write(
        t.join("template.conf"),
        "TEMPLATE_APP=\"Broken\"\nTEMPLATE_CPU=1\nTEMPLATE_RAM=256\nTEMPLATE_DISK=2\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\nTEMPLATE_UNPRIVILEGED=1\n",
    )
    .unwrap();
    std::fs::write(
        t.join("container-configs/scripts/10-fail.sh"),
        "#!/bin/sh\necho preparing the database\necho 'error: cannot reach the mirror'\nexit 3\n",
    )
    .unwrap();
    let root = templates.path().to_path_buf();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let (token, csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let post = |path: &str, body: serde_json::Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("cookie", format!("ctforge_session={token}"))
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
    let created: serde_json::Value = post(
        "/api/v1/containers",
        json!({ "template": "broken", "hostname": "broken-ui", "password": "secret99" }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let (job, id) = (
        created["job_id"].as_i64().unwrap(),
        created["id"].as_i64().unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.state.store.get_job(job).await.unwrap().state != "failed" {
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} did not fail within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vmid = u32::try_from(app.state.store.get_container(id).await.unwrap().vmid).unwrap();

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("failure-path", &page, async {
        browser::goto(&page, &format!("{base}/containers/{id}")).await?;
        browser::wait_for(&page, "document.querySelector('[data-failure]')", 10).await?;
        let text: String =
            browser::eval(&page, "document.querySelector('[data-failure]').innerText").await?;
        anyhow::ensure!(text.contains("Creation failed at step scripts"), "{text}");
        anyhow::ensure!(text.contains("exited with 3"), "the message: {text}");
        anyhow::ensure!(
            text.contains("preparing the database"),
            "last log lines: {text}"
        );
        browser::screenshot(&page, "container-failed").await;
        // View log: the job page, no raw JSON.
        browser::click(&page, &format!("[data-failure] a[href='/jobs/{job}']")).await?;
        browser::wait_for(&page, &format!("location.pathname === '/jobs/{job}'"), 10).await?;
        let log: String =
            browser::eval(&page, "document.querySelector('[data-job-log]').innerText").await?;
        anyhow::ensure!(!log.contains("{\""), "{log}");
        anyhow::ensure!(
            browser::eval::<bool>(&page, "!!document.querySelector('[data-job-log] .log-err')")
                .await?,
            "the error line is styled as an error"
        );
        // Retry from the container page: the job runs again, attempt 2.
        browser::goto(&page, &format!("{base}/containers/{id}")).await?;
        browser::click(
            &page,
            &format!("[data-failure] form[action='/jobs/{job}/retry'] button"),
        )
        .await?;
        browser::wait_for(&page, &format!("location.pathname === '/jobs/{job}'"), 10).await?;
        browser::wait_for(
            &page,
            "document.querySelector('[data-job-attempt]').innerText.includes('attempt 2')",
            20,
        )
        .await?;
        Ok(())
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.state.store.get_job(job).await.unwrap().state != "failed" {
        assert!(
            std::time::Instant::now() < deadline,
            "the retry did not end within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The user fixes the script (PUT through the API) and retries from the container page:
    // the retry runs the template as it is now, reaches Ready, and the log says why.
    let view: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/templates/broken", app.address))
        .header("cookie", format!("ctforge_session={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut scripts = view["scripts"].as_array().unwrap().clone();
    scripts[0]["content"] = json!("#!/bin/sh\ntrue\n");
    let r = app
        .client
        .put(format!("{}/api/v1/templates/broken", app.address))
        .header("cookie", format!("ctforge_session={token}"))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "config": view["config"], "scripts": scripts }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    browser::run("failure-fixed-retry", &page, async {
        browser::goto(&page, &format!("{base}/containers/{id}")).await?;
        browser::click(
            &page,
            &format!("[data-failure] form[action='/jobs/{job}/retry'] button"),
        )
        .await?;
        browser::wait_for(&page, &format!("location.pathname === '/jobs/{job}'"), 10).await?;
        browser::wait_for(
            &page,
            "document.querySelector('[data-job-log]').innerText.includes('changed since the last attempt')",
            30,
        )
        .await?;
        Ok(())
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.state.store.get_job(job).await.unwrap().state != "succeeded" {
        assert!(
            std::time::Instant::now() < deadline,
            "the retry of the fixed template did not succeed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.state.store.get_container(id).await.unwrap().status,
        "ready"
    );
    // The guest disappears from Proxmox; Delete removes the record and says so.
    sim.state().lock().cts.remove(&vmid);
    browser::run("failure-delete-gone", &page, async {
        browser::goto(&page, &format!("{base}/containers/{id}")).await?;
        let body: String = browser::eval(&page, "document.body.innerText").await?;
        anyhow::ensure!(body.contains("no longer exists in Proxmox"), "{body}");
        anyhow::ensure!(!body.contains("Proxmox is unreachable"), "{body}");
        browser::click(
            &page,
            &format!("button[data-dialog-open='dlg-delete-{id}']"),
        )
        .await?;
        browser::click(&page, &format!("#dlg-delete-{id} button[type='submit']")).await?;
        browser::wait_for(&page, "location.pathname === '/'", 10).await?;
        browser::wait_for(
            &page,
            "document.body.innerText.includes('no longer exists in Proxmox')",
            10,
        )
        .await?;
        browser::screenshot(&page, "container-gone-deleted").await;
        Ok(())
    })
    .await;
    b.close().await;
    assert!(
        app.state.store.get_container(id).await.is_err(),
        "the record is gone"
    );
}
