//! Notification targets: their typed form, validation, and the admin use-cases behind
//! Settings → Notifications and `/api/v1/notifications/…` (list, create, update, delete, test,
//! deliveries), each audited; plus the start-up bootstrap of `[[notifications.targets]]`.
//!
//! A target's secret (webhook HMAC key, ntfy/Gotify token, SMTP password) is sealed with the
//! keyring before it is stored and never leaves ctforge again: views say only whether one is set.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::EventKind;
use super::transport::DeliveryError;
use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::config::Secret;
use crate::error::AppError;
use crate::secrets::{Keyring, Plain};
use crate::state::AppState;
use crate::storage::model::{NotificationDelivery, NotificationTargetInput, NotificationTargetRow};
use crate::storage::{Store, StoreError};

/// How a target is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// HTTP POST of the event as JSON, optionally signed (`X-Ctforge-Signature: sha256=<hex>`).
    Webhook,
    /// HTTP POST of the text to an ntfy topic URL, optionally with an access token.
    Ntfy,
    /// Gotify's `POST /message` with an application token.
    Gotify,
    /// E-mail over SMTP.
    Email,
}

impl TargetKind {
    /// Every kind, in display order.
    pub const ALL: [TargetKind; 4] = [Self::Webhook, Self::Ntfy, Self::Gotify, Self::Email];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Ntfy => "ntfy",
            Self::Gotify => "gotify",
            Self::Email => "email",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Webhook => "Webhook",
            Self::Ntfy => "ntfy",
            Self::Gotify => "Gotify",
            Self::Email => "E-mail (SMTP)",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text.trim())
    }

    /// What the secret is for this kind.
    pub fn secret_label(self) -> &'static str {
        match self {
            Self::Webhook => "HMAC signing key",
            Self::Ntfy => "access token",
            Self::Gotify => "application token",
            Self::Email => "SMTP password",
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP (a local relay or sink).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// SMTP settings of an e-mail target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Server host name.
    pub host: String,
    /// Port (default 25 for `none`, 587 for `starttls`, 465 for `tls`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// User name, if the server wants one (the password is the target's secret).
    #[serde(default)]
    pub username: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
}

impl SmtpSettings {
    /// The port, defaulted by security.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::None => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        })
    }
}

/// Non-secret settings as stored (`settings_json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSettings {
    /// Webhook URL, ntfy topic URL, Gotify server URL.
    #[serde(default)]
    pub url: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
}

/// Which events a target wants (`rules_json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rules {
    /// Event kinds.
    pub events: Vec<EventKind>,
    /// For `proxmox_unreachable`: minutes without an answer before it is sent.
    pub unreachable_after_mins: u32,
}

/// Default of [`Rules::unreachable_after_mins`].
pub const DEFAULT_UNREACHABLE_MINS: u32 = 5;

impl Rules {
    /// Whether `event` is wanted.
    pub fn wants(&self, event: &super::Event) -> bool {
        if !self.events.contains(&event.event) {
            return false;
        }
        match event.event {
            EventKind::ProxmoxUnreachable => {
                event.down_for_mins.unwrap_or(0) >= u64::from(self.unreachable_after_mins)
            }
            _ => true,
        }
    }
}

/// A target as the dispatcher and the transport use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// How it is reached.
    pub kind: TargetKind,
    /// Non-secret settings.
    pub settings: TargetSettings,
    /// What it wants.
    pub rules: Rules,
    /// The sealed secret.
    pub secret_sealed: Option<String>,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// `settings` or `configuration`.
    pub source: String,
}

impl Target {
    /// Decodes a stored row; a row that does not decode is named in the error.
    pub fn from_row(row: &NotificationTargetRow) -> Result<Self, String> {
        let kind = TargetKind::parse(&row.kind)
            .ok_or_else(|| format!("target {:?} has an unknown kind {:?}", row.name, row.kind))?;
        let settings = serde_json::from_str(&row.settings_json)
            .map_err(|e| format!("target {:?}: settings do not decode: {e}", row.name))?;
        let rules = serde_json::from_str(&row.rules_json)
            .map_err(|e| format!("target {:?}: rules do not decode: {e}", row.name))?;
        Ok(Self {
            id: row.id,
            name: row.name.clone(),
            kind,
            settings,
            rules,
            secret_sealed: row.secret_sealed.clone(),
            enabled: row.enabled,
            source: row.source.clone(),
        })
    }

