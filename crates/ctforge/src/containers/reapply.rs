//! Re-apply: bring a managed container up to its template as it is today, safely. One job kind
//! (`reapply`, [`Reapply`]) serves a single container, a bulk selection and a template's
//! rollout; each container goes through [`Reapply::one`]:
//!
//! 1. the submitter's privileges on the guest, asked of Proxmox with the cluster's token
//!    (`VM.Snapshot` — which also allows the rollback — and `VM.Config.Options`; without a
//!    snapshot only the latter);
//! 2. the container's lock `ct:<cluster>:<vmid>` (shared with lifecycle and day-two actions);
//! 3. drift (`containers::drift`): what to do per file (the request's choice; otherwise a file
//!    changed only in the container, or in conflict, is kept, everything else is taken from the
//!    template) and which scripts changed since their last run;
//! 4. a Proxmox snapshot `ctforge-reapply-<job>` (Proxmox refuses it on storages without
//!    snapshots: the request must then say `without_snapshot`);
//! 5. the apply through the creation pipeline's runtime (`provisioning::pipeline::reapply`);
//! 6. on failure, the rollback to the snapshot (unless `on_failure` is `keep`: the snapshot stays
//!    for the user), on success the new applied record (`container_applied`);
//! 7. a container event and the audit entry `ct.reapply`.
//!
//! A rollout (`POST /api/v1/templates/{name}/rollout`) runs the template's containers canary
//! first, then `batch` at a time, and stops at the first failure: later containers are left
//! untouched (`skipped`). Results per container are the job's result ([`ReapplyResult`]); a
//! retry runs again only the containers that were not updated.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ctforge_pve::{PveApi, WaitOptions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::drift::{self, Expected, FileState, ScriptState};
use super::{Target, lifecycle, resolve_in};
use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::authz::{Rights, vm_path};
use crate::error::AppError;
use crate::guest::GuestConnector;
use crate::jobs::{JobContext, JobHandler, StepError};
use crate::locks::Locks;
use crate::provisioning::pipeline::CreateContainer;
use crate::provisioning::pipeline::reapply::{self as runtime, FileAction};
use crate::pve::PveConnector;
use crate::state::AppState;
use crate::storage::Store;
use crate::storage::model::{AppliedTemplate, Job, NewJob};

/// The `jobs.kind` of re-applies and rollouts.
pub const JOB_KIND: &str = "reapply";
/// The one step.
pub const STEP: &str = "containers";
/// Prefix of the snapshots a re-apply takes (`ctforge-reapply-<job id>`).
pub const SNAPSHOT_PREFIX: &str = "ctforge-reapply-";
/// How long a re-apply may hold a container's lock.
const LOCK_TTL_MS: i64 = 60 * 60 * 1000;
/// Containers of a bulk re-apply run at once.
const BULK_CONCURRENCY: usize = 4;
/// Most containers in one request.
pub const MAX_IDS: usize = 200;
/// Re-apply snapshots kept per container unless configured.
pub const DEFAULT_KEEP_SNAPSHOTS: usize = 3;
/// How long a snapshot or rollback task is followed.
const TASK_TIMEOUT: Duration = Duration::from_secs(900);

/// What to do with a managed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileChoice {
    /// Keep the container's version.
    Keep,
    /// Take the template's version.
    Take,
    /// Back the container's version up (`<target>.bak.<time>`), then take the template's.
    Backup,
}

impl FileChoice {
    fn action(self) -> FileAction {
        match self {
            FileChoice::Keep => FileAction::Keep,
            FileChoice::Take => FileAction::Take,
            FileChoice::Backup => FileAction::Backup,
        }
    }
}

/// What happens when the apply fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Roll the container back to the snapshot taken first.
    #[default]
    Rollback,
    /// Keep the container as the failure left it, and the snapshot for a manual rollback.
    Keep,
}

/// `POST /api/v1/containers/{id}/reapply`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReapplyRequest {
    /// Per file name: `keep`, `take` or `backup`. Every file in conflict needs one; files
    /// changed only in the container are kept unless chosen otherwise.
    #[serde(default)]
    pub files: BTreeMap<String, FileChoice>,
    /// Apply without a snapshot first (for storages that cannot take one): nothing to roll
    /// back to on failure.
    #[serde(default)]
    pub without_snapshot: bool,
    /// `rollback` (default) or `keep`.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// `POST /api/v1/containers/reapply`: the same for many containers (conflicts keep the
/// container's version).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReapplyRequest {
    /// Container ids (`42` or `<cluster>:<vmid>`).
    pub ids: Vec<String>,
    /// Apply without a snapshot first.
    #[serde(default)]
    pub without_snapshot: bool,
    /// `rollback` (default) or `keep`.
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn one() -> usize {
    1
}

