//! `/api/v1/templates`: list, read, create, update, duplicate, discover, sync, reattach, delete
//! and export templates; `/api/v1/template-sources`: git sources and their deploy keys.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::routes::{Answer, Doc, Routes};
use crate::state::AppState;
use crate::storage::model::TemplateRow;
use crate::templates::discovery::DiscoveryReport;
use crate::templates::git_keys;
use crate::templates::manage::{self, Deleted, Via};
use crate::templates::{self, StoredConfig};

/// The template routes.
pub fn routes(r: Routes) -> Routes {
    r.get("/api/v1/templates", list, Doc::json::<TemplateList>())
        .post(
            "/api/v1/templates",
            create,
            Doc::status::<TemplateView>(201).body::<TemplateBody>(),
        )
        .post(
            "/api/v1/templates/discover",
            discover,
            Doc::json::<DiscoveryReport>(),
        )
        .post(
            "/api/v1/templates/sync",
            sync,
            Doc::json::<DiscoveryReport>(),
        )
        .get(
            "/api/v1/templates/{name}",
            show,
            Doc::json::<TemplateView>(),
        )
        .put(
            "/api/v1/templates/{name}",
            update,
            Doc::json::<TemplateView>().body::<TemplateBody>(),
        )
        .delete("/api/v1/templates/{name}", delete, Doc::no_content())
        .get(
            "/api/v1/templates/{name}/export",
            export,
            Doc::answer(Answer::File("application/gzip")),
        )
        .post(
            "/api/v1/templates/{name}/duplicate",
            duplicate,
            Doc::status::<TemplateView>(201).body::<DuplicateBody>(),
        )
        .post(
            "/api/v1/templates/{name}/reattach",
            reattach,
            Doc::json::<DiscoveryReport>(),
        )
        .get(
            "/api/v1/template-sources",
            sources,
            Doc::json::<Vec<git_keys::SourceView>>(),
        )
        .put(
            "/api/v1/template-sources/key",
            set_source_key,
            Doc::json::<git_keys::SourceView>().body::<git_keys::SetKeyBody>(),
        )
        .delete(
            "/api/v1/template-sources/key",
            delete_source_key,
            Doc::no_content(),
        )
}

/// `POST /api/v1/templates/{name}/reattach`: drops the edits made in ctforge to a diverged
/// template and takes it again from its source (git sync or discovery); 409 when it is not
/// diverged.
pub async fn reattach(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<Json<DiscoveryReport>, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    Ok(Json(
        manage::reattach(&state, caller, &name, Via::Api).await?,
    ))
}

