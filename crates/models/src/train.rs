//! Training: labels from the closes, the split by time with a purge gap, one fit on the
//! training part, and the figures of the model and of the baselines on validation and test.

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::baselines::majority;
use crate::error::TrainError;
use crate::family::{Model, Params, argmax};
use crate::features::Features;
use crate::labels::{Class, LabelSpec};
use crate::metrics::{Figures, figures};
use crate::schema::FeatureSchema;
use crate::split::{SplitSpec, split};

/// One bar of a series, as the inference stage saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub open_time: i64,
    pub close: f64,
    /// `None` while a feature warms up.
    pub features: Option<Features>,
}

/// What to train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub labels: LabelSpec,
    pub split: SplitSpec,
    pub params: Params,
    pub seed: u64,
}

/// Fewest rows of each part.
pub const MIN_TRAIN_ROWS: usize = 50;
pub const MIN_EVAL_ROWS: usize = 20;

/// The open times `[from, to]` of a part's first and last rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
    pub rows: usize,
    /// Bar indices (0-based, of the rows given to [`train`]) of the first and last rows.
    pub first_bar: usize,
    pub last_bar: usize,
}

/// A part's figures: the model's and the baselines'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartFigures {
    pub model: Figures,
    /// Always the training part's majority class.
    pub majority: Figures,
    /// The class of the move over the `horizon` bars just ended.
    pub previous_move: Figures,
}

/// What a training measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: FeatureSchema,
    pub config: TrainConfig,
    pub bars: usize,
    pub usable_rows: usize,
    pub purge_bars: usize,
    pub train: Window,
    pub validation: Window,
    pub test: Window,
    pub majority_class: Class,
    /// Share of each class in the training part, in the order of the label classes.
    pub train_balance: Vec<f64>,
    pub validation_figures: PartFigures,
    pub test_figures: PartFigures,
    /// The walk-forward folds, when asked for ([`walk_forward`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_forward: Option<WalkForward>,
}

/// One walk-forward fold: a model fitted on every row before its test block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    pub train: Window,
    pub test: Window,
    pub accuracy: Option<f64>,
    pub majority_accuracy: Option<f64>,
    pub log_loss: Option<f64>,
}

/// Walk-forward figures: the usable rows cut into `folds + 1` blocks; fold k trains on the
/// blocks before block k and is tested on it, the `horizon` bars after the training rows purged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalkForward {
    pub folds: Vec<Fold>,
    /// Mean of the folds' test accuracies.
    pub mean_accuracy: Option<f64>,
}

impl Report {
    /// The model's accuracy on the test part.
    pub fn test_accuracy(&self) -> Option<f64> {
        self.test_figures.model.accuracy
    }
}

/// A trained model and its report.
#[derive(Debug)]
pub struct Trained {
    pub artifact: Artifact,
    pub report: Report,
}

