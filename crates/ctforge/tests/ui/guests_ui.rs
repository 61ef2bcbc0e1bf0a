//! The dashboard with containers and VMs mixed, in headless Chromium against the simulator
//! (two containers from the scenario, two VMs created through the simulator's qemu API): the
//! Type column names each guest's kind, the Type filter (chosen in the form, kept in the URL)
//! shows only VMs, a VM's page says `VM n`, and axe finds no serious or critical WCAG
//! violation on the mixed dashboard (grid and table) and the VM's page in both themes.

#![allow(clippy::unwrap_used)]

use crate::browser;
use crate::common;

use chromiumoxide::Page;
use ctforge_pve_sim::Timings;

const SCENARIO: &str = r#"
node_count = 2

[[containers]]
vmid = 200
node = "pve1"
hostname = "web1"
status = "running"

[[containers]]
vmid = 202
node = "pve2"
hostname = "legacy-db"
status = "stopped"
"#;

/// `(vmid, type, text of the Type cell)` of the table rows shown.
async fn rows(page: &Page) -> anyhow::Result<Vec<(u32, String, String)>> {
    browser::eval(
        page,
        "[...document.querySelectorAll('#ct-live tr[data-vmid]')].map(r => [Number(r.dataset.vmid), r.dataset.type, r.children[3].textContent.trim()])",
    )
    .await
}

#[tokio::test]
async fn dashboard_mixes_containers_and_vms_with_a_type_column_and_filter() {
    ctforge::install_crypto_provider();
    let sim = common::sim(SCENARIO, |c| {
        c.with_nodes(2).with_timings(Timings::instant())
    })
    .await;
    let pve = common::pve::Pve::new(&sim);
    pve.create_vm(300, "pve1", "vm-desktop", true).await;
    pve.create_vm(301, "pve2", "vm-build", false).await;
    let cluster = common::sim_cluster(&sim);
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.workers.concurrency = 0;
    })
    .await;
    let (token, _csrf) =
        browser::login_via_api(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    let base = app.address.clone();
    let b = browser::Browser::launch().await;
    let page = b.signed_in_page(&base, &token).await;

    browser::run("guests-dashboard", &page, async {
        browser::goto(&page, &format!("{base}/?view=table")).await?;
        let shown = rows(&page).await?;
        anyhow::ensure!(
            shown
                == [
                    (200, "lxc".into(), "Container".into()),
                    (202, "lxc".into(), "Container".into()),
                    (300, "qemu".into(), "VM".into()),
                    (301, "qemu".into(), "VM".into()),
                ],
            "the table lists both kinds with their type: {shown:?}"
        );
        let head: String = browser::eval(
            &page,
            "document.querySelector('#ct-live thead th:nth-child(4)').textContent",
        )
        .await?;
        anyhow::ensure!(head.contains("Type"), "the fourth column is Type: {head:?}");

        // The Type filter, chosen in the form: only VMs, and the URL says so.
        browser::set_value(&page, "select[name=\"type\"]", "qemu").await?;
        browser::click(&page, "form.filters button[type=\"submit\"]").await?;
        browser::wait_for(&page, "location.search.includes('type=qemu')", 10).await?;
        browser::wait_for(&page, "document.readyState === 'complete'", 10).await?;
        let shown = rows(&page).await?;
        anyhow::ensure!(
            shown.iter().map(|r| r.0).collect::<Vec<_>>() == [300, 301],
            "only the VMs: {shown:?}"
        );
        let chosen: String = browser::eval(
            &page,
            "document.querySelector('select[name=\"type\"]').value",
        )
        .await?;
        anyhow::ensure!(chosen == "qemu", "the filter shows its choice: {chosen:?}");

        // A VM's page names it as one.
        browser::goto(&page, &format!("{base}/containers/sim:300")).await?;
        let h1: String = browser::eval(&page, "document.querySelector('h1').textContent").await?;
        anyhow::ensure!(h1.contains("vm-desktop") && h1.contains("VM 300"), "{h1:?}");

        for theme in ["light", "dark"] {
            browser::eval::<bool>(
                &page,
                &format!("(localStorage.setItem('ctforge-theme', '{theme}'), true)"),
            )
            .await?;
            for (name, path) in [
                ("guests-dashboard", "/"),
                ("guests-dashboard-table", "/?view=table"),
                ("guests-vm-detail", "/containers/sim:300"),
            ] {
                browser::goto(&page, &format!("{base}{path}")).await?;
                let shot = format!("{name}-{theme}");
                browser::assert_no_serious_axe(&page, &shot).await?;
                browser::screenshot(&page, &shot).await;
            }
        }
        Ok(())
    })
    .await;
    b.close().await;
}
