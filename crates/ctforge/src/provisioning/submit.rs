//! Planning and submitting a container creation: resolve the request against the template and
//! the live cluster, check permissions with the user's own ticket, then store the container
//! record and its job atomically. The job payload keeps the exact inputs of the plan, so the
//! worker re-derives the very plan the user reviewed.

use serde::{Deserialize, Serialize};

use super::environment;
use super::plan::{self, CreateRequest, Environment, Plan};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::{Cluster, NewContainer, NewJob};

/// Job kind of container creation.
pub const JOB_KIND: &str = "create_container";

/// What the creation job needs to re-derive the plan (never the password: that is sealed on
/// the container record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatePayload {
    /// The request, password removed.
    pub request: CreateRequest,
    /// The template as it was at submit time.
    pub template: Option<ctforge_template::Template>,
    /// The environment the plan was resolved in.
    pub environment: EnvironmentSnapshot,
    /// root@pam's own Proxmox ticket (sealed [`crate::auth::SessionData`]), when the plan has
    /// options only root@pam may set: the create call is made with it.
    #[serde(default)]
    pub root_ticket_sealed: Option<String>,
    /// The git repository and commit of a git-sourced template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_git: Option<crate::templates::git::GitOrigin>,
    /// What the config-manager applies (the pushed version, or the branch it follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_source: Option<plan::ConfigSource>,
    /// Where the container comes from (an image, or scratch) and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<plan::SourceChoice>,
    /// A VM's own SSH public key ctforge made at submit (its private half is sealed on the
    /// record, `guest_ssh_keys`): given to cloud-init after the user's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_ssh_public: Option<String>,
}

/// Serializable copy of [`Environment`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnvironmentSnapshot {
    cluster_id: i64,
    cluster_name: String,
    nodes: Vec<String>,
    next_vmid: u32,
    ostemplates: Vec<String>,
    rootdir_storages: Vec<String>,
    bridges: Vec<String>,
    #[serde(default)]
    image_storages: Vec<String>,
    #[serde(default)]
    import_volumes: Vec<String>,
    #[serde(default)]
    snippet_storages: Vec<String>,
    #[serde(default)]
    clone_source: Option<plan::CloneSource>,
}

impl From<&Environment> for EnvironmentSnapshot {
    fn from(e: &Environment) -> Self {
        Self {
            cluster_id: e.cluster_id,
            cluster_name: e.cluster_name.clone(),
            nodes: e.nodes.clone(),
            next_vmid: e.next_vmid,
            ostemplates: e.ostemplates.clone(),
            rootdir_storages: e.rootdir_storages.clone(),
            bridges: e.bridges.clone(),
            image_storages: e.image_storages.clone(),
            import_volumes: e.import_volumes.clone(),
            snippet_storages: e.snippet_storages.clone(),
            clone_source: e.clone_source.clone(),
        }
    }
}

impl From<&EnvironmentSnapshot> for Environment {
    fn from(e: &EnvironmentSnapshot) -> Self {
        Self {
            cluster_id: e.cluster_id,
            cluster_name: e.cluster_name.clone(),
            nodes: e.nodes.clone(),
            next_vmid: e.next_vmid,
            ostemplates: e.ostemplates.clone(),
            rootdir_storages: e.rootdir_storages.clone(),
            bridges: e.bridges.clone(),
            image_storages: e.image_storages.clone(),
            import_volumes: e.import_volumes.clone(),
            snippet_storages: e.snippet_storages.clone(),
            clone_source: e.clone_source.clone(),
        }
    }
}

impl CreatePayload {
    /// The plan, re-derived by the same code that produced the reviewed one.
    pub fn plan(&self, password: Option<String>) -> Result<Plan, AppError> {
        let mut request = self.request.clone();
        request.password = password;
        if let Some(key) = &self.guest_ssh_public {
            request.ssh_public_keys =
                Some(plan::with_key_line(request.ssh_public_keys.as_deref(), key));
        }
        plan::resolve(
            &request,
            self.template.as_ref(),
            &Environment::from(&self.environment),
        )
        .map(|mut plan| {
            plan.config_source = self.config_source.clone();
            plan.guest_key_pending = false;
            plan.with_source(self.source.clone())
        })
        .map_err(|fields| AppError::Invalid {
            message: "the stored plan no longer resolves".into(),
            fields,
        })
    }
}

/// A client acting for `user`: their own ticket for a session signed in to `cluster`, the
/// cluster token for API tokens; a session of another cluster is refused (it must sign in
/// there), never handed that cluster's token.
pub fn client_for(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
) -> Result<std::sync::Arc<dyn ctforge_pve::PveApi>, AppError> {
    crate::containers::client_for(state, user, cluster)
}

