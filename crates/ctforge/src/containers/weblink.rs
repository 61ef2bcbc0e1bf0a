//! Web links of container services: whether `<ip>:<port>` answers HTTPS or HTTP, and the
//! page's `<title>` for the Services tab's button.
//!
//! One probe per service: TCP connect, a TLS handshake (any certificate is accepted — this
//! only fetches a title; nothing secret is sent), else plain HTTP on a new connection, then
//! `GET /` (HTTP/1.0, no cookies, no credentials), at most [`MAX_BODY`] bytes read, and up to
//! two same-address redirects followed (never to another host). The whole probe is bounded by
//! one deadline ([`DEFAULT_TIMEOUT`]), so a silent server costs about two seconds, never more.
//!
//! What may be probed is decided by the caller (`containers::monitor`): only an address
//! Proxmox reports for the CT, and never one [`refused`] names.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Most bytes of a response read (headers and body).
pub const MAX_BODY: usize = 64 * 1024;
/// The whole probe's budget: connect, handshake, request and read.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest title kept, in characters.
const MAX_TITLE: usize = 200;

/// What a probe found at `<ip>:<port>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    /// A web server answered.
    Web {
        /// `http` or `https`.
        scheme: String,
        /// HTTP status of the last response.
        status: u16,
        /// The page title, decoded, if the page had one.
        title: Option<String>,
    },
    /// Something listens but speaks neither HTTPS nor HTTP (a database, SSH, …).
    NotHttp {
        /// What was seen.
        reason: String,
    },
    /// Nothing answered: refused, unreachable or too slow.
    NoAnswer {
        /// Why.
        reason: String,
    },
}

impl Probe {
    /// The URL to open (`scheme://ip:port`) for a web server; `http://` when nothing answered
    /// (the service may come back); none for non-HTTP services.
    pub fn url(&self, ip: IpAddr, port: u16) -> Option<String> {
        let host = host_port(ip, port);
        match self {
            Probe::Web { scheme, .. } => Some(format!("{scheme}://{host}")),
            Probe::NoAnswer { .. } => Some(format!("http://{host}")),
            Probe::NotHttp { .. } => None,
        }
    }

    /// Whether anything answered on the port.
    pub fn answered(&self) -> bool {
        !matches!(self, Probe::NoAnswer { .. })
    }

    /// The page title, if any.
    pub fn title(&self) -> Option<&str> {
        match self {
            Probe::Web { title, .. } => title.as_deref(),
            _ => None,
        }
    }
}

fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// Why an address is never probed, if it is one of those: ctforge probes a container's
/// services, not its own host or special addresses (a CT created with `127.0.0.1` must not
/// make ctforge read a page of a service on its own machine). Refused: loopback, unspecified,
/// link-local, multicast, broadcast, and ctforge's own addresses: its `listen` address and
/// every address of its host (an address ctforge can bind is its own).
pub fn refused(ip: IpAddr, listen: Option<SocketAddr>) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let special = match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_unspecified() {
                Some("the unspecified address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("a multicast or broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6.is_unicast_link_local() {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    };
    if special.is_some() {
        return special;
    }
    if listen.is_some_and(|l| l.ip() == ip) {
        return Some("ctforge's own listen address");
    }
    is_local(ip).then_some("an address of ctforge's host")
}

/// Whether `ip` belongs to this machine (binding to it succeeds only then).
fn is_local(ip: IpAddr) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Probes web links; cheap to clone.
#[derive(Clone)]
pub struct Prober {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

impl Prober {
    /// A prober whose every probe ends within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
                    .with_no_client_auth()
            });
        let config = match config {
            Ok(c) => c,
            // The ring provider supports the default versions; keep a working value anyway.
            Err(_) => rustls::ClientConfig::builder()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                    provider: Arc::new(rustls::crypto::ring::default_provider()),
                }))
                .with_no_client_auth(),
        };
        Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        }
    }

    /// Probes `ip:port` within the prober's timeout.
    pub async fn probe(&self, ip: IpAddr, port: u16) -> Probe {
        let deadline = Instant::now() + self.timeout;
        let addr = SocketAddr::new(ip, port);
        let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Probe::NoAnswer {
                    reason: format!("cannot connect to {addr}: {e}"),
                };
            }
            Err(_) => {
                return Probe::NoAnswer {
                    reason: format!("no connection to {addr} within {:?}", self.timeout),
                };
            }
        };
        // Half the remaining budget for the handshake: a plain-HTTP server that waits for a
        // request line never finishes it, and plain HTTP still needs time afterwards.
        let handshake = deadline
            .saturating_duration_since(Instant::now())
            .checked_div(2)
            .unwrap_or_default();
        let server_name = ServerName::IpAddress(ip.into());
        let tls = tokio::time::timeout(handshake, self.tls.connect(server_name, tcp)).await;
        let (scheme, result) = match tls {
            Ok(Ok(stream)) => ("https", fetch(stream, ip, port, deadline).await),
            _ => {
                let plain = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return Probe::NoAnswer {
                            reason: format!("cannot connect to {addr}: {e}"),
                        };
                    }
                    Err(_) => {
                        return Probe::NoAnswer {
                            reason: format!("{addr} did not answer within {:?}", self.timeout),
                        };
                    }
                };
                ("http", fetch(plain, ip, port, deadline).await)
            }
        };
        let mut response = match result {
            Ok(r) => r,
            Err(Fetch::Timeout) => {
                return Probe::NoAnswer {
                    reason: format!("{addr} did not answer within {:?}", self.timeout),
                };
            }
            Err(Fetch::NotHttp(reason)) => return Probe::NotHttp { reason },
        };
        // Follow up to two redirects that stay on this address and scheme.
        for _ in 0..2 {
            let Some(path) = response.same_origin_redirect(scheme, ip, port) else {
                break;
            };
            let next = match scheme {
                "https" => match self.reconnect_tls(ip, port, deadline).await {
                    Some(stream) => fetch_path(stream, ip, port, &path, deadline).await,
                    None => break,
                },
                _ => match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => fetch_path(s, ip, port, &path, deadline).await,
                    _ => break,
                },
            };
            match next {
                Ok(r) => response = r,
                Err(_) => break,
            }
        }
        Probe::Web {
            scheme: scheme.to_owned(),
            status: response.status,
            title: extract_title(&response.body, response.charset.as_deref()),
        }
    }

    async fn reconnect_tls(
        &self,
        ip: IpAddr,
        port: u16,
        deadline: Instant,
    ) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(SocketAddr::new(ip, port)))
            .await
            .ok()?
            .ok()?;
        tokio::time::timeout_at(
            deadline,
            self.tls.connect(ServerName::IpAddress(ip.into()), tcp),
        )
        .await
        .ok()?
        .ok()
    }
}

