//! New rows of a dataset through the ingestion stage's own checks ([`IngestStage`]): a bar
//! must be a valid bar, come after the last one, and a repeat of the last bar is recognised,
//! not stored twice. The gate starts from the dataset's last stored bar, so an append is
//! judged exactly as the rows would be if ingestion had seen the whole series in one go.
//!
//! One addition for appends: a row at or before the last stored bar that is identical to the
//! stored bar at its open time is a repeat too (a CSV imported twice, an overlapping page),
//! not a refusal; with other values it goes to the stage, which refuses it.

use tradeflow_core::market::{Bar, RawBar};
use tradeflow_ingest::{IngestEvent, IngestStage};

use crate::error::Refusal;
use crate::key::DatasetKey;

/// What an append takes, skips and refuses.
pub struct Gate<'a> {
    key: &'a DatasetKey,
    stage: IngestStage,
    stored: &'a [Bar],
    /// Bars taken, in order.
    pub bars: Vec<Bar>,
    /// Rows that repeated a bar already there.
    pub repeats: u64,
    pub refusals: Vec<Refusal>,
}

impl<'a> Gate<'a> {
    /// A gate after `stored` (the dataset's bars, sorted).
    pub fn new(key: &'a DatasetKey, stored: &'a [Bar]) -> Self {
        let mut stage = IngestStage::default();
        if let Some(last) = stored.last() {
            let raw = RawBar {
                open_time: last.open_time(),
                open: last.open(),
                high: last.high(),
                low: last.low(),
                close: last.close(),
                volume: last.volume(),
            };
            // A stored bar is valid: the stage accepts it, and remembers it as the last one.
            let _ = stage.on_bar(&key.source, &key.symbol, key.interval, raw);
        }
        Self { key, stage, stored, bars: Vec::new(), repeats: 0, refusals: Vec::new() }
    }

    /// The dataset's bars before this append.
    pub fn stored(&self) -> &'a [Bar] {
        self.stored
    }

    /// Judges one row; `at` says where it came from (`line 7`), for a refusal.
    pub fn row(&mut self, raw: RawBar, at: impl FnOnce() -> String) {
        let last_stored = self.stored.last().map(Bar::open_time);
        if last_stored.is_some_and(|l| raw.open_time < l)
            && let Ok(i) = self.stored.binary_search_by_key(&raw.open_time, Bar::open_time)
            && raw.validate().is_ok_and(|b| b == self.stored[i])
        {
            self.repeats += 1;
            return;
        }
        let events = self.stage.on_bar(&self.key.source, &self.key.symbol, self.key.interval, raw);
        // No aggregation is configured: at most one event, the bar's candle or its refusal.
        match events.into_iter().next() {
            None => self.repeats += 1,
            Some(IngestEvent::Candle(c)) => self.bars.push(c.bar),
            Some(IngestEvent::Refused(r)) => self.refusals.push(Refusal {
                at: at(),
                open_time: r.open_time,
                kind: r.kind.as_str().to_string(),
                reason: r.reason,
            }),
        }
    }

    /// A row that could not be read at all, refused as the stage refuses a malformed bar.
    pub fn malformed(&mut self, at: String, open_time: Option<i64>, reason: String) {
        if let IngestEvent::Refused(r) =
            self.stage.malformed(&self.key.source, &self.key.symbol, self.key.interval, reason)
        {
            self.refusals.push(Refusal { at, open_time, kind: r.kind.as_str().to_string(), reason: r.reason });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::market::Interval;

    fn raw(t: i64, c: f64) -> RawBar {
        RawBar { open_time: t, open: c, high: c + 1.0, low: c - 1.0, close: c, volume: 1.0 }
    }

    #[test]
    fn repeats_are_skipped_and_the_stage_refuses_the_rest() {
        let key = DatasetKey::new("csv", "X", Interval::H1).unwrap();
        let stored: Vec<Bar> = [0, 1, 2].iter().map(|&k| raw(k, 10.0).validate().unwrap()).collect();
        let mut gate = Gate::new(&key, &stored);
        gate.row(raw(1, 10.0), || "line 2".into()); // an old bar again
        gate.row(raw(2, 10.0), || "line 3".into()); // the last one again
        gate.row(raw(1, 11.0), || "line 4".into()); // an old bar changed
        gate.row(raw(3, 10.0), || "line 5".into());
        gate.row(RawBar { high: 1.0, ..raw(4, 10.0) }, || "line 6".into());
        gate.malformed("line 7".into(), None, "column `close`: \"x\" is not a number".into());
        assert_eq!(gate.bars.iter().map(Bar::open_time).collect::<Vec<_>>(), vec![3]);
        assert_eq!(gate.repeats, 2);
        let refused: Vec<(&str, &str)> = gate.refusals.iter().map(|r| (r.at.as_str(), r.kind.as_str())).collect();
        assert_eq!(refused, vec![("line 4", "time_backwards"), ("line 6", "invalid_bar"), ("line 7", "malformed")]);
        assert!(gate.refusals[1].reason.contains("high 1 is below low 9"), "{:?}", gate.refusals[1]);
    }
}
