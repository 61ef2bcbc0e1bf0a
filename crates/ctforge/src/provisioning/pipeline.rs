//! The `create_container` job: executes a plan step by step (create → start → deploy →
//! install + scripts → discover). Every step is idempotent, so a job resumed after a crash
//! re-runs its current step safely; every output line is streamed as a job event.

pub mod reapply;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ctforge_pve::{CreateOutcome, PveApi, TaskExit, TaskProgress, WaitOptions};
use ctforge_ssh::{RemoteExec, Stream};

use super::plan::{Phase, Plan, Step};
use super::submit::{CreatePayload, JOB_KIND};
use super::waits::{self, Limits};
use crate::guest::{GuestConnector, GuestSession, commands, parse, probe as batch};
use crate::jobs::{JobContext, JobError, JobHandler, RetryPrep, StepError};
use crate::pve::PveConnector;
use crate::secrets::Keyring;
use crate::status::GuestKind;
use crate::storage::model::{Cluster, Container, ContainerService, Job};
use crate::storage::{Store, StoreError};

/// Longest time a CT may take to accept commands after start.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How a job reaches a VM, chosen once per job ([`super::vm::choose`]).
#[derive(Clone)]
pub(super) enum VmRoute {
    /// Its QEMU guest agent.
    Agent,
    /// SSH with ctforge's own key for the VM (its agent is absent); the session is shared by
    /// every channel of the job.
    Ssh(ctforge_ssh::DirectChannel),
}

/// The handler registered for [`JOB_KIND`].
pub struct CreateContainer {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    pve: Arc<dyn PveConnector>,
    guests: Arc<dyn GuestConnector>,
    sessions: Mutex<HashMap<i64, Arc<dyn GuestSession>>>,
    /// Each running job's way into its VM.
    vm_routes: Mutex<HashMap<i64, VmRoute>>,
    limits: Limits,
    /// `[images] auto_build`: bake the template's image after its first creation.
    auto_build: bool,
}

impl std::fmt::Debug for CreateContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateContainer").finish_non_exhaustive()
    }
}

/// What every phase works on: the records, the plan re-derived from the job's payload, and a
/// Proxmox client with the cluster's service token.
pub(crate) struct Work {
    /// The container's record (none for an image's bake).
    pub(crate) container: Option<Container>,
    /// Who asked (the submitter's rights are checked again before creating).
    pub(crate) created_by: String,
    pub(crate) cluster: Cluster,
    pub(crate) plan: Plan,
    pub(crate) client: Arc<dyn PveApi>,
    /// root@pam's sealed ticket for a plan only root@pam may create.
    pub(crate) root_ticket_sealed: Option<String>,
    /// The job's payload (an image's bake is queued with it); none for a re-apply, which
    /// never reaches the finish phase.
    payload: Option<CreatePayload>,
}

pub(super) fn fail(message: impl Into<String>) -> StepError {
    StepError::failed(message)
}

