//! Persistence: the [`Store`] trait and its SQLite and PostgreSQL implementations.
//!
//! Both backends share one implementation written once in [`sql`] (portable SQL with `$n`
//! placeholders, instantiated per backend by a macro); only migrations and the job-claim query
//! differ. Migrations live in `migrations/<backend>/`, are versioned per backend and never edited
//! once landed. The conformance suite (`tests/storage.rs`) runs against both.

pub mod model;
mod sql;

pub use sql::JobSignals;

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::status::{JobState, RecordStatus};
use model::*;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint would be violated (name taken, VMID in use, …).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database could not be reached or answered an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database backs the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Everything ctforge persists. One implementation per database, chosen at start-up.
#[async_trait]
pub trait Store:
    ClusterStore
    + TemplateStore
    + BucketStore
    + ContainerStore
    + JobStore
    + AccessStore
    + AuditStore
    + RoleStore
    + PresetStore
    + LockStore
    + KeyStore
    + NotificationStore
    + LibraryStore
    + NodeSshStore
    + ImageStore
    + std::fmt::Debug
{
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Checks the database answers and every migration is applied.
    async fn ready(&self) -> StoreResult<()>;
    /// Returns space (after a job and periodically): deletes expired leases, then on SQLite a
    /// WAL checkpoint that truncates a grown WAL (PostgreSQL manages its own log).
    async fn compact(&self) -> StoreResult<()>;
    /// Tells workers in other processes sharing this database that a job may be claimable
    /// (PostgreSQL `NOTIFY`); nothing on SQLite.
    async fn signal_jobs(&self) -> StoreResult<()>;
    /// Those signals as sent by any process (PostgreSQL `LISTEN` on a connection of its own);
    /// `None` where the backend has none (SQLite).
    async fn job_signals(&self) -> StoreResult<Option<JobSignals>>;
}

/// Clusters and their nodes.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Creates a cluster; a taken name is a [`StoreError::Conflict`].
    async fn insert_cluster(&self, input: &ClusterInput) -> StoreResult<i64>;
    /// Replaces a cluster's fields.
    async fn update_cluster(&self, id: i64, input: &ClusterInput) -> StoreResult<()>;
    /// One cluster.
    async fn get_cluster(&self, id: i64) -> StoreResult<Cluster>;
    /// One cluster by name.
    async fn get_cluster_by_name(&self, name: &str) -> StoreResult<Cluster>;
    /// All clusters, default first.
    async fn list_clusters(&self) -> StoreResult<Vec<Cluster>>;
    /// Deletes a cluster and its nodes and container records.
    async fn delete_cluster(&self, id: i64) -> StoreResult<()>;
    /// Replaces the known nodes of a cluster.
    async fn set_cluster_nodes(
        &self,
        cluster_id: i64,
        nodes: &[(String, String)],
    ) -> StoreResult<()>;
    /// Known nodes of a cluster.
    async fn list_cluster_nodes(&self, cluster_id: i64) -> StoreResult<Vec<ClusterNode>>;
}

/// Per-node SSH: address/port overrides and pinned host keys (`node_ssh`).
#[async_trait]
pub trait NodeSshStore: Send + Sync {
    /// Every node of a cluster with SSH settings, by node name.
    async fn list_node_ssh(&self, cluster_id: i64) -> StoreResult<Vec<NodeSsh>>;
    /// Sets (or clears, with `None`) a node's address and port override; the pin stays unless
    /// the address or port changes, since the key belongs to the host that was reached.
    async fn set_node_ssh_override(
        &self,
        cluster_id: i64,
        node: &str,
        address: Option<&str>,
        port: Option<i64>,
    ) -> StoreResult<()>;
    /// Pins (or forgets, with `None`) a node's host key.
    async fn pin_node_host_key(
        &self,
        cluster_id: i64,
        node: &str,
        host_key: Option<&str>,
    ) -> StoreResult<()>;
    /// Records that a container record's guest is now on `node` (after a migration).
    async fn move_container_record(&self, id: i64, node: &str) -> StoreResult<()>;
}

