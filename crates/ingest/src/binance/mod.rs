//! Binance spot klines: REST backfill (`GET /api/v3/klines`) and live closed bars from the
//! combined WebSocket stream (`/stream?streams=btcusdt@kline_1m/...`).
//!
//! - [`BinanceSource`] produces [`BinanceItem`]s (a bar of one series, or a kline that could not
//!   be read) on a tokio channel, per series in increasing open time, each bar once;
//! - [`run_binance`] feeds them to an [`IngestStage`] and publishes what it emits like the CSV
//!   replay does: candles to `md.candles`, refusals to `audit.events`.
//!
//! Only closed bars become items: REST rows whose close time has passed, WebSocket events with
//! `k.x == true`. After every (re)connect the source fills the gap by REST from the last bar it
//! handed over, up to now, before it passes on live bars; a live bar that skips ahead triggers
//! the same fill. Candles carry source `binance` and the upper-case symbol (`BTCUSDT`). Public
//! market data needs no API key.

mod kline;
mod live;
mod rest;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::{BusError, Outgoing, Producer};
use tradeflow_core::market::Interval;

pub use kline::{Kline, KlineError, REST_FIELDS, WsMessage, parse_rest_row, parse_ws_message};
pub use live::BinanceSource;
pub use rest::{KlinePages, PageItem, RestClient, WEIGHT_HEADER};

use crate::replay::{BATCH, IngestMetrics, ReplayReport, flush, route};
use crate::stage::{IngestEvent, IngestStage, RawBar};

/// Source name in candle ids: `binance:BTCUSDT:1m:<open time>`.
pub const SOURCE: &str = "binance";

/// One (symbol, interval) series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinanceSeries {
    /// Upper case, as in candles and REST requests (`BTCUSDT`).
    pub symbol: String,
    pub interval: Interval,
}

impl BinanceSeries {
    /// `symbol` in any case; it is stored upper case.
    pub fn new(symbol: &str, interval: Interval) -> Self {
        Self { symbol: symbol.trim().to_ascii_uppercase(), interval }
    }

    /// `btcusdt@kline_1m`.
    pub fn stream_name(&self) -> String {
        format!("{}@kline_{}", self.symbol.to_ascii_lowercase(), self.interval)
    }
}

