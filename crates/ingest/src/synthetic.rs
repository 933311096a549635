//! Synthetic bars for load tests: a seeded geometric random walk per symbol, so a run is
//! reproducible from its seed.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tradeflow_bus::{BusError, Producer};
use tradeflow_core::market::Interval;

use crate::replay::{BATCH, IngestMetrics, Pace, ReplayReport, flush, route};
use crate::stage::{IngestStage, RawBar};

/// Generates consecutive bars of one symbol.
#[derive(Debug, Clone)]
pub struct RandomWalk {
    rng: fastrand::Rng,
    price: f64,
    next_open_time: i64,
    interval_ms: i64,
    /// Standard deviation of one bar's log return.
    volatility: f64,
}

impl RandomWalk {
    pub fn new(seed: u64, start_price: f64, start_time: i64, interval_ms: i64, volatility: f64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            price: start_price,
            next_open_time: start_time,
            interval_ms,
            volatility,
        }
    }

    /// Approximately normal noise (sum of 12 uniforms minus 6): cheap and good enough here.
    fn noise(&mut self) -> f64 {
        (0..12).map(|_| self.rng.f64()).sum::<f64>() - 6.0
    }

    pub fn next_bar(&mut self) -> RawBar {
        let open = self.price;
        let close = open * (self.volatility * self.noise()).exp();
        let wick_up = open.max(close) * (self.volatility * 0.5 * self.rng.f64()).exp();
        let wick_down = open.min(close) * (-self.volatility * 0.5 * self.rng.f64()).exp();
        let volume = 1.0 + 100.0 * self.rng.f64();
        let bar = RawBar { open_time: self.next_open_time, open, high: wick_up, low: wick_down, close, volume };
        self.price = close;
        self.next_open_time += self.interval_ms;
        bar
    }
}

/// A synthetic feed: `symbols` random walks (`SYN0`, `SYN1`, ...) of `bars` bars each,
/// interleaved bar by bar, starting at `start_time`.
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    pub symbols: u32,
    pub bars: u64,
    pub interval: Interval,
    pub seed: u64,
    pub start_time: i64,
    /// `Fast`, or `Rate(bars/s)` over all symbols; `Speedup` compresses bar time as for replays.
    pub pace: Pace,
}

/// Publishes a synthetic feed through the ingestion stage, like a replay.
pub async fn run_synthetic(
    producer: &Producer,
    stage: &mut IngestStage,
    config: &SyntheticConfig,
    metrics: &IngestMetrics,
    shutdown: &CancellationToken,
) -> Result<ReplayReport, BusError> {
    let interval_ms = config.interval.millis();
    let mut walks: Vec<(String, RandomWalk)> = (0..config.symbols)
        .map(|i| {
            let walk =
                RandomWalk::new(config.seed.wrapping_add(u64::from(i)), 100.0, config.start_time, interval_ms, 0.01);
            (format!("SYN{i}"), walk)
        })
        .collect();
    let mut report = ReplayReport::default();
    let mut batch = Vec::with_capacity(BATCH);
    let started = Instant::now();
    let mut n = 0u64;
    for step in 0..config.bars {
        for (symbol, walk) in &mut walks {
            if shutdown.is_cancelled() {
                flush(producer, &mut batch, shutdown).await?;
                return Ok(report);
            }
            let due = match config.pace {
                Pace::Fast => None,
                Pace::Rate(r) => Some(Duration::from_secs_f64(n as f64 / r)),
                Pace::Speedup(x) => Some(Duration::from_secs_f64((step as i64 * interval_ms) as f64 / 1000.0 / x)),
            };
            if let Some(wait) = due.map(|d| d.saturating_sub(started.elapsed())).filter(|w| !w.is_zero()) {
                flush(producer, &mut batch, shutdown).await?;
                tokio::time::sleep(wait).await;
            }
            n += 1;
            for event in stage.on_bar("synthetic", symbol, config.interval, walk.next_bar()) {
                batch.push(route(producer, &event, "synthetic", metrics, &mut report)?);
            }
            if batch.len() >= BATCH {
                flush(producer, &mut batch, shutdown).await?;
            }
        }
    }
    flush(producer, &mut batch, shutdown).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::market::Bar;

    #[test]
    fn walks_are_valid_reproducible_and_consecutive() {
        let mut a = RandomWalk::new(7, 100.0, 0, 60_000, 0.01);
        let mut b = RandomWalk::new(7, 100.0, 0, 60_000, 0.01);
        for i in 0..10_000 {
            let (x, y) = (a.next_bar(), b.next_bar());
            assert_eq!(x, y);
            assert_eq!(x.open_time, i * 60_000);
            Bar::new(x.open_time, x.open, x.high, x.low, x.close, x.volume).expect("synthetic bars are valid");
        }
    }
}
