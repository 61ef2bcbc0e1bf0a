//! `/settings/tokens`: the signed-in user's API tokens (create, shown once; revoke), and for
//! ctforge admins every other user's tokens (revoke).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::tokens::TokenView;
use crate::web::components::{self as ui, Field, Tone};
use crate::web::home::viewer;

fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|| "never".to_owned())
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    created: Option<&str>,
    name: &str,
    error: Option<&str>,
) -> Result<Markup, AppError> {
    let tokens: Vec<TokenView> = crate::tokens::list(state, user).await?;
    let own: std::collections::BTreeSet<i64> = tokens.iter().map(|t| t.id).collect();
    let others: Vec<TokenView> = if user.roles.is_admin() {
        crate::tokens::list_all(state, user)
            .await?
            .into_iter()
            .filter(|t| !own.contains(&t.id))
            .collect()
    } else {
        Vec::new()
    };
    let clusters = state.store.list_clusters().await?;
    let cluster_name = |id: Option<i64>| {
        id.and_then(|id| clusters.iter().find(|c| c.id == id))
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "default cluster".to_owned())
    };
    let v = viewer(user);
    Ok(ui::layout(
        "API tokens",
        "/settings/tokens",
        &v,
        html! {
            h1 { "API tokens" }
            p.muted { "Tokens act as you (" (user.username) ") for scripts and the CLI: send them as " code { "Authorization: Bearer <token>" } "." }
            @if let Some(secret) = created {
                div.alert.alert-ok role="status" {
                    p { "Token created. Copy it now; it is not shown again:" }
                    p { code.break-all { (secret) } }
                }
            }
            @if tokens.is_empty() {
                (ui::empty_state("No tokens", "Create a token to use the API from scripts.", None))
            } @else {
                table.table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "State" } th scope="col" { span.skip { "Actions" } } } }
                    tbody {
                        @for t in &tokens {
                            tr {
                                td { (t.name) }
                                td { (when(Some(t.created_at))) }
                                td { (when(t.last_used)) }
                                td { @if t.revoked_at.is_some() { (ui::badge(Some(Tone::Err), "revoked")) } @else { (ui::badge(Some(Tone::Ok), "active")) } }
                                td {
                                    @if t.revoked_at.is_none() {
                                        (ui::dialog_opener(&format!("revoke-{}", t.id), "Revoke", true))
                                        (ui::confirm_dialog(&format!("revoke-{}", t.id), &format!("Revoke token {}?", t.name), "Scripts using it stop working at once.", &format!("/settings/tokens/{}/revoke", t.id), "Revoke", &v))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !others.is_empty() {
                section.card.stack aria-labelledby="others-title" {
                    h2 id="others-title" { "Other users' tokens" }
                    p.muted { "As a ctforge admin you can revoke any user's token." }
                    table.table {
                        thead { tr { th scope="col" { "Owner" } th scope="col" { "Name" } th scope="col" { "Last used" } th scope="col" { "State" } th scope="col" { span.skip { "Actions" } } } }
                        tbody {
                            @for t in &others {
                                tr {
                                    td { (t.username) "@" (cluster_name(t.cluster_id)) }
                                    td { (t.name) }
                                    td { (when(t.last_used)) }
                                    td { @if t.revoked_at.is_some() { (ui::badge(Some(Tone::Err), "revoked")) } @else { (ui::badge(Some(Tone::Ok), "active")) } }
                                    td {
                                        @if t.revoked_at.is_none() {
                                            (ui::dialog_opener(&format!("revoke-{}", t.id), "Revoke", true))
                                            (ui::confirm_dialog(&format!("revoke-{}", t.id), &format!("Revoke {}'s token {}?", t.username, t.name), "Scripts using it stop working at once.", &format!("/settings/tokens/{}/revoke", t.id), "Revoke", &v))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "New token" }
                form.form method="post" action="/settings/tokens" {
                    (ui::csrf_field(&v))
                    (ui::field(&Field { value: name, required: true, error, hint: Some("e.g. ci or backup-script"), ..Field::new("name", "Name") }))
                    button.btn.btn-primary type="submit" { "Create token" }
                }
            }
        },
    ))
}

/// `GET /settings/tokens`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Result<Markup, AppError> {
    page(&state, &user, None, "", None).await
}

/// The create form.
#[derive(Debug, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    name: String,
}

/// `POST /settings/tokens`.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Form(form): Form<NewTokenForm>,
) -> Result<Response, AppError> {
    match crate::tokens::create_as(&state, &user, &form.name, &remote.ip().to_string()).await {
        Ok((_, secret)) => Ok(page(&state, &user, Some(&secret), "", None)
            .await?
            .into_response()),
        Err(AppError::Invalid { fields, .. }) => {
            let message = fields.first().map(|(_, m)| m.clone()).unwrap_or_default();
            Ok((
                StatusCode::BAD_REQUEST,
                page(&state, &user, None, &form.name, Some(&message)).await?,
            )
                .into_response())
        }
        Err(e) => Err(e),
    }
}

/// `POST /settings/tokens/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> Result<Redirect, AppError> {
    crate::tokens::revoke(&state, &user, id, &remote.ip().to_string()).await?;
    Ok(Redirect::to("/settings/tokens"))
}
