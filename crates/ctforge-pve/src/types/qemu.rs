//! QEMU virtual machines: the create parameters ctforge sends ([`QemuCreate`], serialised as
//! qemu-server expects: booleans `1`/`0`, `sshkeys` percent-encoded, the cloud image imported
//! with `import-from`), and the answers it reads (status, guest-agent exec status, the agent's
//! network interfaces).

use serde::{Deserialize, Serialize};

use super::de;
use crate::auth::Secret;

/// Where a new VM's system disk comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmDisk {
    /// `scsi0: <storage>:0,import-from=<volid>`: the cloud image is copied onto `storage`
    /// (then resized to the requested size with `PUT …/resize`).
    Import {
        /// Target storage of the disk.
        storage: String,
        /// The image volume, e.g. `local:import/debian-12-genericcloud-amd64.qcow2`.
        volid: String,
    },
    /// `scsi0: <storage>:<size>`: an empty disk of `size_gib` (a VM without an image).
    Empty {
        /// Target storage.
        storage: String,
        /// Size, GiB.
        size_gib: u64,
    },
}

impl std::fmt::Display for VmDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmDisk::Import { storage, volid } => write!(f, "{storage}:0,import-from={volid}"),
            VmDisk::Empty { storage, size_gib } => write!(f, "{storage}:{size_gib}"),
        }
    }
}

/// Parameters of `POST /nodes/{node}/qemu`, the ones ctforge uses. `Debug` redacts
/// `cipassword`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QemuCreate {
    /// VM id.
    pub vmid: u32,
    /// Name (a DNS name; ctforge uses the hostname).
    pub name: Option<String>,
    /// Memory, MiB.
    pub memory: Option<u64>,
    /// Cores per socket.
    pub cores: Option<u32>,
    /// Sockets.
    pub sockets: Option<u32>,
    /// CPU type, e.g. `host` or `x86-64-v2-AES`.
    pub cpu: Option<String>,
    /// Machine type, e.g. `q35`.
    pub machine: Option<String>,
    /// `seabios` or `ovmf`.
    pub bios: Option<String>,
    /// Guest OS type (`l26` for Linux).
    pub ostype: Option<String>,
    /// SCSI controller (`virtio-scsi-single`).
    pub scsihw: Option<String>,
    /// The system disk (`scsi0`).
    pub scsi0: Option<VmDisk>,
    /// The cloud-init drive: (`ide2`, storage) → `ide2: <storage>:cloudinit`.
    pub cloudinit: Option<(String, String)>,
    /// `boot`, e.g. `order=scsi0`.
    pub boot: Option<String>,
    /// `net0`, e.g. `virtio,bridge=vmbr0`.
    pub net0: Option<String>,
    /// `serial0` (`socket`: the serial console).
    pub serial0: Option<String>,
    /// `vga` (`serial0`: the console is the serial port, as cloud images expect).
    pub vga: Option<String>,
    /// `agent: enabled=1` (`enabled=0` when false: no virtio-serial agent channel; a clone
    /// does not keep its template's).
    pub agent: bool,
    /// cloud-init user.
    pub ciuser: Option<String>,
    /// cloud-init password (Proxmox stores its hash).
    pub cipassword: Option<Secret>,
    /// cloud-init SSH public keys, one per line (sent percent-encoded).
    pub sshkeys: Option<String>,
    /// cloud-init network of `net0`, e.g. `ip=dhcp` or `ip=192.0.2.10/24,gw=192.0.2.1`.
    pub ipconfig0: Option<String>,
    /// DNS servers.
    pub nameserver: Option<String>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// cloud-init upgrades the packages on first boot (Proxmox's default: yes).
    pub ciupgrade: Option<bool>,
    /// Custom cloud-init files, e.g. `user=local:snippets/ctforge-101-user.yaml`.
    pub cicustom: Option<String>,
    /// Tags (sent `;`-joined).
    pub tags: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// Start on boot.
    pub onboot: Option<bool>,
    /// Start after create.
    pub start: Option<bool>,
}

/// Percent-encodes `v` as Proxmox wants `sshkeys` (`uri_unescape` on its side): everything but
/// ASCII letters, digits and `-_.~`.
pub fn uri_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl QemuCreate {
    /// A VM with id `vmid` and nothing else set.
    pub fn new(vmid: u32) -> Self {
        QemuCreate {
            vmid,
            ..Default::default()
        }
    }

    /// The form parameters, in a stable order.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::with_capacity(28);
        let mut put = |k: &str, v: String| p.push((k.to_string(), v));
        put("vmid", self.vmid.to_string());
        let text = [
            ("name", &self.name),
            ("cpu", &self.cpu),
            ("machine", &self.machine),
            ("bios", &self.bios),
            ("ostype", &self.ostype),
            ("scsihw", &self.scsihw),
        ];
        for (k, v) in text {
            if let Some(v) = v {
                put(k, v.clone());
            }
        }
        if let Some(v) = self.memory {
            put("memory", v.to_string());
        }
        if let Some(v) = self.sockets {
            put("sockets", v.to_string());
        }
        if let Some(v) = self.cores {
            put("cores", v.to_string());
        }
        if let Some(v) = &self.scsi0 {
            put("scsi0", v.to_string());
        }
        if let Some((slot, storage)) = &self.cloudinit {
            put(slot, format!("{storage}:cloudinit"));
        }
        let more = [
            ("boot", &self.boot),
            ("net0", &self.net0),
            ("serial0", &self.serial0),
            ("vga", &self.vga),
        ];
        for (k, v) in more {
            if let Some(v) = v {
                put(k, v.clone());
            }
        }
        put(
            "agent",
            if self.agent { "enabled=1" } else { "enabled=0" }.into(),
        );
        if let Some(v) = &self.ciuser {
            put("ciuser", v.clone());
        }
        if let Some(v) = &self.cipassword {
            put("cipassword", v.expose().to_string());
        }
        if let Some(v) = &self.sshkeys {
            put("sshkeys", uri_escape(v));
        }
        if let Some(v) = self.ciupgrade {
            put("ciupgrade", if v { "1" } else { "0" }.into());
        }
        let cloud = [
            ("ipconfig0", &self.ipconfig0),
            ("nameserver", &self.nameserver),
            ("searchdomain", &self.searchdomain),
            ("cicustom", &self.cicustom),
            ("description", &self.description),
        ];
        for (k, v) in cloud {
            if let Some(v) = v {
                put(k, v.clone());
            }
        }
        if !self.tags.is_empty() {
            put("tags", self.tags.join(";"));
        }
        if let Some(v) = self.onboot {
            put("onboot", if v { "1" } else { "0" }.into());
        }
        if let Some(v) = self.start {
            put("start", if v { "1" } else { "0" }.into());
        }
        p
    }
}

