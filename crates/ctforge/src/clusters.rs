//! Cluster settings as a use-case: validate what the user typed, seal secrets, pin the TLS
//! fingerprint, audit every change, and test a connection. Web and API handlers both call here
//! (after `auth::require_admin`: cluster settings are a ctforge admin's).
//!
//! Stored secrets never follow a cluster to a new address: changing the API URL or the SSH port
//! (SSH goes to the URL's host) needs every stored secret typed again, so whoever edits a
//! cluster cannot point it at a listener of theirs and have ctforge send the old token there.
//! `http://` is refused unless `allow_insecure_http = true` is set for the cluster's name in
//! `[[clusters]]` of the configuration file.
//!
//! Each node's SSH is set here too: an address/port override per node, and its host key,
//! pinned only when an admin confirms the key the node presented to Test (like the API
//! certificate). Changing a node's address or port drops its pin, so a new host is never sent
//! the SSH secret before its key was confirmed.

use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::{Cluster, ClusterInput};

/// What a user submits to add or edit a cluster. Secrets left empty on edit keep their stored
/// value.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterForm {
    /// Unique display name.
    #[serde(default)]
    pub name: String,
    /// API URL (`https://host:8006`).
    #[serde(default)]
    pub url: String,
    /// API token id (`user@realm!name`).
    #[serde(default)]
    pub token_id: String,
    /// API token secret.
    #[serde(default)]
    pub token_secret: Option<String>,
    /// Confirmed TLS fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// SSH user for `pct`.
    #[serde(default)]
    pub ssh_user: Option<String>,
    /// SSH port.
    #[serde(default)]
    pub ssh_port: Option<u16>,
    /// SSH password.
    #[serde(default)]
    pub ssh_password: Option<String>,
    /// SSH private key (OpenSSH PEM).
    #[serde(default)]
    pub ssh_private_key: Option<String>,
    /// Pinned SSH host key fingerprint.
    #[serde(default)]
    pub ssh_host_key: Option<String>,
    /// Default cluster.
    #[serde(default)]
    pub default: bool,
}

/// A cluster as shown to users: never any secret, only whether one is set.
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ClusterView {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// API URL.
    pub url: String,
    /// API token id.
    pub token_id: String,
    /// A token secret is stored.
    pub has_token_secret: bool,
    /// Pinned TLS fingerprint.
    pub fingerprint: Option<String>,
    /// SSH user.
    pub ssh_user: String,
    /// SSH port.
    pub ssh_port: i64,
    /// An SSH password is stored.
    pub has_ssh_password: bool,
    /// An SSH key is stored.
    pub has_ssh_key: bool,
    /// Pinned SSH host key.
    pub ssh_host_key: Option<String>,
    /// Default cluster.
    pub default: bool,
}

impl From<&Cluster> for ClusterView {
    fn from(c: &Cluster) -> Self {
        Self {
            id: c.id,
            name: c.name.clone(),
            url: c.url.clone(),
            token_id: c.token_id.clone(),
            has_token_secret: c.token_secret_sealed.is_some(),
            fingerprint: c.fingerprint.clone(),
            ssh_user: c.ssh_user.clone(),
            ssh_port: c.ssh_port,
            has_ssh_password: c.ssh_password_sealed.is_some(),
            has_ssh_key: c.ssh_key_sealed.is_some(),
            ssh_host_key: c.ssh_host_key.clone(),
            default: c.is_default,
        }
    }
}

