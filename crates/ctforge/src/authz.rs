//! The rule: every decision about a guest is made on its exact Proxmox path in its own cluster
//! (`/vms/<vmid>` with pools as Proxmox computes them, `/storage/<id>`,
//! `/sdn/zones/<zone>/<bridge>`, `/`), with the privileges Proxmox requires for that call and
//! those parameters. Proxmox itself answers what an identity holds on a path
//! (`GET /access/permissions?path=…`): a signed-in user asks with their own ticket, an API-token
//! user and a background job ask with the cluster's service token on the user's behalf
//! (`userid=…`). A session belongs to the cluster it signed in to: acting on another cluster
//! needs a sign-in there, never that cluster's service token.
//!
//! One decision function per kind of operation: [`read`] (detail, services, events,
//! refresh), [`reveal`], [`record_delete`], [`lifecycle`] and [`create`] (what
//! `POST /nodes/{node}/lxc` checks, from `create_vm` and `check_ct_modify_config_perm` of
//! pve-container). [`visible`] decides what listings show.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use ctforge_pve::{PveApi, PveError};

use crate::auth::{AuthMethod, CurrentUser};
use crate::containers::lifecycle::Action;
use crate::error::AppError;
use crate::state::AppState;
use crate::storage::model::Cluster;

/// What revealing a credential needs on `/vms/<vmid>`: seeing the guest (VM.Audit) and console
/// access (VM.Console). Proxmox has no privilege for "read a file in the guest"; the console is
/// the access that already reaches the guest's files, so it is the bar for its secrets.
pub const REVEAL: &[&str] = &["VM.Audit", "VM.Console"];
/// What reading a guest (detail, services, events, a services refresh) needs on `/vms/<vmid>`:
/// the privilege Proxmox's own status and config reads need.
pub const READ: &[&str] = &["VM.Audit"];
/// What removing a guest's record (and its sealed credentials) needs on `/vms/<vmid>`: the
/// privilege Proxmox's destroy needs, also for a guest Proxmox no longer has.
pub const RECORD_DELETE: &[&str] = &["VM.Allocate"];

/// Every privilege the decisions here ask about (what root@pam holds).
const ALL: &[&str] = &[
    "VM.Allocate",
    "VM.Audit",
    "VM.Console",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
    "VM.Clone",
    "VM.Config.CPU",
    "VM.Config.Disk",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "SDN.Use",
    "Sys.Modify",
];

/// The text of a refusal on another cluster, offering the sign-in there.
pub fn other_cluster(cluster: &Cluster) -> AppError {
    AppError::Forbidden(format!(
        "you are signed in to another cluster; acting on cluster {name} needs a sign-in there: sign in at /login?cluster={name} (or POST /api/v1/auth/login with \"cluster\": \"{name}\")",
        name = cluster.name
    ))
}

/// `/vms/<vmid>`.
pub fn vm_path(vmid: u32) -> String {
    format!("/vms/{vmid}")
}

/// The client a [`Rights`] asks with.
enum Via<'a> {
    Owned(Arc<dyn PveApi>),
    Borrowed(&'a dyn PveApi),
}

impl Via<'_> {
    fn api(&self) -> &dyn PveApi {
        match self {
            Via::Owned(a) => a.as_ref(),
            Via::Borrowed(a) => *a,
        }
    }
}

/// One identity's privileges on one cluster, read from Proxmox path by path (each path once
/// per decision).
pub struct Rights<'a> {
    client: Via<'a>,
    /// `Some(user)` when the service token asks on the user's behalf.
    on_behalf: Option<String>,
    /// The Proxmox user the decisions are about.
    pub username: String,
    /// The cluster's name (for messages).
    pub cluster: String,
    /// Whether the identity acts with its own `root@pam` ticket (root-only options).
    pub root_ticket: bool,
    seen: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl std::fmt::Debug for Rights<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rights")
            .field("username", &self.username)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Rights<'static> {
    /// `user`'s rights on `cluster`: their own ticket for a session signed in to it, the
    /// service token on the owner's behalf for an API token; a session of another cluster is
    /// refused ([`other_cluster`]).
    pub fn of(state: &AppState, user: &CurrentUser, cluster: &Cluster) -> Result<Self, AppError> {
        match (&user.ticket, &user.method) {
            (Some(data), _) if data.cluster_id == cluster.id => Ok(Self::new(
                Via::Owned(state.pve.user(cluster, data, &user.username)?),
                None,
                &user.username,
                &cluster.name,
                user.username == "root@pam",
            )),
            (Some(_), _) => Err(other_cluster(cluster)),
            (None, AuthMethod::ApiToken { .. }) => Ok(Self::new(
                Via::Owned(state.pve.service(cluster)?),
                Some(user.username.clone()),
                &user.username,
                &cluster.name,
                false,
            )),
            (None, AuthMethod::Session { .. }) => Err(AppError::Unauthorized),
        }
    }
}

