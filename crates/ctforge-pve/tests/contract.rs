//! Contract tests: every request the client can build conforms to the
//! official PVE 9.1 API schema, and the checker rejects wrong requests.

use ctforge_pve::contract::Contract;
use ctforge_pve::request::{self, Method, RequestSpec};
use ctforge_pve::types::*;

/// The official schema: `CTFORGE_PVE_SCHEMA`, else `../shared/pve-api/` beside the checkout,
/// else the machine's shared folder (`/work/shared`). The build never needs it; these tests do.
fn schema_path() -> String {
    let candidates = [
        std::env::var("CTFORGE_PVE_SCHEMA").unwrap_or_default(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/pve-api/pve-api-schema.json"
        )
        .to_owned(),
        "/work/shared/pve-api/pve-api-schema.json".to_owned(),
    ];
    candidates
        .into_iter()
        .find(|p| !p.is_empty() && std::path::Path::new(p).is_file())
        .unwrap_or_else(|| panic!("the official PVE API schema is missing: set CTFORGE_PVE_SCHEMA to pve-api-schema.json"))
}

fn contract() -> Contract {
    Contract::load(schema_path()).expect("schema loads")
}

fn upid() -> Upid {
    "UPID:pve-01:000D7AA2:08D5A17C:63DF62A5:vzcreate:101:root@pam!ctforge:"
        .parse()
        .expect("valid upid")
}

fn full_create() -> LxcCreateParams {
    let mut net0 = NetConfig::new("eth0", "vmbr0", IpConfig::Static("192.0.2.10/24".into()));
    net0.gw = Some("192.0.2.1".into());
    net0.firewall = Some(true);
    net0.hwaddr = Some("BC:24:11:A7:86:4A".into());
    net0.tag = Some(42);
    net0.mtu = Some(1500);
    net0.rate = Some(12.5);
    net0.ip6 = Some(Ip6Config::Static("2001:db8::10/64".into()));
    net0.gw6 = Some("2001:db8::1".into());
    net0.kind = Some("veth".into());
    let mut net1 = NetConfig::new("eth1", "vmbr1", IpConfig::Dhcp);
    net1.ip6 = Some(Ip6Config::Auto);
    let mut rootfs = RootFs::allocate("local-lvm", 8);
    rootfs.options.acl = Some(true);
    rootfs.options.mountoptions = Some("noatime;nodev".into());
    rootfs.options.quota = Some(false);
    rootfs.options.replicate = Some(true);
    let mp = MountPoint {
        volume: "local-lvm:16".into(),
        mp: "/var/lib/app".into(),
        backup: Some(true),
        ..Default::default()
    };
    LxcCreateParams::new(101, "local:vztmpl/debian-13-standard_13.6-1_amd64.tar.zst")
        .hostname("web-01.example.com")
        .password("correct horse battery")
        .ssh_public_keys("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx root@ctforge")
        .ostype("debian")
        .cores(2)
        .memory(2048)
        .swap(512)
        .rootfs(rootfs)
        .net(0, net0)
        .net(31, net1)
        .mount(0, mp)
        .nameserver("1.1.1.1 2606:4700:4700::1111")
        .searchdomain("example.com")
        .unprivileged(true)
        .features(Features {
            nesting: Some(true),
            keyctl: Some(true),
            fuse: Some(true),
            mknod: Some(false),
            mount: Some("nfs;cifs".into()),
            force_rw_sys: Some(false),
            ..Default::default()
        })
        .tag("web")
        .tag("ctforge")
        .start(true)
        .onboot(true)
        .pool("homelab")
        .description("created by ctforge\nsecond line")
        .storage("local-lvm")
}

/// What the day-two edit sends: every field of the Edit form at once.
fn day_two_update() -> LxcConfigUpdate {
    LxcConfigUpdate::new()
        .cores(2)
        .memory(1536)
        .swap(0)
        .onboot(true)
        .set("startup", "order=3,up=30,down=60")
        .tags(&["web", "prod"])
        .description("front end")
        .nameserver("192.0.2.53 9.9.9.9")
        .searchdomain("lab.example")
        .net(
            0,
            &"name=eth0,bridge=vmbr0,ip=192.0.2.10/24,gw=192.0.2.1,tag=20,firewall=1,rate=12.5,mtu=1400"
                .parse()
                .expect("net0"),
        )
        .net(1, &"name=eth1,bridge=vmbr1,ip=dhcp".parse().expect("net1"))
        .mount(0, &"local-lvm:8,mp=/srv/data,backup=1".parse().expect("mp0"))
        .mount(1, &"/mnt/media,mp=/media,ro=1".parse().expect("mp1"))
}

