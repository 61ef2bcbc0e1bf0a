//! The one SQL implementation of [`Store`], instantiated for SQLite and PostgreSQL.
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
use super::{Backend, Store, StoreError, StoreResult};
use crate::clock::Clock;

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
        let options = SqliteConnectOptions::from_str(url)
            .map_err(map_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, clock })
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
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, clock })
    }
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const TEMPLATE_SUMMARY_SQL: &str = "SELECT t.*, \
    (SELECT COUNT(*) FROM template_scripts s WHERE s.template_id = t.id) AS script_count, \
    (SELECT COUNT(*) FROM template_files f WHERE f.template_id = t.id) AS file_count, \
    (SELECT COUNT(*) FROM template_packages p WHERE p.template_id = t.id) AS package_count \
    FROM templates t ORDER BY t.name";

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
        "container_credentials",
        "value_sealed",
        "SELECT CAST(id AS TEXT), value_sealed FROM container_credentials",
        "UPDATE container_credentials SET value_sealed = $1 WHERE CAST(id AS TEXT) = $2",
    ),
    (
        "sessions",
        "data_sealed",
        "SELECT id_hash, data_sealed FROM sessions",
        "UPDATE sessions SET data_sealed = $1 WHERE id_hash = $2",
    ),
];

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:expr, $migrator:expr, $claim_lock:expr, $claim_sql:expr) => {
        impl $store {
            fn now(&self) -> i64 {
                self.clock.now_ms()
            }

            async fn load_template(&self, row: TemplateRow) -> StoreResult<TemplateRecord> {
                let scripts = sqlx::query_as::<$db, TemplateScript>(
                    "SELECT position, name, content, enabled FROM template_scripts WHERE template_id = $1 ORDER BY position, name",
                )
                .bind(row.id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let files = sqlx::query_as::<$db, TemplateFile>(
                    "SELECT name, target_dir, policy, content FROM template_files WHERE template_id = $1 ORDER BY name",
                )
                .bind(row.id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let packages = sqlx::query_as::<$db, TemplatePackage>(
                    "SELECT bucket, manager, name, version, position FROM template_packages WHERE template_id = $1 ORDER BY bucket, manager, position",
                )
                .bind(row.id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
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

            async fn insert_cluster(&self, c: &ClusterInput) -> StoreResult<i64> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if c.is_default {
                    sqlx::query::<$db>("UPDATE clusters SET is_default = FALSE").execute(&mut *tx).await.map_err(map_err)?;
                }
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO clusters (name, url, token_id, token_secret_sealed, fingerprint, ssh_user, ssh_port, \
                     ssh_password_sealed, ssh_key_sealed, ssh_host_key, is_default, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
                )
                .bind(&c.name)
                .bind(&c.url)
                .bind(&c.token_id)
                .bind(&c.token_secret_sealed)
                .bind(&c.fingerprint)
                .bind(&c.ssh_user)
                .bind(c.ssh_port)
                .bind(&c.ssh_password_sealed)
                .bind(&c.ssh_key_sealed)
                .bind(&c.ssh_host_key)
                .bind(c.is_default)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(id)
            }

            async fn update_cluster(&self, id: i64, c: &ClusterInput) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if c.is_default {
                    sqlx::query::<$db>("UPDATE clusters SET is_default = FALSE").execute(&mut *tx).await.map_err(map_err)?;
                }
                let rows = sqlx::query::<$db>(
                    "UPDATE clusters SET name = $1, url = $2, token_id = $3, token_secret_sealed = $4, fingerprint = $5, \
                     ssh_user = $6, ssh_port = $7, ssh_password_sealed = $8, ssh_key_sealed = $9, ssh_host_key = $10, \
                     is_default = $11, updated_at = $12 WHERE id = $13",
                )
                .bind(&c.name)
                .bind(&c.url)
                .bind(&c.token_id)
                .bind(&c.token_secret_sealed)
                .bind(&c.fingerprint)
                .bind(&c.ssh_user)
                .bind(c.ssh_port)
                .bind(&c.ssh_password_sealed)
                .bind(&c.ssh_key_sealed)
                .bind(&c.ssh_host_key)
                .bind(c.is_default)
                .bind(self.now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_cluster(&self, id: i64) -> StoreResult<Cluster> {
                sqlx::query_as::<$db, Cluster>("SELECT * FROM clusters WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn get_cluster_by_name(&self, name: &str) -> StoreResult<Cluster> {
                sqlx::query_as::<$db, Cluster>("SELECT * FROM clusters WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn list_clusters(&self) -> StoreResult<Vec<Cluster>> {
                sqlx::query_as::<$db, Cluster>("SELECT * FROM clusters ORDER BY is_default DESC, name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn delete_cluster(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM clusters WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn set_cluster_nodes(&self, cluster_id: i64, nodes: &[(String, String)]) -> StoreResult<()> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query::<$db>("DELETE FROM cluster_nodes WHERE cluster_id = $1")
                    .bind(cluster_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for (name, status) in nodes {
                    sqlx::query::<$db>(
                        "INSERT INTO cluster_nodes (cluster_id, name, status, last_seen) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(cluster_id)
                    .bind(name)
                    .bind(status)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn list_cluster_nodes(&self, cluster_id: i64) -> StoreResult<Vec<ClusterNode>> {
                sqlx::query_as::<$db, ClusterNode>("SELECT * FROM cluster_nodes WHERE cluster_id = $1 ORDER BY name")
                    .bind(cluster_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn upsert_template(&self, record: &TemplateRecord) -> StoreResult<(i64, Option<TemplateRecord>)> {
                let previous = match self.get_template_by_name(&record.row.name).await {
                    Ok(previous) => Some(previous),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                let now = self.now();
                let r = &record.row;
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO templates (name, source, source_path, app, description, tags, config_json, content_hash, diverged, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                     ON CONFLICT (name) DO UPDATE SET source = excluded.source, source_path = excluded.source_path, app = excluded.app, \
                     description = excluded.description, tags = excluded.tags, config_json = excluded.config_json, \
                     content_hash = excluded.content_hash, diverged = excluded.diverged, updated_at = excluded.updated_at \
                     RETURNING id",
                )
                .bind(&r.name)
                .bind(&r.source)
                .bind(&r.source_path)
                .bind(&r.app)
                .bind(&r.description)
                .bind(&r.tags)
                .bind(&r.config_json)
                .bind(&r.content_hash)
                .bind(r.diverged)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                for table in ["template_scripts", "template_files", "template_packages"] {
                    let sql = match table {
                        "template_scripts" => "DELETE FROM template_scripts WHERE template_id = $1",
                        "template_files" => "DELETE FROM template_files WHERE template_id = $1",
                        _ => "DELETE FROM template_packages WHERE template_id = $1",
                    };
                    sqlx::query::<$db>(sql).bind(id).execute(&mut *tx).await.map_err(map_err)?;
                }
                for s in &record.scripts {
                    sqlx::query::<$db>(
                        "INSERT INTO template_scripts (template_id, position, name, content, enabled) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(s.position)
                    .bind(&s.name)
                    .bind(&s.content)
                    .bind(s.enabled)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                for f in &record.files {
                    sqlx::query::<$db>(
                        "INSERT INTO template_files (template_id, name, target_dir, policy, content) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(&f.name)
                    .bind(&f.target_dir)
                    .bind(&f.policy)
                    .bind(&f.content)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                for p in &record.packages {
                    sqlx::query::<$db>(
                        "INSERT INTO template_packages (template_id, bucket, manager, name, version, position) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(id)
                    .bind(&p.bucket)
                    .bind(&p.manager)
                    .bind(&p.name)
                    .bind(&p.version)
                    .bind(p.position)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok((id, previous))
            }

            async fn get_template(&self, id: i64) -> StoreResult<TemplateRecord> {
                let row = sqlx::query_as::<$db, TemplateRow>("SELECT * FROM templates WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                self.load_template(row).await
            }

            async fn get_template_by_name(&self, name: &str) -> StoreResult<TemplateRecord> {
                let row = sqlx::query_as::<$db, TemplateRow>("SELECT * FROM templates WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                self.load_template(row).await
            }

            async fn list_templates(&self) -> StoreResult<Vec<TemplateSummary>> {
                sqlx::query_as::<$db, TemplateSummary>(TEMPLATE_SUMMARY_SQL)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn delete_template(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM templates WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn count_template_containers(&self, id: i64) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM containers WHERE template_id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn create_bucket(&self, name: &str, description: &str) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO buckets (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
                )
                .bind(name)
                .bind(description)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn update_bucket(&self, id: i64, name: &str, description: &str) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE buckets SET name = $1, description = $2, updated_at = $3 WHERE id = $4")
                    .bind(name)
                    .bind(description)
                    .bind(self.now())
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn delete_bucket(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM buckets WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn list_buckets(&self) -> StoreResult<Vec<Bucket>> {
                sqlx::query_as::<$db, Bucket>("SELECT * FROM buckets ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn get_bucket(&self, id: i64) -> StoreResult<Bucket> {
                sqlx::query_as::<$db, Bucket>("SELECT * FROM buckets WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn add_bucket_packages(&self, bucket_id: i64, packages: &[(String, String, Option<String>)]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                for (manager, name, version) in packages {
                    sqlx::query::<$db>(
                        "INSERT INTO bucket_packages (bucket_id, manager, name, version) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (bucket_id, manager, name) DO UPDATE SET version = excluded.version",
                    )
                    .bind(bucket_id)
                    .bind(manager)
                    .bind(name)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                sqlx::query::<$db>("UPDATE buckets SET updated_at = $1 WHERE id = $2")
                    .bind(self.now())
                    .bind(bucket_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn remove_bucket_packages(&self, bucket_id: i64, ids: &[i64]) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let mut removed = 0;
                for id in ids {
                    removed += sqlx::query::<$db>("DELETE FROM bucket_packages WHERE bucket_id = $1 AND id = $2")
                        .bind(bucket_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?
                        .rows_affected();
                }
                tx.commit().await.map_err(map_err)?;
                Ok(removed)
            }

            async fn list_bucket_packages(&self, bucket_id: i64) -> StoreResult<Vec<BucketPackage>> {
                sqlx::query_as::<$db, BucketPackage>(
                    "SELECT * FROM bucket_packages WHERE bucket_id = $1 ORDER BY manager, name",
                )
                .bind(bucket_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn create_container_with_job(&self, c: &NewContainer, job: &NewJob) -> StoreResult<(i64, i64)> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let container_id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO containers (cluster_id, node, vmid, hostname, template_id, status, spec_json, root_password_sealed, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                )
                .bind(c.cluster_id)
                .bind(&c.node)
                .bind(c.vmid)
                .bind(&c.hostname)
                .bind(c.template_id)
                .bind(&c.status)
                .bind(&c.spec_json)
                .bind(&c.root_password_sealed)
                .bind(&c.created_by)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let job_id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO jobs (kind, state, container_id, node, payload_json, created_by, created_at) \
                     VALUES ($1, 'queued', $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&job.kind)
                .bind(container_id)
                .bind(&job.node)
                .bind(&job.payload_json)
                .bind(&job.created_by)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok((container_id, job_id))
            }

            async fn get_container(&self, id: i64) -> StoreResult<Container> {
                sqlx::query_as::<$db, Container>("SELECT * FROM containers WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn get_container_by_vmid(&self, cluster_id: i64, vmid: i64) -> StoreResult<Container> {
                sqlx::query_as::<$db, Container>("SELECT * FROM containers WHERE cluster_id = $1 AND vmid = $2")
                    .bind(cluster_id)
                    .bind(vmid)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn list_containers(&self) -> StoreResult<Vec<Container>> {
                sqlx::query_as::<$db, Container>("SELECT * FROM containers ORDER BY cluster_id, vmid")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn update_container_status(&self, id: i64, status: &str, ip: Option<&str>) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE containers SET status = $1, ip = COALESCE($2, ip), updated_at = $3 WHERE id = $4",
                )
                .bind(status)
                .bind(ip)
                .bind(self.now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }

            async fn delete_container(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM containers WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn replace_services(&self, container_id: i64, services: &[ContainerService]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query::<$db>("DELETE FROM container_services WHERE container_id = $1")
                    .bind(container_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for s in services {
                    sqlx::query::<$db>(
                        "INSERT INTO container_services (container_id, unit, active_state, sub_state, enabled, port, url, updated_at, web_title, web_answered, web_checked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(container_id)
                    .bind(&s.unit)
                    .bind(&s.active_state)
                    .bind(&s.sub_state)
                    .bind(s.enabled)
                    .bind(s.port)
                    .bind(&s.url)
                    .bind(s.updated_at)
                    .bind(&s.web_title)
                    .bind(s.web_answered)
                    .bind(s.web_checked_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn list_services(&self, container_id: i64) -> StoreResult<Vec<ContainerService>> {
                sqlx::query_as::<$db, ContainerService>(
                    "SELECT unit, active_state, sub_state, enabled, port, url, updated_at, web_title, web_answered, web_checked_at FROM container_services WHERE container_id = $1 ORDER BY unit",
                )
                .bind(container_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn put_credential(&self, container_id: i64, name: &str, value_sealed: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO container_credentials (container_id, name, value_sealed, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (container_id, name) DO UPDATE SET value_sealed = excluded.value_sealed, created_at = excluded.created_at",
                )
                .bind(container_id)
                .bind(name)
                .bind(value_sealed)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn list_credentials(&self, container_id: i64) -> StoreResult<Vec<ContainerCredential>> {
                sqlx::query_as::<$db, ContainerCredential>(
                    "SELECT id, name, value_sealed, created_at FROM container_credentials WHERE container_id = $1 ORDER BY name",
                )
                .bind(container_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn add_container_event(&self, container_id: i64, kind: &str, message: &str, actor: &str, data_json: &str) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO container_events (container_id, kind, message, actor, data_json, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(container_id)
                .bind(kind)
                .bind(message)
                .bind(actor)
                .bind(data_json)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn list_container_events(&self, container_id: i64, kind: Option<&str>, before_id: Option<i64>, limit: i64) -> StoreResult<Vec<ContainerEvent>> {
                sqlx::query_as::<$db, ContainerEvent>(
                    "SELECT * FROM container_events WHERE container_id = $1 AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(container_id)
                .bind(kind)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn enqueue_job(&self, job: &NewJob) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO jobs (kind, state, container_id, node, payload_json, created_by, created_at) \
                     VALUES ($1, 'queued', $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&job.kind)
                .bind(job.container_id)
                .bind(&job.node)
                .bind(&job.payload_json)
                .bind(&job.created_by)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn claim_job(&self, owner: &str, lease_ms: i64, per_node_limit: i64) -> StoreResult<Option<Job>> {
                let now = self.now();
                // The per-node limit counts running jobs, which concurrent claimers cannot see
                // in each other's uncommitted rows: claims are serialised per database (an
                // advisory lock on PostgreSQL; SQLite serialises writers anyway).
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query::<$db>($claim_lock).execute(&mut *tx).await.map_err(map_err)?;
                let job = sqlx::query_as::<$db, Job>($claim_sql)
                    .bind(owner)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(per_node_limit)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(job)
            }

            async fn renew_job_lease(&self, job_id: i64, owner: &str, lease_ms: i64) -> StoreResult<bool> {
                let rows = sqlx::query::<$db>(
                    "UPDATE jobs SET lease_expires = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
                )
                .bind(self.now() + lease_ms)
                .bind(job_id)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(rows == 1)
            }

            async fn set_job_step(&self, job_id: i64, owner: &str, step: &str) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE jobs SET current_step = $1 WHERE id = $2 AND lease_owner = $3")
                    .bind(step)
                    .bind(job_id)
                    .bind(owner)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn complete_job_step(&self, job_id: i64, owner: &str, step: &str) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE jobs SET completed_steps = CASE WHEN completed_steps = '' THEN $1 ELSE completed_steps || ',' || $1 END \
                     WHERE id = $2 AND lease_owner = $3",
                )
                .bind(step)
                .bind(job_id)
                .bind(owner)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }

            async fn set_job_result(&self, job_id: i64, owner: &str, result_json: &str) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE jobs SET result_json = $1 WHERE id = $2 AND lease_owner = $3")
                    .bind(result_json)
                    .bind(job_id)
                    .bind(owner)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }

            async fn finish_job(&self, job_id: i64, state: &str, error: Option<&str>) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE jobs SET state = $1, error = $2, finished_at = $3, lease_owner = NULL, lease_expires = NULL \
                     WHERE id = $4 AND state IN ('queued', 'running')",
                )
                .bind(state)
                .bind(error)
                .bind(self.now())
                .bind(job_id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }

            async fn retry_job(&self, job_id: i64, keep_steps: &[String]) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE jobs SET state = 'queued', error = NULL, finished_at = NULL, completed_steps = $1, attempts = 0 \
                     WHERE id = $2 AND state IN ('failed', 'cancelled')",
                )
                .bind(keep_steps.join(","))
                .bind(job_id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }

            async fn get_job(&self, id: i64) -> StoreResult<Job> {
                sqlx::query_as::<$db, Job>("SELECT * FROM jobs WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn list_jobs(&self, limit: i64) -> StoreResult<Vec<Job>> {
                sqlx::query_as::<$db, Job>("SELECT * FROM jobs ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn count_jobs_by_state(&self) -> StoreResult<Vec<(String, i64)>> {
                sqlx::query_as::<$db, (String, i64)>(
                    "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn job_retry_counts(&self, min_job_id: i64) -> StoreResult<Vec<(i64, i64)>> {
                sqlx::query_as::<$db, (i64, i64)>(
                    "SELECT job_id, COUNT(*) FROM job_events WHERE job_id >= $1 AND kind = 'retry' GROUP BY job_id",
                )
                .bind(min_job_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn latest_container_job(&self, container_id: i64) -> StoreResult<Option<i64>> {
                sqlx::query_scalar::<$db, i64>(
                    "SELECT id FROM jobs WHERE container_id = $1 ORDER BY id DESC LIMIT 1",
                )
                .bind(container_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn append_job_event(&self, job_id: i64, kind: &str, step: Option<&str>, data: &str) -> StoreResult<i64> {
                // One statement computes the next sequence number; the UNIQUE (job_id, seq)
                // constraint turns a concurrent writer into a retry instead of a duplicate.
                for _ in 0..5 {
                    let result = sqlx::query_scalar::<$db, i64>(
                        "INSERT INTO job_events (job_id, seq, kind, step, data, created_at) \
                         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM job_events WHERE job_id = $1 RETURNING seq",
                    )
                    .bind(job_id)
                    .bind(kind)
                    .bind(step)
                    .bind(data)
                    .bind(self.now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err);
                    match result {
                        Err(StoreError::Conflict(_)) => continue,
                        other => return other,
                    }
                }
                Err(StoreError::Conflict("job event sequence contended".to_owned()))
            }

            async fn job_events_after(&self, job_id: i64, after_seq: i64, limit: i64) -> StoreResult<Vec<JobEvent>> {
                sqlx::query_as::<$db, JobEvent>(
                    "SELECT job_id, seq, kind, step, data, created_at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(job_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn job_events_before(&self, job_id: i64, before_seq: i64, limit: i64) -> StoreResult<Vec<JobEvent>> {
                let mut events = sqlx::query_as::<$db, JobEvent>(
                    "SELECT job_id, seq, kind, step, data, created_at FROM job_events WHERE job_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                )
                .bind(job_id)
                .bind(before_seq)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                events.reverse();
                Ok(events)
            }

            async fn put_session(&self, s: &SessionRow) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO sessions (id_hash, username, data_sealed, csrf_token, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id_hash) DO UPDATE SET data_sealed = excluded.data_sealed, csrf_token = excluded.csrf_token, expires_at = excluded.expires_at",
                )
                .bind(&s.id_hash)
                .bind(&s.username)
                .bind(&s.data_sealed)
                .bind(&s.csrf_token)
                .bind(s.expires_at)
                .bind(s.created_at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_session(&self, id_hash: &str) -> StoreResult<SessionRow> {
                sqlx::query_as::<$db, SessionRow>("SELECT * FROM sessions WHERE id_hash = $1 AND expires_at > $2")
                    .bind(id_hash)
                    .bind(self.now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                sqlx::query::<$db>("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn purge_expired_sessions(&self) -> StoreResult<u64> {
                Ok(sqlx::query::<$db>("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(self.now())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected())
            }

            async fn count_sessions(&self) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM sessions WHERE expires_at > $1")
                    .bind(self.now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn create_api_token(&self, username: &str, name: &str, token_hash: &str) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO api_tokens (username, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(username)
                .bind(name)
                .bind(token_hash)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn use_api_token(&self, token_hash: &str) -> StoreResult<ApiToken> {
                sqlx::query_as::<$db, ApiToken>(
                    "UPDATE api_tokens SET last_used = $1 WHERE token_hash = $2 AND revoked_at IS NULL RETURNING *",
                )
                .bind(self.now())
                .bind(token_hash)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn list_api_tokens(&self, username: &str) -> StoreResult<Vec<ApiToken>> {
                sqlx::query_as::<$db, ApiToken>("SELECT * FROM api_tokens WHERE username = $1 ORDER BY created_at DESC")
                    .bind(username)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn revoke_api_token(&self, username: &str, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND username = $3 AND revoked_at IS NULL",
                )
                .bind(self.now())
                .bind(id)
                .bind(username)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }

            async fn add_audit(&self, e: &NewAudit) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO audit_log (at, actor, action, target, remote_addr, outcome, detail_json) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(self.now())
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.remote_addr)
                .bind(if e.outcome.is_empty() { "ok" } else { e.outcome.as_str() })
                .bind(if e.detail_json.is_empty() { "{}" } else { e.detail_json.as_str() })
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
                sqlx::query_as::<$db, AuditEntry>(
                    "SELECT * FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(&f.actor)
                .bind(&f.action)
                .bind(f.before_id)
                .bind(if f.limit <= 0 { 100 } else { f.limit })
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }

            async fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64) -> StoreResult<bool> {
                let now = self.now();
                let rows = sqlx::query::<$db>(
                    "INSERT INTO locks (name, owner, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
                     WHERE locks.expires_at <= $4 OR locks.owner = excluded.owner",
                )
                .bind(name)
                .bind(owner)
                .bind(now + ttl_ms)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                Ok(rows == 1)
            }

            async fn unlock(&self, name: &str, owner: &str) -> StoreResult<bool> {
                let rows = sqlx::query::<$db>("DELETE FROM locks WHERE name = $1 AND owner = $2")
                    .bind(name)
                    .bind(owner)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(rows == 1)
            }

            async fn list_sealed(&self) -> StoreResult<Vec<SealedRef>> {
                let mut out = Vec::new();
                for (table, column, select, _) in SEALED_COLUMNS {
                    let rows = sqlx::query_as::<$db, (String, String)>(*select)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(map_err)?;
                    out.extend(rows.into_iter().map(|(key, value)| SealedRef { table, column, key, value }));
                }
                Ok(out)
            }

            async fn rewrite_sealed(&self, values: &[SealedRef], new_key_id: &str) -> StoreResult<()> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                for value in values {
                    let update = SEALED_COLUMNS
                        .iter()
                        .find(|(t, c, _, _)| *t == value.table && *c == value.column)
                        .map(|(_, _, _, update)| *update)
                        .ok_or(StoreError::NotFound)?;
                    sqlx::query::<$db>(update)
                        .bind(&value.value)
                        .bind(&value.key)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                sqlx::query::<$db>("UPDATE secret_keys SET retired_at = $1 WHERE retired_at IS NULL AND key_id <> $2")
                    .bind(now)
                    .bind(new_key_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query::<$db>("INSERT INTO secret_keys (key_id, created_at) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING")
                    .bind(new_key_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn record_key(&self, key_id: &str) -> StoreResult<()> {
                sqlx::query::<$db>("INSERT INTO secret_keys (key_id, created_at) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING")
                    .bind(key_id)
                    .bind(self.now())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn list_keys(&self) -> StoreResult<Vec<(String, i64, Option<i64>)>> {
                sqlx::query_as::<$db, (String, i64, Option<i64>)>(
                    "SELECT key_id, created_at, retired_at FROM secret_keys ORDER BY created_at",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
        }
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
