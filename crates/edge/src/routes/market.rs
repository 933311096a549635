//! Market data.
//!
//! - `GET /market/prices`: the latest bar of every tracked symbol, from the live view (no
//!   database round trip). A symbol is *tracked* when the edge has seen a candle of it (on the
//!   tap, or in the store at start-up, see [`seed`]); its interval is the shortest one fed.
//! - `GET /market/price/{symbol}`: the symbol's price from the first source that has one:
//!   Binance's ticker, then Hyperliquid's mid (each only when configured in `[edge.prices]`,
//!   asked through `tradeflow_exec::price`, outcomes cached per symbol for `cache_ms`), then
//!   the close of the latest bar of the live view; `source` says which answered, `skipped`
//!   why the ones before it did not, `candle` is the latest bar when the symbol is tracked.
//! - `GET /market/ticker/{symbol}`: 24 h statistics ending at the latest stored bar of the
//!   series: the bars opening in the 24 h before that bar's close (at least that bar: for a 3d
//!   or 1w series it is the bar alone); `open` is the first bar's open, `last` the latest
//!   close, `change = last − open`, `change_pct = 100·change/open`, volume summed.
//! - `GET /market/snapshot`: every tracked symbol's price (live view), ticker and the latest
//!   decision of every configured profile about it (store).
//! - `GET /market/candles/{symbol}?interval&limit&before`: the latest `limit` stored bars
//!   (1..=1000, default 100) opening before `before` (epoch ms, optional), oldest first.
//! - `GET /market/indicators/{symbol}?interval`: the whole indicator set (the 26 TA-Lib columns,
//!   volume SMA(20) and ratio) and the market condition at the latest stored bar, computed by
//!   the inference stage's own code over the series' latest [`HISTORY_BARS`] bars. When the
//!   series is no longer than that, the values are TA-Lib's over the whole series exactly;
//!   beyond it the exponential and Wilder-smoothed indicators have converged far below 1e-12
//!   relative and OBV counts from the window's first bar. `null` marks a warm-up value.
//!
//! `interval` must be one of `1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w` (400 otherwise) and
//! defaults to the symbol's interval; an untracked symbol is 404.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tradeflow_audit::query::market::{CandleBar, DecisionBrief};
use tradeflow_core::market::{Bar, Interval};
use tradeflow_core::signal::MarketCondition;
use tradeflow_exec::price::{PriceSources, PriceSourcesConfig};
use tradeflow_indicators::COLUMNS;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Viewer;
use crate::error::{ApiError, Json, Path, Query, check_limit};
use crate::live::PriceView;
use crate::state::AppState;

/// Bars of history the indicators and analyses are computed over (at most).
pub const HISTORY_BARS: i64 = 5000;

/// Bars after which every one of the 26 indicator columns has a value (EMA(50) and SMA(50)
/// are the last to warm up: TA-Lib's first value is at row 49). Analyses need this many.
pub const WARM_UP_BARS: usize = 50;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prices))
        .routes(routes!(price))
        .routes(routes!(ticker))
        .routes(routes!(snapshot))
        .routes(routes!(candles))
        .routes(routes!(indicators))
}

