//! The `sma_cross` model through the inference stage: selected by name, configured under
//! `[rules.sma_cross]`, its crosses on the real demo candles where backtesting.py's reference
//! run acted on them, and its window carried through a checkpoint.

use std::collections::BTreeSet;
use std::sync::Arc;

use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_core::signal::{Action, Signal};
use tradeflow_inference::llm::config::LlmConfig;
use tradeflow_inference::{InferenceStage, StageConfig};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");
const TRADES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001_trades.csv"
);

fn demo() -> Vec<Candle> {
    let file = std::fs::File::open(DEMO).unwrap();
    CandleReader::new(std::io::BufReader::new(file))
        .unwrap()
        .bars()
        .map(|b| Candle {
            source: "csv".into(),
            symbol: "BTCUSD".into(),
            interval: Interval::H1,
            bar: b.unwrap(),
            aggregated: false,
        })
        .collect()
}

fn sma_cross() -> Arc<StageConfig> {
    Arc::new(StageConfig::with_models(&["sma_cross".into()]).unwrap())
}

/// (entry bar, exit bar) of every reference trade.
fn reference_trades() -> Vec<(usize, usize)> {
    let text = std::fs::read_to_string(TRADES).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (e, x) = (col("entry_bar"), col("exit_bar"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[e].parse().unwrap(), f[x].parse().unwrap())
        })
        .collect()
}

#[test]
fn sma_cross_is_a_model_by_name_and_unknown_names_list_it() {
    assert_eq!(
        StageConfig::with_models(&["sma_cross".into(), "rsi".into()]).unwrap().model_names(),
        ["sma_cross", "rsi"]
    );
    let errs = StageConfig::with_models(&["sma".into()]).unwrap_err();
    assert_eq!(
        errs,
        [
            r#"unknown model "sma"; expected one of rsi, macd, bollinger, volume, stochastic, technical, sma_cross or ml:NAME"#
        ]
    );
    assert!(!StageConfig::every_rule().model_names().contains(&"sma_cross"), "not part of the rule set");
}

#[test]
fn its_parameters_live_under_rules_sma_cross() {
    let c = LlmConfig::parse("[rules.sma_cross]\nfast = 5\nslow = 30\n", &|_| None).unwrap();
    assert_eq!((c.rules.sma_cross.fast, c.rules.sma_cross.slow), (5, 30));
    assert_eq!(LlmConfig::parse("", &|_| None).unwrap().rules.sma_cross.slow, 20, "default 10/20");
    let bad = LlmConfig::parse("[rules.sma_cross]\nfast = 20\nslow = 10\n", &|_| None).unwrap_err();
    assert_eq!(bad, ["rules: sma_cross.fast (20) and sma_cross.slow (10) must satisfy 1 <= fast < slow"]);
    assert!(LlmConfig::parse("[rules.sma_cross]\nfats = 5\n", &|_| None).is_err(), "unknown keys are refused");
}

/// Long-only, a cross up opens when flat and a cross down closes, and backtesting.py fills an
/// order decided on row i at row i + 1's open. So its entries are exactly our cross-ups + 1,
/// and its exits (all but the last, closed at the end of the data) are the first cross-down
/// after each entry, + 1.
#[test]
fn crosses_on_the_demo_candles_are_where_backtesting_py_traded() {
    let candles = demo();
    let mut stage = InferenceStage::new(sma_cross());
    let signals: Vec<Signal> = candles.iter().map(|c| stage.on_candle(c).unwrap().remove(0)).collect();
    let rows = |a: Action| -> Vec<usize> {
        signals.iter().enumerate().filter(|(_, s)| s.action == a).map(|(i, _)| i).collect()
    };
    let ups = rows(Action::Long);
    let downs = rows(Action::Short);
    assert!(ups[0] >= 20 && downs[0] >= 20, "nothing crosses before row 20");

    let trades = reference_trades();
    assert_eq!(trades.len(), 545);
    let entries: Vec<usize> = trades.iter().map(|t| t.0 - 1).collect();
    assert_eq!(ups, entries, "every cross up is a reference entry, one bar earlier");
    let down_set: BTreeSet<usize> = downs.iter().copied().collect();
    for (i, &(entry, exit)) in trades.iter().enumerate() {
        let first_down = down_set.range(entry..).next().copied();
        if i + 1 < trades.len() {
            assert_eq!(first_down, Some(exit - 1), "trade {i}: exits on the first cross down after its entry");
        } else {
            assert_eq!(first_down, None, "the last trade is still open at the end");
        }
    }

    // A cross is sure, a hold has no confidence; no exits are suggested.
    for (s, c) in signals.iter().zip(&candles) {
        assert_eq!(s.confidence, if s.action == Action::Hold { 0.0 } else { 1.0 });
        assert_eq!((s.stop_loss, s.take_profit), (None, None));
        assert_eq!(s.open, Some(c.bar.open()), "signals carry their candle's open");
    }
    assert!(signals[25].features.contains_key("sma_fast") && signals[25].features.contains_key("sma_slow"));
}

#[test]
fn the_window_survives_a_checkpoint() {
    let candles = demo();
    let mut straight = InferenceStage::new(sma_cross());
    let mut first = InferenceStage::new(sma_cross());
    for c in &candles[..1_000] {
        straight.on_candle(c).unwrap();
        first.on_candle(c).unwrap();
    }
    let mut restored = InferenceStage::restore(sma_cross(), &first.snapshot().unwrap()).unwrap();
    for c in &candles[1_000..3_000] {
        let (a, b) = (straight.on_candle(c).unwrap(), restored.on_candle(c).unwrap());
        assert_eq!((a[0].action, &a[0].features), (b[0].action, &b[0].features), "{}", c.id());
    }
}
