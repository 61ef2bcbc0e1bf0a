//! The real VM backend end to end: a QEMU/KVM guest created through the HTTP API with its disk
//! imported from the Debian cloud disk `scripts/setup-vm.sh` builds and a cloud-init drive,
//! started, reached through its guest agent (ping, exec, file-write, network-get-interfaces on
//! the bridge), stopped and deleted (process, tap and disk gone). Prints the boot-to-agent time
//! and the guest's memory.
//!
//! The disks' day-two operations without a boot (seconds): snapshots, rollback, template, linked
//! and full clones, checked in the qcow2 files with `qemu-io` patterns.
//!
//! Skipped, with the reason, when not root, without `/dev/kvm`, without QEMU or without the
//! disk (`scripts/setup-vm.sh` prepares them; `.ci/run` runs it), or with `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ctforge_pve_sim::backend::lxc::{LxcBackend, qcow2_info, qcow2_snapshots};
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

/// A simulator on the real backend with its state in a new directory `ctforge-<tag>-<pid>`, or
/// `None` (the reason printed) where the real VM backend cannot run.
async fn real_sim(name: &str, tag: &str) -> Option<(Sim, PathBuf, LxcOptions, PathBuf)> {
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
        println!("SKIPPED {name}: {why}");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("ctforge-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = SimConfig::for_tests();
    cfg.backend = Backend::Lxc;
    cfg.state_dir = Some(dir.clone());
    cfg.lxc = opts.clone();
    Some((Sim::start(cfg).await, dir, opts, image))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vm_boots_with_cloud_init_and_answers_through_its_agent() {
    let Some((sim, dir, opts, image)) = real_sim(
        "real_vm_boots_with_cloud_init_and_answers_through_its_agent",
        "vm-e2e",
    )
    .await
    else {
        return;
    };
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
    // (Its exit code also reports failed modules, e.g. `package_upgrade` without a mirror.)
    let (code, status) = agent_exec(&sim, &["cloud-init", "status", "--wait"]).await;
    println!("cloud-init status (exit {code}): {}", status.trim());
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
    // Gone, or a zombie its reaper has not collected yet (no `exe` any more).
    assert!(
        !Path::new(&format!("/proc/{pid}/exe")).exists(),
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

/// `qemu-io -c <cmd> <disk>`'s output (`-r`: read-only, so a template's 0444 base opens).
fn qemu_io(disk: &Path, cmd: &str, read_only: bool) -> String {
    let mut c = std::process::Command::new("qemu-io");
    c.args(["-f", "qcow2"]);
    if read_only {
        c.arg("-r");
    }
    let o = c.arg("-c").arg(cmd).arg(disk).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "qemu-io {cmd}: {out}");
    out
}

/// Whether the first 64 KiB of `disk` hold byte `pattern`.
fn holds(disk: &Path, pattern: u8) -> bool {
    let out = qemu_io(disk, &format!("read -P 0x{pattern:02x} 0 64k"), true);
    !out.contains("verification failed") && out.contains("read 65536/65536")
}

fn info(disk: &Path) -> serde_json::Value {
    qcow2_info(disk).unwrap()
}

fn snapshot_names(disk: &Path) -> Vec<String> {
    qcow2_snapshots(disk).unwrap()
}

/// A task's exit status and log, once it stopped.
async fn finished(sim: &Sim, r: common::Resp, what: &str) -> (String, String) {
    assert_eq!(r.status, 200, "{what}: {}", r.text);
    let upid = r.data().as_str().unwrap().to_string();
    let enc = percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let t0 = Instant::now();
    let st = loop {
        let st = sim.get(&format!("/nodes/{NODE}/tasks/{enc}/status")).await;
        if st.data()["status"] == "stopped" {
            break st.data().clone();
        }
        // A full clone copies the whole disk.
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{what} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = sim.task_log(NODE, &upid).await;
    let lines: Vec<String> = log
        .data()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["t"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (
        st["exitstatus"].as_str().unwrap_or("").to_owned(),
        lines.join("\n"),
    )
}

/// Snapshots, rollback, convert to template, a full clone from a snapshot, a linked clone and
/// the refused destruction of a template in use, on the real backend's qcow2 disks, without
/// booting: what each step did is read back from the files (`qemu-io` patterns, `qemu-img
/// info`). The running VM's way (QMP) is exercised by ctforge's `vm_web_reaches_ready_on_a_real_vm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_vm_disks_snapshot_roll_back_and_clone_without_booting() {
    const NAME: &str = "real_vm_disks_snapshot_roll_back_and_clone_without_booting";
    const SRC: u32 = 4344;
    let Some((sim, dir, _, _)) = real_sim(NAME, "vm-disks").await else {
        return;
    };
    let disk_of = |vmid: u32| dir.join(format!("qemu/{vmid}/disk-scsi0.qcow2"));
    let src_disk = disk_of(SRC);
    let vmid = SRC.to_string();
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu"),
            &[
                ("vmid", vmid.as_str()),
                ("name", "disks"),
                (
                    "scsi0",
                    "local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2",
                ),
                ("ide2", "local-lvm:cloudinit"),
                ("net0", "virtio,bridge=vmbr0"),
                ("agent", "enabled=1"),
            ],
        )
        .await;
    task(&sim, r, "create", Duration::from_secs(120)).await;
    let t0 = Instant::now();
    qemu_io(&src_disk, "write -P 0xaa 0 64k", false);

    // A snapshot of the stopped VM is an internal qcow2 snapshot of each disk.
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu/{SRC}/snapshot"),
            &[("snapname", "before")],
        )
        .await;
    let (status, log) = finished(&sim, r, "snapshot").await;
    assert_eq!(status, "OK", "{log}");
    assert!(
        log.contains(&format!(
            "snapshotting 'drive-scsi0' (local-lvm:vm-{SRC}-disk-0)"
        )),
        "{log}"
    );
    assert!(
        !log.contains("drive-ide2"),
        "the cloud-init drive is not snapshotted: {log}"
    );
    assert_eq!(snapshot_names(&src_disk), ["before"]);
    qemu_io(&src_disk, "write -P 0xbb 0 64k", false);

    // A full clone from the snapshot has the snapshot's data, in a file of its own.
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu/{SRC}/clone"),
            &[("newid", "4345"), ("snapname", "before"), ("full", "1")],
        )
        .await;
    let (status, log) = finished(&sim, r, "full clone").await;
    assert_eq!(status, "OK", "{log}");
    assert!(log.contains("create full clone of drive scsi0"), "{log}");
    assert!(log.contains("transferred "), "{log}");
    assert!(
        holds(&disk_of(4345), 0xaa),
        "the clone has the snapshot's data"
    );
    assert!(
        info(&disk_of(4345)).get("backing-filename").is_none(),
        "a full copy"
    );
    assert!(snapshot_names(&disk_of(4345)).is_empty());

    // Rollback puts the snapshot's data back; the VM is told it is another generation.
    let genid = |cfg: common::Resp| cfg.data()["vmgenid"].as_str().unwrap_or("").to_owned();
    let before = genid(sim.get(&format!("/nodes/{NODE}/qemu/{SRC}/config")).await);
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu/{SRC}/snapshot/before/rollback"),
            &[],
        )
        .await;
    let (status, log) = finished(&sim, r, "rollback").await;
    assert_eq!(status, "OK", "{log}");
    assert!(holds(&src_disk, 0xaa), "rolled back");
    let after = genid(sim.get(&format!("/nodes/{NODE}/qemu/{SRC}/config")).await);
    assert!(
        !before.is_empty() && after != before,
        "a new vmgenid: {before} → {after}"
    );

    // Deleting it removes it from the disk; a template cannot have snapshots.
    let r = sim
        .call(
            "DELETE",
            &format!("/nodes/{NODE}/qemu/{SRC}/snapshot/before"),
            &sim.root(),
            &[],
        )
        .await;
    let (status, log) = finished(&sim, r, "delete snapshot").await;
    assert_eq!(status, "OK", "{log}");
    assert!(snapshot_names(&src_disk).is_empty());
    let r = sim
        .post(&format!("/nodes/{NODE}/qemu/{SRC}/template"), &[])
        .await;
    let (status, log) = finished(&sim, r, "template").await;
    assert_eq!(status, "OK", "{log}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&src_disk).unwrap().permissions().mode() & 0o777,
        0o444,
        "the template's disk is a read-only base"
    );
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu/{SRC}/snapshot"),
            &[("snapname", "late")],
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(
        r.text
            .contains("you can't take a snapshot if it's a template"),
        "{}",
        r.text
    );

    // A linked clone of the template: a qcow2 on the template's disk.
    let r = sim
        .post(
            &format!("/nodes/{NODE}/qemu/{SRC}/clone"),
            &[("newid", "4346"), ("name", "linked")],
        )
        .await;
    let (status, log) = finished(&sim, r, "linked clone").await;
    assert_eq!(status, "OK", "{log}");
    assert!(
        log.contains(&format!(
            "create linked clone of drive scsi0 (local-lvm:base-{SRC}-disk-0)"
        )),
        "{log}"
    );
    let linked = disk_of(4346);
    assert_eq!(
        info(&linked)["backing-filename"],
        format!("../{SRC}/disk-scsi0.qcow2")
    );
    assert!(holds(&linked, 0xaa), "reads the template's data");
    qemu_io(&linked, "write -P 0xcc 0 64k", false);
    assert!(
        holds(&src_disk, 0xaa),
        "the clone's writes stay in the clone"
    );

    // The template's base is in use: Proxmox refuses to destroy it, nothing is removed.
    let r = sim
        .call(
            "DELETE",
            &format!("/nodes/{NODE}/qemu/{SRC}"),
            &sim.root(),
            &[],
        )
        .await;
    let (status, log) = finished(&sim, r, "destroy template").await;
    assert_eq!(
        status,
        format!("base volume 'local-lvm:base-{SRC}-disk-0' is still in use by linked cloned"),
        "{log}"
    );
    assert!(src_disk.is_file() && holds(&linked, 0xcc));
    let cfg = sim.get(&format!("/nodes/{NODE}/qemu/{SRC}/config")).await;
    assert_eq!(cfg.status, 200, "the template stays: {}", cfg.text);

    // Without its clone, the template goes, files and all.
    for vmid in [4346, 4345, SRC] {
        let r = sim
            .call(
                "DELETE",
                &format!("/nodes/{NODE}/qemu/{vmid}"),
                &sim.root(),
                &[],
            )
            .await;
        task(&sim, r, "destroy", Duration::from_secs(60)).await;
        assert!(
            !dir.join(format!("qemu/{vmid}")).exists(),
            "VM {vmid}'s files are gone"
        );
    }
    println!(
        "{NAME}: disk operations in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
