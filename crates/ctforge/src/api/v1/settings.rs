//! `/api/v1/clusters`, `/api/v1/tokens`, `/api/v1/roles` and `/api/v1/audit`: the settings of
//! ctforge itself.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditQuery};
use crate::auth::{CurrentUser, require_admin};
use crate::clusters::{self, ClusterForm, ClusterView, Saved};
use crate::error::{AppError, ErrorBody};
use crate::roles::{GrantForm, GrantView};
use crate::routes::{Doc, Routes};
use crate::state::AppState;
use crate::tokens::TokenView;

/// The settings routes: clusters, tokens, audit log.
pub fn routes(r: Routes) -> Routes {
    r.get(
        "/api/v1/clusters",
        list_clusters,
        Doc::json::<Vec<ClusterView>>(),
    )
    .post(
        "/api/v1/clusters",
        create_cluster,
        Doc::status::<ClusterView>(201).body::<ClusterForm>(),
    )
    .get(
        "/api/v1/clusters/{id}",
        get_cluster,
        Doc::json::<ClusterView>(),
    )
    .put(
        "/api/v1/clusters/{id}",
        update_cluster,
        Doc::json::<ClusterView>().body::<ClusterForm>(),
    )
    .delete("/api/v1/clusters/{id}", delete_cluster, Doc::no_content())
    .post(
        "/api/v1/clusters/{id}/test",
        test_cluster,
        Doc::json::<clusters::ConnectionReport>(),
    )
    .get(
        "/api/v1/clusters/{id}/nodes",
        list_node_ssh,
        Doc::json::<Vec<clusters::NodeSshView>>(),
    )
    .put(
        "/api/v1/clusters/{id}/nodes/{node}/ssh",
        set_node_ssh,
        Doc::json::<clusters::NodeSshView>().body::<clusters::NodeSshForm>(),
    )
    .post(
        "/api/v1/clusters/{id}/nodes/{node}/host-key",
        confirm_host_key,
        Doc::json::<clusters::NodeSshView>().body::<clusters::HostKeyConfirmation>(),
    )
    .post(
        "/api/v1/clusters/fingerprint",
        fetch_fingerprint,
        Doc::json::<Fingerprint>().body::<FingerprintQuery>(),
    )
    .get("/api/v1/tokens", list_tokens, Doc::json::<Vec<TokenView>>())
    .post(
        "/api/v1/tokens",
        create_token,
        Doc::status::<CreatedToken>(201).body::<NewToken>(),
    )
    .delete("/api/v1/tokens/{id}", revoke_token, Doc::no_content())
    .get("/api/v1/audit", audit, Doc::json::<AuditPage>())
    .get("/api/v1/roles", list_roles, Doc::json::<Vec<GrantView>>())
    .post(
        "/api/v1/roles",
        grant_role,
        Doc::status::<GrantView>(201).body::<GrantForm>(),
    )
    .delete("/api/v1/roles/{id}", revoke_role, Doc::no_content())
}

/// `409` of a cluster save: the server's certificate must be confirmed first.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConfirmFingerprint {
    /// The error document.
    #[serde(flatten)]
    pub body: ErrorBody,
    /// Send it back as `fingerprint` once compared with the node's.
    pub fingerprint_to_confirm: String,
}

/// A server's TLS certificate fingerprint.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Fingerprint {
    /// SHA-256, `AA:BB:…`.
    pub fingerprint: String,
}

/// A new API token: the secret is shown once.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreatedToken {
    /// The secret: `Authorization: Bearer <token>`.
    pub token: String,
    /// Token id.
    pub id: i64,
    /// Token name.
    pub name: String,
    /// Reminder.
    pub note: String,
}

/// One audit entry.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AuditItem {
    /// Entry id.
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`container.start`, `template.delete`, …).
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub remote_addr: String,
    /// `ok` or the failure.
    pub outcome: String,
}

/// A page of the audit log, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditItem>,
    /// Pass as `?before=` for older entries.
    pub next_before: Option<i64>,
}

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
            Json(ConfirmFingerprint {
                body: ErrorBody::new(StatusCode::CONFLICT, "confirm the server's TLS certificate: compare this fingerprint with the node's (pvenode cert info) and send it back as \"fingerprint\""),
                fingerprint_to_confirm: fp,
            }),
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

