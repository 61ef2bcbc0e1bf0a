//! Images (bake once): a Proxmox CT template baked from one template version (its content
//! hash) for an OS template on a node and storage. This module owns the use-cases around them:
//! which source a creation uses ([`choose`], [`preview`] for the wizard's Review), building on demand ([`request_build`]) and after
//! a template's first creation ([`after_creation`]), the listing ([`list`]), deletion
//! ([`delete`]) and garbage collection ([`gc`], [`spawn_gc`]). The bake itself is the
//! [`bake::BakeImage`] job; cloning from an image is a mode of the creation pipeline.

pub mod bake;

use std::time::Duration;

use ctforge_pve::PveApi;
use serde::{Deserialize, Serialize};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::provisioning::plan::{ImageRef, Plan, SourceChoice, SourceKind};
use crate::provisioning::submit::CreatePayload;
use crate::state::AppState;
use crate::storage::model::{Image, NewImage, NewJob};
use crate::storage::{Store, StoreError};

/// Job kind of an image's bake.
pub const BAKE_JOB_KIND: &str = "bake_image";

/// The state of an image (stored as text in `images.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageState {
    /// Its bake job runs.
    Building,
    /// Usable: new containers of its template version clone it.
    Ready,
    /// The bake failed (garbage-collected).
    Failed,
    /// A newer template version has its own image; kept while containers were made from it.
    Superseded,
}

impl ImageState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Building => "building",
            ImageState::Ready => "ready",
            ImageState::Failed => "failed",
            ImageState::Superseded => "superseded",
        }
    }

    /// Reads the stored text (unknown text reads as failed: never cloned, collectable).
    pub fn parse(s: &str) -> Self {
        match s {
            "building" => ImageState::Building,
            "ready" => ImageState::Ready,
            "superseded" => ImageState::Superseded,
            _ => ImageState::Failed,
        }
    }
}

/// One image as the Images view and `GET /api/v1/images` show it.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageView {
    /// Id.
    pub id: i64,
    /// Cluster name.
    pub cluster: String,
    /// Template name.
    pub template: String,
    /// Template version (first 12 characters of the content hash).
    pub version: String,
    /// The template's full content hash.
    pub content_hash: String,
    /// OS template it was created from.
    pub ostemplate: String,
    /// Node.
    pub node: String,
    /// Storage.
    pub storage: String,
    /// VMID of the Proxmox CT template.
    pub vmid: Option<i64>,
    /// `building`, `ready`, `failed`, `superseded`.
    pub state: ImageState,
    /// Root disk size in bytes.
    pub size_bytes: Option<i64>,
    /// Containers made from it.
    pub containers: i64,
    /// Created (Unix milliseconds).
    pub created_at: i64,
    /// Age in seconds.
    pub age_secs: i64,
    /// The bake job.
    pub job_id: Option<i64>,
    /// Why the bake failed.
    pub error: Option<String>,
}

impl ImageView {
    /// The state as text.
    pub fn state_text(&self) -> &'static str {
        self.state.as_str()
    }
}

/// `GET /api/v1/images`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageList {
    /// Newest first.
    pub images: Vec<ImageView>,
}

/// The body of `POST /api/v1/images`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// Template name.
    pub template: String,
    /// Cluster; the default one when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Node; the first online node when absent.
    #[serde(default)]
    pub node: Option<String>,
    /// Storage; the template's or the node's first when absent.
    #[serde(default)]
    pub storage: Option<String>,
}

/// A bake was queued.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BuildStarted {
    /// The image.
    pub image_id: i64,
    /// Its bake job.
    pub job_id: i64,
}

/// The bake job's payload: the image and the creation inputs it bakes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BakePayload {
    /// The image being baked.
    pub image_id: i64,
    /// The creation the image is made by (request, template snapshot, environment).
    pub create: CreatePayload,
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The storage of the plan's root disk (`rootfs` = `<storage>:<size>`).
pub fn plan_storage(plan: &Plan) -> String {
    form_value(plan, "rootfs")
        .and_then(|v| v.split(':').next().map(str::to_owned))
        .unwrap_or_default()
}

