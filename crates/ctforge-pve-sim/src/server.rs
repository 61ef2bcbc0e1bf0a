//! The HTTP(S) front end: accept loop (TLS optional), request pipeline and
//! Proxmox-style responses.
//!
//! Pipeline: method check → fault injection (latency, injected errors, dropped
//! connections) → body limits → parameters (query over body, form or JSON) →
//! authentication (ticket + CSRF, or API token) → route lookup (501) → node
//! checks (unknown node 500, node down 595/596 on proxied calls) → permission
//! (403) → validation (400) → handler. Responses carry `Server:
//! pve-api-daemon/3.0`, no-cache headers, the message as reason phrase, and
//! `Connection: close` on errors.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{self, Identity};
use crate::error::{ApiError, BodyKind};
use crate::routes::{self, Ctx, Perm, Reply};
use crate::state::SimState;
use crate::validate::{self, RawValue};

/// Shared application state of the HTTP server.
pub struct App {
    state: SimState,
}

impl App {
    /// Wrap the state.
    pub fn new(state: SimState) -> Self {
        App { state }
    }
}

/// Error that makes hyper drop the connection without answering.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Maximum request body (512 KiB, as libpve-http-server ≥ 5.2.1).
pub const MAX_BODY: usize = 512 * 1024;

/// Accept connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { handle(app, req).await }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acc) => {
                    let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(s), svc);
                    tokio::select! {
                        _ = conn => {},
                        _ = sd.changed() => {},
                    }
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {},
                        _ = sd.changed() => {},
                    }
                }
            }
        });
    }
}

fn http_date(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mon} {y} {h:02}:{m:02}:{s:02} GMT")
}

