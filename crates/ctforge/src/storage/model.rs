//! Rows as the storage layer reads and writes them. Plain data: no behaviour, no wire format
//! beyond what the database needs. Timestamps are Unix milliseconds.

use sqlx::FromRow;

use crate::status::{JobState, RecordStatus};

/// A configured Proxmox VE cluster.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Cluster {
    /// Row id.
    pub id: i64,
    /// Unique display name.
    pub name: String,
    /// API base URL.
    pub url: String,
    /// API token id (`user@realm!tokenid`).
    pub token_id: String,
    /// Sealed API token secret.
    pub token_secret_sealed: Option<String>,
    /// Pinned TLS certificate SHA-256 fingerprint.
    pub fingerprint: Option<String>,
    /// SSH user for the `pct` channel.
    pub ssh_user: String,
    /// SSH port.
    pub ssh_port: i64,
    /// Sealed SSH password.
    pub ssh_password_sealed: Option<String>,
    /// Sealed SSH private key.
    pub ssh_key_sealed: Option<String>,
    /// Pinned SSH host key.
    pub ssh_host_key: Option<String>,
    /// Whether this is the default cluster.
    pub is_default: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// The fields of a cluster a user sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterInput {
    /// Unique display name.
    pub name: String,
    /// API base URL.
    pub url: String,
    /// API token id.
    pub token_id: String,
    /// Sealed API token secret.
    pub token_secret_sealed: Option<String>,
    /// Pinned TLS fingerprint.
    pub fingerprint: Option<String>,
    /// SSH user.
    pub ssh_user: String,
    /// SSH port.
    pub ssh_port: i64,
    /// Sealed SSH password.
    pub ssh_password_sealed: Option<String>,
    /// Sealed SSH private key.
    pub ssh_key_sealed: Option<String>,
    /// Pinned SSH host key.
    pub ssh_host_key: Option<String>,
    /// Default cluster flag.
    pub is_default: bool,
}

impl From<&Cluster> for ClusterInput {
    fn from(c: &Cluster) -> Self {
        Self {
            name: c.name.clone(),
            url: c.url.clone(),
            token_id: c.token_id.clone(),
            token_secret_sealed: c.token_secret_sealed.clone(),
            fingerprint: c.fingerprint.clone(),
            ssh_user: c.ssh_user.clone(),
            ssh_port: c.ssh_port,
            ssh_password_sealed: c.ssh_password_sealed.clone(),
            ssh_key_sealed: c.ssh_key_sealed.clone(),
            ssh_host_key: c.ssh_host_key.clone(),
            is_default: c.is_default,
        }
    }
}

/// A node's SSH settings: an address/port override and the pinned host key (migration 0010).
#[derive(Clone, Debug, FromRow, PartialEq, Eq, Default)]
pub struct NodeSsh {
    /// Owning cluster.
    pub cluster_id: i64,
    /// Node name.
    pub node: String,
    /// Address override (`None`: the node's ip from `/cluster/status`).
    pub address: Option<String>,
    /// Port override (`None`: the cluster's `ssh_port`).
    pub port: Option<i64>,
    /// Pinned host key fingerprint (`SHA256:…`).
    pub host_key: Option<String>,
    /// Last change.
    pub updated_at: i64,
}

/// A node of a cluster as last seen.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct ClusterNode {
    /// Row id.
    pub id: i64,
    /// Owning cluster.
    pub cluster_id: i64,
    /// Node name.
    pub name: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    /// Last time the node answered.
    pub last_seen: Option<i64>,
}

/// A template's header row.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct TemplateRow {
    /// Row id.
    pub id: i64,
    /// Unique name (the directory name for filesystem templates).
    pub name: String,
    /// `filesystem` or `custom`.
    pub source: String,
    /// Directory it was discovered in.
    pub source_path: Option<String>,
    /// Display name.
    pub app: String,
    /// Description.
    pub description: String,
    /// Tags joined with `;`.
    pub tags: String,
    /// The full parsed `template.conf` as JSON.
    pub config_json: String,
    /// Hash of the content, to make re-discovery idempotent.
    pub content_hash: String,
    /// A filesystem template edited in the UI.
    pub diverged: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A provisioning script of a template.
