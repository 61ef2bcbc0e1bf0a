//! The audit log: the one writer ([`record`]) every use-case calls, its failure policy, and the
//! one reader ([`list`]) behind `/audit` and `GET /api/v1/audit`.
//!
//! ## Failure policy
//!
//! An action that cannot be audited is not reported as done. [`record`] returns
//! [`AppError::Unavailable`] when the entry cannot be written (and logs it at `error` and counts
//! it in `ctforge_audit_failures_total`); every use-case propagates it with `?`, so:
//! - a read that is itself the audited action (credential reveal) is not performed: the secret
//!   is only returned after its entry is stored;
//! - a change is never answered with success without its entry: the caller gets 503.
//!
//! Entries are written after the change they describe, so a refused or failed change never
//! leaves an `ok` entry behind; the change and its entry go to the same database, so the window
//! in which a change lands and its entry does not is one failed insert, and it is reported.

use serde::Deserialize;
use serde_json::Value;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::storage::Store;
use crate::storage::model::{AuditEntry, AuditFilter, NewAudit};

/// Who asks for a change, as the audit log names them.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// Proxmox user id.
    pub username: &'a str,
    /// Client address.
    pub remote: &'a str,
}

impl Caller<'_> {
    /// An entry for `action` on `target` by this caller (outcome `ok`).
    pub fn entry(&self, action: &str, target: &str) -> Entry {
        Entry::new(self.username, action, target, self.remote)
    }
}

/// What one audit entry says; build with [`Entry::new`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct Entry {
    actor: String,
    action: String,
    target: String,
    remote: String,
    outcome: String,
    detail: Option<Value>,
}

impl Entry {
    /// `actor` did `action` on `target` from `remote` (a client address); outcome `ok`.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        remote: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            remote: remote.into(),
            outcome: "ok".to_owned(),
            detail: None,
        }
    }

    /// The outcome (`ok`, `denied`, `refused`, `error`, …).
    #[must_use]
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    /// Extra data, stored as JSON.
    #[must_use]
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Writes `entry`; see the module's failure policy.
pub async fn record(store: &dyn Store, entry: Entry) -> Result<i64, AppError> {
    let row = NewAudit {
        actor: entry.actor,
        action: entry.action,
        target: entry.target,
        remote_addr: entry.remote,
        outcome: entry.outcome,
        detail_json: entry.detail.map(|d| d.to_string()).unwrap_or_default(),
    };
    store.add_audit(&row).await.map_err(|e| {
        metrics::counter!("ctforge_audit_failures_total", "action" => row.action.clone())
            .increment(1);
        tracing::error!(error = %e, action = %row.action, actor = %row.actor, "cannot write audit entry; the action is reported as failed");
        AppError::Unavailable(format!(
            "the audit log cannot be written ({e}); `{}` is not reported as done — retry once the database is back",
            row.action
        ))
    })
}

/// Filters of the audit log (`?actor=&action=&before=&limit=`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Only this user.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Entries older than this id.
    pub before: Option<i64>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
}

impl AuditQuery {
    /// The store filter.
    pub fn filter(&self) -> AuditFilter {
        AuditFilter {
            actor: self.actor.clone().filter(|s| !s.is_empty()),
            action: self.action.clone().filter(|s| !s.is_empty()),
            before_id: self.before,
            limit: self.limit.unwrap_or(50).clamp(1, 500),
        }
    }
}

/// Reading the audit log needs the ctforge admin or auditor role (`roles`).
pub fn require_auditor(user: &CurrentUser) -> Result<(), AppError> {
    crate::roles::require_auditor(user, "reading the audit log")
}

/// One page of the audit log for `user` (who must be an auditor).
pub async fn list(
    store: &dyn Store,
    user: &CurrentUser,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, AppError> {
    require_auditor(user)?;
    Ok(store.list_audit(&query.filter()).await?)
}
