//! How `ctforge ct … --follow` reads a job's event stream as a person reads it: the current
//! step ("step 2/5 create"), a percent that moves per step and per command, and plain log
//! lines. Pure: [`Tracker::apply`] turns one [`BusEvent`] into an [`Update`]; the client decides
//! whether that becomes a terminal bar or plain lines.

use std::process::ExitCode;

use crate::events::{BusEvent, kind};

/// How a followed job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step done.
    Succeeded,
    /// A step failed.
    Failed {
        /// The failing step, if known.
        step: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// Someone cancelled the job.
    Cancelled {
        /// Who.
        by: Option<String>,
    },
}

/// What one event changes on screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Lines to print above the bar (log lines, step headings), plain text.
    pub lines: Vec<String>,
    /// The bar's message changed to this.
    pub message: Option<String>,
    /// The job's overall percent changed to this.
    pub percent: Option<u8>,
    /// The job ended.
    pub outcome: Option<Outcome>,
}

/// The follower's idea of the job: steps, the current one, the percent shown.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    total: usize,
    percent: u8,
}

impl Tracker {
    /// A tracker that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The percent shown so far (never goes backwards).
    pub fn percent(&self) -> u8 {
        self.percent
    }

    fn advance(&mut self, percent: Option<u64>, update: &mut Update) {
        if let Some(p) = percent.and_then(|p| u8::try_from(p.min(100)).ok())
            && p >= self.percent
        {
            self.percent = p;
            update.percent = Some(p);
        }
    }

    /// Reads one event.
    pub fn apply(&mut self, event: &BusEvent) -> Update {
        let mut update = Update::default();
        let data = &event.data;
        let text = |key: &str| data.get(key).and_then(serde_json::Value::as_str);
        match event.kind.as_str() {
            kind::START => {
                if let Some(steps) = data.get("steps").and_then(serde_json::Value::as_array) {
                    self.total = steps.len();
                }
                let attempt = data.get("attempt").and_then(serde_json::Value::as_i64);
                update.message = Some(match attempt {
                    Some(n) if n > 1 => format!("running (attempt {n})"),
                    _ => "running".to_owned(),
                });
            }
            kind::STEP => {
                let name = event.step.as_deref().or(text("name")).unwrap_or("?");
                let index = data
                    .get("index")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                let total = data
                    .get("total")
                    .and_then(serde_json::Value::as_u64)
                    .map_or(self.total, |t| usize::try_from(t).unwrap_or(0));
                self.total = total;
                let label = format!("step {}/{} {name}", index + 1, total);
                update.lines.push(format!("── {label}"));
                update.message = Some(label);
                let total = u64::try_from(total).unwrap_or(0);
                self.advance((index * 100).checked_div(total), &mut update);
            }
            kind::COMPLETE | kind::PROGRESS => {
                self.advance(
                    data.get("percent").and_then(serde_json::Value::as_u64),
                    &mut update,
                );
            }
            kind::LOG => {
                let line = match data {
                    serde_json::Value::String(line) => line.clone(),
                    other => text("line").map_or_else(|| other.to_string(), str::to_owned),
                };
                // Guest output reaches the user's terminal: no control sequences.
                update
                    .lines
                    .extend(line.lines().map(crate::telemetry::escape_controls));
            }
            kind::RETRY => {
                let from = text("from_step").unwrap_or("the start");
                update.lines.push(format!("── retry from {from}"));
                update.message = Some("queued".to_owned());
            }
            kind::DONE => {
                self.advance(Some(100), &mut update);
                update.message = Some("ready".to_owned());
                update.outcome = Some(Outcome::Succeeded);
            }
            kind::ERROR => {
                update.message = Some("failed".to_owned());
                update.outcome = Some(Outcome::Failed {
                    step: event
                        .step
                        .clone()
                        .or_else(|| text("step").map(str::to_owned)),
                    message: text("message").unwrap_or("the job failed").to_owned(),
                });
            }
            kind::CANCELLED => {
                update.message = Some("cancelled".to_owned());
                update.outcome = Some(Outcome::Cancelled {
                    by: text("by").map(str::to_owned),
                });
            }
            _ => {}
        }
        update
    }
}

/// The message after a failure: what failed and the CLI command that retries it.
pub fn failure_text(job_id: i64, outcome: &Outcome) -> Vec<String> {
    let head = match outcome {
        Outcome::Succeeded => return Vec::new(),
        Outcome::Failed {
            step: Some(step),
            message,
        } => format!("error: step {step} failed: {message}"),
        Outcome::Failed {
            step: None,
            message,
        } => format!("error: {message}"),
        Outcome::Cancelled { by: Some(by) } => format!("job {job_id} was cancelled by {by}"),
        Outcome::Cancelled { by: None } => format!("job {job_id} was cancelled"),
    };
    vec![
        head,
        format!("retry with: ctforge ct retry {job_id} --follow"),
    ]
}

