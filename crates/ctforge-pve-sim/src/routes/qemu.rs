//! `/nodes/{node}/qemu...`: VM list, create (`qmcreate`: disks allocated or imported from an
//! `import` volume with `import-from=`, cloud-init drives, MAC addresses, boot order, SMBIOS
//! UUID; `start=1` starts the VM inside the same task, as qemu-server's `create_vm` does),
//! destroy (`qmdestroy`), config (GET, PUT sync, POST async with pending values on running
//! VMs), pending, status and power actions (`qmstart`, `qmstop`, `qmshutdown` through the guest
//! agent when it is enabled else ACPI, `qmreboot`, `qmpause`, `qmresume`) and rrddata. Checks,
//! their order and texts follow `PVE::API2::Qemu`. The guest agent endpoints are in
//! [`super::qemu_agent`], day-two operations in [`super::qemu_daytwo`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Ctx, Reply};
use crate::auth::Identity;
use crate::backend::{CloudInit, VmSpec};
use crate::error::ApiError;
use crate::state::{Cluster, Ct, GIB, SimState, is_vm_disk_key, parse_size};
use crate::tasks::{TaskCtx, spawn_task, step};
use crate::validate::{self, PVal};

/// Parameters of `POST /nodes/{node}/qemu` that are not config keys.
const CREATE_ONLY: &[&str] = &[
    "node",
    "vmid",
    "archive",
    "bwlimit",
    "force",
    "pool",
    "start",
    "ha-managed",
    "storage",
    "unique",
    "live-restore",
    "import-working-storage",
];

/// Options `PVE::API2::Qemu` files under each privilege (`check_vm_modify_config_perm`).
const CPU_OPTS: &[&str] = &[
    "cores", "cpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus", "affinity",
];
const MEMORY_OPTS: &[&str] = &["memory", "balloon", "shares", "allow-ksm"];
const HWTYPE_OPTS: &[&str] = &[
    "acpi", "hotplug", "kvm", "machine", "scsihw", "smbios1", "tablet", "vga", "watchdog",
    "audio0", "rng0",
];
const GENERAL_OPTS: &[&str] = &[
    "agent",
    "autostart",
    "bios",
    "description",
    "keyboard",
    "localtime",
    "migrate_downtime",
    "migrate_speed",
    "name",
    "onboot",
    "ostype",
    "protection",
    "reboot",
    "startdate",
    "startup",
    "tdf",
    "template",
];
const DISK_OPTS: &[&str] = &["boot", "bootdisk", "vmstatestorage"];
const CLOUDINIT_OPTS: &[&str] = &[
    "cicustom",
    "cipassword",
    "citype",
    "ciuser",
    "ciupgrade",
    "nameserver",
    "searchdomain",
    "sshkeys",
];

/// Keys a running VM takes at once (hot-plug and options without a device); others wait in
/// the pending section until the next start.
const LIVE_KEYS: &[&str] = &[
    "name",
    "description",
    "onboot",
    "protection",
    "tags",
    "startup",
    "lock",
    "agent",
    "ciuser",
    "cipassword",
    "sshkeys",
    "nameserver",
    "searchdomain",
    "cicustom",
    "citype",
    "ciupgrade",
];

/// The `does not exist` error of a VM config.
pub fn no_vm_config(node: &str, vmid: u32) -> ApiError {
    ApiError::internal(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

/// The VM `vmid` on `node`.
pub(crate) fn get_vm<'c>(c: &'c Cluster, node: &str, vmid: u32) -> Result<&'c Ct, ApiError> {
    c.vms
        .get(&vmid)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| no_vm_config(node, vmid))
}

pub(crate) fn get_vm_mut<'c>(
    c: &'c mut Cluster,
    node: &str,
    vmid: u32,
) -> Result<&'c mut Ct, ApiError> {
    c.vms
        .get_mut(&vmid)
        .filter(|vm| vm.node == node)
        .ok_or_else(|| no_vm_config(node, vmid))
}

/// `PVE::QemuConfig->check_lock`.
pub(crate) fn check_vm_lock(vm: &Ct, skiplock: bool) -> Result<(), String> {
    match vm.lock() {
        Some(l) if !skiplock => Err(format!("VM is locked ({l})")),
        _ => Ok(()),
    }
}

/// Whether an `agent` property string enables the agent (`1`, `enabled=1`, `1,type=virtio`).
pub fn agent_enabled(v: &str) -> bool {
    let first = v.split(',').next().unwrap_or("");
    let val = first.strip_prefix("enabled=").unwrap_or(first);
    let val = if first.contains('=') && !first.starts_with("enabled=") {
        v.split(',')
            .find_map(|p| p.strip_prefix("enabled="))
            .unwrap_or("0")
    } else {
        val
    };
    validate::parse_boolean(val).unwrap_or(false)
}

/// Whether the VM is a template.
pub fn is_vm_template(vm: &Ct) -> bool {
    vm.conf.get("template").is_some_and(|v| v == "1")
}

/// A qemu config value as JSON (numbers for integer/boolean/number keys).
pub fn vm_conf_value(key: &str, v: &str) -> Value {
    match validate::vm_config_type(key) {
        "integer" | "boolean" => v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
        "number" => v
            .parse::<f64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| json!(v)),
        _ => json!(v),
    }
}

/// Parse a drive (`scsi0`, `ide2`, …) with its schema format.
pub(crate) fn parse_drive(key: &str, value: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let fmt = validate::vm_config_format(key)
        .ok_or_else(|| ApiError::param(key, "unable to parse drive options"))?;
    validate::parse_property_string(fmt, value, key)
        .map_err(|_| ApiError::param(key, "unable to parse drive options"))
}

/// Print a drive as `print_drive` does (volume first, then the options sorted).
pub(crate) fn print_drive(key: &str, drive: &BTreeMap<String, String>) -> String {
    match validate::vm_config_format(key) {
        Some(fmt) => validate::print_property_string(fmt, drive),
        None => drive.get("file").cloned().unwrap_or_default(),
    }
}

/// Whether a parsed drive is a CD-ROM (cloud-init drives are CD-ROMs too).
pub(crate) fn drive_is_cdrom(d: &BTreeMap<String, String>) -> bool {
    d.get("media").is_some_and(|m| m == "cdrom")
}

/// Whether a volume id is a cloud-init volume (`vm-<id>-cloudinit`, or `<storage>:cloudinit`).
pub(crate) fn volid_is_cloudinit(volid: &str) -> bool {
    let name = volid.split_once(':').map(|(_, n)| n).unwrap_or(volid);
    name == "cloudinit"
        || name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .contains("-cloudinit")
}

