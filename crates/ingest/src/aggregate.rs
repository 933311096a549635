//! Higher intervals built from lower ones (e.g. 4h from 1h) when a source only gives the lower.
//!
//! Buckets are aligned on the epoch (UTC midnight boundaries for every interval up to 3d), and
//! weeks on Monday 00:00 UTC as exchanges do. A bucket is emitted when its last lower bar
//! arrives, or, when the lower series has a gap, as soon as a bar of a later bucket shows that
//! it will get no more bars. Either way the candle is marked `aggregated`.

use tradeflow_core::market::{Bar, Interval};

/// The epoch (1970-01-01) was a Thursday; weekly bars open on Mondays.
const WEEK_OFFSET_MS: i64 = 4 * 86_400_000;

/// Open time of the `to` bucket holding a bar that opens at `t`.
pub fn bucket_start(t: i64, to: Interval) -> i64 {
    let len = to.millis();
    let offset = if to == Interval::W1 { WEEK_OFFSET_MS } else { 0 };
    (t - offset).div_euclid(len) * len + offset
}

/// Why an aggregation cannot be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot aggregate {from} into {to}: {reason}")]
pub struct AggregateError {
    pub from: Interval,
    pub to: Interval,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
struct Partial {
    start: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// Builds `to` bars from consecutive `from` bars of one series.
#[derive(Debug, Clone)]
pub struct Aggregator {
    from: Interval,
    to: Interval,
    current: Option<Partial>,
}

impl Aggregator {
    pub fn new(from: Interval, to: Interval) -> Result<Self, AggregateError> {
        let err = |reason| AggregateError { from, to, reason };
        if to.millis() <= from.millis() {
            return Err(err("the target interval must be longer"));
        }
        if to.millis() % from.millis() != 0 {
            return Err(err("the target interval must be a whole multiple of the source interval"));
        }
        if to == Interval::W1 && from.millis() > Interval::D1.millis() {
            return Err(err("weeks open on Mondays: build them from 1d or shorter"));
        }
        Ok(Self { from, to, current: None })
    }

    pub fn to(&self) -> Interval {
        self.to
    }

    /// Feeds one accepted `from` bar; returns the `to` bars it completes (0, 1, or 2 when it
    /// both closes a gapped bucket and completes its own).
    pub fn push(&mut self, bar: &Bar) -> Vec<Bar> {
        let mut out = Vec::new();
        let start = bucket_start(bar.open_time(), self.to);
        if let Some(cur) = &self.current
            && cur.start != start
            && let Some(done) = self.current.take().and_then(finish)
        {
            out.push(done);
        }
        match &mut self.current {
            Some(cur) => {
                cur.high = cur.high.max(bar.high());
                cur.low = cur.low.min(bar.low());
                cur.close = bar.close();
                cur.volume += bar.volume();
            }
            None => {
                self.current = Some(Partial {
                    start,
                    open: bar.open(),
                    high: bar.high(),
                    low: bar.low(),
                    close: bar.close(),
                    volume: bar.volume(),
                })
            }
        }
        if bar.open_time() + self.from.millis() == start + self.to.millis()
            && let Some(done) = self.current.take().and_then(finish)
        {
            out.push(done);
        }
        out
    }
}

/// The partial's values satisfy the bar invariants by construction (max/min of valid bars);
/// `None` would mean a bug, and the bar is dropped rather than emitted wrong.
fn finish(p: Partial) -> Option<Bar> {
    Bar::new(p.start, p.open, p.high, p.low, p.close, p.volume).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn bar(t: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        Bar::new(t, o, h, l, c, v).unwrap()
    }

    #[test]
    fn four_hours_from_hours() {
        let mut a = Aggregator::new(Interval::H1, Interval::H4).unwrap();
        assert!(a.push(&bar(0, 10.0, 12.0, 9.0, 11.0, 1.0)).is_empty());
        assert!(a.push(&bar(H, 11.0, 15.0, 10.0, 14.0, 2.0)).is_empty());
        assert!(a.push(&bar(2 * H, 14.0, 14.0, 8.0, 9.0, 3.0)).is_empty());
        let out = a.push(&bar(3 * H, 9.0, 10.0, 9.0, 10.0, 4.0));
        assert_eq!(out, vec![bar(0, 10.0, 15.0, 8.0, 10.0, 10.0)]);
    }

    #[test]
    fn a_gap_closes_the_bucket_when_the_next_one_starts() {
        let mut a = Aggregator::new(Interval::H1, Interval::H4).unwrap();
        a.push(&bar(0, 10.0, 10.0, 10.0, 10.0, 1.0));
        a.push(&bar(H, 11.0, 11.0, 11.0, 11.0, 1.0));
        // 2h and 3h are missing; 4h opens the next bucket.
        let out = a.push(&bar(4 * H, 12.0, 12.0, 12.0, 12.0, 1.0));
        assert_eq!(out, vec![bar(0, 10.0, 11.0, 10.0, 11.0, 2.0)]);
    }

    #[test]
    fn weeks_open_on_monday_and_bad_pairs_are_refused() {
        // 1970-01-05 was a Monday.
        assert_eq!(bucket_start(5 * 86_400_000, Interval::W1), 4 * 86_400_000);
        assert_eq!(bucket_start(10 * 86_400_000, Interval::W1), 4 * 86_400_000);
        assert_eq!(bucket_start(11 * 86_400_000 + 5, Interval::W1), 11 * 86_400_000);
        assert!(Aggregator::new(Interval::H4, Interval::H1).is_err());
        assert!(Aggregator::new(Interval::H4, Interval::H6).is_err());
        assert!(Aggregator::new(Interval::D3, Interval::W1).is_err());
    }
}
