//! Reusable headless-Chromium helpers for browser tests (CDP via `chromiumoxide`, no
//! chromedriver): launch Debian's `/usr/bin/chromium` with a fresh profile, sign in by setting
//! the session cookie through CDP, wait for conditions, and save a screenshot into
//! `artifacts/screenshots/` when a test step fails.
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
        page
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// Creates a signed-in session directly in the app (no Proxmox needed); returns the cookie
/// value and the CSRF token.
pub async fn session(state: &ctforge::state::AppState, username: &str) -> (String, String) {
    let data = ctforge::auth::SessionData {
        cluster_id: 0,
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
