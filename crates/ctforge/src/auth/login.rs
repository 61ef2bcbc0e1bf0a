//! Signing in with Proxmox credentials (with the TOTP second factor) and creating the session.
//! Web and API handlers both call [`sign_in`] / [`complete_second_factor`].

use ctforge_pve::{LoginOutcome, PveError, Secret, TfaChallenge};

use super::SessionData;
use super::session::{hash_token, random_token};
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::StoreError;
use crate::storage::model::{Cluster, SessionRow};

/// Lifetime of a pending second-factor challenge.
const TFA_PENDING_MS: i64 = 5 * 60 * 1000;
/// The one message every failed sign-in gets, so answers reveal nothing about users.
pub const FAILED: &str = "sign-in failed: wrong user name, password or second factor";

/// What the user typed.
#[derive(Clone, Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// User name without realm (or `user@realm`).
    pub username: String,
    /// Password.
    pub password: String,
    /// Realm (`pam`, `pve`, …); defaults to `pam`.
    #[serde(default)]
    pub realm: Option<String>,
    /// TOTP code, if already known.
    #[serde(default)]
    pub otp: Option<String>,
    /// Cluster name; defaults to the default cluster.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// The result of a sign-in step.
#[derive(Debug)]
pub enum SignIn {
    /// A session exists; the cookie carries `token`.
    Done {
        /// Cookie value (shown to the browser only).
        token: String,
        /// CSRF token bound to the session.
        csrf_token: String,
        /// `user@realm`.
        username: String,
        /// Session expiry (Unix ms).
        expires_at: i64,
    },
    /// Proxmox wants a second factor; `pending_token` identifies the half-done sign-in.
    NeedSecondFactor {
        /// Cookie value of the pending sign-in.
        pending_token: String,
    },
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong credentials (uniform message).
    #[error("{}", FAILED)]
    Failed,
    /// Too many failures.
    #[error("too many failed sign-ins; try again in {0} s")]
    RateLimited(i64),
    /// Anything else (Proxmox unreachable, no cluster, …).
    #[error(transparent)]
    Other(#[from] AppError),
}

/// The cluster to sign in to: by name, else the default one.
pub async fn pick_cluster(state: &AppState, name: Option<&str>) -> Result<Cluster, AppError> {
    match name.filter(|n| !n.is_empty()) {
        Some(name) => state.store.get_cluster_by_name(name).await.map_err(|e| match e {
            StoreError::NotFound => AppError::invalid(format!("unknown cluster {name:?}")),
            other => other.into(),
        }),
        None => state.store.list_clusters().await?.into_iter().next().ok_or_else(|| {
            AppError::Unavailable(
                "no Proxmox cluster is configured; add a [[clusters]] entry to the configuration file".to_owned(),
            )
        }),
    }
}

fn split_user(input: &LoginInput) -> (String, String) {
    match input.username.split_once('@') {
        Some((user, realm)) if input.realm.as_deref().unwrap_or("").is_empty() => {
            (user.to_owned(), realm.to_owned())
        }
        _ => (
            input.username.trim().to_owned(),
            input
                .realm
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "pam".to_owned()),
        ),
    }
}

fn map_pve(e: PveError, cluster: &Cluster) -> LoginError {
    match e {
        PveError::Unauthorized { .. } => LoginError::Failed,
        other => LoginError::Other(AppError::Unavailable(format!(
            "cannot reach Proxmox cluster {}: {other}",
            cluster.name
        ))),
    }
}

async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    remote: &str,
    outcome: &str,
) -> Result<(), AppError> {
    let entry = crate::audit::Entry::new(actor, action, "", remote).outcome(outcome);
    crate::audit::record(state.store.as_ref(), entry).await?;
    Ok(())
}

/// First step: user name and password (and the code, if the caller already has it).
pub async fn sign_in(
    state: &AppState,
    input: &LoginInput,
    remote: &str,
) -> Result<SignIn, LoginError> {
    let (user, realm) = split_user(input);
    let userid = format!("{user}@{realm}");
    let key = super::limiter::key(&userid, remote);
    let now = state.clock.now_ms();
    // Reserved before Proxmox is asked: parallel guesses beyond the allowance stop here.
    let attempt = match state.limiter.reserve(&key, now) {
        Ok(attempt) => attempt,
        Err(wait) => {
            audit(state, &userid, "login_failed", remote, "rate_limited").await?;
            return Err(LoginError::RateLimited((wait + 999) / 1000));
        }
    };
    let cluster = pick_cluster(state, input.cluster.as_deref()).await?;
    let config = crate::pve::base_config(&cluster);
    let outcome = ctforge_pve::login(&config, &user, &realm, &input.password).await;
    let result = match outcome {
        Ok(LoginOutcome::Authenticated(ticket)) => Ok(create_session(
            state,
            crate::pve::from_ticket(cluster.id, &ticket),
            &ticket.username,
        )
        .await?),
        Ok(LoginOutcome::TfaRequired(challenge)) => {
            match input.otp.as_deref().filter(|c| !c.is_empty()) {
                Some(code) => {
                    match ctforge_pve::complete_tfa(&config, &challenge, "totp", code.trim()).await
                    {
                        Ok(ticket) => Ok(create_session(
                            state,
                            crate::pve::from_ticket(cluster.id, &ticket),
                            &ticket.username,
                        )
                        .await?),
                        Err(e) => Err(map_pve(e, &cluster)),
                    }
                }
                None => Ok(pending_second_factor(state, cluster.id, &challenge).await?),
            }
        }
        Err(e) => Err(map_pve(e, &cluster)),
    };
    match &result {
        Ok(SignIn::Done { username, .. }) => {
            attempt.succeeded();
            audit(state, username, "login", remote, "ok").await?;
        }
        // The password was right but the sign-in is not done: failures (of the second
        // factor too) are kept until it is.
        Ok(SignIn::NeedSecondFactor { .. }) => drop(attempt),
        Err(LoginError::Failed) => {
            attempt.failed(now);
            audit(state, &userid, "login_failed", remote, "denied").await?;
        }
        Err(_) => {
            drop(attempt);
            audit(state, &userid, "login_failed", remote, "error").await?;
        }
    }
    result
}

