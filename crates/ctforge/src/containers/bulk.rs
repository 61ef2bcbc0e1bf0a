//! Bulk lifecycle actions: one request names up to [`MAX_IDS`] containers and an action; it
//! becomes a `bulk_action` job ([`BulkAction`]) that runs [`lifecycle::execute`] — the very
//! function single actions use (lock, state check, Proxmox task, events, audit) — for each
//! container, [`CONCURRENCY`] at a time, carrying on past failures.
//!
//! The job runs in a worker, maybe in another process, without the user's browser session: it
//! acts with the cluster's API token, and for each container Proxmox is first asked whether the
//! submitting user holds the action's privilege on `/vms/<vmid>`
//! ([`lifecycle::Authority::ServiceToken`]); a container they may not touch gets a
//! "permission denied" result.
//!
//! Each container's outcome ([`ItemResult`]) is persisted in the job's result as soon as it is
//! known (so a resumed or retried job skips what already succeeded), published as a `result`
//! event and written as a log line. The job fails when any container failed; a retry re-runs
//! only those.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lifecycle::{self, Action, Actor, Authority, Options};
use super::{ContainerRef, Target, resolve_in};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::jobs::items::{self, Reports};
use crate::jobs::{JobContext, JobHandler, StepError};
use crate::locks::Locks;
use crate::pve::PveConnector;
use crate::state::AppState;
use crate::storage::Store;
use crate::storage::model::{Job, NewJob};

/// The `jobs.kind` of bulk actions.
pub const JOB_KIND: &str = "bulk_action";
/// The one step of a bulk job.
pub const STEP: &str = "containers";
/// Most containers in one request.
pub const MAX_IDS: usize = 200;
/// Containers acted on at once.
pub const CONCURRENCY: usize = 4;
/// Job event kind carrying one [`ItemResult`].
pub const RESULT_EVENT: &str = "result";

/// A validated bulk request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkRequest {
    /// What to do.
    pub action: Action,
    /// Container ids as given (trimmed): `42` or `<cluster>:<vmid>`.
    pub ids: Vec<String>,
    /// Graceful shutdown timeout in seconds (shutdown only).
    pub timeout: u32,
}

fn invalid(fields: Vec<(String, String)>) -> AppError {
    let message = format!(
        "invalid bulk request: {}",
        fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    AppError::Invalid { message, fields }
}

/// Checks a request: a known action, 1 to [`MAX_IDS`] ids that parse and are not repeated, a
/// timeout within bounds. Every problem is reported, each under its field.
pub fn validate(
    action: Option<&str>,
    ids: &[String],
    timeout: Option<u64>,
) -> Result<BulkRequest, AppError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let action = match action.map(str::trim).filter(|a| !a.is_empty()) {
        None => {
            fields.push((
                "action".into(),
                "is required: start, stop, shutdown, reboot or delete".into(),
            ));
            None
        }
        Some(a) => match a.parse::<Action>() {
            Ok(action) => Some(action),
            Err(_) => {
                fields.push((
                    "action".into(),
                    format!("{a:?} is not an action; use start, stop, shutdown, reboot or delete"),
                ));
                None
            }
        },
    };
    let ids: Vec<String> = ids.iter().map(|i| i.trim().to_owned()).collect();
    if ids.is_empty() {
        fields.push(("ids".into(), "select at least one container".into()));
    } else if ids.len() > MAX_IDS {
        fields.push((
            "ids".into(),
            format!(
                "{} containers given; at most {MAX_IDS} per request — split the list",
                ids.len()
            ),
        ));
    } else {
        let mut seen: HashMap<ContainerRef, &str> = HashMap::new();
        let mut problems = Vec::new();
        for id in &ids {
            match ContainerRef::parse(id) {
                Err(_) => problems.push(format!(
                    "{id:?} is not a container id (use 42 or <cluster>:<vmid> like lab:105)"
                )),
                Ok(parsed) => {
                    if let Some(first) = seen.insert(parsed, id) {
                        problems.push(format!("{id:?} is listed twice (also as {first:?})"));
                    }
                }
            }
        }
        if !problems.is_empty() {
            fields.push(("ids".into(), problems.join("; ")));
        }
    }
    let timeout = match timeout {
        None => lifecycle::DEFAULT_SHUTDOWN_TIMEOUT,
        Some(t) => match u32::try_from(t)
            .ok()
            .filter(|t| *t <= lifecycle::MAX_SHUTDOWN_TIMEOUT)
        {
            Some(t) => t,
            None => {
                fields.push((
                    "timeout".into(),
                    format!(
                        "{t} must be whole seconds from 0 to {}",
                        lifecycle::MAX_SHUTDOWN_TIMEOUT
                    ),
                ));
                lifecycle::DEFAULT_SHUTDOWN_TIMEOUT
            }
        },
    };
    match action {
        Some(action) if fields.is_empty() => Ok(BulkRequest {
            action,
            ids,
            timeout,
        }),
        _ => Err(invalid(fields)),
    }
}

