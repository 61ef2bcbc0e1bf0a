//! `/api/v1/guests`: every guest, container or virtual machine, through the same handlers and
//! use-cases as `/api/v1/containers` with the kind left open — the list (each item with
//! `type: lxc | qemu`, `?type=` filters), one guest's read, its event stream, lifecycle
//! actions, bulk actions, services and credentials. Creation (`POST /api/v1/guests`, `…/plan`)
//! lives in `guests_create.rs`.
//!
//! `{id}` is the same as for containers: ctforge's record id (`42`) or `<cluster>:<vmid>`.
//!
//! - `GET /api/v1/guests?type=qemu&status=running`
//! - `GET /api/v1/guests/42`, `GET /api/v1/guests/lab:205`
//! - `POST /api/v1/guests/lab:205/shutdown?timeout=30` (a VM: through its guest agent when
//!   enabled, else ACPI; then a stop after the timeout)
//! - `POST /api/v1/guests/bulk` with `{"action": "stop", "ids": ["42", "lab:205"]}`
//! - day-two, as under `/api/v1/containers/{id}/…` (`api/v1/container_ops.rs`): `GET|PUT
//!   …/config`, `POST …/config/preview`, `POST …/resize` (`{"disk": "scsi0", "size": "+2G"}`
//!   for a VM), `GET|POST …/snapshots`, `POST …/snapshots/{name}/rollback`,
//!   `DELETE …/snapshots/{name}`, `POST …/clone`, `POST …/template`, `GET …/task-log`

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};

use super::containers::{
    self as ct, ActionQuery, BulkAccepted, ContainerDetail, RevealRequest, Revealed, ServicesView,
};
use crate::auth::CurrentUser;
use crate::containers::lifecycle::{Action, Outcome};
use crate::containers::listing::{self, Filter, Listing};
use crate::containers::monitor::RefreshView;
use crate::error::AppError;
use crate::routes::{Answer, Doc, Routes, schema};
use crate::state::AppState;

/// The path every guest route hangs under.
const BASE: &str = "/api/v1/guests";

/// The guest routes.
pub fn routes(r: Routes) -> Routes {
    let outcome = Doc::json::<Outcome>;
    let r = r
        .get("/api/v1/guests", list, Doc::json::<Listing>())
        .get("/api/v1/guests/{id}", show, Doc::json::<ContainerDetail>())
        .get(
            "/api/v1/guests/{id}/events",
            super::container_events::events,
            Doc::answer(Answer::Events {
                event: schema::<super::container_events::StreamEvent>,
                json: None,
            }),
        )
        .post(
            "/api/v1/guests/bulk",
            ct::bulk,
            Doc::status::<BulkAccepted>(202).body_schema(ct::bulk_request_schema),
        )
        .get(
            "/api/v1/guests/{id}/services",
            ct::services,
            Doc::json::<ServicesView>(),
        )
        .post(
            "/api/v1/guests/{id}/services/refresh",
            ct::refresh_services,
            Doc::json::<RefreshView>(),
        )
        .delete("/api/v1/guests/{id}", delete, outcome())
        .post("/api/v1/guests/{id}/start", start, outcome())
        .post("/api/v1/guests/{id}/stop", stop, outcome())
        .post("/api/v1/guests/{id}/shutdown", shutdown, outcome())
        .post("/api/v1/guests/{id}/reboot", reboot, outcome())
        .post(
            "/api/v1/guests/{id}/credentials/reveal",
            ct::reveal,
            Doc::json::<Revealed>().body::<RevealRequest>(),
        );
    // Day-two operations: the container routes' handlers, for either kind.
    super::container_ops::daytwo_routes!(r, "/api/v1/guests")
}

/// `GET /api/v1/guests`: containers and VMs (`?type=lxc|qemu` narrows).
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(filter): Query<Filter>,
) -> Result<Json<Listing>, AppError> {
    Ok(Json(listing::list(&state, &user, &filter).await?))
}

/// `GET /api/v1/guests/{id}`: one guest of either kind, managed (`42`) or not (`lab:205`).
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<ContainerDetail>, AppError> {
    ct::detail(&state, &user, &id, None, BASE).await.map(Json)
}

macro_rules! action_handlers {
    ($($name:ident => $action:expr),* $(,)?) => {$(
        /// Runs the lifecycle action on guest `{id}` (either kind) and waits for the Proxmox
        /// task.
        pub async fn $name(
            State(state): State<AppState>,
            ConnectInfo(remote): ConnectInfo<SocketAddr>,
            axum::Extension(user): axum::Extension<CurrentUser>,
            Path(id): Path<String>,
            Query(query): Query<ActionQuery>,
        ) -> Result<Json<Outcome>, AppError> {
            ct::act(state, remote, user, id, query, $action, None).await
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
