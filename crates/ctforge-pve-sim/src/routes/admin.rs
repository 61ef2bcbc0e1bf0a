//! `/sim/admin/...`: fault injection and inspection (root token or root ticket).
//!
//! | method | path | body |
//! |---|---|---|
//! | GET | `/sim/admin/state` | – |
//! | GET | `/sim/admin/calls` | – (API requests received by `METHOD /path`) |
//! | DELETE | `/sim/admin/calls` | – (reset the counts) |
//! | POST | `/sim/admin/nodes/{node}/down` | `{"code":595}` (optional) |
//! | POST | `/sim/admin/nodes/{node}/up` | – |
//! | POST | `/sim/admin/faults` | a [`FaultRule`] |
//! | DELETE | `/sim/admin/faults` | – |
//! | PUT | `/sim/admin/latency` | `{"ms":100}` |
//! | PUT | `/sim/admin/ticket-lifetime` | `{"secs":60}` |
//! | POST | `/sim/admin/clock` | `{"advance_secs":7200}` |
//! | PUT | `/sim/admin/timings` | a [`crate::Timings`] (ms) |
//! | GET | `/sim/admin/ct/{vmid}/guest` | – |
//! | PUT | `/sim/admin/ct/{vmid}/services` | `[{"name":"nginx","port":80}]` |
//! | PUT | `/sim/admin/ct/{vmid}/files` | `{"/etc/x":"content"}` |
//! | PUT | `/sim/admin/ct/{vmid}/missing-commands` | `["ss"]` (memory backend) |
//! | POST | `/sim/admin/ct/{vmid}/exec` | `{"argv":["bash","-c","…"],"stdin":""}` |

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::scenario::{FaultRule, ServiceSpec};
use crate::state::SimState;

/// Handle an admin call; `Err((status, message))` on failure.
pub fn handle(
    state: &SimState,
    method: &str,
    path: &str,
    body: Value,
) -> Result<Value, (u16, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let bad = |e: String| (400u16, e);
    let vmid_of = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| (400u16, format!("bad vmid '{s}'")))
    };
    match (method, segs.as_slice()) {
        ("GET", ["state"]) => Ok(state.with(|c| {
            json!({
                "nodes": c.nodes, "containers": c.cts.len(), "tasks": c.tasks.len(),
                "faults": c.faults, "timings": c.timings, "ticket_lifetime": c.ticket_lifetime,
                "clock_offset": c.clock_offset, "backend": state.backend().name(),
            })
        })),
        ("GET", ["calls"]) => Ok(json!(state.calls())),
        ("DELETE", ["calls"]) => {
            state.reset_calls();
            Ok(Value::Null)
        }
        ("POST", ["nodes", node, action]) if *action == "down" || *action == "up" => {
            let code = body.get("code").and_then(Value::as_u64).unwrap_or(595) as u16;
            if state.set_node_online(node, *action == "up", code) {
                Ok(Value::Null)
            } else {
                Err((404, format!("no such node '{node}'")))
            }
        }
        ("POST", ["faults"]) => {
            let rule: FaultRule = serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
            state.add_fault(rule).map_err(bad)?;
            Ok(Value::Null)
        }
        ("DELETE", ["faults"]) => {
            state.clear_faults();
            Ok(Value::Null)
        }
        ("PUT", ["latency"]) => {
            let ms = body
                .get("ms")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("need ms".into()))?;
            state.set_latency(Duration::from_millis(ms));
            Ok(Value::Null)
        }
        ("PUT", ["ticket-lifetime"]) => {
            let s = body
                .get("secs")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("need secs".into()))?;
            state.set_ticket_lifetime(s);
            Ok(Value::Null)
        }
        ("POST", ["clock"]) => {
            let s = body
                .get("advance_secs")
                .and_then(Value::as_i64)
                .ok_or_else(|| bad("need advance_secs".into()))?;
            state.advance_clock(s);
            Ok(Value::Null)
        }
        ("PUT", ["timings"]) => {
            let t: crate::Timings = serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
            state.set_timings(t);
            Ok(Value::Null)
        }
        ("GET", ["ct", vmid, "guest"]) => {
            let vmid = vmid_of(vmid)?;
            let g = state
                .memory_backend()
                .and_then(|m| m.guest(vmid))
                .ok_or_else(|| (404u16, format!("no guest {vmid}")))?;
            let files: BTreeMap<&String, String> = g
                .data
                .files
                .iter()
                .map(|(k, f)| (k, String::from_utf8_lossy(&f.data).into_owned()))
                .collect();
            Ok(json!({
                "hostname": g.data.hostname, "files": files, "services": g.data.services,
                "packages": g.data.packages, "commands": g.commands,
            }))
        }
        ("PUT", ["ct", vmid, "services"]) => {
            let vmid = vmid_of(vmid)?;
            let s: Vec<ServiceSpec> =
                serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
            state.set_services(vmid, &s);
            Ok(Value::Null)
        }
        ("PUT", ["ct", vmid, "files"]) => {
            let vmid = vmid_of(vmid)?;
            let f: BTreeMap<String, String> =
                serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
            for (p, c) in f {
                state.backend().write_file(vmid, &p, c.as_bytes());
            }
            Ok(Value::Null)
        }
        ("PUT", ["ct", vmid, "missing-commands"]) => {
            let vmid = vmid_of(vmid)?;
            let names: Vec<String> =
                serde_json::from_value(body).map_err(|e| bad(e.to_string()))?;
            let m = state
                .memory_backend()
                .ok_or_else(|| (400u16, "not the memory backend".to_string()))?;
            if m.set_missing_commands(vmid, &names) {
                Ok(Value::Null)
            } else {
                Err((404, format!("no guest {vmid}")))
            }
        }
        ("POST", ["ct", vmid, "exec"]) => {
            let vmid = vmid_of(vmid)?;
            let argv: Vec<String> = body
                .get("argv")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| bad(e.to_string()))?
                .unwrap_or_default();
            let stdin = body
                .get("stdin")
                .and_then(Value::as_str)
                .unwrap_or("")
                .as_bytes()
                .to_vec();
            let m = state
                .memory_backend()
                .ok_or_else(|| (400u16, "not the memory backend".to_string()))?;
            let (o, e, code) = m.run(vmid, &argv, &stdin);
            Ok(
                json!({"stdout": String::from_utf8_lossy(&o), "stderr": String::from_utf8_lossy(&e), "code": code}),
            )
        }
        _ => Err((
            501,
            format!(
                "Method '{method} /sim/admin/{}' not implemented",
                segs.join("/")
            ),
        )),
    }
}
