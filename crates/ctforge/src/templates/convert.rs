//! `Template` ⇄ `TemplateRecord`.
//!
//! The relational rows hold what the UI edits (scripts, files, packages); `config_json` holds
//! a [`StoredConfig`]: the whole parsed `template.conf` (unknown keys and original text
//! included) plus what the rows cannot express — the original text of package lists and file
//! sidecars, empty package lists and `packages/custom.sh` — so an export reproduces the
//! discovered files byte for byte. The fields of [`TemplateConfig`] sit at the top level of
//! the JSON, so `config_json` also deserializes as a plain `TemplateConfig`.

use std::collections::BTreeMap;

use ctforge_template::{
    FilePolicy, Package, PackageList, PackageManager, Script, Template, TemplateConfig,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::model::{
    TemplateFile as FileRow, TemplatePackage, TemplateRecord, TemplateRow, TemplateScript,
};

use super::{SOURCE_FILESYSTEM, TemplatesError};

/// What `templates.config_json` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfig {
    /// The parsed `template.conf`, including unknown keys and its original text.
    #[serde(flatten)]
    pub config: TemplateConfig,
    /// `packages/custom.sh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_installer: Option<String>,
    /// The library's `packages/<bucket>.custom` lists, as their text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_lists: Vec<ctforge_template::CustomList>,
    /// The template's other documents (README.md, CREDENTIALS.md, container.sh, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docs: Vec<ctforge_template::TemplateDoc>,
    /// Every package list in file order, with its original text (kept even when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_lists: Vec<StoredList>,
    /// Original `.path` / `.policy` text per file name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file_sidecars: BTreeMap<String, StoredSidecars>,
    /// The git repository and commit a git-sourced template was discovered at. Set after
    /// hashing, so a new commit that leaves the template alone does not change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<super::git::GitOrigin>,
    /// `cloud-init/user-data.yaml` of a vm template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<String>,
}

/// One package list's identity and original text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredList {
    /// Bucket (file stem).
    pub bucket: String,
    /// Manager (file extension).
    pub manager: PackageManager,
    /// Original file text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// Original sidecar texts of one file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSidecars {
    /// `.path` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    /// `.policy` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_policy: Option<String>,
}

impl StoredConfig {
    /// Parses `config_json`; a malformed value names the template in the error.
    pub fn parse(name: &str, json: &str) -> Result<StoredConfig, TemplatesError> {
        serde_json::from_str(json).map_err(|e| TemplatesError::Corrupt {
            name: name.to_owned(),
            reason: format!("config_json: {e}"),
        })
    }
}

/// Builds the record stored for `t`, discovered in `source_path`. The hash is filled in.
pub fn template_to_record(t: &Template, source_path: Option<&str>) -> TemplateRecord {
    let stored = StoredConfig {
        config: t.config.clone(),
        custom_installer: t.custom_installer.clone(),
        custom_lists: t.custom_lists.clone(),
        docs: t.docs.clone(),
        package_lists: t
            .packages
            .iter()
            .map(|l| StoredList {
                bucket: l.bucket.clone(),
                manager: l.manager,
                raw: l.raw.clone(),
            })
            .collect(),
        file_sidecars: t
            .files
            .iter()
            .filter(|f| f.raw_path.is_some() || f.raw_policy.is_some())
            .map(|f| {
                (
                    f.name.clone(),
                    StoredSidecars {
                        raw_path: f.raw_path.clone(),
                        raw_policy: f.raw_policy.clone(),
                    },
                )
            })
            .collect(),
        git: None,
        cloud_init: t.cloud_init.clone(),
    };
    // Serializing plain data with string keys cannot fail; fall back to an empty object.
    let config_json = serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_owned());
    let mut record = TemplateRecord {
        row: TemplateRow {
            id: 0,
            name: t.name.clone(),
            source: SOURCE_FILESYSTEM.to_owned(),
            source_path: source_path.map(str::to_owned),
            app: t.config.app.clone().unwrap_or_else(|| t.name.clone()),
            description: t.config.description.clone().unwrap_or_default(),
            tags: t.config.tags.join(";"),
            config_json,
            content_hash: String::new(),
            diverged: false,
            created_at: 0,
            updated_at: 0,
        },
        scripts: t
            .scripts
            .iter()
            .map(|s| TemplateScript {
                position: i64::from(s.order),
                name: s.name.clone(),
                content: s.content.clone(),
                enabled: s.enabled,
            })
            .collect(),
        files: t
            .files
            .iter()
            .map(|f| FileRow {
                name: f.name.clone(),
                target_dir: f.target_dir.clone(),
                policy: f.policy.as_str().to_owned(),
                content: f.content.clone(),
            })
            .collect(),
        packages: t
            .packages
            .iter()
            .flat_map(|l| {
                l.packages.iter().enumerate().map(|(i, p)| TemplatePackage {
                    bucket: l.bucket.clone(),
                    manager: l.manager.as_str().to_owned(),
                    name: p.name.clone(),
                    version: p.version.clone(),
                    position: i64::try_from(i).unwrap_or(i64::MAX),
                })
            })
            .collect(),
    };
    record.row.content_hash = content_hash(&record);
    record
}

