//! Hardening over real HTTP against the simulator: security headers on every page, private
//! data files, `Secure` cookies, same-origin redirect targets, bounded metric labels, the
//! sign-in limiter under parallel guesses and behind a trusted proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use ctforge::routes::Answer;

async fn sim() -> ctforge_pve_sim::SimHandle {
    ctforge::install_crypto_provider();
    common::sim("", |c| c.with_containers(2)).await
}

async fn app_for(
    sim: &ctforge_pve_sim::SimHandle,
    adjust: impl FnOnce(&mut ctforge::config::Config),
) -> common::TestApp {
    let cluster = common::sim_cluster(sim);
    common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![cluster];
        adjust(config);
    })
    .await
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1").replace("{name}", "x")
}

fn assert_security_headers(what: &str, headers: &reqwest::header::HeaderMap) {
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"))
        .to_str()
        .unwrap();
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(
        headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        headers.get("referrer-policy").map(|v| v.to_str().unwrap()),
        Some("same-origin"),
        "{what}"
    );
}

/// Markup the policy would block: an inline `<script>` (one without `src`), an `on…=` handler
/// or a `style=` attribute.
fn inline_code(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("<script") {
        let tag_end = rest[at..].find('>').map_or(rest.len(), |e| at + e);
        if !rest[at..tag_end].contains(" src=") {
            return Some(rest[at..tag_end.min(at + 80)].to_owned());
        }
        rest = &rest[tag_end..];
    }
    if let Some(i) = lower.find(" style=") {
        return Some(lower[i..(i + 60).min(lower.len())].to_owned());
    }
    for (i, _) in lower.match_indices(" on") {
        let word: String = lower[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if word.len() > 2 && lower[i + 1 + word.len()..].starts_with("=\"") {
            return Some(lower[i..(i + 60).min(lower.len())].to_owned());
        }
    }
    None
}

#[tokio::test]
async fn every_page_of_the_route_table_carries_the_security_headers() {
    let sim = sim().await;
    let app = app_for(&sim, |_| {}).await;
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let mut pages = 0;
    for route in ctforge::startup::route_table() {
        if route.method != "GET" {
            continue;
        }
        let url = format!("{}{}", app.address, concrete(route.path));
        let response = app
            .client
            .get(&url)
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap();
        let what = format!("GET {} ({})", route.path, response.status());
        assert_security_headers(&what, response.headers());
        let is_html = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/html"));
        let cache = response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned());
        if route.path.starts_with("/static/") {
            assert_eq!(cache.as_deref(), Some("public, max-age=3600"), "{what}");
        } else {
            assert_eq!(
                cache.as_deref(),
                Some("no-store"),
                "{what}: pages may carry secrets"
            );
        }
        if matches!(route.doc.answer, Answer::Page) && is_html {
            pages += 1;
            let html = response.text().await.unwrap();
            if let Some(found) = inline_code(&html) {
                panic!("{what}: markup the CSP blocks: {found}");
            }
        }
    }
    assert!(pages >= 15, "only {pages} HTML pages checked");
    // Answers outside the table: unknown pages, anonymous redirects, errors, the sign-in form.
    for (path, cookie) in [
        ("/no/such/page", Some(&s.cookie)),
        ("/", None),
        ("/login", None),
        ("/api/v1/containers", None),
    ] {
        let mut request = app.client.get(format!("{}{path}", app.address));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        assert_security_headers(
            &format!("GET {path} ({})", response.status()),
            response.headers(),
        );
        if path == "/login" {
            let html = response.text().await.unwrap();
            assert_eq!(inline_code(&html), None, "{html}");
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_the_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("fresh").join("data");
    let dir_for_app = dir.clone();
    let app = common::spawn_app_with("sqlite", move |c| c.data_dir = dir_for_app).await;
    // Writes happen (a session), so the WAL exists too.
    let health = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "data dir");
    for file in [
        "ctforge.db",
        "ctforge.db-wal",
        "ctforge.db-shm",
        "secret.key",
    ] {
        let path = dir.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file} is {:o}", mode(&path));
        } else {
            assert_ne!(file, "ctforge.db", "the database exists");
        }
    }
    app.stop().await.unwrap();
}

