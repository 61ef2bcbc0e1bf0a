//! `cloud-init/user-data.yaml`: the optional cloud-init user-data of a vm template.
//!
//! Kept minimal by convention (the user, SSH, the guest agent): the software comes from
//! `container-configs/` like for containers. ctforge checks only what cloud-init itself needs
//! to accept the file: the first line is `#cloud-config` and the rest is a YAML mapping.
//! The text is stored and written back verbatim.

use crate::diagnostic::Diagnostic;

/// Folder of the cloud-init files, next to `template.conf`.
pub const CLOUD_INIT_DIR: &str = "cloud-init";
/// The user-data file inside [`CLOUD_INIT_DIR`].
pub const USER_DATA: &str = "user-data.yaml";
/// The header cloud-init requires on the first line of `#cloud-config` user-data.
pub const HEADER: &str = "#cloud-config";

/// Relative path of the user-data file in a template directory.
pub fn user_data_path() -> std::path::PathBuf {
    [CLOUD_INIT_DIR, USER_DATA].iter().collect()
}

/// Checks user-data text: `#cloud-config` first, then a YAML mapping. Never panics.
pub fn check(text: &str) -> Vec<Diagnostic> {
    let path = user_data_path();
    let mut diags = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or_default().trim_end();
    if first != HEADER {
        diags.push(Diagnostic::error(
            &path,
            Some(1),
            format!(
                "cloud-init reads this file only when its first line is `{HEADER}`: add that line \
                 at the top"
            ),
        ));
    }
    match yaml_serde::from_str::<yaml_serde::Value>(text) {
        Ok(yaml_serde::Value::Mapping(_) | yaml_serde::Value::Null) => {}
        Ok(_) => diags.push(Diagnostic::error(
            &path,
            None,
            "user-data must be a YAML mapping (`key: value` lines such as `users:` or \
             `packages:`), not a list or a single value",
        )),
        Err(e) => {
            let line = e
                .location()
                .and_then(|l| u32::try_from(l.line()).ok())
                .filter(|l| *l > 0);
            diags.push(Diagnostic::error(
                &path,
                line,
                format!("user-data is not valid YAML ({e}): fix the indentation or quoting"),
            ));
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_minimal_file() {
        assert!(check("#cloud-config\npackage_update: false\n").is_empty());
        assert!(check("#cloud-config\n").is_empty());
    }

    #[test]
    fn needs_the_header_and_a_mapping() {
        let d = check("package_update: false\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("#cloud-config"));
        let d = check("#cloud-config\n- a\n- b\n");
        assert!(d[0].message.contains("mapping"), "{d:?}");
        let d = check("#cloud-config\nusers: [\n");
        assert!(d[0].message.contains("not valid YAML"), "{d:?}");
    }
}
