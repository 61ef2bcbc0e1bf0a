//! What the lxc and qemu routes share (`PVE::AbstractConfig`, the base of `PVE::LXC::Config`
//! and `PVE::QemuConfig`): the guest of a kind on its node, its config lock, and the snapshot
//! operations, whose checks, texts, locks and tasks are the same for both kinds but for the
//! task type (`vzsnapshot`/`qmsnapshot`, …), the lock text (`CT is locked`/`VM is locked`)
//! and what a snapshot captures of the disks. `routes/lxc.rs` and `routes/qemu_daytwo.rs`
//! serve them through [`GuestType`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::{Cluster, Ct, Snapshot};
use crate::tasks::{TaskCtx, spawn_task};

/// Which kind of guest a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestType {
    /// `/nodes/{node}/lxc/{vmid}` (`Cluster::cts`).
    Lxc,
    /// `/nodes/{node}/qemu/{vmid}` (`Cluster::vms`).
    Qemu,
}

impl GuestType {
    /// The guests of this kind.
    pub fn guests(self, c: &Cluster) -> &BTreeMap<u32, Ct> {
        match self {
            Self::Lxc => &c.cts,
            Self::Qemu => &c.vms,
        }
    }

    /// The guests of this kind, to change.
    pub fn guests_mut(self, c: &mut Cluster) -> &mut BTreeMap<u32, Ct> {
        match self {
            Self::Lxc => &mut c.cts,
            Self::Qemu => &mut c.vms,
        }
    }

    /// Guest `vmid` on `node`, or Proxmox's "Configuration file … does not exist".
    pub fn get<'c>(self, c: &'c Cluster, node: &str, vmid: u32) -> Result<&'c Ct, ApiError> {
        match self {
            Self::Lxc => super::lxc::get_ct(c, node, vmid),
            Self::Qemu => super::qemu::get_vm(c, node, vmid),
        }
    }

    /// `check_lock` of the kind's config class (a container's `mounted` lock does not block).
    pub fn check_lock(self, guest: &Ct, skiplock: bool) -> Result<(), String> {
        match self {
            Self::Lxc => super::lxc::check_lock(guest, skiplock),
            Self::Qemu => super::qemu::check_vm_lock(guest, skiplock),
        }
    }

    /// The task type of an operation: `vz<op>` for containers, `qm<op>` for VMs.
    pub fn task(self, op: &str) -> String {
        match self {
            Self::Lxc => format!("vz{op}"),
            Self::Qemu => format!("qm{op}"),
        }
    }

    /// Whether every volume of `conf` can take a snapshot.
    fn snapshot_feature(self, c: &Cluster, conf: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Lxc => super::lxc_daytwo::snapshot_feature(c, conf),
            Self::Qemu => super::qemu_daytwo::snapshot_feature(c, conf),
        }
    }

    /// The task log lines of a snapshot being taken: a container's root filesystem, or each
    /// disk of a VM (`__snapshot_create_vol_snapshot`: `snapshotting 'drive-<key>' (<volid>)`,
    /// cd-roms and the cloud-init drive skipped).
    fn snapshot_lines(self, name: &str, conf: &BTreeMap<String, String>) -> Vec<String> {
        match self {
            Self::Lxc => vec![format!(
                "create full clone of mountpoint rootfs (snapshot '{name}')"
            )],
            Self::Qemu => conf
                .iter()
                .filter(|(k, v)| crate::state::is_vm_disk_key(k) && !v.contains("media=cdrom"))
                .map(|(k, v)| {
                    format!(
                        "snapshotting 'drive-{k}' ({})",
                        v.split(',').next().unwrap_or("")
                    )
                })
                .collect(),
        }
    }
}

/// `GET …/snapshot`: the snapshots plus the `current` pseudo entry (a VM's carry `vmstate`,
/// its `current` the config digest, as qemu-server answers).
pub fn snapshot_list(ctx: &Ctx<'_>, kind: GuestType) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let guest = kind.get(&c, &node, vmid)?;
    let mut out: Vec<Value> = guest
        .snapshots
        .values()
        .map(|s| {
            let mut v =
                json!({"name": s.name, "description": s.description, "snaptime": s.snaptime});
            if let Some(m) = v.as_object_mut() {
                if kind == GuestType::Qemu {
                    m.insert("vmstate".into(), json!(0));
                }
                if let Some(p) = &s.parent {
                    m.insert("parent".into(), json!(p));
                }
            }
            v
        })
        .collect();
    let mut cur = json!({"name": "current", "description": "You are here!",
        "running": if guest.running { 1 } else { 0 }});
    if let Some(m) = cur.as_object_mut() {
        if kind == GuestType::Qemu {
            m.insert("digest".into(), json!(guest.digest()));
        }
        if let Some(p) = &guest.parent {
            m.insert("parent".into(), json!(p));
        }
    }
    out.push(cur);
    Ok(Reply::data(Value::Array(out)))
}

