//! The read-only live view of a guest's boot log: `journalctl -b -f` (or the syslog where the
//! guest has no journal) over the `pct` channel, line by line. Reading a guest's log is reading
//! inside the guest, so it needs what the console needs (VM.Audit and VM.Console on
//! `/vms/<vmid>`). The command is bounded inside the guest ([`FOLLOW_LIMIT`], `timeout -k`), so
//! a viewer who goes away leaves nothing running for long.

use std::time::Duration;

use ctforge_ssh::Stream;
use tokio::sync::mpsc;

use super::Target;
use crate::auth::CurrentUser;
use crate::authz::{REVEAL, Rights, vm_path};
use crate::error::AppError;
use crate::state::AppState;

/// How long one view follows the log before the guest ends the command.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(300);
/// Lines of history sent first.
pub const HISTORY_LINES: u32 = 200;

/// The command run in the guest (quoted constants only; nothing from the user).
pub fn command() -> String {
    format!(
        "if command -v journalctl >/dev/null 2>&1; then journalctl -b --no-pager -n {n} -f; \
         else tail -n {n} -F /var/log/syslog /var/log/messages 2>/dev/null; fi",
        n = HISTORY_LINES
    )
}

/// One line of the view.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct JournalLine {
    /// `stdout`, `stderr`, or `end` (the view ended; `line` says why).
    pub stream: String,
    /// The text.
    pub line: String,
}

/// Starts following the guest's log; lines arrive on the receiver until the command ends,
/// the limit is reached, or the receiver is dropped.
pub async fn follow(
    state: &AppState,
    user: &CurrentUser,
    target: &Target,
) -> Result<mpsc::Receiver<JournalLine>, AppError> {
    Rights::of(state, user, &target.cluster)?
        .require(&vm_path(target.vmid), REVEAL)
        .await?;
    let session = state
        .guests
        .connect(&target.cluster)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot reach the node over SSH: {e}")))?;
    let channel = session.channel(target.vmid, Some(FOLLOW_LIMIT));
    let (tx, rx) = mpsc::channel(512);
    tokio::spawn(async move {
        let lines = tx.clone();
        let mut on_line = move |stream: Stream, line: &str| {
            let stream = match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            };
            // A viewer that cannot keep up loses lines rather than stalling the channel.
            let _ = lines.try_send(JournalLine {
                stream: stream.to_owned(),
                line: line.to_owned(),
            });
        };
        let end = match channel.exec(&command(), &mut on_line).await {
            Ok(out) => format!("the log view ended (exit {})", out.exit_code),
            Err(e) => format!("the log view ended: {e}"),
        };
        let _ = tx
            .send(JournalLine {
                stream: "end".to_owned(),
                line: end,
            })
            .await;
    });
    Ok(rx)
}
