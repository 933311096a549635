//! Why a backtest could not run.

use tradeflow_ingest::timeline::FeedError;

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// `--strict`: the first row that is not a candle stops the run.
    #[error("{symbol} bar at {}: refused ({kind}): {reason}", open_time.map_or("an unreadable row".to_string(), |t| t.to_string()))]
    Refused { symbol: String, open_time: Option<i64>, kind: String, reason: String },
    /// The executor refused a message of risk: the stages disagree, which is a bug.
    #[error("the executor refused a message of risk: {0}")]
    Exec(String),
    #[error("no candle in the input{0}")]
    Empty(String),
}
