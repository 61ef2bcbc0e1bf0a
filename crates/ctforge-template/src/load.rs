//! Loading a template directory (or the same files held in memory) into a
//! [`Template`] plus diagnostics, and discovering templates under a root.
//!
//! Reading is split in two: [`load_dir`] only does the IO (it never follows
//! symbolic links inside a template and never reads outside the directory it
//! is given), and [`load_files`] turns a set of relative paths and their bytes
//! into the model. Both never panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::conf::{CONF_FILE, parse_conf};
use crate::diagnostic::{Diagnostic, Severity};
use crate::files::{
    FilePolicy, PATH_SUFFIX, POLICY_SUFFIX, TemplateFile, parse_path_sidecar, parse_policy_sidecar,
};
use crate::layout::{CONTAINER_CONFIGS, CONTENT_DIRS, FILES, PACKAGES, SCRIPTS, content_path};
use crate::layout::{is_hidden, is_readme};
use crate::packages::{
    CUSTOM_EXTENSION, CUSTOM_INSTALLER, CustomList, PackageList, PackageManager, parse_package_list,
};
use crate::scripts::{Script, ScriptNameError, parse_script_name};
use crate::template::{Template, TemplateDoc};

/// Largest file ctforge reads from a template, in bytes (16 MiB). Larger files
/// are reported and skipped.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The result of loading a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    /// The template; `None` only when `template.conf` is missing or unreadable.
    pub template: Option<Template>,
    /// Every problem found, sorted by file and line.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True if any diagnostic is an error (the template must not be used).
    pub fn has_errors(&self) -> bool {
        crate::diagnostic::has_errors(&self.diagnostics)
    }
}

/// What was found at one relative path.
enum Node {
    File(Vec<u8>),
    Dir,
    /// Present but unreadable; a diagnostic was already recorded.
    Unreadable,
}

/// Loads the template directory `dir`. The template's name is the directory's
/// name. Reads only `template.conf` and the files directly inside
/// `container-configs/{scripts,files,packages}`.
pub fn load_dir(dir: &Path) -> Loaded {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| {
            dir.canonicalize()
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut nodes = BTreeMap::new();
    let mut diags = Vec::new();
    read_conf(dir, &mut nodes, &mut diags);
    read_docs(dir, &mut nodes, &mut diags);
    read_user_data(dir, &mut nodes, &mut diags);
    read_container_configs(dir, &mut nodes, &mut diags);
    assemble(&name, nodes, diags)
}

/// Loads a template from files held in memory: relative paths (as in the
/// directory layout, e.g. `container-configs/scripts/10-setup.sh`) and their
/// bytes. This is what [`load_dir`] does after reading the disk, so it accepts
/// the output of [`render_files`](crate::render_files) and suits fuzzing and
/// uploads. Paths that are absolute or contain `..` are reported and ignored.
pub fn load_files(name: &str, files: impl IntoIterator<Item = (PathBuf, Vec<u8>)>) -> Loaded {
    let mut nodes = BTreeMap::new();
    let mut diags = Vec::new();
    for (path, bytes) in files {
        if !path.components().all(|c| matches!(c, Component::Normal(_)))
            || path.as_os_str().is_empty()
        {
            diags.push(Diagnostic::warning(
                path,
                None,
                "path is not inside the template, so it is ignored: use a relative path like \
                 `container-configs/scripts/10-setup.sh`",
            ));
            continue;
        }
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_FILE_SIZE {
            diags.push(too_large(&path));
            nodes.insert(path, Node::Unreadable);
            continue;
        }
        nodes.insert(path, Node::File(bytes));
    }
    assemble(name, nodes, diags)
}

/// Finds every template directly under `root` (each subdirectory that holds a
/// `template.conf`) and loads it. Sorted by directory name. An unreadable
/// `root` yields no templates.
pub fn discover(root: &Path) -> Vec<(PathBuf, Loaded)> {
    template_dirs(root)
        .into_iter()
        .map(|dir| {
            let loaded = load_dir(&dir);
            (dir, loaded)
        })
        .collect()
}

/// The template directories under `root` (subdirectories with a `template.conf`), sorted by
/// name, without loading them: a caller that loads one at a time ([`load_dir`]) holds one
/// template in memory however many there are.
pub fn template_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && fs::symlink_metadata(p.join(CONF_FILE)).is_ok())
        .collect();
    dirs.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    dirs
}

