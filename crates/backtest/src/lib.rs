//! Backtests that are the live pipeline.
//!
//! [`Engine`] drives the stages' own structs (`IngestStage`, `InferenceStage`, `EnsembleStage`,
//! `RiskStage`, `ExecStage` and its paper book) in process, on the candles' own clock, with no
//! Redis and no copy of any stage's logic; a [`Sink`] keeps what the caller needs of the
//! messages they pass each other: the per-account results ([`Tape`]) or the audit rows a live
//! run would have stored ([`Records`], for parity checks). [`html`] draws an account's results
//! as one self-contained page.
//!
//! Deterministic: the same inputs give the same messages, byte for byte. LLM analysts are not
//! called: each gives a `not analysed` signal per candle ([`engine::NOT_ANALYSED`]).

pub mod engine;
pub mod error;
pub mod html;
pub mod hyperopt;
pub mod params;
pub mod records;
pub mod report;
pub mod sink;
pub mod tape;

pub use engine::{BacktestConfig, Engine, Refusal};
pub use error::BacktestError;
pub use records::Records;
pub use report::{AccountReport, Report, ReportOptions, backtest};
pub use sink::Sink;
pub use tape::Tape;

use tradeflow_ingest::timeline::Timeline;

/// Runs `config` over its feeds into `sink`; returns the timeline it read (for the bars).
pub fn run(config: &BacktestConfig, sink: &mut impl Sink) -> Result<Timeline, BacktestError> {
    let timeline = Timeline::load(&config.feeds)?;
    let mut engine = Engine::new(config)?;
    engine.run(&timeline, &config.feeds, sink)?;
    Ok(timeline)
}
