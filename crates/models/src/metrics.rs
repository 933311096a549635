//! Classification figures of a part (validation, test) for a model or a baseline. A figure
//! that cannot be computed is `None` (JSON `null`) and `notes` say why.

use serde::{Deserialize, Serialize};

use crate::labels::Class;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassFigures {
    pub class: Class,
    /// Rows of this class.
    pub support: usize,
    /// Share of the part's rows of this class.
    pub share: f64,
    /// `None` when the class was never predicted.
    pub precision: Option<f64>,
    /// `None` when the class never occurs.
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// One-vs-rest ROC AUC of the class's probability; `None` without probabilities or when
    /// the class is absent or alone.
    pub roc_auc: Option<f64>,
}

/// The figures of one set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub rows: usize,
    pub accuracy: Option<f64>,
    /// Mean recall over the classes that occur.
    pub balanced_accuracy: Option<f64>,
    /// Mean negative log-likelihood of the true class (probabilities clipped at 1e-15);
    /// `None` without probabilities.
    pub log_loss: Option<f64>,
    /// Mean of the per-class AUCs that exist.
    pub roc_auc_macro: Option<f64>,
    pub classes: Vec<ClassFigures>,
    /// `confusion[true][predicted]`, classes in the order of `classes`.
    pub confusion: Vec<Vec<usize>>,
    pub notes: Vec<String>,
}

/// Figures of `predicted` (class indices) against `truth`, with `probabilities` (one row of
/// class probabilities per prediction) when the predictor gives them.
pub fn figures(classes: &[Class], truth: &[usize], predicted: &[usize], probabilities: Option<&[Vec<f64>]>) -> Figures {
    let k = classes.len();
    let n = truth.len();
    let mut notes = Vec::new();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let accuracy = (n > 0).then(|| correct as f64 / n as f64);
    if n == 0 {
        notes.push("no rows in this part".to_string());
    }
    let mut per_class = Vec::with_capacity(k);
    for (c, &class) in classes.iter().enumerate() {
        let support: usize = confusion[c].iter().sum();
        let predicted_as: usize = (0..k).map(|t| confusion[t][c]).sum();
        let tp = confusion[c][c] as f64;
        let precision = (predicted_as > 0).then(|| tp / predicted_as as f64);
        let recall = (support > 0).then(|| tp / support as f64);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        if predicted_as == 0 && n > 0 {
            notes.push(format!("{}: never predicted, precision is null", class.as_str()));
        }
        if support == 0 && n > 0 {
            notes.push(format!("{}: absent from this part, recall and AUC are null", class.as_str()));
        }
        let roc_auc = probabilities.and_then(|p| auc(truth, p, c));
        per_class.push(ClassFigures {
            class,
            support,
            share: if n > 0 { support as f64 / n as f64 } else { 0.0 },
            precision,
            recall,
            f1,
            roc_auc,
        });
    }
    let recalls: Vec<f64> = per_class.iter().filter_map(|c| c.recall).collect();
    let balanced_accuracy = (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64);
    let log_loss = probabilities
        .filter(|_| n > 0)
        .map(|p| truth.iter().zip(p).map(|(&t, row)| -row[t].clamp(1e-15, 1.0).ln()).sum::<f64>() / n as f64);
    if probabilities.is_none() {
        notes.push("no class probabilities: log loss and ROC AUC are null".to_string());
    }
    let aucs: Vec<f64> = per_class.iter().filter_map(|c| c.roc_auc).collect();
    let roc_auc_macro = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
    Figures { rows: n, accuracy, balanced_accuracy, log_loss, roc_auc_macro, classes: per_class, confusion, notes }
}

/// The one-vs-rest ROC AUC of class `c`: the probability that a row of the class scores above
/// a row of another (ties count half), by ranks (Mann-Whitney U).
fn auc(truth: &[usize], probabilities: &[Vec<f64>], c: usize) -> Option<f64> {
    let mut scored: Vec<(f64, bool)> = truth.iter().zip(probabilities).map(|(&t, p)| (p[c], t == c)).collect();
    let positives = scored.iter().filter(|s| s.1).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks (1-based) over ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j + 1 < scored.len() && scored[j + 1].0 == scored[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * scored[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_small_case() {
        let classes = [Class::Short, Class::Long];
        let truth = [0, 0, 1, 1];
        let predicted = [0, 1, 1, 1];
        let probs = vec![vec![0.9, 0.1], vec![0.4, 0.6], vec![0.3, 0.7], vec![0.2, 0.8]];
        let f = figures(&classes, &truth, &predicted, Some(&probs));
        assert_eq!(f.accuracy, Some(0.75));
        assert_eq!(f.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(f.classes[0].precision, Some(1.0));
        assert_eq!(f.classes[0].recall, Some(0.5));
        assert_eq!(f.classes[1].precision, Some(2.0 / 3.0));
        assert_eq!(f.balanced_accuracy, Some(0.75));
        // Long scores: positives 0.7, 0.8; negatives 0.1, 0.6: every pair ordered.
        assert_eq!(f.classes[1].roc_auc, Some(1.0));
        let ll = -(0.9f64.ln() + 0.4f64.ln() + 0.7f64.ln() + 0.8f64.ln()) / 4.0;
        assert!((f.log_loss.unwrap() - ll).abs() < 1e-12);
        let none = figures(&classes, &truth, &[0, 0, 0, 0], None);
        assert_eq!(none.log_loss, None);
        assert_eq!(none.classes[1].precision, None);
        assert!(none.notes.iter().any(|n| n.contains("long: never predicted")));
    }
}
