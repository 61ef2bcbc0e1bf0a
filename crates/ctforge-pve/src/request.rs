//! Pure request builders: one function per endpoint, each returning the
//! [`RequestSpec`] (method, API path, parameters) that [`crate::PveClient`]
//! sends. Nothing here touches the network, so the contract tests can check
//! every request the client can build against the official schema.
//!
//! Paths are relative to `/api2/json` and hold unencoded segments (the client
//! percent-encodes each segment when sending). GET/DELETE parameters travel
//! in the query string, POST/PUT parameters as a urlencoded form.

use std::fmt;

use crate::types::{
    CloneParams, ConsolidationFn, DeleteOptions, LxcConfigUpdate, LxcCreateParams, ResourceKind,
    Timeframe, Upid,
};

/// HTTP method (PVE accepts exactly these four).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// Upper-case name, as in the schema's `info` keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
    /// True for methods that carry a form body (POST, PUT).
    pub fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Put)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parameter names whose values are secret and redacted in `Debug`.
pub const SECRET_PARAMS: &[&str] = &["password", "tfa-challenge", "otp", "cipassword"];

/// A fully built request, as the client sends it. `Debug` redacts secret
/// parameter values ([`SECRET_PARAMS`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// HTTP method.
    pub method: Method,
    /// API path relative to `/api2/json`, unencoded, e.g. `/nodes/pve/lxc/100/config`.
    pub path: String,
    /// Parameters in send order.
    pub params: Vec<(String, String)>,
}

impl RequestSpec {
    fn new(method: Method, path: String) -> Self {
        RequestSpec {
            method,
            path,
            params: Vec::new(),
        }
    }
    fn param(mut self, k: &str, v: impl Into<String>) -> Self {
        self.params.push((k.to_string(), v.into()));
        self
    }
    fn opt(self, k: &str, v: Option<impl Into<String>>) -> Self {
        match v {
            Some(v) => self.param(k, v),
            None => self,
        }
    }
    fn flag(self, k: &str, v: bool) -> Self {
        if v { self.param(k, "1") } else { self }
    }
    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|s| !s.is_empty())
    }
    /// The endpoint as a path pattern with the variable segments replaced
    /// (`/nodes/{node}/lxc/{vmid}/status/start`): a bounded label for metrics.
    pub fn endpoint(&self) -> String {
        const COLLECTIONS: &[(&str, &str)] = &[
            ("nodes", "{node}"),
            ("lxc", "{vmid}"),
            ("qemu", "{vmid}"),
            ("tasks", "{upid}"),
            ("storage", "{storage}"),
            ("content", "{volume}"),
            ("pools", "{poolid}"),
            ("users", "{userid}"),
            ("snapshot", "{snapname}"),
        ];
        let mut out = String::new();
        let mut previous = "";
        for seg in self.segments() {
            out.push('/');
            match COLLECTIONS.iter().find(|(c, _)| *c == previous) {
                Some((_, var)) => out.push_str(var),
                None => out.push_str(seg),
            }
            previous = seg;
        }
        out
    }
    /// The value of parameter `k`, if present.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for RequestSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| {
                if SECRET_PARAMS.contains(&k.as_str()) {
                    (k.as_str(), "***")
                } else {
                    (k.as_str(), v.as_str())
                }
            })
            .collect();
        f.debug_struct("RequestSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("params", &params)
            .finish()
    }
}

