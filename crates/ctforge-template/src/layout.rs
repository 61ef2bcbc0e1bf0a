//! The directory layout of a template and the file-name rules shared by the
//! loader, the writer and validation.
//!
//! ```text
//! <template-name>/
//!   template.conf
//!   container-configs/
//!     scripts/NN-name.sh
//!     files/<name>, files/<name>.path, files/<name>.policy
//!     packages/<bucket>.apt|.apk|.dnf|.npm|.pip, packages/custom.sh
//! ```
//!
//! Documentation is not content: hidden files (`.gitkeep`, editor files), files
//! whose name starts with `readme` (any case) inside the content folders, and
//! every top-level entry other than `template.conf` and `container-configs/`
//! are ignored without a diagnostic.

use std::path::PathBuf;

/// Folder holding the content folders.
pub const CONTAINER_CONFIGS: &str = "container-configs";
/// Content folder for scripts.
pub const SCRIPTS: &str = "scripts";
/// Content folder for config files.
pub const FILES: &str = "files";
/// Content folder for package lists.
pub const PACKAGES: &str = "packages";
/// The three content folders.
pub const CONTENT_DIRS: [&str; 3] = [SCRIPTS, FILES, PACKAGES];

/// Longest file name accepted, in bytes (the usual filesystem limit).
pub const MAX_NAME_LEN: usize = 255;

/// Longest template name accepted, in bytes.
pub const MAX_TEMPLATE_NAME_LEN: usize = 64;

/// Checks that `name` can be a template's name: the name of its directory, portable across
/// filesystems and usable as one URL path segment without escaping — letters, digits, `.`,
/// `_` and `-`, starting with a letter or digit, at most [`MAX_TEMPLATE_NAME_LEN`] bytes.
pub fn check_template_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty template name: give it a name".to_owned());
    }
    if name.len() > MAX_TEMPLATE_NAME_LEN {
        return Err(format!(
            "template name is longer than {MAX_TEMPLATE_NAME_LEN} bytes: shorten it"
        ));
    }
    if is_hidden(name) {
        return check_file_name(name, "template name");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "template name `{}` must start with a letter or digit: it names a directory",
            name.escape_debug()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "template name `{}` contains `{}`: it names a directory, so use only letters, \
             digits, `.`, `_` and `-` (like `web-server`)",
            name.escape_debug(),
            bad.escape_debug()
        ));
    }
    Ok(())
}

/// `container-configs/<dir>/<name>`, relative to the template directory.
pub fn content_path(dir: &str, name: &str) -> PathBuf {
    [CONTAINER_CONFIGS, dir, name].iter().collect()
}

/// Hidden files (`.gitkeep`, `.DS_Store`, editor swap files) are never content.
pub(crate) fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// README files document a folder; they are not content.
pub(crate) fn is_readme(name: &str) -> bool {
    name.get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("readme"))
}

/// Checks that `name` can be a single file name in a content folder and be
/// read back as content. `what` names the thing in the message ("script name").
pub(crate) fn check_file_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("empty {what}: give it a name"));
    }
    if name.contains('/') {
        return Err(format!(
            "{what} `{name}` contains a path separator: use a plain file name"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "{what} contains a line break or control character: remove it"
        ));
    }
    if is_hidden(name) {
        return Err(format!(
            "{what} `{name}` starts with `.`, so it would be ignored as a hidden file: remove \
             the leading `.`"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{what} is longer than {MAX_NAME_LEN} bytes: shorten it"
        ));
    }
    Ok(())
}
