//! Day-two container operations as pve-container serves them: `PUT …/resize` (task `resize`,
//! grow only), `POST …/clone` (task `vzclone`: full copy, or linked from a template; the source
//! holds `lock: disk` and the new CT `lock: create` while it runs) and `POST …/template`
//! (task `vztemplate`, answered with `null`). The checks, their order and their texts follow
//! `PVE::API2::LXC` (`resize_vm`, `clone_vm`, `template`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::lxc::{check_lock, get_ct};
use super::{Ctx, Reply};
use crate::backend::CreateSpec;
use crate::error::ApiError;
use crate::state::{Cluster, Ct, parse_size};
use crate::tasks::{spawn_task, step};
use crate::validate;

/// The storage id of a volume id (`local-lvm:vm-100-disk-0` → `local-lvm`).
fn storage_of(volid: &str) -> Option<&str> {
    volid.split_once(':').map(|(s, _)| s)
}

/// A mount point value parsed with its schema format (`rootfs`, `mpN`).
fn parse_mp(key: &str, value: &str) -> BTreeMap<String, String> {
    validate::config_format(key)
        .and_then(|fmt| validate::parse_property_string(fmt, value, key).ok())
        .unwrap_or_default()
}

fn print_mp(key: &str, parsed: &BTreeMap<String, String>, fallback: &str) -> String {
    validate::config_format(key)
        .map(|fmt| validate::print_property_string(fmt, parsed))
        .unwrap_or_else(|| fallback.to_owned())
}

