//! The create request (the wizard's and the API's JSON body) and the plan it resolves to: the
//! exact Proxmox create parameters and every provisioning step, in order. The Review step shows
//! this plan and the job executes it, so what the user confirmed is what runs.

use std::collections::{BTreeMap, BTreeSet};

use ctforge_pve::types::{
    Features, IpConfig, LxcCreateParams, NetConfig, QemuCreate, RootFs, VmDisk,
};
use ctforge_template::{PackageManager, Template};
use serde::{Deserialize, Serialize};

/// One script choice: keep, disable or reorder a template's script.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptChoice {
    /// Script file name, e.g. `10-setup.sh`.
    pub name: String,
    /// Whether it runs.
    pub enabled: bool,
}

/// The body of `POST /api/v1/containers` and `/plan`: every field but `hostname` is optional
/// and defaults from the template, the cluster and the node.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Template name (or numeric id); none = from scratch.
    pub template: Option<String>,
    /// Cluster name; default cluster when absent.
    pub cluster: Option<String>,
    /// Node; the first online node when absent.
    pub node: Option<String>,
    /// RFC 1123 hostname.
    #[serde(default)]
    pub hostname: String,
    /// VMID; the cluster's next free id when absent.
    pub vmid: Option<u32>,
    /// Root password.
    pub password: Option<String>,
    /// SSH public keys, one per line.
    pub ssh_public_keys: Option<String>,
    /// CPU cores.
    pub cores: Option<u32>,
    /// Memory in MiB.
    pub memory: Option<u64>,
    /// Swap in MiB.
    pub swap: Option<u64>,
    /// Root disk in GiB.
    pub disk: Option<u32>,
    /// Storage for the root disk.
    pub storage: Option<String>,
    /// Network bridge.
    pub bridge: Option<String>,
    /// `dhcp` or a static IPv4 CIDR.
    pub ip: Option<String>,
    /// IPv4 gateway (static addresses).
    pub gateway: Option<String>,
    /// DNS server.
    pub nameserver: Option<String>,
    /// Unprivileged container.
    pub unprivileged: Option<bool>,
    /// Nesting feature.
    pub nesting: Option<bool>,
    /// keyctl feature.
    pub keyctl: Option<bool>,
    /// FUSE feature.
    pub fuse: Option<bool>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// OS template volume id, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    pub ostemplate: Option<String>,
    /// Buckets to install (default: all of the template's).
    pub buckets: Option<Vec<String>>,
    /// Extra packages: `manager:name[=version]` or plain apt names.
    pub extra_packages: Option<Vec<String>>,
    /// Script order and enablement.
    pub scripts: Option<Vec<ScriptChoice>>,
    /// A vm template only: the cloud image volume the disk is imported from (default: the
    /// template's `TEMPLATE_IMAGE`, else the node's `import` volume named after its OS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A vm template only: create the VM as a clone of this VM template (its VMID, on the
    /// node) instead of importing a cloud image — linked when the template's disk is on a
    /// storage that allows it and no other storage is asked, else a full copy; then this
    /// VM's own cloud-init settings, resources and disk size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_from: Option<u32>,
    /// With `clone_from`: `true` makes a full copy (on `storage`, else where the automatic
    /// choice puts it), `false` a linked clone (refused when the template's disk cannot be
    /// linked or another `storage` is asked: a linked clone stays on its template's storage);
    /// absent: linked where possible, as described under `clone_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_clone: Option<bool>,
    /// A vm template only: whether cloud-init upgrades the guest's packages on its first boot
    /// (`ciupgrade`); absent: Proxmox's default (yes). Off, the VM is Ready minutes sooner and
    /// its packages are as the cloud image has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<bool>,
    /// A vm template only: the cloud-init user (default `ctforge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A vm template only: also hand the template's `cloud-init/user-data.yaml` to the VM as
    /// vendor-data (`cicustom: vendor=<storage>:snippets/…`, written over the node's SSH with
    /// `pvesm path`, on the first storage offering snippets). Off by default: Proxmox's API
    /// cannot upload snippets, so it needs shell access to the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cloud_init_snippet: bool,
    /// A git-sourced template only: the boot unit fetches the template's branch itself and
    /// re-applies that (the library's model) instead of the copy ctforge pushed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_on_boot: bool,
    /// `image` or `scratch` forces where the container comes from; absent: from the
    /// template's current image on that node and storage when one is ready, else from scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceKind>,
}

/// Where a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Created from the OS template and provisioned step by step.
    Scratch,
    /// Cloned from the template's image; only per-instance steps run.
    Image,
    /// An image being baked (not a choice users make).
    Bake,
}

impl SourceKind {
    /// The text users see and send.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Scratch => "scratch",
            SourceKind::Image => "image",
            SourceKind::Bake => "bake",
        }
    }
}

/// The image a container is cloned from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageRef {
    /// ctforge's image id.
    pub image_id: i64,
    /// VMID of the Proxmox CT template.
    pub vmid: u32,
    /// Node holding it.
    pub node: String,
    /// Storage of its root disk.
    pub storage: String,
}

/// Where the container comes from and why (Review and the plan API show it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceChoice {
    /// Scratch, image (or bake, for an image's own build).
    pub kind: SourceKind,
    /// Why, in one sentence.
    pub reason: String,
    /// The image, when cloned from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRef>,
    /// The template version (content hash) the choice was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
}

/// Defaults the cluster and node contribute (looked up by the caller).
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// Cluster id.
    pub cluster_id: i64,
    /// Cluster name.
    pub cluster_name: String,
    /// Nodes, online ones first.
    pub nodes: Vec<String>,
    /// Next free VMID.
    pub next_vmid: u32,
    /// OS templates on the node's storages (volume ids).
    pub ostemplates: Vec<String>,
    /// Storages of the node that can hold container disks.
    pub rootdir_storages: Vec<String>,
    /// Bridges of the node.
    pub bridges: Vec<String>,
    /// Storages of the node that can hold VM disks (content `images`).
    pub image_storages: Vec<String>,
    /// Cloud images on the node's storages (content `import`, volume ids).
    pub import_volumes: Vec<String>,
    /// Storages of the node that hold snippets (cloud-init files for `cicustom`).
    pub snippet_storages: Vec<String>,
    /// The VM a request clones (`clone_from`), as Proxmox has it on the node.
    pub clone_source: Option<CloneSource>,
}

/// A VM a new VM is cloned from (`CreateRequest::clone_from`), read when the request names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneSource {
    /// Its VMID.
    pub vmid: u32,
    /// Whether it is a template (only templates are cloned for new VMs, as in Proxmox's GUI).
    pub template: bool,
    /// The storage of its boot disk (`scsi0`).
    pub disk_storage: Option<String>,
    /// Whether its disks allow a linked clone (a template's base volumes on thin LVM, ZFS,
    /// Ceph, or qcow2 files on a directory storage).
    pub linked: bool,
    /// Whether it has a cloud-init drive (else the clone gets one).
    pub cloudinit: bool,
}

