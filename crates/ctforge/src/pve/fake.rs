//! An in-process Proxmox for unit tests: [`FakePve`] answers the few calls a test scripts
//! (version, nodes, `/access/permissions`) and counts every call; anything else is an error
//! naming the call. [`FakePveConnector`] hands it out through [`PveConnector`] for every
//! cluster and credential, so use-cases run against it exactly as against a real client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ctforge_pve::types::{
    AplInfo, CloneParams, ClusterResource, ConsolidationFn, DeleteOptions, Domain, LxcConfig,
    LxcConfigUpdate, LxcCreateParams, LxcInterface, LxcStatus, NetworkIface, NodeInfo, NodeStatus,
    PendingEntry, Pool, QemuStatus, ResourceKind, RrdPoint, Snapshot, Storage, StorageContent,
    TaskLog, TaskStatus, Timeframe, Upid, Version,
};
use ctforge_pve::{Permissions, PveApi, PveError, Result};

use super::PveConnector;
use crate::auth::SessionData;
use crate::error::AppError;
use crate::storage::model::Cluster;

/// A scripted Proxmox (see the module documentation).
#[derive(Debug, Default)]
pub struct FakePve {
    version: String,
    nodes: Vec<String>,
    /// userid → what `/access/permissions?userid=` answers.
    permissions: Mutex<BTreeMap<String, Permissions>>,
    calls: Mutex<BTreeMap<String, usize>>,
}