/// `POST /api/v1/templates/{name}/rollout`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Containers re-applied first, one by one (default 1).
    #[serde(default = "one")]
    pub canary: usize,
    /// Then this many at a time (default 1).
    #[serde(default = "one")]
    pub batch: usize,
    /// Apply without snapshots.
    #[serde(default)]
    pub without_snapshot: bool,
    /// `rollback` (default) or `keep`.
    #[serde(default)]
    pub on_failure: OnFailure,
}

impl Default for RolloutRequest {
    fn default() -> Self {
        Self {
            canary: 1,
            batch: 1,
            without_snapshot: false,
            on_failure: OnFailure::Rollback,
        }
    }
}

/// The answer to a re-apply or rollout request (202).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ReapplyAccepted {
    /// The job.
    pub job_id: i64,
    /// Its page.
    pub url: String,
    /// The containers, in the order they run.
    pub ids: Vec<String>,
}

/// The rollout part of a payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RolloutPlan {
    /// Template name.
    pub template: String,
    /// Canary count.
    pub canary: usize,
    /// Batch size.
    pub batch: usize,
}

/// The job's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payload {
    /// Container ids in run order.
    pub ids: Vec<String>,
    /// Per-file choices.
    #[serde(default)]
    pub files: BTreeMap<String, FileChoice>,
    /// No snapshot first.
    #[serde(default)]
    pub without_snapshot: bool,
    /// On failure.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// A rollout's order and stop rule.
    #[serde(default)]
    pub rollout: Option<RolloutPlan>,
    /// The submitter's address (audit).
    pub remote: String,
    /// The submitter's cluster.
    #[serde(default)]
    pub cluster_id: Option<i64>,
    /// Whether a browser session submitted it (acts on its own cluster only).
    #[serde(default)]
    pub by_session: bool,
}

/// How one container came out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not run (yet, or the rollout stopped before it).
    #[default]
    Skipped,
    /// Re-applied.
    Updated,
    /// Failed; the container is as the failure left it (no snapshot, or `on_failure: keep`).
    Failed,
    /// Failed and rolled back to the snapshot.
    RolledBack,
}

/// One container's result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemResult {
    /// The id as submitted.
    pub id: String,
    /// VMID, once resolved.
    pub vmid: Option<u32>,
    /// Hostname, once resolved.
    pub hostname: Option<String>,
    /// How it came out.
    pub outcome: Outcome,
    /// What happened.
    pub message: String,
    /// The snapshot taken first, if any.
    pub snapshot: Option<String>,
}

/// The job's result.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReapplyResult {
    /// Template of a rollout.
    pub template: Option<String>,
    /// Containers in the request.
    pub total: usize,
    /// Updated.
    pub updated: usize,
    /// Failed (rolled back or not).
    pub failed: usize,
    /// Not run.
    pub skipped: usize,
    /// Whether a rollout stopped at a failure.
    pub stopped: bool,
    /// Per container, in run order.
    pub items: Vec<ItemResult>,
}

impl ReapplyResult {
    /// A job's stored result (empty when there is none).
    pub fn of(job: &Job) -> Self {
        job.result_json
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default()
    }

    fn build(payload: &Payload, by_id: &BTreeMap<String, ItemResult>, stopped: bool) -> Self {
        let items: Vec<ItemResult> = payload
            .ids
            .iter()
            .map(|id| {
                by_id.get(id).cloned().unwrap_or_else(|| ItemResult {
                    id: id.clone(),
                    message: if stopped {
                        "not run: the rollout stopped at a failure".into()
                    } else {
                        "not run".into()
                    },
                    ..ItemResult::default()
                })
            })
            .collect();
        let count = |o: Outcome| items.iter().filter(|i| i.outcome == o).count();
        Self {
            template: payload.rollout.as_ref().map(|r| r.template.clone()),
            total: items.len(),
            updated: count(Outcome::Updated),
            failed: count(Outcome::Failed) + count(Outcome::RolledBack),
            skipped: count(Outcome::Skipped),
            stopped,
            items,
        }
    }
}

/// The privileges a re-apply needs on the guest.
fn privileges(without_snapshot: bool) -> &'static [&'static str] {
    if without_snapshot {
        &["VM.Config.Options"]
    } else {
        &["VM.Snapshot", "VM.Config.Options"]
    }
}

