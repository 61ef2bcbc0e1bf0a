//! Writing a template back to the directory layout.
//!
//! [`render_files`] is pure: it returns every file of the layout with its text.
//! Original text is preserved where the model still matches it:
//! `template.conf` ([`TemplateConfig::raw`](crate::TemplateConfig::raw)),
//! package lists ([`PackageList::raw`](crate::PackageList::raw)) and the
//! `.path` / `.policy` sidecars are written exactly as they were read unless the
//! model was changed, in which case their canonical form is written. Scripts,
//! files and the custom installer are stored verbatim, so they always round
//! trip. Loading a directory and writing it elsewhere therefore reproduces
//! every content file byte for byte; documentation (READMEs, `.gitkeep`) and
//! files that were reported and skipped are not written. Disabled scripts are
//! not written either (the layout cannot express "disabled").

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::conf::{CONF_FILE, render_conf};
use crate::files::{PATH_SUFFIX, POLICY_SUFFIX};
use crate::layout::{CONTAINER_CONFIGS, FILES, PACKAGES, SCRIPTS, content_path};
use crate::packages::CUSTOM_INSTALLER;
use crate::template::Template;

/// Every file of `t`'s directory layout: path relative to the template
/// directory, and text. Order: `template.conf`, scripts, files (each followed
/// by its `.path` and `.policy`), package lists, `custom.sh`.
pub fn render_files(t: &Template) -> Vec<(PathBuf, String)> {
    let mut out = vec![(PathBuf::from(CONF_FILE), render_conf(&t.config))];
    for script in t.scripts.iter().filter(|s| s.enabled) {
        out.push((
            content_path(SCRIPTS, &script.file_name()),
            script.content.clone(),
        ));
    }
    for file in &t.files {
        out.push((content_path(FILES, &file.name), file.content.clone()));
        out.push((
            content_path(FILES, &format!("{}{PATH_SUFFIX}", file.name)),
            file.render_path(),
        ));
        out.push((
            content_path(FILES, &format!("{}{POLICY_SUFFIX}", file.name)),
            file.render_policy(),
        ));
    }
    for list in &t.packages {
        out.push((content_path(PACKAGES, &list.file_name()), list.render()));
    }
    for list in &t.custom_lists {
        out.push((content_path(PACKAGES, &list.file_name()), list.raw.clone()));
    }
    if let Some(custom) = &t.custom_installer {
        out.push((content_path(PACKAGES, CUSTOM_INSTALLER), custom.clone()));
    }
    if let Some(user_data) = &t.cloud_init {
        out.push((crate::cloudinit::user_data_path(), user_data.clone()));
    }
    for doc in &t.docs {
        out.push((PathBuf::from(&doc.path), doc.content.clone()));
    }
    out
}

/// True if `path` is `template.conf`, `cloud-init/user-data.yaml` or
/// `container-configs/<folder>/<file>`,
/// made only of plain components: what [`render_files`] produces for valid names.
fn is_safe_layout_path(path: &Path) -> bool {
    let parts: Vec<Component<'_>> = path.components().collect();
    let plain = parts.iter().all(|c| matches!(c, Component::Normal(_)));
    let shape = match parts.as_slice() {
        // `template.conf` or a document next to it.
        [Component::Normal(_)] => true,
        [Component::Normal(dir), Component::Normal(file)] => {
            *dir == crate::cloudinit::CLOUD_INIT_DIR && *file == crate::cloudinit::USER_DATA
        }
        [
            Component::Normal(root),
            Component::Normal(_),
            Component::Normal(_),
        ] => *root == CONTAINER_CONFIGS,
        _ => false,
    };
    plain && shape
}

/// Writes `t` into `dir` (created if missing) using the directory layout of
/// [`render_files`]. Existing files with the same paths are overwritten; other
/// files in `dir` are left alone, so write into an empty or new directory for
/// an exact export. Refuses (with [`io::ErrorKind::InvalidInput`], before
/// writing anything) if a name would put a file outside its folder; run
/// [`Template::validate`] to get a precise diagnostic for that.
pub fn write_dir(t: &Template, dir: &Path) -> io::Result<()> {
    let files = render_files(t);
    if let Some((bad, _)) = files.iter().find(|(path, _)| !is_safe_layout_path(path)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing to write `{}`: a script, file or bucket name is not a plain file name",
                bad.display()
            ),
        ));
    }
    fs::create_dir_all(dir)?;
    for (path, text) in files {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, text)?;
    }
    Ok(())
}
