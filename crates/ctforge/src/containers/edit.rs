//! The configuration edit of a container: what a user may change (cores, memory, swap, start on
//! boot and startup order, tags, description, DNS, network interfaces, mount points), turned
//! into one `PUT /nodes/{node}/lxc/{vmid}/config` over the current configuration, and the diff
//! the user reviews before applying it.
//!
//! [`ConfigEdit::plan`] is pure: it takes the current configuration (typed, for the interfaces
//! and mount points it merges into, and as key → value text, for the diff) and returns the
//! update and its [`Change`]s, or the field errors. Interfaces keep what the form does not
//! show (MAC address, IPv6, …); a mount point on a storage is `STORAGE:GiB` (Proxmox allocates
//! it), a bind mount is a host path, which only root@pam may set (pve-container's rule).

use std::collections::BTreeMap;

use ctforge_pve::types::{
    IpConfig, LxcConfig, LxcConfigUpdate, MountPoint, NetConfig, PendingEntry,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Highest `netN` index Proxmox accepts for containers.
pub const MAX_NET: u8 = 31;
/// Highest `mpN` index Proxmox accepts.
pub const MAX_MP: u16 = 255;

/// `startup`: boot order and delays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Startup {
    /// Boot order (lower starts first).
    pub order: Option<u32>,
    /// Seconds to wait after starting this CT.
    pub up: Option<u32>,
    /// Seconds to wait for this CT to shut down.
    pub down: Option<u32>,
}

impl Startup {
    fn to_value(&self) -> Option<String> {
        let parts: Vec<String> = [("order", self.order), ("up", self.up), ("down", self.down)]
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// A change of one network interface (`netN`); fields left out keep their current value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetEdit {
    /// Remove the interface.
    #[serde(default)]
    pub remove: bool,
    /// Interface name in the CT (new interfaces: `eth<N>`).
    pub name: Option<String>,
    /// Host bridge (new interfaces: `vmbr0`).
    pub bridge: Option<String>,
    /// IPv4: `dhcp`, `manual` or an address with prefix (`192.0.2.10/24`).
    pub ip: Option<String>,
    /// IPv4 gateway; empty removes it.
    pub gw: Option<String>,
    /// VLAN tag (1–4094); 0 removes it.
    pub tag: Option<u16>,
    /// Proxmox firewall on this interface.
    pub firewall: Option<bool>,
    /// Rate limit in MB/s; 0 removes it.
    pub rate: Option<f64>,
    /// MTU (576–65535); 0 removes it.
    pub mtu: Option<u16>,
}

/// A change of one mount point (`mpN`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountEdit {
    /// Remove the mount point (a volume on a storage becomes `unusedN`, as in Proxmox).
    #[serde(default)]
    pub remove: bool,
    /// New volume on this storage (with `size_gib`).
    pub storage: Option<String>,
    /// Size of a new volume in GiB.
    pub size_gib: Option<u32>,
    /// Bind mount of this host directory (root@pam only).
    pub host_path: Option<String>,
    /// Path inside the CT (required for a new mount point).
    pub path: Option<String>,
    /// Include in backups.
    pub backup: Option<bool>,
    /// Read-only.
    pub ro: Option<bool>,
}

/// An edit of a container's configuration (`PUT /api/v1/containers/{id}/config`); keys left
/// out stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigEdit {
    /// CPU cores (1–8192).
    pub cores: Option<u32>,
    /// Memory in MiB (at least 16).
    pub memory: Option<u64>,
    /// Swap in MiB.
    pub swap: Option<u64>,
    /// Start on boot of the node.
    pub onboot: Option<bool>,
    /// Boot order and delays; all fields empty removes it.
    pub startup: Option<Startup>,
    /// Tags (letters, digits, `-`, `_`, `.`, `+`); empty removes them.
    pub tags: Option<Vec<String>>,
    /// Description (notes); empty removes it.
    pub description: Option<String>,
    /// DNS servers, space-separated; empty uses the node's.
    pub nameserver: Option<String>,
    /// DNS search domain; empty uses the node's.
    pub searchdomain: Option<String>,
    /// Network interfaces by index (`{"0": {...}}` is `net0`).
    #[serde(default)]
    pub net: BTreeMap<u8, NetEdit>,
    /// Mount points by index (`{"0": {...}}` is `mp0`).
    #[serde(default)]
    pub mp: BTreeMap<u16, MountEdit>,
    /// Apply only if the configuration still has this digest (from a preview).
    pub digest: Option<String>,
}