fn too_large(path: &Path) -> Diagnostic {
    Diagnostic::error(
        path,
        None,
        format!(
            "file is larger than {} MiB, so it is skipped: keep large or binary files out of \
             the template",
            MAX_FILE_SIZE / 1024 / 1024
        ),
    )
}

fn io_error(path: &Path, what: &str, err: &io::Error) -> Diagnostic {
    let reason = err.to_string().to_lowercase();
    Diagnostic::error(
        path,
        None,
        format!("cannot read this {what} ({reason}): check that it exists and is readable"),
    )
}

fn symlink_skipped(path: &Path) -> Diagnostic {
    Diagnostic::warning(
        path,
        None,
        "symbolic links are not followed inside a template, so this one is ignored: replace it \
         with a copy of the file",
    )
}

/// Reads one regular file (size-checked) into `nodes`.
fn read_file(
    abs: &Path,
    rel: PathBuf,
    len: u64,
    nodes: &mut BTreeMap<PathBuf, Node>,
    diags: &mut Vec<Diagnostic>,
) {
    if len > MAX_FILE_SIZE {
        diags.push(too_large(&rel));
        nodes.insert(rel, Node::Unreadable);
        return;
    }
    match fs::read(abs) {
        Ok(bytes) => {
            nodes.insert(rel, Node::File(bytes));
        }
        Err(err) => {
            diags.push(io_error(&rel, "file", &err));
            nodes.insert(rel, Node::Unreadable);
        }
    }
}

fn read_conf(dir: &Path, nodes: &mut BTreeMap<PathBuf, Node>, diags: &mut Vec<Diagnostic>) {
    let abs = dir.join(CONF_FILE);
    let rel = PathBuf::from(CONF_FILE);
    match fs::symlink_metadata(&abs) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            diags.push(io_error(&rel, "file", &err));
            nodes.insert(rel, Node::Unreadable);
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            diags.push(Diagnostic::error(
                &rel,
                None,
                "template.conf is a symbolic link, which ctforge does not follow: replace it \
                 with the file itself",
            ));
            nodes.insert(rel, Node::Unreadable);
        }
        Ok(meta) if meta.is_dir() => {
            nodes.insert(rel, Node::Dir);
        }
        Ok(meta) => read_file(&abs, rel, meta.len(), nodes, diags),
    }
}

/// The regular files next to `template.conf` (the template's documents and tools, e.g.
/// `README.md`, `container.sh`); hidden files and symbolic links are left out.
fn read_docs(dir: &Path, nodes: &mut BTreeMap<PathBuf, Node>, diags: &mut Vec<Diagnostic>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == CONF_FILE || is_hidden(&name) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_file() {
            read_file(
                &entry.path(),
                PathBuf::from(&name),
                meta.len(),
                nodes,
                diags,
            );
        }
    }
}

/// `cloud-init/user-data.yaml`, when present (symbolic links are not followed).
fn read_user_data(dir: &Path, nodes: &mut BTreeMap<PathBuf, Node>, diags: &mut Vec<Diagnostic>) {
    let rel = crate::cloudinit::user_data_path();
    let abs = dir.join(&rel);
    match fs::symlink_metadata(&abs) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            diags.push(io_error(&rel, "file", &err));
            nodes.insert(rel, Node::Unreadable);
        }
        Ok(meta) if meta.file_type().is_symlink() => diags.push(symlink_skipped(&rel)),
        Ok(meta) if meta.is_dir() => {
            nodes.insert(rel, Node::Dir);
        }
        Ok(meta) => read_file(&abs, rel, meta.len(), nodes, diags),
    }
}

fn read_container_configs(
    dir: &Path,
    nodes: &mut BTreeMap<PathBuf, Node>,
    diags: &mut Vec<Diagnostic>,
) {
    let abs = dir.join(CONTAINER_CONFIGS);
    let rel = PathBuf::from(CONTAINER_CONFIGS);
    match fs::symlink_metadata(&abs) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return,
        Err(err) => {
            diags.push(io_error(&rel, "folder", &err));
            return;
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            diags.push(symlink_skipped(&rel));
            return;
        }
        Ok(meta) if !meta.is_dir() => {
            diags.push(Diagnostic::warning(
                &rel,
                None,
                "`container-configs` is a file, not a folder, so it is ignored: make it a folder \
                 holding `scripts/`, `files/` and `packages/`",
            ));
            return;
        }
        Ok(_) => {}
    }
    read_folder(&abs, &rel, 1, nodes, diags);
}

