//! Upgrades keep data: a database of the previous release (schema 0006, the last migration of
//! the release before this wave) with a record in every table — committed as SQL dumps for
//! SQLite and PostgreSQL in `tests/fixtures/upgrade/`, with the key ring that sealed its
//! secrets — is migrated by this build's binary (`ctforge migrate`), and then every row is still
//! there, every sealed secret opens, API tokens and sessions authenticate, job history and
//! results read back. Each migration newer than the fixture is also applied on its own, one
//! after the other, checking the data after each step; migrations up to the fixture are
//! applied one by one from an empty database.
//!
//! The dumps are generated (never hand-edited) by `scripts/make-upgrade-fixtures`, which runs
//! the ignored test `generate_upgrade_fixtures` with migrations capped at `FIXTURE_SCHEMA`;
//! the next release regenerates them at its own last migration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ctforge::clock::{Clock, ManualClock};
use ctforge::secrets::Keyring;
use ctforge::status::{JobState, RecordStatus};
use ctforge::storage::model::*;
use ctforge::storage::{self, Store};

/// The schema version of the committed fixtures.
const FIXTURE_SCHEMA: i64 = 6;
const NOW: i64 = 1_700_000_000_000;
const FAR: i64 = 4_000_000_000_000;
const TOKEN: &str = "upgrade-fixture-api-token-0123456789abcdef";
const SESSION: &str = "upgrade-fixture-session-0123456789abcdef";
const DRAFT: &str = "upgrade-fixture-draft-0123456789abcdef";
/// (sealed column, plaintext) pairs the fixture holds.
const CLUSTER_TOKEN: &str = "0f1e2d3c-token-secret";
const CLUSTER_SSH: &str = "ssh-Password-1";
const ROOT_PASSWORD: &str = "Root-Pass-42";
const CREDENTIAL: &str = "s3cret-Value";
const DRAFT_SECRET: &str = "draft-Root-Pass";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade")
}

fn keyring() -> Keyring {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("secret.key"), dir.path().join("secret.key")).unwrap();
    Keyring::load_or_create(dir.path()).unwrap()
}

fn sqlite_migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

fn pg_migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/postgres")
}

/// The migrator with migrations up to `version` only.
fn capped(mut migrator: sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
    migrator.migrations = std::borrow::Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect(),
    );
    migrator
}

enum Db {
    Sqlite(sqlx::SqlitePool, String),
    Pg(sqlx::PgPool, String),
}

impl Db {
    async fn new(backend: &str, dir: &Path) -> Self {
        if backend == "sqlite" {
            let url = format!("sqlite://{}", dir.join("ctforge.db").display());
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap();
            Db::Sqlite(pool, url)
        } else {
            let url = common::fresh_pg_url().await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            Db::Pg(pool, url)
        }
    }

    fn url(&self) -> &str {
        match self {
            Db::Sqlite(_, u) | Db::Pg(_, u) => u,
        }
    }

    async fn migrate_to(&self, version: i64) {
        match self {
            Db::Sqlite(pool, _) => capped(sqlite_migrator(), version).run(pool).await.unwrap(),
            Db::Pg(pool, _) => capped(pg_migrator(), version).run(pool).await.unwrap(),
        }
    }

    async fn close(self) {
        match self {
            Db::Sqlite(pool, _) => pool.close().await,
            Db::Pg(pool, _) => pool.close().await,
        }
    }

    /// Rows per table (migration bookkeeping excluded).
    async fn counts(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        match self {
            Db::Sqlite(pool, _) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for name in names {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM \"{name}\""
                    )))
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    out.insert(name, n);
                }
            }
            Db::Pg(pool, _) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = 'public' \
                     AND tablename <> '_sqlx_migrations'",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for name in names {
                    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM \"{name}\""
                    )))
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    out.insert(name, n);
                }
            }
        }
        out
    }
}

