//! Lifecycle actions (start, stop, shutdown, reboot, delete) with one action at a time per
//! guest, for containers and virtual machines alike: the kind found by
//! [`guest_kind::locate`] picks the lxc or qemu endpoints (a VM's shutdown goes through its
//! guest agent when enabled, else ACPI — Proxmox decides — then a stop after the timeout).
//!
//! Every action takes the lock `ct:<cluster>:<vmid>` ([`crate::locks`]: the database lease, or
//! Redis when configured) with a random owner token and an expiry (a crashed process cannot
//! block a container forever) and releases it with compare-and-delete. Under the lock the
//! container's state is read first (start on a running CT is a clear 409, not a Proxmox 500),
//! the Proxmox task is awaited, and the result becomes container events (managed CTs) and an
//! audit entry (all CTs).
//!
//! [`execute`] is the one implementation; [`run`] (an HTTP request) and the bulk job
//! ([`super::bulk`]) both call it. Session users act with their own ticket, so Proxmox's
//! permission errors are relayed verbatim as 403; API-token users and background jobs act with
//! the cluster's token ([`Authority::ServiceToken`]) after Proxmox has confirmed that the user
//! holds the action's privilege on `/vms/<vmid>`.

use std::str::FromStr;
use std::time::Duration;

use ctforge_pve::types::{LxcStatus, ResourceKind, Upid};
use ctforge_pve::{PveApi, PveError, TaskExit, TaskProgress, WaitOptions};
use serde::Serialize;
use serde_json::json;

use super::guest_kind::{self, Located};
use super::{Target, client_for, pve_error};
use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::locks::Locks;
use crate::state::AppState;
use crate::status::GuestKind;
use crate::storage::Store;

/// Default graceful-shutdown timeout in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u32 = 60;
/// Longest accepted shutdown timeout in seconds.
pub const MAX_SHUTDOWN_TIMEOUT: u32 = 3600;

/// A lifecycle action.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Start a stopped CT.
    Start,
    /// Stop immediately.
    Stop,
    /// Shut down gracefully, then force stop after the timeout.
    Shutdown,
    /// Reboot.
    Reboot,
    /// Stop if running, destroy with purge, remove the record.
    Delete,
}

impl Action {
    /// The lowercase name (`start`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Shutdown => "shutdown",
            Action::Reboot => "reboot",
            Action::Delete => "delete",
        }
    }

    /// The button label (`Start`, …).
    pub fn label(self) -> &'static str {
        match self {
            Action::Start => "Start",
            Action::Stop => "Stop",
            Action::Shutdown => "Shut down",
            Action::Reboot => "Reboot",
            Action::Delete => "Delete",
        }
    }

    /// The Proxmox privilege the action needs on `/vms/<vmid>`.
    pub fn privilege(self) -> &'static str {
        match self {
            Action::Delete => "VM.Allocate",
            _ => "VM.PowerMgmt",
        }
    }

    /// Whether the action loses state and asks for confirmation.
    pub fn destructive(self) -> bool {
        !matches!(self, Action::Start)
    }
}

impl FromStr for Action {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(Action::Start),
            "stop" => Ok(Action::Stop),
            "shutdown" => Ok(Action::Shutdown),
            "reboot" => Ok(Action::Reboot),
            "delete" => Ok(Action::Delete),
            other => Err(AppError::NotFound(format!(
                "action {other:?} (use start, stop, shutdown, reboot or delete)"
            ))),
        }
    }
}

/// Options of an action.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Graceful shutdown timeout in seconds (shutdown only).
    pub timeout: u32,
    /// Delete only ctforge's record (delete only; for when Proxmox is unreachable).
    pub record_only: bool,
    /// Act only on a guest of this kind (`/api/v1/containers` acts on containers only); a
    /// guest of the other kind is "not found" there. `None`: either kind.
    pub only: Option<GuestKind>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            record_only: false,
            only: None,
        }
    }
}

