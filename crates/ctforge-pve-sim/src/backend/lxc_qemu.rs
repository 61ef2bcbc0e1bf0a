//! Real QEMU/KVM VMs of the lxc backend (a child module: it shares the bridge, the address
//! claims and the apt proxy of the containers).
//!
//! Layout: `<state-dir>/qemu/<vmid>/{disk-<key>.qcow2, seed.iso, qga.sock, qmp.sock,
//! qemu.pid, console.log}`. A disk imported from `local:import/<image>` is a qcow2 overlay
//! whose backing file is the image `scripts/setup-vm.sh` built (`<cache>/import/<image>`,
//! instant, and resized to the requested size); the kernel and initrd beside the image are
//! booted directly. The NIC is a tap device (`cq<tag><vmid>i<n>`) on the bridge with an
//! address picked like a container's; the guest learns it, its hostname, its user, its keys
//! and the apt proxy from a NoCloud seed (an ISO labelled `cidata`, written by `genisoimage`
//! from the API's cloud-init parameters at every start; a `cicustom` user snippet replaces the
//! generated user-data, the proxy then comes as vendor-data). The guest agent is reached over
//! its virtio-serial unix socket with QGA's JSON protocol (`guest-sync-delimited` first), QEMU
//! itself over QMP (`system_powerdown`, `quit`). Nothing is persisted: VMs end with the
//! simulator's state directory.
//!
//! QEMU daemonizes, so it would outlive a simulator that ends without destroying its VMs (a
//! failing test, a killed process). Two things stop that: the backend remembers each QEMU's
//! pid (its pid file goes when the state directory goes first, as a test's temporary
//! directory does) and its drop kills the VMs by it; and each running VM has a watcher, a
//! small shell in a process group of its own that waits on a pipe only the simulator holds and,
//! when the pipe closes (the simulator's process ended, however it ended) while that QEMU still
//! runs, kills it and removes the VM's directory and tap device.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;

use base64::Engine as _;

use super::super::{CloudInit, VmSpec};
use super::*;

/// A VM the backend runs.
#[derive(Debug, Clone)]
pub(super) struct QemuVm {
    conf: BTreeMap<String, String>,
    kernel: Option<(PathBuf, PathBuf)>,
    ip: Option<Ipv4Addr>,
    started: Option<Instant>,
    /// QEMU's pid once started (the pid file may be gone, see the module documentation).
    pid: Option<u32>,
    /// Kills QEMU when the simulator's process ends.
    watcher: Option<std::sync::Arc<Watcher>>,
}

/// The shell ending one VM once the pipe on its stdin closes (see the module documentation);
/// dropping it closes the pipe and reaps the shell (after a stop, QEMU is gone and the shell
/// does nothing).
#[derive(Debug)]
struct Watcher(Mutex<Option<std::process::Child>>);

