//! ctforge's own roles: who may change ctforge's objects (clusters, templates, buckets,
//! discovery, other users' API tokens, role grants) and read the audit log. Proxmox privileges
//! never grant a ctforge role.
//!
//! A role is granted to a **cluster-qualified identity**: `alice@pve@lab` is the Proxmox user
//! `alice@pve` signed in to the cluster named `lab` (an API token is its owner on the cluster
//! the token was created for). The same user id signed in to another cluster is another
//! identity and holds nothing from this grant. A role, once held, is ctforge-wide: an admin
//! (granted to `x@pve@B`) administers every cluster's settings, because ctforge's settings are
//! one object; what a user may do to guests stays decided by Proxmox, per cluster.
//!
//! Roles: `admin` (everything below, plus clusters, settings, role grants, other users'
//! tokens), `editor` (template editor: templates, discovery, package buckets), `auditor` (reads
//! the audit log). Where they come from:
//! - configuration, `[auth] admins = ["root@pam@lab", …]`; when unset, `root@pam` of the first
//!   configured cluster (the first `[[clusters]]` entry, else the oldest stored cluster). These
//!   are always admins and cannot be revoked here;
//! - grants stored in `role_grants` (Settings → Roles, `/api/v1/roles`), audited.
//!
//! The last admin cannot be revoked, and the cluster holding it cannot be deleted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::auth::CurrentUser;
use crate::config::Config;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::model::{Cluster, RoleGrant};
use crate::storage::{Store, StoreError};

/// A ctforge role.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: clusters, settings, role grants, other users' tokens, and all of below.
    Admin,
    /// Template editor: templates (create, edit, delete, import, discovery) and package buckets.
    Editor,
    /// Reads the audit log.
    Auditor,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Editor, Role::Auditor];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Auditor => "auditor",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "Admin",
            Self::Editor => "Template editor",
            Self::Auditor => "Auditor",
        }
    }

    /// Parses a stored or typed name (`template-editor` and `template editor` too).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Self::Admin),
            "editor" | "template editor" | "template-editor" | "template_editor" => {
                Some(Self::Editor)
            }
            "auditor" => Some(Self::Auditor),
            _ => None,
        }
    }
}

/// The roles of one request's identity.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    /// The cluster the identity signed in to (a token's cluster); `None` when unknown.
    pub cluster_id: Option<i64>,
    held: BTreeSet<Role>,
}

impl Roles {
    /// Holds `role`; an admin holds every role.
    pub fn has(&self, role: Role) -> bool {
        self.held.contains(&Role::Admin) || self.held.contains(&role)
    }

    /// A ctforge admin.
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// May change templates, discovery and package buckets (admin or template editor).
    pub fn can_edit_templates(&self) -> bool {
        self.has(Role::Editor)
    }

    /// May read the audit log (admin or auditor).
    pub fn can_read_audit(&self) -> bool {
        self.has(Role::Auditor)
    }

    /// The roles held as granted (without implied ones), in display order.
    pub fn held(&self) -> Vec<Role> {
        self.held.iter().copied().collect()
    }
}

/// Splits `user@realm@cluster` into (`user@realm`, `cluster`); `None` when malformed.
pub fn split_identity(identity: &str) -> Option<(&str, &str)> {
    let (user, cluster) = identity.trim().rsplit_once('@')?;
    let (name, realm) = user.split_once('@')?;
    let ok = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    (ok(name) && ok(realm) && ok(cluster)).then_some((user, cluster))
}

/// The configured admins, resolved against `clusters` by name: (user id, cluster id). An entry
/// naming a cluster that does not exist grants nothing.
pub fn configured_admins(config: &Config, clusters: &[Cluster]) -> Vec<(String, i64)> {
    let named: Vec<(i64, &str)> = clusters.iter().map(|c| (c.id, c.name.as_str())).collect();
    configured_admins_of(config, &named)
}

