//! Bulk actions in the web UI: the selection checkbox of each dashboard card/row, the action
//! bar (a plain form posting to `POST /containers/bulk`, so it works without JavaScript; its
//! lifecycle actions and "Re-apply template", which queues the bulk `reapply` job of
//! [`crate::containers::reapply::submit_bulk`]), the
//! confirmation of destructive actions, the handler that queues the job and redirects to its
//! progress page, and the per-container result list that page shows.
//!
//! Confirmation: with `assets/app.js` the bar's destructive buttons open a dialog (the
//! [`ui::confirm_dialog_of`] component) naming how many and which containers are selected;
//! without it the handler answers an unconfirmed destructive request with a confirmation page
//! built from the same component. Either way the confirmed form carries `confirm=<action>`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use ctforge_pve::types::ResourceKind;
use maud::{Markup, html};

use crate::auth::CurrentUser;
use crate::containers::bulk::{self, BulkResult, ItemResult};
use crate::containers::lifecycle::{self, Action};
use crate::containers::listing::Row;
use crate::containers::reapply;
use crate::containers::{client_for, resolve_in};
use crate::state::AppState;
use crate::storage::model::Job;
use crate::web::components::{self as ui, Tone, Viewer};
use crate::web::containers::{flash_cookie, permission_reason, safe_back};
use crate::web::home::viewer;

/// The id of the bulk form; the checkboxes join it with `form=`.
pub const FORM_ID: &str = "bulk-form";

const ACTIONS: [Action; 5] = [
    Action::Start,
    Action::Stop,
    Action::Shutdown,
    Action::Reboot,
    Action::Delete,
];

/// The confirmation title and text of a destructive bulk action; `count` is "3 containers",
/// `names` the list. The dashboard passes `{n}` and `{names}` for the script to fill in.
fn confirm_copy(action: Action, count: &str, names: &str) -> (String, String) {
    let title = format!("{} {count}?", action.label());
    let text = match action {
        Action::Stop => format!(
            "{names}: stopped immediately, like pulling the plug; unsaved data in them is lost."
        ),
        Action::Shutdown => format!(
            "{names}: each gets {} s to shut down cleanly, then it is stopped.",
            lifecycle::DEFAULT_SHUTDOWN_TIMEOUT
        ),
        Action::Reboot => format!("{names}: restarted; their services are briefly down."),
        Action::Delete => format!(
            "{names}: stopped if running and destroyed with their disks. This cannot be undone."
        ),
        Action::Start => format!("{names}: started."),
    };
    (title, text)
}

fn dialog_id(action: Action) -> String {
    format!("dlg-bulk-{}", action.as_str())
}

/// The bar's value of "Re-apply template" (a `reapply` job, not a lifecycle action).
const REAPPLY: &str = "reapply";
const REAPPLY_LABEL: &str = "Re-apply template";
const REAPPLY_DIALOG: &str = "dlg-bulk-reapply";

/// The confirmation of a bulk re-apply (see [`confirm_copy`]).
fn reapply_copy(count: &str, names: &str) -> (String, String) {
    (
        format!("Re-apply the template to {count}?"),
        format!(
            "{names}: each is snapshotted, then its template as it is today is applied again; files changed only in a container, and conflicts, keep the container's version. A failure rolls that container back to its snapshot."
        ),
    )
}

/// Why the user cannot re-apply (the privilege a re-apply's snapshot needs), if so.
fn reapply_reason(user: &CurrentUser) -> Option<String> {
    (!user.can("vms", "VM.Snapshot")).then(|| {
        "your Proxmox permissions lack VM.Snapshot on /vms (a re-apply takes a snapshot first); ask an administrator".to_owned()
    })
}

/// `web1 (CT 200)`.
fn row_label(row: &Row) -> String {
    format!("{} (CT {})", row.hostname, row.vmid)
}

/// The selection checkbox of one container (it belongs to the bulk form wherever it sits).
pub fn pick(row: &Row, checked: bool) -> Markup {
    html! {
        label.ct-pick {
            input type="checkbox" name="ids" value=(row.key) form=(FORM_ID) data-bulk-pick data-name=(row_label(row)) checked[checked];
            span.skip { "Select " (row_label(row)) }
        }
    }
}