impl CreateContainer {
    /// A handler using `store`, `keyring` (the root password, credentials), `pve` (the
    /// cluster's service token) and `guests` (commands in the CT).
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        pve: Arc<dyn PveConnector>,
        guests: Arc<dyn GuestConnector>,
    ) -> Self {
        Self {
            store,
            keyring,
            pve,
            guests,
            sessions: Mutex::new(HashMap::new()),
            vm_routes: Mutex::new(HashMap::new()),
            limits: Limits::default(),
            auto_build: false,
        }
    }

    /// The same handler baking the template's image after its first creation on a node and
    /// storage (`[images] auto_build`).
    pub fn with_auto_build(mut self, auto_build: bool) -> Self {
        self.auto_build = auto_build;
        self
    }

    /// The work of an image's bake: `payload` with the image's VMID, no container record.
    pub(crate) async fn bake_work(
        &self,
        cluster_id: i64,
        created_by: &str,
        mut payload: CreatePayload,
        vmid: u32,
    ) -> Result<Work, StepError> {
        payload.request.vmid = Some(vmid);
        let cluster = self
            .store
            .get_cluster(cluster_id)
            .await
            .map_err(|e| fail(format!("cannot load the cluster: {e}")))?;
        let plan = payload.plan(None).map_err(|e| fail(e.to_string()))?;
        let client = self
            .pve
            .service(&cluster)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Work {
            container: None,
            created_by: created_by.to_owned(),
            cluster,
            plan,
            client,
            root_ticket_sealed: payload.root_ticket_sealed.clone(),
            payload: Some(payload),
        })
    }

    /// Runs one phase of `work` (the bake job runs the creation's phases through this).
    pub(crate) async fn run_phase(
        &self,
        ctx: &JobContext,
        phase: Phase,
        work: &Work,
    ) -> Result<(), StepError> {
        match phase {
            Phase::Create => self.create(ctx, work).await,
            Phase::Start => self.start(ctx, work).await,
            Phase::Deploy => self.deploy(ctx, work).await,
            Phase::Install => self.install(ctx, work).await,
            Phase::Scripts => self.scripts(ctx, work).await,
            Phase::Discover => self.discover(ctx, work).await,
        }
    }

    /// A channel into `vmid` over the job's guest session (the bake's generalisation).
    pub(crate) async fn guest_channel(
        &self,
        ctx: &JobContext,
        cluster: &Cluster,
        vmid: u32,
    ) -> Result<Box<dyn RemoteExec>, StepError> {
        self.session_channel(ctx, cluster, vmid, self.limits.command)
            .await
    }

    /// Drops the job's guest session.
    pub(crate) fn end_session(&self, job_id: i64) {
        self.forget_session(job_id);
    }

    /// The guest connector (for the VM half of the job, `super::vm`).
    pub(super) fn guests(&self) -> &dyn GuestConnector {
        self.guests.as_ref()
    }

    /// The store (for the VM half of the job, `super::vm`).
    pub(super) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The keyring (a VM's SSH key, `super::vm`).
    pub(super) fn keyring(&self) -> &Keyring {
        self.keyring.as_ref()
    }

    /// The bounds of the job's waits.
    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The job's way into its VM: chosen on first need ([`super::vm::choose`]), then the same
    /// for every step of the job (a resumed job chooses again).
    pub(super) async fn vm_route(
        &self,
        ctx: &JobContext,
        work: &Work,
    ) -> Result<VmRoute, StepError> {
        let chosen = self
            .vm_routes
            .lock()
            .ok()
            .and_then(|r| r.get(&ctx.job_id()).cloned());
        if let Some(route) = chosen {
            return Ok(route);
        }
        let route = super::vm::choose(self, ctx, work).await?;
        if let Ok(mut routes) = self.vm_routes.lock() {
            routes.insert(ctx.job_id(), route.clone());
        }
        Ok(route)
    }

    /// The same handler with other bounds for its waits (`[provisioning]`).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    async fn load(&self, job: &Job) -> Result<Work, StepError> {
        let container_id = job
            .container_id
            .ok_or_else(|| fail("the job has no container record; destroy it and create again"))?;
        let container = self
            .store
            .get_container(container_id)
            .await
            .map_err(|e| fail(format!("cannot load container {container_id}: {e}")))?;
        let cluster = self
            .store
            .get_cluster(container.cluster_id)
            .await
            .map_err(|e| fail(format!("cannot load the cluster: {e}")))?;
        let payload: CreatePayload = serde_json::from_str(&job.payload_json)
            .map_err(|e| fail(format!("the job's plan is unreadable: {e}")))?;
        let password = match &container.root_password_sealed {
            Some(sealed) => Some(
                self.keyring
                    .open(sealed)
                    .map_err(|e| fail(format!("cannot open the root password: {e}")))?
                    .expose()
                    .to_owned(),
            ),
            None => None,
        };
        let plan = payload.plan(password).map_err(|e| fail(e.to_string()))?;
        let client = self
            .pve
            .service(&cluster)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Work {
            created_by: container.created_by.clone(),
            container: Some(container),
            cluster,
            plan,
            client,
            root_ticket_sealed: payload.root_ticket_sealed.clone(),
            payload: Some(payload),
        })
    }

    /// A channel into the CT over the job's guest session, opened once and reused for every
    /// command; each command is killed in the CT after the command limit.
    async fn channel(
        &self,
        ctx: &JobContext,
        work: &Work,
    ) -> Result<Box<dyn RemoteExec>, StepError> {
        self.bounded(ctx, work, self.limits.command).await
    }

    /// [`Self::channel`] with another limit per command. A VM's channel is the job's route
    /// into it: its guest agent ([`crate::guest::agent::AgentChannel`]) through the cluster's
    /// service token, or SSH when the agent is absent ([`crate::guest::fallback`]).
    pub(crate) async fn bounded(
        &self,
        ctx: &JobContext,
        work: &Work,
        limit: Duration,
    ) -> Result<Box<dyn RemoteExec>, StepError> {
        if work.plan.kind == GuestKind::Qemu {
            return Ok(match self.vm_route(ctx, work).await? {
                VmRoute::Agent => Box::new(crate::guest::agent::AgentChannel::new(
                    work.client.clone(),
                    work.plan.node.clone(),
                    work.plan.vmid,
                    Some(limit),
                )),
                VmRoute::Ssh(channel) => Box::new(channel.with_guest_timeout(Some(limit))),
            });
        }
        self.session_channel(ctx, &work.cluster, work.plan.vmid, limit)
            .await
    }

    /// A channel into container `vmid` over the job's one SSH session (opened on first use).
    async fn session_channel(
        &self,
        ctx: &JobContext,
        cluster: &Cluster,
        vmid: u32,
        limit: Duration,
    ) -> Result<Box<dyn RemoteExec>, StepError> {
        let cached = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&ctx.job_id()).cloned());
        if let Some(session) = cached.filter(|s| !s.is_closed()) {
            return Ok(session.channel(vmid, Some(limit)));
        }
        let session = self
            .guests
            .connect(cluster)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(ctx.job_id(), session.clone());
        }
        Ok(session.channel(vmid, Some(limit)))
    }

    fn forget_session(&self, job_id: i64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&job_id);
        }
        if let Ok(mut routes) = self.vm_routes.lock() {
            routes.remove(&job_id);
        }
    }
}

/// Most log lines stored in one transaction.
const LOG_BATCH: usize = 1000;

/// Runs a command, streaming its lines to the job log; non-zero exits fail with the tail.
pub(crate) async fn run(
    ctx: &JobContext,
    channel: &dyn RemoteExec,
    what: &str,
    command: &str,
) -> Result<String, StepError> {
    run_counted(ctx, channel, what, command, &mut Levels::default()).await
}

/// How many runtime log lines of each level a command printed (`log_warn` → warnings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Levels {
    warnings: usize,
    errors: usize,
}

/// [`run`], counting the runtime's `WARNING` and `ERROR` lines into `levels`.
async fn run_counted(
    ctx: &JobContext,
    channel: &dyn RemoteExec,
    what: &str,
    command: &str,
    levels: &mut Levels,
) -> Result<String, StepError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut collected = String::new();
    // Lines that arrived while the previous batch was stored go to the store together, in
    // one transaction (a command printing fast is not one round-trip per line).
    let forward = async {
        while let Some(line) = rx.recv().await {
            let mut batch = vec![line];
            while batch.len() < LOG_BATCH
                && let Ok(line) = rx.try_recv()
            {
                batch.push(line);
            }
            for line in &batch {
                match commands::helper_level(line) {
                    Some("warning") => levels.warnings += 1,
                    Some("error") => levels.errors += 1,
                    _ => {}
                }
            }
            let _ = ctx.log_lines(batch).await;
        }
    };
    let exec = async {
        let mut on_line = |stream: Stream, line: &str| {
            let prefix = if matches!(stream, Stream::Stderr) {
                "! "
            } else {
                ""
            };
            let _ = tx.send(format!("{prefix}{line}"));
        };
        let result = channel.exec(command, &mut on_line).await;
        drop(tx);
        result
    };
    let (result, ()) = tokio::join!(exec, forward);
    let output = result.map_err(|e| fail(format!("{what}: {e}")))?;
    if !output.success() {
        let hint = if output.exit_code == 127 {
            " (command not found: is the package manager installed in the container?)"
        } else {
            ""
        };
        return Err(fail(format!(
            "{what} exited with {}{hint}; last lines:\n{}",
            output.exit_code,
            output.tail_text()
        )));
    }
    collected.push_str(&output.stream_text(Stream::Stdout));
    Ok(collected)
}

