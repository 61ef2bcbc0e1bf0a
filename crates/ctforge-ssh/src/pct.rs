//! [`PctChannel`]: commands and files into a CT through `pct exec` / `pct push`
//! on the Proxmox node, over one shared [`SshSession`].

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::remote::truncate;
use crate::{
    DEFAULT_TAIL_LINES, ExecOutput, RemoteExec, SshError, SshSession, SshTarget, Stream, quote,
};

/// The shell that runs scripts inside the CT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shell {
    /// `sh -c <script>` (present in every template, incl. Alpine).
    #[default]
    Sh,
    /// `bash -c <script>`.
    Bash,
    /// Another shell binary taking `-c <script>`.
    Custom(String),
}

impl Shell {
    /// The program name.
    pub fn program(&self) -> &str {
        match self {
            Shell::Sh => "sh",
            Shell::Bash => "bash",
            Shell::Custom(s) => s,
        }
    }
}

/// How [`PctChannel::push`] gets file content into the CT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushMode {
    /// Real-Proxmox compatible: upload to a private temp file on the node
    /// (`umask 077 && cat > /tmp/ctforge-push-<random>`), then
    /// `pct push <vmid> <tmp> <dest> [--perms] [--user --group]`, then `rm -f`.
    #[default]
    NodeTempFile,
    /// `pct push <vmid> - <dest> …` with the content on stdin. Real `pct push`
    /// wants a file path; this is the simulator's convention.
    PctStdin,
    /// `pct exec <vmid> -- sh -c 'umask 077; cat > DEST && chown U:G DEST && chmod MODE DEST'`
    /// with the content on stdin: works on real nodes and the simulator, no node temp file.
    ExecCat,
}

/// Options of a [`PctChannel`].
#[derive(Debug, Clone)]
pub struct PctOptions {
    /// Shell for scripts (default `sh`).
    pub shell: Shell,
    /// How files are pushed (default [`PushMode::NodeTempFile`]).
    pub push_mode: PushMode,
    /// Lines kept in [`ExecOutput::tail`] (default 50).
    pub tail_lines: usize,
    /// Channel-level limit per command (default none); see [`PctOptions::guest_timeout`]
    /// for the limit that also kills the command inside the container.
    pub command_timeout: Option<Duration>,
    /// Limit per command inside the container (default none): each exec runs as
    /// `timeout -k 5 <secs> <shell> -c <script>` in the CT, so an overrunning command is
    /// killed there (with its children) and [`RemoteExec::exec`] fails with
    /// [`SshError::GuestTimeout`]. The channel itself gives up [`BACKSTOP`] later in case
    /// the container stops answering altogether.
    pub guest_timeout: Option<Duration>,
    /// Directory on the node for [`PushMode::NodeTempFile`] (default `/tmp`).
    pub node_tmp_dir: String,
}

impl Default for PctOptions {
    fn default() -> Self {
        PctOptions {
            shell: Shell::Sh,
            push_mode: PushMode::NodeTempFile,
            tail_lines: DEFAULT_TAIL_LINES,
            command_timeout: None,
            guest_timeout: None,
            node_tmp_dir: "/tmp".into(),
        }
    }
}

/// The provisioning channel into CT `vmid` via `pct` on the Proxmox node.
///
/// Several `PctChannel`s (for different CTs of one job) can share one
/// [`SshSession`]; each command opens a new channel on it.
#[derive(Debug, Clone)]
pub struct PctChannel {
    session: Arc<SshSession>,
    vmid: u32,
    opts: PctOptions,
}

impl PctChannel {
    /// Open a connection to the node and return a channel for `vmid`.
    pub async fn connect(target: &SshTarget, vmid: u32) -> Result<PctChannel, SshError> {
        Ok(Self::new(
            Arc::new(SshSession::connect(target).await?),
            vmid,
        ))
    }

