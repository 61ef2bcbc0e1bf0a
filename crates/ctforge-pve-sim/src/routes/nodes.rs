//! `/nodes` and `/nodes/{node}/{status,rrddata,network}`.

use serde_json::{Value, json};

use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::{GIB, frac};

/// `GET /nodes`.
pub fn index(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let c = ctx.state.lock();
    let fp = "5E:3A:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01";
    let list: Vec<Value> = c
        .nodes
        .iter()
        .map(|n| {
            let mut v = c.node_resource(n);
            if let Some(m) = v.as_object_mut() {
                m.insert("ssl_fingerprint".into(), json!(fp));
                m.remove("cgroup-mode");
            }
            v
        })
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// `GET /nodes/{node}/status`.
pub fn status(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let c = ctx.state.lock();
    let Some(n) = c.node(&node) else {
        return Err(ApiError::internal(format!("no such node '{node}'")));
    };
    let now = c.now();
    let res = c.node_resource(n);
    let mem = res.get("mem").and_then(Value::as_u64).unwrap_or(0);
    let f = frac(c.seed, now / 10);
    Ok(Reply::data(json!({
        "uptime": now.saturating_sub(c.boot_time),
        "cpu": res.get("cpu").cloned().unwrap_or(json!(0)),
        "wait": 0.0003,
        "idle": 0,
        "loadavg": [format!("{:.2}", 0.3 + f), format!("{:.2}", 0.4 + f / 2.0), "0.45"],
        "cpuinfo": {"cores": n.maxcpu / 2, "cpus": n.maxcpu, "sockets": 1, "model": "Simulated CPU @ 3.00GHz", "mhz": "3000.000", "hvm": "1", "flags": "fpu vme de pse", "user_hz": 100},
        "memory": {"total": n.maxmem, "used": mem, "free": n.maxmem - mem, "available": n.maxmem - mem},
        "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
        "rootfs": {"total": n.maxdisk, "used": n.maxdisk / 5, "free": n.maxdisk - n.maxdisk / 5, "avail": n.maxdisk - n.maxdisk / 4},
        "ksm": {"shared": 0},
        "kversion": "Linux 6.14.11-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4 (2025-10-10T08:04Z)",
        "current-kernel": {"sysname": "Linux", "release": "6.14.11-4-pve", "machine": "x86_64", "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.11-4 (2025-10-10T08:04Z)"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "pveversion": "pve-manager/9.1.9/ee7bad0a3d15",
    })))
}

/// `GET /nodes/{node}/rrddata`.
pub fn rrddata(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let tf = ctx.p("timeframe")?;
    let max = ctx.params.str("cf").as_deref() == Some("MAX");
    let c = ctx.state.lock();
    let Some(n) = c.node(&node) else {
        return Err(ApiError::internal(format!("no such node '{node}'")));
    };
    let seed = c.seed
        ^ n.name
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    let pts = crate::rrd::node_points(seed, n.maxcpu, n.maxmem, n.maxdisk, c.now(), &tf, max);
    Ok(Reply::data(Value::Array(pts)))
}

fn interfaces(c: &crate::state::Cluster, node: &str) -> Vec<Value> {
    let idx = c.nodes.iter().position(|n| n.name == node).unwrap_or(0);
    let mut out = vec![json!({
        "iface": "eno1", "type": "eth", "active": 1, "exists": 1, "method": "manual",
        "method6": "manual", "families": ["inet"], "priority": 3,
    })];
    for (i, b) in c.bridges.iter().enumerate() {
        let mut v = json!({
            "iface": b, "type": "bridge", "active": 1, "autostart": 1, "method": "manual",
            "method6": "manual", "families": ["inet"], "bridge_ports": if i == 0 { "eno1" } else { "" },
            "bridge_stp": "off", "bridge_fd": "0", "priority": 4 + i,
        });
        if i == 0
            && let Some(m) = v.as_object_mut()
        {
            m.insert("method".into(), json!("static"));
            m.insert("address".into(), json!(format!("192.0.2.{}", 10 + idx)));
            m.insert("netmask".into(), json!("24"));
            m.insert("cidr".into(), json!(format!("192.0.2.{}/24", 10 + idx)));
            m.insert("gateway".into(), json!("192.0.2.1"));
        }
        out.push(v);
    }
    out
}

/// `GET /nodes/{node}/network` (`type` filter incl. `any_bridge`).
pub fn network(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let ty = ctx.params.str("type");
    let c = ctx.state.lock();
    let list: Vec<Value> = interfaces(&c, &node)
        .into_iter()
        .filter(|i| {
            let t = i.get("type").and_then(Value::as_str).unwrap_or("");
            match ty.as_deref() {
                None => true,
                Some("any_bridge") | Some("any_local_bridge") => t == "bridge" || t == "OVSBridge",
                Some(x) => t == x,
            }
        })
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// `GET /nodes/{node}/network/{iface}`.
pub fn network_iface(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let iface = ctx.p("iface")?;
    let c = ctx.state.lock();
    interfaces(&c, &node)
        .into_iter()
        .find(|i| i.get("iface").and_then(Value::as_str) == Some(iface.as_str()))
        .map(Reply::data)
        .ok_or_else(|| ApiError::param("iface", "interface does not exist"))
}
