//! The shell commands provisioning and monitoring send into a container, built from plan steps
//! with proper quoting. Pure functions, so the Review page, the tests and the executor share
//! them.

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

/// Where a deployed file's content is staged before the policy decides what to do with it:
/// a readable form of `name` (other characters as `_`) plus a hash of the exact name, so two
/// names that read the same (`a b.conf`, `a_b.conf`) never share a staged file.
pub fn staged_path(name: &str) -> String {
    format!("{STATE_DIR}/files/{}", staged_name(name))
}

/// The mode of a staged copy: what a new target gets, since `cp` gives a file it creates its
/// source's mode. Readable by all, as the library's copies from a git checkout are: a private
/// staged copy made `/srv/www/index.html` unreadable to nginx's workers (403).
pub const STAGED_MODE: u32 = 0o644;

/// The file name [`staged_path`] and [`script_path`] use for `name`.
fn staged_name(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let safe: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{safe}.{hash}")
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

/// The config-manager run on every boot (and by hand): re-applies the template ctforge pushed
/// (scripts → files → packages, the library's order) from the manifests in [`MANIFEST_DIR`],
/// with the library's lock, exit codes and conflict check.
pub const CONFIG_MANAGER: &str = include_str!("config-manager.sh");
/// Where the config-manager's manifests live: `files` (name, staged copy, target, policy; tab
/// separated), `scripts` (script paths in order), `packages.sh` (the install commands).
pub const MANIFEST_DIR: &str = "/var/lib/ctforge/manifest";
/// The config-manager's last result: `<unix time> <exit code>`.
pub const LAST_RESULT: &str = "/var/lib/ctforge/last-result";
/// The managed files in conflict at the last run, one per line.
pub const CONFLICTS: &str = "/var/lib/ctforge/conflicts";
/// What the config-manager last applied: `commit <sha>` (a git-sourced template) or
/// `template <name> <content hash>`, one line.
pub const APPLIED: &str = "/var/lib/ctforge/applied";
/// The config-manager's log (the library's path).
pub const CONFIG_MANAGER_LOG: &str = "/var/log/config-manager/sync.log";

/// The config-manager's file manifest: `name<TAB>staged<TAB>target<TAB>policy` per file.
pub fn files_manifest(files: &[(String, String, String)]) -> String {
    files
        .iter()
        .map(|(name, target, policy)| {
            format!("{name}\t{}\t{target}\t{policy}\n", staged_path(name))
        })
        .collect()
}

/// The oneshot unit running the config-manager on boot.
pub fn apply_unit() -> String {
    format!(
        "[Unit]\nDescription=ctforge config-manager: re-apply the template on boot\nAfter=local-fs.target network.target\n\n[Service]\nType=oneshot\nExecStart={APPLY_SCRIPT}\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n"
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
        // Retries for flaky mirrors and proxies; wait for a dpkg lock held by apt's own boot
        // timers instead of failing.
        "apt" => format!(
            "apt-get update -q -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 {list}"
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

/// Where a script is stored in the container (named like [`staged_path`], so distinct names
/// never collide).
pub fn script_path(name: &str) -> String {
    format!("{STATE_DIR}/scripts/{}", staged_name(name))
}

/// The version of the script runtime ([`RUNTIME`]); part of its path, so a container keeps
/// the runtime its scripts were written against until ctforge pushes a newer one.
pub const RUNTIME_VERSION: u32 = 1;
/// Where the script runtime lives in the container.
pub const RUNTIME_PATH: &str = "/usr/local/lib/ctforge/runtime-v1.sh";
/// The unversioned name of the current runtime (a symlink), for users' own shells.
pub const RUNTIME_LINK: &str = "/usr/local/lib/ctforge/runtime.sh";
/// The script runtime: the variables and functions of the library's contract
/// (`log_info`, `ensure_installed`, `run_as_user`, `save_credential`, `CONTAINER_USER`, …),
/// sourced by bash before every template script.
pub const RUNTIME: &str = include_str!("runtime.sh");
/// The library's credentials file (`save_credential` appends `KEY=VALUE` lines to it; an
/// older layout made it a directory of files). Read besides [`CREDENTIALS_DIR`].
pub const LIBRARY_CREDENTIALS: &str = "/etc/infrahaus/credentials";
/// The library's first-run marker: present once a run has completed.
pub const FIRST_RUN_MARKER: &str = "/var/log/config-manager/.first-run-complete";
/// The boot unit's configuration (the library's file, mode 600).
pub const CONFIG_ENV: &str = "/etc/config-manager/config.env";

/// Links the current runtime under its unversioned name.
pub fn link_runtime() -> String {
    format!("ln -sfn {} {}", quote(RUNTIME_PATH), quote(RUNTIME_LINK))
}

/// Installing bash where the image lacks it (Alpine and other small images): for each
/// package manager, the command telling whether it is there and the install command.
pub const BASH_INSTALLERS: [(&str, &str); 3] = [
    ("command -v apk", "apk add --no-cache bash"),
    (
        "command -v apt-get",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q bash",
    ),
    ("command -v dnf", "dnf install -y bash"),
];

/// The command running a stored script in bash with the runtime sourced first (`BASH_ENV`),
/// the credentials directory ready and the ctforge environment set.
pub fn run_script(path: &str, hostname: &str) -> String {
    format!(
        "mkdir -p {cred} && chmod 700 {cred} && CTFORGE_CREDENTIALS_DIR={cred} CTFORGE_HOSTNAME={host} BASH_ENV={rt} bash {path}",
        cred = quote(CREDENTIALS_DIR),
        host = quote(hostname),
        rt = quote(RUNTIME_PATH),
        path = quote(path)
    )
}

/// A command line of a template (a `.custom` check or install) run in bash with the runtime.
pub fn run_inline(command: &str) -> String {
    format!(
        "BASH_ENV={} bash -c {}",
        quote(RUNTIME_PATH),
        quote(command)
    )
}

/// Marks the first run complete (`CONFIG_MANAGER_FIRST_RUN` is `false` from now on).
pub fn mark_first_run() -> String {
    format!(
        "mkdir -p {dir} && date '+%Y-%m-%d %H:%M:%S' > {marker}",
        dir = quote(parent(FIRST_RUN_MARKER)),
        marker = quote(FIRST_RUN_MARKER)
    )
}

/// The boot unit's configuration file: the configured container user (a template's
/// `TEMPLATE_CONTAINER_USER`), read by the runtime as `CONFIG_CONTAINER_USER`.
///
/// With `follow` (`url`, `branch`, `path` of the template's `container-configs` in the
/// repository: sync on boot) it also names the repository the boot unit fetches itself, in
/// the library's keys `CONFIG_REPO_URL`, `CONFIG_BRANCH` and `CONFIG_PATH` (quoted: the file is
/// sourced by bash).
pub fn config_env(container_user: Option<&str>, follow: Option<(&str, &str, &str)>) -> String {
    let mut text = String::from("# Written by ctforge: the config-manager's configuration.\n");
    if let Some(user) = container_user {
        text.push_str(&format!("CONFIG_CONTAINER_USER={user}\n"));
    }
    if let Some((url, branch, path)) = follow {
        text.push_str(&format!(
            "CONFIG_REPO_URL={}\nCONFIG_BRANCH={}\nCONFIG_PATH={}\n",
            quote(url),
            quote(branch),
            quote(path)
        ));
    }
    text
}

/// The level of a runtime log line (`[YYYY-mm-dd HH:MM:SS] [LEVEL  ] message`), if it is one.
pub fn helper_level(line: &str) -> Option<&'static str> {
    let rest = line.strip_prefix("! ").unwrap_or(line).strip_prefix('[')?;
    let (stamp, rest) = rest.split_once("] [")?;
    if stamp.len() != 19 {
        return None;
    }
    let (level, _) = rest.split_once(']')?;
    match level.trim() {
        "INFO" => Some("info"),
        "WARNING" | "WARN" => Some("warning"),
        "ERROR" => Some("error"),
        _ => None,
    }
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

/// Where the config-manager records its last run (Unix seconds).
pub const LAST_APPLY: &str = "/var/lib/ctforge/last-apply";

/// The config-manager's unit name.
pub const APPLY_UNIT_NAME: &str = "ctforge-apply.service";

/// The first-boot identity unit baked into images (see `images::bake`).
pub const FIRSTBOOT_UNIT_NAME: &str = "ctforge-firstboot.service";

/// Whether `unit` is one ctforge itself installs: never a service of the template, so
/// discovery does not list it (a clone's baseline predates the image's first-boot unit).
pub fn is_own_unit(unit: &str) -> bool {
    unit == APPLY_UNIT_NAME || unit == FIRSTBOOT_UNIT_NAME
}

/// The sections of [`monitor_script`], in order.
pub const MONITOR_SECTIONS: [&str; 10] = [
    "units",
    "ports",
    "credentials",
    "last-apply",
    "apply-unit",
    "library-credentials",
    "cm-result",
    "cm-conflicts",
    "cm-applied",
    "cm-log",
];

/// The marker line prefix of [`monitor_script`] for a run's `nonce`. Content inside the
/// container cannot forge it because the nonce is random per run.
pub fn monitor_marker(nonce: &str) -> String {
    format!("@@ctforge-{nonce}:")
}

/// Monitoring's one batched command: a `sh` script printing, each between marker lines with
/// its exit status, `systemctl show` of the tracked `units`, the listening ports, the
/// credentials directory as a base64 tar archive (so file contents cannot break the
/// sections), the config-manager's last-run stamp and its unit's state, and the library's
/// credentials ([`LIBRARY_CREDENTIALS`], a file or a directory: archived as it is). Every
/// part runs even when another fails.
pub fn monitor_script(units: &[String], nonce: &str) -> String {
    monitor_script_with(units, nonce, &[])
}

/// The checksums of `paths`: a `<sha256>  <path>` line per existing file, nothing for a
/// missing one (simple commands, each path quoted).
pub fn checksums(paths: &[String]) -> String {
    let mut cmd = String::new();
    for p in paths {
        cmd.push_str(&format!("sha256sum -- {} 2>/dev/null; ", quote(p)));
    }
    cmd.push_str("true");
    cmd
}

/// [`monitor_script`] plus, when `drift_paths` is not empty, a `drift` section with the
/// [`checksums`] of those managed files (checksums only: drift's diffs are read on demand).
pub fn monitor_script_with(units: &[String], nonce: &str, drift_paths: &[String]) -> String {
    let marker = monitor_marker(nonce);
    let unit_list = units.iter().map(|u| quote(u)).collect::<Vec<_>>().join(" ");
    let units_cmd = if units.is_empty() {
        "true".to_owned()
    } else {
        format!(
            "systemctl show -p {} {unit_list} 2>&1",
            super::parse::UNIT_PROPERTIES
        )
    };
    let cred = quote(CREDENTIALS_DIR);
    let stamp = quote(LAST_APPLY);
    let parts = [
        units_cmd,
        format!("{LIST_PORTS} 2>&1"),
        format!("[ ! -d {cred} ] || tar -C {cred} -cf - . | base64"),
        format!("[ ! -f {stamp} ] || head -n 1 {stamp} 2>&1"),
        format!(
            "systemctl show -p ActiveState,SubState,Result,UnitFileState {} 2>&1",
            quote(APPLY_UNIT_NAME)
        ),
        format!(
            "[ ! -e {lib} ] || tar -C {dir} -cf - {name} | base64",
            lib = quote(LIBRARY_CREDENTIALS),
            dir = quote(parent(LIBRARY_CREDENTIALS)),
            name = quote(
                LIBRARY_CREDENTIALS
                    .rsplit('/')
                    .next()
                    .unwrap_or("credentials")
            )
        ),
        // The config-manager's own state files, one section each (plain `cat`/`head`/`tail`:
        // nothing a minimal image lacks).
        format!("[ ! -f {res} ] || cat {res}", res = quote(LAST_RESULT)),
        format!("[ ! -f {con} ] || cat {con}", con = quote(CONFLICTS)),
        format!("[ ! -f {app} ] || head -n 1 {app}", app = quote(APPLIED)),
        format!(
            "[ ! -f {log} ] || tail -n 40 {log}",
            log = quote(CONFIG_MANAGER_LOG)
        ),
    ];
    let mut script = String::new();
    for (name, command) in MONITOR_SECTIONS.iter().zip(parts) {
        script.push_str(&format!(
            "echo {}\n{command}\necho \"{}rc:$?\"\n",
            quote(&format!("{marker}{name}")),
            marker
        ));
    }
    if !drift_paths.is_empty() {
        script.push_str(&format!(
            "echo {}\n{}\necho \"{}rc:$?\"\n",
            quote(&format!("{marker}drift")),
            checksums(drift_paths),
            marker
        ));
    }
    script.push_str(&format!("echo {}\n", quote(&format!("{marker}end"))));
    script
}

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
        let staged = staged_path("../../etc/passwd");
        assert!(
            staged.starts_with("/var/lib/ctforge/files/.._.._etc_passwd."),
            "{staged}"
        );
        assert_eq!(
            staged.matches('/').count(),
            5,
            "stays in the staging dir: {staged}"
        );
    }

    #[test]
    fn names_that_read_the_same_are_staged_apart() {
        let a = "a b$(id)'q`x`.conf";
        let b = "a_b_(id)_q_x_.conf";
        assert_ne!(staged_path(a), staged_path(b));
        assert_ne!(script_path(a), script_path(b));
        assert_eq!(
            staged_path(a),
            staged_path(a),
            "stable across runs (boot re-apply)"
        );
        assert!(!staged_path(a).contains(['$', '\'', '`', ' ', '(']));
    }

    #[test]
    fn monitor_script_quotes_units_and_marks_every_section() {
        let script = monitor_script(&["a b.service".into(), "$(reboot).service".into()], "n1");
        assert!(
            script.contains("'a b.service' '$(reboot).service'"),
            "{script}"
        );
        for name in MONITOR_SECTIONS {
            assert!(
                script.contains(&format!("echo @@ctforge-n1:{name}\n")),
                "{script}"
            );
        }
        assert_eq!(
            script.matches("echo \"@@ctforge-n1:rc:$?\"").count(),
            MONITOR_SECTIONS.len()
        );
        assert!(script.ends_with("echo @@ctforge-n1:end\n"));
        assert!(monitor_script(&[], "n").contains("@@ctforge-n:units\ntrue\n"));
    }

    #[test]
    fn helper_lines_carry_their_level() {
        assert_eq!(
            helper_level("[2026-01-02 03:04:05] [WARNING]   Memory is below recommended 2GB."),
            Some("warning")
        );
        assert_eq!(
            helper_level("[2026-01-02 03:04:05] [INFO   ] x"),
            Some("info")
        );
        assert_eq!(
            helper_level("! [2026-01-02 03:04:05] [ERROR  ] x"),
            Some("error")
        );
        assert_eq!(helper_level("[x] [WARNING] not a stamp"), None);
        assert_eq!(helper_level("plain output"), None);
    }

    #[test]
    fn scripts_run_in_bash_with_the_runtime() {
        let cmd = run_script("/var/lib/ctforge/scripts/00-a.sh", "h");
        assert!(
            cmd.ends_with("BASH_ENV=/usr/local/lib/ctforge/runtime-v1.sh bash /var/lib/ctforge/scripts/00-a.sh"),
            "{cmd}"
        );
        for name in [
            "log_info",
            "log_warn",
            "log_error",
            "is_installed",
            "ensure_installed",
            "wait_for_apt_lock",
            "run_as_user",
            "generate_password",
            "save_credential",
            "detect_container_os",
            "detect_container_user",
            "detect_package_manager",
            "detect_first_run",
            "mark_first_run_complete",
            "export_script_env",
        ] {
            assert!(
                RUNTIME.contains(&format!("\n{name}() {{")),
                "{name} missing"
            );
        }
        assert_eq!(
            config_env(Some("dev"), None).lines().last(),
            Some("CONFIG_CONTAINER_USER=dev")
        );
    }

    #[test]
    fn policies_differ() {
        assert!(apply_file("/s", "/etc/f", "default").contains("[ ! -e /etc/f ]"));
        assert!(apply_file("/s", "/etc/f", "backup").contains(".bak."));
        assert!(!apply_file("/s", "/etc/f", "replace").contains("[ "));
    }
}
