//! `ctforge ct …` as a user runs it: an API client with a token, against the real app and the
//! simulator.

#![allow(clippy::unwrap_used)]

use crate::common;

use serde_json::json;

#[tokio::test]
async fn list_create_follow_and_stop_from_the_cli() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_containers(2)).await;
    let cluster = common::sim_cluster(&sim);
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let (token, _) = ctforge::tokens::create(&app.state, "root@pam", "cli", "127.0.0.1")
        .await
        .unwrap();
    let _ = token;
    let (_, secret) = ctforge::tokens::create(&app.state, "root@pam", "cli2", "127.0.0.1")
        .await
        .unwrap();
    let r = app
        .client
        .post(format!("{}/api/v1/templates/discover", app.address))
        .bearer_auth(&secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"));
        cmd.args(["ct", "--url", &app.address])
            .args(args)
            .env("CTFORGE_TOKEN", &secret)
            .env_remove("CTFORGE_DATABASE_URL");
        cmd
    };
    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&["list"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        listing.lines().count(),
        3,
        "header + 2 unmanaged CTs:\n{listing}"
    );
    assert!(listing.contains("(unmanaged)"));

    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&[
            "create",
            "--template",
            "webapp",
            "--hostname",
            "cli-web",
            "--plan",
        ]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("hostname=cli-web") && plan.contains("run_script"),
        "{plan}"
    );

    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&[
            "create",
            "--template",
            "webapp",
            "--hostname",
            "cli-web",
            "--password",
            "secret99",
            "--follow",
        ]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("running 10-credentials.sh")
            || stderr.contains("running 10-credentials.sh"),
        "the log is streamed:\n{stdout}\n{stderr}"
    );

    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&["create", "--hostname", "bad_name"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hostname"),
        "field errors are shown"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"))
        .args(["ct", "--url", &app.address, "list"])
        .env_remove("CTFORGE_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("API token"));
}

/// Every `NN%` the terminal showed, in order.
fn percents(screen: &str) -> Vec<u32> {
    let bytes = screen.as_bytes();
    let mut out = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'%' {
            continue;
        }
        let start = bytes[..i]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |p| p + 1);
        if let Ok(n) = screen[start..i].parse::<u32>() {
            out.push(n);
        }
    }
    out
}

#[tokio::test]
async fn follow_on_a_terminal_shows_steps_percent_and_plain_lines() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| {
        let mut t = ctforge_pve_sim::Timings::instant();
        t.create = std::time::Duration::from_secs(2);
        t.start = std::time::Duration::from_secs(2);
        c.with_timings(t)
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let (_, secret) = ctforge::tokens::create(&app.state, "root@pam", "pty", "127.0.0.1")
        .await
        .unwrap();
    let r = app
        .client
        .post(format!("{}/api/v1/templates/discover", app.address))
        .bearer_auth(&secret)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // `script` gives the CLI a pseudo-terminal and copies everything it drew to stdout.
    let command = format!(
        "{} ct --url {} create --template webapp --hostname pty-01 --password secret99 --follow",
        env!("CARGO_BIN_EXE_ctforge"),
        app.address
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env("CTFORGE_TOKEN", &secret)
            .env("TERM", "xterm-256color")
            .env_remove("CTFORGE_DATABASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        !screen.contains("{\""),
        "no raw JSON on the terminal:\n{screen}"
    );
    for step in ["step 1/6 create", "step 2/6 start", "step 6/6 discover"] {
        assert!(screen.contains(step), "{step} shown:\n{screen}");
    }
    assert!(
        screen.contains("running 10-credentials.sh"),
        "log lines are plain:\n{screen}"
    );
    let seen = percents(&screen);
    assert!(
        seen.iter().any(|p| *p > 0 && *p < 100),
        "the bar moved before the end: {seen:?}\n{screen}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the percent never goes back: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100), "{screen}");
}
