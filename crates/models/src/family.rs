//! The two model families, from well-kept crates: multinomial logistic regression
//! (`linfa-logistic`) on standardised features, and gradient-boosted trees (`forust-ml`, log
//! loss: one booster for two classes, one per class, normalised, beyond). Both serialise with
//! serde and give the same model for the same rows and seed (trees are grown single-threaded:
//! forust's parallel histogram sums may add in another order).

use forust_ml::GradientBooster;
use forust_ml::data::Matrix;
use forust_ml::objective::ObjectiveType;
use linfa::prelude::*;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::features::{FEATURE_COUNT, Features};
use crate::labels::Class;
use crate::params::{GbtParams, LogisticParams};

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Logistic,
    Gbt,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logistic => "logistic",
            Self::Gbt => "gbt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "logistic" => Some(Self::Logistic),
            "gbt" => Some(Self::Gbt),
            _ => None,
        }
    }
}

/// A family's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Params {
    Logistic(LogisticParams),
    Gbt(GbtParams),
}

impl Params {
    pub fn family(&self) -> Family {
        match self {
            Self::Logistic(_) => Family::Logistic,
            Self::Gbt(_) => Family::Gbt,
        }
    }

    /// The family's parameters from `--params` pairs, defaults for the rest.
    pub fn from_pairs(family: Family, pairs: &[(String, String)]) -> Result<Self, Vec<String>> {
        match family {
            Family::Logistic => LogisticParams::from_pairs(pairs).map(Self::Logistic),
            Family::Gbt => GbtParams::from_pairs(pairs).map(Self::Gbt),
        }
    }
}

/// A fitted model.
#[derive(Debug, Serialize, Deserialize)]
pub struct Model {
    pub classes: Vec<Class>,
    body: Body,
}

#[derive(Serialize, Deserialize)]
enum Body {
    Logistic {
        /// Per-feature mean and scale of the training rows.
        mean: Vec<f64>,
        scale: Vec<f64>,
        /// Over class indices (into `classes`) present in the training rows.
        fitted: MultiFittedLogisticRegression<f64, usize>,
    },
    Gbt {
        /// One booster (P(last class)) for two classes, one per class beyond.
        boosters: Vec<GradientBooster>,
    },
}

impl std::fmt::Debug for Body {
    // forust's booster has no Debug: its size says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Logistic { fitted, .. } => f.debug_struct("Logistic").field("params", fitted.params()).finish(),
            Self::Gbt { boosters } => f
                .debug_struct("Gbt")
                .field("boosters", &boosters.len())
                .field("trees", &boosters.iter().map(|b| b.trees.len()).sum::<usize>())
                .finish(),
        }
    }
}

impl Model {
    pub fn family(&self) -> Family {
        match self.body {
            Body::Logistic { .. } => Family::Logistic,
            Body::Gbt { .. } => Family::Gbt,
        }
    }

    /// Fits `params`'s family on `rows` with class indices `labels` (into `classes`).
    pub fn fit(
        params: &Params,
        classes: &[Class],
        rows: &[Features],
        labels: &[usize],
        seed: u64,
    ) -> Result<Self, TrainError> {
        let body = match params {
            Params::Logistic(p) => fit_logistic(p, rows, labels)?,
            Params::Gbt(p) => fit_gbt(p, classes.len(), rows, labels, seed)?,
        };
        Ok(Self { classes: classes.to_vec(), body })
    }

    /// The class probabilities of one row, in the order of `classes`, written into `out`.
    pub fn predict_into(&self, x: &Features, out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        match &self.body {
            Body::Logistic { mean, scale, fitted } => {
                let z = Array2::from_shape_fn((1, FEATURE_COUNT), |(_, j)| (x[j] - mean[j]) / scale[j]);
                let p = fitted.predict_probabilities(&z);
                for (i, &c) in fitted.classes().iter().enumerate() {
                    out[c] = p[[0, i]];
                }
            }
            Body::Gbt { boosters } => {
                if let [only] = boosters.as_slice() {
                    let p = sigmoid(raw_score(only, x));
                    out[0] = 1.0 - p;
                    out[1] = p;
                } else {
                    let mut sum = 0.0;
                    for (o, b) in out.iter_mut().zip(boosters) {
                        *o = sigmoid(raw_score(b, x));
                        sum += *o;
                    }
                    if sum > 0.0 {
                        out.iter_mut().for_each(|o| *o /= sum);
                    }
                }
            }
        }
    }