/// Print a network device as `print_net` does: `<model>=<mac>` first, then the options sorted.
pub(crate) fn print_net(net: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    let model = net.get("model").cloned().unwrap_or_else(|| "virtio".into());
    match net.get("macaddr") {
        Some(mac) => parts.push(format!("{model}={mac}")),
        None => parts.push(model),
    }
    for (k, v) in net {
        if k != "model" && k != "macaddr" {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(",")
}

/// Parse a network device (`virtio=MAC,bridge=vmbr0` or `model=virtio,...`).
pub(crate) fn parse_net(key: &str, value: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let fmt = validate::vm_config_format(key)
        .ok_or_else(|| ApiError::param(key, "unable to parse network options"))?;
    validate::parse_property_string(fmt, value, key)
        .map_err(|e| ApiError::param(key, format!("invalid format - {e}\n")))
}

/// The volume id of VM disk `n` on a storage (`qcow2` files on directory storages).
pub(crate) fn vm_disk_volid(c: &Cluster, sid: &str, vmid: u32, n: u32, base: bool) -> String {
    let prefix = if base { "base" } else { "vm" };
    match c.storage(sid).map(|s| s.kind.as_str()) {
        Some("dir" | "nfs" | "cifs") => format!("{sid}:{vmid}/{prefix}-{vmid}-disk-{n}.qcow2"),
        _ => format!("{sid}:{prefix}-{vmid}-disk-{n}"),
    }
}

/// The cloud-init volume id of a VM on a storage.
fn cloudinit_volid(c: &Cluster, sid: &str, vmid: u32) -> String {
    match c.storage(sid).map(|s| s.kind.as_str()) {
        Some("dir" | "nfs" | "cifs") => format!("{sid}:{vmid}/vm-{vmid}-cloudinit.qcow2"),
        _ => format!("{sid}:vm-{vmid}-cloudinit"),
    }
}

/// The next free disk number of a VM (every `…-disk-N` of its config and snapshots counts).
pub(crate) fn next_disk_index(vm_conf: &BTreeMap<String, String>, vmid: u32) -> u32 {
    let tag = format!("-{vmid}-disk-");
    vm_conf
        .values()
        .filter_map(|v| {
            let file = v.split(',').next().unwrap_or("");
            let i = file.rfind(&tag)?;
            let rest = &file[i + tag.len()..];
            rest.split(|ch: char| !ch.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<u32>().ok())
        })
        .max()
        .map(|m| m + 1)
        .unwrap_or(0)
}

/// The virtual size of an `import` image (what `qemu-img info` reports).
pub fn import_virtual_size(volid: &str) -> u64 {
    if volid.contains("debian-13") {
        3 * GIB
    } else {
        2 * GIB
    }
}

/// Human size as qemu-server's progress lines print it (`2.0 GiB`).
fn human(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// Size as Proxmox prints `size=` (whole GiB as `G`, else `M`).
pub(crate) fn print_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(GIB) {
        format!("{}G", bytes / GIB)
    } else if bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// `PVE::Storage::check_volume_access` for a volume a VM uses (import sources, snippets).
fn check_volume_access(
    c: &Cluster,
    ident: &Identity,
    vmid: u32,
    volid: &str,
) -> Result<(), ApiError> {
    if ident.is_root_pam() {
        return Ok(());
    }
    let Some((sid, name)) = volid.split_once(':') else {
        return Err(ApiError::internal(
            "Only root can pass arbitrary filesystem paths.",
        ));
    };
    let path = format!("/storage/{sid}");
    if c.has_priv(ident, &path, "Datastore.Allocate") {
        return Ok(());
    }
    let vtype = name.split('/').next().unwrap_or("");
    if matches!(vtype, "iso" | "vztmpl" | "import") {
        if c.has_priv(ident, &path, "Datastore.AllocateSpace")
            || c.has_priv(ident, &path, "Datastore.Audit")
        {
            return Ok(());
        }
        return Err(ApiError::perm_text(&format!(
            "{path}, Datastore.AllocateSpace|Datastore.Audit"
        )));
    }
    if name.contains(&format!("-{vmid}-")) {
        return Ok(());
    }
    Err(ApiError::perm(&path, "Datastore.Allocate"))
}

/// `check_vm_modify_config_perm` + the drive, serial and bridge checks of `create_vm` /
/// `update_vm`, for the options in `keys` (sorted, so the first complaint is stable).
fn check_modify_perm(
    c: &Cluster,
    ident: &Identity,
    vmid: u32,
    pool: Option<&str>,
    settings: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    if ident.is_root_pam() {
        return Ok(());
    }
    let vm = |privilege: &str| -> Result<(), ApiError> {
        if c.has_vm_priv(ident, vmid, pool, privilege) {
            Ok(())
        } else {
            Err(ApiError::perm(&format!("/vms/{vmid}"), privilege))
        }
    };
    let numbered = |opt: &str, prefix: &str| {
        opt.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    for (opt, value) in settings {
        let opt = opt.as_str();
        if is_vm_disk_key(opt) || opt == "cdrom" || opt == "tags" {
            continue;
        }
        if ["unused", "usb", "hostpci", "virtiofs"]
            .iter()
            .any(|p| numbered(opt, p))
        {
            continue;
        }
        if numbered(opt, "serial") {
            if value == "socket" {
                vm("VM.Config.HWType")?;
                continue;
            }
            return Err(ApiError::internal(format!(
                "only root can set '{opt}' config for real devices"
            )));
        }
        if CPU_OPTS.contains(&opt) || numbered(opt, "numa") {
            vm("VM.Config.CPU")?;
        } else if MEMORY_OPTS.contains(&opt) {
            vm("VM.Config.Memory")?;
        } else if HWTYPE_OPTS.contains(&opt) {
            vm("VM.Config.HWType")?;
        } else if GENERAL_OPTS.contains(&opt) {
            vm("VM.Config.Options")?;
            if opt == "startup" && !c.has_priv(ident, "/", "Sys.Modify") {
                return Err(ApiError::perm("/", "Sys.Modify"));
            }
        } else if opt == "freeze" {
            vm("VM.PowerMgmt")?;
        } else if DISK_OPTS.contains(&opt) {
            vm("VM.Config.Disk")?;
        } else if numbered(opt, "net") {
            vm("VM.Config.Network")?;
            let net = parse_net(opt, value).unwrap_or_default();
            if let Some(bridge) = net.get("bridge") {
                let zone = "localnetwork";
                match net.get("tag") {
                    Some(tag) => {
                        let path = format!("/sdn/zones/{zone}/{bridge}/{tag}");
                        if !c.has_priv(ident, &path, "SDN.Use") {
                            return Err(ApiError::perm(&path, "SDN.Use"));
                        }
                    }
                    None if !net.contains_key("trunks")
                        && !c.has_bridge_access(ident, zone, bridge) =>
                    {
                        return Err(ApiError::perm(
                            &format!("/sdn/zones/{zone}/{bridge}"),
                            "SDN.Use",
                        ));
                    }
                    None => {}
                }
            }
        } else if CLOUDINIT_OPTS.contains(&opt) || numbered(opt, "ipconfig") {
            if !c.has_vm_priv(ident, vmid, pool, "VM.Config.Cloudinit")
                && !c.has_vm_priv(ident, vmid, pool, "VM.Config.Network")
            {
                return Err(ApiError::perm_text(&format!(
                    "/vms/{vmid}, VM.Config.Cloudinit|VM.Config.Network"
                )));
            }
        } else {
            return Err(ApiError::internal(format!(
                "only root can set '{opt}' config"
            )));
        }
    }
    Ok(())
}

/// `check_storage_access` (+ `check_drive_param`) for new disks, import sources, cloud-init
/// drives and cicustom snippets.
fn check_storage_access(
    c: &Cluster,
    ident: &Identity,
    vmid: u32,
    settings: &BTreeMap<String, String>,
    default_storage: Option<&str>,
) -> Result<(), ApiError> {
    let new_disk = validate::perl_regex(r"(([^/:\s]+):)?(\d+(\.\d+)?)");
    for (ds, value) in settings.iter().filter(|(k, _)| is_vm_disk_key(k)) {
        let drive = parse_drive(ds, value)?;
        let volid = drive.get("file").cloned().unwrap_or_default();
        let cap = new_disk.as_ref().and_then(|re| re.captures(&volid));
        if let Some(src) = drive.get("import-from") {
            let zero = cap
                .as_ref()
                .and_then(|cap| cap.get(3))
                .is_some_and(|m| m.as_str().parse::<f64>().ok() == Some(0.0));
            if !zero {
                return Err(ApiError::param(
                    ds,
                    "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>",
                ));
            }
            let _ = src;
        }
        let cdrom = drive_is_cdrom(&drive);
        if volid.is_empty() || volid == "none" || volid_is_cloudinit(&volid) {
            // Nothing to check.
        } else if cdrom && volid == "cdrom" {
            if !c.has_priv(ident, "/", "Sys.Console") {
                return Err(ApiError::perm("/", "Sys.Console"));
            }
        } else if !cdrom && let Some(cap) = &cap {
            let sid = cap
                .get(2)
                .map(|m| m.as_str().to_string())
                .or_else(|| default_storage.map(str::to_string))
                .ok_or_else(|| {
                    ApiError::internal("no storage ID specified (and no default storage)")
                })?;
            let path = format!("/storage/{sid}");
            if !c.has_priv(ident, &path, "Datastore.AllocateSpace") {
                return Err(ApiError::perm(&path, "Datastore.AllocateSpace"));
            }
            let Some(s) = c.storage(&sid) else {
                return Err(ApiError::internal(format!(
                    "storage '{sid}' does not exist"
                )));
            };
            if !s.supports("images") {
                return Err(ApiError::param(
                    "storage",
                    format!("storage '{sid}' does not support vm images"),
                ));
            }
        } else {
            check_volume_access(c, ident, vmid, &volid)?;
            if let Some((_, name)) = volid.split_once(':') {
                let vtype = if name.starts_with("iso/") {
                    "iso"
                } else {
                    "images"
                };
                if vtype == "iso" && !cdrom {
                    return Err(ApiError::param(
                        ds,
                        "explicit 'media=cdrom' is required for iso images",
                    ));
                }
            }
        }
        if let Some(src) = drive.get("import-from") {
            let Some((sid, name)) = src.split_once(':') else {
                if !ident.is_root_pam() {
                    return Err(ApiError::internal(
                        "Only root can pass arbitrary filesystem paths.",
                    ));
                }
                continue;
            };
            if c.storage(sid).is_none() {
                return Err(ApiError::internal(format!(
                    "storage '{sid}' does not exist"
                )));
            }
            let vtype = if name.starts_with("import/") {
                "import"
            } else if name.starts_with("iso/") {
                "iso"
            } else if name.starts_with("vztmpl/") {
                "vztmpl"
            } else if name.starts_with("snippets/") {
                "snippets"
            } else {
                "images"
            };
            if vtype != "images" && vtype != "import" {
                return Err(ApiError::param(
                    ds,
                    format!("{src} has wrong type '{vtype}' - needs to be 'images' or 'import'"),
                ));
            }
            match owner_of(src) {
                Some(owner) => {
                    let path = format!("/vms/{owner}");
                    if !c.has_priv(ident, &path, "VM.Clone") {
                        return Err(ApiError::perm(&path, "VM.Clone"));
                    }
                }
                None => check_volume_access(c, ident, vmid, src)?,
            }
        }
    }
    if let Some(cicustom) = settings.get("cicustom") {
        for part in cicustom.split(',') {
            if let Some((_, volid)) = part.split_once('=') {
                check_volume_access(c, ident, vmid, volid)?;
            }
        }
    }
    Ok(())
}

/// The owner VMID of an `images` volume (`vm-100-disk-0`, `base-100-disk-0`).
pub(crate) fn owner_of(volid: &str) -> Option<u32> {
    let name = volid.split_once(':').map(|(_, n)| n)?;
    name.split('/').find_map(|part| {
        part.strip_prefix("vm-")
            .or_else(|| part.strip_prefix("base-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|n| n.parse::<u32>().ok())
    })
}

/// `PVE::Tools::validate_ssh_public_keys` on the URL-decoded `sshkeys`.
fn validate_ssh_keys(encoded: &str) -> Result<(), ApiError> {
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8_lossy()
        .into_owned();
    for line in decoded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap_or("");
        let blob = parts.next().unwrap_or("");
        let ok =
            (kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                && blob.len() > 16
                && blob
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "+/=".contains(ch));
        if !ok {
            return Err(ApiError::internal("SSH public key validation error"));
        }
    }
    Ok(())
}

/// `PVE::Tools::encrypt_pw`: SHA-256-crypt (`$5$salt$…`) of `cipassword`, which the guest's
/// `/etc/shadow` accepts as it is (cloud-init passes a hashed password through); a value that
/// is already a hash is kept.
pub(crate) fn encrypt_pw(c: &Cluster, pw: &str) -> String {
    if pw.starts_with("$5$") || pw.starts_with("$6$") {
        return pw.to_string();
    }
    let salt = format!("{:016x}", crate::state::mix(c.seed ^ c.now()));
    crate::crypt::sha256_crypt(pw, &salt[..8])
}

/// `GET /nodes/{node}/qemu`.
pub fn list(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let ident = ctx.ident()?.clone();
    let full = ctx.params.flag("full", false);
    let c = ctx.state.lock();
    let list: Vec<Value> = c
        .vms
        .values()
        .filter(|vm| vm.node == node)
        .filter(|vm| c.has_priv(&ident, &format!("/vms/{}", vm.vmid), "VM.Audit"))
        .map(|vm| c.vm_status(vm, full))
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// `GET /nodes/{node}/qemu/{vmid}`: directory index.
pub fn diridx(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    get_vm(&c, &node, vmid)?;
    let subs = [
        "config",
        "cloudinit",
        "pending",
        "status",
        "unlink",
        "vncproxy",
        "termproxy",
        "migrate",
        "resize",
        "move",
        "rrd",
        "rrddata",
        "monitor",
        "agent",
        "snapshot",
        "spiceproxy",
        "sendkey",
        "firewall",
        "mtunnel",
        "remote_migrate",
    ];
    Ok(Reply::data(Value::Array(
        subs.iter().map(|s| json!({"subdir": s})).collect(),
    )))
}

/// One disk the create task allocates.
#[derive(Debug, Clone)]
struct DiskPlan {
    key: String,
    /// The printed drive once allocated.
    value: String,
    /// A log line of the allocation.
    created: String,
    /// Import source and its virtual size.
    import: Option<(String, u64)>,
}

/// Allocate the VM's disks as `create_disks` does: new volumes, imports, cloud-init drives.
/// `first_index`: the number of the first new disk; `cloudinit_at`: where the VM already has a
/// cloud-init drive.
fn plan_disks(
    c: &Cluster,
    vmid: u32,
    settings: &BTreeMap<String, String>,
    default_storage: Option<&str>,
    template: bool,
    first_index: u32,
    mut cloudinit_at: Option<String>,
) -> Result<Vec<DiskPlan>, String> {
    let new_disk = validate::perl_regex(r"(([^/:\s]+):)?(\d+(\.\d+)?)");
    let mut plans = Vec::new();
    let mut n = first_index;
    for (ds, value) in settings.iter().filter(|(k, _)| is_vm_disk_key(k)) {
        let mut drive = parse_drive(ds, value).map_err(|e| e.reason())?;
        let volid = drive.get("file").cloned().unwrap_or_default();
        let (sid_opt, volname) = match volid.split_once(':') {
            Some((s, v)) => (Some(s.to_string()), v.to_string()),
            None => (None, volid.clone()),
        };
        if volid.is_empty() || volid == "none" || volid == "cdrom" {
            drive.remove("size");
            plans.push(DiskPlan {
                key: ds.clone(),
                value: print_drive(ds, &drive),
                created: String::new(),
                import: None,
            });
        } else if volname == "cloudinit" {
            let sid = sid_opt
                .or_else(|| default_storage.map(str::to_string))
                .ok_or("no storage ID specified (and no default storage)")?;
            if let Some(at) = &cloudinit_at {
                return Err(format!(
                    "{ds} - cloud-init drive is already attached at '{at}'"
                ));
            }
            if c.storage(&sid).is_none() {
                return Err(format!("storage '{sid}' does not exist"));
            }
            cloudinit_at = Some(ds.clone());
            drive.insert("file".into(), cloudinit_volid(c, &sid, vmid));
            drive.insert("media".into(), "cdrom".into());
            drive.remove("format");
            let printed = print_drive(ds, &drive);
            plans.push(DiskPlan {
                key: ds.clone(),
                created: format!("{ds}: successfully created disk '{printed}'"),
                value: printed,
                import: None,
            });
        } else if let Some(cap) = new_disk.as_ref().and_then(|re| re.captures(&volid)) {
            let sid = cap
                .get(2)
                .map(|m| m.as_str().to_string())
                .or_else(|| default_storage.map(str::to_string))
                .ok_or("no storage ID specified (and no default storage)")?;
            let gib: f64 = cap
                .get(3)
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(0.0);
            let mut import = None;
            let size = if let Some(src) = drive.remove("import-from") {
                let vol = c.volumes.iter().find(|v| v.volid == src);
                let from_vm = owner_of(&src).and_then(|o| c.vms.get(&o)).and_then(|vm| {
                    vm.conf
                        .values()
                        .find(|v| v.split(',').next() == Some(src.as_str()))
                        .and_then(|v| {
                            v.split(',')
                                .find_map(|p| p.strip_prefix("size="))
                                .and_then(parse_size)
                        })
                });
                let vsize = match (vol, from_vm) {
                    (Some(v), _) => import_virtual_size(&v.volid),
                    (None, Some(s)) => s,
                    (None, None) => {
                        return Err(format!(
                            "cannot import from '{src}' - could not get size of {src}"
                        ));
                    }
                };
                import = Some((src, vsize));
                vsize
            } else {
                (gib * GIB as f64) as u64
            };
            drive.insert("file".into(), vm_disk_volid(c, &sid, vmid, n, template));
            n += 1;
            drive.insert("size".into(), print_size(size));
            drive.remove("format");
            let printed = print_drive(ds, &drive);
            plans.push(DiskPlan {
                key: ds.clone(),
                created: format!("{ds}: successfully created disk '{printed}'"),
                value: printed,
                import,
            });
        } else {
            // An existing volume: it must exist.
            let size = c
                .vms
                .values()
                .flat_map(|vm| vm.conf.values())
                .find(|v| v.split(',').next() == Some(volid.as_str()))
                .and_then(|v| {
                    v.split(',')
                        .find_map(|p| p.strip_prefix("size="))
                        .and_then(parse_size)
                })
                .or_else(|| c.volumes.iter().find(|v| v.volid == volid).map(|v| v.size));
            let Some(size) = size else {
                return Err(format!("volume {volid} does not exist"));
            };
            drive.insert("size".into(), print_size(size));
            plans.push(DiskPlan {
                key: ds.clone(),
                value: print_drive(ds, &drive),
                created: String::new(),
                import: None,
            });
        }
    }
    Ok(plans)
}

/// `get_default_bootdevices`: the first disk, the first CD-ROM (not cloud-init), `net0`.
fn default_boot(conf: &BTreeMap<String, String>) -> String {
    let order_keys = |prefix: &'static str, max: u32| (0..max).map(move |i| format!("{prefix}{i}"));
    let all: Vec<String> = order_keys("ide", 4)
        .chain(order_keys("sata", 6))
        .chain(order_keys("scsi", 31))
        .chain(order_keys("virtio", 16))
        .collect();
    let mut out = Vec::new();
    let disk = all.iter().find(|k| {
        conf.get(*k)
            .is_some_and(|v| !v.contains("media=cdrom") && !volid_is_cloudinit(v))
    });
    if let Some(d) = disk {
        out.push(d.clone());
    }
    let cd = all.iter().find(|k| {
        conf.get(*k).is_some_and(|v| {
            v.contains("media=cdrom") && !volid_is_cloudinit(v.split(',').next().unwrap_or(""))
        })
    });
    if let Some(d) = cd {
        out.push(d.clone());
    }
    if let Some(n) = (0..32)
        .map(|i| format!("net{i}"))
        .find(|k| conf.contains_key(k))
    {
        out.push(n);
    }
    format!("order={}", out.join(";"))
}

/// A UUID from the cluster's seed (SMBIOS, vmgenid).
pub(crate) fn uuid(c: &mut Cluster) -> String {
    c.mac_counter += 1;
    let a = crate::state::mix(c.seed ^ c.mac_counter.wrapping_mul(0x9E37));
    let b = crate::state::mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// The cloud-init settings of a config, as the NoCloud seed is written from them.
pub(crate) fn cloud_init_of(conf: &BTreeMap<String, String>, name: &str) -> CloudInit {
    let sshkeys = conf.get("sshkeys").map(|k| {
        percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .into_owned()
    });
    let ipconfig: BTreeMap<String, String> = conf
        .iter()
        .filter(|(k, _)| k.starts_with("ipconfig"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let user_snippet = conf.get("cicustom").and_then(|c| {
        c.split(',')
            .find_map(|p| p.strip_prefix("user="))
            .map(str::to_string)
    });
    CloudInit {
        hostname: name.to_string(),
        user: conf.get("ciuser").cloned(),
        password_hash: conf.get("cipassword").cloned(),
        ssh_keys: sshkeys,
        ipconfig,
        nameserver: conf.get("nameserver").cloned(),
        searchdomain: conf.get("searchdomain").cloned(),
        user_snippet,
        user_data: None,
    }
}

/// Whether the config has a cloud-init drive.
pub(crate) fn has_cloudinit(conf: &BTreeMap<String, String>) -> bool {
    conf.iter()
        .any(|(k, v)| is_vm_disk_key(k) && volid_is_cloudinit(v.split(',').next().unwrap_or("")))
}

/// `POST /nodes/{node}/qemu`: create a VM (task `qmcreate`).
pub fn create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let p = &ctx.params;
    if p.has("archive") {
        return Err(ApiError::internal(
            "restoring backups is not supported by the simulator",
        ));
    }
    if let Some(keys) = p.str("sshkeys") {
        validate_ssh_keys(&keys)?;
    }
    let pool = p.str("pool");
    let storage = p.str("storage");
    let start = p.flag("start", false);
    let mut c = ctx.state.lock();
    if let Some(pl) = &pool
        && !c.pools.contains_key(pl)
    {
        return Err(ApiError::perm_text(&format!("pool '{pl}' does not exist")));
    }
    if let Some(sid) = &storage {
        let path = format!("/storage/{sid}");
        if !c.has_priv(&ident, &path, "Datastore.AllocateSpace") {
            return Err(ApiError::perm(&path, "Datastore.AllocateSpace"));
        }
    }
    if p.flag("ha-managed", false) && !c.has_priv(&ident, "/", "Sys.Console") {
        return Err(ApiError::perm("/", "Sys.Console"));
    }
    if start && !c.has_vm_priv(&ident, vmid, pool.as_deref(), "VM.PowerMgmt") {
        return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.PowerMgmt"));
    }
    let allowed = c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Allocate")
        || pool
            .as_ref()
            .is_some_and(|pl| c.has_priv(&ident, &format!("/pool/{pl}"), "VM.Allocate"));
    if !allowed {
        return Err(ApiError::custom(403, "Permission check failed"));
    }
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in p.iter() {
        if CREATE_ONLY.contains(&k.as_str()) {
            continue;
        }
        settings.insert(k.clone(), v.to_text());
    }
    if let Some(cd) = settings.remove("cdrom") {
        let v = if cd.contains("media=") {
            cd
        } else {
            format!("{cd},media=cdrom")
        };
        settings.insert("ide2".into(), v);
    }
    if !settings.is_empty() {
        check_storage_access(&c, &ident, vmid, &settings, storage.as_deref())?;
        check_modify_perm(&c, &ident, vmid, pool.as_deref(), &settings)?;
        // `check_drive_param`: every drive parses.
        for (k, v) in settings.iter().filter(|(k, _)| is_vm_disk_key(k)) {
            parse_drive(k, v)?;
        }
    }
    if let Err(e) = c.check_vmid_unused(vmid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {vmid} - {e}"
        )));
    }
    // Normalize: MAC addresses, tags, booleans; the password is stored hashed.
    let mut conf: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &settings {
        if is_vm_disk_key(k) {
            continue;
        }
        let value = if k.starts_with("net") && k[3..].bytes().all(|b| b.is_ascii_digit()) {
            let mut net = parse_net(k, v)?;
            if !net.contains_key("macaddr") {
                net.insert("macaddr".into(), c.next_mac());
            }
            print_net(&net)
        } else if k == "cipassword" {
            encrypt_pw(&c, v)
        } else if k == "tags" {
            let mut seen = BTreeSet::new();
            validate::split_list(v)
                .into_iter()
                .filter(|t| seen.insert(t.to_lowercase()))
                .collect::<Vec<_>>()
                .join(";")
        } else {
            v.clone()
        };
        conf.insert(k.clone(), value);
    }
    let name = conf
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("VM {vmid}"));
    // The VM exists from now on, locked until the task wrote its disks.
    let now = c.now();
    let mut locked = conf.clone();
    locked.insert("lock".into(), "create".into());
    c.vms.insert(
        vmid,
        Ct {
            vmid,
            node: node.clone(),
            conf: locked,
            pending: BTreeMap::new(),
            pending_delete: BTreeSet::new(),
            running: false,
            started_at: None,
            created_at: now,
            history: Vec::new(),
            snapshots: BTreeMap::new(),
            parent: None,
            hang_on_shutdown: false,
        },
    );
    let template = conf.get("template").is_some_and(|t| t == "1");
    let disks_in: BTreeMap<String, String> = settings
        .iter()
        .filter(|(k, _)| is_vm_disk_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let smbios = if conf.contains_key("smbios1") {
        None
    } else {
        Some(format!("uuid={}", uuid(&mut c)))
    };
    let vmgenid = match conf.get("vmgenid").map(String::as_str) {
        None | Some("1") => Some(uuid(&mut c)),
        _ => None,
    };
    let state = ctx.state.clone();
    let node2 = node.clone();
    let ident2 = ident.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmcreate",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let total = t.with(|c| c.timings.create);
            let emsg = format!("unable to create VM {vmid} -");
            let plans = t.with(|c| {
                let first = next_disk_index(&disks_in, vmid);
                plan_disks(
                    c,
                    vmid,
                    &disks_in,
                    storage.as_deref(),
                    template,
                    first,
                    None,
                )
            });
            let plans = match plans {
                Ok(p) => p,
                Err(e) => {
                    t.with(|c| {
                        c.vms.remove(&vmid);
                    });
                    return Err(format!("{emsg} {e}"));
                }
            };
            let d = step(total, plans.len().max(1) as u32 + 1);
            let mut imports = Vec::new();
            for plan in &plans {
                if let Some((src, vsize)) = &plan.import {
                    t.log(format!("transferred 0.0 B of {} (0.00%)", human(*vsize)));
                    t.sleep(d / 2).await;
                    t.log(format!(
                        "transferred {} of {} (100.00%)",
                        human(*vsize),
                        human(*vsize)
                    ));
                    imports.push((plan.key.clone(), src.clone(), *vsize));
                }
                t.sleep(d / 2).await;
                if !plan.created.is_empty() {
                    t.log(plan.created.clone());
                }
            }
            let spec = t.with(|c| {
                let vm = c.vms.get_mut(&vmid)?;
                for plan in &plans {
                    vm.conf.insert(plan.key.clone(), plan.value.clone());
                }
                if !vm.conf.contains_key("boot") {
                    let b = default_boot(&vm.conf);
                    vm.conf.insert("boot".into(), b);
                }
                if let Some(s) = &smbios {
                    vm.conf.insert("smbios1".into(), s.clone());
                }
                if let Some(g) = &vmgenid {
                    vm.conf.insert("vmgenid".into(), g.clone());
                }
                vm.conf.insert(
                    "meta".into(),
                    format!("creation-qemu=10.0.2,ctime={}", vm.created_at),
                );
                let mut conf = vm.conf.clone();
                conf.remove("lock");
                Some(VmSpec {
                    name: name.clone(),
                    cloud_init: cloud_init_of(&conf, &name),
                    conf,
                    imports: imports.clone(),
                    snapname: None,
                })
            });
            let Some(spec) = spec else {
                return Err(format!("{emsg} VM vanished"));
            };
            let backend = t.state().backend().clone();
            let res = tokio::task::spawn_blocking(move || backend.vm_create(vmid, &spec))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")));
            t.sleep(d).await;
            match res {
                Ok(lines) => {
                    for l in lines {
                        t.log(l);
                    }
                }
                Err(e) => {
                    t.with(|c| {
                        c.vms.remove(&vmid);
                    });
                    let backend = t.state().backend().clone();
                    let _ = tokio::task::spawn_blocking(move || backend.vm_destroy(vmid)).await;
                    return Err(format!("{emsg} {e}"));
                }
            }
            t.with(|c| {
                if let Some(vm) = c.vms.get_mut(&vmid) {
                    vm.conf.remove("lock");
                }
                if let Some(pl) = pool.and_then(|pl| c.pools.get_mut(&pl)) {
                    pl.vms.insert(vmid);
                }
            });
            if start {
                t.log("Execute autostart");
                if let Err(e) = vm_start_in_task(&t, &state, &node2, vmid, false, &ident2).await {
                    t.log(e);
                    return Ok(1);
                }
            }
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `PVE::QemuServer::vm_start` inside a task: checks, pending values applied, the cloud-init
/// seed generated, the backend boots the VM; the agent answers after the boot delay.
pub(crate) async fn vm_start_in_task(
    t: &TaskCtx,
    state: &SimState,
    node: &str,
    vmid: u32,
    skiplock: bool,
    _ident: &Identity,
) -> Result<(), String> {
    let d = t.with(|c| c.timings.start);
    let snippets_root = crate::routes::storage::storage_path("local");
    let conf = t.with(|c| {
        let bridges = c.bridges.clone();
        let vm = c.vms.get_mut(&vmid).ok_or_else(|| {
            format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        })?;
        if is_vm_template(vm) {
            return Err("you can't start a vm if it's a template".to_string());
        }
        check_vm_lock(vm, skiplock)?;
        if vm.running {
            return Err(format!("VM {vmid} already running"));
        }
        for (_, v) in vm.conf.iter().filter(|(k, _)| k.starts_with("net")) {
            let bridge = v.split(',').find_map(|p| p.strip_prefix("bridge="));
            if let Some(b) = bridge
                && !bridges.iter().any(|x| x == b)
            {
                return Err(format!("bridge '{b}' does not exist"));
            }
        }
        apply_pending(vm);
        Ok(vm.conf.clone())
    })?;
    let name = conf
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("VM {vmid}"));
    let mut ci = cloud_init_of(&conf, &name);
    if has_cloudinit(&conf) {
        if let Some(vol) = &ci.user_snippet {
            let (sid, file) = vol.split_once(':').unwrap_or(("local", vol.as_str()));
            let root = if sid == "local" {
                snippets_root.clone()
            } else {
                crate::routes::storage::storage_path(sid)
            };
            let path = format!("{root}/{file}");
            match state.node_file(node, &path) {
                Some(data) => ci.user_data = Some(data),
                None => return Err(format!("volume '{vol}' does not exist")),
            }
        }
        t.log("generating cloud-init ISO");
    }
    t.sleep(d).await;
    let backend = state.backend().clone();
    let conf2 = conf.clone();
    tokio::task::spawn_blocking(move || backend.vm_start(vmid, &conf2, &ci))
        .await
        .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))
        .map_err(|e| format!("start failed: {e}"))?;
    let boot = t.with(|c| {
        let now = c.now();
        if let Some(vm) = c.vms.get_mut(&vmid) {
            vm.set_running(now);
        }
        c.timings.vm_boot
    });
    state.set_agent_ready_after(vmid, boot);
    Ok(())
}

pub(crate) fn apply_pending(vm: &mut Ct) {
    for (k, v) in std::mem::take(&mut vm.pending) {
        vm.conf.insert(k, v);
    }
    for k in std::mem::take(&mut vm.pending_delete) {
        vm.conf.remove(&k);
    }
}

/// Every volume a VM config references (disks, cloud-init, unused), with snapshots'.
pub(crate) fn vm_volumes(vm: &Ct) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let confs = std::iter::once(&vm.conf).chain(vm.snapshots.values().map(|s| &s.conf));
    for conf in confs {
        for (k, v) in conf {
            if !(is_vm_disk_key(k) || k.starts_with("unused")) {
                continue;
            }
            if v.contains("media=cdrom") && !volid_is_cloudinit(v.split(',').next().unwrap_or("")) {
                continue;
            }
            let file = v.split(',').next().unwrap_or("").to_string();
            if file.contains(':') && !out.contains(&file) {
                out.push(file);
            }
        }
    }
    out
}

/// Whether another guest's disk (current or in a snapshot) is a linked clone of base volume
/// `volid` (`local-lvm:base-100-disk-0/vm-101-disk-0`): `PVE::Storage::volume_is_base_and_used`.
pub(crate) fn base_volume_used(c: &Cluster, vmid: u32, volid: &str) -> bool {
    let child = format!("{volid}/");
    c.vms
        .values()
        .chain(c.cts.values())
        .filter(|g| g.vmid != vmid)
        .any(|g| {
            let confs = std::iter::once(&g.conf).chain(g.snapshots.values().map(|s| &s.conf));
            confs
                .flat_map(|conf| conf.values())
                .any(|v| v.split(',').next().is_some_and(|f| f.starts_with(&child)))
        })
}

/// `DELETE /nodes/{node}/qemu/{vmid}` (task `qmdestroy`; `purge`,
/// `destroy-unreferenced-disks`, `skiplock`).
pub fn destroy(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let skiplock = ctx.params.flag("skiplock", false);
    if skiplock && !ident.is_root_pam() {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    if vm.conf.get("protection").map(String::as_str) == Some("1") {
        return Err(ApiError::internal(format!(
            "can't remove VM {vmid} - protection mode enabled"
        )));
    }
    check_vm_lock(vm, skiplock).map_err(ApiError::internal)?;
    // Early check: a running VM is refused before the task starts.
    if vm.running {
        return Err(ApiError::internal(format!(
            "VM {vmid} is running - destroy failed"
        )));
    }
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmdestroy",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.destroy);
            let volumes = t.with(|c| {
                let vm = c.vms.get(&vmid).ok_or_else(|| {
                    format!(
                        "Configuration file 'nodes/{vmid}/qemu-server/{vmid}.conf' does not exist"
                    )
                })?;
                if vm.running {
                    return Err(format!("VM {vmid} is running - destroy failed"));
                }
                // `destroy_vm`: a template's base volume a linked clone still uses stops the
                // destruction before anything is removed.
                if is_vm_template(vm) {
                    for volid in vm_volumes(vm) {
                        if base_volume_used(c, vmid, &volid) {
                            return Err(format!(
                                "base volume '{volid}' is still in use by linked cloned"
                            ));
                        }
                    }
                }
                Ok(vm_volumes(vm))
            })?;
            t.sleep(d).await;
            for v in volumes {
                let name = v
                    .split(':')
                    .nth(1)
                    .unwrap_or(&v)
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                t.log(format!("  Logical volume \"{name}\" successfully removed."));
            }
            t.with(|c| {
                // `remove_vm_access` takes the VM out of its pool whether or not `purge` also
                // cleans up backup jobs, replication and HA (none of which are simulated).
                c.vms.remove(&vmid);
                for p in c.pools.values_mut() {
                    p.vms.remove(&vmid);
                }
            });
            t.state().forget_vm_runtime(vmid);
            let backend = t.state().backend().clone();
            tokio::task::spawn_blocking(move || backend.vm_destroy(vmid))
                .await
                .unwrap_or_else(|e| Err(format!("backend task failed: {e}")))?;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `GET /nodes/{node}/qemu/{vmid}/config` (`current`, `snapshot`).
pub fn config_get(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    let conf = match ctx.params.str("snapshot") {
        Some(s) => vm
            .snapshots
            .get(&s)
            .map(|sn| sn.conf.clone())
            .ok_or_else(|| ApiError::internal(format!("snapshot '{s}' does not exist")))?,
        None => vm.effective_conf(ctx.params.flag("current", false)),
    };
    let mut m = Map::new();
    for (k, v) in &conf {
        m.insert(k.clone(), vm_conf_value(k, v));
    }
    m.insert("digest".into(), json!(vm.digest()));
    Ok(Reply::data(Value::Object(m)))
}

/// Keys of a config update that are not config options.
const UPDATE_META: &[&str] = &[
    "node",
    "vmid",
    "delete",
    "revert",
    "digest",
    "skiplock",
    "force",
    "background_delay",
];

/// Validate and apply a config update (`update_vm_api`), returning the log lines of disks it
/// allocated. `sync`: `PUT` (no task).
fn update_config(ctx: &Ctx<'_>) -> Result<(String, u32, Vec<String>), ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let p = &ctx.params;
    let skiplock = p.flag("skiplock", false);
    if skiplock && !ident.is_root_pam() {
        return Err(ApiError::param(
            "skiplock",
            "Only root may use this option.",
        ));
    }
    let deletes: Vec<String> = p
        .str("delete")
        .map(|d| validate::split_list(&d))
        .unwrap_or_default();
    let reverts: Vec<String> = p
        .str("revert")
        .map(|d| validate::split_list(&d))
        .unwrap_or_default();
    let mut sets: BTreeMap<String, String> = p
        .iter()
        .filter(|(k, _)| !UPDATE_META.contains(&k.as_str()))
        .map(|(k, v)| {
            let text = match v {
                PVal::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                other => other.to_text(),
            };
            (k.clone(), text)
        })
        .collect();
    if sets.is_empty() && deletes.is_empty() && reverts.is_empty() {
        return Err(ApiError::internal("no options specified"));
    }
    if let Some(keys) = sets.get("sshkeys") {
        validate_ssh_keys(keys)?;
    }
    if let Some(cd) = sets.remove("cdrom") {
        let v = if cd.contains("media=") {
            cd
        } else {
            format!("{cd},media=cdrom")
        };
        sets.insert("ide2".into(), v);
    }
    for d in &deletes {
        if sets.contains_key(d) {
            return Err(ApiError::param(
                d,
                format!("can't delete and set option '{d}' at the same time"),
            ));
        }
    }
    let mut c = ctx.state.lock();
    check_storage_access(&c, &ident, vmid, &sets, None)?;
    check_modify_perm(&c, &ident, vmid, None, &sets)?;
    // Deleting needs the privilege the option needs (disks: VM.Config.Disk).
    for d in &deletes {
        if is_vm_disk_key(d) || d.starts_with("unused") {
            if !ident.is_root_pam()
                && !c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Config.Disk")
            {
                return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.Config.Disk"));
            }
        } else {
            let one: BTreeMap<String, String> =
                std::iter::once((d.clone(), String::new())).collect();
            check_modify_perm(&c, &ident, vmid, None, &one)?;
        }
    }
    for (k, _) in sets.iter().filter(|(k, _)| is_vm_disk_key(k)) {
        if !ident.is_root_pam() {
            let cdrom_ok = sets.get(k).is_some_and(|v| v.contains("media=cdrom"))
                && c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Config.CDROM");
            if !cdrom_ok && !c.has_priv(&ident, &format!("/vms/{vmid}"), "VM.Config.Disk") {
                return Err(ApiError::perm(&format!("/vms/{vmid}"), "VM.Config.Disk"));
            }
        }
        parse_drive(k, &sets[k])?;
    }
    let vm = get_vm(&c, &node, vmid)?;
    check_vm_lock(vm, skiplock).map_err(ApiError::internal)?;
    if let Some(d) = p.str("digest")
        && d != vm.digest()
    {
        return Err(ApiError::internal(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    for d in &deletes {
        if d == "template" && is_vm_template(vm) {
            return Err(ApiError::internal(
                "unable to delete 'template' option of a template",
            ));
        }
    }
    let running = vm.running;
    let old_conf = vm.conf.clone();
    let mut all_disks = vm.conf.clone();
    all_disks.extend(vm.pending.clone());
    // Allocate new disks (`<storage>:<size>`, imports, cloud-init drives).
    let disk_sets: BTreeMap<String, String> = sets
        .iter()
        .filter(|(k, _)| is_vm_disk_key(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cloudinit_at = all_disks
        .iter()
        .find(|(k, v)| {
            is_vm_disk_key(k)
                && !disk_sets.contains_key(*k)
                && volid_is_cloudinit(v.split(',').next().unwrap_or(""))
        })
        .map(|(k, _)| k.clone());
    let plans = plan_disks(
        &c,
        vmid,
        &disk_sets,
        None,
        false,
        next_disk_index(&all_disks, vmid),
        cloudinit_at,
    )
    .map_err(ApiError::internal)?;
    let mut normalized: Vec<(String, String)> = Vec::new();
    for (k, v) in &sets {
        if is_vm_disk_key(k) {
            continue;
        }
        let value = if k.starts_with("net") && k[3..].bytes().all(|b| b.is_ascii_digit()) {
            let mut net = parse_net(k, v)?;
            if !net.contains_key("macaddr") {
                let old_mac = old_conf
                    .get(k)
                    .and_then(|old| parse_net(k, old).ok())
                    .and_then(|o| o.get("macaddr").cloned());
                let mac = match old_mac {
                    Some(m) => m,
                    None => c.next_mac(),
                };
                net.insert("macaddr".into(), mac);
            }
            print_net(&net)
        } else if k == "cipassword" {
            encrypt_pw(&c, v)
        } else if k == "tags" {
            let mut seen = BTreeSet::new();
            validate::split_list(v)
                .into_iter()
                .filter(|t| seen.insert(t.to_lowercase()))
                .collect::<Vec<_>>()
                .join(";")
        } else {
            v.clone()
        };
        normalized.push((k.clone(), value));
    }
    let mut log = Vec::new();
    for plan in &plans {
        normalized.push((plan.key.clone(), plan.value.clone()));
        if !plan.created.is_empty() {
            log.push(plan.created.clone());
        }
    }
    let vm = get_vm_mut(&mut c, &node, vmid)?;
    for r in &reverts {
        vm.pending.remove(r);
        vm.pending_delete.remove(r);
    }
    let live = |k: &str| LIVE_KEYS.contains(&k) || k.starts_with("ipconfig");
    for (k, v) in normalized {
        if !running || live(&k) {
            vm.pending.remove(&k);
            vm.pending_delete.remove(&k);
            vm.conf.insert(k, v);
        } else {
            vm.pending_delete.remove(&k);
            vm.pending.insert(k, v);
        }
    }
    let mut unused_n = (0..256)
        .find(|i| !vm.conf.contains_key(&format!("unused{i}")))
        .unwrap_or(0);
    for d in deletes {
        if !running || live(&d) {
            vm.pending.remove(&d);
            if let Some(old) = vm.conf.remove(&d)
                && is_vm_disk_key(&d)
                && !old.contains("media=cdrom")
            {
                // A removed disk stays as `unusedN` (a cloud-init drive is freed).
                let file = old.split(',').next().unwrap_or("").to_string();
                if !volid_is_cloudinit(&file) && file.contains(':') {
                    vm.conf.insert(format!("unused{unused_n}"), file);
                    unused_n += 1;
                }
            }
        } else {
            vm.pending.remove(&d);
            if vm.conf.contains_key(&d) {
                vm.pending_delete.insert(d);
            }
        }
    }
    Ok((node, vmid, log))
}

/// `PUT /nodes/{node}/qemu/{vmid}/config` (synchronous).
pub fn config_put(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    update_config(ctx)?;
    Ok(Reply::null())
}

/// `POST /nodes/{node}/qemu/{vmid}/config` (asynchronous: task `qmconfig`).
pub fn config_post(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let ident = ctx.ident()?.clone();
    let (node, vmid, log) = update_config(ctx)?;
    let mut c = ctx.state.lock();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmconfig",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            for l in log {
                t.log(l);
            }
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `GET /nodes/{node}/qemu/{vmid}/pending`.
pub fn pending(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    let keys: BTreeSet<&String> = vm.conf.keys().chain(vm.pending.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let mut m = Map::new();
        m.insert("key".into(), json!(k));
        if let Some(v) = vm.conf.get(k) {
            m.insert("value".into(), vm_conf_value(k, v));
        }
        if let Some(v) = vm.pending.get(k) {
            m.insert("pending".into(), vm_conf_value(k, v));
        }
        if vm.pending_delete.contains(k) {
            m.insert("delete".into(), json!(1));
        }
        out.push(Value::Object(m));
    }
    Ok(Reply::data(Value::Array(out)))
}

/// `GET …/status/current`.
pub fn status_current(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    let mut st = c.vm_status(vm, true);
    let running = vm.running;
    let paused = running && ctx.state.vm_paused(vmid);
    drop(c);
    if let Some(o) = st.as_object_mut() {
        if paused {
            o.insert("qmpstatus".into(), json!("paused"));
            o.insert("status".into(), json!("running"));
        }
        if running && let Some(u) = ctx.state.backend().usage(vmid) {
            o.insert("cpu".into(), json!(u.cpu));
            o.insert("mem".into(), json!(u.mem));
            o.insert("netin".into(), json!(u.netin));
            o.insert("netout".into(), json!(u.netout));
            o.insert("diskread".into(), json!(u.diskread));
            o.insert("diskwrite".into(), json!(u.diskwrite));
            if let Some(p) = u.pid {
                o.insert("pid".into(), json!(p));
            }
        }
    }
    Ok(Reply::data(st))
}

/// Refuse root-only options for other users (`raise_param_exc`).
fn root_only(ctx: &Ctx<'_>, ident: &Identity, keys: &[&str]) -> Result<(), ApiError> {
    for k in keys {
        if ctx.params.flag(k, false) && !ident.is_root_pam() {
            return Err(ApiError::param(k, "Only root may use this option."));
        }
    }
    Ok(())
}

/// `POST …/status/start` (task `qmstart`).
pub fn start(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    root_only(ctx, &ident, &["skiplock"])?;
    for k in [
        "stateuri",
        "migratedfrom",
        "migration_type",
        "migration_network",
        "targetstorage",
        "force-cpu",
        "nets-host-mtu",
    ] {
        if ctx.params.has(k) && !ident.is_root_pam() {
            return Err(ApiError::param(k, "Only root may use this option."));
        }
    }
    let skiplock = ctx.params.flag("skiplock", false);
    let mut c = ctx.state.lock();
    get_vm(&c, &node, vmid)?;
    let state = ctx.state.clone();
    let node2 = node.clone();
    let ident2 = ident.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmstart",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            vm_start_in_task(&t, &state, &node2, vmid, skiplock, &ident2).await?;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// Mark a VM stopped after its process ended (hard stop or clean shutdown).
async fn stopped(t: &TaskCtx, vmid: u32, clean: bool, agent: bool) {
    let backend = t.state().backend().clone();
    let _ = tokio::task::spawn_blocking(move || {
        if clean {
            backend.vm_shutdown(vmid, agent)
        } else {
            backend.vm_stop(vmid)
        }
    })
    .await;
    t.with(|c| {
        let now = c.now();
        if let Some(vm) = c.vms.get_mut(&vmid) {
            vm.set_stopped(now);
        }
    });
    t.state().forget_vm_runtime(vmid);
}

/// `POST …/status/stop` (task `qmstop`; a stopped VM stops quietly).
pub fn stop(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    root_only(ctx, &ident, &["skiplock", "keepActive"])?;
    if ctx.params.has("migratedfrom") && !ident.is_root_pam() {
        return Err(ApiError::param(
            "migratedfrom",
            "Only root may use this option.",
        ));
    }
    let skiplock = ctx.params.flag("skiplock", false);
    let overrule = ctx.params.flag("overrule-shutdown", false);
    let mut c = ctx.state.lock();
    get_vm(&c, &node, vmid)?;
    let state = ctx.state.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmstop",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            if overrule {
                let aborted: Vec<String> = t.with(|c| {
                    c.tasks
                        .values()
                        .filter(|x| {
                            x.running && x.ttype == "qmshutdown" && x.id == vmid.to_string()
                        })
                        .map(|x| x.upid.clone())
                        .collect()
                });
                for u in &aborted {
                    crate::tasks::abort(&state, u);
                }
                if !aborted.is_empty() {
                    t.log(format!(
                        "overruled qmshutdown tasks: {}",
                        aborted.join(", ")
                    ));
                }
            }
            let d = t.with(|c| c.timings.stop);
            let running = t.with(|c| {
                let vm = c.vms.get(&vmid).ok_or_else(|| {
                    format!(
                        "Configuration file 'nodes/{vmid}/qemu-server/{vmid}.conf' does not exist"
                    )
                })?;
                check_vm_lock(vm, skiplock)?;
                Ok::<bool, String>(vm.running)
            })?;
            if !running {
                return Ok(0);
            }
            t.sleep(d).await;
            stopped(&t, vmid, false, false).await;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/shutdown` (task `qmshutdown`): `guest-shutdown` through the agent when it
/// is enabled, ACPI otherwise; `timeout` (default 60 s) then `forceStop` or failure.
pub fn shutdown(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    root_only(ctx, &ident, &["skiplock", "keepActive"])?;
    let skiplock = ctx.params.flag("skiplock", false);
    let timeout = ctx.params.int("timeout").unwrap_or(60).max(0) as u64;
    let force = ctx.params.flag("forceStop", false);
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    let paused = vm.running && ctx.state.vm_paused(vmid);
    let mut hard = false;
    if paused {
        if force {
            hard = true;
        } else {
            return Err(ApiError::internal("VM is paused - cannot shutdown"));
        }
    }
    let hang = vm.hang_on_shutdown;
    let agent = vm.conf.get("agent").is_some_and(|a| agent_enabled(a));
    let state = ctx.state.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmshutdown",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            if hard {
                t.log("VM is paused - stop instead of shutdown");
            }
            let d = t.with(|c| c.timings.shutdown);
            let running = t.with(|c| {
                let vm = c.vms.get(&vmid).ok_or_else(|| {
                    format!(
                        "Configuration file 'nodes/{vmid}/qemu-server/{vmid}.conf' does not exist"
                    )
                })?;
                check_vm_lock(vm, skiplock)?;
                Ok::<bool, String>(vm.running)
            })?;
            if !running {
                return Ok(0);
            }
            if hard {
                t.sleep(d).await;
                stopped(&t, vmid, false, false).await;
                return Ok(1);
            }
            // The agent must answer for `guest-shutdown`; without it the request is lost.
            let agent_answers = agent && state.agent_answers(vmid);
            if hang || (agent && !agent_answers) {
                if agent && !agent_answers {
                    t.log("QEMU guest agent is not running");
                }
                let wait = std::time::Duration::from_secs(timeout)
                    .min(d.max(std::time::Duration::from_millis(1)) * 10);
                t.sleep(wait).await;
                if !force {
                    return Err("VM quit/powerdown failed - got timeout".into());
                }
                t.log("VM still running - terminating now with SIGTERM");
                stopped(&t, vmid, false, false).await;
                return Ok(1);
            }
            t.sleep(d).await;
            stopped(&t, vmid, true, agent).await;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/reboot` (task `qmreboot`; applies pending changes).
pub fn reboot(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    if vm.running && ctx.state.vm_paused(vmid) {
        return Err(ApiError::internal("VM is paused - cannot shutdown"));
    }
    if !vm.running {
        return Err(ApiError::internal(format!("VM {vmid} not running")));
    }
    let agent = vm.conf.get("agent").is_some_and(|a| agent_enabled(a));
    let state = ctx.state.clone();
    let node2 = node.clone();
    let ident2 = ident.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmreboot",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            let d = t.with(|c| c.timings.reboot);
            t.with(|c| {
                c.vms
                    .get(&vmid)
                    .map(|vm| check_vm_lock(vm, false))
                    .unwrap_or(Ok(()))
            })?;
            t.sleep(d / 2).await;
            stopped(&t, vmid, true, agent).await;
            t.sleep(d / 2).await;
            vm_start_in_task(&t, &state, &node2, vmid, false, &ident2).await?;
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/suspend` (task `qmpause`; `todisk` → `qmsuspend`, not simulated).
pub fn suspend(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    root_only(ctx, &ident, &["skiplock"])?;
    let skiplock = ctx.params.flag("skiplock", false);
    if ctx.params.flag("todisk", false) {
        return Err(ApiError::internal(
            "suspend to disk is not supported by the simulator",
        ));
    }
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    if !vm.running {
        return Err(ApiError::internal(format!("VM {vmid} not running")));
    }
    let state = ctx.state.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmpause",
        &vmid.to_string(),
        &ident,
        move |t| async move {
            t.with(|c| {
                c.vms
                    .get(&vmid)
                    .map(|vm| check_vm_lock(vm, skiplock))
                    .unwrap_or(Ok(()))
            })?;
            state.set_vm_paused(vmid, true);
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `POST …/status/resume` (task `qmresume`).
pub fn resume(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let ident = ctx.ident()?.clone();
    root_only(ctx, &ident, &["skiplock", "nocheck"])?;
    let mut c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    if !vm.running {
        return Err(ApiError::internal(format!("VM {vmid} not running")));
    }
    let state = ctx.state.clone();
    let upid = spawn_task(
        ctx.state,
        &mut c,
        &node,
        "qmresume",
        &vmid.to_string(),
        &ident,
        move |_t| async move {
            state.set_vm_paused(vmid, false);
            Ok(0)
        },
    );
    Ok(Reply::data(json!(upid)))
}

/// `GET …/rrddata` (`timeframe`, `cf`).
pub fn rrddata(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let node = ctx.p("node")?;
    let vmid = ctx.vmid()?;
    let tf = ctx.p("timeframe")?;
    let max = ctx.params.str("cf").as_deref() == Some("MAX");
    let c = ctx.state.lock();
    let vm = get_vm(&c, &node, vmid)?;
    let st = c.vm_status(vm, false);
    let cpus = st.get("cpus").and_then(Value::as_f64).unwrap_or(1.0);
    let maxdisk = Cluster::vm_maxdisk(vm);
    let mut points = crate::rrd::ct_points(vm, cpus, c.now(), &tf, max);
    // A VM reports no filesystem usage; its maxdisk is the boot disk's size.
    for p in points.iter_mut().filter_map(Value::as_object_mut) {
        if p.contains_key("disk") {
            p.insert("disk".into(), json!(0));
        }
        if p.contains_key("maxdisk") {
            p.insert("maxdisk".into(), json!(maxdisk));
        }
        p.remove("maxswap");
        p.remove("swap");
    }
    Ok(Reply::data(Value::Array(points)))
}
