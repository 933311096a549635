//! A `train` job's parameters as data: `tradeflow models train`'s flags by name, as a
//! submission carries them (`POST /api/v1/tasks/train`) and the jobs worker reads them. The
//! edge checks them with [`TrainParams::from_api`] before the job is queued.

use serde::{Deserialize, Serialize};

use crate::family::Family;

/// A `train` job's parameters (`POST /api/v1/tasks/train`): `tradeflow models train`'s flags
/// by name, over the bundled demo feed (no file on the server can be named over the API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    pub name: String,
    pub family: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default = "one")]
    pub horizon: usize,
    #[serde(default)]
    pub threshold: f64,
    #[serde(default = "binary")]
    pub labels: String,
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default = "seed")]
    pub seed: u64,
    #[serde(default = "train_share")]
    pub train_share: f64,
    #[serde(default = "validation_share")]
    pub validation_share: f64,
    #[serde(default = "min_accuracy")]
    pub min_accuracy: f64,
    #[serde(default)]
    pub no_sharpe_gate: bool,
    #[serde(default)]
    pub no_trading_eval: bool,
    #[serde(default)]
    pub folds: usize,
}

// The command line's defaults (TrainArgs), for the fields a submission leaves out.
fn one() -> usize {
    1
}
fn binary() -> String {
    "binary".into()
}
fn seed() -> u64 {
    42
}
fn train_share() -> f64 {
    0.6
}
fn validation_share() -> f64 {
    0.2
}
fn min_accuracy() -> f64 {
    0.60
}

impl TrainParams {
    /// From JSON, with the problems a submission can be refused for, each naming its field
    /// (the learner's own parameters are checked by the worker, which knows the family's).
    pub fn from_api(json: &serde_json::Value) -> Result<TrainParams, Vec<String>> {
        let p: TrainParams = serde_json::from_value(json.clone()).map_err(|e| vec![format!("params: {e}")])?;
        let mut problems = Vec::new();
        if p.name.is_empty()
            || p.name.len() > 64
            || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            problems.push(format!("name {:?}: 1-64 of A-Z a-z 0-9 _ . - (without the ml: prefix)", p.name));
        }
        if Family::parse(&p.family).is_none() {
            problems.push(format!("family {:?}: expected logistic or gbt", p.family));
        }
        if !matches!(p.labels.as_str(), "binary" | "ternary") {
            problems.push(format!("labels {:?}: expected binary or ternary", p.labels));
        }
        for (field, v) in
            [("train_share", p.train_share), ("validation_share", p.validation_share), ("min_accuracy", p.min_accuracy)]
        {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                problems.push(format!("{field}: expected 0 to 1, got {v}"));
            }
        }
        if problems.is_empty() { Ok(p) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_command_lines_and_bad_fields_are_named() {
        let p = TrainParams::from_api(&serde_json::json!({"name": "demo", "family": "gbt"})).unwrap();
        assert_eq!((p.horizon, p.labels.as_str(), p.seed, p.train_share, p.min_accuracy), (1, "binary", 42, 0.6, 0.6));
        let e = TrainParams::from_api(
            &serde_json::json!({"name": "ml:x", "family": "forest", "labels": "x", "train_share": 2.0}),
        )
        .unwrap_err()
        .join("\n");
        for field in ["name", "family", "labels", "train_share"] {
            assert!(e.contains(field), "{field}: {e}");
        }
        assert!(
            TrainParams::from_api(&serde_json::json!({"name": "a", "family": "gbt", "csv": "/etc/passwd"}))
                .unwrap_err()[0]
                .contains("csv")
        );
    }
}
