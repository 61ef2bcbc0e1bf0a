//! Bulk actions over real HTTP against the simulator (memory backend): a bulk stop with a
//! container that does not exist and one the user may not touch, a failed bulk start retried
//! (only the failures run again), request validation (422), the dashboard's form with its
//! confirmation step and CSRF, and the time a bulk stop of 20 containers takes.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use ctforge::config::{ClusterBootstrap, Secret};
use ctforge::storage::model::{AuditFilter, NewContainer, NewJob};
use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

/// Six CTs; dave may power-manage 200, 201, 202, 204 and 205 but not 203.
const SCENARIO: &str = r#"
node_count = 2

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
node = "pve2"
hostname = "db1"
status = "running"

[[containers]]
vmid = 203
node = "pve2"
hostname = "payroll"
status = "running"

[[containers]]
vmid = 204
node = "pve1"
hostname = "idle1"
status = "stopped"

[[containers]]
vmid = 205
node = "pve2"
hostname = "idle2"
status = "stopped"
"#;

fn scenario_with_dave() -> String {
    let mut s = SCENARIO.to_owned();
    for vmid in [200, 201, 202, 204, 205] {
        s.push_str(&format!(
            "\n[[users]]\nuserid = \"dave@pve\"\npassword = \"davepw\"\nrole = \"PVEVMUser\"\npath = \"/vms/{vmid}\"\n"
        ));
    }
    s
}

async fn sim_from(scenario: &str, timings: Timings) -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(scenario, |c| c.with_nodes(2).with_timings(timings)).await
}

fn cluster(sim: &SimHandle) -> ClusterBootstrap {
    ClusterBootstrap {
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
    }
}

/// The app with its job workers running (bulk actions are jobs).
async fn app_for(sim: &SimHandle) -> common::TestApp {
    let c = cluster(sim);
    common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![c];
    })
    .await
}

/// A signed-in session (cookie and CSRF token).
type Session = common::ApiSession;

async fn login(app: &common::TestApp, user: &str, password: &str, realm: &str) -> Session {
    common::api_login(&app.client, &app.address, user, password, realm).await
}

async fn post_json(app: &common::TestApp, s: &Session, path: &str, body: &Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &common::TestApp, s: &Session, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn get_json(app: &common::TestApp, s: &Session, path: &str) -> Value {
    let (status, text) = get(app, s, path).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Polls the job until it is over.
async fn wait_job(app: &common::TestApp, s: &Session, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = get_json(app, s, &format!("/api/v1/jobs/{id}")).await;
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Inserts a container record as the creation pipeline would.
async fn record(app: &common::TestApp, vmid: i64, node: &str, hostname: &str) -> i64 {
    let cluster = app.state.store.get_cluster_by_name("sim").await.unwrap();
    let (id, _) = app
        .state
        .store
        .create_container_with_job(
            &NewContainer {
                cluster_id: cluster.id,
                node: node.into(),
                vmid,
                hostname: hostname.into(),
                template_id: None,
                status: ctforge::status::RecordStatus::Ready,
                spec_json: "{}".into(),
                root_password_sealed: None,
                created_by: "root@pam".into(),
            },
            &NewJob {
                // No handler knows this kind: the workers fail it without touching the record.
                kind: "test_record".into(),
                container_id: None,
                node: Some(node.into()),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
            },
        )
        .await
        .unwrap();
    id
}

/// Audit entries of `action`, as (target, actor, outcome), oldest first.
async fn audit(app: &common::TestApp, action: &str) -> Vec<(String, String, String, Value)> {
    let filter = AuditFilter {
        action: Some(action.into()),
        limit: 100,
        ..Default::default()
    };
    let mut entries: Vec<_> = app
        .state
        .store
        .list_audit(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.target,
                e.actor,
                e.outcome,
                serde_json::from_str(&e.detail_json).unwrap(),
            )
        })
        .collect();
    entries.reverse();
    entries
}

fn item<'a>(job: &'a Value, id: &str) -> &'a Value {
    job["result"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {job}"))
}

