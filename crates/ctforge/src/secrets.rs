//! Secrets at rest: AES-256-GCM sealing under a key id, and the keyring that holds the keys.
//!
//! A sealed value is the text `v1:<key id>:<base64(nonce ‖ ciphertext)>`, so a database row says
//! which key opens it and keys can be rotated. The keyring comes from `secret_key` in the
//! configuration (base64 keys, comma separated, first active) or from `<data-dir>/secret.key`,
//! generated with mode 0600 on first start (one `<key id> <base64 key>` per line, first active).

use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Why a secret could not be sealed or opened, or a keyring loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The stored value is not in the `v1:kid:data` format.
    #[error("stored secret is malformed; it was not written by ctforge or is truncated")]
    Malformed,
    /// The value was sealed under a key the keyring does not hold.
    #[error(
        "secret was sealed with key {0}, which is not in the keyring; restore that key to CTFORGE_SECRET_KEY or secret.key"
    )]
    UnknownKey(String),
    /// Authentication failed: wrong key or tampered value.
    #[error("secret could not be decrypted (wrong key or tampered data)")]
    Decrypt,
    /// The configured key is not 32 bytes of base64.
    #[error(
        "secret key must be 32 bytes encoded as base64 (generate one with `openssl rand -base64 32`)"
    )]
    BadKey,
    /// The key file could not be read or written.
    #[error("secret key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// A decrypted secret value; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain(String);

impl Plain {
    /// Wraps a plaintext secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plain(<redacted>)")
    }
}

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

struct KeyEntry {
    id: String,
    cipher: Aes256Gcm,
    raw: [u8; 32],
}

/// The keys that seal and open secrets; the first is active.
pub struct Keyring {
    keys: Vec<KeyEntry>,
    file: Option<PathBuf>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .field("file", &self.file)
            .finish()
    }
}

/// The key id of a raw key: the first 8 bytes of its SHA-256, hex.
fn key_id(raw: &[u8; 32]) -> String {
    let digest = Sha256::digest(raw);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn entry(raw: [u8; 32]) -> KeyEntry {
    KeyEntry {
        id: key_id(&raw),
        cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&raw)),
        raw,
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], SecretError> {
    let bytes = B64.decode(text.trim()).map_err(|_| SecretError::BadKey)?;
    bytes.try_into().map_err(|_| SecretError::BadKey)
}

/// A fresh random 256-bit key.
pub fn generate_key() -> [u8; 32] {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    raw
}

impl Keyring {
    /// A keyring from base64 keys (comma separated, first active), e.g. `CTFORGE_SECRET_KEY`.
    pub fn from_config(value: &str) -> Result<Self, SecretError> {
        let keys = value
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| decode_key(s).map(entry))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretError::BadKey);
        }
        Ok(Self { keys, file: None })
    }

    /// Loads `<data_dir>/secret.key`, creating it with a new key (mode 0600) if missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        let path = data_dir.join("secret.key");
        let io = |source| SecretError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let keys = text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .map(|line| {
                        let key = line.split_whitespace().last().unwrap_or_default();
                        decode_key(key).map(entry)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if keys.is_empty() {
                    return Err(SecretError::BadKey);
                }
                Ok(Self {
                    keys,
                    file: Some(path),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let ring = Self {
                    keys: vec![entry(generate_key())],
                    file: Some(path.clone()),
                };
                ring.save()?;
                Ok(ring)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Writes the keyring back to its file (0600), if it came from one.
    pub fn save(&self) -> Result<(), SecretError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let text = self.to_file_text();
        let io = |source| SecretError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("key.tmp");
        write_private(&tmp, text.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The keyring in `secret.key`'s format (backups carry it; it holds the raw keys).
    pub fn to_file_text(&self) -> String {
        let mut text =
            String::from("# ctforge secret keys: <key id> <base64 key>; the first is active\n");
        for key in &self.keys {
            text.push_str(&format!("{} {}\n", key.id, B64.encode(key.raw)));
        }
        text
    }

    /// Whether the keyring lives in a file ctforge may rewrite.
    pub fn is_file_backed(&self) -> bool {
        self.file.is_some()
    }

    /// Ids of every key, active first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Id of the key new secrets are sealed with.
    pub fn active_key_id(&self) -> &str {
        self.keys.first().map(|k| k.id.as_str()).unwrap_or_default()
    }

    /// Makes `raw` the active key, keeping the others for opening old values.
    pub fn push_active(&mut self, raw: [u8; 32]) {
        self.keys.retain(|k| k.raw != raw);
        self.keys.insert(0, entry(raw));
    }

    /// Drops every key but the active one.
    pub fn retire_old(&mut self) {
        self.keys.truncate(1);
    }

    /// The active key in base64 (shown once by `secrets rotate` for config-provided keys).
    pub fn active_key_base64(&self) -> String {
        self.keys
            .first()
            .map(|k| B64.encode(k.raw))
            .unwrap_or_default()
    }

    /// Seals a secret under the active key.
    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let key = self.keys.first().ok_or(SecretError::BadKey)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| SecretError::Decrypt)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(format!("v1:{}:{}", key.id, B64.encode(blob)))
    }

    /// Opens a value produced by [`Keyring::seal`] under any key of the ring.
    pub fn open(&self, sealed: &str) -> Result<Plain, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(kid), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SecretError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| SecretError::UnknownKey(kid.to_owned()))?;
        let blob = B64.decode(data).map_err(|_| SecretError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain)
            .map(Plain)
            .map_err(|_| SecretError::Decrypt)
    }

    /// The key id a sealed value names, if it is well-formed.
    pub fn sealed_key_id(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, ':');
        match (parts.next(), parts.next()) {
            (Some("v1"), Some(kid)) => Some(kid),
            _ => None,
        }
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let ring = Keyring::from_config(&B64.encode(generate_key())).unwrap();
        let sealed = ring.seal("hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(ring.open(&sealed).unwrap().expose(), "hunter2");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open(&tampered).is_err());
        assert!(matches!(ring.open("garbage"), Err(SecretError::Malformed)));
        assert_eq!(format!("{:?}", Plain::new("x")), "Plain(<redacted>)");
    }

    #[test]
    fn file_keyring_is_private_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let old = ring.seal("a").unwrap();
        ring.push_active(generate_key());
        ring.save().unwrap();
        let reloaded = Keyring::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.key_ids(), ring.key_ids());
        assert_eq!(reloaded.open(&old).unwrap().expose(), "a");
        assert_ne!(
            Keyring::sealed_key_id(&reloaded.seal("b").unwrap()),
            Keyring::sealed_key_id(&old)
        );
    }

    #[test]
    fn bad_config_key_is_explained() {
        assert!(matches!(
            Keyring::from_config("short"),
            Err(SecretError::BadKey)
        ));
    }
}
