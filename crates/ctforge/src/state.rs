//! Shared application state handed to every request handler and background task.

use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::config::Config;
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
    /// Keys for secrets at rest.
    pub keyring: Arc<Keyring>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Process start (for uptime).
    pub started: Instant,
}