/// Runs a command quietly and returns (exit code, stdout).
/// Runs a read-only command and returns its exit code and its whole stdout (not just the
/// channel's tail: unit listings are longer than that), capped at [`PROBE_MAX_BYTES`].
pub(crate) async fn probe(
    channel: &dyn RemoteExec,
    command: &str,
) -> Result<(u32, String), StepError> {
    let mut stdout = String::new();
    let mut collect = |stream: Stream, line: &str| {
        if stream == Stream::Stdout && stdout.len() + line.len() < PROBE_MAX_BYTES {
            stdout.push_str(line);
            stdout.push('\n');
        }
    };
    let output = channel
        .exec(command, &mut collect)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok((output.exit_code, stdout))
}

/// The most stdout [`probe`] keeps.
const PROBE_MAX_BYTES: usize = 4 << 20;

pub(crate) async fn wait(
    ctx: &JobContext,
    client: &dyn PveApi,
    node: &str,
    upid: &ctforge_pve::types::Upid,
    what: &str,
) -> Result<(), StepError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let options = WaitOptions {
        timeout: Duration::from_secs(600),
        poll_interval: Duration::from_millis(250),
        ..WaitOptions::default()
    };
    let waiting = async {
        let mut cb = |p: TaskProgress| {
            if let TaskProgress::Line(line) = p {
                let _ = tx.send(line.t);
            }
        };
        let result = ctforge_pve::wait_task(client, node, upid, options, &mut cb).await;
        drop(tx);
        result
    };
    // Lines of one log page arrive together: they go to the store in one transaction.
    let forward = async {
        while let Some(line) = rx.recv().await {
            let mut batch = vec![line];
            while batch.len() < LOG_BATCH
                && let Ok(line) = rx.try_recv()
            {
                batch.push(line);
            }
            let _ = ctx.log_lines(batch).await;
        }
    };
    let (result, ()) = tokio::join!(waiting, forward);
    match result.map_err(|e| fail(format!("{what}: {e}")))? {
        TaskExit::Success => Ok(()),
        TaskExit::Warnings(n) => {
            let _ = ctx.log(format!("{what} finished with {n} warnings")).await;
            Ok(())
        }
        TaskExit::Error(text) => Err(fail(format!("{what} failed: {text}"))),
    }
}