#[derive(Debug, Clone)]
pub struct BinanceConfig {
    /// REST base URL, default `https://api.binance.com`.
    pub rest_url: String,
    /// WebSocket base URL, default `wss://stream.binance.com:9443`.
    pub ws_url: String,
    pub series: Vec<BinanceSeries>,
    /// Open time of the first bar to fetch by REST; `None`: no history, the first bars are
    /// the live ones (gaps after that are still filled).
    pub backfill_from: Option<i64>,
    /// Without `live`: the last open time to fetch (default: now).
    pub backfill_to: Option<i64>,
    /// Follow the WebSocket after the backfill; `false`: backfill, then stop.
    pub live: bool,
    /// Time limit of every request and of a WebSocket connect (default 10 s).
    pub request_timeout: Duration,
    /// Retries of a request after a 5xx, a timeout, a 429 or a 418 (default 5).
    pub max_retries: u32,
    /// Backoff before the first retry, doubling up to `retry_backoff_max` (500 ms, 30 s).
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Request weight allowed per minute (default 6000, Binance spot's `REQUEST_WEIGHT`).
    pub weight_limit: u32,
    /// Share of `weight_limit` at which requests wait for the next minute (default 0.8).
    pub weight_threshold: f64,
    /// Longest such wait (default 60 s).
    pub weight_pause_max: Duration,
    /// Klines per request, at most 1000 (default 1000).
    pub page_limit: u16,
    /// A REST kline counts as closed when its close time is this far in the past (default 1 s),
    /// so that a local clock slightly ahead of Binance's never takes a forming bar for a closed
    /// one. A bar held back by the margin is fetched by a second fill this long after connect.
    pub close_margin: Duration,
    /// Backoff before the first reconnect, doubling up to `reconnect_backoff_max` (1 s, 60 s).
    pub reconnect_backoff: Duration,
    pub reconnect_backoff_max: Duration,
    /// Reconnect after this long, before Binance's 24 h connection limit (default 23 h).
    pub rotate_after: Duration,
    /// A connection that delivers no frame for this long is dead (default 5 min; Binance pings
    /// every 20 s and sends kline updates every 1–2 s).
    pub ws_idle_timeout: Duration,
    /// Capacity of the channel from the source to the publisher (default 4096).
    pub channel_capacity: usize,
    /// [`run_binance`]: start each series after its last candle on `md.candles` (its gap fill
    /// fetches what came since, or what Redis lost with its machine) rather than at
    /// `backfill_from` or at the live bars (default true).
    pub resume: bool,
    /// Per series, the open time of the first bar to fetch when later than `backfill_from`;
    /// [`run_binance`] sets it from `md.candles` when `resume` is on.
    pub resume_from: HashMap<BinanceSeries, i64>,
}

impl BinanceConfig {
    pub fn new(series: impl IntoIterator<Item = BinanceSeries>) -> Self {
        Self {
            rest_url: "https://api.binance.com".into(),
            ws_url: "wss://stream.binance.com:9443".into(),
            series: series.into_iter().collect(),
            backfill_from: None,
            backfill_to: None,
            live: true,
            request_timeout: Duration::from_secs(10),
            max_retries: 5,
            retry_backoff: Duration::from_millis(500),
            retry_backoff_max: Duration::from_secs(30),
            weight_limit: 6000,
            weight_threshold: 0.8,
            weight_pause_max: Duration::from_secs(60),
            page_limit: 1000,
            close_margin: Duration::from_secs(1),
            reconnect_backoff: Duration::from_secs(1),
            reconnect_backoff_max: Duration::from_secs(60),
            rotate_after: Duration::from_secs(23 * 3600),
            ws_idle_timeout: Duration::from_secs(300),
            channel_capacity: 4096,
            resume: true,
            resume_from: HashMap::new(),
        }
    }

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), BinanceError> {
        let mut problems = Vec::new();
        if self.series.is_empty() {
            problems.push("series: at least one (symbol, interval) is needed".to_string());
        }
        let mut seen = HashSet::new();
        for s in &self.series {
            if s.symbol.is_empty() || s.symbol.len() > 20 || !s.symbol.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems
                    .push(format!("series: symbol {:?} is not a Binance symbol (1–20 letters and digits)", s.symbol));
            }
            if !seen.insert(s) {
                problems.push(format!("series: {} {} is listed twice", s.symbol, s.interval));
            }
        }
        if self.series.len() > 1024 {
            problems.push(format!("series: {} streams; one connection carries at most 1024", self.series.len()));
        }
        for (name, url, schemes) in
            [("rest_url", &self.rest_url, ["http://", "https://"]), ("ws_url", &self.ws_url, ["ws://", "wss://"])]
        {
            if !schemes.iter().any(|s| url.starts_with(s)) {
                problems.push(format!("{name}: {url:?} must start with {} or {}", schemes[0], schemes[1]));
            }
        }
        if let (Some(from), Some(to)) = (self.backfill_from, self.backfill_to)
            && from > to
        {
            problems.push(format!("backfill_to {to} is before backfill_from {from}"));
        }
        if self.live && self.backfill_to.is_some() {
            problems.push("backfill_to: only without live (a live source fills up to now)".into());
        }
        if !(1..=1000).contains(&self.page_limit) {
            problems.push(format!("page_limit: {} is not in 1..=1000", self.page_limit));
        }
        if self.weight_limit == 0 {
            problems.push("weight_limit: must be positive".into());
        }
        if !(self.weight_threshold > 0.0 && self.weight_threshold <= 1.0) {
            problems.push(format!("weight_threshold: {} is not in (0, 1]", self.weight_threshold));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("rotate_after", self.rotate_after),
            ("ws_idle_timeout", self.ws_idle_timeout),
        ] {
            if d.is_zero() {
                problems.push(format!("{name}: must be positive"));
            }
        }
        if self.channel_capacity == 0 {
            problems.push("channel_capacity: must be positive".into());
        }
        if problems.is_empty() { Ok(()) } else { Err(BinanceError::Config(problems.join("; "))) }
    }

    /// `<ws_url>/stream?streams=btcusdt@kline_1m/ethusdt@kline_1h`.
    pub fn stream_url(&self) -> String {
        let names: Vec<String> = self.series.iter().map(BinanceSeries::stream_name).collect();
        format!("{}/stream?streams={}", self.ws_url.trim_end_matches('/'), names.join("/"))
    }
}

