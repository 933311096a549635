//! TA-Lib-exact streaming technical indicators.
//!
//! Every indicator takes one value or one bar at a time through the `ta` crate's [`Next`] trait
//! and returns `None` for exactly the rows where TA-Lib returns NaN (its "lookback"), so a
//! live stream and a batch run over the same candles agree row by row. The rules (seeds,
//! smoothing, edge cases) are those of `tests/data/CONVENTIONS.md`; where `ta` already follows
//! them (SMA, true range, OBV) its implementation is used, elsewhere the indicator is written
//! here because `ta` seeds or smooths differently, or (Bollinger Bands) drifts on long streams.
//! See each module.
//!
//! Zero tests are exact (`== 0.0`), as CONVENTIONS.md states them; TA-Lib compares with a small
//! absolute epsilon instead, which only matters for assets priced around 1e-8.
//!
//! Work per value is O(1) (running sums, ring buffers, monotonic deques), and all state is
//! `Clone + Serialize + Deserialize` so a stage can checkpoint it.
//!
//! [`IndicatorSet`] bundles the whole set computed for one symbol and interval; it reads
//! tradeflow-core's validated [`Bar`].

pub mod bar;
pub mod directional;
pub mod error;
pub mod momentum;
pub mod moving_average;
pub mod set;
pub mod stochastic;
pub mod volatility;
pub mod volume;
pub mod window;

pub use bar::{Bar, BarError, TaBar};
pub use error::IndicatorError;
pub use set::{COLUMNS, IndicatorRow, IndicatorSet};
/// The `ta` traits the indicators implement, re-exported so users need no direct `ta` dependency.
pub use ta::{Close, High, Low, Next, Open, Reset, Volume};

/// Checks a period at construction, so that no indicator divides by zero or never warms up.
pub(crate) fn check_period(indicator: &'static str, period: usize, min: usize) -> Result<usize, IndicatorError> {
    if period < min { Err(IndicatorError::InvalidPeriod { indicator, period, min }) } else { Ok(period) }
}

/// A bar for unit tests: open = close, volume 1.
#[cfg(test)]
pub(crate) fn test_bar(high: f64, low: f64, close: f64) -> ta::DataItem {
    ta::DataItem::builder().open(close).high(high).low(low).close(close).volume(1.0).build().unwrap()
}
