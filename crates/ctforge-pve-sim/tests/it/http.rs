//! HTTP behaviour of the simulator over real sockets: envelope, status codes and
//! exact texts, auth, tasks, locks, rrddata, storage, aplinfo, faults.

use crate::common;

use std::time::{Duration, Instant};

use common::{Auth, Sim};
use ctforge_pve_sim::scenario::{ContainerSpec, FaultRule};
use ctforge_pve_sim::{Scenario, SimConfig, Timings};
use serde_json::Value;

async fn raw_status_line(sim: &Sim, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(sim.h.http_addr)
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("read in time")
        .unwrap_or(0);
    buf.truncate(n);
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn envelope_headers_and_version() {
    let sim = Sim::default().await;
    let r = sim
        .c
        .get(format!("{}/version", sim.h.api_url()))
        .header("Authorization", sim.h.token_header())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["server"], "pve-api-daemon/3.0");
    assert_eq!(r.headers()["cache-control"], "max-age=0");
    assert_eq!(r.headers()["pragma"], "no-cache");
    assert!(r.headers().contains_key("expires"));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["data"]["release"], "9.1");
    let nodes = sim.get("/nodes").await;
    assert_eq!(nodes.data().as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn tls_fingerprint_is_pinned() {
    let sim = Sim::start(SimConfig::for_tests().with_tls(true)).await;
    assert!(sim.h.base_url.starts_with("https://"));
    assert_eq!(sim.h.fingerprint.len(), 95);
    assert_eq!(sim.get("/version").await.status, 200);
    let wrong = common::client("00:11");
    let err = wrong
        .get(format!("{}/version", sim.h.api_url()))
        .send()
        .await;
    assert!(err.is_err(), "a wrong pin must fail");
}

#[tokio::test]
async fn param_verification_400_with_errors_map() {
    let sim = Sim::default().await;
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "abc"),
                ("cores", "0"),
                ("foo", "1"),
                ("net0", "name=eth0,foo=1"),
                ("onboot", "true"),
                ("arch", "sparc"),
                ("hostname", "bad_host!"),
                ("net1", "name=eth1,mtu=10"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.message(), "Parameter verification failed.\n");
    let e = &r.body["errors"];
    assert_eq!(e["vmid"], "type check ('integer') failed - got 'abc'");
    assert_eq!(e["cores"], "value must have a minimum value of 1");
    assert_eq!(
        e["foo"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert_eq!(
        e["ostemplate"],
        "property is missing and it is not optional"
    );
    assert_eq!(
        e["net0"],
        "invalid format - invalid key in comma-separated list property: foo\n"
    );
    assert_eq!(
        e["net1"],
        "invalid format - format error\nnet1.mtu: value must have a minimum value of 64\n"
    );
    assert_eq!(e["onboot"], "type check ('boolean') failed - got 'true'");
    assert_eq!(
        e["arch"],
        "value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'"
    );
    assert_eq!(
        e["hostname"],
        "invalid format - value does not look like a valid DNS name\n"
    );
    // Path parameter validation and URI conflicts.
    let r = sim.get("/nodes/pve1/lxc/99/status/current").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"]["vmid"],
        "value must have a minimum value of 100"
    );
    let r = sim
        .call(
            "GET",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("vmid", "101")],
        )
        .await;
    assert_eq!(
        r.body["errors"]["vmid"],
        "duplicate parameter (already defined in URI) with conflicting values!"
    );
}

#[tokio::test]
async fn unauthorized_401_variants() {
    let sim = Sim::default().await;
    let r = sim.call("GET", "/nodes", &Auth::None, &[]).await;
    assert_eq!((r.status, r.text.as_str()), (401, ""));
    let r = sim
        .call(
            "GET",
            "/nodes",
            &Auth::Token("PVEAPIToken=root@pam!ctforge=wrong".into()),
            &[],
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (401, ""));
    let bad = Auth::Ticket {
        ticket: "PVE:root@pam:00000000::Zm9v".into(),
        csrf: None,
    };
    assert_eq!(sim.call("GET", "/nodes", &bad, &[]).await.status, 401);
    let line = raw_status_line(
        &sim,
        "GET /api2/json/nodes HTTP/1.1\r\nHost: x\r\nCookie: PVEAuthCookie=PVE:x\r\n\r\n",
    )
    .await;
    assert_eq!(line, "HTTP/1.1 401 Authentication failed!");

    let login = sim.login("root@pam", "rootpw").await;
    assert_eq!(login.status, 200);
    let ticket = login.data()["ticket"].as_str().expect("ticket").to_string();
    assert!(ticket.starts_with("PVE:root@pam:"));
    let csrf = login.data()["CSRFPreventionToken"]
        .as_str()
        .expect("csrf")
        .to_string();
    let no_csrf = Auth::Ticket {
        ticket: ticket.clone(),
        csrf: None,
    };
    assert_eq!(sim.call("GET", "/nodes", &no_csrf, &[]).await.status, 200);
    let r = sim
        .call("POST", "/nodes/pve1/lxc/103/status/start", &no_csrf, &[])
        .await;
    assert_eq!(r.status, 401);
    let line = raw_status_line(
        &sim,
        &format!("POST /api2/json/nodes/pve1/lxc/103/status/start HTTP/1.1\r\nHost: x\r\nCookie: PVEAuthCookie={ticket}\r\nContent-Length: 0\r\n\r\n"),
    ).await;
    assert_eq!(line, "HTTP/1.1 401 Permission denied - invalid csrf token");
    let with = Auth::Ticket {
        ticket,
        csrf: Some(csrf),
    };
    let r = sim
        .call("POST", "/nodes/pve2/lxc/103/status/start", &with, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Wrong password: JSON body.
    let r = sim.login("root@pam", "nope").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.message(), "authentication failure\n");
    let r = sim.login("ghost@pve", "nope").await;
    assert_eq!(r.message(), "authentication failure\n");
}

