//! The QEMU side of the creation job (`Plan::kind` = `qemu`): write the template's cloud-init
//! user-data as a vendor-data snippet where a storage holds snippets, create the VM with its disk
//! imported from the cloud image and its cloud-init drive (`POST /nodes/{node}/qemu`) — or clone
//! a VM template (`POST …/qemu/{template}/clone`, `Plan::vm_clone`) and set the clone's own
//! configuration (`PUT …/config`: cloud-init user, keys, address, resources) — grow the
//! disk to the requested size (`PUT …/resize`), start it and wait — bounded — until its guest
//! agent answers (`agent/ping`), cloud-init finished the first boot (it holds apt's locks) and
//! the agent reports an address (`agent/network-get-interfaces`). When the agent is absent
//! (not configured, or silent past the bound) the job reaches the VM over SSH instead
//! ([`choose`], [`crate::guest::fallback`]), chosen once per job and said in its log.
//! Everything after that (deploy, install, scripts, discover) is the container pipeline over
//! that channel ([`crate::guest::agent::AgentChannel`] or [`ctforge_ssh::DirectChannel`]).

use std::time::Duration;

use ctforge_pve::PveApi;
use ctforge_ssh::{RemoteExec, Stream};

use super::pipeline::{CreateContainer, VmRoute, Work, fail, wait};
use super::plan::Step;
use crate::guest::fallback::Fallback;
use crate::jobs::{JobContext, StepError};

/// Creates the VM (or adopts the one an earlier attempt created), then grows its disk.
pub(super) async fn create(
    handler: &CreateContainer,
    ctx: &JobContext,
    work: &Work,
) -> Result<(), StepError> {
    let Work {
        container,
        plan,
        client,
        ..
    } = work;
    let qemu = plan
        .qemu
        .as_ref()
        .ok_or_else(|| fail("the plan of this VM has no create parameters; create it again"))?;
    let node = plan.node.as_str();
    let vmid = plan.vmid;
    for step in &plan.steps {
        if let Step::CloudInitSnippet { volid, content } = step {
            let _ = ctx
                .log(format!(
                    "writing the cloud-init vendor-data {volid} on {node}"
                ))
                .await;
            handler
                .guests()
                .write_volume(&work.cluster, node, volid, content.as_bytes())
                .await
                .map_err(|e| fail(format!("cloud-init snippet: {e}")))?;
        }
    }
    if client.qemu_config_get(node, vmid, false).await.is_ok() {
        let _ = ctx
            .log(format!("VM {vmid} exists already on {node}; continuing"))
            .await;
        wait_unlocked(ctx, client.as_ref(), node, vmid).await?;
    } else if let Some(clone) = &plan.vm_clone {
        let creator = handler.creator(work).await?;
        let how = if clone.params.full == Some(false) {
            "linked clone"
        } else {
            "full clone"
        };
        let _ = ctx
            .log(format!(
                "cloning VM template {} as VM {vmid} ({}) on {node}, {how}",
                clone.source, plan.hostname
            ))
            .await;
        match creator.qemu_clone(node, clone.source, &clone.params).await {
            Ok(upid) => wait(ctx, client.as_ref(), node, &upid, "clone task").await?,
            Err(e) => {
                if matches!(
                    e,
                    ctforge_pve::PveError::Transport { .. } | ctforge_pve::PveError::Timeout { .. }
                ) && client.qemu_config_get(node, vmid, false).await.is_ok()
                {
                    wait_unlocked(ctx, client.as_ref(), node, vmid).await?;
                } else {
                    return Err(fail(format!("clone: {e}")));
                }
            }
        }
    } else {
        let creator = handler.creator(work).await?;
        let source = match &qemu.scsi0 {
            Some(disk) => format!(", disk {disk}"),
            None => String::new(),
        };
        let _ = ctx
            .log(format!(
                "creating VM {vmid} ({}) on {node}{source}",
                plan.hostname
            ))
            .await;
        match creator.qemu_create(node, qemu).await {
            Ok(upid) => wait(ctx, client.as_ref(), node, &upid, "create task").await?,
            // An answer lost on the way while the VM was created: the create went through.
            Err(e) => {
                if matches!(
                    e,
                    ctforge_pve::PveError::Transport { .. } | ctforge_pve::PveError::Timeout { .. }
                ) && client.qemu_config_get(node, vmid, false).await.is_ok()
                {
                    wait_unlocked(ctx, client.as_ref(), node, vmid).await?;
                } else {
                    return Err(fail(format!("create: {e}")));
                }
            }
        }
    }
    if let Some(clone) = &plan.vm_clone {
        // Set again on a resumed job: the same values, so the same result.
        let keys: Vec<&str> = clone.config.iter().map(|(k, _)| k.as_str()).collect();
        let _ = ctx
            .log(format!(
                "setting VM {vmid}'s own configuration: {}",
                keys.join(", ")
            ))
            .await;
        let creator = handler.creator(work).await?;
        creator
            .qemu_config_put(node, vmid, &clone.config, &[])
            .await
            .map_err(|e| fail(format!("config of the clone: {e}")))?;
    }
    for step in &plan.steps {
        if let Step::ResizeDisk { disk, size } = step {
            resize(ctx, client.as_ref(), node, vmid, disk, size).await?;
        }
    }
    if let Some(container) = container {
        let _ = handler
            .store()
            .add_container_event(
                container.id,
                "created",
                &format!("VM {vmid} created on {node}"),
                "",
                "{}",
            )
            .await;
    }
    Ok(())
}

