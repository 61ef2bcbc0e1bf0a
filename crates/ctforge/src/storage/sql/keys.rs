//! SQL for sealed values and key ids (key rotation): the [`crate::storage::KeyStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_keys_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl KeyStore for $store {
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
