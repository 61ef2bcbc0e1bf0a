//! The differential authorization test: identities (root; a user with a role on one VMID; one
//! on a pool; one on another storage; one known to the other cluster only; an API token of
//! each; one without any ACL) × every ctforge operation on a guest × two clusters (two
//! simulators). For every cell ctforge allows exactly when the simulator allows the same
//! identity the equivalent direct Proxmox call made with the identity's own ticket (a session
//! signed in to one cluster holds a ticket only that cluster accepts; an API token acts as its
//! owner on each cluster), and after every refusal ctforge's container and credential rows and
//! the simulator's guests are unchanged. The direct calls: `status/current` for reads,
//! events, services and refresh; the very `status/<action>`, `DELETE` and `POST …/lxc` (with
//! the parameters ctforge's plan sends) for lifecycle, bulk and create, the guests put back
//! afterwards; reveal and record-only delete have no Proxmox call of their own, so the oracle is
//! Proxmox's privilege check (`POST /access/ticket` with `path` and `privs`) for VM.Audit +
//! VM.Console and VM.Allocate on `/vms/120`. Plus one focused regression test per finding 1, 2,
//! 5 and 10 of issue 15, the create job's re-check, and the dev-box (root@pam only) flow.

#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::needless_range_loop
)]

use std::time::{Duration, Instant};

use ctforge::config::ClusterBootstrap;
use ctforge::storage::model::{NewContainer, NewJob};
use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

use crate::common;

const PW: &str = "pw-123456";

/// Both clusters: CT 100 running and 101 stopped (unmanaged), CT 120 running (managed, with a
/// credential). `vm` has PVEVMAdmin on /vms/100 and /vms/151 plus space on both storages and the
/// bridge; `pool` has PVEVMAdmin on pool `team` (101, 151, both storages); `stor` may see and use
/// the console of CT 120 and read `local` only; `none` has nothing. `other` exists on "b" only.
fn scenario(name: &str, other: bool) -> String {
    let mut s = format!(
        r#"
cluster_name = "{name}"

[[containers]]
vmid = 100
node = "pve1"
hostname = "ct100"
status = "running"

[[containers]]
vmid = 101
node = "pve1"
hostname = "ct101"
status = "stopped"

[[containers]]
vmid = 120
node = "pve1"
hostname = "ct120"
status = "running"

[[pools]]
id = "team"
vms = [101, 151]
storages = ["local", "local-lvm"]
"#
    );
    for user in ["vm", "pool", "stor", "none"] {
        s.push_str(&format!(
            "\n[[users]]\nuserid = \"{user}@pve\"\npassword = \"{PW}\"\n"
        ));
    }
    let acl = [
        ("/vms/100", "vm@pve", "PVEVMAdmin"),
        ("/vms/151", "vm@pve", "PVEVMAdmin"),
        ("/storage/local", "vm@pve", "PVEDatastoreUser"),
        ("/storage/local-lvm", "vm@pve", "PVEDatastoreUser"),
        ("/sdn/zones/localnetwork", "vm@pve", "PVESDNUser"),
        ("/pool/team", "pool@pve", "PVEVMAdmin"),
        ("/sdn/zones/localnetwork", "pool@pve", "PVESDNUser"),
        ("/vms/120", "stor@pve", "PVEVMUser"),
        ("/vms/151", "stor@pve", "PVEVMAdmin"),
        ("/storage/local", "stor@pve", "PVEDatastoreUser"),
        ("/sdn/zones/localnetwork", "stor@pve", "PVESDNUser"),
    ];
    for (path, ugid, role) in acl {
        s.push_str(&format!(
            "\n[[acl]]\npath = \"{path}\"\nugid = \"{ugid}\"\nrole = \"{role}\"\n"
        ));
    }
    if other {
        s.push_str(&format!(
            "\n[[users]]\nuserid = \"other@pve\"\npassword = \"{PW}\"\nrole = \"PVEAdmin\"\npath = \"/\"\n"
        ));
    }
    s
}

fn cluster(sim: &SimHandle, name: &str, default: bool) -> ClusterBootstrap {
    ClusterBootstrap {
        name: name.into(),
        default,
        ..common::sim_cluster(sim)
    }
}

