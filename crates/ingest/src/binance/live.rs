//! The source: REST backfill, then the combined kline stream with gap fills, reconnects and
//! rotation.
//!
//! Per connection: connect; start reading frames at once (a task of its own, so pings are
//! answered and closes are buffered whatever the REST side is doing); fill every series by REST
//! from its last bar to now; only then pass on the live bars, skipping those already handed
//! over. A second fill runs `close_margin` after connecting, for bars the first one held back as
//! possibly still forming. A live bar more than one interval after the last one triggers a fill
//! of the hole first. The connection ends on an error, a close, `ws_idle_timeout` without frames
//! or, proactively, after `rotate_after`; reconnects back off exponentially (capped) and while
//! the stream is unreachable, REST fills keep the bars coming.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use tradeflow_core::time::now_ms;

use super::kline::{Kline, WsMessage, parse_ws_message};
use super::rest::{PageItem, RestClient, backoff};
use super::{BinanceConfig, BinanceError, BinanceItem, BinanceSeries, BinanceStats};
use tradeflow_net::tls;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Binance klines for the configured series, handed over on a channel (see the module docs).
pub struct BinanceSource {
    config: BinanceConfig,
    rest: RestClient,
    series: Vec<SeriesState>,
    /// Stream name → index in `series`.
    streams: Arc<HashMap<String, usize>>,
    stats: Arc<BinanceStats>,
}

struct SeriesState {
    series: BinanceSeries,
    /// Open time of the last bar handed over (or the one before `backfill_from`).
    last: Option<i64>,
}

/// What the frame reader passes to the source.
enum Live {
    Closed { series: usize, kline: Result<Kline, String> },
    Lost(String),
}

/// Why a connection ended without an error of the source's own.
enum SessionEnd {
    Rotate,
    Lost(String),
}

impl BinanceSource {
    pub fn new(config: BinanceConfig) -> Result<Self, BinanceError> {
        config.validate()?;
        let stats = Arc::new(BinanceStats::default());
        let rest = RestClient::new(&config, stats.clone())?;
        let series = config
            .series
            .iter()
            .map(|s| {
                // The later of the backfill's start and the resume point: bars before it are
                // wanted by nobody or already on the stream.
                let from = config.backfill_from.into_iter().chain(config.resume_from.get(s).copied()).max();
                SeriesState { series: s.clone(), last: from.map(|t| t - s.interval.millis()) }
            })
            .collect();
        let streams = Arc::new(config.series.iter().enumerate().map(|(i, s)| (s.stream_name(), i)).collect());
        Ok(Self { config, rest, series, streams, stats })
    }

    pub fn stats(&self) -> Arc<BinanceStats> {
        self.stats.clone()
    }

    /// Runs until done (without `live`: after the backfill), `shutdown`, a fatal error, or the
    /// receiver going away.
    pub async fn run(mut self, tx: mpsc::Sender<BinanceItem>, shutdown: CancellationToken) -> Result<(), BinanceError> {
        let result = tokio::select! {
            r = self.run_inner(&tx) => r,
            _ = shutdown.cancelled() => Ok(()),
        };
        match result {
            Err(BinanceError::ChannelClosed) => Ok(()),
            r => r,
        }
    }

