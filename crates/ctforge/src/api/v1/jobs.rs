//! `/api/v1/jobs`: list (filtered by state, kind and container, paged) and inspect jobs, retry and cancel them, and follow their progress
//! events as JSON or as a Server-Sent Events stream.
//!
//! The SSE stream subscribes to the bus **before** reading the persisted backlog and
//! de-duplicates by sequence number, so no event falls between replay and live delivery; a gap
//! (out-of-order publish, slow viewer, Redis reconnect) is filled from the store. A finished job
//! replays and closes; a finished job with nothing newer than `Last-Event-ID` answers
//! `204 No Content`, which tells `EventSource` to stop reconnecting.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::events::{BusEvent, Delivery, Subscription, job_topic};
use crate::jobs::access::{self, Access};
use crate::jobs::{JobState, completed_steps};
use crate::routes::{Answer, Doc, Routes, schema};
use crate::state::AppState;
use crate::storage::model::{Job, JobFilter};
use crate::storage::{Store, StoreError};

/// Events read from the store per query.
pub(crate) const PAGE: i64 = 500;
/// SSE keep-alive comment interval.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The jobs routes.
pub fn routes(r: Routes) -> Routes {
    r.get("/api/v1/jobs", list, Doc::json::<JobList>())
        .get("/api/v1/jobs/{id}", show, Doc::json::<JobView>())
        .post("/api/v1/jobs/{id}/retry", retry, Doc::json::<JobView>())
        .post("/api/v1/jobs/{id}/cancel", cancel, Doc::json::<JobView>())
        .get(
            "/api/v1/jobs/{id}/events",
            events,
            Doc::answer(Answer::Events {
                event: schema::<BusEvent>,
                json: Some(schema::<JobEventsPage>),
            }),
        )
}

/// Filters of `GET /api/v1/jobs` (all optional).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only jobs in this state (`queued`, `running`, `succeeded`, `failed`, `cancelled`).
    pub state: Option<String>,
    /// Only jobs of this kind (`create_container`, `bulk_action`).
    pub kind: Option<String>,
    /// Only jobs of this container: its id (`42`) or `<cluster>:<vmid>`.
    pub container: Option<String>,
    /// Jobs older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    /// How many jobs, newest first (default 50, at most 500).
    pub limit: Option<i64>,
}

/// Options of `GET /api/v1/jobs/{id}/events`.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Only events with a greater sequence number (`Last-Event-ID` wins when both are given).
    pub after: Option<i64>,
    /// JSON only: at most this many events (default and maximum 1000).
    pub limit: Option<i64>,
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct JobView {
    /// Job id.
    pub id: i64,
    /// `create_container`, `bulk_action`.
    pub kind: String,
    /// State.
    pub state: JobState,
    /// The container record it works on.
    pub container_id: Option<i64>,
    /// The node it works on.
    pub node: Option<String>,
    /// The step running or failed.
    pub current_step: Option<String>,
    /// Steps done, in order.
    pub completed_steps: Vec<String>,
    /// Every step of the job, in order (when its kind is known to this process).
    pub steps: Option<Vec<String>>,
    /// How many times a worker claimed it.
    pub attempts: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Who submitted it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// First start, Unix milliseconds.
    pub started_at: Option<i64>,
    /// End, Unix milliseconds.
    pub finished_at: Option<i64>,
    /// The job's result, if its kind records one (a bulk action's per-container results).
    pub result: Option<Value>,
}

impl JobView {
    /// The view of `job`, with its steps when the registry knows its kind.
    pub fn of(state: &AppState, job: &Job) -> Self {
        Self {
            id: job.id,
            kind: job.kind.clone(),
            state: job.state,
            container_id: job.container_id,
            node: job.node.clone(),
            current_step: job.current_step.clone(),
            completed_steps: completed_steps(job),
            steps: steps_of(state, job).map(|s| s.into_iter().map(str::to_owned).collect()),
            attempts: job.attempts,
            error: job.error.clone(),
            created_by: job.created_by.clone(),
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            result: job
                .result_json
                .as_deref()
                .and_then(|r| serde_json::from_str::<Value>(r).ok()),
        }
    }
}

/// A page of jobs, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct JobList {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `?before=` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// The JSON form of `GET /api/v1/jobs/{id}/events` (without `Accept: text/event-stream`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct JobEventsPage {
    /// Job id.
    pub job_id: i64,
    /// The job's state now.
    pub state: JobState,
    /// Events after `?after=`, in order.
    pub events: Vec<BusEvent>,
}

fn steps_of(state: &AppState, job: &Job) -> Option<Vec<&'static str>> {
    state
        .jobs
        .registry()
        .get(&job.kind)
        .map(|handler| handler.steps(job))
}

async fn load(store: &dyn Store, id: i64) -> Result<Job, AppError> {
    match store.get_job(id).await {
        Ok(job) => Ok(job),
        Err(StoreError::NotFound) => Err(AppError::NotFound(format!("job {id}"))),
        Err(e) => Err(e.into()),
    }
}

