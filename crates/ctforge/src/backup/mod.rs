//! Backup and restore of ctforge's own state (`ctforge backup`, `ctforge restore`, and the
//! scheduled backups of `[backup]` in [`schedule`]).
//!
//! A backup is a consistent snapshot of the database — SQLite's `VACUUM INTO` (one read
//! transaction, safe while the instance runs and jobs write) or PostgreSQL's
//! `pg_dump --format=custom` (one repeatable-read snapshot) — plus the key ring and the data
//! directory's `ctforge.toml`, as a gzip'd tar sealed with the user's passphrase ([`crypt`]).
//! Without the key ring the database's sealed secrets (cluster tokens, credentials) are
//! useless, and without the passphrase the backup reveals nothing.
//!
//! A restore writes only into an empty data directory (and an empty PostgreSQL database), so
//! it can never overwrite a live instance; then it applies this binary's migrations (a backup
//! of an older release is upgraded like its database would be) and proves every sealed value
//! opens with the key ring the restored instance will use.

pub mod crypt;
pub mod schedule;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Connection;

use crate::clock::Clock;
use crate::config::Config;
use crate::secrets::{Keyring, Plain};
use crate::storage::{self, Backend};
pub use crypt::KdfCost;

/// Version of the archive layout inside the envelope (`manifest.json`'s `format`).
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const SQLITE_FILE: &str = "ctforge.db";
const PG_FILE: &str = "ctforge.pgdump";
const KEY_FILE: &str = "secret.key";
const CONFIG_FILE: &str = "ctforge.toml";
/// The shortest passphrase accepted for a new backup.
pub const MIN_PASSPHRASE: usize = 8;

/// Why a backup or restore did not happen. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The passphrase is missing, empty or too short.
    #[error("{0}")]
    Passphrase(String),
    /// The backup file cannot be opened (wrong passphrase, damage, another format).
    #[error(transparent)]
    Crypt(#[from] crypt::CryptError),
    /// The archive inside the envelope is not what ctforge writes.
    #[error("the backup's contents are not valid: {0}")]
    Invalid(String),
    /// The output file exists already.
    #[error("{0} exists already: choose another --out file or remove it")]
    OutputExists(PathBuf),
    /// The restore target holds data.
    #[error("{0}")]
    NotEmpty(String),
    /// There is nothing to back up at the configured place.
    #[error("{0}")]
    NothingToBackUp(String),
    /// The backup was made on another database backend than the target's.
    #[error(
        "the backup holds a {backup} database but the target is {target}; restore it with a {backup} database_url"
    )]
    BackendMismatch {
        /// The backup's backend.
        backup: &'static str,
        /// The target's backend.
        target: &'static str,
    },
    /// The backup was made by a newer ctforge.
    #[error(
        "the backup's database is at schema version {backup}, newer than this ctforge ({supported}); restore it with the release that made it"
    )]
    TooNew {
        /// The backup's schema version.
        backup: i64,
        /// The newest version this binary knows.
        supported: i64,
    },
    /// A database query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An external tool (`pg_dump`, `pg_restore`) is missing or failed.
    #[error("{0}")]
    Tool(String),
    /// The restored data does not work with the restored key ring, or could not be migrated.
    #[error("{0}")]
    Verify(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a backup holds, stored first in the archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Layout version of the archive.
    pub format: u32,
    /// The ctforge version that wrote it.
    pub ctforge_version: String,
    /// When the snapshot was taken (Unix milliseconds).
    pub created_at_ms: i64,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The newest migration applied to the snapshot.
    pub schema_version: i64,
    /// The other files of the archive.
    pub files: Vec<String>,
}

/// The outcome of [`create`].
#[derive(Clone, Debug)]
pub struct BackupSummary {
    /// The backup file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// The outcome of [`restore`].
#[derive(Clone, Debug)]
pub struct RestoreSummary {
    /// The restored backup's manifest.
    pub manifest: Manifest,
    /// Sealed values in the restored database, every one opened with the restored key ring.
    pub sealed_values: usize,
    /// Whether `CTFORGE_SECRET_KEY` (or `secret_key`) overrides the restored `secret.key`.
    pub key_from_config: bool,
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Reads a passphrase from a file (its first line; a trailing newline is not part of it).
pub fn read_passphrase(path: &Path) -> Result<Plain, BackupError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.chars().count() < MIN_PASSPHRASE {
        return Err(BackupError::Passphrase(format!(
            "the passphrase in {} is shorter than {MIN_PASSPHRASE} characters",
            path.display()
        )));
    }
    Ok(Plain::new(line))
}

/// The SQLite database file a `sqlite://` URL names.
fn sqlite_path(url: &str) -> Result<PathBuf, BackupError> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    Ok(options.get_filename().to_owned())
}