    async fn run_inner(&mut self, tx: &mpsc::Sender<BinanceItem>) -> Result<(), BinanceError> {
        if !self.config.live {
            let to = self.config.backfill_to.unwrap_or_else(now_ms);
            for i in 0..self.series.len() {
                self.fill(i, to, tx).await?;
            }
            return Ok(());
        }
        let url = self.config.stream_url();
        let mut failures = 0u32;
        loop {
            match self.connect(&url).await {
                Ok(ws) => {
                    let connected = Instant::now();
                    let end = self.session(ws, tx).await;
                    // Only a connection that held for a while resets the backoff: a server that
                    // accepts and drops at once must not be hammered (Binance allows 300
                    // connections per 5 minutes).
                    if connected.elapsed() >= self.config.reconnect_backoff_max {
                        failures = 0;
                    }
                    match end {
                        Ok(SessionEnd::Rotate) => {
                            info!(after = ?self.config.rotate_after, "binance stream: rotating the connection");
                            self.stats.ws_rotations.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(SessionEnd::Lost(reason)) => warn!(%reason, "binance stream lost"),
                        Err(e) if e.is_fatal() || matches!(e, BinanceError::ChannelClosed) => return Err(e),
                        Err(e) => warn!(error = %e, "binance stream session failed"),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "binance stream: cannot connect");
                    // Meanwhile the bars keep coming by REST.
                    match self.fill_all(tx).await {
                        Err(e) if e.is_fatal() || matches!(e, BinanceError::ChannelClosed) => return Err(e),
                        Err(e) => warn!(error = %e, "binance REST fill failed"),
                        Ok(()) => {}
                    }
                }
            }
            let base = backoff(self.config.reconnect_backoff, self.config.reconnect_backoff_max, failures);
            // 50–100 % of the backoff, so that many clients do not reconnect in step.
            let wait = base.mul_f64(0.5 + fastrand::f64() / 2.0);
            failures = failures.saturating_add(1);
            debug!(?wait, failures, "binance stream: reconnecting after a pause");
            tokio::time::sleep(wait).await;
        }
    }

    async fn connect(&self, url: &str) -> Result<Ws, BinanceError> {
        let ws_error = |reason: String| BinanceError::WebSocket { url: url.to_string(), reason };
        let connector = Connector::Rustls(tls::client_config().map_err(BinanceError::Tls)?);
        let connect = tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector));
        match tokio::time::timeout(self.config.request_timeout, connect).await {
            Err(_) => Err(ws_error(format!("not connected within {:?}", self.config.request_timeout))),
            Ok(Err(e)) => Err(ws_error(super::error_chain(&e))),
            Ok(Ok((ws, _))) => {
                self.stats.ws_connections.fetch_add(1, Ordering::Relaxed);
                info!(%url, "binance stream connected");
                Ok(ws)
            }
        }
    }

    async fn session(&mut self, ws: Ws, tx: &mpsc::Sender<BinanceItem>) -> Result<SessionEnd, BinanceError> {
        let connected = Instant::now();
        let stop = CancellationToken::new();
        // Whatever ends the session also ends the reader (which then closes the socket).
        let _stop_reader = stop.clone().drop_guard();
        let (live_tx, mut live_rx) = mpsc::unbounded_channel();
        tokio::spawn(read_frames(ws, self.streams.clone(), live_tx, stop, self.config.ws_idle_timeout));

        // The gap first: no live bar is handed over before it is filled.
        self.fill_all(tx).await?;
        let mut sweep = Some(connected + self.config.close_margin);
        let rotate = connected + self.config.rotate_after;
        loop {
            tokio::select! {
                msg = live_rx.recv() => match msg {
                    Some(Live::Closed { series, kline }) => self.on_live(series, kline, tx).await?,
                    Some(Live::Lost(reason)) => return Ok(SessionEnd::Lost(reason)),
                    None => return Ok(SessionEnd::Lost("the frame reader stopped".into())),
                },
                _ = tokio::time::sleep_until(rotate) => return Ok(SessionEnd::Rotate),
                _ = sleep_until_opt(sweep) => {
                    sweep = None;
                    self.fill_all(tx).await?;
                }
            }
        }
    }

    async fn on_live(
        &mut self,
        i: usize,
        kline: Result<Kline, String>,
        tx: &mpsc::Sender<BinanceItem>,
    ) -> Result<(), BinanceError> {
        let Some(state) = self.series.get(i) else { return Ok(()) };
        let (series, last) = (state.series.clone(), state.last);
        match kline {
            Err(reason) => {
                send(tx, BinanceItem::Malformed { symbol: series.symbol, interval: series.interval, reason }).await
            }
            Ok(k) => {
                let t = k.raw.open_time;
                if let Some(last) = last
                    && t > last + series.interval.millis()
                {
                    // A hole before this bar (a missed or unreadable event): REST fills it first.
                    debug!(symbol = %series.symbol, interval = %series.interval, last, t, "live bar after a hole");
                    self.fill(i, t - 1, tx).await?;
                }
                if self.hand_over(i, PageItem::Bar(k), tx).await? {
                    self.stats.live_bars.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        }
    }

    async fn fill_all(&mut self, tx: &mpsc::Sender<BinanceItem>) -> Result<(), BinanceError> {
        let now = now_ms();
        for i in 0..self.series.len() {
            self.fill(i, now, tx).await?;
        }
        Ok(())
    }

    /// REST: the closed bars of series `i` after its last one, open times up to `to`.
    async fn fill(&mut self, i: usize, to: i64, tx: &mpsc::Sender<BinanceItem>) -> Result<(), BinanceError> {
        let Some(last) = self.series[i].last else { return Ok(()) };
        let series = self.series[i].series.clone();
        let from = last + series.interval.millis();
        if from > to {
            return Ok(());
        }
        let rest = self.rest.clone();
        let mut pages = rest.pages(&series.symbol, series.interval, from, to);
        while let Some(page) = pages.next_page().await? {
            for item in page {
                if self.hand_over(i, item, tx).await? {
                    self.stats.rest_bars.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    /// Hands an item of series `i` over unless it is not after the last one (already handed
    /// over: a REST/WebSocket overlap). True when a bar was handed over.
    async fn hand_over(
        &mut self,
        i: usize,
        item: PageItem,
        tx: &mpsc::Sender<BinanceItem>,
    ) -> Result<bool, BinanceError> {
        let state = &mut self.series[i];
        let open_time = match &item {
            PageItem::Bar(k) => Some(k.raw.open_time),
            PageItem::Malformed { open_time, .. } => *open_time,
        };
        if let (Some(t), Some(last)) = (open_time, state.last)
            && t <= last
        {
            self.stats.repeats_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        if let Some(t) = open_time {
            state.last = Some(t);
        }
        let (symbol, interval) = (state.series.symbol.clone(), state.series.interval);
        match item {
            PageItem::Bar(k) => {
                send(tx, BinanceItem::Bar { symbol, interval, raw: k.raw }).await?;
                Ok(true)
            }
            PageItem::Malformed { reason, .. } => {
                send(tx, BinanceItem::Malformed { symbol, interval, reason }).await?;
                Ok(false)
            }
        }
    }
}

async fn send(tx: &mpsc::Sender<BinanceItem>, item: BinanceItem) -> Result<(), BinanceError> {
    tx.send(item).await.map_err(|_| BinanceError::ChannelClosed)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads one connection until it fails, closes, idles out or `stop`; passes on closed klines
/// (checked against their stream's series). Reading is what answers the server's pings:
/// tungstenite queues the pong and sends it on the next read.
async fn read_frames(
    mut ws: Ws,
    streams: Arc<HashMap<String, usize>>,
    out: mpsc::UnboundedSender<Live>,
    stop: CancellationToken,
    idle: Duration,
) {
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => {
                let _closed = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return;
            }
            frame = tokio::time::timeout(idle, ws.next()) => frame,
        };
        let text = match frame {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(frame)))) => {
                let reason = frame.map_or_else(|| "no reason".to_string(), |f| format!("{} {}", f.code, f.reason));
                let _ = out.send(Live::Lost(format!("closed by the server: {reason}")));
                return;
            }
            Ok(Some(Ok(_))) => continue, // ping, pong, binary
            Ok(Some(Err(e))) => {
                let _ = out.send(Live::Lost(super::error_chain(&e)));
                return;
            }
            Ok(None) => {
                let _ = out.send(Live::Lost("the connection ended".into()));
                return;
            }
            Err(_) => {
                let _ = out.send(Live::Lost(format!("no frame for {idle:?}")));
                return;
            }
        };
        let (stream, symbol, interval, kline) = match parse_ws_message(text.as_str()) {
            Ok(WsMessage::Closed { stream, symbol, interval, kline }) => (stream, symbol, interval, kline),
            Ok(WsMessage::Open { .. }) => continue,
            Ok(WsMessage::Other(text)) => {
                debug!(%text, "binance stream: not a kline event");
                continue;
            }
            Err(e) => {
                warn!(error = %e, "binance stream: unreadable frame");
                continue;
            }
        };
        let Some(&series) = streams.get(&stream) else {
            warn!(%stream, "binance stream: event of a stream not subscribed to");
            continue;
        };
        let kline = kline.map_err(|e| e.problem).and_then(|k| {
            let expected = stream.split_once("@kline_").map(|(s, i)| (s.to_ascii_uppercase(), i.to_string()));
            match expected {
                Some((s, i)) if s == symbol && i == interval => Ok(k),
                _ => Err(format!("event for symbol {symbol:?} interval {interval:?} arrived on stream {stream}")),
            }
        });
        let kline = kline.map_err(|problem| format!("binance stream {stream}: {problem}"));
        if out.send(Live::Closed { series, kline }).is_err() {
            return;
        }
    }
}