#[tokio::test]
async fn auth_failure_is_delayed_when_configured() {
    let mut t = Timings::instant();
    t.auth_failure_delay = Duration::from_millis(400);
    let sim = Sim::start(SimConfig::for_tests().with_timings(t)).await;
    let t0 = Instant::now();
    assert_eq!(
        sim.call("GET", "/nodes", &Auth::None, &[]).await.status,
        401
    );
    assert!(t0.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn permission_403_for_alice_and_noperm_token() {
    let sim = Sim::default().await;
    let login = sim.login("alice@pve", "alice").await;
    assert_eq!(login.status, 200);
    let d = login.data();
    assert_eq!(d["cap"]["vms"]["VM.Audit"], 1);
    assert!(d["cap"]["vms"].get("VM.PowerMgmt").is_none());
    let alice = Auth::Ticket {
        ticket: d["ticket"].as_str().expect("t").into(),
        csrf: Some(d["CSRFPreventionToken"].as_str().expect("c").into()),
    };
    let r = sim
        .call("GET", "/nodes/pve1/lxc/100/status/current", &alice, &[])
        .await;
    assert_eq!(r.status, 200);
    let r = sim
        .call("POST", "/nodes/pve1/lxc/100/status/stop", &alice, &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/100, VM.PowerMgmt)\n"
    );
    let r = sim.call("DELETE", "/nodes/pve1/lxc/100", &alice, &[]).await;
    assert_eq!(
        r.message(),
        "Permission check failed (/vms/100, VM.Allocate)\n"
    );
    let line = raw_status_line(
        &sim,
        &format!(
            "POST /api2/json/nodes/pve1/lxc/100/status/stop HTTP/1.1\r\nHost: x\r\nCookie: PVEAuthCookie={}\r\nCSRFPreventionToken: {}\r\nContent-Length: 0\r\n\r\n",
            d["ticket"].as_str().expect("t"),
            d["CSRFPreventionToken"].as_str().expect("c")
        ),
    ).await;
    assert_eq!(
        line,
        "HTTP/1.1 403 Permission check failed (/vms/100, VM.PowerMgmt)"
    );

    let noperm = Auth::Token(format!(
        "PVEAPIToken=root@pam!noperm={}",
        sim.h.noperm_token_secret
    ));
    let r = sim.call("GET", "/nodes/pve1/lxc", &noperm, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data().as_array().map(Vec::len), Some(0));
    let r = sim
        .call("POST", "/nodes/pve1/lxc/100/status/stop", &noperm, &[])
        .await;
    assert_eq!(r.status, 403);
    // Feature flags other than nesting are root@pam only (even for the root token).
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "300"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("storage", "local-lvm"),
                ("features", "keyctl=1"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)\n"
    );
}

