//! `/nodes/{node}/lxc...`: container list, create (`vzcreate`, `create` lock,
//! `start=1` forking a separate `vzstart`), destroy, config (GET/PUT with
//! `delete`, `revert`, `digest`, pending values on running CTs), status and
//! power actions with PVE's sync/async error split, rrddata, interfaces and
//! snapshots.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::guest_task::{self, GuestType};
use super::{Ctx, Reply};
use crate::auth::Identity;
use crate::backend::CreateSpec;
use crate::error::ApiError;
use crate::state::{Cluster, Ct, SimState, format_size_gib, frac};
use crate::tasks::{TaskCtx, TaskResult, spawn_task, step};
use crate::validate::{self, PVal};

/// Keys applied immediately on a running CT (fast-plug and hot-plug).
const LIVE_KEYS: &[&str] = &[
    "description",
    "onboot",
    "startup",
    "protection",
    "hostname",
    "hookscript",
    "cores",
    "tags",
    "lock",
    "cpulimit",
    "cpuunits",
    "memory",
    "swap",
];

/// Create parameters that are not config keys.
const CREATE_ONLY: &[&str] = &[
    "node",
    "vmid",
    "ostemplate",
    "password",
    "ssh-public-keys",
    "storage",
    "start",
    "force",
    "restore",
    "unique",
    "bwlimit",
    "ignore-unpack-errors",
    "pool",
    "ha-managed",
    "lock",
];

pub(crate) fn get_ct<'c>(c: &'c Cluster, node: &str, vmid: u32) -> Result<&'c Ct, ApiError> {
    c.cts
        .get(&vmid)
        .filter(|ct| ct.node == node)
        .ok_or_else(|| ApiError::no_config(node, vmid))
}

fn get_ct_mut<'c>(c: &'c mut Cluster, node: &str, vmid: u32) -> Result<&'c mut Ct, ApiError> {
    c.cts
        .get_mut(&vmid)
        .filter(|ct| ct.node == node)
        .ok_or_else(|| ApiError::no_config(node, vmid))
}

pub(crate) fn check_lock(ct: &Ct, skiplock: bool) -> Result<(), String> {
    match ct.lock() {
        Some(l) if !skiplock && l != "mounted" => Err(format!("CT is locked ({l})")),
        _ => Ok(()),
    }
}

/// A config value as JSON (numbers for integer/boolean/number keys).
pub fn conf_value(key: &str, v: &str) -> Value {
    match validate::config_type(key) {
        "integer" | "boolean" => v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
        "number" => v
            .parse::<f64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| json!(v)),
        _ => json!(v),
    }
}

