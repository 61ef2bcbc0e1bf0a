//! `POST /api/v1/containers/plan` (the dry run) and `POST /api/v1/containers` (create).
//! Both take the same body; unknown fields are rejected with a 400 that names them.
//! `GET /api/v1/containers/check?vmid=&hostname=&cluster=` judges a VMID and hostname as typed
//! (the wizard calls it while the user types).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::provisioning::check::{self, CheckQuery, IdentityCheck};
use crate::provisioning::plan::{CreateRequest, PlanView};
use crate::provisioning::submit::{self, Submitted};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The provisioning routes.
pub fn routes(r: Routes) -> Routes {
    r.post(
        "/api/v1/containers/plan",
        plan,
        Doc::json::<PlanView>().body::<CreateRequest>(),
    )
    .post(
        "/api/v1/containers",
        create,
        Doc::status::<Submitted>(202).body::<CreateRequest>(),
    )
    .get(
        "/api/v1/containers/check",
        check_identity,
        Doc::json::<IdentityCheck>(),
    )
}

/// `GET /api/v1/containers/check`: is this VMID free and this hostname valid?
pub async fn check_identity(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    query: Result<Query<CheckQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<IdentityCheck>, AppError> {
    let Query(query) = query.map_err(|r| AppError::invalid(r.body_text()))?;
    Ok(Json(check::check(&state, &user, &query).await?))
}

type Body = Result<Json<CreateRequest>, axum::extract::rejection::JsonRejection>;

fn request(body: Body) -> Result<CreateRequest, AppError> {
    body.map(|Json(r)| r)
        .map_err(|rejection| AppError::invalid(rejection.body_text()))
}

/// `POST /api/v1/containers/plan`.
pub async fn plan(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: Body,
) -> Result<Json<PlanView>, AppError> {
    let request = request(body)?;
    let prepared = submit::prepare(&state, &user, &request).await?;
    Ok(Json(prepared.plan.view()))
}

/// `POST /api/v1/containers`: 202 with `{ "id", "vmid", "job_id" }`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: Body,
) -> Result<Response, AppError> {
    let request = request(body)?;
    let submitted = submit::submit(&state, &user, &request, &remote.ip().to_string()).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)).into_response())
}
