//! Scheduled backups (`[backup] dir, interval_secs, keep, passphrase_file`): the serving
//! process writes `ctforge-backup-<UTC time>.ctforge` into `dir` every `interval_secs` and
//! then deletes all but the newest `keep`.
//!
//! The next backup is due `interval_secs` after the newest one in `dir`, so restarts neither
//! skip nor repeat one. Several serving processes (scale-out) share the work through the lock
//! `backup:scheduled` in `AppState::locks`, held for one interval by whoever wrote the last.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::{self, KdfCost};
use crate::state::AppState;

const PREFIX: &str = "ctforge-backup-";
const SUFFIX: &str = ".ctforge";
const LOCK: &str = "backup:scheduled";

/// Starts the schedule when `[backup] dir` is set.
pub fn spawn(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let dir = state.config.backup.dir.clone()?;
    let state = state.clone();
    let owner = format!("backup-{}", uuid::Uuid::new_v4().simple());
    Some(tokio::spawn(async move {
        loop {
            let wait = due_in(&state, &dir);
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if let Err(e) = run_once(&state, &dir, &owner).await {
                tracing::error!("scheduled backup failed: {e}");
                // Try again after a while instead of at once (the cause is rarely transient
                // within seconds: a full disk, a missing passphrase file).
                tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(300)) => {}
                }
            }
        }
    }))
}

/// How long until the next backup: `interval_secs` after the newest one, now if none.
fn due_in(state: &AppState, dir: &Path) -> Duration {
    let interval = state.config.backup.interval_secs;
    let newest = list(dir)
        .last()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    match newest {
        None => Duration::ZERO,
        Some(ms) => {
            let due = ms.saturating_add(
                i64::try_from(interval)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            );
            let left = due.saturating_sub(state.clock.now_ms()).max(0);
            Duration::from_millis(u64::try_from(left).unwrap_or(0))
        }
    }
}

/// One scheduled backup and the pruning after it. Returns the file written, or `None` when
/// another process holds this interval's lock.
pub async fn run_once(
    state: &AppState,
    dir: &Path,
    owner: &str,
) -> Result<Option<PathBuf>, backup::BackupError> {
    let config = &state.config;
    let interval_ms = i64::try_from(config.backup.interval_secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    // Slightly shorter than the interval, so the holder's own next round finds it free.
    let held = state
        .locks
        .try_lock(LOCK, owner, (interval_ms - 1000).max(1000))
        .await
        .map_err(|e| backup::BackupError::Tool(format!("cannot take the backup lock: {e}")))?;
    if !held {
        return Ok(None);
    }
    let Some(pass_file) = &config.backup.passphrase_file else {
        return Err(backup::BackupError::Passphrase(
            "[backup] passphrase_file is not set".to_owned(),
        ));
    };
    let passphrase = backup::read_passphrase(pass_file)?;
    std::fs::create_dir_all(dir).map_err(|source| backup::BackupError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let name = file_name(state.clock.now_ms());
    let summary = backup::create(
        config,
        &dir.join(name),
        &passphrase,
        KdfCost::default(),
        state.clock.as_ref(),
    )
    .await?;
    tracing::info!(
        path = %summary.path.display(),
        bytes = summary.bytes,
        schema = summary.manifest.schema_version,
        "scheduled backup written"
    );
    prune(dir, config.backup.keep as usize);
    Ok(Some(summary.path))
}

/// `ctforge-backup-20261206T140000Z.ctforge`: names sort by time.
pub fn file_name(now_ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = at.format(&format).unwrap_or_else(|_| now_ms.to_string());
    format!("{PREFIX}{stamp}{SUFFIX}")
}

/// Scheduled backups in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    found.sort();
    found
}

/// Deletes all but the newest `keep` scheduled backups (other files in `dir` are not touched).
pub fn prune(dir: &Path, keep: usize) {
    let found = list(dir);
    let excess = found.len().saturating_sub(keep.max(1));
    for old in found.iter().take(excess) {
        match std::fs::remove_file(old) {
            Ok(()) => tracing::info!(path = %old.display(), "old backup deleted"),
            Err(e) => tracing::warn!(path = %old.display(), "cannot delete an old backup: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_sort_by_time_and_pruning_keeps_the_newest() {
        assert_eq!(
            file_name(1_765_029_600_000),
            "ctforge-backup-20251206T140000Z.ctforge"
        );
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(
                dir.path()
                    .join(file_name(1_765_029_600_000 + i * 3_600_000)),
                b"x",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        prune(dir.path(), 2);
        let left: Vec<String> = list(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [
                "ctforge-backup-20251206T170000Z.ctforge",
                "ctforge-backup-20251206T180000Z.ctforge"
            ]
        );
        assert!(dir.path().join("notes.txt").exists());
    }
}
