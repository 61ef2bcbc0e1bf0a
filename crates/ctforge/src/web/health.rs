//! `/healthz` (the process answers) and `/readyz` (its dependencies answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// Liveness: 200 as long as the process serves requests.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

/// Readiness: 200 when the database answers and its migrations are applied; otherwise 503
/// naming the failing dependency.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match state.store.ready().await {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let ok = database["ok"].as_bool().unwrap_or(false);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "status": if ok { "ready" } else { "not ready" }, "checks": { "database": database } }),
        ),
    )
}
