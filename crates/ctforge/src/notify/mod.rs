//! Notifications: telling people when something happens while nobody watches.
//!
//! - **Events** ([`Event`], [`EventKind`]): job failed / finished (from the job runner's
//!   terminal progress events, [`crate::events::JobObserver`]), service down / up (from
//!   monitoring, `containers::monitor::apply`), Proxmox unreachable for more than N minutes (from
//!   the cluster down map, checked by the dispatcher), drift detected (from monitoring, when a
//!   container's managed files start differing from what was applied: [`drift_event`]) and
//!   image built (the kind exists and [`Notifier::emit`] is the hook).
//! - **Targets** ([`targets`]): webhook (JSON body, optional `X-Ctforge-Signature: sha256=<hex>`
//!   HMAC over the body), ntfy, Gotify, e-mail over SMTP; each with its rules (which kinds).
//!   Stored in the database (Settings → Notifications, `/api/v1/notifications/targets`) or
//!   created on start from `[[notifications.targets]]`; secrets sealed with the keyring.
//! - **Delivery** ([`dispatch`]): off the request path. [`Notifier::emit`] puts the event on a
//!   bounded queue (full: dropped and counted, never blocking the emitter); the dispatcher
//!   matches targets, deduplicates per target and event key within a window (a lease on
//!   `notify:<target>:<key>` in [`crate::locks::Locks`], so it holds across processes), caps
//!   each target per minute, and delivers through the [`transport::Transport`] chosen at
//!   start-up, retrying with backoff; every attempt is stored with its error.
//!
//! Content rule: a notification carries ids, names and messages, never a credential; job error
//! texts pass through [`scrub`] before they leave.

pub mod config;
pub mod dispatch;
pub mod targets;
pub mod transport;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::transport::Transport;

/// What happened, as a rule names it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A job failed.
    JobFailed,
    /// A job finished successfully.
    JobFinished,
    /// A monitored service stopped running.
    ServiceDown,
    /// A monitored service is running again.
    ServiceUp,
    /// A container's managed files drifted from what was applied (monitoring).
    DriftDetected,
    /// An image was built (hook; no source yet).
    ImageBuilt,
    /// A Proxmox cluster has not answered for longer than the rule's minutes.
    ProxmoxUnreachable,
    /// A test sent by an admin (never matched by rules).
    Test,
}

impl EventKind {
    /// The kinds a rule can select, in display order.
    pub const RULES: [EventKind; 7] = [
        EventKind::JobFailed,
        EventKind::JobFinished,
        EventKind::ServiceDown,
        EventKind::ServiceUp,
        EventKind::DriftDetected,
        EventKind::ImageBuilt,
        EventKind::ProxmoxUnreachable,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobFailed => "job_failed",
            Self::JobFinished => "job_finished",
            Self::ServiceDown => "service_down",
            Self::ServiceUp => "service_up",
            Self::DriftDetected => "drift_detected",
            Self::ImageBuilt => "image_built",
            Self::ProxmoxUnreachable => "proxmox_unreachable",
            Self::Test => "test",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Self::JobFailed => "Job failed",
            Self::JobFinished => "Job finished",
            Self::ServiceDown => "Service down",
            Self::ServiceUp => "Service up",
            Self::DriftDetected => "Drift detected",
            Self::ImageBuilt => "Image built",
            Self::ProxmoxUnreachable => "Proxmox unreachable",
            Self::Test => "Test",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::RULES
            .into_iter()
            .chain([Self::Test])
            .find(|k| k.as_str() == text.trim())
    }
}

/// The container an event is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventContainer {
    /// ctforge's record id, if ctforge manages it.
    pub id: Option<i64>,
    /// Proxmox VMID.
    pub vmid: Option<i64>,
    /// Hostname.
    pub hostname: Option<String>,
    /// Node.
    pub node: Option<String>,
}

