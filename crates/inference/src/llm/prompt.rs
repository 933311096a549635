//! What an analyst is told: a fixed system prompt with the answer's format, and per candle a
//! plain-text summary of the candle, its market condition, the indicators of every interval and
//! the recent news headlines about the symbol (see [`crate::news`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use tradeflow_core::signal::{Level, MarketCondition, Phase, Trend};

use crate::news::Headline;
use crate::stage::{ModelContext, indicators_by_name};

pub const SYSTEM_PROMPT: &str = "You are a disciplined crypto market analyst. You get one closed candle of a \
symbol with its market condition and technical indicators, and the latest indicators of the symbol's other \
timeframes. Decide whether to go long, go short or hold until the next candle. Reply with exactly one JSON \
object and nothing else (no Markdown, no text around it), with exactly these fields: \"action\": \"long\", \
\"short\" or \"hold\"; \"confidence\": a number from 0 to 1; \"reasoning\": one or two sentences; \
\"stop_loss\": a price or null; \"take_profit\": a price or null. For long, stop_loss < close < take_profit; \
for short, take_profit < close < stop_loss; for hold, both null.";

/// The user message about `ctx`, and the indicator values it contains by name (this interval's
/// plainly, another interval's prefixed with it, e.g. `4h.rsi_14`): the signal's features.
pub fn user_prompt(ctx: &ModelContext) -> (String, BTreeMap<String, f64>) {
    user_prompt_with(ctx, &[])
}

/// [`user_prompt`] with `headlines` (newest first) about the symbol or the market, after the
/// indicators; none: no headline section.
pub fn user_prompt_with(ctx: &ModelContext, headlines: &[Headline]) -> (String, BTreeMap<String, f64>) {
    let mut p = String::with_capacity(2048);
    let _ = writeln!(
        p,
        "Candle: {} {} from {}, opened {} UTC, close {}.",
        ctx.symbol,
        ctx.interval,
        ctx.source,
        utc(ctx.open_time),
        num(ctx.close)
    );
    let features = context_lines(&mut p, ctx);
    headline_lines(&mut p, &ctx.symbol, headlines);
    p.push_str("Answer with the JSON object only.");
    (p, features)
}

/// The lines about `ctx` after its candle line: its market condition, its indicators and the
/// other intervals' (shared with the multi-chart prompt, [`super::charts`]); returns the
/// indicator values written, by name (see [`user_prompt`]).
pub(crate) fn context_lines(p: &mut String, ctx: &ModelContext) -> BTreeMap<String, f64> {
    let mut features = BTreeMap::new();
    let _ = writeln!(p, "Market condition: {}.", condition(&ctx.market));
    let named = indicators_by_name(&ctx.indicators);
    let _ = writeln!(p, "Indicators {}: {}.", ctx.interval, list(&named));
    for (name, v) in named {
        features.insert(name.to_string(), v);
    }
    for tf in &ctx.timeframes {
        let named = indicators_by_name(&tf.indicators);
        let _ = writeln!(
            p,
            "Indicators {} (its latest candle opened {} UTC, close {}): {}.",
            tf.interval,
            utc(tf.open_time),
            num(tf.close),
            list(&named)
        );
        for (name, v) in named {
            features.insert(format!("{}.{name}", tf.interval), v);
        }
    }
    features
}

/// The recent headlines, one a line with when and where each was published.
pub(crate) fn headline_lines(p: &mut String, symbol: &str, headlines: &[Headline]) {
    if headlines.is_empty() {
        return;
    }
    let _ = writeln!(p, "Recent news headlines about {symbol} or the crypto market (newest first):");
    for h in headlines {
        let _ = writeln!(p, "- {} UTC, {}: {}", utc(h.published_at), h.source, h.title);
    }
}

fn list(named: &[(&str, f64)]) -> String {
    if named.is_empty() {
        return "none yet (warming up)".into();
    }
    named.iter().map(|(n, v)| format!("{n}={}", num(*v))).collect::<Vec<_>>().join(", ")
}

fn condition(m: &MarketCondition) -> String {
    let trend = match m.trend {
        Trend::TrendingUp => "trending up",
        Trend::TrendingDown => "trending down",
        Trend::Sideways => "sideways",
    };
    let phase = match m.phase {
        Phase::ActiveTrading => "active trading",
        Phase::Consolidation => "consolidation",
        Phase::Breakout => "breakout",
    };
    let level = |l: Option<Level>| match l {
        Some(Level::Low) => "low",
        Some(Level::Normal) => "normal",
        Some(Level::High) => "high",
        None => "unknown",
    };
    let opt = |v: Option<f64>| v.map_or("unknown".to_string(), num);
    format!(
        "trend {trend}, phase {phase}, ADX(14) {}, support {}, resistance {}, volatility {} (ATR {} of the close), volume {} ({} of its 20-bar average)",
        opt(m.trend_strength),
        opt(m.support),
        opt(m.resistance),
        level(m.volatility),
        m.atr_pct.map_or("unknown".to_string(), |a| format!("{}%", num(a * 100.0))),
        level(m.volume),
        m.volume_ratio.map_or("unknown".to_string(), |r| format!("{}x", num(r))),
    )
}

/// Seven significant digits, no trailing zeros.
pub(crate) fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (6 - magnitude).clamp(0, 10) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// `2024-05-01T10:00:00` from epoch milliseconds (UTC, proleptic Gregorian).
pub(crate) fn utc(ms: i64) -> String {
    tradeflow_core::time::iso_utc(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times() {
        assert_eq!(num(63123.456789), "63123.46");
        assert_eq!(num(54.32190001), "54.3219");
        assert_eq!(num(0.000123456789), "0.0001234568");
        assert_eq!(num(-12.5), "-12.5");
        assert_eq!(num(123456789.0), "123456789");
        assert_eq!(num(0.0), "0");
        assert_eq!(utc(0), "1970-01-01T00:00:00");
        assert_eq!(utc(1_699_999_200_000), "2023-11-14T22:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00");
        assert_eq!(utc(1_709_251_199_000), "2024-02-29T23:59:59");
    }
}
