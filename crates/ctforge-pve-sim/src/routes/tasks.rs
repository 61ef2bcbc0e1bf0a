//! `/nodes/{node}/tasks...`: list, status, log (with `start`/`limit`/`total`), stop.

use serde_json::{Value, json};

use super::{Ctx, Reply};
use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::{Cluster, Task};

fn is_owner(ident: &Identity, t: &Task) -> bool {
    t.user == ident.auth_id()
        || (ident.tokenid.is_none() && t.user.starts_with(&format!("{}!", ident.userid)))
}

fn get_task(ctx: &Ctx<'_>, c: &Cluster, privilege: &str) -> Result<Task, ApiError> {
    let upid = ctx.p("upid")?;
    let node = ctx.p("node")?;
    if crate::tasks::parse_upid(&upid).is_none() {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    let t = c
        .tasks
        .get(&upid)
        .filter(|t| t.node == node)
        .cloned()
        .ok_or_else(|| ApiError::param("upid", "no such task"))?;
    let ident = ctx.ident()?;
    if !is_owner(ident, &t) {
        ctx.check(c, &format!("/nodes/{node}"), privilege)?;
    }
    Ok(t)
}

/// `GET /nodes/{node}/tasks/{upid}`: directory index.
pub fn index(_ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::data(json!([{"name": "log"}, {"name": "status"}])))
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
pub fn status(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let c = ctx.state.lock();
    let t = get_task(ctx, &c, "Sys.Audit")?;
    Ok(Reply::data(crate::tasks::status_json(&t)))
}

/// `GET /nodes/{node}/tasks/{upid}/log`: `[{n, t}]` plus `total`.
pub fn log(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let c = ctx.state.lock();
    let t = get_task(ctx, &c, "Sys.Audit")?;
    if ctx.params.flag("download", false) {
        if ctx.params.has("start") || ctx.params.has("limit") {
            return Err(ApiError::param(
                "download",
                "Parameter 'download' not allowed in combination with 'start' or 'limit'",
            ));
        }
        return Ok(Reply::data(json!(t.log.join("\n") + "\n")));
    }
    let start = ctx.params.int("start").unwrap_or(0).max(0) as usize;
    let limit = ctx.params.int("limit").unwrap_or(50).max(0) as usize;
    let lines: Vec<Value> = if t.log.is_empty() {
        vec![json!({"n": 1, "t": "no content"})]
    } else {
        t.log
            .iter()
            .enumerate()
            .skip(start)
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect()
    };
    let total = t.log.len().max(1);
    Ok(Reply {
        data: Value::Array(lines),
        extra: vec![("total", json!(total))],
    })
}

/// `DELETE /nodes/{node}/tasks/{upid}`: stop a task.
pub fn stop(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let upid = {
        let c = ctx.state.lock();
        get_task(ctx, &c, "Sys.Modify")?.upid
    };
    crate::tasks::abort(ctx.state, &upid);
    Ok(Reply::null())
}

/// `GET /nodes/{node}/tasks`: task list (newest first) with `total`.
pub fn list(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let ident = ctx.ident()?.clone();
    let p = &ctx.params;
    let source = p.str("source").unwrap_or_else(|| "archive".into());
    let c = ctx.state.lock();
    let audit = c.has_priv(&ident, &format!("/nodes/{node}"), "Sys.Audit");
    let statusfilter = p
        .str("statusfilter")
        .map(|s| crate::validate::split_list(&s));
    let mut tasks: Vec<&Task> = c
        .tasks
        .values()
        .filter(|t| t.node == node)
        .filter(|t| audit || is_owner(&ident, t))
        .filter(|t| match source.as_str() {
            "active" => t.running,
            "all" => true,
            _ => !t.running,
        })
        .filter(|t| p.int("vmid").map(|v| t.id == v.to_string()).unwrap_or(true))
        .filter(|t| p.str("typefilter").map(|f| t.ttype == f).unwrap_or(true))
        .filter(|t| {
            p.str("userfilter")
                .map(|f| t.user.contains(&f))
                .unwrap_or(true)
        })
        .filter(|t| {
            p.int("since")
                .map(|s| t.starttime as i64 >= s)
                .unwrap_or(true)
        })
        .filter(|t| {
            p.int("until")
                .map(|s| t.starttime as i64 <= s)
                .unwrap_or(true)
        })
        .filter(|t| {
            !p.flag("errors", false)
                || t.exitstatus
                    .as_deref()
                    .map(|e| e != "OK" && !e.starts_with("WARNINGS"))
                    .unwrap_or(false)
        })
        .filter(|t| {
            let Some(sf) = &statusfilter else { return true };
            let kind = match t.exitstatus.as_deref() {
                None => "unknown",
                Some("OK") => "ok",
                Some(e) if e.starts_with("WARNINGS") => "warning",
                Some(_) => "error",
            };
            sf.iter().any(|s| s == kind)
        })
        .collect();
    tasks.sort_by(|a, b| b.starttime.cmp(&a.starttime).then(b.pid.cmp(&a.pid)));
    let total = tasks.len();
    let start = p.int("start").unwrap_or(0).max(0) as usize;
    let limit = p.int("limit").unwrap_or(50).max(0) as usize;
    let list: Vec<Value> = tasks
        .into_iter()
        .skip(start)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(|t| {
            let mut v = json!({
                "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
                "starttime": t.starttime, "type": t.ttype, "id": t.id, "user": t.user,
            });
            if let Some(m) = v.as_object_mut() {
                if let Some(e) = &t.exitstatus {
                    m.insert("status".into(), json!(e));
                }
                if let Some(e) = t.endtime {
                    m.insert("endtime".into(), json!(e));
                }
                if let Some(tok) = &t.tokenid {
                    m.insert("tokenid".into(), json!(tok));
                }
            }
            v
        })
        .collect();
    Ok(Reply {
        data: Value::Array(list),
        extra: vec![("total", json!(total))],
    })
}
