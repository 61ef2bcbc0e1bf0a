//! The guest-agent channel: a [`RemoteExec`] into a QEMU virtual machine over Proxmox's
//! `agent/exec` + `agent/exec-status` (commands) and `agent/file-write` (pushes), so
//! provisioning, the script runtime and the monitoring probe run in a VM exactly as they run
//! in a container over `pct`.
//!
//! * A command runs as `/bin/sh -c <script>` (under `timeout -k` in the guest when the channel
//!   has a limit, like `pct`); its output is read by polling `exec-status` and handed to the
//!   caller line by line as it arrives (the agent returns what it captured; QEMU's agent
//!   captures until the process ends, so on a real guest lines arrive at the end).
//! * A push writes the content base64-encoded (`encode=0`) in chunks of at most
//!   [`CHUNK_BYTES`] into a private (0700) directory in the guest, then one command joins the
//!   chunks into the target with its mode and owner and removes the directory. The content
//!   never appears in logs or errors.
//! * The agent answers only once the VM runs and its agent started; errors say so. A busy guest
//!   can leave Proxmox's 3-second `guest-ping` unanswered ("QEMU guest agent is not running")
//!   while the VM runs: starting a command (nothing ran yet) and polling one that runs (it
//!   goes on in the guest) are asked again until the agent has been silent for
//!   [`AGENT_SILENCE`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use ctforge_pve::PveApi;
use ctforge_ssh::{
    BACKSTOP, DEFAULT_TAIL_LINES, ExecOutput, KILL_GRACE, OutputLine, RemoteExec, SshError, Stream,
    quote,
};

/// Largest piece of a pushed file per `agent/file-write` (base64 of it stays under Proxmox's
/// 60 KiB limit of `content`).
pub const CHUNK_BYTES: usize = 44 * 1024;

/// Longest pause between two `exec-status` polls.
const POLL_CAP: Duration = Duration::from_millis(250);

/// How long the agent of a running VM may leave calls unanswered before a command fails.
pub const AGENT_SILENCE: Duration = Duration::from_secs(120);

/// Whether `e` says the agent did not answer in time while the VM runs (Proxmox's
/// `agent_available` after its `guest-ping` timed out, or the call itself timed out), as
/// opposed to a stopped VM, an agent not configured, or a refused call.
pub fn agent_silent(e: &ctforge_pve::PveError) -> bool {
    if matches!(e, ctforge_pve::PveError::Timeout { .. }) {
        return true;
    }
    let text = e.to_string();
    text.contains("guest agent is not running") || text.contains("got timeout")
}

/// A channel into VM `vmid` on `node` through its guest agent.
pub struct AgentChannel {
    client: Arc<dyn PveApi>,
    node: String,
    vmid: u32,
    limit: Option<Duration>,
}

impl AgentChannel {
    /// A channel through `client` (the cluster's service token in jobs); with a `limit`, each
    /// command is killed inside the guest when it runs longer.
    pub fn new(
        client: Arc<dyn PveApi>,
        node: impl Into<String>,
        vmid: u32,
        limit: Option<Duration>,
    ) -> Self {
        Self {
            client,
            node: node.into(),
            vmid,
            limit,
        }
    }

    fn agent_error(&self, what: &str, e: &ctforge_pve::PveError) -> SshError {
        SshError::Remote {
            what: format!("{what} through the guest agent of VM {}", self.vmid),
            exit_code: 255,
            message: e.to_string(),
        }
    }