/// SHA-256 (hex) of the canonical JSON of a record's content: everything but id, timestamps,
/// the hash itself and the `diverged` flag. Scripts, files and packages are hashed in a
/// canonical order so the order the database returns them in does not matter.
pub fn content_hash(record: &TemplateRecord) -> String {
    let r = &record.row;
    let mut scripts: Vec<_> = record
        .scripts
        .iter()
        .map(|s| (s.position, &s.name, &s.content, s.enabled))
        .collect();
    scripts.sort();
    let mut files: Vec<_> = record
        .files
        .iter()
        .map(|f| (&f.name, &f.target_dir, &f.policy, &f.content))
        .collect();
    files.sort();
    let mut packages: Vec<_> = record
        .packages
        .iter()
        .map(|p| (&p.bucket, &p.manager, p.position, &p.name, &p.version))
        .collect();
    packages.sort();
    let canonical = serde_json::json!({
        "name": r.name,
        "source": r.source,
        "source_path": r.source_path,
        "app": r.app,
        "description": r.description,
        "tags": r.tags,
        "config": r.config_json,
        "scripts": scripts,
        "files": files,
        "packages": packages,
    });
    let mut hasher = Sha256::new();
    hasher.update(canonical.to_string().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rebuilds the format crate's model from a stored record.
pub fn record_to_template(record: &TemplateRecord) -> Result<Template, TemplatesError> {
    let name = record.row.name.as_str();
    let corrupt = |reason: String| TemplatesError::Corrupt {
        name: name.to_owned(),
        reason,
    };
    let stored = StoredConfig::parse(name, &record.row.config_json)?;

    let mut scripts = Vec::with_capacity(record.scripts.len());
    for s in &record.scripts {
        let order = u32::try_from(s.position)
            .map_err(|_| corrupt(format!("script `{}` has position {}", s.name, s.position)))?;
        scripts.push(Script {
            order,
            name: s.name.clone(),
            content: s.content.clone(),
            enabled: s.enabled,
        });
    }

    let mut files = Vec::with_capacity(record.files.len());
    for f in &record.files {
        let policy: FilePolicy = f
            .policy
            .parse()
            .map_err(|_| corrupt(format!("file `{}` has policy `{}`", f.name, f.policy)))?;
        let sidecars = stored
            .file_sidecars
            .get(&f.name)
            .cloned()
            .unwrap_or_default();
        files.push(ctforge_template::TemplateFile {
            name: f.name.clone(),
            target_dir: f.target_dir.clone(),
            policy,
            content: f.content.clone(),
            raw_path: sidecars.raw_path,
            raw_policy: sidecars.raw_policy,
        });
    }

    // Group package rows by list, keeping the stored list order, then any list only the rows
    // know about (templates edited in the UI).
    let mut groups: BTreeMap<(String, PackageManager), Vec<&TemplatePackage>> = BTreeMap::new();
    for p in &record.packages {
        let manager: PackageManager = p
            .manager
            .parse()
            .map_err(|_| corrupt(format!("package `{}` has manager `{}`", p.name, p.manager)))?;
        groups
            .entry((p.bucket.clone(), manager))
            .or_default()
            .push(p);
    }
    let mut packages = Vec::new();
    for list in &stored.package_lists {
        let rows = groups
            .remove(&(list.bucket.clone(), list.manager))
            .unwrap_or_default();
        packages.push(make_list(
            &list.bucket,
            list.manager,
            rows,
            list.raw.clone(),
        ));
    }
    for ((bucket, manager), rows) in groups {
        packages.push(make_list(&bucket, manager, rows, None));
    }

    Ok(Template {
        name: name.to_owned(),
        config: stored.config,
        scripts,
        files,
        packages,
        custom_installer: stored.custom_installer,
        custom_lists: stored.custom_lists,
        docs: stored.docs,
        cloud_init: stored.cloud_init,
    })
}

fn make_list(
    bucket: &str,
    manager: PackageManager,
    mut rows: Vec<&TemplatePackage>,
    raw: Option<String>,
) -> PackageList {
    rows.sort_by_key(|p| p.position);
    PackageList {
        bucket: bucket.to_owned(),
        manager,
        packages: rows
            .into_iter()
            .map(|p| Package {
                name: p.name.clone(),
                version: p.version.clone(),
            })
            .collect(),
        raw,
    }
}