#[tokio::test]
async fn bulk_stop_reports_every_container_and_enforces_the_users_permissions() {
    let sim = sim_from(&scenario_with_dave(), Timings::instant()).await;
    let app = app_for(&sim).await;
    let web1 = record(&app, 200, "pve1", "web1").await;
    let dave = login(&app, "dave", "davepw", "pve").await;
    // sim:999 does not exist; Proxmox does not tell users without a privilege on a VMID
    // whether it exists, so for dave it is denied like 203. Record 9999 does not exist either.
    let ids = json!([
        web1.to_string(),
        "sim:201",
        "sim:202",
        "sim:203",
        "sim:999",
        "9999"
    ]);
    let (status, body) = post_json(
        &app,
        &dave,
        "/api/v1/containers/bulk",
        &json!({ "action": "stop", "ids": ids }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_i64().unwrap();
    assert_eq!(body["url"], format!("/api/v1/jobs/{id}"));
    assert_eq!(body["page"], format!("/jobs/{id}"));
    assert_eq!(body["count"], 6);

    let job = wait_job(&app, &dave, id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["kind"], "bulk_action");
    assert_eq!(job["created_by"], "dave@pve");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("3 of 6 containers failed"), "{error}");
    let result = &job["result"];
    assert_eq!(
        (&result["total"], &result["succeeded"], &result["failed"]),
        (&json!(6), &json!(3), &json!(3))
    );
    let order: Vec<&str> = result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            web1.to_string().as_str(),
            "sim:201",
            "sim:202",
            "sim:203",
            "sim:999",
            "9999"
        ],
        "results in request order"
    );
    for (id, hostname) in [
        (web1.to_string(), "web1"),
        ("sim:201".into(), "web2"),
        ("sim:202".into(), "db1"),
    ] {
        let it = item(&job, &id);
        assert_eq!(it["ok"], true, "{it}");
        assert_eq!(it["status"], "stopped", "{it}");
        assert_eq!(it["hostname"], hostname, "{it}");
    }
    assert_eq!(item(&job, &web1.to_string())["key"], web1.to_string());
    assert_eq!(item(&job, "sim:201")["key"], "sim:201");
    let denied = item(&job, "sim:203");
    assert_eq!(denied["ok"], false);
    let message = denied["message"].as_str().unwrap();
    assert!(
        message.contains("permission denied") && message.contains("VM.PowerMgmt on /vms/203"),
        "{message}"
    );
    assert_eq!(
        denied["status"],
        Value::Null,
        "no state shown for a CT the user may not touch"
    );
    let unknown_vmid = item(&job, "sim:999");
    assert_eq!(unknown_vmid["ok"], false);
    assert!(
        unknown_vmid["message"]
            .as_str()
            .unwrap()
            .contains("permission denied: dave@pve lacks VM.PowerMgmt on /vms/999"),
        "{unknown_vmid}"
    );
    let missing = item(&job, "9999");
    assert_eq!(missing["ok"], false);
    assert_eq!(missing["key"], Value::Null);
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("container 9999 not found"),
        "{missing}"
    );

    // What really happened in Proxmox.
    for vmid in [200, 201, 202] {
        assert_eq!(sim.state().ct_running(vmid), Some(false), "CT {vmid}");
    }
    assert_eq!(
        sim.state().ct_running(203),
        Some(true),
        "dave may not stop 203"
    );

    // Audit and events exactly as for single actions, in dave's name.
    let entries = audit(&app, "ct.stop").await;
    let outcome = |target: &str| {
        entries
            .iter()
            .filter(|(t, ..)| t == target)
            .map(|(_, actor, outcome, detail)| {
                assert_eq!(actor, "dave@pve");
                assert_eq!(detail["job"], id, "{detail}");
                outcome.as_str()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(outcome("ct:sim:200"), ["ok"]);
    assert_eq!(outcome("ct:sim:201"), ["ok"]);
    assert_eq!(outcome("ct:sim:203"), ["denied"]);
    assert_eq!(outcome("ct:sim:999"), ["denied"]);
    let events = app
        .state
        .store
        .list_container_events(web1, None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["stopped"]
    );
    assert_eq!(events[0].actor, "dave@pve");

    // Progress: a result event and a log line per container.
    let events = get_json(&app, &dave, &format!("/api/v1/jobs/{id}/events")).await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.iter().filter(|e| e["kind"] == "result").count(), 6);
    let logs: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "log")
        .filter_map(|e| e["data"].as_str())
        .collect();
    assert!(
        logs.iter().any(|l| l.starts_with("✓ web2 (CT 201)")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("✗ payroll (CT 203)") || l.starts_with("✗ CT 203")),
        "{logs:?}"
    );

    // The job page lists the results.
    let (status, html) = get(&app, &dave, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Stop 6 containers"), "{html}");
    assert!(html.contains(r#"data-result-id="sim:203""#));
    assert!(html.contains("lacks VM.PowerMgmt on /vms/203"));
    assert!(
        html.contains("Retry the 3 containers that did not succeed"),
        "{html}"
    );
}

#[tokio::test]
async fn a_retried_bulk_start_reruns_only_the_failures() {
    let sim = sim_from(SCENARIO, Timings::instant()).await;
    let app = app_for(&sim).await;
    let root = login(&app, "root", &sim.root_password, "pam").await;
    let (status, body) = post_json(
        &app,
        &root,
        "/api/v1/containers/bulk",
        &json!({ "action": "start", "ids": ["sim:204", "sim:200", "sim:205"] }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_i64().unwrap();
    let job = wait_job(&app, &root, id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(item(&job, "sim:204")["ok"], true);
    assert_eq!(item(&job, "sim:205")["ok"], true);
    let failed = item(&job, "sim:200");
    assert_eq!(failed["ok"], false);
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{failed}"
    );
    assert_eq!(failed["status"], "running", "the state it is in now");
    assert_eq!(sim.state().ct_running(204), Some(true));

    // Fix the cause, retry: only CT 200 runs again.
    let (status, body) =
        post_json(&app, &root, "/api/v1/containers/sim:200/stop", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        post_json(&app, &root, &format!("/api/v1/jobs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let job = wait_job(&app, &root, id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "a retry starts with fresh attempts");
    assert_eq!(job["result"]["succeeded"], 3);
    assert_eq!(item(&job, "sim:200")["attempt"], 2);
    assert_eq!(item(&job, "sim:200")["status"], "running");
    assert_eq!(item(&job, "sim:204")["attempt"], 1, "not run again");
    assert_eq!(item(&job, "sim:205")["attempt"], 1, "not run again");
    assert_eq!(sim.state().ct_running(200), Some(true));

    let starts = audit(&app, "ct.start").await;
    let runs = |target: &str| {
        starts
            .iter()
            .filter(|(t, ..)| t == target)
            .map(|(_, _, outcome, _)| outcome.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(runs("ct:sim:204"), ["ok"], "started once");
    assert_eq!(runs("ct:sim:205"), ["ok"], "started once");
    assert_eq!(runs("ct:sim:200"), ["refused", "ok"]);
    let events = get_json(&app, &root, &format!("/api/v1/jobs/{id}/events")).await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "log"
                && e["data"]
                    .as_str()
                    .is_some_and(|l| l.contains("2 container(s) already done"))),
        "{events}"
    );
}

#[tokio::test]
async fn bulk_requests_are_validated_with_422() {
    let sim = sim_from(SCENARIO, Timings::instant()).await;
    let app = app_for(&sim).await;
    let root = login(&app, "root", &sim.root_password, "pam").await;
    let too_many: Vec<String> = (1..=201).map(|i| format!("sim:{i}")).collect();
    let cases = [
        (
            json!({ "action": "explode", "ids": ["sim:200"] }),
            "action",
            "\"explode\" is not an action",
        ),
        (json!({ "ids": ["sim:200"] }), "action", "is required"),
        (
            json!({ "action": "stop", "ids": [] }),
            "ids",
            "select at least one container",
        ),
        (
            json!({ "action": "stop" }),
            "ids",
            "select at least one container",
        ),
        (
            json!({ "action": "stop", "ids": too_many }),
            "ids",
            "201 containers given; at most 200",
        ),
        (
            json!({ "action": "stop", "ids": ["sim:200", "sim:200"] }),
            "ids",
            "listed twice",
        ),
        (
            json!({ "action": "stop", "ids": ["sim:200", ":7"] }),
            "ids",
            "\":7\" is not a container id",
        ),
        (
            json!({ "action": "stop", "ids": "sim:200" }),
            "ids",
            "must be a list",
        ),
        (
            json!({ "action": "shutdown", "ids": ["sim:200"], "timeout": 99999 }),
            "timeout",
            "from 0 to 3600",
        ),
        (
            json!({ "action": "stop", "ids": ["sim:200"], "force": true }),
            "force",
            "is not a field",
        ),
    ];
    for (body, field, text) in cases {
        let (status, answer) = post_json(&app, &root, "/api/v1/containers/bulk", &body).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["status"], 422);
        let message = answer["fields"][field].as_str().unwrap_or_default();
        assert!(
            message.contains(text),
            "{body}: field {field} says {answer}"
        );
        assert!(answer["error"].as_str().unwrap().contains(text), "{answer}");
    }
    let r = app
        .client
        .post(format!("{}/api/v1/containers/bulk", app.address))
        .header("cookie", &root.cookie)
        .header("x-csrf-token", &root.csrf)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("not JSON"),
        "{answer}"
    );
    assert!(
        app.state.store.list_jobs(10).await.unwrap().is_empty(),
        "nothing was queued"
    );

    // A VMID that does not exist (for root, who may see everything): a per-container error.
    let (status, body) = post_json(
        &app,
        &root,
        "/api/v1/containers/bulk",
        &json!({ "action": "stop", "ids": ["sim:999"] }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app, &root, body["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "failed");
    let message = item(&job, "sim:999")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("CT 999") && message.contains("not found"),
        "{message}"
    );
}

#[tokio::test]
async fn the_dashboard_form_confirms_queues_and_shows_the_results() {
    let sim = sim_from(SCENARIO, Timings::instant()).await;
    let app = app_for(&sim).await;
    let root = login(&app, "root", &sim.root_password, "pam").await;

    // Checkboxes join the bulk form; "select all on this page" works without script.
    let (status, html) = get(&app, &root, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"id="bulk-form""#), "{html}");
    assert!(
        html.contains(r#"name="ids" value="sim:200" form="bulk-form""#),
        "{html}"
    );
    assert!(!html.contains(
        r#"value="sim:200" form="bulk-form" data-bulk-pick data-name="web1 (CT 200)" checked"#
    ));
    assert!(html.contains("Select all on this page"));
    assert!(
        html.contains(r#"id="dlg-bulk-delete""#),
        "destructive actions have a dialog"
    );
    let (_, html) = get(&app, &root, "/?view=table&select=all").await;
    assert!(
        html.contains(
            r#"value="sim:200" form="bulk-form" data-bulk-pick data-name="web1 (CT 200)" checked"#
        ),
        "{html}"
    );
    assert!(html.contains("Clear selection"));

    let form = |pairs: &[(&str, &str)], csrf: bool| {
        let mut all: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if csrf {
            all.push(("csrf_token".into(), root.csrf.clone()));
        }
        serde_urlencoded::to_string(&all).unwrap()
    };
    let send = |body: String| {
        app.client
            .post(format!("{}/containers/bulk", app.address))
            .header("cookie", &root.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    // Without the CSRF token: refused.
    let r = send(form(&[("action", "start"), ("ids", "sim:204")], false))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Nothing selected: back to the dashboard with the reason.
    let r = send(form(&[("action", "stop"), ("back", "/?view=table")], true))
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?view=table");
    assert!(r.headers().get("set-cookie").is_some(), "a flash message");

    // A destructive action is confirmed first (the page names how many and which).
    let picked = [
        ("action", "stop"),
        ("ids", "sim:200"),
        ("ids", "sim:201"),
        ("back", "/"),
    ];
    let r = send(form(&picked, true)).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Stop 2 containers?"), "{html}");
    assert!(html.contains("web1 (CT 200), web2 (CT 201)"), "{html}");
    assert!(html.contains(r#"name="confirm" value="stop""#), "{html}");
    assert!(
        app.state.store.list_jobs(10).await.unwrap().is_empty(),
        "nothing queued yet"
    );
    assert_eq!(sim.state().ct_running(200), Some(true));

    // Confirmed: queued, and the browser goes to the job's page.
    let confirmed = [
        ("confirm", "stop"),
        ("ids", "sim:200"),
        ("ids", "sim:201"),
        ("back", "/"),
    ];
    let r = send(form(&confirmed, true)).await.unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id: i64 = location.strip_prefix("/jobs/").unwrap().parse().unwrap();
    let job = wait_job(&app, &root, id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(sim.state().ct_running(200), Some(false));
    assert_eq!(sim.state().ct_running(201), Some(false));
    let (status, html) = get(&app, &root, &location).await;
    assert_eq!(status, 200);
    assert!(html.contains("Stop 2 containers"), "{html}");
    assert!(html.contains("2 succeeded, 0 failed"), "{html}");
    assert!(
        html.contains(r#"<a href="/containers/sim:200">web1 (CT 200)</a>"#),
        "{html}"
    );
    assert!(html.contains("stopped CT 201"), "{html}");

    // Start needs no confirmation.
    let r = send(form(&[("action", "start"), ("ids", "sim:204")], true))
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id: i64 = location.strip_prefix("/jobs/").unwrap().parse().unwrap();
    assert_eq!(wait_job(&app, &root, id).await["state"], "succeeded");
    assert_eq!(sim.state().ct_running(204), Some(true));
}

/// 20 running CTs stopped by one bulk request; prints the time from submit to the job's end.
#[tokio::test]
async fn bulk_stop_of_twenty_containers() {
    let mut scenario = String::from("node_count = 2\n");
    for i in 0..20 {
        scenario.push_str(&format!(
            "\n[[containers]]\nvmid = {}\nnode = \"pve{}\"\nhostname = \"ct{i}\"\nstatus = \"running\"\n",
            300 + i,
            1 + i % 2
        ));
    }
    for (label, timings) in [
        ("instant tasks", Timings::instant()),
        (
            "800 ms stop tasks",
            Timings {
                stop: Duration::from_millis(800),
                ..Timings::instant()
            },
        ),
    ] {
        let sim = sim_from(&scenario, timings).await;
        let app = app_for(&sim).await;
        let root = login(&app, "root", &sim.root_password, "pam").await;
        let ids: Vec<String> = (300..320).map(|v| format!("sim:{v}")).collect();
        let started = Instant::now();
        let (status, body) = post_json(
            &app,
            &root,
            "/api/v1/containers/bulk",
            &json!({ "action": "stop", "ids": ids }),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let job = wait_job(&app, &root, body["job_id"].as_i64().unwrap()).await;
        let took = started.elapsed();
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["result"]["succeeded"], 20);
        for vmid in 300..320 {
            assert_eq!(sim.state().ct_running(vmid), Some(false), "CT {vmid}");
        }
        eprintln!("bulk stop of 20 CTs ({label}): {} ms", took.as_millis());
    }
}

/// API tokens act as their owner: with the cluster's token, but only where Proxmox grants the
/// owner the privilege — for single actions and bulk jobs alike.
#[tokio::test]
async fn api_tokens_never_exceed_their_owners_permissions() {
    let sim = sim_from(SCENARIO, Timings::instant()).await;
    let app = app_for(&sim).await;
    let (_, alice) = ctforge::tokens::create(&app.state, "alice@pve", "ci", "127.0.0.1")
        .await
        .unwrap();
    let (_, root) = ctforge::tokens::create(&app.state, "root@pam", "ci", "127.0.0.1")
        .await
        .unwrap();
    let call = |token: &str, path: &str, body: Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // alice may look at CTs but not power them.
    let r = call(&alice, "/api/v1/containers/sim:200/stop", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("permission denied: alice@pve lacks VM.PowerMgmt on /vms/200"),
        "{body}"
    );
    assert_eq!(sim.state().ct_running(200), Some(true));
    let r = call(
        &alice,
        "/api/v1/containers/bulk",
        json!({ "action": "stop", "ids": ["sim:200", "sim:201"] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = r.json::<Value>().await.unwrap()["job_id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/jobs/{id}"));
    let session = login(&app, "root", &sim.root_password, "pam").await;
    let job = wait_job(&app, &session, id).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["created_by"], "alice@pve");
    for ct in ["sim:200", "sim:201"] {
        let it = item(&job, ct);
        assert_eq!(it["ok"], false);
        assert!(
            it["message"]
                .as_str()
                .unwrap()
                .contains("permission denied"),
            "{it}"
        );
    }
    assert_eq!(sim.state().ct_running(201), Some(true));

    // root's token may: a bulk delete of a managed and an unmanaged CT.
    let managed = record(&app, 202, "pve2", "db1").await;
    let r = call(
        &root,
        "/api/v1/containers/bulk",
        json!({ "action": "delete", "ids": [managed.to_string(), "sim:203"] }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["job_id"].as_i64().unwrap();
    let job = wait_job(&app, &session, id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    for ct in [managed.to_string().as_str(), "sim:203"] {
        let it = item(&job, ct);
        assert_eq!(
            (&it["ok"], &it["status"], &it["key"]),
            (&json!(true), &json!("deleted"), &Value::Null),
            "{it}"
        );
    }
    assert_eq!(sim.state().ct_running(202), None, "destroyed in Proxmox");
    assert_eq!(sim.state().ct_running(203), None, "destroyed in Proxmox");
    assert!(
        app.state.store.get_container(managed).await.is_err(),
        "record removed"
    );
    let deletes = audit(&app, "ct.delete").await;
    assert_eq!(deletes.len(), 2);
    assert!(
        deletes
            .iter()
            .all(|(_, actor, outcome, _)| actor == "root@pam" && outcome == "ok")
    );
}
