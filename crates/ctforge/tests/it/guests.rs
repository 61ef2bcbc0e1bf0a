//! Guests of both kinds over real HTTP against the simulator (memory backend): containers from
//! the scenario and VMs created through the simulator's own qemu API, listed together by
//! `/api/v1/guests` (each item with its `type`, `?type=` filters, sorting) and the dashboard
//! (Type column and filter), while `/api/v1/containers` keeps listing, reading and acting on
//! containers only; a VM read, started, stopped, shut down (ACPI) and rebooted through
//! `/api/v1/guests/{id}`, stopped in bulk, deleted (purged); permission refusals on the exact
//! `/vms/<vmid>` for a user with rights on one VM only.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::{Duration, Instant};

use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

/// Two containers; vera may power-manage VM 300 and only see VM 301.
const SCENARIO: &str = r#"
node_count = 2

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"

[[containers]]
vmid = 202
node = "pve2"
hostname = "db1"
status = "stopped"

[[users]]
userid = "vera@pve"
password = "verapw"
role = "PVEVMUser"
path = "/vms/300"

[[users]]
userid = "vera@pve"
password = "verapw"
role = "PVEAuditor"
path = "/vms/301"
"#;

type Session = common::ApiSession;

async fn setup() -> (SimHandle, common::TestApp) {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| {
        c.with_nodes(2).with_timings(Timings::instant())
    })
    .await;
    let pve = common::pve::Pve::new(&sim);
    pve.create_vm(300, "pve1", "vm-web", true).await;
    pve.create_vm(301, "pve2", "vm-db", false).await;
    let cluster = common::sim_cluster(&sim);
    // Workers run: bulk actions are jobs.
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
    })
    .await;
    (sim, app)
}

async fn login(app: &common::TestApp, user: &str, password: &str, realm: &str) -> Session {
    common::api_login(&app.client, &app.address, user, password, realm).await
}

