//! The `bake_image` job and the image side of creation. The bake runs the creation's own
//! phases (create → start → deploy → install → scripts without the per-instance ones), then
//! generalises the container (host keys, machine-id, credentials, logs, shell history gone; a
//! first-boot unit regenerates the identity), stops it and turns it into a Proxmox CT template.
//! A container from an image is cloned ([`clone_image`]: linked where the storage allows it,
//! else full), configured ([`configure_clone`]) and given its identity ([`identity`]).

use std::sync::Arc;

use async_trait::async_trait;
use ctforge_pve::PveApi;
use ctforge_pve::types::{CloneParams, LxcConfigUpdate};
use ctforge_ssh::{RemoteExec, quote};

use super::{BAKE_JOB_KIND, BakePayload, ImageState};
use crate::jobs::{JobContext, JobHandler, StepError};
use crate::provisioning::pipeline::{self, CreateContainer};
use crate::provisioning::plan::{ImageRef, Phase, Plan};
use crate::storage::Store;
use crate::storage::model::Job;

/// The first-boot program baked into every image.
pub const FIRSTBOOT_SCRIPT: &str = "/usr/local/sbin/ctforge-firstboot";
/// The program making a clone's RSA host key, started by [`FIRSTBOOT_SCRIPT`] in the
/// background.
pub const FIRSTBOOT_RSA_SCRIPT: &str = "/usr/local/sbin/ctforge-firstboot-rsa";
/// Its systemd unit.
pub const FIRSTBOOT_UNIT: &str = "/etc/systemd/system/ctforge-firstboot.service";
/// The unit's name (ctforge's own: discovery does not report it as a service).
pub const FIRSTBOOT_UNIT_NAME: &str = crate::guest::commands::FIRSTBOOT_UNIT_NAME;
/// Present until the first boot of a clone gave it its own identity (the unit's condition).
pub const FIRSTBOOT_PENDING: &str = "/var/lib/ctforge/firstboot-pending";
/// Made by [`FIRSTBOOT_SCRIPT`] on a clone's first boot (in `/run`, so gone at the next):
/// `guest/config-manager.sh` (the same path) then has nothing to re-apply on that boot.
pub const CLONE_FIRST_BOOT: &str = "/run/ctforge-clone-first-boot";

/// SSH host key files of Debian/Ubuntu/Alpine/Fedora (`ssh-keygen -A` makes them again).
const HOST_KEYS: [&str; 8] = [
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_rsa_key.pub",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ecdsa_key.pub",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/ssh/ssh_host_dsa_key.pub",
];

/// The first-boot program: new SSH host keys, a machine-id where systemd did not write one,
/// the D-Bus copy of it; then the pending marker goes. Safe to run twice (the marker guards
/// it), so provisioning runs it again after boot in case no init ran the unit.
///
/// The host keys are Debian's three (what `ssh-keygen -A` and Proxmox's `pct create` make):
/// ed25519 and ECDSA here, before sshd starts (milliseconds); RSA-3072 — a prime search of
/// about a second of CPU, the largest part of a clone's boot — by
/// [`FIRSTBOOT_RSA_SCRIPT`] in the background, which reloads sshd to offer it. So the clone
/// is ready without waiting for it: sshd answers with the other two keys at once (every
/// OpenSSH since 6.5 prefers them) and has the RSA key a moment later.
pub fn firstboot_script() -> String {
    let keys: Vec<String> = HOST_KEYS.iter().map(|k| quote(k)).collect();
    format!(
        "#!/bin/sh\n\
         # ctforge: a clone's own identity on its first boot (baked into the image).\n\
         [ -e {pending} ] || exit 0\n\
         rm -f {keys}\n\
         : > {clone_boot}\n\
         if [ -d /etc/ssh ] && command -v ssh-keygen >/dev/null 2>&1; then\n\
         ssh-keygen -q -t ed25519 -N '' -C \"root@$(hostname)\" -f /etc/ssh/ssh_host_ed25519_key\n\
         ssh-keygen -q -t ecdsa -N '' -C \"root@$(hostname)\" -f /etc/ssh/ssh_host_ecdsa_key\n\
         nohup sh {rsa} >/dev/null 2>&1 </dev/null &\n\
         fi\n\
         if test -s /etc/machine-id; then true; elif command -v systemd-machine-id-setup >/dev/null 2>&1; then systemd-machine-id-setup; fi\n\
         if [ -d /var/lib/dbus ]; then rm -f /var/lib/dbus/machine-id; ln -s /etc/machine-id /var/lib/dbus/machine-id; fi\n\
         rm -f {pending}\n",
        pending = quote(FIRSTBOOT_PENDING),
        keys = keys.join(" "),
        clone_boot = quote(CLONE_FIRST_BOOT),
        rsa = quote(FIRSTBOOT_RSA_SCRIPT),
    )
}

