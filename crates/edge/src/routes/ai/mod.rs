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
//!   well it suits that condition (see [`strategy::suitability`]).
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
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;
use tradeflow_analytics::signals;
use tradeflow_audit::query::market::{AiAnalysisRow, AiFeedbackRow};
use tradeflow_core::market::{Bar, Interval};
use tradeflow_core::signal::{MarketCondition, ModelKind, Signal, SignalStatus};
use tradeflow_inference::engine::{self, Engine, SelectError, Series, SeriesError};
use tradeflow_inference::rules::Strategy;
use tradeflow_inference::stage::{ModelContext, ModelSpec};
use tradeflow_inference::{Inferred, StageConfig, strategy};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Trader, Viewer};
use crate::error::{ApiError, Json, Query, check_limit};
use crate::routes::market::{HISTORY_BARS, WARM_UP_BARS, known_intervals, symbol_problem, to_bars, tracked};
use crate::state::{AppState, RequestMeta};

/// Candles one request may carry.
pub const MAX_REQUEST_CANDLES: usize = 5000;
/// Latest open time a request's candle may have (9999-12-31T23:59:59.999Z), so that no time
/// computed from it overflows.
const MAX_OPEN_TIME: i64 = 253_402_300_799_999;
/// Analyses the cache holds at most.
const CACHE_CAP: usize = 1024;

mod analyze;
mod condition;
mod cost;
mod info;
mod performance;
mod storage;

// One route group a file; each file takes the shared items below with `use super::*`, and
// these are the items the files take from one another.
use analyze::*;
use performance::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(analyze::router())
        .merge(info::router())
        .merge(performance::router())
        .merge(condition::router())
        .merge(cost::router())
        .merge(storage::router())
}

// ---------------------------------------------------------------------------------------------
// State: the models as configured, the analysis cache.

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
            .get_or_init(|| {
                let p = &state.pipeline;
                Engine::build(&p.models, p.llm_config.as_deref(), &state.registry)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
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

/// [`engine::infer`] with its refusals as the API's: a bar out of order is the request's
/// mistake (422), a failed task a 503.
pub(crate) async fn infer(config: Arc<StageConfig>, series: Series) -> Result<Inferred, ApiError> {
    engine::infer(config, series).await.map_err(|e| match e {
        SeriesError::Empty => ApiError::unprocessable("insufficient_data", "no candles to analyse"),
        SeriesError::Candle(skip) => ApiError::unprocessable("invalid_candles", skip.to_string()),
        SeriesError::Stage(e) => ApiError::unavailable("inference stage", e),
    })
}

/// A selection of models or an analyst refused, as the API says it: 422 naming the field and
/// the known names, 409 when no analyst is configured.
pub(crate) fn selection_error(e: SelectError, field: &str) -> ApiError {
    let message = e.to_string();
    match e {
        SelectError::Empty { known } => {
            ApiError::unprocessable("invalid_body", message).with_details(json!({ "field": field, "known": known }))
        }
        SelectError::Unknown { name, known } | SelectError::UnknownAnalyst { name, known } => {
            ApiError::unprocessable("unknown_model", message)
                .with_details(json!({ "field": field, "name": name, "known": known }))
        }
        SelectError::NoAnalyst => ApiError::new(
            StatusCode::CONFLICT,
            "no_analyst",
            "no LLM analyst is configured: start the edge with --llm-config naming at least one [[analyst]]",
        ),
    }
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
