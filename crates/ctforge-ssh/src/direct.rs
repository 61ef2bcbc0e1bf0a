//! [`DirectChannel`]: SSH straight into the guest (key injected at create time);
//! scripts run with `sh -c` there, no `pct` involved — as the user logged in, or through
//! `sudo -n` when that user is not root (a VM's cloud-init user).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::pct::{Shell, cat_script, check_dest, deadline, guarded, timed_out};
use crate::remote::truncate;
use crate::{DEFAULT_TAIL_LINES, ExecOutput, RemoteExec, SshError, SshSession, SshTarget, Stream};

/// The provisioning channel over an SSH session into the container itself.
#[derive(Debug, Clone)]
pub struct DirectChannel {
    session: Arc<SshSession>,
    shell: Shell,
    tail_lines: usize,
    command_timeout: Option<Duration>,
    guest_timeout: Option<Duration>,
    sudo: bool,
}

/// `[sudo -n] [timeout -k 5 <secs>] <shell> -c <script>`, quoted, as the command line for the
/// guest's sshd.
pub(crate) fn direct_exec_line(
    shell: &Shell,
    script: &str,
    limit: Option<Duration>,
    sudo: bool,
) -> String {
    let line = guarded(shell, script, limit);
    if sudo {
        format!("sudo -n {line}")
    } else {
        line
    }
}

impl DirectChannel {
    /// Connect to the CT's sshd.
    pub async fn connect(target: &SshTarget) -> Result<DirectChannel, SshError> {
        Ok(Self::new(Arc::new(SshSession::connect(target).await?)))
    }

    /// A channel on an existing session into the CT.
    pub fn new(session: Arc<SshSession>) -> DirectChannel {
        DirectChannel {
            session,
            shell: Shell::Sh,
            tail_lines: DEFAULT_TAIL_LINES,
            command_timeout: None,
            guest_timeout: None,
            sudo: false,
        }
    }

    /// Run every command and push as root through `sudo -n` (the session's user is not root
    /// but may use sudo without a password, as cloud-init's default user).
    pub fn with_sudo(mut self, sudo: bool) -> DirectChannel {
        self.sudo = sudo;
        self
    }

    /// Use another shell for scripts.
    pub fn with_shell(mut self, shell: Shell) -> DirectChannel {
        self.shell = shell;
        self
    }

    /// Limit each command's duration.
    pub fn with_command_timeout(mut self, t: Option<Duration>) -> DirectChannel {
        self.command_timeout = t;
        self
    }

    /// Limit each command inside the container (see [`crate::PctOptions::guest_timeout`]).
    pub fn with_guest_timeout(mut self, t: Option<Duration>) -> DirectChannel {
        self.guest_timeout = t;
        self
    }

    fn deadline(&self) -> Option<Duration> {
        deadline(self.command_timeout, self.guest_timeout)
    }

    /// The underlying session.
    pub fn session(&self) -> &Arc<SshSession> {
        &self.session
    }
}

#[async_trait]
impl RemoteExec for DirectChannel {
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let line = direct_exec_line(&self.shell, cmd, self.guest_timeout, self.sudo);
        let out = self
            .session
            .run(&line, None, self.tail_lines, self.deadline(), on_line)
            .await?;
        timed_out(out, self.guest_timeout, cmd)
    }

    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError> {
        check_dest(dest)?;
        let line = direct_exec_line(&Shell::Sh, &cat_script(dest, mode, owner), None, self.sudo);
        let out = self
            .session
            .run(&line, Some(content), 20, self.deadline(), &mut |_, _| {})
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(SshError::Remote {
                what: format!("writing `{}` in the container", truncate(dest, 120)),
                exit_code: out.exit_code,
                message: out.tail_text().trim_end().to_string(),
            })
        }
    }

    /// `running` whenever the CT answers over SSH.
    async fn status(&self) -> Result<String, SshError> {
        let out = self
            .session
            .run("true", None, 5, self.deadline(), &mut |_, _| {})
            .await?;
        Ok(if out.success() { "running" } else { "unknown" }.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_line() {
        assert_eq!(
            direct_exec_line(&Shell::Sh, "a; b", None, false),
            "sh -c 'a; b'"
        );
        assert_eq!(
            direct_exec_line(&Shell::Sh, "a 'b'", Some(Duration::from_secs(3)), true),
            "sudo -n timeout -k 5 3 sh -c 'a '\\''b'\\'''"
        );
    }
}
