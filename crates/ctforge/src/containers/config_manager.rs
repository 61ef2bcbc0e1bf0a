//! The config-manager panel's data: what monitoring last read about a container's boot unit
//! (`ctforge-apply`: last run, exit code and its meaning, conflicts, what it applied, the log
//! tail), kept in `container_config_manager` so the container page and
//! `GET /api/v1/containers/{id}` show it without asking the container again.

use serde::{Deserialize, Serialize};

use crate::guest::probe::ConfigManager;
use crate::storage::{Store, StoreError};

/// What an exit code of the config-manager means (the library's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 0: applied.
    Ok,
    /// 1: a script, a file or a package failed.
    Error,
    /// 2: another run held the lock.
    Locked,
    /// 3: its configuration is missing or unreadable.
    Configuration,
    /// 4: the template (or its git source, with no cached copy) is unavailable.
    SourceUnavailable,
    /// 5: a managed file changed here and in the template; nothing was applied.
    Conflict,
    /// Any other code.
    Unknown,
}

impl Outcome {
    /// The outcome of exit code `code`.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Locked,
            3 => Self::Configuration,
            4 => Self::SourceUnavailable,
            5 => Self::Conflict,
            _ => Self::Unknown,
        }
    }

    /// What a user should read about it.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Ok => "applied",
            Self::Error => "failed: a script, file or package step failed (see the log)",
            Self::Locked => "skipped: another run held the lock",
            Self::Configuration => {
                "configuration error: /etc/config-manager/config.env is missing or unreadable"
            }
            Self::SourceUnavailable => {
                "template unavailable: the source could not be fetched and no copy is cached"
            }
            Self::Conflict => {
                "conflict, nothing applied: keep or discard the local change of the files listed"
            }
            Self::Unknown => "unexpected exit code",
        }
    }
}

/// The config-manager panel (`ContainerDetail::config_manager`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigManagerView {
    /// When monitoring read this (Unix ms).
    pub checked_at_ms: i64,
    /// When the last run ended (Unix ms), if it ever ran.
    pub last_run_ms: Option<i64>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// What the exit code means.
    pub outcome: Option<Outcome>,
    /// The same, in words.
    pub meaning: Option<String>,
    /// Last successful run (Unix ms).
    pub last_success_ms: Option<i64>,
    /// Managed files in conflict at the last run.
    pub conflicts: Vec<String>,
    /// What it applied: `commit <sha>` for a template it follows in git, else
    /// `template <name> <content hash>`.
    pub applied: Option<String>,
    /// Whether `ctforge-apply.service` runs on boot.
    pub enabled: bool,
    /// The unit's state (`active (exited)`, `failed`, …).
    pub unit_state: String,
    /// The end of its log (`/var/log/config-manager/sync.log`), oldest first.
    pub log_tail: Vec<String>,
}

impl ConfigManagerView {
    fn of(state: &ConfigManager, checked_at_ms: i64) -> Self {
        let outcome = state.last_exit.map(Outcome::from_code);
        let unit_state = if state.sub_state.is_empty() {
            state.active_state.clone()
        } else {
            format!("{} ({})", state.active_state, state.sub_state)
        };
        Self {
            checked_at_ms,
            last_run_ms: state.last_run_ms,
            exit_code: state.last_exit,
            outcome,
            meaning: outcome.map(|o| o.meaning().to_owned()),
            last_success_ms: state.last_apply_ms,
            conflicts: state.conflicts.clone(),
            applied: state.applied.clone(),
            enabled: state.enabled,
            unit_state,
            log_tail: state.log_tail.clone(),
        }
    }

    /// The applied commit (12 hex digits) when the template is followed in git.
    pub fn applied_commit(&self) -> Option<&str> {
        let sha = self.applied.as_deref()?.strip_prefix("commit ")?.trim();
        Some(sha.get(..12).unwrap_or(sha))
    }
}

/// Records what monitoring read (the probe's config-manager part) for `container_id`.
pub async fn record(
    store: &dyn Store,
    container_id: i64,
    state: &ConfigManager,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(state).unwrap_or_default();
    store.put_config_manager_state(container_id, &json).await
}

/// The last recorded state of `container_id`, if monitoring ever read one. A row this version
/// cannot read counts as none (the next check replaces it).
pub async fn load(
    store: &dyn Store,
    container_id: i64,
) -> Result<Option<ConfigManagerView>, StoreError> {
    let Some((json, checked_at)) = store.get_config_manager_state(container_id).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str::<ConfigManager>(&json)
        .ok()
        .map(|state| ConfigManagerView::of(&state, checked_at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_have_the_library_meanings() {
        let codes: Vec<Outcome> = (0..=6).map(Outcome::from_code).collect();
        assert_eq!(
            codes,
            [
                Outcome::Ok,
                Outcome::Error,
                Outcome::Locked,
                Outcome::Configuration,
                Outcome::SourceUnavailable,
                Outcome::Conflict,
                Outcome::Unknown
            ]
        );
        let view = ConfigManagerView {
            checked_at_ms: 0,
            last_run_ms: None,
            exit_code: None,
            outcome: None,
            meaning: None,
            last_success_ms: None,
            conflicts: Vec::new(),
            applied: Some("commit 0123456789abcdef0123".to_owned()),
            enabled: true,
            unit_state: String::new(),
            log_tail: Vec::new(),
        };
        assert_eq!(view.applied_commit(), Some("0123456789ab"));
    }
}
