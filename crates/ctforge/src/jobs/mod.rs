//! Durable jobs: the [`JobHandler`] trait a pipeline implements, the [`JobRegistry`] of
//! handlers, the [`JobQueue`] (enqueue, cancel, retry) and the [`Worker`] that runs them.
//!
//! A job is a list of named steps. The worker checkpoints each one in the store
//! (`set_job_step` before, `complete_job_step` after), so a job whose worker died is reclaimed
//! when its lease expires and resumes at the first step not completed; steps must therefore be
//! idempotent. Every state change is a persisted, published progress event (see
//! [`crate::events`]).

pub mod access;
pub mod items;
pub mod log_cap;
pub mod wake;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::events::{JobProgress, kind};
use crate::storage::model::{Job, NewJob};
use crate::storage::{Store, StoreError, StoreResult};

pub use self::wake::WakeChannel;
pub use self::worker::{Worker, WorkerHandle, WorkerOptions};

pub use crate::status::JobState;

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The step failed; the message is shown to the user with the step name.
    #[error("{0}")]
    Failed(String),
    /// The step stopped because its context was cancelled (user cancel, lost lease, shutdown).
    #[error("cancelled")]
    Cancelled,
    /// The store failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

impl StepError {
    /// A failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(format!("{e:#}"))
    }
}

/// A kind of job: its steps and how to run each one.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The `jobs.kind` this handler runs.
    fn kind(&self) -> &'static str;
    /// The ordered steps of `job` (names are checkpointed, keep them stable).
    fn steps(&self, job: &Job) -> Vec<&'static str>;
    /// Runs one step. Must be idempotent: after a crash it may run again. Long steps should
    /// watch [`JobContext::cancelled`].
    async fn run_step(&self, ctx: &JobContext, step: &str) -> Result<(), StepError>;
    /// Longest `step` may go without progress (a log line, a percent, an event) before the
    /// worker's watchdog fails it; `None` takes the worker's default
    /// ([`WorkerOptions::step_timeout`]).
    fn step_timeout(&self, job: &Job, step: &str) -> Option<std::time::Duration> {
        let _ = (job, step);
        None
    }
    /// Called once when the job fails at `step` (clean-up hook); the default does nothing.
    async fn on_failed(&self, ctx: &JobContext, step: &str, error: &StepError) {
        let _ = (ctx, step, error);
    }
    /// Called before failed or cancelled `job` is queued again: may bring its payload up to
    /// date with records changed since the failed attempt (a [`JobError::Conflict`] refuses the
    /// retry with its message); the default keeps the job as it is.
    async fn prepare_retry(&self, job: &Job) -> Result<RetryPrep, JobError> {
        let _ = job;
        Ok(RetryPrep::default())
    }
}

/// What [`JobHandler::prepare_retry`] changes before a retry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryPrep {
    /// The job's new payload, if it changed.
    pub payload_json: Option<String>,
    /// Lines for the job log saying what changed since the last attempt.
    pub notes: Vec<String>,
}

/// What a step sees: the job, the store, progress reporting, cancellation.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The job as claimed.
    pub job: Job,
    /// Persistence.
    pub store: Arc<dyn Store>,
    progress: JobProgress,
    step: String,
    index: usize,
    total: usize,
    cancel: CancellationToken,
    owner: String,
    /// When the step last reported progress (the watchdog's reference).
    progress_at: Arc<Mutex<tokio::time::Instant>>,
    /// The step's log cap (shared by the context's clones).
    log_cap: Arc<Mutex<log_cap::LogCap>>,
}

impl JobContext {
    /// The step being run.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The worker holding the job's lease.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The job id.
    pub fn job_id(&self) -> i64 {
        self.job.id
    }

    fn touch(&self) {
        if let Ok(mut at) = self.progress_at.lock() {
            *at = tokio::time::Instant::now();
        }
    }

    /// How long since the step last reported progress.
    pub fn idle(&self) -> std::time::Duration {
        self.progress_at
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    /// Persists and publishes one log line of the running step (within the step's cap, see
    /// [`log_cap`]).
    pub async fn log(&self, line: impl Into<String>) -> StoreResult<()> {
        self.log_lines(vec![line.into()]).await
    }

    /// Persists and publishes log lines of the running step in one transaction, within the
    /// step's cap (the first lines, a running count while lines are dropped; the last lines
    /// when the step ends, [`JobContext::finish_log`]).
    pub async fn log_lines(&self, lines: Vec<String>) -> StoreResult<()> {
        self.touch();
        let store = self
            .log_cap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(lines, std::time::Instant::now());
        self.emit_lines(store).await
    }

    /// Stores what the cap held back when the step ends: the count of dropped lines and the
    /// last lines. The worker calls it after every step, whatever its outcome.
    pub async fn finish_log(&self) -> StoreResult<()> {
        let store = self
            .log_cap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .finish();
        self.emit_lines(store).await
    }

    async fn emit_lines(&self, lines: Vec<String>) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.progress
            .emit_lines(self.job.id, Some(&self.step), lines)
            .await
    }

