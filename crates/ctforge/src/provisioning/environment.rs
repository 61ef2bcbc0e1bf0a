//! Looking up what a cluster and node offer (nodes, next VMID, OS templates, cloud images,
//! storages, bridges, the VM templates a VM can be cloned from) for the wizard's defaults and
//! choices. Uses the caller's client, so a user sees what Proxmox lets them see. Reads that do not depend on each other go out together (nodes with the
//! next VMID; the bridges with the storages and their listings): a creation request waits for
//! the slowest of them, not for their sum.

use ctforge_pve::PveApi;
use ctforge_pve::types::ClusterResource;

use super::plan::{self, CloneSource, Environment};
use crate::auth::CurrentUser;
use crate::authz::Effective;
use crate::state::AppState;
use crate::storage::model::Cluster;

/// Fetches the environment of `cluster`, with the node's choices for `node` (or the first
/// online node). Failures are returned as text for the page to show.
pub async fn lookup(
    client: &dyn PveApi,
    cluster: &Cluster,
    node: Option<&str>,
) -> Result<Environment, String> {
    let (nodes, next_vmid) = tokio::join!(client.nodes(), client.cluster_nextid(None));
    let nodes = nodes.map_err(|e| format!("cannot list nodes of {}: {e}", cluster.name))?;
    let mut names: Vec<(bool, String)> = nodes
        .into_iter()
        .map(|n| (n.status != "online", n.node))
        .collect();
    names.sort();
    let nodes: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    let node = node
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| nodes.first().cloned());
    let next_vmid = next_vmid.map_err(|e| format!("cannot get the next free VMID: {e}"))?;
    let mut env = Environment {
        cluster_id: cluster.id,
        cluster_name: cluster.name.clone(),
        nodes,
        next_vmid,
        ..Default::default()
    };
    let Some(node) = node else { return Ok(env) };
    if !env.nodes.contains(&node) {
        // Not a node of this cluster: nothing to ask Proxmox; `plan::resolve` names the field.
        return Ok(env);
    }
    let storages = async {
        let node = node.as_str();
        let storages = client
            .node_storage(node, None)
            .await
            .map_err(|e| format!("cannot list storages of {node}: {e}"))?;
        let mut found = Storages::default();
        let mut listings = Vec::new();
        for storage in &storages {
            let contents: Vec<&str> = storage.content.split(',').collect();
            if contents.contains(&"rootdir") {
                found.rootdir.push(storage.storage.clone());
            }
            if contents.contains(&"snippets") {
                found.snippets.push(storage.storage.clone());
            }
            if contents.contains(&"images") {
                found.images.push(storage.storage.clone());
            }
            // OS templates and cloud images are listed together, each storage at once.
            for content in ["vztmpl", "import"] {
                if contents.contains(&content) {
                    listings.push(async move {
                        let listed = client
                            .storage_content(node, &storage.storage, Some(content))
                            .await;
                        (content, storage.storage.clone(), listed)
                    });
                }
            }
        }
        for (content, storage, listed) in futures_util::future::join_all(listings).await {
            match (content, listed) {
                ("vztmpl", Ok(items)) => {
                    found.ostemplates.extend(items.into_iter().map(|i| i.volid))
                }
                (_, Ok(items)) => found.imports.extend(items.into_iter().map(|i| i.volid)),
                ("vztmpl", Err(e)) => {
                    tracing::warn!(storage = %storage, error = %e, "cannot list OS templates")
                }
                (_, Err(e)) => {
                    tracing::warn!(storage = %storage, error = %e, "cannot list cloud images")
                }
            }
        }
        Ok::<_, String>(found)
    };
    let (storages, bridges) = tokio::join!(storages, client.node_network(&node, Some("bridge")));
    let found = storages?;
    env.rootdir_storages = found.rootdir;
    env.snippet_storages = found.snippets;
    env.image_storages = found.images;
    env.ostemplates = found.ostemplates;
    env.ostemplates.sort();
    env.import_volumes = found.imports;
    env.import_volumes.sort();
    match bridges {
        Ok(ifaces) => env.bridges = ifaces.into_iter().map(|i| i.iface).collect(),
        Err(e) => tracing::warn!(node = %node, error = %e, "cannot list bridges"),
    }
    Ok(env)
}

/// What a node's storages offer, read in one pass.
#[derive(Default)]
struct Storages {
    rootdir: Vec<String>,
    snippets: Vec<String>,
    images: Vec<String>,
    ostemplates: Vec<String>,
    imports: Vec<String>,
}