enum Fetch {
    Timeout,
    NotHttp(String),
}

struct Response {
    status: u16,
    location: Option<String>,
    charset: Option<String>,
    body: Vec<u8>,
}

impl Response {
    /// The path of a redirect to the same scheme, address and port.
    fn same_origin_redirect(&self, scheme: &str, ip: IpAddr, port: u16) -> Option<String> {
        if !(300..400).contains(&self.status) {
            return None;
        }
        let location = self.location.as_deref()?.trim();
        if location.starts_with('/') && !location.starts_with("//") {
            return Some(location.to_owned());
        }
        let base = url::Url::parse(&format!("{scheme}://{}/", host_port(ip, port))).ok()?;
        let target = base.join(location).ok()?;
        (target.scheme() == base.scheme()
            && target.host() == base.host()
            && target.port_or_known_default() == base.port_or_known_default())
        .then(|| match target.query() {
            Some(q) => format!("{}?{q}", target.path()),
            None => target.path().to_owned(),
        })
    }
}

async fn fetch<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    ip: IpAddr,
    port: u16,
    deadline: Instant,
) -> Result<Response, Fetch> {
    fetch_path(stream, ip, port, "/", deadline).await
}

async fn fetch_path<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    ip: IpAddr,
    port: u16,
    path: &str,
    deadline: Instant,
) -> Result<Response, Fetch> {
    // HTTP/1.0: no chunked encoding, the server closes when done. No cookies, no credentials.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: ctforge-link-check\r\nAccept: text/html,*/*;q=0.5\r\nConnection: close\r\n\r\n",
        host_port(ip, port)
    );
    let io = async {
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        while buf.len() < MAX_BODY {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            let take = n.min(MAX_BODY - buf.len());
            buf.extend_from_slice(&chunk[..take]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    let bytes = match tokio::time::timeout_at(deadline, io).await {
        Err(_) => return Err(Fetch::Timeout),
        // A reset after some bytes still leaves a usable answer; none at all is not HTTP.
        Ok(Err(e)) => return Err(Fetch::NotHttp(format!("connection failed: {e}"))),
        Ok(Ok(b)) => b,
    };
    parse_response(&bytes).ok_or_else(|| {
        let preview: String = String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Fetch::NotHttp(if bytes.is_empty() {
            "the connection closed without an answer".to_owned()
        } else {
            format!("not an HTTP answer: {:?}", preview.trim())
        })
    })
}

fn parse_response(bytes: &[u8]) -> Option<Response> {
    if !bytes.starts_with(b"HTTP/") {
        return None;
    }
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            bytes
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((bytes.len(), bytes.len()));
    let head = String::from_utf8_lossy(&bytes[..split.0]);
    let mut lines = head.lines();
    let status = lines
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse::<u16>()
        .ok()?;
    let mut location = None;
    let mut charset = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "location" => location = Some(value.to_owned()),
            "content-type" => charset = charset_of(value),
            _ => {}
        }
    }
    Some(Response {
        status,
        location,
        charset,
        body: bytes[split.1..].to_vec(),
    })
}

/// The `charset=` parameter of a content type or `<meta>` tag, lower-case.
fn charset_of(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let rest = &lower[lower.find("charset=")? + "charset=".len()..];
    let value: String = rest
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    (!value.is_empty()).then_some(value)
}

