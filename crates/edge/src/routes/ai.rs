//! AI and models: on-demand analysis with the configured models, what they are, how they did.
//!
//! An analysis runs the inference stage's own code ([`InferenceStage`]) over a series: a
//! tracked symbol's latest stored bars (at most [`HISTORY_BARS`]) or the candles of the
//! request, at least [`WARM_UP_BARS`] of them (422 otherwise, saying how many). The configured
//! models answer about the last bar: the rule models (`--models`) through the stage, then the
//! LLM analysts of the inference configuration (`--llm-config`), when there are any, each
//! asked once with the bar's context as the stage builds it. An on-demand analysis is asked
//! for: analysts analyse it whatever the bar's age (their `max_candle_age_s` is for replays).
//!
//! - `POST /ai/analyze` (trader): the analysis, cached `ai_cache_ttl_s` (300 s) by (symbol,
//!   interval, the bars, the models): a hit answers the same analysis with `cached: true`. A
//!   fresh analysis is stored (`ai_analyses`) and broadcast on the WebSocket (channel `signals`,
//!   type `ai_analysis`); a hit is neither (it was, when it was made).
//! - `GET /ai/info`, `GET /ai/strategies`: the models, analysts, rule strategies and parameters.
//! - `GET /ai/performance?days`: per model, measured: for every `ok` long/short signal
//!   recorded in the last `days`, the next stored bar of its series gives the realised
//!   outcome (hit when it moved the signal's way; return close to close, signed by the
//!   direction), plus the counts of signals by action and errors, and the users' feedback
//!   ratings (all time).
//! - `POST /ai/feedback` (trader): a 1–5 rating of a model, optionally about one analysis or
//!   signal (which must exist), stored in `ai_feedback`.
//! - `POST /ai/market-condition`, `POST /ai/strategy-recommendations` (trader: they compute):
//!   the market condition at the last bar; each rule strategy's verdict there, ranked by how
//!   well it suits that condition (see [`suitability`]).
//! - `GET /ai/cost/statistics`: LLM requests, tokens and cost summed over every process that
//!   runs analysts (each publishes its `tradeflow_llm_*` counters to Redis, see
//!   [`crate::llm_usage`]; this process's are read live); zeros when none ever ran.
//! - `GET /ai/history?days&limit`: stored analyses and the pipeline's recent signals.
//! - `GET /ai/storage/stats`, `POST /ai/storage/clear` (admin).
//! - `GET /models`: every configured model with what the edge saw of it on the tap. A model is
//!   *online* when the edge saw a signal of it produced within the last two bar intervals of
//!   the series it last spoke about (the shortest interval of that symbol; 1 h when unknown),
//!   so a model that stopped answering turns offline two bars later. After an edge restart
//!   every model is offline until its next signal.
//!
//! `POST /ai/analyze`, `/ai/feedback` and `/ai/storage/clear` change stored state and are
//! written to the audit log; the two other POSTs only compute.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;
use tradeflow_analytics::signals;
use tradeflow_audit::query::market::{AiAnalysisRow, AiFeedbackRow};
use tradeflow_core::market::{Bar, Candle, Interval};
use tradeflow_core::signal::{Level, MarketCondition, ModelKind, Phase, Signal, SignalStatus};
use tradeflow_inference::llm::{Analyst, LlmConfig, LlmMetrics};
use tradeflow_inference::rules::Strategy;
use tradeflow_inference::stage::{ModelContext, ModelSpec};
use tradeflow_inference::{InferenceStage, Inferred, StageConfig};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Trader, Viewer};
use crate::error::{ApiError, Json, Query, check_limit};
use crate::routes::market::{HISTORY_BARS, WARM_UP_BARS, known_intervals, symbol_problem, to_bars, tracked};
use crate::state::{AppState, Pipeline, RequestMeta};

/// Candles one request may carry.
pub const MAX_REQUEST_CANDLES: usize = 5000;
/// Latest open time a request's candle may have (9999-12-31T23:59:59.999Z), so that no time
/// computed from it overflows.
const MAX_OPEN_TIME: i64 = 253_402_300_799_999;
/// Analyses the cache holds at most.
const CACHE_CAP: usize = 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(analyze))
        .routes(routes!(info))
        .routes(routes!(strategies))
        .routes(routes!(performance))
        .routes(routes!(feedback))
        .routes(routes!(market_condition))
        .routes(routes!(strategy_recommendations))
        .routes(routes!(cost_statistics))
        .routes(routes!(history))
        .routes(routes!(storage_stats))
        .routes(routes!(storage_clear))
        .routes(routes!(models))
}

// ---------------------------------------------------------------------------------------------
// State: the models as configured, the analysis cache.

/// The configured models, built once from the pipeline's configuration with the inference
/// crate's constructors (as the inference worker builds them).
pub(crate) struct Engine {
    /// The rule models and the LLM analysts.
    config: Arc<StageConfig>,
    /// The registry of the edge's own analysts' metrics when the process registry already
    /// holds the pipeline's (`tradeflow up`).
    private_registry: Option<Registry>,
}

fn is_rule_model(name: &str) -> bool {
    ModelSpec::parse(name).is_some()
}

impl Engine {
    fn build(pipeline: &Pipeline, shared: &Registry) -> Result<Engine, String> {
        let rules: Vec<String> = pipeline.models.iter().filter(|m| is_rule_model(m)).cloned().collect();
        let mut config = if rules.is_empty() {
            StageConfig { models: Vec::new(), ..StageConfig::default() }
        } else {
            StageConfig::with_models(&rules).map_err(|p| format!("models: {}", p.join("; ")))?
        };
        let mut private_registry = None;
        if let Some(path) = &pipeline.llm_config {
            let llm = LlmConfig::load(path).map_err(|p| format!("{}: {}", path.display(), p.join("; ")))?;
            config.rules = llm.rules.clone();
            config.condition = llm.condition.clone();
            if !llm.analysts.is_empty() {
                let metrics = match LlmMetrics::register(shared) {
                    Ok(m) => m,
                    Err(_) => {
                        let r = Registry::new();
                        let m = LlmMetrics::register(&r).map_err(|e| e.to_string())?;
                        private_registry = Some(r);
                        m
                    }
                };
                let analysts = llm
                    .analysts
                    .into_iter()
                    .map(|a| Analyst::new(a, metrics.clone()).map(Arc::new))
                    .collect::<Result<Vec<_>, String>>()?;
                config = config.with_analysts(analysts).map_err(|p| p.join("; "))?;
            }
        }
        Ok(Engine { config: Arc::new(config), private_registry })
    }