fn set(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// `GET /api/v1/jobs?state=&kind=&container=&before=&limit=`: the jobs the caller may see
/// (`jobs::access`), newest first. A page may hold fewer than `limit` jobs; `next_before` still
/// continues after the last job looked at.
pub async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobList>, AppError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let job_state = set(query.state.as_deref())
        .map(|s| {
            s.parse::<JobState>().map_err(|_| AppError::Invalid {
                message: format!("unknown job state {s:?}"),
                fields: vec![(
                    "state".to_owned(),
                    "one of queued, running, succeeded, failed, cancelled".to_owned(),
                )],
            })
        })
        .transpose()?;
    let container_id = match set(query.container.as_deref()) {
        None => None,
        Some(id) => match crate::containers::resolve(&state, id).await?.record {
            Some(record) => Some(record.id),
            // ctforge runs no jobs on containers it does not manage.
            None => {
                return Ok(Json(JobList {
                    jobs: Vec::new(),
                    next_before: None,
                }));
            }
        },
    };
    let filter = JobFilter {
        state: job_state,
        kind: set(query.kind.as_deref()).map(str::to_owned),
        container_id,
        before_id: query.before,
        limit,
    };
    let jobs = state.store.find_jobs(&filter).await?;
    let next_before = if i64::try_from(jobs.len()).unwrap_or(0) == limit {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    let jobs = Access::new(&state, &user).visible(jobs).await?;
    Ok(Json(JobList {
        jobs: jobs.iter().map(|job| JobView::of(&state, job)).collect(),
        next_before,
    }))
}

/// `GET /api/v1/jobs/{id}`: state, step, attempts, completed steps, error.
pub async fn show(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, AppError> {
    let job = access::read(&state, &user, id).await?;
    Ok(Json(JobView::of(&state, &job)))
}

/// `POST /api/v1/jobs/{id}/retry`: re-queues a failed or cancelled job from its failed step
/// (audited).
pub async fn retry(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, AppError> {
    let job = access::retry(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(Json(JobView::of(&state, &job)))
}

/// `POST /api/v1/jobs/{id}/cancel`: cancels a queued or running job (audited).
pub async fn cancel(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, AppError> {
    let job = access::cancel(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(Json(JobView::of(&state, &job)))
}

pub(crate) fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, AppError> {
    match headers.get("last-event-id") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(|v| v.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| AppError::invalid("Last-Event-ID must be an event sequence number")),
    }
}

/// `GET /api/v1/jobs/{id}/events`: with `Accept: text/event-stream`, replays every event after
/// `Last-Event-ID` (or `?after=`, or from the start) then streams live ones (`id:` = sequence
/// number, `event:` = kind, `data:` = the event as JSON); otherwise a JSON page of events.
pub async fn events(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    Path(id): Path<i64>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    access::read(&state, &user, id).await?;
    let after = last_event_id(&headers)?.or(query.after).unwrap_or(0).max(0);
    if !wants_sse(&headers) {
        let job = load(state.store.as_ref(), id).await?;
        let limit = query.limit.unwrap_or(1000).clamp(1, 1000);
        let events = state.store.job_events_after(id, after, limit).await?;
        let events: Vec<BusEvent> = events.iter().map(BusEvent::from_record).collect();
        return Ok(Json(JobEventsPage {
            job_id: id,
            state: job.state,
            events,
        })
        .into_response());
    }
    // Subscribe first: anything published from now on reaches us, anything before is stored.
    let subscription = state
        .bus
        .subscribe(&job_topic(id))
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    let job = load(state.store.as_ref(), id).await?;
    let finished = job.state.is_finished();
    let first = state.store.job_events_after(id, after, PAGE).await?;
    if finished && first.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let feed = Feed {
        store: state.store.clone(),
        job_id: id,
        cursor: after,
        exhausted: i64::try_from(first.len()).unwrap_or(PAGE) < PAGE,
        pending: first.iter().map(delivery).collect(),
        last_terminal: false,
        finished,
        subscription,
        shutdown: state.shutdown.clone(),
        _open: crate::metrics::SseConnection::open("job_events"),
    };
    let mut feed = feed;
    if let Some(last) = feed.pending.back() {
        feed.cursor = last.seq;
    }
    let stream = futures_util::stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One viewer's position: backlog pages, then live events, de-duplicated by sequence.
struct Feed {
    store: Arc<dyn Store>,
    job_id: i64,
    /// Highest sequence number queued so far.
    cursor: i64,
    /// No more stored events after `cursor` (as far as we know).
    exhausted: bool,
    pending: VecDeque<Arc<Delivery>>,
    last_terminal: bool,
    /// The job was finished when the stream opened.
    finished: bool,
    subscription: Subscription,
    shutdown: CancellationToken,
    /// Counts this viewer in `ctforge_sse_connections` while the stream lives.
    _open: crate::metrics::SseConnection,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last_terminal = event.is_terminal();
                return Some((Ok(sse_event(&event)), self));
            }
            if !self.exhausted {
                match self
                    .store
                    .job_events_after(self.job_id, self.cursor, PAGE)
                    .await
                {
                    Ok(page) => {
                        self.exhausted = i64::try_from(page.len()).unwrap_or(PAGE) < PAGE;
                        for record in &page {
                            self.cursor = self.cursor.max(record.seq);
                            self.pending.push_back(delivery(record));
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(job_id = self.job_id, error = %e, "cannot read job events; closing the stream");
                        return None;
                    }
                }
            }
            if self.last_terminal || self.finished {
                return None;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                received = self.subscription.recv() => match received {
                    Ok(event) => {
                        if event.seq <= self.cursor {
                            continue;
                        }
                        if event.seq == self.cursor + 1 {
                            self.cursor = event.seq;
                            self.pending.push_back(event);
                        } else {
                            // Out of order or missed: the store has everything up to it.
                            self.exhausted = false;
                        }
                    }
                    Err(crate::events::RecvError::Lagged) => self.exhausted = false,
                    Err(crate::events::RecvError::Closed) => return None,
                },
            }
        }
    }
}

pub(crate) fn delivery(record: &crate::storage::model::JobEvent) -> Arc<Delivery> {
    Arc::new(Delivery::new(BusEvent::from_record(record)))
}

pub(crate) fn sse_event(event: &Delivery) -> Event {
    Event::default()
        .id(event.seq.to_string())
        .event(event.kind.as_str())
        .data(event.json())
}