/// One changed key, as the review shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// Config key (`memory`, `net0`, …).
    pub key: String,
    /// The value now (pending value included); none when the key is new.
    pub current: Option<String>,
    /// The value after the change; none when the key is removed.
    pub new: Option<String>,
}

/// A key whose change waits for the next start of the CT (what Proxmox shows in red).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PendingChange {
    /// Config key.
    pub key: String,
    /// The running value.
    pub current: Option<String>,
    /// The value from the next start; none when the key is deleted then.
    pub pending: Option<String>,
}

/// The keys whose change waits for a restart, from `GET …/pending`.
pub fn pending_changes(entries: &[PendingEntry]) -> Vec<PendingChange> {
    entries
        .iter()
        .filter(|e| e.is_pending())
        .map(|e| PendingChange {
            key: e.key.clone(),
            current: e.value.clone(),
            pending: if e.delete.is_some_and(|d| d > 0) {
                None
            } else {
                e.pending.clone()
            },
        })
        .collect()
}

/// The effective value of each key (pending value when there is one; deleted keys left out).
pub fn effective_values(entries: &[PendingEntry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter(|e| e.delete.is_none_or(|d| d == 0))
        .filter_map(|e| {
            e.pending
                .clone()
                .or_else(|| e.value.clone())
                .map(|v| (e.key.clone(), v))
        })
        .collect()
}

/// What [`ConfigEdit::plan`] (a container) and [`ConfigEdit::plan_qemu`] (a VM) produce.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The container's request to send.
    pub update: LxcConfigUpdate,
    /// The same change as `key=value` pairs (a VM's `PUT …/qemu/{vmid}/config`; the digest,
    /// when given, is one of them).
    pub sets: Vec<(String, String)>,
    /// Keys to delete.
    pub deletes: Vec<String>,
    /// What changes, in key order.
    pub changes: Vec<Change>,
    /// Whether a mount point is a bind mount (only root@pam).
    pub bind_mounts: Vec<String>,
    /// Storages new volumes are allocated on.
    pub new_volumes_on: Vec<String>,
}

fn field(fields: &mut Vec<(String, String)>, name: impl Into<String>, text: impl Into<String>) {
    fields.push((name.into(), text.into()));
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
}

fn parse_ip(text: &str) -> Option<IpConfig> {
    match text {
        "dhcp" => Some(IpConfig::Dhcp),
        "manual" => Some(IpConfig::Manual),
        cidr => {
            let (addr, prefix) = cidr.split_once('/')?;
            let ok = addr.parse::<std::net::Ipv4Addr>().is_ok()
                && prefix.parse::<u8>().is_ok_and(|p| p <= 32);
            ok.then(|| IpConfig::Static(cidr.to_owned()))
        }
    }
}

