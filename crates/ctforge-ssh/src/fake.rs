//! [`FakeRemote`]: a scripted, in-memory [`RemoteExec`] for fast unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::{ExecOutput, OutputLine, RemoteExec, SshError, Stream};

/// A scripted answer: exit code and output lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReply {
    /// Exit code.
    pub exit_code: u32,
    /// Lines, in order.
    pub lines: Vec<(Stream, String)>,
}

/// A file pushed to a [`FakeRemote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedFile {
    /// Destination path.
    pub dest: String,
    /// Content.
    pub content: Vec<u8>,
    /// Mode, if given.
    pub mode: Option<u32>,
    /// `(user, group)`, if given.
    pub owner: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct Inner {
    replies: BTreeMap<String, FakeReply>,
    commands: Vec<String>,
    pushes: Vec<PushedFile>,
    status: String,
}

/// Records every command and push; answers commands from a map of command
/// prefix → reply (the longest matching prefix wins; unmatched commands exit 0
/// silently). Pushed files can be read back.
#[derive(Debug)]
pub struct FakeRemote {
    inner: Mutex<Inner>,
}

impl Default for FakeRemote {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRemote {
    /// An empty fake whose CT is `running`.
    pub fn new() -> FakeRemote {
        FakeRemote {
            inner: Mutex::new(Inner {
                status: "running".into(),
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer commands starting with `prefix` with `exit_code` and stdout `lines`.
    pub fn reply(&self, prefix: &str, exit_code: u32, lines: &[&str]) -> &Self {
        let lines = lines
            .iter()
            .map(|l| (Stream::Stdout, (*l).to_string()))
            .collect();
        self.reply_with(prefix, FakeReply { exit_code, lines })
    }

    /// Answer commands starting with `prefix` with a full reply (stderr lines too).
    pub fn reply_with(&self, prefix: &str, reply: FakeReply) -> &Self {
        self.lock().replies.insert(prefix.to_string(), reply);
        self
    }

    /// Set what [`RemoteExec::status`] answers.
    pub fn set_status(&self, status: &str) {
        self.lock().status = status.to_string();
    }

    /// Every command run, in order.
    pub fn commands(&self) -> Vec<String> {
        self.lock().commands.clone()
    }

    /// Every push, in order.
    pub fn pushes(&self) -> Vec<PushedFile> {
        self.lock().pushes.clone()
    }

    /// The last content pushed to `dest`.
    pub fn file(&self, dest: &str) -> Option<Vec<u8>> {
        self.lock()
            .pushes
            .iter()
            .rev()
            .find(|p| p.dest == dest)
            .map(|p| p.content.clone())
    }
}

#[async_trait]
impl RemoteExec for FakeRemote {
    async fn exec(
        &self,
        cmd: &str,
        on_line: &mut (dyn for<'l> FnMut(Stream, &'l str) + Send),
    ) -> Result<ExecOutput, SshError> {
        let reply = {
            let mut g = self.lock();
            g.commands.push(cmd.to_string());
            g.replies
                .iter()
                .filter(|(p, _)| cmd.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, r)| r.clone())
        };
        let reply = reply.unwrap_or(FakeReply {
            exit_code: 0,
            lines: Vec::new(),
        });
        for (s, l) in &reply.lines {
            on_line(*s, l);
        }
        Ok(ExecOutput {
            exit_code: reply.exit_code,
            signal: None,
            tail: reply
                .lines
                .iter()
                .map(|(s, l)| OutputLine {
                    stream: *s,
                    text: l.clone(),
                })
                .collect(),
            duration: Duration::ZERO,
        })
    }

    async fn push(
        &self,
        content: &[u8],
        dest: &str,
        mode: Option<u32>,
        owner: Option<(&str, &str)>,
    ) -> Result<(), SshError> {
        crate::pct::check_dest(dest)?;
        self.lock().pushes.push(PushedFile {
            dest: dest.to_string(),
            content: content.to_vec(),
            mode,
            owner: owner.map(|(u, g)| (u.to_string(), g.to_string())),
        });
        Ok(())
    }

    async fn status(&self) -> Result<String, SshError> {
        Ok(self.lock().status.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_and_recorded() {
        let f = FakeRemote::new();
        f.reply("apt-get", 0, &["ok"])
            .reply("apt-get install bad", 100, &["E: no"]);
        let mut seen = Vec::new();
        let o = f
            .exec("apt-get install bad", &mut |_, l| seen.push(l.to_string()))
            .await
            .expect("exec");
        assert_eq!((o.exit_code, seen), (100, vec!["E: no".to_string()]));
        assert_eq!(
            f.exec("apt-get update", &mut |_, _| {})
                .await
                .expect("exec")
                .tail_text(),
            "ok\n"
        );
        assert!(
            f.exec("whatever", &mut |_, _| {})
                .await
                .expect("exec")
                .success()
        );
        f.push(b"data", "/etc/x", Some(0o600), Some(("a", "b")))
            .await
            .expect("push");
        assert_eq!(f.file("/etc/x").as_deref(), Some(&b"data"[..]));
        assert!(f.push(b"", "rel", None, None).await.is_err());
        assert_eq!(f.commands().len(), 3);
        assert_eq!(f.pushes()[0].owner, Some(("a".into(), "b".into())));
        f.set_status("stopped");
        assert_eq!(f.status().await.expect("status"), "stopped");
    }
}
