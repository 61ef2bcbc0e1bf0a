//! Shared helpers for the HTTP/SSH tests: start a simulator on port 0 and talk
//! to it with reqwest (ring-only rustls, pinned to the sim's fingerprint).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ctforge_pve_sim::{SimConfig, SimHandle, start};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use sha2::Digest as _;

/// Accepts exactly the certificate with the given SHA-256 fingerprint (any when empty).
#[derive(Debug)]
pub struct Pinned {
    pub fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp: String = sha2::Sha256::digest(end_entity.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        if self.fingerprint.is_empty() || fp == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!("fingerprint mismatch {fp}")))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn client(fingerprint: &str) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: fingerprint.to_string(),
            provider,
        }))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub struct Sim {
    pub h: SimHandle,
    pub c: reqwest::Client,
}

/// How to authenticate a request.
#[derive(Clone)]
pub enum Auth {
    None,
    Token(String),
    Ticket {
        ticket: String,
        csrf: Option<String>,
    },
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

impl Sim {
    pub async fn start(cfg: SimConfig) -> Sim {
        let h = start(cfg).await.expect("sim starts");
        let c = client(&h.fingerprint);
        Sim { h, c }
    }

    pub async fn default() -> Sim {
        Sim::start(SimConfig::for_tests().with_nodes(2).with_containers(6)).await
    }

    pub fn root(&self) -> Auth {
        Auth::Token(self.h.token_header())
    }

    pub async fn call(&self, method: &str, path: &str, auth: &Auth, form: &[(&str, &str)]) -> Resp {
        let url = format!("{}{}", self.h.api_url(), path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.c.request(m, url);
        match auth {
            Auth::None => {}
            Auth::Token(t) => rb = rb.header("Authorization", t),
            Auth::Ticket { ticket, csrf } => {
                rb = rb.header("Cookie", format!("PVEAuthCookie={ticket}"));
                if let Some(c) = csrf {
                    rb = rb.header("CSRFPreventionToken", c);
                }
            }
        }
        if method == "GET" || method == "DELETE" {
            if !form.is_empty() {
                let q: Vec<String> = form
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}={}",
                            k,
                            percent_encoding::utf8_percent_encode(
                                v,
                                percent_encoding::NON_ALPHANUMERIC
                            )
                        )
                    })
                    .collect();
                let url = format!("{}{}?{}", self.h.api_url(), path, q.join("&"));
                let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let mut rb2 = self.c.request(m, url);
                match auth {
                    Auth::None => {}
                    Auth::Token(t) => rb2 = rb2.header("Authorization", t),
                    Auth::Ticket { ticket, csrf } => {
                        rb2 = rb2.header("Cookie", format!("PVEAuthCookie={ticket}"));
                        if let Some(c) = csrf {
                            rb2 = rb2.header("CSRFPreventionToken", c);
                        }
                    }
                }
                rb = rb2;
            }
        } else {
            rb = rb.form(form);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &self.root(), &[]).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.call("POST", path, &self.root(), form).await
    }

    pub async fn login(&self, user: &str, password: &str) -> Resp {
        self.call(
            "POST",
            "/access/ticket",
            &Auth::None,
            &[("username", user), ("password", password)],
        )
        .await
    }

    /// Poll a task until it stops; returns its status object.
    pub async fn wait_task(&self, node: &str, upid: &str) -> Value {
        let enc = percent_encoding::utf8_percent_encode(upid, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        for _ in 0..400 {
            let r = self.get(&format!("/nodes/{node}/tasks/{enc}/status")).await;
            if r.data()["status"] == "stopped" {
                return r.data().clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("task {upid} did not finish");
    }

    pub async fn task_log(&self, node: &str, upid: &str) -> Resp {
        let enc = percent_encoding::utf8_percent_encode(upid, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        self.call(
            "GET",
            &format!("/nodes/{node}/tasks/{enc}/log"),
            &self.root(),
            &[("limit", "0")],
        )
        .await
    }

    /// Create a CT and wait for the task; returns the task status.
    pub async fn create_ct(&self, node: &str, vmid: &str, extra: &[(&str, &str)]) -> Value {
        let mut form = vec![
            ("vmid", vmid),
            (
                "ostemplate",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ),
            ("storage", "local-lvm"),
        ];
        form.extend_from_slice(extra);
        let r = self.post(&format!("/nodes/{node}/lxc"), &form).await;
        assert_eq!(r.status, 200, "create failed: {}", r.text);
        let upid = r.data().as_str().expect("upid").to_string();
        self.wait_task(node, &upid).await
    }
}
