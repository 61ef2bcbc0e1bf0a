//! The crate's single error type, [`PveError`], and the mapping from Proxmox
//! VE HTTP answers (status code, reason phrase, `message`/`errors` body) to it.
//!
//! Proxmox reports almost every handler failure as HTTP 500 with a text
//! message (REFERENCE.md §1.3), so the well-known texts are recognised here:
//! `Configuration file … does not exist` → [`PveError::NotFound`],
//! `CT 100 already running` → [`PveError::AlreadyRunning`], and so on. Every
//! variant's documentation states whether repeating the request is safe.

use std::collections::BTreeMap;

/// Result alias used throughout the crate.
pub type Result<T, E = PveError> = std::result::Result<T, E>;

/// Every error the Proxmox VE client can return.
///
/// "Retry safe" in the variant docs means: sending the *same* request again
/// cannot cause a duplicate effect on the cluster, whatever its HTTP method.
/// [`PveError::is_retry_safe`] returns exactly that; [`PveError::is_transient`]
/// says whether the failure is likely to go away (which the client uses to
/// retry idempotent GETs).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    /// HTTP 400 `Parameter verification failed.`: the request was rejected
    /// before anything happened; `errors` maps each parameter to its problem.
    /// Retry safe, but pointless without changing the request.
    #[error("invalid parameters: {message}{}", fmt_errors(errors))]
    Parameter {
        /// The server's message (normally `Parameter verification failed.`).
        message: String,
        /// Per-parameter error texts.
        errors: BTreeMap<String, String>,
    },

    /// HTTP 401: no, invalid or expired credentials (`authentication failure`,
    /// `No ticket`, `invalid csrf token`). Retry safe after logging in again
    /// or renewing the ticket; nothing happened on the server.
    #[error("authentication failed: {message} (log in again or check the API token)")]
    Unauthorized {
        /// The server's message or reason phrase.
        message: String,
    },

    /// HTTP 403 `Permission check failed (/vms/100, VM.PowerMgmt)`. Retry safe
    /// (nothing happened) but it fails again until the ACLs change.
    #[error("permission denied: {message} (grant the privilege on the path in Proxmox)")]
    PermissionDenied {
        /// ACL path from the message, e.g. `/vms/100`, when recognisable.
        path: Option<String>,
        /// Privilege from the message, e.g. `VM.PowerMgmt`, when recognisable.
        privilege: Option<String>,
        /// The full server message.
        message: String,
    },

    /// The object does not exist (HTTP 500 `Configuration file … does not
    /// exist`, or 404). Retry safe.
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
    },

    /// HTTP 500 `CT 100 already running`. Retry safe (nothing happened); for a
    /// start request this usually means the goal is already reached.
    #[error("already running: {message}")]
    AlreadyRunning {
        /// The server's message.
        message: String,
    },

    /// HTTP 500 `CT 100 not running`. Retry safe (nothing happened).
    #[error("not running: {message}")]
    NotRunning {
        /// The server's message.
        message: String,
    },

    /// HTTP 500 `CT 101 already exists on node 'pve'`. Retry safe (nothing
    /// happened); pick another VMID via `cluster_nextid`.
    #[error("already exists: {message} (choose another vmid)")]
    AlreadyExists {
        /// The server's message.
        message: String,
    },

    /// The guest is locked (`CT is locked (create)`) or its config lock timed
    /// out (`can't lock file … - got timeout`). Retry safe after a delay: the
    /// request was refused before anything changed.
    #[error("locked: {message} (wait for the running operation to finish and retry)")]
    Locked {
        /// The server's message.
        message: String,
    },

    /// The API call was proxied to a cluster node that could not be reached
    /// (HTTP 595 connection, 596 TLS/send, 599 other). Retry safe for 595
    /// (the request never reached the node); for 596/599 only idempotent
    /// requests should be repeated.
    #[error("node unreachable (HTTP {status}): {message} (check that the node is online)")]
    NodeUnreachable {
        /// 595, 596 or 599.
        status: u16,
        /// The reason phrase, e.g. `Connection refused`.
        message: String,
    },

    /// Any other HTTP error status with the Proxmox message. Not retry safe
    /// for non-GET requests (the handler may have done part of its work).
    #[error("proxmox error (HTTP {status}): {message}")]
    Server {
        /// HTTP status code.
        status: u16,
        /// The server's message (body `message`, else reason phrase, else body).
        message: String,
    },

    /// The request did not complete within the configured timeout. Not retry
    /// safe for writes: the server may have executed it (see
    /// [`crate::create_lxc_checked`]).
    #[error("request timed out after {after_ms} ms (raise the timeout or check the network)")]
    Timeout {
        /// How long the client waited, in milliseconds.
        after_ms: u64,
    },

    /// The server's certificate does not match the pinned SHA-256 fingerprint.
    /// Not retry safe (and pointless): confirm the new fingerprint first.
    #[error(
        "tls certificate fingerprint mismatch: expected {expected}, server presented {got} \
         (if the certificate was renewed on purpose, confirm and pin the new fingerprint in the cluster settings)"
    )]
    Tls {
        /// The pinned fingerprint.
        expected: String,
        /// The fingerprint the server presented (`unknown` if not captured).
        got: String,
    },

    /// A transport failure (DNS, connection refused, reset, TLS handshake).
    /// Retry safe only when `connect` is true (nothing was sent).
    #[error("transport error: {message} (check the API URL and that pveproxy is reachable)")]
    Transport {
        /// Description without secrets.
        message: String,
        /// True when the connection could not be established at all.
        connect: bool,
    },

    /// The response could not be decoded. Not retry safe for writes: the
    /// server did process the request.
    #[error("cannot decode proxmox response: {message}")]
    Decode {
        /// What failed to decode.
        message: String,
    },

    /// A task ended with an error exit status. Not retry safe blindly: check
    /// the resulting state first.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed {
        /// The task's UPID.
        upid: String,
        /// The exit status text, e.g. `unable to create CT 104 - …`.
        exitstatus: String,
    },

    /// Waiting for a task exceeded its deadline; the task may still be running.
    /// Retry safe (waiting again is harmless).
    #[error("task {upid} still running after {waited_ms} ms (wait longer or check the task log)")]
    TaskTimeout {
        /// The task's UPID.
        upid: String,
        /// How long the client waited, in milliseconds.
        waited_ms: u64,
    },

    /// The client configuration or a value given to it is invalid (bad URL,
    /// bad fingerprint, unparseable UPID...). Nothing was sent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn fmt_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(" ({})", parts.join("; "))
}