impl ConfigEdit {
    /// Whether the edit changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.cores.is_none()
            && self.memory.is_none()
            && self.swap.is_none()
            && self.onboot.is_none()
            && self.startup.is_none()
            && self.tags.is_none()
            && self.description.is_none()
            && self.nameserver.is_none()
            && self.searchdomain.is_none()
            && self.net.is_empty()
            && self.mp.is_empty()
    }

    /// The update over `config` (typed, pending values merged) and the diff against `values`
    /// (key → effective text); 422 naming each invalid field.
    pub fn plan(
        &self,
        config: &LxcConfig,
        values: &BTreeMap<String, String>,
    ) -> Result<Plan, AppError> {
        let mut fields = Vec::new();
        let mut sets: Vec<(String, String)> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        let mut bind_mounts = Vec::new();
        let mut new_volumes_on = Vec::new();
        if let Some(s) = self.swap {
            sets.push(("swap".into(), s.to_string()));
        }
        self.common_keys(&mut sets, &mut deletes, &mut fields);
        self.guest_devices(
            config,
            &mut sets,
            &mut deletes,
            &mut fields,
            &mut bind_mounts,
            &mut new_volumes_on,
        );
        self.finish(sets, deletes, fields, values, bind_mounts, new_volumes_on)
    }

    /// The update of a VM's configuration over `values` (key → effective text): the keys a
    /// container and a VM share (cores, memory, start on boot and order, tags, description,
    /// cloud-init's DNS); swap, interfaces and mount points are a container's, so an edit
    /// naming them is refused field by field (a VM's disks grow through resize, its
    /// interfaces are edited in Proxmox).
    pub fn plan_qemu(&self, values: &BTreeMap<String, String>) -> Result<Plan, AppError> {
        let mut fields = Vec::new();
        let mut sets: Vec<(String, String)> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        if self.swap.is_some() {
            field(&mut fields, "swap", "a VM has no swap setting in Proxmox");
        }
        for idx in self.net.keys() {
            field(
                &mut fields,
                format!("net{idx}"),
                "a VM's network interfaces are not edited here; use Proxmox",
            );
        }
        for idx in self.mp.keys() {
            field(
                &mut fields,
                format!("mp{idx}"),
                "a VM has disks, not mount points; grow a disk with resize",
            );
        }
        self.common_keys(&mut sets, &mut deletes, &mut fields);
        self.finish(sets, deletes, fields, values, Vec::new(), Vec::new())
    }

    /// The keys containers and VMs share, with the same meaning and text in Proxmox.
    fn common_keys(
        &self,
        sets: &mut Vec<(String, String)>,
        deletes: &mut Vec<String>,
        fields: &mut Vec<(String, String)>,
    ) {
        if let Some(c) = self.cores {
            if (1..=8192).contains(&c) {
                sets.push(("cores".into(), c.to_string()));
            } else {
                field(fields, "cores", "cores must be between 1 and 8192");
            }
        }
        if let Some(m) = self.memory {
            if m >= 16 {
                sets.push(("memory".into(), m.to_string()));
            } else {
                field(fields, "memory", "memory must be at least 16 MiB");
            }
        }
        if let Some(b) = self.onboot {
            sets.push(("onboot".into(), if b { "1" } else { "0" }.into()));
        }
        if let Some(st) = &self.startup {
            match st.to_value() {
                Some(v) => sets.push(("startup".into(), v)),
                None => deletes.push("startup".into()),
            }
        }
        if let Some(tags) = &self.tags {
            let tags: Vec<&str> = tags
                .iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .collect();
            if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
                field(
                    fields,
                    "tags",
                    format!("tag {bad:?} may only contain letters, digits, -, _, . and +"),
                );
            } else if tags.is_empty() {
                deletes.push("tags".into());
            } else {
                sets.push(("tags".into(), tags.join(";")));
            }
        }
        for (key, value) in [
            ("description", &self.description),
            ("nameserver", &self.nameserver),
            ("searchdomain", &self.searchdomain),
        ] {
            if let Some(v) = value {
                let v = if key == "description" {
                    v.as_str()
                } else {
                    v.trim()
                };
                if v.is_empty() {
                    deletes.push(key.into());
                } else if key != "description" && v.chars().any(|c| c.is_control()) {
                    field(fields, key, format!("{key} must be one line"));
                } else {
                    sets.push((key.into(), v.to_owned()));
                }
            }
        }
    }

    /// A container's interfaces and mount points, merged into what it has.
    fn guest_devices(
        &self,
        config: &LxcConfig,
        sets: &mut Vec<(String, String)>,
        deletes: &mut Vec<String>,
        fields: &mut Vec<(String, String)>,
        bind_mounts: &mut Vec<String>,
        new_volumes_on: &mut Vec<String>,
    ) {
        for (idx, edit) in &self.net {
            let key = format!("net{idx}");
            if *idx > MAX_NET {
                field(
                    fields,
                    &key,
                    format!("network interfaces go up to net{MAX_NET}"),
                );
                continue;
            }
            if edit.remove {
                if config.nets.contains_key(idx) {
                    deletes.push(key);
                }
                continue;
            }
            match merge_net(*idx, config.nets.get(idx), edit) {
                Ok(net) => sets.push((key, net.to_string())),
                Err(e) => field(fields, key, e),
            }
        }
        for (idx, edit) in &self.mp {
            let key = format!("mp{idx}");
            if *idx > MAX_MP {
                field(fields, &key, format!("mount points go up to mp{MAX_MP}"));
                continue;
            }
            if edit.remove {
                if config.mounts.contains_key(idx) {
                    deletes.push(key);
                }
                continue;
            }
            match merge_mount(config.mounts.get(idx), edit) {
                Ok((mp, kind)) => {
                    match kind {
                        Volume::Bind => bind_mounts.push(key.clone()),
                        Volume::New(storage) => new_volumes_on.push(storage),
                        Volume::Existing => {}
                    }
                    sets.push((key, mp.to_string()));
                }
                Err(e) => field(fields, key, e),
            }
        }
    }

    /// Field errors, else the update of what differs from `values` and its diff.
    fn finish(
        &self,
        mut sets: Vec<(String, String)>,
        mut deletes: Vec<String>,
        fields: Vec<(String, String)>,
        values: &BTreeMap<String, String>,
        bind_mounts: Vec<String>,
        new_volumes_on: Vec<String>,
    ) -> Result<Plan, AppError> {
        if !fields.is_empty() {
            return Err(AppError::Invalid {
                message: "the configuration change is not valid".into(),
                fields,
            });
        }
        // Only what differs from now is sent, so the diff and the request agree.
        sets.retain(|(k, v)| values.get(k) != Some(v));
        deletes.retain(|k| values.contains_key(k));
        let mut changes: Vec<Change> = sets
            .iter()
            .map(|(k, v)| Change {
                key: k.clone(),
                current: values.get(k).cloned(),
                new: Some(v.clone()),
            })
            .chain(deletes.iter().map(|k| Change {
                key: k.clone(),
                current: values.get(k).cloned(),
                new: None,
            }))
            .collect();
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        let mut update = LxcConfigUpdate::new();
        for (k, v) in &sets {
            update = update.set(k.clone(), v.clone());
        }
        for k in &deletes {
            update = update.delete(k.clone());
        }
        if let Some(d) = &self.digest {
            update = update.digest(d.clone());
            sets.push(("digest".into(), d.clone()));
        }
        Ok(Plan {
            update,
            sets,
            deletes,
            changes,
            bind_mounts,
            new_volumes_on,
        })
    }
}

