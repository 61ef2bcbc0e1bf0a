//! The dispatcher: the background task that turns queued signals into deliveries, off every
//! request and job path. One per process (it takes the [`Notifier`](super::Notifier)'s
//! receiver), started with the server and with `ctforge worker`.
//!
//! For each event: the enabled targets whose rules want it; per target, deduplication (the first
//! event of a key takes the lease `notify:<target>:<key>` for `dedupe_window_secs` in
//! [`crate::locks::Locks`]; later ones within the window are dropped — across processes, since
//! the lease lives in the database or Redis); a per-target cap per minute (over it, the
//! attempt is stored as `suppressed`); then a delivery task with bounded concurrency that
//! retries transient failures with backoff (`retry_backoff_ms`, ×4 each time). Every attempt is
//! stored (`notification_deliveries`) with its error. Every 30 s the dispatcher also looks at the
//! cluster down map and emits `proxmox_unreachable` for clusters down for a minute or more.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::targets::Target;
use super::transport::DeliveryError;
use super::{Event, EventContainer, EventKind, Signal, scrub};
use crate::state::AppState;
use crate::storage::model::NotificationDelivery;

/// Deliveries in flight per process.
const CONCURRENCY: usize = 8;
/// How often the down map is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(30);

/// A running dispatcher.
pub struct DispatchHandle {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DispatchHandle {
    /// Stops the dispatcher (deliveries waiting for a retry are abandoned) and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// A link into ctforge for `path`, when `server.public_url` is configured.
pub fn link(config: &crate::config::Config, path: &str) -> Option<String> {
    config
        .server
        .public_url
        .as_deref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')))
}

/// At most `limit` sends per target within any minute.
#[derive(Debug, Default)]
pub struct RateLimit {
    sent: HashMap<i64, VecDeque<i64>>,
}

impl RateLimit {
    /// Whether target `id` may send at `now_ms` (and counts it if so).
    pub fn allow(&mut self, id: i64, now_ms: i64, limit: u32) -> bool {
        let window = self.sent.entry(id).or_default();
        while window.front().is_some_and(|t| *t <= now_ms - 60_000) {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now_ms);
        true
    }
}

struct Dispatcher {
    state: AppState,
    limits: Mutex<RateLimit>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
}

/// Starts this process's dispatcher, unless one runs already. It stops with the application.
pub fn spawn(state: &AppState) -> Option<DispatchHandle> {
    let mut rx = state.notifier.take_receiver()?;
    let cancel = state.shutdown.child_token();
    let dispatcher = Arc::new(Dispatcher {
        state: state.clone(),
        limits: Mutex::default(),
        permits: Arc::new(Semaphore::new(CONCURRENCY)),
        cancel: cancel.clone(),
    });
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        let mut watch = tokio::time::interval(WATCH_EVERY);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                signal = rx.recv() => match signal {
                    Some(signal) => dispatcher.handle(signal).await,
                    None => break,
                },
                _ = watch.tick() => dispatcher.watch_unreachable().await,
            }
        }
        tracing::debug!("notification dispatcher stopped");
    });
    Some(DispatchHandle { cancel, task })
}

impl Dispatcher {
    async fn handle(self: &Arc<Self>, signal: Signal) {
        let event = match signal {
            Signal::Event(event) => Some(*event),
            Signal::JobEnded { job_id, failed, at } => {
                job_event(&self.state, job_id, failed, at).await
            }
        };
        if let Some(event) = event {
            self.route(event).await;
        }
    }