// `QemuStatus` (list and `status/current`) lives in `qemu_status`.
pub use super::qemu_status::QemuStatus;

/// `POST …/agent/exec`: the PID of the started process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPid {
    /// PID in the guest.
    #[serde(deserialize_with = "de::i64")]
    pub pid: i64,
}

/// `GET …/agent/exec-status?pid=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentExecStatus {
    /// Whether the process ended.
    #[serde(default, deserialize_with = "de::bool")]
    pub exited: bool,
    /// Exit code when it ended normally.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub exitcode: Option<i64>,
    /// Signal that ended it.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub signal: Option<i64>,
    /// stdout so far (decoded by Proxmox).
    #[serde(default, rename = "out-data")]
    pub out_data: Option<String>,
    /// stderr so far.
    #[serde(default, rename = "err-data")]
    pub err_data: Option<String>,
    /// stdout was cut by the agent.
    #[serde(default, rename = "out-truncated", deserialize_with = "de::opt_bool")]
    pub out_truncated: Option<bool>,
    /// stderr was cut by the agent.
    #[serde(default, rename = "err-truncated", deserialize_with = "de::opt_bool")]
    pub err_truncated: Option<bool>,
}

/// The `result` of `GET …/agent/network-get-interfaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInterfaces {
    /// One entry per guest interface.
    #[serde(default)]
    pub result: Vec<AgentInterface>,
}

/// One interface the guest agent reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInterface {
    /// Name in the guest, e.g. `eth0`, `lo`.
    #[serde(default)]
    pub name: String,
    /// MAC address.
    #[serde(default, rename = "hardware-address")]
    pub hardware_address: Option<String>,
    /// Addresses.
    #[serde(default, rename = "ip-addresses")]
    pub ip_addresses: Vec<AgentIpAddress>,
}

/// One address of an [`AgentInterface`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentIpAddress {
    /// The address.
    #[serde(default, rename = "ip-address")]
    pub ip_address: String,
    /// `ipv4` or `ipv6`.
    #[serde(default, rename = "ip-address-type")]
    pub ip_address_type: String,
    /// Prefix length.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub prefix: Option<u32>,
}

impl AgentInterfaces {
    /// The first IPv4 address that is not loopback or link-local.
    pub fn first_ipv4(&self) -> Option<String> {
        self.result
            .iter()
            .filter(|i| i.name != "lo")
            .flat_map(|i| &i.ip_addresses)
            .filter(|a| a.ip_address_type == "ipv4")
            .filter_map(|a| a.ip_address.parse::<std::net::Ipv4Addr>().ok())
            .find(|a| !a.is_loopback() && !a.is_link_local())
            .map(|a| a.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_form() {
        let mut c = QemuCreate::new(120);
        c.name = Some("vm1".into());
        c.scsi0 = Some(VmDisk::Import {
            storage: "local-lvm".into(),
            volid: "local:import/debian-12-genericcloud-amd64.qcow2".into(),
        });
        c.cloudinit = Some(("ide2".into(), "local-lvm".into()));
        c.agent = true;
        c.sshkeys = Some("ssh-ed25519 AAAA x@y\n".into());
        c.cipassword = Some(Secret::new("pw123"));
        let form = c.to_form();
        let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("scsi0"),
            Some("local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2")
        );
        assert_eq!(get("ide2"), Some("local-lvm:cloudinit"));
        assert_eq!(get("agent"), Some("enabled=1"));
        assert_eq!(get("sshkeys"), Some("ssh-ed25519%20AAAA%20x%40y%0A"));
        assert!(!format!("{c:?}").contains("pw123"));
    }

    #[test]
    fn first_ipv4_skips_loopback() {
        let v: AgentInterfaces = serde_json::from_str(
            r#"{"result":[{"name":"lo","ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8}]},
            {"name":"eth0","hardware-address":"bc:24:11:00:00:01","ip-addresses":[{"ip-address":"fe80::1","ip-address-type":"ipv6","prefix":64},{"ip-address":"10.0.3.7","ip-address-type":"ipv4","prefix":24}]}]}"#,
        )
        .expect("parses");
        assert_eq!(v.first_ipv4().as_deref(), Some("10.0.3.7"));
    }
}