/// Escape a caller-supplied path component so it stays one segment: `%` →
/// `%25`, `/` → `%2F` (the client encodes everything else when sending).
pub fn seg(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['/', '%']) {
        std::borrow::Cow::Owned(s.replace('%', "%25").replace('/', "%2F"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn lxc(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/lxc/{vmid}", seg(node))
}

/// `GET /version`
pub fn version() -> RequestSpec {
    RequestSpec::new(Method::Get, "/version".into())
}

/// `GET /access/domains`
pub fn access_domains() -> RequestSpec {
    RequestSpec::new(Method::Get, "/access/domains".into())
}

/// `GET /access/permissions[?userid=][&path=]`
pub fn access_permissions(userid: Option<&str>, path: Option<&str>) -> RequestSpec {
    let mut spec = RequestSpec::new(Method::Get, "/access/permissions".into());
    if let Some(userid) = userid {
        spec = spec.param("userid", userid);
    }
    if let Some(path) = path {
        spec = spec.param("path", path);
    }
    spec
}

/// The full user id: `username` if it already has `@realm`, else `username@realm`.
pub fn userid(username: &str, realm: &str) -> String {
    if username.contains('@') || realm.is_empty() {
        username.to_string()
    } else {
        format!("{username}@{realm}")
    }
}

/// `POST /access/ticket` — first login step.
pub fn login(username: &str, realm: &str, password: &str) -> RequestSpec {
    RequestSpec::new(Method::Post, "/access/ticket".into())
        .param("username", userid(username, realm))
        .param("password", password)
}

/// `POST /access/ticket` — second factor: `response` is e.g. `totp:123456`.
pub fn login_tfa(username: &str, challenge: &str, response: &str) -> RequestSpec {
    RequestSpec::new(Method::Post, "/access/ticket".into())
        .param("username", username)
        .param("tfa-challenge", challenge)
        .param("password", response)
}

/// `POST /access/ticket` — renewal: the current ticket is the password.
pub fn renew_ticket(username: &str, ticket: &str) -> RequestSpec {
    RequestSpec::new(Method::Post, "/access/ticket".into())
        .param("username", username)
        .param("password", ticket)
}

/// `GET /nodes`
pub fn nodes() -> RequestSpec {
    RequestSpec::new(Method::Get, "/nodes".into())
}

/// `GET /nodes/{node}/status`
pub fn node_status(node: &str) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/status", seg(node)))
}

/// `GET /nodes/{node}/rrddata`
pub fn node_rrddata(node: &str, timeframe: Timeframe, cf: Option<ConsolidationFn>) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/rrddata", seg(node)))
        .param("timeframe", timeframe.as_str())
        .opt("cf", cf.map(ConsolidationFn::as_str))
}

/// `GET /cluster/resources[?type=]`
pub fn cluster_resources(kind: Option<ResourceKind>) -> RequestSpec {
    RequestSpec::new(Method::Get, "/cluster/resources".into())
        .opt("type", kind.map(ResourceKind::as_str))
}

/// `GET /cluster/nextid[?vmid=]`
pub fn cluster_nextid(vmid: Option<u32>) -> RequestSpec {
    RequestSpec::new(Method::Get, "/cluster/nextid".into()).opt("vmid", vmid.map(|v| v.to_string()))
}

/// `GET /nodes/{node}/lxc`
pub fn lxc_list(node: &str) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/lxc", seg(node)))
}

/// `POST /nodes/{node}/lxc`
pub fn lxc_create(node: &str, params: &LxcCreateParams) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Post, format!("/nodes/{}/lxc", seg(node)));
    r.params = params.to_form();
    r
}

/// `GET /nodes/{node}/lxc/{vmid}/config[?current=1]`
pub fn lxc_config_get(node: &str, vmid: u32, current: bool) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/config", lxc(node, vmid))).flag("current", current)
}

/// `PUT /nodes/{node}/lxc/{vmid}/config`
pub fn lxc_config_put(node: &str, vmid: u32, update: &LxcConfigUpdate) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Put, format!("{}/config", lxc(node, vmid)));
    r.params = update.to_form();
    r
}

/// `GET /nodes/{node}/lxc/{vmid}/pending`
pub fn lxc_pending(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/pending", lxc(node, vmid)))
}

/// `PUT /nodes/{node}/lxc/{vmid}/resize` (`disk`: `rootfs` or `mpN`; `size`: `+2G` grows by,
/// `10G` grows to).
pub fn lxc_resize(
    node: &str,
    vmid: u32,
    disk: &str,
    size: &str,
    digest: Option<&str>,
) -> RequestSpec {
    RequestSpec::new(Method::Put, format!("{}/resize", lxc(node, vmid)))
        .param("disk", disk)
        .param("size", size)
        .opt("digest", digest)
}

