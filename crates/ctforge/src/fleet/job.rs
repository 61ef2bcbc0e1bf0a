//! The `fleet_apply` job ([`FleetApply`]): one job executing a fleet plan, one item per `+`,
//! `~` and `-` line, each with its own state, result and error.
//!
//! - `~` items run here: the config change (Proxmox is asked first whether the submitter holds
//!   `VM.Config.Memory` / `VM.Config.CPU` on the guest, then the cluster's token changes it,
//!   under the container's lock; event and audit `ct.config`), then a template version through
//!   the re-apply of `containers::reapply` (snapshot, apply, rollback on failure).
//! - `-` items run here through the bulk action's Delete (`containers::bulk`: the very
//!   `lifecycle::execute` of a single Delete, privilege asked of Proxmox).
//! - `+` items are creations the apply request submitted (a creation needs the submitter's own
//!   identity — their ticket, root's sealed ticket for root-only options — which only the request
//!   holds; each container keeps its own creation job for its page). The job follows them and
//!   records each one's outcome as it ends.
//!
//! Up to [`CONCURRENCY`] `~`/`-` items run at once, while the creations are followed. Each
//! outcome is stored in the job's result ([`FleetResult`]) as soon as it is known, published as
//! a `result` event and logged. The job fails when any item failed; a retry runs again only the
//! failed items (failed creations are retried through their own creation jobs).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ChangeKind, FieldChange, TEMPLATE_FIELD};
use crate::containers::bulk::{self, BulkAction};
use crate::containers::lifecycle::{self, Action};
use crate::containers::reapply::{self, Reapply};
use crate::containers::{Target, resolve_in};
use crate::jobs::items::{self, Reports};
use crate::jobs::{JobContext, JobError, JobHandler, JobQueue, JobState, RetryPrep, StepError};
use crate::locks::Locks;
use crate::pve::PveConnector;
use crate::storage::Store;
use crate::storage::model::Job;

/// The `jobs.kind` of a fleet apply.
pub const JOB_KIND: &str = "fleet_apply";
/// The job's one step.
pub const STEP: &str = "fleet";
/// `~` and `-` items run at once.
pub const CONCURRENCY: usize = 4;
/// How often the job looks at the creations it follows.
const POLL: Duration = Duration::from_millis(500);
/// How long a config change may hold a container's lock.
const LOCK_TTL_MS: i64 = 5 * 60 * 1000;

/// One `+`, `~` or `-` line of the plan, as the job executes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FleetItem {
    /// `create`, `update` or `remove`.
    pub action: ChangeKind,
    /// Hostname.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// ctforge container id (every item has one: creations are stored before the job runs).
    pub container_id: Option<i64>,
    /// VMID.
    pub vmid: Option<u32>,
    /// Node.
    pub node: Option<String>,
    /// What changes (`~`).
    #[serde(default)]
    pub changes: Vec<FieldChange>,
    /// The creation job of a `+` item.
    #[serde(default)]
    pub creation_job: Option<i64>,
    /// Why a `+` item could not even be submitted (another item's creation was already
    /// queued; apply again to create it).
    #[serde(default)]
    pub not_queued: Option<String>,
}

impl FleetItem {
    /// The item's key in the job's result (`<cluster>/<hostname>`, unique in a fleet).
    pub fn key(&self) -> String {
        format!("{}/{}", self.cluster, self.name)
    }

    /// `api-1 (pve1, VMID 101)`.
    pub fn label(&self) -> String {
        match (&self.node, self.vmid) {
            (Some(node), Some(vmid)) => format!("{} ({node}, VMID {vmid})", self.name),
            (None, Some(vmid)) => format!("{} (VMID {vmid})", self.name),
            _ => self.name.clone(),
        }
    }
}

/// The job's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetPayload {
    /// The plan's changes, in plan order.
    pub items: Vec<FleetItem>,
    /// The submitter's address (audit).
    pub remote: String,
    /// The cluster the submitter signed in to (or their token was made on).
    #[serde(default)]
    pub cluster_id: Option<i64>,
    /// Whether a browser session submitted it (acts on its own cluster only).
    #[serde(default)]
    pub by_session: bool,
}

/// Where an item stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not done yet (or not run: the job was cancelled).
    #[default]
    Pending,
    /// Done.
    Succeeded,
    /// Failed; a retry runs it again.
    Failed,
}

