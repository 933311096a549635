//! `POST /ai/analyze`: the configured models on a series, cached, stored and broadcast.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(analyze))
}

/// One model's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelAnalysis {
    pub model: String,
    /// `rule` or `llm`.
    pub kind: String,
    /// `ok`, or `error` (then `error` says why and the action is `hold`).
    pub status: String,
    pub error: Option<String>,
    /// `long`, `short` or `hold`.
    pub action: String,
    /// 0–1.
    pub confidence: f64,
    pub reasoning: String,
    /// Per-strategy scores (the `technical` model has one per strategy).
    pub scores: BTreeMap<String, f64>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub latency_us: u64,
}

impl From<&Signal> for ModelAnalysis {
    fn from(s: &Signal) -> Self {
        let (status, error) = match &s.status {
            SignalStatus::Ok => ("ok", None),
            SignalStatus::Error { reason } => ("error", Some(reason.clone())),
        };
        ModelAnalysis {
            model: s.model.clone(),
            kind: match s.model_kind {
                ModelKind::Rule => "rule",
                ModelKind::Ml => "ml",
                ModelKind::Llm => "llm",
            }
            .into(),
            status: status.into(),
            error,
            action: s.action.as_str().into(),
            confidence: s.confidence,
            reasoning: s.reasoning.clone(),
            scores: s.scores.clone(),
            stop_loss: s.stop_loss,
            take_profit: s.take_profit,
            latency_us: s.latency_us,
        }
    }
}

/// Answers by action.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Summary {
    pub long: usize,
    pub short: usize,
    pub hold: usize,
    /// Models that failed (counted in `hold` too).
    pub errors: usize,
}

/// An analysis of the last bar of a series by the configured models.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Analysis {
    pub id: String,
    pub symbol: String,
    pub interval: String,
    /// `store` (the symbol's stored candles) or `request` (the candles given).
    pub source: String,
    /// Bars the stage ran over.
    pub bars: usize,
    /// Open time and close of the bar analysed (the last).
    pub open_time: i64,
    pub close: f64,
    /// Trend, phase, ADX, support/resistance, volatility and volume at that bar.
    #[schema(value_type = Object)]
    pub market: MarketCondition,
    /// One answer per model: the rule models, then the LLM analysts.
    pub models: Vec<ModelAnalysis>,
    pub summary: Summary,
    pub created_at: i64,
    /// When the cached copy expires (epoch ms).
    pub expires_at: i64,
    /// Answered from the cache.
    pub cached: bool,
    /// Kept in the AI storage (false: no database, or the write failed).
    pub stored: bool,
}

