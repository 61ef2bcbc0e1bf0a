//! How `git` reaches an ssh template source: the deploy key (opened from its sealed form only
//! for the length of one sync) in a private temporary file, and a `known_hosts` holding only
//! the host key whose fingerprint was confirmed (pinned). `GIT_SSH_COMMAND` points ssh at both
//! with `StrictHostKeyChecking=yes`; an unpinned or changed host key stops the sync with the
//! fingerprints seen, for the user to compare and pin — never "accept whatever answers".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::git::GitError;
use crate::secrets::Plain;

/// How long `ssh-keyscan` may take.
const KEYSCAN_TIMEOUT: Duration = Duration::from_secs(20);

/// What an ssh source needs: its deploy key (if any) and the pinned host key fingerprint.
#[derive(Debug, Default)]
pub struct SshAccess {
    /// The private deploy key (opened from the keyring).
    pub private_key: Option<Plain>,
    /// The confirmed host key fingerprint (`SHA256:…`).
    pub host_key: Option<String>,
}

/// The host and port of an ssh URL: `ssh://[user@]host[:port]/path` or scp-like
/// `user@host:path`. `None` for other schemes (https, file, git).
pub fn ssh_host(url: &str) -> Option<(String, u16)> {
    if let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
    {
        let authority = rest.split('/').next()?;
        let host_port = authority.rsplit('@').next()?;
        if let Some(inner) = host_port.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return Some((host.to_owned(), port.unwrap_or(22)));
        }
        return Some(match host_port.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), port.parse().ok()?),
            None => (host_port.to_owned(), 22),
        });
    }
    if url.contains("://") {
        return None;
    }
    let (user_host, _path) = url.split_once(':')?;
    let host = user_host.rsplit('@').next()?;
    (!host.is_empty() && user_host.contains('@')).then(|| (host.to_owned(), 22))
}

/// The temporary key file and `known_hosts` of one sync; removed when dropped.
#[derive(Debug)]
pub struct SshEnv {
    dir: tempfile::TempDir,
    key: Option<PathBuf>,
    known_hosts: PathBuf,
}

impl SshEnv {
    /// Pins the host key of `host` (scanned now, kept only when its fingerprint is the
    /// confirmed one) and writes the deploy key with mode 0600.
    pub async fn prepare(
        url: &str,
        host: &(String, u16),
        access: &SshAccess,
    ) -> Result<Self, GitError> {
        let failed = |reason: String| GitError::Git {
            action: "ssh setup",
            url: url.to_owned(),
            reason,
        };
        let scanned = keyscan(&host.0, host.1).await.map_err(|e| {
            failed(format!(
                "cannot read the host key of {}:{}: {e}",
                host.0, host.1
            ))
        })?;
        if !scanned
            .lines()
            .any(|l| ctforge_ssh::public_key_fingerprint(l).is_some())
        {
            return Err(failed(format!(
                "cannot read the host key of {}:{}: no ssh server answered",
                host.0, host.1
            )));
        }
        let lines = pinned_lines(&scanned, access.host_key.as_deref()).map_err(|seen| {
            GitError::Invalid {
                url: url.to_owned(),
                reason: match &access.host_key {
                    None => format!(
                        "the host key of {}:{} is not confirmed yet; the server shows {}: compare it with the \
                         server's own (ssh-keygen -lf on the server) and pin it as host_key in \
                         [[templates.git]] or in Settings → Template sources",
                        host.0, host.1, seen
                    ),
                    Some(pin) => format!(
                        "the host key of {}:{} is not the pinned {pin}: the server shows {seen}. If the \
                         server's key was changed on purpose, pin the new one; otherwise do not trust \
                         this server",
                        host.0, host.1
                    ),
                },
            }
        })?;
        let dir = tempfile::Builder::new()
            .prefix("ctforge-git-ssh-")
            .tempdir()
            .map_err(|e| failed(format!("cannot create a temporary directory: {e}")))?;
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, lines.join("\n") + "\n")
            .map_err(|e| failed(format!("cannot write known_hosts: {e}")))?;
        let key = match &access.private_key {
            Some(private_key) => {
                let path = dir.path().join("deploy_key");
                write_private(&path, private_key.expose())
                    .map_err(|e| failed(format!("cannot write the deploy key file: {e}")))?;
                Some(path)
            }
            None => None,
        };
        Ok(Self {
            dir,
            key,
            known_hosts,
        })
    }

    /// The value of `GIT_SSH_COMMAND` (git runs it through a shell: every path is quoted).
    pub fn command(&self) -> String {
        let mut words = vec!["ssh".to_owned()];
        if let Some(key) = &self.key {
            words.extend([
                "-i".to_owned(),
                ctforge_ssh::quote(&key.display().to_string()),
                "-o".to_owned(),
                "IdentitiesOnly=yes".to_owned(),
            ]);
        }
        words.extend([
            "-o".to_owned(),
            "IdentityAgent=none".to_owned(),
            "-o".to_owned(),
            ctforge_ssh::quote(&format!(
                "UserKnownHostsFile={}",
                self.known_hosts.display()
            )),
            "-o".to_owned(),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "-o".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
        ]);
        words.join(" ")
    }

    /// The directory holding the key file and `known_hosts` (gone once `self` is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The key file, when a deploy key is used.
    pub fn key_file(&self) -> Option<&Path> {
        self.key.as_deref()
    }
}

