//! Drift, re-apply and rollouts ([`crate::containers::drift`], [`crate::containers::reapply`]):
//!
//! - `GET /api/v1/containers/{id}/drift`: files (changed here, in the template, both =
//!   conflict, with diffs for holders of `VM.Console`), scripts changed since their last run,
//!   packages added/removed/missing, and whether a newer template version exists (VM.Audit)
//! - `POST /api/v1/containers/{id}/reapply` with `{"files": {"site.conf": "backup"},
//!   "without_snapshot": false, "on_failure": "rollback"}`: 202 with the job; 400 names each
//!   conflicting file without a choice; 403 without `VM.Snapshot` / `VM.Config.Options`
//! - `POST /api/v1/containers/reapply` with `{"ids": ["42", "lab:105"]}`: the same for many
//! - `POST /api/v1/templates/{name}/rollout` with `{"canary": 1, "batch": 2}`: every ready
//!   container made from the template, canary first, then `batch` at a time, stopping at the
//!   first failure; per-container results in the job's `result`

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::containers::drift::{self, DriftReport};
use crate::containers::reapply::{
    self, BulkReapplyRequest, ReapplyAccepted, ReapplyRequest, RolloutRequest,
};
use crate::containers::resolve;
use crate::error::AppError;
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The drift, re-apply and rollout routes.
pub fn routes(r: Routes) -> Routes {
    r.get(
        "/api/v1/containers/{id}/drift",
        get_drift,
        Doc::json::<DriftReport>(),
    )
    .post(
        "/api/v1/containers/{id}/reapply",
        post_reapply,
        Doc::status::<ReapplyAccepted>(202).body::<ReapplyRequest>(),
    )
    .post(
        "/api/v1/containers/reapply",
        post_bulk_reapply,
        Doc::status::<ReapplyAccepted>(202).body::<BulkReapplyRequest>(),
    )
    .post(
        "/api/v1/templates/{name}/rollout",
        post_rollout,
        Doc::status::<ReapplyAccepted>(202).body::<RolloutRequest>(),
    )
}

fn accepted(result: Result<ReapplyAccepted, AppError>) -> Response {
    match result {
        Ok(accepted) => (
            StatusCode::ACCEPTED,
            [(header::LOCATION, accepted.url.clone())],
            Json(accepted),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET …/drift`.
pub async fn get_drift(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Json<DriftReport>, AppError> {
    let target = resolve(&state, &id).await?;
    Ok(Json(drift::report(&state, &user, &target).await?))
}

/// `POST …/reapply`.
pub async fn post_reapply(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Json(request): Json<ReapplyRequest>,
) -> Response {
    let target = match resolve(&state, &id).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    accepted(reapply::submit(&state, &user, &remote.ip().to_string(), &target, request).await)
}

/// `POST /api/v1/containers/reapply`.
pub async fn post_bulk_reapply(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Json(request): Json<BulkReapplyRequest>,
) -> Response {
    accepted(reapply::submit_bulk(&state, &user, &remote.ip().to_string(), request).await)
}

/// `POST /api/v1/templates/{name}/rollout`.
pub async fn post_rollout(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Json(request): Json<RolloutRequest>,
) -> Response {
    accepted(reapply::submit_rollout(&state, &user, &remote.ip().to_string(), &name, request).await)
}
