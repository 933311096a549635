//! `POST /ai/analyze/multi` (trader: it costs an LLM request): several tracked charts in one
//! question to one LLM analyst of the inference configuration (`--llm-config`).
//!
//! Each chart is a tracked symbol at an interval (default the symbol's): its latest stored bars
//! (at most [`HISTORY_BARS`], at least [`WARM_UP_BARS`]) go through the inference stage as in
//! `POST /ai/analyze`, for the last bar's indicators and market condition. The charts, and
//! the optional question, then go to the analyst in one request
//! ([`Analyst::analyse_charts`]): its prompt, pacing, key fallback, deadline, strict answer
//! checking, cache (its `cache_ttl_s`, by the charts' last candles and the question) and
//! `tradeflow_llm_*` counts (tokens and cost, summed in `GET /ai/cost/statistics`) are the
//! inference crate's; the edge only picks the charts and maps the outcome:
//!
//! - a body that cannot be asked about: 422 `invalid_body` naming the field (`charts[1].interval`);
//!   a symbol that is not tracked: 404 naming it; an unknown analyst: 422 `unknown_model`;
//! - no analyst configured: 409 `no_analyst`;
//! - an answer that is not the JSON asked for: 502 `llm_bad_answer`, the message naming every
//!   wrong field by its path (`charts[0].confidence`, `overall.summary`);
//! - the provider failing (an HTTP error other than 401 and 429, no connection): 502
//!   `llm_error`; no usable key (each resting after a 429 or a 401): 503 `llm_rate_limited`;
//!   no answer in time: 504 `llm_timeout`.
//!
//! Each call is written to the audit log (who spent what), cache hits included.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tradeflow_core::market::Interval;
use tradeflow_core::signal::MarketCondition;
use tradeflow_inference::llm::charts::{MAX_CHARTS, MAX_QUESTION_CHARS, RECENT_BARS};
use tradeflow_inference::llm::{Analyst, Chart, ChartsError, ChartsReply, RequestOutcome};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Trader;
use crate::error::{ApiError, Json};
use crate::routes::ai::{context_of, selection_error};
use crate::routes::market::{HISTORY_BARS, WARM_UP_BARS, known_intervals, symbol_problem, to_bars, tracked};
use crate::state::{AppState, RequestMeta};
use tradeflow_inference::engine::Series;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(analyze_multi))
}

/// One chart to analyse.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartRequest {
    /// A tracked symbol (matched exactly, else upper-cased).
    #[schema(pattern = "^[A-Za-z0-9_./:-]{1,40}$")]
    pub symbol: String,
    /// Default: the symbol's interval.
    #[schema(pattern = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$")]
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MultiAnalyzeRequest {
    /// 1 to 8 charts, each symbol and interval once.
    #[schema(min_items = 1, max_items = 8)]
    pub charts: Vec<ChartRequest>,
    /// A question about the charts, 1 to 1000 characters, not only blanks; answered in
    /// `overall.answer`.
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    pub question: Option<String>,
    /// One of the configured LLM analysts (default: the first).
    pub analyst: Option<String>,
}

/// The analyst's answer about one chart, with the bar it is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChartAnalysis {
    pub symbol: String,
    pub interval: String,
    /// The feed of the stored bars.
    pub source: String,
    /// Bars the indicators ran over.
    pub bars: usize,
    /// Open time and close of the bar analysed (the last stored one).
    pub open_time: i64,
    pub close: f64,
    /// Trend, phase, ADX, support/resistance, volatility and volume at that bar, as sent.
    #[schema(value_type = Object)]
    pub market: MarketCondition,
    /// `long`, `short` or `hold`.
    pub action: String,
    /// 0–1.
    pub confidence: f64,
    pub reasoning: String,
    /// Below the close for long, above for short; null for hold.
    pub stop_loss: Option<f64>,
    /// Above the close for long, below for short; null for hold.
    pub take_profit: Option<f64>,
}

/// The analyst's view of the charts together.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverallAnalysis {
    /// `long`, `short` or `hold`: the stance the charts suggest together.
    pub action: String,
    /// 0–1.
    pub confidence: f64,
    pub summary: String,
    /// The answer to the question; null when none was asked.
    pub answer: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MultiAnalysis {
    /// The configured analyst that answered.
    pub analyst: String,
    /// Its wire format, `openai` or `anthropic`.
    pub dialect: String,
    /// The provider's model, `gpt-4o-mini`.
    pub model: String,
    /// One per chart, in the order asked.
    pub charts: Vec<ChartAnalysis>,
    pub overall: OverallAnalysis,
    pub question: Option<String>,
    /// Answered from the analyst's cache (same last candles and question within its
    /// `cache_ttl_s`): no request made, nothing spent.
    pub cached: bool,
    /// Time to the answer, the stage runs excluded.
    pub latency_us: u64,
    pub created_at: i64,
}

fn body_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_body", message).with_details(json!({ "field": field }))
}

/// A chart of the request resolved against the tracked symbols.
struct Wanted {
    symbol: String,
    interval: Interval,
}