/// Reads the entries of a folder. At depth 1 (`container-configs/`) the known
/// content folders are descended into and other files are recorded without
/// their content; at depth 2 (a content folder) files are read.
fn read_folder(
    abs: &Path,
    rel: &Path,
    depth: u8,
    nodes: &mut BTreeMap<PathBuf, Node>,
    diags: &mut Vec<Diagnostic>,
) {
    let entries = match fs::read_dir(abs) {
        Ok(entries) => entries,
        Err(err) => {
            diags.push(io_error(rel, "folder", &err));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                diags.push(io_error(rel, "folder", &err));
                continue;
            }
        };
        let name = entry.file_name();
        let entry_rel = rel.join(&name);
        let entry_abs = entry.path();
        let hidden = name.to_str().is_some_and(is_hidden);
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(err) => {
                diags.push(io_error(&entry_rel, "file", &err));
                continue;
            }
        };
        if file_type.is_symlink() {
            if !hidden {
                diags.push(symlink_skipped(&entry_rel));
            }
        } else if file_type.is_dir() {
            let content = name.to_str().is_some_and(|n| CONTENT_DIRS.contains(&n));
            if depth == 1 && content {
                read_folder(&entry_abs, &entry_rel, 2, nodes, diags);
            } else {
                nodes.insert(entry_rel, Node::Dir);
            }
        } else if file_type.is_file() {
            if depth == 1 {
                nodes.insert(entry_rel, Node::File(Vec::new()));
            } else {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                read_file(&entry_abs, entry_rel, len, nodes, diags);
            }
        } else if !hidden {
            diags.push(Diagnostic::warning(
                &entry_rel,
                None,
                "not a regular file (a device, socket or pipe), so it is ignored: remove it",
            ));
        }
    }
}

/// Files of the three content folders, by file name.
#[derive(Default)]
struct Content {
    scripts: BTreeMap<String, Node>,
    files: BTreeMap<String, Node>,
    packages: BTreeMap<String, Node>,
}

