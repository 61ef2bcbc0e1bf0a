//! Client overhead per call (serialize + parse), excluding the network:
//! building + form-encoding a full `POST /nodes/{node}/lxc`, decoding a
//! realistic `/cluster/resources` answer of 1000 entries, and parsing +
//! printing property strings.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ctforge_pve::client::parse_list;
use ctforge_pve::request;
use ctforge_pve::types::*;

fn create_params() -> LxcCreateParams {
    let mut net0 = NetConfig::new("eth0", "vmbr0", IpConfig::Static("192.0.2.10/24".into()));
    net0.gw = Some("192.0.2.1".into());
    net0.firewall = Some(true);
    LxcCreateParams::new(101, "local:vztmpl/debian-13-standard_13.6-1_amd64.tar.zst")
        .hostname("web-01")
        .password("correct horse battery")
        .ssh_public_keys("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx root@ctforge")
        .cores(2)
        .memory(2048)
        .swap(512)
        .rootfs(RootFs::allocate("local-lvm", 8))
        .net(0, net0)
        .nameserver("1.1.1.1")
        .searchdomain("example.com")
        .unprivileged(true)
        .features(Features {
            nesting: Some(true),
            keyctl: Some(true),
            ..Default::default()
        })
        .tag("web")
        .tag("ctforge")
        .start(false)
        .onboot(true)
        .pool("homelab")
        .description("created by ctforge")
        .storage("local-lvm")
}

fn resources_json(n: usize) -> String {
    let mut items = Vec::with_capacity(n + 16);
    for node in 0..8 {
        items.push(format!(
            r#"{{"id":"node/pve{node}","type":"node","node":"pve{node}","status":"online","cpu":0.0421,"maxcpu":32,"mem":33554432000,"maxmem":135089102848,"disk":12884901888,"maxdisk":100861726720,"uptime":1234567,"level":"","cgroup-mode":2}}"#
        ));
        items.push(format!(
            r#"{{"id":"storage/pve{node}/local-lvm","type":"storage","storage":"local-lvm","node":"pve{node}","status":"available","disk":107374182400,"maxdisk":858993459200,"content":"rootdir,images","plugintype":"lvmthin","shared":0}}"#
        ));
    }
    for i in 0..n {
        let vmid = 100 + i;
        let node = i % 8;
        let running = i % 3 != 0;
        items.push(format!(
            r#"{{"id":"lxc/{vmid}","type":"lxc","vmid":{vmid},"node":"pve{node}","name":"ct-{vmid}","status":"{}","maxcpu":2,"cpu":{},"maxmem":2147483648,"mem":{},"maxdisk":8589934592,"disk":1879048192,"netin":123456789,"netout":98765432,"diskread":55555555,"diskwrite":44444444,"uptime":{},"template":0,"tags":"ctforge;web","pool":"homelab"}}"#,
            if running { "running" } else { "stopped" },
            if running { 0.0123 } else { 0.0 },
            if running { 268435456 } else { 0 },
            if running { 86400 } else { 0 },
        ));
    }
    format!(r#"{{"data":[{}]}}"#, items.join(","))
}

fn bench(c: &mut Criterion) {
    let params = create_params();
    c.bench_function("lxc_create: build + form-encode", |b| {
        b.iter(|| {
            let spec = request::lxc_create(black_box("pve"), black_box(&params));
            let body = url::form_urlencoded::Serializer::new(String::with_capacity(512))
                .extend_pairs(spec.params.iter())
                .finish();
            black_box(body)
        })
    });

    let json = resources_json(1000);
    c.bench_function(
        "cluster_resources: parse 1000 CTs (+16 nodes/storage)",
        |b| {
            b.iter(|| {
                let v: Vec<ClusterResource> =
                    parse_list(black_box(json.as_bytes())).expect("parse");
                black_box(v)
            })
        },
    );

    let net = "name=eth0,bridge=vmbr0,firewall=1,gw=10.1.10.1,hwaddr=BC:24:11:A7:86:4A,ip=10.1.10.39/23,type=veth";
    let rootfs = "local-lvm:vm-101-disk-0,size=8G";
    let features = "nesting=1,keyctl=1";
    c.bench_function(
        "property strings: parse + print net0/rootfs/features",
        |b| {
            b.iter(|| {
                let n: NetConfig = black_box(net).parse().expect("net");
                let r: RootFs = black_box(rootfs).parse().expect("rootfs");
                let f: Features = black_box(features).parse().expect("features");
                black_box((n.to_string(), r.to_string(), f.to_string()))
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