/// `POST /nodes/{node}/lxc/{vmid}/clone`
pub fn lxc_clone(node: &str, vmid: u32, params: &CloneParams) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Post, format!("{}/clone", lxc(node, vmid)));
    r.params = params.to_form();
    r
}

/// `POST /nodes/{node}/lxc/{vmid}/template`
pub fn lxc_template(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/template", lxc(node, vmid)))
}

/// `GET /nodes/{node}/lxc/{vmid}/status/current`
pub fn lxc_status_current(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/status/current", lxc(node, vmid)))
}

/// `POST /nodes/{node}/lxc/{vmid}/status/start`
pub fn lxc_start(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/start", lxc(node, vmid)))
}

/// `GET /cluster/status`
pub fn cluster_status() -> RequestSpec {
    RequestSpec::new(Method::Get, "/cluster/status".into())
}

/// `POST /nodes/{node}/lxc/{vmid}/migrate`
pub fn lxc_migrate(node: &str, vmid: u32, p: &crate::types::MigrateParams) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/migrate", lxc(node, vmid)))
        .param("target", p.target.as_str())
        .flag("restart", p.restart)
        .opt("timeout", p.timeout.map(|t| t.to_string()))
}

/// `POST /nodes/{node}/lxc/{vmid}/status/stop`
pub fn lxc_stop(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/stop", lxc(node, vmid)))
}

/// `POST /nodes/{node}/lxc/{vmid}/status/shutdown` (`timeout` seconds, `forceStop`).
pub fn lxc_shutdown(node: &str, vmid: u32, timeout: Option<u32>, force_stop: bool) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/shutdown", lxc(node, vmid)))
        .opt("timeout", timeout.map(|t| t.to_string()))
        .flag("forceStop", force_stop)
}

/// `POST /nodes/{node}/lxc/{vmid}/status/reboot`
pub fn lxc_reboot(node: &str, vmid: u32, timeout: Option<u32>) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/reboot", lxc(node, vmid)))
        .opt("timeout", timeout.map(|t| t.to_string()))
}

/// `DELETE /nodes/{node}/lxc/{vmid}`
pub fn lxc_delete(node: &str, vmid: u32, opts: DeleteOptions) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Delete, lxc(node, vmid));
    r.params = opts.to_query();
    r
}

/// `GET /nodes/{node}/lxc/{vmid}/rrddata`
pub fn lxc_rrddata(
    node: &str,
    vmid: u32,
    timeframe: Timeframe,
    cf: Option<ConsolidationFn>,
) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/rrddata", lxc(node, vmid)))
        .param("timeframe", timeframe.as_str())
        .opt("cf", cf.map(ConsolidationFn::as_str))
}

/// `GET /nodes/{node}/lxc/{vmid}/interfaces`
pub fn lxc_interfaces(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/interfaces", lxc(node, vmid)))
}

/// `GET /nodes/{node}/lxc/{vmid}/snapshot`
pub fn snapshot_list(node: &str, vmid: u32) -> RequestSpec {
    snapshot_list_at(&lxc(node, vmid))
}

/// `POST /nodes/{node}/lxc/{vmid}/snapshot`
pub fn snapshot_create(
    node: &str,
    vmid: u32,
    name: &str,
    description: Option<&str>,
) -> RequestSpec {
    snapshot_create_at(&lxc(node, vmid), name, description)
}

/// `POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback`
pub fn snapshot_rollback(node: &str, vmid: u32, name: &str, start: bool) -> RequestSpec {
    snapshot_rollback_at(&lxc(node, vmid), name, start)
}

/// `DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}`
pub fn snapshot_delete(node: &str, vmid: u32, name: &str, force: bool) -> RequestSpec {
    snapshot_delete_at(&lxc(node, vmid), name, force)
}