#[derive(Clone, Debug, FromRow, PartialEq, Eq, serde::Deserialize)]
pub struct TemplateScript {
    /// Run order.
    pub position: i64,
    /// File name, e.g. `10-setup.sh`.
    pub name: String,
    /// Script text.
    pub content: String,
    /// Whether it runs by default.
    pub enabled: bool,
}

/// A file a template deploys.
#[derive(Clone, Debug, FromRow, PartialEq, Eq, serde::Deserialize)]
pub struct TemplateFile {
    /// File name.
    pub name: String,
    /// Target directory in the container.
    pub target_dir: String,
    /// `replace`, `default` or `backup`.
    pub policy: String,
    /// File content.
    pub content: String,
}

/// A package of a template's bucket.
#[derive(Clone, Debug, FromRow, PartialEq, Eq, serde::Deserialize)]
pub struct TemplatePackage {
    /// Bucket (package list file stem).
    pub bucket: String,
    /// `apt`, `apk`, `dnf`, `npm`, `pip`.
    pub manager: String,
    /// Package name.
    pub name: String,
    /// Pinned version.
    pub version: Option<String>,
    /// Order within the bucket.
    pub position: i64,
}

/// A template with everything it owns, as written in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRecord {
    /// Header (id and timestamps are ignored on write).
    pub row: TemplateRow,
    /// Scripts in order.
    pub scripts: Vec<TemplateScript>,
    /// Files.
    pub files: Vec<TemplateFile>,
    /// Packages.
    pub packages: Vec<TemplatePackage>,
}

/// A template with its counts, for lists.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct TemplateSummary {
    /// Header.
    #[sqlx(flatten)]
    pub row: TemplateRow,
    /// Number of scripts.
    pub script_count: i64,
    /// Number of files.
    pub file_count: i64,
    /// Number of packages.
    pub package_count: i64,
}

/// A named, reusable package list.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Bucket {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A package of a bucket.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct BucketPackage {
    /// Row id.
    pub id: i64,
    /// Owning bucket.
    pub bucket_id: i64,
    /// Package manager.
    pub manager: String,
    /// Package name.
    pub name: String,
    /// Pinned version.
    pub version: Option<String>,
}

/// A container ctforge created (or adopted).
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Container {
    /// Row id.
    pub id: i64,
    /// Cluster.
    pub cluster_id: i64,
    /// Node it lives on.
    pub node: String,
    /// Proxmox VMID.
    pub vmid: i64,
    /// Hostname.
    pub hostname: String,
    /// Template it was built from.
    pub template_id: Option<i64>,
    /// `creating`, `ready`, `error`, `deleting`.
    #[sqlx(try_from = "String")]
    pub status: RecordStatus,
    /// Known IPv4 address.
    pub ip: Option<String>,
    /// The creation request as JSON.
    pub spec_json: String,
    /// Sealed root password.
    pub root_password_sealed: Option<String>,
    /// User who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// A container or a virtual machine (migration 0015; `lxc` for older records).
    #[sqlx(try_from = "String")]
    pub kind: crate::status::GuestKind,
}

/// The fields of a new container record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewContainer {
    /// Cluster.
    pub cluster_id: i64,
    /// Node.
    pub node: String,
    /// VMID.
    pub vmid: i64,
    /// Hostname.
    pub hostname: String,
    /// Template.
    pub template_id: Option<i64>,
    /// Initial status.
    pub status: RecordStatus,
    /// Creation request as JSON.
    pub spec_json: String,
    /// Sealed root password.
    pub root_password_sealed: Option<String>,
    /// Creating user.
    pub created_by: String,
}

