//! One authenticated SSH connection ([`SshSession`]) on which every command is
//! a new channel, and [`fetch_host_key`] for the Settings page.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};

use crate::remote::{LineSink, truncate};
use crate::target::normalize_fingerprint;
use crate::{ExecOutput, HostKeyPolicy, SshAuth, SshError, SshTarget, Stream};

/// Keepalive interval: long silent commands (package installs) keep the session alive, and a
/// peer that stops answering is noticed after [`KEEPALIVE_MAX`] missed replies (45 s), which
/// closes the session (a running command then fails with [`SshError::ChannelClosed`]).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Unanswered keep-alives before the connection counts as dead.
const KEEPALIVE_MAX: usize = 3;

pub(crate) struct ClientHandler {
    pinned: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fp = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().fingerprint(HashAlg::Sha256),
        }
        .to_string();
        let ok = match &self.pinned {
            Some(p) => normalize_fingerprint(p) == normalize_fingerprint(&fp),
            None => true,
        };
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fp);
        }
        Ok(ok)
    }
}

fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        ..Default::default()
    })
}

fn connect_error(host: &str, port: u16, e: russh::Error) -> SshError {
    let reason = match e {
        russh::Error::IO(io) => io.to_string(),
        other => other.to_string().to_lowercase(),
    };
    SshError::Connect {
        host: host.to_string(),
        port,
        reason,
    }
}

/// Handshake with host key check; returns the handle and the seen fingerprint.
async fn handshake(
    host: &str,
    port: u16,
    pinned: Option<&str>,
) -> Result<(client::Handle<ClientHandler>, String), SshError> {
    let seen = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        pinned: pinned.map(str::to_string),
        seen: seen.clone(),
    };
    let res = client::connect(client_config(), (host, port), handler).await;
    let fp = seen.lock().ok().and_then(|s| s.clone());
    match res {
        Ok(h) => Ok((h, fp.unwrap_or_default())),
        Err(russh::Error::UnknownKey) => match (pinned, fp) {
            (Some(expected), Some(got)) => Err(SshError::HostKeyMismatch {
                host: host.to_string(),
                expected: normalize_fingerprint(expected),
                got,
            }),
            _ => Err(connect_error(host, port, russh::Error::UnknownKey)),
        },
        Err(e) => Err(connect_error(host, port, e)),
    }
}

/// Connect to `host:port`, check nothing, and return the server's host key
/// fingerprint (`SHA256:…`, as `ssh-keygen -lf` prints it) without
/// authenticating, for the user to compare and pin. Times out after 10 s.
pub async fn fetch_host_key(host: &str, port: u16) -> Result<String, SshError> {
    let limit = Duration::from_secs(10);
    let (h, fp) = tokio::time::timeout(limit, handshake(host, port, None))
        .await
        .map_err(|_| SshError::Timeout {
            what: format!("fetching the ssh host key of {host}:{port}"),
            after: limit,
        })??;
    let _ = h
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(fp)
}

/// An authenticated SSH connection. Cheap to share (`Arc`); commands may run
/// concurrently, each on its own channel.
pub struct SshSession {
    handle: Mutex<Arc<client::Handle<ClientHandler>>>,
    /// Where to reconnect to when the connection died (host key pinned to the first one).
    target: SshTarget,
    reopen: tokio::sync::Mutex<()>,
    host: String,
    fingerprint: String,
    commands: AtomicU64,
    reopened: AtomicU64,
    /// Closed with [`SshSession::close`]: never reopened.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("host", &self.host)
            .field("fingerprint", &self.fingerprint)
            .field("commands", &self.commands_run())
            .field("reopened", &self.reopened())
            .finish()
    }
}

impl SshSession {
    /// Connect, check the host key against the policy and authenticate, within
    /// `target.connect_timeout`.
    pub async fn connect(target: &SshTarget) -> Result<SshSession, SshError> {
        let started = Instant::now();
        let fut = Self::connect_inner(target);
        let res = tokio::time::timeout(target.connect_timeout, fut)
            .await
            .map_err(|_| SshError::Timeout {
                what: format!("connecting to {}:{} over ssh", target.host, target.port),
                after: target.connect_timeout,
            })?;
        match &res {
            Ok(s) => tracing::debug!(
                host = %target.host,
                port = target.port,
                user = %target.user,
                fingerprint = %s.fingerprint,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "ssh connected"
            ),
            Err(e) => {
                tracing::warn!(host = %target.host, port = target.port, error = %e, "ssh connect failed")
            }
        }
        res
    }

