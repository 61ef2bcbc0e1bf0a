//! Day-two operations on a guest — container or virtual machine, one use-case each that picks
//! the `lxc/` or `qemu/` endpoint by the guest's kind (`guest_kind`) — each one Proxmox call or
//! task run the same way: the user's rights on the exact guest asked of Proxmox (the
//! privileges pve-container or qemu-server checks for that call), the container's lock (`ct:<cluster>:<vmid>`, shared with the lifecycle actions,
//! so an edit never races a stop), the node that holds the guest now, the call and its task
//! followed to the end (its log lines come back in the answer and as container events), and
//! one audit entry (`ct.config`, `ct.resize`, `ct.snapshot`, `ct.rollback`,
//! `ct.snapshot_delete`, `ct.clone`, `ct.template`) whatever the outcome.
//!
//! While an operation follows its Proxmox task, each log line is also published on the guest's
//! bus topic ([`task_topic`]: `start`, `log` lines, then `done` or `error`), so the page that
//! submitted it and `ctforge ct …` show the log live (`GET …/task-log`, SSE) before the answer.
//!
//! Proxmox's own refusals (`unable to shrink disk size`, `CT is locked (backup)`, `Linked clone
//! feature for … is not available`, …) are relayed with Proxmox's text: as 409 when the state
//! of the guest forbids it, 403 for permissions.
//!
//! Privileges (pve-container): the edit asks per key (`VM.Config.CPU` cores, `VM.Config.Memory`
//! memory/swap, `VM.Config.Network` interfaces and DNS, `VM.Config.Disk` mount points plus
//! `Datastore.AllocateSpace` on a new volume's storage, `VM.Config.Options` the rest; bind
//! mounts root@pam only); resize `VM.Config.Disk` and `VM.Config.Options` (the parameter
//! `disk` is checked as an option) plus `Datastore.AllocateSpace`; snapshot and its delete
//! `VM.Snapshot`; rollback `VM.Snapshot` or `VM.Snapshot.Rollback`; clone `VM.Clone` plus
//! `VM.Allocate` on the new VMID and `Datastore.AllocateSpace` on each storage; template
//! `VM.Allocate`.
//!
//! The same for a VM (qemu-server): the edit per key by `check_vm_modify_config_perm`
//! (`VM.Config.CPU`, `VM.Config.Memory`, `VM.Config.Cloudinit` for cloud-init's DNS keys,
//! `VM.Config.Options` the rest; a VM's interfaces, disks and swap are not edited here); resize
//! `VM.Config.Disk` plus `Datastore.AllocateSpace`; snapshots, clone and template as above
//! (`qmsnapshot`, `qmrollback`, `qmdelsnapshot`, `qmclone`, `qmtemplate`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ctforge_pve::types::{CloneParams, LxcConfig, PendingEntry, Snapshot, Upid};
use ctforge_pve::{PveApi, PveError, TaskProgress, WaitOptions};
use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::edit::{Change, ConfigEdit, PendingChange, Plan, effective_values, pending_changes};
use super::guest_kind::{self, Located};
use super::{Target, client_for};
use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::authz::{Rights, vm_path};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::GuestKind;
use crate::storage::StoreError;
use crate::storage::model::NewContainer;

/// How long an operation may hold the container's lock.
const LOCK_TTL_MS: i64 = 15 * 60 * 1000;
/// How long a Proxmox task of an operation is followed.
const TASK_TIMEOUT: Duration = Duration::from_secs(600);

/// A day-two operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `PUT …/config`.
    Config,
    /// `PUT …/resize`.
    Resize,
    /// `POST …/snapshot`.
    Snapshot,
    /// `POST …/snapshot/{name}/rollback`.
    Rollback,
    /// `DELETE …/snapshot/{name}`.
    SnapshotDelete,
    /// `POST …/clone`.
    Clone,
    /// `POST …/template`.
    Template,
}

impl Operation {
    /// The name in audit entries (`ct.<name>`) and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Config => "config",
            Operation::Resize => "resize",
            Operation::Snapshot => "snapshot",
            Operation::Rollback => "rollback",
            Operation::SnapshotDelete => "snapshot_delete",
            Operation::Clone => "clone",
            Operation::Template => "template",
        }
    }
}

/// What an operation did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct OpOutcome {
    /// Always true.
    pub ok: bool,
    /// The operation (`config`, `resize`, `snapshot`, …).
    pub operation: String,
    /// Cluster name.
    pub cluster: String,
    /// VMID.
    pub vmid: u32,
    /// ctforge record id, if managed.
    pub id: Option<i64>,
    /// Node the guest is on.
    pub node: String,
    /// What happened, for people.
    pub message: String,
    /// The Proxmox task, when one ran.
    pub upid: Option<String>,
    /// The task's log.
    pub task_log: Vec<String>,
    /// The changed keys (config edit).
    pub changes: Vec<Change>,
    /// Keys whose change waits for the next start (config edit).
    pub pending: Vec<PendingChange>,
    /// The new CT's VMID (clone).
    pub new_vmid: Option<u32>,
    /// The new CT's ctforge id (clone of a managed CT).
    pub new_id: Option<i64>,
}

/// The review of a config edit before it is applied.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigPreview {
    /// What would change.
    pub changes: Vec<Change>,
    /// The configuration's digest now: send it back with the edit so it applies only to
    /// what was reviewed.
    pub digest: Option<String>,
    /// Whether the CT runs (then some keys wait for the next start).
    pub running: bool,
    /// Keys already waiting for the next start.
    pub pending: Vec<PendingChange>,
}

/// The current configuration as the Edit form shows it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfigView {
    /// Node.
    pub node: String,
    /// `lxc` or `qemu` (which keys the edit takes).
    #[serde(rename = "type", default)]
    pub kind: GuestKind,
    /// Whether the CT runs.
    pub running: bool,
    /// Proxmox's config lock (`backup`, `snapshot`, `migrate`, …).
    pub lock: Option<String>,
    /// Whether the CT is a template.
    pub template: bool,
    /// Digest of the configuration.
    pub digest: Option<String>,
    /// Every key with its effective value (pending values included).
    pub values: BTreeMap<String, String>,
    /// Keys waiting for the next start.
    pub pending: Vec<PendingChange>,
}

