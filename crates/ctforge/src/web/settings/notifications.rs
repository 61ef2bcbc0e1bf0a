//! `/settings/notifications`: notification targets (add, edit, test, delete) and the latest
//! delivery attempts with their errors — for ctforge admins only. Thin: `notify::targets` holds
//! the use-cases (validation, sealing, audit).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use crate::auth::CurrentUser;
use crate::config::Secret;
use crate::error::AppError;
use crate::notify::EventKind;
use crate::notify::targets::{
    self, DeliveryQuery, SmtpSecurity, SmtpSettings, TargetForm, TargetKind, TargetView,
};
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone, Viewer};
use crate::web::home::viewer;

const PATH: &str = "/settings/notifications";

/// The form as typed (every field a string, so a bad value is shown back, not lost).
#[derive(Clone, Debug, Default)]
struct Typed {
    name: String,
    kind: String,
    url: String,
    smtp_host: String,
    smtp_port: String,
    smtp_security: String,
    smtp_username: String,
    smtp_from: String,
    smtp_to: String,
    events: Vec<EventKind>,
    unreachable_after_mins: String,
    enabled: bool,
    secret: String,
    clear_secret: bool,
}

impl Typed {
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut typed = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => typed.name.clone_from(value),
                "kind" => typed.kind.clone_from(value),
                "url" => typed.url.clone_from(value),
                "smtp_host" => typed.smtp_host.clone_from(value),
                "smtp_port" => typed.smtp_port.clone_from(value),
                "smtp_security" => typed.smtp_security.clone_from(value),
                "smtp_username" => typed.smtp_username.clone_from(value),
                "smtp_from" => typed.smtp_from.clone_from(value),
                "smtp_to" => typed.smtp_to.clone_from(value),
                "unreachable_after_mins" => typed.unreachable_after_mins.clone_from(value),
                "enabled" => typed.enabled = true,
                "secret" => typed.secret.clone_from(value),
                "clear_secret" => typed.clear_secret = true,
                other => {
                    if let Some(kind) = other.strip_prefix("event_").and_then(EventKind::parse) {
                        typed.events.push(kind);
                    }
                }
            }
        }
        typed
    }

    fn of(view: &TargetView) -> Self {
        let smtp = view.smtp.clone().unwrap_or_default();
        Self {
            name: view.name.clone(),
            kind: view.kind.as_str().to_owned(),
            url: view.url.clone().unwrap_or_default(),
            smtp_host: smtp.host,
            smtp_port: smtp.port.map(|p| p.to_string()).unwrap_or_default(),
            smtp_security: security_name(smtp.security).to_owned(),
            smtp_username: smtp.username.unwrap_or_default(),
            smtp_from: smtp.from,
            smtp_to: smtp.to.join(", "),
            events: view.events.clone(),
            unreachable_after_mins: view.unreachable_after_mins.to_string(),
            enabled: view.enabled,
            secret: String::new(),
            clear_secret: false,
        }
    }

    fn new_target() -> Self {
        Self {
            kind: "webhook".to_owned(),
            smtp_security: "starttls".to_owned(),
            events: vec![EventKind::JobFailed, EventKind::ServiceDown],
            unreachable_after_mins: targets::DEFAULT_UNREACHABLE_MINS.to_string(),
            enabled: true,
            ..Self::default()
        }
    }

    /// The typed form, or the field and message of the first value that does not parse.
    fn form(&self) -> Result<TargetForm, (String, String)> {
        let kind = TargetKind::parse(&self.kind)
            .ok_or_else(|| ("kind".to_owned(), "choose a kind".to_owned()))?;
        let number = |field: &str, text: &str| -> Result<Option<u32>, (String, String)> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse()
                .map(Some)
                .map_err(|_| (field.to_owned(), "a whole number".to_owned()))
        };
        let smtp = (kind == TargetKind::Email).then(|| SmtpSettings {
            host: self.smtp_host.trim().to_owned(),
            port: None,
            security: match self.smtp_security.as_str() {
                "none" => SmtpSecurity::None,
                "tls" => SmtpSecurity::Tls,
                _ => SmtpSecurity::Starttls,
            },
            username: Some(self.smtp_username.trim().to_owned()).filter(|u| !u.is_empty()),
            from: self.smtp_from.trim().to_owned(),
            to: self
                .smtp_to
                .split([',', ';', '\n'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        });
        let smtp = match smtp {
            Some(mut smtp) => {
                smtp.port = number("smtp_port", &self.smtp_port)?
                    .map(|p| {
                        u16::try_from(p)
                            .map_err(|_| ("smtp_port".to_owned(), "1 to 65535".to_owned()))
                    })
                    .transpose()?;
                Some(smtp)
            }
            None => None,
        };
        Ok(TargetForm {
            name: self.name.trim().to_owned(),
            kind,
            url: (kind != TargetKind::Email).then(|| self.url.trim().to_owned()),
            smtp,
            events: self.events.clone(),
            unreachable_after_mins: number("unreachable_after_mins", &self.unreachable_after_mins)?,
            enabled: self.enabled,
            secret: Some(Secret::new(self.secret.clone())).filter(|s| !s.expose().is_empty()),
            clear_secret: self.clear_secret,
        })
    }
}

fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

fn security_name(security: SmtpSecurity) -> &'static str {
    match security {
        SmtpSecurity::None => "none",
        SmtpSecurity::Starttls => "starttls",
        SmtpSecurity::Tls => "tls",
    }
}

fn destination(t: &TargetView) -> String {
    match (&t.url, &t.smtp) {
        (_, Some(smtp)) => format!("{} via {}:{}", smtp.to.join(", "), smtp.host, smtp.port()),
        (Some(url), None) => url.clone(),
        (None, None) => String::new(),
    }
}

fn target_form(
    v: &Viewer,
    typed: &Typed,
    action: &str,
    submit: &str,
    has_secret: bool,
    errors: &[(String, String)],
) -> Markup {
    let error_for = |field: &str| {
        errors
            .iter()
            .find(|(f, _)| f == field || f.replace('.', "_") == field)
            .map(|(_, m)| m.as_str())
    };
    let kinds: Vec<(String, String)> = TargetKind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), k.label().to_owned()))
        .collect();
    let securities: Vec<(String, String)> = [
        ("starttls", "STARTTLS (port 587)"),
        ("tls", "TLS (port 465)"),
        ("none", "None: plain SMTP (a local relay)"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    html! {
        form.form method="post" action=(action) {
            (ui::csrf_field(v))
            (ui::field(&Field { value: &typed.name, required: true, error: error_for("name"), ..Field::new("name", "Name") }))
            (ui::select("kind", "Kind", &kinds, &typed.kind, error_for("kind")))
            (ui::field(&Field { value: &typed.url, error: error_for("url"), hint: Some("Webhook URL, ntfy topic URL (https://ntfy.sh/my-topic) or Gotify server URL. Not used for e-mail."), ..Field::new("url", "URL") }))
            fieldset {
                legend { "E-mail (SMTP)" }
                (ui::field(&Field { value: &typed.smtp_host, error: error_for("smtp_host").or(error_for("smtp")), ..Field::new("smtp_host", "SMTP server") }))
                (ui::field(&Field { value: &typed.smtp_port, kind: "number", error: error_for("smtp_port"), hint: Some("Empty: 587 for STARTTLS, 465 for TLS, 25 for none."), ..Field::new("smtp_port", "Port") }))
                (ui::select("smtp_security", "Security", &securities, &typed.smtp_security, None))
                (ui::field(&Field { value: &typed.smtp_username, autocomplete: Some("off"), ..Field::new("smtp_username", "User name (optional)") }))
                (ui::field(&Field { value: &typed.smtp_from, error: error_for("smtp_from"), ..Field::new("smtp_from", "From") }))
                (ui::field(&Field { value: &typed.smtp_to, error: error_for("smtp_to"), hint: Some("Comma separated."), ..Field::new("smtp_to", "To") }))
            }
            (ui::field(&Field { value: "", kind: "password", autocomplete: Some("new-password"), error: error_for("secret"),
                hint: Some(if has_secret { "A secret is stored; leave empty to keep it. Webhook: HMAC key (X-Ctforge-Signature). ntfy/Gotify: token. E-mail: SMTP password." } else { "Optional. Webhook: HMAC key (X-Ctforge-Signature: sha256=…). ntfy/Gotify: token. E-mail: SMTP password." }),
                ..Field::new("secret", "Secret") }))
            @if has_secret { (ui::checkbox("clear_secret", "Remove the stored secret", false, None)) }
            fieldset {
                legend { "Send on" }
                @for kind in EventKind::RULES {
                    (ui::checkbox(&format!("event_{}", kind.as_str()), kind.label(), typed.events.contains(&kind), None))
                }
                @if let Some(e) = error_for("events") { div.error { (e) } }
            }
            (ui::field(&Field { value: &typed.unreachable_after_mins, kind: "number", error: error_for("unreachable_after_mins"), hint: Some("Proxmox unreachable: minutes without an answer before it is sent."), ..Field::new("unreachable_after_mins", "Unreachable after (minutes)") }))
            (ui::checkbox("enabled", "Enabled", typed.enabled, None))
            button.btn.btn-primary type="submit" { (submit) }
        }
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    typed: &Typed,
    errors: &[(String, String)],
    notice: Option<(Tone, String)>,
) -> Result<Markup, AppError> {
    let list = targets::list(state, user).await?;
    let deliveries = targets::deliveries(state, user, &DeliveryQuery::default()).await?;
    let v = viewer(user);
    Ok(ui::layout(
        "Notifications",
        PATH,
        &v,
        html! {
            h1 { "Notifications" }
            p.muted { "Where ctforge reports failed jobs, services going down or up, and Proxmox clusters that stop answering. The same event is sent to a target once per " (state.config.notifications.dedupe_window_secs / 60) " minutes; secrets are stored sealed and never shown again." }
            @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
            @if list.is_empty() {
                p { "No targets yet." }
            } @else {
                table.table {
                    caption.sr-only { "Notification targets" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Destination" } th scope="col" { "Sends on" } th scope="col" { "State" } th scope="col" { span.skip { "Actions" } } } }
                    tbody {
                        @for t in &list {
                            tr {
                                td { (t.name) @if t.source == "configuration" { " " (ui::badge(Some(Tone::Info), "configuration")) } }
                                td { (t.kind.label()) }
                                td { code { (destination(t)) } @if t.has_secret { " " (ui::badge(None, "secret set")) } }
                                td { (t.events.iter().map(|e| e.label()).collect::<Vec<_>>().join(", ")) }
                                td { @if t.enabled { (ui::badge(Some(Tone::Ok), "enabled")) } @else { (ui::badge(Some(Tone::Warn), "disabled")) } }
                                td {
                                    a.btn href={ (PATH) "/" (t.id) "/edit" } aria-label={ "Edit " (t.name) } { "Edit" }
                                    form method="post" action={ (PATH) "/" (t.id) "/test" } { (ui::csrf_field(&v)) button.btn type="submit" aria-label={ "Send a test to " (t.name) } { "Test" } }
                                    (ui::dialog_opener(&format!("del-{}", t.id), "Delete", true))
                                    (ui::confirm_dialog(&format!("del-{}", t.id), &format!("Delete notification target {}?", t.name), "Nothing more is sent to it; its delivery history stays.", &format!("{PATH}/{}/delete", t.id), "Delete", &v))
                                }
                            }
                        }
                    }
                }
            }
            section.card.stack aria-labelledby="add-title" {
                h2 id="add-title" { "Add a target" }
                (target_form(&v, typed, PATH, "Add target", false, errors))
            }
            section.stack aria-labelledby="deliveries-title" {
                h2 id="deliveries-title" { "Latest deliveries" }
                @if deliveries.is_empty() {
                    p.muted { "Nothing sent yet." }
                } @else {
                    table.table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Target" } th scope="col" { "Event" } th scope="col" { "Attempt" } th scope="col" { "Result" } } }
                        tbody {
                            @for d in &deliveries {
                                tr {
                                    td { (when(d.at)) }
                                    td { (d.target) }
                                    td { (d.title) br; small.muted { (d.event) } }
                                    td { (d.attempt) }
                                    td {
                                        @match d.status.as_str() {
                                            "sent" => { (ui::badge(Some(Tone::Ok), "sent")) }
                                            "suppressed" => { (ui::badge(Some(Tone::Warn), "suppressed")) }
                                            _ => { (ui::badge(Some(Tone::Err), "failed")) }
                                        }
                                        @if let Some(e) = &d.error { br; small { (e) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

async fn edit_page(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    typed: Option<&Typed>,
    errors: &[(String, String)],
) -> Result<Markup, AppError> {
    let view = targets::get(state, user, id).await?;
    let v = viewer(user);
    let current = Typed::of(&view);
    let typed = typed.unwrap_or(&current);
    let title = format!("Edit {}", view.name);
    Ok(ui::layout(
        &title,
        PATH,
        &v,
        html! {
            h1 { (title) }
            p { a href=(PATH) { "Back to notifications" } }
            @if !errors.is_empty() { (ui::alert(Tone::Err, "Check the fields marked below.")) }
            (target_form(&v, typed, &format!("{PATH}/{id}/edit"), "Save", view.has_secret, errors))
        },
    ))
}

fn errors_of(e: AppError) -> Result<Vec<(String, String)>, AppError> {
    match e {
        AppError::Invalid { message, fields } if fields.is_empty() => {
            Ok(vec![("form".to_owned(), message)])
        }
        AppError::Invalid { fields, .. } => Ok(fields),
        other => Err(other),
    }
}

/// `GET /settings/notifications`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    crate::auth::require_admin(&user)?;
    page(&state, &user, &Typed::new_target(), &[], None).await
}

/// `POST /settings/notifications`: adds a target.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let typed = Typed::from_pairs(&pairs);
    let result = match typed.form() {
        Ok(form) => targets::create(&state, &user, &form, &remote.ip().to_string()).await,
        Err((field, message)) => Err(AppError::Invalid {
            message: format!("{field}: {message}"),
            fields: vec![(field, message)],
        }),
    };
    match result {
        Ok(view) => Ok(Redirect::to(&format!("{PATH}?added={}", view.id)).into_response()),
        Err(e) => {
            let errors = errors_of(e)?;
            let notice = errors
                .first()
                .map(|(f, m)| (Tone::Err, format!("{f}: {m}")));
            Ok((
                StatusCode::BAD_REQUEST,
                page(&state, &user, &typed, &errors, notice).await?,
            )
                .into_response())
        }
    }
}

/// `GET /settings/notifications/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Markup, AppError> {
    crate::auth::require_admin(&user)?;
    edit_page(&state, &user, id, None, &[]).await
}

/// `POST /settings/notifications/{id}/edit`.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let typed = Typed::from_pairs(&pairs);
    let result = match typed.form() {
        Ok(form) => targets::update(&state, &user, id, &form, &remote.ip().to_string()).await,
        Err((field, message)) => Err(AppError::Invalid {
            message: format!("{field}: {message}"),
            fields: vec![(field, message)],
        }),
    };
    match result {
        Ok(_) => Ok(Redirect::to(PATH).into_response()),
        Err(e) => {
            let errors = errors_of(e)?;
            Ok((
                StatusCode::BAD_REQUEST,
                edit_page(&state, &user, id, Some(&typed), &errors).await?,
            )
                .into_response())
        }
    }
}

/// `POST /settings/notifications/{id}/test`: sends a test and shows the outcome.
pub async fn test(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Markup, AppError> {
    crate::auth::require_admin(&user)?;
    let report = targets::test(&state, &user, id, &remote.ip().to_string()).await?;
    let notice = match report.error {
        None => (Tone::Ok, "Test sent: the target accepted it.".to_owned()),
        Some(e) => (Tone::Err, format!("Test failed: {e}")),
    };
    page(&state, &user, &Typed::new_target(), &[], Some(notice)).await
}

/// `POST /settings/notifications/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    targets::delete(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(Redirect::to(PATH).into_response())
}
