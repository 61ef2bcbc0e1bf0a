//! The template editor form: its model (every value as the user typed it), parsing the posted
//! fields, turning it into a [`Template`] for the format crate's validation, mapping the
//! diagnostics back to the fields, and rendering it.
//!
//! Without JavaScript the editor works with plain posts: rows are numbered fields
//! (`script.0.name`, …), empty rows are ignored, and the "add another …", "remove" and
//! "add from bucket" buttons are submit buttons (`action=…`) that re-render the form with the
//! change applied and nothing saved.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ctforge_template::layout::{FILES, PACKAGES, SCRIPTS, content_path};
use ctforge_template::{
    Diagnostic, FilePolicy, PackageList, PackageManager, Script, Template, TemplateConfig,
    TemplateFile, parse_package_list,
};
use maud::{Markup, html};

use crate::web::components::{self as ui, Field, Viewer};

/// One script row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptRow {
    /// Run order as typed.
    pub order: String,
    /// Script name.
    pub name: String,
    /// Runs when provisioning.
    pub enabled: bool,
    /// Script text.
    pub content: String,
}

/// One file row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileRow {
    /// File name.
    pub name: String,
    /// Target directory.
    pub target_dir: String,
    /// `replace`, `default` or `backup`.
    pub policy: String,
    /// File content.
    pub content: String,
}

/// One package list row (bucket + manager).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRow {
    /// Bucket name (the list's file stem).
    pub bucket: String,
    /// Manager name.
    pub manager: String,
    /// One package per line.
    pub text: String,
}

/// The whole editor form, as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateForm {
    /// Template name.
    pub name: String,
    /// `TEMPLATE_APP`.
    pub app: String,
    /// `TEMPLATE_DESCRIPTION`.
    pub description: String,
    /// Tags, separated by `;` or `,`.
    pub tags: String,
    /// Cores.
    pub cpu: String,
    /// MiB.
    pub ram: String,
    /// GiB.
    pub disk: String,
    /// MiB.
    pub swap: String,
    /// OS.
    pub os: String,
    /// OS version.
    pub version: String,
    /// `""`, `1` or `0`.
    pub unprivileged: String,
    /// `""`, `1` or `0`.
    pub nesting: String,
    /// `""`, `1` or `0`.
    pub keyctl: String,
    /// `""`, `1` or `0`.
    pub fuse: String,
    /// Storage id.
    pub storage: String,
    /// Bridge.
    pub bridge: String,
    /// Extra keys, `KEY=value` per line.
    pub extra: String,
    /// Scripts.
    pub scripts: Vec<ScriptRow>,
    /// Files.
    pub files: Vec<FileRow>,
    /// Package lists.
    pub packages: Vec<ListRow>,
    /// `packages/custom.sh`.
    pub custom_installer: String,
}

/// What a post asked for besides the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posted {
    /// The form.
    pub form: TemplateForm,
    /// The button pressed (`save`, `add-script`, `remove-file.2`, `add-bucket`, …).
    pub action: String,
    /// The bucket chosen for "add from bucket".
    pub from_bucket: String,
}

/// Field key → messages.
pub type FieldErrors = HashMap<String, Vec<String>>;

fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

fn bool_text(value: Option<bool>) -> String {
    match value {
        Some(true) => "1".to_owned(),
        Some(false) => "0".to_owned(),
        None => String::new(),
    }
}

fn opt_text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn num_text(value: Option<u32>) -> String {
    value.map(|n| n.to_string()).unwrap_or_default()
}

