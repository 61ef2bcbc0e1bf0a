//! The sign-in pages: `/login` (user, password, realm), `/login/tfa` (TOTP code), `/logout`.
//! A rejected form keeps what the user typed (except the password).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::login::{LoginError, LoginInput, SignIn};
use crate::auth::middleware::cookie;
use crate::auth::session::COOKIE;
use crate::auth::session::session_cookie;
use crate::auth::{AuthMethod, CurrentUser};
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone, Viewer};

/// Cookie of a sign-in waiting for its second factor.
const TFA_COOKIE: &str = "ctforge_tfa";

/// Only same-site, path-absolute targets are honoured.
pub fn safe_next(next: Option<&str>) -> String {
    super::redirect::local_or_root(next)
}

/// Query of `GET /login`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    /// The cluster to sign in to (a session belongs to one cluster; acting on another one
    /// links here with its name).
    cluster: Option<String>,
}

/// The form of `POST /login`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    realm: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    cluster: String,
}

async fn realms(state: &AppState) -> (Vec<(String, String)>, Option<String>) {
    let fallback = vec![
        (
            "pam".to_owned(),
            "Linux PAM standard authentication".to_owned(),
        ),
        (
            "pve".to_owned(),
            "Proxmox VE authentication server".to_owned(),
        ),
    ];
    let cluster = match crate::auth::login::pick_cluster(state, None).await {
        Ok(c) => c,
        Err(e) => return (fallback, Some(e.to_string())),
    };
    let client = match state.pve.anonymous(&cluster) {
        Ok(c) => c,
        Err(e) => return (fallback, Some(e.to_string())),
    };
    match client.access_domains().await {
        Ok(domains) if !domains.is_empty() => (
            domains
                .into_iter()
                .map(|d| {
                    let label = d
                        .comment
                        .clone()
                        .filter(|c| !c.is_empty())
                        .unwrap_or_else(|| d.realm.clone());
                    (d.realm, label)
                })
                .collect(),
            None,
        ),
        Ok(_) => (fallback, None),
        Err(e) => (
            fallback,
            Some(format!(
                "cannot reach Proxmox cluster {}: {e}",
                cluster.name
            )),
        ),
    }
}

