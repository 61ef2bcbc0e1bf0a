//! Container creation end to end on the simulator's memory backend: plan (dry run), create
//! through the API, the job runs create → start → deploy → install → scripts → discover over
//! real HTTP and SSH, and the result (files, service, credential) is checked inside the CT and
//! in ctforge's records.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Duration;

use ctforge::config::ClusterBootstrap;
use ctforge_pve_sim::SimHandle;
use serde_json::json;

async fn sim() -> SimHandle {
    ctforge::install_crypto_provider();
    common::sim(
        r#"
        [[containers]]
        vmid = 150
        node = "pve1"
        hostname = "legacy"
        status = "running"
        "#,
        |c| c.with_nodes(2),
    )
    .await
}

fn cluster(sim: &SimHandle) -> ClusterBootstrap {
    common::sim_cluster(sim)
}

struct Session {
    app: common::TestApp,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.app
            .client
            .post(format!("{}{path}", self.app.address))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        self.app
            .client
            .get(format!("{}{path}", self.app.address))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn signed_in(sim: &SimHandle) -> Session {
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    signed_in_with(sim, root, |_| {}).await
}

/// An app with `root` as its template root and `tweak` applied to its configuration, signed
/// in as root@pam, templates discovered.
async fn signed_in_with(
    sim: &SimHandle,
    root: std::path::PathBuf,
    tweak: impl FnOnce(&mut ctforge::config::Config) + Send + 'static,
) -> Session {
    let c = cluster(sim);
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![c];
        config.templates.roots = vec![root];
        tweak(config);
    })
    .await;
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    let session = Session {
        app,
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    let r = session.post("/api/v1/templates/discover", json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    session
}

async fn wait_for_job(s: &Session, job_id: i64) -> serde_json::Value {
    for _ in 0..400 {
        let job = s.get(&format!("/api/v1/jobs/{job_id}")).await;
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job_id} did not finish");
}

#[tokio::test]
async fn plan_then_create_provisions_a_ready_container() {
    let sim = sim().await;
    let s = signed_in(&sim).await;
    // The CT already has /etc/motd, so the backup policy must keep a copy.
    let body = json!({ "template": "webapp", "hostname": "web-01", "password": "hunter22", "extra_packages": ["curl"] });

    let plan = s.post("/api/v1/containers/plan", body.clone()).await;
    assert_eq!(plan.status(), 200);
    let plan: serde_json::Value = plan.json().await.unwrap();
    let params: std::collections::BTreeMap<String, String> = plan["create_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(params["password"], "********");
    assert_eq!(params["hostname"], "web-01");
    assert_eq!(params["features"], "nesting=1");
    assert!(params["ostemplate"].contains("debian-12"), "{params:?}");
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
            "start",
            "deploy_file",
            "deploy_file",
            "deploy_file",
            "config_manager",
            "install",
            "run_script",
            "run_script",
            "discover"
        ]
    );
    assert!(
        sim.state().with(|c| c.cts.len()) == 1,
        "the dry run created nothing"
    );

    let r = s.post("/api/v1/containers", body).await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let (id, vmid, job_id) = (
        created["id"].as_i64().unwrap(),
        created["vmid"].as_u64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );
    let job = wait_for_job(&s, job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Inside the CT.
    let mem = sim.state();
    let backend = mem.memory_backend().unwrap();
    let vmid = u32::try_from(vmid).unwrap();
    assert_eq!(
        backend.file(vmid, "/etc/nginx/conf.d/site.conf").as_deref(),
        Some("server { listen 80; root /srv/www; }\n".as_bytes())
    );
    assert_eq!(
        backend.file(vmid, "/srv/www/index.html").as_deref(),
        Some("<h1>hello</h1>\n".as_bytes())
    );
    // Installed byte for byte.
    assert_eq!(
        backend.file(vmid, ctforge::guest::commands::APPLY_SCRIPT),
        Some(ctforge::guest::commands::CONFIG_MANAGER.as_bytes().to_vec()),
        "config-manager installed"
    );
    assert_eq!(
        backend.file(vmid, ctforge::guest::commands::APPLY_UNIT),
        Some(ctforge::guest::commands::apply_unit().into_bytes())
    );
    let commands = backend.commands(vmid).join("\n");
    assert!(
        commands.contains("apt-get install")
            && commands.contains("nginx")
            && commands.contains("curl"),
        "{commands}"
    );

    // In ctforge's records.
    let ct = s.app.state.store.get_container(id).await.unwrap();
    assert_eq!(ct.status, "ready");
    let services = s.app.state.store.list_services(id).await.unwrap();
    let nginx = services
        .iter()
        .find(|s| s.unit == "nginx.service")
        .unwrap_or_else(|| panic!("{services:?}"));
    assert_eq!(nginx.active_state, "active");
    assert_eq!(nginx.port, Some(80));
    assert!(
        nginx.url.as_deref().unwrap_or("").ends_with(":80"),
        "{nginx:?}"
    );
    let credentials = s.app.state.store.list_credentials(id).await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert!(
        !credentials[0].value_sealed.contains("admin-s3cret"),
        "sealed at rest"
    );
    assert_eq!(
        s.app
            .state
            .keyring
            .open(&credentials[0].value_sealed)
            .unwrap()
            .expose(),
        "admin-s3cret"
    );

    // Every log line was persisted and the job replays.
    let text: String = s
        .app
        .state
        .store
        .job_events_after(job_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}\n", e.data))
        .collect();
    assert!(text.contains("running 10-credentials.sh"), "{text}");

    // What the job did is visible to Prometheus.
    let metrics = s
        .app
        .client
        .get(format!("{}/metrics", s.app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "ctforge_jobs_finished_total{kind=\"create_container\",state=\"succeeded\"} 1",
        "ctforge_job_step_duration_seconds_count{kind=\"create_container\",step=\"install\",outcome=\"ok\"} 1",
        "ctforge_pve_request_duration_seconds_count{method=\"POST\",endpoint=\"/nodes/{node}/lxc\",outcome=\"ok\"}",
        "ctforge_pve_request_duration_seconds_count{method=\"GET\",endpoint=\"/nodes/{node}/tasks/{upid}/status\"",
        "ctforge_ssh_command_duration_seconds_count{outcome=\"ok\"}",
        "ctforge_http_requests_total{route=\"/api/v1/containers\",method=\"POST\",status=\"202\"} 1",
        "ctforge_sessions 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn bad_requests_name_their_fields_and_create_nothing() {
    let sim = sim().await;
    let s = signed_in(&sim).await;
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "bad_name", "ip": "10.0.0.1", "colour": 1 }),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text().await.unwrap().contains("colour"),
        "unknown fields are named"
    );
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "bad_name", "ip": "10.0.0.1" }),
        )
        .await;
    assert_eq!(r.status(), 400);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(
        err["fields"]["hostname"].is_string() && err["fields"]["ip"].is_string(),
        "{err}"
    );
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "taken", "vmid": 150 }),
        )
        .await;
    assert_eq!(r.status(), 400, "a taken VMID is refused at submit");
    assert!(
        s.app
            .state
            .store
            .list_containers()
            .await
            .unwrap()
            .is_empty()
    );
}

