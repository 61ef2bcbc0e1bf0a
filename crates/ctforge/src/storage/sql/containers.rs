//! SQL for container records, services, credentials and events: the [`crate::storage::ContainerStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_containers_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl ContainerStore for $store {
            async fn create_container_with_job(&self, c: &NewContainer, job: &NewJob) -> StoreResult<(i64, i64)> {
                let now = self.now();
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let container_id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO containers (cluster_id, node, vmid, hostname, template_id, status, spec_json, root_password_sealed, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                )
                .bind(c.cluster_id)
                .bind(&c.node)
                .bind(c.vmid)
                .bind(&c.hostname)
                .bind(c.template_id)
                .bind(c.status.as_str())
                .bind(&c.spec_json)
                .bind(&c.root_password_sealed)
                .bind(&c.created_by)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let job_id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO jobs (kind, state, container_id, node, payload_json, created_by, created_at) \
                     VALUES ($1, 'queued', $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&job.kind)
                .bind(container_id)
                .bind(&job.node)
                .bind(&job.payload_json)
                .bind(&job.created_by)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok((container_id, job_id))
            }
            async fn create_container(&self, c: &NewContainer) -> StoreResult<i64> {
                let now = self.now();
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO containers (cluster_id, node, vmid, hostname, template_id, status, spec_json, root_password_sealed, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                )
                .bind(c.cluster_id)
                .bind(&c.node)
                .bind(c.vmid)
                .bind(&c.hostname)
                .bind(c.template_id)
                .bind(c.status.as_str())
                .bind(&c.spec_json)
                .bind(&c.root_password_sealed)
                .bind(&c.created_by)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn get_container(&self, id: i64) -> StoreResult<Container> {
                sqlx::query_as::<$db, Container>("SELECT * FROM containers WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn get_container_by_vmid(&self, cluster_id: i64, vmid: i64) -> StoreResult<Container> {
                sqlx::query_as::<$db, Container>("SELECT * FROM containers WHERE cluster_id = $1 AND vmid = $2")
                    .bind(cluster_id)
                    .bind(vmid)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn list_containers(&self) -> StoreResult<Vec<Container>> {
                sqlx::query_as::<$db, Container>("SELECT * FROM containers ORDER BY cluster_id, vmid")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn update_container_status(&self, id: i64, status: RecordStatus, ip: Option<&str>) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE containers SET status = $1, ip = COALESCE($2, ip), updated_at = $3 WHERE id = $4",
                )
                .bind(status.as_str())
                .bind(ip)
                .bind(self.now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }
            async fn set_container_kind(&self, id: i64, kind: crate::status::GuestKind) -> StoreResult<()> {
                let rows = sqlx::query::<$db>(
                    "UPDATE containers SET kind = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(kind.as_str())
                .bind(self.now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
                affected(rows)
            }
            async fn delete_container(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM containers WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn replace_services(&self, container_id: i64, services: &[ContainerService]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query::<$db>("DELETE FROM container_services WHERE container_id = $1")
                    .bind(container_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for s in services {
                    sqlx::query::<$db>(
                        "INSERT INTO container_services (container_id, unit, active_state, sub_state, enabled, port, url, updated_at, web_title, web_answered, web_checked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(container_id)
                    .bind(&s.unit)
                    .bind(&s.active_state)
                    .bind(&s.sub_state)
                    .bind(s.enabled)
                    .bind(s.port)
                    .bind(&s.url)
                    .bind(s.updated_at)
                    .bind(&s.web_title)
                    .bind(s.web_answered)
                    .bind(s.web_checked_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)
            }
            async fn list_services(&self, container_id: i64) -> StoreResult<Vec<ContainerService>> {
                sqlx::query_as::<$db, ContainerService>(
                    "SELECT unit, active_state, sub_state, enabled, port, url, updated_at, web_title, web_answered, web_checked_at FROM container_services WHERE container_id = $1 ORDER BY unit",
                )
                .bind(container_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn put_credential(&self, container_id: i64, name: &str, value_sealed: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO container_credentials (container_id, name, value_sealed, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (container_id, name) DO UPDATE SET value_sealed = excluded.value_sealed, created_at = excluded.created_at",
                )
                .bind(container_id)
                .bind(name)
                .bind(value_sealed)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn list_credentials(&self, container_id: i64) -> StoreResult<Vec<ContainerCredential>> {
                sqlx::query_as::<$db, ContainerCredential>(
                    "SELECT id, name, value_sealed, created_at FROM container_credentials WHERE container_id = $1 ORDER BY name",
                )
                .bind(container_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn put_guest_ssh_key(&self, container_id: i64, key_sealed: &str, public_key: &str, login_user: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO guest_ssh_keys (container_id, key_sealed, public_key, login_user, host_key, created_at) VALUES ($1, $2, $3, $4, NULL, $5) \
                     ON CONFLICT (container_id) DO UPDATE SET key_sealed = excluded.key_sealed, public_key = excluded.public_key, login_user = excluded.login_user, host_key = NULL, created_at = excluded.created_at",
                )
                .bind(container_id)
                .bind(key_sealed)
                .bind(public_key)
                .bind(login_user)
                .bind(self.now())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn guest_ssh_key(&self, container_id: i64) -> StoreResult<Option<crate::storage::model::GuestSshKey>> {
                sqlx::query_as::<$db, crate::storage::model::GuestSshKey>(
                    "SELECT key_sealed, public_key, login_user, host_key FROM guest_ssh_keys WHERE container_id = $1",
                )
                .bind(container_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn pin_guest_host_key(&self, container_id: i64, fingerprint: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE guest_ssh_keys SET host_key = $1 WHERE container_id = $2 AND host_key IS NULL",
                )
                .bind(fingerprint)
                .bind(container_id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }
            async fn add_container_event(&self, container_id: i64, kind: &str, message: &str, actor: &str, data_json: &str) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO container_events (container_id, kind, message, actor, data_json, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(container_id)
                .bind(kind)
                .bind(message)
                .bind(actor)
                .bind(data_json)
                .bind(self.now())
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn container_events_after(&self, container_id: i64, after_id: i64, limit: i64) -> StoreResult<Vec<ContainerEvent>> {
                sqlx::query_as::<$db, ContainerEvent>(
                    "SELECT * FROM container_events WHERE container_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(container_id)
                .bind(after_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
            async fn list_container_events(&self, container_id: i64, kind: Option<&str>, before_id: Option<i64>, limit: i64) -> StoreResult<Vec<ContainerEvent>> {
                sqlx::query_as::<$db, ContainerEvent>(
                    "SELECT * FROM container_events WHERE container_id = $1 AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(container_id)
                .bind(kind)
                .bind(before_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)
            }
        }
    };
}