fn assemble(name: &str, nodes: BTreeMap<PathBuf, Node>, mut diags: Vec<Diagnostic>) -> Loaded {
    if let Err(message) = crate::layout::check_template_name(name) {
        diags.push(Diagnostic::error(PathBuf::new(), None, message));
    }
    let mut conf_node = None;
    let mut user_data = None;
    let mut docs = Vec::new();
    let mut content = Content::default();
    let mut warned_folders = BTreeSet::new();

    for (path, node) in nodes {
        let parts: Option<Vec<&str>> = path
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        let Some(parts) = parts else {
            diags.push(Diagnostic::warning(
                &path,
                None,
                "file name is not valid UTF-8, so it is ignored: rename it",
            ));
            continue;
        };
        if parts.as_slice() == [CONF_FILE] {
            conf_node = Some(node);
            continue;
        }
        if parts.as_slice()
            == [
                crate::cloudinit::CLOUD_INIT_DIR,
                crate::cloudinit::USER_DATA,
            ]
        {
            match node {
                Node::File(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => user_data = Some(text),
                    Err(_) => diags.push(not_utf8(
                        &path,
                        "cloud-init user-data",
                        "the virtual machine gets no user-data from the template",
                    )),
                },
                Node::Dir => diags.push(Diagnostic::error(
                    &path,
                    None,
                    "`cloud-init/user-data.yaml` is a folder: it must be a file starting with \
                     `#cloud-config`",
                )),
                Node::Unreadable => {}
            }
            continue;
        }
        // Anything else at the top level is documentation or tooling: kept as a document.
        if parts.first() != Some(&CONTAINER_CONFIGS) {
            if let ([doc], Node::File(bytes)) = (parts.as_slice(), &node)
                && let Ok(text) = std::str::from_utf8(bytes)
            {
                docs.push(TemplateDoc {
                    path: (*doc).to_owned(),
                    content: text.to_owned(),
                });
            }
            continue;
        }
        if let ([_, folder, entry], Node::File(bytes)) = (parts.as_slice(), &node)
            && CONTENT_DIRS.contains(folder)
            && (is_readme(entry) || *entry == ".gitkeep")
            && let Ok(text) = std::str::from_utf8(bytes)
        {
            docs.push(TemplateDoc {
                path: path.to_string_lossy().into_owned(),
                content: text.to_owned(),
            });
        }
        match parts.as_slice() {
            [_, entry] => {
                if is_hidden(entry) || is_readme(entry) {
                    continue;
                }
                match node {
                    Node::Dir => {
                        if !CONTENT_DIRS.contains(entry) {
                            warn_unknown_folder(&mut diags, &mut warned_folders, &path);
                        }
                    }
                    _ => diags.push(Diagnostic::warning(
                        &path,
                        None,
                        format!(
                            "`{entry}` is not part of the template layout, so it is ignored: put \
                             it in `scripts/`, `files/` or `packages/`, or name it README.md if \
                             it is documentation"
                        ),
                    )),
                }
            }
            [_, folder, rest @ ..] => {
                let folder_path: PathBuf = [CONTAINER_CONFIGS, folder].iter().collect();
                let map = match *folder {
                    SCRIPTS => &mut content.scripts,
                    FILES => &mut content.files,
                    PACKAGES => &mut content.packages,
                    _ => {
                        if !is_hidden(folder) {
                            warn_unknown_folder(&mut diags, &mut warned_folders, &folder_path);
                        }
                        continue;
                    }
                };
                match rest {
                    [file] if file.chars().any(char::is_control) => {
                        diags.push(Diagnostic::warning(
                            &path,
                            None,
                            "file name contains a control character, so it is ignored: rename it",
                        ));
                    }
                    [file] if !matches!(node, Node::Dir) => {
                        map.insert((*file).to_string(), node);
                    }
                    [sub, ..] => {
                        if !is_hidden(sub) {
                            let sub_path = folder_path.join(sub);
                            if warned_folders.insert(sub_path.clone()) {
                                diags.push(Diagnostic::warning(
                                    &sub_path,
                                    None,
                                    format!(
                                        "subfolders are not read, so `{sub}` is ignored: move \
                                         its files up into `{folder}/`"
                                    ),
                                ));
                            }
                        }
                    }
                    [] => {}
                }
            }
            _ => {}
        }
    }

    let conf_path = PathBuf::from(CONF_FILE);
    let conf_text = match conf_node {
        None => {
            diags.push(Diagnostic::error(
                &conf_path,
                None,
                "missing template.conf: every template needs one; create it with at least \
                 `TEMPLATE_APP=\"Name\"`",
            ));
            return finish(None, diags);
        }
        Some(Node::Unreadable) => return finish(None, diags),
        Some(Node::Dir) => {
            diags.push(Diagnostic::error(
                &conf_path,
                None,
                "template.conf is a folder: it must be a file of `KEY=VALUE` lines",
            ));
            return finish(None, diags);
        }
        Some(Node::File(bytes)) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                diags.push(not_utf8(
                    &conf_path,
                    "template.conf",
                    "the template cannot be loaded",
                ));
                return finish(None, diags);
            }
        },
    };
    let (config, conf_diags) = parse_conf(&conf_text);
    diags.extend(conf_diags);

    let mut template = Template::new(name);
    template.config = config;
    template.scripts = load_scripts(content.scripts, &mut diags);
    template.files = load_template_files(content.files, &mut diags);
    let (packages, custom, custom_lists) = load_packages(content.packages, &mut diags);
    template.packages = packages;
    template.custom_installer = custom;
    template.custom_lists = custom_lists;
    template.docs = docs;
    template.cloud_init = user_data;
    diags.extend(template.validate_cloud_init());
    finish(Some(template), diags)
}

fn finish(template: Option<Template>, mut diagnostics: Vec<Diagnostic>) -> Loaded {
    diagnostics.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Loaded {
        template,
        diagnostics,
    }
}

fn warn_unknown_folder(diags: &mut Vec<Diagnostic>, warned: &mut BTreeSet<PathBuf>, path: &Path) {
    if warned.insert(path.to_path_buf()) {
        diags.push(Diagnostic::warning(
            path,
            None,
            "unknown folder, so it is ignored: ctforge reads only `scripts/`, `files/` and \
             `packages/` inside `container-configs/`",
        ));
    }
}

fn not_utf8(path: &Path, what: &str, consequence: &str) -> Diagnostic {
    Diagnostic::error(
        path,
        None,
        format!("{what} is not valid UTF-8 text, so {consequence}: save it as UTF-8"),
    )
}