/// A directory removed (with its contents) when dropped: staging space for plaintext
/// snapshots, kept inside the data directory so it has the database's protection.
struct Staging(PathBuf);

impl Staging {
    fn new(parent: &Path, what: &str) -> Result<Self, BackupError> {
        let dir = parent.join(format!(".{what}-{}", uuid::Uuid::new_v4().simple()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io_err(&dir))?;
        }
        #[cfg(not(unix))]
        std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        Ok(Self(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `pg_dump`/`pg_restore` command for `url`: the password goes in `PGPASSWORD`, never on
/// the command line (other users can read a process's arguments).
fn pg_command(tool: &str, url: &str) -> Result<tokio::process::Command, BackupError> {
    let mut parsed = url::Url::parse(url)
        .map_err(|e| BackupError::Tool(format!("the database URL is not a URL: {e}")))?;
    let password = parsed.password().map(percent_decode);
    let _ = parsed.set_password(None);
    let mut command = tokio::process::Command::new(tool);
    command.arg(format!("--dbname={parsed}"));
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command.kill_on_drop(true);
    Ok(command)
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

async fn run_tool(tool: &str, mut command: tokio::process::Command) -> Result<(), BackupError> {
    let output = command.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackupError::Tool(format!(
                "{tool} not found: install postgresql-client (the server's major version or newer)"
            ))
        } else {
            BackupError::Tool(format!("cannot run {tool}: {e}"))
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    Err(BackupError::Tool(format!(
        "{tool} failed ({}): {last}",
        output.status
    )))
}

async fn pg_schema_version(url: &str) -> Result<i64, BackupError> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(version.unwrap_or(0))
}

/// Writes an encrypted backup of the configured instance to `out` (which must not exist).
///
/// Safe while the instance runs: the snapshot is one read transaction of the database.
pub async fn create(
    config: &Config,
    out: &Path,
    passphrase: &Plain,
    cost: KdfCost,
    clock: &dyn Clock,
) -> Result<BackupSummary, BackupError> {
    if passphrase.expose().chars().count() < MIN_PASSPHRASE {
        return Err(BackupError::Passphrase(format!(
            "the backup passphrase must have at least {MIN_PASSPHRASE} characters"
        )));
    }
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let data_dir = &config.data_dir;
    if config.secret_key.is_none() && !data_dir.join(KEY_FILE).is_file() {
        return Err(BackupError::NothingToBackUp(format!(
            "{} has no {KEY_FILE}: is --data-dir the instance's data directory?",
            data_dir.display()
        )));
    }
    let keyring = crate::startup::open_keyring(config)
        .map_err(|e| BackupError::Verify(format!("cannot load the key ring: {e:#}")))?;
    let staging = Staging::new(data_dir, "backup")?;
    let url = config.database_url();
    let backend = storage::backend_of(&url);
    let (db_name, schema_version) = match backend {
        Backend::Sqlite => {
            let source = sqlite_path(&url)?;
            if !source.is_file() {
                return Err(BackupError::NothingToBackUp(format!(
                    "there is no database at {}: is --data-dir the instance's data directory?",
                    source.display()
                )));
            }
            let snapshot = staging.0.join(SQLITE_FILE);
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
                .create_if_missing(false)
                .read_only(true)
                .busy_timeout(std::time::Duration::from_secs(30));
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
            sqlx::query("VACUUM INTO $1")
                .bind(snapshot.to_string_lossy().into_owned())
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&snapshot)
                .read_only(true);
            let mut snap = sqlx::SqliteConnection::connect_with(&options).await?;
            let version: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&mut snap)
                    .await?;
            snap.close().await?;
            (SQLITE_FILE, version.unwrap_or(0))
        }
        Backend::Postgres => {
            let version = pg_schema_version(&url).await?;
            let dump = staging.0.join(PG_FILE);
            let mut command = pg_command("pg_dump", &url)?;
            command
                .arg("--format=custom")
                .arg("--no-owner")
                .arg("--no-privileges")
                .arg(format!("--file={}", dump.display()));
            run_tool("pg_dump", command).await?;
            (PG_FILE, version)
        }
    };
    let config_file = data_dir.join(CONFIG_FILE);
    let mut files = vec![db_name.to_owned(), KEY_FILE.to_owned()];
    let with_config = config_file.is_file();
    if with_config {
        files.push(CONFIG_FILE.to_owned());
    }
    let manifest = Manifest {
        format: FORMAT,
        ctforge_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at_ms: clock.now_ms(),
        backend: backend_name(backend).to_owned(),
        schema_version,
        files,
    };
    let key_text = keyring.to_file_text();
    let out = out.to_owned();
    let tmp = out.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let snapshot = staging.0.join(db_name);
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Invalid(e.to_string()))?;
    let pass = passphrase.clone();
    let written = {
        let tmp = tmp.clone();
        tokio::task::spawn_blocking(move || -> Result<(), BackupError> {
            let file = open_private(&tmp)?;
            let sealed = crypt::EncryptWriter::new(file, pass.expose().as_bytes(), cost)
                .map_err(io_err(&tmp))?;
            let gz = flate2::write::GzEncoder::new(sealed, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            let add = |tar: &mut tar::Builder<_>, name: &str, bytes: &[u8]| {
                let mut header = tar::Header::new_gnu();
                header.set_size(bytes.len() as u64);
                header.set_mode(0o600);
                header.set_mtime(0);
                header.set_cksum();
                tar.append_data(&mut header, name, bytes)
            };
            add(&mut tar, MANIFEST, &manifest_json).map_err(io_err(&tmp))?;
            let mut db = std::fs::File::open(&snapshot).map_err(io_err(&snapshot))?;
            let size = db.metadata().map_err(io_err(&snapshot))?.len();
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o600);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, db_name, &mut db)
                .map_err(io_err(&tmp))?;
            add(&mut tar, KEY_FILE, key_text.as_bytes()).map_err(io_err(&tmp))?;
            if with_config {
                let text = std::fs::read(&config_file).map_err(io_err(&config_file))?;
                add(&mut tar, CONFIG_FILE, &text).map_err(io_err(&tmp))?;
            }
            let gz = tar.into_inner().map_err(io_err(&tmp))?;
            let sealed = gz.finish().map_err(io_err(&tmp))?;
            let file = sealed.finish().map_err(io_err(&tmp))?;
            file.sync_all().map_err(io_err(&tmp))?;
            Ok(())
        })
        .await
        .map_err(|e| BackupError::Tool(format!("the backup task failed: {e}")))?
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &out).map_err(io_err(&out))?;
    let bytes = std::fs::metadata(&out).map_err(io_err(&out))?.len();
    drop(staging);
    Ok(BackupSummary {
        path: out,
        manifest,
        bytes,
    })
}