/// One thing that happened during an action. Named `ActionStep` in the OpenAPI document:
/// the plan's `Step` is another schema, and one name for both made a delete's answer violate
/// its own documented schema.
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(rename = "ActionStep")]
pub struct Step {
    /// Event kind (`started`, `stopped`, `shutdown`, `shutdown_timeout`, `force_stopped`,
    /// `rebooted`, `deleted`, `record_deleted`).
    pub kind: String,
    /// Human-readable text.
    pub message: String,
    /// The Proxmox task, if one ran.
    pub upid: Option<String>,
}

impl Step {
    fn new(kind: &str, message: String, upid: Option<&Upid>) -> Self {
        Self {
            kind: kind.to_owned(),
            message,
            upid: upid.map(ToString::to_string),
        }
    }
}

/// The result of a successful action.
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Outcome {
    /// Always true.
    pub ok: bool,
    /// What ran.
    pub action: Action,
    /// Cluster name.
    pub cluster: String,
    /// VMID.
    pub vmid: u32,
    /// `lxc` (container) or `qemu` (virtual machine).
    #[serde(rename = "type", default)]
    pub kind: GuestKind,
    /// ctforge record id, if managed.
    pub id: Option<i64>,
    /// Hostname: Proxmox's name of the CT, else the record's.
    pub hostname: String,
    /// Node it ran on (empty for record-only deletes).
    pub node: String,
    /// State afterwards: `running`, `stopped` or `deleted`.
    pub status: String,
    /// Whether a shutdown had to be forced.
    pub forced: bool,
    /// What happened, in order.
    pub steps: Vec<Step>,
    /// Something the user should know (record-only delete).
    pub warning: Option<String>,
}

struct Failure {
    error: AppError,
    steps: Vec<Step>,
    /// False when nothing was attempted (state check refused).
    attempted: bool,
}

impl Failure {
    fn refused(error: AppError) -> Self {
        Self {
            error,
            steps: Vec::new(),
            attempted: false,
        }
    }
}

/// How the Proxmox client of an action is authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// The client carries the user's own ticket: Proxmox checks its ACL, and its 403 is
    /// relayed.
    OwnTicket,
    /// The client carries the cluster's API token (API-token users, background jobs): ctforge
    /// first asks Proxmox whether the user holds [`Action::privilege`] on `/vms/<vmid>`.
    ServiceToken,
}

/// Who an action runs for: what the audit log and the container events name.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    /// Proxmox user id (`alice@pve`).
    pub username: &'a str,
    /// Client address for the audit log.
    pub remote: &'a str,
    /// How the client acting for them is authorised.
    pub authority: Authority,
    /// The bulk job the action belongs to, if any (named in the audit entry).
    pub job: Option<i64>,
}

/// Runs `action` on `target` as `user`; `remote` is the client address for the audit log.
pub async fn run(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    target: &Target,
    action: Action,
    opts: Options,
) -> Result<Outcome, AppError> {
    if action == Action::Delete && opts.record_only {
        return delete_record_only(state, user, remote, target).await;
    }
    let client = client_for(state, user, &target.cluster)?;
    // `client_for` hands out the cluster's token only to API-token users.
    let authority = if user.ticket.is_some() {
        Authority::OwnTicket
    } else {
        Authority::ServiceToken
    };
    let actor = Actor {
        username: &user.username,
        remote,
        authority,
        job: None,
    };
    // Absence from Proxmox is confirmed with the service token (a user's own listing hides
    // guests they may not see).
    let service = state.pve.service(&target.cluster).ok();
    let outcome = execute(
        state.store.as_ref(),
        state.locks.as_ref(),
        client.as_ref(),
        service.as_deref(),
        &actor,
        target,
        action,
        opts,
    )
    .await;
    // The next view shows the action's effect, not the shared read from before it.
    state.reads.invalidate(target.cluster.id);
    outcome
}

/// Whether `cluster` cannot be reached right now, asked afresh with its service token: the
/// down map alone never turns a Delete into a record-only delete.
pub async fn unreachable_now(state: &AppState, cluster: &crate::storage::model::Cluster) -> bool {
    match state.pve.service(cluster) {
        Ok(service) => match service.version().await {
            Ok(_) => false,
            Err(e) => super::is_unreachable(&e),
        },
        Err(_) => false,
    }
}

