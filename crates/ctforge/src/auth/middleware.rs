//! The gate in front of every protected route: who is this (session cookie or API token), and
//! for state changes by cookie, does the request carry the session's CSRF token?
//! Anonymous page requests are redirected to `/login?next=…`; anonymous API requests get 401.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{COOKIE, hash_token};
use super::{AuthMethod, CurrentUser};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;

/// Largest form body the CSRF check buffers.
const FORM_LIMIT: usize = 4 * 1024 * 1024;

/// Reads one cookie from the request.
pub fn cookie<'a>(req: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    req.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Resolves the user of a request, if any.
pub async fn identify(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<CurrentUser>, AppError> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return match state.store.use_api_token(&hash_token(token.trim())).await {
            Ok(row) => {
                // A token acts as its owner on the cluster it was created for (older tokens:
                // the default cluster).
                let cluster_id = match row.cluster_id {
                    Some(id) => Some(id),
                    None => super::login::pick_cluster(state, None)
                        .await
                        .ok()
                        .map(|c| c.id),
                };
                let token_caps =
                    Some(super::permissions::for_user(state, &row.username, cluster_id).await);
                let roles = match cluster_id {
                    Some(id) => {
                        crate::roles::resolve(
                            &state.config,
                            state.store.as_ref(),
                            &row.username,
                            id,
                        )
                        .await?
                    }
                    None => crate::roles::Roles::default(),
                };
                Ok(Some(CurrentUser {
                    username: row.username,
                    method: AuthMethod::ApiToken { token_id: row.id },
                    ticket: None,
                    token_caps,
                    roles,
                }))
            }
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let Some(token) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    let id_hash = hash_token(token);
    let now = state.clock.now_ms();
    let Some(row) = state
        .sessions
        .get(&id_hash, now)
        .await
        .map_err(|e| AppError::Internal(e.into()))?
    else {
        return Ok(None);
    };
    if row.csrf_token.is_empty() {
        // A sign-in still waiting for its second factor is not a session.
        return Ok(None);
    }
    let data = match super::login::open(state, &row.data_sealed) {
        Ok(data) => data,
        Err(_) => return Ok(None),
    };
    let data = renew_if_needed(state, &row, data).await;
    let roles = crate::roles::resolve(
        &state.config,
        state.store.as_ref(),
        &row.username,
        data.cluster_id,
    )
    .await?;
    Ok(Some(CurrentUser {
        username: row.username,
        method: AuthMethod::Session {
            id_hash,
            csrf_token: row.csrf_token,
        },
        ticket: Some(data),
        token_caps: None,
        roles,
    }))
}

/// Renews the Proxmox ticket of an active session before it expires; on failure the session
/// simply ends with its ticket.
async fn renew_if_needed(
    state: &AppState,
    row: &crate::storage::model::SessionRow,
    data: super::SessionData,
) -> super::SessionData {
    let now_s = state.clock.now_ms() / 1000;
    if now_s - data.issued_at < 105 * 60 {
        return data;
    }
    let Ok(cluster) = state.store.get_cluster(data.cluster_id).await else {
        return data;
    };
    let ticket = crate::pve::to_ticket(&data, &row.username);
    match ctforge_pve::renew(&crate::pve::base_config(&cluster), &ticket).await {
        Ok(renewed) => {
            let mut new_data = crate::pve::from_ticket(cluster.id, &renewed);
            new_data.issued_at = now_s;
            let mut new_row = row.clone();
            new_row.expires_at = now_s * 1000 + 2 * 60 * 60 * 1000;
            if let Ok(sealed) = super::login::seal(state, &new_data) {
                new_row.data_sealed = sealed;
                if let Err(e) = state.sessions.put(&new_row, state.clock.now_ms()).await {
                    tracing::warn!(error = %e, "cannot store renewed session");
                }
            }
            tracing::debug!(user = %row.username, "proxmox ticket renewed");
            new_data
        }
        Err(e) => {
            tracing::warn!(user = %row.username, error = %e, "proxmox ticket renewal failed");
            data
        }
    }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Middleware for protected routes.
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let user = match identify(&state, req.headers()).await {
        Ok(Some(user)) => user,
        Ok(None) => return unauthenticated(&req),
        Err(e) => return e.into_response(),
    };
    let mut req = req;
    if let AuthMethod::Session { csrf_token, .. } = &user.method
        && !is_safe(req.method())
    {
        match check_csrf(req, csrf_token).await {
            Ok(checked) => req = checked,
            Err(response) => return *response,
        }
    }
    req.extensions_mut().insert(user.clone());
    let mut response = next.run(req).await;
    // The error pages (`web::errors`) render the navigation for this user.
    response.extensions_mut().insert(user);
    response
}

fn unauthenticated(req: &Request) -> Response {
    let path = req.uri().path();
    if is_api(path) || !is_safe(req.method()) {
        return AppError::Unauthorized.into_response();
    }
    let next = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = format!(
        "/login?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    Redirect::to(&target).into_response()
}

/// Accepts the request if it carries the CSRF token in `X-CSRF-Token` or, for URL-encoded
/// forms, in the `csrf_token` field (the body is buffered and handed on unchanged).
async fn check_csrf(req: Request, expected: &str) -> Result<Request, Box<Response>> {
    let forbidden = || {
        Box::new(
            AppError::Forbidden(
                "missing or wrong CSRF token; reload the page and try again".to_owned(),
            )
            .into_response(),
        )
    };
    if let Some(header) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return if constant_time_eq(header, expected) {
            Ok(req)
        } else {
            Err(forbidden())
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(forbidden());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| Box::new((StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response()))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let ok = fields
        .iter()
        .any(|(k, v)| k == "csrf_token" && constant_time_eq(v, expected));
    if !ok {
        return Err(forbidden());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
