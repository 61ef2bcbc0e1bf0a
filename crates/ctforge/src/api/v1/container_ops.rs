//! `/api/v1/containers/{id}/…` day-two operations ([`crate::containers::daytwo`]): each
//! answers once Proxmox is done (the task followed to its end, its log in `task_log`), 403
//! with the privilege that is missing, 409 when the container's lock is held or Proxmox
//! refuses in the guest's state (with Proxmox's text), 400 naming invalid fields.
//!
//! - `GET …/config`: every key with its effective value, the digest, Proxmox's `lock`, and
//!   what waits for the next start (`pending`)
//! - `POST …/config/preview` with an edit: the diff, nothing applied
//! - `PUT …/config` with `{"memory": 1536, "net": {"0": {"ip": "192.0.2.10/24",
//!   "gw": "192.0.2.1", "tag": 20}}}`: applies; `pending` lists what waits for a restart
//! - `POST …/resize` with `{"disk": "rootfs", "size": "+2G"}` (grow only)
//! - `GET …/snapshots` (tree order, `newer` per snapshot), `POST …/snapshots` with
//!   `{"name": "before", "description": "…"}`, `POST …/snapshots/{name}/rollback` with
//!   `{"start": false}`, `DELETE …/snapshots/{name}`
//! - `POST …/clone` with `{"newid": 120, "hostname": "web-2", "full": true}`
//! - `POST …/template` (a stopped CT without snapshots)
//! - `GET …/journal`: the guest's boot log, live, as Server-Sent Events (`line` events with
//!   `{"stream", "line"}`; an `end` event when the view ends; VM.Console needed)
//! - `GET …/task-log`: the Proxmox task log of the guest's day-two operations (resize,
//!   snapshot, rollback, snapshot delete, clone), live, as Server-Sent Events named `task`
//!   (`start` with the UPID, one `log` per line, then `done` or `error`); `?until_end=true`
//!   closes after the first operation's end (the CLI); VM.Audit needed

use std::net::SocketAddr;

use std::convert::Infallible;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::containers::daytwo::{
    self, Actor, CloneRequest, ConfigPreview, ConfigView, OpOutcome, ResizeRequest,
    RollbackRequest, SnapshotList, SnapshotRequest,
};
use crate::containers::edit::ConfigEdit;
use crate::containers::journal;
use crate::containers::resolve;
use crate::error::AppError;
use crate::routes::Routes;
use crate::state::AppState;

/// The day-two routes under `$base/{id}/…`: the same handlers serve
/// `/api/v1/containers/{id}/…` and `/api/v1/guests/{id}/…` (the use-cases pick the `lxc` or
/// `qemu` endpoints by the guest's kind).
macro_rules! daytwo_routes {
    ($r:expr, $base:literal) => {{
        use $crate::api::v1::container_ops as ops;
        use $crate::containers::daytwo as d2;
        use $crate::routes::{Answer, Doc, schema};
        let outcome = Doc::json::<d2::OpOutcome>;
        $r.get(
            concat!($base, "/{id}/config"),
            ops::get_config,
            Doc::json::<d2::ConfigView>(),
        )
        .put(
            concat!($base, "/{id}/config"),
            ops::put_config,
            outcome().body::<$crate::containers::edit::ConfigEdit>(),
        )
        .post(
            concat!($base, "/{id}/config/preview"),
            ops::preview_config,
            Doc::json::<d2::ConfigPreview>().body::<$crate::containers::edit::ConfigEdit>(),
        )
        .post(
            concat!($base, "/{id}/resize"),
            ops::resize,
            outcome().body::<d2::ResizeRequest>(),
        )
        .get(
            concat!($base, "/{id}/snapshots"),
            ops::list_snapshots,
            Doc::json::<d2::SnapshotList>(),
        )
        .post(
            concat!($base, "/{id}/snapshots"),
            ops::create_snapshot,
            outcome().body::<d2::SnapshotRequest>(),
        )
        .post(
            concat!($base, "/{id}/snapshots/{name}/rollback"),
            ops::rollback,
            outcome().body::<d2::RollbackRequest>(),
        )
        .delete(
            concat!($base, "/{id}/snapshots/{name}"),
            ops::delete_snapshot,
            outcome(),
        )
        .post(
            concat!($base, "/{id}/clone"),
            ops::clone,
            outcome().body::<d2::CloneRequest>(),
        )
        .post(concat!($base, "/{id}/template"), ops::template, outcome())
        .get(
            concat!($base, "/{id}/task-log"),
            ops::task_log_events,
            Doc::answer(Answer::Events {
                event: schema::<$crate::events::BusEvent>,
                json: None,
            }),
        )
        .get(
            concat!($base, "/{id}/journal"),
            ops::journal_events,
            Doc::answer(Answer::Events {
                event: schema::<$crate::containers::journal::JournalLine>,
                json: None,
            }),
        )
    }};
}
pub(crate) use daytwo_routes;

