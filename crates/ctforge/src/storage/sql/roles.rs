//! SQL for ctforge role grants and API tokens' clusters: the [`crate::storage::RoleStore`] half
//! of `impl_store!`, expanded once per database in `storage/sql`.

macro_rules! impl_roles_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl RoleStore for $store {
            async fn role_context(
                &self,
                username: &str,
                cluster_id: i64,
            ) -> StoreResult<(Vec<(i64, String)>, Vec<String>)> {
                // One row per cluster, or per grant on `cluster_id` (role NULL without one).
                let rows = sqlx::query_as::<$db, (i64, String, Option<String>)>(
                    "SELECT c.id, c.name, g.role FROM clusters c \
                     LEFT JOIN role_grants g ON g.cluster_id = c.id AND g.username = $1 AND c.id = $2 \
                     ORDER BY c.id",
                )
                .bind(username)
                .bind(cluster_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let mut clusters: Vec<(i64, String)> = Vec::new();
                let mut roles = Vec::new();
                for (id, name, role) in rows {
                    if clusters.last().is_none_or(|(last, _)| *last != id) {
                        clusters.push((id, name));
                    }
                    roles.extend(role);
                }
                Ok((clusters, roles))
            }
            async fn list_role_grants(&self) -> StoreResult<Vec<RoleGrant>> {
                sqlx::query_as::<$db, RoleGrant>("SELECT * FROM role_grants ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn roles_of(&self, username: &str, cluster_id: i64) -> StoreResult<Vec<String>> {
                sqlx::query_scalar::<$db, String>(
                    "SELECT role FROM role_grants WHERE username = $1 AND cluster_id = $2",
                )
                .bind(username)
                .bind(cluster_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn insert_role_grant(
                &self,
                username: &str,
                cluster_id: i64,
                role: &str,
                granted_by: &str,
            ) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO role_grants (username, cluster_id, role, granted_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(username)
                .bind(cluster_id)
                .bind(role)
                .bind(granted_by)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn delete_role_grant(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM role_grants WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn set_api_token_cluster(&self, token_id: i64, cluster_id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE api_tokens SET cluster_id = $1 WHERE id = $2")
                    .bind(cluster_id)
                    .bind(token_id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn get_api_token(&self, token_id: i64) -> StoreResult<ApiToken> {
                sqlx::query_as::<$db, ApiToken>("SELECT * FROM api_tokens WHERE id = $1")
                    .bind(token_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn list_all_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
                sqlx::query_as::<$db, ApiToken>("SELECT * FROM api_tokens ORDER BY created_at DESC, id DESC")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
        }
    };
}
