//! Package buckets (named, reusable package lists): the use-cases behind `/buckets` and
//! `/api/v1/buckets` — validation, the change, and its audit entry, once.

use std::collections::BTreeMap;

use ctforge_template::PackageManager;
use serde_json::json;

use crate::audit::{self, Caller};
use crate::error::AppError;
use crate::storage::model::{Bucket, BucketPackage};
use crate::storage::{Store, StoreError};
use crate::templates::edit::parse_paste;

/// Counts of packages per manager.
pub fn counts(packages: &[BucketPackage]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in packages {
        *out.entry(p.manager.clone()).or_insert(0) += 1;
    }
    out
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
fn name_conflict(e: StoreError, name: &str) -> AppError {
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

fn not_found(id: i64) -> impl Fn(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => AppError::NotFound(format!("bucket {id}")),
        other => other.into(),
    }
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

/// Every bucket with its packages.
pub async fn list(store: &dyn Store) -> Result<Vec<(Bucket, Vec<BucketPackage>)>, AppError> {
    let mut out = Vec::new();
    for b in store.list_buckets().await? {
        let packages = store.list_bucket_packages(b.id).await?;
        out.push((b, packages));
    }
    Ok(out)
}

/// One bucket with its packages; `NotFound` when it does not exist.
pub async fn get(store: &dyn Store, id: i64) -> Result<(Bucket, Vec<BucketPackage>), AppError> {
    let b = store.get_bucket(id).await.map_err(not_found(id))?;
    let packages = store.list_bucket_packages(id).await?;
    Ok((b, packages))
}

/// Creates a bucket; returns its id.
pub async fn create(
    store: &dyn Store,
    caller: Caller<'_>,
    name: &str,
    description: &str,
) -> Result<i64, AppError> {
    let name = check_name(name)?;
    let id = store
        .create_bucket(&name, description.trim())
        .await
        .map_err(|e| name_conflict(e, &name))?;
    audit::record(
        store,
        caller
            .entry("bucket.create", &name)
            .detail(json!({ "id": id })),
    )
    .await?;
    Ok(id)
}

/// Renames bucket `id` and sets its description (`None` keeps the current one).
pub async fn update(
    store: &dyn Store,
    caller: Caller<'_>,
    id: i64,
    name: &str,
    description: Option<&str>,
) -> Result<(), AppError> {
    let old = store.get_bucket(id).await.map_err(not_found(id))?;
    let name = check_name(name)?;
    let description = description.unwrap_or(&old.description);
    store
        .update_bucket(id, &name, description.trim())
        .await
        .map_err(|e| name_conflict(e, &name))?;
    audit::record(
        store,
        caller
            .entry("bucket.update", &name)
            .detail(json!({ "id": id, "old_name": old.name })),
    )
    .await?;
    Ok(())
}

/// Deletes bucket `id` (templates keep the packages they copied); returns what it was.
pub async fn delete(store: &dyn Store, caller: Caller<'_>, id: i64) -> Result<Bucket, AppError> {
    let b = store.get_bucket(id).await.map_err(not_found(id))?;
    store.delete_bucket(id).await?;
    audit::record(
        store,
        caller
            .entry("bucket.delete", &b.name)
            .detail(json!({ "id": id })),
    )
    .await?;
    Ok(b)
}

/// Adds (or re-pins) the packages of a pasted list, all or nothing; returns how many.
pub async fn add_packages(
    store: &dyn Store,
    caller: Caller<'_>,
    id: i64,
    manager: Option<&str>,
    text: &str,
) -> Result<usize, AppError> {
    let b = store.get_bucket(id).await.map_err(not_found(id))?;
    let additions = parse_additions(manager, text)?;
    store
        .add_bucket_packages(id, &additions)
        .await
        .map_err(not_found(id))?;
    audit::record(
        store,
        caller
            .entry("bucket.packages.add", &b.name)
            .detail(json!({ "id": id, "count": additions.len() })),
    )
    .await?;
    Ok(additions.len())
}

/// Removes packages by id; returns how many were removed.
pub async fn remove_packages(
    store: &dyn Store,
    caller: Caller<'_>,
    id: i64,
    ids: &[i64],
) -> Result<u64, AppError> {
    let b = store.get_bucket(id).await.map_err(not_found(id))?;
    let removed = store.remove_bucket_packages(id, ids).await?;
    audit::record(
        store,
        caller
            .entry("bucket.packages.remove", &b.name)
            .detail(json!({ "id": id, "removed": removed })),
    )
    .await?;
    Ok(removed)
}
