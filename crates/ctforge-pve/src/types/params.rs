//! Request parameter types: [`LxcCreateParams`] (create), [`LxcConfigUpdate`]
//! (config PUT) and [`DeleteOptions`] (destroy), serialised exactly as PVE
//! expects form parameters: booleans `1`/`0`, property strings printed by
//! their `Display`, tags joined with `;`, indexed keys as `net0`, `mp3`...

use std::collections::BTreeMap;

use crate::auth::Secret;

use super::propstring::{Features, MountPoint, NetConfig, RootFs};

fn b01(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// Parameters of `POST /nodes/{node}/lxc` covering every option ctforge
/// exposes. Build with [`LxcCreateParams::new`] and the chained setters.
///
/// `Debug` redacts the root password.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcCreateParams {
    /// CT id (100..999999999).
    pub vmid: u32,
    /// OS template volume id, e.g. `local:vztmpl/debian-13-standard_13.6-1_amd64.tar.zst`.
    pub ostemplate: String,
    /// Hostname.
    pub hostname: Option<String>,
    /// Root password (min. 5 characters); applied in the CT, never stored.
    pub password: Option<Secret>,
    /// Authorized SSH keys for root, one per line.
    pub ssh_public_keys: Option<String>,
    /// OS type override.
    pub ostype: Option<String>,
    /// Cores.
    pub cores: Option<u32>,
    /// Memory, MiB.
    pub memory: Option<u64>,
    /// Swap, MiB.
    pub swap: Option<u64>,
    /// Root filesystem (`RootFs::allocate("local-lvm", 8)` → `local-lvm:8`).
    pub rootfs: Option<RootFs>,
    /// Network interfaces by index (`0` → `net0`).
    pub nets: BTreeMap<u8, NetConfig>,
    /// Mount points by index (`0` → `mp0`).
    pub mounts: BTreeMap<u16, MountPoint>,
    /// DNS servers, space separated.
    pub nameserver: Option<String>,
    /// DNS search domains.
    pub searchdomain: Option<String>,
    /// Unprivileged CT (PVE's create default is 1).
    pub unprivileged: Option<bool>,
    /// Feature flags (non-nesting flags need root@pam).
    pub features: Option<Features>,
    /// Tags (sent `;`-joined).
    pub tags: Vec<String>,
    /// Start after create.
    pub start: Option<bool>,
    /// Start on boot.
    pub onboot: Option<bool>,
    /// Pool to add the CT to.
    pub pool: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Default storage (for rootfs without storage).
    pub storage: Option<String>,
}

impl LxcCreateParams {
    /// Required parameters: VMID and OS template volume id.
    pub fn new(vmid: u32, ostemplate: impl Into<String>) -> Self {
        LxcCreateParams {
            vmid,
            ostemplate: ostemplate.into(),
            ..Default::default()
        }
    }
    /// Set the hostname.
    pub fn hostname(mut self, v: impl Into<String>) -> Self {
        self.hostname = Some(v.into());
        self
    }
    /// Set the root password.
    pub fn password(mut self, v: impl Into<String>) -> Self {
        self.password = Some(Secret::new(v));
        self
    }
    /// Set the root SSH public keys (one per line).
    pub fn ssh_public_keys(mut self, v: impl Into<String>) -> Self {
        self.ssh_public_keys = Some(v.into());
        self
    }
    /// Set the OS type.
    pub fn ostype(mut self, v: impl Into<String>) -> Self {
        self.ostype = Some(v.into());
        self
    }
    /// Set cores.
    pub fn cores(mut self, v: u32) -> Self {
        self.cores = Some(v);
        self
    }
    /// Set memory in MiB.
    pub fn memory(mut self, mib: u64) -> Self {
        self.memory = Some(mib);
        self
    }
    /// Set swap in MiB.
    pub fn swap(mut self, mib: u64) -> Self {
        self.swap = Some(mib);
        self
    }
    /// Set the root filesystem.
    pub fn rootfs(mut self, v: RootFs) -> Self {
        self.rootfs = Some(v);
        self
    }
    /// Set `net{index}`.
    pub fn net(mut self, index: u8, v: NetConfig) -> Self {
        self.nets.insert(index, v);
        self
    }
    /// Set `mp{index}`.
    pub fn mount(mut self, index: u16, v: MountPoint) -> Self {
        self.mounts.insert(index, v);
        self
    }
    /// Set DNS servers.
    pub fn nameserver(mut self, v: impl Into<String>) -> Self {
        self.nameserver = Some(v.into());
        self
    }
    /// Set DNS search domain.
    pub fn searchdomain(mut self, v: impl Into<String>) -> Self {
        self.searchdomain = Some(v.into());
        self
    }
    /// Set unprivileged.
    pub fn unprivileged(mut self, v: bool) -> Self {
        self.unprivileged = Some(v);
        self
    }
    /// Set feature flags.
    pub fn features(mut self, v: Features) -> Self {
        self.features = Some(v);
        self
    }
    /// Add a tag.
    pub fn tag(mut self, v: impl Into<String>) -> Self {
        self.tags.push(v.into());
        self
    }
    /// Start after create.
    pub fn start(mut self, v: bool) -> Self {
        self.start = Some(v);
        self
    }
    /// Start on boot.
    pub fn onboot(mut self, v: bool) -> Self {
        self.onboot = Some(v);
        self
    }
    /// Add to a pool.
    pub fn pool(mut self, v: impl Into<String>) -> Self {
        self.pool = Some(v.into());
        self
    }
    /// Set the description.
    pub fn description(mut self, v: impl Into<String>) -> Self {
        self.description = Some(v.into());
        self
    }
    /// Set the default storage.
    pub fn storage(mut self, v: impl Into<String>) -> Self {
        self.storage = Some(v.into());
        self
    }