/// `POST …/snapshot` (task `vzsnapshot`/`qmsnapshot`): `lock: snapshot` while it runs; a
/// failed snapshot leaves no entry.
pub fn snapshot_create(ctx: &Ctx<'_>, kind: GuestType) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let name = ctx.p("snapname")?;
    let ident = ctx.ident()?.clone();
    let description = ctx.params.str("description").unwrap_or_default();
    let mut c = ctx.state.lock();
    let guest = kind.get(&c, &node, vmid)?;
    if name == "current" || name == "vzdump" {
        return Err(ApiError::internal(format!(
            "invalid snapshot name '{name}'"
        )));
    }
    // `__snapshot_prepare`: a template first, then the lock, the name, the feature.
    if guest.conf.get("template").is_some_and(|t| t == "1") {
        return Err(ApiError::internal(
            "you can't take a snapshot if it's a template",
        ));
    }
    if guest.snapshots.contains_key(&name) {
        return Err(ApiError::internal(format!(
            "snapshot name '{name}' already used"
        )));
    }
    kind.check_lock(guest, false).map_err(ApiError::internal)?;
    if !kind.snapshot_feature(&c, &guest.conf) {
        return Err(ApiError::internal("snapshot feature is not available"));
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        &kind.task("snapshot"),
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.snapshot);
            let lines = t.with(|c| {
                let now = c.now();
                let guest = kind.guests_mut(c).get_mut(&vmid).ok_or("guest vanished")?;
                kind.check_lock(guest, false)?;
                let mut conf = guest.conf.clone();
                conf.remove("lock");
                guest.snapshots.insert(
                    name.clone(),
                    Snapshot {
                        name: name.clone(),
                        description,
                        snaptime: now,
                        parent: guest.parent.clone(),
                        conf,
                    },
                );
                guest.conf.insert("lock".into(), "snapshot".into());
                Ok::<_, String>(kind.snapshot_lines(&name, &conf_of_snapshot(guest, &name)))
            })?;
            for l in lines {
                t.log(l);
            }
            t.sleep(d).await;
            // A real backend copies files or asks QEMU: off the runtime's threads.
            let backend = t.state().backend().clone();
            let snap = name.clone();
            let res = tokio::task::spawn_blocking(move || backend.snapshot(vmid, &snap))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
            t.with(|c| {
                if let Some(guest) = kind.guests_mut(c).get_mut(&vmid) {
                    guest.conf.remove("lock");
                    match &res {
                        Ok(()) => guest.parent = Some(name.clone()),
                        Err(_) => {
                            guest.snapshots.remove(&name);
                        }
                    }
                }
            });
            res.map(|()| 0)
                .map_err(|e| format!("snapshot '{name}' failed: {e}"))
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// The config a snapshot being taken records.
fn conf_of_snapshot(guest: &Ct, name: &str) -> BTreeMap<String, String> {
    guest
        .snapshots
        .get(name)
        .map(|s| s.conf.clone())
        .unwrap_or_default()
}

/// `GET …/snapshot/{snapname}`: directory index.
pub fn snapshot_idx(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let _ = ctx.p("snapname")?;
    Ok(Reply::data(json!([{"cmd": "rollback"}, {"cmd": "config"}])))
}

/// `DELETE …/snapshot/{snapname}` (task `vzdelsnapshot`/`qmdelsnapshot`,
/// `AbstractConfig::snapshot_delete`): refused for a template and, unless `force`, while the
/// guest holds a lock; `lock: snapshot-delete` while it runs; children of the snapshot get
/// its parent.
pub fn snapshot_delete(ctx: &Ctx<'_>, kind: GuestType) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let name = ctx.p("snapname")?;
    let ident = ctx.ident()?.clone();
    let force = ctx.params.flag("force", false);
    let mut c = ctx.state.lock();
    let guest = kind.get(&c, &node, vmid)?;
    if !guest.snapshots.contains_key(&name) {
        return Err(ApiError::internal(format!(
            "snapshot '{name}' does not exist"
        )));
    }
    if guest.conf.get("template").is_some_and(|t| t == "1") {
        return Err(ApiError::internal(
            "you can't delete a snapshot if vm is a template",
        ));
    }
    if !force {
        kind.check_lock(guest, false).map_err(ApiError::internal)?;
    }
    if let Some(g) = kind.guests_mut(&mut c).get_mut(&vmid) {
        g.conf.insert("lock".into(), "snapshot-delete".into());
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        &kind.task("delsnapshot"),
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.snapshot);
            t.sleep(d).await;
            t.with(|c| {
                if let Some(guest) = kind.guests_mut(c).get_mut(&vmid) {
                    guest.conf.remove("lock");
                }
                if let Some(guest) = kind.guests_mut(c).get_mut(&vmid)
                    && let Some(s) = guest.snapshots.remove(&name)
                {
                    for other in guest.snapshots.values_mut() {
                        if other.parent.as_deref() == Some(name.as_str()) {
                            other.parent = s.parent.clone();
                        }
                    }
                    if guest.parent.as_deref() == Some(name.as_str()) {
                        guest.parent = s.parent.clone();
                    }
                }
            });
            let backend = t.state().backend().clone();
            tokio::task::spawn_blocking(move || backend.delete_snapshot(vmid, &name))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
                .map(|()| 0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// The checks of `POST …/snapshot/{snapname}/rollback` before its task: the guest, the
/// snapshot, the lock. Answers the guest.
pub fn rollback_checks<'c>(
    c: &'c Cluster,
    kind: GuestType,
    node: &str,
    vmid: u32,
    name: &str,
) -> Result<&'c Ct, ApiError> {
    let guest = kind.get(c, node, vmid)?;
    // `AbstractConfig::snapshot_rollback` says "vm" for both kinds.
    if guest.conf.get("template").is_some_and(|t| t == "1") {
        return Err(ApiError::internal("you can't rollback if vm is a template"));
    }
    if !guest.snapshots.contains_key(name) {
        return Err(ApiError::internal(format!(
            "snapshot '{name}' does not exist"
        )));
    }
    kind.check_lock(guest, false).map_err(ApiError::internal)?;
    Ok(guest)
}

/// The body of a rollback task once the guest is stopped: `lock: rollback` while the config
/// and the disks go back to the snapshot, pending changes dropped, then the lock released.
pub async fn rollback_restore(
    t: &TaskCtx,
    kind: GuestType,
    vmid: u32,
    name: &str,
) -> Result<(), String> {
    let d = t.with(|c| c.timings.snapshot);
    t.sleep(d).await;
    t.with(|c| {
        // `__snapshot_rollback_hook`: a VM with a vmgenid is told it is another generation.
        let genid = (kind == GuestType::Qemu
            && kind
                .guests(c)
                .get(&vmid)
                .and_then(|g| g.snapshots.get(name))
                .is_some_and(|s| s.conf.contains_key("vmgenid")))
        .then(|| super::qemu::uuid(c));
        if let Some(guest) = kind.guests_mut(c).get_mut(&vmid)
            && let Some(s) = guest.snapshots.get(name).cloned()
        {
            guest.conf = s.conf;
            if let Some(g) = genid {
                guest.conf.insert("vmgenid".into(), g);
            }
            guest.conf.insert("lock".into(), "rollback".into());
            guest.pending.clear();
            guest.pending_delete.clear();
            guest.parent = Some(name.to_owned());
        }
    });
    let backend = t.state().backend().clone();
    let snap = name.to_owned();
    let res = tokio::task::spawn_blocking(move || backend.rollback(vmid, &snap))
        .await
        .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
    t.with(|c| {
        if let Some(guest) = kind.guests_mut(c).get_mut(&vmid) {
            guest.conf.remove("lock");
        }
    });
    res.map_err(|e| format!("rollback to '{name}' failed: {e}"))
}

/// Sets `lock: rollback` at the start of a rollback task; answers whether the guest ran.
pub fn rollback_lock(t: &TaskCtx, kind: GuestType, vmid: u32) -> Option<bool> {
    t.with(|c| {
        kind.guests_mut(c).get_mut(&vmid).map(|guest| {
            guest.conf.insert("lock".into(), "rollback".into());
            guest.running
        })
    })
}
