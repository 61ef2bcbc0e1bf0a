//! Discovery: scan the templates roots, store what changed, report per template.
//!
//! Every template directory found under a root is loaded with the format crate. A template
//! with errors is reported as failed and its stored copy is left alone. Otherwise its record
//! is built and hashed; an unchanged hash means no write at all, a changed one means one
//! `upsert_template` (one transaction) and a list of what was added, changed or removed.
//! Filesystem templates edited in the UI (`diverged`) and custom templates are never
//! overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ctforge_template::conf::{
    KEY_APP, KEY_BRIDGE, KEY_CPU, KEY_DESCRIPTION, KEY_DISK, KEY_FUSE, KEY_KEYCTL, KEY_NESTING,
    KEY_OS, KEY_RAM, KEY_STORAGE, KEY_SWAP, KEY_TAGS, KEY_UNPRIVILEGED, KEY_VERSION,
};
use ctforge_template::{Loaded, TemplateConfig};
use serde::Serialize;

use crate::storage::model::TemplateRecord;
use crate::storage::{Store, StoreError};

use super::convert::{StoredConfig, template_to_record};
use super::git::{GitOrigin, Synced};
use super::{SOURCE_FILESYSTEM, TemplatesError};

/// What discovery did with one template.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// New: stored for the first time.
    Added,
    /// Stored again because its content changed.
    Changed,
    /// Same content as stored; nothing written.
    Unchanged,
    /// Not stored (errors, name clash); any previous copy is intact.
    Failed,
    /// Edited in the UI since it was discovered; the disk copy is not applied.
    Diverged,
}

impl Status {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Changed => "changed",
            Status::Unchanged => "unchanged",
            Status::Failed => "failed",
            Status::Diverged => "diverged, skipped",
        }
    }
}

/// Names added, changed and removed.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NameChanges {
    /// New names.
    pub added: Vec<String>,
    /// Names whose content changed.
    pub changed: Vec<String>,
    /// Names that are gone.
    pub removed: Vec<String>,
}

impl NameChanges {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    fn compare<V: PartialEq>(old: &BTreeMap<String, V>, new: &BTreeMap<String, V>) -> Self {
        let mut out = NameChanges::default();
        for (name, value) in new {
            match old.get(name) {
                None => out.added.push(name.clone()),
                Some(previous) if previous != value => out.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        out.removed = old
            .keys()
            .filter(|name| !new.contains_key(*name))
            .cloned()
            .collect();
        out
    }
}

/// What changed in a template since it was last stored.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Changes {
    /// Scripts, by file name.
    pub scripts: NameChanges,
    /// Files, by name.
    pub files: NameChanges,
    /// Packages as `bucket.manager:name`, plus `custom.sh`.
    pub packages: NameChanges,
    /// `template.conf` keys whose value changed.
    pub config_keys: Vec<String>,
    /// Anything else (formatting, comments, order, location).
    pub other: Vec<String>,
}

impl Changes {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
            && self.files.is_empty()
            && self.packages.is_empty()
            && self.config_keys.is_empty()
            && self.other.is_empty()
    }
}

/// The outcome for one template directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct TemplateReport {
    /// Template name (the directory name).
    pub name: String,
    /// The directory.
    pub dir: String,
    /// What happened.
    pub status: Status,
    /// What changed (for `changed`; everything is "added" for `added`).
    pub changes: Changes,
    /// Diagnostics as `path:line: severity: message`, paths relative to `dir`.
    pub diagnostics: Vec<String>,
    /// Why the template was not stored (`failed` and `diverged`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of one discovery run.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct DiscoveryReport {
    /// The roots scanned.
    pub roots: Vec<String>,
    /// Problems with the roots themselves (missing, unreadable, empty).
    pub warnings: Vec<String>,
    /// One entry per template directory, in root then name order.
    pub templates: Vec<TemplateReport>,
}