/// Result of a connection test.
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ConnectionReport {
    /// Proxmox VE version, if the API answered.
    pub version: Option<String>,
    /// Nodes and their status.
    pub nodes: Vec<(String, String)>,
    /// API problem, if any.
    pub api_error: Option<String>,
    /// SSH host key of the node (as pinned, or as seen and now pinned on first use).
    pub ssh_host_key: Option<String>,
    /// SSH problem (unreachable, wrong credentials, changed host key), if any.
    pub ssh_error: Option<String>,
    /// Each node's SSH: where it was tried, whether it answered, its host key and pin.
    #[serde(default)]
    pub ssh_nodes: Vec<crate::guest::nodes::NodeReport>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Normalises a fingerprint to `AB:CD:…` upper case; `None` if it is not 32 hex bytes.
pub fn normalise_fingerprint(raw: &str) -> Option<String> {
    let hex: String = raw.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if hex.len() != 64 || raw.chars().any(|c| !(c.is_ascii_hexdigit() || c == ':')) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    Some(
        upper
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Checks a form; returns per-field errors so the page can show them next to the inputs.
pub fn validate(form: &ClusterForm, existing: Option<&Cluster>) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let name = form.name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push((
            "name".into(),
            "use 1–64 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    match url::Url::parse(form.url.trim()) {
        Ok(url) if url.scheme() == "https" || url.scheme() == "http" => {}
        _ => errors.push((
            "url".into(),
            "enter the API address, e.g. https://pve1.example:8006".into(),
        )),
    }
    let token = form.token_id.trim();
    let token_ok = token
        .split_once('!')
        .is_some_and(|(user, id)| user.contains('@') && !id.is_empty() && !user.starts_with('@'));
    if !token_ok {
        errors.push((
            "token_id".into(),
            "enter the token id as user@realm!name, e.g. root@pam!ctforge".into(),
        ));
    }
    if non_empty(&form.token_secret).is_none()
        && existing.is_none_or(|c| c.token_secret_sealed.is_none())
    {
        errors.push((
            "token_secret".into(),
            "enter the API token secret (shown once when the token was created in Proxmox)".into(),
        ));
    }
    if let Some(fp) = non_empty(&form.fingerprint)
        && normalise_fingerprint(fp).is_none()
    {
        errors.push((
            "fingerprint".into(),
            "a SHA-256 fingerprint is 32 hex bytes separated by ':'".into(),
        ));
    }
    errors
}

fn audit_entry(actor: &str, action: &str, target: &str, remote: &str) -> crate::audit::Entry {
    crate::audit::Entry::new(actor, action, target, remote)
}

/// Outcome of a save attempt.
#[derive(Debug)]
pub enum Saved {
    /// Stored.
    Done(Box<Cluster>),
    /// The server's certificate must be confirmed first; this is its fingerprint.
    ConfirmFingerprint(String),
}

/// Creates (`id` None) or updates a cluster. Without a confirmed fingerprint, an `https` URL's
/// certificate fingerprint is fetched and returned for confirmation; nothing is stored.
pub async fn save(
    state: &AppState,
    id: Option<i64>,
    form: &ClusterForm,
    actor: &str,
    remote: &str,
) -> Result<Saved, AppError> {
    let existing = match id {
        Some(id) => Some(state.store.get_cluster(id).await.map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound(format!("cluster {id}")),
            other => other.into(),
        })?),
        None => None,
    };
    let errors = validate(form, existing.as_ref());
    if !errors.is_empty() {
        return Err(AppError::Invalid {
            message: "the cluster settings need attention".into(),
            fields: errors,
        });
    }
    let url = form.url.trim().trim_end_matches('/').to_owned();
    let name = form.name.trim();
    if url.starts_with("http://")
        && !state
            .config
            .clusters
            .iter()
            .any(|c| c.name == name && c.allow_insecure_http)
    {
        let message = format!(
            "http:// would send the API token and users' passwords in clear; use https://, or set allow_insecure_http = true for cluster {name:?} in the configuration file"
        );
        return Err(AppError::Invalid {
            message: message.clone(),
            fields: vec![("url".into(), message)],
        });
    }
    if let Some(old) = &existing {
        let missing = secrets_to_reenter(old, form, &url);
        if !missing.is_empty() {
            return Err(AppError::Invalid {
                message: "the cluster's address changed: enter every secret again (stored secrets are never sent to a new address)".into(),
                fields: missing,
            });
        }
    }
    let fingerprint = match non_empty(&form.fingerprint).and_then(normalise_fingerprint) {
        Some(fp) => Some(fp),
        None if url.starts_with("https://") => {
            let seen = ctforge_pve::fetch_fingerprint(&url).await.map_err(|e| {
                AppError::Unavailable(format!("cannot fetch the TLS certificate of {url}: {e}"))
            })?;
            return Ok(Saved::ConfirmFingerprint(seen));
        }
        None => None,
    };
    let seal =
        |value: Option<&str>, previous: Option<&String>| -> Result<Option<String>, AppError> {
            match value {
                Some(v) => state
                    .keyring
                    .seal(v)
                    .map(Some)
                    .map_err(|e| AppError::Internal(e.into())),
                None => Ok(previous.cloned()),
            }
        };
    let input = ClusterInput {
        name: form.name.trim().to_owned(),
        url,
        token_id: form.token_id.trim().to_owned(),
        token_secret_sealed: seal(
            non_empty(&form.token_secret),
            existing
                .as_ref()
                .and_then(|c| c.token_secret_sealed.as_ref()),
        )?,
        fingerprint,
        ssh_user: non_empty(&form.ssh_user).unwrap_or("root").to_owned(),
        ssh_port: i64::from(form.ssh_port.unwrap_or(22)),
        ssh_password_sealed: seal(
            non_empty(&form.ssh_password),
            existing
                .as_ref()
                .and_then(|c| c.ssh_password_sealed.as_ref()),
        )?,
        ssh_key_sealed: seal(
            non_empty(&form.ssh_private_key),
            existing.as_ref().and_then(|c| c.ssh_key_sealed.as_ref()),
        )?,
        ssh_host_key: non_empty(&form.ssh_host_key)
            .map(str::to_owned)
            .or_else(|| existing.as_ref().and_then(|c| c.ssh_host_key.clone())),
        is_default: form.default
            || existing.is_none() && state.store.list_clusters().await?.is_empty(),
    };
    let id = match id {
        Some(id) => {
            state.store.update_cluster(id, &input).await?;
            crate::audit::record(
                state.store.as_ref(),
                audit_entry(actor, "cluster.update", &input.name, remote),
            )
            .await?;
            id
        }
        None => {
            let id = state
                .store
                .insert_cluster(&input)
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => AppError::Invalid {
                        message: "the cluster settings need attention".into(),
                        fields: vec![(
                            "name".into(),
                            format!("a cluster named {:?} exists already", input.name),
                        )],
                    },
                    other => other.into(),
                })?;
            crate::audit::record(
                state.store.as_ref(),
                audit_entry(actor, "cluster.create", &input.name, remote),
            )
            .await?;
            id
        }
    };
    Ok(Saved::Done(Box::new(state.store.get_cluster(id).await?)))
}

