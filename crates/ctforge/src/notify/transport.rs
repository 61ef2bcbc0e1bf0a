//! How a notification reaches a target: the [`Transport`] trait (chosen once at start-up and
//! carried in the `Notifier`), [`NetTransport`] (real HTTP with reqwest, real SMTP with lettre)
//! and [`RecordingTransport`] for unit tests.
//!
//! Formats: a webhook gets the [`Event`] as JSON, signed when the target has a key
//! (`X-Ctforge-Signature: sha256=<hex of HMAC-SHA256(key, body)>`, plus `X-Ctforge-Event`);
//! ntfy gets the message as the body with `Title`, `Tags` and `Priority` headers
//! (`Authorization: Bearer <token>`); Gotify gets `{title, message, priority}` on
//! `POST <url>/message` with the application token in `X-Gotify-Key` (the header form of its
//! `?token=`, so the token never appears in a URL or an error message); e-mail gets a plain-text
//! message. Errors never carry the request URL's secrets or the secret itself.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Event;
use super::targets::{SmtpSecurity, Target, TargetKind};
use crate::secrets::Plain;

/// Header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "X-Ctforge-Signature";
/// Header carrying the event kind.
pub const EVENT_HEADER: &str = "X-Ctforge-Event";

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The target's settings cannot work (fix them in Settings; retrying does not help).
    #[error("target misconfigured: {0}")]
    Config(String),
    /// The target answered with an error status.
    #[error("the target answered HTTP {status}{}", answer_suffix(.body))]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
    /// The target could not be reached or the exchange failed (retrying may help).
    #[error("{0}")]
    Transport(String),
    /// No answer within the budget.
    #[error("no answer within {0} s")]
    Timeout(u64),
}

fn answer_suffix(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

impl DeliveryError {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Config(_) => false,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Transport(_) | Self::Timeout(_) => true,
        }
    }
}

