//! Reusable headless-Chromium helpers for browser tests (CDP via `chromiumoxide`, no
//! chromedriver): launch Debian's `/usr/bin/chromium` with a fresh profile, sign in by setting
//! the session cookie through CDP, wait for conditions, and save a screenshot into
//! `artifacts/screenshots/` when a test step fails; accessibility checks with axe-core
//! ([`axe_check`], installed from npm by `scripts/test` into `tests/browser/node_modules`),
//! real key presses ([`press`]) and media emulation ([`emulate`]).
//!
//! Use from a test binary with `mod common; mod browser;` and:
//!
//! ```ignore
//! let b = browser::Browser::launch().await;
//! let page = b.signed_in_page(&app.address, &session_token).await;
//! browser::run("my-test", &page, async { /* steps returning anyhow::Result */ Ok(()) }).await;
//! ```
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::browser::BrowserConfig;
use chromiumoxide::cdp::browser_protocol::network::{CookieParam, SetCookiesParams};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::page::ScreenshotParams;
use futures_util::StreamExt;

/// Where Debian installs Chromium (`apt-get install chromium`; `.ci/run` does it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A running headless Chromium with its own profile directory.
pub struct Browser {
    /// The CDP browser.
    pub browser: chromiumoxide::Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Launches Chromium headless with a fresh `--user-data-dir`.
    pub async fn launch() -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install it with `apt-get install -y chromium` (see .ci/run)"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .args([
                "--headless",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(Duration::from_secs(30))
            .build()
            .expect("browser config");
        let (browser, mut handler) = chromiumoxide::Browser::launch(config)
            .await
            .expect("launch chromium");
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Browser {
            browser,
            handler,
            _profile: profile,
        }
    }

    /// A new tab with the ctforge session cookie for `base` (`http://127.0.0.1:PORT`) set.
    pub async fn signed_in_page(&self, base: &str, session_token: &str) -> Page {
        let page = self
            .browser
            .new_page("about:blank")
            .await
            .expect("new page");
        set_session_cookie(&page, base, session_token).await;
        page
    }

    /// A new tab without a session (for the sign-in page).
    pub async fn anonymous_page(&self) -> Page {
        self.browser
            .new_page("about:blank")
            .await
            .expect("new page")
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Sets the ctforge session cookie for `base` in the browser (every tab shares it).
pub async fn set_session_cookie(page: &Page, base: &str, session_token: &str) {
    let cookie = CookieParam::builder()
        .name("ctforge_session")
        .value(session_token)
        .url(base)
        .build()
        .expect("cookie");
    // `Page::set_cookies` refuses on about:blank; the raw CDP command does not care.
    page.execute(SetCookiesParams::new(vec![cookie]))
        .await
        .expect("set cookie");
}

/// Creates a signed-in session directly in the app (no Proxmox needed); returns the cookie
/// value and the CSRF token.
pub async fn session(state: &ctforge::state::AppState, username: &str) -> (String, String) {
    let data = ctforge::auth::SessionData {
        cluster_id: crate::common::home_cluster(state).await,
        ticket: "PVE:x".into(),
        pve_csrf: "x".into(),
        cap: Default::default(),
        issued_at: ctforge::clock::Clock::now_ms(state.clock.as_ref()) / 1000,
        tfa_challenge: None,
    };
    match ctforge::auth::login::create_session(state, data, username)
        .await
        .expect("session")
    {
        ctforge::auth::login::SignIn::Done {
            token, csrf_token, ..
        } => (token, csrf_token),
        _ => panic!("no session"),
    }
}

/// Signs in for real through `POST /api/v1/auth/login` (pages then act with the user's own
/// Proxmox ticket); returns the session cookie value and the CSRF token.
pub async fn login_via_api(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    realm: &str,
) -> (String, String) {
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password, "realm": realm }))
        .send()
        .await
        .expect("login request");
    assert_eq!(login.status(), 200, "login of {username}@{realm}");
    let token = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie header")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_start_matches("ctforge_session=")
        .to_owned();
    let body: serde_json::Value = login.json().await.expect("login body");
    let csrf = body["csrf_token"].as_str().expect("csrf token").to_owned();
    (token, csrf)
}

/// Navigates and waits until the document is loaded.
pub async fn goto(page: &Page, url: &str) -> anyhow::Result<()> {
    page.goto(url).await?;
    wait_for(page, "document.readyState === 'complete'", 10).await
}