/// The clone call of a VM created from a VM template, and the configuration set after it.
#[derive(Clone, Debug)]
pub struct VmClone {
    /// The template's VMID.
    pub source: u32,
    /// `POST /nodes/{node}/qemu/{source}/clone`.
    pub params: ctforge_pve::types::CloneParams,
    /// `PUT …/qemu/{vmid}/config` of the clone (its own cloud-init user, keys, address,
    /// resources); the password in clear (never serialised).
    pub config: Vec<(String, String)>,
    /// The storage the clone's disk is allocated on (the template's for a linked clone).
    pub allocates_on: Option<String>,
}

impl VmClone {
    /// The clone's creation as `POST /nodes/{node}/qemu` form parameters would state it
    /// (VMID, the configuration set on it, its disk's storage), for the same checks.
    pub fn as_create_form(&self) -> Vec<(String, String)> {
        let mut form = vec![("vmid".to_owned(), self.params.newid.to_string())];
        form.extend(self.config.iter().cloned());
        if let Some(s) = &self.allocates_on {
            form.push((VM_DISK.to_owned(), format!("{s}:0")));
        }
        form
    }
}

/// One provisioning step of the plan, with everything it will do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Create the CT (or VM) and wait for the `vzcreate` (`qmcreate`) task.
    Create,
    /// Write the template's cloud-init user-data as the VM's vendor-data snippet (cloud-init
    /// merges it under the user-data Proxmox generates from `ciuser`, `sshkeys`, …; it holds
    /// no secret), referenced by `cicustom: vendor=<volid>`.
    CloudInitSnippet {
        /// The snippet volume, e.g. `local:snippets/ctforge-120-vendor.yaml`.
        volid: String,
        /// Its text (the template's `cloud-init/user-data.yaml`).
        content: String,
    },
    /// Clone a VM template (`POST …/qemu/{vmid}/clone`, task `qmclone`), then give the clone
    /// its own configuration (`PUT …/config`: cloud-init user, keys, address, resources).
    CloneVm {
        /// VMID of the VM template.
        vmid: u32,
        /// A full copy (else linked to the template's base disk).
        full: bool,
        /// The configuration set on the clone (the password masked).
        config: BTreeMap<String, String>,
    },
    /// Grow a VM's imported disk to the requested size (`PUT …/resize`).
    ResizeDisk {
        /// The disk, e.g. `scsi0`.
        disk: String,
        /// The size, e.g. `8G`.
        size: String,
    },
    /// Start it and wait until commands run inside.
    Start,
    /// Deploy a file honouring its policy.
    DeployFile {
        /// Name in the template.
        name: String,
        /// Absolute target path.
        path: String,
        /// `replace`, `default` or `backup`.
        policy: String,
        /// Content.
        content: String,
    },
    /// Install the config-manager (config + oneshot unit re-applying the template on boot).
    ConfigManager,
    /// Install packages with one manager.
    Install {
        /// `apt`, `apk`, `dnf`, `npm`, `pip`.
        manager: String,
        /// Package specs (`name`, `name=1.2`, `name@1.2`, `name==1.2`).
        packages: Vec<String>,
    },
    /// Install one package of a `.custom` list: `check` decides (status 0: there already),
    /// else `install` runs, within `timeout_secs` when given.
    CustomPackage {
        /// Name.
        name: String,
        /// Check command.
        check: String,
        /// Install command.
        install: String,
        /// Limit of the install, seconds.
        timeout_secs: Option<u64>,
    },
    /// Run the template's custom installer.
    CustomInstaller {
        /// Script text.
        content: String,
    },
    /// Clone the template's image (linked where the storage allows it, else full) and set the
    /// per-instance configuration (`PUT …/config`).
    CloneImage {
        /// VMID of the image's Proxmox CT template.
        vmid: u32,
        /// Node holding it.
        node: String,
    },
    /// Give the clone its own identity: new SSH host keys and machine-id (the image's
    /// first-boot unit), root password and SSH keys.
    Identity,
    /// Run a script.
    RunScript {
        /// File name.
        name: String,
        /// Script text.
        content: String,
    },
    /// Discover services, ports, web URLs and credentials; mark ready.
    Discover,
}

impl Step {
    /// The job step (checkpoint) this plan step belongs to.
    pub fn phase(&self) -> &'static str {
        match self {
            Step::Create
            | Step::CloneImage { .. }
            | Step::CloneVm { .. }
            | Step::ResizeDisk { .. }
            | Step::CloudInitSnippet { .. } => "create",
            Step::Start => "start",
            Step::DeployFile { .. } | Step::ConfigManager | Step::Identity => "deploy",
            Step::Install { .. } | Step::CustomPackage { .. } | Step::CustomInstaller { .. } => {
                "install"
            }
            Step::RunScript { .. } => "scripts",
            Step::Discover => "discover",
        }
    }
}

/// A phase of container creation: one job step each, run in [`Phase::ALL`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Create the CT in Proxmox.
    Create,
    /// Start it and wait until it accepts commands.
    Start,
    /// Deploy files and the config-manager.
    Deploy,
    /// Install packages.
    Install,
    /// Run scripts.
    Scripts,
    /// Discover services, credentials and the address.
    Discover,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 6] = [
        Phase::Create,
        Phase::Start,
        Phase::Deploy,
        Phase::Install,
        Phase::Scripts,
        Phase::Discover,
    ];

    /// The job step name (stored as text).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Start => "start",
            Phase::Deploy => "deploy",
            Phase::Install => "install",
            Phase::Scripts => "scripts",
            Phase::Discover => "discover",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s).ok_or(())
    }
}

/// A resolved plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// Cluster id.
    pub cluster_id: i64,
    /// Cluster name.
    pub cluster: String,
    /// Node.
    pub node: String,
    /// VMID.
    pub vmid: u32,
    /// Hostname.
    pub hostname: String,
    /// Template name, if any.
    pub template: Option<String>,
    /// The create call (password included; never serialise this for users — see [`Plan::view`]).
    #[serde(skip)]
    pub params: LxcCreateParams,
    /// A container or a virtual machine.
    pub kind: crate::status::GuestKind,
    /// The VM's create call when [`Plan::kind`] is `qemu` (then `params` is unused).
    #[serde(skip)]
    pub qemu: Option<QemuCreate>,
    /// A VM cloned from a VM template instead (`qemu` then only supplies its settings).
    #[serde(skip)]
    pub vm_clone: Option<VmClone>,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Static IP without prefix, if any (for web URLs before discovery).
    pub ip: Option<String>,
    /// The template's `TEMPLATE_CONTAINER_USER`: the runtime's `CONTAINER_USER` (otherwise
    /// the library's detection rules pick it).
    #[serde(default)]
    pub container_user: Option<String>,
    /// What the config-manager applies: the template version ctforge pushes, or the git
    /// branch the boot unit follows (set from the job's payload, not by [`resolve`]).
    #[serde(default)]
    pub config_source: Option<ConfigSource>,
    /// Where the container comes from (set from the job's payload, not by [`resolve`]).
    #[serde(default)]
    pub source: Option<SourceChoice>,
    /// A VM's plan before submit: ctforge's own SSH key for it (the fallback channel when its
    /// guest agent does not answer) is made on submit and added to `sshkeys`, which the
    /// review says ([`Plan::view`]).
    #[serde(skip)]
    pub guest_key_pending: bool,
}

