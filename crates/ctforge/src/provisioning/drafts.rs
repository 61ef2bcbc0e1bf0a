//! Secrets of a creation in progress (the wizard's root password), kept server-side between
//! the wizard's steps: sealed with the [`crate::secrets::Keyring`] in `wizard_drafts`, bound
//! to the user, expiring after [`DRAFT_TTL_MS`]. Pages carry only the draft's opaque id, so
//! no later step (and no cached copy of one) contains the secret.

use crate::auth::session::{hash_token, random_token};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;

/// How long a draft lives without use.
pub const DRAFT_TTL_MS: i64 = 60 * 60 * 1000;

/// Seals `secret` into `username`'s draft `id` (a new draft when `id` is `None` or unknown)
/// and answers the draft's id.
pub async fn keep(
    state: &AppState,
    username: &str,
    id: Option<&str>,
    secret: &str,
) -> Result<String, AppError> {
    let sealed = state
        .keyring
        .seal(secret)
        .map_err(|e| AppError::Internal(e.into()))?;
    let id = match id {
        Some(id)
            if !id.is_empty()
                && state
                    .store
                    .get_wizard_draft(&hash_token(id), username)
                    .await
                    .is_ok() =>
        {
            id.to_owned()
        }
        _ => random_token(),
    };
    let expires_at = state.clock.now_ms() + DRAFT_TTL_MS;
    state
        .store
        .put_wizard_draft(&hash_token(&id), username, &sealed, expires_at)
        .await?;
    Ok(id)
}

/// The secret of `username`'s draft `id`; `None` when there is none (expired, someone
/// else's, never made).
pub async fn open(state: &AppState, username: &str, id: &str) -> Result<Option<String>, AppError> {
    if id.is_empty() {
        return Ok(None);
    }
    match state
        .store
        .get_wizard_draft(&hash_token(id), username)
        .await
    {
        Ok(sealed) => {
            let plain = state
                .keyring
                .open(&sealed)
                .map_err(|e| AppError::Internal(e.into()))?;
            Ok(Some(plain.expose().to_owned()))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Forgets draft `id` (after the creation it served).
pub async fn discard(state: &AppState, id: &str) -> Result<(), AppError> {
    if !id.is_empty() {
        state.store.delete_wizard_draft(&hash_token(id)).await?;
    }
    Ok(())
}
