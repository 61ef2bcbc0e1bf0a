//! Authentication and authorisation: Proxmox sign-in, sessions, API tokens, CSRF, login rate
//! limiting, and the middleware that protects every route but login, health and static assets.
//!
//! Invariant: the browser only ever holds an opaque session id; the Proxmox ticket stays on the
//! server, sealed in the session store.

pub mod limiter;
pub mod login;
pub mod middleware;
pub mod permissions;
pub mod session;

use serde::{Deserialize, Serialize};

/// How a request was authenticated.
#[derive(Clone, Debug)]
pub enum AuthMethod {
    /// A browser session cookie; state changes need the CSRF token.
    Session {
        /// SHA-256 of the session id.
        id_hash: String,
        /// The session's CSRF token.
        csrf_token: String,
    },
    /// A ctforge API token (`Authorization: Bearer …`); exempt from CSRF.
    ApiToken {
        /// Token row id.
        token_id: i64,
    },
}

/// The signed-in user of a request, placed in the request extensions by the middleware.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// Proxmox user id (`root@pam`).
    pub username: String,
    /// How the request was authenticated.
    pub method: AuthMethod,
    /// The user's Proxmox ticket (sessions only).
    pub ticket: Option<SessionData>,
    /// For API-token users: the token owner's privileges as Proxmox reports them
    /// (`/access/permissions`, scope → privilege), so a token never does more than its owner.
    pub token_caps: Option<Caps>,
    /// ctforge's own roles of this identity (the user on the cluster it signed in to; a token's
    /// owner on the token's cluster).
    pub roles: crate::roles::Roles,
}

/// Privileges by scope (`vms`, `storage`, `nodes`, `access`, `dc`, …).
pub type Caps = std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>>;

impl CurrentUser {
    /// The CSRF token to embed in forms, for session users.
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.method {
            AuthMethod::Session { csrf_token, .. } => Some(csrf_token),
            AuthMethod::ApiToken { .. } => None,
        }
    }

    /// Whether the user's Proxmox ticket grants `privilege` in `scope` (`vms`, `storage`, …).
    /// API-token users are checked against their owner's Proxmox permissions; when those could
    /// not be read, nothing is allowed.
    pub fn can(&self, scope: &str, privilege: &str) -> bool {
        let caps = match (&self.ticket, &self.token_caps) {
            (Some(data), _) => &data.cap,
            (None, Some(caps)) => caps,
            (None, None) => return false,
        };
        caps.get(scope)
            .and_then(|privs| privs.get(privilege))
            .copied()
            .unwrap_or(false)
    }
}

/// ctforge's settings (clusters, roles, other users' tokens) need the ctforge admin role;
/// Proxmox privileges grant no ctforge role (`roles`).
pub fn require_admin(user: &CurrentUser) -> Result<(), crate::error::AppError> {
    crate::roles::require_admin(user, "changing ctforge's settings")
}

/// Templates, discovery and package buckets need the ctforge admin or template editor role: a
/// template is code that runs as root in every container made from it.
pub fn require_editor(user: &CurrentUser) -> Result<(), crate::error::AppError> {
    crate::roles::require_editor(user, "changing templates, discovery or package buckets")
}

/// What a session keeps server-side (sealed at rest).
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// Cluster the user signed in to.
    pub cluster_id: i64,
    /// Proxmox ticket (`PVEAuthCookie`).
    pub ticket: String,
    /// Proxmox CSRF prevention token.
    pub pve_csrf: String,
    /// The ticket's capabilities, as Proxmox sent them.
    pub cap: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>>,
    /// When the ticket was issued (Unix seconds).
    pub issued_at: i64,
    /// A half-ticket waiting for a second factor (pending TFA sessions only).
    #[serde(default)]
    pub tfa_challenge: Option<String>,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("cluster_id", &self.cluster_id)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}
