//! Drift: what differs between a managed container, the template version ctforge last applied
//! to it, and the template as it is today.
//!
//! What was applied ([`Applied`]) is the `container_applied` record a re-apply writes, else the
//! template snapshot of the container's creation job (the creation payload keeps it, with the
//! request and environment, so the same `plan::resolve` yields exactly the files, packages and
//! scripts that ran: chosen buckets and disabled scripts included). The container side is read
//! with one command (checksums of the managed files, `dpkg -s` of the applied apt packages); the
//! text of a file is read only when it differs, for its diff (`similar`, unified format).
//!
//! Per file ([`FileState`]): changed here (container vs applied), changed in the template
//! (template now vs applied), both ([`FileState::Conflict`], unless both changed to the same
//! text), missing here, added to or removed from the template. Scripts: changed since their last
//! run, added, removed. Packages: added to or removed from the template, applied but missing in
//! the container. And whether a newer template version exists (content hash).
//!
//! Reading drift needs `VM.Audit`; diffs show file contents from inside the guest, so they are
//! included only for users holding `VM.Console` on it (what a shell in the guest needs).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use ctforge_ssh::{RemoteExec, Stream, quote};
use ctforge_template::Template;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Target;
use crate::auth::CurrentUser;
use crate::authz::{Rights, vm_path};
use crate::error::AppError;
use crate::provisioning::plan::Step;
use crate::provisioning::submit::{self, CreatePayload};
use crate::state::AppState;
use crate::storage::model::{Container, JobFilter};
use crate::storage::{Store, StoreError};

/// Longest time the in-guest checks may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of one container file read for a diff.
const MAX_DIFF_BYTES: usize = 256 * 1024;
/// Most changed files whose text is read for diffs.
const MAX_DIFFS: usize = 40;

/// What ctforge last applied to a container.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The template as applied.
    pub template: Template,
    /// Its content hash then (absent for containers created before hashes were recorded).
    pub hash: Option<String>,
    /// The creation job's payload (request and environment the plan is derived with).
    pub payload: CreatePayload,
    /// The job that applied it (creation or re-apply).
    pub job_id: Option<i64>,
    /// When (Unix ms), if recorded by a re-apply.
    pub applied_at: Option<i64>,
}

impl Applied {
    /// The payload with `template` in place of the applied one (what a re-apply runs).
    pub fn payload_with(&self, template: &Template) -> CreatePayload {
        let mut payload = self.payload.clone();
        payload.template = Some(template.clone());
        payload
    }
}

/// The files, packages and scripts a plan applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Files by name: (target path, policy, content).
    pub files: BTreeMap<String, (String, String, String)>,
    /// `manager:spec` of every package.
    pub packages: BTreeSet<String>,
    /// Scripts by name: content.
    pub scripts: BTreeMap<String, String>,
}

impl Expected {
    /// What `payload`'s plan applies.
    pub fn of(payload: &CreatePayload) -> Result<Self, AppError> {
        let plan = payload.plan(None)?;
        let mut out = Self::default();
        for step in plan.steps {
            match step {
                Step::DeployFile {
                    name,
                    path,
                    policy,
                    content,
                } => {
                    out.files.insert(name, (path, policy, content));
                }
                Step::Install { manager, packages } => {
                    for p in packages {
                        out.packages.insert(format!("{manager}:{p}"));
                    }
                }
                Step::RunScript { name, content } => {
                    out.scripts.insert(name, content);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// How a managed file stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Container, applied and template agree.
    InSync,
    /// Changed in the container since it was applied.
    ChangedHere,
    /// Changed in the template since it was applied.
    ChangedInTemplate,
    /// Changed in both, differently.
    Conflict,
    /// Applied, gone from the container (the template did not change it).
    MissingHere,
    /// New in the template.
    AddedInTemplate,
    /// Applied, no longer in the template (the container keeps it).
    RemovedFromTemplate,
}

impl FileState {
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            FileState::InSync => "in sync",
            FileState::ChangedHere => "changed in the container",
            FileState::ChangedInTemplate => "changed in the template",
            FileState::Conflict => "conflict: changed in both",
            FileState::MissingHere => "missing in the container",
            FileState::AddedInTemplate => "added to the template",
            FileState::RemovedFromTemplate => "removed from the template",
        }
    }
}

/// One managed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileDrift {
    /// File name in the template.
    pub name: String,
    /// Target path in the container.
    pub target: String,
    /// Policy (`replace`, `default`, `backup`).
    pub policy: String,
    /// How it stands.
    pub state: FileState,
    /// SHA-256 of the container's file (absent: no such file).
    pub container_sha256: Option<String>,
    /// SHA-256 of what was applied.
    pub applied_sha256: Option<String>,
    /// SHA-256 of the template's content today.
    pub template_sha256: Option<String>,
    /// Unified diff applied → container (only with `VM.Console`).
    pub container_diff: Option<String>,
    /// Unified diff applied → template today (only with `VM.Console`).
    pub template_diff: Option<String>,
}

/// How a script stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScriptState {
    /// Changed in the template since it last ran.
    Changed,
    /// New in the template: never ran here.
    Added,
    /// No longer in the template.
    Removed,
}

