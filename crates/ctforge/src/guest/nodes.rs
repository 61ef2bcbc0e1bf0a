//! Per-node SSH: which node holds a guest, where that node is reached, and the one shared SSH
//! connection per node.
//!
//! `pct` only knows the guests of the node it runs on, so every command goes to the node that
//! holds the guest *at that moment*: the location comes from `/cluster/resources` (cached per
//! guest), and when the node answers `Configuration file 'nodes/<node>/lxc/<vmid>.conf' does
//! not exist` (a migration or an HA move since) the location is looked up again and the
//! command retried once on the new node. A node is reached at its override (`node_ssh`,
//! migration 0010; `[[node_ssh]]` in the configuration, Settings → Clusters), else — the node
//! answering the API (`local` in `/cluster/status`) — at the host of the cluster's URL, else at
//! its `ip` from `/cluster/status`; the port is the override or the cluster's `ssh_port`.
//! Each node's host key is pinned on its own (`node_ssh.host_key`; the node at the URL's host
//! also accepts the cluster's older pin). A key is pinned only once an admin confirmed it
//! (Settings → Clusters → Test shows each node's key, Confirm pins it; or `host_key` in
//! `[[node_ssh]]`): a node without a confirmed key is refused before any credential is sent,
//! naming the key it presents, and a node presenting another key than its pin is refused as
//! well. `[provisioning] ssh_trust_on_first_use` restores pinning on first use.
//!
//! Connections are shared: one per node for every job and probe of the process, with at most
//! [`CHANNELS_PER_NODE`] commands at once on it (OpenSSH's `MaxSessions` is 10).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ctforge_pve::types::ResourceKind;
use ctforge_ssh::{
    ExecOutput, HostKeyPolicy, PctChannel, PctOptions, PushMode, RemoteExec, SshAuth, SshError,
    SshSession, SshTarget, Stream,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::pve::PveConnector;
use crate::secrets::Keyring;
use crate::storage::Store;
use crate::storage::model::{Cluster, ClusterInput, NodeSsh};

use super::connector::GuestError;

/// Commands running at once on one node's connection.
pub const CHANNELS_PER_NODE: usize = 8;

/// How long node addresses from `/cluster/status` are reused.
const ADDRESS_TTL: Duration = Duration::from_secs(60);

/// Where a node's SSH is, as resolved for a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTarget {
    /// Node name.
    pub node: String,
    /// Host or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The pinned host key, if any.
    pub pin: Option<String>,
    /// Whether this is the host of the cluster's URL (its pin is also the cluster's).
    pub url_host: bool,
}

/// One node's reachability, for Settings → Clusters → Test.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct NodeReport {
    /// Node name.
    pub node: String,
    /// Where it was tried (`host:port`).
    pub address: String,
    /// Whether SSH answered and accepted the credentials.
    pub reachable: bool,
    /// The host key it presented (`SHA256:…`), when it answered.
    pub host_key: Option<String>,
    /// The key pinned for it before this test (`None`: none yet).
    pub pinned: Option<String>,
    /// Whether the key it presents is the confirmed one (false: an admin must confirm
    /// `host_key` before ctforge connects).
    #[serde(default)]
    pub confirmed: bool,
    /// What went wrong.
    pub error: Option<String>,
}

/// What a shared connection was opened for: host, port, user, the cluster's last change and
/// the pin (a newly confirmed key closes the connection made under the old one).
/// What a shared connection was opened for: where, as whom, with which pin, and the version
/// of the cluster's settings (`updated_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ConnKey {
    host: String,
    port: u16,
    user: String,
    settings: i64,
    pin: Option<String>,
}

impl ConnKey {
    /// Whether a connection opened for `self` serves a command asking for `want`: the same
    /// place and user, settings at least as new (a job holding an older copy of the cluster
    /// uses the connection of the newer settings instead of replacing it back and forth), and
    /// the host key `want` pins, if any, is the one the connection saw.
    fn serves(&self, want: &ConnKey, session: &SshSession) -> bool {
        self.host == want.host
            && self.port == want.port
            && self.user == want.user
            && self.settings >= want.settings
            && want
                .pin
                .as_deref()
                .is_none_or(|pin| session.has_host_key(pin))
    }
}

struct NodeConn {
    key: ConnKey,
    session: Arc<SshSession>,
    permits: Arc<Semaphore>,
}

