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