    /// A channel for `vmid` on an existing session.
    pub fn new(session: Arc<SshSession>, vmid: u32) -> PctChannel {
        PctChannel {
            session,
            vmid,
            opts: PctOptions::default(),
        }
    }

    /// Replace the options.
    pub fn with_options(mut self, opts: PctOptions) -> PctChannel {
        self.opts = opts;
        self
    }

    /// The options.
    pub fn options(&self) -> &PctOptions {
        &self.opts
    }

    /// The underlying SSH session (to share with other channels or close it).
    pub fn session(&self) -> &Arc<SshSession> {
        &self.session
    }

    /// The CT id.
    pub fn vmid(&self) -> u32 {
        self.vmid
    }

    /// The node command line that runs `script` in the CT (for plans and logs).
    pub fn exec_command_line(&self, script: &str) -> String {
        pct_exec_line(self.vmid, &self.opts.shell, script, self.opts.guest_timeout)
    }

    /// This channel with another in-guest limit per command (e.g. a script's own timeout).
    pub fn with_guest_timeout(mut self, limit: Option<Duration>) -> PctChannel {
        self.opts.guest_timeout = limit;
        self
    }

    /// How long the channel waits for any one command before giving up on it.
    fn deadline(&self) -> Option<Duration> {
        deadline(self.opts.command_timeout, self.opts.guest_timeout)
    }

