//! `/jobs/{id}`: live progress of a job — a stepper with percent, the log (auto-scroll that
//! pauses when you scroll up, search, copy), and on completion the container's services and
//! links; for a bulk action, the result of every container. The page renders everything
//! persisted so far without JavaScript; the script then follows the SSE stream from the last
//! event it has.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::containers::bulk::JOB_KIND as BULK_KIND;
use crate::error::AppError;
use crate::fleet::ChangeKind;
use crate::fleet::job::{FleetResult, ItemState, JOB_KIND as FLEET_KIND};
use crate::jobs::access::{self, Access, Use};
use crate::state::AppState;
use crate::status::{JobState, RecordStatus};
use crate::web::components::{self as ui, Tone};
use crate::web::home::viewer;

/// Most log events one page shows; older ones are a link away (`?before=<seq>`).
pub const LOG_PAGE: i64 = 2_000;

/// `?before=<seq>`: show the log lines before this sequence number (a static page of history).
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Show events older than this sequence number.
    pub before: Option<i64>,
}

/// `GET /jobs/{id}[?before=<seq>]`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Query(query): Query<LogQuery>,
) -> Result<Markup, AppError> {
    let job = access::read(&state, &user, id).await?;
    let can_control = Access::new(&state, &user)
        .allows(&job, Use::Control)
        .await?;
    let steps: Vec<String> = match state.jobs.registry().get(&job.kind) {
        Some(handler) => handler.steps(&job).into_iter().map(str::to_owned).collect(),
        None => Vec::new(),
    };
    let done: Vec<&str> = job
        .completed_steps
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    let history = query.before.filter(|b| *b > 0);
    let events = state
        .store
        .job_events_before(id, history.unwrap_or(i64::MAX), LOG_PAGE)
        .await?;
    let last_seq = events.last().map(|e| e.seq).unwrap_or(0);
    let older = events.first().map(|e| e.seq).filter(|seq| *seq > 1);
    // A history page is static: the live stream only follows the newest page.
    let stream = history
        .is_none()
        .then(|| format!("/api/v1/jobs/{id}/events"));
    let percent = if steps.is_empty() {
        0
    } else {
        done.len() * 100 / steps.len()
    };
    let container = match job.container_id {
        Some(cid) => state.store.get_container(cid).await.ok(),
        None => None,
    };
    let services = match &container {
        Some(c) => state.store.list_services(c.id).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let bulk_results = match job.kind.as_str() {
        BULK_KIND => crate::web::bulk::results(&job),
        FLEET_KIND => fleet_results(&job),
        _ => None,
    };
    let title = match (&container, crate::web::bulk::job_title(&job)) {
        (Some(c), _) => format!("Creating {} (VMID {})", c.hostname, c.vmid),
        (None, Some(bulk)) if job.kind == BULK_KIND => bulk,
        (None, _) if job.kind == FLEET_KIND => fleet_title(&job),
        (None, _) => format!("Job {id}: {}", job.kind),
    };
    let retry_label = match job.kind.as_str() {
        BULK_KIND => crate::web::bulk::retry_label(&job),
        FLEET_KIND => {
            let r = FleetResult::of(&job);
            Some(format!(
                "Retry the {} change(s) that did not succeed",
                r.total - r.succeeded
            ))
        }
        _ => None,
    };
    let retry_label = retry_label.unwrap_or_else(|| {
        format!(
            "Retry from {}",
            job.current_step.clone().unwrap_or_default()
        )
    });
    let retries = state
        .store
        .job_retry_counts(id)
        .await?
        .into_iter()
        .find(|(job_id, _)| *job_id == id)
        .map_or(0, |(_, n)| n);
    let v = viewer(&user);
    Ok(ui::layout(
        &title,
        "/jobs",
        &v,
        html! {
            h1 { (title) }
            div.card.stack data-job-stream=[stream] data-last-seq=(last_seq) data-state=(job.state.as_str()) {
                div.row {
                    span { "State: " }
                    span data-job-state { (ui::badge(Some(match job.state { JobState::Succeeded => Tone::Ok, JobState::Failed | JobState::Cancelled => Tone::Err, _ => Tone::Info }), job.state.as_str())) }
                    span.muted data-job-attempt { "attempt " (attempt_of(retries)) }
                    @if can_control && matches!(job.state, JobState::Queued | JobState::Running) {
                        form method="post" action={ "/jobs/" (id) "/cancel" } { (ui::csrf_field(&v)) button.btn type="submit" { "Cancel" } }
                    }
                    a href="/jobs" { "All jobs" }
                }
                p data-job-current aria-live="polite" { (current_label(&steps, &done, &job)) }
                ol.stepper aria-label="Steps" {
                    @for s in &steps {
                        @let class = if done.contains(&s.as_str()) { "done" } else if job.current_step.as_deref() == Some(s) && job.state == JobState::Running { "current" } else if job.current_step.as_deref() == Some(s) && job.state == JobState::Failed { "failed" } else { "todo" };
                        li data-step=(s) class=(class) aria-current=[(class == "current").then_some("step")] { (s) }
                    }
                }
                @let percent = if job.state == JobState::Succeeded { 100 } else { percent };
                div.row {
                    progress data-job-percent max="100" value=(percent) aria-label="Progress" { (percent) "%" }
                    span data-job-percent-label { (percent) " %" }
                }
                @if let Some(error) = &job.error {
                    div data-job-error { (ui::alert(Tone::Err, error)) }
                    div.row {
                        @if can_control {
                            form method="post" action={ "/jobs/" (id) "/retry" } { (ui::csrf_field(&v)) button.btn.btn-primary type="submit" { (retry_label) } }
                        }
                        @if let Some(c) = &container { a.btn href={ "/containers/" (c.id) } { "Container page (destroy)" } }
                    }
                } @else {
                    div data-job-error hidden {}
                }
                div.row {
                    label for="log-search" { "Search log" }
                    input id="log-search" type="search" data-log-search;
                    button.btn type="button" data-log-copy { "Copy log" }
                    span.muted data-log-follow aria-live="polite" { "following" }
                }
                @if older.is_some() || history.is_some() {
                    p.row {
                        @if let Some(seq) = older { a href={ "/jobs/" (id) "?before=" (seq) } { "Older log lines" } }
                        @if history.is_some() { a href={ "/jobs/" (id) } { "Newest log lines (live)" } }
                    }
                }
                pre.code.log.log-scroll data-job-log tabindex="0" role="region" aria-label="Job log" {
                    @for e in &events {
                        @if e.kind == "log" { span class=(log_level(&e.data)) data-seq=(e.seq) { (e.data) "\n" } }
                        @else if e.kind == "step" || e.kind == "error" || e.kind == "done" { span.muted data-seq=(e.seq) { "── " (e.kind) " " (e.step.clone().unwrap_or_default()) " ──\n" } }
                    }
                }
            }
            @if let Some(results) = bulk_results { (results) }
            @if job.state == JobState::Succeeded {
                @if let Some(c) = &container {
                    section.card.stack {
                        h2 { "Ready" }
                        @if services.is_empty() { p.muted { "No services discovered." } }
                        ul { @for s in &services { li { code { (s.unit) } " " (ui::badge(Some(if s.active_state == "active" { Tone::Ok } else { Tone::Warn }), &s.active_state)) @if let Some(url) = &s.url { " " a.btn href=(url) target="_blank" rel="noopener" { "Open " (url) } } } } }
                        a.btn.btn-primary href={ "/containers/" (c.id) "?tab=services" } { "Services and credentials" }
                    }
                }
            }
        },
    ))
}

/// `POST /jobs/{id}/retry`: re-queues a failed job from its failed step (audited).
pub async fn retry(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<axum::response::Redirect, AppError> {
    access::retry(&state, &user, id, &remote.ip().to_string()).await?;
    if let Ok(job) = state.store.get_job(id).await
        && let Some(cid) = job.container_id
    {
        let _ = state
            .store
            .update_container_status(cid, RecordStatus::Creating, None)
            .await;
    }
    Ok(axum::response::Redirect::to(&format!("/jobs/{id}")))
}

/// "Fleet apply: 2 to create, 1 to change, 1 to remove".
fn fleet_title(job: &crate::storage::model::Job) -> String {
    let Some(payload) = crate::fleet::job::payload_of(job) else {
        return format!("Job {}: fleet apply", job.id);
    };
    let count = |kind: ChangeKind| payload.items.iter().filter(|i| i.action == kind).count();
    format!(
        "Fleet apply: {} to create, {} to change, {} to remove",
        count(ChangeKind::Create),
        count(ChangeKind::Update),
        count(ChangeKind::Remove)
    )
}

/// The items of a fleet apply: one row per `+`, `~` and `-` line with its state, what
/// changed, and the result or error.
fn fleet_results(job: &crate::storage::model::Job) -> Option<Markup> {
    let payload = crate::fleet::job::payload_of(job)?;
    let mut result = FleetResult::of(job);
    if result.items.len() != payload.items.len() {
        result = FleetResult::build(&payload, &Default::default());
    }
    let finished = job.state.is_finished();
    Some(html! {
        section.card.stack data-fleet-results {
            h2 { "Changes" }
            p.muted data-fleet-summary {
                (result.succeeded) " succeeded, " (result.failed) " failed"
                @if result.pending > 0 { ", " (result.pending) (if finished { " not run" } else { " pending" }) }
                " — " (result.total) " change(s) in this apply."
            }
            div.table-wrap {
                table.table.bulk-results {
                    thead { tr {
                        th scope="col" { "Change" } th scope="col" { "Container" }
                        th scope="col" { "Result" } th scope="col" { "Details" }
                    } }
                    tbody {
                        @for r in &result.items {
                            tr data-result-id=(r.item.key()) {
                                td.mono data-result-action {
                                    (r.item.action.symbol()) " "
                                    (match r.item.action { ChangeKind::Create => "create", ChangeKind::Update => "change", ChangeKind::Remove => "remove", ChangeKind::Unchanged => "unchanged" })
                                }
                                td data-result-name {
                                    @match (r.item.container_id, r.item.action) {
                                        (Some(cid), ChangeKind::Create | ChangeKind::Update) => a href={ "/containers/" (cid) } { (r.item.label()) },
                                        _ => span { (r.item.label()) },
                                    }
                                    @if let Some(job_id) = r.item.creation_job { " " a.muted href={ "/jobs/" (job_id) } { "creation job " (job_id) } }
                                }
                                td data-result-outcome {
                                    @match r.state {
                                        ItemState::Succeeded => (ui::badge(Some(Tone::Ok), "ok")),
                                        ItemState::Failed => (ui::badge(Some(Tone::Err), "failed")),
                                        ItemState::Pending => (ui::badge(Some(Tone::Info), if finished { "not run" } else { "pending" })),
                                    }
                                }
                                td data-result-message {
                                    @if !r.item.changes.is_empty() {
                                        ul {
                                            @for c in &r.item.changes { li { (c.field) ": " (c.from) " → " (c.to) } }
                                        }
                                    }
                                    @match (&r.error, r.state) {
                                        (Some(e), ItemState::Failed) => p { (e) },
                                        _ => p { (r.message) },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// "Step 2 of 5: name" for the step being run (or that failed), or what the job is waiting for.
fn current_label(steps: &[String], done: &[&str], job: &crate::storage::model::Job) -> String {
    match job.state {
        JobState::Succeeded => "All steps done".to_owned(),
        JobState::Queued => "Waiting for a worker".to_owned(),
        _ => match job.current_step.as_deref() {
            Some(step) => {
                let index = steps.iter().position(|s| s == step).unwrap_or(done.len());
                format!("Step {} of {}: {step}", index + 1, steps.len())
            }
            None => String::new(),
        },
    }
}

/// The style of a log line by its level: errors and warnings stand out (same rule as app.js).
pub fn log_level(line: &str) -> &'static str {
    let lower = line.to_ascii_lowercase();
    let word = |w: &str| {
        lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|token| token == w)
    };
    if lower.starts_with("e:") || word("error") || word("failed") || word("fatal") {
        "log-err"
    } else if lower.starts_with("w:") || lower.starts_with("warn") || word("warning") {
        "log-warn"
    } else {
        ""
    }
}

/// `GET /jobs?state=&kind=`: filters of the jobs list.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only jobs in this state (`queued`, `running`, `succeeded`, `failed`, `cancelled`).
    pub state: Option<String>,
    /// Only jobs of this kind (`create_container`, `bulk_action`).
    pub kind: Option<String>,
}

/// Jobs the list looks at (newest first); older ones are in the API.
const LIST_LIMIT: i64 = 200;
const STATES: &[&str] = &["queued", "running", "succeeded", "failed", "cancelled"];
const KINDS: &[(&str, &str)] = &[
    (crate::provisioning::submit::JOB_KIND, "Create container"),
    (BULK_KIND, "Bulk action"),
    (FLEET_KIND, "Fleet apply"),
    (crate::provisioning::batch::JOB_KIND, "Create several"),
];

/// The tone of a job state's badge.
pub fn state_tone(state: &str) -> Tone {
    match state {
        "succeeded" => Tone::Ok,
        "failed" | "cancelled" => Tone::Err,
        "running" => Tone::Info,
        _ => Tone::Warn,
    }
}

/// "attempt N" as the user counts: one more than the retries they asked for.
pub fn attempt_of(retries: i64) -> i64 {
    retries + 1
}

fn duration_text(job: &crate::storage::model::Job, now: i64) -> String {
    let Some(started) = job.started_at else {
        return "—".to_owned();
    };
    let secs = (job.finished_at.unwrap_or(now) - started).max(0) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// `GET /jobs`: recent jobs like Proxmox's task list — what, on which guest, who, started,
/// duration, state — filtered in the URL, refreshed live, with Cancel and Retry.
pub async fn list(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    let wanted_state = query.state.as_deref().filter(|s| !s.is_empty());
    let wanted_kind = query.kind.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = wanted_state.filter(|s| !STATES.contains(s)) {
        return Err(AppError::invalid(format!(
            "unknown job state {s:?}; use one of {}",
            STATES.join(", ")
        )));
    }
    let jobs: Vec<_> = state
        .store
        .list_jobs(LIST_LIMIT)
        .await?
        .into_iter()
        .filter(|j| wanted_state.is_none_or(|s| j.state == s))
        .filter(|j| wanted_kind.is_none_or(|k| j.kind == k))
        .collect();
    let mut access = Access::new(&state, &user);
    let jobs = access.visible(jobs).await?;
    let mut controllable = std::collections::HashSet::new();
    for j in &jobs {
        if (!j.state.is_finished() || matches!(j.state, JobState::Failed | JobState::Cancelled))
            && access.allows(j, Use::Control).await?
        {
            controllable.insert(j.id);
        }
    }
    let min_id = jobs.iter().map(|j| j.id).min().unwrap_or(0);
    let retries: std::collections::HashMap<i64, i64> = state
        .store
        .job_retry_counts(min_id)
        .await?
        .into_iter()
        .collect();
    let containers: std::collections::HashMap<i64, crate::storage::model::Container> = state
        .store
        .list_containers()
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let now = state.clock.now_ms();
    let v = viewer(&user);
    let kind_label = |kind: &str| {
        KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or_else(|| kind.to_owned(), |(_, l)| (*l).to_owned())
    };
    Ok(ui::layout(
        "Jobs",
        "/jobs",
        &v,
        html! {
            h1 { "Jobs" }
            form.row method="get" action="/jobs" role="search" aria-label="Filter jobs" {
                div.field {
                    label for="jobs-state" { "State" }
                    select id="jobs-state" name="state" {
                        option value="" selected[wanted_state.is_none()] { "Any" }
                        @for s in STATES { option value=(s) selected[wanted_state == Some(*s)] { (s) } }
                    }
                }
                div.field {
                    label for="jobs-kind" { "Kind" }
                    select id="jobs-kind" name="kind" {
                        option value="" selected[wanted_kind.is_none()] { "Any" }
                        @for (k, label) in KINDS { option value=(k) selected[wanted_kind == Some(*k)] { (label) } }
                    }
                }
                button.btn type="submit" { "Filter" }
            }
            div id="jobs-live" data-refresh="5" {
                @if jobs.is_empty() {
                    (ui::empty_state("No jobs", "No job matches these filters.", None))
                } @else {
                    div.table-wrap tabindex="0" role="region" aria-label="Jobs list" {
                    table.table data-jobs {
                        thead { tr {
                            th scope="col" { "Job" } th scope="col" { "What" } th scope="col" { "Guest" }
                            th scope="col" { "Who" } th scope="col" { "Started" } th scope="col" { "Duration" }
                            th scope="col" { "State" } th scope="col" { "Actions" }
                        } }
                        tbody {
                            @for j in &jobs {
                                @let guest = j.container_id.and_then(|id| containers.get(&id));
                                @let what = if j.kind == BULK_KIND { crate::web::bulk::job_title(j).unwrap_or_else(|| kind_label(&j.kind)) } else { kind_label(&j.kind) };
                                tr data-job-id=(j.id) data-job-row-state=(j.state) {
                                    td { a href={ "/jobs/" (j.id) } { "#" (j.id) } }
                                    td { a href={ "/jobs/" (j.id) } { (what) } @if let Some(step) = j.current_step.as_deref().filter(|_| j.state != JobState::Succeeded) { br; span.muted { "step " (step) } } }
                                    td { @match guest {
                                        Some(c) => a href={ "/containers/" (c.id) } { (c.hostname) " (CT " (c.vmid) ")" },
                                        None => span.muted { (j.node.clone().unwrap_or_else(|| "—".to_owned())) },
                                    } }
                                    td { (j.created_by) }
                                    td { (j.started_at.map(ui::fmt_time).unwrap_or_else(|| "not yet".to_owned())) }
                                    td { (duration_text(j, now)) }
                                    td {
                                        (ui::badge(Some(state_tone(j.state.as_str())), j.state.as_str()))
                                        " " span.muted data-attempt { "attempt " (attempt_of(retries.get(&j.id).copied().unwrap_or(0))) }
                                    }
                                    td {
                                        @if !controllable.contains(&j.id) {
                                        } @else if matches!(j.state.as_str(), "queued" | "running") {
                                            form method="post" action={ "/jobs/" (j.id) "/cancel" } {
                                                (ui::csrf_field(&v))
                                                button.btn type="submit" aria-label={ "Cancel job " (j.id) } { "Cancel" }
                                            }
                                        } @else if matches!(j.state.as_str(), "failed" | "cancelled") {
                                            form method="post" action={ "/jobs/" (j.id) "/retry" } {
                                                (ui::csrf_field(&v))
                                                button.btn type="submit" aria-label={ "Retry job " (j.id) } { "Retry" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    }
                }
            }
        },
    ))
}

/// `POST /jobs/{id}/cancel`: cancels a queued or running job (audited), back to the jobs list.
pub async fn cancel(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<axum::response::Redirect, AppError> {
    access::cancel(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(axum::response::Redirect::to("/jobs"))
}

/// Log lines the failure panel of a container page shows.
const FAILURE_TAIL: i64 = 15;

/// The panel a container page shows when its creation job failed or was cancelled: the step,
/// the message, the last log lines, and View log / Retry (Delete is among the page's actions).
/// `None` when the job is not in such a state.
pub async fn failure_panel(
    state: &AppState,
    viewer: &crate::web::components::Viewer,
    job_id: i64,
) -> Option<Markup> {
    let job = state.store.get_job(job_id).await.ok()?;
    if !matches!(job.state.as_str(), "failed" | "cancelled") {
        return None;
    }
    let events = state
        .store
        .job_events_before(job_id, i64::MAX, 200)
        .await
        .unwrap_or_default();
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "log")
        .map(|e| e.data.as_str())
        .collect();
    let tail = &lines[lines
        .len()
        .saturating_sub(usize::try_from(FAILURE_TAIL).unwrap_or(15))..];
    let step = job.current_step.clone().unwrap_or_else(|| "?".to_owned());
    let message = job
        .error
        .clone()
        .unwrap_or_else(|| job.state.as_str().to_owned());
    Some(html! {
        section.card.stack data-failure aria-labelledby="failure-title" {
            h2 id="failure-title" { @if job.state == "cancelled" { "Creation cancelled" } @else { "Creation failed at step " (step) } }
            div data-failure-message { (ui::alert(Tone::Err, &message)) }
            @if !tail.is_empty() {
                p.muted { "Last log lines:" }
                pre.code.log data-failure-log tabindex="0" role="region" aria-label="Last log lines" {
                    @for line in tail { span class=(log_level(line)) { (line) "\n" } }
                }
            }
            div.row {
                a.btn href={ "/jobs/" (job_id) } { "View log" }
                form method="post" action={ "/jobs/" (job_id) "/retry" } {
                    (ui::csrf_field(viewer))
                    button.btn.btn-primary type="submit" { "Retry from " (step) }
                }
                span.muted { "or Delete the container with the button above." }
            }
        }
    })
}
