//! `/api/v1/containers`: the dashboard listing, one container's read, lifecycle actions and
//! credential reveal (its event stream is `container_events.rs`). The list is containers only
//! (`/api/v1/guests`, `guests.rs`, lists both kinds through the same handlers); a guest named by
//! its id is read and acted on whatever its kind, so a VM created here from a vm template can
//! be followed here.
//!
//! `{id}` is ctforge's container id (`42`) for managed containers, or `<cluster>:<vmid>`
//! (`lab:105`, URL-encoded as needed) for any container, managed or not — see
//! [`crate::containers`]. Examples:
//!
//! - `GET /api/v1/containers?status=running&node=pve1&tag=web&template=nginx&q=db&page=2`
//! - `GET /api/v1/containers/42` or `GET /api/v1/containers/lab:105`: the list item's fields
//!   plus services, credential names, recent events, creation and last job, and the template
//!   (`template_ref`); 404 when neither ctforge nor Proxmox knows it
//! - `GET /api/v1/containers/42/events`: Server-Sent Events of its jobs and lifecycle
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
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::CurrentUser;
use crate::containers::lifecycle::{self, Action, Options, Outcome};
use crate::containers::listing::{self, Filter, Listing, Row};
use crate::containers::monitor::{self, RefreshView};
use crate::containers::{bulk as bulk_actions, credentials, resolve};
use crate::error::{AppError, ErrorBody};
use crate::routes::{Answer, Doc, Routes, schema};
use crate::state::AppState;
use crate::status::GuestKind;
use crate::storage::model::{ContainerEvent, ContainerService, JobFilter};

use super::jobs::JobView;

/// The container routes.
pub fn routes(r: Routes) -> Routes {
    let outcome = Doc::json::<Outcome>;
    r.get("/api/v1/containers", list, Doc::json::<Listing>())
        .get(
            "/api/v1/containers/{id}",
            show,
            Doc::json::<ContainerDetail>(),
        )
        .get(
            "/api/v1/containers/{id}/events",
            super::container_events::events,
            Doc::answer(Answer::Events {
                event: schema::<super::container_events::StreamEvent>,
                json: None,
            }),
        )
        .post(
            "/api/v1/containers/bulk",
            bulk,
            Doc::status::<BulkAccepted>(202).body_schema(bulk_request_schema),
        )
        .get(
            "/api/v1/containers/{id}/services",
            services,
            Doc::json::<ServicesView>(),
        )
        .post(
            "/api/v1/containers/{id}/services/refresh",
            refresh_services,
            Doc::json::<RefreshView>(),
        )
        .delete("/api/v1/containers/{id}", delete, outcome())
        .post("/api/v1/containers/{id}/start", start, outcome())
        .post("/api/v1/containers/{id}/stop", stop, outcome())
        .post("/api/v1/containers/{id}/shutdown", shutdown, outcome())
        .post("/api/v1/containers/{id}/reboot", reboot, outcome())
        .post(
            "/api/v1/containers/{id}/credentials/reveal",
            reveal,
            Doc::json::<Revealed>().body::<RevealRequest>(),
        )
}

/// The JSON schema of a bulk request (for `/api/v1/containers/bulk` and `/api/v1/guests/bulk`).
pub fn bulk_request_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action", "ids"],
        "properties": {
            "action": { "type": "string", "enum": ["start", "stop", "shutdown", "reboot", "delete"] },
            "ids": { "type": "array", "minItems": 1, "maxItems": bulk_actions::MAX_IDS, "uniqueItems": true, "items": { "type": "string", "description": "ctforge id (42) or <cluster>:<vmid> (lab:105)" } },
            "timeout": { "type": "integer", "minimum": 0, "maximum": lifecycle::MAX_SHUTDOWN_TIMEOUT, "description": "graceful shutdown timeout in seconds (shutdown only; default 60)" }
        },
        "additionalProperties": false
    })
}

/// A container event as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ContainerEventView {
    /// Event id (increasing).
    pub id: i64,
    /// `created`, `ready`, `started`, `service_down`, …
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Who caused it.
    pub actor: String,
    /// Extra data.
    pub data: Value,
    /// Unix milliseconds.
    pub at: i64,
}

impl From<&ContainerEvent> for ContainerEventView {
    fn from(e: &ContainerEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind.clone(),
            message: e.message.clone(),
            actor: e.actor.clone(),
            data: serde_json::from_str(&e.data_json).unwrap_or(Value::Null),
            at: e.created_at,
        }
    }
}