/// Every request the client can build, with all options exercised.
fn all_requests() -> Vec<RequestSpec> {
    let u = upid();
    let update = LxcConfigUpdate::new()
        .cores(4)
        .memory(4096)
        .swap(1024)
        .hostname("web-02")
        .description("hi")
        .tags(&["a", "b"])
        .onboot(false)
        .features(&Features {
            nesting: Some(true),
            ..Default::default()
        })
        .net(0, &"name=eth0,bridge=vmbr0,ip=dhcp".parse().expect("net"))
        .mount(
            3,
            &"local-lvm:vm-101-disk-1,mp=/data,backup=1,size=32G"
                .parse()
                .expect("mp"),
        )
        .nameserver("9.9.9.9")
        .searchdomain("lan")
        .delete("mp1")
        .delete("net2")
        .digest("0123456789abcdef0123456789abcdef01234567");
    let mut v = vec![
        request::version(),
        request::access_domains(),
        request::login("alice", "pve", "secret-password"),
        request::login("root@pam", "", "secret-password"),
        request::login_tfa(
            "alice@pve",
            "PVE:!tfa!%7B%22totp%22%3Atrue%7D:65A1B2C3::sig",
            "totp:123456",
        ),
        request::renew_ticket("alice@pve", "PVE:alice@pve:65A1B2C3::c2ln"),
        request::nodes(),
        request::node_status("pve-01"),
        request::cluster_resources(None),
        request::cluster_nextid(None),
        request::cluster_status(),
        request::lxc_migrate(
            "pve-01",
            101,
            &ctforge_pve::types::MigrateParams {
                target: "pve-03".into(),
                restart: true,
                timeout: Some(120),
            },
        ),
        request::lxc_migrate(
            "pve-01",
            101,
            &ctforge_pve::types::MigrateParams {
                target: "pve-02".into(),
                ..Default::default()
            },
        ),
        request::cluster_nextid(Some(150)),
        request::lxc_list("pve-01"),
        request::lxc_create("pve-01", &full_create()),
        request::lxc_create(
            "pve",
            &LxcCreateParams::new(
                100,
                "local:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz",
            ),
        ),
        request::lxc_config_get("pve-01", 101, false),
        request::lxc_config_get("pve-01", 101, true),
        request::lxc_config_put("pve-01", 101, &update),
        request::lxc_config_put("pve-01", 101, &day_two_update()),
        request::lxc_pending("pve-01", 101),
        request::lxc_resize("pve-01", 101, "rootfs", "+2G", None),
        request::lxc_resize(
            "pve-01",
            101,
            "mp3",
            "40G",
            Some("0123456789abcdef0123456789abcdef01234567"),
        ),
        request::lxc_clone(
            "pve-01",
            101,
            &CloneParams {
                newid: 150,
                ..Default::default()
            },
        ),
        request::lxc_clone(
            "pve-01",
            101,
            &CloneParams {
                newid: 151,
                hostname: Some("web-clone".into()),
                description: Some("clone of web".into()),
                full: Some(true),
                pool: Some("lab".into()),
                snapname: Some("before-upgrade".into()),
                storage: Some("local-lvm".into()),
                target: Some("pve-02".into()),
            },
        ),
        request::lxc_clone(
            "pve-01",
            9000,
            &CloneParams {
                newid: 152,
                full: Some(false),
                ..Default::default()
            },
        ),
        request::lxc_template("pve-01", 101),
        // qemu: listing and lifecycle of VMs
        request::qemu_list("pve-01"),
        request::qemu_status_current("pve-01", 201),
        request::qemu_start("pve-01", 201),
        request::qemu_stop("pve-01", 201),
        request::qemu_shutdown("pve-01", 201, None, false),
        request::qemu_shutdown("pve-01", 201, Some(60), true),
        request::qemu_reboot("pve-01", 201, None),
        request::qemu_reboot("pve-01", 201, Some(30)),
        request::qemu_delete("pve-01", 201, false, false),
        request::qemu_delete("pve-01", 201, true, true),
        request::lxc_status_current("pve-01", 101),
        request::lxc_start("pve-01", 101),
        request::lxc_stop("pve-01", 101),
        request::lxc_shutdown("pve-01", 101, None, false),
        request::lxc_shutdown("pve-01", 101, Some(60), true),
        request::lxc_reboot("pve-01", 101, None),
        request::lxc_reboot("pve-01", 101, Some(30)),
        request::lxc_delete("pve-01", 101, DeleteOptions::default()),
        request::lxc_delete(
            "pve-01",
            101,
            DeleteOptions {
                purge: true,
                force: true,
                destroy_unreferenced_disks: true,
            },
        ),
        request::lxc_interfaces("pve-01", 101),
        request::snapshot_list("pve-01", 101),
        request::snapshot_create("pve-01", 101, "before-upgrade", Some("pre apt upgrade")),
        request::snapshot_create("pve-01", 101, "snap2", None),
        request::snapshot_rollback("pve-01", 101, "before-upgrade", true),
        request::snapshot_rollback("pve-01", 101, "before-upgrade", false),
        request::snapshot_delete("pve-01", 101, "before-upgrade", true),
        request::task_status("pve-01", &u),
        request::task_log("pve-01", &u, 0, 50),
        request::task_log("pve-01", &u, 120, 0),
        request::node_storage("pve-01", None),
        request::node_storage("pve-01", Some("vztmpl")),
        request::node_storage("pve-01", Some("rootdir")),
        request::storage_content("pve-01", "local", Some("vztmpl")),
        request::storage_content("pve-01", "local-lvm", None),
        request::aplinfo("pve-01"),
        request::aplinfo_download("pve-01", "local", "debian-13-standard_13.6-1_amd64.tar.zst"),
        request::node_network("pve-01", None),
        request::node_network("pve-01", Some("any_bridge")),
        request::pools(),
    ];
    v.extend(qemu_requests());
    for kind in [
        ResourceKind::Vm,
        ResourceKind::Storage,
        ResourceKind::Node,
        ResourceKind::Sdn,
    ] {
        v.push(request::cluster_resources(Some(kind)));
    }
    for tf in [
        Timeframe::Hour,
        Timeframe::Day,
        Timeframe::Week,
        Timeframe::Month,
        Timeframe::Year,
    ] {
        for cf in [
            None,
            Some(ConsolidationFn::Average),
            Some(ConsolidationFn::Max),
        ] {
            v.push(request::lxc_rrddata("pve-01", 101, tf, cf));
            v.push(request::node_rrddata("pve-01", tf, cf));
            v.push(request::qemu_rrddata("pve-01", 201, tf, cf));
        }
    }
    v
}

