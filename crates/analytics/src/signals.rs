//! Figures of the models' signals the edge reports (`/ai/performance`), from the store's rows
//! grouped per model and action (a count with a mean or a sum each):
//!
//! - **hit rate** = calls the next bar moved their way / calls evaluated;
//! - **mean return** = Σ next-bar returns in the call's direction / calls evaluated;
//! - **pooled mean** of per-group means (confidence, latency) = Σ mean × count / Σ count.
//!
//! A figure over no call is `None`.

use crate::live::average;

/// Realised outcomes of directional calls, added group by group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcomes {
    /// Calls whose next bar is known.
    pub evaluated: i64,
    /// Of them, those the next bar moved their way.
    pub hits: i64,
    pub hit_rate: Option<f64>,
    /// A fraction: 0.01 is 1 %.
    pub mean_return: Option<f64>,
}

impl Outcomes {
    /// Adds a group of `evaluated` calls, `hits` of them hits, whose returns sum to `return_sum`.
    pub fn add(&mut self, evaluated: i64, hits: i64, return_sum: f64) {
        let sum = self.mean_return.unwrap_or(0.0) * self.evaluated as f64 + return_sum;
        self.evaluated += evaluated;
        self.hits += hits;
        if self.evaluated > 0 {
            self.hit_rate = Some(self.hits as f64 / self.evaluated as f64);
            self.mean_return = Some(sum / self.evaluated as f64);
        }
    }
}

/// The mean over groups each given as (mean, count).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PooledMean {
    sum: f64,
    count: i64,
}

impl PooledMean {
    pub fn add(&mut self, mean: f64, count: i64) {
        self.sum += mean * count as f64;
        self.count += count;
    }

    /// Σ mean × count / Σ count; `None` over no value.
    pub fn mean(&self) -> Option<f64> {
        average(self.sum, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Was crates/edge/src/routes/ai.rs's own, before the maths moved here.
    #[test]
    fn outcomes_average_over_batches() {
        let mut o = Outcomes::default();
        o.add(0, 0, 0.0);
        assert_eq!(o, Outcomes::default(), "nothing evaluated: no rate");
        o.add(2, 1, 0.02);
        o.add(2, 2, 0.06);
        assert_eq!((o.evaluated, o.hits), (4, 3));
        assert!((o.hit_rate.unwrap() - 0.75).abs() < 1e-12);
        assert!((o.mean_return.unwrap() - 0.02).abs() < 1e-12);
    }

    #[test]
    fn pooled_mean_weighs_by_count() {
        // 3 signals at 0.5 and 1 at 0.9: (1.5 + 0.9) / 4 = 0.6.
        let mut m = PooledMean::default();
        assert_eq!(m.mean(), None);
        m.add(0.5, 3);
        m.add(0.9, 1);
        assert!((m.mean().unwrap() - 0.6).abs() < 1e-12);
    }
}
