//! SQL for the job queue (claim with per-node limits, leases, steps, results) and progress events: the [`crate::storage::JobStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_jobs_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl JobStore for $store {
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
            async fn checkpoint_job(
                &self,
                job_id: i64,
                owner: &str,
                change: JobChange<'_>,
                events: &[NewJobEvent],
            ) -> StoreResult<Vec<i64>> {
                // As `append_job_events`: the first write takes the write lock; a concurrent
                // writer of the job's events (PostgreSQL) makes the whole checkpoint retry.
                'attempt: for _ in 0..5 {
                    let mut tx = self.pool.begin().await.map_err(map_err)?;
                    if !matches!(change, JobChange::Finish { .. }) {
                        // A step begun or completed is progress: a database crash that loses
                        // it is a worker crash mid-step, which jobs resume from anyway (every
                        // step is idempotent). The job's end stays durable.
                        Self::relax_commit(&mut tx).await?;
                    }
                    let rows = match change {
                        JobChange::Begin(step) => sqlx::query::<$db>(
                            "UPDATE jobs SET current_step = $1 WHERE id = $2 AND lease_owner = $3",
                        )
                        .bind(step)
                        .bind(job_id)
                        .bind(owner),
                        JobChange::Complete(step) => sqlx::query::<$db>(
                            "UPDATE jobs SET completed_steps = CASE WHEN completed_steps = '' THEN $1 ELSE completed_steps || ',' || $1 END \
                             WHERE id = $2 AND lease_owner = $3",
                        )
                        .bind(step)
                        .bind(job_id)
                        .bind(owner),
                        JobChange::Finish { state, error } => sqlx::query::<$db>(
                            "UPDATE jobs SET state = $1, error = $2, finished_at = $3, lease_owner = NULL, lease_expires = NULL \
                             WHERE id = $4 AND state IN ('queued', 'running')",
                        )
                        .bind(state.as_str())
                        .bind(error)
                        .bind(self.now())
                        .bind(job_id),
                    }
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                    // Dropping the transaction rolls it back.
                    affected(rows)?;
                    let mut seqs = Vec::with_capacity(events.len());
                    for event in events {
                        let result = sqlx::query_scalar::<$db, i64>(
                            "INSERT INTO job_events (job_id, seq, kind, step, data, created_at) \
                             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM job_events WHERE job_id = $1 RETURNING seq",
                        )
                        .bind(job_id)
                        .bind(&event.kind)
                        .bind(&event.step)
                        .bind(&event.data)
                        .bind(self.now())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err);
                        match result {
                            Ok(seq) => seqs.push(seq),
                            Err(StoreError::Conflict(_)) => continue 'attempt,
                            Err(e) => return Err(e),
                        }
                    }
                    match tx.commit().await.map_err(map_err) {
                        Ok(()) => return Ok(seqs),
                        Err(StoreError::Conflict(_)) => continue 'attempt,
                        Err(e) => return Err(e),
                    }
                }
                Err(StoreError::Conflict("job event sequence contended".to_owned()))
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
            async fn finish_job(&self, job_id: i64, state: JobState, error: Option<&str>) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE jobs SET state = $1, error = $2, finished_at = $3, lease_owner = NULL, lease_expires = NULL \
                     WHERE id = $4 AND state IN ('queued', 'running')",
                )
                .bind(state.as_str())
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
            async fn set_job_payload(&self, job_id: i64, payload_json: &str) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE jobs SET payload_json = $1 WHERE id = $2 AND state IN ('failed', 'cancelled')",
                )
                .bind(payload_json)
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

            async fn find_jobs(&self, f: &JobFilter) -> StoreResult<Vec<Job>> {
                sqlx::query_as::<$db, Job>(
                    "SELECT * FROM jobs WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR kind = $2) \
                     AND ($3 IS NULL OR container_id = $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
                )
                .bind(f.state.map(JobState::as_str))
                .bind(&f.kind)
                .bind(f.container_id)
                .bind(f.before_id)
                .bind(if f.limit <= 0 { 50 } else { f.limit })
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
                // A progress event: committed without waiting for the disk (`relax_commit`).
                for _ in 0..5 {
                    let mut tx = self.pool.begin().await.map_err(map_err)?;
                    Self::relax_commit(&mut tx).await?;
                    let result = sqlx::query_scalar::<$db, i64>(
                        "INSERT INTO job_events (job_id, seq, kind, step, data, created_at) \
                         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM job_events WHERE job_id = $1 RETURNING seq",
                    )
                    .bind(job_id)
                    .bind(kind)
                    .bind(step)
                    .bind(data)
                    .bind(self.now())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err);
                    let result = match result {
                        Ok(seq) => tx.commit().await.map_err(map_err).map(|()| seq),
                        Err(e) => Err(e),
                    };
                    match result {
                        Err(StoreError::Conflict(_)) => continue,
                        other => return other,
                    }
                }
                Err(StoreError::Conflict("job event sequence contended".to_owned()))
            }
            async fn append_job_events(&self, job_id: i64, kind: &str, step: Option<&str>, data: &[String]) -> StoreResult<i64> {
                if data.is_empty() {
                    return Ok(0);
                }
                // One transaction per batch: its first insert takes the write lock, so the
                // following ones cannot race; a concurrent writer (PostgreSQL) makes the whole
                // batch retry.
                'attempt: for _ in 0..5 {
                    let mut tx = self.pool.begin().await.map_err(map_err)?;
                    Self::relax_commit(&mut tx).await?;
                    let mut first = None;
                    for line in data {
                        let result = sqlx::query_scalar::<$db, i64>(
                            "INSERT INTO job_events (job_id, seq, kind, step, data, created_at) \
                             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM job_events WHERE job_id = $1 RETURNING seq",
                        )
                        .bind(job_id)
                        .bind(kind)
                        .bind(step)
                        .bind(line.as_str())
                        .bind(self.now())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err);
                        match result {
                            Ok(seq) => {
                                first.get_or_insert(seq);
                            }
                            Err(StoreError::Conflict(_)) => continue 'attempt,
                            Err(e) => return Err(e),
                        }
                    }
                    match tx.commit().await.map_err(map_err) {
                        Ok(()) => return Ok(first.unwrap_or(0)),
                        Err(StoreError::Conflict(_)) => continue 'attempt,
                        Err(e) => return Err(e),
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
        }
    };
}