/// A VM as ctforge plans it: the disk imported from a cloud image, a cloud-init drive with
/// user, password, keys and network, the guest agent, the serial console.
fn vm_create() -> QemuCreate {
    let mut q = QemuCreate::new(120);
    q.name = Some("vm-web".into());
    q.memory = Some(2048);
    q.cores = Some(2);
    q.sockets = Some(1);
    q.cpu = Some("host".into());
    q.machine = Some("q35".into());
    q.bios = Some("ovmf".into());
    q.ostype = Some("l26".into());
    q.scsihw = Some("virtio-scsi-single".into());
    q.scsi0 = Some(VmDisk::Import {
        storage: "local-lvm".into(),
        volid: "local:import/debian-12-genericcloud-amd64.qcow2".into(),
    });
    q.cloudinit = Some(("ide2".into(), "local-lvm".into()));
    q.boot = Some("order=scsi0".into());
    q.net0 = Some("virtio,bridge=vmbr0".into());
    q.serial0 = Some("socket".into());
    q.vga = Some("serial0".into());
    q.agent = true;
    q.ciuser = Some("ctforge".into());
    q.cipassword = Some(ctforge_pve::Secret::new("correct horse"));
    q.sshkeys = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx root@ctforge\n".into());
    q.ipconfig0 = Some("ip=192.0.2.20/24,gw=192.0.2.1".into());
    q.nameserver = Some("192.0.2.1".into());
    q.ciupgrade = Some(false);
    q.searchdomain = Some("lab".into());
    q.cicustom = Some("user=local:snippets/ctforge-120-user.yaml".into());
    q.tags = vec!["web".into(), "vm".into()];
    q.description = Some("made by ctforge".into());
    q.onboot = Some(true);
    q
}

