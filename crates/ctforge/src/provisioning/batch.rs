//! Many containers at once (`"count": N`): N creations from one request (usually a preset),
//! hostnames from a pattern (`web-{n}`), successive free VMIDs, nodes picked by a
//! [`Placement`] rule, and one `create_batch` job ([`CreateBatch`]) that follows them.
//!
//! Each container is submitted through [`submit::submit`], the path of a single creation: its
//! permission checks, its own durable creation job, and its VMID reservation — the container
//! record is stored with a unique `(cluster, vmid)`, and the automatic VMID skips every id a
//! ctforge record holds, so containers of one batch, and of any creation running at the same
//! time, never share a VMID (a lost race is planned again by `submit`).
//!
//! The batch job's one step watches the creation jobs, records a per-container result in the
//! job's result as each one ends (a `result` event, a log line, the percent), and fails when
//! any failed; retrying the batch retries only the failed creations
//! ([`JobHandler::prepare_retry`]), each from the step that failed.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::plan::CreateRequest;
use super::submit;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::jobs::{JobContext, JobError, JobHandler, JobQueue, JobState, RetryPrep, StepError};
use crate::state::AppState;
use crate::storage::Store;
use crate::storage::model::{Job, NewJob};

/// The `jobs.kind` of a batch creation.
pub const JOB_KIND: &str = "create_batch";
/// The batch job's one step.
pub const STEP: &str = "containers";
/// Most containers in one request.
pub const MAX_COUNT: u32 = 50;
/// The placeholder of the hostname pattern.
pub const PLACEHOLDER: &str = "{n}";
/// How often the batch job looks at its creations.
const POLL: Duration = Duration::from_millis(500);

/// Where the containers of a batch go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// All on the request's node (the first online node when none is named).
    #[default]
    Fixed,
    /// One after another over the online nodes.
    RoundRobin,
    /// Each on the online node with the most free memory, counting the ones placed before.
    LeastLoaded,
}

impl Placement {
    /// What a valid value looks like.
    pub const HINT: &'static str = "must be fixed, round-robin or least-loaded";
}

/// Checks a `count`: a whole number from 1 to [`MAX_COUNT`].
pub fn check_count(count: Option<u64>) -> Result<u32, String> {
    count
        .and_then(|c| u32::try_from(c).ok())
        .filter(|c| (1..=MAX_COUNT).contains(c))
        .ok_or_else(|| format!("must be a whole number from 1 to {MAX_COUNT}"))
}

/// One container of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BatchItem {
    /// ctforge container id.
    pub id: i64,
    /// VMID.
    pub vmid: u32,
    /// Hostname (the pattern with `{n}` replaced).
    pub hostname: String,
    /// The node it was placed on.
    pub node: String,
    /// Its creation job.
    pub job_id: i64,
}

/// A container of the batch that could not even be queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NotQueued {
    /// Hostname.
    pub hostname: String,
    /// Why.
    pub error: String,
}

/// `202` of `POST /api/v1/containers` with `count`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct BatchAccepted {
    /// The batch job following every creation.
    pub job_id: i64,
    /// The containers, in hostname order.
    pub items: Vec<BatchItem>,
    /// Containers that could not be queued (a race on Proxmox after the first was checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_queued: Vec<NotQueued>,
    /// `GET` it for the per-container results.
    pub url: String,
}

/// The batch job's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchPayload {
    /// The containers and their creation jobs.
    pub items: Vec<BatchItem>,
    /// Containers that were never queued (reported as failed, not retryable).
    #[serde(default)]
    pub not_queued: Vec<NotQueued>,
}

/// One container's outcome in the batch job's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ItemResult {
    /// The container.
    #[serde(flatten)]
    pub item: BatchItem,
    /// Its creation job's final state.
    pub state: String,
    /// Whether it was created.
    pub ok: bool,
    /// Its error, if it failed.
    pub message: String,
}

/// The batch job's result (`GET /api/v1/jobs/{id}` → `result`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct BatchResult {
    /// Results by hostname, as the creations end.
    pub results: BTreeMap<String, ItemResult>,
    /// Containers never queued.
    #[serde(default)]
    pub not_queued: Vec<NotQueued>,
}

/// The hostname of the `n`th container.
pub fn hostname_for(pattern: &str, n: u32) -> String {
    pattern.replace(PLACEHOLDER, &n.to_string())
}

