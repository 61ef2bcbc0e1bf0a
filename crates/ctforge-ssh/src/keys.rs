//! Fingerprints of SSH keys given as text, for showing and pinning keys ctforge does not use
//! itself over russh (deploy keys of git sources, host keys that `ssh-keyscan` printed): only
//! the public `SHA256:…` fingerprint ever leaves this module; and the ed25519 key pairs ctforge
//! makes for itself (a VM's fallback SSH key), whose private half leaves only as a [`Secret`].

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

use crate::target::normalize_fingerprint;
use crate::{Secret, SshError};

/// An ed25519 key pair made from `seed` (32 random bytes the caller draws from a CSPRNG):
/// the private key in OpenSSH form and the `authorized_keys` line of its public half, with
/// `comment`.
pub fn ed25519_key_pair(seed: &[u8; 32], comment: &str) -> Result<(Secret, String), SshError> {
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(seed));
    key.set_comment(comment);
    let invalid = |e: russh::keys::ssh_key::Error| SshError::InvalidKey {
        reason: e.to_string().to_lowercase(),
    };
    let private = key.to_openssh(LineEnding::LF).map_err(invalid)?;
    let public = key.public_key().to_openssh().map_err(invalid)?;
    Ok((Secret::new(private.as_str()), public))
}

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
    fn made_key_pairs_match_their_fingerprints() {
        let (private, public) = ed25519_key_pair(&[7u8; 32], "ctforge@vm-100").unwrap();
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with(" ctforge@vm-100"));
        assert_eq!(
            private_key_fingerprint(private.expose()).unwrap(),
            public_key_fingerprint(&public).unwrap()
        );
        let (_, other) = ed25519_key_pair(&[8u8; 32], "x").unwrap();
        assert_ne!(
            public_key_fingerprint(&other),
            public_key_fingerprint(&public)
        );
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
