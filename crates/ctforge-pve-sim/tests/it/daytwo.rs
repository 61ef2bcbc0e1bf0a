//! Day-two endpoints as Proxmox serves them: resize (grow only, its texts, `resize` task),
//! clone (full and linked, the locks while it runs, new MAC addresses), template, snapshots
//! refused on storages without the feature and rollback past newer snapshots on ZFS.

use std::time::Duration;

use ctforge_pve_sim::{SimConfig, Timings};
use serde_json::Value;

use crate::common::Sim;

async fn sim() -> Sim {
    Sim::start(SimConfig::for_tests().with_nodes(2).with_containers(6)).await
}

async fn create(sim: &Sim, vmid: &str, storage: &str) {
    let rootfs = format!("{storage}:4");
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", vmid),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("storage", storage),
                ("rootfs", &rootfs),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "create failed: {}", r.text);
    sim.wait_task("pve1", &upid(&r)).await;
}

fn upid(r: &crate::common::Resp) -> String {
    r.data()
        .as_str()
        .unwrap_or_else(|| panic!("no upid: {}", r.text))
        .to_owned()
}

#[tokio::test]
async fn resize_grows_and_refuses_to_shrink() {
    let sim = sim().await;
    let before = sim.get("/nodes/pve1/lxc/100/config").await.data()["rootfs"].clone();
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/resize",
            &sim.root(),
            &[("disk", "rootfs"), ("size", "+2G")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = upid(&r);
    assert!(u.contains(":resize:100:"), "{u}");
    assert_eq!(sim.wait_task("pve1", &u).await["exitstatus"], "OK");
    let after = sim.get("/nodes/pve1/lxc/100/config").await.data()["rootfs"].clone();
    assert_ne!(before, after);
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/resize",
            &sim.root(),
            &[("disk", "rootfs"), ("size", "1G")],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "unable to shrink disk size\n")
    );
    let size = after
        .as_str()
        .unwrap()
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .unwrap()
        .to_owned();
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/resize",
            &sim.root(),
            &[("disk", "rootfs"), ("size", &size)],
        )
        .await;
    assert_eq!(r.message(), "disk is already at specified size\n");
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/resize",
            &sim.root(),
            &[("disk", "rootfs"), ("size", "-1G")],
        )
        .await;
    assert_eq!(r.status, 400, "the pattern refuses a minus: {}", r.text);
}