/// `GET /api/v1/template-sources`: the configured git sources, each with its deploy key's
/// public fingerprint and pinned host key (never the key).
pub async fn sources(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<Vec<git_keys::SourceView>>, AppError> {
    crate::auth::require_editor(&user)?;
    Ok(Json(
        git_keys::list(state.store.as_ref(), &state.config.templates.git).await?,
    ))
}

/// `PUT /api/v1/template-sources/key`: seals and stores a source's deploy key and host key
/// pin (ctforge admins).
pub async fn set_source_key(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Json(body): Json<git_keys::SetKeyBody>,
) -> Result<Json<git_keys::SourceView>, AppError> {
    crate::auth::require_admin(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    Ok(Json(
        git_keys::set(
            state.store.as_ref(),
            &state.keyring,
            caller,
            &state.config.templates.git,
            &body,
        )
        .await?,
    ))
}

/// Query of `DELETE /api/v1/template-sources/key`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SourceQuery {
    /// The source's URL.
    pub url: String,
}

/// `DELETE /api/v1/template-sources/key?url=…`: forgets a source's deploy key.
pub async fn delete_source_key(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<SourceQuery>,
) -> Result<StatusCode, AppError> {
    crate::auth::require_admin(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    git_keys::remove(state.store.as_ref(), caller, &query.url).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A template's resources from `template.conf`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    /// Cores.
    pub cpu: Option<u32>,
    /// MiB.
    pub ram_mib: Option<u32>,
    /// GiB.
    pub disk_gib: Option<u32>,
    /// MiB.
    pub swap_mib: Option<u32>,
    /// OS.
    pub os: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
}

/// What every template answer starts with.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TemplateHeader {
    /// Template id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Display name.
    pub app: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// `filesystem` or `custom`.
    pub source: String,
    /// Directory it was discovered in.
    pub source_path: Option<String>,
    /// Repository, branch and commit of a template discovered in a `[[templates.git]]` source.
    pub git: Option<crate::templates::git::GitOrigin>,
    /// A filesystem template edited here.
    pub diverged: bool,
    /// Content hash.
    pub content_hash: String,
    /// Resources.
    pub resources: Resources,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A template in the list.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TemplateSummaryView {
    /// Header.
    #[serde(flatten)]
    pub header: TemplateHeader,
    /// Number of scripts.
    pub script_count: i64,
    /// Number of files.
    pub file_count: i64,
    /// Number of packages.
    pub package_count: i64,
}

/// `GET /api/v1/templates`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TemplateList {
    /// Templates by name.
    pub templates: Vec<TemplateSummaryView>,
}

/// A script of a template.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ScriptView {
    /// Run order.
    pub position: i64,
    /// Name.
    pub name: String,
    /// Text.
    pub content: String,
    /// Runs when provisioning.
    pub enabled: bool,
}

/// A file of a template.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct FileView {
    /// Name.
    pub name: String,
    /// Target directory.
    pub target_dir: String,
    /// `replace`, `default` or `backup`.
    pub policy: String,
    /// Content.
    pub content: String,
}

/// A package of a template.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PackageView {
    /// Bucket (list file stem).
    pub bucket: String,
    /// Manager.
    pub manager: String,
    /// Name.
    pub name: String,
    /// Pinned version.
    pub version: Option<String>,
    /// Order within the bucket.
    pub position: i64,
}

/// The full template (`GET /api/v1/templates/{name}`); its `config`, `scripts`, `files` and
/// `packages` can be sent back as a `PUT` body.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TemplateView {
    /// Header.
    #[serde(flatten)]
    pub header: TemplateHeader,
    /// The `template.conf` values.
    pub config: Value,
    /// `packages/custom.sh`.
    pub custom_installer: Option<String>,
    /// Scripts in order.
    pub scripts: Vec<ScriptView>,
    /// Files.
    pub files: Vec<FileView>,
    /// Packages.
    pub packages: Vec<PackageView>,
}

/// Filters of `GET /api/v1/templates`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Case-insensitive text searched in name, display name and description.
    pub q: Option<String>,
    /// Only templates with this tag (case-insensitive).
    pub tag: Option<String>,
}

/// Options of `DELETE /api/v1/templates/{name}`.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    /// Delete even while containers reference the template.
    #[serde(default)]
    pub force: bool,
}

