//! SSH endpoints of the nodes (russh server, ring crypto): one per node, each with its own
//! host key, serving `pct` for the guests that node holds — as a real cluster, where
//! `pct exec` on a node that does not hold the guest fails. Every command line is logged per
//! node ([`SimState::ssh_log`]). The `sftp` subsystem is served as by a node's OpenSSH
//! (see [`crate::sftp`]).
//!
//! Login as `root` with the root password or a public key from the config or
//! scenario. Each exec request runs one command line (parsed with shell
//! quoting) on the simulated PVE host:
//!
//! * `pct exec <vmid> [--keep-env 0|1] -- <cmd…>`: runs in the CT through the
//!   backend; stdout/stderr are streamed, the exit status is returned. When the
//!   command reads standard input (e.g. `bash -c 'cat > /etc/x'`, `bash -s`),
//!   the channel's input is collected until EOF first.
//! * `pct push <vmid> <src> <dst> [--perms MODE] [--user U] [--group G]`: the
//!   file content comes over the same channel's stdin when `src` is `-` or
//!   `/dev/stdin` (convention of this simulator: send the bytes, then EOF).
//! * `pct pull <vmid> <src> -`: writes the CT file to stdout.
//! * `pct status <vmid>`, `pct list`, `pct config <vmid>`.
//!
//! Errors are printed like `pct` does, with exit status 255:
//! `container '100' not running!`, `can only push files to a running CT`,
//! `Configuration file 'nodes/pve1/lxc/999.conf' does not exist`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Handle, Msg, Server as _, Session};
use russh::{Channel, ChannelId};
use tokio::sync::watch;

use crate::SimError;
use crate::backend::{ExecChunk, PushOptions};
use crate::state::SimState;

#[derive(Clone)]
struct SshServer {
    state: SimState,
    keys: Arc<Vec<PublicKey>>,
    node: Arc<str>,
}

impl russh::server::Server for SshServer {
    type Handler = SshSession;
    fn new_client(&mut self, _peer: Option<SocketAddr>) -> SshSession {
        SshSession {
            state: self.state.clone(),
            keys: self.keys.clone(),
            node: self.node.clone(),
            pending: HashMap::new(),
            channels: HashMap::new(),
        }
    }
}

struct PendingExec {
    argv: Vec<String>,
    stdin: Vec<u8>,
}