/// The decoded text of the first `<title>` in an HTML document, whitespace collapsed.
pub fn extract_title(body: &[u8], header_charset: Option<&str>) -> Option<String> {
    let lower: Vec<u8> = body.iter().map(u8::to_ascii_lowercase).collect();
    let open = find(&lower, b"<title", 0)?;
    let after_tag = open + find(&lower[open..], b">", 0)? + 1;
    let close = find(&lower, b"</title", after_tag).unwrap_or(body.len());
    let raw = &body[after_tag..close];
    let head = &lower[..open];
    let charset = header_charset.map(str::to_owned).or_else(|| {
        let text = String::from_utf8_lossy(head);
        text.find("<meta")
            .and_then(|i| charset_of(&text[i..]))
            .or_else(|| charset_of(&text))
    });
    let text = decode_bytes(raw, charset.as_deref());
    let decoded = decode_entities(&text);
    let collapsed = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    let title: String = collapsed.chars().take(MAX_TITLE).collect();
    (!title.is_empty()).then_some(title)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// UTF-8 (invalid sequences replaced), or Latin-1 / Windows-1252 byte for byte.
fn decode_bytes(raw: &[u8], charset: Option<&str>) -> String {
    match charset {
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252" | "us-ascii") => {
            raw.iter().map(|&b| char::from(b)).collect()
        }
        _ => match std::str::from_utf8(raw) {
            Ok(s) => s.to_owned(),
            Err(_) if charset.is_none() => raw.iter().map(|&b| char::from(b)).collect(),
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        },
    }
}

/// Decodes HTML character references: numeric ones and the common named ones.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(j, _)| j);
        let decoded = end.and_then(|j| {
            let name = &rest[1..j];
            let ch = if let Some(num) = name.strip_prefix('#') {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse::<u32>().ok(),
                };
                code.and_then(char::from_u32)
                    .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
            } else {
                named_entity(name)
            };
            ch.map(|c| (c, j + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "middot" => '·',
        "bull" => '•',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "laquo" => '«',
        "raquo" => '»',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "euro" => '€',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        _ => return None,
    })
}

/// Accepts any server certificate (handshake signatures are still verified): a title fetch
/// sends nothing secret, and containers mostly serve self-signed certificates.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_own_addresses_are_never_probed() {
        let listen: Option<SocketAddr> = "10.9.8.7:8080".parse().ok();
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "10.9.8.7",
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert!(refused(parsed, listen).is_some(), "{ip} must be refused");
        }
        // Documentation addresses stand for a container on its own network.
        for ip in ["203.0.113.10", "2001:db8::10"] {
            let parsed: IpAddr = ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
            assert_eq!(refused(parsed, listen), None, "{ip}");
        }
    }

    #[test]
    fn titles_are_found_and_decoded() {
        assert_eq!(
            extract_title(
                b"<html><head><TITLE lang=en>\n  Tom &amp; Jerry&#39;s &lt;Admin&gt; &#x2014; caf&eacute;  </title>",
                None
            )
            .as_deref(),
            Some("Tom & Jerry's <Admin> — café")
        );
        assert_eq!(extract_title(b"<h1>no title</h1>", None), None);
        assert_eq!(extract_title(b"<title>   </title>", None), None);
        assert_eq!(
            extract_title(b"<title>Caf\xe9</title>", Some("iso-8859-1")).as_deref(),
            Some("Café")
        );
        assert_eq!(
            extract_title(
                b"<head><meta charset=\"windows-1252\"><title>Caf\xe9</title>",
                None
            )
            .as_deref(),
            Some("Café")
        );
        assert_eq!(
            extract_title("<title>Grüße</title>".as_bytes(), Some("utf-8")).as_deref(),
            Some("Grüße")
        );
        assert_eq!(
            decode_entities("a & b &unknown; &#0; &"),
            "a & b &unknown; \u{FFFD} &"
        );
        let long = format!("<title>{}</title>", "x".repeat(500));
        assert_eq!(
            extract_title(long.as_bytes(), None).map(|t| t.len()),
            Some(MAX_TITLE)
        );
    }

    #[test]
    fn responses_and_redirects() {
        let r = parse_response(
            b"HTTP/1.1 302 Found\r\nLocation: /login?next=%2F\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.charset.as_deref(), Some("iso-8859-1"));
        assert_eq!(r.body, b"body");
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            r.same_origin_redirect("http", ip, 8080).as_deref(),
            Some("/login?next=%2F")
        );
        let elsewhere = Response {
            location: Some("https://example.org/".into()),
            ..r
        };
        assert_eq!(elsewhere.same_origin_redirect("http", ip, 8080), None);
        let absolute = Response {
            location: Some("http://10.0.0.5:8080/ui/".into()),
            ..elsewhere
        };
        assert_eq!(
            absolute.same_origin_redirect("http", ip, 8080).as_deref(),
            Some("/ui/")
        );
        assert!(parse_response(b"SSH-2.0-OpenSSH_9.2\r\n").is_none());
        let probe = Probe::NotHttp { reason: "x".into() };
        assert_eq!(probe.url(ip, 22), None);
        assert!(probe.answered());
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(
            Probe::NoAnswer { reason: "x".into() }
                .url(v6, 80)
                .as_deref(),
            Some("http://[fd00::5]:80")
        );
    }
}
