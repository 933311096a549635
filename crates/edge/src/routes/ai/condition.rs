//! `POST /ai/market-condition`, `POST /ai/strategy-recommendations`: the market condition at
//! the last bar and the strategies ranked for it (the inference crate's `strategy` module).

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(market_condition)).routes(routes!(strategy_recommendations))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesRequest {
    /// A tracked symbol (its stored bars), or the name to give `candles` (default `CUSTOM`).
    #[schema(pattern = "^[A-Za-z0-9_./:-]{1,40}$")]
    pub symbol: Option<String>,
    /// Default: the symbol's interval; required with `candles`.
    #[schema(pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$")]
    pub interval: Option<String>,
    /// Bars instead of the stored ones, oldest first, 50 to 5000.
    pub candles: Option<Vec<CandleInput>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarketConditionView {
    pub symbol: String,
    pub interval: String,
    /// `store` or `request`.
    pub source: String,
    pub bars: usize,
    pub open_time: i64,
    pub close: f64,
    #[schema(value_type = Object)]
    pub market: MarketCondition,
    /// The indicators the condition is read from.
    #[schema(value_type = Object)]
    pub indicators: BTreeMap<&'static str, Option<f64>>,
    /// The condition in one sentence.
    pub summary: String,
}

/// The market condition at the last bar of a tracked symbol, or of the candles given.
#[utoipa::path(post, path = "/ai/market-condition", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = SeriesRequest,
    responses(
        (status = 200, body = MarketConditionView),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn market_condition(
    State(state): State<AppState>,
    _who: Trader,
    Json(req): Json<SeriesRequest>,
) -> Result<Json<MarketConditionView>, ApiError> {
    let config = state.ai.engine(&state)?.bare();
    let (series, origin) = resolve(&state, req.symbol, req.interval, req.candles).await?;
    let (symbol, interval, bars) = (series.symbol.clone(), series.interval, series.bars.len());
    let ctx = context_of(config, series).await?;
    let r = &ctx.indicators;
    let indicators = BTreeMap::from([
        ("adx_14", r.adx_14),
        ("plus_di_14", r.plus_di_14),
        ("minus_di_14", r.minus_di_14),
        ("atr_14", r.atr_14),
        ("ema_21", r.ema_21),
        ("ema_50", r.ema_50),
        ("rsi_14", r.rsi_14),
        ("bb_upper_20_2", r.bb_upper_20_2),
        ("bb_lower_20_2", r.bb_lower_20_2),
        ("volume_ratio_20", r.volume_ratio_20),
    ]);
    Ok(Json(MarketConditionView {
        symbol,
        interval: interval.as_str().into(),
        source: origin.into(),
        bars,
        open_time: ctx.open_time,
        close: ctx.close,
        summary: strategy::describe_condition(&ctx.market),
        market: ctx.market,
        indicators,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyRecommendation {
    pub strategy: String,
    /// 0–1: how well it suits the condition.
    pub suitability: f64,
    pub rationale: String,
    /// Its verdict at the last bar.
    pub action: String,
    pub score: f64,
    pub reasoning: String,
    /// Runs as a model of its own.
    pub configured: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub symbol: String,
    pub interval: String,
    pub source: String,
    pub open_time: i64,
    pub close: f64,
    #[schema(value_type = Object)]
    pub market: MarketCondition,
    /// Strategies with suitability ≥ 0.6, best first.
    pub recommended: Vec<String>,
    /// Every strategy, best suited first.
    pub strategies: Vec<StrategyRecommendation>,
}

/// Every rule strategy's verdict at the last bar, ranked by how well it suits the market
/// condition there.
#[utoipa::path(post, path = "/ai/strategy-recommendations", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = SeriesRequest,
    responses(
        (status = 200, body = Recommendations),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn strategy_recommendations(
    State(state): State<AppState>,
    _who: Trader,
    Json(req): Json<SeriesRequest>,
) -> Result<Json<Recommendations>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let (series, origin) = resolve(&state, req.symbol, req.interval, req.candles).await?;
    let (symbol, interval) = (series.symbol.clone(), series.interval);
    let inferred = infer(engine.every_strategy(), series).await?;
    let ctx = inferred.context;
    let configured = engine.rule_names();
    let ranked = strategy::recommend(&ctx.market, &inferred.signals);
    let recommended = ranked.iter().filter(|r| r.recommended()).map(|r| r.strategy.name().to_string()).collect();
    let strategies = ranked
        .into_iter()
        .map(|r| StrategyRecommendation {
            strategy: r.strategy.name().into(),
            configured: configured.contains(&r.strategy.name()),
            suitability: r.suitability,
            rationale: r.rationale,
            action: r.action.as_str().into(),
            score: r.score,
            reasoning: r.reasoning,
        })
        .collect();
    Ok(Json(Recommendations {
        symbol,
        interval: interval.as_str().into(),
        source: origin.into(),
        open_time: ctx.open_time,
        close: ctx.close,
        market: ctx.market,
        recommended,
        strategies,
    }))
}
