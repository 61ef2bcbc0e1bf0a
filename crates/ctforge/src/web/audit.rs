//! `/audit`: the audit log with filters in the URL and paging.

use axum::extract::{Query, State};
use maud::{Markup, html};

use crate::audit::{self, AuditQuery};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::components::{self as ui, Field, Tone};
use crate::web::home::viewer;

/// `GET /audit?actor=&action=&before=`.
pub async fn show(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    Query(query): Query<AuditQuery>,
) -> Result<Markup, AppError> {
    let filter = query.filter();
    let entries = audit::list(state.store.as_ref(), &user, &query).await?;
    let actor = query.actor.clone().unwrap_or_default();
    let action = query.action.clone().unwrap_or_default();
    let next = entries
        .last()
        .filter(|_| entries.len() as i64 == filter.limit)
        .map(|e| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("actor", &actor)
                .append_pair("action", &action)
                .append_pair("before", &e.id.to_string());
            format!("/audit?{}", q.finish())
        });
    Ok(ui::layout(
        "Audit log",
        "/audit",
        &viewer(&user),
        html! {
            h1 { "Audit log" }
            form.row method="get" action="/audit" role="search" {
                (ui::field(&Field { value: &actor, ..Field::new("actor", "User") }))
                (ui::field(&Field { value: &action, hint: Some("e.g. login, login_failed, cluster.create"), ..Field::new("action", "Action") }))
                button.btn type="submit" { "Filter" }
            }
            @if entries.is_empty() {
                (ui::empty_state("Nothing recorded", "No audit entries match these filters.", None))
            } @else {
                table.table {
                    thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "User" } th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "From" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { (time::OffsetDateTime::from_unix_timestamp(e.at / 1000).map(|t| format!("{} {:02}:{:02}:{:02}", t.date(), t.hour(), t.minute(), t.second())).unwrap_or_default()) }
                                td { (e.actor) }
                                td { code { (e.action) } }
                                td { (e.target) }
                                td { (e.remote_addr) }
                                td { (ui::badge(Some(if e.outcome == "ok" { Tone::Ok } else { Tone::Err }), &e.outcome)) }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = next { p { a.btn href=(href) { "Older entries" } } }
        },
    ))
}
