//! SQL for presets: the [`crate::storage::PresetStore`] half of `impl_store!`, expanded once
//! per database in `storage/sql`.

macro_rules! impl_presets_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl PresetStore for $store {
            async fn list_presets(&self) -> StoreResult<Vec<Preset>> {
                sqlx::query_as::<$db, Preset>("SELECT * FROM presets ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn get_preset(&self, name: &str) -> StoreResult<Preset> {
                sqlx::query_as::<$db, Preset>("SELECT * FROM presets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn insert_preset(&self, input: &PresetInput) -> StoreResult<i64> {
                let now = self.now();
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO presets (name, template, values_json, owner, shared, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                )
                .bind(&input.name)
                .bind(&input.template)
                .bind(&input.values_json)
                .bind(&input.owner)
                .bind(input.shared)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn update_preset(&self, id: i64, input: &PresetInput) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE presets SET name = $1, template = $2, values_json = $3, owner = $4, shared = $5, updated_at = $6 WHERE id = $7",
                )
                .bind(&input.name)
                .bind(&input.template)
                .bind(&input.values_json)
                .bind(&input.owner)
                .bind(input.shared)
                .bind(self.now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }
            async fn delete_preset(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM presets WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
        }
    };
}
