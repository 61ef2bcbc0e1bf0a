//! Config files to deploy: `container-configs/files/<name>` with two sidecars,
//! `<name>.path` (the target directory inside the container, one line) and
//! `<name>.policy` (`replace`, `default` or `backup`, one line).
//!
//! A missing `.path` is an error and the file is skipped (ctforge will not
//! guess where a file goes); a missing `.policy` is a warning and the file uses
//! `replace`. Target directories must be absolute and must not contain `..`.
//! The sidecars' original text is kept ([`TemplateFile::raw_path`],
//! [`TemplateFile::raw_policy`]) so that a file written without a trailing
//! newline, or with surrounding blank lines, is written back byte for byte.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Severity, line_no};

/// Suffix of the target-directory sidecar.
pub const PATH_SUFFIX: &str = ".path";
/// Suffix of the policy sidecar.
pub const POLICY_SUFFIX: &str = ".policy";
/// Longest accepted target directory, in bytes (Linux `PATH_MAX`).
pub const MAX_TARGET_LEN: usize = 4096;

/// What to do when the target file already exists in the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilePolicy {
    /// Always write the file.
    Replace,
    /// Write only when the target does not exist yet.
    Default,
    /// Copy an existing target to `<target>.bak.<timestamp>`, then write.
    Backup,
}

impl FilePolicy {
    /// All policies.
    pub const ALL: [FilePolicy; 3] = [FilePolicy::Replace, FilePolicy::Default, FilePolicy::Backup];

    /// The word used in `.policy` files: `replace`, `default` or `backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            FilePolicy::Replace => "replace",
            FilePolicy::Default => "default",
            FilePolicy::Backup => "backup",
        }
    }
}

impl fmt::Display for FilePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from parsing an unknown policy word; displays as a full diagnostic message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = &self.0;
        let lower = word.to_ascii_lowercase();
        if FilePolicy::ALL.iter().any(|p| p.as_str() == lower) {
            write!(f, "policy `{word}` must be lowercase: write `{lower}`")
        } else {
            write!(
                f,
                "unknown policy `{word}`: use `replace` (always write), `default` (write only \
                 if the target is missing) or `backup` (keep a copy, then write)"
            )
        }
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for FilePolicy {
    type Err = UnknownPolicy;

    /// Parses exactly `replace`, `default` or `backup`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FilePolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_string()))
    }
}

/// A config file deployed into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateFile {
    /// File name, both in `files/` and in the target directory.
    pub name: String,
    /// Absolute target directory inside the container (the `.path` sidecar).
    pub target_dir: String,
    /// What to do when the target exists (the `.policy` sidecar).
    pub policy: FilePolicy,
    /// File content.
    pub content: String,
    /// Original `.path` text, re-emitted while it still reads as `target_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    /// Original `.policy` text, re-emitted while it still reads as `policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_policy: Option<String>,
}

impl TemplateFile {
    /// A file with no original sidecar text.
    pub fn new(
        name: impl Into<String>,
        target_dir: impl Into<String>,
        policy: FilePolicy,
        content: impl Into<String>,
    ) -> TemplateFile {
        TemplateFile {
            name: name.into(),
            target_dir: target_dir.into(),
            policy,
            content: content.into(),
            raw_path: None,
            raw_policy: None,
        }
    }

    /// The full target path inside the container: `<target_dir>/<name>`.
    pub fn target_path(&self) -> String {
        if self.target_dir.ends_with('/') {
            format!("{}{}", self.target_dir, self.name)
        } else {
            format!("{}/{}", self.target_dir, self.name)
        }
    }

    /// This file without the raw sidecar texts, for comparing content.
    pub fn without_raw(&self) -> TemplateFile {
        TemplateFile {
            raw_path: None,
            raw_policy: None,
            ..self.clone()
        }
    }

    /// Text of the `.path` sidecar: the raw text while it still reads as
    /// `target_dir`, otherwise `target_dir` and a newline.
    pub fn render_path(&self) -> String {
        if let Some(raw) = &self.raw_path
            && let (Some(value), issues) = parse_path_sidecar(raw)
            && issues.is_empty()
            && value == self.target_dir
        {
            return raw.clone();
        }
        format!("{}\n", self.target_dir)
    }

    /// Text of the `.policy` sidecar: the raw text while it still reads as
    /// `policy`, otherwise the policy word and a newline.
    pub fn render_policy(&self) -> String {
        if let Some(raw) = &self.raw_policy
            && let (Some(value), issues) = parse_policy_sidecar(raw)
            && issues.is_empty()
            && value == self.policy
        {
            return raw.clone();
        }
        format!("{}\n", self.policy)
    }
}