fn open_private(path: &Path) -> Result<std::fs::File, BackupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(io_err(path))
}

/// Whether a directory is absent or has no entries.
fn is_empty_dir(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// A read error inside the archive: the envelope's own error (wrong passphrase, damage) when
/// that is the cause, else "not a valid archive".
fn archive_err(e: std::io::Error) -> BackupError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<crypt::CryptError>())
    {
        Some(crypt) => BackupError::Crypt(crypt.clone()),
        None => BackupError::Invalid(e.to_string()),
    }
}

/// Parses a manifest and checks it against the restore target.
fn check_manifest(text: &[u8], target: Backend) -> Result<Manifest, BackupError> {
    let parsed: Manifest = serde_json::from_slice(text)
        .map_err(|e| BackupError::Invalid(format!("manifest.json: {e}")))?;
    if parsed.format != FORMAT {
        return Err(BackupError::Invalid(format!(
            "archive format {} is not known to this ctforge (it reads {FORMAT})",
            parsed.format
        )));
    }
    let backend = match parsed.backend.as_str() {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => return Err(BackupError::Invalid(format!("unknown backend {other:?}"))),
    };
    if backend != target {
        return Err(BackupError::BackendMismatch {
            backup: backend_name(backend),
            target: backend_name(target),
        });
    }
    let supported = storage::latest_migration(target);
    if parsed.schema_version > supported {
        return Err(BackupError::TooNew {
            backup: parsed.schema_version,
            supported,
        });
    }
    Ok(parsed)
}

