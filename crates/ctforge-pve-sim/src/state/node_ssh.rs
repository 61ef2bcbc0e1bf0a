//! Per-node SSH bookkeeping: the address each node's SSH endpoint listens on (reported as the
//! node's `ip` by `GET /cluster/status`, as a real cluster reports each node's own address)
//! and the log of every command each node's endpoint received, so a test can prove which node
//! a command reached; and each node's own files (what clients upload over SFTP), in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::SimState;

/// One command line received by a node's SSH endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommand {
    /// The node whose endpoint received it.
    pub node: String,
    /// The command line as sent.
    pub line: String,
}

/// Addresses and the command log (not persisted: they describe this run).
#[derive(Default)]
pub(super) struct NodeSsh {
    ips: Mutex<BTreeMap<String, String>>,
    log: Mutex<Vec<SshCommand>>,
    /// (node, absolute path) → content; directories other than the standard ones are in `dirs`.
    files: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    dirs: Mutex<BTreeSet<(String, String)>>,
}

/// Directories every node has.
const STANDARD_DIRS: &[&str] = &["/", "/root", "/tmp", "/etc", "/var", "/var/tmp"];

/// Entries kept in the command log; the oldest are dropped beyond it.
const LOG_CAP: usize = 50_000;

impl SimState {
    /// Records where `node`'s SSH endpoint listens (its `ip` in `/cluster/status`).
    pub fn set_node_ip(&self, node: &str, ip: &str) {
        if let Ok(mut m) = self.inner.node_ssh.ips.lock() {
            m.insert(node.to_string(), ip.to_string());
        }
    }

    /// The address `node` is reached at, when its SSH endpoint is up.
    pub fn node_ip(&self, node: &str) -> Option<String> {
        self.inner
            .node_ssh
            .ips
            .lock()
            .ok()
            .and_then(|m| m.get(node).cloned())
    }

    /// Appends a command received by `node`'s endpoint to the log.
    pub fn log_ssh_command(&self, node: &str, line: &str) {
        tracing::debug!(node, line, "ssh command");
        if let Ok(mut l) = self.inner.node_ssh.log.lock() {
            if l.len() >= LOG_CAP {
                l.drain(..LOG_CAP / 10);
            }
            l.push(SshCommand {
                node: node.to_string(),
                line: line.to_string(),
            });
        }
    }

    /// Every command the nodes' SSH endpoints received, oldest first.
    pub fn ssh_log(&self) -> Vec<SshCommand> {
        self.inner
            .node_ssh
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The commands `node`'s endpoint received that mention CT `vmid` (`pct … <vmid> …`).
    pub fn ssh_commands_for(&self, node: &str, vmid: u32) -> Vec<String> {
        let id = vmid.to_string();
        self.ssh_log()
            .into_iter()
            .filter(|c| c.node == node && c.line.split_whitespace().nth(2) == Some(id.as_str()))
            .map(|c| c.line)
            .collect()
    }
}

impl SimState {
    /// A file of `node`'s filesystem (uploaded over SFTP).
    pub fn node_file(&self, node: &str, path: &str) -> Option<Vec<u8>> {
        let files = self.inner.node_ssh.files.lock().ok()?;
        files.get(&(node.to_string(), path.to_string())).cloned()
    }

    /// Writes a file of `node`'s filesystem.
    pub fn put_node_file(&self, node: &str, path: &str, data: Vec<u8>) {
        if let Ok(mut f) = self.inner.node_ssh.files.lock() {
            f.insert((node.to_string(), path.to_string()), data);
        }
    }

    /// Removes a file; false when there was none.
    pub fn remove_node_file(&self, node: &str, path: &str) -> bool {
        self.inner
            .node_ssh
            .files
            .lock()
            .map(|mut f| f.remove(&(node.to_string(), path.to_string())).is_some())
            .unwrap_or(false)
    }

    /// Creates a directory on `node`.
    pub fn make_node_dir(&self, node: &str, path: &str) {
        if let Ok(mut d) = self.inner.node_ssh.dirs.lock() {
            d.insert((node.to_string(), path.to_string()));
        }
    }

    /// Whether `path` is a directory on `node`.
    pub fn node_dir_exists(&self, node: &str, path: &str) -> bool {
        STANDARD_DIRS.contains(&path)
            || self
                .inner
                .node_ssh
                .dirs
                .lock()
                .map(|d| d.contains(&(node.to_string(), path.to_string())))
                .unwrap_or(false)
    }

    /// The entries directly in `dir` on `node`: (name, size, is a directory).
    pub fn node_dir_list(&self, node: &str, dir: &str) -> Vec<(String, u64, bool)> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        let child = |path: &str| -> Option<String> {
            let rest = path.strip_prefix(&prefix)?;
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
        };
        let mut out = Vec::new();
        if let Ok(f) = self.inner.node_ssh.files.lock() {
            for ((n, p), data) in f.iter() {
                if n == node
                    && let Some(name) = child(p)
                {
                    out.push((name, data.len() as u64, false));
                }
            }
        }
        let mut dirs: Vec<String> = STANDARD_DIRS.iter().map(|d| d.to_string()).collect();
        if let Ok(d) = self.inner.node_ssh.dirs.lock() {
            dirs.extend(d.iter().filter(|(n, _)| n == node).map(|(_, p)| p.clone()));
        }
        for d in dirs {
            if let Some(name) = child(&d) {
                out.push((name, 4096, true));
            }
        }
        out
    }
}
