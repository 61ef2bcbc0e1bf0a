//! SQL for templates with their scripts, files and packages: the [`crate::storage::TemplateStore`] half of `impl_store!`, expanded
//! once per database in `storage/sql`.

macro_rules! impl_templates_store {
    ($store:ty, $db:ty, $claim_lock:expr, $claim_sql:expr) => {
        #[async_trait]
        impl TemplateStore for $store {
            async fn upsert_template(&self, record: &TemplateRecord) -> StoreResult<(i64, Option<TemplateRecord>)> {
                let previous = match self.get_template_by_name(&record.row.name).await {
                    Ok(previous) => Some(previous),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                let now = self.now();
                let r = &record.row;
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO templates (name, source, source_path, app, description, tags, config_json, content_hash, diverged, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                     ON CONFLICT (name) DO UPDATE SET source = excluded.source, source_path = excluded.source_path, app = excluded.app, \
                     description = excluded.description, tags = excluded.tags, config_json = excluded.config_json, \
                     content_hash = excluded.content_hash, diverged = excluded.diverged, updated_at = excluded.updated_at \
                     RETURNING id",
                )
                .bind(&r.name)
                .bind(&r.source)
                .bind(&r.source_path)
                .bind(&r.app)
                .bind(&r.description)
                .bind(&r.tags)
                .bind(&r.config_json)
                .bind(&r.content_hash)
                .bind(r.diverged)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                for table in ["template_scripts", "template_files", "template_packages"] {
                    let sql = match table {
                        "template_scripts" => "DELETE FROM template_scripts WHERE template_id = $1",
                        "template_files" => "DELETE FROM template_files WHERE template_id = $1",
                        _ => "DELETE FROM template_packages WHERE template_id = $1",
                    };
                    sqlx::query::<$db>(sql).bind(id).execute(&mut *tx).await.map_err(map_err)?;
                }
                for s in &record.scripts {
                    sqlx::query::<$db>(
                        "INSERT INTO template_scripts (template_id, position, name, content, enabled) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(s.position)
                    .bind(&s.name)
                    .bind(&s.content)
                    .bind(s.enabled)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                for f in &record.files {
                    sqlx::query::<$db>(
                        "INSERT INTO template_files (template_id, name, target_dir, policy, content) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(&f.name)
                    .bind(&f.target_dir)
                    .bind(&f.policy)
                    .bind(&f.content)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                for p in &record.packages {
                    sqlx::query::<$db>(
                        "INSERT INTO template_packages (template_id, bucket, manager, name, version, position) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(id)
                    .bind(&p.bucket)
                    .bind(&p.manager)
                    .bind(&p.name)
                    .bind(&p.version)
                    .bind(p.position)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok((id, previous))
            }
            async fn get_template(&self, id: i64) -> StoreResult<TemplateRecord> {
                let row = sqlx::query_as::<$db, TemplateRow>("SELECT * FROM templates WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                self.load_template(row).await
            }
            async fn get_template_by_name(&self, name: &str) -> StoreResult<TemplateRecord> {
                self.load_template_named(name).await
            }
            async fn list_templates(&self) -> StoreResult<Vec<TemplateSummary>> {
                sqlx::query_as::<$db, TemplateSummary>(TEMPLATE_SUMMARY_SQL)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn template_names(&self) -> StoreResult<Vec<(i64, String)>> {
                sqlx::query_as::<$db, (i64, String)>("SELECT id, name FROM templates")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn delete_template(&self, id: i64) -> StoreResult<()> {
                let rows = sqlx::query::<$db>("DELETE FROM templates WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                affected(rows)
            }
            async fn count_template_containers(&self, id: i64) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM containers WHERE template_id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)
            }
            async fn template_page(&self, name: &str) -> StoreResult<(TemplateRecord, i64)> {
                self.template_page_impl(name).await
            }
            async fn count_template_containers_named(&self, name: &str) -> StoreResult<i64> {
                sqlx::query_scalar::<$db, i64>(
                    "SELECT COUNT(*) FROM containers WHERE template_id = (SELECT id FROM templates WHERE name = $1)",
                )
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)
            }
        }
    };
}
