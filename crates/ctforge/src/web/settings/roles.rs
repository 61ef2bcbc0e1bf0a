//! `/settings/roles`: ctforge's role holders (from the configuration and granted here), grant
//! and revoke — for ctforge admins only (everyone else gets the 403 page).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::roles::{self, GrantForm, Role};
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone};
use crate::web::home::viewer;

/// The grant form (`csrf_token` is checked by the middleware).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WebGrantForm {
    #[serde(default)]
    identity: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    form: &WebGrantForm,
    errors: &[(String, String)],
    notice: Option<(Tone, String)>,
) -> Result<Markup, AppError> {
    let grants = roles::list(state, user).await?;
    let v = viewer(user);
    let options: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), r.label().to_owned()))
        .collect();
    let error_for = |field: &str| {
        errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    };
    Ok(ui::layout(
        "Roles",
        "/settings/roles",
        &v,
        html! {
            h1 { "Roles" }
            p.muted { "ctforge's own roles. An identity is a Proxmox user signed in to one cluster (" code { "alice@pve@lab" } "); the same user on another cluster holds nothing from it. Admin: clusters, roles, other users' tokens and everything below. Template editor: templates, discovery, package buckets. Auditor: the audit log." }
            @if let Some((tone, text)) = &notice { (ui::alert(*tone, text)) }
            table.table {
                thead { tr { th scope="col" { "Identity" } th scope="col" { "Role" } th scope="col" { "Source" } th scope="col" { span.skip { "Actions" } } } }
                tbody {
                    @for g in &grants {
                        tr {
                            td { code { (g.identity) } }
                            td { (g.role.label()) }
                            td { @if g.source == "configuration" { (ui::badge(Some(Tone::Info), "configuration")) } @else { "granted by " (g.granted_by.clone().unwrap_or_default()) } }
                            td {
                                @if let Some(id) = g.id {
                                    (ui::dialog_opener(&format!("revoke-{id}"), "Revoke", true))
                                    (ui::confirm_dialog(&format!("revoke-{id}"), &format!("Revoke {} from {}?", g.role.label(), g.identity), "The identity loses this role at its next request.", &format!("/settings/roles/{id}/revoke"), "Revoke", &v))
                                }
                            }
                        }
                    }
                }
            }
            section.card.stack aria-labelledby="grant-title" {
                h2 id="grant-title" { "Grant a role" }
                form.form method="post" action="/settings/roles" {
                    (ui::csrf_field(&v))
                    (ui::field(&Field { value: &form.identity, required: true, error: error_for("identity"), hint: Some("user@realm@cluster, e.g. alice@pve@lab"), ..Field::new("identity", "Identity") }))
                    (ui::select("role", "Role", &options, &form.role, error_for("role")))
                    button.btn.btn-primary type="submit" { "Grant" }
                }
            }
        },
    ))
}

/// `GET /settings/roles`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    crate::auth::require_admin(&user)?;
    page(&state, &user, &WebGrantForm::default(), &[], None).await
}

/// `POST /settings/roles`: grants a role.
pub async fn grant(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(web): Form<WebGrantForm>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    let form = GrantForm {
        identity: web.identity.clone(),
        role: web.role.clone(),
    };
    match roles::grant(&state, &user, &form, &remote.ip().to_string()).await {
        Ok(g) => Ok(Redirect::to(&format!(
            "/settings/roles?granted={}",
            g.id.unwrap_or_default()
        ))
        .into_response()),
        Err(AppError::Invalid { message, fields }) => Ok((
            StatusCode::BAD_REQUEST,
            page(&state, &user, &web, &fields, Some((Tone::Err, message))).await?,
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// `POST /settings/roles/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    crate::auth::require_admin(&user)?;
    match roles::revoke(&state, &user, id, &remote.ip().to_string()).await {
        Ok(()) => Ok(Redirect::to("/settings/roles").into_response()),
        Err(AppError::Conflict(message)) => Ok((
            StatusCode::CONFLICT,
            page(
                &state,
                &user,
                &WebGrantForm::default(),
                &[],
                Some((Tone::Err, message)),
            )
            .await?,
        )
            .into_response()),
        Err(e) => Err(e),
    }
}