/// Online nodes with their free memory in bytes, by name.
pub(crate) async fn online_nodes(
    client: &dyn ctforge_pve::PveApi,
) -> Result<Vec<(String, u64)>, AppError> {
    let mut nodes: Vec<(String, u64)> = client
        .nodes()
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot list nodes: {e}")))?
        .into_iter()
        .filter(|n| n.status == "online")
        .map(|n| {
            let free = n.maxmem.unwrap_or(0).saturating_sub(n.mem.unwrap_or(0));
            (n.node, free)
        })
        .collect();
    nodes.sort();
    if nodes.is_empty() {
        return Err(AppError::Unavailable(
            "no node of the cluster is online".into(),
        ));
    }
    Ok(nodes)
}

/// Picks the node of each of `count` containers needing `memory_bytes` each.
pub fn place(
    rule: Placement,
    fixed: Option<&str>,
    nodes: &[(String, u64)],
    count: u32,
    memory_bytes: u64,
) -> Vec<Option<String>> {
    let mut free: Vec<(String, u64)> = nodes.to_vec();
    (0..count as usize)
        .map(|i| match rule {
            Placement::Fixed => fixed.map(str::to_owned),
            Placement::RoundRobin => nodes.get(i % nodes.len().max(1)).map(|(n, _)| n.clone()),
            Placement::LeastLoaded => {
                // Most free memory; ties go to the first by name (stable and predictable).
                let best = free.iter_mut().fold(
                    None::<&mut (String, u64)>,
                    |best, candidate| match best {
                        Some(b) if b.1 >= candidate.1 => Some(b),
                        _ => Some(candidate),
                    },
                )?;
                best.1 = best.1.saturating_sub(memory_bytes);
                Some(best.0.clone())
            }
        })
        .collect()
}

/// The node of a single creation under `placement`: least-loaded picks the online node with
/// the most free memory; the other rules (and a named node) leave the request as it is.
pub async fn pick_node(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
    placement: Option<Placement>,
) -> Result<Option<String>, AppError> {
    if request.node.is_some() || placement != Some(Placement::LeastLoaded) {
        return Ok(request.node.clone());
    }
    let cluster = crate::auth::login::pick_cluster(state, request.cluster.as_deref()).await?;
    let client = submit::client_for(state, user, &cluster)?;
    let nodes = online_nodes(client.as_ref()).await?;
    Ok(place(Placement::LeastLoaded, None, &nodes, 1, 0)
        .into_iter()
        .next()
        .flatten())
}