/// The template named (or numbered) `name` with its stored row, read once.
async fn load_template(
    state: &AppState,
    name: Option<&str>,
) -> Result<
    Option<(
        ctforge_template::Template,
        crate::storage::model::TemplateRow,
    )>,
    AppError,
> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let record = match name.parse::<i64>() {
        Ok(id) => state.store.get_template(id).await,
        Err(_) => state.store.get_template_by_name(name).await,
    }
    .map_err(|e| match e {
        StoreError::NotFound => AppError::Invalid {
            message: "unknown template".into(),
            fields: vec![(
                "template".into(),
                format!("no template named {name:?}; run discovery or pick another"),
            )],
        },
        other => other.into(),
    })?;
    let template = crate::templates::convert::record_to_template(&record)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("template {name}: {e}")))?;
    Ok(Some((template, record.row)))
}

/// How long an automatic VMID stays reserved for the creation (or bake) that picked it: from
/// planning until its record holds it (the container record, or the image's `vmid`).
const VMID_RESERVATION_MS: i64 = 5 * 60 * 1000;

/// The lease reserving `vmid` of `cluster_id` (in [`AppState::locks`], so across processes).
fn vmid_lease(cluster_id: i64, vmid: u32) -> String {
    format!("vmid:{cluster_id}:{vmid}")
}

/// The first VMID from `start` that is free in Proxmox, not claimed by a container or image
/// ctforge is still creating, and now reserved for `owner` (Proxmox's `nextid` does not
/// reserve ids, so simultaneous creations would otherwise get the same one: each takes the
/// lease `vmid:<cluster>:<vmid>` atomically, and a taken lease moves it to the next id).
/// `start` is what Proxmox's `nextid` has just answered, so it is not asked about again
/// (submitting re-checks the chosen VMID anyway). `owner: None` (a dry run) reserves nothing.
pub(crate) async fn free_vmid(
    store: &dyn crate::storage::Store,
    locks: &dyn crate::locks::Locks,
    client: &dyn ctforge_pve::PveApi,
    cluster_id: i64,
    start: u32,
    owner: Option<&str>,
) -> Result<u32, AppError> {
    // VMIDs of images (a bake chooses its VMID when it starts) are taken too.
    let images: Vec<i64> = store
        .list_images(Some(cluster_id))
        .await?
        .into_iter()
        .filter_map(|i| i.vmid)
        .collect();
    for candidate in start..start.saturating_add(1000) {
        let ours = images.contains(&i64::from(candidate))
            || store
                .get_container_by_vmid(cluster_id, i64::from(candidate))
                .await
                .is_ok();
        if ours {
            continue;
        }
        if let Some(owner) = owner
            && !locks
                .try_lock(
                    &vmid_lease(cluster_id, candidate),
                    owner,
                    VMID_RESERVATION_MS,
                )
                .await?
        {
            continue;
        }
        if candidate == start
            || ctforge_pve::PveApi::cluster_nextid(client, Some(candidate))
                .await
                .is_ok()
        {
            return Ok(candidate);
        }
        // Taken in Proxmox: the reservation is of no use to anyone.
        if let Some(owner) = owner {
            let _ = locks
                .unlock(&vmid_lease(cluster_id, candidate), owner)
                .await;
        }
    }
    Err(AppError::Unavailable(format!(
        "no free VMID found from {start}; pass one explicitly"
    )))
}

/// Everything a plan needs, looked up for `request`.
pub struct Prepared {
    /// Cluster.
    pub cluster: Cluster,
    /// Template.
    pub template: Option<ctforge_template::Template>,
    /// Template id.
    pub template_id: Option<i64>,
    /// Repository and commit of a git-sourced template.
    pub template_git: Option<crate::templates::git::GitOrigin>,
    /// What the config-manager applies.
    pub config_source: Option<plan::ConfigSource>,
    /// The template's content hash (its version, for the fleet's drift check).
    pub template_hash: Option<String>,
    /// Environment.
    pub environment: Environment,
    /// The resolved plan.
    pub plan: Plan,
    /// Where the container comes from and why.
    pub source: Option<plan::SourceChoice>,
}

/// Resolves a request into a plan (the dry run); nothing is created or reserved.
pub async fn prepare(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
) -> Result<Prepared, AppError> {
    prepare_as(state, user, request, None).await
}

