//! `/jobs/{id}`: live progress of a job — a stepper with percent, the log (auto-scroll that
//! pauses when you scroll up, search, copy), and on completion the container's services and
//! links; for a bulk action, the result of every container. The page renders everything
//! persisted so far without JavaScript; the script then follows the SSE stream from the last
//! event it has.

use axum::extract::{Path, Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::containers::bulk::JOB_KIND as BULK_KIND;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
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
    let job = state.store.get_job(id).await.map_err(|e| match e {
        StoreError::NotFound => AppError::NotFound(format!("job {id}")),
        other => other.into(),
    })?;
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
    let bulk_results = crate::web::bulk::results(&job).filter(|_| job.kind == BULK_KIND);
    let title = match (&container, crate::web::bulk::job_title(&job)) {
        (Some(c), _) => format!("Creating {} (VMID {})", c.hostname, c.vmid),
        (None, Some(bulk)) if job.kind == BULK_KIND => bulk,
        (None, _) => format!("Job {id}: {}", job.kind),
    };
    let retry_label = match crate::web::bulk::retry_label(&job).filter(|_| job.kind == BULK_KIND) {
        Some(label) => label,
        None => format!(
            "Retry from {}",
            job.current_step.clone().unwrap_or_default()
        ),
    };
    let v = viewer(&user);
    Ok(ui::layout(
        &title,
        "/",
        &v,
        html! {
            h1 { (title) }
            div.card.stack data-job-stream=[stream] data-last-seq=(last_seq) data-state=(job.state) {
                div.row {
                    span { "State: " }
                    span data-job-state { (ui::badge(Some(match job.state.as_str() { "succeeded" => Tone::Ok, "failed" | "cancelled" => Tone::Err, _ => Tone::Info }), &job.state)) }
                    span.muted data-job-attempt { "attempt " (job.attempts) }
                }
                p data-job-current aria-live="polite" { (current_label(&steps, &done, &job)) }
                ol.stepper aria-label="Steps" {
                    @for s in &steps {
                        @let class = if done.contains(&s.as_str()) { "done" } else if job.current_step.as_deref() == Some(s) && job.state == "running" { "current" } else if job.current_step.as_deref() == Some(s) && job.state == "failed" { "failed" } else { "todo" };
                        li data-step=(s) class=(class) aria-current=[(class == "current").then_some("step")] { (s) }
                    }
                }
                @let percent = if job.state == "succeeded" { 100 } else { percent };
                div.row {
                    progress data-job-percent max="100" value=(percent) aria-label="Progress" { (percent) "%" }
                    span data-job-percent-label { (percent) " %" }
                }
                @if let Some(error) = &job.error {
                    div data-job-error { (ui::alert(Tone::Err, error)) }
                    div.row {
                        form method="post" action={ "/jobs/" (id) "/retry" } { (ui::csrf_field(&v)) button.btn.btn-primary type="submit" { (retry_label) } }
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
                pre.code.log data-job-log tabindex="0" role="region" aria-label="Job log" style="max-height:28rem;overflow:auto" {
                    @for e in &events {
                        @if e.kind == "log" { span class=(log_level(&e.data)) data-seq=(e.seq) { (e.data) "\n" } }
                        @else if e.kind == "step" || e.kind == "error" || e.kind == "done" { span.muted data-seq=(e.seq) { "── " (e.kind) " " (e.step.clone().unwrap_or_default()) " ──\n" } }
                    }
                }
            }
            @if let Some(results) = bulk_results { (results) }
            @if job.state == "succeeded" {
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

/// `POST /jobs/{id}/retry`: re-queues a failed job from its failed step.
pub async fn retry(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<axum::response::Redirect, AppError> {
    state
        .jobs
        .retry(id, &user.username)
        .await
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    if let Ok(job) = state.store.get_job(id).await
        && let Some(cid) = job.container_id
    {
        let _ = state
            .store
            .update_container_status(cid, "creating", None)
            .await;
    }
    Ok(axum::response::Redirect::to(&format!("/jobs/{id}")))
}

/// "Step 2 of 5: name" for the step being run (or that failed), or what the job is waiting for.
fn current_label(steps: &[String], done: &[&str], job: &crate::storage::model::Job) -> String {
    match job.state.as_str() {
        "succeeded" => "All steps done".to_owned(),
        "queued" => "Waiting for a worker".to_owned(),
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