/// The text of a file node, or `None` (with a diagnostic) if it is not text.
fn text_of(
    node: Node,
    path: &Path,
    what: &str,
    consequence: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    match node {
        Node::File(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                diags.push(not_utf8(path, what, consequence));
                None
            }
        },
        Node::Dir | Node::Unreadable => None,
    }
}

fn load_scripts(nodes: BTreeMap<String, Node>, diags: &mut Vec<Diagnostic>) -> Vec<Script> {
    let mut scripts = Vec::new();
    for (name, node) in nodes {
        let path = content_path(SCRIPTS, &name);
        let parsed = parse_script_name(&name);
        if is_hidden(&name) || (is_readme(&name) && parsed.is_err()) {
            continue;
        }
        match parsed {
            Ok(order) => {
                if let Some(content) = text_of(node, &path, "script", "it is skipped", diags) {
                    scripts.push(Script::new(order, name, content));
                }
            }
            Err(ScriptNameError::OrderTooLarge) => diags.push(Diagnostic::warning(
                &path,
                None,
                format!(
                    "the number of `{name}` is too large, so the script is skipped: use a \
                     number below {}, like `{}`",
                    u64::from(u32::MAX).saturating_add(1),
                    suggest_script_name(&name)
                ),
            )),
            Err(ScriptNameError::Pattern) => {
                let message = if name.ends_with(".sh") {
                    format!(
                        "script name `{name}` does not match `NN-name.sh`, so it is skipped: \
                         add a number for its place in the run order, like `{}`",
                        suggest_script_name(&name)
                    )
                } else {
                    format!(
                        "`{name}` is not a script, so it is skipped: scripts are named \
                         `NN-name.sh`, and documentation belongs in README.md"
                    )
                };
                diags.push(Diagnostic::warning(&path, None, message));
            }
        }
    }
    scripts.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
    scripts
}

/// A valid script name close to `name`: its leading number (or 50 when it has
/// none or it is too large) and its name part.
fn suggest_script_name(name: &str) -> String {
    let stem = name.strip_suffix(".sh").unwrap_or(name);
    let digits_len = stem.bytes().take_while(u8::is_ascii_digit).count();
    let digits = stem.get(..digits_len).unwrap_or("");
    let number = if digits.parse::<u32>().is_ok() {
        digits
    } else {
        "50"
    };
    let rest = stem
        .get(digits_len..)
        .unwrap_or("")
        .trim_start_matches(['-', '_', '.', ' ']);
    let rest = if rest.is_empty() { "script" } else { rest };
    format!("{number}-{rest}.sh")
}

/// Whether `name` in `files/` is a sidecar of another file there.
fn sidecar_base<'a>(name: &'a str, names: &BTreeSet<&str>) -> Option<&'a str> {
    name.strip_suffix(PATH_SUFFIX)
        .or_else(|| name.strip_suffix(POLICY_SUFFIX))
        .filter(|base| names.contains(base))
}

