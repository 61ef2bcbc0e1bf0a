//! VMs on the memory backend as qemu-server serves them: create with a disk imported from a
//! cloud image and a cloud-init drive (task log, normalized config), the guest agent that
//! answers only once the guest booted, agent exec/exec-status/file-write/file-read/
//! network-get-interfaces through the emulated shell, the errors and permission checks of
//! each step, shutdown through the agent, resize, template, linked and full clones, snapshots
//! and delete.

use std::time::Duration;

use ctforge_pve_sim::{SimConfig, Timings};
use serde_json::Value;

use crate::common::{Auth, Resp, Sim};

const IMAGE: &str = "local:import/debian-12-genericcloud-amd64.qcow2";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMn1pp1ZZ5kJcVtw2GM0J0PZ3sqYsHkPAXYSvlHFg5Ym me@host";

async fn sim(boot_ms: u64) -> Sim {
    Sim::start(
        SimConfig::for_tests()
            .with_nodes(2)
            .with_containers(2)
            .with_timings(Timings {
                vm_boot: Duration::from_millis(boot_ms),
                ..Timings::instant()
            }),
    )
    .await
}

fn upid(r: &Resp) -> String {
    r.data()
        .as_str()
        .unwrap_or_else(|| panic!("no upid: {}", r.text))
        .to_owned()
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Create VM `vmid` the way ctforge does (import + cloud-init + agent), optionally started.
async fn create_vm(sim: &Sim, vmid: &str, name: &str, start: bool) -> (Resp, Value) {
    let keys = urlencode(KEY);
    let r = sim
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", vmid),
                ("name", name),
                ("memory", "2048"),
                ("cores", "2"),
                ("sockets", "1"),
                ("cpu", "host"),
                ("machine", "q35"),
                ("bios", "seabios"),
                ("ostype", "l26"),
                ("scsihw", "virtio-scsi-single"),
                (
                    "scsi0",
                    &format!("local-lvm:0,import-from={IMAGE},iothread=1"),
                ),
                ("ide2", "local-lvm:cloudinit"),
                ("net0", "virtio,bridge=vmbr0,tag=20"),
                ("serial0", "socket"),
                ("vga", "serial0"),
                ("agent", "enabled=1"),
                ("ciuser", "admin"),
                ("cipassword", "s3cret-pass"),
                ("sshkeys", &keys),
                ("ipconfig0", "ip=dhcp"),
                ("nameserver", "10.10.0.1"),
                ("searchdomain", "lab"),
                ("tags", "web;vm"),
                ("onboot", "1"),
                ("start", if start { "1" } else { "0" }),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "create failed: {}", r.text);
    let st = sim.wait_task("pve1", &upid(&r)).await;
    (r, st)
}

