//! [`Worker`]: claims jobs from the store and runs their steps with checkpoints, lease renewal,
//! cancellation and graceful stop.
//!
//! Claiming goes through `Store::claim_job` (PostgreSQL: `FOR UPDATE SKIP LOCKED`), so any number
//! of workers in any number of processes share one queue; the per-node limit is enforced by that
//! same query. An idle worker waits for a wake-up ([`JobQueue::wake`]: in this process directly,
//! from others through [`super::wake`]), re-polls at once after a claim, and polls every
//! `idle_poll` only as a fallback for a lost signal.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobHandler, JobQueue, StepError, completed_steps, overall_percent};
use crate::config::WorkersConfig;
use crate::events::{job_topic, kind};
use crate::jobs::JobState;
use crate::storage::StoreError;
use crate::storage::model::{Job, JobChange};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Jobs run at once by this worker.
    pub concurrency: usize,
    /// Jobs run at once against one node (across all workers).
    pub per_node: i64,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// Poll interval while idle: only a fallback, a submitted job wakes the worker at once.
    pub idle_poll: Duration,
    /// A job claimed more often than this fails instead of running again (a crash loop).
    pub max_attempts: i64,
    /// On stop, how long running steps may take before their contexts are cancelled.
    pub shutdown_grace: Duration,
    /// The per-step cap of a job's log (`[job_log]`).
    pub log: crate::config::JobLogConfig,
    /// Longest a step may go without progress when its handler does not say
    /// ([`JobHandler::step_timeout`]); then the watchdog fails it.
    pub step_timeout: Duration,
    /// Lease owner id (unique per worker).
    pub owner: String,
}

impl WorkerOptions {
    /// Options from the `[workers]` configuration with the default lease (30 s), fallback poll
    /// (2 s; wake-ups start jobs), attempt limit (20) and grace (20 s).
    pub fn from_config(config: &WorkersConfig) -> Self {
        Self {
            concurrency: usize::try_from(config.concurrency).unwrap_or(1).max(1),
            per_node: i64::from(config.per_node.max(1)),
            ..Self::default()
        }
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            per_node: 2,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_secs(2),
            max_attempts: 20,
            shutdown_grace: Duration::from_secs(20),
            log: crate::config::JobLogConfig::default(),
            step_timeout: Duration::from_secs(3600),
            owner: default_owner(),
        }
    }
}

/// `host:pid:random`, unique per worker instance.
fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{host}:{}:{}",
        std::process::id(),
        random.get(..8).unwrap_or(&random)
    )
}

/// A job worker (not yet started).
#[derive(Debug)]
pub struct Worker {
    queue: Arc<JobQueue>,
    options: WorkerOptions,
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    owner: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// The lease owner id of this worker.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Graceful stop: no new claims or steps; running steps get `shutdown_grace` to finish,
    /// then their contexts are cancelled. Interrupted jobs release their lease so another
    /// worker resumes them at once.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Kills the worker and its jobs without any clean-up (what a crash looks like: leases are
    /// left to expire).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Whether the worker has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Worker {
    /// A worker over `queue`.
    pub fn new(queue: Arc<JobQueue>, options: WorkerOptions) -> Self {
        Self { queue, options }
    }

    /// Starts claiming and running jobs.
    pub fn spawn(self) -> WorkerHandle {
        let stop = CancellationToken::new();
        let owner = self.options.owner.clone();
        let task = tokio::spawn(self.run(stop.clone()));
        WorkerHandle { owner, stop, task }
    }

