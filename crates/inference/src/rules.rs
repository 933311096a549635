//! Rule strategies: each reads the indicators of one candle and gives a direction, a score in
//! 0–1 (strength of that direction; 0 for hold), its reasoning and the features it used.

use serde::{Deserialize, Serialize};
use tradeflow_core::market::Bar;
// `{:.N}` through numfmt: the same text, a fraction of the cost (reasoning of every signal).
use tradeflow_core::numfmt::Fixed;
use tradeflow_core::signal::Action;
use tradeflow_indicators::IndicatorRow;

use crate::sma_cross::SmaCrossParams;

/// The rule strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Rsi,
    Macd,
    Bollinger,
    Volume,
    Stochastic,
}

impl Strategy {
    pub const ALL: [Strategy; 5] =
        [Strategy::Rsi, Strategy::Macd, Strategy::Bollinger, Strategy::Volume, Strategy::Stochastic];

    pub fn name(self) -> &'static str {
        match self {
            Self::Rsi => "rsi",
            Self::Macd => "macd",
            Self::Bollinger => "bollinger",
            Self::Volume => "volume",
            Self::Stochastic => "stochastic",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Strategy parameters (config `[inference.rules]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleParams {
    pub rsi_oversold: f64,
    pub rsi_overbought: f64,
    /// |MACD histogram| / close at which the MACD score saturates at 1.
    pub macd_full_scale: f64,
    /// Volume ratio that counts as a spike.
    pub volume_spike: f64,
    pub stoch_oversold: f64,
    pub stoch_overbought: f64,
    /// The `sma_cross` model's SMA lengths (`[rules.sma_cross] fast = 10, slow = 20`).
    pub sma_cross: SmaCrossParams,
}

impl Default for RuleParams {
    fn default() -> Self {
        Self {
            rsi_oversold: 30.0,
            rsi_overbought: 70.0,
            macd_full_scale: 0.002,
            volume_spike: 2.0,
            stoch_oversold: 20.0,
            stoch_overbought: 80.0,
            sma_cross: SmaCrossParams::default(),
        }
    }
}

impl RuleParams {
    /// Every problem at once, each with its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut pair = |lo: f64, hi: f64, lo_name: &str, hi_name: &str| {
            if !(0.0 < lo && lo < hi && hi < 100.0) {
                problems.push(format!(
                    "{lo_name} ({lo}) and {hi_name} ({hi}) must satisfy 0 < {lo_name} < {hi_name} < 100"
                ));
            }
        };
        pair(self.rsi_oversold, self.rsi_overbought, "rsi_oversold", "rsi_overbought");
        pair(self.stoch_oversold, self.stoch_overbought, "stoch_oversold", "stoch_overbought");
        if !(self.macd_full_scale > 0.0 && self.macd_full_scale.is_finite()) {
            problems.push(format!("macd_full_scale must be a positive number, got {}", self.macd_full_scale));
        }
        if !(self.volume_spike > 1.0 && self.volume_spike.is_finite()) {
            problems.push(format!("volume_spike must be above 1, got {}", self.volume_spike));
        }
        problems.extend(self.sma_cross.validate());
        problems
    }
}

/// One strategy's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    pub score: f64,
    pub reasoning: String,
    pub features: Vec<(&'static str, f64)>,
}

impl Verdict {
    fn hold(reasoning: String, features: Vec<(&'static str, f64)>) -> Self {
        Self { action: Action::Hold, score: 0.0, reasoning, features }
    }

    pub(crate) fn warming(explain: bool, what: &str) -> Self {
        Self::hold(text(explain, || format!("warming up: {what} has no value yet")), Vec::new())
    }
}

/// `reasoning()` when explaining, else nothing (and no allocation).
pub(crate) fn text(explain: bool, reasoning: impl FnOnce() -> String) -> String {
    if explain { reasoning() } else { String::new() }
}

/// The features when explaining, else none.
pub(crate) fn feats(explain: bool, features: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
    if explain { features.to_vec() } else { Vec::new() }
}

fn clamp01(x: f64) -> f64 {
    if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 }
}

/// What a strategy remembers from the previous candle (for crossings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Previous {
    pub macd_hist: Option<f64>,
}

/// The verdict of `s` at a candle; its reasoning and features only when `explain` (a signal
/// carries them; a backtest, which keeps no signal, reads only the action and the score).
pub fn evaluate(s: Strategy, bar: &Bar, row: &IndicatorRow, prev: &Previous, p: &RuleParams, explain: bool) -> Verdict {
    let close = bar.close();
    match s {
        Strategy::Rsi => {
            let Some(rsi) = row.rsi_14 else { return Verdict::warming(explain, "RSI(14)") };
            let features = feats(explain, &[("rsi_14", rsi)]);
            if rsi < p.rsi_oversold {
                Verdict {
                    action: Action::Long,
                    score: clamp01(0.5 + 0.5 * (p.rsi_oversold - rsi) / p.rsi_oversold),
                    reasoning: text(explain, || format!("RSI {} below {} (oversold)", Fixed(rsi, 1), p.rsi_oversold)),
                    features,
                }
            } else if rsi > p.rsi_overbought {
                Verdict {
                    action: Action::Short,
                    score: clamp01(0.5 + 0.5 * (rsi - p.rsi_overbought) / (100.0 - p.rsi_overbought)),
                    reasoning: text(explain, || {
                        format!("RSI {} above {} (overbought)", Fixed(rsi, 1), p.rsi_overbought)
                    }),
                    features,
                }
            } else {
                Verdict::hold(
                    text(explain, || {
                        format!("RSI {} between {} and {}", Fixed(rsi, 1), p.rsi_oversold, p.rsi_overbought)
                    }),
                    features,
                )
            }
        }
        Strategy::Macd => {
            let (Some(line), Some(signal), Some(hist)) =
                (row.macd_12_26_9, row.macd_signal_12_26_9, row.macd_hist_12_26_9)
            else {
                return Verdict::warming(explain, "MACD(12,26,9)");
            };
            let features = feats(explain, &[("macd", line), ("macd_signal", signal), ("macd_hist", hist)]);
            let strength = clamp01((hist.abs() / close) / p.macd_full_scale);
            let crossed = prev.macd_hist.is_some_and(|h| h.signum() != hist.signum() && h != 0.0);
            // A fresh crossing counts more than a histogram that has been on one side for a while.
            let score = clamp01(if crossed { 0.5 + 0.5 * strength } else { 0.5 * strength });
            if hist > 0.0 {
                let how = if crossed { "crossed above" } else { "is above" };
                Verdict {
                    action: Action::Long,
                    score,
                    reasoning: text(explain, || format!("MACD {how} its signal (hist {})", Fixed(hist, 4))),
                    features,
                }
            } else if hist < 0.0 {
                let how = if crossed { "crossed below" } else { "is below" };
                Verdict {
                    action: Action::Short,
                    score,
                    reasoning: text(explain, || format!("MACD {how} its signal (hist {})", Fixed(hist, 4))),
                    features,
                }
            } else {
                Verdict::hold(text(explain, || "MACD on its signal line".into()), features)
            }
        }
        Strategy::Bollinger => {
            let (Some(upper), Some(middle), Some(lower)) = (row.bb_upper_20_2, row.bb_middle_20_2, row.bb_lower_20_2)
            else {
                return Verdict::warming(explain, "Bollinger(20,2)");
            };
            let width = upper - lower;
            let percent_b = if width > 0.0 { (close - lower) / width } else { 0.5 };
            let features = feats(
                explain,
                &[("bb_upper", upper), ("bb_middle", middle), ("bb_lower", lower), ("percent_b", percent_b)],
            );
            if percent_b <= 0.0 {
                Verdict {
                    action: Action::Long,
                    score: clamp01(0.5 - percent_b),
                    reasoning: text(explain, || {
                        format!("close {close} at or below the lower band {}", Fixed(lower, 2))
                    }),
                    features,
                }
            } else if percent_b >= 1.0 {
                Verdict {
                    action: Action::Short,
                    score: clamp01(percent_b - 0.5),
                    reasoning: text(explain, || {
                        format!("close {close} at or above the upper band {}", Fixed(upper, 2))
                    }),
                    features,
                }
            } else {
                Verdict::hold(
                    text(explain, || format!("close inside the bands (%b {})", Fixed(percent_b, 2))),
                    features,
                )
            }
        }
        Strategy::Volume => {
            let Some(ratio) = row.volume_ratio_20 else { return Verdict::warming(explain, "volume ratio(20)") };
            let features = feats(explain, &[("volume_ratio_20", ratio)]);
            if ratio >= p.volume_spike && bar.close() != bar.open() {
                let action = if bar.close() > bar.open() { Action::Long } else { Action::Short };
                let side = if action == Action::Long { "up" } else { "down" };
                Verdict {
                    action,
                    score: clamp01((ratio - 1.0) / (2.0 * p.volume_spike - 1.0)),
                    reasoning: text(explain, || format!("volume {}x its average on an {side} bar", Fixed(ratio, 1))),
                    features,
                }
            } else {
                Verdict::hold(text(explain, || format!("volume {}x its average: no spike", Fixed(ratio, 1))), features)
            }
        }
        Strategy::Stochastic => {
            let (Some(k), Some(d)) = (row.stoch_slowk_14_3_3, row.stoch_slowd_14_3_3) else {
                return Verdict::warming(explain, "slow stochastic(14,3,3)");
            };
            let features = feats(explain, &[("stoch_k", k), ("stoch_d", d)]);
            if k < p.stoch_oversold && k > d {
                Verdict {
                    action: Action::Long,
                    score: clamp01(0.5 + 0.5 * (p.stoch_oversold - k) / p.stoch_oversold),
                    reasoning: text(explain, || {
                        format!("%K {} turning up through %D {} while oversold", Fixed(k, 1), Fixed(d, 1))
                    }),
                    features,
                }
            } else if k > p.stoch_overbought && k < d {
                Verdict {
                    action: Action::Short,
                    score: clamp01(0.5 + 0.5 * (k - p.stoch_overbought) / (100.0 - p.stoch_overbought)),
                    reasoning: text(explain, || {
                        format!("%K {} turning down through %D {} while overbought", Fixed(k, 1), Fixed(d, 1))
                    }),
                    features,
                }
            } else {
                Verdict::hold(
                    text(explain, || format!("%K {}, %D {}: no turn at an extreme", Fixed(k, 1), Fixed(d, 1))),
                    features,
                )
            }
        }
    }
}

/// The composite of several verdicts: a score-weighted vote.
pub fn vote(verdicts: &[(Strategy, Verdict)]) -> (Action, f64) {
    let net: f64 = verdicts
        .iter()
        .map(|(_, v)| match v.action {
            Action::Long => v.score,
            Action::Short => -v.score,
            Action::Hold => 0.0,
        })
        .sum();
    let confidence = clamp01(net.abs() / verdicts.len().max(1) as f64);
    // Below a tenth of full agreement the strategies cancel out.
    if confidence < 0.1 {
        (Action::Hold, confidence)
    } else if net > 0.0 {
        (Action::Long, confidence)
    } else {
        (Action::Short, confidence)
    }
}