/// The lifecycle action itself, for every caller: permission check on `/vms/<vmid>` (asked of
/// Proxmox), the container's lock, the state check, the Proxmox task, container events and the
/// audit entry.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    store: &dyn Store,
    locks: &dyn Locks,
    client: &dyn PveApi,
    service: Option<&dyn PveApi>,
    actor: &Actor<'_>,
    target: &Target,
    action: Action,
    opts: Options,
) -> Result<Outcome, AppError> {
    // The privilege first, on the exact guest, also with the user's own ticket: a refusal is
    // a refusal whatever state the guest is in.
    if let Err(error) = authorize(client, actor, target, action).await {
        let result = Err(Failure::refused(error));
        record(store, actor, target, action, &result).await?;
        return result.map_err(|f| f.error);
    }
    let lock = target.lock_name();
    let owner = uuid::Uuid::new_v4().to_string();
    let ttl_ms = (i64::from(opts.timeout.min(MAX_SHUTDOWN_TIMEOUT)) + 600) * 1000;
    if !locks.try_lock(&lock, &owner, ttl_ms).await? {
        return Err(AppError::Conflict(format!(
            "another action is running on CT {}; wait for it to finish and retry",
            target.vmid
        )));
    }
    let guard = match actor.authority {
        Authority::ServiceToken => Some(crate::authz::Rights::on_behalf(
            client,
            actor.username,
            &target.cluster.name,
        )),
        Authority::OwnTicket => None,
    };
    let ctx = Perform {
        client,
        service,
        username: actor.username,
        guard: guard.as_ref(),
    };
    let result = perform(&ctx, target, action, opts).await;
    match locks.unlock(&lock, &owner).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(lock, "lifecycle lock expired before the action finished"),
        Err(e) => tracing::warn!(lock, error = %e, "cannot release lifecycle lock"),
    }
    let result = match result {
        Ok(mut outcome) => {
            if action == Action::Delete
                && let Some(record) = &target.record
            {
                match store.delete_container(record.id).await {
                    Ok(()) => outcome.steps.push(Step::new(
                        "record_deleted",
                        "removed ctforge's record".to_owned(),
                        None,
                    )),
                    Err(e) => {
                        tracing::error!(error = %e, id = record.id, "cannot delete container record");
                        outcome.warning = Some(
                            "the CT was deleted but ctforge's record could not be removed; delete it again with ?record_only=true".to_owned(),
                        );
                    }
                }
            }
            Ok(outcome)
        }
        Err(failure) => Err(failure),
    };
    record(store, actor, target, action, &result).await?;
    result.map_err(|f| f.error)
}

/// Asks Proxmox (with the service token) whether `username` may run `action` on the CT: the
/// privilege of the action on exactly `/vms/<vmid>` ([`crate::authz::lifecycle`]).
async fn authorize(
    client: &dyn PveApi,
    actor: &Actor<'_>,
    target: &Target,
    action: Action,
) -> Result<(), AppError> {
    let rights = match actor.authority {
        Authority::OwnTicket => {
            crate::authz::Rights::own(client, actor.username, &target.cluster.name)
        }
        Authority::ServiceToken => {
            crate::authz::Rights::on_behalf(client, actor.username, &target.cluster.name)
        }
    };
    crate::authz::lifecycle(&rights, target.vmid, action, false).await
}

