//! Saving templates edited in the UI or the API (create custom, update, duplicate) and parsing
//! pasted package lists for buckets.
//!
//! Validation is the format crate's: callers build a [`Template`], call [`Template::validate`]
//! (through [`check`]) and only save when there are no errors. Saving keeps the original text
//! (`raw` fields) of the previous copy wherever the content is unchanged, so an edit that
//! changes nothing also changes no exported byte; editing a filesystem template marks it
//! `diverged` (re-discovery then leaves it alone).

use ctforge_template::{Diagnostic, Package, PackageManager, Template};

use crate::storage::model::TemplateRecord;
use crate::storage::{Store, StoreError};

use super::convert::{content_hash, record_to_template, template_to_record};
use super::{SOURCE_CUSTOM, SOURCE_FILESYSTEM, TemplatesError};

/// Why a save was refused.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// The template has errors; nothing was saved.
    #[error("the template has {}: fix them and save again", errors_text(.0))]
    Invalid(Vec<Diagnostic>),
    /// The name is taken by another template.
    #[error("a template named `{0}` already exists: choose another name")]
    NameTaken(String),
    /// Anything else.
    #[error(transparent)]
    Templates(#[from] TemplatesError),
    /// Saved, but its audit entry could not be written (see [`crate::audit`]).
    #[error(transparent)]
    Audit(Box<crate::error::AppError>),
}

fn errors_text(diags: &[Diagnostic]) -> String {
    match diags.iter().filter(|d| d.is_error()).count() {
        1 => "1 error".to_owned(),
        n => format!("{n} errors"),
    }
}

impl From<StoreError> for SaveError {
    fn from(e: StoreError) -> Self {
        SaveError::Templates(TemplatesError::Store(e))
    }
}

impl From<SaveError> for crate::error::AppError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Invalid(diags) => {
                let message = SaveError::Invalid(diags.clone()).to_string();
                let fields = diags
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| {
                        let mut key = d.file.display().to_string();
                        if key.is_empty() {
                            key = "name".to_owned();
                        }
                        if let Some(line) = d.line {
                            key = format!("{key}:{line}");
                        }
                        (key, d.message.clone())
                    })
                    .collect();
                Self::Invalid { message, fields }
            }
            SaveError::NameTaken(_) => Self::Conflict(e.to_string()),
            SaveError::Templates(e) => e.into(),
            SaveError::Audit(e) => *e,
        }
    }
}

/// The template's diagnostics (errors and warnings) from [`Template::validate`].
pub fn check(template: &Template) -> Vec<Diagnostic> {
    template.validate()
}

/// Names the template pages use as paths of their own (`/templates/new`, …).
pub const RESERVED_NAMES: [&str; 2] = ["new", "discover"];

fn refuse_errors(template: &Template) -> Result<(), SaveError> {
    let mut diags = check(template);
    if RESERVED_NAMES.contains(&template.name.as_str()) {
        diags.push(Diagnostic::error(
            std::path::PathBuf::new(),
            None,
            format!(
                "the name `{}` is reserved for the templates pages: choose another name",
                template.name
            ),
        ));
    }
    if diags.iter().any(Diagnostic::is_error) {
        return Err(SaveError::Invalid(diags));
    }
    Ok(())
}

