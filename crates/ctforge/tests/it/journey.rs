//! The everyday journey over HTTP: the Jobs page (filters, attempts, Cancel and Retry behind
//! CSRF) and a failed creation you can act on from the container page.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::common;

use serde_json::json;

/// A template directory holding `webapp`'s sibling `broken`, whose script fails.
pub fn broken_templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("broken/container-configs/scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        dir.path().join("broken/template.conf"),
        "TEMPLATE_APP=\"Broken\"\nTEMPLATE_CPU=1\nTEMPLATE_RAM=256\nTEMPLATE_DISK=2\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\nTEMPLATE_UNPRIVILEGED=1\n",
    )
    .unwrap();
    std::fs::write(
        scripts.join("10-fail.sh"),
        "#!/bin/sh\necho preparing the database\necho 'warning: disk is small'\necho 'error: cannot reach the mirror' >&2\nexit 3\n",
    )
    .unwrap();
    dir
}

struct Journey {
    app: common::TestApp,
    session: common::ApiSession,
    sim: ctforge_pve_sim::SimHandle,
    _templates: tempfile::TempDir,
}

async fn journey(create_secs: u64) -> Journey {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| {
        let mut t = ctforge_pve_sim::Timings::instant();
        t.create = Duration::from_secs(create_secs);
        c.with_timings(t)
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let templates = broken_templates();
    let root = templates.path().to_path_buf();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let session =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let r = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    Journey {
        app,
        session,
        sim,
        _templates: templates,
    }
}

impl Journey {
    async fn create(&self, hostname: &str) -> (i64, i64) {
        let r = self
            .session
            .post(
                &self.app.client,
                &self.app.address,
                "/api/v1/containers",
                json!({ "template": "broken", "hostname": hostname, "password": "secret99" }),
            )
            .await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success(), "{body}");
        (
            body["job_id"].as_i64().unwrap(),
            body["id"].as_i64().unwrap(),
        )
    }

    async fn wait_job(&self, id: i64, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.app.state.store.get_job(id).await.unwrap();
            if job.state == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not become {state} within 30 s (it is {})",
                job.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn page(&self, path: &str) -> (u16, String) {
        let r = self
            .app
            .client
            .get(format!("{}{path}", self.app.address))
            .header("cookie", &self.session.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn form(&self, path: &str, csrf: bool) -> reqwest::Response {
        let mut fields = vec![];
        if csrf {
            fields.push(("csrf_token", self.session.csrf.clone()));
        }
        self.app
            .client
            .post(format!("{}{path}", self.app.address))
            .header("cookie", &self.session.cookie)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }
}

/// The `<tr>` of a job in the jobs list, or "" if it is not listed.
fn row(html: &str, id: i64) -> String {
    let marker = format!("data-job-id=\"{id}\"");
    html.find(&marker)
        .map(|start| {
            let end = html[start..]
                .find("</tr>")
                .map_or(html.len(), |e| start + e);
            html[start..end].to_owned()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_jobs_page_lists_filters_retries_and_cancels() {
    let j = journey(2).await;
    let (failing, _) = j.create("fail-01").await;
    j.wait_job(failing, "failed").await;

    let (status, html) = j.page("/jobs").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("href=\"/jobs\" aria-current=\"page\""),
        "Jobs is in the navigation"
    );
    assert!(
        html.contains("href=\"/api/docs\""),
        "API docs are in the navigation"
    );
    let r = row(&html, failing);
    assert!(
        r.contains("Create container") && r.contains("fail-01"),
        "{r}"
    );
    assert!(
        r.contains("root@pam") && r.contains("failed") && r.contains("attempt 1"),
        "{r}"
    );
    assert!(
        r.contains(&format!("/jobs/{failing}/retry")),
        "a failed job offers Retry: {r}"
    );
    assert!(html.contains("data-refresh"), "the list refreshes itself");

    // Filters in the URL.
    assert!(!row(&j.page("/jobs?state=failed").await.1, failing).is_empty());
    assert!(row(&j.page("/jobs?state=succeeded").await.1, failing).is_empty());
    assert!(!row(&j.page("/jobs?kind=create_container").await.1, failing).is_empty());
    assert!(row(&j.page("/jobs?kind=bulk_action").await.1, failing).is_empty());
    assert_eq!(j.page("/jobs?state=bogus").await.0, 400);

    // Retry needs the CSRF token; then the attempt number counts the retry.
    assert_eq!(
        j.form(&format!("/jobs/{failing}/retry"), false)
            .await
            .status(),
        403
    );
    let r = j.form(&format!("/jobs/{failing}/retry"), true).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    j.wait_job(failing, "failed").await;
    let r = row(&j.page("/jobs").await.1, failing);
    assert!(r.contains("attempt 2"), "{r}");
    assert!(
        j.page(&format!("/jobs/{failing}"))
            .await
            .1
            .contains("attempt 2")
    );

    // A running job offers Cancel (the simulator's create takes 2 s).
    let (running, _) = j.create("cancel-01").await;
    j.wait_job(running, "running").await;
    let r = row(&j.page("/jobs?state=running").await.1, running);
    assert!(r.contains(&format!("/jobs/{running}/cancel")), "{r}");
    assert_eq!(
        j.form(&format!("/jobs/{running}/cancel"), false)
            .await
            .status(),
        403
    );
    let r = j.form(&format!("/jobs/{running}/cancel"), true).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    j.wait_job(running, "cancelled").await;
    let r = row(&j.page("/jobs").await.1, running);
    assert!(
        r.contains("cancelled") && r.contains(&format!("/jobs/{running}/retry")),
        "{r}"
    );
}

#[tokio::test]
async fn a_failed_creation_can_be_read_retried_stopped_and_deleted() {
    let j = journey(0).await;
    let (job, id) = j.create("broken-01").await;
    j.wait_job(job, "failed").await;
    let record = j.app.state.store.get_container(id).await.unwrap();
    assert_eq!(record.status, "error");
    let vmid = u32::try_from(record.vmid).unwrap();

    // The container page says what failed, shows the last lines, and offers the way out.
    let (status, html) = j.page(&format!("/containers/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Creation failed at step scripts"), "{html}");
    assert!(html.contains("data-failure-message"), "{html}");
    assert!(
        html.contains("preparing the database"),
        "the last log lines: {html}"
    );
    assert!(
        html.contains("class=\"log-warn\""),
        "warnings are styled: {html}"
    );
    assert!(html.contains(&format!("href=\"/jobs/{job}\"")), "View log");
    assert!(
        html.contains(&format!("action=\"/jobs/{job}/retry\"")),
        "Retry"
    );
    assert!(html.contains(&format!("/containers/{id}/delete")), "Delete");
    assert!(!html.contains("Proxmox is unreachable"), "{html}");
    // The guest runs although its record says "error": it can be stopped and started.
    assert!(
        html.contains(&format!("/containers/{id}/stop")),
        "Stop offered: {html}"
    );
    let r = j
        .session
        .post(
            &j.app.client,
            &j.app.address,
            &format!("/api/v1/containers/{id}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(j.sim.state().ct_running(vmid), Some(false));
    let html = j.page(&format!("/containers/{id}")).await.1;
    assert!(
        html.contains(&format!("/containers/{id}/start")),
        "Start offered: {html}"
    );
    let r = j
        .session
        .post(
            &j.app.client,
            &j.app.address,
            &format!("/api/v1/containers/{id}/start"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(j.sim.state().ct_running(vmid), Some(true));

    // Someone removes the guest in Proxmox: the page says so, and Delete removes the record.
    j.sim.state().lock().cts.remove(&vmid);
    let (status, html) = j.page(&format!("/containers/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("no longer exists in Proxmox"), "{html}");
    assert!(!html.contains("Proxmox is unreachable"), "{html}");
    let r = j
        .app
        .client
        .delete(format!("{}/api/v1/containers/{id}", j.app.address))
        .header("cookie", &j.session.cookie)
        .header("x-csrf-token", &j.session.csrf)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("no longer exists in Proxmox"),
        "it says so: {body}"
    );
    assert!(
        j.app.state.store.get_container(id).await.is_err(),
        "the record is gone"
    );
}

#[tokio::test]
async fn the_cli_reports_a_failure_in_words_and_retries_it() {
    let j = journey(0).await;
    let (_, secret) = ctforge::tokens::create(&j.app.state, "root@pam", "cli", "127.0.0.1")
        .await
        .unwrap();
    let run = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"));
        cmd.args(["ct", "--url", &j.app.address])
            .args(args)
            .env("CTFORGE_TOKEN", &secret)
            .env_remove("CTFORGE_DATABASE_URL");
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let out = run(args(
        "create --template broken --hostname cli-broken --password secret99 --follow",
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("{\"") && !stderr.contains("{\""),
        "no raw JSON:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("step 5/6 scripts"),
        "plain step lines:\n{stdout}"
    );
    assert!(stdout.contains("preparing the database"), "{stdout}");
    assert!(stderr.contains("error: step scripts failed"), "{stderr}");
    let job = j.app.state.store.list_jobs(1).await.unwrap()[0].id;
    let hint = format!("retry with: ctforge ct retry {job} --follow");
    assert!(stderr.contains(&hint), "{stderr}");
    assert!(!stderr.contains("POST /api"), "{stderr}");

    // The suggested command runs the job again and follows only the new attempt.
    let out = run(args(&format!("retry {job} --follow"))).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("queued again from step scripts"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("step 1/6 create"),
        "only the new attempt:\n{stdout}"
    );
    assert!(stdout.contains("step 5/6 scripts"), "{stdout}");
    assert!(stderr.contains(&hint), "{stderr}");
    let out = run(args(&format!("--output json retry {job} --follow"))).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !stdout.is_empty() && stdout.lines().all(|l| l.starts_with("{\"")),
        "machine output is JSON lines:\n{stdout}"
    );
}
