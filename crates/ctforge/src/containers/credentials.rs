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

/// The service a credential belongs to, when its name says so: the name without its kind
/// (`_PASSWORD`, `_TOKEN`, `_SECRET`, `_KEY`, `_USER`, …), in lowercase with `-` for `_`,
/// is the name of one of `units` (without `.service` and an `@instance`), e.g.
/// `CODE_SERVER_PASSWORD` → `code-server@coder.service`. The longest match wins.
pub fn service_for<'a>(name: &str, units: &[&'a str]) -> Option<&'a str> {
    const KINDS: [&str; 10] = [
        "password", "passwd", "pass", "pw", "token", "secret", "key", "user", "username", "url",
    ];
    let words: Vec<String> = name
        .split(['_', '-', '.'])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut best: Option<(&str, usize)> = None;
    for unit in units {
        let stem = unit.strip_suffix(".service").unwrap_or(unit);
        let stem = stem.split('@').next().unwrap_or(stem).to_ascii_lowercase();
        if stem.is_empty() {
            continue;
        }
        // The leading words of the name, once the trailing kind words are dropped.
        let mut end = words.len();
        while end > 0 && KINDS.contains(&words[end - 1].as_str()) {
            end -= 1;
        }
        let matched = (1..=end).rev().find(|&n| {
            let prefix = words[..n].join("-");
            prefix == stem || prefix.replace('-', "") == stem.replace(['-', '_'], "")
        });
        if let Some(n) = matched
            && best.is_none_or(|(_, m)| n > m)
        {
            best = Some((unit, n));
        }
    }
    best.map(|(u, _)| u)
}

#[cfg(test)]
mod tests {
    use super::service_for;

    #[test]
    fn names_say_which_service_a_credential_belongs_to() {
        let units = [
            "code-server@coder.service",
            "filebrowser.service",
            "postgresql.service",
            "nginx.service",
        ];
        assert_eq!(
            service_for("CODE_SERVER_PASSWORD", &units),
            Some("code-server@coder.service")
        );
        assert_eq!(
            service_for("FILEBROWSER_ADMIN_PASSWORD", &units),
            Some("filebrowser.service"),
            "the leading words name the service"
        );
        assert_eq!(
            service_for("FILEBROWSER_PASSWORD", &units),
            Some("filebrowser.service")
        );
        assert_eq!(
            service_for("postgresql-password", &units),
            Some("postgresql.service")
        );
        assert_eq!(service_for("admin-password", &units), None);
        assert_eq!(service_for("NGINX", &units), Some("nginx.service"));
        assert_eq!(service_for("", &units), None);
    }
}
