//! What the analytics refuse: inputs that do not describe one run.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum InputError {
    #[error("no bars")]
    NoBars,
    #[error("{equity} equity values for {bars} bars")]
    EquityLength { bars: usize, equity: usize },
    #[error("trade {index}: bars {entry}..{exit} outside 0..{bars} or reversed")]
    TradeBars { index: usize, entry: usize, exit: usize, bars: usize },
    #[error("trade {index}: size {size} is not a positive number")]
    TradeSize { index: usize, size: f64 },
    #[error("first trading bar {first} outside 0..{bars}")]
    FirstTradingBar { first: usize, bars: usize },
    #[error("bar {index}: time {time_ms} is not after the previous bar's")]
    BarOrder { index: usize, time_ms: i64 },
}

/// Bars in strictly increasing time; every trade within them, entry no later than exit.
pub(crate) fn check_run(bars: &[crate::Bar], trades: &[crate::Trade]) -> Result<(), InputError> {
    if bars.is_empty() {
        return Err(InputError::NoBars);
    }
    if let Some(i) = bars.windows(2).position(|w| w[1].time_ms <= w[0].time_ms) {
        return Err(InputError::BarOrder { index: i + 1, time_ms: bars[i + 1].time_ms });
    }
    for (index, t) in trades.iter().enumerate() {
        if t.entry_bar > t.exit_bar || t.exit_bar >= bars.len() {
            return Err(InputError::TradeBars { index, entry: t.entry_bar, exit: t.exit_bar, bars: bars.len() });
        }
        if !(t.size > 0.0 && t.size.is_finite()) {
            return Err(InputError::TradeSize { index, size: t.size });
        }
    }
    Ok(())
}
