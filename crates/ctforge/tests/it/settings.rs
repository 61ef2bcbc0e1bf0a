//! Cluster settings, API tokens and the audit log over real HTTP, against the simulator.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge_pve_sim::SimHandle;
use serde_json::json;

struct Signed {
    app: common::TestApp,
    cookie: String,
    csrf: String,
}

impl Signed {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.address)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }
}

async fn sim() -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim("", |c| c.with_nodes(2)).await
}

/// The cluster every session of these tests is signed in to: stored before any other, so its
/// `root@pam` is the bootstrap ctforge admin. It points nowhere and is never contacted.
const HOME: &str = "home";

/// An app with one placeholder cluster ([`HOME`]); a user signed in to it through a session
/// made directly. `root@pam` is the bootstrap admin; `admin` grants the ctforge admin role to
/// any other user (stored like a grant made in Settings).
async fn signed_in_app(username: &str, admin: bool) -> Signed {
    let app = common::spawn_app("sqlite").await;
    let home = app
        .state
        .store
        .insert_cluster(&ctforge::storage::model::ClusterInput {
            name: HOME.into(),
            url: "https://home.invalid:8006".into(),
            token_id: "root@pam!ctforge".into(),
            token_secret_sealed: None,
            fingerprint: None,
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password_sealed: None,
            ssh_key_sealed: None,
            ssh_host_key: None,
            is_default: true,
        })
        .await
        .unwrap();
    if admin && username != "root@pam" {
        app.state
            .store
            .insert_role_grant(username, home, "admin", "test")
            .await
            .unwrap();
    }
    // Proxmox privileges grant no ctforge role: even Sys.Modify everywhere changes nothing.
    let cap = std::collections::BTreeMap::from([(
        "nodes".to_owned(),
        std::collections::BTreeMap::from([
            ("Sys.Modify".to_owned(), true),
            ("Sys.Audit".to_owned(), true),
        ]),
    )]);
    let data = ctforge::auth::SessionData {
        cluster_id: home,
        ticket: "PVE:x".into(),
        pve_csrf: "x".into(),
        cap,
        issued_at: ctforge::clock::Clock::now_ms(app.state.clock.as_ref()) / 1000,
        tfa_challenge: None,
    };
    let ctforge::auth::login::SignIn::Done {
        token, csrf_token, ..
    } = ctforge::auth::login::create_session(&app.state, data, username)
        .await
        .unwrap()
    else {
        panic!("no session")
    };
    Signed {
        app,
        cookie: format!("ctforge_session={token}"),
        csrf: csrf_token,
    }
}