impl ItemState {
    /// As shown and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// One item's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemResult {
    /// The item.
    #[serde(flatten)]
    pub item: FleetItem,
    /// Where it stands.
    pub state: ItemState,
    /// What was done (success).
    #[serde(default)]
    pub message: String,
    /// What went wrong (failure).
    #[serde(default)]
    pub error: Option<String>,
    /// Which run of this item produced the result (1 first, 2 after one retry, …).
    pub attempt: i64,
}

impl ItemResult {
    fn pending(item: &FleetItem) -> Self {
        Self {
            item: item.clone(),
            state: ItemState::Pending,
            message: String::new(),
            error: None,
            attempt: 0,
        }
    }
}

/// The job's result (`GET /api/v1/jobs/{id}` → `result`): every item, in plan order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct FleetResult {
    /// Items in the plan.
    pub total: usize,
    /// Succeeded so far.
    pub succeeded: usize,
    /// Failed (in their latest attempt).
    pub failed: usize,
    /// Not finished.
    pub pending: usize,
    /// Per item, in plan order.
    pub items: Vec<ItemResult>,
}

impl FleetResult {
    /// A job's stored result (empty when there is none yet).
    pub fn of(job: &Job) -> Self {
        job.result_json
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default()
    }

    /// The result of `payload` with what is known in `by_key`.
    pub fn build(payload: &FleetPayload, by_key: &BTreeMap<String, ItemResult>) -> Self {
        let items: Vec<ItemResult> = payload
            .items
            .iter()
            .map(|i| {
                by_key
                    .get(&i.key())
                    .cloned()
                    .unwrap_or_else(|| ItemResult::pending(i))
            })
            .collect();
        let count = |s: ItemState| items.iter().filter(|i| i.state == s).count();
        Self {
            total: items.len(),
            succeeded: count(ItemState::Succeeded),
            failed: count(ItemState::Failed),
            pending: count(ItemState::Pending),
            items,
        }
    }
}

/// Reads a fleet job's payload.
pub fn payload_of(job: &Job) -> Option<FleetPayload> {
    serde_json::from_str(&job.payload_json).ok()
}

/// One result line as the CLI prints it: `  ~ api-2 (pve2, VMID 102): memory 512 → 1024` or
/// `  + web-3 (pve1, VMID 104): failed — <error>`.
pub fn result_line(r: &ItemResult) -> String {
    let what = match r.state {
        ItemState::Succeeded => r.message.clone(),
        ItemState::Failed => format!("failed — {}", r.error.clone().unwrap_or_default()),
        ItemState::Pending => "not run".to_owned(),
    };
    format!("  {} {}: {what}", r.item.action.symbol(), r.item.label())
}

/// The handler registered for [`JOB_KIND`].
pub struct FleetApply {
    store: Arc<dyn Store>,
    pve: Arc<dyn PveConnector>,
    locks: Arc<dyn Locks>,
    bulk: Arc<BulkAction>,
    reapply: Arc<Reapply>,
    queue: Weak<JobQueue>,
}

impl std::fmt::Debug for FleetApply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetApply").finish_non_exhaustive()
    }
}

impl FleetApply {
    /// A handler acting through `store`, `pve` (the clusters' tokens) and `locks`, removing
    /// through `bulk`, re-applying through `reapply`, and retrying failed creations through
    /// `queue` (weak: the queue's registry holds this handler).
    pub fn new(
        store: Arc<dyn Store>,
        pve: Arc<dyn PveConnector>,
        locks: Arc<dyn Locks>,
        bulk: Arc<BulkAction>,
        reapply: Arc<Reapply>,
        queue: Weak<JobQueue>,
    ) -> Self {
        Self {
            store,
            pve,
            locks,
            bulk,
            reapply,
            queue,
        }
    }

    /// Runs one `~` or `-` item; `Ok(message)` or `Err(error)`.
    async fn run(
        &self,
        ctx: &JobContext,
        payload: &FleetPayload,
        item: &FleetItem,
    ) -> Result<String, String> {
        let id = item
            .container_id
            .ok_or_else(|| format!("{} has no container record", item.name))?
            .to_string();
        let target = resolve_in(self.store.as_ref(), &id)
            .await
            .map_err(|e| e.to_string())?;
        if payload.by_session && payload.cluster_id.is_some_and(|c| c != target.cluster.id) {
            return Err(crate::authz::other_cluster(&target.cluster).to_string());
        }
        match item.action {
            ChangeKind::Remove => self.remove(ctx, payload, &id, &target).await,
            ChangeKind::Update => self.update(ctx, payload, &id, &target, item).await,
            ChangeKind::Create | ChangeKind::Unchanged => Ok(String::new()),
        }
    }