/// `GET /nodes/{node}/lxc`.
pub fn list(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let ident = ctx.ident()?.clone();
    let c = ctx.state.lock();
    let list: Vec<Value> = c
        .cts
        .values()
        .filter(|ct| ct.node == node)
        .filter(|ct| c.has_priv(&ident, &format!("/vms/{}", ct.vmid), "VM.Audit"))
        .map(|ct| {
            let mut v = c.ct_status(ct, false);
            if let Some(m) = v.as_object_mut() {
                m.remove("type");
                m.remove("pid");
            }
            v
        })
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// `GET /nodes/{node}/lxc/{vmid}`: directory index.
pub fn diridx(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    get_ct(&c, &node, vmid)?;
    let subs = [
        "config",
        "pending",
        "status",
        "vncproxy",
        "termproxy",
        "vncwebsocket",
        "spiceproxy",
        "migrate",
        "clone",
        "rrd",
        "rrddata",
        "firewall",
        "snapshot",
        "resize",
        "interfaces",
    ];
    Ok(Reply::data(Value::Array(
        subs.iter().map(|s| json!({"subdir": s})).collect(),
    )))
}

/// Turn a `STORAGE:SIZE` volume request into an allocated volume id.
fn allocate_volume(
    c: &Cluster,
    ident: &Identity,
    key: &str,
    value: &str,
    vmid: u32,
    disk_index: &mut u32,
) -> Result<String, ApiError> {
    let Some(fmt) = validate::config_format(key) else {
        return Ok(value.to_string());
    };
    let mut parsed = validate::parse_property_string(fmt, value, key)
        .map_err(|e| ApiError::param(key, format!("invalid format - {e}\n")))?;
    let volume = parsed.get("volume").cloned().unwrap_or_default();
    if volume.starts_with('/') {
        if !ident.is_root_pam() {
            return Err(ApiError::internal(
                "Only root can pass arbitrary filesystem paths.",
            ));
        }
        return Ok(validate::print_property_string(fmt, &parsed));
    }
    let re = validate::perl_regex(r"([^:\s]+):(\d+(\.\d+)?)");
    let alloc = re.as_ref().and_then(|r| r.captures(&volume)).map(|cap| {
        (
            cap.get(1)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            cap.get(2)
                .and_then(|m| m.as_str().parse::<f64>().ok())
                .unwrap_or(4.0),
        )
    });
    if let Some((sid, gib)) = alloc {
        let Some(s) = c.storage(&sid) else {
            return Err(ApiError::internal(format!(
                "storage '{sid}' does not exist"
            )));
        };
        if !s.supports("rootdir") {
            return Err(ApiError::internal(format!(
                "storage '{sid}' does not support container directories"
            )));
        }
        let volid = s.disk_volid(vmid, *disk_index);
        *disk_index += 1;
        parsed.insert("volume".into(), volid);
        parsed.insert("size".into(), format_size_gib(gib));
    }
    Ok(validate::print_property_string(fmt, &parsed))
}

fn normalize_net(c: &mut Cluster, key: &str, value: &str) -> Result<String, ApiError> {
    let Some(fmt) = validate::config_format(key) else {
        return Ok(value.to_string());
    };
    let mut parsed = validate::parse_property_string(fmt, value, key)
        .map_err(|e| ApiError::param(key, format!("invalid format - {e}\n")))?;
    if !parsed.contains_key("hwaddr") {
        parsed.insert("hwaddr".into(), c.next_mac());
    }
    parsed.insert("type".into(), "veth".into());
    Ok(validate::print_property_string(fmt, &parsed))
}

fn normalize_generic(key: &str, value: &str) -> String {
    if key == "tags" {
        let mut seen = BTreeSet::new();
        return validate::split_list(value)
            .into_iter()
            .filter(|t| seen.insert(t.to_lowercase()))
            .collect::<Vec<_>>()
            .join(";");
    }
    if let Some(fmt) = validate::config_format(key)
        && let Ok(p) = validate::parse_property_string(fmt, value, key)
    {
        return validate::print_property_string(fmt, &p);
    }
    value.to_string()
}

fn features_without_nesting(v: Option<&String>) -> BTreeMap<String, String> {
    let Some(v) = v else {
        return BTreeMap::new();
    };
    let Some(fmt) = validate::config_format("features") else {
        return BTreeMap::new();
    };
    let mut p = validate::parse_property_string(fmt, v, "features").unwrap_or_default();
    p.remove("nesting");
    p.retain(|_, v| v != "0");
    p
}

/// `PVE::LXC::check_ct_modify_config_perm` for a new CT (no old config, nothing deleted):
/// the privilege each option needs on the guest (or its pool), storage space for new disks,
/// `SDN.Use` on each bridge, and the options only `root@pam` may set. Options are checked in
/// sorted order (Proxmox walks a hash, so its first complaint may differ).
fn check_config_perm(
    c: &Cluster,
    ident: &Identity,
    vmid: u32,
    pool: Option<&str>,
    config: &[(String, String)],
    unprivileged: bool,
) -> Result<(), ApiError> {
    if ident.is_root_pam() {
        return Ok(());
    }
    let vm = |privilege: &str| -> Result<(), ApiError> {
        if c.has_vm_priv(ident, vmid, pool, privilege) {
            Ok(())
        } else {
            Err(ApiError::perm(&format!("/vms/{vmid}"), privilege))
        }
    };
    let mut sorted: Vec<&(String, String)> = config.iter().collect();
    sorted.sort();
    for (opt, value) in sorted {
        let opt = opt.as_str();
        let numbered = |prefix: &str| {
            opt.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if matches!(opt, "cores" | "cpuunits" | "cpulimit") {
            vm("VM.Config.CPU")?;
        } else if opt == "rootfs" || numbered("mp") {
            vm("VM.Config.Disk")?;
            let volume = validate::config_format(opt)
                .and_then(|fmt| validate::parse_property_string(fmt, value, opt).ok())
                .and_then(|m| m.get("volume").cloned())
                .unwrap_or_default();
            if volume.starts_with('/') {
                let kind = if volume.starts_with("/dev/") {
                    "device"
                } else {
                    "bind"
                };
                return Err(ApiError::perm_text(&format!(
                    "mount point type {kind} is only allowed for root@pam"
                )));
            }
            let new_disk = validate::perl_regex(r"(?:([^/:\s]+):)?(\d+(\.\d+)?)").and_then(|re| {
                re.captures(&volume)
                    .map(|cap| cap.get(1).map(|m| m.as_str().to_owned()))
            });
            match new_disk {
                Some(sid) => {
                    let path = format!("/storage/{}", sid.unwrap_or_default());
                    if !c.has_priv(ident, &path, "Datastore.AllocateSpace") {
                        return Err(ApiError::perm(&path, "Datastore.AllocateSpace"));
                    }
                }
                None => check_volume_owner(c, ident, vmid, &volume)?,
            }
        } else if matches!(opt, "memory" | "swap") {
            vm("VM.Config.Memory")?;
        } else if numbered("net") {
            vm("VM.Config.Network")?;
            let net = validate::config_format(opt)
                .and_then(|fmt| validate::parse_property_string(fmt, value, opt).ok())
                .unwrap_or_default();
            if let Some(bridge) = net.get("bridge") {
                let zone = "localnetwork";
                match net.get("tag") {
                    Some(tag) => {
                        let path = format!("/sdn/zones/{zone}/{bridge}/{tag}");
                        if !c.has_priv(ident, &path, "SDN.Use") {
                            return Err(ApiError::perm(&path, "SDN.Use"));
                        }
                    }
                    None if !net.contains_key("trunks")
                        && !c.has_bridge_access(ident, zone, bridge) =>
                    {
                        return Err(ApiError::perm(
                            &format!("/sdn/zones/{zone}/{bridge}"),
                            "SDN.Use",
                        ));
                    }
                    None => {}
                }
            }
        } else if numbered("dev") {
            return Err(ApiError::perm_text(
                "configuring device passthrough is only allowed for root@pam",
            ));
        } else if matches!(opt, "nameserver" | "searchdomain" | "hostname") {
            vm("VM.Config.Network")?;
        } else if opt == "features" {
            if !unprivileged {
                return Err(ApiError::perm_text(
                    "changing feature flags for privileged container is only allowed for root@pam",
                ));
            }
            let features = validate::config_format("features")
                .and_then(|fmt| validate::parse_property_string(fmt, value, "features").ok())
                .unwrap_or_default();
            let nesting_on = features
                .get("nesting")
                .is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "no" | "off"));
            if features.len() == 1 && nesting_on {
                vm("VM.Allocate")?;
            } else if !features.is_empty() {
                return Err(ApiError::perm_text(
                    "changing feature flags (except nesting) is only allowed for root@pam",
                ));
            }
        } else if opt == "hookscript" {
            return Err(ApiError::perm_text(
                "changing the hookscript is only allowed for root@pam",
            ));
        } else if opt == "tags" {
            // `assert_tag_permissions` with the default `user-tag-access` (free tags).
            if !c.has_priv(ident, &format!("/vms/{vmid}"), "VM.Config.Options") {
                return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.Config.Options"));
            }
        } else {
            vm("VM.Config.Options")?;
        }
    }
    Ok(())
}

