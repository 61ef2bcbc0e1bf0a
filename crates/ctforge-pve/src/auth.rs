//! Authentication types: [`Secret`], [`Auth`] (API token or ticket),
//! [`Ticket`] with its [`Capabilities`], and the TFA challenge of the
//! two-step login (REFERENCE.md §1.4).
//!
//! * API token: header `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`,
//!   no CSRF token, no expiry.
//! * Ticket: cookie `PVEAuthCookie=<ticket>` on every request plus header
//!   `CSRFPreventionToken: <token>` on every non-GET. Tickets live 2 h; renew
//!   them (see [`Ticket::needs_renewal`]) by posting the ticket as password.
//!
//! Secret-bearing types print `***` in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use crate::types::de;

/// A secret string (password, token secret, ticket) whose `Debug` and
/// `Display` are redacted. Use [`Secret::expose`] to read it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret value. Never log it.
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

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

/// How the client authenticates.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No credentials (only `/version`-less public calls such as
    /// `/access/domains` and login work).
    #[default]
    None,
    /// An API token.
    Token {
        /// `user@realm`.
        user: String,
        /// Token id (the part after `!`).
        token_id: String,
        /// Token secret (a UUID).
        secret: Secret,
    },
    /// A login ticket.
    Ticket(Ticket),
}

impl Auth {
    /// API token credentials.
    pub fn token(
        user: impl Into<String>,
        token_id: impl Into<String>,
        secret: impl Into<Secret>,
    ) -> Self {
        Auth::Token {
            user: user.into(),
            token_id: token_id.into(),
            secret: secret.into(),
        }
    }

    /// The `Authorization` header value for token auth.
    pub(crate) fn token_header(&self) -> Option<String> {
        match self {
            Auth::Token {
                user,
                token_id,
                secret,
            } => Some(format!("PVEAPIToken={user}!{token_id}={}", secret.expose())),
            _ => None,
        }
    }
}

/// Privileges the ticket's user holds, from the login response's `cap`
/// object: scope (`vms`, `storage`, `nodes`, `access`, `sdn`, `dc`,
/// `mapping`) → privilege → granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities(pub BTreeMap<String, BTreeMap<String, bool>>);

impl Capabilities {
    /// True when `privilege` is granted in `scope`, e.g.
    /// `has("vms", "VM.Allocate")`.
    pub fn has(&self, scope: &str, privilege: &str) -> bool {
        self.0
            .get(scope)
            .and_then(|m| m.get(privilege))
            .copied()
            .unwrap_or(false)
    }

    fn from_value(v: &serde_json::Value) -> Self {
        let mut out = BTreeMap::new();
        if let serde_json::Value::Object(scopes) = v {
            for (scope, privs) in scopes {
                let mut m = BTreeMap::new();
                if let serde_json::Value::Object(privs) = privs {
                    for (p, g) in privs {
                        let granted = match g {
                            serde_json::Value::Bool(b) => *b,
                            serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                            serde_json::Value::String(s) => de::parse_bool(s).unwrap_or(false),
                            _ => false,
                        };
                        m.insert(p.clone(), granted);
                    }
                }
                out.insert(scope.clone(), m);
            }
        }
        Capabilities(out)
    }
}

/// Ticket lifetime on the server.
pub const TICKET_LIFETIME: Duration = Duration::hours(2);
/// Renew tickets older than this.
pub const TICKET_RENEW_AFTER: Duration = Duration::minutes(105);

/// A full login ticket. `Debug` redacts the ticket and CSRF token.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// The `PVEAuthCookie` value.
    pub ticket: Secret,
    /// The `CSRFPreventionToken` header value.
    pub csrf_token: Secret,
    /// `user@realm`.
    pub username: String,
    /// The user's privileges at login time.
    pub cap: Capabilities,
    /// Cluster name, when the server sent it.
    pub clustername: Option<String>,
    /// When the client received the ticket (client clock).
    pub issued_at: OffsetDateTime,
}

impl Ticket {
    /// True when the ticket should be renewed (older than 1 h 45 min).
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        now - self.issued_at >= TICKET_RENEW_AFTER
    }
    /// True when the ticket is past its 2 h lifetime.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now - self.issued_at >= TICKET_LIFETIME
    }
    /// When the ticket expires (client clock).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.issued_at + TICKET_LIFETIME
    }
    /// The server's issue time embedded in the ticket
    /// (`PVE:<user>:<hex time>::<signature>`), if parseable.
    pub fn server_timestamp(&self) -> Option<OffsetDateTime> {
        let hex = self.ticket.expose().split(':').nth(2)?;
        let secs = i64::from_str_radix(hex, 16).ok()?;
        OffsetDateTime::from_unix_timestamp(secs).ok()
    }
}

/// The half-ticket and available second factors after a first login step
/// that requires TFA. `Debug` redacts the half ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct TfaChallenge {
    /// `user@realm`.
    pub username: String,
    /// The signed challenge (`PVE:!tfa!…`), sent back as `tfa-challenge`.
    pub ticket: Secret,
    /// TOTP is available.
    pub totp: bool,
    /// Recovery keys are available.
    pub recovery: bool,
    /// WebAuthn is available.
    pub webauthn: bool,
    /// Yubico OTP is available.
    pub yubico: bool,
    /// U2F is available.
    pub u2f: bool,
}