impl TemplateForm {
    /// The form showing a stored template.
    pub fn from_template(t: &Template) -> TemplateForm {
        let c = &t.config;
        TemplateForm {
            name: t.name.clone(),
            app: opt_text(&c.app),
            description: opt_text(&c.description),
            tags: c.tags.join("; "),
            cpu: num_text(c.cpu),
            ram: num_text(c.ram_mib),
            disk: num_text(c.disk_gib),
            swap: num_text(c.swap_mib),
            os: opt_text(&c.os),
            version: opt_text(&c.os_version),
            unprivileged: bool_text(c.unprivileged),
            nesting: bool_text(c.nesting),
            keyctl: bool_text(c.keyctl),
            fuse: bool_text(c.fuse),
            storage: opt_text(&c.storage),
            bridge: opt_text(&c.bridge),
            extra: c.extra.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
            scripts: t
                .scripts
                .iter()
                .map(|s| ScriptRow {
                    order: s.order.to_string(),
                    name: s.name.clone(),
                    enabled: s.enabled,
                    content: s.content.clone(),
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
                .map(|l| ListRow {
                    bucket: l.bucket.clone(),
                    manager: l.manager.as_str().to_owned(),
                    text: l.render(),
                })
                .collect(),
            custom_installer: t.custom_installer.clone().unwrap_or_default(),
        }
    }

    /// A new, empty template form with sensible defaults.
    pub fn blank() -> TemplateForm {
        TemplateForm {
            os: "debian".to_owned(),
            version: "12".to_owned(),
            unprivileged: "1".to_owned(),
            ..TemplateForm::default()
        }
    }

    /// Parses posted `name=value` pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Posted {
        let mut posted = Posted::default();
        let f = &mut posted.form;
        let mut scripts: BTreeMap<usize, ScriptRow> = BTreeMap::new();
        let mut files: BTreeMap<usize, FileRow> = BTreeMap::new();
        let mut lists: BTreeMap<usize, ListRow> = BTreeMap::new();
        for (key, value) in pairs {
            let value = normalize(value);
            let mut parts = key.splitn(3, '.');
            let (kind, index, field) = (parts.next(), parts.next(), parts.next());
            if let (Some(kind), Some(Ok(index)), Some(field)) =
                (kind, index.map(str::parse::<usize>), field)
            {
                match kind {
                    "script" => {
                        let row = scripts.entry(index).or_default();
                        match field {
                            "order" => row.order = value,
                            "name" => row.name = value,
                            "enabled" => row.enabled = true,
                            "content" => row.content = value,
                            _ => {}
                        }
                    }
                    "file" => {
                        let row = files.entry(index).or_default();
                        match field {
                            "name" => row.name = value,
                            "target_dir" => row.target_dir = value,
                            "policy" => row.policy = value,
                            "content" => row.content = value,
                            _ => {}
                        }
                    }
                    "pkg" => {
                        let row = lists.entry(index).or_default();
                        match field {
                            "bucket" => row.bucket = value,
                            "manager" => row.manager = value,
                            "text" => row.text = value,
                            _ => {}
                        }
                    }
                    _ => {}
                }
                continue;
            }
            let slot = match key.as_str() {
                "name" => &mut f.name,
                "app" => &mut f.app,
                "description" => &mut f.description,
                "tags" => &mut f.tags,
                "cpu" => &mut f.cpu,
                "ram" => &mut f.ram,
                "disk" => &mut f.disk,
                "swap" => &mut f.swap,
                "os" => &mut f.os,
                "version" => &mut f.version,
                "unprivileged" => &mut f.unprivileged,
                "nesting" => &mut f.nesting,
                "keyctl" => &mut f.keyctl,
                "fuse" => &mut f.fuse,
                "storage" => &mut f.storage,
                "bridge" => &mut f.bridge,
                "extra" => &mut f.extra,
                "custom_installer" => &mut f.custom_installer,
                "action" => &mut posted.action,
                "from_bucket" => &mut posted.from_bucket,
                _ => continue,
            };
            *slot = value;
        }
        f.scripts = scripts.into_values().collect();
        f.files = files.into_values().collect();
        f.packages = lists.into_values().collect();
        posted
    }

    /// Drops rows the user left empty.
    pub fn drop_blank_rows(&mut self) {
        self.scripts
            .retain(|s| !(s.name.trim().is_empty() && s.content.trim().is_empty()));
        self.files.retain(|f| {
            !(f.name.trim().is_empty()
                && f.target_dir.trim().is_empty()
                && f.content.trim().is_empty())
        });
        self.packages
            .retain(|l| !(l.bucket.trim().is_empty() && l.text.trim().is_empty()));
    }

    /// The next free script order (multiples of 10 after the highest).
    pub fn next_order(&self) -> u32 {
        let max = self
            .scripts
            .iter()
            .filter_map(|s| s.order.trim().parse::<u32>().ok())
            .max();
        match max {
            Some(m) => (m / 10 + 1).saturating_mul(10),
            None => 10,
        }
    }

    /// Builds the template; values that cannot even be read (a number that is not one, an
    /// unknown policy) are returned as field errors. Rows must have been cleaned with
    /// [`drop_blank_rows`](Self::drop_blank_rows).
    pub fn to_template(&self) -> (Template, FieldErrors, Vec<RowPaths>) {
        let mut errors: FieldErrors = HashMap::new();
        let mut err = |key: String, message: String| errors.entry(key).or_default().push(message);
        let text = |v: &str| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        let mut number = |key: &str, v: &str, unit: &str, example: u32| {
            let v = v.trim();
            if v.is_empty() {
                return None;
            }
            match v.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => {
                    err(
                        key.to_owned(),
                        format!("`{v}` is not a whole number: enter {unit}, like {example}"),
                    );
                    None
                }
            }
        };
        let cpu = number("cpu", &self.cpu, "cores", 2);
        let ram = number("ram", &self.ram, "MiB", 2048);
        let disk = number("disk", &self.disk, "GiB", 8);
        let swap = number("swap", &self.swap, "MiB", 512);
        let mut err = |key: String, message: String| errors.entry(key).or_default().push(message);
        let mut boolean = |key: &str, v: &str| match v.trim() {
            "" => None,
            "1" | "yes" | "on" | "true" => Some(true),
            "0" | "no" | "off" | "false" => Some(false),
            other => {
                err(
                    key.to_owned(),
                    format!("`{other}` is not a choice: pick yes, no or not set"),
                );
                None
            }
        };
        let unprivileged = boolean("unprivileged", &self.unprivileged);
        let nesting = boolean("nesting", &self.nesting);
        let keyctl = boolean("keyctl", &self.keyctl);
        let fuse = boolean("fuse", &self.fuse);
        let mut extra = Vec::new();
        for (index, line) in self.extra.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some((k, v)) => extra.push((k.trim().to_owned(), v.to_owned())),
                None => err(
                    "extra".to_owned(),
                    format!(
                        "line {}: `{line}` has no `=`: write one `KEY=value` per line",
                        index + 1
                    ),
                ),
            }
        }
        let config = TemplateConfig {
            app: text(&self.app),
            description: text(&self.description),
            tags: self
                .tags
                .split([';', ','])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            cpu,
            ram_mib: ram,
            disk_gib: disk,
            swap_mib: swap,
            os: text(&self.os),
            os_version: text(&self.version),
            unprivileged,
            nesting,
            keyctl,
            fuse,
            storage: text(&self.storage),
            bridge: text(&self.bridge),
            // The form edits container settings; a vm template's keys are kept by the caller
            // (`keep_vm_settings`).
            template_type: None,
            machine: None,
            bios: None,
            image: None,
            agent: None,
            extra,
            raw: None,
        };
        let mut template = Template::new(self.name.trim());
        template.config = config;
        let mut paths = Vec::new();
        for (i, row) in self.scripts.iter().enumerate() {
            let order = match row.order.trim().parse::<u32>() {
                Ok(order) => order,
                Err(_) => {
                    err(
                        format!("script.{i}.order"),
                        format!(
                            "`{}` is not an order number: enter a whole number like 10; scripts \
                             run from low to high",
                            row.order.trim()
                        ),
                    );
                    continue;
                }
            };
            if row.name.trim().is_empty() {
                err(
                    format!("script.{i}.name"),
                    "give the script a name, like `setup.sh`".to_owned(),
                );
                continue;
            }
            let mut script = Script::new(order, row.name.trim(), normalize(&row.content));
            script.enabled = row.enabled;
            paths.push(RowPaths::Script(
                i,
                content_path(SCRIPTS, &script.file_name()),
            ));
            template.scripts.push(script);
        }
        for (i, row) in self.files.iter().enumerate() {
            let policy = match row.policy.trim().parse::<FilePolicy>() {
                Ok(policy) => policy,
                Err(e) => {
                    err(format!("file.{i}.policy"), e.to_string());
                    continue;
                }
            };
            if row.name.trim().is_empty() {
                err(
                    format!("file.{i}.name"),
                    "give the file a name, like `nginx.conf`".to_owned(),
                );
                continue;
            }
            let file = TemplateFile::new(
                row.name.trim(),
                row.target_dir.trim(),
                policy,
                normalize(&row.content),
            );
            paths.push(RowPaths::File(i, file.name.clone()));
            template.files.push(file);
        }
        for (i, row) in self.packages.iter().enumerate() {
            let manager = match row.manager.parse::<PackageManager>() {
                Ok(m) => m,
                Err(e) => {
                    err(format!("pkg.{i}.manager"), e.to_string());
                    continue;
                }
            };
            let text = normalize(&row.text);
            let (packages, diags) = parse_package_list(&text, manager);
            for d in diags.iter().filter(|d| d.is_error()) {
                err(format!("pkg.{i}.text"), line_message(d));
            }
            let mut list = PackageList::new(row.bucket.trim(), manager);
            list.packages = packages;
            list.raw = Some(text);
            paths.push(RowPaths::List(i, content_path(PACKAGES, &list.file_name())));
            template.packages.push(list);
        }
        let custom = normalize(&self.custom_installer);
        template.custom_installer = (!custom.trim().is_empty()).then_some(custom);
        (template, errors, paths)
    }
}