impl<'a> Rights<'a> {
    /// The rights of the user whose own ticket `client` carries.
    pub fn own(client: &'a dyn PveApi, username: &str, cluster: &str) -> Self {
        Self::new(
            Via::Borrowed(client),
            None,
            username,
            cluster,
            username == "root@pam",
        )
    }

    /// `username`'s rights asked with `service` (the cluster's token) on their behalf.
    pub fn on_behalf(service: &'a dyn PveApi, username: &str, cluster: &str) -> Self {
        Self::new(
            Via::Borrowed(service),
            Some(username.to_owned()),
            username,
            cluster,
            false,
        )
    }

    fn new(
        client: Via<'a>,
        on_behalf: Option<String>,
        username: &str,
        cluster: &str,
        root_ticket: bool,
    ) -> Self {
        Self {
            client,
            on_behalf,
            username: username.to_owned(),
            cluster: cluster.to_owned(),
            root_ticket,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn unreadable(&self, e: PveError) -> AppError {
        match e {
            PveError::PermissionDenied { message, .. } if self.on_behalf.is_some() => {
                AppError::Unavailable(format!(
                    "cannot check {}'s permissions on cluster {}: the cluster's API token may not read them ({message}); give it Sys.Audit on /access",
                    self.username, self.cluster
                ))
            }
            PveError::Unauthorized { message } => AppError::Forbidden(format!(
                "proxmox rejected your ticket on cluster {} ({message}); sign in again",
                self.cluster
            )),
            other => AppError::Unavailable(format!(
                "cannot read permissions from cluster {}: {other}",
                self.cluster
            )),
        }
    }

    /// The privileges the identity holds on exactly `path`, as Proxmox computes them
    /// (propagation, pools, groups, token separation).
    pub async fn on(&self, path: &str) -> Result<BTreeSet<String>, AppError> {
        if self.username == "root@pam" {
            // Proxmox grants root@pam everything on every path, whatever the ACL says; so its
            // rights stand even while the cluster cannot be asked.
            return Ok(ALL.iter().map(|p| (*p).to_owned()).collect());
        }
        if let Some(hit) = self.seen.lock().ok().and_then(|s| s.get(path).cloned()) {
            return Ok(hit);
        }
        let perms = self
            .client
            .api()
            .access_permissions(self.on_behalf.as_deref(), Some(path))
            .await
            .map_err(|e| self.unreadable(e))?;
        let held: BTreeSet<String> = perms
            .get(path)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(path.to_owned(), held.clone());
        }
        Ok(held)
    }

    /// Whether the identity holds `privilege` on `path`.
    pub async fn holds(&self, path: &str, privilege: &str) -> Result<bool, AppError> {
        Ok(self.on(path).await?.contains(privilege))
    }

    /// Every privilege of `privileges` on `path`, else Proxmox's refusal for the first missing.
    pub async fn require(&self, path: &str, privileges: &[&str]) -> Result<(), AppError> {
        let held = self.on(path).await?;
        match privileges.iter().find(|p| !held.contains(**p)) {
            None => Ok(()),
            Some(missing) => Err(self.denied(path, missing)),
        }
    }

    /// One privilege of `privileges` on `path` (Proxmox's `check_any`).
    pub async fn require_any(&self, path: &str, privileges: &[&str]) -> Result<(), AppError> {
        let held = self.on(path).await?;
        if privileges.iter().any(|p| held.contains(*p)) {
            Ok(())
        } else {
            Err(self.denied(path, &privileges.join("|")))
        }
    }

    /// A refusal: Proxmox's own words when the identity asked with its own ticket (as Proxmox
    /// would have answered the call), else naming whom the service token asked for.
    pub fn denied(&self, path: &str, privileges: &str) -> AppError {
        match &self.on_behalf {
            None => AppError::Forbidden(format!("Permission check failed ({path}, {privileges})")),
            Some(user) => AppError::Forbidden(format!(
                "permission denied: {user} lacks {privileges} on {path} (cluster {}); ask an administrator",
                self.cluster
            )),
        }
    }

    /// A refusal for an option only `root@pam` may set.
    fn root_only(&self, what: &str) -> AppError {
        let hint = if what.contains("feature") {
            "; keyctl/fuse can only be set by root@pam in Proxmox"
        } else {
            ""
        };
        AppError::Forbidden(format!(
            "Permission check failed ({what}): {} on cluster {}{hint}",
            self.username, self.cluster
        ))
    }

    /// Every path the identity holds something on, with Proxmox's propagate flags
    /// (`GET /access/permissions` without a path), for listings.
    pub async fn effective(&self) -> Result<Effective, AppError> {
        if self.username == "root@pam" {
            let all = ALL
                .iter()
                .map(|p| ((*p).to_owned(), serde_json::Value::from(1)));
            return Ok(Effective(BTreeMap::from([(
                "/vms".to_owned(),
                all.collect(),
            )])));
        }
        let perms = self
            .client
            .api()
            .access_permissions(self.on_behalf.as_deref(), None)
            .await
            .map_err(|e| self.unreadable(e))?;
        Ok(Effective(perms))
    }
}

/// `GET /access/permissions` without a path: every ACL path, pool member and top level with
/// the privileges held there and whether they propagate.
#[derive(Clone, Debug, Default)]
pub struct Effective(pub ctforge_pve::api::Permissions);

impl Effective {
    /// Whether VM.Audit is held on `/vms/<vmid>`: listed paths (own ACL or pool member) as
    /// listed, others inherit what propagates from `/vms`.
    pub fn vm_audit(&self, vmid: u32) -> bool {
        self.vm_holds(vmid, "VM.Audit")
    }

