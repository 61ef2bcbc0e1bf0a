//! Looking up what a cluster and node offer (nodes, next VMID, OS templates, cloud images,
//! storages, bridges) for the wizard's defaults and choices. Uses the caller's client, so a user sees what
//! Proxmox lets them see.

use ctforge_pve::PveApi;

use super::plan::Environment;
use crate::storage::model::Cluster;

/// Fetches the environment of `cluster`, with the node's choices for `node` (or the first
/// online node). Failures are returned as text for the page to show.
pub async fn lookup(
    client: &dyn PveApi,
    cluster: &Cluster,
    node: Option<&str>,
) -> Result<Environment, String> {
    let nodes = client
        .nodes()
        .await
        .map_err(|e| format!("cannot list nodes of {}: {e}", cluster.name))?;
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
    let next_vmid = client
        .cluster_nextid(None)
        .await
        .map_err(|e| format!("cannot get the next free VMID: {e}"))?;
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
    let storages = client
        .node_storage(&node, None)
        .await
        .map_err(|e| format!("cannot list storages of {node}: {e}"))?;
    for storage in &storages {
        let contents: Vec<&str> = storage.content.split(',').collect();
        if contents.contains(&"rootdir") {
            env.rootdir_storages.push(storage.storage.clone());
        }
        if contents.contains(&"snippets") {
            env.snippet_storages.push(storage.storage.clone());
        }
        if contents.contains(&"images") {
            env.image_storages.push(storage.storage.clone());
        }
        if contents.contains(&"import") {
            match client
                .storage_content(&node, &storage.storage, Some("import"))
                .await
            {
                Ok(items) => env
                    .import_volumes
                    .extend(items.into_iter().map(|i| i.volid)),
                Err(e) => {
                    tracing::warn!(storage = %storage.storage, error = %e, "cannot list cloud images")
                }
            }
        }
        if contents.contains(&"vztmpl") {
            match client
                .storage_content(&node, &storage.storage, Some("vztmpl"))
                .await
            {
                Ok(items) => env.ostemplates.extend(items.into_iter().map(|i| i.volid)),
                Err(e) => {
                    tracing::warn!(storage = %storage.storage, error = %e, "cannot list OS templates")
                }
            }
        }
    }
    env.ostemplates.sort();
    env.import_volumes.sort();
    match client.node_network(&node, Some("bridge")).await {
        Ok(ifaces) => env.bridges = ifaces.into_iter().map(|i| i.iface).collect(),
        Err(e) => tracing::warn!(node = %node, error = %e, "cannot list bridges"),
    }
    Ok(env)
}
