//! The CSV replay runner: drives [`IngestStage`] over candle files and publishes what it emits
//! (candles to `md.candles`, refusals to `audit.events`) in pipelined batches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tradeflow_bus::{BusError, Outgoing, Producer};

use tradeflow_core::market::Interval;

use crate::resume::{self, Resume, SeriesKey};
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
    /// Start each series after its last candle on `md.candles`, and after an outage go back to
    /// what the stream lost ([`crate::resume`]). `false`: every bar of the files from the
    /// first, as a load test wants (the ids make repeats harmless to the consumers).
    pub resume: bool,
}

/// Counts of one replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub candles: u64,
    pub aggregated: u64,
    pub refused: u64,
    pub duplicates: u64,
    /// Rows not sent at the start because `md.candles` already held them (a resumed replay).
    pub already_sent: u64,
    /// Times the replay went back after an outage because the stream had lost bars it sent.
    pub rewinds: u64,
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
/// done or `shutdown`. With `config.resume`, each series starts after its last candle on
/// `md.candles`, and a send held through an outage is followed by a look at what the stream
/// still holds: when it lost bars already sent (Redis's machine went down with them), the
/// replay goes back to them.
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
    let resumer = config.resume.then(|| Resumer::new(config, stage));
    let from = match &resumer {
        Some(r) => r.points(&r.look(producer, shutdown).await?),
        None => vec![None; config.feeds.len()],
    };
    for (feed, from) in config.feeds.iter().zip(&from) {
        if let Some(at) = from {
            info!(feed = %feed.name(), symbol = %feed.symbol, send_from = at.send_from, rebuild_from = ?at.rebuild_from, "resuming after the last candle on md.candles");
        }
    }

    let mut report = ReplayReport::default();
    let started = Instant::now();
    let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    let mut progress = Progress { from, sent: vec![None; config.feeds.len()], acked: vec![None; config.feeds.len()] };
    'run: loop {
        for pass in 0..config.passes.max(1) {
            let shift = span * i64::from(pass);
            for step in timeline.iter() {
                let (t, f, row) = (step.time, step.feed, step.row);
                if shutdown.is_cancelled() {
                    flush(producer, &mut batch, shutdown).await?;
                    return Ok(report);
                }
                // Bars the stream holds: skipped, or, where a built interval's bucket is not out
                // yet, put through the stage again for that bucket only.
                let (skip, rebuild) = match progress.from[f] {
                    None => (false, false),
                    Some(at) => (at.rebuild_from.is_some_and(|r| t + shift < r), t + shift < at.send_from),
                };
                if skip || rebuild {
                    if report.rewinds == 0 && row.is_ok() {
                        report.already_sent += 1;
                    }
                    if skip || row.is_err() {
                        continue;
                    }
                }
                let feed = &config.feeds[f];
                let source = feed.source().unwrap_or(&config.source);
                let events = match row {
                    Ok(raw) if rebuild => {
                        let raw = RawBar { open_time: raw.open_time + shift, ..*raw };
                        let mut events = stage.on_bar(source, &feed.symbol, feed.interval, raw);
                        events.retain(|e| matches!(e, IngestEvent::Candle(c) if c.aggregated));
                        events
                    }
                    Ok(raw) => {
                        let due = match config.pace {
                            Pace::Fast => None,
                            Pace::Speedup(x) => Some(Duration::from_secs_f64((t + shift - first) as f64 / 1000.0 / x)),
                            Pace::Rate(r) => Some(Duration::from_secs_f64(n as f64 / r)),
                        };
                        if let Some(wait) = due.map(|d| d.saturating_sub(started.elapsed())).filter(|w| !w.is_zero()) {
                            // Nothing waits in the batch while we sleep.
                            if progress
                                .flush(producer, &mut batch, shutdown, resumer.as_ref(), stage, &mut report)
                                .await?
                            {
                                continue 'run;
                            }
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
                    if let IngestEvent::Candle(c) = &event
                        && !c.aggregated
                    {
                        progress.sent[f] = Some(c.bar.open_time());
                    }
                    batch.push(route(producer, &event, source, metrics, &mut report)?);
                }
                if batch.len() >= BATCH
                    && progress.flush(producer, &mut batch, shutdown, resumer.as_ref(), stage, &mut report).await?
                {
                    continue 'run;
                }
            }
        }
        if progress.flush(producer, &mut batch, shutdown, resumer.as_ref(), stage, &mut report).await? {
            continue 'run;
        }
        return Ok(report);
    }
}

/// Where each feed of a replay stands.
struct Progress {
    /// Where it resumes (`None`: every bar).
    from: Vec<Option<Resume>>,
    /// The open time of the newest bar handed to the producer as a candle...
    sent: Vec<Option<i64>>,
    /// ...and of the newest one Redis acknowledged.
    acked: Vec<Option<i64>>,
}

