//! JSON views of the simulated cluster as Proxmox prints them: `cluster/resources` entries,
//! CT status (`status/current`) and storage usage.

use super::*;

impl Cluster {
    /// `cluster/resources`-style node entry.
    pub fn node_resource(&self, n: &Node) -> Value {
        let now = self.now();
        if !n.online {
            return json!({"id": format!("node/{}", n.name), "type": "node", "node": n.name,
                "status": "offline", "level": ""});
        }
        let running: u64 = self
            .cts
            .values()
            .chain(self.vms.values())
            .filter(|c| c.node == n.name && c.running)
            .map(|c| c.memory_mib() * MIB / 3)
            .sum();
        json!({
            "id": format!("node/{}", n.name), "type": "node", "node": n.name, "status": "online",
            "cpu": 0.02 + 0.1 * frac(self.seed, now / 10), "maxcpu": n.maxcpu,
            "mem": (2 * GIB + running).min(n.maxmem), "maxmem": n.maxmem,
            "disk": n.maxdisk / 5, "maxdisk": n.maxdisk, "uptime": now.saturating_sub(self.boot_time),
            "level": "", "cgroup-mode": 2,
        })
    }

    /// Status fields of a CT as `status/current` and the `lxc` list report them.
    pub fn ct_status(&self, ct: &Ct, full: bool) -> Value {
        let now = self.now();
        let cores: Option<f64> = ct.conf.get("cores").and_then(|c| c.parse().ok());
        let cpulimit: Option<f64> = ct
            .conf
            .get("cpulimit")
            .and_then(|c| c.parse().ok())
            .filter(|c: &f64| *c > 0.0);
        let node_cpus = self.node(&ct.node).map(|n| n.maxcpu).unwrap_or(4) as f64;
        let cpus = cores.or(cpulimit).unwrap_or(node_cpus);
        let maxmem = ct.memory_mib() * MIB;
        let maxswap = ct.swap_mib() * MIB;
        let maxdisk = ct.rootfs_bytes();
        let v = u64::from(ct.vmid);
        let mut o = serde_json::Map::new();
        o.insert("vmid".into(), json!(ct.vmid));
        o.insert("type".into(), json!("lxc"));
        o.insert("name".into(), json!(ct.name()));
        o.insert(
            "status".into(),
            json!(if ct.running { "running" } else { "stopped" }),
        );
        o.insert("cpus".into(), json!(cpus));
        o.insert("maxmem".into(), json!(maxmem));
        o.insert("maxswap".into(), json!(maxswap));
        o.insert("maxdisk".into(), json!(maxdisk));
        if ct.running {
            let uptime = now.saturating_sub(ct.started_at.unwrap_or(now));
            let cpu = if uptime < 10 {
                0.0
            } else {
                0.005 + 0.15 * frac(v, now / 10)
            };
            o.insert("cpu".into(), json!(cpu));
            o.insert(
                "mem".into(),
                json!((maxmem as f64 * (0.08 + 0.3 * frac(v, 7))) as u64),
            );
            o.insert("swap".into(), json!(0));
            o.insert(
                "disk".into(),
                json!((maxdisk as f64 * (0.1 + 0.4 * frac(v, 3))) as u64),
            );
            o.insert("uptime".into(), json!(uptime));
            o.insert(
                "netin".into(),
                json!(uptime * (200 + (frac(v, 11) * 5000.0) as u64)),
            );
            o.insert(
                "netout".into(),
                json!(uptime * (100 + (frac(v, 13) * 3000.0) as u64)),
            );
            o.insert("diskread".into(), json!(50 * MIB + uptime * 1024));
            o.insert("diskwrite".into(), json!(20 * MIB + uptime * 2048));
            o.insert("pid".into(), json!(1000 + v * 7));
            let p = (frac(v, now / 10 + 1) * 0.5 * 100.0).round() / 100.0;
            for k in [
                "pressurecpusome",
                "pressurecpufull",
                "pressureiosome",
                "pressureiofull",
                "pressurememorysome",
                "pressurememoryfull",
            ] {
                o.insert(k.into(), json!(p));
            }
        } else {
            for k in [
                "cpu",
                "mem",
                "swap",
                "disk",
                "uptime",
                "netin",
                "netout",
                "diskread",
                "diskwrite",
            ] {
                o.insert(k.into(), json!(0));
            }
        }
        if let Some(t) = ct.conf.get("tags") {
            o.insert("tags".into(), json!(t));
        }
        if let Some(l) = ct.lock() {
            o.insert("lock".into(), json!(l));
        }
        if ct.conf.get("template").map(String::as_str) == Some("1") {
            o.insert("template".into(), json!(1));
        }
        if full {
            o.insert("ha".into(), json!({"managed": 0}));
        }
        Value::Object(o)
    }

