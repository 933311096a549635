//! (to be written)

use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Seeds the live view from the store.
pub async fn seed(_state: &AppState) -> Result<(), ApiError> {
    Ok(())
}
