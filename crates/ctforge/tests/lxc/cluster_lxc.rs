//! A three-node simulator with the lxc backend, end to end: a container created on each node
//! is provisioned and monitored through its own node's SSH endpoint (the simulator's per-node
//! SSH log proves where every `pct` went), and a container migrated from pve1 to pve3 (a real
//! stop, move and start) is monitored through pve3 afterwards without anyone telling ctforge.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use ctforge_pve_sim::{Backend, LxcOptions, SimConfig};
use serde_json::{Value, json};

/// A template with one small script (no packages: the point is where commands go).
fn template(root: &Path) {
    let t = root.join("hello");
    std::fs::create_dir_all(t.join("container-configs/scripts")).unwrap();
    std::fs::write(
        t.join("template.conf"),
        "TEMPLATE_APP=\"hello\"\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\nTEMPLATE_RAM=256\nTEMPLATE_DISK=2\n",
    )
    .unwrap();
    std::fs::write(
        t.join("container-configs/scripts/10-hello.sh"),
        "#!/bin/sh\nset -e\nhostname > /etc/hello-node\n",
    )
    .unwrap();
}

async fn get(app: &crate::common::TestApp, s: &crate::common::ApiSession, path: &str) -> Value {
    app.client
        .get(format!("{}{path}", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_job(app: &crate::common::TestApp, s: &crate::common::ApiSession, id: i64) -> Value {
    let started = Instant::now();
    loop {
        let job = get(app, s, &format!("/api/v1/jobs/{id}")).await;
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "job {id} did not end: {job}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn three_nodes_each_guest_through_its_own_node_and_after_migration() {
    if crate::common::lxc::unavailable(
        "three_nodes_each_guest_through_its_own_node_and_after_migration",
    ) {
        return;
    }
    ctforge::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let roots = tempfile::tempdir().unwrap();
    template(roots.path());
    let opts = LxcOptions {
        destroy_on_drop: true,
        ..LxcOptions::default()
    };
    if !opts.template.is_file() || !Path::new("/sys/class/net").join(&opts.bridge).exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-lxc.sh");
        assert!(
            std::process::Command::new("bash")
                .arg(&script)
                .status()
                .unwrap()
                .success(),
            "setup-lxc.sh failed"
        );
    }
    let mut cfg = SimConfig::for_tests()
        .with_ssh()
        .with_tls(true)
        .with_nodes(3);
    cfg.backend = Backend::Lxc;
    cfg.state_dir = Some(dir.path().join("sim"));
    cfg.lxc = opts;
    let sim = ctforge_pve_sim::start(cfg).await.unwrap();
    let cluster = crate::common::sim_cluster(&sim);
    let root = roots.path().to_owned();
    let app = crate::common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let s = crate::common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam")
        .await;
    let r = s
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let mut cts = Vec::new();
    for (i, node) in ["pve1", "pve2", "pve3"].into_iter().enumerate() {
        let vmid = 181 + i as u32;
        let r = s
            .post(
                &app.client,
                &app.address,
                "/api/v1/containers",
                json!({"template": "hello", "hostname": format!("on-{node}"), "vmid": vmid, "node": node, "password": "provision-me"}),
            )
            .await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let created: Value = r.json().await.unwrap();
        cts.push((
            node,
            vmid,
            created["id"].as_i64().unwrap(),
            created["job_id"].as_i64().unwrap(),
        ));
    }
    let state = sim.state();
    for (node, vmid, id, job) in &cts {
        let done = wait_job(&app, &s, *job).await;
        assert_eq!(done["state"], "succeeded", "CT {vmid} on {node}: {done}");
        let r = s
            .post(
                &app.client,
                &app.address,
                &format!("/api/v1/containers/{id}/services/refresh"),
                json!({}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert!(
            state.ssh_commands_for(node, *vmid).len() > 3,
            "CT {vmid} was provisioned and monitored through {node}"
        );
        for other in ["pve1", "pve2", "pve3"].into_iter().filter(|n| n != node) {
            assert!(
                state.ssh_commands_for(other, *vmid).is_empty(),
                "CT {vmid} reached {other}: {:?}",
                state.ssh_commands_for(other, *vmid)
            );
        }
    }

    // pve1 → pve3, restart mode: really stopped, moved and started.
    let (_, vmid, id, _) = cts[0];
    let r = s
        .post(
            &app.client,
            &app.address,
            &format!("/api/v1/containers/{id}/migrate"),
            json!({"target": "pve3", "restart": true}),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let accepted: Value = r.json().await.unwrap();
    let done = wait_job(&app, &s, accepted["job_id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // Its storage and config moved into pve3's namespace; nothing is left in pve1's.
    let moved = dir.path().join(format!("sim/lxc/pve3/{vmid}"));
    assert!(
        moved.join("rootfs/etc/hostname").is_file(),
        "rootfs on pve3"
    );
    let config = std::fs::read_to_string(moved.join("config")).unwrap();
    assert!(
        config.contains(&format!(
            "lxc.rootfs.path = dir:{}",
            moved.join("rootfs").display()
        )),
        "the LXC config names the new place: {config}"
    );
    assert!(
        !dir.path().join(format!("sim/lxc/pve1/{vmid}")).exists(),
        "nothing left on pve1"
    );
    let detail = get(&app, &s, &format!("/api/v1/containers/{id}")).await;
    assert_eq!(detail["node"], "pve3");
    let on_pve1 = state.ssh_commands_for("pve1", vmid).len();
    let r = s
        .post(
            &app.client,
            &app.address,
            &format!("/api/v1/containers/{id}/services/refresh"),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(
        !state.ssh_commands_for("pve3", vmid).is_empty(),
        "monitored through pve3"
    );
    assert_eq!(
        state.ssh_commands_for("pve1", vmid).len(),
        on_pve1,
        "pve1 no longer asked"
    );
    app.stop().await.unwrap();
}
