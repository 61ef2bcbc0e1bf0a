//! `/nodes/{node}/qemu/{vmid}/agent/...`: the QEMU guest agent as `PVE::API2::Qemu::Agent`
//! serves it. Every call first loads the config and asserts the agent is available
//! (`No QEMU guest agent configured`, `VM <id> is not running`, `QEMU guest agent is not
//! running` while the guest still boots), then speaks to the agent: the backend's (a real
//! agent over its virtio-serial socket) or the memory backend's emulated shell, the same one
//! `pct exec` reaches. Answers are wrapped as Proxmox wraps them (`{"result": …}` for plain
//! commands, `{"pid"}` for exec, decoded output and 0/1 booleans for exec-status).

use base64::Engine as _;
use serde_json::{Value, json};

use super::qemu::{agent_enabled, get_vm};
use super::{Ctx, Reply};
use crate::backend::PushOptions;
use crate::error::ApiError;
use crate::state::Ct;

/// `agent_available`: the agent is configured, the VM runs, and the agent answers.
fn assert_agent(ctx: &Ctx<'_>) -> Result<(u32, Ct), ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let vm = get_vm(&ctx.state.lock(), &node, vmid)?.clone();
    if !vm.conf.get("agent").is_some_and(|a| agent_enabled(a)) {
        return Err(ApiError::internal("No QEMU guest agent configured"));
    }
    if !vm.running {
        return Err(ApiError::internal(format!("VM {vmid} is not running")));
    }
    if ctx.state.vm_paused(vmid) || !ctx.state.agent_answers(vmid) {
        return Err(ApiError::internal("QEMU guest agent is not running"));
    }
    Ok((vmid, vm))
}

/// `POST …/agent/ping`.
pub fn ping(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    assert_agent(ctx)?;
    Ok(Reply::data(json!({"result": {}})))
}

/// `GET …/agent/info`: the agent's version and commands.
pub fn info(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    assert_agent(ctx)?;
    let cmds: Vec<Value> = [
        "guest-exec",
        "guest-exec-status",
        "guest-file-close",
        "guest-file-open",
        "guest-file-read",
        "guest-file-write",
        "guest-get-host-name",
        "guest-get-osinfo",
        "guest-info",
        "guest-network-get-interfaces",
        "guest-ping",
        "guest-shutdown",
        "guest-sync",
        "guest-sync-delimited",
    ]
    .iter()
    .map(|n| json!({"enabled": true, "name": n, "success-response": *n != "guest-shutdown"}))
    .collect();
    Ok(Reply::data(
        json!({"result": {"version": "7.2.15", "supported_commands": cmds}}),
    ))
}

/// `GET …/agent/get-osinfo`: from the guest's `/etc/os-release` when it has one.
pub fn get_osinfo(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (vmid, _) = assert_agent(ctx)?;
    let release = ctx
        .state
        .backend()
        .pull(vmid, "/etc/os-release")
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let field = |k: &str| {
        release.lines().find_map(|l| {
            l.strip_prefix(&format!("{k}="))
                .map(|v| v.trim_matches('"').to_string())
        })
    };
    let version_id = field("VERSION_ID").unwrap_or_else(|| "12".into());
    let codename = if version_id == "13" {
        "trixie"
    } else {
        "bookworm"
    };
    Ok(Reply::data(json!({"result": {
        "id": field("ID").unwrap_or_else(|| "debian".into()),
        "name": field("NAME").unwrap_or_else(|| "Debian GNU/Linux".into()),
        "pretty-name": field("PRETTY_NAME")
            .unwrap_or_else(|| format!("Debian GNU/Linux {version_id} ({codename})")),
        "version": field("VERSION").unwrap_or_else(|| format!("{version_id} ({codename})")),
        "version-id": version_id,
        "kernel-release": "6.1.0-31-cloud-amd64",
        "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.128-1 (2025-02-07)",
        "machine": "x86_64",
    }})))
}

/// `GET …/agent/get-host-name`.
pub fn get_host_name(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (vmid, vm) = assert_agent(ctx)?;
    let host = ctx
        .state
        .backend()
        .pull(vmid, "/etc/hostname")
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| crate::state::Cluster::vm_name(&vm));
    Ok(Reply::data(json!({"result": {"host-name": host}})))
}

fn addr(ip: &str, ty: &str, prefix: u32) -> Value {
    json!({"ip-address": ip, "ip-address-type": ty, "prefix": prefix})
}

