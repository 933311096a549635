//! tradeflow's domain vocabulary: what every stage agrees on, with no transport in it.
//!
//! The bus carries [`Payload`] values; each one names its kind and schema version so that a
//! consumer can refuse what it does not understand instead of guessing.

pub mod candle_csv;
pub mod control;
pub mod decision;
pub mod execution;
pub mod ids;
pub mod job;
pub mod market;
pub mod news;
pub mod numfmt;
pub mod order;
pub mod payload;
pub mod report;
pub mod request;
pub mod signal;
pub mod time;

pub use ids::MessageId;
pub use payload::Payload;
