//! Where and how to connect: [`SshTarget`], credentials and host key policy.

use std::fmt;
use std::time::Duration;

/// A secret string (password, private key, passphrase). `Debug` and `Display`
/// never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value, for handing to the SSH library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// How to authenticate.
#[derive(Debug, Clone)]
pub enum SshAuth {
    /// Password authentication.
    Password(Secret),
    /// Public key authentication with an OpenSSH (or PKCS#8) private key in PEM form.
    /// Supported types with the ring provider: ed25519 and ECDSA (RSA is not built in).
    Key {
        /// The private key, PEM text.
        private_key_pem: Secret,
        /// Its passphrase, when encrypted.
        passphrase: Option<Secret>,
    },
}

impl SshAuth {
    pub(crate) fn method(&self) -> &'static str {
        match self {
            SshAuth::Password(_) => "password",
            SshAuth::Key { .. } => "publickey",
        }
    }
}

/// What to accept as the server's host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Only this key: a SHA-256 fingerprint as OpenSSH prints it
    /// (`SHA256:` + unpadded base64; the prefix and `=` padding are optional).
    Pinned(String),
    /// Accept whatever key the server presents; the fingerprint is available
    /// afterwards ([`crate::SshSession::host_key_fingerprint`]) so the
    /// application can store it and pin it from then on.
    TrustOnFirstUse,
}

/// An SSH endpoint with credentials and host key policy.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port (22).
    pub port: u16,
    /// User name (`root` for `pct`).
    pub user: String,
    /// Credentials.
    pub auth: SshAuth,
    /// Host key policy.
    pub host_key: HostKeyPolicy,
    /// Limit for TCP connect + handshake + authentication.
    pub connect_timeout: Duration,
}

impl SshTarget {
    /// A target with the default 10 s connect timeout.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        auth: SshAuth,
        host_key: HostKeyPolicy,
    ) -> Self {
        SshTarget {
            host: host.into(),
            port,
            user: user.into(),
            auth,
            host_key,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Change the connect timeout.
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
}

/// Normalize a fingerprint for comparison: `SHA256:` prefix, no `=` padding.
pub(crate) fn normalize_fingerprint(fp: &str) -> String {
    let fp = fp.trim();
    let body = fp
        .strip_prefix("SHA256:")
        .or_else(|| fp.strip_prefix("sha256:"))
        .unwrap_or(fp);
    format!("SHA256:{}", body.trim_end_matches('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let t = SshTarget::new(
            "pve",
            22,
            "root",
            SshAuth::Key {
                private_key_pem: Secret::new("-----BEGIN KEY-----abc"),
                passphrase: Some("hunter2".into()),
            },
            HostKeyPolicy::TrustOnFirstUse,
        );
        let d = format!("{t:?}");
        assert!(!d.contains("hunter2") && !d.contains("BEGIN"), "{d}");
        let p = format!("{:?}", SshAuth::Password("pw-123".into()));
        assert!(!p.contains("pw-123"), "{p}");
        assert_eq!(Secret::new("x").to_string(), "***");
    }

    #[test]
    fn fingerprints_normalize() {
        assert_eq!(normalize_fingerprint("SHA256:abc"), "SHA256:abc");
        assert_eq!(normalize_fingerprint(" abc= "), "SHA256:abc");
        assert_eq!(normalize_fingerprint("sha256:abc"), "SHA256:abc");
    }
}
