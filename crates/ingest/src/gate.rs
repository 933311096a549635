//! Per-series admission: time must move forward; a repeated bar is recognised, not re-emitted.

use tradeflow_core::market::{Bar, RefusalKind};

/// What to do with a valid bar of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// New: becomes a candle.
    Accept,
    /// The bar already accepted at this open time, again (a replay, a reconnect overlap).
    /// Same message id, so nothing is emitted.
    Duplicate,
    Refuse(RefusalKind, String),
}

/// The last accepted bar of one (source, symbol, interval) series.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    last: Option<Bar>,
}

impl Gate {
    pub fn admit(&mut self, bar: &Bar) -> Admission {
        match &self.last {
            Some(last) if bar.open_time() < last.open_time() => Admission::Refuse(
                RefusalKind::TimeBackwards,
                format!("open time {} is before the last accepted bar's {}", bar.open_time(), last.open_time()),
            ),
            Some(last) if bar.open_time() == last.open_time() && bar == last => Admission::Duplicate,
            Some(last) if bar.open_time() == last.open_time() => Admission::Refuse(
                RefusalKind::ConflictingDuplicate,
                format!(
                    "bar at {} repeats with other values (had o={} h={} l={} c={} v={}, got o={} h={} l={} c={} v={})",
                    bar.open_time(),
                    last.open(),
                    last.high(),
                    last.low(),
                    last.close(),
                    last.volume(),
                    bar.open(),
                    bar.high(),
                    bar.low(),
                    bar.close(),
                    bar.volume()
                ),
            ),
            _ => {
                self.last = Some(*bar);
                Admission::Accept
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(t: i64, c: f64) -> Bar {
        Bar::new(t, c, c, c, c, 1.0).unwrap()
    }

    #[test]
    fn forward_accepted_repeat_is_duplicate_backwards_refused() {
        let mut g = Gate::default();
        assert_eq!(g.admit(&bar(10, 1.0)), Admission::Accept);
        assert_eq!(g.admit(&bar(10, 1.0)), Admission::Duplicate);
        assert!(matches!(g.admit(&bar(10, 2.0)), Admission::Refuse(RefusalKind::ConflictingDuplicate, _)));
        assert!(
            matches!(g.admit(&bar(5, 1.0)), Admission::Refuse(RefusalKind::TimeBackwards, r) if r.contains("before"))
        );
        assert_eq!(g.admit(&bar(20, 1.0)), Admission::Accept);
    }
}