#[tokio::test]
async fn internal_500_texts() {
    let sim = Sim::default().await;
    let r = sim.post("/nodes/pve1/lxc/100/status/start", &[]).await;
    assert_eq!((r.status, r.message()), (500, "CT 100 already running\n"));
    let r = sim.post("/nodes/pve2/lxc/103/status/stop", &[]).await;
    assert_eq!((r.status, r.message()), (500, "CT 103 not running\n"));
    let r = sim.post("/nodes/pve2/lxc/103/status/shutdown", &[]).await;
    assert_eq!(r.message(), "CT 103 not running\n");
    let r = sim.post("/nodes/pve2/lxc/103/status/reboot", &[]).await;
    assert_eq!(r.message(), "VM 103 not running\n");
    let r = sim.get("/nodes/pve1/lxc/999/config").await;
    assert_eq!(
        (r.status, r.message()),
        (
            500,
            "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n"
        )
    );
    let r = sim.get("/nodes/pve1/lxc/999/status/current").await;
    assert_eq!(
        r.message(),
        "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n"
    );
    let line = raw_status_line(&sim, &format!("GET /api2/json/nodes/pve1/lxc/999/status/current HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n", sim.h.token_header())).await;
    assert_eq!(
        line,
        "HTTP/1.1 500 Configuration file 'nodes/pve1/lxc/999.conf' does not exist"
    );
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "101"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
            ],
        )
        .await;
    assert_eq!(r.message(), "CT 101 already exists on node 'pve2'\n");
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "300"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
            ],
        )
        .await;
    assert_eq!(
        r.message(),
        "storage 'local' does not support container directories\n"
    );
    let r = sim
        .call("DELETE", "/nodes/pve1/lxc/100", &sim.root(), &[])
        .await;
    assert_eq!(
        r.message(),
        "unable to destroy CT 100 - container is running\n"
    );
    let r = sim.get("/nodes/nosuchnode/lxc").await;
    assert_eq!(r.status, 500);
    assert!(
        r.message()
            .starts_with("hostname lookup 'nosuchnode' failed")
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_501() {
    let sim = Sim::default().await;
    let r = sim.get("/foo").await;
    assert_eq!(
        (r.status, r.message()),
        (501, "Method 'GET /foo' not implemented\n")
    );
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/status/current",
            &sim.root(),
            &[],
        )
        .await;
    assert_eq!(r.status, 501);
    let line = raw_status_line(&sim, "HEAD /api2/json/version HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(line, "HTTP/1.1 501 method 'HEAD' not available");
}

#[tokio::test]
async fn node_down_gives_595_and_resources_show_offline() {
    let sim = Sim::default().await;
    sim.h.state().set_node_online("pve2", false, 595);
    let r = sim.get("/nodes/pve2/lxc").await;
    assert_eq!((r.status, r.text.as_str()), (595, ""));
    let r = sim.get("/nodes/pve2/status").await;
    assert_eq!(r.status, 595);
    let r = sim.get("/cluster/resources").await;
    assert_eq!(r.status, 200);
    let items = r.data().as_array().expect("array").clone();
    let node = items
        .iter()
        .find(|i| i["id"] == "node/pve2")
        .expect("node entry");
    assert_eq!(node["status"], "offline");
    let ct = items.iter().find(|i| i["id"] == "lxc/101").expect("ct");
    assert_eq!(ct["status"], "unknown");
    sim.h.state().set_node_online("pve2", false, 596);
    assert_eq!(sim.get("/nodes/pve2/lxc").await.status, 596);
    sim.h.state().set_node_online("pve2", true, 595);
    assert_eq!(sim.get("/nodes/pve2/lxc").await.status, 200);
}

#[tokio::test]
async fn cluster_resources_spans_nodes_and_filters_by_type() {
    let sim = Sim::default().await;
    let all = sim.get("/cluster/resources").await;
    let items = all.data().as_array().expect("array").clone();
    assert!(
        items
            .iter()
            .any(|i| i["type"] == "lxc" && i["node"] == "pve1")
    );
    assert!(
        items
            .iter()
            .any(|i| i["type"] == "lxc" && i["node"] == "pve2")
    );
    let vms = sim
        .call("GET", "/cluster/resources", &sim.root(), &[("type", "vm")])
        .await;
    let v = vms.data().as_array().expect("array");
    assert_eq!(v.len(), 6);
    assert!(
        v.iter()
            .all(|i| i["type"] == "lxc" && i["vmid"].is_u64() && i["maxmem"].is_u64())
    );
    let st = sim
        .call(
            "GET",
            "/cluster/resources",
            &sim.root(),
            &[("type", "storage")],
        )
        .await;
    assert!(
        st.data()
            .as_array()
            .expect("a")
            .iter()
            .any(|i| i["id"] == "storage/pve1/local-lvm" && i["plugintype"] == "lvmthin")
    );
    let bad = sim
        .call(
            "GET",
            "/cluster/resources",
            &sim.root(),
            &[("type", "qemu")],
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn task_lifecycle_log_growth_lock_and_forked_start() {
    let mut t = Timings::instant();
    t.create = Duration::from_millis(800);
    t.start = Duration::from_millis(100);
    let sim = Sim::start(SimConfig::for_tests().with_timings(t)).await;
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "200"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("storage", "local-lvm"),
                ("hostname", "web"),
                ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
                ("start", "1"),
                ("password", "secret123"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let upid = r.data().as_str().expect("upid").to_string();
    let re = regex::Regex::new(
        r"^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:vzcreate:200:root@pam!ctforge:$",
    )
    .expect("re");
    assert!(re.is_match(&upid), "{upid}");
    let enc = percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let st = sim.get(&format!("/nodes/pve1/tasks/{enc}/status")).await;
    assert_eq!(st.data()["status"], "running");
    assert!(st.data().get("exitstatus").is_none());
    assert_eq!(st.data()["type"], "vzcreate");
    assert_eq!(st.data()["tokenid"], "ctforge");
    // Create lock visible and enforced.
    let cfg = sim.get("/nodes/pve1/lxc/200/config").await;
    assert_eq!(cfg.data()["lock"], "create");
    let cur = sim.get("/nodes/pve1/lxc/200/status/current").await;
    assert_eq!(cur.data()["lock"], "create");
    let put = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/200/config",
            &sim.root(),
            &[("cores", "2")],
        )
        .await;
    assert_eq!(
        (put.status, put.message()),
        (500, "CT is locked (create)\n")
    );
    let start = sim.post("/nodes/pve1/lxc/200/status/start", &[]).await;
    assert_eq!(start.status, 200);
    let locked = sim
        .wait_task("pve1", start.data().as_str().expect("upid"))
        .await;
    assert_eq!(locked["exitstatus"], "CT is locked (create)");
    // The log grows while the task runs.
    let first = sim.task_log("pve1", &upid).await.body["total"]
        .as_u64()
        .unwrap_or(0);
    let done = sim.wait_task("pve1", &upid).await;
    assert_eq!(done["exitstatus"], "OK");
    let log = sim.task_log("pve1", &upid).await;
    let total = log.body["total"].as_u64().expect("total");
    assert!(total > first, "log grew {first} -> {total}");
    let lines = log.data().as_array().expect("lines");
    assert_eq!(lines[0]["n"], 1);
    assert!(
        lines[0]["t"]
            .as_str()
            .unwrap_or("")
            .starts_with("extracting archive")
    );
    assert_eq!(lines.last().expect("last")["t"], "TASK OK");
    let page = sim
        .call(
            "GET",
            &format!("/nodes/pve1/tasks/{enc}/log"),
            &sim.root(),
            &[("start", "1"), ("limit", "2")],
        )
        .await;
    assert_eq!(page.data().as_array().map(Vec::len), Some(2));
    assert_eq!(page.data()[0]["n"], 2);
    // start=1 forked a separate vzstart task.
    let mut running = false;
    for _ in 0..100 {
        if sim.get("/nodes/pve1/lxc/200/status/current").await.data()["status"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running);
    let tasks = sim
        .call(
            "GET",
            "/nodes/pve1/tasks",
            &sim.root(),
            &[("vmid", "200"), ("source", "all")],
        )
        .await;
    let types: Vec<&str> = tasks
        .data()
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|t| t["type"].as_str())
        .collect();
    assert!(
        types.contains(&"vzstart") && types.contains(&"vzcreate"),
        "{types:?}"
    );
    let cfg = sim.get("/nodes/pve1/lxc/200/config").await.data().clone();
    assert!(cfg.get("lock").is_none());
    assert_eq!(cfg["rootfs"], "local-lvm:vm-200-disk-0,size=4G");
    assert_eq!(cfg["memory"], 512);
    assert_eq!(cfg["unprivileged"], 1);
    assert!(cfg.get("password").is_none());
    let net = cfg["net0"].as_str().expect("net0");
    assert!(
        net.starts_with("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:")
            && net.ends_with(",ip=dhcp,type=veth"),
        "{net}"
    );
    // Unknown UPIDs.
    let r = sim.get("/nodes/pve1/tasks/garbage/status").await;
    assert_eq!(r.body["errors"]["upid"], "unable to parse worker upid");
}

#[tokio::test]
async fn lifecycle_stop_shutdown_reboot_destroy() {
    let sim = Sim::default().await;
    let r = sim
        .post("/nodes/pve1/lxc/100/status/shutdown", &[("timeout", "5")])
        .await;
    assert_eq!(
        sim.wait_task("pve1", r.data().as_str().expect("u")).await["exitstatus"],
        "OK"
    );
    assert_eq!(
        sim.get("/nodes/pve1/lxc/100/status/current").await.data()["status"],
        "stopped"
    );
    let r = sim.post("/nodes/pve1/lxc/100/status/start", &[]).await;
    sim.wait_task("pve1", r.data().as_str().expect("u")).await;
    let cur = sim.get("/nodes/pve1/lxc/100/status/current").await;
    assert_eq!(cur.data()["status"], "running");
    assert_eq!(cur.data()["ha"]["managed"], 0);
    let r = sim.post("/nodes/pve1/lxc/100/status/reboot", &[]).await;
    assert_eq!(
        sim.wait_task("pve1", r.data().as_str().expect("u")).await["exitstatus"],
        "OK"
    );
    let r = sim
        .call(
            "DELETE",
            "/nodes/pve1/lxc/100",
            &sim.root(),
            &[("force", "1"), ("purge", "1")],
        )
        .await;
    let upid = r.data().as_str().expect("u").to_string();
    sim.wait_task("pve1", &upid).await;
    let log = sim.task_log("pve1", &upid).await;
    assert_eq!(
        log.data()[0]["t"],
        "forced to stop CT 100 before destroying!"
    );
    assert_eq!(sim.get("/nodes/pve1/lxc/100/config").await.status, 500);
}

#[tokio::test]
async fn shutdown_timeout_without_force_fails_in_task() {
    let scen = Scenario {
        containers: vec![ContainerSpec {
            vmid: 150,
            status: Some("running".into()),
            hang_on_shutdown: true,
            ..ContainerSpec::default()
        }],
        ..Scenario::default()
    };
    let sim = Sim::start(SimConfig::for_tests().with_scenario(scen)).await;
    let r = sim
        .post("/nodes/pve1/lxc/150/status/shutdown", &[("timeout", "1")])
        .await;
    assert_eq!(
        sim.wait_task("pve1", r.data().as_str().expect("u")).await["exitstatus"],
        "container did not stop"
    );
    let r = sim
        .post(
            "/nodes/pve1/lxc/150/status/shutdown",
            &[("timeout", "1"), ("forceStop", "1")],
        )
        .await;
    assert_eq!(
        sim.wait_task("pve1", r.data().as_str().expect("u")).await["exitstatus"],
        "WARNINGS: 1"
    );
    assert_eq!(
        sim.get("/nodes/pve1/lxc/150/status/current").await.data()["status"],
        "stopped"
    );
}

#[tokio::test]
async fn nextid_is_a_string_and_validates_taken_ids() {
    let sim = Sim::default().await;
    let r = sim.get("/cluster/nextid").await;
    assert_eq!(r.data(), &Value::String("106".into()));
    let r = sim
        .call("GET", "/cluster/nextid", &sim.root(), &[("vmid", "100")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"]["vmid"], "VM 100 already exists");
    let r = sim
        .call("GET", "/cluster/nextid", &sim.root(), &[("vmid", "500")])
        .await;
    assert_eq!(r.data(), &Value::String("500".into()));
}

#[tokio::test]
async fn ticket_expiry_and_renewal() {
    let sim = Sim::default().await;
    let login = sim.login("root@pam", "rootpw").await;
    let ticket = login.data()["ticket"].as_str().expect("t").to_string();
    let auth = Auth::Ticket {
        ticket: ticket.clone(),
        csrf: None,
    };
    assert_eq!(sim.call("GET", "/version", &auth, &[]).await.status, 200);
    // Renewal: post the ticket as password.
    sim.h.state().advance_clock(3600);
    let renewed = sim.login("root@pam", &ticket).await;
    assert_eq!(renewed.status, 200);
    let new_ticket = renewed.data()["ticket"].as_str().expect("t").to_string();
    assert_ne!(new_ticket, ticket);
    sim.h.state().advance_clock(3601);
    assert_eq!(
        sim.call("GET", "/version", &auth, &[]).await.status,
        401,
        "old ticket expired after 2h"
    );
    let auth2 = Auth::Ticket {
        ticket: new_ticket,
        csrf: None,
    };
    assert_eq!(sim.call("GET", "/version", &auth2, &[]).await.status, 200);
    assert_eq!(
        sim.login("root@pam", &ticket).await.status,
        401,
        "expired ticket cannot renew"
    );
    // A scenario can shorten the lifetime.
    sim.h.state().set_ticket_lifetime(10);
    sim.h.state().advance_clock(11);
    assert_eq!(sim.call("GET", "/version", &auth2, &[]).await.status, 401);
}

#[tokio::test]
async fn tfa_totp_flow() {
    let sim = Sim::default().await;
    let first = sim.login("carol@pve", "carol").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.data()["NeedTFA"], 1);
    assert!(first.data().get("cap").is_none());
    let half = first.data()["ticket"].as_str().expect("t").to_string();
    assert!(half.starts_with("PVE:!tfa!"));
    let challenge = half.split(':').nth(1).expect("part")[5..].to_string();
    let decoded = percent_encoding::percent_decode_str(&challenge)
        .decode_utf8_lossy()
        .into_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&decoded).expect("json")["totp"],
        true
    );
    // The half ticket is not a valid ticket.
    assert_eq!(
        sim.call(
            "GET",
            "/version",
            &Auth::Ticket {
                ticket: half.clone(),
                csrf: None
            },
            &[]
        )
        .await
        .status,
        401
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_secs();
    let code = ctforge_pve_sim::auth::current_totp("JBSWY3DPEHPK3PXP", now).expect("code");
    let wrong = sim
        .call(
            "POST",
            "/access/ticket",
            &Auth::None,
            &[
                ("username", "carol@pve"),
                ("tfa-challenge", &half),
                ("password", "totp:000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ok = sim
        .call(
            "POST",
            "/access/ticket",
            &Auth::None,
            &[
                ("username", "carol@pve"),
                ("tfa-challenge", &half),
                ("password", &format!("totp:{code}")),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(
        ok.data()["ticket"]
            .as_str()
            .expect("t")
            .starts_with("PVE:carol@pve:")
    );
    assert_eq!(ok.data()["cap"]["vms"]["VM.Allocate"], 1);
}

#[tokio::test]
async fn rrddata_resolutions_and_field_omission() {
    let sim = Sim::default().await;
    let hour = sim
        .call(
            "GET",
            "/nodes/pve1/lxc/100/rrddata",
            &sim.root(),
            &[("timeframe", "hour")],
        )
        .await;
    let pts = hour.data().as_array().expect("a");
    assert_eq!(pts.len(), 60);
    assert!(pts.iter().all(|p| p["time"].as_u64().expect("t") % 60 == 0));
    assert!(
        pts.iter()
            .all(|p| p.get("cpu").is_some() && p.get("netin").is_some())
    );
    // 103 stopped two days ago: the week view has running and stopped points.
    let week = sim
        .call(
            "GET",
            "/nodes/pve2/lxc/103/rrddata",
            &sim.root(),
            &[("timeframe", "week"), ("cf", "MAX")],
        )
        .await;
    let pts = week.data().as_array().expect("a");
    assert_eq!(pts.len(), 336);
    assert!(pts.iter().any(|p| p.get("cpu").is_some()));
    let stopped = pts
        .iter()
        .filter(|p| p.get("cpu").is_none())
        .collect::<Vec<_>>();
    assert!(!stopped.is_empty());
    assert!(stopped.iter().all(|p| p.get("maxmem").is_some()
        && p.get("disk").is_some()
        && p.get("netin").is_none()
        && p.get("mem").is_none()));
    let r = sim
        .call(
            "GET",
            "/nodes/pve1/lxc/100/rrddata",
            &sim.root(),
            &[("timeframe", "decade")],
        )
        .await;
    assert_eq!(r.status, 400);
    let node = sim
        .call(
            "GET",
            "/nodes/pve1/rrddata",
            &sim.root(),
            &[("timeframe", "day")],
        )
        .await;
    assert_eq!(node.data().as_array().map(Vec::len), Some(1440));
}

#[tokio::test]
async fn storage_and_content() {
    let sim = Sim::default().await;
    let r = sim
        .call(
            "GET",
            "/nodes/pve1/storage",
            &sim.root(),
            &[("content", "vztmpl")],
        )
        .await;
    let ids: Vec<&str> = r
        .data()
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|s| s["storage"].as_str())
        .collect();
    assert_eq!(ids, vec!["local"]);
    let r = sim
        .call(
            "GET",
            "/nodes/pve1/storage",
            &sim.root(),
            &[("content", "rootdir")],
        )
        .await;
    assert_eq!(r.data()[0]["storage"], "local-lvm");
    assert_eq!(r.data()[0]["type"], "lvmthin");
    let c = sim
        .call(
            "GET",
            "/nodes/pve1/storage/local/content",
            &sim.root(),
            &[("content", "vztmpl")],
        )
        .await;
    let vols: Vec<&str> = c
        .data()
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|v| v["volid"].as_str())
        .collect();
    assert!(vols.contains(&"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"));
    assert!(
        c.data()
            .as_array()
            .expect("a")
            .iter()
            .all(|v| v["content"] == "vztmpl" && v["format"] == "tzst")
    );
    let d = sim.get("/nodes/pve1/storage/local-lvm/content").await;
    assert!(
        d.data()
            .as_array()
            .expect("a")
            .iter()
            .any(|v| v["volid"] == "local-lvm:vm-100-disk-0" && v["vmid"] == 100)
    );
    let r = sim.get("/nodes/pve1/storage/nope/content").await;
    assert_eq!(r.message(), "storage 'nope' does not exist\n");
    let net = sim
        .call(
            "GET",
            "/nodes/pve1/network",
            &sim.root(),
            &[("type", "any_bridge")],
        )
        .await;
    assert_eq!(net.data()[0]["iface"], "vmbr0");
}

#[tokio::test]
async fn aplinfo_list_and_download() {
    let sim = Sim::default().await;
    let list = sim.get("/nodes/pve1/aplinfo").await;
    let items = list.data().as_array().expect("a");
    assert!(
        items.iter().any(
            |i| i["template"] == "debian-12-standard_12.7-1_amd64.tar.zst" && i["type"] == "lxc"
        )
    );
    let r = sim
        .post(
            "/nodes/pve1/aplinfo",
            &[("storage", "local"), ("template", "nope.tar.zst")],
        )
        .await;
    assert_eq!(r.body["errors"]["template"], "no such template");
    let r = sim
        .post(
            "/nodes/pve1/aplinfo",
            &[
                ("storage", "local-lvm"),
                ("template", "alpine-3.22-default_20250617_amd64.tar.xz"),
            ],
        )
        .await;
    assert_eq!(
        r.message(),
        "storage 'local-lvm' does not support templates\n"
    );
    let r = sim
        .post(
            "/nodes/pve1/aplinfo",
            &[
                ("storage", "local"),
                ("template", "alpine-3.22-default_20250617_amd64.tar.xz"),
            ],
        )
        .await;
    let upid = r.data().as_str().expect("u").to_string();
    assert!(upid.contains(":download:alpine-3.22-default_20250617_amd64.tar.xz:"));
    assert_eq!(sim.wait_task("pve1", &upid).await["exitstatus"], "OK");
    let c = sim
        .call(
            "GET",
            "/nodes/pve1/storage/local/content",
            &sim.root(),
            &[("content", "vztmpl")],
        )
        .await;
    assert!(c.data().as_array().expect("a").iter().any(|v| v["volid"]
        == "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz"
        && v["format"] == "txz"));
    // Creating from it now works; on pve2 the template is absent.
    let st = sim
        .create_ct(
            "pve1",
            "210",
            &[(
                "ostemplate",
                "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz",
            )],
        )
        .await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(
        sim.get("/nodes/pve1/lxc/210/config").await.data()["ostype"],
        "alpine"
    );
}

#[tokio::test]
async fn config_put_pending_delete_and_digest() {
    let sim = Sim::default().await;
    let before = sim.get("/nodes/pve1/lxc/100/config").await.data().clone();
    let digest = before["digest"].as_str().expect("digest").to_string();
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[
                ("memory", "2048"),
                ("nameserver", "1.1.1.1"),
                ("digest", &digest),
            ],
        )
        .await;
    assert_eq!((r.status, r.data()), (200, &Value::Null));
    let cur = sim
        .call(
            "GET",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("current", "1")],
        )
        .await;
    assert_eq!(cur.data()["memory"], 2048, "hotplugged");
    assert!(
        cur.data().get("nameserver").is_none(),
        "pending on a running CT"
    );
    let eff = sim.get("/nodes/pve1/lxc/100/config").await;
    assert_eq!(eff.data()["nameserver"], "1.1.1.1");
    let pending = sim.get("/nodes/pve1/lxc/100/pending").await;
    assert!(
        pending
            .data()
            .as_array()
            .expect("a")
            .iter()
            .any(|p| p["key"] == "nameserver" && p["pending"] == "1.1.1.1")
    );
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("cores", "4"), ("digest", &digest)],
        )
        .await;
    assert_eq!(
        r.message(),
        "detected modified configuration - file changed by other user? Try again.\n"
    );
    let r = sim
        .call("PUT", "/nodes/pve1/lxc/100/config", &sim.root(), &[])
        .await;
    assert_eq!(r.message(), "no options specified\n");
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("delete", "tags,description"), ("tags", "a;b")],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("tags", "web,prod;web")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        sim.get("/nodes/pve1/lxc/100/config").await.data()["tags"],
        "web;prod"
    );
    let r = sim
        .call(
            "PUT",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("delete", "tags")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        sim.get("/nodes/pve1/lxc/100/config")
            .await
            .data()
            .get("tags")
            .is_none()
    );
    // Reboot applies pending values.
    let r = sim.post("/nodes/pve1/lxc/100/status/reboot", &[]).await;
    sim.wait_task("pve1", r.data().as_str().expect("u")).await;
    let cur = sim
        .call(
            "GET",
            "/nodes/pve1/lxc/100/config",
            &sim.root(),
            &[("current", "1")],
        )
        .await;
    assert_eq!(cur.data()["nameserver"], "1.1.1.1");
}

