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

/// Retry after fixing the template runs the template as it is now and reaches Ready; a retry
/// of a job whose template was deleted is refused with the reason.
#[tokio::test]
async fn retry_after_fixing_the_template_reaches_ready() {
    let j = journey(0).await;
    let (job, id) = j.create("broken-fix").await;
    let (orphan_job, _) = j.create("broken-orphan").await;
    j.wait_job(job, "failed").await;
    j.wait_job(orphan_job, "failed").await;

    // The user fixes the script through the API (GET, edit, PUT back).
    let r = j
        .app
        .client
        .get(format!("{}/api/v1/templates/broken", j.app.address))
        .header("cookie", &j.session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let view: serde_json::Value = r.json().await.unwrap();
    let mut scripts = view["scripts"].as_array().unwrap().clone();
    scripts[0]["content"] = json!("#!/bin/sh\ntrue\n");
    let r = j
        .app
        .client
        .put(format!("{}/api/v1/templates/broken", j.app.address))
        .header("cookie", &j.session.cookie)
        .header("x-csrf-token", &j.session.csrf)
        .json(&json!({ "config": view["config"], "scripts": scripts }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().await.unwrap());

    let r = j
        .session
        .post(
            &j.app.client,
            &j.app.address,
            &format!("/api/v1/jobs/{job}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    j.wait_job(job, "succeeded").await;
    let record = j.app.state.store.get_container(id).await.unwrap();
    assert_eq!(record.status, "ready");
    let events = j
        .app
        .state
        .store
        .job_events_after(job, 0, 10_000)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "log"
            && e.data
                == "template broken changed since the last attempt; using the current version"),
        "the log says the template changed: {events:?}"
    );
    // Completed steps stayed completed: the container was created once.
    let starts = events
        .iter()
        .filter(|e| e.kind == "step" && e.step.as_deref() == Some("create"))
        .count();
    assert!(starts <= 1, "create ran once: {events:?}");

    // The template is deleted: the other failed job cannot be retried, and says why.
    let r = j
        .app
        .client
        .delete(format!(
            "{}/api/v1/templates/broken?force=true",
            j.app.address
        ))
        .header("cookie", &j.session.cookie)
        .header("x-csrf-token", &j.session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = j
        .session
        .post(
            &j.app.client,
            &j.app.address,
            &format!("/api/v1/jobs/{orphan_job}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("template broken was deleted since the last attempt"),
        "{body}"
    );
    assert_eq!(
        j.app.state.store.get_job(orphan_job).await.unwrap().state,
        "failed"
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

/// An app over a 2-node simulator with 4 existing guests, the shipped example templates and
/// `broken`, discovered.
async fn examples_app() -> Journey {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| {
        c.with_nodes(2)
            .with_containers(4)
            .with_timings(ctforge_pve_sim::Timings::instant())
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let templates = broken_templates();
    let examples = templates.path().join("examples");
    ctforge::demo::write_examples(&examples).unwrap();
    let roots = vec![examples, templates.path().to_path_buf()];
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = roots;
        c.monitoring.web_links = false;
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

/// The shipped `postgres-db` and `nginx-web` examples are provisioned to Ready on the memory
/// backend; the database's generated password is found as a credential.
#[tokio::test]
async fn the_shipped_examples_reach_ready_on_the_memory_backend() {
    let j = examples_app().await;
    for (template, host) in [("postgres-db", "db1"), ("nginx-web", "web1")] {
        let r = j
            .session
            .post(
                &j.app.client,
                &j.app.address,
                "/api/v1/containers",
                json!({ "template": template, "hostname": host, "password": "secret99" }),
            )
            .await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success(), "{template}: {body}");
        let job = body["job_id"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = j.app.state.store.get_job(job).await.unwrap();
            if job.state.is_finished() {
                assert_eq!(
                    job.state.as_str(),
                    "succeeded",
                    "{template} failed: {:?}",
                    job.error
                );
                break;
            }
            assert!(Instant::now() < deadline, "{template} did not finish");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (code, page) = j
            .page(&format!("/containers/{}?tab=services", body["id"]))
            .await;
        assert_eq!(code, 200);
        if template == "postgres-db" {
            assert!(page.contains("postgres-app-password"), "{page}");
        }
    }
}

/// Node names link to the node page, which shows its status, storage and guests.
#[tokio::test]
async fn node_pages_show_status_storage_and_guests() {
    let j = examples_app().await;
    let (_, dashboard) = j.page("/?view=table").await;
    assert!(
        dashboard.contains("href=\"/nodes/pve1?cluster="),
        "{dashboard}"
    );
    let (code, node) = j.page("/nodes/pve1").await;
    assert_eq!(code, 200, "{node}");
    for words in [
        "Uptime",
        "Load average",
        "Storage",
        "Guests",
        "Resource history",
    ] {
        assert!(node.contains(words), "the node page lacks {words:?}");
    }
    // The simulator spreads guests over the nodes: 100 and 102 live on pve1, 101 on pve2.
    assert!(
        node.contains(">100</a>") && node.contains(">102</a>"),
        "{node}"
    );
    assert!(!node.contains(">101</a>"), "pve2's guest is listed on pve1");
    let (code, _) = j.page("/nodes/nope").await;
    assert_eq!(code, 404);
}

/// The dashboard table sorts by a column, both ways, and says so.
#[tokio::test]
async fn the_dashboard_table_sorts_by_every_column() {
    let j = examples_app().await;
    let vmids = |html: &str| -> Vec<u32> {
        html.match_indices("<tr data-vmid=\"")
            .filter_map(|(i, m)| {
                let rest = &html[i + m.len()..];
                rest[..rest.find('"')?].parse().ok()
            })
            .collect()
    };
    let (_, up) = j.page("/?view=table&sort=vmid").await;
    let (_, down) = j.page("/?view=table&sort=vmid&dir=desc").await;
    let (up, down_ids) = (vmids(&up), vmids(&down));
    assert_eq!(up, vec![100, 101, 102, 103]);
    assert_eq!(down_ids, vec![103, 102, 101, 100]);
    assert!(down.contains("aria-sort=\"descending\""));
    for key in [
        "hostname", "node", "status", "ip", "template", "tags", "cpu", "memory", "uptime",
    ] {
        let (code, html) = j.page(&format!("/?view=table&sort={key}")).await;
        assert_eq!(code, 200);
        assert_eq!(vmids(&html).len(), 4, "sort by {key}");
    }
    let (_, grid) = j.page("/?view=table").await;
    assert!(
        !grid.contains("CPU</span>"),
        "the table repeats the CPU label in cells"
    );
}

/// The identity check answers while the user types; the wizard checks again on Next and puts
/// the error next to the VMID field.
#[tokio::test]
async fn vmid_and_hostname_are_checked_as_typed_and_on_next() {
    let j = examples_app().await;
    let check = |q: &'static str| {
        let j = &j;
        async move {
            let (code, body) = j.page(&format!("/api/v1/containers/check?{q}")).await;
            assert_eq!(code, 200, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let taken = check("vmid=100&hostname=bad%20name!").await;
    assert_eq!(taken["vmid"]["ok"], false);
    assert!(
        taken["vmid"]["message"]
            .as_str()
            .unwrap()
            .contains("in use")
    );
    assert_eq!(taken["hostname"]["ok"], false);
    let free = check("vmid=4242&hostname=web-01").await;
    assert_eq!(free["vmid"]["ok"], true);
    assert_eq!(free["hostname"]["ok"], true);
    assert_eq!(check("vmid=12").await["vmid"]["ok"], false);

    let (code, wizard) = j.page("/containers/new?template=postgres-db").await;
    assert_eq!(code, 200);
    for legend in ["Identity", "Resources", "Network", "Features"] {
        assert!(
            wizard.contains(&format!("<legend>{legend}</legend>")),
            "{legend}"
        );
    }
    assert!(wizard.contains("template-summary") && wizard.contains("postgres-db"));
    let r = j
        .app
        .client
        .post(format!("{}/containers/new", j.app.address))
        .header("cookie", &j.session.cookie)
        .form(&[
            ("csrf_token", j.session.csrf.as_str()),
            ("step", "configure"),
            ("go", "next"),
            ("template", "postgres-db"),
            ("hostname", "db-2"),
            ("vmid", "100"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"vmid-error\""), "{html}");
    assert!(html.contains("VMID 100 is already in use"));
    assert!(!html.contains("see the fields below"));
}

/// Template names are directory names everywhere: the API refuses `bad name!` with the reason,
/// discovery skips such a directory, and template cards and pages offer Create container.
#[tokio::test]
async fn template_names_are_directory_names_and_templates_offer_create() {
    let j = examples_app().await;
    let r = j
        .session
        .post(
            &j.app.client,
            &j.app.address,
            "/api/v1/templates",
            json!({ "name": "bad name!", "config": { "app": "Bad" } }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["fields"]["name"]
            .as_str()
            .unwrap()
            .contains("names a directory"),
        "{body}"
    );
    let root = tempfile::tempdir().unwrap();
    let bad = root.path().join("bad name!");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("template.conf"), "TEMPLATE_APP=\"Bad\"\n").unwrap();
    let report = ctforge::templates::discovery::discover_roots(
        j.app.state.store.as_ref(),
        &[root.path().to_path_buf()],
    )
    .await
    .unwrap();
    let t = report.get("bad name!").expect("reported");
    assert_eq!(t.status, ctforge::templates::discovery::Status::Failed);

    let (_, list) = j.page("/templates").await;
    assert!(list.contains("href=\"/containers/new?template=postgres-db\""));
    let (_, page) = j.page("/templates/nginx-web").await;
    assert!(page.contains("href=\"/containers/new?template=nginx-web\""));
    assert!(list.contains("1 script") || list.contains("scripts"));
    assert!(!list.contains("1 scripts"));
}

/// A cluster is edited after creation; SSH reads `user@host:port`; secrets are kept.
#[tokio::test]
async fn clusters_are_editable_after_creation() {
    let j = examples_app().await;
    let cluster = j.app.state.store.list_clusters().await.unwrap().remove(0);
    let (_, list) = j.page("/settings/clusters").await;
    assert!(list.contains("root@127.0.0.1:"), "{list}");
    assert!(!list.contains("root@:"));
    let (code, form) = j
        .page(&format!("/settings/clusters/{}/edit", cluster.id))
        .await;
    assert_eq!(code, 200, "{form}");
    assert!(form.contains("Leave empty to keep the stored one"));
    let port = cluster.ssh_port.to_string();
    let r = j
        .app
        .client
        .post(format!(
            "{}/settings/clusters/{}/edit",
            j.app.address, cluster.id
        ))
        .header("cookie", &j.session.cookie)
        .form(&[
            ("csrf_token", j.session.csrf.as_str()),
            ("name", "renamed"),
            ("url", cluster.url.as_str()),
            ("token_id", cluster.token_id.as_str()),
            ("fingerprint", cluster.fingerprint.as_deref().unwrap_or("")),
            ("ssh_user", "root"),
            ("ssh_port", port.as_str()),
            ("default", "on"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status.is_success() || status.is_redirection(),
        "{status}: {text}"
    );
    let after = j.app.state.store.get_cluster(cluster.id).await.unwrap();
    assert_eq!(after.name, "renamed");
    assert_eq!(after.token_secret_sealed, cluster.token_secret_sealed);
}

/// `serve --demo` keeps the configured templates roots (`CTFORGE_TEMPLATES__ROOTS`,
/// `--templates`) after its own examples, so a user's templates show up in the demo.
#[tokio::test]
async fn the_demo_keeps_the_configured_template_roots() {
    ctforge::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let mine = tempfile::tempdir().unwrap();
    let mut config = ctforge::config::Config {
        data_dir: data.path().to_path_buf(),
        ..Default::default()
    };
    config.templates.roots = vec![mine.path().to_path_buf()];
    let demo = ctforge::demo::prepare(&mut config).await.unwrap();
    assert_eq!(
        config.templates.roots.len(),
        2,
        "{:?}",
        config.templates.roots
    );
    assert!(config.templates.roots[0].ends_with("demo/templates"));
    assert_eq!(config.templates.roots[1], mine.path());
    assert!(ctforge::demo::banner("http://127.0.0.1:1", &demo).contains("simulator: https://"));
}