/// Loads a committed dump into an empty database.
async fn load_fixture(backend: &str, dir: &Path) -> Db {
    let db = Db::new(backend, dir).await;
    match &db {
        Db::Sqlite(pool, _) => {
            let dump = std::fs::read_to_string(fixtures().join("v0006-sqlite.sql")).unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
                .execute(pool)
                .await
                .unwrap();
        }
        Db::Pg(_, url) => {
            // pg_dump's output is psql's input (it carries psql meta-commands).
            let out = std::process::Command::new("psql")
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-d", url, "-f"])
                .arg(fixtures().join("v0006-postgres.sql"))
                .output()
                .expect("psql (postgresql-client) is needed to load the fixture");
            assert!(
                out.status.success(),
                "psql: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    db
}

async fn store_for(url: &str) -> Arc<dyn Store> {
    storage::connect(url, ManualClock::new(NOW) as Arc<dyn Clock>)
        .await
        .unwrap()
}

/// Writes one of everything through the store (at the fixture's schema).
async fn seed(store: &dyn Store, ring: &Keyring) {
    let cluster = store
        .insert_cluster(&ClusterInput {
            name: "lab".into(),
            url: "https://pve1.example:8006".into(),
            token_id: "root@pam!ctforge".into(),
            token_secret_sealed: Some(ring.seal(CLUSTER_TOKEN).unwrap()),
            fingerprint: Some("AB:CD".into()),
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password_sealed: Some(ring.seal(CLUSTER_SSH).unwrap()),
            ssh_key_sealed: None,
            ssh_host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixture".into()),
            is_default: true,
        })
        .await
        .unwrap();
    store
        .set_cluster_nodes(cluster, &[("pve1".into(), "10.0.0.1".into())])
        .await
        .unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    ctforge::templates::discover_roots(store, &[root])
        .await
        .unwrap();
    let template = store.get_template_by_name("webapp").await.unwrap();
    let bucket = store.create_bucket("base", "basics").await.unwrap();
    store
        .add_bucket_packages(bucket, &[("curl".into(), "apt".into(), None)])
        .await
        .unwrap();
    let (ct, job) = store
        .create_container_with_job(
            &NewContainer {
                cluster_id: cluster,
                node: "pve1".into(),
                vmid: 200,
                hostname: "web1".into(),
                template_id: Some(template.row.id),
                status: RecordStatus::Creating,
                spec_json: r#"{"hostname":"web1"}"#.into(),
                root_password_sealed: Some(ring.seal(ROOT_PASSWORD).unwrap()),
                created_by: "root@pam".into(),
            },
            &NewJob {
                kind: "create_container".into(),
                container_id: None,
                node: Some("pve1".into()),
                payload_json: r#"{"fixture":true}"#.into(),
                created_by: "root@pam".into(),
            },
        )
        .await
        .unwrap();
    let claimed = store.claim_job("seed", 60_000, 4).await.unwrap().unwrap();
    assert_eq!(claimed.id, job);
    for step in ["create", "start"] {
        store.set_job_step(job, "seed", step).await.unwrap();
        store
            .append_job_events(job, "log", Some(step), &[format!("{step} done")])
            .await
            .unwrap();
        store.complete_job_step(job, "seed", step).await.unwrap();
    }
    store
        .set_job_result(job, "seed", r#"{"ip":"10.0.0.50"}"#)
        .await
        .unwrap();
    store
        .finish_job(job, JobState::Succeeded, None)
        .await
        .unwrap();
    store
        .update_container_status(ct, RecordStatus::Ready, Some("10.0.0.50"))
        .await
        .unwrap();
    store
        .replace_services(
            ct,
            &[ContainerService {
                unit: "nginx.service".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                enabled: true,
                port: Some(80),
                url: Some("http://10.0.0.50/".into()),
                updated_at: NOW,
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    store
        .put_credential(ct, "admin-password", &ring.seal(CREDENTIAL).unwrap())
        .await
        .unwrap();
    store
        .add_container_event(ct, "created", "web1 is ready", "root@pam", "{}")
        .await
        .unwrap();
    // A failed job that was retried, and one still queued.
    let failed = store
        .enqueue_job(&NewJob {
            kind: "bulk_action".into(),
            container_id: Some(ct),
            node: Some("pve1".into()),
            payload_json: r#"{"action":"stop"}"#.into(),
            created_by: "root@pam".into(),
        })
        .await
        .unwrap();
    store.claim_job("seed", 60_000, 4).await.unwrap().unwrap();
    store.set_job_step(failed, "seed", "act").await.unwrap();
    store
        .finish_job(failed, JobState::Failed, Some("node unreachable"))
        .await
        .unwrap();
    store
        .append_job_event(failed, "retry", None, r#"{"by":"root@pam"}"#)
        .await
        .unwrap();
    store
        .enqueue_job(&NewJob {
            kind: "bulk_action".into(),
            container_id: Some(ct),
            node: Some("pve1".into()),
            payload_json: r#"{"action":"start"}"#.into(),
            created_by: "alice@pve".into(),
        })
        .await
        .unwrap();
    store
        .put_session(&SessionRow {
            id_hash: ctforge::auth::session::hash_token(SESSION),
            username: "root@pam".into(),
            data_sealed: ring.seal(r#"{"ticket":"PVE:root@pam:FIXTURE"}"#).unwrap(),
            csrf_token: "csrf-fixture".into(),
            expires_at: FAR,
            created_at: NOW,
        })
        .await
        .unwrap();
    let token = store
        .create_api_token(
            "root@pam",
            "automation",
            &ctforge::auth::session::hash_token(TOKEN),
        )
        .await
        .unwrap();
    store.set_api_token_cluster(token, cluster).await.unwrap();
    store
        .insert_role_grant("alice@pve", cluster, "editor", "root@pam@lab")
        .await
        .unwrap();
    store
        .add_audit(&NewAudit {
            actor: "root@pam".into(),
            action: "container.create".into(),
            target: "lab:200".into(),
            remote_addr: "127.0.0.1".into(),
            outcome: "ok".into(),
            detail_json: "{}".into(),
        })
        .await
        .unwrap();
    store.try_lock("ct:1:200", "seed", 60_000).await.unwrap();
    store.record_key(ring.active_key_id()).await.unwrap();
    store
        .put_wizard_draft(
            &ctforge::auth::session::hash_token(DRAFT),
            "root@pam",
            &ring.seal(DRAFT_SECRET).unwrap(),
            FAR,
        )
        .await
        .unwrap();
}

/// Everything `seed` wrote reads back through this build's store.
async fn check(store: &dyn Store, ring: &Keyring) {
    let cluster = store.get_cluster_by_name("lab").await.unwrap();
    let open = |v: &Option<String>| ring.open(v.as_deref().unwrap()).unwrap();
    assert_eq!(open(&cluster.token_secret_sealed).expose(), CLUSTER_TOKEN);
    assert_eq!(open(&cluster.ssh_password_sealed).expose(), CLUSTER_SSH);
    assert_eq!(store.list_cluster_nodes(cluster.id).await.unwrap().len(), 1);
    let template = store.get_template_by_name("webapp").await.unwrap();
    assert!(!template.scripts.is_empty(), "template scripts kept");
    assert!(
        store
            .list_buckets()
            .await
            .unwrap()
            .iter()
            .any(|b| b.name == "base")
    );
    let ct = store.get_container_by_vmid(cluster.id, 200).await.unwrap();
    assert_eq!(ct.status, "ready");
    assert_eq!(ct.ip.as_deref(), Some("10.0.0.50"));
    assert_eq!(
        ring.open(ct.root_password_sealed.as_deref().unwrap())
            .unwrap()
            .expose(),
        ROOT_PASSWORD
    );
    let creds = store.list_credentials(ct.id).await.unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(
        ring.open(&creds[0].value_sealed).unwrap().expose(),
        CREDENTIAL
    );
    assert_eq!(store.list_services(ct.id).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_container_events(ct.id, None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let jobs = store.list_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let create = jobs.iter().find(|j| j.kind == "create_container").unwrap();
    assert_eq!(create.state, "succeeded");
    assert_eq!(create.result_json.as_deref(), Some(r#"{"ip":"10.0.0.50"}"#));
    let events = store.job_events_after(create.id, 0, 100).await.unwrap();
    assert!(
        events.iter().any(|e| e.data.contains("start done")),
        "{events:?}"
    );
    let failed = jobs.iter().find(|j| j.state == "failed").unwrap();
    assert_eq!(failed.error.as_deref(), Some("node unreachable"));
    assert_eq!(
        store.job_retry_counts(0).await.unwrap(),
        vec![(failed.id, 1)]
    );
    assert!(jobs.iter().any(|j| j.state == "queued"));
    assert!(store.latest_container_job(ct.id).await.unwrap().is_some());
    let token = store
        .use_api_token(&ctforge::auth::session::hash_token(TOKEN))
        .await
        .expect("the API token still authenticates");
    assert_eq!(token.username, "root@pam");
    let session = store
        .get_session(&ctforge::auth::session::hash_token(SESSION))
        .await
        .expect("the session is still valid");
    assert!(ring.open(&session.data_sealed).is_ok());
    assert_eq!(
        store.roles_of("alice@pve", cluster.id).await.unwrap(),
        vec!["editor".to_owned()]
    );
    assert!(
        store
            .list_audit(&AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .any(|a| a.action == "container.create" && a.target == "lab:200")
    );
    let draft = store
        .get_wizard_draft(&ctforge::auth::session::hash_token(DRAFT), "root@pam")
        .await
        .unwrap();
    assert_eq!(ring.open(&draft).unwrap().expose(), DRAFT_SECRET);
    let sealed = store.list_sealed().await.unwrap();
    assert_eq!(sealed.len(), 6, "{sealed:?}");
    for value in &sealed {
        assert!(
            ring.open(&value.value).is_ok(),
            "{}.{} row {} opens",
            value.table,
            value.column,
            value.key
        );
    }
    assert!(
        store
            .list_keys()
            .await
            .unwrap()
            .iter()
            .any(|(id, _, _)| id == ring.active_key_id())
    );
}

/// `ctforge migrate` of this build on the database at `url`.
fn run_new_binary(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ctforge"))
        .args(["migrate", "--database-url", url, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctforge migrate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn upgrade_keeps_everything(backend: &str) {
    ctforge::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = load_fixture(backend, dir.path()).await;
    let before = db.counts().await;
    assert!(
        before.values().all(|n| *n > 0),
        "the fixture has a row in every table of schema {FIXTURE_SCHEMA}: {before:?}"
    );
    let ring = keyring();

    // Each newer migration alone, in order: nothing is lost at any step.
    let latest = storage::latest_migration(storage::backend_of(db.url()));
    for version in (FIXTURE_SCHEMA + 1)..=latest {
        db.migrate_to(version).await;
        let now = db.counts().await;
        for (table, n) in &before {
            assert_eq!(
                now.get(table),
                Some(n),
                "rows of {table} after migration {version}"
            );
        }
    }
    let url = db.url().to_owned();
    db.close().await;

    // Then the new binary itself, as an admin upgrades.
    run_new_binary(&url);
    let store = store_for(&url).await;
    store.ready().await.expect("every migration applied");
    check(store.as_ref(), &ring).await;
}

#[tokio::test]
async fn upgrade_from_the_previous_release_keeps_every_record_on_sqlite() {
    upgrade_keeps_everything("sqlite").await;
}

#[tokio::test]
async fn upgrade_from_the_previous_release_keeps_every_record_on_postgres() {
    upgrade_keeps_everything("postgres").await;
}

/// Migrations up to the fixture's, one at a time from an empty database.
#[tokio::test]
async fn every_migration_applies_on_the_one_before() {
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(backend, dir.path()).await;
        let latest = storage::latest_migration(storage::backend_of(db.url()));
        for version in 1..=latest {
            db.migrate_to(version).await;
        }
        db.close().await;
    }
}

/// Writes `tests/fixtures/upgrade/v<schema>-{sqlite,postgres}.sql` (run by
/// `scripts/make-upgrade-fixtures`; needs `sqlite3` and `pg_dump`).
#[tokio::test]
#[ignore = "writes the committed upgrade fixtures: scripts/make-upgrade-fixtures"]
async fn generate_upgrade_fixtures() {
    ctforge::install_crypto_provider();
    let out = fixtures();
    std::fs::create_dir_all(&out).unwrap();
    if !out.join("secret.key").exists() {
        Keyring::load_or_create(&out).unwrap();
    }
    let ring = keyring();
    for backend in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(backend, dir.path()).await;
        db.migrate_to(FIXTURE_SCHEMA).await;
        let url = db.url().to_owned();
        let store = store_for(&url).await;
        seed(store.as_ref(), &ring).await;
        check(store.as_ref(), &ring).await;
        drop(store);
        db.close().await;
        let (target, output) = if backend == "sqlite" {
            let path = url.trim_start_matches("sqlite://").to_owned();
            (
                "v0006-sqlite.sql",
                std::process::Command::new("sqlite3")
                    .arg(path)
                    .arg(".dump")
                    .output()
                    .unwrap(),
            )
        } else {
            (
                "v0006-postgres.sql",
                std::process::Command::new("pg_dump")
                    .args([
                        "--no-owner",
                        "--no-privileges",
                        "--inserts",
                        "--dbname",
                        &url,
                    ])
                    .output()
                    .unwrap(),
            )
        };
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(out.join(target), &output.stdout).unwrap();
    }
}
