//! Why a model cannot be trained.

/// A training that cannot run, each variant naming what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The settings are refused: every problem, by field.
    #[error("training settings: {}", .0.join("; "))]
    Settings(Vec<String>),
    /// Too few usable rows in a part of the split.
    #[error("too few rows: {part} has {rows}, at least {needed} are needed ({usable} usable rows of {bars} bars)")]
    TooFewRows { part: &'static str, rows: usize, needed: usize, usable: usize, bars: usize },
    /// The training part holds one class only: nothing to learn.
    #[error("the training part holds only the class {0}: nothing to learn (lower the threshold or use binary labels)")]
    OneClass(&'static str),
    #[error("logistic regression: {0}")]
    Logistic(String),
    #[error("gradient-boosted trees: {0}")]
    Gbt(String),
}
