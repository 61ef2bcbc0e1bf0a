//! Asynchronous tasks with real-format UPIDs, growing logs and PVE's exit
//! statuses (`OK`, `WARNINGS: n`, or the error text; log ends with `TASK OK`,
//! `TASK WARNINGS: n` or `TASK ERROR: msg`).

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

use crate::auth::Identity;
use crate::state::{Cluster, SimState, Task};

/// Handle given to a task body to log, sleep and touch the cluster.
#[derive(Clone)]
pub struct TaskCtx {
    state: SimState,
    upid: String,
}

impl TaskCtx {
    /// Append a log line.
    pub fn log(&self, line: impl Into<String>) {
        let line = line.into();
        self.state.with(|c| {
            if let Some(t) = c.tasks.get_mut(&self.upid) {
                t.log.push(line);
            }
        });
    }

    /// Sleep (skipped when zero).
    pub async fn sleep(&self, d: Duration) {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// Run `f` with the cluster locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        self.state.with(f)
    }

    /// The simulator state.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// This task's UPID.
    pub fn upid(&self) -> &str {
        &self.upid
    }
}

/// Outcome of a task body: number of warnings on success, error text on failure.
pub type TaskResult = Result<u32, String>;

/// Register a running task (the caller holds the cluster lock) and spawn its
/// body. Returns the UPID.
pub fn spawn_task<F, Fut>(
    state: &SimState,
    cluster: &mut Cluster,
    node: &str,
    ttype: &str,
    id: &str,
    ident: &Identity,
    body: F,
) -> String
where
    F: FnOnce(TaskCtx) -> Fut,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    let user = ident.auth_id();
    let (upid, pid, pstart, starttime) = cluster.new_upid(node, ttype, id, &user);
    cluster.tasks.insert(
        upid.clone(),
        Task {
            upid: upid.clone(),
            node: node.to_string(),
            pid,
            pstart,
            starttime,
            endtime: None,
            ttype: ttype.to_string(),
            id: id.to_string(),
            user: user.clone(),
            tokenid: ident.tokenid.clone(),
            running: true,
            exitstatus: None,
            log: Vec::new(),
        },
    );
    let ctx = TaskCtx {
        state: state.clone(),
        upid: upid.clone(),
    };
    let fut = body(ctx);
    let st = state.clone();
    let u = upid.clone();
    let t = ttype.to_string();
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            let join = h.spawn(async move {
                st.holds().task(&t).await;
                let res = fut.await;
                finish(&st, &u, res);
            });
            state.register_abort(&upid, join.abort_handle());
        }
        Err(_) => {
            if let Some(t) = cluster.tasks.get_mut(&upid) {
                t.running = false;
                t.exitstatus = Some("got no worker upid - start worker failed".into());
                t.log
                    .push("TASK ERROR: got no worker upid - start worker failed".into());
            }
        }
    }
    upid
}

/// Mark a task finished with the body's result.
pub fn finish(state: &SimState, upid: &str, res: TaskResult) {
    state.with(|c| {
        let now = c.now();
        if let Some(t) = c.tasks.get_mut(upid) {
            if !t.running {
                return;
            }
            t.running = false;
            t.endtime = Some(now);
            match res {
                Ok(0) => {
                    t.log.push("TASK OK".into());
                    t.exitstatus = Some("OK".into());
                }
                Ok(n) => {
                    t.log.push(format!("TASK WARNINGS: {n}"));
                    t.exitstatus = Some(format!("WARNINGS: {n}"));
                }
                Err(msg) => {
                    let flat = msg.trim_end().replace('\n', " ");
                    t.log.push(format!("TASK ERROR: {flat}"));
                    t.exitstatus = Some(flat);
                }
            }
        }
    });
    let _ = state.take_abort(upid);
}

/// Abort a running task (`DELETE /tasks/{upid}`).
pub fn abort(state: &SimState, upid: &str) {
    if let Some(h) = state.take_abort(upid) {
        h.abort();
    }
    state.with(|c| {
        let now = c.now();
        if let Some(t) = c.tasks.get_mut(upid)
            && t.running
        {
            t.running = false;
            t.endtime = Some(now);
            t.log.push("received interrupt".into());
            t.log.push("TASK ERROR: received interrupt".into());
            t.exitstatus = Some("received interrupt".into());
        }
    });
}

/// `tasks/{upid}/status` object.
pub fn status_json(t: &Task) -> Value {
    let mut v = json!({
        "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
        "starttime": t.starttime, "type": t.ttype, "id": t.id, "user": t.user,
        "status": if t.running { "running" } else { "stopped" },
    });
    if let Some(m) = v.as_object_mut() {
        if let Some(e) = &t.exitstatus {
            m.insert("exitstatus".into(), json!(e));
        }
        if let Some(tok) = &t.tokenid {
            m.insert("tokenid".into(), json!(tok));
        }
    }
    v
}

/// Split a duration into `n` equal steps.
pub fn step(total: Duration, n: u32) -> Duration {
    if n == 0 { total } else { total / n }
}

/// Parse a UPID into (node, type, id, user).
pub fn parse_upid(upid: &str) -> Option<(String, String, String, String)> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE
        .get_or_init(|| {
            regex::Regex::new(
                r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$",
            )
            .ok()
        })
        .as_ref()?;
    let c = re.captures(upid)?;
    Some((
        c.get(1)?.as_str().to_string(),
        c.get(6)?.as_str().to_string(),
        c.get(7)?.as_str().to_string(),
        c.get(8)?.as_str().to_string(),
    ))
}
