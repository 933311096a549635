//! Volume: OBV (ta), the volume SMA and the volume ratio.

use serde::{Deserialize, Serialize};
use ta::indicators::OnBalanceVolume;
use ta::{Close, Next, Reset, Volume};

use crate::IndicatorError;
use crate::moving_average::Sma;

/// On-balance volume, from row 0: `OBV[0] = volume[0]`, then ± the volume when the close rises
/// or falls, unchanged when it is equal.
///
/// ta's OBV starts from a previous close of 0, so its first bar adds the volume: TA-Lib's
/// `OBV[0] = volume[0]` for any positive first close, which a [`Bar`](crate::Bar) guarantees.
/// `Option` only for uniformity with the other indicators: it is always `Some`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Obv {
    inner: OnBalanceVolume,
}

impl Obv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: Close + Volume> Next<&T> for Obv {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        Some(self.inner.next(bar))
    }
}

impl Reset for Obv {
    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// SMA of the volume, from row `period − 1`.
///
/// A window of zero volumes (an exchange outage filled with flat bars) averages to exactly 0,
/// not to the rounding residue the running sum keeps of the volumes that left the window, so
/// that [`volume_ratio`] reliably sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeSma {
    sma: Sma,
    period: usize,
    /// Consecutive zero volumes up to the last bar, capped at `period`.
    zero_run: usize,
}

impl VolumeSma {
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        Ok(Self { sma: Sma::new(period)?, period, zero_run: 0 })
    }
}

impl<T: Volume> Next<&T> for VolumeSma {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        let volume = bar.volume();
        self.zero_run = if volume == 0.0 { (self.zero_run + 1).min(self.period) } else { 0 };
        let mean = self.sma.next(volume)?;
        Some(if self.zero_run == self.period { 0.0 } else { mean })
    }
}

impl Reset for VolumeSma {
    fn reset(&mut self) {
        self.sma.reset();
        self.zero_run = 0;
    }
}

/// Volume relative to its average (the average includes the current bar): 1 is an ordinary
/// bar, 3 a bar with three times the usual volume.
///
/// `None` when the average is not positive (a window without any volume): the ratio is
/// undefined there, and neither 0 nor infinity would be an honest stand-in.
pub fn volume_ratio(volume: f64, average: f64) -> Option<f64> {
    (average > 0.0).then(|| volume / average)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ta::DataItem;

    fn bar(close: f64, volume: f64) -> DataItem {
        DataItem::builder().open(close).high(close).low(close).close(close).volume(volume).build().unwrap()
    }

    #[test]
    fn obv_starts_with_the_first_volume() {
        let mut obv = Obv::new();
        let out: Vec<_> =
            [(10.0, 5.0), (11.0, 2.0), (11.0, 7.0), (9.0, 4.0)].iter().map(|&(c, v)| obv.next(&bar(c, v))).collect();
        assert_eq!(out, [Some(5.0), Some(7.0), Some(7.0), Some(3.0)]);
    }

    #[test]
    fn a_window_of_zero_volumes_averages_to_exactly_zero() {
        let mut sma = VolumeSma::new(3).unwrap();
        // 0.1 + 0.2 − 0.1 − 0.2 leaves a rounding residue in a plain running sum.
        let volumes = [0.1, 0.2, 0.7, 0.0, 0.0, 0.0, 0.0, 3.0];
        let out: Vec<_> = volumes.iter().map(|&v| sma.next(&bar(1.0, v))).collect();
        assert_eq!(out[..2], [None, None]);
        assert_eq!(out[5..7], [Some(0.0), Some(0.0)]);
        assert!(out[7].is_some_and(|v| (v - 1.0).abs() < 1e-12), "{out:?}");
        assert_eq!(volume_ratio(0.0, 0.0), None);
        assert_eq!(volume_ratio(0.0, 2.0), Some(0.0));
        assert_eq!(volume_ratio(3.0, 1.5), Some(2.0));
    }
}
