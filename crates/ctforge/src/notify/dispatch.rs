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

use tokio::sync::mpsc;

use super::config::NotificationsConfig;
use super::targets::Target;
use super::transport::{DeliveryError, Transport};
use super::{Event, EventContainer, EventKind, Signal, scrub};
use crate::clock::Clock;
use crate::containers::DownMap;
use crate::locks::Locks;
use crate::secrets::Keyring;
use crate::state::AppState;
use crate::storage::Store;
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
    link_from(config.server.public_url.as_deref(), path)
}

fn link_from(public_url: Option<&str>, path: &str) -> Option<String> {
    public_url.map(|base| format!("{}{path}", base.trim_end_matches('/')))
}

/// What the dispatcher works with, taken from `AppState` at start-up ([`Deps::of`]); unit
/// tests assemble their own (an in-memory store, a recording transport).
#[derive(Clone, Debug)]
pub struct Deps {
    /// Targets, deliveries, jobs and containers.
    pub store: Arc<dyn Store>,
    /// Deduplication leases.
    pub locks: Arc<dyn Locks>,
    /// Opens targets' secrets.
    pub keyring: Arc<Keyring>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// How notifications leave.
    pub transport: Arc<dyn Transport>,
    /// `[notifications]`.
    pub config: NotificationsConfig,
    /// `server.public_url`, for links.
    pub public_url: Option<String>,
    /// Clusters that do not answer.
    pub down: Arc<DownMap>,
}

impl Deps {
    /// The dependencies of `state`.
    pub fn of(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            locks: state.locks.clone(),
            keyring: state.keyring.clone(),
            clock: state.clock.clone(),
            transport: state.notifier.transport().clone(),
            config: state.config.notifications.clone(),
            public_url: state.config.server.public_url.clone(),
            down: state.down.clone(),
        }
    }
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
    state: Deps,
    limits: Mutex<RateLimit>,
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
}

/// Starts this process's dispatcher, unless one runs already. It stops with the application.
pub fn spawn(state: &AppState) -> Option<DispatchHandle> {
    let rx = state.notifier.take_receiver()?;
    Some(start(Deps::of(state), rx, state.shutdown.child_token()))
}

/// Runs a dispatcher over `rx` until `cancel` (or until every sender is gone).
pub fn start(
    deps: Deps,
    mut rx: mpsc::Receiver<Signal>,
    cancel: CancellationToken,
) -> DispatchHandle {
    let dispatcher = Arc::new(Dispatcher {
        state: deps,
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
    DispatchHandle { cancel, task }
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
        let config = &self.state.config;
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
        let window_ms = i64::try_from(self.state.config.dedupe_window_secs.saturating_mul(1000))
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
        let config = &self.state.config;
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
            event.link = link_from(self.state.public_url.as_deref(), "/");
            self.route(event).await;
        }
    }
}