/// Writes `text` to a new file readable by its owner only (0600 from creation on).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// The `known_hosts` lines among `scanned` whose key has the fingerprint `pin`; on no pin or no
/// match, `Err` with the fingerprints seen (for the message).
fn pinned_lines(scanned: &str, pin: Option<&str>) -> Result<Vec<String>, String> {
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    for line in scanned.lines() {
        let Some(fp) = ctforge_ssh::public_key_fingerprint(line) else {
            continue;
        };
        let kind = line.split_whitespace().nth(1).unwrap_or("?").to_owned();
        if pin.is_some_and(|p| ctforge_ssh::same_fingerprint(p, &fp)) {
            kept.push(line.trim().to_owned());
        }
        seen.push(format!("{fp} ({kind})"));
    }
    if kept.is_empty() {
        Err(if seen.is_empty() {
            "no host key".to_owned()
        } else {
            seen.join(", ")
        })
    } else {
        Ok(kept)
    }
}

/// `ssh-keyscan -p PORT -- HOST` (no shell), with a timeout.
async fn keyscan(host: &str, port: u16) -> Result<String, String> {
    if host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{host:?} is not a host name"));
    }
    let output = tokio::time::timeout(
        KEYSCAN_TIMEOUT,
        tokio::process::Command::new("ssh-keyscan")
            .args(["-p", &port.to_string(), "-T", "10", "--", host])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("no answer within {}s", KEYSCAN_TIMEOUT.as_secs()))?
    .map_err(|e| format!("cannot run ssh-keyscan ({e}); install openssh-client on this host"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCANNED: &str = "# git.example:22 SSH-2.0-OpenSSH_9.2\n\
        git.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG01LhGftcy7JR4fotkZh0qZVlnTECXzd9U+XrseGs6K\n";
    const PIN: &str = "SHA256:ow5kPoAmkyp1UETZeRHZfAPgUFAnUzJQKSnbTyvzDGM";

    #[test]
    fn hosts_of_ssh_urls() {
        let h = |u: &str| ssh_host(u);
        assert_eq!(
            h("ssh://git@git.example/t.git"),
            Some(("git.example".into(), 22))
        );
        assert_eq!(
            h("ssh://git@git.example:2222/t.git"),
            Some(("git.example".into(), 2222))
        );
        assert_eq!(h("ssh://git@[::1]:2222/t.git"), Some(("::1".into(), 2222)));
        assert_eq!(
            h("git@github.com:org/t.git"),
            Some(("github.com".into(), 22))
        );
        assert_eq!(h("https://example.com/t.git"), None);
        assert_eq!(h("file:///srv/t.git"), None);
    }

    #[test]
    fn only_the_pinned_host_key_is_trusted() {
        assert_eq!(pinned_lines(SCANNED, Some(PIN)).unwrap().len(), 1);
        let unpinned = pinned_lines(SCANNED, None).unwrap_err();
        assert!(unpinned.contains(PIN), "{unpinned}");
        assert!(unpinned.contains("ssh-ed25519"), "{unpinned}");
        assert!(pinned_lines(SCANNED, Some("SHA256:other")).is_err());
        assert!(pinned_lines("", Some(PIN)).is_err());
    }

    #[tokio::test]
    async fn key_file_is_private_the_command_pins_and_all_is_removed() {
        let access = SshAccess {
            private_key: Some(Plain::new(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----"
                    .to_owned(),
            )),
            host_key: Some(PIN.to_owned()),
        };
        let lines = pinned_lines(SCANNED, access.host_key.as_deref()).unwrap();
        // `prepare` without the network: the same steps on the scanned text above.
        let dir = tempfile::Builder::new()
            .prefix("ctforge-git-ssh-")
            .tempdir()
            .unwrap();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, lines.join("\n")).unwrap();
        let key = dir.path().join("deploy_key");
        write_private(&key, access.private_key.as_ref().unwrap().expose()).unwrap();
        let env = SshEnv {
            dir,
            key: Some(key.clone()),
            known_hosts,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let command = env.command();
        assert!(command.contains("StrictHostKeyChecking=yes"), "{command}");
        assert!(!command.contains("StrictHostKeyChecking=no"), "{command}");
        assert!(
            command.contains(&format!(
                "-i {}",
                ctforge_ssh::quote(&key.display().to_string())
            )),
            "{command}"
        );
        assert!(command.contains("IdentitiesOnly=yes"), "{command}");
        assert!(!command.contains("PRIVATE KEY"), "{command}");
        let dir = env.dir().to_path_buf();
        assert!(dir.join("known_hosts").exists());
        drop(env);
        assert!(
            !dir.exists(),
            "the key file and known_hosts are removed after the sync"
        );
    }
}
