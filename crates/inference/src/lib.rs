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
//! - [`llm`]: LLM analysts (OpenAI-compatible and Anthropic), one signal each per candle;
//! - [`worker`]: the bus handler that drives the stage and the analysts over `md.candles`.

pub mod condition;
pub mod llm;
pub mod rules;
pub mod sma_cross;
pub mod stage;
pub mod worker;

pub use stage::{InferenceStage, Inferred, ModelContext, StageConfig};
