//! SQL for clusters and their nodes: the [`crate::storage::ClusterStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_clusters_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl ClusterStore for $store {
            async fn insert_cluster(&self, c: &ClusterInput) -> StoreResult<i64> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if c.is_default {
                    sqlx::query::<$db>("UPDATE clusters SET is_default = FALSE").execute(&mut *tx).await.map_err(map_err)?;
                }
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO clusters (name, url, token_id, token_secret_sealed, fingerprint, ssh_user, ssh_port, \
                     ssh_password_sealed, ssh_key_sealed, ssh_host_key, is_default, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
                )
                .bind(&c.name)
                .bind(&c.url)
                .bind(&c.token_id)
                .bind(&c.token_secret_sealed)
                .bind(&c.fingerprint)
                .bind(&c.ssh_user)
                .bind(c.ssh_port)
                .bind(&c.ssh_password_sealed)
                .bind(&c.ssh_key_sealed)
                .bind(&c.ssh_host_key)
                .bind(c.is_default)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(id)
            }
            async fn update_cluster(&self, id: i64, c: &ClusterInput) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                if c.is_default {
                    sqlx::query::<$db>("UPDATE clusters SET is_default = FALSE").execute(&mut *tx).await.map_err(map_err)?;
                }
                let rows = sqlx::query::<$db>(
                    "UPDATE clusters SET name = $1, url = $2, token_id = $3, token_secret_sealed = $4, fingerprint = $5, \
                     ssh_user = $6, ssh_port = $7, ssh_password_sealed = $8, ssh_key_sealed = $9, ssh_host_key = $10, \
                     is_default = $11, updated_at = $12 WHERE id = $13",
                )
                .bind(&c.name)
                .bind(&c.url)
                .bind(&c.token_id)
                .bind(&c.token_secret_sealed)
                .bind(&c.fingerprint)
                .bind(&c.ssh_user)
                .bind(c.ssh_port)
                .bind(&c.ssh_password_sealed)
                .bind(&c.ssh_key_sealed)
                .bind(&c.ssh_host_key)
                .bind(c.is_default)
                .bind(self.now())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)?;
                tx.commit().await.map_err(map_err)
            }
            async fn get_cluster(&self, id: i64) -> StoreResult<Cluster> {
                sqlx::query_as::<$db, Cluster>("SELECT * FROM clusters WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn get_cluster_by_name(&self, name: &str) -> StoreResult<Cluster> {
                sqlx::query_as::<$db, Cluster>("SELECT * FROM clusters WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn list_clusters(&self) -> StoreResult<Vec<Cluster>> {
                sqlx::query_as::<$db, Cluster>("SELECT * FROM clusters ORDER BY is_default DESC, name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn delete_cluster(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM clusters WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn set_cluster_nodes(&self, cluster_id: i64, nodes: &[(String, String)]) -> StoreResult<()> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query::<$db>("DELETE FROM cluster_nodes WHERE cluster_id = $1")
                    .bind(cluster_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for (name, status) in nodes {
                    sqlx::query::<$db>(
                        "INSERT INTO cluster_nodes (cluster_id, name, status, last_seen) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(cluster_id)
                    .bind(name)
                    .bind(status)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }
            async fn list_cluster_nodes(&self, cluster_id: i64) -> StoreResult<Vec<ClusterNode>> {
                sqlx::query_as::<$db, ClusterNode>("SELECT * FROM cluster_nodes WHERE cluster_id = $1 ORDER BY name")
                    .bind(cluster_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
        }
    };
}
