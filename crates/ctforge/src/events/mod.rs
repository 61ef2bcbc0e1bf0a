//! The progress event bus: job events fanned out to live viewers (SSE), in-process by default
//! ([`LocalBus`]) or over Redis pub/sub ([`RedisBus`]) when web and worker processes are
//! separate.
//!
//! Events are **persisted, then published** ([`JobProgress::emit`]): the store assigns the
//! sequence number (the SSE event id) so a viewer can always rebuild what it missed from the
//! database; the bus only makes delivery immediate. A [`Subscription`] that fell behind or whose
//! transport reconnected reports [`RecvError::Lagged`], meaning "re-read the store".

mod local;
mod redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::clock::Clock;
use crate::storage::model::{JobChange, JobEvent, NewJobEvent};
use crate::storage::{Store, StoreResult};

pub use self::local::LocalBus;
pub use self::redis::RedisBus;

/// Buffered events per topic before a slow subscriber is told it lagged.
pub const TOPIC_CAPACITY: usize = 1024;

/// Event kinds written by the job runner and the job API.
pub mod kind {
    /// A worker claimed the job (data: attempt, steps, resumed steps).
    pub const START: &str = "start";
    /// A step started (data: name, index, total).
    pub const STEP: &str = "step";
    /// A step completed (data: name, index, total, percent).
    pub const COMPLETE: &str = "complete";
    /// A log line of the running step (data: the line).
    pub const LOG: &str = "log";
    /// Percent within the running step (data: step_percent, percent).
    pub const PROGRESS: &str = "progress";
    /// The job succeeded (terminal).
    pub const DONE: &str = "done";
    /// The job failed (terminal; data: step, message).
    pub const ERROR: &str = "error";
    /// The job was cancelled (terminal).
    pub const CANCELLED: &str = "cancelled";
    /// A failed or cancelled job was put back in the queue (data: from_step).
    pub const RETRY: &str = "retry";

    /// Whether an event of this kind ends the job (until a retry).
    pub fn is_terminal(kind: &str) -> bool {
        matches!(kind, DONE | ERROR | CANCELLED)
    }
}

/// The bus topic of a job's events.
pub fn job_topic(job_id: i64) -> String {
    format!("job:{job_id}")
}

/// One progress event as published and as sent to SSE viewers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BusEvent {
    /// Job.
    pub job_id: i64,
    /// Sequence number within the job (from 1; the SSE id).
    pub seq: i64,
    /// Event kind (see [`kind`]).
    pub kind: String,
    /// Step it belongs to.
    pub step: Option<String>,
    /// Payload: the line for `log`, JSON for the others.
    pub data: serde_json::Value,
    /// Unix milliseconds.
    pub at: i64,
}

impl BusEvent {
    /// The event of a persisted record (log lines are stored raw, everything else as JSON).
    pub fn from_record(record: &JobEvent) -> Self {
        let data = if record.kind == kind::LOG {
            serde_json::Value::String(record.data.clone())
        } else {
            serde_json::from_str(&record.data)
                .unwrap_or_else(|_| serde_json::Value::String(record.data.clone()))
        };
        Self {
            job_id: record.job_id,
            seq: record.seq,
            kind: record.kind.clone(),
            step: record.step.clone(),
            data,
            at: record.created_at,
        }
    }

    /// Whether this event ends the job.
    pub fn is_terminal(&self) -> bool {
        kind::is_terminal(&self.kind)
    }
}

/// An event as delivered to subscribers: shared by all of them, its JSON computed once.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub event: BusEvent,
    json: std::sync::OnceLock<String>,
}

impl Delivery {
    /// Wraps an event.
    pub fn new(event: BusEvent) -> Self {
        Self {
            event,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The event as JSON, serialised by the first caller and shared with every other viewer.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.event).unwrap_or_else(|_| "{}".to_owned()))
    }
}

impl std::ops::Deref for Delivery {
    type Target = BusEvent;

    fn deref(&self) -> &BusEvent {
        &self.event
    }
}

/// A bus failure (Redis unreachable, subscription not confirmed in time).
#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusError(pub String);

/// Why [`Subscription::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Events may have been missed (slow subscriber or transport reconnect): re-read the store.
    #[error("subscriber lagged; events may have been missed")]
    Lagged,
    /// The bus is gone.
    #[error("bus closed")]
    Closed,
}

/// Publish/subscribe by topic. Delivery is best effort; the store is the truth.
#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Publishes `event` to every subscriber of `topic` (in every process for Redis).
    async fn publish(&self, topic: &str, event: &BusEvent) -> Result<(), BusError>;
    /// Subscribes to `topic`. When this returns, every later `publish` is delivered.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError>;
}

/// Opens the bus the configuration asks for: Redis when `redis_url` is set, else in-process.
pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<Arc<dyn EventBus>, BusError> {
    match redis_url {
        Some(url) => Ok(Arc::new(RedisBus::connect(url, prefix).await?)),
        None => Ok(Arc::new(LocalBus::new())),
    }
}

/// What a topic channel carries: an event, or `None` for "you may have missed events".
type Message = Option<Arc<Delivery>>;

/// Per-topic broadcast channels shared by both buses.
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    topics: Mutex<HashMap<String, broadcast::Sender<Message>>>,
}