    /// The secret, opened with the keyring.
    pub fn secret(&self, keyring: &Keyring) -> Result<Option<Plain>, DeliveryError> {
        self.secret_sealed
            .as_deref()
            .map(|sealed| keyring.open(sealed))
            .transpose()
            .map_err(|e| {
                DeliveryError::Config(format!(
                    "the target's secret cannot be opened ({e}); enter it again"
                ))
            })
    }
}

/// A target as created or changed (`POST`/`PUT /api/v1/notifications/targets`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetForm {
    /// Unique name.
    pub name: String,
    /// `webhook`, `ntfy`, `gotify` or `email`.
    pub kind: TargetKind,
    /// Webhook URL, ntfy topic URL (`https://ntfy.sh/mytopic`) or Gotify server URL.
    #[serde(default)]
    pub url: Option<String>,
    /// SMTP settings (e-mail only).
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// Event kinds to send.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// For `proxmox_unreachable`: minutes without an answer first (default 5).
    #[serde(default)]
    pub unreachable_after_mins: Option<u32>,
    /// Send to it (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// HMAC key (webhook), token (ntfy, Gotify) or SMTP password; write-only. Omitted on an
    /// update: the stored one is kept.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub secret: Option<Secret>,
    /// On an update: remove the stored secret.
    #[serde(default)]
    pub clear_secret: bool,
}

fn default_true() -> bool {
    true
}

fn http_url(field: &str, url: Option<&str>) -> Result<(), (String, String)> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Err((field.to_owned(), "required for this kind".to_owned()));
    };
    let parsed =
        url::Url::parse(url).map_err(|e| (field.to_owned(), format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err((
            field.to_owned(),
            "must be an http:// or https:// URL".to_owned(),
        ));
    }
    if parsed.password().is_some() || !parsed.username().is_empty() {
        return Err((
            field.to_owned(),
            "must not contain a user or password; put the token in the secret".to_owned(),
        ));
    }
    Ok(())
}

fn mailbox(field: &str, value: &str) -> Result<(), (String, String)> {
    value
        .trim()
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| {
            (
                field.to_owned(),
                format!("{value:?} is not an e-mail address ({e})"),
            )
        })
}

impl TargetForm {
    /// Checks the form; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err((
                "name".to_owned(),
                "1 to 64 characters, no control characters".to_owned(),
            ));
        }
        if self.events.contains(&EventKind::Test) {
            return Err(("events".to_owned(), "`test` is not a rule".to_owned()));
        }
        match self.kind {
            TargetKind::Webhook | TargetKind::Ntfy | TargetKind::Gotify => {
                http_url("url", self.url.as_deref())?;
            }
            TargetKind::Email => {
                let Some(smtp) = &self.smtp else {
                    return Err(("smtp".to_owned(), "required for e-mail".to_owned()));
                };
                let host = smtp.host.trim();
                if host.is_empty() || host.contains(['/', ' ', ':']) {
                    return Err(("smtp.host".to_owned(), "a host name".to_owned()));
                }
                mailbox("smtp.from", &smtp.from)?;
                if smtp.to.is_empty() {
                    return Err(("smtp.to".to_owned(), "at least one recipient".to_owned()));
                }
                for to in &smtp.to {
                    mailbox("smtp.to", to)?;
                }
            }
        }
        if let Some(mins) = self.unreachable_after_mins
            && !(1..=10_080).contains(&mins)
        {
            return Err((
                "unreachable_after_mins".to_owned(),
                "between 1 and 10080 minutes".to_owned(),
            ));
        }
        Ok(())
    }

    fn settings(&self) -> TargetSettings {
        match self.kind {
            TargetKind::Email => TargetSettings {
                url: None,
                smtp: self.smtp.clone().map(|mut s| {
                    s.host = s.host.trim().to_owned();
                    s.from = s.from.trim().to_owned();
                    s.to = s.to.iter().map(|t| t.trim().to_owned()).collect();
                    s.username = s.username.filter(|u| !u.trim().is_empty());
                    s
                }),
            },
            _ => TargetSettings {
                url: self.url.as_ref().map(|u| u.trim().to_owned()),
                smtp: None,
            },
        }
    }

    fn rules(&self) -> Rules {
        let mut events = self.events.clone();
        events.sort();
        events.dedup();
        Rules {
            events,
            unreachable_after_mins: self
                .unreachable_after_mins
                .unwrap_or(DEFAULT_UNREACHABLE_MINS),
        }
    }

    /// The row to store, sealing a new secret (or keeping `previous`'s).
    fn input(
        &self,
        keyring: &Keyring,
        previous: Option<&NotificationTargetRow>,
        source: &str,
        actor: &str,
    ) -> Result<NotificationTargetInput, AppError> {
        let secret_sealed = match (&self.secret, self.clear_secret) {
            (Some(secret), _) if !secret.expose().is_empty() => Some(
                keyring
                    .seal(secret.expose())
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot seal: {e}")))?,
            ),
            (_, true) => None,
            _ => previous.and_then(|p| p.secret_sealed.clone()),
        };
        Ok(NotificationTargetInput {
            name: self.name.trim().to_owned(),
            kind: self.kind.as_str().to_owned(),
            settings_json: serde_json::to_string(&self.settings())
                .map_err(|e| AppError::Internal(e.into()))?,
            rules_json: serde_json::to_string(&self.rules())
                .map_err(|e| AppError::Internal(e.into()))?,
            secret_sealed,
            enabled: self.enabled,
            source: source.to_owned(),
            actor: actor.to_owned(),
        })
    }
}

