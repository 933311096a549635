//! The CSV replay runner: drives [`IngestStage`] over candle files and publishes what it emits
//! (candles to `md.candles`, refusals to `audit.events`) in pipelined batches.

use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tradeflow_bus::{BusError, Outgoing, Producer};

use crate::stage::{IngestEvent, IngestStage, RawBar};
use crate::timeline::{FeedError, Timeline};

pub const CANDLES: &str = "md.candles";
pub const AUDIT: &str = "audit.events";

pub use crate::timeline::{Feed, FeedInput};

/// How fast bars are published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as Redis takes them (batched).
    Fast,
    /// Bar times compressed by this factor (1.0 = real time).
    Speedup(f64),
    /// A fixed number of bars per second.
    Rate(f64),
}

impl std::str::FromStr for Pace {
    type Err = String;

    /// `fast`, `x60` (60 × real time, `x1` = real time) or `10/s` (bars per second).
    fn from_str(s: &str) -> Result<Self, String> {
        let positive = |v: &str| match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(format!("{v:?} must be a positive number")),
        };
        if s == "fast" {
            Ok(Pace::Fast)
        } else if let Some(x) = s.strip_prefix('x') {
            positive(x).map(Pace::Speedup)
        } else if let Some(r) = s.strip_suffix("/s") {
            positive(r).map(Pace::Rate)
        } else {
            Err(format!("{s:?}: expected `fast`, `x<speed-up>` (e.g. x60) or `<bars>/s` (e.g. 100/s)"))
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub feeds: Vec<Feed>,
    pub pace: Pace,
    /// Replay the files this many times; each pass is shifted in time past the previous one so
    /// its bars are new candles (load tests). 1 = once.
    pub passes: u32,
    /// Source name in candle ids (a dataset's feed carries its own).
    pub source: String,
}

/// Counts of one replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub candles: u64,
    pub aggregated: u64,
    pub refused: u64,
    pub duplicates: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("pace: {0}")]
    Pace(String),
    #[error(transparent)]
    Csv(#[from] FeedError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Ingestion metrics, `tradeflow_ingest_*`.
#[derive(Clone)]
pub struct IngestMetrics {
    pub candles: IntCounterVec,
    pub refused: IntCounterVec,
}

impl IngestMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let candles = IntCounterVec::new(
            Opts::new("tradeflow_ingest_candles_total", "Candles published, by source and interval."),
            &["source", "interval"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new("tradeflow_ingest_refused_total", "Bars refused, by source and reason."),
            &["source", "reason"],
        )?;
        registry.register(Box::new(candles.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        Ok(Self { candles, refused })
    }
}

pub(crate) const BATCH: usize = 1000;

/// Replays every feed, interleaved by bar time so that several symbols advance together, until
/// done or `shutdown`.
pub async fn replay(
    producer: &Producer,
    stage: &mut IngestStage,
    config: &ReplayConfig,
    metrics: &IngestMetrics,
    shutdown: &CancellationToken,
) -> Result<ReplayReport, ReplayError> {
    if let Pace::Speedup(x) | Pace::Rate(x) = config.pace
        && !(x.is_finite() && x > 0.0)
    {
        return Err(ReplayError::Pace(format!("{x} must be a positive number")));
    }
    let timeline = Timeline::load(&config.feeds)?;
    for (f, feed) in config.feeds.iter().enumerate() {
        info!(feed = %feed.name(), symbol = %feed.symbol, rows = timeline.rows(f).len(), "replaying");
    }
    let first = timeline.first_time().unwrap_or(0);
    let span = timeline.span_ms();

    let mut report = ReplayReport::default();
    let started = Instant::now();
    let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    for pass in 0..config.passes.max(1) {
        let shift = span * i64::from(pass);
        for step in timeline.iter() {
            let (t, f, row) = (step.time, step.feed, step.row);
            if shutdown.is_cancelled() {
                flush(producer, &mut batch, shutdown).await?;
                return Ok(report);
            }
            let feed = &config.feeds[f];
            let source = feed.source().unwrap_or(&config.source);
            let events = match row {
                Ok(raw) => {
                    let due = match config.pace {
                        Pace::Fast => None,
                        Pace::Speedup(x) => Some(Duration::from_secs_f64((t + shift - first) as f64 / 1000.0 / x)),
                        Pace::Rate(r) => Some(Duration::from_secs_f64(n as f64 / r)),
                    };
                    if let Some(wait) = due.map(|d| d.saturating_sub(started.elapsed())).filter(|w| !w.is_zero()) {
                        // Nothing waits in the batch while we sleep.
                        flush(producer, &mut batch, shutdown).await?;
                        tokio::time::sleep(wait).await;
                    }
                    n += 1;
                    let raw = RawBar { open_time: raw.open_time + shift, ..*raw };
                    let events = stage.on_bar(source, &feed.symbol, feed.interval, raw);
                    if events.is_empty() {
                        report.duplicates += 1;
                    }
                    events
                }
                Err(e) => {
                    warn!(error = %e, "unreadable row");
                    vec![stage.malformed(source, &feed.symbol, feed.interval, e.clone())]
                }
            };
            for event in events {
                batch.push(route(producer, &event, source, metrics, &mut report)?);
            }
            if batch.len() >= BATCH {
                flush(producer, &mut batch, shutdown).await?;
            }
        }
    }
    flush(producer, &mut batch, shutdown).await?;
    Ok(report)
}

pub(crate) fn route(
    producer: &Producer,
    event: &IngestEvent,
    source: &str,
    metrics: &IngestMetrics,
    report: &mut ReplayReport,
) -> Result<Outgoing, BusError> {
    match event {
        IngestEvent::Candle(c) => {
            metrics.candles.with_label_values(&[source, c.interval.as_str()]).inc();
            report.candles += 1;
            if c.aggregated {
                report.aggregated += 1;
            }
            producer.prepare(CANDLES, &c.id(), &c.symbol, None, c)
        }
        IngestEvent::Refused(r) => {
            metrics.refused.with_label_values(&[source, r.kind.as_str()]).inc();
            report.refused += 1;
            warn!(symbol = %r.symbol, open_time = ?r.open_time, reason = %r.reason, "bar refused");
            producer.prepare(AUDIT, &r.id(), &r.symbol, None, r)
        }
    }
}

/// Sends the batch, holding it through a Redis restart (retried until sent or `shutdown`):
/// the ingest worker rides out Redis as the consumers do instead of exiting.
pub(crate) async fn flush(
    producer: &Producer,
    batch: &mut Vec<Outgoing>,
    shutdown: &CancellationToken,
) -> Result<(), BusError> {
    if !batch.is_empty() {
        producer.send_through_outages(batch, shutdown).await?;
        batch.clear();
    }
    Ok(())
}
