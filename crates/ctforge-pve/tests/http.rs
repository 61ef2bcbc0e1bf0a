//! Client tests over real HTTP(S) against a small local server that answers
//! like Proxmox VE (REFERENCE.md §1): `{"data":…}` envelope, 400 with an
//! `errors` map, 401, 403 texts, 500 texts, 595 with a reason phrase, slow
//! answers for timeouts, tickets + CSRF, API tokens, TFA, renewal, tasks
//! with incremental logs, and a TLS listener with a self-signed certificate.
//!
//! The server counts requests per route so retry rules can be asserted.

// Test-server helpers outside #[test] fns: panicking on setup failure is intended.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ctforge_pve::types::*;
use ctforge_pve::*;
use tokio::net::{TcpListener, TcpStream};

const TOKEN_SECRET: &str = "5f1c8a2e-1111-2222-3333-444455556666";
const TICKET: &str = "PVE:alice@pve:65A1B2C3::c2lnbmF0dXJl+/=";
const TICKET2: &str = "PVE:alice@pve:65A1B2FF::cmVuZXdlZA==";
const CSRF: &str = "65A1B2C3:Y3NyZg";
const CSRF2: &str = "65A1B2FF:bmV3";
const TFA_HALF: &str =
    "PVE:!tfa!%7B%22totp%22%3Atrue%2C%22recovery%22%3A%5B0%2C1%5D%7D:65A1B2C3::half";
const PASSWORD: &str = "correct horse";

#[derive(Default)]
struct State {
    counts: Mutex<HashMap<String, usize>>,
    created: Mutex<Vec<u32>>,
    polls: AtomicUsize,
}

impl State {
    fn hit(&self, key: &str) -> usize {
        let mut c = self.counts.lock().unwrap();
        let e = c.entry(key.to_string()).or_insert(0);
        *e += 1;
        *e
    }
    fn count(&self, key: &str) -> usize {
        self.counts.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

fn data(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({ "data": v }).to_string(),
    )
        .into_response()
}

/// An error the way pveproxy sends it: reason phrase = first line of the
/// message, JSON body with `message` (and `errors`).
fn pve_err(status: u16, msg: &str, errors: Option<serde_json::Value>) -> Response {
    let mut body = serde_json::json!({ "data": null, "message": format!("{msg}\n") });
    if let Some(e) = errors {
        body["errors"] = e;
    }
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    r.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::try_from(msg.as_bytes().to_vec()).unwrap());
    r
}

/// Errors raised before the handler: status line only, empty body.
fn bare(status: u16, reason: &str) -> Response {
    let mut r = StatusCode::from_u16(status).unwrap().into_response();
    r.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()).unwrap());
    r
}

fn parse_params(uri: &Uri, body: &[u8]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if let Some(q) = uri.query() {
        m.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    m
}

fn authed(headers: &HeaderMap, method: &HttpMethod) -> Result<(), Response> {
    if let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        return if a == format!("PVEAPIToken=root@pam!ctforge={TOKEN_SECRET}") {
            Ok(())
        } else {
            Err(bare(401, "Authentication failed!"))
        };
    }
    let cookie = headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| {
            c.split(';')
                .find_map(|p| p.trim().strip_prefix("PVEAuthCookie="))
        })
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        });
    let (ticket_ok, csrf) = match cookie.as_deref() {
        Some(TICKET) => (true, CSRF),
        Some(TICKET2) => (true, CSRF2),
        Some(_) => return Err(bare(401, "Authentication failed!")),
        None => return Err(bare(401, "No ticket")),
    };
    if ticket_ok && method != HttpMethod::GET {
        let got = headers
            .get("csrfpreventiontoken")
            .and_then(|v| v.to_str().ok());
        if got != Some(csrf) {
            return Err(bare(401, "Permission denied - invalid csrf token"));
        }
    }
    Ok(())
}

fn ticket_data(ticket: &str, csrf: &str) -> Response {
    data(serde_json::json!({
        "username": "alice@pve",
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "clustername": "lab",
        "cap": {"vms": {"VM.Allocate": 1, "VM.PowerMgmt": 1, "VM.Audit": 1},
                "storage": {"Datastore.AllocateSpace": 1}, "dc": {"Sys.Audit": 1}}
    }))
}