/// Run a command through the agent and wait for its end: (exitcode, out, err).
async fn agent_run(
    sim: &Sim,
    vmid: &str,
    argv: &[&str],
    input: Option<&str>,
) -> (i64, String, String) {
    let mut form: Vec<(&str, &str)> = argv.iter().map(|a| ("command", *a)).collect();
    if let Some(i) = input {
        form.push(("input-data", i));
    }
    let r = sim
        .post(&format!("/nodes/pve1/qemu/{vmid}/agent/exec"), &form)
        .await;
    assert_eq!(r.status, 200, "exec: {}", r.text);
    let pid = r.data()["pid"].as_i64().expect("pid").to_string();
    for _ in 0..400 {
        let s = sim
            .call(
                "GET",
                &format!("/nodes/pve1/qemu/{vmid}/agent/exec-status"),
                &sim.root(),
                &[("pid", &pid)],
            )
            .await;
        assert_eq!(s.status, 200, "exec-status: {}", s.text);
        if s.data()["exited"] == 1 {
            return (
                s.data()["exitcode"].as_i64().unwrap_or(-1),
                s.data()["out-data"].as_str().unwrap_or("").to_owned(),
                s.data()["err-data"].as_str().unwrap_or("").to_owned(),
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("agent command {argv:?} did not end");
}

#[tokio::test]
async fn create_imports_the_image_and_writes_a_proxmox_config() {
    let sim = sim(0).await;
    let images = sim
        .call(
            "GET",
            "/nodes/pve1/storage/local/content",
            &sim.root(),
            &[("content", "import")],
        )
        .await;
    let volids: Vec<&str> = images
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["volid"].as_str())
        .collect();
    assert!(volids.contains(&IMAGE), "{volids:?}");
    assert!(
        volids.contains(&"local:import/debian-13-genericcloud-amd64.qcow2"),
        "{volids:?}"
    );

    let (r, st) = create_vm(&sim, "200", "web-vm", false).await;
    assert_eq!(st["exitstatus"], "OK", "{st}");
    assert!(upid(&r).contains(":qmcreate:200:root@pam!ctforge:"));
    let log = sim.task_log("pve1", &upid(&r)).await.text;
    assert!(
        log.contains("transferred 2.0 GiB of 2.0 GiB (100.00%)"),
        "{log}"
    );
    assert!(
        log.contains(
            "scsi0: successfully created disk 'local-lvm:vm-200-disk-0,iothread=1,size=2G'"
        ),
        "{log}"
    );
    assert!(
        log.contains("ide2: successfully created disk 'local-lvm:vm-200-cloudinit,media=cdrom'"),
        "{log}"
    );

    let conf = sim.get("/nodes/pve1/qemu/200/config").await;
    let c = conf.data();
    assert_eq!(c["scsi0"], "local-lvm:vm-200-disk-0,iothread=1,size=2G");
    assert_eq!(c["ide2"], "local-lvm:vm-200-cloudinit,media=cdrom");
    let net0 = c["net0"].as_str().expect("net0");
    assert!(net0.starts_with("virtio=BC:24:11:"), "{net0}");
    assert!(net0.ends_with(",bridge=vmbr0,tag=20"), "{net0}");
    assert_eq!(c["boot"], "order=scsi0;net0");
    assert_eq!(c["agent"], "enabled=1");
    assert_eq!(c["memory"], "2048");
    assert_eq!(c["cores"], 2);
    assert_eq!(c["onboot"], 1);
    assert_eq!(c["sshkeys"], urlencode(KEY));
    let pw = c["cipassword"].as_str().expect("cipassword");
    assert!(pw.starts_with("$5$") && !pw.contains("s3cret"), "{pw}");
    assert!(c["smbios1"].as_str().unwrap_or("").starts_with("uuid="));
    assert!(c.get("lock").is_none(), "{c}");

    // Listed as qemu everywhere; its disk shows in the storage content.
    let res = sim.get("/cluster/resources").await;
    let vm = res
        .data()
        .as_array()
        .expect("list")
        .iter()
        .find(|v| v["id"] == "qemu/200")
        .cloned()
        .expect("qemu/200 in resources");
    assert_eq!(vm["type"], "qemu");
    assert_eq!(vm["name"], "web-vm");
    assert_eq!(vm["status"], "stopped");
    assert_eq!(vm["maxdisk"], 2u64 * 1024 * 1024 * 1024);
    assert_eq!(vm["tags"], "web;vm");
    let list = sim.get("/nodes/pve1/qemu").await;
    assert_eq!(
        list.data().as_array().map(Vec::len),
        Some(1),
        "{}",
        list.text
    );
    let cts = sim.get("/nodes/pve1/lxc").await;
    assert!(
        cts.data()
            .as_array()
            .expect("list")
            .iter()
            .all(|ct| ct["vmid"] != 200),
        "a VM is no container: {}",
        cts.text
    );
    let disks = sim
        .call(
            "GET",
            "/nodes/pve1/storage/local-lvm/content",
            &sim.root(),
            &[("vmid", "200")],
        )
        .await;
    assert!(
        disks.text.contains("local-lvm:vm-200-disk-0"),
        "{}",
        disks.text
    );

    // VMIDs are shared with containers, with Proxmox's texts both ways.
    let again = sim
        .post("/nodes/pve1/qemu", &[("vmid", "100"), ("name", "x")])
        .await;
    assert_eq!(again.status, 500);
    assert_eq!(
        again.message().trim_end(),
        "unable to create VM 100 - CT 100 already exists on node 'pve1'"
    );
    let ct = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "200"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
            ],
        )
        .await;
    assert_eq!(
        ct.message().trim_end(),
        "VM 200 already exists on node 'pve1'"
    );
    let next = sim.get("/cluster/nextid").await;
    assert_eq!(next.data(), "102");
    let missing = sim.get("/nodes/pve1/qemu/999/config").await;
    assert_eq!(
        missing.message().trim_end(),
        "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"
    );
    let ct_as_vm = sim.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(ct_as_vm.status, 500, "{}", ct_as_vm.text);
}