/// The secrets an edit of `old` must carry: every stored one when the API URL (`url`,
/// normalised) or the SSH port changes; none otherwise.
fn secrets_to_reenter(old: &Cluster, form: &ClusterForm, url: &str) -> Vec<(String, String)> {
    let port = i64::from(form.ssh_port.unwrap_or(22));
    if old.url.trim_end_matches('/') == url && old.ssh_port == port {
        return Vec::new();
    }
    let again = "the address changed: enter this secret again".to_owned();
    let mut missing = Vec::new();
    if non_empty(&form.token_secret).is_none() {
        missing.push(("token_secret".to_owned(), again.clone()));
    }
    if old.ssh_password_sealed.is_some() && non_empty(&form.ssh_password).is_none() {
        missing.push(("ssh_password".to_owned(), again.clone()));
    }
    if old.ssh_key_sealed.is_some() && non_empty(&form.ssh_private_key).is_none() {
        missing.push(("ssh_private_key".to_owned(), again));
    }
    missing
}

/// Makes cluster `id` the default (the one sign-in offers first); audited.
pub async fn make_default(
    state: &AppState,
    id: i64,
    actor: &str,
    remote: &str,
) -> Result<(), AppError> {
    let cluster = state
        .store
        .get_cluster(id)
        .await
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))?;
    let mut input = ClusterInput::from(&cluster);
    input.is_default = true;
    state.store.update_cluster(id, &input).await?;
    crate::audit::record(
        state.store.as_ref(),
        audit_entry(actor, "cluster.default", &cluster.name, remote),
    )
    .await?;
    Ok(())
}

