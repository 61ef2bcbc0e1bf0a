//! The simulated cluster: nodes, storages, containers, tasks, users, pools and
//! fault settings, behind one mutex ([`SimState`]). The container backend keeps
//! the in-guest state (files, services) separately.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SimError;
use crate::auth::{AclEntry, Identity, Token, User};
use crate::backend::{CtBackend, memory::MemoryBackend};
use crate::config::{Backend, SimConfig, Timings};
use crate::scenario::{ContainerSpec, FaultRule, FaultsSpec, ServiceSpec, StorageSpec};

mod build;
mod model;
mod node_ssh;
mod permissions;
mod views;
mod vm_runtime;

pub use self::build::{import_format, random_password, template_format};
pub use self::model::*;
pub use self::node_ssh::SshCommand;
pub use self::views::is_vm_disk_key;
pub use self::vm_runtime::AgentExec;

/// Credentials generated or configured at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Password of root@pam.
    pub root_password: String,
    /// `root@pam!ctforge`.
    pub token_id: String,
    /// Its secret.
    pub token_secret: String,
    /// Secret of `root@pam!noperm`.
    pub noperm_token_secret: String,
}

struct Inner {
    cluster: Mutex<Cluster>,
    backend: Arc<dyn CtBackend>,
    key: Vec<u8>,
    creds: Credentials,
    state_dir: Option<PathBuf>,
    aborts: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    holds: crate::hold::Holds,
    /// API requests received, by `METHOD /path` (`GET /sim/admin/calls`).
    calls: Mutex<BTreeMap<String, u64>>,
    node_ssh: node_ssh::NodeSsh,
    vms: vm_runtime::VmRuntime,
}

/// Shared handle on the simulator state (cheap to clone).
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    cluster: Cluster,
    creds: Credentials,
    key: Vec<u8>,
    guests: Value,
}

const WORDS: &[&str] = &[
    "web", "db", "cache", "proxy", "git", "ci", "mail", "dns", "vpn", "media", "wiki", "monitor",
    "backup", "build", "api", "queue", "auth", "files", "chat", "metrics",
];

const DEFAULT_TEMPLATE: &str = "debian-12-standard_12.7-1_amd64.tar.zst";

impl SimState {
    fn from_parts(
        cluster: Cluster,
        backend: Arc<dyn CtBackend>,
        key: Vec<u8>,
        creds: Credentials,
        state_dir: Option<PathBuf>,
    ) -> SimState {
        SimState {
            inner: Arc::new(Inner {
                cluster: Mutex::new(cluster),
                backend,
                key,
                creds,
                state_dir,
                aborts: Mutex::new(HashMap::new()),
                holds: crate::hold::Holds::default(),
                calls: Mutex::new(BTreeMap::new()),
                node_ssh: node_ssh::NodeSsh::default(),
                vms: vm_runtime::VmRuntime::default(),
            }),
        }
    }

