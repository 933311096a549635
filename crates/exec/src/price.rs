//! [`PriceSources`]: a symbol's current price from the exchanges, for callers that want more
//! than the last candle (the edge's `GET /market/price/{symbol}`).
//!
//! The chain, first answer wins: Binance USDⓈ-M futures' public ticker (`GET
//! /fapi/v1/ticker/price?symbol=`), then Hyperliquid's mids (`POST /info {"type": "allMids"}`,
//! the coin from the symbol as the Hyperliquid executor maps it). Neither needs a key. Each
//! source is off unless its base URL is configured, so nothing leaves the machine by default.
//! An outcome (a price, or why every source missed) is kept for `cache_ms` per symbol, so a
//! burst of requests costs one round of lookups and a source that is down delays at most one
//! request per symbol and period. The caller falls back to its own last candle when every
//! source misses.
//!
//! Shapes followed: Binance "Symbol Price Ticker" (`{"symbol", "price", "time"}`, refusals
//! `{"code", "msg"}`) and Hyperliquid "Info endpoint: Retrieve mids for all coins", both as
//! documented on 2026-12-06.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::debug;
use tradeflow_net::http::{clip, error_chain};
use tradeflow_net::tls;

use crate::hyperliquid::coin_of;
use crate::hyperliquid::wire::parse_all_mids;

/// Symbols whose outcome is cached at most; past it expired entries go, then all.
const MAX_CACHED: usize = 4096;

/// `[edge.prices]`: which exchanges are asked, and for how long an answer is reused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceSourcesConfig {
    /// Binance USDⓈ-M futures REST base URL (`https://fapi.binance.com`); unset: not asked.
    pub binance_url: Option<String>,
    /// Hyperliquid API base URL (`https://api.hyperliquid.xyz`); unset: not asked.
    pub hyperliquid_url: Option<String>,
    /// Our symbol → Hyperliquid coin, where dropping the quote suffix is not it.
    pub hyperliquid_coins: BTreeMap<String, String>,
    /// How long an outcome is reused, per symbol (default 2000 ms).
    pub cache_ms: u64,
    /// Time limit of one lookup (default 1500 ms).
    pub timeout_ms: u64,
}

impl Default for PriceSourcesConfig {
    fn default() -> Self {
        Self {
            binance_url: None,
            hyperliquid_url: None,
            hyperliquid_coins: BTreeMap::new(),
            cache_ms: 2000,
            timeout_ms: 1500,
        }
    }
}

impl PriceSourcesConfig {
    /// Whether any exchange is asked.
    pub fn enabled(&self) -> bool {
        self.binance_url.is_some() || self.hyperliquid_url.is_some()
    }

    /// Every problem, each naming its field under `prefix` (e.g. `edge.prices`).
    pub fn validate(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        for (name, url) in [("binance_url", &self.binance_url), ("hyperliquid_url", &self.hyperliquid_url)] {
            if let Some(url) = url {
                let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
                if !matches!(rest, Some(h) if !h.is_empty() && !h.starts_with('/') && !h.contains(['?', '#', ' '])) {
                    p.push(format!("{prefix}.{name}: {url:?} is not an http:// or https:// URL without query"));
                }
            }
        }
        if self.cache_ms > 60_000 {
            p.push(format!("{prefix}.cache_ms: expected 0 to 60000, got {}", self.cache_ms));
        }
        if !(1..=30_000).contains(&self.timeout_ms) {
            p.push(format!("{prefix}.timeout_ms: expected 1 to 30000, got {}", self.timeout_ms));
        }
        p
    }
}

/// Which exchange answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    Binance,
    Hyperliquid,
}

impl PriceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binance => "binance",
            Self::Hyperliquid => "hyperliquid",
        }
    }
}

/// A price from an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub price: f64,
    pub source: PriceSource,
    /// The exchange's time of it when it says, else when it was read (ms).
    pub time: i64,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Sources asked before the one that answered, and why they had nothing.
    pub skipped: Vec<Miss>,
}

/// Why a source gave no price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Miss {
    pub source: PriceSource,
    pub reason: String,
}

/// A price, or why every configured source had none.
pub type Outcome = Result<Quote, Vec<Miss>>;

/// The configured price sources and their cache. Build one per configuration and share it.
#[derive(Debug)]
pub struct PriceSources {
    config: PriceSourcesConfig,
    http: Option<reqwest::Client>,
    cache: Mutex<HashMap<String, (Instant, Outcome)>>,
}