/// Deletes a cluster (and ctforge's records of its containers, its role grants and tokens);
/// refused when it holds the last ctforge admin.
pub async fn delete(state: &AppState, id: i64, actor: &str, remote: &str) -> Result<(), AppError> {
    let cluster = state
        .store
        .get_cluster(id)
        .await
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))?;
    crate::roles::check_cluster_delete(state, id).await?;
    state.store.delete_cluster(id).await?;
    crate::audit::record(
        state.store.as_ref(),
        audit_entry(actor, "cluster.delete", &cluster.name, remote),
    )
    .await?;
    Ok(())
}

/// Talks to the cluster with its API token: version and nodes. Never fails; problems are part
/// of the report.
pub async fn test_connection(state: &AppState, cluster: &Cluster) -> ConnectionReport {
    let (ssh_host_key, ssh_error) = match state.guests.connect(cluster).await {
        Ok(session) => {
            let key = session.host_key();
            session.close().await;
            (key, None)
        }
        Err(e) => (cluster.ssh_host_key.clone(), Some(e.to_string())),
    };
    let ssh_nodes = if ssh_error.is_none() {
        state.guests.test_nodes(cluster).await
    } else {
        Vec::new()
    };
    // Pins recorded by the test (first use) show at once.
    let ssh_host_key = match state.store.get_cluster(cluster.id).await {
        Ok(c) if c.ssh_host_key.is_some() => c.ssh_host_key,
        _ => ssh_host_key,
    };
    let ssh_error = ssh_error.or_else(|| {
        let down: Vec<String> = ssh_nodes
            .iter()
            .filter_map(|n| match (&n.error, &n.host_key) {
                (Some(e), _) => Some(format!("{}: {e}", n.node)),
                (None, Some(k)) if !n.confirmed => {
                    Some(format!("{}: host key {k} not confirmed yet", n.node))
                }
                _ => None,
            })
            .collect();
        (!down.is_empty()).then(|| down.join("; "))
    });
    let client = match state.pve.service(cluster) {
        Ok(c) => c,
        Err(e) => {
            return ConnectionReport {
                version: None,
                nodes: Vec::new(),
                api_error: Some(e.to_string()),
                ssh_host_key,
                ssh_error,
                ssh_nodes,
            };
        }
    };
    let version = client.version().await;
    let nodes = client.nodes().await;
    match (version, nodes) {
        (Ok(v), Ok(nodes)) => {
            let nodes: Vec<(String, String)> =
                nodes.into_iter().map(|n| (n.node, n.status)).collect();
            if let Err(e) = state.store.set_cluster_nodes(cluster.id, &nodes).await {
                tracing::warn!(error = %e, "cannot record cluster nodes");
            }
            ConnectionReport {
                version: Some(format!("{} ({})", v.version, v.release)),
                nodes,
                api_error: None,
                ssh_host_key,
                ssh_error,
                ssh_nodes,
            }
        }
        (Err(e), _) | (_, Err(e)) => ConnectionReport {
            version: None,
            nodes: Vec::new(),
            api_error: Some(e.to_string()),
            ssh_host_key,
            ssh_error,
            ssh_nodes,
        },
    }
}

/// A node's SSH settings as shown to admins.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct NodeSshView {
    /// Node name.
    pub node: String,
    /// Address override (`None`: the node's ip from `/cluster/status`, or the URL's host for
    /// the node answering the API).
    pub address: Option<String>,
    /// Port override (`None`: the cluster's SSH port).
    pub port: Option<u16>,
    /// The confirmed host key (`SHA256:…`); `None`: ctforge refuses the node until one is
    /// confirmed.
    pub host_key: Option<String>,
}

/// `PUT …/nodes/{node}/ssh`: a node's address/port override (both empty: none).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSshForm {
    /// Host name or IP address ctforge reaches the node's SSH at.
    #[serde(default)]
    pub address: Option<String>,
    /// Port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `POST …/nodes/{node}/host-key`: the key an admin compared and confirms.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostKeyConfirmation {
    /// The fingerprint Test showed (`SHA256:…`), as `ssh-keygen -lf` prints it on the node.
    pub host_key: String,
}

/// An OpenSSH SHA-256 host key fingerprint in its one spelling (`SHA256:` + 43 characters of
/// unpadded base64); `None` if `raw` is not one.
pub fn normalise_host_key(raw: &str) -> Option<String> {
    let body = raw.trim();
    let body = body
        .strip_prefix("SHA256:")
        .unwrap_or(body)
        .trim_end_matches('=');
    let ok = body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    ok.then(|| format!("SHA256:{body}"))
}

