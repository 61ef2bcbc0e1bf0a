//! [`PveClient`]: the HTTP implementation of [`PveApi`] over reqwest + rustls.
//!
//! * Authentication per [`Auth`]: API token header, or ticket cookie plus
//!   `CSRFPreventionToken` on every non-GET; nothing for `/access/ticket`.
//! * Retries ([`RetryPolicy`]): GETs are retried with exponential backoff and
//!   full jitter on transient failures (connect errors, timeouts, 595/596/599,
//!   502-504, lock timeouts). POST/PUT/DELETE are only repeated when the
//!   connection could not be established at all (nothing was sent); every
//!   other failure is returned to the caller. A create whose answer was lost
//!   is resolved by [`create_lxc_checked`], which looks for the VMID first.
//! * Every attempt is traced at debug level with method, path, status,
//!   duration and attempt; parameter values and credentials are never logged.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::api::PveApi;
use crate::auth::{Auth, LoginOutcome, TfaChallenge, Ticket, TicketResponse};
use crate::error::{PveError, Result};
use crate::request::{self, Method, RequestSpec};
use crate::tls::{self, FingerprintVerifier, TlsMode};
use crate::types::{
    AplInfo, CloneParams, ClusterResource, ConsolidationFn, DeleteOptions, Domain, LxcConfig,
    LxcConfigUpdate, LxcCreateParams, LxcInterface, LxcStatus, NetworkIface, NodeInfo, NodeStatus,
    PendingEntry, Pool, QemuStatus, ResourceKind, RrdPoint, Snapshot, Storage, StorageContent,
    TaskLog, TaskLogLine, TaskStatus, Timeframe, Upid, Version, de,
};

/// Characters percent-encoded in path segments (`%` is left alone: the request
/// builders already escaped it, see [`request::seg`]).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@')
    .remove(b'%');

/// Characters percent-encoded in the ticket cookie value.
const COOKIE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@');

/// Retry policy for idempotent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: u32,
    /// Backoff base: attempt n waits up to `base_delay * 2^n` (full jitter).
    pub base_delay: Duration,
    /// Upper bound of one backoff delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    /// The jittered delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)));
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis().min(u128::from(u64::MAX)) as u64;
        if millis == 0 {
            return Duration::ZERO;
        }
        // "full jitter", but never below a quarter of the cap.
        let low = millis / 4;
        Duration::from_millis(rand::rng().random_range(low..=millis))
    }
}

/// Client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:8006` (with or without `/api2/json`).
    pub base_url: String,
    /// Credentials.
    pub auth: Auth,
    /// Certificate verification.
    pub tls: TlsMode,
    /// Timeout of one HTTP request (connect + answer).
    pub timeout: Duration,
    /// Retry policy for idempotent requests.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults: no auth, system roots, 30 s timeout, default retries.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            auth: Auth::None,
            tls: TlsMode::System,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
    /// Set the credentials.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
    /// Set the TLS mode.
    pub fn with_tls(mut self, tls: TlsMode) -> Self {
        self.tls = tls;
        self
    }
    /// Set the request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Set the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// The Proxmox VE HTTP client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct PveClient {
    http: reqwest::Client,
    base: url::Url,
    auth: RwLock<Auth>,
    retry: RetryPolicy,
    timeout: Duration,
    pin: Option<Arc<FingerprintVerifier>>,
}

/// Flatten an error and its sources into one line (no secrets: URLs carry none).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct LogEnvelope {
    #[serde(default)]
    data: Option<Vec<TaskLogLine>>,
    #[serde(default, deserialize_with = "de::opt_u64")]
    total: Option<u64>,
}

#[derive(Deserialize)]
struct NextId {
    #[serde(deserialize_with = "de::u32")]
    data: u32,
}

/// Decode `{"data": T}`.
pub fn parse_data<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice::<Envelope<T>>(body)
        .map(|e| e.data)
        .map_err(|e| PveError::Decode {
            message: format!("{e}"),
        })
}

/// Decode `{"data": [T] | null}` into a vector (null → empty).
pub fn parse_list<T: DeserializeOwned>(body: &[u8]) -> Result<Vec<T>> {
    parse_data::<Option<Vec<T>>>(body).map(Option::unwrap_or_default)
}