    async fn helper(
        &self,
        what: &str,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, SshError> {
        let out = self
            .session
            .run(cmd, stdin, 20, self.deadline(), &mut |_, _| {})
            .await?;
        if out.success() {
            Ok(out)
        } else {
            Err(SshError::Remote {
                what: what.to_string(),
                exit_code: out.exit_code,
                message: out.tail_text().trim_end().to_string(),
            })
        }
    }
}

/// Time the in-guest `timeout` gives a command between TERM and KILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How much longer than the in-guest limit (plus [`KILL_GRACE`]) the channel waits before it
/// gives up on a command itself: the backstop for a container that stops answering.
pub const BACKSTOP: Duration = Duration::from_secs(30);

/// The channel-level deadline: the explicit one, or the in-guest limit plus grace and backstop.
pub(crate) fn deadline(explicit: Option<Duration>, guest: Option<Duration>) -> Option<Duration> {
    let backstop = guest.map(|g| g + KILL_GRACE + BACKSTOP);
    match (explicit, backstop) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `<shell> -c <script>`, under `timeout -k 5 <secs>` when there is a limit, quoted.
pub(crate) fn guarded(shell: &Shell, script: &str, limit: Option<Duration>) -> String {
    let run = format!("{} -c {}", quote(shell.program()), quote(script));
    match limit {
        Some(l) => format!(
            "timeout -k {} {} {run}",
            KILL_GRACE.as_secs(),
            l.as_secs().max(1)
        ),
        None => run,
    }
}

/// An exit of a command run under [`guarded`] that means the limit killed it: `timeout`
/// exits 124 (137 when it had to KILL), and only after the limit passed.
pub(crate) fn timed_out(
    out: ExecOutput,
    limit: Option<Duration>,
    script: &str,
) -> Result<ExecOutput, SshError> {
    match limit {
        Some(limit)
            if matches!(out.exit_code, 124 | 137)
                && out.duration + Duration::from_millis(500)
                    >= Duration::from_secs(limit.as_secs().max(1)) =>
        {
            Err(SshError::GuestTimeout {
                what: format!("command `{}`", truncate(script, 120)),
                limit,
                ran: out.duration,
            })
        }
        _ => Ok(out),
    }
}

/// `pct exec <vmid> -- [timeout -k 5 <secs>] <shell> -c <script>`, quoted.
pub(crate) fn pct_exec_line(
    vmid: u32,
    shell: &Shell,
    script: &str,
    limit: Option<Duration>,
) -> String {
    format!("pct exec {vmid} -- {}", guarded(shell, script, limit))
}

/// `pct push <vmid> <src> <dest> [--perms MODE] [--user U] [--group G]`, quoted.
pub(crate) fn pct_push_line(
    vmid: u32,
    src: &str,
    dest: &str,
    mode: Option<u32>,
    owner: Option<(&str, &str)>,
) -> String {
    let mut s = format!("pct push {vmid} {} {}", quote(src), quote(dest));
    if let Some(m) = mode {
        s.push_str(&format!(" --perms {m:04o}"));
    }
    if let Some((u, g)) = owner {
        if !u.is_empty() {
            s.push_str(&format!(" --user {}", quote(u)));
        }
        if !g.is_empty() {
            s.push_str(&format!(" --group {}", quote(g)));
        }
    }
    s
}

/// A script writing stdin to `dest` with owner and mode, for `sh -c`.
pub(crate) fn cat_script(dest: &str, mode: Option<u32>, owner: Option<(&str, &str)>) -> String {
    let d = quote(dest);
    let mut s = format!("umask 077; cat > {d}");
    if let Some((u, g)) = owner {
        let spec = match (u.is_empty(), g.is_empty()) {
            (false, false) => format!("{u}:{g}"),
            (false, true) => u.to_string(),
            (true, false) => format!(":{g}"),
            (true, true) => String::new(),
        };
        if !spec.is_empty() {
            s.push_str(&format!(" && chown {} {d}", quote(&spec)));
        }
    }
    let m = mode.unwrap_or(0o644);
    s.push_str(&format!(" && chmod {m:04o} {d}"));
    s
}

pub(crate) fn check_dest(dest: &str) -> Result<(), SshError> {
    if dest.starts_with('/') && !dest.contains('\0') {
        Ok(())
    } else {
        Err(SshError::Remote {
            what: format!("push to `{}`", truncate(dest, 120)),
            exit_code: 255,
            message: "destination must be an absolute path".into(),
        })
    }
}

/// A hard-to-guess temp file name suffix.
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

#[async_trait]
impl RemoteExec for PctChannel {
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let line = self.exec_command_line(cmd);
        let out = self
            .session
            .run(&line, None, self.opts.tail_lines, self.deadline(), on_line)
            .await?;
        let out = timed_out(out, self.opts.guest_timeout, cmd)?;
        tracing::info!(
            vmid = self.vmid,
            cmd = %truncate(cmd, 200),
            exit_code = out.exit_code,
            elapsed_ms = out.duration.as_millis() as u64,
            "pct exec"
        );
        Ok(out)
    }

    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError> {
        check_dest(dest)?;
        let started = std::time::Instant::now();
        let what = format!("pct push {} to `{}`", self.vmid, truncate(dest, 120));
        match self.opts.push_mode {
            PushMode::NodeTempFile => {
                let tmp = format!(
                    "{}/ctforge-push-{}",
                    self.opts.node_tmp_dir.trim_end_matches('/'),
                    random_suffix()
                );
                let qt = quote(&tmp);
                let upload = format!("umask 077 && cat > {qt}");
                if let Err(e) = self
                    .helper("uploading the file to the node", &upload, Some(content))
                    .await
                {
                    let _ = self
                        .session
                        .run(
                            &format!("rm -f {qt}"),
                            None,
                            0,
                            self.deadline(),
                            &mut |_, _| {},
                        )
                        .await;
                    return Err(e);
                }
                let push = format!(
                    "{}; rc=$?; rm -f {qt}; exit $rc",
                    pct_push_line(self.vmid, &tmp, dest, mode, owner)
                );
                self.helper(&what, &push, None).await?;
            }
            PushMode::PctStdin => {
                let line = pct_push_line(self.vmid, "-", dest, mode, owner);
                self.helper(&what, &line, Some(content)).await?;
            }
            PushMode::ExecCat => {
                let line = format!(
                    "pct exec {} -- sh -c {}",
                    self.vmid,
                    quote(&cat_script(dest, mode, owner))
                );
                self.helper(&what, &line, Some(content)).await?;
            }
        }
        tracing::info!(
            vmid = self.vmid,
            dest = %truncate(dest, 200),
            bytes = content.len(),
            mode = mode.map(|m| format!("{m:04o}")),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pct push"
        );
        Ok(())
    }

    async fn status(&self) -> Result<String, SshError> {
        let what = format!("pct status {}", self.vmid);
        let out = self.helper(&what, &what, None).await?;
        let text = out.stream_text(Stream::Stdout);
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("status:")
                    .map(|s| s.trim().to_string())
            })
            .ok_or_else(|| {
                SshError::Protocol(format!(
                    "unexpected `{what}` output: {}",
                    truncate(text.trim(), 200)
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cat_script_quotes_everything() {
        assert_eq!(
            cat_script("/etc/a b", Some(0o600), Some(("www-data", "www-data"))),
            "umask 077; cat > '/etc/a b' && chown www-data:www-data '/etc/a b' && chmod 0600 '/etc/a b'"
        );
        assert_eq!(
            cat_script("/x", None, None),
            "umask 077; cat > /x && chmod 0644 /x"
        );
        assert_eq!(
            cat_script("/x", None, Some(("", "adm"))),
            "umask 077; cat > /x && chown :adm /x && chmod 0644 /x"
        );
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            pct_exec_line(100, &Shell::Sh, "echo 'hi'; rm -rf $(x)", None),
            r"pct exec 100 -- sh -c 'echo '\''hi'\''; rm -rf $(x)'"
        );
        assert_eq!(
            pct_exec_line(7, &Shell::Bash, "true", None),
            "pct exec 7 -- bash -c true"
        );
        assert_eq!(
            pct_exec_line(7, &Shell::Sh, "sleep 9", Some(Duration::from_secs(90))),
            "pct exec 7 -- timeout -k 5 90 sh -c 'sleep 9'"
        );
        assert_eq!(
            pct_push_line(
                100,
                "-",
                "/etc/my app.conf",
                Some(0o600),
                Some(("app", "app"))
            ),
            "pct push 100 - '/etc/my app.conf' --perms 0600 --user app --group app"
        );
        assert_eq!(
            pct_push_line(1, "/tmp/x", "/y", None, None),
            "pct push 1 /tmp/x /y"
        );
    }

    #[test]
    fn deadlines_and_timeouts() {
        let s = Duration::from_secs;
        assert_eq!(deadline(None, None), None);
        assert_eq!(deadline(Some(s(10)), None), Some(s(10)));
        assert_eq!(deadline(None, Some(s(60))), Some(s(95)));
        assert_eq!(deadline(Some(s(10)), Some(s(60))), Some(s(10)));
        let out = |code, secs| ExecOutput {
            exit_code: code,
            signal: None,
            tail: Vec::new(),
            duration: s(secs),
        };
        let e = timed_out(out(124, 3), Some(s(3)), "sleep 600").unwrap_err();
        assert!(
            e.to_string().contains("`sleep 600` was stopped after 3.0s")
                && e.to_string().contains("3s timeout"),
            "{e}"
        );
        assert!(timed_out(out(137, 4), Some(s(3)), "x").is_err());
        assert!(
            timed_out(out(124, 0), Some(s(3)), "exit 124").is_ok(),
            "exited early by itself"
        );
        assert!(timed_out(out(124, 9), None, "x").is_ok());
    }

    #[test]
    fn dest_must_be_absolute() {
        assert!(check_dest("/etc/x").is_ok());
        assert!(check_dest("etc/x").is_err());
        assert!(check_dest("").is_err());
    }

    #[test]
    fn random_suffixes_differ() {
        assert_ne!(random_suffix(), random_suffix());
        assert_eq!(random_suffix().len(), 16);
    }
}
