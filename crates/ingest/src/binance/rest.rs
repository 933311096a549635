//! `GET /api/v3/klines`: one page at a time with retries and request-weight pacing, and
//! [`KlinePages`], the pager that walks a time range page by page.
//!
//! Pacing: every response carries `X-MBX-USED-WEIGHT-1M`, the IP's weight used in the current
//! minute. Once it reaches `weight_threshold` of `weight_limit`, requests wait for the next
//! minute (at most `weight_pause_max`) instead of running into 429s. A 429 or 418 waits its
//! `Retry-After` seconds. 5xx answers and timeouts are retried after an exponential backoff;
//! any other status is an error carrying Binance's `{"code":..,"msg":..}`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, warn};
use tradeflow_core::market::Interval;
use tradeflow_core::time::now_ms;

use super::kline::{Kline, KlineError, clip, parse_rest_row};
use super::{BinanceConfig, BinanceError, BinanceStats, error_chain};
use tradeflow_net::tls;

pub const WEIGHT_HEADER: &str = "x-mbx-used-weight-1m";

/// A Binance spot REST client for public market data.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    config: BinanceConfig,
    /// No request before this instant (weight limit reached, or `Retry-After`).
    pause_until: Arc<Mutex<Option<Instant>>>,
    stats: Arc<BinanceStats>,
}

impl RestClient {
    pub fn new(config: &BinanceConfig, stats: Arc<BinanceStats>) -> Result<Self, BinanceError> {
        let tls = tls::client_config().map_err(BinanceError::Tls)?;
        let http = reqwest::Client::builder()
            // reqwest downcasts the `rustls::ClientConfig` itself, not an `Arc` of it.
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("tradeflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BinanceError::Client(error_chain(&e)))?;
        Ok(Self {
            http,
            base: config.rest_url.trim_end_matches('/').to_string(),
            config: config.clone(),
            pause_until: Arc::default(),
            stats,
        })
    }

    pub fn stats(&self) -> &Arc<BinanceStats> {
        &self.stats
    }

    /// One page: the klines of `symbol` (upper case) whose open time is in `[start, end]`, at
    /// most `page_limit` of them, oldest first. Each row is read on its own: a malformed row is
    /// an `Err` among the others.
    pub async fn klines(
        &self,
        symbol: &str,
        interval: Interval,
        start: i64,
        end: i64,
    ) -> Result<Vec<Result<Kline, KlineError>>, BinanceError> {
        let url = format!(
            "{}/api/v3/klines?symbol={symbol}&interval={interval}&startTime={start}&endTime={end}&limit={}",
            self.base, self.config.page_limit
        );
        let body = self.get(&url).await?;
        let rows: Vec<Value> = serde_json::from_slice(&body).map_err(|e| BinanceError::Body {
            url: url.clone(),
            reason: format!("not a JSON array of klines ({e}): {}", clip(&String::from_utf8_lossy(&body))),
        })?;
        Ok(rows.iter().map(parse_rest_row).collect())
    }

    /// Pages through the closed klines of `symbol` with open times in `[from, to]`.
    pub fn pages(&self, symbol: &str, interval: Interval, from: i64, to: i64) -> KlinePages<'_> {
        KlinePages { client: self, symbol: symbol.to_string(), interval, next: from, to, done: false }
    }