/// `PVE::Storage::check_volume_access` for an existing volume used as a mount point: the
/// guest's own disks, else Datastore.Allocate on its storage.
fn check_volume_owner(
    c: &Cluster,
    ident: &Identity,
    vmid: u32,
    volid: &str,
) -> Result<(), ApiError> {
    let sid = volid.split_once(':').map(|(s, _)| s).unwrap_or_default();
    let own = volid.contains(&format!("-{vmid}-"));
    let path = format!("/storage/{sid}");
    if own || c.has_priv(ident, &path, "Datastore.Allocate") {
        Ok(())
    } else {
        Err(ApiError::perm(&path, "Datastore.Allocate"))
    }
}

/// `PVE::Storage::check_volume_access` for the OS template (`vztmpl`): read access to its
/// storage, since custom templates may be sensitive.
fn check_template_access(c: &Cluster, ident: &Identity, ostemplate: &str) -> Result<(), ApiError> {
    if ident.is_root_pam() {
        return Ok(());
    }
    let Some((sid, _)) = ostemplate.split_once(':') else {
        return Err(ApiError::internal(
            "Only root can pass arbitrary filesystem paths.",
        ));
    };
    let path = format!("/storage/{sid}");
    if c.has_priv(ident, &path, "Datastore.Allocate")
        || c.has_priv(ident, &path, "Datastore.AllocateSpace")
        || c.has_priv(ident, &path, "Datastore.Audit")
    {
        Ok(())
    } else {
        Err(ApiError::perm_text(&format!(
            "{path}, Datastore.AllocateSpace|Datastore.Audit"
        )))
    }
}