/// Grows `disk` to `size` (`8G`) unless it is that large already (an imported cloud image is
/// usually 2–3 GiB; Proxmox refuses to shrink).
async fn resize(
    ctx: &JobContext,
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
    disk: &str,
    size: &str,
) -> Result<(), StepError> {
    let config = client
        .qemu_config_get(node, vmid, false)
        .await
        .map_err(|e| fail(format!("config: {e}")))?;
    let current = config
        .get(disk)
        .and_then(|v| v.as_str())
        .and_then(|v| v.split(',').find_map(|p| p.strip_prefix("size=")))
        .and_then(bytes_of);
    let wanted = bytes_of(size);
    if let (Some(current), Some(wanted)) = (current, wanted)
        && current >= wanted
    {
        let _ = ctx
            .log(format!("{disk} is {size} or larger already; not resized"))
            .await;
        return Ok(());
    }
    let _ = ctx.log(format!("resizing {disk} to {size}")).await;
    let upid = client
        .qemu_resize(node, vmid, disk, size)
        .await
        .map_err(|e| fail(format!("resize {disk}: {e}")))?;
    wait(ctx, client, node, &upid, "resize task").await
}

/// `2252M`, `8G`, `1T`, `512K` → bytes.
fn bytes_of(size: &str) -> Option<u64> {
    let size = size.trim();
    let (number, unit) = size.split_at(size.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit {
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// Starts the VM when it is not running, chooses the job's way into it ([`choose`]), waits for
/// cloud-init's first boot over that way and logs the VM's address.
pub(super) async fn start(
    handler: &CreateContainer,
    ctx: &JobContext,
    work: &Work,
) -> Result<(), StepError> {
    let Work { plan, client, .. } = work;
    let (node, vmid) = (plan.node.as_str(), plan.vmid);
    let client = client.as_ref();
    let status = client
        .qemu_status_current(node, vmid)
        .await
        .map_err(|e| fail(format!("status: {e}")))?;
    if status.status != "running" {
        let upid = client
            .qemu_start(node, vmid)
            .await
            .map_err(|e| fail(format!("start: {e}")))?;
        wait(ctx, client, node, &upid, "start task").await?;
    }
    match handler.vm_route(ctx, work).await? {
        VmRoute::Agent => {
            let bounded = crate::guest::agent::AgentChannel::new(
                work.client.clone(),
                node,
                vmid,
                Some(CLOUD_INIT_TIMEOUT),
            );
            wait_cloud_init(ctx, &bounded).await;
            agent_address(ctx, client, node, vmid).await;
        }
        VmRoute::Ssh(channel) => {
            wait_cloud_init(
                ctx,
                &channel.clone().with_guest_timeout(Some(CLOUD_INIT_TIMEOUT)),
            )
            .await;
            if let Some(ip) = &plan.ip {
                let _ = ctx
                    .log(format!("address {ip} (static; the guest agent is absent)"))
                    .await;
            }
        }
    }
    Ok(())
}

/// The job's way into its VM: the guest agent when it answers within
/// [`super::waits::Limits::agent`] of the start, else — and at once when the VM's configuration
/// has no agent — SSH with ctforge's own key for the VM, its host key pinned on this first
/// contact ([`crate::guest::fallback`]). The log says which and why; when SSH cannot replace
/// the agent the step fails giving both reasons.
pub(super) async fn choose(
    handler: &CreateContainer,
    ctx: &JobContext,
    work: &Work,
) -> Result<VmRoute, StepError> {
    let Work {
        plan,
        client,
        container,
        ..
    } = work;
    let (node, vmid) = (plan.node.as_str(), plan.vmid);
    let bound = handler.limits().agent;
    let why = match wait_agent(ctx, client.as_ref(), node, vmid, bound).await {
        Ok(()) => {
            let _ = ctx.log("channel into the VM: its QEMU guest agent").await;
            return Ok(VmRoute::Agent);
        }
        Err(why) => why,
    };
    let fallback = Fallback {
        container_id: container.as_ref().map(|c| c.id),
        vmid,
        address: plan
            .ip
            .clone()
            .or_else(|| container.as_ref().and_then(|c| c.ip.clone())),
        first_contact: true,
        wait: bound,
    };
    let _ = ctx
        .log(format!(
            "the guest agent of VM {vmid} {why}: falling back to SSH at {}",
            fallback.address.as_deref().unwrap_or("(no known address)")
        ))
        .await;
    match fallback.open(handler.store(), handler.keyring()).await {
        Ok(opened) => {
            if let Some(seen) = &opened.pinned_now {
                let _ = ctx
                    .log(format!(
                        "pinned VM {vmid}'s SSH host key {seen} on first contact (trust on first use; enforced from now on)"
                    ))
                    .await;
            }
            let _ = ctx
                .log(format!(
                    "channel into the VM: SSH to {} with ctforge's own key for it (commands as root through sudo)",
                    opened.target
                ))
                .await;
            Ok(VmRoute::Ssh(opened.channel))
        }
        Err(e) => Err(fail(format!(
            "the guest agent of VM {vmid} {why}, and SSH cannot replace it: {e}"
        ))),
    }
}

/// What Proxmox answers for a VM whose configuration has no agent.
const NOT_CONFIGURED: &str = "No QEMU guest agent configured";

/// Waits, within `bound`, until the VM's guest agent answers; else says why not (for the log).
/// A VM whose configuration has no agent is not waited for.
async fn wait_agent(
    ctx: &JobContext,
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
    bound: Duration,
) -> Result<(), String> {
    let _ = ctx
        .log("waiting for the QEMU guest agent (cloud-init runs first)")
        .await;
    let started = tokio::time::Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_secs(2));
    let mut last_note = 0;
    loop {
        match client.agent_ping(node, vmid).await {
            Ok(()) => break,
            Err(e) if e.to_string().contains(NOT_CONFIGURED) => {
                return Err(format!("is turned off in the VM's configuration ({e})"));
            }
            Err(e) if started.elapsed() >= bound => {
                return Err(format!(
                    "does not answer {} s after start ({e})",
                    bound.as_secs()
                ));
            }
            Err(e) => {
                let waited = started.elapsed().as_secs();
                if waited >= last_note + 15 {
                    last_note = waited;
                    let _ = ctx
                        .log(format!(
                            "still waiting for the guest agent ({waited}s): {e}"
                        ))
                        .await;
                }
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
    let _ = ctx
        .log(format!(
            "guest agent answers ({:.1}s after start)",
            started.elapsed().as_secs_f64()
        ))
        .await;
    Ok(())
}

/// Logs the address the guest agent reports; DHCP may finish a moment after the agent starts.
async fn agent_address(ctx: &JobContext, client: &dyn PveApi, node: &str, vmid: u32) {
    let asked = tokio::time::Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_secs(1));
    loop {
        if let Some(ip) = address(client, node, vmid).await {
            let _ = ctx
                .log(format!("address {ip} (reported by the guest agent)"))
                .await;
            break;
        }
        if asked.elapsed() > Duration::from_secs(60) {
            let _ = ctx
                .log("! the guest agent reports no IPv4 address yet; web links are added once it does")
                .await;
            break;
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

/// Prints cloud-init's final state once its first boot ended (`absent` without cloud-init),
/// then, when it ended in error, what `status --long` says of it (at most 8 lines).
const CLOUD_INIT_WAIT: &str = "command -v cloud-init >/dev/null 2>&1 || { echo absent; exit 0; }; \
     cloud-init status --wait >/dev/null 2>&1; \
     s=$(cloud-init status 2>/dev/null | sed -n 's/^status: //p'); echo \"$s\"; \
     if [ \"$s\" = error ]; then cloud-init status --long 2>/dev/null \
     | grep -v -e '^status:' -e '^extended_status:' -e '^time:' -e '^last_update:' \
     -e '^boot_status_code:' -e '^detail:$' -e '^ *$' | head -n 8; fi";

/// Logs the state [`CLOUD_INIT_WAIT`] printed, `secs` after it was asked, and the lines that
/// say why when it is an error.
async fn cloud_init_done(ctx: &JobContext, printed: &str, secs: f64) {
    let mut lines = printed.lines().map(str::trim);
    let state = lines.next().unwrap_or_default();
    if state == "absent" {
        return;
    }
    let _ = ctx
        .log(format!(
            "cloud-init {} ({secs:.0}s)",
            if state.is_empty() { "ended" } else { state },
        ))
        .await;
    for why in lines.filter(|l| !l.is_empty()) {
        let _ = ctx.log(format!("! cloud-init: {why}")).await;
    }
}

/// Longest wait for cloud-init's first boot (an emulated guest's package upgrade is slow).
const CLOUD_INIT_TIMEOUT: Duration = Duration::from_secs(900);

/// Waits, bounded, until cloud-init finished the first boot where the guest has cloud-init:
/// its `apt-get update` and `package_upgrade` (`ciupgrade`, on by default) hold apt's locks,
/// and the install step's `apt-get update` fails on the lists lock instead of waiting. Logs
/// cloud-init's result; a guest without cloud-init, or one still busy after the bound, goes on.
/// `channel` is the job's channel into the VM (agent or SSH) limited to [`CLOUD_INIT_TIMEOUT`].
async fn wait_cloud_init(ctx: &JobContext, channel: &dyn RemoteExec) {
    let _ = ctx
        .log("waiting for cloud-init to finish the first boot (it holds apt's locks)")
        .await;
    let started = tokio::time::Instant::now();
    let mut printed = String::new();
    let out = channel
        .exec(CLOUD_INIT_WAIT, &mut |stream, line| {
            if stream == Stream::Stdout {
                printed.push_str(line);
                printed.push('\n');
            }
        })
        .await;
    let why = match out {
        Ok(_) => {
            return cloud_init_done(ctx, &printed, started.elapsed().as_secs_f64()).await;
        }
        Err(ctforge_ssh::SshError::GuestTimeout { .. } | ctforge_ssh::SshError::Timeout { .. }) => {
            format!(
                "! cloud-init still runs after {} s; going on",
                CLOUD_INIT_TIMEOUT.as_secs()
            )
        }
        Err(e) => format!("! cannot ask cloud-init for its state: {e}"),
    };
    let _ = ctx.log(why).await;
}

/// The VM's first IPv4 address that is not loopback or link-local, from its guest agent.
pub(super) async fn address(client: &dyn PveApi, node: &str, vmid: u32) -> Option<String> {
    client
        .agent_network_get_interfaces(node, vmid)
        .await
        .ok()?
        .first_ipv4()
}

/// Waits until the VM's config holds no lock (the create task may still be importing).
async fn wait_unlocked(
    ctx: &JobContext,
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
) -> Result<(), StepError> {
    let started = tokio::time::Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_millis(500));
    loop {
        let config = client
            .qemu_config_get(node, vmid, false)
            .await
            .map_err(|e| fail(format!("config: {e}")))?;
        let Some(lock) = config.get("lock").and_then(|l| l.as_str()) else {
            return Ok(());
        };
        if started.elapsed() > Duration::from_secs(600) {
            return Err(fail(format!(
                "VM {vmid} stays locked ({lock}); check its task in Proxmox"
            )));
        }
        if started.elapsed().as_secs().is_multiple_of(10) {
            let _ = ctx
                .log(format!("waiting for the {lock} lock on VM {vmid}"))
                .await;
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes_of("2G"), Some(2 << 30));
        assert_eq!(bytes_of("2252M"), Some(2252 << 20));
        assert_eq!(bytes_of("x"), None);
        assert_eq!(bytes_of("12"), None);
    }
}