/// Which form row produced which part of the template, to place diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowPaths {
    /// Script row and its layout path.
    Script(usize, std::path::PathBuf),
    /// File row and its file name.
    File(usize, String),
    /// Package row and its layout path.
    List(usize, std::path::PathBuf),
}

fn line_message(d: &Diagnostic) -> String {
    match d.line {
        Some(line) => format!("line {line}: {}", d.message),
        None => d.message.clone(),
    }
}

/// The config field a `template.conf` diagnostic belongs to.
fn conf_field(message: &str) -> &'static str {
    use ctforge_template::conf::*;
    let keys = [
        (KEY_APP, "app"),
        (KEY_DESCRIPTION, "description"),
        (KEY_TAGS, "tags"),
        (KEY_CPU, "cpu"),
        (KEY_RAM, "ram"),
        (KEY_DISK, "disk"),
        (KEY_SWAP, "swap"),
        (KEY_OS, "os"),
        (KEY_VERSION, "version"),
        (KEY_UNPRIVILEGED, "unprivileged"),
        (KEY_NESTING, "nesting"),
        (KEY_KEYCTL, "keyctl"),
        (KEY_FUSE, "fuse"),
        (KEY_STORAGE, "storage"),
        (KEY_BRIDGE, "bridge"),
    ];
    // The first key quoted in the message names the field (`TEMPLATE_VERSION` before
    // `TEMPLATE_OS` in "version set but os is not").
    let mut best: Option<(usize, &'static str)> = None;
    for (key, field) in keys {
        if let Some(pos) = message.find(&format!("`{key}`"))
            && best.is_none_or(|(p, _)| pos < p)
        {
            best = Some((pos, field));
        }
    }
    if let Some((_, field)) = best {
        return field;
    }
    if message.contains("tag") {
        "tags"
    } else if message.contains("key") {
        "extra"
    } else {
        "general"
    }
}