/// A node name as Proxmox allows it (a DNS label).
fn valid_node_name(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 63
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

async fn cluster_by_id(state: &AppState, id: i64) -> Result<Cluster, AppError> {
    state.store.get_cluster(id).await.map_err(|e| match e {
        StoreError::NotFound => AppError::NotFound(format!("cluster {id}")),
        other => other.into(),
    })
}

/// Every node of cluster `id` ctforge knows (from the last Test or the dashboard) or has
/// settings for, with those settings.
pub async fn node_ssh(state: &AppState, id: i64) -> Result<Vec<NodeSshView>, AppError> {
    let cluster = cluster_by_id(state, id).await?;
    let settings = state.store.list_node_ssh(cluster.id).await?;
    let mut names: Vec<String> = state
        .store
        .list_cluster_nodes(cluster.id)
        .await?
        .into_iter()
        .map(|n| n.name)
        .chain(settings.iter().map(|n| n.node.clone()))
        .collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|node| {
            let s = settings.iter().find(|n| n.node == node);
            NodeSshView {
                address: s.and_then(|s| s.address.clone()).filter(|a| !a.is_empty()),
                port: s.and_then(|s| s.port).and_then(|p| u16::try_from(p).ok()),
                host_key: s.and_then(|s| s.host_key.clone()).filter(|k| !k.is_empty()),
                node,
            }
        })
        .collect())
}

fn node_view(list: Vec<NodeSshView>, node: &str) -> Result<NodeSshView, AppError> {
    list.into_iter()
        .find(|n| n.node == node)
        .ok_or_else(|| AppError::NotFound(format!("node {node}")))
}

/// Sets (or clears) node `node`'s SSH address/port override of cluster `id`; audited as
/// `cluster.node_ssh`. A changed address or port drops the node's pinned key.
pub async fn set_node_ssh(
    state: &AppState,
    id: i64,
    node: &str,
    form: &NodeSshForm,
    actor: &str,
    remote: &str,
) -> Result<NodeSshView, AppError> {
    let cluster = cluster_by_id(state, id).await?;
    let mut fields = Vec::new();
    if !valid_node_name(node) {
        fields.push(("node".to_owned(), "not a node name".to_owned()));
    }
    let address = non_empty(&form.address);
    if let Some(a) = address {
        let host = a.trim_matches(['[', ']']);
        let ok = host.parse::<std::net::IpAddr>().is_ok()
            || (host.len() <= 253
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }));
        if !ok {
            fields.push((
                "address".to_owned(),
                "enter a host name or an IP address, e.g. 10.0.0.13".to_owned(),
            ));
        }
    }
    if form.port == Some(0) {
        fields.push((
            "port".to_owned(),
            "enter a port between 1 and 65535".to_owned(),
        ));
    }
    if !fields.is_empty() {
        return Err(AppError::Invalid {
            message: format!("the SSH settings of node {node} need attention"),
            fields,
        });
    }
    let address = address.map(|a| a.trim_matches(['[', ']']).to_owned());
    state
        .store
        .set_node_ssh_override(
            cluster.id,
            node,
            address.as_deref(),
            form.port.map(i64::from),
        )
        .await?;
    crate::audit::record(
        state.store.as_ref(),
        audit_entry(
            actor,
            "cluster.node_ssh",
            &format!("{}/{node}", cluster.name),
            remote,
        )
        .detail(serde_json::json!({ "address": address, "port": form.port })),
    )
    .await?;
    node_view(node_ssh(state, id).await?, node)
}