fn upid_for(kind: &str, vmid: &str) -> String {
    format!("UPID:pve:0000ABCD:0012F00D:65A1B2C3:{kind}:{vmid}:root@pam!ctforge:")
}

async fn handler(
    axum::extract::State(st): axum::extract::State<Arc<State>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/api2/json").unwrap_or(uri.path());
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let p = parse_params(&uri, &body);
    let key = format!("{} {}", method, path);
    st.hit(&key);

    // unauthenticated endpoints
    match (&method, s.as_slice()) {
        (&HttpMethod::POST, ["access", "ticket"]) => {
            let user = p.get("username").map(String::as_str).unwrap_or("");
            let pw = p.get("password").map(String::as_str).unwrap_or("");
            if let Some(ch) = p.get("tfa-challenge") {
                return if ch == TFA_HALF && user == "alice@pve" && pw == "totp:123456" {
                    ticket_data(TICKET, CSRF)
                } else {
                    pve_err(401, "authentication failure", None)
                };
            }
            return match (user, pw) {
                ("alice@pve", PASSWORD) => ticket_data(TICKET, CSRF),
                ("alice@pve", TICKET) => ticket_data(TICKET2, CSRF2),
                ("bob@pve", PASSWORD) => data(serde_json::json!({
                    "username": "alice@pve", "ticket": TFA_HALF,
                    "CSRFPreventionToken": "x", "NeedTFA": 1
                })),
                _ => pve_err(401, "authentication failure", None),
            };
        }
        (&HttpMethod::GET, ["access", "domains"]) => {
            return data(serde_json::json!([
                {"realm": "pam", "type": "pam", "comment": "Linux PAM"},
                {"realm": "pve", "type": "pve", "tfa": "oath"}
            ]));
        }
        _ => {}
    }
    if let Err(r) = authed(&headers, &method) {
        return r;
    }
    let n = st.hit(&format!("n:{key}"));
    match (&method, s.as_slice()) {
        (&HttpMethod::GET, ["version"]) => {
            data(serde_json::json!({"version": "9.1.9", "release": "9.1", "repoid": "ee7bad0a"}))
        }
        (&HttpMethod::GET, ["cluster", "nextid"]) => match p.get("vmid").map(String::as_str) {
            Some("100") => pve_err(
                400,
                "Parameter verification failed.",
                Some(serde_json::json!({"vmid": "VM 100 already exists\n"})),
            ),
            _ => data(serde_json::json!("105")),
        },
        (&HttpMethod::GET, ["cluster", "resources"]) => data(serde_json::json!([
            {"id": "node/pve", "type": "node", "node": "pve", "status": "online", "cpu": 0.1,
             "maxcpu": 8, "mem": 1000, "maxmem": 8000, "cgroup-mode": 2},
            {"id": "lxc/100", "type": "lxc", "vmid": 100, "node": "pve", "name": "web",
             "status": "running", "template": 0, "tags": "web;prod", "maxcpu": 2}
        ])),
        (&HttpMethod::GET, ["nodes", "down", "status"]) => bare(595, "Connection refused"),
        (&HttpMethod::GET, ["nodes", "slow", "status"]) => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            data(serde_json::json!({}))
        }
        (&HttpMethod::GET, ["nodes", "flaky", "status"]) => {
            if n <= 2 {
                bare(595, "No route to host")
            } else {
                data(
                    serde_json::json!({"cpu": 0.5, "memory": {"total": 100, "used": "50"},
                                        "loadavg": ["0.1", "0.2", "0.3"], "uptime": 10}),
                )
            }
        }
        (&HttpMethod::POST, ["nodes", "flaky", "lxc", _, "status", "start"]) => {
            bare(595, "No route to host")
        }
        (&HttpMethod::GET, ["nodes", "pve", "aplinfo"]) => {
            (StatusCode::OK, "<html>").into_response()
        }
        (&HttpMethod::GET, ["nodes", _, "lxc", vmid, "config"]) => {
            let id: u32 = vmid.parse().unwrap_or(0);
            if id == 100 || st.created.lock().unwrap().contains(&id) {
                data(serde_json::json!({
                    "hostname": "web", "memory": 512, "cores": "2", "digest": "abc",
                    "lock": if id == 100 { serde_json::Value::Null } else { "create".into() },
                    "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:A7:86:4A,ip=dhcp,type=veth",
                    "rootfs": "local-lvm:vm-100-disk-0,size=8G"
                }))
            } else {
                pve_err(
                    500,
                    &format!("Configuration file 'nodes/pve/lxc/{vmid}.conf' does not exist"),
                    None,
                )
            }
        }
        (&HttpMethod::PUT, ["nodes", _, "lxc", _, "config"]) => data(serde_json::Value::Null),
        (&HttpMethod::POST, ["nodes", _, "lxc"]) => {
            let vmid: u32 = p.get("vmid").and_then(|v| v.parse().ok()).unwrap_or(0);
            let attempt = st.hit(&format!("create:{vmid}"));
            match vmid {
                101 => pve_err(500, "CT 101 already exists on node 'pve'", None),
                103 => pve_err(
                    400,
                    "Parameter verification failed.",
                    Some(
                        serde_json::json!({"net0": "invalid format - invalid key in comma-separated list property: colour\n"}),
                    ),
                ),
                102 => {
                    // the create lands, but the answer comes too late
                    st.created.lock().unwrap().push(102);
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    data(serde_json::json!(upid_for("vzcreate", "102")))
                }
                104 if attempt == 1 => {
                    // first attempt: slow and nothing created
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    pve_err(500, "unable to create CT 104 - interrupted", None)
                }
                _ => data(serde_json::json!(upid_for("vzcreate", &vmid.to_string()))),
            }
        }
        (&HttpMethod::POST, ["nodes", _, "lxc", "100", "status", "start"]) => {
            pve_err(500, "CT 100 already running", None)
        }
        (&HttpMethod::POST, ["nodes", _, "lxc", "100", "status", "stop"]) => {
            pve_err(500, "CT 100 not running", None)
        }
        (&HttpMethod::POST, ["nodes", _, "lxc", "100", "status", "shutdown"]) => {
            pve_err(500, "CT is locked (backup)", None)
        }
        (&HttpMethod::POST, ["nodes", _, "lxc", "100", "status", "reboot"]) => pve_err(
            403,
            "Permission check failed (/vms/100, VM.PowerMgmt)",
            None,
        ),
        (&HttpMethod::POST, ["nodes", _, "lxc", vmid, "status", action]) => {
            let kind = match *action {
                "start" => "vzstart",
                "stop" => "vzstop",
                "shutdown" => "vzshutdown",
                _ => "vzreboot",
            };
            data(serde_json::json!(upid_for(kind, vmid)))
        }
        (&HttpMethod::DELETE, ["nodes", _, "lxc", vmid]) => {
            if p.get("purge").map(String::as_str) == Some("1")
                && p.get("force").map(String::as_str) == Some("1")
            {
                data(serde_json::json!(upid_for("vzdestroy", vmid)))
            } else {
                pve_err(
                    500,
                    &format!("unable to destroy CT {vmid} - container is running"),
                    None,
                )
            }
        }
        (&HttpMethod::GET, ["nodes", _, "lxc", _, "rrddata"]) => data(serde_json::json!([
            {"time": 1700000000, "maxcpu": 2, "maxmem": 536870912, "disk": 0, "maxdisk": 8589934592u64},
            {"time": 1700000060, "cpu": 0.02, "mem": 12345678.5, "netin": 10.5, "netout": 2.25,
             "pressurecpusome": 0.0}
        ])),
        (&HttpMethod::GET, ["nodes", _, "lxc", vmid, "interfaces"]) => {
            if *vmid == "100" {
                data(
                    serde_json::json!([{"name": "eth0", "hwaddr": "bc:24:11:a7:86:4a",
                    "hardware-address": "bc:24:11:a7:86:4a", "inet": "192.0.2.10/24",
                    "ip-addresses": [{"ip-address": "192.0.2.10", "ip-address-type": "inet", "prefix": 24}]}]),
                )
            } else {
                data(serde_json::Value::Null)
            }
        }
        (&HttpMethod::GET, ["nodes", _, "tasks", upid, "status"]) => {
            let parsed: Upid = match upid.parse() {
                Ok(u) => u,
                Err(_) => {
                    return pve_err(
                        400,
                        "Parameter verification failed.",
                        Some(serde_json::json!({"upid": "unable to parse worker upid"})),
                    );
                }
            };
            let polls = st.polls.fetch_add(1, Ordering::SeqCst);
            let running = polls < 2;
            let mut v = serde_json::json!({
                "upid": upid, "node": "pve", "pid": 43981, "pstart": 1241101, "starttime": 1705095875,
                "type": parsed.task_type, "id": parsed.id, "user": parsed.user,
                "status": if running { "running" } else { "stopped" }
            });
            if !running {
                v["exitstatus"] = match parsed.task_type.as_str() {
                    "vzcreate" => "OK".into(),
                    "vzstart" => "WARNINGS: 2".into(),
                    _ => "command 'lxc-stop' failed: exit code 1".into(),
                };
            }
            data(v)
        }
        (&HttpMethod::GET, ["nodes", _, "tasks", upid, "log"]) => {
            let parsed: Upid = upid.parse().unwrap();
            let polls = st.polls.load(Ordering::SeqCst);
            // the log grows with each status poll
            let mut all: Vec<String> = (1..=polls.min(3) * 2)
                .map(|i| format!("{} line {i}", parsed.task_type))
                .collect();
            if polls > 2 {
                all.push("TASK OK".into());
            }
            let start: usize = p.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
            let limit: usize = p.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
            let lines: Vec<serde_json::Value> = if all.is_empty() {
                vec![serde_json::json!({"n": 1, "t": "no content"})]
            } else {
                all.iter()
                    .enumerate()
                    .skip(start)
                    .take(if limit == 0 { usize::MAX } else { limit })
                    .map(|(i, t)| serde_json::json!({"n": i + 1, "t": t}))
                    .collect()
            };
            (
                StatusCode::OK,
                serde_json::json!({"data": lines, "total": all.len().max(1)}).to_string(),
            )
                .into_response()
        }
        (&HttpMethod::GET, ["pools"]) => {
            data(serde_json::json!([{"poolid": "homelab", "comment": "lab"}]))
        }
        _ => pve_err(
            501,
            &format!("Method '{} {}' not implemented", method, path),
            None,
        ),
    }
}

