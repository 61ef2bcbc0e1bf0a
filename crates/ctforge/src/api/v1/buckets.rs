//! `/api/v1/buckets`: package buckets (named, reusable package lists): list, create, read,
//! rename, delete, add packages (one or a pasted list) and bulk-delete packages.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ctforge_template::{Package, PackageManager};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::buckets::{self, counts};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::model::{Bucket, BucketPackage};

fn bucket_json(b: &Bucket, packages: &[BucketPackage]) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "description": b.description,
        "package_count": packages.len(),
        "counts": counts(packages),
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    })
}

fn package_json(p: &BucketPackage) -> Value {
    let spec = p
        .manager
        .parse::<PackageManager>()
        .map(|m| {
            Package {
                name: p.name.clone(),
                version: p.version.clone(),
            }
            .spec(m)
        })
        .unwrap_or_else(|_| p.name.clone());
    json!({ "id": p.id, "manager": p.manager, "name": p.name, "version": p.version, "spec": spec })
}

/// `GET /api/v1/buckets`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let out: Vec<Value> = buckets::list(state.store.as_ref())
        .await?
        .iter()
        .map(|(b, packages)| bucket_json(b, packages))
        .collect();
    Ok(Json(json!({ "buckets": out })))
}

/// Body of create and update.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct BucketBody {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /api/v1/buckets`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Json(body): Json<BucketBody>,
) -> Result<Response, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let description = body.description.unwrap_or_default();
    let id = buckets::create(state.store.as_ref(), caller, &body.name, &description).await?;
    let b = state.store.get_bucket(id).await?;
    Ok((StatusCode::CREATED, Json(bucket_json(&b, &[]))).into_response())
}

/// `GET /api/v1/buckets/{id}`: the bucket with its packages.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    let (b, packages) = buckets::get(state.store.as_ref(), id).await?;
    let mut out = bucket_json(&b, &packages);
    out["packages"] = json!(packages.iter().map(package_json).collect::<Vec<_>>());
    Ok(Json(out))
}

/// `PUT /api/v1/buckets/{id}`: rename / change the description.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Json(body): Json<BucketBody>,
) -> Result<Json<Value>, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    buckets::update(
        state.store.as_ref(),
        caller,
        id,
        &body.name,
        body.description.as_deref(),
    )
    .await?;
    let (b, packages) = buckets::get(state.store.as_ref(), id).await?;
    Ok(Json(bucket_json(&b, &packages)))
}

/// `DELETE /api/v1/buckets/{id}`. Templates keep the packages they copied.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    buckets::delete(state.store.as_ref(), caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/buckets/{id}/packages`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct AddPackages {
    /// Manager for plain names (lines without `manager:`).
    #[serde(default)]
    pub manager: Option<String>,
    /// A pasted list: one package per line.
    #[serde(default)]
    pub text: Option<String>,
    /// Or individual specs (`apt:curl=7.88`, or plain with `manager`).
    #[serde(default)]
    pub packages: Vec<String>,
}

/// `POST /api/v1/buckets/{id}/packages`: adds (or re-pins) packages.
pub async fn add_packages(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Json(body): Json<AddPackages>,
) -> Result<Json<Value>, AppError> {
    let mut text = body.text.unwrap_or_default();
    for spec in &body.packages {
        text.push('\n');
        text.push_str(spec);
    }
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let added = buckets::add_packages(
        state.store.as_ref(),
        caller,
        id,
        body.manager.as_deref(),
        &text,
    )
    .await?;
    let (b, packages) = buckets::get(state.store.as_ref(), id).await?;
    let mut out = bucket_json(&b, &packages);
    out["added"] = json!(added);
    out["packages"] = json!(packages.iter().map(package_json).collect::<Vec<_>>());
    Ok(Json(out))
}

/// Body of `DELETE /api/v1/buckets/{id}/packages`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct RemovePackages {
    /// Package ids.
    #[serde(default)]
    pub ids: Vec<i64>,
}

/// `DELETE /api/v1/buckets/{id}/packages`: bulk delete by id.
pub async fn remove_packages(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Json(body): Json<RemovePackages>,
) -> Result<Json<Value>, AppError> {
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let removed = buckets::remove_packages(state.store.as_ref(), caller, id, &body.ids).await?;
    Ok(Json(json!({ "removed": removed })))
}