fn load_template_files(
    mut nodes: BTreeMap<String, Node>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<TemplateFile> {
    let all: Vec<String> = nodes.keys().cloned().collect();
    let names: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    let mut files = Vec::new();
    for name in &all {
        let path = content_path(FILES, name);
        let path_name = format!("{name}{PATH_SUFFIX}");
        let policy_name = format!("{name}{POLICY_SUFFIX}");
        let has_path_sidecar = names.contains(path_name.as_str());
        if is_hidden(name)
            || sidecar_base(name, &names).is_some()
            || matches!(nodes.get(name), Some(Node::Unreadable))
        {
            // Hidden, a sidecar handled with its file, or already reported.
            continue;
        }
        if is_readme(name) && !has_path_sidecar {
            continue;
        }
        if !has_path_sidecar {
            let orphan_of = name
                .strip_suffix(PATH_SUFFIX)
                .or_else(|| name.strip_suffix(POLICY_SUFFIX));
            let message = match orphan_of {
                Some(base) => format!(
                    "`{name}` has no file `{base}` next to it, so it is ignored: add `{base}` \
                     or remove this sidecar"
                ),
                None => format!(
                    "missing `{path_name}` next to `{name}`: create it with the absolute \
                     directory to deploy the file to, like `/etc` (the file is skipped until \
                     then)"
                ),
            };
            diags.push(if orphan_of.is_some() {
                Diagnostic::warning(&path, None, message)
            } else {
                Diagnostic::error(&path, None, message)
            });
            continue;
        }
        let Some(node) = nodes.remove(name) else {
            continue;
        };
        let Some(content) = text_of(
            node,
            &path,
            "file",
            "it is skipped (ctforge deploys text files only)",
            diags,
        ) else {
            continue;
        };

        let sidecar_path = content_path(FILES, &path_name);
        let Some(raw_path) = nodes.remove(&path_name).and_then(|node| {
            text_of(
                node,
                &sidecar_path,
                "`.path` file",
                "its file is skipped",
                diags,
            )
        }) else {
            continue;
        };
        let (target_dir, issues) = parse_path_sidecar(&raw_path);
        push_sidecar_issues(diags, &sidecar_path, issues);
        let Some(target_dir) = target_dir else {
            continue;
        };

        let policy_path = content_path(FILES, &policy_name);
        let (policy, raw_policy) = match nodes.remove(&policy_name) {
            None => {
                diags.push(Diagnostic::warning(
                    &path,
                    None,
                    format!(
                        "missing `{policy_name}` next to `{name}`, so `replace` (always \
                         overwrite) is used: create it with `replace`, `default` or `backup`"
                    ),
                ));
                (FilePolicy::Replace, None)
            }
            Some(node) => {
                match text_of(
                    node,
                    &policy_path,
                    "`.policy` file",
                    "`replace` is used",
                    diags,
                ) {
                    Some(raw) => {
                        let (policy, issues) = parse_policy_sidecar(&raw);
                        push_sidecar_issues(diags, &policy_path, issues);
                        (policy.unwrap_or(FilePolicy::Replace), Some(raw))
                    }
                    None => (FilePolicy::Replace, None),
                }
            }
        };
        files.push(TemplateFile {
            name: name.clone(),
            target_dir,
            policy,
            content,
            raw_path: Some(raw_path),
            raw_policy,
        });
    }
    files
}

fn push_sidecar_issues(
    diags: &mut Vec<Diagnostic>,
    path: &Path,
    issues: Vec<(Option<u32>, Severity, String)>,
) {
    for (line, severity, message) in issues {
        diags.push(Diagnostic {
            file: path.to_path_buf(),
            line,
            severity,
            message,
        });
    }
}

fn load_packages(
    nodes: BTreeMap<String, Node>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<PackageList>, Option<String>, Vec<CustomList>) {
    let mut lists = Vec::new();
    let mut custom = None;
    let mut custom_lists = Vec::new();
    for (name, node) in nodes {
        let path = content_path(PACKAGES, &name);
        if is_hidden(&name) {
            continue;
        }
        if name == CUSTOM_INSTALLER {
            custom = text_of(node, &path, "custom installer", "it is skipped", diags);
            continue;
        }
        if let Some(bucket) = name
            .strip_suffix(CUSTOM_EXTENSION)
            .and_then(|b| b.strip_suffix('.'))
            .filter(|b| !b.is_empty())
        {
            let Some(text) = text_of(node, &path, "custom package list", "it is skipped", diags)
            else {
                continue;
            };
            let list = CustomList {
                bucket: bucket.to_string(),
                raw: text,
            };
            for (line, message) in list.parse().1 {
                diags.push(Diagnostic::warning(
                    &path,
                    u32::try_from(line).ok(),
                    format!("{message}; the line is skipped"),
                ));
            }
            custom_lists.push(list);
            continue;
        }
        let list = name
            .rsplit_once('.')
            .filter(|(bucket, _)| !bucket.is_empty())
            .and_then(|(bucket, ext)| Some((bucket, PackageManager::from_extension(ext)?)));
        match list {
            Some((bucket, manager)) => {
                let Some(text) = text_of(node, &path, "package list", "it is skipped", diags)
                else {
                    continue;
                };
                let (packages, list_diags) = parse_package_list(&text, manager);
                diags.extend(list_diags.into_iter().map(|d| d.in_file(&path)));
                lists.push(PackageList {
                    bucket: bucket.to_string(),
                    manager,
                    packages,
                    raw: Some(text),
                });
            }
            None if is_readme(&name) => {}
            None => diags.push(Diagnostic::warning(
                &path,
                None,
                format!(
                    "`{name}` is not a package list, so it is ignored: name package lists \
                     `<bucket>.apt`, `.apk`, `.dnf`, `.npm` or `.pip`, and the custom installer \
                     `custom.sh`"
                ),
            )),
        }
    }
    (lists, custom, custom_lists)
}
