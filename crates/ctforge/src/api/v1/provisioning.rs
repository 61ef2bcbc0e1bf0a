//! `POST /api/v1/containers/plan` (the dry run) and `POST /api/v1/containers` (create).
//! Both take the same body; unknown fields are rejected with a 400 that names them. The body
//! may name a `preset` (its values first, the body's fields over them) and ask for `count`
//! containers (hostname pattern `web-{n}`, `placement`): 202 with the batch job and one item
//! per container ([`crate::provisioning::batch`]).
//! `GET /api/v1/containers/check?vmid=&hostname=&cluster=` judges a VMID and hostname as typed
//! (the wizard calls it while the user types).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::provisioning::batch::{self, BatchAccepted};
use crate::provisioning::check::{self, CheckQuery, IdentityCheck};
use crate::provisioning::plan::{CreateRequest, PlanView};
use crate::provisioning::submit::{self, Submitted};
use crate::routes::{Doc, Routes, schema};
use crate::state::AppState;

/// The provisioning routes.
pub fn routes(r: Routes) -> Routes {
    r.post(
        "/api/v1/containers/plan",
        plan,
        Doc::json::<PlanView>().body_schema(create_body_schema),
    )
    .post(
        "/api/v1/containers",
        create,
        Doc::status::<CreateAccepted>(202).body_schema(create_body_schema),
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

/// The create body: [`CreateRequest`] plus `preset`, `count` and `placement`.
pub fn create_body_schema() -> serde_json::Value {
    let mut root = schema::<CreateRequest>();
    if let Some(props) = root
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        props.insert(
            "preset".into(),
            serde_json::json!({ "type": ["string", "null"], "description": "a preset's name: its values first, this body's fields over them" }),
        );
        props.insert(
            "count".into(),
            serde_json::json!({ "type": ["integer", "null"], "minimum": 1, "maximum": batch::MAX_COUNT, "description": "create this many (hostname pattern with {n}); answers with the batch job and items" }),
        );
        props.insert(
            "placement".into(),
            serde_json::json!({ "type": ["string", "null"], "enum": ["fixed", "round-robin", "least-loaded", null], "description": "where the containers of a count go" }),
        );
    }
    root
}

/// `202` of `POST /api/v1/containers`: one container, or a batch (`count`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum CreateAccepted {
    /// `count` given: the batch job and every container.
    Many(BatchAccepted),
    /// One container and its job.
    One(Submitted),
}

type Body = Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>;

async fn request(
    state: &AppState,
    user: &CurrentUser,
    body: Body,
) -> Result<crate::presets::Expanded, AppError> {
    let Json(value) = body.map_err(|rejection| AppError::invalid(rejection.body_text()))?;
    crate::presets::expand(state, user, &value).await
}

/// `POST /api/v1/containers/plan`.
pub async fn plan(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: Body,
) -> Result<Json<PlanView>, AppError> {
    let mut request = request(&state, &user, body).await?.request;
    // A pattern is planned as its first container.
    request.hostname = batch::hostname_for(&request.hostname, 1);
    let prepared = submit::prepare(&state, &user, &request).await?;
    Ok(Json(prepared.plan.view()))
}

/// `POST /api/v1/containers`: 202 with `{ "id", "vmid", "job_id" }`, or with `count`
/// `{ "job_id", "items": [{ "id", "vmid", "hostname", "node", "job_id" }, …] }`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: Body,
) -> Result<Response, AppError> {
    let expanded = request(&state, &user, body).await?;
    let remote = remote.ip().to_string();
    let answer = match expanded.count {
        Some(count) => CreateAccepted::Many(
            batch::submit_many(
                &state,
                &user,
                &expanded.request,
                count,
                expanded.placement,
                &remote,
            )
            .await?,
        ),
        None => {
            let mut request = expanded.request;
            request.node = batch::pick_node(&state, &user, &request, expanded.placement).await?;
            CreateAccepted::One(submit::submit(&state, &user, &request, &remote).await?)
        }
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}
