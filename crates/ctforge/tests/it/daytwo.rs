//! Day-two operations over real HTTP against the simulator (memory backend): config edit with
//! its diff and "pending until restart", resize (grow only, Proxmox's refusal text),
//! snapshots (tree, rollback, delete), clone (full, linked from a template, the record carried
//! over) and convert to template — each behind Proxmox's privileges, the container's lock and
//! an audit entry.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge::storage::model::NewContainer;
use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

const PW: &str = "userpw123";

fn scenario() -> String {
    format!(
        r#"
node_count = 2

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"

[[containers]]
vmid = 202
node = "pve2"
hostname = "legacy-db"
status = "stopped"

[[users]]
userid = "viewer@pve"
password = "{PW}"
role = "PVEVMUser"
path = "/vms/200"

[[users]]
userid = "vmadmin@pve"
password = "{PW}"
role = "PVEVMAdmin"
path = "/vms/200"
"#
    )
}

async fn setup() -> (SimHandle, common::TestApp) {
    ctforge::install_crypto_provider();
    let sim = common::sim(&scenario(), |c| {
        c.with_nodes(2).with_timings(Timings::instant())
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![cluster];
        config.workers.concurrency = 0;
    })
    .await;
    (sim, app)
}

async fn call(
    app: &common::TestApp,
    s: &common::ApiSession,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn root(app: &common::TestApp, sim: &SimHandle) -> common::ApiSession {
    common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await
}

async fn audit(app: &common::TestApp) -> Vec<(String, String)> {
    app.state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

use reqwest::Method;

#[tokio::test]
async fn config_edit_shows_the_diff_applies_it_and_names_what_waits_for_a_restart() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    let (st, cfg) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/config",
        None,
    )
    .await;
    assert_eq!(st, 200, "{cfg}");
    assert_eq!(cfg["running"], true);
    let old_net0 = cfg["values"]["net0"].as_str().unwrap().to_owned();
    let hwaddr = old_net0
        .split(',')
        .find(|p| p.starts_with("hwaddr="))
        .unwrap()
        .to_owned();

    let edit = json!({
        "memory": 1536,
        "nameserver": "192.0.2.53",
        "net": {"0": {"ip": "192.0.2.10/24", "gw": "192.0.2.1", "tag": 20, "firewall": true}},
    });
    let (st, preview) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/config/preview",
        Some(edit.clone()),
    )
    .await;
    assert_eq!(st, 200, "{preview}");
    let keys: Vec<&str> = preview["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["memory", "nameserver", "net0"]);
    let net0 = &preview["changes"][2];
    assert_eq!(net0["current"], old_net0.as_str());
    let new_net0 = net0["new"].as_str().unwrap();
    assert!(
        new_net0.contains(&hwaddr),
        "the MAC address is kept: {new_net0}"
    );
    assert!(new_net0.contains("tag=20") && new_net0.contains("ip=192.0.2.10/24"));

    // Nothing applied by the preview.
    let (_, again) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/config",
        None,
    )
    .await;
    assert_eq!(again["values"]["memory"], cfg["values"]["memory"]);

    let mut apply = edit.clone();
    apply["digest"] = preview["digest"].clone();
    let (st, out) = call(
        &app,
        &s,
        Method::PUT,
        "/api/v1/containers/sim:200/config",
        Some(apply),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    // Memory and the interface change live; the DNS server waits for the next start, as in
    // Proxmox.
    let pending: Vec<&str> = out["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["nameserver"], "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("pending until restart: nameserver")
    );

    let (_, detail) = call(&app, &s, Method::GET, "/api/v1/containers/sim:200", None).await;
    assert_eq!(detail["maxmem"], 1536 * 1024 * 1024, "{detail}");

    // A stale digest is refused with Proxmox's text.
    let (st, err) = call(
        &app,
        &s,
        Method::PUT,
        "/api/v1/containers/sim:200/config",
        Some(json!({"cores": 2, "digest": preview["digest"]})),
    )
    .await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("detected modified configuration")
    );

    // Invalid fields are named, nothing sent.
    let (st, err) = call(
        &app,
        &s,
        Method::PUT,
        "/api/v1/containers/sim:200/config",
        Some(json!({"memory": 4, "net": {"1": {"ip": "dhcp", "gw": "192.0.2.1"}}})),
    )
    .await;
    assert_eq!(st, 400, "{err}");

    let actions = audit(&app).await;
    assert!(
        actions.contains(&("ct.config".into(), "ok".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("ct.config".into(), "refused".into())),
        "{actions:?}"
    );
}

