//! `tradeflow_llm_*` metrics. Labels are the analyst's configured name and fixed sets only.

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// How one analysis of one candle went (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A valid answer.
    Ok,
    /// A non-2xx answer other than 429 (401 included), or no answer (connection refused, ...).
    HttpError,
    /// HTTP 429, or no request made because every key is resting.
    RateLimited,
    /// No answer within the timeout, or no request slot (min interval) before it.
    Timeout,
    /// A 2xx answer that is not the strict JSON asked for.
    Malformed,
    /// Not sent: the candle is too old (replay, backfill).
    Skipped,
    /// Answered from the cache: no request.
    Cached,
}

impl RequestOutcome {
    pub const ALL: [RequestOutcome; 7] =
        [Self::Ok, Self::HttpError, Self::RateLimited, Self::Timeout, Self::Malformed, Self::Skipped, Self::Cached];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::HttpError => "http_error",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::Malformed => "malformed",
            Self::Skipped => "skipped",
            Self::Cached => "cached",
        }
    }
}

#[derive(Clone)]
pub struct LlmMetrics {
    /// `tradeflow_llm_requests_total{analyst,outcome}`: every HTTP request by its outcome, and
    /// every analysis made without one (`skipped`, `cached`, `rate_limited` with every key
    /// resting, `timeout` with no slot before the deadline).
    pub requests: IntCounterVec,
    /// `tradeflow_llm_tokens_total{analyst,kind}`, kind `input` or `output`.
    pub tokens: IntCounterVec,
    /// `tradeflow_llm_cost_usd_total{analyst}`, from the tokens and the configured prices.
    pub cost_usd: CounterVec,
    /// `tradeflow_llm_request_seconds{analyst}`: duration of each HTTP request.
    pub request_seconds: HistogramVec,
}

impl LlmMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "tradeflow_llm_requests_total",
                "LLM analyst requests by outcome (ok, http_error, rate_limited, timeout, malformed), and analyses made without a request (skipped, cached).",
            ),
            &["analyst", "outcome"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new("tradeflow_llm_tokens_total", "Tokens consumed by LLM analysts, by kind (input, output)."),
            &["analyst", "kind"],
        )?;
        let cost_usd = CounterVec::new(
            Opts::new(
                "tradeflow_llm_cost_usd_total",
                "Cost of LLM analyst requests in USD, from the configured prices.",
            ),
            &["analyst"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("tradeflow_llm_request_seconds", "Duration of LLM analyst HTTP requests.")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 25.0]),
            &["analyst"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(cost_usd.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        Ok(Self { requests, tokens, cost_usd, request_seconds })
    }
}
