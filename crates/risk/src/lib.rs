//! tradeflow risk: per-account state, sizing, limits and the drawdown circuit breaker.
//!
//! [`stage::RiskStage`] is pure (decisions and control state in, messages out); the worker
//! drives it over Redis, tests and the backtester drive it in-process.

pub mod account;
pub mod stage;
pub mod worker;

pub use account::{AccountConfig, BinanceAccount, ExecutorKind, RiskLimits, Sizing, parse_accounts};
pub use stage::{RiskOutput, RiskStage};