/// Every qemu request ctforge can send.
fn qemu_requests() -> Vec<RequestSpec> {
    let mut dhcp = QemuCreate::new(121);
    dhcp.scsi0 = Some(VmDisk::Empty {
        storage: "local-lvm".into(),
        size_gib: 8,
    });
    dhcp.ipconfig0 = Some("ip=dhcp".into());
    dhcp.agent = true;
    // No guest agent (`TEMPLATE_AGENT=0`): `agent: enabled=0`, and two SSH keys (the user's and
    // ctforge's own for the VM), percent-encoded with their line break.
    let mut no_agent = vm_create();
    no_agent.agent = false;
    no_agent.sshkeys = Some(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx alice@laptop\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx ctforge@vm-120".into(),
    );
    let mut v = vec![
        request::qemu_create("pve-01", &vm_create()),
        request::qemu_create("pve-01", &dhcp),
        request::qemu_create("pve-01", &no_agent),
        request::qemu_list("pve-01"),
        request::qemu_config_get("pve-01", 120, false),
        request::qemu_config_get("pve-01", 120, true),
        request::qemu_config_put(
            "pve-01",
            120,
            &[
                ("cores".into(), "4".into()),
                ("memory".into(), "4096".into()),
            ],
            &["cicustom".into()],
        ),
        request::qemu_status_current("pve-01", 120),
        request::qemu_start("pve-01", 120),
        request::qemu_stop("pve-01", 120),
        request::qemu_shutdown("pve-01", 120, None, false),
        request::qemu_shutdown("pve-01", 120, Some(60), true),
        request::qemu_reboot("pve-01", 120, Some(30)),
        request::qemu_delete("pve-01", 120, false, false),
        request::qemu_delete("pve-01", 120, true, true),
        request::qemu_resize("pve-01", 120, "scsi0", "8G"),
        request::qemu_resize("pve-01", 120, "scsi0", "+2G"),
        request::qemu_clone(
            "pve-01",
            9000,
            &CloneParams {
                newid: 122,
                hostname: Some("vm-clone".into()),
                full: Some(false),
                ..Default::default()
            },
        ),
        request::qemu_template("pve-01", 120),
        request::qemu_pending("pve-01", 120),
        request::qemu_snapshot_list("pve-01", 120),
        request::qemu_snapshot_create("pve-01", 120, "before", Some("pre upgrade")),
        request::qemu_snapshot_create("pve-01", 120, "snap2", None),
        request::qemu_snapshot_rollback("pve-01", 120, "before", true),
        request::qemu_snapshot_rollback("pve-01", 120, "before", false),
        request::qemu_snapshot_delete("pve-01", 120, "before", false),
        request::qemu_config_put(
            "pve-01",
            120,
            &[
                ("onboot".into(), "1".into()),
                ("tags".into(), "web;prod".into()),
                ("nameserver".into(), "192.0.2.53".into()),
                (
                    "digest".into(),
                    "0123456789abcdef0123456789abcdef01234567".into(),
                ),
            ],
            &["description".into()],
        ),
        request::qemu_clone(
            "pve-01",
            120,
            &CloneParams {
                newid: 123,
                hostname: Some("vm-copy".into()),
                full: Some(true),
                storage: Some("local-lvm".into()),
                snapname: Some("before".into()),
                ..Default::default()
            },
        ),
        request::agent_ping("pve-01", 120),
        request::agent_exec(
            "pve-01",
            120,
            &["/bin/sh".into(), "-c".into(), "cat /etc/hostname".into()],
            None,
        ),
        request::agent_exec("pve-01", 120, &["/bin/cat".into()], Some("hello")),
        request::agent_exec_status("pve-01", 120, 4242),
        request::agent_file_write("pve-01", 120, "/run/ctforge-push-1/000000", "aGVsbG8="),
        request::agent_network_get_interfaces("pve-01", 120),
        request::storage_content("pve-01", "local", Some("import")),
        request::node_storage("pve-01", Some("images")),
    ];
    for cf in [None, Some(ConsolidationFn::Average)] {
        v.push(request::qemu_rrddata("pve-01", 120, Timeframe::Hour, cf));
    }
    v
}

