//! Self-signed TLS certificate (rcgen) and a rustls server config using only the
//! ring provider. The certificate is kept in the state dir so the fingerprint
//! stays stable across restarts.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject};
use sha2::Digest as _;

use crate::SimError;

/// A certificate and its key.
pub struct CertBundle {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM private key (PKCS#8).
    pub key_pem: String,
    /// SHA-256 fingerprint `AB:CD:…`.
    pub fingerprint: String,
}

/// SHA-256 fingerprint of a DER certificate, uppercase hex separated by colons.
pub fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn bundle(cert_pem: String, key_pem: String) -> Result<CertBundle, SimError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| SimError::Tls(format!("bad certificate PEM: {e}")))?;
    Ok(CertBundle {
        fingerprint: fingerprint(&der),
        cert_pem,
        key_pem,
    })
}

/// Load `pve-ssl.pem`/`pve-ssl.key` from the state dir, or generate (and save) them.
pub fn load_or_generate(
    state_dir: Option<&Path>,
    nodes: &[String],
) -> Result<CertBundle, SimError> {
    if let Some(dir) = state_dir {
        let (c, k) = (dir.join("pve-ssl.pem"), dir.join("pve-ssl.key"));
        if let (Ok(cert), Ok(key)) = (std::fs::read_to_string(&c), std::fs::read_to_string(&k)) {
            return bundle(cert, key);
        }
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(nodes.iter().cloned());
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| SimError::Tls(e.to_string()))?;
    let b = bundle(ck.cert.pem(), ck.signing_key.serialize_pem())?;
    if let Some(dir) = state_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("pve-ssl.pem"), &b.cert_pem)?;
        std::fs::write(dir.join("pve-ssl.key"), &b.key_pem)?;
    }
    Ok(b)
}

/// A TLS acceptor for the bundle (ring provider, TLS 1.2 + 1.3).
pub fn acceptor(b: &CertBundle) -> Result<tokio_rustls::TlsAcceptor, SimError> {
    let cert = CertificateDer::from_pem_slice(b.cert_pem.as_bytes())
        .map_err(|e| SimError::Tls(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from_pem_slice(b.key_pem.as_bytes())
        .map_err(|e| SimError::Tls(e.to_string()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SimError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(vec![cert], PrivateKeyDer::Pkcs8(key))
    .map_err(|e| SimError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
