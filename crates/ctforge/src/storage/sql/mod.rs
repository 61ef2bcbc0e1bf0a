//! The one SQL implementation of [`Store`], instantiated for SQLite and PostgreSQL: connection
//! and pool setup, the row helpers, and `impl_store!`, which expands each aggregate's half (one
//! file per aggregate: `clusters`, `templates`, `buckets`, `containers`, `jobs`, `access`,
//! `audit`, `roles`, `presets`, `locks`, `keys`) for a backend.
//!
//! Queries are portable (`$n` placeholders, `RETURNING`, `ON CONFLICT`); the few that are not
//! are passed to the macro per backend. Invariant: timestamps come from the injected [`Clock`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::model::*;
use super::{
    AccessStore, AuditStore, Backend, BucketStore, ClusterStore, ContainerStore, ImageStore,
    JobStore, KeyStore, LibraryStore, LockStore, NodeSshStore, NotificationStore, PresetStore,
    RoleStore, Store, StoreError, StoreResult, TemplateStore,
};
use crate::clock::Clock;
use crate::status::{JobState, RecordStatus};

fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        other => StoreError::Database(other),
    }
}

fn affected(rows: u64) -> StoreResult<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// SQLite-backed store (the embedded default).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite file with WAL and foreign keys on.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        if path != ":memory:" && !path.is_empty() {
            private_file(std::path::Path::new(path))
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(map_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // A checkpoint that resets the WAL also shrinks it back to this size, so a burst of
            // writes does not leave a huge file behind.
            .pragma("journal_size_limit", SQLITE_JOURNAL_SIZE_LIMIT.to_string())
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, clock })
    }
}

/// How long a statement waits for another connection's lock before "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of WAL SQLite keeps after a checkpoint (`PRAGMA journal_size_limit`).
const SQLITE_JOURNAL_SIZE_LIMIT: u64 = 16 << 20;

/// Creates the database file readable by its owner only (0600) before SQLite opens it; SQLite
/// gives the WAL and shared-memory files the database file's mode. An existing file is
/// tightened to 0600 as well: it holds sessions and sealed secrets.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for suffix in ["", "-wal", "-shm"] {
                    let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
                    if let Ok(meta) = std::fs::metadata(&file)
                        && meta.permissions().mode() & 0o077 != 0
                    {
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// WAL frames (pages) past which [`SqliteStore::compact_journal`] truncates the WAL: SQLite's
/// own auto-checkpoint size (about 4 MB with 4 KiB pages).
const SQLITE_TRUNCATE_AT_FRAMES: i64 = 1000;

impl SqliteStore {
    /// Checkpoints the WAL into the database without blocking anyone (`PASSIVE`); when the WAL
    /// has grown past [`SQLITE_TRUNCATE_AT_FRAMES`], checkpoints again with `TRUNCATE`, which
    /// briefly holds writers back and leaves a zero-byte WAL. (Readers still on an older
    /// snapshot make SQLite checkpoint what it can; the next call finishes it.)
    async fn compact_journal(&self) -> StoreResult<()> {
        let (_busy, frames, _checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        if frames >= SQLITE_TRUNCATE_AT_FRAMES {
            // TRUNCATE holds the writer lock while it waits for readers, through the busy
            // handler: with the pool's 10 s every writer of the database waited behind a
            // long reader and then failed "database is locked". Without waiting, it either
            // truncates at once or is tried again after the next job.
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            sqlx::query("PRAGMA busy_timeout = 0")
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            let truncated = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await;
            let restored = sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {}",
                SQLITE_BUSY_TIMEOUT.as_millis()
            )))
            .execute(&mut *conn)
            .await;
            if restored.is_err() {
                // Never hand a connection without its busy timeout back to the pool.
                let _ = conn.detach();
            }
            truncated.map_err(map_err)?;
        }
        Ok(())
    }
}

impl SqliteStore {
    /// [`TemplateStore::template_page`]: in-process queries cost no round trip, so the
    /// template's parts are read as for any other use, together with the count.
    async fn template_page_impl(&self, name: &str) -> StoreResult<(TemplateRecord, i64)> {
        tokio::try_join!(
            self.load_template_named(name),
            self.count_template_containers_named(name)
        )
    }

