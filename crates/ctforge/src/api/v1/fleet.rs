//! `POST /api/v1/fleet/plan` and `POST /api/v1/fleet/apply`: converge on a declared fleet
//! ([`crate::fleet`]). The body is `{"guests": [{"name": "api-1", "preset": "web-small",
//! "memory": 768}, …], "prune": false}` (what `ctforge apply` reads from a fleet file). Apply
//! answers `202` with the plan and the one `fleet_apply` job executing it (`job_id` null when
//! there is nothing to change).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::fleet::{self, FleetApplied, FleetPlan, FleetRequest};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The fleet routes.
pub fn routes(r: Routes) -> Routes {
    r.post(
        "/api/v1/fleet/plan",
        plan,
        Doc::json::<FleetPlan>().body::<FleetRequest>(),
    )
    .post(
        "/api/v1/fleet/apply",
        apply,
        Doc::status::<FleetApplied>(202).body::<FleetRequest>(),
    )
}

type Body = Result<Json<FleetRequest>, axum::extract::rejection::JsonRejection>;

fn body(body: Body) -> Result<FleetRequest, AppError> {
    body.map(|Json(b)| b)
        .map_err(|rejection| AppError::invalid(rejection.body_text()))
}

/// `POST /api/v1/fleet/plan`: what apply would do.
pub async fn plan(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    request: Body,
) -> Result<Json<FleetPlan>, AppError> {
    let request = body(request)?;
    Ok(Json(fleet::plan(&state, &user, &request).await?))
}

/// `POST /api/v1/fleet/apply`: plans again and queues the job executing the plan.
pub async fn apply(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    request: Body,
) -> Result<(StatusCode, Json<FleetApplied>), AppError> {
    let request = body(request)?;
    let applied = fleet::apply(&state, &user, &remote.ip().to_string(), &request).await?;
    Ok((StatusCode::ACCEPTED, Json(applied)))
}