#[async_trait]
impl JobHandler for CreateContainer {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn steps(&self, _job: &Job) -> Vec<&'static str> {
        Phase::ALL.iter().map(|p| p.as_str()).collect()
    }

    /// Longest a step may go without a log line: its longest single bounded wait (a command
    /// or script under its limit, the boot wait plus readiness) and a margin.
    fn step_timeout(&self, job: &Job, _step: &str) -> Option<Duration> {
        let scripts = serde_json::from_str::<CreatePayload>(&job.payload_json)
            .ok()
            .and_then(|p| p.plan(None).ok())
            .and_then(|plan| {
                plan.steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::RunScript { content, .. } | Step::CustomInstaller { content } => {
                            waits::script_timeout(content)
                        }
                        _ => None,
                    })
                    .max()
            });
        let command = scripts.unwrap_or_default().max(self.limits.command);
        let boot = READY_TIMEOUT + self.limits.settle * 2 + self.limits.probe * 3;
        // A VM's SSH fallback retries its connection silently for up to the agent's bound.
        Some(
            command.max(boot).max(self.limits.agent)
                + ctforge_ssh::KILL_GRACE
                + ctforge_ssh::BACKSTOP
                + Duration::from_secs(60),
        )
    }

    async fn run_step(&self, ctx: &JobContext, step: &str) -> Result<(), StepError> {
        let phase = step
            .parse::<Phase>()
            .map_err(|()| fail(format!("unknown step {step}")))?;
        let work = self.load(&ctx.job).await?;
        self.run_phase(ctx, phase, &work).await
    }

    /// A retry runs the template as it is now (the user has usually just fixed the script
    /// that failed), re-deriving the plan from it; a deleted template refuses the retry.
    async fn prepare_retry(&self, job: &Job) -> Result<RetryPrep, JobError> {
        // A payload this version cannot read is retried as it is: the run reports it, as it
        // did before retries refreshed the template.
        let Ok(mut payload) = serde_json::from_str::<CreatePayload>(&job.payload_json) else {
            return Ok(RetryPrep::default());
        };
        let Some(old) = payload.template.as_ref() else {
            return Ok(RetryPrep::default());
        };
        let name = old.name.clone();
        let record = match self.store.get_template_by_name(&name).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => {
                return Err(JobError::Conflict(format!(
                    "template {name} was deleted since the last attempt; \
                     delete this container and create it again from another template"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let current = crate::templates::convert::record_to_template(&record).map_err(|e| {
            JobError::Conflict(format!(
                "template {name} cannot be read: {e}; fix it and retry"
            ))
        })?;
        if payload.template.as_ref() == Some(&current) {
            return Ok(RetryPrep::default());
        }
        payload.template = Some(current);
        if let Err(crate::error::AppError::Invalid { fields, .. }) = payload.plan(None) {
            let reasons = fields
                .iter()
                .map(|(field, message)| format!("{field}: {message}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(JobError::Conflict(format!(
                "template {name} changed and no longer fits this container ({reasons}); \
                 fix the template or delete the container and create it again"
            )));
        }
        let payload_json = serde_json::to_string(&payload)
            .map_err(|e| JobError::Conflict(format!("cannot store the job's plan: {e}")))?;
        Ok(RetryPrep {
            payload_json: Some(payload_json),
            notes: vec![format!(
                "template {name} changed since the last attempt; using the current version"
            )],
        })
    }

    async fn on_failed(&self, ctx: &JobContext, step: &str, error: &StepError) {
        self.forget_session(ctx.job_id());
        if let Some(id) = ctx.job.container_id {
            let _ = self
                .store
                .update_container_status(id, crate::status::RecordStatus::Error, None)
                .await;
            let _ = self
                .store
                .add_container_event(
                    id,
                    "create_failed",
                    &format!("step {step} failed: {error}"),
                    "",
                    "{}",
                )
                .await;
        }
    }
}

/// One function per [`Phase`]; each is idempotent (a resumed job re-runs its current phase).
impl CreateContainer {
    /// The client the create call is made with, after the submitter's rights were checked
    /// again (they may have been revoked since the submission): the service token, or
    /// root@pam's own ticket for options only root@pam may set.
    pub(super) async fn creator(&self, work: &Work) -> Result<Arc<dyn PveApi>, StepError> {
        let mut rights = crate::authz::Rights::on_behalf(
            work.client.as_ref(),
            &work.created_by,
            &work.cluster.name,
        );
        let root = match &work.root_ticket_sealed {
            Some(sealed) if work.created_by == "root@pam" => {
                let data: crate::auth::SessionData = self
                    .keyring
                    .open(sealed)
                    .ok()
                    .and_then(|plain| serde_json::from_str(plain.expose()).ok())
                    .ok_or_else(|| fail("cannot open root@pam's sealed ticket; create again"))?;
                rights.root_ticket = true;
                Some(data)
            }
            _ => None,
        };
        match &work.plan.qemu {
            Some(_) => crate::authz::create_vm_as_planned(&rights, &work.plan)
                .await
                .map_err(|e| fail(format!("permission denied: {e}")))?,
            None => {
                crate::authz::create(&rights, &work.plan.params.to_form())
                    .await
                    .map_err(|e| fail(format!("permission denied: {e}")))?;
            }
        }
        let Some(data) = root else {
            return Ok(work.client.clone());
        };
        self.pve
            .user(&work.cluster, &data, "root@pam")
            .map_err(|e| fail(e.to_string()))
    }

    /// Creates the CT (or adopts the one a lost answer created) and waits for its lock.
    async fn create(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        if work.plan.kind == GuestKind::Qemu {
            return super::vm::create(self, ctx, work).await;
        }
        let Work {
            container,
            plan,
            client,
            ..
        } = work;
        let node = plan.node.clone();
        let vmid = plan.vmid;
        if let Some(image) = plan.image() {
            if client.lxc_config_get(&node, vmid, false).await.is_ok() {
                let _ = ctx
                    .log(format!("CT {vmid} exists already on {node}; continuing"))
                    .await;
                wait_unlocked(ctx, client.as_ref(), &node, vmid).await?;
            } else {
                let creator = self.creator(work).await?;
                crate::images::bake::clone_image(
                    ctx,
                    creator.as_ref(),
                    client.as_ref(),
                    plan,
                    image,
                )
                .await?;
            }
            crate::images::bake::configure_clone(ctx, client.as_ref(), plan, image).await?;
        } else {
            self.create_scratch(ctx, work).await?;
        }
        // The CT is on `node`: its commands go there without looking it up.
        self.guests.located(work.cluster.id, vmid, &node);
        if let Some(container) = container {
            let what = match plan.image() {
                Some(image) => format!("CT {vmid} cloned from image {} on {node}", image.image_id),
                None => format!("CT {vmid} created on {node}"),
            };
            let _ = self
                .store
                .add_container_event(container.id, "created", &what, "", "{}")
                .await;
        }
        Ok(())
    }

    /// Creates the CT from its OS template. At once: a CT already there (a resumed job whose
    /// create went through, its task maybe still running) is adopted, since Proxmox refuses
    /// the second create, so asking first would cost every creation a round trip.
    async fn create_scratch(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        let Work { plan, client, .. } = work;
        let (node, vmid) = (plan.node.as_str(), plan.vmid);
        let creator = self.creator(work).await?;
        let _ = ctx
            .log(format!("creating CT {vmid} ({}) on {node}", plan.hostname))
            .await;
        match ctforge_pve::create_lxc_checked(creator.as_ref(), node, &plan.params).await {
            Ok(CreateOutcome::Task(upid)) => {
                wait(ctx, client.as_ref(), node, &upid, "create task").await?
            }
            Ok(CreateOutcome::ExistsAfterLostResponse { .. }) => {
                wait_unlocked(ctx, client.as_ref(), node, vmid).await?
            }
            Err(e @ ctforge_pve::PveError::AlreadyExists { .. }) => {
                // Not on this node: someone else's guest has the VMID.
                if client.lxc_config_get(node, vmid, false).await.is_err() {
                    return Err(fail(format!("create: {e}")));
                }
                let _ = ctx
                    .log(format!("CT {vmid} exists already on {node}; continuing"))
                    .await;
                wait_unlocked(ctx, client.as_ref(), node, vmid).await?;
            }
            Err(ctforge_pve::PveError::Unauthorized { .. })
                if work.root_ticket_sealed.is_some() =>
            {
                return Err(fail(
                    "root@pam's sign-in this creation needs (keyctl/fuse can only be set by root@pam in Proxmox) has expired; sign in as root@pam again and create it again",
                ));
            }
            Err(e) => return Err(fail(format!("create: {e}"))),
        }
        Ok(())
    }

    /// Starts the CT, waits until it accepts commands and records the unit baseline.
    async fn start(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        let Work { plan, client, .. } = work;
        let node = plan.node.clone();
        let vmid = plan.vmid;
        if plan.kind == GuestKind::Qemu {
            super::vm::start(self, ctx, work).await?;
        } else {
            // Start at once: a CT already running (a resumed job) is what Proxmox's refusal says.
            match client.lxc_start(&node, vmid).await {
                Ok(upid) => wait(ctx, client.as_ref(), &node, &upid, "start task").await?,
                Err(ctforge_pve::PveError::AlreadyRunning { .. }) => {}
                Err(e) => return Err(fail(format!("start: {e}"))),
            }
        }
        let channel = self.channel(ctx, work).await?;
        let quick = self.bounded(ctx, work, self.limits.probe).await?;
        let started = tokio::time::Instant::now();
        let mut backoff = ctforge_pve::Backoff::new(Duration::from_millis(500));
        let mut probes = 0u32;
        loop {
            probes += 1;
            match probe(quick.as_ref(), "true").await {
                Ok((0, _)) => {
                    let _ = ctx
                        .log(format!(
                            "the container accepts commands ({} ms after the start task, {probes} probe(s))",
                            started.elapsed().as_millis()
                        ))
                        .await;
                    break;
                }
                _ if started.elapsed() > READY_TIMEOUT => {
                    return Err(fail(
                        "the container does not accept commands 2 minutes after start",
                    ));
                }
                _ => tokio::time::sleep(backoff.next_pause()).await,
            }
        }
        // Let boot settle (apt and systemctl misbehave while systemd is still starting).
        let settling = self.bounded(ctx, work, self.limits.settle).await?;
        waits::settle(ctx, settling.as_ref(), quick.as_ref(), &self.limits, "boot").await?;
        // Together (two channels at once): the units now, and (the state directory made)
        // whether the baseline is recorded already.
        let baseline_check = format!(
            "mkdir -p {} && test -e {}",
            ctforge_ssh::quote(commands::STATE_DIR),
            ctforge_ssh::quote(commands::BASELINE)
        );
        let (units, exists) = tokio::join!(
            probe(quick.as_ref(), commands::LIST_UNITS),
            probe(quick.as_ref(), &baseline_check)
        );
        let (_, units) = units?;
        let (exists, _) = exists?;
        if exists != 0 {
            channel
                .push(
                    parse::unit_names(&units).join("\n").as_bytes(),
                    commands::BASELINE,
                    Some(0o600),
                    None,
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let _ = ctx.log("container is up and accepts commands").await;
        Ok(())
    }

    /// Pushes the template's files by policy and installs the config-manager.
    async fn deploy(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        let Work { plan, .. } = work;
        if plan.image().is_some() {
            let channel = self.channel(ctx, work).await?;
            return crate::images::bake::identity(ctx, channel.as_ref(), plan).await;
        }
        let files: Vec<(String, String, String, String)> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::DeployFile {
                    name,
                    path,
                    policy,
                    content,
                } => Some((name.clone(), path.clone(), policy.clone(), content.clone())),
                _ => None,
            })
            .collect();
        if !plan.steps.contains(&Step::ConfigManager) {
            let _ = ctx.log("nothing to deploy").await;
            return Ok(());
        }
        let channel = self.channel(ctx, work).await?;
        run(
            ctx,
            channel.as_ref(),
            "prepare",
            &format!(
                "mkdir -p {}/files {}/scripts /usr/local/sbin /etc/systemd/system",
                commands::STATE_DIR,
                commands::STATE_DIR
            ),
        )
        .await?;
        let stamp = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            stamp.year(),
            u8::from(stamp.month()),
            stamp.day(),
            stamp.hour(),
            stamp.minute(),
            stamp.second()
        );
        for (i, (name, path, policy, content)) in files.iter().enumerate() {
            let staged = commands::staged_path(name);
            channel
                .push(
                    content.as_bytes(),
                    &staged,
                    Some(commands::STAGED_MODE),
                    None,
                )
                .await
                .map_err(|e| fail(format!("push {name}: {e}")))?;
            let (exists, _) = probe(
                channel.as_ref(),
                &format!("test -e {}", ctforge_ssh::quote(path)),
            )
            .await?;
            let q = ctforge_ssh::quote;
            match (policy.as_str(), exists == 0) {
                ("default", true) => {
                    let _ = ctx
                        .log(format!("{path}: exists, kept (policy default)"))
                        .await;
                }
                ("backup", true) => {
                    let backup = format!("{path}.bak.{stamp}");
                    run(
                        ctx,
                        channel.as_ref(),
                        &format!("backup {path}"),
                        &format!("cp -p {} {}", q(path), q(&backup)),
                    )
                    .await?;
                    run(
                        ctx,
                        channel.as_ref(),
                        &format!("deploy {name}"),
                        &format!(
                            "mkdir -p {} && cp {} {}",
                            q(commands::parent(path)),
                            q(&staged),
                            q(path)
                        ),
                    )
                    .await?;
                    let _ = ctx
                        .log(format!(
                            "{path}: backed up to {backup} and replaced (policy backup)"
                        ))
                        .await;
                }
                _ => {
                    run(
                        ctx,
                        channel.as_ref(),
                        &format!("deploy {name}"),
                        &format!(
                            "mkdir -p {} && cp {} {}",
                            q(commands::parent(path)),
                            q(&staged),
                            q(path)
                        ),
                    )
                    .await?;
                    let _ = ctx.log(format!("{path}: written (policy {policy})")).await;
                }
            }
            let _ = ctx
                .percent(u8::try_from((i + 1) * 80 / files.len().max(1)).unwrap_or(80))
                .await;
        }
        let manifest: Vec<(String, String, String)> = files
            .iter()
            .map(|(n, p, pol, _)| (n.clone(), p.clone(), pol.clone()))
            .collect();
        channel
            .push(
                commands::CONFIG_MANAGER.as_bytes(),
                commands::APPLY_SCRIPT,
                Some(0o755),
                None,
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        run(
            ctx,
            channel.as_ref(),
            "prepare",
            &format!("mkdir -p {}", ctforge_ssh::quote(commands::MANIFEST_DIR)),
        )
        .await?;
        for (name, content) in [
            ("files", commands::files_manifest(&manifest)),
            ("scripts", scripts_manifest(plan)),
            ("packages.sh", packages_manifest(plan)),
        ] {
            channel
                .push(
                    content.as_bytes(),
                    &format!("{}/{name}", commands::MANIFEST_DIR),
                    Some(0o600),
                    None,
                )
                .await
                .map_err(|e| fail(format!("push the config-manager's {name}: {e}")))?;
        }
        if let Some(source) = &plan.config_source {
            channel
                .push(
                    format!("{}\n", source.applied).as_bytes(),
                    commands::APPLIED,
                    Some(0o644),
                    None,
                )
                .await
                .map_err(|e| fail(format!("push {}: {e}", commands::APPLIED)))?;
            if let Some(follow) = &source.follow {
                let skip: String = follow
                    .skip_scripts
                    .iter()
                    .map(|n| format!("{n}\n"))
                    .collect();
                channel
                    .push(
                        skip.as_bytes(),
                        &format!("{}/skip-scripts", commands::MANIFEST_DIR),
                        Some(0o600),
                        None,
                    )
                    .await
                    .map_err(|e| fail(format!("push the config-manager's skip-scripts: {e}")))?;
                let _ = ctx
                    .log(format!(
                        "sync on boot: the config-manager fetches {} ({}) /{} itself on every boot",
                        follow.url, follow.branch, follow.path
                    ))
                    .await;
            }
        }
        channel
            .push(
                commands::apply_unit().as_bytes(),
                commands::APPLY_UNIT,
                Some(0o644),
                None,
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        run(
            ctx,
            channel.as_ref(),
            "config-manager",
            "systemctl daemon-reload && systemctl enable ctforge-apply.service",
        )
        .await?;
        // The boot unit sources the runtime and reads its configuration: without them it
        // fails on every boot (exit 3), whether or not the template has scripts.
        self.install_runtime(ctx, channel.as_ref(), plan).await?;
        let _ = ctx
            .log("config-manager installed (ctforge-apply.service re-applies the template on boot: scripts, files, packages)")
            .await;
        Ok(())
    }

    /// Installs packages and runs the custom installer.
    async fn install(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        let Work { plan, .. } = work;
        if let Some(image) = plan.image() {
            let _ = ctx
                .log(format!(
                    "packages and files come from image {} (CT template {}): nothing to install",
                    image.image_id, image.vmid
                ))
                .await;
            return Ok(());
        }
        let channel = self.channel(ctx, work).await?;
        run(
            ctx,
            channel.as_ref(),
            "prepare",
            &format!("mkdir -p {}/scripts", commands::STATE_DIR),
        )
        .await?;
        let installs: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::Install { .. }
                        | Step::CustomPackage { .. }
                        | Step::CustomInstaller { .. }
                )
            })
            .collect();
        if installs.is_empty() {
            let _ = ctx.log("no packages to install").await;
        }
        let mut runtime_ready = false;
        for (i, s) in installs.iter().enumerate() {
            match s {
                Step::Install { manager, packages } => {
                    let _ = ctx
                        .log(format!("installing with {manager}: {}", packages.join(" ")))
                        .await;
                    run(
                        ctx,
                        channel.as_ref(),
                        &format!("{manager} install"),
                        &commands::install(manager, packages),
                    )
                    .await?;
                }
                Step::CustomPackage {
                    name,
                    check,
                    install,
                    timeout_secs,
                } => {
                    if !runtime_ready {
                        self.install_runtime(ctx, channel.as_ref(), plan).await?;
                        runtime_ready = true;
                    }
                    // The check decides, in bash with the runtime, as the library runs it.
                    let (code, _) = probe(channel.as_ref(), &commands::run_inline(check)).await?;
                    if code == 0 {
                        let _ = ctx
                            .log(format!("{name}: already installed (check passed), skipped"))
                            .await;
                    } else {
                        let limit = timeout_secs
                            .map(Duration::from_secs)
                            .unwrap_or(self.limits.command);
                        let _ = ctx
                            .log(format!(
                                "{name}: check failed (status {code}), installing (limit {}s)",
                                limit.as_secs()
                            ))
                            .await;
                        let limited = self.bounded(ctx, work, limit).await?;
                        run(
                            ctx,
                            limited.as_ref(),
                            &format!("custom package {name}"),
                            &commands::run_inline(install),
                        )
                        .await?;
                    }
                }
                Step::CustomInstaller { content } => {
                    if !runtime_ready {
                        self.install_runtime(ctx, channel.as_ref(), plan).await?;
                        runtime_ready = true;
                    }
                    let path = format!("{}/custom.sh", commands::STATE_DIR);
                    run(
                        ctx,
                        channel.as_ref(),
                        "prepare",
                        &format!("mkdir -p {}/scripts", commands::STATE_DIR),
                    )
                    .await?;
                    channel
                        .push(content.as_bytes(), &path, Some(0o755), None)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    let limit = waits::script_timeout(content).unwrap_or(self.limits.command);
                    let limited = self.bounded(ctx, work, limit).await?;
                    run(
                        ctx,
                        limited.as_ref(),
                        "custom installer",
                        &commands::run_script(&path, &plan.hostname),
                    )
                    .await?;
                }
                _ => {}
            }
            let _ = ctx
                .percent(u8::try_from((i + 1) * 100 / installs.len()).unwrap_or(100))
                .await;
        }
        Ok(())
    }

    /// Runs the template's scripts in order.
    async fn scripts(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        let Work { plan, .. } = work;
        let channel = self.channel(ctx, work).await?;
        let scripts: Vec<(&String, &String)> = plan
            .steps
            .iter()
            .filter_map(|s| {
                if let Step::RunScript { name, content } = s {
                    Some((name, content))
                } else {
                    None
                }
            })
            .collect();
        if scripts.is_empty() {
            let _ = ctx.log("no scripts to run").await;
        } else {
            self.install_runtime(ctx, channel.as_ref(), plan).await?;
        }
        let mut total = Levels::default();
        for (i, (name, content)) in scripts.iter().enumerate() {
            let path = commands::script_path(name);
            channel
                .push(content.as_bytes(), &path, Some(0o755), None)
                .await
                .map_err(|e| fail(format!("push {name}: {e}")))?;
            let _ = ctx.log(format!("running {name}")).await;
            let limit = waits::script_timeout(content).unwrap_or(self.limits.command);
            let limited = self.bounded(ctx, work, limit).await?;
            let mut levels = Levels::default();
            run_counted(
                ctx,
                limited.as_ref(),
                &format!("script {name}"),
                &commands::run_script(&path, &plan.hostname),
                &mut levels,
            )
            .await?;
            let _ = ctx
                .log(format!(
                    "{name}: done, {} warning(s), {} error line(s)",
                    levels.warnings, levels.errors
                ))
                .await;
            total.warnings += levels.warnings;
            total.errors += levels.errors;
            let _ = ctx
                .percent(u8::try_from((i + 1) * 100 / scripts.len()).unwrap_or(100))
                .await;
        }
        if !scripts.is_empty() {
            let _ = ctx
                .emit(
                    "summary",
                    serde_json::json!({
                        "scripts": scripts.len(),
                        "warnings": total.warnings,
                        "errors": total.errors,
                    }),
                )
                .await;
            let _ = ctx
                .log(format!(
                    "scripts: {} run, {} warning(s), {} error line(s)",
                    scripts.len(),
                    total.warnings,
                    total.errors
                ))
                .await;
        }
        Ok(())
    }

    /// Pushes the script runtime (the library's helpers and variables), makes sure bash is
    /// there, and writes the boot unit's configuration (the template's container user).
    async fn install_runtime(
        &self,
        ctx: &JobContext,
        channel: &dyn RemoteExec,
        plan: &Plan,
    ) -> Result<(), StepError> {
        run(
            ctx,
            channel,
            "prepare runtime",
            &format!(
                "mkdir -p {} {}",
                ctforge_ssh::quote(commands::parent(commands::RUNTIME_PATH)),
                ctforge_ssh::quote(commands::parent(commands::CONFIG_ENV))
            ),
        )
        .await?;
        channel
            .push(
                commands::RUNTIME.as_bytes(),
                commands::RUNTIME_PATH,
                Some(0o644),
                None,
            )
            .await
            .map_err(|e| fail(format!("push the script runtime: {e}")))?;
        channel
            .push(
                commands::config_env(
                    plan.container_user.as_deref(),
                    plan.config_source
                        .as_ref()
                        .and_then(|c| c.follow.as_ref())
                        .map(|f| (f.url.as_str(), f.branch.as_str(), f.path.as_str())),
                )
                .as_bytes(),
                commands::CONFIG_ENV,
                Some(0o600),
                None,
            )
            .await
            .map_err(|e| fail(format!("push {}: {e}", commands::CONFIG_ENV)))?;
        // Every step a simple command, so each decision is logged (and the memory backend's
        // shell follows it).
        if probe(channel, "command -v bash").await?.0 != 0 {
            let mut installed = false;
            for (check, install) in commands::BASH_INSTALLERS {
                if probe(channel, check).await?.0 == 0 {
                    let _ = ctx.log("bash is missing: installing it").await;
                    run(ctx, channel, "install bash", install).await?;
                    installed = true;
                    break;
                }
            }
            if !installed {
                return Err(fail(
                    "template scripts need bash, and the container has neither bash nor a package manager to install it",
                ));
            }
        }
        run(ctx, channel, "link runtime", &commands::link_runtime()).await?;
        let _ = ctx
            .log(format!(
                "script runtime v{} installed ({})",
                commands::RUNTIME_VERSION,
                commands::RUNTIME_PATH
            ))
            .await;
        Ok(())
    }

    /// Records services, credentials and the address; the container is ready.
    async fn discover(&self, ctx: &JobContext, work: &Work) -> Result<(), StepError> {
        let Work {
            container,
            plan,
            client,
            ..
        } = work;
        let container = container
            .as_ref()
            .ok_or_else(|| fail("discovery needs the container's record"))?;
        let node = plan.node.clone();
        let vmid = plan.vmid;
        // Units the scripts started may still be starting; discovery should see them settled,
        // but never waits for them longer than the bound.
        let settling = self.bounded(ctx, work, self.limits.settle).await?;
        let quick = self.bounded(ctx, work, self.limits.probe).await?;
        waits::settle(
            ctx,
            settling.as_ref(),
            quick.as_ref(),
            &self.limits,
            "before discovery",
        )
        .await?;
        let agent_ip = match (plan.kind, &plan.ip) {
            (GuestKind::Qemu, None) => super::vm::address(client.as_ref(), &node, vmid).await,
            _ => None,
        };
        let report = discover(
            quick.as_ref(),
            client.as_ref(),
            &node,
            vmid,
            plan.ip.as_deref().or(agent_ip.as_deref()),
        )
        .await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let services: Vec<ContainerService> = report
            .services
            .iter()
            .map(|s| ContainerService {
                unit: s.unit.clone(),
                active_state: s.active.clone(),
                sub_state: s.sub.clone(),
                enabled: s.enabled,
                port: s.port.map(i64::from),
                url: s
                    .port
                    .zip(report.ip.as_ref())
                    .map(|(p, ip)| format!("http://{ip}:{p}")),
                updated_at: now,
                ..ContainerService::default()
            })
            .collect();
        self.store
            .replace_services(container.id, &services)
            .await
            .map_err(|e| fail(e.to_string()))?;
        for (name, value) in &report.credentials {
            let sealed = self.keyring.seal(value).map_err(|e| fail(e.to_string()))?;
            self.store
                .put_credential(container.id, name, &sealed)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        for warning in &report.warnings {
            let _ = ctx.log(format!("! not checked: {warning}")).await;
        }
        for s in &services {
            let _ = ctx
                .log(format!(
                    "service {} is {} {}",
                    s.unit,
                    s.active_state,
                    s.url.clone().unwrap_or_default()
                ))
                .await;
        }
        let _ = ctx
            .log(format!(
                "{} credential(s) stored sealed",
                report.credentials.len()
            ))
            .await;
        // The first run is complete: later runs (boot unit, re-apply) see
        // CONFIG_MANAGER_FIRST_RUN=false.
        if plan.has_config_manager() {
            // With the baseline of the config-manager's conflict check, in one round trip.
            let (code, _) = probe(
                quick.as_ref(),
                &format!(
                    "{}; {} --record",
                    commands::mark_first_run(),
                    commands::APPLY_SCRIPT
                ),
            )
            .await?;
            if code != 0 {
                let _ = ctx
                    .log(format!(
                        "! warning: the config-manager could not record the checksums of the managed files (exit {code})"
                    ))
                    .await;
            }
        } else {
            probe(quick.as_ref(), &commands::mark_first_run()).await?;
        }
        self.store
            .update_container_status(
                container.id,
                crate::status::RecordStatus::Ready,
                report.ip.as_deref(),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        let _ = self
            .store
            .add_container_event(
                container.id,
                "ready",
                &format!("{} is ready", plan.hostname),
                "",
                "{}",
            )
            .await;
        self.forget_session(ctx.job_id());
        match plan.image() {
            Some(image) => {
                let _ = self.store.count_image_use(image.image_id).await;
            }
            None => {
                if let (true, Some(payload)) = (self.auto_build, work.payload.as_ref()) {
                    crate::images::after_creation(
                        self.store.as_ref(),
                        plan,
                        payload,
                        &work.created_by,
                        ctx,
                    )
                    .await;
                }
            }
        }
        Ok(())
    }
}

/// The config-manager's script list: the plan's scripts, in order, where provisioning stores
/// them.
fn scripts_manifest(plan: &Plan) -> String {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::RunScript { name, .. } => Some(format!("{}\n", commands::script_path(name))),
            _ => None,
        })
        .collect()
}