    async fn route(self: &Arc<Self>, event: Event) {
        let rows = match self.state.store.list_notification_targets().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, event = %event.key, "cannot read notification targets; event not sent");
                return;
            }
        };
        let config = &self.state.config.notifications;
        let event = Arc::new(event);
        for row in rows.iter().filter(|r| r.enabled) {
            let target = match Target::from_row(row) {
                Ok(target) => target,
                Err(e) => {
                    tracing::warn!(error = %e, "notification target skipped");
                    continue;
                }
            };
            if !target.rules.wants(&event) {
                continue;
            }
            if !self.first_in_window(&target, &event).await {
                metrics::counter!("ctforge_notifications_deduplicated_total").increment(1);
                continue;
            }
            let now = self.state.clock.now_ms();
            let allowed = self
                .limits
                .lock()
                .map(|mut l| l.allow(target.id, now, config.max_per_minute))
                .unwrap_or(true);
            if !allowed {
                record(
                    &self.state,
                    &target,
                    &event,
                    1,
                    "suppressed",
                    Some(format!(
                        "rate limit: more than {} notifications to this target within a minute",
                        config.max_per_minute
                    )),
                )
                .await;
                continue;
            }
            let this = self.clone();
            let event = event.clone();
            tokio::spawn(async move {
                let Ok(_permit) = this.permits.clone().acquire_owned().await else {
                    return;
                };
                this.deliver(&target, &event).await;
            });
        }
    }

    /// Whether `event` is the first of its key for `target` within the window.
    async fn first_in_window(&self, target: &Target, event: &Event) -> bool {
        let window_ms = i64::try_from(
            self.state
                .config
                .notifications
                .dedupe_window_secs
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        if window_ms <= 0 {
            return true;
        }
        let name = format!("notify:{}:{}", target.id, event.key);
        let owner = uuid::Uuid::new_v4().simple().to_string();
        match self.state.locks.try_lock(&name, &owner, window_ms).await {
            Ok(first) => first,
            Err(e) => {
                // A duplicate is better than a missed alert.
                tracing::warn!(error = %e, "cannot check notification deduplication; sending");
                true
            }
        }
    }

    async fn deliver(&self, target: &Target, event: &Event) {
        let config = &self.state.config.notifications;
        let mut wait = Duration::from_millis(config.retry_backoff_ms);
        for attempt in 1..=i64::from(config.retries) + 1 {
            match deliver_once(&self.state, target, event, attempt).await {
                Ok(()) => return,
                Err(e) if !e.retryable() || attempt > i64::from(config.retries) => {
                    tracing::warn!(target = %target.name, event = %event.key, attempt, error = %e, "notification not delivered");
                    return;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = wait.saturating_mul(4);
        }
    }

    async fn watch_unreachable(self: &Arc<Self>) {
        let now = self.state.clock.now_ms();
        for (cluster_id, since) in self.state.down.snapshot() {
            let mins = u64::try_from((now - since) / 60_000).unwrap_or(0);
            if mins == 0 {
                continue;
            }
            let name = match self.state.store.get_cluster(cluster_id).await {
                Ok(cluster) => cluster.name,
                Err(_) => continue,
            };
            let mut event = Event::new(
                EventKind::ProxmoxUnreachable,
                format!("proxmox_unreachable:{cluster_id}:{since}"),
                format!("Proxmox cluster {name} unreachable for {mins} min"),
                format!(
                    "ctforge has had no answer from cluster {name} for {mins} minutes; guests on it cannot be managed until it answers again."
                ),
                now,
            );
            event.cluster = Some(name);
            event.down_for_mins = Some(mins);
            event.link = link(&self.state.config, "/");
            self.route(event).await;
        }
    }
}

/// One attempt to deliver `event` to `target`, stored with its outcome.
pub async fn deliver_once(
    state: &AppState,
    target: &Target,
    event: &Event,
    attempt: i64,
) -> Result<(), DeliveryError> {
    let budget = Duration::from_secs(state.config.notifications.timeout_secs.max(1) + 5);
    let result = match target.secret(&state.keyring) {
        Ok(secret) => {
            match tokio::time::timeout(
                budget,
                state
                    .notifier
                    .transport()
                    .send(target, secret.as_ref(), event),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::Timeout(budget.as_secs())),
            }
        }
        Err(e) => Err(e),
    };
    let (status, error) = match &result {
        Ok(()) => ("sent", None),
        Err(e) => ("failed", Some(scrub(&e.to_string()))),
    };
    metrics::counter!("ctforge_notifications_total", "kind" => target.kind.as_str(), "status" => status)
        .increment(1);
    record(state, target, event, attempt, status, error).await;
    result
}

async fn record(
    state: &AppState,
    target: &Target,
    event: &Event,
    attempt: i64,
    status: &str,
    error: Option<String>,
) {
    let row = NotificationDelivery {
        id: 0,
        target_id: Some(target.id),
        target_name: target.name.clone(),
        event_kind: event.event.as_str().to_owned(),
        event_key: event.key.clone(),
        title: event.title.clone(),
        attempt,
        status: status.to_owned(),
        error,
        created_at: 0,
    };
    if let Err(e) = state.store.add_notification_delivery(&row).await {
        tracing::warn!(error = %e, target = %target.name, "cannot record a notification delivery");
    }
}

/// The event of a job's end, read from the store: what it did, on which container, and (for a
/// failure) its scrubbed error. `None` when the job is gone.
async fn job_event(state: &AppState, job_id: i64, failed: bool, at: i64) -> Option<Event> {
    let job = state.store.get_job(job_id).await.ok()?;
    let container = match job.container_id {
        Some(id) => state.store.get_container(id).await.ok(),
        None => None,
    };
    let cluster = match &container {
        Some(c) => state
            .store
            .get_cluster(c.cluster_id)
            .await
            .ok()
            .map(|c| c.name),
        None => None,
    };
    let what = match job.kind.as_str() {
        crate::provisioning::submit::JOB_KIND => "create",
        crate::containers::bulk::JOB_KIND => "bulk action",
        other => other,
    };
    let on = container
        .as_ref()
        .map(|c| format!(" {}", c.hostname))
        .unwrap_or_default();
    let (kind, title, message) = if failed {
        (
            EventKind::JobFailed,
            format!("Job {job_id} ({what}{on}) failed"),
            scrub(job.error.as_deref().unwrap_or("the job failed")),
        )
    } else {
        (
            EventKind::JobFinished,
            format!("Job {job_id} ({what}{on}) finished"),
            format!("Job {job_id} ({what}{on}) finished successfully."),
        )
    };
    let mut event = Event::new(
        kind,
        format!("{}:{job_id}", kind.as_str()),
        title,
        message,
        at,
    );
    event.job_id = Some(job_id);
    event.cluster = cluster;
    event.container = container.map(|c| EventContainer {
        id: Some(c.id),
        vmid: Some(c.vmid),
        hostname: Some(c.hostname),
        node: Some(c.node),
    });
    event.link = link(&state.config, &format!("/jobs/{job_id}"));
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_per_target_per_minute() {
        let mut limit = RateLimit::default();
        assert!(limit.allow(1, 0, 2));
        assert!(limit.allow(1, 10, 2));
        assert!(!limit.allow(1, 20, 2), "third within the minute");
        assert!(limit.allow(2, 20, 2), "another target has its own budget");
        assert!(limit.allow(1, 60_001, 2), "the first one left the window");
    }
}
