//! Migrating a container to another node of its cluster: offline, or in restart mode (shut
//! down, move, start on the target), as Proxmox's `POST /nodes/{node}/lxc/{vmid}/migrate`.
//!
//! [`submit`] checks what Proxmox checks before forking its task — `VM.Migrate` on
//! `/vms/<vmid>` (asked of Proxmox, [`crate::authz`]), the target is another existing node, a
//! running CT needs restart mode — takes the container's lock (`ct:<cluster>:<vmid>`, the one
//! lifecycle actions take, held until the job ends) and queues a `migrate_container` job. The
//! job ([`MigrateContainer`]) runs the Proxmox task with the cluster's token on the user's
//! behalf (re-checking the privilege), streams the task log into the job log (shown live on
//! `/jobs/{id}` and the container page), tells the guest connector the CT moved (the next
//! `pct` goes to the new node), updates the record's node, and writes a container event and
//! the audit entry `ct.migrate`. [`targets`] lists the nodes a CT can go to with their free
//! resources (the page's choice).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ctforge_pve::types::{MigrateParams, ResourceKind};
use ctforge_pve::{PveApi, TaskExit, TaskProgress, WaitOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Target, lifecycle, pve_error};
use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::authz::{Rights, vm_path};
use crate::error::AppError;
use crate::guest::GuestConnector;
use crate::jobs::{JobContext, JobHandler, StepError};
use crate::locks::Locks;
use crate::pve::PveConnector;
use crate::state::AppState;
use crate::storage::Store;
use crate::storage::model::{Job, NewJob};

/// `jobs.kind` of a migration.
pub const JOB_KIND: &str = "migrate_container";
const STEP: &str = "migrate";
/// The privilege Proxmox checks for a migration, on `/vms/<vmid>`.
pub const PRIVILEGE: &str = "VM.Migrate";
/// How long the container's lock is held at most (a crashed process frees it then).
const LOCK_TTL_MS: i64 = 2 * 3600 * 1000;
/// Longest wait for Proxmox's migration task.
const TASK_TIMEOUT: Duration = Duration::from_secs(3600);

/// `POST /api/v1/containers/{id}/migrate`.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// The node to move to.
    pub target: String,
    /// Restart mode: a running CT is shut down, moved and started on the target. Without it,
    /// only a stopped CT can be migrated (Proxmox's rule).
    #[serde(default)]
    pub restart: bool,
}

/// The answer to a queued migration (202).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct MigrateAccepted {
    /// The job running it.
    pub job_id: i64,
    /// `/api/v1/jobs/{id}`.
    pub url: String,
    /// `/api/v1/jobs/{id}/events` (live log).
    pub events: String,
    /// `/jobs/{id}`.
    pub page: String,
    /// The container's id.
    pub id: String,
    /// VMID.
    pub vmid: u32,
    /// The node it is on.
    pub from: String,
    /// The node it goes to.
    pub target: String,
    /// Restart mode.
    pub restart: bool,
}

/// A node a CT could move to, with what it has free.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
pub struct NodeChoice {
    /// Node name.
    pub node: String,
    /// Whether it is online (offline nodes cannot take it).
    pub online: bool,
    /// CPUs.
    pub maxcpu: Option<f64>,
    /// CPU load 0..1.
    pub cpu: Option<f64>,
    /// Free memory, bytes.
    pub free_mem: Option<u64>,
    /// Memory, bytes.
    pub maxmem: Option<u64>,
    /// Free root disk, bytes.
    pub free_disk: Option<u64>,
}

/// Where a CT is and where it can go.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema, PartialEq)]
pub struct MigrateTargets {
    /// The node holding it.
    pub node: String,
    /// Whether it runs (then only restart mode migrates it).
    pub running: bool,
    /// The other nodes.
    pub nodes: Vec<NodeChoice>,
}

/// What the job stores.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Payload {
    /// Cluster id.
    pub cluster_id: i64,
    /// VMID.
    pub vmid: u32,
    /// ctforge's record, if managed.
    pub record_id: Option<i64>,
    /// The node it was on when submitted.
    pub from: String,
    /// Target node.
    pub target: String,
    /// Restart mode.
    pub restart: bool,
    /// Who asked (the privilege is re-checked for them).
    pub username: String,
    /// Their address (audit).
    pub remote: String,
    /// The container lock's name and owner token (released when the job ends).
    pub lock: String,
    /// Owner token of the lock.
    pub lock_owner: String,
}