/// One attempt to deliver `event` to `target`, stored with its outcome.
pub async fn deliver_once(
    state: &Deps,
    target: &Target,
    event: &Event,
    attempt: i64,
) -> Result<(), DeliveryError> {
    let budget = Duration::from_secs(state.config.timeout_secs.max(1) + 5);
    let result = match target.secret(&state.keyring) {
        Ok(secret) => {
            match tokio::time::timeout(budget, state.transport.send(target, secret.as_ref(), event))
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
    state: &Deps,
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
async fn job_event(state: &Deps, job_id: i64, failed: bool, at: i64) -> Option<Event> {
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
    let (kind, title, message) = if !failed && job.kind == crate::images::BAKE_JOB_KIND {
        let image = serde_json::from_str::<crate::images::BakePayload>(&job.payload_json)
            .ok()
            .map(|p| p.image_id);
        let label = match image {
            Some(id) => match state.store.get_image(id).await {
                Ok(i) => format!(
                    "image {id} of {}@{} on {}/{}",
                    i.template_name,
                    i.content_hash.get(..12).unwrap_or(&i.content_hash),
                    i.node,
                    i.storage
                ),
                Err(_) => format!("image {id}"),
            },
            None => "an image".to_owned(),
        };
        (
            EventKind::ImageBuilt,
            format!("Image built: {label}"),
            format!(
                "Job {job_id} built {label}; new containers of this template version clone it."
            ),
        )
    } else if failed {
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
    event.link = link_from(state.public_url.as_deref(), &format!("/jobs/{job_id}"));
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::notify::Notifier;
    use crate::notify::transport::RecordingTransport;
    use crate::storage::model::{ClusterInput, NotificationTargetInput};

    const T0: i64 = 1_700_000_000_000;

    async fn target(store: &dyn Store, name: &str, events: &str) -> i64 {
        store
            .insert_notification_target(&NotificationTargetInput {
                name: name.into(),
                kind: "webhook".into(),
                settings_json: r#"{"url":"https://hooks.example/x"}"#.into(),
                rules_json: format!(r#"{{"events":{events},"unreachable_after_mins":5}}"#),
                secret_sealed: None,
                enabled: true,
                source: "settings".into(),
                actor: "test".into(),
            })
            .await
            .unwrap()
    }

    async fn rows(store: &dyn Store, count: usize) -> Vec<NotificationDelivery> {
        for _ in 0..500 {
            let rows = store
                .list_notification_deliveries(None, None, 500)
                .await
                .unwrap();
            if rows.len() >= count {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {count} deliveries recorded");
    }

    fn event(key: &str) -> Event {
        Event::new(EventKind::ServiceDown, key, key, "went down", T0)
    }

    /// The dispatcher with a recording transport (failing its first send), a manual clock and
    /// the database lock backend: retries, deduplication, rules, the per-minute cap, the window
    /// passing, and the down map becoming `proxmox_unreachable`.
    #[tokio::test]
    async fn dedupes_retries_caps_and_watches_the_down_map() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::storage::connect(&url, clock.clone()).await.unwrap();
        store.migrate().await.unwrap();
        let hook = target(
            store.as_ref(),
            "hook",
            r#"["service_down","proxmox_unreachable"]"#,
        )
        .await;
        target(store.as_ref(), "jobs-only", r#"["job_failed"]"#).await;
        let cluster = store
            .insert_cluster(&ClusterInput {
                name: "lab".into(),
                url: "https://lab.invalid:8006".into(),
                token_id: "root@pam!t".into(),
                ssh_user: "root".into(),
                ssh_port: 22,
                ..Default::default()
            })
            .await
            .unwrap();
        let down = Arc::new(DownMap::default());
        down.mark_down(cluster, T0 - 6 * 60_000);
        let transport = Arc::new(RecordingTransport::failing_first(1));
        let notifier = Notifier::new(100, transport.clone());
        let deps = Deps {
            store: store.clone(),
            locks: Arc::new(crate::locks::DbLocks(store.clone())),
            keyring: Arc::new(Keyring::load_or_create(dir.path()).unwrap()),
            clock: clock.clone(),
            transport: transport.clone(),
            config: NotificationsConfig {
                max_per_minute: 4,
                retry_backoff_ms: 1,
                ..NotificationsConfig::default()
            },
            public_url: None,
            down,
        };
        let handle = start(
            deps,
            notifier.take_receiver().unwrap(),
            CancellationToken::new(),
        );

        // The first tick sees the cluster down for 6 minutes (rule: 5): one notification,
        // whose first attempt fails and is retried.
        let recorded = rows(store.as_ref(), 2).await;
        assert_eq!(
            recorded
                .iter()
                .map(|d| (d.attempt, d.status.as_str(), d.event_kind.as_str()))
                .collect::<Vec<_>>(),
            [
                (2, "sent", "proxmox_unreachable"),
                (1, "failed", "proxmox_unreachable")
            ]
        );
        assert!(recorded[1].error.as_deref().unwrap_or("").contains("503"));

        // 50 identical events: one send, to the target whose rules want it.
        for _ in 0..50 {
            notifier.emit(event("burst"));
        }
        // Five more distinct ones: with the two sends above, the cap of 4 a minute lets two
        // through and suppresses three (stored as such).
        for n in 0..5 {
            notifier.emit(event(&format!("other-{n}")));
        }
        let recorded = rows(store.as_ref(), 2 + 1 + 5).await;
        let of = |key: &str| recorded.iter().filter(|d| d.event_key == key).count();
        assert_eq!(of("burst"), 1);
        let count = |status: &str| {
            recorded
                .iter()
                .filter(|d| d.event_key.starts_with("other-") && d.status == status)
                .count()
        };
        assert_eq!((count("sent"), count("suppressed")), (2, 3));
        assert!(recorded.iter().all(|d| d.target_id == Some(hook)));
        let sent = transport.sent();
        assert_eq!(sent.iter().filter(|(_, e)| e.key == "burst").count(), 1);
        assert!(sent.iter().all(|(name, _)| name == "hook"));

        // Once the window has passed, the same key is sent again.
        clock.advance(601_000);
        notifier.emit(event("burst"));
        let recorded = rows(store.as_ref(), 2 + 1 + 5 + 1).await;
        assert_eq!(
            (recorded[0].event_key.as_str(), recorded[0].status.as_str()),
            ("burst", "sent")
        );
        handle.stop().await;
    }

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
