//! Template pages: the browser (`/templates`, search and tag filters in the URL, discovery),
//! the detail page ([`detail`]), the editor ([`form`]) for new and existing templates, and the
//! delete and duplicate actions.

pub mod detail;
pub mod form;
pub mod highlight;

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::model::TemplateSummary;
use crate::templates::edit::{self, SaveError};
use crate::templates::manage::{self, Deleted, Via};
use crate::templates::{self, DiscoveryReport, Status, StoredConfig};
use crate::web::components::{self as ui, Tone, Viewer};
use crate::web::home::viewer;

use form::{EditorView, FieldErrors, TemplateForm, urlencode};

/// Filters of `/templates`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Text searched in name, app and description.
    #[serde(default)]
    pub q: String,
    /// Only templates with this tag.
    #[serde(default)]
    pub tag: String,
}

/// Tags of a stored template.
pub fn tags_of(tags: &str) -> Vec<String> {
    tags.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn matches(summary: &TemplateSummary, q: &str, tag: &str) -> bool {
    let row = &summary.row;
    let q = q.trim().to_lowercase();
    if !q.is_empty() {
        let hay = format!("{}\n{}\n{}", row.name, row.app, row.description).to_lowercase();
        if !hay.contains(&q) {
            return false;
        }
    }
    let tag = tag.trim().to_lowercase();
    tag.is_empty() || tags_of(&row.tags).iter().any(|t| t.to_lowercase() == tag)
}

/// The source badge (filesystem / custom) plus "diverged".
pub fn source_badges(source: &str, diverged: bool) -> Markup {
    html! {
        @if source == templates::SOURCE_CUSTOM {
            (ui::badge(Some(Tone::Info), "custom"))
        } @else {
            (ui::badge(None, source))
        }
        @if diverged { " " (ui::badge(Some(Tone::Warn), "diverged")) }
    }
}

fn tag_href(tag: &str) -> String {
    format!("/templates?tag={}", urlencode(tag))
}

fn resources(config: &StoredConfig) -> String {
    let c = &config.config;
    let cpu = c.cpu.map_or("– cores".to_owned(), |n| ui::count(n, "core"));
    let ram = c.ram_mib.map_or("– RAM".to_owned(), |n| {
        ui::fmt_bytes(u64::from(n) * 1024 * 1024)
    });
    let disk = c
        .disk_gib
        .map_or("– disk".to_owned(), |n| format!("{n} GiB disk"));
    format!("{cpu} · {ram} · {disk}")
}

fn list_page(
    v: &Viewer,
    all: &[TemplateSummary],
    query: &ListQuery,
    roots: &[String],
    git_sources: &[String],
    report: Option<&DiscoveryReport>,
    notice: Option<(Tone, String)>,
) -> Markup {
    let shown: Vec<&TemplateSummary> = all
        .iter()
        .filter(|s| matches(s, &query.q, &query.tag))
        .collect();
    let mut all_tags: Vec<String> = all.iter().flat_map(|s| tags_of(&s.row.tags)).collect();
    all_tags.sort_by_key(|t| t.to_lowercase());
    all_tags.dedup_by_key(|t| t.to_lowercase());
    let mut tag_options = vec![(String::new(), "all tags".to_owned())];
    tag_options.extend(all_tags.iter().map(|t| (t.clone(), t.clone())));
    let discover_form = html! {
        @if !v.editor {
            (ui::disabled_button("Discover now", "changing templates needs the ctforge admin or template editor role"))
        } @else if roots.is_empty() {
            (ui::disabled_button("Discover now", "no templates root is configured (CTFORGE_TEMPLATES__ROOTS)"))
        } @else {
            form.inline method="post" action="/templates/discover" {
                (ui::csrf_field(v))
                button.btn type="submit" title={ "Scan " (roots.join(", ")) } { "Discover now" }
            }
        }
    };
    let sync_form = sync_button(v, git_sources);
    let body = html! {
        (ui::breadcrumbs(&[("/templates", "Templates")]))
        div.page-head {
            h1 { "Templates" }
            div.row {
                (sync_form)
                (discover_form)
                a.btn href="/presets" { "Presets" }
                a.btn href="/templates/images" { "Images" }
                @if v.editor { a.btn.btn-primary href="/templates/new" { "New template" } }
            }
        }
        @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
        @if let Some(report) = report { (report_view(report)) }
        @if all.is_empty() {
            (ui::empty_state_with(
                "No templates yet",
                "Templates describe a kind of container: resources, provisioning scripts, packages and config files. ctforge discovers them from template directories on disk (one folder per template with a template.conf), or you create one here.",
                html! {
                    @if roots.is_empty() {
                        p { "No templates root is configured: set " code { "CTFORGE_TEMPLATES__ROOTS" } " and restart, or create a template in the UI." }
                    } @else {
                        p { "Configured roots:" }
                        ul.roots { @for r in roots { li { code { (r) } } } }
                    }
                    div.row.row-center {
                        (discover_form)
                        @if v.editor { a.btn.btn-primary href="/templates/new" { "New template" } }
                    }
                },
            ))
        } @else {
            form.row.filters method="get" action="/templates" role="search" {
                div.field {
                    label for="q" { "Search" }
                    input id="q" name="q" type="search" value=(query.q) placeholder="name, app, description";
                }
                (ui::select("tag", "Tag", &tag_options, &query.tag, None))
                button.btn type="submit" { "Filter" }
                @if !query.q.is_empty() || !query.tag.is_empty() { a.btn href="/templates" { "Clear" } }
            }
            p.muted { (shown.len()) " of " (ui::count(all.len(), "template")) }
            @if shown.is_empty() {
                (ui::empty_state("No template matches", "Try another search or tag.", Some(("/templates", "Show all"))))
            } @else {
                div.grid {
                    @for s in &shown {
                        @let row = &s.row;
                        @let config = StoredConfig::parse(&row.name, &row.config_json).unwrap_or_default();
                        article.card.tpl-card data-template=(row.name) {
                            div.ct-head {
                                h2 { a.ct-name href={ "/templates/" (urlencode(&row.name)) } { (row.app) } }
                                span { (source_badges(&row.source, row.diverged)) }
                            }
                            div.mono.muted { (row.name) }
                            @if !row.description.is_empty() { p { (row.description) } }
                            div.tags { @for t in tags_of(&row.tags) { (ui::tag_link(&t, &tag_href(&t))) } }
                            div.muted { (resources(&config)) }
                            div.muted { (ui::count(s.script_count, "script")) " · " (ui::count(s.package_count, "package")) " · " (ui::count(s.file_count, "file")) }
                            div.row.card-actions {
                                a.btn.btn-primary href={ "/containers/new?template=" (urlencode(&row.name)) } aria-label={ "Create container from " (row.name) } { "Create container" }
                            }
                        }
                    }
                }
            }
        }
    };
    ui::layout("Templates", "/templates", v, body)
}

fn report_view(report: &DiscoveryReport) -> Markup {
    let tone = if report.has_failures() {
        Tone::Warn
    } else {
        Tone::Ok
    };
    let summary = format!(
        "Discovery finished: {} added, {} changed, {} unchanged, {} failed, {} diverged.",
        report.count(Status::Added),
        report.count(Status::Changed),
        report.count(Status::Unchanged),
        report.count(Status::Failed),
        report.count(Status::Diverged),
    );
    html! {
        section.card.discovery-report {
            (ui::alert(tone, &summary))
            @if !report.roots.is_empty() {
                p.muted { "Scanned: " span.mono { (report.roots.join("; ")) } }
            }
            @for w in &report.warnings { (ui::alert(Tone::Warn, w)) }
            @if !report.templates.is_empty() {
                table.table {
                    thead { tr { th scope="col" { "Template" } th scope="col" { "Result" } th scope="col" { "Details" } } }
                    tbody {
                        @for t in &report.templates {
                            tr {
                                td.mono { (t.name) }
                                td { (ui::badge(Some(match t.status { Status::Failed => Tone::Err, Status::Diverged => Tone::Warn, Status::Added | Status::Changed => Tone::Ok, Status::Unchanged => Tone::Info }), t.status.as_str())) }
                                td {
                                    @if let Some(reason) = &t.reason { div { (reason) } }
                                    @for (what, c) in [("scripts", &t.changes.scripts), ("files", &t.changes.files), ("packages", &t.changes.packages)] {
                                        @if t.status == Status::Changed && !c.is_empty() {
                                            div.muted { (what) ": "
                                                @if !c.added.is_empty() { "+" (c.added.join(", ")) " " }
                                                @if !c.changed.is_empty() { "~" (c.changed.join(", ")) " " }
                                                @if !c.removed.is_empty() { "−" (c.removed.join(", ")) }
                                            }
                                        }
                                    }
                                    @for d in &t.diagnostics { div.mono { (d) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn roots(state: &AppState) -> Vec<String> {
    state
        .config
        .templates
        .roots
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// `GET /templates?q=&tag=`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    let all = state.store.list_templates().await?;
    Ok(list_page(
        &viewer(&user),
        &all,
        &query,
        &roots(&state),
        &git_sources(&state),
        None,
        None,
    ))
}

/// `POST /templates/discover`: runs discovery and shows the report above the list.
pub async fn discover(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    crate::auth::require_editor(&user)?;
    let v = viewer(&user);
    let configured = state.config.templates.roots.clone();
    if configured.is_empty() {
        let all = state.store.list_templates().await?;
        return Ok(list_page(
            &v,
            &all,
            &ListQuery::default(),
            &[],
            &git_sources(&state),
            None,
            Some((
                Tone::Err,
                "No templates root is configured: set CTFORGE_TEMPLATES__ROOTS and restart ctforge."
                    .to_owned(),
            )),
        ));
    }
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let report = manage::discover(state.store.as_ref(), caller, &configured, Via::Ui).await?;
    let all = state.store.list_templates().await?;
    Ok(list_page(
        &v,
        &all,
        &ListQuery::default(),
        &roots(&state),
        &git_sources(&state),
        Some(&report),
        None,
    ))
}

/// The configured git sources as `url (branch)`, for the Sync button's title.
fn git_sources(state: &AppState) -> Vec<String> {
    state
        .config
        .templates
        .git
        .iter()
        .map(|g| format!("{} ({})", g.url, g.branch))
        .collect()
}

/// "Sync sources": editors only, and only when git sources are configured.
fn sync_button(v: &Viewer, git_sources: &[String]) -> Markup {
    html! {
        @if git_sources.is_empty() {
        } @else if !v.editor {
            (ui::disabled_button("Sync sources", "syncing templates needs the ctforge admin or template editor role"))
        } @else {
            form.inline method="post" action="/templates/sync" {
                (ui::csrf_field(v))
                button.btn type="submit" title={ "Fetch " (git_sources.join(", ")) " and discover" } { "Sync sources" }
            }
            a.btn href="/settings/template-sources" { "Sources" }
        }
    }
}

/// `POST /templates/sync`: fetches the git sources, rediscovers (roots and checkouts) and shows
/// the per-template changes above the list. Audited as `template.sync`.
pub async fn sync(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    crate::auth::require_editor(&user)?;
    let v = viewer(&user);
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let (report, notice) = if state.config.templates.git.is_empty() {
        (
            None,
            Some((
                Tone::Err,
                "No git sources are configured: add [[templates.git]] entries to the config file and restart ctforge."
                    .to_owned(),
            )),
        )
    } else {
        (Some(manage::sync(&state, caller, Via::Ui).await?), None)
    };
    let all = state.store.list_templates().await?;
    Ok(list_page(
        &v,
        &all,
        &ListQuery::default(),
        &roots(&state),
        &git_sources(&state),
        report.as_ref(),
        notice,
    ))
}

/// `POST /templates/{name}/reattach`: drops the edits made in ctforge to a diverged template
/// and takes it back from its source (git or directory); audited as `template.reattach`.
pub async fn reattach(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<Markup, AppError> {
    crate::auth::require_editor(&user)?;
    let v = viewer(&user);
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let report = manage::reattach(&state, caller, &name, Via::Ui).await?;
    let all = state.store.list_templates().await?;
    Ok(list_page(
        &v,
        &all,
        &ListQuery::default(),
        &roots(&state),
        &git_sources(&state),
        Some(&report),
        Some((
            Tone::Ok,
            format!(
                "{name}: the edits made in ctforge were dropped; the template follows its source again."
            ),
        )),
    ))
}

async fn bucket_options(state: &AppState) -> Result<Vec<(String, String)>, AppError> {
    Ok(state
        .store
        .list_buckets()
        .await?
        .into_iter()
        .map(|b| (b.id.to_string(), b.name))
        .collect())
}

struct EditorPage<'a> {
    form: &'a TemplateForm,
    editing: Option<&'a str>,
    source: Option<&'a str>,
    errors: &'a FieldErrors,
    blanks: [usize; 3],
    notice: Option<String>,
    unsaved: bool,
}

async fn editor_page(
    state: &AppState,
    user: &CurrentUser,
    page: EditorPage<'_>,
) -> Result<Markup, AppError> {
    let v = viewer(user);
    let buckets = bucket_options(state).await?;
    let (title, crumbs) = match page.editing {
        Some(name) => (format!("Edit {name}"), name.to_owned()),
        None => ("New template".to_owned(), String::new()),
    };
    let detail_href = format!("/templates/{}", urlencode(&crumbs));
    let body = html! {
        @if page.editing.is_some() {
            (ui::breadcrumbs(&[("/templates", "Templates"), (&detail_href, &crumbs), ("", "Edit")]))
        } @else {
            (ui::breadcrumbs(&[("/templates", "Templates"), ("", "New")]))
        }
        h1 { (title) }
        (form::render(page.form, &EditorView {
            viewer: &v,
            editing: page.editing,
            source: page.source,
            errors: page.errors,
            blanks: page.blanks,
            buckets: &buckets,
            notice: page.notice,
            unsaved: page.unsaved,
        }))
    };
    Ok(ui::layout(&title, "/templates", &v, body))
}

/// `GET /templates/new`.
pub async fn new_form(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    crate::auth::require_editor(&user)?;
    editor_page(
        &state,
        &user,
        EditorPage {
            form: &TemplateForm::blank(),
            editing: None,
            source: None,
            errors: &FieldErrors::new(),
            blanks: [1, 1, 1],
            notice: None,
            unsaved: false,
        },
    )
    .await
}

/// `GET /templates/{name}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
) -> Result<Markup, AppError> {
    crate::auth::require_editor(&user)?;
    let (record, template) = templates::load_template(state.store.as_ref(), &name).await?;
    let form = TemplateForm::from_template(&template);
    editor_page(
        &state,
        &user,
        EditorPage {
            form: &form,
            editing: Some(&name),
            source: Some(&record.row.source),
            errors: &FieldErrors::new(),
            blanks: [1, 1, 1],
            notice: None,
            unsaved: false,
        },
    )
    .await
}

/// `POST /templates/new`: save, or re-render after an "add …" / "remove …" button.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    submit(&state, &user, remote, None, None, &pairs).await
}

/// `POST /templates/{name}/edit`.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let record = match state.store.get_template_by_name(&name).await {
        Ok(record) => record,
        Err(crate::storage::StoreError::NotFound) => {
            return Err(templates::TemplatesError::NotFound(name).into());
        }
        Err(e) => return Err(e.into()),
    };
    submit(
        &state,
        &user,
        remote,
        Some(&name),
        Some(&record.row.source),
        &pairs,
    )
    .await
}

async fn submit(
    state: &AppState,
    user: &CurrentUser,
    remote: SocketAddr,
    editing: Option<&str>,
    source: Option<&str>,
    pairs: &[(String, String)],
) -> Result<Response, AppError> {
    let posted = TemplateForm::from_pairs(pairs);
    let mut form = posted.form;
    if let Some(name) = editing {
        form.name = name.to_owned();
    }
    form.drop_blank_rows();
    let mut blanks = [1, 1, 1];
    let mut notice = None;
    let mut errors = FieldErrors::new();
    let action = posted.action.as_str();
    match action {
        "add-script" => blanks[0] = 2,
        "add-file" => blanks[1] = 2,
        "add-pkg" => blanks[2] = 2,
        "add-bucket" => match add_bucket(state, &mut form, &posted.from_bucket).await? {
            Ok(text) => notice = Some(text),
            Err(text) => {
                errors.insert("general".to_owned(), vec![text]);
            }
        },
        _ if action.starts_with("remove-") => {
            let (kind, index) = action
                .trim_start_matches("remove-")
                .split_once('.')
                .unwrap_or_default();
            if let Ok(i) = index.parse::<usize>() {
                match kind {
                    "script" if i < form.scripts.len() => {
                        form.scripts.remove(i);
                    }
                    "file" if i < form.files.len() => {
                        form.files.remove(i);
                    }
                    "pkg" if i < form.packages.len() => {
                        form.packages.remove(i);
                    }
                    _ => {}
                }
            }
        }
        _ => {
            // Save.
            let (template, mut field_errors, paths) = form.to_template();
            let diags = edit::check(&template);
            form::place(&diags, &paths, &mut field_errors);
            if field_errors.is_empty() {
                let remote = remote.ip().to_string();
                let caller = Caller {
                    username: &user.username,
                    remote: &remote,
                };
                let saved =
                    manage::save(state.store.as_ref(), caller, editing, &template, Via::Ui).await;
                match saved {
                    Ok(record) => {
                        let to = format!("/templates/{}?saved=1", urlencode(&record.row.name));
                        return Ok(Redirect::to(&to).into_response());
                    }
                    Err(SaveError::NameTaken(name)) => {
                        field_errors.insert(
                            "name".to_owned(),
                            vec![format!(
                                "a template named `{name}` already exists: choose another name"
                            )],
                        );
                    }
                    Err(SaveError::Invalid(diags)) => {
                        form::place(&diags, &paths, &mut field_errors);
                    }
                    Err(SaveError::Templates(e)) => return Err(e.into()),
                    Err(SaveError::Audit(e)) => return Err(*e),
                }
            }
            errors = field_errors;
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = editor_page(
        state,
        user,
        EditorPage {
            form: &form,
            editing,
            source,
            errors: &errors,
            blanks,
            notice,
            unsaved: true,
        },
    )
    .await?;
    Ok((status, page).into_response())
}

/// Copies bucket `id`'s packages into new lists of `form` (one per manager).
async fn add_bucket(
    state: &AppState,
    form: &mut TemplateForm,
    id: &str,
) -> Result<Result<String, String>, AppError> {
    let Ok(id) = id.trim().parse::<i64>() else {
        return Ok(Err("choose a bucket to add its packages".to_owned()));
    };
    let bucket = match state.store.get_bucket(id).await {
        Ok(b) => b,
        Err(crate::storage::StoreError::NotFound) => {
            return Ok(Err("that bucket no longer exists".to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    let packages = state.store.list_bucket_packages(id).await?;
    if packages.is_empty() {
        return Ok(Err(format!(
            "bucket `{}` has no packages yet: add some on the Buckets page",
            bucket.name
        )));
    }
    let stem = edit::bucket_stem(&bucket.name);
    let mut added = 0;
    for manager in ctforge_template::PackageManager::ALL {
        let lines: Vec<String> = packages
            .iter()
            .filter(|p| p.manager == manager.as_str())
            .map(|p| {
                ctforge_template::Package {
                    name: p.name.clone(),
                    version: p.version.clone(),
                }
                .spec(manager)
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        added += lines.len();
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        match form
            .packages
            .iter_mut()
            .find(|l| l.bucket == stem && l.manager == manager.as_str())
        {
            Some(existing) => {
                if !existing.text.is_empty() && !existing.text.ends_with('\n') {
                    existing.text.push('\n');
                }
                existing.text.push_str(&text);
            }
            None => form.packages.push(form::ListRow {
                bucket: stem.clone(),
                manager: manager.as_str().to_owned(),
                text,
            }),
        }
    }
    Ok(Ok(format!(
        "{added} packages of bucket `{}` copied into the list `{stem}`; the template now owns this list. Save to keep it.",
        bucket.name
    )))
}

/// The delete form.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    /// Delete even while containers reference it.
    #[serde(default)]
    pub force: Option<String>,
}

/// `POST /templates/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let force = form.force.is_some_and(|f| !f.is_empty() && f != "0");
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let deleted = manage::delete(state.store.as_ref(), caller, &name, force, Via::Ui).await?;
    if let Deleted::InUse(used) = deleted {
        let page = detail::page(
            &state,
            &user,
            &name,
            "config",
            Some((
                Tone::Err,
                format!(
                    "Not deleted: {used} containers reference this template. Use \"Delete anyway\" to delete it; their records then keep no template."
                ),
            )),
        )
        .await?;
        return Ok((StatusCode::CONFLICT, page).into_response());
    }
    Ok(Redirect::to("/templates").into_response())
}

/// The duplicate form.
#[derive(Debug, Default, Deserialize)]
pub struct DuplicateForm {
    /// Name of the copy (default `<name>-copy`).
    #[serde(default)]
    pub new_name: String,
}

/// `POST /templates/{name}/duplicate`: copies to a custom template and opens its editor.
pub async fn duplicate(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    Form(form): Form<DuplicateForm>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let copied = manage::duplicate(
        state.store.as_ref(),
        caller,
        &name,
        Some(&form.new_name),
        Via::Ui,
    )
    .await;
    match copied {
        Ok(record) => Ok(
            Redirect::to(&format!("/templates/{}/edit", urlencode(&record.row.name)))
                .into_response(),
        ),
        Err(SaveError::Templates(e)) => Err(e.into()),
        Err(SaveError::Audit(e)) => Err(*e),
        Err(e) => {
            let message = match &e {
                SaveError::Invalid(diags) => diags
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            let page = detail::page(
                &state,
                &user,
                &name,
                "config",
                Some((Tone::Err, format!("Not duplicated: {message}"))),
            )
            .await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
    }
}
