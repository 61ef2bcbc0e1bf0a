//! Building the simulator's state from a configuration and its scenario (nodes, storages,
//! users, ACLs, containers, appliances), or loading it from `state.json`.

use super::*;

impl SimState {
    /// Build the state from a config (and its scenario), or load it from
    /// `<state_dir>/state.json` when present.
    pub fn build(cfg: &SimConfig) -> Result<SimState, SimError> {
        let backend: Arc<dyn CtBackend> = match cfg.backend {
            Backend::Memory => Arc::new(MemoryBackend::new()),
            Backend::Lxc => {
                let dir = cfg.state_dir.as_deref().ok_or_else(|| {
                    SimError::Backend("the lxc backend needs a state directory".into())
                })?;
                Arc::new(
                    crate::backend::lxc::LxcBackend::new(dir, cfg.lxc.clone())
                        .map_err(SimError::Backend)?,
                )
            }
        };
        if let Some(dir) = &cfg.state_dir {
            let path = dir.join("state.json");
            if path.exists() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| SimError::State(format!("{}: {e}", path.display())))?;
                let p: Persisted = serde_json::from_str(&text)
                    .map_err(|e| SimError::State(format!("{}: {e}", path.display())))?;
                backend.load(&p.guests).map_err(SimError::State)?;
                let mut cluster = p.cluster;
                // Running tasks did not survive the restart.
                let now = cluster.now();
                for t in cluster.tasks.values_mut().filter(|t| t.running) {
                    t.running = false;
                    t.endtime = Some(now);
                    t.exitstatus = Some("unexpected status".into());
                }
                for ct in cluster.cts.values_mut().chain(cluster.vms.values_mut()) {
                    if ct.lock() == Some("create") {
                        ct.conf.remove("lock");
                    }
                }
                cluster.fault_hits = cluster
                    .faults
                    .rules
                    .iter()
                    .map(|r| r.times.unwrap_or(u32::MAX))
                    .collect();
                return Ok(SimState::from_parts(
                    cluster,
                    backend,
                    p.key,
                    p.creds,
                    cfg.state_dir.clone(),
                ));
            }
        }
        let scen = cfg.scenario.clone().unwrap_or_default();
        let mut rng_key = vec![0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut rng_key[..]);
        let root_password = cfg.root_password.clone().unwrap_or_else(random_password);
        let token_secret = cfg
            .token_secret
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let noperm_secret = uuid::Uuid::new_v4().to_string();
        let now = wall_now();

        let node_names: Vec<String> = match (&scen.nodes, scen.node_count) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, Some(c)) => (1..=c.max(1)).map(|i| format!("pve{i}")).collect(),
            _ => (1..=cfg.nodes.max(1)).map(|i| format!("pve{i}")).collect(),
        };
        for n in &node_names {
            if crate::validate::check_named_format("pve-node", n).is_err() {
                return Err(SimError::Scenario(format!("invalid node name '{n}'")));
            }
        }
        for d in &scen.down_nodes {
            if !node_names.contains(d) {
                return Err(SimError::Scenario(format!("down node '{d}' is not a node")));
            }
        }
        let nodes = node_names
            .iter()
            .map(|n| Node {
                name: n.clone(),
                online: !scen.down_nodes.contains(n),
                down_code: 595,
                maxcpu: 16,
                maxmem: 64 * GIB,
                maxdisk: 100 * GIB,
            })
            .collect();
        let storages = scen
            .storages
            .clone()
            .unwrap_or_else(|| {
                vec![
                    StorageSpec {
                        id: "local".into(),
                        kind: "dir".into(),
                        content: "vztmpl,iso,backup,import,snippets".into(),
                        total_gib: Some(100),
                        shared: false,
                    },
                    StorageSpec {
                        id: "local-lvm".into(),
                        kind: "lvmthin".into(),
                        content: "rootdir,images".into(),
                        total_gib: Some(400),
                        shared: false,
                    },
                ]
            })
            .into_iter()
            .map(|s| StorageDef {
                content: crate::validate::split_list(&s.content),
                id: s.id,
                kind: s.kind,
                total: s.total_gib.unwrap_or(100) * GIB,
                shared: s.shared,
            })
            .collect::<Vec<_>>();
        let tmpl_storage = storages
            .iter()
            .find(|s| s.supports("vztmpl"))
            .map(|s| s.id.clone())
            .unwrap_or_else(|| "local".into());
        let mut volumes = vec![
            Volume {
                node: None,
                storage: tmpl_storage.clone(),
                volid: format!("{tmpl_storage}:vztmpl/{DEFAULT_TEMPLATE}"),
                content: "vztmpl".into(),
                format: "tzst".into(),
                size: 126_674_371,
                ctime: now - 40 * 86400,
            },
            Volume {
                node: None,
                storage: tmpl_storage.clone(),
                volid: format!("{tmpl_storage}:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"),
                content: "vztmpl".into(),
                format: "tzst".into(),
                size: 141_557_442,
                ctime: now - 20 * 86400,
            },
        ];
        if let Some(iso) = storages.iter().find(|s| s.supports("iso")) {
            volumes.push(Volume {
                node: None,
                storage: iso.id.clone(),
                volid: format!("{}:iso/debian-12.7.0-amd64-netinst.iso", iso.id),
                content: "iso".into(),
                format: "iso".into(),
                size: 661_651_456,
                ctime: now - 60 * 86400,
            });
        }
        // Cloud images for VMs (`import` content, as `import-from=` sources).
        if let Some(imp) = storages.iter().find(|s| s.supports("import")) {
            let mut images: Vec<(String, u64)> = DEFAULT_IMPORT_IMAGES
                .iter()
                .map(|(f, size)| ((*f).to_string(), *size))
                .collect();
            for i in scen.images.iter().filter(|i| i.storage == imp.id) {
                images.push((i.file.clone(), i.size.unwrap_or(350_000_000)));
            }
            for (file, size) in images {
                volumes.push(Volume {
                    node: None,
                    storage: imp.id.clone(),
                    volid: format!("{}:import/{file}", imp.id),
                    content: "import".into(),
                    format: import_format(&file),
                    size,
                    ctime: now - 10 * 86400,
                });
            }
        }
        for i in &scen.images {
            let ok = storages
                .iter()
                .any(|s| s.id == i.storage && s.supports("import"));
            let ext_ok = [".ova", ".ovf", ".qcow2", ".raw", ".vmdk"]
                .iter()
                .any(|e| i.file.ends_with(e));
            if ok && ext_ok {
                continue;
            }
            return Err(SimError::Scenario(format!(
                "image '{}': not an .ova/.ovf/.qcow2/.raw/.vmdk file on a storage with 'import' content ('{}')",
                i.file, i.storage
            )));
        }
        for t in &scen.templates {
            volumes.push(Volume {
                node: None,
                storage: t.storage.clone(),
                volid: format!("{}:vztmpl/{}", t.storage, t.file),
                content: "vztmpl".into(),
                format: template_format(&t.file),
                size: t.size.unwrap_or(100_000_000),
                ctime: now - 86400,
            });
        }

        let mut users = BTreeMap::new();
        let mut acl = Vec::new();
        users.insert(
            "root@pam".to_string(),
            User {
                userid: "root@pam".into(),
                password: root_password.clone(),
                totp_secret: None,
                enabled: true,
            },
        );
        users.insert(
            "alice@pve".to_string(),
            User {
                userid: "alice@pve".into(),
                password: scen
                    .alice_password
                    .clone()
                    .unwrap_or_else(|| "alice".into()),
                totp_secret: None,
                enabled: true,
            },
        );
        acl.push(AclEntry {
            path: "/vms".into(),
            ugid: "alice@pve".into(),
            role: "SimCtViewer".into(),
            propagate: true,
        });
        users.insert(
            "carol@pve".to_string(),
            User {
                userid: "carol@pve".into(),
                password: "carol".into(),
                totp_secret: Some("JBSWY3DPEHPK3PXP".into()),
                enabled: true,
            },
        );
        acl.push(AclEntry {
            path: "/".into(),
            ugid: "carol@pve".into(),
            role: "PVEAdmin".into(),
            propagate: true,
        });
        for u in &scen.users {
            if !u.userid.contains('@') {
                return Err(SimError::Scenario(format!(
                    "user id '{}' lacks a realm",
                    u.userid
                )));
            }
            users.insert(
                u.userid.clone(),
                User {
                    userid: u.userid.clone(),
                    password: u.password.clone(),
                    totp_secret: u.totp_secret.clone(),
                    enabled: u.enabled,
                },
            );
            if let Some(role) = &u.role {
                acl.push(AclEntry {
                    path: u.path.clone().unwrap_or_else(|| "/".into()),
                    ugid: u.userid.clone(),
                    role: role.clone(),
                    propagate: true,
                });
            }
        }
        let mut tokens = BTreeMap::new();
        tokens.insert(
            "root@pam!ctforge".to_string(),
            Token {
                full_id: "root@pam!ctforge".into(),
                secret: token_secret.clone(),
                privsep: false,
                expire: 0,
                comment: Some("ctforge simulator".into()),
            },
        );
        tokens.insert(
            "root@pam!noperm".to_string(),
            Token {
                full_id: "root@pam!noperm".into(),
                secret: noperm_secret.clone(),
                privsep: true,
                expire: 0,
                comment: Some("privilege separated, no ACL".into()),
            },
        );
        for t in &scen.tokens {
            let Some((user, _)) = t.id.split_once('!') else {
                return Err(SimError::Scenario(format!("token id '{}' lacks '!'", t.id)));
            };
            if !users.contains_key(user) {
                return Err(SimError::Scenario(format!(
                    "token '{}': no such user",
                    t.id
                )));
            }
            tokens.insert(
                t.id.clone(),
                Token {
                    full_id: t.id.clone(),
                    secret: t.secret.clone(),
                    privsep: t.privsep,
                    expire: t.expire,
                    comment: None,
                },
            );
            if let Some(role) = &t.role {
                acl.push(AclEntry {
                    path: "/".into(),
                    ugid: t.id.clone(),
                    role: role.clone(),
                    propagate: true,
                });
            }
        }
        for a in &scen.acl {
            acl.push(AclEntry {
                path: a.path.clone(),
                ugid: a.ugid.clone(),
                role: a.role.clone(),
                propagate: a.propagate,
            });
        }
        let groups: BTreeMap<String, BTreeSet<String>> = scen
            .groups
            .iter()
            .map(|g| (g.id.clone(), g.members.iter().cloned().collect()))
            .collect();
        let pools: BTreeMap<String, Pool> = scen
            .pools
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    Pool {
                        comment: None,
                        vms: p.vms.iter().copied().collect(),
                        storages: p.storages.iter().cloned().collect(),
                    },
                )
            })
            .collect();
        let faults = scen.faults.clone().unwrap_or_default();
        for r in &faults.rules {
            if regex::Regex::new(&r.path).is_err() {
                return Err(SimError::Scenario(format!(
                    "bad fault path regex '{}'",
                    r.path
                )));
            }
        }
        let mut ssh_keys = cfg.ssh_authorized_keys.clone();
        ssh_keys.extend(scen.ssh_authorized_keys.iter().cloned());
        let mut cluster = Cluster {
            name: scen.cluster_name.clone().unwrap_or_else(|| "sim".into()),
            nodes,
            storages,
            volumes,
            bridges: scen.bridges.clone().unwrap_or_else(|| vec!["vmbr0".into()]),
            cts: BTreeMap::new(),
            vms: BTreeMap::new(),
            tasks: BTreeMap::new(),
            users,
            tokens,
            acl,
            pools,
            groups,
            ticket_lifetime: scen.ticket_lifetime_secs.unwrap_or(7200),
            timings: scen.timings.clone().unwrap_or_else(|| cfg.timings.clone()),
            fault_hits: faults
                .rules
                .iter()
                .map(|r| r.times.unwrap_or(u32::MAX))
                .collect(),
            faults,
            clock_offset: 0,
            next_pid: 0x1000 + (mix(cfg.seed) % 0x10000) as u32,
            boot_time: now - 3 * 86400 - 1234,
            mac_counter: 0,
            seed: cfg.seed,
            appliances: default_appliances(),
            ssh_authorized_keys: ssh_keys,
        };
        let creds = Credentials {
            root_password,
            token_id: "root@pam!ctforge".into(),
            token_secret,
            noperm_token_secret: noperm_secret,
        };
        // Pre-existing containers.
        let count = scen.container_count.unwrap_or(cfg.containers);
        let mut specs: Vec<ContainerSpec> = Vec::new();
        let explicit: BTreeSet<u32> = scen.containers.iter().map(|c| c.vmid).collect();
        let mut vmid = 100u32;
        for i in 0..count {
            while explicit.contains(&vmid) {
                vmid += 1;
            }
            let r = mix(cfg.seed ^ u64::from(vmid));
            let word = WORDS[(r % WORDS.len() as u64) as usize];
            let running = i % 5 != 3;
            let services = if running {
                match r % 4 {
                    0 => vec![svc("nginx", Some(80))],
                    1 => vec![svc("postgresql", Some(5432))],
                    2 => vec![svc("redis-server", Some(6379)), svc("nginx", Some(80))],
                    _ => vec![],
                }
            } else {
                vec![]
            };
            specs.push(ContainerSpec {
                vmid,
                node: Some(node_names[(i as usize) % node_names.len()].clone()),
                hostname: Some(format!("{word}-{:02}", i + 1)),
                status: Some(if running { "running" } else { "stopped" }.into()),
                cores: Some([1, 2, 4][(r >> 8) as usize % 3]),
                memory: Some([512, 1024, 2048][(r >> 12) as usize % 3]),
                disk_gib: Some([4, 8, 16][(r >> 16) as usize % 3]),
                tags: match (r >> 20) % 4 {
                    0 => Some("prod".into()),
                    1 => Some("dev;test".into()),
                    _ => None,
                },
                ip: Some(if (r >> 24).is_multiple_of(2) {
                    "dhcp".into()
                } else {
                    format!("10.10.{}.{}/16", (vmid / 250) % 250, vmid % 250 + 2)
                }),
                services,
                ..ContainerSpec::default()
            });
            vmid += 1;
        }
        specs.extend(scen.containers.iter().cloned());
        let disk_storage = cluster
            .storages
            .iter()
            .find(|s| s.supports("rootdir"))
            .cloned();
        for spec in specs {
            let node = spec.node.clone().unwrap_or_else(|| node_names[0].clone());
            if !node_names.contains(&node) {
                return Err(SimError::Scenario(format!(
                    "CT {}: unknown node '{node}'",
                    spec.vmid
                )));
            }
            if !(100..=999_999_999).contains(&spec.vmid) || cluster.cts.contains_key(&spec.vmid) {
                return Err(SimError::Scenario(format!(
                    "bad or duplicate vmid {}",
                    spec.vmid
                )));
            }
            let mut conf = BTreeMap::new();
            conf.insert("arch".to_string(), "amd64".to_string());
            conf.insert("ostype".into(), "debian".into());
            conf.insert(
                "hostname".into(),
                spec.hostname
                    .clone()
                    .unwrap_or_else(|| format!("CT{}", spec.vmid)),
            );
            conf.insert("cores".into(), spec.cores.unwrap_or(1).to_string());
            conf.insert("memory".into(), spec.memory.unwrap_or(512).to_string());
            conf.insert("swap".into(), "512".into());
            conf.insert("unprivileged".into(), "1".into());
            conf.insert("features".into(), "nesting=1".into());
            if let Some(ds) = &disk_storage {
                conf.insert(
                    "rootfs".into(),
                    format!(
                        "{},size={}G",
                        ds.disk_volid(spec.vmid, 0),
                        spec.disk_gib.unwrap_or(8)
                    ),
                );
            }
            let mac = cluster.next_mac();
            let ip = spec.ip.clone().unwrap_or_else(|| "dhcp".into());
            let gw = if ip == "dhcp" {
                String::new()
            } else {
                ",gw=10.10.0.1".into()
            };
            conf.insert(
                "net0".into(),
                format!(
                    "name=eth0,bridge={}{gw},hwaddr={mac},ip={ip},type=veth",
                    cluster
                        .bridges
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "vmbr0".into())
                ),
            );
            if let Some(t) = &spec.tags {
                conf.insert("tags".into(), t.clone());
            }
            if let Some(d) = &spec.description {
                conf.insert("description".into(), d.clone());
            }
            let running = spec.status.as_deref() == Some("running");
            let created = now - 30 * 86400;
            let r = mix(cfg.seed ^ u64::from(spec.vmid) ^ 0xabc);
            let started = now - 3600 - r % (10 * 86400);
            let history = if running {
                vec![(started, None)]
            } else {
                vec![(created, Some(now - 2 * 86400 - r % 86400))]
            };
            cluster.cts.insert(
                spec.vmid,
                Ct {
                    vmid: spec.vmid,
                    node: node.clone(),
                    conf,
                    pending: BTreeMap::new(),
                    pending_delete: BTreeSet::new(),
                    running,
                    started_at: if running { Some(started) } else { None },
                    created_at: created,
                    history,
                    snapshots: BTreeMap::new(),
                    parent: None,
                    hang_on_shutdown: spec.hang_on_shutdown,
                },
            );
            backend
                .create(
                    spec.vmid,
                    &crate::backend::CreateSpec {
                        hostname: spec
                            .hostname
                            .clone()
                            .unwrap_or_else(|| format!("CT{}", spec.vmid)),
                        ostemplate: format!("{tmpl_storage}:vztmpl/{DEFAULT_TEMPLATE}"),
                        password: None,
                        ssh_public_keys: None,
                        conf: cluster
                            .cts
                            .get(&spec.vmid)
                            .map(|c| c.conf.clone())
                            .unwrap_or_default(),
                    },
                )
                .map_err(SimError::Scenario)?;
            backend.set_services(spec.vmid, &spec.services);
            for (path, content) in &spec.files {
                backend.write_file(spec.vmid, path, content.as_bytes());
            }
            // A real backend boots the CTs the scenario says are running.
            if running && backend.name() != "memory" {
                backend.start(spec.vmid).map_err(SimError::Backend)?;
            }
        }
        Ok(SimState::from_parts(
            cluster,
            backend,
            rng_key,
            creds,
            cfg.state_dir.clone(),
        ))
    }
}