/// Checks the request's shape and resolves every chart (no store read yet): the first problem,
/// by its field.
fn check(state: &AppState, req: &MultiAnalyzeRequest) -> Result<Vec<Wanted>, ApiError> {
    let n = req.charts.len();
    if n == 0 || n > MAX_CHARTS {
        return Err(ApiError::unprocessable(
            "invalid_body",
            format!("charts: expected 1 to {MAX_CHARTS} charts, got {n}"),
        )
        .with_details(json!({ "field": "charts", "min": 1, "max": MAX_CHARTS, "got": n })));
    }
    if let Some(q) = &req.question {
        let chars = q.chars().count();
        if q.trim().is_empty() || chars > MAX_QUESTION_CHARS {
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!("question: expected 1 to {MAX_QUESTION_CHARS} characters (not only blanks), got {chars}"),
            )
            .with_details(json!({ "field": "question", "max": MAX_QUESTION_CHARS, "got": chars })));
        }
    }
    let mut out: Vec<Wanted> = Vec::with_capacity(n);
    for (i, c) in req.charts.iter().enumerate() {
        let field = format!("charts[{i}].symbol");
        if let Some(problem) = symbol_problem(&c.symbol) {
            return Err(body_error(&field, format!("charts[{i}].{problem}")));
        }
        let p = tracked(state, &c.symbol).map_err(|mut e| {
            if let Some(d) = e.details.as_object_mut() {
                d.insert("field".into(), field.clone().into());
            }
            e.message = format!("charts[{i}]: {}; it is not tracked", e.message);
            e
        })?;
        let name = c.interval.as_deref().unwrap_or(&p.interval);
        let interval = name.parse::<Interval>().map_err(|e| {
            ApiError::unprocessable("invalid_body", format!("charts[{i}].interval: {e}")).with_details(
                json!({ "field": format!("charts[{i}].interval"), "got": name, "known": known_intervals() }),
            )
        })?;
        if let Some(j) = out.iter().position(|w| w.symbol == p.symbol && w.interval == interval) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!("charts[{i}]: {} {interval} is charts[{j}] again; give each chart once", p.symbol),
            )
            .with_details(json!({ "field": format!("charts[{i}]"), "duplicate_of": j })));
        }
        out.push(Wanted { symbol: p.symbol, interval });
    }
    Ok(out)
}

/// A chart's stored bars through the stage: its context and recent bars, and how many bars.
async fn chart(state: &AppState, i: usize, w: &Wanted) -> Result<(Chart, usize), ApiError> {
    let rows = state.store()?.candle_bars(&w.symbol, w.interval.as_str(), None, HISTORY_BARS).await?;
    if rows.len() < WARM_UP_BARS {
        return Err(ApiError::unprocessable(
            "insufficient_data",
            format!(
                "charts[{i}]: {} {} has {} bars in the store; at least {WARM_UP_BARS} are needed for every indicator",
                w.symbol,
                w.interval,
                rows.len()
            ),
        )
        .with_details(json!({ "field": format!("charts[{i}]"), "needed": WARM_UP_BARS, "got": rows.len() })));
    }
    let bars = to_bars(&rows)?;
    let recent = bars[bars.len() - RECENT_BARS.min(bars.len())..].to_vec();
    let n = bars.len();
    let source = rows.last().map(|r| r.source.clone()).unwrap_or_default();
    let config = state.ai.engine(state)?.bare();
    let context = context_of(config, Series { source, symbol: w.symbol.clone(), interval: w.interval, bars }).await?;
    Ok((Chart { context, recent }, n))
}

/// The analyst's failure in the edge's error format.
fn failed(analyst: &Analyst, e: ChartsError) -> ApiError {
    match e {
        // Checked above already; kept precise should the inference crate's bounds change.
        ChartsError::Request { field, message } => body_error(field, message),
        ChartsError::Failed { outcome, reason } => {
            let (status, code, what) = match outcome {
                RequestOutcome::Malformed => {
                    (StatusCode::BAD_GATEWAY, "llm_bad_answer", "did not answer with the JSON asked for")
                }
                RequestOutcome::RateLimited => {
                    (StatusCode::SERVICE_UNAVAILABLE, "llm_rate_limited", "cannot be asked now")
                }
                RequestOutcome::Timeout => (StatusCode::GATEWAY_TIMEOUT, "llm_timeout", "did not answer in time"),
                // HTTP errors; the other outcomes are not failures.
                _ => (StatusCode::BAD_GATEWAY, "llm_error", "failed"),
            };
            ApiError::new(status, code, format!("analyst {:?} {what}: {reason}", analyst.name())).with_details(json!({
                "dependency": "llm",
                "analyst": analyst.name(),
                "outcome": outcome.as_str(),
                "reason": reason,
            }))
        }
    }
}