async fn send(
    app: &common::TestApp,
    s: &Session,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf);
    if let Some(body) = body {
        r = r.json(body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(app: &common::TestApp, s: &Session, path: &str) -> (u16, Value) {
    send(app, s, reqwest::Method::GET, path, None).await
}

async fn post(app: &common::TestApp, s: &Session, path: &str) -> (u16, Value) {
    send(app, s, reqwest::Method::POST, path, None).await
}

/// `(vmid, type)` of a listing's items, in order.
fn kinds(listing: &Value) -> Vec<(u64, String)> {
    listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["vmid"].as_u64().unwrap(),
                i["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn step_messages(outcome: &Value) -> Vec<String> {
    outcome["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["message"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_job(app: &common::TestApp, s: &Session, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = get(app, s, &format!("/api/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn guests_list_both_kinds_and_containers_stay_containers_only() {
    let (sim, app) = setup().await;
    let root = login(&app, "root", &sim.root_password, "pam").await;

    let (status, all) = get(&app, &root, "/api/v1/guests").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        kinds(&all),
        [
            (200, "lxc".to_owned()),
            (202, "lxc".to_owned()),
            (300, "qemu".to_owned()),
            (301, "qemu".to_owned()),
        ]
    );
    let vm = &all["items"][2];
    assert_eq!(
        (&vm["hostname"], &vm["status"], &vm["node"], &vm["managed"]),
        (
            &json!("vm-web"),
            &json!("running"),
            &json!("pve1"),
            &json!(false)
        )
    );
    assert_eq!(all["counts"]["total"], 4);
    assert_eq!(all["counts"]["running"], 2);

    let (_, vms) = get(&app, &root, "/api/v1/guests?type=qemu").await;
    assert_eq!(
        kinds(&vms),
        [(300, "qemu".to_owned()), (301, "qemu".to_owned())]
    );
    assert_eq!(vms["counts"]["total"], 2, "counts follow the type filter");
    let (_, cts) = get(&app, &root, "/api/v1/guests?type=lxc").await;
    assert_eq!(
        kinds(&cts),
        [(200, "lxc".to_owned()), (202, "lxc".to_owned())]
    );
    let (_, sorted) = get(&app, &root, "/api/v1/guests?sort=type&dir=desc").await;
    assert_eq!(sorted["items"][0]["type"], "qemu", "{sorted}");

    // The containers API is what it was: containers only, whatever `type` asks for.
    for path in [
        "/api/v1/containers",
        "/api/v1/containers?type=qemu",
        "/api/v1/containers?q=vm-",
    ] {
        let (status, listing) = get(&app, &root, path).await;
        assert_eq!(status, 200, "{listing}");
        assert!(
            kinds(&listing).iter().all(|(_, k)| k == "lxc"),
            "{path}: {listing}"
        );
    }
    let (_, cts) = get(&app, &root, "/api/v1/containers").await;
    assert_eq!(cts["counts"]["total"], 2);
    // Named by its id, a VM is answered there too (with its type), so a client that created
    // one through `POST /api/v1/containers` can follow it.
    let (status, body) = get(&app, &root, "/api/v1/containers/sim:300").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "qemu");

    // One guest of each kind through the guests API.
    let (status, detail) = get(&app, &root, "/api/v1/guests/sim:300").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["type"], "qemu");
    assert_eq!(detail["status"], "running");
    assert_eq!(detail["events"]["stream"], "/api/v1/guests/sim:300/events");
    let (status, detail) = get(&app, &root, "/api/v1/guests/sim:200").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["type"], "lxc");

    // The dashboard: a Type column, and the filter in the URL.
    let (status, page) = get(&app, &root, "/?view=table").await;
    assert_eq!(status, 200);
    let page = page.as_str().unwrap().to_owned();
    assert!(page.contains(">Type<"), "a Type column");
    assert!(page.contains(r#"data-type="qemu""#) && page.contains(r#"data-type="lxc""#));
    let (_, page) = get(&app, &root, "/?view=table&type=qemu").await;
    let page = page.as_str().unwrap();
    assert!(page.contains(r#"data-vmid="300""#) && !page.contains(r#"data-vmid="200""#));
    assert!(
        page.contains(r#"<option value="qemu" selected"#),
        "the filter shows its choice"
    );
    // The node page lists its VM with the container.
    let (_, node) = get(&app, &root, "/nodes/pve1?cluster=sim").await;
    let node = node.as_str().unwrap();
    assert!(node.contains("vm-web") && node.contains("web1"));
}

#[tokio::test]
async fn vm_lifecycle_and_bulk_through_the_guests_api() {
    let (sim, app) = setup().await;
    let pve = common::pve::Pve::new(&sim);
    let root = login(&app, "root", &sim.root_password, "pam").await;

    // State is checked first, with the VM named as such.
    let (status, body) = post(&app, &root, "/api/v1/guests/sim:300/start").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("VM 300 is already running"),
        "{body}"
    );

    let (status, body) = post(&app, &root, "/api/v1/guests/sim:301/start").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["type"], &body["status"]),
        (&json!("qemu"), &json!("running"))
    );
    assert_eq!(step_messages(&body), ["started VM 301"]);
    assert_eq!(pve.vm_status("pve2", 301).await.as_deref(), Some("running"));

    let (status, body) = post(&app, &root, "/api/v1/guests/sim:300/reboot").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pve.vm_status("pve1", 300).await.as_deref(), Some("running"));

    let (status, body) = post(&app, &root, "/api/v1/guests/sim:300/shutdown?timeout=30").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forced"], false, "{body}");
    assert_eq!(
        step_messages(&body),
        ["shut down VM 300 gracefully (ACPI)"],
        "no agent configured: Proxmox powers down by ACPI"
    );
    assert_eq!(pve.vm_status("pve1", 300).await.as_deref(), Some("stopped"));

    let (status, body) = post(&app, &root, "/api/v1/guests/sim:301/stop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pve.vm_status("pve2", 301).await.as_deref(), Some("stopped"));

    // The listing shows what happened.
    let (_, vms) = get(&app, &root, "/api/v1/guests?type=qemu&status=stopped").await;
    assert_eq!(vms["matching"], 2, "{vms}");

    // Bulk: start both VMs and a container in one job.
    let (status, body) = send(
        &app,
        &root,
        reqwest::Method::POST,
        "/api/v1/guests/bulk",
        Some(&json!({ "action": "start", "ids": ["sim:300", "sim:301", "sim:202"] })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app, &root, body["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let items = job["result"]["items"].as_array().unwrap();
    assert!(items.iter().all(|i| i["ok"] == true), "{job}");
    assert!(
        items[0]["message"]
            .as_str()
            .unwrap()
            .contains("started VM 300"),
        "{job}"
    );
    assert_eq!(pve.vm_status("pve1", 300).await.as_deref(), Some("running"));
    assert_eq!(pve.vm_status("pve2", 301).await.as_deref(), Some("running"));

    // Delete a running VM: stopped first, then destroyed with purge.
    let (status, body) = send(
        &app,
        &root,
        reqwest::Method::DELETE,
        "/api/v1/guests/sim:301",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        step_messages(&body),
        [
            "stopped VM 301 before deleting it",
            "destroyed VM 301 (purged)"
        ]
    );
    assert_eq!(pve.vm_status("pve2", 301).await, None, "gone from Proxmox");
    let (status, _) = get(&app, &root, "/api/v1/guests/sim:301").await;
    assert_eq!(status, 404);

    // Audited as every lifecycle action, with the guest's type.
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    let vm_start = audit
        .iter()
        .find(|e| e.action == "ct.start" && e.target == "ct:sim:301" && e.outcome == "ok")
        .unwrap();
    assert!(
        vm_start.detail_json.contains(r#""type":"qemu""#),
        "{}",
        vm_start.detail_json
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "ct.delete" && e.target == "ct:sim:301" && e.outcome == "ok")
    );
}

#[tokio::test]
async fn vm_permissions_are_proxmoxs_on_the_exact_path() {
    let (sim, app) = setup().await;
    let pve = common::pve::Pve::new(&sim);
    let vera = login(&app, "vera", "verapw", "pve").await;

    // She sees the two VMs she holds rights on, and nothing else.
    let (status, listing) = get(&app, &vera, "/api/v1/guests").await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(
        kinds(&listing),
        [(300, "qemu".to_owned()), (301, "qemu".to_owned())]
    );
    let (_, cts) = get(&app, &vera, "/api/v1/containers").await;
    assert_eq!(kinds(&cts), [], "no container of hers");

    // VM.PowerMgmt on /vms/300 only.
    let (status, body) = post(&app, &vera, "/api/v1/guests/sim:300/stop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pve.vm_status("pve1", 300).await.as_deref(), Some("stopped"));
    let (status, body) = post(&app, &vera, "/api/v1/guests/sim:301/start").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(pve.vm_status("pve2", 301).await.as_deref(), Some("stopped"));
    let (status, body) = post(&app, &vera, "/api/v1/guests/sim:200/stop").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = send(
        &app,
        &vera,
        reqwest::Method::DELETE,
        "/api/v1/guests/sim:300",
        None,
    )
    .await;
    assert_eq!(status, 403, "VM.Allocate is not hers: {body}");
    assert!(pve.vm_status("pve1", 300).await.is_some());
    let (status, _) = get(&app, &vera, "/api/v1/guests/sim:301").await;
    assert_eq!(status, 200, "VM.Audit reads");
    let (status, _) = get(&app, &vera, "/api/v1/guests/sim:202").await;
    assert_eq!(status, 403);

    // Bulk: each guest on its own path.
    let (status, body) = send(
        &app,
        &vera,
        reqwest::Method::POST,
        "/api/v1/guests/bulk",
        Some(&json!({ "action": "start", "ids": ["sim:300", "sim:301"] })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app, &vera, body["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let items = job["result"]["items"].as_array().unwrap();
    assert_eq!(
        (&items[0]["ok"], &items[1]["ok"]),
        (&json!(true), &json!(false)),
        "{job}"
    );
    assert_eq!(pve.vm_status("pve1", 300).await.as_deref(), Some("running"));
    assert_eq!(pve.vm_status("pve2", 301).await.as_deref(), Some("stopped"));
}
