//! The guest connector: how ctforge opens a command channel into a container. Chosen once at
//! start-up and carried in `AppState`: [`SshConnector`] (`pct exec` / `pct push` on the node
//! holding each container, one shared SSH connection per node, host keys pinned per node once
//! an admin confirmed them; see [`super::nodes`]) in the application; [`FakeConnector`] (a scripted
//! [`FakeRemote`], in process) in unit tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ctforge_ssh::{ExecOutput, FakeRemote, RemoteExec, SshError, SshSession, Stream};

use super::nodes::{NodeReport, NodeRouter, RoutedChannel};
use crate::pve::PveConnector;
use crate::secrets::Keyring;
use crate::status::GuestKind;
use crate::storage::Store;
use crate::storage::model::Cluster;

/// Why a guest session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The cluster's settings do not allow a connection (no host, no credentials, sealed
    /// values that do not open).
    #[error("{0}")]
    Setup(String),
    /// The node's SSH host key was never confirmed by an admin: nothing was sent to it.
    #[error(
        "the SSH host key of node {node} ({address}) is not confirmed: it presents {seen}; an admin compares it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node and confirms it in Settings → Clusters (Test, then Confirm)"
    )]
    Unconfirmed {
        /// Node name.
        node: String,
        /// Where it was reached (`host:port`).
        address: String,
        /// The key it presents (`SHA256:…`).
        seen: String,
    },
    /// The connection failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
}

/// An open session to a cluster, handing out channels into its containers.
#[async_trait]
pub trait GuestSession: Send + Sync {
    /// A channel into CT `vmid`; with a `limit`, each command is killed inside the CT when it
    /// runs longer (`timeout -k`, failing with [`SshError::GuestTimeout`]) and the channel
    /// gives up [`ctforge_ssh::BACKSTOP`] later in case the CT stops answering.
    fn channel(&self, vmid: u32, limit: Option<Duration>) -> Box<dyn RemoteExec>;
    /// A channel into guest `vmid` of `kind`: containers get [`Self::channel`]; a VM needs a
    /// transport that reaches inside it (the QEMU guest agent), which a session without one
    /// does not offer (`None`: the caller says so instead of running `pct` against a VM).
    fn guest_channel(
        &self,
        kind: GuestKind,
        vmid: u32,
        limit: Option<Duration>,
    ) -> Option<Box<dyn RemoteExec>> {
        match kind {
            GuestKind::Lxc => Some(self.channel(vmid, limit)),
            GuestKind::Qemu => None,
        }
    }
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
    /// A session to `cluster`'s nodes (channels go to the node holding each container).
    async fn connect(&self, cluster: &Cluster) -> Result<Arc<dyn GuestSession>, GuestError>;
    /// Tries to reach every node of the cluster over SSH (Settings → Clusters → Test).
    async fn test_nodes(&self, _cluster: &Cluster) -> Vec<NodeReport> {
        Vec::new()
    }
    /// Tells the connector a container moved (a migration ctforge ran): its node is looked up
    /// again before the next command.
    fn moved(&self, _cluster_id: i64, _vmid: u32) {}
    /// Writes `content` into the storage volume `volid` (e.g. `local:snippets/x.yaml`) on
    /// `node`: Proxmox's API cannot upload snippets, so this goes over the node's SSH
    /// (`pvesm path` names the file).
    async fn write_volume(
        &self,
        _cluster: &Cluster,
        _node: &str,
        volid: &str,
        _content: &[u8],
    ) -> Result<(), GuestError> {
        Err(GuestError::Setup(format!(
            "this connector cannot write {volid} on a node"
        )))
    }
    /// Tells the connector where a container is known to be (ctforge has just created it
    /// there), sparing a lookup; a wrong hint costs nothing more than a missing one, since pct's
    /// "does not exist" makes the node be looked up again.
    fn located(&self, _cluster_id: i64, _vmid: u32, _node: &str) {}
}

/// SSH to the node holding each container, `pct` into it: one shared connection per node
/// ([`super::nodes::NodeRouter`]), the node looked up per guest and followed across migrations.
pub struct SshConnector {
    router: Arc<NodeRouter>,
}

impl fmt::Debug for SshConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshConnector").finish_non_exhaustive()
    }
}

impl SshConnector {
    /// A connector reading credentials and per-node settings from `store`, opened with
    /// `keyring`, locating guests and nodes through `pve`; `trust_first_use` pins node host
    /// keys on first use instead of refusing nodes without a confirmed key
    /// (`[provisioning] ssh_trust_on_first_use`).
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        pve: Arc<dyn PveConnector>,
        trust_first_use: bool,
    ) -> Self {
        Self {
            router: Arc::new(
                NodeRouter::new(store, keyring, pve).trusting_first_use(trust_first_use),
            ),
        }
    }

    /// Opens a fresh SSH session to `node` of the cluster (not shared), its host key pinned
    /// on first use.
    pub async fn open(&self, cluster: &Cluster, node: &str) -> Result<SshSession, GuestError> {
        let target = self.router.target(cluster, node).await?;
        self.router.open(cluster, &target).await
    }
}

#[async_trait]
impl GuestConnector for SshConnector {
    async fn connect(&self, cluster: &Cluster) -> Result<Arc<dyn GuestSession>, GuestError> {
        self.router.check(cluster)?;
        Ok(Arc::new(ClusterSession {
            router: self.router.clone(),
            cluster: cluster.clone(),
        }))
    }

    async fn test_nodes(&self, cluster: &Cluster) -> Vec<NodeReport> {
        self.router.test(cluster).await
    }

    fn located(&self, cluster_id: i64, vmid: u32, node: &str) {
        self.router.remember(cluster_id, vmid, node);
    }

    fn moved(&self, cluster_id: i64, vmid: u32) {
        self.router.forget(cluster_id, vmid);
    }

    async fn write_volume(
        &self,
        cluster: &Cluster,
        node: &str,
        volid: &str,
        content: &[u8],
    ) -> Result<(), GuestError> {
        let session = self.open(cluster, node).await?;
        let q = ctforge_ssh::quote(volid);
        let command =
            format!("p=$(pvesm path {q}) && mkdir -p \"$(dirname \"$p\")\" && cat > \"$p\"");
        let out = session
            .run(
                &command,
                Some(content),
                20,
                Some(Duration::from_secs(60)),
                &mut |_, _| {},
            )
            .await;
        session.close().await;
        let out = out?;
        if out.success() {
            Ok(())
        } else {
            Err(GuestError::Ssh(SshError::Remote {
                what: format!("writing {volid} on {node}"),
                exit_code: out.exit_code,
                message: out.tail_text().trim_end().to_owned(),
            }))
        }
    }
}

/// A cluster's view: channels follow each CT to its node over the shared node connections,
/// which outlive the view (closing it closes nothing).
struct ClusterSession {
    router: Arc<NodeRouter>,
    cluster: Cluster,
}

#[async_trait]
impl GuestSession for ClusterSession {
    /// Files are pushed with `pct exec … cat > DEST` (content on stdin): it works on real nodes
    /// and on the simulator and leaves no temporary file on the node.
    fn channel(&self, vmid: u32, limit: Option<Duration>) -> Box<dyn RemoteExec> {
        Box::new(RoutedChannel::new(
            self.router.clone(),
            self.cluster.clone(),
            vmid,
            limit,
        ))
    }

    fn host_key(&self) -> Option<String> {
        self.cluster.ssh_host_key.clone()
    }

    fn is_closed(&self) -> bool {
        false
    }

    async fn close(&self) {}
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