impl Fanout {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Message>>> {
        self.topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A receiver on `topic`, creating the channel if needed.
    pub(crate) fn receiver(&self, topic: &str) -> broadcast::Receiver<Message> {
        let mut topics = self.lock();
        match topics.get(topic) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(TOPIC_CAPACITY);
                topics.insert(topic.to_owned(), tx);
                rx
            }
        }
    }

    /// Delivers to local subscribers of `topic`.
    pub(crate) fn deliver(&self, topic: &str, event: Message) {
        if let Some(tx) = self.lock().get(topic) {
            let _ = tx.send(event);
        }
    }

    /// Tells every subscriber it may have missed events.
    pub(crate) fn resync_all(&self) {
        for tx in self.lock().values() {
            let _ = tx.send(None);
        }
    }

    /// Removes `topic` if nobody listens any more; true if removed.
    pub(crate) fn release(&self, topic: &str) -> bool {
        let mut topics = self.lock();
        if topics.get(topic).is_some_and(|tx| tx.receiver_count() == 0) {
            topics.remove(topic);
            true
        } else {
            false
        }
    }

    /// Topics with subscribers.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// Called when a subscription ends, with its topic.
pub(crate) type OnRelease = Arc<dyn Fn(&str) + Send + Sync>;

/// A live subscription to one topic; dropping it unsubscribes.
pub struct Subscription {
    topic: String,
    rx: Option<broadcast::Receiver<Message>>,
    on_release: OnRelease,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        topic: &str,
        rx: broadcast::Receiver<Message>,
        on_release: OnRelease,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            rx: Some(rx),
            on_release,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next event; [`RecvError::Lagged`] means events may have been missed.
    pub async fn recv(&mut self) -> Result<Arc<Delivery>, RecvError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(RecvError::Closed);
        };
        match rx.recv().await {
            Ok(Some(event)) => Ok(event),
            Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => Err(RecvError::Lagged),
            Err(broadcast::error::RecvError::Closed) => Err(RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        (self.on_release)(&self.topic);
    }
}

/// Told when a job ends (after its terminal event is stored): notifications listen here. Must
/// not block; the job runner calls it inline.
pub trait JobObserver: Send + Sync + std::fmt::Debug {
    /// Job `job_id` failed (`failed`) or succeeded at `at` (Unix milliseconds).
    fn job_ended(&self, job_id: i64, failed: bool, at: i64);
}

/// Persist-then-publish emitter of job progress events.
#[derive(Clone, Debug)]
pub struct JobProgress {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn JobObserver>>,
}

impl JobProgress {
    /// An emitter writing to `store` and publishing on `bus`.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            bus,
            clock,
            observer: None,
        }
    }

    /// The same emitter, also telling `observer` when a job succeeds or fails.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Appends the event to the store (which assigns its sequence number), then publishes it.
    /// A publish failure is logged, not returned: the event is safe in the store and viewers
    /// rebuild from there.
    pub async fn emit(
        &self,
        job_id: i64,
        kind: &str,
        step: Option<&str>,
        data: serde_json::Value,
    ) -> StoreResult<i64> {
        let stored = match (&data, kind) {
            (serde_json::Value::String(line), kind::LOG) => line.clone(),
            _ => data.to_string(),
        };
        let seq = self
            .store
            .append_job_event(job_id, kind, step, &stored)
            .await?;
        let event = BusEvent {
            job_id,
            seq,
            kind: kind.to_owned(),
            step: step.map(str::to_owned),
            data,
            at: self.clock.now_ms(),
        };
        if let Err(e) = self.bus.publish(&job_topic(job_id), &event).await {
            tracing::warn!(job_id, seq, error = %e, "event persisted but not published");
        }
        if let Some(observer) = &self.observer
            && matches!(kind, kind::DONE | kind::ERROR)
        {
            observer.job_ended(job_id, kind == kind::ERROR, event.at);
        }
        Ok(seq)
    }

    /// A checkpoint of the job's row and the events announcing it, stored in one transaction
    /// ([`Store::checkpoint_job`]), then published in order. `NotFound` (nothing stored or
    /// published) when the change does not apply.
    pub async fn checkpoint(
        &self,
        job_id: i64,
        owner: &str,
        change: JobChange<'_>,
        events: Vec<(&str, Option<&str>, serde_json::Value)>,
    ) -> StoreResult<()> {
        let stored: Vec<NewJobEvent> = events
            .iter()
            .map(|(kind, step, data)| NewJobEvent {
                kind: (*kind).to_owned(),
                step: step.map(str::to_owned),
                data: data.to_string(),
            })
            .collect();
        let seqs = self
            .store
            .checkpoint_job(job_id, owner, change, &stored)
            .await?;
        let at = self.clock.now_ms();
        let topic = job_topic(job_id);
        for (seq, (kind, step, data)) in seqs.into_iter().zip(events) {
            let event = BusEvent {
                job_id,
                seq,
                kind: kind.to_owned(),
                step: step.map(str::to_owned),
                data,
                at,
            };
            if let Err(e) = self.bus.publish(&topic, &event).await {
                tracing::warn!(job_id, seq, error = %e, "event persisted but not published");
            }
            if let Some(observer) = &self.observer
                && matches!(kind, kind::DONE | kind::ERROR)
            {
                observer.job_ended(job_id, kind == kind::ERROR, at);
            }
        }
        Ok(())
    }

    /// Appends log lines of a step in one transaction, then publishes each.
    pub async fn emit_lines(
        &self,
        job_id: i64,
        step: Option<&str>,
        lines: Vec<String>,
    ) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let first = self
            .store
            .append_job_events(job_id, kind::LOG, step, &lines)
            .await?;
        let at = self.clock.now_ms();
        let topic = job_topic(job_id);
        for (seq, line) in (first..).zip(lines) {
            let event = BusEvent {
                job_id,
                seq,
                kind: kind::LOG.to_owned(),
                step: step.map(str::to_owned),
                data: serde_json::Value::String(line),
                at,
            };
            if let Err(e) = self.bus.publish(&topic, &event).await {
                tracing::warn!(job_id, seq, error = %e, "event persisted but not published");
                break;
            }
        }
        Ok(())
    }
}
