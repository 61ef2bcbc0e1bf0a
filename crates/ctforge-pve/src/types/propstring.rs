//! Typed Proxmox property strings: `net[n]`, `rootfs`, `mp[n]`, `features`.
//!
//! A property string is a comma-separated list of `key=value` pairs where the
//! schema's `default_key` may appear without `key=` (e.g. the volume in
//! `local-lvm:vm-101-disk-0,size=8G`). PVE prints the default key first, then
//! required keys, then the rest sorted alphabetically (REFERENCE.md §1.8).
//!
//! The types here parse with [`FromStr`] and print with [`Display`]. Printing
//! keeps the key order of the parsed input (so a value read from a config
//! round-trips byte for byte); keys added afterwards, and values built from
//! scratch, are printed in PVE's canonical order. Unknown sub-keys are kept in
//! `extra`, in input order, and printed back.

use std::fmt::{self, Display};
use std::str::FromStr;

use super::de::parse_bool;

/// Error returned when a property string or one of its values is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid property string: {0}")]
pub struct PropertyError(pub String);

/// The key order seen when parsing; ignored by equality.
#[derive(Debug, Clone, Default)]
pub struct KeyOrder(Vec<String>);

impl Eq for KeyOrder {}

impl PartialEq for KeyOrder {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// Split `a=b,c,d=e` into `(Some("a"),"b"), (None,"c"), (Some("d"),"e")`.
pub(crate) fn split_pairs(s: &str) -> Vec<(Option<&str>, &str)> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (Some(k.trim()), v.trim()),
            None => (None, p),
        })
        .collect()
}

/// Print entries honouring a parsed key order, then PVE's canonical order.
fn write_ordered(
    f: &mut fmt::Formatter<'_>,
    entries: Vec<(String, String)>,
    default_key: Option<&str>,
    required: &[&str],
    order: &KeyOrder,
) -> fmt::Result {
    let mut used = vec![false; entries.len()];
    let mut first = true;
    let mut emit = |f: &mut fmt::Formatter<'_>, key: Option<&str>, value: &str| -> fmt::Result {
        if !first {
            f.write_str(",")?;
        }
        first = false;
        match key {
            Some(k) => write!(f, "{k}={value}"),
            None => f.write_str(value),
        }
    };
    for k in &order.0 {
        let (wanted, positional) = if k.is_empty() {
            match default_key {
                Some(d) => (d, true),
                None => continue,
            }
        } else {
            (k.as_str(), false)
        };
        if let Some(i) = (0..entries.len()).find(|&i| !used[i] && entries[i].0 == wanted) {
            used[i] = true;
            let key = if positional {
                None
            } else {
                Some(entries[i].0.as_str())
            };
            emit(f, key, &entries[i].1)?;
        }
    }
    // canonical: default key (positional), required keys, rest sorted.
    if let Some(d) = default_key
        && let Some(i) = (0..entries.len()).find(|&i| !used[i] && entries[i].0 == d)
    {
        used[i] = true;
        emit(f, None, &entries[i].1)?;
    }
    for r in required {
        if let Some(i) = (0..entries.len()).find(|&i| !used[i] && entries[i].0 == *r) {
            used[i] = true;
            emit(f, Some(r), &entries[i].1)?;
        }
    }
    let mut rest: Vec<usize> = (0..entries.len()).filter(|&i| !used[i]).collect();
    rest.sort_by(|&a, &b| entries[a].0.cmp(&entries[b].0));
    for i in rest {
        emit(f, Some(entries[i].0.as_str()), &entries[i].1)?;
    }
    Ok(())
}

fn b01(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

fn parse_b(key: &str, v: &str) -> Result<bool, PropertyError> {
    parse_bool(v).ok_or_else(|| PropertyError(format!("{key}: expected 1 or 0, got '{v}'")))
}

fn parse_num<T: FromStr>(key: &str, v: &str) -> Result<T, PropertyError> {
    v.parse::<T>()
        .map_err(|_| PropertyError(format!("{key}: invalid number '{v}'")))
}

fn push_opt<T: ToString>(out: &mut Vec<(String, String)>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        out.push((key.to_string(), v.to_string()));
    }
}

fn push_b(out: &mut Vec<(String, String)>, key: &str, v: Option<bool>) {
    if let Some(v) = v {
        out.push((key.to_string(), b01(v)));
    }
}

