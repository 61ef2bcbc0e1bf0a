//! `/api/v1/containers`: the dashboard listing, lifecycle actions and credential reveal.
//!
//! `{id}` is ctforge's container id (`42`) for managed containers, or `<cluster>:<vmid>`
//! (`lab:105`, URL-encoded as needed) for any container, managed or not — see
//! [`crate::containers`]. Examples:
//!
//! - `GET /api/v1/containers?status=running&node=pve1&tag=web&template=nginx&q=db&page=2`
//! - `POST /api/v1/containers/42/start`, `POST /api/v1/containers/lab:105/stop`
//! - `POST /api/v1/containers/42/shutdown?timeout=30` (then force stop; both recorded)
//! - `DELETE /api/v1/containers/42` (stop if running, purge, remove the record);
//!   `DELETE /api/v1/containers/42?record_only=true` removes only the record (Proxmox down)
//! - `POST /api/v1/containers/42/credentials/reveal` with `{"name": "admin-password"}`
//! - `POST /api/v1/containers/bulk` with `{"action": "stop", "ids": ["42", "lab:105"],
//!   "timeout": 60}`: 202 with the job (`/api/v1/jobs/{id}` then lists a result per container);
//!   422 names each invalid field
//! - `GET /api/v1/containers/42/services`: the tracked services as last checked (state, port,
//!   web link: `url`, `web_title`, `web_answered`, `web_checked_at`) and credential names.
//! - `POST /api/v1/containers/42/services/refresh`: re-checks services, ports, credentials and
//!   the config-manager now (one batched SSH command); the answer has per-part errors, the
//!   updated services (with web links) and the events recorded. 409 when the CT is not
//!   running, 503 when the check could not run at all (SSH).
//!
//! Actions answer 200 with the outcome once the Proxmox task finished; 409 when another action
//! holds the container's lock or the state forbids the action; 403 with Proxmox's own text
//! when the user's ticket lacks the privilege.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::CurrentUser;
use crate::containers::lifecycle::{self, Action, Options, Outcome};
use crate::containers::listing::{self, Filter, Listing};
use crate::containers::monitor::{self, RefreshView};
use crate::containers::{bulk as bulk_actions, credentials, resolve};
use crate::error::AppError;
use crate::state::AppState;

/// `GET /api/v1/containers`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(filter): Query<Filter>,
) -> Result<Json<Listing>, AppError> {
    Ok(Json(listing::list(&state, &user, &filter).await?))
}

/// Query parameters of the actions.
#[derive(Debug, Default, Deserialize)]
pub struct ActionQuery {
    /// Shutdown timeout in seconds (default 60).
    #[serde(default)]
    pub timeout: Option<String>,
    /// `true` to delete only ctforge's record.
    #[serde(default)]
    pub record_only: Option<String>,
}

impl ActionQuery {
    fn options(&self) -> Result<Options, AppError> {
        let timeout = match self
            .timeout
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => lifecycle::DEFAULT_SHUTDOWN_TIMEOUT,
            Some(t) => t
                .parse::<u32>()
                .ok()
                .filter(|t| *t <= lifecycle::MAX_SHUTDOWN_TIMEOUT)
                .ok_or_else(|| {
                    AppError::invalid(format!(
                        "timeout {t:?} must be whole seconds from 0 to {}",
                        lifecycle::MAX_SHUTDOWN_TIMEOUT
                    ))
                })?,
        };
        let record_only = match self.record_only.as_deref().map(str::trim) {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => {
                return Err(AppError::invalid(format!(
                    "record_only {other:?} must be true or false"
                )));
            }
        };
        Ok(Options {
            timeout,
            record_only,
        })
    }
}

async fn act(
    state: AppState,
    remote: SocketAddr,
    user: CurrentUser,
    id: String,
    query: ActionQuery,
    action: Action,
) -> Result<Json<Outcome>, AppError> {
    let opts = query.options()?;
    let target = resolve(&state, &id).await?;
    let outcome = lifecycle::run(
        &state,
        &user,
        &remote.ip().to_string(),
        &target,
        action,
        opts,
    )
    .await?;
    Ok(Json(outcome))
}

