//! `GET /news`: crypto news stories from the audit store (`md.news`, each story once), newest
//! published first.
//!
//! Filters: `symbol` (stories tagged with it; `market`: stories tagged with none), `since`
//! (published at or after: epoch ms or RFC 3339; anything else is a 400), `limit` 1 to 500
//! (default 50). Live stories: WebSocket channel `news` (event type `news`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tradeflow_audit::NewsRow;
use tradeflow_audit::query::news::NewsFilter;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Viewer;
use crate::error::{ApiError, Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(news))
}

pub const MAX_LIMIT: i64 = 500;
const DEFAULT_LIMIT: i64 = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NewsQuery {
    /// Stories tagged with this symbol (`BTCUSD`); `market`: stories about no configured symbol.
    #[param(pattern = "^[A-Za-z0-9_.-]{1,32}$")]
    pub symbol: Option<String>,
    /// Published at or after: epoch ms or RFC 3339.
    #[param(
        pattern = "^(-?[0-9]{1,15}|(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]))$"
    )]
    pub since: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewsStory {
    pub id: String,
    /// The feed it came from (`coindesk`, `cryptopanic`, ...).
    pub source: String,
    pub title: String,
    /// Canonical link; empty when the story had none.
    pub link: String,
    /// Plain text, clipped.
    pub summary: String,
    /// The configured symbols it names; empty: the market as a whole.
    pub symbols: Vec<String>,
    /// Epoch ms.
    pub published_at: i64,
    pub fetched_at: i64,
}

impl From<NewsRow> for NewsStory {
    fn from(r: NewsRow) -> Self {
        NewsStory {
            id: r.id,
            source: r.source,
            title: r.title,
            link: r.link,
            summary: r.summary,
            symbols: r.symbols.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            published_at: r.published_at,
            fetched_at: r.fetched_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewsPage {
    pub items: Vec<NewsStory>,
    pub limit: i64,
}

/// Recent news stories, newest published first.
#[utoipa::path(get, path = "/news", tag = "market", security(("bearer" = []), ("api_key" = [])),
    params(NewsQuery),
    responses(
        (status = 200, body = NewsPage),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn news(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<NewsQuery>,
) -> Result<Json<NewsPage>, ApiError> {
    let limit = crate::error::check_limit("limit", q.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let since = super::audit::time_param("since", q.since.as_deref())?;
    let symbol = match q.symbol.as_deref().map(str::trim) {
        None => None,
        Some(s)
            if !s.is_empty()
                && s.len() <= 32
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            // Symbols are upper case on md.news; `market` stays as it is.
            Some(if s.eq_ignore_ascii_case(tradeflow_core::news::MARKET) {
                tradeflow_core::news::MARKET.to_string()
            } else {
                s.to_ascii_uppercase()
            })
        }
        Some(s) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("symbol: {s:?} must be 1 to 32 letters, digits, '-', '_' or '.'"),
            )
            .with_details(json!({ "field": "symbol", "got": s })));
        }
    };
    let filter = NewsFilter { symbol: symbol.as_deref(), since };
    let rows = state.store()?.news(filter, limit).await?;
    Ok(Json(NewsPage { items: rows.into_iter().map(NewsStory::from).collect(), limit }))
}