    /// The form parameters, in a stable order. Contains the password in
    /// clear text: never log the result (use [`crate::RequestSpec`]'s
    /// redacting `Debug`).
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::with_capacity(24);
        let mut put = |k: &str, v: String| p.push((k.to_string(), v));
        put("vmid", self.vmid.to_string());
        put("ostemplate", self.ostemplate.clone());
        if let Some(v) = &self.hostname {
            put("hostname", v.clone());
        }
        if let Some(v) = &self.password {
            put("password", v.expose().to_string());
        }
        if let Some(v) = &self.ssh_public_keys {
            put("ssh-public-keys", v.clone());
        }
        if let Some(v) = &self.ostype {
            put("ostype", v.clone());
        }
        if let Some(v) = self.cores {
            put("cores", v.to_string());
        }
        if let Some(v) = self.memory {
            put("memory", v.to_string());
        }
        if let Some(v) = self.swap {
            put("swap", v.to_string());
        }
        if let Some(v) = &self.rootfs {
            put("rootfs", v.to_string());
        }
        for (i, n) in &self.nets {
            put(&format!("net{i}"), n.to_string());
        }
        for (i, m) in &self.mounts {
            put(&format!("mp{i}"), m.to_string());
        }
        if let Some(v) = &self.nameserver {
            put("nameserver", v.clone());
        }
        if let Some(v) = &self.searchdomain {
            put("searchdomain", v.clone());
        }
        if let Some(v) = self.unprivileged {
            put("unprivileged", b01(v));
        }
        if let Some(v) = &self.features
            && !v.is_empty()
        {
            put("features", v.to_string());
        }
        if !self.tags.is_empty() {
            put("tags", self.tags.join(";"));
        }
        if let Some(v) = self.start {
            put("start", b01(v));
        }
        if let Some(v) = self.onboot {
            put("onboot", b01(v));
        }
        if let Some(v) = &self.pool {
            put("pool", v.clone());
        }
        if let Some(v) = &self.description {
            put("description", v.clone());
        }
        if let Some(v) = &self.storage {
            put("storage", v.clone());
        }
        p
    }
}

/// Changes for `PUT …/lxc/{vmid}/config`: typed setters for common keys,
/// [`LxcConfigUpdate::set`] for anything else, a `delete` list and the
/// optional `digest` for optimistic locking.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcConfigUpdate {
    set: Vec<(String, String)>,
    delete: Vec<String>,
    digest: Option<String>,
}

impl LxcConfigUpdate {
    /// An empty update.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set a raw key (replaces an earlier value for the same key).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.set.retain(|(k, _)| *k != key);
        self.set.push((key, value.into()));
        self
    }
    /// Set cores.
    pub fn cores(self, v: u32) -> Self {
        self.set("cores", v.to_string())
    }
    /// Set memory in MiB.
    pub fn memory(self, mib: u64) -> Self {
        self.set("memory", mib.to_string())
    }
    /// Set swap in MiB.
    pub fn swap(self, mib: u64) -> Self {
        self.set("swap", mib.to_string())
    }
    /// Set hostname.
    pub fn hostname(self, v: &str) -> Self {
        self.set("hostname", v)
    }
    /// Set description.
    pub fn description(self, v: &str) -> Self {
        self.set("description", v)
    }
    /// Set tags.
    pub fn tags(self, tags: &[&str]) -> Self {
        self.set("tags", tags.join(";"))
    }
    /// Set onboot.
    pub fn onboot(self, v: bool) -> Self {
        self.set("onboot", b01(v))
    }
    /// Set features.
    pub fn features(self, v: &Features) -> Self {
        self.set("features", v.to_string())
    }
    /// Set `net{index}`.
    pub fn net(self, index: u8, v: &NetConfig) -> Self {
        self.set(format!("net{index}"), v.to_string())
    }
    /// Set `mp{index}`.
    pub fn mount(self, index: u16, v: &MountPoint) -> Self {
        self.set(format!("mp{index}"), v.to_string())
    }
    /// Set DNS servers.
    pub fn nameserver(self, v: &str) -> Self {
        self.set("nameserver", v)
    }
    /// Set DNS search domain.
    pub fn searchdomain(self, v: &str) -> Self {
        self.set("searchdomain", v)
    }
    /// Delete a key.
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.delete.push(key.into());
        self
    }
    /// Only apply if the config still has this digest.
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }
    /// True when nothing would be changed.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
    /// The form parameters.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut p = self.set.clone();
        if !self.delete.is_empty() {
            p.push(("delete".into(), self.delete.join(",")));
        }
        if let Some(d) = &self.digest {
            p.push(("digest".into(), d.clone()));
        }
        p
    }
}

