//! `/api/v1/images`: images baked from templates.
//!
//! - `GET` lists them (template, version, node, storage, size, age, containers made from it,
//!   state).
//! - `POST {"template": "web", "node"?: "pve1", "storage"?: "local-lvm"}` bakes one (editor or
//!   admin, and Proxmox's privileges to create its container): `202` with the image and its
//!   job; `409` while one of that version is being built there.
//! - `DELETE /api/v1/images/{id}` destroys its CT template and forgets it (`204`); `409` while
//!   it builds or while it is current and containers were made from it.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::images::{self, BuildRequest, BuildStarted, ImageList};
use crate::routes::{Doc, Routes};
use crate::state::AppState;

/// The image routes.
pub fn routes(r: Routes) -> Routes {
    r.get("/api/v1/images", list, Doc::json::<ImageList>())
        .post(
            "/api/v1/images",
            build,
            Doc::status::<BuildStarted>(202).body::<BuildRequest>(),
        )
        .delete("/api/v1/images/{id}", delete, Doc::no_content())
}

/// `GET /api/v1/images`.
pub async fn list(State(state): State<AppState>) -> Result<Json<ImageList>, AppError> {
    Ok(Json(images::list(&state).await?))
}

/// `POST /api/v1/images`.
pub async fn build(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<BuildStarted>), AppError> {
    let request: BuildRequest = serde_json::from_slice(&body).map_err(|e| AppError::Invalid {
        message: format!("the body is not an image request ({e})"),
        fields: vec![(
            "body".into(),
            r#"send JSON like {"template": "web", "node": "pve1"}"#.into(),
        )],
    })?;
    let started = images::request_build(&state, &user, &request, &remote.ip().to_string()).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// `DELETE /api/v1/images/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    images::delete(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