#[tokio::test]
async fn interfaces_and_snapshots() {
    let sim = Sim::default().await;
    let r = sim.get("/nodes/pve1/lxc/100/interfaces").await;
    let ifs = r.data().as_array().expect("a");
    assert_eq!(ifs[0]["name"], "lo");
    assert!(
        ifs.iter()
            .any(|i| i["name"] == "eth0" && i["inet"].is_string())
    );
    let r = sim.get("/nodes/pve2/lxc/103/interfaces").await;
    assert_eq!((r.status, r.data()), (200, &Value::Null));
    let r = sim
        .post(
            "/nodes/pve1/lxc/100/snapshot",
            &[("snapname", "before"), ("description", "x")],
        )
        .await;
    assert_eq!(
        sim.wait_task("pve1", r.data().as_str().expect("u")).await["exitstatus"],
        "OK"
    );
    let r = sim
        .post("/nodes/pve1/lxc/100/snapshot", &[("snapname", "before")])
        .await;
    assert_eq!(r.message(), "snapshot name 'before' already used\n");
    let list = sim.get("/nodes/pve1/lxc/100/snapshot").await;
    let names: Vec<&str> = list
        .data()
        .as_array()
        .expect("a")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["before", "current"]);
    sim.call(
        "PUT",
        "/nodes/pve1/lxc/100/config",
        &sim.root(),
        &[("hostname", "changed")],
    )
    .await;
    let r = sim
        .post("/nodes/pve1/lxc/100/snapshot/before/rollback", &[])
        .await;
    sim.wait_task("pve1", r.data().as_str().expect("u")).await;
    assert_ne!(
        sim.get("/nodes/pve1/lxc/100/config").await.data()["hostname"],
        "changed"
    );
    let r = sim
        .call(
            "DELETE",
            "/nodes/pve1/lxc/100/snapshot/before",
            &sim.root(),
            &[],
        )
        .await;
    sim.wait_task("pve1", r.data().as_str().expect("u")).await;
    let r = sim
        .call(
            "DELETE",
            "/nodes/pve1/lxc/100/snapshot/before",
            &sim.root(),
            &[],
        )
        .await;
    assert_eq!(r.message(), "snapshot 'before' does not exist\n");
}

