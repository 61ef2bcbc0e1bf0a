//! The simulator as a cluster: one SSH endpoint per node (own address, own host key), `pct`
//! refusing guests of other nodes with Proxmox's text, the per-node command log,
//! `/cluster/status` addresses, `POST …/migrate` (offline, restart, refusals, permission), and
//! SFTP uploads to a node.

use std::sync::Arc;

use russh::ChannelMsg;
use russh::client;
use tokio::io::AsyncWriteExt;

use crate::common::{Auth, Sim};
use ctforge_pve_sim::SimConfig;

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn login(addr: std::net::SocketAddr) -> client::Handle<Client> {
    let mut s = client::connect(Arc::new(client::Config::default()), addr, Client)
        .await
        .expect("connect");
    assert!(
        s.authenticate_password("root", "rootpw")
            .await
            .expect("auth")
            .success()
    );
    s
}

async fn run(s: &client::Handle<Client>, cmd: &str) -> (String, String, u32) {
    let mut ch = s.channel_open_session().await.expect("channel");
    ch.exec(true, cmd).await.expect("exec");
    ch.eof().await.expect("eof");
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), 999);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => code = exit_status,
            _ => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into(),
        String::from_utf8_lossy(&err).into(),
        code,
    )
}

async fn three_nodes() -> Sim {
    Sim::start(SimConfig::for_tests().with_ssh().with_nodes(3)).await
}

async fn start_ct(sim: &Sim, node: &str, vmid: &str) {
    sim.create_ct(node, vmid, &[]).await;
    let r = sim
        .post(&format!("/nodes/{node}/lxc/{vmid}/status/start"), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    sim.wait_task(node, r.data().as_str().expect("upid")).await;
}

#[tokio::test]
async fn every_node_has_its_own_endpoint_address_and_host_key() {
    let sim = three_nodes().await;
    let nodes = &sim.h.ssh_nodes;
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0].addr, sim.h.ssh_addr.expect("ssh"));
    let port = nodes[0].addr.port();
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.node, format!("pve{}", i + 1));
        assert_eq!(n.addr.ip().to_string(), format!("127.0.0.{}", i + 1));
        assert_eq!(n.addr.port(), port, "one port, one address per node");
    }
    assert_ne!(nodes[0].fingerprint, nodes[1].fingerprint);
    let status = sim.get("/cluster/status").await;
    let entries = status.data().as_array().expect("array").clone();
    for n in nodes {
        let e = entries
            .iter()
            .find(|e| e["name"] == n.node.as_str())
            .expect("node listed");
        assert_eq!(e["type"], "node");
        assert_eq!(e["ip"], n.addr.ip().to_string());
    }
    let s = login(nodes[2].addr).await;
    assert_eq!(run(&s, "hostname").await.0, "pve3\n");
}

#[tokio::test]
async fn pct_on_the_wrong_node_fails_like_proxmox() {
    let sim = three_nodes().await;
    start_ct(&sim, "pve2", "105").await;
    let pve1 = login(sim.h.ssh_nodes[0].addr).await;
    let (_, err, code) = run(&pve1, "pct exec 105 -- true").await;
    assert_eq!(code, 255);
    assert_eq!(
        err,
        "Configuration file 'nodes/pve1/lxc/105.conf' does not exist\n"
    );
    let (_, err, _) = run(&pve1, "pct status 105").await;
    assert!(err.contains("does not exist"), "{err}");
    let pve2 = login(sim.h.ssh_nodes[1].addr).await;
    let (out, _, code) = run(&pve2, "pct exec 105 -- echo here").await;
    assert_eq!((out.as_str(), code), ("here\n", 0));
    let state = sim.h.state();
    assert_eq!(state.ssh_commands_for("pve2", 105).len(), 1);
    assert_eq!(state.ssh_commands_for("pve1", 105).len(), 2);
    assert!(state.ssh_commands_for("pve3", 105).is_empty());
}