// The snapshot endpoints are the same under `lxc/{vmid}` and `qemu/{vmid}`
// (`PVE::AbstractConfig`); `guest` is either base path.

fn snapshot_list_at(guest: &str) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{guest}/snapshot"))
}

fn snapshot_create_at(guest: &str, name: &str, description: Option<&str>) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{guest}/snapshot"))
        .param("snapname", name)
        .opt("description", description)
}

fn snapshot_rollback_at(guest: &str, name: &str, start: bool) -> RequestSpec {
    RequestSpec::new(
        Method::Post,
        format!("{guest}/snapshot/{}/rollback", seg(name)),
    )
    .flag("start", start)
}

fn snapshot_delete_at(guest: &str, name: &str, force: bool) -> RequestSpec {
    RequestSpec::new(Method::Delete, format!("{guest}/snapshot/{}", seg(name))).flag("force", force)
}

/// `GET /nodes/{node}/tasks/{upid}/status`
pub fn task_status(node: &str, upid: &Upid) -> RequestSpec {
    RequestSpec::new(
        Method::Get,
        format!("/nodes/{}/tasks/{}/status", seg(node), seg(upid.as_str())),
    )
}

/// `GET /nodes/{node}/tasks/{upid}/log?start=&limit=` (`start` is a 0-based line offset).
pub fn task_log(node: &str, upid: &Upid, start: u64, limit: u64) -> RequestSpec {
    RequestSpec::new(
        Method::Get,
        format!("/nodes/{}/tasks/{}/log", seg(node), seg(upid.as_str())),
    )
    .param("start", start.to_string())
    .param("limit", limit.to_string())
}

/// `GET /nodes/{node}/storage[?content=]`
pub fn node_storage(node: &str, content: Option<&str>) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/storage", seg(node))).opt("content", content)
}

/// `GET /nodes/{node}/storage/{storage}/content[?content=]`
pub fn storage_content(node: &str, storage: &str, content: Option<&str>) -> RequestSpec {
    RequestSpec::new(
        Method::Get,
        format!("/nodes/{}/storage/{}/content", seg(node), seg(storage)),
    )
    .opt("content", content)
}

/// `GET /nodes/{node}/aplinfo`
pub fn aplinfo(node: &str) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/aplinfo", seg(node)))
}

/// `POST /nodes/{node}/aplinfo` (download a template to `storage`).
pub fn aplinfo_download(node: &str, storage: &str, template: &str) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("/nodes/{}/aplinfo", seg(node)))
        .param("storage", storage)
        .param("template", template)
}

/// `GET /nodes/{node}/network[?type=]` (`any_bridge` lists usable bridges).
pub fn node_network(node: &str, kind: Option<&str>) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/network", seg(node))).opt("type", kind)
}

/// `GET /pools`
pub fn pools() -> RequestSpec {
    RequestSpec::new(Method::Get, "/pools".into())
}

// ---- qemu: listing and lifecycle of VMs ----

fn qemu(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/qemu/{vmid}", seg(node))
}

/// `POST /nodes/{node}/qemu`
pub fn qemu_create(node: &str, params: &crate::types::QemuCreate) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Post, format!("/nodes/{}/qemu", seg(node)));
    r.params = params.to_form();
    r
}

/// `GET /nodes/{node}/qemu`
pub fn qemu_list(node: &str) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("/nodes/{}/qemu", seg(node)))
}

/// `GET /nodes/{node}/qemu/{vmid}/config[?current=1]`
pub fn qemu_config_get(node: &str, vmid: u32, current: bool) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/config", qemu(node, vmid))).flag("current", current)
}