async fn exists(store: &dyn Store, name: &str) -> Result<bool, SaveError> {
    match store.get_template_by_name(name).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Stores `template` as a new custom template (source `custom`). Refuses a taken name and
/// templates with errors. Returns the stored record.
pub async fn create_custom(
    store: &dyn Store,
    template: &Template,
) -> Result<TemplateRecord, SaveError> {
    refuse_errors(template)?;
    if exists(store, &template.name).await? {
        return Err(SaveError::NameTaken(template.name.clone()));
    }
    let mut record = template_to_record(template, None);
    record.row.source = SOURCE_CUSTOM.to_owned();
    record.row.content_hash = content_hash(&record);
    store.upsert_template(&record).await?;
    Ok(store.get_template_by_name(&template.name).await?)
}

/// Copies the original text of `previous` into `edited` where it still applies (the format
/// crate re-emits it only while it parses to the same content).
pub fn keep_raw(edited: &mut Template, previous: &Template) {
    if edited.config.raw.is_none() {
        edited.config.raw = previous.config.raw.clone();
    }
    for list in &mut edited.packages {
        if list.raw.is_none()
            && let Some(old) = previous
                .packages
                .iter()
                .find(|l| l.bucket == list.bucket && l.manager == list.manager)
        {
            list.raw = old.raw.clone();
        }
    }
    for file in &mut edited.files {
        if let Some(old) = previous.files.iter().find(|f| f.name == file.name) {
            if file.raw_path.is_none() {
                file.raw_path = old.raw_path.clone();
            }
            if file.raw_policy.is_none() {
                file.raw_policy = old.raw_policy.clone();
            }
        }
    }
}

/// The web editor edits container settings only: a vm template keeps its type, its vm keys and
/// its cloud-init user-data when the edit leaves them out.
fn keep_vm_settings(edited: &mut Template, old: &Template) {
    let c = &mut edited.config;
    if c.template_type.is_none() {
        c.template_type = old.config.template_type;
    }
    if c.agent.is_none() {
        c.agent = old.config.agent;
    }
    for (new, previous) in [
        (&mut c.machine, &old.config.machine),
        (&mut c.bios, &old.config.bios),
        (&mut c.image, &old.config.image),
    ] {
        if new.is_none() {
            new.clone_from(previous);
        }
    }
    if edited.cloud_init.is_none() {
        edited.cloud_init.clone_from(&old.cloud_init);
    }
}

/// Replaces the stored template `name` with `edited` (whose name is forced to `name`).
/// A filesystem template whose content changes is marked `diverged`. Returns the new record.
pub async fn update(
    store: &dyn Store,
    name: &str,
    edited: &Template,
) -> Result<TemplateRecord, SaveError> {
    let previous = match store.get_template_by_name(name).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Err(TemplatesError::NotFound(name.to_owned()).into()),
        Err(e) => return Err(e.into()),
    };
    let mut edited = edited.clone();
    edited.name = name.to_owned();
    refuse_errors(&edited)?;
    if let Ok(old) = record_to_template(&previous) {
        keep_raw(&mut edited, &old);
        // The editor does not edit documents and `.custom` lists: an edit keeps them.
        if edited.docs.is_empty() {
            edited.docs = old.docs.clone();
        }
        if edited.custom_lists.is_empty() {
            edited.custom_lists = old.custom_lists.clone();
        }
        keep_vm_settings(&mut edited, &old);
    }
    let mut record = template_to_record(&edited, previous.row.source_path.as_deref());
    record.row.source = previous.row.source.clone();
    record.row.content_hash = content_hash(&record);
    // A git-sourced template keeps its origin (after hashing, as discovery stores it): the
    // template page then says which commit it diverged from.
    if let Some(git) = super::StoredConfig::parse(name, &previous.row.config_json)
        .ok()
        .and_then(|c| c.git)
        && let Ok(mut stored) = super::StoredConfig::parse(name, &record.row.config_json)
    {
        stored.git = Some(git);
        if let Ok(json) = serde_json::to_string(&stored) {
            record.row.config_json = json;
        }
    }
    let changed = record.row.content_hash != previous.row.content_hash;
    record.row.diverged =
        previous.row.diverged || (changed && previous.row.source == SOURCE_FILESYSTEM);
    if changed || record.row.diverged != previous.row.diverged {
        store.upsert_template(&record).await?;
    }
    Ok(store.get_template_by_name(name).await?)
}

/// A free name for a copy of `name`: `<name>-copy`, `<name>-copy-2`, …
pub async fn copy_name(store: &dyn Store, name: &str) -> Result<String, SaveError> {
    let mut candidate = format!("{name}-copy");
    let mut n = 2;
    while exists(store, &candidate).await? {
        candidate = format!("{name}-copy-{n}");
        n += 1;
    }
    Ok(candidate)
}

/// Copies the stored template `name` to a new custom template `new_name`.
pub async fn duplicate(
    store: &dyn Store,
    name: &str,
    new_name: &str,
) -> Result<TemplateRecord, SaveError> {
    let (_, mut template) = super::load_template(store, name).await?;
    template.name = new_name.trim().to_owned();
    create_custom(store, &template).await
}

/// A bucket name as a package-list file stem: lowercase letters, digits, `-`, `_` and `.`.
pub fn bucket_stem(name: &str) -> String {
    let stem: String = name
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches(['-', '.']).to_owned();
    if stem.is_empty() {
        "packages".to_owned()
    } else {
        stem
    }
}

/// One package of a pasted list: manager, name, version.
pub type PastedPackage = (PackageManager, Package);

/// Parses a pasted list for a bucket: one package per line, either `manager:name[pin]`
/// (e.g. `apt:curl=7.88`, `npm:pm2@5`) or a plain spec using `default_manager`. Blank lines and
/// `#` comments are skipped. Returns the packages and `(line, message)` for each bad line.
pub fn parse_paste(
    text: &str,
    default_manager: Option<PackageManager>,
) -> (Vec<PastedPackage>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let prefixed = content.split_once(':').and_then(|(m, rest)| {
            m.parse::<PackageManager>()
                .ok()
                .map(|manager| (manager, rest))
        });
        let (manager, spec) = match (prefixed, default_manager) {
            (Some((manager, rest)), _) => (manager, rest),
            (None, Some(manager)) => (manager, content),
            (None, None) => {
                errors.push((
                    line_no,
                    format!(
                        "`{content}` names no package manager: write it as `apt:{content}` or \
                         choose a manager for plain names"
                    ),
                ));
                continue;
            }
        };
        match Package::parse(manager, spec) {
            Ok(package) => out.push((manager, package)),
            Err(message) => errors.push((line_no, message)),
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paste_with_prefixes_and_default() {
        let (ok, bad) = parse_paste(
            "apt:curl=7.88\n# c\n\nnpm:pm2@5\ngit\nbad name\n",
            Some(PackageManager::Apt),
        );
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[1].0, PackageManager::Npm);
        assert_eq!(ok[2].1.name, "git");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 6);
        let (_, bad) = parse_paste("git\n", None);
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn stems() {
        assert_eq!(bucket_stem("Web Base!"), "web-base");
        assert_eq!(bucket_stem("  "), "packages");
    }
}