fn tags_of(row: &TemplateRow) -> Vec<String> {
    row.tags
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn header(row: &TemplateRow, config: &StoredConfig) -> TemplateHeader {
    let c = &config.config;
    TemplateHeader {
        id: row.id,
        name: row.name.clone(),
        app: row.app.clone(),
        description: row.description.clone(),
        tags: tags_of(row),
        source: row.source.clone(),
        source_path: row.source_path.clone(),
        git: config.git.clone(),
        diverged: row.diverged,
        content_hash: row.content_hash.clone(),
        resources: Resources {
            cpu: c.cpu,
            ram_mib: c.ram_mib,
            disk_gib: c.disk_gib,
            swap_mib: c.swap_mib,
            os: c.os.clone(),
            os_version: c.os_version.clone(),
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// `GET /api/v1/templates?q=&tag=`: summaries with counts, by name.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TemplateList>, AppError> {
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_lowercase);
    let tag = query
        .tag
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase);
    let mut out = Vec::new();
    for summary in state.store.list_templates().await? {
        let row = &summary.row;
        if let Some(q) = &q {
            let hay = format!("{}\n{}\n{}", row.name, row.app, row.description).to_lowercase();
            if !hay.contains(q.as_str()) {
                continue;
            }
        }
        if let Some(tag) = &tag
            && !tags_of(row).iter().any(|t| t.to_lowercase() == *tag)
        {
            continue;
        }
        let config = StoredConfig::parse(&row.name, &row.config_json).unwrap_or_default();
        out.push(TemplateSummaryView {
            header: header(row, &config),
            script_count: summary.script_count,
            file_count: summary.file_count,
            package_count: summary.package_count,
        });
    }
    Ok(Json(TemplateList { templates: out }))
}

/// `GET /api/v1/templates/{name}`: the full template.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TemplateView>, AppError> {
    let (record, template) = templates::load_template(state.store.as_ref(), &name).await?;
    let config = StoredConfig::parse(&record.row.name, &record.row.config_json)?;
    Ok(Json(TemplateView {
        header: header(&record.row, &config),
        config: serde_json::to_value(&template.config).map_err(|e| AppError::Internal(e.into()))?,
        custom_installer: template.custom_installer.clone(),
        scripts: record
            .scripts
            .iter()
            .map(|s| ScriptView {
                position: s.position,
                name: s.name.clone(),
                content: s.content.clone(),
                enabled: s.enabled,
            })
            .collect(),
        files: record
            .files
            .iter()
            .map(|f| FileView {
                name: f.name.clone(),
                target_dir: f.target_dir.clone(),
                policy: f.policy.clone(),
                content: f.content.clone(),
            })
            .collect(),
        packages: record
            .packages
            .iter()
            .map(|p| PackageView {
                bucket: p.bucket.clone(),
                manager: p.manager.clone(),
                name: p.name.clone(),
                version: p.version.clone(),
                position: p.position,
            })
            .collect(),
    }))
}

