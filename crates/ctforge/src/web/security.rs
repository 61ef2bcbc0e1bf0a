//! Response headers every answer carries (HTML pages, JSON, assets, errors): a
//! Content-Security-Policy that allows only our own scripts and styles (no inline script, no
//! `style=` attributes, no framing), `nosniff`, a same-origin referrer policy, and
//! `Cache-Control: no-store` on every answer that does not set its own caching (only the
//! static assets do), so no page showing or carrying a secret is kept by a browser or proxy.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The policy: everything from our own origin only; inline script and inline style refused
/// (pages keep their script in `assets/app.js`, `assets/theme.js` and their style in
/// `assets/app.css`), never framed, forms post only to us.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `Cache-Control` of every answer without its own: pages may show or carry a secret (the
/// wizard, a revealed credential, a new API token, settings), so browsers and proxies keep
/// no copy.
pub const NO_STORE: (HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

/// Middleware adding the security headers to every response (a handler's own value wins).
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Pages and API answers are per user and may show secrets (the wizard, a revealed
        // credential, a new API token): no copy is kept unless a handler allows it (assets).
        NO_STORE,
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