    /// Lock the cluster (never hold the guard across an `.await`).
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        match self.inner.cluster.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Run `f` with the cluster locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.lock())
    }

    /// Holds a CT command or a task at `point` until the returned [`crate::Hold`] is
    /// released (tests choose where a job is interrupted).
    pub fn hold(&self, point: crate::HoldPoint) -> crate::Hold {
        self.inner.holds.add(point)
    }

    pub(crate) fn holds(&self) -> &crate::hold::Holds {
        &self.inner.holds
    }

    /// The container backend.
    pub fn backend(&self) -> &Arc<dyn CtBackend> {
        &self.inner.backend
    }

    /// The in-memory backend, when that is the active one (for test helpers).
    pub fn memory_backend(&self) -> Option<&MemoryBackend> {
        self.inner.backend.as_any().downcast_ref::<MemoryBackend>()
    }

    /// Ticket/CSRF signing key.
    pub fn key(&self) -> &[u8] {
        &self.inner.key
    }

    /// Generated credentials.
    pub fn credentials(&self) -> Credentials {
        self.inner.creds.clone()
    }

    /// The state directory, if any.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.inner.state_dir.clone()
    }

    /// Node names.
    pub fn node_names(&self) -> Vec<String> {
        self.lock().nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub(crate) fn register_abort(&self, upid: &str, h: tokio::task::AbortHandle) {
        if let Ok(mut m) = self.inner.aborts.lock() {
            m.insert(upid.to_string(), h);
        }
    }

    pub(crate) fn take_abort(&self, upid: &str) -> Option<tokio::task::AbortHandle> {
        self.inner
            .aborts
            .lock()
            .ok()
            .and_then(|mut m| m.remove(upid))
    }

    /// Mark a node down (`code` 595 or 596) or up.
    pub fn set_node_online(&self, node: &str, online: bool, code: u16) -> bool {
        self.with(|c| match c.nodes.iter_mut().find(|n| n.name == node) {
            Some(n) => {
                n.online = online;
                n.down_code = if code == 596 { 596 } else { 595 };
                true
            }
            None => false,
        })
    }

    /// Add a fault rule.
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        regex::Regex::new(&rule.path).map_err(|e| e.to_string())?;
        self.with(|c| {
            c.fault_hits.push(rule.times.unwrap_or(u32::MAX));
            c.faults.rules.push(rule);
        });
        Ok(())
    }

    /// Remove all fault rules and the global latency.
    pub fn clear_faults(&self) {
        self.with(|c| {
            c.faults = FaultsSpec::default();
            c.fault_hits.clear();
        });
    }

    /// Counts one API request (`rel`: the path under `/api2/json`, without the query).
    pub fn count_call(&self, method: &str, rel: &str) {
        let mut calls = self
            .inner
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *calls.entry(format!("{method} {rel}")).or_insert(0) += 1;
    }

    /// API requests received since start or the last [`SimState::reset_calls`], by
    /// `METHOD /path`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets the counted requests.
    pub fn reset_calls(&self) {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Set the latency added to every API call.
    pub fn set_latency(&self, d: Duration) {
        self.with(|c| c.faults.latency_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    /// Set the ticket lifetime.
    pub fn set_ticket_lifetime(&self, secs: u64) {
        self.with(|c| c.ticket_lifetime = secs);
    }

    /// Move the simulated clock forward (negative: back).
    pub fn advance_clock(&self, secs: i64) {
        self.with(|c| c.clock_offset += secs);
    }

    /// Replace the task durations.
    pub fn set_timings(&self, t: Timings) {
        self.with(|c| c.timings = t);
    }

    /// Replace a CT's service table (memory backend).
    pub fn set_services(&self, vmid: u32, services: &[ServiceSpec]) {
        self.inner.backend.set_services(vmid, services);
    }

    /// Whether a CT exists and runs.
    pub fn ct_running(&self, vmid: u32) -> Option<bool> {
        self.with(|c| c.cts.get(&vmid).map(|ct| ct.running))
    }

    /// A task by UPID.
    pub fn task(&self, upid: &str) -> Option<Task> {
        self.with(|c| c.tasks.get(upid).cloned())
    }

    /// Persist the state to `<state_dir>/state.json` (no-op without a state dir).
    pub fn persist(&self) -> Result<(), SimError> {
        let Some(dir) = &self.inner.state_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|e| SimError::State(e.to_string()))?;
        let p = Persisted {
            cluster: self.lock().clone(),
            creds: self.inner.creds.clone(),
            key: self.inner.key.clone(),
            guests: self.inner.backend.save(),
        };
        let text = serde_json::to_string(&p).map_err(|e| SimError::State(e.to_string()))?;
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, text).map_err(|e| SimError::State(e.to_string()))?;
        std::fs::rename(&tmp, dir.join("state.json")).map_err(|e| SimError::State(e.to_string()))
    }
}
