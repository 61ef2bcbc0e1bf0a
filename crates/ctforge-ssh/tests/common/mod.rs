//! Shared helpers: a simulator with SSH, targets, a connection-counting TCP proxy.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ctforge_pve_sim::{SimConfig, SimHandle, start};
use ctforge_ssh::{HostKeyPolicy, PctChannel, PctOptions, PushMode, SshAuth, SshTarget};

pub async fn sim() -> SimHandle {
    start(SimConfig::for_tests().with_ssh().with_containers(4))
        .await
        .expect("sim start")
}

pub fn target_at(h: &SimHandle, addr: SocketAddr) -> SshTarget {
    SshTarget::new(
        addr.ip().to_string(),
        addr.port(),
        "root",
        SshAuth::Password(h.root_password.clone().into()),
        HostKeyPolicy::Pinned(h.ssh_host_key_fingerprint.clone().expect("fp")),
    )
}

pub fn target(h: &SimHandle) -> SshTarget {
    target_at(h, h.ssh_addr.expect("ssh addr"))
}

pub fn opts(mode: PushMode) -> PctOptions {
    PctOptions {
        push_mode: mode,
        ..PctOptions::default()
    }
}

pub async fn channel(h: &SimHandle, vmid: u32, mode: PushMode) -> PctChannel {
    PctChannel::connect(&target(h), vmid)
        .await
        .expect("connect")
        .with_options(opts(mode))
}

/// A TCP proxy to `upstream` that counts accepted connections.
pub async fn counting_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            n2.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut u) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                }
            });
        }
    });
    (addr, n)
}

/// A TCP proxy to `upstream` counting accepted connections, whose open connections the test
/// cuts with `Notify::notify_waiters` (what a node that reboots or a dropped route looks like).
#[allow(dead_code)]
pub async fn cuttable_proxy(
    upstream: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<tokio::sync::Notify>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let n = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(tokio::sync::Notify::new());
    let (n2, cut2) = (n.clone(), cut.clone());
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            n2.fetch_add(1, Ordering::SeqCst);
            let cut = cut2.clone();
            tokio::spawn(async move {
                if let Ok(mut u) = tokio::net::TcpStream::connect(upstream).await {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                        () = cut.notified() => {}
                    }
                }
            });
        }
    });
    (addr, n, cut)
}

/// Run a script, collect (stream, line) pairs.
pub async fn run(
    ch: &dyn ctforge_ssh::RemoteExec,
    script: &str,
) -> (u32, Vec<(ctforge_ssh::Stream, String)>) {
    let mut lines = Vec::new();
    let out = ch
        .exec(script, &mut |s, l| lines.push((s, l.to_string())))
        .await
        .expect("exec");
    (out.exit_code, lines)
}