// ---------------------------------------------------------------- DiskSize

/// A disk size as written in property strings: `8G`, `512M`, `0.5T`, `1024`
/// (bytes). Keeps the exact text so it round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiskSize(String);

impl DiskSize {
    /// A size of `n` GiB, printed as `nG`.
    pub fn gib(n: u64) -> Self {
        DiskSize(format!("{n}G"))
    }
    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        let s = self.0.as_str();
        let (num, mult) = match s.chars().last() {
            Some('K') => (&s[..s.len() - 1], 1u64 << 10),
            Some('M') => (&s[..s.len() - 1], 1 << 20),
            Some('G') => (&s[..s.len() - 1], 1 << 30),
            Some('T') => (&s[..s.len() - 1], 1 << 40),
            _ => (s, 1),
        };
        num.parse::<f64>()
            .map(|n| (n * mult as f64) as u64)
            .unwrap_or(0)
    }
    /// The text form, e.g. `8G`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DiskSize {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(s);
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if digits(int) && frac.is_none_or(digits) {
            Ok(DiskSize(s.to_string()))
        } else {
            Err(PropertyError(format!(
                "size: '{s}' is not a disk size like 8G, 512M or 1.5T"
            )))
        }
    }
}

impl Display for DiskSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------- NetConfig

/// IPv4 configuration of a CT interface (`ip=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    /// `dhcp`
    Dhcp,
    /// `manual` (configured inside the CT)
    Manual,
    /// A static address in CIDR form, e.g. `192.0.2.10/24`.
    Static(String),
}

impl FromStr for IpConfig {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dhcp" => Ok(IpConfig::Dhcp),
            "manual" => Ok(IpConfig::Manual),
            _ => {
                let ok = s.split_once('/').is_some_and(|(a, p)| {
                    a.parse::<std::net::Ipv4Addr>().is_ok()
                        && p.parse::<u8>().is_ok_and(|p| p <= 32)
                });
                if ok {
                    Ok(IpConfig::Static(s.to_string()))
                } else {
                    Err(PropertyError(format!(
                        "ip: '{s}' must be dhcp, manual or an IPv4 CIDR like 192.0.2.10/24"
                    )))
                }
            }
        }
    }
}

impl Display for IpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpConfig::Dhcp => f.write_str("dhcp"),
            IpConfig::Manual => f.write_str("manual"),
            IpConfig::Static(c) => f.write_str(c),
        }
    }
}

/// IPv6 configuration of a CT interface (`ip6=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ip6Config {
    /// `auto` (SLAAC)
    Auto,
    /// `dhcp`
    Dhcp,
    /// `manual`
    Manual,
    /// A static address in CIDR form, e.g. `2001:db8::10/64`.
    Static(String),
}

impl FromStr for Ip6Config {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Ip6Config::Auto),
            "dhcp" => Ok(Ip6Config::Dhcp),
            "manual" => Ok(Ip6Config::Manual),
            _ => {
                let ok = s.split_once('/').is_some_and(|(a, p)| {
                    a.parse::<std::net::Ipv6Addr>().is_ok()
                        && p.parse::<u8>().is_ok_and(|p| p <= 128)
                });
                if ok {
                    Ok(Ip6Config::Static(s.to_string()))
                } else {
                    Err(PropertyError(format!(
                        "ip6: '{s}' must be auto, dhcp, manual or an IPv6 CIDR like 2001:db8::10/64"
                    )))
                }
            }
        }
    }
}

impl Display for Ip6Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ip6Config::Auto => f.write_str("auto"),
            Ip6Config::Dhcp => f.write_str("dhcp"),
            Ip6Config::Manual => f.write_str("manual"),
            Ip6Config::Static(c) => f.write_str(c),
        }
    }
}

