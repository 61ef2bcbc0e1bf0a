//! `GET /cluster/status` entries and the parameters of `POST …/lxc/{vmid}/migrate`.

use serde::{Deserialize, Serialize};

use super::de;

/// One entry of `GET /cluster/status`: the cluster itself (`type` = `cluster`) or a node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClusterStatusEntry {
    /// `cluster` or `node`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `cluster` or `node/<name>`.
    #[serde(default)]
    pub id: String,
    /// Cluster or node name.
    #[serde(default)]
    pub name: String,
    /// [node] The node's address (what its name resolves to in the cluster).
    #[serde(default)]
    pub ip: Option<String>,
    /// [node] Whether the node is online.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub online: Option<bool>,
    /// [node] Whether this node answered the request.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub local: Option<bool>,
}

impl ClusterStatusEntry {
    /// Whether this entry is a node.
    pub fn is_node(&self) -> bool {
        self.kind == "node"
    }
}

/// Parameters of `POST /nodes/{node}/lxc/{vmid}/migrate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrateParams {
    /// Target node.
    pub target: String,
    /// Restart migration: shut the running CT down, move it, start it on the target.
    pub restart: bool,
    /// Shutdown timeout of a restart migration, seconds (Proxmox's default: 180).
    pub timeout: Option<u32>,
}