async fn enqueue(
    state: &AppState,
    user: &CurrentUser,
    payload: Payload,
    container_id: Option<i64>,
    node: Option<String>,
) -> Result<ReapplyAccepted, AppError> {
    let ids = payload.ids.clone();
    let payload_json = serde_json::to_string(&payload).map_err(|e| AppError::Internal(e.into()))?;
    let job_id = state
        .jobs
        .enqueue(&NewJob {
            kind: JOB_KIND.to_owned(),
            container_id,
            node,
            payload_json,
            created_by: user.username.clone(),
        })
        .await?;
    Ok(ReapplyAccepted {
        job_id,
        url: format!("/jobs/{job_id}"),
        ids,
    })
}

/// Submits the re-apply of one container: checks the user's privileges and the per-file
/// choices against the drift now (every conflict needs a choice; unknown files are refused).
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    target: &Target,
    request: ReapplyRequest,
) -> Result<ReapplyAccepted, AppError> {
    let record = target.record.as_ref().ok_or_else(|| {
        AppError::NotFound(format!(
            "CT {} is not managed by ctforge: there is no template to re-apply",
            target.vmid
        ))
    })?;
    Rights::of(state, user, &target.cluster)?
        .require(&vm_path(target.vmid), privileges(request.without_snapshot))
        .await?;
    let report = drift::compute(state, target, false).await?;
    if report.template_deleted {
        return Err(AppError::Conflict(format!(
            "template {} was deleted: there is nothing to re-apply",
            report.template
        )));
    }
    let mut fields = Vec::new();
    for name in request.files.keys() {
        if !report.files.iter().any(|f| f.name == *name) {
            fields.push((
                format!("files.{name}"),
                "is not a file of the template".to_owned(),
            ));
        }
    }
    for f in &report.files {
        if f.state == FileState::Conflict && !request.files.contains_key(&f.name) {
            fields.push((
                format!("files.{}", f.name),
                format!(
                    "{} changed in the container and in the template: choose keep, take or backup",
                    f.target
                ),
            ));
        }
    }
    if !fields.is_empty() {
        return Err(AppError::Invalid {
            message: "the re-apply needs a choice per conflicting file".into(),
            fields,
        });
    }
    let payload = Payload {
        ids: vec![record.id.to_string()],
        files: request.files,
        without_snapshot: request.without_snapshot,
        on_failure: request.on_failure,
        rollout: None,
        remote: remote.to_owned(),
        cluster_id: user.roles.cluster_id,
        by_session: user.ticket.is_some(),
    };
    enqueue(
        state,
        user,
        payload,
        Some(record.id),
        Some(record.node.clone()),
    )
    .await
}

fn check_ids(ids: &[String]) -> Result<(), AppError> {
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(AppError::Invalid {
            message: "the re-apply needs 1 to 200 containers".into(),
            fields: vec![(
                "ids".into(),
                format!("{} given; name 1 to {MAX_IDS} containers", ids.len()),
            )],
        });
    }
    let mut seen = BTreeSet::new();
    for id in ids {
        super::ContainerRef::parse(id)?;
        if !seen.insert(id.trim()) {
            return Err(AppError::invalid(format!("{id:?} is listed twice")));
        }
    }
    Ok(())
}

/// Submits a bulk re-apply (privileges are checked per container in the job, as for bulk
/// lifecycle actions).
pub async fn submit_bulk(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    request: BulkReapplyRequest,
) -> Result<ReapplyAccepted, AppError> {
    check_ids(&request.ids)?;
    let payload = Payload {
        ids: request.ids.iter().map(|i| i.trim().to_owned()).collect(),
        files: BTreeMap::new(),
        without_snapshot: request.without_snapshot,
        on_failure: request.on_failure,
        rollout: None,
        remote: remote.to_owned(),
        cluster_id: user.roles.cluster_id,
        by_session: user.ticket.is_some(),
    };
    enqueue(state, user, payload, None, None).await
}

/// The ids of the containers made from template `name`, oldest first.
pub async fn containers_of(state: &AppState, name: &str) -> Result<Vec<String>, AppError> {
    let template = state.store.get_template_by_name(name).await?;
    let mut ids: Vec<i64> = state
        .store
        .list_containers()
        .await?
        .into_iter()
        .filter(|c| {
            c.template_id == Some(template.row.id) && c.status == crate::status::RecordStatus::Ready
        })
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    Ok(ids.into_iter().map(|i| i.to_string()).collect())
}

