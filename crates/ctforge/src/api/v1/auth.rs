//! `/api/v1/auth/login`, `/api/v1/auth/logout`, `/api/v1/auth/me`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::login::{LoginError, LoginInput, SignIn};
use crate::auth::session::{COOKIE, session_cookie};
use crate::auth::{AuthMethod, CurrentUser};
use crate::error::{AppError, ErrorBody};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The auth routes.
pub fn routes(r: Routes) -> Routes {
    r.public_post(
        "/api/v1/auth/login",
        login,
        Doc::json::<SignedIn>().body::<LoginInput>(),
    )
    .post("/api/v1/auth/logout", logout, Doc::json::<LoggedOut>())
    .get("/api/v1/auth/me", me, Doc::json::<Me>())
}

/// `401` when the user has a second factor and the request had no `otp`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SecondFactorRequired {
    /// The error document.
    #[serde(flatten)]
    pub body: ErrorBody,
    /// Always true: repeat the request with `otp`.
    pub tfa_required: bool,
}

/// A successful sign-in (the session cookie is set too).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SignedIn {
    /// Proxmox user id (`root@pam`).
    pub username: String,
    /// Send it as `X-CSRF-Token` on state changes made with the cookie.
    pub csrf_token: String,
    /// Session expiry, Unix milliseconds.
    pub expires_at: i64,
}

/// The answer of a sign-out.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct LoggedOut {
    /// Always true.
    pub ok: bool,
}

/// How the caller authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The session cookie.
    Session,
    /// An API token.
    Token,
}

/// Who is signed in.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Me {
    /// Proxmox user id.
    pub username: String,
    /// CSRF token (cookie sessions only).
    pub csrf_token: Option<String>,
    /// How the caller authenticated.
    pub via: Via,
    /// ctforge roles of this identity (the user on the cluster it signed in to).
    #[serde(default)]
    pub roles: Vec<crate::roles::Role>,
}

/// Maps sign-in failures to responses.
pub fn login_error_response(e: LoginError) -> Response {
    match e {
        LoginError::Failed => (
            StatusCode::UNAUTHORIZED,
            Json(ErrorBody::new(
                StatusCode::UNAUTHORIZED,
                crate::auth::login::FAILED,
            )),
        )
            .into_response(),
        LoginError::RateLimited(s) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, s.to_string())],
            Json(ErrorBody::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed sign-ins; try again in {s} s"),
            )),
        )
            .into_response(),
        LoginError::Other(e) => e.into_response(),
    }
}

/// `POST /api/v1/auth/login` with `{"username","password","realm","otp"?}`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginInput>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(input) = match body {
        Ok(body) => body,
        Err(rejection) => return AppError::invalid(rejection.body_text()).into_response(),
    };
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
            token,
            csrf_token,
            username,
            expires_at,
        }) => {
            let max_age = (expires_at - state.clock.now_ms()) / 1000;
            let cookie = session_cookie(
                COOKIE,
                &token,
                max_age,
                state.config.server.secure_cookies(&headers),
            );
            (
                [(header::SET_COOKIE, cookie)],
                Json(SignedIn {
                    username,
                    csrf_token,
                    expires_at,
                }),
            )
                .into_response()
        }
        Ok(SignIn::NeedSecondFactor { .. }) => (
            StatusCode::UNAUTHORIZED,
            Json(SecondFactorRequired {
                body: ErrorBody::new(
                    StatusCode::UNAUTHORIZED,
                    "second factor required: repeat the request with \"otp\"",
                ),
                tfa_required: true,
            }),
        )
            .into_response(),
        Err(e) => login_error_response(e),
    }
}

/// `POST /api/v1/auth/logout`: destroys the session.
pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Response, AppError> {
    if let AuthMethod::Session { id_hash, .. } = &user.method {
        crate::auth::login::sign_out(
            &state,
            id_hash,
            &user.username,
            &state
                .config
                .server
                .client_addr(remote.ip(), &headers)
                .to_string(),
        )
        .await?;
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Json(LoggedOut { ok: true })).into_response())
}

/// `GET /api/v1/auth/me`: who is signed in, with the CSRF token for cookie clients.
pub async fn me(axum::Extension(user): axum::Extension<CurrentUser>) -> Json<Me> {
    Json(Me {
        csrf_token: user.csrf_token().map(str::to_owned),
        via: match user.method {
            AuthMethod::Session { .. } => Via::Session,
            AuthMethod::ApiToken { .. } => Via::Token,
        },
        roles: user.roles.held(),
        username: user.username,
    })
}