/// A CT network interface, the value of `net[n]`, e.g.
/// `name=eth0,bridge=vmbr0,firewall=1,gw=192.0.2.1,hwaddr=BC:24:11:A7:86:4A,ip=192.0.2.10/24,type=veth`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetConfig {
    /// Interface name inside the CT (required), e.g. `eth0`.
    pub name: String,
    /// Host bridge, e.g. `vmbr0`.
    pub bridge: Option<String>,
    /// Use the interface's firewall rules.
    pub firewall: Option<bool>,
    /// IPv4 gateway.
    pub gw: Option<String>,
    /// IPv6 gateway.
    pub gw6: Option<String>,
    /// MAC address (generated by PVE when absent).
    pub hwaddr: Option<String>,
    /// IPv4 configuration.
    pub ip: Option<IpConfig>,
    /// IPv6 configuration.
    pub ip6: Option<Ip6Config>,
    /// MTU (64..65535).
    pub mtu: Option<u16>,
    /// Rate limit in MB/s.
    pub rate: Option<f64>,
    /// VLAN tag (1..4094).
    pub tag: Option<u16>,
    /// VLAN trunks, `1;2;3`.
    pub trunks: Option<String>,
    /// Disconnect the interface.
    pub link_down: Option<bool>,
    /// IP configuration managed by the host.
    pub host_managed: Option<bool>,
    /// Interface type; PVE always stores `veth`.
    pub kind: Option<String>,
    /// Unknown sub-keys, in input order.
    pub extra: Vec<(String, String)>,
    /// Key order of the parsed input.
    pub order: KeyOrder,
}

impl NetConfig {
    /// A new interface `name` on `bridge` with the given IPv4 configuration.
    pub fn new(name: impl Into<String>, bridge: impl Into<String>, ip: IpConfig) -> Self {
        NetConfig {
            name: name.into(),
            bridge: Some(bridge.into()),
            ip: Some(ip),
            ..Default::default()
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        let mut e = vec![("name".to_string(), self.name.clone())];
        push_opt(&mut e, "bridge", &self.bridge);
        push_b(&mut e, "firewall", self.firewall);
        push_opt(&mut e, "gw", &self.gw);
        push_opt(&mut e, "gw6", &self.gw6);
        push_b(&mut e, "host-managed", self.host_managed);
        push_opt(&mut e, "hwaddr", &self.hwaddr);
        push_opt(&mut e, "ip", &self.ip);
        push_opt(&mut e, "ip6", &self.ip6);
        push_b(&mut e, "link_down", self.link_down);
        push_opt(&mut e, "mtu", &self.mtu);
        push_opt(&mut e, "rate", &self.rate);
        push_opt(&mut e, "tag", &self.tag);
        push_opt(&mut e, "trunks", &self.trunks);
        push_opt(&mut e, "type", &self.kind);
        e.extend(self.extra.iter().cloned());
        e
    }
}

impl FromStr for NetConfig {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut n = NetConfig::default();
        let mut name = None;
        for (k, v) in split_pairs(s) {
            let Some(k) = k else {
                return Err(PropertyError(format!(
                    "net: value '{v}' has no key (expected key=value)"
                )));
            };
            n.order.0.push(k.to_string());
            match k {
                "name" => name = Some(v.to_string()),
                "bridge" => n.bridge = Some(v.to_string()),
                "firewall" => n.firewall = Some(parse_b(k, v)?),
                "gw" => n.gw = Some(v.to_string()),
                "gw6" => n.gw6 = Some(v.to_string()),
                "hwaddr" => n.hwaddr = Some(v.to_string()),
                "ip" => n.ip = Some(v.parse()?),
                "ip6" => n.ip6 = Some(v.parse()?),
                "mtu" => n.mtu = Some(parse_num(k, v)?),
                "rate" => n.rate = Some(parse_num(k, v)?),
                "tag" => n.tag = Some(parse_num(k, v)?),
                "trunks" => n.trunks = Some(v.to_string()),
                "link_down" => n.link_down = Some(parse_b(k, v)?),
                "host-managed" => n.host_managed = Some(parse_b(k, v)?),
                "type" => n.kind = Some(v.to_string()),
                _ => n.extra.push((k.to_string(), v.to_string())),
            }
        }
        n.name = name.ok_or_else(|| PropertyError("net: missing required key 'name'".into()))?;
        Ok(n)
    }
}

impl Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ordered(f, self.entries(), None, &["name"], &self.order)
    }
}

// ---------------------------------------------------------------- RootFs / MountPoint

/// Shared volume options of `rootfs` and `mp[n]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeOptions {
    /// Explicit ACL support.
    pub acl: Option<bool>,
    /// Mount options, `;`-separated (`noatime;nodev`).
    pub mountoptions: Option<String>,
    /// User quotas.
    pub quota: Option<bool>,
    /// Include in replication.
    pub replicate: Option<bool>,
    /// Read-only.
    pub ro: Option<bool>,
    /// Mark a non-volume mount as shared.
    pub shared: Option<bool>,
    /// Volume size (read-only value set by PVE), e.g. `8G`.
    pub size: Option<DiskSize>,
}

