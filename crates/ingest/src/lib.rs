//! Ingestion stage logic, with no transport in it: bars in, candles (and refusals) out.
//!
//! - [`stage::IngestStage`]: the state machine a runner drives: validation, order and
//!   duplicate checks per series ([`gate`]), higher intervals built from lower ones
//!   ([`aggregate`]);
//! - [`timeline`]: several candle files merged by bar time, the order replays and backtests
//!   both use;
//! - sources: [`replay`] (real candle files, read with `tradeflow_core::candle_csv`),
//!   [`binance`] (spot klines: REST backfill and the live WebSocket stream),
//!   [`synthetic`] (seeded random walks);
//! - [`resume`]: where a replay or a Binance source starts (and goes back to after an outage):
//!   each series after its last candle on `md.candles`;
//! - [`news`]: crypto news from RSS/Atom feeds and CryptoPanic onto `md.news`, each story once.

pub mod aggregate;
pub mod binance;
pub mod gate;
pub mod news;
pub mod replay;
pub mod resume;
pub mod stage;
pub mod synthetic;
pub mod timeline;

pub use stage::{IngestEvent, IngestStage, RawBar};