async fn login_cookie(app: &common::TestApp, sim: &ctforge_pve_sim::SimHandle) -> String {
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&serde_json::json!({ "username": "root", "password": sim.root_password, "realm": "pam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn session_cookies_are_secure_when_the_public_url_is_https() {
    let sim = sim().await;
    let plain = app_for(&sim, |_| {}).await;
    assert!(!login_cookie(&plain, &sim).await.contains("Secure"));
    let https = app_for(&sim, |c| {
        c.server.public_url = Some("https://ctforge.example".into());
    })
    .await;
    let cookie = login_cookie(&https, &sim).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    let off = app_for(&sim, |c| {
        c.server.public_url = Some("https://ctforge.example".into());
        c.server.secure_cookies = Some(false);
    })
    .await;
    assert!(!login_cookie(&off, &sim).await.contains("Secure"));
    let on = app_for(&sim, |c| c.server.secure_cookies = Some(true)).await;
    assert!(login_cookie(&on, &sim).await.contains("; Secure"));
}

/// Where a browser goes with this `Location`: its URL parser drops tabs and newlines and reads
/// `\` as `/`, then resolves against the page.
fn browser_target(base: &str, location: &str) -> url::Url {
    let cleaned: String = location
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    url::Url::parse(&format!("{base}/"))
        .unwrap()
        .join(&cleaned)
        .unwrap()
}

#[tokio::test]
async fn redirect_targets_from_input_stay_on_the_site() {
    let sim = sim().await;
    let app = app_for(&sim, |_| {}).await;
    let origin = url::Url::parse(&app.address).unwrap().origin();
    let crafted = [
        "/\t/evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example/phish",
        "\\/evil.example",
        "https://evil.example/",
        "/\n/evil.example",
        "javascript:alert(1)",
    ];
    for next in crafted {
        let r = app
            .client
            .post(format!("{}/login", app.address))
            .form(&[
                ("username", "root"),
                ("password", sim.root_password.as_str()),
                ("realm", "pam"),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{next:?}: {}", r.status());
        let location = r.headers()["location"].to_str().unwrap();
        assert_eq!(
            browser_target(&app.address, location).origin(),
            origin,
            "next={next:?} redirected to {location:?}"
        );
        // The sign-in page echoes the same cleaned target, never the raw one.
        let page = app
            .client
            .get(format!("{}/login", app.address))
            .query(&[("next", next)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!page.contains("evil.example"), "{next:?} echoed: {page}");
    }
    // A local target is kept.
    let r = app
        .client
        .post(format!("{}/login", app.address))
        .form(&[
            ("username", "root"),
            ("password", sim.root_password.as_str()),
            ("realm", "pam"),
            ("next", "/jobs?page=2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/jobs?page=2");

    // `back` of an action form: same rule.
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    for back in crafted {
        let r = app
            .client
            .post(format!("{}/containers/sim:100/start", app.address))
            .header("cookie", &s.cookie)
            .form(&[("csrf_token", s.csrf.as_str()), ("back", back)])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{back:?}: {}", r.status());
        let location = r.headers()["location"].to_str().unwrap();
        assert_eq!(
            browser_target(&app.address, location).origin(),
            origin,
            "back={back:?} redirected to {location:?}"
        );
    }
}

#[tokio::test]
async fn made_up_http_methods_share_one_metrics_label() {
    let sim = sim().await;
    let app = app_for(&sim, |_| {}).await;
    for method in ["ZZTOPA", "ZZTOPB", "ZZTOPC"] {
        app.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/healthz", app.address),
            )
            .send()
            .await
            .unwrap();
    }
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("ZZTOP"), "{metrics}");
    assert!(
        metrics.contains("route=\"/healthz\",method=\"other\""),
        "made-up methods are counted as `other`:\n{metrics}"
    );
}

/// How many sign-ins reached the simulator: a latency rule on `/access/ticket` counts its hits
/// (and keeps every attempt in flight long enough to overlap).
fn count_ticket_requests(sim: &ctforge_pve_sim::SimHandle) -> impl Fn() -> u32 {
    const BUDGET: u32 = 100_000;
    let state = sim.state();
    state
        .add_fault(ctforge_pve_sim::scenario::FaultRule {
            path: "^/access/ticket$".into(),
            method: Some("POST".into()),
            error_rate: 0.0,
            status: 500,
            message: String::new(),
            drop_rate: 0.0,
            latency_ms: 300,
            times: Some(BUDGET),
        })
        .unwrap();
    move || state.with(|c| BUDGET - c.fault_hits.last().copied().unwrap_or(BUDGET))
}

async fn attempt(
    app: &common::TestApp,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::StatusCode {
    let mut request = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&serde_json::json!({ "username": "root", "password": password, "realm": "pam" }));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn thirty_parallel_wrong_passwords_do_not_all_reach_proxmox() {
    let sim = sim().await;
    let app = app_for(&sim, |_| {}).await;
    let reached = count_ticket_requests(&sim);
    let answers =
        futures_util::future::join_all((0..30).map(|_| attempt(&app, "wrong", None))).await;
    let refused = answers.iter().filter(|s| s.as_u16() == 429).count();
    let denied = answers.iter().filter(|s| s.as_u16() == 401).count();
    println!(
        "30 parallel wrong passwords: {} reached the simulator, {denied} answered 401, {refused} answered 429",
        reached()
    );
    assert!(reached() <= 3, "{} attempts reached Proxmox", reached());
    assert_eq!(denied + refused, 30, "{answers:?}");
    // Locked out now; after the back-off the right password works.
    assert_eq!(attempt(&app, &sim.root_password, None).await, 429);
    let before = reached();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(attempt(&app, &sim.root_password, None).await, 200);
    assert_eq!(reached(), before + 1);
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_attacker_does_not_lock_out_others() {
    let sim = sim().await;
    // ctforge behind a proxy on loopback (the test client): the header names the client.
    let app = app_for(&sim, |c| {
        c.server.trusted_proxy_header = Some("X-Forwarded-For".into());
    })
    .await;
    let reached = count_ticket_requests(&sim);
    let attacker = Some("203.0.113.9");
    let answers =
        futures_util::future::join_all((0..10).map(|_| attempt(&app, "wrong", attacker))).await;
    assert!(answers.iter().any(|s| s.as_u16() == 429), "{answers:?}");
    assert!(reached() <= 3, "{}", reached());
    assert_eq!(attempt(&app, &sim.root_password, attacker).await, 429);
    // Another client of the same proxy signs in as the same user at once.
    assert_eq!(
        attempt(&app, &sim.root_password, Some("198.51.100.7, 127.0.0.1")).await,
        200
    );
    // The audit log names the client, not the proxy.
    let audit = app
        .state
        .store
        .list_audit(&Default::default())
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.remote_addr == "203.0.113.9"),
        "{audit:?}"
    );

    // A header from a peer that is not a trusted proxy is ignored: rotating it gains nothing.
    let strict = app_for(&sim, |c| {
        c.server.trusted_proxy_header = Some("X-Forwarded-For".into());
        c.server.trusted_proxies = vec!["10.0.0.1".into()];
    })
    .await;
    let answers = futures_util::future::join_all((0..10).map(|i| {
        let spoofed = format!("192.0.2.{i}");
        let strict = &strict;
        async move { attempt(strict, "wrong", Some(&spoofed)).await }
    }))
    .await;
    assert!(
        answers.iter().filter(|s| s.as_u16() == 429).count() >= 7,
        "{answers:?}"
    );
}

/// A template whose one script runs `script` (written to a fresh template root).
fn script_template(dir: &std::path::Path, name: &str, script: &str) {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("container-configs/scripts")).unwrap();
    std::fs::write(
        root.join("template.conf"),
        format!("TEMPLATE_APP=\"{name}\"\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("container-configs/scripts/10-run.sh"),
        format!("#!/bin/sh\n{script}\n"),
    )
    .unwrap();
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn a_script_printing_a_million_lines_keeps_a_bounded_log_and_database() {
    let sim = sim().await;
    let templates = tempfile::tempdir().unwrap();
    script_template(templates.path(), "flood", "seq 1000000");
    let root = templates.path().to_owned();
    let app = app_for(&sim, move |c| c.templates.roots = vec![root]).await;
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let r = s
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .post(
            &app.client,
            &app.address,
            "/api/v1/containers",
            serde_json::json!({ "template": "flood", "hostname": "flood" }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let job_id = r.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_i64()
        .unwrap();

    // The live stream shows progress while lines are dropped.
    let stream = app
        .client
        .get(format!("{}/api/v1/jobs/{job_id}/events", app.address))
        .header("cookie", &s.cookie)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let watcher = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut body = stream.bytes_stream();
        let mut seen = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("lines so far") {
                return true;
            }
            if seen.contains("\"kind\":\"done\"") || seen.contains("\"kind\":\"error\"") {
                return false;
            }
        }
        false
    });

    let db = app.data_dir.path().join("ctforge.db");
    let wal = app.data_dir.path().join("ctforge.db-wal");
    let started = std::time::Instant::now();
    let (mut peak_db, mut peak_wal) = (0, 0);
    let job = loop {
        peak_db = peak_db.max(file_size(&db));
        peak_wal = peak_wal.max(file_size(&wal));
        let job: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/jobs/{job_id}", app.address))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break job;
        }
        assert!(
            started.elapsed().as_secs() < 300,
            "the job did not finish: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    let elapsed = started.elapsed();
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(10), watcher)
            .await
            .unwrap()
            .unwrap(),
        "the live stream showed a progress note while lines were dropped"
    );

    let events = app
        .state
        .store
        .job_events_after(job_id, 0, 1_000_000)
        .await
        .unwrap();
    let logs: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "log" && e.step.as_deref() == Some("scripts"))
        .map(|e| e.data.as_str())
        .collect();
    let dropped_at = logs
        .iter()
        .position(|l| l.starts_with('[') && l.ends_with(" lines dropped]"))
        .unwrap_or_else(|| {
            panic!(
                "no dropped count in {:?}",
                &logs[logs.len().saturating_sub(5)..]
            )
        });
    let count: u64 = logs[dropped_at]
        .trim_start_matches('[')
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number of dropped lines");
    // The head ends with the script's line H, the tail starts with line T: exactly the lines in
    // between were dropped, and counted.
    let numeric = |l: &&str| l.parse::<u64>().ok();
    let head_last: u64 = logs[..dropped_at]
        .iter()
        .rev()
        .find_map(numeric)
        .expect("the head has output");
    let tail_first: u64 = logs[dropped_at + 1..]
        .iter()
        .find_map(numeric)
        .expect("the tail follows the count");
    assert_eq!(
        count,
        tail_first - head_last - 1,
        "{:?}",
        &logs[dropped_at.saturating_sub(3)..dropped_at + 3]
    );
    assert!(count > 990_000, "{count} lines dropped");
    assert_eq!(
        logs.iter()
            .rev()
            .find(|l| l.parse::<u64>().is_ok())
            .copied(),
        Some("1000000"),
        "the tail ends with the script's last line"
    );
    assert!(
        logs.contains(&"1") && head_last > 900,
        "the head is kept: {:?}",
        &logs[..5]
    );
    assert!(
        !logs.contains(&"1000") && !logs.contains(&"500000"),
        "the middle is dropped"
    );
    // After the job, the WAL is checkpointed and truncated.
    let (end_db, end_wal) = (file_size(&db), file_size(&wal));
    println!(
        "1,000,000 lines in {:.1} s: {} job events stored; ctforge.db {:.2} MB (peak {:.2} MB), WAL {:.2} MB (peak {:.2} MB)",
        elapsed.as_secs_f64(),
        events.len(),
        end_db as f64 / 1e6,
        peak_db as f64 / 1e6,
        end_wal as f64 / 1e6,
        peak_wal as f64 / 1e6,
    );
    assert!(events.len() < 5_000, "{} events", events.len());
    assert!(
        peak_db < 50_000_000 && end_db < 50_000_000,
        "database {peak_db} bytes"
    );
    assert!(
        peak_wal < 50_000_000 && end_wal < 50_000_000,
        "WAL {peak_wal} bytes"
    );
}

/// Creates a container from template `name` (under `root`) as root and waits for its job;
/// answers the VMID.
async fn create_and_wait(
    sim: &ctforge_pve_sim::SimHandle,
    root: std::path::PathBuf,
    body: serde_json::Value,
) -> (common::TestApp, u32) {
    let app = app_for(sim, move |c| c.templates.roots = vec![root]).await;
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let r = s
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .post(&app.client, &app.address, "/api/v1/containers", body)
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    let job_id = created["job_id"].as_i64().unwrap();
    for _ in 0..600 {
        let job: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/jobs/{job_id}", app.address))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match job["state"].as_str() {
            Some("succeeded") => {
                return (
                    app,
                    u32::try_from(created["vmid"].as_u64().unwrap()).unwrap(),
                );
            }
            Some("failed" | "cancelled") => panic!("{job}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("job {job_id} did not finish");
}

#[tokio::test]
async fn template_files_whose_names_read_the_same_are_staged_apart() {
    let sim = sim().await;
    let templates = tempfile::tempdir().unwrap();
    let files = templates.path().join("twins/container-configs/files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        templates.path().join("twins/template.conf"),
        "TEMPLATE_APP=\"Twins\"\nTEMPLATE_OS=debian\nTEMPLATE_VERSION=12\n",
    )
    .unwrap();
    let hostile = "a b$(id)'q`x`.conf";
    let plain = "a_b_(id)_q_x_.conf";
    for (name, content) in [(hostile, "first twin\n"), (plain, "second twin\n")] {
        std::fs::write(files.join(name), content).unwrap();
        std::fs::write(files.join(format!("{name}.path")), "/etc/twins\n").unwrap();
        std::fs::write(files.join(format!("{name}.policy")), "replace\n").unwrap();
    }
    let (_app, vmid) = create_and_wait(
        &sim,
        templates.path().to_owned(),
        serde_json::json!({ "template": "twins", "hostname": "twins" }),
    )
    .await;
    let state = sim.state();
    let backend = state.memory_backend().unwrap();
    let read = |path: &str| {
        backend
            .file(vmid, path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    assert_eq!(
        read(&format!("/etc/twins/{hostile}")).as_deref(),
        Some("first twin\n")
    );
    assert_eq!(
        read(&format!("/etc/twins/{plain}")).as_deref(),
        Some("second twin\n")
    );
    // Each keeps its own staged copy, so the config-manager re-applies the right content.
    let (first, second) = (
        ctforge::guest::commands::staged_path(hostile),
        ctforge::guest::commands::staged_path(plain),
    );
    assert_ne!(first, second);
    assert_eq!(read(&first).as_deref(), Some("first twin\n"), "{first}");
    assert_eq!(read(&second).as_deref(), Some("second twin\n"), "{second}");
    // The config-manager (run on boot, bash with the library's lock; exercised on real LXC in
    // `library_lxc`) re-applies from its manifest: each file maps to its own staged copy.
    let manifest = read(&format!("{}/files", ctforge::guest::commands::MANIFEST_DIR))
        .expect("the config-manager's file manifest");
    let line_of = |name: &str| {
        manifest
            .lines()
            .find(|l| l.split('\t').next() == Some(name))
            .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>())
    };
    let (m1, m2) = (line_of(hostile).unwrap(), line_of(plain).unwrap());
    assert_eq!(
        (m1[1].as_str(), m1[2].as_str()),
        (first.as_str(), format!("/etc/twins/{hostile}").as_str())
    );
    assert_eq!(
        (m2[1].as_str(), m2[2].as_str()),
        (second.as_str(), format!("/etc/twins/{plain}").as_str())
    );
}

#[tokio::test]
async fn wizard_steps_never_carry_the_root_password_and_creation_still_uses_it() {
    const SECRET: &str = "Wizard-Secret-42";
    let sim = sim().await;
    let templates = tempfile::tempdir().unwrap();
    script_template(templates.path(), "plain", "true");
    let root = templates.path().to_owned();
    let app = app_for(&sim, move |c| c.templates.roots = vec![root]).await;
    let s = common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let r = s
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/discover",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let mut draft = String::new();
    let step =
        |step: &'static str, go: &'static str, password: Option<&'static str>, draft: String| {
            let mut form = vec![
                ("csrf_token", s.csrf.clone()),
                ("step", step.to_owned()),
                ("go", go.to_owned()),
                ("template", "plain".to_owned()),
                ("hostname", "wiz-secret".to_owned()),
            ];
            if let Some(p) = password {
                form.push(("password", p.to_owned()));
            }
            if !draft.is_empty() {
                form.push(("secret_draft", draft));
            }
            app.client
                .post(format!("{}/containers/new", app.address))
                .header("cookie", &s.cookie)
                .form(&form)
                .send()
        };
    for (name, go, password) in [
        ("configure", "next", Some(SECRET)),
        ("packages", "next", None),
        ("scripts", "next", None),
        ("review", "back", None),
    ] {
        let r = step(name, go, password, draft.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{name}"
        );
        let html = r.text().await.unwrap();
        assert!(
            !html.contains(SECRET),
            "the page after {name} carries the password:\n{html}"
        );
        let marker = "name=\"secret_draft\" value=\"";
        let at = html
            .find(marker)
            .unwrap_or_else(|| panic!("no draft id after {name}:\n{html}"))
            + marker.len();
        let id = &html[at..at + html[at..].find('"').unwrap()];
        assert!(
            !id.is_empty() && (draft.is_empty() || draft == id),
            "one draft: {id}"
        );
        draft = id.to_owned();
    }
    // The database holds the password sealed only.
    let sealed: Vec<String> = sqlx::query_scalar("SELECT secret_sealed FROM wizard_drafts")
        .fetch_all(
            &sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                app.data_dir.path().join("ctforge.db").display()
            ))
            .await
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(sealed.len(), 1);
    assert!(sealed[0].starts_with("v1:") && !sealed[0].contains(SECRET));
    // Another user cannot use the draft id: it is bound to its owner.
    assert_eq!(
        ctforge::provisioning::drafts::open(&app.state, "alice@pve", &draft)
            .await
            .unwrap(),
        None
    );

    // Create from Review: the job gets the password from the draft and Proxmox receives it.
    let r = step("review", "create", None, draft.clone()).await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let job_id: i64 = location.trim_start_matches("/jobs/").parse().unwrap();
    let mut state = String::new();
    for _ in 0..600 {
        let job: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/jobs/{job_id}", app.address))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = job["state"].as_str().unwrap_or("").to_owned();
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "succeeded");
    let container = app.state.store.list_containers().await.unwrap().remove(0);
    let vmid = u32::try_from(container.vmid).unwrap();
    let guest = sim.state().memory_backend().unwrap().guest(vmid).unwrap();
    assert_eq!(guest.root_password.as_deref(), Some(SECRET));
    assert_eq!(
        ctforge::provisioning::drafts::open(&app.state, "root@pam", &draft)
            .await
            .unwrap(),
        None,
        "the draft is gone after the creation"
    );
}

/// The WAL of the original report grew to 1.28 GB because readers kept SQLite from resetting
/// it: once the reader is gone, `compact` (run after every job) truncates it to zero bytes.
#[tokio::test]
async fn a_wal_grown_behind_a_reader_is_truncated_by_compact() {
    let (store, _clock, dir) = common::fresh_store("sqlite").await;
    let db = dir.path().join("test.db");
    let wal = dir.path().join("test.db-wal");
    let job_id = store
        .enqueue_job(&ctforge::storage::model::NewJob {
            kind: "k".into(),
            payload_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A reader holding a snapshot: checkpoints cannot complete, the WAL only grows.
    let reader = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let mut snapshot = reader.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&mut *snapshot)
        .await
        .unwrap();
    let line = "x".repeat(1000);
    for _ in 0..20 {
        let batch = vec![line.clone(); 500];
        store
            .append_job_events(job_id, "log", Some("s"), &batch)
            .await
            .unwrap();
    }
    let grown = file_size(&wal);
    assert!(
        grown > 8_000_000,
        "the WAL grew behind the reader: {grown} bytes"
    );
    snapshot.rollback().await.unwrap();
    reader.close().await;
    store.compact().await.unwrap();
    let after = file_size(&wal);
    println!(
        "WAL behind a reader: {:.1} MB, after compact: {after} bytes",
        grown as f64 / 1e6
    );
    assert_eq!(after, 0, "truncated");
    assert_eq!(
        store
            .job_events_after(job_id, 0, 20_000)
            .await
            .unwrap()
            .len(),
        10_000,
        "nothing lost"
    );
}