/// A service discovered in a container.
#[derive(
    Clone,
    Debug,
    Default,
    FromRow,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct ContainerService {
    /// systemd unit name.
    pub unit: String,
    /// `active`, `inactive`, `failed`, …
    pub active_state: String,
    /// systemd sub-state.
    pub sub_state: String,
    /// Enabled at boot.
    pub enabled: bool,
    /// Listening port.
    pub port: Option<i64>,
    /// Web URL (`http(s)://<ip>:<port>`; `https` once TLS answered there).
    pub url: Option<String>,
    /// Last check.
    pub updated_at: i64,
    /// The web page's `<title>`, when the port answered HTTP(S) with one.
    pub web_title: Option<String>,
    /// Whether anything answered on the port at the last web-link probe (none: not probed).
    pub web_answered: Option<bool>,
    /// When the web link was last probed.
    pub web_checked_at: Option<i64>,
}

/// A VM's fallback SSH key (migration 0018): the private half sealed, never shown.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct GuestSshKey {
    /// The private key (OpenSSH form), sealed with the keyring.
    pub key_sealed: String,
    /// Its `authorized_keys` line, as cloud-init was given it.
    pub public_key: String,
    /// The user cloud-init gave it to (`ciuser`).
    pub login_user: String,
    /// The guest's SSH host key (`SHA256:…`), pinned on first contact.
    pub host_key: Option<String>,
}

/// A credential found in a container, sealed.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct ContainerCredential {
    /// Row id.
    pub id: i64,
    /// Name (the credential file name).
    pub name: String,
    /// Sealed value.
    pub value_sealed: String,
    /// Discovery time.
    pub created_at: i64,
}

/// Something that happened to a container.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Row id (ordering).
    pub id: i64,
    /// Container.
    pub container_id: i64,
    /// Event type (`created`, `started`, `service_down`, …).
    pub kind: String,
    /// Human-readable text.
    pub message: String,
    /// Who caused it.
    pub actor: String,
    /// Extra data as JSON.
    pub data_json: String,
    /// Time.
    pub created_at: i64,
}

/// A durable background job.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// `create_container`, `lifecycle`, …
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    #[sqlx(try_from = "String")]
    pub state: JobState,
    /// Container it works on.
    pub container_id: Option<i64>,
    /// Node it works on (for per-node limits).
    pub node: Option<String>,
    /// Input as JSON.
    pub payload_json: String,
    /// Step running or failed.
    pub current_step: Option<String>,
    /// Steps done, comma separated, in order.
    pub completed_steps: String,
    /// How many times it was claimed.
    pub attempts: i64,
    /// Failure text.
    pub error: Option<String>,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry.
    pub lease_expires: Option<i64>,
    /// User who enqueued it.
    pub created_by: String,
    /// Enqueue time.
    pub created_at: i64,
    /// First start.
    pub started_at: Option<i64>,
    /// End time.
    pub finished_at: Option<i64>,
    /// The job's result as JSON, if its handler records one (kept across retries).
    pub result_json: Option<String>,
}

/// The fields of a new job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewJob {
    /// Job kind.
    pub kind: String,
    /// Container.
    pub container_id: Option<i64>,
    /// Node.
    pub node: Option<String>,
    /// Input as JSON.
    pub payload_json: String,
    /// Enqueuing user.
    pub created_by: String,
}

/// A persisted progress event of a job (step change, log line, completion).
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct JobEvent {
    /// Job.
    pub job_id: i64,
    /// Sequence number within the job, from 1 (the SSE event id).
    pub seq: i64,
    /// `step`, `log`, `progress`, `done`, `error`.
    pub kind: String,
    /// Step it belongs to.
    pub step: Option<String>,
    /// Payload (a log line or JSON).
    pub data: String,
    /// Time.
    pub created_at: i64,
}

/// A progress event to append (the store assigns its sequence number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJobEvent {
    /// `step`, `complete`, `done`, `error`…
    pub kind: String,
    /// Step it belongs to.
    pub step: Option<String>,
    /// Payload (a log line or JSON).
    pub data: String,
}

