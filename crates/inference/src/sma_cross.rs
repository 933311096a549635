//! `sma_cross`: the moving-average crossover of backtesting.py's tutorial strategy, so that a
//! backtest of ours can be checked trade for trade against the tool users know.
//!
//! Per series it keeps the last `slow` closes. At a candle where both SMAs exist for this
//! candle and the previous one:
//! - cross up (fast was strictly below slow, and is now strictly above): `long`;
//! - cross down (the mirror image): `short`;
//! - anything else, equality on either candle included: `hold`.
//!
//! The first candle that can cross is the one at index `slow` (0-based): SMA(slow) first exists
//! at index `slow − 1`, and a cross needs the candle before. A cross has confidence 1.0 (it is
//! a yes/no event, so it passes any profile's `min_confidence`), a hold 0.0. The model
//! suggests no stop loss or take profit: it leaves on the opposite cross, as the backtesting.py
//! strategy does.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tradeflow_core::numfmt;
use tradeflow_core::signal::Action;

use crate::rules::{Verdict, feats, text};

/// Parameters of the `sma_cross` model (`[rules.sma_cross]` of the inference configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmaCrossParams {
    /// Length of the fast SMA, in candles.
    pub fast: usize,
    /// Length of the slow SMA, in candles.
    pub slow: usize,
}

impl Default for SmaCrossParams {
    fn default() -> Self {
        Self { fast: 10, slow: 20 }
    }
}

/// Longest slow SMA accepted: the window is kept per series in every checkpoint.
pub const MAX_SLOW: usize = 10_000;

impl SmaCrossParams {
    /// Every problem at once, each with its key (relative to `[rules]`).
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1 <= self.fast && self.fast < self.slow) {
            problems.push(format!(
                "sma_cross.fast ({}) and sma_cross.slow ({}) must satisfy 1 <= fast < slow",
                self.fast, self.slow
            ));
        }
        if self.slow > MAX_SLOW {
            problems.push(format!("sma_cross.slow must be at most {MAX_SLOW}, got {}", self.slow));
        }
        problems
    }
}

/// The streaming state of one series: the last `slow` closes and the previous candle's SMAs.
/// Checkpointed with the series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmaCross {
    /// The parameters the window was built with: a checkpoint taken under other parameters
    /// starts over rather than mixing windows.
    params: Option<SmaCrossParams>,
    closes: VecDeque<f64>,
    /// (fast, slow) SMAs of the previous candle, once both existed.
    prev: Option<(f64, f64)>,
}

impl SmaCross {
    /// Takes in the next close of the series and gives the verdict at it, its reasoning and
    /// features only when `explain` (see [`crate::rules::evaluate`]).
    pub fn next(&mut self, close: f64, p: &SmaCrossParams, explain: bool) -> Verdict {
        if self.params != Some(*p) {
            *self = Self { params: Some(*p), closes: VecDeque::with_capacity(p.slow + 1), prev: None };
        }
        self.closes.push_back(close);
        if self.closes.len() > p.slow {
            self.closes.pop_front();
        }
        if self.closes.len() < p.slow || p.fast == 0 {
            return warming(p, explain);
        }
        // Summed afresh from the window each candle (O(slow)): no running-sum drift over long
        // series, and the same sums on every run and after every restore.
        let fast = mean(self.closes.iter().skip(p.slow - p.fast));
        let slow = mean(self.closes.iter());
        let features = feats(explain, &[("sma_fast", fast), ("sma_slow", slow)]);
        let Some((prev_fast, prev_slow)) = self.prev.replace((fast, slow)) else {
            return Verdict {
                action: Action::Hold,
                score: 0.0,
                reasoning: text(explain, || {
                    format!("SMA({}) and SMA({}) have no previous value to cross from yet", p.fast, p.slow)
                }),
                features,
            };
        };
        let (action, how) = if prev_fast < prev_slow && fast > slow {
            (Action::Long, ["crossed above", "", ""])
        } else if prev_fast > prev_slow && fast < slow {
            (Action::Short, ["crossed below", "", ""])
        } else {
            let side = if fast > slow {
                "above"
            } else if fast < slow {
                "below"
            } else {
                "on"
            };
            (Action::Hold, ["stays ", side, ": no cross"])
        };
        // `SMA(10) 1.23 <how[0..2]> SMA(20) 4.56<how[2]>`, as `format!` wrote it, without it:
        // this string is made for every candle, and `format!` was a tenth of an sma_cross run.
        let score = if action == Action::Hold { 0.0 } else { 1.0 };
        if !explain {
            return Verdict { action, score, reasoning: String::new(), features };
        }
        let mut reasoning = String::with_capacity(64);
        let sma = |s: &mut String, n: usize, value: f64| {
            s.push_str("SMA(");
            numfmt::push_u64(s, n as u64);
            s.push_str(") ");
            numfmt::push_fixed(s, value, 2);
        };
        sma(&mut reasoning, p.fast, fast);
        reasoning.push(' ');
        reasoning.push_str(how[0]);
        reasoning.push_str(how[1]);
        reasoning.push(' ');
        sma(&mut reasoning, p.slow, slow);
        reasoning.push_str(how[2]);
        Verdict { action, score, reasoning, features }
    }
}

impl SmaCross {
    /// The verdict between candles (an analysis cycle on the latest one): a cross is an event
    /// of a candle, and none happened since the last, so `hold`, with the last candle's SMAs.
    pub fn since_last(&self, p: &SmaCrossParams) -> Verdict {
        let Some((fast, slow)) = self.prev.filter(|_| self.params == Some(*p)) else { return warming(p, true) };
        let side = if fast > slow {
            "above"
        } else if fast < slow {
            "below"
        } else {
            "on"
        };
        Verdict {
            action: Action::Hold,
            score: 0.0,
            reasoning: format!(
                "SMA({}) {fast:.2} stays {side} SMA({}) {slow:.2}: no cross since the last candle",
                p.fast, p.slow
            ),
            features: vec![("sma_fast", fast), ("sma_slow", slow)],
        }
    }
}