impl Progress {
    /// Sends the batch ([`flush_checked`]). `true` when the replay must go back because the
    /// stream lost bars: `from` then holds where each feed resumes, and the stage has forgotten
    /// its series (the bars go through it again).
    async fn flush(
        &mut self,
        producer: &Producer,
        batch: &mut Vec<Outgoing>,
        shutdown: &CancellationToken,
        resumer: Option<&Resumer>,
        stage: &mut IngestStage,
        report: &mut ReplayReport,
    ) -> Result<bool, ReplayError> {
        let Some((back, last)) = flush_checked(producer, batch, shutdown, resumer, &self.acked).await? else {
            self.acked.clone_from(&self.sent);
            return Ok(false);
        };
        self.from = back;
        if let Some(r) = resumer {
            for (sent, (key, _)) in self.sent.iter_mut().zip(&r.feeds) {
                *sent = last.get(key).copied();
            }
        }
        self.acked.clone_from(&self.sent);
        stage.reset();
        report.rewinds += 1;
        Ok(true)
    }
}

/// The series a replay sends, and how to ask the stream where each stands.
struct Resumer {
    /// Per feed: its raw series and the intervals built from it.
    feeds: Vec<(SeriesKey, Vec<Interval>)>,
    /// Every series to look for: the raw ones and the aggregated ones.
    wanted: Vec<SeriesKey>,
}

impl Resumer {
    fn new(config: &ReplayConfig, stage: &IngestStage) -> Self {
        let feeds: Vec<(SeriesKey, Vec<Interval>)> = config
            .feeds
            .iter()
            .map(|feed| {
                let source = feed.source().unwrap_or(&config.source).to_string();
                ((source, feed.symbol.clone(), feed.interval), stage.targets(feed.interval).to_vec())
            })
            .collect();
        let mut wanted: Vec<SeriesKey> = Vec::new();
        for ((source, symbol, interval), targets) in &feeds {
            for i in std::iter::once(interval).chain(targets) {
                let key = (source.clone(), symbol.clone(), *i);
                if !wanted.contains(&key) {
                    wanted.push(key);
                }
            }
        }
        Self { feeds, wanted }
    }

    /// The newest candle of every series on the stream, asked again through an outage (the
    /// look follows a held send, so Redis may still be loading).
    async fn look(
        &self,
        producer: &Producer,
        shutdown: &CancellationToken,
    ) -> Result<HashMap<SeriesKey, i64>, BusError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match resume::last_candles(producer.bus(), &self.wanted).await {
                Err(e) if e.is_transient() && !shutdown.is_cancelled() => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot read md.candles yet");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return Err(e),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Per feed, where it resumes.
    fn points(&self, last: &HashMap<SeriesKey, i64>) -> Vec<Option<Resume>> {
        self.feeds
            .iter()
            .map(|((source, symbol, interval), targets)| resume::resume_point(last, source, symbol, *interval, targets))
            .collect()
    }
}

/// Sends the batch ([`flush`]). With a resumer, a send that meets Redis away or full first
/// asks the stream what it still holds, once Redis answers again and before anything more is
/// appended (so that what it holds is a prefix of what it had): when it lacks bars acknowledged
/// before (Redis came back from its disk without them), the batch is dropped and each feed's
/// resume point returned, so that the replay goes back and makes the batch again. Otherwise the
/// batch is held through the outage as [`flush`] holds it.
async fn flush_checked(
    producer: &Producer,
    batch: &mut Vec<Outgoing>,
    shutdown: &CancellationToken,
    resumer: Option<&Resumer>,
    acked: &[Option<i64>],
) -> Result<Option<(Vec<Option<Resume>>, HashMap<SeriesKey, i64>)>, ReplayError> {
    let Some(resumer) = resumer.filter(|_| !batch.is_empty()) else {
        flush(producer, batch, shutdown).await?;
        return Ok(None);
    };
    // Dropping the send ends a wait for room on a full partition.
    let first = tokio::select! {
        sent = producer.send(batch) => Some(sent),
        _ = shutdown.cancelled() => None,
    };
    match first {
        Some(Ok(_)) => {
            batch.clear();
            Ok(None)
        }
        Some(Err(e)) if e.is_transient() => {
            producer.count_held();
            warn!(error = %e, "redis unavailable or full; md.candles is checked when it answers, before more is sent");
            let last = resumer.look(producer, shutdown).await?;
            let lost: Vec<&SeriesKey> = resumer
                .feeds
                .iter()
                .zip(acked)
                .filter(|((key, _), acked)| acked.is_some_and(|a| last.get(key).is_none_or(|l| *l < a)))
                .map(|((key, _), _)| key)
                .collect();
            if lost.is_empty() {
                flush(producer, batch, shutdown).await?;
                return Ok(None);
            }
            warn!(series = ?lost, "md.candles lost bars it had acknowledged (Redis restarted without them); sending them again");
            batch.clear();
            Ok(Some((resumer.points(&last), last)))
        }
        Some(Err(e)) => Err(e.into()),
        // Stopping: what is left goes as the unchecked flush sends it.
        None => {
            flush(producer, batch, shutdown).await?;
            Ok(None)
        }
    }
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
