//! Every main page in headless Chromium against the simulator, in the light and the dark theme:
//! axe-core's WCAG 2 A/AA rules must find no serious or critical violation, and each page is
//! saved as `artifacts/screenshots/<page>-<theme>.png` (plus phone-width shots of the dashboard
//! and the detail page). Then the interactive parts of the component module: the theme toggle
//! (persists across reload and navigation, follows `prefers-color-scheme` until used), the
//! confirmation dialog (names the CT, keeps Tab and Shift+Tab inside, Escape closes it and
//! gives the focus back to its opener) and the detail page's ARIA tabs (arrow keys, Home, End).
//!
//! One browser for the whole file; every check runs and the test fails at the end with all
//! problems found.

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use std::time::Duration;

use chromiumoxide::Page;
use ctforge_pve_sim::SimHandle;
use serde_json::{Value, json};

const SCENARIO: &str = r#"
node_count = 2

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"
tags = "web;prod"

[[containers]]
vmid = 202
node = "pve2"
hostname = "legacy-db"
status = "stopped"
tags = "db"
"#;

struct Signed {
    address: String,
    client: reqwest::Client,
    token: String,
    csrf: String,
}

impl Signed {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("cookie", format!("ctforge_session={}", self.token))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.address))
            .header("cookie", format!("ctforge_session={}", self.token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Signs in through the API as the simulator's root (pages act with the user's ticket).
async fn sign_in(app: &common::TestApp, sim: &SimHandle) -> Signed {
    let (token, csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    Signed {
        address: app.address.clone(),
        client: app.client.clone(),
        token,
        csrf,
    }
}

/// Collects failed checks so one run reports all of them.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    async fn check<F>(&mut self, name: &str, page: &Page, steps: F)
    where
        F: std::future::Future<Output = anyhow::Result<()>>,
    {
        if let Err(e) = steps.await {
            let shot = browser::screenshot(page, &format!("failed-{name}")).await;
            self.0.push(format!(
                "{name} at {}: {e:#}\n    screenshot: {}",
                browser::url(page).await,
                shot.map(|p| p.display().to_string()).unwrap_or_default()
            ));
        }
    }
}

/// Visits `path` and waits until the page and its script are ready.
async fn visit(page: &Page, base: &str, path: &str) -> anyhow::Result<()> {
    browser::goto(page, &format!("{base}{path}")).await?;
    browser::wait_for(page, "document.querySelector('main') !== null", 10).await
}

/// The theme the page shows: the `<html data-theme>` value or, without one, the system's.
const SHOWN_THEME: &str = "(document.documentElement.dataset.theme || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'))";

/// The page's background colour (to tell the themes apart by what is painted).
const BODY_BG: &str = "getComputedStyle(document.body).backgroundColor";

/// The innermost elements that stick out past the right edge of the viewport.
const WIDER_THAN_VIEWPORT: &str = "(() => { const w = document.documentElement.clientWidth; const out = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > w + 1); return out.filter(e => !out.some(o => o !== e && e.contains(o))).slice(0, 8).map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : '') + ' ' + Math.round(e.getBoundingClientRect().right) + 'px'); })()";

/// Runs axe on the current page; serious and critical violations become one error.
async fn axe(page: &Page, name: &str) -> anyhow::Result<()> {
    let violations = browser::axe_check(page, name).await?;
    if std::env::var_os("CTFORGE_AXE_ALL").is_some() {
        print!("{}", browser::axe_report(name, &violations));
    }
    let serious: Vec<_> = violations.into_iter().filter(|v| v.is_serious()).collect();
    anyhow::ensure!(
        serious.is_empty(),
        "axe found serious or critical WCAG violations:\n{}",
        browser::axe_report(name, &serious)
    );
    Ok(())
}

#[tokio::test]
async fn every_page_passes_axe_in_both_themes_and_widgets_work_by_keyboard() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| c.with_nodes(2)).await;
    let cluster = common::sim_cluster(&sim);
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    // A template whose script fails, for the container page's failure panel.
    let broken = tempfile::tempdir().unwrap();
    let scripts = broken.path().join("broken/container-configs/scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        broken.path().join("broken/template.conf"),
        "TEMPLATE_APP=\"Broken\"\nTEMPLATE_CPU=1\nTEMPLATE_RAM=256\nTEMPLATE_DISK=2\n",
    )
    .unwrap();
    std::fs::write(
        scripts.join("10-fail.sh"),
        "#!/bin/sh\necho 'error: cannot reach the mirror' >&2\nexit 3\n",
    )
    .unwrap();
    let broken_root = broken.path().to_path_buf();
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root, broken_root];
    })
    .await;
    let s = sign_in(&app, &sim).await;
    assert_eq!(
        s.post("/api/v1/templates/discover", json!({}))
            .await
            .status(),
        200
    );
    // A managed container, provisioned for real: services, a credential, events, a job.
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "shop-01", "password": "ui-pages-pw1" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let created: Value = r.json().await.unwrap();
    let (ct, job) = (
        created["id"].as_i64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );
    let mut state = Value::Null;
    for _ in 0..600 {
        state = s.get(&format!("/api/v1/jobs/{job}")).await;
        if matches!(
            state["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state["state"], "succeeded", "{state}");
    let r = s
        .post(
            "/api/v1/containers",
            json!({ "template": "broken", "hostname": "fails-01", "password": "ui-pages-pw1" }),
        )
        .await;
    assert_eq!(r.status(), 202);
    let failed: Value = r.json().await.unwrap();
    let (failed_ct, failed_job) = (
        failed["id"].as_i64().unwrap(),
        failed["job_id"].as_i64().unwrap(),
    );
    for _ in 0..600 {
        if s.get(&format!("/api/v1/jobs/{failed_job}")).await["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cluster_id = app.state.store.list_clusters().await.unwrap()[0].id;
    let store = &app.state.store;
    assert!(!store.list_services(ct).await.unwrap().is_empty());
    assert!(!store.list_credentials(ct).await.unwrap().is_empty());

    let base = app.address.clone();
    let pages: Vec<(String, String)> = [
        ("dashboard", "/".to_owned()),
        ("dashboard-table", "/?view=table".to_owned()),
        ("detail-overview", format!("/containers/{ct}")),
        ("detail-services", format!("/containers/{ct}?tab=services")),
        ("detail-events", format!("/containers/{ct}?tab=events")),
        (
            "detail-resources",
            format!("/containers/{ct}?tab=resources"),
        ),
        ("detail-unmanaged", "/containers/sim:202".to_owned()),
        ("container-edit", "/containers/sim:202/edit".to_owned()),
        (
            "container-snapshots",
            "/containers/sim:202/snapshots".to_owned(),
        ),
        (
            "container-journal",
            "/containers/sim:202/journal".to_owned(),
        ),
        ("detail-failed", format!("/containers/{failed_ct}")),
        ("job-failed", format!("/jobs/{failed_job}")),
        (
            "wizard-from-template",
            "/containers/new?template=webapp".to_owned(),
        ),
        (
            "settings-cluster-edit",
            format!("/settings/clusters/{cluster_id}/edit"),
        ),
        ("wizard", "/containers/new".to_owned()),
        ("templates", "/templates".to_owned()),
        ("template-detail", "/templates/webapp".to_owned()),
        ("buckets", "/buckets".to_owned()),
        ("presets", "/presets".to_owned()),
        ("job-progress", format!("/jobs/{job}")),
        ("jobs", "/jobs".to_owned()),
        ("settings-clusters", "/settings/clusters".to_owned()),
        ("settings-tokens", "/settings/tokens".to_owned()),
        (
            "settings-notifications",
            "/settings/notifications".to_owned(),
        ),
        ("node", "/nodes/pve1".to_owned()),
        ("audit", "/audit".to_owned()),
    ]
    .into_iter()
    .map(|(n, p)| (n.to_owned(), p))
    .collect();

    let b = browser::Browser::launch().await;
    let page = b.anonymous_page().await;
    let mut failures = Failures::default();
    let started = std::time::Instant::now();

    for theme in ["light", "dark"] {
        // The sign-in page, before there is a session.
        failures
            .check(&format!("login-{theme}"), &page, async {
                visit(&page, &base, "/login").await?;
                set_theme(&page, theme).await?;
                visit(&page, &base, "/login").await?;
                anyhow::ensure!(
                    browser::eval::<String>(&page, SHOWN_THEME).await? == theme,
                    "the {theme} theme is shown"
                );
                axe(&page, &format!("login-{theme}")).await?;
                browser::screenshot(&page, &format!("login-{theme}")).await;
                Ok(())
            })
            .await;
    }
    browser::set_session_cookie(&page, &base, &s.token).await;

    for theme in ["light", "dark"] {
        set_theme(&page, theme).await.unwrap();
        for (name, path) in &pages {
            let shot = format!("{name}-{theme}");
            failures
                .check(&shot, &page, async {
                    visit(&page, &base, path).await?;
                    anyhow::ensure!(
                        browser::url(&page).await.ends_with(path.as_str()),
                        "stayed on {path} (no redirect to sign-in or elsewhere)"
                    );
                    anyhow::ensure!(
                        browser::eval::<String>(&page, SHOWN_THEME).await? == theme,
                        "the {theme} theme is shown"
                    );
                    axe(&page, &shot).await?;
                    browser::screenshot(&page, &shot).await;
                    Ok(())
                })
                .await;
        }
        // The wizard's Configure step: the biggest form.
        failures
            .check(&format!("wizard-configure-{theme}"), &page, async {
                visit(&page, &base, "/containers/new").await?;
                browser::click(&page, "input[name=\"template\"][value=\"webapp\"]").await?;
                browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
                browser::wait_for(
                    &page,
                    "document.querySelector('input[name=\"hostname\"]')",
                    10,
                )
                .await?;
                axe(&page, &format!("wizard-configure-{theme}")).await?;
                browser::screenshot(&page, &format!("wizard-configure-{theme}")).await;
                // The later steps: Packages, Scripts, Review.
                browser::eval::<bool>(
                    &page,
                    "(document.querySelector('#hostname').value = 'shop-02', true)",
                )
                .await?;
                for step in ["packages", "scripts", "review"] {
                    browser::click(&page, "button[name=\"go\"][value=\"next\"]").await?;
                    browser::wait_for(
                        &page,
                        &format!(
                            "document.querySelector('input[name=\"step\"][value=\"{step}\"]')"
                        ),
                        10,
                    )
                    .await?;
                    let shot = format!("wizard-{step}-{theme}");
                    axe(&page, &shot).await?;
                    browser::screenshot(&page, &shot).await;
                }
                Ok(())
            })
            .await;
        // An open confirmation dialog.
        failures
            .check(&format!("dialog-{theme}"), &page, async {
                visit(&page, &base, &format!("/containers/{ct}")).await?;
                browser::click(&page, "[data-dialog-open^=\"dlg-stop-\"]").await?;
                browser::wait_for(&page, "document.querySelector('dialog[open]')", 5).await?;
                axe(&page, &format!("dialog-{theme}")).await?;
                browser::screenshot(&page, &format!("dialog-{theme}")).await;
                browser::press(&page, "Escape", 0).await?;
                Ok(())
            })
            .await;
    }
    println!(
        "axe + screenshots of {} pages in two themes: {:.1} s",
        pages.len() + 3,
        started.elapsed().as_secs_f64()
    );

    // The check itself can fail: broken markup on a real page is reported.
    failures
        .check("axe-self-test", &page, async {
            visit(&page, &base, "/").await?;
            browser::eval::<bool>(
                &page,
                "(document.querySelector('main').insertAdjacentHTML('beforeend', '<p id=\"axe-faint\">faint text</p><input type=text><button></button>'), document.getElementById('axe-faint').style.cssText = 'color:#bbb;background:#fff', true)",
            )
            .await?;
            let found = browser::axe_check(&page, "axe-self-test").await?;
            let ids: Vec<&str> = found
                .iter()
                .filter(|v| v.is_serious())
                .map(|v| v.id.as_str())
                .collect();
            anyhow::ensure!(
                ["color-contrast", "label", "button-name"]
                    .iter()
                    .all(|id| ids.contains(id)),
                "axe reports contrast, a missing label and a nameless button, got {ids:?}"
            );
            Ok(())
        })
        .await;

    // Phone width (390 px): every page, in both themes.
    for theme in ["light", "dark"] {
        failures
        .check(&format!("phone-{theme}"), &page, async {
            set_theme(&page, theme).await?;
            browser::viewport(&page, 390, 844, true).await?;
            for (name, path) in &pages {
                let name = format!("{name}-phone-{theme}");
                let name = name.as_str();
                visit(&page, &base, path).await?;
                let overflow: f64 = browser::eval(
                    &page,
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth",
                )
                .await?;
                phone_screenshot(&page, name).await?;
                if overflow > 1.0 {
                    let culprits: Vec<String> = browser::eval(&page, WIDER_THAN_VIEWPORT).await?;
                    anyhow::bail!(
                        "{name}: the page scrolls sideways by {overflow} px at 390 px; innermost elements past the edge: {culprits:?}"
                    );
                }
                axe(&page, name).await?;
            }
            browser::viewport(&page, 1280, 900, false).await?;
            Ok(())
        })
        .await;
    }

    // Theme toggle: follows the system until used, then the choice sticks.
    failures
        .check("theme-toggle", &page, async {
            browser::eval::<bool>(&page, "(localStorage.removeItem('ctforge-theme'), true)")
                .await?;
            browser::emulate_color_scheme(&page, "dark").await?;
            visit(&page, &base, "/").await?;
            anyhow::ensure!(
                browser::eval::<bool>(&page, "!document.documentElement.dataset.theme").await?,
                "no theme stored or applied before the toggle is used"
            );
            let dark_bg: String = browser::eval(&page, BODY_BG).await?;
            axe(&page, "dashboard-system-dark").await?;
            let toggle = "[data-theme-toggle]";
            anyhow::ensure!(
                browser::eval::<String>(
                    &page,
                    &format!("document.querySelector('{toggle}').getAttribute('aria-pressed')")
                )
                .await?
                    == "true",
                "with a dark system preference the toggle shows the dark theme as on"
            );
            browser::emulate_color_scheme(&page, "light").await?;
            visit(&page, &base, "/").await?;
            let light_bg: String = browser::eval(&page, BODY_BG).await?;
            anyhow::ensure!(
                light_bg != dark_bg,
                "prefers-color-scheme changes the painted background ({light_bg} vs {dark_bg})"
            );
            // Use the toggle (system: light) → dark, kept across reload and navigation.
            browser::click(&page, toggle).await?;
            browser::wait_for(
                &page,
                "document.documentElement.dataset.theme === 'dark'",
                5,
            )
            .await?;
            anyhow::ensure!(
                browser::eval::<String>(&page, BODY_BG).await? == dark_bg,
                "the toggle paints the dark theme"
            );
            page.reload().await?;
            browser::wait_for(&page, "document.readyState === 'complete'", 10).await?;
            anyhow::ensure!(
                browser::eval::<String>(&page, BODY_BG).await? == dark_bg,
                "dark after a reload"
            );
            visit(&page, &base, "/templates").await?;
            anyhow::ensure!(
                browser::eval::<String>(&page, BODY_BG).await? == dark_bg
                    && browser::eval::<String>(
                        &page,
                        &format!("document.querySelector('{toggle}').getAttribute('aria-pressed')")
                    )
                    .await?
                        == "true",
                "dark on another page, toggle pressed"
            );
            // The stored choice wins over the system preference.
            browser::emulate_color_scheme(&page, "light").await?;
            visit(&page, &base, "/audit").await?;
            anyhow::ensure!(
                browser::eval::<String>(&page, BODY_BG).await? == dark_bg,
                "a stored choice beats prefers-color-scheme"
            );
            browser::click(&page, toggle).await?;
            visit(&page, &base, "/").await?;
            anyhow::ensure!(
                browser::eval::<String>(&page, BODY_BG).await? == light_bg,
                "toggled back to light, kept"
            );
            browser::emulate_color_scheme(&page, "").await?;
            Ok(())
        })
        .await;

    // Confirmation dialog: names the CT, traps focus, Escape returns focus to the opener.
    failures
        .check("dialog-keyboard", &page, async {
            visit(&page, &base, &format!("/containers/{ct}")).await?;
            let opener = "[data-dialog-open^=\"dlg-stop-\"]";
            browser::click(&page, opener).await?;
            browser::wait_for(&page, "document.querySelector('dialog[open]')", 5).await?;
            let name: String = browser::eval(
                &page,
                "(() => { const d = document.querySelector('dialog[open]'); return document.getElementById(d.getAttribute('aria-labelledby')).textContent; })()",
            )
            .await?;
            anyhow::ensure!(
                name.contains("shop-01") && name.contains("CT "),
                "the dialog is named after the CT it acts on: {name:?}"
            );
            let active = "(document.activeElement && (document.activeElement.closest('dialog[open]') ? document.activeElement.textContent.trim() : 'OUTSIDE:' + document.activeElement.tagName))";
            let mut seen = Vec::new();
            for _ in 0..5 {
                seen.push(browser::eval::<String>(&page, active).await?);
                browser::press(&page, "Tab", 0).await?;
            }
            anyhow::ensure!(
                seen.iter().all(|s| !s.starts_with("OUTSIDE")),
                "Tab stays inside the dialog: {seen:?}"
            );
            anyhow::ensure!(
                seen[0] == "Cancel" && seen[1] == "Stop" && seen[2] == "Cancel",
                "Tab cycles Cancel → Stop → Cancel: {seen:?}"
            );
            let mut back = Vec::new();
            for _ in 0..3 {
                browser::press(&page, "Tab", browser::SHIFT).await?;
                back.push(browser::eval::<String>(&page, active).await?);
            }
            anyhow::ensure!(
                back.iter().all(|s| !s.starts_with("OUTSIDE")) && back[0] != back[1],
                "Shift+Tab cycles inside the dialog: {back:?}"
            );
            browser::press(&page, "Escape", 0).await?;
            browser::wait_for(&page, "!document.querySelector('dialog[open]')", 5).await?;
            anyhow::ensure!(
                browser::eval::<bool>(
                    &page,
                    &format!("document.activeElement === document.querySelector('{}')", opener.replace('\'', "\\'"))
                )
                .await?,
                "Escape gives the focus back to the Stop button, not {}",
                browser::eval::<String>(&page, "document.activeElement.outerHTML.slice(0, 120)").await?
            );
            anyhow::ensure!(
                sim.state()
                    .with(|c| c.cts.values().any(|t| t.name() == "shop-01" && t.running)),
                "Escape stopped nothing"
            );
            Ok(())
        })
        .await;

    // Tabs: role=tablist is backed by the keyboard model it promises.
    failures
        .check("tabs-keyboard", &page, async {
            visit(&page, &base, &format!("/containers/{ct}?tab=services")).await?;
            let tabs: Vec<(String, String, i64)> = browser::eval(
                &page,
                "[...document.querySelectorAll('[role=tablist] [role=tab]')].map(t => [t.textContent, t.getAttribute('aria-selected'), t.tabIndex])",
            )
            .await?;
            anyhow::ensure!(
                tabs.iter().map(|t| t.0.as_str()).collect::<Vec<_>>()
                    == ["Overview", "Services", "Events", "Resources", "Template"],
                "{tabs:?}"
            );
            anyhow::ensure!(
                tabs.iter().all(|t| (t.1 == "true") == (t.2 == 0)) && tabs[1].1 == "true",
                "only the selected tab is in the Tab order: {tabs:?}"
            );
            let labelled: bool = browser::eval(
                &page,
                "(() => { const p = document.querySelector('[role=tabpanel]'); const t = document.querySelector('[role=tab][aria-selected=true]'); return p.getAttribute('aria-labelledby') === t.id && t.getAttribute('aria-controls') === p.id; })()",
            )
            .await?;
            anyhow::ensure!(labelled, "the panel is labelled by the selected tab, which controls it");
            browser::eval::<bool>(&page, "(document.querySelector('[role=tab][aria-selected=true]').focus(), true)").await?;
            let focused = "document.activeElement.getAttribute('role') === 'tab' ? document.activeElement.textContent : 'not a tab'";
            let mut order = Vec::new();
            for key in [
                "ArrowRight", "ArrowRight", "ArrowRight", "ArrowRight", "ArrowLeft", "Home", "End",
                "ArrowLeft",
            ] {
                browser::press(&page, key, 0).await?;
                order.push(browser::eval::<String>(&page, focused).await?);
            }
            anyhow::ensure!(
                order
                    == [
                        "Events", "Resources", "Template", "Overview", "Template", "Overview",
                        "Template", "Resources"
                    ],
                "arrows wrap, Home and End jump: {order:?}"
            );
            browser::press(&page, "Enter", 0).await?;
            browser::wait_for(&page, "location.search.includes('tab=resources')", 10).await?;
            browser::wait_for(
                &page,
                "document.querySelector('[role=tab][aria-selected=true]').textContent === 'Resources'",
                5,
            )
            .await?;
            Ok(())
        })
        .await;

    b.close().await;
    assert!(
        failures.0.is_empty(),
        "{} check(s) failed:\n{}",
        failures.0.len(),
        failures.0.join("\n")
    );
}

/// Stores the theme choice the way the toggle does (applied on the next page load).
async fn set_theme(page: &Page, theme: &str) -> anyhow::Result<()> {
    browser::eval::<bool>(
        page,
        &format!("(localStorage.setItem('ctforge-theme', '{theme}'), true)"),
    )
    .await?;
    Ok(())
}

/// A whole-page screenshot at the current phone viewport (the generic full-page helper resets
/// the device metrics to a desktop layout).
async fn phone_screenshot(page: &Page, name: &str) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
    use chromiumoxide::page::ScreenshotParams;
    let height: f64 = browser::eval(page, "document.documentElement.scrollHeight").await?;
    browser::viewport(page, 390, height.ceil() as i64, true).await?;
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/screenshots");
    std::fs::create_dir_all(&dir)?;
    page.save_screenshot(
        ScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .build(),
        dir.join(format!("{name}.png")),
    )
    .await?;
    browser::viewport(page, 390, 844, true).await?;
    Ok(())
}

/// Browser routes answer errors as HTML pages in the normal layout, with the navigation: a
/// missing container, a missing template and an unknown address each show a 404 page.
#[tokio::test]
async fn missing_pages_render_an_html_404_with_the_navigation() {
    let app = common::spawn_app("sqlite").await;
    let (token, _) = browser::session(&app.state, "root@pam").await;
    let base = app.address.clone();
    let missing = [
        ("missing-container", "/containers/999999"),
        ("missing-template", "/templates/no-such-template"),
        ("unknown-route", "/no/such/page"),
    ];
    for (_, path) in missing {
        let r = app
            .client
            .get(format!("{base}{path}"))
            .header("cookie", format!("ctforge_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        let html = r.text().await.unwrap();
        assert!(html.contains("<nav"), "{path} has the navigation: {html}");
    }
    // The API keeps answering JSON.
    let r = app
        .client
        .get(format!("{base}/api/v1/templates/no-such-template"))
        .header("cookie", format!("ctforge_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404);

    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&base, &token).await;
    for (name, path) in missing {
        browser::run(name, &page, async {
            visit(&page, &base, path).await?;
            let status: i64 = browser::eval(
                &page,
                "Number(document.querySelector('[data-error-status]')?.dataset.errorStatus || 0)",
            )
            .await?;
            anyhow::ensure!(status == 404, "the page shows status {status}");
            let heading: String =
                browser::eval(&page, "document.querySelector('h1')?.textContent || ''").await?;
            anyhow::ensure!(heading.contains("Not found"), "heading {heading:?}");
            let nav: Vec<String> = browser::eval(
                &page,
                "[...document.querySelectorAll('nav[aria-label=Main] a')].map(a => a.getAttribute('href'))",
            )
            .await?;
            anyhow::ensure!(
                nav.iter().any(|h| h == "/") && nav.iter().any(|h| h == "/templates"),
                "navigation links {nav:?}"
            );
            axe(&page, name).await
        })
        .await;
    }
    b.close().await;
}
