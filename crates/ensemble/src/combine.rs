//! Combination methods: the signals that arrived for one candle → action and confidence.

use tradeflow_core::signal::Action;

use crate::profile::Method;

/// A vote: one answering model's action, confidence and weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vote {
    pub action: Action,
    pub confidence: f64,
    pub weight: f64,
}

fn direction(a: Action) -> f64 {
    match a {
        Action::Long => 1.0,
        Action::Short => -1.0,
        Action::Hold => 0.0,
    }
}

/// Combines `votes` (no error signals among them). No votes: hold with confidence 0. A result
/// below `min_confidence` is hold too (confidence kept, so the log shows how close it was).
pub fn combine(method: Method, votes: &[Vote], min_confidence: f64) -> (Action, f64) {
    if votes.is_empty() {
        return (Action::Hold, 0.0);
    }
    let total_weight: f64 = votes.iter().map(|v| v.weight).sum();
    let (action, confidence) = match method {
        Method::WeightedVote => {
            let weight_of = |a: Action| votes.iter().filter(|v| v.action == a).map(|v| v.weight).sum::<f64>();
            let (long, short, hold) = (weight_of(Action::Long), weight_of(Action::Short), weight_of(Action::Hold));
            // Ties go to hold: a split ensemble does not trade.
            if long > short && long > hold {
                (Action::Long, long / total_weight)
            } else if short > long && short > hold {
                (Action::Short, short / total_weight)
            } else {
                (Action::Hold, hold / total_weight)
            }
        }
        Method::ConfidenceWeightedMean => {
            let mean = votes.iter().map(|v| v.weight * v.confidence * direction(v.action)).sum::<f64>() / total_weight;
            let action = if mean > 0.0 {
                Action::Long
            } else if mean < 0.0 {
                Action::Short
            } else {
                Action::Hold
            };
            (action, mean.abs())
        }
        Method::Majority => {
            let count = |a: Action| votes.iter().filter(|v| v.action == a).count();
            let mean_conf = |a: Action| {
                let vs: Vec<f64> = votes.iter().filter(|v| v.action == a).map(|v| v.confidence).collect();
                vs.iter().sum::<f64>() / vs.len().max(1) as f64
            };
            match [Action::Long, Action::Short, Action::Hold].into_iter().find(|a| 2 * count(*a) > votes.len()) {
                Some(a) => (a, mean_conf(a)),
                None => (Action::Hold, 0.0),
            }
        }
        Method::Unanimous => {
            let first = votes[0].action;
            if votes.iter().all(|v| v.action == first) {
                (first, votes.iter().map(|v| v.confidence).sum::<f64>() / votes.len() as f64)
            } else {
                (Action::Hold, 0.0)
            }
        }
    };
    let confidence = if confidence.is_finite() { confidence.clamp(0.0, 1.0) } else { 0.0 };
    if action != Action::Hold && confidence < min_confidence {
        (Action::Hold, confidence)
    } else {
        (action, confidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn v(action: Action, confidence: f64, weight: f64) -> Vote {
        Vote { action, confidence, weight }
    }

    #[test]
    fn weighted_vote_counts_weight_and_ties_hold() {
        let votes = [v(Long, 0.9, 2.0), v(Short, 0.9, 1.0), v(Hold, 0.0, 0.5)];
        assert_eq!(combine(Method::WeightedVote, &votes, 0.0), (Long, 2.0 / 3.5));
        let tie = [v(Long, 0.9, 1.0), v(Short, 0.9, 1.0)];
        assert_eq!(combine(Method::WeightedVote, &tie, 0.0).0, Hold);
    }

    #[test]
    fn confidence_weighted_mean_has_sign_and_size() {
        let votes = [v(Long, 0.8, 1.0), v(Short, 0.2, 1.0), v(Hold, 0.0, 2.0)];
        let (a, c) = combine(Method::ConfidenceWeightedMean, &votes, 0.0);
        assert_eq!(a, Long);
        assert!((c - 0.6 / 4.0).abs() < 1e-12);
        assert_eq!(combine(Method::ConfidenceWeightedMean, &votes, 0.2), (Hold, c), "below min_confidence");
    }

    #[test]
    fn majority_and_unanimity() {
        let votes = [v(Long, 0.6, 1.0), v(Long, 0.8, 1.0), v(Short, 0.9, 5.0)];
        assert_eq!(combine(Method::Majority, &votes, 0.0), (Long, 0.7));
        assert_eq!(combine(Method::Unanimous, &votes, 0.0), (Hold, 0.0));
        let agree = [v(Short, 0.5, 1.0), v(Short, 0.7, 1.0)];
        assert_eq!(combine(Method::Unanimous, &agree, 0.0), (Short, 0.6));
        assert_eq!(combine(Method::Majority, &[v(Long, 1.0, 1.0), v(Short, 1.0, 1.0)], 0.0), (Hold, 0.0));
        assert_eq!(combine(Method::Majority, &[], 0.0), (Hold, 0.0));
    }
}
