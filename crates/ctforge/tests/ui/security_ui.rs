//! The Content-Security-Policy in a real browser: on every main page (and the sign-in page)
//! loading the page itself reports no CSP violation (no inline script or style of ours), and
//! an inline `<script>` or `onclick=` handler added under the page's origin does not run: the
//! browser blocks it, fires `securitypolicyviolation` and reports it to the console.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use crate::browser;
use crate::common;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::log::{EnableParams, EventEntryAdded};
use futures_util::StreamExt;

/// Console messages of `page` (Chromium's own messages, where CSP violations are reported).
async fn console(page: &Page) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut events = page.event_listener::<EventEntryAdded>().await.unwrap();
    page.execute(EnableParams::default()).await.unwrap();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            sink.lock().unwrap().push(event.entry.text.clone());
        }
    });
    seen
}

const INJECT: &str = r#"(() => {
  window.__inlineRan = false;
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective));
  const s = document.createElement('script');
  s.textContent = 'window.__inlineRan = true';
  document.body.appendChild(s);
  const d = document.createElement('div');
  d.setAttribute('onclick', 'window.__inlineRan = true');
  document.body.appendChild(d);
  d.click();
  return true;
})()"#;

async fn check_page(page: &Page, url: &str, log: &Arc<Mutex<Vec<String>>>) -> anyhow::Result<()> {
    log.lock().unwrap().clear();
    browser::goto(page, url).await?;
    browser::wait_for(page, "document.readyState === 'complete'", 10).await?;
    // Our own markup and scripts must not trip the policy.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let on_load: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.contains("Content Security Policy"))
        .cloned()
        .collect();
    anyhow::ensure!(
        on_load.is_empty(),
        "{url}: the page itself violates the CSP: {on_load:?}"
    );
    let applied: bool = browser::eval(page, INJECT).await?;
    anyhow::ensure!(applied);
    browser::wait_for(page, "window.__violations.length >= 2", 5).await?;
    let ran: bool = browser::eval(page, "window.__inlineRan").await?;
    anyhow::ensure!(!ran, "{url}: an inline script ran");
    let directives: Vec<String> = browser::eval(page, "window.__violations").await?;
    anyhow::ensure!(
        directives.iter().all(|d| d.starts_with("script-src")),
        "{url}: {directives:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let reported = log
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.contains("Content Security Policy") && t.contains("inline"))
            .count();
        if reported >= 2 {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{url}: the console did not report the blocked inline code: {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn the_csp_blocks_inline_script_and_reports_it_to_the_console() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_containers(1)).await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| c.clusters = vec![cluster]).await;
    let (token, _csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let b = browser::Browser::launch().await;

    let anonymous = b.anonymous_page().await;
    let log = console(&anonymous).await;
    let login = format!("{}/login", app.address);
    browser::run(
        "csp-login",
        &anonymous,
        check_page(&anonymous, &login, &log),
    )
    .await;

    let page = b.signed_in_page(&app.address, &token).await;
    let log = console(&page).await;
    for path in [
        "/",
        "/?view=table",
        "/containers/new",
        "/jobs",
        "/templates",
        "/buckets",
        "/settings/clusters",
        "/settings/tokens",
        "/audit",
        "/api/docs",
    ] {
        let url = format!("{}{path}", app.address);
        browser::run(
            &format!("csp{}", path.replace(['/', '?', '='], "-")),
            &page,
            check_page(&page, &url, &log),
        )
        .await;
    }
    println!("CSP checked in Chromium on the sign-in page and 10 signed-in pages");
    b.close().await;
}
