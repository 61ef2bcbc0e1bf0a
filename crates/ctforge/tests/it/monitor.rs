//! Monitoring over real HTTP and SSH against the simulator (memory backend): the refresh API
//! and form re-check services, ports, credentials and the config-manager with one batched
//! command; a unit going down and back becomes `service_down` / `service_up`; a missing `ss`
//! fails only its part; stopped, unmanaged and unauthorised refreshes are refused; web links
//! are probed on a real local server; the periodic loop picks up a change on its own and
//! respects another process's lease.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use ctforge::storage::model::{ContainerService, NewContainer, NewJob};
use ctforge_pve_sim::SimHandle;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WEB: u32 = 300;
const STOPPED: u32 = 301;
const UNMANAGED: u32 = 302;

/// A web server on ctforge's host where the CT's nginx would be (the CT's address is
/// 127.0.0.1): ctforge must never probe it. Counts the connections it gets.
async fn web_server() -> (u16, tokio::task::JoinHandle<()>) {
    let (port, task, _) = counting_web_server().await;
    (port, task)
}

async fn counting_web_server() -> (
    u16,
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if !buf[..n].starts_with(b"GET ") {
                    return; // a TLS hello: hang up, this server speaks plain HTTP
                }
                let body = "<html><head><title>Shop &amp; Admin</title></head></html>";
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, task, hits)
}

async fn sim(web_port: u16) -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(&format!(
        r#"
        [[users]]
        userid = "bob@pve"
        password = "bob"
        role = "NoAccess"

        [[containers]]
        vmid = {WEB}
        node = "pve1"
        hostname = "shop"
        status = "running"
        services = [{{ name = "nginx", port = {web_port} }}, {{ name = "app" }}, {{ name = "worker", active = false }}]
        files = {{ "/etc/ctforge/credentials/admin-password" = "s3cret-Value\n", "/var/lib/ctforge/last-apply" = "1700000000\n" }}

        [[containers]]
        vmid = {STOPPED}
        node = "pve1"
        hostname = "sleepy"
        status = "stopped"

        [[containers]]
        vmid = {UNMANAGED}
        node = "pve1"
        hostname = "foreign"
        status = "running"
        "#
    ), |c| c).await
}

/// A signed-in session (cookie and CSRF token).
type Session = common::ApiSession;

async fn login(app: &common::TestApp, user: &str, password: &str, realm: &str) -> Session {
    common::api_login(&app.client, &app.address, user, password, realm).await
}

async fn refresh(app: &common::TestApp, s: &Session, id: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!(
            "{}/api/v1/containers/{id}/services/refresh",
            app.address
        ))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A managed record with an address and tracked services, as provisioning leaves it.
async fn managed(app: &common::TestApp, vmid: u32, services: &[(&str, &str)]) -> i64 {
    managed_at(app, vmid, services, "127.0.0.1").await
}

/// [`managed`] with the record's address `ip`.
async fn managed_at(app: &common::TestApp, vmid: u32, services: &[(&str, &str)], ip: &str) -> i64 {
    let store = &app.state.store;
    let cluster = store.get_cluster_by_name("sim").await.unwrap();
    let (id, _) = store
        .create_container_with_job(
            &NewContainer {
                cluster_id: cluster.id,
                node: "pve1".into(),
                vmid: i64::from(vmid),
                hostname: format!("ct{vmid}"),
                template_id: None,
                status: ctforge::status::RecordStatus::Creating,
                spec_json: "{}".into(),
                root_password_sealed: None,
                created_by: "root@pam".into(),
            },
            // Not a creation job: with workers running it must not touch the record.
            &NewJob {
                kind: "test_fixture".into(),
                container_id: None,
                node: Some("pve1".into()),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
            },
        )
        .await
        .unwrap();
    store
        .update_container_status(id, ctforge::status::RecordStatus::Ready, Some(ip))
        .await
        .unwrap();
    let rows: Vec<ContainerService> = services
        .iter()
        .map(|(unit, state)| ContainerService {
            unit: (*unit).into(),
            active_state: (*state).into(),
            updated_at: 1,
            ..Default::default()
        })
        .collect();
    store.replace_services(id, &rows).await.unwrap();
    id
}

fn service<'a>(body: &'a Value, unit: &str) -> &'a Value {
    body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["unit"] == unit)
        .unwrap_or_else(|| panic!("{unit} in {body}"))
}

fn event_kinds(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["unit"].as_str().unwrap()
            )
        })
        .collect()
}

