//! Revealing a container's discovered credentials: opened with the keyring server-side, only
//! on request, and audited as `credential.reveal` (also when refused).

use serde_json::json;

use super::Target;
use crate::audit::{self, Entry};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::secrets::Plain;
use crate::state::AppState;

/// The Proxmox privilege a reveal needs on `/vms/<vmid>` besides VM.Audit
/// ([`crate::authz::REVEAL`]): a user with console access could read the credential files
/// anyway, so console access is the bar.
pub const REVEAL_PRIVILEGE: &str = "VM.Console";

/// Decrypts credential `name` of `target` for `user`; every attempt is audited.
pub async fn reveal(
    state: &AppState,
    user: &CurrentUser,
    remote: &str,
    target: &Target,
    name: &str,
) -> Result<Plain, AppError> {
    let result = open(state, user, target, name).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(AppError::Forbidden(_)) => "denied",
        Err(_) => "error",
    };
    // The target names the credential, so the audit log says which secret was read.
    let entry = Entry::new(
        &user.username,
        "credential.reveal",
        format!("{} credential {name}", target.audit_target()),
        remote,
    )
    .outcome(outcome)
    .detail(json!({
        "credential": name,
        "vmid": target.vmid,
        "id": target.record.as_ref().map(|r| r.id),
    }));
    // The secret leaves this function only once its reveal is on record.
    audit::record(state.store.as_ref(), entry).await?;
    result
}

async fn open(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
    name: &str,
) -> Result<Plain, AppError> {
    let Some(record) = &target.record else {
        return Err(AppError::NotFound(format!(
            "credentials of unmanaged CT {} (ctforge only tracks containers it created)",
            target.vmid
        )));
    };
    crate::authz::reveal(state, user, &target.cluster, target.vmid).await?;
    let credentials = state.store.list_credentials(record.id).await?;
    let credential = credentials
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| AppError::NotFound(format!("credential {name:?} of CT {}", target.vmid)))?;
    state
        .keyring
        .open(&credential.value_sealed)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot open credential {name:?}: {e}")))
}