/// `PUT /nodes/{node}/qemu/{vmid}/config` (synchronous; `set` pairs and keys to `delete`).
pub fn qemu_config_put(
    node: &str,
    vmid: u32,
    set: &[(String, String)],
    delete: &[String],
) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Put, format!("{}/config", qemu(node, vmid)));
    r.params = set.to_vec();
    if !delete.is_empty() {
        r.params.push(("delete".into(), delete.join(",")));
    }
    r
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current`
pub fn qemu_status_current(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/status/current", qemu(node, vmid)))
}

/// `POST /nodes/{node}/qemu/{vmid}/status/start`
pub fn qemu_start(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/start", qemu(node, vmid)))
}

/// `POST /nodes/{node}/qemu/{vmid}/status/stop`
pub fn qemu_stop(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/stop", qemu(node, vmid)))
}

/// `POST /nodes/{node}/qemu/{vmid}/status/shutdown` (`timeout` seconds, `forceStop`); Proxmox
/// asks the guest agent when the VM has one enabled, else sends ACPI power-down.
pub fn qemu_shutdown(node: &str, vmid: u32, timeout: Option<u32>, force_stop: bool) -> RequestSpec {
    RequestSpec::new(
        Method::Post,
        format!("{}/status/shutdown", qemu(node, vmid)),
    )
    .opt("timeout", timeout.map(|t| t.to_string()))
    .flag("forceStop", force_stop)
}

/// `POST /nodes/{node}/qemu/{vmid}/status/reboot`
pub fn qemu_reboot(node: &str, vmid: u32, timeout: Option<u32>) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/status/reboot", qemu(node, vmid)))
        .opt("timeout", timeout.map(|t| t.to_string()))
}

/// `DELETE /nodes/{node}/qemu/{vmid}` (qemu has no `force`: a running VM is refused).
pub fn qemu_delete(
    node: &str,
    vmid: u32,
    purge: bool,
    destroy_unreferenced_disks: bool,
) -> RequestSpec {
    RequestSpec::new(Method::Delete, qemu(node, vmid))
        .flag("purge", purge)
        .flag("destroy-unreferenced-disks", destroy_unreferenced_disks)
}

/// `PUT /nodes/{node}/qemu/{vmid}/resize` (`size` like `8G` or `+2G`; grow only).
pub fn qemu_resize(node: &str, vmid: u32, disk: &str, size: &str) -> RequestSpec {
    RequestSpec::new(Method::Put, format!("{}/resize", qemu(node, vmid)))
        .param("disk", disk)
        .param("size", size)
}

/// `POST /nodes/{node}/qemu/{vmid}/clone`
pub fn qemu_clone(node: &str, vmid: u32, params: &CloneParams) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Post, format!("{}/clone", qemu(node, vmid)));
    r.params = params.to_qemu_form();
    r
}

/// `GET /nodes/{node}/qemu/{vmid}/pending`
pub fn qemu_pending(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/pending", qemu(node, vmid)))
}

/// `GET /nodes/{node}/qemu/{vmid}/snapshot`
pub fn qemu_snapshot_list(node: &str, vmid: u32) -> RequestSpec {
    snapshot_list_at(&qemu(node, vmid))
}

/// `POST /nodes/{node}/qemu/{vmid}/snapshot`
pub fn qemu_snapshot_create(
    node: &str,
    vmid: u32,
    name: &str,
    description: Option<&str>,
) -> RequestSpec {
    snapshot_create_at(&qemu(node, vmid), name, description)
}

/// `POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback`
pub fn qemu_snapshot_rollback(node: &str, vmid: u32, name: &str, start: bool) -> RequestSpec {
    snapshot_rollback_at(&qemu(node, vmid), name, start)
}

/// `DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}`
pub fn qemu_snapshot_delete(node: &str, vmid: u32, name: &str, force: bool) -> RequestSpec {
    snapshot_delete_at(&qemu(node, vmid), name, force)
}

/// `POST /nodes/{node}/qemu/{vmid}/template`
pub fn qemu_template(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/template", qemu(node, vmid)))
}

/// `GET /nodes/{node}/qemu/{vmid}/rrddata`
pub fn qemu_rrddata(
    node: &str,
    vmid: u32,
    timeframe: Timeframe,
    cf: Option<ConsolidationFn>,
) -> RequestSpec {
    RequestSpec::new(Method::Get, format!("{}/rrddata", qemu(node, vmid)))
        .param("timeframe", timeframe.as_str())
        .opt("cf", cf.map(|c| c.as_str()))
}

/// `POST /nodes/{node}/qemu/{vmid}/agent/ping`
pub fn agent_ping(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(Method::Post, format!("{}/agent/ping", qemu(node, vmid)))
}

/// `POST /nodes/{node}/qemu/{vmid}/agent/exec`: `command` is sent as one form value per
/// element (Proxmox's array parameter); `input_data` becomes the process's stdin.
pub fn agent_exec(
    node: &str,
    vmid: u32,
    command: &[String],
    input_data: Option<&str>,
) -> RequestSpec {
    let mut r = RequestSpec::new(Method::Post, format!("{}/agent/exec", qemu(node, vmid)));
    for part in command {
        r.params.push(("command".into(), part.clone()));
    }
    r.opt("input-data", input_data)
}

/// `GET /nodes/{node}/qemu/{vmid}/agent/exec-status?pid=`
pub fn agent_exec_status(node: &str, vmid: u32, pid: i64) -> RequestSpec {
    RequestSpec::new(
        Method::Get,
        format!("{}/agent/exec-status", qemu(node, vmid)),
    )
    .param("pid", pid.to_string())
}

/// `POST /nodes/{node}/qemu/{vmid}/agent/file-write`: `content` already base64 (`encode=0`),
/// so binary content survives.
pub fn agent_file_write(node: &str, vmid: u32, file: &str, content_base64: &str) -> RequestSpec {
    RequestSpec::new(
        Method::Post,
        format!("{}/agent/file-write", qemu(node, vmid)),
    )
    .param("file", file)
    .param("content", content_base64)
    .param("encode", "0")
}

/// `GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces`
pub fn agent_network_get_interfaces(node: &str, vmid: u32) -> RequestSpec {
    RequestSpec::new(
        Method::Get,
        format!("{}/agent/network-get-interfaces", qemu(node, vmid)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_bounded_patterns() {
        let upid: Upid = "UPID:pve1:0000A1B2:00C0FFEE:6553F1A0:vzstart:105:root@pam:"
            .parse()
            .unwrap();
        assert_eq!(
            task_status("pve1", &upid).endpoint(),
            "/nodes/{node}/tasks/{upid}/status"
        );
        assert_eq!(
            RequestSpec::new(Method::Post, "/nodes/pve2/lxc/105/status/start".into()).endpoint(),
            "/nodes/{node}/lxc/{vmid}/status/start"
        );
        assert_eq!(
            RequestSpec::new(Method::Get, "/cluster/resources".into()).endpoint(),
            "/cluster/resources"
        );
        assert_eq!(
            RequestSpec::new(Method::Get, "/nodes/pve1/storage/local/content".into()).endpoint(),
            "/nodes/{node}/storage/{storage}/content"
        );
    }

    #[test]
    fn debug_redacts_passwords() {
        let r = login("alice", "pve", "hunter22");
        assert_eq!(r.get("username"), Some("alice@pve"));
        let d = format!("{r:?}");
        assert!(!d.contains("hunter22"), "{d}");
        assert!(d.contains("***"));
    }

    #[test]
    fn builds_paths() {
        let u: Upid = "UPID:pve:00001234:1A2B3C4D:6500AAAA:vzstart:100:root@pam!tok:"
            .parse()
            .unwrap();
        assert_eq!(
            task_log("pve", &u, 10, 50).path,
            "/nodes/pve/tasks/UPID:pve:00001234:1A2B3C4D:6500AAAA:vzstart:100:root@pam!tok:/log"
        );
        let s = lxc_shutdown("pve", 100, Some(30), true);
        assert_eq!(s.get("forceStop"), Some("1"));
        assert_eq!(s.get("timeout"), Some("30"));
    }
}
