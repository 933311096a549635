//! The one error format of the edge:
//! `{"error": {"code", "message", "details"}, "request_id"}` with the matching status.
//!
//! Handlers return [`ApiError`]. Its `IntoResponse` cannot see the request, so it leaves the
//! error in the response's extensions and [`envelope_errors`] (a middleware that sees both)
//! writes the body with the request id. The same middleware wraps every other 4xx/5xx that
//! did not come from a handler (unknown route, wrong method, a layer's refusal), so a client
//! never has to parse two formats.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::request_id::RequestId;

/// An API error: status, stable machine-readable code, human message, optional details.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds to put in `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

/// The error body, for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `not_found`, `invalid_query`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// What the error is about (fields, limits, …); `null` when there is nothing to add.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Value::Null, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {name:?} not found"))
            .with_details(json!({ "resource": what, "name": name }))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A dependency (Redis, the database) failed: 503, the cause in the message. Never a
    /// 500: the edge's own code has no failure mode that is not a dependency's.
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{what} is unavailable: {cause}"))
            .with_details(json!({ "dependency": what }))
    }

    pub fn rate_limited(limit: u32, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry later")
            .with_details(json!({ "limit_per_minute": limit, "retry_after_s": retry_after }));
        e.retry_after = Some(retry_after);
        e
    }

    fn body(&self, request_id: Option<&str>) -> Value {
        json!({
            "error": { "code": self.code, "message": self.message, "details": self.details },
            "request_id": request_id,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body(None))).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<tradeflow_bus::BusError> for ApiError {
    fn from(e: tradeflow_bus::BusError) -> Self {
        use tradeflow_bus::BusError as B;
        match e {
            B::UnknownStream { name, known } => ApiError::not_found("stream", &name)
                .with_details(json!({ "resource": "stream", "name": name, "known": known })),
            B::DeadLetterNotFound { stream, id } => ApiError::not_found("dead letter", &format!("{stream} {id}")),
            B::UnknownGroup { stream, group, known } => ApiError::not_found("group", &format!("{stream}/{group}"))
                .with_details(json!({ "resource": "group", "stream": stream, "name": group, "known": known })),
            B::NoSuchPartition { stream, partition, partitions } => ApiError::not_found(
                "partition",
                &format!("{stream}/{partition}"),
            )
            .with_details(
                json!({ "resource": "partition", "stream": stream, "partition": partition, "partitions": partitions }),
            ),
            B::Invalid(reason) => ApiError::bad_request("invalid_request", reason),
            other => ApiError::unavailable("redis", other),
        }
    }
}

impl From<tradeflow_audit::AuditError> for ApiError {
    fn from(e: tradeflow_audit::AuditError) -> Self {
        ApiError::unavailable("database", e)
    }
}

/// Marks a 4xx/5xx response whose body is a deliberate answer of its own shape (a
/// readiness probe's 503), which [`envelope_errors`] must leave alone.
#[derive(Debug, Clone, Copy)]
pub struct KeepBody;

/// Middleware: writes every error response in the one format, with the request id.
pub async fn envelope_errors(request: Request, next: Next) -> Response {
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<KeepBody>().is_some() {
        return response;
    }
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(e) => e,
        // Not one of ours: an unknown route, a wrong method, a layer's refusal.
        None => {
            let code = match status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::REQUEST_TIMEOUT => "timeout",
                s if s.is_server_error() => "internal",
                _ => "bad_request",
            };
            let message = status.canonical_reason().unwrap_or("error").to_lowercase();
            ApiError::new(status, code, message)
        }
    };
    let mut headers = std::mem::take(response.headers_mut());
    headers.remove(header::CONTENT_LENGTH);
    let mut fresh = (status, axum::Json(error.body(request_id.as_deref()))).into_response();
    for (name, value) in headers.iter() {
        if name != header::CONTENT_TYPE {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    // A body over the limit is refused before it is read, and the server then drops the
    // connection: say so, or a client reusing the connection for its next request loses that
    // request (seen as hyper's IncompleteMessage in the edge tests, 2 runs in 10 under load).
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        fresh.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    fresh
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let (code, status) = match &r {
        JsonRejection::JsonDataError(_) => ("invalid_body", StatusCode::UNPROCESSABLE_ENTITY),
        JsonRejection::JsonSyntaxError(_) => ("malformed_json", StatusCode::BAD_REQUEST),
        JsonRejection::MissingJsonContentType(_) => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", status),
        _ => ("bad_request", status),
    };
    ApiError::new(status, code, r.body_text())
}

/// `axum::Json` whose refusals (malformed JSON, a wrong type, a missing field, a body over
/// the limit) come out in the error format, naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

/// `Option<Json<T>>`: `None` when the request has no body (no `Content-Type`) or its body is
/// JSON `null` (what a generated client sends for an optional body left out), otherwise the
/// body must parse.
impl<T, S> axum::extract::OptionalFromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let Some(content_type) = req.headers().get(header::CONTENT_TYPE) else {
            return Ok(None);
        };
        // What axum's JSON extractor takes: `application/json` or `application/*+json`.
        let json = content_type
            .to_str()
            .ok()
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !json {
            // Refused by the JSON extractor as any body is (415).
            return <Json<T> as FromRequest<S>>::from_request(req, state).await.map(Some);
        }
        // `Bytes` honours the body limit layer.
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_body" };
            ApiError::new(status, code, r.body_text())
        })?;
        if bytes.trim_ascii() == b"null" {
            return Ok(None);
        }
        axum::Json::<T>::from_bytes(&bytes).map(|axum::Json(v)| Some(Json(v))).map_err(json_rejection)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with refusals in the error format (400, the parameter named).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(ApiError::bad_request("invalid_query", r.body_text())),
        }
    }
}

