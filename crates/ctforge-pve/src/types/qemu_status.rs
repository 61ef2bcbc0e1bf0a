//! What Proxmox reports about a running or stopped VM: `GET …/qemu/{vmid}/status/current` and
//! the items of `GET /nodes/{node}/qemu` (the lifecycle and listing side of qemu guests; the
//! creation parameters live with the other request builders).

use serde::{Deserialize, Serialize};

use super::de;

/// VM status: `GET …/qemu/{vmid}/status/current` and the items of `GET /nodes/{node}/qemu`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QemuStatus {
    /// VM id.
    #[serde(deserialize_with = "de::u32")]
    pub vmid: u32,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// QEMU's own state (`running`, `paused`, `prelaunch`…; `status/current` only).
    #[serde(default)]
    pub qmpstatus: Option<String>,
    /// VM name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the guest agent is enabled in the config (`status/current` only).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub agent: Option<bool>,
    /// CPUs.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpus: Option<f64>,
    /// CPU usage as a fraction of `cpus`.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory limit, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Boot disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// QEMU process id (only when running).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    /// Config lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Tags, `;`-separated.
    #[serde(default)]
    pub tags: Option<String>,
    /// Is a template.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
}

impl QemuStatus {
    /// True when `status == "running"`.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_status_current() {
        let s: QemuStatus = serde_json::from_str(
            r#"{"vmid":"200","status":"running","qmpstatus":"running","name":"vm1","agent":1,
                "cpus":2,"cpu":0.01,"mem":123,"maxmem":1073741824,"uptime":5,"pid":4242}"#,
        )
        .unwrap();
        assert_eq!(s.vmid, 200);
        assert!(s.is_running());
        assert_eq!(s.agent, Some(true));
        assert_eq!(s.maxmem, Some(1_073_741_824));
    }
}