/// `POST /nodes/{node}/lxc`: create a CT (task `vzcreate`).
pub fn create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let p = &ctx.params;
    let mut c = ctx.state.lock();
    let pool = p.str("pool");
    // The order of Proxmox's `create_vm`: privileged needs Sys.Modify on `/`, the VMID must be
    // free, the keys must parse, the pool must exist, then VM.Allocate on the guest or pool.
    let unprivileged = p.flag("unprivileged", true);
    if !unprivileged && !c.has_priv(&ident, "/", "Sys.Modify") {
        return Err(ApiError::perm("/", "Sys.Modify"));
    }
    c.check_vmid_unused(vmid).map_err(ApiError::internal)?;
    if let Some(keys) = p.str("ssh-public-keys") {
        for line in keys
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut parts = line.split_whitespace();
            let kind = parts.next().unwrap_or("");
            let blob = parts.next().unwrap_or("");
            let ok =
                (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                    && blob.len() > 16
                    && blob
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "+/=".contains(ch));
            if !ok {
                return Err(ApiError::param(
                    "ssh-public-keys",
                    format!("unable to parse ssh public key '{line}'"),
                ));
            }
        }
    }
    if let Some(pl) = &pool
        && !c.pools.contains_key(pl)
    {
        return Err(ApiError::perm_text(&format!("pool '{pl}' does not exist")));
    }
    let vm_path = format!("/vms/{vmid}");
    let allowed = c.has_priv(&ident, &vm_path, "VM.Allocate")
        || pool
            .as_ref()
            .is_some_and(|pl| c.has_priv(&ident, &format!("/pool/{pl}"), "VM.Allocate"));
    if !allowed {
        return Err(ApiError::perm(&vm_path, "VM.Allocate"));
    }
    let config: Vec<(String, String)> = p
        .iter()
        .filter(|(k, _)| !CREATE_ONLY.contains(&k.as_str()) && k.as_str() != "unprivileged")
        .map(|(k, v)| (k.clone(), v.to_text()))
        .collect();
    check_config_perm(&c, &ident, vmid, pool.as_deref(), &config, unprivileged)?;
    check_template_access(&c, &ident, &p.str("ostemplate").unwrap_or_default())?;
    if !p.has("rootfs") {
        let storage = p.str("storage").unwrap_or_else(|| "local".into());
        if !c.has_priv(
            &ident,
            &format!("/storage/{storage}"),
            "Datastore.AllocateSpace",
        ) {
            return Err(ApiError::perm(
                &format!("/storage/{storage}"),
                "Datastore.AllocateSpace",
            ));
        }
    }
    let ostemplate = ctx.p("ostemplate")?;
    let (tsid, tfile) = ostemplate
        .split_once(':')
        .ok_or_else(|| ApiError::internal(format!("unable to parse volume ID '{ostemplate}'")))?;
    if c.storage(tsid).is_none() {
        return Err(ApiError::internal(format!(
            "storage '{tsid}' does not exist"
        )));
    }
    let tmpl = c
        .volumes
        .iter()
        .find(|v| v.volid == ostemplate && v.node.as_deref().map(|n| n == node).unwrap_or(true))
        .cloned();
    let Some(tmpl) = tmpl else {
        return Err(ApiError::internal(format!(
            "volume '{ostemplate}' does not exist"
        )));
    };
    if !c
        .storages
        .iter()
        .any(|s| s.id == tsid && s.supports("vztmpl"))
    {
        return Err(ApiError::internal(format!(
            "storage '{tsid}' does not support templates"
        )));
    }
    let file = tfile.rsplit('/').next().unwrap_or(tfile).to_string();

    // Build the config.
    let mut conf: BTreeMap<String, String> = BTreeMap::new();
    let mut disk_index = 0u32;
    let storage = p.str("storage").unwrap_or_else(|| "local".into());
    let rootfs = p.str("rootfs").unwrap_or_else(|| format!("{storage}:4"));
    conf.insert(
        "rootfs".into(),
        allocate_volume(&c, &ident, "rootfs", &rootfs, vmid, &mut disk_index)?,
    );
    let ostype = p.str("ostype").unwrap_or_else(|| {
        let f = file.to_lowercase();
        [
            "debian",
            "ubuntu",
            "alpine",
            "centos",
            "fedora",
            "archlinux",
            "opensuse",
            "gentoo",
            "devuan",
            "nixos",
        ]
        .iter()
        .find(|o| f.starts_with(*o))
        .map(|o| o.to_string())
        .unwrap_or_else(|| {
            if f.starts_with("rocky") || f.starts_with("alma") {
                "centos".into()
            } else {
                "unmanaged".into()
            }
        })
    });
    conf.insert("ostype".into(), ostype);
    conf.insert(
        "arch".into(),
        p.str("arch").unwrap_or_else(|| "amd64".into()),
    );
    conf.insert(
        "hostname".into(),
        p.str("hostname").unwrap_or_else(|| format!("CT{vmid}")),
    );
    conf.insert(
        "memory".into(),
        p.str("memory").unwrap_or_else(|| "512".into()),
    );
    conf.insert("swap".into(), p.str("swap").unwrap_or_else(|| "512".into()));
    conf.insert(
        "unprivileged".into(),
        if unprivileged { "1" } else { "0" }.into(),
    );
    for (k, v) in p.iter() {
        if CREATE_ONLY.contains(&k.as_str()) || conf.contains_key(k) || k == "unprivileged" {
            continue;
        }
        let text = v.to_text();
        let value = if k.starts_with("net") {
            normalize_net(&mut c, k, &text)?
        } else if k.starts_with("mp") {
            allocate_volume(&c, &ident, k, &text, vmid, &mut disk_index)?
        } else if matches!(v, PVal::Bool(_)) {
            text
        } else {
            normalize_generic(k, &text)
        };
        conf.insert(k.clone(), value);
    }
    conf.insert("lock".into(), "create".into());
    let now = c.now();
    c.cts.insert(
        vmid,
        Ct {
            vmid,
            node: node.clone(),
            conf,
            pending: BTreeMap::new(),
            pending_delete: BTreeSet::new(),
            running: false,
            started_at: None,
            created_at: now,
            history: Vec::new(),
            snapshots: BTreeMap::new(),
            parent: None,
            hang_on_shutdown: false,
        },
    );
    let spec = CreateSpec {
        hostname: p.str("hostname").unwrap_or_else(|| format!("CT{vmid}")),
        ostemplate: ostemplate.clone(),
        password: p.str("password"),
        ssh_public_keys: p.str("ssh-public-keys"),
        conf: c
            .cts
            .get(&vmid)
            .map(|ct| ct.conf.clone())
            .unwrap_or_default(),
        node: node.clone(),
        snapname: None,
    };
    let start = p.flag("start", false);
    let ident2 = ident.clone();
    let node2 = node.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzcreate",
        &vmid.to_string(),
        &ident,
        move |t| create_body(t, node2, vmid, spec, file, tmpl.size, pool, start, ident2),
    );
    Ok(Reply::data(json!(upid)))
}