/// Pins `key` as node `node`'s SSH host key of cluster `id`: the admin compared the key Test
/// showed with the node's own. Audited as `cluster.ssh_host_key`.
pub async fn confirm_node_key(
    state: &AppState,
    id: i64,
    node: &str,
    key: &str,
    actor: &str,
    remote: &str,
) -> Result<NodeSshView, AppError> {
    let cluster = cluster_by_id(state, id).await?;
    let known = node_ssh(state, id).await?.iter().any(|n| n.node == node);
    if !known {
        return Err(AppError::NotFound(format!(
            "node {node} of cluster {} (run Test first)",
            cluster.name
        )));
    }
    let Some(key) = normalise_host_key(key) else {
        return Err(AppError::Invalid {
            message: "not an SSH host key fingerprint".into(),
            fields: vec![(
                "host_key".into(),
                "a SHA256 fingerprint as ssh-keygen -lf prints it, e.g. SHA256:abc…".into(),
            )],
        });
    };
    state
        .store
        .pin_node_host_key(cluster.id, node, Some(&key))
        .await?;
    crate::audit::record(
        state.store.as_ref(),
        audit_entry(
            actor,
            "cluster.ssh_host_key",
            &format!("{}/{node}", cluster.name),
            remote,
        )
        .detail(serde_json::json!({ "host_key": key })),
    )
    .await?;
    node_view(node_ssh(state, id).await?, node)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::guest::FakeConnector;
    use crate::pve::fake::{FakePve, FakePveConnector};

    /// The connection test runs entirely in process: Proxmox and the guest channel are the
    /// fakes injected into `AppState`, the database a temporary SQLite file.
    #[tokio::test]
    async fn connection_test_goes_through_the_injected_connectors() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_owned(),
            ..crate::config::Config::default()
        };
        let clock = crate::clock::ManualClock::new(1_700_000_000_000);
        let mut state = crate::startup::build_state(config, clock, None)
            .await
            .unwrap();
        let pve = Arc::new(FakePve::new("9.1.9", &["pve1", "pve2"]));
        let guests = Arc::new(FakeConnector::default());
        state.pve = Arc::new(FakePveConnector(pve.clone()));
        state.guests = guests.clone();
        let id = state
            .store
            .insert_cluster(&ClusterInput {
                name: "lab".into(),
                url: "https://pve.invalid:8006".into(),
                token_id: "ctforge@pve!ctforge".into(),
                token_secret_sealed: None,
                fingerprint: None,
                ssh_user: "root".into(),
                ssh_port: 22,
                ssh_password_sealed: None,
                ssh_key_sealed: None,
                ssh_host_key: None,
                is_default: true,
            })
            .await
            .unwrap();
        let cluster = state.store.get_cluster(id).await.unwrap();
        let report = test_connection(&state, &cluster).await;
        assert_eq!(report.api_error, None);
        assert_eq!(report.ssh_error, None);
        assert_eq!(report.version.as_deref(), Some("9.1.9 (9.1)"));
        assert_eq!(report.nodes.len(), 2);
        assert_eq!(guests.connects(), 1);
        assert_eq!((pve.calls("version"), pve.calls("nodes")), (1, 1));
    }

    #[test]
    fn host_keys_normalise() {
        let b = "A".repeat(42) + "b";
        assert_eq!(
            normalise_host_key(&format!("SHA256:{b}")),
            Some(format!("SHA256:{b}"))
        );
        assert_eq!(normalise_host_key(&b), Some(format!("SHA256:{b}")));
        assert_eq!(normalise_host_key("SHA256:short"), None);
        assert_eq!(
            normalise_host_key(&format!("SHA256:{}!", "A".repeat(42))),
            None
        );
    }

    #[test]
    fn fingerprints_normalise() {
        let lower = "ab:".repeat(31) + "cd";
        assert_eq!(normalise_fingerprint(&lower), Some("AB:".repeat(31) + "CD"));
        assert_eq!(
            normalise_fingerprint(&"AB".repeat(32)),
            Some("AB:".repeat(31) + "AB")
        );
        assert_eq!(normalise_fingerprint("AB:CD"), None);
        assert_eq!(normalise_fingerprint(&("ZZ:".repeat(31) + "ZZ")), None);
    }

    #[test]
    fn validation_names_each_field() {
        let errors = validate(&ClusterForm::default(), None);
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["name", "url", "token_id", "token_secret"]);
        let ok = ClusterForm {
            name: "home".into(),
            url: "https://pve:8006".into(),
            token_id: "root@pam!ctforge".into(),
            token_secret: Some("s".into()),
            ..Default::default()
        };
        assert!(validate(&ok, None).is_empty());
    }
}
