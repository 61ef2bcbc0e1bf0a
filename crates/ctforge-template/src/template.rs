//! The template model and its validation.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::conf::{self, TemplateConfig};
use crate::diagnostic::{Diagnostic, line_no};
use crate::files::{PATH_SUFFIX, POLICY_SUFFIX, TemplateFile, validate_target_path};
use crate::layout::{self, FILES, PACKAGES, SCRIPTS, content_path};
use crate::packages::{CustomList, Package, PackageList};
use crate::scripts::{Script, parse_script_name};

/// A whole template: what one template directory holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The template directory's name.
    pub name: String,
    /// `template.conf`.
    pub config: TemplateConfig,
    /// Scripts, in run order (by `order`, then file name).
    pub scripts: Vec<Script>,
    /// Config files, sorted by name.
    pub files: Vec<TemplateFile>,
    /// Package lists, sorted by file name.
    pub packages: Vec<PackageList>,
    /// `packages/custom.sh`, the custom installer script, if any.
    pub custom_installer: Option<String>,
    /// The library's `packages/<bucket>.custom` lists, sorted by file name.
    #[serde(default)]
    pub custom_lists: Vec<CustomList>,
    /// The template's other documents (`README.md`, `CREDENTIALS.md`, `container.sh` next to
    /// `template.conf`, and `container-configs/<folder>/README*`), kept verbatim so an export
    /// reproduces the whole directory; sorted by path.
    #[serde(default)]
    pub docs: Vec<TemplateDoc>,
    /// `cloud-init/user-data.yaml` of a vm template, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<String>,
}

/// A document of a template: its path relative to the template directory and its text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDoc {
    /// Relative path, e.g. `README.md` or `container-configs/files/README.md`.
    pub path: String,
    /// Text.
    pub content: String,
}

impl Template {
    /// An empty template called `name`.
    pub fn new(name: impl Into<String>) -> Template {
        Template {
            name: name.into(),
            ..Template::default()
        }
    }

    /// This template without any original text (`raw` fields), for comparing
    /// content: two templates that differ only in comments, quoting or
    /// whitespace of their files are equal after this.
    pub fn without_raw(&self) -> Template {
        Template {
            name: self.name.clone(),
            config: self.config.without_raw(),
            scripts: self.scripts.clone(),
            files: self.files.iter().map(TemplateFile::without_raw).collect(),
            packages: self
                .packages
                .iter()
                .map(|p| PackageList {
                    raw: None,
                    ..p.clone()
                })
                .collect(),
            custom_installer: self.custom_installer.clone(),
            custom_lists: self.custom_lists.clone(),
            docs: self.docs.clone(),
            cloud_init: self.cloud_init.clone(),
        }
    }

    /// Sorts scripts, files and package lists into the order the loader
    /// produces (scripts by order then file name, files by name, package lists
    /// by file name).
    pub fn sort(&mut self) {
        self.scripts.sort_by_key(|s| (s.order, s.file_name()));
        self.files.sort_by(|a, b| a.name.cmp(&b.name));
        self.packages.sort_by_key(PackageList::file_name);
    }

