//! Container management use cases: which container a URL names, which Proxmox client acts for
//! a user, the dashboard listing (live state merged with ctforge's records), lifecycle
//! actions under a per-container lock, bulk actions run as a job ([`bulk`]), and monitoring
//! ([`monitor`]: services, credentials and web links re-checked over SSH).
//!
//! ## Container ids in URLs
//!
//! `{id}` in `/containers/{id}` and `/api/v1/containers/{id}/…` is either
//! - ctforge's record id (`42`) for containers ctforge created, or
//! - `<cluster>:<vmid>` (`lab:105`) for any container, managed or not; a managed container
//!   addressed this way resolves to its record.
//!
//! [`ContainerRef`] parses both; [`Target::url_id`] gives the canonical form (the record id
//! when there is a record).

pub mod bulk;
pub mod config_manager;
pub mod credentials;
pub mod daytwo;
pub mod drift;
pub mod edit;
pub mod guest_kind;
pub mod journal;
pub mod lifecycle;
pub mod listing;
pub mod migrate;
pub mod monitor;
pub mod reapply;
pub mod shared_read;
pub mod weblink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ctforge_pve::{PveApi, PveError};

use crate::auth::{AuthMethod, CurrentUser};
use crate::error::AppError;
use crate::state::AppState;
use crate::status::GuestKind;
use crate::storage::model::{Cluster, Container};
use crate::storage::{Store, StoreError};

/// What an `{id}` path segment names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ContainerRef {
    /// A ctforge container record.
    Record(i64),
    /// A container by cluster name and VMID.
    Vmid {
        /// Cluster name.
        cluster: String,
        /// Proxmox VMID.
        vmid: u32,
    },
}

impl ContainerRef {
    /// Parses `42` or `<cluster>:<vmid>`.
    pub fn parse(id: &str) -> Result<Self, AppError> {
        let id = id.trim();
        if let Ok(n) = id.parse::<i64>() {
            return Ok(Self::Record(n));
        }
        let bad = || {
            AppError::invalid(format!(
                "container id {id:?} must be a ctforge id (42) or <cluster>:<vmid> (lab:105)"
            ))
        };
        let (cluster, vmid) = id.rsplit_once(':').ok_or_else(bad)?;
        let vmid = vmid.parse::<u32>().map_err(|_| bad())?;
        if cluster.is_empty() {
            return Err(bad());
        }
        Ok(Self::Vmid {
            cluster: cluster.to_owned(),
            vmid,
        })
    }
}

/// A resolved container: its cluster, VMID and ctforge record, if any.
#[derive(Clone, Debug)]
pub struct Target {
    /// The cluster it lives in.
    pub cluster: Cluster,
    /// Proxmox VMID.
    pub vmid: u32,
    /// ctforge's record (managed containers).
    pub record: Option<Container>,
}

impl Target {
    /// The canonical URL id: the record id, else `<cluster>:<vmid>`.
    pub fn url_id(&self) -> String {
        url_id(
            &self.cluster.name,
            self.vmid,
            self.record.as_ref().map(|r| r.id),
        )
    }

    /// The name of the lifecycle lock: `ct:<cluster>:<vmid>`.
    pub fn lock_name(&self) -> String {
        format!("ct:{}:{}", self.cluster.name, self.vmid)
    }

    /// What the audit log names: `ct:<cluster>:<vmid>`.
    pub fn audit_target(&self) -> String {
        self.lock_name()
    }

    /// The hostname from the record, else `CT <vmid>`.
    pub fn display_name(&self) -> String {
        match &self.record {
            Some(r) if !r.hostname.is_empty() => r.hostname.clone(),
            _ => format!("CT {}", self.vmid),
        }
    }
}

/// The kind of guest a record names (`containers.kind`, set when it is submitted).
pub fn record_kind(record: &Container) -> GuestKind {
    record.kind
}

/// The canonical URL id of a container.
pub fn url_id(cluster: &str, vmid: u32, record: Option<i64>) -> String {
    match record {
        Some(id) => id.to_string(),
        None => format!("{cluster}:{vmid}"),
    }
}

/// Resolves an `{id}` path segment.
pub async fn resolve(state: &AppState, id: &str) -> Result<Target, AppError> {
    resolve_in(state.store.as_ref(), id).await
}

