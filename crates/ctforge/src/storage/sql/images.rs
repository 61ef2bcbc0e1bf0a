//! SQL for images baked from templates (`images`, migration 0013): the
//! [`crate::storage::ImageStore`] half of `impl_store!`, expanded once per database.

macro_rules! impl_images_store {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl ImageStore for $store {
            async fn insert_image(&self, image: &NewImage) -> StoreResult<i64> {
                let now = self.now();
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO images (cluster_id, template_name, content_hash, ostemplate, node, storage, \
                     state, containers, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'building', 0, $7, $8, $8) RETURNING id",
                )
                .bind(image.cluster_id)
                .bind(&image.template_name)
                .bind(&image.content_hash)
                .bind(&image.ostemplate)
                .bind(&image.node)
                .bind(&image.storage)
                .bind(&image.created_by)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn get_image(&self, id: i64) -> StoreResult<Image> {
                sqlx::query_as::<$db, Image>("SELECT * FROM images WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn list_images(&self, cluster_id: Option<i64>) -> StoreResult<Vec<Image>> {
                sqlx::query_as::<$db, Image>(
                    "SELECT * FROM images WHERE ($1 IS NULL OR cluster_id = $1) ORDER BY created_at DESC, id DESC",
                )
                .bind(cluster_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn find_images(
                &self,
                cluster_id: i64,
                template: &str,
                node: &str,
                storage: &str,
            ) -> StoreResult<Vec<Image>> {
                sqlx::query_as::<$db, Image>(
                    "SELECT * FROM images WHERE cluster_id = $1 AND template_name = $2 AND node = $3 \
                     AND storage = $4 ORDER BY created_at DESC, id DESC",
                )
                .bind(cluster_id)
                .bind(template)
                .bind(node)
                .bind(storage)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn set_image_state(&self, id: i64, state: &str, error: Option<&str>) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE images SET state = $2, error = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(state)
                .bind(error)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }
            async fn set_image_job(&self, id: i64, job_id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE images SET job_id = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(job_id)
                    .bind(self.now())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn set_image_vmid(&self, id: i64, vmid: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE images SET vmid = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(vmid)
                    .bind(self.now())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn set_image_size(&self, id: i64, size_bytes: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE images SET size_bytes = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(size_bytes)
                    .bind(self.now())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn count_image_use(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("UPDATE images SET containers = containers + 1 WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn supersede_images(
                &self,
                cluster_id: i64,
                template: &str,
                node: &str,
                storage: &str,
                current_hash: &str,
            ) -> StoreResult<u64> {
                Ok(sqlx::query::<$db>(
                    "UPDATE images SET state = 'superseded', updated_at = $6 WHERE cluster_id = $1 \
                     AND template_name = $2 AND node = $3 AND storage = $4 AND content_hash <> $5 \
                     AND state = 'ready'",
                )
                .bind(cluster_id)
                .bind(template)
                .bind(node)
                .bind(storage)
                .bind(current_hash)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected())
            }
            async fn delete_image(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM images WHERE id = $1")
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