    async fn remove(
        &self,
        ctx: &JobContext,
        payload: &FleetPayload,
        id: &str,
        target: &Target,
    ) -> Result<String, String> {
        let as_bulk = bulk::Payload {
            action: Action::Delete.as_str().to_owned(),
            ids: vec![id.to_owned()],
            timeout: lifecycle::DEFAULT_SHUTDOWN_TIMEOUT,
            remote: payload.remote.clone(),
            cluster_id: payload.cluster_id,
            by_session: payload.by_session,
        };
        let r = self
            .bulk
            .one(&ctx.job, &as_bulk, Action::Delete, id, target, 1)
            .await;
        if r.ok {
            Ok(format!("removed ({})", r.message))
        } else {
            Err(r.message)
        }
    }

    async fn update(
        &self,
        ctx: &JobContext,
        payload: &FleetPayload,
        id: &str,
        target: &Target,
        item: &FleetItem,
    ) -> Result<String, String> {
        let mut done = Vec::new();
        let config: Vec<FieldChange> = item
            .changes
            .iter()
            .filter(|c| c.applicable && c.field != TEMPLATE_FIELD)
            .cloned()
            .collect();
        if !config.is_empty() {
            self.change_config(ctx, payload, target, &config).await?;
            done.extend(
                config
                    .iter()
                    .map(|c| format!("{} {} → {}", c.field, c.from, c.to)),
            );
        }
        if item
            .changes
            .iter()
            .any(|c| c.applicable && c.field == TEMPLATE_FIELD)
        {
            let as_reapply = reapply::Payload {
                ids: vec![id.to_owned()],
                files: BTreeMap::new(),
                without_snapshot: false,
                on_failure: reapply::OnFailure::Rollback,
                rollout: None,
                remote: payload.remote.clone(),
                cluster_id: payload.cluster_id,
                by_session: payload.by_session,
            };
            let r = self.reapply.one(ctx, &as_reapply, id).await;
            if r.outcome != reapply::Outcome::Updated {
                let before = if done.is_empty() {
                    String::new()
                } else {
                    format!("{} changed, but ", done.join(", "))
                };
                return Err(format!("{before}the re-apply failed: {}", r.message));
            }
            done.push(r.message);
        }
        Ok(done.join("; "))
    }

    /// Changes memory, cores or swap: the submitter's privilege asked of Proxmox, the
    /// container's lock, the config `PUT` with the cluster's token, event and audit.
    async fn change_config(
        &self,
        ctx: &JobContext,
        payload: &FleetPayload,
        target: &Target,
        changes: &[FieldChange],
    ) -> Result<(), String> {
        let client = self
            .pve
            .service(&target.cluster)
            .map_err(|e| e.to_string())?;
        let rights = crate::authz::Rights::on_behalf(
            client.as_ref(),
            &ctx.job.created_by,
            &target.cluster.name,
        );
        let lock = target.lock_name();
        let owner = format!("fleet:{}:{}", ctx.job_id(), uuid::Uuid::new_v4());
        match self.locks.try_lock(&lock, &owner, LOCK_TTL_MS).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "another action is running on CT {}; wait for it to finish and retry",
                    target.vmid
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        let changed = super::apply_config(
            self.store.as_ref(),
            client.as_ref(),
            &rights,
            super::ConfigActor {
                username: &ctx.job.created_by,
                remote: &payload.remote,
                job: ctx.job_id(),
            },
            target,
            changes,
        )
        .await;
        if let Err(e) = self.locks.unlock(&lock, &owner).await {
            tracing::warn!(lock, error = %e, "cannot release the fleet's config lock");
        }
        changed.map_err(|e| e.to_string())
    }

    /// Reports `result` in its turn, unless an earlier report failed (then kept in `reports`).
    async fn record(
        &self,
        ctx: &JobContext,
        payload: &FleetPayload,
        reports: &Reports<BTreeMap<String, ItemResult>>,
        result: ItemResult,
    ) {
        let Some(mut results) = reports.turn().await else {
            return;
        };
        if let Err(e) = self.report(ctx, payload, &mut results, result).await {
            reports.failed(e);
        }
    }

