//! The bar the indicators read: tradeflow-core's validated [`Bar`], seen through ta's traits.
//!
//! `Bar` is validated when made and when decoded (finite values, positive prices, volume ≥ 0,
//! low ≤ open, close ≤ high), so no NaN or impossible bar can poison running sums that live as
//! long as the stream. The `ta` traits cannot be implemented for it here (the orphan rule), nor
//! in core (which should not depend on ta): hence this wrapper.

use ta::{Close, High, Low, Open, Volume};
pub use tradeflow_core::market::{Bar, BarError};

/// A [`Bar`] as the indicators take it (`Open`, `High`, `Low`, `Close`, `Volume`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaBar(pub Bar);

impl From<Bar> for TaBar {
    fn from(bar: Bar) -> Self {
        Self(bar)
    }
}

impl Open for TaBar {
    fn open(&self) -> f64 {
        self.0.open()
    }
}

impl High for TaBar {
    fn high(&self) -> f64 {
        self.0.high()
    }
}

impl Low for TaBar {
    fn low(&self) -> f64 {
        self.0.low()
    }
}

impl Close for TaBar {
    fn close(&self) -> f64 {
        self.0.close()
    }
}

impl Volume for TaBar {
    fn volume(&self) -> f64 {
        self.0.volume()
    }
}
