//! Container management over real HTTP against the simulator (memory backend, TLS, pinned
//! fingerprint): every lifecycle action incl. shutdown timeout → force stop and delete of a
//! running CT, one action at a time under 50 concurrent starts, permissions relayed from
//! Proxmox, dashboard filters and unmanaged CTs, credentials reveal, and Proxmox down.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use ctforge::config::{ClusterBootstrap, Secret};
use ctforge::storage::model::{ContainerCredential, ContainerService, NewContainer, NewJob};
use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

const SCENARIO: &str = r#"
node_count = 2

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"
tags = "web;prod"

[[containers]]
vmid = 201
node = "pve1"
hostname = "stubborn"
status = "running"
hang_on_shutdown = true

[[containers]]
vmid = 202
node = "pve2"
hostname = "legacy-db"
status = "stopped"
tags = "db"

[[containers]]
vmid = 203
node = "pve2"
hostname = "cache"
status = "running"
tags = "db;cache"
"#;

async fn sim_with(timings: Timings) -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(SCENARIO, |c| c.with_nodes(2).with_timings(timings)).await
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

async fn app_for(sim: &SimHandle) -> common::TestApp {
    let c = cluster(sim);
    common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![c];
        config.workers.concurrency = 0;
    })
    .await
}

/// A signed-in session (cookie and CSRF token).
type Session = common::ApiSession;

async fn login(app: &common::TestApp, user: &str, password: &str, realm: &str) -> Session {
    common::api_login(&app.client, &app.address, user, password, realm).await
}

async fn root(app: &common::TestApp, sim: &SimHandle) -> Session {
    login(app, "root", &sim.root_password, "pam").await
}

