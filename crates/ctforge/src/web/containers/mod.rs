//! Container pages: the detail page ([`detail`]), the HTML lifecycle forms
//! (`POST /containers/{id}/{start|stop|shutdown|reboot|delete}`, redirecting back with a flash
//! message), and the pieces the dashboard shares (action buttons, flash messages).

pub mod config_manager;
pub mod daytwo;
pub mod detail;
pub mod drift;
pub mod migrate;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::containers::lifecycle::{self, Action, Options};
use crate::containers::resolve;
use crate::state::AppState;
use crate::status::ContainerStatus;
use crate::web::components::{self as ui, Tone, Viewer};

const FLASH_COOKIE: &str = "ctforge_flash";

/// A `Set-Cookie` value carrying a one-shot message to the next page.
pub fn flash_cookie(tone: Tone, text: &str) -> Option<HeaderValue> {
    let tone = match tone {
        Tone::Ok => "ok",
        Tone::Warn => "warn",
        Tone::Err => "err",
        Tone::Info => "info",
    };
    let value: String =
        url::form_urlencoded::byte_serialize(format!("{tone}|{text}").as_bytes()).collect();
    HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={value}; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// Reads the flash message of a request and the `Set-Cookie` value that clears it.
pub fn take_flash(headers: &HeaderMap) -> Option<((Tone, String), HeaderValue)> {
    let raw = crate::auth::middleware::cookie(headers, FLASH_COOKIE)?;
    let decoded: String = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    let (tone, text) = decoded.split_once('|')?;
    let tone = match tone {
        "ok" => Tone::Ok,
        "warn" => Tone::Warn,
        "err" => Tone::Err,
        _ => Tone::Info,
    };
    let clear =
        HeaderValue::from_static("ctforge_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    Some(((tone, text.chars().take(500).collect()), clear))
}

/// Renders the flash message, if any.
pub fn flash_markup(flash: Option<&(Tone, String)>) -> Markup {
    html! {
        @if let Some((tone, text)) = flash {
            div.toast { (ui::alert(*tone, text)) }
        }
    }
}

/// A page response that also clears the flash cookie when one was shown.
pub fn page_response(markup: Markup, clear: Option<HeaderValue>) -> Response {
    let mut response = markup.into_response();
    if let Some(clear) = clear {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// What the action buttons of one container need to know.
pub struct ActionCtx<'a> {
    /// URL id.
    pub key: &'a str,
    /// Name shown in confirmations.
    pub name: &'a str,
    /// VMID.
    pub vmid: u32,
    /// Current status.
    pub status: ContainerStatus,
    /// Why Proxmox cannot be used right now, if so.
    pub unavailable: Option<&'a str>,
    /// Proxmox config lock.
    pub lock: Option<&'a str>,
    /// Where to come back to (path and query).
    pub back: &'a str,
    /// Whether ctforge has a record (a record can be deleted while Proxmox is unreachable).
    pub managed: bool,
}

/// Why `user` cannot run `action` from the UI, if they cannot (from the ticket's `cap`;
/// Proxmox still checks the real ACL when the action runs).
pub fn permission_reason(user: &CurrentUser, action: Action) -> Option<String> {
    let privilege = action.privilege();
    (!user.can("vms", privilege))
        .then(|| format!("your Proxmox permissions lack {privilege} on /vms; ask an administrator"))
}

/// Lifecycle buttons for one container; `full` adds shutdown, reboot and delete.
pub fn action_buttons(
    user: &CurrentUser,
    viewer: &Viewer,
    ct: &ActionCtx<'_>,
    full: bool,
) -> Markup {
    let running = ct.status == ContainerStatus::Running;
    let stopped = ct.status == ContainerStatus::Stopped;
    let unknown = ct.unavailable.is_some() || ct.status == ContainerStatus::Unknown;
    let mut actions: Vec<Action> = Vec::new();
    if stopped || unknown {
        actions.push(Action::Start);
    }
    if running || unknown {
        actions.push(Action::Stop);
        if full {
            actions.push(Action::Shutdown);
            actions.push(Action::Reboot);
        }
    }
    if full && ct.status != ContainerStatus::Creating {
        actions.push(Action::Delete);
    }
    let busy = match ct.lock {
        Some(lock) => Some(format!("CT {} is locked in proxmox ({lock})", ct.vmid)),
        None if ct.status == ContainerStatus::Creating => Some("still being created".to_owned()),
        None => None,
    };
    html! {
        div.row.actions {
            @for action in &actions {
                @let reason = ct
                    .unavailable
                    .map(|u| format!("unavailable: {u}"))
                    .filter(|_| !(*action == Action::Delete && ct.managed))
                    .or_else(|| busy.clone())
                    .or_else(|| permission_reason(user, *action));
                @let path = format!("/containers/{}/{}", ct.key, action.as_str());
                @match reason {
                    Some(reason) => (ui::disabled_button(action.label(), &reason)),
                    None if action.destructive() => {
                        @let id = format!("dlg-{}-{}", action.as_str(), ct.key.replace(':', "-"));
                        @let title = format!("{} {} (CT {})?", action.label(), ct.name, ct.vmid);
                        @let text = confirm_text(*action, ct);
                        @let back = if *action == Action::Delete { "/" } else { ct.back };
                        (ui::confirm_button(&ui::Confirm {
                            id: &id,
                            label: action.label(),
                            title: &title,
                            text: &text,
                            action: &path,
                            confirm: action.label(),
                            hidden: &[("back", back)],
                        }, viewer))
                    }
                    None => (ui::action_form(&path, action.label(), true, &[("back", ct.back)], viewer)),
                }
            }
        }
    }
}

fn confirm_text(action: Action, ct: &ActionCtx<'_>) -> String {
    match action {
        Action::Stop => format!(
            "{} (CT {}) stops immediately, like pulling the plug; unsaved data in it is lost.",
            ct.name, ct.vmid
        ),
        Action::Shutdown => format!(
            "{} (CT {}) gets {} s to shut down cleanly, then it is stopped.",
            ct.name,
            ct.vmid,
            lifecycle::DEFAULT_SHUTDOWN_TIMEOUT
        ),
        Action::Reboot => format!(
            "{} (CT {}) restarts; its services are briefly down.",
            ct.name, ct.vmid
        ),
        Action::Delete if ct.unavailable.is_some() => format!(
            "Proxmox is unreachable: only ctforge's record of {} (CT {}) is removed; the CT may still exist in Proxmox.",
            ct.name, ct.vmid
        ),
        Action::Delete => format!(
            "{} (CT {}) is stopped if running and destroyed with its disks. This cannot be undone.",
            ct.name, ct.vmid
        ),
        Action::Start => String::new(),
    }
}

/// The body of the HTML lifecycle forms.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// Where to go afterwards (a local path).
    #[serde(default)]
    pub back: Option<String>,
    /// Shutdown timeout in seconds.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A safe local redirect target.
pub fn safe_back(back: Option<&str>) -> String {
    crate::web::redirect::local_or_root(back)
}

async fn form_action(
    state: AppState,
    remote: SocketAddr,
    user: CurrentUser,
    id: String,
    form: ActionForm,
    action: Action,
) -> Response {
    let mut back = safe_back(form.back.as_deref());
    let (tone, text) = match resolve(&state, &id).await {
        Err(e) => (Tone::Err, e.to_string()),
        Ok(target) => {
            let timeout = form
                .timeout
                .as_deref()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .unwrap_or(lifecycle::DEFAULT_SHUTDOWN_TIMEOUT);
            // When Proxmox is unreachable a delete of a managed CT removes the record only —
            // confirmed afresh, never on the down map's word alone.
            let record_only = action == Action::Delete
                && target.record.is_some()
                && state.down.since(target.cluster.id).is_some()
                && lifecycle::unreachable_now(&state, &target.cluster).await;
            let opts = Options {
                timeout,
                record_only,
                only: None,
            };
            let name = target.display_name();
            match lifecycle::run(
                &state,
                &user,
                &remote.ip().to_string(),
                &target,
                action,
                opts,
            )
            .await
            {
                Ok(outcome) => {
                    let done = outcome
                        .steps
                        .iter()
                        .map(|s| s.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    match outcome.warning {
                        Some(w) => (Tone::Warn, format!("{name}: {w}")),
                        None => (Tone::Ok, format!("{name}: {done}")),
                    }
                }
                Err(e) => {
                    if action == Action::Delete {
                        back = format!("/containers/{id}");
                    }
                    (Tone::Err, format!("{name}: {e}"))
                }
            }
        }
    };
    let mut response = Redirect::to(&back).into_response();
    if let Some(cookie) = flash_cookie(tone, &text) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

macro_rules! form_handlers {
    ($($name:ident => $action:expr),* $(,)?) => {$(
        /// `POST /containers/{id}/<action>`: runs the action and redirects back with a message.
        pub async fn $name(
            State(state): State<AppState>,
            ConnectInfo(remote): ConnectInfo<SocketAddr>,
            axum::Extension(user): axum::Extension<CurrentUser>,
            Path(id): Path<String>,
            axum::Form(form): axum::Form<ActionForm>,
        ) -> Response {
            form_action(state, remote, user, id, form, $action).await
        }
    )*};
}

form_handlers! {
    start => Action::Start,
    stop => Action::Stop,
    shutdown => Action::Shutdown,
    reboot => Action::Reboot,
    delete => Action::Delete,
}