impl TfaChallenge {
    /// Names of the available factor types (`totp`, `recovery`, ...).
    pub fn types(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.totp {
            v.push("totp");
        }
        if self.recovery {
            v.push("recovery");
        }
        if self.webauthn {
            v.push("webauthn");
        }
        if self.yubico {
            v.push("yubico");
        }
        if self.u2f {
            v.push("u2f");
        }
        v
    }

    fn from_ticket(username: String, ticket: String) -> Self {
        // PVE:!tfa!<url-encoded JSON>:<hex>::<sig>
        let json = ticket
            .split(':')
            .nth(1)
            .and_then(|p| p.strip_prefix("!tfa!"))
            .map(|enc| {
                percent_encoding::percent_decode_str(enc)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        let present = |k: &str| match json.get(k) {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Array(a)) => !a.is_empty(),
            Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(_) => true,
        };
        TfaChallenge {
            totp: present("totp"),
            recovery: present("recovery"),
            webauthn: present("webauthn"),
            yubico: present("yubico"),
            u2f: present("u2f"),
            username,
            ticket: Secret::new(ticket),
        }
    }
}

/// Result of the first login step.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginOutcome {
    /// Logged in.
    Authenticated(Ticket),
    /// A second factor is required: answer with [`crate::complete_tfa`].
    TfaRequired(TfaChallenge),
}

#[derive(Deserialize)]
pub(crate) struct TicketResponse {
    #[serde(default)]
    username: String,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default, rename = "CSRFPreventionToken")]
    csrf: Option<String>,
    #[serde(default)]
    cap: Option<serde_json::Value>,
    #[serde(default)]
    clustername: Option<String>,
    #[serde(default, rename = "NeedTFA", deserialize_with = "de::opt_bool")]
    need_tfa: Option<bool>,
}

impl TicketResponse {
    pub(crate) fn into_outcome(self, now: OffsetDateTime) -> Result<LoginOutcome, String> {
        let ticket = self
            .ticket
            .ok_or_else(|| "login response has no ticket".to_string())?;
        if self.need_tfa.unwrap_or(false) || ticket.starts_with("PVE:!tfa!") {
            return Ok(LoginOutcome::TfaRequired(TfaChallenge::from_ticket(
                self.username,
                ticket,
            )));
        }
        let csrf = self
            .csrf
            .ok_or_else(|| "login response has no CSRFPreventionToken".to_string())?;
        Ok(LoginOutcome::Authenticated(Ticket {
            ticket: Secret::new(ticket),
            csrf_token: Secret::new(csrf),
            username: self.username,
            cap: self
                .cap
                .as_ref()
                .map(Capabilities::from_value)
                .unwrap_or_default(),
            clustername: self.clustername,
            issued_at: now,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ticket_and_caps() {
        let r: TicketResponse = serde_json::from_str(
            r#"{"username":"alice@pve","ticket":"PVE:alice@pve:4EEC61E2::c2ln","CSRFPreventionToken":"4EEC61E2:abc",
                "cap":{"vms":{"VM.Allocate":1,"VM.Audit":"1"},"storage":{"Datastore.AllocateSpace":1},"dc":{"Sys.Audit":0}}}"#,
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let LoginOutcome::Authenticated(t) = r.into_outcome(now).unwrap() else {
            panic!("expected ticket")
        };
        assert!(t.cap.has("vms", "VM.Allocate"));
        assert!(t.cap.has("vms", "VM.Audit"));
        assert!(!t.cap.has("dc", "Sys.Audit"));
        assert!(!t.cap.has("nodes", "Sys.Modify"));
        assert_eq!(
            t.server_timestamp().map(|d| d.unix_timestamp()),
            Some(0x4EEC61E2)
        );
        assert!(!t.needs_renewal(now + Duration::minutes(100)));
        assert!(t.needs_renewal(now + Duration::minutes(106)));
        assert!(t.is_expired(now + Duration::hours(2)));
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("c2ln") && !dbg.contains("4EEC61E2:abc"));
    }

    #[test]
    fn parses_tfa_challenge() {
        let r: TicketResponse = serde_json::from_str(
            r#"{"username":"bob@pve","ticket":"PVE:!tfa!%7B%22totp%22%3Atrue%2C%22recovery%22%3A%5B0%2C1%5D%7D:65A1B2C3::sig","CSRFPreventionToken":"x","NeedTFA":1}"#,
        )
        .unwrap();
        let LoginOutcome::TfaRequired(c) = r.into_outcome(OffsetDateTime::now_utc()).unwrap()
        else {
            panic!("expected tfa")
        };
        assert_eq!(c.types(), vec!["totp", "recovery"]);
    }

    #[test]
    fn token_header_format() {
        let a = Auth::token("root@pam", "ctforge", "aaaa-bbbb");
        assert_eq!(
            a.token_header().as_deref(),
            Some("PVEAPIToken=root@pam!ctforge=aaaa-bbbb")
        );
        assert!(!format!("{a:?}").contains("aaaa-bbbb"));
    }
}
