//! The route table: every API method the simulator serves, its permission check
//! and handler. The HTTP router ([`crate::server`]) and the parameter validator
//! ([`crate::validate`]) are both driven by [`ROUTES`], and the schema test checks
//! each entry against the official PVE API schema. Submodules mirror the URL
//! paths.

pub mod access;
pub mod admin;
pub mod cluster;
pub mod guest_task;
pub mod lxc;
pub mod lxc_daytwo;
pub mod lxc_migrate;
pub mod nodes;
pub mod pools;
pub mod qemu;
pub mod qemu_agent;
pub mod qemu_daytwo;
pub mod storage;
pub mod tasks;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::{Cluster, SimState};
use crate::validate::Params;

/// Permission check done before the handler runs.
#[derive(Debug, Clone, Copy)]
pub enum Perm {
    /// No authentication needed.
    World,
    /// Any authenticated user or token.
    Authenticated,
    /// A privilege on `/vms/{vmid}`.
    Vm(&'static str),
    /// Any of these privileges on `/vms/{vmid}`.
    VmAny(&'static [&'static str]),
    /// A privilege on `/nodes/{node}`.
    Node(&'static str),
    /// Any of these privileges on `/storage/{storage}`.
    StorageAny(&'static [&'static str]),
    /// A privilege on `/pool/{poolid}`.
    Pool(&'static str),
    /// Checked inside the handler.
    Handler,
}

/// The context a handler gets.
pub struct Ctx<'a> {
    /// Simulator state.
    pub state: &'a SimState,
    /// Caller (`None` only on `World` routes without credentials).
    pub ident: Option<Identity>,
    /// Validated parameters, path parameters included.
    pub params: Params,
}

impl Ctx<'_> {
    /// The caller, or 401 (should not happen on non-World routes).
    pub fn ident(&self) -> Result<&Identity, ApiError> {
        self.ident
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("No ticket"))
    }
    /// A required string parameter.
    pub fn p(&self, k: &str) -> Result<String, ApiError> {
        self.params
            .str(k)
            .ok_or_else(|| ApiError::param(k, "property is missing and it is not optional"))
    }
    /// The `vmid` path parameter.
    pub fn vmid(&self) -> Result<u32, ApiError> {
        self.params
            .int("vmid")
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ApiError::param("vmid", "property is missing and it is not optional"))
    }
    /// Check a privilege on a path (403 with PVE's text).
    pub fn check(&self, c: &Cluster, path: &str, privilege: &str) -> Result<(), ApiError> {
        let ident = self.ident()?;
        if c.has_priv(ident, path, privilege) {
            Ok(())
        } else {
            Err(ApiError::perm(path, privilege))
        }
    }
}

/// A handler's successful answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The `data` value.
    pub data: Value,
    /// Extra top-level keys (`total`, `changes`).
    pub extra: Vec<(&'static str, Value)>,
}

impl Reply {
    /// `{"data": v}`.
    pub fn data(v: Value) -> Self {
        Reply {
            data: v,
            extra: Vec::new(),
        }
    }
    /// `{"data": null}`.
    pub fn null() -> Self {
        Reply::data(Value::Null)
    }
}

