//! Small numeric helpers shared by the statistics.

use serde::Serializer;

/// Serialises a non-finite float (NaN, ±∞: an undefined statistic) as `null`, in every format.
pub fn finite_or_null<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() { s.serialize_f64(*x) } else { s.serialize_none() }
}

/// Arithmetic mean; NaN when empty (as numpy's).
pub fn mean_or_nan(xs: &[f64]) -> f64 {
    if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 }
}

/// Sample variance (ddof 1); NaN below two values (as pandas').
pub fn sample_var_or_nan(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean_or_nan(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
}

/// `x / y`, NaN when `y` is 0: backtesting.py's `x / (y or np.nan)`.
pub fn div_or_nan(x: f64, y: f64) -> f64 {
    if y == 0.0 { f64::NAN } else { x / y }
}

/// backtesting.py's `geometric_mean` of simple returns (fractions): `exp(mean(ln(1 + r))) − 1`;
/// 0 when some `1 + r ≤ 0` (a total loss), NaN when empty. NaN returns count as 0.
pub fn geometric_mean(returns: &[f64]) -> f64 {
    let growth: Vec<f64> = returns.iter().map(|r| if r.is_nan() { 1.0 } else { 1.0 + r }).collect();
    if growth.iter().any(|g| *g <= 0.0) {
        return 0.0;
    }
    if growth.is_empty() {
        return f64::NAN;
    }
    (growth.iter().map(|g| g.ln()).sum::<f64>() / growth.len() as f64).exp() - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_mean_by_hand() {
        // (1.1 × 0.9)^(1/2) − 1 = √0.99 − 1.
        assert!((geometric_mean(&[0.1, -0.1]) - (0.99f64.sqrt() - 1.0)).abs() < 1e-15);
        assert_eq!(geometric_mean(&[0.5, -1.0]), 0.0, "a total loss");
        assert!(geometric_mean(&[]).is_nan());
        assert!((geometric_mean(&[f64::NAN, 0.21]) - 0.1).abs() < 1e-15, "NaN counts as 0: √1.21 − 1");
    }

    #[test]
    fn moments() {
        assert!(mean_or_nan(&[]).is_nan());
        assert!(sample_var_or_nan(&[1.0]).is_nan());
        assert_eq!(sample_var_or_nan(&[1.0, 3.0]), 2.0);
        assert!(div_or_nan(1.0, 0.0).is_nan());
        let json = serde_json::to_string(&Wrap(f64::INFINITY)).unwrap();
        assert_eq!(json, "null");
    }

    struct Wrap(f64);
    impl serde::Serialize for Wrap {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            finite_or_null(&self.0, s)
        }
    }
}