    fn rule_names(&self) -> Vec<&'static str> {
        self.config.model_names()
    }

    /// The configured LLM analysts, in the configuration's order.
    pub(crate) fn analysts(&self) -> &[Arc<Analyst>] {
        &self.config.analysts
    }

    fn analyst_names(&self) -> Vec<&str> {
        self.config.analysts.iter().map(|a| a.name()).collect()
    }

    /// Every configured model: the rule models, then the analysts.
    fn names(&self) -> Vec<String> {
        self.rule_names()
            .into_iter()
            .map(String::from)
            .chain(self.analyst_names().into_iter().map(String::from))
            .collect()
    }

    fn kind_of(&self, name: &str) -> &'static str {
        if self.analyst_names().contains(&name) { "llm" } else { "rule" }
    }

    fn with_models(&self, models: Vec<ModelSpec>, analysts: Vec<Arc<Analyst>>) -> Arc<StageConfig> {
        Arc::new(StageConfig {
            models,
            rules: self.config.rules.clone(),
            condition: self.config.condition.clone(),
            analysts,
        })
    }

    /// No model: the indicators and the market condition only.
    pub(crate) fn bare(&self) -> Arc<StageConfig> {
        self.with_models(Vec::new(), Vec::new())
    }

    /// Each rule strategy as a model.
    fn every_strategy(&self) -> Arc<StageConfig> {
        self.with_models(Strategy::ALL.into_iter().map(ModelSpec::Rule).collect(), Vec::new())
    }

    /// The configured models, or the subset `wanted` of them (422 for an unknown name).
    fn select(&self, wanted: Option<&[String]>) -> Result<Arc<StageConfig>, ApiError> {
        let Some(wanted) = wanted else { return Ok(self.config.clone()) };
        let known = self.names();
        if wanted.is_empty() {
            return Err(ApiError::unprocessable("invalid_body", "models: give at least one model, or leave it out")
                .with_details(json!({ "field": "models", "known": known })));
        }
        if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
            return Err(ApiError::unprocessable("unknown_model", format!("model {bad:?} is not configured"))
                .with_details(json!({ "field": "models", "name": bad, "known": known })));
        }
        let models = self.config.models.iter().copied().filter(|m| wanted.iter().any(|w| w == m.name())).collect();
        let analysts = self.config.analysts.iter().filter(|a| wanted.iter().any(|w| w == a.name())).cloned().collect();
        Ok(self.with_models(models, analysts))
    }
}

struct Cached {
    expires: Instant,
    analysis: Analysis,
}

#[derive(Default)]
struct Counters {
    analyses: u64,
    cache_hits: u64,
}

/// State of the AI routes: the configured models (built on first use) and the analysis cache.
#[derive(Default)]
pub struct AiState {
    engine: OnceLock<Result<Arc<Engine>, String>>,
    cache: Mutex<HashMap<String, Cached>>,
    counters: Mutex<Counters>,
}

impl std::fmt::Debug for AiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiState").field("cache_entries", &self.cache_len()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AiState {
    /// The configured models (503 when the inference configuration cannot be read).
    pub(crate) fn engine(&self, state: &AppState) -> Result<Arc<Engine>, ApiError> {
        self.engine
            .get_or_init(|| Engine::build(&state.pipeline, &state.registry).map(Arc::new))
            .clone()
            .map_err(|e| ApiError::unavailable("inference configuration", e))
    }

    fn cached(&self, key: &str) -> Option<Analysis> {
        let mut cache = lock(&self.cache);
        let now = Instant::now();
        match cache.get(key) {
            Some(c) if c.expires > now => {
                let mut a = c.analysis.clone();
                a.cached = true;
                drop(cache);
                lock(&self.counters).cache_hits += 1;
                Some(a)
            }
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&self, key: String, analysis: Analysis, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut cache = lock(&self.cache);
        let now = Instant::now();
        if cache.len() >= CACHE_CAP {
            cache.retain(|_, c| c.expires > now);
        }
        if cache.len() >= CACHE_CAP
            && let Some(soonest) = cache.iter().min_by_key(|(_, c)| c.expires).map(|(k, _)| k.clone())
        {
            cache.remove(&soonest);
        }
        cache.insert(key, Cached { expires: now + ttl, analysis });
    }

    fn cache_len(&self) -> usize {
        let now = Instant::now();
        lock(&self.cache).values().filter(|c| c.expires > now).count()
    }

    fn clear_cache(&self) -> usize {
        let mut cache = lock(&self.cache);
        let n = cache.len();
        cache.clear();
        n
    }
}

// ---------------------------------------------------------------------------------------------
// Running the stage.

/// A series to analyse: the bars, oldest first, strictly increasing open times.
pub(crate) struct Series {
    pub source: String,
    pub symbol: String,
    pub interval: Interval,
    pub bars: Vec<Bar>,
}

fn skipped(e: tradeflow_inference::stage::Skip) -> ApiError {
    ApiError::unprocessable("invalid_candles", e.to_string())
}

/// The stage over every bar but the last with no model (indicators, range and previous
/// values only), then the configured models on the last bar: what the stage would have
/// answered about it.
fn run_stage(config: Arc<StageConfig>, s: &Series) -> Result<Inferred, ApiError> {
    let candle = |bar: &Bar| Candle {
        source: s.source.clone(),
        symbol: s.symbol.clone(),
        interval: s.interval,
        bar: *bar,
        aggregated: false,
    };
    let Some((last, history)) = s.bars.split_last() else {
        return Err(ApiError::unprocessable("insufficient_data", "no candles to analyse"));
    };
    let bare = Arc::new(StageConfig { models: Vec::new(), analysts: Vec::new(), ..StageConfig::clone(&config) });
    let mut warm = InferenceStage::new(bare);
    for bar in history {
        warm.on_candle(&candle(bar)).map_err(skipped)?;
    }
    let snapshot = warm.snapshot().map_err(|e| ApiError::unavailable("inference stage", e))?;
    let mut stage =
        InferenceStage::restore(config, &snapshot).map_err(|e| ApiError::unavailable("inference stage", e))?;
    stage.on_candle_with_context(&candle(last)).map_err(skipped)
}