/// `POST /api/v1/templates/discover`: scans the configured roots; returns the report.
pub async fn discover(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<DiscoveryReport>, AppError> {
    crate::auth::require_editor(&user)?;
    let roots = state.config.templates.roots.clone();
    if roots.is_empty() {
        return Err(AppError::invalid(
            "no templates roots configured: set CTFORGE_TEMPLATES__ROOTS (or templates.roots in \
             the config file) and restart ctforge",
        ));
    }
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let report = manage::discover(state.store.as_ref(), caller, &roots, Via::Api).await?;
    Ok(Json(report))
}

/// `POST /api/v1/templates/sync`: fetch the `[[templates.git]]` repositories, then discover
/// (editors and admins).
pub async fn sync(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<DiscoveryReport>, AppError> {
    crate::auth::require_editor(&user)?;
    if state.config.templates.git.is_empty() && state.config.templates.roots.is_empty() {
        return Err(AppError::invalid(
            "no template sources configured: add [[templates.git]] entries or templates.roots \
             to the config file and restart ctforge",
        ));
    }
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let report = manage::sync(&state, caller, Via::Api).await?;
    Ok(Json(report))
}

/// `DELETE /api/v1/templates/{name}?force=true`: 409 while containers reference it unless
/// forced (their records then keep no template).
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    match manage::delete(state.store.as_ref(), caller, &name, query.force, Via::Api).await? {
        Deleted::Done { .. } => Ok(StatusCode::NO_CONTENT),
        Deleted::InUse(used) => Err(AppError::Conflict(format!(
            "referenced by {used} containers; pass ?force=true to delete it anyway"
        ))),
    }
}

/// `GET /api/v1/templates/{name}/export`: the directory layout as `<name>.tar.gz`.
pub async fn export(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let (record, template) = templates::load_template(state.store.as_ref(), &name).await?;
    let mtime = u64::try_from(record.row.updated_at / 1000).unwrap_or(0);
    let bytes = templates::export_tar_gz(&template, mtime)?;
    let file_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}.tar.gz\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The `config` part of a template body; every field optional (the names of
/// [`ctforge_template::TemplateConfig`], so the `config` of `GET` can be sent back).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ConfigBody {
    /// `TEMPLATE_APP`.
    pub app: Option<String>,
    /// `TEMPLATE_DESCRIPTION`.
    pub description: Option<String>,
    /// `TEMPLATE_TAGS`.
    pub tags: Vec<String>,
    /// Cores.
    pub cpu: Option<u32>,
    /// MiB.
    pub ram_mib: Option<u32>,
    /// GiB.
    pub disk_gib: Option<u32>,
    /// MiB.
    pub swap_mib: Option<u32>,
    /// OS.
    pub os: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Unprivileged.
    pub unprivileged: Option<bool>,
    /// Nesting.
    pub nesting: Option<bool>,
    /// keyctl.
    pub keyctl: Option<bool>,
    /// FUSE.
    pub fuse: Option<bool>,
    /// Storage.
    pub storage: Option<String>,
    /// Bridge.
    pub bridge: Option<String>,
    /// `TEMPLATE_TYPE`: `lxc` (default) or `vm`.
    pub template_type: Option<String>,
    /// `TEMPLATE_MACHINE` (vm).
    pub machine: Option<String>,
    /// `TEMPLATE_BIOS` (vm).
    pub bios: Option<String>,
    /// `TEMPLATE_IMAGE` (vm).
    pub image: Option<String>,
    /// `TEMPLATE_AGENT` (vm): the QEMU guest agent (absent: on).
    #[serde(default)]
    pub agent: Option<bool>,
    /// Other keys, `[[key, value], …]` in order.
    pub extra: Vec<(String, String)>,
}

/// One script of a template body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ScriptBody {
    /// Run order (`position` in `GET` answers).
    #[serde(alias = "position")]
    pub order: u32,
    /// Name, e.g. `setup.sh` or `10-setup.sh`.
    pub name: String,
    /// Text.
    #[serde(default)]
    pub content: String,
    /// Runs when provisioning (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// One file of a template body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FileBody {
    /// File name.
    pub name: String,
    /// Absolute target directory.
    pub target_dir: String,
    /// `replace` (default), `default` or `backup`.
    #[serde(default)]
    pub policy: Option<String>,
    /// Content.
    #[serde(default)]
    pub content: String,
}

/// One package list of a template body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListBody {
    /// Bucket (list file stem).
    pub bucket: String,
    /// Manager.
    pub manager: String,
    /// Package specs in the manager's pin syntax (`curl=7.88`, `pm2@5`, `requests==2.31`).
    #[serde(default)]
    pub packages: Vec<String>,
}

/// Body of `POST /api/v1/templates` and `PUT /api/v1/templates/{name}`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct TemplateBody {
    /// Name (ignored by `PUT`, which keeps the stored name).
    pub name: String,
    /// `template.conf` values.
    pub config: ConfigBody,
    /// Scripts.
    pub scripts: Vec<ScriptBody>,
    /// Files.
    pub files: Vec<FileBody>,
    /// Package lists.
    pub packages: Vec<ListBody>,
    /// `packages/custom.sh`.
    pub custom_installer: Option<String>,
    /// `cloud-init/user-data.yaml` (vm templates).
    pub cloud_init: Option<String>,
}

