//! Container backends: what actually happens inside a CT when it is created,
//! started, stopped, and when `pct exec` / `pct push` reach it.
//!
//! The HTTP API keeps the Proxmox-level state (config, status, tasks) in
//! [`crate::state`]; a backend keeps the guest-level state. [`memory`] answers
//! from scripted state; [`lxc`] runs real LXC containers on a bridge.

pub mod lxc;
pub mod memory;

use std::collections::BTreeMap;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::scenario::ServiceSpec;

/// What a create needs to set up the guest.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec {
    /// Hostname.
    pub hostname: String,
    /// OS template volume id.
    pub ostemplate: String,
    /// Root password (never stored in the config).
    pub password: Option<String>,
    /// Authorized keys for root (one per line).
    pub ssh_public_keys: Option<String>,
    /// The CT's normalized Proxmox configuration at creation (`memory`, `cores`,
    /// `net0`, `rootfs`, …): what a real backend sizes and wires the guest from.
    pub conf: BTreeMap<String, String>,
    /// The node the guest is created on (a real backend keeps it in that node's namespace).
    pub node: String,
    /// Clone only: the source's snapshot whose files are copied (Proxmox's `snapname`);
    /// `None`: its current files.
    pub snapname: Option<String>,
}

/// The cloud-init settings of a VM (its config's `ciuser`, `cipassword`, `sshkeys`,
/// `ipconfigN`, `nameserver`, `searchdomain`, `cicustom`), from which a NoCloud seed is written.
#[derive(Debug, Clone, Default)]
pub struct CloudInit {
    /// Hostname (the VM's `name`).
    pub hostname: String,
    /// Default user.
    pub user: Option<String>,
    /// Password hash (`$5$…`), as the config stores it.
    pub password_hash: Option<String>,
    /// Authorized keys (URL-decoded, one per line).
    pub ssh_keys: Option<String>,
    /// `ipconfigN` values by key.
    pub ipconfig: BTreeMap<String, String>,
    /// DNS server.
    pub nameserver: Option<String>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// The `cicustom` user-data snippet volume (`local:snippets/x.yaml`).
    pub user_snippet: Option<String>,
    /// The snippet's content (replaces the generated user-data).
    pub user_data: Option<Vec<u8>>,
}

/// What a VM create needs to set up the guest.
#[derive(Debug, Clone, Default)]
pub struct VmSpec {
    /// The VM's name.
    pub name: String,
    /// The normalized config written by the create task (disks allocated).
    pub conf: BTreeMap<String, String>,
    /// Disks imported from images: (drive key, source volume id, virtual size in bytes).
    pub imports: Vec<(String, String, u64)>,
    /// Cloud-init settings at create time.
    pub cloud_init: CloudInit,
    /// Clone only: the source's snapshot whose disks are copied (Proxmox's `snapname`, full
    /// clones only); `None`: its current disks.
    pub snapname: Option<String>,
}

/// Live resource usage of a running guest, as a real backend measures it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// CPU usage as a fraction of the guest's CPUs since the previous sample.
    pub cpu: f64,
    /// Memory in use, bytes.
    pub mem: u64,
    /// Swap in use, bytes.
    pub swap: u64,
    /// Bytes received by the guest.
    pub netin: u64,
    /// Bytes sent by the guest.
    pub netout: u64,
    /// Bytes read from disk.
    pub diskread: u64,
    /// Bytes written to disk.
    pub diskwrite: u64,
    /// Host PID of the guest's init, when known.
    pub pid: Option<u32>,
    /// Disk space used by the root filesystem, bytes, when known.
    pub disk: Option<u64>,
}

/// A piece of output of a command run in a CT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    /// Standard output bytes.
    Stdout(Vec<u8>),
    /// Standard error bytes.
    Stderr(Vec<u8>),
}

/// A running exec: resolves to the exit status.
pub type ExecFuture = Pin<Box<dyn Future<Output = u32> + Send>>;

/// Options of `pct push`.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// File mode (octal value).
    pub perms: Option<u32>,
    /// Owner (name or numeric id).
    pub user: Option<String>,
    /// Group (name or numeric id).
    pub group: Option<String>,
}