impl VolumeOptions {
    fn push(&self, e: &mut Vec<(String, String)>) {
        push_b(e, "acl", self.acl);
        push_opt(e, "mountoptions", &self.mountoptions);
        push_b(e, "quota", self.quota);
        push_b(e, "replicate", self.replicate);
        push_b(e, "ro", self.ro);
        push_b(e, "shared", self.shared);
        push_opt(e, "size", &self.size);
    }

    /// Try to take `k=v`; returns false when the key is not a volume option.
    fn take(&mut self, k: &str, v: &str) -> Result<bool, PropertyError> {
        match k {
            "acl" => self.acl = Some(parse_b(k, v)?),
            "mountoptions" => self.mountoptions = Some(v.to_string()),
            "quota" => self.quota = Some(parse_b(k, v)?),
            "replicate" => self.replicate = Some(parse_b(k, v)?),
            "ro" => self.ro = Some(parse_b(k, v)?),
            "shared" => self.shared = Some(parse_b(k, v)?),
            "size" => self.size = Some(v.parse()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The CT root filesystem, `rootfs`, e.g. `local-lvm:vm-101-disk-0,size=8G`,
/// or `local-lvm:8` to allocate 8 GiB on create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RootFs {
    /// Volume id (`local-lvm:vm-101-disk-0`) or `STORAGE:SIZE_GiB` on create.
    pub volume: String,
    /// Volume options.
    pub options: VolumeOptions,
    /// Unknown sub-keys (e.g. `idmap` on 9.2), in input order.
    pub extra: Vec<(String, String)>,
    /// Key order of the parsed input.
    pub order: KeyOrder,
}

impl RootFs {
    /// Allocate a new volume of `gib` GiB on `storage` (`storage:gib`).
    pub fn allocate(storage: &str, gib: u64) -> Self {
        RootFs {
            volume: format!("{storage}:{gib}"),
            ..Default::default()
        }
    }
    /// The storage part of the volume id.
    pub fn storage(&self) -> Option<&str> {
        self.volume.split_once(':').map(|(s, _)| s)
    }
}

impl FromStr for RootFs {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut r = RootFs::default();
        let mut volume = None;
        for (k, v) in split_pairs(s) {
            match k {
                None | Some("volume") => {
                    if volume.is_some() {
                        return Err(PropertyError("rootfs: volume given twice".into()));
                    }
                    r.order.0.push(k.unwrap_or_default().to_string());
                    volume = Some(v.to_string());
                }
                Some(k) => {
                    r.order.0.push(k.to_string());
                    if !r.options.take(k, v)? {
                        r.extra.push((k.to_string(), v.to_string()));
                    }
                }
            }
        }
        r.volume = volume.ok_or_else(|| PropertyError("rootfs: missing volume".into()))?;
        Ok(r)
    }
}

impl Display for RootFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut e = vec![("volume".to_string(), self.volume.clone())];
        self.options.push(&mut e);
        e.extend(self.extra.iter().cloned());
        write_ordered(f, e, Some("volume"), &[], &self.order)
    }
}

/// A mount point, `mp[n]`, e.g. `local-lvm:vm-101-disk-1,mp=/data,backup=1,size=32G`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MountPoint {
    /// Volume id, host path, or `STORAGE:SIZE_GiB` to allocate.
    pub volume: String,
    /// Path inside the CT (required).
    pub mp: String,
    /// Include in backups.
    pub backup: Option<bool>,
    /// Inherit ownership/permissions from the mount point directory.
    pub keepattrs: Option<bool>,
    /// Volume options.
    pub options: VolumeOptions,
    /// Unknown sub-keys, in input order.
    pub extra: Vec<(String, String)>,
    /// Key order of the parsed input.
    pub order: KeyOrder,
}