#[test]
fn every_qemu_request_conforms() {
    let c = contract();
    let failures: Vec<String> = qemu_requests()
        .iter()
        .filter_map(|spec| {
            c.check(spec)
                .err()
                .map(|v| format!("{} {}: {:?}", spec.method, spec.path, v))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "non-conforming qemu requests:\n{}",
        failures.join("\n")
    );
    // The image import and the cloud-init drive are what the plan sends.
    let create = request::qemu_create("pve-01", &vm_create());
    assert_eq!(
        create.get("scsi0"),
        Some("local-lvm:0,import-from=local:import/debian-12-genericcloud-amd64.qcow2")
    );
    assert_eq!(create.get("ide2"), Some("local-lvm:cloudinit"));
    assert!(!format!("{create:?}").contains("correct horse"));
}

#[test]
fn schema_loads() {
    let c = contract();
    assert_eq!(c.path_count(), 435, "SOURCE.md documents 435 path nodes");
}

#[test]
fn every_request_the_client_builds_conforms() {
    let c = contract();
    let mut failures = Vec::new();
    for spec in all_requests() {
        if let Err(v) = c.check(&spec) {
            failures.push(format!("{} {}: {:?}", spec.method, spec.path, v));
        }
    }
    assert!(
        failures.is_empty(),
        "non-conforming requests:\n{}",
        failures.join("\n")
    );
}

#[test]
fn requests_map_to_the_expected_schema_paths() {
    let c = contract();
    let u = upid();
    for (spec, template) in [
        (
            request::lxc_delete("pve", 100, DeleteOptions::default()),
            "/nodes/{node}/lxc/{vmid}",
        ),
        (
            request::task_log("pve", &u, 0, 1),
            "/nodes/{node}/tasks/{upid}/log",
        ),
        (
            request::snapshot_rollback("pve", 100, "s1", false),
            "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
        ),
        (
            request::storage_content("pve", "local", None),
            "/nodes/{node}/storage/{storage}/content",
        ),
    ] {
        assert_eq!(c.template_for(&spec).as_deref(), Some(template));
    }
}

fn spec(method: Method, path: &str, params: &[(&str, &str)]) -> RequestSpec {
    let mut s = request::version();
    s.method = method;
    s.path = path.to_string();
    s.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s
}

fn assert_rejected(c: &Contract, s: &RequestSpec, needle: &str) {
    match c.check(s) {
        Ok(()) => panic!("checker accepted a wrong request: {s:?}"),
        Err(v) => {
            let text: Vec<String> = v.iter().map(ToString::to_string).collect();
            assert!(
                text.iter().any(|t| t.contains(needle)),
                "expected a violation mentioning '{needle}', got {text:?}"
            );
        }
    }
}

#[test]
fn checker_rejects_wrong_requests() {
    let c = contract();
    // unknown parameter
    let mut s = request::lxc_start("pve", 100);
    s.params.push(("bogus".into(), "1".into()));
    assert_rejected(&c, &s, "bogus: property is not defined");
    // bad enum
    assert_rejected(
        &c,
        &spec(Method::Get, "/cluster/resources", &[("type", "containers")]),
        "enumeration",
    );
    assert_rejected(
        &c,
        &spec(
            Method::Get,
            "/nodes/pve/lxc/100/rrddata",
            &[("timeframe", "decade")],
        ),
        "enumeration",
    );
    // boolean as true/false
    assert_rejected(
        &c,
        &spec(
            Method::Post,
            "/nodes/pve/lxc/100/status/shutdown",
            &[("forceStop", "true")],
        ),
        "type check ('boolean')",
    );
    // bad property-string sub-key
    let mut s = request::lxc_create("pve", &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst"));
    s.params
        .push(("net0".into(), "name=eth0,bridge=vmbr0,colour=blue".into()));
    assert_rejected(
        &c,
        &s,
        "invalid key in comma-separated list property: colour",
    );
    // bad sub-value, and missing required sub-key
    let mut s = request::lxc_create("pve", &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst"));
    s.params
        .push(("net0".into(), "bridge=vmbr0,tag=5000".into()));
    assert_rejected(&c, &s, "net0.tag: value must have a maximum value of 4094");
    assert_rejected(&c, &s, "property name is missing");
    // positional value where there is no default_key
    let mut s = request::lxc_create("pve", &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst"));
    s.params.push(("features".into(), "nesting".into()));
    assert_rejected(&c, &s, "does not define a default key");
    // index out of PVE's range
    let mut s = request::lxc_create("pve", &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst"));
    s.params.push(("net32".into(), "name=eth32".into()));
    assert_rejected(&c, &s, "net32: property is not defined");
    // wrong path and wrong method
    assert_rejected(
        &c,
        &spec(Method::Get, "/nodes/pve/lxc/100/exec", &[]),
        "does not exist",
    );
    assert_rejected(
        &c,
        &spec(Method::Post, "/version", &[]),
        "method POST is not defined",
    );
    // range and pattern
    assert_rejected(&c, &request::lxc_start("pve", 99), "minimum value of 100");
    assert_rejected(
        &c,
        &request::lxc_start("bad_node!", 100),
        "node: invalid format",
    );
    assert_rejected(
        &c,
        &request::lxc_create(
            "pve",
            &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst").memory(8),
        ),
        "memory: value must have a minimum value of 16",
    );
    assert_rejected(
        &c,
        &request::lxc_create(
            "pve",
            &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst").password("abc"),
        ),
        "at least 5 characters",
    );
    assert_rejected(
        &c,
        &request::lxc_create(
            "pve",
            &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst").tag("bad tag!"),
        ),
        "tags: invalid format",
    );
    // a node name trying to escape its path segment stays one (invalid) segment
    assert_rejected(&c, &request::node_status("a/../b"), "node: invalid format");
    // missing required parameter
    assert_rejected(
        &c,
        &spec(Method::Post, "/nodes/pve/lxc", &[("vmid", "100")]),
        "ostemplate: property is missing",
    );
    // rootfs with an unknown key / bad size
    let mut s = request::lxc_create("pve", &LxcCreateParams::new(100, "local:vztmpl/x.tar.zst"));
    s.params
        .push(("rootfs".into(), "local-lvm:8,size=8X,backup=1".into()));
    assert_rejected(&c, &s, "rootfs.size: invalid format");
    assert_rejected(
        &c,
        &s,
        "invalid key in comma-separated list property: backup",
    );
}

/// Every field ctforge reads from `GET /cluster/status` (`ClusterStatusEntry`) is one the
/// official schema documents for its answer, and a documented answer decodes.
#[test]
fn cluster_status_fields_are_documented() {
    let text = std::fs::read_to_string(schema_path()).expect("schema readable");
    let root: serde_json::Value = serde_json::from_str(&text).expect("schema parses");
    fn find<'a>(n: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
        if n.get("path").and_then(|p| p.as_str()) == Some(path) {
            return Some(n);
        }
        let children = n.get("children").and_then(|c| c.as_array())?;
        children.iter().find_map(|c| find(c, path))
    }
    let node = root
        .as_array()
        .expect("array")
        .iter()
        .find_map(|n| find(n, "/cluster/status"))
        .expect("/cluster/status documented");
    let props = &node["info"]["GET"]["returns"]["items"]["properties"];
    let sample = ctforge_pve::types::ClusterStatusEntry {
        kind: "node".into(),
        id: "node/pve1".into(),
        name: "pve1".into(),
        ip: Some("192.0.2.10".into()),
        online: Some(true),
        local: Some(true),
    };
    let fields = serde_json::to_value(&sample).expect("serialises");
    for key in fields.as_object().expect("object").keys() {
        assert!(
            props.get(key).is_some(),
            "/cluster/status does not document `{key}`"
        );
    }
    let answer = serde_json::json!([
        {"type": "cluster", "id": "cluster", "name": "c", "nodes": 2, "quorate": 1, "version": 3},
        {"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 1, "online": 1, "local": 1, "ip": "192.0.2.10", "level": ""}
    ]);
    let entries: Vec<ctforge_pve::types::ClusterStatusEntry> =
        serde_json::from_value(answer).expect("decodes");
    assert_eq!(entries[1].ip.as_deref(), Some("192.0.2.10"));
    assert!(entries[1].is_node() && !entries[0].is_node());
}
