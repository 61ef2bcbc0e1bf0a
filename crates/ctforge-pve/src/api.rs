//! The [`PveApi`] trait: one async method per Proxmox VE endpoint ctforge
//! uses. [`crate::PveClient`] implements it over HTTP; the application holds
//! an `Arc<dyn PveApi>` and tests can substitute fakes.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{AgentExecStatus, AgentInterfaces, AgentPid, QemuCreate};
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

    // ---- QEMU virtual machines. Defaults answer "not supported" so in-process fakes that
    // ---- never see a VM need not implement them; `PveClient` implements every one.

    /// `POST /nodes/{node}/qemu` — starts a `qmcreate` task (the image import runs in it).
    async fn qemu_create(&self, _node: &str, _params: &QemuCreate) -> Result<Upid> {
        Err(unsupported("POST /nodes/{node}/qemu"))
    }
    /// `GET /nodes/{node}/qemu/{vmid}/config` (`current`: ignore pending changes), as
    /// key → value.
    async fn qemu_config_get(
        &self,
        _node: &str,
        _vmid: u32,
        _current: bool,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
        Err(unsupported("GET /nodes/{node}/qemu/{vmid}/config"))
    }
    /// `PUT /nodes/{node}/qemu/{vmid}/config` (synchronous).
    async fn qemu_config_put(
        &self,
        _node: &str,
        _vmid: u32,
        _set: &[(String, String)],
        _delete: &[String],
    ) -> Result<()> {
        Err(unsupported("PUT /nodes/{node}/qemu/{vmid}/config"))
    }
    /// `PUT …/qemu/{vmid}/resize` — a `resize` task (grow only).
    async fn qemu_resize(&self, _node: &str, _vmid: u32, _disk: &str, _size: &str) -> Result<Upid> {
        Err(unsupported("PUT /nodes/{node}/qemu/{vmid}/resize"))
    }
    /// `POST …/qemu/{vmid}/clone` — a `qmclone` task.
    async fn qemu_clone(&self, _node: &str, _vmid: u32, _params: &CloneParams) -> Result<Upid> {
        Err(unsupported("POST /nodes/{node}/qemu/{vmid}/clone"))
    }
    /// `POST …/qemu/{vmid}/template` — a `qmtemplate` task.
    async fn qemu_template(&self, _node: &str, _vmid: u32) -> Result<Upid> {
        Err(unsupported("POST /nodes/{node}/qemu/{vmid}/template"))
    }
    /// `GET …/qemu/{vmid}/pending`: each key's current and pending value.
    async fn qemu_pending(&self, _node: &str, _vmid: u32) -> Result<Vec<PendingEntry>> {
        Err(unsupported("GET /nodes/{node}/qemu/{vmid}/pending"))
    }
    /// `GET …/qemu/{vmid}/snapshot`.
    async fn qemu_snapshot_list(&self, _node: &str, _vmid: u32) -> Result<Vec<Snapshot>> {
        Err(unsupported("GET /nodes/{node}/qemu/{vmid}/snapshot"))
    }
    /// `POST …/qemu/{vmid}/snapshot` — a `qmsnapshot` task.
    async fn qemu_snapshot_create(
        &self,
        _node: &str,
        _vmid: u32,
        _name: &str,
        _description: Option<&str>,
    ) -> Result<Upid> {
        Err(unsupported("POST /nodes/{node}/qemu/{vmid}/snapshot"))
    }
    /// `POST …/qemu/{vmid}/snapshot/{snapname}/rollback` — a `qmrollback` task.
    async fn qemu_snapshot_rollback(
        &self,
        _node: &str,
        _vmid: u32,
        _name: &str,
        _start: bool,
    ) -> Result<Upid> {
        Err(unsupported(
            "POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
        ))
    }
    /// `DELETE …/qemu/{vmid}/snapshot/{snapname}` — a `qmdelsnapshot` task.
    async fn qemu_snapshot_delete(
        &self,
        _node: &str,
        _vmid: u32,
        _name: &str,
        _force: bool,
    ) -> Result<Upid> {
        Err(unsupported(
            "DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}",
        ))
    }
    /// `POST …/qemu/{vmid}/agent/ping` — fails while the guest agent does not answer.
    async fn agent_ping(&self, _node: &str, _vmid: u32) -> Result<()> {
        Err(unsupported("POST /nodes/{node}/qemu/{vmid}/agent/ping"))
    }
    /// `POST …/qemu/{vmid}/agent/exec` — starts `command` (program and arguments) in the
    /// guest, `input_data` on its stdin; answers the PID.
    async fn agent_exec(
        &self,
        _node: &str,
        _vmid: u32,
        _command: &[String],
        _input_data: Option<&str>,
    ) -> Result<AgentPid> {
        Err(unsupported("POST /nodes/{node}/qemu/{vmid}/agent/exec"))
    }
    /// `GET …/qemu/{vmid}/agent/exec-status?pid=`.
    async fn agent_exec_status(
        &self,
        _node: &str,
        _vmid: u32,
        _pid: i64,
    ) -> Result<AgentExecStatus> {
        Err(unsupported(
            "GET /nodes/{node}/qemu/{vmid}/agent/exec-status",
        ))
    }
    /// `POST …/qemu/{vmid}/agent/file-write` (`content` base64, at most 60 KiB of it).
    async fn agent_file_write(
        &self,
        _node: &str,
        _vmid: u32,
        _file: &str,
        _content_base64: &str,
    ) -> Result<()> {
        Err(unsupported(
            "POST /nodes/{node}/qemu/{vmid}/agent/file-write",
        ))
    }
    /// `GET …/qemu/{vmid}/agent/network-get-interfaces`.
    async fn agent_network_get_interfaces(
        &self,
        _node: &str,
        _vmid: u32,
    ) -> Result<AgentInterfaces> {
        Err(unsupported(
            "GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
        ))
    }
}

/// What the default qemu methods answer.
fn unsupported(endpoint: &str) -> crate::PveError {
    crate::PveError::Config(format!("{endpoint} is not supported by this client"))
}