/// Templates (with scripts, files and packages).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Inserts or replaces a template and everything it owns in one transaction. Returns the id
    /// and the previous record, if there was one.
    async fn upsert_template(
        &self,
        record: &TemplateRecord,
    ) -> StoreResult<(i64, Option<TemplateRecord>)>;
    /// One template with its parts.
    async fn get_template(&self, id: i64) -> StoreResult<TemplateRecord>;
    /// One template by name (its row and parts read at once: one round trip on a server
    /// database).
    async fn get_template_by_name(&self, name: &str) -> StoreResult<TemplateRecord>;
    /// All templates with counts, by name.
    async fn list_templates(&self) -> StoreResult<Vec<TemplateSummary>>;
    /// Every template's id and name (what a listing of containers shows of their templates,
    /// without reading whole rows and counting parts).
    async fn template_names(&self) -> StoreResult<Vec<(i64, String)>>;
    /// Deletes a template.
    async fn delete_template(&self, id: i64) -> StoreResult<()>;
    /// Number of container records referencing a template.
    async fn count_template_containers(&self, id: i64) -> StoreResult<i64>;
    /// [`Self::count_template_containers`] of the template named `name` (0 for an unknown
    /// name), so a page can ask it together with [`Self::get_template_by_name`].
    async fn count_template_containers_named(&self, name: &str) -> StoreResult<i64>;
    /// What a template's page shows: the template named `name` with its parts, and how many
    /// containers use it — one round trip on a server database.
    async fn template_page(&self, name: &str) -> StoreResult<(TemplateRecord, i64)>;
}

/// Package buckets and their packages.
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Creates a bucket.
    async fn create_bucket(&self, name: &str, description: &str) -> StoreResult<i64>;
    /// Renames a bucket / changes its description.
    async fn update_bucket(&self, id: i64, name: &str, description: &str) -> StoreResult<()>;
    /// Deletes a bucket.
    async fn delete_bucket(&self, id: i64) -> StoreResult<()>;
    /// All buckets by name.
    async fn list_buckets(&self) -> StoreResult<Vec<Bucket>>;
    /// One bucket.
    async fn get_bucket(&self, id: i64) -> StoreResult<Bucket>;
    /// Adds (or re-versions) packages in a bucket in one transaction.
    async fn add_bucket_packages(
        &self,
        bucket_id: i64,
        packages: &[(String, String, Option<String>)],
    ) -> StoreResult<()>;
    /// Removes packages from a bucket by id.
    async fn remove_bucket_packages(&self, bucket_id: i64, ids: &[i64]) -> StoreResult<u64>;
    /// Packages of a bucket.
    async fn list_bucket_packages(&self, bucket_id: i64) -> StoreResult<Vec<BucketPackage>>;
}