    async fn run(self, stop: CancellationToken) {
        let options = Arc::new(self.options);
        let queue = self.queue;
        let hard_stop = CancellationToken::new();
        let semaphore = Arc::new(Semaphore::new(options.concurrency.max(1)));
        let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(30_000);
        let mut tasks = JoinSet::new();
        tracing::info!(owner = %options.owner, concurrency = options.concurrency, "worker started");
        let mut last_compact = std::time::Instant::now();
        let listener = tokio::spawn(super::wake::listen(queue.clone(), stop.clone()));
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                permit = semaphore.clone().acquire_owned() => permit,
                () = stop.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            match queue
                .store()
                .claim_job(&options.owner, lease_ms, options.per_node)
                .await
            {
                Ok(Some(job)) => {
                    tracing::info!(job_id = job.id, kind = %job.kind, attempt = job.attempts, "job claimed");
                    let runner = Runner {
                        queue: queue.clone(),
                        options: options.clone(),
                        lease_ms,
                        stop: stop.clone(),
                        token: hard_stop.child_token(),
                        lost: Arc::new(AtomicBool::new(false)),
                    };
                    tasks.spawn(runner.run(job, permit));
                }
                Ok(None) => {
                    drop(permit);
                    // Idle: give the journal space back now and then (SQLite's WAL), besides
                    // after every job.
                    if last_compact.elapsed() >= COMPACT_EVERY {
                        last_compact = std::time::Instant::now();
                        if let Err(e) = queue.store().compact().await {
                            tracing::debug!(error = %e, "cannot checkpoint the database journal");
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(options.idle_poll) => {}
                        () = queue.woken() => {}
                        () = stop.cancelled() => break,
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "cannot claim jobs; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        listener.abort();
        if !tasks.is_empty() {
            tracing::info!(
                running = tasks.len(),
                "worker stopping; letting running steps finish"
            );
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(options.shutdown_grace, drain)
                .await
                .is_err()
            {
                hard_stop.cancel();
                let drain = async { while tasks.join_next().await.is_some() {} };
                if tokio::time::timeout(Duration::from_secs(5), drain)
                    .await
                    .is_err()
                {
                    tasks.abort_all();
                }
            }
        }
        tracing::info!(owner = %options.owner, "worker stopped");
    }
}

/// How often an idle worker checkpoints the database journal.
const COMPACT_EVERY: Duration = Duration::from_secs(300);

/// Removes a job from the running map however its task ends (abort included).
struct Tracked {
    queue: Arc<JobQueue>,
    job_id: i64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.queue.untrack(self.job_id);
    }
}

/// Runs one claimed job.
struct Runner {
    queue: Arc<JobQueue>,
    options: Arc<WorkerOptions>,
    lease_ms: i64,
    /// Graceful stop: no new steps.
    stop: CancellationToken,
    /// The job's context token: user cancel, lost lease, end of the grace period.
    token: CancellationToken,
    lost: Arc<AtomicBool>,
}

impl Runner {
    async fn run(self, job: Job, permit: OwnedSemaphorePermit) {
        let _permit = permit;
        let job_id = job.id;
        self.queue.track(job_id, self.token.clone());
        let _tracked = Tracked {
            queue: self.queue.clone(),
            job_id,
        };
        let mut side = JoinSet::new();
        side.spawn(self.keep_lease(job_id));
        if let Ok(mut subscription) = self
            .queue
            .progress()
            .bus()
            .subscribe(&job_topic(job_id))
            .await
        {
            let token = self.token.clone();
            side.spawn(async move {
                loop {
                    match subscription.recv().await {
                        Ok(event) if event.kind == kind::CANCELLED => {
                            token.cancel();
                            return;
                        }
                        Ok(_) | Err(crate::events::RecvError::Lagged) => {}
                        Err(crate::events::RecvError::Closed) => return,
                    }
                }
            });
        }
        if let Err(e) = self.run_steps(job).await {
            tracing::warn!(job_id, error = %e, "job interrupted by a database error; its lease will expire and it will resume");
        }
        // A job may have written much: checkpoint the journal (SQLite's WAL).
        if let Err(e) = self.queue.store().compact().await {
            tracing::debug!(job_id, error = %e, "cannot checkpoint the database journal");
        }
        side.abort_all();
        // The job's node has room again (per-node limits), or the job was released: idle
        // workers, here and elsewhere, look at the queue now.
        self.queue.wake().await;
    }

    /// Renews the lease every third of its length; cancels the job if the lease was lost
    /// (another worker took it, or the job was cancelled/finished elsewhere).
    fn keep_lease(&self, job_id: i64) -> impl Future<Output = ()> + Send + 'static {
        let store = self.queue.store().clone();
        let owner = self.options.owner.clone();
        let lease_ms = self.lease_ms;
        let every = self.options.lease / 3;
        let token = self.token.clone();
        let lost = self.lost.clone();
        async move {
            loop {
                tokio::time::sleep(every).await;
                match store.renew_job_lease(job_id, &owner, lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job_id, "job lease lost (cancelled or taken over)");
                        lost.store(true, Ordering::SeqCst);
                        token.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(job_id, error = %e, "cannot renew job lease"),
                }
            }
        }
    }

    /// Whether this worker still holds the job (renewing the lease on the way).
    async fn still_ours(&self, job_id: i64) -> Result<bool, StoreError> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.queue
            .store()
            .renew_job_lease(job_id, &self.options.owner, self.lease_ms)
            .await
    }