/// Cloud images every `import` storage holds (file name, size in bytes).
const DEFAULT_IMPORT_IMAGES: &[(&str, u64)] = &[
    ("debian-12-genericcloud-amd64.qcow2", 339_935_232),
    ("debian-13-genericcloud-amd64.qcow2", 364_120_064),
];

/// The format of an `import` volume from its extension (Proxmox lists `.ova`, `.ovf`, `.qcow2`,
/// `.raw` and `.vmdk` files as `import` content).
pub fn import_format(file: &str) -> String {
    match file.rsplit('.').next().unwrap_or("") {
        ext @ ("qcow2" | "vmdk" | "ova" | "ovf") => ext.to_string(),
        _ => "raw".to_string(),
    }
}

fn svc(name: &str, port: Option<u16>) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        port,
        active: true,
        enabled: true,
    }
}

/// Random 16-character alphanumeric password.
pub fn random_password() -> String {
    use rand::Rng as _;
    let mut r = rand::rng();
    (0..16)
        .map(|_| {
            let chars = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            chars[r.random_range(0..chars.len())] as char
        })
        .collect()
}

/// Storage `format` of a template file name.
pub fn template_format(file: &str) -> String {
    if file.ends_with(".tar.zst") {
        "tzst"
    } else if file.ends_with(".tar.gz") || file.ends_with(".tgz") {
        "tgz"
    } else if file.ends_with(".tar.xz") {
        "txz"
    } else if file.ends_with(".tar.bz2") {
        "tbz2"
    } else {
        "tar"
    }
    .to_string()
}

