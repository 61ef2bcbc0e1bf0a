//! Notifications end to end over real HTTP and SMTP: a local webhook receiver (axum, verifying
//! the HMAC signature with its own key) and a local SMTP sink (a minimal SMTP server below)
//! receive a failed creation job and a service going down on the simulator; a transient 503 is
//! retried and both attempts are visible in `GET /api/v1/notifications/deliveries`; a burst of
//! 50 identical events makes one notification; targets are admin-only, audited, their secrets
//! sealed and never shown; the Test button's API sends at once.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use ctforge::config::Secret;
use ctforge::notify::config::TargetConfig;
use ctforge::notify::targets::{SmtpSecurity, SmtpSettings, TargetKind};
use ctforge::notify::{Event, EventKind};
use ctforge_pve_sim::SimHandle;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const HMAC_KEY: &str = "hook-signing-key-7f3a";
const SMTP_PASSWORD: &str = "smtp-pass-91c2";
const WEB: u32 = 300;

/// What the webhook receiver got: (signature valid, body); and what its ntfy and Gotify
/// endpoints got: (path, `Authorization` or `X-Gotify-Key`, `Title`, body).
#[derive(Clone, Default)]
struct Hooks {
    got: Arc<Mutex<Vec<(bool, Value)>>>,
    failed_once: Arc<Mutex<bool>>,
    pushes: Arc<Mutex<Vec<Push>>>,
}

/// One ntfy or Gotify request: (path, credential header, `Title`, body).
type Push = (String, String, String, String);

impl Hooks {
    fn all(&self) -> Vec<(bool, Value)> {
        self.got.lock().unwrap().clone()
    }
}

/// A webhook receiver on 127.0.0.1 that checks `X-Ctforge-Signature` with its own key and
/// answers the first `job_failed` with 503 (ctforge must retry).
async fn webhook_receiver() -> (String, Hooks) {
    let hooks = Hooks::default();
    let shared = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let hooks = shared.clone();
            async move {
                let signature = headers
                    .get("x-ctforge-signature")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("sha256="))
                    .unwrap_or("");
                let bytes: Vec<u8> = (0..signature.len() / 2)
                    .filter_map(|i| u8::from_str_radix(signature.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect();
                let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).unwrap();
                mac.update(&body);
                let valid = mac.verify_slice(&bytes).is_ok();
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if json["event"] == "job_failed" {
                    let mut failed = hooks.failed_once.lock().unwrap();
                    if !*failed {
                        *failed = true;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                }
                hooks.got.lock().unwrap().push((valid, json));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let pushes = hooks.pushes.clone();
    let push = move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
        let pushes = pushes.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let auth = format!("{}{}", header("authorization"), header("x-gotify-key"));
            pushes.lock().unwrap().push((
                uri.path().to_owned(),
                auth,
                header("title"),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            StatusCode::OK
        }
    };
    let app = app
        .route("/ntfy/alerts", axum::routing::post(push.clone()))
        .route("/gotify/message", axum::routing::post(push));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hooks)
}

/// A minimal SMTP server: greets, accepts EHLO/MAIL/RCPT, stores each DATA, says goodbye.
/// (No TLS, no AUTH: the target uses `security = "none"`, as for a local relay.)
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP ready\r\n").await;
                let mut data: Option<Vec<String>> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            store.lock().unwrap().push(body.join("\n"));
                            data = None;
                            let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                        } else {
                            body.push(line.strip_prefix('.').unwrap_or(&line).to_owned());
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
                        "DATA" => {
                            data = Some(Vec::new());
                            b"354 end with .\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                            break;
                        }
                        _ => b"502 5.5.2 not implemented\r\n",
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (port, mails)
}

async fn sim(web_port: u16) -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(
        &format!(
            r#"
        [[users]]
        userid = "bob@pve"
        password = "bob"
        role = "PVEVMAdmin"

        [[containers]]
        vmid = {WEB}
        node = "pve1"
        hostname = "shop"
        status = "running"
        services = [{{ name = "nginx", port = {web_port} }}, {{ name = "app" }}]
        "#
        ),
        |c| c,
    )
    .await
}

