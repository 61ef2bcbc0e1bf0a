//! The container page's Template tab (`?tab=template`): what differs between the container,
//! the template version applied to it and the template today (`containers::drift`), with the
//! diffs, and the Re-apply form (`POST /containers/{id}/reapply`: a choice per file that
//! changed in the container, snapshot first unless the storage cannot, roll back or keep on
//! failure) that queues the `reapply` job and opens its page. The template page's Roll out
//! form posts to `POST /templates/{name}/rollout`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::flash_cookie;
use crate::auth::CurrentUser;
use crate::containers::drift::{self, DriftReport, FileState};
use crate::containers::reapply::{self, FileChoice, OnFailure, ReapplyRequest, RolloutRequest};
use crate::containers::{Target, resolve};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::components::{self as ui, Tone, Viewer};

fn short(hash: Option<&str>) -> &str {
    hash.map_or("unknown", |h| h.get(..12).unwrap_or(h))
}

fn state_tone(state: FileState) -> Option<Tone> {
    match state {
        FileState::InSync => Some(Tone::Ok),
        FileState::Conflict => Some(Tone::Err),
        FileState::ChangedHere | FileState::MissingHere => Some(Tone::Warn),
        _ => Some(Tone::Info),
    }
}

fn diff_block(title: &str, diff: &str) -> Markup {
    html! {
        details {
            summary { (title) }
            pre.code { (diff) }
        }
    }
}

/// The Template tab's content.
pub async fn template_tab(
    state: &AppState,
    user: &CurrentUser,
    viewer: &Viewer,
    target: &Target,
) -> Markup {
    if target.record.is_none() {
        return ui::empty_state(
            "Not made by ctforge",
            "This container was not created from a ctforge template, so there is nothing to compare it with.",
            None,
        );
    }
    match drift::report(state, user, target).await {
        Ok(report) => render(&target.url_id(), viewer, &report),
        Err(e) => ui::alert(Tone::Warn, &format!("Drift cannot be shown: {e}")),
    }
}

fn render(key: &str, viewer: &Viewer, r: &DriftReport) -> Markup {
    let changed: Vec<_> = r
        .files
        .iter()
        .filter(|f| f.state != FileState::InSync)
        .collect();
    html! {
        section.card {
            h2 { "Template " (r.template) }
            p {
                "Applied version " code { (short(r.applied_hash.as_deref())) }
                @if r.template_deleted {
                    " · " (ui::badge(Some(Tone::Warn), "the template was deleted"))
                } @else if r.newer_template {
                    " · template now " code { (short(r.template_hash.as_deref())) } " "
                    (ui::badge(Some(Tone::Info), "newer template version"))
                } @else {
                    " · " (ui::badge(Some(Tone::Ok), "current version"))
                }
                @if r.conflicts > 0 {
                    " " (ui::badge(Some(Tone::Err), &format!("{} conflict(s)", r.conflicts)))
                }
            }
            @if let Some(e) = &r.check_error {
                (ui::alert(Tone::Warn, &format!("The container's files could not be read ({e}); only the template's side is shown.")))
            }
            @if !r.drifted {
                p { "The container matches the template: nothing to re-apply." }
            }
            @if !r.diffs_shown && !changed.is_empty() {
                p.muted { "Diffs show file contents from inside the container: they need VM.Console on it." }
            }
        }
        section.card {
            h2 { "Files" }
            div.table-wrap role="region" aria-label="Managed files" tabindex="0" {
                table.table {
                    thead { tr { th { "File" } th { "Target" } th { "Policy" } th { "State" } } }
                    tbody {
                        @for f in &r.files {
                            tr {
                                td { (f.name) }
                                td.mono { (f.target) }
                                td { (f.policy) }
                                td { (ui::badge(state_tone(f.state), f.state.label())) }
                            }
                        }
                    }
                }
            }
            @for f in &changed {
                @if let Some(d) = &f.container_diff {
                    (diff_block(&format!("{}: changed in the container", f.name), d))
                }
                @if let Some(d) = &f.template_diff {
                    (diff_block(&format!("{}: changed in the template", f.name), d))
                }
            }
        }
        @if !r.scripts.is_empty() || !r.packages.is_empty() {
            section.card {
                h2 { "Scripts and packages" }
                ul {
                    @for s in &r.scripts {
                        li {
                            "Script " code { (s.name) } ": "
                            (match s.state {
                                drift::ScriptState::Changed => "changed since its last run",
                                drift::ScriptState::Added => "new: never ran here",
                                drift::ScriptState::Removed => "removed from the template",
                            })
                            @if let Some(d) = &s.diff { (diff_block("diff", d)) }
                        }
                    }
                    @for p in &r.packages {
                        li {
                            "Package " code { (p.manager) ":" (p.name) } ": "
                            (match p.state {
                                drift::PackageState::AddedInTemplate => "added to the template",
                                drift::PackageState::RemovedFromTemplate => "removed from the template (still installed)",
                                drift::PackageState::MissingHere => "not installed in the container",
                            })
                        }
                    }
                }
            }
        }
        @if !r.template_deleted && r.drifted {
            section.card {
                h2 { "Re-apply" }
                p.muted { "Takes a Proxmox snapshot, applies the template as it is now (files, packages, the scripts that changed), and rolls back to the snapshot if anything fails." }
                form method="post" action={ "/containers/" (key) "/reapply" } {
                    (ui::csrf_field(viewer))
                    @for f in r.files.iter().filter(|f| matches!(f.state, FileState::Conflict | FileState::ChangedHere)) {
                        @let default = if f.state == FileState::Conflict { "backup" } else { "keep" };
                        (ui::select(
                            &format!("file:{}", f.name),
                            &format!("{} ({})", f.target, f.state.label()),
                            &[
                                ("keep".to_owned(), "Keep the container's version".to_owned()),
                                ("take".to_owned(), "Take the template's version".to_owned()),
                                ("backup".to_owned(), "Back up the container's, take the template's".to_owned()),
                            ],
                            default,
                            None,
                        ))
                    }
                    (ui::checkbox("without_snapshot", "Without a snapshot (the storage cannot take one: a failure cannot be rolled back)", false, None))
                    (ui::checkbox("keep_on_failure", "On failure, keep the container as it is (and the snapshot) instead of rolling back", false, None))
                    button.btn.btn-primary type="submit" { "Re-apply" }
                }
            }
        }
    }
}

