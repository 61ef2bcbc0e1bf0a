//! Day-two VM operations as qemu-server serves them: `PUT …/resize` (task `resize`, grow
//! only), `POST …/template` (task `qmtemplate`: disks become `base-` volumes),
//! `POST …/clone` (task `qmclone`: full copy, or linked from a template; cloud-init drives
//! are always copied; new MAC addresses, SMBIOS UUID and vmgenid) and snapshots (list, create
//! `qmsnapshot`, delete `qmdelsnapshot`, rollback `qmrollback`). Checks, their order and texts
//! follow `PVE::API2::Qemu` and `PVE::AbstractConfig`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::guest_task::{self, GuestType};
use super::qemu::{
    check_vm_lock, cloud_init_of, drive_is_cdrom, get_vm, is_vm_template, parse_drive, parse_net,
    print_drive, print_net, print_size, vm_disk_volid, vm_start_in_task, volid_is_cloudinit,
};
use super::{Ctx, Reply};
use crate::backend::VmSpec;
use crate::error::ApiError;
use crate::state::{Cluster, Ct, is_vm_disk_key, parse_size};
use crate::tasks::{spawn_task, step};

/// `PUT /nodes/{node}/qemu/{vmid}/resize` (task `resize`).
pub fn resize(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let disk = ctx.p("disk")?;
    let sizestr = ctx.p("size")?;
    let skiplock = ctx.params.flag("skiplock", false);
    if skiplock && !ident.is_root_pam() {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    let (ext, number) = match sizestr.strip_prefix('+') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, sizestr.clone()),
    };
    let request = parse_size(&number)
        .ok_or_else(|| ApiError::internal(format!("invalid size string '{sizestr}'")))?;
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    check_vm_lock(vm, skiplock).map_err(ApiError::internal)?;
    if let Some(d) = ctx.params.str("digest")
        && d != vm.digest()
    {
        return Err(ApiError::internal(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    let Some(value) = vm.conf.get(&disk).cloned() else {
        return Err(ApiError::internal(format!("disk '{disk}' does not exist")));
    };
    let mut drive = parse_drive(&disk, &value)?;
    if drive_is_cdrom(&drive) {
        return Err(ApiError::internal("you can't resize a cdrom"));
    }
    let size = drive.get("size").and_then(|s| parse_size(s)).unwrap_or(0);
    let newsize = if ext { size + request } else { request };
    if newsize < size {
        return Err(ApiError::internal("shrinking disks is not supported"));
    }
    let volid = drive.get("file").cloned().unwrap_or_default();
    let running = vm.running;
    drive.insert("size".into(), print_size(newsize));
    let printed = print_drive(&disk, &drive);
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "resize",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.snapshot);
            if newsize == size {
                return Ok(0);
            }
            let gib = |b: u64| b as f64 / (1024.0 * 1024.0 * 1024.0);
            let name = volid.split(':').nth(1).unwrap_or(&volid).to_string();
            if name.ends_with(".qcow2") {
                t.log("Image resized.");
            } else {
                t.log(format!(
                    "  Size of logical volume pve/{name} changed from {:.2} GiB ({} extents) to {:.2} GiB ({} extents).",
                    gib(size),
                    size / (4 * 1024 * 1024),
                    gib(newsize),
                    newsize / (4 * 1024 * 1024)
                ));
                t.log(format!("  Logical volume pve/{name} successfully resized."));
            }
            t.sleep(d).await;
            let backend = t.state().backend().clone();
            let disk2 = disk.clone();
            tokio::task::spawn_blocking(move || backend.vm_resize(vmid, &disk2, newsize))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))?;
            if running {
                t.log(format!("{disk}: resized to {}", print_size(newsize)));
            }
            t.with(|c| {
                if let Some(vm) = c.vms.get_mut(&vmid) {
                    vm.conf.insert(disk.clone(), printed.clone());
                }
            });
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `vm-100-disk-0` → `base-100-disk-0` (the template's read-only base volume).
fn base_volid(volid: &str, vmid: u32) -> String {
    volid.replacen(
        &format!("vm-{vmid}-disk-"),
        &format!("base-{vmid}-disk-"),
        1,
    )
}

/// `POST /nodes/{node}/qemu/{vmid}/template` (task `qmtemplate`).
pub fn template(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let only = ctx.params.str("disk");
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    check_vm_lock(vm, false).map_err(ApiError::internal)?;
    if !vm.snapshots.is_empty() {
        return Err(ApiError::internal(
            "unable to create template, because VM contains snapshots",
        ));
    }
    if is_vm_template(vm) && only.is_none() {
        return Err(ApiError::internal(
            "you can't convert a template to a template",
        ));
    }
    if vm.running && only.is_none() {
        return Err(ApiError::internal(
            "you can't convert a VM to template if VM is running",
        ));
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmtemplate",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.snapshot);
            t.with(|c| {
                if let Some(vm) = c.vms.get_mut(&vmid) {
                    vm.conf.insert("lock".into(), "template".into());
                }
            });
            t.sleep(d).await;
            // A real backend makes the disks read-only bases; a failure leaves a VM.
            if only.is_none() {
                let backend = t.state().backend().clone();
                let res = tokio::task::spawn_blocking(move || backend.vm_template(vmid))
                    .await
                    .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
                if res.is_err() {
                    t.with(|c| c.vms.get_mut(&vmid).map(|vm| vm.conf.remove("lock")));
                }
                res?.into_iter().for_each(|l| t.log(l));
            }
            let renamed = t.with(|c| {
                let mut lines = Vec::new();
                if let Some(vm) = c.vms.get_mut(&vmid) {
                    let keys: Vec<String> = vm
                        .conf
                        .keys()
                        .filter(|k| is_vm_disk_key(k))
                        .filter(|k| only.as_ref().is_none_or(|o| o == *k))
                        .cloned()
                        .collect();
                    for k in keys {
                        let Some(v) = vm.conf.get(&k).cloned() else {
                            continue;
                        };
                        let file = v.split(',').next().unwrap_or("");
                        if v.contains("media=cdrom") || volid_is_cloudinit(file) {
                            continue;
                        }
                        let base = base_volid(file, vmid);
                        if base != file {
                            let old = file.split(':').nth(1).unwrap_or(file);
                            let new = base.split(':').nth(1).unwrap_or(&base);
                            lines.push(format!(
                                "  Renamed \"{old}\" to \"{new}\" in volume group \"pve\""
                            ));
                            lines.push(format!("  Logical volume pve/{new} changed."));
                            vm.conf.insert(k, v.replacen(file, &base, 1));
                        }
                    }
                    vm.conf.remove("lock");
                    if only.is_none() {
                        vm.conf.insert("template".into(), "1".into());
                    }
                }
                lines
            });
            for l in renamed {
                t.log(l);
            }
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST /nodes/{node}/qemu/{vmid}/clone` (task `qmclone`).
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
    let format = p.str("format");
    let target = p.str("target").filter(|t| *t != node && t != "localhost");
    let mut c = ctx.state.lock();
    let clone_ok = c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Clone");
    if !clone_ok {
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
        return Err(ApiError::perm_text(&format!("pool '{pl}' does not exist")));
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
        if !s.supports("images") {
            return Err(ApiError::param(
                "storage",
                format!("storage '{sid}' does not support vm images"),
            ));
        }
        if target.is_some() && !s.shared {
            return Err(ApiError::internal(format!(
                "can't clone to non-shared storage '{sid}'"
            )));
        }
    }
    let src = get_vm(&c, &node, vmid)?;
    check_vm_lock(src, false).map_err(ApiError::internal)?;
    if let Some(s) = &snapname
        && !src.snapshots.contains_key(s)
    {
        return Err(ApiError::internal(format!("snapshot '{s}' does not exist")));
    }
    let full = p.flag("full", !is_vm_template(src));
    if storage.is_some() && !full {
        return Err(ApiError::internal(
            "parameter 'storage' not allowed for linked clones",
        ));
    }
    if format.is_some() && !full {
        return Err(ApiError::internal(
            "parameter 'format' not allowed for linked clones",
        ));
    }
    let oldconf = match &snapname {
        Some(s) => src
            .snapshots
            .get(s)
            .map(|sn| sn.conf.clone())
            .unwrap_or_default(),
        None => src.conf.clone(),
    };
    let src_name = src.conf.get("name").cloned();
    let mut shared = true;
    // Storage checks of `check_storage_access_clone`.
    for (k, v) in oldconf.iter().filter(|(k, _)| is_vm_disk_key(k)) {
        let drive = parse_drive(k, v)?;
        let file = drive.get("file").cloned().unwrap_or_default();
        let Some((sid, _)) = file.split_once(':') else {
            continue;
        };
        if !c.storage(sid).is_some_and(|s| s.shared) {
            shared = false;
        }
        if drive_is_cdrom(&drive) && !volid_is_cloudinit(&file) {
            continue;
        }
        let sid = storage.clone().unwrap_or_else(|| sid.to_string());
        let path = format!("/storage/{sid}");
        if !c.has_priv(&ident, &path, "Datastore.AllocateSpace") {
            return Err(ApiError::perm(&path, "Datastore.AllocateSpace"));
        }
    }
    if let Some(t) = &target
        && !shared
    {
        return Err(ApiError::internal(format!(
            "can't clone VM to node '{t}' (VM uses local storage)"
        )));
    }
    if c.vmid_used(newid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {newid}: config file already exists"
        )));
    }
    let mut newconf: BTreeMap<String, String> = BTreeMap::new();
    let mut log = Vec::new();
    let mut n = 0u32;
    for (opt, value) in &oldconf {
        if matches!(
            opt.as_str(),
            "snapshots"
                | "parent"
                | "snaptime"
                | "vmstate"
                | "snapstate"
                | "runningcpu"
                | "runningmachine"
                | "lock"
                | "template"
        ) || opt.starts_with("unused")
        {
            continue;
        }
        if opt.starts_with("net") && opt[3..].bytes().all(|b| b.is_ascii_digit()) {
            let mut net = parse_net(opt, value)?;
            net.insert("macaddr".into(), c.next_mac());
            newconf.insert(opt.clone(), print_net(&net));
        } else if is_vm_disk_key(opt) {
            let mut drive = parse_drive(opt, value)?;
            let file = drive.get("file").cloned().unwrap_or_default();
            if drive_is_cdrom(&drive) && !volid_is_cloudinit(&file) {
                newconf.insert(opt.clone(), value.clone());
                continue;
            }
            let sid = file.split(':').next().unwrap_or("").to_string();
            if volid_is_cloudinit(&file) {
                let ci = match c.storage(&sid).map(|s| s.kind.as_str()) {
                    Some("dir" | "nfs" | "cifs") => {
                        format!("{sid}:{newid}/vm-{newid}-cloudinit.qcow2")
                    }
                    _ => format!("{sid}:vm-{newid}-cloudinit"),
                };
                drive.insert("file".into(), ci);
                newconf.insert(opt.clone(), print_drive(opt, &drive));
                continue;
            }
            if full {
                let dest = storage.clone().unwrap_or(sid);
                let new = vm_disk_volid(&c, &dest, newid, n, false);
                n += 1;
                log.push(format!("create full clone of drive {opt} ({file})"));
                drive.insert("file".into(), new);
            } else {
                let base = file
                    .split_once(':')
                    .is_some_and(|(_, name)| name.contains("base-"));
                if !base {
                    return Err(ApiError::internal(format!(
                        "Linked clone feature is not supported for '{file}' ({opt})"
                    )));
                }
                let child = vm_disk_volid(&c, &sid, newid, n, false);
                n += 1;
                let child_name = child.split_once(':').map(|(_, x)| x).unwrap_or(&child);
                log.push(format!("create linked clone of drive {opt} ({file})"));
                drive.insert("file".into(), format!("{file}/{child_name}"));
            }
            newconf.insert(opt.clone(), print_drive(opt, &drive));
        } else {
            newconf.insert(opt.clone(), value.clone());
        }
    }
    let name = p.str("name").unwrap_or_else(|| match &src_name {
        Some(n) => format!("Copy-of-VM-{n}"),
        None => format!("Copy-of-VM-{vmid}"),
    });
    newconf.insert("name".into(), name.clone());
    if let Some(d) = p.str("description") {
        newconf.insert("description".into(), d);
    }
    newconf.remove("smbios1");
    newconf.remove("vmgenid");
    let uuid_of = |c: &mut Cluster| {
        c.mac_counter += 1;
        let a = crate::state::mix(c.seed ^ c.mac_counter.wrapping_mul(0x7F4A));
        let b = crate::state::mix(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    };
    let smbios = format!("uuid={}", uuid_of(&mut c));
    let genid = uuid_of(&mut c);
    newconf.insert("smbios1".into(), smbios);
    newconf.insert("vmgenid".into(), genid);
    let new_node = target.clone().unwrap_or_else(|| node.clone());
    let now = c.now();
    let mut locked = newconf.clone();
    locked.insert("lock".into(), "clone".into());
    c.vms.insert(
        newid,
        Ct {
            vmid: newid,
            node: new_node,
            conf: locked,
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
    let spec = VmSpec {
        name: name.clone(),
        cloud_init: cloud_init_of(&newconf, &name),
        conf: newconf,
        imports: Vec::new(),
        snapname: snapname.clone(),
    };
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmclone",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let total = t.with(|c| c.timings.snapshot);
            for l in log {
                t.log(l);
            }
            t.sleep(step(total, 2)).await;
            let backend = t.state().backend().clone();
            let res =
                tokio::task::spawn_blocking(move || backend.vm_clone(vmid, newid, !full, &spec))
                    .await
                    .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
            t.sleep(step(total, 2)).await;
            t.with(|c| match &res {
                Ok(_) => {
                    if let Some(vm) = c.vms.get_mut(&newid) {
                        vm.conf.remove("lock");
                    }
                    if let Some(pl) = pool.as_ref().and_then(|pl| c.pools.get_mut(pl)) {
                        pl.vms.insert(newid);
                    }
                }
                Err(_) => {
                    c.vms.remove(&newid);
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

/// Whether every disk of a VM config can take snapshots (qcow2 files, thin LVM, ZFS, Ceph).
pub fn snapshot_feature(c: &Cluster, conf: &BTreeMap<String, String>) -> bool {
    conf.iter()
        .filter(|(k, _)| is_vm_disk_key(k))
        .all(|(_, v)| {
            let file = v.split(',').next().unwrap_or("");
            if v.contains("media=cdrom") || volid_is_cloudinit(file) {
                return true;
            }
            let Some((sid, name)) = file.split_once(':') else {
                return false;
            };
            match c.storage(sid).map(|s| s.kind.as_str()) {
                Some("dir" | "nfs" | "cifs") => name.ends_with(".qcow2"),
                Some("lvmthin" | "zfspool" | "rbd") => true,
                _ => false,
            }
        })
}

/// `GET …/snapshot`: snapshots plus `current`.
pub fn snapshot_list(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_list(ctx, GuestType::Qemu)
}

/// `POST …/snapshot` (task `qmsnapshot`).
pub fn snapshot_create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_create(ctx, GuestType::Qemu)
}

/// `GET …/snapshot/{snapname}`: directory index.
pub fn snapshot_idx(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_idx(ctx)
}

/// `DELETE …/snapshot/{snapname}` (task `qmdelsnapshot`).
pub fn snapshot_delete(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    guest_task::snapshot_delete(ctx, GuestType::Qemu)
}

/// `POST …/snapshot/{snapname}/rollback` (task `qmrollback`; `start`): a running VM is
/// stopped first.
pub fn snapshot_rollback(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let name = ctx.p("snapname")?;
    let ident = ctx.ident()?.clone();
    let start_after = ctx.params.flag("start", false);
    let mut c = ctx.state.lock();
    guest_task::rollback_checks(&c, GuestType::Qemu, &node, vmid, &name)?;
    let state = ctx.state.clone();
    let node2 = node.clone();
    let ident2 = ident.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmrollback",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            if guest_task::rollback_lock(&t, GuestType::Qemu, vmid) == Some(true) {
                let backend = t.state().backend().clone();
                let _ = tokio::task::spawn_blocking(move || backend.vm_stop(vmid)).await;
                t.with(|c| {
                    let now = c.now();
                    if let Some(vm) = c.vms.get_mut(&vmid) {
                        vm.set_stopped(now);
                    }
                });
                t.state().forget_vm_runtime(vmid);
            }
            guest_task::rollback_restore(&t, GuestType::Qemu, vmid, &name).await?;
            if start_after {
                vm_start_in_task(&t, &state, &node2, vmid, false, &ident2).await?;
            }
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}