/// Recent events of a container and where to follow them.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventsSummary {
    /// The newest events, newest first (at most 10).
    pub recent: Vec<ContainerEventView>,
    /// The SSE stream of every provisioning and lifecycle event.
    pub stream: String,
}

/// The template a container was built from.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TemplateRef {
    /// Template id.
    pub id: i64,
    /// Name (`GET /api/v1/templates/{name}`).
    pub name: String,
    /// Display name.
    pub app: String,
    /// `name@<short sha>` for a git-sourced template, else the name.
    pub label: String,
    /// The repository and commit it was created from (git-sourced templates).
    pub git: Option<crate::templates::git::GitOrigin>,
}

/// `GET /api/v1/containers/{id}`: the list item plus services, events, jobs and template.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ContainerDetail {
    /// The same fields as an item of `GET /api/v1/containers`.
    #[serde(flatten)]
    pub item: Row,
    /// Tracked services as last checked (managed containers).
    pub services: Vec<ContainerService>,
    /// Names of the stored credentials (reveal with `POST …/credentials/reveal`).
    pub credentials: Vec<String>,
    /// Recent events (managed containers).
    pub events: EventsSummary,
    /// The job that created it.
    pub creation_job: Option<JobView>,
    /// Its newest job.
    pub last_job: Option<JobView>,
    /// The template it was built from (`template` holds its name, as in the list).
    pub template_ref: Option<TemplateRef>,
    /// The config-manager (boot unit) as monitoring last read it: last run, exit code and its
    /// meaning, conflicts, the applied commit or version, the log tail.
    #[serde(default)]
    pub config_manager: Option<crate::containers::config_manager::ConfigManagerView>,
}

/// `GET /api/v1/containers/{id}`: one container, managed (`42`) or not (`lab:105`).
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<ContainerDetail>, AppError> {
    // A guest named by its id is answered whatever its kind (a VM created through
    // `POST /api/v1/containers` with a vm template is followed here); the list stays
    // containers only, so clients that enumerate see what they always saw.
    detail(&state, &user, &id, None, "/api/v1/containers")
        .await
        .map(Json)
}

/// One guest's detail for `GET {base}/{id}`: 404 when it is not of kind `only` (when given);
/// the event stream is named under `base`.
pub async fn detail(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    only: Option<GuestKind>,
    base: &str,
) -> Result<ContainerDetail, AppError> {
    let target = resolve(state, id).await?;
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    let item = listing::one(state, user, &target).await?;
    if only.is_some_and(|k| k != item.kind) {
        return Err(AppError::NotFound(format!(
            "CT {} in cluster {} (it is a VM: /api/v1/guests/{})",
            target.vmid,
            target.cluster.name,
            target.url_id()
        )));
    }
    let mut detail = ContainerDetail {
        events: EventsSummary {
            recent: Vec::new(),
            stream: format!("{base}/{}/events", target.url_id()),
        },
        item,
        services: Vec::new(),
        credentials: Vec::new(),
        creation_job: None,
        last_job: None,
        template_ref: None,
        config_manager: None,
    };
    let Some(record) = &target.record else {
        return Ok(detail);
    };
    detail.services = state.store.list_services(record.id).await?;
    detail.config_manager =
        crate::containers::config_manager::load(state.store.as_ref(), record.id).await?;
    detail.credentials = state
        .store
        .list_credentials(record.id)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    detail.events.recent = state
        .store
        .list_container_events(record.id, None, None, 10)
        .await?
        .iter()
        .map(ContainerEventView::from)
        .collect();
    let jobs = |kind: Option<&str>| JobFilter {
        kind: kind.map(str::to_owned),
        container_id: Some(record.id),
        limit: 1,
        ..JobFilter::default()
    };
    detail.last_job = state
        .store
        .find_jobs(&jobs(None))
        .await?
        .first()
        .map(|j| JobView::of(state, j));
    let creation = state
        .store
        .find_jobs(&jobs(Some(crate::provisioning::submit::JOB_KIND)))
        .await?;
    detail.creation_job = creation.first().map(|j| JobView::of(state, j));
    // The commit is the one recorded when the container was created, not today's.
    let git = creation.first().and_then(|j| {
        serde_json::from_str::<crate::provisioning::submit::CreatePayload>(&j.payload_json)
            .ok()
            .and_then(|p| p.template_git)
    });
    if let Some(template_id) = record.template_id {
        match state.store.get_template(template_id).await {
            Ok(t) => {
                let label = match &git {
                    Some(g) => format!("{}@{}", t.row.name, g.short()),
                    None => t.row.name.clone(),
                };
                detail.template_ref = Some(TemplateRef {
                    id: t.row.id,
                    name: t.row.name,
                    app: t.row.app,
                    label,
                    git,
                });
            }
            Err(crate::storage::StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(detail)
}

/// `GET /api/v1/containers`: containers only, whatever `?type=` says.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(filter): Query<Filter>,
) -> Result<Json<Listing>, AppError> {
    let filter = filter.only(GuestKind::Lxc);
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
            only: None,
        })
    }
}

