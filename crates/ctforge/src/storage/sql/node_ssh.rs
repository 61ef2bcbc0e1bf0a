//! SQL for per-node SSH settings (`node_ssh`, migration 0010): the
//! [`crate::storage::NodeSshStore`] half of `impl_store!`, expanded once per database.

macro_rules! impl_node_ssh_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl NodeSshStore for $store {
            async fn list_node_ssh(&self, cluster_id: i64) -> StoreResult<Vec<NodeSsh>> {
                sqlx::query_as::<$db, NodeSsh>(
                    "SELECT cluster_id, node, address, port, host_key, updated_at FROM node_ssh \
                     WHERE cluster_id = $1 ORDER BY node",
                )
                .bind(cluster_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn set_node_ssh_override(
                &self,
                cluster_id: i64,
                node: &str,
                address: Option<&str>,
                port: Option<i64>,
            ) -> StoreResult<()> {
                let now = self.now();
                sqlx::query::<$db>(
                    "INSERT INTO node_ssh (cluster_id, node, address, port, host_key, updated_at) \
                     VALUES ($1, $2, $3, $4, NULL, $5) \
                     ON CONFLICT (cluster_id, node) DO UPDATE SET \
                     host_key = CASE WHEN (node_ssh.address = excluded.address OR (node_ssh.address IS NULL AND excluded.address IS NULL)) \
                       AND (node_ssh.port = excluded.port OR (node_ssh.port IS NULL AND excluded.port IS NULL)) \
                       THEN node_ssh.host_key ELSE NULL END, \
                     address = excluded.address, port = excluded.port, updated_at = excluded.updated_at",
                )
                .bind(cluster_id)
                .bind(node)
                .bind(address)
                .bind(port)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn pin_node_host_key(
                &self,
                cluster_id: i64,
                node: &str,
                host_key: Option<&str>,
            ) -> StoreResult<()> {
                let now = self.now();
                sqlx::query::<$db>(
                    "INSERT INTO node_ssh (cluster_id, node, address, port, host_key, updated_at) \
                     VALUES ($1, $2, NULL, NULL, $3, $4) \
                     ON CONFLICT (cluster_id, node) DO UPDATE SET host_key = excluded.host_key, \
                     updated_at = excluded.updated_at",
                )
                .bind(cluster_id)
                .bind(node)
                .bind(host_key)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn move_container_record(&self, id: i64, node: &str) -> StoreResult<()> {
                let now = self.now();
                sqlx::query::<$db>("UPDATE containers SET node = $1, updated_at = $2 WHERE id = $3")
                    .bind(node)
                    .bind(now)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }
    };
}
