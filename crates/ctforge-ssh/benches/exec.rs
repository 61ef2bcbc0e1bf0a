//! Figures for the provisioning channel against the simulator: connection
//! setup, 100 sequential `pct exec`s on one connection, 100 pushes, and
//! 100 execs spread over 10 concurrent channels of the same connection.
//!
//! Run with `cargo bench -p ctforge-ssh --bench exec`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctforge_pve_sim::{SimConfig, start};
use ctforge_ssh::{
    HostKeyPolicy, PctChannel, PctOptions, PushMode, RemoteExec, SshAuth, SshSession, SshTarget,
};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let h = start(SimConfig::for_tests().with_ssh().with_containers(1))
        .await
        .unwrap();
    let addr = h.ssh_addr.unwrap();
    let target = SshTarget::new(
        addr.ip().to_string(),
        addr.port(),
        "root",
        SshAuth::Password(h.root_password.clone().into()),
        HostKeyPolicy::Pinned(h.ssh_host_key_fingerprint.clone().unwrap()),
    );

    // Warm up (first handshake pays one-off costs).
    SshSession::connect(&target).await.unwrap().close().await;

    let mut connects = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let s = SshSession::connect(&target).await.unwrap();
        connects.push(t.elapsed());
        s.close().await;
    }
    connects.sort();

    let t0 = Instant::now();
    let session = Arc::new(SshSession::connect(&target).await.unwrap());
    let connect = t0.elapsed();
    let ch = PctChannel::new(session.clone(), 100).with_options(PctOptions {
        push_mode: PushMode::PctStdin,
        ..PctOptions::default()
    });
    let t1 = Instant::now();
    let mut per = Vec::new();
    for i in 0..100 {
        let t = Instant::now();
        let o = ch.exec(&format!("echo {i}"), &mut |_, _| {}).await.unwrap();
        assert_eq!(o.exit_code, 0);
        per.push(t.elapsed());
    }
    let execs = t1.elapsed();
    per.sort();

    let t2 = Instant::now();
    for i in 0..100 {
        ch.push(
            format!("file {i}\n").as_bytes(),
            &format!("/tmp/bench-{i}"),
            Some(0o600),
            None,
        )
        .await
        .unwrap();
    }
    let pushes = t2.elapsed();

    let t3 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..10 {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                ch.exec(&format!("echo {w}-{i}"), &mut |_, _| {})
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let concurrent = t3.elapsed();

    println!("ctforge-ssh exec bench (simulator, loopback, ed25519 host key, password auth)");
    println!(
        "  connect+auth          median {:.2} ms, max {:.2} ms (10 runs)",
        ms(connects[connects.len() / 2]),
        ms(connects[connects.len() - 1])
    );
    println!(
        "  connect + 100 execs   {:.1} ms total (connect {:.2} ms, execs {:.1} ms)",
        ms(connect + execs),
        ms(connect),
        ms(execs)
    );
    println!(
        "  per exec              median {:.3} ms, p95 {:.3} ms, max {:.3} ms",
        ms(per[per.len() / 2]),
        ms(per[per.len() * 95 / 100]),
        ms(per[per.len() - 1])
    );
    println!(
        "  100 pushes (stdin)    {:.1} ms total, {:.3} ms each",
        ms(pushes),
        ms(pushes) / 100.0
    );
    println!(
        "  100 execs, 10 concurrent channels on one connection: {:.1} ms",
        ms(concurrent)
    );
    println!(
        "  commands on the one connection: {}",
        session.commands_run()
    );
    session.close().await;
    h.shutdown().await;
}
