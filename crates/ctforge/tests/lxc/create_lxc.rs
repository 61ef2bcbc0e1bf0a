//! Real provisioning on real LXC containers through the simulator's lxc backend: the API
//! creates a CT from a template that installs nginx-light from Debian, deploys a file with each
//! policy, and runs a script that writes a credential and starts the service. Then the test
//! looks inside the real container and at ctforge's records.
//!
//! Needs root and the machine prepared by `scripts/setup-lxc.sh` (`.ci/run` runs it); skipped
//! with a message when not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use crate::common;

use ctforge_ssh::{PctChannel, RemoteExec};

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    let out = channel.exec(cmd, &mut ignore).await.unwrap();
    (out.exit_code, out.stream_text(ctforge_ssh::Stream::Stdout))
}

#[tokio::test]
async fn real_provisioning_on_lxc() {
    if common::lxc::unavailable("real_provisioning_on_lxc") {
        return;
    }
    let p = common::lxc::provision_nginx("web-real", 4301, false).await;
    let (app, id) = (&p.app, p.id);
    let ct = p.channel().await;
    assert_eq!(
        sh(
            &ct,
            "dpkg -s nginx-light | grep -q 'Status: install ok installed'"
        )
        .await
        .0,
        0,
        "package installed"
    );
    assert_eq!(
        sh(&ct, "cat /var/www/html/index.html").await.1,
        "<h1>provisioned by ctforge</h1>\n",
        "replace policy"
    );
    assert_eq!(
        sh(&ct, "cat /etc/motd").await.1,
        "welcome to a ctforge container\n",
        "backup policy writes"
    );
    assert_eq!(
        sh(&ct, "ls /etc/motd.bak.* | wc -l").await.1.trim(),
        "1",
        "backup policy keeps the old file"
    );
    assert!(
        !sh(&ct, "cat /etc/issue")
            .await
            .1
            .contains("should not replace"),
        "default policy keeps an existing file"
    );
    assert_eq!(
        sh(&ct, "cat /etc/ctforge-test/fresh.txt").await.1,
        "created only when missing\n",
        "default policy writes a missing file"
    );
    assert_eq!(
        sh(&ct, "systemctl is-enabled ctforge-apply.service")
            .await
            .1
            .trim(),
        "enabled",
        "config-manager installed"
    );
    let (_, ports) = sh(&ct, "ss -tlnp").await;
    assert!(ports.contains(":80 ") && ports.contains("nginx"), "{ports}");
    let (_, secret) = sh(&ct, "cat /etc/ctforge/credentials/admin-password").await;

    // In ctforge's records.
    let record = app.state.store.get_container(id).await.unwrap();
    assert_eq!(record.status, "ready");
    let ip = record.ip.clone().unwrap();
    assert!(ip.starts_with("10.151.0."), "{ip}");
    let services = app.state.store.list_services(id).await.unwrap();
    let nginx = services
        .iter()
        .find(|s| s.unit == "nginx.service")
        .unwrap_or_else(|| panic!("{services:?}"));
    assert_eq!(
        (nginx.active_state.as_str(), nginx.port),
        ("active", Some(80))
    );
    assert_eq!(
        nginx.url.as_deref(),
        Some(format!("http://{ip}:80").as_str())
    );
    let credentials = app.state.store.list_credentials(id).await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert!(
        !credentials[0].value_sealed.contains(secret.trim()),
        "sealed at rest"
    );
    assert_eq!(
        app.state
            .keyring
            .open(&credentials[0].value_sealed)
            .unwrap()
            .expose(),
        secret.trim()
    );
}

/// Milliseconds from the `step` event of `step` to the job's next event of `kind` (`error` or
/// `complete`), and every event's data as one text.
async fn step_span(p: &common::lxc::Provisioned, step: &str, kind: &str) -> (i64, String) {
    let events = p
        .app
        .state
        .store
        .job_events_after(p.job_id, 0, 100_000)
        .await
        .unwrap();
    let at = |k: &str| {
        events
            .iter()
            .filter(|e| e.kind == k && e.step.as_deref() == Some(step))
            .map(|e| e.created_at)
            .next_back()
            .unwrap_or_default()
    };
    let text = events.iter().map(|e| format!("{}\n", e.data)).collect();
    (at(kind) - at("step"), text)
}

/// A unit that stays `activating` forever (its `ExecStartPre` sleeps): the job waits for
/// systemd to settle only up to the bound (5 s here), then goes on with a warning naming the
/// unit, and the container is provisioned.
#[tokio::test]
async fn a_unit_stuck_activating_delays_the_job_only_by_the_bound_on_lxc() {
    if common::lxc::unavailable("a_unit_stuck_activating_delays_the_job_only_by_the_bound_on_lxc") {
        return;
    }
    let (p, job) =
        common::lxc::provision("wait-templates", "stuck-unit", "stuck-real", 4311, |c| {
            c.provisioning.settle_timeout_secs = 5;
        })
        .await;
    let (discover_ms, text) = step_span(&p, "discover", "complete").await;
    assert_eq!(job["state"], "succeeded", "{job}\n{text}");
    let warning = text
        .lines()
        .find(|l| l.contains("WARNING: before discovery: systemd did not settle within 5s"))
        .unwrap_or_else(|| panic!("no settle warning in the log:\n{text}"));
    assert!(warning.contains("stuck.service"), "{warning}");
    println!(
        "discover step (settle bound 5 s) took {:.1} s; {warning}",
        discover_ms as f64 / 1000.0
    );
    assert!(
        discover_ms >= 5000,
        "waited for the bound: {discover_ms} ms"
    );
    let ct = p.channel().await;
    assert_eq!(
        sh(&ct, "systemctl is-active stuck.service").await.1.trim(),
        "activating",
        "the unit really is stuck"
    );
}

/// A script that runs far longer than its own timeout (`# ctforge-timeout: 3`): the step fails
/// after about 3 s naming the script and the limit, and nothing of it keeps running in the
/// container.
#[tokio::test]
async fn a_script_over_its_timeout_is_killed_inside_the_container_on_lxc() {
    if common::lxc::unavailable("a_script_over_its_timeout_is_killed_inside_the_container_on_lxc") {
        return;
    }
    let (p, job) =
        common::lxc::provision("wait-templates", "slow-script", "slow-real", 4312, |_| {}).await;
    let (scripts_ms, text) = step_span(&p, "scripts", "error").await;
    assert_eq!(job["state"], "failed", "{job}\n{text}");
    assert_eq!(job["current_step"], "scripts");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("script 10-slow.sh")
            && error.contains("exceeded its 3s timeout and was killed inside the container"),
        "{error}"
    );
    println!(
        "scripts step (script limit 3 s) failed after {:.1} s: {error}",
        scripts_ms as f64 / 1000.0
    );
    let ct = p.channel().await;
    let (code, found) = sh(&ct, "pgrep -af 'sleep infinit[y]'").await;
    assert_eq!(code, 1, "the script's sleep is gone: {found}");
    let (_, found) = sh(&ct, "ps -eo args | grep '[1]0-slow.sh' || true").await;
    assert_eq!(found.trim(), "", "the script's shell is gone");
}