/// Sends one notification to one target.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Delivers `event` to `target`, using `secret` (opened from the target's sealed one).
    async fn send(
        &self,
        target: &Target,
        secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError>;
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `key`: what a receiver recomputes.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; the error case cannot happen for this MAC.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for byte in bytes {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The plain-text rendering (ntfy, Gotify, e-mail).
pub fn text_body(event: &Event) -> String {
    let mut lines = vec![event.message.clone()];
    let mut facts = Vec::new();
    if let Some(cluster) = &event.cluster {
        facts.push(format!("Cluster: {cluster}"));
    }
    if let Some(ct) = &event.container {
        let name = ct.hostname.clone().unwrap_or_default();
        match ct.vmid {
            Some(vmid) => facts.push(format!("Container: {name} (VMID {vmid})")),
            None if !name.is_empty() => facts.push(format!("Container: {name}")),
            None => {}
        }
    }
    if let Some(job) = event.job_id {
        facts.push(format!("Job: {job}"));
    }
    if let Some(link) = &event.link {
        facts.push(link.clone());
    }
    if !facts.is_empty() {
        lines.push(String::new());
        lines.extend(facts);
    }
    lines.push(String::new());
    lines.push(format!("Event: {} ({})", event.event.as_str(), event.key));
    lines.join("\n")
}

fn priority(event: &Event) -> u8 {
    use super::EventKind::*;
    match event.event {
        JobFailed | ServiceDown | ProxmoxUnreachable => 4,
        DriftDetected => 3,
        JobFinished | ServiceUp | ImageBuilt | Test => 2,
    }
}

/// Real HTTP and SMTP.
#[derive(Debug, Clone)]
pub struct NetTransport {
    http: reqwest::Client,
    timeout: Duration,
}

impl NetTransport {
    /// A transport whose attempts each get `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, DeliveryError> {
        // reqwest is built without a default provider: the process's one (ring) must exist
        // before a client does, also where `build_state` runs outside the CLI (unit tests).
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ctforge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, timeout })
    }

    fn url(target: &Target) -> Result<url::Url, DeliveryError> {
        let raw = target
            .settings
            .url
            .as_deref()
            .ok_or_else(|| DeliveryError::Config("no URL".to_owned()))?;
        url::Url::parse(raw).map_err(|e| DeliveryError::Config(format!("bad URL: {e}")))
    }

    async fn post(&self, request: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
        let answer = request.send().await.map_err(|e| {
            if e.is_timeout() {
                DeliveryError::Timeout(self.timeout.as_secs())
            } else {
                DeliveryError::Transport(e.without_url().to_string())
            }
        })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let body = answer.text().await.unwrap_or_default();
        Err(DeliveryError::Status {
            status: status.as_u16(),
            body: super::scrub(&body.chars().take(200).collect::<String>()),
        })
    }

    async fn webhook(
        &self,
        target: &Target,
        secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(event)
            .map_err(|e| DeliveryError::Config(format!("cannot encode the event: {e}")))?;
        let mut request = self
            .http
            .post(Self::url(target)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event.event.as_str());
        if let Some(key) = secret {
            request = request.header(SIGNATURE_HEADER, signature(key.expose().as_bytes(), &body));
        }
        self.post(request.body(body)).await
    }

    async fn ntfy(
        &self,
        target: &Target,
        secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        // ntfy reads headers as latin-1: keep the title to what survives.
        let title: String = event
            .title
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let mut request = self
            .http
            .post(Self::url(target)?)
            .header("Title", title)
            .header("Tags", event.event.as_str())
            .header("Priority", priority(event).to_string());
        if let Some(link) = &event.link {
            request = request.header("Click", link.as_str());
        }
        if let Some(token) = secret {
            request = request.bearer_auth(token.expose());
        }
        self.post(request.body(text_body(event))).await
    }

    async fn gotify(
        &self,
        target: &Target,
        secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        let token = secret
            .ok_or_else(|| DeliveryError::Config("Gotify needs an application token".into()))?;
        let mut url = Self::url(target)?;
        let path = format!("{}/message", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let request = self
            .http
            .post(url)
            .header("X-Gotify-Key", token.expose())
            .json(&serde_json::json!({
                "title": event.title,
                "message": text_body(event),
                "priority": priority(event),
            }));
        self.post(request).await
    }

    async fn email(
        &self,
        target: &Target,
        secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        use lettre::message::{Mailbox, header::ContentType};
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

        let smtp = target
            .settings
            .smtp
            .as_ref()
            .ok_or_else(|| DeliveryError::Config("no SMTP settings".to_owned()))?;
        let address = |text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| DeliveryError::Config(format!("{text:?} is not an address: {e}")))
        };
        let mut message = Message::builder()
            .from(address(&smtp.from)?)
            .subject(format!("[ctforge] {}", event.title))
            .header(ContentType::TEXT_PLAIN);
        for to in &smtp.to {
            message = message.to(address(to)?);
        }
        let message = message
            .body(text_body(event))
            .map_err(|e| DeliveryError::Config(format!("cannot build the message: {e}")))?;
        let builder = match smtp.security {
            SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            }
            SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                    .map_err(|e| DeliveryError::Config(format!("TLS setup: {e}")))?
            }
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                .map_err(|e| DeliveryError::Config(format!("TLS setup: {e}")))?,
        };
        let mut builder = builder.port(smtp.port()).timeout(Some(self.timeout));
        if let Some(user) = &smtp.username {
            let password = secret.map(|p| p.expose().to_owned()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let mailer = builder.build();
        let sent = tokio::time::timeout(self.timeout, mailer.send(message)).await;
        match sent {
            Err(_) => Err(DeliveryError::Timeout(self.timeout.as_secs())),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(DeliveryError::Status {
                status: e.status().map(u16::from).unwrap_or(550),
                body: super::scrub(&e.to_string()),
            }),
            Ok(Err(e)) => Err(DeliveryError::Transport(format!(
                "SMTP {}:{}: {}",
                smtp.host,
                smtp.port(),
                super::scrub(&e.to_string())
            ))),
        }
    }
}

#[async_trait]
impl Transport for NetTransport {
    async fn send(
        &self,
        target: &Target,
        secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        match target.kind {
            TargetKind::Webhook => self.webhook(target, secret, event).await,
            TargetKind::Ntfy => self.ntfy(target, secret, event).await,
            TargetKind::Gotify => self.gotify(target, secret, event).await,
            TargetKind::Email => self.email(target, secret, event).await,
        }
    }
}

/// Records what would be sent (unit tests); fails the first `fail_first` sends.
#[derive(Debug, Default)]
pub struct RecordingTransport {
    sent: Mutex<Vec<(String, Event)>>,
    fail_first: Mutex<u32>,
}

impl RecordingTransport {
    /// A transport that fails its first `n` sends with a retryable error.
    pub fn failing_first(n: u32) -> Self {
        Self {
            sent: Mutex::default(),
            fail_first: Mutex::new(n),
        }
    }

    /// (target name, event) of every successful send, in order.
    pub fn sent(&self) -> Vec<(String, Event)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Transport for RecordingTransport {
    async fn send(
        &self,
        target: &Target,
        _secret: Option<&Plain>,
        event: &Event,
    ) -> Result<(), DeliveryError> {
        if let Ok(mut left) = self.fail_first.lock()
            && *left > 0
        {
            *left -= 1;
            return Err(DeliveryError::Status {
                status: 503,
                body: "try later".to_owned(),
            });
        }
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((target.name.clone(), event.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(DeliveryError::Timeout(10).retryable());
        assert!(
            DeliveryError::Status {
                status: 503,
                body: String::new()
            }
            .retryable()
        );
        assert!(
            !DeliveryError::Status {
                status: 404,
                body: String::new()
            }
            .retryable()
        );
        assert!(!DeliveryError::Config("x".into()).retryable());
    }
}