/// What a job checkpoint changes on the job's row
/// ([`crate::storage::JobStore::checkpoint_job`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobChange<'a> {
    /// The step is running (while the owner holds the lease).
    Begin(&'a str),
    /// The step is done (while the owner holds the lease).
    Complete(&'a str),
    /// The job ended (unless it ended already, e.g. cancelled by a user); drops the lease.
    Finish {
        /// `succeeded`, `failed` or `cancelled`.
        state: crate::status::JobState,
        /// Why it failed.
        error: Option<&'a str>,
    },
}

/// A signed-in browser session.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie value (the cookie itself is never stored).
    pub id_hash: String,
    /// Proxmox user id.
    pub username: String,
    /// Sealed session data (the Proxmox ticket).
    pub data_sealed: String,
    /// CSRF token bound to the session.
    pub csrf_token: String,
    /// Expiry.
    pub expires_at: i64,
    /// Creation time.
    pub created_at: i64,
}

/// A ctforge API token for automation.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct ApiToken {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub username: String,
    /// Name given by the user.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Creation time.
    pub created_at: i64,
    /// Last use.
    pub last_used: Option<i64>,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// The cluster the token acts on (its creator's sign-in); `None` for tokens older than
    /// this column: they act on the default cluster.
    pub cluster_id: Option<i64>,
}

/// A stored ctforge role grant (`role_grants`).
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct RoleGrant {
    /// Row id.
    pub id: i64,
    /// Proxmox user id (`alice@pve`).
    pub username: String,
    /// The cluster the identity signs in to.
    pub cluster_id: i64,
    /// `admin`, `editor` or `auditor`.
    pub role: String,
    /// Who granted it.
    pub granted_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// One audited action.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// Time.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`login`, `login_failed`, `ct.start`, `credential.reveal`, …).
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub remote_addr: String,
    /// `ok` or `denied`/`error`.
    pub outcome: String,
    /// Extra data as JSON.
    pub detail_json: String,
}

/// The fields of a new audit entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAudit {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub remote_addr: String,
    /// Outcome.
    pub outcome: String,
    /// Extra data as JSON.
    pub detail_json: String,
}

/// Filters of the job list (all optional; newest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs of this container record.
    pub container_id: Option<i64>,
    /// Jobs with an id below this (paging backwards).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// Filters for the audit log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Entries with id below this (paging backwards).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// A sealed value somewhere in the database (for key rotation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRef {
    /// Table.
    pub table: &'static str,
    /// Column.
    pub column: &'static str,
    /// Primary key as text.
    pub key: String,
    /// The sealed value.
    pub value: String,
}

/// What ctforge last applied to a container (`container_applied`, migration `0014_applied`):
/// the template's name and content hash and the template as JSON (`ctforge_template::Template`).
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct AppliedTemplate {
    /// The container.
    pub container_id: i64,
    /// Template name.
    pub template_name: String,
    /// The template's content hash when it was applied.
    pub template_hash: String,
    /// The template as applied (JSON).
    pub template_json: String,
    /// The job that applied it.
    pub job_id: Option<i64>,
    /// When (Unix ms).
    pub applied_at: i64,
}

/// The deploy key of an ssh git template source (`git_source_keys`).
#[derive(Clone, FromRow, PartialEq, Eq)]
pub struct GitSourceKey {
    /// The source's URL (as configured).
    pub url: String,
    /// The private key, sealed with the keyring.
    pub deploy_key_sealed: String,
    /// The public key's fingerprint (`SHA256:…`), the only form ever shown.
    pub key_fingerprint: String,
    /// The pinned fingerprint of the git server's host key (`SHA256:…`), once confirmed.
    pub host_key: Option<String>,
    /// Last change.
    pub updated_at: i64,
}

impl std::fmt::Debug for GitSourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSourceKey")
            .field("url", &self.url)
            .field("key_fingerprint", &self.key_fingerprint)
            .field("host_key", &self.host_key)
            .finish_non_exhaustive()
    }
}

