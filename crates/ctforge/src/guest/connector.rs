//! The guest connector: how ctforge opens a command channel into a container. Chosen once at
//! start-up and carried in `AppState`: [`SshConnector`] (one SSH session to the cluster's
//! node, `pct exec` / `pct push` per container, host key pinned on first use) in the
//! application; [`FakeConnector`] (a scripted [`FakeRemote`], in process) in unit tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ctforge_ssh::{
    ExecOutput, FakeRemote, HostKeyPolicy, PctChannel, PctOptions, PushMode, RemoteExec, SshAuth,
    SshError, SshSession, SshTarget, Stream,
};

use crate::secrets::Keyring;
use crate::storage::Store;
use crate::storage::model::{Cluster, ClusterInput};

/// Why a guest session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The cluster's settings do not allow a connection (no host, no credentials, sealed
    /// values that do not open).
    #[error("{0}")]
    Setup(String),
    /// The connection failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
}

/// An open session to a cluster's node, handing out channels into its containers.
#[async_trait]
pub trait GuestSession: Send + Sync {
    /// A channel into CT `vmid`; with a `limit`, each command is killed inside the CT when it
    /// runs longer (`timeout -k`, failing with [`SshError::GuestTimeout`]) and the channel
    /// gives up [`ctforge_ssh::BACKSTOP`] later in case the CT stops answering.
    fn channel(&self, vmid: u32, limit: Option<Duration>) -> Box<dyn RemoteExec>;
    /// The node's host key fingerprint, when the transport has one.
    fn host_key(&self) -> Option<String>;
    /// Whether the session is gone (a new one must be opened).
    fn is_closed(&self) -> bool;
    /// Closes the session.
    async fn close(&self);
}

/// Opens guest sessions for a cluster.
#[async_trait]
pub trait GuestConnector: Send + Sync + fmt::Debug {
    /// A session to `cluster`'s node.
    async fn connect(&self, cluster: &Cluster) -> Result<Arc<dyn GuestSession>, GuestError>;
}

/// SSH to the cluster's node with its stored credentials, `pct` into containers.
pub struct SshConnector {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
}

impl fmt::Debug for SshConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshConnector").finish_non_exhaustive()
    }
}

impl SshConnector {
    /// A connector reading credentials from `store`, opened with `keyring`.
    pub fn new(store: Arc<dyn Store>, keyring: Arc<Keyring>) -> Self {
        Self { store, keyring }
    }

    /// Opens an SSH session to a cluster's node with its stored credentials. The host key is
    /// pinned: the first connection records it, later ones must match.
    pub async fn open(&self, cluster: &Cluster) -> Result<SshSession, GuestError> {
        let host = url::Url::parse(&cluster.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .ok_or_else(|| {
                GuestError::Setup(format!("cluster {} has no host in its URL", cluster.name))
            })?;
        let open = |sealed: &Option<String>| -> Result<Option<String>, GuestError> {
            sealed
                .as_deref()
                .map(|s| {
                    self.keyring
                        .open(s)
                        .map(|p| p.expose().to_owned())
                        .map_err(|e| GuestError::Setup(e.to_string()))
                })
                .transpose()
        };
        let auth = match (
            open(&cluster.ssh_key_sealed)?,
            open(&cluster.ssh_password_sealed)?,
        ) {
            (Some(key), _) => SshAuth::Key {
                private_key_pem: key.into(),
                passphrase: None,
            },
            (None, Some(pw)) => SshAuth::Password(pw.into()),
            (None, None) => {
                return Err(GuestError::Setup(format!(
                    "cluster {} has no SSH password or key; add one in Settings → Clusters",
                    cluster.name
                )));
            }
        };
        let policy = match &cluster.ssh_host_key {
            Some(key) if !key.is_empty() => HostKeyPolicy::Pinned(key.clone()),
            _ => HostKeyPolicy::TrustOnFirstUse,
        };
        let trust_on_first_use = policy == HostKeyPolicy::TrustOnFirstUse;
        let port = u16::try_from(cluster.ssh_port).unwrap_or(22);
        let target = SshTarget::new(host, port, cluster.ssh_user.clone(), auth, policy);
        let session = SshSession::connect(&target).await?;
        if trust_on_first_use {
            let input = ClusterInput {
                ssh_host_key: Some(session.host_key_fingerprint().to_owned()),
                ..ClusterInput::from(cluster)
            };
            if let Err(e) = self.store.update_cluster(cluster.id, &input).await {
                tracing::warn!(error = %e, "cannot pin the SSH host key");
            }
        }
        Ok(session)
    }
}

#[async_trait]
impl GuestConnector for SshConnector {
    async fn connect(&self, cluster: &Cluster) -> Result<Arc<dyn GuestSession>, GuestError> {
        Ok(Arc::new(PctSession(Arc::new(self.open(cluster).await?))))
    }
}

/// An SSH session to a node; channels are `pct` into its containers.
struct PctSession(Arc<SshSession>);

#[async_trait]
impl GuestSession for PctSession {
    /// Files are pushed with `pct exec … cat > DEST` (content on stdin): it works on real nodes
    /// and on the simulator and leaves no temporary file on the node.
    fn channel(&self, vmid: u32, limit: Option<Duration>) -> Box<dyn RemoteExec> {
        Box::new(
            PctChannel::new(self.0.clone(), vmid).with_options(PctOptions {
                push_mode: PushMode::ExecCat,
                guest_timeout: limit,
                ..PctOptions::default()
            }),
        )
    }

    fn host_key(&self) -> Option<String> {
        Some(self.0.host_key_fingerprint().to_owned())
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    async fn close(&self) {
        self.0.close().await;
    }
}

/// An in-process connector for unit tests: every channel, whatever the CT, is the one scripted
/// [`FakeRemote`]; counts the sessions opened.
#[derive(Debug, Default)]
pub struct FakeConnector {
    remote: Arc<FakeRemote>,
    connects: AtomicUsize,
}

impl FakeConnector {
    /// A connector whose channels answer from `remote`.
    pub fn new(remote: Arc<FakeRemote>) -> Self {
        Self {
            remote,
            connects: AtomicUsize::new(0),
        }
    }

    /// The scripted remote (to add replies or read what ran).
    pub fn remote(&self) -> &FakeRemote {
        &self.remote
    }

    /// How many sessions were opened.
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl GuestConnector for FakeConnector {
    async fn connect(&self, _cluster: &Cluster) -> Result<Arc<dyn GuestSession>, GuestError> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(FakeSession(self.remote.clone())))
    }
}

struct FakeSession(Arc<FakeRemote>);

#[async_trait]
impl GuestSession for FakeSession {
    fn channel(&self, _vmid: u32, _limit: Option<Duration>) -> Box<dyn RemoteExec> {
        Box::new(Shared(self.0.clone()))
    }

    fn host_key(&self) -> Option<String> {
        None
    }

    fn is_closed(&self) -> bool {
        false
    }

    async fn close(&self) {}
}

/// A shared [`FakeRemote`] as a channel of its own.
struct Shared(Arc<FakeRemote>);

#[async_trait]
impl RemoteExec for Shared {
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        self.0.exec(cmd, on_line).await
    }

    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError> {
        self.0.push(content, dest, mode, owner).await
    }

    async fn status(&self) -> Result<String, SshError> {
        self.0.status().await
    }
}
