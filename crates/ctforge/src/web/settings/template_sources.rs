//! `/settings/template-sources`: the configured `[[templates.git]]` sources with the public
//! fingerprint of each stored deploy key and the pinned host key; ctforge admins give a deploy
//! key (sealed at once, never shown back) and confirm a host key fingerprint, or forget a key.
//! The use-cases are [`crate::templates::git_keys`].

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::audit::Caller;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::templates::git_keys::{self, SetKeyBody};
use crate::web::components::{self as ui, Field, Tone};
use crate::web::home::viewer;

async fn page(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<(Tone, String)>,
) -> Result<Markup, AppError> {
    let sources = git_keys::list(state.store.as_ref(), &state.config.templates.git).await?;
    let v = viewer(user);
    let options: Vec<(String, String)> = sources
        .iter()
        .filter(|s| s.ssh)
        .map(|s| (s.url.clone(), s.url.clone()))
        .collect();
    Ok(ui::layout(
        "Template sources",
        "/settings/template-sources",
        &v,
        html! {
            h1 { "Template sources" }
            p.muted { "Git repositories holding templates (" code { "[[templates.git]]" } " in the config file). ssh sources need a deploy key and the server's host key fingerprint, confirmed by you: ctforge never accepts an unknown host key." }
            @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
            @if sources.is_empty() {
                (ui::empty_state("No git sources", "Add [[templates.git]] entries (url, branch, path) to the config file and restart ctforge.", None))
            } @else {
                div.table-wrap role="region" aria-label="Git sources" tabindex="0" { table.table {
                    thead { tr { th scope="col" { "Repository" } th scope="col" { "Branch" } th scope="col" { "Deploy key" } th scope="col" { "Host key" } th scope="col" { span.skip { "Actions" } } } }
                    tbody {
                        @for s in &sources {
                            tr data-source=(s.url) {
                                td.mono { (s.url) @if let Some(p) = &s.path { span.muted { " /" (p) } } }
                                td.mono { (s.branch) }
                                td.mono data-key-fingerprint=[s.key_fingerprint.as_deref()] {
                                    @match (&s.key_fingerprint, s.ssh) {
                                        (Some(fp), _) => { (fp) " " span.muted { "(sealed)" } }
                                        (None, true) => { span.muted { "none" } }
                                        (None, false) => { span.muted { "not needed" } }
                                    }
                                }
                                td.mono {
                                    @match (&s.host_key, s.ssh) {
                                        (Some(fp), _) => { (fp) }
                                        (None, true) => { (ui::badge(Some(Tone::Warn), "not confirmed")) }
                                        (None, false) => { span.muted { "not needed" } }
                                    }
                                }
                                td {
                                    @if v.admin && s.key_fingerprint.is_some() {
                                        (ui::action_form("/settings/template-sources/forget", "Forget key", false, &[("url", s.url.as_str())], &v))
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            @if v.admin && !options.is_empty() {
                section.card {
                    h2 { "Deploy key and host key" }
                    form.form method="post" action="/settings/template-sources" {
                        (ui::csrf_field(&v))
                        (ui::select("url", "Source", &options, "", None))
                        (ui::field(&Field { kind: "textarea", hint: Some("The private key (OpenSSH or PEM, without passphrase). Stored sealed; only its fingerprint is shown. Leave empty to change only the host key."), ..Field::new("private_key", "Private deploy key") }))
                        (ui::field(&Field { hint: Some("As ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub prints it on the git server (SHA256:…). A sync names the fingerprints the server shows."), ..Field::new("host_key", "Host key fingerprint") }))
                        button.btn.btn-primary type="submit" { "Save" }
                    }
                }
            }
        },
    ))
}

/// `GET /settings/template-sources`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    crate::auth::require_editor(&user)?;
    page(&state, &user, None).await
}

/// The key form.
#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    host_key: String,
}

/// `POST /settings/template-sources`: seals and stores the deploy key and the host key pin.
pub async fn save(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(form): Form<KeyForm>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    let body = SetKeyBody {
        url: form.url,
        private_key: form.private_key,
        host_key: form.host_key,
    };
    match git_keys::set(
        state.store.as_ref(),
        &state.keyring,
        caller,
        &state.config.templates.git,
        &body,
    )
    .await
    {
        Ok(view) => Ok(page(
            &state,
            &user,
            Some((
                Tone::Ok,
                format!(
                    "Saved for {}: deploy key {}, host key {}.",
                    view.url,
                    view.key_fingerprint.as_deref().unwrap_or("none"),
                    view.host_key.as_deref().unwrap_or("not confirmed")
                ),
            )),
        )
        .await?
        .into_response()),
        Err(AppError::Invalid { message, .. }) => Ok((
            StatusCode::BAD_REQUEST,
            page(&state, &user, Some((Tone::Err, message))).await?,
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// The forget form.
#[derive(Debug, Deserialize)]
pub struct ForgetForm {
    #[serde(default)]
    url: String,
}

/// `POST /settings/template-sources/forget`.
pub async fn forget(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(form): Form<ForgetForm>,
) -> Result<Redirect, AppError> {
    crate::auth::require_admin(&user)?;
    let remote = remote.ip().to_string();
    let caller = Caller {
        username: &user.username,
        remote: &remote,
    };
    git_keys::remove(state.store.as_ref(), caller, &form.url).await?;
    Ok(Redirect::to("/settings/template-sources"))
}