/// Submits the rollout of template `name` to every container made from it (audited as
/// `template.rollout`).
pub async fn submit_rollout(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    name: &str,
    request: RolloutRequest,
) -> Result<ReapplyAccepted, AppError> {
    let mut fields = Vec::new();
    if request.canary > MAX_IDS {
        fields.push(("canary".to_owned(), format!("at most {MAX_IDS}")));
    }
    if request.batch == 0 || request.batch > MAX_IDS {
        fields.push(("batch".to_owned(), format!("1 to {MAX_IDS}")));
    }
    if !fields.is_empty() {
        return Err(AppError::Invalid {
            message: "the rollout's canary and batch need attention".into(),
            fields,
        });
    }
    let ids = containers_of(state, name).await?;
    if ids.is_empty() {
        return Err(AppError::Conflict(format!(
            "no ready container was made from template {name}: nothing to roll out"
        )));
    }
    let payload = Payload {
        ids,
        files: BTreeMap::new(),
        without_snapshot: request.without_snapshot,
        on_failure: request.on_failure,
        rollout: Some(RolloutPlan {
            template: name.to_owned(),
            canary: request.canary,
            batch: request.batch,
        }),
        remote: remote.to_owned(),
        cluster_id: user.roles.cluster_id,
        by_session: user.ticket.is_some(),
    };
    let accepted = enqueue(state, user, payload, None, None).await?;
    let entry = Entry::new(
        &user.username,
        "template.rollout",
        format!("template:{name}"),
        remote,
    )
    .outcome("ok")
    .detail(json!({
        "job_id": accepted.job_id,
        "containers": accepted.ids,
        "canary": request.canary,
        "batch": request.batch,
        "without_snapshot": request.without_snapshot,
    }));
    audit::record(state.store.as_ref(), entry).await?;
    Ok(accepted)
}

/// The groups a payload runs in: a rollout's canary one by one, then batches; a bulk
/// re-apply [`BULK_CONCURRENCY`] at a time.
pub fn groups(payload: &Payload, todo: &[String]) -> Vec<Vec<String>> {
    match &payload.rollout {
        Some(r) => {
            let canary = r.canary.min(todo.len());
            let mut out: Vec<Vec<String>> =
                todo[..canary].iter().map(|i| vec![i.clone()]).collect();
            out.extend(
                todo[canary..]
                    .chunks(r.batch.max(1))
                    .map(<[String]>::to_vec),
            );
            out
        }
        None => todo
            .chunks(BULK_CONCURRENCY)
            .map(<[String]>::to_vec)
            .collect(),
    }
}

/// The handler registered for [`JOB_KIND`].
pub struct Reapply {
    store: Arc<dyn Store>,
    pve: Arc<dyn PveConnector>,
    locks: Arc<dyn Locks>,
    guests: Arc<dyn GuestConnector>,
    runner: Arc<CreateContainer>,
    /// Re-apply snapshots kept per container (`[images] keep_reapply_snapshots`).
    keep_snapshots: usize,
}

impl std::fmt::Debug for Reapply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reapply").finish_non_exhaustive()
    }
}

/// What one container's run needs to say at the end.
struct Done {
    outcome: Outcome,
    message: String,
    snapshot: Option<String>,
}

fn failed(message: impl Into<String>) -> Done {
    Done {
        outcome: Outcome::Failed,
        message: message.into(),
        snapshot: None,
    }
}

impl Reapply {
    /// A handler acting through `store`, `pve` (the clusters' tokens), `locks`, `guests`, and
    /// `runner` (the creation pipeline, whose runtime applies).
    pub fn new(
        store: Arc<dyn Store>,
        pve: Arc<dyn PveConnector>,
        locks: Arc<dyn Locks>,
        guests: Arc<dyn GuestConnector>,
        runner: Arc<CreateContainer>,
    ) -> Self {
        Self {
            store,
            pve,
            locks,
            guests,
            runner,
            keep_snapshots: DEFAULT_KEEP_SNAPSHOTS,
        }
    }

    /// Drops the guest session the runner keeps for job `job_id` (once the job is done; also
    /// for other jobs that re-apply through [`Reapply::one`], such as the fleet's).
    pub fn release(&self, job_id: i64) {
        runtime::release(&self.runner, job_id);
    }

    /// Keeps the newest `keep` re-apply snapshots of a container after a successful re-apply
    /// (0: not even the one it took).
    pub fn with_keep_snapshots(mut self, keep: usize) -> Self {
        self.keep_snapshots = keep;
        self
    }

