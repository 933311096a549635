//! Stochastic oscillators: raw %K, slow (%K, %D) and fast (%K, %D), TA-Lib's definitions.

use serde::{Deserialize, Serialize};
use ta::{Close, High, Low, Next, Reset};

use crate::IndicatorError;
use crate::moving_average::Sma;
use crate::window::{RollingMax, RollingMin};

/// Raw %K: 100·(C − LL)/(HH − LL) over the last `period` bars, from row `period − 1`; 0 when
/// HH = LL (a flat window), as TA-Lib does. ta returns 50 there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawStochastic {
    highest: RollingMax,
    lowest: RollingMin,
}

impl RawStochastic {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        Ok(Self { highest: RollingMax::new(period)?, lowest: RollingMin::new(period)? })
    }
}

impl<T: High + Low + Close> Next<&T> for RawStochastic {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        let highest = self.highest.next(bar.high());
        let lowest = self.lowest.next(bar.low())?;
        // TA-Lib's form, (C − LL)/((HH − LL)/100), for agreement to the last bits.
        let diff = (highest? - lowest) / 100.0;
        Some(if diff != 0.0 { (bar.close() - lowest) / diff } else { 0.0 })
    }
}

impl Reset for RawStochastic {
    fn reset(&mut self) {
        self.highest.reset();
        self.lowest.reset();
    }
}

/// One stochastic row: %K and %D.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StochasticValue {
    pub k: f64,
    pub d: f64,
}

/// Slow stochastic (TA-Lib STOCH with SMA smoothing): %K = SMA(raw %K, `k_smoothing`),
/// %D = SMA(%K, `d_smoothing`). Both from row `period + k_smoothing + d_smoothing − 3`
/// (17 for 14,3,3). ta smooths %D with an EMA instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowStochastic {
    raw: RawStochastic,
    k: Sma,
    d: Sma,
}

impl SlowStochastic {
    pub fn new(period: usize, k_smoothing: usize, d_smoothing: usize) -> Result<Self, IndicatorError> {
        Ok(Self { raw: RawStochastic::new(period)?, k: Sma::new(k_smoothing)?, d: Sma::new(d_smoothing)? })
    }
}

impl<T: High + Low + Close> Next<&T> for SlowStochastic {
    type Output = Option<StochasticValue>;

    fn next(&mut self, bar: &T) -> Option<StochasticValue> {
        let k = self.k.next(self.raw.next(bar)?)?;
        let d = self.d.next(k)?;
        Some(StochasticValue { k, d })
    }
}

impl Reset for SlowStochastic {
    fn reset(&mut self) {
        self.raw.reset();
        self.k.reset();
        self.d.reset();
    }
}

/// Fast stochastic (TA-Lib STOCHF with SMA smoothing): %K = raw %K, %D = SMA(%K,
/// `d_smoothing`); both from row `period + d_smoothing − 2` (15 for 14,3), so %K is held back
/// until %D exists. [`FastStochastic::raw_k`] gives %K without that delay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FastStochastic {
    raw: RawStochastic,
    d: Sma,
    last_raw: Option<f64>,
}

impl FastStochastic {
    pub fn new(period: usize, d_smoothing: usize) -> Result<Self, IndicatorError> {
        Ok(Self { raw: RawStochastic::new(period)?, d: Sma::new(d_smoothing)?, last_raw: None })
    }

    /// Raw %K of the last bar given to `next`, from row `period − 1`.
    pub fn raw_k(&self) -> Option<f64> {
        self.last_raw
    }
}

impl<T: High + Low + Close> Next<&T> for FastStochastic {
    type Output = Option<StochasticValue>;

    fn next(&mut self, bar: &T) -> Option<StochasticValue> {
        self.last_raw = self.raw.next(bar);
        let k = self.last_raw?;
        let d = self.d.next(k)?;
        Some(StochasticValue { k, d })
    }
}

impl Reset for FastStochastic {
    fn reset(&mut self) {
        self.raw.reset();
        self.d.reset();
        self.last_raw = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bar as bar;

    #[test]
    fn raw_k_is_zero_on_a_flat_window() {
        let mut raw = RawStochastic::new(3).unwrap();
        let out: Vec<_> = (0..5).map(|_| raw.next(&bar(6556.25, 6556.25, 6556.25))).collect();
        assert_eq!(out, [None, None, Some(0.0), Some(0.0), Some(0.0)]);
    }

    #[test]
    fn raw_k_places_the_close_in_the_window_range() {
        let mut raw = RawStochastic::new(2).unwrap();
        assert_eq!(raw.next(&bar(10.0, 0.0, 5.0)), None);
        // Window high 10, low 0 → 100·(2.5 − 0)/10.
        assert_eq!(raw.next(&bar(4.0, 1.0, 2.5)), Some(25.0));
        // Window high 8, low 1, close at the high: TA-Lib's 7/(7/100) is 99.99999999999999, not 100.
        assert_eq!(raw.next(&bar(8.0, 2.0, 8.0)), Some(99.99999999999999));
    }

    #[test]
    fn warm_up_rows_of_slow_and_fast() {
        let bars: Vec<_> =
            (0..30).map(f64::from).map(|i| bar(10.0 + (i * 1.3) % 4.0, 5.0 - (i * 0.7) % 3.0, 7.0)).collect();
        let mut slow = SlowStochastic::new(14, 3, 3).unwrap();
        let mut fast = FastStochastic::new(14, 3).unwrap();
        for (i, b) in bars.iter().enumerate() {
            assert_eq!(slow.next(b).is_some(), i >= 17, "row {i}");
            assert_eq!(fast.next(b).is_some(), i >= 15, "row {i}");
            assert_eq!(fast.raw_k().is_some(), i >= 13, "row {i}");
        }
        fast.reset();
        assert_eq!(fast.raw_k(), None);
    }
}