#[tokio::test]
async fn clone_full_linked_and_template() {
    let cfg = SimConfig::for_tests()
        .with_nodes(2)
        .with_containers(6)
        .with_timings(Timings {
            snapshot: Duration::from_millis(400),
            ..Timings::instant()
        });
    let sim = Sim::start(cfg).await;
    // CT 103 is stopped on pve2 (with_containers: every fourth is stopped).
    let status = sim.get("/nodes/pve2/lxc/103/status/current").await;
    assert_eq!(status.data()["status"], "stopped", "{}", status.text);
    let r = sim
        .post(
            "/nodes/pve2/lxc/103/clone",
            &[("newid", "300"), ("full", "0")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.message()
            .starts_with("Linked clone feature for 'local-lvm:vm-103-disk-0' is not available"),
        "{}",
        r.text
    );
    let r = sim
        .post(
            "/nodes/pve2/lxc/103/clone",
            &[("newid", "300"), ("hostname", "copy")],
        )
        .await;
    let u = upid(&r);
    assert!(u.contains(":vzclone:103:"), "{u}");
    // While it runs, the source holds `disk` and the new CT `create`.
    assert_eq!(
        sim.get("/nodes/pve2/lxc/103/config").await.data()["lock"],
        "disk"
    );
    assert_eq!(
        sim.get("/nodes/pve2/lxc/300/config").await.data()["lock"],
        "create"
    );
    assert_eq!(sim.wait_task("pve2", &u).await["exitstatus"], "OK");
    let src = sim.get("/nodes/pve2/lxc/103/config").await;
    let copy = sim.get("/nodes/pve2/lxc/300/config").await;
    assert_eq!(copy.data()["hostname"], "copy");
    assert!(copy.data()["lock"].is_null() && src.data()["lock"].is_null());
    let mac = |v: &Value| {
        v["net0"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .find(|p| p.starts_with("hwaddr="))
            .unwrap_or("")
            .to_owned()
    };
    assert_ne!(mac(src.data()), mac(copy.data()), "a clone gets a new MAC");
    assert!(
        copy.data()["rootfs"]
            .as_str()
            .unwrap()
            .contains("vm-300-disk-0")
    );

    // A running CT is cloned fully only from a snapshot.
    let r = sim
        .post("/nodes/pve1/lxc/100/clone", &[("newid", "301")])
        .await;
    assert_eq!(
        r.message(),
        "Cannot do full clones on a running container without snapshots\n"
    );

    // Template: refused while running, then linked clones work.
    let r = sim.post("/nodes/pve1/lxc/100/template", &[]).await;
    assert_eq!(
        r.message(),
        "you can't convert a CT to template if the CT is running\n"
    );
    let r = sim.post("/nodes/pve2/lxc/103/template", &[]).await;
    assert_eq!((r.status, r.data()), (200, &Value::Null), "{}", r.text);
    for _ in 0..100 {
        if sim.get("/nodes/pve2/lxc/103/config").await.data()["template"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cfg = sim.get("/nodes/pve2/lxc/103/config").await;
    assert_eq!(cfg.data()["template"], 1);
    assert!(
        cfg.data()["rootfs"]
            .as_str()
            .unwrap()
            .contains("base-103-disk-0")
    );
    let r = sim.post("/nodes/pve2/lxc/103/template", &[]).await;
    assert_eq!(r.message(), "you can't convert a template to a template\n");
    let r = sim
        .post(
            "/nodes/pve2/lxc/103/clone",
            &[("newid", "302"), ("storage", "local-lvm"), ("full", "0")],
        )
        .await;
    assert_eq!(
        r.message(),
        "parameter 'storage' not allowed for linked clones\n"
    );
    let r = sim
        .post("/nodes/pve2/lxc/103/clone", &[("newid", "302")])
        .await;
    sim.wait_task("pve2", &upid(&r)).await;
    let linked = sim.get("/nodes/pve2/lxc/302/config").await;
    assert!(
        linked.data()["rootfs"]
            .as_str()
            .unwrap()
            .contains("base-103-disk-0/vm-302-disk-0"),
        "{}",
        linked.text
    );
    let r = sim
        .post("/nodes/pve2/lxc/103/clone", &[("newid", "302")])
        .await;
    assert_eq!(r.message(), "CT 302 already exists on node 'pve2'\n");
}

#[tokio::test]
async fn clone_and_template_check_privileges() {
    let scenario: ctforge_pve_sim::scenario::Scenario = toml::from_str(
        r#"
node_count = 1
[[containers]]
vmid = 200
node = "pve1"
status = "stopped"
[[users]]
userid = "vm@pve"
password = "vmpassword1"
role = "PVEVMAdmin"
path = "/vms/200"
"#,
    )
    .expect("scenario");
    let sim = Sim::start(SimConfig::for_tests().with_scenario(scenario)).await;
    let login = sim.login("vm@pve", "vmpassword1").await;
    let auth = crate::common::Auth::Ticket {
        ticket: login.data()["ticket"].as_str().unwrap().to_owned(),
        csrf: login.data()["CSRFPreventionToken"]
            .as_str()
            .map(str::to_owned),
    };
    let r = sim
        .call(
            "POST",
            "/nodes/pve1/lxc/200/clone",
            &auth,
            &[("newid", "300")],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (403, "Permission check failed (/vms/300, VM.Allocate)\n"),
        "{}",
        r.text
    );
    let r = sim
        .call("POST", "/nodes/pve1/lxc/200/template", &auth, &[])
        .await;
    assert_eq!(r.status, 200, "VM.Allocate on the CT itself: {}", r.text);
}

#[tokio::test]
async fn snapshots_need_the_storage_feature_and_zfs_rolls_back_only_the_newest() {
    let scenario: ctforge_pve_sim::scenario::Scenario = toml::from_str(
        r#"
node_count = 1
[[storages]]
id = "local"
type = "dir"
content = "vztmpl,rootdir"
[[storages]]
id = "tank"
type = "zfspool"
content = "rootdir,images"
"#,
    )
    .expect("scenario");
    let sim = Sim::start(SimConfig::for_tests().with_scenario(scenario)).await;
    create(&sim, "150", "local").await;
    let r = sim
        .post("/nodes/pve1/lxc/150/snapshot", &[("snapname", "s1")])
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "snapshot feature is not available\n"),
        "{}",
        r.text
    );

    create(&sim, "151", "tank").await;
    for s in ["s1", "s2"] {
        let r = sim
            .post("/nodes/pve1/lxc/151/snapshot", &[("snapname", s)])
            .await;
        sim.wait_task("pve1", &upid(&r)).await;
    }
    let r = sim
        .post("/nodes/pve1/lxc/151/snapshot/s1/rollback", &[])
        .await;
    assert_eq!(
        r.message(),
        "can't rollback, 's1' is not most recent snapshot on 'tank:subvol-151-disk-0'\n",
        "{}",
        r.text
    );
    let r = sim
        .post("/nodes/pve1/lxc/151/snapshot/s2/rollback", &[])
        .await;
    assert_eq!(sim.wait_task("pve1", &upid(&r)).await["exitstatus"], "OK");
}

/// `snapname` on clone: the clone gets the snapshot's files and config, not the current ones.
#[tokio::test]
async fn clone_from_a_snapshot_copies_the_snapshots_files() {
    let scenario: ctforge_pve_sim::scenario::Scenario = toml::from_str(
        r#"
node_count = 1
[[storages]]
id = "local"
type = "dir"
content = "vztmpl,rootdir"
[[storages]]
id = "tank"
type = "zfspool"
content = "rootdir,images"
"#,
    )
    .expect("scenario");
    let sim = Sim::start(SimConfig::for_tests().with_scenario(scenario)).await;
    create(&sim, "160", "tank").await;
    let backend = sim.h.state().backend().clone();
    backend.write_file(160, "/root/marker.txt", b"before\n");
    let r = sim
        .post("/nodes/pve1/lxc/160/snapshot", &[("snapname", "s1")])
        .await;
    assert_eq!(sim.wait_task("pve1", &upid(&r)).await["exitstatus"], "OK");
    backend.write_file(160, "/root/marker.txt", b"after\n");
    backend.write_file(160, "/root/new-file", b"new\n");

    let r = sim
        .post(
            "/nodes/pve1/lxc/160/clone",
            &[
                ("newid", "161"),
                ("snapname", "s1"),
                ("hostname", "from-s1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sim.wait_task("pve1", &upid(&r)).await["exitstatus"], "OK");
    assert_eq!(
        backend.pull(161, "/root/marker.txt").unwrap(),
        b"before\n",
        "the snapshot's file"
    );
    assert!(
        backend.pull(161, "/root/new-file").is_err(),
        "nothing created after the snapshot"
    );

    let r = sim
        .post(
            "/nodes/pve1/lxc/160/clone",
            &[("newid", "162"), ("snapname", "nope")],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "snapshot 'nope' does not exist\n"),
        "{}",
        r.text
    );

    let r = sim
        .post("/nodes/pve1/lxc/160/clone", &[("newid", "163")])
        .await;
    assert_eq!(sim.wait_task("pve1", &upid(&r)).await["exitstatus"], "OK");
    assert_eq!(
        backend.pull(163, "/root/marker.txt").unwrap(),
        b"after\n",
        "without snapname: the current files"
    );
}