fn base_response(
    status: u16,
    reason: Option<String>,
    body: Bytes,
    json_body: bool,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    let date = http_date(crate::state::wall_now());
    h.insert(
        "server",
        hyper::header::HeaderValue::from_static("pve-api-daemon/3.0"),
    );
    h.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("max-age=0"),
    );
    h.insert(
        "pragma",
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&date) {
        h.insert("expires", v.clone());
        h.insert("date", v);
    }
    if json_body {
        h.insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
    if status >= 400 {
        h.insert(
            "connection",
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    if let Some(r) = reason
        && let Ok(rp) = hyper::ext::ReasonPhrase::try_from(r.into_bytes())
    {
        resp.extensions_mut().insert(rp);
    }
    resp
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    match e.body {
        BodyKind::Json => {
            let body = e.body_json().unwrap_or(Value::Null);
            base_response(
                e.status,
                Some(e.reason()),
                Bytes::from(body.to_string()),
                true,
            )
        }
        BodyKind::Empty => base_response(e.status, Some(e.reason()), Bytes::new(), false),
    }
}

fn ok_response(r: Reply) -> Response<Full<Bytes>> {
    let mut obj = serde_json::Map::new();
    obj.insert("data".into(), r.data);
    for (k, v) in r.extra {
        obj.insert(k.to_string(), v);
    }
    base_response(200, None, Bytes::from(Value::Object(obj).to_string()), true)
}

fn cookie_ticket(req: &Request<Incoming>) -> Option<String> {
    for v in req.headers().get_all("cookie") {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some(t) = part.trim().strip_prefix("PVEAuthCookie=") {
                return Some(
                    percent_encoding::percent_decode_str(t)
                        .decode_utf8_lossy()
                        .into_owned(),
                );
            }
        }
    }
    None
}

enum Creds {
    None,
    Ticket(String),
    Token(String, String),
}

fn credentials(req: &Request<Incoming>) -> Creds {
    if let Some(a) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let a = a.trim();
        if let Some(rest) = a
            .strip_prefix("PVEAPIToken=")
            .or_else(|| a.strip_prefix("PVEAPIToken "))
        {
            let rest = rest.trim();
            return match rest.split_once('=') {
                Some((id, secret)) => Creds::Token(id.to_string(), secret.to_string()),
                None => Creds::Token(rest.to_string(), String::new()),
            };
        }
        if let Some(t) = a.strip_prefix("PVEAuthCookie=") {
            return Creds::Ticket(
                percent_encoding::percent_decode_str(t)
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
    }
    match cookie_ticket(req) {
        Some(t) => Creds::Ticket(t),
        None => Creds::None,
    }
}

/// Authenticate; `Ok(None)` when no credentials were sent.
fn authenticate(
    state: &SimState,
    req: &Request<Incoming>,
    write: bool,
) -> Result<Option<Identity>, ApiError> {
    match credentials(req) {
        Creds::None => Ok(None),
        Creds::Token(id, secret) => {
            let c = state.lock();
            let now = c.now();
            let tok = c
                .tokens
                .get(&id)
                .ok_or_else(|| ApiError::unauthorized("Authentication failed!"))?;
            let user_ok = c.users.get(tok.user()).map(|u| u.enabled).unwrap_or(false);
            let expired = tok.expire != 0 && tok.expire <= now;
            if tok.secret != secret || !user_ok || expired {
                return Err(ApiError::unauthorized("Authentication failed!"));
            }
            Ok(Some(Identity {
                userid: tok.user().to_string(),
                tokenid: Some(tok.name().to_string()),
            }))
        }
        Creds::Ticket(t) => {
            let c = state.lock();
            let now = c.now();
            let user = auth::verify_ticket(state.key(), &t, now, c.ticket_lifetime)
                .ok_or_else(|| ApiError::unauthorized("Authentication failed!"))?;
            if !c.users.get(&user).map(|u| u.enabled).unwrap_or(false) {
                return Err(ApiError::unauthorized("Authentication failed!"));
            }
            if write {
                let token = req
                    .headers()
                    .get("csrfpreventiontoken")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !auth::verify_csrf(state.key(), &user, token, now, c.ticket_lifetime) {
                    return Err(ApiError::unauthorized(
                        "Permission denied - invalid csrf token",
                    ));
                }
            }
            Ok(Some(Identity {
                userid: user,
                tokenid: None,
            }))
        }
    }
}

enum FaultAction {
    None,
    Drop,
    Error(ApiError),
}

async fn apply_faults(state: &SimState, method: &str, rel: &str) -> FaultAction {
    let (latency, action) = state.with(|c| {
        let mut latency = Duration::from_millis(c.faults.latency_ms);
        let mut action = FaultAction::None;
        let mut rng = rand::rng();
        for (i, r) in c.faults.rules.iter().enumerate() {
            if r.method
                .as_deref()
                .map(|m| !m.eq_ignore_ascii_case(method))
                .unwrap_or(false)
            {
                continue;
            }
            let Some(re) = validate_regex(&r.path) else {
                continue;
            };
            if !re.is_match(rel) {
                continue;
            }
            if c.fault_hits.get(i).copied().unwrap_or(u32::MAX) == 0 {
                continue;
            }
            latency += Duration::from_millis(r.latency_ms);
            let mut hit = false;
            if matches!(action, FaultAction::None) {
                if r.drop_rate > 0.0 && rng.random::<f64>() < r.drop_rate {
                    action = FaultAction::Drop;
                    hit = true;
                } else if r.error_rate > 0.0 && rng.random::<f64>() < r.error_rate {
                    let e = if (595..=599).contains(&r.status) {
                        ApiError::proxy(r.status, r.message.clone())
                    } else {
                        ApiError::custom(r.status, r.message.clone())
                    };
                    action = FaultAction::Error(e);
                    hit = true;
                }
            }
            if (hit || r.latency_ms > 0)
                && let Some(h) = c.fault_hits.get_mut(i)
                && *h != u32::MAX
            {
                *h = h.saturating_sub(1);
            }
        }
        (latency, action)
    });
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    action
}

fn validate_regex(p: &str) -> Option<regex::Regex> {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<BTreeMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut m = cache.lock().ok()?;
    m.entry(p.to_string())
        .or_insert_with(|| regex::Regex::new(p).ok())
        .clone()
}

async fn delayed(state: &SimState, e: ApiError) -> Response<Full<Bytes>> {
    if e.delayed {
        let d = state.with(|c| c.timings.auth_failure_delay);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
    error_response(&e)
}

fn parse_params(
    query: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Result<BTreeMap<String, RawValue>, ApiError> {
    let mut out = BTreeMap::new();
    if !body.is_empty() {
        if content_type.starts_with("application/json") {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::internal(format!("malformed JSON string: {e}")))?;
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        out.insert(k, RawValue::Json(v));
                    }
                }
                _ => return Err(ApiError::internal("malformed JSON body: not an object")),
            }
        } else {
            for (k, v) in form_urlencoded::parse(body) {
                add_form_value(&mut out, k.into_owned(), v.into_owned());
            }
        }
    }
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            add_form_value(&mut out, k.into_owned(), v.into_owned());
        }
    }
    Ok(out)
}

/// A repeated form or query field is joined with NUL, as pve-http-server does (array
/// parameters such as `command` of `agent/exec` are split on it again).
fn add_form_value(out: &mut BTreeMap<String, RawValue>, k: String, v: String) {
    match out.get_mut(&k) {
        Some(RawValue::Str(prev)) => {
            prev.push('\0');
            prev.push_str(&v);
        }
        _ => {
            out.insert(k, RawValue::Str(v));
        }
    }
}

