//! The ctforge template format: a pure crate that reads, validates and writes
//! template directories. It has no async, network or database code; the only
//! IO is reading the directory given to [`load_dir`] / [`discover`] and writing
//! the one given to [`write_dir`]. No input makes it panic.
//!
//! ```text
//! <root>/<template-name>/
//!   template.conf                     bash-style KEY=VALUE lines
//!   container-configs/
//!     scripts/NN-name.sh              provisioning scripts, run in numeric order
//!     files/<name>                    a config file to deploy ...
//!     files/<name>.path               ... its target directory inside the CT
//!     files/<name>.policy             ... replace | default | backup
//!     packages/<bucket>.apt|.apk|.dnf|.npm|.pip
//!     packages/custom.sh              custom installers (optional)
//!     packages/<bucket>.custom        the library's custom packages (optional)
//!   cloud-init/user-data.yaml         vm templates (`TEMPLATE_TYPE=vm`): cloud-init user-data
//! ```
//!
//! Every problem is a [`Diagnostic`] (file, line, error or warning, and a
//! message that says how to fix it). Loading returns a model whenever
//! `template.conf` can be read, plus all diagnostics; callers decide with
//! [`Loaded::has_errors`].
//!
//! Round trip: [`load_dir`] then [`write_dir`] reproduces every content file
//! byte for byte. The model keeps the original text of `template.conf`,
//! package lists and file sidecars (`raw` fields) and re-emits it as long as
//! the model still equals what that text parses to; once edited, the
//! canonical form is written (see [`write`](mod@write)). Use
//! [`Template::without_raw`] to compare templates by content only.
//!
//! The pure entry points ([`parse_conf`], [`parse_package_list`],
//! [`load_files`], [`Template::validate`], [`render_files`]) need no disk and
//! are what the UI editor and the fuzz target (`fuzz/`, run with
//! `fuzz/run.sh SECONDS`) use.

#![warn(missing_docs)]

pub mod cloudinit;
pub mod conf;
pub mod diagnostic;
pub mod files;
pub mod layout;
pub mod load;
pub mod packages;
pub mod scripts;
mod shell;
pub mod template;
pub mod write;

pub use conf::{TemplateConfig, TemplateType, parse_conf, render_conf, render_conf_canonical};
pub use diagnostic::{Diagnostic, Severity};
pub use files::{FilePolicy, TemplateFile, validate_target_path};
pub use load::{Loaded, MAX_FILE_SIZE, discover, load_dir, load_files, template_dirs};
pub use packages::{
    CustomList, CustomPackage, Package, PackageList, PackageManager, parse_package_list,
};
pub use scripts::{PER_INSTANCE_MARKER, Script, is_per_instance, parse_script_name};
pub use template::{Template, TemplateDoc};
pub use write::{render_files, write_dir};