/// Whether `name` is a valid Proxmox node name (`pve-node`).
fn valid_node(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn choices(resources: Vec<ctforge_pve::types::ClusterResource>, except: &str) -> Vec<NodeChoice> {
    let mut out: Vec<NodeChoice> = resources
        .into_iter()
        .filter(|r| r.kind == "node")
        .filter_map(|r| {
            let node = r.node.clone()?;
            (node != except).then(|| NodeChoice {
                online: r.status.as_deref() == Some("online"),
                maxcpu: r.maxcpu,
                cpu: r.cpu,
                free_mem: r.maxmem.zip(r.mem).map(|(m, u)| m.saturating_sub(u)),
                maxmem: r.maxmem,
                free_disk: r.maxdisk.zip(r.disk).map(|(m, u)| m.saturating_sub(u)),
                node,
            })
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// The nodes `target` can move to (for users who may read it).
pub async fn targets(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<MigrateTargets, AppError> {
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    let service = state.pve.service(&target.cluster)?;
    let (node, status) = lifecycle::locate(service.as_ref(), target)
        .await
        .map_err(|e| pve_error(e, target.vmid))?;
    let nodes = service
        .cluster_resources(Some(ResourceKind::Node))
        .await
        .map_err(|e| pve_error(e, target.vmid))?;
    Ok(MigrateTargets {
        running: status.status == "running",
        nodes: choices(nodes, &node),
        node,
    })
}

/// Checks and queues the migration of `target` to `req.target` as `user`.
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    target: &Target,
    req: &MigrateRequest,
) -> Result<MigrateAccepted, AppError> {
    let to = req.target.trim();
    if !valid_node(to) {
        return Err(AppError::Invalid {
            message: format!("target {to:?} is not a node name"),
            fields: vec![("target".into(), "a node of the cluster, like pve2".into())],
        });
    }
    let rights = Rights::of(state, user, &target.cluster)?;
    if let Err(e) = rights.require(&vm_path(target.vmid), &[PRIVILEGE]).await {
        if matches!(e, AppError::Forbidden(_)) {
            let entry = Entry::new(&user.username, "ct.migrate", target.audit_target(), remote)
                .outcome("denied")
                .detail(json!({"vmid": target.vmid, "cluster": target.cluster.name, "target": to, "error": e.to_string()}));
            audit::record(state.store.as_ref(), entry).await?;
        }
        return Err(e);
    }
    let service = state.pve.service(&target.cluster)?;
    let (from, status) = lifecycle::locate(service.as_ref(), target)
        .await
        .map_err(|e| pve_error(e, target.vmid))?;
    if from == to {
        return Err(AppError::Invalid {
            message: format!(
                "CT {} is already on node {to} (target is local node.)",
                target.vmid
            ),
            fields: vec![("target".into(), "another node than the current one".into())],
        });
    }
    let nodes = service
        .cluster_resources(Some(ResourceKind::Node))
        .await
        .map_err(|e| pve_error(e, target.vmid))?;
    match choices(nodes, &from).into_iter().find(|n| n.node == to) {
        None => {
            return Err(AppError::Invalid {
                message: format!("no such cluster node '{to}'"),
                fields: vec![("target".into(), "a node of the cluster".into())],
            });
        }
        Some(n) if !n.online => {
            return Err(AppError::Conflict(format!(
                "node {to} is offline; it cannot take CT {}",
                target.vmid
            )));
        }
        Some(_) => {}
    }
    if status.status == "running" && !req.restart {
        return Err(AppError::Conflict(format!(
            "CT {} is running: can't migrate running container without --online or --restart; use restart mode or stop it first",
            target.vmid
        )));
    }
    if let Some(lock) = status.lock.as_deref().filter(|l| !l.is_empty()) {
        return Err(AppError::Conflict(format!(
            "CT {} is locked ({lock}) in Proxmox; wait for that operation to finish",
            target.vmid
        )));
    }
    let lock = target.lock_name();
    let owner = uuid::Uuid::new_v4().to_string();
    if !state.locks.try_lock(&lock, &owner, LOCK_TTL_MS).await? {
        return Err(AppError::Conflict(format!(
            "another action is running on CT {}; wait for it to finish and retry",
            target.vmid
        )));
    }
    let payload = Payload {
        cluster_id: target.cluster.id,
        vmid: target.vmid,
        record_id: target.record.as_ref().map(|r| r.id),
        from: from.clone(),
        target: to.to_owned(),
        restart: req.restart,
        username: user.username.clone(),
        remote: remote.to_owned(),
        lock: lock.clone(),
        lock_owner: owner.clone(),
    };
    let queued = match serde_json::to_string(&payload) {
        Ok(payload_json) => state
            .jobs
            .enqueue(&NewJob {
                kind: JOB_KIND.to_owned(),
                container_id: payload.record_id,
                node: Some(from.clone()),
                payload_json,
                created_by: user.username.clone(),
            })
            .await
            .map_err(AppError::from),
        Err(e) => Err(AppError::Internal(e.into())),
    };
    let job_id = match queued {
        Ok(id) => id,
        Err(e) => {
            let _ = state.locks.unlock(&lock, &owner).await;
            return Err(e);
        }
    };
    tracing::info!(job_id, vmid = target.vmid, from, to, "migration queued");
    let url = format!("/api/v1/jobs/{job_id}");
    Ok(MigrateAccepted {
        job_id,
        events: format!("{url}/events"),
        url,
        page: format!("/jobs/{job_id}"),
        id: target.url_id(),
        vmid: target.vmid,
        from,
        target: to.to_owned(),
        restart: req.restart,
    })
}

/// The job handler of migrations.
pub struct MigrateContainer {
    store: Arc<dyn Store>,
    pve: Arc<dyn PveConnector>,
    guests: Arc<dyn GuestConnector>,
    locks: Arc<dyn Locks>,
}

impl MigrateContainer {
    /// A handler acting through `pve` (the cluster's token), telling `guests` where CTs went.
    pub fn new(
        store: Arc<dyn Store>,
        pve: Arc<dyn PveConnector>,
        guests: Arc<dyn GuestConnector>,
        locks: Arc<dyn Locks>,
    ) -> Self {
        Self {
            store,
            pve,
            guests,
            locks,
        }
    }

    async fn migrate(&self, ctx: &JobContext, p: &Payload) -> Result<String, AppError> {
        let cluster = self.store.get_cluster(p.cluster_id).await?;
        let service = self.pve.service(&cluster)?;
        Rights::on_behalf(service.as_ref(), &p.username, &cluster.name)
            .require(&vm_path(p.vmid), &[PRIVILEGE])
            .await?;
        let record = match p.record_id {
            Some(id) => Some(self.store.get_container(id).await?),
            None => None,
        };
        let target = Target {
            cluster,
            vmid: p.vmid,
            record,
        };
        let (node, _) = lifecycle::locate(service.as_ref(), &target)
            .await
            .map_err(|e| pve_error(e, p.vmid))?;
        if node == p.target {
            // An earlier attempt finished the move before the job could record it.
            let _ = ctx
                .log(format!("CT {} is already on node {node}", p.vmid))
                .await;
            return Ok(node);
        }
        let mode = if p.restart { " (restart mode)" } else { "" };
        let _ = ctx
            .log(format!(
                "migrating CT {} from {node} to {}{mode}",
                p.vmid, p.target
            ))
            .await;
        let params = MigrateParams {
            target: p.target.clone(),
            restart: p.restart,
            timeout: None,
        };
        let upid = service
            .lxc_migrate(&node, p.vmid, &params)
            .await
            .map_err(|e| pve_error(e, p.vmid))?;
        let _ = ctx.emit("task", json!({ "upid": upid.to_string() })).await;
        wait(ctx, service.as_ref(), &node, &upid).await?;
        Ok(node)
    }

    async fn finish(
        &self,
        ctx: &JobContext,
        p: &Payload,
        result: &Result<String, AppError>,
    ) -> Result<(), AppError> {
        if result.is_ok() {
            self.guests.moved(p.cluster_id, p.vmid);
            if let Some(id) = p.record_id
                && let Err(e) = self.store.move_container_record(id, &p.target).await
            {
                tracing::warn!(error = %e, id, "cannot record the container's new node");
            }
        }
        let (kind, message, outcome, error) = match result {
            Ok(from) => (
                "migrated",
                format!("migrated from {from} to {}", p.target),
                "ok",
                None,
            ),
            Err(e) => (
                "migrate_failed",
                format!("migration to {} failed: {e}", p.target),
                match e {
                    AppError::Forbidden(_) => "denied",
                    _ => "error",
                },
                Some(e.to_string()),
            ),
        };
        if let Some(id) = p.record_id {
            let data = json!({ "job": ctx.job_id(), "target": p.target }).to_string();
            if let Err(e) = self
                .store
                .add_container_event(id, kind, &message, &p.username, &data)
                .await
            {
                tracing::warn!(error = %e, "cannot record container event");
            }
        }
        let cluster = self
            .store
            .get_cluster(p.cluster_id)
            .await
            .map(|c| c.name)
            .unwrap_or_default();
        let entry = Entry::new(
            &p.username,
            "ct.migrate",
            format!("ct:{cluster}:{}", p.vmid),
            &p.remote,
        )
        .outcome(outcome)
        .detail(json!({
            "vmid": p.vmid, "cluster": cluster, "id": p.record_id, "from": p.from,
            "target": p.target, "restart": p.restart, "job": ctx.job_id(), "error": error,
        }));
        audit::record(self.store.as_ref(), entry).await?;
        if result.is_ok() {
            let _ = ctx
                .set_result(&json!({ "node": p.target, "vmid": p.vmid }))
                .await;
        }
        Ok(())
    }
}

/// How long a services check waits for an action holding the container (a restart migration
/// shuts it down, moves it and starts it again).
pub const ACTION_WAIT: Duration = Duration::from_secs(120);

/// Waits (at most [`ACTION_WAIT`]) until no action holds the container lock `lock`; 409 when
/// one still does.
pub async fn wait_for_actions(locks: &dyn Locks, lock: &str) -> Result<(), AppError> {
    let probe = uuid::Uuid::new_v4().to_string();
    let started = std::time::Instant::now();
    loop {
        if locks.try_lock(lock, &probe, 1_000).await? {
            let _ = locks.unlock(lock, &probe).await;
            return Ok(());
        }
        if started.elapsed() >= ACTION_WAIT {
            return Err(AppError::Conflict(format!(
                "another action is still running on {lock}; try again once it finished"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for Proxmox's task, its log lines going to the job log as they come.
async fn wait(
    ctx: &JobContext,
    client: &dyn PveApi,
    node: &str,
    upid: &ctforge_pve::types::Upid,
) -> Result<(), AppError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let options = WaitOptions {
        timeout: TASK_TIMEOUT,
        poll_interval: Duration::from_millis(250),
        ..WaitOptions::default()
    };
    let waiting = async {
        let mut cb = |p: TaskProgress| {
            if let TaskProgress::Line(line) = p {
                let _ = tx.send(line.t);
            }
        };
        let result = ctforge_pve::wait_task(client, node, upid, options, &mut cb).await;
        drop(tx);
        result
    };
    let forward = async {
        while let Some(line) = rx.recv().await {
            let _ = ctx.log(line).await;
        }
    };
    let (result, ()) = tokio::join!(waiting, forward);
    match result.map_err(|e| AppError::Unavailable(format!("migration task: {e}")))? {
        TaskExit::Success | TaskExit::Warnings(_) => Ok(()),
        TaskExit::Error(text) => Err(AppError::Conflict(format!("migration failed: {text}"))),
    }
}

#[async_trait]
impl JobHandler for MigrateContainer {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec![STEP]
    }

    fn step_timeout(&self, _job: &Job, _step: &str) -> Option<Duration> {
        // Copying a disk can be silent for a long time; the task wait has its own bound.
        Some(TASK_TIMEOUT + Duration::from_secs(60))
    }

    async fn run_step(&self, ctx: &JobContext, _step: &str) -> Result<(), StepError> {
        let p: Payload = serde_json::from_str(&ctx.job.payload_json)
            .map_err(|_| StepError::failed("the job's payload is unreadable; submit again"))?;
        // A retry (or a resumed job) takes the lock again with the same owner token.
        match self
            .locks
            .try_lock(&p.lock, &p.lock_owner, LOCK_TTL_MS)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(StepError::failed(format!(
                    "another action is running on CT {}; retry once it finished",
                    p.vmid
                )));
            }
            Err(e) => return Err(StepError::failed(e.to_string())),
        }
        let result = self.migrate(ctx, &p).await;
        let recorded = self.finish(ctx, &p, &result).await;
        if let Err(e) = self.locks.unlock(&p.lock, &p.lock_owner).await {
            tracing::warn!(lock = p.lock, error = %e, "cannot release the container lock");
        }
        result.map_err(|e| StepError::failed(e.to_string()))?;
        recorded.map_err(|e| StepError::failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_proxmox() {
        assert!(valid_node("pve1"));
        assert!(valid_node("node-3"));
        assert!(!valid_node(""));
        assert!(!valid_node("-pve"));
        assert!(!valid_node("pve/../x"));
        assert!(!valid_node("pve 1"));
    }

    #[test]
    fn choices_leave_out_the_current_node_and_compute_free_resources() {
        let r = |n: &str, status: &str| ctforge_pve::types::ClusterResource {
            id: format!("node/{n}"),
            kind: "node".into(),
            node: Some(n.into()),
            status: Some(status.into()),
            maxmem: Some(8 << 30),
            mem: Some(3 << 30),
            maxdisk: Some(100),
            disk: Some(40),
            ..Default::default()
        };
        let c = choices(
            vec![
                r("pve2", "online"),
                r("pve1", "online"),
                r("pve3", "offline"),
            ],
            "pve1",
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].node, "pve2");
        assert_eq!(c[0].free_mem, Some(5 << 30));
        assert_eq!(c[0].free_disk, Some(60));
        assert!(!c[1].online);
    }
}