fn login_page(
    realm_list: &[(String, String)],
    warning: Option<&str>,
    error: Option<&str>,
    form: &LoginForm,
) -> Markup {
    let viewer = Viewer::default();
    let realm = if form.realm.is_empty() {
        "pam"
    } else {
        form.realm.as_str()
    };
    ui::layout(
        "Sign in",
        "/login",
        &viewer,
        html! {
            div.login.card.stack {
                h1 { "Sign in" }
                p.muted { "Use your Proxmox VE account." }
                @if let Some(w) = warning { (ui::alert(Tone::Warn, w)) }
                @if let Some(e) = error { (ui::alert(Tone::Err, e)) }
                form.form method="post" action="/login" {
                    input type="hidden" name="next" value=(form.next);
                    @if !form.cluster.is_empty() {
                        input type="hidden" name="cluster" value=(form.cluster);
                        p.muted { "Cluster " strong { (form.cluster) } }
                    }
                    (ui::field(&Field { value: &form.username, required: true, autocomplete: Some("username"), ..Field::new("username", "User name") }))
                    (ui::field(&Field { kind: "password", required: true, autocomplete: Some("current-password"), ..Field::new("password", "Password") }))
                    (ui::select("realm", "Realm", realm_list, realm, None))
                    button.btn.btn-primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// `GET /login`.
pub async fn show(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    // Signing in to a named cluster is offered even to a session of another one.
    if query.cluster.is_none()
        && let Ok(Some(_)) = crate::auth::middleware::identify(&state, &headers).await
    {
        return Redirect::to(&safe_next(query.next.as_deref())).into_response();
    }
    let (list, warning) = realms(&state).await;
    let form = LoginForm {
        next: safe_next(query.next.as_deref()),
        cluster: query.cluster.unwrap_or_default(),
        ..Default::default()
    };
    login_page(&list, warning.as_deref(), None, &form).into_response()
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let input = LoginInput {
        username: form.username.clone(),
        password: form.password.clone(),
        realm: Some(form.realm.clone()),
        otp: None,
        cluster: Some(form.cluster.clone()).filter(|c| !c.is_empty()),
    };
    let next = safe_next(Some(&form.next));
    match crate::auth::login::sign_in(
        &state,
        &input,
        &state
            .config
            .server
            .client_addr(remote.ip(), &headers)
            .to_string(),
    )
    .await
    {
        Ok(SignIn::Done {
            token, expires_at, ..
        }) => {
            let cookie = session_cookie(
                COOKIE,
                &token,
                (expires_at - state.clock.now_ms()) / 1000,
                state.config.server.secure_cookies(&headers),
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Ok(SignIn::NeedSecondFactor { pending_token }) => {
            let cookie = session_cookie(
                TFA_COOKIE,
                &pending_token,
                300,
                state.config.server.secure_cookies(&headers),
            );
            let target = format!(
                "/login/tfa?next={}",
                url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&target)).into_response()
        }
        Err(e) => {
            let status = match &e {
                LoginError::Failed => StatusCode::UNAUTHORIZED,
                LoginError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                LoginError::Other(inner) => inner.status(),
            };
            let (list, warning) = realms(&state).await;
            let kept = LoginForm {
                password: String::new(),
                next,
                ..form
            };
            (
                status,
                login_page(&list, warning.as_deref(), Some(&e.to_string()), &kept),
            )
                .into_response()
        }
    }
}

/// The form of `POST /login/tfa`.
#[derive(Debug, Default, Deserialize)]
pub struct TfaForm {
    #[serde(default)]
    otp: String,
    #[serde(default)]
    next: String,
}

fn tfa_page(error: Option<&str>, next: &str) -> Markup {
    ui::layout(
        "Second factor",
        "/login",
        &Viewer::default(),
        html! {
            div.login.card.stack {
                h1 { "Second factor" }
                p.muted { "Enter the code from your authenticator app." }
                @if let Some(e) = error { (ui::alert(Tone::Err, e)) }
                form.form method="post" action="/login/tfa" {
                    input type="hidden" name="next" value=(next);
                    (ui::field(&Field { required: true, autocomplete: Some("one-time-code"), ..Field::new("otp", "TOTP code") }))
                    button.btn.btn-primary type="submit" { "Verify" }
                }
                a href="/login" { "Start over" }
            }
        },
    )
}

/// `GET /login/tfa`.
pub async fn show_tfa(Query(query): Query<LoginQuery>) -> Markup {
    tfa_page(None, &safe_next(query.next.as_deref()))
}

/// `POST /login/tfa`.
pub async fn submit_tfa(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<TfaForm>,
) -> Response {
    let next = safe_next(Some(&form.next));
    let Some(pending) = cookie(&headers, TFA_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    match crate::auth::login::complete_second_factor(
        &state,
        pending,
        &form.otp,
        &state
            .config
            .server
            .client_addr(remote.ip(), &headers)
            .to_string(),
    )
    .await
    {
        Ok(SignIn::Done {
            token, expires_at, ..
        }) => {
            let session = session_cookie(
                COOKIE,
                &token,
                (expires_at - state.clock.now_ms()) / 1000,
                state.config.server.secure_cookies(&headers),
            );
            let clear = session_cookie(
                TFA_COOKIE,
                "",
                0,
                state.config.server.secure_cookies(&headers),
            );
            let mut response = Redirect::to(&next).into_response();
            for c in [session, clear] {
                if let Ok(v) = c.parse() {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Ok(SignIn::NeedSecondFactor { .. }) => Redirect::to("/login").into_response(),
        Err(e) => (
            StatusCode::UNAUTHORIZED,
            tfa_page(Some(&e.to_string()), &next),
        )
            .into_response(),
    }
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Response {
    if let AuthMethod::Session { id_hash, .. } = &user.method
        && let Err(e) = crate::auth::login::sign_out(
            &state,
            id_hash,
            &user.username,
            &state
                .config
                .server
                .client_addr(remote.ip(), &headers)
                .to_string(),
        )
        .await
    {
        return e.into_response();
    }
    let clear = session_cookie(COOKIE, "", 0, state.config.server.secure_cookies(&headers));
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}
