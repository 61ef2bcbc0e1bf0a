//! Proxmox's permission computation on the simulated cluster, as `PVE::AccessControl::roles`
//! and `PVE::RPCEnvironment::permissions` do it: the ACL is walked from `/` down to the path,
//! a deeper level replaces what a higher one granted (only propagating entries reach below
//! their path), a user's own entries at a level win over its groups' entries there, `NoAccess`
//! empties the result, pools lend their roles (without propagation) to their member guests and
//! storages, and a privilege-separated API token holds the intersection of its own ACL and its
//! user's. `root@pam` holds everything.

use super::*;

/// Privilege → propagate flag, as `GET /access/permissions` reports it.
pub type PrivMap = BTreeMap<&'static str, bool>;

impl Cluster {
    /// The roles of `ugid` (a user id or a full token id) on `path` with their propagate
    /// flags, pools not considered (`PVE::AccessControl::roles`).
    fn acl_roles(&self, ugid: &str, is_token: bool, path: &str) -> BTreeMap<String, bool> {
        let acl_paths: BTreeSet<&str> = self.acl.iter().map(|e| e.path.as_str()).collect();
        let mut roles: BTreeMap<String, bool> = BTreeMap::new();
        for p in acl_paths {
            let last = p == path;
            if !(p == "/" || last || path.starts_with(&format!("{p}/"))) {
                continue;
            }
            let applies = |e: &&AclEntry| e.path == p && (last || e.propagate);
            let own: BTreeMap<String, bool> = self
                .acl
                .iter()
                .filter(|e| e.ugid == ugid)
                .filter(applies)
                .map(|e| (e.role.clone(), e.propagate))
                .collect();
            if !own.is_empty() {
                // A user's (or token's) own entries override its groups' at this level.
                roles = own;
                continue;
            }
            if is_token {
                continue;
            }
            let groups: BTreeMap<String, bool> = self
                .acl
                .iter()
                .filter(|e| {
                    e.ugid
                        .strip_prefix('@')
                        .and_then(|g| self.groups.get(g))
                        .is_some_and(|members| members.contains(ugid))
                })
                .filter(applies)
                .map(|e| (e.role.clone(), e.propagate))
                .collect();
            if !groups.is_empty() {
                roles = groups;
            }
        }
        if let Some(flag) = roles.get("NoAccess").copied() {
            return BTreeMap::from([("NoAccess".to_owned(), flag)]);
        }
        roles
    }

    /// Privileges of `ugid` on `path` including pool roles (`compile_acl_path`), before the
    /// token/user intersection.
    fn compiled(&self, ugid: &str, is_token: bool, path: &str) -> PrivMap {
        let mut roles = self.acl_roles(ugid, is_token, path);
        let mut pool_roles: BTreeSet<String> = BTreeSet::new();
        for (id, pool) in &self.pools {
            let member = match path.strip_prefix("/vms/") {
                Some(vmid) => vmid.parse::<u32>().is_ok_and(|v| pool.vms.contains(&v)),
                None => path
                    .strip_prefix("/storage/")
                    .is_some_and(|sid| pool.storages.contains(sid)),
            };
            if member {
                pool_roles.extend(
                    self.acl_roles(ugid, is_token, &format!("/pool/{id}"))
                        .into_keys(),
                );
            }
        }
        if !pool_roles.is_empty() && !roles.contains_key("NoAccess") {
            if pool_roles.contains("NoAccess") {
                roles = BTreeMap::from([("NoAccess".to_owned(), false)]);
            } else {
                for role in pool_roles {
                    roles.entry(role).or_insert(false);
                }
            }
        }
        let mut privs = PrivMap::new();
        for (role, propagate) in roles {
            for p in crate::auth::role_privs(&role) {
                let e = privs.entry(p).or_insert(false);
                *e = *e || propagate;
            }
        }
        privs
    }

    fn user_enabled(&self, userid: &str) -> bool {
        self.users.get(userid).is_some_and(|u| u.enabled)
    }