    /// `cluster/resources` entry of a CT.
    pub fn ct_resource(&self, ct: &Ct) -> Value {
        let online = self.node(&ct.node).map(|n| n.online).unwrap_or(false);
        let st = self.ct_status(ct, false);
        let g = |k: &str| st.get(k).cloned().unwrap_or(json!(0));
        let mut o = json!({
            "id": format!("lxc/{}", ct.vmid), "type": "lxc", "vmid": ct.vmid, "node": ct.node,
            "name": ct.name(), "status": if online { g("status") } else { json!("unknown") },
            "maxcpu": g("cpus"), "cpu": g("cpu"), "maxmem": g("maxmem"), "mem": g("mem"),
            "maxdisk": g("maxdisk"), "disk": g("disk"), "netin": g("netin"), "netout": g("netout"),
            "diskread": g("diskread"), "diskwrite": g("diskwrite"), "uptime": g("uptime"),
            "template": if ct.conf.get("template").map(String::as_str) == Some("1") { 1 } else { 0 },
        });
        if let Some(m) = o.as_object_mut() {
            if let Some(t) = ct.conf.get("tags") {
                m.insert("tags".into(), json!(t));
            }
            if let Some(l) = ct.lock() {
                m.insert("lock".into(), json!(l));
            }
            if let Some((p, _)) = self.pools.iter().find(|(_, p)| p.vms.contains(&ct.vmid)) {
                m.insert("pool".into(), json!(p));
            }
        }
        o
    }

    /// Used bytes of a storage on a node (CT disks + file volumes).
    pub fn storage_used(&self, node: &str, st: &StorageDef) -> u64 {
        let disks: u64 = self
            .cts
            .values()
            .chain(self.vms.values())
            .filter(|c| c.node == node || st.shared)
            .flat_map(|c| {
                c.conf
                    .iter()
                    .filter(|(k, _)| *k == "rootfs" || k.starts_with("mp") || is_vm_disk_key(k))
            })
            .filter(|(_, v)| v.starts_with(&format!("{}:", st.id)))
            .filter_map(|(_, v)| {
                v.split(',')
                    .find_map(|p| p.strip_prefix("size="))
                    .and_then(parse_size)
            })
            .sum();
        let files: u64 = self
            .volumes
            .iter()
            .filter(|v| v.storage == st.id && v.node.as_deref().map(|n| n == node).unwrap_or(true))
            .map(|v| v.size)
            .sum();
        disks / 3 + files
    }
}