fn router(st: Arc<State>) -> axum::Router {
    axum::Router::new().fallback(handler).with_state(st)
}

async fn spawn_http() -> (String, Arc<State>) {
    let st = Arc::new(State::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(st.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (format!("http://{addr}"), st)
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((s, a)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(t) = self.acceptor.accept(s).await {
                return (t, a);
            }
        }
    }
    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// HTTPS server with a fresh self-signed certificate; returns (url, fingerprint).
async fn spawn_https() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let fp = ctforge_pve::tls::cert_fingerprint(cert_der.as_ref());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key)
    .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
    };
    let app = router(Arc::new(State::default()));
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    (format!("https://localhost:{}", addr.port()), fp)
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn token_client(url: &str) -> PveClient {
    PveClient::new(
        ClientConfig::new(url)
            .with_auth(Auth::token("root@pam", "ctforge", TOKEN_SECRET))
            .with_retry(fast_retry())
            .with_timeout(Duration::from_millis(600)),
    )
    .unwrap()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn token_auth_and_typed_responses() {
    let (url, _st) = spawn_http().await;
    let c = token_client(&url);
    let v = c.version().await.unwrap();
    assert_eq!(v.release, "9.1");
    assert_eq!(c.cluster_nextid(None).await.unwrap(), 105);
    let res = c.cluster_resources(Some(ResourceKind::Vm)).await.unwrap();
    assert_eq!(res[1].vmid, Some(100));
    assert_eq!(res[1].template, Some(false));
    assert_eq!(res[0].cgroup_mode, Some(2));
    let cfg = c.lxc_config_get("pve", 100, false).await.unwrap();
    assert_eq!(cfg.cores, Some(2));
    assert_eq!(cfg.nets[&0].ip, Some(IpConfig::Dhcp));
    let rrd = c
        .lxc_rrddata("pve", 100, Timeframe::Hour, None)
        .await
        .unwrap();
    assert_eq!(rrd[0].cpu, None);
    assert_eq!(rrd[1].netin, Some(10.5));
    let ifs = c.lxc_interfaces("pve", 100).await.unwrap();
    assert_eq!(ifs[0].ip_addresses[0].prefix, Some(24));
    assert!(c.lxc_interfaces("pve", 101).await.unwrap().is_empty());
    assert_eq!(c.pools().await.unwrap()[0].poolid, "homelab");
    assert_eq!(c.access_domains().await.unwrap().len(), 2);
    c.lxc_config_put("pve", 100, &LxcConfigUpdate::new().memory(1024))
        .await
        .unwrap();
    let upid = c
        .lxc_delete(
            "pve",
            100,
            DeleteOptions {
                purge: true,
                force: true,
                destroy_unreferenced_disks: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(upid.task_type, "vzdestroy");
}

#[tokio::test]
async fn error_classes_are_mapped() {
    let (url, _st) = spawn_http().await;
    let c = token_client(&url);
    // 400 with the errors map
    match c.cluster_nextid(Some(100)).await {
        Err(PveError::Parameter { message, errors }) => {
            assert_eq!(message, "Parameter verification failed.");
            assert_eq!(errors["vmid"], "VM 100 already exists");
        }
        other => panic!("{other:?}"),
    }
    let r = c
        .lxc_create("pve", &LxcCreateParams::new(103, "local:vztmpl/x.tar.zst"))
        .await;
    assert!(
        matches!(r, Err(PveError::Parameter { ref errors, .. }) if errors.contains_key("net0"))
    );
    // 401
    let bad = PveClient::new(
        ClientConfig::new(&url).with_auth(Auth::token("root@pam", "ctforge", "wrong")),
    )
    .unwrap();
    assert!(
        matches!(bad.version().await, Err(PveError::Unauthorized { ref message }) if message == "Authentication failed!")
    );
    let anon = PveClient::new(ClientConfig::new(&url)).unwrap();
    assert!(
        matches!(anon.version().await, Err(PveError::Unauthorized { ref message }) if message == "No ticket")
    );
    // 403 with path and privilege
    match c.lxc_reboot("pve", 100, None).await {
        Err(PveError::PermissionDenied {
            path, privilege, ..
        }) => {
            assert_eq!(path.as_deref(), Some("/vms/100"));
            assert_eq!(privilege.as_deref(), Some("VM.PowerMgmt"));
        }
        other => panic!("{other:?}"),
    }
    // 500 texts
    assert!(
        c.lxc_config_get("pve", 999, false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(matches!(
        c.lxc_start("pve", 100).await,
        Err(PveError::AlreadyRunning { .. })
    ));
    assert!(matches!(
        c.lxc_stop("pve", 100).await,
        Err(PveError::NotRunning { .. })
    ));
    assert!(matches!(
        c.lxc_create("pve", &LxcCreateParams::new(101, "local:vztmpl/x.tar.zst"))
            .await,
        Err(PveError::AlreadyExists { .. })
    ));
    let locked = c
        .lxc_shutdown("pve", 100, Some(10), true)
        .await
        .unwrap_err();
    assert!(matches!(locked, PveError::Locked { .. }) && locked.is_retry_safe());
    match c.lxc_delete("pve", 100, DeleteOptions::default()).await {
        Err(PveError::Server {
            status: 500,
            message,
        }) => {
            assert_eq!(message, "unable to destroy CT 100 - container is running")
        }
        other => panic!("{other:?}"),
    }
    // 595
    match c.node_status("down").await {
        Err(PveError::NodeUnreachable {
            status: 595,
            message,
        }) => {
            assert_eq!(message, "Connection refused")
        }
        other => panic!("{other:?}"),
    }
    // timeout
    assert!(matches!(
        c.node_status("slow").await,
        Err(PveError::Timeout { .. })
    ));
    // decode
    assert!(matches!(
        c.aplinfo("pve").await,
        Err(PveError::Decode { .. })
    ));
    // 501
    assert!(matches!(
        c.node_network("pve", None).await,
        Err(PveError::Server { status: 501, .. })
    ));
    // transport (nothing listening)
    let dead =
        PveClient::new(ClientConfig::new("http://127.0.0.1:9").with_retry(RetryPolicy::none()))
            .unwrap();
    let e = dead.version().await.unwrap_err();
    assert!(
        matches!(e, PveError::Transport { connect: true, .. }),
        "{e:?}"
    );
    assert!(e.is_retry_safe());
}

#[tokio::test]
async fn retry_rules_get_retried_post_not() {
    let (url, st) = spawn_http().await;
    let c = token_client(&url);
    // GET: two 595s, then success => 3 requests
    let s = c.node_status("flaky").await.unwrap();
    assert_eq!(s.memory.used, Some(50));
    assert_eq!(st.count("n:GET /nodes/flaky/status"), 3);
    // GET always failing: 1 + max_retries
    assert!(c.node_status("down").await.is_err());
    assert_eq!(st.count("n:GET /nodes/down/status"), 4);
    // GET timeout is retried too
    assert!(c.node_status("slow").await.is_err());
    assert_eq!(st.count("n:GET /nodes/slow/status"), 4);
    // POST on 595: exactly one request
    assert!(matches!(
        c.lxc_start("flaky", 200).await,
        Err(PveError::NodeUnreachable { .. })
    ));
    assert_eq!(st.count("n:POST /nodes/flaky/lxc/200/status/start"), 1);
    // POST with a definite 500: one request
    assert!(c.lxc_start("pve", 100).await.is_err());
    assert_eq!(st.count("n:POST /nodes/pve/lxc/100/status/start"), 1);
}

#[tokio::test]
async fn create_checked_resolves_lost_answers() {
    let (url, st) = spawn_http().await;
    let c = token_client(&url);
    // plain success
    let out = create_lxc_checked(
        &c,
        "pve",
        &LxcCreateParams::new(110, "local:vztmpl/x.tar.zst"),
    )
    .await
    .unwrap();
    assert!(matches!(out, CreateOutcome::Task(ref u) if u.vmid() == Some(110)));
    // timed out but created: found by vmid, never re-sent
    let out = create_lxc_checked(
        &c,
        "pve",
        &LxcCreateParams::new(102, "local:vztmpl/x.tar.zst"),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        CreateOutcome::ExistsAfterLostResponse {
            vmid: 102,
            lock: Some("create".into())
        }
    );
    assert_eq!(st.count("n:POST /nodes/pve/lxc"), 2);
    assert_eq!(st.count("n:GET /nodes/pve/lxc/102/config"), 1);
    // timed out and not created: checked, then sent exactly once more
    let before = st.count("n:POST /nodes/pve/lxc");
    let out = create_lxc_checked(
        &c,
        "pve",
        &LxcCreateParams::new(104, "local:vztmpl/x.tar.zst"),
    )
    .await
    .unwrap();
    assert!(matches!(out, CreateOutcome::Task(ref u) if u.vmid() == Some(104)));
    assert_eq!(st.count("n:POST /nodes/pve/lxc") - before, 2);
    assert_eq!(st.count("n:GET /nodes/pve/lxc/104/config"), 1);
    // definite failures are returned as they are
    assert!(matches!(
        create_lxc_checked(
            &c,
            "pve",
            &LxcCreateParams::new(101, "local:vztmpl/x.tar.zst")
        )
        .await,
        Err(PveError::AlreadyExists { .. })
    ));
}

#[tokio::test]
async fn ticket_login_csrf_and_renewal() {
    let (url, st) = spawn_http().await;
    let cfg = ClientConfig::new(&url).with_retry(fast_retry());
    // wrong password
    assert!(matches!(
        login(&cfg, "alice", "pve", "nope").await,
        Err(PveError::Unauthorized { ref message }) if message == "authentication failure"
    ));
    let LoginOutcome::Authenticated(t) = login(&cfg, "alice", "pve", PASSWORD).await.unwrap()
    else {
        panic!("expected a ticket")
    };
    assert_eq!(t.username, "alice@pve");
    assert!(t.cap.has("vms", "VM.Allocate"));
    assert!(!t.cap.has("vms", "VM.Console"));
    assert_eq!(t.clustername.as_deref(), Some("lab"));
    let now = time::OffsetDateTime::now_utc();
    assert!(!t.needs_renewal(now));
    assert!(t.needs_renewal(now + time::Duration::minutes(110)));

    // ticket client: GET with cookie, POST with cookie + CSRF
    let c = PveClient::new(cfg.clone().with_auth(Auth::Ticket(t.clone()))).unwrap();
    c.version().await.unwrap();
    let u = c.lxc_start("pve", 120).await.unwrap();
    assert_eq!(u.task_type, "vzstart");
    // a ticket with a wrong CSRF token is rejected on POST only
    let mut wrong = t.clone();
    wrong.csrf_token = Secret::new("bad");
    let w = PveClient::new(cfg.clone().with_auth(Auth::Ticket(wrong))).unwrap();
    w.version().await.unwrap();
    assert!(matches!(
        w.lxc_start("pve", 120).await,
        Err(PveError::Unauthorized { ref message }) if message.contains("csrf")
    ));

    // renewal: the new ticket replaces the old one in the client
    let t2 = renew(&cfg, &t).await.unwrap();
    assert_ne!(t2.ticket, t.ticket);
    let mut old = t.clone();
    old.issued_at = now - time::Duration::minutes(106);
    c.set_auth(Auth::Ticket(old));
    let renewed = c.renew_if_needed().await.unwrap().expect("renewed");
    assert_eq!(renewed.csrf_token.expose(), CSRF2);
    c.lxc_start("pve", 121).await.unwrap();
    assert!(c.renew_if_needed().await.unwrap().is_none());
    assert!(st.count("POST /access/ticket") >= 4);
}

#[tokio::test]
async fn tfa_flow() {
    let (url, _st) = spawn_http().await;
    let cfg = ClientConfig::new(&url);
    let LoginOutcome::TfaRequired(ch) = login(&cfg, "bob@pve", "", PASSWORD).await.unwrap() else {
        panic!("expected a tfa challenge")
    };
    assert_eq!(ch.types(), vec!["totp", "recovery"]);
    assert!(!format!("{ch:?}").contains("half"));
    assert!(matches!(
        complete_tfa(&cfg, &ch, "totp", "000000").await,
        Err(PveError::Unauthorized { .. })
    ));
    let t = complete_tfa(&cfg, &ch, "totp", "123456").await.unwrap();
    assert_eq!(t.ticket.expose(), TICKET);
    assert!(t.cap.has("storage", "Datastore.AllocateSpace"));
}

#[tokio::test]
async fn wait_task_streams_log_and_maps_exit() {
    for (kind, want) in [
        ("vzcreate", TaskExit::Success),
        ("vzstart", TaskExit::Warnings(2)),
        (
            "vzstop",
            TaskExit::Error("command 'lxc-stop' failed: exit code 1".into()),
        ),
    ] {
        let (url, _st) = spawn_http().await;
        let c = token_client(&url);
        let upid: Upid =
            format!("UPID:pve:0000ABCD:0012F00D:65A1B2C3:{kind}:101:root@pam!ctforge:")
                .parse()
                .unwrap();
        let mut lines = Vec::new();
        let mut finished = None;
        let exit = wait_task(
            &c,
            "pve",
            &upid,
            WaitOptions {
                timeout: Duration::from_secs(10),
                poll_interval: Duration::from_millis(10),
                log_page: 3,
            },
            &mut |p| match p {
                TaskProgress::Line(l) => lines.push(l),
                TaskProgress::Finished(e) => finished = Some(e),
            },
        )
        .await
        .unwrap();
        assert_eq!(exit, want);
        assert_eq!(finished, Some(want.clone()));
        // every line exactly once, in order, ending with TASK OK
        let ns: Vec<u64> = lines.iter().map(|l| l.n).collect();
        assert_eq!(ns, (1..=7).collect::<Vec<_>>(), "{lines:?}");
        assert_eq!(lines.last().map(|l| l.t.as_str()), Some("TASK OK"));
        if kind == "vzstop" {
            assert!(matches!(
                exit.into_result(&upid),
                Err(PveError::TaskFailed { .. })
            ));
        }
    }
}

#[tokio::test]
async fn wait_task_times_out() {
    let (url, _st) = spawn_http().await;
    let c = token_client(&url);
    let upid = Upid::new("pve", 1, 2, 3, "vzcreate", "101", "root@pam");
    let r = wait_task(
        &c,
        "pve",
        &upid,
        WaitOptions {
            timeout: Duration::from_millis(1),
            poll_interval: Duration::from_millis(50),
            log_page: 50,
        },
        &mut |_| {},
    )
    .await;
    assert!(matches!(r, Err(PveError::TaskTimeout { .. })));
}

#[tokio::test]
async fn fingerprint_pinning_match_and_mismatch() {
    let (url, fp) = spawn_https().await;
    // fetch_fingerprint sees the same certificate
    assert_eq!(fetch_fingerprint(&url).await.unwrap(), fp);
    // match (lower-case works too)
    let ok = PveClient::new(
        ClientConfig::new(&url)
            .with_auth(Auth::token("root@pam", "ctforge", TOKEN_SECRET))
            .with_tls(TlsMode::Fingerprint(fp.to_lowercase())),
    )
    .unwrap();
    assert_eq!(ok.version().await.unwrap().version, "9.1.9");
    // mismatch: typed error with both fingerprints, not retried
    let wrong = ctforge_pve::tls::format_fingerprint(&[0xAB; 32]);
    let bad = PveClient::new(
        ClientConfig::new(&url)
            .with_auth(Auth::token("root@pam", "ctforge", TOKEN_SECRET))
            .with_tls(TlsMode::Fingerprint(wrong.clone())),
    )
    .unwrap();
    match bad.version().await {
        Err(e @ PveError::Tls { .. }) => {
            let PveError::Tls { expected, got } = &e else {
                unreachable!()
            };
            assert_eq!(expected, &wrong);
            assert_eq!(got, &fp);
            assert!(e.to_string().contains("pin the new fingerprint"));
            assert!(!e.is_retry_safe());
        }
        other => panic!("{other:?}"),
    }
    // insecure accepts, system roots reject the self-signed certificate
    let insecure = PveClient::new(
        ClientConfig::new(&url)
            .with_auth(Auth::token("root@pam", "ctforge", TOKEN_SECRET))
            .with_tls(TlsMode::Insecure),
    )
    .unwrap();
    insecure.version().await.unwrap();
    let system = PveClient::new(
        ClientConfig::new(&url)
            .with_auth(Auth::token("root@pam", "ctforge", TOKEN_SECRET))
            .with_retry(RetryPolicy::none()),
    )
    .unwrap();
    assert!(matches!(
        system.version().await,
        Err(PveError::Transport { .. })
    ));
}

/// Collects tracing output so the test can assert no secret is logged.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn tracing_records_calls_without_secrets() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let (url, _st) = spawn_http().await;
            let cfg = ClientConfig::new(&url);
            let LoginOutcome::Authenticated(t) =
                login(&cfg, "alice", "pve", PASSWORD).await.unwrap()
            else {
                panic!()
            };
            let c = PveClient::new(cfg.clone().with_auth(Auth::Ticket(t))).unwrap();
            c.lxc_start("pve", 130).await.unwrap();
            let tc = token_client(&url);
            let _ = tc
                .lxc_create(
                    "pve",
                    &LxcCreateParams::new(131, "local:vztmpl/x.tar.zst")
                        .password("p4ssw0rd-secret"),
                )
                .await;
            let _ = tc.lxc_start("pve", 100).await;
        })
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("method=POST"), "{out}");
    assert!(
        out.contains("path=/nodes/pve/lxc/130/status/start"),
        "{out}"
    );
    assert!(
        out.contains("status=200") && out.contains("duration_ms="),
        "{out}"
    );
    assert!(out.contains("status=500"), "{out}");
    for secret in [
        PASSWORD,
        TOKEN_SECRET,
        "c2lnbmF0dXJl",
        CSRF,
        "p4ssw0rd-secret",
    ] {
        assert!(
            !out.contains(secret),
            "secret {secret} leaked into logs:\n{out}"
        );
    }
}
