//! `GET /api/v1/containers/{id}/events`: a container's provisioning and lifecycle events as a
//! Server-Sent Events stream: the progress events of its jobs (creation, retries) and its own
//! container events (created, ready, started, service_down, …), replayed in time order, then
//! live.
//!
//! Every event carries an `id:`: the position reached in each source (`<container event
//! id>.<job>:<seq>.<job>:<seq>…`), so `Last-Event-ID` resumes exactly after it. Like the job
//! stream, it subscribes to its running jobs' topics **before** reading the backlog and
//! de-duplicates by sequence number. Container events are read from the store once a second
//! and whenever a job ends. The stream closes once a job's terminal event was sent and no job
//! of the container is queued or running any more; a viewer of a container with nothing
//! running gets the replay and the stream closes (`204` when there is nothing to replay) —
//! unless it asks `?follow=true` (the container page): then the stream stays open for the
//! container's own events (a stop, a service going down) until the viewer leaves; it starts
//! at the present (no replay unless resumed with `Last-Event-ID`) and names every event by its
//! source (`container` or `job`), so a page listens to two names whatever the kinds.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::containers::ContainerEventView;
use super::jobs::{KEEP_ALIVE, PAGE, delivery};
use crate::auth::CurrentUser;
use crate::containers::resolve;
use crate::error::AppError;
use crate::events::{BusEvent, Delivery, RecvError, job_topic};
use crate::state::AppState;
use crate::storage::Store;
use crate::storage::model::{ContainerEvent, Job, JobFilter};

/// How often container events are looked up while the stream is live.
const CONTAINER_POLL: Duration = Duration::from_secs(1);
/// Jobs of a container considered (newest first).
const MAX_JOBS: i64 = 100;

/// One event of the stream (`data:`), tagged by where it comes from.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A progress event of one of the container's jobs.
    Job(BusEvent),
    /// An event of the container itself.
    Container(ContainerEventView),
}

/// Where a viewer is: the last container event and, per job, the last sequence number sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Last container event id.
    pub container: i64,
    /// Job id → last sequence number.
    pub jobs: BTreeMap<i64, i64>,
}

impl Cursor {
    /// Parses `<container>[.<job>:<seq>]*`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let container = parts.next()?.parse::<i64>().ok()?;
        let mut jobs = BTreeMap::new();
        for part in parts {
            let (job, seq) = part.split_once(':')?;
            jobs.insert(job.parse().ok()?, seq.parse().ok()?);
        }
        Some(Self { container, jobs })
    }

    fn job(&self, job_id: i64) -> i64 {
        self.jobs.get(&job_id).copied().unwrap_or(0)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.container)?;
        for (job, seq) in &self.jobs {
            write!(f, ".{job}:{seq}")?;
        }
        Ok(())
    }
}

enum Item {
    Job(Arc<Delivery>),
    Container(ContainerEvent),
}

impl Item {
    /// Replay order: time, and a job's terminal event after anything else of its millisecond
    /// (live, the container's own events are read before a terminal event is sent).
    fn order(&self) -> (i64, bool) {
        match self {
            Self::Job(d) => (d.at, d.is_terminal()),
            Self::Container(e) => (e.created_at, false),
        }
    }
}

/// Options of the stream.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct StreamQuery {
    /// Stay open while nothing runs (the container's own events keep coming).
    #[serde(default)]
    pub follow: bool,
}

type Live = SelectAll<BoxStream<'static, Result<Arc<Delivery>, RecvError>>>;