/// Polls the JavaScript expression `condition` until it is true or `secs` pass.
pub async fn wait_for(page: &Page, condition: &str, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let ok = page
            .evaluate(format!(
                "(() => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }})()"
            ))
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {secs} s waiting for `{condition}`");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets a form control's value (input, textarea or select) by CSS selector.
pub async fn set_value(page: &Page, selector: &str, value: &str) -> anyhow::Result<()> {
    let js = format!(
        "(() => {{ const el = document.querySelector({sel}); if (!el) return false; el.value = {val}; el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
        sel = serde_json::to_string(selector)?,
        val = serde_json::to_string(value)?,
    );
    let found: bool = page.evaluate(js).await?.into_value()?;
    anyhow::ensure!(found, "no element matches `{selector}`");
    Ok(())
}

/// Types into an input by CSS selector (real key events).
pub async fn type_into(page: &Page, selector: &str, text: &str) -> anyhow::Result<()> {
    let el = page.find_element(selector).await?;
    el.click().await?;
    el.type_str(text).await?;
    Ok(())
}

/// Clicks the element matching `selector`.
pub async fn click(page: &Page, selector: &str) -> anyhow::Result<()> {
    page.find_element(selector).await?.click().await?;
    Ok(())
}

/// The current URL.
pub async fn url(page: &Page) -> String {
    page.url().await.ok().flatten().unwrap_or_default()
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/screenshots")
}

/// Saves a full-page PNG screenshot as `artifacts/screenshots/<name>.png`.
pub async fn screenshot(page: &Page, name: &str) -> Option<PathBuf> {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{name}.png"));
    let params = ScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Png)
        .full_page(true)
        .build();
    page.save_screenshot(params, &path).await.ok()?;
    Some(path)
}

/// Runs test steps; on failure saves a screenshot (and the page HTML) and panics with the
/// error and where the screenshot is.
pub async fn run<F>(name: &str, page: &Page, steps: F)
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Err(e) = steps.await {
        let shot = screenshot(page, name).await;
        if let Ok(html) = page.content().await {
            let _ = std::fs::write(screenshot_dir().join(format!("{name}.html")), html);
        }
        panic!(
            "browser test `{name}` failed at {}: {e:#}\nscreenshot: {}",
            url(page).await,
            shot.map(|p| p.display().to_string())
                .unwrap_or_else(|| "(could not be saved)".to_owned())
        );
    }
}

/// Keyboard modifier bit for Shift in CDP key events.
pub const SHIFT: i64 = 8;

/// Presses and releases a named key (`Tab`, `Escape`, `Enter`, `ArrowRight`, `ArrowLeft`,
/// `Home`, `End`, ` `) as real input events; `modifiers` is a CDP bit mask ([`SHIFT`]).
pub async fn press(page: &Page, key: &str, modifiers: i64) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::input::{
        DispatchKeyEventParams, DispatchKeyEventType,
    };
    let (code, key_code, text) = match key {
        "Tab" => ("Tab", 9, None),
        "Enter" => ("Enter", 13, Some("\r")),
        "Escape" => ("Escape", 27, None),
        " " => ("Space", 32, Some(" ")),
        "End" => ("End", 35, None),
        "Home" => ("Home", 36, None),
        "ArrowLeft" => ("ArrowLeft", 37, None),
        "ArrowUp" => ("ArrowUp", 38, None),
        "ArrowRight" => ("ArrowRight", 39, None),
        "ArrowDown" => ("ArrowDown", 40, None),
        other => anyhow::bail!("press: no key definition for {other:?}"),
    };
    let mut down = DispatchKeyEventParams::builder()
        .r#type(if text.is_some() {
            DispatchKeyEventType::KeyDown
        } else {
            DispatchKeyEventType::RawKeyDown
        })
        .key(key)
        .code(code)
        .windows_virtual_key_code(key_code)
        .native_virtual_key_code(key_code)
        .modifiers(modifiers);
    if let Some(text) = text {
        down = down.text(text);
    }
    page.execute(down.build().map_err(anyhow::Error::msg)?)
        .await?;
    let up = DispatchKeyEventParams::builder()
        .r#type(DispatchKeyEventType::KeyUp)
        .key(key)
        .code(code)
        .windows_virtual_key_code(key_code)
        .native_virtual_key_code(key_code)
        .modifiers(modifiers)
        .build()
        .map_err(anyhow::Error::msg)?;
    page.execute(up).await?;
    Ok(())
}

/// Emulates `prefers-color-scheme` (`light`, `dark`, or `""` for the browser default).
pub async fn emulate_color_scheme(page: &Page, scheme: &str) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::emulation::MediaFeature;
    page.emulate_media_features(vec![MediaFeature::new("prefers-color-scheme", scheme)])
        .await?;
    Ok(())
}