impl PveClient {
    /// Build a client. Fails on an invalid URL or fingerprint; no network I/O.
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let mut base = url::Url::parse(cfg.base_url.trim()).map_err(|e| {
            PveError::Config(format!(
                "invalid api url '{}': {e} (use https://host:8006)",
                cfg.base_url
            ))
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(PveError::Config(format!(
                "unsupported url scheme '{}' (use https://host:8006)",
                base.scheme()
            )));
        }
        let path = base.path().trim_end_matches('/').to_string();
        let path = if path.ends_with("/api2/json") {
            path
        } else {
            format!("{path}/api2/json")
        };
        base.set_path(&path);
        base.set_query(None);
        let setup = tls::build(&cfg.tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(setup.config)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ctforge-pve/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PveError::Config(format!("cannot build http client: {e}")))?;
        Ok(PveClient {
            http,
            base,
            auth: RwLock::new(cfg.auth),
            retry: cfg.retry,
            timeout: cfg.timeout,
            pin: setup.pin,
        })
    }

    /// A client for the same server and TLS settings acting with `auth`. It shares this
    /// client's connection pool (kept-alive TLS connections), so building one per request is
    /// cheap; credentials travel per request, never in the pool.
    pub fn with_auth(&self, auth: Auth) -> PveClient {
        PveClient {
            http: self.http.clone(),
            base: self.base.clone(),
            auth: RwLock::new(auth),
            retry: self.retry,
            timeout: self.timeout,
            pin: self.pin.clone(),
        }
    }

    /// Replace the credentials (e.g. after a ticket renewal elsewhere).
    pub fn set_auth(&self, auth: Auth) {
        if let Ok(mut g) = self.auth.write() {
            *g = auth;
        }
    }

    /// The current ticket, when ticket auth is in use.
    pub fn ticket(&self) -> Option<Ticket> {
        match self.auth.read().ok()?.clone() {
            Auth::Ticket(t) => Some(t),
            _ => None,
        }
    }

    /// The full URL a spec is sent to (each path segment percent-encoded).
    pub fn url_for(&self, spec: &RequestSpec) -> url::Url {
        let mut url = self.base.clone();
        let mut path = self.base.path().to_string();
        for seg in spec.segments() {
            path.push('/');
            path.extend(utf8_percent_encode(seg, SEGMENT));
        }
        url.set_path(&path);
        url
    }

    fn map_reqwest(&self, e: reqwest::Error) -> PveError {
        if let Some(pin) = &self.pin
            && let Some(got) = pin.take_mismatch()
        {
            return PveError::Tls {
                expected: pin.expected_str(),
                got,
            };
        }
        if e.is_timeout() {
            return PveError::Timeout {
                after_ms: self.timeout.as_millis() as u64,
            };
        }
        PveError::Transport {
            message: error_chain(&e),
            connect: e.is_connect(),
        }
    }