/// A script that differs from its last run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScriptDrift {
    /// Script name.
    pub name: String,
    /// How it stands.
    pub state: ScriptState,
    /// Unified diff last run → template today (only with `VM.Console`).
    pub diff: Option<String>,
}

/// How a package stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PackageState {
    /// Added to the template since it was applied.
    AddedInTemplate,
    /// Removed from the template since (the container keeps it).
    RemovedFromTemplate,
    /// Applied, not installed in the container now.
    MissingHere,
}

/// A package that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PackageDrift {
    /// Manager (`apt`, `apk`, …).
    pub manager: String,
    /// Package as listed (with a pinned version, if any).
    pub name: String,
    /// How it stands.
    pub state: PackageState,
}

/// `GET /api/v1/containers/{id}/drift`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DriftReport {
    /// ctforge record id.
    pub id: i64,
    /// VMID.
    pub vmid: u32,
    /// Template name.
    pub template: String,
    /// Content hash of the version applied (absent for old records).
    pub applied_hash: Option<String>,
    /// Content hash of the template today (absent when it was deleted).
    pub template_hash: Option<String>,
    /// Whether the template changed since it was applied.
    pub newer_template: bool,
    /// Whether the template no longer exists (drift is then only the container's side).
    pub template_deleted: bool,
    /// When the applied version was applied by a re-apply (Unix ms); absent: at creation.
    pub applied_at_ms: Option<i64>,
    /// Whether the container's side was read (a stopped CT cannot be).
    pub container_checked: bool,
    /// Why it could not be read.
    pub check_error: Option<String>,
    /// Every managed file, in name order.
    pub files: Vec<FileDrift>,
    /// Scripts that changed since their last run.
    pub scripts: Vec<ScriptDrift>,
    /// Packages that differ.
    pub packages: Vec<PackageDrift>,
    /// Files in conflict.
    pub conflicts: usize,
    /// Whether anything differs.
    pub drifted: bool,
    /// Whether diffs are included (the viewer holds `VM.Console`).
    pub diffs_shown: bool,
}

/// SHA-256 of `text`, hex.
pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A unified diff of `old` → `new`, with labels.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// What ctforge last applied to `container`: the re-apply record, else its creation.
pub async fn applied_of(store: &dyn Store, container: &Container) -> Result<Applied, AppError> {
    let creation = store
        .find_jobs(&JobFilter {
            kind: Some(submit::JOB_KIND.to_owned()),
            container_id: Some(container.id),
            limit: 1,
            ..JobFilter::default()
        })
        .await?;
    let job = creation.first().ok_or_else(|| {
        AppError::NotFound(format!(
            "CT {} has no creation job: ctforge does not know what was applied to it",
            container.vmid
        ))
    })?;
    let payload: CreatePayload = serde_json::from_str(&job.payload_json).map_err(|e| {
        AppError::Conflict(format!(
            "the creation job of CT {} cannot be read ({e}); nothing to compare with",
            container.vmid
        ))
    })?;
    let Some(created_with) = payload.template.clone() else {
        return Err(AppError::NotFound(format!(
            "CT {} was created without a template: there is nothing to drift from",
            container.vmid
        )));
    };
    match store.get_applied_template(container.id).await? {
        Some(row) => {
            let template: Template = serde_json::from_str(&row.template_json).map_err(|e| {
                AppError::Conflict(format!(
                    "the template applied to CT {} cannot be read ({e})",
                    container.vmid
                ))
            })?;
            Ok(Applied {
                template,
                hash: Some(row.template_hash),
                payload,
                job_id: row.job_id,
                applied_at: Some(row.applied_at),
            })
        }
        None => {
            let spec: serde_json::Value =
                serde_json::from_str(&container.spec_json).unwrap_or_default();
            Ok(Applied {
                template: created_with,
                hash: spec
                    .get(crate::fleet::SPEC_TEMPLATE_HASH)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                payload,
                job_id: Some(job.id),
                applied_at: None,
            })
        }
    }
}