impl Plan {
    /// Rewrites the steps for `source`: an image's bake leaves out per-instance scripts and
    /// discovery; a container from an image clones it, gives it its identity and runs only the
    /// per-instance scripts (files, packages and the other scripts are in the image).
    pub fn with_source(mut self, source: Option<SourceChoice>) -> Self {
        let Some(choice) = source else {
            return self;
        };
        match (&choice.kind, &choice.image) {
            (SourceKind::Bake, _) => self.steps.retain(|s| match s {
                Step::RunScript { content, .. } => !ctforge_template::is_per_instance(content),
                Step::Discover => false,
                _ => true,
            }),
            (SourceKind::Image, Some(image)) => {
                let mut steps = vec![
                    Step::CloneImage {
                        vmid: image.vmid,
                        node: image.node.clone(),
                    },
                    Step::Start,
                    Step::Identity,
                ];
                steps.extend(
                    self.steps
                        .iter()
                        .filter(|s| match s {
                            Step::RunScript { content, .. } => {
                                ctforge_template::is_per_instance(content)
                            }
                            Step::Discover => true,
                            _ => false,
                        })
                        .cloned(),
                );
                self.steps = steps;
            }
            _ => {}
        }
        self.source = Some(choice);
        self
    }

    /// Whether the container runs the config-manager (installed by this plan or in its image).
    pub fn has_config_manager(&self) -> bool {
        self.steps.contains(&Step::ConfigManager)
            || (self.template.is_some()
                && self
                    .source
                    .as_ref()
                    .is_some_and(|s| s.kind == SourceKind::Image))
    }

    /// The image this plan clones, if any.
    pub fn image(&self) -> Option<&ImageRef> {
        self.source
            .as_ref()
            .filter(|s| s.kind == SourceKind::Image)
            .and_then(|s| s.image.as_ref())
    }
}

/// What the config-manager applies on boot (`/etc/config-manager/config.env`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigSource {
    /// What provisioning applied: `commit <sha>` or `template <name> <content hash>`
    /// (`/var/lib/ctforge/applied`).
    pub applied: String,
    /// Sync on boot: the repository the boot unit fetches itself.
    #[serde(default)]
    pub follow: Option<FollowGit>,
}

/// The git branch a container's boot unit follows (the library's `CONFIG_REPO_URL`,
/// `CONFIG_BRANCH`, `CONFIG_PATH`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FollowGit {
    /// Repository URL (https, git or file; not ssh: the deploy key stays in ctforge).
    pub url: String,
    /// Branch.
    pub branch: String,
    /// The template's `container-configs` inside the repository.
    pub path: String,
    /// Scripts the user disabled in the wizard: the boot unit skips them too.
    #[serde(default)]
    pub skip_scripts: Vec<String>,
}

/// What is shown to users: the Proxmox parameters with the password masked.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PlanView {
    /// Cluster.
    pub cluster: String,
    /// Node.
    pub node: String,
    /// VMID.
    pub vmid: u32,
    /// Hostname.
    pub hostname: String,
    /// Template.
    pub template: Option<String>,
    /// `lxc` (a container, `POST /nodes/{node}/lxc`) or `qemu` (a virtual machine,
    /// `POST /nodes/{node}/qemu`).
    #[serde(rename = "type", default)]
    pub kind: crate::status::GuestKind,
    /// The Proxmox call the parameters go to, e.g. `POST /nodes/pve1/qemu`.
    #[serde(default)]
    pub create_call: String,
    /// `POST /nodes/{node}/lxc` (or `/qemu`) parameters, exactly as sent (password masked), as
    /// `[name, value]` pairs. (Described as two-string arrays: a tuple's schema uses the
    /// array form of `items`, which OpenAPI 3.1 validators reject.)
    #[schemars(with = "Vec<[String; 2]>")]
    pub create_params: Vec<(String, String)>,
    /// Steps.
    pub steps: Vec<Step>,
    /// Where the container comes from and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceChoice>,
}