/// One snapshot in the tree.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Parent snapshot.
    pub parent: Option<String>,
    /// Unix seconds.
    pub snaptime: Option<i64>,
    /// Depth in the tree (0 for roots).
    pub depth: usize,
    /// Snapshots taken after this one on its branch (a rollback keeps them in Proxmox on
    /// most storages; ZFS refuses the rollback while they exist).
    pub newer: Vec<String>,
    /// Whether the current state descends from this snapshot.
    pub ancestor_of_current: bool,
}

/// `GET …/snapshots`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotList {
    /// Snapshots in tree order (parents before children).
    pub snapshots: Vec<SnapshotView>,
    /// The snapshot the current state descends from.
    pub current_parent: Option<String>,
    /// Whether the CT runs.
    pub running: bool,
}

/// `POST …/snapshots`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// Name (letters, digits, `-`, `_`; starts with a letter; at most 40).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST …/snapshots/{name}/rollback`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Start the CT after the rollback.
    #[serde(default)]
    pub start: bool,
}

/// `POST …/resize`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    /// `rootfs` or `mpN`.
    pub disk: String,
    /// `+2G` grows by 2 GiB, `10G` grows to 10 GiB (K, M, G, T); never smaller.
    pub size: String,
}

/// `POST …/clone`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// VMID of the clone (default: the cluster's next free one).
    #[serde(default)]
    pub newid: Option<u32>,
    /// Hostname of the clone.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Full copy (default for a normal CT); false: linked clone (templates only).
    #[serde(default)]
    pub full: Option<bool>,
    /// Target storage (full clones).
    #[serde(default)]
    pub storage: Option<String>,
    /// Description of the clone.
    #[serde(default)]
    pub description: Option<String>,
    /// Clone from this snapshot (a running CT can only be fully cloned from one).
    #[serde(default)]
    pub snapshot: Option<String>,
}

/// Who acts and on what.
pub struct Actor<'a> {
    /// Shared state.
    pub state: &'a AppState,
    /// The user.
    pub user: &'a CurrentUser,
    /// Client address for the audit log.
    pub remote: String,
    /// The container.
    pub target: Target,
}

impl<'a> Actor<'a> {
    /// The actor of a request: `user`, from `remote`, on the container `id` names (the one
    /// lookup every page and API handler of a day-two operation starts with).
    pub async fn resolve(
        state: &'a AppState,
        user: &'a CurrentUser,
        remote: std::net::SocketAddr,
        id: &str,
    ) -> Result<Self, AppError> {
        Ok(Self {
            state,
            user,
            remote: remote.ip().to_string(),
            target: super::resolve(state, id).await?,
        })
    }
}

/// What an operation's body works with (owned, so the body's future borrows nothing of
/// the runner).
struct Env {
    client: Arc<dyn PveApi>,
    rights: Rights<'static>,
    node: String,
    kind: GuestKind,
    username: String,
    live: LiveLog,
}

/// The bus topic on which the day-two tasks of guest `vmid` of cluster `cluster_id` publish
/// their log as it is read (events with `job_id` 0, `step` the operation).
pub fn task_topic(cluster_id: i64, vmid: u32) -> String {
    format!("ct-task:{cluster_id}:{vmid}")
}

/// Subscribes a viewer allowed to read guest `target` (VM.Audit) to its day-two task logs:
/// every line published from now on (earlier lines are in the operation's answer).
pub async fn task_log(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<crate::events::Subscription, AppError> {
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    state
        .bus
        .subscribe(&task_topic(target.cluster.id, target.vmid))
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))
}

/// Where a running operation publishes its task log.
#[derive(Clone)]
struct LiveLog {
    bus: Arc<dyn crate::events::EventBus>,
    clock: Arc<dyn crate::clock::Clock>,
    topic: String,
    op: Operation,
}

/// Maps a Proxmox failure of an operation: Proxmox's text, as 409 for refusals of the guest's
/// state or the request, 403 for permissions.
fn op_error(e: PveError, vmid: u32) -> AppError {
    match e {
        PveError::Server { status, message } if status < 502 => AppError::Conflict(message),
        PveError::Parameter { message, errors } => AppError::Invalid {
            message,
            fields: errors.into_iter().collect(),
        },
        PveError::AlreadyExists { message } => AppError::Conflict(message),
        other => super::pve_error(other, vmid),
    }
}

/// Runs `body` under the container's lock and audits the outcome.
async fn guarded<'a, F>(
    actor: &'a Actor<'a>,
    op: Operation,
    detail: Value,
    body: F,
) -> Result<OpOutcome, AppError>
where
    F: FnOnce(Env) -> BoxFuture<'a, Result<OpOutcome, AppError>>,
{
    let target = &actor.target;
    let result = async {
        let rights = Rights::of(actor.state, actor.user, &target.cluster)?;
        let client: Arc<dyn PveApi> = client_for(actor.state, actor.user, &target.cluster)?;
        let lock = target.lock_name();
        let owner = uuid::Uuid::new_v4().to_string();
        if !actor
            .state
            .locks
            .try_lock(&lock, &owner, LOCK_TTL_MS)
            .await?
        {
            return Err(AppError::Conflict(format!(
                "another action is running on CT {}; wait for it to finish and retry",
                target.vmid
            )));
        }
        let located = guest_kind::locate(client.as_ref(), target)
            .await
            .map_err(|e| op_error(e, target.vmid));
        let result = match located {
            Ok(Located { node, kind, .. }) => {
                let env = Env {
                    client,
                    rights,
                    node,
                    kind,
                    username: actor.user.username.clone(),
                    live: LiveLog {
                        bus: actor.state.bus.clone(),
                        clock: actor.state.clock.clone(),
                        topic: task_topic(target.cluster.id, target.vmid),
                        op,
                    },
                };
                body(env).await
            }
            Err(e) => Err(e),
        };
        match actor.state.locks.unlock(&lock, &owner).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(lock, "day-two lock expired before the operation finished"),
            Err(e) => tracing::warn!(lock, error = %e, "cannot release day-two lock"),
        }
        result
    }
    .await;
    if result.is_ok() {
        // The dashboard shows the change (pending keys, locks, config) at its next view.
        actor.state.reads.invalidate(target.cluster.id);
    }
    record(actor, op, detail, &result).await?;
    result
}