impl TemplateBody {
    /// Builds the template; values that cannot be read are 400 with the field named.
    pub fn into_template(self) -> Result<ctforge_template::Template, AppError> {
        use ctforge_template::{FilePolicy, PackageList, PackageManager, Script, TemplateFile};
        let bad = |field: String, message: String| AppError::Invalid {
            message: format!("{field}: {message}"),
            fields: vec![(field, message)],
        };
        let c = self.config;
        let mut t = ctforge_template::Template::new(self.name.trim());
        t.config = ctforge_template::TemplateConfig {
            app: c.app,
            description: c.description,
            tags: c.tags,
            cpu: c.cpu,
            ram_mib: c.ram_mib,
            disk_gib: c.disk_gib,
            swap_mib: c.swap_mib,
            os: c.os,
            os_version: c.os_version,
            unprivileged: c.unprivileged,
            nesting: c.nesting,
            keyctl: c.keyctl,
            fuse: c.fuse,
            storage: c.storage,
            bridge: c.bridge,
            template_type: match c.template_type.as_deref() {
                None | Some("") => None,
                Some(t) => Some(
                    t.parse()
                        .map_err(|e: String| bad("config.template_type".into(), e))?,
                ),
            },
            machine: c.machine,
            bios: c.bios,
            image: c.image,
            agent: c.agent,
            extra: c.extra,
            raw: None,
        };
        for s in self.scripts {
            let mut script = Script::new(s.order, s.name, s.content);
            script.enabled = s.enabled;
            t.scripts.push(script);
        }
        for (i, f) in self.files.into_iter().enumerate() {
            let policy = match f.policy.as_deref() {
                None | Some("") => FilePolicy::Replace,
                Some(p) => p
                    .parse::<FilePolicy>()
                    .map_err(|e| bad(format!("files[{i}].policy"), e.to_string()))?,
            };
            t.files
                .push(TemplateFile::new(f.name, f.target_dir, policy, f.content));
        }
        for (i, l) in self.packages.into_iter().enumerate() {
            let manager = l
                .manager
                .parse::<PackageManager>()
                .map_err(|e| bad(format!("packages[{i}].manager"), e.to_string()))?;
            let mut list = PackageList::new(l.bucket, manager);
            for (j, spec) in l.packages.iter().enumerate() {
                let package = ctforge_template::Package::parse(manager, spec)
                    .map_err(|m| bad(format!("packages[{i}].packages[{j}]"), m))?;
                list.packages.push(package);
            }
            t.packages.push(list);
        }
        t.custom_installer = self.custom_installer.filter(|c| !c.is_empty());
        t.cloud_init = self.cloud_init.filter(|c| !c.is_empty());
        t.sort();
        Ok(t)
    }
}

/// `POST /api/v1/templates`: creates a custom template; 400 with the format crate's
/// diagnostics (`file:line` → message) when it has errors, 409 when the name is taken.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Json(body): Json<TemplateBody>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let template = body.into_template()?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let record = manage::save(state.store.as_ref(), caller, None, &template, Via::Api).await?;
    let Json(out) = show(State(state), Path(record.row.name)).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `PUT /api/v1/templates/{name}`: replaces the template's content (the name stays); a
/// filesystem template becomes `diverged`.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Json(mut body): Json<TemplateBody>,
) -> Result<Json<TemplateView>, AppError> {
    crate::auth::require_editor(&user)?;
    body.name = name.clone();
    let template = body.into_template()?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let record = manage::save(
        state.store.as_ref(),
        caller,
        Some(&name),
        &template,
        Via::Api,
    )
    .await?;
    show(State(state), Path(record.row.name)).await
}

/// Body of `POST /api/v1/templates/{name}/duplicate`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct DuplicateBody {
    /// Name of the copy (default `<name>-copy`).
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /api/v1/templates/{name}/duplicate`: copies to a new custom template.
pub async fn duplicate(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    body: Option<Json<DuplicateBody>>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let wanted = body.and_then(|Json(b)| b.name);
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let record = manage::duplicate(
        state.store.as_ref(),
        caller,
        &name,
        wanted.as_deref(),
        Via::Api,
    )
    .await?;
    let Json(out) = show(State(state), Path(record.row.name)).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}