/// Where a followed job is drawn: an indicatif bar on a terminal (log lines above it), plain
/// `[ 40%] step 2/5 create` lines otherwise, or the raw envelopes for `--output json`.
pub struct Screen {
    tracker: Tracker,
    bar: Option<indicatif::ProgressBar>,
    json: bool,
}

impl Screen {
    /// A screen for machine (`json`) or human output.
    pub fn new(json: bool) -> Self {
        let bar = (!json)
            .then(|| {
                let bar = indicatif::ProgressBar::new(100);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar
            })
            .filter(|bar| !bar.is_hidden());
        if let Some(bar) = &bar {
            bar.set_message("queued");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        Self {
            tracker: Tracker::new(),
            bar,
            json,
        }
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Shows one event (`raw` is its JSON as received); the exit code once the job ended.
    pub fn show(&mut self, job_id: i64, event: &BusEvent, raw: &str) -> Option<ExitCode> {
        if self.json {
            println!("{raw}");
            return event.is_terminal().then(|| {
                if event.kind == kind::DONE {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            });
        }
        let update = self.tracker.apply(event);
        let heading = event.kind == kind::STEP;
        for line in &update.lines {
            if heading && self.bar.is_none() {
                println!(
                    "[{:>3}%] {}",
                    self.tracker.percent(),
                    line.trim_start_matches("── ")
                );
            } else {
                self.print(line);
            }
        }
        if let Some(bar) = &self.bar {
            if let Some(p) = update.percent {
                bar.set_position(u64::from(p));
            }
            if let Some(message) = &update.message {
                bar.set_message(message.clone());
            }
        }
        let outcome = update.outcome?;
        Some(self.end(job_id, &outcome))
    }

    fn end(&mut self, job_id: i64, outcome: &Outcome) -> ExitCode {
        if *outcome == Outcome::Succeeded {
            match self.bar.take() {
                Some(bar) => bar.finish_with_message("ready"),
                None => println!("[100%] ready"),
            }
            return ExitCode::SUCCESS;
        }
        if let Some(bar) = self.bar.take() {
            bar.abandon_with_message(match outcome {
                Outcome::Cancelled { .. } => "cancelled",
                _ => "failed",
            });
        }
        for line in failure_text(job_id, outcome) {
            eprintln!("{line}");
        }
        ExitCode::FAILURE
    }

    /// The job had already ended with nothing new to show: report how, from its JSON row.
    pub fn finished_without_events(&mut self, job_id: i64, job: &serde_json::Value) -> ExitCode {
        let outcome = match job["state"].as_str() {
            Some("succeeded") => Outcome::Succeeded,
            Some("cancelled") => Outcome::Cancelled { by: None },
            _ => Outcome::Failed {
                step: job["current_step"].as_str().map(str::to_owned),
                message: job["error"].as_str().unwrap_or("the job failed").to_owned(),
            },
        };
        if self.json {
            println!("{job}");
            return if outcome == Outcome::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        self.end(job_id, &outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, step: Option<&str>, data: serde_json::Value) -> BusEvent {
        BusEvent {
            job_id: 3,
            seq: 1,
            kind: kind.to_owned(),
            step: step.map(str::to_owned),
            data,
            at: 0,
        }
    }

    #[test]
    fn steps_percent_and_plain_lines_from_envelopes() {
        let mut t = Tracker::new();
        let u = t.apply(&event(
            kind::START,
            None,
            json!({ "attempt": 1, "steps": ["a", "b"] }),
        ));
        assert_eq!(u.message.as_deref(), Some("running"));
        let u = t.apply(&event(
            kind::STEP,
            Some("b"),
            json!({ "name": "b", "index": 1, "total": 2 }),
        ));
        assert_eq!(u.message.as_deref(), Some("step 2/2 b"));
        assert_eq!(u.percent, Some(50));
        let u = t.apply(&event(kind::LOG, Some("b"), json!("hello\nworld")));
        assert_eq!(u.lines, vec!["hello", "world"]);
        let u = t.apply(&event(
            kind::PROGRESS,
            Some("b"),
            json!({ "step_percent": 50, "percent": 75 }),
        ));
        assert_eq!(u.percent, Some(75));
        // Never backwards.
        let u = t.apply(&event(kind::PROGRESS, Some("b"), json!({ "percent": 10 })));
        assert_eq!(u.percent, None);
        let u = t.apply(&event(kind::ERROR, Some("b"), json!({ "message": "boom" })));
        let outcome = u.outcome.unwrap_or(Outcome::Succeeded);
        let text = failure_text(3, &outcome);
        assert_eq!(text[0], "error: step b failed: boom");
        assert_eq!(text[1], "retry with: ctforge ct retry 3 --follow");
    }
}
