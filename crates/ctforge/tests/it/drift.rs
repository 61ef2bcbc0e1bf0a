//! Drift, re-apply and rollouts against the memory simulator: a container changed inside and a
//! template changed since (changed here, changed in the template, one conflict, with diffs, on
//! the API and the Template tab), a re-apply resolving the conflict as chosen, a re-apply whose
//! script fails rolled back to its snapshot (the file as before), and a rollout over five
//! containers where the third fails (two updated, the third rolled back, two untouched), and
//! monitoring finding drift by checksum (the dashboard badge, one `drift` event).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common;

struct Fixture {
    app: common::TestApp,
    sim: ctforge_pve_sim::SimHandle,
    token: String,
    templates: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// [`fixture`] with `tweak` applied to the app's configuration.
async fn fixture_with(
    tweak: impl FnOnce(&mut ctforge::config::Config) + Send + 'static,
) -> Fixture {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c).await;
    let cluster = common::sim_cluster(&sim);
    let templates = tempfile::tempdir().unwrap();
    common::copy_dir(
        &PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/templates/webapp"
        )),
        &templates.path().join("webapp"),
    );
    let root = templates.path().to_owned();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
        tweak(c);
    })
    .await;
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "drift", "127.0.0.1")
        .await
        .unwrap();
    let f = Fixture {
        app,
        sim,
        token,
        templates,
    };
    f.discover().await;
    f
}

