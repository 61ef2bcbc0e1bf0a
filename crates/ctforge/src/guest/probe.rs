//! The batched in-guest probe both monitoring and provisioning's discovery run: ONE command
//! ([`commands::monitor_script`]) prints, between marker lines carrying a per-run nonce,
//! `systemctl show` of the tracked units, the listening ports, the credentials directory (a
//! base64 tar archive) and the config-manager's last run; [`parse_report`] turns that into a
//! [`Report`] whose parts each carry their own `Result`, so one part failing (`ss` missing)
//! never hides the others. Only a failure of the whole command is an error ([`MonitorError`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ctforge_ssh::{RemoteExec, SshError, Stream};
use serde::Serialize;

use super::commands;
use super::parse::{self, Listener, UnitState};
use crate::secrets::Plain;
use crate::storage::StoreError;

/// Longest time the batched command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Most stdout bytes kept from the batched command.
const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// The config-manager's state inside the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ConfigManager {
    /// Last time `ctforge-apply` ran to completion (Unix ms), if ever.
    pub last_apply_ms: Option<i64>,
    /// `ctforge-apply.service` ActiveState.
    pub active_state: String,
    /// Its SubState.
    pub sub_state: String,
    /// Its last `Result` (`success`, `exit-code`, …).
    pub result: String,
    /// Whether it runs on boot.
    pub enabled: bool,
    /// Exit code of its last run (0 ok, 1 error, 2 locked, 3 configuration, 4 source
    /// unavailable, 5 conflict), when it ran.
    #[serde(default)]
    pub last_exit: Option<i32>,
    /// When that run ended (Unix ms).
    #[serde(default)]
    pub last_run_ms: Option<i64>,
    /// Managed files in conflict at the last run.
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// The end of its log (`/var/log/config-manager/sync.log`).
    #[serde(default)]
    pub log_tail: Vec<String>,
    /// What it last applied (`commit <sha>` or `template <name> <hash>`), when recorded.
    #[serde(default)]
    pub applied: Option<String>,
}

/// What one batched check found; each part succeeded or failed on its own.
#[derive(Debug)]
pub struct Report {
    /// `systemctl show` of the tracked units.
    pub units: Result<Vec<UnitState>, String>,
    /// Listening TCP ports.
    pub ports: Result<Vec<Listener>, String>,
    /// Credential files (name, value).
    pub credentials: Result<Vec<(String, Plain)>, String>,
    /// The config-manager's last run and unit.
    pub config_manager: Result<ConfigManager, String>,
    /// Checksums of the managed files asked for (`check_with`), by target path; `None` when
    /// none were asked for or the section failed.
    pub drift_sums: Option<HashMap<String, String>>,
    /// Wall time of the command.
    pub duration: Duration,
}

impl Report {
    /// Per-part status for the API and the UI: `(part, error)` for each failed part.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Err(e) = &self.units {
            out.push(("units", e.as_str()));
        }
        if let Err(e) = &self.ports {
            out.push(("ports", e.as_str()));
        }
        if let Err(e) = &self.credentials {
            out.push(("credentials", e.as_str()));
        }
        if let Err(e) = &self.config_manager {
            out.push(("config_manager", e.as_str()));
        }
        out
    }
}

/// The whole check could not run.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// No SSH session to the node.
    #[error("SSH to node {node} failed: {message}")]
    Ssh {
        /// Node.
        node: String,
        /// Why.
        message: String,
    },
    /// The command could not be run or did not finish.
    #[error("the check could not run in CT {vmid}: {source}")]
    Transport {
        /// CT.
        vmid: u32,
        /// Why.
        source: SshError,
    },
    /// The command ran but printed none of its sections (`pct exec` refused, no shell).
    #[error("the check printed nothing in CT {vmid} (exit {exit_code}){detail}")]
    NoOutput {
        /// CT.
        vmid: u32,
        /// Exit status.
        exit_code: u32,
        /// `: <last lines>` or empty.
        detail: String,
    },
    /// The guest connector has no channel into this kind of guest.
    #[error(
        "the check cannot reach inside {what} {vmid}: no channel into it (a VM needs the QEMU guest agent channel)"
    )]
    NoChannel {
        /// `VM` or `CT`.
        what: &'static str,
        /// Guest id.
        vmid: u32,
    },
    /// A VM's guest agent does not answer and its SSH fallback cannot be used.
    #[error(
        "the check cannot reach inside VM {vmid}: its guest agent does not answer ({agent}), and SSH cannot replace it: {ssh}"
    )]
    NoAgent {
        /// Guest id.
        vmid: u32,
        /// What the agent answered.
        agent: String,
        /// Why SSH is not possible.
        ssh: String,
    },
    /// The records could not be updated.
    #[error("cannot record the check's result: {0}")]
    Store(#[from] StoreError),
}