/// The world of the test: two simulators and one app with both clusters, no in-process
/// workers (tests start them when a job must run).
pub struct World {
    pub app: common::TestApp,
    pub sims: Vec<SimHandle>,
    pub names: Vec<&'static str>,
    http: reqwest::Client,
}

pub async fn world() -> World {
    ctforge::install_crypto_provider();
    let a = common::sim(&scenario("a", false), |c| {
        c.with_nodes(1).with_timings(Timings::instant())
    })
    .await;
    let b = common::sim(&scenario("b", true), |c| {
        c.with_nodes(1).with_timings(Timings::instant())
    })
    .await;
    let clusters = vec![cluster(&a, "a", true), cluster(&b, "b", false)];
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = clusters;
        c.workers.concurrency = 0;
    })
    .await;
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    World {
        app,
        sims: vec![a, b],
        names: vec!["a", "b"],
        http,
    }
}

impl World {
    /// Signs `user` in to cluster `cluster` through ctforge; `None` when Proxmox refuses.
    pub async fn session(
        &self,
        user: &str,
        password: &str,
        cluster: &str,
    ) -> Option<common::ApiSession> {
        let (name, realm) = user.split_once('@').unwrap();
        let r = self
            .app
            .client
            .post(format!("{}/api/v1/auth/login", self.app.address))
            .json(&json!({ "username": name, "password": password, "realm": realm, "cluster": cluster }))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return None;
        }
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Some(common::ApiSession { cookie, csrf })
    }

    /// A ctforge API token owned by `user`.
    pub async fn token(&self, user: &str) -> String {
        let secret = format!("ctf_{}", uuid::Uuid::new_v4().simple());
        self.app
            .state
            .store
            .create_api_token(user, "matrix", &ctforge::auth::session::hash_token(&secret))
            .await
            .unwrap();
        secret
    }

    /// A Proxmox ticket of `user` from simulator `sim` (what the user holds after signing in
    /// there), or `None` when that cluster does not know the user.
    pub async fn ticket(&self, sim: usize, user: &str, password: &str) -> Option<(String, String)> {
        let r = self
            .http
            .post(format!(
                "{}/api2/json/access/ticket",
                self.sims[sim].base_url
            ))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return None;
        }
        let v: Value = r.json().await.unwrap();
        Some((
            v["data"]["ticket"].as_str()?.to_owned(),
            v["data"]["CSRFPreventionToken"].as_str()?.to_owned(),
        ))
    }

    /// The managed record of CT 120 on cluster `c` with its credential `db` (made again after
    /// a permitted record delete).
    pub async fn ensure_record(&self, c: usize) -> i64 {
        let store = &self.app.state.store;
        let cluster = store.get_cluster_by_name(self.names[c]).await.unwrap();
        if let Ok(r) = store.get_container_by_vmid(cluster.id, 120).await {
            return r.id;
        }
        let (id, job) = store
            .create_container_with_job(
                &NewContainer {
                    cluster_id: cluster.id,
                    node: "pve1".into(),
                    vmid: 120,
                    hostname: "ct120".into(),
                    template_id: None,
                    status: "ready".parse().unwrap(),
                    spec_json: "{}".into(),
                    root_password_sealed: None,
                    created_by: "root@pam".into(),
                },
                &NewJob {
                    kind: "create_container".into(),
                    container_id: None,
                    node: Some("pve1".into()),
                    payload_json: "{}".into(),
                    created_by: "root@pam".into(),
                },
            )
            .await
            .unwrap();
        // The record is arranged, not created: its job never runs.
        self.app.state.jobs.cancel(job, "root@pam").await.unwrap();
        let sealed = self.app.state.keyring.seal("db-secret-77").unwrap();
        store.put_credential(id, "db", &sealed).await.unwrap();
        id
    }

    /// What must not change on a refusal: ctforge's container and credential rows and every
    /// simulator's guests.
    pub async fn fingerprint(&self) -> String {
        self.settle().await;
        let store = &self.app.state.store;
        let mut rows = Vec::new();
        for c in store.list_containers().await.unwrap() {
            let creds: Vec<String> = store
                .list_credentials(c.id)
                .await
                .unwrap()
                .into_iter()
                .map(|x| format!("{}={}", x.name, x.value_sealed))
                .collect();
            rows.push(format!(
                "{}:{}:{}:{}:{:?}",
                c.id,
                c.cluster_id,
                c.vmid,
                c.status.as_str(),
                creds
            ));
        }
        let guests: Vec<String> = self
            .sims
            .iter()
            .map(|s| {
                s.state().with(|c| {
                    c.cts
                        .values()
                        .map(|ct| format!("{}:{}:{:?}", ct.vmid, ct.running, ct.conf))
                        .collect::<Vec<_>>()
                        .join("|")
                })
            })
            .collect();
        format!("{rows:?}\n{guests:?}")
    }

    /// Waits until no simulator task runs.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .sims
            .iter()
            .any(|s| s.state().with(|c| c.tasks.values().any(|t| t.running)))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts the guests back as the scenario had them (after a permitted action or direct call).
    pub async fn restore_guests(
        &self,
        saved: &[std::collections::BTreeMap<u32, ctforge_pve_sim::state::Ct>],
    ) {
        self.settle().await;
        for (sim, cts) in self.sims.iter().zip(saved) {
            sim.state().with(|c| {
                for (vmid, ct) in cts {
                    c.cts.insert(*vmid, ct.clone());
                }
                c.cts.remove(&151);
            });
        }
    }
}