/// The VM a request clones (`clone_from`): whether it is a template, the storage of its boot
/// disk, whether that disk allows a linked clone (a template's `base-` volume on thin LVM, ZFS
/// or Ceph, or a qcow2 file on a directory storage: qemu-server's `vdisk_clone`) and whether it
/// has a cloud-init drive. `None` when Proxmox has no such VM on `node`.
pub async fn clone_source(
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
) -> Result<Option<CloneSource>, String> {
    let config = match client.qemu_config_get(node, vmid, true).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(format!("cannot read VM {vmid} on {node}: {e}")),
    };
    let text = |k: &str| {
        config.get(k).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let template = text("template").is_some_and(|t| t == "1");
    let disk = text(plan::VM_DISK).unwrap_or_default();
    let volume = disk.split(',').next().unwrap_or("").to_owned();
    let disk_storage = volume.split_once(':').map(|(s, _)| s.to_owned());
    let cloudinit = config.iter().any(|(k, v)| {
        ["ide", "sata", "scsi"].iter().any(|p| k.starts_with(p))
            && v.as_str().is_some_and(|v| v.contains("cloudinit"))
    });
    let storage_kind = match &disk_storage {
        Some(s) => client
            .node_storage(node, None)
            .await
            .map_err(|e| format!("cannot list storages of {node}: {e}"))?
            .into_iter()
            .find(|st| &st.storage == s)
            .map(|st| st.kind),
        None => None,
    };
    let linked = template
        && match storage_kind.as_deref() {
            Some("lvmthin" | "zfspool" | "rbd") => true,
            Some("dir" | "nfs" | "cifs") => volume.ends_with(".qcow2"),
            _ => false,
        };
    Ok(Some(CloneSource {
        vmid,
        template,
        disk_storage,
        linked,
        cloudinit,
    }))
}

/// Reads the VM a request clones (`clone_from`) into `env.clone_source`, on the request's
/// node (else the first): a clone stays on its template's node. An out-of-range VMID or an
/// unknown node is left to `plan::resolve`, which names the field; Proxmox is not asked.
pub async fn read_clone_source(
    client: &dyn PveApi,
    env: &mut Environment,
    clone_from: Option<u32>,
    node: Option<&str>,
) -> Result<(), String> {
    let Some(source) = clone_from.filter(|v| plan::valid_vmid(*v)) else {
        return Ok(());
    };
    let node = node
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| env.nodes.first().cloned());
    if let Some(node) = node.filter(|n| env.nodes.contains(n)) {
        env.clone_source = clone_source(client, &node, source).await?;
    }
    Ok(())
}

/// A VM template a new VM can be cloned from, as the wizard offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmTemplate {
    /// Its VMID.
    pub vmid: u32,
    /// Its name in Proxmox (empty when it has none).
    pub name: String,
    /// The node holding it (the clone is made there).
    pub node: String,
}

/// The VM templates among `resources` (`/cluster/resources`: `qemu` entries with
/// `template: 1`) that the identity may clone: Proxmox's `clone_vm` needs VM.Clone on the
/// template. Without its rights (`None`: they could not be read) the listing stands as
/// Proxmox gave it, and the creation's own check decides. Ordered by node, then VMID.
pub fn clone_choices(resources: &[ClusterResource], rights: Option<&Effective>) -> Vec<VmTemplate> {
    let mut found: Vec<VmTemplate> = resources
        .iter()
        .filter(|r| r.kind == "qemu" && r.template == Some(true))
        .filter_map(|r| {
            Some(VmTemplate {
                vmid: r.vmid?,
                name: r.name.clone().unwrap_or_default(),
                node: r.node.clone()?,
            })
        })
        .filter(|t| rights.is_none_or(|e| e.vm_holds(t.vmid, "VM.Clone")))
        .collect();
    found.sort_by(|a, b| a.node.cmp(&b.node).then(a.vmid.cmp(&b.vmid)));
    found
}

/// The VM templates of `cluster` that `user` may clone, from the dashboard's shared read of
/// `/cluster/resources` (no extra Proxmox call within its freshness window).
pub async fn vm_templates(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
) -> Result<Vec<VmTemplate>, String> {
    let seen = crate::containers::listing::seen(state, user, cluster).await?;
    match &seen.result {
        Ok((resources, rights)) => Ok(clone_choices(resources, rights.as_ref())),
        Err(failure) => Err(failure.reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(vmid: u32, node: &str, template: bool) -> ClusterResource {
        serde_json::from_value(serde_json::json!({
            "id": format!("qemu/{vmid}"),
            "type": "qemu",
            "vmid": vmid,
            "node": node,
            "name": format!("vm{vmid}"),
            "template": u8::from(template),
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_vm_templates_the_identity_may_clone_are_offered() {
        let mut ct = guest(9002, "pve1", true);
        ct.kind = "lxc".into();
        let resources = [
            guest(9001, "pve2", true),
            guest(100, "pve1", false),
            guest(9000, "pve1", true),
            guest(9003, "pve1", true),
            ct,
        ];
        let all: Vec<u32> = clone_choices(&resources, None)
            .iter()
            .map(|t| t.vmid)
            .collect();
        assert_eq!(all, [9000, 9003, 9001], "VM templates, by node then VMID");
        // VM.Clone propagated from /vms, except on 9003 whose own ACL lacks it.
        let rights: Effective = Effective(
            serde_json::from_value(serde_json::json!({
                "/vms": { "VM.Audit": 1, "VM.Clone": 1 },
                "/vms/9003": { "VM.Audit": 1 },
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let allowed: Vec<(u32, String)> = clone_choices(&resources, Some(&rights))
            .into_iter()
            .map(|t| (t.vmid, t.node))
            .collect();
        assert_eq!(allowed, [(9000, "pve1".into()), (9001, "pve2".into())]);
    }
}
