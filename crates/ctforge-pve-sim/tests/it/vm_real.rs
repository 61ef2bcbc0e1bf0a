//! The real VM backend end to end: a QEMU/KVM guest created through the HTTP API with its disk
//! imported from the Debian cloud disk `scripts/setup-vm.sh` builds and a cloud-init drive,
//! started, reached through its guest agent (ping, exec, file-write, network-get-interfaces on
//! the bridge), stopped and deleted (process, tap and disk gone). Prints the boot-to-agent time
//! and the guest's memory.
//!
//! Skipped, with the reason, when not root, without `/dev/kvm`, without QEMU or without the
//! disk (`scripts/setup-vm.sh` prepares them; `.ci/run` runs it), or with `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use ctforge_pve_sim::backend::lxc::LxcBackend;
use ctforge_pve_sim::{Backend, LxcOptions, SimConfig};

use crate::common::{self, Sim};

const NODE: &str = "pve1";
const VMID: u32 = 4343;
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMn1pp1ZZ5kJcVtw2GM0J0PZ3sqYsHkPAXYSvlHFg5Ym me@host";

fn skip_reason(opts: &LxcOptions, image: &Path) -> Option<String> {
    if std::env::var("CTFORGE_SKIP_LXC").as_deref() == Ok("1") {
        return Some("CTFORGE_SKIP_LXC=1".into());
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false);
    if !root {
        return Some("needs root (tap devices, KVM)".into());
    }
    if !Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm is absent".into());
    }
    let qemu = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()))
        .unwrap_or(false);
    if !qemu {
        return Some("qemu-system-x86_64 is not installed (scripts/setup-vm.sh)".into());
    }
    if !image.is_file() {
        return Some(format!(
            "{} is missing (scripts/setup-vm.sh)",
            image.display()
        ));
    }
    if !opts.template.is_file() || !Path::new("/sys/class/net").join(&opts.bridge).exists() {
        return Some("the lxc backend is not prepared (scripts/setup-lxc.sh)".into());
    }
    None
}