/// Reads the JSON body of `POST /api/v1/containers/bulk`
/// (`{"action": "stop", "ids": ["42", "lab:105"], "timeout": 60}`) and validates it.
pub fn from_json(body: &Value) -> Result<BulkRequest, AppError> {
    let Some(object) = body.as_object() else {
        return Err(invalid(vec![(
            "body".into(),
            r#"must be a JSON object like {"action": "stop", "ids": ["42", "lab:105"]}"#.into(),
        )]));
    };
    let mut fields = Vec::new();
    let action = match object.get("action") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            fields.push(("action".into(), "must be a string".into()));
            None
        }
    };
    let mut ids = Vec::new();
    match object.get("ids") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => ids.push(s.clone()),
                    Value::Number(n) if n.is_i64() => ids.push(n.to_string()),
                    other => {
                        fields.push((
                            "ids".into(),
                            format!("{other} is not a container id; give strings like \"42\" or \"lab:105\""),
                        ));
                    }
                }
            }
        }
        Some(_) => fields.push((
            "ids".into(),
            "must be a list of container ids like [\"42\", \"lab:105\"]".into(),
        )),
    }
    let timeout = match object.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(t) => Some(t),
            None => {
                fields.push((
                    "timeout".into(),
                    format!(
                        "must be whole seconds from 0 to {}",
                        lifecycle::MAX_SHUTDOWN_TIMEOUT
                    ),
                ));
                None
            }
        },
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "action" | "ids" | "timeout"))
    {
        fields.push((
            unknown.clone(),
            "is not a field of a bulk request (action, ids, timeout)".into(),
        ));
    }
    match validate(action, &ids, timeout) {
        Ok(request) if fields.is_empty() => Ok(request),
        Ok(_) => Err(invalid(fields)),
        Err(AppError::Invalid {
            fields: more_fields,
            ..
        }) => {
            for (k, v) in more_fields {
                if !fields.iter().any(|(f, _)| *f == k) {
                    fields.push((k, v));
                }
            }
            Err(invalid(fields))
        }
        Err(other) => Err(other),
    }
}

/// What a bulk job stores as its payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Payload {
    /// `start`, `stop`, `shutdown`, `reboot` or `delete`.
    pub action: String,
    /// Container ids as submitted.
    pub ids: Vec<String>,
    /// Shutdown timeout in seconds.
    pub timeout: u32,
    /// The submitter's address (for the audit log).
    pub remote: String,
    /// The cluster the submitter was signed in to, or their API token was made on
    /// (`jobs::access`: the submitter is that user on that cluster); absent in jobs queued
    /// before it was recorded.
    #[serde(default)]
    pub cluster_id: Option<i64>,
    /// Whether a browser session submitted the job: a session acts on its own cluster only, so
    /// containers of other clusters are refused, never acted on with their cluster's token.
    #[serde(default)]
    pub by_session: bool,
}

/// Enqueues the job for `request` as `user`; returns its id.
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    request: &BulkRequest,
) -> Result<i64, AppError> {
    let payload = Payload {
        action: request.action.as_str().to_owned(),
        ids: request.ids.clone(),
        timeout: request.timeout,
        remote: remote.to_owned(),
        cluster_id: user.roles.cluster_id,
        by_session: user.ticket.is_some(),
    };
    let payload_json = serde_json::to_string(&payload).map_err(|e| AppError::Internal(e.into()))?;
    let id = state
        .jobs
        .enqueue(&NewJob {
            kind: JOB_KIND.to_owned(),
            container_id: None,
            node: None,
            payload_json,
            created_by: user.username.clone(),
        })
        .await?;
    tracing::info!(job_id = id, action = request.action.as_str(), count = request.ids.len(), user = %user.username, "bulk action queued");
    Ok(id)
}

