//! Labels: the forward return over `horizon` bars, classified.

use serde::{Deserialize, Serialize};
use tradeflow_core::signal::Action;

/// A label class; its action is what a signal of the class does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Short,
    Hold,
    Long,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::Hold => "hold",
            Self::Long => "long",
        }
    }

    pub fn action(self) -> Action {
        match self {
            Self::Short => Action::Short,
            Self::Hold => Action::Hold,
            Self::Long => Action::Long,
        }
    }
}

/// How a forward return becomes a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// `long` above `threshold`, `short` below `-threshold`, `hold` between.
    Ternary,
    /// `long` when the return is above `threshold`, `short` otherwise (up / down).
    Binary,
}

/// The labels a model learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelSpec {
    /// Bars ahead (at least 1).
    pub horizon: usize,
    /// A simple return, e.g. 0.002 for 0.2 %.
    pub threshold: f64,
    pub kind: LabelKind,
}

impl LabelSpec {
    /// The classes in the order of the models' probabilities.
    pub fn classes(&self) -> &'static [Class] {
        match self.kind {
            LabelKind::Ternary => &[Class::Short, Class::Hold, Class::Long],
            LabelKind::Binary => &[Class::Short, Class::Long],
        }
    }

    /// Every problem of the specification, by field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.horizon == 0 {
            p.push("horizon: must be at least 1 bar".to_string());
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            p.push(format!("threshold: must be a finite return >= 0, got {}", self.threshold));
        }
        p
    }

    /// The class of a simple return.
    pub fn classify(&self, ret: f64) -> Class {
        match self.kind {
            LabelKind::Binary if ret > self.threshold => Class::Long,
            LabelKind::Binary => Class::Short,
            LabelKind::Ternary if ret > self.threshold => Class::Long,
            LabelKind::Ternary if ret < -self.threshold => Class::Short,
            LabelKind::Ternary => Class::Hold,
        }
    }

    /// The index of `class` among [`LabelSpec::classes`].
    pub fn index_of(&self, class: Class) -> Option<usize> {
        self.classes().iter().position(|c| *c == class)
    }

    /// The label of each close: the class of the return from it to the close `horizon` bars
    /// later, `None` for the last `horizon` closes (their future is not known).
    pub fn label(&self, closes: &[f64]) -> Vec<Option<Class>> {
        (0..closes.len())
            .map(|i| {
                let later = *closes.get(i + self.horizon)?;
                let now = closes[i];
                (now > 0.0).then(|| self.classify(later / now - 1.0))
            })
            .collect()
    }

    /// The move that ended at each close: the class of the return over the `horizon` bars
    /// before it (known at that close), `None` for the first `horizon`. The previous-move
    /// baseline predicts it.
    pub fn previous_move(&self, closes: &[f64]) -> Vec<Option<Class>> {
        (0..closes.len())
            .map(|i| {
                let before = closes[i.checked_sub(self.horizon)?];
                (before > 0.0).then(|| self.classify(closes[i] / before - 1.0))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_look_horizon_bars_ahead() {
        let spec = LabelSpec { horizon: 2, threshold: 0.01, kind: LabelKind::Ternary };
        let closes = [100.0, 100.5, 102.0, 99.0, 99.5];
        // 100 → 102 long; 100.5 → 99 short; 102 → 99.5 short; the last two unknown.
        assert_eq!(spec.label(&closes), vec![Some(Class::Long), Some(Class::Short), Some(Class::Short), None, None]);
        assert_eq!(spec.previous_move(&closes)[..3], [None, None, Some(Class::Long)]);
        let binary = LabelSpec { horizon: 1, threshold: 0.0, kind: LabelKind::Binary };
        assert_eq!(binary.label(&[1.0, 1.0, 2.0]), vec![Some(Class::Short), Some(Class::Long), None]);
        assert_eq!(LabelSpec { horizon: 0, threshold: f64::NAN, ..spec }.problems().len(), 2);
    }
}
