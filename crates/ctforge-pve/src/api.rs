//! The [`PveApi`] trait: one async method per Proxmox VE endpoint ctforge
//! uses. [`crate::PveClient`] implements it over HTTP; the application holds
//! an `Arc<dyn PveApi>` and tests can substitute fakes.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{
    AplInfo, CloneParams, ClusterResource, ConsolidationFn, DeleteOptions, Domain, LxcConfig,
    LxcConfigUpdate, LxcCreateParams, LxcInterface, LxcStatus, NetworkIface, NodeInfo, NodeStatus,
    PendingEntry, Pool, QemuStatus, ResourceKind, RrdPoint, Snapshot, Storage, StorageContent,
    TaskLog, TaskStatus, Timeframe, Upid, Version,
};

/// `GET /access/permissions`: ACL path → privilege → propagate flag (`0`/`1`).
pub type Permissions =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, serde_json::Value>>;

/// The Proxmox VE API surface used by ctforge.
///
/// Methods returning [`Upid`] start an asynchronous task; follow it with
/// [`crate::wait_task`]. Errors are [`crate::PveError`]s.
#[async_trait]
pub trait PveApi: Send + Sync {
    /// `GET /version`.
    async fn version(&self) -> Result<Version>;
    /// `GET /access/domains` — realms for the login box (no auth needed).
    async fn access_domains(&self) -> Result<Vec<Domain>>;
    /// `GET /access/permissions[?userid=][&path=]`: path → privilege → propagate flag, as
    /// Proxmox computes it (inheritance, pools, groups); asked for another user, it needs
    /// `Sys.Audit` on `/access`.
    async fn access_permissions(
        &self,
        userid: Option<&str>,
        path: Option<&str>,
    ) -> Result<Permissions>;
    /// `GET /nodes`.
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;
    /// `GET /nodes/{node}/status`.
    async fn node_status(&self, node: &str) -> Result<NodeStatus>;
    /// `GET /nodes/{node}/rrddata`.
    async fn node_rrddata(
        &self,
        node: &str,
        timeframe: Timeframe,
        cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>>;
    /// `GET /cluster/resources[?type=]`.
    async fn cluster_resources(&self, kind: Option<ResourceKind>) -> Result<Vec<ClusterResource>>;
    /// `GET /cluster/status`: the cluster and its nodes with their addresses.
    async fn cluster_status(&self) -> Result<Vec<crate::types::ClusterStatusEntry>>;
    /// `POST /nodes/{node}/lxc/{vmid}/migrate` — starts a `vzmigrate` task (offline, or
    /// restart mode).
    async fn lxc_migrate(
        &self,
        node: &str,
        vmid: u32,
        params: &crate::types::MigrateParams,
    ) -> Result<Upid>;
    /// `GET /cluster/nextid[?vmid=]` — next free VMID, or assert `vmid` is free
    /// (a used id gives [`crate::PveError::Parameter`]).
    async fn cluster_nextid(&self, vmid: Option<u32>) -> Result<u32>;
    /// `GET /nodes/{node}/lxc`.
    async fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>>;
    /// `POST /nodes/{node}/lxc` — starts a `vzcreate` task. Not retried on
    /// ambiguous failures; see [`crate::create_lxc_checked`].
    async fn lxc_create(&self, node: &str, params: &LxcCreateParams) -> Result<Upid>;
    /// `GET /nodes/{node}/lxc/{vmid}/config` (`current`: ignore pending changes).
    async fn lxc_config_get(&self, node: &str, vmid: u32, current: bool) -> Result<LxcConfig>;
    /// `PUT /nodes/{node}/lxc/{vmid}/config`.
    async fn lxc_config_put(&self, node: &str, vmid: u32, update: &LxcConfigUpdate) -> Result<()>;
    /// `GET /nodes/{node}/lxc/{vmid}/pending`: each key's current and pending value.
    async fn lxc_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>>;
    /// `PUT …/resize` — starts a `resize` task (grow only).
    async fn lxc_resize(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
        digest: Option<&str>,
    ) -> Result<Upid>;
    /// `POST …/clone` — starts a `vzclone` task on the source.
    async fn lxc_clone(&self, node: &str, vmid: u32, params: &CloneParams) -> Result<Upid>;
    /// `POST …/template` — converts a stopped CT (answers `null`; the `vztemplate` task runs
    /// on; the CT keeps `lock` until it ends).
    async fn lxc_template(&self, node: &str, vmid: u32) -> Result<()>;
    /// `GET /nodes/{node}/lxc/{vmid}/status/current`.
    async fn lxc_status_current(&self, node: &str, vmid: u32) -> Result<LxcStatus>;
    /// `POST …/status/start`.
    async fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid>;
    /// `POST …/status/stop`.
    async fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid>;
    /// `POST …/status/shutdown` (`timeout` seconds, then `force_stop`).
    async fn lxc_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
        force_stop: bool,
    ) -> Result<Upid>;
    /// `POST …/status/reboot`.
    async fn lxc_reboot(&self, node: &str, vmid: u32, timeout: Option<u32>) -> Result<Upid>;
    /// `DELETE /nodes/{node}/lxc/{vmid}`.
    async fn lxc_delete(&self, node: &str, vmid: u32, opts: DeleteOptions) -> Result<Upid>;
    /// `GET …/rrddata`.
    async fn lxc_rrddata(
        &self,
        node: &str,
        vmid: u32,
        timeframe: Timeframe,
        cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>>;
    /// `GET …/interfaces` — empty for a stopped CT.
    async fn lxc_interfaces(&self, node: &str, vmid: u32) -> Result<Vec<LxcInterface>>;
    /// `GET …/snapshot`.
    async fn snapshot_list(&self, node: &str, vmid: u32) -> Result<Vec<Snapshot>>;
    /// `POST …/snapshot`.
    async fn snapshot_create(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        description: Option<&str>,
    ) -> Result<Upid>;
    /// `POST …/snapshot/{snapname}/rollback`.
    async fn snapshot_rollback(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        start: bool,
    ) -> Result<Upid>;
    /// `DELETE …/snapshot/{snapname}`.
    async fn snapshot_delete(&self, node: &str, vmid: u32, name: &str, force: bool)
    -> Result<Upid>;
    /// `GET /nodes/{node}/tasks/{upid}/status`.
    async fn task_status(&self, node: &str, upid: &Upid) -> Result<TaskStatus>;
    /// `GET /nodes/{node}/tasks/{upid}/log?start=&limit=`.
    async fn task_log(&self, node: &str, upid: &Upid, start: u64, limit: u64) -> Result<TaskLog>;
    /// `GET /nodes/{node}/storage[?content=]`.
    async fn node_storage(&self, node: &str, content: Option<&str>) -> Result<Vec<Storage>>;
    /// `GET /nodes/{node}/storage/{storage}/content[?content=]`.
    async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageContent>>;
    /// `GET /nodes/{node}/aplinfo`.
    async fn aplinfo(&self, node: &str) -> Result<Vec<AplInfo>>;
    /// `POST /nodes/{node}/aplinfo` — starts a `download` task.
    async fn aplinfo_download(&self, node: &str, storage: &str, template: &str) -> Result<Upid>;
    /// `GET /nodes/{node}/network[?type=]`.
    async fn node_network(&self, node: &str, kind: Option<&str>) -> Result<Vec<NetworkIface>>;
    /// `GET /pools`.
    async fn pools(&self) -> Result<Vec<Pool>>;

    // ---- qemu: listing and lifecycle of VMs ----

    /// `GET /nodes/{node}/qemu`.
    async fn qemu_list(&self, node: &str) -> Result<Vec<QemuStatus>>;
    /// `GET /nodes/{node}/qemu/{vmid}/status/current`.
    async fn qemu_status_current(&self, node: &str, vmid: u32) -> Result<QemuStatus>;
    /// `POST …/qemu/{vmid}/status/start`.
    async fn qemu_start(&self, node: &str, vmid: u32) -> Result<Upid>;
    /// `POST …/qemu/{vmid}/status/stop` (immediate, like pulling the plug).
    async fn qemu_stop(&self, node: &str, vmid: u32) -> Result<Upid>;
    /// `POST …/qemu/{vmid}/status/shutdown`: through the guest agent when the VM has one
    /// enabled, ACPI otherwise; `timeout` seconds, then stop when `force_stop`.
    async fn qemu_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
        force_stop: bool,
    ) -> Result<Upid>;
    /// `POST …/qemu/{vmid}/status/reboot`.
    async fn qemu_reboot(&self, node: &str, vmid: u32, timeout: Option<u32>) -> Result<Upid>;
    /// `DELETE /nodes/{node}/qemu/{vmid}` (`purge`, `destroy-unreferenced-disks`).
    async fn qemu_delete(
        &self,
        node: &str,
        vmid: u32,
        purge: bool,
        destroy_unreferenced_disks: bool,
    ) -> Result<Upid>;
    /// `GET …/qemu/{vmid}/rrddata`.
    async fn qemu_rrddata(
        &self,
        node: &str,
        vmid: u32,
        timeframe: Timeframe,
        cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>>;
}