/// Checks a target directory: absolute, no `..` component, one line, no
/// surrounding spaces. The error is a lowercase message with the fix.
pub fn validate_target_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty target directory: write an absolute path, like `/etc/nginx`".into());
    }
    if path.chars().any(char::is_control) {
        return Err(
            "target directory contains a line break or control character: write it on one \
             line without them"
                .into(),
        );
    }
    if path.trim() != path {
        return Err(format!(
            "target directory `{path}` has leading or trailing spaces: remove them"
        ));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "target directory `{path}` is not absolute: start it with `/`, like `/{}`",
            path.trim_start_matches("./")
        ));
    }
    if path.split('/').any(|component| component == "..") {
        return Err(format!(
            "target directory `{path}` contains `..`: write the directory it means without `..`"
        ));
    }
    if path.len() > MAX_TARGET_LEN {
        return Err(format!(
            "target directory is longer than {MAX_TARGET_LEN} bytes: shorten it"
        ));
    }
    Ok(())
}

/// A problem in a sidecar: 1-based line, severity, message.
pub(crate) type SidecarIssue = (Option<u32>, Severity, String);

/// The non-blank lines of a sidecar, trimmed, with their 1-based numbers.
fn content_lines(text: &str) -> Vec<(Option<u32>, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (line_no(i), l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

/// Parses a `.path` sidecar: exactly one non-blank line, a valid target directory.
pub(crate) fn parse_path_sidecar(text: &str) -> (Option<String>, Vec<SidecarIssue>) {
    let lines = content_lines(text);
    let mut issues = Vec::new();
    let Some((line, value)) = lines.first().copied() else {
        issues.push((
            Some(1),
            Severity::Error,
            "empty `.path` file: write the absolute directory to deploy the file to, like \
             `/etc/nginx` (the file is skipped until then)"
                .to_string(),
        ));
        return (None, issues);
    };
    for (extra, _) in lines.iter().skip(1) {
        issues.push((
            *extra,
            Severity::Error,
            "a `.path` file holds one directory on one line: remove this line".to_string(),
        ));
    }
    if let Err(message) = validate_target_path(value) {
        issues.push((line, Severity::Error, message));
        return (None, issues);
    }
    (Some(value.to_string()), issues)
}

/// Parses a `.policy` sidecar: exactly one non-blank line, a known policy.
pub(crate) fn parse_policy_sidecar(text: &str) -> (Option<FilePolicy>, Vec<SidecarIssue>) {
    let lines = content_lines(text);
    let mut issues = Vec::new();
    let Some((line, value)) = lines.first().copied() else {
        issues.push((
            Some(1),
            Severity::Error,
            "empty `.policy` file: write `replace`, `default` or `backup`".to_string(),
        ));
        return (None, issues);
    };
    for (extra, _) in lines.iter().skip(1) {
        issues.push((
            *extra,
            Severity::Error,
            "a `.policy` file holds one word on one line: remove this line".to_string(),
        ));
    }
    match value.parse::<FilePolicy>() {
        Ok(policy) => (Some(policy), issues),
        Err(err) => {
            issues.push((line, Severity::Error, err.to_string()));
            (None, issues)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths() {
        assert!(validate_target_path("/etc/nginx").is_ok());
        assert!(validate_target_path("/").is_ok());
        assert!(validate_target_path("/opt/app/").is_ok());
        assert!(validate_target_path("/etc/./x").is_ok());
        assert!(validate_target_path("/etc/..hidden").is_ok());
        for bad in [
            "",
            "etc",
            "~/x",
            "/etc/../root",
            "/..",
            "/a/..",
            " /etc",
            "/etc\n",
            "/a\0b",
        ] {
            assert!(validate_target_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sidecars() {
        assert_eq!(
            parse_path_sidecar("/etc/nginx\n").0.as_deref(),
            Some("/etc/nginx")
        );
        assert_eq!(
            parse_path_sidecar("\n  /etc/x  \r\n\n").0.as_deref(),
            Some("/etc/x")
        );
        let (v, issues) = parse_path_sidecar("/a\n/b\n");
        assert_eq!(v.as_deref(), Some("/a"));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, Some(2));
        assert_eq!(parse_policy_sidecar("backup").0, Some(FilePolicy::Backup));
        assert_eq!(parse_policy_sidecar("Backup\n").0, None);
        assert_eq!(parse_policy_sidecar("").1.len(), 1);
    }

    #[test]
    fn raw_sidecars_are_kept_when_unchanged() {
        let mut f = TemplateFile::new("a", "/etc", FilePolicy::Default, "");
        f.raw_path = Some("/etc".into());
        f.raw_policy = Some("default\r\n".into());
        assert_eq!(f.render_path(), "/etc");
        assert_eq!(f.render_policy(), "default\r\n");
        f.target_dir = "/opt".into();
        f.policy = FilePolicy::Backup;
        assert_eq!(f.render_path(), "/opt\n");
        assert_eq!(f.render_policy(), "backup\n");
        assert_eq!(f.target_path(), "/opt/a");
    }
}
