//! The config-manager panel in the browser: a container whose boot unit stopped on a conflict
//! shows, on its page, the last run, "exit 5" with its meaning, the conflicting file, the
//! applied version, and the log tail behind a disclosure that opens; no serious axe violation.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::browser;
use crate::common;

use ctforge_pve_sim::Timings;
use serde_json::json;

#[tokio::test]
async fn library_config_manager_panel_on_the_container_page() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_timings(Timings::instant())).await;
    let cluster = common::sim_cluster(&sim);
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![examples];
    })
    .await;
    let (token, csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let post = |path: String, body: serde_json::Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("cookie", format!("ctforge_session={token}"))
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    assert_eq!(
        post("/api/v1/templates/discover".into(), json!({}))
            .await
            .unwrap()
            .status(),
        200
    );
    let created: serde_json::Value = post(
        "/api/v1/containers".into(),
        json!({ "template": "webapp", "hostname": "cm-panel", "password": "secret99" }),
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
    while app.state.store.get_job(job).await.unwrap().state != "succeeded" {
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} did not succeed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vmid = u32::try_from(app.state.store.get_container(id).await.unwrap().vmid).unwrap();
    {
        let state = sim.state();
        let backend = state.memory_backend().unwrap();
        let script = "mkdir -p /var/lib/ctforge /var/log/config-manager && \
            echo '1700000100 5' > /var/lib/ctforge/last-result && \
            echo /etc/nginx/sites-enabled/site.conf > /var/lib/ctforge/conflicts && \
            echo '[2023-11-14 22:15:00] [INFO   ] config-manager run' > /var/log/config-manager/sync.log && \
            echo '[2023-11-14 22:15:01] [ERROR  ] conflict: /etc/nginx/sites-enabled/site.conf was changed here and in the template' >> /var/log/config-manager/sync.log";
        let argv = ["sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let (_, err, code) = backend.run(vmid, &argv, b"");
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    }
    let r = post(
        format!("/api/v1/containers/{id}/services/refresh"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("config-manager-panel", &page, async {
        browser::goto(&page, &format!("{base}/containers/{id}")).await?;
        browser::wait_for(&page, "!!document.querySelector('#config-manager')", 10).await?;
        let text: String =
            browser::eval(&page, "document.querySelector('#config-manager').innerText").await?;
        anyhow::ensure!(text.contains("exit 5"), "{text}");
        anyhow::ensure!(text.contains("conflict, nothing applied"), "{text}");
        anyhow::ensure!(
            text.contains("/etc/nginx/sites-enabled/site.conf"),
            "the conflict is listed: {text}"
        );
        anyhow::ensure!(
            text.contains("template webapp "),
            "the applied version: {text}"
        );
        // The log is collapsed, then readable once opened.
        let open = "document.querySelector('#config-manager details').open";
        anyhow::ensure!(
            !browser::eval::<bool>(&page, open).await?,
            "log starts collapsed"
        );
        browser::click(&page, "#config-manager details summary").await?;
        browser::wait_for(&page, open, 5).await?;
        let log: String = browser::eval(
            &page,
            "document.querySelector('#config-manager .cm-log').innerText",
        )
        .await?;
        anyhow::ensure!(
            log.contains("was changed here and in the template"),
            "{log}"
        );
        browser::screenshot(&page, "container-config-manager").await;
        let violations = browser::axe_check(&page, "config-manager-panel").await?;
        let serious: Vec<_> = violations.iter().filter(|v| v.is_serious()).collect();
        anyhow::ensure!(
            serious.is_empty(),
            "{}",
            browser::axe_report("config-manager-panel", &violations)
        );
        Ok(())
    })
    .await;
    b.close().await;
}
