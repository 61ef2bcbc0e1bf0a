//! The real-LXC backend: every simulated CT is an LXC container booted from the
//! Debian 12 template that `scripts/setup-lxc.sh` builds, with systemd and sshd
//! inside, on the simulator's own bridge (`ctfbr0`, `10.151.0.1/24` by default).
//!
//! Layout: `<state-dir>/lxc/<node>/<vmid>/{config,rootfs/,console.log,lxc.log,snapshots/}`:
//! each node has its own namespace, its own LXC path (`-P <state-dir>/lxc/<node>`), and as on
//! Proxmox the LXC name is the vmid. A migration stops the container and moves its directory
//! (storage and config) into the target node's namespace. Host-side veth devices are `cf<tag><vmid>i<n>`, where
//! `<tag>` is derived from the state directory, so two simulators do not share them.
//! Lifecycle calls the LXC tools (`lxc-start -P <abs> -n <name> -d`, `lxc-stop`,
//! `lxc-attach`); the root filesystem is a plain directory, so destroying a CT is stopping it
//! and removing its directory. A linked clone of a template (`full=0`) is copy-on-write as on
//! LVM-thin or ZFS: an overlayfs mounted at its `rootfs` on the host, the template's files
//! below and its own changes in `delta/` (unmounted when it is destroyed; a rollback or a
//! migration gives it a copy of its own). A full clone copies the files.
//!
//! Inside each container the backend writes the hostname, a static network
//! configuration (also set by LXC itself), a `resolv.conf` that points only at the
//! bridge address, the apt proxy (`Acquire::http::Proxy "http://<bridge>:3142";`),
//! the root password, authorized keys and fresh SSH host keys.
//!
//! Other containers may share the bridge (left over from other work, or another tool's), so
//! the backend never relies on its claim files alone: an address is only handed out when
//! nothing on the bridge answers for it (the host's neighbour table, the host's own
//! addresses and the addresses of running LXC containers), and a CT does not start while a
//! host interface with its veth name exists.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc::UnboundedSender;

use super::{CloudInit, CreateSpec, CtBackend, ExecChunk, ExecFuture, PushOptions, Usage, VmSpec};

#[path = "lxc_qemu.rs"]
mod qemu;

use crate::config::LxcOptions;
use crate::scenario::ServiceSpec;
pub use qemu::{qcow2_info, qcow2_snapshots};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One network interface of a guest as the backend wired it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nic {
    index: u32,
    name: String,
    mac: Option<String>,
    ip: Option<(Ipv4Addr, u8)>,
    veth: String,
}

#[derive(Debug, Clone)]
struct Guest {
    hostname: String,
    conf: BTreeMap<String, String>,
    nics: Vec<Nic>,
    started: Option<Instant>,
    cpu_sample: Option<(Instant, u64)>,
    init_pid: Option<u32>,
}

/// Real LXC containers; see the module documentation.
pub struct LxcBackend {
    opts: LxcOptions,
    root: PathBuf,
    tag: String,
    guests: Mutex<HashMap<u32, Guest>>,
    /// The node each CT belongs to (its namespace under `root`).
    nodes: Mutex<HashMap<u32, String>>,
    /// VMs (QEMU/KVM), see [`qemu`].
    qemu: Mutex<HashMap<u32, qemu::QemuVm>>,
}

impl Drop for LxcBackend {
    fn drop(&mut self) {
        if !self.opts.destroy_on_drop {
            return;
        }
        let vmids: Vec<u32> = self.lock().keys().copied().collect();
        for vmid in vmids {
            if let Err(e) = self.destroy(vmid) {
                eprintln!("ctforge-pve-sim: cannot remove CT {vmid}: {e}");
            }
        }
        let vms: Vec<u32> = match self.qemu.lock() {
            Ok(m) => m.keys().copied().collect(),
            Err(p) => p.into_inner().keys().copied().collect(),
        };
        for vmid in vms {
            // Everything goes, linked clones and their templates alike.
            if let Err(e) = self.qemu_remove(vmid) {
                eprintln!("ctforge-pve-sim: cannot remove VM {vmid}: {e}");
            }
        }
    }
}

/// The outcome of a finished command.
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Out, String> {
    let name = format!("{:?}", cmd.get_program());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {name}: {e}"))?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        // A child that exits early closes the pipe; its exit status tells.
        let _ = w.write_all(data);
    }
    let o = child
        .wait_with_output()
        .map_err(|e| format!("{name} failed: {e}"))?;
    Ok(Out {
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr: o.stderr,
    })
}

/// A linked clone's own changes (overlayfs upper layer) under its directory.
const DELTA: &str = "delta";
/// overlayfs's work directory under a linked clone's directory.
const WORK: &str = "overlay-work";

/// Whether a `rootfs` value names a linked clone's volume: Proxmox's
/// `<storage>:base-<template>-disk-<n>/vm-<clone>-disk-<n>` (a clone of a base volume).
fn is_linked_volume(rootfs: Option<&String>) -> bool {
    rootfs
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.split_once(':'))
        .is_some_and(|(_, name)| name.starts_with("base-") && name.contains('/'))
}

/// A copy of a directory tree with owners, modes, links and times (`cp -a`, reflinked where
/// the filesystem can).
fn copy_tree(src: &Path, dest: &Path) -> Result<(), String> {
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg("--")
            .arg(src)
            .arg(dest),
        None,
    )
    .map(|_| ())
}

fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Out, String> {
    let desc = format!("{:?}", cmd);
    let o = run(cmd, stdin)?;
    if o.code != 0 {
        return Err(format!(
            "{desc} exited with {}: {}",
            o.code,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(o)
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    (p <= 32).then_some((ip, p))
}

fn in_subnet(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - u32::from(prefix.min(32)));
    (u32::from(ip) & mask) == (u32::from(net) & mask)
}

fn prop(v: &str, key: &str) -> Option<String> {
    v.split(',').find_map(|p| {
        let (k, val) = p.split_once('=')?;
        (k == key).then(|| val.to_string())
    })
}

/// Proxmox's `pve-configid` snapshot names: nothing that could leave a directory or be read as
/// an option by `qemu-img`.
fn check_snapname(name: &str) -> Result<(), String> {
    let ok = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid snapshot name '{name}'"))
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Refuse paths that are not absolute or that climb with `..`.
fn clean_guest_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("invalid path '{path}': not absolute"));
    }
    if path.split('/').any(|c| c == "..") || path.contains('\0') {
        return Err(format!("invalid path '{path}'"));
    }
    Ok(path.to_string())
}