#[allow(clippy::too_many_arguments)]
async fn create_body(
    t: TaskCtx,
    node: String,
    vmid: u32,
    spec: CreateSpec,
    file: String,
    size: u64,
    pool: Option<String>,
    start: bool,
    ident: Identity,
) -> TaskResult {
    let total = t.with(|c| c.timings.create);
    let d = step(total, 5);
    t.log(format!(
        "extracting archive '/var/lib/vz/template/cache/{file}'"
    ));
    t.sleep(d).await;
    t.sleep(d).await;
    t.log(format!(
        "Total bytes read: {} ({}MiB, 187MiB/s)",
        size * 4,
        size * 4 / (1024 * 1024)
    ));
    t.log("Detected container architecture: amd64");
    t.sleep(d).await;
    for kt in ["rsa", "ecdsa", "ed25519"] {
        t.log(format!(
            "Creating SSH host key 'ssh_host_{kt}_key' - this may take some time ..."
        ));
        let h = frac(u64::from(vmid), kt.len() as u64);
        t.log(format!(
            "done: SHA256:{:043x} root@{}",
            (h * 1e15) as u64,
            spec.hostname
        ));
    }
    t.sleep(d).await;
    let backend = t.state().backend().clone();
    let b2 = backend.clone();
    let res = tokio::task::spawn_blocking(move || b2.create(vmid, &spec))
        .await
        .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
    t.sleep(d).await;
    match res {
        Ok(lines) => {
            for l in lines {
                t.log(l);
            }
        }
        Err(e) => {
            t.with(|c| {
                c.cts.remove(&vmid);
            });
            let _ = tokio::task::spawn_blocking(move || backend.destroy(vmid)).await;
            return Err(format!("unable to create CT {vmid} - {e}"));
        }
    }
    let state = t.state().clone();
    t.with(|c| {
        if let Some(ct) = c.cts.get_mut(&vmid) {
            ct.conf.remove("lock");
        }
        if let Some(pl) = pool.and_then(|pl| c.pools.get_mut(&pl)) {
            pl.vms.insert(vmid);
        }
        if start && c.cts.contains_key(&vmid) {
            spawn_start(&state, c, &node, vmid, false, &ident);
        }
    });
    Ok(0)
}

/// Fork a `vzstart` task.
pub fn spawn_start(
    state: &SimState,
    c: &mut Cluster,
    node: &str,
    vmid: u32,
    skiplock: bool,
    ident: &Identity,
) -> String {
    let node_name = node.to_string();
    spawn_task(
        state,
        c,
        node,
        "vzstart",
        &vmid.to_string(),
        ident,
        move |t| async move {
            let d = t.with(|c| c.timings.start);
            t.sleep(d).await;
            let res = t.with(|c| {
                let bridges = c.bridges.clone();
                let now = c.now();
                let ct = c.cts.get_mut(&vmid).ok_or_else(|| {
                    format!("Configuration file 'nodes/{node_name}/lxc/{vmid}.conf' does not exist")
                })?;
                check_lock(ct, skiplock)?;
                if ct.conf.get("template").map(String::as_str) == Some("1") {
                    return Err("you can't start a CT if it's a template".to_string());
                }
                for (k, v) in ct.conf.iter().filter(|(k, _)| k.starts_with("net")) {
                    let bridge = v.split(',').find_map(|p| p.strip_prefix("bridge="));
                    if let Some(b) = bridge
                        && !bridges.iter().any(|x| x == b)
                    {
                        let _ = k;
                        return Err(format!("bridge '{b}' does not exist"));
                    }
                }
                apply_pending(ct);
                let _ = now;
                Ok(ct.conf.clone())
            });
            let conf = res?;
            let backend = t.state().backend().clone();
            tokio::task::spawn_blocking(move || {
                backend.configure(vmid, &conf)?;
                backend.start(vmid)
            })
            .await
            .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
            .map_err(|e| format!("startup for container '{vmid}' failed: {e}"))?;
            t.with(|c| {
                let now = c.now();
                if let Some(ct) = c.cts.get_mut(&vmid) {
                    ct.set_running(now);
                }
            });
            Ok(0)
        },
    )
}

fn apply_pending(ct: &mut Ct) {
    for (k, v) in std::mem::take(&mut ct.pending) {
        ct.conf.insert(k, v);
    }
    for k in std::mem::take(&mut ct.pending_delete) {
        ct.conf.remove(&k);
    }
}