/// The day-two routes of `/api/v1/containers/{id}/…`.
pub fn routes(r: Routes) -> Routes {
    daytwo_routes!(r, "/api/v1/containers")
}

/// Options of `GET …/task-log`.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
pub struct TaskLogQuery {
    /// Close the stream after the first operation's `done` or `error`.
    #[serde(default)]
    pub until_end: bool,
}

/// `GET …/task-log`: the day-two task logs of the guest, live.
pub async fn task_log_events(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<TaskLogQuery>,
) -> Result<Response, AppError> {
    use crate::events::RecvError;
    let target = resolve(&state, &id).await?;
    let subscription = daytwo::task_log(&state, &user, &target).await?;
    let open = crate::metrics::SseConnection::open("container_task_log");
    let until_end = query.until_end;
    let stream = futures_util::stream::unfold(
        (subscription, open, false),
        move |(mut sub, open, ended)| async move {
            if ended {
                return None;
            }
            match sub.recv().await {
                Ok(d) => {
                    let end = until_end && d.is_terminal();
                    let event = Event::default().event("task").data(d.json());
                    Some((Ok::<_, Infallible>(event), (sub, open, end)))
                }
                // Lines may have been missed; the operation's answer has them all.
                Err(RecvError::Lagged) => {
                    let event = Event::default().event("lagged").data("{}");
                    Some((Ok(event), (sub, open, false)))
                }
                Err(RecvError::Closed) => None,
            }
        },
    );
    let stream =
        futures_util::StreamExt::take_until(stream, state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET …/journal`: the guest's boot log as Server-Sent Events.
pub async fn journal_events(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let rx = journal::follow(&state, &user, &target).await?;
    let open = crate::metrics::SseConnection::open("container_journal");
    let stream = futures_util::stream::unfold((rx, open), |(mut rx, open)| async move {
        let line = rx.recv().await?;
        let name = if line.stream == "end" { "end" } else { "line" };
        let event = Event::default()
            .event(name)
            .json_data(&line)
            .unwrap_or_else(|_| Event::default().event(name).data(line.line.clone()));
        Some((Ok::<_, Infallible>(event), (rx, open)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET …/config`.
pub async fn get_config(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<ConfigView>, AppError> {
    let target = resolve(&state, &id).await?;
    Ok(Json(daytwo::config(&state, &user, &target).await?))
}

/// `POST …/config/preview`.
pub async fn preview_config(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(edit): Json<ConfigEdit>,
) -> Result<Json<ConfigPreview>, AppError> {
    let target = resolve(&state, &id).await?;
    Ok(Json(daytwo::preview(&state, &user, &target, &edit).await?))
}

/// `PUT …/config`.
pub async fn put_config(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(edit): Json<ConfigEdit>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::edit_config(&actor, edit).await?))
}

/// `POST …/resize`.
pub async fn resize(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(req): Json<ResizeRequest>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::resize(&actor, req).await?))
}

/// `GET …/snapshots`.
pub async fn list_snapshots(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<SnapshotList>, AppError> {
    let target = resolve(&state, &id).await?;
    Ok(Json(daytwo::snapshots(&state, &user, &target).await?))
}

/// `POST …/snapshots`.
pub async fn create_snapshot(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(req): Json<SnapshotRequest>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::snapshot(&actor, req).await?))
}

/// `POST …/snapshots/{name}/rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, name)): Path<(String, String)>,
    Json(req): Json<RollbackRequest>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::rollback(&actor, &name, req).await?))
}

/// `DELETE …/snapshots/{name}`.
pub async fn delete_snapshot(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::delete_snapshot(&actor, &name).await?))
}

/// `POST …/clone`.
pub async fn clone(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(req): Json<CloneRequest>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::clone(&actor, req).await?))
}

/// `POST …/template`.
pub async fn template(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<OpOutcome>, AppError> {
    let actor = Actor::resolve(&state, &user, remote, &id).await?;
    Ok(Json(daytwo::template(&actor).await?))
}
