//! TLS configuration for talking to pveproxy.
//!
//! Always the `ring` crypto provider, passed explicitly to
//! `rustls::ClientConfig::builder_with_provider` (never a process default).
//!
//! * [`TlsMode::System`] — the OS trust store (rustls-native-certs), falling
//!   back to the Mozilla roots (webpki-roots) when the OS store is empty;
//! * [`TlsMode::Fingerprint`] — pin the SHA-256 of the server's leaf
//!   certificate (Proxmox's default self-signed certificate). The chain is not
//!   validated, but handshake signatures still are;
//! * [`TlsMode::Insecure`] — accept any certificate (logs a warning).
//!
//! [`fetch_fingerprint`] shows the fingerprint of an unknown server so the UI
//! can ask the admin to confirm it before pinning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{PveError, Result};

/// How the server certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Verify against the system trust store (a certificate issued for the host).
    #[default]
    System,
    /// Accept exactly the leaf certificate with this SHA-256 fingerprint,
    /// `AB:CD:...` (case-insensitive; colons optional).
    Fingerprint(String),
    /// Accept any certificate. Only when explicitly configured; logs a warning.
    Insecure,
}

/// The ring provider used everywhere in this crate.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Format a SHA-256 digest as `AB:CD:...`.
pub fn format_fingerprint(digest: &[u8]) -> String {
    let mut s = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// SHA-256 fingerprint of a DER certificate, formatted `AB:CD:...`.
pub fn cert_fingerprint(der: &[u8]) -> String {
    format_fingerprint(&Sha256::digest(der))
}

/// Parse a fingerprint (`AB:CD:..`, `ab:cd:..` or 64 hex digits) into bytes.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32]> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bad = || {
        PveError::Config(format!(
            "'{s}' is not a sha-256 fingerprint (expected 32 hex bytes like AB:CD:...; \
             copy it from the node's certificate view or use fetch_fingerprint)"
        ))
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn verify12(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn verify13(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

/// Accepts exactly one leaf certificate (by SHA-256) and records mismatches.
#[derive(Debug)]
pub(crate) struct FingerprintVerifier {
    expected: [u8; 32],
    provider: Arc<CryptoProvider>,
    /// The last fingerprint seen that did not match.
    pub(crate) last_mismatch: Mutex<Option<String>>,
}

impl FingerprintVerifier {
    pub(crate) fn expected_str(&self) -> String {
        format_fingerprint(&self.expected)
    }
    pub(crate) fn take_mismatch(&self) -> Option<String> {
        self.last_mismatch.lock().ok().and_then(|mut g| g.take())
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            if let Ok(mut g) = self.last_mismatch.lock() {
                *g = Some(format_fingerprint(&got));
            }
            Err(rustls::Error::General(
                "server certificate fingerprint does not match the pinned fingerprint".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify12(&self.provider, message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify13(&self.provider, message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any certificate (signatures still checked).
#[derive(Debug)]
struct InsecureVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify12(&self.provider, message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify13(&self.provider, message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Records the leaf certificate and aborts the handshake (nothing is sent).
#[derive(Debug)]
struct CaptureVerifier {
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<String>>,
}

impl ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(cert_fingerprint(end_entity.as_ref()));
        }
        Err(rustls::Error::General(
            "fingerprint captured; connection intentionally aborted".into(),
        ))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify12(&self.provider, message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify13(&self.provider, message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn builder() -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>> {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PveError::Config(format!("tls setup failed: {e}")))
}

/// A built rustls config plus the pinning verifier (to report mismatches).
pub(crate) struct TlsSetup {
    pub(crate) config: rustls::ClientConfig,
    pub(crate) pin: Option<Arc<FingerprintVerifier>>,
}

pub(crate) fn build(mode: &TlsMode) -> Result<TlsSetup> {
    match mode {
        TlsMode::System => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // Skip certificates rustls cannot parse instead of failing.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            let config = builder()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(TlsSetup { config, pin: None })
        }
        TlsMode::Fingerprint(fp) => {
            let verifier = Arc::new(FingerprintVerifier {
                expected: parse_fingerprint(fp)?,
                provider: provider(),
                last_mismatch: Mutex::new(None),
            });
            let config = builder()?
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth();
            Ok(TlsSetup {
                config,
                pin: Some(verifier),
            })
        }
        TlsMode::Insecure => {
            tracing::warn!(
                "tls certificate verification is disabled for the proxmox api (TlsMode::Insecure); \
                 pin the certificate fingerprint instead"
            );
            let config = builder()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(InsecureVerifier {
                    provider: provider(),
                }))
                .with_no_client_auth();
            Ok(TlsSetup { config, pin: None })
        }
    }
}

/// Connect to `url` (e.g. `https://pve.example:8006`) and return the SHA-256
/// fingerprint of the leaf certificate, formatted `AB:CD:...`, without
/// trusting it: the handshake is aborted right after the certificate is seen,
/// so no request (and no credential) is ever sent.
pub async fn fetch_fingerprint(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url).map_err(|e| {
        PveError::Config(format!("invalid url '{url}': {e} (use https://host:8006)"))
    })?;
    if parsed.scheme() != "https" {
        return Err(PveError::Config(format!(
            "'{url}' is not an https url (use https://host:8006)"
        )));
    }
    let capture = Arc::new(CaptureVerifier {
        provider: provider(),
        seen: Mutex::new(None),
    });
    let config = builder()?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| PveError::Config(format!("cannot build http client: {e}")))?;
    let result = client.get(parsed).send().await;
    if let Some(fp) = capture.seen.lock().ok().and_then(|g| g.clone()) {
        return Ok(fp);
    }
    match result {
        Err(e) if e.is_timeout() => Err(PveError::Timeout { after_ms: 15_000 }),
        Err(e) => Err(PveError::Transport {
            message: crate::client::error_chain(&e),
            connect: true,
        }),
        Ok(_) => Err(PveError::Transport {
            message: "server presented no certificate".into(),
            connect: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parse_and_format() {
        let s = "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89";
        let b = parse_fingerprint(s).unwrap();
        assert_eq!(format_fingerprint(&b), s.to_uppercase());
        assert!(parse_fingerprint(&s.replace(':', "")).is_ok());
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&s.replace('a', "z")).is_err());
    }

    #[test]
    fn builds_all_modes() {
        assert!(build(&TlsMode::System).is_ok());
        assert!(build(&TlsMode::Insecure).is_ok());
        let fp = format_fingerprint(&[7u8; 32]);
        assert!(build(&TlsMode::Fingerprint(fp)).unwrap().pin.is_some());
        assert!(build(&TlsMode::Fingerprint("nope".into())).is_err());
    }
}