    /// Whether `privilege` is held on `/vms/<vmid>`, computed as [`Effective::vm_audit`] is.
    pub fn vm_holds(&self, vmid: u32, privilege: &str) -> bool {
        match self.0.get(&vm_path(vmid)) {
            Some(privs) => privs.contains_key(privilege),
            None => self
                .0
                .get("/vms")
                .and_then(|privs| privs.get(privilege))
                .is_some_and(|flag| flag.as_i64().map(|v| v != 0).or(flag.as_bool()) == Some(true)),
        }
    }
}

/// Reading a guest (detail, services, events, refresh): VM.Audit on `/vms/<vmid>` of its
/// cluster.
pub async fn read(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
    vmid: u32,
) -> Result<(), AppError> {
    Rights::of(state, user, cluster)?
        .require(&vm_path(vmid), READ)
        .await
}

/// Revealing a guest's credential: [`REVEAL`] on `/vms/<vmid>`.
pub async fn reveal(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
    vmid: u32,
) -> Result<(), AppError> {
    Rights::of(state, user, cluster)?
        .require(&vm_path(vmid), REVEAL)
        .await
}

/// Removing a guest's record only: [`RECORD_DELETE`] on `/vms/<vmid>`.
pub async fn record_delete(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
    vmid: u32,
) -> Result<(), AppError> {
    Rights::of(state, user, cluster)?
        .require(&vm_path(vmid), RECORD_DELETE)
        .await
}

/// A lifecycle action done with the service token: what Proxmox checks for each call the
/// action makes (delete of a running guest stops it first: VM.PowerMgmt and VM.Allocate).
pub async fn lifecycle(
    rights: &Rights<'_>,
    vmid: u32,
    action: Action,
    running: bool,
) -> Result<(), AppError> {
    let path = vm_path(vmid);
    match action {
        Action::Delete if running => {
            rights
                .require(&path, &["VM.PowerMgmt", "VM.Allocate"])
                .await
        }
        Action::Delete => rights.require(&path, &["VM.Allocate"]).await,
        _ => rights.require(&path, &["VM.PowerMgmt"]).await,
    }
}

/// Why only `root@pam` can create with these parameters (features other than nesting, such as
/// keyctl or fuse, or features of a privileged CT), for the wizard's Review step; `None` when
/// anyone with the privileges can.
pub fn root_only_reason(form: &[(String, String)]) -> Option<&'static str> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let features: Vec<&str> = get("features")
        .map(|f| {
            f.split(',')
                .filter_map(|p| p.split_once('=').map(|(k, _)| k))
                .collect()
        })
        .unwrap_or_default();
    if features.is_empty() {
        return None;
    }
    if get("unprivileged") == Some("0") {
        return Some(
            "features of a privileged container can only be set by root@pam in Proxmox: only root@pam, signed in with its password, can create this container",
        );
    }
    (features != ["nesting"]).then_some(
        "keyctl/fuse can only be set by root@pam in Proxmox: only root@pam, signed in with its password, can create this container",
    )
}