/// One notification as every target receives it (the webhook's JSON body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// What happened.
    pub event: EventKind,
    /// Deduplication key: the same key to the same target is sent once per window.
    pub key: String,
    /// One line.
    pub title: String,
    /// Details (never a credential).
    pub message: String,
    /// Cluster name.
    pub cluster: Option<String>,
    /// The container, if the event is about one.
    pub container: Option<EventContainer>,
    /// The job, if the event is about one.
    pub job_id: Option<i64>,
    /// Service unit, for service events.
    pub unit: Option<String>,
    /// For `proxmox_unreachable`: minutes without an answer.
    pub down_for_mins: Option<u64>,
    /// A link into ctforge (needs `server.public_url`).
    pub link: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

impl Event {
    /// An event of `kind` with `key`, `title` and `message`; the rest empty.
    pub fn new(
        kind: EventKind,
        key: impl Into<String>,
        title: impl Into<String>,
        message: impl Into<String>,
        at: i64,
    ) -> Self {
        Self {
            event: kind,
            key: key.into(),
            title: title.into(),
            message: message.into(),
            cluster: None,
            container: None,
            job_id: None,
            unit: None,
            down_for_mins: None,
            link: None,
            at,
        }
    }
}

/// The notification of a monitoring transition (`service_down` / `service_up`) of `unit` on
/// `container`; `None` for another kind.
pub fn service_event(
    config: &crate::config::Config,
    container: &crate::storage::model::Container,
    cluster: Option<&str>,
    kind: &str,
    unit: &str,
    message: &str,
    at: i64,
) -> Option<Event> {
    let (kind, verb) = match kind {
        "service_down" => (EventKind::ServiceDown, "is down"),
        "service_up" => (EventKind::ServiceUp, "is up again"),
        _ => return None,
    };
    let mut event = Event::new(
        kind,
        format!("{}:{}:{unit}", kind.as_str(), container.id),
        format!("{unit} {verb} on {}", container.hostname),
        scrub(message),
        at,
    );
    event.cluster = cluster.map(str::to_owned);
    event.unit = Some(unit.to_owned());
    event.container = Some(EventContainer {
        id: Some(container.id),
        vmid: Some(container.vmid),
        hostname: Some(container.hostname.clone()),
        node: Some(container.node.clone()),
    });
    event.link = dispatch::link(config, &format!("/containers/{}", container.id));
    Some(event)
}

/// The `drift_detected` event of a container whose managed files `files` (targets) now differ
/// from what ctforge applied; keyed per container and file set, so a new drift notifies again
/// while the same drift seen by every check is deduplicated.
pub fn drift_event(
    config: &crate::config::Config,
    container: &crate::storage::model::Container,
    cluster: Option<&str>,
    files: &[String],
    at: i64,
) -> Event {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(files.join("\n").as_bytes());
    let key: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let kind = EventKind::DriftDetected;
    let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
    let more = files.len().saturating_sub(shown.len());
    let mut event = Event::new(
        kind,
        format!("{}:{}:{key}", kind.as_str(), container.id),
        format!("{} drifted from its template", container.hostname),
        scrub(&format!(
            "{} managed file(s) changed in the container since they were applied: {}{}",
            files.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )),
        at,
    );
    event.cluster = cluster.map(str::to_owned);
    event.container = Some(EventContainer {
        id: Some(container.id),
        vmid: Some(container.vmid),
        hostname: Some(container.hostname.clone()),
        node: Some(container.node.clone()),
    });
    event.link = dispatch::link(
        config,
        &format!("/containers/{}?tab=template", container.id),
    );
    event
}

/// What travels on the queue: a ready event, or a job's end (resolved by the dispatcher, which
/// reads the job from the store off the worker's path).
#[derive(Clone, Debug)]
pub enum Signal {
    /// A ready event.
    Event(Box<Event>),
    /// A job ended.
    JobEnded {
        /// The job.
        job_id: i64,
        /// Failed (else succeeded).
        failed: bool,
        /// When.
        at: i64,
    },
}