fn default_appliances() -> Vec<Appliance> {
    let a = |template: &str,
             package: &str,
             version: &str,
             os: &str,
             section: &str,
             headline: &str,
             size: u64| Appliance {
        template: template.into(),
        package: package.into(),
        version: version.into(),
        os: os.into(),
        section: section.into(),
        headline: headline.into(),
        size,
    };
    vec![
        a(
            "alpine-3.22-default_20250617_amd64.tar.xz",
            "alpine-3.22-default",
            "20250617",
            "alpine",
            "system",
            "Alpine Linux 3.22 (standard)",
            3_141_592,
        ),
        a(
            "debian-12-standard_12.7-1_amd64.tar.zst",
            "debian-12-standard",
            "12.7-1",
            "debian-12",
            "system",
            "Debian 12 Bookworm (standard)",
            126_674_371,
        ),
        a(
            "debian-13-standard_13.1-2_amd64.tar.zst",
            "debian-13-standard",
            "13.1-2",
            "debian-13",
            "system",
            "Debian 13 Trixie (standard)",
            131_072_000,
        ),
        a(
            "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
            "ubuntu-24.04-standard",
            "24.04-2",
            "ubuntu-24.04",
            "system",
            "Ubuntu 24.04 Noble (standard)",
            141_557_442,
        ),
        a(
            "rockylinux-9-default_20240912_amd64.tar.xz",
            "rockylinux-9-default",
            "20240912",
            "rockylinux-9",
            "system",
            "Rocky Linux 9 (default)",
            104_857_600,
        ),
        a(
            "debian-12-turnkey-wordpress_18.1-1_amd64.tar.gz",
            "turnkey-wordpress",
            "18.1-1",
            "debian-12",
            "turnkeylinux",
            "TurnKey WordPress",
            314_572_800,
        ),
    ]
}
