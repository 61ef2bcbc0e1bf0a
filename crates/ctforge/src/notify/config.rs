//! `[notifications]`: delivery limits, and `[[notifications.targets]]`, targets created on start
//! when no target of that name exists (like `[[clusters]]`; later changes are made in Settings).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::EventKind;
use super::targets::{SmtpSettings, TargetKind};
use crate::config::Secret;

/// Delivery limits and configured targets.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The same event (key) is sent to a target at most once in this many seconds.
    pub dedupe_window_secs: u64,
    /// At most this many notifications per target and minute; more are recorded as suppressed.
    pub max_per_minute: u32,
    /// Events waiting for the dispatcher; more are dropped (and counted).
    pub queue_capacity: usize,
    /// Further attempts after a failed delivery.
    pub retries: u32,
    /// Wait before the first retry; each further one waits four times longer.
    pub retry_backoff_ms: u64,
    /// Budget of one delivery attempt (HTTP request or SMTP session).
    pub timeout_secs: u64,
    /// Targets created on start if no target has their name.
    pub targets: Vec<TargetConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            dedupe_window_secs: 600,
            max_per_minute: 20,
            queue_capacity: 1000,
            retries: 3,
            retry_backoff_ms: 2000,
            timeout_secs: 10,
            targets: Vec::new(),
        }
    }
}

impl NotificationsConfig {
    /// Checks what deserialises but cannot work, naming the target.
    pub fn validate(&self) -> Result<(), String> {
        for target in &self.targets {
            target.form().validate().map_err(|(field, message)| {
                format!(
                    "[[notifications.targets]] {:?}: {field}: {message}",
                    target.name
                )
            })?;
        }
        Ok(())
    }
}

/// One `[[notifications.targets]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name.
    pub name: String,
    /// `webhook`, `ntfy`, `gotify` or `email`.
    pub kind: TargetKind,
    /// Webhook URL, ntfy topic URL or Gotify server URL.
    #[serde(default)]
    pub url: Option<String>,
    /// SMTP settings (e-mail).
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// Event kinds to send.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// For `proxmox_unreachable`: minutes without an answer before it is sent.
    #[serde(default)]
    pub unreachable_after_mins: Option<u32>,
    /// Send to it (default true).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// HMAC key (webhook), access token (ntfy, Gotify) or SMTP password.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// File holding the secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

fn enabled() -> bool {
    true
}

impl TargetConfig {
    /// The entry as the form Settings and the API take.
    pub fn form(&self) -> super::targets::TargetForm {
        super::targets::TargetForm {
            name: self.name.clone(),
            kind: self.kind,
            url: self.url.clone(),
            smtp: self.smtp.clone(),
            events: self.events.clone(),
            unreachable_after_mins: self.unreachable_after_mins,
            enabled: self.enabled,
            secret: self.secret.clone(),
            clear_secret: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_toml_are_checked_with_their_name() {
        let text = r#"
            retries = 1
            [[targets]]
            name = "ops-hook"
            kind = "webhook"
            url = "https://hooks.example.org/ctforge"
            secret = "k"
            events = ["job_failed", "proxmox_unreachable"]
            unreachable_after_mins = 10

            [[targets]]
            name = "ops-mail"
            kind = "email"
            smtp = { host = "mail.example.org", from = "ctforge@example.org", to = ["ops@example.org"] }
            events = ["job_failed"]
        "#;
        let config: NotificationsConfig = toml::from_str(text).unwrap();
        assert_eq!((config.retries, config.dedupe_window_secs), (1, 600));
        assert!(config.validate().is_ok());
        assert_eq!(
            config.targets[1].smtp.as_ref().map(SmtpSettings::port),
            Some(587)
        );
        assert_eq!(
            format!("{:?}", config.targets[0].secret),
            "Some(<redacted>)"
        );

        let bad: NotificationsConfig =
            toml::from_str("[[targets]]\nname = \"x\"\nkind = \"ntfy\"\nurl = \"mailto:a@b\"")
                .unwrap();
        let error = bad.validate().unwrap_err();
        assert!(error.contains("\"x\"") && error.contains("url"), "{error}");
        assert!(
            toml::from_str::<NotificationsConfig>("[[targets]]\nname = \"x\"\nkind = \"pager\"")
                .is_err()
        );
    }
}