struct Section {
    body: String,
    rc: Option<u32>,
}

/// Splits the batched command's output into its sections by the run's markers.
fn sections(stdout: &str, nonce: &str) -> HashMap<String, Section> {
    let marker = commands::monitor_marker(nonce);
    let rc_prefix = format!("{marker}rc:");
    let mut out: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(rc) = line.strip_prefix(&rc_prefix) {
            if let Some(name) = current.take()
                && let Some(section) = out.get_mut(&name)
            {
                section.rc = rc.trim().parse().ok();
            }
        } else if let Some(name) = line.strip_prefix(&marker) {
            current = Some(name.to_owned());
            out.insert(
                name.to_owned(),
                Section {
                    body: String::new(),
                    rc: None,
                },
            );
        } else if let Some(name) = &current
            && let Some(section) = out.get_mut(name)
        {
            section.body.push_str(line);
            section.body.push('\n');
        }
    }
    out
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
}

/// A section's body when its command succeeded, else the error explaining why not.
fn section_body<'a>(
    all: &'a HashMap<String, Section>,
    name: &str,
    what: &str,
) -> Result<&'a str, String> {
    let section = all
        .get(name)
        .ok_or_else(|| format!("{what}: missing from the output (the check stopped before it)"))?;
    match section.rc {
        Some(0) => Ok(&section.body),
        Some(127) => Err(format!(
            "{what}: the command is not installed in the container ({})",
            last_line(&section.body)
        )),
        Some(rc) => Err(format!(
            "{what}: exited with {rc} ({})",
            last_line(&section.body)
        )),
        None => Err(format!("{what}: did not finish")),
    }
}