/// `axum::extract::Path` with refusals in the error format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(ApiError::bad_request("invalid_path", r.body_text())),
        }
    }
}

/// Pagination shared by list routes: `limit` 1..=1000 (default 100), `offset` ≥ 0.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl Page {
    pub const MAX: i64 = 1000;

    /// (limit, offset), refused with 400 when out of range.
    pub fn resolve(&self, default: i64) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(default);
        if !(1..=Self::MAX).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit: expected 1 to {}, got {limit}", Self::MAX),
            )
            .with_details(json!({ "field": "limit", "min": 1, "max": Self::MAX, "got": limit })));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::bad_request("invalid_query", format!("offset: expected 0 or more, got {offset}"))
                .with_details(json!({ "field": "offset", "min": 0, "got": offset })));
        }
        Ok((limit, offset))
    }
}

/// A bound check for one `limit`-style query parameter.
pub fn check_limit(field: &'static str, value: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let v = value.unwrap_or(default);
    if (1..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::bad_request("invalid_query", format!("{field}: expected 1 to {max}, got {v}"))
            .with_details(json!({ "field": field, "min": 1, "max": max, "got": v })))
    }
}

/// A body's integer field: JSON Schema's `integer` admits `3.0`, which generated clients send,
/// where serde's `i64` refuses it; a fraction or a value past `i64` is still refused.
pub fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::Deserialize;
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // `i64::MAX as f64` rounds up to 2^63, itself past i64: hence `<`.
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Ok(f as i64),
        _ => Err(D::Error::custom(format!("expected an integer, got {n}"))),
    }
}

/// [`integral`] for an optional field (`null` or absent: `None`; with `#[serde(default)]`).
pub fn integral_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "integral")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(v)| v))
}

#[cfg(test)]
mod integral_tests {
    #[derive(serde::Deserialize)]
    struct V {
        #[serde(deserialize_with = "super::integral")]
        v: i64,
    }

    #[test]
    fn integral_floats_pass_and_fractions_do_not() {
        let v = |s: &str| serde_json::from_str::<V>(s).map(|v| v.v);
        assert_eq!(v(r#"{"v": 3}"#).unwrap(), 3);
        assert_eq!(v(r#"{"v": 19442095.0}"#).unwrap(), 19_442_095);
        assert!(v(r#"{"v": 1.5}"#).is_err());
        assert!(v(r#"{"v": 1e30}"#).is_err());
        assert!(v(r#"{"v": "3"}"#).is_err());
    }
}