/// Decrypts and unpacks a backup into `staging`, checking its manifest against the target.
fn unpack(
    file: &Path,
    passphrase: &Plain,
    staging: &Path,
    target: Backend,
) -> Result<Manifest, BackupError> {
    let input = std::fs::File::open(file).map_err(io_err(file))?;
    let reader = crypt::DecryptReader::new(
        std::io::BufReader::new(input),
        passphrase.expose().as_bytes(),
    )?;
    let gz = flate2::read::GzDecoder::new(reader);
    let mut archive = tar::Archive::new(gz);
    let mut manifest: Option<Manifest> = None;
    let mut seen: Vec<String> = Vec::new();
    let entries = archive.entries().map_err(archive_err)?;
    for entry in entries {
        let mut entry = entry.map_err(archive_err)?;
        let name = entry
            .path()
            .map_err(archive_err)?
            .to_string_lossy()
            .into_owned();
        let Some(m) = &manifest else {
            if name != MANIFEST {
                return Err(BackupError::Invalid(
                    "manifest.json is not the first entry".to_owned(),
                ));
            }
            let mut text = Vec::new();
            entry
                .by_ref()
                .take(1 << 20)
                .read_to_end(&mut text)
                .map_err(archive_err)?;
            manifest = Some(check_manifest(&text, target)?);
            continue;
        };
        if !m.files.contains(&name) || seen.contains(&name) {
            return Err(BackupError::Invalid(format!("unexpected entry {name:?}")));
        }
        // Names come from the fixed list, never paths from the archive.
        let fixed = match name.as_str() {
            SQLITE_FILE => SQLITE_FILE,
            PG_FILE => PG_FILE,
            KEY_FILE => KEY_FILE,
            CONFIG_FILE => CONFIG_FILE,
            other => {
                return Err(BackupError::Invalid(format!("unexpected entry {other:?}")));
            }
        };
        let dest = staging.join(fixed);
        let mut out = open_private(&dest)?;
        std::io::copy(&mut entry, &mut out).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => archive_err(e),
            _ => io_err(&dest)(e),
        })?;
        out.sync_all().map_err(io_err(&dest))?;
        seen.push(name);
    }
    // The archive's end is not the file's end: read on until the last chunk is verified, so a
    // file cut short (or extended) is refused before anything is put in place.
    let mut gz = archive.into_inner();
    std::io::copy(&mut gz, &mut std::io::sink()).map_err(|_| crypt::CryptError::Decrypt)?;
    let mut reader = gz.into_inner();
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|_| crypt::CryptError::Decrypt)?;
    if !reader.finished() {
        return Err(crypt::CryptError::Decrypt.into());
    }
    let manifest = manifest.ok_or_else(|| BackupError::Invalid("no manifest.json".to_owned()))?;
    for file in &manifest.files {
        if !seen.contains(file) {
            return Err(BackupError::Invalid(format!("{file} is missing")));
        }
    }
    Ok(manifest)
}