/// A container backend.
pub trait CtBackend: Send + Sync + 'static {
    /// Backend name (`memory`, `lxc`).
    fn name(&self) -> &'static str;
    /// For downcasting to the concrete backend in tests.
    fn as_any(&self) -> &dyn Any;
    /// Create the guest; returns extra task log lines.
    fn create(&self, vmid: u32, spec: &CreateSpec) -> Result<Vec<String>, String>;
    /// Boot the guest.
    fn start(&self, vmid: u32) -> Result<(), String>;
    /// Stop the guest (hard stop).
    fn stop(&self, vmid: u32) -> Result<(), String>;
    /// Shut the guest down cleanly (defaults to [`CtBackend::stop`]).
    fn shutdown(&self, vmid: u32) -> Result<(), String> {
        self.stop(vmid)
    }
    /// Apply the CT's current Proxmox configuration before a start (memory,
    /// cores, network). Scripted backends ignore it.
    fn configure(&self, _vmid: u32, _conf: &BTreeMap<String, String>) -> Result<(), String> {
        Ok(())
    }
    /// Measured usage of a running guest (`None`: the API synthesizes numbers).
    fn usage(&self, _vmid: u32) -> Option<Usage> {
        None
    }
    /// The guest's real network interfaces in the format of
    /// `GET /nodes/{node}/lxc/{vmid}/interfaces` (`None`: derived from the config).
    fn interfaces(&self, _vmid: u32) -> Option<Value> {
        None
    }
    /// Move a stopped guest to node `target` (migration); returns extra task log lines.
    /// Backends without a notion of nodes have nothing to move.
    fn migrate(&self, _vmid: u32, _target: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    /// Remove the guest entirely.
    fn destroy(&self, vmid: u32) -> Result<(), String>;
    /// Run `argv` in the guest with `stdin`, streaming output to `out`.
    fn exec(
        &self,
        vmid: u32,
        argv: Vec<String>,
        stdin: Vec<u8>,
        out: UnboundedSender<ExecChunk>,
    ) -> ExecFuture;
    /// Whether running `argv` reads standard input (the SSH endpoint then waits
    /// for EOF before running it).
    fn needs_stdin(&self, argv: &[String]) -> bool;
    /// Write a file into the guest.
    fn push(&self, vmid: u32, path: &str, data: &[u8], opts: &PushOptions) -> Result<(), String>;
    /// Read a file from the guest.
    fn pull(&self, vmid: u32, path: &str) -> Result<Vec<u8>, String>;
    /// Take a guest snapshot.
    fn snapshot(&self, vmid: u32, name: &str) -> Result<(), String>;
    /// Roll back to a guest snapshot.
    fn rollback(&self, vmid: u32, name: &str) -> Result<(), String>;
    /// Delete a guest snapshot.
    fn delete_snapshot(&self, vmid: u32, name: &str) -> Result<(), String>;
    /// Create guest `newid` as a copy of guest `vmid` (a clone): its files are copied — those
    /// of snapshot `spec.snapname` when given —, its identity (hostname, network, config, node)
    /// comes from `spec`. Returns extra task log lines.
    fn clone_guest(&self, vmid: u32, newid: u32, spec: &CreateSpec) -> Result<Vec<String>, String>;
    /// Replace the guest's service table (scripted backends; others ignore it).
    fn set_services(&self, vmid: u32, services: &[ServiceSpec]);
    /// Write a file without `pct push` semantics (scenario setup).
    fn write_file(&self, vmid: u32, path: &str, data: &[u8]);
    /// Create a VM's guest (disks imported). A scripted backend makes a guest like a CT's, so
    /// agent commands run in the same emulated shell.
    fn vm_create(&self, vmid: u32, spec: &VmSpec) -> Result<Vec<String>, String> {
        self.create(
            vmid,
            &CreateSpec {
                hostname: spec.name.clone(),
                ostemplate: spec
                    .imports
                    .first()
                    .map(|(_, src, _)| src.clone())
                    .unwrap_or_default(),
                password: None,
                ssh_public_keys: None,
                conf: spec.conf.clone(),
                // A scripted guest has no per-node namespace; a real backend overrides these.
                node: String::new(),
                snapname: None,
            },
        )
    }
    /// Boot a VM with its current config; cloud-init applies `ci` (a scripted backend writes
    /// what cloud-init would: hostname, the user, its keys, the user-data).
    fn vm_start(
        &self,
        vmid: u32,
        conf: &BTreeMap<String, String>,
        ci: &CloudInit,
    ) -> Result<(), String> {
        self.configure(vmid, conf)?;
        self.start(vmid)?;
        apply_cloud_init(self, vmid, ci);
        Ok(())
    }
    /// Hard-stop a VM (QMP `quit`).
    fn vm_stop(&self, vmid: u32) -> Result<(), String> {
        self.stop(vmid)
    }
    /// Shut a VM down cleanly (`guest-shutdown` through the agent, else ACPI).
    fn vm_shutdown(&self, vmid: u32, _agent: bool) -> Result<(), String> {
        self.shutdown(vmid)
    }
    /// Remove a VM: its process and disks.
    fn vm_destroy(&self, vmid: u32) -> Result<(), String> {
        self.destroy(vmid)
    }
    /// Whether the VM's guest agent answers `guest-ping` (`None`: the API decides from the
    /// simulated boot delay).
    fn vm_agent_ping(&self, _vmid: u32) -> Option<bool> {
        None
    }
    /// The guest agent's `guest-network-get-interfaces` answer (`None`: derived from the config).
    fn vm_interfaces(&self, _vmid: u32) -> Option<Value> {
        None
    }
    /// Convert a stopped VM into a template (its disks become read-only bases); returns extra
    /// task log lines. Scripted guests have nothing to convert.
    fn vm_template(&self, _vmid: u32) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    /// Create VM `newid` as a clone of VM `vmid` (`linked`: on the template's base volumes;
    /// `spec.snapname`: from that snapshot).
    fn vm_clone(
        &self,
        vmid: u32,
        newid: u32,
        _linked: bool,
        spec: &VmSpec,
    ) -> Result<Vec<String>, String> {
        self.clone_guest(
            vmid,
            newid,
            &CreateSpec {
                hostname: spec.name.clone(),
                ostemplate: String::new(),
                password: None,
                ssh_public_keys: None,
                conf: spec.conf.clone(),
                // A scripted guest has no per-node namespace; a real backend overrides these.
                node: String::new(),
                snapname: spec.snapname.clone(),
            },
        )
    }
    /// Resize a VM disk (`qemu-img resize` / `block_resize`).
    fn vm_resize(&self, _vmid: u32, _disk: &str, _bytes: u64) -> Result<(), String> {
        Ok(())
    }
    /// Serialize guest state for persistence.
    fn save(&self) -> Value;
    /// Restore guest state saved by [`CtBackend::save`].
    fn load(&self, v: &Value) -> Result<(), String>;
}

/// What cloud-init does on a scripted guest: the hostname, the default user with its keys, and
/// the user-data kept where cloud-init keeps it.
fn apply_cloud_init<B: CtBackend + ?Sized>(b: &B, vmid: u32, ci: &CloudInit) {
    b.write_file(
        vmid,
        "/etc/hostname",
        format!("{}\n", ci.hostname).as_bytes(),
    );
    let user = ci.user.clone().unwrap_or_else(|| "debian".into());
    let home = if user == "root" {
        "/root".to_string()
    } else {
        format!("/home/{user}")
    };
    b.write_file(vmid, &format!("{home}/.profile"), b"");
    if let Some(keys) = &ci.ssh_keys {
        b.write_file(
            vmid,
            &format!("{home}/.ssh/authorized_keys"),
            format!("{}\n", keys.trim_end()).as_bytes(),
        );
    }
    let user_data = match &ci.user_data {
        Some(d) => d.clone(),
        None => format!("#cloud-config\nhostname: {}\nuser: {user}\n", ci.hostname).into_bytes(),
    };
    b.write_file(vmid, "/var/lib/cloud/instance/user-data.txt", &user_data);
    b.write_file(vmid, "/var/lib/cloud/instance/boot-finished", b"");
}