    /// Gives the job back to the queue at once (stop or shutdown before it ended).
    async fn release(&self, job_id: i64) {
        // A lease that ended a millisecond ago is claimable immediately; this only succeeds
        // while we hold the lease and the job is running (not after a user cancel).
        match self
            .queue
            .store()
            .renew_job_lease(job_id, &self.options.owner, -1)
            .await
        {
            Ok(true) => tracing::info!(job_id, "job released for another worker"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(job_id, error = %e, "cannot release job lease; it will expire")
            }
        }
    }

    async fn fail(&self, job: &Job, step: Option<&str>, message: &str) -> Result<(), StoreError> {
        let text = match step {
            Some(step) => format!("step {step} failed: {message}"),
            None => message.to_owned(),
        };
        // The row with the event, in one transaction: whoever reacts to `error` finds the job
        // failed (and retryable). A job finished meanwhile (cancelled by a user) stays as it is.
        let change = JobChange::Finish {
            state: JobState::Failed,
            error: Some(&text),
        };
        let event = (
            kind::ERROR,
            step,
            json!({ "step": step, "message": message }),
        );
        match self
            .queue
            .progress()
            .checkpoint(job.id, &self.options.owner, change, vec![event])
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        }
        finished(job, JobState::Failed);
        Ok(())
    }

    async fn run_steps(&self, job: Job) -> Result<(), StoreError> {
        let store = self.queue.store().clone();
        let progress = self.queue.progress().clone();
        let owner = self.options.owner.clone();
        let Some(handler) = self.queue.registry().get(&job.kind) else {
            let message = format!("no handler for job kind {:?} in this worker", job.kind);
            return self.fail(&job, None, &message).await;
        };
        if job.attempts > self.options.max_attempts {
            let message = format!(
                "gave up after {} attempts (the worker stopped during step {} each time)",
                job.attempts - 1,
                job.current_step.as_deref().unwrap_or("-")
            );
            return self.fail(&job, job.current_step.as_deref(), &message).await;
        }
        let steps = handler.steps(&job);
        let total = steps.len();
        let done: HashSet<String> = completed_steps(&job).into_iter().collect();
        progress
            .emit(
                job.id,
                kind::START,
                None,
                json!({
                    "attempt": job.attempts,
                    "owner": owner,
                    "steps": steps,
                    "completed": steps.iter().filter(|s| done.contains(**s)).collect::<Vec<_>>(),
                }),
            )
            .await?;
        for (index, step) in steps.iter().copied().enumerate() {
            if done.contains(step) {
                continue;
            }
            if self.token.is_cancelled() || self.stop.is_cancelled() {
                self.release(job.id).await;
                return Ok(());
            }
            // The checkpoint before work, with its event (one transaction).
            let event = (
                kind::STEP,
                Some(step),
                json!({ "name": step, "index": index, "total": total }),
            );
            match progress
                .checkpoint(job.id, &owner, JobChange::Begin(step), vec![event])
                .await
            {
                Ok(()) => {}
                Err(StoreError::NotFound) => return Ok(()), // lease lost
                Err(e) => return Err(e),
            }
            let ctx = JobContext {
                job: job.clone(),
                store: store.clone(),
                progress: progress.clone(),
                step: step.to_owned(),
                index,
                total,
                cancel: self.token.clone(),
                owner: owner.clone(),
                progress_at: Arc::new(std::sync::Mutex::new(tokio::time::Instant::now())),
                log_cap: Arc::new(std::sync::Mutex::new(super::log_cap::LogCap::new(
                    self.options.log,
                ))),
            };
            let started = std::time::Instant::now();
            let limit = handler
                .step_timeout(&job, step)
                .unwrap_or(self.options.step_timeout);
            // The watchdog: a step without progress for longer than it allows is stopped (its
            // task aborted) and fails like any other step, so the job keeps its log, can be
            // retried, and no longer counts against its node's limit.
            let result = tokio::select! {
                result = run_isolated(handler.clone(), ctx.clone(), step) => result,
                idle = stalled(&ctx, limit) => {
                    tracing::warn!(job_id = job.id, step, idle_s = idle.as_secs(), "job step stalled; the watchdog stops it");
                    Err(StepError::failed(format!(
                        "no progress for {}s (the step allows {}s), so the watchdog stopped it; the log is kept and the job can be retried",
                        idle.as_secs(),
                        limit.as_secs()
                    )))
                }
            };
            // What the log cap held back (the dropped count, the last lines) comes before
            // the step's outcome.
            if let Err(e) = ctx.finish_log().await {
                tracing::warn!(job_id = job.id, step, error = %e, "cannot store the end of the step's log");
            }
            metrics::histogram!(
                "ctforge_job_step_duration_seconds",
                "kind" => job.kind.clone(),
                "step" => step.to_owned(),
                "outcome" => if result.is_ok() { "ok" } else { "error" },
            )
            .record(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    // The checkpoint after work, with its event (one transaction).
                    let event = (
                        kind::COMPLETE,
                        Some(step),
                        json!({
                            "name": step,
                            "index": index,
                            "total": total,
                            "percent": overall_percent(index + 1, total, 0),
                        }),
                    );
                    match progress
                        .checkpoint(job.id, &owner, JobChange::Complete(step), vec![event])
                        .await
                    {
                        Ok(()) => {}
                        Err(StoreError::NotFound) => return Ok(()), // lease lost
                        Err(e) => return Err(e),
                    }
                }
                Err(error) => {
                    if self.token.is_cancelled() {
                        // User cancel (already recorded), lost lease, or shutdown: give the job
                        // back if we still hold it; the step will run again.
                        self.release(job.id).await;
                        return Ok(());
                    }
                    handler.on_failed(&ctx, step, &error).await;
                    if !self.still_ours(job.id).await? {
                        return Ok(());
                    }
                    tracing::warn!(job_id = job.id, step, error = %error, "job step failed");
                    return self.fail(&job, Some(step), &error.to_string()).await;
                }
            }
        }
        if !self.still_ours(job.id).await? {
            return Ok(());
        }
        // The row with the event, in one transaction: whoever reacts to `done` finds the job
        // finished. A job finished meanwhile (cancelled by a user) stays as it is.
        let change = JobChange::Finish {
            state: JobState::Succeeded,
            error: None,
        };
        let event = (kind::DONE, None, json!({ "steps": steps }));
        match progress
            .checkpoint(job.id, &owner, change, vec![event])
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        }
        finished(&job, JobState::Succeeded);
        tracing::info!(job_id = job.id, "job succeeded");
        Ok(())
    }
}

/// Resolves once `ctx` has gone `limit` without progress, with how long it has.
async fn stalled(ctx: &JobContext, limit: Duration) -> Duration {
    loop {
        let idle = ctx.idle();
        if idle >= limit {
            return idle;
        }
        tokio::time::sleep(limit - idle).await;
    }
}

/// Counts a finished job by kind and final state.
fn finished(job: &Job, state: JobState) {
    metrics::counter!("ctforge_jobs_finished_total", "kind" => job.kind.clone(), "state" => state.as_str())
        .increment(1);
}

/// Runs a step in its own task so a panic fails the step instead of killing the worker; the
/// task is aborted with its caller.
async fn run_isolated(
    handler: Arc<dyn JobHandler>,
    ctx: JobContext,
    step: &'static str,
) -> Result<(), StepError> {
    let mut set = JoinSet::new();
    set.spawn(async move { handler.run_step(&ctx, step).await });
    match set.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) if e.is_panic() => Err(StepError::failed(format!(
            "internal error: the step panicked ({})",
            panic_text(e.into_panic())
        ))),
        Some(Err(_)) | None => Err(StepError::Cancelled),
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}