fn redirect_with(back: &str, tone: Tone, text: &str) -> Response {
    let mut response = Redirect::to(back).into_response();
    if let Some(cookie) = flash_cookie(tone, text) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /containers/{id}/reapply` (form): the job's page, or the tab with the error.
pub async fn reapply_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let target = resolve(&state, &id).await?;
    let back = format!("/containers/{}?tab=template", target.url_id());
    let mut files = BTreeMap::new();
    let mut request = ReapplyRequest::default();
    for (k, v) in pairs {
        if let Some(name) = k.strip_prefix("file:") {
            let choice = match v.as_str() {
                "keep" => FileChoice::Keep,
                "take" => FileChoice::Take,
                "backup" => FileChoice::Backup,
                other => {
                    return Ok(redirect_with(
                        &back,
                        Tone::Err,
                        &format!("{other:?} is not a choice for {name}"),
                    ));
                }
            };
            files.insert(name.to_owned(), choice);
        } else if k == "without_snapshot" {
            request.without_snapshot = true;
        } else if k == "keep_on_failure" {
            request.on_failure = OnFailure::Keep;
        }
    }
    request.files = files;
    Ok(
        match reapply::submit(&state, &user, &remote.ip().to_string(), &target, request).await {
            Ok(accepted) => Redirect::to(&accepted.url).into_response(),
            Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
        },
    )
}

/// The template page's Roll out form.
pub fn rollout_form(name: &str, viewer: &Viewer, containers: usize) -> Markup {
    html! {
        section.card {
            h2 { "Roll out" }
            p.muted { "Re-applies this template to the " (containers) " ready container(s) made from it: a canary first, then a batch at a time, each snapshotted and rolled back on its own failure; the rollout stops at the first failure." }
            form method="post" action={ "/templates/" (name) "/rollout" } {
                (ui::csrf_field(viewer))
                div.grid-3 {
                    (ui::field(&ui::Field { value: "1", ..ui::Field::new("canary", "Canary containers") }))
                    (ui::field(&ui::Field { value: "2", ..ui::Field::new("batch", "Then at a time") }))
                }
                button.btn type="submit" { "Roll out" }
            }
        }
    }
}

/// `POST /templates/{name}/rollout` (form): the job's page, or the template page with the error.
pub async fn rollout_submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(name): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let back = format!(
        "/templates/{}",
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    let mut request = RolloutRequest::default();
    for (k, v) in pairs {
        let number = || v.trim().parse::<usize>().ok();
        match k.as_str() {
            "canary" => match number() {
                Some(n) => request.canary = n,
                None => return Ok(redirect_with(&back, Tone::Err, "canary: give a number")),
            },
            "batch" => match number() {
                Some(n) => request.batch = n,
                None => return Ok(redirect_with(&back, Tone::Err, "batch: give a number")),
            },
            _ => {}
        }
    }
    Ok(
        match reapply::submit_rollout(&state, &user, &remote.ip().to_string(), &name, request).await
        {
            Ok(accepted) => Redirect::to(&accepted.url).into_response(),
            Err(e) => redirect_with(&back, Tone::Err, &e.to_string()),
        },
    )
}