#[tokio::test]
async fn add_cluster_with_fingerprint_confirmation_then_test_it() {
    let sim = sim().await;
    let s = signed_in_app("root@pam", true).await;
    let mut body = json!({ "name": "lab", "url": sim.base_url, "token_id": sim.token_id, "token_secret": sim.token_secret });

    let r = s.send("POST", "/api/v1/clusters", Some(body.clone())).await;
    assert_eq!(r.status(), 409, "the certificate must be confirmed first");
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["fingerprint_to_confirm"], sim.fingerprint.as_str());
    assert_eq!(
        s.app.state.store.list_clusters().await.unwrap().len(),
        1,
        "nothing stored before confirmation"
    );

    body["fingerprint"] = json!(sim.fingerprint.to_lowercase());
    let r = s.send("POST", "/api/v1/clusters", Some(body.clone())).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        created["fingerprint"],
        sim.fingerprint.as_str(),
        "normalised to upper case"
    );
    assert_eq!(created["has_token_secret"], true);
    assert_eq!(
        created["default"], false,
        "the placeholder cluster stays the default"
    );
    let text = serde_json::to_string(&created).unwrap();
    assert!(
        !text.contains(&sim.token_secret),
        "secrets are never returned"
    );
    let stored = s.app.state.store.get_cluster_by_name("lab").await.unwrap();
    assert!(
        !stored
            .token_secret_sealed
            .as_ref()
            .unwrap()
            .contains(&sim.token_secret),
        "sealed at rest"
    );

    let id = created["id"].as_i64().unwrap();
    let report: serde_json::Value = s
        .send("POST", &format!("/api/v1/clusters/{id}/test"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        report["version"].as_str().unwrap().starts_with('9')
            || report["version"].as_str().unwrap().starts_with('8'),
        "{report}"
    );
    assert_eq!(report["nodes"].as_array().unwrap().len(), 2);
    assert!(
        report["ssh_error"].as_str().unwrap().contains("SSH"),
        "SSH problems are part of the report: {report}"
    );

    // Edit without re-sending the secret keeps it.
    let r = s
        .send("PUT", &format!("/api/v1/clusters/{id}"), Some(json!({ "name": "lab2", "url": sim.base_url, "token_id": sim.token_id, "fingerprint": sim.fingerprint })))
        .await;
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = s
        .send("POST", &format!("/api/v1/clusters/{id}/test"), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(report["api_error"].is_null(), "{report}");

    // Invalid input names the fields.
    let r = s
        .send(
            "POST",
            "/api/v1/clusters",
            Some(json!({ "name": "bad name!", "url": "ftp://x", "token_id": "nope" })),
        )
        .await;
    assert_eq!(r.status(), 400);
    let err: serde_json::Value = r.json().await.unwrap();
    for field in ["name", "url", "token_id", "token_secret"] {
        assert!(err["fields"][field].is_string(), "{field}: {err}");
    }
    let r = s
        .send(
            "POST",
            "/api/v1/clusters",
            Some(json!({ "name": "x", "unknown": 1 })),
        )
        .await;
    assert_eq!(r.status(), 400, "unknown fields are rejected");

    let r = s
        .send("DELETE", &format!("/api/v1/clusters/{id}"), None)
        .await;
    assert_eq!(r.status(), 204);
    let audit: serde_json::Value = s
        .send("GET", "/api/v1/audit?action=cluster.create", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
    let audit: serde_json::Value = s
        .send("GET", "/api/v1/audit?actor=root@pam", None)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["cluster.delete", "cluster.update", "cluster.create"]
    );
}

#[tokio::test]
async fn changed_certificate_is_refused_by_test_connection() {
    let sim = sim().await;
    let s = signed_in_app("root@pam", true).await;
    let wrong = "AB:".repeat(31) + "AB";
    let r = s
        .send("POST", "/api/v1/clusters", Some(json!({ "name": "lab", "url": sim.base_url, "token_id": sim.token_id, "token_secret": sim.token_secret, "fingerprint": wrong })))
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let report: serde_json::Value = s
        .send("POST", &format!("/api/v1/clusters/{id}/test"), None)
        .await
        .json()
        .await
        .unwrap();
    let error = report["api_error"].as_str().unwrap().to_lowercase();
    assert!(error.contains("fingerprint"), "{error}");
}

#[tokio::test]
async fn non_admins_cannot_change_clusters_or_read_the_audit_log() {
    let s = signed_in_app("alice@pve", false).await;
    let r = s.send("POST", "/api/v1/clusters", Some(json!({ "name": "x", "url": "https://x:8006", "token_id": "a@b!c", "token_secret": "s" }))).await;
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("admin role"),
        "Sys.Modify in Proxmox is no ctforge role: {body}"
    );
    assert_eq!(s.send("GET", "/api/v1/audit", None).await.status(), 403);
    assert_eq!(s.send("GET", "/audit", None).await.status(), 403);
}