impl DiscoveryReport {
    /// Number of templates with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.templates.iter().filter(|t| t.status == status).count()
    }

    /// True if any template failed.
    pub fn has_failures(&self) -> bool {
        self.count(Status::Failed) > 0
    }

    /// The report for one template.
    pub fn get(&self, name: &str) -> Option<&TemplateReport> {
        self.templates.iter().find(|t| t.name == name)
    }

    /// A human-readable rendering for the command line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        for t in &self.templates {
            let _ = writeln!(out, "{:<10} {} ({})", t.status.as_str(), t.name, t.dir);
            if let Some(reason) = &t.reason {
                let _ = writeln!(out, "    {reason}");
            }
            if t.status == Status::Changed {
                for (what, changes) in [
                    ("scripts", &t.changes.scripts),
                    ("files", &t.changes.files),
                    ("packages", &t.changes.packages),
                ] {
                    for (verb, names) in [
                        ("added", &changes.added),
                        ("changed", &changes.changed),
                        ("removed", &changes.removed),
                    ] {
                        if !names.is_empty() {
                            let _ = writeln!(out, "    {what} {verb}: {}", names.join(", "));
                        }
                    }
                }
                if !t.changes.config_keys.is_empty() {
                    let _ = writeln!(
                        out,
                        "    config changed: {}",
                        t.changes.config_keys.join(", ")
                    );
                }
                for other in &t.changes.other {
                    let _ = writeln!(out, "    {other}");
                }
            }
            for d in &t.diagnostics {
                let _ = writeln!(out, "    {d}");
            }
        }
        let _ = writeln!(
            out,
            "{} templates: {} added, {} changed, {} unchanged, {} failed, {} diverged",
            self.templates.len(),
            self.count(Status::Added),
            self.count(Status::Changed),
            self.count(Status::Unchanged),
            self.count(Status::Failed),
            self.count(Status::Diverged),
        );
        out
    }
}

/// Templates loaded ahead of the one being stored (the bound of discovery's memory).
const LOAD_AHEAD: usize = 4;

/// Scans every root ([`ctforge_template::template_dirs`]) and stores what changed, loading and
/// storing one template at a time.
///
/// Filesystem reading runs on the blocking pool. A database failure aborts the run (templates
/// handled before it stay stored); template problems are reported per template.
pub async fn discover_roots(
    store: &dyn Store,
    roots: &[PathBuf],
) -> Result<DiscoveryReport, TemplatesError> {
    discover_sources(store, roots, &[]).await
}