/// Seeds the live view's prices from the store: the latest stored bar of every series.
pub async fn seed(state: &AppState) -> Result<(), ApiError> {
    let Some(store) = state.store.as_deref() else { return Ok(()) };
    let now = tradeflow_core::time::now_ms();
    for c in store.latest_candles().await? {
        state.live.seed_price(PriceView {
            symbol: c.symbol,
            source: c.bar.source,
            interval: c.interval,
            open_time: c.bar.open_time,
            open: c.bar.open,
            high: c.bar.high,
            low: c.bar.low,
            close: c.bar.close,
            volume: c.bar.volume,
            received_at: now,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers shared with the AI routes.

/// Why `symbol` cannot be a symbol name (1 to 40 of `A-Z a-z 0-9 - _ . / :`), if it cannot.
pub(crate) fn symbol_problem(symbol: &str) -> Option<String> {
    let ok = !symbol.is_empty()
        && symbol.len() <= 40
        && symbol.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'));
    (!ok).then(|| format!("symbol {symbol:?} is not a symbol name (1 to 40 of A-Z, a-z, 0-9, - _ . / :)"))
}

/// The live price of a tracked symbol (matched exactly, else upper-cased): 400 for a malformed
/// name, 404 (with the tracked symbols) for one the edge does not track.
pub(crate) fn tracked(state: &AppState, symbol: &str) -> Result<PriceView, ApiError> {
    if let Some(problem) = symbol_problem(symbol) {
        return Err(ApiError::bad_request("invalid_symbol", problem).with_details(json!({ "field": "symbol" })));
    }
    state.live.price(symbol).or_else(|| state.live.price(&symbol.to_ascii_uppercase())).ok_or_else(|| {
        let known: Vec<String> = state.live.prices().into_iter().map(|p| p.symbol).collect();
        ApiError::not_found("symbol", symbol)
            .with_details(json!({ "resource": "symbol", "name": symbol, "known": known }))
    })
}

/// `given` or `default` as an interval; a wrong name is a 400 naming the field.
pub(crate) fn interval_param(given: Option<&str>, default: &str) -> Result<Interval, ApiError> {
    let name = given.unwrap_or(default);
    name.parse::<Interval>().map_err(|e| {
        ApiError::bad_request("invalid_query", format!("interval: {e}"))
            .with_details(json!({ "field": "interval", "got": name, "known": known_intervals() }))
    })
}

pub(crate) fn known_intervals() -> Vec<&'static str> {
    Interval::all().map(Interval::as_str).collect()
}

/// Stored bars as validated bars. A stored bar that does not validate means the store is not
/// what it should be: a dependency failure.
pub(crate) fn to_bars(rows: &[CandleBar]) -> Result<Vec<Bar>, ApiError> {
    rows.iter()
        .map(|r| {
            Bar::new(r.open_time, r.open, r.high, r.low, r.close, r.volume)
                .map_err(|e| ApiError::unavailable("database", format!("stored candle at {}: {e}", r.open_time)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Prices.

#[derive(Debug, Serialize, ToSchema)]
pub struct Prices {
    pub count: usize,
    /// One per tracked symbol, by symbol.
    pub prices: Vec<PriceView>,
    /// Server time of the answer (epoch ms).
    pub as_of: i64,
}

/// The latest bar of every tracked symbol, from the live view.
#[utoipa::path(get, path = "/market/prices", tag = "market", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Prices), (status = 401, body = crate::error::ErrorBody)))]
async fn prices(State(state): State<AppState>, _who: Viewer) -> Json<Prices> {
    let prices = state.live.prices();
    Json(Prices { count: prices.len(), prices, as_of: tradeflow_core::time::now_ms() })
}

/// A symbol's price and who gave it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceAnswer {
    pub symbol: String,
    pub price: f64,
    /// Who answered: `binance` (USDⓈ-M futures ticker), `hyperliquid` (mid price) or `candle`
    /// (the close of the latest bar the edge saw).
    #[schema(example = "candle")]
    pub source: String,
    /// Time of the price (epoch ms): the exchange's, or when the edge received the bar.
    pub as_of: i64,
    /// Reused from a lookup less than `[edge.prices] cache_ms` ago.
    pub cached: bool,
    /// Sources asked before the one that answered, and why they had no price.
    pub skipped: Vec<SkippedSource>,
    /// The latest bar of the symbol, when the edge tracks it.
    pub candle: Option<PriceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedSource {
    /// `binance` or `hyperliquid`.
    pub source: String,
    pub reason: String,
}

/// The price sources of `config`: built once per process and configuration, so that their
/// cache serves every request (the sources and their cache are `tradeflow_exec::price`'s).
fn price_sources(config: &PriceSourcesConfig) -> Result<Arc<PriceSources>, ApiError> {
    static BUILT: OnceLock<Mutex<Vec<Arc<PriceSources>>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(s) = built.iter().find(|s| s.config() == config) {
        return Ok(s.clone());
    }
    let sources = Arc::new(PriceSources::new(config.clone()).map_err(|e| ApiError::unavailable("prices", e))?);
    built.push(sources.clone());
    Ok(sources)
}

/// The symbol's price: an exchange's (when configured), else the latest candle's close.
#[utoipa::path(get, path = "/market/price/{symbol}", tag = "market", security(("bearer" = []), ("api_key" = [])),
    params(("symbol" = String, Path, description = "a symbol, e.g. BTCUSDT; without exchange sources, a tracked one", pattern = "^[A-Za-z0-9_./:-]{1,40}$")),
    responses(
        (status = 200, body = PriceAnswer),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn price(
    State(state): State<AppState>,
    _who: Viewer,
    Path(symbol): Path<String>,
) -> Result<Json<PriceAnswer>, ApiError> {
    if let Some(problem) = symbol_problem(&symbol) {
        return Err(ApiError::bad_request("invalid_symbol", problem).with_details(json!({ "field": "symbol" })));
    }
    let candle = tracked(&state, &symbol).ok();
    let name = candle.as_ref().map_or_else(|| symbol.to_ascii_uppercase(), |c| c.symbol.clone());
    let skipped = |misses: Vec<tradeflow_exec::price::Miss>| {
        misses.into_iter().map(|m| SkippedSource { source: m.source.as_str().into(), reason: m.reason }).collect()
    };
    match price_sources(&state.config.prices)?.price(&name).await {
        Ok(q) => Ok(Json(PriceAnswer {
            symbol: name,
            price: q.price,
            source: q.source.as_str().into(),
            as_of: q.time,
            cached: q.cached,
            skipped: skipped(q.skipped),
            candle,
        })),
        Err(misses) => {
            // Nothing from the exchanges: the live view's latest bar, or its 404.
            let c = match candle {
                Some(c) => c,
                None => tracked(&state, &symbol)?,
            };
            Ok(Json(PriceAnswer {
                symbol: name,
                price: c.close,
                source: "candle".into(),
                as_of: c.received_at,
                cached: false,
                skipped: skipped(misses),
                candle: Some(c),
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ticker and snapshot.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntervalQuery {
    /// Bar interval (default: the symbol's).
    #[param(pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$")]
    pub interval: Option<String>,
}

/// 24 h statistics ending at the latest bar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ticker {
    pub symbol: String,
    pub interval: String,
    pub source: String,
    /// Open time of the first bar of the window.
    pub from: i64,
    /// Close time of the latest bar (its open time + the interval).
    pub to: i64,
    pub bars: usize,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub last: f64,
    pub volume: f64,
    pub change: f64,
    pub change_pct: f64,
}

const DAY_MS: i64 = 86_400_000;

async fn ticker_of(state: &AppState, symbol: &str, interval: Interval) -> Result<Option<Ticker>, ApiError> {
    let step = interval.millis();
    let per_day = (DAY_MS + step - 1) / step;
    let bars = state.store()?.candle_bars(symbol, interval.as_str(), None, per_day.max(1)).await?;
    let Some(last) = bars.last() else { return Ok(None) };
    let close_time = last.open_time + step;
    let window: Vec<&CandleBar> = bars.iter().filter(|b| b.open_time >= close_time - DAY_MS).collect();
    let first = window.first().copied().unwrap_or(last);
    let change = last.close - first.open;
    Ok(Some(Ticker {
        symbol: symbol.to_string(),
        interval: interval.as_str().into(),
        source: last.source.clone(),
        from: first.open_time,
        to: close_time,
        bars: window.len().max(1),
        open: first.open,
        high: window.iter().map(|b| b.high).fold(last.high, f64::max),
        low: window.iter().map(|b| b.low).fold(last.low, f64::min),
        last: last.close,
        volume: window.iter().map(|b| b.volume).sum(),
        change,
        change_pct: if first.open != 0.0 { 100.0 * change / first.open } else { 0.0 },
    }))
}

/// 24 h statistics of a symbol ending at its latest stored bar (last, open, high, low, volume,
/// change, change %). 404 when the symbol has no stored bar of that interval.
#[utoipa::path(get, path = "/market/ticker/{symbol}", tag = "market", security(("bearer" = []), ("api_key" = [])),
    params(("symbol" = String, Path, description = "a tracked symbol", pattern = "^[A-Za-z0-9_./:-]{1,40}$"), IntervalQuery),
    responses(
        (status = 200, body = Ticker),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn ticker(
    State(state): State<AppState>,
    _who: Viewer,
    Path(symbol): Path<String>,
    Query(q): Query<IntervalQuery>,
) -> Result<Json<Ticker>, ApiError> {
    let p = tracked(&state, &symbol)?;
    let interval = interval_param(q.interval.as_deref(), &p.interval)?;
    ticker_of(&state, &p.symbol, interval)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("candles", &format!("{} {}", p.symbol, interval)))
}

/// A profile's latest decision about a symbol.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionView {
    pub id: String,
    pub profile: String,
    pub interval: String,
    /// Open time of the candle decided on.
    pub open_time: i64,
    /// `long`, `short` or `hold`.
    pub action: String,
    pub confidence: f64,
    /// `complete`, `quorum`, `deadline` or `manual`.
    pub trigger: String,
    pub reasoning: String,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

impl From<DecisionBrief> for DecisionView {
    fn from(d: DecisionBrief) -> Self {
        DecisionView {
            id: d.id,
            profile: d.profile,
            interval: d.interval,
            open_time: d.open_time,
            action: d.action,
            confidence: d.confidence,
            trigger: d.trigger,
            reasoning: d.reasoning,
            stop_loss: d.stop_loss,
            take_profit: d.take_profit,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SymbolSnapshot {
    pub symbol: String,
    pub price: PriceView,
    /// Null when the store has no bar of the symbol's interval yet.
    pub ticker: Option<Ticker>,
    /// The latest decision of every configured profile that decided on the symbol.
    pub decisions: Vec<DecisionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Snapshot {
    pub as_of: i64,
    pub count: usize,
    pub symbols: Vec<SymbolSnapshot>,
}

/// Every tracked symbol: price, ticker and the latest decision per profile.
#[utoipa::path(get, path = "/market/snapshot", tag = "market", security(("bearer" = []), ("api_key" = [])), responses(
    (status = 200, body = Snapshot), (status = 401, body = crate::error::ErrorBody),
    (status = 503, body = crate::error::ErrorBody)))]
async fn snapshot(State(state): State<AppState>, _who: Viewer) -> Result<Json<Snapshot>, ApiError> {
    let store = state.store()?;
    let mut symbols = Vec::new();
    for p in state.live.prices() {
        let interval = p.interval.parse::<Interval>().ok();
        let ticker = match interval {
            Some(i) => ticker_of(&state, &p.symbol, i).await?,
            None => None,
        };
        let mut decisions = Vec::new();
        for profile in &state.pipeline.profiles {
            if let Some(d) = store.latest_decision(&p.symbol, &profile.name).await? {
                decisions.push(d.into());
            }
        }
        symbols.push(SymbolSnapshot { symbol: p.symbol.clone(), price: p, ticker, decisions });
    }
    Ok(Json(Snapshot { as_of: tradeflow_core::time::now_ms(), count: symbols.len(), symbols }))
}

// ---------------------------------------------------------------------------------------------
// Candles and indicators.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandlesQuery {
    /// Bar interval (default: the symbol's).
    #[param(pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$")]
    pub interval: Option<String>,
    /// Bars, 1 to 1000 (default 100): the latest ones.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Only bars opening before this time (epoch ms), to page back.
    pub before: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CandleView {
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Candles {
    pub symbol: String,
    pub interval: String,
    /// Source of the bars; null when there are none.
    pub source: Option<String>,
    pub count: usize,
    /// Oldest first.
    pub candles: Vec<CandleView>,
}

/// The latest stored bars of a symbol, oldest first.
#[utoipa::path(get, path = "/market/candles/{symbol}", tag = "market", security(("bearer" = []), ("api_key" = [])),
    params(("symbol" = String, Path, description = "a tracked symbol", pattern = "^[A-Za-z0-9_./:-]{1,40}$"), CandlesQuery),
    responses(
        (status = 200, body = Candles),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn candles(
    State(state): State<AppState>,
    _who: Viewer,
    Path(symbol): Path<String>,
    Query(q): Query<CandlesQuery>,
) -> Result<Json<Candles>, ApiError> {
    let p = tracked(&state, &symbol)?;
    let interval = interval_param(q.interval.as_deref(), &p.interval)?;
    let limit = check_limit("limit", q.limit, 100, 1000)?;
    let rows = state.store()?.candle_bars(&p.symbol, interval.as_str(), q.before, limit).await?;
    let candles: Vec<CandleView> = rows
        .iter()
        .map(|b| CandleView {
            open_time: b.open_time,
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            volume: b.volume,
        })
        .collect();
    Ok(Json(Candles {
        symbol: p.symbol,
        interval: interval.as_str().into(),
        source: rows.last().map(|b| b.source.clone()),
        count: candles.len(),
        candles,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Indicators {
    pub symbol: String,
    pub interval: String,
    pub source: String,
    /// Open time of the latest bar, the one the values are of.
    pub open_time: i64,
    pub close: f64,
    /// Bars the values were computed over (the series' latest, at most 5000).
    pub bars_used: usize,
    /// Bars needed before every column has a value.
    pub warm_up_bars: usize,
    /// Every column has a value.
    pub complete: bool,
    /// The 26 TA-Lib columns (`sma_20` ... `obv`), `volume_sma_20` and `volume_ratio_20`;
    /// null during warm-up.
    #[schema(value_type = Object)]
    pub indicators: BTreeMap<&'static str, Option<f64>>,
    /// Trend, phase, support/resistance, volatility and volume levels, as the models see them.
    #[schema(value_type = Object)]
    pub market: MarketCondition,
}

/// The indicator set and market condition at a symbol's latest stored bar (TA-Lib conventions).
#[utoipa::path(get, path = "/market/indicators/{symbol}", tag = "market", security(("bearer" = []), ("api_key" = [])),
    params(("symbol" = String, Path, description = "a tracked symbol", pattern = "^[A-Za-z0-9_./:-]{1,40}$"), IntervalQuery),
    responses(
        (status = 200, body = Indicators),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn indicators(
    State(state): State<AppState>,
    _who: Viewer,
    Path(symbol): Path<String>,
    Query(q): Query<IntervalQuery>,
) -> Result<Json<Indicators>, ApiError> {
    let p = tracked(&state, &symbol)?;
    let interval = interval_param(q.interval.as_deref(), &p.interval)?;
    let rows = state.store()?.candle_bars(&p.symbol, interval.as_str(), None, HISTORY_BARS).await?;
    let Some(last) = rows.last() else {
        return Err(ApiError::not_found("candles", &format!("{} {}", p.symbol, interval)));
    };
    let series = tradeflow_inference::engine::Series {
        source: last.source.clone(),
        symbol: p.symbol.clone(),
        interval,
        bars: to_bars(&rows)?,
    };
    let config = state.ai.engine(&state)?.bare();
    let ctx = crate::routes::ai::context_of(config, series).await?;
    let row = ctx.indicators;
    let mut values: BTreeMap<&'static str, Option<f64>> = COLUMNS.into_iter().zip(row.values()).collect();
    values.insert("volume_sma_20", row.volume_sma_20);
    values.insert("volume_ratio_20", row.volume_ratio_20);
    Ok(Json(Indicators {
        symbol: p.symbol,
        interval: interval.as_str().into(),
        source: ctx.source,
        open_time: ctx.open_time,
        close: ctx.close,
        bars_used: rows.len(),
        warm_up_bars: WARM_UP_BARS,
        complete: row.values().iter().all(Option::is_some),
        indicators: values,
        market: ctx.market,
    }))
}

#[cfg(test)]
mod tests {
    use tradeflow_indicators::{IndicatorSet, Next};

    use super::*;

    #[test]
    fn every_column_has_a_value_from_the_warm_up_bar_on() {
        let mut set = IndicatorSet::new();
        for i in 0..WARM_UP_BARS {
            let c = 100.0 + (i as f64 * 0.7).sin() * 5.0;
            let bar = Bar::new(i as i64 * 60_000, c, c + 1.0, c - 1.5, c + 0.5, 10.0 + i as f64).unwrap();
            let row = set.next(&bar).unwrap();
            let complete = row.values().iter().all(Option::is_some);
            assert_eq!(complete, i + 1 == WARM_UP_BARS, "bar {}", i + 1);
        }
    }

    #[test]
    fn symbols_and_intervals_are_checked() {
        assert!(symbol_problem("BTCUSD").is_none());
        assert!(symbol_problem("BTC/USDT").is_none());
        assert!(symbol_problem("").is_some());
        assert!(symbol_problem("BTC USD").is_some());
        assert!(symbol_problem(&"X".repeat(41)).is_some());
        assert_eq!(interval_param(None, "1h").unwrap(), Interval::H1);
        assert_eq!(interval_param(Some("4h"), "1h").unwrap(), Interval::H4);
        assert_eq!(interval_param(Some("7h"), "1h").unwrap_err().status, 400);
    }
}