/// Sets the viewport (CSS pixels) and whether it is a phone (touch, mobile layout).
pub async fn viewport(page: &Page, width: i64, height: i64, mobile: bool) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
    let params = SetDeviceMetricsOverrideParams::builder()
        .width(width)
        .height(height)
        .device_scale_factor(if mobile { 2.0 } else { 1.0 })
        .mobile(mobile)
        .build()
        .map_err(anyhow::Error::msg)?;
    page.execute(params).await?;
    Ok(())
}

/// Evaluates `js` and deserializes its (JSON-compatible) value.
pub async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> anyhow::Result<T> {
    Ok(page.evaluate(js.to_owned()).await?.into_value()?)
}

/// One axe-core rule violation on a page.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AxeViolation {
    /// Rule id (`color-contrast`, `label`, …).
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    #[serde(default)]
    pub impact: Option<String>,
    /// What the rule asks for.
    pub help: String,
    /// Where the rule is explained.
    #[serde(rename = "helpUrl")]
    pub help_url: String,
    /// The offending elements.
    pub nodes: Vec<AxeNode>,
}

/// One element that breaks a rule.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AxeNode {
    /// CSS selector of the element.
    pub target: String,
    /// What is wrong with it.
    #[serde(default)]
    pub summary: String,
}

impl AxeViolation {
    /// Serious or critical: the violations a test fails on.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

/// The axe-core rule tags we check: WCAG 2.0, 2.1 and 2.2, levels A and AA.
pub const AXE_TAGS: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let path = dir.join("node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "axe-core is not installed ({}: {e}). Run `npm ci` in {} (scripts/test does it).",
                path.display(),
                dir.display()
            )
        })
    })
}

/// Runs axe-core (WCAG 2 A/AA rules, [`AXE_TAGS`]) on the current page and returns every
/// violation. Injects `node_modules/axe-core/axe.min.js` first; panics with "run npm ci" when it
/// is not installed. `name` labels the page in errors.
pub async fn axe_check(page: &Page, name: &str) -> anyhow::Result<Vec<AxeViolation>> {
    use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
    let source = axe_source();
    let loaded: bool = eval(page, "typeof window.axe === 'object'").await?;
    if !loaded {
        page.evaluate_expression(
            EvaluateParams::builder()
                .expression(source)
                .build()
                .map_err(anyhow::Error::msg)?,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{name}: injecting axe-core failed: {e}"))?;
    }
    let tags = serde_json::to_string(AXE_TAGS)?;
    let js = format!(
        "axe.run(document, {{ runOnly: {{ type: 'tag', values: {tags} }}, resultTypes: ['violations'] }})
           .then(r => JSON.stringify(r.violations.map(v => ({{
             id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
             nodes: v.nodes.map(n => ({{ target: n.target.join(' '), summary: n.failureSummary || '' }}))
           }}))))"
    );
    let json: String = page
        .evaluate_expression(
            EvaluateParams::builder()
                .expression(js)
                .await_promise(true)
                .build()
                .map_err(anyhow::Error::msg)?,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{name}: axe.run failed: {e}"))?
        .into_value()?;
    Ok(serde_json::from_str(&json)?)
}

/// Fails when axe-core finds a serious or critical WCAG violation on the current page.
pub async fn assert_no_serious_axe(page: &Page, name: &str) -> anyhow::Result<()> {
    let violations = axe_check(page, name).await?;
    let serious: Vec<_> = violations.into_iter().filter(|v| v.is_serious()).collect();
    anyhow::ensure!(
        serious.is_empty(),
        "axe found serious or critical WCAG violations:\n{}",
        axe_report(name, &serious)
    );
    Ok(())
}

/// A readable report of `violations` on page `name` (rule, impact, help, offending selectors).
pub fn axe_report(name: &str, violations: &[AxeViolation]) -> String {
    let mut out = String::new();
    for v in violations {
        out.push_str(&format!(
            "{name}: [{}] {} — {} ({})\n",
            v.impact.as_deref().unwrap_or("?"),
            v.id,
            v.help,
            v.help_url
        ));
        for n in v.nodes.iter().take(8) {
            let summary = n.summary.replace('\n', " ");
            out.push_str(&format!("    {}  {}\n", n.target, summary));
        }
        if v.nodes.len() > 8 {
            out.push_str(&format!("    … and {} more\n", v.nodes.len() - 8));
        }
    }
    out
}
