//! Error pages: every failed answer of a browser route (anything outside `/api/`) becomes an
//! HTML page inside the normal layout, with the navigation when the viewer is signed in. The
//! JSON error document stays the answer under `/api/` (see `api::json_errors`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::auth::CurrentUser;
use crate::error::ErrorMessage;
use crate::state::AppState;
use crate::web::components::{self as ui, Tone, Viewer};

/// Largest error body read to recover its message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Paths whose errors stay as they are: the API, machine endpoints and assets.
fn passes_through(path: &str) -> bool {
    path.starts_with("/api/")
        || path.starts_with("/static/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Middleware: renders error answers of browser routes as HTML pages. `401` keeps its answer
/// (anonymous pages are redirected to sign in before they get here; a script posting a form
/// without a session gets the short JSON error it can read).
pub async fn html_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if passes_through(request.uri().path()) {
        return next.run(request).await;
    }
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || status == StatusCode::UNAUTHORIZED
        || is_html(response.headers())
    {
        return response;
    }
    let user = match response.extensions().get::<CurrentUser>() {
        Some(user) => Some(user.clone()),
        // The fallback (unknown routes) runs outside `require_auth`.
        None => crate::auth::middleware::identify(&state, &headers)
            .await
            .ok()
            .flatten(),
    };
    let known = response.extensions().get::<ErrorMessage>().cloned();
    let (parts, body) = response.into_parts();
    let message = match known {
        Some(ErrorMessage(m)) => m,
        None => {
            let text = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
                Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
                Err(_) => String::new(),
            };
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text)
        }
    };
    let viewer = match &user {
        Some(user) => crate::web::home::viewer(user),
        None => Viewer::default(),
    };
    let mut page = (status, page(status, &message, &viewer)).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            page.headers_mut().insert(name.clone(), value.clone());
        }
    }
    page
}

fn title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "Invalid request",
        403 => "Not allowed",
        404 => "Not found",
        405 => "Not available here",
        409 => "Conflict",
        413 => "Too large",
        429 => "Too many attempts",
        500 => "Something went wrong",
        503 => "Unavailable",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

fn hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => {
            "The page or the thing it shows does not exist (any more). Check the address, or start from the dashboard."
        }
        403 => {
            "Your Proxmox permissions do not allow this. Ask an administrator, or sign in as another user."
        }
        409 => {
            "This conflicts with what is happening right now. Reload the page to see the current state, then try again."
        }
        500 => {
            "ctforge failed unexpectedly; the details are in its log. Try again, and report it if it keeps happening."
        }
        503 => "Proxmox or another service ctforge needs did not answer. Try again in a moment.",
        _ => "Go back and check what you entered.",
    }
}

/// The error page.
pub fn page(status: StatusCode, message: &str, viewer: &Viewer) -> maud::Markup {
    let title = title(status);
    ui::layout(
        title,
        "",
        viewer,
        html! {
            div.stack data-error-status=(status.as_u16()) {
                h1 { (title) " " span.muted { "(" (status.as_u16()) ")" } }
                @if !message.is_empty() {
                    (ui::alert(if status.is_server_error() { Tone::Err } else { Tone::Warn }, message))
                }
                p { (hint(status)) }
                p {
                    @if viewer.username.is_some() {
                        a.btn href="/" { "Go to the dashboard" }
                    } @else {
                        a.btn href="/login" { "Sign in" }
                    }
                }
            }
        },
    )
}