struct SshSession {
    state: SimState,
    keys: Arc<Vec<PublicKey>>,
    node: Arc<str>,
    pending: HashMap<ChannelId, PendingExec>,
    /// Opened channels not yet claimed by a request (the sftp subsystem takes its channel).
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl russh::server::Handler for SshSession {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if user == "root" && password == self.state.credentials().root_password {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if user == "root"
            && self
                .keys
                .iter()
                .any(|k| k.key_data() == offer.public_key.key_data())
        {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if user == "root"
            && self
                .keys
                .iter()
                .any(|k| k.key_data() == key.public_key.key_data())
        {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, self.channels.remove(&channel)) {
            ("sftp", Some(ch)) => {
                self.state.log_ssh_command(&self.node, "subsystem sftp");
                session.channel_success(channel)?;
                crate::sftp::serve(ch, self.state.clone(), &self.node).await;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        self.channels.remove(&channel);
        let line = String::from_utf8_lossy(data).into_owned();
        self.state.log_ssh_command(&self.node, &line);
        let argv = match shell_words::split(&line) {
            Ok(a) => a,
            Err(_) => {
                let h = session.handle();
                tokio::spawn(finish(
                    h,
                    channel,
                    Vec::new(),
                    b"bash: syntax error: unterminated quoted string\n".to_vec(),
                    2,
                ));
                return Ok(());
            }
        };
        if needs_stdin(&self.state, &argv) {
            self.pending.insert(
                channel,
                PendingExec {
                    argv,
                    stdin: Vec::new(),
                },
            );
        } else {
            tokio::spawn(run_command(
                self.state.clone(),
                self.node.clone(),
                session.handle(),
                channel,
                argv,
                Vec::new(),
            ));
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(p) = self.pending.get_mut(&channel) {
            p.stdin.extend_from_slice(data);
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(p) = self.pending.remove(&channel) {
            tokio::spawn(run_command(
                self.state.clone(),
                self.node.clone(),
                session.handle(),
                channel,
                p.argv,
                p.stdin,
            ));
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pending.remove(&channel);
        self.channels.remove(&channel);
        Ok(())
    }
}

fn needs_stdin(state: &SimState, argv: &[String]) -> bool {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["pct", "push", _, src, ..] => *src == "-" || *src == "/dev/stdin",
        ["pct", "exec", _, rest @ ..] => {
            let cmd: Vec<String> = match rest.iter().position(|a| *a == "--") {
                Some(i) => rest[i + 1..].iter().map(|s| s.to_string()).collect(),
                None => rest.iter().map(|s| s.to_string()).collect(),
            };
            state.backend().needs_stdin(&cmd)
        }
        _ => false,
    }
}

async fn finish(h: Handle, ch: ChannelId, out: Vec<u8>, err: Vec<u8>, code: u32) {
    if !out.is_empty() {
        let _ = h.data(ch, out).await;
    }
    if !err.is_empty() {
        let _ = h.extended_data(ch, 1, err).await;
    }
    let _ = h.exit_status_request(ch, code).await;
    let _ = h.eof(ch).await;
    let _ = h.close(ch).await;
}

/// Whether this node holds the CT and it runs, or pct's error text (a guest of another node
/// has no config file here, as on a real node).
fn locate(state: &SimState, node: &str, vmid_s: &str) -> Result<(u32, bool), String> {
    let Ok(vmid) = vmid_s.parse::<u32>() else {
        return Err(format!(
            "400 Parameter verification failed.\nvmid: type check ('integer') failed - got '{vmid_s}'\n"
        ));
    };
    let here = state.with(|c| {
        c.cts
            .get(&vmid)
            .filter(|ct| ct.node == node)
            .map(|ct| ct.running)
    });
    match here {
        Some(r) => Ok((vmid, r)),
        None => Err(format!(
            "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist\n"
        )),
    }
}

async fn run_command(
    state: SimState,
    node: Arc<str>,
    h: Handle,
    ch: ChannelId,
    argv: Vec<String>,
    stdin: Vec<u8>,
) {
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["pct", "exec", vmid, rest @ ..] => {
            let (vmid, running) = match locate(&state, &node, vmid) {
                Ok(x) => x,
                Err(e) => return finish(h, ch, Vec::new(), e.into_bytes(), 255).await,
            };
            if !running {
                return finish(
                    h,
                    ch,
                    Vec::new(),
                    format!("container '{vmid}' not running!\n").into_bytes(),
                    255,
                )
                .await;
            }
            let cmd: Vec<String> = match rest.iter().position(|a| *a == "--") {
                Some(i) => rest[i + 1..].iter().map(|s| s.to_string()).collect(),
                None => rest
                    .iter()
                    .filter(|a| !a.starts_with("--keep-env"))
                    .map(|s| s.to_string())
                    .collect(),
            };
            if cmd.is_empty() {
                return finish(h, ch, Vec::new(), b"missing command\n".to_vec(), 255).await;
            }
            state.holds().exec(&cmd.join(" ")).await;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let fut = state.backend().exec(vmid, cmd, stdin, tx);
            let h2 = h.clone();
            let pump = tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    let _ = match chunk {
                        ExecChunk::Stdout(d) => h2.data(ch, d).await,
                        ExecChunk::Stderr(d) => h2.extended_data(ch, 1, d).await,
                    };
                }
            });
            let code = fut.await;
            let _ = pump.await;
            finish(h, ch, Vec::new(), Vec::new(), code).await
        }
        ["pct", "push", vmid, src, dst, opts @ ..] => {
            let (vmid, running) = match locate(&state, &node, vmid) {
                Ok(x) => x,
                Err(e) => return finish(h, ch, Vec::new(), e.into_bytes(), 255).await,
            };
            if !running {
                return finish(
                    h,
                    ch,
                    Vec::new(),
                    b"can only push files to a running CT\n".to_vec(),
                    255,
                )
                .await;
            }
            if *src != "-" && *src != "/dev/stdin" {
                let e = format!("failed to open {src} for reading\n");
                return finish(h, ch, Vec::new(), e.into_bytes(), 255).await;
            }
            let mut o = PushOptions::default();
            let mut it = opts.iter();
            while let Some(k) = it.next() {
                let v = it.next().copied().unwrap_or("");
                match *k {
                    "--perms" => match u32::from_str_radix(v.trim_start_matches("0o"), 8) {
                        Ok(m) => o.perms = Some(m),
                        Err(_) => {
                            let e = format!(
                                "400 Parameter verification failed.\nperms: invalid format - '{v}' is not a valid octal mode\n"
                            );
                            return finish(h, ch, Vec::new(), e.into_bytes(), 255).await;
                        }
                    },
                    "--user" => o.user = Some(v.to_string()),
                    "--group" => o.group = Some(v.to_string()),
                    other => {
                        let e = format!(
                            "Unknown option: {}\n400 unable to parse option\n",
                            other.trim_start_matches('-')
                        );
                        return finish(h, ch, Vec::new(), e.into_bytes(), 255).await;
                    }
                }
            }
            if !dst.starts_with('/') {
                return finish(
                    h,
                    ch,
                    Vec::new(),
                    b"destination must be an absolute path\n".to_vec(),
                    255,
                )
                .await;
            }
            // The backend writes synchronously (lxc: a process in the CT): off the runtime's
            // threads, so other sessions' channels and keep-alives go on meanwhile.
            let backend = state.backend().clone();
            let dst = (*dst).to_owned();
            let pushed = tokio::task::spawn_blocking(move || backend.push(vmid, &dst, &stdin, &o))
                .await
                .unwrap_or_else(|e| Err(format!("push failed: {e}")));
            match pushed {
                Ok(()) => finish(h, ch, Vec::new(), Vec::new(), 0).await,
                Err(e) => finish(h, ch, Vec::new(), format!("{e}\n").into_bytes(), 255).await,
            }
        }
        ["pct", "pull", vmid, src, _dst, ..] => {
            let (vmid, running) = match locate(&state, &node, vmid) {
                Ok(x) => x,
                Err(e) => return finish(h, ch, Vec::new(), e.into_bytes(), 255).await,
            };
            if !running {
                return finish(
                    h,
                    ch,
                    Vec::new(),
                    b"can only pull files from a running CT\n".to_vec(),
                    255,
                )
                .await;
            }
            let backend = state.backend().clone();
            let src = (*src).to_owned();
            let pulled = tokio::task::spawn_blocking(move || backend.pull(vmid, &src))
                .await
                .unwrap_or_else(|e| Err(format!("pull failed: {e}")));
            match pulled {
                Ok(d) => finish(h, ch, d, Vec::new(), 0).await,
                Err(e) => finish(h, ch, Vec::new(), format!("{e}\n").into_bytes(), 255).await,
            }
        }
        ["pct", "status", vmid, ..] => match locate(&state, &node, vmid) {
            Ok((_, r)) => {
                let s = if r {
                    "status: running\n"
                } else {
                    "status: stopped\n"
                };
                finish(h, ch, s.as_bytes().to_vec(), Vec::new(), 0).await
            }
            Err(e) => finish(h, ch, Vec::new(), e.into_bytes(), 255).await,
        },
        ["pct", "config", vmid, ..] => match locate(&state, &node, vmid) {
            Ok((vmid, _)) => {
                let text = state.with(|c| {
                    c.cts
                        .get(&vmid)
                        .map(|ct| {
                            ct.conf
                                .iter()
                                .map(|(k, v)| format!("{k}: {v}\n"))
                                .collect::<String>()
                        })
                        .unwrap_or_default()
                });
                finish(h, ch, text.into_bytes(), Vec::new(), 0).await
            }
            Err(e) => finish(h, ch, Vec::new(), e.into_bytes(), 255).await,
        },
        ["pct", "list"] => {
            let text = state.with(|c| {
                let mut s =
                    String::from("VMID       Status     Lock         Name                \n");
                for ct in c.cts.values().filter(|ct| *ct.node == *node) {
                    s.push_str(&format!(
                        "{:<10} {:<10} {:<12} {}\n",
                        ct.vmid,
                        if ct.running { "running" } else { "stopped" },
                        ct.lock().unwrap_or(""),
                        ct.name()
                    ));
                }
                s
            });
            finish(h, ch, text.into_bytes(), Vec::new(), 0).await
        }
        ["pct", ..] => {
            let e = "ERROR: unknown command 'pct ...'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n";
            finish(h, ch, Vec::new(), e.as_bytes().to_vec(), 255).await
        }
        ["true"] => finish(h, ch, Vec::new(), Vec::new(), 0).await,
        ["echo", rest @ ..] => {
            finish(
                h,
                ch,
                format!("{}\n", rest.join(" ")).into_bytes(),
                Vec::new(),
                0,
            )
            .await
        }
        ["hostname"] => finish(h, ch, format!("{node}\n").into_bytes(), Vec::new(), 0).await,
        ["pveversion", ..] => {
            finish(
                h,
                ch,
                b"pve-manager/9.1.9/ee7bad0a3d15 (running kernel: 6.14.11-4-pve)\n".to_vec(),
                Vec::new(),
                0,
            )
            .await
        }
        [cmd, ..] => {
            let e = format!("bash: line 1: {cmd}: command not found\n");
            finish(h, ch, Vec::new(), e.into_bytes(), 127).await
        }
        [] => finish(h, ch, Vec::new(), Vec::new(), 0).await,
    }
}

/// The node's host key: the first node keeps `ssh_host_ed25519_key` (as before nodes had
/// endpoints of their own), the others `ssh_host_ed25519_key.<node>`.
fn host_key(state_dir: Option<&std::path::Path>, file: &str) -> Result<PrivateKey, SimError> {
    if let Some(dir) = state_dir {
        let p = dir.join(file);
        if let Ok(text) = std::fs::read_to_string(&p) {
            return PrivateKey::from_openssh(text).map_err(|e| SimError::Ssh(e.to_string()));
        }
    }
    let mut seed = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut seed[..]);
    let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ));
    if let Some(dir) = state_dir {
        std::fs::create_dir_all(dir)?;
        let text = key
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .map_err(|e| SimError::Ssh(e.to_string()))?;
        std::fs::write(dir.join(file), text.as_bytes())?;
    }
    Ok(key)
}