    /// Stores, publishes and logs one item's outcome.
    async fn report(
        &self,
        ctx: &JobContext,
        payload: &FleetPayload,
        results: &mut BTreeMap<String, ItemResult>,
        result: ItemResult,
    ) -> Result<(), StepError> {
        ctx.log(match result.state {
            ItemState::Succeeded => format!("✓{}", result_line(&result)),
            _ => format!("✗{}", result_line(&result)),
        })
        .await?;
        ctx.emit(
            bulk::RESULT_EVENT,
            serde_json::to_value(&result).unwrap_or_default(),
        )
        .await?;
        results.insert(result.item.key(), result);
        let summary = FleetResult::build(payload, results);
        ctx.set_result(&serde_json::to_value(&summary).unwrap_or_default())
            .await?;
        let finished = summary.total - summary.pending;
        ctx.percent(u8::try_from(finished * 100 / summary.total.max(1)).unwrap_or(100))
            .await?;
        Ok(())
    }

    /// The creations among `todo` that have ended since the last look, as results.
    async fn ended_creations(
        &self,
        todo: &mut Vec<(FleetItem, i64)>,
    ) -> Result<Vec<ItemResult>, StepError> {
        let mut ended = Vec::new();
        let mut still = Vec::new();
        for (item, attempt) in todo.drain(..) {
            let Some(job_id) = item.creation_job else {
                let why = item
                    .not_queued
                    .clone()
                    .unwrap_or_else(|| "it was not queued".into());
                ended.push(ItemResult {
                    error: Some(format!(
                        "the creation could not be submitted ({why}); apply again to create it"
                    )),
                    state: ItemState::Failed,
                    message: String::new(),
                    attempt,
                    item,
                });
                continue;
            };
            let job = self.store.get_job(job_id).await?;
            if !job.state.is_finished() {
                still.push((item, attempt));
                continue;
            }
            let ok = job.state == JobState::Succeeded;
            ended.push(ItemResult {
                state: if ok {
                    ItemState::Succeeded
                } else {
                    ItemState::Failed
                },
                message: if ok {
                    format!("created (job {job_id})")
                } else {
                    String::new()
                },
                error: (!ok).then(|| {
                    format!(
                        "creation job {job_id} {}: {}",
                        job.state,
                        job.error.clone().unwrap_or_default()
                    )
                }),
                attempt,
                item,
            });
        }
        *todo = still;
        Ok(ended)
    }
}

