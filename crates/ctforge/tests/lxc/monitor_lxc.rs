//! Monitoring on a real LXC container through the simulator's lxc backend: provisions the
//! nginx fixture once (as `create_lxc.rs` does), then stops and starts nginx inside the real
//! container and refreshes through the API: `service_down` and `service_up` are recorded, and
//! nginx's web link is probed over the bridge (plain HTTP, title "Welcome to nginx!"). Prints
//! how long one refresh takes.
//!
//! Needs root and the machine prepared by `scripts/setup-lxc.sh` (`.ci/run` runs it); skipped
//! with a message when not root or when `CTFORGE_SKIP_LXC=1`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::time::Instant;

use ctforge_ssh::{PctChannel, RemoteExec};
use serde_json::{Value, json};

async fn sh(channel: &PctChannel, cmd: &str) -> (u32, String) {
    let mut ignore = |_: ctforge_ssh::Stream, _: &str| {};
    let out = channel.exec(cmd, &mut ignore).await.unwrap();
    (out.exit_code, out.tail_text())
}

fn nginx(body: &Value) -> &Value {
    body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["unit"] == "nginx.service")
        .unwrap_or_else(|| panic!("nginx.service in {body}"))
}

fn kinds(body: &Value) -> Vec<String> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn monitoring_on_a_real_lxc_container() {
    if common::lxc::unavailable("monitoring_on_a_real_lxc_container") {
        return;
    }
    let p = common::lxc::provision_nginx("web-watch", 4302, true).await;
    let (app, id) = (&p.app, p.id);
    let (cookie, csrf) = (p.session.cookie.clone(), p.session.csrf.clone());
    let post = |path: &str, body: serde_json::Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let ct = p.channel().await;
    // The fixture's index.html has no title; Debian's default page has one.
    let (code, out) = sh(&ct, "rm -f /var/www/html/index.html").await;
    assert_eq!(code, 0, "{out}");

    let refresh = || async {
        let started = Instant::now();
        let r = post(
            &format!("/api/v1/containers/{id}/services/refresh"),
            json!({}),
        )
        .await
        .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        (started.elapsed(), body)
    };

    // Up, with its web link.
    let (took, body) = refresh().await;
    println!(
        "lxc backend: one refresh took {} ms over HTTP ({} ms for the batched command; the rest is SSH set-up, the web-link probe and the records)",
        took.as_millis(),
        body["duration_ms"]
    );
    assert_eq!(body["ok"], true, "{body}");
    let ip = app.state.store.get_container(id).await.unwrap().ip.unwrap();
    let web = nginx(&body);
    assert_eq!(web["active_state"], "active", "{body}");
    assert_eq!(web["port"], 80);
    assert_eq!(web["url"], format!("http://{ip}:80"));
    assert_eq!(web["web_title"], "Welcome to nginx!", "{body}");
    assert_eq!(web["web_answered"], true);
    assert!(kinds(&body).is_empty(), "{body}");
    assert_eq!(body["credentials"], json!(["admin-password"]));
    assert_eq!(body["config_manager"]["enabled"], true, "{body}");

    // Down inside the real container.
    let (code, out) = sh(&ct, "systemctl stop nginx").await;
    assert_eq!(code, 0, "{out}");
    let (took_down, body) = refresh().await;
    assert_eq!(kinds(&body), ["service_down"], "{body}");
    let web = nginx(&body);
    assert_eq!(
        (&web["active_state"], &web["sub_state"]),
        (&json!("inactive"), &json!("dead"))
    );
    assert_eq!(web["web_answered"], false, "nothing listens on :80 now");

    // And up again.
    let (code, out) = sh(&ct, "systemctl start nginx").await;
    assert_eq!(code, 0, "{out}");
    let (took_up, body) = refresh().await;
    assert_eq!(kinds(&body), ["service_up"], "{body}");
    assert_eq!(nginx(&body)["active_state"], "active");
    assert_eq!(nginx(&body)["web_title"], "Welcome to nginx!");
    println!(
        "lxc backend: refresh after stop {} ms, after start {} ms",
        took_down.as_millis(),
        took_up.as_millis()
    );
    let events = app
        .state
        .store
        .list_container_events(id, None, None, 50)
        .await
        .unwrap();
    let recorded: Vec<&str> = events
        .iter()
        .filter(|e| e.kind.starts_with("service_"))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(recorded, ["service_up", "service_down"]);
}
