//! The audited template use-cases behind `/templates` and `/api/v1/templates`: discover,
//! sync (git sources), create, update, delete and duplicate — each the change plus its audit entry, once, whichever
//! front end asked.

use std::path::PathBuf;

use ctforge_template::Template;
use serde_json::json;

use super::edit::{self, SaveError};
use super::{DiscoveryReport, Status, TemplatesError};
use crate::audit::{self, Caller};
use crate::error::AppError;
use crate::secrets::Keyring;
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

/// Fetches every `[[templates.git]]` source into `<data_dir>/git/`, then discovers templates
/// under `roots` and the checkouts. Deploy keys named in the config are stored (sealed) first;
/// ssh sources are fetched with their stored key and pinned host key. A source that cannot be
/// fetched becomes a warning in the report (its previous checkout, if any, is still scanned so
/// its templates are kept).
pub async fn sync_sources(
    store: &dyn Store,
    keyring: &Keyring,
    data_dir: &std::path::Path,
    roots: &[PathBuf],
    sources: &[crate::config::GitSource],
) -> Result<DiscoveryReport, AppError> {
    // One sync at a time per process: the schedule and an on-demand sync share checkouts.
    static SYNC: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = SYNC.lock().await;
    let mut warnings = super::git_keys::import_configured(store, keyring, sources).await?;
    let mut synced = Vec::new();
    for source in sources {
        let access = match super::git_keys::access_for(store, keyring, source).await {
            Ok(access) => access,
            Err(e) => {
                tracing::warn!("{e}");
                warnings.push(e);
                continue;
            }
        };
        match super::git::sync(data_dir, source, &access).await {
            Ok(s) => synced.push(s),
            Err(e) => {
                tracing::warn!("{e}");
                warnings.push(e.to_string());
            }
        }
    }
    let mut report = super::discover_sources(store, roots, &synced).await?;
    for s in &synced {
        if let Some(i) = report
            .roots
            .iter()
            .position(|r| *r == s.root.display().to_string())
        {
            report.roots[i] = format!(
                "{} ({}@{}, {})",
                s.source.url,
                s.source.branch,
                s.commit.get(..12).unwrap_or(&s.commit),
                s.root.display()
            );
        }
    }
    report.warnings.splice(0..0, warnings);
    Ok(report)
}

/// [`sync_sources`] for the configured sources, audited as `template.sync`.
pub async fn sync(
    state: &crate::state::AppState,
    caller: Caller<'_>,
    via: Via,
) -> Result<DiscoveryReport, AppError> {
    let config = &state.config;
    let store = state.store.as_ref();
    let report = sync_sources(
        store,
        &state.keyring,
        &config.data_dir,
        &config.templates.roots,
        &config.templates.git,
    )
    .await?;
    audit::record(
        store,
        caller.entry("template.sync", "templates").detail(json!({
            "via": via.as_str(),
            "sources": config.templates.git.len(),
            "added": report.count(Status::Added),
            "changed": report.count(Status::Changed),
            "failed": report.count(Status::Failed),
            "warnings": report.warnings.len(),
        })),
    )
    .await?;
    Ok(report)
}

/// The way back for a diverged template: drops the edits made in ctforge (the `diverged`
/// mark) and takes the template again from its source — a sync for a git-sourced template,
/// discovery for one from a directory. Audited as `template.reattach`.
pub async fn reattach(
    state: &crate::state::AppState,
    caller: Caller<'_>,
    name: &str,
    via: Via,
) -> Result<DiscoveryReport, AppError> {
    let store = state.store.as_ref();
    let mut record = match store.get_template_by_name(name).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Err(TemplatesError::NotFound(name.to_owned()).into()),
        Err(e) => return Err(e.into()),
    };
    if !record.row.diverged {
        return Err(AppError::Conflict(format!(
            "{name} is not diverged: it already follows its source"
        )));
    }
    let git = super::StoredConfig::parse(name, &record.row.config_json)
        .ok()
        .and_then(|c| c.git);
    record.row.diverged = false;
    store.upsert_template(&record).await?;
    let config = &state.config;
    let report = if git.is_some() {
        sync_sources(
            store,
            &state.keyring,
            &config.data_dir,
            &config.templates.roots,
            &config.templates.git,
        )
        .await?
    } else {
        super::discover_roots(store, &config.templates.roots).await?
    };
    audit::record(
        store,
        caller.entry("template.reattach", name).detail(json!({
            "via": via.as_str(),
            "git": git.as_ref().map(|g| g.url.clone()),
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

/// Syncs the git sources at startup and then every `templates.git_sync_interval_secs` until
/// shutdown; nothing when there are no git sources or the interval is 0.
pub fn spawn_git_schedule(state: &crate::state::AppState) -> Option<tokio::task::JoinHandle<()>> {
    let config = state.config.clone();
    let every = config.templates.git_sync_interval_secs;
    if config.templates.git.is_empty() || every == 0 {
        return None;
    }
    let store = state.store.clone();
    let keyring = state.keyring.clone();
    let stop = state.shutdown.clone();
    Some(tokio::spawn(async move {
        loop {
            match sync_sources(
                store.as_ref(),
                &keyring,
                &config.data_dir,
                &config.templates.roots,
                &config.templates.git,
            )
            .await
            {
                Ok(report) => tracing::info!(
                    added = report.count(Status::Added),
                    changed = report.count(Status::Changed),
                    failed = report.count(Status::Failed),
                    "templates synced from git"
                ),
                Err(e) => tracing::warn!("template git sync failed: {e}"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(every)) => {}
            }
        }
    }))
}