    /// Starts `script` and waits for its end, giving every output line to `on_line`.
    async fn run(
        &self,
        script: &str,
        input: Option<&str>,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let started = Instant::now();
        let what = format!("command `{}`", short(script));
        let guarded = match self.limit {
            Some(l) => format!(
                "timeout -k {} {} sh -c {}",
                KILL_GRACE.as_secs(),
                l.as_secs().max(1),
                quote(script)
            ),
            None => script.to_owned(),
        };
        // A command inherits qemu-guest-agent's umask, which need not be a login shell's: the
        // steps expect what `pct exec` gives them (022), e.g. a site root others can read.
        let command = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            format!("umask 022; {guarded}"),
        ];
        let mut silent_since: Option<Instant> = None;
        let pid = loop {
            match self
                .client
                .agent_exec(&self.node, self.vmid, &command, input)
                .await
            {
                Ok(started) => break started.pid,
                Err(e) if agent_silent(&e) && within(&mut silent_since, AGENT_SILENCE) => {
                    tokio::time::sleep(POLL_CAP).await;
                }
                Err(e) => return Err(self.agent_error(&what, &e)),
            }
        };
        let deadline = self.limit.map(|l| l + KILL_GRACE + BACKSTOP);
        let mut lines = Lines::default();
        let mut backoff = ctforge_pve::Backoff::new(POLL_CAP);
        loop {
            let status = match self
                .client
                .agent_exec_status(&self.node, self.vmid, pid)
                .await
            {
                Ok(status) => {
                    silent_since = None;
                    status
                }
                // The command goes on in the guest; the agent answers again once it has time.
                Err(e) if agent_silent(&e) && within(&mut silent_since, AGENT_SILENCE) => {
                    tokio::time::sleep(backoff.next_pause()).await;
                    continue;
                }
                Err(e) => return Err(self.agent_error(&what, &e)),
            };
            if let Some(out) = &status.out_data {
                lines.feed(Stream::Stdout, out, on_line);
            }
            if let Some(err) = &status.err_data {
                lines.feed(Stream::Stderr, err, on_line);
            }
            if status.exited {
                lines.finish(on_line);
                let exit_code = match (status.exitcode, status.signal) {
                    (Some(code), _) => u32::try_from(code).unwrap_or(255),
                    (None, _) => 255,
                };
                let output = ExecOutput {
                    exit_code,
                    signal: status.signal.map(|s| format!("signal {s}")),
                    tail: lines.tail.into_iter().collect(),
                    duration: started.elapsed(),
                };
                return self.judge(output, script);
            }
            if let Some(deadline) = deadline
                && started.elapsed() > deadline
            {
                return Err(SshError::Timeout {
                    what,
                    after: deadline,
                });
            }
            tokio::time::sleep(backoff.next_pause()).await;
        }
    }

    /// `timeout` exits 124 (137 after KILL) once the limit passed: the guest killed it.
    fn judge(&self, out: ExecOutput, script: &str) -> Result<ExecOutput, SshError> {
        match self.limit {
            Some(limit)
                if matches!(out.exit_code, 124 | 137)
                    && out.duration + Duration::from_millis(500)
                        >= Duration::from_secs(limit.as_secs().max(1)) =>
            {
                Err(SshError::GuestTimeout {
                    what: format!("command `{}`", short(script)),
                    limit,
                    ran: out.duration,
                })
            }
            _ => Ok(out),
        }
    }

    /// Runs a helper command of the channel; a non-zero exit is an error naming `what`.
    async fn helper(&self, what: &str, script: &str) -> Result<(), SshError> {
        let out = self.run(script, None, &mut |_, _| {}).await?;
        if out.success() {
            Ok(())
        } else {
            Err(SshError::Remote {
                what: what.to_owned(),
                exit_code: out.exit_code,
                message: out.tail_text(),
            })
        }
    }
}

fn short(script: &str) -> String {
    let one_line = script.replace('\n', "\\n");
    if one_line.chars().count() <= 120 {
        return one_line;
    }
    let mut s: String = one_line.chars().take(120).collect();
    s.push('…');
    s
}

/// Splits the growing stdout/stderr texts of one process into lines, remembering how much of
/// each was already handed out, and keeps the last [`DEFAULT_TAIL_LINES`].
#[derive(Default)]
struct Lines {
    seen: [usize; 2],
    partial: [String; 2],
    tail: VecDeque<OutputLine>,
}

impl Lines {
    fn index(stream: Stream) -> usize {
        match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn feed(
        &mut self,
        stream: Stream,
        text: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) {
        let i = Self::index(stream);
        let seen = self.seen[i];
        // The agent answers the whole capture so far; a shorter text is a new capture.
        let new = text.get(seen..).unwrap_or(text);
        self.seen[i] = text.len();
        self.partial[i].push_str(new);
        while let Some(pos) = self.partial[i].find('\n') {
            let line: String = self.partial[i].drain(..=pos).collect();
            let line = line
                .trim_end_matches('\n')
                .trim_end_matches('\r')
                .to_owned();
            self.emit(stream, &line, on_line);
        }
    }

    fn finish(&mut self, on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send)) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.partial[Self::index(stream)]);
            if !rest.is_empty() {
                self.emit(stream, &rest, on_line);
            }
        }
    }

    fn emit(
        &mut self,
        stream: Stream,
        line: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) {
        on_line(stream, line);
        if self.tail.len() == DEFAULT_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(OutputLine {
            stream,
            text: line.to_owned(),
        });
    }
}

