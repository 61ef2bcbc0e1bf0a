//! The JSON API under `/api/v1`: thin handlers that parse input, call the use-case and answer
//! a typed response (`Serialize + JsonSchema`). Each `api/v1/*.rs` registers its routes with
//! their request and response types ([`routes`]), which is also the OpenAPI document.

pub mod v1;

use crate::routes::{Answer, Doc, Routes};

/// The JSON API's routes, module by module.
pub fn routes(r: Routes) -> Routes {
    let r = r.get(
        "/api/openapi.json",
        crate::openapi::json_document,
        Doc::answer(Answer::Json {
            status: 200,
            schema: crate::openapi::document_schema,
        }),
    );
    let r = v1::auth::routes(r);
    let r = v1::containers::routes(r);
    let r = v1::guests::routes(r);
    let r = v1::migrate::routes(r);
    let r = v1::container_ops::routes(r);
    let r = v1::drift::routes(r);
    let r = v1::provisioning::routes(r);
    let r = v1::guests_create::routes(r);
    let r = v1::jobs::routes(r);
    let r = v1::settings::routes(r);
    let r = v1::templates::routes(r);
    let r = v1::notifications::routes(r);
    let r = v1::presets::routes(r);
    let r = v1::fleet::routes(r);
    let r = v1::images::routes(r);
    v1::buckets::routes(r)
}

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest plain-text error body [`json_errors`] reads.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Middleware: every error answer under `/api/` is the JSON error document
/// (`{"error", "status", "fields"}`), including the plain-text rejections of axum's
/// extractors (a malformed path id, a body that is not JSON, a wrong content type).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut json = (
        status,
        axum::Json(crate::error::ErrorBody::new(status, text)),
    )
        .into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}