/// `POST /api/v1/clusters/{id}/test`: talks to the cluster with its secrets (admins only).
pub async fn test_cluster(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<clusters::ConnectionReport>, AppError> {
    require_admin(&user)?;
    let cluster = state
        .store
        .get_cluster(id)
        .await
        .map_err(|_| AppError::NotFound(format!("cluster {id}")))?;
    Ok(Json(clusters::test_connection(&state, &cluster).await))
}

/// `GET /api/v1/clusters/{id}/nodes`: each node's SSH override and confirmed host key
/// (admins only).
pub async fn list_node_ssh(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Json<Vec<clusters::NodeSshView>>, AppError> {
    require_admin(&user)?;
    Ok(Json(clusters::node_ssh(&state, id).await?))
}

/// `PUT /api/v1/clusters/{id}/nodes/{node}/ssh`: a node's address/port override.
pub async fn set_node_ssh(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, node)): Path<(i64, String)>,
    form: JsonBody<clusters::NodeSshForm>,
) -> Result<Json<clusters::NodeSshView>, AppError> {
    require_admin(&user)?;
    let form = body(form)?;
    let remote = remote.ip().to_string();
    Ok(Json(
        clusters::set_node_ssh(&state, id, &node, &form, &user.username, &remote).await?,
    ))
}

/// `POST /api/v1/clusters/{id}/nodes/{node}/host-key`: confirms the host key Test showed.
pub async fn confirm_host_key(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path((id, node)): Path<(i64, String)>,
    form: JsonBody<clusters::HostKeyConfirmation>,
) -> Result<Json<clusters::NodeSshView>, AppError> {
    require_admin(&user)?;
    let form = body(form)?;
    let remote = remote.ip().to_string();
    Ok(Json(
        clusters::confirm_node_key(&state, id, &node, &form.host_key, &user.username, &remote)
            .await?,
    ))
}

/// Body of `POST /api/v1/clusters/fingerprint`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FingerprintQuery {
    /// The server's URL (`https://pve1:8006`).
    #[schemars(url)]
    url: String,
}

/// `POST /api/v1/clusters/fingerprint`: the certificate fingerprint of a server, to confirm.
pub async fn fetch_fingerprint(
    axum::Extension(user): axum::Extension<CurrentUser>,
    query: JsonBody<FingerprintQuery>,
) -> Result<Json<Fingerprint>, AppError> {
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
    Ok(Json(Fingerprint { fingerprint: fp }))
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name to recognise it by.
    #[schemars(length(min = 1, max = 64))]
    name: String,
}

/// Options of `GET /api/v1/tokens`.
#[derive(Debug, Default, Deserialize)]
pub struct TokensQuery {
    /// `true`: every user's tokens (ctforge admins only).
    #[serde(default)]
    pub all: bool,
}

/// `GET /api/v1/tokens[?all=true]`: the caller's tokens, or every user's for an admin.
pub async fn list_tokens(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<TokensQuery>,
) -> Result<Json<Vec<TokenView>>, AppError> {
    if query.all {
        return Ok(Json(crate::tokens::list_all(&state, &user).await?));
    }
    Ok(Json(crate::tokens::list(&state, &user).await?))
}

/// `POST /api/v1/tokens`: creates a token and shows its secret once.
pub async fn create_token(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    input: JsonBody<NewToken>,
) -> Result<Response, AppError> {
    let input = body(input)?;
    let (view, secret) =
        crate::tokens::create_as(&state, &user, &input.name, &remote.ip().to_string()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret,
            id: view.id,
            name: view.name,
            note: "store this token now; it is not shown again".to_owned(),
        }),
    )
        .into_response())
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    crate::tokens::revoke(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/audit`.
pub async fn audit(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, AppError> {
    let entries = audit::list(state.store.as_ref(), &user, &query).await?;
    let items: Vec<_> = entries
        .iter()
        .map(|e| AuditItem {
            id: e.id,
            at: e.at,
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            remote_addr: e.remote_addr.clone(),
            outcome: e.outcome.clone(),
        })
        .collect();
    Ok(Json(AuditPage {
        next_before: entries.last().map(|e| e.id),
        items,
    }))
}

/// `GET /api/v1/roles`: every ctforge role holder (admins only).
pub async fn list_roles(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Json<Vec<GrantView>>, AppError> {
    Ok(Json(crate::roles::list(&state, &user).await?))
}

/// `POST /api/v1/roles`: grants a role to `user@realm@cluster` (admins only; audited).
pub async fn grant_role(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    form: JsonBody<GrantForm>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let form = body(form)?;
    let view = crate::roles::grant(&state, &user, &form, &remote.ip().to_string()).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `DELETE /api/v1/roles/{id}`: revokes a stored grant (admins only; never the last admin).
pub async fn revoke_role(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    crate::roles::revoke(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}