/// The emitting side: cheap, never blocks, carried in `AppState::notifier`.
pub struct Notifier {
    tx: mpsc::Sender<Signal>,
    rx: Mutex<Option<mpsc::Receiver<Signal>>>,
    transport: Arc<dyn Transport>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("transport", &self.transport)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier with a queue of `capacity` events, delivering through `transport`.
    pub fn new(capacity: usize, transport: Arc<dyn Transport>) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            transport,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `event` for delivery. A full queue drops it (counted and logged): an emitter is
    /// never slowed down by notifications.
    pub fn emit(&self, event: Event) {
        self.signal(Signal::Event(Box::new(event)));
    }

    fn signal(&self, signal: Signal) {
        if let Err(e) = self.tx.try_send(signal) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("ctforge_notifications_dropped_total").increment(1);
            tracing::warn!(error = %e, "notification queue full or closed; event dropped");
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The transport chosen at start-up.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The receiving end, once (the process's dispatcher takes it).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Signal>> {
        self.rx.lock().ok()?.take()
    }
}

impl crate::events::JobObserver for Notifier {
    fn job_ended(&self, job_id: i64, failed: bool, at: i64) {
        self.signal(Signal::JobEnded { job_id, failed, at });
    }
}

/// Words after which a value is a credential (`password=…`, `token: …`).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "ticket",
    "authorization",
    "bearer",
];

/// Longest message a notification carries.
const MAX_MESSAGE: usize = 1000;

/// `text` with credential-looking values replaced by `<redacted>` (`password=x`, `token: x`,
/// `Bearer x`, passwords in URLs), cut to a reasonable length. Applied to every free text that
/// comes from elsewhere (job errors, service messages) before it leaves ctforge.
pub fn scrub(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut redact_next = false;
    for word in text.split(' ') {
        let lower = word.to_ascii_lowercase();
        if redact_next && !word.is_empty() {
            // `Authorization: Bearer <value>`: the scheme stays, the value goes.
            if matches!(lower.as_str(), "bearer" | "basic") {
                out.push(word.to_owned());
            } else {
                out.push("<redacted>".to_owned());
                redact_next = false;
            }
            continue;
        }
        let names_secret = SECRET_WORDS.iter().any(|w| lower.contains(w));
        if names_secret {
            if let Some(pos) = word.find(['=', ':'])
                && pos + 1 < word.len()
                && !word[pos + 1..].starts_with("//")
            {
                out.push(format!("{}<redacted>", &word[..=pos]));
                continue;
            }
            if word.ends_with(':') || word.ends_with('=') || lower == "bearer" {
                redact_next = true;
            }
            out.push(word.to_owned());
            continue;
        }
        if word.contains("://")
            && let Ok(mut url) = url::Url::parse(word.trim_end_matches([',', '.', ';', ')']))
            && url.password().is_some()
        {
            let _ = url.set_password(Some("<redacted>"));
            out.push(url.to_string());
            continue;
        }
        out.push(word.to_owned());
    }
    let joined = out.join(" ");
    if joined.chars().count() > MAX_MESSAGE {
        let cut: String = joined.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_credentials_and_keeps_the_rest() {
        let cases = [
            ("step install failed: exit 1", "step install failed: exit 1"),
            (
                "login with password=hunter2 failed",
                "login with password=<redacted> failed",
            ),
            (
                "PASSWORD: hunter2 rejected",
                "PASSWORD: <redacted> rejected",
            ),
            (
                "header Authorization: Bearer abc.def",
                "header Authorization: Bearer <redacted>",
            ),
            ("use Bearer abc", "use Bearer <redacted>"),
            (
                "cannot fetch https://u:pw@git.example/x.git, giving up",
                "cannot fetch https://u:%3Credacted%3E@git.example/x.git giving up",
            ),
            ("api_token=PVEAPIToken=x", "api_token=<redacted>"),
        ];
        for (input, want) in cases {
            let got = scrub(input);
            assert!(!got.contains("hunter2") && !got.contains("pw@"), "{got}");
            if !input.contains("://") {
                assert_eq!(got, want, "{input}");
            }
        }
        assert!(scrub(&"x".repeat(5000)).chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn event_kinds_round_trip() {
        for kind in EventKind::RULES {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
