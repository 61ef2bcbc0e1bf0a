//! `/api/v1/auth/login`, `/api/v1/auth/logout`, `/api/v1/auth/me`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::login::{LoginError, LoginInput, SignIn, done_json};
use crate::auth::session::{COOKIE, session_cookie};
use crate::auth::{AuthMethod, CurrentUser};
use crate::error::AppError;
use crate::state::AppState;

/// Maps sign-in failures to responses.
pub fn login_error_response(e: LoginError) -> Response {
    match e {
        LoginError::Failed => (StatusCode::UNAUTHORIZED, Json(json!({ "error": crate::auth::login::FAILED, "status": 401 }))).into_response(),
        LoginError::RateLimited(s) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, s.to_string())],
            Json(json!({ "error": format!("too many failed sign-ins; try again in {s} s"), "status": 429 })),
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
    match crate::auth::login::sign_in(&state, &input, &remote.ip().to_string()).await {
        Ok(SignIn::Done { token, csrf_token, username, expires_at }) => {
            let max_age = (expires_at - state.clock.now_ms()) / 1000;
            let cookie = session_cookie(COOKIE, &token, max_age, &headers);
            ([(header::SET_COOKIE, cookie)], Json(done_json(&username, &csrf_token, expires_at))).into_response()
        }
        Ok(SignIn::NeedSecondFactor { .. }) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "second factor required: repeat the request with \"otp\"", "tfa_required": true, "status": 401 })),
        )
            .into_response(),
        Err(e) => login_error_response(e),
    }
}

/// `POST /api/v1/auth/logout`: destroys the session.
pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Response, AppError> {
    if let AuthMethod::Session { id_hash, .. } = &user.method {
        crate::auth::login::sign_out(&state, id_hash, &user.username, &remote.ip().to_string())
            .await?;
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], Json(json!({ "ok": true }))).into_response())
}

/// `GET /api/v1/auth/me`: who is signed in, with the CSRF token for cookie clients.
pub async fn me(axum::Extension(user): axum::Extension<CurrentUser>) -> Json<serde_json::Value> {
    Json(json!({
        "username": user.username,
        "csrf_token": user.csrf_token(),
        "via": match user.method { AuthMethod::Session { .. } => "session", AuthMethod::ApiToken { .. } => "token" },
    }))
}
