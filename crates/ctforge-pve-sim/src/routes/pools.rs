//! `/pools`: list, create, update (add/remove members), delete, read.

use serde_json::{Value, json};

use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::{Cluster, Pool};

fn members(c: &Cluster, pool: &Pool, ty: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    for v in &pool.vms {
        let r = match (c.cts.get(v), c.vms.get(v)) {
            (Some(ct), _) if ty.map(|t| t == "lxc").unwrap_or(true) => c.ct_resource(ct),
            (_, Some(vm)) if ty.map(|t| t == "qemu").unwrap_or(true) => c.vm_resource(vm),
            _ => continue,
        };
        let mut r = r;
        if let Some(m) = r.as_object_mut() {
            m.remove("pool");
        }
        out.push(r);
    }
    if ty.map(|t| t == "storage").unwrap_or(true) {
        for s in &pool.storages {
            for n in &c.nodes {
                out.push(json!({"id": format!("storage/{}/{s}", n.name), "type": "storage", "storage": s, "node": n.name}));
            }
        }
    }
    out
}

/// `GET /pools` (optionally `poolid`, `type`).
pub fn index(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let ident = ctx.ident()?.clone();
    let c = ctx.state.lock();
    let only = ctx.params.str("poolid");
    let ty = ctx.params.str("type");
    if let Some(p) = &only
        && !c.pools.contains_key(p)
    {
        return Err(ApiError::internal(format!("pool '{p}' does not exist")));
    }
    let list: Vec<Value> = c
        .pools
        .iter()
        .filter(|(id, _)| only.as_deref().map(|o| o == *id).unwrap_or(true))
        .filter(|(id, _)| c.has_priv(&ident, &format!("/pool/{id}"), "Pool.Audit"))
        .map(|(id, p)| {
            let mut v = json!({"poolid": id, "members": members(&c, p, ty.as_deref())});
            if let (Some(cm), Some(m)) = (&p.comment, v.as_object_mut()) {
                m.insert("comment".into(), json!(cm));
            }
            v
        })
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// `POST /pools`.
pub fn create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let id = ctx.p("poolid")?;
    let mut c = ctx.state.lock();
    if c.pools.contains_key(&id) {
        return Err(ApiError::internal(format!("pool '{id}' already exists")));
    }
    c.pools.insert(
        id,
        Pool {
            comment: ctx.params.str("comment"),
            ..Pool::default()
        },
    );
    Ok(Reply::null())
}

/// `PUT /pools`: update comment, add or remove members.
pub fn update(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let id = ctx.p("poolid")?;
    let del = ctx.params.flag("delete", false);
    let allow_move = ctx.params.flag("allow-move", false);
    let mut c = ctx.state.lock();
    if !c.pools.contains_key(&id) {
        return Err(ApiError::internal(format!("pool '{id}' does not exist")));
    }
    let vms: Vec<u32> = ctx
        .params
        .str("vms")
        .map(|v| {
            crate::validate::split_list(&v)
                .iter()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let storages = ctx
        .params
        .str("storage")
        .map(|s| crate::validate::split_list(&s))
        .unwrap_or_default();
    for v in &vms {
        if !c.vmid_used(*v) {
            return Err(ApiError::internal(format!("VM {v} does not exist")));
        }
        if !del {
            let other = c
                .pools
                .iter()
                .find(|(p, pool)| **p != id && pool.vms.contains(v))
                .map(|(p, _)| p.clone());
            if let Some(o) = other {
                if !allow_move {
                    return Err(ApiError::internal(format!(
                        "VM {v} belongs already to pool '{o}'"
                    )));
                }
                if let Some(op) = c.pools.get_mut(&o) {
                    op.vms.remove(v);
                }
            }
        }
    }
    for s in &storages {
        if c.storage(s).is_none() {
            return Err(ApiError::internal(format!("storage '{s}' does not exist")));
        }
    }
    if let Some(p) = c.pools.get_mut(&id) {
        if let Some(cm) = ctx.params.str("comment") {
            p.comment = Some(cm);
        }
        for v in vms {
            if del {
                p.vms.remove(&v);
            } else {
                p.vms.insert(v);
            }
        }
        for s in storages {
            if del {
                p.storages.remove(&s);
            } else {
                p.storages.insert(s);
            }
        }
    }
    Ok(Reply::null())
}

/// `DELETE /pools`.
pub fn delete(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let id = ctx.p("poolid")?;
    let mut c = ctx.state.lock();
    match c.pools.get(&id) {
        None => Err(ApiError::internal(format!("pool '{id}' does not exist"))),
        Some(p) if !p.vms.is_empty() || !p.storages.is_empty() => {
            Err(ApiError::internal(format!("pool '{id}' is not empty")))
        }
        Some(_) => {
            c.pools.remove(&id);
            Ok(Reply::null())
        }
    }
}

/// `GET /pools/{poolid}` (deprecated form).
pub fn read(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let id = ctx.p("poolid")?;
    let c = ctx.state.lock();
    let Some(p) = c.pools.get(&id) else {
        return Err(ApiError::internal(format!("pool '{id}' does not exist")));
    };
    let mut v = json!({"members": members(&c, p, ctx.params.str("type").as_deref())});
    if let (Some(cm), Some(m)) = (&p.comment, v.as_object_mut()) {
        m.insert("comment".into(), json!(cm));
    }
    Ok(Reply::data(v))
}
