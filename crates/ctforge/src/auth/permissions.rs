//! What an API token may do: its owner's privileges, read from Proxmox with the cluster's
//! service token (`GET /access/permissions?userid=…`) and cached for a minute per cluster and
//! user ([`PermissionCache`], carried in `AppState`, timed by the injected `Clock`). Proxmox's
//! ticket `cap` lists, per scope, every privilege held anywhere under it; this builds the same
//! shape. The caps are hints for what pages offer; decisions are made on the exact guest path
//! by [`crate::authz`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use ctforge_pve::{PveApi, PveError};

use super::Caps;
use crate::clock::Clock;
use crate::state::AppState;

/// How long a user's privileges are reused before Proxmox is asked again (ms).
pub const TTL_MS: i64 = 60_000;

/// Token owners' privileges per (cluster id, user), with the time they were read.
#[derive(Debug, Default)]
pub struct PermissionCache(Mutex<HashMap<(i64, String), (i64, Caps)>>);

impl PermissionCache {
    /// `username`'s privileges on cluster `cluster_id`: the cached ones while younger than
    /// [`TTL_MS`] on `clock`, else read with `api` (the cluster's service token).
    pub async fn caps(
        &self,
        clock: &dyn Clock,
        cluster_id: i64,
        username: &str,
        api: &dyn PveApi,
    ) -> Result<Caps, PveError> {
        let key = (cluster_id, username.to_owned());
        let now = clock.now_ms();
        if let Ok(cache) = self.0.lock()
            && let Some((at, caps)) = cache.get(&key)
            && now.saturating_sub(*at) < TTL_MS
        {
            return Ok(caps.clone());
        }
        let perms = api.access_permissions(Some(username), None).await?;
        let caps = caps_from_permissions(&perms);
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(key, (now, caps.clone()));
        }
        Ok(caps)
    }
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

/// The owner's privileges on cluster `cluster_id` (a token's cluster; `None`: the default
/// cluster); empty (nothing allowed) when Proxmox cannot tell.
pub async fn for_user(state: &AppState, username: &str, cluster_id: Option<i64>) -> Caps {
    let caps = async {
        let cluster = match cluster_id {
            Some(id) => state.store.get_cluster(id).await?,
            None => crate::auth::login::pick_cluster(state, None).await?,
        };
        let api = state.pve.service(&cluster)?;
        let caps = state
            .permissions
            .caps(state.clock.as_ref(), cluster.id, username, api.as_ref())
            .await?;
        anyhow::Ok(caps)
    }
    .await;
    caps.unwrap_or_else(|e| {
        tracing::warn!(user = %username, error = %e, "cannot read the token owner's permissions; denying privileged actions");
        Caps::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::pve::fake::FakePve;

    #[tokio::test]
    async fn cache_is_per_cluster_and_expires_on_the_injected_clock() {
        let pve = FakePve::new("9.1.9", &["pve1"]);
        pve.grant("alice@pve", "/vms", "VM.PowerMgmt");
        let clock = ManualClock::new(1_000_000);
        let cache = PermissionCache::default();
        let caps = cache.caps(&*clock, 1, "alice@pve", &pve).await.unwrap();
        assert!(caps["vms"]["VM.PowerMgmt"]);
        cache.caps(&*clock, 1, "alice@pve", &pve).await.unwrap();
        assert_eq!(
            pve.calls("access_permissions"),
            1,
            "the second read is cached"
        );
        cache.caps(&*clock, 2, "alice@pve", &pve).await.unwrap();
        assert_eq!(
            pve.calls("access_permissions"),
            2,
            "another cluster is asked for itself"
        );
        clock.advance(TTL_MS - 1);
        cache.caps(&*clock, 1, "alice@pve", &pve).await.unwrap();
        assert_eq!(pve.calls("access_permissions"), 2, "still fresh");
        clock.advance(1);
        cache.caps(&*clock, 1, "alice@pve", &pve).await.unwrap();
        assert_eq!(
            pve.calls("access_permissions"),
            3,
            "expired on ctforge's clock"
        );
    }

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
