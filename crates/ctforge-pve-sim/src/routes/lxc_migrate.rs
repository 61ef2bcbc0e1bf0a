//! `POST /nodes/{node}/lxc/{vmid}/migrate`: offline migration and restart migration of a
//! container to another node (task `vzmigrate`), with pve-container's checks and task log:
//! `target is local node.`, `no such cluster node '…'`, `can't migrate running container
//! without --online or --restart`, `lxc live migration is currently not implemented`, the
//! CT's lock, and a target node that is down. The guest moves with its config: afterwards
//! the source node's `pct` no longer knows it and the target's does. The backend moves the
//! guest itself ([`crate::backend::CtBackend::migrate`]).

use serde_json::json;

use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::tasks::spawn_task;

/// `hh:mm:ss` of a duration in seconds, as in `migration finished successfully (duration …)`.
fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `POST /nodes/{node}/lxc/{vmid}/migrate` (`target`, `restart`, `online`, `timeout`).
pub fn migrate(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let target = ctx.p("target")?;
    let restart = ctx.params.flag("restart", false);
    let online = ctx.params.flag("online", false);
    let ident = ctx.ident()?.clone();
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    let mut c = ctx.state.lock();
    if c.node(&target).is_none() {
        return Err(ApiError::internal(format!(
            "no such cluster node '{target}'"
        )));
    }
    let ct = c
        .cts
        .get(&vmid)
        .filter(|ct| ct.node == node)
        .ok_or_else(|| ApiError::no_config(&node, vmid))?;
    if ct.running && !online && !restart {
        return Err(ApiError::internal(
            "can't migrate running container without --online or --restart",
        ));
    }
    let target_ip = ctx.state.node_ip(&target).unwrap_or_else(|| {
        format!(
            "192.0.2.{}",
            10 + c.nodes.iter().position(|n| n.name == target).unwrap_or(0)
        )
    });
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "vzmigrate",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let started = t.with(|c| c.now());
            let fail = |e: String| {
                let secs = t.with(|c| c.now()).saturating_sub(started);
                format!("migration aborted (duration {}): {e}", hms(secs))
            };
            t.log(format!(
                "starting migration of CT {vmid} to node '{target}' ({target_ip})"
            ));
            let (running, volumes, lock, target_up) = t.with(|c| {
                let target_up = c.node(&target).map(|n| n.online).unwrap_or(false);
                let Some(ct) = c.cts.get(&vmid) else {
                    return (false, Vec::new(), None, target_up);
                };
                let vols: Vec<String> = ct
                    .conf
                    .iter()
                    .filter(|(k, _)| *k == "rootfs" || k.starts_with("mp"))
                    .filter_map(|(_, v)| v.split(',').next().map(str::to_string))
                    .filter(|vol| {
                        let sid = vol.split(':').next().unwrap_or("");
                        c.storage(sid).map(|s| !s.shared).unwrap_or(false)
                    })
                    .collect();
                (ct.running, vols, ct.lock().map(str::to_string), target_up)
            });
            if let Some(l) = lock {
                return Err(fail(format!("CT is locked ({l})")));
            }
            if running && online {
                return Err(fail(
                    "lxc live migration is currently not implemented".into(),
                ));
            }
            if !target_up {
                return Err(fail(format!(
                    "Can't connect to destination address ({target_ip}) using public key authentication"
                )));
            }
            let backend = t.state().backend().clone();
            if running {
                t.log(format!("shutdown CT {vmid}"));
                let d = t.with(|c| c.timings.shutdown);
                t.sleep(d).await;
                let b = backend.clone();
                tokio::task::spawn_blocking(move || b.shutdown(vmid))
                    .await
                    .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
                    .map_err(&fail)?;
                t.with(|c| {
                    let now = c.now();
                    if let Some(ct) = c.cts.get_mut(&vmid) {
                        ct.set_stopped(now);
                    }
                });
            }
            for v in &volumes {
                t.log(format!("found local volume '{v}' (in current VM config)"));
            }
            let d = t.with(|c| c.timings.snapshot);
            t.sleep(d).await;
            let b = backend.clone();
            let to = target.clone();
            let lines = tokio::task::spawn_blocking(move || b.migrate(vmid, &to))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
                .map_err(&fail)?;
            for l in lines {
                t.log(l);
            }
            for v in &volumes {
                t.log(format!("volume '{v}' is '{v}' on the target"));
            }
            let conf = t.with(|c| {
                c.cts.get_mut(&vmid).map(|ct| {
                    ct.node = target.clone();
                    ct.conf.clone()
                })
            });
            t.log("start final cleanup");
            if running && restart {
                t.log("start container on target node");
                let d = t.with(|c| c.timings.start);
                t.sleep(d).await;
                let b = backend.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(conf) = conf {
                        b.configure(vmid, &conf)?;
                    }
                    b.start(vmid)
                })
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
                .map_err(|e| fail(format!("startup for container '{vmid}' failed: {e}")))?;
                t.with(|c| {
                    let now = c.now();
                    if let Some(ct) = c.cts.get_mut(&vmid) {
                        ct.set_running(now);
                    }
                });
            }
            let secs = t.with(|c| c.now()).saturating_sub(started);
            t.log(format!(
                "migration finished successfully (duration {})",
                hms(secs)
            ));
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}