fn in_ct(sim: &SimHandle, command: &str) {
    let state = sim.state();
    let backend = state.memory_backend().unwrap();
    let argv = ["sh".to_owned(), "-c".to_owned(), command.to_owned()];
    let (_, err, code) = backend.run(WEB, &argv, b"");
    assert_eq!(code, 0, "{command}: {}", String::from_utf8_lossy(&err));
}

#[tokio::test]
async fn refresh_tracks_transitions_parts_and_web_links() {
    let (web_port, web_task) = web_server().await;
    let sim = sim(web_port).await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
        c.monitoring.web_links = true; // the CT's address is 127.0.0.1: never probed
    })
    .await;
    let root = login(&app, "root", &sim.root_password, "pam").await;
    let id = managed(
        &app,
        WEB,
        &[
            ("nginx.service", "active"),
            ("app.service", "active"),
            ("worker.service", "unknown"),
        ],
    )
    .await;
    let key = id.to_string();

    // First check: states recorded, the credential sealed, the web link not probed (the CT's
    // address is ctforge's own loopback); no event for worker.service, seen for the first
    // time (inactive).
    let started = Instant::now();
    let (status, body) = refresh(&app, &root, &key).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    println!(
        "memory backend: one refresh took {} ms over HTTP ({} ms for the batched command)",
        took.as_millis(),
        body["duration_ms"]
    );
    assert_eq!(body["ok"], true, "{body}");
    for part in ["units", "ports", "credentials", "config_manager"] {
        assert_eq!(body["parts"][part]["ok"], true, "{part}: {body}");
    }
    let nginx = service(&body, "nginx.service");
    assert_eq!(
        (&nginx["active_state"], &nginx["sub_state"], &nginx["port"]),
        (&json!("active"), &json!("running"), &json!(web_port))
    );
    assert_eq!(nginx["web_title"], Value::Null);
    assert_eq!(nginx["web_answered"], Value::Null);
    assert_eq!(service(&body, "worker.service")["active_state"], "inactive");
    assert!(event_kinds(&body).is_empty(), "{body}");
    assert_eq!(body["credentials_added"], json!(["admin-password"]));
    assert_eq!(
        body["config_manager"]["last_apply_ms"],
        json!(1_700_000_000_000_i64)
    );
    let creds = app.state.store.list_credentials(id).await.unwrap();
    assert_eq!(creds.len(), 1);
    assert!(!creds[0].value_sealed.contains("s3cret"));
    assert_eq!(
        app.state
            .keyring
            .open(&creds[0].value_sealed)
            .unwrap()
            .expose(),
        "s3cret-Value"
    );
    let commands = sim.state().memory_backend().unwrap().commands(WEB);
    assert_eq!(commands.len(), 1, "one batched command: {commands:?}");

    // nginx goes down inside the CT → service_down, and nothing else changes.
    in_ct(&sim, "systemctl stop nginx");
    let (status, body) = refresh(&app, &root, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(event_kinds(&body), ["service_down:nginx.service"]);
    let nginx = service(&body, "nginx.service");
    assert_eq!(
        (&nginx["active_state"], &nginx["sub_state"]),
        (&json!("inactive"), &json!("dead"))
    );
    assert_eq!(
        nginx["port"],
        json!(web_port),
        "the last port is kept while down"
    );
    assert!(body["credentials_added"].as_array().unwrap().is_empty());
    let events = app
        .state
        .store
        .list_container_events(id, Some("service_down"), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(
        events[0].message.contains("nginx.service")
            && events[0].message.contains("inactive (dead)")
            && events[0].message.contains("was active (running)"),
        "{}",
        events[0].message
    );
    assert_eq!(events[0].actor, "root@pam");

    // Back up → service_up.
    in_ct(&sim, "systemctl start nginx");
    let (_, body) = refresh(&app, &root, &key).await;
    assert_eq!(event_kinds(&body), ["service_up:nginx.service"]);
    assert_eq!(service(&body, "nginx.service")["active_state"], "active");

    // ss missing: its part fails, the others still update (app goes down meanwhile).
    assert!(
        sim.state()
            .memory_backend()
            .unwrap()
            .set_missing_commands(WEB, &["ss".to_owned()])
    );
    in_ct(&sim, "systemctl stop app");
    let (status, body) = refresh(&app, &root, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["parts"]["ports"]["ok"], false);
    let error = body["parts"]["ports"]["error"].as_str().unwrap();
    assert!(
        error.contains("not installed") && error.contains("ss: not found"),
        "{error}"
    );
    for part in ["units", "credentials", "config_manager"] {
        assert_eq!(body["parts"][part]["ok"], true, "{part}: {body}");
    }
    assert_eq!(event_kinds(&body), ["service_down:app.service"]);
    assert_eq!(service(&body, "nginx.service")["port"], json!(web_port));

    // The web page: a Refresh form that comes back to the Services tab with a notice, and a
    // web link labelled with the page title.
    let r = app
        .client
        .post(format!("{}/containers/{id}/services/refresh", app.address))
        .header("cookie", &root.cookie)
        .form(&[("csrf_token", root.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/containers/{id}?tab=services").as_str()
    );
    let flash = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("ctforge_flash="))
        .unwrap();
    let html = app
        .client
        .get(format!("{}/containers/{id}?tab=services", app.address))
        .header("cookie", format!("{}; {flash}", root.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Not checked: ss -tlnp"),
        "notice names the failed part"
    );
    assert!(!html.contains("Shop &amp; Admin"), "{html}");
    assert!(html.contains(&format!(r#"action="/containers/{id}/services/refresh""#)));
    web_task.abort();
    let _ = web_task.await;

    // The services as last checked, without a new check.
    let r = app
        .client
        .get(format!("{}/api/v1/containers/{id}/services", app.address))
        .header("cookie", &root.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(
        service(&listed, "nginx.service")["web_answered"],
        Value::Null
    );
    assert_eq!(service(&listed, "app.service")["active_state"], "inactive");
    assert_eq!(listed["credentials"], json!(["admin-password"]));

    // Refused: a stopped CT (409), an unmanaged CT (404), no VM.Audit (403), anonymous (401).
    let stopped = managed(&app, STOPPED, &[("nginx.service", "active")]).await;
    let (status, body) = refresh(&app, &root, &stopped.to_string()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not running"),
        "{body}"
    );
    let (status, body) = refresh(&app, &root, &format!("sim:{UNMANAGED}")).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unmanaged"),
        "{body}"
    );
    let bob = login(&app, "bob", "bob", "pve").await;
    let (status, body) = refresh(&app, &bob, &key).await;
    assert_eq!(status, 403, "{body}");
    // The container read and its event stream are held to the same privilege.
    for path in [
        format!("/api/v1/containers/{key}"),
        format!("/api/v1/containers/{key}/events"),
    ] {
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .header("cookie", &bob.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path} as a user without VM.Audit");
    }
    let r = app
        .client
        .post(format!(
            "{}/api/v1/containers/{id}/services/refresh",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn ssh_failure_is_one_clear_error() {
    let sim = sim(9).await;
    let mut cluster = common::sim_cluster(&sim);
    // A port nothing listens on: the SSH connection itself fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cluster.ssh_port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
    })
    .await;
    let root = login(&app, "root", &sim.root_password, "pam").await;
    let id = managed(&app, WEB, &[("nginx.service", "active")]).await;
    let (status, body) = refresh(&app, &root, &id.to_string()).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("SSH to node pve1 failed:"),
        "{body}"
    );
    let r = app
        .client
        .post(format!("{}/containers/{id}/services/refresh", app.address))
        .header("cookie", &root.cookie)
        .form(&[("csrf_token", root.csrf.as_str())])
        .send()
        .await
        .unwrap();
    let flash = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("ctforge_flash="))
        .unwrap();
    assert!(flash.contains("err%7C"), "{flash}");
    assert!(flash.contains("SSH+to+node+pve1+failed"), "{flash}");
    // Nothing was changed.
    let services = app.state.store.list_services(id).await.unwrap();
    assert_eq!(services[0].updated_at, 1);
}

#[tokio::test]
async fn the_periodic_loop_picks_up_changes_and_respects_leases() {
    let sim = sim(9).await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 1; // the loop runs where workers run
        c.monitoring.interval_secs = 1;
        c.monitoring.concurrency = 2;
    })
    .await;
    let id = managed(
        &app,
        WEB,
        &[("nginx.service", "active"), ("app.service", "active")],
    )
    .await;
    // The stopped CT and the unmanaged one are left alone.
    let stopped = managed(&app, STOPPED, &[("nginx.service", "active")]).await;

    in_ct(&sim, "systemctl stop nginx");
    let store = app.state.store.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    let down = loop {
        let events = store
            .list_container_events(id, Some("service_down"), None, 10)
            .await
            .unwrap();
        if let Some(e) = events.into_iter().next() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the loop never noticed nginx stopping"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(down.actor, "monitor");
    assert!(down.message.contains("nginx.service"), "{}", down.message);
    let services = store.list_services(id).await.unwrap();
    let state_of = |unit: &str| {
        services
            .iter()
            .find(|s| s.unit == unit)
            .map(|s| s.active_state.clone())
    };
    assert_eq!(state_of("nginx.service").as_deref(), Some("inactive"));
    assert_eq!(state_of("app.service").as_deref(), Some("active"));
    let untouched = store.list_services(stopped).await.unwrap();
    assert_eq!(untouched[0].updated_at, 1, "a stopped CT is not checked");
    let commands = sim.state().memory_backend().unwrap().commands(UNMANAGED);
    assert!(
        commands.is_empty(),
        "an unmanaged CT is not checked: {commands:?}"
    );

    // Another process holding the lease: this one skips the CT.
    let lease = ctforge::containers::monitor::lease_name("sim", WEB);
    let state = app.state.clone();
    assert!(
        state
            .store
            .try_lock(&lease, "other-process", 60_000)
            .await
            .unwrap()
    );
    let round = ctforge::containers::monitor::run_round(&state, "this-process").await;
    assert_eq!((round.checked, round.skipped), (0, 1), "{round:?}");
    assert!(state.store.unlock(&lease, "other-process").await.unwrap());
    // The background loop may be checking it right now; either way it is checked once.
    let round = ctforge::containers::monitor::run_round(&state, "this-process").await;
    assert_eq!(round.checked + round.skipped, 1, "{round:?}");
    assert_eq!(round.failed, 0);

    // Shutdown stops the loop with the server.
    let started = Instant::now();
    app.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Finding 6 (SSRF): a CT whose address is ctforge's own loopback (created with
/// `ip=127.0.0.1/8`) must not make ctforge read a page of a service on its host, and only an
/// address Proxmox reports for the CT is probed at all.
#[tokio::test]
async fn web_links_are_probed_only_on_reported_addresses_never_on_ctforge_host() {
    const LOOPBACK_CT: u32 = 310;
    const REMOTE_CT: u32 = 311;
    let (port, task, hits) = counting_web_server().await;
    ctforge::install_crypto_provider();
    let sim = common::sim(
        &format!(
            r#"
            [[containers]]
            vmid = {LOOPBACK_CT}
            node = "pve1"
            hostname = "loopy"
            status = "running"
            ip = "127.0.0.1/8"
            services = [{{ name = "nginx", port = {port} }}]

            [[containers]]
            vmid = {REMOTE_CT}
            node = "pve1"
            hostname = "remote"
            status = "running"
            ip = "203.0.113.50/24"
            services = [{{ name = "nginx", port = {port} }}]
            "#
        ),
        |c| c,
    )
    .await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
        c.monitoring.web_links = true;
    })
    .await;
    let root = login(&app, "root", &sim.root_password, "pam").await;

    let loopy = managed_at(
        &app,
        LOOPBACK_CT,
        &[("nginx.service", "active")],
        "127.0.0.1",
    )
    .await;
    let (status, body) = refresh(&app, &root, &loopy.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let nginx = service(&body, "nginx.service");
    assert_eq!(nginx["port"], json!(port), "{body}");
    assert_eq!(nginx["web_checked_at"], Value::Null, "not probed: {body}");
    assert_eq!(nginx["web_title"], Value::Null);

    // A record address Proxmox does not report for the CT is not probed either.
    let remote = managed_at(
        &app,
        REMOTE_CT,
        &[("nginx.service", "active")],
        "198.51.100.77",
    )
    .await;
    let (_, body) = refresh(&app, &root, &remote.to_string()).await;
    assert_eq!(
        service(&body, "nginx.service")["web_checked_at"],
        Value::Null,
        "{body}"
    );
    // The address Proxmox reports is (nothing listens there: not answering).
    app.state
        .store
        .update_container_status(
            remote,
            ctforge::status::RecordStatus::Ready,
            Some("203.0.113.50"),
        )
        .await
        .unwrap();
    let (_, body) = refresh(&app, &root, &remote.to_string()).await;
    let nginx = service(&body, "nginx.service");
    assert!(nginx["web_checked_at"].is_i64(), "probed: {body}");
    assert_eq!(nginx["web_answered"], false, "{body}");

    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no probe reached the listener on ctforge's host"
    );
    task.abort();
}