#[tokio::test]
async fn create_refuses_bad_imports_and_missing_rights() {
    let sim = sim(0).await;
    let bad_syntax = sim
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "210"),
                ("scsi0", &format!("local-lvm:8,import-from={IMAGE}")),
            ],
        )
        .await;
    assert_eq!(bad_syntax.status, 400, "{}", bad_syntax.text);
    assert!(
        bad_syntax.body["errors"]["scsi0"]
            .as_str()
            .unwrap_or("")
            .contains("'import-from' requires special syntax"),
        "{}",
        bad_syntax.text
    );
    let wrong_type = sim
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "210"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:iso/debian-12.7.0-amd64-netinst.iso",
                ),
            ],
        )
        .await;
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.text);
    assert!(
        wrong_type.text.contains("has wrong type 'iso'"),
        "{}",
        wrong_type.text
    );
    let no_images = sim
        .post("/nodes/pve1/qemu", &[("vmid", "210"), ("scsi0", "local:8")])
        .await;
    assert_eq!(no_images.status, 400, "{}", no_images.text);
    assert!(
        no_images.text.contains("does not support vm images"),
        "{}",
        no_images.text
    );
    let badkey = sim
        .post(
            "/nodes/pve1/qemu",
            &[("vmid", "210"), ("sshkeys", "not%20a%20key")],
        )
        .await;
    assert_eq!(
        badkey.message().trim_end(),
        "SSH public key validation error"
    );
    let missing_image = sim
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "211"),
                ("scsi0", "local-lvm:0,import-from=local:import/nope.qcow2"),
            ],
        )
        .await;
    assert_eq!(missing_image.status, 200, "{}", missing_image.text);
    let st = sim.wait_task("pve1", &upid(&missing_image)).await;
    assert!(
        st["exitstatus"]
            .as_str()
            .unwrap_or("")
            .starts_with("unable to create VM 211 - cannot import from 'local:import/nope.qcow2'"),
        "{st}"
    );
    assert_eq!(sim.get("/nodes/pve1/qemu/211/config").await.status, 500);

    // alice may only audit and use the console.
    let login = sim.login("alice@pve", "alice").await;
    let alice = Auth::Ticket {
        ticket: login.data()["ticket"].as_str().expect("ticket").to_owned(),
        csrf: login.data()["CSRFPreventionToken"]
            .as_str()
            .map(str::to_owned),
    };
    let denied = sim
        .call("POST", "/nodes/pve1/qemu", &alice, &[("vmid", "212")])
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert_eq!(denied.message().trim_end(), "Permission check failed");
}

