//! Day-two operations on a virtual machine over real HTTP against the simulator (memory
//! backend), through `/api/v1/guests/{id}/…` — the same paths and use-cases as containers:
//! config read and edit (the keys a VM has; a container's keys refused by field), disk resize,
//! snapshots (take, list, roll back, delete), clone, convert to template (Proxmox's refusals
//! relayed with its text) — each refused with 403 for a user holding only `PVEVMUser` on the
//! VM; and the VM's Edit and Snapshots pages showing the forms that apply to a VM.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge_pve_sim::{SimHandle, Timings};
use serde_json::{Value, json};

/// vera may use VM 300 (PVEVMUser: audit, console, power, cloud-init) but not change it.
const SCENARIO: &str = r#"
node_count = 1

[[users]]
userid = "vera@pve"
password = "verapw"
role = "PVEVMUser"
path = "/vms/300"
"#;

type Session = common::ApiSession;

async fn setup() -> (SimHandle, common::TestApp) {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| {
        c.with_nodes(1)
            .with_containers(0)
            .with_timings(Timings::instant())
    })
    .await;
    let pve = common::pve::Pve::new(&sim);
    // A VM with a disk on thin LVM (snapshots and linked clones possible), stopped.
    let upid = pve
        .call(
            reqwest::Method::POST,
            "/nodes/pve1/qemu",
            &[
                ("vmid", "300"),
                ("name", "vm-web"),
                ("memory", "512"),
                ("cores", "1"),
                ("scsihw", "virtio-scsi-single"),
                ("scsi0", "local-lvm:4"),
            ],
        )
        .await;
    pve.wait("pve1", &upid).await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
    })
    .await;
    (sim, app)
}

