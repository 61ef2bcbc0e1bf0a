//! The app's side of the Proxmox boundary: the [`PveConnector`] that hands out clients for a
//! stored cluster (user ticket or service token), client configurations, and conversion between
//! session data and Proxmox tickets. [`fake`] holds the in-process connector for unit tests.

pub mod fake;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctforge_pve::{Auth, Capabilities, ClientConfig, PveApi, PveClient, Secret, Ticket, TlsMode};
use time::OffsetDateTime;

use crate::auth::SessionData;
use crate::error::AppError;
use crate::secrets::Keyring;
use crate::storage::model::Cluster;

/// Client configuration for a cluster without credentials (login, fingerprint checks).
pub fn base_config(cluster: &Cluster) -> ClientConfig {
    let tls = match &cluster.fingerprint {
        Some(fp) if !fp.is_empty() => TlsMode::Fingerprint(fp.clone()),
        _ => TlsMode::System,
    };
    ClientConfig::new(cluster.url.clone())
        .with_tls(tls)
        .with_timeout(Duration::from_secs(20))
}

/// Hands out Proxmox clients for a cluster. Chosen once at start-up and carried in
/// `AppState` ([`PooledConnector`] in the application); business code only sees `dyn PveApi`,
/// so unit tests can substitute an in-process fake.
pub trait PveConnector: Send + Sync + std::fmt::Debug {
    /// A client without credentials (the realm list of the sign-in page).
    fn anonymous(&self, cluster: &Cluster) -> Result<Arc<dyn PveApi>, AppError>;
    /// A client acting with the cluster's API token (background jobs, API-token users).
    fn service(&self, cluster: &Cluster) -> Result<Arc<dyn PveApi>, AppError>;
    /// A client acting as the signed-in user, with their own ticket (Proxmox enforces its
    /// ACLs).
    fn user(
        &self,
        cluster: &Cluster,
        data: &SessionData,
        username: &str,
    ) -> Result<Arc<dyn PveApi>, AppError>;
}

/// The most (url, fingerprint) pairs a [`PooledConnector`] keeps; past it the pool starts over.
const POOL_MAX: usize = 64;

type Pool = Mutex<HashMap<(String, String), PveClient>>;

/// [`PveClient`]s sharing one connection pool per cluster URL and pinned fingerprint: a
/// dashboard refresh reuses a kept-alive TLS connection instead of building a TLS client and
/// handshaking every time. Credentials are per client, never pooled.
pub struct PooledConnector {
    keyring: Arc<Keyring>,
    pool: Pool,
}

impl std::fmt::Debug for PooledConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConnector").finish_non_exhaustive()
    }
}

impl PooledConnector {
    /// A connector opening API token secrets with `keyring`.
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            keyring,
            pool: Mutex::new(HashMap::new()),
        }
    }

    fn pooled(&self, cluster: &Cluster, auth: Auth) -> Result<PveClient, AppError> {
        let key = (
            cluster.url.clone(),
            cluster.fingerprint.clone().unwrap_or_default(),
        );
        let shared = self
            .pool
            .lock()
            .ok()
            .and_then(|p| p.get(&key).map(|c| c.with_auth(Auth::None)));
        if let Some(client) = shared {
            client.set_auth(auth);
            return Ok(client);
        }
        let client =
            PveClient::new(base_config(cluster)).map_err(|e| AppError::Internal(e.into()))?;
        if let Ok(mut p) = self.pool.lock() {
            if p.len() >= POOL_MAX {
                p.clear();
            }
            p.insert(key, client.with_auth(Auth::None));
        }
        Ok(client.with_auth(auth))
    }
}

impl PveConnector for PooledConnector {
    fn anonymous(&self, cluster: &Cluster) -> Result<Arc<dyn PveApi>, AppError> {
        Ok(Arc::new(self.pooled(cluster, Auth::None)?))
    }

    fn service(&self, cluster: &Cluster) -> Result<Arc<dyn PveApi>, AppError> {
        let secret = cluster
            .token_secret_sealed
            .as_deref()
            .ok_or_else(|| {
                AppError::Unavailable(format!(
                    "cluster {} has no API token secret; add one in Settings",
                    cluster.name
                ))
            })
            .and_then(|sealed| {
                // A clear reason rather than "internal error": the usual cause is a process
                // (a separate worker) started with another data directory's secret key.
                self.keyring.open(sealed).map_err(|e| {
                    AppError::Unavailable(format!(
                        "cannot open the sealed API token secret of cluster {}: {e}; every \
                         ctforge process must use the secret key that sealed it \
                         (secret.key in the data directory)",
                        cluster.name
                    ))
                })
            })?;
        let (user, token_id) = cluster.token_id.split_once('!').ok_or_else(|| {
            AppError::invalid(format!(
                "token id {:?} must look like user@realm!name",
                cluster.token_id
            ))
        })?;
        let auth = Auth::token(user, token_id, secret.expose().to_owned());
        Ok(Arc::new(self.pooled(cluster, auth)?))
    }

    fn user(
        &self,
        cluster: &Cluster,
        data: &SessionData,
        username: &str,
    ) -> Result<Arc<dyn PveApi>, AppError> {
        Ok(Arc::new(self.pooled(
            cluster,
            Auth::Ticket(to_ticket(data, username)),
        )?))
    }
}

/// Session data → Proxmox ticket.
pub fn to_ticket(data: &SessionData, username: &str) -> Ticket {
    Ticket {
        ticket: Secret::new(data.ticket.clone()),
        csrf_token: Secret::new(data.pve_csrf.clone()),
        username: username.to_owned(),
        cap: Capabilities(data.cap.clone()),
        clustername: None,
        issued_at: OffsetDateTime::from_unix_timestamp(data.issued_at)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    }
}

/// Proxmox ticket → session data.
pub fn from_ticket(cluster_id: i64, ticket: &Ticket) -> SessionData {
    SessionData {
        cluster_id,
        ticket: ticket.ticket.expose().to_owned(),
        pve_csrf: ticket.csrf_token.expose().to_owned(),
        cap: ticket.cap.0.clone(),
        issued_at: ticket.issued_at.unix_timestamp(),
        tfa_challenge: None,
    }
}