/// The RSA half of [`firstboot_script`]: the key made under a temporary name and moved into
/// place (sshd never reads half a key), then sshd reloaded to offer it.
pub fn firstboot_rsa_script() -> String {
    "#!/bin/sh\n\
     # ctforge: a clone's own RSA host key (started by ctforge-firstboot; baked into the image).\n\
     set -e\n\
     key=/etc/ssh/ssh_host_rsa_key\n\
     [ ! -e \"$key\" ] || exit 0\n\
     tmp=/etc/ssh/.ctforge-rsa-$$\n\
     rm -f \"$tmp\" \"$tmp.pub\"\n\
     ssh-keygen -q -t rsa -b 3072 -N '' -C \"root@$(hostname)\" -f \"$tmp\"\n\
     mv -f \"$tmp.pub\" \"$key.pub\"\n\
     mv -f \"$tmp\" \"$key\"\n\
     if command -v systemctl >/dev/null 2>&1; then systemctl try-reload-or-restart ssh.service sshd.service >/dev/null 2>&1 || true; fi\n"
        .to_owned()
}

/// The unit running [`firstboot_script`] once, before SSH starts.
pub fn firstboot_unit() -> String {
    format!(
        "[Unit]\n\
         Description=ctforge: new SSH host keys and machine-id for a clone of an image\n\
         ConditionPathExists={FIRSTBOOT_PENDING}\n\
         Before=ssh.service sshd.service ctforge-apply.service\n\
         After=local-fs.target\n\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=/bin/sh {FIRSTBOOT_SCRIPT}\n\
         RemainAfterExit=yes\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The generalisation, one command at a time (each logged; the memory backend's shell follows
/// them): what makes this container one machine goes, what every clone needs stays.
pub fn generalise_commands() -> Vec<(&'static str, String)> {
    let q = quote;
    let keys: Vec<String> = HOST_KEYS.iter().map(|k| q(k)).collect();
    vec![
        ("remove the SSH host keys", format!("rm -f {}", keys.join(" "))),
        (
            "empty the machine-id",
            "rm -f /var/lib/dbus/machine-id && printf '' > /etc/machine-id".to_owned(),
        ),
        (
            "remove collected credentials",
            format!(
                "rm -rf {} {} && mkdir -p {}",
                q(crate::guest::commands::CREDENTIALS_DIR),
                q(crate::guest::commands::LIBRARY_CREDENTIALS),
                q(crate::guest::commands::CREDENTIALS_DIR)
            ),
        ),
        (
            "remove logs and shell history",
            "rm -rf /var/log/journal /var/log/config-manager /root/.bash_history /root/.ash_history /root/.lesshst && mkdir -p /var/log/journal"
                .to_owned(),
        ),
        (
            "mark the first boot",
            format!(
                "mkdir -p {} && touch {}",
                q(crate::guest::commands::STATE_DIR),
                q(FIRSTBOOT_PENDING)
            ),
        ),
    ]
}

fn fail(message: impl Into<String>) -> StepError {
    StepError::failed(message)
}

/// Clones the image into the plan's VMID: linked (the image is a template), or a full copy on
/// the plan's storage when that storage cannot link clones.
pub async fn clone_image(
    ctx: &JobContext,
    creator: &dyn PveApi,
    client: &dyn PveApi,
    plan: &Plan,
    image: &ImageRef,
) -> Result<(), StepError> {
    let mut params = CloneParams {
        newid: plan.vmid,
        hostname: Some(plan.hostname.clone()),
        full: Some(false),
        ..Default::default()
    };
    let _ = ctx
        .log(format!(
            "cloning image {} (CT template {}) → {} (linked)",
            image.image_id, image.vmid, plan.vmid
        ))
        .await;
    let upid = match clone_when_free(ctx, creator, image, &params).await {
        Ok(upid) => upid,
        Err(e) if e.to_string().contains("Linked clone feature") => {
            let _ = ctx
                .log(format!(
                    "{}: storage {} cannot link clones; cloning image {} → {} (full copy)",
                    e, image.storage, image.vmid, plan.vmid
                ))
                .await;
            params.full = Some(true);
            params.storage = Some(super::plan_storage(plan));
            clone_when_free(ctx, creator, image, &params)
                .await
                .map_err(|e| fail(format!("clone: {e}")))?
        }
        Err(e) => return Err(fail(format!("clone: {e}"))),
    };
    pipeline::wait(ctx, client, &image.node, &upid, "clone task").await?;
    pipeline::wait_unlocked(ctx, client, &plan.node, plan.vmid).await
}

/// How long a clone waits for the image's CT template to be free.
const CLONE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `POST …/clone` of the image, waiting while the template is locked: Proxmox holds
/// `lock: disk` on the source for the whole clone (templates too), so simultaneous creations
/// from one image take turns (a linked clone holds it for a moment).
async fn clone_when_free(
    ctx: &JobContext,
    creator: &dyn PveApi,
    image: &ImageRef,
    params: &CloneParams,
) -> Result<ctforge_pve::types::Upid, ctforge_pve::PveError> {
    let started = tokio::time::Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(std::time::Duration::from_millis(250));
    let mut said = false;
    loop {
        match creator.lxc_clone(&image.node, image.vmid, params).await {
            Err(ctforge_pve::PveError::Locked { message })
                if started.elapsed() < CLONE_LOCK_WAIT =>
            {
                if !said {
                    let _ = ctx
                        .log(format!(
                            "CT template {} is busy ({message}); waiting for its other clone",
                            image.vmid
                        ))
                        .await;
                    said = true;
                }
                tokio::time::sleep(backoff.next_pause()).await;
            }
            other => return other,
        }
    }
}

/// The per-instance configuration Proxmox takes after a clone (`PUT …/config`): resources,
/// network, DNS and tags as the plan says. (The password and SSH keys are create-only in
/// Proxmox: [`identity`] sets them inside the guest.)
pub async fn configure_clone(
    ctx: &JobContext,
    client: &dyn PveApi,
    plan: &Plan,
    image: &ImageRef,
) -> Result<(), StepError> {
    let mut update = LxcConfigUpdate::new();
    let mut set = Vec::new();
    for (key, value) in plan.params.to_form() {
        if matches!(
            key.as_str(),
            "hostname"
                | "cores"
                | "memory"
                | "swap"
                | "net0"
                | "nameserver"
                | "searchdomain"
                | "tags"
        ) {
            set.push(key.clone());
            update = update.set(key, value);
        }
    }
    client
        .lxc_config_put(&plan.node, plan.vmid, &update)
        .await
        .map_err(|e| fail(format!("configure the clone: {e}")))?;
    let _ = ctx
        .log(format!(
            "CT {} configured from image {}: {}",
            plan.vmid,
            image.image_id,
            set.join(", ")
        ))
        .await;
    grow_clone(ctx, client, plan).await
}

/// The root disk the plan asks for, in GiB (`storage:GiB`, as a create allocates it).
fn requested_gib(plan: &Plan) -> Option<u64> {
    let rootfs = plan.params.rootfs.as_ref()?;
    rootfs.volume.rsplit_once(':')?.1.parse().ok()
}

/// A clone has the image's disk; a bigger one asked for is grown with `PUT …/resize` (Proxmox
/// grows only, so a smaller request keeps the image's size, and says so).
async fn grow_clone(ctx: &JobContext, client: &dyn PveApi, plan: &Plan) -> Result<(), StepError> {
    let Some(wanted) = requested_gib(plan) else {
        return Ok(());
    };
    let have = client
        .lxc_config_get(&plan.node, plan.vmid, false)
        .await
        .map_err(|e| fail(format!("read the clone's config: {e}")))?
        .rootfs
        .and_then(|r| r.options.size)
        .map(|s| s.bytes())
        .unwrap_or(0);
    let wanted_bytes = wanted.saturating_mul(1 << 30);
    if have >= wanted_bytes {
        if have > wanted_bytes {
            let _ = ctx
                .log(format!(
                    "the image's root disk ({} GiB) is larger than the {wanted} GiB asked for: Proxmox cannot shrink a disk, the clone keeps it",
                    have >> 30
                ))
                .await;
        }
        return Ok(());
    }
    let size = format!("{wanted}G");
    let upid = client
        .lxc_resize(&plan.node, plan.vmid, "rootfs", &size, None)
        .await
        .map_err(|e| fail(format!("resize the clone's root disk to {size}: {e}")))?;
    pipeline::wait(ctx, client, &plan.node, &upid, "resize task").await?;
    pipeline::wait_unlocked(ctx, client, &plan.node, plan.vmid).await?;
    let _ = ctx
        .log(format!(
            "root disk grown from {:.1} GiB (the image's) to {size}",
            have as f64 / f64::from(1u32 << 30)
        ))
        .await;
    Ok(())
}

/// The clone's identity: the image's first-boot unit normally ran during boot; it is run again
/// (a no-op once done) so the identity is there before anything reads it; then the root
/// password and SSH keys of the request.
pub async fn identity(
    ctx: &JobContext,
    channel: &dyn RemoteExec,
    plan: &Plan,
) -> Result<(), StepError> {
    pipeline::run(
        ctx,
        channel,
        "first-boot identity",
        &format!(
            "if [ -e {} ]; then sh {}; fi",
            quote(FIRSTBOOT_PENDING),
            quote(FIRSTBOOT_SCRIPT)
        ),
    )
    .await?;
    let _ = ctx
        .log("first-boot identity: new SSH host keys and machine-id")
        .await;
    let form = plan.params.to_form();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(password) = get("password") {
        let staged = format!("{}/.chpasswd", crate::guest::commands::STATE_DIR);
        channel
            .push(
                format!("root:{password}\n").as_bytes(),
                &staged,
                Some(0o600),
                None,
            )
            .await
            .map_err(|e| fail(format!("stage the root password: {e}")))?;
        let staged = quote(&staged);
        pipeline::run(
            ctx,
            channel,
            "root password",
            &format!(
                "if command -v chpasswd >/dev/null 2>&1; then chpasswd < {staged}; rc=$?; else echo 'chpasswd is missing: the root password was not set'; rc=0; fi; rm -f {staged}; exit $rc"
            ),
        )
        .await?;
        let _ = ctx.log("root password set").await;
    }
    if let Some(keys) = get("ssh-public-keys") {
        pipeline::run(
            ctx,
            channel,
            "ssh keys",
            "mkdir -p /root/.ssh && chmod 700 /root/.ssh",
        )
        .await?;
        channel
            .push(
                format!("{}\n", keys.trim_end()).as_bytes(),
                "/root/.ssh/authorized_keys",
                Some(0o600),
                None,
            )
            .await
            .map_err(|e| fail(format!("install the SSH keys: {e}")))?;
        let _ = ctx.log("SSH public keys installed for root").await;
    }
    Ok(())
}

/// The bake's steps after the creation's phases.
const GENERALISE: &str = "generalise";
const TEMPLATE: &str = "template";

/// The handler registered for [`BAKE_JOB_KIND`].
pub struct BakeImage {
    store: Arc<dyn Store>,
    pve: Arc<dyn crate::pve::PveConnector>,
    locks: Arc<dyn crate::locks::Locks>,
    create: Arc<CreateContainer>,
}

impl std::fmt::Debug for BakeImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BakeImage").finish_non_exhaustive()
    }
}

