//! The inference stage over the real demo candles.

use std::collections::HashSet;
use std::sync::Arc;

use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_core::signal::{Action, CycleTag, SignalStatus};
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

/// An analysis cycle re-reads the latest candle of each series it holds: the candle's own
/// answers (but `sma_cross`'s, which holds between candles), under the cycle's candle id, one
/// ms later per cycle, flat at the close, tagged; once per trigger id, across a checkpoint.
#[test]
fn a_cycle_answers_about_the_latest_candle_again() {
    let candles = demo();
    let mut config = StageConfig::every_rule();
    config.models.push(tradeflow_inference::stage::ModelSpec::SmaCross);
    let config = Arc::new(config);
    let mut stage = InferenceStage::new(config.clone());
    let tag = CycleTag { id: "ctl:1:a".into(), profiles: vec![] };
    assert!(stage.on_trigger(&tag, None).is_empty(), "no candle yet: nothing to analyse");
    let mut own = Vec::new();
    for c in &candles[..300] {
        own = stage.on_candle(c).unwrap();
    }
    let eth = Candle { symbol: "ETHUSD".into(), ..candles[0].clone() };
    stage.on_candle(&eth).unwrap();
    let last = &candles[299];
    let tag = CycleTag { id: "ctl:2:b".into(), profiles: vec!["llm".into()] };
    let cycle = stage.on_trigger(&tag, Some("BTCUSD"));
    assert!(stage.cycle_seen("ctl:2:b") && !stage.cycle_seen("ctl:3:c"));
    let [(inferred, 1)] = &cycle[..] else { panic!("one series, first cycle: {}", cycle.len()) };
    let candle_id = format!("{}/trigger:ctl:2:b", last.id());
    assert_eq!(inferred.context.candle_id, candle_id);
    assert_eq!(inferred.context.open_time, last.bar.open_time(), "the analysts read the real candle");
    assert_eq!(inferred.context.high, last.bar.high());
    assert_eq!(inferred.signals.len(), own.len());
    for (s, o) in inferred.signals.iter().zip(&own) {
        assert_eq!(s.id().to_string(), format!("{candle_id}/{}", o.model));
        assert_eq!(s.open_time, last.bar.open_time() + 1);
        assert_eq!((s.open, s.high, s.low, s.close), (Some(o.close), o.close, o.close, o.close));
        assert_eq!(s.cycle.as_ref(), Some(&tag));
        if s.model == "sma_cross" {
            assert_eq!(s.action, Action::Hold, "{}", s.reasoning);
        } else {
            assert_eq!((s.action, s.confidence, &s.reasoning), (o.action, o.confidence, &o.reasoning), "{}", s.model);
        }
    }
    // Every symbol; a second cycle on the same candle opens a ms later still.
    let restored = InferenceStage::restore(config, &stage.snapshot().unwrap()).unwrap();
    assert!(restored.cycle_seen("ctl:2:b"), "obeyed cycles survive a checkpoint");
    let mut stage = restored;
    let all = stage.on_trigger(&CycleTag { id: "ctl:3:c".into(), profiles: vec![] }, None);
    let mut seen: Vec<(String, u32, i64)> =
        all.iter().map(|(i, n)| (i.context.symbol.clone(), *n, i.signals[0].open_time)).collect();
    seen.sort();
    assert_eq!(
        seen,
        [("BTCUSD".into(), 2, last.bar.open_time() + 2), ("ETHUSD".into(), 1, candles[0].bar.open_time() + 1)]
    );
    // The next candle starts afresh.
    stage.on_candle(&candles[300]).unwrap();
    let next = stage.on_trigger(&CycleTag { id: "ctl:4:d".into(), profiles: vec![] }, Some("BTCUSD"));
    assert_eq!(next.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [1]);
}
