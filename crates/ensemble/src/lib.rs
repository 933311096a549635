//! Ensemble: per profile, the signals of one candle joined into one decision.
//!
//! - [`profile`]: what a profile is (models and weights, method, minimum confidence, quorum,
//!   deadline) and its validation;
//! - [`combine`]: the combination methods, pure functions of the signals that arrived;
//! - [`stage`]: the join state machine (signals and clock ticks in, decisions out), which a
//!   runner drives over the bus and the backtester drives in process.

pub mod combine;
pub mod profile;
mod small_map;
pub mod stage;
pub mod worker;

pub use profile::{Method, Profile};
pub use stage::EnsembleStage;
