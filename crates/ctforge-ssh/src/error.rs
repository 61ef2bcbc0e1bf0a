//! Errors of the provisioning channel.
//!
//! Messages are lowercase, say what to do about them, and never contain a
//! password, a private key or the content of a pushed file. A command that
//! runs and exits non-zero is not an error of [`crate::RemoteExec::exec`]:
//! its exit code is data in [`crate::ExecOutput`].

use std::time::Duration;

/// Everything that can go wrong on the SSH provisioning channel.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The TCP connection or the SSH handshake failed.
    #[error(
        "cannot connect to {host}:{port} over ssh: {reason}; check the node address and port and that sshd is running"
    )]
    Connect {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// What went wrong (no secrets).
        reason: String,
    },
    /// The server refused the credentials.
    #[error(
        "ssh authentication as {user}@{host} failed ({method}); check the user, password or private key in Settings"
    )]
    Auth {
        /// User name.
        user: String,
        /// Host name or address.
        host: String,
        /// `password` or `publickey`.
        method: &'static str,
    },
    /// The private key could not be decoded (bad PEM, wrong passphrase, unsupported type).
    #[error(
        "the ssh private key cannot be used: {reason}; paste an unencrypted OpenSSH ed25519/ecdsa key or give its passphrase"
    )]
    InvalidKey {
        /// Why (no key material).
        reason: String,
    },
    /// The server's host key does not match the pinned fingerprint.
    #[error(
        "the SSH host key of {host} changed from {expected} to {got}; if the node was reinstalled, update the pinned key in Settings, otherwise someone may be intercepting the connection"
    )]
    HostKeyMismatch {
        /// Host name or address.
        host: String,
        /// The pinned fingerprint (`SHA256:…`).
        expected: String,
        /// The fingerprint the server presented (`SHA256:…`).
        got: String,
    },
    /// The channel or connection closed before the command reported its exit status.
    #[error(
        "the ssh channel closed before {what} finished; the node may have rebooted or dropped the connection, retry the step"
    )]
    ChannelClosed {
        /// The operation (command text, truncated).
        what: String,
    },
    /// Connecting or a command took longer than allowed.
    #[error("{what} timed out after {}s; the node or container may be overloaded or unreachable", .after.as_secs_f64())]
    Timeout {
        /// The operation.
        what: String,
        /// The limit that was hit.
        after: Duration,
    },
    /// A command ran longer than its in-guest limit and was killed inside the container
    /// (`timeout -k`), so nothing of it keeps running there.
    #[error(
        "{what} was stopped after {:.1}s: it exceeded its {}s timeout and was killed inside the container; raise the timeout if it needs longer",
        .ran.as_secs_f64(),
        .limit.as_secs()
    )]
    GuestTimeout {
        /// The command (truncated).
        what: String,
        /// The limit it was given.
        limit: Duration,
        /// How long it ran until it was killed.
        ran: Duration,
    },
    /// A helper command of the channel (`pct push`, `pct status`, upload) exited non-zero.
    #[error("{what} failed with exit code {exit_code}: {message}")]
    Remote {
        /// The operation (no file content).
        what: String,
        /// Exit code.
        exit_code: u32,
        /// Last lines of its output.
        message: String,
    },
    /// Anything else the SSH library reported.
    #[error("ssh protocol error: {0}")]
    Protocol(String),
}

impl SshError {
    pub(crate) fn protocol(e: impl std::fmt::Display) -> Self {
        SshError::Protocol(e.to_string())
    }
}
