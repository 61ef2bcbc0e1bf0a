//! `ctforge-pve-sim`: a faithful Proxmox VE simulator.
//!
//! It speaks the Proxmox VE HTTP API (`/api2/json/...`) for the endpoints ctforge
//! uses, with the runtime behaviour of a real PVE 9.1 server: the `{"data":…}`
//! envelope, tickets with CSRF tokens, API tokens with privilege separation,
//! asynchronous UPID tasks with growing logs, Proxmox's own error codes and texts,
//! locks, pending config, rrddata with field omission, storage content and
//! appliance downloads, several nodes (one of which can go down: 595/596), and
//! fault injection. An SSH endpoint accepts `pct exec`, `pct push` and
//! `pct status`, answered by a container backend: in memory, or real LXC
//! containers ([`backend::lxc`]).
//!
//! Start it with [`start`] and a [`SimConfig`]; the returned [`SimHandle`] tells
//! the URL, TLS fingerprint and credentials, and gives tests access to the
//! simulator state ([`SimHandle::state`]). The `ctforge sim` subcommand is in
//! [`cli`].

pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
pub mod crypt;
pub mod error;
pub mod hold;
pub mod rrd;
pub mod scenario;
pub mod server;
pub mod sftp;
pub mod ssh;
pub mod state;
pub mod tasks;
pub mod tls;
pub mod validate;

pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{Backend, LxcOptions, SimConfig, Timings};
pub use hold::{Hold, HoldPoint};
pub use scenario::Scenario;
pub use state::SimState;

/// Errors that can prevent the simulator from starting.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or accepting on a socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS certificate or configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The SSH server could not be set up.
    #[error("SSH setup failed: {0}")]
    Ssh(String),
    /// The scenario is invalid (bad regex, unknown node, ...).
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// The requested backend is not available.
    #[error("backend not available: {0}")]
    Backend(String),
    /// Persisted state could not be read or written.
    #[error("state persistence failed: {0}")]
    State(String),
}

/// A running simulator: where to reach it, credentials, and a handle on its state.
pub struct SimHandle {
    /// Base URL of the HTTP API, e.g. `https://127.0.0.1:8006` (no `/api2/json`).
    pub base_url: String,
    /// SHA-256 fingerprint of the TLS certificate (`AB:CD:…`), empty in plain HTTP mode.
    pub fingerprint: String,
    /// The TLS certificate in PEM form (empty in plain HTTP mode).
    pub cert_pem: String,
    /// Password of `root@pam` (also the SSH password of `root`).
    pub root_password: String,
    /// Full API token id of the privileged token, `root@pam!ctforge`.
    pub token_id: String,
    /// Secret (UUID) of the `root@pam!ctforge` token.
    pub token_secret: String,
    /// Secret of the privilege-separated token `root@pam!noperm` that has no rights.
    pub noperm_token_secret: String,
    /// Address the HTTP API listens on.
    pub http_addr: SocketAddr,
    /// Address of the SSH endpoint, when enabled.
    pub ssh_addr: Option<SocketAddr>,
    /// SHA-256 fingerprint of the SSH host key (`SHA256:…` OpenSSH style), when enabled.
    pub ssh_host_key_fingerprint: Option<String>,
    /// Every node's SSH endpoint, in node order (the first is `ssh_addr`).
    pub ssh_nodes: Vec<ssh::NodeEndpoint>,
    state: SimState,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    joins: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The simulator state, to inspect or mutate from tests (mark a node down, set
    /// a CT's services, add faults, advance the clock, ...).
    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// `PVEAPIToken=root@pam!ctforge=<secret>`: the value of an `Authorization` header.
    pub fn token_header(&self) -> String {
        format!("PVEAPIToken={}={}", self.token_id, self.token_secret)
    }

    /// The API root, `<base_url>/api2/json`.
    pub fn api_url(&self) -> String {
        format!("{}/api2/json", self.base_url)
    }

    /// Stop the HTTP and SSH servers, persist state when a state dir is set, and wait.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        for j in self.joins.drain(..) {
            let _ = j.await;
        }
        if let Err(e) = self.state.persist() {
            tracing::warn!("could not persist simulator state: {e}");
        }
    }
}

/// Start the simulator: build the state from the config (and scenario), bind the
/// HTTP listener (TLS unless `tls` is false) and, when configured, the SSH endpoint.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    let state = SimState::build(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let http_addr = listener.local_addr()?;

    let (tls_acceptor, fingerprint, cert_pem) = if cfg.tls {
        let cert = tls::load_or_generate(cfg.state_dir.as_deref(), &state.node_names())?;
        let acceptor = tls::acceptor(&cert)?;
        (
            Some(acceptor),
            cert.fingerprint.clone(),
            cert.cert_pem.clone(),
        )
    } else {
        (None, String::new(), String::new())
    };
    let scheme = if cfg.tls { "https" } else { "http" };
    let base_url = format!("{scheme}://{http_addr}");

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut joins = Vec::new();
    let app = Arc::new(server::App::new(state.clone()));
    joins.push(tokio::spawn(server::serve(
        listener,
        tls_acceptor,
        app,
        shutdown_rx.clone(),
    )));

    let mut ssh_nodes = Vec::new();
    if let Some(addr) = cfg.ssh_listen {
        let (nodes, j) = ssh::spawn_nodes(
            state.clone(),
            addr,
            &cfg.ssh_node_listen,
            shutdown_rx.clone(),
        )
        .await?;
        ssh_nodes = nodes;
        joins.extend(j);
    }
    let ssh_addr = ssh_nodes.first().map(|n| n.addr);
    let ssh_fp = ssh_nodes.first().map(|n| n.fingerprint.clone());
    let creds = state.credentials();
    Ok(SimHandle {
        base_url,
        fingerprint,
        cert_pem,
        root_password: creds.root_password,
        token_id: creds.token_id,
        token_secret: creds.token_secret,
        noperm_token_secret: creds.noperm_token_secret,
        http_addr,
        ssh_addr,
        ssh_host_key_fingerprint: ssh_fp,
        ssh_nodes,
        state,
        shutdown_tx,
        joins,
    })
}
