//! ctforge's own roles over real HTTP against the simulator: the role table (every identity ×
//! every operation on ctforge's objects and jobs, allowed exactly per the table, the database
//! unchanged after every refusal), the regressions of findings 3 and 4 of issue 15, and the last
//! admin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use ctforge::config::ClusterBootstrap;
use ctforge::storage::model::{ClusterInput, NewContainer, NewJob};
use ctforge_pve_sim::SimHandle;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::common;

/// Users of the simulator: editor and auditor have no Proxmox ACL, alice holds VM.Audit
/// everywhere (built in), dave holds PVEVMUser on CT 100 only.
const SCENARIO: &str = r#"
[[users]]
userid = "ed@pve"
password = "edpw1234"

[[users]]
userid = "aud@pve"
password = "audpw1234"

[[users]]
userid = "dave@pve"
password = "davepw12"
role = "PVEVMUser"
path = "/vms/100"

[[users]]
userid = "erin@pve"
password = "erinpw12"
role = "PVEVMUser"
path = "/vms"
"#;

/// The VMID of root's jobs' guest (on cluster `lab`).
const VMID: i64 = 120;

fn bootstrap(sim: &SimHandle, name: &str, default: bool) -> ClusterBootstrap {
    ClusterBootstrap {
        name: name.into(),
        default,
        ..common::sim_cluster(sim)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// root@pam@lab, the bootstrap admin.
    Admin,
    /// ed@pve@lab, granted `editor`.
    Editor,
    /// aud@pve@lab, granted `auditor`.
    Auditor,
    /// alice@pve@lab: no role, VM.Audit everywhere in Proxmox.
    Plain,
    /// dave@pve@lab: no role, rights on CT 100 only.
    Stranger,
    /// root@pam@other: Proxmox Administrator, but signed in to the other cluster.
    OtherCluster,
}

#[derive(Clone, Debug)]
enum Auth {
    Cookie { cookie: String, csrf: String },
    Token(String),
}

#[derive(Clone, Debug)]
struct Who {
    label: String,
    kind: Kind,
    auth: Auth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    TemplateCreate,
    TemplateEdit,
    TemplateDelete,
    Discovery,
    BucketWrite,
    ClusterAdd,
    ClusterEdit,
    ClusterDelete,
    ClusterTest,
    ClusterDefault,
    OthersTokensList,
    OthersTokenRevoke,
    AuditRead,
    RoleGrant,
    RoleRevoke,
    JobList,
    JobRead,
    JobRetry,
    JobCancel,
}

const OPS: [Op; 19] = [
    Op::TemplateCreate,
    Op::TemplateEdit,
    Op::TemplateDelete,
    Op::Discovery,
    Op::BucketWrite,
    Op::ClusterAdd,
    Op::ClusterEdit,
    Op::ClusterDelete,
    Op::ClusterTest,
    Op::ClusterDefault,
    Op::OthersTokensList,
    Op::OthersTokenRevoke,
    Op::AuditRead,
    Op::RoleGrant,
    Op::RoleRevoke,
    Op::JobList,
    Op::JobRead,
    Op::JobRetry,
    Op::JobCancel,
];

/// The role table: whether `kind` may do `op`.
fn allowed(kind: Kind, op: Op) -> bool {
    use Op::*;
    match kind {
        Kind::Admin => true,
        Kind::Editor => matches!(
            op,
            TemplateCreate | TemplateEdit | TemplateDelete | Discovery | BucketWrite
        ),
        Kind::Auditor => op == AuditRead,
        // VM.Audit on the job's guest: may see root's jobs, not retry or cancel them.
        Kind::Plain => matches!(op, JobList | JobRead),
        Kind::Stranger | Kind::OtherCluster => false,
    }
}

struct World {
    app: common::TestApp,
    sim: SimHandle,
    lab: i64,
    pool: sqlx::SqlitePool,
    admin: Who,
    serial: u32,
}

impl World {
    async fn send(
        &self,
        who: &Who,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self.app.client.request(
            method.parse().unwrap(),
            format!("{}{path}", self.app.address),
        );
        request = match &who.auth {
            Auth::Cookie { cookie, csrf } => request
                .header("cookie", cookie)
                .header("x-csrf-token", csrf),
            Auth::Token(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    fn next(&mut self) -> u32 {
        self.serial += 1;
        self.serial
    }

    fn cluster_input(&self, name: &str) -> ClusterInput {
        ClusterInput {
            name: name.into(),
            url: self.sim.base_url.clone(),
            token_id: self.sim.token_id.clone(),
            token_secret_sealed: Some(self.app.state.keyring.seal(&self.sim.token_secret).unwrap()),
            fingerprint: Some(self.sim.fingerprint.clone()),
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password_sealed: None,
            ssh_key_sealed: None,
            ssh_host_key: None,
            is_default: false,
        }
    }

    /// A creation job of root@pam on CT [`VMID`] of `lab`: queued (no worker runs here), or
    /// cancelled when `cancelled`.
    async fn root_job(&mut self, cancelled: bool) -> i64 {
        let n = self.next();
        let store = &self.app.state.store;
        let (_, job) = store
            .create_container_with_job(
                &NewContainer {
                    cluster_id: self.lab,
                    node: "pve1".into(),
                    vmid: VMID + i64::from(n) * 1000,
                    hostname: format!("root-ct-{n}"),
                    template_id: None,
                    status: ctforge::status::RecordStatus::Creating,
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
        if cancelled {
            self.app.state.jobs.cancel(job, "root@pam").await.unwrap();
        }
        job
    }

    /// Sets up what `op` acts on (as the admin or in the store) and returns the request.
    async fn prepare(&mut self, op: Op) -> (&'static str, String, Option<Value>, Option<i64>) {
        let n = self.next();
        let admin = self.admin.clone();
        let sim = (
            self.sim.base_url.clone(),
            self.sim.token_id.clone(),
            self.sim.token_secret.clone(),
            self.sim.fingerprint.clone(),
        );
        match op {
            Op::TemplateCreate => (
                "POST",
                "/api/v1/templates".into(),
                Some(json!({ "name": format!("made-{n}"), "config": { "app": "Made" } })),
                None,
            ),
            Op::TemplateEdit | Op::TemplateDelete => {
                let name = format!("shipped-{n}");
                let (status, body) = self
                    .send(&admin, "POST", "/api/v1/templates", Some(json!({ "name": name, "config": { "app": "Shipped" }, "scripts": [{ "order": 10, "name": "setup.sh", "content": "echo ok\n" }] })))
                    .await;
                assert_eq!(status, 201, "{body}");
                if op == Op::TemplateEdit {
                    let body = json!({ "config": { "app": "Shipped" }, "scripts": [{ "order": 10, "name": "setup.sh", "content": "echo ok\n" }, { "order": 20, "name": "key.sh", "content": "echo ssh-ed25519 AAAA >> /root/.ssh/authorized_keys\n" }] });
                    ("PUT", format!("/api/v1/templates/{name}"), Some(body), None)
                } else {
                    ("DELETE", format!("/api/v1/templates/{name}"), None, None)
                }
            }
            Op::Discovery => (
                "POST",
                "/api/v1/templates/discover".into(),
                Some(json!({})),
                None,
            ),
            Op::BucketWrite => (
                "POST",
                "/api/v1/buckets".into(),
                Some(json!({ "name": format!("bucket-{n}") })),
                None,
            ),
            Op::ClusterAdd => (
                "POST",
                "/api/v1/clusters".into(),
                Some(
                    json!({ "name": format!("added-{n}"), "url": sim.0, "token_id": sim.1, "token_secret": sim.2, "fingerprint": sim.3 }),
                ),
                None,
            ),
            Op::ClusterEdit | Op::ClusterDelete | Op::ClusterDefault => {
                let name = format!("spare-{n}");
                let id = self
                    .app
                    .state
                    .store
                    .insert_cluster(&self.cluster_input(&name))
                    .await
                    .unwrap();
                match op {
                    Op::ClusterEdit => (
                        "PUT",
                        format!("/api/v1/clusters/{id}"),
                        Some(
                            json!({ "name": format!("renamed-{n}"), "url": sim.0, "token_id": sim.1, "fingerprint": sim.3 }),
                        ),
                        None,
                    ),
                    Op::ClusterDefault => (
                        "PUT",
                        format!("/api/v1/clusters/{id}"),
                        Some(
                            json!({ "name": name, "url": sim.0, "token_id": sim.1, "fingerprint": sim.3, "default": true }),
                        ),
                        None,
                    ),
                    _ => ("DELETE", format!("/api/v1/clusters/{id}"), None, None),
                }
            }
            Op::ClusterTest => (
                "POST",
                format!("/api/v1/clusters/{}/test", self.lab),
                None,
                None,
            ),
            Op::OthersTokensList => ("GET", "/api/v1/tokens?all=true".into(), None, None),
            Op::OthersTokenRevoke => {
                let (view, _) = ctforge::tokens::create(
                    &self.app.state,
                    "victim@pve",
                    &format!("victim-{n}"),
                    "127.0.0.1",
                )
                .await
                .unwrap();
                ("DELETE", format!("/api/v1/tokens/{}", view.id), None, None)
            }
            Op::AuditRead => ("GET", "/api/v1/audit".into(), None, None),
            Op::RoleGrant => (
                "POST",
                "/api/v1/roles".into(),
                Some(json!({ "identity": format!("new{n}@pve@lab"), "role": "auditor" })),
                None,
            ),
            Op::RoleRevoke => {
                let id = self
                    .app
                    .state
                    .store
                    .insert_role_grant(&format!("old{n}@pve"), self.lab, "editor", "test")
                    .await
                    .unwrap();
                ("DELETE", format!("/api/v1/roles/{id}"), None, None)
            }
            Op::JobList => {
                let job = self.root_job(false).await;
                ("GET", "/api/v1/jobs?limit=500".into(), None, Some(job))
            }
            Op::JobRead => {
                let job = self.root_job(false).await;
                ("GET", format!("/api/v1/jobs/{job}"), None, Some(job))
            }
            Op::JobRetry => {
                let job = self.root_job(true).await;
                ("POST", format!("/api/v1/jobs/{job}/retry"), None, Some(job))
            }
            Op::JobCancel => {
                let job = self.root_job(false).await;
                (
                    "POST",
                    format!("/api/v1/jobs/{job}/cancel"),
                    None,
                    Some(job),
                )
            }
        }
    }
}

/// Every table's full content but what a refused request may legitimately touch (sessions,
/// locks, a token's `last_used`).
async fn snapshot(pool: &sqlx::SqlitePool) -> BTreeMap<String, String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('sessions', 'locks', '_sqlx_migrations', 'sqlite_sequence') ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .filter(|c| !(table == "api_tokens" && c == "last_used"))
                .collect();
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let content: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(group_concat({row}, '|'), '') FROM (SELECT * FROM {table} ORDER BY rowid)"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        out.insert(table, content);
    }
    out
}

async fn login(
    app: &common::TestApp,
    user: &str,
    password: &str,
    realm: &str,
    cluster: &str,
) -> Auth {
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(
            &json!({ "username": user, "password": password, "realm": realm, "cluster": cluster }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "sign-in of {user}@{realm} on {cluster}");
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
    Auth::Cookie { cookie, csrf }
}

async fn world() -> World {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| c.with_nodes(2)).await;
    let roots = tempfile::tempdir().unwrap().keep();
    let clusters = vec![
        bootstrap(&sim, "lab", true),
        bootstrap(&sim, "other", false),
    ];
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = clusters;
        c.templates.roots = vec![roots];
        // No worker: jobs stay where the test puts them.
        c.workers.concurrency = 0;
    })
    .await;
    let lab = app.state.store.get_cluster_by_name("lab").await.unwrap().id;
    let pool = sqlx::SqlitePool::connect(&app.state.config.database_url())
        .await
        .unwrap();
    let admin_auth = login(&app, "root", &sim.root_password, "pam", "lab").await;
    let admin = Who {
        label: "root@pam@lab".into(),
        kind: Kind::Admin,
        auth: admin_auth,
    };
    World {
        app,
        sim,
        lab,
        pool,
        admin,
        serial: 0,
    }
}

async fn token_of(world: &World, who: &Who) -> Who {
    let (status, body) = world
        .send(
            who,
            "POST",
            "/api/v1/tokens",
            Some(json!({ "name": format!("t-{}", who.label.replace('@', "-")) })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    Who {
        label: format!("token of {}", who.label),
        kind: who.kind,
        auth: Auth::Token(token),
    }
}

/// The role table: 6 identities and an API token of each (12) × 19 operations = 228 cells.
/// Allowed cells succeed; refused cells answer 403 (or 404 for a job the identity may not see)
/// and leave every table as it was.
#[tokio::test]
async fn role_table_allows_exactly_and_refusals_change_nothing() {
    let mut w = world().await;
    let sim_pw = w.sim.root_password.clone();
    // Grants through the API, as an admin would make them.
    for (identity, role) in [("ed@pve@lab", "editor"), ("aud@pve@lab", "auditor")] {
        let (status, body) = w
            .send(
                &w.admin,
                "POST",
                "/api/v1/roles",
                Some(json!({ "identity": identity, "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut people = vec![w.admin.clone()];
    for (user, pw, realm, cluster, kind) in [
        ("ed", "edpw1234", "pve", "lab", Kind::Editor),
        ("aud", "audpw1234", "pve", "lab", Kind::Auditor),
        ("alice", "alice", "pve", "lab", Kind::Plain),
        ("dave", "davepw12", "pve", "lab", Kind::Stranger),
        ("root", sim_pw.as_str(), "pam", "other", Kind::OtherCluster),
    ] {
        let auth = login(&w.app, user, pw, realm, cluster).await;
        people.push(Who {
            label: format!("{user}@{realm}@{cluster}"),
            kind,
            auth,
        });
    }
    let mut identities = people.clone();
    for who in &people {
        identities.push(token_of(&w, who).await);
    }

    let mut cells = 0;
    let mut refused = 0;
    for who in &identities {
        for op in OPS {
            let (method, path, body, job) = w.prepare(op).await;
            let before = snapshot(&w.pool).await;
            let (status, text) = w.send(who, method, &path, body).await;
            let listed = op == Op::JobList && {
                let list: Value = serde_json::from_str(&text).unwrap();
                list["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|j| Some(j["id"].as_i64().unwrap()) == job)
            };
            let cell = format!("{} × {op:?}: {status} {text}", who.label);
            cells += 1;
            if allowed(who.kind, op) {
                assert!(status.is_success(), "allowed: {cell}");
                if op == Op::JobList {
                    assert!(listed, "root's job is listed: {cell}");
                }
                if op == Op::ClusterDefault {
                    // Give the default back to `lab` for the cells after this one.
                    let lab = w.app.state.store.get_cluster(w.lab).await.unwrap();
                    let mut input = ClusterInput::from(&lab);
                    input.is_default = true;
                    w.app
                        .state
                        .store
                        .update_cluster(w.lab, &input)
                        .await
                        .unwrap();
                }
                continue;
            }
            refused += 1;
            match op {
                Op::JobList => {
                    assert_eq!(status, 200, "{cell}");
                    assert!(!listed, "refused: root's job is not listed: {cell}");
                }
                Op::JobRead => assert_eq!(status, 404, "refused: {cell}"),
                Op::JobRetry | Op::JobCancel => {
                    assert!(matches!(status.as_u16(), 403 | 404), "refused: {cell}")
                }
                _ => assert_eq!(status, 403, "refused: {cell}"),
            }
            assert!(!text.contains("\"token\":\"ctf_"), "{cell}");
            let after = snapshot(&w.pool).await;
            for (table, content) in &before {
                assert_eq!(
                    content, &after[table],
                    "refused {cell} changed table {table}"
                );
            }
        }
    }
    assert_eq!(cells, 12 * 19);
    eprintln!("role table: {cells} cells, {refused} refused with the database unchanged");

    // Allowed retries and cancels are audited.
    let (_, audit) = w
        .send(&w.admin, "GET", "/api/v1/audit?action=job.retry", None)
        .await;
    assert!(audit.contains("job.retry"), "{audit}");
    let (_, audit) = w
        .send(&w.admin, "GET", "/api/v1/audit?action=job.cancel", None)
        .await;
    assert!(audit.contains("job.cancel"), "{audit}");
}

/// Finding 3: a user with only VM.Audit cannot change a template (API and page), and one with
/// rights on another VM cannot list, read, follow, retry or cancel root's job; the job's
/// submitter on the same cluster can, the same user id on another cluster cannot.
#[tokio::test]
async fn finding_3_templates_and_jobs_need_a_role_or_the_guest() {
    let mut w = world().await;
    let alice = Who {
        label: "alice".into(),
        kind: Kind::Plain,
        auth: login(&w.app, "alice", "alice", "pve", "lab").await,
    };
    let (method, path, body, _) = w.prepare(Op::TemplateEdit).await;
    let name = path.rsplit('/').next().unwrap().to_owned();
    let before = w.app.state.store.get_template_by_name(&name).await.unwrap();
    assert_eq!(w.send(&alice, method, &path, body).await.0, 403);
    let Auth::Cookie { cookie, csrf } = &alice.auth else {
        unreachable!()
    };
    let page = w
        .app
        .client
        .post(format!("{}/templates/{name}/edit", w.app.address))
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("app", "Mine"),
            ("script_name", "20-key.sh"),
            ("script_content", "echo key"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        w.app.state.store.get_template_by_name(&name).await.unwrap(),
        before,
        "template unchanged"
    );
    let templates = w
        .send(&alice, "GET", &format!("/templates/{name}"), None)
        .await;
    assert_eq!(templates.0, 200, "reading templates stays open");
    for path in [
        "/settings/roles",
        "/audit",
        "/templates/new",
        &format!("/templates/{name}/edit"),
    ] {
        let (status, page) = w.send(&alice, "GET", path, None).await;
        assert_eq!(status, 403, "{path}");
        assert!(page.contains("<html"), "{path} answers the 403 page");
    }
    assert!(
        !templates.1.contains("href=\"/audit\"")
            && !templates.1.contains("href=\"/settings/roles\""),
        "the navigation hides what alice may not open"
    );
    assert!(
        !templates.1.contains("/templates/new"),
        "no New template for alice"
    );
    assert!(
        !templates.1.contains(&format!("/templates/{name}/edit")),
        "no edit control for alice"
    );
    assert!(
        !templates.1.contains(&format!("/templates/{name}/delete")),
        "no delete control for alice"
    );

    let dave = Who {
        label: "dave".into(),
        kind: Kind::Stranger,
        auth: login(&w.app, "dave", "davepw12", "pve", "lab").await,
    };
    let queued = w.root_job(false).await;
    let cancelled = w.root_job(true).await;
    let before = snapshot(&w.pool).await;
    let list: Value =
        serde_json::from_str(&w.send(&dave, "GET", "/api/v1/jobs", None).await.1).unwrap();
    assert!(
        list["jobs"].as_array().unwrap().is_empty(),
        "dave sees no job of root: {list}"
    );
    let page = w.send(&dave, "GET", "/jobs", None).await;
    assert!(
        !page.1.contains(&format!("/jobs/{queued}\"")),
        "the jobs page hides root's job"
    );
    for (method, path) in [
        ("GET", format!("/api/v1/jobs/{queued}")),
        ("GET", format!("/api/v1/jobs/{queued}/events")),
        ("GET", format!("/jobs/{queued}")),
        ("POST", format!("/api/v1/jobs/{cancelled}/retry")),
        ("POST", format!("/api/v1/jobs/{queued}/cancel")),
        ("POST", format!("/jobs/{cancelled}/retry")),
        ("POST", format!("/jobs/{queued}/cancel")),
    ] {
        let (status, _) = w.send(&dave, method, &path, None).await;
        assert_eq!(status, 404, "dave {method} {path}");
    }
    assert_eq!(before, snapshot(&w.pool).await, "nothing changed");

    // alice (VM.Audit on the guest) reads, cannot control; the page shows no Retry.
    assert_eq!(
        w.send(&alice, "GET", &format!("/api/v1/jobs/{cancelled}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        w.send(
            &alice,
            "POST",
            &format!("/api/v1/jobs/{cancelled}/retry"),
            None
        )
        .await
        .0,
        403
    );
    let page = w
        .send(&alice, "GET", &format!("/jobs/{cancelled}"), None)
        .await
        .1;
    assert!(
        !page.contains(&format!("/jobs/{cancelled}/retry")),
        "no Retry for alice"
    );

    // root@pam of the other cluster is not the submitter.
    let other = Who {
        label: "root@other".into(),
        kind: Kind::OtherCluster,
        auth: login(&w.app, "root", &w.sim.root_password.clone(), "pam", "other").await,
    };
    assert_eq!(
        w.send(
            &other,
            "POST",
            &format!("/api/v1/jobs/{cancelled}/retry"),
            None
        )
        .await
        .0,
        404
    );
    // The submitter (ed) on its own cluster may retry its own job.
    let ed = Who {
        label: "ed".into(),
        kind: Kind::Editor,
        auth: login(&w.app, "ed", "edpw1234", "pve", "lab").await,
    };
    let own = w
        .app
        .state
        .store
        .create_container_with_job(
            &NewContainer {
                cluster_id: w.lab,
                node: "pve1".into(),
                vmid: 130,
                hostname: "ed-ct".into(),
                template_id: None,
                status: ctforge::status::RecordStatus::Creating,
                spec_json: "{}".into(),
                root_password_sealed: None,
                created_by: "ed@pve".into(),
            },
            &NewJob {
                kind: "create_container".into(),
                container_id: None,
                node: Some("pve1".into()),
                payload_json: "{}".into(),
                created_by: "ed@pve".into(),
            },
        )
        .await
        .unwrap()
        .1;
    assert_eq!(
        w.send(&ed, "POST", &format!("/api/v1/jobs/{own}/cancel"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        w.send(&ed, "POST", &format!("/api/v1/jobs/{own}/retry"), None)
            .await
            .0,
        200
    );
    let audit: Value = serde_json::from_str(
        &w.send(&w.admin, "GET", "/api/v1/audit?actor=ed@pve", None)
            .await
            .1,
    )
    .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["job.retry", "job.cancel", "login"],
        "retry and cancel are audited"
    );
}

/// Finding 4: moving a cluster needs every secret again, `http://` needs the configuration's
/// `allow_insecure_http`, and Test / default are an admin's — a Proxmox administrator of the
/// other cluster gets none of it.
#[tokio::test]
async fn finding_4_cluster_moves_need_secrets_and_https() {
    let sim = {
        ctforge::install_crypto_provider();
        common::sim(SCENARIO, |c| c.with_nodes(1)).await
    };
    let clusters = vec![
        bootstrap(&sim, "lab", true),
        bootstrap(&sim, "other", false),
        ClusterBootstrap {
            name: "plain".into(),
            url: "http://127.0.0.1:9".into(),
            fingerprint: None,
            default: false,
            allow_insecure_http: true,
            ..common::sim_cluster(&sim)
        },
    ];
    let app = common::spawn_app_with("sqlite", move |c| c.clusters = clusters).await;
    let pool = sqlx::SqlitePool::connect(&app.state.config.database_url())
        .await
        .unwrap();
    let lab = app.state.store.get_cluster_by_name("lab").await.unwrap();
    let w_admin = Who {
        label: "root".into(),
        kind: Kind::Admin,
        auth: login(&app, "root", &sim.root_password, "pam", "lab").await,
    };
    let w = World {
        app,
        sim,
        lab: lab.id,
        pool,
        admin: w_admin.clone(),
        serial: 0,
    };
    let before = snapshot(&w.pool).await;

    // A new URL without the secrets: refused, field by field.
    let (status, body) = w
        .send(&w.admin, "PUT", &format!("/api/v1/clusters/{}", lab.id), Some(json!({ "name": "lab", "url": "https://listener.example:8006", "token_id": w.sim.token_id, "fingerprint": w.sim.fingerprint, "default": true })))
        .await;
    assert_eq!(status, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert!(err["fields"]["token_secret"].is_string(), "{err}");
    assert!(
        err["fields"]["ssh_password"].is_string(),
        "the stored SSH password too: {err}"
    );
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("enter every secret again"),
        "{err}"
    );
    // A new SSH port is a new SSH endpoint too.
    let (status, _) = w
        .send(&w.admin, "PUT", &format!("/api/v1/clusters/{}", lab.id), Some(json!({ "name": "lab", "url": w.sim.base_url, "token_id": w.sim.token_id, "fingerprint": w.sim.fingerprint, "ssh_port": 2222, "default": true })))
        .await;
    assert_eq!(status, 400);
    // http:// without allow_insecure_http: refused, on edit and on add.
    for (method, path, name) in [
        ("PUT", format!("/api/v1/clusters/{}", lab.id), "lab"),
        ("POST", "/api/v1/clusters".to_owned(), "new"),
    ] {
        let (status, body) = w
            .send(&w.admin, method, &path, Some(json!({ "name": name, "url": "http://listener.example:8006", "token_id": w.sim.token_id, "token_secret": "s", "ssh_password": "p", "default": true })))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("allow_insecure_http"), "{body}");
    }
    assert_eq!(before, snapshot(&w.pool).await, "nothing changed");
    // The configured exception: `plain` may stay on http.
    let plain = w
        .app
        .state
        .store
        .get_cluster_by_name("plain")
        .await
        .unwrap();
    let (status, body) = w
        .send(
            &w.admin,
            "PUT",
            &format!("/api/v1/clusters/{}", plain.id),
            Some(
                json!({ "name": "plain", "url": "http://127.0.0.1:9", "token_id": w.sim.token_id, "ssh_port": plain.ssh_port }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // With every secret typed again the move is accepted.
    let (status, body) = w
        .send(&w.admin, "PUT", &format!("/api/v1/clusters/{}", lab.id), Some(json!({ "name": "lab", "url": format!("{}/", w.sim.base_url), "token_id": w.sim.token_id, "token_secret": w.sim.token_secret, "ssh_password": w.sim.root_password, "ssh_port": 2222, "fingerprint": w.sim.fingerprint, "default": true })))
        .await;
    assert_eq!(status, 200, "{body}");

    // root@pam of `other` is a Proxmox administrator there, and no ctforge admin.
    let other = Who {
        label: "root@other".into(),
        kind: Kind::OtherCluster,
        auth: login(&w.app, "root", &w.sim.root_password.clone(), "pam", "other").await,
    };
    let before = snapshot(&w.pool).await;
    assert_eq!(
        w.send(
            &other,
            "POST",
            &format!("/api/v1/clusters/{}/test", lab.id),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(w.send(&other, "PUT", &format!("/api/v1/clusters/{}", lab.id), Some(json!({ "name": "lab", "url": w.sim.base_url, "token_id": w.sim.token_id, "fingerprint": w.sim.fingerprint, "default": true }))).await.0, 403);
    let Auth::Cookie { cookie, csrf } = &other.auth else {
        unreachable!()
    };
    for action in ["test", "default", "delete"] {
        let r = w
            .app
            .client
            .post(format!(
                "{}/settings/clusters/{}/{action}",
                w.app.address, plain.id
            ))
            .header("cookie", cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "web {action}");
        assert!(
            r.text().await.unwrap().contains("admin"),
            "the 403 page says why"
        );
    }
    let page = w.send(&other, "GET", "/settings/clusters", None).await.1;
    assert!(
        !page.contains("/test\"") && !page.contains("Add a cluster"),
        "no controls for non-admins"
    );
    assert_eq!(before, snapshot(&w.pool).await, "nothing changed");
    // The admin's page has them, and "Make default" works.
    let page = w.send(&w.admin, "GET", "/settings/clusters", None).await.1;
    assert!(page.contains("Make default") && page.contains("Add a cluster"));
    let Auth::Cookie { cookie, csrf } = &w.admin.auth else {
        unreachable!()
    };
    let r = w
        .app
        .client
        .post(format!(
            "{}/settings/clusters/{}/default",
            w.app.address, plain.id
        ))
        .header("cookie", cookie)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        w.app
            .state
            .store
            .get_cluster(plain.id)
            .await
            .unwrap()
            .is_default
    );
    assert!(
        !w.app
            .state
            .store
            .get_cluster(lab.id)
            .await
            .unwrap()
            .is_default
    );
    let (_, audit) = w
        .send(
            &w.admin,
            "GET",
            "/api/v1/audit?action=cluster.default",
            None,
        )
        .await;
    assert!(audit.contains("plain"), "audited: {audit}");
}

/// The last admin cannot be revoked, nor can the cluster holding it be deleted; roles are
/// managed in Settings (web) with CSRF and audited.
#[tokio::test]
async fn the_last_admin_stays() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| c.with_nodes(1)).await;
    let clusters = vec![
        bootstrap(&sim, "lab", true),
        bootstrap(&sim, "other", false),
    ];
    // The configured admin names no existing cluster: stored grants are all there is.
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = clusters;
        c.auth.admins = vec!["root@pam@gone".into()];
    })
    .await;
    let lab = app.state.store.get_cluster_by_name("lab").await.unwrap().id;
    let grant = app
        .state
        .store
        .insert_role_grant("root@pam", lab, "admin", "setup")
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&app.state.config.database_url())
        .await
        .unwrap();
    let root = Who {
        label: "root".into(),
        kind: Kind::Admin,
        auth: login(&app, "root", &sim.root_password, "pam", "lab").await,
    };
    let w = World {
        app,
        sim,
        lab,
        pool,
        admin: root.clone(),
        serial: 0,
    };

    let before = snapshot(&w.pool).await;
    let (status, body) = w
        .send(&root, "DELETE", &format!("/api/v1/roles/{grant}"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("last ctforge admin"), "{body}");
    let (status, body) = w
        .send(&root, "DELETE", &format!("/api/v1/clusters/{lab}"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(before, snapshot(&w.pool).await);

    // Through the Settings page: a second admin on the other cluster, then the first goes.
    let Auth::Cookie { cookie, csrf } = &root.auth else {
        unreachable!()
    };
    let page = w.send(&root, "GET", "/settings/roles", None).await;
    assert_eq!(page.0, 200);
    assert!(page.1.contains("root@pam@lab"), "{}", page.1);
    let no_csrf = w
        .app
        .client
        .post(format!("{}/settings/roles", w.app.address))
        .header("cookie", cookie)
        .form(&[("identity", "root@pam@other"), ("role", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403, "CSRF is checked");
    let bad = w
        .app
        .client
        .post(format!("{}/settings/roles", w.app.address))
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("identity", "root@pam"),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "an identity names its cluster");
    let ok = w
        .app
        .client
        .post(format!("{}/settings/roles", w.app.address))
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("identity", "root@pam@other"),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let revoke = w
        .app
        .client
        .post(format!("{}/settings/roles/{grant}/revoke", w.app.address))
        .header("cookie", cookie)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 303);
    // root@pam@lab is no admin any more; root@pam@other is.
    assert_eq!(w.send(&root, "GET", "/settings/roles", None).await.0, 403);
    let other = Who {
        label: "root@other".into(),
        kind: Kind::Admin,
        auth: login(&w.app, "root", &w.sim.root_password.clone(), "pam", "other").await,
    };
    let roles: Value =
        serde_json::from_str(&w.send(&other, "GET", "/api/v1/roles", None).await.1).unwrap();
    let identities: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["identity"].as_str().unwrap())
        .collect();
    assert_eq!(identities, ["root@pam@other"]);
    let audit: Value =
        serde_json::from_str(&w.send(&other, "GET", "/api/v1/audit", None).await.1).unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"role.grant") && actions.contains(&"role.revoke"),
        "{actions:?}"
    );
}

/// A bulk job is read, retried and cancelled per item: the privilege on every one of its
/// containers, in the job's cluster.
#[tokio::test]
async fn bulk_jobs_need_the_privilege_on_every_container() {
    let w = world().await;
    let payload = json!({ "action": "stop", "ids": ["lab:100", "lab:101"], "timeout": 60, "remote": "127.0.0.1", "cluster_id": w.lab });
    let job = w
        .app
        .state
        .jobs
        .enqueue(&NewJob {
            kind: "bulk_action".into(),
            container_id: None,
            node: None,
            payload_json: payload.to_string(),
            created_by: "root@pam".into(),
        })
        .await
        .unwrap();
    w.app.state.jobs.cancel(job, "root@pam").await.unwrap();
    let as_user = |user: &'static str, pw: &'static str| {
        let app = &w.app;
        async move {
            Who {
                label: user.into(),
                kind: Kind::Plain,
                auth: login(app, user, pw, "pve", "lab").await,
            }
        }
    };
    // dave holds rights on CT 100 only: not on every container of the job.
    let dave = as_user("dave", "davepw12").await;
    assert_eq!(
        w.send(&dave, "GET", &format!("/api/v1/jobs/{job}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        w.send(&dave, "POST", &format!("/api/v1/jobs/{job}/retry"), None)
            .await
            .0,
        404
    );
    // alice may see every container, and stop none.
    let alice = as_user("alice", "alice").await;
    assert_eq!(
        w.send(&alice, "GET", &format!("/api/v1/jobs/{job}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        w.send(&alice, "POST", &format!("/api/v1/jobs/{job}/retry"), None)
            .await
            .0,
        403
    );
    // erin holds VM.PowerMgmt on every CT: she may retry root's stop.
    let erin = as_user("erin", "erinpw12").await;
    let (status, body) = w
        .send(&erin, "POST", &format!("/api/v1/jobs/{job}/retry"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        w.send(&erin, "POST", &format!("/api/v1/jobs/{job}/cancel"), None)
            .await
            .0,
        200
    );
}