/// What the source hands over.
#[derive(Debug, Clone, PartialEq)]
pub enum BinanceItem {
    /// A closed bar of one series.
    Bar { symbol: String, interval: Interval, raw: RawBar },
    /// A kline that could not be read; the reason names the field and the value.
    Malformed { symbol: String, interval: Interval, reason: String },
}

impl BinanceItem {
    /// Runs the item through `stage` as source [`SOURCE`]. An empty result for a bar means a
    /// duplicate.
    pub fn feed(&self, stage: &mut IngestStage) -> Vec<IngestEvent> {
        match self {
            Self::Bar { symbol, interval, raw } => stage.on_bar(SOURCE, symbol, *interval, *raw),
            Self::Malformed { symbol, interval, reason } => {
                vec![stage.malformed(SOURCE, symbol, *interval, reason.clone())]
            }
        }
    }
}

/// Counters of a source, for logs and tests.
#[derive(Debug, Default)]
pub struct BinanceStats {
    /// REST requests sent, retries included.
    pub rest_requests: AtomicU64,
    pub rest_retries: AtomicU64,
    /// Waits for the next minute because the used weight neared the limit.
    pub weight_pauses: AtomicU64,
    /// Last `X-MBX-USED-WEIGHT-1M` seen.
    pub used_weight: AtomicU64,
    /// WebSocket connections made.
    pub ws_connections: AtomicU64,
    /// Of them, ends because `rotate_after` was reached.
    pub ws_rotations: AtomicU64,
    /// Bars handed over, by where they came from.
    pub rest_bars: AtomicU64,
    pub live_bars: AtomicU64,
    /// Bars received again (REST/WebSocket overlap) and not handed over twice.
    pub repeats_skipped: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum BinanceError {
    #[error("binance config: {0}")]
    Config(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("HTTP client set-up: {0}")]
    Client(String),
    /// A 4xx with Binance's error body.
    #[error("GET {url}: HTTP {status}: {msg} (Binance code {code})")]
    Api { url: String, status: u16, code: i64, msg: String },
    /// A 4xx without Binance's error body.
    #[error("GET {url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("GET {url}: gave up after {attempts} attempts; last: {last}")]
    GaveUp { url: String, attempts: u32, last: String },
    #[error("GET {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("GET {url}: {reason}")]
    Body { url: String, reason: String },
    #[error("websocket {url}: {reason}")]
    WebSocket { url: String, reason: String },
    #[error("binance source task: {0}")]
    Task(String),
    #[error("the receiver of the binance items is gone")]
    ChannelClosed,
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl BinanceError {
    /// Errors that another attempt will not cure: bad configuration, a request Binance refuses
    /// (unknown symbol, ...). A live source stops on them; it retries everything else.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::Tls(_) | Self::Client(_) | Self::Api { .. } | Self::Status { .. } | Self::Task(_)
        )
    }
}

pub(crate) use tradeflow_net::http::error_chain;

/// Runs a [`BinanceSource`] and publishes what `stage` makes of its items, like the CSV replay:
/// candles to `md.candles`, refusals to `audit.events`, in pipelined batches (whatever is
/// waiting, up to 1000 at a time). Returns when the source is done (backfill only), on
/// `shutdown` (after publishing every item the source had already handed over), or on a fatal
/// source error or a bus error.
pub async fn run_binance(
    producer: &Producer,
    stage: &mut IngestStage,
    config: &BinanceConfig,
    metrics: &IngestMetrics,
    shutdown: &CancellationToken,
) -> Result<ReplayReport, BinanceError> {
    let mut config = config.clone();
    if config.resume {
        config.resume_from = resume_points(producer, stage, &config.series).await?;
    }
    let source = BinanceSource::new(config.clone())?;
    let (tx, mut rx) = mpsc::channel(config.channel_capacity.max(1));
    let stop = shutdown.child_token();
    // The source stops however this function is left.
    let _stop_source = stop.clone().drop_guard();
    let task = tokio::spawn(source.run(tx, stop.clone()));
    let mut report = ReplayReport::default();
    let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
    loop {
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = shutdown.cancelled() => None,
        };
        let Some(item) = item else { break };
        publish(producer, stage, metrics, &item, &mut batch, &mut report)?;
        while batch.len() < BATCH {
            let Ok(item) = rx.try_recv() else { break };
            publish(producer, stage, metrics, &item, &mut batch, &mut report)?;
        }
        flush(producer, &mut batch, shutdown).await?;
    }
    stop.cancel();
    let outcome = task.await;
    // The source is gone: what it handed over is all in the channel.
    while let Ok(item) = rx.try_recv() {
        publish(producer, stage, metrics, &item, &mut batch, &mut report)?;
        if batch.len() >= BATCH {
            flush(producer, &mut batch, shutdown).await?;
        }
    }
    flush(producer, &mut batch, shutdown).await?;
    match outcome {
        Ok(result) => result?,
        Err(e) => return Err(BinanceError::Task(e.to_string())),
    }
    Ok(report)
}