impl Watcher {
    /// Watches QEMU `pid`, whose command line names files in `dir` (a pid reused by another
    /// process after QEMU ended is left alone), and its tap device `tap` (if any).
    fn spawn(pid: u32, dir: &Path, tap: Option<&str>) -> Result<Self, String> {
        use std::os::unix::process::CommandExt as _;
        let child = Command::new("sh")
            .args([
                "-c",
                "trap '' HUP INT TERM; read _ignored\n\
                 grep -qaF -- \"$2\" \"/proc/$1/cmdline\" 2>/dev/null || exit 0\n\
                 kill -9 \"$1\"\n\
                 for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e \"/proc/$1\" ] || break; sleep 0.2; done\n\
                 rm -rf -- \"$2\"\n\
                 [ -z \"$3\" ] || ip link del \"$3\" 2>/dev/null\n",
                "ctforge-sim-qemu-watcher",
                &pid.to_string(),
                &format!("{}/", dir.display()),
                tap.unwrap_or_default(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a signal to the simulator's group must not end it first.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the QEMU watcher: {e}"))?;
        Ok(Self(Mutex::new(Some(child))))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let child = match self.0.get_mut() {
            Ok(c) => c.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(mut child) = child {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl LxcBackend {
    fn qdir(&self, vmid: u32) -> PathBuf {
        self.root
            .parent()
            .map(|p| p.join("qemu"))
            .unwrap_or_else(|| self.root.join("qemu"))
            .join(vmid.to_string())
    }

    fn qlock(&self) -> MutexGuard<'_, HashMap<u32, QemuVm>> {
        match self.qemu.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Whether `vmid` is one of this backend's VMs (and not a container).
    pub(super) fn is_vm(&self, vmid: u32) -> bool {
        self.qlock().contains_key(&vmid)
    }

    /// The directory holding the cloud images (`local:import/…`): `<cache>/import`.
    pub fn import_dir(&self) -> PathBuf {
        self.opts
            .template
            .parent()
            .map(|p| p.join("import"))
            .unwrap_or_else(|| PathBuf::from("/var/cache/ctforge-sim/import"))
    }

    fn tap_name(&self, vmid: u32, index: u32) -> String {
        format!("cq{}{vmid}i{index}", self.tag)
    }

    /// The pid of VM `vmid`'s running QEMU: from its pid file, else the one remembered at
    /// start; only a live process whose command line names the VM's directory counts.
    fn qemu_pid(&self, vmid: u32) -> Option<u32> {
        let dir = self.qdir(vmid);
        let pid = std::fs::read_to_string(dir.join("qemu.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .or_else(|| self.qlock().get(&vmid).and_then(|v| v.pid))?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // With the slash: `…/qemu/45` must not match VM 450's `…/qemu/450/…`.
        let needle = format!("{}/", dir.display());
        let names_dir = cmdline
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        (names_dir && Path::new(&format!("/proc/{pid}/exe")).exists()).then_some(pid)
    }

    /// One QGA request and its `return` (`Err` with the agent's error text).
    fn qga(&self, vmid: u32, cmd: &str, args: Value, wait: Duration) -> Result<Value, String> {
        qga_call(&self.qdir(vmid).join("qga.sock"), cmd, args, wait)
    }

    /// One QMP command without arguments (its answer, or QEMU's error text).
    fn qmp(&self, vmid: u32, cmd: &str) -> Result<Value, String> {
        self.qmp_call(vmid, cmd, None, Duration::from_secs(5))
    }

    /// One QMP command with `args`, waiting up to `wait` for its answer; `Err` with QEMU's
    /// error text (`desc`) when it answers an error.
    fn qmp_call(
        &self,
        vmid: u32,
        cmd: &str,
        args: Option<Value>,
        wait: Duration,
    ) -> Result<Value, String> {
        let path = self.qdir(vmid).join("qmp.sock");
        let s = UnixStream::connect(&path).map_err(|e| format!("QMP socket: {e}"))?;
        s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let answer = |r: &mut BufReader<UnixStream>| -> Result<Value, String> {
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)
                    .map_err(|e| format!("QMP read: {e}"))?
                    == 0
                {
                    return Ok(Value::Null);
                }
                let v: Value = serde_json::from_str(line.trim()).unwrap_or(Value::Null);
                if v.get("event").is_none() {
                    return Ok(v);
                }
            }
        };
        answer(&mut r)?; // greeting
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .map_err(|e| e.to_string())?;
        answer(&mut r)?;
        let req = match args {
            Some(a) => json!({"execute": cmd, "arguments": a}),
            None => json!({"execute": cmd}),
        };
        w.write_all(format!("{req}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let v = answer(&mut r)?;
        match v.get("error") {
            Some(err) => Err(err
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or("unknown QMP error")
                .to_string()),
            None => Ok(v.get("return").cloned().unwrap_or(v)),
        }
    }

    fn wait_exit(&self, vmid: u32, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.qemu_pid(vmid).is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.qemu_pid(vmid).is_none()
    }

    fn kill_vm(&self, vmid: u32) {
        if self.qemu_pid(vmid).is_some() {
            let _ = self.qmp(vmid, "quit");
            if !self.wait_exit(vmid, Duration::from_secs(5))
                && let Some(pid) = self.qemu_pid(vmid)
            {
                let _ = run(Command::new("kill").args(["-9", &pid.to_string()]), None);
                self.wait_exit(vmid, Duration::from_secs(5));
            }
        }
        if let Some(v) = self.qlock().get_mut(&vmid) {
            v.pid = None;
            v.watcher = None;
        }
    }

    fn remove_taps(&self, vmid: u32) {
        for i in 0..10 {
            let tap = self.tap_name(vmid, i);
            if Path::new("/sys/class/net").join(&tap).exists() {
                let _ = run(Command::new("ip").args(["link", "del", &tap]), None);
            }
        }
    }

    /// The image file behind `local:import/<file>`.
    fn import_path(&self, volid: &str) -> Result<PathBuf, String> {
        let file = volid
            .split_once(":import/")
            .map(|(_, f)| f)
            .ok_or_else(|| format!("cannot import from '{volid}' - not an import volume"))?;
        if file.contains('/') || file.starts_with('.') {
            return Err(format!("invalid import volume '{volid}'"));
        }
        let p = self.import_dir().join(file);
        if !p.is_file() {
            return Err(format!(
                "cannot import from '{volid}' - {} not found; run scripts/setup-vm.sh as root",
                p.display()
            ));
        }
        Ok(p)
    }

    /// VM `vmid`'s directory, emptied (no QEMU of it running) and created.
    fn fresh_dir(&self, vmid: u32) -> Result<PathBuf, String> {
        let dir = self.qdir(vmid);
        self.kill_vm(vmid);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    pub(super) fn qemu_create(&self, vmid: u32, spec: &VmSpec) -> Result<Vec<String>, String> {
        if which("qemu-system-x86_64").is_none() {
            return Err(
                "qemu-system-x86_64 is not installed; run scripts/setup-vm.sh as root".into(),
            );
        }
        let dir = self.fresh_dir(vmid)?;
        let mut kernel = None;
        let mut lines = Vec::new();
        for (key, conf) in data_disks(&spec.conf) {
            let size = prop(conf, "size")
                .and_then(|s| crate::state::parse_size(&s))
                .unwrap_or(2 * 1024 * 1024 * 1024);
            let disk = dir.join(format!("disk-{key}.qcow2"));
            match spec.imports.iter().find(|(k, _, _)| k == key) {
                Some((_, src, _)) => {
                    let image = self.import_path(src)?;
                    let base = image.with_extension("");
                    let k = base.with_extension("vmlinuz");
                    let i = base.with_extension("initrd");
                    if kernel.is_none() && k.is_file() && i.is_file() {
                        kernel = Some((k, i));
                    }
                    run_ok(
                        Command::new("qemu-img")
                            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                            .arg(&image)
                            .arg(&disk)
                            .arg(size.to_string()),
                        None,
                    )?;
                    lines.push(format!("{key}: overlay on {}", image.display()));
                }
                None => {
                    run_ok(
                        Command::new("qemu-img")
                            .args(["create", "-q", "-f", "qcow2"])
                            .arg(&disk)
                            .arg(size.to_string()),
                        None,
                    )?;
                }
            }
        }
        self.qlock().insert(
            vmid,
            QemuVm {
                conf: spec.conf.clone(),
                kernel,
                ip: None,
                started: None,
                pid: None,
                watcher: None,
            },
        );
        Ok(lines)
    }

    /// The NoCloud seed: meta-data, user-data (generated, or the `cicustom` snippet),
    /// vendor-data (the apt proxy) and network-config (the bridge address).
    fn write_seed(
        &self,
        vmid: u32,
        ci: &CloudInit,
        ip: Option<Ipv4Addr>,
        mac: &str,
        upgrade: bool,
    ) -> Result<(), String> {
        let dir = self.qdir(vmid);
        let seed = dir.join("seed");
        let _ = std::fs::remove_dir_all(&seed);
        std::fs::create_dir_all(&seed).map_err(|e| e.to_string())?;
        let bridge = self.opts.bridge_ip;
        let user = ci.user.clone().unwrap_or_else(|| "debian".into());
        let user_data = match &ci.user_data {
            Some(d) => d.clone(),
            None => {
                let mut s = format!(
                    "#cloud-config\nhostname: {h}\nmanage_etc_hosts: true\nfqdn: {h}\nuser: {user}\n",
                    h = ci.hostname
                );
                if let Some(pw) = &ci.password_hash {
                    s.push_str(&format!("password: {pw}\n"));
                }
                if let Some(keys) = &ci.ssh_keys {
                    s.push_str("ssh_authorized_keys:\n");
                    for k in keys.lines().map(str::trim).filter(|k| !k.is_empty()) {
                        s.push_str(&format!("  - {k}\n"));
                    }
                }
                s.push_str("chpasswd:\n  expire: False\nusers:\n  - default\n");
                s.push_str(&format!("package_upgrade: {upgrade}\n"));
                s.into_bytes()
            }
        };
        let mut vendor = format!(
            "#cloud-config\napt:\n  proxy: http://{bridge}:{p}\n  http_proxy: http://{bridge}:{p}\n",
            p = self.opts.proxy_port
        );
        vendor.push_str(&local_ca_certs(Path::new(LOCAL_CA_DIR)));
        let network = match ip {
            Some(ip) => format!(
                "version: 1\nconfig:\n  - type: physical\n    name: ens18\n    mac_address: '{mac}'\n    subnets:\n      - type: static\n        address: {ip}/{prefix}\n        gateway: {bridge}\n        dns_nameservers: [{bridge}]\n{search}",
                prefix = self.opts.bridge_prefix,
                search = ci
                    .searchdomain
                    .as_ref()
                    .map(|s| format!("        dns_search: [{s}]\n"))
                    .unwrap_or_default()
            ),
            None => "version: 1\nconfig: []\n".to_string(),
        };
        let instance = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(&user_data);
            h.update(network.as_bytes());
            h.update(ci.hostname.as_bytes());
            let d = h.finalize();
            d.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let meta = format!("instance-id: {instance}\nlocal-hostname: {}\n", ci.hostname);
        for (name, data) in [
            ("user-data", user_data),
            ("meta-data", meta.into_bytes()),
            ("vendor-data", vendor.into_bytes()),
            ("network-config", network.into_bytes()),
        ] {
            std::fs::write(seed.join(name), data).map_err(|e| e.to_string())?;
        }
        let tool = if which("genisoimage").is_some() {
            "genisoimage"
        } else if which("xorrisofs").is_some() {
            "xorrisofs"
        } else {
            return Err("genisoimage is not installed; run scripts/setup-vm.sh as root".into());
        };
        run_ok(
            Command::new(tool)
                .args(["-quiet", "-output"])
                .arg(dir.join("seed.iso"))
                .args(["-volid", "cidata", "-joliet", "-rock"])
                .arg(seed.join("user-data"))
                .arg(seed.join("meta-data"))
                .arg(seed.join("vendor-data"))
                .arg(seed.join("network-config")),
            None,
        )
        .map(|_| ())
    }

    pub(super) fn qemu_start(
        &self,
        vmid: u32,
        conf: &BTreeMap<String, String>,
        ci: &CloudInit,
    ) -> Result<(), String> {
        if !Path::new("/dev/kvm").exists() {
            return Err("KVM virtualisation configured, but not available".into());
        }
        let dir = self.qdir(vmid);
        let vm = self
            .qlock()
            .get(&vmid)
            .cloned()
            .ok_or_else(|| format!("VM {vmid} has no disks on this backend"))?;
        if self.qemu_pid(vmid).is_some() {
            return Err(format!("VM {vmid} already running"));
        }
        // The last QEMU ended on its own (a shutdown, a poweroff inside): its watcher goes
        // before the next QEMU could get its pid.
        if let Some(v) = self.qlock().get_mut(&vmid) {
            v.pid = None;
            v.watcher = None;
        }
        // An address on the bridge, picked as for containers.
        self.release_claims(vmid);
        let mut busy: Vec<Ipv4Addr> = self
            .lock()
            .values()
            .flat_map(|g| g.nics.iter().filter_map(|n| n.ip.map(|x| x.0)))
            .chain(
                self.qlock()
                    .iter()
                    .filter(|(v, _)| **v != vmid)
                    .filter_map(|(_, q)| q.ip),
            )
            .collect();
        busy.push(self.opts.bridge_ip);
        busy.extend(live_addresses(&self.opts.bridge));
        // A static `ip=` of `ipconfig0` inside the bridge subnet is the guest's own (its
        // cloud-init sets it, as on Proxmox); dhcp or another subnet gets a free address.
        let requested = ci
            .ipconfig
            .get("ipconfig0")
            .and_then(|v| super::prop(v, "ip"))
            .as_deref()
            .and_then(super::parse_cidr);
        let (net, prefix) = (self.opts.bridge_ip, self.opts.bridge_prefix);
        let ip = match requested {
            Some((ip, p))
                if conf.contains_key("net0")
                    && p == prefix
                    && super::in_subnet(ip, net, prefix)
                    && !busy.contains(&ip)
                    && self.claim(ip, vmid) =>
            {
                Some(ip)
            }
            _ if conf.contains_key("net0") => self.free_ip(&busy, vmid),
            _ => None,
        };
        let mac = ip
            .map(|ip| {
                let [a, b, c, d] = ip.octets();
                format!("02:cf:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
            })
            .unwrap_or_else(|| "02:cf:00:00:00:01".into());
        let upgrade = conf.get("ciupgrade").is_none_or(|v| v != "0");
        self.write_seed(vmid, ci, ip, &mac, upgrade)?;
        let mem = conf
            .get("memory")
            .and_then(|m| {
                m.trim_start_matches("current=")
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(512);
        let cores: u64 = conf.get("cores").and_then(|c| c.parse().ok()).unwrap_or(1);
        let sockets: u64 = conf
            .get("sockets")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        // KVM with the host CPU without IA32_ARCH_CAPABILITIES (nested KVM hosts refuse that
        // MSR), or emulation where setup-vm.sh found that KVM does not run guests.
        let tcg = std::fs::read_to_string(self.import_dir().join("accel"))
            .is_ok_and(|a| a.trim() == "tcg");
        // Under emulation the translated code is cached in the QEMU process: 1 GiB by default
        // on top of the guest's memory. 256 MiB holds a booted Debian's working set; the rest
        // would only raise each VM's resident memory.
        let (accel, cpu) = if tcg {
            ("tcg,tb-size=256", "max")
        } else {
            ("kvm", "host,-arch-capabilities")
        };
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-name",
            &format!("vm{vmid}"),
            "-machine",
            "pc",
            "-accel",
            accel,
            "-cpu",
            cpu,
        ])
        .args([
            "-smp",
            &(cores * sockets).max(1).to_string(),
            "-m",
            &mem.to_string(),
        ])
        .args(["-device", "virtio-scsi-pci,id=scsihw0"]);
        if let Some((k, i)) = &vm.kernel {
            cmd.arg("-kernel").arg(k).arg("-initrd").arg(i).args([
                "-append",
                "root=LABEL=cloudimg-rootfs rw console=ttyS0 quiet",
            ]);
        }
        let mut n = 0;
        for (key, value) in conf.iter().filter(|(k, _)| crate::state::is_vm_disk_key(k)) {
            if value.contains("media=cdrom") {
                continue;
            }
            let disk = dir.join(format!("disk-{key}.qcow2"));
            if !disk.is_file() {
                continue;
            }
            cmd.arg("-drive")
                .arg(format!(
                    "file={},if=none,id=drive-{key},format=qcow2,cache=unsafe,discard=unmap",
                    disk.display()
                ))
                .arg("-device")
                .arg(format!(
                    "scsi-hd,drive=drive-{key},bus=scsihw0.0,scsi-id={n}"
                ));
            n += 1;
        }
        cmd.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,readonly=on",
            dir.join("seed.iso").display()
        ));
        if ip.is_some() {
            let tap = self.tap_name(vmid, 0);
            if !Path::new("/sys/class/net").join(&tap).exists() {
                run_ok(
                    Command::new("ip").args(["tuntap", "add", "dev", &tap, "mode", "tap"]),
                    None,
                )?;
            }
            run_ok(
                Command::new("ip").args(["link", "set", &tap, "master", &self.opts.bridge, "up"]),
                None,
            )?;
            cmd.arg("-netdev")
                .arg(format!("tap,id=net0,ifname={tap},script=no,downscript=no"))
                .arg("-device")
                .arg(format!("virtio-net-pci,netdev=net0,mac={mac},addr=0x12"));
        } else {
            cmd.args(["-nic", "none"]);
        }
        let qmp = dir.join("qmp.sock");
        // As qemu-server: the agent's virtio-serial channel only when the config enables the
        // agent, so a guest's qemu-guest-agent finds no port otherwise.
        if conf
            .get("agent")
            .is_some_and(|a| crate::routes::qemu::agent_enabled(a))
        {
            let qga = dir.join("qga.sock");
            cmd.arg("-chardev")
                .arg(format!(
                    "socket,path={},server=on,wait=off,id=qga0",
                    qga.display()
                ))
                .args(["-device", "virtio-serial"])
                .args([
                    "-device",
                    "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
                ]);
        }
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log").display()))
            .args(["-display", "none", "-daemonize", "-pidfile"])
            .arg(dir.join("qemu.pid"));
        run_ok(&mut cmd, None)?;
        let pid = std::fs::read_to_string(dir.join("qemu.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        let watcher = match pid {
            Some(pid) => {
                let tap = ip.map(|_| self.tap_name(vmid, 0));
                Watcher::spawn(pid, &dir, tap.as_deref()).map(std::sync::Arc::new)
            }
            None => Err(format!("QEMU of VM {vmid} wrote no pid file")),
        };
        let watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                self.kill_vm(vmid);
                return Err(e);
            }
        };
        if let Some(v) = self.qlock().get_mut(&vmid) {
            v.conf = conf.clone();
            v.ip = ip;
            v.started = Some(Instant::now());
            v.pid = pid;
            v.watcher = Some(watcher);
        }
        Ok(())
    }

    pub(super) fn qemu_stop(&self, vmid: u32) -> Result<(), String> {
        self.kill_vm(vmid);
        self.remove_taps(vmid);
        Ok(())
    }

    pub(super) fn qemu_shutdown(&self, vmid: u32, agent: bool) -> Result<(), String> {
        if self.qemu_pid(vmid).is_none() {
            return Ok(());
        }
        let asked = if agent {
            self.qga(vmid, "guest-shutdown", json!({}), Duration::from_secs(5))
                .is_ok()
        } else {
            false
        };
        if !asked {
            let _ = self.qmp(vmid, "system_powerdown");
        }
        if !self.wait_exit(vmid, Duration::from_secs(60)) {
            self.kill_vm(vmid);
        }
        self.remove_taps(vmid);
        Ok(())
    }

    pub(super) fn qemu_destroy(&self, vmid: u32) -> Result<(), String> {
        // The API refuses first (`destroy_vm`); this keeps the clones' backing files whatever
        // asks.
        let clones = self.linked_clones_of(vmid);
        if !clones.is_empty() {
            return Err(format!(
                "base volume of VM {vmid} is still in use by linked cloned VM {}",
                clones
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.qemu_remove(vmid)
    }

    /// Remove a VM without asking whether clones use its disks (the backend's drop).
    pub(super) fn qemu_remove(&self, vmid: u32) -> Result<(), String> {
        self.kill_vm(vmid);
        self.remove_taps(vmid);
        self.qlock().remove(&vmid);
        self.release_claims(vmid);
        let dir = self.qdir(vmid);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        Ok(())
    }

    pub(super) fn qemu_ping(&self, vmid: u32) -> bool {
        self.qemu_pid(vmid).is_some()
            && self
                .qga(vmid, "guest-ping", json!({}), QGA_PING_TIMEOUT)
                .is_ok()
    }

    pub(super) fn qemu_interfaces(&self, vmid: u32) -> Option<Value> {
        self.qga(
            vmid,
            "guest-network-get-interfaces",
            json!({}),
            Duration::from_secs(5),
        )
        .ok()
    }

    pub(super) fn qemu_resize(&self, vmid: u32, disk: &str, bytes: u64) -> Result<(), String> {
        let path = self.qdir(vmid).join(format!("disk-{disk}.qcow2"));
        if self.qemu_pid(vmid).is_some() {
            return Err("online resize is not supported by the simulator's VMs".into());
        }
        run_ok(
            Command::new("qemu-img")
                .args(["resize", "-q"])
                .arg(&path)
                .arg(bytes.to_string()),
            None,
        )
        .map(|_| ())
    }

    /// The VM's disk images (drive key, file), in key order.
    fn disk_files(&self, vmid: u32) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(self.qdir(vmid))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let key = name.strip_prefix("disk-")?.strip_suffix(".qcow2")?;
                Some((key.to_string(), e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether the VM's config enables the guest agent and the agent answers (qemu-server's
    /// condition for freezing the guest's filesystems around a snapshot).
    fn agent_answers(&self, vmid: u32) -> bool {
        let enabled = self.qlock().get(&vmid).is_some_and(|v| {
            v.conf
                .get("agent")
                .is_some_and(|a| crate::routes::qemu::agent_enabled(a))
        });
        enabled
            && self
                .qga(vmid, "guest-ping", json!({}), QGA_PING_TIMEOUT)
                .is_ok()
    }

    /// `guest-fsfreeze-freeze` (`thaw: false`) or `-thaw`; as qemu-server, a failure is a
    /// warning, not the end of the snapshot.
    fn fsfreeze(&self, vmid: u32, thaw: bool) {
        let cmd = if thaw {
            "guest-fsfreeze-thaw"
        } else {
            "guest-fsfreeze-freeze"
        };
        if let Err(e) = self.qga(vmid, cmd, json!({}), Duration::from_secs(60)) {
            tracing::warn!("VM {vmid}: {cmd} problems - {e}");
        }
    }

    /// `qemu_volume_snapshot` for every disk: QMP `blockdev-snapshot-internal-sync` while QEMU
    /// runs (the filesystems frozen by the agent when it is enabled and answers), else
    /// `qemu-img snapshot -c`. A failure removes what was already taken.
    pub(super) fn qemu_snapshot(&self, vmid: u32, name: &str) -> Result<(), String> {
        check_snapname(name)?;
        let disks = self.disk_files(vmid);
        if disks.is_empty() {
            return Err(format!("VM {vmid} has no disks on this backend"));
        }
        let running = self.qemu_pid(vmid).is_some();
        let freeze = running && self.agent_answers(vmid);
        if freeze {
            self.fsfreeze(vmid, false);
        }
        let mut taken: Vec<&(String, PathBuf)> = Vec::new();
        let res = disks.iter().try_for_each(|d| {
            let (key, path) = d;
            if running {
                self.qmp_call(
                    vmid,
                    "blockdev-snapshot-internal-sync",
                    Some(json!({"device": format!("drive-{key}"), "name": name})),
                    Duration::from_secs(120),
                )?;
            } else {
                run_ok(
                    Command::new("qemu-img")
                        .args(["snapshot", "-q", "-c", name])
                        .arg(path),
                    None,
                )?;
            }
            taken.push(d);
            Ok::<_, String>(())
        });
        if freeze {
            self.fsfreeze(vmid, true);
        }
        if res.is_err() {
            for (key, path) in taken {
                let _ = self.delete_disk_snapshot(vmid, running, key, path, name);
            }
        }
        res
    }

    /// `volume_snapshot_rollback` for every disk (`qemu-img snapshot -a`); the API task stopped
    /// the VM first, as qemu-server does. Every disk is checked before any is touched.
    pub(super) fn qemu_rollback(&self, vmid: u32, name: &str) -> Result<(), String> {
        check_snapname(name)?;
        if self.qemu_pid(vmid).is_some() {
            return Err(format!("VM {vmid} is running"));
        }
        let disks = self.disk_files(vmid);
        for (key, path) in &disks {
            if !qcow2_snapshots(path)?.iter().any(|s| s == name) {
                return Err(format!(
                    "snapshot '{name}' does not exist on drive-{key} ({})",
                    path.display()
                ));
            }
        }
        for (_, path) in &disks {
            run_ok(
                Command::new("qemu-img")
                    .args(["snapshot", "-q", "-a", name])
                    .arg(path),
                None,
            )?;
        }
        Ok(())
    }

    /// `qemu_volume_snapshot_delete` for every disk holding the snapshot: QMP
    /// `blockdev-snapshot-delete-internal-sync` while QEMU runs, else `qemu-img snapshot -d`.
    pub(super) fn qemu_delete_snapshot(&self, vmid: u32, name: &str) -> Result<(), String> {
        check_snapname(name)?;
        let running = self.qemu_pid(vmid).is_some();
        for (key, path) in self.disk_files(vmid) {
            if qcow2_snapshots(&path)?.iter().any(|s| s == name) {
                self.delete_disk_snapshot(vmid, running, &key, &path, name)?;
            }
        }
        Ok(())
    }

    fn delete_disk_snapshot(
        &self,
        vmid: u32,
        running: bool,
        key: &str,
        path: &Path,
        name: &str,
    ) -> Result<(), String> {
        if running {
            self.qmp_call(
                vmid,
                "blockdev-snapshot-delete-internal-sync",
                Some(json!({"device": format!("drive-{key}"), "name": name})),
                Duration::from_secs(120),
            )
            .map(|_| ())
        } else {
            run_ok(
                Command::new("qemu-img")
                    .args(["snapshot", "-q", "-d", name])
                    .arg(path),
                None,
            )
            .map(|_| ())
        }
    }

    /// Convert to a template: the disks become read-only base images (the storage plugin's
    /// `create_base` makes them mode 0444), which linked clones use as backing files.
    pub(super) fn qemu_template(&self, vmid: u32) -> Result<Vec<String>, String> {
        use std::os::unix::fs::PermissionsExt as _;
        if self.qemu_pid(vmid).is_some() {
            return Err(format!("VM {vmid} is running"));
        }
        for (_, path) in self.disk_files(vmid) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(Vec::new())
    }

    /// The VMs whose disks are linked clones of VM `vmid`'s (their backing file is in its
    /// directory).
    pub(super) fn linked_clones_of(&self, vmid: u32) -> Vec<u32> {
        let base = normalize(&self.qdir(vmid));
        let others: Vec<u32> = self
            .qlock()
            .keys()
            .copied()
            .filter(|v| *v != vmid)
            .collect();
        let backed_by_base = |path: &Path| {
            let Ok(info) = qcow2_info(path) else {
                return false;
            };
            let Some(b) = info.get("backing-filename").and_then(Value::as_str) else {
                return false;
            };
            let dir = path.parent().unwrap_or(path);
            normalize(&dir.join(b)).starts_with(&base)
        };
        others
            .into_iter()
            .filter(|other| {
                self.disk_files(*other)
                    .iter()
                    .any(|(_, path)| backed_by_base(path))
            })
            .collect()
    }

    /// Clone VM `vmid` as `newid` (qemu-server's `clone_disk` per disk of `spec.conf`):
    /// linked — a qcow2 whose backing file is the template's disk (`qemu-img create -b`) —,
    /// or full — `qemu-img convert`, from snapshot `spec.snapname` when given
    /// (`-l snapshot.name=…`); a running source is copied from a transient internal snapshot
    /// so the copy is of one instant. The clone's identity (name, cloud-init seed, address,
    /// MAC, tap) comes from its own config at its first start.
    pub(super) fn qemu_clone(
        &self,
        vmid: u32,
        newid: u32,
        linked: bool,
        spec: &VmSpec,
    ) -> Result<Vec<String>, String> {
        let src = self
            .qlock()
            .get(&vmid)
            .cloned()
            .ok_or_else(|| format!("VM {vmid} has no disks on this backend"))?;
        if let Some(s) = &spec.snapname {
            check_snapname(s)?;
        }
        let dir = self.fresh_dir(newid)?;
        let running = self.qemu_pid(vmid).is_some();
        let transient = format!("clone-{newid}");
        let res = (|| {
            let mut lines = Vec::new();
            let mut made_transient = false;
            for (key, _) in data_disks(&spec.conf) {
                let from = self.qdir(vmid).join(format!("disk-{key}.qcow2"));
                if !from.is_file() {
                    return Err(format!("VM {vmid} has no disk {key} on this backend"));
                }
                let to = dir.join(format!("disk-{key}.qcow2"));
                if linked {
                    // Relative, as the storage plugin writes it (`../<vmid>/base-…`).
                    let backing = format!("../{vmid}/disk-{key}.qcow2");
                    run_ok(
                        Command::new("qemu-img")
                            .current_dir(&dir)
                            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &backing])
                            .arg(&to),
                        None,
                    )?;
                    continue;
                }
                let snap = match &spec.snapname {
                    Some(s) => Some(s.clone()),
                    None if running => {
                        if !made_transient {
                            self.qemu_snapshot(vmid, &transient)?;
                            made_transient = true;
                        }
                        Some(transient.clone())
                    }
                    None => None,
                };
                let mut cmd = Command::new("qemu-img");
                cmd.args(["convert", "-f", "qcow2", "-O", "qcow2"]);
                if let Some(s) = &snap {
                    cmd.arg("-l").arg(format!("snapshot.name={s}"));
                }
                if running {
                    // QEMU holds the image; the snapshot read is of one instant.
                    cmd.arg("-U");
                }
                run_ok(cmd.arg(&from).arg(&to), None)?;
                let size = qcow2_info(&to)?
                    .get("virtual-size")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let h = render_bytes(size);
                lines.push(format!("transferred {h} of {h} (100.00%)"));
            }
            if made_transient {
                self.qemu_delete_snapshot(vmid, &transient)?;
            }
            Ok::<_, String>(lines)
        })();
        match res {
            Ok(lines) => {
                self.qlock().insert(
                    newid,
                    QemuVm {
                        conf: spec.conf.clone(),
                        kernel: src.kernel,
                        ip: None,
                        started: None,
                        pid: None,
                        watcher: None,
                    },
                );
                Ok(lines)
            }
            Err(e) => {
                if running {
                    let _ = self.qemu_delete_snapshot(vmid, &transient);
                }
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    pub(super) fn qemu_push(&self, vmid: u32, path: &str, data: &[u8]) -> Result<(), String> {
        let h = self.qga(
            vmid,
            "guest-file-open",
            json!({"path": path, "mode": "w"}),
            Duration::from_secs(10),
        )?;
        let handle = h.as_i64().ok_or("no file handle")?;
        for chunk in data.chunks(48 * 1024) {
            self.qga(
                vmid,
                "guest-file-write",
                json!({"handle": handle, "buf-b64": B64.encode(chunk)}),
                Duration::from_secs(10),
            )?;
        }
        if data.is_empty() {
            self.qga(
                vmid,
                "guest-file-write",
                json!({"handle": handle, "buf-b64": ""}),
                Duration::from_secs(10),
            )?;
        }
        self.qga(
            vmid,
            "guest-file-close",
            json!({"handle": handle}),
            Duration::from_secs(10),
        )
        .map(|_| ())
    }

    pub(super) fn qemu_pull(&self, vmid: u32, path: &str) -> Result<Vec<u8>, String> {
        let h = self.qga(
            vmid,
            "guest-file-open",
            json!({"path": path, "mode": "r"}),
            Duration::from_secs(10),
        )?;
        let handle = h.as_i64().ok_or("no file handle")?;
        let mut out = Vec::new();
        loop {
            let r = self.qga(
                vmid,
                "guest-file-read",
                json!({"handle": handle, "count": 1024 * 1024}),
                Duration::from_secs(10),
            )?;
            if let Some(b) = r.get("buf-b64").and_then(Value::as_str) {
                out.extend(B64.decode(b).unwrap_or_default());
            }
            if r.get("eof").and_then(Value::as_bool) != Some(false) || out.len() > 16 << 20 {
                break;
            }
        }
        let _ = self.qga(
            vmid,
            "guest-file-close",
            json!({"handle": handle}),
            Duration::from_secs(10),
        );
        Ok(out)
    }

    pub(super) fn qemu_usage(&self, vmid: u32) -> Option<Usage> {
        let pid = self.qemu_pid(vmid)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let tap = Path::new("/sys/class/net")
            .join(self.tap_name(vmid, 0))
            .join("statistics");
        let mut stat = String::new();
        let cpu_ticks = std::fs::File::open(format!("/proc/{pid}/stat"))
            .and_then(|mut f| f.read_to_string(&mut stat))
            .ok()
            .and_then(|_| {
                let after = stat.rsplit_once(')')?.1;
                let f: Vec<&str> = after.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
            .unwrap_or(0);
        let up = self
            .qlock()
            .get(&vmid)
            .and_then(|v| v.started)
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(1.0)
            .max(0.001);
        Some(Usage {
            cpu: ((cpu_ticks as f64 / 100.0) / up).clamp(0.0, 1.0),
            mem: rss_kib * 1024,
            swap: 0,
            netin: read_u64(&tap.join("tx_bytes")).unwrap_or(0),
            netout: read_u64(&tap.join("rx_bytes")).unwrap_or(0),
            diskread: 0,
            diskwrite: 0,
            pid: Some(pid),
            disk: None,
        })
    }
}

/// The disks of a VM config that are images (cd-roms and the cloud-init drive left out).
fn data_disks(conf: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    conf.iter()
        .filter(|(k, v)| crate::state::is_vm_disk_key(k) && !v.contains("media=cdrom"))
}

/// `qemu-img info` of an image as JSON (`-U`: a running QEMU may hold it).
pub fn qcow2_info(path: &Path) -> Result<Value, String> {
    let o = run_ok(
        Command::new("qemu-img")
            .args(["info", "-U", "--output=json"])
            .arg(path),
        None,
    )?;
    serde_json::from_slice(&o.stdout).map_err(|e| format!("qemu-img info: {e}"))
}

/// The internal snapshots of a qcow2 image, by name.
pub fn qcow2_snapshots(path: &Path) -> Result<Vec<String>, String> {
    Ok(qcow2_info(path)?
        .get("snapshots")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// `a/b/../c` → `a/c`, without touching the filesystem.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Proxmox's `render_bytes` with one decimal (`2.0 GiB`), as its clone log prints sizes.
fn render_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// One QGA request and its `return` (`Err` with the agent's error text).
/// How long `guest-ping` may take before the agent counts as not running (qemu-server's
/// `qga_check_running`: `mon_cmd($vmid, "guest-ping", timeout => 3)`).
const QGA_PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Where Debian keeps the certificate authorities a site adds to its trust store.
const LOCAL_CA_DIR: &str = "/usr/local/share/ca-certificates";

/// cloud-init's `ca_certs` for the CAs the host added locally (`LOCAL_CA_DIR`), or nothing.
/// The guests leave through the host's network: where that network inspects TLS with its own
/// CA (a company proxy, a sandbox), the guests trust it as the host does, as an administrator
/// would hand it to VMs through cloud-init.
fn local_ca_certs(dir: &Path) -> String {
    let mut pems: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|pem| pem.contains("-----BEGIN CERTIFICATE-----"))
        .collect();
    if pems.is_empty() {
        return String::new();
    }
    pems.sort();
    let mut out = String::from("ca_certs:\n  trusted:\n");
    for pem in pems {
        out.push_str("    - |\n");
        for line in pem.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str("      ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn qga_call(path: &Path, cmd: &str, args: Value, wait: Duration) -> Result<Value, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("QGA socket: {e}"))?;
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let id = u64::from(rand::random::<u32>());
    let sync = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
    s.write_all(format!("{sync}\n").as_bytes())
        .map_err(|e| format!("QGA write: {e}"))?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    // Everything before the 0xFF sentinel is a stale answer.
    let mut skipped = Vec::new();
    r.read_until(0xff, &mut skipped)
        .map_err(|e| format!("QGA sync: {e}"))?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)
            .map_err(|e| format!("QGA sync: {e}"))?
            == 0
        {
            return Err("QGA closed the connection".into());
        }
        let v: Value =
            serde_json::from_str(line.trim_start_matches('\u{ff}').trim()).unwrap_or(Value::Null);
        if v.get("return").and_then(Value::as_u64) == Some(id) {
            break;
        }
    }
    let req = json!({"execute": cmd, "arguments": args});
    s.write_all(format!("{req}\n").as_bytes())
        .map_err(|e| format!("QGA write: {e}"))?;
    if cmd == "guest-shutdown" {
        return Ok(Value::Null);
    }
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("QGA read: {e}"))?;
    let v: Value = serde_json::from_str(line.trim()).map_err(|e| format!("QGA answer: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(err
            .get("desc")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_string());
    }
    Ok(v.get("return").cloned().unwrap_or(Value::Null))
}

/// Run a command through `guest-exec` and poll `guest-exec-status` until it ends.
fn qga_exec(sock: &Path, argv: &[String], stdin: &[u8]) -> Result<(u32, Vec<u8>, Vec<u8>), String> {
    let (path, args) = argv.split_first().ok_or("empty command")?;
    let mut req = json!({"path": path, "arg": args, "capture-output": true});
    if !stdin.is_empty() {
        req["input-data"] = json!(B64.encode(stdin));
    }
    let started = qga_call(sock, "guest-exec", req, Duration::from_secs(10))?;
    let pid = started.get("pid").and_then(Value::as_i64).ok_or("no pid")?;
    loop {
        let st = qga_call(
            sock,
            "guest-exec-status",
            json!({"pid": pid}),
            Duration::from_secs(10),
        )?;
        if st.get("exited").and_then(Value::as_bool) == Some(true) {
            let dec = |k: &str| {
                st.get(k)
                    .and_then(Value::as_str)
                    .and_then(|s| B64.decode(s).ok())
                    .unwrap_or_default()
            };
            let code = st
                .get("exitcode")
                .and_then(Value::as_i64)
                .map(|c| u32::try_from(c).unwrap_or(255))
                .unwrap_or(255);
            return Ok((code, dec("out-data"), dec("err-data")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An exec future for a VM: `guest-exec` in a blocking thread, the output sent at the end.
pub(super) fn vm_exec_future(
    backend: &LxcBackend,
    vmid: u32,
    argv: Vec<String>,
    stdin: Vec<u8>,
    out: UnboundedSender<ExecChunk>,
) -> ExecFuture {
    let sock = backend.qdir(vmid).join("qga.sock");
    Box::pin(async move {
        let res = tokio::task::spawn_blocking(move || qga_exec(&sock, &argv, &stdin))
            .await
            .unwrap_or_else(|e| Err(format!("agent task failed: {e}")));
        match res {
            Ok((code, o, e)) => {
                if !o.is_empty() {
                    let _ = out.send(ExecChunk::Stdout(o));
                }
                if !e.is_empty() {
                    let _ = out.send(ExecChunk::Stderr(e));
                }
                code
            }
            Err(e) => {
                let _ = out.send(ExecChunk::Stderr(format!("{e}\n").into_bytes()));
                255
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for QEMU: a process whose command line names a file in `dir` (as QEMU's
    /// names its disks and pid file); it waits on its stdin, held open by the test.
    fn stand_in(dir: &Path) -> std::process::Child {
        Command::new("cat")
            .arg("-")
            .arg(dir.join("qemu.pid"))
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn ended(child: &mut std::process::Child) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A state directory of this test's own (created only where the test says).
    fn state_dir() -> PathBuf {
        std::env::temp_dir().join(format!(
            "ctforge-sim-watcher-{:016x}",
            rand::random::<u64>()
        ))
    }

    #[test]
    fn local_cas_become_cloud_init_ca_certs() {
        let dir = state_dir();
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(local_ca_certs(&dir), "");
        std::fs::write(
            dir.join("site.crt"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a certificate").unwrap();
        assert_eq!(
            local_ca_certs(&dir),
            "ca_certs:\n  trusted:\n    - |\n      -----BEGIN CERTIFICATE-----\n      AAAA\n      -----END CERTIFICATE-----\n"
        );
        assert!(local_ca_certs(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_print_as_proxmox_clone_logs_them() {
        assert_eq!(render_bytes(0), "0.0 B");
        assert_eq!(render_bytes(1023), "1023.0 B");
        assert_eq!(render_bytes(2 * 1024 * 1024 * 1024), "2.0 GiB");
        assert_eq!(render_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn a_backing_path_is_resolved_against_its_image() {
        let disk_dir = Path::new("/s/qemu/4346");
        assert_eq!(
            normalize(&disk_dir.join("../4344/disk-scsi0.qcow2")),
            Path::new("/s/qemu/4344/disk-scsi0.qcow2")
        );
        // VM 43's directory is not a prefix of VM 4344's (components, not text).
        assert!(!normalize(&disk_dir.join("../4344/d.qcow2")).starts_with("/s/qemu/43"));
    }

    #[test]
    fn snapshot_names_are_proxmox_config_ids() {
        for ok in ["before", "a", "pre-upgrade_2"] {
            assert!(check_snapname(ok).is_ok(), "{ok}");
        }
        // Empty, a leading digit or dash (read as a qemu-img option), paths, separators.
        for bad in [
            "",
            "1st",
            "-l",
            "../x",
            "a/b",
            "a,b",
            "a b",
            "snapshot.name=x",
        ] {
            assert_eq!(
                check_snapname(bad),
                Err(format!("invalid snapshot name '{bad}'")),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_watcher_kills_its_qemu_when_the_pipe_closes() {
        let dir = state_dir();
        let mut qemu = stand_in(&dir.join("qemu/45"));
        std::fs::create_dir_all(dir.join("qemu/45")).unwrap();
        let watcher = Watcher::spawn(qemu.id(), &dir.join("qemu/45"), None).unwrap();
        assert!(qemu.try_wait().unwrap().is_none(), "runs while watched");
        // What the simulator's process ending does to the pipe.
        drop(watcher);
        assert!(ended(&mut qemu), "the watched process was killed");
        assert!(!dir.join("qemu/45").exists(), "its directory was removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_watcher_leaves_a_process_that_is_not_its_vm_alone() {
        let dir = state_dir();
        // VM 450's process is not VM 45's, though one directory name starts the other.
        let mut other = stand_in(&dir.join("qemu/450"));
        let watcher = Watcher::spawn(other.id(), &dir.join("qemu/45"), None).unwrap();
        drop(watcher);
        std::thread::sleep(Duration::from_millis(200));
        assert!(other.try_wait().unwrap().is_none(), "left alone");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