/// How a caller authenticates to ctforge.
#[derive(Clone)]
enum Auth {
    Session(String, String),
    Token(String),
}

/// One identity of the matrix.
struct Who {
    label: String,
    auth: Auth,
    /// The Proxmox ticket the oracle uses per target cluster (`None`: no valid ticket there).
    tickets: Vec<Option<(String, String, String)>>,
}

fn send(
    app: &common::TestApp,
    who: &Who,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    let mut rb = app.client.request(method, format!("{}{path}", app.address));
    rb = match &who.auth {
        Auth::Session(cookie, csrf) => rb.header("cookie", cookie).header("x-csrf-token", csrf),
        Auth::Token(t) => rb.bearer_auth(t),
    };
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb
}

/// Oracle: Proxmox's own privilege check (`POST /access/ticket` with `path` and `privs`) as
/// the identity, with its ticket.
async fn oracle_privs(w: &World, c: usize, who: &Who, path: &str, privs: &str) -> bool {
    let Some((user, ticket, _)) = &who.tickets[c] else {
        return false;
    };
    let r = w
        .http
        .post(format!("{}/api2/json/access/ticket", w.sims[c].base_url))
        .form(&[
            ("username", user.as_str()),
            ("password", ticket.as_str()),
            ("path", path),
            ("privs", privs),
        ])
        .send()
        .await
        .unwrap();
    r.status() == 200
}

/// Oracle: the direct call with the identity's ticket; true unless Proxmox answers 401/403.
async fn oracle_call(
    w: &World,
    c: usize,
    who: &Who,
    method: reqwest::Method,
    path: &str,
    form: &[(String, String)],
) -> bool {
    oracle_call_with(w, c, who, method, path, form, true).await
}

/// [`oracle_call`]; `strict` fails the test on a 5xx (a create must reach the permission
/// checks), lifecycle calls may meet a guest state the previous cells left.
async fn oracle_call_with(
    w: &World,
    c: usize,
    who: &Who,
    method: reqwest::Method,
    path: &str,
    form: &[(String, String)],
    strict: bool,
) -> bool {
    let Some((_, ticket, csrf)) = &who.tickets[c] else {
        return false;
    };
    let r = w
        .http
        .request(method, format!("{}/api2/json{path}", w.sims[c].base_url))
        .header("cookie", format!("PVEAuthCookie={ticket}"))
        .header("CSRFPreventionToken", csrf)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(
        !strict || !(500..600).contains(&status) || status == 503,
        "oracle {path} answered {status}: {}",
        r.text().await.unwrap_or_default()
    );
    !matches!(status, 401 | 403)
}

