//! Features of one candle, scale-free, from what the inference stage computes anyway: the
//! candle, its indicators (`crates/indicators`, TA-Lib-exact) and its market condition
//! (`tradeflow_inference::condition`). The only state of its own is the last closes, for the
//! returns over several horizons ([`FeatureWindow`]).
//!
//! Nothing here looks ahead: the features at a candle are made of that candle and earlier ones
//! (the test `no_look_ahead` changes every later candle and checks).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tradeflow_core::market::Bar;
use tradeflow_core::signal::{MarketCondition, Phase, Trend};
use tradeflow_indicators::IndicatorRow;

/// Horizons (in bars) of the past log returns.
pub const RETURN_HORIZONS: [usize; 5] = [1, 3, 6, 12, 24];

/// The features in order; their definitions are in [`FeatureWindow::push`].
pub const FEATURE_NAMES: [&str; 21] = [
    "ret_1",
    "ret_3",
    "ret_6",
    "ret_12",
    "ret_24",
    "rsi_14",
    "macd_hist_over_price",
    "bb_percent_b",
    "bb_width",
    "atr_over_price",
    "volume_ratio_log",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "stoch_slowk",
    "stoch_slowd",
    "body",
    "range",
    "trend",
    "phase_breakout",
    "phase_consolidation",
];

pub const FEATURE_COUNT: usize = FEATURE_NAMES.len();

/// One candle's features, in the order of [`FEATURE_NAMES`].
pub type Features = [f64; FEATURE_COUNT];

/// What the features of a candle are made of.
#[derive(Debug, Clone, Copy)]
pub struct FeatureInput<'a> {
    pub bar: &'a Bar,
    pub row: &'a IndicatorRow,
    pub market: &'a MarketCondition,
}

/// The closes a series' features need (the longest return horizon and one more), kept per
/// series by whoever feeds it; checkpointable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureWindow {
    closes: VecDeque<f64>,
}

const KEPT: usize = RETURN_HORIZONS[RETURN_HORIZONS.len() - 1] + 1;

impl FeatureWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the candle in and gives its features, or `None` while a feature is still
    /// warming up (the longest return horizon, or an indicator TA-Lib leaves empty).
    pub fn push(&mut self, input: FeatureInput<'_>) -> Option<Features> {
        let close = input.bar.close();
        if self.closes.len() == KEPT {
            self.closes.pop_front();
        }
        self.closes.push_back(close);
        features(&self.closes, input)
    }
}

fn features(closes: &VecDeque<f64>, FeatureInput { bar, row, market }: FeatureInput<'_>) -> Option<Features> {
    let n = closes.len();
    let close = bar.close();
    let ret = |h: usize| -> Option<f64> {
        let past = *closes.get(n.checked_sub(h + 1)?)?;
        (past > 0.0 && close > 0.0).then(|| (close / past).ln())
    };
    let (upper, middle, lower) = (row.bb_upper_20_2?, row.bb_middle_20_2?, row.bb_lower_20_2?);
    let width = upper - lower;
    // A flat window has no band: %b is the middle by convention.
    let percent_b = if width > 0.0 { (close - lower) / width } else { 0.5 };
    let bb_width = if middle > 0.0 { width / middle } else { 0.0 };
    // No volume average (every recent bar without volume): the neutral ratio 1.
    let volume = row.volume_ratio_20.unwrap_or(1.0).ln_1p();
    let trend = match market.trend {
        Trend::TrendingUp => 1.0,
        Trend::TrendingDown => -1.0,
        Trend::Sideways => 0.0,
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let open = bar.open();
    Some([
        ret(RETURN_HORIZONS[0])?,
        ret(RETURN_HORIZONS[1])?,
        ret(RETURN_HORIZONS[2])?,
        ret(RETURN_HORIZONS[3])?,
        ret(RETURN_HORIZONS[4])?,
        row.rsi_14? / 100.0 - 0.5,
        row.macd_hist_12_26_9? / close,
        percent_b,
        bb_width,
        row.atr_14? / close,
        volume,
        row.adx_14? / 100.0,
        row.plus_di_14? / 100.0,
        row.minus_di_14? / 100.0,
        row.stoch_slowk_14_3_3? / 100.0,
        row.stoch_slowd_14_3_3? / 100.0,
        if open > 0.0 { (close - open) / open } else { 0.0 },
        (bar.high() - bar.low()) / close,
        trend,
        flag(market.phase == Phase::Breakout),
        flag(market.phase == Phase::Consolidation),
    ])
    .filter(|f: &Features| f.iter().all(|v| v.is_finite()))
}