/// [`configured_admins`] over the clusters' ids and names only.
fn configured_admins_of(config: &Config, clusters: &[(i64, &str)]) -> Vec<(String, i64)> {
    let by_name = |name: &str| clusters.iter().find(|(_, n)| *n == name).map(|(id, _)| *id);
    if !config.auth.admins.is_empty() {
        return config
            .auth
            .admins
            .iter()
            .filter_map(|entry| {
                let (user, cluster) = split_identity(entry)?;
                Some((user.to_owned(), by_name(cluster)?))
            })
            .collect();
    }
    let first = match config.clusters.first() {
        Some(c) => by_name(&c.name),
        None => clusters.iter().map(|(id, _)| *id).min(),
    };
    first
        .map(|id| vec![("root@pam".to_owned(), id)])
        .unwrap_or_default()
}

/// The roles of `username` signed in to cluster `cluster_id`.
pub async fn resolve(
    config: &Config,
    store: &dyn Store,
    username: &str,
    cluster_id: i64,
) -> Result<Roles, StoreError> {
    // On every request: one statement.
    let (clusters, grants) = store.role_context(username, cluster_id).await?;
    let named: Vec<(i64, &str)> = clusters.iter().map(|(id, n)| (*id, n.as_str())).collect();
    let mut held: BTreeSet<Role> = grants.iter().filter_map(|r| Role::parse(r)).collect();
    if configured_admins_of(config, &named)
        .iter()
        .any(|(user, id)| user == username && *id == cluster_id)
    {
        held.insert(Role::Admin);
    }
    Ok(Roles {
        cluster_id: Some(cluster_id),
        held,
    })
}

fn forbidden(what: &str, needs: &str) -> AppError {
    AppError::Forbidden(format!(
        "{what} needs the ctforge {needs} role; ask a ctforge admin (Settings → Roles)"
    ))
}

/// Refuses unless the user is a ctforge admin.
pub fn require_admin(user: &CurrentUser, what: &str) -> Result<(), AppError> {
    if user.roles.is_admin() {
        Ok(())
    } else {
        Err(forbidden(what, "admin"))
    }
}

/// Refuses unless the user is a ctforge admin or template editor.
pub fn require_editor(user: &CurrentUser, what: &str) -> Result<(), AppError> {
    if user.roles.can_edit_templates() {
        Ok(())
    } else {
        Err(forbidden(what, "admin or template editor"))
    }
}

/// Refuses unless the user is a ctforge admin or auditor.
pub fn require_auditor(user: &CurrentUser, what: &str) -> Result<(), AppError> {
    if user.roles.can_read_audit() {
        Ok(())
    } else {
        Err(forbidden(what, "admin or auditor"))
    }
}

/// One role holder as listed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantView {
    /// Grant id (to revoke it); absent for admins from the configuration.
    pub id: Option<i64>,
    /// `user@realm@cluster`.
    pub identity: String,
    /// Proxmox user id.
    pub username: String,
    /// Cluster name.
    pub cluster: String,
    /// The role.
    pub role: Role,
    /// `configuration` (cannot be revoked here) or `settings`.
    pub source: String,
    /// Who granted it (stored grants).
    pub granted_by: Option<String>,
    /// Unix milliseconds (stored grants).
    pub created_at: Option<i64>,
}

/// Body of a new grant.
#[derive(Clone, Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantForm {
    /// `user@realm@cluster`, e.g. `alice@pve@lab`.
    #[serde(default)]
    pub identity: String,
    /// `admin`, `editor` or `auditor`.
    #[serde(default)]
    pub role: String,
}

fn view(grant: &RoleGrant, clusters: &[Cluster]) -> Option<GrantView> {
    let cluster = clusters.iter().find(|c| c.id == grant.cluster_id)?;
    Some(GrantView {
        id: Some(grant.id),
        identity: format!("{}@{}", grant.username, cluster.name),
        username: grant.username.clone(),
        cluster: cluster.name.clone(),
        role: Role::parse(&grant.role)?,
        source: "settings".to_owned(),
        granted_by: Some(grant.granted_by.clone()),
        created_at: Some(grant.created_at),
    })
}

