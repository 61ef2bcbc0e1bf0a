//! Prometheus metrics. Recorded here: HTTP requests by route, method and status and their
//! durations, open SSE streams, sessions, jobs by state. Recorded where they happen: job step
//! durations and finished jobs (`jobs/worker.rs`), Proxmox call latency by endpoint
//! (`ctforge-pve`), SSH command durations (`ctforge-ssh`). Served at `/metrics` (protected: scrape it with
//! an API token as a bearer token).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::AppError;
use crate::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls reuse it).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 120.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed (tests build several apps): keep the
            // handle working either way.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Middleware recording every request by matched route (never the raw path: ids would blow
/// up the label set), method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("ctforge_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("ctforge_http_request_duration_seconds", "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label: the standard methods by name, anything else (a client may send any
/// token as a method) as `other`, so made-up methods cannot grow the label set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// One open Server-Sent Events stream, counted in the `ctforge_sse_connections` gauge from
/// [`SseConnection::open`] until it is dropped (the client went away or the stream ended).
#[derive(Debug)]
pub struct SseConnection {
    stream: &'static str,
}

impl SseConnection {
    /// Counts a new stream of kind `stream` (e.g. `job_events`).
    pub fn open(stream: &'static str) -> Self {
        metrics::gauge!("ctforge_sse_connections", "stream" => stream).increment(1.0);
        Self { stream }
    }
}

impl Drop for SseConnection {
    fn drop(&mut self) {
        metrics::gauge!("ctforge_sse_connections", "stream" => self.stream).decrement(1.0);
    }
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> Result<Response, AppError> {
    let handle = install();
    let now = state.clock.now_ms();
    if let Ok(n) = state.sessions.count(now).await {
        metrics::gauge!("ctforge_sessions").set(n as f64);
    }
    if let Ok(counts) = state.store.count_jobs_by_state().await {
        for job_state in crate::status::JobState::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == job_state.as_str())
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("ctforge_jobs", "state" => job_state.as_str()).set(n as f64);
        }
    }
    metrics::gauge!("ctforge_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        for made_up in ["ZZTOPA", "ZZTOPB", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a valid token");
            assert_eq!(method_label(&method), "other");
        }
    }

    #[test]
    fn sse_connections_are_counted_while_open() {
        let handle = install();
        let gauge = |text: &str| {
            text.lines()
                .find(|l| l.starts_with("ctforge_sse_connections{stream=\"unit_test\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let first = SseConnection::open("unit_test");
        let second = SseConnection::open("unit_test");
        assert_eq!(gauge(&handle.render()), Some(2.0));
        drop(first);
        assert_eq!(gauge(&handle.render()), Some(1.0));
        drop(second);
        assert_eq!(gauge(&handle.render()), Some(0.0));
    }
}
