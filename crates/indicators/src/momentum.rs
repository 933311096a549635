//! Momentum oscillators: RSI (Wilder) and MACD (TA-Lib's seeding).

use serde::{Deserialize, Serialize};
use ta::{Close, Next, Reset};

use crate::moving_average::Ema;
use crate::{IndicatorError, check_period};

/// Relative strength index with Wilder's smoothing, from row `period`.
///
/// The seed averages are the plain means of the first `period` changes; then
/// `avg = (avg·(n−1) + change)/n`. RSI = 100·G/(G+L), and 0 when G+L = 0 (no change at all).
/// ta's RSI smooths with 2/(n+1) instead, which never converges to Wilder's values.
///
/// TA-Lib tests G+L against a small absolute epsilon rather than 0; prices are positive and
/// far above it, so the two only differ on assets priced around 1e-8.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rsi {
    period: usize,
    prev: Option<f64>,
    /// Changes summed for the seed, until `period`.
    seen: usize,
    gain: f64,
    loss: f64,
}

impl Rsi {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        Ok(Self { period: check_period("RSI", period, 1)?, prev: None, seen: 0, gain: 0.0, loss: 0.0 })
    }
}

impl Next<f64> for Rsi {
    type Output = Option<f64>;

    fn next(&mut self, close: f64) -> Option<f64> {
        let prev = self.prev.replace(close)?;
        let change = close - prev;
        let n = self.period as f64;
        // TA-Lib's operation order: scale, add today's change, divide.
        if self.seen < self.period {
            self.seen += 1;
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            if self.seen < self.period {
                return None;
            }
        } else {
            self.loss *= n - 1.0;
            self.gain *= n - 1.0;
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
        }
        self.loss /= n;
        self.gain /= n;
        let total = self.gain + self.loss;
        Some(if total == 0.0 { 0.0 } else { 100.0 * (self.gain / total) })
    }
}

impl<T: Close> Next<&T> for Rsi {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        self.next(bar.close())
    }
}

impl Reset for Rsi {
    fn reset(&mut self) {
        self.prev = None;
        self.seen = 0;
        self.gain = 0.0;
        self.loss = 0.0;
    }
}

/// One MACD row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MacdValue {
    /// Fast EMA − slow EMA.
    pub macd: f64,
    /// EMA of the line.
    pub signal: f64,
    /// Line − signal.
    pub histogram: f64,
}

/// MACD as TA-Lib computes it.
///
/// The slow EMA is seeded at row `slow − 1` as usual, but the fast EMA starts late, on row
/// `slow − fast`, so that it is seeded with the SMA of the `fast` closes ending at row
/// `slow − 1`: the line is therefore not the difference of two standalone EMAs. The signal is
/// the EMA of the line (seeded with the SMA of its first `signal` values), and all three
/// outputs start on row `slow + signal − 2`. With `signal = 1` the output starts with the line
/// itself on row `slow − 1`; [`Macd::line`] gives the line of the last row in any case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    /// Rows to skip before the fast EMA starts (`slow − fast`); counts down to 0.
    fast_delay: usize,
    line: Option<f64>,
}

impl Macd {
    /// `fast ≤ slow` is required: TA-Lib swaps them silently, here a swapped pair is an error.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Result<Self, IndicatorError> {
        if fast > slow {
            return Err(IndicatorError::InvalidParameter {
                indicator: "MACD",
                reason: format!("the fast period {fast} is longer than the slow period {slow}"),
            });
        }
        Ok(Self {
            fast: Ema::new(check_period("MACD fast", fast, 1)?)?,
            slow: Ema::new(check_period("MACD slow", slow, 1)?)?,
            signal: Ema::new(check_period("MACD signal", signal, 1)?)?,
            fast_delay: slow - fast,
            line: None,
        })
    }

    /// The MACD line of the last row given to `next`, from row `slow − 1` (before the signal
    /// exists): TA-Lib's MACD with signal period 1.
    pub fn line(&self) -> Option<f64> {
        self.line
    }
}

impl Next<f64> for Macd {
    type Output = Option<MacdValue>;

    fn next(&mut self, close: f64) -> Option<MacdValue> {
        let slow = self.slow.next(close);
        if self.fast_delay > 0 {
            self.fast_delay -= 1;
            return None;
        }
        let fast = self.fast.next(close);
        let line = fast? - slow?;
        self.line = Some(line);
        let signal = self.signal.next(line)?;
        Some(MacdValue { macd: line, signal, histogram: line - signal })
    }
}

impl<T: Close> Next<&T> for Macd {
    type Output = Option<MacdValue>;

    fn next(&mut self, bar: &T) -> Option<MacdValue> {
        self.next(bar.close())
    }
}

impl Reset for Macd {
    fn reset(&mut self) {
        self.fast.reset();
        self.slow.reset();
        self.signal.reset();
        self.fast_delay = self.slow.period() - self.fast.period();
        self.line = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closes(n: usize) -> Vec<f64> {
        (0..n).map(|i| 100.0 + ((i * 37) % 17) as f64 - (i % 5) as f64 * 0.7).collect()
    }

    #[test]
    fn rsi_is_zero_without_any_change_and_100_with_only_gains() {
        let mut flat = Rsi::new(14).unwrap();
        let out: Vec<_> = (0..20).map(|_| flat.next(7.0)).collect();
        assert!(out[..14].iter().all(Option::is_none));
        assert!(out[14..].iter().all(|v| *v == Some(0.0)), "{out:?}");
        let mut up = Rsi::new(3).unwrap();
        let out: Vec<_> = (0..5).map(|i| up.next(f64::from(i))).collect();
        assert_eq!(out, [None, None, None, Some(100.0), Some(100.0)]);
    }

    #[test]
    fn macd_warm_up_and_line_seeding() {
        let xs = closes(60);
        let mut macd = Macd::new(12, 26, 9).unwrap();
        let mut line_only = Macd::new(12, 26, 1).unwrap();
        // The fast EMA is seeded with the SMA of closes 14..=25.
        let fast_seed = xs[14..26].iter().sum::<f64>() / 12.0;
        let slow_seed = xs[..26].iter().sum::<f64>() / 26.0;
        for (i, &x) in xs.iter().enumerate() {
            let full = macd.next(x);
            let alone = line_only.next(x);
            assert_eq!(full.is_some(), i >= 33, "row {i}");
            assert_eq!(alone.is_some(), i >= 25, "row {i}");
            assert_eq!(macd.line().is_some(), i >= 25, "row {i}");
            if i == 25 {
                assert_eq!(macd.line(), Some(fast_seed - slow_seed));
            }
            if let Some(a) = alone {
                assert_eq!(Some(a.macd), macd.line());
            }
            if let Some(v) = full {
                assert_eq!(v.histogram, v.macd - v.signal);
            }
        }
        macd.reset();
        assert_eq!((macd.next(1.0), macd.line()), (None, None));
        assert!(Macd::new(26, 12, 9).is_err());
    }
}