/// Whether a qemu config key names a disk (`scsiN`, `virtioN`, `sataN`, `ideN`, `efidisk0`,
/// `tpmstate0`).
pub fn is_vm_disk_key(k: &str) -> bool {
    ["scsi", "virtio", "sata", "ide", "efidisk", "tpmstate"]
        .iter()
        .any(|p| {
            k.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

impl Cluster {
    /// Name of a VM as Proxmox shows it: `name`, else `VM <vmid>`.
    pub fn vm_name(vm: &Ct) -> String {
        vm.conf
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {}", vm.vmid))
    }

    /// Size of a VM's boot disk (the first `size=` of a non-cdrom disk in boot order).
    pub fn vm_maxdisk(vm: &Ct) -> u64 {
        let order: Vec<String> = vm
            .conf
            .get("boot")
            .and_then(|b| b.strip_prefix("order="))
            .map(|o| o.split(';').map(str::to_string).collect())
            .unwrap_or_default();
        let disks = vm
            .conf
            .iter()
            .filter(|(k, v)| is_vm_disk_key(k) && !v.contains("media=cdrom"));
        let size_of = |v: &str| {
            v.split(',')
                .find_map(|p| p.strip_prefix("size="))
                .and_then(parse_size)
        };
        order
            .iter()
            .find_map(|k| vm.conf.get(k).filter(|v| !v.contains("media=cdrom")))
            .and_then(|v| size_of(v))
            .or_else(|| disks.filter_map(|(_, v)| size_of(v)).next())
            .unwrap_or(0)
    }

    /// Status fields of a VM as `status/current` (`full`) and the `qemu` list report them
    /// (`PVE::QemuServer::vmstatus`).
    pub fn vm_status(&self, vm: &Ct, full: bool) -> Value {
        let now = self.now();
        let cores: f64 = vm
            .conf
            .get("cores")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1.0);
        let sockets: f64 = vm
            .conf
            .get("sockets")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1.0);
        let cpus = vm
            .conf
            .get("vcpus")
            .and_then(|c| c.parse().ok())
            .unwrap_or(cores * sockets);
        let maxmem = vm.memory_mib() * MIB;
        let v = u64::from(vm.vmid);
        let mut o = serde_json::Map::new();
        o.insert("vmid".into(), json!(vm.vmid));
        o.insert(
            "status".into(),
            json!(if vm.running { "running" } else { "stopped" }),
        );
        o.insert("name".into(), json!(Cluster::vm_name(vm)));
        o.insert("cpus".into(), json!(cpus));
        o.insert("maxmem".into(), json!(maxmem));
        o.insert("maxdisk".into(), json!(Cluster::vm_maxdisk(vm)));
        o.insert("disk".into(), json!(0));
        if vm.conf.contains_key("serial0") {
            o.insert("serial".into(), json!(1));
        }
        if vm.running {
            let uptime = now.saturating_sub(vm.started_at.unwrap_or(now));
            let cpu = if uptime < 10 {
                0.0
            } else {
                0.01 + 0.1 * frac(v, now / 10)
            };
            let mem = (maxmem as f64 * (0.2 + 0.3 * frac(v, 7))) as u64;
            o.insert("cpu".into(), json!(cpu));
            o.insert("mem".into(), json!(mem));
            o.insert("freemem".into(), json!(maxmem.saturating_sub(mem)));
            o.insert("uptime".into(), json!(uptime));
            o.insert(
                "netin".into(),
                json!(uptime * (300 + (frac(v, 11) * 5000.0) as u64)),
            );
            o.insert(
                "netout".into(),
                json!(uptime * (150 + (frac(v, 13) * 3000.0) as u64)),
            );
            o.insert("diskread".into(), json!(180 * MIB + uptime * 2048));
            o.insert("diskwrite".into(), json!(40 * MIB + uptime * 4096));
            o.insert("pid".into(), json!(2000 + v * 11));
            o.insert("balloon".into(), json!(maxmem));
            if full {
                o.insert("qmpstatus".into(), json!("running"));
                o.insert("running-machine".into(), json!("pc-i440fx-10.0+pve0"));
                o.insert("running-qemu".into(), json!("10.0.2"));
            }
        } else {
            for k in [
                "cpu",
                "mem",
                "uptime",
                "netin",
                "netout",
                "diskread",
                "diskwrite",
            ] {
                o.insert(k.into(), json!(0));
            }
            if full {
                o.insert("qmpstatus".into(), json!("stopped"));
            }
        }
        if let Some(t) = vm.conf.get("tags") {
            o.insert("tags".into(), json!(t));
        }
        if let Some(l) = vm.lock() {
            o.insert("lock".into(), json!(l));
        }
        if vm.conf.get("template").map(String::as_str) == Some("1") {
            o.insert("template".into(), json!(1));
        }
        if full {
            o.insert("ha".into(), json!({"managed": 0}));
            let agent_on = vm
                .conf
                .get("agent")
                .is_some_and(|a| crate::routes::qemu::agent_enabled(a));
            if agent_on {
                o.insert("agent".into(), json!(1));
            }
        }
        Value::Object(o)
    }

    /// `cluster/resources` entry of a VM.
    pub fn vm_resource(&self, vm: &Ct) -> Value {
        let online = self.node(&vm.node).map(|n| n.online).unwrap_or(false);
        let st = self.vm_status(vm, false);
        let g = |k: &str| st.get(k).cloned().unwrap_or(json!(0));
        let mut o = json!({
            "id": format!("qemu/{}", vm.vmid), "type": "qemu", "vmid": vm.vmid, "node": vm.node,
            "name": Cluster::vm_name(vm), "status": if online { g("status") } else { json!("unknown") },
            "maxcpu": g("cpus"), "cpu": g("cpu"), "maxmem": g("maxmem"), "mem": g("mem"),
            "maxdisk": g("maxdisk"), "disk": g("disk"), "netin": g("netin"), "netout": g("netout"),
            "diskread": g("diskread"), "diskwrite": g("diskwrite"), "uptime": g("uptime"),
            "template": if vm.conf.get("template").map(String::as_str) == Some("1") { 1 } else { 0 },
        });
        if let Some(m) = o.as_object_mut() {
            if let Some(t) = vm.conf.get("tags") {
                m.insert("tags".into(), json!(t));
            }
            if let Some(l) = vm.lock() {
                m.insert("lock".into(), json!(l));
            }
            if let Some((p, _)) = self.pools.iter().find(|(_, p)| p.vms.contains(&vm.vmid)) {
                m.insert("pool".into(), json!(p));
            }
        }
        o
    }
}
