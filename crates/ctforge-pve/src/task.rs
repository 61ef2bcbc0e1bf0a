//! Waiting for Proxmox tasks (UPIDs).
//!
//! [`wait_task`] polls `GET /nodes/{node}/tasks/{upid}/status` — at once, then
//! after growing pauses ([`Backoff`]: 5 → 20 → 50 → 100 → 250 ms, capped at the
//! poll interval), so an instant task costs no oversleep and a long one few
//! requests — fetches the task log incrementally in the same loop (`start` =
//! number of lines already seen) and hands every new line to a progress
//! callback, then maps the final `exitstatus`:
//! `OK` → [`TaskExit::Success`], `WARNINGS: n` → [`TaskExit::Warnings`],
//! anything else → [`TaskExit::Error`] (REFERENCE.md §1.5).

use std::time::{Duration, Instant};

use crate::api::PveApi;
use crate::error::{PveError, Result};
use crate::types::{TaskLogLine, Upid};

/// How a stopped task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskExit {
    /// `OK`.
    Success,
    /// `WARNINGS: n` — still a success.
    Warnings(u32),
    /// Any other exit status (the error text).
    Error(String),
}

impl TaskExit {
    /// Map an `exitstatus` string.
    pub fn from_exitstatus(s: &str) -> TaskExit {
        let t = s.trim();
        if t == "OK" {
            return TaskExit::Success;
        }
        if let Some(n) = t.strip_prefix("WARNINGS:") {
            return TaskExit::Warnings(n.trim().parse().unwrap_or(0));
        }
        TaskExit::Error(t.to_string())
    }

    /// True for success with or without warnings.
    pub fn is_success(&self) -> bool {
        !matches!(self, TaskExit::Error(_))
    }

    /// `Err(PveError::TaskFailed)` for [`TaskExit::Error`], else `Ok(self)`.
    pub fn into_result(self, upid: &Upid) -> Result<TaskExit> {
        match self {
            TaskExit::Error(exitstatus) => Err(PveError::TaskFailed {
                upid: upid.to_string(),
                exitstatus,
            }),
            ok => Ok(ok),
        }
    }
}

/// What the progress callback receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskProgress {
    /// A new task log line (1-based number and text).
    Line(TaskLogLine),
    /// The task stopped with this exit.
    Finished(TaskExit),
}

/// Polling options for [`wait_task`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up after this long ([`PveError::TaskTimeout`]; the task keeps running).
    pub timeout: Duration,
    /// Longest pause between polls (the first ones are shorter, see [`Backoff`]).
    pub poll_interval: Duration,
    /// Log lines fetched per request.
    pub log_page: u64,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
            log_page: 500,
        }
    }
}

/// Pauses between status checks: short at first (most tasks end within
/// milliseconds, or within the first second), growing to `cap`. The first
/// pause is 5 ms: a task that ends at once is usually still being started
/// when its UPID is first checked, and a longer pause would be most of its
/// wait.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: usize,
    cap: Duration,
}

impl Backoff {
    /// The pauses before the cap: 5, 20, 50, 100, 250 ms.
    pub const STEPS_MS: [u64; 5] = [5, 20, 50, 100, 250];

    /// A back-off growing to `cap`.
    pub fn new(cap: Duration) -> Self {
        Backoff { next: 0, cap }
    }

    /// The next pause.
    pub fn next_pause(&mut self) -> Duration {
        let pause = match Self::STEPS_MS.get(self.next) {
            Some(ms) => Duration::from_millis(*ms).min(self.cap),
            None => self.cap,
        };
        self.next = self.next.saturating_add(1);
        pause
    }
}

/// Fetch new log lines from offset `*seen`; returns how many were new.
async fn drain_log(
    api: &dyn PveApi,
    node: &str,
    upid: &Upid,
    seen: &mut u64,
    page: u64,
    running: bool,
    progress: &mut (dyn FnMut(TaskProgress) + Send),
) -> Result<()> {
    loop {
        let log = api.task_log(node, upid, *seen, page.max(1)).await?;
        let mut new = 0u64;
        for line in log.lines {
            if line.n <= *seen {
                continue;
            }
            // An empty log reads as one "no content" line; don't count it
            // while the task still runs (real line 1 may follow).
            if running && line.n == 1 && line.t == "no content" && log.total.unwrap_or(1) <= 1 {
                continue;
            }
            *seen = line.n;
            new += 1;
            progress(TaskProgress::Line(line));
        }
        let more = log.total.is_some_and(|t| t > *seen);
        if new == 0 || !more {
            return Ok(());
        }
    }
}

/// Wait for task `upid` on `node`, streaming log lines to `progress`.
///
/// Returns the mapped exit status (use [`TaskExit::into_result`] to turn an
/// error exit into [`PveError::TaskFailed`]). Transient polling errors are
/// already retried by the client; other errors end the wait. On timeout
/// returns [`PveError::TaskTimeout`] and the task keeps running.
pub async fn wait_task(
    api: &dyn PveApi,
    node: &str,
    upid: &Upid,
    opts: WaitOptions,
    progress: &mut (dyn FnMut(TaskProgress) + Send),
) -> Result<TaskExit> {
    let started = Instant::now();
    let mut seen = 0u64;
    let mut backoff = Backoff::new(opts.poll_interval);
    loop {
        let status = api.task_status(node, upid).await?;
        let running = status.is_running();
        drain_log(api, node, upid, &mut seen, opts.log_page, running, progress).await?;
        if !running {
            let exit = TaskExit::from_exitstatus(
                status.exitstatus.as_deref().unwrap_or("unexpected status"),
            );
            progress(TaskProgress::Finished(exit.clone()));
            return Ok(exit);
        }
        let elapsed = started.elapsed();
        if elapsed >= opts.timeout {
            return Err(PveError::TaskTimeout {
                upid: upid.to_string(),
                waited_ms: elapsed.as_millis() as u64,
            });
        }
        tokio::time::sleep(backoff.next_pause().min(opts.timeout - elapsed)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let pauses: Vec<u64> = (0..7).map(|_| b.next_pause().as_millis() as u64).collect();
        assert_eq!(pauses, [5, 20, 50, 100, 250, 500, 500]);
        let mut b = Backoff::new(Duration::from_millis(60));
        let pauses: Vec<u64> = (0..5).map(|_| b.next_pause().as_millis() as u64).collect();
        assert_eq!(pauses, [5, 20, 50, 60, 60]);
    }

    #[test]
    fn maps_exit_status() {
        assert_eq!(TaskExit::from_exitstatus("OK"), TaskExit::Success);
        assert_eq!(
            TaskExit::from_exitstatus("WARNINGS: 3"),
            TaskExit::Warnings(3)
        );
        assert_eq!(
            TaskExit::from_exitstatus("unable to create CT 104 - command failed"),
            TaskExit::Error("unable to create CT 104 - command failed".into())
        );
        assert!(TaskExit::Warnings(1).is_success());
        let u = Upid::new("pve", 1, 2, 3, "vzcreate", "104", "root@pam");
        assert!(matches!(
            TaskExit::Error("x".into()).into_result(&u),
            Err(PveError::TaskFailed { .. })
        ));
    }
}