    /// The class probabilities of one row.
    pub fn predict(&self, x: &Features) -> Vec<f64> {
        let mut out = vec![0.0; self.classes.len()];
        self.predict_into(x, &mut out);
        out
    }

    /// Probabilities of many rows (logistic in one matrix product).
    pub fn predict_many(&self, rows: &[Features]) -> Vec<Vec<f64>> {
        rows.iter().map(|r| self.predict(r)).collect()
    }
}

/// A booster's raw score (log-odds) of one row: its base score plus each tree's leaf, through
/// forust's own row walk (no allocation per tree, unlike its matrix `predict`).
fn raw_score(b: &GradientBooster, x: &Features) -> f64 {
    b.base_score + b.trees.iter().map(|t| t.predict_row_from_row_slice(x, &b.missing)).sum::<f64>()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Index of the highest probability (ties to the first).
pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

fn fit_logistic(p: &LogisticParams, rows: &[Features], labels: &[usize]) -> Result<Body, TrainError> {
    let n = rows.len() as f64;
    let mut mean = vec![0.0; FEATURE_COUNT];
    let mut scale = vec![0.0; FEATURE_COUNT];
    for r in rows {
        for j in 0..FEATURE_COUNT {
            mean[j] += r[j] / n;
        }
    }
    for r in rows {
        for j in 0..FEATURE_COUNT {
            scale[j] += (r[j] - mean[j]).powi(2) / n;
        }
    }
    // A constant feature keeps scale 1 (it is then 0 everywhere).
    for s in &mut scale {
        *s = if *s > 0.0 { s.sqrt() } else { 1.0 };
    }
    let x = Array2::from_shape_fn((rows.len(), FEATURE_COUNT), |(i, j)| (rows[i][j] - mean[j]) / scale[j]);
    let y = Array1::from_vec(labels.to_vec());
    let fitted = MultiLogisticRegression::default()
        .alpha(p.alpha)
        .max_iterations(p.max_iterations)
        .gradient_tolerance(p.gradient_tolerance)
        .fit(&Dataset::new(x, y))
        .map_err(|e| TrainError::Logistic(e.to_string()))?;
    Ok(Body::Logistic { mean, scale, fitted })
}

fn fit_gbt(p: &GbtParams, classes: usize, rows: &[Features], labels: &[usize], seed: u64) -> Result<Body, TrainError> {
    // forust reads a column-major matrix.
    let n = rows.len();
    let mut data = vec![0.0; n * FEATURE_COUNT];
    for (i, r) in rows.iter().enumerate() {
        for j in 0..FEATURE_COUNT {
            data[j * n + i] = r[j];
        }
    }
    let matrix = Matrix::new(&data, n, FEATURE_COUNT);
    let targets: Vec<usize> = if classes == 2 { vec![1] } else { (0..classes).collect() };
    let mut boosters = Vec::with_capacity(targets.len());
    for c in targets {
        let y: Vec<f64> = labels.iter().map(|&l| if l == c { 1.0 } else { 0.0 }).collect();
        let mut b = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(p.iterations)
            .set_learning_rate(p.learning_rate)
            .set_max_depth(p.max_depth)
            .set_min_leaf_weight(p.min_leaf_weight)
            .set_l2(p.l2)
            .set_nbins(p.nbins)
            .set_seed(seed)
            .set_parallel(false);
        b.fit_unweighted(&matrix, &y, None).map_err(|e| TrainError::Gbt(e.to_string()))?;
        boosters.push(b);
    }
    Ok(Body::Gbt { boosters })
}
