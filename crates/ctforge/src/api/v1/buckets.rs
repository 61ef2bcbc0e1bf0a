//! `/api/v1/buckets`: package buckets (named, reusable package lists): list, create, read,
//! rename, delete, add packages (one or a pasted list) and bulk-delete packages.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ctforge_template::{Package, PackageManager};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::buckets::{self, counts};
use crate::error::AppError;
use crate::routes::{Doc, Routes};
use crate::state::AppState;
use crate::storage::model::{Bucket, BucketPackage};

/// The bucket routes.
pub fn routes(r: Routes) -> Routes {
    r.get("/api/v1/buckets", list, Doc::json::<BucketList>())
        .post(
            "/api/v1/buckets",
            create,
            Doc::status::<BucketView>(201).body::<BucketBody>(),
        )
        .get("/api/v1/buckets/{id}", show, Doc::json::<BucketDetail>())
        .put(
            "/api/v1/buckets/{id}",
            update,
            Doc::json::<BucketView>().body::<BucketBody>(),
        )
        .delete("/api/v1/buckets/{id}", delete, Doc::no_content())
        .post(
            "/api/v1/buckets/{id}/packages",
            add_packages,
            Doc::json::<PackagesAdded>().body::<AddPackages>(),
        )
        .delete(
            "/api/v1/buckets/{id}/packages",
            remove_packages,
            Doc::json::<PackagesRemoved>().body::<RemovePackages>(),
        )
}

/// A bucket.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct BucketView {
    /// Bucket id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Number of packages.
    pub package_count: usize,
    /// Packages per manager.
    pub counts: BTreeMap<String, usize>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A package of a bucket.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct BucketPackageView {
    /// Package id (for removal).
    pub id: i64,
    /// Manager.
    pub manager: String,
    /// Name.
    pub name: String,
    /// Pinned version.
    pub version: Option<String>,
    /// The package in its manager's pin syntax (`curl=7.88`).
    pub spec: String,
}

/// A bucket with its packages.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct BucketDetail {
    /// The bucket.
    #[serde(flatten)]
    pub bucket: BucketView,
    /// Its packages.
    pub packages: Vec<BucketPackageView>,
}

/// `GET /api/v1/buckets`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct BucketList {
    /// Buckets by name.
    pub buckets: Vec<BucketView>,
}

/// The answer of adding packages: the bucket afterwards.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PackagesAdded {
    /// The bucket with its packages.
    #[serde(flatten)]
    pub bucket: BucketDetail,
    /// How many packages were added or re-pinned.
    pub added: usize,
}

/// The answer of removing packages.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PackagesRemoved {
    /// How many were removed.
    pub removed: u64,
}

fn bucket_json(b: &Bucket, packages: &[BucketPackage]) -> BucketView {
    BucketView {
        id: b.id,
        name: b.name.clone(),
        description: b.description.clone(),
        package_count: packages.len(),
        counts: counts(packages),
        created_at: b.created_at,
        updated_at: b.updated_at,
    }
}

fn detail(b: &Bucket, packages: &[BucketPackage]) -> BucketDetail {
    BucketDetail {
        bucket: bucket_json(b, packages),
        packages: packages.iter().map(package_json).collect(),
    }
}

fn package_json(p: &BucketPackage) -> BucketPackageView {
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
    BucketPackageView {
        id: p.id,
        manager: p.manager.clone(),
        name: p.name.clone(),
        version: p.version.clone(),
        spec,
    }
}

/// `GET /api/v1/buckets`.
pub async fn list(State(state): State<AppState>) -> Result<Json<BucketList>, AppError> {
    let out: Vec<BucketView> = buckets::list(state.store.as_ref())
        .await?
        .iter()
        .map(|(b, packages)| bucket_json(b, packages))
        .collect();
    Ok(Json(BucketList { buckets: out }))
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
    crate::auth::require_editor(&user)?;
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
) -> Result<Json<BucketDetail>, AppError> {
    let (b, packages) = buckets::get(state.store.as_ref(), id).await?;
    Ok(Json(detail(&b, &packages)))
}

/// `PUT /api/v1/buckets/{id}`: rename / change the description.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Json(body): Json<BucketBody>,
) -> Result<Json<BucketView>, AppError> {
    crate::auth::require_editor(&user)?;
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
    crate::auth::require_editor(&user)?;
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
) -> Result<Json<PackagesAdded>, AppError> {
    crate::auth::require_editor(&user)?;
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
    Ok(Json(PackagesAdded {
        bucket: detail(&b, &packages),
        added,
    }))
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
) -> Result<Json<PackagesRemoved>, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let removed = buckets::remove_packages(state.store.as_ref(), caller, id, &body.ids).await?;
    Ok(Json(PackagesRemoved { removed }))
}