/// Every role holder: configured admins first, then stored grants. Admins only.
pub async fn list(state: &AppState, user: &CurrentUser) -> Result<Vec<GrantView>, AppError> {
    require_admin(user, "listing roles")?;
    let clusters = state.store.list_clusters().await?;
    let mut out: Vec<GrantView> = configured_admins(&state.config, &clusters)
        .into_iter()
        .filter_map(|(username, id)| {
            let cluster = clusters.iter().find(|c| c.id == id)?;
            Some(GrantView {
                id: None,
                identity: format!("{username}@{}", cluster.name),
                username,
                cluster: cluster.name.clone(),
                role: Role::Admin,
                source: "configuration".to_owned(),
                granted_by: None,
                created_at: None,
            })
        })
        .collect();
    out.extend(
        state
            .store
            .list_role_grants()
            .await?
            .iter()
            .filter_map(|g| view(g, &clusters)),
    );
    Ok(out)
}

fn invalid(field: &str, message: String) -> AppError {
    AppError::Invalid {
        message: format!("the grant needs attention: {message}"),
        fields: vec![(field.to_owned(), message)],
    }
}

/// Grants `form.role` to `form.identity`; audited as `role.grant`. Admins only.
pub async fn grant(
    state: &AppState,
    user: &CurrentUser,
    form: &GrantForm,
    remote: &str,
) -> Result<GrantView, AppError> {
    require_admin(user, "granting roles")?;
    let Some((username, cluster_name)) = split_identity(&form.identity) else {
        return Err(invalid(
            "identity",
            "enter user@realm@cluster, e.g. alice@pve@lab".to_owned(),
        ));
    };
    let Some(role) = Role::parse(&form.role) else {
        return Err(invalid(
            "role",
            "choose admin, editor or auditor".to_owned(),
        ));
    };
    let cluster = match state.store.get_cluster_by_name(cluster_name).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => {
            return Err(invalid(
                "identity",
                format!("there is no cluster named {cluster_name:?}"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let id = state
        .store
        .insert_role_grant(username, cluster.id, role.as_str(), &user.username)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => invalid(
                "identity",
                format!("{username}@{cluster_name} is {} already", role.as_str()),
            ),
            other => other.into(),
        })?;
    let identity = format!("{username}@{}", cluster.name);
    crate::audit::record(
        state.store.as_ref(),
        crate::audit::Entry::new(&user.username, "role.grant", &identity, remote)
            .detail(serde_json::json!({ "role": role.as_str(), "id": id })),
    )
    .await?;
    let grant = state
        .store
        .list_role_grants()
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| AppError::NotFound(format!("grant {id}")))?;
    view(&grant, &[cluster]).ok_or_else(|| AppError::NotFound(format!("grant {id}")))
}

/// How many distinct identities are admins, leaving out stored grant `except` and every
/// grant on cluster `without_cluster`.
async fn admins_left(
    state: &AppState,
    except: Option<i64>,
    without_cluster: Option<i64>,
) -> Result<usize, AppError> {
    let clusters: Vec<Cluster> = state
        .store
        .list_clusters()
        .await?
        .into_iter()
        .filter(|c| Some(c.id) != without_cluster)
        .collect();
    let mut admins: BTreeSet<(String, i64)> = configured_admins(&state.config, &clusters)
        .into_iter()
        .collect();
    for g in state.store.list_role_grants().await? {
        if g.role == Role::Admin.as_str()
            && Some(g.id) != except
            && Some(g.cluster_id) != without_cluster
        {
            admins.insert((g.username, g.cluster_id));
        }
    }
    Ok(admins.len())
}

/// Refuses to delete cluster `cluster_id` when that would leave ctforge without an admin.
pub async fn check_cluster_delete(state: &AppState, cluster_id: i64) -> Result<(), AppError> {
    if admins_left(state, None, Some(cluster_id)).await? == 0 {
        return Err(AppError::Conflict(
            "this cluster holds the last ctforge admin; grant admin to someone on another cluster first (Settings → Roles)".into(),
        ));
    }
    Ok(())
}

/// Revokes stored grant `id`; audited as `role.revoke`. Admins only; the last admin stays.
pub async fn revoke(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<(), AppError> {
    require_admin(user, "revoking roles")?;
    let clusters = state.store.list_clusters().await?;
    let grant = state
        .store
        .list_role_grants()
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| AppError::NotFound(format!("role grant {id}")))?;
    if grant.role == Role::Admin.as_str() && admins_left(state, Some(id), None).await? == 0 {
        return Err(AppError::Conflict(
            "this is the last ctforge admin; grant admin to someone else before revoking it".into(),
        ));
    }
    state
        .store
        .delete_role_grant(id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound(format!("role grant {id}")),
            other => other.into(),
        })?;
    let identity = match clusters.iter().find(|c| c.id == grant.cluster_id) {
        Some(c) => format!("{}@{}", grant.username, c.name),
        None => grant.username.clone(),
    };
    crate::audit::record(
        state.store.as_ref(),
        crate::audit::Entry::new(&user.username, "role.revoke", &identity, remote)
            .detail(serde_json::json!({ "role": grant.role, "id": id })),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_split_at_the_last_at() {
        assert_eq!(split_identity("root@pam@lab"), Some(("root@pam", "lab")));
        assert_eq!(
            split_identity(" alice@pve@home-2 "),
            Some(("alice@pve", "home-2"))
        );
        for bad in [
            "root@pam",
            "root@lab",
            "@pam@lab",
            "root@@lab",
            "root@pam@",
            "a b@pve@x",
            "",
        ] {
            assert_eq!(split_identity(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn admin_holds_every_role_and_others_only_their_own() {
        let of = |roles: &[Role]| Roles {
            cluster_id: Some(1),
            held: roles.iter().copied().collect(),
        };
        let admin = of(&[Role::Admin]);
        assert!(admin.is_admin() && admin.can_edit_templates() && admin.can_read_audit());
        let editor = of(&[Role::Editor]);
        assert!(!editor.is_admin() && editor.can_edit_templates() && !editor.can_read_audit());
        let auditor = of(&[Role::Auditor]);
        assert!(!auditor.is_admin() && !auditor.can_edit_templates() && auditor.can_read_audit());
        let none = Roles::default();
        assert!(!none.is_admin() && !none.can_edit_templates() && !none.can_read_audit());
    }

    #[test]
    fn bootstrap_admin_is_root_of_the_first_configured_cluster() {
        let cluster = |id: i64, name: &str| Cluster {
            id,
            name: name.into(),
            url: String::new(),
            token_id: String::new(),
            token_secret_sealed: None,
            fingerprint: None,
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password_sealed: None,
            ssh_key_sealed: None,
            ssh_host_key: None,
            is_default: false,
            created_at: 0,
            updated_at: 0,
        };
        let clusters = [cluster(3, "b"), cluster(7, "a")];
        let mut config = Config::default();
        assert_eq!(
            configured_admins(&config, &clusters),
            [("root@pam".to_owned(), 3)],
            "no [[clusters]]: the oldest stored cluster"
        );
        config.clusters = vec![crate::config::ClusterBootstrap {
            name: "a".into(),
            url: "https://a:8006".into(),
            token_id: "t@pam!x".into(),
            token_secret: None,
            token_secret_file: None,
            fingerprint: None,
            ssh_user: "root".into(),
            ssh_port: 22,
            ssh_password: None,
            ssh_key_file: None,
            ssh_host_key: None,
            default: false,
            allow_insecure_http: false,
        }];
        assert_eq!(
            configured_admins(&config, &clusters),
            [("root@pam".to_owned(), 7)]
        );
        config.auth.admins = vec!["alice@pve@b".into(), "bob@pve@nowhere".into()];
        assert_eq!(
            configured_admins(&config, &clusters),
            [("alice@pve".to_owned(), 3)],
            "set admins replace the default; unknown clusters grant nothing"
        );
    }
}
