//! What an API token may do: its owner's privileges, read from Proxmox with the cluster's
//! service token (`GET /access/permissions?userid=…`) and cached for a minute. Proxmox's ticket
//! `cap` lists, per scope, every privilege held anywhere under it; this builds the same shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ctforge_pve::{Method, PveClient, PveError, RequestSpec};

use super::Caps;
use crate::state::AppState;

const TTL: Duration = Duration::from_secs(60);

fn cache() -> &'static Mutex<HashMap<String, (Instant, Caps)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, Caps)>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The scope a permission path belongs to.
fn scope_of(path: &str) -> Vec<&'static str> {
    match path {
        "/" => vec!["vms", "storage", "nodes", "access", "dc", "sdn"],
        p if p.starts_with("/vms") || p.starts_with("/pool") => vec!["vms"],
        p if p.starts_with("/storage") => vec!["storage"],
        p if p.starts_with("/nodes") => vec!["nodes"],
        p if p.starts_with("/access") => vec!["access"],
        p if p.starts_with("/sdn") => vec!["sdn"],
        _ => vec!["dc"],
    }
}

/// Converts `/access/permissions` output (path → privilege → 0/1) into caps.
pub fn caps_from_permissions(
    perms: &BTreeMap<String, BTreeMap<String, serde_json::Value>>,
) -> Caps {
    let mut caps: Caps = BTreeMap::new();
    for (path, privs) in perms {
        for scope in scope_of(path) {
            let entry = caps.entry(scope.to_owned()).or_default();
            for (privilege, granted) in privs {
                let yes = granted
                    .as_i64()
                    .map(|v| v != 0)
                    .or(granted.as_bool())
                    .unwrap_or(false);
                if yes {
                    entry.insert(privilege.clone(), true);
                }
            }
        }
    }
    caps
}

/// The owner's privileges on the default cluster; empty (nothing allowed) when Proxmox cannot
/// tell.
pub async fn for_user(state: &AppState, username: &str) -> Caps {
    if let Ok(cache) = cache().lock()
        && let Some((at, caps)) = cache.get(username)
        && at.elapsed() < TTL
    {
        return caps.clone();
    }
    let caps = match lookup(state, username).await {
        Ok(caps) => caps,
        Err(e) => {
            tracing::warn!(user = %username, error = %e, "cannot read the token owner's permissions; denying privileged actions");
            return Caps::new();
        }
    };
    if let Ok(mut cache) = cache().lock() {
        cache.insert(username.to_owned(), (Instant::now(), caps.clone()));
    }
    caps
}

async fn lookup(state: &AppState, username: &str) -> anyhow::Result<Caps> {
    let cluster = crate::auth::login::pick_cluster(state, None).await?;
    let client = crate::pve::service_client(&cluster, &state.keyring)?;
    let spec = RequestSpec {
        method: Method::Get,
        path: "/access/permissions".into(),
        params: vec![("userid".into(), username.to_owned())],
    };
    let body = client.execute(&spec).await?;
    let perms: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
        ctforge_pve::client::parse_data(&body)?;
    Ok(caps_from_permissions(&perms))
}

/// Whether `username` holds `privilege` on exactly `path` (`/vms/105`), as Proxmox computes it
/// with inheritance, pools and groups (`GET /access/permissions?userid=…&path=…`, asked with
/// `client`, the cluster's service token). Proxmox answers privilege → propagate flag, so a
/// listed privilege is held whatever its flag.
pub async fn holds(
    client: &PveClient,
    username: &str,
    path: &str,
    privilege: &str,
) -> Result<bool, PveError> {
    let spec = RequestSpec {
        method: Method::Get,
        path: "/access/permissions".into(),
        params: vec![
            ("userid".into(), username.to_owned()),
            ("path".into(), path.to_owned()),
        ],
    };
    let body = client.execute(&spec).await?;
    let perms: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
        ctforge_pve::client::parse_data(&body)?;
    Ok(perms
        .get(path)
        .is_some_and(|privs| privs.contains_key(privilege)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fold_into_scopes() {
        let perms: BTreeMap<String, BTreeMap<String, serde_json::Value>> = serde_json::from_str(
            r#"{"/vms/100":{"VM.PowerMgmt":1},"/storage/local-lvm":{"Datastore.AllocateSpace":1},"/nodes":{"Sys.Audit":0}}"#,
        )
        .unwrap();
        let caps = caps_from_permissions(&perms);
        assert!(caps["vms"]["VM.PowerMgmt"]);
        assert!(caps["storage"]["Datastore.AllocateSpace"]);
        assert!(
            !caps
                .get("nodes")
                .is_some_and(|n| n.contains_key("Sys.Audit"))
        );
    }
}