/// The config-manager's package phase: the plan's install commands, one per line, each
/// stopping the run when it fails.
fn packages_manifest(plan: &Plan) -> String {
    let q = ctforge_ssh::quote;
    let mut text = String::from("# Written by ctforge: the template's packages.\nset -e\n");
    for step in &plan.steps {
        match step {
            Step::Install { manager, packages } => {
                text.push_str(&commands::install(manager, packages));
                text.push('\n');
            }
            Step::CustomPackage {
                check,
                install,
                timeout_secs,
                ..
            } => {
                let limit = timeout_secs
                    .map(|t| format!("timeout {t} "))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "bash -c {} || {limit}bash -c {}\n",
                    q(check),
                    q(install)
                ));
            }
            Step::CustomInstaller { .. } => {
                text.push_str(&format!("bash {}/custom.sh\n", commands::STATE_DIR));
            }
            _ => {}
        }
    }
    text
}

pub(crate) async fn wait_unlocked(
    ctx: &JobContext,
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
) -> Result<(), StepError> {
    let started = tokio::time::Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_millis(500));
    loop {
        let config = client
            .lxc_config_get(node, vmid, false)
            .await
            .map_err(|e| fail(format!("config: {e}")))?;
        if config.lock.is_none() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(fail(format!(
                "CT {vmid} stays locked ({:?}); check its task in Proxmox",
                config.lock
            )));
        }
        if started.elapsed().as_secs().is_multiple_of(10) {
            let _ = ctx
                .log(format!(
                    "waiting for the {} lock on CT {vmid}",
                    config.lock.clone().unwrap_or_default()
                ))
                .await;
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

/// A discovered service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredService {
    /// Unit name.
    pub unit: String,
    /// ActiveState.
    pub active: String,
    /// SubState.
    pub sub: String,
    /// Enabled at boot.
    pub enabled: bool,
    /// Listening port.
    pub port: Option<u16>,
}