fn merge_net(idx: u8, current: Option<&NetConfig>, edit: &NetEdit) -> Result<NetConfig, String> {
    let mut net = match current {
        Some(n) => n.clone(),
        None => NetConfig::new(
            edit.name.clone().unwrap_or_else(|| format!("eth{idx}")),
            edit.bridge.clone().unwrap_or_else(|| "vmbr0".to_owned()),
            IpConfig::Dhcp,
        ),
    };
    if let Some(name) = &edit.name {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(format!("interface name {name:?} is not valid"));
        }
        net.name = name.clone();
    }
    if let Some(bridge) = &edit.bridge {
        if bridge.is_empty()
            || !bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!("bridge {bridge:?} is not valid"));
        }
        net.bridge = Some(bridge.clone());
    }
    if let Some(ip) = &edit.ip {
        let ip = ip.trim();
        net.ip = Some(parse_ip(ip).ok_or_else(|| {
            format!("ip {ip:?} must be dhcp, manual or an IPv4 address with prefix (192.0.2.10/24)")
        })?);
    }
    if let Some(gw) = &edit.gw {
        let gw = gw.trim();
        if gw.is_empty() {
            net.gw = None;
        } else if gw.parse::<std::net::Ipv4Addr>().is_ok() {
            net.gw = Some(gw.to_owned());
        } else {
            return Err(format!("gateway {gw:?} is not an IPv4 address"));
        }
    }
    if net.gw.is_some() && !matches!(net.ip, Some(IpConfig::Static(_))) {
        return Err("a gateway needs a static IPv4 address".into());
    }
    match edit.tag {
        Some(0) => net.tag = None,
        Some(t) if t <= 4094 => net.tag = Some(t),
        Some(t) => return Err(format!("VLAN tag {t} is out of range (1-4094)")),
        None => {}
    }
    if let Some(f) = edit.firewall {
        net.firewall = Some(f);
    }
    match edit.rate {
        Some(0.0) => net.rate = None,
        Some(r) if r.is_finite() && r > 0.0 => net.rate = Some(r),
        Some(_) => return Err("rate must be a positive number of MB/s".into()),
        None => {}
    }
    match edit.mtu {
        Some(0) => net.mtu = None,
        Some(m) if m >= 576 => net.mtu = Some(m),
        Some(m) => return Err(format!("MTU {m} is too small (at least 576)")),
        None => {}
    }
    Ok(net)
}

enum Volume {
    Existing,
    New(String),
    Bind,
}