#[tokio::test]
async fn the_agent_answers_after_boot_and_runs_commands_in_the_guest() {
    // The guest boots "forever" until the test lets it finish.
    let sim = sim(3_600_000).await;
    let (_, st) = create_vm(&sim, "200", "web-vm", false).await;
    assert_eq!(st["exitstatus"], "OK");
    let stopped = sim.post("/nodes/pve1/qemu/200/agent/ping", &[]).await;
    assert_eq!(stopped.message().trim_end(), "VM 200 is not running");

    let start = sim.post("/nodes/pve1/qemu/200/status/start", &[]).await;
    let su = upid(&start);
    assert!(su.contains(":qmstart:200:"), "{su}");
    assert_eq!(sim.wait_task("pve1", &su).await["exitstatus"], "OK");
    let log = sim.task_log("pve1", &su).await.text;
    assert!(log.contains("generating cloud-init ISO"), "{log}");
    let cur = sim.get("/nodes/pve1/qemu/200/status/current").await;
    assert_eq!(cur.data()["status"], "running");
    assert_eq!(cur.data()["qmpstatus"], "running");
    assert_eq!(cur.data()["agent"], 1);

    // The guest still boots: the agent does not answer yet, then it does.
    let early = sim.post("/nodes/pve1/qemu/200/agent/ping", &[]).await;
    assert_eq!(early.status, 500, "{}", early.text);
    assert_eq!(
        early.message().trim_end(),
        "QEMU guest agent is not running"
    );
    sim.h.state().set_agent_ready_after(200, Duration::ZERO);
    let ping = sim.post("/nodes/pve1/qemu/200/agent/ping", &[]).await;
    assert_eq!(ping.status, 200, "{}", ping.text);
    assert_eq!(ping.data()["result"], serde_json::json!({}));

    // cloud-init: hostname, the user's key.
    let (code, out, _) = agent_run(&sim, "200", &["cat", "/etc/hostname"], None).await;
    assert_eq!((code, out.as_str()), (0, "web-vm\n"));
    let (_, keys, _) = agent_run(
        &sim,
        "200",
        &["cat", "/home/admin/.ssh/authorized_keys"],
        None,
    )
    .await;
    assert_eq!(keys.trim_end(), KEY);

    // The same shell as `pct exec`: packages, services, scripts on stdin, exit codes.
    let (code, _, _) = agent_run(
        &sim,
        "200",
        &["bash", "-c", "apt-get install -y nginx-light"],
        None,
    )
    .await;
    assert_eq!(code, 0);
    let (_, active, _) = agent_run(&sim, "200", &["systemctl", "is-active", "nginx"], None).await;
    assert_eq!(active.trim(), "active");
    let (code, out, _) = agent_run(
        &sim,
        "200",
        &["bash", "-s"],
        Some("echo from-stdin\nexit 3\n"),
    )
    .await;
    assert_eq!((code, out.as_str()), (3, "from-stdin\n"));
    let (code, _, err) = agent_run(&sim, "200", &["cat", "/nope"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("No such file"), "{err}");
    let gone = sim
        .call(
            "GET",
            "/nodes/pve1/qemu/200/agent/exec-status",
            &sim.root(),
            &[("pid", "77777")],
        )
        .await;
    assert_eq!(
        gone.message().trim_end(),
        "Agent error: Invalid parameter 'pid'"
    );

    // JSON bodies carry the command as an array.
    let json = sim
        .c
        .post(format!(
            "{}/nodes/pve1/qemu/200/agent/exec",
            sim.h.api_url()
        ))
        .header("Authorization", sim.h.token_header())
        .json(&serde_json::json!({"command": ["echo", "json", "array"]}))
        .send()
        .await
        .expect("request");
    assert_eq!(json.status().as_u16(), 200);

    // Files through the agent.
    let w = sim
        .post(
            "/nodes/pve1/qemu/200/agent/file-write",
            &[("file", "/etc/app.conf"), ("content", "port=8080\n")],
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    assert_eq!(w.data(), &Value::Null);
    let enc = sim
        .post(
            "/nodes/pve1/qemu/200/agent/file-write",
            &[
                ("file", "/etc/b64.conf"),
                ("content", "aGVsbG8K"),
                ("encode", "0"),
            ],
        )
        .await;
    assert_eq!(enc.status, 200, "{}", enc.text);
    let rd = sim
        .call(
            "GET",
            "/nodes/pve1/qemu/200/agent/file-read",
            &sim.root(),
            &[("file", "/etc/b64.conf")],
        )
        .await;
    assert_eq!(rd.data()["content"], "hello\n");
    let (_, conf, _) = agent_run(&sim, "200", &["cat", "/etc/app.conf"], None).await;
    assert_eq!(conf, "port=8080\n");

    // The address the guest got on the bridge.
    let ifs = sim
        .get("/nodes/pve1/qemu/200/agent/network-get-interfaces")
        .await;
    let list = ifs.data()["result"].as_array().expect("interfaces").clone();
    assert_eq!(list[0]["name"], "lo");
    let ens18 = list.iter().find(|i| i["name"] == "ens18").expect("ens18");
    let mac = sim.get("/nodes/pve1/qemu/200/config").await.data()["net0"]
        .as_str()
        .and_then(|n| n.split(',').next())
        .and_then(|m| m.split_once('='))
        .map(|(_, m)| m.to_lowercase())
        .expect("mac");
    assert_eq!(ens18["hardware-address"], mac);
    assert_eq!(ens18["ip-addresses"][0]["ip-address"], "10.10.0.202");
    assert_eq!(ens18["ip-addresses"][0]["ip-address-type"], "ipv4");
    let os = sim.get("/nodes/pve1/qemu/200/agent/get-osinfo").await;
    assert_eq!(os.data()["result"]["id"], "debian", "{}", os.text);

    // Privileges: exec needs VM.GuestAgent.Unrestricted.
    let login = sim.login("alice@pve", "alice").await;
    let alice = Auth::Ticket {
        ticket: login.data()["ticket"].as_str().expect("ticket").to_owned(),
        csrf: login.data()["CSRFPreventionToken"]
            .as_str()
            .map(str::to_owned),
    };
    let denied = sim
        .call(
            "POST",
            "/nodes/pve1/qemu/200/agent/exec",
            &alice,
            &[("command", "id")],
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.message().trim_end(),
        "Permission check failed (/vms/200, VM.GuestAgent.Unrestricted)"
    );

    // Clean shutdown through the agent; the agent is gone with the VM.
    let sd = sim
        .post("/nodes/pve1/qemu/200/status/shutdown", &[("timeout", "30")])
        .await;
    let sdu = upid(&sd);
    assert!(sdu.contains(":qmshutdown:200:"), "{sdu}");
    assert_eq!(sim.wait_task("pve1", &sdu).await["exitstatus"], "OK");
    assert_eq!(
        sim.get("/nodes/pve1/qemu/200/status/current").await.data()["status"],
        "stopped"
    );
    let after = sim.post("/nodes/pve1/qemu/200/agent/ping", &[]).await;
    assert_eq!(after.message().trim_end(), "VM 200 is not running");
    let reboot = sim.post("/nodes/pve1/qemu/200/status/reboot", &[]).await;
    assert_eq!(reboot.message().trim_end(), "VM 200 not running");

    // Delete: task, gone from the list, the resources and the storage.
    let del = sim
        .call(
            "DELETE",
            "/nodes/pve1/qemu/200",
            &sim.root(),
            &[("purge", "1")],
        )
        .await;
    let du = upid(&del);
    assert!(du.contains(":qmdestroy:200:"), "{du}");
    assert_eq!(sim.wait_task("pve1", &du).await["exitstatus"], "OK");
    assert!(
        !sim.get("/cluster/resources")
            .await
            .text
            .contains("qemu/200")
    );
    assert_eq!(sim.get("/nodes/pve1/qemu/200/config").await.status, 500);
    let disks = sim.get("/nodes/pve1/storage/local-lvm/content").await;
    assert!(!disks.text.contains("vm-200-"), "{}", disks.text);
}

#[tokio::test]
async fn agentless_vms_shut_down_by_acpi_and_the_agent_is_unconfigured() {
    let sim = sim(0).await;
    let r = sim
        .post(
            "/nodes/pve1/qemu",
            &[
                ("vmid", "220"),
                ("scsi0", "local-lvm:4"),
                ("net0", "e1000,bridge=vmbr0"),
                ("start", "1"),
            ],
        )
        .await;
    assert_eq!(sim.wait_task("pve1", &upid(&r)).await["exitstatus"], "OK");
    let log = sim.task_log("pve1", &upid(&r)).await.text;
    assert!(log.contains("Execute autostart"), "{log}");
    assert_eq!(
        sim.get("/nodes/pve1/qemu/220/status/current").await.data()["status"],
        "running"
    );
    let conf = sim.get("/nodes/pve1/qemu/220/config").await;
    assert_eq!(conf.data()["scsi0"], "local-lvm:vm-220-disk-0,size=4G");
    let ping = sim.post("/nodes/pve1/qemu/220/agent/ping", &[]).await;
    assert_eq!(ping.message().trim_end(), "No QEMU guest agent configured");
    // Running: a delete is refused, a config change waits in pending.
    let del = sim
        .call("DELETE", "/nodes/pve1/qemu/220", &sim.root(), &[])
        .await;
    assert_eq!(
        del.message().trim_end(),
        "VM 220 is running - destroy failed"
    );
    let put = sim
        .call(
            "PUT",
            "/nodes/pve1/qemu/220/config",
            &sim.root(),
            &[("memory", "4096"), ("name", "renamed")],
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let pending = sim.get("/nodes/pve1/qemu/220/pending").await;
    let mem = pending
        .data()
        .as_array()
        .expect("pending")
        .iter()
        .find(|e| e["key"] == "memory")
        .cloned()
        .expect("memory pending");
    assert_eq!(mem["pending"], "4096", "{mem}");
    assert_eq!(
        sim.get("/nodes/pve1/qemu/220/config").await.data()["name"],
        "renamed"
    );
    let sd = sim.post("/nodes/pve1/qemu/220/status/shutdown", &[]).await;
    assert_eq!(sim.wait_task("pve1", &upid(&sd)).await["exitstatus"], "OK");
    let stop_again = sim.post("/nodes/pve1/qemu/220/status/stop", &[]).await;
    assert_eq!(
        sim.wait_task("pve1", &upid(&stop_again)).await["exitstatus"],
        "OK"
    );
}

#[tokio::test]
async fn resize_template_clone_and_snapshots() {
    let sim = sim(0).await;
    let (_, st) = create_vm(&sim, "200", "tmpl", false).await;
    assert_eq!(st["exitstatus"], "OK");
    let rs = sim
        .call(
            "PUT",
            "/nodes/pve1/qemu/200/resize",
            &sim.root(),
            &[("disk", "scsi0"), ("size", "+6G")],
        )
        .await;
    let ru = upid(&rs);
    assert!(ru.contains(":resize:200:"), "{ru}");
    assert_eq!(sim.wait_task("pve1", &ru).await["exitstatus"], "OK");
    assert_eq!(
        sim.get("/nodes/pve1/qemu/200/config").await.data()["scsi0"],
        "local-lvm:vm-200-disk-0,iothread=1,size=8G"
    );
    let shrink = sim
        .call(
            "PUT",
            "/nodes/pve1/qemu/200/resize",
            &sim.root(),
            &[("disk", "scsi0"), ("size", "4G")],
        )
        .await;
    assert_eq!(
        shrink.message().trim_end(),
        "shrinking disks is not supported"
    );
    let cd = sim
        .call(
            "PUT",
            "/nodes/pve1/qemu/200/resize",
            &sim.root(),
            &[("disk", "ide2"), ("size", "+1G")],
        )
        .await;
    assert_eq!(cd.message().trim_end(), "you can't resize a cdrom");

    // Snapshots on thin LVM.
    let snap = sim
        .post("/nodes/pve1/qemu/200/snapshot", &[("snapname", "before")])
        .await;
    assert_eq!(
        sim.wait_task("pve1", &upid(&snap)).await["exitstatus"],
        "OK"
    );
    let list = sim.get("/nodes/pve1/qemu/200/snapshot").await;
    assert_eq!(
        list.data().as_array().map(Vec::len),
        Some(2),
        "{}",
        list.text
    );
    let del = sim
        .call(
            "DELETE",
            "/nodes/pve1/qemu/200/snapshot/before",
            &sim.root(),
            &[],
        )
        .await;
    assert_eq!(sim.wait_task("pve1", &upid(&del)).await["exitstatus"], "OK");

    // A normal VM clones fully; a linked clone needs a template.
    let linked = sim
        .post(
            "/nodes/pve1/qemu/200/clone",
            &[("newid", "201"), ("full", "0")],
        )
        .await;
    assert_eq!(linked.status, 500, "{}", linked.text);
    assert!(
        linked
            .message()
            .starts_with("Linked clone feature is not supported for 'local-lvm:vm-200-disk-0'"),
        "{}",
        linked.text
    );
    let t = sim.post("/nodes/pve1/qemu/200/template", &[]).await;
    let tu = upid(&t);
    assert!(tu.contains(":qmtemplate:200:"), "{tu}");
    assert_eq!(sim.wait_task("pve1", &tu).await["exitstatus"], "OK");
    let tconf = sim.get("/nodes/pve1/qemu/200/config").await;
    assert_eq!(tconf.data()["template"], 1);
    assert_eq!(
        tconf.data()["scsi0"],
        "local-lvm:base-200-disk-0,iothread=1,size=8G"
    );
    let start = sim.post("/nodes/pve1/qemu/200/status/start", &[]).await;
    let st = sim.wait_task("pve1", &upid(&start)).await;
    assert_eq!(st["exitstatus"], "you can't start a vm if it's a template");

    let cl = sim
        .post(
            "/nodes/pve1/qemu/200/clone",
            &[("newid", "201"), ("name", "web-1")],
        )
        .await;
    let cu = upid(&cl);
    assert!(cu.contains(":qmclone:200:"), "{cu}");
    assert_eq!(sim.wait_task("pve1", &cu).await["exitstatus"], "OK");
    let c1 = sim.get("/nodes/pve1/qemu/201/config").await;
    assert_eq!(
        c1.data()["scsi0"],
        "local-lvm:base-200-disk-0/vm-201-disk-0,iothread=1,size=8G"
    );
    assert_eq!(c1.data()["ide2"], "local-lvm:vm-201-cloudinit,media=cdrom");
    assert_eq!(c1.data()["name"], "web-1");
    assert!(c1.data().get("template").is_none());
    assert_ne!(
        c1.data()["net0"],
        sim.get("/nodes/pve1/qemu/200/config").await.data()["net0"],
        "a clone gets a new MAC"
    );
    let full = sim
        .post(
            "/nodes/pve1/qemu/200/clone",
            &[("newid", "202"), ("full", "1")],
        )
        .await;
    assert_eq!(
        sim.wait_task("pve1", &upid(&full)).await["exitstatus"],
        "OK"
    );
    let c2 = sim.get("/nodes/pve1/qemu/202/config").await;
    assert_eq!(
        c2.data()["scsi0"],
        "local-lvm:vm-202-disk-0,iothread=1,size=8G"
    );
    assert_eq!(c2.data()["name"], "Copy-of-VM-tmpl");
    let taken = sim
        .post("/nodes/pve1/qemu/200/clone", &[("newid", "100")])
        .await;
    assert_eq!(
        taken.message().trim_end(),
        "unable to create VM 100: config file already exists"
    );
    // The clone boots and its agent runs commands.
    let s = sim.post("/nodes/pve1/qemu/201/status/start", &[]).await;
    assert_eq!(sim.wait_task("pve1", &upid(&s)).await["exitstatus"], "OK");
    let (code, out, _) = agent_run(&sim, "201", &["cat", "/etc/hostname"], None).await;
    assert_eq!((code, out.as_str()), (0, "web-1\n"));
}