impl PveError {
    /// True when the same request may be sent again without risking a
    /// duplicate effect, whatever its HTTP method.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            PveError::Parameter { .. }
            | PveError::Unauthorized { .. }
            | PveError::PermissionDenied { .. }
            | PveError::NotFound { .. }
            | PveError::AlreadyRunning { .. }
            | PveError::NotRunning { .. }
            | PveError::AlreadyExists { .. }
            | PveError::Locked { .. }
            | PveError::TaskTimeout { .. }
            | PveError::Config(_) => true,
            PveError::NodeUnreachable { status, .. } => *status == 595,
            PveError::Transport { connect, .. } => *connect,
            PveError::Server { .. }
            | PveError::Timeout { .. }
            | PveError::Tls { .. }
            | PveError::Decode { .. }
            | PveError::TaskFailed { .. } => false,
        }
    }

    /// True when the failure is likely temporary (connection problems,
    /// timeouts, unreachable node, lock contention, 502/503/504).
    pub fn is_transient(&self) -> bool {
        match self {
            PveError::NodeUnreachable { .. }
            | PveError::Timeout { .. }
            | PveError::Locked { .. } => true,
            PveError::Transport { .. } => true,
            PveError::Server { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// True for [`PveError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, PveError::NotFound { .. })
    }

    /// The HTTP status behind this error, when it came from an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            PveError::Parameter { .. } => Some(400),
            PveError::Unauthorized { .. } => Some(401),
            PveError::PermissionDenied { .. } => Some(403),
            PveError::NodeUnreachable { status, .. } | PveError::Server { status, .. } => {
                Some(*status)
            }
            PveError::NotFound { .. }
            | PveError::AlreadyRunning { .. }
            | PveError::NotRunning { .. }
            | PveError::AlreadyExists { .. }
            | PveError::Locked { .. } => Some(500),
            _ => None,
        }
    }

    /// Map an HTTP error answer to a [`PveError`].
    ///
    /// `reason` is the HTTP reason phrase (Proxmox puts the first line of the
    /// message there), `body` the raw response body.
    pub fn from_http(status: u16, reason: Option<&str>, body: &[u8]) -> PveError {
        #[derive(serde::Deserialize)]
        struct ErrBody {
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            errors: Option<serde_json::Value>,
        }
        let parsed: Option<ErrBody> = serde_json::from_slice(body).ok();
        let body_text = String::from_utf8_lossy(body);
        let body_text = body_text.trim();
        let mut message = parsed
            .as_ref()
            .and_then(|b| b.message.clone())
            .map(|m| m.trim_end().to_string())
            .filter(|m| !m.is_empty())
            .or_else(|| {
                reason
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
            })
            .or_else(|| {
                if body_text.is_empty() || body_text.starts_with('{') {
                    None
                } else {
                    Some(body_text.chars().take(500).collect())
                }
            })
            .unwrap_or_else(|| format!("http status {status}"));
        if message.len() > 2000 {
            message.truncate(message.floor_char_boundary(2000));
        }
        let mut errors = BTreeMap::new();
        if let Some(serde_json::Value::Object(map)) = parsed.and_then(|b| b.errors) {
            for (k, v) in map {
                let text = match v {
                    serde_json::Value::String(s) => s.trim_end().to_string(),
                    other => other.to_string(),
                };
                errors.insert(k, text);
            }
        }
        match status {
            400 => PveError::Parameter { message, errors },
            401 => PveError::Unauthorized { message },
            403 => {
                let (path, privilege) = parse_permission(&message);
                PveError::PermissionDenied {
                    path,
                    privilege,
                    message,
                }
            }
            404 => PveError::NotFound { message },
            595 | 596 | 599 => PveError::NodeUnreachable { status, message },
            500 => classify_500(message),
            _ => PveError::Server { status, message },
        }
    }
}