impl BakeImage {
    /// A handler baking with the creation pipeline `create` (Proxmox through `pve`; VMIDs
    /// reserved in `locks` as creations reserve theirs).
    pub fn new(
        store: Arc<dyn Store>,
        pve: Arc<dyn crate::pve::PveConnector>,
        locks: Arc<dyn crate::locks::Locks>,
        create: Arc<CreateContainer>,
    ) -> Self {
        Self {
            store,
            pve,
            locks,
            create,
        }
    }

    fn payload(job: &Job) -> Result<BakePayload, StepError> {
        serde_json::from_str(&job.payload_json)
            .map_err(|e| fail(format!("the bake's payload is unreadable: {e}")))
    }

    /// The image's VMID: chosen once (the next free one), stored on the image.
    async fn vmid(&self, image: &crate::storage::model::Image) -> Result<u32, StepError> {
        if let Some(vmid) = image.vmid.and_then(|v| u32::try_from(v).ok()) {
            return Ok(vmid);
        }
        let cluster = self
            .store
            .get_cluster(image.cluster_id)
            .await
            .map_err(|e| fail(format!("cannot load the cluster: {e}")))?;
        let client = self
            .pve
            .service(&cluster)
            .map_err(|e| fail(e.to_string()))?;
        // Proxmox's next free id, skipping the ones ctforge's own creations have claimed or
        // reserved but not created yet (the bake must not adopt one), reserved for this bake
        // until the image holds it.
        let start = client
            .cluster_nextid(None)
            .await
            .map_err(|e| fail(format!("next free VMID: {e}")))?;
        let vmid = crate::provisioning::submit::free_vmid(
            self.store.as_ref(),
            self.locks.as_ref(),
            client.as_ref(),
            cluster.id,
            start,
            Some(&format!("bake:{}", image.id)),
        )
        .await
        .map_err(|e| fail(format!("no free VMID from {start}: {e}")))?;
        self.store
            .set_image_vmid(image.id, i64::from(vmid))
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(vmid)
    }
}

