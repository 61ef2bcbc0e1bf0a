//! The application side of templates: converting between the format crate's
//! [`Template`](ctforge_template::Template) and the stored
//! [`TemplateRecord`](crate::storage::model::TemplateRecord), discovering templates under the
//! configured roots, and exporting stored templates back to the directory layout.
//!
//! - [`convert`]: `Template` ⇄ `TemplateRecord`, with a content hash that makes re-discovery
//!   idempotent.
//! - [`discovery`]: scan roots, upsert what changed (one transaction per template), report.
//! - [`edit`]: save templates edited in the UI or the API; parse pasted bucket lists.
//! - [`manage`]: the audited use-cases (discover, save, delete, duplicate) both front ends call.
//! - [`export`]: write a stored template as a directory or as a `.tar.gz` archive.
//! - [`git`]: fetch `[[templates.git]]` repositories into the data dir for discovery;
//!   [`git_ssh`] (deploy key file, pinned `known_hosts`) and [`git_keys`] (sealed deploy keys)
//!   for ssh sources.

pub mod convert;
pub mod discovery;
pub mod edit;
pub mod export;
pub mod git;
pub mod git_keys;
pub mod git_ssh;
pub mod manage;

pub use convert::{StoredConfig, content_hash, record_to_template, template_to_record};
pub use discovery::{
    Changes, DiscoveryReport, NameChanges, Status, TemplateReport, discover_loaded, discover_roots,
    discover_sources,
};
pub use export::{export, export_tar_gz, load_template, load_template_page};

use crate::storage::StoreError;

/// `templates.source` of a template discovered on disk.
pub const SOURCE_FILESYSTEM: &str = "filesystem";
/// `templates.source` of a template created in the UI.
pub const SOURCE_CUSTOM: &str = "custom";

/// Why a template operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TemplatesError {
    /// No template has this name.
    #[error(
        "no template named `{0}`: check the name with `ctforge templates discover` or the templates page"
    )]
    NotFound(String),
    /// The stored copy cannot be turned back into a template.
    #[error("stored template `{name}` is unreadable ({reason}): run discovery again to refresh it")]
    Corrupt {
        /// Template name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing files failed.
    #[error("cannot write {path}: {source}; check that the directory is writable")]
    Io {
        /// What was being written.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TemplatesError> for crate::error::AppError {
    fn from(e: TemplatesError) -> Self {
        match e {
            TemplatesError::NotFound(name) => Self::NotFound(format!("template `{name}`")),
            TemplatesError::Store(e) => e.into(),
            other => Self::Internal(other.into()),
        }
    }
}