macro_rules! action_handlers {
    ($($name:ident => $action:expr),* $(,)?) => {$(
        /// Runs the lifecycle action on container `{id}` and waits for the Proxmox task.
        pub async fn $name(
            State(state): State<AppState>,
            ConnectInfo(remote): ConnectInfo<SocketAddr>,
            axum::Extension(user): axum::Extension<CurrentUser>,
            Path(id): Path<String>,
            Query(query): Query<ActionQuery>,
        ) -> Result<Json<Outcome>, AppError> {
            act(state, remote, user, id, query, $action).await
        }
    )*};
}

action_handlers! {
    start => Action::Start,
    stop => Action::Stop,
    shutdown => Action::Shutdown,
    reboot => Action::Reboot,
    delete => Action::Delete,
}

/// Body of the reveal request.
#[derive(Debug, Deserialize)]
pub struct RevealRequest {
    /// Credential name.
    pub name: String,
}

/// `POST /api/v1/containers/{id}/credentials/reveal`: the decrypted value (audited).
pub async fn reveal(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(body): Json<RevealRequest>,
) -> Result<Json<Value>, AppError> {
    let target = resolve(&state, &id).await?;
    let plain =
        credentials::reveal(&state, &user, &remote.ip().to_string(), &target, &body.name).await?;
    Ok(Json(json!({ "name": body.name, "value": plain.expose() })))
}

/// A validation failure as `422 Unprocessable Entity` (same body as every error).
fn unprocessable(e: AppError) -> Response {
    let fields: serde_json::Map<String, Value> = match &e {
        AppError::Invalid { fields, .. } => {
            fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
        }
        _ => return e.into_response(),
    };
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let body = json!({ "error": e.to_string(), "status": status.as_u16(), "fields": fields });
    (status, Json(body)).into_response()
}

/// `POST /api/v1/containers/bulk`: queues one job running `action` on every listed container
/// and answers `202 Accepted` with the job's id and URLs.
pub async fn bulk(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: axum::body::Bytes,
) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return unprocessable(AppError::Invalid {
                message: format!("the body is not JSON ({e})"),
                fields: vec![(
                    "body".into(),
                    r#"send JSON like {"action": "stop", "ids": ["42", "lab:105"]}"#.into(),
                )],
            });
        }
    };
    let request = match bulk_actions::from_json(&value) {
        Ok(r) => r,
        Err(e) => return unprocessable(e),
    };
    match bulk_actions::submit(&state, &user, &remote.ip().to_string(), &request).await {
        Ok(id) => {
            let url = format!("/api/v1/jobs/{id}");
            (
                StatusCode::ACCEPTED,
                [(header::LOCATION, url.clone())],
                Json(json!({
                    "job_id": id,
                    "url": url,
                    "events": format!("/api/v1/jobs/{id}/events"),
                    "page": format!("/jobs/{id}"),
                    "action": request.action,
                    "count": request.ids.len(),
                })),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/containers/{id}/services/refresh`: the monitoring check, now.
pub async fn refresh_services(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<RefreshView>, AppError> {
    let target = resolve(&state, &id).await?;
    Ok(Json(monitor::refresh(&state, &user, &target).await?))
}

/// `GET /api/v1/containers/{id}/services`: the services as last checked, without checking.
pub async fn services(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let target = resolve(&state, &id).await?;
    let Some(record) = &target.record else {
        return Err(AppError::NotFound(format!(
            "services of unmanaged CT {} (ctforge only tracks containers it created)",
            target.vmid
        )));
    };
    if !user.can("vms", monitor::REFRESH_PRIVILEGE) {
        return Err(AppError::Forbidden(format!(
            "reading services needs {} on /vms/{}; ask an administrator",
            monitor::REFRESH_PRIVILEGE,
            target.vmid
        )));
    }
    let services = state.store.list_services(record.id).await?;
    let credentials: Vec<String> = state
        .store
        .list_credentials(record.id)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Ok(Json(json!({
        "id": record.id,
        "vmid": target.vmid,
        "services": services,
        "credentials": credentials,
    })))
}