/// Submits `count` containers from `request` (hostname pattern, placement) and the batch job
/// following them.
pub async fn submit_many(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
    count: u32,
    placement: Option<Placement>,
    remote: &str,
) -> Result<BatchAccepted, AppError> {
    let pattern = request.hostname.trim().to_owned();
    if count > 1 && !pattern.contains(PLACEHOLDER) {
        return Err(AppError::Invalid {
            message: "the hostname needs a number placeholder".into(),
            fields: vec![(
                "hostname".into(),
                format!(
                    "with count {count}, give a pattern with {PLACEHOLDER}, e.g. web-{PLACEHOLDER}"
                ),
            )],
        });
    }
    let cluster = crate::auth::login::pick_cluster(state, request.cluster.as_deref()).await?;
    let client = submit::client_for(state, user, &cluster)?;
    let rule = placement.unwrap_or_default();
    let nodes = match rule {
        Placement::Fixed => Vec::new(),
        _ => online_nodes(client.as_ref()).await?,
    };
    // Hostnames: the lowest numbers no ctforge container of this cluster uses yet.
    let taken: HashSet<String> = state
        .store
        .list_containers()
        .await?
        .into_iter()
        .filter(|c| c.cluster_id == cluster.id)
        .map(|c| c.hostname)
        .collect();
    let mut hostnames = Vec::new();
    let mut n = 1u32;
    while hostnames.len() < count as usize {
        let h = hostname_for(&pattern, n);
        if !taken.contains(&h) || !pattern.contains(PLACEHOLDER) {
            hostnames.push(h);
        }
        n = n.saturating_add(1);
        if n > MAX_COUNT * 100 {
            break;
        }
    }
    // The first container is planned in full before anything is queued: a request that does
    // not resolve (bad template, storage, node) queues nothing.
    let mut first = request.clone();
    first.hostname = hostnames.first().cloned().unwrap_or_default();
    let memory_mib = submit::prepare(state, user, &first)
        .await?
        .plan
        .params
        .memory
        .unwrap_or(512);
    let nodes_for = place(
        rule,
        request.node.as_deref(),
        &nodes,
        count,
        memory_mib.saturating_mul(1024 * 1024),
    );
    let mut items = Vec::new();
    let mut not_queued = Vec::new();
    for (i, hostname) in hostnames.iter().enumerate() {
        let mut one = request.clone();
        one.hostname = hostname.clone();
        one.node = nodes_for.get(i).cloned().flatten().or(request.node.clone());
        one.vmid = request
            .vmid
            .map(|v| v.saturating_add(u32::try_from(i).unwrap_or(u32::MAX)));
        match submit::submit(state, user, &one, remote).await {
            Ok(s) => {
                let node = state
                    .store
                    .get_container(s.id)
                    .await
                    .map(|c| c.node)
                    .unwrap_or_default();
                items.push(BatchItem {
                    id: s.id,
                    vmid: s.vmid,
                    hostname: hostname.clone(),
                    node,
                    job_id: s.job_id,
                });
            }
            // Nothing queued yet: the caller gets the error itself.
            Err(e) if items.is_empty() => return Err(e),
            Err(e) => not_queued.push(NotQueued {
                hostname: hostname.clone(),
                error: e.to_string(),
            }),
        }
    }
    let payload = BatchPayload {
        items: items.clone(),
        not_queued: not_queued.clone(),
    };
    let job_id = state
        .jobs
        .enqueue(&NewJob {
            kind: JOB_KIND.into(),
            container_id: None,
            node: None,
            payload_json: serde_json::to_string(&payload)
                .map_err(|e| AppError::Internal(e.into()))?,
            created_by: user.username.clone(),
        })
        .await?;
    crate::audit::record(
        state.store.as_ref(),
        crate::audit::Entry::new(
            &user.username,
            "ct.create_batch",
            format!("{}/{}", cluster.name, pattern),
            remote,
        )
        .detail(json!({
            "job": job_id,
            "count": count,
            "placement": rule,
            "ids": items.iter().map(|i| i.id).collect::<Vec<_>>(),
        })),
    )
    .await?;
    Ok(BatchAccepted {
        job_id,
        items,
        not_queued,
        url: format!("/api/v1/jobs/{job_id}"),
    })
}

/// Follows creation jobs until every one has ended, recording each result as it ends; `Ok`
/// with the number that failed. Shared by the batch and fleet jobs.
pub async fn watch(
    ctx: &JobContext,
    items: &[BatchItem],
    not_queued: &[NotQueued],
    mut result: BatchResult,
    on_result: impl Fn(&mut BatchResult) -> serde_json::Value,
) -> Result<usize, StepError> {
    result.not_queued = not_queued.to_vec();
    let total = items.len().max(1);
    loop {
        let mut done = 0usize;
        let mut changed = false;
        for item in items {
            let job = ctx.store.get_job(item.job_id).await?;
            if !job.state.is_finished() {
                continue;
            }
            done += 1;
            let ok = job.state == JobState::Succeeded;
            let known = result
                .results
                .get(&item.hostname)
                .is_some_and(|r| r.state == job.state.as_str());
            if known {
                continue;
            }
            let r = ItemResult {
                item: item.clone(),
                state: job.state.as_str().to_owned(),
                ok,
                message: job.error.clone().unwrap_or_default(),
            };
            ctx.log(format!(
                "{} (VMID {}, {}): {}{}",
                item.hostname,
                item.vmid,
                item.node,
                r.state,
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", r.message)
                }
            ))
            .await?;
            ctx.emit(
                crate::containers::bulk::RESULT_EVENT,
                serde_json::to_value(&r).unwrap_or_default(),
            )
            .await?;
            result.results.insert(item.hostname.clone(), r);
            changed = true;
        }
        if changed {
            ctx.set_result(&on_result(&mut result)).await?;
            let percent = u8::try_from(done * 100 / total).unwrap_or(100);
            ctx.percent(percent).await?;
        }
        if done == items.len() {
            let failed = result.results.values().filter(|r| !r.ok).count() + not_queued.len();
            return Ok(failed);
        }
        tokio::select! {
            () = ctx.cancelled() => return Err(StepError::Cancelled),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The handler registered for [`JOB_KIND`].
pub struct CreateBatch {
    store: Arc<dyn Store>,
    queue: Weak<JobQueue>,
}

impl std::fmt::Debug for CreateBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateBatch").finish_non_exhaustive()
    }
}