    async fn connect_inner(target: &SshTarget) -> Result<SshSession, SshError> {
        let (handle, fingerprint) = Self::open(target).await?;
        let mut target = target.clone();
        // A reopened connection must reach the same host as the first one.
        target.host_key = HostKeyPolicy::Pinned(fingerprint.clone());
        Ok(SshSession {
            handle: Mutex::new(Arc::new(handle)),
            host: target.host.clone(),
            target,
            reopen: tokio::sync::Mutex::new(()),
            fingerprint,
            commands: AtomicU64::new(0),
            reopened: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Handshake and authentication: a connected handle and the host key fingerprint.
    async fn open(target: &SshTarget) -> Result<(client::Handle<ClientHandler>, String), SshError> {
        let pinned = match &target.host_key {
            HostKeyPolicy::Pinned(p) => Some(p.as_str()),
            HostKeyPolicy::TrustOnFirstUse => None,
        };
        let (mut handle, fingerprint) = handshake(&target.host, target.port, pinned).await?;
        let auth_err = |e: russh::Error| SshError::Protocol(format!("during authentication: {e}"));
        let result = match &target.auth {
            SshAuth::Password(pw) => handle
                .authenticate_password(target.user.clone(), pw.expose())
                .await
                .map_err(auth_err)?,
            SshAuth::Key {
                private_key_pem,
                passphrase,
            } => {
                let key = russh::keys::decode_secret_key(
                    private_key_pem.expose(),
                    passphrase.as_ref().map(|p| p.expose()),
                )
                .map_err(|e| SshError::InvalidKey {
                    reason: e.to_string().to_lowercase(),
                })?;
                handle
                    .authenticate_publickey(
                        target.user.clone(),
                        PrivateKeyWithHashAlg::new(Arc::new(key), None),
                    )
                    .await
                    .map_err(auth_err)?
            }
        };
        if !result.success() {
            return Err(SshError::Auth {
                user: target.user.clone(),
                host: target.host.clone(),
                method: target.auth.method(),
            });
        }
        Ok((handle, fingerprint))
    }

    fn current(&self) -> Arc<client::Handle<ClientHandler>> {
        match self.handle.lock() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces a dead connection with a new one (once per caller; concurrent callers share
    /// the new connection), within the connect timeout.
    async fn reconnect(&self, dead: &Arc<client::Handle<ClientHandler>>) -> Result<(), SshError> {
        let _one = self.reopen.lock().await;
        if !Arc::ptr_eq(dead, &self.current()) {
            return Ok(()); // someone else reopened it meanwhile
        }
        let limit = self.target.connect_timeout;
        let (handle, _) = tokio::time::timeout(limit, Self::open(&self.target))
            .await
            .map_err(|_| SshError::Timeout {
                what: format!("reconnecting to {} over ssh", self.host),
                after: limit,
            })??;
        match self.handle.lock() {
            Ok(mut h) => *h = Arc::new(handle),
            Err(p) => *p.into_inner() = Arc::new(handle),
        }
        self.reopened.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(host = %self.host, "ssh connection was dead; reopened it");
        Ok(())
    }

    /// How often a dead connection was replaced.
    pub fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Relaxed)
    }

    /// Opens a channel, reopening the connection once when it turns out to be dead (nothing
    /// ran yet, so trying again is safe).
    async fn channel(&self) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let handle = self.current();
        if !handle.is_closed() {
            match handle.channel_open_session().await {
                Ok(c) => return Ok(c),
                Err(russh::Error::SendError | russh::Error::Disconnect | russh::Error::HUP) => {}
                Err(e) => return Err(e),
            }
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(russh::Error::Disconnect);
        }
        if let Err(e) = self.reconnect(&handle).await {
            tracing::warn!(host = %self.host, error = %e, "cannot reopen the ssh connection");
            return Err(russh::Error::Disconnect);
        }
        self.current().channel_open_session().await
    }

    /// The server's host key fingerprint (`SHA256:…`); store it after a
    /// trust-on-first-use connection to pin it.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `fingerprint` (`SHA256:…`, as pinned) is the host key this session saw.
    pub fn has_host_key(&self, fingerprint: &str) -> bool {
        normalize_fingerprint(fingerprint) == normalize_fingerprint(&self.fingerprint)
    }

    /// The host this session is connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many commands (channels) ran on this connection.
    pub fn commands_run(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Whether the connection is gone (the next command reopens it once).
    pub fn is_closed(&self) -> bool {
        self.current().is_closed()
    }

    /// Disconnect politely; later commands fail with [`SshError::ChannelClosed`].
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self
            .current()
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// Run one command line on the remote host (as given to the login shell),
    /// optionally feeding `stdin` (then EOF; EOF is always sent), streaming
    /// lines to `on_line` and keeping the last `tail_lines`.
    /// `timeout` bounds the whole command.
    pub async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        tail_lines: usize,
        timeout: Option<Duration>,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let started = Instant::now();
        self.commands.fetch_add(1, Ordering::Relaxed);
        let fut = self.run_inner(command, stdin, tail_lines, on_line);
        let res = match timeout {
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => Err(SshError::Timeout {
                    what: format!("command `{}`", truncate(command, 120)),
                    after: t,
                }),
            },
            None => fut.await,
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        metrics::histogram!(
            "ctforge_ssh_command_duration_seconds",
            "outcome" => match &res {
                Ok(o) if o.success() => "ok",
                Ok(_) => "nonzero_exit",
                Err(SshError::Timeout { .. }) => "timeout",
                Err(_) => "error",
            },
        )
        .record(started.elapsed().as_secs_f64());
        match &res {
            Ok(o) => tracing::debug!(
                host = %self.host,
                cmd = %truncate(command, 200),
                stdin_bytes = stdin.map(|s| s.len()).unwrap_or(0),
                exit_code = o.exit_code,
                elapsed_ms,
                "ssh command"
            ),
            Err(e) => tracing::warn!(
                host = %self.host,
                cmd = %truncate(command, 200),
                elapsed_ms,
                error = %e,
                "ssh command failed"
            ),
        }
        res
    }

    async fn run_inner(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        tail_lines: usize,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let started = Instant::now();
        let what = || truncate(command, 120);
        let closed = |e: russh::Error| match e {
            russh::Error::SendError
            | russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::ChannelOpenFailure(_) => SshError::ChannelClosed {
                what: format!("command `{}`", what()),
            },
            other => SshError::protocol(other),
        };
        let channel = self.channel().await.map_err(closed)?;
        channel.exec(true, command).await.map_err(closed)?;
        let (mut read, write) = channel.split();

        let writer = async {
            if let Some(data) = stdin
                && !data.is_empty()
            {
                write.data(data).await?;
            }
            write.eof().await
        };
        let mut sink = LineSink::new(tail_lines, on_line);
        let mut exit: Option<u32> = None;
        let mut signal: Option<String> = None;
        let reader = async {
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => sink.feed(Stream::Stdout, &data),
                    ChannelMsg::ExtendedData { data, .. } => sink.feed(Stream::Stderr, &data),
                    ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        signal = Some(format!("{signal_name:?}"));
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
        };
        let (w, ()) = tokio::join!(writer, reader);
        let tail = sink.finish();
        // A command that does not read stdin may finish (and close the channel)
        // before our data/EOF went out: that is not an error once it reported.
        if let Err(e) = w
            && exit.is_none()
            && signal.is_none()
        {
            return Err(closed(e));
        }
        let exit_code = match (exit, &signal) {
            (Some(c), _) => c,
            (None, Some(_)) => 255,
            (None, None) => {
                return Err(SshError::ChannelClosed {
                    what: format!("command `{}`", what()),
                });
            }
        };
        Ok(ExecOutput {
            exit_code,
            signal,
            tail,
            duration: started.elapsed(),
        })
    }
}