async fn record(
    store: &dyn Store,
    actor: &Actor<'_>,
    target: &Target,
    action: Action,
    result: &Result<Outcome, Failure>,
) -> Result<(), AppError> {
    let (steps, outcome, error) = match result {
        Ok(o) => (&o.steps, "ok", None),
        Err(f) => {
            let outcome = match f.error {
                AppError::Forbidden(_) => "denied",
                AppError::Conflict(_) if !f.attempted => "refused",
                _ => "error",
            };
            (&f.steps, outcome, Some(f.error.to_string()))
        }
    };
    let record_alive = !(action == Action::Delete && result.is_ok());
    if let Some(rec) = target.record.as_ref().filter(|_| record_alive) {
        let mut events: Vec<(String, String, String)> = steps
            .iter()
            .map(|s| {
                (
                    s.kind.clone(),
                    s.message.clone(),
                    json!({ "upid": s.upid }).to_string(),
                )
            })
            .collect();
        if let Some(error) = &error
            && matches!(result, Err(f) if f.attempted || matches!(f.error, AppError::Forbidden(_)))
        {
            events.push((
                format!("{}_failed", action.as_str()),
                format!("{} failed: {error}", action.as_str()),
                json!({ "error": error }).to_string(),
            ));
        }
        for (kind, message, data) in events {
            if let Err(e) = store
                .add_container_event(rec.id, &kind, &message, actor.username, &data)
                .await
            {
                tracing::warn!(error = %e, "cannot record container event");
            }
        }
    }
    let kind = match result {
        Ok(o) => Some(o.kind),
        Err(_) => None,
    };
    let mut detail = json!({
        "vmid": target.vmid,
        "type": kind,
        "cluster": target.cluster.name,
        "id": target.record.as_ref().map(|r| r.id),
        "steps": steps,
        "error": error,
    });
    if let Some(job) = actor.job {
        detail["job"] = json!(job);
    }
    let entry = Entry::new(
        actor.username,
        format!("ct.{}", action.as_str()),
        target.audit_target(),
        actor.remote,
    )
    .outcome(outcome)
    .detail(detail);
    audit::record(store, entry).await?;
    Ok(())
}

async fn delete_record_only(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    target: &Target,
) -> Result<Outcome, AppError> {
    let Some(record) = &target.record else {
        return Err(AppError::invalid(format!(
            "CT {} has no ctforge record; record_only applies to managed containers",
            target.vmid
        )));
    };
    crate::authz::record_delete(state, user, &target.cluster, target.vmid).await?;
    state.store.delete_container(record.id).await?;
    let warning = format!(
        "only ctforge's record was removed; CT {} may still exist in Proxmox on node {} — delete it there once the cluster is reachable",
        target.vmid, record.node
    );
    let outcome = Outcome {
        ok: true,
        action: Action::Delete,
        cluster: target.cluster.name.clone(),
        vmid: target.vmid,
        kind: super::record_kind(record),
        id: Some(record.id),
        hostname: target.display_name(),
        node: String::new(),
        status: "deleted".to_owned(),
        forced: false,
        steps: vec![Step::new("record_deleted", warning.clone(), None)],
        warning: Some(warning),
    };
    let entry = Entry::new(&user.username, "ct.delete", target.audit_target(), remote).detail(
        json!({ "vmid": target.vmid, "cluster": target.cluster.name, "id": record.id, "record_only": true }),
    );
    audit::record(state.store.as_ref(), entry).await?;
    Ok(outcome)
}

/// The outcome of deleting a managed CT that Proxmox no longer has (`execute` then removes the
/// record and says so).
fn gone_from_proxmox(target: &Target) -> Outcome {
    let text = format!(
        "CT {} no longer exists in Proxmox; only ctforge's record is removed",
        target.vmid
    );
    Outcome {
        ok: true,
        action: Action::Delete,
        cluster: target.cluster.name.clone(),
        vmid: target.vmid,
        kind: target
            .record
            .as_ref()
            .map_or(GuestKind::Lxc, super::record_kind),
        id: target.record.as_ref().map(|r| r.id),
        hostname: target.display_name(),
        node: target
            .record
            .as_ref()
            .map(|r| r.node.clone())
            .unwrap_or_default(),
        status: "deleted".to_owned(),
        forced: false,
        steps: vec![Step::new("gone", text.clone(), None)],
        warning: Some(text),
    }
}