impl CreateBatch {
    /// A handler reading jobs from `store` and retrying failed creations through `queue` (weak:
    /// the queue's registry holds this handler).
    pub fn new(store: Arc<dyn Store>, queue: Weak<JobQueue>) -> Self {
        Self { store, queue }
    }
}

/// Retries the failed or cancelled creation jobs among `items` (the failures only).
pub async fn retry_failed(
    store: &dyn Store,
    queue: &Weak<JobQueue>,
    items: &[BatchItem],
    by: &str,
) -> Result<Vec<String>, JobError> {
    let queue = queue
        .upgrade()
        .ok_or_else(|| JobError::Conflict("the job queue is shutting down".into()))?;
    let mut notes = Vec::new();
    for item in items {
        let job = store.get_job(item.job_id).await?;
        if matches!(job.state, JobState::Failed | JobState::Cancelled) {
            queue.retry(item.job_id, by).await?;
            notes.push(format!(
                "retrying the creation of {} (job {})",
                item.hostname, item.job_id
            ));
        }
    }
    Ok(notes)
}

#[async_trait]
impl JobHandler for CreateBatch {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec![STEP]
    }

    /// The creations report their own progress; the batch only waits for them.
    fn step_timeout(&self, _job: &Job, _step: &str) -> Option<Duration> {
        Some(Duration::from_secs(24 * 3600))
    }

    async fn run_step(&self, ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        let payload: BatchPayload = serde_json::from_str(&ctx.job.payload_json)
            .map_err(|e| StepError::failed(format!("unreadable batch: {e}")))?;
        let previous: BatchResult = ctx
            .job
            .result_json
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default();
        let failed = watch(ctx, &payload.items, &payload.not_queued, previous, |r| {
            serde_json::to_value(&*r).unwrap_or_default()
        })
        .await?;
        let total = payload.items.len() + payload.not_queued.len();
        if failed > 0 {
            return Err(StepError::failed(format!(
                "{failed} of {total} containers failed; retry re-runs only those"
            )));
        }
        ctx.log(format!("all {total} containers created")).await?;
        Ok(())
    }

    async fn prepare_retry(&self, job: &Job) -> Result<RetryPrep, JobError> {
        let Ok(payload) = serde_json::from_str::<BatchPayload>(&job.payload_json) else {
            return Ok(RetryPrep::default());
        };
        let notes = retry_failed(
            self.store.as_ref(),
            &self.queue,
            &payload.items,
            &job.created_by,
        )
        .await?;
        Ok(RetryPrep {
            payload_json: None,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<(String, u64)> {
        vec![
            ("pve1".into(), 4 << 30),
            ("pve2".into(), 8 << 30),
            ("pve3".into(), 2 << 30),
        ]
    }

    #[test]
    fn round_robin_cycles_over_the_nodes() {
        let picked = place(Placement::RoundRobin, None, &nodes(), 4, 0);
        let picked: Vec<_> = picked.into_iter().flatten().collect();
        assert_eq!(picked, ["pve1", "pve2", "pve3", "pve1"]);
    }

    #[test]
    fn least_loaded_counts_what_it_placed() {
        let picked = place(Placement::LeastLoaded, None, &nodes(), 4, 3 << 30);
        let picked: Vec<_> = picked.into_iter().flatten().collect();
        // pve2 8G → 5G → 2G; then pve1 (4G → 1G); then pve2 again (2G, first of the tie).
        assert_eq!(picked, ["pve2", "pve2", "pve1", "pve2"]);
    }

    #[test]
    fn fixed_keeps_the_node() {
        let picked = place(Placement::Fixed, Some("pve3"), &nodes(), 2, 0);
        assert_eq!(picked, [Some("pve3".to_owned()), Some("pve3".to_owned())]);
    }

    #[test]
    fn counts_and_patterns() {
        assert_eq!(check_count(Some(3)), Ok(3));
        assert!(check_count(Some(0)).is_err());
        assert!(check_count(Some(u64::from(MAX_COUNT) + 1)).is_err());
        assert!(check_count(None).is_err());
        assert_eq!(hostname_for("web-{n}", 2), "web-2");
    }
}
