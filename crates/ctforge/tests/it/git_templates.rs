//! Templates from git: a bare repository in a tempdir served over `file://` is configured as
//! a `[[templates.git]]` source; sync discovers its template, a pushed commit is picked up by
//! the next sync with the changed script listed, and a container created from it records the
//! commit.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ctforge::config::GitSource;
use serde_json::json;

/// Runs `git args…` in `dir` (no shell), failing the test with git's output.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn git_source_is_discovered_resynced_and_recorded_on_containers() {
    ctforge::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("templates.git");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--bare", "--initial-branch=main"]);
    git(tmp.path(), &["clone", bare.to_str().unwrap(), "work"]);
    git(&work, &["checkout", "-B", "main"]);
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/webapp"),
        &work.join("library/webapp"),
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-m", "webapp"]);
    git(&work, &["push", "origin", "main"]);
    let first = git(&work, &["rev-parse", "HEAD"]);

    let sim = common::sim("", |c| c.with_nodes(2)).await;
    let cluster = common::sim_cluster(&sim);
    let url = format!("file://{}", bare.display());
    let source_url = url.clone();
    let app = common::spawn_app_with("sqlite", move |config| {
        config.clusters = vec![cluster];
        config.templates.git = vec![GitSource {
            url: source_url,
            branch: "main".to_owned(),
            path: Some("library".to_owned()),
            ..GitSource::default()
        }];
        // Sync on demand only, so the test decides when the repository is read.
        config.templates.git_sync_interval_secs = 0;
    })
    .await;
    let session =
        common::api_login(&app.client, &app.address, "root", &sim.root_password, "pam").await;

    // First sync: cloned and discovered, the commit recorded on the template.
    let r = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/sync",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!(report["templates"][0]["name"], "webapp", "{report}");
    assert_eq!(report["templates"][0]["status"], "added", "{report}");
    assert!(
        report["roots"][0].as_str().unwrap().contains(&url),
        "{report}"
    );
    let stored = app
        .state
        .store
        .get_template_by_name("webapp")
        .await
        .unwrap();
    let conf = ctforge::templates::StoredConfig::parse("webapp", &stored.row.config_json).unwrap();
    assert_eq!(conf.git.as_ref().unwrap().commit, first);
    assert_eq!(conf.git.as_ref().unwrap().url, url);

    // A new commit changing a script: the next sync fetches it and lists the change.
    let script = work.join("library/webapp/container-configs/scripts/20-start.sh");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("echo synced from git\n");
    std::fs::write(&script, text).unwrap();
    git(&work, &["commit", "-am", "change the start script"]);
    git(&work, &["push", "origin", "main"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    assert_ne!(first, second);
    let r = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/sync",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.unwrap();
    let webapp = &report["templates"][0];
    assert_eq!(webapp["status"], "changed", "{report}");
    assert_eq!(
        webapp["changes"]["scripts"]["changed"],
        json!(["20-start.sh"])
    );
    let stored = app
        .state
        .store
        .get_template_by_name("webapp")
        .await
        .unwrap();
    assert!(
        stored
            .scripts
            .iter()
            .any(|s| s.content.contains("synced from git"))
    );

    // Nothing new: unchanged.
    let r = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/templates/sync",
            json!({}),
        )
        .await;
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!(report["templates"][0]["status"], "unchanged", "{report}");

    // A container created from it records the commit, shown as `webapp@<short sha>`.
    let r = session
        .post(
            &app.client,
            &app.address,
            "/api/v1/containers",
            json!({ "template": "webapp", "hostname": "from-git", "password": "hunter22" }),
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let created: serde_json::Value = r.json().await.unwrap();
    let job = app
        .state
        .store
        .get_job(created["job_id"].as_i64().unwrap())
        .await
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&job.payload_json).unwrap();
    assert_eq!(payload["template_git"]["commit"], second.as_str());
    let id = created["id"].as_i64().unwrap();
    let mut detail = serde_json::Value::Null;
    for _ in 0..100 {
        detail = app
            .client
            .get(format!("{}/api/v1/containers/{id}", app.address))
            .header("cookie", &session.cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if detail["template_ref"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        detail["template_ref"]["label"],
        format!("webapp@{}", &second[..12]),
        "{detail}"
    );
    let page = |path: String| {
        let (client, cookie) = (app.client.clone(), session.cookie.clone());
        async move {
            client
                .get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // The page shows the job while the container is being created: wait for the job.
    let job_id = created["job_id"].as_i64().unwrap();
    for _ in 0..400 {
        let job = page(format!("{}/api/v1/jobs/{job_id}", app.address)).await;
        let job: serde_json::Value = serde_json::from_str(&job).unwrap();
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            assert_eq!(job["state"], "succeeded", "{job}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let html = page(format!("{}/containers/{id}", app.address)).await;
    assert!(
        html.contains(&format!("webapp@{}", &second[..12])),
        "{html}"
    );
    let html = page(format!("{}/templates/webapp", app.address)).await;
    assert!(
        html.contains(&format!("from git {url} (main)@{}", &second[..12])),
        "{html}"
    );
    let api = page(format!("{}/api/v1/templates/webapp", app.address)).await;
    assert!(api.contains(&second), "{api}");

    // Option injection through the URL is refused before git runs.
    let bad = ctforge::config::GitSource {
        url: "--upload-pack=touch /tmp/owned".to_owned(),
        branch: "main".to_owned(),
        ..Default::default()
    };
    assert!(ctforge::templates::git::validate(&bad).is_err());
}
