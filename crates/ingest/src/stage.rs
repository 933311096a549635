//! The ingestion state machine: one raw bar in, candles and refusals out.

use std::collections::HashMap;

pub use tradeflow_core::market::RawBar;
use tradeflow_core::market::{Candle, CandleRefused, Interval, RefusalKind};

use crate::aggregate::{AggregateError, Aggregator};
use crate::gate::{Admission, Gate};

/// What ingestion emits.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestEvent {
    /// For `md.candles`.
    Candle(Candle),
    /// For `audit.events`: a bar that is not a candle, with the reason.
    Refused(CandleRefused),
}

type Series = (String, String, Interval);

/// Ingestion of any number of series: per (source, symbol, interval) a [`Gate`], and the
/// configured aggregations from each interval.
#[derive(Debug, Clone, Default)]
pub struct IngestStage {
    /// Target intervals per source interval.
    aggregate: HashMap<Interval, Vec<Interval>>,
    gates: HashMap<Series, Gate>,
    aggregators: HashMap<Series, Vec<Aggregator>>,
}

impl IngestStage {
    /// `aggregate`: pairs (from, to), e.g. (1h, 4h). Every pair is checked; all bad pairs are
    /// reported.
    pub fn new(aggregate: &[(Interval, Interval)]) -> Result<Self, Vec<AggregateError>> {
        let mut map: HashMap<Interval, Vec<Interval>> = HashMap::new();
        let mut errors = Vec::new();
        for (from, to) in aggregate {
            match Aggregator::new(*from, *to) {
                Ok(_) => map.entry(*from).or_default().push(*to),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(Self { aggregate: map, ..Default::default() }) } else { Err(errors) }
    }

    /// The intervals built from bars of `from`.
    pub fn targets(&self, from: Interval) -> &[Interval] {
        self.aggregate.get(&from).map_or(&[], Vec::as_slice)
    }

    /// Forgets every series' last bar and half-built buckets (the configuration stays): for a
    /// replay that goes back to send bars again.
    pub fn reset(&mut self) {
        self.gates.clear();
        self.aggregators.clear();
    }

    /// A bar that could not even be read (e.g. a malformed CSV row) becomes a refusal too.
    pub fn malformed(&self, source: &str, symbol: &str, interval: Interval, reason: String) -> IngestEvent {
        IngestEvent::Refused(CandleRefused {
            source: source.into(),
            symbol: symbol.into(),
            interval,
            open_time: None,
            kind: RefusalKind::Malformed,
            reason,
        })
    }

    /// Handles one bar of a series.
    pub fn on_bar(&mut self, source: &str, symbol: &str, interval: Interval, raw: RawBar) -> Vec<IngestEvent> {
        let refuse = |kind, reason| {
            vec![IngestEvent::Refused(CandleRefused {
                source: source.into(),
                symbol: symbol.into(),
                interval,
                open_time: Some(raw.open_time),
                kind,
                reason,
            })]
        };
        let bar = match raw.validate() {
            Ok(b) => b,
            Err(e) => return refuse(RefusalKind::InvalidBar, e.to_string()),
        };
        let series: Series = (source.into(), symbol.into(), interval);
        match self.gates.entry(series.clone()).or_default().admit(&bar) {
            Admission::Accept => {}
            Admission::Duplicate => return Vec::new(),
            Admission::Refuse(kind, reason) => return refuse(kind, reason),
        }
        let candle = |interval, bar, aggregated| {
            IngestEvent::Candle(Candle { source: source.into(), symbol: symbol.into(), interval, bar, aggregated })
        };
        let mut out = vec![candle(interval, bar, false)];
        if let Some(targets) = self.aggregate.get(&interval) {
            let aggs = self
                .aggregators
                .entry(series)
                .or_insert_with(|| targets.iter().filter_map(|to| Aggregator::new(interval, *to).ok()).collect());
            for agg in aggs {
                for built in agg.push(&bar) {
                    out.push(candle(agg.to(), built, true));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn raw(t: i64, c: f64) -> RawBar {
        RawBar { open_time: t, open: c, high: c + 1.0, low: c - 1.0, close: c, volume: 1.0 }
    }

    fn candles(events: &[IngestEvent]) -> Vec<(Interval, i64, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::Candle(c) => Some((c.interval, c.bar.open_time(), c.aggregated)),
                IngestEvent::Refused(_) => None,
            })
            .collect()
    }

    #[test]
    fn bad_bars_are_refused_and_the_good_ones_around_them_still_arrive() {
        let mut s = IngestStage::new(&[(Interval::H1, Interval::H4)]).unwrap();
        let mut all = Vec::new();
        all.extend(s.on_bar("csv", "BTC", Interval::H1, raw(0, 10.0)));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, RawBar { high: 5.0, ..raw(H, 10.0) }));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, raw(H, 10.0)));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, raw(H, 10.0)));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, RawBar { volume: f64::NAN, ..raw(2 * H, 10.0) }));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, raw(2 * H, 10.0)));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, raw(0, 10.0)));
        all.extend(s.on_bar("csv", "BTC", Interval::H1, raw(3 * H, 10.0)));
        assert_eq!(
            candles(&all),
            vec![
                (Interval::H1, 0, false),
                (Interval::H1, H, false),
                (Interval::H1, 2 * H, false),
                (Interval::H1, 3 * H, false),
                (Interval::H4, 0, true),
            ]
        );
        let refused: Vec<(RefusalKind, Option<i64>)> = all
            .iter()
            .filter_map(|e| match e {
                IngestEvent::Refused(r) => Some((r.kind, r.open_time)),
                IngestEvent::Candle(_) => None,
            })
            .collect();
        assert_eq!(
            refused,
            vec![
                (RefusalKind::InvalidBar, Some(H)),
                (RefusalKind::InvalidBar, Some(2 * H)),
                (RefusalKind::TimeBackwards, Some(0)),
            ]
        );
    }

    #[test]
    fn series_are_independent() {
        let mut s = IngestStage::new(&[]).unwrap();
        assert_eq!(candles(&s.on_bar("csv", "BTC", Interval::H1, raw(H, 10.0))).len(), 1);
        assert_eq!(candles(&s.on_bar("csv", "ETH", Interval::H1, raw(0, 10.0))).len(), 1);
        assert_eq!(candles(&s.on_bar("binance", "BTC", Interval::H1, raw(0, 10.0))).len(), 1);
    }

    #[test]
    fn every_bad_aggregation_is_reported() {
        let errs = IngestStage::new(&[
            (Interval::H4, Interval::H1),
            (Interval::H1, Interval::H4),
            (Interval::H4, Interval::H6),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
