//! Fingerprints of SSH keys given as text, for showing and pinning keys ctforge does not use
//! itself over russh (deploy keys of git sources, host keys that `ssh-keyscan` printed): only
//! the public `SHA256:…` fingerprint ever leaves this module.

use russh::keys::{HashAlg, PublicKey};

use crate::SshError;
use crate::target::normalize_fingerprint;

/// The `SHA256:…` fingerprint of the public half of `private_key_pem` (OpenSSH or PEM form,
/// unencrypted). The error never contains key material.
pub fn private_key_fingerprint(private_key_pem: &str) -> Result<String, SshError> {
    let key = russh::keys::decode_secret_key(private_key_pem, None).map_err(|e| {
        SshError::InvalidKey {
            reason: e.to_string().to_lowercase(),
        }
    })?;
    Ok(normalize_fingerprint(
        &key.public_key().fingerprint(HashAlg::Sha256).to_string(),
    ))
}

/// The `SHA256:…` fingerprint of one public key line: `type base64 [comment]` (an
/// `authorized_keys`/`.pub` line) or `host type base64` (a `known_hosts`/`ssh-keyscan` line).
/// `None` for comments and lines that hold no key.
pub fn public_key_fingerprint(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    (0..words.len().min(2)).find_map(|start| {
        let text = words.get(start..(start + 2))?.join(" ");
        PublicKey::from_openssh(&text)
            .ok()
            .map(|k| normalize_fingerprint(&k.fingerprint(HashAlg::Sha256).to_string()))
    })
}

/// Whether two fingerprints name the same key (`SHA256:` prefix and `=` padding optional).
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    normalize_fingerprint(a) == normalize_fingerprint(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A throwaway ed25519 key made for this test (`ssh-keygen -t ed25519 -N ''`).
    const PUBLIC: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG01LhGftcy7JR4fotkZh0qZVlnTECXzd9U+XrseGs6K test";

    #[test]
    fn public_lines_with_and_without_host() {
        let fp = public_key_fingerprint(PUBLIC).unwrap();
        // As `ssh-keygen -lf` prints it.
        assert_eq!(fp, "SHA256:ow5kPoAmkyp1UETZeRHZfAPgUFAnUzJQKSnbTyvzDGM");
        assert_eq!(
            public_key_fingerprint(&format!("[git.example]:2222 {PUBLIC}")),
            Some(fp.clone())
        );
        assert!(same_fingerprint(&fp, fp.trim_start_matches("SHA256:")));
        assert_eq!(
            public_key_fingerprint("# git.example:22 SSH-2.0-OpenSSH"),
            None
        );
        assert_eq!(public_key_fingerprint("not a key"), None);
    }

    #[test]
    fn a_bad_private_key_is_an_error_without_its_text() {
        let err = private_key_fingerprint(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}
