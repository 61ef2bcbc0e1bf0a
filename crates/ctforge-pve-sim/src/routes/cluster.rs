//! `/version` and `/cluster/...`: resources across all nodes, nextid, status.

use serde_json::{Value, json};

use super::{Ctx, Reply};
use crate::error::ApiError;

/// `GET /version`.
pub fn version(_c: &Ctx<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::data(json!({
        "version": "9.1.9", "release": "9.1", "repoid": "ee7bad0a3d15", "console": "xtermjs",
    })))
}

/// `GET /cluster/resources` (`type` = vm | node | storage | sdn).
pub fn resources(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let ident = ctx.ident()?.clone();
    let ty = ctx.params.str("type");
    let c = ctx.state.lock();
    let want = |t: &str| ty.as_deref().map(|x| x == t).unwrap_or(true);
    let mut out: Vec<Value> = Vec::new();
    if want("node") {
        for n in &c.nodes {
            if c.has_priv(&ident, &format!("/nodes/{}", n.name), "Sys.Audit") {
                out.push(c.node_resource(n));
            }
        }
    }
    if want("vm") {
        for ct in c.cts.values() {
            if c.has_priv(&ident, &format!("/vms/{}", ct.vmid), "VM.Audit") {
                out.push(c.ct_resource(ct));
            }
        }
        for vm in c.vms.values() {
            if c.has_priv(&ident, &format!("/vms/{}", vm.vmid), "VM.Audit") {
                out.push(c.vm_resource(vm));
            }
        }
    }
    if want("storage") {
        for n in &c.nodes {
            for s in &c.storages {
                let path = format!("/storage/{}", s.id);
                if !c.has_priv(&ident, &path, "Datastore.Audit")
                    && !c.has_priv(&ident, &path, "Datastore.AllocateSpace")
                {
                    continue;
                }
                let mut content = s.content.clone();
                content.sort();
                out.push(json!({
                    "id": format!("storage/{}/{}", n.name, s.id), "type": "storage",
                    "storage": s.id, "node": n.name,
                    "status": if n.online { "available" } else { "unknown" },
                    "disk": c.storage_used(&n.name, s), "maxdisk": s.total,
                    "content": content.join(","), "plugintype": s.kind,
                    "shared": if s.shared { 1 } else { 0 },
                }));
            }
        }
    }
    if ty.is_none() {
        for (id, _) in c.pools.iter() {
            if c.has_priv(&ident, &format!("/pool/{id}"), "Pool.Audit") {
                out.push(json!({"id": format!("/pool/{id}"), "type": "pool", "pool": id}));
            }
        }
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET /cluster/nextid`: a string; with `vmid`, 400 when taken.
pub fn nextid(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let c = ctx.state.lock();
    if let Some(v) = ctx.params.int("vmid") {
        let taken = u32::try_from(v).map(|v| c.vmid_used(v)).unwrap_or(false);
        if taken {
            return Err(ApiError::param("vmid", format!("VM {v} already exists")));
        }
        return Ok(Reply::data(json!(v.to_string())));
    }
    Ok(Reply::data(json!(c.next_vmid().to_string())))
}

/// `GET /cluster/status`: each node's `ip` is where its SSH endpoint listens (documentation
/// addresses when SSH is off).
pub fn status(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let c = ctx.state.lock();
    let online = c.nodes.iter().filter(|n| n.online).count();
    let mut out = vec![json!({
        "type": "cluster", "id": "cluster", "name": c.name, "nodes": c.nodes.len(),
        "quorate": if online * 2 > c.nodes.len() { 1 } else { 0 }, "version": c.nodes.len() + 2,
    })];
    for (i, n) in c.nodes.iter().enumerate() {
        out.push(json!({
            "type": "node", "id": format!("node/{}", n.name), "name": n.name, "nodeid": i + 1,
            "online": if n.online { 1 } else { 0 }, "local": if i == 0 { 1 } else { 0 },
            "ip": ctx.state.node_ip(&n.name).unwrap_or_else(|| format!("192.0.2.{}", 10 + i)),
            "level": "",
        }));
    }
    Ok(Reply::data(Value::Array(out)))
}