/// [`discover_roots`] over `roots` plus the fetched git sources `git`: a template found under
/// a git checkout records its repository and commit ([`GitOrigin`]).
pub async fn discover_sources(
    store: &dyn Store,
    roots: &[PathBuf],
    git: &[Synced],
) -> Result<DiscoveryReport, TemplatesError> {
    let roots: Vec<PathBuf> = roots
        .iter()
        .cloned()
        .chain(git.iter().map(|g| g.root.clone()))
        .collect();
    let roots = roots.as_slice();
    let owned = roots.to_vec();
    // Listing directories is cheap; the templates themselves are loaded one at a time below.
    let scanned = tokio::task::spawn_blocking(move || {
        owned
            .into_iter()
            .map(|root| {
                let readable = std::fs::read_dir(&root).is_ok();
                let dirs = ctforge_template::template_dirs(&root);
                (root, readable, dirs)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| TemplatesError::Io {
        path: "the templates roots".to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut warnings = Vec::new();
    let mut all: Vec<PathBuf> = Vec::new();
    for (root, readable, dirs) in scanned {
        if !readable {
            warnings.push(format!(
                "templates root {} does not exist or cannot be read: fix templates.roots \
                 (CTFORGE_TEMPLATES__ROOTS) or create the directory",
                root.display()
            ));
        } else if dirs.is_empty() {
            warnings.push(format!(
                "templates root {} holds no template (no subdirectory with a template.conf)",
                root.display()
            ));
        }
        all.extend(dirs);
    }
    let found_dirs: BTreeSet<String> = all.iter().map(|dir| dir.display().to_string()).collect();
    let mut report = DiscoveryReport::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    // Parse → hash → compare → store as a stream: a blocking reader loads templates one at a
    // time ahead of the store by at most `LOAD_AHEAD`, so memory does not grow with the number
    // of templates (only their small reports are kept).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(PathBuf, Loaded)>(LOAD_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for dir in all {
            let loaded = ctforge_template::load_dir(&dir);
            if tx.blocking_send((dir, loaded)).is_err() {
                return; // the store side stopped (a database error)
            }
        }
    });
    while let Some((dir, loaded)) = rx.recv().await {
        let origin = git
            .iter()
            .find(|g| dir.starts_with(&g.root))
            .map(|g| GitOrigin {
                url: g.source.url.clone(),
                branch: g.source.branch.clone(),
                commit: g.commit.clone(),
            });
        let entry = discover_one(store, &dir, loaded, &mut seen, origin.as_ref()).await?;
        report.templates.push(entry);
    }
    drop(rx);
    if let Err(e) = reader.await {
        return Err(TemplatesError::Io {
            path: "the templates roots".to_owned(),
            source: std::io::Error::other(e.to_string()),
        });
    }
    // Filesystem templates whose directory vanished from a scanned root are kept (containers
    // may reference them) and reported, so a re-discovery shows every change.
    if let Ok(stored) = store.list_templates().await {
        for t in stored {
            let Some(path) = t.row.source_path.as_deref() else {
                continue;
            };
            let under_root = roots
                .iter()
                .any(|r| std::path::Path::new(path).starts_with(r));
            if t.row.source == "filesystem" && under_root && !found_dirs.contains(path) {
                warnings.push(format!(
                    "template {} is no longer on disk at {path}; the stored copy is kept (delete it from the Templates page if it is gone for good)",
                    t.row.name
                ));
            }
        }
    }
    report.roots = roots.iter().map(|r| r.display().to_string()).collect();
    report.warnings = warnings;
    Ok(report)
}

/// Stores already-loaded templates (`(directory, loaded)` pairs, as
/// [`ctforge_template::discover`] returns them). The report has no roots or warnings.
pub async fn discover_loaded(
    store: &dyn Store,
    found: Vec<(PathBuf, Loaded)>,
) -> Result<DiscoveryReport, TemplatesError> {
    let mut report = DiscoveryReport::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (dir, loaded) in found {
        let entry = discover_one(store, &dir, loaded, &mut seen, None).await?;
        report.templates.push(entry);
    }
    Ok(report)
}

async fn discover_one(
    store: &dyn Store,
    dir: &Path,
    loaded: Loaded,
    seen: &mut BTreeMap<String, String>,
    origin: Option<&GitOrigin>,
) -> Result<TemplateReport, TemplatesError> {
    let dir_text = dir.display().to_string();
    let name = loaded
        .template
        .as_ref()
        .map(|t| t.name.clone())
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut entry = TemplateReport {
        name: name.clone(),
        dir: dir_text.clone(),
        status: Status::Failed,
        changes: Changes::default(),
        diagnostics: loaded.diagnostics.iter().map(ToString::to_string).collect(),
        reason: None,
    };
    if let Some(first) = seen.get(&name) {
        entry.reason = Some(format!(
            "a template named `{name}` was already discovered in {first}: rename one of the \
             directories (this one is not stored)"
        ));
        return Ok(entry);
    }
    seen.insert(name.clone(), dir_text.clone());
    let template = match loaded.template {
        Some(t) if !loaded.diagnostics.iter().any(|d| d.is_error()) => t,
        _ => {
            entry.reason = Some(
                "the template has errors, so it is not stored (any previous copy is kept): fix \
                 the errors listed below and run discovery again"
                    .to_owned(),
            );
            return Ok(entry);
        }
    };
    let mut record = template_to_record(&template, Some(&dir_text));
    if let Some(origin) = origin {
        // After hashing: the commit alone does not make the template "changed".
        let mut stored = StoredConfig::parse(&name, &record.row.config_json)?;
        stored.git = Some(origin.clone());
        record.row.config_json =
            serde_json::to_string(&stored).unwrap_or_else(|_| record.row.config_json.clone());
    }
    let previous = match store.get_template_by_name(&name).await {
        Ok(previous) => Some(previous),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(previous) = &previous {
        if previous.row.source != SOURCE_FILESYSTEM {
            entry.reason = Some(format!(
                "a {} template named `{name}` already exists and is not replaced by discovery: \
                 rename the directory or the other template",
                previous.row.source
            ));
            return Ok(entry);
        }
        if previous.row.diverged {
            entry.status = Status::Diverged;
            entry.reason = Some(
                "edited in the UI since it was discovered, so the copy on disk is not applied: \
                 export it to keep the edits, or delete it and discover again"
                    .to_owned(),
            );
            return Ok(entry);
        }
        if previous.row.content_hash == record.row.content_hash {
            entry.status = Status::Unchanged;
            return Ok(entry);
        }
    }
    store.upsert_template(&record).await?;
    match &previous {
        None => {
            entry.status = Status::Added;
            entry.changes = diff(&empty_like(&record), &record);
            entry.changes.other.clear();
        }
        Some(previous) => {
            entry.status = Status::Changed;
            entry.changes = diff(previous, &record);
            if entry.changes.is_empty() {
                entry
                    .changes
                    .other
                    .push("comments, formatting or order changed".to_owned());
            }
        }
    }
    Ok(entry)
}

fn empty_like(record: &TemplateRecord) -> TemplateRecord {
    let mut empty = record.clone();
    empty.scripts.clear();
    empty.files.clear();
    empty.packages.clear();
    empty.row.config_json = "{}".to_owned();
    empty
}

/// What differs between two records of the same template.
pub fn diff(old: &TemplateRecord, new: &TemplateRecord) -> Changes {
    let scripts = |r: &TemplateRecord| -> BTreeMap<String, (i64, String, bool)> {
        r.scripts
            .iter()
            .map(|s| (s.name.clone(), (s.position, s.content.clone(), s.enabled)))
            .collect()
    };
    let files = |r: &TemplateRecord| -> BTreeMap<String, (String, String, String)> {
        r.files
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    (f.target_dir.clone(), f.policy.clone(), f.content.clone()),
                )
            })
            .collect()
    };
    let old_conf = StoredConfig::parse(&old.row.name, &old.row.config_json).unwrap_or_default();
    let new_conf = StoredConfig::parse(&new.row.name, &new.row.config_json).unwrap_or_default();
    let packages = |r: &TemplateRecord, c: &StoredConfig| -> BTreeMap<String, Option<String>> {
        let mut map: BTreeMap<String, Option<String>> = r
            .packages
            .iter()
            .map(|p| {
                (
                    format!("{}.{}:{}", p.bucket, p.manager, p.name),
                    p.version.clone(),
                )
            })
            .collect();
        if let Some(custom) = &c.custom_installer {
            map.insert("custom.sh".to_owned(), Some(custom.clone()));
        }
        for list in &c.custom_lists {
            map.insert(list.file_name(), Some(list.raw.clone()));
        }
        map
    };
    let mut changes = Changes {
        scripts: NameChanges::compare(&scripts(old), &scripts(new)),
        files: NameChanges::compare(&files(old), &files(new)),
        packages: NameChanges::compare(&packages(old, &old_conf), &packages(new, &new_conf)),
        config_keys: config_keys_changed(&old_conf.config, &new_conf.config),
        other: Vec::new(),
    };
    if old.row.source_path != new.row.source_path {
        changes.other.push(format!(
            "moved from {} to {}",
            old.row.source_path.as_deref().unwrap_or("-"),
            new.row.source_path.as_deref().unwrap_or("-")
        ));
    }
    changes
}