    /// Reports progress within the running step (0–100); the event also carries the job's
    /// overall percent.
    pub async fn percent(&self, step_percent: u8) -> StoreResult<i64> {
        self.touch();
        let step_percent = step_percent.min(100);
        let overall = overall_percent(self.index, self.total, step_percent);
        self.progress
            .emit(
                self.job.id,
                kind::PROGRESS,
                Some(&self.step),
                json!({ "step_percent": step_percent, "percent": overall }),
            )
            .await
    }

    /// Emits a custom event for this step.
    pub async fn emit(&self, kind: &str, data: serde_json::Value) -> StoreResult<i64> {
        self.touch();
        self.progress
            .emit(self.job.id, kind, Some(&self.step), data)
            .await
    }

    /// Records the job's result (shown by `GET /api/v1/jobs/{id}` and the job page); kept
    /// across retries, so a retried step can read what the previous attempt achieved from
    /// [`JobContext::job`]`.result_json`.
    pub async fn set_result(&self, result: &serde_json::Value) -> StoreResult<()> {
        self.store
            .set_job_result(self.job.id, &self.owner, &result.to_string())
            .await
    }

    /// Whether the job was cancelled (by a user, a lost lease or a shutdown).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the job is cancelled; race it against long work with `tokio::select!`.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// The cancellation token itself (to hand to child tasks).
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// Overall percent when step `index` of `total` is `step_percent` done.
fn overall_percent(index: usize, total: usize, step_percent: u8) -> u8 {
    if total == 0 {
        return 100;
    }
    let done = index * 100 + usize::from(step_percent);
    u8::try_from(done / total).unwrap_or(100).min(100)
}

/// Job handlers by kind. Handlers can be added after start-up (they are looked up per claim).
#[derive(Default)]
pub struct JobRegistry {
    handlers: RwLock<HashMap<&'static str, Arc<dyn JobHandler>>>,
}

impl std::fmt::Debug for JobRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRegistry")
            .field("kinds", &self.kinds())
            .finish()
    }
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the handler of its kind.
    pub fn register(&self, handler: Arc<dyn JobHandler>) {
        self.handlers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(handler.kind(), handler);
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kind)
            .cloned()
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self
            .handlers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        kinds.sort_unstable();
        kinds
    }
}

/// Why a job operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job.
    #[error("job {0} not found")]
    NotFound(i64),
    /// The job is not in a state that allows the operation.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<JobError> for crate::error::AppError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound(id) => Self::NotFound(format!("job {id}")),
            JobError::Conflict(message) => Self::Conflict(message),
            JobError::Store(e) => e.into(),
        }
    }
}