#[async_trait]
impl JobHandler for BakeImage {
    fn kind(&self) -> &'static str {
        BAKE_JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        vec![
            Phase::Create.as_str(),
            Phase::Start.as_str(),
            Phase::Deploy.as_str(),
            Phase::Install.as_str(),
            Phase::Scripts.as_str(),
            GENERALISE,
            TEMPLATE,
        ]
    }

    fn step_timeout(&self, job: &Job, step: &str) -> Option<std::time::Duration> {
        self.create.step_timeout(job, step)
    }

    async fn run_step(&self, ctx: &JobContext, step: &str) -> Result<(), StepError> {
        let payload = Self::payload(&ctx.job)?;
        let image = self
            .store
            .get_image(payload.image_id)
            .await
            .map_err(|e| fail(format!("image {}: {e}", payload.image_id)))?;
        if ImageState::parse(&image.state) == ImageState::Failed {
            // A retry of a failed bake: building again.
            let _ = self
                .store
                .set_image_state(image.id, ImageState::Building.as_str(), None)
                .await;
        }
        if step == Phase::Create.as_str() {
            let _ = ctx
                .log(format!(
                    "baking image {} of {}@{} on {}/{}",
                    image.id,
                    image.template_name,
                    image.content_hash.get(..12).unwrap_or(&image.content_hash),
                    image.node,
                    image.storage
                ))
                .await;
        }
        let vmid = self.vmid(&image).await?;
        let work = self
            .create
            .bake_work(image.cluster_id, &ctx.job.created_by, payload.create, vmid)
            .await?;
        if let Ok(phase) = step.parse::<Phase>() {
            return self.create.run_phase(ctx, phase, &work).await;
        }
        let plan = &work.plan;
        match step {
            GENERALISE => {
                let channel = self
                    .create
                    .guest_channel(ctx, &work.cluster, plan.vmid)
                    .await?;
                channel
                    .push(
                        firstboot_script().as_bytes(),
                        FIRSTBOOT_SCRIPT,
                        Some(0o755),
                        None,
                    )
                    .await
                    .map_err(|e| fail(format!("push the first-boot program: {e}")))?;
                channel
                    .push(
                        firstboot_rsa_script().as_bytes(),
                        FIRSTBOOT_RSA_SCRIPT,
                        Some(0o755),
                        None,
                    )
                    .await
                    .map_err(|e| fail(format!("push the first-boot RSA program: {e}")))?;
                channel
                    .push(
                        firstboot_unit().as_bytes(),
                        FIRSTBOOT_UNIT,
                        Some(0o644),
                        None,
                    )
                    .await
                    .map_err(|e| fail(format!("push the first-boot unit: {e}")))?;
                pipeline::run(
                    ctx,
                    channel.as_ref(),
                    "first-boot unit",
                    &format!("systemctl daemon-reload && systemctl enable {FIRSTBOOT_UNIT_NAME}"),
                )
                .await?;
                for (what, command) in generalise_commands() {
                    let _ = ctx.log(format!("generalise: {what}")).await;
                    pipeline::run(ctx, channel.as_ref(), what, &command).await?;
                }
                self.create.end_session(ctx.job_id());
                Ok(())
            }
            TEMPLATE => {
                let client = work.client.as_ref();
                let node = plan.node.as_str();
                let status = client
                    .lxc_status_current(node, plan.vmid)
                    .await
                    .map_err(|e| fail(format!("status: {e}")))?;
                let config = client
                    .lxc_config_get(node, plan.vmid, false)
                    .await
                    .map_err(|e| fail(format!("config: {e}")))?;
                if config.template != Some(true) {
                    if status.status == "running" {
                        let _ = ctx.log(format!("shutting CT {} down", plan.vmid)).await;
                        let upid = client
                            .lxc_shutdown(node, plan.vmid, Some(60), true)
                            .await
                            .map_err(|e| fail(format!("shutdown: {e}")))?;
                        pipeline::wait(ctx, client, node, &upid, "shutdown task").await?;
                    }
                    client
                        .lxc_template(node, plan.vmid)
                        .await
                        .map_err(|e| fail(format!("template: {e}")))?;
                    pipeline::wait_unlocked(ctx, client, node, plan.vmid).await?;
                }
                let size = client
                    .lxc_config_get(node, plan.vmid, false)
                    .await
                    .ok()
                    .and_then(|c| c.rootfs)
                    .and_then(|r| r.options.size)
                    .map(|s| s.bytes());
                if let Some(bytes) = size.and_then(|b| i64::try_from(b).ok()) {
                    let _ = self.store.set_image_size(image.id, bytes).await;
                }
                self.store
                    .set_image_state(image.id, ImageState::Ready.as_str(), None)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let superseded = self
                    .store
                    .supersede_images(
                        image.cluster_id,
                        &image.template_name,
                        &image.node,
                        &image.storage,
                        &image.content_hash,
                    )
                    .await
                    .unwrap_or(0);
                let _ = ctx
                    .log(format!(
                        "image {} is ready: CT template {} on {node}{}",
                        image.id,
                        plan.vmid,
                        if superseded > 0 {
                            format!("; {superseded} older image(s) superseded")
                        } else {
                            String::new()
                        }
                    ))
                    .await;
                Ok(())
            }
            other => Err(fail(format!("unknown step {other}"))),
        }
    }

    async fn on_failed(&self, ctx: &JobContext, step: &str, error: &StepError) {
        self.create.end_session(ctx.job_id());
        if let Ok(payload) = Self::payload(&ctx.job) {
            let _ = self
                .store
                .set_image_state(
                    payload.image_id,
                    ImageState::Failed.as_str(),
                    Some(&format!("step {step} failed: {error}")),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_manager_knows_the_clone_first_boot_marker() {
        assert!(
            crate::guest::commands::CONFIG_MANAGER.contains(CLONE_FIRST_BOOT),
            "config-manager.sh reads the marker the first-boot program writes"
        );
        assert!(firstboot_script().contains(CLONE_FIRST_BOOT));
    }

    #[test]
    fn the_first_boot_makes_all_three_host_keys() {
        let sync = firstboot_script();
        assert!(
            sync.contains("-t ed25519") && sync.contains("-t ecdsa"),
            "{sync}"
        );
        assert!(sync.contains(FIRSTBOOT_RSA_SCRIPT), "{sync}");
        let rsa = firstboot_rsa_script();
        assert!(rsa.contains("-t rsa -b 3072"), "{rsa}");
        assert!(rsa.contains("try-reload-or-restart ssh.service"), "{rsa}");
    }
}