pub(super) fn cache_key(series: &Series, origin: Origin, config: &StageConfig) -> String {
    let mut h = Sha256::new();
    for part in [origin, series.symbol.as_str(), series.interval.as_str()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for m in config.model_names() {
        h.update(m.as_bytes());
        h.update([0]);
    }
    for a in &config.analysts {
        h.update(a.name().as_bytes());
        h.update([0]);
    }
    for b in &series.bars {
        h.update(b.open_time().to_le_bytes());
        for v in [b.open(), b.high(), b.low(), b.close(), b.volume()] {
            h.update(v.to_bits().to_le_bytes());
        }
    }
    hex::encode(h.finalize())
}

pub(super) fn broadcast(state: &AppState, a: &Analysis) {
    let body = json!({
        "type": "ai_analysis",
        "channel": "signals",
        "symbol": a.symbol,
        "id": a.id,
        "time": a.created_at,
        "data": a,
    });
    if let Some(e) = crate::hub::Event::new("signals", Some(a.symbol.clone()), &body) {
        state.hub.publish(e);
    }
}

/// Analyses `series` with `config`'s models: from the cache when `use_cache` and it holds the
/// same analysis, otherwise run, stored, cached and broadcast.
pub(super) async fn analyse(
    state: &AppState,
    series: Series,
    origin: Origin,
    config: Arc<StageConfig>,
    actor: &str,
    use_cache: bool,
) -> Result<Analysis, ApiError> {
    let key = cache_key(&series, origin, &config);
    if use_cache && let Some(hit) = state.ai.cached(&key) {
        return Ok(hit);
    }
    let (symbol, interval, bars) = (series.symbol.clone(), series.interval, series.bars.len());
    let inferred = infer(config.clone(), series).await?;
    let ctx = inferred.context;
    let llm = engine::ask_analysts(&config.analysts, &ctx).await;
    let models: Vec<ModelAnalysis> = inferred.signals.iter().chain(llm.iter()).map(ModelAnalysis::from).collect();
    let mut summary = Summary::default();
    for m in &models {
        match m.action.as_str() {
            "long" => summary.long += 1,
            "short" => summary.short += 1,
            _ => summary.hold += 1,
        }
        summary.errors += usize::from(m.status != "ok");
    }
    let ttl = Duration::from_secs(state.config.ai_cache_ttl_s);
    let created_at = tradeflow_core::time::now_ms();
    let mut analysis = Analysis {
        id: format!("ana-{}", uuid::Uuid::new_v4()),
        symbol,
        interval: interval.as_str().into(),
        source: origin.into(),
        bars,
        open_time: ctx.open_time,
        close: ctx.close,
        market: ctx.market,
        models,
        summary,
        created_at,
        expires_at: created_at + ttl.as_millis() as i64,
        cached: false,
        stored: state.store.is_some(),
    };
    if let Some(store) = state.store.as_deref() {
        let row = AiAnalysisRow {
            id: analysis.id.clone(),
            symbol: analysis.symbol.clone(),
            interval: analysis.interval.clone(),
            open_time: analysis.open_time,
            source: analysis.source.clone(),
            models: analysis.models.iter().map(|m| m.model.as_str()).collect::<Vec<_>>().join(","),
            actor: actor.into(),
            result: serde_json::to_string(&analysis).unwrap_or_default(),
            created_at,
        };
        if let Err(e) = store.insert_ai_analysis(&row).await {
            warn!(error = %e, analysis = %analysis.id, "the analysis could not be stored");
            analysis.stored = false;
        }
    }
    lock(&state.ai.counters).analyses += 1;
    state.ai.put(key, analysis.clone(), ttl);
    broadcast(state, &analysis);
    Ok(analysis)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// A tracked symbol (its stored bars are analysed), or the name to give `candles`
    /// (default `CUSTOM`).
    #[schema(pattern = "^[A-Za-z0-9_./:-]{1,40}$")]
    pub symbol: Option<String>,
    /// Default: the symbol's interval; required with `candles`.
    #[schema(pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$")]
    pub interval: Option<String>,
    /// Bars to analyse instead of the stored ones, oldest first, at least 50, at most 5000.
    pub candles: Option<Vec<CandleInput>>,
    /// A subset of the configured models (default: all of them).
    #[schema(min_items = 1)]
    pub models: Option<Vec<String>>,
}

/// Analyses a tracked symbol, or the candles given, with the configured models (cached 300 s).
#[utoipa::path(post, path = "/ai/analyze", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = AnalyzeRequest,
    responses(
        (status = 200, body = Analysis),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn analyze(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(req): Json<AnalyzeRequest>,
) -> Result<Json<Analysis>, ApiError> {
    let config = state.ai.engine(&state)?.select(req.models.as_deref()).map_err(|e| selection_error(e, "models"))?;
    let (series, origin) = resolve(&state, req.symbol, req.interval, req.candles).await?;
    let caller = meta.caller(who);
    let analysis = analyse(&state, series, origin, config, &caller.identity.subject, true).await?;
    let details = json!({
        "id": analysis.id,
        "symbol": analysis.symbol,
        "interval": analysis.interval,
        "source": analysis.source,
        "cached": analysis.cached,
    });
    state.audit(&caller, "ai_analyze", "/api/v1/ai/analyze", "ok", details).await?;
    Ok(Json(analysis))
}