/// Splits `completed_steps` (comma separated) into names.
pub fn completed_steps(job: &Job) -> Vec<String> {
    job.completed_steps
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The queue as the rest of the application sees it: enqueue, cancel, retry; plus what workers
/// of this process share (registry, wake-up, running jobs' cancellation tokens).
#[derive(Debug)]
pub struct JobQueue {
    store: Arc<dyn Store>,
    progress: JobProgress,
    registry: Arc<JobRegistry>,
    wake: Notify,
    channel: WakeChannel,
    /// Whether this process hears other processes' wake-ups (the subscription is open).
    listening: tokio::sync::watch::Sender<bool>,
    running: Mutex<HashMap<i64, CancellationToken>>,
}

impl JobQueue {
    /// A queue over `store`, reporting through `progress`, running `registry`'s handlers.
    pub fn new(store: Arc<dyn Store>, progress: JobProgress, registry: Arc<JobRegistry>) -> Self {
        Self {
            store,
            progress,
            registry,
            wake: Notify::new(),
            channel: WakeChannel::Local,
            listening: tokio::sync::watch::Sender::new(false),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The same queue telling workers of other processes through `channel` (chosen once at
    /// start-up, [`WakeChannel::choose`]).
    pub fn with_channel(mut self, channel: WakeChannel) -> Self {
        self.channel = channel;
        self
    }

    /// How workers of other processes hear of new jobs.
    pub fn channel(&self) -> &WakeChannel {
        &self.channel
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The progress emitter.
    pub fn progress(&self) -> &JobProgress {
        &self.progress
    }

    /// The handlers.
    pub fn registry(&self) -> &Arc<JobRegistry> {
        &self.registry
    }

    /// Wakes idle workers of this process and, through the queue's [`WakeChannel`], of every
    /// other process: a job became claimable (enqueued, retried).
    pub async fn wake(&self) {
        self.wake_local();
        self.channel.send(self.store.as_ref()).await;
    }

    /// Resolves once this process's workers hear wake-ups from other processes (their
    /// subscription to the queue's [`WakeChannel`] is open); at once for a local channel.
    pub async fn listening(&self) {
        if matches!(self.channel, WakeChannel::Local) {
            return;
        }
        let mut rx = self.listening.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }

    pub(crate) fn set_listening(&self, open: bool) {
        self.listening.send_replace(open);
    }

    /// Wakes idle workers of this process only.
    pub(crate) fn wake_local(&self) {
        self.wake.notify_waiters();
        // A worker between its claim and its wait finds the stored permit.
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Enqueues a job and wakes the workers.
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<i64> {
        let id = self.store.enqueue_job(job).await?;
        self.wake().await;
        Ok(id)
    }

    /// Cancels a queued or running job: it is marked `cancelled` at once; a step running in
    /// this process sees its context cancelled immediately, one in another process when its
    /// lease renewal fails (or at once with the Redis bus, which carries the `cancelled` event).
    pub async fn cancel(&self, job_id: i64, by: &str) -> Result<Job, JobError> {
        let job = self.get(job_id).await?;
        if job.state.is_finished() {
            return Err(JobError::Conflict(format!(
                "job {job_id} is already {}",
                job.state
            )));
        }
        self.progress
            .emit(
                job_id,
                kind::CANCELLED,
                job.current_step.as_deref(),
                json!({ "by": by }),
            )
            .await?;
        self.store
            .finish_job(
                job_id,
                JobState::Cancelled,
                Some(&format!("cancelled by {by}")),
            )
            .await?;
        if let Some(token) = self.lock_running().get(&job_id) {
            token.cancel();
        }
        self.get(job_id).await
    }

    /// Puts a failed or cancelled job back in the queue; completed steps stay completed, so it
    /// resumes at the step that failed.
    pub async fn retry(&self, job_id: i64, by: &str) -> Result<Job, JobError> {
        let job = self.get(job_id).await?;
        if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
            return Err(JobError::Conflict(format!(
                "only failed or cancelled jobs can be retried; job {job_id} is {}",
                job.state
            )));
        }
        let keep = completed_steps(&job);
        let prep = match self.registry.get(&job.kind) {
            Some(handler) => handler.prepare_retry(&job).await?,
            None => RetryPrep::default(),
        };
        if let Some(payload) = &prep.payload_json {
            match self.store.set_job_payload(job_id, payload).await {
                Ok(()) => {}
                Err(StoreError::NotFound) => {
                    return Err(JobError::Conflict(format!(
                        "job {job_id} changed state; reload and try again"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // The retry event is stored before the job is claimable again: a worker that picks it
        // up at once must find its `start` after the `retry` in the log.
        self.progress
            .emit(
                job_id,
                kind::RETRY,
                job.current_step.as_deref(),
                json!({ "by": by, "from_step": job.current_step, "kept": keep }),
            )
            .await?;
        self.progress
            .emit_lines(job_id, job.current_step.as_deref(), prep.notes)
            .await?;
        match self.store.retry_job(job_id, &keep).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(JobError::Conflict(format!(
                    "job {job_id} changed state; reload and try again"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.wake().await;
        self.get(job_id).await
    }

    async fn get(&self, job_id: i64) -> Result<Job, JobError> {
        match self.store.get_job(job_id).await {
            Ok(job) => Ok(job),
            Err(StoreError::NotFound) => Err(JobError::NotFound(job_id)),
            Err(e) => Err(e.into()),
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CancellationToken>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn track(&self, job_id: i64, token: CancellationToken) {
        self.lock_running().insert(job_id, token);
    }

    pub(crate) fn untrack(&self, job_id: i64) {
        self.lock_running().remove(&job_id);
    }
}

#[cfg(test)]
mod tests {
    use super::overall_percent;

    #[test]
    fn overall_percent_spans_steps() {
        assert_eq!(overall_percent(0, 4, 0), 0);
        assert_eq!(overall_percent(1, 4, 50), 37);
        assert_eq!(overall_percent(3, 4, 100), 100);
        assert_eq!(overall_percent(0, 0, 0), 100);
    }
}
