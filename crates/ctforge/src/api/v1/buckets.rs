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
use serde_json::{Value, json};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::routes::{Doc, Routes};
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::{Bucket, BucketPackage, NewAudit};
use crate::templates::edit::parse_paste;

/// Counts of packages per manager.
pub fn counts(packages: &[BucketPackage]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in packages {
        *out.entry(p.manager.clone()).or_insert(0) += 1;
    }
    out
}

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

/// Checks a bucket name: not empty, at most 100 characters, one line.
pub fn check_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    let problem = if name.is_empty() {
        Some("enter a name, like `web-base`")
    } else if name.chars().count() > 100 {
        Some("use at most 100 characters")
    } else if name.contains(['\n', '\r']) {
        Some("use one line")
    } else {
        None
    };
    match problem {
        Some(message) => Err(AppError::Invalid {
            message: format!("invalid bucket name: {message}"),
            fields: vec![("name".to_owned(), message.to_owned())],
        }),
        None => Ok(name.to_owned()),
    }
}

/// Maps a storage conflict on bucket names to a helpful message.
pub fn name_conflict(e: StoreError, name: &str) -> AppError {
    match e {
        StoreError::Conflict(_) => AppError::Invalid {
            message: format!("a bucket named `{name}` already exists"),
            fields: vec![(
                "name".to_owned(),
                format!("a bucket named `{name}` already exists: choose another name"),
            )],
        },
        StoreError::NotFound => AppError::NotFound("bucket".to_owned()),
        other => other.into(),
    }
}

fn not_found(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => AppError::NotFound("bucket".to_owned()),
        other => other.into(),
    }
}

/// Writes an audit entry (failures are logged, not returned).
pub async fn audit(
    state: &AppState,
    user: &CurrentUser,
    remote: SocketAddr,
    action: &str,
    target: &str,
    detail: Value,
) {
    let entry = NewAudit {
        actor: user.username.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        remote_addr: remote.ip().to_string(),
        outcome: "ok".to_owned(),
        detail_json: detail.to_string(),
    };
    if let Err(e) = state.store.add_audit(&entry).await {
        tracing::warn!(error = %e, action, "cannot write audit entry");
    }
}

/// `GET /api/v1/buckets`.
pub async fn list(State(state): State<AppState>) -> Result<Json<BucketList>, AppError> {
    let mut out = Vec::new();
    for b in state.store.list_buckets().await? {
        let packages = state.store.list_bucket_packages(b.id).await?;
        out.push(bucket_json(&b, &packages));
    }
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
    let name = check_name(&body.name)?;
    let description = body.description.unwrap_or_default();
    let id = state
        .store
        .create_bucket(&name, description.trim())
        .await
        .map_err(|e| name_conflict(e, &name))?;
    audit(
        &state,
        &user,
        remote,
        "bucket.create",
        &name,
        json!({ "id": id }),
    )
    .await;
    let b = state.store.get_bucket(id).await?;
    Ok((StatusCode::CREATED, Json(bucket_json(&b, &[]))).into_response())
}

/// `GET /api/v1/buckets/{id}`: the bucket with its packages.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<BucketDetail>, AppError> {
    let b = state.store.get_bucket(id).await.map_err(not_found)?;
    let packages = state.store.list_bucket_packages(id).await?;
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
    let old = state.store.get_bucket(id).await.map_err(not_found)?;
    let name = check_name(&body.name)?;
    let description = body.description.unwrap_or(old.description);
    state
        .store
        .update_bucket(id, &name, description.trim())
        .await
        .map_err(|e| name_conflict(e, &name))?;
    audit(
        &state,
        &user,
        remote,
        "bucket.update",
        &name,
        json!({ "id": id, "old_name": old.name }),
    )
    .await;
    let b = state.store.get_bucket(id).await?;
    let packages = state.store.list_bucket_packages(id).await?;
    Ok(Json(bucket_json(&b, &packages)))
}

/// `DELETE /api/v1/buckets/{id}`. Templates keep the packages they copied.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    let b = state.store.get_bucket(id).await.map_err(not_found)?;
    state.store.delete_bucket(id).await?;
    audit(
        &state,
        &user,
        remote,
        "bucket.delete",
        &b.name,
        json!({ "id": id }),
    )
    .await;
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

/// Parses what to add: all or nothing. Errors are `line N` → message.
pub fn parse_additions(
    manager: Option<&str>,
    text: &str,
) -> Result<Vec<(String, String, Option<String>)>, AppError> {
    let manager = match manager.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Some(m.parse::<PackageManager>().map_err(|e| AppError::Invalid {
            message: e.to_string(),
            fields: vec![("manager".to_owned(), e.to_string())],
        })?),
        None => None,
    };
    let (ok, errors) = parse_paste(text, manager);
    if !errors.is_empty() {
        return Err(AppError::Invalid {
            message: format!(
                "{} line(s) could not be read; nothing was added",
                errors.len()
            ),
            fields: errors
                .into_iter()
                .map(|(line, m)| (format!("line {line}"), m))
                .collect(),
        });
    }
    if ok.is_empty() {
        return Err(AppError::Invalid {
            message: "no packages given: write one package per line".to_owned(),
            fields: vec![("text".to_owned(), "write one package per line".to_owned())],
        });
    }
    Ok(ok
        .into_iter()
        .map(|(m, p)| (m.as_str().to_owned(), p.name, p.version))
        .collect())
}

/// `POST /api/v1/buckets/{id}/packages`: adds (or re-pins) packages.
pub async fn add_packages(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Json(body): Json<AddPackages>,
) -> Result<Json<PackagesAdded>, AppError> {
    let b = state.store.get_bucket(id).await.map_err(not_found)?;
    let mut text = body.text.unwrap_or_default();
    for spec in &body.packages {
        text.push('\n');
        text.push_str(spec);
    }
    let additions = parse_additions(body.manager.as_deref(), &text)?;
    state.store.add_bucket_packages(id, &additions).await?;
    audit(
        &state,
        &user,
        remote,
        "bucket.packages.add",
        &b.name,
        json!({ "count": additions.len() }),
    )
    .await;
    let packages = state.store.list_bucket_packages(id).await?;
    Ok(Json(PackagesAdded {
        bucket: detail(&b, &packages),
        added: additions.len(),
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
    let b = state.store.get_bucket(id).await.map_err(not_found)?;
    let removed = state.store.remove_bucket_packages(id, &body.ids).await?;
    audit(
        &state,
        &user,
        remote,
        "bucket.packages.remove",
        &b.name,
        json!({ "removed": removed }),
    )
    .await;
    Ok(Json(PackagesRemoved { removed }))
}