/// A target as shown (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TargetView {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// How it is reached.
    pub kind: TargetKind,
    /// Webhook / ntfy / Gotify URL.
    pub url: Option<String>,
    /// SMTP settings.
    pub smtp: Option<SmtpSettings>,
    /// Event kinds sent.
    pub events: Vec<EventKind>,
    /// Minutes before `proxmox_unreachable` is sent.
    pub unreachable_after_mins: u32,
    /// Whether events are sent to it.
    pub enabled: bool,
    /// Whether a secret is stored (its value is never shown).
    pub has_secret: bool,
    /// `settings` or `configuration`.
    pub source: String,
    /// Who created it.
    pub created_by: String,
    /// Last change (Unix milliseconds).
    pub updated_at: i64,
}

impl TargetView {
    fn of(row: &NotificationTargetRow) -> Result<Self, AppError> {
        let target = Target::from_row(row).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
        Ok(Self {
            id: row.id,
            name: row.name.clone(),
            kind: target.kind,
            url: target.settings.url,
            smtp: target.settings.smtp,
            events: target.rules.events,
            unreachable_after_mins: target.rules.unreachable_after_mins,
            enabled: row.enabled,
            has_secret: row.secret_sealed.is_some(),
            source: row.source.clone(),
            created_by: row.created_by.clone(),
            updated_at: row.updated_at,
        })
    }
}

/// One delivery attempt as shown.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryView {
    /// Row id.
    pub id: i64,
    /// The target (null once deleted).
    pub target_id: Option<i64>,
    /// The target's name at the time.
    pub target: String,
    /// Event kind (`job_failed`, …, `test`).
    pub event: String,
    /// The event's deduplication key.
    pub key: String,
    /// The notification's title.
    pub title: String,
    /// Attempt number, from 1.
    pub attempt: i64,
    /// `sent`, `failed` or `suppressed`.
    pub status: String,
    /// Why it failed or was suppressed.
    pub error: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

impl From<NotificationDelivery> for DeliveryView {
    fn from(d: NotificationDelivery) -> Self {
        Self {
            id: d.id,
            target_id: d.target_id,
            target: d.target_name,
            event: d.event_kind,
            key: d.event_key,
            title: d.title,
            attempt: d.attempt,
            status: d.status,
            error: d.error,
            at: d.created_at,
        }
    }
}

/// Filters of `GET /api/v1/notifications/deliveries`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
pub struct DeliveryQuery {
    /// Only this target.
    pub target: Option<i64>,
    /// Entries older than this id.
    pub before: Option<i64>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
}

/// The answer of a test send.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct TestReport {
    /// Whether the target accepted it.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

fn require_admin(user: &CurrentUser) -> Result<(), AppError> {
    crate::roles::require_admin(user, "managing notifications")
}

