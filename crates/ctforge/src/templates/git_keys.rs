//! Deploy keys of ssh git sources: stored sealed with the keyring (`git_source_keys`), given
//! in Settings → Template sources, `PUT /api/v1/template-sources/key` or the config
//! (`deploy_key_file` / `deploy_key_env` of a `[[templates.git]]` entry, imported at each
//! sync), never logged and never shown back — only the public key's fingerprint. The pinned
//! host key fingerprint is kept next to it. [`access_for`] opens a key for one sync.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::git_ssh::SshAccess;
use crate::audit::{self, Caller};
use crate::config::GitSource;
use crate::error::AppError;
use crate::secrets::{Keyring, Plain};
use crate::storage::model::GitSourceKey;
use crate::storage::{Store, StoreError};

/// A configured git source as shown (no secret).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceView {
    /// Repository URL.
    pub url: String,
    /// Branch followed.
    pub branch: String,
    /// Subdirectory holding the templates.
    pub path: Option<String>,
    /// Whether the URL is reached over ssh (and so needs a pinned host key).
    pub ssh: bool,
    /// Fingerprint (`SHA256:…`) of the stored deploy key's public half, if a key is stored.
    pub key_fingerprint: Option<String>,
    /// The pinned host key fingerprint (config first, else the stored one).
    pub host_key: Option<String>,
}

/// `PUT /api/v1/template-sources/key` (and the Template sources form).
#[derive(Clone, Deserialize, schemars::JsonSchema)]
pub struct SetKeyBody {
    /// The configured source's URL.
    pub url: String,
    /// The private deploy key (OpenSSH or PEM, unencrypted). Empty keeps the stored key
    /// (to change only the host key pin).
    #[serde(default)]
    pub private_key: String,
    /// The confirmed host key fingerprint (`SHA256:…`); empty keeps the stored pin.
    #[serde(default)]
    pub host_key: String,
}

impl std::fmt::Debug for SetKeyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetKeyBody")
            .field("url", &self.url)
            .field("host_key", &self.host_key)
            .finish_non_exhaustive()
    }
}

/// The configured sources with their key fingerprints and host pins.
pub async fn list(store: &dyn Store, sources: &[GitSource]) -> Result<Vec<SourceView>, AppError> {
    let keys = store.list_git_keys().await?;
    Ok(sources
        .iter()
        .map(|s| {
            let stored = keys.iter().find(|k| k.url == s.url);
            SourceView {
                url: s.url.clone(),
                branch: s.branch.clone(),
                path: s.path.clone(),
                ssh: super::git_ssh::ssh_host(&s.url).is_some(),
                key_fingerprint: stored.map(|k| k.key_fingerprint.clone()),
                host_key: s
                    .host_key
                    .clone()
                    .or_else(|| stored.and_then(|k| k.host_key.clone())),
            }
        })
        .collect())
}

fn invalid(text: impl Into<String>) -> AppError {
    AppError::invalid(text.into())
}

fn check_host_key(text: &str) -> Result<String, AppError> {
    let body = text.trim().strip_prefix("SHA256:").unwrap_or(text.trim());
    let ok = !body.is_empty()
        && body.len() <= 64
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if ok {
        Ok(format!("SHA256:{}", body.trim_end_matches('=')))
    } else {
        Err(invalid(
            "host_key must be a SHA256 fingerprint as `ssh-keygen -lf` prints it (SHA256:…)",
        ))
    }
}

/// Seals `private_key` and stores it for source `url`, with the pinned host key; audited as
/// `template.source_key`. Refuses URLs that are not configured and keys that do not parse.
pub async fn set(
    store: &dyn Store,
    keyring: &Keyring,
    caller: Caller<'_>,
    sources: &[GitSource],
    body: &SetKeyBody,
) -> Result<SourceView, AppError> {
    let url = body.url.trim();
    if !sources.iter().any(|s| s.url == url) {
        return Err(invalid(format!(
            "{url:?} is not a configured git source: add it as [[templates.git]] first"
        )));
    }
    let previous = store.get_git_key(url).await?;
    let host_key = match body.host_key.trim() {
        "" => previous.as_ref().and_then(|k| k.host_key.clone()),
        text => Some(check_host_key(text)?),
    };
    let key = if body.private_key.trim().is_empty() {
        match previous {
            Some(mut key) => {
                key.host_key = host_key;
                key
            }
            None => return Err(invalid("give the private deploy key")),
        }
    } else {
        seal_key(keyring, url, body.private_key.trim(), host_key)?
    };
    store.put_git_key(&key).await?;
    audit::record(
        store,
        caller.entry("template.source_key", url).detail(json!({
            "key_fingerprint": key.key_fingerprint,
            "host_key": key.host_key,
        })),
    )
    .await?;
    let views = list(store, sources).await?;
    views
        .into_iter()
        .find(|v| v.url == url)
        .ok_or_else(|| invalid("the source disappeared"))
}