async fn record(
    actor: &Actor<'_>,
    op: Operation,
    mut detail: Value,
    result: &Result<OpOutcome, AppError>,
) -> Result<(), AppError> {
    let target = &actor.target;
    let (outcome, error) = match result {
        Ok(_) => ("ok", None),
        Err(AppError::Forbidden(m)) => ("denied", Some(m.clone())),
        Err(e @ AppError::Conflict(_)) | Err(e @ AppError::Invalid { .. }) => {
            ("refused", Some(e.to_string()))
        }
        Err(e) => ("error", Some(e.to_string())),
    };
    detail["vmid"] = json!(target.vmid);
    detail["cluster"] = json!(target.cluster.name);
    detail["id"] = json!(target.record.as_ref().map(|r| r.id));
    detail["error"] = json!(error);
    if let Ok(o) = result {
        detail["upid"] = json!(o.upid);
        if !o.changes.is_empty() {
            detail["changes"] = json!(o.changes);
        }
        if let Some(n) = o.new_vmid {
            detail["new_vmid"] = json!(n);
        }
    }
    if let Some(rec) = &target.record {
        let (kind, message) = match result {
            Ok(o) => (op.as_str().to_owned(), o.message.clone()),
            Err(e) => (
                format!("{}_failed", op.as_str()),
                format!("{} failed: {e}", op.as_str()),
            ),
        };
        if let Err(e) = actor
            .state
            .store
            .add_container_event(
                rec.id,
                &kind,
                &message,
                &actor.user.username,
                &detail.to_string(),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot record container event");
        }
    }
    let entry = Entry::new(
        &actor.user.username,
        format!("ct.{}", op.as_str()),
        target.audit_target(),
        &actor.remote,
    )
    .outcome(outcome)
    .detail(detail);
    audit::record(actor.state.store.as_ref(), entry).await?;
    Ok(())
}

/// Follows a task to its end; its log lines, or Proxmox's error with them. Every line is
/// published on the guest's topic as it is read (see [`task_topic`]), in order, before the
/// answer returns.
async fn follow(env: &Env, upid: &Upid, vmid: u32) -> Result<Vec<String>, AppError> {
    let live = env.live.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, Value)>();
    let forward = tokio::spawn(async move {
        let mut seq = 0;
        while let Some((kind, data)) = rx.recv().await {
            seq += 1;
            let event = crate::events::BusEvent {
                job_id: 0,
                seq,
                kind: kind.to_owned(),
                step: Some(live.op.as_str().to_owned()),
                data,
                at: live.clock.now_ms(),
            };
            // Best effort: the answer carries the whole log anyway.
            if let Err(e) = live.bus.publish(&live.topic, &event).await {
                tracing::debug!(error = %e, "cannot publish a task log line");
            }
        }
    });
    let _ = tx.send((
        crate::events::kind::START,
        json!({ "operation": env.live.op.as_str(), "upid": upid.to_string(), "node": env.node }),
    ));
    let mut lines = Vec::new();
    let opts = WaitOptions {
        timeout: TASK_TIMEOUT,
        poll_interval: Duration::from_millis(200),
        log_page: 500,
    };
    let mut collect = |p: TaskProgress| {
        if let TaskProgress::Line(line) = p {
            let _ = tx.send((crate::events::kind::LOG, Value::String(line.t.clone())));
            lines.push(line.t);
        }
    };
    let exit = ctforge_pve::wait_task(env.client.as_ref(), &env.node, upid, opts, &mut collect)
        .await
        .map_err(|e| op_error(e, vmid));
    let result = match exit {
        Err(e) => Err(e),
        Ok(exit) => match exit.into_result(upid) {
            Ok(_) => Ok(lines),
            Err(PveError::TaskFailed { exitstatus, .. }) => Err(AppError::Conflict(exitstatus)),
            Err(e) => Err(op_error(e, vmid)),
        },
    };
    let end = match &result {
        Ok(_) => (
            crate::events::kind::DONE,
            json!({ "upid": upid.to_string() }),
        ),
        Err(e) => (
            crate::events::kind::ERROR,
            json!({ "upid": upid.to_string(), "message": e.to_string() }),
        ),
    };
    let _ = tx.send(end);
    drop(tx);
    let _ = forward.await;
    result
}

/// Follows `upid` to its end and answers the operation's outcome with the task's log.
async fn task_outcome(
    actor: &Actor<'_>,
    env: &Env,
    op: Operation,
    upid: Upid,
    message: String,
) -> Result<OpOutcome, AppError> {
    let log = follow(env, &upid, actor.target.vmid).await?;
    let mut out = outcome(actor, env, op, message);
    out.upid = Some(upid.to_string());
    out.task_log = log;
    Ok(out)
}

fn outcome(actor: &Actor<'_>, env: &Env, op: Operation, message: String) -> OpOutcome {
    OpOutcome {
        ok: true,
        operation: op.as_str().to_owned(),
        cluster: actor.target.cluster.name.clone(),
        vmid: actor.target.vmid,
        id: actor.target.record.as_ref().map(|r| r.id),
        node: env.node.clone(),
        message,
        ..OpOutcome::default()
    }
}

/// A guest's configuration as Proxmox answers it for its kind: typed for a container, key →
/// value for a VM (qemu-server's keys are many; day-two reads a few).
enum GuestConfig {
    Lxc(Box<LxcConfig>),
    Qemu(BTreeMap<String, Value>),
}

/// A qemu config value as text (Proxmox answers numbers for some keys).
fn config_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        _ => None,
    }
}

