//! The app's side of the Proxmox boundary: building client configurations from stored clusters
//! and converting between session data and Proxmox tickets.

use std::time::Duration;

use ctforge_pve::{Auth, Capabilities, ClientConfig, PveClient, Secret, Ticket, TlsMode};
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

/// A client acting with the cluster's API token (background jobs).
pub fn service_client(cluster: &Cluster, keyring: &Keyring) -> Result<PveClient, AppError> {
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
            keyring
                .open(sealed)
                .map_err(|e| AppError::Internal(e.into()))
        })?;
    let (user, token_id) = cluster.token_id.split_once('!').ok_or_else(|| {
        AppError::invalid(format!(
            "token id {:?} must look like user@realm!name",
            cluster.token_id
        ))
    })?;
    let auth = Auth::token(user, token_id, secret.expose().to_owned());
    pooled(cluster, auth)
}

/// The most (url, fingerprint) pairs [`pooled`] keeps; past it the pool starts over.
const POOL_MAX: usize = 64;

/// A client for `cluster` acting with `auth`, sharing one connection pool per cluster URL and
/// pinned fingerprint: a dashboard refresh reuses a kept-alive TLS connection instead of
/// building a TLS client and handshaking every time. Credentials are per client, never pooled.
fn pooled(cluster: &Cluster, auth: Auth) -> Result<PveClient, AppError> {
    type Pool = std::sync::Mutex<std::collections::HashMap<(String, String), PveClient>>;
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    let key = (
        cluster.url.clone(),
        cluster.fingerprint.clone().unwrap_or_default(),
    );
    let pool = POOL.get_or_init(Default::default);
    let shared = pool
        .lock()
        .ok()
        .and_then(|p| p.get(&key).map(|c| c.with_auth(Auth::None)));
    if let Some(client) = shared {
        client.set_auth(auth);
        return Ok(client);
    }
    let client = PveClient::new(base_config(cluster)).map_err(|e| AppError::Internal(e.into()))?;
    if let Ok(mut p) = pool.lock() {
        if p.len() >= POOL_MAX {
            p.clear();
        }
        p.insert(key, client.with_auth(Auth::None));
    }
    Ok(client.with_auth(auth))
}

/// A client acting as the signed-in user, with their own ticket (Proxmox enforces its ACLs).
pub fn user_client(
    cluster: &Cluster,
    data: &SessionData,
    username: &str,
) -> Result<PveClient, AppError> {
    pooled(cluster, Auth::Ticket(to_ticket(data, username)))
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
