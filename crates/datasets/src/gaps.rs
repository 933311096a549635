//! Missing bars between the first and the last bar of a dataset. Nothing is filled in: a gap
//! is reported where it is, for the user to judge (an exchange outage, a delisting, a hole in
//! an imported file). Before the first bar and after the last there is no gap, only the
//! dataset's range.

use serde::Serialize;
use tradeflow_core::market::Interval;

/// Bars missing between two bars present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Open time of the first missing bar (epoch ms, UTC).
    pub from: i64,
    /// Open time of the next bar present: the gap is `[from, to)`.
    pub to: i64,
    /// Bars missing.
    pub missing: u64,
}

/// The gaps of `times` (increasing open times of one series).
pub fn find(times: &[i64], interval: Interval) -> Vec<Gap> {
    let iv = interval.millis().max(1);
    times
        .windows(2)
        .filter(|w| w[1] - w[0] > iv)
        .map(|w| {
            let from = w[0] + iv;
            Gap { from, to: w[1], missing: ((w[1] - from + iv - 1) / iv) as u64 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_between_bars_are_gaps_and_nothing_else_is() {
        let h = Interval::H1.millis();
        assert_eq!(find(&[0, h, 2 * h], Interval::H1), vec![]);
        assert_eq!(
            find(&[0, h, 4 * h, 5 * h, 7 * h], Interval::H1),
            vec![Gap { from: 2 * h, to: 4 * h, missing: 2 }, Gap { from: 6 * h, to: 7 * h, missing: 1 }]
        );
        assert_eq!(find(&[], Interval::H1), vec![]);
    }
}
