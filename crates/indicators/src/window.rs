//! Extremes over a sliding window (highest high, lowest low) in O(1) amortised per value.
//!
//! A monotonic deque keeps only the values that can still become the extreme: a new value
//! evicts every older one it dominates, so each value enters and leaves the deque once.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use ta::{Next, Reset};

use crate::{IndicatorError, check_period};

/// Maximum (`MAX = true`) or minimum of the last `period` values; see [`RollingMax`], [`RollingMin`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollingExtreme<const MAX: bool> {
    period: u64,
    /// Values seen so far; the index of the next value.
    seen: u64,
    /// `(index, value)`, indices increasing, values strictly decreasing (MAX) or increasing
    /// (MIN) from front to back: the front is the extreme of the window.
    deque: VecDeque<(u64, f64)>,
}

/// Highest of the last `period` values.
pub type RollingMax = RollingExtreme<true>;
/// Lowest of the last `period` values.
pub type RollingMin = RollingExtreme<false>;

impl<const MAX: bool> RollingExtreme<MAX> {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let name = if MAX { "rolling max" } else { "rolling min" };
        let period = check_period(name, period, 1)?;
        Ok(Self { period: period as u64, seen: 0, deque: VecDeque::with_capacity(period + 1) })
    }
}

impl<const MAX: bool> Next<f64> for RollingExtreme<MAX> {
    /// `None` until `period` values are in.
    type Output = Option<f64>;

    fn next(&mut self, value: f64) -> Option<f64> {
        let index = self.seen;
        self.seen += 1;
        // Ties evict the older value: equal values are interchangeable, and the newer one lives longer.
        while let Some(&(_, back)) = self.deque.back() {
            let dominated = if MAX { back <= value } else { back >= value };
            if !dominated {
                break;
            }
            self.deque.pop_back();
        }
        self.deque.push_back((index, value));
        while let Some(&(oldest, _)) = self.deque.front() {
            if oldest + self.period > index {
                break;
            }
            self.deque.pop_front();
        }
        if self.seen < self.period {
            return None;
        }
        self.deque.front().map(|&(_, v)| v)
    }
}

impl<const MAX: bool> Reset for RollingExtreme<MAX> {
    fn reset(&mut self) {
        self.seen = 0;
        self.deque.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_scan_of_the_window() {
        let values: Vec<f64> =
            (0..500u64).map(|i| ((i * 7919) % 101) as f64 + if i % 13 == 0 { 0.0 } else { 0.5 }).collect();
        for period in [1, 2, 3, 14, 50] {
            let mut max = RollingMax::new(period).unwrap();
            let mut min = RollingMin::new(period).unwrap();
            for (i, &v) in values.iter().enumerate() {
                let (hi, lo) = (max.next(v), min.next(v));
                if i + 1 < period {
                    assert_eq!((hi, lo), (None, None));
                    continue;
                }
                let window = &values[i + 1 - period..=i];
                assert_eq!(hi, window.iter().copied().reduce(f64::max), "period {period} row {i}");
                assert_eq!(lo, window.iter().copied().reduce(f64::min), "period {period} row {i}");
            }
        }
    }

    #[test]
    fn reset_restarts_the_window() {
        let mut max = RollingMax::new(2).unwrap();
        assert_eq!((max.next(5.0), max.next(1.0)), (None, Some(5.0)));
        max.reset();
        assert_eq!((max.next(1.0), max.next(2.0)), (None, Some(2.0)));
        assert!(RollingMin::new(0).is_err());
    }
}