/// A node's SSH endpoint once bound.
#[derive(Debug, Clone)]
pub struct NodeEndpoint {
    /// Node name.
    pub node: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// Host key fingerprint (`SHA256:…`).
    pub fingerprint: String,
}

/// Where each node listens, from `--ssh-listen`: an explicit address per node when given
/// (`explicit`, node order); otherwise from the one `base` address: on 127.0.0.1, node N
/// listens on 127.0.0.N with the same port (each node its own address, one port, as a real
/// cluster; port 0 takes the port the first node got); on any other address node N listens
/// on port + N - 1.
fn node_addr(base: SocketAddr, explicit: &[SocketAddr], i: usize, first_port: u16) -> SocketAddr {
    if let Some(a) = explicit.get(i) {
        return *a;
    }
    let step = u16::try_from(i).unwrap_or(u16::MAX);
    match base.ip() {
        std::net::IpAddr::V4(v4) if v4 == std::net::Ipv4Addr::LOCALHOST => {
            let last = u8::try_from(i + 1).unwrap_or(u8::MAX);
            SocketAddr::from(([127, 0, 0, last], first_port))
        }
        ip if base.port() == 0 => SocketAddr::new(ip, 0),
        ip => SocketAddr::new(ip, base.port().saturating_add(step)),
    }
}