    /// GET with pacing and retries; the body of a 2xx answer.
    async fn get(&self, url: &str) -> Result<Vec<u8>, BinanceError> {
        let max = self.config.max_retries;
        let mut attempt = 0u32;
        loop {
            self.wait_for_pause().await;
            self.stats.rest_requests.fetch_add(1, Ordering::Relaxed);
            debug!(%url, attempt, "binance GET");
            // What went wrong this attempt, and how long to wait before the next one.
            let (problem, wait) = match self.http.get(url).send().await {
                Ok(response) => {
                    self.note_weight(&response);
                    let status = response.status();
                    if status.is_success() {
                        match response.bytes().await {
                            Ok(body) => return Ok(body.to_vec()),
                            Err(e) if e.is_timeout() => {
                                (format!("timed out reading the body: {}", error_chain(&e)), None)
                            }
                            Err(e) => return Err(BinanceError::Request { url: url.into(), reason: error_chain(&e) }),
                        }
                    } else if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 418 {
                        let retry_after = retry_after(response.headers());
                        let body = body_text(response).await;
                        if let Some(wait) = retry_after {
                            self.pause_for(wait);
                        }
                        (format!("HTTP {status}: {}", clip(&body)), retry_after)
                    } else if status.is_server_error() {
                        (format!("HTTP {status}: {}", clip(&body_text(response).await)), None)
                    } else {
                        return Err(api_error(url, status, &body_text(response).await));
                    }
                }
                Err(e) if e.is_timeout() => {
                    (format!("no answer within {:?}: {}", self.config.request_timeout, error_chain(&e)), None)
                }
                Err(e) => return Err(BinanceError::Request { url: url.into(), reason: error_chain(&e) }),
            };
            if attempt >= max {
                return Err(BinanceError::GaveUp { url: url.into(), attempts: attempt + 1, last: problem });
            }
            let wait =
                wait.unwrap_or_else(|| backoff(self.config.retry_backoff, self.config.retry_backoff_max, attempt));
            warn!(%url, attempt = attempt + 1, ?wait, %problem, "binance request failed; retrying");
            self.stats.rest_retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Reads the weight used this minute; at or above the threshold, pauses until the next
    /// minute starts (Binance's weight window), at most `weight_pause_max`.
    fn note_weight(&self, response: &reqwest::Response) {
        let Some(used) = response
            .headers()
            .get(WEIGHT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        self.stats.used_weight.store(used, Ordering::Relaxed);
        let limit = f64::from(self.config.weight_limit);
        if used as f64 >= limit * self.config.weight_threshold {
            let to_next_minute = Duration::from_millis((60_000 - now_ms().rem_euclid(60_000)) as u64 + 50);
            let wait = to_next_minute.min(self.config.weight_pause_max);
            warn!(used, limit = self.config.weight_limit, ?wait, "binance request weight near the limit; pausing");
            self.stats.weight_pauses.fetch_add(1, Ordering::Relaxed);
            self.pause_for(wait);
        }
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut pause) = self.pause_until.lock() {
            *pause = Some(pause.map_or(until, |p| p.max(until)));
        }
    }

    async fn wait_for_pause(&self) {
        let until = self.pause_until.lock().ok().and_then(|mut p| p.take());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

pub(crate) use tradeflow_net::http::backoff;
use tradeflow_net::http::retry_after;

async fn body_text(response: reqwest::Response) -> String {
    response.text().await.unwrap_or_else(|e| format!("(body unreadable: {e})"))
}

/// A 4xx: Binance's `{"code":-1121,"msg":"Invalid symbol."}` when the body is that.
fn api_error(url: &str, status: StatusCode, body: &str) -> BinanceError {
    let parsed: Option<(i64, String)> = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let code = v.get("code")?.as_i64()?;
        let msg = v.get("msg")?.as_str()?.to_string();
        Some((code, msg))
    });
    match parsed {
        Some((code, msg)) => BinanceError::Api { url: url.into(), status: status.as_u16(), code, msg },
        None => BinanceError::Status { url: url.into(), status: status.as_u16(), body: clip(body) },
    }
}

/// One item of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum PageItem {
    /// A closed kline.
    Bar(Kline),
    /// A row that could not be read; `reason` names the series, the field and the value.
    Malformed { open_time: Option<i64>, reason: String },
}

/// Walks `[from, to]` page by page: the next page starts one interval after the last open time
/// seen. Ends at `to`, at the first kline that is not closed yet (close time not before now, less
/// `close_margin`), or at a short page.
pub struct KlinePages<'a> {
    client: &'a RestClient,
    symbol: String,
    interval: Interval,
    next: i64,
    to: i64,
    done: bool,
}

impl KlinePages<'_> {
    /// The next page, `None` when the range is done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<PageItem>>, BinanceError> {
        let now = now_ms();
        let end = self.to.min(now);
        if self.done || self.next > end {
            self.done = true;
            return Ok(None);
        }
        let iv = self.interval.millis();
        let margin = i64::try_from(self.client.config.close_margin.as_millis()).unwrap_or(i64::MAX);
        let rows = self.client.klines(&self.symbol, self.interval, self.next, end).await?;
        let full = rows.len() >= usize::from(self.client.config.page_limit);
        let mut last_open: Option<i64> = None;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            match row {
                Ok(k) => {
                    if k.close_time.saturating_add(margin) >= now {
                        // Still forming; so is everything after it.
                        self.done = true;
                        break;
                    }
                    last_open = Some(k.raw.open_time);
                    items.push(PageItem::Bar(k));
                }
                Err(e) => {
                    if let Some(t) = e.open_time {
                        last_open = Some(t);
                    }
                    let at = e.open_time.map_or_else(|| "?".to_string(), |t| t.to_string());
                    items.push(PageItem::Malformed {
                        open_time: e.open_time,
                        reason: format!("binance REST kline {} {} at {at}: {}", self.symbol, self.interval, e.problem),
                    });
                }
            }
        }
        match last_open {
            Some(t) if t + iv > self.next => self.next = t + iv,
            Some(t) => {
                return Err(BinanceError::Body {
                    url: format!("{}/api/v3/klines", self.client.base),
                    reason: format!(
                        "asked for {} {} from {}, got rows up to {t}: the server does not follow startTime",
                        self.symbol, self.interval, self.next
                    ),
                });
            }
            None if full && !self.done => {
                return Err(BinanceError::Body {
                    url: format!("{}/api/v3/klines", self.client.base),
                    reason: format!("a full page of {} {} without one readable open time", self.symbol, self.interval),
                });
            }
            None => {}
        }
        if !full {
            self.done = true;
        }
        Ok(if items.is_empty() && self.done { None } else { Some(items) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_binance_code_and_message() {
        let e = api_error("u", StatusCode::BAD_REQUEST, r#"{"code":-1121,"msg":"Invalid symbol."}"#);
        assert_eq!(e.to_string(), "GET u: HTTP 400: Invalid symbol. (Binance code -1121)");
        let e = api_error("u", StatusCode::NOT_FOUND, "<html>nope</html>");
        assert_eq!(e.to_string(), "GET u: HTTP 404: <html>nope</html>");
    }
}