#[tokio::test]
async fn pools_and_create_into_pool() {
    let sim = Sim::default().await;
    assert_eq!(
        sim.post("/pools", &[("poolid", "lab"), ("comment", "test")])
            .await
            .status,
        200
    );
    let r = sim.post("/pools", &[("poolid", "lab")]).await;
    assert_eq!(r.message(), "pool 'lab' already exists\n");
    let r = sim
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "220"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("storage", "local-lvm"),
                ("pool", "nope"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (
            403,
            "Permission check failed (pool 'nope' does not exist)\n"
        )
    );
    sim.create_ct("pve1", "220", &[("pool", "lab")]).await;
    let r = sim
        .call("GET", "/pools", &sim.root(), &[("poolid", "lab")])
        .await;
    assert_eq!(r.data()[0]["members"][0]["vmid"], 220);
    let r = sim
        .call("DELETE", "/pools", &sim.root(), &[("poolid", "lab")])
        .await;
    assert_eq!(r.message(), "pool 'lab' is not empty\n");
}

#[tokio::test]
async fn fault_injection_latency_errors_drops() {
    let sim = Sim::default().await;
    let st = sim.h.state();
    st.set_latency(Duration::from_millis(300));
    let t0 = Instant::now();
    assert_eq!(sim.get("/version").await.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    st.clear_faults();
    st.add_fault(FaultRule::error("^/nodes/pve1/lxc$", "got timeout"))
        .expect("rule");
    let r = sim.get("/nodes/pve1/lxc").await;
    assert_eq!((r.status, r.message()), (500, "got timeout\n"));
    assert_eq!(sim.get("/nodes/pve2/lxc").await.status, 200);
    st.clear_faults();
    let mut drop = FaultRule::error("^/version", "");
    drop.error_rate = 0.0;
    drop.drop_rate = 1.0;
    drop.times = Some(1);
    st.add_fault(drop).expect("rule");
    let res = sim
        .c
        .get(format!("{}/version", sim.h.api_url()))
        .header("Authorization", sim.h.token_header())
        .send()
        .await;
    assert!(res.is_err(), "connection must be dropped");
    assert_eq!(sim.get("/version").await.status, 200, "times=1 exhausted");
    // Admin endpoint with the root token.
    let r = sim
        .c
        .post(format!("{}/sim/admin/faults", sim.h.base_url))
        .header("Authorization", sim.h.token_header())
        .json(&serde_json::json!({"path": "^/cluster/nextid$", "error_rate": 1.0, "status": 503, "message": "maintenance"}))
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status(), 200);
    assert_eq!(sim.get("/cluster/nextid").await.status, 503);
    let r = sim
        .c
        .post(format!("{}/sim/admin/nodes/pve2/down", sim.h.base_url))
        .header("Authorization", sim.h.token_header())
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status(), 200);
    assert_eq!(sim.get("/nodes/pve2/lxc").await.status, 595);
    let noperm = format!("PVEAPIToken=root@pam!noperm={}", sim.h.noperm_token_secret);
    let r = sim
        .c
        .delete(format!("{}/sim/admin/faults", sim.h.base_url))
        .header("Authorization", noperm)
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn json_bodies_are_accepted() {
    let sim = Sim::default().await;
    let r = sim
        .c
        .post(format!("{}/nodes/pve1/lxc", sim.h.api_url()))
        .header("Authorization", sim.h.token_header())
        .json(&serde_json::json!({"vmid": 230, "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", "storage": "local-lvm", "onboot": true, "cores": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    sim.wait_task("pve1", v["data"].as_str().expect("u")).await;
    let cfg = sim.get("/nodes/pve1/lxc/230/config").await;
    assert_eq!(cfg.data()["onboot"], 1);
    assert_eq!(cfg.data()["cores"], 2);
}

/// `POST /nodes/{node}/lxc` decides like `create_vm`: privileged needs Sys.Modify on `/`,
/// VM.Allocate on the VMID, each option its VM.Config.* privilege, space on the disk's storage,
/// SDN.Use on the bridge, read access to the template's storage; `/access/permissions?path=`
/// answers exactly that path with propagate flags.
#[tokio::test]
async fn create_checks_every_path_like_proxmox() {
    let scenario: Scenario = toml::from_str(
        r#"
[[users]]
userid = "v@pve"
password = "vpw-12345"
role = "PVEVMAdmin"
path = "/vms/151"
[[acl]]
path = "/storage/local-lvm"
ugid = "v@pve"
role = "PVEDatastoreUser"
"#,
    )
    .expect("scenario");
    let sim = Sim::start(SimConfig::for_tests().with_scenario(scenario)).await;
    let login = sim.login("v@pve", "vpw-12345").await;
    let d = login.data();
    let v = Auth::Ticket {
        ticket: d["ticket"].as_str().expect("t").into(),
        csrf: Some(d["CSRFPreventionToken"].as_str().expect("c").into()),
    };
    let template = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
    let create = |vmid: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let mut form = vec![
            ("vmid", vmid),
            ("ostemplate", template),
            ("rootfs", "local-lvm:8"),
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ("hostname", "x"),
        ];
        form.extend_from_slice(extra);
        form
    };
    let msg = |r: &common::Resp| r.message().trim_end().to_owned();
    let r = sim
        .call("POST", "/nodes/pve1/lxc", &v, &create("152", &[]))
        .await;
    assert_eq!(msg(&r), "Permission check failed (/vms/152, VM.Allocate)");
    let r = sim
        .call(
            "POST",
            "/nodes/pve1/lxc",
            &v,
            &create("151", &[("unprivileged", "0")]),
        )
        .await;
    assert_eq!(msg(&r), "Permission check failed (/, Sys.Modify)");
    let r = sim
        .call(
            "POST",
            "/nodes/pve1/lxc",
            &v,
            &create("151", &[("features", "nesting=1,keyctl=1")]),
        )
        .await;
    assert_eq!(
        msg(&r),
        "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)"
    );
    let r = sim
        .call("POST", "/nodes/pve1/lxc", &v, &create("151", &[]))
        .await;
    assert_eq!(
        msg(&r),
        "Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)"
    );
    let perms = sim
        .call("GET", "/access/permissions", &v, &[("path", "/vms/151")])
        .await;
    assert_eq!(perms.data()["/vms/151"]["VM.Allocate"], 1);
    let perms = sim
        .call("GET", "/access/permissions", &v, &[("path", "/vms/152")])
        .await;
    assert_eq!(perms.data()["/vms/152"], serde_json::json!({}));
}
