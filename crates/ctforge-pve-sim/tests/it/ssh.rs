//! SSH endpoint: `pct exec`, `pct push` (stdin), `pct status`, errors as pct prints them.

use std::sync::Arc;

use ctforge_pve_sim::{SimConfig, start};
use russh::ChannelMsg;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn run(s: &client::Handle<Client>, cmd: &str, stdin: Option<&[u8]>) -> (String, String, u32) {
    let mut ch = s.channel_open_session().await.expect("channel");
    ch.exec(true, cmd).await.expect("exec");
    if let Some(data) = stdin {
        ch.data(data).await.expect("data");
    }
    ch.eof().await.expect("eof");
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), 999);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => code = exit_status,
            _ => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into(),
        String::from_utf8_lossy(&err).into(),
        code,
    )
}

fn key() -> PrivateKey {
    PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &[7u8; 32],
    ))
}

#[tokio::test]
async fn pct_over_ssh() {
    let pubkey = key().public_key().to_openssh().expect("openssh");
    let mut cfg = SimConfig::for_tests().with_ssh().with_containers(4);
    cfg.ssh_authorized_keys = vec![pubkey];
    let h = start(cfg).await.expect("start");
    let addr = h.ssh_addr.expect("ssh addr");
    let config = Arc::new(client::Config::default());

    // Wrong password is refused.
    let mut bad = client::connect(config.clone(), addr, Client)
        .await
        .expect("connect");
    assert!(
        !bad.authenticate_password("root", "nope")
            .await
            .expect("auth")
            .success()
    );

    let mut s = client::connect(config.clone(), addr, Client)
        .await
        .expect("connect");
    assert!(
        s.authenticate_password("root", "rootpw")
            .await
            .expect("auth")
            .success()
    );

    assert_eq!(
        run(&s, "pct status 100", None).await,
        ("status: running\n".into(), String::new(), 0)
    );
    assert_eq!(run(&s, "pct status 103", None).await.0, "status: stopped\n");
    let (_, e, c) = run(&s, "pct status 999", None).await;
    assert_eq!(
        (e.as_str(), c),
        (
            "Configuration file 'nodes/pve1/lxc/999.conf' does not exist\n",
            255
        )
    );
    let (_, e, c) = run(&s, "pct exec 103 -- true", None).await;
    assert_eq!((e.as_str(), c), ("container '103' not running!\n", 255));
    let (_, e, c) = run(&s, "pct push 103 - /etc/x", Some(b"x")).await;
    assert_eq!(
        (e.as_str(), c),
        ("can only push files to a running CT\n", 255)
    );

    // Install a package and see it listening.
    let (o, _, c) = run(&s, "pct exec 100 -- bash -c 'apt-get update && apt-get install -y nginx >/dev/null && ss -tlnp'", None).await;
    assert_eq!(c, 0);
    assert!(o.contains("0.0.0.0:80") && o.contains("nginx"), "{o}");
    let (o, _, c) = run(&s, "pct exec 100 -- systemctl is-active nginx", None).await;
    assert_eq!((o.as_str(), c), ("active\n", 0));

    // Push via stdin, read back.
    let (_, e, c) = run(
        &s,
        "pct push 100 - /etc/app.conf --perms 0600 --user root --group root",
        Some(b"key=value\n"),
    )
    .await;
    assert_eq!((e.as_str(), c), ("", 0));
    assert_eq!(
        run(&s, "pct exec 100 -- cat /etc/app.conf", None).await.0,
        "key=value\n"
    );
    assert_eq!(
        run(&s, "pct pull 100 /etc/app.conf -", None).await.0,
        "key=value\n"
    );
    let g = h
        .state()
        .memory_backend()
        .and_then(|m| m.guest(100))
        .expect("guest");
    assert_eq!(g.data.files["/etc/app.conf"].mode, 0o600);
    // Stdin into an exec'd command.
    let (_, _, c) = run(
        &s,
        "pct exec 100 -- bash -c 'mkdir -p /opt/x && cat > /opt/x/run.sh'",
        Some(b"echo from-script\n"),
    )
    .await;
    assert_eq!(c, 0);
    assert_eq!(
        run(&s, "pct exec 100 -- bash /opt/x/run.sh", None).await.0,
        "from-script\n"
    );
    // Failing command: exit status and stderr propagate.
    let (_, e, c) = run(&s, "pct exec 100 -- cat /nope", None).await;
    assert_eq!(
        (e.as_str(), c),
        ("cat: /nope: No such file or directory\n", 1)
    );
    let (_, e, c) = run(&s, "whoami-not-here", None).await;
    assert_eq!(c, 127);
    assert!(e.contains("command not found"));
    assert!(
        h.state()
            .memory_backend()
            .expect("mem")
            .commands(100)
            .iter()
            .any(|c| c.contains("apt-get install -y nginx"))
    );

    // Public key auth.
    let mut k = client::connect(config, addr, Client)
        .await
        .expect("connect");
    let ok = k
        .authenticate_publickey("root", PrivateKeyWithHashAlg::new(Arc::new(key()), None))
        .await
        .expect("auth");
    assert!(ok.success());
    assert_eq!(run(&k, "pct status 100", None).await.0, "status: running\n");
    h.shutdown().await;
}
