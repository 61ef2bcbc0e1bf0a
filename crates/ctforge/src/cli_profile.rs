//! The CLI's profile file: where `ctforge ct|apply|presets|…` find the server URL and API token
//! when neither `--url`/`--token` nor `CTFORGE_URL`/`CTFORGE_TOKEN` give them, so scripts do not
//! repeat them.
//!
//! The file is `$CTFORGE_CLI_CONFIG`, else `$XDG_CONFIG_HOME/ctforge/cli.toml`, else
//! `~/.config/ctforge/cli.toml`:
//!
//! ```toml
//! url = "https://ctforge.example:8080"    # the default profile
//! token = "ctf_…"
//!
//! [profiles.lab]                           # --profile lab (or CTFORGE_PROFILE=lab)
//! url = "http://10.0.0.5:8080"
//! token = "ctf_…"
//! ```
//!
//! The token is a secret: the CLI warns when the file is readable by others.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;

/// One profile: a server and its token.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// ctforge URL.
    pub url: Option<String>,
    /// API token.
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    url: Option<String>,
    token: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Where the profile file is looked for.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CTFORGE_CLI_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ctforge").join("cli.toml"))
}

/// Reads profile `name` (`--profile`, else `CTFORGE_PROFILE`, else the file's top level). A
/// missing file is an empty profile; a named profile that the file lacks is an error.
pub fn load(name: Option<&str>) -> anyhow::Result<Profile> {
    let env_name = std::env::var("CTFORGE_PROFILE").ok();
    let name = name.or(env_name.as_deref()).filter(|n| !n.is_empty());
    let Some(path) = path() else {
        return match name {
            Some(n) => bail!(
                "profile {n:?} asked for, but no profile file location (set HOME or CTFORGE_CLI_CONFIG)"
            ),
            None => Ok(Profile::default()),
        };
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match name {
                Some(n) => bail!(
                    "profile {n:?} asked for, but {} does not exist",
                    path.display()
                ),
                None => Ok(Profile::default()),
            };
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    warn_if_readable(&path);
    parse(&text, name).with_context(|| format!("in {}", path.display()))
}

/// Reads profile `name` (or the top level) from the file's text.
pub fn parse(text: &str, name: Option<&str>) -> anyhow::Result<Profile> {
    let file: ProfileFile = toml::from_str(text)?;
    match name {
        None => Ok(Profile {
            url: file.url,
            token: file.token,
        }),
        Some(n) => file.profiles.get(n).cloned().with_context(|| {
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            format!("no profile {n:?} (known: {})", known.join(", "))
        }),
    }
}

#[cfg(unix)]
fn warn_if_readable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} holds API tokens and is readable by others; chmod 600 it",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable(_path: &std::path::Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_top_level_and_named_profiles() {
        let text = "url = \"http://a\"\ntoken = \"t1\"\n[profiles.lab]\nurl = \"http://b\"\ntoken = \"t2\"\n";
        assert_eq!(parse(text, None).unwrap().url.as_deref(), Some("http://a"));
        assert_eq!(
            parse(text, Some("lab")).unwrap().token.as_deref(),
            Some("t2")
        );
        let err = parse(text, Some("prod")).unwrap_err().to_string();
        assert!(err.contains("lab"), "{err}");
        assert!(parse("urll = 1", None).is_err());
    }
}
