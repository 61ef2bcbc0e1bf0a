//! The shell commands provisioning sends into a container, built from plan steps with proper
//! quoting. Pure functions, so the Review page, the tests and the executor share them.

use ctforge_ssh::quote;

/// Where scripts and the config-manager live inside the container.
pub const STATE_DIR: &str = "/var/lib/ctforge";
/// Where scripts leave credentials for ctforge to collect.
pub const CREDENTIALS_DIR: &str = "/etc/ctforge/credentials";
/// The config-manager script.
pub const APPLY_SCRIPT: &str = "/usr/local/sbin/ctforge-apply";
/// The config-manager's systemd unit.
pub const APPLY_UNIT: &str = "/etc/systemd/system/ctforge-apply.service";

/// Parent directory of an absolute path.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Where a deployed file's content is staged before the policy decides what to do with it.
pub fn staged_path(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{STATE_DIR}/files/{safe}")
}

/// The boot-time shell fragment applying one staged file by its policy: `replace` always
/// writes, `default` only when the target is missing, `backup` copies an existing, different
/// target to `<target>.bak.<timestamp>` first. (At provisioning time the executor applies the
/// same policies step by step, so every decision is logged.)
pub fn apply_file(staged: &str, target: &str, policy: &str) -> String {
    let (s, t, dir) = (quote(staged), quote(target), quote(parent(target)));
    match policy {
        "default" => format!("mkdir -p {dir}\nif [ ! -e {t} ]; then cp {s} {t}; fi"),
        "backup" => format!(
            "mkdir -p {dir}\nif [ -e {t} ] && ! cmp -s {s} {t}; then cp -p {t} {t}.bak.$(date +%Y%m%d%H%M%S); fi\ncp {s} {t}"
        ),
        _ => format!("mkdir -p {dir}\ncp {s} {t}"),
    }
}

/// The config-manager: one script re-applying every file by its policy, run on every boot.
pub fn apply_script(files: &[(String, String, String)]) -> String {
    let mut script = String::from(
        "#!/bin/sh\n# Written by ctforge: re-applies the template's files on boot.\nset -e\n",
    );
    for (name, target, policy) in files {
        script.push_str(&apply_file(&staged_path(name), target, policy));
        script.push('\n');
    }
    script.push_str(&format!(
        "date +%s > {}\n",
        quote(&format!("{STATE_DIR}/last-apply"))
    ));
    script
}

/// The oneshot unit running the config-manager on boot.
pub fn apply_unit() -> String {
    format!(
        "[Unit]\nDescription=ctforge: re-apply template files\nAfter=local-fs.target\n\n[Service]\nType=oneshot\nExecStart={APPLY_SCRIPT}\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// The command installing `packages` with `manager`.
pub fn install(manager: &str, packages: &[String]) -> String {
    let list = packages
        .iter()
        .map(|p| quote(p))
        .collect::<Vec<_>>()
        .join(" ");
    match manager {
        "apt" => format!(
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {list}"
        ),
        "apk" => format!("apk add --no-cache {list}"),
        "dnf" => format!("dnf install -y {list}"),
        "npm" => format!("npm install -g {list}"),
        "pip" => format!("pip3 install --break-system-packages {list} || pip3 install {list}"),
        other => format!(
            "echo {} >&2; exit 2",
            quote(&format!("unknown package manager {other}"))
        ),
    }
}

/// Where a script is stored in the container.
pub fn script_path(name: &str) -> String {
    format!(
        "{STATE_DIR}/scripts/{}",
        staged_path(name).rsplit('/').next().unwrap_or("script")
    )
}

/// The command running a stored script with the ctforge environment.
pub fn run_script(path: &str, hostname: &str) -> String {
    format!(
        "mkdir -p {cred} && chmod 700 {cred} && CTFORGE_CREDENTIALS_DIR={cred} CTFORGE_HOSTNAME={host} sh {path}",
        cred = quote(CREDENTIALS_DIR),
        host = quote(hostname),
        path = quote(path)
    )
}

/// Lists the service units systemd knows (first column is the unit name).
pub const LIST_UNITS: &str = "systemctl list-units --type=service --all --no-legend --plain";

/// Where the units present before provisioning are recorded.
pub const BASELINE: &str = "/var/lib/ctforge/baseline-units";

/// One batched `systemctl show` for the tracked units.
pub fn show_units(units: &[String]) -> String {
    let unit_list = units.iter().map(|u| quote(u)).collect::<Vec<_>>().join(" ");
    format!("systemctl show -p Id,ActiveState,SubState,UnitFileState,MainPID {unit_list}")
}

/// Listening TCP sockets with their processes.
pub const LIST_PORTS: &str = "ss -tlnp";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_quoted() {
        let cmd = apply_file(
            "/var/lib/ctforge/files/x",
            "/etc/a b/$(reboot);'q'\nz",
            "replace",
        );
        assert!(cmd.contains("'/etc/a b/$(reboot);'\\''q'\\''\nz'"), "{cmd}");
        let words = shell_words::split(&install("apt", &["a b".into(), "$(x)".into()])).unwrap();
        assert!(words.contains(&"a b".to_owned()) && words.contains(&"$(x)".to_owned()));
        assert_eq!(
            staged_path("../../etc/passwd"),
            "/var/lib/ctforge/files/.._.._etc_passwd"
        );
    }

    #[test]
    fn policies_differ() {
        assert!(apply_file("/s", "/etc/f", "default").contains("[ ! -e /etc/f ]"));
        assert!(apply_file("/s", "/etc/f", "backup").contains(".bak."));
        assert!(!apply_file("/s", "/etc/f", "replace").contains("[ "));
    }
}
