//! The Images page (`/templates/images`, linked from Templates): every image baked from a
//! template (template, version, node, storage, size, age, containers made from it, state) with
//! Build (an editor's action, per template) and Delete; both call the `images` use-cases the
//! API calls.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Redirect;
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::images::{self, BuildRequest, ImageState};
use crate::state::AppState;
use crate::web::components::{self as ui, Tone};
use crate::web::home::viewer;

/// The Build form.
#[derive(Debug, Deserialize)]
pub struct BuildForm {
    /// Template name.
    pub template: String,
    /// Node (empty: the first online one).
    #[serde(default)]
    pub node: String,
}

fn size(bytes: Option<i64>) -> String {
    match bytes {
        Some(b) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        Some(b) => format!("{} MiB", b >> 20),
        None => "—".to_owned(),
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

fn tone(state: ImageState) -> Option<Tone> {
    match state {
        ImageState::Ready => Some(Tone::Ok),
        ImageState::Building => Some(Tone::Info),
        ImageState::Failed => Some(Tone::Err),
        ImageState::Superseded => None,
    }
}

/// `GET /templates/images`.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    let list = images::list(&state).await?;
    let templates = state.store.list_templates().await?;
    let v = viewer(&user);
    Ok(ui::layout(
        "Images",
        "/templates",
        &v,
        html! {
            (ui::breadcrumbs(&[("/templates", "Templates"), ("/templates/images", "Images")]))
            h1 { "Images" }
            p.muted { "An image is a Proxmox CT template baked from one template version: its packages, files and scripts are applied once, so a new container is a clone that runs only its per-instance scripts (" code { "# ctforge: per-instance" } "). One is built automatically after a template's first creation on a node and storage; a template change builds a new one and the old one is collected once no container was made from it." }
            @if list.images.is_empty() {
                (ui::empty_state("No images yet", "Create a container from a template, or build an image below.", None))
            } @else {
                table.table {
                    thead { tr {
                        th scope="col" { "Template" } th scope="col" { "Version" } th scope="col" { "Node / storage" }
                        th scope="col" { "CT template" } th scope="col" { "Size" } th scope="col" { "Age" }
                        th scope="col" { "Containers" } th scope="col" { "State" } th scope="col" { span.skip { "Actions" } }
                    } }
                    tbody {
                        @for i in &list.images {
                            tr data-image=(i.id) {
                                td { a href={ "/templates/" (crate::web::templates::form::urlencode(&i.template)) } { (i.template) } }
                                td { code { (i.version) } }
                                td { (i.node) " / " (i.storage) }
                                td { @if let Some(vmid) = i.vmid { code { (vmid) } } @else { "—" } }
                                td { (size(i.size_bytes)) }
                                td { (age(i.age_secs)) }
                                td { (i.containers) }
                                td {
                                    (ui::badge(tone(i.state), i.state_text()))
                                    @if let Some(job) = i.job_id { " " a href={ "/jobs/" (job) } { "job " (job) } }
                                    @if let Some(e) = &i.error { div.muted { (e) } }
                                }
                                td {
                                    @if v.editor && i.state != ImageState::Building {
                                        form method="post" action={ "/templates/images/" (i.id) "/delete" } {
                                            (ui::csrf_field(&v))
                                            button.btn type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if v.editor && !templates.is_empty() {
                section.card {
                    h2 { "Build an image" }
                    form.stack method="post" action="/templates/images" {
                        (ui::csrf_field(&v))
                        label for="image-template" { "Template" }
                        select id="image-template" name="template" {
                            @for t in &templates { option value=(t.row.name) { (t.row.name) } }
                        }
                        label for="image-node" { "Node (empty: the first online node)" }
                        input id="image-node" name="node" type="text";
                        div { button.btn.btn-primary type="submit" { "Build" } }
                    }
                }
            }
        },
    ))
}

/// `POST /templates/images`: bakes an image, then shows its job.
pub async fn build(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(form): Form<BuildForm>,
) -> Result<Redirect, AppError> {
    let request = BuildRequest {
        template: form.template,
        node: Some(form.node.trim().to_owned()).filter(|n| !n.is_empty()),
        ..BuildRequest::default()
    };
    let started = images::request_build(&state, &user, &request, &remote.ip().to_string()).await?;
    Ok(Redirect::to(&format!("/jobs/{}", started.job_id)))
}

/// `POST /templates/images/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Redirect, AppError> {
    images::delete(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(Redirect::to("/templates/images"))
}