/// The outcome for one container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The id as submitted.
    pub id: String,
    /// Canonical URL id (`/containers/{key}`), once resolved.
    pub key: Option<String>,
    /// Cluster name, once resolved.
    pub cluster: Option<String>,
    /// VMID, once resolved.
    pub vmid: Option<u32>,
    /// Hostname (Proxmox's, else the record's, else `CT <vmid>`).
    pub hostname: Option<String>,
    /// Whether the action succeeded.
    pub ok: bool,
    /// State afterwards (`running`, `stopped`, `deleted`), when known.
    pub status: Option<String>,
    /// What happened (success) or what went wrong (failure).
    pub message: String,
    /// Which run of this container produced the result (1 first, 2 after one retry, …).
    pub attempt: i64,
}

impl ItemResult {
    fn for_target(id: &str, target: &Target, attempt: i64) -> Self {
        Self {
            id: id.to_owned(),
            key: Some(target.url_id()),
            cluster: Some(target.cluster.name.clone()),
            vmid: Some(target.vmid),
            hostname: Some(target.display_name()),
            attempt,
            ..Self::default()
        }
    }

    /// `web1 (CT 200)`, or the id when it never resolved.
    pub fn label(&self) -> String {
        match (&self.hostname, self.vmid) {
            (Some(h), Some(v)) if *h != format!("CT {v}") => format!("{h} (CT {v})"),
            (_, Some(v)) => format!("CT {v}"),
            _ => self.id.clone(),
        }
    }
}

/// A bulk job's result: the request and one entry per container that has finished.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BulkResult {
    /// The action.
    pub action: String,
    /// Containers in the request.
    pub total: usize,
    /// How many succeeded so far.
    pub succeeded: usize,
    /// How many failed (in their latest attempt).
    pub failed: usize,
    /// Per container, in request order; containers not yet run are absent.
    pub items: Vec<ItemResult>,
}

impl BulkResult {
    /// Reads a job's stored result (empty when there is none yet).
    pub fn of(job: &Job) -> Self {
        job.result_json
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default()
    }

    fn build(payload: &Payload, by_id: &HashMap<String, ItemResult>) -> Self {
        let items: Vec<ItemResult> = payload
            .ids
            .iter()
            .filter_map(|id| by_id.get(id).cloned())
            .collect();
        Self {
            action: payload.action.clone(),
            total: payload.ids.len(),
            succeeded: items.iter().filter(|i| i.ok).count(),
            failed: items.iter().filter(|i| !i.ok).count(),
            items,
        }
    }
}

/// Reads a bulk job's payload.
pub fn payload_of(job: &Job) -> Option<Payload> {
    serde_json::from_str(&job.payload_json).ok()
}

/// The handler registered for [`JOB_KIND`].
pub struct BulkAction {
    store: Arc<dyn Store>,
    pve: Arc<dyn PveConnector>,
    locks: Arc<dyn Locks>,
}

impl std::fmt::Debug for BulkAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkAction").finish_non_exhaustive()
    }
}

impl BulkAction {
    /// A handler acting through `store`, `pve` (the clusters' tokens) and `locks`.
    pub fn new(store: Arc<dyn Store>, pve: Arc<dyn PveConnector>, locks: Arc<dyn Locks>) -> Self {
        Self { store, pve, locks }
    }

    /// Runs the action on one resolved container (also the fleet job's removals).
    pub(crate) async fn one(
        &self,
        job: &Job,
        payload: &Payload,
        action: Action,
        id: &str,
        target: &Target,
        attempt: i64,
    ) -> ItemResult {
        let mut item = ItemResult::for_target(id, target, attempt);
        if payload.by_session && payload.cluster_id.is_some_and(|c| c != target.cluster.id) {
            item.message = crate::authz::other_cluster(&target.cluster).to_string();
            return item;
        }
        let client = match self.pve.service(&target.cluster) {
            Ok(c) => c,
            Err(e) => {
                item.message = e.to_string();
                return item;
            }
        };
        let actor = Actor {
            username: &job.created_by,
            remote: &payload.remote,
            authority: Authority::ServiceToken,
            job: Some(job.id),
        };
        let opts = Options {
            timeout: payload.timeout,
            record_only: false,
            only: None,
        };
        match lifecycle::execute(
            self.store.as_ref(),
            self.locks.as_ref(),
            client.as_ref(),
            Some(client.as_ref()),
            &actor,
            target,
            action,
            opts,
        )
        .await
        {
            Ok(outcome) => {
                item.ok = true;
                if outcome.status == "deleted" {
                    // Its page is gone with it.
                    item.key = None;
                }
                item.hostname = Some(outcome.hostname.clone());
                item.status = Some(outcome.status.clone());
                item.message = match &outcome.warning {
                    Some(w) => w.clone(),
                    None => outcome
                        .steps
                        .iter()
                        .map(|s| s.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                };
            }
            Err(e) => {
                item.message = e.to_string();
                // Where it stands now — only for users allowed to act on it.
                if !matches!(e, AppError::Forbidden(_))
                    && let Ok(found) = super::guest_kind::locate(client.as_ref(), target).await
                {
                    item.status = Some(found.state.status().to_owned());
                    if let Some(name) = found.state.name().filter(|n| !n.is_empty()) {
                        item.hostname = Some(name.to_owned());
                    }
                }
            }
        }
        item
    }
}

/// An id that failed before reaching Proxmox (unknown record or cluster, duplicate).
fn unresolved(id: &str, message: String, attempt: i64) -> ItemResult {
    ItemResult {
        id: id.to_owned(),
        message,
        attempt,
        ..ItemResult::default()
    }
}

#[async_trait]
impl JobHandler for BulkAction {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec![STEP]
    }

