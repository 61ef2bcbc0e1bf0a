//! Sign-in with Proxmox identities over real HTTP against the simulator (TLS, pinned
//! fingerprint): PAM login, uniform failures with rate limiting, TOTP, logout, permissions.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge::config::{ClusterBootstrap, Secret};
use ctforge_pve_sim::SimHandle;

async fn sim() -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(
        r#"
        [[users]]
        userid = "bob@pve"
        password = "bobpw"
        role = "PVEVMAdmin"
        totp_secret = "JBSWY3DPEHPK3PXP"
        "#,
        |c| c.with_containers(3),
    )
    .await
}

fn cluster(sim: &SimHandle, fingerprint: &str) -> ClusterBootstrap {
    ClusterBootstrap {
        name: "sim".into(),
        url: sim.base_url.clone(),
        token_id: sim.token_id.clone(),
        token_secret: Some(Secret::new(sim.token_secret.clone())),
        token_secret_file: None,
        fingerprint: Some(fingerprint.to_owned()),
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
    let c = cluster(sim, &sim.fingerprint);
    common::spawn_app_with("sqlite", move |config| config.clusters = vec![c]).await
}

async fn login(app: &common::TestApp, body: serde_json::Value) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> String {
    let header = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    header.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn pam_login_session_and_logout() {
    let sim = sim().await;
    let app = app_for(&sim).await;
    let response = login(
        &app,
        serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }),
    )
    .await;
    if response.status() != 200 {
        panic!("login failed: {}", response.text().await.unwrap());
    }
    let cookie = session_cookie(&response);
    assert!(
        !cookie.contains("PVE:"),
        "the Proxmox ticket never reaches the browser"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["username"], "root@pam");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    // A fresh session id per login (no fixation).
    let again = login(
        &app,
        serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }),
    )
    .await;
    assert_ne!(session_cookie(&again), cookie);

    // The dashboard lists the simulator's containers through the user's own ticket.
    let page = app
        .client
        .get(format!("{}/?view=table", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<table"), "{html}");

    let out = app
        .client
        .post(format!("{}/api/v1/auth/logout", app.address))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let me = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "logout invalidates the cookie");
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"login") && actions.contains(&"logout"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn wrong_password_is_uniform_and_rate_limited() {
    let sim = sim().await;
    let app = app_for(&sim).await;
    let wrong_pw = login(
        &app,
        serde_json::json!({ "username": "root", "password": "nope", "realm": "pam" }),
    )
    .await;
    assert_eq!(wrong_pw.status(), 401);
    let wrong_pw: serde_json::Value = wrong_pw.json().await.unwrap();
    let no_user = login(
        &app,
        serde_json::json!({ "username": "ghost", "password": "nope", "realm": "pam" }),
    )
    .await;
    assert_eq!(no_user.status(), 401);
    let no_user: serde_json::Value = no_user.json().await.unwrap();
    assert_eq!(wrong_pw["error"], no_user["error"], "no user enumeration");
    let mut limited = false;
    for _ in 0..5 {
        let r = login(
            &app,
            serde_json::json!({ "username": "root", "password": "nope", "realm": "pam" }),
        )
        .await;
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited = true;
            break;
        }
    }
    assert!(limited, "repeated failures are rate limited");
    // Even the right password waits out the back-off.
    let r = login(
        &app,
        serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }),
    )
    .await;
    assert_eq!(r.status(), 429);
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    assert!(audit.iter().filter(|e| e.action == "login_failed").count() >= 3);
}

#[tokio::test]
async fn totp_second_factor() {
    let sim = sim().await;
    let app = app_for(&sim).await;
    let r = login(
        &app,
        serde_json::json!({ "username": "bob", "password": "bobpw", "realm": "pve" }),
    )
    .await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["tfa_required"], true);
    let r = login(&app, serde_json::json!({ "username": "bob", "password": "bobpw", "realm": "pve", "otp": "000000" })).await;
    assert_eq!(r.status(), 401, "a wrong code is refused");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = ctforge_pve_sim::auth::current_totp("JBSWY3DPEHPK3PXP", now).unwrap();
    let r = login(
        &app,
        serde_json::json!({ "username": "bob", "password": "bobpw", "realm": "pve", "otp": code }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["username"], "bob@pve");

    // The page flow: password, then the code on its own page.
    let r = app
        .client
        .post(format!("{}/login", app.address))
        .form(&[
            ("username", "bob"),
            ("password", "bobpw"),
            ("realm", "pve"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login/tfa")
    );
    let pending = session_cookie(&r);
    let code = ctforge_pve_sim::auth::current_totp("JBSWY3DPEHPK3PXP", now).unwrap();
    let r = app
        .client
        .post(format!("{}/login/tfa", app.address))
        .header("cookie", &pending)
        .form(&[("otp", code.as_str()), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookies: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ctforge_session=") && !c.starts_with("ctforge_session=;")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn rejected_login_form_keeps_the_user_name() {
    let sim = sim().await;
    let app = app_for(&sim).await;
    let r = app
        .client
        .post(format!("{}/login", app.address))
        .form(&[
            ("username", "typed-name"),
            ("password", "bad"),
            ("realm", "pve"),
            ("next", "/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("value=\"typed-name\""), "user name kept");
    assert!(!html.contains("value=\"bad\""), "password not echoed");
    assert!(html.contains("role=\"alert\""));
    // Realms come from the cluster.
    let page = app
        .client
        .get(format!("{}/login", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("value=\"pam\"") && page.contains("value=\"pve\""),
        "{page}"
    );
}

#[tokio::test]
async fn changed_certificate_is_refused_with_an_explanation() {
    let sim = sim().await;
    let wrong = "AA:".repeat(31) + "AA";
    let c = cluster(&sim, &wrong);
    let app = common::spawn_app_with("sqlite", move |config| config.clusters = vec![c]).await;
    let r = login(
        &app,
        serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }),
    )
    .await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["error"].as_str().unwrap().to_lowercase();
    assert!(message.contains("fingerprint"), "{message}");
}

#[tokio::test]
async fn session_survives_a_ticket_renewal() {
    let sim = sim().await;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = ctforge::clock::ManualClock::new(start);
    let c = cluster(&sim, &sim.fingerprint);
    let app = common::spawn_app_clocked(
        "sqlite",
        move |config| config.clusters = vec![c],
        None,
        clock.clone(),
    )
    .await;
    let response = login(
        &app,
        serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    let dashboard = |cookie: String| {
        let url = format!("{}/?view=table", app.address);
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(dashboard(cookie.clone()).await.contains("<table"));

    // 106 minutes later (both clocks): the ticket is due for renewal, and still valid.
    clock.advance(106 * 60 * 1000);
    sim.state().advance_clock(106 * 60);
    let me = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the request renews the ticket");

    // 30 minutes more: the original ticket has expired at Proxmox; the session still works,
    // through the renewed ticket.
    clock.advance(30 * 60 * 1000);
    sim.state().advance_clock(30 * 60);
    let html = dashboard(cookie.clone()).await;
    assert!(
        html.contains("<table") && !html.contains("unreachable"),
        "{html}"
    );
    let me = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Without use for longer than a ticket lives, the session ends with it.
    clock.advance(3 * 60 * 60 * 1000);
    let me = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
}
