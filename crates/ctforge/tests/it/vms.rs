//! Virtual machines on the simulator's memory backend, end to end: the shipped `vm-web`
//! template is planned (`POST /api/v1/guests/plan`: a `qemu` guest, the disk imported from the
//! node's Debian 12 cloud image, the cloud-init drive, the agent, the serial console), created
//! through `POST /api/v1/guests`, started, reached through its guest agent and provisioned
//! over it (nginx installed, the service and its web address discovered) — what the job's
//! progress shows on the way included.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::common;

struct Vms {
    app: common::TestApp,
    session: common::ApiSession,
    sim: ctforge_pve_sim::SimHandle,
    _templates: tempfile::TempDir,
}

impl Vms {
    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .app
            .client
            .get(format!("{}{path}", self.app.address))
            .header("cookie", &self.session.cookie)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or_default())
    }

    /// Job `job_id` once it ended (succeeded, failed or cancelled), or `null` after 60 s.
    async fn finished_job(&self, job_id: i64) -> serde_json::Value {
        for _ in 0..1200 {
            let (_, j) = self.get(&format!("/api/v1/jobs/{job_id}")).await;
            if matches!(
                j["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        serde_json::Value::Null
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .session
            .post(&self.app.client, &self.app.address, path, body)
            .await;
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or_default())
    }
}

/// The app with the shipped examples as its template root, signed in as root@pam; web links
/// probed or not.
async fn app_with(web_links: bool) -> Vms {
    app_where(web_links, ctforge_pve_sim::Timings::instant(), 300).await
}

/// [`app_with`] on a simulator with `timings`, waiting at most `agent_secs` for a VM's agent,
/// with `vm-web-ssh` beside the examples: `vm-web` without the guest agent
/// ([`common::vm_without_agent`]).
async fn app_where(web_links: bool, timings: ctforge_pve_sim::Timings, agent_secs: u64) -> Vms {
    app_in("", web_links, timings, agent_secs).await
}

/// [`app_where`] on a simulator with `scenario` (users and ACLs). Proxmox is read afresh on
/// every page: the tests change the scene between views.
async fn app_in(
    scenario: &str,
    web_links: bool,
    timings: ctforge_pve_sim::Timings,
    agent_secs: u64,
) -> Vms {
    ctforge::install_crypto_provider();
    let sim = common::sim(scenario, |c| {
        c.with_nodes(1).with_containers(0).with_timings(timings)
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let templates = tempfile::tempdir().unwrap();
    ctforge::demo::write_examples(templates.path()).unwrap();
    common::vm_without_agent(templates.path());
    let root = templates.path().to_path_buf();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
        c.monitoring.web_links = web_links;
        c.provisioning.agent_timeout_secs = agent_secs;
        c.dashboard.fresh_ms = 0;
    })
    .await;
    let session =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let r = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    Vms {
        app,
        session,
        sim,
        _templates: templates,
    }
}

/// The app with the shipped examples, web links not probed.
async fn app() -> Vms {
    app_with(false).await
}

fn params(plan: &serde_json::Value) -> BTreeMap<String, String> {
    plan["create_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx alice@laptop";

#[tokio::test]
async fn a_vm_template_is_planned_created_and_provisioned_through_the_agent() {
    let v = app().await;
    let body = json!({
        "template": "vm-web",
        "hostname": "vm1",
        "password": "hunter22",
        "ssh_public_keys": KEY,
        "user": "alice",
    });

    // The plan: a qemu guest, its exact parameters, every step.
    let (code, plan) = v.post("/api/v1/guests/plan", body.clone()).await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["type"], "qemu");
    assert_eq!(plan["create_call"], "POST /nodes/pve1/qemu");
    let p = params(&plan);
    assert!(
        p["scsi0"].contains(":0,import-from=") && p["scsi0"].contains("debian-12"),
        "{p:?}"
    );
    assert!(p["ide2"].ends_with(":cloudinit"), "{p:?}");
    assert_eq!(p["agent"], "enabled=1");
    assert_eq!(p["scsihw"], "virtio-scsi-single");
    assert_eq!(p["serial0"], "socket");
    assert_eq!(p["ciuser"], "alice");
    assert_eq!(p["cipassword"], "********", "the password is masked");
    assert_eq!(p["ipconfig0"], "ip=dhcp");
    // The review says ctforge's own key for the VM joins the user's on submit.
    assert_eq!(
        p["sshkeys"],
        format!(
            "{} {}",
            ctforge_pve::types::qemu::uri_escape(KEY),
            ctforge::provisioning::plan::PENDING_GUEST_KEY
        )
    );
    assert_eq!(p["machine"], "q35");
    assert_eq!((p["cores"].as_str(), p["memory"].as_str()), ("1", "1024"));
    let kinds: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "create",
            "resize_disk",
            "start",
            "deploy_file",
            "deploy_file",
            "config_manager",
            "install",
            "run_script",
            "discover"
        ]
    );
    assert_eq!(plan["steps"][1]["size"], "8G");

    // Created through the guest resource.
    let (code, created) = v.post("/api/v1/guests", body).await;
    assert_eq!(code, 202, "{created}");
    let (id, job_id) = (
        created["id"].as_i64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );
    let record = v.app.state.store.get_container(id).await.unwrap();
    assert_eq!(record.kind, ctforge::status::GuestKind::Qemu);
    // The VM's own key: sealed, for cloud-init's user, its public half after the user's key
    // in the parameters sent (the record's plan shows them).
    let key = v
        .app
        .state
        .store
        .guest_ssh_key(id)
        .await
        .unwrap()
        .expect("a key for the VM");
    assert!(!key.key_sealed.contains("PRIVATE KEY"));
    assert_eq!(key.login_user, "alice");
    assert!(
        key.public_key.starts_with("ssh-ed25519 ") && key.public_key.ends_with(" ctforge@vm-100")
    );
    let stored: serde_json::Value = serde_json::from_str(&record.spec_json).unwrap();
    assert_eq!(
        params(&stored)["sshkeys"],
        ctforge_pve::types::qemu::uri_escape(&format!("{KEY}\n{}", key.public_key))
    );

    // What the user sees on the way: the job's step as it moves (the progress view polls
    // the same answer), then every step's log lines.
    let mut seen_steps: Vec<String> = Vec::new();
    let mut job = serde_json::Value::Null;
    for _ in 0..1200 {
        let (_, j) = v.get(&format!("/api/v1/jobs/{job_id}")).await;
        if let Some(step) = j["current_step"].as_str()
            && seen_steps.last().map(String::as_str) != Some(step)
        {
            seen_steps.push(step.to_owned());
        }
        if matches!(
            j["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            job = j;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["completed_steps"],
        json!([
            "create", "start", "deploy", "install", "scripts", "discover"
        ])
    );
    assert!(!seen_steps.is_empty(), "the progress never showed a step");
    let events = v
        .app
        .state
        .store
        .job_events_after(job_id, 0, 10_000)
        .await
        .unwrap();
    let log: Vec<String> = events
        .iter()
        .map(|e| format!("{}: {}", e.step.clone().unwrap_or_default(), e.data))
        .collect();
    let log = log.join("\n");
    for line in [
        "create: creating VM",
        "import-from=",
        "create: resizing scsi0 to 8G",
        "start: waiting for the QEMU guest agent",
        "start: guest agent answers",
        "start: channel into the VM: its QEMU guest agent",
        "(reported by the guest agent)",
        "install: installing with apt: nginx curl",
        "scripts: running 10-enable.sh",
        "discover: service nginx.service is active",
    ] {
        assert!(log.contains(line), "the job log lacks {line:?}:\n{log}");
    }
    assert!(
        !log.contains("hunter22"),
        "the password never reaches the log"
    );

    // Ready, with its address and the discovered web server.
    let record = v.app.state.store.get_container(id).await.unwrap();
    assert_eq!(record.status, "ready");
    let ip = record.ip.clone().expect("the agent's address is recorded");
    let services = v.app.state.store.list_services(id).await.unwrap();
    let nginx = services
        .iter()
        .find(|s| s.unit == "nginx.service")
        .unwrap_or_else(|| panic!("nginx was not discovered: {services:?}"));
    assert_eq!(
        nginx.url.as_deref(),
        Some(format!("http://{ip}:80").as_str())
    );

    // Proxmox has the VM, running.
    let cluster = v
        .app
        .state
        .store
        .get_cluster(record.cluster_id)
        .await
        .unwrap();
    let client = v.app.state.pve.service(&cluster).unwrap();
    let vmid = u32::try_from(record.vmid).unwrap();
    let status = client.qemu_status_current("pve1", vmid).await.unwrap();
    assert_eq!(status.status, "running");

    // The template's page is readable by nginx's workers (`cp` gives a new file its staged
    // copy's mode: a private staged copy made nginx answer 403 on a real guest).
    let guest = v.sim.state().memory_backend().unwrap().guest(vmid).unwrap();
    let page = guest
        .data
        .files
        .get("/srv/www/index.html")
        .expect("deployed");
    assert_eq!(page.mode, 0o644, "{:o}", page.mode);
    drop(v.sim);
}

/// A VM's web links are probed on the address its guest agent reports (Proxmox reports no
/// container interfaces for a VM): the refresh probes nginx's port there. The VM's static
/// address is in TEST-NET-3 (RFC 5737): the probe is made there, on the address the agent
/// reports, and nowhere else.
#[tokio::test]
async fn a_vm_web_link_is_probed_on_the_address_its_agent_reports() {
    let v = app_with(true).await;
    let (code, created) = v
        .post(
            "/api/v1/guests",
            json!({
                "template": "vm-web",
                "hostname": "vm3",
                "password": "hunter22",
                "ip": "203.0.113.60/24",
                "gateway": "203.0.113.1",
            }),
        )
        .await;
    assert_eq!(code, 202, "{created}");
    let (id, job_id) = (
        created["id"].as_i64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );
    let job = v.finished_job(job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let ip = v
        .app
        .state
        .store
        .get_container(id)
        .await
        .unwrap()
        .ip
        .unwrap();
    let (code, refreshed) = v
        .post(&format!("/api/v1/guests/{id}/services/refresh"), json!({}))
        .await;
    assert_eq!(code, 200, "{refreshed}");
    let nginx = refreshed["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["unit"] == "nginx.service")
        .cloned()
        .unwrap_or_else(|| panic!("nginx: {refreshed}"));
    assert_eq!(ip.split('/').next(), Some("203.0.113.60"), "{refreshed}");
    assert!(nginx["web_checked_at"].is_i64(), "probed: {refreshed}");
    // Whether anything answers there depends on the machine's network, not on ctforge.
    let url = nginx["url"].as_str().unwrap_or_default();
    assert!(url.ends_with("://203.0.113.60:80"), "{refreshed}");
    drop(v.sim);
}

/// A vm template's plan names what is missing: a cloud image that is not on the node.
#[tokio::test]
async fn a_missing_cloud_image_is_a_field_error() {
    let v = app().await;
    let (code, answer) = v
        .post(
            "/api/v1/guests/plan",
            json!({ "template": "vm-web", "hostname": "vm2", "image": "local:import/nope.qcow2" }),
        )
        .await;
    assert_eq!(code, 400, "{answer}");
    assert!(answer.to_string().contains("nope.qcow2"), "{answer}");
}

/// A VM created by cloning a VM template (`clone_from`): the plan shows the exact
/// `POST /nodes/{node}/qemu/{template}/clone` parameters (linked: the template's disk is on
/// thin LVM) and the configuration set on the clone; the job clones, configures, grows the
/// disk, starts it and provisions it through the agent like an imported VM.
#[tokio::test]
async fn a_vm_is_created_by_cloning_a_vm_template() {
    let v = app().await;
    let pve = common::pve::Pve::new(&v.sim);
    pve.create_vm_template(9000, "pve1", "debian-tpl").await;

    let body = json!({
        "template": "vm-web",
        "hostname": "vm-clone",
        "password": "hunter22",
        "ssh_public_keys": KEY,
        "user": "alice",
        "clone_from": 9000,
    });
    let (code, plan) = v.post("/api/v1/guests/plan", body.clone()).await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["type"], "qemu");
    assert_eq!(plan["create_call"], "POST /nodes/pve1/qemu/9000/clone");
    let p = params(&plan);
    assert_eq!(p["name"], "vm-clone");
    assert_eq!(p["full"], "0", "linked: the template's disk is on thin LVM");
    assert!(
        !p.contains_key("storage"),
        "a linked clone names no storage: {p:?}"
    );
    let newid = p["newid"].clone();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps[0]["kind"], "clone_vm", "{plan}");
    assert_eq!(steps[0]["vmid"], 9000);
    let config = &steps[0]["config"];
    assert_eq!(config["ciuser"], "alice");
    assert_eq!(config["cipassword"], "********", "the password is masked");
    assert_eq!(config["ipconfig0"], "ip=dhcp");
    assert_eq!(config["memory"], "1024");
    assert!(
        config.get("ide2").is_none(),
        "the template has a cloud-init drive"
    );
    assert_eq!(steps[1]["kind"], "resize_disk");

    // A VM that is not a template is refused by field.
    let mut wrong = body.clone();
    wrong["clone_from"] = json!(9100);
    let (code, answer) = v.post("/api/v1/guests/plan", wrong).await;
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("VM 9100 does not exist on pve1"),
        "{answer}"
    );

    // Created: cloned, configured, grown, started, provisioned through the agent.
    let (code, created) = v.post("/api/v1/guests", body).await;
    assert_eq!(code, 202, "{created}");
    let job_id = created["job_id"].as_i64().unwrap();
    let job = v.finished_job(job_id).await;
    let events = v
        .app
        .state
        .store
        .job_events_after(job_id, 0, 10_000)
        .await
        .unwrap();
    let log: Vec<String> = events.iter().map(|e| e.data.clone()).collect();
    let log = log.join("\n");
    assert_eq!(job["state"], "succeeded", "{job}\n{log}");
    for line in [
        "cloning VM template 9000 as VM",
        "linked clone",
        "own configuration: memory",
        "resizing scsi0 to 8G",
        "guest agent answers",
    ] {
        assert!(log.contains(line), "the job log lacks {line:?}:\n{log}");
    }
    assert!(
        !log.contains("hunter22"),
        "the password never reaches the log"
    );
    let conf = pve
        .call(
            reqwest::Method::GET,
            &format!("/nodes/pve1/qemu/{newid}/config"),
            &[],
        )
        .await;
    assert_eq!(conf["ciuser"], "alice", "{conf}");
    assert_eq!(conf["name"], "vm-clone", "{conf}");
    assert!(
        conf["scsi0"]
            .as_str()
            .unwrap()
            .starts_with(&format!("local-lvm:base-9000-disk-0/vm-{newid}-disk-")),
        "{conf}"
    );
}

impl Vms {
    /// Posts the wizard's form (`/containers/new`) as `session`: status, `Location`, page.
    async fn wizard(
        &self,
        session: &common::ApiSession,
        fields: &[(&str, &str)],
    ) -> (u16, String, String) {
        common::post_wizard(
            &self.app.client,
            &self.app.address,
            &session.cookie,
            &session.csrf,
            fields,
        )
        .await
    }

    /// The page at `path` as `session` sees it.
    async fn page(&self, session: &common::ApiSession, path: &str) -> String {
        let r = self
            .app
            .client
            .get(format!("{}{path}", self.app.address))
            .header("cookie", &session.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.text().await.unwrap()
    }
}

/// Two nodes; `cloner` may clone VM template 9000 (PVEVMAdmin there) and only see 9001
/// (PVEVMUser: no VM.Clone); 9002 (on pve2) is not theirs at all.
const CLONER: &str = r#"
node_count = 2

[[users]]
userid = "cloner@pve"
password = "pw-123456"

[[acl]]
path = "/vms/9000"
ugid = "cloner@pve"
role = "PVEVMAdmin"

[[acl]]
path = "/vms/9001"
ugid = "cloner@pve"
role = "PVEVMUser"
"#;

/// The `<option>`s of the wizard's VM template choice in `page`, as their values.
fn clone_options(page: &str) -> Vec<String> {
    let Some(start) = page.find("<select id=\"clone_from\"") else {
        return Vec::new();
    };
    let select = &page[start..];
    let select = &select[..select.find("</select>").unwrap()];
    select
        .split("<option value=\"")
        .skip(1)
        .map(|o| o[..o.find('"').unwrap()].to_owned())
        .collect()
}

/// The wizard's Configure step of a vm template offers "a clone of a VM template": none in the
/// cluster is said instead of an empty choice; then the VM templates the user may clone
/// (VM.Clone) and no others; a value that is not a template is refused on its field; Review
/// shows exactly the clone call `POST /api/v1/guests/plan` shows (linked or full, and the
/// clone's own configuration), and Create clones the VM in the simulator.
#[tokio::test]
async fn the_wizard_clones_a_vm_template_the_user_may_clone() {
    let v = app_in(CLONER, false, ctforge_pve_sim::Timings::instant(), 300).await;
    let pve = common::pve::Pve::new(&v.sim);
    let configure = "/containers/new?template=vm-web";

    // No VM template yet: said, and the choice cannot be taken.
    let page = v.page(&v.session, configure).await;
    assert!(page.contains("has no VM template you may clone"), "{page}");
    assert!(
        page.contains("name=\"disk_from\" value=\"clone\" disabled"),
        "{page}"
    );
    assert!(clone_options(&page).is_empty(), "{page}");

    for (vmid, node, name) in [
        (9000, "pve1", "debian-tpl"),
        (9001, "pve1", "other-tpl"),
        (9002, "pve2", "root-tpl"),
    ] {
        pve.create_vm_template(vmid, node, name).await;
    }
    pve.create_vm(150, "pve1", "plain-vm", false).await;

    // Root may clone every VM template (and a plain VM is none); cloner only 9000.
    let page = v.page(&v.session, configure).await;
    assert_eq!(clone_options(&page), ["9000", "9001", "9002"], "{page}");
    assert!(page.contains("9000 — debian-tpl"), "{page}");
    assert!(
        page.contains("<optgroup label=\"on pve1\">")
            && page.contains("<optgroup label=\"on pve2\">"),
        "grouped by node: {page}"
    );
    assert!(
        page.contains("<label for=\"clone_from\">VM template</label>")
            && page.contains("<label for=\"full_clone\">Clone mode</label>"),
        "labelled: {page}"
    );
    let cloner =
        common::api_login(&v.app.client, &v.app.address, "cloner", "pw-123456", "pve").await;
    let page = v.page(&cloner, configure).await;
    assert_eq!(clone_options(&page), ["9000"], "{page}");

    // A VM that is not a template, one that does not exist, one on another node than the
    // VM's, none chosen: refused on the field.
    let configure_step = |clone_from: &'static str| {
        vec![
            ("step", "configure"),
            ("go", "next"),
            ("template", "vm-web"),
            ("hostname", "wiz-clone"),
            ("vmid", "170"),
            ("node", "pve1"),
            ("disk_from", "clone"),
            ("clone_from", clone_from),
        ]
    };
    for (clone_from, said) in [
        (
            "150",
            "VM 150 is not a template; convert it to a template first",
        ),
        ("9999", "VM 9999 does not exist on pve1"),
        (
            "9002",
            "VM template 9002 is on node pve2, and a clone is made on its template's node: choose node pve2, or a template on pve1",
        ),
        ("", "choose the VM template to clone"),
    ] {
        let (status, _, page) = v.wizard(&v.session, &configure_step(clone_from)).await;
        assert_eq!(status, 400, "{clone_from}: {page}");
        assert!(
            page.contains(&format!(
                "<div class=\"error\" id=\"clone_from-error\">{said}</div>"
            )),
            "{clone_from}: {page}"
        );
        assert!(page.contains("One value needs attention"), "{page}");
    }

    // Review: the clone call, exactly as the API plans it.
    let review = |mode: &'static str, go: &'static str| {
        vec![
            ("step", if go == "create" { "review" } else { "scripts" }),
            ("go", go),
            ("template", "vm-web"),
            ("hostname", "wiz-clone"),
            ("vmid", "170"),
            ("user", "alice"),
            ("ssh_public_keys", KEY),
            ("storage", "local-lvm"),
            ("disk_from", "clone"),
            ("clone_from", "9000"),
            ("full_clone", mode),
            ("image", "local:import/debian-12-genericcloud-amd64.qcow2"),
        ]
    };
    let row = |k: &str, v: &str| {
        format!("<tr><th scope=\"row\"><code>{k}</code></th><td><code>{v}</code></td></tr>")
    };
    let body = json!({
        "template": "vm-web", "hostname": "wiz-clone", "vmid": 170, "user": "alice",
        "ssh_public_keys": KEY, "clone_from": 9000,
    });
    let (code, plan) = v.post("/api/v1/guests/plan", body.clone()).await;
    assert_eq!(code, 200, "{plan}");
    let (status, _, page) = v.wizard(&v.session, &review("0", "next")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h2>Proxmox clone call</h2>"), "{page}");
    assert!(
        page.contains("data-create-call=\"POST /nodes/pve1/qemu/9000/clone\""),
        "{page}"
    );
    for (k, val) in params(&plan) {
        assert!(
            page.contains(&row(&k, &val)),
            "{k}={val} as the API plans it: {page}"
        );
    }
    assert!(page.contains(&row("full", "0")), "linked: {page}");
    assert!(!page.contains("import-from"), "no import: {page}");
    for (k, val) in plan["steps"][0]["config"].as_object().unwrap() {
        let val = val.as_str().unwrap();
        let shown = maud::html! { (val) }.into_string();
        assert!(
            page.contains(&row(k, &shown)),
            "clone config {k}={val}: {page}"
        );
    }
    assert!(page.contains(&row("ciuser", "alice")), "{page}");
    assert!(
        !page.contains("data-source="),
        "no image/scratch choice for a VM: {page}"
    );
    // A full copy on the storage chosen.
    let (status, _, page) = v.wizard(&v.session, &review("1", "next")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&row("full", "1")) && page.contains(&row("storage", "local-lvm")),
        "{page}"
    );

    // Create: the job clones VM template 9000 in the simulator (linked).
    let (status, location, page) = v.wizard(&v.session, &review("0", "create")).await;
    assert_eq!(status, 303, "{page}");
    let job_id: i64 = location.trim_start_matches("/jobs/").parse().unwrap();
    let job = v.finished_job(job_id).await;
    let log = job_log(&v, job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}\n{log}");
    assert!(log.contains("cloning VM template 9000 as VM 170"), "{log}");
    assert!(
        !log.contains("building image"),
        "a VM bakes no CT image: {log}"
    );
    assert!(log.contains("linked clone"), "{log}");
    let conf = pve
        .call(reqwest::Method::GET, "/nodes/pve1/qemu/170/config", &[])
        .await;
    assert_eq!(conf["name"], "wiz-clone", "{conf}");
    assert_eq!(conf["ciuser"], "alice", "{conf}");
    assert!(
        conf["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:base-9000-disk-0/vm-170-disk-"),
        "{conf}"
    );
}

/// `ctforge ct create --clone-from` plans (and would create) the VM as a clone of a VM
/// template: `--plan` prints Proxmox's clone call and the clone's own configuration;
/// `--full-clone` asks for a full copy.
#[tokio::test]
async fn ct_create_plans_a_clone_of_a_vm_template() {
    let v = app().await;
    common::pve::Pve::new(&v.sim)
        .create_vm_template(9000, "pve1", "debian-tpl")
        .await;
    let (_, secret) = ctforge::tokens::create(&v.app.state, "root@pam", "cli", "127.0.0.1")
        .await
        .unwrap();
    let plan = |extra: &'static [&'static str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"));
        cmd.args([
            "ct",
            "--url",
            &v.app.address,
            "create",
            "--template",
            "vm-web",
        ])
        .args([
            "--hostname",
            "cli-clone",
            "--vmid",
            "171",
            "--clone-from",
            "9000",
        ])
        .args(extra)
        .arg("--plan")
        .env("CTFORGE_TOKEN", &secret)
        .env_remove("CTFORGE_DATABASE_URL");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = plan(&[]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "POST /nodes/pve1/qemu/9000/clone",
        "  newid=171",
        "  full=0",
        "PUT /nodes/pve1/qemu/171/config (the clone of 9000, linked)",
        "  ciuser=ctforge",
        "clone_vm",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    let out = plan(&["--full-clone"]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("  full=1") && text.contains("(the clone of 9000, full copy)"),
        "{text}"
    );
}

/// A VM whose template turns the guest agent off (`agent: enabled=0`; the simulator answers
/// "No QEMU guest agent configured" as Proxmox does) is reached over SSH instead; one on DHCP
/// has no address ctforge knows without the agent, so the job fails saying exactly that —
/// at once, without waiting for an agent that is not configured.
#[tokio::test]
async fn a_vm_without_its_agent_and_without_a_known_address_fails_clearly() {
    let v = app().await;
    let body = json!({"template": "vm-web-ssh", "hostname": "vm-ssh", "user": "alice"});
    let (code, plan) = v.post("/api/v1/guests/plan", body.clone()).await;
    assert_eq!(code, 200, "{plan}");
    let p = params(&plan);
    assert_eq!(p["agent"], "enabled=0");
    assert_eq!(p["sshkeys"], ctforge::provisioning::plan::PENDING_GUEST_KEY);
    let (code, created) = v.post("/api/v1/guests", body).await;
    let job_id = failed_with(
        &v,
        code,
        &created,
        &[
            "the guest agent of VM 100 is turned off in the VM's configuration",
            "No QEMU guest agent configured",
            "SSH cannot replace it",
            "address is unknown",
            "DHCP",
        ],
    )
    .await;
    let log = job_log(&v, job_id).await;
    assert!(
        log.contains("start: the guest agent of VM 100 is turned off in the VM's configuration")
            && log.contains("falling back to SSH at (no known address)"),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    drop(v.sim);
}

/// A VM whose agent is configured but never answers (the guest does not run it) is given up on
/// after `[provisioning] agent_timeout_secs`, and SSH is tried at its static address: nothing
/// listens there, and the job says both why the agent was left and why SSH failed.
#[tokio::test]
async fn a_silent_agent_is_given_up_for_ssh_after_its_bound() {
    let mut timings = ctforge_pve_sim::Timings::instant();
    timings.vm_boot = Duration::from_secs(3600);
    let v = app_where(false, timings, 1).await;
    let (code, created) = v
        .post(
            "/api/v1/guests",
            // A loopback address where no sshd listens: refused at once.
            json!({"template": "vm-web", "hostname": "vm-quiet", "ip": "127.0.0.9/8"}),
        )
        .await;
    let job_id = failed_with(
        &v,
        code,
        &created,
        &[
            "the guest agent of VM 100 does not answer 1 s after start",
            "QEMU guest agent is not running",
            "SSH cannot replace it",
            "127.0.0.9",
        ],
    )
    .await;
    let log = job_log(&v, job_id).await;
    assert!(log.contains("falling back to SSH at 127.0.0.9"), "{log}");
    // Nothing was pinned: the guest never answered.
    let id = created["id"].as_i64().unwrap();
    let key = v.app.state.store.guest_ssh_key(id).await.unwrap().unwrap();
    assert_eq!(key.host_key, None);
    drop(v.sim);
}

/// The creation answered 202 and its job failed with an error naming every one of `parts`;
/// the job's id.
async fn failed_with(v: &Vms, code: u16, created: &serde_json::Value, parts: &[&str]) -> i64 {
    assert_eq!(code, 202, "{created}");
    let job_id = created["job_id"].as_i64().unwrap();
    let job = v.finished_job(job_id).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    for part in parts {
        assert!(error.contains(part), "the error lacks {part:?}: {error}");
    }
    job_id
}

async fn job_log(v: &Vms, job_id: i64) -> String {
    v.app
        .state
        .store
        .job_events_after(job_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e.step.clone().unwrap_or_default(), e.data))
        .collect::<Vec<_>>()
        .join("\n")
}