/// What discovery found.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// Services installed by provisioning.
    pub services: Vec<DiscoveredService>,
    /// Credentials (name, value).
    pub credentials: Vec<(String, String)>,
    /// IPv4 address.
    pub ip: Option<String>,
    /// Parts of the check that failed (the job log shows them).
    pub warnings: Vec<String>,
}

/// Discovers services (units added since the baseline), their ports, credentials and the
/// address: the unit listing and the baseline, then monitoring's one batched check
/// ([`batch::check`]) for the new units, so both read a container the same way. Parts of the
/// check that failed are reported in [`Discovery::warnings`].
pub async fn discover(
    channel: &dyn RemoteExec,
    client: &dyn PveApi,
    node: &str,
    vmid: u32,
    static_ip: Option<&str>,
) -> Result<Discovery, StepError> {
    // Proxmox's view of the address is read while the CT is probed.
    let address = async {
        match static_ip {
            Some(ip) => Some(ip.to_owned()),
            None => client
                .lxc_interfaces(node, vmid)
                .await
                .ok()
                .and_then(|ifaces| {
                    ifaces
                        .into_iter()
                        .filter(|i| i.name != "lo")
                        .find_map(|i| i.inet.and_then(|a| a.split('/').next().map(str::to_owned)))
                }),
        }
    };
    let (probed, ip) = tokio::join!(probe_services(channel, vmid), address);
    let (services, credentials, warnings) = probed?;
    Ok(Discovery {
        services,
        credentials,
        ip,
        warnings,
    })
}