impl Fixture {
    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let (status, text) = self.raw(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn raw(&self, method: &str, path: &str, body: Value) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .app
            .client
            .request(method.clone(), format!("{}{path}", self.app.address))
            .bearer_auth(&self.token);
        if method != reqwest::Method::GET {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn discover(&self) {
        let (status, body) = self
            .call("POST", "/api/v1/templates/discover", json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn wait_job(&self, id: i64) -> Value {
        loop {
            let (status, job) = self
                .call("GET", &format!("/api/v1/jobs/{id}"), json!({}))
                .await;
            assert_eq!(status, 200, "{job}");
            if matches!(
                job["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a container from `webapp`; its id and VMID once it is ready.
    async fn create(&self, hostname: &str) -> (i64, u32) {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/containers",
                json!({"template": "webapp", "hostname": hostname, "password": "secret99"}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let job = self.wait_job(body["job_id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        (
            body["id"].as_i64().unwrap(),
            u32::try_from(body["vmid"].as_u64().unwrap()).unwrap(),
        )
    }

    /// Runs `script` inside the container (the simulator's shell).
    fn sh(&self, vmid: u32, script: &str) -> String {
        let (out, err, code) = self.sim.state().memory_backend().unwrap().run(
            vmid,
            &["sh".into(), "-c".into(), script.into()],
            b"",
        );
        assert_eq!(code, 0, "{script}: {}", String::from_utf8_lossy(&err));
        String::from_utf8_lossy(&out).into_owned()
    }

    fn file(&self, vmid: u32, path: &str) -> Option<String> {
        let guest = self.sim.state().memory_backend().unwrap().guest(vmid)?;
        guest
            .data
            .files
            .get(path)
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
    }

    fn template_file(&self, rel: &str) -> PathBuf {
        self.templates
            .path()
            .join("webapp/container-configs")
            .join(rel)
    }

    fn write_template(&self, rel: &str, text: &str) {
        std::fs::write(self.template_file(rel), text).unwrap();
    }
}

fn file_of<'a>(drift: &'a Value, name: &str) -> &'a Value {
    drift["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {drift}"))
}

#[tokio::test]
async fn drift_shows_both_sides_and_reapply_resolves_the_conflict_as_chosen() {
    let f = fixture().await;
    let (id, vmid) = f.create("web-1").await;

    let (status, drift) = f
        .call("GET", &format!("/api/v1/containers/{id}/drift"), json!({}))
        .await;
    assert_eq!(status, 200, "{drift}");
    assert_eq!(drift["drifted"], false, "a fresh container: {drift}");
    assert_eq!(drift["container_checked"], true, "{drift}");

    // In the container: index.html (changed here only) and motd (also in the template).
    f.sh(vmid, "printf 'local page\\n' > /srv/www/index.html");
    f.sh(vmid, "printf 'local motd\\n' > /etc/motd");
    // In the template: motd (conflict) and site.conf (changed in the template only).
    f.write_template("files/motd", "template motd v2\n");
    let site = std::fs::read_to_string(f.template_file("files/site.conf")).unwrap();
    f.write_template("files/site.conf", &format!("{site}# v2\n"));
    f.discover().await;

    let (status, drift) = f
        .call("GET", &format!("/api/v1/containers/{id}/drift"), json!({}))
        .await;
    assert_eq!(status, 200, "{drift}");
    assert_eq!(drift["drifted"], true, "{drift}");
    assert_eq!(drift["newer_template"], true, "{drift}");
    assert_eq!(drift["conflicts"], 1, "{drift}");
    assert_eq!(file_of(&drift, "index.html")["state"], "changed_here");
    assert_eq!(file_of(&drift, "site.conf")["state"], "changed_in_template");
    assert_eq!(file_of(&drift, "motd")["state"], "conflict");
    let here = file_of(&drift, "index.html")["container_diff"]
        .as_str()
        .unwrap();
    assert!(here.contains("+local page"), "{here}");
    let there = file_of(&drift, "site.conf")["template_diff"]
        .as_str()
        .unwrap();
    assert!(there.contains("+# v2"), "{there}");
    let motd = file_of(&drift, "motd");
    assert!(
        motd["container_diff"]
            .as_str()
            .unwrap()
            .contains("+local motd"),
        "{motd}"
    );
    assert!(
        motd["template_diff"]
            .as_str()
            .unwrap()
            .contains("+template motd v2"),
        "{motd}"
    );

    // The Template tab shows the same, with the diffs and the conflict.
    let (status, html) = f
        .raw("GET", &format!("/containers/{id}?tab=template"), json!({}))
        .await;
    assert_eq!(status, 200, "{html}");
    for needle in [
        "index.html",
        "changed in the container",
        "changed in the template",
        "conflict: changed in both",
        "+local page",
        "+# v2",
        "Re-apply",
    ] {
        assert!(html.contains(needle), "the tab shows {needle:?}");
    }

    // A conflict needs a choice.
    let (status, body) = f
        .call(
            "POST",
            &format!("/api/v1/containers/{id}/reapply"),
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("files.motd"), "{body}");

    let (status, accepted) = f
        .call(
            "POST",
            &format!("/api/v1/containers/{id}/reapply"),
            json!({"files": {"motd": "backup"}}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let job = f.wait_job(accepted["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let item = &job["result"]["items"][0];
    assert_eq!(item["outcome"], "updated", "{job}");
    let snapshot = item["snapshot"].as_str().unwrap();
    assert!(snapshot.starts_with("ctforge-reapply-"), "{item}");

    // Inside: motd taken with a backup of the local one, site.conf taken, index.html kept.
    assert_eq!(
        f.file(vmid, "/etc/motd").as_deref(),
        Some("template motd v2\n")
    );
    let backups = f.sh(vmid, "ls /etc");
    let backup = backups
        .split_whitespace()
        .find(|n| n.starts_with("motd.bak."))
        .unwrap_or_else(|| panic!("a backup of motd in {backups}"));
    assert_eq!(
        f.file(vmid, &format!("/etc/{backup}")).as_deref(),
        Some("local motd\n")
    );
    assert!(
        f.file(vmid, "/etc/nginx/conf.d/site.conf")
            .unwrap()
            .ends_with("# v2\n")
    );
    assert_eq!(
        f.file(vmid, "/srv/www/index.html").as_deref(),
        Some("local page\n")
    );

    let (_, drift) = f
        .call("GET", &format!("/api/v1/containers/{id}/drift"), json!({}))
        .await;
    assert_eq!(drift["newer_template"], false, "{drift}");
    assert_eq!(drift["conflicts"], 0, "{drift}");
    assert_eq!(file_of(&drift, "motd")["state"], "in_sync", "{drift}");
    assert_eq!(file_of(&drift, "site.conf")["state"], "in_sync", "{drift}");
    assert_eq!(
        file_of(&drift, "index.html")["state"],
        "changed_here",
        "{drift}"
    );

    // Audited, and the container's events say it.
    let entries = f
        .app
        .state
        .store
        .list_audit(&ctforge::storage::model::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let entries = format!("{entries:?}");
    assert!(entries.contains("ct.reapply"), "{entries}");
}

#[tokio::test]
async fn a_failed_reapply_is_rolled_back_to_its_snapshot() {
    let f = fixture().await;
    let (id, vmid) = f.create("web-1").await;
    let before = f.file(vmid, "/etc/nginx/conf.d/site.conf").unwrap();
    let site = std::fs::read_to_string(f.template_file("files/site.conf")).unwrap();
    f.write_template("files/site.conf", &format!("{site}# v2\n"));
    f.write_template(
        "scripts/30-fail.sh",
        "#!/bin/sh\necho failing on purpose\nexit 3\n",
    );
    f.discover().await;
    let (_, drift) = f
        .call("GET", &format!("/api/v1/containers/{id}/drift"), json!({}))
        .await;
    assert_eq!(drift["scripts"][0]["name"], "30-fail.sh", "{drift}");
    assert_eq!(drift["scripts"][0]["state"], "added", "{drift}");

    // Through the Template tab's form: it opens the job's page.
    let response = f
        .app
        .client
        .post(format!("{}/containers/{id}/reapply", f.app.address))
        .bearer_auth(&f.token)
        .form(&[("keep_on_failure_unset", "")])
        .send()
        .await
        .unwrap();
    let location = match response.headers().get("location") {
        Some(l) => l.to_str().unwrap().to_owned(),
        None => response.url().path().to_owned(),
    };
    let job_id: i64 = location
        .strip_prefix("/jobs/")
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| panic!("the form leads to the job's page, not {location}"));
    let job = f.wait_job(job_id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let item = &job["result"]["items"][0];
    assert_eq!(item["outcome"], "rolled_back", "{job}");
    assert!(
        item["message"].as_str().unwrap().contains("rolled back"),
        "{item}"
    );
    // The file the apply had already written is as before, and the CT runs again.
    assert_eq!(
        f.file(vmid, "/etc/nginx/conf.d/site.conf").as_deref(),
        Some(before.as_str())
    );
    let (_, drift) = f
        .call("GET", &format!("/api/v1/containers/{id}/drift"), json!({}))
        .await;
    assert_eq!(drift["newer_template"], true, "still to apply: {drift}");
    let (_, snaps) = f
        .call(
            "GET",
            &format!("/api/v1/containers/{id}/snapshots"),
            json!({}),
        )
        .await;
    assert!(
        snaps.to_string().contains("ctforge-reapply-"),
        "the snapshot stays: {snaps}"
    );
}

#[tokio::test]
async fn a_rollout_of_five_stops_at_the_third_failure() {
    let f = fixture().await;
    let mut made = Vec::new();
    for n in 1..=5 {
        made.push(f.create(&format!("web-{n}")).await);
    }
    let before = f.file(made[0].1, "/etc/nginx/conf.d/site.conf").unwrap();
    let site = std::fs::read_to_string(f.template_file("files/site.conf")).unwrap();
    f.write_template("files/site.conf", &format!("{site}# v2\n"));
    f.write_template(
        "scripts/30-check.sh",
        "#!/bin/sh\n[ \"$(hostname)\" != \"web-3\" ]\n",
    );
    f.discover().await;

    let (status, page) = f.raw("GET", "/templates/webapp", json!({})).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"action="/templates/webapp/rollout""#),
        "the template page offers the rollout"
    );
    let (status, accepted) = f
        .call(
            "POST",
            "/api/v1/templates/webapp/rollout",
            json!({"canary": 1, "batch": 2}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let ids: Vec<String> = made.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(accepted["ids"], json!(ids), "oldest first");
    let job = f.wait_job(accepted["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let result = &job["result"];
    assert_eq!(result["stopped"], true, "{result}");
    let outcomes: Vec<&str> = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["updated", "updated", "rolled_back", "skipped", "skipped"],
        "{result}"
    );
    assert_eq!(
        (&result["updated"], &result["failed"], &result["skipped"]),
        (&json!(2), &json!(1), &json!(2))
    );
    for (i, (_, vmid)) in made.iter().enumerate() {
        let now = f.file(*vmid, "/etc/nginx/conf.d/site.conf").unwrap();
        if i < 2 {
            assert!(now.ends_with("# v2\n"), "web-{} updated", i + 1);
        } else {
            assert_eq!(now, before, "web-{} as before", i + 1);
        }
    }
    // Untouched means untouched: no snapshot on the last two.
    for (id, _) in &made[3..] {
        let (_, snaps) = f
            .call(
                "GET",
                &format!("/api/v1/containers/{id}/snapshots"),
                json!({}),
            )
            .await;
        assert!(!snaps.to_string().contains("ctforge-reapply-"), "{snaps}");
    }
}

async fn refresh(f: &Fixture, id: i64) -> (u16, Value) {
    f.call(
        "POST",
        &format!("/api/v1/containers/{id}/services/refresh"),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn monitoring_finds_drift_by_checksum_and_the_dashboard_shows_it() {
    let f = fixture().await;
    let (id, vmid) = f.create("web-1").await;
    let (status, body) = refresh(&f, id).await;
    assert_eq!(status, 200, "{body}");
    let (_, listing) = f.call("GET", "/api/v1/containers", json!({})).await;
    let row = |listing: &Value| {
        listing["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&listing)["drifted"], 0, "{listing}");

    f.sh(vmid, "printf 'local motd\\n' > /etc/motd");
    let (status, body) = refresh(&f, id).await;
    assert_eq!(status, 200, "{body}");
    let (_, listing) = f.call("GET", "/api/v1/containers", json!({})).await;
    assert_eq!(row(&listing)["drifted"], 1, "{listing}");
    let (status, html) = f.raw("GET", "/", json!({})).await;
    assert_eq!(status, 200);
    assert!(html.contains("drifted"), "the dashboard's badge");
    assert!(
        html.contains(&format!("/containers/{id}?tab=template")),
        "the badge links to the Template tab"
    );
    let events = f
        .app
        .state
        .store
        .list_container_events(id, Some("drift"), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].message.contains("/etc/motd"), "{events:?}");
    // The same drift seen again is not a new event.
    refresh(&f, id).await;
    let events = f
        .app
        .state
        .store
        .list_container_events(id, Some("drift"), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
}

/// The snapshot names of container `id`, as `GET …/snapshots` lists them.
async fn snapshot_names(f: &Fixture, id: i64) -> Vec<String> {
    let (status, snaps) = f
        .call(
            "GET",
            &format!("/api/v1/containers/{id}/snapshots"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{snaps}");
    snaps["snapshots"]
        .as_array()
        .unwrap_or_else(|| panic!("a snapshot list: {snaps}"))
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| *n != "current")
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn successful_reapplies_keep_only_the_newest_snapshots_and_never_the_users() {
    let f = fixture_with(|c| c.images.keep_reapply_snapshots = 2).await;
    let (id, _) = f.create("web-1").await;
    let (status, body) = f
        .call(
            "POST",
            &format!("/api/v1/containers/{id}/snapshots"),
            json!({"name": "mine"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut jobs = Vec::new();
    for round in 1..=4 {
        let site = std::fs::read_to_string(f.template_file("files/site.conf")).unwrap();
        f.write_template("files/site.conf", &format!("{site}# round {round}\n"));
        f.discover().await;
        let (status, accepted) = f
            .call(
                "POST",
                &format!("/api/v1/containers/{id}/reapply"),
                json!({}),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        let job_id = accepted["job_id"].as_i64().unwrap();
        let job = f.wait_job(job_id).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        jobs.push(job_id);
    }
    // Two re-apply snapshots (the newest two), the user's own untouched.
    let mut names = snapshot_names(&f, id).await;
    names.sort();
    let mut expected = vec![
        "mine".to_owned(),
        format!("ctforge-reapply-{}", jobs[2]),
        format!("ctforge-reapply-{}", jobs[3]),
    ];
    expected.sort();
    assert_eq!(names, expected);
    // The last job's log names what it deleted.
    let log: String = f
        .app
        .state
        .store
        .job_events_after(jobs[3], 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}\n", e.data))
        .collect();
    assert!(
        log.contains(&format!(
            "2 re-apply snapshot(s) kept, older ones deleted: ctforge-reapply-{}",
            jobs[1]
        )),
        "{log}"
    );
}

impl Fixture {
    /// Posts the dashboard's bulk form (`POST /containers/bulk`); status, `Location`, page.
    async fn bulk_form(&self, fields: &[(&str, String)]) -> (u16, String, String) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let r = self
            .app
            .client
            .post(format!("{}/containers/bulk", self.app.address))
            .bearer_auth(&self.token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        common::status_location_body(r).await
    }
}

/// The dashboard's bulk bar re-applies the template to the selected containers: the button and
/// its dialog are on the dashboard, without script the first post asks for confirmation naming
/// the containers, the confirmed post queues one `reapply` job and opens its page; inside both
/// containers the template's change arrived, and the one left out is untouched.
#[tokio::test]
async fn the_dashboard_bulk_bar_reapplies_the_template_to_the_selection() {
    let f = fixture().await;
    let (id1, vmid1) = f.create("web-1").await;
    let (id2, vmid2) = f.create("web-2").await;
    let (_, vmid3) = f.create("web-3").await;
    let site = std::fs::read_to_string(f.template_file("files/site.conf")).unwrap();
    f.write_template("files/site.conf", &format!("{site}# bulk\n"));
    f.discover().await;

    let (status, dashboard) = f.raw("GET", "/", json!({})).await;
    assert_eq!(status, 200);
    assert!(
        dashboard.contains(r#"name="action" value="reapply""#)
            && dashboard.contains("Re-apply template")
            && dashboard.contains(r#"id="dlg-bulk-reapply""#),
        "the bulk bar offers the re-apply: {dashboard}"
    );

    let selection = vec![
        ("ids", id1.to_string()),
        ("ids", id2.to_string()),
        ("back", "/".to_owned()),
    ];
    let mut unconfirmed = selection.clone();
    unconfirmed.push(("action", "reapply".to_owned()));
    let (status, _, page) = f.bulk_form(&unconfirmed).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Re-apply the template to 2 containers?")
            && page.contains(&format!("web-1 (CT {vmid1})"))
            && page.contains(&format!("web-2 (CT {vmid2})"))
            && page.contains(r#"name="confirm" value="reapply""#),
        "{page}"
    );
    assert!(
        !f.file(vmid1, "/etc/nginx/conf.d/site.conf")
            .unwrap()
            .ends_with("# bulk\n"),
        "nothing happens before the confirmation"
    );

    let mut confirmed = selection;
    confirmed.push(("confirm", "reapply".to_owned()));
    let (status, location, page) = f.bulk_form(&confirmed).await;
    assert_eq!(status, 303, "{page}");
    let job_id: i64 = location
        .strip_prefix("/jobs/")
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| panic!("the job's page, not {location:?}"));
    let job = f.wait_job(job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "reapply", "{job}");
    let outcomes: Vec<&str> = job["result"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["updated", "updated"], "{job}");
    for vmid in [vmid1, vmid2] {
        assert!(
            f.file(vmid, "/etc/nginx/conf.d/site.conf")
                .unwrap()
                .ends_with("# bulk\n"),
            "CT {vmid} has the template's change"
        );
    }
    assert!(
        !f.file(vmid3, "/etc/nginx/conf.d/site.conf")
            .unwrap()
            .ends_with("# bulk\n"),
        "the container not selected is untouched"
    );
    let (status, page) = f.raw("GET", &location, json!({})).await;
    assert_eq!(status, 200);
    assert!(page.contains("web-1") && page.contains("web-2"), "{page}");
}
