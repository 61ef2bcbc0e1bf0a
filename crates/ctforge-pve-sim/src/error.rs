//! API errors as Proxmox sends them: status code, message (also the HTTP reason
//! phrase, first line), optional per-parameter `errors` map, and whether the body
//! is JSON (handler errors) or empty (errors raised before the handler).

use std::collections::BTreeMap;

/// How the error body looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `{"data":null,"message":"…\n"[,"errors":{…}]}`.
    Json,
    /// Empty body; the text is only in the reason phrase (401, 595, transport 501).
    Empty,
}

/// An error answer of the simulated API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code (400, 401, 403, 500, 501, 595, 596, …).
    pub status: u16,
    /// Message without trailing newline.
    pub message: String,
    /// Per-parameter errors (400 only).
    pub errors: Option<BTreeMap<String, String>>,
    /// Body format.
    pub body: BodyKind,
    /// Whether the server should wait the configured 401 delay before answering.
    pub delayed: bool,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>, body: BodyKind) -> Self {
        ApiError {
            status,
            message: message.into(),
            errors: None,
            body,
            delayed: false,
        }
    }

    /// 400 `Parameter verification failed.` with the given errors map.
    pub fn params(errors: BTreeMap<String, String>) -> Self {
        ApiError {
            errors: Some(errors),
            ..Self::new(400, "Parameter verification failed.", BodyKind::Json)
        }
    }

    /// 400 with a single parameter error.
    pub fn param(name: &str, text: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(name.to_string(), text.into());
        Self::params(m)
    }

    /// 401 before the handler (empty body, delayed): `No ticket`,
    /// `Authentication failed!`, `Permission denied - invalid csrf token`.
    pub fn unauthorized(text: &str) -> Self {
        ApiError {
            delayed: true,
            ..Self::new(401, text, BodyKind::Empty)
        }
    }

    /// 401 `authentication failure` of `POST /access/ticket` (JSON body, delayed).
    pub fn login_failed() -> Self {
        ApiError {
            delayed: true,
            ..Self::new(401, "authentication failure", BodyKind::Json)
        }
    }

    /// 403 `Permission check failed (<path>, <priv>)`.
    pub fn perm(path: &str, privilege: &str) -> Self {
        Self::new(
            403,
            format!("Permission check failed ({path}, {privilege})"),
            BodyKind::Json,
        )
    }

    /// 403 `Permission check failed (<text>)` (a handler's `raise_perm_exc`).
    pub fn perm_text(text: &str) -> Self {
        Self::new(
            403,
            format!("Permission check failed ({text})"),
            BodyKind::Json,
        )
    }

    /// 500 with a handler's `die` text.
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(500, text, BodyKind::Json)
    }

    /// 501 `Method 'GET /foo' not implemented` (JSON).
    pub fn not_implemented(method: &str, path: &str) -> Self {
        Self::new(
            501,
            format!("Method '{method} {path}' not implemented"),
            BodyKind::Json,
        )
    }

    /// 501 from the transport layer (unknown HTTP method, body on GET, too large).
    pub fn transport_501(text: impl Into<String>) -> Self {
        Self::new(501, text, BodyKind::Empty)
    }

    /// 595/596 when the call is proxied to a node that is down.
    pub fn proxy(code: u16, text: impl Into<String>) -> Self {
        Self::new(code, text, BodyKind::Empty)
    }

    /// Any status with a JSON body (used by fault injection).
    pub fn custom(status: u16, text: impl Into<String>) -> Self {
        Self::new(status, text, BodyKind::Json)
    }

    /// The standard "does not exist" error for a CT config.
    pub fn no_config(node: &str, vmid: u32) -> Self {
        Self::internal(format!(
            "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
        ))
    }

    /// The JSON body of this error (`None` for empty-body errors).
    pub fn body_json(&self) -> Option<serde_json::Value> {
        match self.body {
            BodyKind::Empty => None,
            BodyKind::Json => {
                let mut obj = serde_json::Map::new();
                obj.insert("data".into(), serde_json::Value::Null);
                obj.insert(
                    "message".into(),
                    serde_json::Value::String(format!("{}\n", self.message)),
                );
                if let Some(errs) = &self.errors {
                    let m: serde_json::Map<String, serde_json::Value> = errs
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect();
                    obj.insert("errors".into(), serde_json::Value::Object(m));
                }
                Some(serde_json::Value::Object(obj))
            }
        }
    }

    /// The HTTP reason phrase: the first line of the message, restricted to
    /// characters allowed in a status line.
    pub fn reason(&self) -> String {
        let first = self.message.lines().next().unwrap_or("");
        first
            .chars()
            .map(|c| {
                if c == '\t' || (' '..='~').contains(&c) {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}