/// What [`discover`] reads inside the CT: services, credentials, and the parts of the check
/// that failed.
type Probed = (Vec<DiscoveredService>, Vec<(String, String)>, Vec<String>);

async fn probe_services(channel: &dyn RemoteExec, vmid: u32) -> Result<Probed, StepError> {
    // The unit listing and the baseline together (two channels at once).
    let baseline_cat = format!("cat {}", ctforge_ssh::quote(commands::BASELINE));
    let (now, baseline) = tokio::join!(
        probe(channel, commands::LIST_UNITS),
        probe(channel, &baseline_cat)
    );
    let (_, now) = now?;
    let (_, baseline) = baseline?;
    let base: Vec<&str> = baseline.lines().map(str::trim).collect();
    let mut units: Vec<String> = parse::unit_names(&now)
        .into_iter()
        .filter(|u| !base.contains(&u.as_str()) && !commands::is_own_unit(u))
        .collect();
    units.sort();
    units.dedup();
    let report = batch::check(channel, vmid, &units)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let warnings = report
        .failures()
        .into_iter()
        .map(|(_, e)| e.to_owned())
        .collect();
    let listeners = report.ports.as_ref().map(Vec::as_slice).unwrap_or(&[]);
    let services = report
        .units
        .as_ref()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|u| units.contains(&u.id))
        .map(|u| DiscoveredService {
            unit: u.id.clone(),
            active: u.active.clone(),
            sub: u.sub.clone(),
            enabled: u.enabled,
            port: parse::port_of(u, listeners),
        })
        .collect();
    let credentials = match report.credentials {
        Ok(found) => found
            .into_iter()
            .map(|(name, value)| (name, value.expose().to_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok((services, credentials, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_keeps_all_of_a_long_listing() {
        let fake = ctforge_ssh::FakeRemote::new();
        let lines: Vec<String> = (0..300)
            .map(|i| format!("unit-{i:03}.service loaded active running Unit {i}"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        fake.reply(commands::LIST_UNITS, 0, &refs);
        let (code, text) = probe(&fake, commands::LIST_UNITS).await.unwrap();
        assert_eq!(code, 0);
        let units = parse::unit_names(&text);
        assert_eq!(units.len(), 300, "more than the channel's 50-line tail");
        assert_eq!(units[0], "unit-000.service");
    }
}
