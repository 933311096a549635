//! (to be written)

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// State of the monitoring routes.
#[derive(Debug, Default)]
pub struct MonitorState {}

/// Background work of the monitoring routes (e.g. sampling stream rates) until `stop`.
pub async fn run_background(_state: AppState, _stop: tokio_util::sync::CancellationToken) {}
