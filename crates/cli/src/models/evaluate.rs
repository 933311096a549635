//! The trading evaluation of a trained version: its test window through the backtester
//! (`crates/backtest`, what `tradeflow backtest` runs), once with a profile following the
//! model alone and once with the `technical` model, one default paper account each, and the
//! window's buy and hold. The backtests start cold at the window (as `backtest --from` does):
//! both models warm up over its first bars alike.

use anyhow::Context;
use serde::Serialize;
use tradeflow_backtest::{BacktestConfig, ReportOptions, report::backtest};
use tradeflow_core::market::Interval;
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_inference::stage::StageConfig;
use tradeflow_ingest::timeline::Feed;
use tradeflow_models::Trained;
use tradeflow_risk::AccountConfig;

/// One backtest's headline figures; `null` when the run could not give them (e.g. no trade:
/// no Sharpe), with the reason in `notes`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Leg {
    pub return_pct: Option<f64>,
    pub sharpe: Option<f64>,
    pub max_drawdown_pct: Option<f64>,
    pub trades: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TradingEval {
    pub from_ms: i64,
    /// Exclusive.
    pub to_ms: i64,
    pub model: Leg,
    pub technical: Leg,
    pub buy_and_hold_return_pct: Option<f64>,
    pub notes: Vec<String>,
}

const BALANCE: f64 = 10_000.0;

pub(crate) fn evaluate(name: &str, trained: &Trained, feed: Feed, interval: Interval) -> anyhow::Result<TradingEval> {
    let test = &trained.report.test;
    let (from_ms, to_ms) = (test.from_ms, test.to_ms + interval.millis());
    let feeds = vec![feed];
    let model = format!("{}{name}", tradeflow_inference::ml::PREFIX);
    let ml = StageConfig::with_models(std::slice::from_ref(&model)).map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    // The candidate is served as version 0: it is in no registry yet.
    ml.ml.models.install(name, 0, &trained.artifact.to_bytes()?).map_err(anyhow::Error::msg)?;
    let mut notes = Vec::new();
    let run = |inference: StageConfig, model: &str, notes: &mut Vec<String>| -> anyhow::Result<(Leg, Option<f64>)> {
        let profiles = parse_profiles(&format!(
            "[[profile]]\nname = \"eval\"\nmodels = {{ \"{model}\" = 1.0 }}\nmethod = \"weighted_vote\"\n"
        ))
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
        let config = BacktestConfig {
            feeds: feeds.clone(),
            aggregate: Vec::new(),
            inference,
            analysts: Vec::new(),
            profiles,
            accounts: vec![AccountConfig::paper("eval", "eval", BALANCE)],
            strict: false,
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
        };
        let report = backtest(&config, &ReportOptions::default())
            .with_context(|| format!("backtest of {model} over the test window"))?;
        let Some(account) = report.accounts.first() else { return Ok((Leg::default(), None)) };
        let Some(stats) = &account.stats else {
            notes.push(format!("{model}: no statistics: {}", account.stats_error.clone().unwrap_or_default()));
            return Ok((Leg::default(), None));
        };
        let finite = |what: &str, v: f64, notes: &mut Vec<String>| {
            if v.is_finite() {
                Some(v)
            } else {
                notes.push(format!("{model}: {what} is not defined on this window ({v})"));
                None
            }
        };
        let leg = Leg {
            return_pct: finite("return", stats.return_pct, notes),
            sharpe: finite("Sharpe ratio", stats.sharpe_ratio, notes),
            max_drawdown_pct: finite("max drawdown", stats.max_drawdown_pct, notes),
            trades: Some(stats.trades),
        };
        Ok((leg, finite("buy and hold", stats.buy_and_hold_return_pct, notes)))
    };
    let (model_leg, hold) = run(ml, &model, &mut notes)?;
    let technical = StageConfig::with_models(&["technical".to_string()]).map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let (technical_leg, hold_t) = run(technical, "technical", &mut notes)?;
    Ok(TradingEval {
        from_ms,
        to_ms,
        model: model_leg,
        technical: technical_leg,
        buy_and_hold_return_pct: hold.or(hold_t),
        notes,
    })
}
