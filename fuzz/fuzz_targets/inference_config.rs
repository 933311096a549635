//! The inference configuration file (`--llm-config`: `[[analyst]]`, `[rules]`, `[condition]`):
//! any text parsed and validated by [`LlmConfig::parse`] (every key variable set), then built
//! the way the inference worker builds it ([`rule_config`], each analyst by [`Analyst::new`],
//! [`StageConfig::with_analysts`]) and run over a short series of the demo feed
//! ([`last_bar`]): an accepted configuration must not crash the stage that runs it.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::market::{Bar, Interval};
use tradeflow_inference::engine::{Series, last_bar, rule_config};
use tradeflow_inference::llm::{Analyst, LlmConfig, LlmMetrics};

/// The first bars of the demo feed (enough to warm every indicator).
fn series() -> &'static Series {
    static SERIES: OnceLock<Series> = OnceLock::new();
    SERIES.get_or_init(|| {
        let text = include_str!("../../demo/btcusd_1h.csv");
        let head: String = text.lines().take(121).map(|l| format!("{l}\n")).collect();
        let bars: Vec<Bar> = CandleReader::new(head.as_bytes()).unwrap().bars().map(Result::unwrap).collect();
        Series { source: "csv".into(), symbol: "BTCUSD".into(), interval: Interval::H1, bars }
    })
}

fn metrics() -> LlmMetrics {
    static METRICS: OnceLock<LlmMetrics> = OnceLock::new();
    METRICS.get_or_init(|| LlmMetrics::register(&prometheus::Registry::new()).unwrap()).clone()
}

const MODELS: [&str; 7] = ["technical", "sma_cross", "rsi", "macd", "bollinger", "volume", "stochastic"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = LlmConfig::parse(text, &|name| Some(format!("key-of-{name}"))) else { return };
    let models: Vec<String> = MODELS.iter().map(|m| m.to_string()).collect();
    let Ok(stage) = rule_config(&models, Some(&config)) else { return };
    let analysts: Result<Vec<Arc<Analyst>>, String> =
        config.analysts.iter().cloned().map(|a| Analyst::new(a, metrics()).map(Arc::new)).collect();
    let Ok(analysts) = analysts else { return };
    let Ok(with_analysts) = stage.clone().with_analysts(analysts) else { return };
    drop(with_analysts);
    let _ = last_bar(Arc::new(stage), series());
});