#[tokio::test]
async fn each_operation_asks_for_proxmox_privileges_on_the_guest() {
    let (sim, app) = setup().await;
    let viewer = common::api_login(&app.client, &app.address, "viewer", PW, "pve").await;
    let (st, err) = call(
        &app,
        &viewer,
        Method::PUT,
        "/api/v1/containers/sim:200/config",
        Some(json!({"memory": 1024})),
    )
    .await;
    assert_eq!(st, 403, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("VM.Config.Memory"),
        "{err}"
    );
    let (st, err) = call(
        &app,
        &viewer,
        Method::POST,
        "/api/v1/containers/sim:200/snapshots",
        Some(json!({"name": "before"})),
    )
    .await;
    assert_eq!(st, 403, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("VM.Snapshot"),
        "{err}"
    );
    let (st, _) = call(
        &app,
        &viewer,
        Method::POST,
        "/api/v1/containers/sim:200/resize",
        Some(json!({"disk": "rootfs", "size": "+1G"})),
    )
    .await;
    assert_eq!(st, 403);
    // Reading the snapshots is VM.Audit, which the viewer has.
    let (st, _) = call(
        &app,
        &viewer,
        Method::GET,
        "/api/v1/containers/sim:200/snapshots",
        None,
    )
    .await;
    assert_eq!(st, 200);

    let admin = common::api_login(&app.client, &app.address, "vmadmin", PW, "pve").await;
    let (st, out) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/containers/sim:200/snapshots",
        Some(json!({"name": "before", "description": "by the VM admin"})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    // A clone needs VM.Allocate on the new VMID, which the VM admin of /vms/200 lacks.
    let (st, err) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/containers/sim:200/clone",
        Some(json!({"newid": 300, "snapshot": "before"})),
    )
    .await;
    assert_eq!(st, 403, "{err}");
    assert!(err["error"].as_str().unwrap().contains("/vms/300"), "{err}");
    let _ = root(&app, &sim).await;
    let actions = audit(&app).await;
    assert!(
        actions.contains(&("ct.config".into(), "denied".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("ct.snapshot".into(), "ok".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("ct.clone".into(), "denied".into())),
        "{actions:?}"
    );
}

#[tokio::test]
async fn operations_wait_for_the_containers_lock() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    assert!(
        app.state
            .locks
            .try_lock("ct:sim:200", "someone", 60_000)
            .await
            .unwrap()
    );
    for (method, path, body) in [
        (
            Method::PUT,
            "/api/v1/containers/sim:200/config",
            json!({"memory": 1024}),
        ),
        (
            Method::POST,
            "/api/v1/containers/sim:200/snapshots",
            json!({"name": "s1"}),
        ),
        (
            Method::POST,
            "/api/v1/containers/sim:200/resize",
            json!({"disk": "rootfs", "size": "+1G"}),
        ),
        (
            Method::POST,
            "/api/v1/containers/sim:200/clone",
            json!({"newid": 310}),
        ),
    ] {
        let (st, err) = call(&app, &s, method, path, Some(body)).await;
        assert_eq!(st, 409, "{path}: {err}");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("another action is running"),
            "{err}"
        );
    }
    assert!(
        app.state
            .locks
            .unlock("ct:sim:200", "someone")
            .await
            .unwrap()
    );
    let (st, out) = call(
        &app,
        &s,
        Method::PUT,
        "/api/v1/containers/sim:200/config",
        Some(json!({"memory": 1024})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
}

#[tokio::test]
async fn snapshots_form_a_tree_and_roll_back() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    for name in ["s1", "s2"] {
        let (st, out) = call(
            &app,
            &s,
            Method::POST,
            "/api/v1/containers/sim:200/snapshots",
            Some(json!({"name": name, "description": format!("snapshot {name}")})),
        )
        .await;
        assert_eq!(st, 200, "{out}");
        assert!(
            out["upid"].as_str().unwrap().contains(":vzsnapshot:200:"),
            "{out}"
        );
    }
    let (st, list) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/snapshots",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(list["current_parent"], "s2");
    assert_eq!(list["snapshots"][0]["name"], "s1");
    assert_eq!(list["snapshots"][1]["depth"], 1);
    assert_eq!(list["snapshots"][0]["newer"], json!(["s2"]));

    // A taken name is refused with Proxmox's text.
    let (st, err) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/snapshots",
        Some(json!({"name": "s1"})),
    )
    .await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("snapshot name 's1' already used")
    );

    let (st, out) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/snapshots/s1/rollback",
        Some(json!({"start": true})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let (_, list) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/snapshots",
        None,
    )
    .await;
    assert_eq!(list["current_parent"], "s1");
    let (st, out) = call(
        &app,
        &s,
        Method::DELETE,
        "/api/v1/containers/sim:200/snapshots/s2",
        None,
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let (_, list) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/snapshots",
        None,
    )
    .await;
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1);
    let actions = audit(&app).await;
    for want in ["ct.snapshot", "ct.rollback", "ct.snapshot_delete"] {
        assert!(
            actions.contains(&(want.into(), "ok".into())),
            "{want} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn resize_only_grows() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    let (_, cfg) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/config",
        None,
    )
    .await;
    let before = cfg["values"]["rootfs"].as_str().unwrap().to_owned();
    let (st, out) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/resize",
        Some(json!({"disk": "rootfs", "size": "+2G"})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert!(
        out["upid"].as_str().unwrap().contains(":resize:200:"),
        "{out}"
    );
    let (_, cfg) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:200/config",
        None,
    )
    .await;
    let after = cfg["values"]["rootfs"].as_str().unwrap();
    assert_ne!(before, after, "size changed");
    let (st, err) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/resize",
        Some(json!({"disk": "rootfs", "size": "1G"})),
    )
    .await;
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["error"], "unable to shrink disk size", "{err}");
    let (st, _) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/resize",
        Some(json!({"disk": "rootfs", "size": "-1G"})),
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn clones_and_templates_follow_proxmox_rules() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    let cluster_id = common::home_cluster(&app.state).await;
    let record = app
        .state
        .store
        .create_container(&NewContainer {
            cluster_id,
            node: "pve2".into(),
            vmid: 202,
            hostname: "legacy-db".into(),
            spec_json: "{}".into(),
            created_by: "root@pam".into(),
            ..NewContainer::default()
        })
        .await
        .unwrap();

    // A running CT is cloned fully only from a snapshot.
    let (st, err) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/clone",
        Some(json!({"newid": 300})),
    )
    .await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("Cannot do full clones on a running container without snapshots")
    );

    // A linked clone needs a template.
    let (st, err) = call(
        &app,
        &s,
        Method::POST,
        &format!("/api/v1/containers/{record}/clone"),
        Some(json!({"newid": 301, "full": false})),
    )
    .await;
    assert_eq!(st, 409, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("Linked clone feature"),
        "{err}"
    );

    let (st, out) = call(
        &app,
        &s,
        Method::POST,
        &format!("/api/v1/containers/{record}/clone"),
        Some(json!({"newid": 302, "hostname": "legacy-copy"})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["new_vmid"], 302);
    let new_id = out["new_id"].as_i64().expect("the record is carried over");
    let copy = app.state.store.get_container(new_id).await.unwrap();
    assert_eq!((copy.vmid, copy.hostname.as_str()), (302, "legacy-copy"));

    let (st, out) = call(
        &app,
        &s,
        Method::POST,
        &format!("/api/v1/containers/{record}/template"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let (_, cfg) = call(
        &app,
        &s,
        Method::GET,
        &format!("/api/v1/containers/{record}/config"),
        None,
    )
    .await;
    assert_eq!(cfg["template"], true, "{cfg}");
    let (st, err) = call(
        &app,
        &s,
        Method::POST,
        &format!("/api/v1/containers/{record}/template"),
        None,
    )
    .await;
    assert_eq!(st, 409);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("you can't convert a template to a template")
    );
    let (st, out) = call(
        &app,
        &s,
        Method::POST,
        &format!("/api/v1/containers/{record}/clone"),
        Some(json!({"newid": 303, "full": false, "hostname": "linked"})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let (_, cfg) = call(
        &app,
        &s,
        Method::GET,
        "/api/v1/containers/sim:303/config",
        None,
    )
    .await;
    assert!(
        cfg["values"]["rootfs"]
            .as_str()
            .unwrap()
            .contains("base-202-disk-0/"),
        "{cfg}"
    );
    let actions = audit(&app).await;
    assert!(actions.contains(&("ct.clone".into(), "ok".into())));
    assert!(actions.contains(&("ct.template".into(), "ok".into())));
}

#[tokio::test]
async fn the_boot_log_streams_over_the_pct_channel() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    let r = app
        .client
        .get(format!("{}/api/v1/containers/sim:200/journal", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The memory backend has no journal and no syslog: the view ends at once and says so.
    let body = tokio::time::timeout(std::time::Duration::from_secs(20), r.text())
        .await
        .expect("the view ends")
        .unwrap();
    assert!(body.contains("event: end"), "{body}");
    assert!(body.contains("the log view ended"), "{body}");

    // Reading the guest's log needs console access, which the viewer role lacks on other CTs.
    let viewer = common::api_login(&app.client, &app.address, "viewer", PW, "pve").await;
    let r = app
        .client
        .get(format!("{}/api/v1/containers/sim:202/journal", app.address))
        .header("cookie", &viewer.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// A day-two operation's Proxmox task log reaches viewers of `…/task-log` live, line by line
/// and in order, before the operation answers; the dashboard then shows what waits for a
/// restart.
#[tokio::test]
async fn task_logs_stream_live_and_the_dashboard_shows_pending_changes() {
    let (sim, app) = setup().await;
    let s = root(&app, &sim).await;
    // Subscribed once the answer's headers are here.
    let mut stream = app
        .client
        .get(format!(
            "{}/api/v1/containers/sim:200/task-log?until_end=true",
            app.address
        ))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (st, out) = call(
        &app,
        &s,
        Method::POST,
        "/api/v1/containers/sim:200/snapshots",
        Some(json!({"name": "live", "description": "streamed"})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    let mut body = String::new();
    while let Ok(Some(chunk)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
            .await
            .unwrap_or(Ok(None))
    {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"start"), "{body}");
    assert_eq!(
        kinds.last(),
        Some(&"done"),
        "the stream ends with the task: {body}"
    );
    assert_eq!(events[0]["data"]["upid"], out["upid"], "{body}");
    assert!(events.iter().all(|e| e["step"] == "snapshot"), "{body}");
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "log")
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    let answered: Vec<&str> = out["task_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(!answered.is_empty(), "{out}");
    assert_eq!(lines, answered, "every line, in order");

    // A change Proxmox keeps pending on the running CT shows on the dashboard.
    let (st, out) = call(
        &app,
        &s,
        Method::PUT,
        "/api/v1/containers/sim:200/config",
        Some(json!({"nameserver": "192.0.2.53"})),
    )
    .await;
    assert_eq!(st, 200, "{out}");
    for view in ["/", "/?view=table"] {
        let page = app
            .client
            .get(format!("{}{view}", app.address))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("pending: nameserver"), "{view}: {page}");
        assert!(page.contains("/containers/sim:200/edit"), "{view}");
    }
}
