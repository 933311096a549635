//! Errors of building indicators and of feeding an [`IndicatorSet`](crate::IndicatorSet).

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum IndicatorError {
    /// A period below what the indicator needs (0 everywhere; 1 where a difference is smoothed).
    #[error("{indicator}: period {period} is invalid, the minimum is {min}")]
    InvalidPeriod { indicator: &'static str, period: usize, min: usize },
    /// Any other parameter the indicator cannot work with.
    #[error("{indicator}: {reason}")]
    InvalidParameter { indicator: &'static str, reason: String },
    /// A candle that does not come after the previous one: applying it would count a bar twice
    /// or out of order in every window, so it is refused and the state is left untouched.
    #[error("candle open time {open_time} is not after the previous candle's {previous}")]
    OutOfOrder { previous: i64, open_time: i64 },
}
