//! Request ids, client addresses and the access log.
//!
//! Every request gets an id: the caller's `X-Request-Id` when it is a sane token (so a
//! client or a proxy can correlate), otherwise a fresh UUID. It is echoed in the response
//! header, carried by the error body and the access log line, and written to the audit log
//! of mutating calls.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The caller's address (the TCP peer).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Middleware: request id, client address, access log.
pub async fn tag_requests(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let ip =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    request.extensions_mut().insert(RequestId(id.clone()));
    request.extensions_mut().insert(ClientIp(ip));
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    tracing::info!(
        target: "tradeflow_edge::access",
        request_id = %id,
        %ip,
        %method,
        path,
        route = route.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}