/// Start one SSH endpoint per node (see [`node_addr`]); returns them in node order with the
/// server tasks. Each node's address is recorded for `/cluster/status`.
pub async fn spawn_nodes(
    state: SimState,
    base: SocketAddr,
    explicit: &[SocketAddr],
    shutdown: watch::Receiver<bool>,
) -> Result<(Vec<NodeEndpoint>, Vec<tokio::task::JoinHandle<()>>), SimError> {
    let mut out = Vec::new();
    let mut joins = Vec::new();
    let mut first_port = base.port();
    for (i, node) in state.node_names().into_iter().enumerate() {
        let want = node_addr(base, explicit, i, first_port);
        let file = if i == 0 {
            "ssh_host_ed25519_key".to_string()
        } else {
            format!("ssh_host_ed25519_key.{node}")
        };
        let bound = match spawn(state.clone(), &node, &file, want, shutdown.clone()).await {
            Ok(x) => x,
            // The first node's ephemeral port may be taken on another loopback address.
            Err(_) if i > 0 && base.port() == 0 && explicit.get(i).is_none() => {
                let any = SocketAddr::new(want.ip(), 0);
                spawn(state.clone(), &node, &file, any, shutdown.clone()).await?
            }
            Err(e) => return Err(e),
        };
        let (addr, fingerprint, join) = bound;
        if i == 0 {
            first_port = addr.port();
        }
        state.set_node_ip(&node, &addr.ip().to_string());
        joins.push(join);
        out.push(NodeEndpoint {
            node,
            addr,
            fingerprint,
        });
    }
    Ok((out, joins))
}

/// Start the SSH server of `node`; returns the bound address, the host key fingerprint
/// (`SHA256:…`) and the server task.
pub async fn spawn(
    state: SimState,
    node: &str,
    key_file: &str,
    addr: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, String, tokio::task::JoinHandle<()>), SimError> {
    let key = host_key(state.state_dir().as_deref(), key_file)?;
    let fp = key
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    let keys: Vec<PublicKey> = state
        .with(|c| c.ssh_authorized_keys.clone())
        .iter()
        .filter_map(|k| PublicKey::from_openssh(k.trim()).ok())
        .collect();
    let config = Arc::new(russh::server::Config {
        inactivity_timeout: Some(std::time::Duration::from_secs(3600)),
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
        keys: vec![key],
        nodelay: true,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut server = SshServer {
        state,
        keys: Arc::new(keys),
        node: Arc::from(node),
    };
    let join = tokio::spawn(async move {
        let running = server.run_on_socket(config, &listener);
        let handle = running.handle();
        tokio::select! {
            _ = running => {},
            _ = shutdown.changed() => {
                handle.shutdown("simulator shutting down".into());
            }
        }
    });
    Ok((bound, fp, join))
}
