//! One LLM analyst: turns a candle's [`ModelContext`] into one [`Signal`], whatever happens.
//!
//! Per analyst (shared by every partition of the process):
//! - **pacing**: requests start at least `min_interval_ms` apart. A request whose turn would
//!   come after its deadline is not made: error signal, never a stall;
//! - **keys**: the first key that is not resting is used (the primary, then the backups). A 429
//!   rests the key until its `Retry-After` (60 s without one), a 401 for an hour, and the
//!   request moves to the next key at once. With every key resting the answer is an error
//!   signal, without waiting;
//! - **deadline**: everything (the wait for a turn, the requests, the body) ends `timeout_ms`
//!   after the analysis started;
//! - **cache**: valid answers by candle id for `cache_ttl_s` (multi-chart answers by their
//!   charts' last candles and question, see [`super::charts`]); a hit makes no request;
//! - **news**: up to `headlines` recent headlines about the symbol or the market, published
//!   within `headline_max_age_s` (see [`crate::news`]), once the worker attached them;
//! - **age**: a candle that closed longer ago than `max_candle_age_s` (default two intervals)
//!   is not sent (replays, backfills);
//! - **secrets**: keys go only into sensitive request headers; every text that leaves
//!   (errors, logs) has them replaced by `***`, and keys are named by their variable.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use tradeflow_core::signal::{Action, ModelKind, Signal, SignalStatus};
use tradeflow_core::time::now_ms;

use super::answer::{Answer, parse_answer};
use super::cache::TtlCache;
use super::charts::ChartsAnswer;
use super::config::{AnalystConfig, ApiKey, Dialect};
use super::metrics::{LlmMetrics, RequestOutcome};
use super::prompt::{SYSTEM_PROMPT, user_prompt_with, utc};
use super::{clip, error_chain, wire};
use crate::news::{Headline, Headlines};
use crate::stage::ModelContext;
use tradeflow_net::tls;

/// A 429 without `Retry-After` rests its key this long.
pub const RATE_LIMIT_REST: Duration = Duration::from_secs(60);
/// A 401 rests its key this long.
pub const UNAUTHORIZED_REST: Duration = Duration::from_secs(3600);
/// A key never rests less than this, whatever `Retry-After` says (no hammering on `0`).
const MIN_REST: Duration = Duration::from_secs(1);
/// Largest response body read.
const MAX_BODY: usize = 1 << 20;
/// Cached answers per analyst, at most.
const CACHE_CAP: usize = 10_000;
/// Grace after the deadline for the outer guard; the requests carry the deadline themselves.
const GUARD_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
struct Rest {
    until: Instant,
    /// The same moment on the wall clock, for messages.
    until_ms: i64,
    status: u16,
}

/// Why an exchange with the provider gave no valid answer (counted under `outcome`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) outcome: RequestOutcome,
    pub(crate) reason: String,
}

impl Failure {
    fn new(outcome: RequestOutcome, reason: impl Into<String>) -> Self {
        Self { outcome, reason: reason.into() }
    }
}

enum SendError {
    Timeout,
    Other(String),
}

pub struct Analyst {
    config: AnalystConfig,
    dialect: Dialect,
    endpoint: String,
    http: reqwest::Client,
    timeout: Duration,
    min_interval: Duration,
    /// The keys in order of preference; one `None` for a server without authentication.
    keys: Vec<Option<ApiKey>>,
    rests: Mutex<Vec<Option<Rest>>>,
    /// Earliest start of the next request.
    next_slot: Mutex<Option<Instant>>,
    /// Valid answers by candle id.
    cache: TtlCache<Answer>,
    /// Valid multi-chart answers by their charts' last candles and question.
    pub(super) charts_cache: TtlCache<ChartsAnswer>,
    metrics: LlmMetrics,
    /// The recent headlines, once the worker attached them ([`Analyst::attach_news`]).
    news: OnceLock<Arc<Headlines>>,
}