#[async_trait]
impl RemoteExec for AgentChannel {
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        self.run(cmd, None, on_line).await
    }

    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError> {
        if !dest.starts_with('/') || dest.contains('\0') {
            return Err(SshError::Remote {
                what: format!("push to `{}`", short(dest)),
                exit_code: 2,
                message: "the destination must be an absolute path".into(),
            });
        }
        let what = format!("push to `{}` in VM {}", short(dest), self.vmid);
        let staging = format!("/run/ctforge-push-{:016x}", rand::random::<u64>());
        let q = quote(&staging);
        self.helper(&what, &format!("umask 077 && mkdir -p -m 700 {q}"))
            .await?;
        let engine = base64::engine::general_purpose::STANDARD;
        let chunks: Vec<&[u8]> = if content.is_empty() {
            vec![&[]]
        } else {
            content.chunks(CHUNK_BYTES).collect()
        };
        let mut parts = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let part = format!("{staging}/{i:06}");
            if let Err(e) = self
                .client
                .agent_file_write(&self.node, self.vmid, &part, &engine.encode(chunk))
                .await
            {
                let _ = self.helper(&what, &format!("rm -rf {q}")).await;
                return Err(self.agent_error(&what, &e));
            }
            parts.push(quote(&part));
        }
        let target = quote(dest);
        let tmp = quote(&format!("{dest}.ctforge-new"));
        let mut join = format!("umask 077 && cat {} > {tmp}", parts.join(" "));
        if let Some(mode) = mode {
            join.push_str(&format!(" && chmod {mode:o} {tmp}"));
        } else {
            join.push_str(&format!(" && chmod 644 {tmp}"));
        }
        if let Some((user, group)) = owner {
            join.push_str(&format!(
                " && chown {} {tmp}",
                quote(&format!("{user}:{group}"))
            ));
        }
        join.push_str(&format!(
            " && mv -f {tmp} {target}; rc=$?; rm -rf {q}; exit $rc"
        ));
        self.helper(&what, &join).await
    }

    async fn status(&self) -> Result<String, SshError> {
        self.client
            .qemu_status_current(&self.node, self.vmid)
            .await
            .map(|s| s.status)
            .map_err(|e| SshError::Remote {
                what: format!("status of VM {}", self.vmid),
                exit_code: 255,
                message: e.to_string(),
            })
    }
}

/// Starts the silence at the first unanswered call; whether it has lasted less than `bound`.
fn within(since: &mut Option<Instant>, bound: Duration) -> bool {
    since.get_or_insert_with(Instant::now).elapsed() < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unanswering_agent_of_a_running_vm_is_waited_for() {
        use ctforge_pve::PveError;
        let silent = PveError::NotRunning {
            message: "QEMU guest agent is not running".into(),
        };
        assert!(agent_silent(&silent));
        assert!(agent_silent(&PveError::Timeout { after_ms: 30_000 }));
        assert!(agent_silent(&PveError::Server {
            status: 500,
            message: "VM 4502 qmp command 'guest-exec-status' failed - got timeout".into(),
        }));
        for ended in [
            PveError::NotRunning {
                message: "VM 4502 not running".into(),
            },
            PveError::Server {
                status: 500,
                message: "No QEMU guest agent configured".into(),
            },
            PveError::Server {
                status: 500,
                message: "Agent error: Invalid parameter 'pid'".into(),
            },
        ] {
            assert!(!agent_silent(&ended), "{ended}");
        }
        let mut since = None;
        assert!(within(&mut since, Duration::from_secs(60)));
        assert!(since.is_some());
        assert!(!within(
            &mut Some(Instant::now() - Duration::from_secs(61)),
            Duration::from_secs(60)
        ));
    }

    #[test]
    fn lines_are_handed_out_once() {
        let mut got = Vec::new();
        let mut cb = |s: Stream, l: &str| got.push((s, l.to_owned()));
        let mut lines = Lines::default();
        lines.feed(Stream::Stdout, "a\nb", &mut cb);
        lines.feed(Stream::Stdout, "a\nbc\nd", &mut cb);
        lines.feed(Stream::Stderr, "e\n", &mut cb);
        lines.finish(&mut cb);
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "a".to_owned()),
                (Stream::Stdout, "bc".to_owned()),
                (Stream::Stderr, "e".to_owned()),
                (Stream::Stdout, "d".to_owned()),
            ]
        );
        assert_eq!(lines.tail.len(), 4);
    }
}