/// Per series, the open time of the first bar to fetch: after its last candle on `md.candles`,
/// or at the first bucket an aggregation has not built yet; series with nothing there (or with
/// built intervals that have nothing there) are left out and start as configured.
async fn resume_points(
    producer: &Producer,
    stage: &IngestStage,
    series: &[BinanceSeries],
) -> Result<HashMap<BinanceSeries, i64>, BusError> {
    let mut wanted = Vec::new();
    for s in series {
        for i in std::iter::once(&s.interval).chain(stage.targets(s.interval)) {
            wanted.push((SOURCE.to_string(), s.symbol.clone(), *i));
        }
    }
    let last = crate::resume::last_candles(producer.bus(), &wanted).await?;
    Ok(series
        .iter()
        .filter_map(|s| {
            let at = crate::resume::resume_point(&last, SOURCE, &s.symbol, s.interval, stage.targets(s.interval))?;
            // From the first bucket not built yet, so that it is built from all its bars (the
            // bars before `send_from` go again, same ids); with no built candle at all, as
            // configured.
            let from = at.rebuild_from?;
            tracing::info!(symbol = %s.symbol, interval = %s.interval, from, "resuming after the last candle on md.candles");
            Some((s.clone(), from))
        })
        .collect())
}

fn publish(
    producer: &Producer,
    stage: &mut IngestStage,
    metrics: &IngestMetrics,
    item: &BinanceItem,
    batch: &mut Vec<Outgoing>,
    report: &mut ReplayReport,
) -> Result<(), BusError> {
    let events = item.feed(stage);
    if events.is_empty() {
        report.duplicates += 1;
    }
    for event in &events {
        batch.push(route(producer, event, SOURCE, metrics, report)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_stream_names() {
        let mut c = BinanceConfig::new([
            BinanceSeries::new("btcusdt", Interval::M1),
            BinanceSeries::new("ETHUSDT", Interval::H1),
        ]);
        c.ws_url = "ws://127.0.0.1:9/".into();
        assert_eq!(c.series[0].symbol, "BTCUSDT");
        assert_eq!(c.stream_url(), "ws://127.0.0.1:9/stream?streams=btcusdt@kline_1m/ethusdt@kline_1h");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_config_problem_is_reported() {
        let mut c = BinanceConfig::new([
            BinanceSeries::new("BTC/USDT", Interval::M1),
            BinanceSeries::new("ethusdt", Interval::M1),
            BinanceSeries::new("ETHUSDT", Interval::M1),
        ]);
        c.rest_url = "api.binance.com".into();
        c.page_limit = 1500;
        c.weight_threshold = 1.5;
        c.backfill_to = Some(0);
        let e = c.validate().unwrap_err().to_string();
        for part in [
            r#"symbol "BTC/USDT" is not a Binance symbol"#,
            "ETHUSDT 1m is listed twice",
            r#"rest_url: "api.binance.com" must start with http:// or https://"#,
            "page_limit: 1500",
            "weight_threshold: 1.5",
            "backfill_to: only without live",
        ] {
            assert!(e.contains(part), "{part:?} missing from {e}");
        }
        assert!(BinanceConfig::new([]).validate().unwrap_err().to_string().contains("at least one"));
    }

    #[test]
    fn errors_a_retry_cannot_cure_are_fatal() {
        let api = BinanceError::Api { url: "u".into(), status: 400, code: -1121, msg: "Invalid symbol.".into() };
        assert!(api.is_fatal());
        assert!(!BinanceError::GaveUp { url: "u".into(), attempts: 6, last: "HTTP 503".into() }.is_fatal());
        assert!(!BinanceError::WebSocket { url: "u".into(), reason: "reset".into() }.is_fatal());
    }
}
