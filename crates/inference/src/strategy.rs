//! What the rule models are, in words, and which of them suit a market condition: the
//! descriptions the edge shows (`/ai/info`, `/ai/strategies`), the one-sentence summary of a
//! market condition, and the ranking of the strategies by how well they suit it
//! (`/ai/strategy-recommendations`). Kept beside the strategies so that a change to one is seen
//! next to the other.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tradeflow_core::signal::{Action, Level, MarketCondition, Phase, Signal};

use crate::rules::{RuleParams, Strategy};
use crate::stage::ModelSpec;

/// A strategy in words: what it does, the indicator columns it reads, its parameters
/// (`[rules]` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrategyText {
    pub description: &'static str,
    pub indicators: &'static [&'static str],
    pub parameters: &'static [&'static str],
}

pub fn text(s: Strategy) -> StrategyText {
    let (description, indicators, parameters): (&str, &[&str], &[&str]) = match s {
        Strategy::Rsi => (
            "RSI(14) mean reversion: long below rsi_oversold, short above rsi_overbought; the score grows with the distance past the threshold",
            &["rsi_14"],
            &["rsi_oversold", "rsi_overbought"],
        ),
        Strategy::Macd => (
            "MACD(12,26,9) momentum: the histogram's side gives the direction; a fresh crossing scores at least 0.5; |hist|/close saturates at macd_full_scale",
            &["macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9"],
            &["macd_full_scale"],
        ),
        Strategy::Bollinger => (
            "Bollinger Bands(20, 2) mean reversion: long at or below the lower band, short at or above the upper band (%b)",
            &["bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2"],
            &[],
        ),
        Strategy::Volume => (
            "Volume spike: volume at least volume_spike times its 20-bar average on a rising (falling) bar is long (short)",
            &["volume_ratio_20"],
            &["volume_spike"],
        ),
        Strategy::Stochastic => (
            "Slow stochastic(14,3,3) turns: long when %K, below stoch_oversold, is above %D; short when %K, above stoch_overbought, is below %D",
            &["stoch_slowk_14_3_3", "stoch_slowd_14_3_3"],
            &["stoch_oversold", "stoch_overbought"],
        ),
    };
    StrategyText { description, indicators, parameters }
}

/// The `technical` composite in words.
pub const TECHNICAL_TEXT: &str = "the five rule strategies voting: net score (long +, short −) over five is the confidence; below 0.1 they cancel out (hold)";

/// The `sma_cross` model in words.
pub const SMA_CROSS_TEXT: &str = "SMA crossover ([rules.sma_cross] fast, slow): long when the fast SMA crosses above the slow one, short when it crosses below, hold otherwise; no suggested exits (it leaves on the opposite cross)";

/// A rule model in words.
pub fn model_text(model: ModelSpec) -> &'static str {
    match model {
        ModelSpec::Rule(s) => text(s).description,
        ModelSpec::Technical => TECHNICAL_TEXT,
        ModelSpec::SmaCross => SMA_CROSS_TEXT,
    }
}

/// `s`'s parameters with their values in `rules` (null for a key `rules` does not have).
pub fn parameter_values(s: Strategy, rules: &RuleParams) -> BTreeMap<&'static str, Value> {
    let all = serde_json::to_value(rules).unwrap_or(Value::Null);
    text(s).parameters.iter().map(|p| (*p, all.get(*p).cloned().unwrap_or(Value::Null))).collect()
}

/// The name serde gives a value (`trending_up`, `high`, ...), `unknown` for none.
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) => "unknown".into(),
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The condition in one sentence: `trending_up, active_trading (ADX 31.2); volatility normal
/// (ATR 1.20 % of the close); volume high (2.10x its average); support 95.00, resistance 105.00`.
pub fn describe_condition(m: &MarketCondition) -> String {
    let opt = |v: Option<f64>, digits: usize| v.map_or("n/a".into(), |v| format!("{v:.digits$}"));
    format!(
        "{}, {} (ADX {}); volatility {} (ATR {} % of the close); volume {} ({}x its average); support {}, resistance {}",
        name_of(&m.trend),
        name_of(&m.phase),
        opt(m.trend_strength, 1),
        name_of(&m.volatility),
        opt(m.atr_pct.map(|p| p * 100.0), 2),
        name_of(&m.volume),
        opt(m.volume_ratio, 2),
        opt(m.support, 2),
        opt(m.resistance, 2),
    )
}