/// `DELETE /nodes/{node}/lxc/{vmid}` (task `vzdestroy`).
pub fn destroy(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let force = ctx.params.flag("force", false);
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    if ct.conf.get("protection").map(String::as_str) == Some("1") {
        return Err(ApiError::internal(format!(
            "can't remove CT {vmid} - protection mode enabled"
        )));
    }
    check_lock(ct, false).map_err(ApiError::internal)?;
    if ct.running && !force {
        return Err(ApiError::internal(format!(
            "unable to destroy CT {vmid} - container is running"
        )));
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzdestroy",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.destroy);
            let (was_running, volumes) = t.with(|c| {
                let ct = c.cts.get(&vmid);
                (
                    ct.map(|ct| ct.running).unwrap_or(false),
                    ct.map(|ct| {
                        ct.conf
                            .iter()
                            .filter(|(k, _)| {
                                *k == "rootfs" || k.starts_with("mp") || k.starts_with("unused")
                            })
                            .map(|(_, v)| v.split(',').next().unwrap_or("").to_string())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                )
            });
            if was_running {
                t.log(format!("forced to stop CT {vmid} before destroying!"));
                t.with(|c| {
                    let now = c.now();
                    if let Some(ct) = c.cts.get_mut(&vmid) {
                        ct.set_stopped(now);
                    }
                });
                let backend = t.state().backend().clone();
                let _ = tokio::task::spawn_blocking(move || backend.stop(vmid)).await;
            }
            t.sleep(d).await;
            for v in volumes {
                let name = v
                    .split(':')
                    .nth(1)
                    .unwrap_or(&v)
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                t.log(format!("  Logical volume \"{name}\" successfully removed."));
            }
            t.with(|c| {
                c.cts.remove(&vmid);
                for p in c.pools.values_mut() {
                    p.vms.remove(&vmid);
                }
            });
            let backend = t.state().backend().clone();
            tokio::task::spawn_blocking(move || backend.destroy(vmid))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))?;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `GET /nodes/{node}/lxc/{vmid}/config` (`current`, `snapshot`).
pub fn config_get(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    let conf = match ctx.params.str("snapshot") {
        Some(s) => ct
            .snapshots
            .get(&s)
            .map(|sn| sn.conf.clone())
            .ok_or_else(|| ApiError::internal(format!("snapshot '{s}' does not exist")))?,
        None => ct.effective_conf(ctx.params.flag("current", false)),
    };
    let mut m = Map::new();
    for (k, v) in &conf {
        m.insert(k.clone(), conf_value(k, v));
    }
    m.insert("digest".into(), json!(ct.digest()));
    Ok(Reply::data(Value::Object(m)))
}

/// `PUT /nodes/{node}/lxc/{vmid}/config`.
pub fn config_put(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let p = &ctx.params;
    let skiplock = p.flag("skiplock", false);
    if skiplock && !ident.is_root_pam() {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    check_lock(ct, skiplock).map_err(ApiError::internal)?;
    if let Some(d) = p.str("digest")
        && d != ct.digest()
    {
        return Err(ApiError::internal(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    let deletes: Vec<String> = p
        .str("delete")
        .map(|d| validate::split_list(&d))
        .unwrap_or_default();
    let reverts: Vec<String> = p
        .str("revert")
        .map(|d| validate::split_list(&d))
        .unwrap_or_default();
    let sets: Vec<(String, PVal)> = p
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "node" | "vmid" | "delete" | "revert" | "digest" | "skiplock"
            )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if sets.is_empty() && deletes.is_empty() && reverts.is_empty() {
        return Err(ApiError::internal("no options specified"));
    }
    for d in &deletes {
        if sets.iter().any(|(k, _)| k == d) {
            return Err(ApiError::param(d, "conflicting delete and set"));
        }
        if d == "rootfs" {
            return Err(ApiError::param(
                "delete",
                "unable to delete required option 'rootfs'",
            ));
        }
    }
    if !ident.is_root_pam() {
        let old = features_without_nesting(ct.effective_conf(false).get("features"));
        let new = if deletes.iter().any(|d| d == "features") {
            BTreeMap::new()
        } else {
            match sets.iter().find(|(k, _)| k == "features") {
                Some((_, v)) => features_without_nesting(Some(&v.to_text())),
                None => old.clone(),
            }
        };
        if old != new {
            return Err(ApiError::perm_text(
                "changing feature flags (except nesting) is only allowed for root@pam",
            ));
        }
    }
    let running = ct.running;
    let mut disk_index = ct
        .conf
        .keys()
        .filter(|k| *k == "rootfs" || k.starts_with("mp") || k.starts_with("unused"))
        .count() as u32;
    let mut normalized: Vec<(String, String)> = Vec::new();
    for (k, v) in &sets {
        let text = v.to_text();
        let value = if k.starts_with("net") {
            normalize_net(&mut c, k, &text)?
        } else if k == "rootfs" || k.starts_with("mp") {
            allocate_volume(&c, &ident, k, &text, vmid, &mut disk_index)?
        } else if matches!(v, PVal::Bool(_)) {
            text
        } else {
            normalize_generic(k, &text)
        };
        normalized.push((k.clone(), value));
    }
    let ct = get_ct_mut(&mut c, &node, vmid)?;
    for r in &reverts {
        ct.pending.remove(r);
        ct.pending_delete.remove(r);
    }
    let live = |k: &str| {
        LIVE_KEYS.contains(&k) || k.starts_with("net") || (k.starts_with("mp") && k != "mp")
    };
    for (k, v) in normalized {
        if !running || live(&k) {
            ct.pending.remove(&k);
            ct.pending_delete.remove(&k);
            ct.conf.insert(k, v);
        } else {
            ct.pending_delete.remove(&k);
            ct.pending.insert(k, v);
        }
    }
    for d in deletes {
        if !running || live(&d) {
            ct.pending.remove(&d);
            ct.conf.remove(&d);
        } else {
            ct.pending.remove(&d);
            if ct.conf.contains_key(&d) {
                ct.pending_delete.insert(d);
            }
        }
    }
    Ok(Reply::null())
}

/// `GET /nodes/{node}/lxc/{vmid}/pending`.
pub fn pending(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    let keys: BTreeSet<&String> = ct.conf.keys().chain(ct.pending.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let mut m = Map::new();
        m.insert("key".into(), json!(k));
        if let Some(v) = ct.conf.get(k) {
            m.insert("value".into(), conf_value(k, v));
        }
        if let Some(v) = ct.pending.get(k) {
            m.insert("pending".into(), conf_value(k, v));
        }
        if ct.pending_delete.contains(k) {
            m.insert("delete".into(), json!(1));
        }
        out.push(Value::Object(m));
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET /nodes/{node}/lxc/{vmid}/status/current`.
pub fn status_current(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    let mut st = c.ct_status(ct, true);
    let running = ct.running;
    drop(c);
    if running && let Some(u) = ctx.state.backend().usage(vmid) {
        overlay_usage(&mut st, &u);
    }
    Ok(Reply::data(st))
}

/// Replace synthesized status numbers with a real backend's measurements.
fn overlay_usage(st: &mut Value, u: &crate::backend::Usage) {
    if let Some(o) = st.as_object_mut() {
        o.insert("cpu".into(), json!(u.cpu));
        o.insert("mem".into(), json!(u.mem));
        o.insert("swap".into(), json!(u.swap));
        o.insert("netin".into(), json!(u.netin));
        o.insert("netout".into(), json!(u.netout));
        o.insert("diskread".into(), json!(u.diskread));
        o.insert("diskwrite".into(), json!(u.diskwrite));
        if let Some(p) = u.pid {
            o.insert("pid".into(), json!(p));
        }
        if let Some(d) = u.disk {
            o.insert("disk".into(), json!(d));
        }
    }
}

/// `POST …/status/start` (task `vzstart`).
pub fn start(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let skiplock = ctx.params.flag("skiplock", false);
    if skiplock && !ident.is_root_pam() {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    if ct.running {
        return Err(ApiError::internal(format!("CT {vmid} already running")));
    }
    let upid = spawn_start(ctx.state, &mut c, &node, vmid, skiplock, &ident);
    Ok(Reply::data(json!(upid)))
}

async fn stop_now(t: &TaskCtx, vmid: u32, clean: bool) {
    let backend = t.state().backend().clone();
    let _ = tokio::task::spawn_blocking(move || {
        if clean {
            backend.shutdown(vmid)
        } else {
            backend.stop(vmid)
        }
    })
    .await;
    t.with(|c| {
        let now = c.now();
        if let Some(ct) = c.cts.get_mut(&vmid) {
            ct.set_stopped(now);
        }
    });
}

/// `POST …/status/stop` (task `vzstop`).
pub fn stop(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let skiplock = ctx.params.flag("skiplock", false);
    if skiplock && !ident.is_root_pam() {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    if !ct.running {
        return Err(ApiError::internal(format!("CT {vmid} not running")));
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzstop",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.stop);
            t.with(|c| {
                c.cts
                    .get(&vmid)
                    .map(|ct| check_lock(ct, skiplock))
                    .unwrap_or(Ok(()))
            })?;
            t.sleep(d).await;
            stop_now(&t, vmid, false).await;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/shutdown` (`timeout`, `forceStop`; task `vzshutdown`).
pub fn shutdown(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let timeout = ctx.params.int("timeout").unwrap_or(60).max(0) as u64;
    let force = ctx.params.flag("forceStop", false);
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    if !ct.running {
        return Err(ApiError::internal(format!("CT {vmid} not running")));
    }
    let hang = ct.hang_on_shutdown;
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzshutdown",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.shutdown);
            t.with(|c| {
                c.cts
                    .get(&vmid)
                    .map(|ct| check_lock(ct, false))
                    .unwrap_or(Ok(()))
            })?;
            if hang {
                // Wait the timeout (scaled down to the shutdown duration when that is shorter).
                let wait = std::time::Duration::from_secs(timeout)
                    .min(d.max(std::time::Duration::from_millis(1)) * 10);
                t.sleep(wait).await;
                if !force {
                    return Err("container did not stop".into());
                }
                t.log(format!(
                    "container did not stop within {timeout} seconds, forcing stop"
                ));
                stop_now(&t, vmid, false).await;
                return Ok(1);
            }
            t.sleep(d).await;
            stop_now(&t, vmid, true).await;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/reboot` (task `vzreboot`; applies pending changes).
pub fn reboot(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    if !ct.running {
        return Err(ApiError::internal(format!("VM {vmid} not running")));
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzreboot",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.reboot);
            t.with(|c| {
                c.cts
                    .get(&vmid)
                    .map(|ct| check_lock(ct, false))
                    .unwrap_or(Ok(()))
            })?;
            t.sleep(d / 2).await;
            stop_now(&t, vmid, true).await;
            t.sleep(d / 2).await;
            let conf = t.with(|c| {
                let now = c.now();
                c.cts.get_mut(&vmid).map(|ct| {
                    apply_pending(ct);
                    ct.set_running(now);
                    ct.conf.clone()
                })
            });
            let backend = t.state().backend().clone();
            tokio::task::spawn_blocking(move || {
                if let Some(conf) = conf {
                    backend.configure(vmid, &conf)?;
                }
                backend.start(vmid)
            })
            .await
            .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
            .map_err(|e| format!("startup for container '{vmid}' failed: {e}"))?;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `GET …/rrddata` (`timeframe`, `cf`).
pub fn rrddata(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let tf = ctx.p("timeframe")?;
    let max = ctx.params.str("cf").as_deref() == Some("MAX");
    let c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    let st = c.ct_status(ct, false);
    let cpus = st.get("cpus").and_then(Value::as_f64).unwrap_or(1.0);
    let mut points = crate::rrd::ct_points(ct, cpus, c.now(), &tf, max);
    let running = ct.running;
    drop(c);
    // A real backend measures the present: the newest bucket gets its numbers.
    if running
        && let Some(u) = ctx.state.backend().usage(vmid)
        && let Some(last) = points
            .iter_mut()
            .rev()
            .find(|p| p.get("cpu").is_some())
            .and_then(Value::as_object_mut)
    {
        last.insert("cpu".into(), json!(u.cpu));
        last.insert("mem".into(), json!(u.mem as f64));
    }
    Ok(Reply::data(Value::Array(points)))
}

fn addr_entry(ip: &str, ty: &str) -> Value {
    let (a, prefix) = ip.split_once('/').unwrap_or((ip, "24"));
    json!({"ip-address": a, "ip-address-type": ty, "prefix": prefix.parse::<u32>().unwrap_or(24)})
}

/// `GET …/interfaces`: `null` when stopped.
pub fn interfaces(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let running = get_ct(&ctx.state.lock(), &node, vmid)?.running;
    if !running {
        return Ok(Reply::null());
    }
    if let Some(real) = ctx.state.backend().interfaces(vmid) {
        return Ok(Reply::data(real));
    }
    let c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    let mut out = vec![json!({
        "name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
        "inet": "127.0.0.1/8", "inet6": "::1/128",
        "ip-addresses": [addr_entry("127.0.0.1/8", "inet"), addr_entry("::1/128", "inet6")],
    })];
    for (k, v) in ct.conf.iter().filter(|(k, _)| k.starts_with("net")) {
        let Some(fmt) = validate::config_format(k) else {
            continue;
        };
        let Ok(p) = validate::parse_property_string(fmt, v, k) else {
            continue;
        };
        let name = p.get("name").cloned().unwrap_or_else(|| "eth0".into());
        let mac = p.get("hwaddr").cloned().unwrap_or_default();
        let ip = match p.get("ip").map(String::as_str) {
            Some("dhcp") => Some(format!(
                "10.10.{}.{}/16",
                (vmid / 250) % 250,
                vmid % 250 + 2
            )),
            Some("manual") | None => None,
            Some(s) => Some(s.to_string()),
        };
        let m: Vec<&str> = mac.split(':').collect();
        let ll = if m.len() == 6 {
            let b0 = u8::from_str_radix(m[0], 16).unwrap_or(0) ^ 0x02;
            format!(
                "fe80::{:02x}{}:{}ff:fe{}:{}{}/64",
                b0, m[1], m[2], m[3], m[4], m[5]
            )
            .to_lowercase()
        } else {
            "fe80::1/64".into()
        };
        let mut addrs = Vec::new();
        let mut e = Map::new();
        e.insert("name".into(), json!(name));
        e.insert("hwaddr".into(), json!(mac.to_lowercase()));
        e.insert("hardware-address".into(), json!(mac.to_lowercase()));
        if let Some(ip) = &ip {
            e.insert("inet".into(), json!(ip));
            addrs.push(addr_entry(ip, "inet"));
        }
        e.insert("inet6".into(), json!(ll));
        addrs.push(addr_entry(&ll, "inet6"));
        e.insert("ip-addresses".into(), Value::Array(addrs));
        out.push(Value::Object(e));
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET …/snapshot`: snapshots plus the `current` pseudo entry.
pub fn snapshot_list(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_list(ctx, GuestType::Lxc)
}

/// `POST …/snapshot` (task `vzsnapshot`).
pub fn snapshot_create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_create(ctx, GuestType::Lxc)
}

/// `GET …/snapshot/{snapname}`: directory index.
pub fn snapshot_idx(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_idx(ctx)
}

/// `DELETE …/snapshot/{snapname}` (task `vzdelsnapshot`).
pub fn snapshot_delete(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_delete(ctx, GuestType::Lxc)
}

/// `POST …/snapshot/{snapname}/rollback` (task `vzrollback`; ZFS refuses while newer
/// snapshots exist).
pub fn snapshot_rollback(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let name = ctx.p("snapname")?;
    let ident = ctx.ident()?.clone();
    let start_after = ctx.params.flag("start", false);
    let mut c = ctx.state.lock();
    let ct = guest_task::rollback_checks(&c, GuestType::Lxc, &node, vmid, &name)?;
    if let Some(e) = super::lxc_daytwo::rollback_blocked(&c, ct, &name) {
        return Err(ApiError::internal(e));
    }
    let state = ctx.state.clone();
    let node2 = node.clone();
    let ident2 = ident.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzrollback",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            // Proxmox holds `lock: rollback` in the config while it runs.
            if guest_task::rollback_lock(&t, GuestType::Lxc, vmid) == Some(true) {
                stop_now(&t, vmid, false).await;
            }
            guest_task::rollback_restore(&t, GuestType::Lxc, vmid, &name).await?;
            if start_after {
                t.with(|c| {
                    spawn_start(&state, c, &node2, vmid, false, &ident2);
                });
            }
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}
