//! Route protection, CSRF and session stores over real HTTP and real databases/Redis.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::sync::Arc;

use ctforge::auth::SessionData;
use ctforge::auth::login::{SignIn, create_session};
use ctforge::auth::session::{DbSessions, RedisSessions, SessionStore};
use ctforge::clock::Clock;
use ctforge::storage::model::SessionRow;

fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{name}", "x")
}

async fn signed_in(app: &common::TestApp) -> (String, String) {
    let data = SessionData {
        cluster_id: common::home_cluster(&app.state).await,
        ticket: "PVE:root@pam:00000000::sig".into(),
        pve_csrf: "x".into(),
        cap: Default::default(),
        issued_at: app.state.clock.now_ms() / 1000,
        tfa_challenge: None,
    };
    match create_session(&app.state, data, "root@pam").await.unwrap() {
        SignIn::Done {
            token, csrf_token, ..
        } => (token, csrf_token),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn every_protected_route_rejects_anonymous_requests() {
    let app = common::spawn_app("sqlite").await;
    let table = ctforge::startup::route_table();
    assert!(table.iter().filter(|r| !r.public).count() >= 4);
    for route in table.iter().filter(|r| !r.public) {
        {
            let method = &route.method;
            let url = format!("{}{}", app.address, concrete(route.path));
            let response = app
                .client
                .request(method.parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if route.path.starts_with("/api/") || *method != "GET" {
                assert_eq!(status, 401, "{method} {} must answer 401", route.path);
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["status"], 401);
            } else {
                assert_eq!(
                    status, 303,
                    "{method} {} must redirect to login",
                    route.path
                );
                let location = response.headers()["location"].to_str().unwrap();
                assert!(location.starts_with("/login?next="), "{location}");
            }
        }
    }
    // Public routes stay reachable.
    for path in ["/healthz", "/readyz", "/static/app.css", "/login"] {
        let status = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{path}");
    }
    // An unknown bearer token is rejected like no token.
    let response = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn state_changes_by_cookie_need_the_csrf_token() {
    let app = common::spawn_app("sqlite").await;
    let (token, csrf) = signed_in(&app).await;
    let cookie = format!("ctforge_session={token}");
    for route in ctforge::startup::route_table().iter().filter(|r| !r.public) {
        for method in
            std::iter::once(&route.method).filter(|m| !matches!(**m, "GET" | "HEAD" | "OPTIONS"))
        {
            let url = format!("{}{}", app.address, concrete(route.path));
            let response = app
                .client
                .request(method.parse().unwrap(), &url)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                403,
                "{method} {} without CSRF token",
                route.path
            );
            let response = app
                .client
                .request(method.parse().unwrap(), &url)
                .header("cookie", &cookie)
                .header("x-csrf-token", "wrong")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                403,
                "{method} {} with a wrong CSRF token",
                route.path
            );
            let response = app
                .client
                .request(method.parse().unwrap(), &url)
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("csrf_token=wrong")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                403,
                "{method} {} with a wrong form token",
                route.path
            );
        }
    }
    // The session works for reads, and the right token in a form field is accepted.
    let me: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "root@pam");
    assert_eq!(me["csrf_token"], csrf.as_str());
    let response = app
        .client
        .post(format!("{}/logout", app.address))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("Max-Age=0") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    // Logout destroyed the session: the old cookie no longer works.
    let response = app
        .client
        .get(format!("{}/api/v1/auth/me", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "logout" && e.actor == "root@pam")
    );
}

#[tokio::test]
async fn login_next_only_honours_same_site_targets() {
    use ctforge::web::login::safe_next;
    assert_eq!(
        safe_next(Some("/containers/1?tab=x")),
        "/containers/1?tab=x"
    );
    for bad in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil",
        "evil",
        "",
    ] {
        assert_eq!(safe_next(Some(bad)), "/", "{bad}");
    }
}

async fn session_store_suite(store: Arc<dyn SessionStore>, now: i64) {
    let row = SessionRow {
        id_hash: format!("h{}", uuid::Uuid::new_v4().simple()),
        username: "root@pam".into(),
        data_sealed: "v1:k:x".into(),
        csrf_token: "c".into(),
        expires_at: now + 60_000,
        created_at: now,
    };
    assert!(store.get(&row.id_hash, now).await.unwrap().is_none());
    store.put(&row, now).await.unwrap();
    assert_eq!(store.get(&row.id_hash, now).await.unwrap().unwrap(), row);
    assert!(store.count(now).await.unwrap() >= 1);
    let mut renewed = row.clone();
    renewed.data_sealed = "v1:k:y".into();
    store.put(&renewed, now).await.unwrap();
    assert_eq!(
        store
            .get(&row.id_hash, now)
            .await
            .unwrap()
            .unwrap()
            .data_sealed,
        "v1:k:y"
    );
    store.delete(&row.id_hash).await.unwrap();
    assert!(store.get(&row.id_hash, now).await.unwrap().is_none());
}

#[tokio::test]
async fn database_session_store_sqlite() {
    let (store, clock, _dir) = common::fresh_store("sqlite").await;
    session_store_suite(Arc::new(DbSessions(store)), clock.now_ms()).await;
}

#[tokio::test]
async fn database_session_store_postgres() {
    let (store, clock, _dir) = common::fresh_store("postgres").await;
    session_store_suite(Arc::new(DbSessions(store)), clock.now_ms()).await;
}

#[tokio::test]
async fn redis_session_store() {
    let url =
        std::env::var("CTFORGE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("ctforge-test-{}:", uuid::Uuid::new_v4().simple());
    let store = RedisSessions::connect(&url, &prefix)
        .await
        .unwrap_or_else(|e| panic!("Redis must run for the tests ({url}): {e}"));
    session_store_suite(Arc::new(store), ctforge::clock::SystemClock.now_ms()).await;
}
