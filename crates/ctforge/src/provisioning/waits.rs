//! The bounds of provisioning's waits ([`Limits`], from `[provisioning]`), a script's own
//! limit (`# ctforge-timeout:`), and [`settle`]: the bounded wait for systemd to finish
//! starting units, which goes on with a warning naming the units still activating.
//!
//! Why go on rather than fail when systemd does not settle: a unit that never finishes
//! starting (a network wait, a getty, a service of the template itself) does not stop
//! packages from installing or scripts from running, and failing would make every container
//! with one slow unit unusable. The job log says which units were still activating, and
//! discovery records their state.

use std::time::{Duration, Instant};

use ctforge_ssh::{RemoteExec, SshError, Stream};

use crate::config::ProvisioningConfig;
use crate::jobs::{JobContext, StepError};

/// How long each kind of wait may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// One in-guest command (package install, script, file step).
    pub command: Duration,
    /// Waiting for systemd to settle (after start, before discovery).
    pub settle: Duration,
    /// One short read-only probe (readiness, unit listings, discovery).
    pub probe: Duration,
    /// A VM's guest agent answering after start (then SSH is tried).
    pub agent: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self::from(&ProvisioningConfig::default())
    }
}

impl From<&ProvisioningConfig> for Limits {
    fn from(c: &ProvisioningConfig) -> Self {
        Self {
            command: Duration::from_secs(c.command_timeout_secs.max(1)),
            settle: Duration::from_secs(c.settle_timeout_secs),
            probe: Duration::from_secs(c.probe_timeout_secs.max(1)),
            agent: Duration::from_secs(c.agent_timeout_secs),
        }
    }
}

/// The marker of a script's own limit: a line `# ctforge-timeout: 600` (seconds, or with an
/// `s`, `m` or `h` suffix) anywhere in the script.
pub const TIMEOUT_MARKER: &str = "# ctforge-timeout:";

/// A script's own limit, when it declares one with [`TIMEOUT_MARKER`].
pub fn script_timeout(content: &str) -> Option<Duration> {
    let value = content
        .lines()
        .find_map(|l| l.trim().strip_prefix(TIMEOUT_MARKER))?
        .trim();
    let (number, unit) = match value.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&value[..i], c),
        _ => (value, 's'),
    };
    let n: u64 = number.trim().parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Units with a queued or running systemd job, from `systemctl list-jobs --no-legend`
/// (`JOB UNIT TYPE STATE`).
pub fn pending_units(list_jobs: &str) -> Vec<String> {
    let mut units: Vec<String> = list_jobs
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let job = cols.next()?;
            job.parse::<u64>().ok()?;
            cols.next().map(str::to_owned)
        })
        .collect();
    units.sort();
    units.dedup();
    units
}

/// Runs a read-only command with the probe limit; its exit code and stdout.
async fn read(channel: &dyn RemoteExec, command: &str) -> Result<(u32, String), SshError> {
    let mut stdout = String::new();
    let out = channel
        .exec(command, &mut |stream, line| {
            if stream == Stream::Stdout && stdout.len() < 64 * 1024 {
                stdout.push_str(line);
                stdout.push('\n');
            }
        })
        .await?;
    Ok((out.exit_code, stdout))
}

/// What `systemctl` says while systemd in a booting guest has no bus yet: for a moment after
/// the start, commands already run in the container (`lxc-attach`) but systemd cannot be
/// asked, and `is-system-running --wait` fails at once instead of waiting. Not settled: ask
/// again.
const NO_BUS: &str = "Failed to connect to bus";

/// systemd's queued and running jobs (`JOB UNIT TYPE STATE`, [`pending_units`]).
const LIST_JOBS: &str = "systemctl list-jobs --no-legend";

/// Waits up to `limits.settle` for systemd to finish booting
/// (`systemctl is-system-running --wait` over `settling`, a channel limited to the bound, so
/// the wait is killed in the guest; asked again while systemd has no bus yet, [`NO_BUS`]) and
/// for its job queue to empty (polled over `quick`); past the bound, logs a warning naming
/// the units still activating and returns, so the job goes on. Containers without systemd
/// settle at once. Logs how long it waited and the state systemd reached.
pub async fn settle(
    ctx: &JobContext,
    settling: &dyn RemoteExec,
    quick: &dyn RemoteExec,
    limits: &Limits,
    when: &str,
) -> Result<(), StepError> {
    let started = Instant::now();
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_millis(250));
    // The job queue is read in the same round trip once the boot is over (a settled guest
    // costs one command); `None` when the wait was cut at the bound.
    let (state, mut jobs) = loop {
        let mut state = String::new();
        let mut jobs = String::new();
        let mut no_bus = false;
        let result = settling
            .exec(
                &format!("systemctl is-system-running --wait; {LIST_JOBS}"),
                &mut |stream, line| match stream {
                    Stream::Stdout if state.is_empty() => line.trim().clone_into(&mut state),
                    Stream::Stdout => {
                        jobs.push_str(line);
                        jobs.push('\n');
                    }
                    Stream::Stderr if line.contains(NO_BUS) => no_bus = true,
                    Stream::Stderr => {}
                },
            )
            .await;
        match result {
            Ok(_) if no_bus && started.elapsed() < limits.settle => {
                tokio::time::sleep(backoff.next_pause()).await;
            }
            Ok(_) => break (state, Some(jobs)),
            Err(SshError::GuestTimeout { .. }) => break (state, None),
            Err(e) => {
                return Err(StepError::failed(format!(
                    "{when}: waiting for systemd to settle: {e}"
                )));
            }
        }
    };
    let mut backoff = ctforge_pve::Backoff::new(Duration::from_secs(1).min(limits.settle));
    loop {
        let jobs = match jobs.take() {
            Some(jobs) => jobs,
            None => {
                read(quick, LIST_JOBS)
                    .await
                    .map_err(|e| StepError::failed(format!("{when}: listing systemd jobs: {e}")))?
                    .1
            }
        };
        let units = pending_units(&jobs);
        if units.is_empty() {
            // The job log's account of where a creation's seconds go.
            let _ = ctx
                .log(format!(
                    "{when}: systemd settled ({}) in {} ms",
                    if state.is_empty() { "no state" } else { &state },
                    started.elapsed().as_millis()
                ))
                .await;
            return Ok(());
        }
        if started.elapsed() >= limits.settle {
            let message = format!(
                "WARNING: {when}: systemd did not settle within {}s; still activating: {}; continuing",
                limits.settle.as_secs(),
                units.join(", ")
            );
            tracing::warn!(job_id = ctx.job_id(), units = %units.join(","), "systemd did not settle");
            let _ = ctx.log(message).await;
            return Ok(());
        }
        tokio::time::sleep(backoff.next_pause()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_limits() {
        assert_eq!(
            script_timeout("#!/bin/sh\n# ctforge-timeout: 90\nsleep 1\n"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            script_timeout("  # ctforge-timeout: 15m"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            script_timeout("# ctforge-timeout: 2h"),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(script_timeout("# ctforge-timeout: soon"), None);
        assert_eq!(script_timeout("# ctforge-timeout: 0"), None);
        assert_eq!(script_timeout("echo hi"), None);
    }

    #[test]
    fn units_from_list_jobs() {
        let text = "123 stuck.service start running\n124 network-online.target start waiting\n\n";
        assert_eq!(
            pending_units(text),
            vec![
                "network-online.target".to_owned(),
                "stuck.service".to_owned()
            ]
        );
        assert!(pending_units("No jobs running.\n").is_empty());
    }
}
