//! The learners' parameters (`--params k=v`), per family, with their defaults; every problem
//! is reported at once, by key.

use serde::{Deserialize, Serialize};

/// Logistic regression (`linfa-logistic`, multinomial, fitted by L-BFGS).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    /// L2 penalty.
    pub alpha: f64,
    pub max_iterations: u64,
    pub gradient_tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self { alpha: 1.0, max_iterations: 200, gradient_tolerance: 1e-4 }
    }
}

/// Gradient-boosted trees (`forust-ml`, log loss; one booster per class beyond two).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GbtParams {
    pub iterations: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    pub min_leaf_weight: f32,
    /// L2 penalty on the leaf weights.
    pub l2: f32,
    /// Histogram bins per feature.
    pub nbins: u16,
}

impl Default for GbtParams {
    fn default() -> Self {
        Self { iterations: 200, learning_rate: 0.05, max_depth: 6, min_leaf_weight: 20.0, l2: 1.0, nbins: 64 }
    }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str, problems: &mut Vec<String>) -> Option<T> {
    match value.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            problems.push(format!("--params {key}={value}: not a valid {key}"));
            None
        }
    }
}

impl LogisticParams {
    pub const KEYS: &'static str = "alpha, max_iterations, gradient_tolerance";

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, Vec<String>> {
        let mut p = Self::default();
        let mut problems = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "alpha" => p.alpha = parse(k, v, &mut problems).unwrap_or(p.alpha),
                "max_iterations" => p.max_iterations = parse(k, v, &mut problems).unwrap_or(p.max_iterations),
                "gradient_tolerance" => {
                    p.gradient_tolerance = parse(k, v, &mut problems).unwrap_or(p.gradient_tolerance)
                }
                _ => problems.push(format!("--params {k}: unknown for logistic; expected one of {}", Self::KEYS)),
            }
        }
        if !(p.alpha.is_finite() && p.alpha >= 0.0) {
            problems.push(format!("--params alpha={}: must be >= 0", p.alpha));
        }
        if p.max_iterations == 0 {
            problems.push("--params max_iterations=0: must be at least 1".into());
        }
        if !(p.gradient_tolerance.is_finite() && p.gradient_tolerance > 0.0) {
            problems.push(format!("--params gradient_tolerance={}: must be > 0", p.gradient_tolerance));
        }
        if problems.is_empty() { Ok(p) } else { Err(problems) }
    }
}

impl GbtParams {
    pub const KEYS: &'static str = "iterations, learning_rate, max_depth, min_leaf_weight, l2, nbins";

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, Vec<String>> {
        let mut p = Self::default();
        let mut problems = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "iterations" => p.iterations = parse(k, v, &mut problems).unwrap_or(p.iterations),
                "learning_rate" => p.learning_rate = parse(k, v, &mut problems).unwrap_or(p.learning_rate),
                "max_depth" => p.max_depth = parse(k, v, &mut problems).unwrap_or(p.max_depth),
                "min_leaf_weight" => p.min_leaf_weight = parse(k, v, &mut problems).unwrap_or(p.min_leaf_weight),
                "l2" => p.l2 = parse(k, v, &mut problems).unwrap_or(p.l2),
                "nbins" => p.nbins = parse(k, v, &mut problems).unwrap_or(p.nbins),
                _ => problems.push(format!("--params {k}: unknown for gbt; expected one of {}", Self::KEYS)),
            }
        }
        if p.iterations == 0 || p.iterations > 10_000 {
            problems.push(format!("--params iterations={}: must be 1..=10000", p.iterations));
        }
        if !(p.learning_rate.is_finite() && p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            problems.push(format!("--params learning_rate={}: must be in (0, 1]", p.learning_rate));
        }
        if p.max_depth == 0 || p.max_depth > 16 {
            problems.push(format!("--params max_depth={}: must be 1..=16", p.max_depth));
        }
        if !(p.min_leaf_weight.is_finite() && p.min_leaf_weight >= 0.0) {
            problems.push(format!("--params min_leaf_weight={}: must be >= 0", p.min_leaf_weight));
        }
        if !(p.l2.is_finite() && p.l2 >= 0.0) {
            problems.push(format!("--params l2={}: must be >= 0", p.l2));
        }
        if p.nbins < 2 {
            problems.push(format!("--params nbins={}: must be at least 2", p.nbins));
        }
        if problems.is_empty() { Ok(p) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_problem_is_named() {
        let e = GbtParams::from_pairs(&pairs(&[("iterations", "x"), ("max_depth", "0"), ("depth", "3")])).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().any(|p| p.contains("iterations=x")));
        assert!(e.iter().any(|p| p.contains("depth: unknown for gbt")));
        assert_eq!(GbtParams::from_pairs(&pairs(&[("iterations", "50")])).unwrap().iterations, 50);
        assert!(LogisticParams::from_pairs(&pairs(&[("alpha", "-1")])).is_err());
    }
}