fn invalid((field, message): (String, String)) -> AppError {
    AppError::Invalid {
        message: format!("{field}: {message}"),
        fields: vec![(field, message)],
    }
}

async fn row(store: &dyn Store, id: i64) -> Result<NotificationTargetRow, AppError> {
    store
        .get_notification_target(id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound(format!("notification target {id}")),
            other => other.into(),
        })
}

fn name_taken(e: StoreError, name: &str) -> AppError {
    match e {
        StoreError::Conflict(_) => invalid((
            "name".to_owned(),
            format!("a target named {name:?} exists already"),
        )),
        other => other.into(),
    }
}

/// Every target (admins only).
pub async fn list(state: &AppState, user: &CurrentUser) -> Result<Vec<TargetView>, AppError> {
    require_admin(user)?;
    state
        .store
        .list_notification_targets()
        .await?
        .iter()
        .map(TargetView::of)
        .collect()
}

/// One target (admins only).
pub async fn get(state: &AppState, user: &CurrentUser, id: i64) -> Result<TargetView, AppError> {
    require_admin(user)?;
    TargetView::of(&row(state.store.as_ref(), id).await?)
}

/// Creates a target (admins only; audited).
pub async fn create(
    state: &AppState,
    user: &CurrentUser,
    form: &TargetForm,
    remote: &str,
) -> Result<TargetView, AppError> {
    require_admin(user)?;
    form.validate().map_err(invalid)?;
    let input = form.input(&state.keyring, None, "settings", &user.username)?;
    let id = state
        .store
        .insert_notification_target(&input)
        .await
        .map_err(|e| name_taken(e, &input.name))?;
    let caller = Caller {
        username: &user.username,
        remote,
    };
    crate::audit::record(
        state.store.as_ref(),
        caller
            .entry("notification_target.create", &input.name)
            .detail(serde_json::json!({ "id": id, "kind": input.kind })),
    )
    .await?;
    get(state, user, id).await
}

/// Changes a target (admins only; audited). The secret is kept unless a new one is given or
/// `clear_secret` is set; a configuration target stays marked as such.
pub async fn update(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    form: &TargetForm,
    remote: &str,
) -> Result<TargetView, AppError> {
    require_admin(user)?;
    let previous = row(state.store.as_ref(), id).await?;
    form.validate().map_err(invalid)?;
    let input = form.input(
        &state.keyring,
        Some(&previous),
        &previous.source,
        &user.username,
    )?;
    state
        .store
        .update_notification_target(id, &input)
        .await
        .map_err(|e| name_taken(e, &input.name))?;
    let caller = Caller {
        username: &user.username,
        remote,
    };
    crate::audit::record(
        state.store.as_ref(),
        caller
            .entry("notification_target.update", &input.name)
            .detail(serde_json::json!({
                "id": id,
                "secret_changed": input.secret_sealed != previous.secret_sealed,
            })),
    )
    .await?;
    get(state, user, id).await
}