impl LxcBackend {
    /// A backend keeping its containers under `<state_dir>/lxc`. Checks that the
    /// LXC tools, the template and the bridge exist, and says what to run if not.
    pub fn new(state_dir: &Path, opts: LxcOptions) -> Result<LxcBackend, String> {
        let abs = if state_dir.is_absolute() {
            state_dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| format!("current directory: {e}"))?
                .join(state_dir)
        };
        let root = abs.join("lxc");
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let root = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let hint = "run scripts/setup-lxc.sh (or `ctforge sim --backend lxc --setup-lxc`) as root";
        if which("lxc-start").is_none() || which("lxc-attach").is_none() {
            return Err(format!("the LXC tools are not installed; {hint}"));
        }
        if !opts.template.is_file() {
            return Err(format!(
                "OS template {} not found; {hint}",
                opts.template.display()
            ));
        }
        if !Path::new("/sys/class/net").join(&opts.bridge).exists() {
            return Err(format!("bridge '{}' does not exist; {hint}", opts.bridge));
        }
        // A short, stable tag per state dir (FNV-1a).
        let mut h: u32 = 0x811c_9dc5;
        for b in root.to_string_lossy().bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Ok(LxcBackend {
            opts,
            root,
            tag: format!("{:03x}", h & 0xfff),
            guests: Mutex::new(HashMap::new()),
            nodes: Mutex::new(HashMap::new()),
            qemu: Mutex::new(HashMap::new()),
        })
    }

    /// The root of this backend's node namespaces: `<state-dir>/lxc`, absolute.
    pub fn lxc_path(&self) -> &Path {
        &self.root
    }

    /// The LXC path (`-P`) of a CT: its node's namespace, `<state-dir>/lxc/<node>`.
    pub fn lxc_path_of(&self, vmid: u32) -> PathBuf {
        match self.node_of(vmid) {
            Some(node) => self.root.join(node),
            None => self.root.clone(),
        }
    }

    /// The node whose namespace holds the CT.
    pub fn node_of(&self, vmid: u32) -> Option<String> {
        let m = match self.nodes.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.get(&vmid).cloned()
    }

    fn set_node(&self, vmid: u32, node: &str) {
        let mut m = match self.nodes.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if node.is_empty() {
            m.remove(&vmid);
        } else {
            m.insert(vmid, node.to_owned());
        }
    }

    /// The LXC container name of a CT (the vmid, as on Proxmox).
    pub fn container_name(&self, vmid: u32) -> String {
        vmid.to_string()
    }

    /// Host-side veth device name of a CT's interface `index` (at most 15 bytes).
    pub fn veth_name(&self, vmid: u32, index: u32) -> String {
        format!("cf{}{vmid}i{index}", self.tag)
    }

    /// The IPv4 address the backend gave the CT's `net0`, if any.
    pub fn guest_ip(&self, vmid: u32) -> Option<Ipv4Addr> {
        self.lock()
            .get(&vmid)
            .and_then(|g| g.nics.iter().find(|n| n.index == 0).and_then(|n| n.ip))
            .map(|(ip, _)| ip)
    }

    fn dir(&self, vmid: u32) -> PathBuf {
        self.lxc_path_of(vmid).join(vmid.to_string())
    }

    fn rootfs(&self, vmid: u32) -> PathBuf {
        self.dir(vmid).join("rootfs")
    }

    /// Where snapshot `name` of a CT keeps its copy of the root filesystem.
    fn snapshot_dir(&self, vmid: u32, name: &str) -> Result<PathBuf, String> {
        check_snapname(name)?;
        Ok(self.dir(vmid).join("snapshots").join(name))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Guest>> {
        match self.guests.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn lxc(&self, tool: &str, vmid: u32) -> Command {
        let mut c = Command::new(tool);
        c.arg("-P")
            .arg(self.lxc_path_of(vmid))
            .arg("-n")
            .arg(self.container_name(vmid));
        c
    }

    /// Whether LXC reports the container as running.
    pub fn is_running(&self, vmid: u32) -> bool {
        run(self.lxc("lxc-info", vmid).arg("-sH"), None)
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "RUNNING")
            .unwrap_or(false)
    }

    /// Host PID of the container's init (cached; asked from `lxc-info -p`).
    fn init_pid(&self, vmid: u32) -> Option<u32> {
        let cached = self.lock().get(&vmid).and_then(|g| g.init_pid);
        if let Some(pid) = cached
            && Path::new("/proc").join(pid.to_string()).exists()
        {
            return Some(pid);
        }
        let o = run(self.lxc("lxc-info", vmid).arg("-pH"), None).ok()?;
        let pid: u32 = String::from_utf8_lossy(&o.stdout).trim().parse().ok()?;
        if let Some(g) = self.lock().get_mut(&vmid) {
            g.init_pid = Some(pid);
        }
        Some(pid)
    }

    /// Pick addresses for the interfaces: a static `ip=` inside the bridge subnet is
    /// kept, anything else (dhcp, none, another subnet) gets a free address.
    fn plan_nics(&self, vmid: u32, conf: &BTreeMap<String, String>) -> Vec<Nic> {
        let (net, prefix) = (self.opts.bridge_ip, self.opts.bridge_prefix);
        self.release_claims(vmid);
        let mut used: Vec<Ipv4Addr> = self
            .lock()
            .iter()
            .filter(|(v, _)| **v != vmid)
            .flat_map(|(_, g)| g.nics.iter().filter_map(|n| n.ip.map(|x| x.0)))
            .collect();
        used.push(net);
        // Addresses chosen for the CT must be free on the wire too; an address the request
        // names is the requester's choice, as on Proxmox.
        let mut busy = used.clone();
        busy.extend(live_addresses(&self.opts.bridge));
        let mut nics = Vec::new();
        for (k, v) in conf.iter().filter(|(k, _)| k.starts_with("net")) {
            let Ok(index) = k[3..].parse::<u32>() else {
                continue;
            };
            if index > 9 {
                continue;
            }
            let requested = prop(v, "ip").as_deref().and_then(parse_cidr);
            let ip = match requested {
                Some((ip, p))
                    if p == prefix
                        && in_subnet(ip, net, prefix)
                        && !used.contains(&ip)
                        && self.claim(ip, vmid) =>
                {
                    Some((ip, p))
                }
                _ if index == 0 || prop(v, "ip").is_some() => {
                    self.free_ip(&busy, vmid).map(|ip| (ip, prefix))
                }
                _ => None,
            };
            if let Some((ip, _)) = ip {
                used.push(ip);
                busy.push(ip);
            }
            nics.push(Nic {
                index,
                name: prop(v, "name").unwrap_or_else(|| format!("eth{index}")),
                // Simulators on one machine share the bridge and generate the same
                // Proxmox-style MACs from the same seed; on the wire every guest gets a
                // locally administered MAC derived from its host-wide unique address.
                mac: ip
                    .map(|(ip, _)| {
                        let [a, b, c, d] = ip.octets();
                        format!("02:cf:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
                    })
                    .or_else(|| prop(v, "hwaddr")),
                ip,
                veth: self.veth_name(vmid, index),
            });
        }
        nics
    }

    fn free_ip(&self, used: &[Ipv4Addr], vmid: u32) -> Option<Ipv4Addr> {
        let net = u32::from(self.opts.bridge_ip);
        let prefix = u32::from(self.opts.bridge_prefix.clamp(8, 30));
        let size = 1u32 << (32 - prefix);
        let base = net & !(size - 1);
        // Start at a vmid-dependent offset in the upper half to keep addresses stable.
        let lo = (size / 2).max(2);
        let span = size - 1 - lo;
        (0..span)
            .map(|i| Ipv4Addr::from(base + lo + (vmid + i) % span))
            .find(|ip| !used.contains(ip) && self.claim(*ip, vmid))
    }

    /// Where the addresses taken on this bridge are claimed, host-wide: every simulator on
    /// the machine shares the bridge, so two of them (e.g. parallel tests) must never hand
    /// out the same address. One file per address holding `<pid> <tag> <vmid>`.
    fn claims_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("ctforge-sim-claims-{}", self.opts.bridge))
    }

    /// Claims `ip` for `vmid`; false when a live simulator (another process, or another
    /// backend in this one) holds it. Claims of dead processes are taken over.
    fn claim(&self, ip: Ipv4Addr, vmid: u32) -> bool {
        let dir = self.claims_dir();
        if std::fs::create_dir_all(&dir).is_err() {
            return true; // No shared registry available: fall back to per-process planning.
        }
        let path = dir.join(ip.to_string());
        let me = format!("{} {} {vmid}", std::process::id(), self.tag);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => return f.write_all(me.as_bytes()).is_ok(),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    if holder.trim() == me {
                        return true;
                    }
                    let pid = holder.split_whitespace().next().unwrap_or("");
                    let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
                    if alive || holder.is_empty() {
                        // Held (or being written this instant): leave it.
                        return false;
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Err(_) => return true,
            }
        }
        false
    }

    /// Drops the address claims of `vmid` (destroyed, or about to be re-planned).
    fn release_claims(&self, vmid: u32) {
        let me = format!("{} {} {vmid}", std::process::id(), self.tag);
        let Ok(entries) = std::fs::read_dir(self.claims_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            if std::fs::read_to_string(entry.path()).is_ok_and(|h| h.trim() == me) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn write_lxc_config(&self, vmid: u32, g: &Guest) -> Result<(), String> {
        let dir = self.dir(vmid);
        let mut s = String::new();
        s.push_str("# Written by ctforge-pve-sim (lxc backend).\n");
        s.push_str("lxc.include = /usr/share/lxc/config/common.conf\n");
        s.push_str("lxc.arch = amd64\n");
        s.push_str(&format!("lxc.uts.name = {}\n", g.hostname));
        s.push_str(&format!(
            "lxc.rootfs.path = dir:{}\n",
            dir.join("rootfs").display()
        ));
        if Path::new("/sys/kernel/security/apparmor").exists() {
            s.push_str("lxc.apparmor.profile = unconfined\n");
        }
        s.push_str("lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed\n");
        s.push_str("lxc.tty.max = 2\nlxc.pty.max = 256\n");
        s.push_str(&format!(
            "lxc.console.logfile = {}\n",
            dir.join("console.log").display()
        ));
        let mem: u64 = g
            .conf
            .get("memory")
            .and_then(|m| m.parse().ok())
            .unwrap_or(512);
        let cores: Option<u64> = g.conf.get("cores").and_then(|c| c.parse().ok());
        // On Proxmox, lxcfs makes /proc/meminfo show the CT's own memory, and scripts size
        // themselves by it (the library's pre-checks warn below 2 GB). The same view, bound
        // over the container's /proc/meminfo (the static form of what lxcfs serves).
        let swap: u64 = g
            .conf
            .get("swap")
            .and_then(|m| m.parse().ok())
            .unwrap_or(512);
        let meminfo = dir.join("meminfo");
        let (total, swap_kb) = (mem * 1024, swap * 1024);
        std::fs::write(
            &meminfo,
            format!(
                "MemTotal:       {total:>8} kB\nMemFree:        {free:>8} kB\nMemAvailable:   {free:>8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nSwapTotal:      {swap_kb:>8} kB\nSwapFree:       {swap_kb:>8} kB\n",
                free = total * 9 / 10
            ),
        )
        .map_err(|e| format!("{}: {e}", meminfo.display()))?;
        s.push_str(&format!(
            "lxc.mount.entry = {} proc/meminfo none bind,ro,optional 0 0\n",
            meminfo.display()
        ));
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        if v2 {
            s.push_str(&format!("lxc.cgroup2.memory.max = {}\n", mem * 1024 * 1024));
            if let Some(c) = cores {
                s.push_str(&format!("lxc.cgroup2.cpu.max = {} 100000\n", c * 100_000));
            }
        } else {
            s.push_str(&format!(
                "lxc.cgroup.memory.limit_in_bytes = {}\n",
                mem * 1024 * 1024
            ));
            if let Some(c) = cores {
                s.push_str("lxc.cgroup.cpu.cfs_period_us = 100000\n");
                s.push_str(&format!("lxc.cgroup.cpu.cfs_quota_us = {}\n", c * 100_000));
            }
        }
        for (i, n) in g.nics.iter().enumerate() {
            s.push_str(&format!("lxc.net.{i}.type = veth\n"));
            s.push_str(&format!("lxc.net.{i}.link = {}\n", self.opts.bridge));
            s.push_str(&format!("lxc.net.{i}.name = {}\n", n.name));
            s.push_str(&format!("lxc.net.{i}.veth.pair = {}\n", n.veth));
            s.push_str(&format!("lxc.net.{i}.flags = up\n"));
            if let Some(m) = &n.mac {
                s.push_str(&format!("lxc.net.{i}.hwaddr = {}\n", m.to_lowercase()));
            }
            if let Some((ip, p)) = n.ip {
                s.push_str(&format!("lxc.net.{i}.ipv4.address = {ip}/{p}\n"));
                if n.index == 0 {
                    s.push_str(&format!(
                        "lxc.net.{i}.ipv4.gateway = {}\n",
                        self.opts.bridge_ip
                    ));
                }
            }
        }
        std::fs::write(dir.join("config"), s).map_err(|e| format!("write config: {e}"))
    }

    /// Files inside the rootfs: network, DNS, apt proxy, hostname.
    fn write_guest_files(&self, vmid: u32, g: &Guest) -> Result<(), String> {
        let rootfs = self.rootfs(vmid);
        let w = |rel: &str, content: &str| -> Result<(), String> {
            let p = rootfs.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            // Never follow a symlink out of the rootfs.
            if p.symlink_metadata()
                .map(|m| m.is_symlink())
                .unwrap_or(false)
            {
                std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            std::fs::write(&p, content).map_err(|e| format!("{}: {e}", p.display()))
        };
        w("etc/hostname", &format!("{}\n", g.hostname))?;
        w(
            "etc/hosts",
            &format!(
                "127.0.0.1\tlocalhost\n127.0.1.1\t{h}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                h = g.hostname
            ),
        )?;
        // No DNS server exists on the bridge on purpose: nothing leaves it.
        w(
            "etc/resolv.conf",
            &format!(
                "# ctforge-pve-sim: no external DNS; apt goes through the proxy.\nnameserver {}\n",
                self.opts.bridge_ip
            ),
        )?;
        w(
            "etc/apt/apt.conf.d/01ctforge-proxy",
            &format!(
                "Acquire::http::Proxy \"http://{}:{}\";\nAcquire::Languages \"none\";\n",
                self.opts.bridge_ip, self.opts.proxy_port
            ),
        )?;
        for n in &g.nics {
            let mut net = format!("[Match]\nName={}\n\n[Network]\n", n.name);
            match n.ip {
                Some((ip, p)) => {
                    net.push_str(&format!("Address={ip}/{p}\n"));
                    if n.index == 0 {
                        net.push_str(&format!("Gateway={}\n", self.opts.bridge_ip));
                    }
                }
                None => net.push_str("LinkLocalAddressing=ipv6\n"),
            }
            w(&format!("etc/systemd/network/{}.network", n.name), &net)?;
        }
        Ok(())
    }

    fn extract_template(&self, vmid: u32) -> Result<(), String> {
        let rootfs = self.rootfs(vmid);
        std::fs::create_dir_all(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
        run_ok(
            Command::new("tar")
                .arg("--zstd")
                .arg("--numeric-owner")
                .arg("-xpf")
                .arg(&self.opts.template)
                .arg("-C")
                .arg(&rootfs),
            None,
        )?;
        Ok(())
    }

    fn keygen(&self, vmid: u32, hostname: &str) -> Result<Vec<String>, String> {
        let ssh = self.rootfs(vmid).join("etc/ssh");
        std::fs::create_dir_all(&ssh).map_err(|e| format!("{}: {e}", ssh.display()))?;
        let mut lines = Vec::new();
        for (kt, bits) in [("rsa", Some("3072")), ("ecdsa", None), ("ed25519", None)] {
            let key = ssh.join(format!("ssh_host_{kt}_key"));
            let _ = std::fs::remove_file(&key);
            let _ = std::fs::remove_file(key.with_extension("pub"));
            let mut c = Command::new("ssh-keygen");
            c.args(["-q", "-t", kt, "-N", ""]);
            if let Some(b) = bits {
                c.args(["-b", b]);
            }
            c.arg("-C")
                .arg(format!("root@{hostname}"))
                .arg("-f")
                .arg(&key);
            run_ok(&mut c, None)?;
            let fp = run_ok(Command::new("ssh-keygen").arg("-lf").arg(&key), None)?;
            lines.push(format!(
                "real SSH host key 'ssh_host_{kt}_key': {}",
                String::from_utf8_lossy(&fp.stdout).trim()
            ));
        }
        Ok(lines)
    }

    fn set_password(&self, vmid: u32, pw: &str) -> Result<(), String> {
        let input = format!("root:{pw}\n");
        run_ok(
            Command::new("chpasswd").arg("-R").arg(self.rootfs(vmid)),
            Some(input.as_bytes()),
        )
        .map(|_| ())
        .map_err(|_| "unable to set the root password".to_string())
    }

    fn set_keys(&self, vmid: u32, keys: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.rootfs(vmid).join("root/.ssh");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let f = dir.join("authorized_keys");
        let mut text = keys.trim_end().to_string();
        text.push('\n');
        std::fs::write(&f, text).map_err(|e| format!("{}: {e}", f.display()))?;
        let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600));
        Ok(())
    }

    /// Whether the CT's root filesystem is a linked clone's overlay (mounted at `rootfs`).
    fn layered(&self, vmid: u32) -> bool {
        let rootfs = self.rootfs(vmid).to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.split(' ').nth(4) == Some(rootfs.as_str())
                    && l.split(" - ")
                        .nth(1)
                        .is_some_and(|t| t.starts_with("overlay "))
            })
    }

    /// A linked clone's root filesystem: `lower` (the template's, which Proxmox never changes
    /// while it is a template) read-only below, the clone's own changes in `<ct>/delta`,
    /// merged at `<ct>/rootfs` on the host — copy-on-write as a base volume's clone on
    /// LVM-thin or ZFS, so the clone takes no copy. Everything else (guest files, snapshots,
    /// LXC's `dir:` rootfs) sees an ordinary directory.
    fn mount_layers(&self, lower: &Path, vmid: u32) -> Result<(), String> {
        let dir = self.dir(vmid);
        let (upper, work, rootfs) = (dir.join(DELTA), dir.join(WORK), self.rootfs(vmid));
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        // The root directory's own owner and mode come from the lower layer.
        run_ok(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lower.display(),
                    upper.display(),
                    work.display()
                ))
                .arg(&rootfs),
            None,
        )
        .map(|_| ())
        .map_err(|e| format!("cannot mount the linked clone's layers: {e}"))
    }

    /// Drops a linked clone's layers (unmounted, its changes removed), leaving an empty
    /// `rootfs` directory; nothing for a CT with its own copy.
    fn drop_layers(&self, vmid: u32) -> Result<(), String> {
        if !self.layered(vmid) {
            return Ok(());
        }
        let dir = self.dir(vmid);
        run_ok(Command::new("umount").arg(self.rootfs(vmid)), None)?;
        for d in [dir.join(DELTA), dir.join(WORK)] {
            if d.exists() {
                std::fs::remove_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
        }
        Ok(())
    }

    /// Makes a linked clone a CT with its own copy of its files (merged view copied, layers
    /// dropped); nothing for a CT that has one.
    fn flatten(&self, vmid: u32) -> Result<(), String> {
        if !self.layered(vmid) {
            return Ok(());
        }
        let flat = self.dir(vmid).join("rootfs.flat");
        if flat.exists() {
            std::fs::remove_dir_all(&flat).map_err(|e| format!("{}: {e}", flat.display()))?;
        }
        copy_tree(&self.rootfs(vmid), &flat)?;
        self.drop_layers(vmid)?;
        let rootfs = self.rootfs(vmid);
        std::fs::remove_dir(&rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
        std::fs::rename(&flat, &rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))
    }

    /// Lazily unmount anything still mounted under a CT's directory.
    fn unmount_leftovers(&self, vmid: u32) {
        let dir = self.dir(vmid);
        let prefix = dir.to_string_lossy().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = run(Command::new("umount").arg("-l").arg(&m), None);
        }
    }

    fn cgroup_file(&self, pid: u32, controller: &str, file: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        for l in text.lines() {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            if ctrls.split(',').any(|c| c == controller) {
                let p = PathBuf::from(format!("/sys/fs/cgroup/{ctrls}{path}/{file}"));
                if p.exists() {
                    return Some(p);
                }
            }
            if ctrls.is_empty() {
                let p = PathBuf::from(format!("/sys/fs/cgroup{path}/{file}"));
                if p.exists() {
                    return Some(p);
                }
            }
        }
        None
    }

    /// CPU time used by the container's cgroup, nanoseconds.
    fn cpu_ns(&self, pid: u32) -> Option<u64> {
        if let Some(p) = self.cgroup_file(pid, "cpuacct", "cpuacct.usage") {
            return read_u64(&p);
        }
        let p = self.cgroup_file(pid, "", "cpu.stat")?;
        let text = std::fs::read_to_string(p).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    }

    fn mem_bytes(&self, pid: u32) -> Option<u64> {
        if let Some(p) = self.cgroup_file(pid, "memory", "memory.usage_in_bytes") {
            let usage = read_u64(&p)?;
            // Like `free` inside the CT: page cache does not count as used.
            let cache = self
                .cgroup_file(pid, "memory", "memory.stat")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("total_inactive_file "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(0);
            return Some(usage.saturating_sub(cache));
        }
        self.cgroup_file(pid, "", "memory.current")
            .and_then(|p| read_u64(&p))
    }

    fn disk_io(&self, pid: u32) -> (u64, u64) {
        let Some(p) = self.cgroup_file(pid, "blkio", "blkio.throttle.io_service_bytes") else {
            return (0, 0);
        };
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let (mut r, mut w) = (0u64, 0u64);
        for l in text.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 3 {
                let n: u64 = f[2].parse().unwrap_or(0);
                match f[1] {
                    "Read" => r = r.saturating_add(n),
                    "Write" => w = w.saturating_add(n),
                    _ => {}
                }
            }
        }
        (r, w)
    }
}