impl fmt::Debug for Analyst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analyst")
            .field("name", &self.config.name)
            .field("dialect", &self.dialect)
            .field("endpoint", &self.endpoint)
            .field("model", &self.config.model)
            .field("keys", &self.keys.iter().map(|k| self.key_label(k.as_ref())).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Analyst {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent at every step; a panic elsewhere does not spoil them.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Analyst {
    /// An analyst from a configuration that passes [`AnalystConfig::validate`].
    pub fn new(config: AnalystConfig, metrics: LlmMetrics) -> Result<Self, String> {
        let problems = config.validate(&format!("analyst {:?}", config.name));
        let Some(dialect) = config.dialect().filter(|_| problems.is_empty()) else {
            return Err(problems.join("; "));
        };
        let timeout = Duration::from_millis(config.timeout_ms);
        let tls = tls::client_config()?;
        let http = reqwest::Client::builder()
            // reqwest downcasts the `rustls::ClientConfig` itself, not an `Arc` of it.
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
            .connect_timeout(timeout)
            .user_agent(concat!("tradeflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("analyst {:?}: cannot build the HTTP client: {}", config.name, error_chain(&e)))?;
        let keys: Vec<Option<ApiKey>> =
            if config.api_keys.is_empty() { vec![None] } else { config.api_keys.iter().cloned().map(Some).collect() };
        Ok(Self {
            endpoint: wire::endpoint(dialect, &config.base_url()),
            dialect,
            http,
            timeout,
            min_interval: Duration::from_millis(config.min_interval_ms),
            rests: Mutex::new(vec![None; keys.len()]),
            keys,
            next_slot: Mutex::new(None),
            cache: TtlCache::new(Duration::from_secs(config.cache_ttl_s), CACHE_CAP),
            charts_cache: TtlCache::new(Duration::from_secs(config.cache_ttl_s), CACHE_CAP),
            metrics,
            news: OnceLock::new(),
            config,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &AnalystConfig {
        &self.config
    }

    /// Whether its prompts take headlines (`headlines > 0`).
    pub fn wants_news(&self) -> bool {
        self.config.headlines > 0
    }

    /// Gives its prompts the headlines of `book`; the first book attached stays. Returns
    /// whether this one was attached.
    pub fn attach_news(&self, book: Arc<Headlines>) -> bool {
        self.news.set(book).is_ok()
    }

    /// The headlines its prompt about `ctx`, asked at `at`, carries (none without a book).
    pub fn headlines_for(&self, ctx: &ModelContext, at: i64) -> Vec<Headline> {
        let Some(book) = self.news.get() else { return Vec::new() };
        let max_age_ms = self.config.headline_max_age_s.min(315_360_000) as i64 * 1000;
        book.recent(&ctx.symbol, at, self.config.headlines, max_age_ms)
    }

    /// `gpt (openai gpt-4o-mini)`.
    pub fn describe(&self) -> String {
        format!("{} ({} {})", self.config.name, self.dialect.as_str(), self.config.model)
    }

    /// One signal about `ctx`: `Ok` with the answer, or `Error` with the reason. Returns within
    /// `timeout_ms` (plus a little), never fails.
    pub async fn analyse(&self, ctx: &ModelContext) -> Signal {
        self.analyse_at(ctx, now_ms()).await
    }

    /// [`Analyst::analyse`] with the wall clock read by the caller (candle age).
    pub async fn analyse_at(&self, ctx: &ModelContext, now_ms: i64) -> Signal {
        let started = Instant::now();
        let age_ms = now_ms - ctx.close_time();
        // Capped at ten years, far beyond any use, so the product cannot overflow.
        let max_age_ms =
            self.config.max_candle_age_s.map_or(2 * ctx.interval.millis(), |s| s.min(315_360_000) as i64 * 1000);
        if age_ms > max_age_ms {
            self.count(RequestOutcome::Skipped);
            let reason = format!("not analysed: candle is {} s old (max {} s)", age_ms / 1000, max_age_ms / 1000);
            return self.signal(ctx, Err(reason), BTreeMap::new(), started);
        }
        // Headlines up to the moment asked about: the candle's close for a cycle, now otherwise.
        let (user, features) = user_prompt_with(ctx, &self.headlines_for(ctx, now_ms));
        if let Some(answer) = self.cache.get(&ctx.candle_id) {
            self.count(RequestOutcome::Cached);
            return self.signal(ctx, Ok(answer), features, started);
        }
        let result = self.ask(started, SYSTEM_PROMPT, &user, |content| parse_answer(content, ctx.close)).await;
        if let Ok(answer) = &result {
            self.cache.put(&ctx.candle_id, answer);
        }
        let result = result.map_err(|f| {
            debug!(analyst = %self.config.name, candle = %ctx.candle_id, outcome = f.outcome.as_str(), reason = %f.reason, "analysis failed");
            f.reason
        });
        self.signal(ctx, result, features, started)
    }

    fn signal(
        &self,
        ctx: &ModelContext,
        result: Result<Answer, String>,
        features: BTreeMap<String, f64>,
        started: Instant,
    ) -> Signal {
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        llm_signal(&self.config.name, ctx, result, features, latency_us)
    }

    fn timed_out(&self) -> String {
        format!("timed out: no answer within {} ms", self.config.timeout_ms)
    }

    /// One exchange with the provider, started at `started`: the `system` and `user` messages
    /// out, the answer's text checked by `parse` (which names every problem) back, within
    /// `timeout_ms` of `started`, with the analyst's pacing, keys, metrics and cost. The
    /// caller owns its cache.
    pub(crate) async fn ask<T>(
        &self,
        started: Instant,
        system: &str,
        user: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, Failure> {
        let deadline = started + self.timeout;
        match tokio::time::timeout_at(deadline + GUARD_GRACE, self.request(system, user, deadline, &parse)).await {
            Ok(r) => r,
            Err(_) => {
                self.count(RequestOutcome::Timeout);
                Err(Failure::new(RequestOutcome::Timeout, self.timed_out()))
            }
        }
    }

    /// Requests until an answer, a failure, or no usable key; at most one request per key.
    async fn request<T>(
        &self,
        system: &str,
        user: &str,
        deadline: Instant,
        parse: &impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, Failure> {
        let body = wire::request_body(self.dialect, &self.config, system, user);
        let body = serde_json::to_vec(&body)
            .map_err(|e| Failure::new(RequestOutcome::HttpError, format!("cannot encode the request: {e}")))?;
        let mut switched = false;
        for _attempt in 0..self.keys.len() {
            if self.pick_key().is_none() {
                return Err(self.all_resting(!switched));
            }
            let slot = self.reserve_slot(deadline, switched)?;
            tokio::time::sleep_until(slot).await;
            let Some(k) = self.pick_key() else { return Err(self.all_resting(!switched)) };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.count(RequestOutcome::Timeout);
                return Err(Failure::new(RequestOutcome::Timeout, self.timed_out()));
            }
            let headers = wire::headers(self.dialect, self.keys[k].as_ref())
                .map_err(|e| Failure::new(RequestOutcome::HttpError, e))?;
            let t0 = Instant::now();
            let sent = self.send(headers, body.clone(), remaining).await;
            self.metrics.request_seconds.with_label_values(&[self.name()]).observe(t0.elapsed().as_secs_f64());
            let (status, retry_after, bytes) = match sent {
                Ok(r) => r,
                Err(SendError::Timeout) => {
                    self.count(RequestOutcome::Timeout);
                    return Err(Failure::new(RequestOutcome::Timeout, self.timed_out()));
                }
                Err(SendError::Other(e)) => {
                    self.count(RequestOutcome::HttpError);
                    return Err(Failure::new(
                        RequestOutcome::HttpError,
                        format!("request failed: {}", self.redact(&e)),
                    ));
                }
            };
            let label = self.key_label(self.keys[k].as_ref());
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.count(RequestOutcome::RateLimited);
                let rest = retry_after.unwrap_or(RATE_LIMIT_REST).max(MIN_REST);
                info!(analyst = %self.config.name, key = %label, rest_s = rest.as_secs_f64(), "rate-limited (HTTP 429); key resting, trying the next");
                self.rest_key(k, rest, 429);
                switched = true;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                self.count(RequestOutcome::HttpError);
                warn!(analyst = %self.config.name, key = %label, "key refused (HTTP 401); resting it for an hour, trying the next");
                self.rest_key(k, UNAUTHORIZED_REST, 401);
                switched = true;
                continue;
            }
            if !status.is_success() {
                self.count(RequestOutcome::HttpError);
                let message = self.redact(&wire::error_message(&bytes));
                return Err(Failure::new(RequestOutcome::HttpError, format!("HTTP {status}: {}", clip(&message, 300))));
            }
            return self.read_answer(&bytes, parse);
        }
        // Every key was tried in this analysis and each request was counted.
        Err(self.all_resting(false))
    }

    /// A 2xx body: tokens and cost counted, then the answer checked.
    fn read_answer<T>(&self, bytes: &[u8], parse: &impl Fn(&str) -> Result<T, String>) -> Result<T, Failure> {
        let malformed = |reason: String| {
            self.count(RequestOutcome::Malformed);
            Failure::new(RequestOutcome::Malformed, reason)
        };
        let reply = wire::parse_response(self.dialect, bytes)
            .map_err(|e| malformed(format!("malformed response: {}", self.redact(&e))))?;
        if let Some(u) = reply.usage {
            let name = self.name();
            self.metrics.tokens.with_label_values(&[name, "input"]).inc_by(u.input_tokens);
            self.metrics.tokens.with_label_values(&[name, "output"]).inc_by(u.output_tokens);
            self.metrics
                .cost_usd
                .with_label_values(&[name])
                .inc_by(self.config.price.cost_usd(u.input_tokens, u.output_tokens));
        }
        let content = reply.content.map_err(|e| malformed(format!("malformed response: {e}")))?;
        match parse(&content) {
            Ok(answer) => {
                self.count(RequestOutcome::Ok);
                Ok(answer)
            }
            Err(e) => Err(malformed(format!("malformed answer: {e} (answer: {})", clip(&self.redact(&content), 200)))),
        }
    }

    async fn send(
        &self,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), SendError> {
        let classify = |e: reqwest::Error| {
            if e.is_timeout() { SendError::Timeout } else { SendError::Other(error_chain(&e)) }
        };
        let mut response = self
            .http
            .post(&self.endpoint)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(SendError::Other(format!("HTTP {status}: response body larger than {MAX_BODY} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, retry_after, bytes))
    }

    pub(crate) fn count(&self, outcome: RequestOutcome) {
        self.metrics.requests.with_label_values(&[self.name(), outcome.as_str()]).inc();
    }

    fn key_label(&self, key: Option<&ApiKey>) -> String {
        key.map_or_else(|| "(no key)".to_string(), |k| k.env().to_string())
    }

    /// `text` with every key replaced by `***`.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for k in self.keys.iter().flatten() {
            if !k.secret().is_empty() {
                out = out.replace(k.secret(), "***");
            }
        }
        out
    }

    /// The first key that is not resting, forgetting rests that are over.
    fn pick_key(&self) -> Option<usize> {
        let now = Instant::now();
        let mut rests = lock(&self.rests);
        for (i, rest) in rests.iter_mut().enumerate() {
            match rest {
                Some(r) if r.until > now => {}
                _ => {
                    *rest = None;
                    return Some(i);
                }
            }
        }
        None
    }

    fn rest_key(&self, k: usize, rest: Duration, status: u16) {
        let until = Instant::now() + rest;
        let until_ms = now_ms() + i64::try_from(rest.as_millis()).unwrap_or(i64::MAX / 2);
        if let Some(slot) = lock(&self.rests).get_mut(k) {
            *slot = Some(Rest { until, until_ms, status });
        }
    }

    /// The failure when no key is usable; `count` it when no request of this analysis was.
    fn all_resting(&self, count: bool) -> Failure {
        if count {
            self.count(RequestOutcome::RateLimited);
        }
        let rests = lock(&self.rests).clone();
        let resting: Vec<(usize, Rest)> = rests.iter().enumerate().filter_map(|(i, r)| r.map(|r| (i, r))).collect();
        let earliest = resting.iter().map(|(_, r)| r.until_ms).min().unwrap_or_else(now_ms);
        let detail = resting
            .iter()
            .map(|(i, r)| {
                let why = if r.status == 429 { "rate-limited (HTTP 429)" } else { "refused (HTTP 401)" };
                format!("{} {why} until {} UTC", self.key_label(self.keys[*i].as_ref()), utc(r.until_ms))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let reason = if resting.iter().all(|(_, r)| r.status == 429) {
            format!("all API keys rate-limited until {} UTC ({detail})", utc(earliest))
        } else {
            format!("all API keys resting until {} UTC ({detail})", utc(earliest))
        };
        Failure::new(RequestOutcome::RateLimited, reason)
    }

    /// The start of this request: the next free turn (`now` when switching keys after a 429 or
    /// 401), or a timeout failure when that is not before the deadline.
    fn reserve_slot(&self, deadline: Instant, switched: bool) -> Result<Instant, Failure> {
        let now = Instant::now();
        let mut next = lock(&self.next_slot);
        let free = next.map_or(now, |n| n.max(now));
        let slot = if switched { now } else { free };
        if slot >= deadline {
            drop(next);
            self.count(RequestOutcome::Timeout);
            return Err(Failure::new(
                RequestOutcome::Timeout,
                format!(
                    "not sent: the next request turn is in {} ms, past the {} ms timeout (min_interval_ms {})",
                    (slot - now).as_millis(),
                    self.config.timeout_ms,
                    self.config.min_interval_ms
                ),
            ));
        }
        *next = Some(free + self.min_interval);
        Ok(slot)
    }
}

/// The signal of an analyst that was not asked about `ctx` (`Error` with `reason`, latency 0):
/// backtests never call an LLM, and their output must not depend on the clock. Needs only the
/// analyst's name, so a backtest runs with an `--llm-config` whose keys are not set.
pub fn not_asked(model: &str, ctx: &ModelContext, reason: &str) -> Signal {
    llm_signal(model, ctx, Err(reason.to_string()), BTreeMap::new(), 0)
}

/// The signal of LLM analyst `model` about `ctx`: the answer, or `Error` with the reason.
fn llm_signal(
    model: &str,
    ctx: &ModelContext,
    result: Result<Answer, String>,
    features: BTreeMap<String, f64>,
    latency_us: u64,
) -> Signal {
    let (action, confidence, reasoning, stop_loss, take_profit, status) = match result {
        Ok(a) => (a.action, a.confidence, a.reasoning, a.stop_loss, a.take_profit, SignalStatus::Ok),
        Err(reason) => (Action::Hold, 0.0, String::new(), None, None, SignalStatus::Error { reason }),
    };
    Signal {
        candle_id: ctx.candle_id.clone(),
        symbol: ctx.symbol.clone(),
        interval: ctx.interval,
        open_time: ctx.open_time,
        open: Some(ctx.open),
        high: ctx.high,
        low: ctx.low,
        close: ctx.close,
        model: model.to_string(),
        model_kind: ModelKind::Llm,
        action,
        confidence,
        scores: BTreeMap::from([("llm".to_string(), confidence)]),
        reasoning,
        features,
        market: ctx.market.clone(),
        stop_loss,
        take_profit,
        latency_us,
        status,
        cycle: None,
    }
}

/// Every analyst on every context, all at once; each analysis ends by its analyst's timeout.
/// `out[i]` holds the signals about `contexts[i]`, in the analysts' order.
pub async fn run_analysts(analysts: &[Arc<Analyst>], contexts: &[ModelContext]) -> Vec<Vec<Signal>> {
    if analysts.is_empty() {
        return vec![Vec::new(); contexts.len()];
    }
    let now = now_ms();
    let all = futures_util::future::join_all(
        contexts.iter().flat_map(|ctx| analysts.iter().map(move |a| a.analyse_at(ctx, now))),
    )
    .await;
    let mut out = Vec::with_capacity(contexts.len());
    let mut it = all.into_iter();
    for _ in contexts {
        out.push(it.by_ref().take(analysts.len()).collect());
    }
    out
}
