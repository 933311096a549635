//! The handlers, one module per area. Each module's `router()` returns its routes with their
//! OpenAPI descriptions (`utoipa_axum::routes!`), so the document cannot miss a route.
//!
//! Roles: reads need [`Viewer`](crate::auth::Viewer) (anonymous when `anonymous_read` is
//! on), mutations [`Trader`](crate::auth::Trader) or [`Admin`](crate::auth::Admin) as the
//! issue names them; every mutation is written to the audit log with actor and IP.

pub mod ai;
pub mod ai_multi;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod control;
pub mod data;
pub mod health;
pub mod market;
pub mod model_feedback;
pub mod model_jobs;
pub mod models;
pub mod monitoring;
pub mod news;
pub mod orders;
pub mod results;
pub mod streams;
pub mod tasks;
pub mod trading;
pub mod ws;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Everything under `/api/v1`.
pub fn api_v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(monitoring::router())
        .merge(streams::router())
        .merge(market::router())
        .merge(ai::router())
        .merge(ai_multi::router())
        .merge(trading::router())
        .merge(orders::router())
        .merge(analytics::router())
        .merge(control::router())
        .merge(audit::router())
        .merge(news::router())
        .merge(tasks::router())
        .merge(results::router())
        .merge(data::router())
        .merge(models::router())
}

/// Routes outside `/api/v1`: probes, metrics, the WebSocket.
pub fn root() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(health::router()).merge(ws::router())
}

/// Fills the live view from the store at start-up.
pub async fn seed(state: &AppState) -> Result<(), crate::error::ApiError> {
    market::seed(state).await?;
    trading::seed(state).await?;
    Ok(())
}
