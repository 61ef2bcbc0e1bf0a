//! `/api/v1/presets`: saved creation answers ([`crate::presets`]).
//!
//! - `GET /api/v1/presets`: the presets the caller may use (own, shared; admins see all)
//! - `POST /api/v1/presets` with `{"name": "web-small", "template": "nginx",
//!   "values": {"memory": 512, "cores": 1, "hostname": "web-{n}", "placement": "round-robin"}}`
//!   → 201 with the preset
//! - `GET|PUT|DELETE /api/v1/presets/{name}` (changes: owner or admin; `shared`: admins)
//!
//! Use one with `POST /api/v1/containers {"preset": "web-small", "hostname": "web-7"}`.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::presets::{self, PresetBody, PresetList, PresetView};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The preset routes.
pub fn routes(r: Routes) -> Routes {
    r.get("/api/v1/presets", list, Doc::json::<PresetList>())
        .post(
            "/api/v1/presets",
            create,
            Doc::status::<PresetView>(201).body::<PresetBody>(),
        )
        .get("/api/v1/presets/{name}", show, Doc::json::<PresetView>())
        .put(
            "/api/v1/presets/{name}",
            update,
            Doc::json::<PresetView>().body::<PresetBody>(),
        )
        .delete("/api/v1/presets/{name}", delete, Doc::no_content())
}

type Body = Result<Json<PresetBody>, axum::extract::rejection::JsonRejection>;

fn body(body: Body) -> Result<PresetBody, AppError> {
    body.map(|Json(b)| b)
        .map_err(|rejection| AppError::invalid(rejection.body_text()))
}

/// `GET /api/v1/presets`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<PresetList>, AppError> {
    Ok(Json(PresetList {
        presets: presets::list(&state, &user).await?,
    }))
}

/// `GET /api/v1/presets/{name}`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<Json<PresetView>, AppError> {
    let preset = presets::get(&state, &user, &name).await?;
    Ok(Json(PresetView::from(&preset)))
}

/// `POST /api/v1/presets`: 201 with the stored preset.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    request: Body,
) -> Result<(StatusCode, Json<PresetView>), AppError> {
    let request = body(request)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let view = presets::create(&state, &user, caller, &request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PUT /api/v1/presets/{name}`: replaces it (the body may rename it).
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    request: Body,
) -> Result<Json<PresetView>, AppError> {
    let request = body(request)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    Ok(Json(
        presets::update(&state, &user, caller, &name, &request).await?,
    ))
}

/// `DELETE /api/v1/presets/{name}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    presets::delete(&state, &user, caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
