//! Proxmox's permission queries on the simulated cluster: effective privileges of a user or
//! API token on an ACL path (roles, propagation, token privilege separation).

use super::*;

impl Cluster {
    /// Effective privileges of an identity on an ACL path.
    pub fn privs(&self, ident: &Identity, path: &str) -> BTreeSet<&'static str> {
        let user_privs = if ident.userid == "root@pam" {
            crate::auth::ALL_PRIVS.iter().copied().collect()
        } else {
            acl_privs(&self.acl, &ident.userid, path)
        };
        match &ident.tokenid {
            None => user_privs,
            Some(t) => {
                let full = format!("{}!{t}", ident.userid);
                match self.tokens.get(&full) {
                    Some(tok) if !tok.privsep => user_privs,
                    Some(_) => {
                        let tp = acl_privs(&self.acl, &full, path);
                        user_privs.intersection(&tp).copied().collect()
                    }
                    None => BTreeSet::new(),
                }
            }
        }
    }

    /// Whether the identity has `privilege` on `path`.
    pub fn has_priv(&self, ident: &Identity, path: &str, privilege: &str) -> bool {
        if ident.userid == "root@pam" {
            match &ident.tokenid {
                None => return true,
                Some(t) => {
                    if let Some(tok) = self.tokens.get(&format!("root@pam!{t}"))
                        && !tok.privsep
                    {
                        return true;
                    }
                }
            }
        }
        self.privs(ident, path).contains(privilege)
    }

    /// Whether the identity holds `privilege` anywhere below `prefix` (for `cap`).
    pub fn has_priv_below(&self, ident: &Identity, prefix: &str, privilege: &str) -> bool {
        if self.has_priv(ident, prefix, privilege) {
            return true;
        }
        let ugids = [ident.userid.clone(), ident.auth_id()];
        self.acl
            .iter()
            .filter(|e| ugids.contains(&e.ugid))
            .filter(|e| {
                prefix == "/" || e.path == prefix || e.path.starts_with(&format!("{prefix}/"))
            })
            .any(|e| self.has_priv(ident, &e.path, privilege))
    }
}