async fn post(app: &common::TestApp, s: &Session, path: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(app: &common::TestApp, s: &Session, path: &str) -> (u16, Value) {
    let r = app
        .client
        .delete(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
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

/// Inserts a container record as the creation pipeline would.
async fn record(app: &common::TestApp, vmid: i64, node: &str, hostname: &str, status: &str) -> i64 {
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
                status: status.parse().unwrap(),
                spec_json: "{}".into(),
                root_password_sealed: None,
                created_by: "root@pam".into(),
            },
            &NewJob {
                kind: "create_container".into(),
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

async fn event_kinds(app: &common::TestApp, id: i64) -> Vec<String> {
    let mut kinds: Vec<String> = app
        .state
        .store
        .list_container_events(id, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    kinds.reverse();
    kinds
}

fn step_kinds(outcome: &Value) -> Vec<String> {
    outcome["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lifecycle_actions_are_checked_awaited_and_recorded() {
    let sim = sim_with(Timings::instant()).await;
    let app = app_for(&sim).await;
    let s = root(&app, &sim).await;
    let web = record(&app, 200, "pve1", "web1", "ready").await;
    let stubborn = record(&app, 201, "pve1", "stubborn", "ready").await;
    let state = sim.state();

    // State is checked before acting: a clear 409, not a Proxmox 500.
    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/start")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("CT 200 is already running"),
        "{body}"
    );

    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/stop")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "stopped");
    assert_eq!(state.ct_running(200), Some(false));
    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/stop")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not running"),
        "{body}"
    );

    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/start")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state.ct_running(200), Some(true));
    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/reboot")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(state.ct_running(200), Some(true));
    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/shutdown")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forced"], false);
    assert_eq!(state.ct_running(200), Some(false));
    assert_eq!(
        event_kinds(&app, web).await,
        ["stopped", "started", "rebooted", "shutdown"]
    );

    // Shutdown that times out is force-stopped; both are recorded.
    let (status, body) = post(
        &app,
        &s,
        &format!("/api/v1/containers/{stubborn}/shutdown?timeout=1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forced"], true);
    assert_eq!(step_kinds(&body), ["shutdown_timeout", "force_stopped"]);
    assert_eq!(state.ct_running(201), Some(false));
    assert_eq!(
        event_kinds(&app, stubborn).await,
        ["shutdown_timeout", "force_stopped"]
    );
    let (status, _) = post(&app, &s, "/api/v1/containers/sim:201/shutdown?timeout=abc").await;
    assert_eq!(status, 400);

    // Unmanaged CTs are addressed as <cluster>:<vmid>.
    let (status, body) = post(&app, &s, "/api/v1/containers/sim:202/start").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(state.ct_running(202), Some(true));

    // Delete of a running CT: stop first, purge, remove the record.
    let (status, _) = post(&app, &s, &format!("/api/v1/containers/{web}/start")).await;
    assert_eq!(status, 200);
    let (status, body) = delete(&app, &s, &format!("/api/v1/containers/{web}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(step_kinds(&body), ["stopped", "deleted", "record_deleted"]);
    assert_eq!(state.ct_running(200), None, "the CT is gone from Proxmox");
    assert!(app.state.store.get_container(web).await.is_err());
    let (status, _) = delete(&app, &s, &format!("/api/v1/containers/{web}")).await;
    assert_eq!(status, 404);

    // HTML form: redirect back with a flash message.
    let r = app
        .client
        .post(format!("{}/containers/sim:202/stop", app.address))
        .header("cookie", &s.cookie)
        .form(&[("csrf_token", s.csrf.as_str()), ("back", "/?view=table")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?view=table");
    let flash = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(flash.starts_with("ctforge_flash="), "{flash}");
    assert_eq!(state.ct_running(202), Some(false));
    let page = app
        .client
        .get(format!("{}/?view=table", app.address))
        .header(
            "cookie",
            format!("{}; {}", s.cookie, flash.split(';').next().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("stopped CT 202"), "flash shown");

    // Every action is audited, including the refused ones.
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .collect();
    for want in [
        ("ct.start", "refused"),
        ("ct.stop", "ok"),
        ("ct.shutdown", "ok"),
        ("ct.reboot", "ok"),
        ("ct.delete", "ok"),
    ] {
        assert!(actions.contains(&want), "{want:?} in {actions:?}");
    }
    let forced = audit
        .iter()
        .find(|e| e.action == "ct.shutdown" && e.detail_json.contains("force_stopped"))
        .unwrap();
    assert_eq!(forced.target, "ct:sim:201");
}

#[tokio::test]
async fn fifty_concurrent_starts_run_exactly_once() {
    fifty_concurrent_starts(false).await;
}

/// The same with Redis configured: the lifecycle lock is then a Redis key (own key prefix, so
/// parallel tests sharing the server never collide).
#[tokio::test]
async fn fifty_concurrent_starts_run_exactly_once_with_redis() {
    fifty_concurrent_starts(true).await;
}

async fn fifty_concurrent_starts(redis: bool) {
    let timings = Timings {
        start: Duration::from_millis(1500),
        ..Timings::instant()
    };
    let sim = sim_with(timings).await;
    let app = if redis {
        let c = cluster(&sim);
        let url = std::env::var("CTFORGE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        common::spawn_app_with("sqlite", move |config| {
            config.clusters = vec![c];
            config.workers.concurrency = 0;
            config.redis_url = Some(Secret::new(url));
            config.redis_prefix = format!("ctforge-test-{}:", uuid::Uuid::new_v4().simple());
        })
        .await
    } else {
        app_for(&sim).await
    };
    assert_eq!(
        app.state.locks.backend(),
        if redis { "redis" } else { "database" }
    );
    let s = root(&app, &sim).await;
    let id = record(&app, 202, "pve2", "legacy-db", "ready").await;
    let url = format!("{}/api/v1/containers/{id}/start", app.address);
    let requests = (0..50).map(|_| {
        let client = app.client.clone();
        let (url, cookie, csrf) = (url.clone(), s.cookie.clone(), s.csrf.clone());
        tokio::spawn(async move {
            let r = client
                .post(url)
                .header("cookie", cookie)
                .header("x-csrf-token", csrf)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        })
    });
    let results: Vec<(u16, Value)> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = results
        .iter()
        .filter(|(s, _)| *s == 200 || *s == 202)
        .count();
    let conflicts: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 409)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(conflicts.len(), 49, "{results:?}");
    for body in conflicts {
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("another action is running on CT 202"),
            "{body}"
        );
    }
    assert_eq!(sim.state().ct_running(202), Some(true));
    assert_eq!(event_kinds(&app, id).await, ["started"]);
    // The lock is released: the next action runs.
    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{id}/stop")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn missing_privilege_disables_buttons_and_relays_proxmox_403() {
    let sim = sim_with(Timings::instant()).await;
    let app = app_for(&sim).await;
    let alice = login(&app, "alice", "alice", "pve").await;
    let (status, html) = get(&app, &alice, "/").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("legacy-db"),
        "alice sees the CTs she may audit"
    );
    assert!(
        html.contains(r#"disabled aria-disabled="true" title="your Proxmox permissions lack VM.PowerMgmt on /vms; ask an administrator">Start"#),
        "{html}"
    );
    assert!(!html.contains(r#"action="/containers/sim:202/start""#));
    let (status, html) = get(&app, &alice, "/containers/sim:202").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("lack VM.PowerMgmt"),
        "detail page disables too"
    );

    let (status, body) = post(&app, &alice, "/api/v1/containers/sim:202/start").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"],
        "Permission check failed (/vms/202, VM.PowerMgmt)"
    );
    assert_eq!(sim.state().ct_running(202), Some(false));
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "ct.start" && e.outcome == "denied" && e.actor == "alice@pve")
    );
}

#[tokio::test]
async fn dashboard_merges_filters_and_pages() {
    let sim = sim_with(Timings::instant()).await;
    let app = app_for(&sim).await;
    let s = root(&app, &sim).await;
    let web = record(&app, 200, "pve1", "web1", "ready").await;
    let creating = record(&app, 299, "pve1", "newbie", "creating").await;

    let all = get_json(&app, &s, "/api/v1/containers").await;
    assert_eq!(all["counts"]["total"], 5, "{all}");
    assert_eq!(all["counts"]["running"], 3);
    assert_eq!(all["counts"]["stopped"], 1);
    assert_eq!(all["counts"]["creating"], 1);
    let items = all["items"].as_array().unwrap();
    let by_vmid = |v: u64| items.iter().find(|i| i["vmid"] == v).unwrap();
    assert_eq!(by_vmid(200)["managed"], true);
    assert_eq!(by_vmid(200)["key"], web.to_string());
    assert_eq!(
        by_vmid(202)["managed"],
        false,
        "CTs ctforge did not create are listed"
    );
    assert_eq!(by_vmid(202)["key"], "sim:202");
    assert_eq!(
        by_vmid(299)["status"],
        "creating",
        "records without a CT still show"
    );
    assert_eq!(by_vmid(299)["key"], creating.to_string());

    let vmids = |v: &Value| -> Vec<u64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["vmid"].as_u64().unwrap())
            .collect()
    };
    let running = get_json(&app, &s, "/api/v1/containers?status=running").await;
    assert_eq!(vmids(&running), [200, 201, 203]);
    assert_eq!(
        running["counts"]["total"], 5,
        "counts ignore the status filter"
    );
    let pve2 = get_json(&app, &s, "/api/v1/containers?node=pve2").await;
    assert_eq!(vmids(&pve2), [202, 203]);
    let db = get_json(&app, &s, "/api/v1/containers?tag=db").await;
    assert_eq!(vmids(&db), [202, 203]);
    let q = get_json(&app, &s, "/api/v1/containers?q=LEGACY").await;
    assert_eq!(vmids(&q), [202]);
    let combo = get_json(&app, &s, "/api/v1/containers?tag=db&status=running&q=cache").await;
    assert_eq!(vmids(&combo), [203]);
    let none = get_json(&app, &s, "/api/v1/containers?template=nginx").await;
    assert_eq!(vmids(&none), Vec::<u64>::new());

    // Filters live in the URL of the page, grid and table views.
    let (status, html) = get(&app, &s, "/?tag=db&view=table").await;
    assert_eq!(status, 200);
    assert!(html.contains("<table") && html.contains("legacy-db") && html.contains("cache"));
    assert!(!html.contains(">web1<"), "filtered out");
    assert!(html.contains("unmanaged"));
    assert!(html.contains(r#"data-refresh="30""#));
    assert!(
        html.contains("Stop cache (CT 203)?"),
        "the confirm dialog names the CT"
    );
    let (_, grid) = get(&app, &s, "/?status=stopped").await;
    assert!(grid.contains("ct-card") && grid.contains(r#"data-vmid="202""#));
    assert!(
        !grid.contains(r#"data-vmid="203""#),
        "running CTs filtered out"
    );

    // Detail page tabs.
    let (status, html) = get(&app, &s, &format!("/containers/{web}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("web1") && html.contains("Resources") && html.contains("eth0"));
    let (status, html) = get(&app, &s, "/containers/sim:203?tab=events").await;
    assert_eq!(status, 200);
    assert!(html.contains("audit log"));
    let (status, _) = get(&app, &s, "/containers/sim:999").await;
    assert_eq!(status, 404);
    // A CT still being created goes to its progress page (when that page exists).
    let (status, html) = get(&app, &s, &format!("/containers/{creating}")).await;
    let progress_page = ctforge::routes::exists("GET", "/jobs/{id}");
    if progress_page {
        assert_eq!(status, 303, "{html}");
    } else {
        assert_eq!(status, 200);
        assert!(html.contains("still being created"));
    }
}

#[tokio::test]
async fn pagination_keeps_large_clusters_fast() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(3).with_containers(120)).await;
    let app = app_for(&sim).await;
    let s = root(&app, &sim).await;
    let first = get_json(&app, &s, "/api/v1/containers").await;
    assert_eq!(first["counts"]["total"], 120);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    assert_eq!(first["pages"], 3);
    let last = get_json(&app, &s, "/api/v1/containers?page=3").await;
    assert_eq!(last["items"].as_array().unwrap().len(), 20);
    let (_, html) = get(&app, &s, "/?page=2").await;
    assert!(html.contains("Page 2 of 3") && html.contains(r#"rel="next""#));
}

#[tokio::test]
async fn services_and_credentials_reveal_is_audited() {
    let sim = sim_with(Timings::instant()).await;
    let app = app_for(&sim).await;
    let s = root(&app, &sim).await;
    let id = record(&app, 200, "pve1", "web1", "ready").await;
    let store = &app.state.store;
    store
        .replace_services(
            id,
            &[ContainerService {
                unit: "nginx.service".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                enabled: true,
                port: Some(80),
                url: Some("http://10.0.0.5/".into()),
                updated_at: 1_700_000_000_000,
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let sealed = app.state.keyring.seal("s3cret-Value").unwrap();
    store
        .put_credential(id, "admin-password", &sealed)
        .await
        .unwrap();
    let _: Vec<ContainerCredential> = store.list_credentials(id).await.unwrap();

    let (status, html) = get(&app, &s, &format!("/containers/{id}?tab=services")).await;
    assert_eq!(status, 200);
    assert!(html.contains("nginx.service") && html.contains("Open web UI"));
    assert!(html.contains("admin-password") && !html.contains("s3cret-Value"));

    let r = app
        .client
        .post(format!(
            "{}/api/v1/containers/{id}/credentials/reveal",
            app.address
        ))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .json(&json!({ "name": "admin-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"], "s3cret-Value");
    let r = app
        .client
        .post(format!(
            "{}/containers/{id}/credentials/reveal",
            app.address
        ))
        .header("cookie", &s.cookie)
        .form(&[("csrf_token", s.csrf.as_str()), ("name", "admin-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("s3cret-Value"));
    let (status, _) = post(&app, &s, "/api/v1/containers/sim:202/credentials/reveal").await;
    assert!(
        status == 400 || status == 415 || status == 422,
        "no body: {status}"
    );

    // An unknown credential is a 404 (and audited too).
    let r = app
        .client
        .post(format!(
            "{}/api/v1/containers/{id}/credentials/reveal",
            app.address
        ))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .json(&json!({ "name": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let audit = store
        .list_audit(&ctforge::storage::model::AuditFilter {
            action: Some("credential.reveal".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert!(audit.iter().all(|e| !e.detail_json.contains("s3cret")));
}

#[tokio::test]
async fn proxmox_down_renders_from_records_with_a_banner() {
    let sim = sim_with(Timings::instant()).await;
    let app = app_for(&sim).await;
    let s = root(&app, &sim).await;
    let web = record(&app, 200, "pve1", "web1", "ready").await;
    let gone = record(&app, 202, "pve2", "legacy-db", "ready").await;
    let (_, html) = get(&app, &s, "/").await;
    assert!(!html.contains("unreachable since"));

    sim.shutdown().await;
    let (status, html) = get(&app, &s, "/").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Cluster sim unreachable since"), "{html}");
    assert!(html.contains("web1") && html.contains("legacy-db"));
    assert!(
        html.contains(r#"title="unavailable: proxmox at"#),
        "actions disabled with the reason"
    );
    let listing = get_json(&app, &s, "/api/v1/containers").await;
    assert_eq!(listing["unreachable"][0]["cluster"], "sim");
    assert_eq!(listing["items"][0]["status"], "unknown");

    let (status, html) = get(&app, &s, &format!("/containers/{web}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Proxmox is unreachable."));

    let (status, body) = post(&app, &s, &format!("/api/v1/containers/{web}/start")).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = delete(
        &app,
        &s,
        &format!("/api/v1/containers/{gone}?record_only=true"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["warning"]
            .as_str()
            .unwrap()
            .contains("may still exist in Proxmox")
    );
    assert!(app.state.store.get_container(gone).await.is_err());
}
