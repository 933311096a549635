//! (to be written)

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// One analysis cycle over `symbol` or every tracked symbol: (symbols analysed, signals made).
pub async fn run_cycle(_state: &AppState, _symbol: Option<&str>) -> Result<(usize, usize), crate::error::ApiError> {
    Ok((0, 0))
}

/// State of the AI routes.
#[derive(Debug, Default)]
pub struct AiState {}
