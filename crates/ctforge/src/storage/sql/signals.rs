//! Job-queue signals between processes that share one database: PostgreSQL's `NOTIFY` on
//! [`JOBS_CHANNEL`] when a job becomes claimable and a `LISTEN`ing [`JobSignals`] in every
//! worker process. SQLite has neither (its workers live in the one process that writes it), so
//! there both are no-ops and the in-process wake-up of `JobQueue` is enough.

use sqlx::postgres::PgListener;

use super::{PgStore, SqliteStore, map_err};
use crate::storage::StoreResult;

/// The PostgreSQL notification channel of the job queue.
pub const JOBS_CHANNEL: &str = "ctforge_jobs";

/// A `LISTEN` on [`JOBS_CHANNEL`] (one dedicated connection).
pub struct JobSignals {
    listener: PgListener,
}

impl std::fmt::Debug for JobSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSignals").finish_non_exhaustive()
    }
}

impl JobSignals {
    /// Waits for the next signal. `Ok(false)` means the connection dropped and was (or will
    /// be) re-established: signals sent meanwhile are lost, so the caller should look at the
    /// queue anyway.
    pub async fn next(&mut self) -> StoreResult<bool> {
        match self.listener.try_recv().await.map_err(map_err)? {
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }
}

impl PgStore {
    pub(super) async fn signal_jobs_impl(&self) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(JOBS_CHANNEL)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    pub(super) async fn job_signals_impl(&self) -> StoreResult<Option<JobSignals>> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(map_err)?;
        listener.listen(JOBS_CHANNEL).await.map_err(map_err)?;
        Ok(Some(JobSignals { listener }))
    }
}

impl SqliteStore {
    /// Every writer of an SQLite database is in this process; nothing to tell others.
    #[allow(clippy::unused_async)]
    pub(super) async fn signal_jobs_impl(&self) -> StoreResult<()> {
        Ok(())
    }

    #[allow(clippy::unused_async)]
    pub(super) async fn job_signals_impl(&self) -> StoreResult<Option<JobSignals>> {
        Ok(None)
    }
}
