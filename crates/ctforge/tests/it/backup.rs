//! Backup and restore (`ctforge::backup`): a backup taken from a running instance while a
//! creation job is in flight, restored into a new data directory, serves the same containers,
//! templates, API tokens (they authenticate) and revealable credentials from a second
//! instance; the job in flight is there as it was at the snapshot. A restore refuses a
//! non-empty target and leaves nothing behind after a wrong passphrase. The PostgreSQL path
//! (`pg_dump`/`pg_restore`) round-trips every row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use ctforge::backup::{self, KdfCost};
use ctforge::clock::SystemClock;
use ctforge::secrets::Plain;
use ctforge_pve_sim::HoldPoint;
use serde_json::{Value, json};

/// Cheap key derivation: the tests check the format, not Argon2's cost.
fn cost() -> KdfCost {
    KdfCost {
        memory_kib: 1024,
        passes: 1,
        lanes: 1,
    }
}

async fn wait_for(mut done: impl AsyncFnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn backup_of_a_running_instance_restores_into_a_second_one() {
    ctforge::install_crypto_provider();
    let sim = common::sim("", |c| c).await;
    let cluster = common::sim_cluster(&sim);
    let root = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/templates"
    ));
    let app = {
        let (cluster, root) = (cluster.clone(), root.clone());
        common::spawn_app_with("sqlite", move |c| {
            c.clusters = vec![cluster];
            c.templates.roots = vec![root];
        })
        .await
    };
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "keep-me", "127.0.0.1")
        .await
        .unwrap();
    let post = |path: String, body: Value| {
        app.client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = post("/api/v1/templates/discover".into(), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // One container finished, with a sealed credential…
    let r = post(
        "/api/v1/containers".into(),
        json!({ "template": "webapp", "hostname": "done-1" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let done: Value = r.json().await.unwrap();
    let done_id = done["id"].as_i64().unwrap();
    let store = app.state.store.clone();
    wait_for(
        async || store.get_container(done_id).await.unwrap().status == "ready",
        "the first container to be ready",
    )
    .await;
    let sealed = app.state.keyring.seal("s3cret-Value").unwrap();
    store
        .put_credential(done_id, "admin-password", &sealed)
        .await
        .unwrap();

    // …and one whose creation job is held in its install step while the backup runs.
    let hold = sim.state().hold(HoldPoint::Exec("apt-get install".into()));
    let r = post(
        "/api/v1/containers".into(),
        json!({ "template": "webapp", "hostname": "inflight-1" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let inflight: Value = r.json().await.unwrap();
    let inflight_job = inflight["job_id"].as_i64().unwrap();
    tokio::time::timeout(Duration::from_secs(60), hold.reached())
        .await
        .expect("the second job reaches its install step");

    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("b.ctforge");
    let pass = Plain::new("correct horse battery");
    let summary = backup::create(&app.state.config, &file, &pass, cost(), &SystemClock)
        .await
        .unwrap();
    assert_eq!(summary.manifest.backend, "sqlite");
    assert!(summary.bytes > 0);
    // The plaintext never lands next to the backup.
    let raw = std::fs::read(&file).unwrap();
    assert!(raw.starts_with(backup::crypt::MAGIC));
    assert!(!raw.windows(7).any(|w| w == b"done-1\0" || w == b"webapp\0"));
    let again = backup::create(&app.state.config, &file, &pass, cost(), &SystemClock).await;
    assert!(matches!(again, Err(backup::BackupError::OutputExists(_))));
    hold.release();

    // A wrong passphrase restores nothing; a non-empty target is refused.
    let target = scratch.path().join("restored");
    let mut config = (*app.state.config).clone();
    config.data_dir = target.clone();
    let wrong = backup::restore(&config, &file, &Plain::new("wrong passphrase")).await;
    assert!(
        matches!(wrong, Err(backup::BackupError::Crypt(_))),
        "{wrong:?}"
    );
    assert!(!target.exists(), "nothing left after a failed restore");
    let busy = backup::restore(&app.state.config, &file, &pass).await;
    assert!(
        matches!(busy, Err(backup::BackupError::NotEmpty(_))),
        "{busy:?}"
    );

    let restored = backup::restore(&config, &file, &pass).await.unwrap();
    assert!(restored.sealed_values >= 3, "{restored:?}");
    assert!(target.join("secret.key").is_file() && target.join("ctforge.db").is_file());

    // The second instance: same containers, templates, token and credential; no workers,
    // so the job in flight stays as the snapshot saw it.
    let second = {
        let (cluster, target) = (cluster.clone(), target.clone());
        common::spawn_app_with("sqlite", move |c| {
            c.clusters = vec![cluster];
            c.data_dir = target;
            c.workers.concurrency = 0;
        })
        .await
    };
    let get = |path: &str| {
        second
            .client
            .get(format!("{}{path}", second.address))
            .bearer_auth(&token)
            .send()
    };
    let r = get("/api/v1/containers").await.unwrap();
    assert_eq!(r.status(), 200, "the API token authenticates");
    let list: Value = r.json().await.unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["hostname"].as_str().or(i["name"].as_str()))
        .collect();
    assert!(
        names.contains(&"done-1") && names.contains(&"inflight-1"),
        "{list}"
    );
    let templates: Value = get("/api/v1/templates")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(templates.to_string().contains("webapp"), "{templates}");
    let r = second
        .client
        .post(format!(
            "{}/api/v1/containers/{done_id}/credentials/reveal",
            second.address
        ))
        .bearer_auth(&token)
        .json(&json!({ "name": "admin-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["value"], "s3cret-Value");
    let job = second.state.store.get_job(inflight_job).await.unwrap();
    assert_eq!(job.state, "running", "{job:?}");
    assert_eq!(job.current_step.as_deref(), Some("install"), "{job:?}");
    println!(
        "backup: {} bytes for {} sealed secrets",
        summary.bytes, restored.sealed_values
    );
    second.stop().await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn backup_round_trips_on_postgres() {
    ctforge::install_crypto_provider();
    let app = common::spawn_app_with("postgres", |c| c.workers.concurrency = 0).await;
    let (_, token) = ctforge::tokens::create(&app.state, "root@pam", "pg", "127.0.0.1")
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("pg.ctforge");
    let pass = Plain::new("correct horse battery");
    let summary = backup::create(&app.state.config, &file, &pass, cost(), &SystemClock)
        .await
        .unwrap();
    assert_eq!(summary.manifest.backend, "postgres");

    let mut config = (*app.state.config).clone();
    config.data_dir = scratch.path().join("restored");
    config.database_url = Some(ctforge::config::Secret::new(common::fresh_pg_url().await));
    backup::restore(&config, &file, &pass).await.unwrap();
    // Restoring again into the now populated database is refused.
    let mut again = config.clone();
    again.data_dir = scratch.path().join("other");
    let refused = backup::restore(&again, &file, &pass).await;
    assert!(
        matches!(refused, Err(backup::BackupError::NotEmpty(_))),
        "{refused:?}"
    );
    let second = common::spawn_app_with("sqlite", move |c| {
        c.data_dir = config.data_dir.clone();
        c.database_url = config.database_url.clone();
        c.workers.concurrency = 0;
    })
    .await;
    let r = second
        .client
        .get(format!("{}/api/v1/auth/tokens", second.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401, "the token authenticates after the restore");
    let hash = ctforge::auth::session::hash_token(&token);
    assert!(second.state.store.use_api_token(&hash).await.is_ok());
    second.stop().await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn scheduled_backups_keep_the_newest() {
    ctforge::install_crypto_provider();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Three older backups, the newest written just now: the next one is a day away, so the
    // schedule's own loop stays asleep and the test drives one round itself.
    for i in 0..3 {
        std::fs::write(
            dir.join(backup::schedule::file_name(
                1_000_000_000_000 + i * 3_600_000,
            )),
            b"old",
        )
        .unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"not a backup").unwrap();
    let pass_file = scratch.path().join("pass");
    std::fs::write(&pass_file, "correct horse battery\n").unwrap();
    let (d, p) = (dir.clone(), pass_file.clone());
    let app = common::spawn_app_with("sqlite", move |c| {
        c.workers.concurrency = 0;
        c.backup.dir = Some(d);
        c.backup.passphrase_file = Some(p);
        c.backup.keep = 2;
    })
    .await;
    let written = backup::schedule::run_once(&app.state, &dir, "test-owner")
        .await
        .unwrap()
        .expect("the lock is free: a backup is written");
    let left = backup::schedule::list(&dir);
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left.last(), Some(&written));
    assert_eq!(
        std::fs::read(&left[0]).unwrap(),
        b"old",
        "the newest old one stays"
    );
    assert!(
        dir.join("notes.txt").exists(),
        "other files are not touched"
    );
    // Another process in the same interval skips its round.
    let skipped = backup::schedule::run_once(&app.state, &dir, "other-owner")
        .await
        .unwrap();
    assert!(skipped.is_none());

    let mut config = (*app.state.config).clone();
    config.data_dir = scratch.path().join("restored");
    config.backup = Default::default();
    let pass = backup::read_passphrase(&pass_file).unwrap();
    backup::restore(&config, &written, &pass).await.unwrap();
    app.stop().await.unwrap();
}

#[test]
fn scheduled_backups_need_a_passphrase_file() {
    use ctforge::config::{CliOverrides, Config};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ctforge.toml");
    std::fs::write(&file, "[backup]\ndir = \"/var/backups/ctforge\"\n").unwrap();
    let cli = CliOverrides {
        config_file: Some(file.clone()),
        ..Default::default()
    };
    let err = Config::load_from(&cli, &[]).unwrap_err().to_string();
    assert!(err.contains("passphrase_file"), "{err}");
    let env = vec![
        (
            "CTFORGE_BACKUP__PASSPHRASE_FILE".to_owned(),
            "/etc/ctforge/backup.pass".to_owned(),
        ),
        ("CTFORGE_BACKUP__KEEP".to_owned(), "3".to_owned()),
    ];
    let loaded = Config::load_from(&cli, &env).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.backup.keep, 3);
    assert_eq!(loaded.config.backup.interval_secs, 86_400);
}