/// A stored notification target (`notification_targets`); `settings_json` and `rules_json`
/// are decoded by `notify::targets`.
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct NotificationTargetRow {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// `webhook`, `ntfy`, `gotify` or `email`.
    pub kind: String,
    /// Non-secret settings as JSON.
    pub settings_json: String,
    /// Event kinds and parameters as JSON.
    pub rules_json: String,
    /// The sealed secret (HMAC key, token or SMTP password).
    pub secret_sealed: Option<String>,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// `settings` or `configuration`.
    pub source: String,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// The fields of a notification target as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationTargetInput {
    /// Unique name.
    pub name: String,
    /// `webhook`, `ntfy`, `gotify` or `email`.
    pub kind: String,
    /// Non-secret settings as JSON.
    pub settings_json: String,
    /// Event kinds and parameters as JSON.
    pub rules_json: String,
    /// The sealed secret.
    pub secret_sealed: Option<String>,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// `settings` or `configuration`.
    pub source: String,
    /// Who creates or changes it.
    pub actor: String,
}

/// One delivery attempt of a notification (`notification_deliveries`).
#[derive(Clone, Debug, Default, FromRow, PartialEq, Eq)]
pub struct NotificationDelivery {
    /// Row id.
    pub id: i64,
    /// The target, unless it was deleted since.
    pub target_id: Option<i64>,
    /// The target's name at the time.
    pub target_name: String,
    /// Event kind (`job_failed`, …, or `test`).
    pub event_kind: String,
    /// Deduplication key of the event.
    pub event_key: String,
    /// The notification's title.
    pub title: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// `sent`, `failed` or `suppressed` (rate limit).
    pub status: String,
    /// Why it failed or was suppressed.
    pub error: Option<String>,
    /// When.
    pub created_at: i64,
}

/// A saved set of creation answers (`presets`).
#[derive(Clone, Debug, FromRow, PartialEq, Eq)]
pub struct Preset {
    /// Row id.
    pub id: i64,
    /// Unique name (`web-small`).
    pub name: String,
    /// Template name.
    pub template: String,
    /// The create request's fields as a JSON object.
    pub values_json: String,
    /// Who saved it.
    pub owner: String,
    /// Visible to every user (set by an admin).
    pub shared: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// The fields of a preset to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetInput {
    /// Unique name.
    pub name: String,
    /// Template name.
    pub template: String,
    /// The values as a JSON object.
    pub values_json: String,
    /// Owner.
    pub owner: String,
    /// Shared with everyone.
    pub shared: bool,
}

/// An image: a Proxmox CT template baked from one template version (`images`, migration 0013).
#[derive(Clone, Debug, FromRow, PartialEq, Eq, Default)]
pub struct Image {
    /// Id.
    pub id: i64,
    /// Cluster.
    pub cluster_id: i64,
    /// ctforge template name.
    pub template_name: String,
    /// The template's content hash (its version).
    pub content_hash: String,
    /// OS template volume the image was created from.
    pub ostemplate: String,
    /// Node holding it.
    pub node: String,
    /// Storage of its root disk.
    pub storage: String,
    /// VMID of the Proxmox CT template, once chosen.
    pub vmid: Option<i64>,
    /// `building`, `ready`, `failed` or `superseded` (`images::ImageState`).
    pub state: String,
    /// Root disk size in bytes, once known.
    pub size_bytes: Option<i64>,
    /// Containers made from it.
    pub containers: i64,
    /// The bake job.
    pub job_id: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who asked for it (or whose creation triggered it).
    pub created_by: String,
    /// Created.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Input of [`crate::storage::ImageStore::insert_image`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewImage {
    /// Cluster.
    pub cluster_id: i64,
    /// ctforge template name.
    pub template_name: String,
    /// The template's content hash.
    pub content_hash: String,
    /// OS template volume.
    pub ostemplate: String,
    /// Node.
    pub node: String,
    /// Storage.
    pub storage: String,
    /// Who asked.
    pub created_by: String,
}