fn classify_500(message: String) -> PveError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("does not exist") || lower.contains("no such") {
        PveError::NotFound { message }
    } else if lower.contains("already running") {
        PveError::AlreadyRunning { message }
    } else if lower.contains("not running") {
        PveError::NotRunning { message }
    } else if lower.contains("already exists") {
        PveError::AlreadyExists { message }
    } else if lower.contains("is locked") || lower.contains("can't lock file") {
        PveError::Locked { message }
    } else {
        PveError::Server {
            status: 500,
            message,
        }
    }
}

/// Parse `Permission check failed (/vms/100, VM.PowerMgmt)`.
fn parse_permission(message: &str) -> (Option<String>, Option<String>) {
    let Some(open) = message.find('(') else {
        return (None, None);
    };
    let Some(close) = message.rfind(')') else {
        return (None, None);
    };
    if close <= open {
        return (None, None);
    }
    let inner = &message[open + 1..close];
    match inner.split_once(", ") {
        Some((path, privilege)) if path.starts_with('/') && !privilege.contains(' ') => {
            (Some(path.to_string()), Some(privilege.to_string()))
        }
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parameter_errors() {
        let body = br#"{"data":null,"message":"Parameter verification failed.\n","errors":{"vmid":"value must have a minimum value of 100\n"}}"#;
        match PveError::from_http(400, Some("Parameter verification failed."), body) {
            PveError::Parameter { message, errors } => {
                assert_eq!(message, "Parameter verification failed.");
                assert_eq!(errors["vmid"], "value must have a minimum value of 100");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn maps_permission_path_and_privilege() {
        let e = PveError::from_http(
            403,
            Some("Permission check failed (/vms/100, VM.PowerMgmt)"),
            b"",
        );
        match e {
            PveError::PermissionDenied {
                path, privilege, ..
            } => {
                assert_eq!(path.as_deref(), Some("/vms/100"));
                assert_eq!(privilege.as_deref(), Some("VM.PowerMgmt"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = PveError::from_http(
            403,
            None,
            br#"{"data":null,"message":"Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)\n"}"#,
        );
        assert!(matches!(
            e,
            PveError::PermissionDenied {
                path: None,
                privilege: None,
                ..
            }
        ));
    }

    #[test]
    fn classifies_500_texts() {
        let cases = [
            (
                "Configuration file 'nodes/pve/lxc/999.conf' does not exist",
                "NotFound",
            ),
            ("CT 100 already running", "AlreadyRunning"),
            ("CT 100 not running", "NotRunning"),
            ("VM 100 not running", "NotRunning"),
            ("CT 101 already exists on node 'pve'", "AlreadyExists"),
            ("CT is locked (create)", "Locked"),
            (
                "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout",
                "Locked",
            ),
            ("unable to destroy CT 100 - container is running", "Server"),
        ];
        for (text, want) in cases {
            let e = PveError::from_http(500, Some(text), b"{\"data\":null}");
            let got = format!("{e:?}");
            assert!(got.starts_with(want), "{text} -> {got}");
        }
    }

    #[test]
    fn node_unreachable_and_retry_safety() {
        let e = PveError::from_http(595, Some("Connection refused"), b"");
        assert!(matches!(e, PveError::NodeUnreachable { status: 595, .. }));
        assert!(e.is_retry_safe() && e.is_transient());
        let e = PveError::from_http(596, Some("tls error"), b"");
        assert!(!e.is_retry_safe() && e.is_transient());
        assert!(!PveError::Timeout { after_ms: 1 }.is_retry_safe());
    }

    #[test]
    fn messages_are_lowercase_with_hints() {
        let e = PveError::Tls {
            expected: "AA".into(),
            got: "BB".into(),
        };
        let s = e.to_string();
        assert!(s.starts_with("tls certificate fingerprint mismatch"));
        assert!(s.contains("pin the new fingerprint"));
    }
}