fn view(analyst: &Analyst, asked: Vec<(Chart, usize)>, reply: ChartsReply, question: Option<String>) -> MultiAnalysis {
    let ChartsReply { answer, cached, latency_us } = reply;
    // The answers come back in the order of the charts asked about.
    let charts = asked
        .into_iter()
        .zip(answer.charts)
        .map(|((chart, bars), a)| {
            let ctx = chart.context;
            ChartAnalysis {
                symbol: ctx.symbol,
                interval: ctx.interval.as_str().into(),
                source: ctx.source,
                bars,
                open_time: ctx.open_time,
                close: ctx.close,
                market: ctx.market,
                action: a.action.as_str().into(),
                confidence: a.confidence,
                reasoning: a.reasoning,
                stop_loss: a.stop_loss,
                take_profit: a.take_profit,
            }
        })
        .collect();
    let o = answer.overall;
    let config = analyst.config();
    MultiAnalysis {
        analyst: analyst.name().into(),
        dialect: config.dialect.clone(),
        model: config.model.clone(),
        charts,
        overall: OverallAnalysis {
            action: o.action.as_str().into(),
            confidence: o.confidence,
            summary: o.summary,
            answer: o.answer,
        },
        question,
        cached,
        latency_us,
        created_at: tradeflow_core::time::now_ms(),
    }
}

/// Asks one LLM analyst about several tracked charts at once: an answer per chart and overall.
#[utoipa::path(post, path = "/ai/analyze/multi", tag = "ai", security(("bearer" = []), ("api_key" = [])),
    request_body = MultiAnalyzeRequest,
    responses(
        (status = 200, body = MultiAnalysis),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody), (status = 504, body = crate::error::ErrorBody)))]
async fn analyze_multi(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(req): Json<MultiAnalyzeRequest>,
) -> Result<Json<MultiAnalysis>, ApiError> {
    let wanted = check(&state, &req)?;
    let engine = state.ai.engine(&state)?;
    let analyst = engine.analyst(req.analyst.as_deref()).map_err(|e| selection_error(e, "analyst"))?;
    let mut asked = Vec::with_capacity(wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        asked.push(chart(&state, i, w).await?);
    }
    let charts: Vec<Chart> = asked.iter().map(|(c, _)| c.clone()).collect();
    let caller = meta.caller(who);
    let names: Vec<String> = wanted.iter().map(|w| format!("{} {}", w.symbol, w.interval)).collect();
    let reply = match analyst.analyse_charts(&charts, req.question.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            let error = failed(&analyst, e);
            let details = json!({ "analyst": analyst.name(), "charts": names, "error": error.code });
            state.audit(&caller, "ai_analyze_multi", "/api/v1/ai/analyze/multi", "error", details).await?;
            return Err(error);
        }
    };
    let details = json!({ "analyst": analyst.name(), "charts": names, "cached": reply.cached });
    state.audit(&caller, "ai_analyze_multi", "/api/v1/ai/analyze/multi", "ok", details).await?;
    Ok(Json(view(&analyst, asked, reply, req.question)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_analyst_is_a_conflict_and_an_unknown_one_is_named() {
        let engine = tradeflow_inference::engine::Engine::of(tradeflow_inference::StageConfig::every_rule());
        let e = selection_error(engine.analyst(None).unwrap_err(), "analyst");
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "no_analyst"));
        let e = selection_error(engine.analyst(Some("gpt")).unwrap_err(), "analyst");
        assert_eq!(e.code, "no_analyst");
        let unknown = tradeflow_inference::engine::SelectError::UnknownAnalyst {
            name: "gpt".into(),
            known: vec!["local".into()],
        };
        let e = selection_error(unknown, "analyst");
        assert_eq!((e.status, e.code), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_model"));
    }

    #[test]
    fn failures_map_to_gateway_errors_naming_the_outcome() {
        let metrics = tradeflow_inference::llm::LlmMetrics::register(&prometheus::Registry::new()).unwrap();
        let config = tradeflow_inference::llm::AnalystConfig::new(
            "gpt",
            tradeflow_inference::llm::Dialect::OpenAi,
            "http://127.0.0.1:9/v1",
            "m",
            Vec::new(),
        );
        let analyst = Analyst::new(config, metrics).unwrap();
        let cases = [
            (RequestOutcome::Malformed, 502, "llm_bad_answer"),
            (RequestOutcome::HttpError, 502, "llm_error"),
            (RequestOutcome::RateLimited, 503, "llm_rate_limited"),
            (RequestOutcome::Timeout, 504, "llm_timeout"),
        ];
        for (outcome, status, code) in cases {
            let e = failed(&analyst, ChartsError::Failed { outcome, reason: "charts[0].action: x".into() });
            assert_eq!((e.status.as_u16(), e.code), (status, code));
            assert!(e.message.contains("charts[0].action: x"), "{}", e.message);
            assert_eq!(e.details["outcome"], outcome.as_str());
        }
        let e = failed(&analyst, ChartsError::Request { field: "question", message: "question: too long".into() });
        assert_eq!((e.status.as_u16(), e.code, &e.details["field"]), (422, "invalid_body", &json!("question")));
    }
}