/// Containers ctforge created, their services, credentials and events.
#[async_trait]
pub trait ContainerStore: Send + Sync {
    /// Creates a container record and its creation job atomically.
    async fn create_container_with_job(
        &self,
        container: &NewContainer,
        job: &NewJob,
    ) -> StoreResult<(i64, i64)>;
    /// Creates a container record without a job (a clone of a managed container).
    async fn create_container(&self, container: &NewContainer) -> StoreResult<i64>;
    /// One container.
    async fn get_container(&self, id: i64) -> StoreResult<Container>;
    /// One container by cluster and VMID.
    async fn get_container_by_vmid(&self, cluster_id: i64, vmid: i64) -> StoreResult<Container>;
    /// All container records.
    async fn list_containers(&self) -> StoreResult<Vec<Container>>;
    /// Sets status (and IP when given).
    async fn update_container_status(
        &self,
        id: i64,
        status: RecordStatus,
        ip: Option<&str>,
    ) -> StoreResult<()>;
    /// Sets what the guest is (a record is `lxc` until told otherwise).
    async fn set_container_kind(&self, id: i64, kind: crate::status::GuestKind) -> StoreResult<()>;
    /// Deletes a container record and everything it owns.
    async fn delete_container(&self, id: i64) -> StoreResult<()>;
    /// Replaces the services of a container.
    async fn replace_services(
        &self,
        container_id: i64,
        services: &[ContainerService],
    ) -> StoreResult<()>;
    /// Services of a container.
    async fn list_services(&self, container_id: i64) -> StoreResult<Vec<ContainerService>>;
    /// Stores (or replaces) a sealed credential.
    async fn put_credential(
        &self,
        container_id: i64,
        name: &str,
        value_sealed: &str,
    ) -> StoreResult<()>;
    /// Sealed credentials of a container.
    async fn list_credentials(&self, container_id: i64) -> StoreResult<Vec<ContainerCredential>>;
    /// Stores a VM's fallback SSH key pair (sealed private half) for `login_user`, forgetting
    /// any pinned host key.
    async fn put_guest_ssh_key(
        &self,
        container_id: i64,
        key_sealed: &str,
        public_key: &str,
        login_user: &str,
    ) -> StoreResult<()>;
    /// A VM's fallback SSH key pair and pinned host key, when ctforge made one.
    async fn guest_ssh_key(
        &self,
        container_id: i64,
    ) -> StoreResult<Option<crate::storage::model::GuestSshKey>>;
    /// Pins the guest's SSH host key (first contact); a key already pinned stays.
    async fn pin_guest_host_key(&self, container_id: i64, fingerprint: &str) -> StoreResult<()>;
    /// Records an event on a container.
    async fn add_container_event(
        &self,
        container_id: i64,
        kind: &str,
        message: &str,
        actor: &str,
        data_json: &str,
    ) -> StoreResult<i64>;
    /// Events of a container with an id above `after_id`, oldest first.
    async fn container_events_after(
        &self,
        container_id: i64,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<ContainerEvent>>;
    /// Events of a container, newest first, optionally of one kind, before an id.
    async fn list_container_events(
        &self,
        container_id: i64,
        kind: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<ContainerEvent>>;
}

/// The job queue: leases, steps, results and progress events.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueues a job.
    async fn enqueue_job(&self, job: &NewJob) -> StoreResult<i64>;
    /// Claims the oldest runnable job (queued, or running with an expired lease) for `owner`,
    /// skipping jobs whose node already runs `per_node_limit` jobs.
    async fn claim_job(
        &self,
        owner: &str,
        lease_ms: i64,
        per_node_limit: i64,
    ) -> StoreResult<Option<Job>>;
    /// Extends a lease; false if the lease was lost.
    async fn renew_job_lease(&self, job_id: i64, owner: &str, lease_ms: i64) -> StoreResult<bool>;
    /// Marks the step running (checkpoint before work).
    async fn set_job_step(&self, job_id: i64, owner: &str, step: &str) -> StoreResult<()>;
    /// A checkpoint and the events announcing it in one transaction (one commit rather than
    /// one per statement): `change` applied to the job's row, then `events` appended in order.
    /// `NotFound`, with nothing written, when the change does not apply (the lease was lost,
    /// or the job has ended). Returns the events' sequence numbers.
    async fn checkpoint_job(
        &self,
        job_id: i64,
        owner: &str,
        change: JobChange<'_>,
        events: &[NewJobEvent],
    ) -> StoreResult<Vec<i64>>;
    /// Marks a step done (checkpoint after work).
    async fn complete_job_step(&self, job_id: i64, owner: &str, step: &str) -> StoreResult<()>;
    /// Replaces the job's result (JSON) while `owner` holds its lease; `NotFound` if it does not.
    async fn set_job_result(&self, job_id: i64, owner: &str, result_json: &str) -> StoreResult<()>;
    /// Ends a job (`succeeded`, `failed`, `cancelled`) and drops its lease.
    async fn finish_job(
        &self,
        job_id: i64,
        state: JobState,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Puts a failed job back in the queue to resume from `from_step` (earlier steps stay done).
    async fn retry_job(&self, job_id: i64, keep_steps: &[String]) -> StoreResult<()>;
    /// Replaces the payload of a failed or cancelled job (before a retry); `NotFound` if the
    /// job is in another state.
    async fn set_job_payload(&self, job_id: i64, payload_json: &str) -> StoreResult<()>;
    /// One job.
    async fn get_job(&self, id: i64) -> StoreResult<Job>;
    /// Jobs, newest first.
    async fn list_jobs(&self, limit: i64) -> StoreResult<Vec<Job>>;
    /// How many jobs are in each state (one aggregate query; states with no job are absent).
    async fn count_jobs_by_state(&self) -> StoreResult<Vec<(String, i64)>>;
    /// How many times each job with an id of at least `min_job_id` was retried by a user
    /// (its `retry` events); jobs never retried are absent. The number a user sees as
    /// "attempt N" is one more ([`Job::attempts`] counts worker claims since the last retry).
    async fn job_retry_counts(&self, min_job_id: i64) -> StoreResult<Vec<(i64, i64)>>;
    /// The newest job of a container (its creation job for containers ctforge created).
    async fn latest_container_job(&self, container_id: i64) -> StoreResult<Option<i64>>;
    /// Jobs matching `filter`, newest first.
    async fn find_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;
    /// Appends a progress event and returns its sequence number.
    async fn append_job_event(
        &self,
        job_id: i64,
        kind: &str,
        step: Option<&str>,
        data: &str,
    ) -> StoreResult<i64>;
    /// Appends events of one kind and step in one transaction (a batch of log lines) and
    /// returns the sequence number of the first; `data` empty stores nothing.
    async fn append_job_events(
        &self,
        job_id: i64,
        kind: &str,
        step: Option<&str>,
        data: &[String],
    ) -> StoreResult<i64>;
    /// Events of a job after `after_seq`, in order.
    async fn job_events_after(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<JobEvent>>;
    /// The last `limit` events of a job before `before_seq`, in order (paging backwards).
    async fn job_events_before(
        &self,
        job_id: i64,
        before_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<JobEvent>>;
}

/// Sign-in sessions and API tokens.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a session.
    async fn put_session(&self, session: &SessionRow) -> StoreResult<()>;
    /// One unexpired session.
    async fn get_session(&self, id_hash: &str) -> StoreResult<SessionRow>;
    /// Deletes a session.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes expired sessions; returns how many.
    async fn purge_expired_sessions(&self) -> StoreResult<u64>;
    /// Number of live sessions.
    async fn count_sessions(&self) -> StoreResult<i64>;
    /// Creates an API token (hash only).
    async fn create_api_token(
        &self,
        username: &str,
        name: &str,
        token_hash: &str,
    ) -> StoreResult<i64>;
    /// A live token by hash; records its use.
    async fn use_api_token(&self, token_hash: &str) -> StoreResult<ApiToken>;
    /// Tokens of a user.
    async fn list_api_tokens(&self, username: &str) -> StoreResult<Vec<ApiToken>>;
    /// Revokes a token of a user.
    async fn revoke_api_token(&self, username: &str, id: i64) -> StoreResult<()>;
    /// Stores (or replaces) a wizard draft's sealed secret; expired drafts are purged.
    async fn put_wizard_draft(
        &self,
        id_hash: &str,
        username: &str,
        secret_sealed: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The sealed secret of `username`'s unexpired draft.
    async fn get_wizard_draft(&self, id_hash: &str, username: &str) -> StoreResult<String>;
    /// Deletes a draft (after the creation it served).
    async fn delete_wizard_draft(&self, id_hash: &str) -> StoreResult<()>;
}

/// ctforge role grants, and the cluster each API token acts on.
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Every stored grant, oldest first.
    async fn list_role_grants(&self) -> StoreResult<Vec<RoleGrant>>;
    /// The roles stored for `username` signed in to cluster `cluster_id`.
    async fn roles_of(&self, username: &str, cluster_id: i64) -> StoreResult<Vec<String>>;
    /// What every request's role check reads, in one statement: every cluster's id and name
    /// (for the configured admins), and [`Self::roles_of`] `username` on `cluster_id`.
    async fn role_context(
        &self,
        username: &str,
        cluster_id: i64,
    ) -> StoreResult<(Vec<(i64, String)>, Vec<String>)>;
    /// Stores a grant; an existing identical grant is a [`StoreError::Conflict`].
    async fn insert_role_grant(
        &self,
        username: &str,
        cluster_id: i64,
        role: &str,
        granted_by: &str,
    ) -> StoreResult<i64>;
    /// Deletes a grant.
    async fn delete_role_grant(&self, id: i64) -> StoreResult<()>;
    /// Ties an API token to the cluster it acts on.
    async fn set_api_token_cluster(&self, token_id: i64, cluster_id: i64) -> StoreResult<()>;
    /// One API token by id (revoked or not).
    async fn get_api_token(&self, token_id: i64) -> StoreResult<ApiToken>;
    /// Every user's API tokens, newest first.
    async fn list_all_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
}

/// Presets (saved creation answers).
#[async_trait]
pub trait PresetStore: Send + Sync {
    /// Every preset, by name.
    async fn list_presets(&self) -> StoreResult<Vec<Preset>>;
    /// One preset by name.
    async fn get_preset(&self, name: &str) -> StoreResult<Preset>;
    /// Stores a preset; a taken name is a [`StoreError::Conflict`].
    async fn insert_preset(&self, input: &PresetInput) -> StoreResult<i64>;
    /// Replaces a preset's fields.
    async fn update_preset(&self, id: i64, input: &PresetInput) -> StoreResult<()>;
    /// Deletes a preset.
    async fn delete_preset(&self, id: i64) -> StoreResult<()>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Records an audit entry.
    async fn add_audit(&self, entry: &NewAudit) -> StoreResult<i64>;
    /// Audit entries, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
}

/// Named leases (the database lock backend).
#[async_trait]
pub trait LockStore: Send + Sync {
    /// Takes a named lease if free or expired; true if `owner` now holds it.
    async fn try_lock(&self, name: &str, owner: &str, ttl_ms: i64) -> StoreResult<bool>;
    /// Releases a lease only if `owner` holds it.
    async fn unlock(&self, name: &str, owner: &str) -> StoreResult<bool>;
    /// Deletes leases that have expired (a lease that lapsed is never released by its owner,
    /// e.g. the notifications' per-event dedupe leases); returns how many were deleted.
    async fn purge_expired_locks(&self) -> StoreResult<u64>;
}

/// Sealed values and the key ids that sealed them (key rotation).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every sealed value in the database.
    async fn list_sealed(&self) -> StoreResult<Vec<SealedRef>>;
    /// Rewrites sealed values in one transaction and records the new key id.
    async fn rewrite_sealed(&self, values: &[SealedRef], new_key_id: &str) -> StoreResult<()>;
    /// Records a key id as known (metadata only; key material never enters the database).
    async fn record_key(&self, key_id: &str) -> StoreResult<()>;
    /// Known key ids.
    async fn list_keys(&self) -> StoreResult<Vec<(String, i64, Option<i64>)>>;
}

/// The template library's state: deploy keys of git sources and the config-manager state
/// monitoring read from each container (migration `0012_library`), and what ctforge last
/// applied to each container (migration `0014_applied`).
#[async_trait]
pub trait LibraryStore: Send + Sync {
    /// Stores (or replaces) the sealed deploy key of git source `url`.
    async fn put_git_key(&self, key: &GitSourceKey) -> StoreResult<()>;
    /// The deploy key of git source `url`, if one is stored.
    async fn get_git_key(&self, url: &str) -> StoreResult<Option<GitSourceKey>>;
    /// Every stored deploy key.
    async fn list_git_keys(&self) -> StoreResult<Vec<GitSourceKey>>;
    /// Forgets the deploy key of `url`; [`StoreError::NotFound`] when none is stored.
    async fn delete_git_key(&self, url: &str) -> StoreResult<()>;
    /// Records the config-manager state (JSON) last read from container `container_id`.
    async fn put_config_manager_state(
        &self,
        container_id: i64,
        state_json: &str,
    ) -> StoreResult<()>;
    /// The last recorded config-manager state of `container_id` and when it was read.
    async fn get_config_manager_state(
        &self,
        container_id: i64,
    ) -> StoreResult<Option<(String, i64)>>;
    /// Records what was applied to a container (replacing the previous record; `applied_at`
    /// is set by the store).
    async fn put_applied_template(&self, applied: &AppliedTemplate) -> StoreResult<()>;
    /// What was last applied to `container_id`, if recorded.
    async fn get_applied_template(&self, container_id: i64)
    -> StoreResult<Option<AppliedTemplate>>;
    /// Records the managed files (JSON list of targets) monitoring found changed in
    /// `container_id`.
    async fn put_container_drift(&self, container_id: i64, files_json: &str) -> StoreResult<()>;
    /// The last recorded drifted files of `container_id` (JSON), if checked.
    async fn get_container_drift(&self, container_id: i64) -> StoreResult<Option<String>>;
    /// Every container's recorded drifted files (container id, JSON).
    async fn list_container_drift(&self) -> StoreResult<Vec<(i64, String)>>;
}

/// Images baked from templates (`images`, migration 0013; `images` module).
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Records a new image in state `building`; a building image of the same template, hash,
    /// node and storage is a [`StoreError::Conflict`] (one bake at a time).
    async fn insert_image(&self, image: &NewImage) -> StoreResult<i64>;
    /// One image.
    async fn get_image(&self, id: i64) -> StoreResult<Image>;
    /// Every image (of one cluster when given), newest first.
    async fn list_images(&self, cluster_id: Option<i64>) -> StoreResult<Vec<Image>>;
    /// Images of `template` on `node`/`storage` of a cluster, newest first.
    async fn find_images(
        &self,
        cluster_id: i64,
        template: &str,
        node: &str,
        storage: &str,
    ) -> StoreResult<Vec<Image>>;
    /// Sets the state (and the error for `failed`).
    async fn set_image_state(&self, id: i64, state: &str, error: Option<&str>) -> StoreResult<()>;
    /// Records the bake job.
    async fn set_image_job(&self, id: i64, job_id: i64) -> StoreResult<()>;
    /// Records the VMID the bake uses.
    async fn set_image_vmid(&self, id: i64, vmid: i64) -> StoreResult<()>;
    /// Records the image's root disk size.
    async fn set_image_size(&self, id: i64, size_bytes: i64) -> StoreResult<()>;
    /// Counts one more container made from the image.
    async fn count_image_use(&self, id: i64) -> StoreResult<()>;
    /// Marks the `ready` images of `template` on `node`/`storage` whose hash is not
    /// `current_hash` superseded; returns how many.
    async fn supersede_images(
        &self,
        cluster_id: i64,
        template: &str,
        node: &str,
        storage: &str,
        current_hash: &str,
    ) -> StoreResult<u64>;
    /// Forgets an image.
    async fn delete_image(&self, id: i64) -> StoreResult<()>;
}

/// Notification targets and their delivery attempts (`notify`).
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Creates a target; a taken name is a [`StoreError::Conflict`].
    async fn insert_notification_target(&self, input: &NotificationTargetInput)
    -> StoreResult<i64>;
    /// Replaces a target's fields (not its source or creator).
    async fn update_notification_target(
        &self,
        id: i64,
        input: &NotificationTargetInput,
    ) -> StoreResult<()>;
    /// Deletes a target (its deliveries stay, without the link).
    async fn delete_notification_target(&self, id: i64) -> StoreResult<()>;
    /// One target.
    async fn get_notification_target(&self, id: i64) -> StoreResult<NotificationTargetRow>;
    /// One target by name.
    async fn get_notification_target_by_name(
        &self,
        name: &str,
    ) -> StoreResult<NotificationTargetRow>;
    /// Every target, by name.
    async fn list_notification_targets(&self) -> StoreResult<Vec<NotificationTargetRow>>;
    /// Records a delivery attempt (`id` and `created_at` are assigned).
    async fn add_notification_delivery(&self, delivery: &NotificationDelivery) -> StoreResult<i64>;
    /// Delivery attempts, newest first, optionally of one target, before an id.
    async fn list_notification_deliveries(
        &self,
        target_id: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<NotificationDelivery>>;
}

/// The newest migration version this binary applies on `backend` (a backup records the
/// version it holds; a restore refuses one newer than this).
pub fn latest_migration(backend: Backend) -> i64 {
    sql::latest_migration(backend)
}

/// Which backend a database URL names (the same rule as [`connect`]).
pub fn backend_of(url: &str) -> Backend {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Opens the database at `url` (`sqlite://…` or `postgres://…`), creating a SQLite file if
/// needed, and returns the matching store. Does not migrate.
pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(sql::PgStore::connect(url, clock).await?))
    } else {
        Ok(Arc::new(sql::SqliteStore::connect(url, clock).await?))
    }
}