    /// Re-applies one container (privileges, lock, snapshot, apply, rollback, records).
    pub(crate) async fn one(&self, ctx: &JobContext, payload: &Payload, id: &str) -> ItemResult {
        let mut item = ItemResult {
            id: id.to_owned(),
            ..ItemResult::default()
        };
        let target = match resolve_in(self.store.as_ref(), id).await {
            Ok(t) => t,
            Err(e) => {
                item.outcome = Outcome::Failed;
                item.message = e.to_string();
                return item;
            }
        };
        item.vmid = Some(target.vmid);
        item.hostname = Some(target.display_name());
        let done = self.guarded(ctx, payload, &target).await;
        item.outcome = done.outcome;
        item.message = done.message;
        item.snapshot = done.snapshot;
        let outcome = match item.outcome {
            Outcome::Updated => "ok",
            _ => "error",
        };
        let detail = json!({
            "vmid": target.vmid,
            "cluster": target.cluster.name,
            "id": target.record.as_ref().map(|r| r.id),
            "job": ctx.job_id(),
            "outcome": item.outcome,
            "snapshot": item.snapshot,
            "message": item.message,
            "template": payload.rollout.as_ref().map(|r| r.template.clone()),
        });
        if let Some(record) = &target.record {
            let kind = match item.outcome {
                Outcome::Updated => "reapply",
                _ => "reapply_failed",
            };
            if let Err(e) = self
                .store
                .add_container_event(
                    record.id,
                    kind,
                    &item.message,
                    &ctx.job.created_by,
                    &detail.to_string(),
                )
                .await
            {
                tracing::warn!(error = %e, "cannot record container event");
            }
        }
        let entry = Entry::new(
            &ctx.job.created_by,
            "ct.reapply",
            target.audit_target(),
            &payload.remote,
        )
        .outcome(outcome)
        .detail(detail);
        if let Err(e) = audit::record(self.store.as_ref(), entry).await {
            // The rule: not audited, not reported as done.
            item.outcome = Outcome::Failed;
            item.message = format!("{} (but it could not be audited: {e})", item.message);
        }
        item
    }

