//! `/buckets`: package buckets (create, rename, delete; counts per manager) and the bucket
//! editor `/buckets/{id}` (add one package or paste a list, bulk delete).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ctforge_template::PackageManager;
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::buckets::{self, counts};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::components::{self as ui, Confirm, Field, Tone};
use crate::web::home::viewer;

fn field_error(e: &AppError) -> String {
    match e {
        AppError::Invalid { fields, .. } if !fields.is_empty() => fields
            .iter()
            .map(|(k, m)| {
                if k.starts_with("line") {
                    format!("{k}: {m}")
                } else {
                    m.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

async fn list_page(
    state: &AppState,
    user: &CurrentUser,
    name: &str,
    description: &str,
    error: Option<&str>,
    notice: Option<(Tone, String)>,
) -> Result<Markup, AppError> {
    let v = viewer(user);
    let rows: Vec<_> = buckets::list(state.store.as_ref())
        .await?
        .into_iter()
        .map(|(b, packages)| {
            let per = counts(&packages);
            (b, packages.len(), per)
        })
        .collect();
    let body = html! { div.stack {
        (ui::breadcrumbs(&[("/buckets", "Package buckets")]))
        h1 { "Package buckets" }
        p.muted { "Named, reusable package lists. Copy a bucket into a template in the template editor (\"Add from bucket\"); the template then owns its copy." }
        @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
        @if rows.is_empty() {
            (ui::empty_state("No buckets yet", "Create a bucket, then paste its packages (one per line, like apt:curl or npm:pm2@5).", None))
        } @else {
            div.table-wrap {
                table.table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Description" } th scope="col" { "Packages" } th scope="col" { "Per manager" } } }
                    tbody {
                        @for (b, total, per) in &rows {
                            tr {
                                td { a href={ "/buckets/" (b.id) } { (b.name) } }
                                td { (b.description) }
                                td { (total) }
                                td { @for (m, n) in per { (ui::badge(None, &format!("{m} {n}"))) " " } }
                            }
                        }
                    }
                }
            }
        }
        @if v.editor { section.card {
            h2 { "New bucket" }
            form.form method="post" action="/buckets" {
                (ui::csrf_field(&v))
                (ui::field(&Field { value: name, required: true, error, hint: Some("e.g. web-base"), ..Field::new("name", "Name") }))
                (ui::field(&Field { value: description, ..Field::new("description", "Description") }))
                button.btn.btn-primary type="submit" { "Create bucket" }
            }
        } }
    } };
    Ok(ui::layout("Package buckets", "/buckets", &v, body))
}

/// `GET /buckets`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    list_page(&state, &user, "", "", None, None).await
}

/// The create / rename form.
#[derive(Debug, Default, Deserialize)]
pub struct BucketForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /buckets`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(form): Form<BucketForm>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    match buckets::create(state.store.as_ref(), caller, &form.name, &form.description).await {
        Ok(id) => Ok(Redirect::to(&format!("/buckets/{id}")).into_response()),
        Err(e @ AppError::Invalid { .. }) => {
            let message = field_error(&e);
            let page = list_page(
                &state,
                &user,
                &form.name,
                &form.description,
                Some(&message),
                None,
            )
            .await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e),
    }
}

struct EditorState<'a> {
    name: Option<&'a str>,
    description: Option<&'a str>,
    name_error: Option<String>,
    paste: &'a str,
    manager: &'a str,
    paste_error: Option<String>,
    notice: Option<(Tone, String)>,
}

impl Default for EditorState<'_> {
    fn default() -> Self {
        Self {
            name: None,
            description: None,
            name_error: None,
            paste: "",
            manager: "apt",
            paste_error: None,
            notice: None,
        }
    }
}

async fn bucket_page(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    s: EditorState<'_>,
) -> Result<Markup, AppError> {
    let v = viewer(user);
    let (b, packages) = buckets::get(state.store.as_ref(), id).await?;
    let per = counts(&packages);
    let mut manager_opts = vec![(String::new(), "from the manager: prefix".to_owned())];
    manager_opts.extend(
        PackageManager::ALL
            .iter()
            .map(|m| (m.as_str().to_owned(), m.as_str().to_owned())),
    );
    let base = format!("/buckets/{id}");
    let body = html! { div.stack {
        (ui::breadcrumbs(&[("/buckets", "Package buckets"), ("", &b.name)]))
        div.page-head {
            h1 { (b.name) }
            @if v.editor { (ui::confirm_button(&Confirm {
                id: "delete-bucket",
                label: "Delete bucket",
                title: &format!("Delete bucket {}?", b.name),
                text: "The bucket and its package list are removed. Templates keep the packages they copied.",
                action: &format!("{base}/delete"),
                confirm: "Delete",
                hidden: &[],
            }, &v)) }
        }
        @if let Some((tone, text)) = &s.notice { (ui::alert(*tone, text)) }
        p { @for (m, n) in &per { (ui::badge(None, &format!("{m} {n}"))) " " } }
        @if v.editor { section.card {
            h2 { "Add packages" }
            form.form method="post" action={ (base) "/packages" } {
                (ui::csrf_field(&v))
                (ui::select("manager", "Manager for plain names", &manager_opts, s.manager, None))
                (ui::field(&Field { kind: "textarea", value: s.paste, error: s.paste_error.as_deref(), hint: Some("One package per line: apt:curl=7.88, npm:pm2@5, pip:requests==2.31, or plain names with the manager above. # starts a comment."), ..Field::new("text", "Packages") }))
                button.btn.btn-primary type="submit" { "Add packages" }
            }
        } }
        section {
            h2 { "Packages (" (packages.len()) ")" }
            @if packages.is_empty() {
                (ui::empty_state("Empty bucket", "Paste a list above to fill it.", None))
            } @else {
                form method="post" action={ (base) "/packages/delete" } {
                    @if !v.editor { p.muted { "Changing buckets needs the ctforge admin or template editor role." } }
                    (ui::csrf_field(&v))
                    div.table-wrap {
                        table.table {
                            thead { tr { th scope="col" { span.skip { "Select" } } th scope="col" { "Manager" } th scope="col" { "Name" } th scope="col" { "Version" } } }
                            tbody {
                                @for p in &packages {
                                    tr {
                                        td { input type="checkbox" name="ids" value=(p.id) aria-label={ "Select " (p.name) }; }
                                        td { (ui::badge(None, &p.manager)) }
                                        td.mono { (p.name) }
                                        td.mono { (p.version.clone().unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                    @if v.editor { button.btn.btn-danger type="submit" { "Delete selected" } }
                }
            }
        }
        @if v.editor { section.card {
            h2 { "Rename" }
            form.form method="post" action=(base) {
                (ui::csrf_field(&v))
                (ui::field(&Field { value: s.name.unwrap_or(&b.name), required: true, error: s.name_error.as_deref(), ..Field::new("name", "Name") }))
                (ui::field(&Field { value: s.description.unwrap_or(&b.description), ..Field::new("description", "Description") }))
                button.btn type="submit" { "Save" }
            }
        } }
    } };
    Ok(ui::layout(&b.name, "/buckets", &v, body))
}

/// `GET /buckets/{id}`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Markup, AppError> {
    bucket_page(&state, &user, id, EditorState::default()).await
}

/// `POST /buckets/{id}`: rename.
pub async fn rename(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Form(form): Form<BucketForm>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let result = buckets::update(
        state.store.as_ref(),
        caller,
        id,
        &form.name,
        Some(&form.description),
    )
    .await;
    match result {
        Ok(()) => {
            let page = bucket_page(
                &state,
                &user,
                id,
                EditorState {
                    notice: Some((Tone::Ok, "Bucket saved.".to_owned())),
                    ..EditorState::default()
                },
            )
            .await?;
            Ok(page.into_response())
        }
        Err(e @ AppError::Invalid { .. }) => {
            let page = bucket_page(
                &state,
                &user,
                id,
                EditorState {
                    name: Some(&form.name),
                    description: Some(&form.description),
                    name_error: Some(field_error(&e)),
                    ..EditorState::default()
                },
            )
            .await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /buckets/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let b = buckets::delete(state.store.as_ref(), caller, id).await?;
    let page = list_page(
        &state,
        &user,
        "",
        "",
        None,
        Some((Tone::Ok, format!("Bucket {} deleted.", b.name))),
    )
    .await?;
    Ok(page.into_response())
}

/// The paste form.
#[derive(Debug, Default, Deserialize)]
pub struct PasteForm {
    #[serde(default)]
    manager: String,
    #[serde(default)]
    text: String,
}

/// `POST /buckets/{id}/packages`: add a pasted list (all or nothing).
pub async fn add_packages(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Form(form): Form<PasteForm>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let text = form.text.replace("\r\n", "\n");
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    match buckets::add_packages(state.store.as_ref(), caller, id, Some(&form.manager), &text).await
    {
        Ok(added) => {
            let page = bucket_page(
                &state,
                &user,
                id,
                EditorState {
                    manager: &form.manager,
                    notice: Some((Tone::Ok, format!("{added} packages added."))),
                    ..EditorState::default()
                },
            )
            .await?;
            Ok(page.into_response())
        }
        Err(e @ AppError::Invalid { .. }) => {
            let page = bucket_page(
                &state,
                &user,
                id,
                EditorState {
                    paste: &form.text,
                    manager: &form.manager,
                    paste_error: Some(field_error(&e)),
                    ..EditorState::default()
                },
            )
            .await?;
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /buckets/{id}/packages/delete`: bulk delete of the checked packages.
pub async fn remove_packages(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    crate::auth::require_editor(&user)?;
    let ids: Vec<i64> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let notice = if ids.is_empty() {
        (
            Tone::Warn,
            "Nothing selected: tick the packages to delete.".to_owned(),
        )
    } else {
        let remote = remote.ip().to_string();
        let caller = Caller {
            username: &user.username,
            remote: &remote,
        };
        let removed = buckets::remove_packages(state.store.as_ref(), caller, id, &ids).await?;
        (Tone::Ok, format!("{removed} packages deleted."))
    };
    let page = bucket_page(
        &state,
        &user,
        id,
        EditorState {
            notice: Some(notice),
            ..EditorState::default()
        },
    )
    .await?;
    Ok(page.into_response())
}