/// Addresses something on the machine already uses, whatever created it: the neighbours the
/// host has seen on `bridge` (not failed ones), the host's own addresses, and the addresses
/// of running LXC containers in the default LXC path (`lxc-ls --active`).
fn live_addresses(bridge: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let text = |cmd: &mut Command| {
        run(cmd, None)
            .ok()
            .filter(|o| o.code == 0)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let neigh = text(Command::new("ip").args(["-4", "neigh", "show", "dev", bridge]));
    out.extend(
        neigh
            .lines()
            .filter(|l| !l.contains("FAILED") && !l.contains("INCOMPLETE"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<Ipv4Addr>().ok()),
    );
    let addrs = text(Command::new("ip").args(["-4", "-o", "addr", "show"]));
    out.extend(addrs.lines().filter_map(|l| {
        let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
        parse_cidr(cidr).map(|(ip, _)| ip)
    }));
    if which("lxc-ls").is_some() {
        let lxc = text(Command::new("lxc-ls").args(["--active", "-f", "-F", "IPV4"]));
        out.extend(
            lxc.lines()
                .flat_map(|l| l.split([',', ' ']))
                .filter_map(|w| w.trim().parse::<Ipv4Addr>().ok()),
        );
    }
    out
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

impl CtBackend for LxcBackend {
    fn name(&self) -> &'static str {
        "lxc"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn create(&self, vmid: u32, spec: &CreateSpec) -> Result<Vec<String>, String> {
        self.set_node(vmid, &spec.node);
        let dir = self.dir(vmid);
        if self.is_running(vmid) {
            if self.lock().contains_key(&vmid) {
                return Err(format!(
                    "container {} is running",
                    self.container_name(vmid)
                ));
            }
            // Left running by an earlier simulator with the same state dir (real containers
            // outlive the process): this simulator starts its cluster afresh, so it goes.
            run_ok(self.lxc("lxc-stop", vmid).arg("-k"), None)
                .map_err(|e| format!("cannot stop the leftover container {vmid}: {e}"))?;
        }
        if dir.exists() {
            // Leftover of an earlier run with the same state dir.
            self.unmount_leftovers(vmid);
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let t0 = Instant::now();
        let g = Guest {
            hostname: spec.hostname.clone(),
            conf: spec.conf.clone(),
            nics: self.plan_nics(vmid, &spec.conf),
            started: None,
            cpu_sample: None,
            init_pid: None,
        };
        // Reserve the addresses at once so parallel creates do not collide.
        self.lock().insert(vmid, g.clone());
        let res = (|| {
            self.extract_template(vmid)?;
            let mut lines = vec![format!(
                "extracted {} into {} in {:.2} s",
                self.opts.template.display(),
                self.rootfs(vmid).display(),
                t0.elapsed().as_secs_f64()
            )];
            self.write_guest_files(vmid, &g)?;
            self.write_lxc_config(vmid, &g)?;
            if let Some(pw) = &spec.password {
                self.set_password(vmid, pw)?;
            }
            if let Some(k) = &spec.ssh_public_keys {
                self.set_keys(vmid, k)?;
            }
            lines.extend(self.keygen(vmid, &spec.hostname)?);
            for n in &g.nics {
                if let Some((ip, p)) = n.ip {
                    lines.push(format!(
                        "{}: {ip}/{p} on bridge {} (host veth {})",
                        n.name, self.opts.bridge, n.veth
                    ));
                }
            }
            Ok::<_, String>(lines)
        })();
        if res.is_err() {
            self.lock().remove(&vmid);
            self.release_claims(vmid);
            let _ = std::fs::remove_dir_all(&dir);
        }
        res
    }

    fn configure(&self, vmid: u32, conf: &BTreeMap<String, String>) -> Result<(), String> {
        let Some(mut g) = self.lock().get(&vmid).cloned() else {
            return Err(format!(
                "container {} does not exist",
                self.container_name(vmid)
            ));
        };
        let nets_changed = g
            .conf
            .iter()
            .filter(|(k, _)| k.starts_with("net"))
            .ne(conf.iter().filter(|(k, _)| k.starts_with("net")));
        if let Some(h) = conf.get("hostname") {
            g.hostname = h.clone();
        }
        g.conf = conf.clone();
        if nets_changed {
            g.nics = self.plan_nics(vmid, conf);
        }
        self.write_guest_files(vmid, &g)?;
        self.write_lxc_config(vmid, &g)?;
        self.lock().insert(vmid, g);
        Ok(())
    }

    fn start(&self, vmid: u32) -> Result<(), String> {
        if !self.lock().contains_key(&vmid) {
            return Err(format!(
                "container {} does not exist",
                self.container_name(vmid)
            ));
        }
        if self.is_running(vmid) {
            return Ok(());
        }
        let nics = self
            .lock()
            .get(&vmid)
            .map(|g| g.nics.clone())
            .unwrap_or_default();
        if let Some(n) = nics
            .iter()
            .find(|n| Path::new("/sys/class/net").join(&n.veth).exists())
        {
            return Err(format!(
                "host interface {} already exists: another container on this machine uses it; stop that container or give this simulator another state directory",
                n.veth
            ));
        }
        let dir = self.dir(vmid);
        let o = run(
            self.lxc("lxc-start", vmid)
                .arg("-d")
                .arg("-o")
                .arg(dir.join("lxc.log"))
                .arg("-l")
                .arg("WARN"),
            None,
        )?;
        if o.code != 0 {
            let log = std::fs::read_to_string(dir.join("lxc.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            return Err(format!(
                "lxc-start failed ({}): {}",
                String::from_utf8_lossy(&o.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_running(vmid) {
            if Instant::now() > deadline {
                return Err("container did not reach RUNNING within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(g) = self.lock().get_mut(&vmid) {
            g.started = Some(Instant::now());
            g.cpu_sample = None;
            g.init_pid = None;
        }
        Ok(())
    }

    fn stop(&self, vmid: u32) -> Result<(), String> {
        if self.is_running(vmid) {
            run_ok(self.lxc("lxc-stop", vmid).arg("-k"), None)?;
        }
        if let Some(g) = self.lock().get_mut(&vmid) {
            g.started = None;
            g.init_pid = None;
        }
        Ok(())
    }

    fn shutdown(&self, vmid: u32) -> Result<(), String> {
        if self.is_running(vmid) {
            // Clean shutdown (SIGPWR to systemd), killed after 30 s.
            run_ok(self.lxc("lxc-stop", vmid).args(["-t", "30"]), None)?;
        }
        if let Some(g) = self.lock().get_mut(&vmid) {
            g.started = None;
            g.init_pid = None;
        }
        Ok(())
    }

    /// As on Proxmox a migrated CT keeps its id: migrating stops the container (a restart
    /// migration starts it again afterwards) and moves its directory — root filesystem,
    /// snapshots and LXC config — from the source node's namespace into the target's, where
    /// the config is written again with the new paths.
    fn migrate(&self, vmid: u32, target: &str) -> Result<Vec<String>, String> {
        let from = self.dir(vmid);
        if !from.exists() {
            return Err(format!(
                "container {vmid} has no directory {}",
                from.display()
            ));
        }
        if self.is_running(vmid) {
            run_ok(self.lxc("lxc-stop", vmid).args(["-t", "30"]), None)?;
        }
        // The base stays on the source node: a linked clone moves as a full copy.
        self.flatten(vmid)?;
        let source = self.node_of(vmid);
        let target_root = self.root.join(target);
        let to = target_root.join(vmid.to_string());
        if to.exists() {
            return Err(format!(
                "CT {vmid} already has a directory on node '{target}': {}",
                to.display()
            ));
        }
        std::fs::create_dir_all(&target_root)
            .map_err(|e| format!("{}: {e}", target_root.display()))?;
        std::fs::rename(&from, &to)
            .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
        self.set_node(vmid, target);
        let g = {
            let mut guests = self.lock();
            guests.get_mut(&vmid).map(|g| {
                g.started = None;
                g.init_pid = None;
                g.clone()
            })
        };
        if let Some(g) = g
            && let Err(e) = self.write_lxc_config(vmid, &g)
        {
            // Put it back where it was rather than leave a CT without a config.
            let _ = std::fs::rename(&to, &from);
            self.set_node(vmid, source.as_deref().unwrap_or(""));
            return Err(e);
        }
        Ok(vec![format!(
            "moved container {vmid} from {} to {}",
            from.display(),
            to.display()
        )])
    }

    fn destroy(&self, vmid: u32) -> Result<(), String> {
        let dir = self.dir(vmid);
        if self.is_running(vmid) {
            run_ok(self.lxc("lxc-stop", vmid).arg("-k"), None)?;
        }
        self.lock().remove(&vmid);
        self.release_claims(vmid);
        if dir.exists() {
            self.unmount_leftovers(vmid);
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        self.set_node(vmid, "");
        Ok(())
    }

    fn exec(
        &self,
        vmid: u32,
        argv: Vec<String>,
        stdin: Vec<u8>,
        out: UnboundedSender<ExecChunk>,
    ) -> ExecFuture {
        if self.is_vm(vmid) {
            return qemu::vm_exec_future(self, vmid, argv, stdin, out);
        }
        let mut cmd = tokio::process::Command::new("lxc-attach");
        cmd.arg("-P")
            .arg(self.lxc_path_of(vmid))
            .arg("-n")
            .arg(self.container_name(vmid))
            .arg("--clear-env")
            .args(["-v", PATH_ENV, "-v", "HOME=/root", "-v", "LANG=C.UTF-8"])
            .args(["-v", "DEBIAN_FRONTEND=noninteractive", "--"])
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Box::pin(async move {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = out.send(ExecChunk::Stderr(
                        format!("cannot run lxc-attach: {e}\n").into_bytes(),
                    ));
                    return 255;
                }
            };
            if let Some(mut w) = child.stdin.take() {
                tokio::spawn(async move {
                    let _ = w.write_all(&stdin).await;
                    let _ = w.shutdown().await;
                });
            }
            let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
                        out: UnboundedSender<ExecChunk>,
                        err: bool| async move {
                let Some(mut r) = r else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let d = buf[..n].to_vec();
                            let _ = out.send(if err {
                                ExecChunk::Stderr(d)
                            } else {
                                ExecChunk::Stdout(d)
                            });
                        }
                    }
                }
            };
            let so = child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
            let se = child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
            let (_, _, status) = tokio::join!(
                pump(so, out.clone(), false),
                pump(se, out.clone(), true),
                child.wait()
            );
            match status {
                Ok(s) => s.code().and_then(|c| u32::try_from(c).ok()).unwrap_or(255),
                Err(_) => 255,
            }
        })
    }

    fn needs_stdin(&self, argv: &[String]) -> bool {
        super::memory::argv_reads_stdin(argv)
    }

    fn push(&self, vmid: u32, path: &str, data: &[u8], opts: &PushOptions) -> Result<(), String> {
        let path = clean_guest_path(path)?;
        if self.is_vm(vmid) {
            return self.qemu_push(vmid, &path, data);
        }
        let perms = format!("{:o}", opts.perms.unwrap_or(0o644));
        let user = opts.user.clone().unwrap_or_else(|| "0".into());
        let group = opts.group.clone().unwrap_or_else(|| "0".into());
        // Written through the container's own mount namespace, as pct push does.
        let script = r#"umask 077; tmp="$1.pct-push.$$"; cat > "$tmp" || { rm -f "$tmp"; exit 1; }
chown "$2:$3" "$tmp" && chmod "$4" "$tmp" && mv -f "$tmp" "$1" || { rm -f "$tmp"; exit 1; }"#;
        let o = run(
            self.lxc("lxc-attach", vmid)
                .args([
                    "--clear-env",
                    "-v",
                    PATH_ENV,
                    "--",
                    "sh",
                    "-c",
                    script,
                    "sh",
                ])
                .args([&path, &user, &group, &perms]),
            Some(data),
        )?;
        if o.code != 0 {
            let e = String::from_utf8_lossy(&o.stderr);
            let reason = if e.contains("No such file or directory") {
                "No such file or directory"
            } else if e.contains("Is a directory") {
                "Is a directory"
            } else {
                e.trim()
            };
            return Err(format!("failed to open {path} for writing: {reason}"));
        }
        Ok(())
    }

    fn pull(&self, vmid: u32, path: &str) -> Result<Vec<u8>, String> {
        let path = clean_guest_path(path)?;
        if self.is_vm(vmid) {
            return self.qemu_pull(vmid, &path);
        }
        let o = run(
            self.lxc("lxc-attach", vmid)
                .args(["--clear-env", "-v", PATH_ENV, "--", "cat", "--"])
                .arg(&path),
            None,
        )?;
        if o.code != 0 {
            return Err(format!("failed to open {path}: No such file or directory"));
        }
        Ok(o.stdout)
    }

    fn snapshot(&self, vmid: u32, name: &str) -> Result<(), String> {
        if self.is_vm(vmid) {
            return self.qemu_snapshot(vmid, name);
        }
        let dest = self.snapshot_dir(vmid, name)?;
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        copy_tree(&self.rootfs(vmid), &dest)
    }

    fn rollback(&self, vmid: u32, name: &str) -> Result<(), String> {
        if self.is_vm(vmid) {
            return self.qemu_rollback(vmid, name);
        }
        let src = self.snapshot_dir(vmid, name)?;
        if !src.is_dir() {
            return Err(format!("snapshot '{name}' does not exist"));
        }
        // The API task stops a running CT first; the files are swapped while nothing runs.
        // A linked clone becomes a plain copy of the snapshot (its layers are dropped).
        self.drop_layers(vmid)?;
        let rootfs = self.rootfs(vmid);
        let old = self.dir(vmid).join("rootfs.before-rollback");
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| format!("{}: {e}", old.display()))?;
        }
        std::fs::rename(&rootfs, &old).map_err(|e| format!("{}: {e}", rootfs.display()))?;
        if let Err(e) = copy_tree(&src, &rootfs) {
            // Put the current state back rather than leave a CT without a root.
            let _ = std::fs::remove_dir_all(&rootfs);
            let _ = std::fs::rename(&old, &rootfs);
            return Err(e);
        }
        std::fs::remove_dir_all(&old).map_err(|e| format!("{}: {e}", old.display()))
    }

    fn delete_snapshot(&self, vmid: u32, name: &str) -> Result<(), String> {
        if self.is_vm(vmid) {
            return self.qemu_delete_snapshot(vmid, name);
        }
        let dir = self.snapshot_dir(vmid, name)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }

    fn clone_guest(&self, vmid: u32, newid: u32, spec: &CreateSpec) -> Result<Vec<String>, String> {
        if self.is_vm(vmid) {
            return Err(format!("VM {vmid} is not a container"));
        }
        // A clone from a snapshot copies the snapshot's root filesystem (Proxmox's
        // `snapname`), otherwise the current one.
        let (source, what) = match &spec.snapname {
            Some(name) => {
                let dir = self.snapshot_dir(vmid, name)?;
                if !dir.is_dir() {
                    return Err(format!("snapshot '{name}' does not exist"));
                }
                (dir, format!("snapshot '{name}' of CT {vmid}"))
            }
            None => (self.rootfs(vmid), format!("CT {vmid}")),
        };
        self.set_node(newid, &spec.node);
        let dir = self.dir(newid);
        if dir.exists() {
            self.unmount_leftovers(newid);
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let t0 = Instant::now();
        let g = Guest {
            hostname: spec.hostname.clone(),
            conf: spec.conf.clone(),
            nics: self.plan_nics(newid, &spec.conf),
            started: None,
            cpu_sample: None,
            init_pid: None,
        };
        self.lock().insert(newid, g.clone());
        let linked = spec.snapname.is_none() && is_linked_volume(spec.conf.get("rootfs"));
        let res = (|| {
            let mut lines = Vec::new();
            if linked {
                self.mount_layers(&source, newid)?;
                lines.push(format!(
                    "linked clone of {what}: its root filesystem below, the clone's changes in {} (overlayfs), in {:.2} s",
                    self.dir(newid).join(DELTA).display(),
                    t0.elapsed().as_secs_f64()
                ));
            } else {
                copy_tree(&source, &self.rootfs(newid))?;
                lines.push(format!(
                    "copied the root filesystem of {what} in {:.2} s",
                    t0.elapsed().as_secs_f64()
                ));
            }
            // As on Proxmox, a clone keeps the source's files, SSH host keys included (an
            // image's first-boot unit makes its own); only the network and hostname follow
            // the new config.
            self.write_guest_files(newid, &g)?;
            self.write_lxc_config(newid, &g)?;
            Ok::<_, String>(lines)
        })();
        if res.is_err() {
            self.lock().remove(&newid);
            self.release_claims(newid);
            self.unmount_leftovers(newid);
            let _ = std::fs::remove_dir_all(&dir);
            self.set_node(newid, "");
        }
        res
    }

    fn set_services(&self, _vmid: u32, _services: &[ServiceSpec]) {}

    fn vm_create(&self, vmid: u32, spec: &VmSpec) -> Result<Vec<String>, String> {
        self.qemu_create(vmid, spec)
    }

    fn vm_start(
        &self,
        vmid: u32,
        conf: &BTreeMap<String, String>,
        ci: &CloudInit,
    ) -> Result<(), String> {
        self.qemu_start(vmid, conf, ci)
    }

    fn vm_stop(&self, vmid: u32) -> Result<(), String> {
        self.qemu_stop(vmid)
    }

    fn vm_shutdown(&self, vmid: u32, agent: bool) -> Result<(), String> {
        self.qemu_shutdown(vmid, agent)
    }

    fn vm_destroy(&self, vmid: u32) -> Result<(), String> {
        self.qemu_destroy(vmid)
    }

    fn vm_agent_ping(&self, vmid: u32) -> Option<bool> {
        Some(self.qemu_ping(vmid))
    }

    fn vm_interfaces(&self, vmid: u32) -> Option<Value> {
        self.qemu_interfaces(vmid)
    }

    fn vm_resize(&self, vmid: u32, disk: &str, bytes: u64) -> Result<(), String> {
        self.qemu_resize(vmid, disk, bytes)
    }

    fn vm_clone(
        &self,
        vmid: u32,
        newid: u32,
        linked: bool,
        spec: &VmSpec,
    ) -> Result<Vec<String>, String> {
        self.qemu_clone(vmid, newid, linked, spec)
    }

    fn vm_template(&self, vmid: u32) -> Result<Vec<String>, String> {
        self.qemu_template(vmid)
    }

    fn write_file(&self, vmid: u32, path: &str, data: &[u8]) {
        let Ok(path) = clean_guest_path(path) else {
            return;
        };
        let rootfs = self.rootfs(vmid);
        let p = rootfs.join(path.trim_start_matches('/'));
        // Refuse to follow symlinks on the way (they point into the guest, not the host).
        let mut cur = rootfs.clone();
        for c in Path::new(path.trim_start_matches('/')).components() {
            cur.push(c);
            if cur
                .symlink_metadata()
                .map(|m| m.is_symlink())
                .unwrap_or(false)
            {
                tracing::warn!("lxc backend: not writing {path}: symlink on the way");
                return;
            }
        }
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(&p, data) {
            tracing::warn!("lxc backend: writing {}: {e}", p.display());
        }
    }

    fn usage(&self, vmid: u32) -> Option<Usage> {
        if self.is_vm(vmid) {
            return self.qemu_usage(vmid);
        }
        let pid = self.init_pid(vmid)?;
        let mut guests = self.lock();
        let g = guests.get_mut(&vmid)?;
        let cpus = g
            .conf
            .get("cores")
            .and_then(|c| c.parse::<f64>().ok())
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as f64)
                    .unwrap_or(1.0)
            })
            .max(1.0);
        let now = Instant::now();
        let cpu_ns = self.cpu_ns(pid);
        let cpu = match (cpu_ns, g.cpu_sample, g.started) {
            (Some(ns), Some((t, prev)), _) if now > t => {
                ns.saturating_sub(prev) as f64 / (now - t).as_nanos() as f64 / cpus
            }
            (Some(ns), None, Some(st)) if now > st => {
                ns as f64 / (now - st).as_nanos() as f64 / cpus
            }
            _ => 0.0,
        };
        if let Some(ns) = cpu_ns {
            g.cpu_sample = Some((now, ns));
        }
        let (mut netin, mut netout) = (0u64, 0u64);
        for n in &g.nics {
            let stats = Path::new("/sys/class/net").join(&n.veth).join("statistics");
            // The host side's tx is what the guest received, and vice versa.
            netin += read_u64(&stats.join("tx_bytes")).unwrap_or(0);
            netout += read_u64(&stats.join("rx_bytes")).unwrap_or(0);
        }
        drop(guests);
        let (diskread, diskwrite) = self.disk_io(pid);
        Some(Usage {
            cpu: (cpu * 10_000.0).round().clamp(0.0, 10_000.0) / 10_000.0,
            mem: self.mem_bytes(pid).unwrap_or(0),
            swap: 0,
            netin,
            netout,
            diskread,
            diskwrite,
            pid: Some(pid),
            disk: None,
        })
    }

    fn interfaces(&self, vmid: u32) -> Option<Value> {
        let pid = self.init_pid(vmid)?;
        let o = run(
            Command::new("nsenter")
                .arg(format!("--net=/proc/{pid}/ns/net"))
                .args(["ip", "-j", "addr", "show"]),
            None,
        )
        .ok()?;
        if o.code != 0 {
            return None;
        }
        let links: Vec<Value> = serde_json::from_slice(&o.stdout).ok()?;
        let mut out = Vec::new();
        for l in links {
            let name = l.get("ifname").and_then(Value::as_str).unwrap_or("");
            let mac = l
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or("00:00:00:00:00:00");
            let mut e = Map::new();
            e.insert("name".into(), json!(name));
            e.insert("hwaddr".into(), json!(mac));
            e.insert("hardware-address".into(), json!(mac));
            let mut addrs = Vec::new();
            for a in l
                .get("addr_info")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let fam = a.get("family").and_then(Value::as_str).unwrap_or("");
                let ip = a.get("local").and_then(Value::as_str).unwrap_or("");
                let prefix = a.get("prefixlen").and_then(Value::as_u64).unwrap_or(0);
                if ip.is_empty() || !(fam == "inet" || fam == "inet6") {
                    continue;
                }
                let key = fam.to_string();
                if !e.contains_key(&key) {
                    e.insert(key, json!(format!("{ip}/{prefix}")));
                }
                addrs.push(json!({"ip-address": ip, "ip-address-type": fam, "prefix": prefix}));
            }
            e.insert("ip-addresses".into(), Value::Array(addrs));
            out.push(Value::Object(e));
        }
        Some(Value::Array(out))
    }

    fn save(&self) -> Value {
        let g = self.lock();
        let mut m = Map::new();
        for (vmid, g) in g.iter() {
            m.insert(
                vmid.to_string(),
                json!({"hostname": g.hostname, "conf": g.conf, "node": self.node_of(*vmid)}),
            );
        }
        json!({"lxc": m})
    }

    fn load(&self, v: &Value) -> Result<(), String> {
        let Some(m) = v.get("lxc").and_then(Value::as_object) else {
            return Ok(());
        };
        for (k, g) in m {
            let Ok(vmid) = k.parse::<u32>() else {
                continue;
            };
            if let Some(node) = g.get("node").and_then(Value::as_str) {
                self.set_node(vmid, node);
            }
            if !self.dir(vmid).join("config").exists() {
                self.set_node(vmid, "");
                continue;
            }
            let conf: BTreeMap<String, String> = g
                .get("conf")
                .cloned()
                .and_then(|c| serde_json::from_value(c).ok())
                .unwrap_or_default();
            let nics = self.plan_nics(vmid, &conf);
            let running = self.is_running(vmid);
            self.lock().insert(
                vmid,
                Guest {
                    hostname: g
                        .get("hostname")
                        .and_then(Value::as_str)
                        .unwrap_or("ct")
                        .to_string(),
                    conf,
                    nics,
                    started: running.then(Instant::now),
                    cpu_sample: None,
                    init_pid: None,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_and_cidr() {
        assert_eq!(
            parse_cidr("10.151.0.7/24"),
            Some((Ipv4Addr::new(10, 151, 0, 7), 24))
        );
        assert_eq!(parse_cidr("dhcp"), None);
        assert_eq!(parse_cidr("10.0.0.1/33"), None);
        assert!(in_subnet(
            Ipv4Addr::new(10, 151, 0, 7),
            Ipv4Addr::new(10, 151, 0, 1),
            24
        ));
        assert!(!in_subnet(
            Ipv4Addr::new(192, 168, 1, 7),
            Ipv4Addr::new(10, 151, 0, 1),
            24
        ));
    }

    #[test]
    fn guest_paths_are_checked() {
        assert!(clean_guest_path("/etc/x").is_ok());
        assert!(clean_guest_path("etc/x").is_err());
        assert!(clean_guest_path("/etc/../../x").is_err());
    }

    #[test]
    fn net_props() {
        let v = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=10.151.0.50/24,type=veth";
        assert_eq!(prop(v, "ip").as_deref(), Some("10.151.0.50/24"));
        assert_eq!(prop(v, "name").as_deref(), Some("eth0"));
        assert_eq!(prop(v, "gw"), None);
    }
}
