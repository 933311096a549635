//! Why a backtest could not run.

use tradeflow_ingest::timeline::FeedError;

use crate::engine::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// `--strict`: the first row that is not a candle stops the run.
    #[error("--strict: {0}")]
    Refused(Box<Refusal>),
    /// The executor refused a message of risk: the stages disagree, which is a bug.
    #[error("the executor refused a message of risk: {0}")]
    Exec(String),
    #[error("no candle in the input{0}")]
    Empty(String),
    /// Stopped on request ([`crate::Sink::cancelled`]).
    #[error("cancelled")]
    Cancelled,
}