impl Plan {
    /// The user-facing view.
    pub fn view(&self) -> PlanView {
        let (create_call, form) = match (&self.vm_clone, &self.qemu) {
            (Some(c), _) => (
                format!("POST /nodes/{}/qemu/{}/clone", self.node, c.source),
                c.params.to_qemu_form(),
            ),
            (None, Some(q)) => (format!("POST /nodes/{}/qemu", self.node), q.to_form()),
            (None, None) => (
                format!("POST /nodes/{}/{}", self.node, self.kind.as_str()),
                self.params.to_form(),
            ),
        };
        let mut create_params: Vec<(String, String)> = form
            .into_iter()
            .map(|(k, v)| {
                if k == "password" || k == "cipassword" {
                    (k, "********".to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        let mut steps = self.steps.clone();
        if self.guest_key_pending && self.kind == crate::status::GuestKind::Qemu {
            let pending = |v: &mut String| {
                *v = if v.is_empty() {
                    PENDING_GUEST_KEY.to_owned()
                } else {
                    format!("{v} {PENDING_GUEST_KEY}")
                }
            };
            // A clone gets its keys with its own configuration after the clone call.
            let clone_config = steps.iter_mut().find_map(|s| match s {
                Step::CloneVm { config, .. } => Some(config),
                _ => None,
            });
            match clone_config {
                Some(config) => pending(config.entry("sshkeys".into()).or_default()),
                None => match create_params.iter_mut().find(|(k, _)| k == "sshkeys") {
                    Some((_, v)) => pending(v),
                    None => create_params.push(("sshkeys".into(), PENDING_GUEST_KEY.into())),
                },
            }
        }
        PlanView {
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            vmid: self.vmid,
            hostname: self.hostname.clone(),
            template: self.template.clone(),
            kind: self.kind,
            create_call,
            create_params,
            steps,
            source: self.source.clone(),
        }
    }
}

/// Field errors of a request; empty means valid.
pub type FieldErrors = Vec<(String, String)>;

/// RFC 1123 hostname (labels of letters, digits and inner hyphens, at most 253 characters).
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Parses `a.b.c.d/nn`; returns the address.
pub fn parse_cidr(v: &str) -> Option<std::net::Ipv4Addr> {
    let (addr, prefix) = v.split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    if prefix == 0 || prefix > 32 {
        return None;
    }
    addr.parse().ok()
}

fn parse_extra(spec: &str) -> Result<(PackageManager, String), String> {
    let (manager, rest) = match spec.split_once(':') {
        Some((m, rest)) => (
            m.parse::<PackageManager>().map_err(|_| {
                format!("{spec:?}: unknown package manager {m:?} (use apt, apk, dnf, npm or pip)")
            })?,
            rest,
        ),
        None => (PackageManager::Apt, spec),
    };
    let package = ctforge_template::Package::parse(manager, rest.trim())
        .map_err(|e| format!("{spec:?}: {e}"))?;
    Ok((manager, package.spec(manager)))
}

/// Resolves a request against its template and environment into a plan, or field errors.
pub fn resolve(
    req: &CreateRequest,
    template: Option<&Template>,
    env: &Environment,
) -> Result<Plan, FieldErrors> {
    let mut errors: FieldErrors = Vec::new();
    let conf = template.map(|t| t.config.clone()).unwrap_or_default();
    let hostname = req.hostname.trim().to_ascii_lowercase();
    if !valid_hostname(&hostname) {
        errors.push((
            "hostname".into(),
            "use letters, digits and '-' (RFC 1123), e.g. web-01".into(),
        ));
    }
    let node = match req.node.clone().filter(|n| !n.is_empty()) {
        Some(n) if env.nodes.is_empty() || env.nodes.contains(&n) => n,
        Some(n) => {
            errors.push((
                "node".into(),
                format!("node {n:?} is not part of cluster {}", env.cluster_name),
            ));
            n
        }
        None => match env.nodes.first() {
            Some(n) => n.clone(),
            None => {
                errors.push(("node".into(), "the cluster reports no online node".into()));
                String::new()
            }
        },
    };
    let vmid = req.vmid.unwrap_or(env.next_vmid);
    if !valid_vmid(vmid) {
        errors.push((
            "vmid".into(),
            "a VMID is a number from 100 to 999999999".into(),
        ));
    }
    let cores = req.cores.or(conf.cpu).unwrap_or(1);
    if !(1..=8192).contains(&cores) {
        errors.push(("cores".into(), "cores must be between 1 and 8192".into()));
    }
    let memory = req.memory.or(conf.ram_mib.map(u64::from)).unwrap_or(512);
    if memory < 16 {
        errors.push(("memory".into(), "memory must be at least 16 MiB".into()));
    }
    let swap = req.swap.or(conf.swap_mib.map(u64::from)).unwrap_or(512);
    let disk = req.disk.or(conf.disk_gib).unwrap_or(8);
    if disk == 0 || disk > 131_072 {
        errors.push((
            "disk".into(),
            "disk size must be between 1 and 131072 GiB".into(),
        ));
    }
    let vm = conf.kind() == ctforge_template::TemplateType::Vm;
    let (disk_storages, disk_what) = if vm {
        (&env.image_storages, "VM disks")
    } else {
        (&env.rootdir_storages, "container disks")
    };
    let storage = req
        .storage
        .clone()
        .filter(|s| !s.is_empty())
        .or(conf.storage.clone())
        .or_else(|| disk_storages.first().cloned())
        .unwrap_or_else(|| "local-lvm".into());
    if !disk_storages.is_empty() && !disk_storages.contains(&storage) {
        errors.push((
            "storage".into(),
            format!(
                "storage {storage:?} cannot hold {disk_what} on {node}; choose one of {}",
                disk_storages.join(", ")
            ),
        ));
    }
    let bridge = req
        .bridge
        .clone()
        .filter(|s| !s.is_empty())
        .or(conf.bridge.clone())
        .unwrap_or_else(|| "vmbr0".into());
    if !env.bridges.is_empty() && !env.bridges.contains(&bridge) {
        errors.push((
            "bridge".into(),
            format!(
                "bridge {bridge:?} does not exist on {node}; choose one of {}",
                env.bridges.join(", ")
            ),
        ));
    }
    let ip_text = req
        .ip
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "dhcp".into());
    let mut static_ip = None;
    let ip = if ip_text == "dhcp" {
        IpConfig::Dhcp
    } else if let Some(addr) = parse_cidr(&ip_text) {
        static_ip = Some(addr.to_string());
        IpConfig::Static(ip_text.clone())
    } else {
        errors.push((
            "ip".into(),
            "enter dhcp or an IPv4 address with prefix, e.g. 192.168.1.50/24".into(),
        ));
        IpConfig::Dhcp
    };
    let gateway = req.gateway.clone().filter(|g| !g.is_empty());
    if let Some(gw) = &gateway {
        if gw.parse::<std::net::Ipv4Addr>().is_err() {
            errors.push((
                "gateway".into(),
                "enter an IPv4 address, e.g. 192.168.1.1".into(),
            ));
        } else if static_ip.is_none() {
            errors.push((
                "gateway".into(),
                "a gateway only applies to a static address".into(),
            ));
        }
    }
    if let Some(ns) = req.nameserver.as_deref().filter(|s| !s.is_empty())
        && ns
            .split_whitespace()
            .any(|a| a.parse::<std::net::IpAddr>().is_err())
    {
        errors.push((
            "nameserver".into(),
            "enter IP addresses separated by spaces".into(),
        ));
    }
    let wanted_os = match (&conf.os, &conf.os_version) {
        (Some(os), Some(v)) => Some(format!("{os}-{v}")),
        (Some(os), None) => Some(os.clone()),
        _ => None,
    };
    let clone_from = req.clone_from.filter(|_| vm);
    if req.clone_from.is_some() && !vm {
        errors.push((
            "clone_from".into(),
            "only a VM is cloned from a VM template; this template makes a container".into(),
        ));
    } else if clone_from.is_some_and(|v| !valid_vmid(v)) {
        errors.push((
            "clone_from".into(),
            "a VMID is a number from 100 to 999999999".into(),
        ));
    }
    let image = if vm && clone_from.is_none() {
        resolve_image(req, &conf, env, &node, wanted_os.as_deref(), &mut errors)
    } else {
        String::new()
    };
    let ostemplate = match req.ostemplate.clone().filter(|s| !s.is_empty()) {
        _ if vm => String::new(),
        Some(t) => {
            if !env.ostemplates.is_empty() && !env.ostemplates.contains(&t) {
                errors.push((
                    "ostemplate".into(),
                    format!("{t:?} is not on {node}; download it first or choose another"),
                ));
            }
            t
        }
        None => {
            let found = env
                .ostemplates
                .iter()
                .find(|t| {
                    wanted_os.as_ref().is_some_and(|w| {
                        t.rsplit('/')
                            .next()
                            .is_some_and(|f| f.starts_with(w.as_str()))
                    })
                })
                .or_else(|| env.ostemplates.first())
                .cloned();
            match found {
                Some(t) => t,
                None => {
                    errors.push((
                        "ostemplate".into(),
                        format!(
                            "no OS template on {node}; download one (e.g. {}) first",
                            wanted_os.as_deref().unwrap_or("debian-12")
                        ),
                    ));
                    String::new()
                }
            }
        }
    };
    if req
        .password
        .as_deref()
        .is_some_and(|p| !p.is_empty() && p.len() < 5)
    {
        errors.push((
            "password".into(),
            "the root password needs at least 5 characters".into(),
        ));
    }
    let tags: Vec<String> = req.tags.clone().unwrap_or_else(|| conf.tags.clone());
    for tag in &tags {
        if tag.is_empty()
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
        {
            errors.push((
                "tags".into(),
                format!("tag {tag:?} may only use letters, digits and - _ . +"),
            ));
        }
    }

    let container_user = template.and_then(|t| {
        t.config
            .extra
            .iter()
            .rev()
            .find(|(k, _)| k == "TEMPLATE_CONTAINER_USER")
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    });
    if let Some(user) = &container_user
        && !valid_user_name(user)
    {
        errors.push((
            "template".into(),
            format!(
                "TEMPLATE_CONTAINER_USER {user:?} is not a user name (lowercase letters, digits, - and _, at most 32)"
            ),
        ));
    }

    // Packages: the chosen buckets in template order, then extras.
    // The template's user-data goes along as vendor-data when the request asks for it.
    let snippet = match (vm, template.and_then(|t| t.cloud_init.clone())) {
        (true, Some(content)) if req.cloud_init_snippet => match env.snippet_storages.first() {
            Some(st) => Some((format!("{st}:snippets/ctforge-{vmid}-vendor.yaml"), content)),
            None => {
                errors.push((
                        "cloud_init_snippet".into(),
                        format!("no storage on {node} holds snippets; enable the content type `snippets` on one"),
                    ));
                None
            }
        },
        _ => None,
    };
    let mut steps = Vec::new();
    if let Some((volid, content)) = &snippet {
        steps.push(Step::CloudInitSnippet {
            volid: volid.clone(),
            content: content.clone(),
        });
    }
    // A clone's disk is the template's, on its storage unless another one is asked.
    let asked_storage = req
        .storage
        .clone()
        .filter(|s| !s.is_empty())
        .or(conf.storage.clone());
    let clone =
        clone_from.and_then(
            |id| match env.clone_source.as_ref().filter(|s| s.vmid == id) {
                None => {
                    errors.push((
                        "clone_from".into(),
                        format!("VM {id} does not exist on {node}"),
                    ));
                    None
                }
                Some(s) if !s.template => {
                    errors.push((
                        "clone_from".into(),
                        format!("VM {id} is not a template; convert it to a template first"),
                    ));
                    None
                }
                Some(s) => {
                    let other_storage = |asked: Option<&String>| {
                        asked.is_some_and(|a| Some(a) != s.disk_storage.as_ref())
                    };
                    let on = s.disk_storage.as_deref().unwrap_or("no disk");
                    match req.full_clone {
                        Some(true) => Some((s.clone(), true)),
                        Some(false) if !s.linked => {
                            errors.push((
                                "full_clone".into(),
                                format!("the disk of VM template {id} (on {on}) cannot be linked: Proxmox links only a template's base volumes on thin LVM, ZFS or Ceph and qcow2 files; make a full copy"),
                            ));
                            None
                        }
                        // The template's own TEMPLATE_STORAGE gives way to the linked clone
                        // asked; a storage the request names does not.
                        Some(false) if other_storage(req.storage.as_ref().filter(|a| !a.is_empty())) => {
                            errors.push((
                                "storage".into(),
                                format!("a linked clone stays on its template's storage {on}; leave the storage out or make a full copy"),
                            ));
                            None
                        }
                        Some(false) => Some((s.clone(), false)),
                        None => Some((s.clone(), !s.linked || other_storage(asked_storage.as_ref()))),
                    }
                }
            },
        );
    match &clone {
        Some((source, full)) => steps.push(Step::CloneVm {
            vmid: source.vmid,
            full: *full,
            config: BTreeMap::new(),
        }),
        None => steps.push(Step::Create),
    }
    if vm {
        steps.push(Step::ResizeDisk {
            disk: VM_DISK.into(),
            size: format!("{disk}G"),
        });
    }
    steps.push(Step::Start);
    if let Some(t) = template {
        for f in &t.files {
            let path = f.target_path();
            if let Err(e) = ctforge_template::validate_target_path(&path) {
                errors.push(("files".into(), format!("{}: {e}", f.name)));
            }
            steps.push(Step::DeployFile {
                name: f.name.clone(),
                path,
                policy: f.policy.as_str().to_owned(),
                content: f.content.clone(),
            });
        }
        steps.push(Step::ConfigManager);
    }
    let bucket_names: BTreeSet<String> = template
        .map(|t| {
            t.packages
                .iter()
                .map(|p| p.bucket.clone())
                .chain(t.custom_lists.iter().map(|l| l.bucket.clone()))
                .collect()
        })
        .unwrap_or_default();
    let chosen: Option<BTreeSet<String>> = req.buckets.clone().map(|b| b.into_iter().collect());
    if let Some(chosen) = &chosen {
        for b in chosen.difference(&bucket_names) {
            errors.push((
                "buckets".into(),
                format!("the template has no bucket {b:?}"),
            ));
        }
    }
    let mut by_manager: Vec<(PackageManager, Vec<String>)> = Vec::new();
    let mut add = |manager: PackageManager, spec: String| match by_manager
        .iter_mut()
        .find(|(m, _)| *m == manager)
    {
        Some((_, list)) => {
            if !list.contains(&spec) {
                list.push(spec)
            }
        }
        None => by_manager.push((manager, vec![spec])),
    };
    if let Some(t) = template {
        for list in &t.packages {
            if chosen.as_ref().is_none_or(|c| c.contains(&list.bucket)) {
                for p in &list.packages {
                    add(list.manager, p.spec(list.manager));
                }
            }
        }
    }
    for spec in req.extra_packages.clone().unwrap_or_default() {
        match parse_extra(&spec) {
            Ok((m, s)) => add(m, s),
            Err(e) => errors.push(("extra_packages".into(), e)),
        }
    }
    for (manager, packages) in by_manager {
        steps.push(Step::Install {
            manager: manager.as_str().to_owned(),
            packages,
        });
    }
    if let Some(t) = template {
        for list in &t.custom_lists {
            if chosen.as_ref().is_none_or(|c| c.contains(&list.bucket)) {
                for p in list.parse().0 {
                    steps.push(Step::CustomPackage {
                        name: p.name,
                        check: p.check,
                        install: p.install,
                        timeout_secs: p.timeout_secs,
                    });
                }
            }
        }
    }
    if let Some(custom) = template.and_then(|t| t.custom_installer.clone()) {
        steps.push(Step::CustomInstaller { content: custom });
    }

    // Scripts: the template's order unless the request reorders or disables them.
    let template_scripts: Vec<(String, String)> = template
        .map(|t| {
            t.scripts
                .iter()
                .map(|s| (s.name.clone(), s.content.clone()))
                .collect()
        })
        .unwrap_or_default();
    match &req.scripts {
        Some(choices) => {
            for choice in choices {
                match template_scripts.iter().find(|(n, _)| *n == choice.name) {
                    Some((name, content)) if choice.enabled => steps.push(Step::RunScript {
                        name: name.clone(),
                        content: content.clone(),
                    }),
                    Some(_) => {}
                    None => errors.push((
                        "scripts".into(),
                        format!("the template has no script {:?}", choice.name),
                    )),
                }
            }
        }
        None => {
            for (name, content) in template_scripts {
                steps.push(Step::RunScript { name, content });
            }
        }
    }
    steps.push(Step::Discover);

    if !errors.is_empty() {
        return Err(errors);
    }
    let mut features = Features::default();
    if req.nesting.or(conf.nesting).unwrap_or(false) {
        features.nesting = Some(true);
    }
    if req.keyctl.or(conf.keyctl).unwrap_or(false) {
        features.keyctl = Some(true);
    }
    if req.fuse.or(conf.fuse).unwrap_or(false) {
        features.fuse = Some(true);
    }
    let user = req
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_VM_USER.to_owned());
    if vm && !valid_user_name(&user) {
        return Err(vec![(
            "user".into(),
            format!("{user:?} is not a user name (lowercase letters, digits, - and _, at most 32)"),
        )]);
    }
    let qemu = vm.then(|| {
        let mut q = QemuCreate::new(vmid);
        q.name = Some(hostname.clone());
        q.memory = Some(memory);
        q.cores = Some(cores);
        q.sockets = Some(1);
        q.machine = conf.machine.clone();
        q.bios = conf.bios.clone();
        q.ostype = Some("l26".into());
        q.scsihw = Some("virtio-scsi-single".into());
        q.scsi0 = Some(VmDisk::Import {
            storage: storage.clone(),
            volid: image.clone(),
        });
        q.cloudinit = Some(("ide2".into(), storage.clone()));
        q.boot = Some(format!("order={VM_DISK}"));
        q.net0 = Some(format!("virtio,bridge={bridge}"));
        q.serial0 = Some("socket".into());
        q.vga = Some("serial0".into());
        q.agent = conf.agent.unwrap_or(true);
        q.ciuser = Some(user.clone());
        q.cipassword = req
            .password
            .clone()
            .filter(|p| !p.is_empty())
            .map(ctforge_pve::Secret::new);
        q.sshkeys = req.ssh_public_keys.clone().filter(|k| !k.trim().is_empty());
        q.ipconfig0 = Some(match (&ip, &gateway) {
            (IpConfig::Static(cidr), Some(gw)) => format!("ip={cidr},gw={gw}"),
            (IpConfig::Static(cidr), None) => format!("ip={cidr}"),
            _ => "ip=dhcp".into(),
        });
        q.nameserver = req.nameserver.clone().filter(|s| !s.is_empty());
        q.ciupgrade = req.upgrade;
        q.cicustom = snippet.as_ref().map(|(volid, _)| format!("vendor={volid}"));
        q.tags = tags.clone();
        q
    });
    let vm_clone = match (&clone, &qemu) {
        (Some((source, full)), Some(q)) => {
            let (vm_clone, shown) = clone_call(q, source, *full, &storage, &hostname);
            for step in &mut steps {
                if let Step::CloneVm { config, .. } = step {
                    *config = shown.clone();
                }
            }
            Some(vm_clone)
        }
        _ => None,
    };
    let kind = if vm {
        crate::status::GuestKind::Qemu
    } else {
        crate::status::GuestKind::Lxc
    };
    let mut net = NetConfig::new("eth0", bridge, ip);
    net.gw = gateway;
    let mut params = LxcCreateParams::new(vmid, ostemplate)
        .hostname(hostname.clone())
        .cores(cores)
        .memory(memory)
        .swap(swap)
        .rootfs(RootFs::allocate(&storage, u64::from(disk)))
        .net(0, net)
        .unprivileged(req.unprivileged.or(conf.unprivileged).unwrap_or(true));
    if features != Features::default() {
        params = params.features(features);
    }
    if let Some(pw) = req.password.clone().filter(|p| !p.is_empty()) {
        params = params.password(pw);
    }
    if let Some(keys) = req.ssh_public_keys.clone().filter(|k| !k.trim().is_empty()) {
        params = params.ssh_public_keys(keys);
    }
    if let Some(ns) = req.nameserver.clone().filter(|s| !s.is_empty()) {
        params = params.nameserver(ns);
    }
    for tag in tags {
        params = params.tag(tag);
    }
    Ok(Plan {
        cluster_id: env.cluster_id,
        cluster: env.cluster_name.clone(),
        node,
        vmid,
        hostname,
        template: template.map(|t| t.name.clone()),
        params,
        kind,
        qemu,
        vm_clone,
        steps,
        ip: static_ip,
        container_user,
        config_source: None,
        source: None,
        guest_key_pending: vm,
    })
}

/// What the review shows in place of ctforge's own SSH key of a VM before submit.
pub const PENDING_GUEST_KEY: &str = "(+ ctforge's own SSH key for this VM, made on submit: its channel when the guest agent does not answer)";

/// The user's `keys` (one per line) followed by ctforge's `line`.
pub fn with_key_line(keys: Option<&str>, line: &str) -> String {
    match keys.map(str::trim_end).filter(|k| !k.trim().is_empty()) {
        Some(keys) => format!("{keys}\n{line}"),
        None => line.to_owned(),
    }
}

/// Whether `vmid` is one Proxmox accepts (100 to 999999999).
pub fn valid_vmid(vmid: u32) -> bool {
    (100..=999_999_999).contains(&vmid)
}

/// The keys of a VM's create call a clone of a VM template gets set after the clone: its own
/// resources, cloud-init identity and address, notes; the template keeps its disks, machine,
/// firmware and devices.
const CLONE_CONFIG_KEYS: &[&str] = &[
    "memory",
    "cores",
    "sockets",
    "agent",
    "ciuser",
    "cipassword",
    "sshkeys",
    "ipconfig0",
    "nameserver",
    "searchdomain",
    "ciupgrade",
    "cicustom",
    "tags",
    "description",
    "onboot",
];

/// The clone of `source` as VM `q.vmid` and the configuration set on it afterwards (and that
/// configuration as the plan shows it, the password masked). A template without a cloud-init
/// drive gets one on the clone's storage.
fn clone_call(
    q: &QemuCreate,
    source: &CloneSource,
    full: bool,
    storage: &str,
    hostname: &str,
) -> (VmClone, BTreeMap<String, String>) {
    let params = ctforge_pve::types::CloneParams {
        newid: q.vmid,
        hostname: Some(hostname.to_owned()),
        full: Some(full),
        storage: full.then(|| storage.to_owned()),
        ..Default::default()
    };
    let mut config: Vec<(String, String)> = q
        .to_form()
        .into_iter()
        .filter(|(k, _)| CLONE_CONFIG_KEYS.contains(&k.as_str()))
        .collect();
    if !source.cloudinit {
        let on = if full {
            storage.to_owned()
        } else {
            source
                .disk_storage
                .clone()
                .unwrap_or_else(|| storage.to_owned())
        };
        config.push(("ide2".into(), format!("{on}:cloudinit")));
    }
    let shown = config
        .iter()
        .map(|(k, v)| {
            let v = if k == "cipassword" { "********" } else { v };
            (k.clone(), v.to_owned())
        })
        .collect();
    let allocates_on = if full {
        Some(storage.to_owned())
    } else {
        source.disk_storage.clone()
    };
    (
        VmClone {
            source: source.vmid,
            params,
            config,
            allocates_on,
        },
        shown,
    )
}

/// The disk a VM boots from (the imported cloud image).
pub const VM_DISK: &str = "scsi0";
/// The cloud-init user of a VM when the request names none.
pub const DEFAULT_VM_USER: &str = "ctforge";

/// The cloud image a VM's disk is imported from: the request's, else the template's
/// `TEMPLATE_IMAGE` (a volume id, or a file name looked up among the node's `import`
/// volumes), else the node's `import` volume named after the template's OS
/// (`debian-12-…`).
fn resolve_image(
    req: &CreateRequest,
    conf: &ctforge_template::TemplateConfig,
    env: &Environment,
    node: &str,
    wanted_os: Option<&str>,
    errors: &mut FieldErrors,
) -> String {
    let file_of = |volid: &str| {
        volid
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let named = req
        .image
        .clone()
        .filter(|s| !s.is_empty())
        .or(conf.image.clone());
    if let Some(name) = named {
        if name.contains(':') {
            if !env.import_volumes.is_empty() && !env.import_volumes.contains(&name) {
                errors.push((
                    "image".into(),
                    format!("{name:?} is not on {node}; upload the cloud image (content import) first or choose another"),
                ));
            }
            return name;
        }
        return match env.import_volumes.iter().find(|v| file_of(v) == name) {
            Some(v) => v.clone(),
            None => {
                errors.push((
                    "image".into(),
                    format!("no cloud image {name:?} on {node}; upload it to a storage with content `import` first"),
                ));
                String::new()
            }
        };
    }
    let found = env
        .import_volumes
        .iter()
        .find(|v| wanted_os.is_some_and(|w| file_of(v).starts_with(w)))
        .or_else(|| {
            env.import_volumes
                .iter()
                .find(|v| wanted_os.is_none() && file_of(v).contains("cloud"))
        });
    match found {
        Some(v) => v.clone(),
        None => {
            errors.push((
                "image".into(),
                format!(
                    "no cloud image for {} on {node}; upload one (e.g. debian-12-genericcloud-amd64.qcow2, content import) or set TEMPLATE_IMAGE",
                    wanted_os.unwrap_or("this template")
                ),
            ));
            String::new()
        }
    }
}

/// A portable Linux user name (what `useradd` accepts by default).
pub fn valid_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use ctforge_template::{FilePolicy, Package, PackageList, Script, TemplateFile};

    use super::*;

    fn env() -> Environment {
        Environment {
            cluster_id: 1,
            cluster_name: "lab".into(),
            nodes: vec!["pve1".into(), "pve2".into()],
            next_vmid: 105,
            ostemplates: vec![
                "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz".into(),
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            ],
            rootdir_storages: vec!["local-lvm".into()],
            bridges: vec!["vmbr0".into()],
            ..Environment::default()
        }
    }

    fn template() -> Template {
        let mut t = Template::new("web");
        t.config.cpu = Some(2);
        t.config.ram_mib = Some(1024);
        t.config.os = Some("debian".into());
        t.config.os_version = Some("12".into());
        t.config.nesting = Some(true);
        t.config.tags = vec!["web".into()];
        t.scripts = vec![
            Script::new(10, "10-a.sh", "echo a"),
            Script::new(20, "20-b.sh", "echo b"),
        ];
        t.files = vec![TemplateFile::new(
            "site.conf",
            "/etc/nginx/sites-enabled",
            FilePolicy::Backup,
            "server {}",
        )];
        let mut base = PackageList::new("base", PackageManager::Apt);
        base.packages = vec![Package::new("nginx"), Package::pinned("curl", "7.88")];
        let mut tools = PackageList::new("tools", PackageManager::Npm);
        tools.packages = vec![Package::pinned("pm2", "5")];
        t.packages = vec![base, tools];
        t
    }

    #[test]
    fn a_vm_template_plans_a_qemu_create_with_the_image_import() {
        let mut t = template();
        t.config.template_type = Some(ctforge_template::TemplateType::Vm);
        t.config.nesting = None;
        t.cloud_init = Some("#cloud-config\npackages: [qemu-guest-agent]\n".into());
        let env = Environment {
            image_storages: vec!["local-lvm".into()],
            import_volumes: vec![
                "local:import/debian-12-genericcloud-amd64.qcow2".into(),
                "local:import/debian-13-genericcloud-amd64.qcow2".into(),
            ],
            snippet_storages: vec!["local".into()],
            ..env()
        };
        let req = CreateRequest {
            hostname: "vm1".into(),
            password: Some("secret1".into()),
            ..Default::default()
        };
        let plan = resolve(&req, Some(&t), &env).unwrap();
        assert_eq!(plan.kind, crate::status::GuestKind::Qemu);
        let view = plan.view();
        let get = |k: &str| {
            view.create_params
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("scsi0").as_deref(),
            Some("local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2")
        );
        assert_eq!(get("cipassword").as_deref(), Some("********"));
        assert_eq!(get("ciuser").as_deref(), Some(DEFAULT_VM_USER));
        assert_eq!(get("cicustom"), None, "no snippet unless asked");
        assert_eq!(view.create_call, "POST /nodes/pve1/qemu");
        assert_eq!(
            plan.steps[1],
            Step::ResizeDisk {
                disk: "scsi0".into(),
                size: "8G".into()
            }
        );
        // Asked for: the user-data goes along as vendor-data on the snippet storage.
        let req = CreateRequest {
            cloud_init_snippet: true,
            ..req
        };
        let plan = resolve(&req, Some(&t), &env).unwrap();
        assert!(
            matches!(&plan.steps[0], Step::CloudInitSnippet { volid, .. } if volid == "local:snippets/ctforge-105-vendor.yaml")
        );
        // An image that is not there is a field error.
        let req = CreateRequest {
            image: Some("nope.qcow2".into()),
            ..req
        };
        let errors = resolve(&req, Some(&t), &env).unwrap_err();
        assert!(errors.iter().any(|(f, _)| f == "image"), "{errors:?}");
    }

    #[test]
    fn a_vm_cloned_from_a_vm_template_plans_the_clone_call_and_its_config() {
        let mut t = template();
        t.config.template_type = Some(ctforge_template::TemplateType::Vm);
        t.config.nesting = None;
        let source = CloneSource {
            vmid: 9000,
            template: true,
            disk_storage: Some("local-lvm".into()),
            linked: true,
            cloudinit: false,
        };
        let env = Environment {
            image_storages: vec!["local-lvm".into(), "local".into()],
            clone_source: Some(source.clone()),
            ..env()
        };
        let req = CreateRequest {
            hostname: "vm1".into(),
            password: Some("secret1".into()),
            clone_from: Some(9000),
            ..Default::default()
        };
        let plan = resolve(&req, Some(&t), &env).unwrap();
        let view = plan.view();
        assert_eq!(view.create_call, "POST /nodes/pve1/qemu/9000/clone");
        let form: Vec<(&str, &str)> = view
            .create_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(form, [("newid", "105"), ("name", "vm1"), ("full", "0")]);
        let Step::CloneVm { vmid, full, config } = &plan.steps[0] else {
            panic!("{:?}", plan.steps)
        };
        assert_eq!((*vmid, *full), (9000, false));
        assert_eq!(config["cipassword"], "********");
        assert_eq!(
            config["ide2"], "local-lvm:cloudinit",
            "the template had none"
        );
        let clone = plan.vm_clone.as_ref().unwrap();
        assert!(
            clone
                .config
                .contains(&("cipassword".into(), "secret1".into())),
            "the call carries the password"
        );
        assert!(matches!(plan.steps[1], Step::ResizeDisk { .. }));
        // Another storage: a full copy there.
        let req = CreateRequest {
            storage: Some("local".into()),
            ..req
        };
        let view = resolve(&req, Some(&t), &env).unwrap().view();
        assert!(view.create_params.contains(&("full".into(), "1".into())));
        assert!(
            view.create_params
                .contains(&("storage".into(), "local".into()))
        );
        // Asked: a full copy on the template's own storage, or a linked clone, which refuses
        // another storage and a disk that cannot be linked.
        let full_here = CreateRequest {
            storage: None,
            full_clone: Some(true),
            ..req.clone()
        };
        let view = resolve(&full_here, Some(&t), &env).unwrap().view();
        assert!(view.create_params.contains(&("full".into(), "1".into())));
        let linked_elsewhere = CreateRequest {
            full_clone: Some(false),
            ..req.clone()
        };
        let errors = resolve(&linked_elsewhere, Some(&t), &env).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|(f, m)| f == "storage"
                    && m.contains("stays on its template's storage local-lvm")),
            "{errors:?}"
        );
        let unlinkable = Environment {
            clone_source: Some(CloneSource {
                linked: false,
                ..source.clone()
            }),
            ..env.clone()
        };
        let linked = CreateRequest {
            storage: None,
            ..linked_elsewhere
        };
        let errors = resolve(&linked, Some(&t), &unlinkable).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|(f, m)| f == "full_clone" && m.contains("cannot be linked")),
            "{errors:?}"
        );
        // Not a template: a field error.
        let env = Environment {
            clone_source: Some(CloneSource {
                template: false,
                ..source
            }),
            ..env
        };
        let errors = resolve(&req, Some(&t), &env).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|(f, m)| f == "clone_from" && m.contains("not a template")),
            "{errors:?}"
        );
    }

    #[test]
    fn defaults_come_from_template_and_environment() {
        let req = CreateRequest {
            hostname: "Web-01".into(),
            password: Some("secret1".into()),
            ..Default::default()
        };
        let plan = resolve(&req, Some(&template()), &env()).unwrap();
        assert_eq!(
            (plan.node.as_str(), plan.vmid, plan.hostname.as_str()),
            ("pve1", 105, "web-01")
        );
        let form: std::collections::BTreeMap<_, _> = plan.params.to_form().into_iter().collect();
        assert_eq!(
            form["ostemplate"], "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            "OS from the template"
        );
        assert_eq!(form["cores"], "2");
        assert_eq!(form["memory"], "1024");
        assert_eq!(form["rootfs"], "local-lvm:8");
        assert_eq!(form["net0"], "name=eth0,bridge=vmbr0,ip=dhcp");
        assert_eq!(form["features"], "nesting=1");
        assert_eq!(form["unprivileged"], "1");
        let view = plan.view();
        assert!(
            view.create_params
                .iter()
                .any(|(k, v)| k == "password" && v == "********"),
            "password masked in the view"
        );
        let phases: Vec<&str> = plan.steps.iter().map(Step::phase).collect();
        assert_eq!(
            phases,
            [
                "create", "start", "deploy", "deploy", "install", "install", "scripts", "scripts",
                "discover"
            ]
        );
        assert_eq!(
            plan.steps[4],
            Step::Install {
                manager: "apt".into(),
                packages: vec!["nginx".into(), "curl=7.88".into()]
            }
        );
        assert_eq!(
            plan.steps[5],
            Step::Install {
                manager: "npm".into(),
                packages: vec!["pm2@5".into()]
            }
        );
    }

    #[test]
    fn choices_reorder_disable_and_extend() {
        let req = CreateRequest {
            hostname: "db".into(),
            node: Some("pve2".into()),
            vmid: Some(300),
            ip: Some("10.0.0.5/24".into()),
            gateway: Some("10.0.0.1".into()),
            buckets: Some(vec!["base".into()]),
            extra_packages: Some(vec!["htop".into(), "pip:requests==2.31".into()]),
            scripts: Some(vec![
                ScriptChoice {
                    name: "20-b.sh".into(),
                    enabled: true,
                },
                ScriptChoice {
                    name: "10-a.sh".into(),
                    enabled: false,
                },
            ]),
            ..Default::default()
        };
        let plan = resolve(&req, Some(&template()), &env()).unwrap();
        let form: std::collections::BTreeMap<_, _> = plan.params.to_form().into_iter().collect();
        assert_eq!(
            form["net0"],
            "name=eth0,bridge=vmbr0,gw=10.0.0.1,ip=10.0.0.5/24"
        );
        assert_eq!(plan.ip.as_deref(), Some("10.0.0.5"));
        let installs: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Install { .. }))
            .collect();
        assert_eq!(installs.len(), 2, "npm bucket left out, pip extra added");
        let scripts: Vec<_> = plan
            .steps
            .iter()
            .filter_map(|s| {
                if let Step::RunScript { name, .. } = s {
                    Some(name.as_str())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(scripts, ["20-b.sh"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let req = CreateRequest {
            hostname: "-bad_host".into(),
            node: Some("pve9".into()),
            vmid: Some(5),
            memory: Some(8),
            storage: Some("nfs".into()),
            bridge: Some("vmbr9".into()),
            ip: Some("10.0.0.5".into()),
            gateway: Some("x".into()),
            ostemplate: Some("local:vztmpl/none.tar.gz".into()),
            buckets: Some(vec!["nope".into()]),
            extra_packages: Some(vec!["brew:wget".into()]),
            scripts: Some(vec![ScriptChoice {
                name: "99-x.sh".into(),
                enabled: true,
            }]),
            tags: Some(vec!["bad tag".into()]),
            ..Default::default()
        };
        let errors = resolve(&req, Some(&template()), &env()).unwrap_err();
        let fields: BTreeSet<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        for f in [
            "hostname",
            "node",
            "vmid",
            "memory",
            "storage",
            "bridge",
            "ip",
            "gateway",
            "ostemplate",
            "buckets",
            "extra_packages",
            "scripts",
            "tags",
        ] {
            assert!(fields.contains(f), "{f} missing from {errors:?}");
        }
    }

    #[test]
    fn hostnames_follow_rfc_1123() {
        for ok in ["a", "web-01", "a.b.c", "x1"] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a..b", &"x".repeat(64)] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_request_fields_are_rejected() {
        let err = serde_json::from_str::<CreateRequest>(r#"{"hostname":"a","colour":"red"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