impl FromStr for MountPoint {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut m = MountPoint::default();
        let mut volume = None;
        let mut mp = None;
        for (k, v) in split_pairs(s) {
            match k {
                None | Some("volume") => {
                    if volume.is_some() {
                        return Err(PropertyError("mp: volume given twice".into()));
                    }
                    m.order.0.push(k.unwrap_or_default().to_string());
                    volume = Some(v.to_string());
                }
                Some(k) => {
                    m.order.0.push(k.to_string());
                    match k {
                        "mp" => mp = Some(v.to_string()),
                        "backup" => m.backup = Some(parse_b(k, v)?),
                        "keepattrs" => m.keepattrs = Some(parse_b(k, v)?),
                        _ => {
                            if !m.options.take(k, v)? {
                                m.extra.push((k.to_string(), v.to_string()));
                            }
                        }
                    }
                }
            }
        }
        m.volume = volume.ok_or_else(|| PropertyError("mp: missing volume".into()))?;
        m.mp = mp.ok_or_else(|| PropertyError("mp: missing required key 'mp'".into()))?;
        Ok(m)
    }
}

impl Display for MountPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut e = vec![
            ("volume".to_string(), self.volume.clone()),
            ("mp".to_string(), self.mp.clone()),
        ];
        push_b(&mut e, "backup", self.backup);
        push_b(&mut e, "keepattrs", self.keepattrs);
        self.options.push(&mut e);
        e.extend(self.extra.iter().cloned());
        write_ordered(f, e, Some("volume"), &["mp"], &self.order)
    }
}

// ---------------------------------------------------------------- Features

/// CT feature flags, `features`, e.g. `nesting=1,keyctl=1`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    /// Allow nesting (needed by systemd isolation, docker).
    pub nesting: Option<bool>,
    /// Allow keyctl() (docker in unprivileged CTs). root@pam only.
    pub keyctl: Option<bool>,
    /// Allow FUSE file systems. root@pam only.
    pub fuse: Option<bool>,
    /// Allowed file system types for mount, `nfs;cifs`. root@pam only.
    pub mount: Option<String>,
    /// Allow mknod(). root@pam only.
    pub mknod: Option<bool>,
    /// Mount /sys read-write. root@pam only.
    pub force_rw_sys: Option<bool>,
    /// Unknown sub-keys, in input order.
    pub extra: Vec<(String, String)>,
    /// Key order of the parsed input.
    pub order: KeyOrder,
}

impl Features {
    /// True when no flag is set.
    pub fn is_empty(&self) -> bool {
        self.nesting.is_none()
            && self.keyctl.is_none()
            && self.fuse.is_none()
            && self.mount.is_none()
            && self.mknod.is_none()
            && self.force_rw_sys.is_none()
            && self.extra.is_empty()
    }
}

impl FromStr for Features {
    type Err = PropertyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut x = Features::default();
        for (k, v) in split_pairs(s) {
            let Some(k) = k else {
                return Err(PropertyError(format!(
                    "features: value '{v}' has no key (expected e.g. nesting=1)"
                )));
            };
            x.order.0.push(k.to_string());
            match k {
                "nesting" => x.nesting = Some(parse_b(k, v)?),
                "keyctl" => x.keyctl = Some(parse_b(k, v)?),
                "fuse" => x.fuse = Some(parse_b(k, v)?),
                "mknod" => x.mknod = Some(parse_b(k, v)?),
                "force_rw_sys" => x.force_rw_sys = Some(parse_b(k, v)?),
                "mount" => x.mount = Some(v.to_string()),
                _ => x.extra.push((k.to_string(), v.to_string())),
            }
        }
        Ok(x)
    }
}

