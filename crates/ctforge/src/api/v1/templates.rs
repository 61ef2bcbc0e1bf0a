//! `/api/v1/templates`: list, read, discover, delete and export templates.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::model::{NewAudit, TemplateRow};
use crate::templates::{self, StoredConfig, TemplatesError};

/// Filters of `GET /api/v1/templates`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Case-insensitive text searched in name, display name and description.
    pub q: Option<String>,
    /// Only templates with this tag (case-insensitive).
    pub tag: Option<String>,
}

/// Options of `DELETE /api/v1/templates/{name}`.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    /// Delete even while containers reference the template.
    #[serde(default)]
    pub force: bool,
}

fn tags_of(row: &TemplateRow) -> Vec<String> {
    row.tags
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn header_json(row: &TemplateRow, config: &StoredConfig) -> serde_json::Map<String, Value> {
    let c = &config.config;
    let value = json!({
        "id": row.id,
        "name": row.name,
        "app": row.app,
        "description": row.description,
        "tags": tags_of(row),
        "source": row.source,
        "source_path": row.source_path,
        "diverged": row.diverged,
        "content_hash": row.content_hash,
        "resources": {
            "cpu": c.cpu,
            "ram_mib": c.ram_mib,
            "disk_gib": c.disk_gib,
            "swap_mib": c.swap_mib,
            "os": c.os,
            "os_version": c.os_version,
        },
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// `GET /api/v1/templates?q=&tag=`: summaries with counts, by name.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let tag = query
        .tag
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase);
    let mut out = Vec::new();
    for summary in state.store.list_templates().await? {
        let row = &summary.row;
        if let Some(q) = &q {
            let hay = format!("{}\n{}\n{}", row.name, row.app, row.description).to_lowercase();
            if !hay.contains(q.as_str()) {
                continue;
            }
        }
        if let Some(tag) = &tag
            && !tags_of(row).iter().any(|t| t.to_lowercase() == *tag)
        {
            continue;
        }
        let config = StoredConfig::parse(&row.name, &row.config_json).unwrap_or_default();
        let mut item = header_json(row, &config);
        item.insert("script_count".into(), json!(summary.script_count));
        item.insert("file_count".into(), json!(summary.file_count));
        item.insert("package_count".into(), json!(summary.package_count));
        out.push(Value::Object(item));
    }
    Ok(Json(json!({ "templates": out })))
}

/// `GET /api/v1/templates/{name}`: the full template.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (record, template) = templates::load_template(state.store.as_ref(), &name).await?;
    let config = StoredConfig::parse(&record.row.name, &record.row.config_json)?;
    let mut out = header_json(&record.row, &config);
    out.insert(
        "config".into(),
        serde_json::to_value(&template.config).map_err(|e| AppError::Internal(e.into()))?,
    );
    out.insert("custom_installer".into(), json!(template.custom_installer));
    out.insert(
        "scripts".into(),
        json!(
            record
                .scripts
                .iter()
                .map(|s| json!({
                    "position": s.position,
                    "name": s.name,
                    "content": s.content,
                    "enabled": s.enabled,
                }))
                .collect::<Vec<_>>()
        ),
    );
    out.insert(
        "files".into(),
        json!(
            record
                .files
                .iter()
                .map(|f| json!({
                    "name": f.name,
                    "target_dir": f.target_dir,
                    "policy": f.policy,
                    "content": f.content,
                }))
                .collect::<Vec<_>>()
        ),
    );
    out.insert(
        "packages".into(),
        json!(
            record
                .packages
                .iter()
                .map(|p| json!({
                    "bucket": p.bucket,
                    "manager": p.manager,
                    "name": p.name,
                    "version": p.version,
                    "position": p.position,
                }))
                .collect::<Vec<_>>()
        ),
    );
    Ok(Json(Value::Object(out)))
}

async fn audit(
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

/// `POST /api/v1/templates/discover`: scans the configured roots; returns the report.
pub async fn discover(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<Value>, AppError> {
    let roots = state.config.templates.roots.clone();
    if roots.is_empty() {
        return Err(AppError::invalid(
            "no templates roots configured: set CTFORGE_TEMPLATES__ROOTS (or templates.roots in \
             the config file) and restart ctforge",
        ));
    }
    let report = templates::discover_roots(state.store.as_ref(), &roots).await?;
    let detail = json!({
        "added": report.count(templates::Status::Added),
        "changed": report.count(templates::Status::Changed),
        "failed": report.count(templates::Status::Failed),
    });
    audit(
        &state,
        &user,
        remote,
        "template.discover",
        "templates",
        detail,
    )
    .await;
    Ok(Json(
        serde_json::to_value(&report).map_err(|e| AppError::Internal(e.into()))?,
    ))
}

/// `DELETE /api/v1/templates/{name}?force=true`: 409 while containers reference it unless
/// forced (their records then keep no template).
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, AppError> {
    let record = match state.store.get_template_by_name(&name).await {
        Ok(record) => record,
        Err(crate::storage::StoreError::NotFound) => {
            return Err(TemplatesError::NotFound(name).into());
        }
        Err(e) => return Err(e.into()),
    };
    let used = state.store.count_template_containers(record.row.id).await?;
    if used > 0 && !query.force {
        return Err(AppError::Conflict(format!(
            "referenced by {used} containers; pass ?force=true to delete it anyway"
        )));
    }
    state.store.delete_template(record.row.id).await?;
    audit(
        &state,
        &user,
        remote,
        "template.delete",
        &name,
        json!({ "containers": used, "force": query.force }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/templates/{name}/export`: the directory layout as `<name>.tar.gz`.
pub async fn export(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (record, template) = templates::load_template(state.store.as_ref(), &name).await?;
    let mtime = u64::try_from(record.row.updated_at / 1000).unwrap_or(0);
    let bytes = templates::export_tar_gz(&template, mtime)?;
    let file_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}.tar.gz\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