/// The bulk action bar: selection count, "select all on this page" (`select_href` toggles it
/// without script), one button per action (disabled with the reason when the user's Proxmox
/// permissions lack it), and the confirmation dialogs of the destructive ones.
pub fn bar(
    user: &CurrentUser,
    viewer: &Viewer,
    back: &str,
    select_href: &str,
    all_selected: bool,
) -> Markup {
    html! {
        form.bulk-bar.row id=(FORM_ID) method="post" action="/containers/bulk" aria-label="Bulk actions" data-bulk-form {
            (ui::csrf_field(viewer))
            input type="hidden" name="back" value=(back);
            span.muted data-bulk-count aria-live="polite" {
                @if all_selected { "All containers on this page selected." }
                @else { "Tick containers to act on several at once." }
            }
            a.btn href=(select_href) data-bulk-all aria-pressed=(if all_selected { "true" } else { "false" }) {
                @if all_selected { "Clear selection" } @else { "Select all on this page" }
            }
            @for action in ACTIONS {
                @match permission_reason(user, action) {
                    Some(reason) => (ui::disabled_button(action.label(), &reason)),
                    None => {
                        @let (title, text) = confirm_copy(action, "{n}", "{names}");
                        button.btn type="submit" name="action" value=(action.as_str()) data-bulk-action
                            data-bulk-confirm=[action.destructive().then(|| dialog_id(action))]
                            data-bulk-title=(title) data-bulk-text=(text) {
                            (action.label())
                        }
                    }
                }
            }
            @match reapply_reason(user) {
                Some(reason) => (ui::disabled_button(REAPPLY_LABEL, &reason)),
                None => {
                    @let (title, text) = reapply_copy("{n}", "{names}");
                    button.btn type="submit" name="action" value=(REAPPLY) data-bulk-action
                        data-bulk-confirm=(REAPPLY_DIALOG) data-bulk-title=(title) data-bulk-text=(text) {
                        (REAPPLY_LABEL)
                    }
                }
            }
        }
        @if reapply_reason(user).is_none() {
            @let (title, text) = reapply_copy("the selected containers", "The selected containers");
            (ui::confirm_dialog_of(&ui::Confirm {
                id: REAPPLY_DIALOG,
                label: REAPPLY_LABEL,
                title: &title,
                text: &text,
                action: "/containers/bulk",
                confirm: REAPPLY_LABEL,
                hidden: &[("confirm", REAPPLY), ("back", back)],
            }, viewer, None))
        }
        @for action in ACTIONS.into_iter().filter(|a| a.destructive() && permission_reason(user, *a).is_none()) {
            @let id = dialog_id(action);
            @let (title, text) = confirm_copy(action, "the selected containers", "The selected containers");
            (ui::confirm_dialog_of(&ui::Confirm {
                id: &id,
                label: action.label(),
                title: &title,
                text: &text,
                action: "/containers/bulk",
                confirm: action.label(),
                hidden: &[("confirm", action.as_str()), ("back", back)],
            }, viewer, None))
        }
    }
}

/// What the bulk form sends.
#[derive(Debug, Default)]
struct BulkForm {
    ids: Vec<String>,
    action: Option<String>,
    confirm: Option<String>,
    timeout: Option<String>,
    back: Option<String>,
}

impl BulkForm {
    /// Parses a URL-encoded body (`ids` repeats, which `axum::Form` cannot read).
    fn parse(body: &[u8]) -> Self {
        let mut form = Self::default();
        for (key, value) in url::form_urlencoded::parse(body) {
            let value = value.into_owned();
            match key.as_ref() {
                "ids" => form.ids.push(value),
                "action" => form.action = Some(value),
                "confirm" => form.confirm = Some(value),
                "timeout" => form.timeout = Some(value),
                "back" => form.back = Some(value),
                _ => {}
            }
        }
        form
    }
}