/// Whether a qemu config key names a disk (`scsi0`, `virtio1`, `sata2`, `ide3`, `efidisk0`,
/// `tpmstate0`), as qemu-server's `is_valid_drivename`.
pub fn is_qemu_disk_key(key: &str) -> bool {
    [
        ("scsi", 30u16),
        ("virtio", 15),
        ("sata", 5),
        ("ide", 3),
        ("efidisk", 0),
        ("tpmstate", 0),
    ]
    .iter()
    .any(|(prefix, max)| {
        key.strip_prefix(prefix).is_some_and(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u16>().is_ok_and(|n| n <= *max)
        })
    })
}

impl GuestConfig {
    fn qemu_text(&self, key: &str) -> Option<String> {
        match self {
            Self::Qemu(map) => map.get(key).and_then(config_text),
            Self::Lxc(_) => None,
        }
    }

    fn lock(&self) -> Option<String> {
        match self {
            Self::Lxc(c) => c.lock.clone(),
            Self::Qemu(_) => self.qemu_text("lock"),
        }
        .filter(|l| !l.is_empty())
    }

    fn template(&self) -> bool {
        match self {
            Self::Lxc(c) => c.template.unwrap_or(false),
            Self::Qemu(_) => self.qemu_text("template").is_some_and(|t| t == "1"),
        }
    }

    fn digest(&self) -> Option<String> {
        match self {
            Self::Lxc(c) => c.digest.clone(),
            Self::Qemu(_) => self.qemu_text("digest"),
        }
    }

    /// The guest's name (a container's hostname).
    fn name(&self) -> Option<String> {
        match self {
            Self::Lxc(c) => c.hostname.clone(),
            Self::Qemu(_) => self.qemu_text("name"),
        }
    }

    /// The volume of `disk` (`rootfs`, `mpN`; `scsi0`, `virtio1`, …) — a VM's CD-ROM drives
    /// have none that could grow.
    fn volume_of(&self, disk: &str) -> Option<String> {
        match self {
            Self::Lxc(c) => {
                if disk == "rootfs" {
                    c.rootfs.as_ref().map(|r| r.volume.clone())
                } else {
                    disk.strip_prefix("mp")
                        .and_then(|n| n.parse::<u16>().ok())
                        .and_then(|n| c.mounts.get(&n))
                        .map(|m| m.volume.clone())
                }
            }
            Self::Qemu(_) => {
                let value = self.qemu_text(disk).filter(|_| is_qemu_disk_key(disk))?;
                (!value.split(',').any(|p| p == "media=cdrom"))
                    .then(|| value.split(',').next().unwrap_or("").to_owned())
            }
        }
    }

    /// The storages a clone allocates on (Proxmox's `check_storage_access_clone`: every disk,
    /// a VM's cloud-init drive too, CD-ROMs not).
    fn disk_storages(&self) -> BTreeSet<String> {
        let volumes: Vec<String> = match self {
            Self::Lxc(c) => c
                .rootfs
                .iter()
                .map(|r| r.volume.clone())
                .chain(c.mounts.values().map(|m| m.volume.clone()))
                .collect(),
            Self::Qemu(map) => map
                .iter()
                .filter(|(k, _)| is_qemu_disk_key(k))
                .filter_map(|(_, v)| config_text(v))
                .filter(|v| {
                    let file = v.split(',').next().unwrap_or("");
                    !v.split(',').any(|p| p == "media=cdrom") || file.contains("cloudinit")
                })
                .map(|v| v.split(',').next().unwrap_or("").to_owned())
                .collect(),
        };
        volumes
            .iter()
            .filter_map(|v| v.split_once(':').map(|(s, _)| s.to_owned()))
            .collect()
    }

    /// The edit of this guest's configuration over `values`.
    fn plan(&self, edit: &ConfigEdit, values: &BTreeMap<String, String>) -> Result<Plan, AppError> {
        match self {
            Self::Lxc(c) => edit.plan(c, values),
            Self::Qemu(_) => edit.plan_qemu(values),
        }
    }
}

/// The configuration (`current`: without pending values) of a guest of `kind`.
async fn read_current(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    current: bool,
) -> Result<GuestConfig, AppError> {
    match kind {
        GuestKind::Lxc => client
            .lxc_config_get(node, vmid, current)
            .await
            .map(|c| GuestConfig::Lxc(Box::new(c))),
        GuestKind::Qemu => client
            .qemu_config_get(node, vmid, current)
            .await
            .map(GuestConfig::Qemu),
    }
    .map_err(|e| op_error(e, vmid))
}

async fn read_config(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<(GuestConfig, Vec<PendingEntry>), AppError> {
    let config = read_current(client, kind, node, vmid, false).await?;
    let pending = guest_kind::pending(client, kind, node, vmid)
        .await
        .map_err(|e| op_error(e, vmid))?;
    Ok((config, pending))
}

/// The privileges Proxmox asks for changing these keys: pve-container's
/// `check_ct_modify_config_perm`, or qemu-server's `check_vm_modify_config_perm`.
fn privileges_for_keys<'k>(
    kind: GuestKind,
    keys: impl Iterator<Item = &'k str>,
) -> BTreeSet<&'static str> {
    keys.map(|k| {
        let numbered = |p: &str| {
            k.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if kind == GuestKind::Qemu {
            return if matches!(
                k,
                "cores"
                    | "sockets"
                    | "vcpus"
                    | "cpu"
                    | "cpulimit"
                    | "cpuunits"
                    | "numa"
                    | "affinity"
            ) {
                "VM.Config.CPU"
            } else if matches!(k, "memory" | "balloon" | "shares") {
                "VM.Config.Memory"
            } else if matches!(
                k,
                "nameserver"
                    | "searchdomain"
                    | "ciuser"
                    | "cipassword"
                    | "sshkeys"
                    | "citype"
                    | "ciupgrade"
                    | "cicustom"
            ) || numbered("ipconfig")
            {
                "VM.Config.Cloudinit"
            } else if numbered("net") {
                "VM.Config.Network"
            } else if is_qemu_disk_key(k) {
                "VM.Config.Disk"
            } else {
                "VM.Config.Options"
            };
        }
        if matches!(k, "cores" | "cpulimit" | "cpuunits") {
            "VM.Config.CPU"
        } else if matches!(k, "memory" | "swap") {
            "VM.Config.Memory"
        } else if numbered("net") || matches!(k, "nameserver" | "searchdomain" | "hostname") {
            "VM.Config.Network"
        } else if k == "rootfs" || numbered("mp") {
            "VM.Config.Disk"
        } else {
            "VM.Config.Options"
        }
    })
    .collect()
}

