//! Schemathesis (from PyPI) against the running app: it reads `/api/openapi.json`, generates
//! requests for every operation (valid and invalid), sends them with an API token, and fails on
//! any 5xx, undocumented status code or content type, or a response that violates its schema.
//!
//! `scripts/test` installs schemathesis into `.tools/venv` (pinned); set `CTFORGE_SCHEMATHESIS`
//! to use another binary, `CTFORGE_SCHEMATHESIS_SEED` to explore another seed (CI uses a fixed
//! one so a failure is reproducible), `CTFORGE_SCHEMATHESIS_EXAMPLES` for more examples.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("CTFORGE_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/schemathesis");
    assert!(
        venv.exists(),
        "schemathesis is not installed at {}: run scripts/test (it installs it), or \
         `python3 -m venv .tools/venv && .tools/venv/bin/pip install -r scripts/requirements-test.txt`",
        venv.display()
    );
    venv
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_or_schema_violation() {
    let binary = schemathesis();
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c.with_nodes(2).with_containers(3)).await;
    let cluster = common::sim_cluster(&sim);
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = common::spawn_app_with("sqlite", move |c| {
        c.clusters = vec![cluster];
        c.templates.roots = vec![root];
    })
    .await;
    let session =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;
    assert_eq!(
        session
            .post(
                &app.client,
                &app.address,
                "/api/v1/templates/discover",
                json!({})
            )
            .await
            .status(),
        200
    );
    let token = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/tokens",
            json!({ "name": "schemathesis" }),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let report = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/schemathesis");
    std::fs::create_dir_all(&report).unwrap();
    let seed = std::env::var("CTFORGE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261125".into());
    let examples = std::env::var("CTFORGE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let address = app.address.clone();
    let seed_arg = seed.clone();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&binary)
            .arg("run")
            .arg(format!("{address}/api/openapi.json"))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", &examples])
            .args(["--seed", &seed_arg])
            .args(["--workers", "2"])
            .arg("--no-color")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(report.join("report.txt"), format!("{stdout}\n{stderr}")).unwrap();
    let summary: String = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    println!(
        "schemathesis ran in {:.1} s (seed {seed}):\n{summary}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "schemathesis found problems (full report in artifacts/schemathesis/report.txt):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("Tested:") && !stdout.contains("Tested: 0"),
        "schemathesis tested operations:\n{stdout}"
    );
}
