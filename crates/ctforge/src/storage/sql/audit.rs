//! SQL for the audit log: the [`crate::storage::AuditStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_audit_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl AuditStore for $store {
            async fn add_audit(&self, e: &NewAudit) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO audit_log (at, actor, action, target, remote_addr, outcome, detail_json) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(self.now())
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.remote_addr)
                .bind(if e.outcome.is_empty() { "ok" } else { e.outcome.as_str() })
                .bind(if e.detail_json.is_empty() { "{}" } else { e.detail_json.as_str() })
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
                sqlx::query_as::<$db, AuditEntry>(
                    "SELECT * FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(&f.actor)
                .bind(&f.action)
                .bind(f.before_id)
                .bind(if f.limit <= 0 { 100 } else { f.limit })
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
        }
    };
}