/// The current configuration for the Edit form (needs VM.Audit).
pub async fn config(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<ConfigView, AppError> {
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    let client = client_for(state, user, &target.cluster)?;
    let located = guest_kind::locate(client.as_ref(), target)
        .await
        .map_err(|e| op_error(e, target.vmid))?;
    let (config, pending) =
        read_config(client.as_ref(), located.kind, &located.node, target.vmid).await?;
    Ok(ConfigView {
        running: located.state.is_running(),
        node: located.node,
        kind: located.kind,
        lock: config.lock(),
        template: config.template(),
        digest: config.digest(),
        values: effective_values(&pending),
        pending: pending_changes(&pending),
    })
}

/// The diff of `edit` against the current configuration, nothing applied (needs VM.Audit).
pub async fn preview(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    edit: &ConfigEdit,
) -> Result<ConfigPreview, AppError> {
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    let client = client_for(state, user, &target.cluster)?;
    let located = guest_kind::locate(client.as_ref(), target)
        .await
        .map_err(|e| op_error(e, target.vmid))?;
    let (config, pending) =
        read_config(client.as_ref(), located.kind, &located.node, target.vmid).await?;
    let plan = config.plan(edit, &effective_values(&pending))?;
    Ok(ConfigPreview {
        changes: plan.changes,
        digest: config.digest(),
        running: located.state.is_running(),
        pending: pending_changes(&pending),
    })
}

/// Applies a config edit (`PUT …/config`); on a running CT, what Proxmox cannot apply live
/// waits for the next start and is listed in `pending`.
pub async fn edit_config(actor: &Actor<'_>, edit: ConfigEdit) -> Result<OpOutcome, AppError> {
    if edit.is_empty() {
        return Err(AppError::invalid(
            "nothing to change: give at least one key",
        ));
    }
    let detail = json!({ "request": edit });
    guarded(actor, Operation::Config, detail, move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            let (config, pending) =
                read_config(env.client.as_ref(), env.kind, &env.node, vmid).await?;
            let plan = config.plan(&edit, &effective_values(&pending))?;
            let path = vm_path(vmid);
            let keys: Vec<&str> = plan.changes.iter().map(|c| c.key.as_str()).collect();
            for privilege in privileges_for_keys(env.kind, keys.iter().copied()) {
                env.rights.require(&path, &[privilege]).await?;
            }
            if let Some(key) = plan.bind_mounts.first()
                && env.username != "root@pam"
            {
                return Err(AppError::Forbidden(format!(
                    "{key}: mount point type bind is only allowed for root@pam"
                )));
            }
            for storage in &plan.new_volumes_on {
                env.rights
                    .require(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"])
                    .await?;
            }
            let mut out = outcome(actor, &env, Operation::Config, String::new());
            if plan.changes.is_empty() {
                out.message = "nothing changed: the configuration already has these values".into();
                out.pending = pending_changes(&pending);
                return Ok(out);
            }
            match env.kind {
                GuestKind::Lxc => {
                    env.client
                        .lxc_config_put(&env.node, vmid, &plan.update)
                        .await
                }
                GuestKind::Qemu => {
                    env.client
                        .qemu_config_put(&env.node, vmid, &plan.sets, &plan.deletes)
                        .await
                }
            }
            .map_err(|e| op_error(e, vmid))?;
            let after = guest_kind::pending(env.client.as_ref(), env.kind, &env.node, vmid)
                .await
                .map_err(|e| op_error(e, vmid))?;
            out.pending = pending_changes(&after);
            out.message = if out.pending.is_empty() {
                format!("changed {}", keys.join(", "))
            } else {
                let waiting: Vec<&str> = out.pending.iter().map(|p| p.key.as_str()).collect();
                format!(
                    "changed {}; pending until restart: {}",
                    keys.join(", "),
                    waiting.join(", ")
                )
            };
            out.changes = plan.changes;
            Ok(out)
        })
    })
    .await
}

/// Grows a disk (`PUT …/resize`, task `resize`).
pub async fn resize(actor: &Actor<'_>, req: ResizeRequest) -> Result<OpOutcome, AppError> {
    // Which names apply depends on the kind, known once the guest is located; here only
    // names neither kind has are refused.
    let valid_disk = req.disk == "rootfs"
        || req
            .disk
            .strip_prefix("mp")
            .is_some_and(|n| n.parse::<u16>().is_ok_and(|n| n <= 255))
        || is_qemu_disk_key(&req.disk);
    let size_ok = {
        let s = req.size.strip_prefix('+').unwrap_or(&req.size);
        let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
        !digits.is_empty()
            && digits
                .parse::<f64>()
                .is_ok_and(|v| v.is_finite() && v >= 0.0)
            && !digits.contains(['e', 'E', '-'])
    };
    let mut fields = Vec::new();
    if !valid_disk {
        fields.push((
            "disk".to_owned(),
            "disk must be rootfs or mpN (a container), scsiN, virtioN, sataN or ideN (a VM)"
                .to_owned(),
        ));
    }
    if !size_ok {
        fields.push((
            "size".to_owned(),
            "size must look like +2G (grow by) or 10G (grow to)".to_owned(),
        ));
    }
    if !fields.is_empty() {
        return Err(AppError::Invalid {
            message: "the resize request is not valid".into(),
            fields,
        });
    }
    let detail = json!({ "disk": req.disk, "size": req.size });
    guarded(actor, Operation::Resize, detail, move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            // qemu-server asks VM.Config.Disk; pve-container checks `disk` as an option too.
            let privileges: &[&str] = match env.kind {
                GuestKind::Lxc => &["VM.Config.Disk", "VM.Config.Options"],
                GuestKind::Qemu => &["VM.Config.Disk"],
            };
            env.rights.require(&vm_path(vmid), privileges).await?;
            let config = read_current(env.client.as_ref(), env.kind, &env.node, vmid, true).await?;
            let volume = config.volume_of(&req.disk).ok_or_else(|| {
                AppError::NotFound(format!("disk {} of {} {vmid}", req.disk, env.kind.short()))
            })?;
            if let Some((storage, _)) = volume.split_once(':') {
                env.rights
                    .require(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"])
                    .await?;
            }
            let upid = guest_kind::resize(
                env.client.as_ref(),
                env.kind,
                &env.node,
                vmid,
                &req.disk,
                &req.size,
            )
            .await
            .map_err(|e| op_error(e, vmid))?;
            task_outcome(
                actor,
                &env,
                Operation::Resize,
                upid,
                format!("resized {} by/to {}", req.disk, req.size),
            )
            .await
        })
    })
    .await
}