fn form_value(plan: &Plan, key: &str) -> Option<String> {
    plan.params
        .to_form()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The images of `template` on `node`/`storage`, newest first; one left `building` by a bake
/// job that ended without saying so (cancelled) reads, and is stored, as failed.
async fn images_of(
    store: &dyn Store,
    cluster_id: i64,
    template: &str,
    node: &str,
    storage: &str,
) -> Result<Vec<Image>, StoreError> {
    let mut images = store
        .find_images(cluster_id, template, node, storage)
        .await?;
    for image in &mut images {
        if ImageState::parse(&image.state) != ImageState::Building {
            continue;
        }
        let Some(job_id) = image.job_id else {
            continue;
        };
        if let Ok(job) = store.get_job(job_id).await
            && job.state.is_finished()
            && job.state != crate::status::JobState::Succeeded
        {
            let why = format!("bake job {job_id} ended {}", job.state.as_str());
            store
                .set_image_state(image.id, ImageState::Failed.as_str(), Some(&why))
                .await?;
            image.state = ImageState::Failed.as_str().to_owned();
            image.error = Some(why);
        }
    }
    Ok(images)
}

/// Where a creation from `template` (version `hash`) with `plan` comes from: its ready image
/// on the plan's node and storage, else scratch; `requested` forces one (an image that is not
/// there is a 409 saying why).
pub async fn choose(
    store: &dyn Store,
    cluster_id: i64,
    template: &str,
    hash: &str,
    plan: &Plan,
    requested: Option<SourceKind>,
    auto_build: bool,
) -> Result<SourceChoice, AppError> {
    let node = plan.node.as_str();
    let storage = plan_storage(plan);
    let label = format!("{template}@{}", short(hash));
    if requested == Some(SourceKind::Scratch) {
        return Ok(SourceChoice {
            kind: SourceKind::Scratch,
            reason: "from scratch, as asked (\"source\": \"scratch\")".into(),
            image: None,
            template_hash: Some(hash.to_owned()),
        });
    }
    if requested == Some(SourceKind::Bake) {
        return Err(AppError::Invalid {
            message: "the container settings need attention".into(),
            fields: vec![(
                "source".into(),
                "use \"image\" or \"scratch\" (images are built with POST /api/v1/images)".into(),
            )],
        });
    }
    let images = images_of(store, cluster_id, template, node, &storage).await?;
    let current = |i: &&Image| i.content_hash == hash;
    let ready = images
        .iter()
        .filter(current)
        .find(|i| ImageState::parse(&i.state) == ImageState::Ready && i.vmid.is_some());
    if let Some(image) = ready {
        let vmid = image
            .vmid
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or_default();
        return Ok(SourceChoice {
            kind: SourceKind::Image,
            reason: format!(
                "cloned from image {} (CT template {vmid}) of {label}, ready on {node}/{storage}: \
                 only the per-instance steps run",
                image.id
            ),
            image: Some(ImageRef {
                image_id: image.id,
                vmid,
                node: image.node.clone(),
                storage: image.storage.clone(),
            }),
            template_hash: Some(hash.to_owned()),
        });
    }
    let building = images
        .iter()
        .filter(current)
        .find(|i| ImageState::parse(&i.state) == ImageState::Building);
    let why = match building {
        Some(b) => format!(
            "the image of {label} on {node}/{storage} is still being built (job {})",
            b.job_id
                .map(|j| j.to_string())
                .unwrap_or_else(|| "queued".into())
        ),
        None => format!("there is no ready image of {label} on {node}/{storage}"),
    };
    if requested == Some(SourceKind::Image) {
        return Err(AppError::Conflict(format!(
            "{why}; create from scratch or build the image first (POST /api/v1/images)"
        )));
    }
    let after = if building.is_none() && auto_build {
        "; an image is built after this creation"
    } else {
        ""
    };
    Ok(SourceChoice {
        kind: SourceKind::Scratch,
        reason: format!("from scratch: {why}{after}"),
        image: None,
        template_hash: Some(hash.to_owned()),
    })
}

/// The source a creation of `plan` would use, for a form's review: [`choose`] with the
/// template's stored version (`requested` as the user picked it). `Ok(None)` without a
/// template; `Err` is the reason a forced image cannot be used (or the store's failure).
pub async fn preview(
    state: &AppState,
    cluster_id: i64,
    plan: &Plan,
    requested: Option<SourceKind>,
) -> Result<Option<SourceChoice>, AppError> {
    let Some(template) = plan.template.as_deref() else {
        return Ok(None);
    };
    let record = match state.store.get_template_by_name(template).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    choose(
        state.store.as_ref(),
        cluster_id,
        template,
        &record.row.content_hash,
        plan,
        requested,
        state.config.images.auto_build,
    )
    .await
    .map(Some)
}

/// Queues the bake of an image of `create`'s template (version `hash`) on its node and
/// storage. `None` when one is being built already.
pub async fn enqueue_bake(
    store: &dyn Store,
    plan: &Plan,
    hash: &str,
    mut create: CreatePayload,
    created_by: &str,
) -> Result<Option<BuildStarted>, StoreError> {
    let Some(template) = plan.template.clone() else {
        return Ok(None);
    };
    let image = NewImage {
        cluster_id: plan.cluster_id,
        template_name: template.clone(),
        content_hash: hash.to_owned(),
        ostemplate: form_value(plan, "ostemplate").unwrap_or_default(),
        node: plan.node.clone(),
        storage: plan_storage(plan),
        created_by: created_by.to_owned(),
    };
    let image_id = match store.insert_image(&image).await {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    // The image's own container: its VMID is chosen when the bake starts, nothing of the
    // user's (password, keys, hostname, resources beyond the template's) goes into it.
    create.request.vmid = None;
    create.request.password = None;
    create.request.ssh_public_keys = None;
    create.request.hostname = format!("ctforge-image-{image_id}");
    create.request.cores = None;
    create.request.memory = None;
    create.request.swap = None;
    create.request.ip = None;
    create.request.gateway = None;
    create.request.node = Some(plan.node.clone());
    create.request.storage = Some(image.storage.clone());
    create.request.source = None;
    create.source = Some(SourceChoice {
        kind: SourceKind::Bake,
        reason: format!("image {image_id} of {template}@{}", short(hash)),
        image: None,
        template_hash: Some(hash.to_owned()),
    });
    let payload = BakePayload { image_id, create };
    let payload_json = match serde_json::to_string(&payload) {
        Ok(json) => json,
        Err(e) => {
            let _ = store
                .set_image_state(image_id, ImageState::Failed.as_str(), Some(&e.to_string()))
                .await;
            return Ok(None);
        }
    };
    let job_id = store
        .enqueue_job(&NewJob {
            kind: BAKE_JOB_KIND.into(),
            container_id: None,
            node: Some(plan.node.clone()),
            payload_json,
            created_by: created_by.to_owned(),
        })
        .await?;
    store.set_image_job(image_id, job_id).await?;
    let _ = store.signal_jobs().await;
    Ok(Some(BuildStarted { image_id, job_id }))
}

/// Called by a creation from scratch that finished: bakes the template's image on that node
/// and storage when there is no current one (`[images] auto_build`). Failures only log: the
/// container is ready either way.
pub async fn after_creation(
    store: &dyn Store,
    plan: &Plan,
    payload: &CreatePayload,
    created_by: &str,
    job: &crate::jobs::JobContext,
) {
    let Some(template) = plan.template.as_deref() else {
        return;
    };
    let Some(hash) = plan.source.as_ref().and_then(|s| s.template_hash.clone()) else {
        return;
    };
    let storage = plan_storage(plan);
    let images = match images_of(store, plan.cluster_id, template, &plan.node, &storage).await {
        Ok(images) => images,
        Err(e) => {
            tracing::warn!(error = %e, template, "cannot read images; no image built");
            return;
        }
    };
    let current = images.iter().any(|i| {
        i.content_hash == hash
            && matches!(
                ImageState::parse(&i.state),
                ImageState::Building | ImageState::Ready
            )
    });
    // A failed bake of this very version is not retried automatically (it would fail again
    // after every creation); the Images view offers a rebuild.
    let failed = images
        .iter()
        .any(|i| i.content_hash == hash && ImageState::parse(&i.state) == ImageState::Failed);
    if current || failed {
        return;
    }
    match enqueue_bake(store, plan, &hash, payload.clone(), created_by).await {
        Ok(Some(started)) => {
            let _ = job
                .log(format!(
                    "building image {} of {template} on {}/{storage} (job {}): the next containers clone it",
                    started.image_id, plan.node, started.job_id
                ))
                .await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, template, "cannot queue the image's bake"),
    }
}

/// Bakes an image on demand (`POST /api/v1/images`, the Images page): an editor's action that
/// also needs Proxmox's privileges to create the image's container, asked like a creation.
pub async fn request_build(
    state: &AppState,
    user: &CurrentUser,
    request: &BuildRequest,
    remote: &str,
) -> Result<BuildStarted, AppError> {
    crate::roles::require_editor(user, "building images")?;
    let create = crate::provisioning::plan::CreateRequest {
        template: Some(request.template.clone()),
        cluster: request.cluster.clone(),
        node: request.node.clone(),
        storage: request.storage.clone(),
        hostname: "ctforge-image".into(),
        source: Some(SourceKind::Scratch),
        ..Default::default()
    };
    let prepared = crate::provisioning::submit::prepare(state, user, &create).await?;
    let rights = crate::authz::Rights::of(state, user, &prepared.cluster)?;
    let needs = crate::authz::create(&rights, &prepared.plan.params.to_form()).await?;
    let root_ticket_sealed = match (&user.ticket, needs.root_ticket) {
        (Some(data), true) => Some(
            state
                .keyring
                .seal(&serde_json::to_string(data).map_err(|e| AppError::Internal(e.into()))?)
                .map_err(|e| AppError::Internal(e.into()))?,
        ),
        _ => None,
    };
    let hash = prepared
        .template_hash
        .clone()
        .ok_or_else(|| AppError::Conflict("the template has no version to bake".into()))?;
    let payload = CreatePayload {
        request: create,
        template: prepared.template.clone(),
        environment: crate::provisioning::submit::EnvironmentSnapshot::from(&prepared.environment),
        root_ticket_sealed,
        template_git: prepared.template_git.clone(),
        config_source: prepared.config_source.clone(),
        source: None,
        guest_ssh_public: None,
    };
    let started = enqueue_bake(
        state.store.as_ref(),
        &prepared.plan,
        &hash,
        payload,
        &user.username,
    )
    .await?
    .ok_or_else(|| {
        AppError::Conflict(format!(
            "an image of {} on {}/{} is being built already",
            request.template,
            prepared.plan.node,
            plan_storage(&prepared.plan)
        ))
    })?;
    let entry = crate::audit::Entry::new(
        &user.username,
        "image.build",
        format!(
            "{}/{}@{}",
            prepared.cluster.name,
            request.template,
            short(&hash)
        ),
        remote,
    )
    .detail(serde_json::json!({ "image": started.image_id, "job": started.job_id }));
    if let Err(e) = crate::audit::record(state.store.as_ref(), entry).await {
        let _ = state.jobs.cancel(started.job_id, &user.username).await;
        let _ = state
            .store
            .set_image_state(
                started.image_id,
                ImageState::Failed.as_str(),
                Some("cancelled: the build could not be audited"),
            )
            .await;
        return Err(e);
    }
    state.jobs.wake().await;
    Ok(started)
}

/// Every image, newest first.
pub async fn list(state: &AppState) -> Result<ImageList, AppError> {
    let clusters = state.store.list_clusters().await?;
    let now = state.clock.now_ms();
    let images = state
        .store
        .list_images(None)
        .await?
        .into_iter()
        .map(|i| view(&i, &clusters, now))
        .collect();
    Ok(ImageList { images })
}

fn view(i: &Image, clusters: &[crate::storage::model::Cluster], now: i64) -> ImageView {
    ImageView {
        id: i.id,
        cluster: clusters
            .iter()
            .find(|c| c.id == i.cluster_id)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        template: i.template_name.clone(),
        version: short(&i.content_hash).to_owned(),
        content_hash: i.content_hash.clone(),
        ostemplate: i.ostemplate.clone(),
        node: i.node.clone(),
        storage: i.storage.clone(),
        vmid: i.vmid,
        state: ImageState::parse(&i.state),
        size_bytes: i.size_bytes,
        containers: i.containers,
        created_at: i.created_at,
        age_secs: (now - i.created_at).max(0) / 1000,
        job_id: i.job_id,
        error: i.error.clone(),
    }
}

/// Deletes an image (`DELETE /api/v1/images/{id}`): an editor's action needing
/// `VM.Allocate` on the image's container; refused while it builds or while containers made
/// from a current image may still depend on it.
pub async fn delete(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<(), AppError> {
    crate::roles::require_editor(user, "deleting images")?;
    let image = match state.store.get_image(id).await {
        Ok(image) => image,
        Err(StoreError::NotFound) => return Err(AppError::NotFound(format!("no image {id}"))),
        Err(e) => return Err(e.into()),
    };
    let image_state = ImageState::parse(&image.state);
    if image_state == ImageState::Building {
        return Err(AppError::Conflict(format!(
            "image {id} is being built (job {}); cancel the job first",
            image.job_id.unwrap_or_default()
        )));
    }
    if image_state == ImageState::Ready && image.containers > 0 {
        return Err(AppError::Conflict(format!(
            "image {id} is current and {} container(s) were made from it; it is collected once superseded and unused",
            image.containers
        )));
    }
    let cluster = state.store.get_cluster(image.cluster_id).await?;
    if let Some(vmid) = image.vmid.and_then(|v| u32::try_from(v).ok()) {
        let rights = crate::authz::Rights::of(state, user, &cluster)?;
        rights
            .require(&crate::authz::vm_path(vmid), &["VM.Allocate"])
            .await?;
    }
    let client = state.pve.service(&cluster)?;
    remove(state.store.as_ref(), client.as_ref(), &image).await?;
    crate::audit::record(
        state.store.as_ref(),
        crate::audit::Entry::new(
            &user.username,
            "image.delete",
            format!("{}/image/{id}", cluster.name),
            remote,
        )
        .detail(serde_json::json!({ "vmid": image.vmid, "template": image.template_name })),
    )
    .await?;
    Ok(())
}

/// Destroys the image's Proxmox CT template (gone already is fine) and forgets the image.
async fn remove(store: &dyn Store, client: &dyn PveApi, image: &Image) -> Result<(), AppError> {
    if let Some(vmid) = image.vmid.and_then(|v| u32::try_from(v).ok()) {
        match client
            .lxc_delete(
                &image.node,
                vmid,
                ctforge_pve::types::DeleteOptions::default(),
            )
            .await
        {
            Ok(upid) => {
                let exit = ctforge_pve::wait_task(
                    client,
                    &image.node,
                    &upid,
                    ctforge_pve::WaitOptions {
                        timeout: Duration::from_secs(600),
                        ..Default::default()
                    },
                    &mut |_| {},
                )
                .await
                .map_err(|e| AppError::Unavailable(format!("destroying CT {vmid}: {e}")))?;
                if let ctforge_pve::TaskExit::Error(text) = exit {
                    return Err(AppError::Conflict(format!(
                        "Proxmox did not destroy CT {vmid}: {text}"
                    )));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(AppError::Conflict(format!(
                    "Proxmox did not destroy CT {vmid}: {e}"
                )));
            }
        }
    }
    match store.delete_image(image.id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Collects superseded images no container was made from and failed ones; returns how many
/// were removed. Each removal is audited as `image.gc` by `ctforge`.
pub async fn gc(state: &AppState) -> Result<usize, AppError> {
    let mut removed = 0;
    for image in state.store.list_images(None).await? {
        let collectable = match ImageState::parse(&image.state) {
            ImageState::Failed => true,
            ImageState::Superseded => image.containers == 0,
            _ => false,
        };
        if !collectable {
            continue;
        }
        let Ok(cluster) = state.store.get_cluster(image.cluster_id).await else {
            continue;
        };
        let Ok(client) = state.pve.service(&cluster) else {
            continue;
        };
        if let Err(e) = remove(state.store.as_ref(), client.as_ref(), &image).await {
            tracing::warn!(image = image.id, error = %e, "image not collected");
            continue;
        }
        removed += 1;
        crate::audit::record(
            state.store.as_ref(),
            crate::audit::Entry::new(
                "ctforge",
                "image.gc",
                format!("{}/image/{}", cluster.name, image.id),
                "",
            )
            .detail(serde_json::json!({
                "vmid": image.vmid,
                "template": image.template_name,
                "state": image.state,
            })),
        )
        .await?;
    }
    Ok(removed)
}

/// The periodic garbage collection (`[images] gc_interval_secs`), one process at a time
/// (lease `images:gc`); stops with the process.
pub fn spawn_gc(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let every = state.config.images.gc_interval_secs;
    if every == 0 {
        return None;
    }
    let state = state.clone();
    Some(tokio::spawn(async move {
        let owner = format!("images-gc-{}", std::process::id());
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(every)) => {}
            }
            let ttl = i64::try_from(every.saturating_mul(1000)).unwrap_or(i64::MAX);
            if !matches!(
                state.locks.try_lock("images:gc", &owner, ttl).await,
                Ok(true)
            ) {
                continue;
            }
            match gc(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "images collected"),
                Err(e) => tracing::warn!(error = %e, "image collection failed"),
            }
        }
    }))
}