/// [`prepare`], reserving an automatic VMID for `owner` (a submission) when given.
async fn prepare_as(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
    owner: Option<&str>,
) -> Result<Prepared, AppError> {
    let cluster = crate::auth::login::pick_cluster(state, request.cluster.as_deref()).await?;
    let client = client_for(state, user, &cluster)?;
    let loaded = load_template(state, request.template.as_deref()).await?;
    let (template_id, template_git, config_source, template_hash) = match &loaded {
        Some((_, row)) => {
            let git = crate::templates::StoredConfig::parse(&row.name, &row.config_json)
                .ok()
                .and_then(|c| c.git);
            let source = config_source(state, request, row, git.as_ref())?;
            (
                Some(row.id),
                git,
                Some(source),
                Some(row.content_hash.clone()),
            )
        }
        None if request.sync_on_boot => {
            return Err(sync_on_boot_refused(
                "sync on boot needs a template from a git source",
            ));
        }
        None => (None, None, None, None),
    };
    let template = loaded.map(|(template, _)| template);
    let mut environment = environment::lookup(client.as_ref(), &cluster, request.node.as_deref())
        .await
        .map_err(AppError::Unavailable)?;
    environment::read_clone_source(
        client.as_ref(),
        &mut environment,
        request.clone_from,
        request.node.as_deref(),
    )
    .await
    .map_err(AppError::Unavailable)?;
    if request.vmid.is_none() {
        environment.next_vmid = free_vmid(
            state.store.as_ref(),
            state.locks.as_ref(),
            client.as_ref(),
            cluster.id,
            environment.next_vmid,
            owner,
        )
        .await?;
    }
    let plan = plan::resolve(request, template.as_ref(), &environment).map_err(|fields| {
        AppError::Invalid {
            message: "the container settings need attention".into(),
            fields,
        }
    })?;
    let source = match (&template, &template_hash) {
        (Some(t), Some(hash)) => Some(
            crate::images::choose(
                state.store.as_ref(),
                cluster.id,
                &t.name,
                hash,
                &plan,
                request.source,
                state.config.images.auto_build,
            )
            .await?,
        ),
        _ if request.source == Some(plan::SourceKind::Image) => {
            return Err(AppError::Conflict(
                "a container from scratch (no template) has no image; leave \"source\" out".into(),
            ));
        }
        _ => None,
    };
    let plan = plan.with_source(source.clone());
    Ok(Prepared {
        cluster,
        template,
        template_id,
        template_git,
        config_source,
        template_hash,
        environment,
        plan,
        source,
    })
}

fn sync_on_boot_refused(reason: &str) -> AppError {
    AppError::Invalid {
        message: "the container settings need attention".into(),
        fields: vec![("sync_on_boot".into(), reason.to_owned())],
    }
}

/// What the config-manager of a container from template `row` applies: the version ctforge
/// pushes, or (sync on boot) the template's directory in its git repository.
fn config_source(
    state: &AppState,
    request: &CreateRequest,
    row: &crate::storage::model::TemplateRow,
    git: Option<&crate::templates::git::GitOrigin>,
) -> Result<plan::ConfigSource, AppError> {
    let applied = match git {
        Some(g) => format!("commit {}", g.commit),
        None => format!(
            "template {} {}",
            row.name,
            row.content_hash.get(..12).unwrap_or(&row.content_hash)
        ),
    };
    let mut source = plan::ConfigSource {
        applied,
        follow: None,
    };
    if !request.sync_on_boot {
        return Ok(source);
    }
    let Some(git) = git else {
        return Err(sync_on_boot_refused(&format!(
            "sync on boot needs a template from a git source; {} comes from a directory or was made in ctforge",
            row.name
        )));
    };
    if row.diverged {
        return Err(sync_on_boot_refused(&format!(
            "{} was edited in ctforge (diverged from git): the branch would undo those edits on the next boot",
            row.name
        )));
    }
    if crate::templates::git_ssh::ssh_host(&git.url).is_some() {
        return Err(sync_on_boot_refused(
            "sync on boot works with https, git and file sources: the deploy key of an ssh source stays in ctforge",
        ));
    }
    // The template's directory inside the checkout, relative to the repository's root.
    let checkout = crate::templates::git::checkout_dir(&state.config.data_dir, &git.url);
    let dir = row
        .source_path
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.strip_prefix(&checkout).ok())
        .map(|p| p.display().to_string())
        .ok_or_else(|| {
            sync_on_boot_refused(
                "the template's place in its repository is unknown: sync sources first",
            )
        })?;
    let path = if dir.is_empty() {
        ctforge_template::layout::CONTAINER_CONFIGS.to_owned()
    } else {
        format!("{dir}/{}", ctforge_template::layout::CONTAINER_CONFIGS)
    };
    source.follow = Some(plan::FollowGit {
        url: git.url.clone(),
        branch: git.branch.clone(),
        path,
        skip_scripts: request
            .scripts
            .iter()
            .flatten()
            .filter(|c| !c.enabled)
            .map(|c| c.name.clone())
            .collect(),
    });
    Ok(source)
}