/// Trains `config` on `rows` (one series, in time order).
pub fn train(rows: &[Row], config: &TrainConfig) -> Result<Trained, TrainError> {
    let mut problems = config.labels.problems();
    problems.extend(config.split.problems());
    if !problems.is_empty() {
        return Err(TrainError::Settings(problems));
    }
    let spec = &config.labels;
    let classes = spec.classes();
    let closes: Vec<f64> = rows.iter().map(|r| r.close).collect();
    let labels = spec.label(&closes);
    let previous = spec.previous_move(&closes);
    let usable: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].features.is_some() && labels[i].is_some()).collect();
    let parts = split(&usable, config.split, spec.horizon);
    let too_few = |part: &'static str, n: usize, needed: usize| TrainError::TooFewRows {
        part,
        rows: n,
        needed,
        usable: usable.len(),
        bars: rows.len(),
    };
    if parts.train.len() < MIN_TRAIN_ROWS {
        return Err(too_few("train", parts.train.len(), MIN_TRAIN_ROWS));
    }
    if parts.validation.len() < MIN_EVAL_ROWS {
        return Err(too_few("validation", parts.validation.len(), MIN_EVAL_ROWS));
    }
    if parts.test.len() < MIN_EVAL_ROWS {
        return Err(too_few("test", parts.test.len(), MIN_EVAL_ROWS));
    }
    let index = |c: Class| spec.index_of(c).unwrap_or(0);
    let take = |bars: &[usize]| -> (Vec<Features>, Vec<usize>) {
        bars.iter().filter_map(|&i| Some((rows[i].features?, index(labels[i]?)))).unzip()
    };
    let (x_train, y_train) = take(&parts.train);
    let mut counts = vec![0usize; classes.len()];
    for &y in &y_train {
        counts[y] += 1;
    }
    if counts.iter().filter(|&&c| c > 0).count() < 2 {
        return Err(TrainError::OneClass(classes[majority(&y_train, classes.len())].as_str()));
    }
    let model = Model::fit(&config.params, classes, &x_train, &y_train, config.seed)?;
    let majority_class = majority(&y_train, classes.len());
    let evaluate = |bars: &[usize]| -> PartFigures {
        let (x, y) = take(bars);
        let probs = model.predict_many(&x);
        let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        // Before `horizon` bars exist the previous move is unknown: the majority stands in.
        let prev: Vec<usize> = bars.iter().map(|&i| previous[i].map_or(majority_class, index)).collect();
        PartFigures {
            model: figures(classes, &y, &predicted, Some(&probs)),
            majority: figures(classes, &y, &vec![majority_class; y.len()], None),
            previous_move: figures(classes, &y, &prev, None),
        }
    };
    let window = |bars: &[usize]| Window {
        from_ms: rows[bars[0]].open_time,
        to_ms: rows[bars[bars.len() - 1]].open_time,
        rows: bars.len(),
        first_bar: bars[0],
        last_bar: bars[bars.len() - 1],
    };
    let schema = FeatureSchema::current();
    let report = Report {
        schema: schema.clone(),
        config: *config,
        bars: rows.len(),
        usable_rows: usable.len(),
        purge_bars: spec.horizon,
        train: window(&parts.train),
        validation: window(&parts.validation),
        test: window(&parts.test),
        majority_class: classes[majority_class],
        train_balance: counts.iter().map(|&c| c as f64 / y_train.len() as f64).collect(),
        validation_figures: evaluate(&parts.validation),
        test_figures: evaluate(&parts.test),
        walk_forward: None,
    };
    let artifact = Artifact { schema, labels: *spec, params: config.params, seed: config.seed, model };
    Ok(Trained { artifact, report })
}

/// Walk-forward figures of `config` on `rows` with `folds` folds (at least 1).
pub fn walk_forward(rows: &[Row], config: &TrainConfig, folds: usize) -> Result<WalkForward, TrainError> {
    if folds == 0 {
        return Err(TrainError::Settings(vec!["folds: must be at least 1".into()]));
    }
    let spec = &config.labels;
    let classes = spec.classes();
    let closes: Vec<f64> = rows.iter().map(|r| r.close).collect();
    let labels = spec.label(&closes);
    let usable: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].features.is_some() && labels[i].is_some()).collect();
    let block = usable.len() / (folds + 1);
    let index = |c: Class| spec.index_of(c).unwrap_or(0);
    let take = |bars: &[usize]| -> (Vec<Features>, Vec<usize>) {
        bars.iter().filter_map(|&i| Some((rows[i].features?, index(labels[i]?)))).unzip()
    };
    let window = |bars: &[usize]| Window {
        from_ms: rows[bars[0]].open_time,
        to_ms: rows[bars[bars.len() - 1]].open_time,
        rows: bars.len(),
        first_bar: bars[0],
        last_bar: bars[bars.len() - 1],
    };
    let mut out = Vec::with_capacity(folds);
    for k in 1..=folds {
        let train_rows = &usable[..k * block];
        let end = if k == folds { usable.len() } else { (k + 1) * block };
        let last = train_rows.last().copied().unwrap_or(0);
        let test_rows: Vec<usize> =
            usable[k * block..end].iter().copied().filter(|&b| b > last + spec.horizon).collect();
        if train_rows.len() < MIN_TRAIN_ROWS || test_rows.len() < MIN_EVAL_ROWS {
            return Err(TrainError::TooFewRows {
                part: "walk-forward fold",
                rows: train_rows.len().min(test_rows.len()),
                needed: MIN_TRAIN_ROWS,
                usable: usable.len(),
                bars: rows.len(),
            });
        }
        let (x, y) = take(train_rows);
        let model = Model::fit(&config.params, classes, &x, &y, config.seed)?;
        let (xt, yt) = take(&test_rows);
        let probs = model.predict_many(&xt);
        let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        let f = figures(classes, &yt, &predicted, Some(&probs));
        let m = figures(classes, &yt, &vec![majority(&y, classes.len()); yt.len()], None);
        out.push(Fold {
            train: window(train_rows),
            test: window(&test_rows),
            accuracy: f.accuracy,
            majority_accuracy: m.accuracy,
            log_loss: f.log_loss,
        });
    }
    let accs: Vec<f64> = out.iter().filter_map(|f| f.accuracy).collect();
    let mean_accuracy = (!accs.is_empty()).then(|| accs.iter().sum::<f64>() / accs.len() as f64);
    Ok(WalkForward { folds: out, mean_accuracy })
}