    /// Effective privileges of an identity on an ACL path, with propagate flags
    /// (`PVE::RPCEnvironment::permissions`).
    pub fn permissions(&self, ident: &Identity, path: &str) -> PrivMap {
        let user_privs = if ident.userid == "root@pam" {
            crate::auth::ALL_PRIVS.iter().map(|p| (*p, true)).collect()
        } else if !self.user_enabled(&ident.userid) {
            PrivMap::new()
        } else {
            self.compiled(&ident.userid, false, path)
        };
        let Some(t) = &ident.tokenid else {
            return user_privs;
        };
        let full = format!("{}!{t}", ident.userid);
        match self.tokens.get(&full) {
            None => PrivMap::new(),
            Some(tok) if !tok.privsep => user_privs,
            Some(_) => {
                let own = self.compiled(&full, true, path);
                own.into_iter()
                    .filter_map(|(p, prop)| user_privs.get(p).map(|u| (p, prop && *u)))
                    .collect()
            }
        }
    }

    /// Effective privileges of an identity on an ACL path.
    pub fn privs(&self, ident: &Identity, path: &str) -> BTreeSet<&'static str> {
        self.permissions(ident, path).into_keys().collect()
    }

    /// Whether the identity has `privilege` on `path` (`$rpcenv->check`).
    pub fn has_priv(&self, ident: &Identity, path: &str, privilege: &str) -> bool {
        self.permissions(ident, path).contains_key(privilege)
    }

    /// `$rpcenv->check_vm_perm`: on the pool if one is named, else on `/vms/<vmid>`.
    pub fn has_vm_priv(
        &self,
        ident: &Identity,
        vmid: u32,
        pool: Option<&str>,
        privilege: &str,
    ) -> bool {
        pool.is_some_and(|p| self.has_priv(ident, &format!("/pool/{p}"), privilege))
            || self.has_priv(ident, &format!("/vms/{vmid}"), privilege)
    }

    /// `$rpcenv->check_sdn_bridge` with `SDN.Use`: on the bridge of `zone`, or on one of its
    /// VLANs that has an ACL of its own.
    pub fn has_bridge_access(&self, ident: &Identity, zone: &str, bridge: &str) -> bool {
        let path = format!("/sdn/zones/{zone}/{bridge}");
        if self.has_priv(ident, &path, "SDN.Use") {
            return true;
        }
        let below = format!("{path}/");
        self.acl
            .iter()
            .filter_map(|e| e.path.strip_prefix(&below))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .any(|vlan| self.has_priv(ident, &format!("{path}/{vlan}"), "SDN.Use"))
    }

    /// The paths `GET /access/permissions` reports without `path`
    /// (`get_effective_permissions`): the top levels, every ACL path and every pool member.
    pub fn effective_paths(&self) -> BTreeSet<String> {
        let mut paths: BTreeSet<String> = [
            "/",
            "/access",
            "/access/groups",
            "/nodes",
            "/pool",
            "/sdn",
            "/storage",
            "/vms",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        paths.extend(self.acl.iter().map(|e| e.path.clone()));
        for pool in self.pools.values() {
            paths.extend(pool.vms.iter().map(|v| format!("/vms/{v}")));
            paths.extend(pool.storages.iter().map(|s| format!("/storage/{s}")));
        }
        paths
    }

    /// Whether the identity holds `privilege` on `prefix` or any path below it that has an ACL
    /// entry or is a pool member (for the ticket's `cap`, `compute_api_permission`); pool ACLs
    /// count for `/vms` and `/storage`.
    pub fn has_priv_below(&self, ident: &Identity, prefix: &str, privilege: &str) -> bool {
        if self.has_priv(ident, prefix, privilege) {
            return true;
        }
        let under = |p: &str| prefix == "/" || p == prefix || p.starts_with(&format!("{prefix}/"));
        let pool_counts = (prefix == "/vms" && privilege.starts_with("VM."))
            || (prefix == "/storage" && privilege.starts_with("Datastore."));
        self.effective_paths()
            .iter()
            .filter(|p| under(p) || (pool_counts && p.starts_with("/pool/")))
            .any(|p| self.has_priv(ident, p, privilege))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn cluster(scenario: &str) -> Cluster {
        let s: Scenario = toml::from_str(scenario).unwrap();
        let state = SimState::build(&crate::SimConfig::for_tests().with_scenario(s)).unwrap();
        state.lock().clone()
    }

    fn user(id: &str) -> Identity {
        Identity {
            userid: id.into(),
            tokenid: None,
        }
    }

    const USERS: &str = r#"
[[users]]
userid = "u@pve"
password = "pw-123456"
[[users]]
userid = "g@pve"
password = "pw-123456"
[[groups]]
id = "ops"
members = ["g@pve"]
[[pools]]
id = "team"
vms = [101]
storages = ["tank"]
"#;

    #[test]
    fn deeper_acl_replaces_and_only_propagating_entries_reach_below() {
        let c = cluster(&format!(
            "{USERS}
[[acl]]
path = \"/vms\"
ugid = \"u@pve\"
role = \"PVEVMAdmin\"
[[acl]]
path = \"/vms/100\"
ugid = \"u@pve\"
role = \"PVEAuditor\"
[[acl]]
path = \"/storage\"
ugid = \"u@pve\"
role = \"PVEDatastoreUser\"
propagate = false
"
        ));
        let u = user("u@pve");
        assert!(c.has_priv(&u, "/vms/105", "VM.PowerMgmt"), "inherited");
        assert!(c.has_priv(&u, "/vms/100", "VM.Audit"));
        assert!(
            !c.has_priv(&u, "/vms/100", "VM.PowerMgmt"),
            "the deeper ACL replaces"
        );
        assert!(c.has_priv(&u, "/storage", "Datastore.Audit"));
        assert!(
            !c.has_priv(&u, "/storage/local", "Datastore.Audit"),
            "not propagated"
        );
        assert_eq!(c.permissions(&u, "/vms").get("VM.Allocate"), Some(&true));
        assert_eq!(
            c.permissions(&u, "/storage").get("Datastore.Audit"),
            Some(&false)
        );
    }

    #[test]
    fn user_entries_beat_group_entries_and_no_access_empties() {
        let c = cluster(&format!(
            "{USERS}
[[acl]]
path = \"/vms\"
ugid = \"@ops\"
role = \"PVEVMAdmin\"
[[acl]]
path = \"/vms/100\"
ugid = \"g@pve\"
role = \"PVEAuditor\"
[[acl]]
path = \"/vms/102\"
ugid = \"@ops\"
role = \"NoAccess\"
"
        ));
        let g = user("g@pve");
        assert!(
            c.has_priv(&g, "/vms/101", "VM.Allocate"),
            "through the group"
        );
        assert!(!c.has_priv(&g, "/vms/100", "VM.Allocate"), "own entry wins");
        assert!(c.permissions(&g, "/vms/102").is_empty(), "NoAccess");
        assert!(c.permissions(&user("u@pve"), "/vms/101").is_empty());
    }

    #[test]
    fn pools_lend_their_roles_to_members_only() {
        let c = cluster(&format!(
            "{USERS}
[[acl]]
path = \"/pool/team\"
ugid = \"u@pve\"
role = \"PVEVMAdmin\"
"
        ));
        let u = user("u@pve");
        assert!(c.has_priv(&u, "/vms/101", "VM.PowerMgmt"));
        assert_eq!(
            c.permissions(&u, "/vms/101").get("VM.PowerMgmt"),
            Some(&false)
        );
        assert!(!c.has_priv(&u, "/vms/100", "VM.PowerMgmt"));
        assert!(c.has_priv(&u, "/storage/tank", "Datastore.AllocateSpace"));
        assert!(c.effective_paths().contains("/vms/101"));
        assert!(c.has_vm_priv(&u, 555, Some("team"), "VM.Allocate"));
    }

    #[test]
    fn separated_tokens_hold_the_intersection_and_root_everything() {
        let c = cluster(&format!(
            "{USERS}
[[acl]]
path = \"/vms\"
ugid = \"u@pve\"
role = \"PVEVMUser\"
[[tokens]]
id = \"u@pve!t\"
secret = \"00000000-0000-4000-8000-000000000001\"
role = \"PVEVMAdmin\"
"
        ));
        let t = Identity {
            userid: "u@pve".into(),
            tokenid: Some("t".into()),
        };
        assert!(c.has_priv(&t, "/vms/1", "VM.PowerMgmt"), "both hold it");
        assert!(
            !c.has_priv(&t, "/vms/1", "VM.Allocate"),
            "the user lacks it"
        );
        assert!(c.has_priv(&user("root@pam"), "/anything", "Sys.Modify"));
    }
}
