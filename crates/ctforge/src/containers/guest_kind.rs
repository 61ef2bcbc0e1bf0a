//! The Proxmox calls of a guest's lifecycle and charts, by kind: one function per operation that
//! picks the `/nodes/{node}/lxc/…` or `/nodes/{node}/qemu/…` endpoint, so lifecycle, bulk
//! actions and the detail page run one code path for containers and virtual machines.
//!
//! [`locate`] finds a guest's node, kind and state: the record's node and kind first, else one
//! `/cluster/resources` lookup whose `type` says which kind it is (unmanaged guests, migrated
//! guests, records from before the kind was stored).

use ctforge_pve::types::{
    CloneParams, ConsolidationFn, DeleteOptions, LxcStatus, PendingEntry, QemuStatus, ResourceKind,
    RrdPoint, Snapshot, Timeframe, Upid,
};
use ctforge_pve::{PveApi, PveError};

use super::Target;
use crate::status::GuestKind;

/// A guest's current state as Proxmox answers `status/current` for its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum GuestState {
    /// A container's status.
    Lxc(LxcStatus),
    /// A VM's status.
    Qemu(QemuStatus),
}

impl GuestState {
    /// `running` or `stopped`.
    pub fn status(&self) -> &str {
        match self {
            Self::Lxc(s) => &s.status,
            Self::Qemu(s) => &s.status,
        }
    }

    /// True when running.
    pub fn is_running(&self) -> bool {
        self.status() == "running"
    }

    /// Proxmox's name of the guest.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Lxc(s) => s.name.as_deref(),
            Self::Qemu(s) => s.name.as_deref(),
        }
    }

    /// Its config lock (`backup`, `migrate`, …), if any.
    pub fn lock(&self) -> Option<&str> {
        match self {
            Self::Lxc(s) => s.lock.as_deref(),
            Self::Qemu(s) => s.lock.as_deref(),
        }
        .filter(|l| !l.is_empty())
    }

    /// Whether the QEMU guest agent is enabled (Proxmox's shutdown then asks the agent).
    pub fn agent(&self) -> bool {
        match self {
            Self::Lxc(_) => false,
            Self::Qemu(s) => s.agent.unwrap_or(false),
        }
    }
}

/// Where a guest is and what it is.
#[derive(Clone, Debug)]
pub struct Located {
    /// The node holding it.
    pub node: String,
    /// Container or VM.
    pub kind: GuestKind,
    /// Its current state.
    pub state: GuestState,
}

