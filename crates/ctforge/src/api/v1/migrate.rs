//! `/api/v1/containers/{id}/migrate`: move a container to another node of its cluster.
//!
//! - `GET` lists the node it is on, whether it runs, and the other nodes with their free
//!   resources (what the page offers).
//! - `POST {"target": "pve3", "restart": true}` checks `VM.Migrate` on `/vms/<vmid>` and
//!   Proxmox's preconditions, takes the container's lock and answers `202` with the job; the
//!   job's log (`/api/v1/jobs/{id}/events`) carries Proxmox's task log live. 403 without the
//!   privilege, 409 when the CT runs and `restart` is false, when another action holds its
//!   lock or Proxmox holds a lock on it; 400 for a target that is not another node.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::containers::migrate::{self, MigrateAccepted, MigrateRequest, MigrateTargets};
use crate::containers::resolve;
use crate::error::AppError;
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The migration routes.
pub fn routes(r: Routes) -> Routes {
    r.get(
        "/api/v1/containers/{id}/migrate",
        targets,
        Doc::json::<MigrateTargets>(),
    )
    .post(
        "/api/v1/containers/{id}/migrate",
        submit,
        Doc::status::<MigrateAccepted>(202).body::<MigrateRequest>(),
    )
}

/// `GET /api/v1/containers/{id}/migrate`.
pub async fn targets(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<MigrateTargets>, AppError> {
    let target = resolve(&state, &id).await?;
    Ok(Json(migrate::targets(&state, &user, &target).await?))
}

/// `POST /api/v1/containers/{id}/migrate`.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request: MigrateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return AppError::Invalid {
                message: format!("the body is not a migration request ({e})"),
                fields: vec![(
                    "body".into(),
                    r#"send JSON like {"target": "pve2", "restart": true}"#.into(),
                )],
            }
            .into_response();
        }
    };
    let target = match resolve(&state, &id).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match migrate::submit(&state, &user, &remote.ip().to_string(), &target, &request).await {
        Ok(accepted) => (
            StatusCode::ACCEPTED,
            [(header::LOCATION, accepted.url.clone())],
            Json(accepted),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