/// The snapshot tree (needs VM.Audit).
pub async fn snapshots(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<SnapshotList, AppError> {
    crate::authz::read(state, user, &target.cluster, target.vmid).await?;
    let client = client_for(state, user, &target.cluster)?;
    let located = guest_kind::locate(client.as_ref(), target)
        .await
        .map_err(|e| op_error(e, target.vmid))?;
    let list = guest_kind::snapshot_list(client.as_ref(), located.kind, &located.node, target.vmid)
        .await
        .map_err(|e| op_error(e, target.vmid))?;
    Ok(snapshot_tree(&list, located.state.is_running()))
}

/// Orders Proxmox's flat list as a tree and says, for each snapshot, what is newer.
pub fn snapshot_tree(list: &[Snapshot], running: bool) -> SnapshotList {
    let current_parent = list
        .iter()
        .find(|s| s.name == "current")
        .and_then(|s| s.parent.clone());
    let snaps: Vec<&Snapshot> = list.iter().filter(|s| s.name != "current").collect();
    let names: BTreeSet<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    let children = |parent: Option<&str>| -> Vec<&Snapshot> {
        let mut c: Vec<&Snapshot> = snaps
            .iter()
            .copied()
            .filter(|s| match (s.parent.as_deref(), parent) {
                (Some(p), Some(q)) => p == q,
                // A parent Proxmox no longer lists makes a root.
                (Some(p), None) => !names.contains(p),
                (None, None) => true,
                (None, Some(_)) => false,
            })
            .collect();
        c.sort_by_key(|s| (s.snaptime, s.name.clone()));
        c
    };
    let mut ancestors = BTreeSet::new();
    let mut cursor = current_parent.clone();
    while let Some(name) = cursor {
        if !ancestors.insert(name.clone()) {
            break;
        }
        cursor = snaps
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.parent.clone());
    }
    let mut out = Vec::new();
    let mut stack: Vec<(&Snapshot, usize)> =
        children(None).into_iter().rev().map(|s| (s, 0)).collect();
    while let Some((s, depth)) = stack.pop() {
        if out.len() > snaps.len() {
            break;
        }
        let mut newer = Vec::new();
        let mut frontier = vec![s.name.clone()];
        while let Some(n) = frontier.pop() {
            for c in children(Some(&n)) {
                if newer.len() <= snaps.len() && !newer.contains(&c.name) {
                    newer.push(c.name.clone());
                    frontier.push(c.name.clone());
                }
            }
        }
        out.push(SnapshotView {
            name: s.name.clone(),
            description: s.description.clone(),
            parent: s.parent.clone(),
            snaptime: s.snaptime,
            depth,
            newer,
            ancestor_of_current: ancestors.contains(&s.name),
        });
        for c in children(Some(&s.name)).into_iter().rev() {
            stack.push((c, depth + 1));
        }
    }
    SnapshotList {
        snapshots: out,
        current_parent,
        running,
    }
}

fn valid_snapshot_name(name: &str) -> bool {
    (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_snapshot_name(name: &str) -> Result<(), AppError> {
    if valid_snapshot_name(name) {
        Ok(())
    } else {
        Err(AppError::Invalid {
            message: "the snapshot name is not valid".into(),
            fields: vec![(
                "name".into(),
                "2 to 40 letters, digits, - or _, starting with a letter".into(),
            )],
        })
    }
}

/// Takes a snapshot (`POST …/snapshot`, task `vzsnapshot`).
pub async fn snapshot(actor: &Actor<'_>, req: SnapshotRequest) -> Result<OpOutcome, AppError> {
    check_snapshot_name(&req.name)?;
    let detail = json!({ "name": req.name, "description": req.description });
    guarded(actor, Operation::Snapshot, detail, move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            env.rights.require(&vm_path(vmid), &["VM.Snapshot"]).await?;
            let upid = guest_kind::snapshot_create(
                env.client.as_ref(),
                env.kind,
                &env.node,
                vmid,
                &req.name,
                req.description.as_deref(),
            )
            .await
            .map_err(|e| op_error(e, vmid))?;
            task_outcome(
                actor,
                &env,
                Operation::Snapshot,
                upid,
                format!("took snapshot {}", req.name),
            )
            .await
        })
    })
    .await
}

/// Rolls back to a snapshot (`POST …/rollback`, task `vzrollback`): the current state is lost.
pub async fn rollback(
    actor: &Actor<'_>,
    name: &str,
    req: RollbackRequest,
) -> Result<OpOutcome, AppError> {
    check_snapshot_name(name)?;
    let detail = json!({ "name": name, "start": req.start });
    guarded(actor, Operation::Rollback, detail, move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            env.rights
                .require_any(&vm_path(vmid), &["VM.Snapshot", "VM.Snapshot.Rollback"])
                .await?;
            let upid = guest_kind::snapshot_rollback(
                env.client.as_ref(),
                env.kind,
                &env.node,
                vmid,
                name,
                req.start,
            )
            .await
            .map_err(|e| op_error(e, vmid))?;
            let message = format!("rolled back to snapshot {name}; the state since then is gone");
            task_outcome(actor, &env, Operation::Rollback, upid, message).await
        })
    })
    .await
}

