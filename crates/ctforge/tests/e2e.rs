//! The end-to-end journey, in headless Chromium, against real `ctforge` processes and real LXC
//! containers (the simulator's lxc backend): sign in on the login page, discover templates,
//! create a CT with the wizard, watch its progress to ready, find it on the dashboard, open its
//! services and reveal a credential, stop, start, reboot and delete it.
//!
//! It runs twice, once per deployment profile:
//! - **single node**: one `ctforge serve` with SQLite and in-process workers;
//! - **scale-out**: `ctforge serve` without workers plus a separate `ctforge worker`, sharing
//!   PostgreSQL and Redis (progress reaches the browser through Redis).
//!
//! Artefacts: each process's log in `artifacts/e2e/<profile>-<process>.log`, screenshots of
//! the main steps (and of the failing step) in `artifacts/screenshots/e2e-<profile>-*.png`.
//! Needs root and the machine prepared by `scripts/setup-lxc.sh` (`.ci/run` runs it); skipped
//! with a message when not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use ctforge_pve_sim::SimHandle;

/// Child processes, killed when the test ends however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    SingleNode,
    ScaleOut,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::SingleNode => "single-node",
            Profile::ScaleOut => "scale-out",
        }
    }
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the profile's processes; returns them and the web address once `/readyz` is 200.
async fn start_profile(profile: Profile, sim: &SimHandle, data: &Path) -> (Processes, String) {
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lxc-templates");
    let config = data.join("ctforge.toml");
    std::fs::write(
        &config,
        format!(
            "[templates]\nroots = [{templates:?}]\n\n{}",
            ctforge_pve_sim::cli::cluster_toml(sim)
        ),
    )
    .unwrap();
    let mut env: Vec<(&str, String)> = vec![(
        "CTFORGE_SECRET_KEY",
        "ZTJlLWVuZC10by1lbmQta2V5LTMyLWJ5dGVzLWxvbmc=".to_owned(),
    )];
    if profile == Profile::ScaleOut {
        env.push(("CTFORGE_DATABASE_URL", common::fresh_pg_url().await));
        env.push((
            "CTFORGE_REDIS_URL",
            std::env::var("CTFORGE_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ));
    }
    let logs = artifacts();
    let spawn = |process: &str, args: &[&str], workers: &str| {
        let log =
            std::fs::File::create(logs.join(format!("{}-{process}.log", profile.name()))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_ctforge"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("CTFORGE_WORKERS__CONCURRENCY", workers)
            .env("RUST_LOG", "info,ctforge=debug")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let web_workers = if profile == Profile::ScaleOut {
        "0"
    } else {
        "2"
    };
    let mut processes = Processes(vec![spawn(
        "serve",
        &["serve", "--listen", &listen],
        web_workers,
    )]);
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "ctforge serve did not become ready (see artifacts/e2e/{}-serve.log)",
            profile.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if profile == Profile::ScaleOut {
        processes.0.push(spawn("worker", &["worker"], "2"));
    }
    (processes, base)
}

/// The LXC state of CT `vmid` (`RUNNING`, `STOPPED`) or `None` when it does not exist.
/// The LXC path of container `vmid`: the simulator keeps each node's containers under their
/// own, `lxc/<node>/<vmid>` (the first node's when none holds it yet).
fn lxc_path(state_dir: &Path, vmid: &str) -> std::path::PathBuf {
    std::fs::read_dir(state_dir.join("lxc"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|node| node.join(vmid).is_dir())
        .unwrap_or_else(|| state_dir.join("lxc/pve1"))
}

fn lxc_state(state_dir: &Path, vmid: &str) -> Option<String> {
    let lxc_path = lxc_path(state_dir, vmid);
    let out = Command::new("lxc-info")
        .arg("-P")
        .arg(lxc_path)
        .args(["-n", vmid, "-s", "-H"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn wait_lxc(state_dir: &Path, vmid: &str, want: Option<&str>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = lxc_state(state_dir, vmid);
        if got.as_deref() == want {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "CT {vmid}: LXC state {got:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn text(page: &Page) -> anyhow::Result<String> {
    Ok(page
        .evaluate("document.body ? document.body.innerText : ''")
        .await?
        .into_value()?)
}

/// Opens the confirmation dialog of `action` on the current page and confirms it.
async fn confirm(page: &Page, action: &str, hostname: &str) -> anyhow::Result<()> {
    browser::click(
        page,
        &format!("button[data-dialog-open^=\"dlg-{action}-\"]"),
    )
    .await?;
    browser::wait_for(page, "document.querySelector('dialog[open]') !== null", 5).await?;
    let dialog: String = page
        .evaluate("document.querySelector('dialog[open]').innerText")
        .await?
        .into_value()?;
    anyhow::ensure!(
        dialog.contains(hostname),
        "the {action} dialog names the CT: {dialog}"
    );
    // The form posts, the server awaits the Proxmox task, then redirects: a new document.
    page.evaluate("window.__e2e_before_submit = true").await?;
    browser::click(page, "dialog[open] button[type=\"submit\"]").await?;
    browser::wait_for(page, "window.__e2e_before_submit === undefined", 120).await?;
    browser::wait_for(page, "document.readyState === 'complete'", 10).await?;
    Ok(())
}

async fn journey(profile: Profile) {
    let started = Instant::now();
    let state_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let sim = common::lxc::sim(state_dir.path(), Vec::new()).await;
    let (_processes, base) = start_profile(profile, &sim, data.path()).await;
    let name = profile.name();
    let hostname = format!("e2e-{name}");
    let shot = |step: &str| format!("e2e-{name}-{step}");

    let b = browser::Browser::launch().await;
    let page = b.browser.new_page("about:blank").await.unwrap();
    let lxc = state_dir.path().to_owned();
    browser::run(&shot("journey"), &page, async {
        // Sign in on the login page with the Proxmox account.
        browser::goto(&page, &format!("{base}/")).await?;
        browser::wait_for(&page, "location.pathname === '/login'", 10).await?;
        browser::type_into(&page, "input[name=\"username\"]", "root").await?;
        browser::type_into(&page, "input[name=\"password\"]", &sim.root_password).await?;
        browser::click(&page, "form[action=\"/login\"] button[type=\"submit\"]").await?;
        browser::wait_for(&page, "location.pathname === '/'", 15).await?;

        // Discover the templates on disk.
        browser::goto(&page, &format!("{base}/templates")).await?;
        browser::click(&page, "form[action=\"/templates/discover\"] button").await?;
        browser::wait_for(
            &page,
            "document.querySelector('a[href=\"/templates/nginx\"]') !== null",
            15,
        )
        .await?;

        // Create a CT with the wizard.
        browser::goto(&page, &format!("{base}/containers/new")).await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"template\"][value=\"nginx\"]') !== null",
            10,
        )
        .await?;
        browser::click(&page, "input[name=\"template\"][value=\"nginx\"]").await?;
        browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
        browser::wait_for(
            &page,
            "document.querySelector('input[name=\"hostname\"]') !== null",
            10,
        )
        .await?;
        browser::set_value(&page, "input[name=\"hostname\"]", &hostname).await?;
        browser::set_value(&page, "input[name=\"password\"]", "e2e-root-pw-1").await?;
        // Next until Review; after each click wait until the form's step marker changed (the
        // next page has loaded), so no read races a navigation.
        for _ in 0..4 {
            browser::wait_for(&page, "document.readyState === 'complete' && document.body !== null", 10)
                .await?;
            if text(&page).await?.contains("Proxmox create call") {
                break;
            }
            let step: String = page
                .evaluate("(document.querySelector('input[name=\"step\"]') || {}).value || ''")
                .await?
                .into_value()?;
            browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
            let changed = format!(
                "document.readyState === 'complete' && ((document.querySelector('input[name=\"step\"]') || {{}}).value || '') !== {}",
                serde_json::to_string(&step)?
            );
            browser::wait_for(&page, &changed, 15).await?;
        }
        browser::wait_for(
            &page,
            "document.body.innerText.includes('Proxmox create call')",
            10,
        )
        .await?;
        browser::screenshot(&page, &shot("review")).await;
        browser::click(&page, "button[name=\"go\"][value=\"create\"]").await?;

        // Progress, live, until ready (a real apt install inside a real container).
        browser::wait_for(&page, "location.pathname.startsWith('/jobs/')", 10).await?;
        browser::wait_for(&page, "document.body.innerText.includes('Ready')", 300).await?;
        browser::screenshot(&page, &shot("ready")).await;

        // Find it on the dashboard and open it.
        browser::goto(&page, &format!("{base}/")).await?;
        let find = format!(
            "[...document.querySelectorAll('a')].find(a => a.textContent.trim() === '{hostname}')"
        );
        browser::wait_for(&page, &format!("{find} !== undefined"), 10).await?;
        page.evaluate(format!("{find}.click()")).await?;
        browser::wait_for(
            &page,
            "/^\\/containers\\/[^/]+$/.test(location.pathname)",
            10,
        )
        .await?;
        let key: String = page
            .evaluate("location.pathname.split('/')[2]")
            .await?
            .into_value()?;
        let record = key.clone();
        browser::wait_for(&page, "document.body.innerText.includes('running')", 10).await?;
        let vmid: String = page
            .evaluate("(document.body.innerText.match(/CT (\\d+)/) || [])[1] || ''")
            .await?
            .into_value()?;
        anyhow::ensure!(!vmid.is_empty(), "the detail page shows the VMID");
        anyhow::ensure!(
            lxc_state(&lxc, &vmid).as_deref() == Some("RUNNING"),
            "CT {vmid} runs as a real LXC container"
        );

        // Services: nginx is tracked; the credential is hidden until revealed.
        browser::click(&page, "a[href$=\"?tab=services\"]").await?;
        browser::wait_for(
            &page,
            "document.body.innerText.includes('nginx.service')",
            10,
        )
        .await?;
        let secret = Command::new("lxc-attach")
            .arg("-P")
            .arg(lxc_path(&lxc, &vmid))
            .args([
                "-n",
                &vmid,
                "--",
                "cat",
                "/etc/ctforge/credentials/admin-password",
            ])
            .output()?;
        let secret = String::from_utf8_lossy(&secret.stdout).trim().to_owned();
        anyhow::ensure!(secret.len() == 24, "credential inside the CT: {secret:?}");
        anyhow::ensure!(
            !text(&page).await?.contains(&secret),
            "the credential is hidden before Reveal"
        );
        browser::click(&page, "form[action$=\"/credentials/reveal\"] button").await?;
        browser::wait_for(
            &page,
            &format!(
                "[...document.querySelectorAll('input.secret')].some(i => i.value === '{secret}')"
            ),
            10,
        )
        .await?;
        browser::screenshot(&page, &shot("revealed")).await;

        // Stop, start, reboot, delete — each on the real container.
        let detail = format!("{base}/containers/{record}");
        browser::goto(&page, &detail).await?;
        confirm(&page, "stop", &hostname).await?;
        wait_lxc(&lxc, &vmid, Some("STOPPED")).await?;
        browser::wait_for(
            &page,
            "document.querySelector('form[action$=\"/start\"] button') !== null",
            15,
        )
        .await?;
        browser::click(&page, "form[action$=\"/start\"] button").await?;
        wait_lxc(&lxc, &vmid, Some("RUNNING")).await?;
        browser::wait_for(
            &page,
            "document.querySelector('button[data-dialog-open^=\"dlg-reboot-\"]') !== null",
            15,
        )
        .await?;
        let pid_before = Command::new("lxc-info")
            .arg("-P")
            .arg(lxc_path(&lxc, &vmid))
            .args(["-n", &vmid, "-p", "-H"])
            .output()?
            .stdout;
        confirm(&page, "reboot", &hostname).await?;
        wait_lxc(&lxc, &vmid, Some("RUNNING")).await?;
        let pid_after = Command::new("lxc-info")
            .arg("-P")
            .arg(lxc_path(&lxc, &vmid))
            .args(["-n", &vmid, "-p", "-H"])
            .output()?
            .stdout;
        anyhow::ensure!(
            pid_before != pid_after,
            "reboot restarted the container's init"
        );
        browser::goto(&page, &detail).await?;
        confirm(&page, "delete", &hostname).await?;
        browser::wait_for(&page, "location.pathname === '/'", 60).await?;
        wait_lxc(&lxc, &vmid, None).await?;
        browser::wait_for(&page, &format!("{find} === undefined"), 10).await?;
        browser::screenshot(&page, &shot("deleted")).await;
        Ok(())
    })
    .await;
    b.close().await;
    println!(
        "e2e {name}: whole journey in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn journey_single_node_profile() {
    if common::lxc::unavailable("journey_single_node_profile") {
        return;
    }
    journey(Profile::SingleNode).await;
}

#[tokio::test]
async fn journey_scale_out_profile() {
    if common::lxc::unavailable("journey_scale_out_profile") {
        return;
    }
    journey(Profile::ScaleOut).await;
}