/// Resolves an `{id}` against `store` (for background jobs, which hold no [`AppState`]).
pub async fn resolve_in(store: &dyn Store, id: &str) -> Result<Target, AppError> {
    match ContainerRef::parse(id)? {
        ContainerRef::Record(n) => {
            let record = store.get_container(n).await.map_err(|e| match e {
                StoreError::NotFound => AppError::NotFound(format!("container {n}")),
                other => other.into(),
            })?;
            let cluster = store.get_cluster(record.cluster_id).await?;
            let vmid = u32::try_from(record.vmid)
                .map_err(|_| AppError::invalid(format!("record {n} has an invalid vmid")))?;
            Ok(Target {
                cluster,
                vmid,
                record: Some(record),
            })
        }
        ContainerRef::Vmid { cluster, vmid } => {
            let cluster = store
                .get_cluster_by_name(&cluster)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => AppError::NotFound(format!(
                        "cluster {cluster:?} (see Settings → Clusters for the configured names)"
                    )),
                    other => other.into(),
                })?;
            let record = match store
                .get_container_by_vmid(cluster.id, i64::from(vmid))
                .await
            {
                Ok(r) => Some(r),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            Ok(Target {
                cluster,
                vmid,
                record,
            })
        }
    }
}

/// The Proxmox client acting for `user` on `cluster`: the user's own ticket for session users
/// (Proxmox enforces their ACLs), the cluster's API token for ctforge API-token users.
pub fn client_for(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
) -> Result<Arc<dyn PveApi>, AppError> {
    match (&user.ticket, &user.method) {
        (Some(data), _) if data.cluster_id == cluster.id => {
            state.pve.user(cluster, data, &user.username)
        }
        (Some(_), _) => Err(crate::authz::other_cluster(cluster)),
        (None, AuthMethod::ApiToken { .. }) => state.pve.service(cluster),
        (None, AuthMethod::Session { .. }) => Err(AppError::Unauthorized),
    }
}

/// True when the error means Proxmox (or the node) could not be reached at all.
pub fn is_unreachable(e: &PveError) -> bool {
    matches!(
        e,
        PveError::Transport { .. }
            | PveError::Timeout { .. }
            | PveError::Tls { .. }
            | PveError::NodeUnreachable { .. }
    )
}

/// Maps a Proxmox failure for CT `vmid` to the app's error, relaying Proxmox's own text for
/// permission failures.
pub fn pve_error(e: PveError, vmid: u32) -> AppError {
    match e {
        PveError::PermissionDenied { message, .. } => AppError::Forbidden(message),
        PveError::NotFound { .. } => AppError::NotFound(format!("CT {vmid} in Proxmox")),
        PveError::AlreadyRunning { .. } => AppError::Conflict(format!(
            "CT {vmid} is already running; stop it first or reboot it"
        )),
        PveError::NotRunning { .. } => {
            AppError::Conflict(format!("CT {vmid} is not running; start it first"))
        }
        PveError::Locked { message } => AppError::Conflict(format!(
            "CT {vmid} is locked in proxmox ({message}); wait for that operation to finish and retry"
        )),
        PveError::Unauthorized { message } => AppError::Forbidden(format!(
            "proxmox rejected your ticket ({message}); sign in again"
        )),
        other if is_unreachable(&other) => {
            AppError::Unavailable(format!("proxmox is unreachable: {other}"))
        }
        other => AppError::Unavailable(format!("proxmox: {other}")),
    }
}

/// Which clusters failed to answer, and since when (Unix ms on the injected `Clock`); carried
/// in `AppState`, so each app (and each test app) has its own.
#[derive(Debug, Default)]
pub struct DownMap(Mutex<HashMap<i64, i64>>);

impl DownMap {
    /// Records that `cluster_id` failed to answer at `now_ms`; returns since when it is down.
    pub fn mark_down(&self, cluster_id: i64, now_ms: i64) -> i64 {
        match self.0.lock() {
            Ok(mut map) => *map.entry(cluster_id).or_insert(now_ms),
            Err(_) => now_ms,
        }
    }

    /// Records that `cluster_id` answered.
    pub fn mark_up(&self, cluster_id: i64) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&cluster_id);
        }
    }

    /// Every unreachable cluster and since when (cluster id, Unix milliseconds).
    pub fn snapshot(&self) -> Vec<(i64, i64)> {
        self.0
            .lock()
            .map(|map| map.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }

    /// Since when `cluster_id` has been unreachable, if it is.
    pub fn since(&self, cluster_id: i64) -> Option<i64> {
        self.0.lock().ok()?.get(&cluster_id).copied()
    }
}