/// `GET …/{lxc|qemu}/{vmid}/status/current`.
pub async fn status(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<GuestState, PveError> {
    Ok(match kind {
        GuestKind::Lxc => GuestState::Lxc(client.lxc_status_current(node, vmid).await?),
        GuestKind::Qemu => GuestState::Qemu(client.qemu_status_current(node, vmid).await?),
    })
}

/// Finds the guest's node, kind and state: the record's node first (one call), else one
/// `/cluster/resources` lookup (unmanaged or migrated guests, or a record of the other kind).
pub async fn locate(client: &dyn PveApi, target: &Target) -> Result<Located, PveError> {
    if let Some(record) = &target.record {
        let kind = super::record_kind(record);
        match status(client, kind, &record.node, target.vmid).await {
            Ok(state) => {
                return Ok(Located {
                    node: record.node.clone(),
                    kind,
                    state,
                });
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let resources = client.cluster_resources(Some(ResourceKind::Vm)).await?;
    let (node, kind) = resources
        .into_iter()
        .filter(|r| r.vmid == Some(target.vmid))
        .find_map(|r| Some((r.node?, GuestKind::of_resource(&r.kind)?)))
        .ok_or_else(|| PveError::NotFound {
            message: format!("guest {} not found in the cluster", target.vmid),
        })?;
    let state = status(client, kind, &node, target.vmid).await?;
    Ok(Located { node, kind, state })
}

/// Whether Proxmox has no guest `vmid` of either kind on any node (asked with the service
/// token, which sees every guest): `Ok(true)` only when every node answers 404 for both.
pub async fn absent_everywhere(service: &dyn PveApi, vmid: u32) -> Result<bool, PveError> {
    for node in service.nodes().await? {
        for kind in [GuestKind::Lxc, GuestKind::Qemu] {
            match status(service, kind, &node.node, vmid).await {
                Ok(_) => return Ok(false),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(true)
}

/// `POST …/status/start`.
pub async fn start(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_start(node, vmid).await,
        GuestKind::Qemu => client.qemu_start(node, vmid).await,
    }
}

/// `POST …/status/stop`.
pub async fn stop(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_stop(node, vmid).await,
        GuestKind::Qemu => client.qemu_stop(node, vmid).await,
    }
}

/// `POST …/status/shutdown` (for a VM: the guest agent when enabled, else ACPI).
pub async fn shutdown(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    timeout: Option<u32>,
    force_stop: bool,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_shutdown(node, vmid, timeout, force_stop).await,
        GuestKind::Qemu => client.qemu_shutdown(node, vmid, timeout, force_stop).await,
    }
}

/// `POST …/status/reboot`.
pub async fn reboot(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    timeout: Option<u32>,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_reboot(node, vmid, timeout).await,
        GuestKind::Qemu => client.qemu_reboot(node, vmid, timeout).await,
    }
}

/// `DELETE …/{vmid}` with purge and unreferenced disks (the guest must be stopped: lxc is not
/// forced, and qemu has no force).
pub async fn destroy(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => {
            let opts = DeleteOptions {
                purge: true,
                force: false,
                destroy_unreferenced_disks: true,
            };
            client.lxc_delete(node, vmid, opts).await
        }
        GuestKind::Qemu => client.qemu_delete(node, vmid, true, true).await,
    }
}

/// `GET …/rrddata` (the detail page's charts).
pub async fn rrddata(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    timeframe: Timeframe,
    cf: Option<ConsolidationFn>,
) -> Result<Vec<RrdPoint>, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_rrddata(node, vmid, timeframe, cf).await,
        GuestKind::Qemu => client.qemu_rrddata(node, vmid, timeframe, cf).await,
    }
}

// ---- day-two calls (`containers::daytwo`): the same operation under `lxc/` or `qemu/` ----

/// `GET …/pending`: each key's current and pending value.
pub async fn pending(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<Vec<PendingEntry>, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_pending(node, vmid).await,
        GuestKind::Qemu => client.qemu_pending(node, vmid).await,
    }
}

/// `PUT …/resize` (grow only): a `resize` task.
pub async fn resize(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    disk: &str,
    size: &str,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_resize(node, vmid, disk, size, None).await,
        GuestKind::Qemu => client.qemu_resize(node, vmid, disk, size).await,
    }
}

/// `POST …/clone`: a `vzclone` or `qmclone` task (`hostname` is a VM's `name`).
pub async fn clone(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    params: &CloneParams,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.lxc_clone(node, vmid, params).await,
        GuestKind::Qemu => client.qemu_clone(node, vmid, params).await,
    }
}

/// `GET …/snapshot`: the snapshots and `current`.
pub async fn snapshot_list(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
) -> Result<Vec<Snapshot>, PveError> {
    match kind {
        GuestKind::Lxc => client.snapshot_list(node, vmid).await,
        GuestKind::Qemu => client.qemu_snapshot_list(node, vmid).await,
    }
}

/// `POST …/snapshot`: a `vzsnapshot` or `qmsnapshot` task.
pub async fn snapshot_create(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    name: &str,
    description: Option<&str>,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.snapshot_create(node, vmid, name, description).await,
        GuestKind::Qemu => {
            client
                .qemu_snapshot_create(node, vmid, name, description)
                .await
        }
    }
}

/// `POST …/snapshot/{name}/rollback`: a `vzrollback` or `qmrollback` task.
pub async fn snapshot_rollback(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    name: &str,
    start: bool,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.snapshot_rollback(node, vmid, name, start).await,
        GuestKind::Qemu => client.qemu_snapshot_rollback(node, vmid, name, start).await,
    }
}

/// `DELETE …/snapshot/{name}`: a `vzdelsnapshot` or `qmdelsnapshot` task.
pub async fn snapshot_delete(
    client: &dyn PveApi,
    kind: GuestKind,
    node: &str,
    vmid: u32,
    name: &str,
) -> Result<Upid, PveError> {
    match kind {
        GuestKind::Lxc => client.snapshot_delete(node, vmid, name, false).await,
        GuestKind::Qemu => client.qemu_snapshot_delete(node, vmid, name, false).await,
    }
}