/// Parses the batched command's stdout into a report (pure; `check` runs the command).
pub fn parse_report(stdout: &str, nonce: &str, duration: Duration) -> Option<Report> {
    let all = sections(stdout, nonce);
    if all.is_empty() {
        return None;
    }
    let units = section_body(&all, "units", "systemctl show").map(parse::parse_show);
    let ports = section_body(&all, "ports", "ss -tlnp").map(parse::parse_ports);
    let credentials = section_body(&all, "credentials", "reading the credentials")
        .and_then(|body| {
            parse::parse_credentials_archive(body)
                .map_err(|e| format!("reading the credentials: {e}"))
        })
        .map(|mut list| {
            // The library's credentials (read when the section is there); ctforge's own
            // directory wins on a name both have.
            let library = all
                .get("library-credentials")
                .filter(|s| s.rc == Some(0))
                .and_then(|s| parse::parse_library_credentials(&s.body).ok())
                .unwrap_or_default();
            for (name, value) in library {
                if !list.iter().any(|(n, _)| *n == name) {
                    list.push((name, value));
                }
            }
            list.sort();
            list.into_iter()
                .map(|(name, value)| (name, Plain::new(value)))
                .collect()
        });
    let last_apply = section_body(&all, "last-apply", "reading the config-manager's last run")
        .and_then(|body| {
            let text = body.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<i64>()
                .map(|secs| Some(secs.saturating_mul(1000)))
                .map_err(|_| {
                    format!(
                        "{} holds {:?}, not a Unix time",
                        commands::LAST_APPLY,
                        text.chars().take(40).collect::<String>()
                    )
                })
        });
    let apply_unit =
        section_body(&all, "apply-unit", "systemctl show ctforge-apply.service").map(|body| {
            parse::show_blocks(body)
                .into_iter()
                .next()
                .unwrap_or_default()
        });
    let config_manager = match (last_apply, apply_unit) {
        (Ok(last_apply_ms), Ok(unit)) => {
            let get = |k: &str| unit.get(k).cloned().unwrap_or_default();
            let mut state = ConfigManager {
                last_apply_ms,
                active_state: get("ActiveState"),
                sub_state: get("SubState"),
                result: get("Result"),
                enabled: get("UnitFileState") == "enabled",
                last_exit: None,
                last_run_ms: None,
                conflicts: Vec::new(),
                log_tail: Vec::new(),
                applied: None,
            };
            // Its own state files (older containers have none: the fields stay empty).
            let body = |name: &str| {
                all.get(name)
                    .filter(|s| s.rc == Some(0))
                    .map(|s| s.body.as_str())
                    .unwrap_or_default()
            };
            if let Some(line) = body("cm-result").lines().next() {
                let mut words = line.split_whitespace();
                state.last_run_ms = words
                    .next()
                    .and_then(|t| t.parse::<i64>().ok())
                    .map(|t| t.saturating_mul(1000));
                state.last_exit = words.next().and_then(|c| c.parse().ok());
            }
            state.conflicts = body("cm-conflicts")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            state.applied = body("cm-applied")
                .lines()
                .next()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned);
            state.log_tail = body("cm-log").lines().map(str::to_owned).collect();
            Ok(state)
        }
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let drift_sums = all.get("drift").filter(|s| s.rc == Some(0)).map(|s| {
        s.body
            .lines()
            .filter_map(|line| {
                let (sum, path) = line.split_once("  ")?;
                (sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| (path.to_owned(), sum.to_ascii_lowercase()))
            })
            .collect()
    });
    Some(Report {
        units,
        ports,
        credentials,
        config_manager,
        drift_sums,
        duration,
    })
}

/// Runs the batched check for `units` over `channel` (CT `vmid`).
pub async fn check(
    channel: &dyn RemoteExec,
    vmid: u32,
    units: &[String],
) -> Result<Report, MonitorError> {
    check_with(channel, vmid, units, &[]).await
}