/// Forgets the deploy key of `url`; audited as `template.source_key_delete`.
pub async fn remove(store: &dyn Store, caller: Caller<'_>, url: &str) -> Result<(), AppError> {
    match store.delete_git_key(url).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => {
            return Err(AppError::NotFound(format!("a deploy key for {url}")));
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(store, caller.entry("template.source_key_delete", url)).await?;
    Ok(())
}

fn seal_key(
    keyring: &Keyring,
    url: &str,
    private_key: &str,
    host_key: Option<String>,
) -> Result<GitSourceKey, AppError> {
    let fingerprint = ctforge_ssh::private_key_fingerprint(private_key).map_err(|e| {
        invalid(format!(
            "the deploy key for {url} cannot be read ({e}): give an unencrypted OpenSSH or PEM private key"
        ))
    })?;
    let sealed = keyring
        .seal(private_key)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot seal the deploy key: {e}")))?;
    Ok(GitSourceKey {
        url: url.to_owned(),
        deploy_key_sealed: sealed,
        key_fingerprint: fingerprint,
        host_key,
        updated_at: 0,
    })
}

/// Stores the deploy keys the config names (`deploy_key_file`, `deploy_key_env`) when they
/// differ from the stored ones. Returns one warning per key that could not be read.
pub async fn import_configured(
    store: &dyn Store,
    keyring: &Keyring,
    sources: &[GitSource],
) -> Result<Vec<String>, StoreError> {
    let mut warnings = Vec::new();
    for source in sources {
        let text = match (&source.deploy_key_file, &source.deploy_key_env) {
            (Some(path), _) => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => {
                    warnings.push(format!(
                        "templates.git {}: cannot read deploy_key_file {}: {e}",
                        source.url,
                        path.display()
                    ));
                    continue;
                }
            },
            (None, Some(var)) => match std::env::var(var) {
                Ok(text) => text,
                Err(_) => {
                    warnings.push(format!(
                        "templates.git {}: the environment variable {var} (deploy_key_env) is not set",
                        source.url
                    ));
                    continue;
                }
            },
            (None, None) => continue,
        };
        let text = Plain::new(text.trim().to_owned());
        let previous = store.get_git_key(&source.url).await?;
        let fingerprint = match ctforge_ssh::private_key_fingerprint(text.expose()) {
            Ok(fp) => fp,
            Err(e) => {
                warnings.push(format!(
                    "templates.git {}: the configured deploy key cannot be read ({e})",
                    source.url
                ));
                continue;
            }
        };
        if previous
            .as_ref()
            .is_some_and(|k| k.key_fingerprint == fingerprint)
        {
            continue;
        }
        let host_key = previous.and_then(|k| k.host_key);
        match seal_key(keyring, &source.url, text.expose(), host_key) {
            Ok(key) => store.put_git_key(&key).await?,
            Err(e) => warnings.push(format!("templates.git {}: {e}", source.url)),
        }
    }
    Ok(warnings)
}

/// What one sync of `source` needs: its deploy key opened from the keyring and its pinned
/// host key (the config's pin wins over the stored one).
pub async fn access_for(
    store: &dyn Store,
    keyring: &Keyring,
    source: &GitSource,
) -> Result<SshAccess, String> {
    let stored = store
        .get_git_key(&source.url)
        .await
        .map_err(|e| format!("templates.git {}: {e}", source.url))?;
    let private_key = match &stored {
        Some(k) => Some(keyring.open(&k.deploy_key_sealed).map_err(|e| {
            format!(
                "templates.git {}: the stored deploy key cannot be opened ({e}); set it again",
                source.url
            )
        })?),
        None => None,
    };
    Ok(SshAccess {
        private_key,
        host_key: source
            .host_key
            .clone()
            .or_else(|| stored.and_then(|k| k.host_key)),
    })
}