/// How well a strategy suits a market condition, 0–1, and why. Trend followers (MACD) suit an
/// active trend, mean-reversion strategies (RSI, Bollinger, stochastic) a range, volume a
/// breakout; high volatility weakens mean reversion, low volume the volume strategy.
pub fn suitability(s: Strategy, m: &MarketCondition) -> (f64, String) {
    let (base, why): (f64, &str) = match (m.phase, s) {
        (Phase::ActiveTrading, Strategy::Macd) => {
            (0.9, "a trend is under way (ADX above the threshold): momentum follows it")
        }
        (Phase::ActiveTrading, Strategy::Volume) => (0.6, "volume spikes confirm moves within a trend"),
        (Phase::ActiveTrading, Strategy::Rsi | Strategy::Stochastic) => {
            (0.35, "oscillators stay overbought/oversold for long in a trend")
        }
        (Phase::ActiveTrading, Strategy::Bollinger) => (0.3, "prices ride a band in a trend"),
        (Phase::Consolidation, Strategy::Bollinger) => (0.9, "no trend worth the name: prices revert inside the bands"),
        (Phase::Consolidation, Strategy::Rsi) => (0.8, "no trend: RSI extremes tend to revert"),
        (Phase::Consolidation, Strategy::Stochastic) => (0.8, "no trend: stochastic turns at extremes mark the range"),
        (Phase::Consolidation, Strategy::Volume) => (0.4, "volume spikes are rare and short-lived in a range"),
        (Phase::Consolidation, Strategy::Macd) => (0.3, "MACD whipsaws without a trend"),
        (Phase::Breakout, Strategy::Volume) => (0.9, "the close left the recent range: volume tells a real breakout"),
        (Phase::Breakout, Strategy::Macd) => (0.7, "momentum follows a breakout"),
        (Phase::Breakout, Strategy::Bollinger) => {
            (0.5, "a close outside the bands starts a move as often as it reverts")
        }
        (Phase::Breakout, Strategy::Rsi | Strategy::Stochastic) => (0.3, "oscillators fade breakouts too early"),
    };
    let mut score = base;
    let mut why = why.to_string();
    if m.volatility == Some(Level::High) && matches!(s, Strategy::Rsi | Strategy::Bollinger | Strategy::Stochastic) {
        score -= 0.1;
        why.push_str("; high volatility stretches the extremes");
    }
    if m.volume == Some(Level::Low) && s == Strategy::Volume {
        score -= 0.2;
        why.push_str("; volume is low");
    }
    (score.clamp(0.0, 1.0), why)
}

/// Suitability from which a strategy is recommended.
pub const RECOMMEND_FROM: f64 = 0.6;

/// One strategy's verdict at a bar and how well it suits the condition there.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub strategy: Strategy,
    /// 0–1, see [`suitability`].
    pub suitability: f64,
    pub rationale: String,
    pub action: Action,
    pub score: f64,
    pub reasoning: String,
}

impl Recommendation {
    /// Suitability at least [`RECOMMEND_FROM`].
    pub fn recommended(&self) -> bool {
        self.suitability >= RECOMMEND_FROM
    }
}

/// Every strategy that has a signal among `signals` (the models of
/// [`crate::engine::Engine::every_strategy`] at one bar), best suited first, the higher score
/// first among equals.
pub fn recommend(market: &MarketCondition, signals: &[Signal]) -> Vec<Recommendation> {
    let mut out: Vec<Recommendation> = Strategy::ALL
        .into_iter()
        .filter_map(|s| {
            let sig = signals.iter().find(|sig| sig.model == s.name())?;
            let (suitability, rationale) = suitability(s, market);
            Some(Recommendation {
                strategy: s,
                suitability,
                rationale,
                action: sig.action,
                score: sig.confidence,
                reasoning: sig.reasoning.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| b.suitability.total_cmp(&a.suitability).then(b.score.total_cmp(&a.score)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::signal::Trend;

    fn condition(phase: Phase, volatility: Option<Level>, volume: Option<Level>) -> MarketCondition {
        MarketCondition {
            trend: Trend::Sideways,
            phase,
            trend_strength: Some(25.0),
            support: None,
            resistance: None,
            volatility,
            atr_pct: None,
            volume,
            volume_ratio: None,
        }
    }

    #[test]
    fn suitability_follows_the_phase() {
        let best = |m: &MarketCondition| {
            Strategy::ALL.into_iter().max_by(|a, b| suitability(*a, m).0.total_cmp(&suitability(*b, m).0)).unwrap()
        };
        assert_eq!(best(&condition(Phase::ActiveTrading, None, None)), Strategy::Macd);
        assert_eq!(best(&condition(Phase::Consolidation, None, None)), Strategy::Bollinger);
        assert_eq!(best(&condition(Phase::Breakout, None, None)), Strategy::Volume);
        let high = condition(Phase::Consolidation, Some(Level::High), Some(Level::Low));
        assert!((suitability(Strategy::Rsi, &high).0 - 0.7).abs() < 1e-12);
        assert!((suitability(Strategy::Volume, &high).0 - 0.2).abs() < 1e-12);
    }

    #[test]
    fn the_condition_in_one_sentence() {
        let mut m = condition(Phase::Breakout, Some(Level::High), None);
        m.atr_pct = Some(0.0123);
        m.support = Some(95.0);
        assert_eq!(
            describe_condition(&m),
            "sideways, breakout (ADX 25.0); volatility high (ATR 1.23 % of the close); volume unknown (n/ax its \
             average); support 95.00, resistance n/a"
        );
    }

    #[test]
    fn every_rule_model_has_its_own_text_and_parameters_their_values() {
        let texts: Vec<&str> = ["rsi", "macd", "bollinger", "volume", "stochastic", "technical", "sma_cross"]
            .into_iter()
            .map(|n| model_text(ModelSpec::parse(n).unwrap()))
            .collect();
        for (i, t) in texts.iter().enumerate() {
            assert!(!texts[..i].contains(t), "{t} twice");
        }
        let rules = RuleParams { rsi_oversold: 25.0, ..RuleParams::default() };
        let p = parameter_values(Strategy::Rsi, &rules);
        assert_eq!(p["rsi_oversold"], serde_json::json!(25.0));
        assert_eq!(p["rsi_overbought"], serde_json::json!(70.0));
        assert!(parameter_values(Strategy::Bollinger, &rules).is_empty());
    }
}