/// Deletes a target (admins only; audited). Its delivery history stays.
pub async fn delete(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<(), AppError> {
    require_admin(user)?;
    let previous = row(state.store.as_ref(), id).await?;
    state.store.delete_notification_target(id).await?;
    let caller = Caller {
        username: &user.username,
        remote,
    };
    crate::audit::record(
        state.store.as_ref(),
        caller
            .entry("notification_target.delete", &previous.name)
            .detail(serde_json::json!({ "id": id })),
    )
    .await?;
    Ok(())
}

/// Sends a test notification to a target now (admins only; audited; one attempt, stored like
/// every delivery). Runs on the request: the admin waits for the target's answer, bounded by
/// `[notifications] timeout_secs`.
pub async fn test(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    remote: &str,
) -> Result<TestReport, AppError> {
    require_admin(user)?;
    let row = row(state.store.as_ref(), id).await?;
    let target = Target::from_row(&row).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    let now = state.clock.now_ms();
    let mut event = super::Event::new(
        EventKind::Test,
        format!("test:{id}:{now}"),
        format!("ctforge test notification for {}", target.name),
        format!(
            "{} asked ctforge to send this test to {:?}. If you read this, the target works.",
            user.username, target.name
        ),
        now,
    );
    event.link = super::dispatch::link(&state.config, "/settings/notifications");
    let outcome =
        super::dispatch::deliver_once(&super::dispatch::Deps::of(state), &target, &event, 1).await;
    let caller = Caller {
        username: &user.username,
        remote,
    };
    crate::audit::record(
        state.store.as_ref(),
        caller
            .entry("notification_target.test", &target.name)
            .outcome(if outcome.is_ok() { "ok" } else { "error" })
            .detail(serde_json::json!({ "id": id })),
    )
    .await?;
    Ok(match outcome {
        Ok(()) => TestReport {
            ok: true,
            error: None,
        },
        Err(e) => TestReport {
            ok: false,
            error: Some(e.to_string()),
        },
    })
}

/// Delivery attempts, newest first (admins only).
pub async fn deliveries(
    state: &AppState,
    user: &CurrentUser,
    query: &DeliveryQuery,
) -> Result<Vec<DeliveryView>, AppError> {
    require_admin(user)?;
    Ok(state
        .store
        .list_notification_deliveries(
            query.target,
            query.before,
            query.limit.unwrap_or(50).clamp(1, 500),
        )
        .await?
        .into_iter()
        .map(DeliveryView::from)
        .collect())
}

/// Creates the `[[notifications.targets]]` that do not exist yet (by name).
pub async fn bootstrap(
    config: &crate::config::Config,
    store: &dyn Store,
    keyring: &Keyring,
) -> anyhow::Result<()> {
    for entry in &config.notifications.targets {
        match store.get_notification_target_by_name(&entry.name).await {
            Ok(_) => continue,
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let form = entry.form();
        form.validate().map_err(|(field, message)| {
            anyhow::anyhow!("notification target {:?}: {field}: {message}", entry.name)
        })?;
        let input = form
            .input(keyring, None, "configuration", "configuration")
            .map_err(|e| anyhow::anyhow!("notification target {:?}: {e}", entry.name))?;
        store.insert_notification_target(&input).await?;
        tracing::info!(target = %entry.name, "notification target created from configuration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: TargetKind) -> TargetForm {
        TargetForm {
            name: "ops".into(),
            kind,
            url: Some("https://hooks.example/x".into()),
            smtp: None,
            events: vec![EventKind::JobFailed],
            unreachable_after_mins: None,
            enabled: true,
            secret: None,
            clear_secret: false,
        }
    }

    #[test]
    fn forms_are_checked_field_by_field() {
        assert!(form(TargetKind::Webhook).validate().is_ok());
        let mut f = form(TargetKind::Ntfy);
        f.url = Some("ftp://x".into());
        assert_eq!(f.validate().unwrap_err().0, "url");
        f.url = Some("https://user:pw@ntfy.example/t".into());
        assert_eq!(f.validate().unwrap_err().0, "url");
        let mut f = form(TargetKind::Email);
        assert_eq!(f.validate().unwrap_err().0, "smtp");
        f.smtp = Some(SmtpSettings {
            host: "mail.example".into(),
            port: None,
            security: SmtpSecurity::Starttls,
            username: None,
            from: "ctforge@example.org".into(),
            to: vec!["not an address".into()],
        });
        assert_eq!(f.validate().unwrap_err().0, "smtp.to");
        if let Some(smtp) = f.smtp.as_mut() {
            smtp.to = vec!["ops@example.org".into()];
        }
        assert!(f.validate().is_ok());
        assert_eq!(f.smtp.as_ref().map(SmtpSettings::port), Some(587));
        let mut f = form(TargetKind::Webhook);
        f.events.push(EventKind::Test);
        assert_eq!(f.validate().unwrap_err().0, "events");
    }

    #[test]
    fn unreachable_rule_waits_its_minutes() {
        let rules = Rules {
            events: vec![EventKind::ProxmoxUnreachable],
            unreachable_after_mins: 5,
        };
        let mut event = super::super::Event::new(EventKind::ProxmoxUnreachable, "k", "t", "m", 0);
        event.down_for_mins = Some(4);
        assert!(!rules.wants(&event));
        event.down_for_mins = Some(5);
        assert!(rules.wants(&event));
        event.event = EventKind::JobFailed;
        assert!(!rules.wants(&event));
    }
}