/// Places the format crate's diagnostics on the form's fields. Returns the errors by field
/// and every diagnostic as `(is_error, "file:line: message")` for the summary.
pub fn place(diags: &[Diagnostic], paths: &[RowPaths], errors: &mut FieldErrors) {
    let conf = Path::new(ctforge_template::conf::CONF_FILE);
    for d in diags.iter().filter(|d| d.is_error()) {
        let key = if d.file.as_os_str().is_empty() {
            "name".to_owned()
        } else if d.file == conf {
            conf_field(&d.message).to_owned()
        } else {
            locate_row(d, paths).unwrap_or_else(|| "general".to_owned())
        };
        errors.entry(key).or_default().push(line_message(d));
    }
}

fn locate_row(d: &Diagnostic, paths: &[RowPaths]) -> Option<String> {
    for p in paths {
        match p {
            RowPaths::Script(i, path) if *path == d.file => {
                return Some(format!("script.{i}.name"));
            }
            RowPaths::List(i, path) if *path == d.file => {
                return Some(if d.line.is_some() {
                    format!("pkg.{i}.text")
                } else {
                    format!("pkg.{i}.bucket")
                });
            }
            RowPaths::File(i, name) => {
                let base = content_path(FILES, name);
                if d.file == base {
                    return Some(format!("file.{i}.name"));
                }
                if d.file == content_path(FILES, &format!("{name}.path")) {
                    return Some(format!("file.{i}.target_dir"));
                }
                if d.file == content_path(FILES, &format!("{name}.policy")) {
                    return Some(format!("file.{i}.policy"));
                }
            }
            _ => {}
        }
    }
    None
}