async fn send(
    app: &common::TestApp,
    s: &Session,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .header("x-csrf-token", &s.csrf);
    if let Some(body) = body {
        r = r.json(&body);
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

async fn post(app: &common::TestApp, s: &Session, path: &str, body: Value) -> (u16, Value) {
    send(app, s, reqwest::Method::POST, path, Some(body)).await
}

async fn page(app: &common::TestApp, s: &Session, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn snapshot_names(list: &Value) -> Vec<String> {
    list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

const G: &str = "/api/v1/guests/sim:300";

#[tokio::test]
async fn vm_config_resize_and_snapshots_through_the_guests_api() {
    let (sim, app) = setup().await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // The configuration as Proxmox has it, with the VM's kind.
    let (status, config) = get(&app, &root, &format!("{G}/config")).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["type"], "qemu");
    assert_eq!(config["values"]["memory"], "512");
    assert!(
        config["values"]["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-300-disk-0"),
        "{config}"
    );

    // Preview, then apply: memory and tags change, the answer names them.
    let edit = json!({ "memory": 1024, "tags": ["web"] });
    let (status, preview) = post(&app, &root, &format!("{G}/config/preview"), edit.clone()).await;
    assert_eq!(status, 200, "{preview}");
    let keys: Vec<&str> = preview["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["memory", "tags"]);
    let (status, out) = send(
        &app,
        &root,
        reqwest::Method::PUT,
        &format!("{G}/config"),
        Some(edit),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["operation"], "config");
    assert_eq!(out["message"], "changed memory, tags");
    let (_, config) = get(&app, &root, &format!("{G}/config")).await;
    assert_eq!(config["values"]["memory"], "1024");
    assert_eq!(config["values"]["tags"], "web");

    // A container's keys are refused, field by field.
    let (status, body) = send(
        &app,
        &root,
        reqwest::Method::PUT,
        &format!("{G}/config"),
        Some(json!({ "swap": 512, "mp": { "0": { "path": "/data", "storage": "local-lvm", "size_gib": 1 } } })),
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let text = body.to_string();
    assert!(text.contains("swap") && text.contains("mp0"), "{text}");

    // Resize: the disk grows by 1 GiB, Proxmox's task log comes back.
    let (status, out) = post(
        &app,
        &root,
        &format!("{G}/resize"),
        json!({ "disk": "scsi0", "size": "+1G" }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["upid"].as_str().unwrap().contains(":resize:300:"),
        "{out}"
    );
    let (_, config) = get(&app, &root, &format!("{G}/config")).await;
    assert!(
        config["values"]["scsi0"]
            .as_str()
            .unwrap()
            .contains("size=5G"),
        "{config}"
    );
    // Shrinking is Proxmox's refusal, relayed with its text.
    let (status, body) = post(
        &app,
        &root,
        &format!("{G}/resize"),
        json!({ "disk": "scsi0", "size": "2G" }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string()
            .contains("shrinking disks is not supported"),
        "{body}"
    );

    // Snapshots: take, list, roll back, delete (tasks `qmsnapshot`, `qmrollback`, …).
    let (status, out) = post(
        &app,
        &root,
        &format!("{G}/snapshots"),
        json!({ "name": "before", "description": "pre upgrade" }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["upid"].as_str().unwrap().contains(":qmsnapshot:300:"),
        "{out}"
    );
    let (status, list) = get(&app, &root, &format!("{G}/snapshots")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(snapshot_names(&list), ["before"]);
    assert_eq!(list["current_parent"], "before");
    assert_eq!(list["snapshots"][0]["description"], "pre upgrade");
    // The memory changed after the snapshot is undone by the rollback.
    let (status, _) = send(
        &app,
        &root,
        reqwest::Method::PUT,
        &format!("{G}/config"),
        Some(json!({ "memory": 2048 })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, out) = post(
        &app,
        &root,
        &format!("{G}/snapshots/before/rollback"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["upid"].as_str().unwrap().contains(":qmrollback:300:"),
        "{out}"
    );
    let (_, config) = get(&app, &root, &format!("{G}/config")).await;
    assert_eq!(config["values"]["memory"], "1024", "{config}");
    // A VM with snapshots cannot become a template (qemu-server's text).
    let (status, body) = post(&app, &root, &format!("{G}/template"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string()
            .contains("unable to create template, because VM contains snapshots"),
        "{body}"
    );
    let (status, out) = send(
        &app,
        &root,
        reqwest::Method::DELETE,
        &format!("{G}/snapshots/before"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["message"], "deleted snapshot before");
    let (_, list) = get(&app, &root, &format!("{G}/snapshots")).await;
    assert!(snapshot_names(&list).is_empty(), "{list}");

    // The same guest through the containers path (one resource per id, whatever its kind).
    let (status, list) = get(&app, &root, "/api/v1/containers/sim:300/snapshots").await;
    assert_eq!(status, 200, "{list}");
}

#[tokio::test]
async fn vm_clone_and_template_through_the_guests_api() {
    let (sim, app) = setup().await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // A full clone of the stopped VM, named.
    let (status, out) = post(
        &app,
        &root,
        &format!("{G}/clone"),
        json!({ "newid": 310, "hostname": "vm-copy", "full": true }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["new_vmid"], 310);
    assert!(
        out["upid"].as_str().unwrap().contains(":qmclone:300:"),
        "{out}"
    );
    assert_eq!(out["message"], "cloned VM 300 as VM 310 (vm-copy)");
    let (status, copy) = get(&app, &root, "/api/v1/guests/sim:310").await;
    assert_eq!(status, 200, "{copy}");
    assert_eq!(copy["type"], "qemu", "{copy}");
    let (_, config) = get(&app, &root, "/api/v1/guests/sim:310/config").await;
    assert_eq!(config["values"]["name"], "vm-copy");
    assert!(
        config["values"]["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-310-disk-"),
        "{config}"
    );

    // Convert to template; a linked clone of the template shares its base disk.
    let (status, out) = post(&app, &root, &format!("{G}/template"), json!({})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["message"], "VM 300 is now a template");
    let (_, config) = get(&app, &root, &format!("{G}/config")).await;
    assert_eq!(config["template"], true, "{config}");
    let (status, body) = post(&app, &root, &format!("{G}/template"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string()
            .contains("you can't convert a template to a template"),
        "{body}"
    );
    let (status, out) = post(
        &app,
        &root,
        &format!("{G}/clone"),
        json!({ "newid": 311, "hostname": "vm-linked", "full": false }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (_, config) = get(&app, &root, "/api/v1/guests/sim:311/config").await;
    assert!(
        config["values"]["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-300-disk-0/vm-311-disk-"),
        "{config}"
    );
}

#[tokio::test]
async fn vm_day_two_is_refused_without_the_privilege_on_that_vm() {
    let (sim, app) = setup().await;
    let pve = common::pve::Pve::new(&sim);
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let vera = common::api_login(&app.client, &app.address, "vera", "verapw", "pve").await;
    let (status, _) = post(
        &app,
        &root,
        &format!("{G}/snapshots"),
        json!({ "name": "base" }),
    )
    .await;
    assert_eq!(status, 200);

    // VM.Audit reads.
    let (status, config) = get(&app, &vera, &format!("{G}/config")).await;
    assert_eq!(status, 200, "{config}");
    let (status, list) = get(&app, &vera, &format!("{G}/snapshots")).await;
    assert_eq!(status, 200, "{list}");

    // Every change names the privilege she lacks on /vms/300.
    let refusals: [(reqwest::Method, String, Option<Value>, &str); 7] = [
        (
            reqwest::Method::PUT,
            format!("{G}/config"),
            Some(json!({ "memory": 2048 })),
            "VM.Config.Memory",
        ),
        (
            reqwest::Method::POST,
            format!("{G}/resize"),
            Some(json!({ "disk": "scsi0", "size": "+1G" })),
            "VM.Config.Disk",
        ),
        (
            reqwest::Method::POST,
            format!("{G}/snapshots"),
            Some(json!({ "name": "mine" })),
            "VM.Snapshot",
        ),
        (
            reqwest::Method::POST,
            format!("{G}/snapshots/base/rollback"),
            Some(json!({})),
            "VM.Snapshot",
        ),
        (
            reqwest::Method::DELETE,
            format!("{G}/snapshots/base"),
            None,
            "VM.Snapshot",
        ),
        (
            reqwest::Method::POST,
            format!("{G}/clone"),
            Some(json!({ "newid": 320 })),
            "VM.Clone",
        ),
        (
            reqwest::Method::POST,
            format!("{G}/template"),
            Some(json!({})),
            "VM.Allocate",
        ),
    ];
    for (method, path, body, privilege) in refusals {
        let (status, answer) = send(&app, &vera, method.clone(), &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(
            answer.to_string().contains(privilege),
            "{method} {path} should name {privilege}: {answer}"
        );
    }
    // Nothing changed in Proxmox.
    let conf = pve
        .call(reqwest::Method::GET, "/nodes/pve1/qemu/300/config", &[])
        .await;
    // (The simulator answers `memory` as text, as qemu-server's config parser keeps it.)
    assert_eq!(
        conf["memory"].to_string().trim_matches('"'),
        "512",
        "{conf}"
    );
    assert!(conf.get("template").is_none(), "{conf}");
    let snaps = pve
        .call(reqwest::Method::GET, "/nodes/pve1/qemu/300/snapshot", &[])
        .await;
    assert_eq!(
        snaps.as_array().unwrap().len(),
        2,
        "base + current: {snaps}"
    );
}

#[tokio::test]
async fn the_vm_pages_show_the_day_two_forms_of_a_vm() {
    let (sim, app) = setup().await;
    let root =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // The detail page links Edit, Snapshots and Proxmox's noVNC console; no container-only
    // links (migrate, boot log over pct).
    let (status, html) = page(&app, &root, "/containers/sim:300").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"href="/containers/sim:300/edit""#),
        "Edit link"
    );
    assert!(
        html.contains(r#"href="/containers/sim:300/snapshots""#),
        "Snapshots link"
    );
    assert!(
        html.contains("console=kvm&amp;novnc=1&amp;vmid=300"),
        "noVNC console"
    );
    assert!(
        !html.contains("/containers/sim:300/migrate"),
        "no migrate link"
    );

    // The Edit page: the VM's resources, no swap, network or mount point fields; the disk
    // to grow is the VM's; clone asks for a name.
    let (status, html) = page(&app, &root, "/containers/sim:300/edit").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Edit vm-web (VM 300)") || html.contains("(VM 300)"),
        "{html}"
    );
    assert!(html.contains(r#"name="memory""#) && html.contains(r#"value="512""#));
    assert!(!html.contains(r#"name="swap""#), "a VM has no swap field");
    assert!(
        !html.contains(r#"name="netnew_ip""#),
        "no container interface form"
    );
    assert!(
        !html.contains(r#"name="mpnew_path""#),
        "no mount point form"
    );
    assert!(html.contains("Grow a disk") && html.contains(r#"value="scsi0""#));
    assert!(html.contains("Disk (scsiN, virtioN, sataN or ideN)"));
    assert!(html.contains("Convert to template") && html.contains("Clone"));
    assert!(
        html.contains("new virtual machines are cloned from it"),
        "{html}"
    );

    // The form's review step works for the VM (CSRF as every form).
    let r = app
        .client
        .post(format!("{}/containers/sim:300/edit", app.address))
        .header("cookie", &root.cookie)
        .form(&[
            ("csrf_token", root.csrf.as_str()),
            ("step", "review"),
            ("cores", "2"),
            ("memory", "512"),
            ("onboot", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"data-key="cores""#), "{html}");
    assert!(
        !html.contains(r#"data-key="memory""#),
        "unchanged keys are not in the diff"
    );

    // The Snapshots page.
    let (status, html) = page(&app, &root, "/containers/sim:300/snapshots").await;
    assert_eq!(status, 200);
    assert!(html.contains("Snapshots of vm-web (VM 300)") || html.contains("(VM 300)"));
    assert!(html.contains("Take snapshot"));
}