/// Finds the node of the CT and its current status: the record's node first, else one
/// `/cluster/resources` lookup (unmanaged or migrated CTs).
pub async fn locate(client: &dyn PveApi, target: &Target) -> Result<(String, LxcStatus), PveError> {
    if let Some(record) = &target.record {
        match client.lxc_status_current(&record.node, target.vmid).await {
            Ok(status) => return Ok((record.node.clone(), status)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let resources = client.cluster_resources(Some(ResourceKind::Vm)).await?;
    let node = resources
        .into_iter()
        .find(|r| r.kind == "lxc" && r.vmid == Some(target.vmid))
        .and_then(|r| r.node)
        .ok_or_else(|| PveError::NotFound {
            message: format!("CT {} not found in the cluster", target.vmid),
        })?;
    let status = client.lxc_status_current(&node, target.vmid).await?;
    Ok((node, status))
}

async fn await_task(
    client: &dyn PveApi,
    node: &str,
    upid: &Upid,
    timeout: Duration,
) -> Result<TaskExit, PveError> {
    let opts = WaitOptions {
        timeout,
        poll_interval: Duration::from_millis(200),
        log_page: 500,
    };
    let mut ignore = |_: TaskProgress| {};
    ctforge_pve::wait_task(client, node, upid, opts, &mut ignore).await
}

async fn run_task(
    client: &dyn PveApi,
    node: &str,
    upid: Upid,
    timeout: Duration,
) -> Result<Upid, PveError> {
    await_task(client, node, &upid, timeout)
        .await?
        .into_result(&upid)?;
    Ok(upid)
}

const TASK_TIMEOUT: Duration = Duration::from_secs(300);

/// What [`perform`] acts with.
struct Perform<'a> {
    /// The client of the action (own ticket or service token).
    client: &'a dyn PveApi,
    /// The cluster's service token, to confirm a guest's absence.
    service: Option<&'a dyn PveApi>,
    /// Who acts.
    username: &'a str,
    /// The submitter's rights when the service token acts.
    guard: Option<&'a crate::authz::Rights<'a>>,
}

async fn perform(
    ctx: &Perform<'_>,
    target: &Target,
    action: Action,
    opts: Options,
) -> Result<Outcome, Failure> {
    let client = ctx.client;
    let guard = ctx.guard;
    let vmid = target.vmid;
    let Located {
        node,
        kind,
        state: status,
    } = match guest_kind::locate(client, target).await {
        Ok(found) => found,
        // Nothing left to delete in Proxmox — once the service token confirms it on every
        // node — means removing ctforge's record, which needs VM.Allocate on the guest.
        Err(e) if action == Action::Delete && target.record.is_some() && e.is_not_found() => {
            let Some(service) = ctx.service else {
                return Err(Failure::refused(AppError::Unavailable(format!(
                    "cannot confirm that CT {vmid} is gone from Proxmox: cluster {} has no API token",
                    target.cluster.name
                ))));
            };
            return match guest_kind::absent_everywhere(service, vmid).await {
                Ok(true) => {
                    let rights = match ctx.guard {
                        Some(_) => crate::authz::Rights::on_behalf(
                            client,
                            ctx.username,
                            &target.cluster.name,
                        ),
                        None => {
                            crate::authz::Rights::own(client, ctx.username, &target.cluster.name)
                        }
                    };
                    rights
                        .require(&crate::authz::vm_path(vmid), crate::authz::RECORD_DELETE)
                        .await
                        .map_err(Failure::refused)?;
                    Ok(gone_from_proxmox(target))
                }
                Ok(false) => Err(Failure::refused(pve_error(e, vmid))),
                Err(e) => Err(Failure::refused(pve_error(e, vmid))),
            };
        }
        Err(e) => return Err(Failure::refused(pve_error(e, vmid))),
    };
    if opts.only.is_some_and(|only| only != kind) {
        return Err(Failure::refused(AppError::NotFound(format!(
            "CT {vmid} in Proxmox (guest {vmid} is a {}; use /api/v1/guests)",
            if kind == GuestKind::Qemu {
                "VM"
            } else {
                "container"
            }
        ))));
    }
    let running = status.is_running();
    // `CT 105` or `VM 205` in every message.
    let ct = kind.short();
    let refuse = |text: String| Err(Failure::refused(AppError::Conflict(text)));
    match action {
        Action::Start if running => {
            return refuse(format!(
                "{ct} {vmid} is already running; stop it first or use reboot"
            ));
        }
        Action::Stop | Action::Shutdown | Action::Reboot if !running => {
            return refuse(format!("{ct} {vmid} is not running; start it first"));
        }
        _ => {}
    }
    if let Some(lock) = status.lock() {
        return refuse(format!(
            "{ct} {vmid} is locked in proxmox ({lock}); wait for that operation to finish and retry"
        ));
    }
    let mut steps = Vec::new();
    let mut forced = false;
    let fail = |e: PveError, steps: &mut Vec<Step>| Failure {
        error: pve_error(e, vmid),
        steps: std::mem::take(steps),
        attempted: true,
    };
    let final_status = match action {
        Action::Start => {
            let upid = guest_kind::start(client, kind, &node, vmid)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            let upid = run_task(client, &node, upid, TASK_TIMEOUT)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            steps.push(Step::new(
                "started",
                format!("started {ct} {vmid}"),
                Some(&upid),
            ));
            "running"
        }
        Action::Stop => {
            let upid = stop(client, kind, &node, vmid)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            steps.push(Step::new(
                "stopped",
                format!("stopped {ct} {vmid}"),
                Some(&upid),
            ));
            "stopped"
        }
        Action::Reboot => {
            let upid = guest_kind::reboot(client, kind, &node, vmid, None)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            let upid = run_task(client, &node, upid, TASK_TIMEOUT)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            steps.push(Step::new(
                "rebooted",
                format!("rebooted {ct} {vmid}"),
                Some(&upid),
            ));
            "running"
        }
        Action::Shutdown => {
            let timeout = opts.timeout.min(MAX_SHUTDOWN_TIMEOUT);
            let upid = guest_kind::shutdown(client, kind, &node, vmid, Some(timeout), false)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            let wait = Duration::from_secs(u64::from(timeout) + 30);
            let why = match await_task(client, &node, &upid, wait).await {
                Ok(TaskExit::Error(text)) => Some(text),
                Ok(_) => None,
                Err(PveError::TaskTimeout { .. }) => Some("task still running".to_owned()),
                Err(e) => return Err(fail(e, &mut steps)),
            };
            match why {
                None => steps.push(Step::new(
                    "shutdown",
                    match kind {
                        GuestKind::Qemu if status.agent() => {
                            format!("shut down VM {vmid} gracefully (guest agent)")
                        }
                        GuestKind::Qemu => format!("shut down VM {vmid} gracefully (ACPI)"),
                        GuestKind::Lxc => format!("shut down CT {vmid} gracefully"),
                    },
                    Some(&upid),
                )),
                Some(why) => {
                    steps.push(Step::new(
                        "shutdown_timeout",
                        format!(
                            "{ct} {vmid} did not shut down within {timeout} s ({why}); forcing stop"
                        ),
                        Some(&upid),
                    ));
                    let upid = stop(client, kind, &node, vmid)
                        .await
                        .map_err(|e| fail(e, &mut steps))?;
                    steps.push(Step::new(
                        "force_stopped",
                        format!("force-stopped {ct} {vmid} after the shutdown timeout"),
                        Some(&upid),
                    ));
                    forced = true;
                }
            }
            "stopped"
        }
        Action::Delete => {
            if running {
                // Proxmox checks the stop too: VM.PowerMgmt besides VM.Allocate.
                if let Some(rights) = guard {
                    crate::authz::lifecycle(rights, vmid, action, true)
                        .await
                        .map_err(Failure::refused)?;
                }
                let upid = stop(client, kind, &node, vmid)
                    .await
                    .map_err(|e| fail(e, &mut steps))?;
                steps.push(Step::new(
                    "stopped",
                    format!("stopped {ct} {vmid} before deleting it"),
                    Some(&upid),
                ));
            }
            let upid = guest_kind::destroy(client, kind, &node, vmid)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            let upid = run_task(client, &node, upid, TASK_TIMEOUT)
                .await
                .map_err(|e| fail(e, &mut steps))?;
            steps.push(Step::new(
                "deleted",
                format!("destroyed {ct} {vmid} (purged)"),
                Some(&upid),
            ));
            "deleted"
        }
    };
    let hostname = status
        .name()
        .filter(|n| !n.is_empty())
        .map_or_else(|| target.display_name(), str::to_owned);
    Ok(Outcome {
        ok: true,
        action,
        cluster: target.cluster.name.clone(),
        vmid,
        kind,
        id: target.record.as_ref().map(|r| r.id),
        hostname,
        node,
        status: final_status.to_owned(),
        forced,
        steps,
        warning: None,
    })
}

async fn stop(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<Upid, PveError> {
    let upid = guest_kind::stop(client, kind, node, vmid).await?;
    run_task(client, node, upid, TASK_TIMEOUT).await
}