/// Restores a backup into the configured data directory, which must be empty (or absent);
/// on PostgreSQL the configured database must have no tables. A failure while unpacking
/// leaves both as they were; once the data is in place, it is migrated and every sealed value
/// is opened with the key ring the restored instance will use.
pub async fn restore(
    config: &Config,
    file: &Path,
    passphrase: &Plain,
) -> Result<RestoreSummary, BackupError> {
    let data_dir = config.data_dir.clone();
    if !is_empty_dir(&data_dir)? {
        return Err(BackupError::NotEmpty(format!(
            "{} is not empty: restore into a new, empty data directory (a restore never overwrites an instance)",
            data_dir.display()
        )));
    }
    let url = config.database_url();
    let target = storage::backend_of(&url);
    let sqlite_target = match target {
        Backend::Sqlite => {
            let path = sqlite_path(&url)?;
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                return Err(BackupError::NotEmpty(format!(
                    "the database {} exists already: restore into an empty place",
                    path.display()
                )));
            }
            Some(path)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let tables: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_catalog.pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            if tables > 0 {
                return Err(BackupError::NotEmpty(format!(
                    "the database {} has {tables} tables: restore into a new, empty database",
                    crate::config::redact_url(&url)
                )));
            }
            None
        }
    };
    let existed = data_dir.exists();
    crate::startup::create_data_dir(&data_dir)
        .map_err(|e| BackupError::Verify(format!("{e:#}")))?;
    let result = restore_into(config, file, passphrase, target, sqlite_target.as_deref()).await;
    if result.is_err() {
        // The directory was empty: leave it as it was.
        if let Ok(entries) = std::fs::read_dir(&data_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
        if let Some(path) = &sqlite_target {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if !existed {
            let _ = std::fs::remove_dir(&data_dir);
        }
    }
    let manifest = result?;
    // The data is in place from here on; a failed check names what to fix and keeps it.
    let (sealed_values, key_from_config) = verify(config).await.map_err(|e| {
        BackupError::Verify(format!(
            "{e} (the data is restored in {})",
            data_dir.display()
        ))
    })?;
    Ok(RestoreSummary {
        manifest,
        sealed_values,
        key_from_config,
    })
}

async fn restore_into(
    config: &Config,
    file: &Path,
    passphrase: &Plain,
    target: Backend,
    sqlite_target: Option<&Path>,
) -> Result<Manifest, BackupError> {
    let data_dir = &config.data_dir;
    let staging = Staging::new(data_dir, "restore")?;
    let manifest = {
        let (file, pass, dir) = (file.to_owned(), passphrase.clone(), staging.0.clone());
        tokio::task::spawn_blocking(move || unpack(&file, &pass, &dir, target))
            .await
            .map_err(|e| BackupError::Tool(format!("the restore task failed: {e}")))??
    };
    match sqlite_target {
        Some(path) => {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            move_file(&staging.0.join(SQLITE_FILE), path)?;
        }
        None => {
            let url = config.database_url();
            let mut command = pg_command("pg_restore", &url)?;
            command
                .arg("--no-owner")
                .arg("--no-privileges")
                .arg("--exit-on-error")
                .arg("--single-transaction")
                .arg(staging.0.join(PG_FILE));
            run_tool("pg_restore", command).await?;
        }
    }
    move_file(&staging.0.join(KEY_FILE), &data_dir.join(KEY_FILE))?;
    if manifest.files.iter().any(|f| f == CONFIG_FILE) {
        move_file(&staging.0.join(CONFIG_FILE), &data_dir.join(CONFIG_FILE))?;
    }
    drop(staging);
    Ok(manifest)
}

fn move_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    // Another filesystem (a database_url outside the data directory): copy, keep 0600.
    let mut input = std::fs::File::open(from).map_err(io_err(from))?;
    let mut output = open_private(to)?;
    std::io::copy(&mut input, &mut output).map_err(io_err(to))?;
    output.sync_all().map_err(io_err(to))?;
    output.flush().map_err(io_err(to))?;
    std::fs::remove_file(from).map_err(io_err(from))
}

/// Migrates the restored database and opens every sealed value with the key ring the
/// restored instance will load.
async fn verify(config: &Config) -> Result<(usize, bool), BackupError> {
    let store = crate::startup::open_store(config, Arc::new(crate::clock::SystemClock))
        .await
        .map_err(|e| BackupError::Verify(format!("the restored database does not open: {e:#}")))?;
    let keyring: Keyring = crate::startup::open_keyring(config)
        .map_err(|e| BackupError::Verify(format!("the restored key ring does not load: {e:#}")))?;
    let sealed = store
        .list_sealed()
        .await
        .map_err(|e| BackupError::Verify(format!("cannot read the restored secrets: {e}")))?;
    let failed = sealed
        .iter()
        .filter(|v| keyring.open(&v.value).is_err())
        .count();
    let key_from_config = config.secret_key.is_some();
    if failed > 0 {
        let hint = if key_from_config {
            "; CTFORGE_SECRET_KEY (secret_key) is set and overrides the restored secret.key: unset it"
        } else {
            ""
        };
        return Err(BackupError::Verify(format!(
            "{failed} of {} sealed secrets do not open with the restored key ring{hint}",
            sealed.len()
        )));
    }
    Ok((sealed.len(), key_from_config))
}
