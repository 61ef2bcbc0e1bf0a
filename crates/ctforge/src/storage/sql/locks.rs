//! SQL for named leases (the database lock backend): the [`crate::storage::LockStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_locks_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl LockStore for $store {
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
            async fn purge_expired_locks(&self) -> StoreResult<u64> {
                let rows = sqlx::query::<$db>("DELETE FROM locks WHERE expires_at <= $1")
                    .bind(self.now())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(rows)
            }
        }
    };
}