/// [`check`], plus the checksums of the managed files `drift_paths` ([`Report::drift_sums`]).
pub async fn check_with(
    channel: &dyn RemoteExec,
    vmid: u32,
    units: &[String],
    drift_paths: &[String],
) -> Result<Report, MonitorError> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let script = commands::monitor_script_with(units, &nonce, drift_paths);
    let mut stdout = String::new();
    let mut stderr: Vec<String> = Vec::new();
    let started = Instant::now();
    let output = {
        let mut on_line = |stream: Stream, line: &str| match stream {
            Stream::Stdout if stdout.len() < MAX_OUTPUT => {
                stdout.push_str(line);
                stdout.push('\n');
            }
            Stream::Stdout => {}
            Stream::Stderr => {
                if stderr.len() >= 5 {
                    stderr.remove(0);
                }
                stderr.push(line.to_owned());
            }
        };
        channel
            .exec(&script, &mut on_line)
            .await
            .map_err(|source| MonitorError::Transport { vmid, source })?
    };
    let duration = started.elapsed();
    parse_report(&stdout, &nonce, duration).ok_or_else(|| MonitorError::NoOutput {
        vmid,
        exit_code: output.exit_code,
        detail: if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.join(" / "))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(nonce: &str, parts: &[(&str, &str, u32)], end: bool) -> String {
        let m = commands::monitor_marker(nonce);
        let mut s = String::new();
        for (name, body, rc) in parts {
            s.push_str(&format!("{m}{name}\n{body}{m}rc:{rc}\n"));
        }
        if end {
            s.push_str(&format!("{m}end\n"));
        }
        s
    }

    #[test]
    fn config_manager_state_and_library_credentials_are_read() {
        let library = {
            let mut builder = tar::Builder::new(Vec::new());
            let body = b"# saved\nCODE_SERVER_PASSWORD=pw1\n";
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            builder
                .append_data(&mut h, "credentials", &body[..])
                .unwrap();
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(builder.into_inner().unwrap())
        };
        let text = output(
            "n",
            &[
                ("units", "", 0),
                ("ports", "", 0),
                ("credentials", "", 0),
                ("last-apply", "1700000000\n", 0),
                (
                    "apply-unit",
                    "ActiveState=failed\nSubState=failed\nResult=exit-code\nUnitFileState=enabled\n",
                    0,
                ),
                ("library-credentials", &format!("{library}\n"), 0),
                ("cm-result", "1700000100 5\n", 0),
                ("cm-conflicts", "/etc/app.conf\n", 0),
                ("cm-applied", "commit 0123456789abcdef\n", 0),
                ("cm-log", "[x] [ERROR  ] conflict\n", 0),
            ],
            true,
        );
        let report = parse_report(&text, "n", Duration::from_millis(1)).unwrap();
        let cm = report.config_manager.unwrap();
        assert_eq!(
            (cm.last_exit, cm.last_run_ms, cm.conflicts.as_slice()),
            (
                Some(5),
                Some(1_700_000_100_000),
                ["/etc/app.conf".to_owned()].as_slice()
            )
        );
        assert_eq!(cm.log_tail, ["[x] [ERROR  ] conflict"]);
        assert_eq!(cm.applied.as_deref(), Some("commit 0123456789abcdef"));
        let creds = report.credentials.unwrap();
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].0, "CODE_SERVER_PASSWORD");
        assert_eq!(creds[0].1.expose(), "pw1");
    }

    #[test]
    fn parts_fail_independently() {
        let text = output(
            "abc",
            &[
                (
                    "units",
                    "Id=nginx.service\nActiveState=inactive\nSubState=dead\nUnitFileState=enabled\nMainPID=0\n",
                    0,
                ),
                ("ports", "sh: 1: ss: not found\n", 127),
                ("credentials", "", 0),
                ("last-apply", "1700000000\n", 0),
                (
                    "apply-unit",
                    "ActiveState=active\nSubState=exited\nResult=success\nUnitFileState=enabled\n",
                    0,
                ),
            ],
            true,
        );
        let report = parse_report(&text, "abc", Duration::from_millis(5)).unwrap();
        assert_eq!(report.units.as_ref().unwrap()[0].active, "inactive");
        let ports = report.ports.as_ref().unwrap_err();
        assert!(
            ports.contains("ss -tlnp")
                && ports.contains("not installed")
                && ports.contains("ss: not found"),
            "{ports}"
        );
        assert!(report.credentials.as_ref().unwrap().is_empty());
        let cm = report.config_manager.as_ref().unwrap();
        assert_eq!(cm.last_apply_ms, Some(1_700_000_000_000));
        assert_eq!((cm.result.as_str(), cm.enabled), ("success", true));
        assert_eq!(report.failures().len(), 1);
    }

    #[test]
    fn forged_markers_and_missing_sections() {
        // A section body cannot fake another run's marker, and a cut-off output fails the
        // parts it did not reach.
        let text = output(
            "n1",
            &[
                (
                    "units",
                    "@@ctforge-evil:rc:0\nId=a.service\nActiveState=active\n",
                    0,
                ),
                ("ports", "", 0),
            ],
            false,
        );
        let report = parse_report(&text, "n1", Duration::ZERO).unwrap();
        assert_eq!(report.units.as_ref().unwrap().len(), 1);
        assert!(report.ports.as_ref().unwrap().is_empty());
        assert!(report.credentials.as_ref().unwrap_err().contains("missing"));
        assert!(report.config_manager.is_err());
        let bad = output("n2", &[("last-apply", "garbage\n", 0)], true);
        let report = parse_report(&bad, "n2", Duration::ZERO).unwrap();
        assert!(
            report
                .config_manager
                .as_ref()
                .unwrap_err()
                .contains("not a Unix time"),
            "{:?}",
            report.config_manager
        );
        assert!(parse_report("pct: CT 100 not running\n", "n3", Duration::ZERO).is_none());
    }
}
