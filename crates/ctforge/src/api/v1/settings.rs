//! `/api/v1/clusters`, `/api/v1/tokens` and `/api/v1/audit`: the settings of ctforge itself.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, AuditQuery};
use crate::auth::{CurrentUser, require_admin};
use crate::clusters::{self, ClusterForm, ClusterView, Saved};
use crate::error::AppError;
use crate::state::AppState;

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(body: JsonBody<T>) -> Result<T, AppError> {
    body.map(|Json(v)| v)
        .map_err(|r| AppError::invalid(r.body_text()))
}

/// `GET /api/v1/clusters`.
pub async fn list_clusters(
    State(state): State<AppState>,
) -> Result<Json<Vec<ClusterView>>, AppError> {
    Ok(Json(
        state
            .store
            .list_clusters()
            .await?
            .iter()
            .map(ClusterView::from)
            .collect(),
    ))
}

/// `GET /api/v1/clusters/{id}`.
pub async fn get_cluster(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<ClusterView>, AppError> {
    let cluster = state
        .store
        .get_cluster(id)
        .await
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))?;
    Ok(Json(ClusterView::from(&cluster)))
}

fn saved_response(saved: Saved, created: bool) -> Response {
    match saved {
        Saved::Done(cluster) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(ClusterView::from(cluster.as_ref()))).into_response()
        }
        Saved::ConfirmFingerprint(fp) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "confirm the server's TLS certificate: compare this fingerprint with the node's (pvenode cert info) and send it back as \"fingerprint\"",
                "status": 409,
                "fingerprint_to_confirm": fp,
            })),
        )
            .into_response(),
    }
}

/// `POST /api/v1/clusters`.
pub async fn create_cluster(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    form: JsonBody<ClusterForm>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    let form = body(form)?;
    Ok(saved_response(
        clusters::save(
            &state,
            None,
            &form,
            &user.username,
            &remote.ip().to_string(),
        )
        .await?,
        true,
    ))
}

/// `PUT /api/v1/clusters/{id}`.
pub async fn update_cluster(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    form: JsonBody<ClusterForm>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    let form = body(form)?;
    Ok(saved_response(
        clusters::save(
            &state,
            Some(id),
            &form,
            &user.username,
            &remote.ip().to_string(),
        )
        .await?,
        false,
    ))
}

/// `DELETE /api/v1/clusters/{id}`.
pub async fn delete_cluster(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    require_admin(&user)?;
    clusters::delete(&state, id, &user.username, &remote.ip().to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/clusters/{id}/test`.
pub async fn test_cluster(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<clusters::ConnectionReport>, AppError> {
    let cluster = state
        .store
        .get_cluster(id)
        .await
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))?;
    Ok(Json(clusters::test_connection(&state, &cluster).await))
}

/// Body of `POST /api/v1/clusters/fingerprint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintQuery {
    url: String,
}

/// `POST /api/v1/clusters/fingerprint`: the certificate fingerprint of a server, to confirm.
pub async fn fetch_fingerprint(
    axum::Extension(user): axum::Extension<CurrentUser>,
    query: JsonBody<FingerprintQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    require_admin(&user)?;
    let query = body(query)?;
    let fp = ctforge_pve::fetch_fingerprint(&query.url)
        .await
        .map_err(|e| {
            // The URL is the user's input: one that is malformed or does not answer TLS is
            // an input problem to fix in the form, not an outage of ctforge.
            let message = format!("cannot fetch the TLS certificate of {}: {e}", query.url);
            AppError::Invalid {
                fields: vec![("url".to_owned(), message.clone())],
                message,
            }
        })?;
    Ok(Json(json!({ "fingerprint": fp })))
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
}

/// `GET /api/v1/tokens`: the caller's tokens.
pub async fn list_tokens(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<Vec<crate::tokens::TokenView>>, AppError> {
    Ok(Json(crate::tokens::list(&state, &user.username).await?))
}

/// `POST /api/v1/tokens`: creates a token and shows its secret once.
pub async fn create_token(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    input: JsonBody<NewToken>,
) -> Result<Response, AppError> {
    let input = body(input)?;
    let (view, secret) = crate::tokens::create(
        &state,
        &user.username,
        &input.name,
        &remote.ip().to_string(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": secret, "id": view.id, "name": view.name, "note": "store this token now; it is not shown again" }))).into_response())
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    crate::tokens::revoke(&state, &user.username, id, &remote.ip().to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/audit`.
pub async fn audit(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let entries = audit::list(state.store.as_ref(), &user, &query).await?;
    let items: Vec<_> = entries
        .iter()
        .map(|e| json!({ "id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "remote_addr": e.remote_addr, "outcome": e.outcome }))
        .collect();
    Ok(Json(
        json!({ "items": items, "next_before": entries.last().map(|e| e.id) }),
    ))
}