impl FakePve {
    /// A fake reporting version `version` with the given online nodes.
    pub fn new(version: &str, nodes: &[&str]) -> Self {
        Self {
            version: version.to_owned(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// `userid` holds `privilege` on `path` (propagating).
    pub fn grant(&self, userid: &str, path: &str, privilege: &str) -> &Self {
        if let Ok(mut perms) = self.permissions.lock() {
            perms
                .entry(userid.to_owned())
                .or_default()
                .entry(path.to_owned())
                .or_default()
                .insert(privilege.to_owned(), serde_json::Value::from(1));
        }
        self
    }

    /// How often `call` (a [`PveApi`] method name) was made.
    pub fn calls(&self, call: &str) -> usize {
        self.calls
            .lock()
            .ok()
            .and_then(|c| c.get(call).copied())
            .unwrap_or(0)
    }

    fn count(&self, call: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(call.to_owned()).or_insert(0) += 1;
        }
    }

    fn unscripted(&self, call: &str) -> PveError {
        self.count(call);
        PveError::NodeUnreachable {
            status: 595,
            message: format!("FakePve: {call} is not scripted"),
        }
    }
}

#[async_trait]
impl PveApi for FakePve {
    async fn access_permissions(
        &self,
        userid: Option<&str>,
        path: Option<&str>,
    ) -> Result<Permissions> {
        self.count("access_permissions");
        let all = self
            .permissions
            .lock()
            .ok()
            .and_then(|p| p.get(userid.unwrap_or_default()).cloned())
            .unwrap_or_default();
        Ok(match path {
            Some(path) => all.into_iter().filter(|(p, _)| p == path).collect(),
            None => all,
        })
    }

    async fn version(&self) -> Result<Version> {
        self.count("version");
        Ok(Version {
            version: self.version.clone(),
            release: self
                .version
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join("."),
            ..Version::default()
        })
    }

    async fn access_domains(&self) -> Result<Vec<Domain>> {
        Err(self.unscripted("access_domains"))
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.count("nodes");
        Ok(self
            .nodes
            .iter()
            .map(|n| NodeInfo {
                node: n.clone(),
                status: "online".to_owned(),
                ..NodeInfo::default()
            })
            .collect())
    }

    async fn node_status(&self, _node: &str) -> Result<NodeStatus> {
        Err(self.unscripted("node_status"))
    }

    async fn node_rrddata(
        &self,
        _node: &str,
        _timeframe: Timeframe,
        _cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>> {
        Err(self.unscripted("node_rrddata"))
    }

    async fn cluster_resources(&self, _kind: Option<ResourceKind>) -> Result<Vec<ClusterResource>> {
        Err(self.unscripted("cluster_resources"))
    }

    async fn cluster_status(&self) -> Result<Vec<ctforge_pve::types::ClusterStatusEntry>> {
        Err(self.unscripted("cluster_status"))
    }

    async fn lxc_migrate(
        &self,
        _node: &str,
        _vmid: u32,
        _params: &ctforge_pve::types::MigrateParams,
    ) -> Result<Upid> {
        Err(self.unscripted("lxc_migrate"))
    }

    async fn cluster_nextid(&self, _vmid: Option<u32>) -> Result<u32> {
        Err(self.unscripted("cluster_nextid"))
    }

    async fn lxc_list(&self, _node: &str) -> Result<Vec<LxcStatus>> {
        Err(self.unscripted("lxc_list"))
    }

    async fn lxc_create(&self, _node: &str, _params: &LxcCreateParams) -> Result<Upid> {
        Err(self.unscripted("lxc_create"))
    }

    async fn lxc_config_get(&self, _node: &str, _vmid: u32, _current: bool) -> Result<LxcConfig> {
        Err(self.unscripted("lxc_config_get"))
    }

    async fn lxc_config_put(
        &self,
        _node: &str,
        _vmid: u32,
        _update: &LxcConfigUpdate,
    ) -> Result<()> {
        Err(self.unscripted("lxc_config_put"))
    }

    async fn lxc_pending(&self, _node: &str, _vmid: u32) -> Result<Vec<PendingEntry>> {
        Err(self.unscripted("lxc_pending"))
    }

    async fn lxc_resize(
        &self,
        _node: &str,
        _vmid: u32,
        _disk: &str,
        _size: &str,
        _digest: Option<&str>,
    ) -> Result<Upid> {
        Err(self.unscripted("lxc_resize"))
    }

    async fn lxc_clone(&self, _node: &str, _vmid: u32, _params: &CloneParams) -> Result<Upid> {
        Err(self.unscripted("lxc_clone"))
    }

    async fn lxc_template(&self, _node: &str, _vmid: u32) -> Result<()> {
        Err(self.unscripted("lxc_template"))
    }

    async fn lxc_status_current(&self, _node: &str, _vmid: u32) -> Result<LxcStatus> {
        Err(self.unscripted("lxc_status_current"))
    }

    async fn lxc_start(&self, _node: &str, _vmid: u32) -> Result<Upid> {
        Err(self.unscripted("lxc_start"))
    }

    async fn lxc_stop(&self, _node: &str, _vmid: u32) -> Result<Upid> {
        Err(self.unscripted("lxc_stop"))
    }

    async fn lxc_shutdown(
        &self,
        _node: &str,
        _vmid: u32,
        _timeout: Option<u32>,
        _force_stop: bool,
    ) -> Result<Upid> {
        Err(self.unscripted("lxc_shutdown"))
    }

    async fn lxc_reboot(&self, _node: &str, _vmid: u32, _timeout: Option<u32>) -> Result<Upid> {
        Err(self.unscripted("lxc_reboot"))
    }

    async fn lxc_delete(&self, _node: &str, _vmid: u32, _opts: DeleteOptions) -> Result<Upid> {
        Err(self.unscripted("lxc_delete"))
    }

    async fn lxc_rrddata(
        &self,
        _node: &str,
        _vmid: u32,
        _timeframe: Timeframe,
        _cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>> {
        Err(self.unscripted("lxc_rrddata"))
    }

    async fn lxc_interfaces(&self, _node: &str, _vmid: u32) -> Result<Vec<LxcInterface>> {
        Err(self.unscripted("lxc_interfaces"))
    }

    async fn snapshot_list(&self, _node: &str, _vmid: u32) -> Result<Vec<Snapshot>> {
        Err(self.unscripted("snapshot_list"))
    }

    async fn snapshot_create(
        &self,
        _node: &str,
        _vmid: u32,
        _name: &str,
        _description: Option<&str>,
    ) -> Result<Upid> {
        Err(self.unscripted("snapshot_create"))
    }

    async fn snapshot_rollback(
        &self,
        _node: &str,
        _vmid: u32,
        _name: &str,
        _start: bool,
    ) -> Result<Upid> {
        Err(self.unscripted("snapshot_rollback"))
    }

    async fn snapshot_delete(
        &self,
        _node: &str,
        _vmid: u32,
        _name: &str,
        _force: bool,
    ) -> Result<Upid> {
        Err(self.unscripted("snapshot_delete"))
    }

    async fn task_status(&self, _node: &str, _upid: &Upid) -> Result<TaskStatus> {
        Err(self.unscripted("task_status"))
    }

    async fn task_log(
        &self,
        _node: &str,
        _upid: &Upid,
        _start: u64,
        _limit: u64,
    ) -> Result<TaskLog> {
        Err(self.unscripted("task_log"))
    }

    async fn node_storage(&self, _node: &str, _content: Option<&str>) -> Result<Vec<Storage>> {
        Err(self.unscripted("node_storage"))
    }

    async fn storage_content(
        &self,
        _node: &str,
        _storage: &str,
        _content: Option<&str>,
    ) -> Result<Vec<StorageContent>> {
        Err(self.unscripted("storage_content"))
    }

    async fn aplinfo(&self, _node: &str) -> Result<Vec<AplInfo>> {
        Err(self.unscripted("aplinfo"))
    }

    async fn aplinfo_download(&self, _node: &str, _storage: &str, _template: &str) -> Result<Upid> {
        Err(self.unscripted("aplinfo_download"))
    }

    async fn node_network(&self, _node: &str, _kind: Option<&str>) -> Result<Vec<NetworkIface>> {
        Err(self.unscripted("node_network"))
    }

    async fn pools(&self) -> Result<Vec<Pool>> {
        Err(self.unscripted("pools"))
    }

    // ---- qemu: listing and lifecycle of VMs ----
    async fn qemu_list(&self, _node: &str) -> Result<Vec<QemuStatus>> {
        Err(self.unscripted("qemu_list"))
    }

    async fn qemu_status_current(&self, _node: &str, _vmid: u32) -> Result<QemuStatus> {
        Err(self.unscripted("qemu_status_current"))
    }

    async fn qemu_start(&self, _node: &str, _vmid: u32) -> Result<Upid> {
        Err(self.unscripted("qemu_start"))
    }

    async fn qemu_stop(&self, _node: &str, _vmid: u32) -> Result<Upid> {
        Err(self.unscripted("qemu_stop"))
    }

    async fn qemu_shutdown(
        &self,
        _node: &str,
        _vmid: u32,
        _timeout: Option<u32>,
        _force_stop: bool,
    ) -> Result<Upid> {
        Err(self.unscripted("qemu_shutdown"))
    }

    async fn qemu_reboot(&self, _node: &str, _vmid: u32, _timeout: Option<u32>) -> Result<Upid> {
        Err(self.unscripted("qemu_reboot"))
    }

    async fn qemu_delete(
        &self,
        _node: &str,
        _vmid: u32,
        _purge: bool,
        _destroy_unreferenced_disks: bool,
    ) -> Result<Upid> {
        Err(self.unscripted("qemu_delete"))
    }

    async fn qemu_rrddata(
        &self,
        _node: &str,
        _vmid: u32,
        _timeframe: Timeframe,
        _cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>> {
        Err(self.unscripted("qemu_rrddata"))
    }
}

/// Hands out one shared [`FakePve`] for every cluster, user and token.
#[derive(Debug, Clone)]
pub struct FakePveConnector(pub Arc<FakePve>);

impl PveConnector for FakePveConnector {
    fn anonymous(&self, _cluster: &Cluster) -> std::result::Result<Arc<dyn PveApi>, AppError> {
        Ok(self.0.clone())
    }

    fn service(&self, _cluster: &Cluster) -> std::result::Result<Arc<dyn PveApi>, AppError> {
        Ok(self.0.clone())
    }

    fn user(
        &self,
        _cluster: &Cluster,
        _data: &SessionData,
        _username: &str,
    ) -> std::result::Result<Arc<dyn PveApi>, AppError> {
        Ok(self.0.clone())
    }
}