#[tokio::test]
async fn migrate_offline_and_restart_move_the_guest_between_nodes() {
    let sim = three_nodes().await;
    sim.create_ct("pve1", "110", &[]).await;
    // Offline: the stopped CT moves; pve1's pct no longer knows it, pve3's does.
    let r = sim
        .post("/nodes/pve1/lxc/110/migrate", &[("target", "pve3")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let upid = r.data().as_str().expect("upid").to_string();
    assert!(upid.contains(":vzmigrate:110:"), "{upid}");
    let done = sim.wait_task("pve1", &upid).await;
    assert_eq!(done["exitstatus"], "OK");
    let log = sim.task_log("pve1", &upid).await;
    let lines: Vec<String> = log
        .data()
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|l| l["t"].as_str().map(str::to_string))
        .collect();
    assert!(
        lines[0].starts_with("starting migration of CT 110 to node 'pve3' (127.0.0.3)"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("migration finished successfully (duration "))
    );
    assert_eq!(
        sim.get("/nodes/pve3/lxc/110/status/current").await.status,
        200
    );
    let gone = sim.get("/nodes/pve1/lxc/110/status/current").await;
    assert_eq!(gone.status, 500);
    assert!(
        gone.message()
            .contains("nodes/pve1/lxc/110.conf' does not exist")
    );

    // Running: refused without restart, moved and started again with it.
    let r = sim.post("/nodes/pve3/lxc/110/status/start", &[]).await;
    sim.wait_task("pve3", r.data().as_str().expect("upid"))
        .await;
    let r = sim
        .post("/nodes/pve3/lxc/110/migrate", &[("target", "pve2")])
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.message()
            .contains("can't migrate running container without --online or --restart"),
        "{}",
        r.text
    );
    let r = sim
        .post(
            "/nodes/pve3/lxc/110/migrate",
            &[("target", "pve2"), ("restart", "1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let upid = r.data().as_str().expect("upid").to_string();
    assert_eq!(sim.wait_task("pve3", &upid).await["exitstatus"], "OK");
    let log = sim.task_log("pve3", &upid).await.text;
    assert!(log.contains("shutdown CT 110"), "{log}");
    assert!(log.contains("start container on target node"), "{log}");
    let st = sim.get("/nodes/pve2/lxc/110/status/current").await;
    assert_eq!(st.data()["status"], "running");
    let pve2 = login(sim.h.ssh_nodes[1].addr).await;
    assert_eq!(run(&pve2, "pct exec 110 -- true").await.2, 0);

    // The target must be another existing node.
    let r = sim
        .post("/nodes/pve2/lxc/110/migrate", &[("target", "pve2")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"]["target"], "target is local node.");
    let r = sim
        .post(
            "/nodes/pve2/lxc/110/migrate",
            &[("target", "pve9"), ("restart", "1")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.message().contains("no such cluster node 'pve9'"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn migrate_needs_vm_migrate() {
    let sim = three_nodes().await;
    sim.create_ct("pve1", "120", &[]).await;
    let login = sim.login("alice@pve", "alice").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let alice = Auth::Ticket {
        ticket: login.data()["ticket"].as_str().expect("ticket").into(),
        csrf: login.data()["CSRFPreventionToken"]
            .as_str()
            .map(str::to_string),
    };
    let r = sim
        .call(
            "POST",
            "/nodes/pve1/lxc/120/migrate",
            &alice,
            &[("target", "pve2")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.text.contains("/vms/120") && r.text.contains("VM.Migrate"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn sftp_uploads_a_file_to_the_node() {
    let sim = three_nodes().await;
    let s = login(sim.h.ssh_nodes[1].addr).await;
    let ch = s.channel_open_session().await.expect("channel");
    ch.request_subsystem(true, "sftp").await.expect("subsystem");
    let sftp = russh_sftp::client::SftpSession::new(ch.into_stream())
        .await
        .expect("sftp session");
    assert_eq!(sftp.canonicalize(".").await.expect("realpath"), "/root");
    let mut f = sftp.create("/tmp/upload.txt").await.expect("create");
    f.write_all(b"hello from sftp\n").await.expect("write");
    f.shutdown().await.expect("close");
    assert_eq!(
        sftp.read("/tmp/upload.txt").await.expect("read back"),
        b"hello from sftp\n"
    );
    sftp.create_dir("/root/dir").await.expect("mkdir");
    sftp.write("/root/dir/x", b"")
        .await
        .expect_err("WRITE without CREATE on a new file");
    let names: Vec<String> = sftp
        .read_dir("/tmp")
        .await
        .expect("readdir")
        .map(|e| e.file_name())
        .collect();
    assert!(names.contains(&"upload.txt".to_string()), "{names:?}");
    let state = sim.h.state();
    assert_eq!(
        state.node_file("pve2", "/tmp/upload.txt").as_deref(),
        Some(&b"hello from sftp\n"[..])
    );
    assert!(
        state.node_file("pve1", "/tmp/upload.txt").is_none(),
        "files are per node"
    );
    assert!(
        state
            .ssh_log()
            .iter()
            .any(|c| c.node == "pve2" && c.line == "subsystem sftp")
    );
}

#[tokio::test]
async fn unknown_subsystems_are_refused_not_hung() {
    let sim = three_nodes().await;
    let s = login(sim.h.ssh_nodes[0].addr).await;
    let mut ch = s.channel_open_session().await.expect("channel");
    ch.request_subsystem(true, "netconf").await.expect("sent");
    let answer = ch.wait().await;
    assert!(matches!(answer, Some(ChannelMsg::Failure)), "{answer:?}");
}
