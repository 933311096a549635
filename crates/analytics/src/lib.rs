//! Analytics of a run and of a live account, in one place.
//!
//! - [`trade`]: the inputs: bars and round-trip trades ([`Trade`]: entry and exit bar, time and
//!   price, side, size, pnl, commission, return, duration, exit reason);
//! - [`equity`]: the equity curve per bar as backtesting.py records it, the drawdown, the
//!   drawdown periods;
//! - [`stats`]: a backtest's summary statistics under backtesting.py 0.6.6's names and
//!   definitions ([`compute_stats`] → [`Stats`]);
//! - [`live`]: the per-update figures of live accounts the edge reports (`/analytics/*`,
//!   `/trading/leaderboard`);
//! - [`signals`]: the models' figures the edge reports (`/ai/performance`): hit rate, mean
//!   return, pooled means.
//!
//! Pure code: no I/O, no clock. Undefined figures are NaN (`null` in JSON) in [`Stats`] and
//! `None` in [`live`].

pub mod equity;
mod error;
pub mod live;
mod num;
pub mod signals;
pub mod stats;
pub mod time;
pub mod trade;

pub use equity::{DrawdownPeriod, drawdown, drawdown_periods, equity_curve};
pub use error::InputError;
pub use num::geometric_mean;
pub use stats::{Stats, StatsOptions, compute_stats};
pub use time::{Span, Timestamp};
pub use trade::{Bar, ExitReason, Fill, Side, Trade};
