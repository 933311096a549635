//! The inference stage over the real demo candles.

use std::collections::HashSet;
use std::sync::Arc;

use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_core::signal::{Action, SignalStatus};
use tradeflow_inference::{InferenceStage, StageConfig};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");

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

#[test]
fn one_signal_per_model_per_candle_with_unique_ids() {
    let candles = demo();
    let mut stage = InferenceStage::new(Arc::new(StageConfig::every_rule()));
    let mut ids = HashSet::new();
    let mut actions = std::collections::HashMap::new();
    for c in &candles {
        let signals = stage.on_candle(c).unwrap();
        assert_eq!(signals.len(), 6);
        for s in signals {
            assert!(ids.insert(s.id().to_string()), "id {} twice", s.id());
            assert!((0.0..=1.0).contains(&s.confidence), "{s:?}");
            assert!(s.scores.values().all(|v| (0.0..=1.0).contains(v)), "{s:?}");
            assert_eq!(s.status, SignalStatus::Ok);
            if s.action != Action::Hold {
                let (sl, tp) = (s.stop_loss.unwrap(), s.take_profit.unwrap());
                if s.action == Action::Long {
                    assert!(sl < s.close && tp > s.close)
                } else {
                    assert!(sl > s.close && tp < s.close)
                }
            }
            *actions.entry((s.model.clone(), s.action)).or_insert(0u32) += 1;
        }
    }
    assert_eq!(ids.len(), candles.len() * 6);
    // Every strategy says something other than hold on real data, and holds most of the time.
    for model in ["rsi", "macd", "bollinger", "volume", "stochastic", "technical"] {
        let longs = actions.get(&(model.to_string(), Action::Long)).copied().unwrap_or(0);
        let shorts = actions.get(&(model.to_string(), Action::Short)).copied().unwrap_or(0);
        assert!(longs > 0 && shorts > 0, "{model}: {longs} longs, {shorts} shorts");
    }
}

#[test]
fn a_restored_checkpoint_continues_identically_and_repeats_are_skipped() {
    let candles = demo();
    let config = Arc::new(StageConfig::every_rule());
    let mut straight = InferenceStage::new(config.clone());
    let mut first = InferenceStage::new(config.clone());
    for c in &candles[..5_000] {
        straight.on_candle(c).unwrap();
        first.on_candle(c).unwrap();
    }
    let snapshot = first.snapshot().unwrap();
    let mut restored = InferenceStage::restore(config.clone(), &snapshot).unwrap();
    assert!(restored.on_candle(&candles[4_999]).is_err(), "a repeated candle gives no second set of signals");
    for c in &candles[5_000..6_000] {
        let a = straight.on_candle(c).unwrap();
        let b = restored.on_candle(c).unwrap();
        let strip = |v: Vec<tradeflow_core::signal::Signal>| {
            v.into_iter()
                .map(|mut s| {
                    s.latency_us = 0;
                    s
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(a), strip(b));
    }
    assert!(InferenceStage::restore(config, b"garbage").unwrap_err().contains("does not decode"));
}

#[test]
fn model_lists_are_checked() {
    assert_eq!(
        StageConfig::with_models(&["rsi".into(), "technical".into()]).unwrap().model_names(),
        ["rsi", "technical"]
    );
    let errs = StageConfig::with_models(&["rsi".into(), "rsi".into(), "gpt".into()]).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[1].contains("unknown model \"gpt\""));
}