/// Waits (bounded) until `check` holds, re-reading with `read`.
async fn until<T>(what: &str, mut read: impl FnMut() -> T, check: impl Fn(&T) -> bool) -> T {
    for _ in 0..400 {
        let value = read();
        if check(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn get(app: &common::TestApp, s: &common::ApiSession, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn wait_for_job(app: &common::TestApp, s: &common::ApiSession, job_id: i64) -> Value {
    for _ in 0..400 {
        let (_, job) = get(app, s, &format!("/api/v1/jobs/{job_id}")).await;
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job_id} did not finish");
}

#[tokio::test]
async fn webhook_and_smtp_receive_a_failed_job_and_a_service_down_once_each() {
    let (hook_url, hooks) = webhook_receiver().await;
    let (smtp_port, mails) = smtp_sink().await;
    let sim = sim(9).await;
    let cluster = common::sim_cluster(&sim);
    let templates = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![templates];
        c.workers.concurrency = 1;
        c.monitoring.interval_secs = 0;
        c.server.public_url = Some("https://ctforge.example".into());
        c.notifications.retry_backoff_ms = 20;
        // The e-mail target comes from the configuration; the webhook is added over the API.
        c.notifications.targets = vec![TargetConfig {
            name: "ops-mail".into(),
            kind: TargetKind::Email,
            url: None,
            smtp: Some(SmtpSettings {
                host: "127.0.0.1".into(),
                port: Some(smtp_port),
                security: SmtpSecurity::None,
                username: None,
                from: "ctforge@example.org".into(),
                to: vec!["ops@example.org".into()],
            }),
            events: vec![EventKind::JobFailed, EventKind::ServiceDown],
            unreachable_after_mins: None,
            enabled: true,
            secret: Some(Secret::new(SMTP_PASSWORD)),
            secret_file: None,
        }];
    })
    .await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // Targets are for ctforge admins only.
    let bob = common::api_login(&app.client, &app.address, "bob", "bob", "pve").await;
    let (status, _) = get(&app, &bob, "/api/v1/notifications/targets").await;
    assert_eq!(status, 403);
    let r = bob
        .post(
            &app.client,
            &app.address,
            "/api/v1/notifications/targets",
            json!({ "name": "x", "kind": "webhook", "url": hook_url }),
        )
        .await;
    assert_eq!(r.status(), 403);

    // A bad target names its field; a good one is created with its secret sealed.
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/notifications/targets",
            json!({ "name": "hook", "kind": "webhook", "url": "ftp://nope" }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["fields"]["url"].as_str().unwrap().contains("http"),
        "{body}"
    );
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/notifications/targets",
            json!({
                "name": "hook",
                "kind": "webhook",
                "url": hook_url,
                "secret": HMAC_KEY,
                "events": ["job_failed", "service_down", "service_up"],
            }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    assert_eq!(hook["has_secret"], true);
    assert!(!hook.to_string().contains(HMAC_KEY));
    let hook_id = hook["id"].as_i64().unwrap();
    let (status, list) = get(&app, &root, "/api/v1/notifications/targets").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hook", "ops-mail"]);
    assert!(!list.to_string().contains(SMTP_PASSWORD) && !list.to_string().contains(HMAC_KEY));
    for row in app.state.store.list_notification_targets().await.unwrap() {
        let sealed = row.secret_sealed.unwrap();
        assert!(
            sealed.starts_with("v1:")
                && !sealed.contains(HMAC_KEY)
                && !sealed.contains(SMTP_PASSWORD)
        );
    }
    let audit = app
        .state
        .store
        .list_audit(&ctforge::storage::model::AuditFilter {
            action: Some("notification_target.create".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);

    // The Test button: sent now, signed.
    let r = root
        .post(
            &app.client,
            &app.address,
            &format!("/api/v1/notifications/targets/{hook_id}/test"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["ok"], true);
    let got = hooks.all();
    assert_eq!(got.len(), 1);
    assert!(got[0].0, "the test's signature verifies");
    assert_eq!(got[0].1["event"], "test");

    // A creation job that fails (a package that does not exist) → job_failed to both targets.
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = root
        .post(
            &app.client,
            &app.address,
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "web-02", "extra_packages": ["no-such-package"] }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: Value = r.json().await.unwrap();
    let job_id = created["job_id"].as_i64().unwrap();
    let job = wait_for_job(&app, &root, job_id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let got = until(
        "the job_failed webhook",
        || hooks.all(),
        |got| {
            got.iter()
                .any(|(_, b)| b["event"] == "job_failed" && b["job_id"] == job_id)
        },
    )
    .await;
    let (valid, failed) = got
        .iter()
        .find(|(_, b)| b["event"] == "job_failed")
        .unwrap();
    assert!(*valid, "HMAC verified by the receiver: {failed}");
    assert_eq!(failed["key"], format!("job_failed:{job_id}"));
    assert_eq!(failed["container"]["hostname"], "web-02");
    assert_eq!(failed["cluster"], "sim");
    assert_eq!(
        failed["link"],
        format!("https://ctforge.example/jobs/{job_id}")
    );
    assert!(
        failed["title"].as_str().unwrap().contains("failed"),
        "{failed}"
    );
    assert!(
        failed["message"].as_str().unwrap().contains("install"),
        "{failed}"
    );
    let mails_now = until(
        "the job_failed e-mail",
        || mails.lock().unwrap().clone(),
        |m| m.iter().any(|m| m.contains(&format!("Job {job_id}"))),
    )
    .await;
    let mail = mails_now
        .iter()
        .find(|m| m.contains(&format!("Job {job_id}")))
        .unwrap();
    assert!(
        mail.contains("Subject: [ctforge] Job") && mail.contains("To: ops@example.org"),
        "{mail}"
    );
    // The first webhook attempt got 503 and was retried: both attempts are visible.
    let (status, deliveries) = get(
        &app,
        &root,
        &format!("/api/v1/notifications/deliveries?target={hook_id}"),
    )
    .await;
    assert_eq!(status, 200);
    let attempts: Vec<(i64, String, String)> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"] == "job_failed")
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["status"].as_str().unwrap().to_owned(),
                d["error"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(attempts.len(), 2, "{deliveries}");
    assert_eq!((attempts[1].0, attempts[1].1.as_str()), (1, "failed"));
    assert!(attempts[1].2.contains("503"), "{attempts:?}");
    assert_eq!((attempts[0].0, attempts[0].1.as_str()), (2, "sent"));

    // A service goes down on a managed container → service_down to both targets.
    let store = &app.state.store;
    let cluster_id = store.get_cluster_by_name("sim").await.unwrap().id;
    let (ct, _fixture_job) = store
        .create_container_with_job(
            &ctforge::storage::model::NewContainer {
                cluster_id,
                node: "pve1".into(),
                vmid: i64::from(WEB),
                hostname: "shop".into(),
                template_id: None,
                status: ctforge::status::RecordStatus::Creating,
                spec_json: "{}".into(),
                root_password_sealed: None,
                created_by: "root@pam".into(),
            },
            &ctforge::storage::model::NewJob {
                kind: "test_fixture".into(),
                container_id: None,
                node: Some("pve1".into()),
                payload_json: "{}".into(),
                created_by: "root@pam".into(),
            },
        )
        .await
        .unwrap();
    // (The fixture job has no handler: when a worker claims it, it fails and notifies as well;
    // nothing below depends on when.)
    store
        .update_container_status(ct, ctforge::status::RecordStatus::Ready, Some("10.0.0.9"))
        .await
        .unwrap();
    store
        .replace_services(
            ct,
            &[ctforge::storage::model::ContainerService {
                unit: "nginx.service".into(),
                active_state: "active".into(),
                updated_at: 1,
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let sim_state = sim.state();
    let backend = sim_state.memory_backend().unwrap();
    let argv = [
        "sh".to_owned(),
        "-c".to_owned(),
        "systemctl stop nginx".to_owned(),
    ];
    assert_eq!(backend.run(WEB, &argv, b"").2, 0);
    let r = root
        .post(
            &app.client,
            &app.address,
            &format!("/api/v1/containers/{ct}/services/refresh"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let got = until(
        "the service_down webhook",
        || hooks.all(),
        |got| got.iter().any(|(_, b)| b["event"] == "service_down"),
    )
    .await;
    let (valid, down) = got
        .iter()
        .find(|(_, b)| b["event"] == "service_down")
        .unwrap();
    assert!(*valid, "HMAC verified by the receiver: {down}");
    assert_eq!(down["key"], format!("service_down:{ct}:nginx.service"));
    assert_eq!(down["unit"], "nginx.service");
    assert_eq!(down["container"]["vmid"], i64::from(WEB));
    assert!(
        down["title"]
            .as_str()
            .unwrap()
            .contains("nginx.service is down on shop"),
        "{down}"
    );
    until(
        "the service_down e-mail",
        || mails.lock().unwrap().clone(),
        |m| {
            m.iter()
                .any(|m| m.contains("nginx.service is down on shop"))
        },
    )
    .await;

    // A burst of 50 identical events → one notification; then a marker to know the burst is
    // through the dispatcher.
    for _ in 0..50 {
        let mut event = Event::new(
            EventKind::ServiceDown,
            format!("service_down:{ct}:app.service"),
            "app.service is down on shop",
            "app.service went down",
            1,
        );
        event.unit = Some("app.service".into());
        app.state.notifier.emit(event);
    }
    app.state.notifier.emit(Event::new(
        EventKind::ServiceUp,
        "marker",
        "marker",
        "marker",
        2,
    ));
    let got = until(
        "the burst and the marker",
        || hooks.all(),
        |got| {
            got.iter().any(|(_, b)| b["key"] == "marker")
                && got.iter().any(|(_, b)| b["unit"] == "app.service")
        },
    )
    .await;
    let burst = got
        .iter()
        .filter(|(_, b)| b["unit"] == "app.service")
        .count();
    assert_eq!(burst, 1, "50 identical events make one notification");
    // One delivery per target (the e-mail may still be on its way: wait for it, then make
    // sure no second one follows from the burst).
    let mut deliveries = Value::Null;
    for _ in 0..400 {
        deliveries = get(&app, &root, "/api/v1/notifications/deliveries?limit=500")
            .await
            .1;
        let sent = deliveries
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["key"] == format!("service_down:{ct}:app.service"))
            .count();
        if sent >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = deliveries.as_array().unwrap();
    let burst_rows: Vec<&Value> = rows
        .iter()
        .filter(|d| d["key"] == format!("service_down:{ct}:app.service"))
        .collect();
    assert_eq!(burst_rows.len(), 2, "one per target: {burst_rows:?}");
    assert!(
        rows.iter()
            .all(|d| d["target"].is_string() && d["status"].is_string())
    );

    // ntfy, added with the Settings form (CSRF, secret typed once), then its Test button.
    let base = hook_url.trim_end_matches("/hook").to_owned();
    let form = [
        ("csrf_token", root.csrf.as_str()),
        ("name", "phone"),
        ("kind", "ntfy"),
        ("url", &format!("{base}/ntfy/alerts")),
        ("secret", "tk_ntfy_0042"),
        ("event_service_down", "on"),
        ("enabled", "on"),
    ];
    let r = app
        .client
        .post(format!("{}/settings/notifications", app.address))
        .header("cookie", &root.cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let phone = app
        .state
        .store
        .get_notification_target_by_name("phone")
        .await
        .unwrap();
    let r = app
        .client
        .post(format!(
            "{}/settings/notifications/{}/test",
            app.address, phone.id
        ))
        .header("cookie", &root.cookie)
        .form(&[("csrf_token", root.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Test sent"));
    // Saving the edit form without a secret keeps the stored one.
    let r = app
        .client
        .post(format!(
            "{}/settings/notifications/{}/edit",
            app.address, phone.id
        ))
        .header("cookie", &root.cookie)
        .form(&[
            ("csrf_token", root.csrf.as_str()),
            ("name", "phone"),
            ("kind", "ntfy"),
            ("url", &format!("{base}/ntfy/alerts")),
            ("event_image_built", "on"),
            ("enabled", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let edited = app
        .state
        .store
        .get_notification_target(phone.id)
        .await
        .unwrap();
    assert_eq!(edited.secret_sealed, phone.secret_sealed);
    assert!(
        edited.rules_json.contains("image_built") && !edited.rules_json.contains("service_down")
    );
    // Gotify over the API: the token goes in X-Gotify-Key, the message to <url>/message.
    let r = root
        .post(&app.client, &app.address, "/api/v1/notifications/targets", json!({ "name": "gotify", "kind": "gotify", "url": format!("{base}/gotify"), "secret": "gtk_0043" }))
        .await;
    assert_eq!(r.status(), 201);
    let gotify_id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = root
        .post(
            &app.client,
            &app.address,
            &format!("/api/v1/notifications/targets/{gotify_id}/test"),
            json!({}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["ok"], true);
    let pushes = hooks.pushes.lock().unwrap().clone();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    let (path, auth, title, body) = &pushes[0];
    assert_eq!(
        (path.as_str(), auth.as_str()),
        ("/ntfy/alerts", "Bearer tk_ntfy_0042")
    );
    assert!(
        title.contains("test notification for phone") && body.contains("the target works"),
        "{title} {body}"
    );
    let (path, auth, _, body) = &pushes[1];
    assert_eq!(
        (path.as_str(), auth.as_str()),
        ("/gotify/message", "gtk_0043")
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert!(
        body["title"].as_str().unwrap().contains("gotify") && body["priority"].is_number(),
        "{body}"
    );

    // Nothing any target got carries a credential.
    let everything = format!("{:?}{:?}", hooks.all(), mails.lock().unwrap());
    for secret in [
        HMAC_KEY,
        SMTP_PASSWORD,
        sim.root_password.as_str(),
        sim.token_secret.as_str(),
    ] {
        assert!(
            !everything.contains(secret),
            "a notification carries a credential"
        );
    }

    // Deleting a target is audited and stops its notifications; its history stays.
    let r = app
        .client
        .delete(format!(
            "{}/api/v1/notifications/targets/{hook_id}",
            app.address
        ))
        .header("cookie", &root.cookie)
        .header("x-csrf-token", &root.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, deliveries) = get(&app, &root, "/api/v1/notifications/deliveries?limit=500").await;
    assert!(
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["target"] == "hook" && d["target_id"].is_null())
    );

    // The settings page lists the e-mail target and the latest deliveries.
    let page = app
        .client
        .get(format!("{}/settings/notifications", app.address))
        .header("cookie", &root.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("ops-mail") && html.contains("Latest deliveries") && html.contains("503"),
        "the page shows targets and delivery errors"
    );
}

/// The notification half of the store, the same on SQLite and PostgreSQL.
async fn store_story(backend: &str) {
    use ctforge::storage::StoreError;
    use ctforge::storage::model::{NotificationDelivery, NotificationTargetInput};
    let (store, _clock, _dir) = common::fresh_store(backend).await;
    let input = NotificationTargetInput {
        name: "ops".into(),
        kind: "webhook".into(),
        settings_json: r#"{"url":"https://hooks.example/x"}"#.into(),
        rules_json: r#"{"events":["job_failed"],"unreachable_after_mins":5}"#.into(),
        secret_sealed: Some("v1:k:abc".into()),
        enabled: true,
        source: "settings".into(),
        actor: "root@pam".into(),
    };
    let id = store.insert_notification_target(&input).await.unwrap();
    assert!(matches!(
        store.insert_notification_target(&input).await,
        Err(StoreError::Conflict(_))
    ));
    let mut changed = input.clone();
    changed.enabled = false;
    changed.secret_sealed = None;
    store
        .update_notification_target(id, &changed)
        .await
        .unwrap();
    let row = store.get_notification_target_by_name("ops").await.unwrap();
    assert_eq!((row.id, row.enabled, row.secret_sealed), (id, false, None));
    assert_eq!(row.created_by, "root@pam");
    for (attempt, status) in [(1, "failed"), (2, "sent")] {
        store
            .add_notification_delivery(&NotificationDelivery {
                target_id: Some(id),
                target_name: "ops".into(),
                event_kind: "job_failed".into(),
                event_key: "job_failed:1".into(),
                title: "Job 1 failed".into(),
                attempt,
                status: status.into(),
                error: (status == "failed").then(|| "HTTP 503".to_owned()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let all = store
        .list_notification_deliveries(Some(id), None, 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [2, 1],
        "newest first"
    );
    let older = store
        .list_notification_deliveries(None, Some(all[0].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].error.as_deref(), Some("HTTP 503"));
    store.delete_notification_target(id).await.unwrap();
    assert!(store.list_notification_targets().await.unwrap().is_empty());
    let kept = store
        .list_notification_deliveries(None, None, 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "history outlives its target");
    assert!(kept.iter().all(|d| d.target_id.is_none()));
    assert!(matches!(
        store.delete_notification_target(id).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn notification_store_story_sqlite() {
    store_story("sqlite").await;
}

#[tokio::test]
async fn notification_store_story_postgres() {
    store_story("postgres").await;
}