/// Deletes a snapshot (`DELETE …/snapshot/{name}`, task `vzdelsnapshot`).
pub async fn delete_snapshot(actor: &Actor<'_>, name: &str) -> Result<OpOutcome, AppError> {
    check_snapshot_name(name)?;
    let detail = json!({ "name": name });
    guarded(actor, Operation::SnapshotDelete, detail, move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            env.rights.require(&vm_path(vmid), &["VM.Snapshot"]).await?;
            let upid =
                guest_kind::snapshot_delete(env.client.as_ref(), env.kind, &env.node, vmid, name)
                    .await
                    .map_err(|e| op_error(e, vmid))?;
            task_outcome(
                actor,
                &env,
                Operation::SnapshotDelete,
                upid,
                format!("deleted snapshot {name}"),
            )
            .await
        })
    })
    .await
}

/// Converts a stopped guest into a template (`POST …/template`, task `vztemplate` or
/// `qmtemplate`).
pub async fn template(actor: &Actor<'_>) -> Result<OpOutcome, AppError> {
    guarded(actor, Operation::Template, json!({}), move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            env.rights.require(&vm_path(vmid), &["VM.Allocate"]).await?;
            if env.kind == GuestKind::Qemu {
                // qemu-server answers the task's UPID: followed like any other.
                let upid = env
                    .client
                    .qemu_template(&env.node, vmid)
                    .await
                    .map_err(|e| op_error(e, vmid))?;
                return task_outcome(actor, &env, Operation::Template, upid, format!("VM {vmid} is now a template")).await;
            }
            env.client
                .lxc_template(&env.node, vmid)
                .await
                .map_err(|e| op_error(e, vmid))?;
            // The call answers before its task ends; the conversion is done when the config
            // says `template: 1` and holds no lock.
            let deadline = tokio::time::Instant::now() + TASK_TIMEOUT;
            loop {
                let config = env
                    .client
                    .lxc_config_get(&env.node, vmid, true)
                    .await
                    .map_err(|e| op_error(e, vmid))?;
                if config.template == Some(true) && config.lock.is_none() {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(AppError::Unavailable(format!(
                        "CT {vmid} did not become a template within {} s; check its tasks in Proxmox",
                        TASK_TIMEOUT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(outcome(actor, &env, Operation::Template, format!("CT {vmid} is now a template")))
        })
    })
    .await
}

/// Clones a guest (`POST …/clone`, task `vzclone` or `qmclone`; a VM's `hostname` is its
/// `name`); a managed guest's record (template link, sealed root password: the clone has the
/// same files) is carried over to the clone.
pub async fn clone(actor: &Actor<'_>, req: CloneRequest) -> Result<OpOutcome, AppError> {
    if let Some(h) = &req.hostname {
        let verdict = crate::provisioning::check::check_hostname(h);
        if !verdict.ok {
            return Err(AppError::Invalid {
                message: "the hostname is not valid".into(),
                fields: vec![("hostname".into(), verdict.message.unwrap_or_default())],
            });
        }
    }
    if let Some(s) = &req.snapshot {
        check_snapshot_name(s)?;
    }
    let detail = json!({
        "newid": req.newid, "hostname": req.hostname, "full": req.full,
        "storage": req.storage, "snapshot": req.snapshot,
    });
    guarded(actor, Operation::Clone, detail, move |env| {
        Box::pin(async move {
            let vmid = actor.target.vmid;
            env.rights.require(&vm_path(vmid), &["VM.Clone"]).await?;
            let newid = match req.newid {
                Some(id) => env.client.cluster_nextid(Some(id)).await,
                None => env.client.cluster_nextid(None).await,
            }
            .map_err(|e| match e {
                PveError::Parameter { .. } => AppError::Conflict(format!(
                    "VMID {} is already in use; choose another or leave it empty",
                    req.newid.unwrap_or_default()
                )),
                other => op_error(other, vmid),
            })?;
            env.rights
                .require(&vm_path(newid), &["VM.Allocate"])
                .await?;
            let config = read_current(env.client.as_ref(), env.kind, &env.node, vmid, true).await?;
            let storages: BTreeSet<String> = match &req.storage {
                Some(s) => BTreeSet::from([s.clone()]),
                None => config.disk_storages(),
            };
            for s in &storages {
                env.rights
                    .require(&format!("/storage/{s}"), &["Datastore.AllocateSpace"])
                    .await?;
            }
            let params = CloneParams {
                newid,
                hostname: req.hostname.clone(),
                description: req.description.clone(),
                full: req.full,
                snapname: req.snapshot.clone(),
                storage: req.storage.clone(),
                ..CloneParams::default()
            };
            let upid = guest_kind::clone(env.client.as_ref(), env.kind, &env.node, vmid, &params)
                .await
                .map_err(|e| op_error(e, vmid))?;
            let short = env.kind.short();
            let hostname = req.hostname.clone().unwrap_or_else(|| match env.kind {
                GuestKind::Lxc => config.name().unwrap_or_else(|| format!("CT{newid}")),
                // qemu-server names an unnamed clone `Copy-of-VM-<name>`.
                GuestKind::Qemu => format!(
                    "Copy-of-VM-{}",
                    config.name().unwrap_or_else(|| vmid.to_string())
                ),
            });
            let message = format!("cloned {short} {vmid} as {short} {newid} ({hostname})");
            let mut out = task_outcome(actor, &env, Operation::Clone, upid, message).await?;
            out.new_vmid = Some(newid);
            if let Some(record) = &actor.target.record {
                let new = NewContainer {
                    cluster_id: record.cluster_id,
                    node: env.node.clone(),
                    vmid: i64::from(newid),
                    hostname: hostname.clone(),
                    template_id: record.template_id,
                    status: record.status,
                    spec_json: record.spec_json.clone(),
                    root_password_sealed: record.root_password_sealed.clone(),
                    created_by: env.username.clone(),
                };
                match actor.state.store.create_container(&new).await {
                    Ok(id) => {
                        if env.kind != GuestKind::Lxc {
                            actor.state.store.set_container_kind(id, env.kind).await?;
                        }
                        out.new_id = Some(id);
                    }
                    Err(StoreError::Conflict(m)) => {
                        tracing::warn!(newid, "clone record not stored: {m}");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(out)
        })
    })
    .await
}

/// The keys pending until restart of the running guests a dashboard page lists, by row key:
/// asked with the viewer's own rights (`…/pending` needs `VM.Audit`), at most 8 at a time,
/// each kept for five freshness windows (`AppState::reads`; a change ctforge makes forgets
/// them) and asked once however many views wait for it. Rows of clusters the viewer cannot ask
/// now are left out.
pub async fn pending_on_page(
    state: &AppState,
    user: &CurrentUser,
    rows: &[crate::containers::listing::Row],
) -> BTreeMap<String, Vec<String>> {
    use crate::containers::shared_read::{PendingAsk, PendingLookup};
    use futures_util::StreamExt;
    let fresh =
        i64::try_from(state.config.dashboard.fresh_ms.saturating_mul(5)).unwrap_or(i64::MAX);
    let now = state.clock.now_ms();
    let mut out = BTreeMap::new();
    type ClusterClient = Option<(Arc<dyn PveApi>, i64)>;
    let mut clients: BTreeMap<String, ClusterClient> = BTreeMap::new();
    // (cluster id, vmid, row key, the call to wait for).
    let mut waits: Vec<(i64, u32, String, PendingAsk)> = Vec::new();
    for row in rows {
        if !row.live || row.status != crate::status::ContainerStatus::Running {
            continue;
        }
        let entry = match clients.get(row.cluster.as_str()) {
            Some(e) => e.clone(),
            None => {
                let e = match state.store.get_cluster_by_name(&row.cluster).await {
                    Ok(c) => client_for(state, user, &c).ok().map(|api| (api, c.id)),
                    Err(_) => None,
                };
                clients.insert(row.cluster.clone(), e.clone());
                e
            }
        };
        let Some((api, cluster_id)) = entry else {
            continue;
        };
        let (node, kind, vmid) = (row.node.clone(), row.kind, row.vmid);
        let ask = move || -> BoxFuture<'static, Option<Vec<String>>> {
            Box::pin(async move {
                let entries = guest_kind::pending(api.as_ref(), kind, &node, vmid)
                    .await
                    .ok()?;
                Some(
                    entries
                        .into_iter()
                        .filter(PendingEntry::is_pending)
                        .map(|e| e.key)
                        .collect(),
                )
            })
        };
        match state.reads.pending(cluster_id, vmid, now, fresh, ask) {
            PendingLookup::Known(keys) => {
                if !keys.is_empty() {
                    out.insert(row.key.clone(), keys);
                }
            }
            PendingLookup::Asking(call) => waits.push((cluster_id, vmid, row.key.clone(), call)),
        }
    }
    type Answer = (i64, u32, String, Option<Vec<String>>);
    // Boxed: a closure here would make the handler's future not general enough for axum.
    let mut asks: Vec<BoxFuture<'static, Answer>> = Vec::new();
    for (cluster_id, vmid, key, call) in waits {
        asks.push(Box::pin(async move { (cluster_id, vmid, key, call.await) }));
    }
    let answers: Vec<Answer> = futures_util::stream::iter(asks)
        .buffer_unordered(8)
        .collect()
        .await;
    for (cluster_id, vmid, key, keys) in answers {
        state
            .reads
            .keep_pending(cluster_id, vmid, now, fresh, keys.clone());
        // A guest Proxmox does not answer for now shows no badge, and is asked again next time.
        if let Some(keys) = keys.filter(|k| !k.is_empty()) {
            out.insert(key, keys);
        }
    }
    out
}

/// The keys waiting for the next start of each of `guests` (kind, VMID) on `node` (a few
/// asked at a time; a guest Proxmox does not answer for is left out).
pub async fn pending_keys(
    client: &dyn PveApi,
    node: &str,
    guests: &[(GuestKind, u32)],
) -> BTreeMap<u32, Vec<String>> {
    use futures_util::StreamExt;
    futures_util::stream::iter(guests.iter().copied())
        .map(|(kind, vmid)| async move {
            let keys = guest_kind::pending(client, kind, node, vmid)
                .await
                .map(|entries| {
                    entries
                        .into_iter()
                        .filter(PendingEntry::is_pending)
                        .map(|e| e.key)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            (vmid, keys)
        })
        .buffer_unordered(8)
        .filter(|(_, keys)| std::future::ready(!keys.is_empty()))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, parent: Option<&str>, t: i64) -> Snapshot {
        Snapshot {
            name: name.into(),
            description: String::new(),
            parent: parent.map(Into::into),
            snaptime: Some(t),
        }
    }

    #[test]
    fn the_tree_names_what_is_newer() {
        let list = vec![
            snap("a", None, 1),
            snap("b", Some("a"), 2),
            snap("c", Some("b"), 3),
            snap("x", Some("a"), 4),
            Snapshot {
                name: "current".into(),
                parent: Some("x".into()),
                ..Snapshot::default()
            },
        ];
        let t = snapshot_tree(&list, true);
        let order: Vec<(&str, usize)> = t
            .snapshots
            .iter()
            .map(|s| (s.name.as_str(), s.depth))
            .collect();
        assert_eq!(order, [("a", 0), ("b", 1), ("c", 2), ("x", 1)]);
        assert_eq!(t.snapshots[1].newer, ["c"]);
        assert!(t.snapshots[3].ancestor_of_current && !t.snapshots[1].ancestor_of_current);
    }

    #[test]
    fn privileges_follow_pve_container() {
        let p = privileges_for_keys(
            GuestKind::Lxc,
            ["memory", "net0", "tags", "mp3", "cores"].into_iter(),
        );
        let p: Vec<&str> = p.into_iter().collect();
        assert_eq!(
            p,
            [
                "VM.Config.CPU",
                "VM.Config.Disk",
                "VM.Config.Memory",
                "VM.Config.Network",
                "VM.Config.Options"
            ]
        );
    }
}
