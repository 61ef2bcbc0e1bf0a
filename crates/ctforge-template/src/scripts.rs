//! Provisioning scripts: `container-configs/scripts/NN-name.sh`, run in
//! numeric order of `NN` (ties broken by file name).
//!
//! Files whose names do not match `NN-name.sh` are reported as warnings and
//! skipped: ctforge never runs a script whose place in the order it would have
//! to guess.

use serde::{Deserialize, Serialize};

/// A provisioning script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// Position in the run order (the `NN` of `NN-name.sh`).
    pub order: u32,
    /// File name, e.g. `10-setup.sh`. See [`Script::file_name`] for how it is
    /// reconciled with `order` when written.
    pub name: String,
    /// Script text.
    pub content: String,
    /// Whether the script runs. Always `true` when loaded from disk; templates
    /// edited in the UI may disable scripts, and disabled scripts are not
    /// exported (the directory format has no way to say "disabled").
    pub enabled: bool,
}

/// Why a file name is not a valid script name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptNameError {
    /// It does not have the `NN-name.sh` shape.
    Pattern,
    /// `NN` does not fit in a `u32`.
    OrderTooLarge,
}

/// Splits `NN-rest` into the order and `rest` (without checking `.sh`).
fn split_order(name: &str) -> Option<(Result<u32, ScriptNameError>, &str)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = (name.get(..digits)?, name.get(digits..)?);
    let rest = rest.strip_prefix('-')?;
    if number.is_empty() || rest.is_empty() {
        return None;
    }
    let order = number
        .parse::<u32>()
        .map_err(|_| ScriptNameError::OrderTooLarge);
    Some((order, rest))
}

/// Parses a script file name of the form `NN-name.sh` (one or more ASCII
/// digits, a dash, a non-empty name, `.sh`) and returns `NN`.
pub fn parse_script_name(file_name: &str) -> Result<u32, ScriptNameError> {
    match split_order(file_name) {
        Some((order, rest)) if rest.len() > 3 && rest.ends_with(".sh") => order,
        _ => Err(ScriptNameError::Pattern),
    }
}

impl Script {
    /// An enabled script.
    pub fn new(order: u32, name: impl Into<String>, content: impl Into<String>) -> Script {
        Script {
            order,
            name: name.into(),
            content: content.into(),
            enabled: true,
        }
    }

    /// The file name the script is written under. `name` is kept when its
    /// number already equals `order`; otherwise the number is replaced (or, if
    /// `name` has none, added) as two or more digits, and `.sh` is appended if
    /// missing. So `10-setup.sh` reordered to 20 is written as `20-setup.sh`,
    /// and `setup` at order 5 as `05-setup.sh`.
    pub fn file_name(&self) -> String {
        if parse_script_name(&self.name) == Ok(self.order) {
            return self.name.clone();
        }
        let base = match split_order(&self.name) {
            Some((_, rest)) => rest,
            None => self.name.as_str(),
        };
        let suffix = if base.ends_with(".sh") { "" } else { ".sh" };
        format!("{:02}-{base}{suffix}", self.order)
    }

    /// Whether the script runs per instance (see [`is_per_instance`]).
    pub fn per_instance(&self) -> bool {
        is_per_instance(&self.content)
    }
}

/// The header comment marking a script that must run in every instance (credentials, anything
/// reading the hostname): an image is baked without it and each container made from the image
/// runs it at creation.
pub const PER_INSTANCE_MARKER: &str = "ctforge: per-instance";

/// Whether `content` carries the per-instance marker: a comment line `# ctforge: per-instance`
/// (spaces and case free) in the script's leading comment block (the lines before the first
/// command; the shebang and blank lines belong to the block). A marker further down is an
/// ordinary comment, so a script's body cannot change how it is scheduled by accident.
pub fn is_per_instance(content: &str) -> bool {
    for line in content.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            return false;
        };
        let words: Vec<&str> = comment.split_whitespace().collect();
        let joined = words.join(" ").to_ascii_lowercase();
        if joined == PER_INSTANCE_MARKER || joined == "ctforge:per-instance" {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_instance_marker_is_read_from_the_header_only() {
        assert!(is_per_instance(
            "#!/bin/bash\n# ctforge: per-instance\nsave_credential x y\n"
        ));
        assert!(is_per_instance(
            "\n#   CTForge:   Per-Instance  \necho $(hostname)\n"
        ));
        assert!(is_per_instance("# creds\n\n#ctforge:per-instance\n"));
        assert!(!is_per_instance(
            "#!/bin/sh\necho hi\n# ctforge: per-instance\n"
        ));
        assert!(!is_per_instance("# ctforge: per-instance-ish\n"));
        assert!(!is_per_instance(""));
        assert!(Script::new(10, "10-a.sh", "# ctforge: per-instance\n").per_instance());
    }

    #[test]
    fn names() {
        assert_eq!(parse_script_name("10-setup.sh"), Ok(10));
        assert_eq!(parse_script_name("007-a.sh"), Ok(7));
        assert_eq!(parse_script_name("1-x-y.sh"), Ok(1));
        assert_eq!(
            parse_script_name("99999999999-a.sh"),
            Err(ScriptNameError::OrderTooLarge)
        );
        for bad in [
            "setup.sh",
            "10-.sh",
            "10-setup",
            "10setup.sh",
            "-1-a.sh",
            "10-a.bash",
            "",
            "٣-a.sh",
        ] {
            assert_eq!(
                parse_script_name(bad),
                Err(ScriptNameError::Pattern),
                "{bad}"
            );
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(
            Script::new(10, "10-setup.sh", "").file_name(),
            "10-setup.sh"
        );
        assert_eq!(
            Script::new(10, "010-setup.sh", "").file_name(),
            "010-setup.sh"
        );
        assert_eq!(
            Script::new(20, "10-setup.sh", "").file_name(),
            "20-setup.sh"
        );
        assert_eq!(Script::new(5, "setup", "").file_name(), "05-setup.sh");
        assert_eq!(Script::new(100, "setup.sh", "").file_name(), "100-setup.sh");
    }
}
