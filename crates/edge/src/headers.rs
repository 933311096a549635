//! Security headers on every answer (OWASP's secure headers for an API): no MIME sniffing,
//! never framed, no referrer, no caching of authenticated answers, and a content security
//! policy. JSON answers get `default-src 'none'` (nothing in them may load anything); HTML pages
//! (the API docs at /docs, a backtest's report) keep their own policy when they set one, else
//! get one that allows only their own inline styles and scripts and same-origin requests.
//! No `Strict-Transport-Security`: the edge speaks plain HTTP and leaves TLS to the proxy in
//! front of it, which is where HSTS belongs (docs/security.md).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

const JSON_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const HTML_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; frame-ancestors 'none'";

pub async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if html { HTML_CSP } else { JSON_CSP }));
    }
    response
}