    async fn guarded(&self, ctx: &JobContext, payload: &Payload, target: &Target) -> Done {
        if payload.by_session && payload.cluster_id.is_some_and(|c| c != target.cluster.id) {
            return failed(crate::authz::other_cluster(&target.cluster).to_string());
        }
        let Some(record) = target.record.clone() else {
            return failed(format!(
                "CT {} is not managed by ctforge: there is no template to re-apply",
                target.vmid
            ));
        };
        let client = match self.pve.service(&target.cluster) {
            Ok(c) => c,
            Err(e) => return failed(e.to_string()),
        };
        let rights = Rights::on_behalf(client.as_ref(), &ctx.job.created_by, &target.cluster.name);
        if let Err(e) = rights
            .require(&vm_path(target.vmid), privileges(payload.without_snapshot))
            .await
        {
            return failed(e.to_string());
        }
        let lock = target.lock_name();
        let owner = format!("reapply:{}:{}", ctx.job_id(), uuid::Uuid::new_v4());
        match self.locks.try_lock(&lock, &owner, LOCK_TTL_MS).await {
            Ok(true) => {}
            Ok(false) => {
                return failed(format!(
                    "another action is running on CT {}; wait for it to finish and retry",
                    target.vmid
                ));
            }
            Err(e) => return failed(e.to_string()),
        }
        let done = self
            .locked(ctx, payload, target, record, client.clone())
            .await;
        match self.locks.unlock(&lock, &owner).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(lock, "re-apply lock expired before the re-apply finished"),
            Err(e) => tracing::warn!(lock, error = %e, "cannot release the re-apply lock"),
        }
        done
    }

    async fn locked(
        &self,
        ctx: &JobContext,
        payload: &Payload,
        target: &Target,
        record: crate::storage::model::Container,
        client: Arc<dyn PveApi>,
    ) -> Done {
        let vmid = target.vmid;
        let name = target.display_name();
        let applied = match drift::applied_of(self.store.as_ref(), &record).await {
            Ok(a) => a,
            Err(e) => return failed(e.to_string()),
        };
        let (template, hash) =
            match drift::current_template(self.store.as_ref(), &applied.template.name).await {
                Ok(Some(t)) => t,
                Ok(None) => {
                    return failed(format!(
                        "template {} was deleted: there is nothing to re-apply",
                        applied.template.name
                    ));
                }
                Err(e) => return failed(e.to_string()),
            };
        let next = applied.payload_with(&template);
        let (applied_expected, current_expected, plan) = match (
            Expected::of(&applied.payload_with(&applied.template)),
            Expected::of(&next),
            next.plan(None),
        ) {
            (Ok(a), Ok(c), Ok(p)) => (a, c, p),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return failed(format!(
                    "template {} no longer fits {name}: {e}",
                    template.name
                ));
            }
        };
        let (node, status) = match lifecycle::locate(client.as_ref(), target).await {
            Ok(found) => found,
            Err(e) => return failed(e.to_string()),
        };
        if status.status != "running" {
            return failed(format!(
                "{name} is {}: start it to re-apply (the template is applied inside it)",
                status.status
            ));
        }
        let guest = match self.guests.connect(&target.cluster).await {
            Ok(session) => {
                let channel = session.channel(vmid, Some(Duration::from_secs(60)));
                drift::read_guest(
                    channel.as_ref(),
                    &applied_expected,
                    Some(&current_expected),
                    false,
                )
                .await
            }
            Err(e) => Err(e.to_string()),
        };
        let guest = match guest {
            Ok(g) => g,
            Err(e) => return failed(format!("cannot read {name}'s files: {e}")),
        };
        let (files, scripts, _) = drift::compare(
            &applied_expected,
            Some(&current_expected),
            Some(&guest),
            false,
        );
        let mut actions = BTreeMap::new();
        for f in &files {
            let default = match f.state {
                FileState::ChangedHere | FileState::Conflict | FileState::RemovedFromTemplate => {
                    FileAction::Keep
                }
                _ => FileAction::Take,
            };
            let action = payload.files.get(&f.name).map_or(default, |c| c.action());
            actions.insert(f.name.clone(), action);
        }
        let run_scripts: BTreeSet<String> = scripts
            .iter()
            .filter(|s| matches!(s.state, ScriptState::Changed | ScriptState::Added))
            .map(|s| s.name.clone())
            .collect();
        let _ = ctx
            .log(format!(
                "{name}: re-applying template {} ({} file(s) kept, {} script(s) to run)",
                template.name,
                actions.values().filter(|a| **a == FileAction::Keep).count(),
                run_scripts.len()
            ))
            .await;
        let snapshot = if payload.without_snapshot {
            let _ = ctx
                .log(format!(
                    "{name}: no snapshot (asked for): a failure cannot be rolled back"
                ))
                .await;
            None
        } else {
            let snap = format!("{SNAPSHOT_PREFIX}{}", ctx.job_id());
            match take_snapshot(client.as_ref(), &node, vmid, &snap).await {
                Ok(()) => {
                    let _ = ctx.log(format!("{name}: snapshot {snap} taken")).await;
                    Some(snap)
                }
                Err(e) if e.contains("snapshot feature is not available") => {
                    return failed(format!(
                        "the storage of {name} cannot take snapshots ({e}): re-apply without a snapshot to go on (\"without_snapshot\": true)"
                    ));
                }
                Err(e) => return failed(format!("{name}: the snapshot failed: {e}")),
            }
        };
        let subject = runtime::Subject {
            container: record.clone(),
            cluster: target.cluster.clone(),
            client: client.clone(),
            plan,
        };
        let result = runtime::apply(&self.runner, ctx, subject, &actions, &run_scripts).await;
        match result {
            Ok(()) => {
                let stored = serde_json::to_string(&template)
                    .map_err(|e| e.to_string())
                    .map(|template_json| AppliedTemplate {
                        container_id: record.id,
                        template_name: template.name.clone(),
                        template_hash: hash.clone(),
                        template_json,
                        job_id: Some(ctx.job_id()),
                        applied_at: 0,
                    });
                let stored = match stored {
                    Ok(row) => self
                        .store
                        .put_applied_template(&row)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if let Err(e) = stored {
                    return Done {
                        outcome: Outcome::Failed,
                        message: format!(
                            "{name}: applied, but what was applied could not be recorded ({e}); re-apply again"
                        ),
                        snapshot,
                    };
                }
                let _ = ctx
                    .log(format!("{name}: template {} applied", template.name))
                    .await;
                let snapshot = match &snapshot {
                    Some(_) => {
                        let pruned =
                            prune_snapshots(client.as_ref(), &node, vmid, self.keep_snapshots)
                                .await;
                        let _ = ctx.log(format!("{name}: {}", pruned.describe())).await;
                        snapshot.filter(|s| !pruned.deleted.contains(s))
                    }
                    None => None,
                };
                Done {
                    outcome: Outcome::Updated,
                    message: format!(
                        "template {} (version {}) applied{}",
                        template.name,
                        short(&hash),
                        snapshot
                            .as_ref()
                            .map(|s| format!("; snapshot {s} kept"))
                            .unwrap_or_default()
                    ),
                    snapshot,
                }
            }
            Err(e) => {
                let why = e.to_string();
                let _ = ctx
                    .log(format!("! {name}: the re-apply failed: {why}"))
                    .await;
                match (&snapshot, payload.on_failure) {
                    (Some(snap), OnFailure::Rollback) => {
                        let _ = ctx
                            .log(format!("{name}: rolling back to snapshot {snap}"))
                            .await;
                        match rollback(client.as_ref(), &node, vmid, snap).await {
                            Ok(()) => {
                                let _ = ctx
                                    .log(format!("{name}: rolled back to snapshot {snap}"))
                                    .await;
                                Done {
                                    outcome: Outcome::RolledBack,
                                    message: format!(
                                        "the re-apply failed ({why}); rolled back to snapshot {snap}"
                                    ),
                                    snapshot,
                                }
                            }
                            Err(r) => Done {
                                outcome: Outcome::Failed,
                                message: format!(
                                    "the re-apply failed ({why}) and the rollback to {snap} failed too ({r}); roll back by hand"
                                ),
                                snapshot,
                            },
                        }
                    }
                    (Some(snap), OnFailure::Keep) => Done {
                        outcome: Outcome::Failed,
                        message: format!(
                            "the re-apply failed ({why}); left as it is, snapshot {snap} kept to roll back by hand"
                        ),
                        snapshot,
                    },
                    (None, _) => failed(format!(
                        "the re-apply failed ({why}); no snapshot was taken, nothing rolled back"
                    )),
                }
            }
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn wait_options() -> WaitOptions {
    WaitOptions {
        timeout: TASK_TIMEOUT,
        poll_interval: Duration::from_millis(200),
        log_page: 500,
    }
}

/// Takes snapshot `name` (kept when a resumed job already took it).
async fn take_snapshot(
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
    name: &str,
) -> Result<(), String> {
    let existing = client
        .snapshot_list(node, vmid)
        .await
        .map_err(|e| e.to_string())?;
    if existing.iter().any(|s| s.name == name) {
        return Ok(());
    }
    let upid = client
        .snapshot_create(node, vmid, name, Some("taken by ctforge before a re-apply"))
        .await
        .map_err(|e| e.to_string())?;
    let exit = ctforge_pve::wait_task(
        client,
        node,
        &upid,
        wait_options(),
        &mut |_: ctforge_pve::TaskProgress| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    exit.into_result(&upid)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What [`prune_snapshots`] did.
#[derive(Debug, Default)]
struct Pruned {
    kept: usize,
    deleted: Vec<String>,
    /// Snapshots that could not be deleted, with Proxmox's answer.
    failed: Vec<(String, String)>,
}

impl Pruned {
    fn describe(&self) -> String {
        let mut text = format!("{} re-apply snapshot(s) kept", self.kept);
        if !self.deleted.is_empty() {
            text.push_str(&format!(
                ", older ones deleted: {}",
                self.deleted.join(", ")
            ));
        }
        for (name, why) in &self.failed {
            text.push_str(&format!("; ! cannot delete {name}: {why}"));
        }
        text
    }
}

/// The re-apply snapshots among `all`, newest first (by job id, which grows; then by time).
fn reapply_snapshots(all: &[ctforge_pve::types::Snapshot]) -> Vec<String> {
    let mut ours: Vec<(i64, i64, String)> = all
        .iter()
        .filter_map(|s| {
            let job = s.name.strip_prefix(SNAPSHOT_PREFIX)?.parse::<i64>().ok()?;
            Some((job, s.snaptime.unwrap_or(0), s.name.clone()))
        })
        .collect();
    ours.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
    ours.into_iter().map(|(_, _, name)| name).collect()
}

/// Deletes all but the newest `keep` re-apply snapshots of a container (the user's own
/// snapshots are never touched). Best effort: a snapshot Proxmox refuses to delete is reported,
/// the re-apply stays a success.
async fn prune_snapshots(client: &dyn PveApi, node: &str, vmid: u32, keep: usize) -> Pruned {
    let mut pruned = Pruned::default();
    let all = match client.snapshot_list(node, vmid).await {
        Ok(all) => all,
        Err(e) => {
            pruned.failed.push(("the list".into(), e.to_string()));
            return pruned;
        }
    };
    let ours = reapply_snapshots(&all);
    pruned.kept = ours.len().min(keep);
    for name in ours.into_iter().skip(keep) {
        let deleted = async {
            let upid = client
                .snapshot_delete(node, vmid, &name, false)
                .await
                .map_err(|e| e.to_string())?;
            ctforge_pve::wait_task(
                client,
                node,
                &upid,
                wait_options(),
                &mut |_: ctforge_pve::TaskProgress| {},
            )
            .await
            .map_err(|e| e.to_string())?
            .into_result(&upid)
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
        .await;
        match deleted {
            Ok(()) => pruned.deleted.push(name),
            Err(e) => pruned.failed.push((name, e)),
        }
    }
    pruned
}

/// Rolls back to `name` and starts the container again (it ran: a re-apply needs it running).
async fn rollback(client: &dyn PveApi, node: &str, vmid: u32, name: &str) -> Result<(), String> {
    let upid = client
        .snapshot_rollback(node, vmid, name, true)
        .await
        .map_err(|e| e.to_string())?;
    let exit = ctforge_pve::wait_task(
        client,
        node,
        &upid,
        wait_options(),
        &mut |_: ctforge_pve::TaskProgress| {},
    )
    .await
    .map_err(|e| e.to_string())?;
    exit.into_result(&upid)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[async_trait]
impl JobHandler for Reapply {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec![STEP]
    }

    async fn run_step(&self, ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        let job = &ctx.job;
        let payload: Payload = serde_json::from_str(&job.payload_json)
            .map_err(|_| StepError::failed("the job's payload is unreadable; submit again"))?;
        let mut results: BTreeMap<String, ItemResult> = ReapplyResult::of(job)
            .items
            .into_iter()
            .filter(|i| i.outcome != Outcome::Skipped)
            .map(|i| (i.id.clone(), i))
            .collect();
        let todo: Vec<String> = payload
            .ids
            .iter()
            .filter(|id| {
                results
                    .get(*id)
                    .is_none_or(|r| r.outcome != Outcome::Updated)
            })
            .cloned()
            .collect();
        if todo.len() < payload.ids.len() {
            ctx.log(format!(
                "{} container(s) already updated in an earlier attempt; running the {} others",
                payload.ids.len() - todo.len(),
                todo.len()
            ))
            .await?;
        }
        for id in &todo {
            results.remove(id);
        }
        let stop_on_failure = payload.rollout.is_some();
        let mut stopped = false;
        let total = todo.len().max(1);
        let mut finished = 0usize;
        for group in groups(&payload, &todo) {
            if ctx.is_cancelled() {
                break;
            }
            let runs = group.iter().map(|id| self.one(ctx, &payload, id));
            let items = futures_util::future::join_all(runs).await;
            let mut failure = None;
            for item in items {
                finished += 1;
                ctx.log(format!(
                    "{}: {}",
                    item.hostname.clone().unwrap_or_else(|| item.id.clone()),
                    item.message
                ))
                .await?;
                ctx.emit("result", serde_json::to_value(&item).unwrap_or_default())
                    .await?;
                if item.outcome != Outcome::Updated {
                    failure.get_or_insert_with(|| item.id.clone());
                }
                results.insert(item.id.clone(), item);
            }
            let summary = ReapplyResult::build(&payload, &results, false);
            ctx.set_result(&serde_json::to_value(&summary).unwrap_or_default())
                .await?;
            let _ = ctx
                .percent(u8::try_from(finished * 100 / total).unwrap_or(100))
                .await;
            if let Some(first) = failure
                && stop_on_failure
            {
                ctx.log(format!(
                    "the rollout stops: {first} failed; the containers after it are left untouched"
                ))
                .await?;
                stopped = true;
                break;
            }
        }
        runtime::release(&self.runner, ctx.job_id());
        let summary = ReapplyResult::build(&payload, &results, stopped);
        ctx.set_result(&serde_json::to_value(&summary).unwrap_or_default())
            .await?;
        if ctx.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        ctx.log(format!(
            "{} updated, {} failed, {} not run",
            summary.updated, summary.failed, summary.skipped
        ))
        .await?;
        if summary.failed > 0 || summary.skipped > 0 {
            return Err(StepError::failed(format!(
                "{} of {} container(s) failed{}",
                summary.failed,
                summary.total,
                if stopped {
                    format!(", {} not run", summary.skipped)
                } else {
                    String::new()
                }
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn payload(rollout: Option<(usize, usize)>) -> Payload {
        Payload {
            ids: (1..=5).map(|i| i.to_string()).collect(),
            files: BTreeMap::new(),
            without_snapshot: false,
            on_failure: OnFailure::Rollback,
            rollout: rollout.map(|(canary, batch)| RolloutPlan {
                template: "t".into(),
                canary,
                batch,
            }),
            remote: String::new(),
            cluster_id: None,
            by_session: false,
        }
    }

    #[test]
    fn canary_first_then_batches() {
        let p = payload(Some((1, 2)));
        let g = groups(&p, &p.ids);
        assert_eq!(
            g,
            vec![
                vec!["1".to_owned()],
                vec!["2".to_owned(), "3".to_owned()],
                vec!["4".to_owned(), "5".to_owned()]
            ]
        );
        let p = payload(None);
        assert_eq!(groups(&p, &p.ids).len(), 2);
        let p = payload(Some((9, 1)));
        assert_eq!(groups(&p, &p.ids).len(), 5);
    }

    #[test]
    fn results_name_what_did_not_run() {
        let p = payload(Some((1, 1)));
        let mut by_id = BTreeMap::new();
        by_id.insert(
            "1".to_owned(),
            ItemResult {
                id: "1".into(),
                outcome: Outcome::Updated,
                ..ItemResult::default()
            },
        );
        let r = ReapplyResult::build(&p, &by_id, true);
        assert_eq!((r.updated, r.skipped, r.total), (1, 4, 5));
        assert!(r.items[4].message.contains("stopped"));
    }
}
