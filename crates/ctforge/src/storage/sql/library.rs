//! SQL for the template library's state (deploy keys of git sources, the config-manager state
//! read by monitoring, what was applied to each container): the
//! [`crate::storage::LibraryStore`] half of `impl_store!`, expanded once per database in
//! `storage/sql`.

macro_rules! impl_library_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl LibraryStore for $store {
            async fn put_git_key(&self, key: &GitSourceKey) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO git_source_keys (url, deploy_key_sealed, key_fingerprint, host_key, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (url) DO UPDATE SET \
                     deploy_key_sealed = excluded.deploy_key_sealed, key_fingerprint = excluded.key_fingerprint, \
                     host_key = excluded.host_key, updated_at = excluded.updated_at",
                )
                .bind(&key.url)
                .bind(&key.deploy_key_sealed)
                .bind(&key.key_fingerprint)
                .bind(&key.host_key)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn get_git_key(&self, url: &str) -> StoreResult<Option<GitSourceKey>> {
                sqlx::query_as::<$db, GitSourceKey>("SELECT * FROM git_source_keys WHERE url = $1")
                    .bind(url)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn list_git_keys(&self) -> StoreResult<Vec<GitSourceKey>> {
                sqlx::query_as::<$db, GitSourceKey>("SELECT * FROM git_source_keys ORDER BY url")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn delete_git_key(&self, url: &str) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM git_source_keys WHERE url = $1")
                    .bind(url)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn put_config_manager_state(&self, container_id: i64, state_json: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO container_config_manager (container_id, state_json, checked_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (container_id) DO UPDATE SET state_json = excluded.state_json, checked_at = excluded.checked_at",
                )
                .bind(container_id)
                .bind(state_json)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn get_config_manager_state(&self, container_id: i64) -> StoreResult<Option<(String, i64)>> {
                sqlx::query_as::<$db, (String, i64)>(
                    "SELECT state_json, checked_at FROM container_config_manager WHERE container_id = $1",
                )
                .bind(container_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn put_applied_template(&self, applied: &AppliedTemplate) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO container_applied (container_id, template_name, template_hash, template_json, job_id, applied_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (container_id) DO UPDATE SET \
                     template_name = excluded.template_name, template_hash = excluded.template_hash, \
                     template_json = excluded.template_json, job_id = excluded.job_id, applied_at = excluded.applied_at",
                )
                .bind(applied.container_id)
                .bind(&applied.template_name)
                .bind(&applied.template_hash)
                .bind(&applied.template_json)
                .bind(applied.job_id)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn get_applied_template(&self, container_id: i64) -> StoreResult<Option<AppliedTemplate>> {
                sqlx::query_as::<$db, AppliedTemplate>(
                    "SELECT container_id, template_name, template_hash, template_json, job_id, applied_at \
                     FROM container_applied WHERE container_id = $1",
                )
                .bind(container_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn put_container_drift(&self, container_id: i64, files_json: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO container_drift (container_id, files_json, checked_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (container_id) DO UPDATE SET files_json = excluded.files_json, checked_at = excluded.checked_at",
                )
                .bind(container_id)
                .bind(files_json)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn get_container_drift(&self, container_id: i64) -> StoreResult<Option<String>> {
                sqlx::query_scalar::<$db, String>(
                    "SELECT files_json FROM container_drift WHERE container_id = $1",
                )
                .bind(container_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn list_container_drift(&self) -> StoreResult<Vec<(i64, String)>> {
                sqlx::query_as::<$db, (i64, String)>(
                    "SELECT container_id, files_json FROM container_drift ORDER BY container_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
        }
    };
}