impl PriceSources {
    pub fn new(config: PriceSourcesConfig) -> Result<Self, String> {
        let problems = config.validate("prices");
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let http = if config.enabled() {
            let tls = tls::client_config()?;
            let timeout = Duration::from_millis(config.timeout_ms);
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("tradeflow/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("price sources: cannot build the HTTP client: {}", error_chain(&e)))?;
            Some(client)
        } else {
            None
        };
        Ok(Self { config, http, cache: Mutex::new(HashMap::new()) })
    }

    pub fn config(&self) -> &PriceSourcesConfig {
        &self.config
    }

    /// The first exchange's price of `symbol`, or why each configured one had none (empty:
    /// none is configured). Outcomes are reused for `cache_ms`.
    pub async fn price(&self, symbol: &str) -> Result<Quote, Vec<Miss>> {
        let Some(http) = &self.http else { return Err(Vec::new()) };
        let ttl = Duration::from_millis(self.config.cache_ms);
        if let Some((at, outcome)) = self.cache.lock().ok().and_then(|c| c.get(symbol).cloned())
            && at.elapsed() < ttl
        {
            return outcome.map(|q| Quote { cached: true, ..q });
        }
        let outcome = self.ask(http, symbol).await;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.retain(|_, (at, _)| at.elapsed() < ttl);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(symbol.to_string(), (Instant::now(), outcome.clone()));
        }
        outcome
    }

    async fn ask(&self, http: &reqwest::Client, symbol: &str) -> Result<Quote, Vec<Miss>> {
        let mut misses = Vec::new();
        if let Some(base) = &self.config.binance_url {
            match binance(http, base.trim_end_matches('/'), symbol).await {
                Ok((price, time)) => {
                    return Ok(Quote { price, source: PriceSource::Binance, time, cached: false, skipped: misses });
                }
                Err(reason) => misses.push(Miss { source: PriceSource::Binance, reason }),
            }
        }
        if let Some(base) = &self.config.hyperliquid_url {
            let coin = coin_of(symbol, &self.config.hyperliquid_coins);
            match hyperliquid(http, base.trim_end_matches('/'), &coin).await {
                Ok(price) => {
                    let time = tradeflow_core::time::now_ms();
                    return Ok(Quote { price, source: PriceSource::Hyperliquid, time, cached: false, skipped: misses });
                }
                Err(reason) => misses.push(Miss { source: PriceSource::Hyperliquid, reason }),
            }
        }
        debug!(symbol, ?misses, "no exchange price");
        Err(misses)
    }
}

/// Binance's last price and its time.
async fn binance(http: &reqwest::Client, base: &str, symbol: &str) -> Result<(f64, i64), String> {
    let symbol = symbol.to_ascii_uppercase();
    if symbol.is_empty() || !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{symbol:?} is not a Binance symbol"));
    }
    let url = format!("{base}/fapi/v1/ticker/price?symbol={symbol}");
    let (status, body) = fetch(http.get(url)).await?;
    if status != 200 {
        let msg = body.get("msg").and_then(Value::as_str).map_or_else(|| clip(&body.to_string(), 200), str::to_string);
        return Err(format!("HTTP {status}: {msg}"));
    }
    let price = body
        .get("price")
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<f64>().ok())
        .filter(|p| p.is_finite() && *p > 0.0)
        .ok_or_else(|| format!("no price in {}", clip(&body.to_string(), 200)))?;
    let time = body.get("time").and_then(Value::as_i64).unwrap_or_else(tradeflow_core::time::now_ms);
    Ok((price, time))
}

/// Hyperliquid's mid of `coin`.
async fn hyperliquid(http: &reqwest::Client, base: &str, coin: &str) -> Result<f64, String> {
    let request = http
        .post(format!("{base}/info"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json!({"type": "allMids"}).to_string());
    let (status, body) = fetch(request).await?;
    if status != 200 {
        return Err(format!("HTTP {status}: {}", clip(&body.to_string(), 200)));
    }
    let mids = parse_all_mids(&body).map_err(|e| e.to_string())?;
    mids.get(coin).copied().filter(|p| *p > 0.0).ok_or_else(|| format!("no mid for coin {coin:?}"))
}

/// Status and JSON body (`null` when not JSON); transport errors without the URL.
async fn fetch(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| error_chain(&e.without_url()))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| error_chain(&e.without_url()))?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_validated() {
        let c = PriceSourcesConfig::default();
        assert!(!c.enabled());
        assert!(c.validate("edge.prices").is_empty());
        let bad = PriceSourcesConfig {
            binance_url: Some("ftp://x".into()),
            cache_ms: 70_000,
            timeout_ms: 0,
            ..PriceSourcesConfig::default()
        };
        let fields: Vec<String> =
            bad.validate("edge.prices").iter().map(|p| p.split(':').next().unwrap().to_string()).collect();
        assert_eq!(fields, ["edge.prices.binance_url", "edge.prices.cache_ms", "edge.prices.timeout_ms"]);
    }

    #[tokio::test]
    async fn nothing_configured_asks_nothing() {
        let s = PriceSources::new(PriceSourcesConfig::default()).unwrap();
        assert_eq!(s.price("BTCUSDT").await, Err(Vec::new()));
    }
}
