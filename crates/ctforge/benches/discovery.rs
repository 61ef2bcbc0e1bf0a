//! Discovery benchmark: 200 generated templates (5 scripts, 3 files, 2 package lists of 20
//! packages each) discovered into a fresh SQLite store, first run (all added) and the
//! idempotent second run (all unchanged, nothing written). Prints seconds.
//!
//! Run with `cargo bench -p ctforge --bench discovery`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ctforge::clock::{Clock, SystemClock};
use ctforge::templates::{Status, discover_roots};

const TEMPLATES: usize = 200;

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

fn generate(root: &Path) -> std::io::Result<()> {
    for t in 0..TEMPLATES {
        let dir = root.join(format!("tpl-{t:03}"));
        write(
            &dir.join("template.conf"),
            &format!(
                "TEMPLATE_APP=\"Template {t}\"\nTEMPLATE_DESCRIPTION='generated'\n\
                 TEMPLATE_TAGS=\"bench;t{}\"\nTEMPLATE_CPU=2\nTEMPLATE_RAM=2048\nTEMPLATE_DISK=8\n\
                 TEMPLATE_OS=debian\nTEMPLATE_VERSION=12\nTEMPLATE_UNPRIVILEGED=1\n",
                t % 10
            ),
        )?;
        let cc = dir.join("container-configs");
        for s in 0..5 {
            write(
                &cc.join(format!("scripts/{:02}-step{s}.sh", s * 10)),
                &format!("#!/bin/bash\nset -euo pipefail\necho \"template {t} step {s}\"\n"),
            )?;
        }
        for (f, policy) in ["replace", "default", "backup"].iter().enumerate() {
            let name = format!("file{f}.conf");
            write(
                &cc.join(format!("files/{name}")),
                &"key = value\n".repeat(20),
            )?;
            write(&cc.join(format!("files/{name}.path")), "/etc/app\n")?;
            write(
                &cc.join(format!("files/{name}.policy")),
                &format!("{policy}\n"),
            )?;
        }
        let apt: String = (0..20).map(|p| format!("pkg{p}=1.{p}\n")).collect();
        let npm: String = (0..20).map(|p| format!("node-pkg{p}@2.{p}.0\n")).collect();
        write(&cc.join("packages/base.apt"), &format!("# base\n{apt}"))?;
        write(&cc.join("packages/web.npm"), &npm)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ctforge::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("templates");
    generate(&root)?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = ctforge::storage::connect(&url, Arc::new(SystemClock) as Arc<dyn Clock>).await?;
    store.migrate().await?;
    let roots = vec![root];

    let started = Instant::now();
    let first = discover_roots(store.as_ref(), &roots).await?;
    let first_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        first.count(Status::Added) == TEMPLATES,
        "first run: expected {TEMPLATES} added\n{}",
        first.render()
    );

    let started = Instant::now();
    let second = discover_roots(store.as_ref(), &roots).await?;
    let second_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        second.count(Status::Unchanged) == TEMPLATES,
        "second run: expected {TEMPLATES} unchanged\n{}",
        second.render()
    );

    println!("discovery of {TEMPLATES} templates (5 scripts, 3 files, 2x20 packages) into SQLite:");
    println!("  first run (all added):      {first_s:.3} s");
    println!("  second run (all unchanged): {second_s:.3} s");
    Ok(())
}
