//! ctforge API tokens for automation: created by a signed-in user, shown once, stored hashed,
//! revocable, and acting as that user.

use serde::Serialize;

use crate::auth::session::{hash_token, random_token};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::ApiToken;

/// Prefix that makes ctforge tokens recognisable in secret scanners.
const PREFIX: &str = "ctf_";

/// A token as listed (never the secret).
#[derive(Clone, Debug, Serialize)]
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
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            last_used: t.last_used,
            revoked_at: t.revoked_at,
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

/// Creates a token for `username`; returns its view and the secret (shown once).
pub async fn create(
    state: &AppState,
    username: &str,
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
    audit(state, username, "token.create", name, remote).await?;
    let view = state
        .store
        .list_api_tokens(username)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .map(TokenView::from)
        .ok_or_else(|| AppError::NotFound("token".into()))?;
    Ok((view, secret))
}

/// Tokens of a user.
pub async fn list(state: &AppState, username: &str) -> Result<Vec<TokenView>, AppError> {
    Ok(state
        .store
        .list_api_tokens(username)
        .await?
        .into_iter()
        .map(TokenView::from)
        .collect())
}

/// Revokes a token of the user.
pub async fn revoke(
    state: &AppState,
    username: &str,
    id: i64,
    remote: &str,
) -> Result<(), AppError> {
    state
        .store
        .revoke_api_token(username, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound(format!("token {id}")),
            other => other.into(),
        })?;
    audit(state, username, "token.revoke", &id.to_string(), remote).await
}