#[tokio::test]
async fn api_tokens_are_shown_once_hashed_and_revocable() {
    let s = signed_in_app("root@pam", true).await;
    let r = s
        .send("POST", "/api/v1/tokens", Some(json!({ "name": "ci" })))
        .await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ctf_"));
    let listed = serde_json::to_string(
        &s.send("GET", "/api/v1/tokens", None)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(!listed.contains(&token), "never shown again");
    let stored = s.app.state.store.list_api_tokens("root@pam").await.unwrap();
    assert_ne!(stored[0].token_hash, token, "stored hashed");

    // The token authenticates API calls without CSRF, as its user.
    let me: serde_json::Value = s
        .app
        .client
        .get(s.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "root@pam");
    assert_eq!(me["via"], "token");
    assert_eq!(
        me["roles"],
        json!(["admin"]),
        "the token acts as root@pam on the cluster it was made on"
    );
    let r = s
        .app
        .client
        .post(s.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&json!({ "name": "second" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "token requests need no CSRF token");

    let r = s
        .send("POST", "/api/v1/tokens", Some(json!({ "name": "ci" })))
        .await;
    assert_eq!(r.status(), 400, "names are unique per user");

    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        s.send("DELETE", &format!("/api/v1/tokens/{id}"), None)
            .await
            .status(),
        204
    );
    let r = s
        .app
        .client
        .get(s.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "revoked tokens stop working");
    let audit: serde_json::Value = s
        .send("GET", "/api/v1/audit", None)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"token.create") && actions.contains(&"token.revoke"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn settings_pages_render_and_keep_input_on_errors() {
    let s = signed_in_app("root@pam", true).await;
    for path in ["/settings/clusters", "/settings/tokens", "/audit"] {
        let r = s
            .app
            .client
            .get(s.url(path))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("aria-current=\"page\""),
            "{path} marks its nav entry"
        );
    }
    let r = s
        .app
        .client
        .post(s.url("/settings/clusters"))
        .header("cookie", &s.cookie)
        .form(&[
            ("csrf_token", s.csrf.as_str()),
            ("name", "my lab!"),
            ("url", "https://typed.example:8006"),
            ("token_id", "root@pam!x"),
            ("token_secret", "s3cr3t"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("value=\"my lab!\"") && html.contains("value=\"https://typed.example:8006\""),
        "typed values kept"
    );
    assert!(!html.contains("s3cr3t"), "secrets are not echoed");
    assert!(html.contains("aria-invalid=\"true\""));
}

/// The audit rule: an action that cannot be audited is not reported as done. With the audit
/// log refusing writes, creating a token answers 503 and never shows a secret, a bucket change
/// answers 503 (web and API alike), and reading the log says why.
#[tokio::test]
async fn an_action_that_cannot_be_audited_is_not_reported_as_done() {
    let s = signed_in_app("root@pam", true).await;
    let pool = sqlx::SqlitePool::connect(&s.app.state.config.database_url())
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'audit log unavailable (test)'); END",
    )
    .execute(&pool)
    .await
    .unwrap();

    let r = s
        .send("POST", "/api/v1/tokens", Some(json!({ "name": "ci" })))
        .await;
    assert_eq!(r.status(), 503, "no token without its audit entry");
    let body = r.text().await.unwrap();
    assert!(!body.contains("ctf_"), "the secret is never shown: {body}");
    assert!(
        body.contains("audit log"),
        "the error names the audit log: {body}"
    );

    let r = s
        .send(
            "POST",
            "/api/v1/buckets",
            Some(json!({ "name": "web-base" })),
        )
        .await;
    assert_eq!(r.status(), 503, "API: not reported as created");
    let r = s
        .app
        .client
        .post(s.url("/buckets"))
        .header("cookie", &s.cookie)
        .form(&[
            ("csrf_token", s.csrf.as_str()),
            ("name", "other"),
            ("description", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "web: the same use-case, the same rule");

    sqlx::query("DROP TRIGGER audit_refused")
        .execute(&pool)
        .await
        .unwrap();
    let r = s
        .send("POST", "/api/v1/tokens", Some(json!({ "name": "ci-2" })))
        .await;
    assert_eq!(r.status(), 201, "works again once the audit log does");
}

/// A node's SSH host key is used only once an admin confirmed it: Test shows what each node
/// presents, nothing reaches an unconfirmed node, Confirm pins the key (audited), a node that
/// presents another key is refused, and a new address drops the pin.
#[tokio::test]
async fn node_host_keys_must_be_confirmed_before_ctforge_connects() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(2).with_containers(4)).await;
    let bootstrap = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![bootstrap];
        c.provisioning.ssh_trust_on_first_use = false;
    })
    .await;
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let send = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let mut r = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let cluster = app.state.store.get_cluster_by_name("sim").await.unwrap();
    let id = cluster.id;
    let key_of = |node: &str| {
        sim.ssh_nodes
            .iter()
            .find(|n| n.node == node)
            .unwrap()
            .fingerprint
            .clone()
    };
    let on_pve2 = sim
        .state()
        .lock()
        .cts
        .values()
        .find(|c| c.node == "pve2")
        .map(|c| c.vmid)
        .expect("a CT on pve2");
    let run = |vmid: u32| {
        let state = app.state.clone();
        let cluster = cluster.clone();
        async move {
            let session = state.guests.connect(&cluster).await.unwrap();
            let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
            session
                .channel(vmid, None)
                .exec("true", &mut ignore)
                .await
                .map(|o| o.exit_code)
                .map_err(|e| e.to_string())
        }
    };

    // Test: every node answers, shows its key, none is confirmed yet.
    let report: serde_json::Value = send("POST", &format!("/api/v1/clusters/{id}/test"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = report["ssh_nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{report}");
    for n in nodes {
        let node = n["node"].as_str().unwrap();
        assert_eq!(n["reachable"], true, "{n}");
        assert_eq!(n["confirmed"], false, "{n}");
        assert_eq!(n["host_key"], key_of(node).as_str(), "{n}");
    }
    assert!(
        report["ssh_error"]
            .as_str()
            .unwrap()
            .contains("not confirmed"),
        "{report}"
    );
    // The edit page lists the nodes with what they presented to Test.
    let page = send("GET", &format!("/settings/clusters/{id}/edit"), None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Nodes (SSH)") && page.contains("not confirmed"),
        "{page}"
    );

    // Nothing is sent to an unconfirmed node; the error says what to do.
    let err = run(on_pve2).await.unwrap_err();
    assert!(
        err.contains("not confirmed") && err.contains(&key_of("pve2")),
        "{err}"
    );
    assert!(
        sim.state().ssh_commands_for("pve2", on_pve2).is_empty(),
        "no command reached pve2"
    );

    // Confirm pve2 through the settings form (CSRF field like every form), pve1 by the API.
    let r = app
        .client
        .post(format!(
            "{}/settings/clusters/{id}/nodes/pve2/host-key",
            app.address
        ))
        .header("cookie", &s.cookie)
        .form(&[("host_key", key_of("pve2")), ("csrf_token", s.csrf.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let r = send(
        "POST",
        &format!("/api/v1/clusters/{id}/nodes/pve1/host-key"),
        Some(json!({ "host_key": key_of("pve1") })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let view: serde_json::Value = r.json().await.unwrap();
    assert_eq!(view["host_key"], key_of("pve1").as_str());
    let report: serde_json::Value = send("POST", &format!("/api/v1/clusters/{id}/test"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(report["ssh_error"].is_null(), "{report}");
    assert!(
        report["ssh_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["confirmed"] == true),
        "{report}"
    );
    assert_eq!(run(on_pve2).await, Ok(0));
    assert!(!sim.state().ssh_commands_for("pve2", on_pve2).is_empty());

    // A node presenting another key than the confirmed one is refused, and Test says so.
    let r = send(
        "POST",
        &format!("/api/v1/clusters/{id}/nodes/pve2/host-key"),
        Some(json!({ "host_key": key_of("pve1") })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let err = run(on_pve2).await.unwrap_err();
    assert!(err.contains("changed"), "{err}");
    let report: serde_json::Value = send("POST", &format!("/api/v1/clusters/{id}/test"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pve2 = report["ssh_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "pve2")
        .unwrap()
        .clone();
    assert_eq!(pve2["confirmed"], false, "{pve2}");
    assert!(
        pve2["error"]
            .as_str()
            .unwrap()
            .contains("not the confirmed key"),
        "{pve2}"
    );

    // Invalid input names the field; a new address drops the pin.
    let r = send(
        "PUT",
        &format!("/api/v1/clusters/{id}/nodes/pve2/ssh"),
        Some(json!({ "address": "bad host!" })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(err["fields"]["address"].is_string(), "{err}");
    let r = send(
        "POST",
        &format!("/api/v1/clusters/{id}/nodes/pve2/host-key"),
        Some(json!({ "host_key": "SHA256:short" })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let port = sim.ssh_addr.unwrap().port();
    let r = send(
        "PUT",
        &format!("/api/v1/clusters/{id}/nodes/pve2/ssh"),
        Some(json!({ "address": "127.0.0.2", "port": port })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let view: serde_json::Value = r.json().await.unwrap();
    assert_eq!(view["address"], "127.0.0.2");
    assert!(
        view["host_key"].is_null(),
        "a new address needs a new confirmation: {view}"
    );

    let audit: serde_json::Value = send("GET", "/api/v1/audit?action=cluster.ssh_host_key", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"].as_array().unwrap().len(), 3, "{audit}");
    let audit: serde_json::Value = send("GET", "/api/v1/audit?action=cluster.node_ssh", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}