#[async_trait]
impl JobHandler for FleetApply {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec![STEP]
    }

    /// The creations it follows report their own progress.
    fn step_timeout(&self, _job: &Job, _step: &str) -> Option<Duration> {
        Some(Duration::from_secs(24 * 3600))
    }

    async fn run_step(&self, ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        let payload = payload_of(&ctx.job)
            .ok_or_else(|| StepError::failed("the job's payload is unreadable; apply again"))?;
        // Results of earlier attempts: what succeeded is not run again.
        let results: BTreeMap<String, ItemResult> = FleetResult::of(&ctx.job)
            .items
            .into_iter()
            .filter(|r| r.state != ItemState::Pending)
            .map(|r| (r.item.key(), r))
            .collect();
        let todo: Vec<(FleetItem, i64)> = payload
            .items
            .iter()
            .filter(|i| {
                results
                    .get(&i.key())
                    .is_none_or(|r| r.state != ItemState::Succeeded)
            })
            .map(|i| {
                (
                    i.clone(),
                    results.get(&i.key()).map_or(1, |r| r.attempt + 1),
                )
            })
            .collect();
        let skipped = payload.items.len() - todo.len();
        if skipped > 0 {
            ctx.log(format!(
                "{skipped} item(s) already done in an earlier attempt; running the {} others",
                todo.len()
            ))
            .await?;
        }
        let (mut creations, actions): (Vec<_>, Vec<_>) = todo
            .into_iter()
            .partition(|(i, _)| i.action == ChangeKind::Create);
        // The `~`/`-` items run while the creations are followed; each outcome is reported from
        // the future that produced it, every one polled together (`jobs::items` says why). A
        // failed report (database down, lease lost) stops the reporting but lets the items in
        // flight finish, so none is cut off holding its container's lock.
        let reports = Reports::new(results);
        let (reports_ref, payload_ref) = (&reports, &payload);
        // Boxed: closures here would make the handler's future not general enough.
        let mut running: Vec<futures_util::future::BoxFuture<'_, ()>> = Vec::new();
        for (item, attempt) in actions {
            running.push(Box::pin(async move {
                if ctx.is_cancelled() {
                    return;
                }
                let outcome = self.run(ctx, payload_ref, &item).await;
                let result = match outcome {
                    Ok(message) => ItemResult {
                        item,
                        state: ItemState::Succeeded,
                        message,
                        error: None,
                        attempt,
                    },
                    Err(error) => ItemResult {
                        item,
                        state: ItemState::Failed,
                        message: String::new(),
                        error: Some(error),
                        attempt,
                    },
                };
                self.record(ctx, payload_ref, reports_ref, result).await;
            }));
        }
        let follow_creations = async {
            while !creations.is_empty() && !reports_ref.troubled() && !ctx.is_cancelled() {
                match self.ended_creations(&mut creations).await {
                    Ok(ended) => {
                        for r in ended {
                            self.record(ctx, payload_ref, reports_ref, r).await;
                        }
                    }
                    Err(e) => reports_ref.failed(e),
                }
                if !creations.is_empty() {
                    tokio::time::sleep(POLL).await;
                }
            }
        };
        tokio::join!(items::run_all(running, CONCURRENCY), follow_creations);
        let (results, trouble) = reports.into_parts();
        self.reapply.release(ctx.job_id());
        if let Some(e) = trouble {
            return Err(e);
        }
        if ctx.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let summary = FleetResult::build(&payload, &results);
        if summary.failed == 0 {
            ctx.log(format!("all {} change(s) applied", summary.total))
                .await?;
            return Ok(());
        }
        let failed: Vec<String> = summary
            .items
            .iter()
            .filter(|r| r.state == ItemState::Failed)
            .map(|r| r.item.name.clone())
            .collect();
        Err(StepError::failed(format!(
            "{} of {} change(s) failed ({}); retry the job to run only those again",
            summary.failed,
            summary.total,
            failed.join(", ")
        )))
    }

    async fn prepare_retry(&self, job: &Job) -> Result<RetryPrep, JobError> {
        let Some(payload) = payload_of(job) else {
            return Ok(RetryPrep::default());
        };
        let result = FleetResult::of(job);
        let creations: Vec<crate::provisioning::batch::BatchItem> = result
            .items
            .iter()
            .filter(|r| r.state == ItemState::Failed && r.item.action == ChangeKind::Create)
            .filter_map(|r| {
                Some(crate::provisioning::batch::BatchItem {
                    id: r.item.container_id?,
                    vmid: r.item.vmid.unwrap_or_default(),
                    hostname: r.item.name.clone(),
                    node: r.item.node.clone().unwrap_or_default(),
                    job_id: r.item.creation_job?,
                })
            })
            .collect();
        let mut notes = crate::provisioning::batch::retry_failed(
            self.store.as_ref(),
            &self.queue,
            &creations,
            &job.created_by,
        )
        .await?;
        let again = payload.items.len() - result.succeeded;
        notes.insert(
            0,
            format!(
                "retrying the {again} item(s) that did not succeed; the {} done stay done",
                result.succeeded
            ),
        );
        Ok(RetryPrep {
            payload_json: None,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, action: ChangeKind) -> FleetItem {
        FleetItem {
            action,
            name: name.into(),
            cluster: "lab".into(),
            container_id: Some(1),
            vmid: Some(101),
            node: Some("pve1".into()),
            changes: Vec::new(),
            creation_job: None,
            not_queued: None,
        }
    }

    #[test]
    fn results_keep_plan_order_and_count_states() {
        let payload = FleetPayload {
            items: vec![
                item("a", ChangeKind::Create),
                item("b", ChangeKind::Update),
                item("c", ChangeKind::Remove),
            ],
            remote: String::new(),
            cluster_id: None,
            by_session: false,
        };
        let mut known = BTreeMap::new();
        known.insert(
            "lab/c".to_owned(),
            ItemResult {
                item: payload.items[2].clone(),
                state: ItemState::Failed,
                message: String::new(),
                error: Some("locked".into()),
                attempt: 1,
            },
        );
        let r = FleetResult::build(&payload, &known);
        assert_eq!((r.total, r.failed, r.pending, r.succeeded), (3, 1, 2, 0));
        let names: Vec<&str> = r.items.iter().map(|i| i.item.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            result_line(&r.items[2]),
            "  - c (pve1, VMID 101): failed — locked"
        );
        assert_eq!(result_line(&r.items[0]), "  + a (pve1, VMID 101): not run");
    }
}
