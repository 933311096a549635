//! The market condition at a candle, derived from its indicators and the recent bars.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tradeflow_core::market::Bar;
use tradeflow_core::signal::{Level, MarketCondition, Phase, Trend};
use tradeflow_indicators::IndicatorRow;

/// Thresholds of the classification (config `[condition]`); defaults suit hourly crypto bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConditionParams {
    /// Bars of the support/resistance window.
    pub window: usize,
    /// ADX below this: no trend worth the name (consolidation).
    pub adx_trend: f64,
    /// ATR/close below `low`: low volatility; above `high`: high.
    pub atr_pct_low: f64,
    pub atr_pct_high: f64,
    /// Volume ratio below `low` / above `high`.
    pub volume_low: f64,
    pub volume_high: f64,
}

impl Default for ConditionParams {
    fn default() -> Self {
        Self { window: 20, adx_trend: 20.0, atr_pct_low: 0.005, atr_pct_high: 0.02, volume_low: 0.5, volume_high: 1.5 }
    }
}

impl ConditionParams {
    /// Every problem at once, each with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.window == 0 || self.window > 10_000 {
            problems.push(format!("window must be within 1..=10000, got {}", self.window));
        }
        let ordered = |lo: f64, hi: f64| lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo < hi;
        if !(self.adx_trend.is_finite() && (0.0..=100.0).contains(&self.adx_trend)) {
            problems.push(format!("adx_trend must be within 0..=100, got {}", self.adx_trend));
        }
        if !ordered(self.atr_pct_low, self.atr_pct_high) {
            problems.push(format!(
                "atr_pct_low ({}) and atr_pct_high ({}) must satisfy 0 <= low < high",
                self.atr_pct_low, self.atr_pct_high
            ));
        }
        if !ordered(self.volume_low, self.volume_high) {
            problems.push(format!(
                "volume_low ({}) and volume_high ({}) must satisfy 0 <= low < high",
                self.volume_low, self.volume_high
            ));
        }
        problems
    }
}

/// Highs and lows of the last `window` bars before the current one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentRange {
    bars: VecDeque<(f64, f64)>,
}

impl RecentRange {
    /// (support, resistance) of the bars before this one, then remembers this one.
    pub fn push(&mut self, bar: &Bar, window: usize) -> (Option<f64>, Option<f64>) {
        let support = self.bars.iter().map(|(_, l)| *l).reduce(f64::min);
        let resistance = self.bars.iter().map(|(h, _)| *h).reduce(f64::max);
        self.bars.push_back((bar.high(), bar.low()));
        while self.bars.len() > window.max(1) {
            self.bars.pop_front();
        }
        (support, resistance)
    }
}

fn level(value: Option<f64>, low: f64, high: f64) -> Option<Level> {
    value.map(|v| {
        if v < low {
            Level::Low
        } else if v > high {
            Level::High
        } else {
            Level::Normal
        }
    })
}

/// Classifies the market at `bar`.
pub fn assess(
    bar: &Bar,
    row: &IndicatorRow,
    support: Option<f64>,
    resistance: Option<f64>,
    p: &ConditionParams,
) -> MarketCondition {
    let close = bar.close();
    let trend = match (row.ema_21, row.ema_50) {
        (Some(fast), Some(slow)) if close > fast && fast > slow => Trend::TrendingUp,
        (Some(fast), Some(slow)) if close < fast && fast < slow => Trend::TrendingDown,
        _ => Trend::Sideways,
    };
    let broke_out = resistance.is_some_and(|r| close > r) || support.is_some_and(|s| close < s);
    let phase = if broke_out {
        Phase::Breakout
    } else if row.adx_14.is_none_or(|adx| adx < p.adx_trend) {
        Phase::Consolidation
    } else {
        Phase::ActiveTrading
    };
    let atr_pct = row.atr_14.map(|atr| atr / close);
    MarketCondition {
        trend,
        phase,
        trend_strength: row.adx_14,
        support,
        resistance,
        volatility: level(atr_pct, p.atr_pct_low, p.atr_pct_high),
        atr_pct,
        volume: level(row.volume_ratio_20, p.volume_low, p.volume_high),
        volume_ratio: row.volume_ratio_20,
    }
}