/// Whether `key` is a mount point key (`rootfs`, `mpN`).
fn is_mp_key(key: &str) -> bool {
    key == "rootfs"
        || key
            .strip_prefix("mp")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the CT is a template (`template: 1`).
pub fn is_template(ct: &Ct) -> bool {
    ct.conf.get("template").is_some_and(|v| v == "1")
}

/// Size in bytes as PVE prints it in `size=` (whole GiB as `G`, else `M`, else bytes).
fn print_size(bytes: u64) -> String {
    const GIB: u64 = 1024 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(GIB) {
        format!("{}G", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// `PUT /nodes/{node}/lxc/{vmid}/resize` (task `resize`).
pub fn resize(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let disk = ctx.p("disk")?;
    let sizestr = ctx.p("size")?;
    let (ext, number) = match sizestr.strip_prefix('+') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, sizestr.clone()),
    };
    let request = parse_size(&number).ok_or_else(|| ApiError::internal("invalid size string"))?;
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    check_lock(ct, false).map_err(ApiError::internal)?;
    // `check_ct_modify_config_perm` sees the remaining parameter `disk`, which is no mount
    // point key: Proxmox asks for VM.Config.Options on top of the route's VM.Config.Disk.
    if !ident.is_root_pam() && !c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Config.Options") {
        return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.Config.Options"));
    }
    if let Some(d) = ctx.params.str("digest")
        && d != ct.digest()
    {
        return Err(ApiError::internal(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    let Some(value) = ct.conf.get(&disk).cloned() else {
        return Err(ApiError::internal(format!(
            "unable to parse value of '{disk}' - got undefined value"
        )));
    };
    let mut mp = parse_mp(&disk, &value);
    let volid = mp.get("volume").cloned().unwrap_or_default();
    if volid.starts_with('/') {
        return Err(ApiError::internal(format!(
            "unable to parse volume ID '{volid}'"
        )));
    }
    // The volume's own name comes last: a linked clone's `base-<template>-disk-0/vm-<ct>-disk-0`
    // belongs to the clone (pve-storage's `parse_volname`: vmid of the `vm-` part, the base's
    // owner only as `basevmid`).
    let parts: Vec<&str> = volid.split([':', '/']).collect();
    let owner = parts
        .iter()
        .rev()
        .find_map(|part| {
            part.strip_prefix("vm-")
                .or_else(|| part.strip_prefix("base-"))
                .or_else(|| part.strip_prefix("subvol-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|n| n.parse::<u32>().ok())
        })
        .unwrap_or(vmid);
    if owner != vmid {
        return Err(ApiError::internal(format!(
            "can't resize mount point owned by another container ({owner})"
        )));
    }
    let storage = storage_of(&volid).unwrap_or_default().to_owned();
    let path = format!("/storage/{storage}");
    if !c.has_priv(&ident, &path, "Datastore.AllocateSpace") {
        return Err(ApiError::perm(&path, "Datastore.AllocateSpace"));
    }
    let size = mp.get("size").and_then(|s| parse_size(s)).unwrap_or(0);
    let newsize = if ext { size + request } else { request };
    if newsize < size {
        return Err(ApiError::internal("unable to shrink disk size"));
    }
    if newsize == size {
        return Err(ApiError::internal("disk is already at specified size"));
    }
    mp.insert("size".into(), print_size(newsize));
    let new_value = print_mp(&disk, &mp, &value);
    let user = ident.auth_id();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "resize",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            t.log(format!(
                "update CT {vmid}: resize --disk {disk} --size {sizestr} (by {user})"
            ));
            let d = t.with(|c| c.timings.snapshot);
            t.sleep(d).await;
            t.with(|c| {
                let ct = c.cts.get_mut(&vmid).ok_or("CT vanished")?;
                check_lock(ct, false)?;
                ct.conf.insert(disk.clone(), new_value);
                Ok::<(), String>(())
            })?;
            t.log(format!("Resizing image: {volid} to {} bytes", newsize));
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST /nodes/{node}/lxc/{vmid}/template` (task `vztemplate`; answers `null`).
pub fn template(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let mut c = ctx.state.lock();
    let ct = get_ct(&c, &node, vmid)?;
    check_lock(ct, false).map_err(ApiError::internal)?;
    if !ct.snapshots.is_empty() {
        return Err(ApiError::internal(
            "unable to create template, because CT contains snapshots",
        ));
    }
    if is_template(ct) {
        return Err(ApiError::internal(
            "you can't convert a template to a template",
        ));
    }
    if ct.running {
        return Err(ApiError::internal(
            "you can't convert a CT to template if the CT is running",
        ));
    }
    spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vztemplate",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.snapshot);
            t.sleep(d).await;
            t.with(|c| {
                let ct = c.cts.get_mut(&vmid).ok_or("CT vanished")?;
                // `template_create` renames every volume to its base image.
                let keys: Vec<String> = ct.conf.keys().filter(|k| is_mp_key(k)).cloned().collect();
                for key in keys {
                    let Some(value) = ct.conf.get(&key).cloned() else {
                        continue;
                    };
                    let mut mp = parse_mp(&key, &value);
                    if let Some(volid) = mp.get("volume").cloned()
                        && !volid.starts_with('/')
                    {
                        let based =
                            volid.replacen(&format!("vm-{vmid}-"), &format!("base-{vmid}-"), 1);
                        mp.insert("volume".into(), based);
                        let printed = print_mp(&key, &mp, &value);
                        ct.conf.insert(key, printed);
                    }
                }
                ct.conf.insert("template".into(), "1".into());
                Ok::<(), String>(())
            })?;
            Ok(0)
        },
    );
    Ok(Reply::null())
}

/// `POST /nodes/{node}/lxc/{vmid}/clone` (task `vzclone`).
pub fn clone(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let p = &ctx.params;
    let newid = p
        .int("newid")
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ApiError::param("newid", "property is missing and it is not optional"))?;
    let pool = p.str("pool");
    let snapname = p.str("snapname");
    let storage = p.str("storage");
    let target = p.str("target").filter(|t| *t != node && t != "localhost");
    let mut c = ctx.state.lock();
    // The route's check: VM.Clone on the source, VM.Allocate on the new id or the pool.
    let vm_clone = c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Clone");
    if !vm_clone {
        return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.Clone"));
    }
    let allocate = c.has_priv(&ident, &format!("/vms/{newid}"), "VM.Allocate")
        || pool
            .as_deref()
            .is_some_and(|pl| c.has_priv(&ident, &format!("/pool/{pl}"), "VM.Allocate"));
    if !allocate {
        return Err(ApiError::perm(&format!("/vms/{newid}"), "VM.Allocate"));
    }
    if let Some(pl) = &pool
        && !c.pools.contains_key(pl)
    {
        return Err(ApiError::internal(format!("pool '{pl}' does not exist")));
    }
    if let Some(t) = &target
        && c.node(t).is_none()
    {
        return Err(ApiError::internal(format!("no such cluster node '{t}'")));
    }
    if let Some(sid) = &storage {
        let Some(s) = c.storage(sid) else {
            return Err(ApiError::internal(format!(
                "storage '{sid}' does not exist"
            )));
        };
        if target.is_some() && !s.shared {
            return Err(ApiError::internal(format!(
                "can't clone to non-shared storage '{sid}'"
            )));
        }
    }
    let src = get_ct(&c, &node, vmid)?;
    check_lock(src, false).map_err(ApiError::internal)?;
    c.check_vmid_unused(newid).map_err(ApiError::internal)?;
    let running = src.running;
    let full = p.flag("full", !is_template(src));
    if storage.is_some() && !full {
        return Err(ApiError::internal(
            "parameter 'storage' not allowed for linked clones",
        ));
    }
    let src_conf = match &snapname {
        Some(s) => match src.snapshots.get(s) {
            Some(snap) => snap.conf.clone(),
            None => return Err(ApiError::internal(format!("snapshot '{s}' does not exist"))),
        },
        None => src.conf.clone(),
    };
    let mut newconf: BTreeMap<String, String> = BTreeMap::new();
    let mut shared = true;
    let mut disk_index = 0u32;
    let mut macs_needed: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for (opt, value) in &src_conf {
        if opt.starts_with("unused") {
            continue;
        }
        if is_mp_key(opt) {
            let mut mp = parse_mp(opt, value);
            let volid = mp.get("volume").cloned().unwrap_or_default();
            if volid.starts_with('/') {
                let kind = if volid.starts_with("/dev/") {
                    "device"
                } else {
                    "bind"
                };
                return Err(ApiError::internal(format!(
                    "unable to clone mountpoint '{opt}' (type {kind})"
                )));
            }
            let sid = storage
                .clone()
                .or_else(|| storage_of(&volid).map(str::to_owned))
                .unwrap_or_default();
            let Some(sdef) = c.storage(&sid) else {
                return Err(ApiError::internal(format!(
                    "storage '{sid}' does not exist"
                )));
            };
            if !sdef.shared {
                shared = false;
            }
            let path = format!("/storage/{sid}");
            if !c.has_priv(&ident, &path, "Datastore.AllocateSpace") {
                return Err(ApiError::perm(&path, "Datastore.AllocateSpace"));
            }
            if full {
                if running && snapname.is_none() {
                    return Err(ApiError::internal(
                        "Cannot do full clones on a running container without snapshots",
                    ));
                }
                mp.insert("volume".into(), sdef.disk_volid(newid, disk_index));
            } else {
                // Storage plugins offer `clone` only on base images (templates).
                let base = volid
                    .split_once(':')
                    .is_some_and(|(_, name)| name.starts_with("base-"));
                if !base {
                    return Err(ApiError::internal(format!(
                        "Linked clone feature for '{volid}' is not available"
                    )));
                }
                let child = sdef.disk_volid(newid, disk_index);
                let child_name = child.split_once(':').map(|(_, n)| n).unwrap_or(&child);
                mp.insert("volume".into(), format!("{volid}/{child_name}"));
            }
            disk_index += 1;
            newconf.insert(opt.clone(), print_mp(opt, &mp, value));
        } else if opt.starts_with("net") && opt[3..].bytes().all(|b| b.is_ascii_digit()) {
            let net = validate::config_format(opt)
                .and_then(|fmt| validate::parse_property_string(fmt, value, opt).ok())
                .unwrap_or_default();
            if let Some(bridge) = net.get("bridge")
                && !c.has_bridge_access(&ident, "localnetwork", bridge)
                && !ident.is_root_pam()
            {
                return Err(ApiError::perm(
                    &format!("/sdn/zones/localnetwork/{bridge}"),
                    "SDN.Use",
                ));
            }
            macs_needed.push((opt.clone(), net));
        } else {
            newconf.insert(opt.clone(), value.clone());
        }
    }
    if let Some(t) = &target
        && !shared
    {
        return Err(ApiError::internal(format!(
            "can't clone CT to node '{t}' (CT uses local storage)"
        )));
    }
    // Every clone gets new MAC addresses.
    for (opt, mut net) in macs_needed {
        net.insert("hwaddr".into(), c.next_mac());
        let printed = validate::config_format(&opt)
            .map(|fmt| validate::print_property_string(fmt, &net))
            .unwrap_or_default();
        newconf.insert(opt, printed);
    }
    for k in ["lock", "template", "parent", "snaptime", "snapstate"] {
        newconf.remove(k);
    }
    if let Some(h) = p.str("hostname") {
        newconf.insert("hostname".into(), h);
    }
    if let Some(d) = p.str("description").filter(|d| !d.is_empty()) {
        newconf.insert("description".into(), d);
    }
    newconf.insert("lock".into(), "create".into());
    let new_node = target.clone().unwrap_or_else(|| node.clone());
    let new_node_for_backend = new_node.clone();
    let now = c.now();
    if let Some(src) = c.cts.get_mut(&vmid) {
        src.conf.insert("lock".into(), "disk".into());
    }
    c.cts.insert(
        newid,
        Ct {
            vmid: newid,
            node: new_node,
            conf: newconf.clone(),
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
        hostname: newconf
            .get("hostname")
            .cloned()
            .unwrap_or_else(|| format!("CT{newid}")),
        ostemplate: String::new(),
        password: None,
        ssh_public_keys: None,
        conf: newconf,
        node: new_node_for_backend,
        snapname: snapname.clone(),
    };
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzclone",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let total = t.with(|c| c.timings.snapshot);
            let kind = if full { "full" } else { "linked" };
            t.log(format!(
                "create {kind} clone of mountpoint rootfs (CT {vmid} → CT {newid})"
            ));
            t.sleep(step(total, 2)).await;
            let backend = t.state().backend().clone();
            let res = tokio::task::spawn_blocking(move || backend.clone_guest(vmid, newid, &spec))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
            t.sleep(step(total, 2)).await;
            t.with(|c| {
                if let Some(src) = c.cts.get_mut(&vmid)
                    && src.lock() == Some("disk")
                {
                    src.conf.remove("lock");
                }
                match &res {
                    Ok(_) => {
                        if let Some(ct) = c.cts.get_mut(&newid) {
                            ct.conf.remove("lock");
                        }
                        if let Some(pl) = pool.as_ref().and_then(|pl| c.pools.get_mut(pl)) {
                            pl.vms.insert(newid);
                        }
                    }
                    Err(_) => {
                        c.cts.remove(&newid);
                    }
                }
            });
            match res {
                Ok(lines) => {
                    for l in lines {
                        t.log(l);
                    }
                    Ok(0)
                }
                Err(e) => Err(format!("clone failed: {e}")),
            }
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// Whether the storage of every volume of `conf` can take snapshots (`snapshot` feature of
/// the storage plugins: not for raw images on directory-like storages).
pub fn snapshot_feature(c: &Cluster, conf: &BTreeMap<String, String>) -> bool {
    conf.iter().filter(|(k, _)| is_mp_key(k)).all(|(k, v)| {
        let volid = parse_mp(k, v).get("volume").cloned().unwrap_or_default();
        if volid.starts_with('/') {
            // Bind and device mounts are not part of snapshots.
            return true;
        }
        match storage_of(&volid).and_then(|sid| c.storage(sid)) {
            Some(s) => match s.kind.as_str() {
                "dir" | "nfs" | "cifs" | "glusterfs" => volid.ends_with(".qcow2"),
                _ => true,
            },
            None => false,
        }
    })
}

/// The rollback check of storages that can only roll back to their newest snapshot (ZFS):
/// `Some(error text)` when `name` has newer snapshots on such a volume.
pub fn rollback_blocked(c: &Cluster, ct: &Ct, name: &str) -> Option<String> {
    let newer = ct
        .snapshots
        .values()
        .any(|s| s.parent.as_deref() == Some(name));
    if !newer {
        return None;
    }
    ct.conf
        .iter()
        .filter(|(k, _)| is_mp_key(k))
        .find_map(|(k, v)| {
            let volid = parse_mp(k, v).get("volume").cloned().unwrap_or_default();
            let sid = storage_of(&volid)?;
            (c.storage(sid)?.kind == "zfspool").then(|| {
                format!("can't rollback, '{name}' is not most recent snapshot on '{volid}'")
            })
        })
}
