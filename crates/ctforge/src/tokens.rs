//! ctforge API tokens for automation: created by a signed-in user, shown once, stored hashed,
//! revocable, and acting as that user on the cluster the user was signed in to. A user manages
//! only their own tokens (same user id, same cluster); other users' tokens are a ctforge admin's
//! (`roles`).

use serde::Serialize;

use crate::auth::CurrentUser;
use crate::auth::session::{hash_token, random_token};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::ApiToken;

/// Prefix that makes ctforge tokens recognisable in secret scanners.
const PREFIX: &str = "ctf_";

/// A token as listed (never the secret).
#[derive(Clone, Debug, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct TokenView {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Creation time (Unix ms).
    pub created_at: i64,
    /// Last use (Unix ms).
    pub last_used: Option<i64>,
    /// Revocation time (Unix ms).
    pub revoked_at: Option<i64>,
    /// Owner (Proxmox user id).
    pub username: String,
    /// The cluster it acts on (absent: the default cluster).
    pub cluster_id: Option<i64>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            last_used: t.last_used,
            revoked_at: t.revoked_at,
            username: t.username,
            cluster_id: t.cluster_id,
        }
    }
}

async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    remote: &str,
) -> Result<(), AppError> {
    crate::audit::record(
        state.store.as_ref(),
        crate::audit::Entry::new(actor, action, target, remote),
    )
    .await?;
    Ok(())
}

/// Creates a token for `user` on the cluster it signed in to; returns its view and the secret
/// (shown once).
pub async fn create_as(
    state: &AppState,
    user: &CurrentUser,
    name: &str,
    remote: &str,
) -> Result<(TokenView, String), AppError> {
    let Some(cluster_id) = user.roles.cluster_id else {
        return Err(AppError::Forbidden(
            "a token acts on the cluster you signed in to; sign in to a cluster first".into(),
        ));
    };
    create_on(state, &user.username, Some(cluster_id), name, remote).await
}

/// Creates a token for `username` on the default cluster (for tools that hold no session).
pub async fn create(
    state: &AppState,
    username: &str,
    name: &str,
    remote: &str,
) -> Result<(TokenView, String), AppError> {
    create_on(state, username, None, name, remote).await
}

async fn create_on(
    state: &AppState,
    username: &str,
    cluster_id: Option<i64>,
    name: &str,
    remote: &str,
) -> Result<(TokenView, String), AppError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(AppError::Invalid {
            message: "the token needs a name".into(),
            fields: vec![("name".into(), "enter 1–64 characters".into())],
        });
    }
    let secret = format!("{PREFIX}{}", random_token());
    let id = state
        .store
        .create_api_token(username, name, &hash_token(&secret))
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AppError::Invalid {
                message: "the token needs another name".into(),
                fields: vec![(
                    "name".into(),
                    format!("you already have a token named {name:?}"),
                )],
            },
            other => other.into(),
        })?;
    if let Some(cluster_id) = cluster_id
        && let Err(e) = state.store.set_api_token_cluster(id, cluster_id).await
    {
        // A token not tied to its cluster would act on the default one: never hand it out.
        let _ = state.store.revoke_api_token(username, id).await;
        return Err(e.into());
    }
    audit(state, username, "token.create", name, remote).await?;
    let view = TokenView::from(state.store.get_api_token(id).await?);
    Ok((view, secret))
}

async fn default_cluster(state: &AppState) -> Option<i64> {
    crate::auth::login::pick_cluster(state, None)
        .await
        .ok()
        .map(|c| c.id)
}

/// Whether `token` is `user`'s own: same user id, same cluster.
fn owns(user: &CurrentUser, token: &ApiToken, default: Option<i64>) -> bool {
    token.username == user.username
        && token.cluster_id.or(default).is_some()
        && token.cluster_id.or(default) == user.roles.cluster_id
}

/// The user's own tokens.
pub async fn list(state: &AppState, user: &CurrentUser) -> Result<Vec<TokenView>, AppError> {
    let default = default_cluster(state).await;
    Ok(state
        .store
        .list_api_tokens(&user.username)
        .await?
        .into_iter()
        .filter(|t| owns(user, t, default))
        .map(TokenView::from)
        .collect())
}

/// Every user's tokens (ctforge admins only).
pub async fn list_all(state: &AppState, user: &CurrentUser) -> Result<Vec<TokenView>, AppError> {
    crate::roles::require_admin(user, "listing other users' API tokens")?;
    Ok(state
        .store
        .list_all_api_tokens()
        .await?
        .into_iter()
        .map(TokenView::from)
        .collect())
}

/// Revokes token `id`: the user's own, or anyone's for a ctforge admin.
pub async fn revoke(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<(), AppError> {
    let token = match state.store.get_api_token(id).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => return Err(AppError::NotFound(format!("token {id}"))),
        Err(e) => return Err(e.into()),
    };
    if !owns(user, &token, default_cluster(state).await) {
        crate::roles::require_admin(user, "revoking another user's API token")?;
    }
    state
        .store
        .revoke_api_token(&token.username, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound(format!("token {id}")),
            other => other.into(),
        })?;
    let target = if token.username == user.username {
        id.to_string()
    } else {
        format!("{id} ({})", token.username)
    };
    audit(state, &user.username, "token.revoke", &target, remote).await
}