/// [`run_stage`] on the blocking pool.
pub(crate) async fn infer(config: Arc<StageConfig>, series: Series) -> Result<Inferred, ApiError> {
    tokio::task::spawn_blocking(move || run_stage(config, &series))
        .await
        .map_err(|e| ApiError::unavailable("inference stage", e))?
}

/// The last bar's context (indicators, market condition) under `config`.
pub(crate) async fn context_of(config: Arc<StageConfig>, series: Series) -> Result<ModelContext, ApiError> {
    infer(config, series).await.map(|i| i.context)
}

/// One candle of a request.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandleInput {
    /// Epoch ms; strictly increasing along the list.
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Where an analysis's bars came from: `store` or `request`.
type Origin = &'static str;

fn insufficient(got: usize, what: &str) -> ApiError {
    ApiError::unprocessable(
        "insufficient_data",
        format!("{what}: {got} bars; at least {WARM_UP_BARS} are needed for every indicator"),
    )
    .with_details(json!({ "needed": WARM_UP_BARS, "got": got }))
}

/// The series a request names: the candles given (under `symbol`, default `CUSTOM`, and the
/// required `interval`) or a tracked symbol's stored bars (at its interval by default).
async fn resolve(
    state: &AppState,
    symbol: Option<String>,
    interval: Option<String>,
    candles: Option<Vec<CandleInput>>,
) -> Result<(Series, Origin), ApiError> {
    let parse_interval = |name: &str| {
        name.parse::<Interval>().map_err(|e| {
            ApiError::unprocessable("invalid_body", format!("interval: {e}"))
                .with_details(json!({ "field": "interval", "got": name, "known": known_intervals() }))
        })
    };
    if let Some(candles) = candles {
        let symbol = symbol.unwrap_or_else(|| "CUSTOM".into());
        if let Some(problem) = symbol_problem(&symbol) {
            return Err(ApiError::unprocessable("invalid_body", problem).with_details(json!({ "field": "symbol" })));
        }
        let Some(interval) = interval else {
            return Err(ApiError::unprocessable("invalid_body", "interval is required with candles")
                .with_details(json!({ "field": "interval", "known": known_intervals() })));
        };
        let interval = parse_interval(&interval)?;
        if candles.len() > MAX_REQUEST_CANDLES {
            return Err(ApiError::unprocessable(
                "invalid_candles",
                format!("{} candles; at most {MAX_REQUEST_CANDLES} per request", candles.len()),
            )
            .with_details(json!({ "field": "candles", "max": MAX_REQUEST_CANDLES, "got": candles.len() })));
        }
        let mut bars: Vec<Bar> = Vec::with_capacity(candles.len());
        for (i, c) in candles.iter().enumerate() {
            if !(0..=MAX_OPEN_TIME).contains(&c.open_time) {
                return Err(ApiError::unprocessable(
                    "invalid_candles",
                    format!("candles[{i}]: open_time {} is not an epoch-ms time before the year 10000", c.open_time),
                )
                .with_details(json!({ "field": "candles", "index": i })));
            }
            let bar = Bar::new(c.open_time, c.open, c.high, c.low, c.close, c.volume).map_err(|e| {
                ApiError::unprocessable("invalid_candles", format!("candles[{i}]: {e}"))
                    .with_details(json!({ "field": "candles", "index": i, "reason": e.to_string() }))
            })?;
            if let Some(prev) = bars.last()
                && bar.open_time() <= prev.open_time()
            {
                return Err(ApiError::unprocessable(
                    "invalid_candles",
                    format!(
                        "candles[{i}]: open_time {} is not after the previous one ({}); give the bars oldest first",
                        bar.open_time(),
                        prev.open_time()
                    ),
                )
                .with_details(json!({ "field": "candles", "index": i })));
            }
            bars.push(bar);
        }
        if bars.len() < WARM_UP_BARS {
            return Err(insufficient(bars.len(), "candles"));
        }
        return Ok((Series { source: "request".into(), symbol, interval, bars }, "request"));
    }
    let Some(symbol) = symbol else {
        return Err(ApiError::unprocessable("invalid_body", "give `symbol` (a tracked symbol) or `candles`")
            .with_details(json!({ "field": "symbol" })));
    };
    let p = tracked(state, &symbol)?;
    let interval = parse_interval(interval.as_deref().unwrap_or(&p.interval))?;
    let rows = state.store()?.candle_bars(&p.symbol, interval.as_str(), None, HISTORY_BARS).await?;
    if rows.len() < WARM_UP_BARS {
        return Err(insufficient(rows.len(), &format!("{} {interval} in the store", p.symbol)));
    }
    let source = rows.last().map(|r| r.source.clone()).unwrap_or_default();
    Ok((Series { source, symbol: p.symbol, interval, bars: to_bars(&rows)? }, "store"))
}

// ---------------------------------------------------------------------------------------------
// Analysis.

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

