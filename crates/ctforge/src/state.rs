//! Shared application state handed to every request handler and background task.

use std::sync::Arc;
use std::time::Instant;

use crate::auth::limiter::LoginLimiter;
use crate::auth::permissions::PermissionCache;
use crate::auth::session::SessionStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::containers::DownMap;
use crate::events::EventBus;
use crate::guest::GuestConnector;
use crate::jobs::JobQueue;
use crate::locks::Locks;
use crate::notify::Notifier;
use crate::pve::PveConnector;
use crate::secrets::Keyring;
use crate::storage::Store;

/// What handlers share. Cheap to clone; every external system sits behind a trait chosen once
/// at start-up.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Sessions (database or Redis).
    pub sessions: Arc<dyn SessionStore>,
    /// Failed sign-in tracking.
    pub limiter: Arc<LoginLimiter>,
    /// Keys for secrets at rest.
    pub keyring: Arc<Keyring>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Process start (for uptime).
    pub started: Instant,
    /// Progress event bus (in-process, or Redis when configured).
    pub bus: Arc<dyn EventBus>,
    /// The job queue: enqueue, cancel, retry; handlers by kind.
    pub jobs: Arc<JobQueue>,
    /// Named leases for lifecycle actions (database, or Redis when configured).
    pub locks: Arc<dyn Locks>,
    /// Proxmox clients for a cluster (user ticket or service token).
    pub pve: Arc<dyn PveConnector>,
    /// Command channels into guests (SSH + `pct` today).
    pub guests: Arc<dyn GuestConnector>,
    /// API-token owners' Proxmox privileges, per cluster and user, timed by `clock`.
    pub permissions: Arc<PermissionCache>,
    /// Clusters that did not answer, and since when.
    pub down: Arc<DownMap>,
    /// Notifications: the queue events are emitted to and the delivery transport.
    pub notifier: Arc<Notifier>,
    /// Proxmox guest lists shared by concurrent views of one identity (`[dashboard]`).
    pub reads: Arc<crate::containers::shared_read::SharedReads>,
    /// Cancelled when the server shuts down (long-lived streams end on it).
    pub shutdown: tokio_util::sync::CancellationToken,
}