/// The interfaces a Debian guest shows for a VM config: `lo`, then `ens18`, `ens19`, … (the
/// PCI slots of `net0`, `net1`) with the address cloud-init configured (`ipconfigN`, DHCP
/// leases as containers get them) and the link-local IPv6 address of the MAC.
pub fn interfaces_of(vm: &Ct) -> Value {
    let mut out = vec![json!({
        "name": "lo", "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [addr("127.0.0.1", "ipv4", 8), addr("::1", "ipv6", 128)],
        "statistics": {"rx-bytes": 11_264, "rx-packets": 128, "rx-errs": 0, "rx-dropped": 0,
            "tx-bytes": 11_264, "tx-packets": 128, "tx-errs": 0, "tx-dropped": 0},
    })];
    let vmid = vm.vmid;
    for i in 0..32u32 {
        let Some(net) = vm.conf.get(&format!("net{i}")) else {
            continue;
        };
        let mac = net
            .split(',')
            .next()
            .and_then(|p| p.split_once('=').map(|(_, m)| m.to_lowercase()))
            .unwrap_or_default();
        let ipconfig = vm.conf.get(&format!("ipconfig{i}")).cloned();
        let ip = ipconfig
            .as_deref()
            .and_then(|c| c.split(',').find_map(|p| p.strip_prefix("ip=")))
            .unwrap_or("dhcp");
        let v4 = if ip == "dhcp" {
            Some((
                format!("10.10.{}.{}", (vmid / 250) % 250, vmid % 250 + 2),
                16,
            ))
        } else {
            ip.split_once('/')
                .map(|(a, p)| (a.to_string(), p.parse::<u32>().unwrap_or(24)))
        };
        let m: Vec<&str> = mac.split(':').collect();
        let ll = if m.len() == 6 {
            let b0 = u8::from_str_radix(m[0], 16).unwrap_or(0) ^ 0x02;
            format!(
                "fe80::{:02x}{}:{}ff:fe{}:{}{}",
                b0, m[1], m[2], m[3], m[4], m[5]
            )
        } else {
            "fe80::1".into()
        };
        let mut addrs = Vec::new();
        if let Some((a, p)) = v4 {
            addrs.push(addr(&a, "ipv4", p));
        }
        addrs.push(addr(&ll, "ipv6", 64));
        out.push(json!({
            "name": format!("ens{}", 18 + i), "hardware-address": mac, "ip-addresses": addrs,
            "statistics": {"rx-bytes": 1_843_200, "rx-packets": 1_540, "rx-errs": 0,
                "rx-dropped": 0, "tx-bytes": 245_760, "tx-packets": 980, "tx-errs": 0,
                "tx-dropped": 0},
        }));
    }
    Value::Array(out)
}

/// `GET …/agent/network-get-interfaces`.
pub fn network_get_interfaces(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (vmid, vm) = assert_agent(ctx)?;
    let result = ctx
        .state
        .backend()
        .vm_interfaces(vmid)
        .unwrap_or_else(|| interfaces_of(&vm));
    Ok(Reply::data(json!({"result": result})))
}

/// `POST …/agent/exec` (`command` array, `input-data`): `{"pid": N}`.
pub fn exec(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let argv: Vec<String> = ctx
        .params
        .str("command")
        .map(|c| c.split('\0').map(str::to_string).collect())
        .unwrap_or_default();
    let input = ctx.params.str("input-data");
    if argv.is_empty() && input.is_none() {
        return Err(ApiError::internal(
            "command or input-data (or both) required",
        ));
    }
    let (vmid, _) = assert_agent(ctx)?;
    if argv.is_empty() || argv.first().is_some_and(String::is_empty) {
        return Err(ApiError::internal(
            "Agent error: Guest agent command failed, error was 'Failed to execute child process \u{201c}\u{201d} (No such file or directory)'",
        ));
    }
    let pid = ctx
        .state
        .agent_exec(vmid, argv, input.unwrap_or_default().into_bytes());
    Ok(Reply::data(json!({"pid": pid})))
}

/// `GET …/agent/exec-status` (`pid`).
pub fn exec_status(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let pid = ctx.params.int("pid").unwrap_or(-1);
    let (vmid, _) = assert_agent(ctx)?;
    let st = u32::try_from(pid)
        .ok()
        .and_then(|p| ctx.state.agent_exec_status(vmid, p))
        .ok_or_else(|| ApiError::internal("Agent error: Invalid parameter 'pid'"))?;
    if !st.exited {
        return Ok(Reply::data(json!({"exited": 0})));
    }
    let mut m = serde_json::Map::new();
    m.insert("exited".into(), json!(1));
    m.insert("exitcode".into(), json!(st.exitcode.unwrap_or(0)));
    if !st.out.is_empty() {
        m.insert(
            "out-data".into(),
            json!(String::from_utf8_lossy(&st.out).into_owned()),
        );
    }
    if !st.err.is_empty() {
        m.insert(
            "err-data".into(),
            json!(String::from_utf8_lossy(&st.err).into_owned()),
        );
    }
    Ok(Reply::data(Value::Object(m)))
}

/// `POST …/agent/file-write` (`file`, `content`, `encode`).
pub fn file_write(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let file = ctx.p("file")?;
    let content = ctx.p("content")?;
    let encode = ctx.params.flag("encode", true);
    let (vmid, _) = assert_agent(ctx)?;
    let data = if encode {
        content.into_bytes()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .map_err(|_| {
                ApiError::internal(
                    "Agent error: Guest agent command failed, error was 'Invalid parameter 'buf-b64''",
                )
            })?
    };
    ctx.state
        .backend()
        .push(vmid, &file, &data, &PushOptions::default())
        .map_err(|e| {
            ApiError::internal(format!(
                "Agent error: failed to open file '{file}': {}",
                io_reason(&e)
            ))
        })?;
    Ok(Reply::null())
}

/// `GET …/agent/file-read` (`file`): `content` and `bytes-read`.
pub fn file_read(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let file = ctx.p("file")?;
    let (vmid, _) = assert_agent(ctx)?;
    let data = ctx.state.backend().pull(vmid, &file).map_err(|e| {
        ApiError::internal(format!(
            "Agent error: failed to open file '{file}': {}",
            io_reason(&e)
        ))
    })?;
    const MAX: usize = 16 * 1024 * 1024;
    let truncated = data.len() > MAX;
    let body = &data[..data.len().min(MAX)];
    let mut m = serde_json::Map::new();
    m.insert(
        "content".into(),
        json!(String::from_utf8_lossy(body).into_owned()),
    );
    m.insert("bytes-read".into(), json!(body.len()));
    if truncated {
        m.insert("truncated".into(), json!(1));
    }
    Ok(Reply::data(Value::Object(m)))
}

/// The errno text of a backend error (`No such file or directory`, `Permission denied`).
fn io_reason(e: &str) -> &'static str {
    if e.contains("ermission") {
        "Permission denied"
    } else if e.contains("directory") && e.contains("Is a") {
        "Is a directory"
    } else {
        "No such file or directory"
    }
}
