//! Request and response types for the Proxmox VE API.
//!
//! * [`de`] — lenient serde helpers for Proxmox's loose JSON typing;
//! * [`propstring`] — typed property strings (`net[n]`, `rootfs`, `mp[n]`,
//!   `features`) with round-tripping `FromStr`/`Display`;
//! * [`upid`] — task ids;
//! * [`models`] — response structs;
//! * [`params`] — request parameter builders;
//! * [`qemu`] — virtual machines: create parameters, status, guest-agent answers.

pub mod cluster;
pub mod de;
pub mod models;
pub mod params;
pub mod propstring;
pub mod qemu;
pub mod qemu_status;
pub mod upid;

pub use cluster::{ClusterStatusEntry, MigrateParams};
pub use models::*;
pub use params::{CloneParams, DeleteOptions, LxcConfigUpdate, LxcCreateParams};
pub use propstring::{
    DiskSize, Features, Ip6Config, IpConfig, KeyOrder, MountPoint, NetConfig, PropertyError,
    RootFs, VolumeOptions,
};
pub use qemu::{
    AgentExecStatus, AgentInterface, AgentInterfaces, AgentIpAddress, AgentPid, QemuCreate, VmDisk,
};
pub use qemu_status::QemuStatus;
pub use upid::Upid;
