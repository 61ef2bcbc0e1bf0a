//! The audited template use-cases behind `/templates` and `/api/v1/templates`: discover,
//! create, update, delete and duplicate — each the change plus its audit entry, once, whichever
//! front end asked.

use std::path::PathBuf;

use ctforge_template::Template;
use serde_json::json;

use super::edit::{self, SaveError};
use super::{DiscoveryReport, Status, TemplatesError};
use crate::audit::{self, Caller};
use crate::error::AppError;
use crate::storage::model::TemplateRecord;
use crate::storage::{Store, StoreError};

/// Which front end asked (recorded in the audit entry's detail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The HTML pages.
    Ui,
    /// The JSON API.
    Api,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ui => "ui",
            Self::Api => "api",
        }
    }
}

impl From<AppError> for SaveError {
    fn from(e: AppError) -> Self {
        SaveError::Audit(Box::new(e))
    }
}

/// Scans `roots` and stores what changed; audited as `template.discover`.
pub async fn discover(
    store: &dyn Store,
    caller: Caller<'_>,
    roots: &[PathBuf],
    via: Via,
) -> Result<DiscoveryReport, AppError> {
    let report = super::discover_roots(store, roots).await?;
    audit::record(
        store,
        caller
            .entry("template.discover", "templates")
            .detail(json!({
                "via": via.as_str(),
                "added": report.count(Status::Added),
                "changed": report.count(Status::Changed),
                "failed": report.count(Status::Failed),
            })),
    )
    .await?;
    Ok(report)
}

/// Saves `template` as a new custom template (`editing` None) or replaces template `editing`.
pub async fn save(
    store: &dyn Store,
    caller: Caller<'_>,
    editing: Option<&str>,
    template: &Template,
    via: Via,
) -> Result<TemplateRecord, SaveError> {
    let (record, action) = match editing {
        Some(name) => (
            edit::update(store, name, template).await?,
            "template.update",
        ),
        None => (
            edit::create_custom(store, template).await?,
            "template.create",
        ),
    };
    audit::record(
        store,
        caller
            .entry(action, &record.row.name)
            .detail(json!({ "via": via.as_str() })),
    )
    .await?;
    Ok(record)
}

/// What [`delete`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted; this many container records referenced it (and now keep no template).
    Done {
        /// Referencing containers.
        containers: i64,
    },
    /// Not deleted: this many containers reference it and `force` was not given.
    InUse(i64),
}

/// Deletes template `name`; refused while containers reference it unless `force`.
pub async fn delete(
    store: &dyn Store,
    caller: Caller<'_>,
    name: &str,
    force: bool,
    via: Via,
) -> Result<Deleted, AppError> {
    let record = match store.get_template_by_name(name).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Err(TemplatesError::NotFound(name.to_owned()).into()),
        Err(e) => return Err(e.into()),
    };
    let used = store.count_template_containers(record.row.id).await?;
    if used > 0 && !force {
        return Ok(Deleted::InUse(used));
    }
    store.delete_template(record.row.id).await?;
    audit::record(
        store,
        caller
            .entry("template.delete", name)
            .detail(json!({ "containers": used, "force": force, "via": via.as_str() })),
    )
    .await?;
    Ok(Deleted::Done { containers: used })
}

/// Copies template `name` to a new custom template named `new_name` (default: the first free
/// `<name>-copy[-N]`).
pub async fn duplicate(
    store: &dyn Store,
    caller: Caller<'_>,
    name: &str,
    new_name: Option<&str>,
    via: Via,
) -> Result<TemplateRecord, SaveError> {
    let new_name = match new_name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => edit::copy_name(store, name).await?,
    };
    let record = edit::duplicate(store, name, &new_name).await?;
    audit::record(
        store,
        caller
            .entry("template.duplicate", &record.row.name)
            .detail(json!({ "from": name, "via": via.as_str() })),
    )
    .await?;
    Ok(record)
}