/// ctforge's verdict: refused when it answers 401/403.
fn allowed(status: u16) -> bool {
    !matches!(status, 401 | 403)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cell_matches_what_proxmox_allows_the_same_identity() {
    let started = Instant::now();
    let w = world().await;
    let saved: Vec<_> = w
        .sims
        .iter()
        .map(|s| s.state().with(|c| c.cts.clone()))
        .collect();
    for c in 0..2 {
        w.ensure_record(c).await;
    }
    // The plan ctforge would send for each variant, read as root (the oracle replays it).
    let variants: [(&str, Value); 3] = [
        ("create", json!({ "nesting": true })),
        ("create privileged", json!({ "unprivileged": false })),
        ("create keyctl", json!({ "nesting": true, "keyctl": true })),
    ];
    let root_a = w
        .session("root@pam", &w.sims[0].root_password.clone(), "a")
        .await
        .unwrap();
    let root_b = w
        .session("root@pam", &w.sims[1].root_password.clone(), "b")
        .await
        .unwrap();
    let mut plans: Vec<Vec<Vec<(String, String)>>> = vec![Vec::new(), Vec::new()];
    for (c, s) in [(0usize, &root_a), (1, &root_b)] {
        for (_, extra) in &variants {
            let mut body = json!({ "hostname": "c151", "vmid": 151, "cluster": w.names[c] });
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = s
                .post(
                    &w.app.client,
                    &w.app.address,
                    "/api/v1/containers/plan",
                    body,
                )
                .await;
            assert_eq!(r.status(), 200);
            let plan: Value = r.json().await.unwrap();
            let form: Vec<(String, String)> = plan["create_params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .filter(|(k, _)| k != "password")
                .collect();
            plans[c].push(form);
        }
    }

    // Identities.
    let mut people: Vec<Who> = Vec::new();
    let root_pw = [
        w.sims[0].root_password.clone(),
        w.sims[1].root_password.clone(),
    ];
    let sessions: [(&str, usize); 8] = [
        ("root@pam", 0),
        ("root@pam", 1),
        ("vm@pve", 0),
        ("vm@pve", 1),
        ("pool@pve", 0),
        ("stor@pve", 0),
        ("none@pve", 0),
        ("other@pve", 1),
    ];
    for (user, home) in sessions {
        let pw = if user == "root@pam" {
            root_pw[home].clone()
        } else {
            PW.to_owned()
        };
        let s = w.session(user, &pw, w.names[home]).await.unwrap();
        // A session's ticket is valid only on the cluster it signed in to.
        let ticket = w
            .ticket(home, user, &pw)
            .await
            .map(|(t, c)| (user.to_owned(), t, c));
        let tickets = (0..2)
            .map(|c| {
                if c == home {
                    ticket.clone()
                } else {
                    ticket
                        .clone()
                        .map(|(u, _, c)| (u, "PVE:invalid".to_owned(), c))
                }
            })
            .collect();
        people.push(Who {
            label: format!("{user} signed in to {}", w.names[home]),
            auth: Auth::Session(s.cookie, s.csrf),
            tickets,
        });
    }
    for user in [
        "root@pam",
        "vm@pve",
        "pool@pve",
        "stor@pve",
        "none@pve",
        "other@pve",
    ] {
        let token = w.token(user).await;
        let mut tickets = Vec::new();
        for (c, pw) in root_pw.iter().enumerate() {
            let pw = if user == "root@pam" {
                pw.clone()
            } else {
                PW.to_owned()
            };
            tickets.push(
                w.ticket(c, user, &pw)
                    .await
                    .map(|(t, x)| (user.to_owned(), t, x)),
            );
        }
        people.push(Who {
            label: format!("API token of {user}"),
            auth: Auth::Token(token),
            tickets,
        });
    }

    let ops = [
        "read",
        "events",
        "services",
        "refresh",
        "reveal",
        "record delete",
        "start",
        "stop",
        "shutdown",
        "reboot",
        "bulk stop",
        "delete",
        "create",
        "create privileged",
        "create keyctl",
    ];
    let mut cells = 0usize;
    let mut permitted = 0usize;
    let mut mismatches = Vec::new();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    for who in &people {
        for c in 0..2 {
            let name = w.names[c];
            for op in ops {
                w.ensure_record(c).await;
                let before = w.fingerprint().await;
                let ct120 = format!("{name}:120");
                // Lifecycle cells make the direct call once ctforge's outcome is checked.
                let mut direct: Option<(reqwest::Method, String)> = None;
                let (status, mut expected, job) = match op {
                    "read" | "events" | "services" => {
                        let path = match op {
                            "read" => format!("/api/v1/containers/{ct120}"),
                            "events" => format!("/api/v1/containers/{ct120}/events"),
                            _ => format!("/api/v1/containers/{ct120}/services"),
                        };
                        let r = send(&w.app, who, get.clone(), &path, None)
                            .send()
                            .await
                            .unwrap();
                        let oracle = oracle_call(
                            &w,
                            c,
                            who,
                            get.clone(),
                            "/nodes/pve1/lxc/120/status/current",
                            &[],
                        )
                        .await;
                        (r.status().as_u16(), oracle, None)
                    }
                    "refresh" => {
                        let r = send(
                            &w.app,
                            who,
                            post.clone(),
                            &format!("/api/v1/containers/{ct120}/services/refresh"),
                            Some(json!({})),
                        )
                        .send()
                        .await
                        .unwrap();
                        let oracle = oracle_call(
                            &w,
                            c,
                            who,
                            get.clone(),
                            "/nodes/pve1/lxc/120/status/current",
                            &[],
                        )
                        .await;
                        (r.status().as_u16(), oracle, None)
                    }
                    "reveal" => {
                        let r = send(
                            &w.app,
                            who,
                            post.clone(),
                            &format!("/api/v1/containers/{ct120}/credentials/reveal"),
                            Some(json!({ "name": "db" })),
                        )
                        .send()
                        .await
                        .unwrap();
                        let status = r.status().as_u16();
                        let text = r.text().await.unwrap();
                        assert_eq!(
                            allowed(status),
                            text.contains("db-secret-77"),
                            "{}: reveal {status} {text}",
                            who.label
                        );
                        (
                            status,
                            oracle_privs(&w, c, who, "/vms/120", "VM.Audit,VM.Console").await,
                            None,
                        )
                    }
                    "record delete" => {
                        let r = send(
                            &w.app,
                            who,
                            reqwest::Method::DELETE,
                            &format!("/api/v1/containers/{ct120}?record_only=true"),
                            None,
                        )
                        .send()
                        .await
                        .unwrap();
                        (
                            r.status().as_u16(),
                            oracle_privs(&w, c, who, "/vms/120", "VM.Allocate").await,
                            None,
                        )
                    }
                    "start" | "stop" | "shutdown" | "reboot" | "delete" => {
                        let vmid = if op == "start" { 101 } else { 100 };
                        let r = if op == "delete" {
                            send(
                                &w.app,
                                who,
                                reqwest::Method::DELETE,
                                &format!("/api/v1/containers/{name}:{vmid}"),
                                None,
                            )
                            .send()
                            .await
                            .unwrap()
                        } else {
                            send(
                                &w.app,
                                who,
                                post.clone(),
                                &format!("/api/v1/containers/{name}:{vmid}/{op}"),
                                Some(json!({})),
                            )
                            .send()
                            .await
                            .unwrap()
                        };
                        direct = Some(if op == "delete" {
                            (reqwest::Method::DELETE, format!("/nodes/pve1/lxc/{vmid}"))
                        } else {
                            (post.clone(), format!("/nodes/pve1/lxc/{vmid}/status/{op}"))
                        });
                        (r.status().as_u16(), false, None)
                    }
                    "bulk stop" => {
                        let r = send(&w.app, who, post.clone(), "/api/v1/containers/bulk", Some(json!({ "action": "stop", "ids": [format!("{name}:100")], "timeout": 60 }))).send().await.unwrap();
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        let job = body["job_id"].as_i64().or(body["id"].as_i64());
                        direct = Some((post.clone(), "/nodes/pve1/lxc/100/status/stop".to_owned()));
                        (status, false, job)
                    }
                    _ => {
                        let v = match op {
                            "create" => 0,
                            "create privileged" => 1,
                            _ => 2,
                        };
                        let mut body = json!({ "hostname": "c151", "vmid": 151, "cluster": name });
                        for (k, val) in variants[v].1.as_object().unwrap() {
                            body[k] = val.clone();
                        }
                        let r = send(&w.app, who, post.clone(), "/api/v1/containers", Some(body))
                            .send()
                            .await
                            .unwrap();
                        let status = r.status().as_u16();
                        let answer: Value = r.json().await.unwrap_or(Value::Null);
                        if let (Some(id), Some(job)) =
                            (answer["id"].as_i64(), answer["job_id"].as_i64())
                        {
                            // Permitted: the creation is queued; take it back before a worker runs it.
                            w.app.state.jobs.cancel(job, "root@pam").await.unwrap();
                            w.app.state.store.delete_container(id).await.unwrap();
                        }
                        let mut oracle =
                            oracle_call(&w, c, who, post.clone(), "/nodes/pve1/lxc", &plans[c][v])
                                .await;
                        w.restore_guests(&saved).await;
                        // keyctl is for root@pam itself: Proxmox refuses it to every API
                        // token, root@pam's included (`$authuser eq 'root@pam'`).
                        if v == 2 && matches!(who.auth, Auth::Token(_)) {
                            oracle = false;
                        }
                        (status, oracle, None)
                    }
                };
                // A bulk job decides per container when it runs.
                let verdict = match job {
                    Some(job) => {
                        let workers = ctforge::startup::start_workers(&w.app.state);
                        let deadline = Instant::now() + Duration::from_secs(20);
                        let row = loop {
                            let row = w.app.state.store.get_job(job).await.unwrap();
                            if row.state.is_finished() || Instant::now() > deadline {
                                break row;
                            }
                            tokio::time::sleep(Duration::from_millis(25)).await;
                        };
                        workers.stop().await;
                        let result: Value =
                            serde_json::from_str(row.result_json.as_deref().unwrap_or("{}"))
                                .unwrap_or(Value::Null);
                        let text = result.to_string();
                        !(text.contains("Permission check failed")
                            || text.contains("signed in to another cluster")
                            || text.contains("permission denied"))
                    }
                    None => allowed(status),
                };
                if !verdict {
                    let after = w.fingerprint().await;
                    if after != before {
                        mismatches.push(format!(
                            "{} × {op} × cluster {name}: refused, yet state changed",
                            who.label
                        ));
                    }
                }
                if let Some((method, path)) = direct {
                    // The same call, made directly with the identity's own ticket.
                    w.restore_guests(&saved).await;
                    expected = oracle_call_with(&w, c, who, method, &path, &[], false).await;
                    w.restore_guests(&saved).await;
                }
                cells += 1;
                permitted += usize::from(verdict);
                if verdict != expected {
                    mismatches.push(format!("{} × {op} × cluster {name}: ctforge {status} ({verdict}), proxmox allows: {expected}", who.label));
                }
                if verdict && matches!(op, "delete" | "start" | "stop" | "shutdown" | "reboot") {
                    w.restore_guests(&saved).await;
                }
            }
        }
    }
    println!(
        "authorization matrix: {} identities × {} operations × 2 clusters = {cells} cells ({permitted} permitted, {} refused) in {:?}",
        people.len(),
        ops.len(),
        cells - permitted,
        started.elapsed()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn bearer(app: &common::TestApp, token: &str, path: &str) -> reqwest::RequestBuilder {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
}

/// Finding 1: a user with rights on CT 100 only can neither reveal CT 120's credentials, nor
/// remove its record, nor read or refresh its services.
#[tokio::test]
async fn finding1_rights_on_one_guest_do_not_reach_another() {
    let w = world().await;
    let id = w.ensure_record(0).await;
    let s = w.session("vm@pve", PW, "a").await.unwrap();
    let base = &w.app.address;
    let r = s
        .post(
            &w.app.client,
            base,
            &format!("/api/v1/containers/{id}/credentials/reveal"),
            json!({ "name": "db" }),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("db-secret-77"));
    let r = w
        .app
        .client
        .delete(format!("{base}/api/v1/containers/{id}?record_only=true"))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
    assert_eq!(
        w.app.state.store.list_credentials(id).await.unwrap().len(),
        1
    );
    let r = w
        .app
        .client
        .get(format!("{base}/api/v1/containers/{id}/services"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .post(
            &w.app.client,
            base,
            &format!("/api/v1/containers/{id}/services/refresh"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 403);
    // On the guest it has rights on, the same user may read.
    let r = w
        .app
        .client
        .get(format!("{base}/api/v1/containers/a:100"))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Finding 2: VM.Allocate on one VMID creates nothing privileged or elsewhere, and a session of
/// cluster b creates nothing on cluster a (no fallback to a's service token).
#[tokio::test]
async fn finding2_create_is_decided_like_proxmox_and_per_cluster() {
    let w = world().await;
    let s = w.session("vm@pve", PW, "a").await.unwrap();
    let base = &w.app.address;
    for body in [
        json!({ "hostname": "x", "vmid": 152, "cluster": "a", "nesting": true }),
        json!({ "hostname": "x", "vmid": 151, "cluster": "a", "unprivileged": false, "nesting": true }),
        json!({ "hostname": "x", "vmid": 151, "cluster": "a", "keyctl": true }),
    ] {
        let r = s
            .post(&w.app.client, base, "/api/v1/containers", body.clone())
            .await;
        assert_eq!(r.status(), 403, "{body}: {}", r.text().await.unwrap());
    }
    // Its own VMID, unprivileged with nesting, is what Proxmox allows it.
    let r = s
        .post(
            &w.app.client,
            base,
            "/api/v1/containers",
            json!({ "hostname": "x", "vmid": 151, "cluster": "a", "nesting": true }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let other = w.session("other@pve", PW, "b").await.unwrap();
    let r = other
        .post(
            &w.app.client,
            base,
            "/api/v1/containers",
            json!({ "hostname": "y", "vmid": 160, "cluster": "a" }),
        )
        .await;
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(text.contains("sign in"), "{text}");
    let a = w.app.state.store.get_cluster_by_name("a").await.unwrap();
    assert!(
        w.app
            .state
            .store
            .get_container_by_vmid(a.id, 160)
            .await
            .is_err()
    );
    assert!(
        w.app
            .state
            .store
            .get_container_by_vmid(a.id, 152)
            .await
            .is_err()
    );
}

/// The create job checks the submitter's rights again when it starts: revoked meanwhile, it
/// fails with a permission error and creates nothing.
#[tokio::test]
async fn create_job_rechecks_rights_revoked_after_submit() {
    let w = world().await;
    let s = w.session("vm@pve", PW, "a").await.unwrap();
    let r = s
        .post(
            &w.app.client,
            &w.app.address,
            "/api/v1/containers",
            json!({ "hostname": "x", "vmid": 151, "cluster": "a", "nesting": true }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let job = r.json::<Value>().await.unwrap()["job_id"].as_i64().unwrap();
    w.sims[0].state().with(|c| {
        c.acl
            .retain(|e| !(e.ugid == "vm@pve" && e.path == "/vms/151"))
    });
    let workers = ctforge::startup::start_workers(&w.app.state);
    let deadline = Instant::now() + Duration::from_secs(20);
    let row = loop {
        let row = w.app.state.store.get_job(job).await.unwrap();
        if row.state.is_finished() || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    workers.stop().await;
    assert_eq!(row.state.as_str(), "failed");
    let error = row.error.clone().unwrap_or_default();
    assert!(error.contains("lacks VM.Allocate on /vms/151"), "{error}");
    assert!(w.sims[0].state().with(|c| !c.cts.contains_key(&151)));
}

/// Finding 5: an API token lists exactly what its owner may see in Proxmox.
#[tokio::test]
async fn finding5_api_tokens_list_their_owners_view() {
    let w = world().await;
    w.ensure_record(0).await;
    let token = w.token("vm@pve").await;
    let listing: Value = bearer(&w.app, &token, "/api/v1/containers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen: Vec<String> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}:{}", i["cluster"].as_str().unwrap(), i["vmid"]))
        .collect();
    seen.sort();
    assert_eq!(seen, ["a:100", "b:100"]);
    let none = w.token("none@pve").await;
    let listing: Value = bearer(&w.app, &none, "/api/v1/containers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["items"].as_array().unwrap().len(), 0, "{listing}");
}

/// Finding 10: a user signed in to another cluster does not mark a cluster down, and a Delete
/// never turns into a record-only delete on the down map's word.
#[tokio::test]
async fn finding10_down_map_only_for_transport_failures_and_delete_confirms() {
    let w = world().await;
    let a = w.app.state.store.get_cluster_by_name("a").await.unwrap();
    let other = w.session("other@pve", PW, "b").await.unwrap();
    let r = w
        .app
        .client
        .get(format!("{}/api/v1/containers", w.app.address))
        .header("cookie", &other.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listing: Value = r.json().await.unwrap();
    assert!(
        w.app.state.down.since(a.id).is_none(),
        "cluster a marked down: {listing}"
    );
    assert!(
        listing["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["cluster"] == "b")
    );
    assert_eq!(
        listing["sign_in"],
        json!(["a"]),
        "the dashboard offers the sign-in"
    );
    let html = w
        .app
        .client
        .get(format!("{}/", w.app.address))
        .header("cookie", &other.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("/login?cluster=a"), "{html}");

    // Even when the down map says so (wrongly), root's Delete deletes in Proxmox.
    let id = w.ensure_record(0).await;
    w.app.state.down.mark_down(a.id, 1);
    let root = w
        .session("root@pam", &w.sims[0].root_password.clone(), "a")
        .await
        .unwrap();
    let r = w
        .app
        .client
        .post(format!("{}/containers/{id}/delete", w.app.address))
        .header("cookie", &root.cookie)
        .form(&[("csrf_token", root.csrf.as_str()), ("back", "/")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    w.settle().await;
    assert!(
        w.sims[0].state().with(|c| !c.cts.contains_key(&120)),
        "CT 120 must be deleted in Proxmox, not only its record"
    );
}

/// The shipped dev-box (keyctl, which only root@pam may set in Proxmox) reaches Ready when root
/// creates it (the create call carries root's own sealed ticket), and is refused at submit to an
/// administrator who is not root@pam and to root's API token.
#[tokio::test]
async fn dev_box_is_created_with_roots_own_ticket_and_refused_to_others() {
    ctforge::install_crypto_provider();
    let sim = common::sim(
        "[[users]]\nuserid = \"admin@pve\"\npassword = \"adminpw1\"\nrole = \"PVEAdmin\"\npath = \"/\"\n",
        |c| c.with_nodes(1).with_timings(Timings::instant()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    ctforge::demo::write_examples(dir.path()).unwrap();
    let roots = vec![dir.path().to_owned()];
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = roots.clone();
    })
    .await;
    ctforge::templates::discover_roots(app.state.store.as_ref(), &app.state.config.templates.roots)
        .await
        .unwrap();
    let base = &app.address;
    let admin = common::api_login(&app.client, base, "admin", "adminpw1", "pve").await;
    let r = admin
        .post(
            &app.client,
            base,
            "/api/v1/containers",
            json!({ "template": "dev-box", "hostname": "dev2" }),
        )
        .await;
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("keyctl/fuse can only be set by root@pam"),
        "{text}"
    );

    let secret = format!("ctf_{}", uuid::Uuid::new_v4().simple());
    app.state
        .store
        .create_api_token(
            "root@pam",
            "t",
            &ctforge::auth::session::hash_token(&secret),
        )
        .await
        .unwrap();
    let r = app
        .client
        .post(format!("{base}/api/v1/containers"))
        .bearer_auth(&secret)
        .json(&json!({ "template": "dev-box", "hostname": "dev3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "root's API token carries no root ticket");

    let root = common::api_login(&app.client, base, "root", &sim.root_password, "pam").await;
    let r = root
        .post(
            &app.client,
            base,
            "/api/v1/containers",
            json!({ "template": "dev-box", "hostname": "dev1" }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let job = created["job_id"].as_i64().unwrap();
    let vmid = u32::try_from(created["vmid"].as_u64().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let row = loop {
        let row = app.state.store.get_job(job).await.unwrap();
        if row.state.is_finished() || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row.state.as_str(), "succeeded", "{:?}", row.error);
    let features = sim
        .state()
        .with(|c| {
            c.cts
                .get(&vmid)
                .and_then(|ct| ct.conf.get("features").cloned())
        })
        .unwrap_or_default();
    assert!(features.contains("keyctl=1"), "{features}");
    let record = app
        .state
        .store
        .get_container(created["id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(record.status.as_str(), "ready");
}

/// The sign-in a refusal on another cluster offers: `/login?cluster=NAME` signs in there, even
/// from a session of another cluster.
#[tokio::test]
async fn login_page_signs_in_to_the_named_cluster() {
    let w = world().await;
    let other = w.session("other@pve", PW, "b").await.unwrap();
    let page = w
        .app
        .client
        .get(format!("{}/login?cluster=a", w.app.address))
        .header("cookie", &other.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the form is offered, not a redirect");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="cluster" value="a""#), "{html}");
    let r = w
        .app
        .client
        .post(format!("{}/login", w.app.address))
        .form(&[
            ("username", "vm"),
            ("password", PW),
            ("realm", "pve"),
            ("next", "/"),
            ("cluster", "b"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Signed in to b: CT 100 of b is readable, the one of a answers with the sign-in offer.
    let get = |path: &str| {
        w.app
            .client
            .get(format!("{}{path}", w.app.address))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(get("/api/v1/containers/b:100").await.unwrap().status(), 200);
    let r = get("/api/v1/containers/a:100").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("/login?cluster=a"));
}
