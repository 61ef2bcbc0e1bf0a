//! Wake-ups of idle workers when a job becomes claimable (submitted, retried), so a job starts
//! when it is submitted rather than at a worker's next poll.
//!
//! In the process that enqueues, [`super::JobQueue::wake`] notifies its own workers directly
//! (a `Notify`). Workers in other processes hear of it through the [`WakeChannel`] chosen once
//! at start-up: Redis pub/sub on [`WAKE_TOPIC`] of the event bus where Redis is configured,
//! otherwise PostgreSQL `NOTIFY`/`LISTEN` ([`crate::storage::Store::signal_jobs`]); SQLite has
//! only the one process. Signals are best effort: a worker still polls (`idle_poll`) for
//! whatever a lost signal did not announce.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::JobQueue;
use crate::events::{BusEvent, EventBus, RecvError};
use crate::storage::{Backend, Store};

/// The event-bus topic of job wake-ups.
pub const WAKE_TOPIC: &str = "jobs:wake";

/// How workers of other processes are told about a new job.
#[derive(Clone, Debug, Default)]
pub enum WakeChannel {
    /// Only this process runs workers (SQLite, tests).
    #[default]
    Local,
    /// PostgreSQL `NOTIFY` / `LISTEN` on the shared database.
    Database,
    /// The (Redis) event bus, topic [`WAKE_TOPIC`].
    Bus(Arc<dyn EventBus>),
}

impl WakeChannel {
    /// The channel for a deployment: the bus when it crosses processes (Redis), else the
    /// database when it is shared (PostgreSQL), else none.
    pub fn choose(redis: bool, store: &dyn Store, bus: &Arc<dyn EventBus>) -> Self {
        if redis {
            Self::Bus(bus.clone())
        } else if store.backend() == Backend::Postgres {
            Self::Database
        } else {
            Self::Local
        }
    }

    /// Tells the other processes (best effort; a failure is logged, polling covers it).
    pub(crate) async fn send(&self, store: &dyn Store) {
        let result = match self {
            Self::Local => Ok(()),
            Self::Database => store.signal_jobs().await.map_err(|e| e.to_string()),
            Self::Bus(bus) => bus
                .publish(WAKE_TOPIC, &wake_event())
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot signal workers of other processes; they will find the job at their next poll");
        }
    }
}

fn wake_event() -> BusEvent {
    BusEvent {
        job_id: 0,
        seq: 0,
        kind: "wake".to_owned(),
        step: None,
        data: serde_json::Value::Null,
        at: 0,
    }
}

/// Forwards the channel's signals to this process's idle workers until `stop`. Returns at once
/// for [`WakeChannel::Local`]. A broken subscription is re-opened after a pause (meanwhile the
/// workers poll).
pub(crate) async fn listen(queue: Arc<JobQueue>, stop: CancellationToken) {
    loop {
        let ended = tokio::select! {
            ended = listen_once(&queue) => ended,
            () = stop.cancelled() => {
                queue.set_listening(false);
                return;
            }
        };
        match ended {
            Listen::Nothing => return,
            Listen::Broken(reason) => {
                queue.set_listening(false);
                tracing::warn!(error = %reason, "job wake-up subscription lost; re-opening (workers poll meanwhile)");
                queue.wake_local();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// The subscription is open: anything announced before it is found by one look at the queue.
fn subscribed(queue: &JobQueue) {
    queue.set_listening(true);
    queue.wake_local();
}

enum Listen {
    /// The channel has nothing to listen to.
    Nothing,
    /// The subscription failed or ended.
    Broken(String),
}

async fn listen_once(queue: &JobQueue) -> Listen {
    match queue.channel() {
        WakeChannel::Local => Listen::Nothing,
        WakeChannel::Database => {
            let mut signals = match queue.store().job_signals().await {
                Ok(Some(signals)) => signals,
                Ok(None) => return Listen::Nothing,
                Err(e) => return Listen::Broken(e.to_string()),
            };
            subscribed(queue);
            loop {
                match signals.next().await {
                    Ok(true) => queue.wake_local(),
                    // The connection dropped (it reconnects on the next call) and signals may
                    // be lost: look at the queue anyway, without spinning on a dead server.
                    Ok(false) => {
                        queue.wake_local();
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Listen::Broken(e.to_string()),
                }
            }
        }
        WakeChannel::Bus(bus) => {
            let mut subscription = match bus.subscribe(WAKE_TOPIC).await {
                Ok(subscription) => subscription,
                Err(e) => return Listen::Broken(e.to_string()),
            };
            subscribed(queue);
            loop {
                match subscription.recv().await {
                    Ok(_) | Err(RecvError::Lagged) => queue.wake_local(),
                    Err(RecvError::Closed) => return Listen::Broken("bus closed".to_owned()),
                }
            }
        }
    }
}