/// Everything the editor page needs besides the form.
pub struct EditorView<'a> {
    /// Viewer (CSRF).
    pub viewer: &'a Viewer,
    /// `None` for a new template, else the stored name.
    pub editing: Option<&'a str>,
    /// Source of the stored template (`filesystem` shows the divergence notice).
    pub source: Option<&'a str>,
    /// Errors by field.
    pub errors: &'a FieldErrors,
    /// Blank rows to show: scripts, files, package lists.
    pub blanks: [usize; 3],
    /// Buckets for "add from bucket": (id, label).
    pub buckets: &'a [(String, String)],
    /// A notice at the top (e.g. "packages of bucket x added").
    pub notice: Option<String>,
    /// The form holds changes that are not saved yet (a re-rendered post).
    pub unsaved: bool,
}

fn joined(errors: &FieldErrors, key: &str) -> Option<String> {
    errors.get(key).map(|m| m.join("; "))
}

const BOOL_OPTIONS: [(&str, &str); 3] = [("", "not set"), ("1", "yes (1)"), ("0", "no (0)")];

/// Renders the editor form.
pub fn render(form: &TemplateForm, view: &EditorView<'_>) -> Markup {
    let action = match view.editing {
        Some(name) => format!("/templates/{}/edit", urlencode(name)),
        None => "/templates/new".to_owned(),
    };
    let e = |key: &str| joined(view.errors, key);
    let bool_opts: Vec<(String, String)> = BOOL_OPTIONS
        .iter()
        .map(|(v, t)| ((*v).to_owned(), (*t).to_owned()))
        .collect();
    let manager_opts: Vec<(String, String)> = PackageManager::ALL
        .iter()
        .map(|m| (m.as_str().to_owned(), m.as_str().to_owned()))
        .collect();
    let policy_opts: Vec<(String, String)> = FilePolicy::ALL
        .iter()
        .map(|p| {
            let text = match p {
                FilePolicy::Replace => "replace: always write",
                FilePolicy::Default => "default: only if missing",
                FilePolicy::Backup => "backup: keep a copy, then write",
            };
            (p.as_str().to_owned(), text.to_owned())
        })
        .collect();
    let mut scripts = form.scripts.clone();
    let mut next = form.next_order();
    for _ in 0..view.blanks[0] {
        scripts.push(ScriptRow {
            order: next.to_string(),
            enabled: true,
            ..ScriptRow::default()
        });
        next = next.saturating_add(10);
    }
    let mut files = form.files.clone();
    for _ in 0..view.blanks[1] {
        files.push(FileRow {
            policy: "replace".to_owned(),
            ..FileRow::default()
        });
    }
    // Package lists grouped by manager (stable within a manager).
    let mut lists: Vec<(usize, ListRow)> = form.packages.iter().cloned().enumerate().collect();
    lists.sort_by_key(|(_, l)| {
        PackageManager::ALL
            .iter()
            .position(|m| m.as_str() == l.manager)
            .unwrap_or(usize::MAX)
    });
    let first_blank = form.packages.len();
    for k in 0..view.blanks[2] {
        lists.push((
            first_blank + k,
            ListRow {
                manager: "apt".to_owned(),
                ..ListRow::default()
            },
        ));
    }
    let general: Vec<(bool, String)> = view
        .errors
        .iter()
        .filter(|(k, _)| k.as_str() == "general")
        .flat_map(|(_, v)| v.iter().map(|m| (true, m.clone())))
        .collect();
    let error_count: usize = view.errors.values().map(Vec::len).sum();
    html! {
        @if error_count > 0 {
            (ui::alert(ui::Tone::Err, &format!("The template was not saved: {} marked below. Everything you typed is kept.", if error_count == 1 { "1 problem is".to_owned() } else { format!("{error_count} problems are") })))
        }
        (ui::problem_list("Other problems", &general))
        @if let Some(notice) = &view.notice { (ui::alert(ui::Tone::Ok, notice)) }
        @if view.source == Some(crate::templates::SOURCE_FILESYSTEM) {
            (ui::alert(ui::Tone::Warn, "This template was discovered on disk or synced from git. Saving changes marks it as diverged: discovery and Sync sources will no longer update it (the template page offers the way back)."))
        }
        form.form-wide method="post" action=(action) data-unsaved-guard data-dirty[view.unsaved] {
            (ui::csrf_field(view.viewer))
            // Enter in a text field saves (the first submit button of a form is the default).
            button.skip type="submit" name="action" value="save" tabindex="-1" aria-hidden="true" { "Save" }
            fieldset.section {
                legend { "Config" }
                @if view.editing.is_some() {
                    div.field {
                        span.label { "Name" }
                        div.mono { (form.name) }
                        div.hint { "The name cannot change; duplicate the template to copy it under another name." }
                        @if let Some(error) = e("name") { div.error { (error) } }
                    }
                    input type="hidden" name="name" value=(form.name);
                } @else {
                    (ui::field(&Field { value: &form.name, required: true, error: e("name").as_deref(), hint: Some("The directory name: letters, digits, - _ ."), ..Field::new("name", "Name") }))
                }
                div.cols {
                    (ui::field(&Field { value: &form.app, error: e("app").as_deref(), hint: Some("TEMPLATE_APP: display name"), ..Field::new("app", "App") }))
                    (ui::field(&Field { value: &form.tags, error: e("tags").as_deref(), hint: Some("TEMPLATE_TAGS: separated by ; or ,"), ..Field::new("tags", "Tags") }))
                }
                (ui::field(&Field { value: &form.description, error: e("description").as_deref(), hint: Some("TEMPLATE_DESCRIPTION"), ..Field::new("description", "Description") }))
                div.cols {
                    (ui::field(&Field { kind: "number", value: &form.cpu, error: e("cpu").as_deref(), hint: Some("cores"), ..Field::new("cpu", "CPU") }))
                    (ui::field(&Field { kind: "number", value: &form.ram, error: e("ram").as_deref(), hint: Some("MiB"), ..Field::new("ram", "RAM") }))
                    (ui::field(&Field { kind: "number", value: &form.disk, error: e("disk").as_deref(), hint: Some("GiB"), ..Field::new("disk", "Disk") }))
                    (ui::field(&Field { kind: "number", value: &form.swap, error: e("swap").as_deref(), hint: Some("MiB"), ..Field::new("swap", "Swap") }))
                    (ui::field(&Field { value: &form.os, error: e("os").as_deref(), hint: Some("e.g. debian"), ..Field::new("os", "OS") }))
                    (ui::field(&Field { value: &form.version, error: e("version").as_deref(), hint: Some("e.g. 12"), ..Field::new("version", "OS version") }))
                    (ui::field(&Field { value: &form.storage, error: e("storage").as_deref(), hint: Some("Proxmox storage id"), ..Field::new("storage", "Storage") }))
                    (ui::field(&Field { value: &form.bridge, error: e("bridge").as_deref(), hint: Some("e.g. vmbr0"), ..Field::new("bridge", "Bridge") }))
                }
                div.cols {
                    (ui::select("unprivileged", "Unprivileged", &bool_opts, &form.unprivileged, e("unprivileged").as_deref()))
                    (ui::select("nesting", "Nesting", &bool_opts, &form.nesting, e("nesting").as_deref()))
                    (ui::select("keyctl", "keyctl", &bool_opts, &form.keyctl, e("keyctl").as_deref()))
                    (ui::select("fuse", "FUSE", &bool_opts, &form.fuse, e("fuse").as_deref()))
                }
                (ui::field(&Field { kind: "textarea", value: &form.extra, error: e("extra").as_deref(), hint: Some("Other keys, one KEY=value per line; kept in template.conf"), ..Field::new("extra", "Extra keys") }))
            }
            fieldset.section {
                legend { "Scripts" }
                p.muted { "Scripts run in order of their number, low to high. Change the numbers to reorder; disabled scripts are kept but not run or exported." }
                @for (i, s) in scripts.iter().enumerate() {
                    div.editor-row data-row="script" {
                        div.row {
                            (ui::field(&Field { kind: "number", value: &s.order, error: e(&format!("script.{i}.order")).as_deref(), ..Field::new(&format!("script.{i}.order"), "Order") }))
                            (ui::field(&Field { value: &s.name, error: e(&format!("script.{i}.name")).as_deref(), hint: Some("e.g. setup.sh"), ..Field::new(&format!("script.{i}.name"), "Script name") }))
                            (ui::checkbox(&format!("script.{i}.enabled"), "Enabled", s.enabled, None))
                            @if i < form.scripts.len() {
                                button.btn type="submit" name="action" value={ "remove-script." (i) } { "Remove script" }
                            }
                        }
                        (ui::field(&Field { kind: "textarea", value: &s.content, error: e(&format!("script.{i}.content")).as_deref(), ..Field::new(&format!("script.{i}.content"), "Script") }))
                    }
                }
                button.btn type="submit" name="action" value="add-script" { "Add another script" }
            }
            fieldset.section {
                legend { "Packages" }
                p.muted { "One list per bucket and manager, one package per line, pinned like pkg=1.2 (apt, apk, dnf), pkg@1.2 (npm) or pkg==1.2 (pip). # starts a comment." }
                @if !view.buckets.is_empty() {
                    div.row {
                        (ui::select("from_bucket", "Package bucket", view.buckets, "", None))
                        button.btn type="submit" name="action" value="add-bucket" { "Add from bucket" }
                    }
                }
                @for (n, (i, l)) in lists.iter().enumerate() {
                    @if !l.bucket.is_empty() && (n == 0 || lists[n - 1].1.manager != l.manager) {
                        h3.manager-head { (l.manager) }
                    }
                    div.editor-row data-row="pkg" {
                        div.row {
                            (ui::field(&Field { value: &l.bucket, error: e(&format!("pkg.{i}.bucket")).as_deref(), hint: Some("list name, e.g. base"), ..Field::new(&format!("pkg.{i}.bucket"), "Bucket") }))
                            (ui::select(&format!("pkg.{i}.manager"), "Manager", &manager_opts, &l.manager, e(&format!("pkg.{i}.manager")).as_deref()))
                            @if *i < form.packages.len() {
                                button.btn type="submit" name="action" value={ "remove-pkg." (i) } { "Remove list" }
                            }
                        }
                        (ui::field(&Field { kind: "textarea", value: &l.text, error: e(&format!("pkg.{i}.text")).as_deref(), ..Field::new(&format!("pkg.{i}.text"), "Packages") }))
                    }
                }
                button.btn type="submit" name="action" value="add-pkg" { "Add another package list" }
                (ui::field(&Field { kind: "textarea", value: &form.custom_installer, error: e("custom_installer").as_deref(), hint: Some("packages/custom.sh: optional custom installers"), ..Field::new("custom_installer", "Custom installer") }))
            }
            fieldset.section {
                legend { "Files" }
                p.muted { "Config files written into the container: replace always writes, default only when the target is missing, backup keeps a copy first." }
                @for (i, f) in files.iter().enumerate() {
                    div.editor-row data-row="file" {
                        div.row {
                            (ui::field(&Field { value: &f.name, error: e(&format!("file.{i}.name")).as_deref(), hint: Some("e.g. nginx.conf"), ..Field::new(&format!("file.{i}.name"), "File name") }))
                            (ui::field(&Field { value: &f.target_dir, error: e(&format!("file.{i}.target_dir")).as_deref(), hint: Some("absolute directory, e.g. /etc/nginx"), ..Field::new(&format!("file.{i}.target_dir"), "Target directory") }))
                            (ui::select(&format!("file.{i}.policy"), "Policy", &policy_opts, &f.policy, e(&format!("file.{i}.policy")).as_deref()))
                            @if i < form.files.len() {
                                button.btn type="submit" name="action" value={ "remove-file." (i) } { "Remove file" }
                            }
                        }
                        (ui::field(&Field { kind: "textarea", value: &f.content, error: e(&format!("file.{i}.content")).as_deref(), ..Field::new(&format!("file.{i}.content"), "Content") }))
                    }
                }
                button.btn type="submit" name="action" value="add-file" { "Add another file" }
            }
            div.row {
                button.btn.btn-primary type="submit" name="action" value="save" { "Save template" }
                @match view.editing {
                    Some(name) => { a.btn href={ "/templates/" (urlencode(name)) } { "Cancel" } }
                    None => { a.btn href="/templates" { "Cancel" } }
                }
            }
        }
    }
}