/// The template `name` today and its content hash; `None` when it was deleted.
pub async fn current_template(
    store: &dyn Store,
    name: &str,
) -> Result<Option<(Template, String)>, AppError> {
    match store.get_template_by_name(name).await {
        Ok(record) => {
            let template = crate::templates::convert::record_to_template(&record)
                .map_err(|e| AppError::Conflict(format!("template {name} cannot be read: {e}")))?;
            Ok(Some((template, record.row.content_hash)))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What the container's side looks like: checksum per target path (absent: no file), apt
/// packages not installed, and file texts read for diffs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestSide {
    /// Target path → SHA-256.
    pub sums: HashMap<String, String>,
    /// `apt:<spec>` of applied packages that are not installed.
    pub missing_packages: BTreeSet<String>,
    /// Target path → text (only files read for a diff).
    pub texts: HashMap<String, String>,
}

/// The command printing the checksums of `paths` (`<sha>  <path>` lines; missing files print
/// nothing) and `missing <name>` for each of `apt_packages` that `dpkg` does not know as
/// installed. Simple commands only, each quoted.
pub fn check_command(paths: &[String], apt_packages: &[String]) -> String {
    let mut cmd = String::new();
    for p in paths {
        cmd.push_str(&format!("sha256sum -- {} 2>/dev/null; ", quote(p)));
    }
    for p in apt_packages {
        cmd.push_str(&format!(
            "dpkg -s {} >/dev/null 2>&1 || echo {}; ",
            quote(p),
            quote(&format!("missing {p}"))
        ));
    }
    cmd.push_str("true");
    cmd
}

/// Parses [`check_command`]'s output.
pub fn parse_check(stdout: &str) -> (HashMap<String, String>, BTreeSet<String>) {
    let mut sums = HashMap::new();
    let mut missing = BTreeSet::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("missing ") {
            missing.insert(name.trim().to_owned());
        } else if let Some((sum, path)) = line.split_once("  ")
            && sum.len() == 64
            && sum.bytes().all(|b| b.is_ascii_hexdigit())
        {
            sums.insert(path.to_owned(), sum.to_ascii_lowercase());
        }
    }
    (sums, missing)
}

/// The apt package name of a spec (`nginx=1.22*` → `nginx`).
fn apt_name(spec: &str) -> &str {
    spec.split('=').next().unwrap_or(spec).trim()
}

async fn exec_stdout(channel: &dyn RemoteExec, command: &str) -> Result<String, String> {
    let mut stdout = String::new();
    let mut collect = |stream: Stream, line: &str| {
        if stream == Stream::Stdout && stdout.len() + line.len() < MAX_DIFF_BYTES * 4 {
            stdout.push_str(line);
            stdout.push('\n');
        }
    };
    channel
        .exec(command, &mut collect)
        .await
        .map_err(|e| e.to_string())?;
    Ok(stdout)
}

/// Reads the container's side of `applied` (and of new template files) through `channel`;
/// the texts of files whose checksum differs from `applied` are read when `texts` is set.
pub async fn read_guest(
    channel: &dyn RemoteExec,
    applied: &Expected,
    current: Option<&Expected>,
    texts: bool,
) -> Result<GuestSide, String> {
    let mut paths: BTreeSet<String> = applied.files.values().map(|f| f.0.clone()).collect();
    if let Some(c) = current {
        paths.extend(c.files.values().map(|f| f.0.clone()));
    }
    let paths: Vec<String> = paths.into_iter().collect();
    let apt: Vec<String> = applied
        .packages
        .iter()
        .filter_map(|p| p.strip_prefix("apt:"))
        .map(|s| apt_name(s).to_owned())
        .collect();
    let out = exec_stdout(channel, &check_command(&paths, &apt)).await?;
    let (sums, missing) = parse_check(&out);
    let missing_packages = applied
        .packages
        .iter()
        .filter(|p| {
            p.strip_prefix("apt:")
                .is_some_and(|s| missing.contains(apt_name(s)))
        })
        .cloned()
        .collect();
    let mut side = GuestSide {
        sums,
        missing_packages,
        texts: HashMap::new(),
    };
    if texts {
        let changed: Vec<String> = applied
            .files
            .values()
            .filter(|(path, _, content)| {
                side.sums
                    .get(path)
                    .is_some_and(|sum| *sum != sha256(content))
            })
            .map(|(path, _, _)| path.clone())
            .take(MAX_DIFFS)
            .collect();
        for path in changed {
            let text = exec_stdout(channel, &format!("cat -- {}", quote(&path))).await?;
            side.texts.insert(path, text);
        }
    }
    Ok(side)
}

/// The drift of files, scripts and packages (pure).
pub fn compare(
    applied: &Expected,
    current: Option<&Expected>,
    guest: Option<&GuestSide>,
    diffs: bool,
) -> (Vec<FileDrift>, Vec<ScriptDrift>, Vec<PackageDrift>) {
    let names: BTreeSet<&String> = applied
        .files
        .keys()
        .chain(current.map(|c| c.files.keys()).into_iter().flatten())
        .collect();
    let mut files = Vec::new();
    for name in names {
        let a = applied.files.get(name);
        let c = current.and_then(|c| c.files.get(name));
        let Some((target, policy, _)) = c.or(a) else {
            continue;
        };
        let here = guest.and_then(|g| g.sums.get(target)).cloned();
        let applied_sum = a.map(|f| sha256(&f.2));
        let template_sum = c.map(|f| sha256(&f.2));
        let checked = guest.is_some();
        let here_changed = checked && a.is_some() && here != applied_sum;
        let template_changed = match (a, c) {
            (Some(a), Some(c)) => a != c,
            _ => false,
        };
        let state = match (a, c) {
            (None, Some(_)) if here.is_some() && here == template_sum => FileState::InSync,
            (None, _) => FileState::AddedInTemplate,
            (Some(_), None) if current.is_some() => FileState::RemovedFromTemplate,
            _ if here_changed && template_changed => {
                if here.is_some() && here == template_sum {
                    FileState::InSync
                } else {
                    FileState::Conflict
                }
            }
            _ if here_changed && here.is_none() => FileState::MissingHere,
            _ if here_changed => FileState::ChangedHere,
            _ if template_changed => FileState::ChangedInTemplate,
            _ => FileState::InSync,
        };
        let container_diff = match (diffs, a, guest.and_then(|g| g.texts.get(target))) {
            (true, Some(a), Some(text)) if here_changed => Some(unified_diff(
                &a.2,
                text,
                &format!("{target} (applied)"),
                &format!("{target} (container)"),
            )),
            _ => None,
        };
        let template_diff = match (diffs, a, c) {
            (true, Some(a), Some(c)) if a.2 != c.2 => Some(unified_diff(
                &a.2,
                &c.2,
                &format!("{name} (applied)"),
                &format!("{name} (template)"),
            )),
            (true, None, Some(c)) => Some(unified_diff(
                "",
                &c.2,
                "/dev/null",
                &format!("{name} (template)"),
            )),
            _ => None,
        };
        files.push(FileDrift {
            name: name.clone(),
            target: target.clone(),
            policy: policy.clone(),
            state,
            container_sha256: here,
            applied_sha256: applied_sum,
            template_sha256: template_sum,
            container_diff,
            template_diff,
        });
    }
    let mut scripts = Vec::new();
    if let Some(c) = current {
        for (name, text) in &c.scripts {
            match applied.scripts.get(name) {
                Some(old) if old != text => scripts.push(ScriptDrift {
                    name: name.clone(),
                    state: ScriptState::Changed,
                    diff: diffs.then(|| {
                        unified_diff(
                            old,
                            text,
                            &format!("{name} (last run)"),
                            &format!("{name} (template)"),
                        )
                    }),
                }),
                Some(_) => {}
                None => scripts.push(ScriptDrift {
                    name: name.clone(),
                    state: ScriptState::Added,
                    diff: None,
                }),
            }
        }
        for name in applied.scripts.keys() {
            if !c.scripts.contains_key(name) {
                scripts.push(ScriptDrift {
                    name: name.clone(),
                    state: ScriptState::Removed,
                    diff: None,
                });
            }
        }
    }
    let mut packages = Vec::new();
    let split = |p: &str| {
        let (m, n) = p.split_once(':').unwrap_or(("", p));
        (m.to_owned(), n.to_owned())
    };
    if let Some(c) = current {
        for p in c.packages.difference(&applied.packages) {
            let (manager, name) = split(p);
            packages.push(PackageDrift {
                manager,
                name,
                state: PackageState::AddedInTemplate,
            });
        }
        for p in applied.packages.difference(&c.packages) {
            let (manager, name) = split(p);
            packages.push(PackageDrift {
                manager,
                name,
                state: PackageState::RemovedFromTemplate,
            });
        }
    }
    if let Some(g) = guest {
        for p in &g.missing_packages {
            let (manager, name) = split(p);
            packages.push(PackageDrift {
                manager,
                name,
                state: PackageState::MissingHere,
            });
        }
    }
    (files, scripts, packages)
}

/// The drift of a managed container (VM.Audit; diffs with VM.Console).
pub async fn report(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<DriftReport, AppError> {
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    let diffs = Rights::of(state, user, &target.cluster)?
        .holds(&vm_path(target.vmid), "VM.Console")
        .await?;
    compute(state, target, diffs).await
}

/// The drift of `target` (no authorization: callers check it).
pub async fn compute(
    state: &AppState,
    target: &Target,
    diffs: bool,
) -> Result<DriftReport, AppError> {
    let record = target.record.as_ref().ok_or_else(|| {
        AppError::NotFound(format!(
            "CT {} is not managed by ctforge: there is no template to compare with",
            target.vmid
        ))
    })?;
    let applied = applied_of(state.store.as_ref(), record).await?;
    let applied_expected = Expected::of(&applied.payload_with(&applied.template))?;
    let current = current_template(state.store.as_ref(), &applied.template.name).await?;
    let current_expected = match &current {
        Some((t, _)) => Some(Expected::of(&applied.payload_with(t))?),
        None => None,
    };
    let guest = match state.guests.connect(&target.cluster).await {
        Ok(session) => {
            let channel = session.channel(target.vmid, Some(CHECK_TIMEOUT));
            read_guest(
                channel.as_ref(),
                &applied_expected,
                current_expected.as_ref(),
                diffs,
            )
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    let (guest, check_error) = match guest {
        Ok(g) => (Some(g), None),
        Err(e) => (None, Some(e)),
    };
    let (files, scripts, packages) = compare(
        &applied_expected,
        current_expected.as_ref(),
        guest.as_ref(),
        diffs,
    );
    let template_hash = current.as_ref().map(|(_, h)| h.clone());
    let newer_template = match (&applied.hash, &template_hash) {
        (Some(a), Some(c)) => a != c,
        (None, Some(_)) => current_expected.as_ref() != Some(&applied_expected),
        _ => false,
    };
    let conflicts = files
        .iter()
        .filter(|f| f.state == FileState::Conflict)
        .count();
    let drifted = newer_template
        || files.iter().any(|f| f.state != FileState::InSync)
        || !scripts.is_empty()
        || !packages.is_empty();
    Ok(DriftReport {
        id: record.id,
        vmid: target.vmid,
        template: applied.template.name.clone(),
        applied_hash: applied.hash.clone(),
        template_hash,
        newer_template,
        template_deleted: current.is_none(),
        applied_at_ms: applied.applied_at,
        container_checked: guest.is_some(),
        check_error,
        files,
        scripts,
        packages,
        conflicts,
        drifted,
        diffs_shown: diffs,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn expected(files: &[(&str, &str)], scripts: &[(&str, &str)], packages: &[&str]) -> Expected {
        Expected {
            files: files
                .iter()
                .map(|(n, c)| {
                    (
                        (*n).to_owned(),
                        (format!("/etc/{n}"), "replace".to_owned(), (*c).to_owned()),
                    )
                })
                .collect(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
            scripts: scripts
                .iter()
                .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn files_changed_here_in_the_template_and_both() {
        let applied = expected(
            &[("a", "1\n"), ("b", "1\n"), ("c", "1\n"), ("d", "1\n")],
            &[("10-x.sh", "echo 1\n")],
            &["apt:nginx"],
        );
        let current = expected(
            &[("a", "1\n"), ("b", "2\n"), ("c", "2\n"), ("e", "new\n")],
            &[("10-x.sh", "echo 2\n"), ("20-y.sh", "true\n")],
            &["apt:nginx", "apt:curl"],
        );
        let mut guest = GuestSide::default();
        guest.sums.insert("/etc/a".into(), sha256("local\n"));
        guest.sums.insert("/etc/b".into(), sha256("1\n"));
        guest.sums.insert("/etc/c".into(), sha256("mine\n"));
        guest.sums.insert("/etc/d".into(), sha256("1\n"));
        guest.texts.insert("/etc/a".into(), "local\n".into());
        guest.missing_packages.insert("apt:nginx".into());
        let (files, scripts, packages) = compare(&applied, Some(&current), Some(&guest), true);
        let state = |n: &str| files.iter().find(|f| f.name == n).unwrap().state;
        assert_eq!(state("a"), FileState::ChangedHere);
        assert_eq!(state("b"), FileState::ChangedInTemplate);
        assert_eq!(state("c"), FileState::Conflict);
        assert_eq!(state("d"), FileState::RemovedFromTemplate);
        assert_eq!(state("e"), FileState::AddedInTemplate);
        let a = files.iter().find(|f| f.name == "a").unwrap();
        assert!(a.container_diff.as_ref().unwrap().contains("-1\n+local\n"));
        let b = files.iter().find(|f| f.name == "b").unwrap();
        assert!(b.template_diff.as_ref().unwrap().contains("-1\n+2\n"));
        assert_eq!(scripts.len(), 2);
        assert!(scripts.iter().any(|s| s.state == ScriptState::Added));
        assert!(
            packages
                .iter()
                .any(|p| p.name == "curl" && p.state == PackageState::AddedInTemplate)
        );
        assert!(
            packages
                .iter()
                .any(|p| p.name == "nginx" && p.state == PackageState::MissingHere)
        );
        // Without the guest's side, nothing is claimed about it.
        let (files, _, _) = compare(&applied, Some(&current), None, false);
        let state = |n: &str| files.iter().find(|f| f.name == n).unwrap().state;
        assert_eq!(state("a"), FileState::InSync);
        assert_eq!(state("c"), FileState::ChangedInTemplate);
        assert!(files.iter().all(|f| f.template_diff.is_none()));
    }

    #[test]
    fn both_changed_to_the_same_text_is_no_conflict() {
        let applied = expected(&[("a", "1\n")], &[], &[]);
        let current = expected(&[("a", "2\n")], &[], &[]);
        let mut guest = GuestSide::default();
        guest.sums.insert("/etc/a".into(), sha256("2\n"));
        let (files, _, _) = compare(&applied, Some(&current), Some(&guest), false);
        assert_eq!(files[0].state, FileState::InSync);
        guest.sums.clear();
        let (files, _, _) = compare(&applied, Some(&applied), Some(&guest), false);
        assert_eq!(files[0].state, FileState::MissingHere);
    }

    #[test]
    fn check_command_quotes_and_parses() {
        let cmd = check_command(&["/etc/it's".into()], &["nginx".into()]);
        assert!(cmd.contains("sha256sum -- '/etc/it'\\''s'"), "{cmd}");
        let sum = sha256("x");
        let (sums, missing) = parse_check(&format!("{sum}  /etc/a b\nmissing nginx\nnoise\n"));
        assert_eq!(sums.get("/etc/a b"), Some(&sum));
        assert!(missing.contains("nginx"));
    }
}