/// Outcome of a submission.
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Submitted {
    /// ctforge container id.
    pub id: i64,
    /// VMID.
    pub vmid: u32,
    /// Creation job.
    pub job_id: i64,
}

/// A new ed25519 key pair for VM `vmid`'s fallback SSH channel: (sealed private key, public
/// `authorized_keys` line). The private half is only ever held sealed or as a
/// [`ctforge_ssh::Secret`].
fn guest_ssh_key(state: &AppState, vmid: u32) -> Result<(String, String), AppError> {
    let (private, public) =
        ctforge_ssh::ed25519_key_pair(&rand::random::<[u8; 32]>(), &format!("ctforge@vm-{vmid}"))
            .map_err(|e| AppError::Internal(e.into()))?;
    let sealed = state
        .keyring
        .seal(private.expose())
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok((sealed, public))
}

/// Plans, checks and enqueues a creation.
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
    remote: &str,
) -> Result<Submitted, AppError> {
    // One reservation owner for every attempt of this submission.
    let owner = format!("create:{}", uuid::Uuid::new_v4().simple());
    let mut attempt = 0;
    loop {
        match submit_once(state, user, request, remote, &owner).await {
            // Two automatic VMIDs collided between planning and storing: plan again.
            Err(AppError::Invalid { fields, .. })
                if request.vmid.is_none()
                    && attempt < 3
                    && fields.iter().any(|(f, _)| f == "vmid") =>
            {
                attempt += 1
            }
            other => return other,
        }
    }
}

async fn submit_once(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
    remote: &str,
    owner: &str,
) -> Result<Submitted, AppError> {
    // Proxmox decides VM.Allocate on the VMID before looking at anything else; so does ctforge,
    // before resolving a plan the user may not even see the storages for.
    if let Some(vmid) = request.vmid {
        let cluster = crate::auth::login::pick_cluster(state, request.cluster.as_deref()).await?;
        let rights = crate::authz::Rights::of(state, user, &cluster)?;
        if request.unprivileged == Some(false) {
            rights.require("/", &["Sys.Modify"]).await?;
        }
        rights
            .require(&crate::authz::vm_path(vmid), &["VM.Allocate"])
            .await?;
    }
    let prepared = prepare_as(state, user, request, Some(owner)).await?;
    let submitted = submit_prepared(state, user, request, remote, &prepared).await;
    if submitted.is_err() && request.vmid.is_none() {
        // Nothing holds the automatic VMID: free it for the next creation at once.
        let _ = state
            .locks
            .unlock(&vmid_lease(prepared.cluster.id, prepared.plan.vmid), owner)
            .await;
    }
    submitted
}

