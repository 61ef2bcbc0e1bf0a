//! Helpers for the tests that run real LXC containers through the simulator's lxc backend:
//! whether they can run here, and a simulator on the machine's test bridge whose containers
//! are removed when it goes away.

use std::path::Path;

use ctforge_pve_sim::{Backend, LxcOptions, SimConfig, SimHandle};

/// True (after printing `SKIPPED <name>`) when real containers cannot be made here: not root,
/// or `CTFORGE_SKIP_LXC=1`.
pub fn unavailable(name: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false);
    if !root || std::env::var("CTFORGE_SKIP_LXC").is_ok_and(|v| v == "1") {
        println!("SKIPPED {name}: needs root (creates LXC containers)");
        return true;
    }
    false
}

/// Starts a simulator (TLS, SSH) with the lxc backend keeping its state in `state_dir`,
/// preparing the machine with `scripts/setup-lxc.sh` first when the bridge or the OS template
/// is missing. `authorized_keys` may log in to its SSH endpoint besides the root password.
pub async fn sim(state_dir: &Path, authorized_keys: Vec<String>) -> SimHandle {
    ctforge::install_crypto_provider();
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
    let mut cfg = SimConfig::for_tests().with_ssh().with_tls(true);
    cfg.backend = Backend::Lxc;
    cfg.state_dir = Some(state_dir.to_owned());
    cfg.lxc = opts;
    cfg.ssh_authorized_keys = authorized_keys;
    ctforge_pve_sim::start(cfg).await.unwrap()
}

/// A container provisioned for real from the `nginx` fixture template
/// (`tests/fixtures/lxc-templates`) through the API of a real app, on a real LXC container.
pub struct Provisioned {
    /// Keeps the simulator's state (and the container's root filesystem).
    pub dir: tempfile::TempDir,
    /// The simulator (lxc backend).
    pub sim: SimHandle,
    /// The app (SQLite) with the simulator as cluster `lab`.
    pub app: super::TestApp,
    /// root@pam signed in.
    pub session: super::ApiSession,
    /// ctforge's container record.
    pub id: i64,
    /// The provisioning job.
    pub job_id: i64,
    /// Proxmox VMID.
    pub vmid: u32,
    /// How long the provisioning job took.
    pub pipeline: std::time::Duration,
}

impl Provisioned {
    /// The job's events as the API shows them.
    pub async fn events(&self) -> serde_json::Value {
        self.app
            .client
            .get(format!(
                "{}/api/v1/jobs/{}/events",
                self.app.address, self.job_id
            ))
            .header("cookie", &self.session.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A `pct` channel into the container over the simulator's SSH endpoint.
    pub async fn channel(&self) -> ctforge_ssh::PctChannel {
        use ctforge_ssh::{
            HostKeyPolicy, PctChannel, PctOptions, PushMode, SshAuth, SshSession, SshTarget,
        };
        let target = SshTarget::new(
            "127.0.0.1",
            self.sim.ssh_addr.unwrap().port(),
            "root",
            SshAuth::Password(self.sim.root_password.clone().into()),
            HostKeyPolicy::TrustOnFirstUse,
        );
        let session = std::sync::Arc::new(SshSession::connect(&target).await.unwrap());
        PctChannel::new(session, self.vmid).with_options(PctOptions {
            push_mode: PushMode::ExecCat,
            ..PctOptions::default()
        })
    }
}

/// Provisions `hostname` as CT `vmid` from the `nginx` fixture (nginx-light from Debian, files
/// with each policy, a credential script) and waits for the job; panics with its events when
/// it fails. `web_links` turns on port probing (the CT is on this machine's test bridge).
pub async fn provision_nginx(hostname: &str, vmid: u32, web_links: bool) -> Provisioned {
    let (p, job) = provision("lxc-templates", "nginx", hostname, vmid, move |c| {
        c.monitoring.web_links = web_links;
    })
    .await;
    if job["state"] != "succeeded" {
        let events = p.events().await;
        panic!("job failed: {job}\n{events}");
    }
    p
}

/// Provisions `hostname` as CT `vmid` from `template` of the fixture root
/// `tests/fixtures/<fixtures>` on real LXC, with `tweak` applied to the app's configuration,
/// and waits for the job to end (10 minutes at most, then it is returned unfinished); the job as
/// the API shows it.
pub async fn provision(
    fixtures: &str,
    template: &str,
    hostname: &str,
    vmid: u32,
    tweak: impl FnOnce(&mut ctforge::config::Config) + Send + 'static,
) -> (Provisioned, serde_json::Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixtures);
    let body = serde_json::json!({ "template": template, "hostname": hostname, "vmid": vmid, "password": "provision-me" });
    provision_from(root, body, tweak).await
}

/// Provisions the create request `body` (its `template` from the template root `root`,
/// its `vmid` given) on real LXC, as [`provision`] does.
pub async fn provision_from(
    root: std::path::PathBuf,
    body: serde_json::Value,
    tweak: impl FnOnce(&mut ctforge::config::Config) + Send + 'static,
) -> (Provisioned, serde_json::Value) {
    provision_at("/api/v1/containers", root, body, tweak).await
}

/// Provisions the create request `body` posted to `path` (`/api/v1/containers`, or
/// `/api/v1/guests` for either kind) on the simulator's lxc backend, as [`provision`] does.
pub async fn provision_at(
    path: &str,
    root: std::path::PathBuf,
    body: serde_json::Value,
    tweak: impl FnOnce(&mut ctforge::config::Config) + Send + 'static,
) -> (Provisioned, serde_json::Value) {
    use serde_json::json;
    use std::time::{Duration, Instant};
    let template = body["template"].as_str().unwrap_or("-").to_owned();
    // Emulated VMs (TCG) on a busy machine take long; containers take seconds. A manual run of
    // a big template sets its own bound (`CTFORGE_TEST_PROVISION_SECS`).
    let limit_secs = std::env::var("CTFORGE_TEST_PROVISION_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if path.starts_with("/api/v1/guests") {
            1500
        } else {
            600
        });
    let vmid = u32::try_from(body["vmid"].as_u64().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sim = sim(dir.path(), Vec::new()).await;
    let cluster = ctforge::config::ClusterBootstrap {
        name: "lab".into(),
        ssh_host_key: sim.ssh_host_key_fingerprint.clone(),
        ..super::sim_cluster(&sim)
    };
    let app = super::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
        tweak(c);
    })
    .await;
    let session =
        super::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let discovered = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            json!({}),
        )
        .await;
    assert_eq!(discovered.status(), 200);
    let started = Instant::now();
    let r = session.post(&app.client, &app.address, path, body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    let (id, job_id) = (
        created["id"].as_i64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );
    let get = |path: String| {
        app.client
            .get(format!("{}{path}", app.address))
            .header("cookie", &session.cookie)
            .send()
    };
    let job = loop {
        let job: serde_json::Value = get(format!("/api/v1/jobs/{job_id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Past the bound the job is handed back unfinished: callers print its events.
        if matches!(job["state"].as_str(), Some("succeeded" | "failed"))
            || started.elapsed() > Duration::from_secs(limit_secs)
        {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let pipeline = started.elapsed();
    println!(
        "provisioning pipeline ({template}) took {:.1} s and {}",
        pipeline.as_secs_f64(),
        job["state"]
    );
    let p = Provisioned {
        dir,
        sim,
        app,
        session,
        id,
        job_id,
        vmid,
        pipeline,
    };
    (p, job)
}