/// Options of `DELETE /nodes/{node}/lxc/{vmid}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteOptions {
    /// Also remove from backup/replication/HA configuration.
    pub purge: bool,
    /// Destroy even if running.
    pub force: bool,
    /// Also destroy unreferenced disks with this VMID.
    pub destroy_unreferenced_disks: bool,
}

impl DeleteOptions {
    /// The query parameters (only the flags that are set).
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.purge {
            p.push(("purge".into(), "1".into()));
        }
        if self.force {
            p.push(("force".into(), "1".into()));
        }
        if self.destroy_unreferenced_disks {
            p.push(("destroy-unreferenced-disks".into(), "1".into()));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::IpConfig;

    #[test]
    fn create_params_form() {
        let p = LxcCreateParams::new(101, "local:vztmpl/debian-13-standard_13.6-1_amd64.tar.zst")
            .hostname("web1")
            .password("s3cret!")
            .cores(2)
            .memory(1024)
            .swap(512)
            .rootfs(RootFs::allocate("local-lvm", 8))
            .net(0, NetConfig::new("eth0", "vmbr0", IpConfig::Dhcp))
            .unprivileged(true)
            .features(Features {
                nesting: Some(true),
                ..Default::default()
            })
            .tag("web")
            .tag("prod")
            .start(false);
        let f = p.to_form();
        let get = |k: &str| f.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("vmid"), Some("101"));
        assert_eq!(get("rootfs"), Some("local-lvm:8"));
        assert_eq!(get("net0"), Some("name=eth0,bridge=vmbr0,ip=dhcp"));
        assert_eq!(get("unprivileged"), Some("1"));
        assert_eq!(get("features"), Some("nesting=1"));
        assert_eq!(get("tags"), Some("web;prod"));
        assert_eq!(get("start"), Some("0"));
        assert_eq!(get("password"), Some("s3cret!"));
        assert!(!format!("{p:?}").contains("s3cret!"));
    }

    #[test]
    fn config_update_form() {
        let u = LxcConfigUpdate::new()
            .memory(2048)
            .memory(4096)
            .delete("mp1")
            .delete("nameserver")
            .digest("abc");
        assert_eq!(
            u.to_form(),
            vec![
                ("memory".to_string(), "4096".to_string()),
                ("delete".to_string(), "mp1,nameserver".to_string()),
                ("digest".to_string(), "abc".to_string()),
            ]
        );
    }
}

/// Parameters of `POST /nodes/{node}/lxc/{vmid}/clone`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloneParams {
    /// VMID of the new CT.
    pub newid: u32,
    /// Hostname of the new CT.
    pub hostname: Option<String>,
    /// Description of the new CT.
    pub description: Option<String>,
    /// `Some(true)`: full copy; `Some(false)`: linked clone (templates only); `None`:
    /// Proxmox's default (linked for a template, full otherwise).
    pub full: Option<bool>,
    /// Pool of the new CT.
    pub pool: Option<String>,
    /// Clone from this snapshot.
    pub snapname: Option<String>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    /// Target node (shared storage only).
    pub target: Option<String>,
}

impl CloneParams {
    /// The form of qemu-server's `POST …/qemu/{vmid}/clone` (the new VM's `name` where a
    /// container has `hostname`; `full` as `1`/`0`), in a stable order.
    pub fn to_qemu_form(&self) -> Vec<(String, String)> {
        let mut out = vec![("newid".to_owned(), self.newid.to_string())];
        let full = self.full.map(|f| if f { "1" } else { "0" }.to_owned());
        for (k, v) in [
            ("name", &self.hostname),
            ("description", &self.description),
            ("full", &full),
            ("pool", &self.pool),
            ("snapname", &self.snapname),
            ("storage", &self.storage),
            ("target", &self.target),
        ] {
            if let Some(v) = v {
                out.push((k.to_owned(), v.clone()));
            }
        }
        out
    }

    /// The form parameters, in a stable order.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut out = vec![("newid".to_owned(), self.newid.to_string())];
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_owned(), v.clone()));
            }
        };
        opt("hostname", &self.hostname);
        opt("description", &self.description);
        opt("pool", &self.pool);
        opt("snapname", &self.snapname);
        opt("storage", &self.storage);
        opt("target", &self.target);
        if let Some(full) = self.full {
            out.push(("full".to_owned(), b01(full)));
        }
        out
    }
}
