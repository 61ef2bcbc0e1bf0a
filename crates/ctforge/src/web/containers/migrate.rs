//! The Migrate page of a container: `GET /containers/{id}/migrate` offers the other nodes with
//! their free CPU, memory and disk (offline nodes disabled) and restart mode (checked, and
//! required, for a running CT); `POST` queues the migration ([`crate::containers::migrate`])
//! and opens its job page, where Proxmox's task log streams live. Refusals (privilege, lock,
//! state) come back to the form as a message.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::containers::migrate::{self, MigrateRequest, MigrateTargets};
use crate::containers::{Target, resolve};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::components::{self as ui, Tone};
use crate::web::home::viewer;

/// The form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct MigrateForm {
    /// Target node.
    #[serde(default)]
    pub target: String,
    /// `on` when restart mode is checked.
    #[serde(default)]
    pub restart: Option<String>,
}

fn pct(v: Option<f64>) -> String {
    v.map(|c| format!("{:.0}%", c * 100.0))
        .unwrap_or_else(|| "?".into())
}

fn bytes(v: Option<u64>) -> String {
    v.map(ui::fmt_bytes).unwrap_or_else(|| "?".into())
}

fn form(target: &Target, choices: &MigrateTargets, user: &CurrentUser) -> Markup {
    let viewer = viewer(user);
    let key = target.url_id();
    let first = choices
        .nodes
        .iter()
        .find(|n| n.online)
        .map(|n| n.node.as_str());
    html! {
        form.stack method="post" action={ "/containers/" (key) "/migrate" } {
            (ui::csrf_field(&viewer))
            p { "CT " (target.vmid) " is on node " strong { (choices.node) } " and "
                (if choices.running { "running" } else { "stopped" }) "." }
            table.table {
                thead { tr { th { "Target" } th { "Node" } th { "CPU load" } th { "Free memory" } th { "Free disk" } } }
                tbody {
                    @for n in &choices.nodes {
                        tr {
                            td {
                                @if n.online {
                                    input type="radio" name="target" value=(n.node) id={ "target-" (n.node) } checked[Some(n.node.as_str()) == first];
                                } @else {
                                    input type="radio" name="target" value=(n.node) disabled title="offline";
                                }
                            }
                            td { label for={ "target-" (n.node) } { (n.node) } @if !n.online { " " (ui::badge(None, "offline")) } }
                            td { (pct(n.cpu)) " of " (n.maxcpu.map(|c| c.to_string()).unwrap_or_else(|| "?".into())) }
                            td { (bytes(n.free_mem)) " of " (bytes(n.maxmem)) }
                            td { (bytes(n.free_disk)) }
                        }
                    }
                }
            }
            label {
                input type="checkbox" name="restart" checked[choices.running];
                " Restart mode: shut the container down, move it, start it on the target"
                @if choices.running { " (needed: it is running)" }
            }
            div.row {
                button.btn.btn-primary type="submit" disabled[first.is_none()] { "Migrate" }
                a.btn href={ "/containers/" (key) } { "Cancel" }
            }
        }
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    notice: Option<(Tone, String)>,
) -> Result<Markup, AppError> {
    let choices = migrate::targets(state, user, target).await?;
    let name = target.display_name();
    let crumb = format!("{name} (CT {})", target.vmid);
    let body = html! {
        (ui::breadcrumbs(&[("/", "Containers"), (&format!("/containers/{}", target.url_id()), &crumb), ("", "Migrate")]))
        @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
        h1 { "Migrate " (name) }
        (form(target, &choices, user))
    };
    Ok(ui::layout(
        &format!("Migrate {crumb}"),
        "/",
        &viewer(user),
        body,
    ))
}

/// `GET /containers/{id}/migrate`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
) -> Result<Markup, AppError> {
    let target = resolve(&state, &id).await?;
    page(&state, &user, &target, None).await
}

/// `POST /containers/{id}/migrate`: queued → the job's page; refused → the form with why.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<MigrateForm>,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let req = MigrateRequest {
        target: f.target,
        restart: f.restart.is_some(),
    };
    match migrate::submit(&state, &user, &remote.ip().to_string(), &target, &req).await {
        Ok(accepted) => Ok(Redirect::to(&accepted.page).into_response()),
        Err(e @ (AppError::Forbidden(_) | AppError::Conflict(_) | AppError::Invalid { .. })) => {
            let status = e.status();
            let markup = page(&state, &user, &target, Some((Tone::Err, e.to_string()))).await?;
            Ok((status, markup).into_response())
        }
        Err(e) => Err(e),
    }
}