fn merge_mount(
    current: Option<&MountPoint>,
    edit: &MountEdit,
) -> Result<(MountPoint, Volume), String> {
    let (mut mp, kind) = match (current, &edit.storage, &edit.host_path) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(
                "the volume of an existing mount point cannot be replaced; remove it and add a new one"
                    .into(),
            );
        }
        (Some(m), None, None) => (m.clone(), Volume::Existing),
        (None, Some(_), Some(_)) => {
            return Err("give either a storage or a host path, not both".into());
        }
        (None, Some(storage), None) => {
            let size = edit.size_gib.unwrap_or(0);
            if size == 0 {
                return Err("a new volume needs its size in GiB".into());
            }
            if storage.is_empty() || storage.contains([':', ',', '=', '/']) {
                return Err(format!("storage {storage:?} is not valid"));
            }
            let mp = MountPoint {
                volume: format!("{storage}:{size}"),
                ..MountPoint::default()
            };
            (mp, Volume::New(storage.clone()))
        }
        (None, None, Some(host)) => {
            if !host.starts_with('/') || host.contains(',') || host.contains("..") {
                return Err(format!("host path {host:?} must be an absolute path"));
            }
            let mp = MountPoint {
                volume: host.clone(),
                ..MountPoint::default()
            };
            (mp, Volume::Bind)
        }
        (None, None, None) => {
            return Err("a new mount point needs a storage or a host path".into());
        }
    };
    if let Some(path) = &edit.path {
        if !path.starts_with('/') || path == "/" || path.contains(',') || path.contains("..") {
            return Err(format!(
                "path {path:?} must be an absolute path other than /"
            ));
        }
        mp.mp = path.clone();
    }
    if mp.mp.is_empty() {
        return Err("a mount point needs a path inside the CT".into());
    }
    if let Some(b) = edit.backup {
        mp.backup = Some(b);
    }
    if let Some(ro) = edit.ro {
        mp.options.ro = Some(ro);
    }
    Ok((mp, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (LxcConfig, BTreeMap<String, String>) {
        let mut c = LxcConfig::default();
        let net0: NetConfig = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"
            .parse()
            .expect("net0");
        c.nets.insert(0, net0.clone());
        c.memory = Some(512);
        let mut v = BTreeMap::new();
        v.insert("memory".to_owned(), "512".to_owned());
        v.insert("net0".to_owned(), net0.to_string());
        (c, v)
    }

    #[test]
    fn only_real_changes_are_sent_and_the_mac_is_kept() {
        let (c, v) = config();
        let edit = ConfigEdit {
            memory: Some(512),
            cores: Some(2),
            net: BTreeMap::from([(
                0,
                NetEdit {
                    ip: Some("192.0.2.10/24".into()),
                    gw: Some("192.0.2.1".into()),
                    tag: Some(20),
                    ..NetEdit::default()
                },
            )]),
            ..ConfigEdit::default()
        };
        let plan = edit.plan(&c, &v).expect("plan");
        let keys: Vec<&str> = plan.changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["cores", "net0"]);
        let net0 = plan.changes[1].new.clone().unwrap_or_default();
        assert!(net0.contains("hwaddr=BC:24:11:00:00:01"), "{net0}");
        assert!(
            net0.contains("tag=20") && net0.contains("gw=192.0.2.1"),
            "{net0}"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let (c, v) = config();
        let edit = ConfigEdit {
            memory: Some(4),
            net: BTreeMap::from([(
                1,
                NetEdit {
                    ip: Some("dhcp".into()),
                    gw: Some("192.0.2.1".into()),
                    ..NetEdit::default()
                },
            )]),
            mp: BTreeMap::from([(
                0,
                MountEdit {
                    storage: Some("local-lvm".into()),
                    ..MountEdit::default()
                },
            )]),
            ..ConfigEdit::default()
        };
        let Err(AppError::Invalid { fields, .. }) = edit.plan(&c, &v) else {
            panic!("expected field errors");
        };
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["memory", "net1", "mp0"]);
    }

    #[test]
    fn bind_mounts_are_flagged() {
        let (c, v) = config();
        let edit = ConfigEdit {
            mp: BTreeMap::from([(
                1,
                MountEdit {
                    host_path: Some("/srv/media".into()),
                    path: Some("/media".into()),
                    ..MountEdit::default()
                },
            )]),
            ..ConfigEdit::default()
        };
        let plan = edit.plan(&c, &v).expect("plan");
        assert_eq!(plan.bind_mounts, ["mp1"]);
    }
}
