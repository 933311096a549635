//! A `train` job's parameters as data: `tradeflow models train`'s flags by name, as a
//! submission carries them (`POST /api/v1/tasks/train`) and the jobs worker reads them. The
//! edge checks them with [`TrainParams::from_api`] before the job is queued.

use serde::{Deserialize, Serialize};

use crate::family::Family;

/// What a `train` job does: train a version from parameters, or retrain a model (`{"name",
/// "retrain": true}`: a new version with the stored settings of its deployed version, or of its
/// latest when none is deployed, on the same source up to its latest bar, through the same
/// gate; `tradeflow models retrain`). A parameter of the `train` kind rather than a kind of its
/// own: both end in the same registry entry, under the same quotas and limits.
#[derive(Debug, Clone)]
pub enum TrainJob {
    Train(Box<TrainParams>),
    Retrain(RetrainParams),
}

/// A retrain's parameters: the model's name, nothing else (the settings are the stored ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainParams {
    pub name: String,
    /// Always `true` (what tells a retrain from a training).
    pub retrain: bool,
}

impl TrainJob {
    /// A training or a retrain (the `retrain` field tells), with every problem named.
    pub fn from_api(json: &serde_json::Value) -> Result<TrainJob, Vec<String>> {
        if json.get("retrain").is_none() {
            return TrainParams::from_api(json).map(|p| TrainJob::Train(Box::new(p)));
        }
        let p: RetrainParams = serde_json::from_value(json.clone())
            .map_err(|e| vec![format!("params: {e} (a retrain takes only name and retrain: true)")])?;
        let mut problems = Vec::new();
        if !p.retrain {
            problems.push("retrain: expected true (leave it out to train from parameters)".to_string());
        }
        if !valid_name(&p.name) {
            problems.push(name_problem(&p.name));
        }
        if problems.is_empty() { Ok(TrainJob::Retrain(p)) } else { Err(problems) }
    }

    /// The model's registry name.
    pub fn name(&self) -> &str {
        match self {
            TrainJob::Train(p) => &p.name,
            TrainJob::Retrain(p) => &p.name,
        }
    }
}

/// A registry name: 1-64 of A-Z a-z 0-9 _ . -
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn name_problem(name: &str) -> String {
    format!("name {name:?}: 1-64 of A-Z a-z 0-9 _ . - (without the ml: prefix)")
}

/// A `train` job's parameters (`POST /api/v1/tasks/train`): `tradeflow models train`'s flags
/// by name, over the bundled demo feed or a dataset of the jobs workers' datasets directory
/// (no file on the server can be named over the API).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    pub name: String,
    pub family: String,
    /// `SYMBOL:INTERVAL` or `SOURCE:SYMBOL:INTERVAL`: a dataset instead of the demo feed.
    #[serde(default)]
    pub dataset: Option<String>,
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
        if !valid_name(&p.name) {
            problems.push(name_problem(&p.name));
        }
        if let Some(d) = &p.dataset {
            let parts = d.split(':').count();
            if !(2..=3).contains(&parts) || d.split(':').any(str::is_empty) || d.len() > 100 {
                problems.push(format!("dataset {d:?}: expected SYMBOL:INTERVAL or SOURCE:SYMBOL:INTERVAL"));
            }
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

    #[test]
    fn a_retrain_takes_a_name_only() {
        let r = TrainJob::from_api(&serde_json::json!({"name": "demo", "retrain": true})).unwrap();
        assert!(matches!(&r, TrainJob::Retrain(p) if p.name == "demo"), "{r:?}");
        assert_eq!(r.name(), "demo");
        let e = TrainJob::from_api(&serde_json::json!({"name": "ml:x", "retrain": false})).unwrap_err().join("\n");
        assert!(e.contains("retrain: expected true") && e.contains("name \"ml:x\""), "{e}");
        let e = TrainJob::from_api(&serde_json::json!({"name": "a", "retrain": true, "family": "gbt"})).unwrap_err();
        assert!(e[0].contains("family"), "{e:?}");
        let t =
            TrainJob::from_api(&serde_json::json!({"name": "a", "family": "gbt", "dataset": "BTCUSDT:1h"})).unwrap();
        assert!(matches!(&t, TrainJob::Train(p) if p.dataset.as_deref() == Some("BTCUSDT:1h")), "{t:?}");
        let e =
            TrainJob::from_api(&serde_json::json!({"name": "a", "family": "gbt", "dataset": "BTCUSDT"})).unwrap_err();
        assert!(e[0].starts_with("dataset"), "{e:?}");
    }
}
