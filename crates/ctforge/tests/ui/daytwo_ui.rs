//! The Edit page in the browser: change memory and a network field, review the diff, apply,
//! and see the new values (and the value that waits for a restart) on the page.

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use ctforge_pve_sim::Timings;

const SCENARIO: &str = r#"
[[containers]]
vmid = 210
node = "pve1"
hostname = "edit-me"
status = "running"
"#;

#[tokio::test]
async fn edit_memory_and_network_review_the_diff_and_apply_in_the_browser() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| c.with_timings(Timings::instant())).await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
    })
    .await;
    let (token, _csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("day-two-edit", &page, async {
        // The container page links to Proxmox's console (a new tab) and to the Edit page.
        browser::goto(&page, &format!("{base}/containers/sim:210")).await?;
        let href: String = browser::eval(
            &page,
            "document.querySelector('a[target=_blank][href*=\"console=lxc\"]').getAttribute('href')",
        )
        .await?;
        anyhow::ensure!(href.contains("/?console=lxc&vmid=210&node=pve1"), "console link {href}");
        browser::click(&page, "a[href='/containers/sim:210/edit']").await?;
        browser::wait_for(&page, "location.pathname === '/containers/sim:210/edit'", 10).await?;
        browser::set_value(&page, "#memory", "1536").await?;
        browser::set_value(&page, "#net0_ip", "192.0.2.44/24").await?;
        browser::set_value(&page, "#net0_tag", "30").await?;
        browser::set_value(&page, "#nameserver", "192.0.2.53").await?;
        browser::click(&page, "form.edit-form button[type=submit]").await?;
        browser::wait_for(&page, "!!document.querySelector('table.diff')", 10).await?;
        let keys: Vec<String> = browser::eval(
            &page,
            "[...document.querySelectorAll('table.diff tbody tr')].map(r => r.dataset.key)",
        )
        .await?;
        anyhow::ensure!(keys == ["memory", "nameserver", "net0"], "diff rows {keys:?}");
        let mem: String = browser::eval(
            &page,
            "document.querySelector('table.diff tr[data-key=memory] .diff-new').innerText",
        )
        .await?;
        anyhow::ensure!(mem == "1536", "memory after: {mem}");
        let net: String = browser::eval(
            &page,
            "document.querySelector('table.diff tr[data-key=net0] .diff-new').innerText",
        )
        .await?;
        anyhow::ensure!(net.contains("ip=192.0.2.44/24") && net.contains("tag=30"), "{net}");
        browser::screenshot(&page, "container-edit-review").await;
        browser::click(&page, "form button.btn-primary[type=submit]").await?;
        browser::wait_for(
            &page,
            "location.pathname === '/containers/sim:210/edit' && !!document.querySelector('#memory')",
            10,
        )
        .await?;
        let memory: String = browser::eval(&page, "document.querySelector('#memory').value").await?;
        anyhow::ensure!(memory == "1536", "memory shown after apply: {memory}");
        let ip: String = browser::eval(&page, "document.querySelector('#net0_ip').value").await?;
        anyhow::ensure!(ip == "192.0.2.44/24", "ip shown after apply: {ip}");
        let tag: String = browser::eval(&page, "document.querySelector('#net0_tag').value").await?;
        anyhow::ensure!(tag == "30", "tag shown after apply: {tag}");
        let pending: String = browser::eval(
            &page,
            "(document.querySelector('.pending-changes') || {innerText: ''}).innerText",
        )
        .await?;
        anyhow::ensure!(
            pending.contains("Pending until restart") && pending.contains("nameserver"),
            "pending: {pending}"
        );
        browser::screenshot(&page, "container-edit-applied").await;
        Ok(())
    })
    .await;
    b.close().await;
    let config = {
        let state = sim.state();
        let c = state.lock();
        c.cts.get(&210).map(|ct| ct.conf.clone()).unwrap()
    };
    assert_eq!(config.get("memory").map(String::as_str), Some("1536"));
    assert!(config.get("net0").unwrap().contains("tag=30"));
}
