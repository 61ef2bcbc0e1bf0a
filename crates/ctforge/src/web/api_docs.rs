//! `GET /api/docs`: the JSON API, readable in the browser (from the same OpenAPI document the
//! API serves).

use axum::extract::State;
use maud::{Markup, html};

use crate::auth::CurrentUser;
use crate::state::AppState;
use crate::web::components as ui;

/// `GET /api/docs`.
pub async fn page(
    State(_state): State<AppState>,
    axum::Extension(user): axum::Extension<CurrentUser>,
) -> Markup {
    let doc = crate::openapi::document();
    let v = crate::web::home::viewer(&user);
    ui::layout(
        "API",
        "/api/docs",
        &v,
        html! {
            h1 { "JSON API" }
            p { "Machine-readable: " a href="/api/openapi.json" { code { "/api/openapi.json" } } ". Authenticate with " code { "Authorization: Bearer <token>" } " (" a href="/settings/tokens" { "create a token" } ")." }
            @if let Some(paths) = doc["paths"].as_object() {
                table.table {
                    thead { tr { th scope="col" { "Method" } th scope="col" { "Path" } th scope="col" { "Body" } th scope="col" { "Answer" } } }
                    tbody {
                        @for (path, item) in paths {
                            @if let Some(ops) = item.as_object() {
                                @for (method, op) in ops {
                                    tr {
                                        td { (ui::badge(None, &method.to_uppercase())) }
                                        td { code { (path) } }
                                        td { @if let Some(body) = op.get("requestBody") { details { summary { "schema" } pre.code { (serde_json::to_string_pretty(&body["content"]["application/json"]["schema"]).unwrap_or_default()) } } } }
                                        td {
                                            @if let Some(responses) = op["responses"].as_object() {
                                                @for (status, answer) in responses.iter().filter(|(s, _)| s.starts_with('2')) {
                                                    details { summary { (status) } pre.code { (serde_json::to_string_pretty(&answer["content"]).unwrap_or_default()) } }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