fn mean<'a>(values: impl ExactSizeIterator<Item = &'a f64>) -> f64 {
    let n = values.len() as f64;
    values.sum::<f64>() / n
}

fn warming(p: &SmaCrossParams, explain: bool) -> Verdict {
    Verdict {
        action: Action::Hold,
        score: 0.0,
        reasoning: text(explain, || format!("warming up: SMA({}) has no value yet", p.slow)),
        features: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(closes: &[f64], p: SmaCrossParams) -> Vec<Action> {
        let mut s = SmaCross::default();
        closes.iter().map(|c| s.next(*c, &p, true).action).collect()
    }

    const P23: SmaCrossParams = SmaCrossParams { fast: 2, slow: 3 };

    #[test]
    fn reasoning_is_the_formatted_text() {
        let mut s = SmaCross::default();
        let texts: Vec<String> =
            [3.0, 2.0, 1.0, 4.0, 5.0, 1.0, 1.0, 1.0].iter().map(|c| s.next(*c, &P23, true).reasoning).collect();
        let (up, down) = (
            format!("SMA(2) {:.2} crossed above SMA(3) {:.2}", 2.5, 7.0 / 3.0),
            "SMA(2) 3.00 crossed below SMA(3) 3.33",
        );
        assert_eq!(texts[3], up);
        assert_eq!(texts[4], format!("SMA(2) {:.2} stays above SMA(3) {:.2}: no cross", 4.5, 10.0 / 3.0));
        assert_eq!(texts[5], down);
        assert_eq!(texts[6], "SMA(2) 1.00 stays below SMA(3) 2.33: no cross");
        assert_eq!(texts[7], "SMA(2) 1.00 stays on SMA(3) 1.00: no cross");
    }

    #[test]
    fn between_candles_there_is_no_cross() {
        let mut s = SmaCross::default();
        assert_eq!(s.since_last(&P23).reasoning, "warming up: SMA(3) has no value yet");
        let verdicts: Vec<Verdict> = [3.0, 2.0, 1.0, 4.0].iter().map(|c| s.next(*c, &P23, true)).collect();
        let crossed = verdicts[3].clone();
        assert_eq!(crossed.action, Action::Long);
        let now = s.since_last(&P23);
        assert_eq!((now.action, now.score), (Action::Hold, 0.0));
        assert_eq!(now.features, crossed.features);
        assert!(now.reasoning.contains("stays above"), "{}", now.reasoning);
    }

    #[test]
    fn crosses_up_and_down_after_the_warm_up() {
        // fast = SMA2, slow = SMA3. Index 2: both exist (no previous). Index 3: first possible cross.
        //   closes          3     2     1     4     5     1
        //   sma2            -   2.5   1.5   2.5   4.5   3.0
        //   sma3            -     -   2.0  2.33  3.33  3.33
        let a = run(&[3.0, 2.0, 1.0, 4.0, 5.0, 1.0], P23);
        use Action::*;
        assert_eq!(a, [Hold, Hold, Hold, Long, Hold, Short]);
    }

    #[test]
    fn equality_on_either_candle_is_no_cross() {
        use Action::*;
        // Equal on the previous candle (index 2: sma2 = sma3 = 2), above now (3.5 > 3): hold.
        assert_eq!(run(&[2.0, 2.0, 2.0, 5.0], P23), [Hold, Hold, Hold, Hold]);
        // Below (index 2: 0 < 2), then equal (index 3: 0 = 0), then above (index 4: 1.5 > 1):
        // neither candle crosses.
        assert_eq!(run(&[6.0, 0.0, 0.0, 0.0, 3.0], P23), [Hold, Hold, Hold, Hold, Hold]);
        // The same without the tie crosses: below (0 < 2), then above (1.5 > 1).
        assert_eq!(run(&[6.0, 0.0, 0.0, 3.0], P23), [Hold, Hold, Hold, Long]);
    }

    #[test]
    fn warm_up_and_confidence() {
        let p = SmaCrossParams::default();
        let mut s = SmaCross::default();
        for i in 0..20 {
            let v = s.next(100.0 - i as f64, &p, true);
            assert_eq!((v.action, v.score), (Action::Hold, 0.0), "index {i}");
            assert_eq!(v.features.is_empty(), i < 19, "index {i}: SMA(20) exists from index 19");
        }
        // Falling prices: fast below slow. A jump crosses up at index 20 at the earliest.
        let v = s.next(1_000.0, &p, true);
        assert_eq!((v.action, v.score), (Action::Long, 1.0), "{}", v.reasoning);
        let names: Vec<&str> = v.features.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["sma_fast", "sma_slow"]);
    }

    #[test]
    fn other_parameters_start_a_new_window() {
        let mut s = SmaCross::default();
        for c in [1.0, 2.0, 3.0] {
            s.next(c, &P23, true);
        }
        let v = s.next(4.0, &SmaCrossParams { fast: 1, slow: 2 }, true);
        assert!(v.features.is_empty(), "a window of other parameters is not reused: {v:?}");
    }

    #[test]
    fn parameters_are_validated() {
        assert!(SmaCrossParams::default().validate().is_empty());
        assert_eq!(SmaCrossParams { fast: 0, slow: 5 }.validate().len(), 1);
        assert_eq!(SmaCrossParams { fast: 5, slow: 5 }.validate().len(), 1);
        assert_eq!(SmaCrossParams { fast: 1, slow: MAX_SLOW + 1 }.validate().len(), 1);
    }
}