    /// Checks a template built or edited in the UI: every value ctforge checks
    /// when loading, plus that every name can be written to disk and read back
    /// as the same model. Diagnostics name the file the problem would be
    /// written to; package problems carry the line of the canonical list.
    ///
    /// A template loaded with [`load_dir`](crate::load_dir) needs no call: its
    /// diagnostics already cover the same checks.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        if let Err(message) = layout::check_template_name(&self.name) {
            diags.push(Diagnostic::error(PathBuf::new(), None, message));
        }
        diags.extend(conf::check_representable(&self.config));
        diags.extend(conf::check_values(&self.config, &|_| None));
        self.validate_scripts(&mut diags);
        self.validate_files(&mut diags);
        self.validate_packages(&mut diags);
        diags.extend(self.validate_cloud_init());
        diags
    }

    /// The user-data's own checks, and a warning when a container template carries one
    /// (containers have no cloud-init).
    pub(crate) fn validate_cloud_init(&self) -> Vec<Diagnostic> {
        let Some(text) = &self.cloud_init else {
            return Vec::new();
        };
        let mut diags = crate::cloudinit::check(text);
        if self.config.kind() == conf::TemplateType::Lxc {
            diags.push(Diagnostic::warning(
                crate::cloudinit::user_data_path(),
                None,
                "cloud-init user-data applies to virtual machines only, so a container template \
                 ignores it: set `TEMPLATE_TYPE=vm` or remove the file",
            ));
        }
        diags
    }

    fn validate_scripts(&self, diags: &mut Vec<Diagnostic>) {
        let mut seen = HashSet::new();
        for script in &self.scripts {
            let file_name = script.file_name();
            let path = content_path(SCRIPTS, &file_name);
            if let Err(message) = layout::check_file_name(&script.name, "script name") {
                diags.push(Diagnostic::error(path, None, message));
            } else if parse_script_name(&file_name) != Ok(script.order) {
                diags.push(Diagnostic::error(
                    path,
                    None,
                    format!(
                        "script name `{}` cannot be written as `NN-name.sh`: give it a name, \
                         like `setup.sh`",
                        script.name
                    ),
                ));
            } else if !seen.insert(file_name.clone()) {
                diags.push(Diagnostic::error(
                    path,
                    None,
                    format!("two scripts are written as `{file_name}`: rename or renumber one"),
                ));
            }
        }
    }

    fn validate_files(&self, diags: &mut Vec<Diagnostic>) {
        let names: HashSet<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        let mut seen = HashSet::new();
        for file in &self.files {
            let path = content_path(FILES, &file.name);
            if let Err(message) = layout::check_file_name(&file.name, "file name") {
                diags.push(Diagnostic::error(path.clone(), None, message));
            } else if let Some(base) = file
                .name
                .strip_suffix(PATH_SUFFIX)
                .or_else(|| file.name.strip_suffix(POLICY_SUFFIX))
                && names.contains(base)
            {
                diags.push(Diagnostic::error(
                    path.clone(),
                    None,
                    format!(
                        "file name `{}` clashes with the sidecar of `{base}`: rename one of them",
                        file.name
                    ),
                ));
            } else if !seen.insert(file.name.as_str()) {
                diags.push(Diagnostic::error(
                    path.clone(),
                    None,
                    format!("two files are named `{}`: rename one", file.name),
                ));
            }
            if let Err(message) = validate_target_path(&file.target_dir) {
                let sidecar = content_path(FILES, &format!("{}{PATH_SUFFIX}", file.name));
                diags.push(Diagnostic::error(sidecar, Some(1), message));
            }
        }
    }

    fn validate_packages(&self, diags: &mut Vec<Diagnostic>) {
        let mut seen = HashSet::new();
        for list in &self.packages {
            let file_name = list.file_name();
            let path = content_path(PACKAGES, &file_name);
            if let Err(message) = layout::check_file_name(&list.bucket, "bucket name") {
                diags.push(Diagnostic::error(path.clone(), None, message));
            } else if !seen.insert(file_name.clone()) {
                diags.push(Diagnostic::error(
                    path.clone(),
                    None,
                    format!("two package lists are written as `{file_name}`: merge them"),
                ));
            }
            for (index, package) in list.packages.iter().enumerate() {
                let spec = package.spec(list.manager);
                let problem = match Package::parse(list.manager, &spec) {
                    Ok(parsed) if parsed == *package => None,
                    Ok(_) => Some(format!(
                        "package `{spec}` would be read back differently: check the name and \
                         version for stray spaces or `{}` characters",
                        list.manager.pin_example()
                    )),
                    Err(message) => Some(message),
                };
                if let Some(message) = problem {
                    diags.push(Diagnostic::error(path.clone(), line_no(index), message));
                }
            }
        }
    }
}