async fn task(sim: &Sim, r: common::Resp, what: &str, limit: Duration) -> String {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    let upid = r.data().as_str().unwrap().to_string();
    let enc = percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let t0 = Instant::now();
    loop {
        let st = sim.get(&format!("/nodes/{NODE}/tasks/{enc}/status")).await;
        if st.data()["status"] == "stopped" {
            if st.data()["exitstatus"] != "OK" {
                let log = sim.task_log(NODE, &upid).await;
                panic!("{what} failed: {}\n{}", st.text, log.text);
            }
            return upid;
        }
        assert!(t0.elapsed() < limit, "{what} did not finish in {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agent_exec(sim: &Sim, argv: &[&str]) -> (i64, String) {
    let form: Vec<(&str, &str)> = argv.iter().map(|a| ("command", *a)).collect();
    let r = sim
        .post(&format!("/nodes/{NODE}/qemu/{VMID}/agent/exec"), &form)
        .await;
    assert_eq!(r.status, 200, "exec {argv:?}: {}", r.text);
    let pid = r.data()["pid"].as_i64().unwrap().to_string();
    let t0 = Instant::now();
    loop {
        let s = sim
            .call(
                "GET",
                &format!("/nodes/{NODE}/qemu/{VMID}/agent/exec-status"),
                &sim.root(),
                &[("pid", &pid)],
            )
            .await;
        assert_eq!(s.status, 200, "exec-status: {}", s.text);
        if s.data()["exited"] == 1 {
            return (
                s.data()["exitcode"].as_i64().unwrap_or(-1),
                s.data()["out-data"].as_str().unwrap_or("").to_owned(),
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "exec {argv:?} hangs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vm_boots_with_cloud_init_and_answers_through_its_agent() {
    let opts = LxcOptions {
        destroy_on_drop: true,
        ..LxcOptions::default()
    };
    let image = opts
        .template
        .parent()
        .unwrap()
        .join("import/debian-12-genericcloud-amd64.qcow2");
    if let Some(why) = skip_reason(&opts, &image) {
        println!("SKIPPED real_vm_boots_with_cloud_init_and_answers_through_its_agent: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctforge-vm-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = SimConfig::for_tests();
    cfg.backend = Backend::Lxc;
    cfg.state_dir = Some(dir.clone());
    cfg.lxc = opts.clone();
    let sim = Sim::start(cfg).await;
    let state = sim.h.state();
    let lxc = state
        .backend()
        .as_any()
        .downcast_ref::<LxcBackend>()
        .unwrap();
    assert_eq!(lxc.import_dir(), image.parent().unwrap());
    let vm_dir = dir.join("qemu").join(VMID.to_string());

    let keys =
        percent_encoding::utf8_percent_encode(KEY, percent_encoding::NON_ALPHANUMERIC).to_string();
    let vmid = VMID.to_string();
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu"),
            &[
                ("vmid", vmid.as_str()),
                ("name", "vm-real"),
                ("memory", "1024"),
                ("cores", "1"),
                ("scsihw", "virtio-scsi-single"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2",
                ),
                ("ide2", "local-lvm:cloudinit"),
                ("net0", "virtio,bridge=vmbr0"),
                ("serial0", "socket"),
                ("agent", "enabled=1"),
                ("ciuser", "admin"),
                ("sshkeys", &keys),
                ("ipconfig0", "ip=dhcp"),
                ("ciupgrade", "0"),
            ],
        )
        .await;
    task(&sim, r, "create", Duration::from_secs(120)).await;
    assert!(
        vm_dir.join("disk-scsi0.qcow2").is_file(),
        "the imported disk"
    );
    let rs = sim
        .call(
            "PUT",
            &format!("/nodes/{NODE}/qemu/{VMID}/resize"),
            &sim.root(),
            &[("disk", "scsi0"), ("size", "4G")],
        )
        .await;
    task(&sim, rs, "resize", Duration::from_secs(60)).await;

    let t0 = Instant::now();
    let st = sim
        .post(&format!("/nodes/{NODE}/qemu/{VMID}/status/start"), &[])
        .await;
    task(&sim, st, "start", Duration::from_secs(120)).await;
    // The agent answers once the guest booted.
    loop {
        let p = sim
            .post(&format!("/nodes/{NODE}/qemu/{VMID}/agent/ping"), &[])
            .await;
        if p.status == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the agent did not answer: {}\nconsole:\n{}",
            p.text,
            std::fs::read_to_string(vm_dir.join("console.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let boot = t0.elapsed();

    let (code, host) = agent_exec(&sim, &["cat", "/etc/hostname"]).await;
    assert_eq!((code, host.trim()), (0, "vm-real"));
    // cloud-init may still be finishing the user; wait for it before checking the key.
    let (code, _) = agent_exec(&sim, &["cloud-init", "status", "--wait"]).await;
    assert!(code == 0 || code == 2, "cloud-init status exited {code}");
    let (_, keys) = agent_exec(&sim, &["cat", "/home/admin/.ssh/authorized_keys"]).await;
    assert!(keys.contains(KEY), "{keys}");

    let ifs = sim
        .get(&format!(
            "/nodes/{NODE}/qemu/{VMID}/agent/network-get-interfaces"
        ))
        .await;
    let prefix = {
        let [a, b, c, _] = opts.bridge_ip.octets();
        format!("{a}.{b}.{c}.")
    };
    let addrs: Vec<String> = ifs.data()["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["ip-addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip-address"].as_str().map(str::to_owned))
        .collect();
    assert!(
        addrs.iter().any(|a| a.starts_with(&prefix)),
        "no address on the bridge: {addrs:?}"
    );

    let w = sim
        .post(
            &format!("/nodes/{NODE}/qemu/{VMID}/agent/file-write"),
            &[
                ("file", "/root/written.txt"),
                ("content", "through the agent\n"),
            ],
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    let (_, back) = agent_exec(&sim, &["cat", "/root/written.txt"]).await;
    assert_eq!(back, "through the agent\n");

    let cur = sim
        .get(&format!("/nodes/{NODE}/qemu/{VMID}/status/current"))
        .await;
    let mem = cur.data()["mem"].as_u64().unwrap_or(0);
    let pid = cur.data()["pid"].as_u64().unwrap_or(0);
    assert!(
        pid > 0 && Path::new(&format!("/proc/{pid}")).exists(),
        "{}",
        cur.text
    );
    println!(
        "real VM: boot to agent {:.1} s, guest memory (QEMU RSS) {} MiB of 1024 MiB",
        boot.as_secs_f64(),
        mem / (1024 * 1024)
    );

    let stop = sim
        .post(&format!("/nodes/{NODE}/qemu/{VMID}/status/stop"), &[])
        .await;
    task(&sim, stop, "stop", Duration::from_secs(60)).await;
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU still runs"
    );
    let del = sim
        .call(
            "DELETE",
            &format!("/nodes/{NODE}/qemu/{VMID}"),
            &sim.root(),
            &[],
        )
        .await;
    task(&sim, del, "delete", Duration::from_secs(60)).await;
    assert!(!vm_dir.exists(), "the VM's disk is gone");
    let cfg = sim.get(&format!("/nodes/{NODE}/qemu/{VMID}/config")).await;
    assert_eq!(cfg.status, 500);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