/// Percent-encodes a path segment.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_rows_and_builds_template() {
        let posted = TemplateForm::from_pairs(&pairs(&[
            ("name", "web"),
            ("tags", "a; b,c"),
            ("cpu", "2"),
            ("script.0.order", "10"),
            ("script.0.name", "setup.sh"),
            ("script.0.enabled", "on"),
            ("script.0.content", "echo hi\r\n"),
            ("script.1.order", "20"),
            ("script.1.name", ""),
            ("script.1.content", ""),
            ("file.0.name", "a.conf"),
            ("file.0.target_dir", "/etc"),
            ("file.0.policy", "backup"),
            ("file.0.content", "x"),
            ("pkg.0.bucket", "base"),
            ("pkg.0.manager", "apt"),
            ("pkg.0.text", "curl\r\ngit=1.2\r\n"),
            ("action", "save"),
        ]));
        assert_eq!(posted.action, "save");
        let mut form = posted.form;
        form.drop_blank_rows();
        assert_eq!(form.scripts.len(), 1);
        let (t, errors, _) = form.to_template();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(t.config.tags, ["a", "b", "c"]);
        assert_eq!(t.scripts[0].content, "echo hi\n");
        assert_eq!(t.scripts[0].file_name(), "10-setup.sh");
        assert_eq!(t.packages[0].packages.len(), 2);
        assert!(t.validate().iter().all(|d| !d.is_error()));
    }

    #[test]
    fn errors_land_on_fields() {
        let mut form = TemplateForm {
            name: "x".into(),
            cpu: "many".into(),
            files: vec![FileRow {
                name: "a".into(),
                target_dir: "etc".into(),
                policy: "replace".into(),
                content: String::new(),
            }],
            packages: vec![ListRow {
                bucket: "b".into(),
                manager: "apt".into(),
                text: "ok\nbad name\n".into(),
            }],
            ..TemplateForm::default()
        };
        form.drop_blank_rows();
        let (t, mut errors, paths) = form.to_template();
        place(&t.validate(), &paths, &mut errors);
        assert!(errors.contains_key("cpu"), "{errors:?}");
        assert!(errors.contains_key("file.0.target_dir"), "{errors:?}");
        assert!(errors["pkg.0.text"][0].starts_with("line 2"), "{errors:?}");
    }
}