/// Handler signature (synchronous: tasks are spawned, never awaited).
pub type Handler = fn(&Ctx<'_>) -> Result<Reply, ApiError>;

/// One served API method.
#[derive(Clone, Copy)]
pub struct RouteDef {
    /// HTTP method.
    pub method: &'static str,
    /// Path template as in the PVE schema (`/nodes/{node}/lxc/{vmid}`).
    pub path: &'static str,
    /// Permission checked before the handler.
    pub perm: Perm,
    /// Handler.
    pub handler: Handler,
}

macro_rules! r {
    ($m:literal, $p:literal, $perm:expr, $h:path) => {
        RouteDef {
            method: $m,
            path: $p,
            perm: $perm,
            handler: $h,
        }
    };
}

const QEMU_CONFIG_ANY: &[&str] = &[
    "VM.Config.Disk",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.HWType",
    "VM.Config.Options",
    "VM.Config.Cloudinit",
];

const AGENT_AUDIT: &[&str] = &["VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"];

const VM_CONFIG_ANY: &[&str] = &[
    "VM.Config.Disk",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
];

/// Every API method the simulator serves.
pub static ROUTES: &[RouteDef] = &[
    r!("GET", "/version", Perm::Authenticated, cluster::version),
    r!("GET", "/access/ticket", Perm::World, access::get_ticket),
    r!("POST", "/access/ticket", Perm::World, access::create_ticket),
    r!("GET", "/access/domains", Perm::World, access::domains),
    r!(
        "GET",
        "/access/permissions",
        Perm::Authenticated,
        access::permissions
    ),
    r!(
        "GET",
        "/access/users/{userid}/token",
        Perm::Handler,
        access::token_index
    ),
    r!(
        "POST",
        "/access/users/{userid}/token/{tokenid}",
        Perm::Handler,
        access::token_create
    ),
    r!(
        "DELETE",
        "/access/users/{userid}/token/{tokenid}",
        Perm::Handler,
        access::token_delete
    ),
    r!(
        "GET",
        "/cluster/resources",
        Perm::Authenticated,
        cluster::resources
    ),
    r!(
        "GET",
        "/cluster/nextid",
        Perm::Authenticated,
        cluster::nextid
    ),
    r!(
        "GET",
        "/cluster/status",
        Perm::Authenticated,
        cluster::status
    ),
    r!("GET", "/nodes", Perm::Authenticated, nodes::index),
    r!(
        "GET",
        "/nodes/{node}/status",
        Perm::Node("Sys.Audit"),
        nodes::status
    ),
    r!(
        "GET",
        "/nodes/{node}/rrddata",
        Perm::Node("Sys.Audit"),
        nodes::rrddata
    ),
    r!(
        "GET",
        "/nodes/{node}/network",
        Perm::Authenticated,
        nodes::network
    ),
    r!(
        "GET",
        "/nodes/{node}/network/{iface}",
        Perm::Node("Sys.Audit"),
        nodes::network_iface
    ),
    r!(
        "GET",
        "/nodes/{node}/aplinfo",
        Perm::Authenticated,
        storage::aplinfo
    ),
    r!(
        "POST",
        "/nodes/{node}/aplinfo",
        Perm::Handler,
        storage::apl_download
    ),
    r!(
        "GET",
        "/nodes/{node}/storage",
        Perm::Authenticated,
        storage::index
    ),
    r!(
        "GET",
        "/nodes/{node}/storage/{storage}/content",
        Perm::StorageAny(&["Datastore.Audit", "Datastore.AllocateSpace"]),
        storage::content
    ),
    r!(
        "POST",
        "/nodes/{node}/storage/{storage}/download-url",
        Perm::Handler,
        storage::download_url
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks",
        Perm::Authenticated,
        tasks::list
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks/{upid}",
        Perm::Authenticated,
        tasks::index
    ),
    r!(
        "DELETE",
        "/nodes/{node}/tasks/{upid}",
        Perm::Handler,
        tasks::stop
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks/{upid}/status",
        Perm::Handler,
        tasks::status
    ),
    r!(
        "GET",
        "/nodes/{node}/tasks/{upid}/log",
        Perm::Handler,
        tasks::log
    ),
    r!("GET", "/nodes/{node}/lxc", Perm::Authenticated, lxc::list),
    r!("POST", "/nodes/{node}/lxc", Perm::Handler, lxc::create),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}",
        Perm::Authenticated,
        lxc::diridx
    ),
    r!(
        "DELETE",
        "/nodes/{node}/lxc/{vmid}",
        Perm::Vm("VM.Allocate"),
        lxc::destroy
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/config",
        Perm::Vm("VM.Audit"),
        lxc::config_get
    ),
    r!(
        "PUT",
        "/nodes/{node}/lxc/{vmid}/config",
        Perm::VmAny(VM_CONFIG_ANY),
        lxc::config_put
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/pending",
        Perm::Vm("VM.Audit"),
        lxc::pending
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/status/current",
        Perm::Vm("VM.Audit"),
        lxc::status_current
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/status/start",
        Perm::Vm("VM.PowerMgmt"),
        lxc::start
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/status/stop",
        Perm::Vm("VM.PowerMgmt"),
        lxc::stop
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/status/shutdown",
        Perm::Vm("VM.PowerMgmt"),
        lxc::shutdown
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/status/reboot",
        Perm::Vm("VM.PowerMgmt"),
        lxc::reboot
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/rrddata",
        Perm::Vm("VM.Audit"),
        lxc::rrddata
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/interfaces",
        Perm::Vm("VM.Audit"),
        lxc::interfaces
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/snapshot",
        Perm::Vm("VM.Audit"),
        lxc::snapshot_list
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/snapshot",
        Perm::Vm("VM.Snapshot"),
        lxc::snapshot_create
    ),
    r!(
        "GET",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
        Perm::Authenticated,
        lxc::snapshot_idx
    ),
    r!(
        "DELETE",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
        Perm::Vm("VM.Snapshot"),
        lxc::snapshot_delete
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
        Perm::VmAny(&["VM.Snapshot", "VM.Snapshot.Rollback"]),
        lxc::snapshot_rollback
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/migrate",
        Perm::Vm("VM.Migrate"),
        lxc_migrate::migrate
    ),
    r!(
        "PUT",
        "/nodes/{node}/lxc/{vmid}/resize",
        Perm::Vm("VM.Config.Disk"),
        lxc_daytwo::resize
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/clone",
        Perm::Handler,
        lxc_daytwo::clone
    ),
    r!(
        "POST",
        "/nodes/{node}/lxc/{vmid}/template",
        Perm::Vm("VM.Allocate"),
        lxc_daytwo::template
    ),
    r!("GET", "/nodes/{node}/qemu", Perm::Authenticated, qemu::list),
    r!("POST", "/nodes/{node}/qemu", Perm::Handler, qemu::create),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}",
        Perm::Authenticated,
        qemu::diridx
    ),
    r!(
        "DELETE",
        "/nodes/{node}/qemu/{vmid}",
        Perm::Vm("VM.Allocate"),
        qemu::destroy
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/config",
        Perm::Vm("VM.Audit"),
        qemu::config_get
    ),
    r!(
        "PUT",
        "/nodes/{node}/qemu/{vmid}/config",
        Perm::VmAny(QEMU_CONFIG_ANY),
        qemu::config_put
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/config",
        Perm::VmAny(QEMU_CONFIG_ANY),
        qemu::config_post
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/pending",
        Perm::Vm("VM.Audit"),
        qemu::pending
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/status/current",
        Perm::Vm("VM.Audit"),
        qemu::status_current
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/start",
        Perm::Vm("VM.PowerMgmt"),
        qemu::start
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/stop",
        Perm::Vm("VM.PowerMgmt"),
        qemu::stop
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/shutdown",
        Perm::Vm("VM.PowerMgmt"),
        qemu::shutdown
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/reboot",
        Perm::Vm("VM.PowerMgmt"),
        qemu::reboot
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/suspend",
        Perm::Vm("VM.PowerMgmt"),
        qemu::suspend
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/resume",
        Perm::Vm("VM.PowerMgmt"),
        qemu::resume
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/rrddata",
        Perm::Vm("VM.Audit"),
        qemu::rrddata
    ),
    r!(
        "PUT",
        "/nodes/{node}/qemu/{vmid}/resize",
        Perm::Vm("VM.Config.Disk"),
        qemu_daytwo::resize
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/template",
        Perm::Vm("VM.Allocate"),
        qemu_daytwo::template
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/clone",
        Perm::Handler,
        qemu_daytwo::clone
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/snapshot",
        Perm::Vm("VM.Audit"),
        qemu_daytwo::snapshot_list
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot",
        Perm::Vm("VM.Snapshot"),
        qemu_daytwo::snapshot_create
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}",
        Perm::Authenticated,
        qemu_daytwo::snapshot_idx
    ),
    r!(
        "DELETE",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}",
        Perm::Vm("VM.Snapshot"),
        qemu_daytwo::snapshot_delete
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
        Perm::VmAny(&["VM.Snapshot", "VM.Snapshot.Rollback"]),
        qemu_daytwo::snapshot_rollback
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/agent/ping",
        Perm::VmAny(AGENT_AUDIT),
        qemu_agent::ping
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/info",
        Perm::VmAny(AGENT_AUDIT),
        qemu_agent::info
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/get-osinfo",
        Perm::VmAny(AGENT_AUDIT),
        qemu_agent::get_osinfo
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/get-host-name",
        Perm::VmAny(AGENT_AUDIT),
        qemu_agent::get_host_name
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces",
        Perm::VmAny(AGENT_AUDIT),
        qemu_agent::network_get_interfaces
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/agent/exec",
        Perm::Vm("VM.GuestAgent.Unrestricted"),
        qemu_agent::exec
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/exec-status",
        Perm::Vm("VM.GuestAgent.Unrestricted"),
        qemu_agent::exec_status
    ),
    r!(
        "POST",
        "/nodes/{node}/qemu/{vmid}/agent/file-write",
        Perm::VmAny(&["VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted"]),
        qemu_agent::file_write
    ),
    r!(
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/file-read",
        Perm::VmAny(&["VM.GuestAgent.FileRead", "VM.GuestAgent.Unrestricted"]),
        qemu_agent::file_read
    ),
    r!("GET", "/pools", Perm::Authenticated, pools::index),
    r!("POST", "/pools", Perm::Pool("Pool.Allocate"), pools::create),
    r!("PUT", "/pools", Perm::Pool("Pool.Allocate"), pools::update),
    r!(
        "DELETE",
        "/pools",
        Perm::Pool("Pool.Allocate"),
        pools::delete
    ),
    r!(
        "GET",
        "/pools/{poolid}",
        Perm::Pool("Pool.Audit"),
        pools::read
    ),
];

/// Find the route for a method and a path relative to `/api2/json`; returns
/// the route and the (percent-decoded) path parameters.
pub fn find(method: &str, path: &str) -> Option<(&'static RouteDef, BTreeMap<String, String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    'routes: for r in ROUTES.iter().filter(|r| r.method == method) {
        let tsegs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut params = BTreeMap::new();
        for (t, s) in tsegs.iter().zip(segs.iter()) {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                if s.is_empty() {
                    continue 'routes;
                }
                let decoded = percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned();
                params.insert(name.to_string(), decoded);
            } else if t != s {
                continue 'routes;
            }
        }
        return Some((r, params));
    }
    None
}

/// Whether some route exists for the path with another method.
pub fn path_exists(path: &str) -> bool {
    ["GET", "POST", "PUT", "DELETE"]
        .iter()
        .any(|m| find(m, path).is_some())
}
