//! Probes and metrics: `/health` (liveness: the process can serve), `/ready` (Redis and the
//! database answer a ping), `/metrics` (Prometheus text of this process: the edge's own metrics
//! and, under `tradeflow up`, every stage's). Never authenticated, so that orchestrators and
//! Prometheus can always look; limited per address like every route (the `probe` class).
//!
//! `/health` is `ok` only while the process can serve: it is not shutting down, the tasks the
//! answers depend on (the tap that feeds the live view and the WebSocket, the status
//! publisher, the monitor's sampler) are running, and the control
//! follower that applies `ctl.commands` is alive. Otherwise 503 with what is wrong: a
//! restart is what helps. A dependency that does not answer (Redis, the database) is
//! readiness, not liveness: a restart would not bring it back.

use std::sync::{Mutex, OnceLock};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::KeepBody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

/// What the process needs to serve: its stop token and the background tasks it started.
#[derive(Debug, Default)]
pub struct Serving {
    stop: OnceLock<CancellationToken>,
    tasks: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl Serving {
    /// The token whose cancellation starts the shutdown.
    pub fn set_stop(&self, stop: CancellationToken) {
        let _ = self.stop.set(stop);
    }

    /// A task that runs as long as the process serves.
    pub fn watch(&self, name: &'static str, task: JoinHandle<()>) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push((name, task));
    }

    /// `stopping` while shutting down; else what keeps the process from serving, if anything.
    pub fn problems(&self, state: &AppState) -> (bool, Vec<String>) {
        if self.stop.get().is_some_and(|s| s.is_cancelled()) {
            return (true, vec!["shutting down".into()]);
        }
        let mut problems: Vec<String> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, t)| t.is_finished())
            .map(|(name, _)| format!("the {name} task has ended"))
            .collect();
        if state.control.has_changed().is_err() {
            problems.push("the control follower has ended: commands are no longer applied".into());
        }
        (false, problems)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// `ok`: the process can serve; `stopping`: it is shutting down; `failing`: a task it
    /// needs has ended (see `problems`).
    pub status: &'static str,
    /// Empty when `ok`.
    pub problems: Vec<String>,
    pub uptime_s: u64,
    pub version: &'static str,
}

/// Liveness: `ok` (200) only while the process can serve; `stopping` or `failing` (503) with
/// the problems otherwise.
#[utoipa::path(get, path = "/health", tag = "health", responses(
    (status = 200, body = Liveness),
    (status = 503, body = Liveness, description = "shutting down, or a task it needs has ended"),
    (status = 429, body = crate::error::ErrorBody)))]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (stopping, problems) = state.serving.problems(&state);
    let status = match (stopping, problems.is_empty()) {
        (true, _) => "stopping",
        (false, true) => "ok",
        (false, false) => "failing",
    };
    let code = if status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Liveness {
        status,
        problems,
        uptime_s: state.started_at.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
    };
    // A 503 here is the probe's answer, not an error of the request: keep its own shape.
    let mut response = (code, axum::Json(body)).into_response();
    response.extensions_mut().insert(KeepBody);
    response
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
            // `SELECT 1`: whether the database answers, without reading a table.
            match tokio::time::timeout(std::time::Duration::from_secs(2), store.ping()).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer within 2 s".into()),
            }
        }
    };
    Check { ok: error.is_none(), latency_ms: t.elapsed().as_secs_f64() * 1e3, error }
}

/// Readiness: Redis answers `PING` and the database `SELECT 1` (503 otherwise, with which one
/// failed).
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "a dependency does not answer"),
    (status = 429, body = crate::error::ErrorBody),
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
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, content_type = "text/plain", body = String), (status = 429, body = crate::error::ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.refresh_gauges();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], tradeflow_bus::metrics::render(&state.registry))
}
