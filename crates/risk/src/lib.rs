//! tradeflow risk: per-account state, sizing, limits and the drawdown circuit breaker.
//!
//! [`stage::RiskStage`] is pure (decisions and control state in, messages out); the worker
//! drives it over Redis, tests and the backtester drive it in-process.

pub mod account;
pub mod stage;
pub mod worker;

pub use account::{AccountConfig, BinanceAccount, ExecutorKind, RiskLimits, Sizing, parse_accounts};
pub use stage::{RiskOutput, RiskStage};

/// Starting balance of the paper accounts made when none are configured (one per profile).
pub const DEFAULT_BALANCE: f64 = 10_000.0;