    async fn send_once(&self, spec: &RequestSpec, anonymous: bool) -> Result<(u16, bytes::Bytes)> {
        let url = self.url_for(spec);
        let mut req = match spec.method {
            Method::Get => self.http.get(url).query(&spec.params),
            Method::Delete => self.http.delete(url).query(&spec.params),
            Method::Post => self.http.post(url).form(&spec.params),
            Method::Put => self.http.put(url).form(&spec.params),
        };
        if !anonymous {
            let auth = self.auth.read().map(|g| g.clone()).unwrap_or(Auth::None);
            match &auth {
                Auth::None => {}
                Auth::Token { .. } => {
                    if let Some(h) = auth.token_header() {
                        req = req.header(reqwest::header::AUTHORIZATION, h);
                    }
                }
                Auth::Ticket(t) => {
                    let cookie = format!(
                        "PVEAuthCookie={}",
                        utf8_percent_encode(t.ticket.expose(), COOKIE)
                    );
                    req = req.header(reqwest::header::COOKIE, cookie);
                    if spec.method != Method::Get {
                        req = req.header("CSRFPreventionToken", t.csrf_token.expose());
                    }
                }
            }
        }
        let resp = req.send().await.map_err(|e| self.map_reqwest(e))?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string));
        let body = resp.bytes().await.map_err(|e| self.map_reqwest(e))?;
        if status.is_success() {
            Ok((status.as_u16(), body))
        } else {
            Err(PveError::from_http(
                status.as_u16(),
                reason.as_deref(),
                &body,
            ))
        }
    }

    fn should_retry(method: Method, e: &PveError) -> bool {
        if matches!(e, PveError::Tls { .. }) {
            return false;
        }
        match method {
            Method::Get => e.is_transient(),
            // Only when nothing can have reached the server.
            _ => matches!(e, PveError::Transport { connect: true, .. }),
        }
    }

    /// Send a spec with auth, tracing and the retry rules; return the body of
    /// a 2xx answer.
    pub async fn execute(&self, spec: &RequestSpec) -> Result<bytes::Bytes> {
        self.execute_inner(spec, false).await
    }

    async fn execute_inner(&self, spec: &RequestSpec, anonymous: bool) -> Result<bytes::Bytes> {
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let res = self.send_once(spec, anonymous).await;
            let elapsed = started.elapsed();
            let ms = elapsed.as_millis() as u64;
            metrics::histogram!(
                "ctforge_pve_request_duration_seconds",
                "method" => spec.method.as_str(),
                "endpoint" => spec.endpoint(),
                "outcome" => if res.is_ok() { "ok" } else { "error" },
            )
            .record(elapsed.as_secs_f64());
            match res {
                Ok((status, body)) => {
                    tracing::debug!(
                        target: "ctforge_pve",
                        method = %spec.method,
                        path = %spec.path,
                        status,
                        duration_ms = ms,
                        attempt,
                        "pve api call"
                    );
                    return Ok(body);
                }
                Err(e) => {
                    let retry =
                        attempt < self.retry.max_retries && Self::should_retry(spec.method, &e);
                    tracing::debug!(
                        target: "ctforge_pve",
                        method = %spec.method,
                        path = %spec.path,
                        status = e.status().unwrap_or(0),
                        duration_ms = ms,
                        attempt,
                        retry,
                        error = %e,
                        "pve api call failed"
                    );
                    if !retry {
                        return Err(e);
                    }
                    tokio::time::sleep(self.retry.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, spec: RequestSpec) -> Result<T> {
        parse_data(&self.execute(&spec).await?)
    }

    async fn list<T: DeserializeOwned>(&self, spec: RequestSpec) -> Result<Vec<T>> {
        parse_list(&self.execute(&spec).await?)
    }

    async fn upid(&self, spec: RequestSpec) -> Result<Upid> {
        let s: String = parse_data(&self.execute(&spec).await?)?;
        s.parse().map_err(|e| PveError::Decode {
            message: format!("{e}"),
        })
    }

    async fn ticket_call(&self, spec: RequestSpec) -> Result<LoginOutcome> {
        let body = self.execute_inner(&spec, true).await?;
        let r: TicketResponse = parse_data(&body)?;
        r.into_outcome(OffsetDateTime::now_utc())
            .map_err(|message| PveError::Decode { message })
    }

    /// First login step. On success the client switches to the new ticket.
    pub async fn login(&self, username: &str, realm: &str, password: &str) -> Result<LoginOutcome> {
        let out = self
            .ticket_call(request::login(username, realm, password))
            .await?;
        if let LoginOutcome::Authenticated(t) = &out {
            self.set_auth(Auth::Ticket(t.clone()));
        }
        Ok(out)
    }

    /// Second login step: answer `challenge` with `kind` (`totp`, `recovery`,
    /// `yubico`, `webauthn`) and `code`. On success the client uses the ticket.
    pub async fn complete_tfa(
        &self,
        challenge: &TfaChallenge,
        kind: &str,
        code: &str,
    ) -> Result<Ticket> {
        let spec = request::login_tfa(
            &challenge.username,
            challenge.ticket.expose(),
            &format!("{kind}:{code}"),
        );
        match self.ticket_call(spec).await? {
            LoginOutcome::Authenticated(t) => {
                self.set_auth(Auth::Ticket(t.clone()));
                Ok(t)
            }
            LoginOutcome::TfaRequired(_) => Err(PveError::Unauthorized {
                message: "second factor was not accepted".into(),
            }),
        }
    }

    /// Renew `ticket` (posting it as the password) and use the new one.
    pub async fn renew_ticket(&self, ticket: &Ticket) -> Result<Ticket> {
        let spec = request::renew_ticket(&ticket.username, ticket.ticket.expose());
        match self.ticket_call(spec).await? {
            LoginOutcome::Authenticated(t) => {
                self.set_auth(Auth::Ticket(t.clone()));
                Ok(t)
            }
            LoginOutcome::TfaRequired(_) => Err(PveError::Unauthorized {
                message: "ticket renewal asked for a second factor; log in again".into(),
            }),
        }
    }

    /// Renew the client's own ticket if it is older than 1 h 45 min.
    /// Returns the new ticket when a renewal happened.
    pub async fn renew_if_needed(&self) -> Result<Option<Ticket>> {
        match self.ticket() {
            Some(t) if t.needs_renewal(OffsetDateTime::now_utc()) => {
                self.renew_ticket(&t).await.map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// Log in (first step) with a fresh client built from `cfg` (its `auth` is ignored).
pub async fn login(
    cfg: &ClientConfig,
    username: &str,
    realm: &str,
    password: &str,
) -> Result<LoginOutcome> {
    let client = PveClient::new(cfg.clone().with_auth(Auth::None))?;
    client.login(username, realm, password).await
}

/// Answer a TFA challenge (`kind` is e.g. `totp`) and get the full ticket.
pub async fn complete_tfa(
    cfg: &ClientConfig,
    challenge: &TfaChallenge,
    kind: &str,
    code: &str,
) -> Result<Ticket> {
    let client = PveClient::new(cfg.clone().with_auth(Auth::None))?;
    client.complete_tfa(challenge, kind, code).await
}

/// Renew a ticket before its 2 h expiry.
pub async fn renew(cfg: &ClientConfig, ticket: &Ticket) -> Result<Ticket> {
    let client = PveClient::new(cfg.clone().with_auth(Auth::None))?;
    client.renew_ticket(ticket).await
}

/// Outcome of [`create_lxc_checked`].
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// The create call answered with its task id.
    Task(Upid),
    /// The answer was lost (timeout, dropped connection, 596/599) but the CT
    /// exists now: the create task is running or done. `lock` is the config
    /// lock seen (`create` while the task runs).
    ExistsAfterLostResponse {
        /// The CT id.
        vmid: u32,
        /// The config lock, if any.
        lock: Option<String>,
    },
}

fn ambiguous(e: &PveError) -> bool {
    match e {
        PveError::Timeout { .. } => true,
        PveError::Transport { connect, .. } => !connect,
        PveError::NodeUnreachable { status, .. } => *status != 595,
        PveError::Server { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

/// Create a CT without ever creating it twice or losing track of it.
///
/// `POST /nodes/{node}/lxc` is not idempotent, so it is never retried
/// blindly. When the call fails in a way that leaves it unknown whether the
/// server acted (timeout, connection dropped after sending, 596/599, 502-504),
/// this function first asks `GET …/lxc/{vmid}/config`:
///
/// * the config exists → [`CreateOutcome::ExistsAfterLostResponse`];
/// * it does not exist → the create is sent once more. This is safe because
///   the VMID is fixed: should the first request still land, one of the two
///   fails with `CT … already exists`, which is reported as
///   `ExistsAfterLostResponse` too;
/// * the check itself fails → the original error is returned.
///
/// Definite failures (400, 403, `already exists`...) are returned unchanged.
pub async fn create_lxc_checked(
    api: &dyn PveApi,
    node: &str,
    params: &LxcCreateParams,
) -> Result<CreateOutcome> {
    let first = match api.lxc_create(node, params).await {
        Ok(upid) => return Ok(CreateOutcome::Task(upid)),
        Err(e) if ambiguous(&e) => e,
        Err(e) => return Err(e),
    };
    tracing::warn!(
        target: "ctforge_pve",
        vmid = params.vmid,
        node,
        error = %first,
        "create answer lost; checking whether the container exists before retrying"
    );
    match api.lxc_config_get(node, params.vmid, false).await {
        Ok(cfg) => Ok(CreateOutcome::ExistsAfterLostResponse {
            vmid: params.vmid,
            lock: cfg.lock,
        }),
        Err(e) if e.is_not_found() => match api.lxc_create(node, params).await {
            Ok(upid) => Ok(CreateOutcome::Task(upid)),
            Err(PveError::AlreadyExists { .. }) => Ok(CreateOutcome::ExistsAfterLostResponse {
                vmid: params.vmid,
                lock: None,
            }),
            Err(e) => Err(e),
        },
        Err(_) => Err(first),
    }
}

#[async_trait]
impl PveApi for PveClient {
    async fn version(&self) -> Result<Version> {
        self.get(request::version()).await
    }
    async fn access_domains(&self) -> Result<Vec<Domain>> {
        self.list(request::access_domains()).await
    }
    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.list(request::nodes()).await
    }
    async fn node_status(&self, node: &str) -> Result<NodeStatus> {
        self.get(request::node_status(node)).await
    }
    async fn node_rrddata(
        &self,
        node: &str,
        timeframe: Timeframe,
        cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>> {
        self.list(request::node_rrddata(node, timeframe, cf)).await
    }
    async fn cluster_resources(&self, kind: Option<ResourceKind>) -> Result<Vec<ClusterResource>> {
        self.list(request::cluster_resources(kind)).await
    }
    async fn cluster_status(&self) -> Result<Vec<crate::types::ClusterStatusEntry>> {
        self.list(request::cluster_status()).await
    }
    async fn lxc_migrate(
        &self,
        node: &str,
        vmid: u32,
        params: &crate::types::MigrateParams,
    ) -> Result<Upid> {
        self.upid(request::lxc_migrate(node, vmid, params)).await
    }
    async fn cluster_nextid(&self, vmid: Option<u32>) -> Result<u32> {
        let body = self.execute(&request::cluster_nextid(vmid)).await?;
        serde_json::from_slice::<NextId>(&body)
            .map(|n| n.data)
            .map_err(|e| PveError::Decode {
                message: format!("nextid: {e}"),
            })
    }
    async fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>> {
        self.list(request::lxc_list(node)).await
    }
    async fn lxc_create(&self, node: &str, params: &LxcCreateParams) -> Result<Upid> {
        self.upid(request::lxc_create(node, params)).await
    }
    async fn lxc_config_get(&self, node: &str, vmid: u32, current: bool) -> Result<LxcConfig> {
        self.get(request::lxc_config_get(node, vmid, current)).await
    }
    async fn lxc_config_put(&self, node: &str, vmid: u32, update: &LxcConfigUpdate) -> Result<()> {
        if update.is_empty() {
            return Err(PveError::Config(
                "config update is empty (set or delete at least one key)".into(),
            ));
        }
        self.execute(&request::lxc_config_put(node, vmid, update))
            .await
            .map(|_| ())
    }
    async fn lxc_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>> {
        self.list(request::lxc_pending(node, vmid)).await
    }
    async fn lxc_resize(
        &self,
        node: &str,
        vmid: u32,
        disk: &str,
        size: &str,
        digest: Option<&str>,
    ) -> Result<Upid> {
        self.upid(request::lxc_resize(node, vmid, disk, size, digest))
            .await
    }
    async fn lxc_clone(&self, node: &str, vmid: u32, params: &CloneParams) -> Result<Upid> {
        self.upid(request::lxc_clone(node, vmid, params)).await
    }
    async fn lxc_template(&self, node: &str, vmid: u32) -> Result<()> {
        self.execute(&request::lxc_template(node, vmid))
            .await
            .map(|_| ())
    }
    async fn lxc_status_current(&self, node: &str, vmid: u32) -> Result<LxcStatus> {
        self.get(request::lxc_status_current(node, vmid)).await
    }
    async fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(request::lxc_start(node, vmid)).await
    }
    async fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(request::lxc_stop(node, vmid)).await
    }
    async fn lxc_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
        force_stop: bool,
    ) -> Result<Upid> {
        self.upid(request::lxc_shutdown(node, vmid, timeout, force_stop))
            .await
    }
    async fn lxc_reboot(&self, node: &str, vmid: u32, timeout: Option<u32>) -> Result<Upid> {
        self.upid(request::lxc_reboot(node, vmid, timeout)).await
    }
    async fn lxc_delete(&self, node: &str, vmid: u32, opts: DeleteOptions) -> Result<Upid> {
        self.upid(request::lxc_delete(node, vmid, opts)).await
    }
    async fn lxc_rrddata(
        &self,
        node: &str,
        vmid: u32,
        timeframe: Timeframe,
        cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>> {
        self.list(request::lxc_rrddata(node, vmid, timeframe, cf))
            .await
    }
    async fn lxc_interfaces(&self, node: &str, vmid: u32) -> Result<Vec<LxcInterface>> {
        self.list(request::lxc_interfaces(node, vmid)).await
    }
    async fn snapshot_list(&self, node: &str, vmid: u32) -> Result<Vec<Snapshot>> {
        self.list(request::snapshot_list(node, vmid)).await
    }
    async fn snapshot_create(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        description: Option<&str>,
    ) -> Result<Upid> {
        self.upid(request::snapshot_create(node, vmid, name, description))
            .await
    }
    async fn snapshot_rollback(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        start: bool,
    ) -> Result<Upid> {
        self.upid(request::snapshot_rollback(node, vmid, name, start))
            .await
    }
    async fn snapshot_delete(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        force: bool,
    ) -> Result<Upid> {
        self.upid(request::snapshot_delete(node, vmid, name, force))
            .await
    }
    async fn task_status(&self, node: &str, upid: &Upid) -> Result<TaskStatus> {
        self.get(request::task_status(node, upid)).await
    }
    async fn task_log(&self, node: &str, upid: &Upid, start: u64, limit: u64) -> Result<TaskLog> {
        let body = self
            .execute(&request::task_log(node, upid, start, limit))
            .await?;
        let env: LogEnvelope = serde_json::from_slice(&body).map_err(|e| PveError::Decode {
            message: format!("task log: {e}"),
        })?;
        Ok(TaskLog {
            lines: env.data.unwrap_or_default(),
            total: env.total,
        })
    }
    async fn node_storage(&self, node: &str, content: Option<&str>) -> Result<Vec<Storage>> {
        self.list(request::node_storage(node, content)).await
    }
    async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageContent>> {
        self.list(request::storage_content(node, storage, content))
            .await
    }
    async fn aplinfo(&self, node: &str) -> Result<Vec<AplInfo>> {
        self.list(request::aplinfo(node)).await
    }
    async fn aplinfo_download(&self, node: &str, storage: &str, template: &str) -> Result<Upid> {
        self.upid(request::aplinfo_download(node, storage, template))
            .await
    }
    async fn node_network(&self, node: &str, kind: Option<&str>) -> Result<Vec<NetworkIface>> {
        self.list(request::node_network(node, kind)).await
    }
    async fn pools(&self) -> Result<Vec<Pool>> {
        self.list(request::pools()).await
    }

    async fn qemu_create(&self, node: &str, params: &crate::types::QemuCreate) -> Result<Upid> {
        self.upid(request::qemu_create(node, params)).await
    }
    async fn qemu_config_get(
        &self,
        node: &str,
        vmid: u32,
        current: bool,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
        self.get(request::qemu_config_get(node, vmid, current))
            .await
    }
    async fn qemu_config_put(
        &self,
        node: &str,
        vmid: u32,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<()> {
        self.execute(&request::qemu_config_put(node, vmid, set, delete))
            .await
            .map(|_| ())
    }
    async fn qemu_resize(&self, node: &str, vmid: u32, disk: &str, size: &str) -> Result<Upid> {
        self.upid(request::qemu_resize(node, vmid, disk, size))
            .await
    }
    async fn qemu_clone(&self, node: &str, vmid: u32, params: &CloneParams) -> Result<Upid> {
        self.upid(request::qemu_clone(node, vmid, params)).await
    }
    async fn qemu_template(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(request::qemu_template(node, vmid)).await
    }
    async fn qemu_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingEntry>> {
        self.list(request::qemu_pending(node, vmid)).await
    }
    async fn qemu_snapshot_list(&self, node: &str, vmid: u32) -> Result<Vec<Snapshot>> {
        self.list(request::qemu_snapshot_list(node, vmid)).await
    }
    async fn qemu_snapshot_create(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        description: Option<&str>,
    ) -> Result<Upid> {
        self.upid(request::qemu_snapshot_create(node, vmid, name, description))
            .await
    }
    async fn qemu_snapshot_rollback(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        start: bool,
    ) -> Result<Upid> {
        self.upid(request::qemu_snapshot_rollback(node, vmid, name, start))
            .await
    }
    async fn qemu_snapshot_delete(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        force: bool,
    ) -> Result<Upid> {
        self.upid(request::qemu_snapshot_delete(node, vmid, name, force))
            .await
    }
    async fn agent_ping(&self, node: &str, vmid: u32) -> Result<()> {
        self.execute(&request::agent_ping(node, vmid))
            .await
            .map(|_| ())
    }
    async fn agent_exec(
        &self,
        node: &str,
        vmid: u32,
        command: &[String],
        input_data: Option<&str>,
    ) -> Result<crate::types::AgentPid> {
        self.get(request::agent_exec(node, vmid, command, input_data))
            .await
    }
    async fn agent_exec_status(
        &self,
        node: &str,
        vmid: u32,
        pid: i64,
    ) -> Result<crate::types::AgentExecStatus> {
        self.get(request::agent_exec_status(node, vmid, pid)).await
    }
    async fn agent_file_write(
        &self,
        node: &str,
        vmid: u32,
        file: &str,
        content_base64: &str,
    ) -> Result<()> {
        self.execute(&request::agent_file_write(node, vmid, file, content_base64))
            .await
            .map(|_| ())
    }
    async fn agent_network_get_interfaces(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<crate::types::AgentInterfaces> {
        self.get(request::agent_network_get_interfaces(node, vmid))
            .await
    }

    async fn access_permissions(
        &self,
        userid: Option<&str>,
        path: Option<&str>,
    ) -> Result<crate::api::Permissions> {
        self.get(request::access_permissions(userid, path)).await
    }
    // ---- qemu: listing and lifecycle of VMs ----
    async fn qemu_list(&self, node: &str) -> Result<Vec<QemuStatus>> {
        self.list(request::qemu_list(node)).await
    }
    async fn qemu_status_current(&self, node: &str, vmid: u32) -> Result<QemuStatus> {
        self.get(request::qemu_status_current(node, vmid)).await
    }
    async fn qemu_start(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(request::qemu_start(node, vmid)).await
    }
    async fn qemu_stop(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.upid(request::qemu_stop(node, vmid)).await
    }
    async fn qemu_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<u32>,
        force_stop: bool,
    ) -> Result<Upid> {
        self.upid(request::qemu_shutdown(node, vmid, timeout, force_stop))
            .await
    }
    async fn qemu_reboot(&self, node: &str, vmid: u32, timeout: Option<u32>) -> Result<Upid> {
        self.upid(request::qemu_reboot(node, vmid, timeout)).await
    }
    async fn qemu_delete(
        &self,
        node: &str,
        vmid: u32,
        purge: bool,
        destroy_unreferenced_disks: bool,
    ) -> Result<Upid> {
        self.upid(request::qemu_delete(
            node,
            vmid,
            purge,
            destroy_unreferenced_disks,
        ))
        .await
    }
    async fn qemu_rrddata(
        &self,
        node: &str,
        vmid: u32,
        timeframe: Timeframe,
        cf: Option<ConsolidationFn>,
    ) -> Result<Vec<RrdPoint>> {
        self.list(request::qemu_rrddata(node, vmid, timeframe, cf))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalisation_and_encoding() {
        let c = PveClient::new(ClientConfig::new("https://pve.example:8006/")).unwrap();
        let u: Upid = "UPID:pve:00001234:1A2B3C4D:6500AAAA:vzstart:100:root@pam!tok:"
            .parse()
            .unwrap();
        let url = c.url_for(&request::task_status("pve", &u));
        assert_eq!(
            url.as_str(),
            "https://pve.example:8006/api2/json/nodes/pve/tasks/UPID%3Apve%3A00001234%3A1A2B3C4D%3A6500AAAA%3Avzstart%3A100%3Aroot@pam%21tok%3A/status"
        );
        let c = PveClient::new(ClientConfig::new("https://pve.example:8006/api2/json")).unwrap();
        assert_eq!(
            c.url_for(&request::version()).as_str(),
            "https://pve.example:8006/api2/json/version"
        );
        // a node name with a slash cannot escape its segment
        assert!(
            c.url_for(&request::node_status("a/../b"))
                .as_str()
                .ends_with("/nodes/a%2F..%2Fb/status")
        );
        assert!(PveClient::new(ClientConfig::new("ftp://x")).is_err());
        assert!(PveClient::new(ClientConfig::new("not a url")).is_err());
    }

    #[test]
    fn retry_delay_is_bounded() {
        let p = RetryPolicy::default();
        for a in 0..20 {
            assert!(p.delay(a) <= p.max_delay);
        }
        assert_eq!(RetryPolicy::none().max_retries, 0);
    }

    #[test]
    fn parses_envelopes() {
        let v: Vec<Snapshot> = parse_list(br#"{"data":null}"#).unwrap();
        assert!(v.is_empty());
        let n: NextId = serde_json::from_slice(br#"{"data":"100"}"#).unwrap();
        assert_eq!(n.data, 100);
        assert!(parse_data::<Version>(b"<html>").is_err());
    }
}