async fn pending_second_factor(
    state: &AppState,
    cluster_id: i64,
    challenge: &TfaChallenge,
) -> Result<SignIn, AppError> {
    let token = random_token();
    let now = state.clock.now_ms();
    let data = SessionData {
        cluster_id,
        ticket: String::new(),
        pve_csrf: String::new(),
        cap: Default::default(),
        issued_at: 0,
        tfa_challenge: Some(challenge.ticket.expose().to_owned()),
    };
    let row = SessionRow {
        id_hash: hash_token(&token),
        username: challenge.username.clone(),
        data_sealed: seal(state, &data)?,
        csrf_token: String::new(),
        expires_at: now + TFA_PENDING_MS,
        created_at: now,
    };
    state
        .sessions
        .put(&row, now)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(SignIn::NeedSecondFactor {
        pending_token: token,
    })
}

/// Second step: the TOTP code for a pending sign-in.
pub async fn complete_second_factor(
    state: &AppState,
    pending_token: &str,
    code: &str,
    remote: &str,
) -> Result<SignIn, LoginError> {
    let now = state.clock.now_ms();
    let id_hash = hash_token(pending_token);
    let row = state
        .sessions
        .get(&id_hash, now)
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .ok_or(LoginError::Failed)?;
    let key = super::limiter::key(&row.username, remote);
    let attempt = state
        .limiter
        .reserve(&key, now)
        .map_err(|wait| LoginError::RateLimited((wait + 999) / 1000))?;
    let data = open(state, &row.data_sealed)?;
    let Some(challenge_ticket) = data.tfa_challenge else {
        return Err(LoginError::Failed);
    };
    let cluster = state
        .store
        .get_cluster(data.cluster_id)
        .await
        .map_err(AppError::from)?;
    let challenge = TfaChallenge {
        username: row.username.clone(),
        ticket: Secret::new(challenge_ticket),
        totp: true,
        recovery: false,
        webauthn: false,
        yubico: false,
        u2f: false,
    };
    match ctforge_pve::complete_tfa(
        &crate::pve::base_config(&cluster),
        &challenge,
        "totp",
        code.trim(),
    )
    .await
    {
        Ok(ticket) => {
            let _ = state.sessions.delete(&id_hash).await;
            attempt.succeeded();
            let done = create_session(
                state,
                crate::pve::from_ticket(cluster.id, &ticket),
                &ticket.username,
            )
            .await?;
            audit(state, &ticket.username, "login", remote, "ok").await?;
            Ok(done)
        }
        Err(e) => {
            let err = map_pve(e, &cluster);
            if matches!(err, LoginError::Failed) {
                attempt.failed(now);
                audit(state, &row.username, "login_failed", remote, "denied").await?;
            }
            Err(err)
        }
    }
}

/// Creates a session with a fresh id (no fixation) for a ticket.
pub async fn create_session(
    state: &AppState,
    data: SessionData,
    username: &str,
) -> Result<SignIn, AppError> {
    let token = random_token();
    let csrf_token = random_token();
    let now = state.clock.now_ms();
    // Session lifetime and renewal are measured on ctforge's clock: the ticket is 2 h old at
    // most when it reaches us, so the session ends when the ticket would.
    let mut data = data;
    if data.tfa_challenge.is_none() {
        data.issued_at = now / 1000;
    }
    let expires_at = now + 2 * 60 * 60 * 1000;
    let row = SessionRow {
        id_hash: hash_token(&token),
        username: username.to_owned(),
        data_sealed: seal(state, &data)?,
        csrf_token: csrf_token.clone(),
        expires_at,
        created_at: now,
    };
    state
        .sessions
        .put(&row, now)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(SignIn::Done {
        token,
        csrf_token,
        username: username.to_owned(),
        expires_at,
    })
}

/// Destroys a session.
pub async fn sign_out(
    state: &AppState,
    id_hash: &str,
    username: &str,
    remote: &str,
) -> Result<(), AppError> {
    state
        .sessions
        .delete(id_hash)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    audit(state, username, "logout", remote, "ok").await?;
    Ok(())
}

/// Seals session data for storage.
pub fn seal(state: &AppState, data: &SessionData) -> Result<String, AppError> {
    let json = serde_json::to_string(data).map_err(|e| AppError::Internal(e.into()))?;
    state
        .keyring
        .seal(&json)
        .map_err(|e| AppError::Internal(e.into()))
}

/// Opens stored session data.
pub fn open(state: &AppState, sealed: &str) -> Result<SessionData, AppError> {
    let plain = state
        .keyring
        .open(sealed)
        .map_err(|e| AppError::Internal(e.into()))?;
    serde_json::from_str(plain.expose()).map_err(|e| AppError::Internal(e.into()))
}