/// Runs `action` on guest `id`, only when it is of kind `only` (when given).
pub async fn act(
    state: AppState,
    remote: SocketAddr,
    user: CurrentUser,
    id: String,
    query: ActionQuery,
    action: Action,
    only: Option<GuestKind>,
) -> Result<Json<Outcome>, AppError> {
    let mut opts = query.options()?;
    opts.only = only;
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
            act(state, remote, user, id, query, $action, None).await
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
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RevealRequest {
    /// Credential name.
    pub name: String,
}

/// A revealed credential.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Revealed {
    /// Credential name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// `POST /api/v1/containers/{id}/credentials/reveal`: the decrypted value (audited).
pub async fn reveal(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(body): Json<RevealRequest>,
) -> Result<Json<Revealed>, AppError> {
    let target = resolve(&state, &id).await?;
    let plain =
        credentials::reveal(&state, &user, &remote.ip().to_string(), &target, &body.name).await?;
    Ok(Json(Revealed {
        value: plain.expose().to_owned(),
        name: body.name,
    }))
}

/// A validation failure as `422 Unprocessable Entity` (same body as every error).
fn unprocessable(e: AppError) -> Response {
    if !matches!(e, AppError::Invalid { .. }) {
        return e.into_response();
    }
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let body: ErrorBody = e.body_with(status);
    (status, Json(body)).into_response()
}

/// `202` of a bulk action: the job running it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct BulkAccepted {
    /// The job.
    pub job_id: i64,
    /// `GET` it for the per-container results.
    pub url: String,
    /// Its event stream.
    pub events: String,
    /// Its page in the dashboard.
    pub page: String,
    /// The action.
    pub action: String,
    /// How many containers.
    pub count: usize,
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
                Json(BulkAccepted {
                    job_id: id,
                    url,
                    events: format!("/api/v1/jobs/{id}/events"),
                    page: format!("/jobs/{id}"),
                    action: request.action.as_str().to_owned(),
                    count: request.ids.len(),
                }),
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
) -> Result<Json<ServicesView>, AppError> {
    let target = resolve(&state, &id).await?;
    let Some(record) = &target.record else {
        return Err(AppError::NotFound(format!(
            "services of unmanaged CT {} (ctforge only tracks containers it created)",
            target.vmid
        )));
    };
    crate::authz::read(&state, &user, &target.cluster, target.vmid).await?;
    let services = state.store.list_services(record.id).await?;
    let credentials: Vec<String> = state
        .store
        .list_credentials(record.id)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    let units: Vec<&str> = services.iter().map(|s| s.unit.as_str()).collect();
    let credential_services = credentials
        .iter()
        .filter_map(|name| {
            crate::containers::credentials::service_for(name, &units).map(|unit| {
                CredentialService {
                    credential: name.clone(),
                    unit: unit.to_owned(),
                }
            })
        })
        .collect();
    Ok(Json(ServicesView {
        id: record.id,
        vmid: target.vmid,
        services,
        credentials,
        credential_services,
    }))
}

/// `GET /api/v1/containers/{id}/services`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServicesView {
    /// ctforge record id.
    pub id: i64,
    /// VMID.
    pub vmid: u32,
    /// Services as last checked.
    pub services: Vec<ContainerService>,
    /// Stored credential names.
    pub credentials: Vec<String>,
    /// Credentials whose name says which service they belong to.
    #[serde(default)]
    pub credential_services: Vec<CredentialService>,
}

/// A credential linked to its service by its name (`CODE_SERVER_PASSWORD` → code-server).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CredentialService {
    /// Credential name.
    pub credential: String,
    /// The service's unit.
    pub unit: String,
}