/// `template.conf` keys whose parsed value differs.
fn config_keys_changed(old: &TemplateConfig, new: &TemplateConfig) -> Vec<String> {
    let mut keys = Vec::new();
    let known: [(&str, bool); 15] = [
        (KEY_APP, old.app != new.app),
        (KEY_DESCRIPTION, old.description != new.description),
        (KEY_TAGS, old.tags != new.tags),
        (KEY_CPU, old.cpu != new.cpu),
        (KEY_RAM, old.ram_mib != new.ram_mib),
        (KEY_DISK, old.disk_gib != new.disk_gib),
        (KEY_SWAP, old.swap_mib != new.swap_mib),
        (KEY_OS, old.os != new.os),
        (KEY_VERSION, old.os_version != new.os_version),
        (KEY_UNPRIVILEGED, old.unprivileged != new.unprivileged),
        (KEY_NESTING, old.nesting != new.nesting),
        (KEY_KEYCTL, old.keyctl != new.keyctl),
        (KEY_FUSE, old.fuse != new.fuse),
        (KEY_STORAGE, old.storage != new.storage),
        (KEY_BRIDGE, old.bridge != new.bridge),
    ];
    keys.extend(
        known
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(k, _)| (*k).to_owned()),
    );
    let old_extra: BTreeMap<&str, &str> = old
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let new_extra: BTreeMap<&str, &str> = new
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let names: BTreeSet<&str> = old_extra.keys().chain(new_extra.keys()).copied().collect();
    keys.extend(
        names
            .into_iter()
            .filter(|k| old_extra.get(k) != new_extra.get(k))
            .map(str::to_owned),
    );
    keys
}