fn cache_key(series: &Series, origin: Origin, config: &StageConfig) -> String {
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

fn broadcast(state: &AppState, a: &Analysis) {
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
async fn analyse(
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
    // Asked now: the bar's age does not matter (analysed "at" its close).
    let llm =
        futures_util::future::join_all(config.analysts.iter().map(|a| a.analyse_at(&ctx, ctx.close_time()))).await;
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
    pub symbol: Option<String>,
    /// Default: the symbol's interval; required with `candles`.
    pub interval: Option<String>,
    /// Bars to analyse instead of the stored ones, oldest first, at least 50, at most 5000.
    pub candles: Option<Vec<CandleInput>>,
    /// A subset of the configured models (default: all of them).
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
async fn analyze(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(req): Json<AnalyzeRequest>,
) -> Result<Json<Analysis>, ApiError> {
    let config = state.ai.engine(&state)?.select(req.models.as_deref())?;
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

// ---------------------------------------------------------------------------------------------
// Info and strategies.

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub name: String,
    /// `rule` or `llm`.
    pub kind: String,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalystInfo {
    pub name: String,
    /// `openai` or `anthropic`.
    pub dialect: String,
    pub model: String,
    pub timeout_ms: u64,
    pub cache_ttl_s: u64,
    pub max_tokens: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AiInfo {
    /// The configured models: rule models, then LLM analysts.
    pub models: Vec<ModelInfo>,
    pub analysts: Vec<AnalystInfo>,
    pub llm_configured: bool,
    /// How long analyses are cached.
    pub cache_ttl_s: u64,
    /// Bars an analysis needs at least.
    pub warm_up_bars: usize,
    /// Stored bars an analysis of a symbol runs over at most.
    pub history_bars: i64,
    pub max_request_candles: usize,
    pub intervals: Vec<&'static str>,
    /// Rule strategy parameters (`[rules]`).
    #[schema(value_type = Object)]
    pub rules: Value,
    /// Market-condition thresholds (`[condition]`).
    #[schema(value_type = Object)]
    pub condition: Value,
}

fn strategy_text(s: Strategy) -> (&'static str, &'static [&'static str], &'static [&'static str]) {
    match s {
        Strategy::Rsi => (
            "RSI(14) mean reversion: long below rsi_oversold, short above rsi_overbought; the score grows with the distance past the threshold",
            &["rsi_14"],
            &["rsi_oversold", "rsi_overbought"],
        ),
        Strategy::Macd => (
            "MACD(12,26,9) momentum: the histogram's side gives the direction; a fresh crossing scores at least 0.5; |hist|/close saturates at macd_full_scale",
            &["macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9"],
            &["macd_full_scale"],
        ),
        Strategy::Bollinger => (
            "Bollinger Bands(20, 2) mean reversion: long at or below the lower band, short at or above the upper band (%b)",
            &["bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2"],
            &[],
        ),
        Strategy::Volume => (
            "Volume spike: volume at least volume_spike times its 20-bar average on a rising (falling) bar is long (short)",
            &["volume_ratio_20"],
            &["volume_spike"],
        ),
        Strategy::Stochastic => (
            "Slow stochastic(14,3,3) turns: long when %K, below stoch_oversold, is above %D; short when %K, above stoch_overbought, is below %D",
            &["stoch_slowk_14_3_3", "stoch_slowd_14_3_3"],
            &["stoch_oversold", "stoch_overbought"],
        ),
    }
}

const TECHNICAL_TEXT: &str = "the five rule strategies voting: net score (long +, short −) over five is the confidence; below 0.1 they cancel out (hold)";

/// The configured models, the LLM analysts, cache and warm-up, the rule and condition parameters.
#[utoipa::path(get, path = "/ai/info", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = AiInfo), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn info(State(state): State<AppState>, _who: Viewer) -> Result<Json<AiInfo>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let mut models: Vec<ModelInfo> = engine
        .rule_names()
        .into_iter()
        .map(|name| ModelInfo {
            name: name.into(),
            kind: "rule".into(),
            description: match Strategy::parse(name) {
                Some(s) => strategy_text(s).0.into(),
                None => TECHNICAL_TEXT.into(),
            },
        })
        .collect();
    let analysts: Vec<AnalystInfo> = engine
        .config
        .analysts
        .iter()
        .map(|a| {
            let c = a.config();
            AnalystInfo {
                name: c.name.clone(),
                dialect: c.dialect.clone(),
                model: c.model.clone(),
                timeout_ms: c.timeout_ms,
                cache_ttl_s: c.cache_ttl_s,
                max_tokens: c.max_tokens,
            }
        })
        .collect();
    models.extend(engine.config.analysts.iter().map(|a| ModelInfo {
        name: a.name().into(),
        kind: "llm".into(),
        description: format!("LLM analyst {}", a.describe()),
    }));
    Ok(Json(AiInfo {
        models,
        llm_configured: !analysts.is_empty(),
        analysts,
        cache_ttl_s: state.config.ai_cache_ttl_s,
        warm_up_bars: WARM_UP_BARS,
        history_bars: HISTORY_BARS,
        max_request_candles: MAX_REQUEST_CANDLES,
        intervals: known_intervals(),
        rules: serde_json::to_value(&engine.config.rules).unwrap_or(Value::Null),
        condition: serde_json::to_value(&engine.config.condition).unwrap_or(Value::Null),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StrategyInfo {
    pub name: String,
    pub description: String,
    /// The indicator columns it reads.
    pub indicators: Vec<&'static str>,
    /// Its parameters and their configured values.
    #[schema(value_type = Object)]
    pub parameters: BTreeMap<&'static str, Value>,
    /// Runs as a model of its own (`--models`).
    pub runs_as_model: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Strategies {
    pub strategies: Vec<StrategyInfo>,
    /// The `technical` composite: every strategy votes.
    pub composite: ModelInfo,
    pub composite_configured: bool,
}

/// The rule strategies: what each reads and does, their parameters, which run as models.
#[utoipa::path(get, path = "/ai/strategies", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Strategies), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn strategies(State(state): State<AppState>, _who: Viewer) -> Result<Json<Strategies>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let rules = serde_json::to_value(&engine.config.rules).unwrap_or(Value::Null);
    let names = engine.rule_names();
    let strategies = Strategy::ALL
        .into_iter()
        .map(|s| {
            let (description, indicators, params) = strategy_text(s);
            StrategyInfo {
                name: s.name().into(),
                description: description.into(),
                indicators: indicators.to_vec(),
                parameters: params.iter().map(|p| (*p, rules.get(*p).cloned().unwrap_or(Value::Null))).collect(),
                runs_as_model: names.contains(&s.name()),
            }
        })
        .collect();
    Ok(Json(Strategies {
        strategies,
        composite: ModelInfo { name: "technical".into(), kind: "rule".into(), description: TECHNICAL_TEXT.into() },
        composite_configured: names.contains(&"technical"),
    }))
}

// ---------------------------------------------------------------------------------------------
// Performance and feedback.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Signals recorded in the last `days` days, 1 to 365 (default 30).
    pub days: Option<i64>,
}

/// Realised outcomes of directional calls.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Outcomes {
    /// Calls whose next bar is stored.
    pub evaluated: i64,
    /// Of them, those the next bar moved their way.
    pub hits: i64,
    pub hit_rate: Option<f64>,
    /// Mean next-bar return in the call's direction (a fraction: 0.01 is 1 %).
    pub mean_return: Option<f64>,
}

impl From<signals::Outcomes> for Outcomes {
    fn from(o: signals::Outcomes) -> Self {
        Outcomes { evaluated: o.evaluated, hits: o.hits, hit_rate: o.hit_rate, mean_return: o.mean_return }
    }
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FeedbackSummary {
    pub count: i64,
    pub mean_rating: Option<f64>,
    /// Ratings of 4 or 5.
    pub positive: i64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ModelPerformance {
    pub model: String,
    pub kind: String,
    /// One of the configured models.
    pub configured: bool,
    /// Signals recorded in the window.
    pub signals: i64,
    pub long: i64,
    pub short: i64,
    pub hold: i64,
    pub errors: i64,
    pub mean_confidence: Option<f64>,
    pub mean_latency_us: Option<f64>,
    /// Long and short calls together.
    pub outcomes: Outcomes,
    pub long_outcomes: Outcomes,
    pub short_outcomes: Outcomes,
    pub feedback: FeedbackSummary,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Performance {
    pub days: i64,
    /// Signals recorded since (epoch ms).
    pub since: i64,
    pub method: &'static str,
    pub models: Vec<ModelPerformance>,
}

const DAY_MS: i64 = 86_400_000;

fn perf_entry<'a>(
    map: &'a mut BTreeMap<String, ModelPerformance>,
    model: &str,
    kind: &str,
) -> &'a mut ModelPerformance {
    map.entry(model.to_string()).or_insert_with(|| ModelPerformance {
        model: model.into(),
        kind: kind.into(),
        ..ModelPerformance::default()
    })
}

/// Per model, measured: signal counts, realised next-bar outcomes of its long/short calls,
/// and feedback ratings.
#[utoipa::path(get, path = "/ai/performance", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    params(DaysQuery),
    responses(
        (status = 200, body = Performance),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn performance(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<DaysQuery>,
) -> Result<Json<Performance>, ApiError> {
    let days = check_limit("days", q.days, 30, 365)?;
    let since = tradeflow_core::time::now_ms() - days * DAY_MS;
    let engine = state.ai.engine(&state)?;
    let store = state.store()?;
    let configured = engine.names();
    let mut by_model: BTreeMap<String, ModelPerformance> = configured
        .iter()
        .map(|m| {
            let p = ModelPerformance {
                model: m.clone(),
                kind: engine.kind_of(m).into(),
                configured: true,
                ..ModelPerformance::default()
            };
            (m.clone(), p)
        })
        .collect();
    // Per model: confidence and latency (means of groups of rows), and realised outcomes.
    let mut means: HashMap<String, (signals::PooledMean, signals::PooledMean)> = HashMap::new();
    let mut outcomes: HashMap<String, [signals::Outcomes; 3]> = HashMap::new();
    for c in store.signal_counts(since).await? {
        let p = perf_entry(&mut by_model, &c.model, &c.model_kind);
        p.kind = c.model_kind.clone();
        p.signals += c.count;
        match c.action.as_str() {
            "long" => p.long += c.count,
            "short" => p.short += c.count,
            _ => p.hold += c.count,
        }
        if c.status != "ok" {
            p.errors += c.count;
        }
        let m = means.entry(c.model.clone()).or_default();
        m.0.add(c.mean_confidence, c.count);
        m.1.add(c.mean_latency_us, c.count);
    }
    for (model, (conf, lat)) in means {
        if let Some(p) = by_model.get_mut(&model) {
            p.mean_confidence = conf.mean();
            p.mean_latency_us = lat.mean();
        }
    }
    for o in store.signal_outcomes(since).await? {
        perf_entry(&mut by_model, &o.model, "rule");
        // All calls, long calls, short calls.
        let [all, long, short] = outcomes.entry(o.model.clone()).or_default();
        all.add(o.signals, o.hits, o.return_sum);
        match o.action.as_str() {
            "long" => long.add(o.signals, o.hits, o.return_sum),
            _ => short.add(o.signals, o.hits, o.return_sum),
        }
    }
    for (model, [all, long, short]) in outcomes {
        if let Some(p) = by_model.get_mut(&model) {
            (p.outcomes, p.long_outcomes, p.short_outcomes) = (all.into(), long.into(), short.into());
        }
    }
    for f in store.ai_feedback_stats().await? {
        let p = perf_entry(&mut by_model, &f.model, engine.kind_of(&f.model));
        p.feedback = FeedbackSummary { count: f.count, mean_rating: Some(f.mean_rating), positive: f.positive };
    }
    Ok(Json(Performance {
        days,
        since,
        method: "for each ok long/short signal recorded since `since`, the next stored bar of its series: a hit when \
                 it closed above (long) or below (short) the signal's bar close; return = the close-to-close change \
                 in the call's direction. Feedback: every rating stored",
        models: by_model.into_values().collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// A configured model (or one the pipeline has run).
    pub model: String,
    /// 1 (useless) to 5 (excellent).
    pub rating: i64,
    /// An analysis of `/ai/analyze` or `/ai/history` this is about.
    pub analysis_id: Option<String>,
    /// A stored signal this is about.
    pub signal_id: Option<String>,
    pub symbol: Option<String>,
    /// At most 2000 characters.
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackAck {
    pub id: String,
    pub model: String,
    pub rating: i64,
    pub created_at: i64,
}

fn body_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_body", message).with_details(json!({ "field": field }))
}

/// Rates a model (1–5), optionally about one analysis or signal; counted in `/ai/performance`.
#[utoipa::path(post, path = "/ai/feedback", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = FeedbackRequest,
    responses(
        (status = 201, body = FeedbackAck),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn feedback(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(req): Json<FeedbackRequest>,
) -> Result<(StatusCode, Json<FeedbackAck>), ApiError> {
    let engine = state.ai.engine(&state)?;
    let mut known = engine.names();
    known.extend(state.live.models().into_iter().map(|m| m.model).filter(|m| !engine.names().contains(m)));
    if !known.contains(&req.model) {
        return Err(ApiError::unprocessable("unknown_model", format!("model {:?} is not known", req.model))
            .with_details(json!({ "field": "model", "known": known })));
    }
    if !(1..=5).contains(&req.rating) {
        return Err(body_error("rating", format!("rating: expected 1 to 5, got {}", req.rating)));
    }
    if let Some(s) = &req.symbol
        && let Some(problem) = symbol_problem(s)
    {
        return Err(body_error("symbol", problem));
    }
    if req.comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(body_error("comment", "comment: at most 2000 characters"));
    }
    for (field, id) in [("analysis_id", &req.analysis_id), ("signal_id", &req.signal_id)] {
        if id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 300) {
            return Err(body_error(field, format!("{field}: 1 to 300 characters")));
        }
    }
    let store = state.store()?;
    if let Some(id) = &req.analysis_id
        && !store.ai_analysis_exists(id).await?
    {
        return Err(ApiError::not_found("analysis", id));
    }
    if let Some(id) = &req.signal_id
        && !store.signal_exists(id).await?
    {
        return Err(ApiError::not_found("signal", id));
    }
    let caller = meta.caller(who);
    let created_at = tradeflow_core::time::now_ms();
    let row = AiFeedbackRow {
        id: format!("fb-{}", uuid::Uuid::new_v4()),
        model: req.model,
        rating: req.rating,
        analysis_id: req.analysis_id,
        signal_id: req.signal_id,
        symbol: req.symbol,
        comment: req.comment,
        actor: caller.identity.subject.clone(),
        created_at,
    };
    store.insert_ai_feedback(&row).await?;
    let details = json!({ "id": row.id, "model": row.model, "rating": row.rating, "analysis_id": row.analysis_id, "signal_id": row.signal_id });
    state.audit(&caller, "ai_feedback", "/api/v1/ai/feedback", "ok", details).await?;
    Ok((StatusCode::CREATED, Json(FeedbackAck { id: row.id, model: row.model, rating: row.rating, created_at })))
}

// ---------------------------------------------------------------------------------------------
// Market condition and strategy recommendations.

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeriesRequest {
    /// A tracked symbol (its stored bars), or the name to give `candles` (default `CUSTOM`).
    pub symbol: Option<String>,
    /// Default: the symbol's interval; required with `candles`.
    pub interval: Option<String>,
    /// Bars instead of the stored ones, oldest first, 50 to 5000.
    pub candles: Option<Vec<CandleInput>>,
}

/// The name serde gives a value (`trending_up`, `high`, ...).
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) => "unknown".into(),
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
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

fn describe(m: &MarketCondition) -> String {
    let opt = |v: Option<f64>, digits: usize| v.map_or("n/a".into(), |v| format!("{v:.digits$}"));
    format!(
        "{}, {} (ADX {}); volatility {} (ATR {} % of the close); volume {} ({}x its average); support {}, resistance {}",
        name_of(&m.trend),
        name_of(&m.phase),
        opt(m.trend_strength, 1),
        name_of(&m.volatility),
        opt(m.atr_pct.map(|p| p * 100.0), 2),
        name_of(&m.volume),
        opt(m.volume_ratio, 2),
        opt(m.support, 2),
        opt(m.resistance, 2),
    )
}

/// The market condition at the last bar of a tracked symbol, or of the candles given.
#[utoipa::path(post, path = "/ai/market-condition", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = SeriesRequest,
    responses(
        (status = 200, body = MarketConditionView),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn market_condition(
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
        summary: describe(&ctx.market),
        market: ctx.market,
        indicators,
    }))
}

/// How well a strategy suits a market condition, 0–1, and why. Trend followers (MACD) suit an
/// active trend, mean-reversion strategies (RSI, Bollinger, stochastic) a range, volume a
/// breakout; high volatility weakens mean reversion, low volume the volume strategy.
pub(crate) fn suitability(s: Strategy, m: &MarketCondition) -> (f64, String) {
    let (base, why): (f64, &str) = match (m.phase, s) {
        (Phase::ActiveTrading, Strategy::Macd) => {
            (0.9, "a trend is under way (ADX above the threshold): momentum follows it")
        }
        (Phase::ActiveTrading, Strategy::Volume) => (0.6, "volume spikes confirm moves within a trend"),
        (Phase::ActiveTrading, Strategy::Rsi | Strategy::Stochastic) => {
            (0.35, "oscillators stay overbought/oversold for long in a trend")
        }
        (Phase::ActiveTrading, Strategy::Bollinger) => (0.3, "prices ride a band in a trend"),
        (Phase::Consolidation, Strategy::Bollinger) => (0.9, "no trend worth the name: prices revert inside the bands"),
        (Phase::Consolidation, Strategy::Rsi) => (0.8, "no trend: RSI extremes tend to revert"),
        (Phase::Consolidation, Strategy::Stochastic) => (0.8, "no trend: stochastic turns at extremes mark the range"),
        (Phase::Consolidation, Strategy::Volume) => (0.4, "volume spikes are rare and short-lived in a range"),
        (Phase::Consolidation, Strategy::Macd) => (0.3, "MACD whipsaws without a trend"),
        (Phase::Breakout, Strategy::Volume) => (0.9, "the close left the recent range: volume tells a real breakout"),
        (Phase::Breakout, Strategy::Macd) => (0.7, "momentum follows a breakout"),
        (Phase::Breakout, Strategy::Bollinger) => {
            (0.5, "a close outside the bands starts a move as often as it reverts")
        }
        (Phase::Breakout, Strategy::Rsi | Strategy::Stochastic) => (0.3, "oscillators fade breakouts too early"),
    };
    let mut score = base;
    let mut why = why.to_string();
    if m.volatility == Some(Level::High) && matches!(s, Strategy::Rsi | Strategy::Bollinger | Strategy::Stochastic) {
        score -= 0.1;
        why.push_str("; high volatility stretches the extremes");
    }
    if m.volume == Some(Level::Low) && s == Strategy::Volume {
        score -= 0.2;
        why.push_str("; volume is low");
    }
    (score.clamp(0.0, 1.0), why)
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
async fn strategy_recommendations(
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
    let mut strategies: Vec<StrategyRecommendation> = Strategy::ALL
        .into_iter()
        .zip(&inferred.signals)
        .map(|(s, sig)| {
            let (suitability, rationale) = suitability(s, &ctx.market);
            StrategyRecommendation {
                strategy: s.name().into(),
                suitability,
                rationale,
                action: sig.action.as_str().into(),
                score: sig.confidence,
                reasoning: sig.reasoning.clone(),
                configured: configured.contains(&s.name()),
            }
        })
        .collect();
    strategies.sort_by(|a, b| b.suitability.total_cmp(&a.suitability).then(b.score.total_cmp(&a.score)));
    let recommended = strategies.iter().filter(|s| s.suitability >= 0.6).map(|s| s.strategy.clone()).collect();
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

// ---------------------------------------------------------------------------------------------
// Cost, history, storage.

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct AnalystCost {
    pub analyst: String,
    /// Requests (and analyses made without one) by outcome: ok, http_error, rate_limited,
    /// timeout, malformed, skipped, cached.
    pub requests: BTreeMap<String, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// HTTP requests timed, and their mean duration.
    pub http_requests: u64,
    pub mean_request_seconds: Option<f64>,
}

/// One process's share.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessCost {
    /// `host:pid:start`.
    pub process: String,
    /// This edge's own process (its counters read live).
    pub this_process: bool,
    /// When its counters were published (epoch ms; now for this process).
    pub updated_at: i64,
    pub cost_usd: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostStatistics {
    /// Whether this edge's inference configuration has LLM analysts (the workers' may).
    pub llm_configured: bool,
    /// The configured models (rule models cost nothing).
    pub models: Vec<String>,
    /// Summed over every process.
    pub analysts: Vec<AnalystCost>,
    pub total_requests: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub total_cost_usd: f64,
    /// Every process that ran analysts, with its cost.
    pub processes: Vec<ProcessCost>,
    /// Where the numbers come from.
    pub source: &'static str,
}

impl AiState {
    /// This process's `tradeflow_llm_*` metric families: the process registry's (the
    /// pipeline's analysts under `tradeflow up`) and those of the edge's own analysts.
    pub fn llm_families(&self, state: &AppState) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = state.registry.gather();
        if let Some(Ok(engine)) = self.engine.get()
            && let Some(r) = &engine.private_registry
        {
            families.extend(r.gather());
        }
        families.retain(|f| f.name().starts_with("tradeflow_llm_"));
        families
    }
}

/// LLM requests, tokens and cost per analyst, summed over every process that runs analysts
/// (`worker inference`, `tradeflow up`, the edges): each publishes its counters to Redis every
/// 5 s (see `llm_usage`); this process's own are read live. 503 when Redis cannot be read:
/// a total without the workers would pass for the whole.
#[utoipa::path(get, path = "/ai/cost/statistics", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = CostStatistics), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn cost_statistics(State(state): State<AppState>, _who: Viewer) -> Result<Json<CostStatistics>, ApiError> {
    use crate::llm_usage::{self, AnalystUsage, ProcessUsage};
    let engine = state.ai.engine(&state)?;
    let own = ProcessUsage {
        process: llm_usage::process_id().into(),
        updated_at: tradeflow_core::time::now_ms(),
        analysts: llm_usage::collect(&state.ai.llm_families(&state)),
    };
    let mut usages = llm_usage::read_all(&state.bus).await.map_err(|e| ApiError::unavailable("redis", e))?;
    usages.retain(|u| u.process != own.process);
    let mut by: BTreeMap<String, AnalystUsage> =
        engine.analyst_names().into_iter().map(|n| (n.to_string(), AnalystUsage::default())).collect();
    let mut processes = Vec::new();
    for (u, this_process) in usages.iter().map(|u| (u, false)).chain(std::iter::once((&own, true))) {
        for (name, a) in &u.analysts {
            by.entry(name.clone()).or_default().add(a);
        }
        if this_process && u.analysts.is_empty() {
            continue;
        }
        processes.push(ProcessCost {
            process: u.process.clone(),
            this_process,
            updated_at: u.updated_at,
            cost_usd: u.cost_usd(),
        });
    }
    let analysts: Vec<AnalystCost> = by
        .into_iter()
        .map(|(analyst, a)| AnalystCost {
            mean_request_seconds: (a.http_requests > 0).then(|| a.request_seconds_sum / a.http_requests as f64),
            analyst,
            requests: a.requests,
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            cost_usd: a.cost_usd,
            http_requests: a.http_requests,
        })
        .collect();
    Ok(Json(CostStatistics {
        llm_configured: !engine.config.analysts.is_empty(),
        models: engine.names(),
        total_requests: analysts.iter().flat_map(|a| a.requests.values()).sum(),
        total_input_tokens: analysts.iter().map(|a| a.input_tokens).sum(),
        total_output_tokens: analysts.iter().map(|a| a.output_tokens).sum(),
        total_cost_usd: analysts.iter().map(|a| a.cost_usd).sum(),
        analysts,
        processes,
        source: "the tradeflow_llm_* counters of every process that runs analysts (worker inference, tradeflow up, \
                 the edges), published to Redis every 5 s; this process's read live",
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The last `days` days, 1 to 365 (default 7).
    pub days: Option<i64>,
    /// Entries of each list, 1 to 1000 (default 100).
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
async fn history(
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
async fn storage_stats(State(state): State<AppState>, _who: Viewer) -> Result<Json<StorageStats>, ApiError> {
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
async fn storage_clear(
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

// ---------------------------------------------------------------------------------------------
// Models.

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelStatus {
    pub name: String,
    /// `rule` or `llm`.
    pub kind: String,
    /// One of the configured models (false: seen on the tap but not configured here).
    pub configured: bool,
    /// A signal of it was produced within `online_window_ms` (see the module docs).
    pub online: bool,
    pub online_window_ms: i64,
    /// Signals (and error signals) seen since the edge started.
    pub signals: u64,
    pub errors: u64,
    /// The last prediction: symbol, action, confidence, latency, when.
    pub last_symbol: Option<String>,
    pub last_action: Option<String>,
    pub last_confidence: Option<f64>,
    pub last_latency_us: Option<u64>,
    pub mean_latency_us: f64,
    pub last_signal_at: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    pub count: usize,
    pub online: usize,
    pub models: Vec<ModelStatus>,
}

/// Every configured model: online, latency, last prediction and confidence.
#[utoipa::path(get, path = "/models", tag = "ai", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Models), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn models(State(state): State<AppState>, _who: Viewer) -> Result<Json<Models>, ApiError> {
    let engine = state.ai.engine(&state)?;
    let now = tradeflow_core::time::now_ms();
    let seen: BTreeMap<String, crate::live::ModelView> =
        state.live.models().into_iter().map(|m| (m.model.clone(), m)).collect();
    let configured = engine.names();
    let mut names = configured.clone();
    names.extend(seen.keys().filter(|k| !configured.contains(k)).cloned());
    let models: Vec<ModelStatus> = names
        .into_iter()
        .map(|name| {
            let v = seen.get(&name).cloned().unwrap_or_default();
            let step = v
                .last_symbol
                .as_deref()
                .and_then(|s| state.live.price(s))
                .and_then(|p| p.interval.parse::<Interval>().ok())
                .map_or(3_600_000, Interval::millis);
            let window = 2 * step;
            ModelStatus {
                kind: if v.kind.is_empty() { engine.kind_of(&name).into() } else { v.kind.clone() },
                configured: configured.contains(&name),
                online: v.last_signal_at.is_some_and(|t| now - t <= window),
                online_window_ms: window,
                signals: v.signals,
                errors: v.errors,
                last_symbol: v.last_symbol,
                last_action: v.last_action,
                last_confidence: v.last_confidence,
                last_latency_us: v.last_latency_us,
                mean_latency_us: v.mean_latency_us,
                last_signal_at: v.last_signal_at,
                last_error: v.last_error,
                name,
            }
        })
        .collect();
    Ok(Json(Models { count: models.len(), online: models.iter().filter(|m| m.online).count(), models }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::signal::Trend;

    fn condition(phase: Phase, volatility: Option<Level>, volume: Option<Level>) -> MarketCondition {
        MarketCondition {
            trend: Trend::Sideways,
            phase,
            trend_strength: Some(25.0),
            support: None,
            resistance: None,
            volatility,
            atr_pct: None,
            volume,
            volume_ratio: None,
        }
    }

    #[test]
    fn suitability_follows_the_phase() {
        let best = |m: &MarketCondition| {
            Strategy::ALL.into_iter().max_by(|a, b| suitability(*a, m).0.total_cmp(&suitability(*b, m).0)).unwrap()
        };
        assert_eq!(best(&condition(Phase::ActiveTrading, None, None)), Strategy::Macd);
        assert_eq!(best(&condition(Phase::Consolidation, None, None)), Strategy::Bollinger);
        assert_eq!(best(&condition(Phase::Breakout, None, None)), Strategy::Volume);
        let high = condition(Phase::Consolidation, Some(Level::High), Some(Level::Low));
        assert!((suitability(Strategy::Rsi, &high).0 - 0.7).abs() < 1e-12);
        assert!((suitability(Strategy::Volume, &high).0 - 0.2).abs() < 1e-12);
    }

    #[test]
    fn the_stage_answers_about_the_last_bar_as_it_would_live() {
        // Run over the series in one stage, and through the warm/restore path: same signals.
        let bars: Vec<Bar> = (0..120)
            .map(|i| {
                let c = 100.0 + (i as f64 * 0.3).sin() * 4.0 + i as f64 * 0.05;
                Bar::new(i * 3_600_000, c, c + 1.0, c - 1.0, c + 0.25, 5.0 + (i % 7) as f64).unwrap()
            })
            .collect();
        let config = Arc::new(StageConfig::every_rule());
        let series = Series { source: "t".into(), symbol: "X".into(), interval: Interval::H1, bars: bars.clone() };
        let ours = run_stage(config.clone(), &series).unwrap();
        let mut stage = InferenceStage::new(config);
        let mut last = None;
        for b in &bars {
            let c =
                Candle { source: "t".into(), symbol: "X".into(), interval: Interval::H1, bar: *b, aggregated: false };
            last = Some(stage.on_candle_with_context(&c).unwrap());
        }
        let theirs = last.unwrap();
        assert_eq!(ours.context, theirs.context);
        let strip = |s: &[Signal]| s.iter().map(|s| Signal { latency_us: 0, ..s.clone() }).collect::<Vec<_>>();
        assert_eq!(strip(&ours.signals), strip(&theirs.signals));
        assert_eq!(ours.signals.len(), 6);
    }

    #[test]
    fn extreme_but_valid_bars_do_not_panic() {
        for scale in [1e300, 1e-300, 1.0] {
            let bars: Vec<Bar> = (0..80)
                .map(|i| {
                    let c = scale * (1.0 + (i % 5) as f64);
                    Bar::new(i * 60_000, c, c * 1.5, c * 0.5, c, if i % 3 == 0 { 0.0 } else { 1e300 }).unwrap()
                })
                .collect();
            let series = Series { source: "t".into(), symbol: "X".into(), interval: Interval::M1, bars };
            let out = run_stage(Arc::new(StageConfig::every_rule()), &series).unwrap();
            serde_json::to_string(&out.signals.iter().map(ModelAnalysis::from).collect::<Vec<_>>()).unwrap();
        }
    }
}
