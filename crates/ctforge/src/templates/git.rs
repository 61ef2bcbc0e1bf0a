//! Template roots held in git repositories: validating a `[[templates.git]]` source, fetching
//! it into `<data_dir>/git/<hash of url>` with the `git` binary, and naming the commit that is
//! checked out, so discovery can record where a template came from.
//!
//! The `git` binary is run directly (never through a shell) with a timeout; URL and branch are
//! validated and passed after `--` where git accepts it, so neither can become an option.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::git_ssh::{SshAccess, SshEnv, ssh_host};
use crate::config::GitSource;

/// How long one git command may take before it is killed.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a git-sourced template came from (kept in the template's stored config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitOrigin {
    /// Repository URL.
    pub url: String,
    /// Branch followed.
    pub branch: String,
    /// Full commit id checked out when the template was stored.
    pub commit: String,
}

impl GitOrigin {
    /// The first 12 hex digits of the commit.
    pub fn short(&self) -> &str {
        self.commit.get(..12).unwrap_or(&self.commit)
    }
}

/// A fetched source: the directory to discover in and the commit checked out.
#[derive(Clone, Debug)]
pub struct Synced {
    /// The source as configured.
    pub source: GitSource,
    /// The checkout.
    pub checkout: PathBuf,
    /// The templates root inside the checkout (`path` applied).
    pub root: PathBuf,
    /// The commit checked out.
    pub commit: String,
}

/// Why a git source could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The configuration is unusable.
    #[error("templates.git source {url:?}: {reason}")]
    Invalid {
        /// The URL as configured.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// `git` failed or timed out.
    #[error("git {action} of {url} failed: {reason}")]
    Git {
        /// What was being done.
        action: &'static str,
        /// The URL.
        url: String,
        /// git's own message.
        reason: String,
    },
}

/// Checks `source` before any git command sees it.
pub fn validate(source: &GitSource) -> Result<(), GitError> {
    let invalid = |reason: &str| GitError::Invalid {
        url: source.url.clone(),
        reason: reason.to_owned(),
    };
    let url = source.url.as_str();
    if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control) {
        return Err(invalid(
            "the url must be non-empty, must not start with `-` and must not contain control characters",
        ));
    }
    let scheme_ok = ["https://", "http://", "file://", "ssh://", "git://"]
        .iter()
        .any(|p| url.starts_with(p))
        || (url.contains('@') && url.contains(':') && !url.contains("::"));
    if !scheme_ok || url.starts_with("ext::") {
        return Err(invalid(
            "use an https://, ssh://, git://, file:// or user@host:path URL",
        ));
    }
    let branch = source.branch.as_str();
    let branch_ok = !branch.is_empty()
        && !branch.starts_with('-')
        && !branch.contains("..")
        && !branch.ends_with('/')
        && !branch.ends_with(".lock")
        && branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !branch_ok {
        return Err(invalid(
            "the branch must be a plain branch name (letters, digits, `-`, `_`, `.`, `/`, not starting with `-`)",
        ));
    }
    if let Some(path) = &source.path {
        let p = Path::new(path);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(
                "path must be a relative subdirectory of the repository without `..`",
            ));
        }
    }
    Ok(())
}

/// `<data_dir>/git/<first 16 hex digits of sha256(url)>`.
pub fn checkout_dir(data_dir: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(url.as_bytes());
    let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    data_dir.join("git").join(name)
}

/// Runs `git args…` (no shell) with a timeout; returns stdout.
async fn git(
    action: &'static str,
    url: &str,
    cwd: Option<&Path>,
    ssh: Option<&SshEnv>,
    args: &[&str],
) -> Result<String, GitError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_VARIANT", "ssh")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    if let Some(ssh) = ssh {
        cmd.env("GIT_SSH_COMMAND", ssh.command());
    }
    let failed = |reason: String| GitError::Git {
        action,
        url: url.to_owned(),
        reason,
    };
    let output = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| failed(format!("no answer within {}s", GIT_TIMEOUT.as_secs())))?
        .map_err(|e| failed(format!("cannot run git ({e}); install git on this host")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(stderr.trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Fetches `source` into the data dir: a shallow clone the first time, then fetch + hard
/// reset to the remote branch.
pub async fn sync(
    data_dir: &Path,
    source: &GitSource,
    access: &SshAccess,
) -> Result<Synced, GitError> {
    validate(source)?;
    let url = source.url.as_str();
    // The key file and known_hosts live until the end of this sync (removed on drop).
    let ssh_env = match ssh_host(url) {
        Some(host) => Some(SshEnv::prepare(url, &host, access).await?),
        None => None,
    };
    let ssh = ssh_env.as_ref();
    let branch = source.branch.as_str();
    let dir = checkout_dir(data_dir, url);
    let dir_text = dir.display().to_string();
    if dir.join(".git").is_dir() {
        let remote_ref = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        git(
            "fetch",
            url,
            Some(&dir),
            ssh,
            &["fetch", "--depth", "1", "--", "origin", &remote_ref],
        )
        .await?;
        let target = format!("origin/{branch}");
        git(
            "reset",
            url,
            Some(&dir),
            None,
            &["reset", "--hard", &target, "--"],
        )
        .await?;
    } else {
        if dir.exists() {
            // A half-finished clone from an earlier run: start over.
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        if let Some(parent) = dir.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| GitError::Git {
                    action: "clone",
                    url: url.to_owned(),
                    reason: format!("cannot create {}: {e}", parent.display()),
                })?;
        }
        git(
            "clone",
            url,
            None,
            ssh,
            &[
                "clone",
                "--depth",
                "1",
                "--single-branch",
                "--branch",
                branch,
                "--",
                url,
                &dir_text,
            ],
        )
        .await?;
    }
    let commit = git("rev-parse", url, Some(&dir), None, &["rev-parse", "HEAD"]).await?;
    let root = match &source.path {
        Some(p) if !p.is_empty() => dir.join(p),
        _ => dir.clone(),
    };
    Ok(Synced {
        source: source.clone(),
        checkout: dir,
        root,
        commit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: &str, branch: &str) -> GitSource {
        GitSource {
            url: url.to_owned(),
            branch: branch.to_owned(),
            ..GitSource::default()
        }
    }

    #[test]
    fn option_injection_is_refused() {
        assert!(validate(&src("--upload-pack=touch /tmp/x", "main")).is_err());
        assert!(validate(&src("ext::sh -c touch% /tmp/x", "main")).is_err());
        assert!(validate(&src("https://example.com/t.git", "--orphan")).is_err());
        assert!(validate(&src("https://example.com/t.git", "a..b")).is_err());
        assert!(validate(&src("https://example.com/t.git", "release/1.0")).is_ok());
        assert!(validate(&src("git@github.com:org/templates.git", "main")).is_ok());
        let mut escape = src("file:///srv/t.git", "main");
        escape.path = Some("../etc".to_owned());
        assert!(validate(&escape).is_err());
    }
}
