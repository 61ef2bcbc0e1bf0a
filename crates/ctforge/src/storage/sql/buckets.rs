//! SQL for package buckets and their packages: the [`crate::storage::BucketStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_buckets_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl BucketStore for $store {
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
        }
    };
}