/// Handle one request.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let state = &app.state;
    let method = req.method().as_str().to_string();
    if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "DELETE") {
        return Ok(error_response(&ApiError::transport_501(format!(
            "method '{method}' not available"
        ))));
    }
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/sim/admin") {
        return Ok(admin(state, req, &method, rest.to_string()).await);
    }
    let Some(rel) = path.strip_prefix("/api2/json") else {
        return Ok(base_response(
            404,
            Some("File not found".into()),
            Bytes::new(),
            false,
        ));
    };
    let rel = if rel.is_empty() {
        "/".to_string()
    } else {
        rel.to_string()
    };

    state.count_call(&method, &rel);
    match apply_faults(state, &method, &rel).await {
        FaultAction::Drop => return Err(DropConnection),
        FaultAction::Error(e) => return Ok(error_response(&e)),
        FaultAction::None => {}
    }

    let write = method != "GET";
    let ident = match authenticate(state, &req, write) {
        Ok(i) => i,
        Err(e) => return Ok(delayed(state, e).await),
    };
    let query = req.uri().query().map(str::to_string);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(error_response(&ApiError::transport_501(
                "for data too large",
            )));
        }
    };
    if (method == "GET" || method == "DELETE") && !body.is_empty() {
        return Ok(error_response(&ApiError::transport_501(format!(
            "Unexpected content for method '{method}'"
        ))));
    }

    let found = routes::find(&method, &rel);
    let world = matches!(found, Some((r, _)) if matches!(r.perm, Perm::World));
    if ident.is_none() && !world {
        return Ok(delayed(state, ApiError::unauthorized("No ticket")).await);
    }
    let Some((route, path_params)) = found else {
        return Ok(error_response(&ApiError::not_implemented(&method, &rel)));
    };
    let Some(schema) = validate::schema_for(route.method, route.path) else {
        return Ok(error_response(&ApiError::internal(
            "simulator: route without schema",
        )));
    };

    // Node existence / down check.
    if let Some(node) = path_params.get("node") {
        let node_state = state.with(|c| c.node(node).map(|n| (n.online, n.down_code)));
        match node_state {
            None if validate::check_named_format("pve-node", node).is_ok() => {
                return Ok(error_response(&ApiError::internal(format!(
                    "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
                ))));
            }
            Some((false, code)) if schema.proxyto.is_some() => {
                let text = if code == 596 {
                    "Connection timed out"
                } else {
                    "No route to host"
                };
                return Ok(error_response(&ApiError::proxy(code, text)));
            }
            _ => {}
        }
    }

    if let Some(id) = &ident
        && id.tokenid.is_some()
        && !schema.allowtoken
    {
        return Ok(error_response(&ApiError::perm_text(&format!(
            "URI '{rel}' not available with API token, need proper ticket."
        ))));
    }

    let mut raw = match parse_params(query.as_deref(), &content_type, &body) {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&e)),
    };

    // Permission check (before validation, as PVE does).
    if let Some(id) = &ident {
        let pp = |k: &str| {
            path_params
                .get(k)
                .cloned()
                .or_else(|| raw.get(k).map(RawValue::as_text))
                .unwrap_or_default()
        };
        let check = state.with(|c| {
            let need = |path: String, privs: &[&str]| -> Result<(), ApiError> {
                if privs.iter().any(|p| c.has_priv(id, &path, p)) {
                    Ok(())
                } else {
                    Err(ApiError::perm(&path, privs.first().copied().unwrap_or("")))
                }
            };
            match route.perm {
                Perm::Vm(p) => need(format!("/vms/{}", pp("vmid")), &[p]),
                Perm::VmAny(ps) => need(format!("/vms/{}", pp("vmid")), ps),
                Perm::Node(p) => need(format!("/nodes/{}", pp("node")), &[p]),
                Perm::StorageAny(ps) => need(format!("/storage/{}", pp("storage")), ps),
                Perm::Pool(p) => need(format!("/pool/{}", pp("poolid")), &[p]),
                Perm::World | Perm::Authenticated | Perm::Handler => Ok(()),
            }
        });
        if let Err(e) = check {
            return Ok(error_response(&e));
        }
    }

    for (k, v) in &path_params {
        if let Some(existing) = raw.get(k)
            && existing.as_text() != *v
        {
            return Ok(error_response(&ApiError::param(
                k,
                "duplicate parameter (already defined in URI) with conflicting values!",
            )));
        }
        raw.insert(k.clone(), RawValue::Str(v.clone()));
    }
    let params = match validate::validate(schema, &raw) {
        Ok(p) => p,
        Err(e) => return Ok(error_response(&e)),
    };
    let ctx = Ctx {
        state,
        ident,
        params,
    };
    let result = (route.handler)(&ctx);
    Ok(match result {
        Ok(r) => ok_response(r),
        Err(e) => delayed(state, e).await,
    })
}

async fn admin(
    state: &SimState,
    req: Request<Incoming>,
    method: &str,
    rest: String,
) -> Response<Full<Bytes>> {
    let ident = match authenticate(state, &req, method != "GET") {
        Ok(Some(i)) => i,
        Ok(None) => return error_response(&ApiError::unauthorized("No ticket")),
        Err(e) => return error_response(&e),
    };
    if ident.userid != "root@pam" || state.with(|c| !c.has_priv(&ident, "/", "Sys.Modify")) {
        return error_response(&ApiError::perm("/", "Sys.Modify"));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error_response(&ApiError::transport_501("for data too large")),
    };
    let v: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error_response(&ApiError::custom(400, format!("bad JSON: {e}"))),
        }
    };
    match routes::admin::handle(state, method, &rest, v) {
        Ok(data) => ok_response(Reply::data(data)),
        Err((code, msg)) => error_response(&ApiError::custom(code, msg)),
    }
}