/// One node's shared connection, opened by whoever needs it first.
type ConnSlot = Arc<tokio::sync::Mutex<Option<NodeConn>>>;

/// A node as `/cluster/status` lists it: name, `ip`, whether it answered the API (`local`).
type StatusNode = (String, Option<String>, bool);

/// Resolves guests to nodes and nodes to shared connections (one per process, in the
/// connector).
pub struct NodeRouter {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    pve: Arc<dyn PveConnector>,
    trust_first_use: bool,
    conns: Mutex<HashMap<(i64, String), ConnSlot>>,
    addresses: Mutex<HashMap<i64, (Instant, Vec<StatusNode>)>>,
    locations: Mutex<HashMap<(i64, u32), String>>,
}

impl std::fmt::Debug for NodeRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRouter").finish_non_exhaustive()
    }
}

/// The node named in pct's "config does not exist" answer, when `text` is one for `vmid`.
pub fn not_here(text: &str, vmid: u32) -> Option<String> {
    let suffix = format!("/lxc/{vmid}.conf' does not exist");
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Configuration file 'nodes/")?;
        let node = rest.strip_suffix(&suffix)?;
        (!node.is_empty() && !node.contains('/')).then(|| node.to_string())
    })
}

fn url_host(cluster: &Cluster) -> Option<String> {
    url::Url::parse(&cluster.url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
}

impl NodeRouter {
    /// A router reading settings from `store`, secrets with `keyring`, and asking Proxmox
    /// through `pve` (the cluster's service token).
    pub fn new(store: Arc<dyn Store>, keyring: Arc<Keyring>, pve: Arc<dyn PveConnector>) -> Self {
        Self {
            store,
            keyring,
            pve,
            trust_first_use: false,
            conns: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            locations: Mutex::new(HashMap::new()),
        }
    }

    /// Pins keys on first use instead of waiting for an admin's confirmation.
    pub fn trusting_first_use(mut self, trust: bool) -> Self {
        self.trust_first_use = trust;
        self
    }

    fn auth(&self, cluster: &Cluster) -> Result<SshAuth, GuestError> {
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
        match (
            open(&cluster.ssh_key_sealed)?,
            open(&cluster.ssh_password_sealed)?,
        ) {
            (Some(key), _) => Ok(SshAuth::Key {
                private_key_pem: key.into(),
                passphrase: None,
            }),
            (None, Some(pw)) => Ok(SshAuth::Password(pw.into())),
            (None, None) => Err(GuestError::Setup(format!(
                "cluster {} has no SSH password or key; add one in Settings → Clusters",
                cluster.name
            ))),
        }
    }

    /// Checks that the cluster's SSH settings can be used at all (credentials open).
    pub fn check(&self, cluster: &Cluster) -> Result<(), GuestError> {
        self.auth(cluster).map(|_| ())
    }

    /// The nodes of a cluster: (name, ip, answers the API), from `/cluster/status` (cached).
    async fn nodes(&self, cluster: &Cluster) -> Vec<StatusNode> {
        if let Ok(m) = self.addresses.lock()
            && let Some((at, nodes)) = m.get(&cluster.id)
            && at.elapsed() < ADDRESS_TTL
        {
            return nodes.clone();
        }
        let status = match self.pve.service(cluster) {
            Ok(api) => api.cluster_status().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match status {
            Ok(entries) => {
                let nodes: Vec<_> = entries
                    .into_iter()
                    .filter(|e| e.is_node())
                    .map(|e| (e.name, e.ip, e.local.unwrap_or(false)))
                    .collect();
                if let Ok(mut m) = self.addresses.lock() {
                    m.insert(cluster.id, (Instant::now(), nodes.clone()));
                }
                nodes
            }
            Err(e) => {
                tracing::warn!(cluster = %cluster.name, error = %e, "cannot read /cluster/status; nodes are reached at the API's host");
                Vec::new()
            }
        }
    }

    /// Where `node` of `cluster` is reached and which key it must present.
    pub async fn target(&self, cluster: &Cluster, node: &str) -> Result<NodeTarget, GuestError> {
        let fallback = url_host(cluster).ok_or_else(|| {
            GuestError::Setup(format!("cluster {} has no host in its URL", cluster.name))
        })?;
        let settings: Option<NodeSsh> = self
            .store
            .list_node_ssh(cluster.id)
            .await
            .map_err(|e| GuestError::Setup(e.to_string()))?
            .into_iter()
            .find(|n| n.node == node);
        let nodes = self.nodes(cluster).await;
        let status = nodes.iter().find(|(n, _, _)| n == node);
        let override_addr = settings
            .as_ref()
            .and_then(|s| s.address.clone())
            .filter(|a| !a.is_empty());
        let host = match (override_addr, status) {
            (Some(a), _) => a,
            (None, Some((_, _, true))) => fallback.clone(),
            (None, Some((_, Some(ip), false))) if !ip.is_empty() => ip.clone(),
            _ => fallback.clone(),
        };
        let port = settings
            .as_ref()
            .and_then(|s| s.port)
            .or(Some(cluster.ssh_port))
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(22);
        let at_url = host == fallback && i64::from(port) == cluster.ssh_port;
        // Every node has its own pin; the node at the URL's host also accepts the cluster's
        // (pinned before nodes had their own), unless an admin confirmed one for the node.
        let node_pin = settings.and_then(|s| s.host_key).filter(|k| !k.is_empty());
        let cluster_pin = cluster.ssh_host_key.clone().filter(|k| !k.is_empty());
        let pin = if at_url {
            node_pin.or(cluster_pin)
        } else {
            node_pin
        };
        Ok(NodeTarget {
            node: node.to_owned(),
            host,
            port,
            pin,
            url_host: at_url,
        })
    }

    /// Opens a fresh connection to `t` (no sharing). Without a pin it is refused (naming the
    /// key the node presents) unless keys are trusted on first use, then pinned.
    pub async fn open(&self, cluster: &Cluster, t: &NodeTarget) -> Result<SshSession, GuestError> {
        let auth = self.auth(cluster)?;
        if t.pin.is_none() && !self.trust_first_use {
            // Only the key is fetched (no authentication): nothing is sent to an unconfirmed
            // host.
            let seen = ctforge_ssh::fetch_host_key(&t.host, t.port).await?;
            return Err(GuestError::Unconfirmed {
                node: t.node.clone(),
                address: format!("{}:{}", t.host, t.port),
                seen,
            });
        }
        let policy = match &t.pin {
            Some(k) => HostKeyPolicy::Pinned(k.clone()),
            None => HostKeyPolicy::TrustOnFirstUse,
        };
        let target = SshTarget::new(
            t.host.clone(),
            t.port,
            cluster.ssh_user.clone(),
            auth,
            policy,
        );
        let session = SshSession::connect(&target).await?;
        if t.pin.is_none() {
            let seen = session.host_key_fingerprint().to_owned();
            if let Err(e) = self
                .store
                .pin_node_host_key(cluster.id, &t.node, Some(&seen))
                .await
            {
                tracing::warn!(error = %e, node = %t.node, "cannot pin the node's SSH host key");
            }
            if t.url_host && cluster.ssh_host_key.as_deref().unwrap_or("").is_empty() {
                let input = ClusterInput {
                    ssh_host_key: Some(seen),
                    ..ClusterInput::from(cluster)
                };
                if let Err(e) = self.store.update_cluster(cluster.id, &input).await {
                    tracing::warn!(error = %e, "cannot pin the SSH host key");
                }
            }
        }
        Ok(session)
    }

    /// The shared connection to `node` (opened when there is none or it died, or when the
    /// cluster's settings changed since), with its channel limit.
    async fn conn(
        &self,
        cluster: &Cluster,
        node: &str,
    ) -> Result<(Arc<SshSession>, Arc<Semaphore>), GuestError> {
        let slot = {
            let mut m = self
                .conns
                .lock()
                .map_err(|_| GuestError::Setup("connection table poisoned".into()))?;
            m.entry((cluster.id, node.to_owned()))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None)))
                .clone()
        };
        let target = self.target(cluster, node).await?;
        let key = ConnKey {
            host: target.host.clone(),
            port: target.port,
            user: cluster.ssh_user.clone(),
            settings: cluster.updated_at,
            pin: target.pin.clone(),
        };
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref()
            && !c.session.is_closed()
            && c.key.serves(&key, &c.session)
        {
            return Ok((c.session.clone(), c.permits.clone()));
        }
        // Replaced, never closed here: commands still running on the old connection finish
        // on it (it disconnects once the last of them lets go). Closing it failed them with
        // "the ssh channel closed before … finished" — e.g. when the first connection pinned
        // the node's host key (a new settings version) while other jobs' commands ran on it.
        let session = Arc::new(self.open(cluster, &target).await?);
        let permits = Arc::new(Semaphore::new(CHANNELS_PER_NODE));
        *guard = Some(NodeConn {
            key,
            session: session.clone(),
            permits: permits.clone(),
        });
        Ok((session, permits))
    }

    /// The node holding `vmid` now (`fresh`: ask Proxmox even when a location is cached).
    pub async fn locate(
        &self,
        cluster: &Cluster,
        vmid: u32,
        fresh: bool,
    ) -> Result<String, SshError> {
        if !fresh
            && let Ok(m) = self.locations.lock()
            && let Some(n) = m.get(&(cluster.id, vmid))
        {
            return Ok(n.clone());
        }
        let api = self
            .pve
            .service(cluster)
            .map_err(|e| locate_error(vmid, &e.to_string()))?;
        let resources = api
            .cluster_resources(Some(ResourceKind::Vm))
            .await
            .map_err(|e| locate_error(vmid, &e.to_string()))?;
        let mut found = None;
        if let Ok(mut m) = self.locations.lock() {
            for r in resources {
                if let (Some(id), Some(node)) = (r.vmid, r.node) {
                    if id == vmid {
                        found = Some(node.clone());
                    }
                    m.insert((cluster.id, id), node);
                }
            }
        }
        found.ok_or_else(|| {
            locate_error(
                vmid,
                &format!("CT {vmid} is on no node of cluster {}", cluster.name),
            )
        })
    }

    /// Records where `vmid` is, when ctforge knows it without asking (it created it there).
    pub fn remember(&self, cluster_id: i64, vmid: u32, node: &str) {
        if let Ok(mut m) = self.locations.lock() {
            m.insert((cluster_id, vmid), node.to_owned());
        }
    }

    /// Forgets where `vmid` is (after Proxmox said it is not there, or a migration).
    pub fn forget(&self, cluster_id: i64, vmid: u32) {
        if let Ok(mut m) = self.locations.lock() {
            m.remove(&(cluster_id, vmid));
        }
    }

    /// Tries every node of the cluster: connects (pinning on first use) and reports.
    pub async fn test(&self, cluster: &Cluster) -> Vec<NodeReport> {
        if let Ok(mut m) = self.addresses.lock() {
            m.remove(&cluster.id);
        }
        let mut out = Vec::new();
        for (node, _, _) in self.nodes(cluster).await {
            let t = match self.target(cluster, &node).await {
                Ok(t) => t,
                Err(e) => {
                    out.push(NodeReport {
                        node,
                        address: String::new(),
                        reachable: false,
                        host_key: None,
                        pinned: None,
                        confirmed: false,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let address = format!("{}:{}", t.host, t.port);
            let report = match self.open(cluster, &t).await {
                Ok(s) => {
                    let key = s.host_key_fingerprint().to_owned();
                    s.close().await;
                    NodeReport {
                        node,
                        address,
                        reachable: true,
                        host_key: Some(key),
                        pinned: t.pin,
                        confirmed: true,
                        error: None,
                    }
                }
                // The node answered with a key nobody confirmed yet: shown for confirmation.
                Err(GuestError::Unconfirmed { seen, .. }) => NodeReport {
                    node,
                    address,
                    reachable: true,
                    host_key: Some(seen),
                    pinned: None,
                    confirmed: false,
                    error: None,
                },
                Err(GuestError::Ssh(SshError::HostKeyMismatch { got, .. })) => NodeReport {
                    node,
                    address,
                    reachable: true,
                    host_key: Some(got.clone()),
                    pinned: t.pin,
                    confirmed: false,
                    error: Some(format!(
                        "the node presents {got}, not the confirmed key; confirm the new key only if the node was reinstalled"
                    )),
                },
                Err(e) => NodeReport {
                    node,
                    address,
                    reachable: false,
                    host_key: None,
                    pinned: t.pin,
                    confirmed: false,
                    error: Some(e.to_string()),
                },
            };
            out.push(report);
        }
        out
    }
}

fn locate_error(vmid: u32, message: &str) -> SshError {
    SshError::Remote {
        what: format!("finding the node of CT {vmid}"),
        exit_code: 255,
        message: message.to_owned(),
    }
}

/// A channel into a CT that follows it across nodes: each operation runs on the node holding
/// the CT, over that node's shared connection.
pub struct RoutedChannel {
    router: Arc<NodeRouter>,
    cluster: Cluster,
    vmid: u32,
    limit: Option<Duration>,
}

impl RoutedChannel {
    /// A channel into `vmid` of `cluster` with an in-guest `limit` per command.
    pub fn new(
        router: Arc<NodeRouter>,
        cluster: Cluster,
        vmid: u32,
        limit: Option<Duration>,
    ) -> Self {
        Self {
            router,
            cluster,
            vmid,
            limit,
        }
    }

    async fn pct(&self, fresh: bool) -> Result<(String, PctChannel, Arc<Semaphore>), SshError> {
        let node = self.router.locate(&self.cluster, self.vmid, fresh).await?;
        let (session, permits) =
            self.router
                .conn(&self.cluster, &node)
                .await
                .map_err(|e| match e {
                    GuestError::Ssh(e) => e,
                    other => SshError::Remote {
                        what: format!("connecting to node {node}"),
                        exit_code: 255,
                        message: other.to_string(),
                    },
                })?;
        let ch = PctChannel::new(session, self.vmid).with_options(PctOptions {
            push_mode: PushMode::ExecCat,
            guest_timeout: self.limit,
            ..PctOptions::default()
        });
        Ok((node, ch, permits))
    }

    /// Whether a helper (push, status) failed because the CT is not on `node`.
    fn failed_here<T>(&self, node: &str, result: &Result<T, SshError>) -> bool {
        match result {
            Err(SshError::Remote { message, .. }) => self.moved(node, message),
            _ => false,
        }
    }

    /// Whether `text` says the CT is not on `node`; then the location is forgotten.
    fn moved(&self, node: &str, text: &str) -> bool {
        let gone = not_here(text, self.vmid).is_some_and(|n| n == node);
        if gone {
            self.router.forget(self.cluster.id, self.vmid);
            tracing::info!(
                vmid = self.vmid,
                node,
                "CT is no longer on this node; locating it again"
            );
        }
        gone
    }
}

#[async_trait]
impl RemoteExec for RoutedChannel {
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let (node, ch, permits) = self.pct(false).await?;
        let out = {
            let _p = permits
                .acquire()
                .await
                .map_err(|e| SshError::Protocol(e.to_string()))?;
            ch.exec(cmd, on_line).await?
        };
        if out.exit_code != 255 || !self.moved(&node, &out.tail_text()) {
            return Ok(out);
        }
        let (again, ch, permits) = self.pct(true).await?;
        if again == node {
            return Ok(out);
        }
        let _p = permits
            .acquire()
            .await
            .map_err(|e| SshError::Protocol(e.to_string()))?;
        ch.exec(cmd, on_line).await
    }

    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError> {
        let (node, ch, permits) = self.pct(false).await?;
        let first = {
            let _p = permits
                .acquire()
                .await
                .map_err(|e| SshError::Protocol(e.to_string()))?;
            ch.push(content, dest, mode, owner).await
        };
        if !self.failed_here(&node, &first) {
            return first;
        }
        let (again, ch, permits) = self.pct(true).await?;
        if again == node {
            return first;
        }
        let _p = permits
            .acquire()
            .await
            .map_err(|e| SshError::Protocol(e.to_string()))?;
        ch.push(content, dest, mode, owner).await
    }

    async fn status(&self) -> Result<String, SshError> {
        let (node, ch, permits) = self.pct(false).await?;
        let first = {
            let _p = permits
                .acquire()
                .await
                .map_err(|e| SshError::Protocol(e.to_string()))?;
            ch.status().await
        };
        if !self.failed_here(&node, &first) {
            return first;
        }
        let (again, ch, permits) = self.pct(true).await?;
        if again == node {
            return first;
        }
        let _p = permits
            .acquire()
            .await
            .map_err(|e| SshError::Protocol(e.to_string()))?;
        ch.status().await
    }
}

#[cfg(test)]
mod tests {
    use super::not_here;

    #[test]
    fn recognises_pct_answers_for_a_guest_of_another_node() {
        let t = "Configuration file 'nodes/pve1/lxc/105.conf' does not exist\n";
        assert_eq!(not_here(t, 105).as_deref(), Some("pve1"));
        assert_eq!(not_here(t, 106), None);
        assert_eq!(not_here("container '105' not running!", 105), None);
        assert_eq!(
            not_here(
                "Configuration file 'nodes/a/b/lxc/105.conf' does not exist",
                105
            ),
            None
        );
    }
}
