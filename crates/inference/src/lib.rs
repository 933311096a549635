//! Inference: candles in, one [`Signal`](tradeflow_core::signal::Signal) per model out.
//!
//! - [`condition`]: the market condition every model sees (trend, phase, support and
//!   resistance, volatility, volume);
//! - [`rules`]: the rule strategies (RSI, MACD, Bollinger Bands, volume, stochastic) and their
//!   composite;
//! - [`sma_cross`]: the SMA crossover model (backtesting.py's reference strategy), with its
//!   streaming per-series state;
//! - [`stage`]: the pure state machine (indicator state per series, rule models, signals, and
//!   the context the LLM analysts read);
//! - [`ml`]: learned models (`ml:NAME`) as the stage serves them, and the rows a training reads;
//! - [`llm`]: LLM analysts (OpenAI-compatible and Anthropic), one signal each per candle;
//! - [`worker`]: the bus handler that drives the stage and the analysts over `md.candles`;
//! - [`engine`]: the models as configured (`--models`, `--llm-config`), built alike for the
//!   workers, backtests and the edge, and the stage run over a series for its last bar;
//! - [`strategy`]: the rule models in words, the market condition in a sentence, and which
//!   strategies suit it.

pub mod condition;
pub mod engine;
pub mod llm;
pub mod ml;
pub mod news;
pub mod rules;
pub mod sma_cross;
pub mod stage;
pub mod strategy;
pub mod worker;

pub use stage::{InferenceStage, Inferred, ModelContext, StageConfig};
