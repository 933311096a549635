//! Probes and metrics: `/health` (liveness), `/ready` (Redis and the database answer),
//! `/metrics` (Prometheus text of this process: the edge's own metrics and, under `tradeflow
//! up`, every stage's). Never rate-limited, never authenticated: orchestrators and
//! Prometheus must always be able to look.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{Json, KeepBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    pub uptime_s: u64,
    pub version: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Liveness)))]
async fn health(State(state): State<AppState>) -> Json<Liveness> {
    Json(Liveness { status: "ok", uptime_s: state.started_at.elapsed().as_secs(), version: env!("CARGO_PKG_VERSION") })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub redis: Check,
    pub database: Check,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    pub ok: bool,
    pub latency_ms: f64,
    pub error: Option<String>,
}

pub async fn check_redis(state: &AppState) -> Check {
    let t = std::time::Instant::now();
    let r = tokio::time::timeout(std::time::Duration::from_secs(2), state.bus.ping()).await;
    let error = match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".into()),
    };
    Check { ok: error.is_none(), latency_ms: t.elapsed().as_secs_f64() * 1e3, error }
}

pub async fn check_database(state: &AppState) -> Check {
    let t = std::time::Instant::now();
    let error = match state.store() {
        Err(e) => Some(e.message),
        Ok(store) => {
            match tokio::time::timeout(std::time::Duration::from_secs(2), store.count(tradeflow_audit::Table::Audit))
                .await
            {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer within 2 s".into()),
            }
        }
    };
    Check { ok: error.is_none(), latency_ms: t.elapsed().as_secs_f64() * 1e3, error }
}

/// Readiness: Redis and the database answer (503 otherwise, with which one failed).
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "a dependency does not answer"),
))]
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (redis, database) = tokio::join!(check_redis(&state), check_database(&state));
    let ok = redis.ok && database.ok;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Readiness { status: if ok { "ready" } else { "not_ready" }, redis, database };
    // A 503 here is the probe's answer, not an error of the request: keep its own shape.
    let mut response = (status, axum::Json(body)).into_response();
    response.extensions_mut().insert(KeepBody);
    response
}

/// Prometheus text exposition of this process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.refresh_gauges();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], tradeflow_bus::metrics::render(&state.registry))
}