impl Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut e = Vec::new();
        push_b(&mut e, "force_rw_sys", self.force_rw_sys);
        push_b(&mut e, "fuse", self.fuse);
        push_b(&mut e, "keyctl", self.keyctl);
        push_b(&mut e, "mknod", self.mknod);
        push_opt(&mut e, "mount", &self.mount);
        push_b(&mut e, "nesting", self.nesting);
        e.extend(self.extra.iter().cloned());
        write_ordered(f, e, None, &[], &self.order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt<T: FromStr<Err = PropertyError> + Display>(s: &str) -> T {
        let v: T = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(v.to_string(), s, "round trip");
        v
    }

    // Values from REFERENCE.md §1.8.
    #[test]
    fn net_round_trips() {
        let n: NetConfig = rt(
            "name=eth0,bridge=vmbr0,firewall=1,gw=192.0.2.1,hwaddr=BC:24:11:A7:86:4A,ip=192.0.2.10/24,type=veth",
        );
        assert_eq!(n.name, "eth0");
        assert_eq!(n.ip, Some(IpConfig::Static("192.0.2.10/24".into())));
        assert_eq!(n.firewall, Some(true));
        let n: NetConfig = rt(
            "name=eth0,bridge=vmbr0,firewall=1,gw=10.1.10.1,hwaddr=BC:24:11:A7:86:4A,ip=10.1.10.39/23,type=veth",
        );
        assert_eq!(n.gw.as_deref(), Some("10.1.10.1"));
        // pct.adoc order (name not first) is preserved too.
        let n: NetConfig = rt("bridge=vmbr0,hwaddr=66:64:66:64:64:36,ip=dhcp,name=eth0,type=veth");
        assert_eq!(n.ip, Some(IpConfig::Dhcp));
        rt::<NetConfig>(
            "name=eth1,bridge=vmbr1,ip6=auto,mtu=9000,rate=12.5,tag=42,trunks=1;2;3,link_down=1,foo=bar",
        );
    }

    #[test]
    fn net_built_from_scratch_is_canonical() {
        let mut n = NetConfig::new("eth0", "vmbr0", IpConfig::Static("192.0.2.10/24".into()));
        n.gw = Some("192.0.2.1".into());
        n.firewall = Some(true);
        assert_eq!(
            n.to_string(),
            "name=eth0,bridge=vmbr0,firewall=1,gw=192.0.2.1,ip=192.0.2.10/24"
        );
        // A key added after parsing lands in canonical position after the known order.
        let mut p: NetConfig = "name=eth0,bridge=vmbr0,ip=dhcp".parse().unwrap();
        p.tag = Some(5);
        assert_eq!(p.to_string(), "name=eth0,bridge=vmbr0,ip=dhcp,tag=5");
    }

    #[test]
    fn net_rejects_bad_values() {
        assert!("bridge=vmbr0".parse::<NetConfig>().is_err());
        assert!("name=eth0,ip=300.1.1.1/24".parse::<NetConfig>().is_err());
        assert!("name=eth0,tag=abc".parse::<NetConfig>().is_err());
        assert!("eth0".parse::<NetConfig>().is_err());
    }

    #[test]
    fn rootfs_round_trips() {
        for s in [
            "local-lvm:vm-101-disk-0,size=8G",
            "local-zfs:subvol-101-disk-0,size=8G",
            "local:101/vm-101-disk-0.raw,size=8G",
            "local:107/vm-107-disk-1.raw,size=7G",
            "local-lvm:8",
            "volume=local-lvm:vm-100-disk-0,acl=1,mountoptions=noatime;nodev,size=4G",
            "local-lvm:vm-100-disk-0,idmap=passthrough,size=4G",
        ] {
            rt::<RootFs>(s);
        }
        let r: RootFs = "local-lvm:vm-101-disk-0,size=8G".parse().unwrap();
        assert_eq!(r.storage(), Some("local-lvm"));
        assert_eq!(r.options.size.as_ref().map(DiskSize::bytes), Some(8 << 30));
        assert_eq!(RootFs::allocate("local-lvm", 8).to_string(), "local-lvm:8");
        assert!("size=8G".parse::<RootFs>().is_err());
        assert!("local:1,size=8X".parse::<RootFs>().is_err());
    }

    #[test]
    fn mountpoint_round_trips() {
        let m: MountPoint = rt("local-lvm:vm-101-disk-1,mp=/data,backup=1,size=32G");
        assert_eq!(m.mp, "/data");
        assert_eq!(m.backup, Some(true));
        rt::<MountPoint>("volume=/mnt/host,mp=/srv,ro=1,shared=1");
        let m = MountPoint {
            volume: "local-lvm:16".into(),
            mp: "/var/lib/app".into(),
            backup: Some(true),
            ..Default::default()
        };
        assert_eq!(m.to_string(), "local-lvm:16,mp=/var/lib/app,backup=1");
        assert!("local-lvm:16".parse::<MountPoint>().is_err());
    }

    #[test]
    fn features_round_trip() {
        let f: Features = rt("nesting=1,keyctl=1");
        assert_eq!(f.nesting, Some(true));
        assert_eq!(f.keyctl, Some(true));
        rt::<Features>("fuse=1,mknod=0,mount=nfs;cifs,nesting=1,force_rw_sys=1,future=1");
        let f = Features {
            nesting: Some(true),
            keyctl: Some(true),
            ..Default::default()
        };
        assert_eq!(f.to_string(), "keyctl=1,nesting=1");
        assert!("nesting=maybe".parse::<Features>().is_err());
    }
}