    async fn run_step(&self, ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        let job = &ctx.job;
        let payload = payload_of(job)
            .ok_or_else(|| StepError::failed("the job's payload is unreadable; submit again"))?;
        let action: Action = payload
            .action
            .parse()
            .map_err(|e: AppError| StepError::failed(e.to_string()))?;
        // Results of earlier attempts: what succeeded is not run again.
        let mut results: HashMap<String, ItemResult> = BulkResult::of(job)
            .items
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let todo: Vec<&String> = payload
            .ids
            .iter()
            .filter(|id| !results.get(*id).is_some_and(|r| r.ok))
            .collect();
        let skipped = payload.ids.len() - todo.len();
        if skipped > 0 {
            ctx.log(format!(
                "{skipped} container(s) already done in an earlier attempt; running the {} that are not",
                todo.len()
            ))
            .await?;
        }
        // Resolve first (database only), so two ids naming one container run once.
        // A container's attempt counts its own runs (a retry re-runs only the failures).
        let mut runnable: Vec<(String, Target, i64)> = Vec::new();
        let mut seen: HashMap<String, &String> = HashMap::new();
        let mut finished: Vec<ItemResult> = Vec::new();
        for id in &todo {
            let attempt = results.get(*id).map_or(1, |r| r.attempt + 1);
            match resolve_in(self.store.as_ref(), id).await {
                Ok(target) => match seen.get(&target.lock_name()) {
                    Some(first) => finished.push(unresolved(
                        id,
                        format!("{id} names the same container as {first}; it runs once"),
                        attempt,
                    )),
                    None => {
                        seen.insert(target.lock_name(), id);
                        runnable.push(((*id).clone(), target, attempt));
                    }
                },
                Err(e) => finished.push(unresolved(id, e.to_string(), attempt)),
            }
        }
        let total = payload.ids.len();
        let mut done = skipped;
        for item in finished {
            done += 1;
            self.report(ctx, &payload, &mut results, item, done, total)
                .await?;
        }
        // At most CONCURRENCY at once; each starts only if the job was not cancelled meanwhile
        // and reports its own outcome, every one polled together (`jobs::items` says why). A
        // failed report (database down, lease lost) starts nothing new but lets the actions in
        // flight finish, so none is cut off holding its container's lock.
        let reports = Reports::new((results, done));
        let (reports_ref, payload_ref) = (&reports, &payload);
        // Boxed: closures here would make the handler's future not general enough.
        let mut actions: Vec<futures_util::future::BoxFuture<'_, ()>> = Vec::new();
        for (id, target, attempt) in runnable {
            actions.push(Box::pin(async move {
                if ctx.is_cancelled() || reports_ref.troubled() {
                    return;
                }
                let item = self
                    .one(job, payload_ref, action, &id, &target, attempt)
                    .await;
                let Some(mut turn) = reports_ref.turn().await else {
                    return;
                };
                let (results, done) = &mut *turn;
                *done += 1;
                if let Err(e) = self
                    .report(ctx, payload_ref, results, item, *done, total)
                    .await
                {
                    reports_ref.failed(e);
                }
            }));
        }
        items::run_all(actions, CONCURRENCY).await;
        let ((results, _), trouble) = reports.into_parts();
        if let Some(e) = trouble {
            return Err(e);
        }
        if ctx.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let summary = BulkResult::build(&payload, &results);
        let failed: Vec<&ItemResult> = summary.items.iter().filter(|i| !i.ok).collect();
        if failed.is_empty() {
            ctx.log(format!(
                "{} {}: all {} succeeded",
                action.label(),
                plural(total),
                summary.succeeded
            ))
            .await?;
            return Ok(());
        }
        let mut text = format!(
            "{} of {} failed: {}",
            failed.len(),
            plural(total),
            failed
                .iter()
                .take(5)
                .map(|i| format!("{}: {}", i.label(), i.message))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if failed.len() > 5 {
            text.push_str(&format!("; and {} more", failed.len() - 5));
        }
        text.push_str(" — retry the job to run the failed ones again");
        Err(StepError::Failed(text))
    }
}

impl BulkAction {
    /// Persists one result (the job's result), publishes it and logs it.
    async fn report(
        &self,
        ctx: &JobContext,
        payload: &Payload,
        results: &mut HashMap<String, ItemResult>,
        item: ItemResult,
        done: usize,
        total: usize,
    ) -> Result<(), StepError> {
        let line = if item.ok {
            format!("✓ {}: {}", item.label(), item.message)
        } else {
            format!("✗ {}: {}", item.label(), item.message)
        };
        let event = serde_json::to_value(&item).unwrap_or(Value::Null);
        results.insert(item.id.clone(), item);
        let summary = BulkResult::build(payload, results);
        ctx.set_result(&json!(summary)).await?;
        ctx.emit(RESULT_EVENT, event).await?;
        ctx.log(line).await?;
        let percent = u8::try_from(done * 100 / total.max(1)).unwrap_or(100);
        ctx.percent(percent).await?;
        Ok(())
    }
}

/// `1 container`, `5 containers`.
pub fn plural(n: usize) -> String {
    if n == 1 {
        "1 container".to_owned()
    } else {
        format!("{n} containers")
    }
}

/// Ids of `result` that have not succeeded (what a retry runs).
pub fn pending(payload: &Payload, result: &BulkResult) -> Vec<String> {
    let ok: HashSet<&str> = result
        .items
        .iter()
        .filter(|i| i.ok)
        .map(|i| i.id.as_str())
        .collect();
    payload
        .ids
        .iter()
        .filter(|id| !ok.contains(id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn validation_names_every_problem() {
        let ok = validate(Some("stop"), &ids(&["42", " lab:105 "]), None).unwrap();
        assert_eq!(ok.action, Action::Stop);
        assert_eq!(ok.ids, ids(&["42", "lab:105"]));
        assert_eq!(ok.timeout, lifecycle::DEFAULT_SHUTDOWN_TIMEOUT);

        let AppError::Invalid { fields, .. } =
            validate(Some("explode"), &ids(&["42", "42", "nope"]), Some(99_999)).unwrap_err()
        else {
            panic!("invalid expected");
        };
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["action", "ids", "timeout"]);
        assert!(fields[1].1.contains("listed twice"), "{fields:?}");
        assert!(fields[1].1.contains("\"nope\" is not a container id"));

        let too_many: Vec<String> = (0..201).map(|i| i.to_string()).collect();
        assert!(
            validate(Some("start"), &too_many, None)
                .unwrap_err()
                .to_string()
                .contains("at most 200")
        );
        assert!(
            validate(Some("start"), &[], None)
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
    }

    #[test]
    fn json_bodies_are_checked_field_by_field() {
        let r =
            from_json(&json!({"action": "reboot", "ids": [42, "lab:7"], "timeout": 5})).unwrap();
        assert_eq!(r.ids, ids(&["42", "lab:7"]));
        assert_eq!(r.timeout, 5);
        let e = from_json(&json!({"action": 1, "ids": "42", "extra": true})).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("action: must be a string"), "{text}");
        assert!(text.contains("ids: must be a list"), "{text}");
        assert!(text.contains("extra: is not a field"), "{text}");
        assert!(from_json(&json!([1])).is_err());
    }

    #[test]
    fn labels_and_pending() {
        let mut item = unresolved("lab:7", "x".into(), 1);
        assert_eq!(item.label(), "lab:7");
        item.vmid = Some(7);
        item.hostname = Some("CT 7".into());
        assert_eq!(item.label(), "CT 7");
        item.hostname = Some("web".into());
        assert_eq!(item.label(), "web (CT 7)");
        let payload = Payload {
            action: "stop".into(),
            ids: ids(&["1", "2", "3"]),
            timeout: 60,
            remote: String::new(),
            cluster_id: None,
            by_session: false,
        };
        let mut done = item.clone();
        done.id = "2".into();
        done.ok = true;
        let result = BulkResult::build(&payload, &HashMap::from([("2".to_owned(), done.clone())]));
        assert_eq!(result.succeeded, 1);
        assert_eq!(pending(&payload, &result), ids(&["1", "3"]));
    }
}
