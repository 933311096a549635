//! Moving averages: SMA (ta's running sum) and EMA with TA-Lib's seed.

use serde::{Deserialize, Serialize};
use ta::indicators::SimpleMovingAverage;
use ta::{Close, Next, Reset};

use crate::{IndicatorError, check_period};

/// Simple moving average: the mean of the last `period` values, from row `period − 1`.
///
/// ta's SMA keeps a running sum, as TA-Lib does, but averages a partial window during warm-up;
/// this wrapper returns `None` there instead. The running sum's rounding drift stays many
/// orders below 1e-9 relative over the reference files (checked by the reference test and by a
/// long-run test against exact recomputation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sma {
    inner: SimpleMovingAverage,
    period: usize,
    /// Values seen, capped at `period`.
    seen: usize,
}

impl Sma {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let period = check_period("SMA", period, 1)?;
        let inner = SimpleMovingAverage::new(period)
            .map_err(|e| IndicatorError::InvalidParameter { indicator: "SMA", reason: format!("{e:?}") })?;
        Ok(Self { inner, period, seen: 0 })
    }
}

impl Next<f64> for Sma {
    type Output = Option<f64>;

    fn next(&mut self, value: f64) -> Option<f64> {
        let mean = self.inner.next(value);
        if self.seen < self.period {
            self.seen += 1;
        }
        (self.seen == self.period).then_some(mean)
    }
}

impl<T: Close> Next<&T> for Sma {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        self.next(bar.close())
    }
}

impl Reset for Sma {
    fn reset(&mut self) {
        self.inner.reset();
        self.seen = 0;
    }
}

/// Exponential moving average as TA-Lib computes it: k = 2/(n+1), seeded with the SMA of the
/// first `period` values (written at row `period − 1`), then `e = (x − e)·k + e`.
///
/// ta's EMA seeds with the first value instead, which differs from TA-Lib for hundreds of rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ema {
    period: usize,
    k: f64,
    /// Values summed for the seed, until `period`.
    seen: usize,
    sum: f64,
    value: Option<f64>,
}

impl Ema {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let period = check_period("EMA", period, 1)?;
        Ok(Self { period, k: 2.0 / (period as f64 + 1.0), seen: 0, sum: 0.0, value: None })
    }

    pub fn period(&self) -> usize {
        self.period
    }
}

impl Next<f64> for Ema {
    type Output = Option<f64>;

    fn next(&mut self, x: f64) -> Option<f64> {
        match self.value {
            // TA-Lib's operation order, so that results agree to the last bits.
            Some(e) => self.value = Some((x - e) * self.k + e),
            None => {
                self.sum += x;
                self.seen += 1;
                if self.seen == self.period {
                    self.value = Some(self.sum / self.period as f64);
                }
            }
        }
        self.value
    }
}

impl<T: Close> Next<&T> for Ema {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        self.next(bar.close())
    }
}

impl Reset for Ema {
    fn reset(&mut self) {
        self.seen = 0;
        self.sum = 0.0;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sma_warms_up_then_averages_the_window() {
        let mut sma = Sma::new(3).unwrap();
        let out: Vec<_> = [1.0, 2.0, 3.0, 4.0, 8.0].into_iter().map(|x| sma.next(x)).collect();
        assert_eq!(out, [None, None, Some(2.0), Some(3.0), Some(5.0)]);
        sma.reset();
        assert_eq!((sma.next(6.0), sma.next(6.0), sma.next(6.0)), (None, None, Some(6.0)));
        assert!(Sma::new(0).is_err());
    }

    #[test]
    fn ema_is_seeded_with_the_sma() {
        let mut ema = Ema::new(3).unwrap();
        let out: Vec<_> = [1.0, 2.0, 3.0, 5.0].into_iter().map(|x| ema.next(x)).collect();
        // Seed (1+2+3)/3 = 2 at row 2, then 2 + 0.5·(5 − 2).
        assert_eq!(out, [None, None, Some(2.0), Some(3.5)]);
        ema.reset();
        assert_eq!(ema.next(1.0), None);
    }
}
