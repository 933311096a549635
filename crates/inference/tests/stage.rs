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

#[test]
fn the_context_carries_the_other_intervals_latest_indicators_and_survives_a_checkpoint() {
    let config = Arc::new(StageConfig::default());
    let mut stage = InferenceStage::new(config.clone());
    let hourly = demo();
    let with = |c: &Candle, symbol: &str, interval: Interval| Candle {
        symbol: symbol.into(),
        interval,
        bar: tradeflow_core::market::Bar::new(
            c.bar.open_time() - c.bar.open_time() % interval.millis(),
            c.bar.open(),
            c.bar.high(),
            c.bar.low(),
            c.bar.close(),
            c.bar.volume(),
        )
        .unwrap(),
        ..c.clone()
    };
    // 1h candles of BTCUSD, a 4h and a 1d candle of it now and then, and 1h candles of another symbol.
    let mut last_4h = None;
    let mut last_1d = None;
    for c in &hourly[..300] {
        let ctx = stage.on_candle_with_context(c).unwrap().context;
        assert_eq!((ctx.symbol.as_str(), ctx.interval, ctx.close), ("BTCUSD", Interval::H1, c.bar.close()));
        let intervals: Vec<Interval> = ctx.timeframes.iter().map(|t| t.interval).collect();
        let want: Vec<Interval> =
            [last_4h.map(|_| Interval::H4), last_1d.map(|_| Interval::D1)].into_iter().flatten().collect();
        assert_eq!(intervals, want, "other intervals of the same symbol only, shortest first");
        if let Some(t) = ctx.timeframes.first() {
            assert_eq!(Some(t.open_time), last_4h);
            assert_eq!(t.indicators.timestamp, t.open_time);
        }
        stage.on_candle(&with(c, "ETHUSD", Interval::H1)).unwrap();
        if c.bar.open_time() % Interval::H4.millis() == 0 {
            let four = with(c, "BTCUSD", Interval::H4);
            let ctx4 = stage.on_candle_with_context(&four).unwrap().context;
            assert_eq!(ctx4.timeframes.iter().map(|t| t.interval).next(), Some(Interval::H1));
            assert_eq!(ctx4.timeframes[0].close, c.bar.close(), "the latest 1h candle");
            last_4h = Some(four.bar.open_time());
        }
        if c.bar.open_time() % Interval::D1.millis() == 0 {
            let day = with(c, "BTCUSD", Interval::D1);
            stage.on_candle(&day).unwrap();
            last_1d = Some(day.bar.open_time());
        }
    }
    assert!(last_4h.is_some() && last_1d.is_some());
    let ctx = stage.on_candle_with_context(&hourly[300]).unwrap().context;
    assert!(ctx.indicators_by_name().iter().any(|(n, _)| *n == "rsi_14"));
    assert_eq!(ctx.indicators.rsi_14, ctx.indicators_by_name().iter().find(|(n, _)| *n == "rsi_14").map(|(_, v)| *v));

    // The last rows are part of the checkpoint: a restored stage gives the same context.
    let mut restored = InferenceStage::restore(config.clone(), &stage.snapshot().unwrap()).unwrap();
    let a = stage.on_candle_with_context(&hourly[301]).unwrap().context;
    let b = restored.on_candle_with_context(&hourly[301]).unwrap().context;
    assert_eq!(a, b);
    assert_eq!(a.timeframes.len(), 2);

    // A checkpoint of the previous layout is refused, not misread.
    #[derive(serde::Serialize)]
    struct V1 {
        version: u16,
        series: std::collections::BTreeMap<String, ()>,
    }
    let v1 = rmp_serde::to_vec_named(&V1 { version: 1, series: Default::default() }).unwrap();
    let err = InferenceStage::restore(config, &v1).unwrap_err();
    assert_eq!(err, "inference checkpoint has layout 1, this build reads 2");
}