/// `GET /api/v1/containers/{id}/events`.
pub async fn events(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let resumed = headers.contains_key("last-event-id");
    let cursor = match headers.get("last-event-id") {
        None => Cursor::default(),
        Some(value) => value.to_str().ok().and_then(Cursor::parse).ok_or_else(|| {
            AppError::invalid("Last-Event-ID must be an id of this stream's events")
        })?,
    };
    let target = resolve(&state, &id).await?;
    crate::authz::read(&state, &user, &target.cluster, target.vmid).await?;
    let Some(record) = target.record else {
        return Err(AppError::NotFound(format!(
            "events of unmanaged CT {} (ctforge records events of containers it created)",
            target.vmid
        )));
    };
    let store = state.store.clone();
    let mut jobs = jobs_of(store.as_ref(), record.id).await?;
    jobs.reverse();
    // Subscribe first: anything published from now on reaches us, anything before is stored.
    let mut live: Live = SelectAll::new();
    for job in jobs.iter().filter(|j| !j.state.is_finished()) {
        let subscription = state
            .bus
            .subscribe(&job_topic(job.id))
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        let stream = futures_util::stream::unfold(subscription, |mut sub| async move {
            match sub.recv().await {
                Err(RecvError::Closed) => None,
                other => Some((other, sub)),
            }
        });
        live.push(stream.boxed());
    }
    let mut feed = Feed {
        store,
        container_id: record.id,
        queued: cursor.clone(),
        cursor,
        pending: VecDeque::new(),
        running: query.follow || jobs.iter().any(|j| !j.state.is_finished()),
        follow: query.follow,
        recheck: false,
        live,
        poll: tokio::time::interval(CONTAINER_POLL),
        shutdown: state.shutdown.clone(),
        _open: crate::metrics::SseConnection::open("container_events"),
    };
    let mut backlog = Vec::new();
    for job in &jobs {
        backlog.extend(feed.job_backlog(job.id).await?.into_iter().map(Item::Job));
    }
    backlog.extend(
        feed.container_backlog()
            .await?
            .into_iter()
            .map(Item::Container),
    );
    // Stable: events of the same millisecond keep their order within each source.
    backlog.sort_by_key(Item::order);
    if query.follow && !resumed {
        // A page that just rendered the container shows all of this already.
        feed.cursor = feed.queued.clone();
    } else {
        feed.pending.extend(backlog);
    }
    if feed.pending.is_empty() && !feed.running {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let stream = futures_util::stream::unfold(feed, Feed::next);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

async fn jobs_of(store: &dyn Store, container_id: i64) -> Result<Vec<Job>, AppError> {
    Ok(store
        .find_jobs(&JobFilter {
            container_id: Some(container_id),
            limit: MAX_JOBS,
            ..JobFilter::default()
        })
        .await?)
}

/// One viewer of one container's events.
struct Feed {
    store: Arc<dyn Store>,
    container_id: i64,
    /// Positions sent (the `id:` of the last event sent).
    cursor: Cursor,
    /// Positions queued in `pending` (ahead of `cursor`).
    queued: Cursor,
    pending: VecDeque<Item>,
    /// Some job of the container was queued or running when last checked.
    running: bool,
    /// Stays open while nothing runs (`?follow=true`).
    follow: bool,
    /// A job's terminal event was sent: re-read which jobs still run.
    recheck: bool,
    live: Live,
    poll: tokio::time::Interval,
    shutdown: CancellationToken,
    /// Counts this viewer in `ctforge_sse_connections` while the stream lives.
    _open: crate::metrics::SseConnection,
}

impl Feed {
    /// Stored events of `job_id` after the queued position, in order.
    async fn job_backlog(&mut self, job_id: i64) -> Result<Vec<Arc<Delivery>>, AppError> {
        let mut out = Vec::new();
        loop {
            let after = self.queued.job(job_id);
            let page = self.store.job_events_after(job_id, after, PAGE).await?;
            let full = i64::try_from(page.len()).unwrap_or(PAGE) >= PAGE;
            for record in &page {
                self.queued.jobs.insert(job_id, record.seq);
                out.push(delivery(record));
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Stored container events after the queued position, in order.
    async fn container_backlog(&mut self) -> Result<Vec<ContainerEvent>, AppError> {
        let mut out = Vec::new();
        loop {
            let page = self
                .store
                .container_events_after(self.container_id, self.queued.container, PAGE)
                .await?;
            let full = i64::try_from(page.len()).unwrap_or(PAGE) >= PAGE;
            if let Some(last) = page.last() {
                self.queued.container = last.id;
            }
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    fn sse(&mut self, item: &Item) -> Event {
        let (kind, data) = match item {
            Item::Job(d) => {
                self.cursor.jobs.insert(d.job_id, d.seq);
                (d.kind.clone(), StreamEvent::Job(d.event.clone()))
            }
            Item::Container(e) => {
                self.cursor.container = e.id;
                (
                    e.kind.clone(),
                    StreamEvent::Container(ContainerEventView::from(e)),
                )
            }
        };
        let kind = match (&data, self.follow) {
            (StreamEvent::Job(_), true) => "job".to_owned(),
            (StreamEvent::Container(_), true) => "container".to_owned(),
            (_, false) => kind,
        };
        let data = serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_owned());
        Event::default()
            .id(self.cursor.to_string())
            .event(kind)
            .data(data)
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if let Item::Job(d) = &item
                    && d.is_terminal()
                {
                    self.recheck = true;
                }
                let event = self.sse(&item);
                return Some((Ok(event), self));
            }
            if self.recheck {
                self.recheck = false;
                match jobs_of(self.store.as_ref(), self.container_id).await {
                    Ok(jobs) => {
                        self.running = self.follow || jobs.iter().any(|j| !j.state.is_finished());
                    }
                    Err(e) => {
                        tracing::warn!(container_id = self.container_id, error = %e, "cannot read the container's jobs; closing the stream");
                        return None;
                    }
                }
                if self.drain_container().await.is_err() {
                    return None;
                }
                continue;
            }
            if !self.running {
                return None;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                _ = self.poll.tick() => {
                    if self.drain_container().await.is_err() {
                        return None;
                    }
                }
                // No job to follow (a followed container at rest): only the poll and shutdown.
                received = self.live.next(), if !self.live.is_empty() => match received {
                    Some(Ok(event)) => {
                        let queued = self.queued.job(event.job_id);
                        if event.seq <= queued {
                            continue;
                        }
                        if event.is_terminal() && self.drain_container().await.is_err() {
                            return None;
                        }
                        if event.seq == queued + 1 {
                            self.queued.jobs.insert(event.job_id, event.seq);
                            self.pending.push_back(Item::Job(event));
                        } else if self.refill(event.job_id).await.is_err() {
                            // Out of order or missed: the store has everything up to it.
                            return None;
                        }
                    }
                    Some(Err(_)) => {
                        let jobs: Vec<i64> = self.queued.jobs.keys().copied().collect();
                        for job in jobs {
                            if self.refill(job).await.is_err() {
                                return None;
                            }
                        }
                    }
                    // Every subscription ended (bus closed): nothing more will arrive live.
                    None => self.running = self.follow,
                },
            }
        }
    }

    async fn refill(&mut self, job_id: i64) -> Result<(), AppError> {
        let items = self.job_backlog(job_id).await?;
        self.pending.extend(items.into_iter().map(Item::Job));
        Ok(())
    }

    async fn drain_container(&mut self) -> Result<(), AppError> {
        let items = self.container_backlog().await.inspect_err(|e| {
            tracing::warn!(container_id = self.container_id, error = %e, "cannot read container events; closing the stream");
        })?;
        self.pending.extend(items.into_iter().map(Item::Container));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let mut c = Cursor {
            container: 7,
            ..Cursor::default()
        };
        c.jobs.insert(3, 41);
        c.jobs.insert(12, 2);
        assert_eq!(c.to_string(), "7.3:41.12:2");
        assert_eq!(Cursor::parse("7.3:41.12:2"), Some(c));
        assert_eq!(Cursor::parse("0"), Some(Cursor::default()));
        assert_eq!(Cursor::parse("x"), None);
        assert_eq!(Cursor::parse("1.2"), None);
    }
}