    /// See [`PgStore::relax_commit`]: SQLite's WAL with `synchronous = NORMAL` already commits
    /// without waiting for the disk.
    #[allow(clippy::unused_async)]
    async fn relax_commit(_tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> StoreResult<()> {
        Ok(())
    }
}

/// [`TemplateStore::template_page`] on PostgreSQL: the row, its parts as JSON arrays (in the
/// orders `load_template_named` reads them) and the count, in one statement. Five concurrent
/// queries cost five connections' worth of protocol on both sides for a page that is mostly
/// database time.
const PG_TEMPLATE_PAGE_SQL: &str = "SELECT t.*, \
    (SELECT COUNT(*) FROM containers c WHERE c.template_id = t.id) AS page_used, \
    COALESCE((SELECT json_agg(json_build_object('position', s.position, 'name', s.name, \
        'content', s.content, 'enabled', s.enabled) ORDER BY s.position, s.name) \
        FROM template_scripts s WHERE s.template_id = t.id), '[]'::json)::text AS page_scripts, \
    COALESCE((SELECT json_agg(json_build_object('name', f.name, 'target_dir', f.target_dir, \
        'policy', f.policy, 'content', f.content) ORDER BY f.name) \
        FROM template_files f WHERE f.template_id = t.id), '[]'::json)::text AS page_files, \
    COALESCE((SELECT json_agg(json_build_object('bucket', p.bucket, 'manager', p.manager, \
        'name', p.name, 'version', p.version, 'position', p.position) \
        ORDER BY p.bucket, p.manager, p.position) \
        FROM template_packages p WHERE p.template_id = t.id), '[]'::json)::text AS page_packages \
    FROM templates t WHERE t.name = $1";

impl PgStore {
    /// [`TemplateStore::template_page`] in one statement ([`PG_TEMPLATE_PAGE_SQL`]).
    async fn template_page_impl(&self, name: &str) -> StoreResult<(TemplateRecord, i64)> {
        use sqlx::{FromRow, Row};
        let found = sqlx::query(PG_TEMPLATE_PAGE_SQL)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        let row = TemplateRow::from_row(&found).map_err(map_err)?;
        let used: i64 = found.try_get("page_used").map_err(map_err)?;
        let part = |column: &str| -> StoreResult<String> { found.try_get(column).map_err(map_err) };
        let decode = |what: &str, e: serde_json::Error| {
            StoreError::Database(sqlx::Error::Decode(
                format!("template {name}: cannot read its {what}: {e}").into(),
            ))
        };
        let scripts =
            serde_json::from_str(&part("page_scripts")?).map_err(|e| decode("scripts", e))?;
        let files = serde_json::from_str(&part("page_files")?).map_err(|e| decode("files", e))?;
        let packages =
            serde_json::from_str(&part("page_packages")?).map_err(|e| decode("packages", e))?;
        Ok((
            TemplateRecord {
                row,
                scripts,
                files,
                packages,
            },
            used,
        ))
    }

