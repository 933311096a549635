//! Models that learn from the candles: features and labels ([`features`], [`labels`]), two
//! families from well-kept crates ([`family`]: logistic regression from `linfa-logistic`,
//! gradient-boosted trees from `forust-ml`), training on a split by time with a purge gap
//! ([`split`], [`train`]), honest figures ([`metrics`], [`baselines`]), the deploy gate
//! ([`gate`]) and the model file ([`artifact`]).
//!
//! Pure code: no I/O, no clock. The inference stage serves a model (it feeds
//! [`features::FeatureWindow`] the indicators and market condition it computes anyway) and the
//! CLI trains one (over rows the inference stage computed), so the features of training and of
//! serving are made by the same code from the same inputs.

pub mod artifact;
pub mod baselines;
pub mod error;
pub mod family;
pub mod features;
pub mod gate;
pub mod job;
pub mod labels;
pub mod metrics;
pub mod params;
pub mod schema;
pub mod split;
pub mod train;

pub use artifact::{Artifact, ArtifactError};
pub use error::TrainError;
pub use family::{Family, Model};
pub use features::{FEATURE_COUNT, FeatureInput, FeatureWindow, Features};
pub use gate::{GateConfig, GateFigures, GateVerdict};
pub use labels::{Class, LabelKind, LabelSpec};
pub use schema::FeatureSchema;
pub use train::{Report, TrainConfig, Trained, train};
