//! Checking a new container's identity while the user types (`GET /api/v1/containers/check`,
//! the wizard's Configure step with and without JavaScript): is the hostname valid, is the VMID
//! a number Proxmox accepts and still free (in Proxmox and among ctforge's own records)?

use serde::{Deserialize, Serialize};

use super::plan::valid_hostname;
use crate::auth::CurrentUser;
use crate::containers::{client_for, is_unreachable};
use crate::error::AppError;
use crate::state::AppState;

/// Query of the check: the values as typed (empty or absent ones are not judged).
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct CheckQuery {
    /// VMID as typed; empty means "the next free one".
    #[serde(default)]
    pub vmid: Option<String>,
    /// Hostname as typed.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Cluster name (the default cluster when empty).
    #[serde(default)]
    pub cluster: Option<String>,
}

/// The verdict on one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldCheck {
    /// False when the value would be refused.
    pub ok: bool,
    /// What is wrong (or a note when `ok`), in words for the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl FieldCheck {
    fn fine() -> Self {
        Self {
            ok: true,
            message: None,
        }
    }
    fn note(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            message: Some(message.into()),
        }
    }
    fn refused(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: Some(message.into()),
        }
    }
}

/// The answer of `GET /api/v1/containers/check`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityCheck {
    /// The VMID (absent when none was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmid: Option<FieldCheck>,
    /// The hostname (absent when none was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<FieldCheck>,
}

/// The hostname rule of [`super::plan::resolve`], as a verdict.
pub fn check_hostname(hostname: &str) -> FieldCheck {
    // A pattern (`web-{n}`, for several at once) is judged as its first hostname.
    let h = super::batch::hostname_for(hostname.trim(), 1).to_ascii_lowercase();
    if h.is_empty() {
        FieldCheck::refused("a hostname is required, e.g. web-01")
    } else if valid_hostname(&h) {
        FieldCheck::fine()
    } else {
        FieldCheck::refused("use letters, digits and '-' (RFC 1123), e.g. web-01")
    }
}

/// Checks the typed values against the rules and the live cluster (the user's own view of it).
pub async fn check(
    state: &AppState,
    user: &CurrentUser,
    query: &CheckQuery,
) -> Result<IdentityCheck, AppError> {
    let hostname = query.hostname.as_deref().map(check_hostname);
    let vmid = match query.vmid.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(FieldCheck::note("the next free VMID is used")),
        Some(text) => Some(check_vmid(state, user, query.cluster.as_deref(), text).await?),
    };
    Ok(IdentityCheck { vmid, hostname })
}

async fn check_vmid(
    state: &AppState,
    user: &CurrentUser,
    cluster: Option<&str>,
    text: &str,
) -> Result<FieldCheck, AppError> {
    let Some(vmid) = text
        .parse::<u32>()
        .ok()
        .filter(|v| crate::provisioning::plan::valid_vmid(*v))
    else {
        return Ok(FieldCheck::refused(
            "a VMID is a number from 100 to 999999999",
        ));
    };
    let cluster =
        crate::auth::login::pick_cluster(state, cluster.filter(|c| !c.is_empty())).await?;
    if state
        .store
        .get_container_by_vmid(cluster.id, i64::from(vmid))
        .await
        .is_ok()
    {
        return Ok(FieldCheck::refused(format!(
            "ctforge already has a container with VMID {vmid}; choose another or leave it empty"
        )));
    }
    let client = client_for(state, user, &cluster)?;
    Ok(
        match ctforge_pve::PveApi::cluster_nextid(client.as_ref(), Some(vmid)).await {
            Ok(_) => FieldCheck::fine(),
            Err(e) if is_unreachable(&e) => FieldCheck::note(format!(
                "Proxmox could not be asked ({e}); VMID {vmid} is checked again when you create"
            )),
            Err(_) => FieldCheck::refused(format!(
                "VMID {vmid} is already in use on cluster {}; choose another or leave it empty",
                cluster.name
            )),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_judged_like_the_plan_does() {
        assert!(check_hostname("web-01").ok);
        assert!(!check_hostname("").ok);
        let bad = check_hostname("bad name!");
        assert!(!bad.ok);
        assert!(bad.message.is_some_and(|m| m.contains("RFC 1123")));
    }
}