/// Checks and stores a prepared creation (its container record and job, atomically).
async fn submit_prepared(
    state: &AppState,
    user: &CurrentUser,
    request: &CreateRequest,
    remote: &str,
    prepared: &Prepared,
) -> Result<Submitted, AppError> {
    let plan = &prepared.plan;
    // The job runs with the cluster's token: first the decision Proxmox would make for this
    // user with these parameters (the job makes it again when it starts).
    let rights = crate::authz::Rights::of(state, user, &prepared.cluster)?;
    let needs = match &plan.qemu {
        Some(_) => {
            crate::authz::create_vm_as_planned(&rights, plan).await?;
            crate::authz::CreateNeeds::default()
        }
        None => crate::authz::create(&rights, &plan.params.to_form()).await?,
    };
    let root_ticket_sealed = match (&user.ticket, needs.root_ticket) {
        (Some(data), true) => Some(
            state
                .keyring
                .seal(&serde_json::to_string(data).map_err(|e| AppError::Internal(e.into()))?)
                .map_err(|e| AppError::Internal(e.into()))?,
        ),
        _ => None,
    };
    // Re-check a VMID the user chose at submit time: someone may have taken it since the form
    // was drawn. An automatic one Proxmox has just named free (in `prepare`, a moment ago);
    // two ctforge creations picking it at once are told apart by the store (a conflict plans
    // again).
    let client = client_for(state, user, &prepared.cluster)?;
    let recheck = match request.vmid {
        Some(_) => ctforge_pve::PveApi::cluster_nextid(client.as_ref(), Some(plan.vmid))
            .await
            .map(|_| ()),
        None => Ok(()),
    };
    if let Err(e) = recheck {
        return Err(AppError::Invalid {
            message: "the VMID is taken".into(),
            fields: vec![(
                "vmid".into(),
                format!(
                    "VMID {} is in use ({e}); choose another or leave it empty",
                    plan.vmid
                ),
            )],
        });
    }
    let password_sealed = match request.password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => Some(
            state
                .keyring
                .seal(p)
                .map_err(|e| AppError::Internal(e.into()))?,
        ),
        None => None,
    };
    let mut stored_request = request.clone();
    stored_request.password = None;
    stored_request.vmid = Some(plan.vmid);
    stored_request.node = Some(plan.node.clone());
    let guest_key = match plan.kind {
        crate::status::GuestKind::Qemu => Some(guest_ssh_key(state, plan.vmid)?),
        crate::status::GuestKind::Lxc => None,
    };
    let mut payload = CreatePayload {
        request: stored_request,
        template: prepared.template.clone(),
        environment: EnvironmentSnapshot::from(&prepared.environment),
        root_ticket_sealed,
        template_git: prepared.template_git.clone(),
        config_source: prepared.config_source.clone(),
        source: prepared.source.clone(),
        guest_ssh_public: None,
    };
    // The reviewed plan with the VM's own key in its cloud-init keys, re-derived as the job
    // will derive it.
    let keyed;
    let plan = match &guest_key {
        Some((_, public)) => {
            payload.guest_ssh_public = Some(public.clone());
            keyed = payload.plan(request.password.clone())?;
            &keyed
        }
        None => plan,
    };
    let payload_json = serde_json::to_string(&payload).map_err(|e| AppError::Internal(e.into()))?;
    let mut spec = serde_json::to_value(plan.view()).map_err(|e| AppError::Internal(e.into()))?;
    // The container's own record keeps the commit too, for its page.
    if let (Some(git), Some(object)) = (&prepared.template_git, spec.as_object_mut()) {
        let git = serde_json::to_value(git).map_err(|e| AppError::Internal(e.into()))?;
        object.insert("template_git".to_owned(), git);
    }
    // And the template's version, which the fleet compares with today's.
    if let (Some(hash), Some(object)) = (&prepared.template_hash, spec.as_object_mut()) {
        object.insert(
            crate::fleet::SPEC_TEMPLATE_HASH.to_owned(),
            serde_json::Value::String(hash.clone()),
        );
    }
    let container = NewContainer {
        cluster_id: prepared.cluster.id,
        node: plan.node.clone(),
        vmid: i64::from(plan.vmid),
        hostname: plan.hostname.clone(),
        template_id: prepared.template_id,
        status: crate::status::RecordStatus::Creating,
        spec_json: spec.to_string(),
        root_password_sealed: password_sealed,
        created_by: user.username.clone(),
    };
    let job = NewJob {
        kind: JOB_KIND.into(),
        container_id: None,
        node: Some(plan.node.clone()),
        payload_json,
        created_by: user.username.clone(),
    };
    let (id, job_id) = state
        .store
        .create_container_with_job(&container, &job)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AppError::Invalid {
                message: "the VMID is taken".into(),
                fields: vec![(
                    "vmid".into(),
                    format!("ctforge already has a container with VMID {}", plan.vmid),
                )],
            },
            other => other.into(),
        })?;
    if plan.kind != crate::status::GuestKind::Lxc {
        state.store.set_container_kind(id, plan.kind).await?;
    }
    if let Some((sealed, public)) = &guest_key {
        let user = plan
            .qemu
            .as_ref()
            .and_then(|q| q.ciuser.as_deref())
            .unwrap_or("root");
        state
            .store
            .put_guest_ssh_key(id, sealed, public, user)
            .await?;
    }
    let _ = state
        .store
        .add_container_event(
            id,
            "create_requested",
            &format!("creation of {} (VMID {}) queued", plan.hostname, plan.vmid),
            &user.username,
            "{}",
        )
        .await;
    let entry = crate::audit::Entry::new(
        &user.username,
        "ct.create",
        format!("{}/{}", prepared.cluster.name, plan.vmid),
        remote,
    )
    .detail(serde_json::json!({ "id": id, "job": job_id, "type": plan.kind.as_str() }));
    if let Err(e) = crate::audit::record(state.store.as_ref(), entry).await {
        // An unaudited creation does not run: the job is cancelled before a worker acts on it.
        if let Err(cancel) = state.jobs.cancel(job_id, &user.username).await {
            tracing::error!(job_id, error = %cancel, "cannot cancel the unaudited creation job");
        }
        return Err(e);
    }
    // Audited: now a worker may start it (this process's at once, others' by signal).
    state.jobs.wake().await;
    Ok(Submitted {
        id,
        vmid: plan.vmid,
        job_id,
    })
}
