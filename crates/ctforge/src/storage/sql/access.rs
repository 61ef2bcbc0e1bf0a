//! SQL for sign-in sessions, API tokens and the wizard's sealed drafts: the [`crate::storage::AccessStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_access_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl AccessStore for $store {
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
            async fn put_wizard_draft(&self, id_hash: &str, username: &str, secret_sealed: &str, expires_at: i64) -> StoreResult<()> {
                let now = self.now();
                sqlx::query::<$db>("DELETE FROM wizard_drafts WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                sqlx::query::<$db>(
                    "INSERT INTO wizard_drafts (id_hash, username, secret_sealed, expires_at, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id_hash) DO UPDATE SET secret_sealed = excluded.secret_sealed, expires_at = excluded.expires_at \
                     WHERE wizard_drafts.username = excluded.username",
                )
                .bind(id_hash)
                .bind(username)
                .bind(secret_sealed)
                .bind(expires_at)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn get_wizard_draft(&self, id_hash: &str, username: &str) -> StoreResult<String> {
                sqlx::query_scalar::<$db, String>(
                    "SELECT secret_sealed FROM wizard_drafts WHERE id_hash = $1 AND username = $2 AND expires_at > $3",
                )
                .bind(id_hash)
                .bind(username)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn delete_wizard_draft(&self, id_hash: &str) -> StoreResult<()> {
                sqlx::query::<$db>("DELETE FROM wizard_drafts WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
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
        }
    };
}