/// What a permitted creation needs from the one who performs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateNeeds {
    /// Options only `root@pam` may set (features other than nesting, features of a
    /// privileged CT): the create call must carry root@pam's own ticket.
    pub root_ticket: bool,
}

/// The value of `key` in create parameters.
fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The VMID of create parameters.
fn form_vmid(form: &[(String, String)]) -> Result<u32, AppError> {
    form_value(form, "vmid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::invalid("the creation has no VMID"))
}

/// Proxmox's decisions on a VM's creation as planned: [`create_vm`] of its create call, or
/// for a clone of a VM template qemu-server's `clone_vm` (VM.Clone on the template) followed
/// by the same checks on the clone's VMID, the configuration set on it and the storage its
/// disk is allocated on.
pub async fn create_vm_as_planned(
    rights: &Rights<'_>,
    plan: &crate::provisioning::plan::Plan,
) -> Result<(), AppError> {
    match (&plan.vm_clone, &plan.qemu) {
        (Some(clone), _) => {
            rights
                .require(&vm_path(clone.source), &["VM.Clone"])
                .await?;
            create_vm(rights, &clone.as_create_form()).await
        }
        (None, Some(qemu)) => create_vm(rights, &qemu.to_form()).await,
        (None, None) => Err(AppError::invalid("the plan of this VM has no create call")),
    }
}

/// Proxmox's decision on `POST /nodes/{node}/qemu` with these form parameters, asked before
/// creating (qemu-server's `create_vm`): VM.Allocate on the VM (or its pool); per option the
/// privilege `check_vm_modify_config_perm` names (VM.Config.CPU, Memory, HWType, Options,
/// Network, Cloudinit or Network); Datastore.AllocateSpace on each new disk's storage, and
/// Datastore.Audit on the storage of the image a disk is imported from; SDN.Use on the bridge.
pub async fn create_vm(rights: &Rights<'_>, form: &[(String, String)]) -> Result<(), AppError> {
    let vm = vm_path(form_vmid(form)?);
    rights.require(&vm, &["VM.Allocate"]).await?;
    if rights.username == "root@pam" {
        return Ok(());
    }
    let numbered = |opt: &str, prefix: &str| {
        opt.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for (opt, value) in form {
        let opt = opt.as_str();
        let drive = ["scsi", "ide", "sata", "virtio", "efidisk", "tpmstate"]
            .iter()
            .any(|p| numbered(opt, p));
        if drive {
            let volume = value.split(',').next().unwrap_or_default();
            if let Some((sid, _)) = volume.split_once(':') {
                rights
                    .require(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"])
                    .await?;
            }
            if let Some(source) = property(value, "import-from")
                && let Some((sid, _)) = source.split_once(':')
            {
                rights
                    .require(&format!("/storage/{sid}"), &["Datastore.Audit"])
                    .await?;
            }
            continue;
        }
        if opt == "vmid" || opt == "start" || numbered(opt, "serial") || opt == "tags" {
            continue;
        }
        let privilege = match opt {
            "cores" | "sockets" | "cpu" | "cpulimit" | "cpuunits" | "vcpus" | "numa" => {
                "VM.Config.CPU"
            }
            "memory" | "balloon" | "shares" => "VM.Config.Memory",
            "machine" | "scsihw" | "vga" | "tablet" | "kvm" | "acpi" | "hotplug" => {
                "VM.Config.HWType"
            }
            "boot" | "bootdisk" => "VM.Config.Disk",
            "ciuser" | "cipassword" | "sshkeys" | "cicustom" | "citype" | "ciupgrade"
            | "nameserver" | "searchdomain" => {
                rights
                    .require_any(&vm, &["VM.Config.Cloudinit", "VM.Config.Network"])
                    .await?;
                continue;
            }
            _ if numbered(opt, "ipconfig") => {
                rights
                    .require_any(&vm, &["VM.Config.Cloudinit", "VM.Config.Network"])
                    .await?;
                continue;
            }
            _ if numbered(opt, "net") => {
                rights.require(&vm, &["VM.Config.Network"]).await?;
                if let Some(bridge) = property(value, "bridge") {
                    let path = format!("/sdn/zones/localnetwork/{bridge}");
                    match property(value, "tag") {
                        Some(tag) => {
                            rights
                                .require(&format!("{path}/{tag}"), &["SDN.Use"])
                                .await?
                        }
                        None => rights.require(&path, &["SDN.Use"]).await?,
                    }
                }
                continue;
            }
            _ => "VM.Config.Options",
        };
        rights.require(&vm, &[privilege]).await?;
    }
    Ok(())
}

/// Options of `POST /nodes/{node}/lxc` that are not container configuration (extracted before
/// `check_ct_modify_config_perm` in Proxmox).
const CREATE_ONLY: &[&str] = &[
    "node",
    "vmid",
    "ostemplate",
    "password",
    "ssh-public-keys",
    "storage",
    "start",
    "force",
    "restore",
    "unique",
    "bwlimit",
    "ignore-unpack-errors",
    "pool",
    "ha-managed",
    "unprivileged",
];

fn property(value: &str, key: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The decision `POST /nodes/{node}/lxc` makes for `rights`' identity with `form` (the create
/// parameters as sent): privileged needs Sys.Modify on `/`; VM.Allocate on `/vms/<vmid>` or
/// the pool; per option the VM.Config.* privilege on the guest (or pool); Datastore.AllocateSpace
/// on each new volume's storage; SDN.Use on each bridge (`/sdn/zones/localnetwork/<bridge>`);
/// Datastore.AllocateSpace or Datastore.Audit on the OS template's storage; features other than
/// nesting (and any feature of a privileged CT), devices, bind mounts and hookscripts only for
/// `root@pam` itself ([`CreateNeeds::root_ticket`]).
pub async fn create(
    rights: &Rights<'_>,
    form: &[(String, String)],
) -> Result<CreateNeeds, AppError> {
    let get = |k: &str| form_value(form, k);
    let vmid = form_vmid(form)?;
    let pool = get("pool");
    let unprivileged = get("unprivileged").is_none_or(|v| v != "0");
    let is_root = rights.username == "root@pam";
    let mut needs = CreateNeeds::default();
    if !unprivileged {
        rights.require("/", &["Sys.Modify"]).await?;
    }
    let vm = vm_path(vmid);
    let on_pool = |privilege: &'static str| async move {
        match pool {
            Some(p) => rights.holds(&format!("/pool/{p}"), privilege).await,
            None => Ok(false),
        }
    };
    if !rights.holds(&vm, "VM.Allocate").await? && !on_pool("VM.Allocate").await? {
        return Err(rights.denied(&vm, "VM.Allocate"));
    }
    let vm_priv = |privilege: &'static str| {
        let vm = vm.clone();
        async move {
            if on_pool(privilege).await? || rights.holds(&vm, privilege).await? {
                Ok(())
            } else {
                Err(rights.denied(&vm, privilege))
            }
        }
    };
    let mut config: Vec<&(String, String)> = form
        .iter()
        .filter(|(k, _)| !CREATE_ONLY.contains(&k.as_str()))
        .collect();
    config.sort();
    let numbered = |opt: &str, prefix: &str| {
        opt.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for (opt, value) in config {
        let opt = opt.as_str();
        let root_only = |what: &str| -> Result<(), AppError> {
            if is_root {
                Ok(())
            } else {
                Err(rights.root_only(what))
            }
        };
        if matches!(opt, "cores" | "cpuunits" | "cpulimit") {
            if !is_root {
                vm_priv("VM.Config.CPU").await?;
            }
        } else if opt == "rootfs" || numbered(opt, "mp") {
            let volume = value.split(',').next().unwrap_or_default();
            let volume = volume.strip_prefix("volume=").unwrap_or(volume);
            if volume.starts_with('/') {
                root_only("mount point type bind is only allowed for root@pam")?;
                needs.root_ticket = true;
                continue;
            }
            if !is_root {
                vm_priv("VM.Config.Disk").await?;
            }
            let sid = volume.split_once(':').map(|(s, _)| s).unwrap_or_default();
            rights
                .require(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"])
                .await?;
        } else if matches!(opt, "memory" | "swap") {
            if !is_root {
                vm_priv("VM.Config.Memory").await?;
            }
        } else if numbered(opt, "net") {
            if is_root {
                continue;
            }
            vm_priv("VM.Config.Network").await?;
            if let Some(bridge) = property(value, "bridge") {
                let path = format!("/sdn/zones/localnetwork/{bridge}");
                match property(value, "tag") {
                    Some(tag) => {
                        rights
                            .require(&format!("{path}/{tag}"), &["SDN.Use"])
                            .await?
                    }
                    None if property(value, "trunks").is_none() => {
                        rights.require(&path, &["SDN.Use"]).await?
                    }
                    None => {}
                }
            }
        } else if numbered(opt, "dev") {
            root_only("configuring device passthrough is only allowed for root@pam")?;
            needs.root_ticket = true;
        } else if matches!(opt, "nameserver" | "searchdomain" | "hostname") {
            if !is_root {
                vm_priv("VM.Config.Network").await?;
            }
        } else if opt == "features" {
            let flags: BTreeMap<&str, &str> =
                value.split(',').filter_map(|p| p.split_once('=')).collect();
            let nesting_only = flags.len() == 1
                && flags
                    .get("nesting")
                    .is_some_and(|v| !matches!(*v, "0" | "false" | "no" | "off"));
            if !unprivileged {
                root_only(
                    "changing feature flags for privileged container is only allowed for root@pam",
                )?;
                needs.root_ticket = true;
            } else if nesting_only {
                if !is_root {
                    vm_priv("VM.Allocate").await?;
                }
            } else if !flags.is_empty() {
                root_only("changing feature flags (except nesting) is only allowed for root@pam")?;
                needs.root_ticket = true;
            }
        } else if opt == "hookscript" {
            root_only("changing the hookscript is only allowed for root@pam")?;
            needs.root_ticket = true;
        } else if opt == "tags" {
            if !is_root {
                rights.require(&vm, &["VM.Config.Options"]).await?;
            }
        } else if !is_root {
            vm_priv("VM.Config.Options").await?;
        }
    }
    if !is_root
        && let Some(sid) = get("ostemplate")
            .and_then(|t| t.split_once(':'))
            .map(|(s, _)| s)
    {
        let path = format!("/storage/{sid}");
        if !rights.holds(&path, "Datastore.Allocate").await? {
            rights
                .require_any(&path, &["Datastore.AllocateSpace", "Datastore.Audit"])
                .await?;
        }
    }
    if needs.root_ticket && !rights.root_ticket {
        return Err(AppError::Forbidden(format!(
            "keyctl/fuse can only be set by root@pam in Proxmox: these options (features other than nesting, or features of a privileged container) need root@pam signed in with its own password on cluster {}, not an API token",
            rights.cluster
        )));
    }
    Ok(needs)
}

/// Which guests of `cluster` a listing shows `user`: Proxmox's answer for the identity, so
/// `None` means "as listed by the user's own ticket" (Proxmox filtered already), `Some` the
/// token owner's view to filter the service token's listing with.
pub async fn visible(
    state: &AppState,
    user: &CurrentUser,
    cluster: &Cluster,
) -> Result<Option<Effective>, AppError> {
    match (&user.ticket, &user.method) {
        (None, AuthMethod::ApiToken { .. }) => {
            Ok(Some(Rights::of(state, user, cluster)?.effective().await?))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::fake::FakePve;

    fn form(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = [
            ("vmid", "151"),
            ("ostemplate", "local:vztmpl/debian-12.tar.zst"),
            ("hostname", "x"),
            ("cores", "1"),
            ("memory", "512"),
            ("rootfs", "local-lvm:8"),
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        f.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        f
    }

    fn creator(pve: &FakePve) {
        for p in [
            "VM.Allocate",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Disk",
            "VM.Config.Network",
            "VM.Config.Options",
        ] {
            pve.grant("u@pve", "/vms/151", p);
        }
        pve.grant("u@pve", "/storage/local-lvm", "Datastore.AllocateSpace");
        pve.grant("u@pve", "/storage/local", "Datastore.Audit");
        pve.grant("u@pve", "/sdn/zones/localnetwork/vmbr0", "SDN.Use");
    }

    #[tokio::test]
    async fn create_needs_each_path_proxmox_checks() {
        let pve = FakePve::new("9.1.9", &["pve1"]);
        creator(&pve);
        let rights = Rights::on_behalf(&pve, "u@pve", "lab");
        assert_eq!(
            create(&rights, &form(&[("features", "nesting=1")]))
                .await
                .unwrap(),
            CreateNeeds::default()
        );
        let refused = |r: Result<CreateNeeds, AppError>| match r {
            Err(AppError::Forbidden(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let other_vmid: Vec<(String, String)> = form(&[])
            .into_iter()
            .map(|(k, v)| {
                if k == "vmid" {
                    (k, "152".to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        assert!(refused(create(&rights, &other_vmid).await).contains("VM.Allocate on /vms/152"));
        assert!(
            refused(create(&rights, &form(&[("unprivileged", "0")])).await)
                .contains("Sys.Modify on /")
        );
        assert!(
            refused(create(&rights, &form(&[("features", "nesting=1,keyctl=1")])).await)
                .contains("keyctl/fuse can only be set by root@pam")
        );
        let elsewhere: Vec<(String, String)> = form(&[])
            .into_iter()
            .map(|(k, v)| {
                if k == "rootfs" {
                    (k, "tank:8".to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        assert!(
            refused(create(&rights, &elsewhere).await)
                .contains("Datastore.AllocateSpace on /storage/tank")
        );
    }

    #[tokio::test]
    async fn root_only_options_need_roots_own_ticket() {
        let pve = FakePve::new("9.1.9", &["pve1"]);
        let mut rights = Rights::on_behalf(&pve, "root@pam", "lab");
        let keyctl = form(&[("features", "nesting=1,keyctl=1")]);
        assert!(create(&rights, &keyctl).await.is_err(), "no ticket of root");
        rights.root_ticket = true;
        assert!(create(&rights, &keyctl).await.unwrap().root_ticket);
        assert_eq!(
            pve.calls("access_permissions"),
            0,
            "root@pam holds everything"
        );
    }

    #[test]
    fn review_names_root_only_options_and_listings_inherit_from_vms() {
        assert!(root_only_reason(&form(&[("features", "nesting=1")])).is_none());
        assert!(
            root_only_reason(&form(&[("features", "keyctl=1,nesting=1")]))
                .is_some_and(|r| r.contains("keyctl/fuse"))
        );
        let perms: ctforge_pve::api::Permissions = serde_json::from_str(
            r#"{"/vms":{"VM.Audit":1},"/vms/7":{"VM.PowerMgmt":1},"/vms/8":{"VM.Audit":0}}"#,
        )
        .unwrap();
        let e = Effective(perms);
        assert!(e.vm_audit(5), "propagated from /vms");
        assert!(!e.vm_audit(7), "its own ACL replaces");
        assert!(e.vm_audit(8));
        let none: ctforge_pve::api::Permissions =
            serde_json::from_str(r#"{"/vms":{"VM.Audit":0}}"#).unwrap();
        assert!(!Effective(none).vm_audit(5), "not propagated");
    }
}