/// The bounded-wait fixtures (`tests/fixtures/wait-templates`), a 2 s settle bound.
async fn bounded_waits(sim: &SimHandle) -> Session {
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/wait-templates"
    ));
    signed_in_with(sim, root, |c| c.provisioning.settle_timeout_secs = 2).await
}

#[tokio::test]
async fn a_unit_that_never_finishes_starting_delays_the_job_by_the_bound_then_warns() {
    let sim = sim().await;
    let s = bounded_waits(&sim).await;
    let started = std::time::Instant::now();
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "stuck-unit", "hostname": "stuck-01" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let job_id = created["job_id"].as_i64().unwrap();
    let job = wait_for_job(&s, job_id).await;
    println!(
        "stuck-unit job took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(job["state"], "succeeded", "{job}");
    let text: String = s
        .app
        .state
        .store
        .job_events_after(job_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}\n", e.data))
        .collect();
    assert!(
        text.contains("WARNING: before discovery: systemd did not settle within 2s; still activating: stuck.service; continuing"),
        "{text}"
    );
    let vmid = u32::try_from(created["vmid"].as_u64().unwrap()).unwrap();
    let guest = sim.state().memory_backend().unwrap().guest(vmid).unwrap();
    assert!(guest.data.activating.contains("stuck"), "still activating");
}

/// A unit that holds up the boot (enabled, never finishes starting): the wait after start
/// ends at the bound with a warning naming it, and the job goes on. The test adds the unit
/// while the simulator holds the start task, so the boot is stuck from its first moment.
#[tokio::test]
async fn a_boot_that_never_settles_is_waited_for_only_up_to_the_bound() {
    use ctforge_pve_sim::backend::CtBackend as _;
    let sim = sim().await;
    let s = bounded_waits(&sim).await;
    let hold = sim
        .state()
        .hold(ctforge_pve_sim::HoldPoint::Task("vzstart".into()));
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "stuck-unit", "hostname": "boot-01" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let job_id = created["job_id"].as_i64().unwrap();
    let vmid = u32::try_from(created["vmid"].as_u64().unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), hold.reached())
        .await
        .expect("the job reached the start task within 30 s");
    let state = sim.state();
    let memory = state.memory_backend().unwrap();
    memory.write_file(
        vmid,
        "/etc/systemd/system/boot-stuck.service",
        b"[Service]\nExecStartPre=/bin/sleep infinity\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    );
    let (_, _, code) = memory.run(
        vmid,
        &["systemctl".into(), "enable".into(), "boot-stuck".into()],
        b"",
    );
    assert_eq!(code, 0);
    hold.release();
    let job = wait_for_job(&s, job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let text: String = s
        .app
        .state
        .store
        .job_events_after(job_id, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}\n", e.data))
        .collect();
    assert!(
        text.contains("WARNING: boot: systemd did not settle within 2s; still activating: boot-stuck.service; continuing"),
        "{text}"
    );
}

#[tokio::test]
async fn a_script_over_its_timeout_is_killed_in_the_container_and_fails_the_step() {
    let sim = sim().await;
    let s = bounded_waits(&sim).await;
    let started = std::time::Instant::now();
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "slow-script", "hostname": "slow-01" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let job = wait_for_job(&s, created["job_id"].as_i64().unwrap()).await;
    println!(
        "slow-script job took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["current_step"], "scripts");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("script 10-slow.sh")
            && error.contains("exceeded its 3s timeout and was killed inside the container"),
        "{error}"
    );
    let vmid = u32::try_from(created["vmid"].as_u64().unwrap()).unwrap();
    let guest = sim.state().memory_backend().unwrap().guest(vmid).unwrap();
    assert!(
        guest.data.procs.values().all(|p| !p.contains("sleep")),
        "nothing of the script runs any more: {:?}",
        guest.data.procs
    );
    let (out, _, code) = sim.state().memory_backend().unwrap().run(
        vmid,
        &["pgrep".into(), "-af".into(), "sleep infinit[y]".into()],
        b"",
    );
    assert_eq!(
        code,
        1,
        "pgrep finds no sleep: {}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn a_failing_script_fails_the_job_and_retry_resumes_from_it() {
    let sim = sim().await;
    let s = signed_in(&sim).await;
    let r = s.post("/api/v1/containers", json!({ "template": "webapp", "hostname": "web-02", "extra_packages": ["no-such-package"] })).await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let job = wait_for_job(&s, created["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["current_step"], "install");
    assert!(
        job["error"].as_str().unwrap().contains("exited with"),
        "{job}"
    );
    let ct = s
        .app
        .state
        .store
        .get_container(created["id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(ct.status, "error");
}

#[tokio::test]
async fn test_connection_pins_the_ssh_host_key_and_refuses_a_changed_one() {
    let sim = sim().await;
    let s = signed_in(&sim).await;
    let cluster = s.app.state.store.list_clusters().await.unwrap().remove(0);
    assert!(cluster.ssh_host_key.is_none());
    let report = ctforge::clusters::test_connection(&s.app.state, &cluster).await;
    assert!(report.ssh_error.is_none(), "{report:?}");
    let pinned = s
        .app
        .state
        .store
        .get_cluster(cluster.id)
        .await
        .unwrap()
        .ssh_host_key
        .unwrap();
    assert_eq!(
        Some(pinned.clone()),
        sim.ssh_host_key_fingerprint,
        "pinned on first use"
    );

    // The node's key changes (reinstall or attack): refused, and the message says what to do.
    let mut input = ctforge::storage::model::ClusterInput {
        ssh_host_key: Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        ..ctforge::storage::model::ClusterInput::from(&cluster)
    };
    s.app
        .state
        .store
        .update_cluster(cluster.id, &input)
        .await
        .unwrap();
    // The node's own pin (taken on first use too) is what ctforge compares with.
    let nodes = s.app.state.store.list_node_ssh(cluster.id).await.unwrap();
    assert!(
        !nodes.is_empty(),
        "the node's key is pinned per node as well"
    );
    for n in &nodes {
        s.app
            .state
            .store
            .pin_node_host_key(
                cluster.id,
                &n.node,
                Some("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            )
            .await
            .unwrap();
    }
    let cluster = s.app.state.store.get_cluster(cluster.id).await.unwrap();
    let report = ctforge::clusters::test_connection(&s.app.state, &cluster).await;
    let error = report.ssh_error.unwrap_or_default();
    assert!(
        error.contains("not the confirmed key") && error.contains("confirm the new key only if"),
        "{error}"
    );
    input.ssh_host_key = Some(pinned);
    s.app
        .state
        .store
        .update_cluster(cluster.id, &input)
        .await
        .unwrap();
}

#[tokio::test]
async fn api_tokens_never_do_more_than_their_owner_may() {
    let sim = sim().await;
    let s = signed_in(&sim).await;
    let (_, alice) = ctforge::tokens::create(&s.app.state, "alice@pve", "ci", "127.0.0.1")
        .await
        .unwrap();
    let (_, root) = ctforge::tokens::create(&s.app.state, "root@pam", "ci", "127.0.0.1")
        .await
        .unwrap();
    let body = json!({ "template": "webapp", "hostname": "by-token" });
    let r = s
        .app
        .client
        .post(format!("{}/api/v1/containers", s.app.address))
        .bearer_auth(&alice)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "alice lacks VM.Allocate in Proxmox, so her token cannot create"
    );
    assert!(r.text().await.unwrap().contains("VM.Allocate"));
    let r = s
        .app
        .client
        .post(format!("{}/api/v1/containers", s.app.address))
        .bearer_auth(&root)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// One Server-Sent Event: `id:`, `event:`, `data:` (parsed JSON).
#[derive(Debug)]
struct Sse {
    id: String,
    event: String,
    data: serde_json::Value,
}

/// Reads a whole event stream until the server closes it; panics if it stays open longer
/// than `limit` (the stream must close once the container's jobs are finished).
async fn read_stream(response: reqwest::Response, limit: Duration) -> Vec<Sse> {
    use futures_util::StreamExt;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("the event stream did not close within {limit:?}"));
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            out.push(Sse {
                id,
                event,
                data: serde_json::from_str(&data).unwrap(),
            });
        }
    }
    out
}

impl Session {
    async fn events(&self, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut request = self
            .app
            .client
            .get(format!("{}{path}", self.app.address))
            .header("cookie", &self.cookie)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.send().await.unwrap()
    }
}

#[tokio::test]
async fn container_read_events_stream_and_job_filters() {
    let sim = sim().await;
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    // No workers yet: the test starts them once its viewer is subscribed.
    let s = signed_in_with(&sim, root, |c| c.workers.concurrency = 0).await;
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "web-ev", "password": "hunter22" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    let vmid = created["vmid"].as_i64().unwrap();
    let job_id = created["job_id"].as_i64().unwrap();
    let stream_path = format!("/api/v1/containers/{id}/events");

    // Live: the viewer is subscribed (its answer arrived) while no worker runs; then the
    // worker starts, and every job event reaches the viewer as it happens.
    let live = s.events(&stream_path, None).await;
    assert_eq!(live.status(), 200);
    let workers = ctforge::startup::start_workers(&s.app.state);
    let live = read_stream(live, Duration::from_secs(120)).await;
    workers.stop().await;
    let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
    assert!(kinds.contains(&"created"), "{kinds:?}");
    assert!(kinds.contains(&"start"), "{kinds:?}");
    assert!(kinds.contains(&"step"), "{kinds:?}");
    assert!(kinds.contains(&"ready"), "{kinds:?}");
    assert_eq!(
        kinds.last(),
        Some(&"done"),
        "the terminal event closes the stream"
    );
    assert!(
        live.iter().all(|e| !e.id.is_empty()),
        "every event has an id"
    );
    let sources: std::collections::BTreeSet<&str> = live
        .iter()
        .map(|e| e.data["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["container", "job"].into_iter().collect());
    let done = live.last().unwrap();
    assert_eq!(done.data["job_id"], job_id);

    // A late viewer of the finished job: the same events replayed, then the stream closes.
    let replay = read_stream(s.events(&stream_path, None).await, Duration::from_secs(30)).await;
    let ids = |v: &[Sse]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let sorted = |v: &[Sse]| {
        let mut kinds: Vec<String> = v.iter().map(|e| e.event.clone()).collect();
        kinds.sort();
        kinds
    };
    assert_eq!(
        sorted(&replay),
        sorted(&live),
        "the replay has every live event"
    );
    assert_eq!(replay.last().unwrap().event, "done");
    // Resuming after the third event replays exactly the rest.
    let resumed = read_stream(
        s.events(&stream_path, Some(&replay[2].id)).await,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(ids(&resumed), ids(&replay)[3..].to_vec());
    // Nothing after the last event of a finished job: 204, so EventSource stops reconnecting.
    let after_all = s
        .events(&stream_path, Some(&replay.last().unwrap().id))
        .await;
    assert_eq!(after_all.status(), 204);
    let bad = s.events(&stream_path, Some("not-an-id")).await;
    assert_eq!(bad.status(), 400);

    // The container read: by managed id and by cluster:vmid, the list item's fields and more.
    let one = s.get(&format!("/api/v1/containers/{id}")).await;
    assert_eq!(one["vmid"], vmid, "{one}");
    assert_eq!(one["id"], id);
    assert_eq!(one["managed"], true);
    assert_eq!(one["status"], "running", "{one}");
    assert_eq!(one["hostname"], "web-ev");
    assert_eq!(one["template"], "webapp", "{one}");
    assert_eq!(one["template_ref"]["name"], "webapp", "{one}");
    assert_eq!(one["creation_job"]["id"], job_id);
    assert_eq!(one["creation_job"]["state"], "succeeded");
    assert_eq!(one["last_job"]["id"], job_id);
    assert!(one["services"].is_array());
    assert!(
        one["events"]["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ready"),
        "{one}"
    );
    assert_eq!(one["events"]["stream"], stream_path);
    let list: serde_json::Value = s.get("/api/v1/containers").await;
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap()
        .clone();
    for (key, value) in item.as_object().unwrap() {
        if key != "uptime" && key != "cpu" && key != "mem" {
            assert_eq!(&one[key], value, "{key} as in the list");
        }
    }
    let by_vmid = s.get(&format!("/api/v1/containers/sim:{vmid}")).await;
    assert_eq!(by_vmid["id"], id);
    let legacy = s.get("/api/v1/containers/sim:150").await;
    assert_eq!(legacy["managed"], false, "{legacy}");
    assert_eq!(legacy["vmid"], 150);
    assert_eq!(legacy["status"], "running");
    assert!(legacy["creation_job"].is_null());
    for missing in ["/api/v1/containers/999999", "/api/v1/containers/sim:999"] {
        let r = s
            .app
            .client
            .get(format!("{}{missing}", s.app.address))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{missing}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], 404);
    }

    // Job filters.
    let mine = s
        .get(&format!(
            "/api/v1/jobs?container={id}&state=succeeded&kind=create_container"
        ))
        .await;
    let mine = mine["jobs"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], job_id);
    assert_eq!(mine[0]["state"], "succeeded");
    let failed = s
        .get(&format!("/api/v1/jobs?container={id}&state=failed"))
        .await;
    assert!(failed["jobs"].as_array().unwrap().is_empty());
    let bulk = s.get("/api/v1/jobs?kind=bulk_action").await;
    assert!(bulk["jobs"].as_array().unwrap().is_empty());
    let unmanaged = s.get("/api/v1/jobs?container=sim:150").await;
    assert!(unmanaged["jobs"].as_array().unwrap().is_empty());
    // A second job, then paging one at a time.
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "web-ev2", "password": "hunter22" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let second: serde_json::Value = r.json().await.unwrap();
    let queued = s.get("/api/v1/jobs?state=queued").await;
    assert_eq!(queued["jobs"][0]["id"], second["job_id"]);
    let first_page = s.get("/api/v1/jobs?limit=1").await;
    assert_eq!(first_page["jobs"][0]["id"], second["job_id"]);
    let before = first_page["next_before"].as_i64().unwrap();
    let next_page = s
        .get(&format!("/api/v1/jobs?limit=1&before={before}"))
        .await;
    assert_eq!(next_page["jobs"][0]["id"], job_id);
    let r = s
        .app
        .client
        .get(format!("{}/api/v1/jobs?state=bogus", s.app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// The library's `.custom` package lists: the check decides whether the install runs, the
/// install's output is in the job log, and its timeout is honoured.
#[tokio::test]
async fn custom_packages_follow_their_check_and_timeout() {
    let sim = sim().await;
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/library-templates"
    ));
    let s = signed_in_with(&sim, root, |_| {}).await;
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "custom-pkgs", "hostname": "custom-01" }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    let job_id = created["job_id"].as_i64().unwrap();
    let job = wait_for_job(&s, job_id).await;
    let events = s.get(&format!("/api/v1/jobs/{job_id}/events")).await;
    let text = events.to_string();
    assert_eq!(job["state"], "succeeded", "{job}\n{text}");
    assert!(
        text.contains("present: already installed (check passed), skipped"),
        "{text}"
    );
    assert!(!text.contains("should-not-run"), "{text}");
    assert!(
        text.contains("fresh: check failed (status 1), installing (limit 60s)"),
        "{text}"
    );
    let vmid = u32::try_from(created["vmid"].as_u64().unwrap()).unwrap();
    let guest = sim.state().memory_backend().unwrap().guest(vmid).unwrap();
    assert!(guest.data.packages.contains("apt:freshtool"), "installed");

    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "custom-timeout", "hostname": "custom-02" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: serde_json::Value = r.json().await.unwrap();
    let job = wait_for_job(&s, created["job_id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("custom package slow") && error.contains("2s timeout"),
        "{error}"
    );
}

/// Ten `POST /api/v1/containers` at once without a VMID: Proxmox's `nextid` answers every one
/// with the same id, so each reserves its own (`vmid:<cluster>:<vmid>` lease) — all ten are
/// accepted with ten different VMIDs, and each CT in Proxmox carries its own hostname.
#[tokio::test]
async fn ten_simultaneous_creations_with_automatic_vmids_never_collide() {
    let sim = sim().await;
    let s = signed_in(&sim).await;
    let requests = (0..10).map(|i| {
        let s = &s;
        async move {
            let r = s
                .post(
                    "/api/v1/containers",
                    json!({ "hostname": format!("par-{i}") }),
                )
                .await;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (i, status, body)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut vmids = std::collections::BTreeMap::new();
    for (i, status, body) in &answers {
        assert_eq!(*status, 202, "creation {i}: {body}");
        let vmid = body["vmid"].as_u64().unwrap();
        assert!(
            vmids
                .insert(vmid, (*i, body["id"].as_i64().unwrap()))
                .is_none(),
            "VMID {vmid} handed out twice: {answers:?}"
        );
    }
    assert_eq!(vmids.len(), 10);
    assert!(
        !vmids.contains_key(&150),
        "the existing CT's VMID is never handed out"
    );
    for (_, _, body) in &answers {
        let job = wait_for_job(&s, body["job_id"].as_i64().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    // What Proxmox lists: each VMID holds the container asked for under it.
    for (vmid, (i, id)) in &vmids {
        let name = sim.state().with(|c| {
            c.cts
                .get(&u32::try_from(*vmid).unwrap())
                .map(|ct| ct.name())
        });
        assert_eq!(name.as_deref(), Some(format!("par-{i}").as_str()));
        let detail = s.get(&format!("/api/v1/containers/{id}")).await;
        assert_eq!(detail["hostname"], format!("par-{i}"), "{detail}");
        assert_eq!(detail["vmid"], *vmid, "{detail}");
    }
}

/// A command running on a node's shared SSH connection finishes even when a job holding a
/// newer version of the cluster's settings (pinning the node's host key on first use makes
/// one) asks for a connection meanwhile: that job gets a new connection and the running
/// command is not cut off ("the ssh channel closed before … finished"); a job holding the
/// older version then shares the newer connection instead of replacing it again.
#[tokio::test]
async fn a_running_command_outlives_a_newer_settings_version_on_its_node() {
    use ctforge_pve_sim::hold::HoldPoint;
    let sim = sim().await;
    let s = signed_in(&sim).await;
    let state = s.app.state.clone();
    let cluster = state.store.list_clusters().await.unwrap().remove(0);
    let hold = sim
        .state()
        .hold(HoldPoint::Exec("echo held-command".into()));
    let first = state
        .guests
        .connect(&cluster)
        .await
        .unwrap()
        .channel(150, None);
    let running =
        tokio::spawn(async move { first.exec("echo held-command", &mut |_, _| {}).await });
    tokio::time::timeout(Duration::from_secs(10), hold.reached())
        .await
        .expect("the command reached the simulator");
    let mut newer = cluster.clone();
    newer.updated_at += 1;
    let other = state
        .guests
        .connect(&newer)
        .await
        .unwrap()
        .channel(150, None);
    let out = other.exec("echo other", &mut |_, _| {}).await.unwrap();
    assert!(out.success(), "{out:?}");
    let older = state
        .guests
        .connect(&cluster)
        .await
        .unwrap()
        .channel(150, None);
    let out = older.exec("echo older", &mut |_, _| {}).await.unwrap();
    assert!(out.success(), "{out:?}");
    hold.release();
    let out = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the held command ends")
        .unwrap()
        .unwrap_or_else(|e| panic!("the running command was cut off: {e}"));
    assert!(
        out.success() && out.tail_text().contains("held-command"),
        "{out:?}"
    );
}
