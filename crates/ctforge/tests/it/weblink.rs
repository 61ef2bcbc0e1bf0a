//! Web-link probes against real local servers on 127.0.0.1: plain HTTP with an entity-laden
//! `<title>`, HTTPS with a freshly generated self-signed certificate, a same-origin redirect,
//! a non-HTTP service, a closed port and a server that never answers (the probe must give
//! up within its two-second budget).

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctforge::containers::weblink::{Probe, Prober};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Reads one request head (until the blank line) and answers from `respond(path)`.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    respond: &(dyn Fn(&str) -> String + Sync),
    seen: &Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    seen.lock().unwrap().push(head);
    let _ = stream.write_all(respond(&path).as_bytes()).await;
    let _ = stream.shutdown().await;
}

type Responder = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A plain HTTP server; returns its port and the request heads it received.
async fn http_server(respond: Responder) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (respond, log) = (respond.clone(), log.clone());
            tokio::spawn(async move { serve_one(stream, respond.as_ref(), &log).await });
        }
    });
    (port, seen)
}

fn page(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn plain_http_title_with_entities_and_no_credentials_sent() {
    let (port, seen) = http_server(Arc::new(|_: &str| {
        page(
            "200 OK",
            "Set-Cookie: session=abc\r\n",
            "<!doctype html><html><head><meta charset=utf-8>\n<title>\n  Tom &amp; Jerry&#8217;s &lt;Admin&gt; &mdash; Caf&eacute;\n</title></head><body>hi</body></html>",
        )
    }))
    .await;
    let probe = Prober::default().probe(LOCAL, port).await;
    assert_eq!(
        probe,
        Probe::Web {
            scheme: "http".into(),
            status: 200,
            title: Some("Tom & Jerry’s <Admin> — Café".into()),
        }
    );
    assert_eq!(
        probe.url(LOCAL, port).as_deref(),
        Some(format!("http://127.0.0.1:{port}").as_str())
    );
    let heads = seen.lock().unwrap().clone();
    let get = heads.iter().find(|h| h.starts_with("GET / ")).unwrap();
    let lower = get.to_ascii_lowercase();
    assert!(
        !lower.contains("cookie") && !lower.contains("authorization"),
        "{get}"
    );
}

#[tokio::test]
async fn same_origin_redirect_is_followed() {
    let (port, _) = http_server(Arc::new(|path: &str| match path {
        "/" => page("302 Found", "Location: /login?next=%2F\r\n", ""),
        _ => page("200 OK", "", "<title>Sign in · Grafana</title>"),
    }))
    .await;
    let probe = Prober::default().probe(LOCAL, port).await;
    assert_eq!(probe.title(), Some("Sign in · Grafana"), "{probe:?}");
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    ctforge::install_crypto_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let respond =
                        |_: &str| page("200 OK", "", "<title>Proxmox Backup Server</title>");
                    serve_one(tls, &respond, &log).await;
                }
            });
        }
    });
    let started = Instant::now();
    let probe = Prober::default().probe(LOCAL, port).await;
    assert_eq!(
        probe,
        Probe::Web {
            scheme: "https".into(),
            status: 200,
            title: Some("Proxmox Backup Server".into()),
        }
    );
    assert_eq!(
        probe.url(LOCAL, port).as_deref(),
        Some(format!("https://127.0.0.1:{port}").as_str())
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_non_http_service_is_not_a_web_link() {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    let probe = Prober::default().probe(LOCAL, port).await;
    assert!(matches!(probe, Probe::NotHttp { .. }), "{probe:?}");
    assert!(probe.answered());
    assert_eq!(probe.url(LOCAL, port), None);
}

#[tokio::test]
async fn a_closed_port_is_not_answering_at_once() {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = Instant::now();
    let probe = Prober::default().probe(LOCAL, port).await;
    assert!(matches!(probe, Probe::NoAnswer { .. }), "{probe:?}");
    assert!(!probe.answered());
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_budget() {
    let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream); // accept, then never read nor write
        }
    });
    let started = Instant::now();
    let probe = Prober::default().probe(LOCAL, port).await;
    let took = started.elapsed();
    assert!(matches!(probe, Probe::NoAnswer { .. }), "{probe:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let quick = Prober::new(Duration::from_millis(300));
    let started = Instant::now();
    assert!(!quick.probe(LOCAL, port).await.answered());
    assert!(started.elapsed() < Duration::from_millis(600));
}
