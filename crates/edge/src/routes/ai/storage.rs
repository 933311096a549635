//! `GET /ai/history`, `GET /ai/storage/stats`, `POST /ai/storage/clear`: stored analyses.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(history)).routes(routes!(storage_stats)).routes(routes!(storage_clear))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The last `days` days, 1 to 365 (default 7).
    #[param(minimum = 1, maximum = 365)]
    pub days: Option<i64>,
    /// Entries of each list, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoredAnalysis {
    pub id: String,
    pub symbol: String,
    pub interval: String,
    pub open_time: i64,
    pub source: String,
    pub models: Vec<String>,
    /// Who asked (`scheduler` for a triggered cycle).
    pub actor: String,
    pub created_at: i64,
    /// The analysis as it was answered.
    #[schema(value_type = Object)]
    pub result: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalEntry {
    pub id: String,
    pub symbol: String,
    pub interval: String,
    pub open_time: i64,
    pub model: String,
    pub kind: String,
    pub action: String,
    pub confidence: f64,
    pub status: String,
    pub error: Option<String>,
    pub reasoning: String,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub recorded_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub days: i64,
    pub since: i64,
    /// Stored on-demand analyses, newest first.
    pub analyses: Vec<StoredAnalysis>,
    /// The pipeline's signals recorded in the window, newest first.
    pub signals: Vec<SignalEntry>,
}

/// Past on-demand analyses and the pipeline's recent signals.
#[utoipa::path(get, path = "/ai/history", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, body = History),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn history(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<History>, ApiError> {
    let days = check_limit("days", q.days, 7, 365)?;
    let limit = check_limit("limit", q.limit, 100, 1000)?;
    let since = tradeflow_core::time::now_ms() - days * DAY_MS;
    let store = state.store()?;
    let analyses = store
        .ai_analyses(since, limit)
        .await?
        .into_iter()
        .map(|r| StoredAnalysis {
            models: r.models.split(',').filter(|m| !m.is_empty()).map(String::from).collect(),
            result: serde_json::from_str(&r.result).unwrap_or(Value::Null),
            id: r.id,
            symbol: r.symbol,
            interval: r.interval,
            open_time: r.open_time,
            source: r.source,
            actor: r.actor,
            created_at: r.created_at,
        })
        .collect();
    let signals = store
        .recent_signals(since, limit)
        .await?
        .into_iter()
        .map(|s| SignalEntry {
            id: s.id,
            symbol: s.symbol,
            interval: s.interval,
            open_time: s.open_time,
            model: s.model,
            kind: s.model_kind,
            action: s.action,
            confidence: s.confidence,
            status: s.status,
            error: s.error,
            reasoning: s.reasoning,
            stop_loss: s.stop_loss,
            take_profit: s.take_profit,
            recorded_at: s.recorded_at,
        })
        .collect();
    Ok(Json(History { days, since, analyses, signals }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorageStats {
    pub analyses: i64,
    pub feedback: i64,
    pub oldest_analysis_at: Option<i64>,
    pub newest_analysis_at: Option<i64>,
    /// Size of the stored answers (JSON), bytes.
    pub analysis_bytes: i64,
    /// Live entries of the analysis cache, and its time to live.
    pub cache_entries: usize,
    pub cache_ttl_s: u64,
    /// Analyses run and cache hits since the edge started.
    pub analyses_run: u64,
    pub cache_hits: u64,
}

/// What the AI storage and the analysis cache hold.
#[utoipa::path(get, path = "/ai/storage/stats", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = StorageStats), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn storage_stats(State(state): State<AppState>, _who: Viewer) -> Result<Json<StorageStats>, ApiError> {
    let s = state.store()?.ai_storage_stats().await?;
    let (analyses_run, cache_hits) = {
        let c = lock(&state.ai.counters);
        (c.analyses, c.cache_hits)
    };
    Ok(Json(StorageStats {
        analyses: s.analyses,
        feedback: s.feedback,
        oldest_analysis_at: s.oldest_analysis_at,
        newest_analysis_at: s.newest_analysis_at,
        analysis_bytes: s.analysis_bytes,
        cache_entries: state.ai.cache_len(),
        cache_ttl_s: state.config.ai_cache_ttl_s,
        analyses_run,
        cache_hits,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Only what is older than this many days, 0 to 3650 (default: everything).
    #[schema(minimum = 0, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::error::integral_opt")]
    pub older_than_days: Option<i64>,
    /// Also the feedback (default false).
    #[serde(default)]
    pub include_feedback: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cleared {
    pub deleted_analyses: i64,
    pub deleted_feedback: i64,
    /// Cached analyses dropped (the whole cache).
    pub cache_entries_cleared: usize,
}

/// Deletes stored analyses (and feedback, if asked), and empties the analysis cache (admin).
#[utoipa::path(post, path = "/ai/storage/clear", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<ClearRequest>, description = "optional"),
    responses(
        (status = 200, body = Cleared),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn storage_clear(
    State(state): State<AppState>,
    Admin(who): Admin,
    meta: RequestMeta,
    body: Option<Json<ClearRequest>>,
) -> Result<Json<Cleared>, ApiError> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    if let Some(d) = req.older_than_days
        && !(0..=3650).contains(&d)
    {
        return Err(body_error("older_than_days", format!("older_than_days: expected 0 to 3650, got {d}")));
    }
    let before = req.older_than_days.map(|d| tradeflow_core::time::now_ms() - d * DAY_MS);
    let (deleted_analyses, deleted_feedback) = state.store()?.clear_ai_storage(before, req.include_feedback).await?;
    let cache_entries_cleared = state.ai.clear_cache();
    let details = json!({
        "older_than_days": req.older_than_days,
        "include_feedback": req.include_feedback,
        "deleted_analyses": deleted_analyses,
        "deleted_feedback": deleted_feedback,
    });
    state.audit(&meta.caller(who), "ai_storage_clear", "/api/v1/ai/storage", "ok", details).await?;
    Ok(Json(Cleared { deleted_analyses, deleted_feedback, cache_entries_cleared }))
}
