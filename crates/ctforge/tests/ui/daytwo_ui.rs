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

/// Settings → Clusters → Edit in the browser: Test shows each node's SSH host key as not
/// confirmed, Confirm pins one (the form with its CSRF field); and the Snapshots page shows a
/// snapshot's Proxmox task log live in its panel.
#[tokio::test]
async fn confirm_a_nodes_host_key_and_watch_a_task_log_in_the_browser() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| {
        c.with_nodes(2).with_timings(Timings::instant())
    })
    .await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
        c.provisioning.ssh_trust_on_first_use = false;
    })
    .await;
    let id = app.state.store.get_cluster_by_name("sim").await.unwrap().id;
    let pve2 = sim
        .ssh_nodes
        .iter()
        .find(|n| n.node == "pve2")
        .unwrap()
        .fingerprint
        .clone();
    let (token, csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&app.address, &token).await;
    let base = app.address.clone();
    browser::run("cluster-node-keys", &page, async {
        browser::goto(&page, &format!("{base}/settings/clusters/{id}/edit")).await?;
        browser::click(&page, "section[aria-labelledby=nodes-title] form[action$='/test'] button").await?;
        browser::wait_for(&page, "!!document.querySelector('tr[data-node=pve2] form[action$=\"/host-key\"]')", 20).await?;
        let shown: String = browser::eval(
            &page,
            "document.querySelector('tr[data-node=pve2]').innerText",
        )
        .await?;
        anyhow::ensure!(
            shown.contains("not confirmed") && shown.contains(&pve2),
            "pve2 row: {shown}"
        );
        browser::screenshot(&page, "settings-cluster-nodes-test").await;
        browser::click(&page, "tr[data-node=pve2] form[action$='/host-key'] button").await?;
        browser::wait_for(
            &page,
            "location.pathname.endsWith('/edit') && !document.querySelector('tr[data-node=pve2] form[action$=\"/host-key\"]')",
            10,
        )
        .await?;
        let row: String = browser::eval(
            &page,
            "document.querySelector('tr[data-node=pve2]').innerText",
        )
        .await?;
        anyhow::ensure!(row.contains("confirmed") && row.contains(&pve2), "after Confirm: {row}");

        // The Snapshots page follows the CT's task log while open: a snapshot taken
        // elsewhere (the API) shows its Proxmox task log there, live.
        browser::goto(&page, &format!("{base}/containers/sim:210/snapshots")).await?;
        browser::wait_for(&page, "!!document.querySelector('[data-task-log]')", 10).await?;
        let taken = app
            .client
            .post(format!("{base}/api/v1/containers/sim:210/snapshots"))
            .header("cookie", format!("ctforge_session={token}"))
            .header("x-csrf-token", &csrf)
            .json(&serde_json::json!({ "name": "ui1" }))
            .send()
            .await?;
        anyhow::ensure!(taken.status() == 200, "snapshot: {}", taken.status());
        browser::wait_for(
            &page,
            "(() => { const b = document.querySelector('[data-task-log]'); return !b.hidden && b.querySelector('pre').textContent.length > 0 && /finished/.test(b.querySelector('[data-task-status]').textContent); })()",
            20,
        )
        .await?;
        browser::screenshot(&page, "container-snapshots-task-log").await;
        Ok(())
    })
    .await;
    b.close().await;
    let pinned = app
        .state
        .store
        .list_node_ssh(id)
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.node == "pve2")
        .and_then(|n| n.host_key);
    assert_eq!(pinned.as_deref(), Some(pve2.as_str()));
}
