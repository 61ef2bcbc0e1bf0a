//! SQL for notification targets and their delivery attempts: the
//! [`crate::storage::NotificationStore`] half of `impl_store!`, expanded once per database in
//! `storage/sql`.

macro_rules! impl_notifications_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl NotificationStore for $store {
            async fn insert_notification_target(
                &self,
                input: &NotificationTargetInput,
            ) -> StoreResult<i64> {
                let now = self.now();
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO notification_targets (name, kind, settings_json, rules_json, secret_sealed, enabled, source, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
                )
                .bind(&input.name)
                .bind(&input.kind)
                .bind(&input.settings_json)
                .bind(&input.rules_json)
                .bind(&input.secret_sealed)
                .bind(input.enabled)
                .bind(&input.source)
                .bind(&input.actor)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn update_notification_target(
                &self,
                id: i64,
                input: &NotificationTargetInput,
            ) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE notification_targets SET name = $1, kind = $2, settings_json = $3, rules_json = $4, \
                     secret_sealed = $5, enabled = $6, updated_at = $7 WHERE id = $8",
                )
                .bind(&input.name)
                .bind(&input.kind)
                .bind(&input.settings_json)
                .bind(&input.rules_json)
                .bind(&input.secret_sealed)
                .bind(input.enabled)
                .bind(self.now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }
            async fn delete_notification_target(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM notification_targets WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn get_notification_target(&self, id: i64) -> StoreResult<NotificationTargetRow> {
                sqlx::query_as::<$db, NotificationTargetRow>(
                    "SELECT * FROM notification_targets WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn get_notification_target_by_name(
                &self,
                name: &str,
            ) -> StoreResult<NotificationTargetRow> {
                sqlx::query_as::<$db, NotificationTargetRow>(
                    "SELECT * FROM notification_targets WHERE name = $1",
                )
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn list_notification_targets(&self) -> StoreResult<Vec<NotificationTargetRow>> {
                sqlx::query_as::<$db, NotificationTargetRow>(
                    "SELECT * FROM notification_targets ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn add_notification_delivery(
                &self,
                delivery: &NotificationDelivery,
            ) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO notification_deliveries (target_id, target_name, event_kind, event_key, title, attempt, status, error, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(delivery.target_id)
                .bind(&delivery.target_name)
                .bind(&delivery.event_kind)
                .bind(&delivery.event_key)
                .bind(&delivery.title)
                .bind(delivery.attempt)
                .bind(&delivery.status)
                .bind(&delivery.error)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn list_notification_deliveries(
                &self,
                target_id: Option<i64>,
                before_id: Option<i64>,
                limit: i64,
            ) -> StoreResult<Vec<NotificationDelivery>> {
                sqlx::query_as::<$db, NotificationDelivery>(
                    "SELECT * FROM notification_deliveries \
                     WHERE ($1 IS NULL OR target_id = $1) AND ($2 IS NULL OR id < $2) \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(target_id)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
        }
    };
}
