//! Directional movement: +DI, −DI and ADX with Wilder's running sums, as TA-Lib computes them.
//! ta has none of these.

use serde::{Deserialize, Serialize};
use ta::{Close, High, Low, Next, Reset};

use crate::{IndicatorError, check_period};

/// +DI and −DI of one row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiValue {
    pub plus: f64,
    pub minus: f64,
}

/// +DI and −DI, from row `period`.
///
/// +DM = H − H_prev when that is > 0 and > L_prev − L, else 0; −DM symmetrically; a tie counts
/// for neither. DM and TR are Wilder running *sums*: seeded with the plain sum over rows
/// 1..period−1, then `S = S − S/n + x` from row `period`. DI = 100·S_DM/S_TR, 0 when S_TR = 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectionalIndicator {
    period: usize,
    /// High, low and close of the previous bar.
    prev: Option<(f64, f64, f64)>,
    /// Rows summed for the seed, until `period − 1`.
    seeded: usize,
    plus_dm: f64,
    minus_dm: f64,
    range: f64,
}

impl DirectionalIndicator {
    /// `period ≥ 2`, as in TA-Lib (with 1 the running sum would be the bare value).
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let period = check_period("DI", period, 2)?;
        Ok(Self { period, prev: None, seeded: 0, plus_dm: 0.0, minus_dm: 0.0, range: 0.0 })
    }
}

impl<T: High + Low + Close> Next<&T> for DirectionalIndicator {
    type Output = Option<DiValue>;

    fn next(&mut self, bar: &T) -> Option<DiValue> {
        let (high, low) = (bar.high(), bar.low());
        let (prev_high, prev_low, prev_close) = self.prev.replace((high, low, bar.close()))?;
        let up = high - prev_high;
        let down = prev_low - low;
        let range = (high - low).max((high - prev_close).abs()).max((low - prev_close).abs());
        let seeding = self.seeded < self.period - 1;
        if seeding {
            self.seeded += 1;
        } else {
            // TA-Lib's operation order: decay first, then add today's movement.
            let n = self.period as f64;
            self.minus_dm -= self.minus_dm / n;
            self.plus_dm -= self.plus_dm / n;
            self.range -= self.range / n;
        }
        if down > 0.0 && up < down {
            self.minus_dm += down;
        } else if up > 0.0 && up > down {
            self.plus_dm += up;
        }
        self.range += range;
        if seeding {
            return None;
        }
        if self.range == 0.0 {
            return Some(DiValue { plus: 0.0, minus: 0.0 });
        }
        Some(DiValue { plus: 100.0 * (self.plus_dm / self.range), minus: 100.0 * (self.minus_dm / self.range) })
    }
}

impl Reset for DirectionalIndicator {
    fn reset(&mut self) {
        self.prev = None;
        self.seeded = 0;
        self.plus_dm = 0.0;
        self.minus_dm = 0.0;
        self.range = 0.0;
    }
}

/// Average directional index, from row `2·period − 1`, with +DI/−DI from row `period`.
///
/// DX = 100·|+DI − −DI|/(+DI + −DI). The first ADX is the mean of the DX of rows
/// period..=2·period−1, then `adx = (adx·(n−1) + DX)/n`. DX is 0 when +DI + −DI = 0.
///
/// (TA-Lib skips the smoothing step in that case instead of smoothing with 0. The two agree:
/// a Wilder sum `S − S/n` never returns to 0 once positive, so +DI + −DI = 0 only while no
/// directional movement has happened at all, and then every DX so far was 0 and so is ADX.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adx {
    di: DirectionalIndicator,
    last_di: Option<DiValue>,
    /// DX values summed for the seed, until `period`.
    seen: usize,
    dx_sum: f64,
    value: Option<f64>,
}

impl Adx {
    /// `period ≥ 2`, as in TA-Lib.
    pub fn new(period: usize) -> Result<Self, IndicatorError> {
        let di = DirectionalIndicator::new(check_period("ADX", period, 2)?)?;
        Ok(Self { di, last_di: None, seen: 0, dx_sum: 0.0, value: None })
    }

    /// +DI and −DI of the last bar given to `next`, from row `period`.
    pub fn di(&self) -> Option<DiValue> {
        self.last_di
    }
}

impl<T: High + Low + Close> Next<&T> for Adx {
    type Output = Option<f64>;

    fn next(&mut self, bar: &T) -> Option<f64> {
        self.last_di = self.di.next(bar);
        let di = self.last_di?;
        let sum = di.plus + di.minus;
        let dx = if sum == 0.0 { 0.0 } else { 100.0 * ((di.minus - di.plus).abs() / sum) };
        let n = self.di.period as f64;
        match self.value {
            Some(adx) => self.value = Some((adx * (n - 1.0) + dx) / n),
            None => {
                self.dx_sum += dx;
                self.seen += 1;
                if self.seen == self.di.period {
                    self.value = Some(self.dx_sum / n);
                }
            }
        }
        self.value
    }
}

impl Reset for Adx {
    fn reset(&mut self) {
        self.di.reset();
        self.last_di = None;
        self.seen = 0;
        self.dx_sum = 0.0;
        self.value = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bar as bar;

    #[test]
    fn warm_up_rows() {
        let mut adx = Adx::new(14).unwrap();
        for i in 0..40 {
            let x = f64::from(i);
            let out = adx.next(&bar(10.0 + (x * 1.7) % 5.0, 5.0 + (x * 0.9) % 3.0, 8.0));
            assert_eq!(out.is_some(), i >= 27, "row {i}");
            assert_eq!(adx.di().is_some(), i >= 14, "row {i}");
        }
        adx.reset();
        assert_eq!((adx.next(&bar(2.0, 1.0, 1.5)), adx.di()), (None, None));
        assert!(Adx::new(1).is_err());
    }

    #[test]
    fn small_example_by_hand() {
        // Period 2: seed sums over row 1, first DI on row 2, first ADX on row 3.
        let bars = [bar(10.0, 8.0, 9.0), bar(12.0, 9.0, 11.0), bar(11.0, 7.0, 8.0), bar(13.0, 10.0, 12.0)];
        let mut di = DirectionalIndicator::new(2).unwrap();
        let out: Vec<_> = bars.iter().map(|b| di.next(b)).collect();
        assert_eq!(out[..2], [None, None]);
        // Row 1: +DM 2 (up 2 > down −1), TR 3. Row 2: up −1, down 2 → −DM 2; TR 4.
        // S+ = 2 − 1 + 0 = 1, S− = 0 − 0 + 2 = 2, S_TR = 3 − 1.5 + 4 = 5.5.
        assert_eq!(out[2], Some(DiValue { plus: 100.0 * (1.0 / 5.5), minus: 100.0 * (2.0 / 5.5) }));
        let mut adx = Adx::new(2).unwrap();
        let out: Vec<_> = bars.iter().map(|b| adx.next(b)).collect();
        assert_eq!(out[..3], [None, None, None]);
        assert!(out[3].is_some());
    }

    #[test]
    fn a_market_without_movement_has_zero_di_and_zero_adx() {
        let mut adx = Adx::new(3).unwrap();
        let out: Vec<_> = (0..8).map(|_| adx.next(&bar(5.0, 5.0, 5.0))).collect();
        assert_eq!(out, [None, None, None, None, None, Some(0.0), Some(0.0), Some(0.0)]);
        assert_eq!(adx.di(), Some(DiValue { plus: 0.0, minus: 0.0 }));
    }
}