fn back_with(back: &str, tone: Tone, text: &str) -> Response {
    let mut response = Redirect::to(back).into_response();
    if let Some(cookie) = flash_cookie(tone, text) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /containers/bulk`: validates the selection; a destructive action not yet confirmed
/// gets a confirmation page; otherwise the job is queued and the browser goes to its progress
/// page. Problems go back to the dashboard as a message.
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    body: axum::body::Bytes,
) -> Response {
    let form = BulkForm::parse(&body);
    let back = safe_back(form.back.as_deref());
    let confirmed = form.confirm.is_some();
    let action = form.confirm.as_deref().or(form.action.as_deref());
    let timeout = match form
        .timeout
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(t) => Some(t),
            Err(_) => {
                return back_with(
                    &back,
                    Tone::Err,
                    &format!("timeout {t:?} must be whole seconds"),
                );
            }
        },
    };
    if action == Some(REAPPLY) {
        return reapply(&state, &user, &remote, form.ids, confirmed, &back).await;
    }
    let request = match bulk::validate(action, &form.ids, timeout) {
        Ok(r) => r,
        Err(e) => return back_with(&back, Tone::Err, &e.to_string()),
    };
    if request.action.destructive() && !confirmed {
        let timeout = request.timeout.to_string();
        return confirm_page(
            &state,
            &user,
            &request.ids,
            &Confirming {
                value: request.action.as_str(),
                label: request.action.label(),
                copy: &|n, names| confirm_copy(request.action, n, names),
                hidden: &[("timeout", &timeout)],
            },
            &back,
        )
        .await
        .into_response();
    }
    match bulk::submit(&state, &user, &remote.ip().to_string(), &request).await {
        Ok(id) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(e) => back_with(&back, Tone::Err, &e.to_string()),
    }
}

/// "Re-apply template" for the selection: confirmed (the dialog, or the page without script),
/// then the `reapply` job of [`reapply::submit_bulk`] (the API's use-case) and its page.
async fn reapply(
    state: &AppState,
    user: &CurrentUser,
    remote: &SocketAddr,
    ids: Vec<String>,
    confirmed: bool,
    back: &str,
) -> Response {
    if ids.is_empty() {
        return back_with(back, Tone::Err, "select at least one container");
    }
    if !confirmed {
        return confirm_page(
            state,
            user,
            &ids,
            &Confirming {
                value: REAPPLY,
                label: REAPPLY_LABEL,
                copy: &reapply_copy,
                hidden: &[],
            },
            back,
        )
        .await
        .into_response();
    }
    let request = reapply::BulkReapplyRequest {
        ids,
        ..Default::default()
    };
    match reapply::submit_bulk(state, user, &remote.ip().to_string(), request).await {
        Ok(accepted) => Redirect::to(&accepted.url).into_response(),
        Err(e) => back_with(back, Tone::Err, &e.to_string()),
    }
}

/// What a confirmation page confirms: the form's `confirm` value, the button's label, the
/// title and text for (count, names), and hidden fields carried along.
struct Confirming<'a> {
    value: &'a str,
    label: &'a str,
    copy: &'a (dyn Fn(&str, &str) -> (String, String) + Sync),
    hidden: &'a [(&'a str, &'a str)],
}

/// The confirmation step without script: the same dialog, open in the page.
async fn confirm_page(
    state: &AppState,
    user: &CurrentUser,
    ids: &[String],
    confirming: &Confirming<'_>,
    back: &str,
) -> Markup {
    let viewer = viewer(user);
    // Proxmox's names for containers without a record: one resource listing per cluster, with
    // the user's own client (best effort; `CT <vmid>` otherwise).
    let mut live: HashMap<(i64, u32), String> = HashMap::new();
    let mut asked: HashSet<i64> = HashSet::new();
    let mut names = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(target) = resolve_in(state.store.as_ref(), id).await else {
            names.push(id.clone());
            continue;
        };
        if target.record.is_none()
            && asked.insert(target.cluster.id)
            && let Ok(client) = client_for(state, user, &target.cluster)
            && let Ok(resources) = client.cluster_resources(Some(ResourceKind::Vm)).await
        {
            for r in resources {
                if let (Some(vmid), Some(name)) = (r.vmid, r.name) {
                    live.insert((target.cluster.id, vmid), name);
                }
            }
        }
        let name = match live.get(&(target.cluster.id, target.vmid)) {
            Some(name) if target.record.is_none() => name.clone(),
            _ => target.display_name(),
        };
        names.push(if name == format!("CT {}", target.vmid) {
            name
        } else {
            format!("{name} (CT {})", target.vmid)
        });
    }
    let (title, text) = (confirming.copy)(&bulk::plural(ids.len()), &names.join(", "));
    let mut hidden: Vec<(&str, &str)> = ids.iter().map(|id| ("ids", id.as_str())).collect();
    hidden.push(("confirm", confirming.value));
    hidden.extend_from_slice(confirming.hidden);
    hidden.push(("back", back));
    ui::layout(
        &title,
        "/",
        &viewer,
        html! {
            h1 { "Confirm" }
            (ui::confirm_dialog_of(&ui::Confirm {
                id: "dlg-bulk-confirm",
                label: confirming.label,
                title: &title,
                text: &text,
                action: "/containers/bulk",
                confirm: confirming.label,
                hidden: &hidden,
            }, &viewer, Some(back)))
        },
    )
}

/// The title of a bulk job's page: `Stop 5 containers`.
pub fn job_title(job: &Job) -> Option<String> {
    let payload = bulk::payload_of(job)?;
    let action = payload.action.parse::<Action>().ok()?;
    Some(format!(
        "{} {}",
        action.label(),
        bulk::plural(payload.ids.len())
    ))
}

/// The per-container result list of a bulk job: every container of the request, with its
/// outcome so far (`pending` until it ran). `assets/app.js` updates rows from `result` events.
pub fn results(job: &Job) -> Option<Markup> {
    let payload = bulk::payload_of(job)?;
    let result = BulkResult::of(job);
    let by_id: HashMap<&str, &ItemResult> =
        result.items.iter().map(|i| (i.id.as_str(), i)).collect();
    let pending = payload.ids.len() - result.items.len();
    let finished = job.state.is_finished();
    Some(html! {
        section.card.stack data-bulk-results {
            h2 { "Containers" }
            p.muted data-bulk-summary {
                (result.succeeded) " succeeded, " (result.failed) " failed"
                @if pending > 0 { ", " (pending) (if finished { " not run" } else { " pending" }) }
                " — " (bulk::plural(payload.ids.len())) " in this request."
            }
            div.table-wrap {
                table.table.bulk-results {
                    thead { tr {
                        th scope="col" { "Container" } th scope="col" { "Result" }
                        th scope="col" { "Status" } th scope="col" { "Details" }
                    } }
                    tbody {
                        @for id in &payload.ids {
                            @let item = by_id.get(id.as_str());
                            tr data-result-id=(id) {
                                td data-result-name {
                                    @match item.and_then(|i| i.key.as_ref().map(|k| (k, i))) {
                                        Some((key, i)) => a href={ "/containers/" (key) } { (i.label()) },
                                        None => span.mono { (id) },
                                    }
                                }
                                td data-result-outcome {
                                    @match item {
                                        Some(i) if i.ok => (ui::badge(Some(Tone::Ok), "ok")),
                                        Some(_) => (ui::badge(Some(Tone::Err), "failed")),
                                        None => (ui::badge(Some(Tone::Info), if finished { "not run" } else { "pending" })),
                                    }
                                }
                                td data-result-status {
                                    @if let Some(status) = item.and_then(|i| i.status.as_deref()) { (ui::status_badge(status)) }
                                }
                                td data-result-message { (item.map(|i| i.message.as_str()).unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The retry button's label of a failed bulk job: how many containers run again.
pub fn retry_label(job: &Job) -> Option<String> {
    let payload = bulk::payload_of(job)?;
    let again = bulk::pending(&payload, &BulkResult::of(job)).len();
    Some(format!(
        "Retry the {} that did not succeed",
        bulk::plural(again)
    ))
}
