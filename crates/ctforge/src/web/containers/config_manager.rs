//! The config-manager panel of the container page: what monitoring last read about the boot
//! unit (`ctforge-apply`) — last run and result with its meaning, conflicts, the applied commit
//! or template version, and the log tail in a disclosure. Data from
//! [`crate::containers::config_manager`]; nothing here asks the container.

use maud::{Markup, html};

use crate::containers::config_manager::{ConfigManagerView, Outcome};
use crate::web::components::{self as ui, Tone};

/// The panel, or a short note when monitoring has not read the config-manager yet.
pub fn panel(view: Option<&ConfigManagerView>) -> Markup {
    let Some(view) = view else {
        return html! {
            section.card #config-manager aria-labelledby="cm-title" {
                h2 #cm-title { "Config-manager" }
                p.muted { "Not read yet: monitoring reads it on its next check (or use Refresh on the Services tab)." }
            }
        };
    };
    let tone = match view.outcome {
        Some(Outcome::Ok) => Some(Tone::Ok),
        Some(Outcome::Locked) => Some(Tone::Warn),
        Some(_) => Some(Tone::Err),
        None => None,
    };
    html! {
        section.card #config-manager aria-labelledby="cm-title" {
            h2 #cm-title { "Config-manager" }
            dl.facts {
                dt { "Last run" }
                dd {
                    @match view.last_run_ms {
                        Some(ms) => { (ui::fmt_time(ms)) }
                        None => { span.muted { "never ran" } }
                    }
                }
                dt { "Result" }
                dd data-cm-exit=[view.exit_code] {
                    @match (view.exit_code, view.meaning.as_deref()) {
                        (Some(code), Some(meaning)) => {
                            (ui::badge(tone, &format!("exit {code}"))) " " (meaning)
                        }
                        _ => { span.muted { "no result recorded" } }
                    }
                }
                dt { "Applied" }
                dd.mono {
                    @match (view.applied_commit(), view.applied.as_deref()) {
                        (Some(sha), _) => { "git commit " (sha) }
                        (None, Some(text)) => { (text) }
                        (None, None) => { span.muted { "not recorded" } }
                    }
                }
                dt { "Last success" }
                dd { (view.last_success_ms.map(ui::fmt_time).unwrap_or_else(|| "never".to_owned())) }
                dt { "Boot unit" }
                dd { "ctforge-apply.service " (view.unit_state) (if view.enabled { ", enabled" } else { ", not enabled" }) }
                dt { "Read" }
                dd { (ui::fmt_time(view.checked_at_ms)) }
            }
            @if !view.conflicts.is_empty() {
                (ui::alert(Tone::Err, &format!("Conflicts (changed here and in the template; nothing applied): {}", view.conflicts.join(", "))))
                ul.cm-conflicts aria-label="Conflicting files" {
                    @for path in &view.conflicts { li.mono { (path) } }
                }
            }
            @if view.log_tail.is_empty() {
                p.muted { "The log (/var/log/config-manager/sync.log) is empty." }
            } @else {
                (ui::disclosure(&format!("Log: last {} lines", view.log_tail.len()), html! {
                    pre.cm-log tabindex="0" aria-label="Config-manager log" { @for line in &view.log_tail { (line) "\n" } }
                }))
            }
        }
    }
}