    /// Lets the transaction commit without waiting for its WAL to reach the disk
    /// (`synchronous_commit = off` for it alone). For a job's progress only — log lines, a
    /// step begun or completed — whose loss in a crash of the database server (not of
    /// ctforge: the server still writes it out within `wal_writer_delay`) is a worker crash
    /// mid-step, which jobs resume from anyway, and the next durable commit (any other write,
    /// the job finished) flushes everything before it. A durable commit waits for an fsync
    /// (about 3 ms on these machines), which was most of a fast job's time.
    async fn relax_commit(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> StoreResult<()> {
        sqlx::query("SET LOCAL synchronous_commit TO OFF")
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// PostgreSQL manages its own write-ahead log.
    #[allow(clippy::unused_async)]
    async fn compact_journal(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// PostgreSQL-backed store (the scale-out profile).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgStore {
    /// Connects to PostgreSQL.
    ///
    /// sqlx pings a pooled connection both when it is released and, by default, again before
    /// handing it out: on a server database that second ping is one more round trip in front
    /// of every query (half of a page's database time). A connection released moments ago was
    /// just pinged, so only one idle for longer than [`PG_PING_IDLE_AFTER`] — which the server
    /// or the network may have dropped meanwhile — is pinged before use.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        use sqlx::Connection as _;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PG_PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, clock })
    }
}

/// How long a pooled PostgreSQL connection may sit idle and still be used without a ping.
const PG_PING_IDLE_AFTER: Duration = Duration::from_secs(5);

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The newest migration version this binary carries for `backend`.
pub(crate) fn latest_migration(backend: Backend) -> i64 {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &PG_MIGRATOR,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Every template with its part counts: one grouped pass per part table joined to the
/// templates (rather than three correlated sub-queries per template).
const TEMPLATE_SUMMARY_SQL: &str = "SELECT t.*, \
    COALESCE(s.n, 0) AS script_count, COALESCE(f.n, 0) AS file_count, COALESCE(p.n, 0) AS package_count \
    FROM templates t \
    LEFT JOIN (SELECT template_id, COUNT(*) AS n FROM template_scripts GROUP BY template_id) s ON s.template_id = t.id \
    LEFT JOIN (SELECT template_id, COUNT(*) AS n FROM template_files GROUP BY template_id) f ON f.template_id = t.id \
    LEFT JOIN (SELECT template_id, COUNT(*) AS n FROM template_packages GROUP BY template_id) p ON p.template_id = t.id \
    ORDER BY t.name";

/// Every sealed column: (table, column, primary key, SELECT, UPDATE).
const SEALED_COLUMNS: &[(&str, &str, &str, &str)] = &[
    (
        "clusters",
        "token_secret_sealed",
        "SELECT CAST(id AS TEXT), token_secret_sealed FROM clusters WHERE token_secret_sealed IS NOT NULL",
        "UPDATE clusters SET token_secret_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
    (
        "clusters",
        "ssh_password_sealed",
        "SELECT CAST(id AS TEXT), ssh_password_sealed FROM clusters WHERE ssh_password_sealed IS NOT NULL",
        "UPDATE clusters SET ssh_password_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
    (
        "clusters",
        "ssh_key_sealed",
        "SELECT CAST(id AS TEXT), ssh_key_sealed FROM clusters WHERE ssh_key_sealed IS NOT NULL",
        "UPDATE clusters SET ssh_key_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
    (
        "containers",
        "root_password_sealed",
        "SELECT CAST(id AS TEXT), root_password_sealed FROM containers WHERE root_password_sealed IS NOT NULL",
        "UPDATE containers SET root_password_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
    (
        "guest_ssh_keys",
        "key_sealed",
        "SELECT CAST(container_id AS TEXT), key_sealed FROM guest_ssh_keys",
        "UPDATE guest_ssh_keys SET key_sealed = $1 WHERE CAST(container_id AS TEXT) = $2",
    ),
    (
        "container_credentials",
        "value_sealed",
        "SELECT CAST(id AS TEXT), value_sealed FROM container_credentials",
        "UPDATE container_credentials SET value_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
    (
        "git_source_keys",
        "deploy_key_sealed",
        "SELECT url, deploy_key_sealed FROM git_source_keys",
        "UPDATE git_source_keys SET deploy_key_sealed = $1 WHERE url = $2",
    ),
    (
        "sessions",
        "data_sealed",
        "SELECT id_hash, data_sealed FROM sessions",
        "UPDATE sessions SET data_sealed = $1 WHERE id_hash = $2",
    ),
    (
        "wizard_drafts",
        "secret_sealed",
        "SELECT id_hash, secret_sealed FROM wizard_drafts",
        "UPDATE wizard_drafts SET secret_sealed = $1 WHERE id_hash = $2",
    ),
    (
        "notification_targets",
        "secret_sealed",
        "SELECT CAST(id AS TEXT), secret_sealed FROM notification_targets WHERE secret_sealed IS NOT NULL",
        "UPDATE notification_targets SET secret_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
];

mod signals;
pub use signals::JobSignals;

#[macro_use]
mod clusters;
#[macro_use]
mod templates;
#[macro_use]
mod buckets;
#[macro_use]
mod containers;
#[macro_use]
mod jobs;
#[macro_use]
mod access;
#[macro_use]
mod audit;
#[macro_use]
mod roles;
#[macro_use]
mod presets;
#[macro_use]
mod locks;
#[macro_use]
mod keys;
#[macro_use]
mod notifications;
#[macro_use]
mod library;
#[macro_use]
mod node_ssh;
#[macro_use]
mod images;

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr, $migrator:expr, $claim_lock:expr, $claim_sql:expr) => {
        impl $store {
            fn now(&self) -> i64 {
                self.clock.now_ms()
            }

            async fn load_template(&self, row: TemplateRow) -> StoreResult<TemplateRecord> {
                // The three reads are independent: concurrently, a server database (PostgreSQL)
                // costs one round trip for them instead of three.
                let scripts = sqlx::query_as::<$db, TemplateScript>(
                    "SELECT position, name, content, enabled FROM template_scripts WHERE template_id = $1 ORDER BY position, name",
                )
                .bind(row.id)
                .fetch_all(&self.pool);
                let files = sqlx::query_as::<$db, TemplateFile>(
                    "SELECT name, target_dir, policy, content FROM template_files WHERE template_id = $1 ORDER BY name",
                )
                .bind(row.id)
                .fetch_all(&self.pool);
                let packages = sqlx::query_as::<$db, TemplatePackage>(
                    "SELECT bucket, manager, name, version, position FROM template_packages WHERE template_id = $1 ORDER BY bucket, manager, position",
                )
                .bind(row.id)
                .fetch_all(&self.pool);
                let (scripts, files, packages) =
                    tokio::try_join!(scripts, files, packages).map_err(map_err)?;
                Ok(TemplateRecord { row, scripts, files, packages })
            }

            /// [`Self::load_template`] by name, the row read together with its parts (they
            /// find their template by name too): one round trip instead of two.
            async fn load_template_named(&self, name: &str) -> StoreResult<TemplateRecord> {
                let row = sqlx::query_as::<$db, TemplateRow>("SELECT * FROM templates WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool);
                let scripts = sqlx::query_as::<$db, TemplateScript>(
                    "SELECT position, name, content, enabled FROM template_scripts WHERE template_id = (SELECT id FROM templates WHERE name = $1) ORDER BY position, name",
                )
                .bind(name)
                .fetch_all(&self.pool);
                let files = sqlx::query_as::<$db, TemplateFile>(
                    "SELECT name, target_dir, policy, content FROM template_files WHERE template_id = (SELECT id FROM templates WHERE name = $1) ORDER BY name",
                )
                .bind(name)
                .fetch_all(&self.pool);
                let packages = sqlx::query_as::<$db, TemplatePackage>(
                    "SELECT bucket, manager, name, version, position FROM template_packages WHERE template_id = (SELECT id FROM templates WHERE name = $1) ORDER BY bucket, manager, position",
                )
                .bind(name)
                .fetch_all(&self.pool);
                let (row, scripts, files, packages) =
                    tokio::try_join!(row, scripts, files, packages).map_err(map_err)?;
                Ok(TemplateRecord { row, scripts, files, packages })
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }
            async fn migrate(&self) -> StoreResult<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }
            async fn compact(&self) -> StoreResult<()> {
                self.purge_expired_locks().await?;
                self.compact_journal().await
            }
            async fn signal_jobs(&self) -> StoreResult<()> {
                self.signal_jobs_impl().await
            }
            async fn job_signals(&self) -> StoreResult<Option<JobSignals>> {
                self.job_signals_impl().await
            }
            async fn ready(&self) -> StoreResult<()> {
                let applied: i64 = sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
                let expected = i64::try_from($migrator.iter().count()).unwrap_or(i64::MAX);
                if applied < expected {
                    return Err(StoreError::Migrate(sqlx::migrate::MigrateError::VersionMissing(applied + 1)));
                }
                Ok(())
            }
        }

        impl_clusters_store!($store, $db, $claim_lock, $claim_sql);
        impl_templates_store!($store, $db, $claim_lock, $claim_sql);
        impl_buckets_store!($store, $db, $claim_lock, $claim_sql);
        impl_containers_store!($store, $db, $claim_lock, $claim_sql);
        impl_jobs_store!($store, $db, $claim_lock, $claim_sql);
        impl_access_store!($store, $db, $claim_lock, $claim_sql);
        impl_audit_store!($store, $db, $claim_lock, $claim_sql);
        impl_roles_store!($store, $db, $claim_lock, $claim_sql);
        impl_notifications_store!($store, $db, $claim_lock, $claim_sql);
        impl_presets_store!($store, $db, $claim_lock, $claim_sql);
        impl_locks_store!($store, $db, $claim_lock, $claim_sql);
        impl_keys_store!($store, $db, $claim_lock, $claim_sql);
        impl_library_store!($store, $db, $claim_lock, $claim_sql);
        impl_node_ssh_store!($store, $db);
        impl_images_store!($store, $db);
    };
}

impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite,
    SQLITE_MIGRATOR,
    "SELECT 1",
    // SQLite serialises writers, so one UPDATE … RETURNING is an atomic claim.
    "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires = $2, attempts = attempts + 1, \
     started_at = COALESCE(started_at, $3) \
     WHERE id = (SELECT j.id FROM jobs j WHERE (j.state = 'queued' OR (j.state = 'running' AND j.lease_expires < $3)) \
       AND (j.node IS NULL OR (SELECT COUNT(*) FROM jobs r WHERE r.node = j.node AND r.id <> j.id AND r.state = 'running' AND r.lease_expires >= $3) < $4) \
       ORDER BY j.id LIMIT 1) \
     RETURNING *"
);

impl_store!(
    PgStore,
    sqlx::Postgres,
    Backend::Postgres,
    PG_MIGRATOR,
    "SELECT pg_advisory_xact_lock(7274727)",
    // SKIP LOCKED lets any number of workers claim concurrently without blocking each other.
    "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires = $2, attempts = attempts + 1, \
     started_at = COALESCE(started_at, $3) \
     WHERE id = (SELECT j.id FROM jobs j WHERE (j.state = 'queued' OR (j.state = 'running' AND j.lease_expires < $3)) \
       AND (j.node IS NULL OR (SELECT COUNT(*) FROM jobs r WHERE r.node = j.node AND r.id <> j.id AND r.state = 'running' AND r.lease_expires >= $3) < $4) \
       ORDER BY j.id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING *"
);
