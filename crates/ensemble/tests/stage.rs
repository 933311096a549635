//! The ensemble join: quorum, completeness, deadline, late and duplicate signals, checkpoints,
//! and one decision per profile per candle over the real demo candles.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tradeflow_bus::{Envelope, EnvelopeRef};
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::control::CyclePhase;
use tradeflow_core::decision::Trigger;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_core::signal::{
    Action, CycleTag, Level, MarketCondition, ModelKind, Phase, Signal, SignalStatus, SignalVote, Trend,
    cycle_candle_id,
};
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_ensemble::{EnsembleStage, Method, Profile};
use tradeflow_inference::{InferenceStage, StageConfig};

fn profile(name: &str, models: &[(&str, f64)], method: Method, quorum: Option<usize>, deadline_ms: u64) -> Profile {
    Profile {
        name: name.into(),
        models: models.iter().map(|(m, w)| (m.to_string(), *w)).collect(),
        method,
        min_confidence: 0.0,
        quorum,
        deadline_ms,
    }
}

fn signal(open_time: i64, model: &str, action: Action, confidence: f64) -> Signal {
    Signal {
        candle_id: format!("csv:BTC:1h:{open_time}"),
        symbol: "BTC".into(),
        interval: Interval::H1,
        open_time,
        open: Some(100.0),
        high: 101.0,
        low: 99.0,
        close: 100.0,
        model: model.into(),
        model_kind: ModelKind::Rule,
        action,
        confidence,
        scores: BTreeMap::new(),
        reasoning: String::new(),
        features: BTreeMap::new(),
        market: MarketCondition {
            trend: Trend::Sideways,
            phase: Phase::Consolidation,
            trend_strength: None,
            support: None,
            resistance: None,
            volatility: Some(Level::Normal),
            atr_pct: None,
            volume: None,
            volume_ratio: None,
        },
        stop_loss: Some(95.0),
        take_profit: Some(110.0),
        latency_us: 1,
        status: SignalStatus::Ok,
        cycle: None,
    }
}

#[test]
fn complete_quorum_and_late_signals() {
    let profiles = vec![
        profile("all", &[("rsi", 1.0), ("macd", 1.0), ("technical", 2.0)], Method::WeightedVote, None, 1000),
        profile("fast", &[("rsi", 1.0), ("macd", 1.0), ("technical", 1.0)], Method::Majority, Some(2), 1000),
        profile("solo", &[("technical", 1.0)], Method::WeightedVote, None, 1000),
    ];
    let mut stage = EnsembleStage::new(Arc::new(profiles));
    let out = stage.on_signal(&signal(0, "technical", Action::Long, 0.8), 0);
    assert_eq!(out.decisions.len(), 1);
    assert_eq!((out.decisions[0].profile.as_str(), out.decisions[0].trigger), ("solo", Trigger::Complete));
    assert_eq!(out.decisions[0].action, Action::Long);
    assert_eq!((out.decisions[0].stop_loss, out.decisions[0].take_profit), (Some(95.0), Some(110.0)));

    let out = stage.on_signal(&signal(0, "rsi", Action::Short, 0.9), 1);
    assert_eq!(out.decisions.len(), 1);
    let fast = &out.decisions[0];
    assert_eq!(
        (fast.profile.as_str(), fast.trigger, fast.action),
        ("fast", Trigger::Quorum, Action::Hold),
        "1 long, 1 short: no majority"
    );
    assert_eq!(fast.missing, vec!["macd".to_string()]);

    // A redelivered signal changes nothing.
    assert!(stage.on_signal(&signal(0, "rsi", Action::Short, 0.9), 2).duplicate);

    let out = stage.on_signal(&signal(0, "macd", Action::Long, 0.5), 3);
    assert_eq!(out.decisions.len(), 1, "only `all` was left; `fast` never decides twice");
    let all = &out.decisions[0];
    assert_eq!((all.profile.as_str(), all.trigger, all.action), ("all", Trigger::Complete, Action::Long));
    assert!((all.confidence - 3.0 / 4.0).abs() < 1e-12);
    assert_eq!(stage.pending(), 0);

    // Anything else for that candle is late.
    let out = stage.on_signal(&signal(0, "volume", Action::Long, 0.5), 4);
    assert_eq!(out.late.len(), 1);
    assert!(out.decisions.is_empty());
}

#[test]
fn the_deadline_decides_with_what_arrived_and_errors_do_not_vote() {
    let profiles = vec![
        profile("slow", &[("rsi", 1.0), ("gpt", 1.0), ("claude", 1.0)], Method::Unanimous, None, 500),
        profile("claude-only", &[("claude", 1.0)], Method::WeightedVote, None, 500),
    ];
    let mut stage = EnsembleStage::new(Arc::new(profiles));
    assert!(stage.on_signal(&signal(0, "rsi", Action::Long, 0.7), 1_000).decisions.is_empty());
    let mut failed = signal(0, "gpt", Action::Hold, 0.0);
    failed.status = SignalStatus::Error { reason: "timeout".into() };
    assert!(stage.on_signal(&failed, 1_100).decisions.is_empty());
    assert_eq!(stage.next_deadline(), Some(1_500));
    assert!(stage.on_tick(1_499).is_empty());
    let mut decided = stage.on_tick(1_500);
    decided.sort_by(|a, b| a.profile.cmp(&b.profile));
    assert_eq!(decided.len(), 2);
    let (claude, slow) = (&decided[0], &decided[1]);
    assert_eq!((claude.action, claude.trigger, claude.confidence), (Action::Hold, Trigger::Deadline, 0.0));
    assert!(claude.contributions.is_empty());
    assert_eq!(
        (slow.action, slow.trigger),
        (Action::Long, Trigger::Deadline),
        "the error does not vote; rsi alone is unanimous"
    );
    assert_eq!(slow.missing, vec!["claude".to_string()]);
    assert_eq!(slow.contributions.len(), 2);
    assert!(matches!(slow.contributions.iter().find(|c| c.model == "gpt").unwrap().status, SignalStatus::Error { .. }));
    assert!(stage.on_tick(10_000).is_empty(), "decided once");
    assert_eq!(stage.on_signal(&signal(0, "claude", Action::Long, 0.9), 10_001).late.len(), 1);
}

#[test]
fn a_restored_checkpoint_continues_the_join() {
    let profiles = Arc::new(vec![profile("p", &[("a", 1.0), ("b", 1.0)], Method::ConfidenceWeightedMean, None, 1000)]);
    let mut stage = EnsembleStage::new(profiles.clone());
    stage.on_signal(&signal(0, "a", Action::Long, 0.6), 0);
    let snapshot = stage.snapshot().unwrap();
    let mut restored = EnsembleStage::restore(profiles.clone(), &snapshot).unwrap();
    let a = stage.on_signal(&signal(0, "b", Action::Short, 0.2), 5);
    let b = restored.on_signal(&signal(0, "b", Action::Short, 0.2), 5);
    assert_eq!(a, b);
    assert_eq!(a.decisions[0].action, Action::Long);
    assert!((a.decisions[0].confidence - 0.2).abs() < 1e-12);
    assert!(EnsembleStage::restore(profiles, b"junk").is_err());
}

#[test]
fn one_decision_per_profile_per_candle_over_the_demo_feed() {
    let profiles = parse_profiles(
        r#"
[[profile]]
name = "committee"
models = { rsi = 1.0, macd = 1.0, bollinger = 1.0, volume = 0.5, stochastic = 1.0 }
method = "weighted_vote"
min_confidence = 0.3
quorum = 4

[[profile]]
name = "technical"
models = { technical = 1.0 }
method = "confidence_weighted_mean"
"#,
    )
    .unwrap();
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv")).unwrap();
    let mut inference = InferenceStage::new(Arc::new(StageConfig::every_rule()));
    let mut ensemble = EnsembleStage::new(Arc::new(profiles));
    let mut ids = HashSet::new();
    let mut candles = 0;
    let mut actions = std::collections::HashMap::<(String, Action), u32>::new();
    for (t, bar) in CandleReader::new(std::io::BufReader::new(file)).unwrap().bars().enumerate() {
        let candle = Candle {
            source: "csv".into(),
            symbol: "BTCUSD".into(),
            interval: Interval::H1,
            bar: bar.unwrap(),
            aggregated: false,
        };
        candles += 1;
        for s in inference.on_candle(&candle).unwrap() {
            for d in ensemble.on_signal(&s, t as i64).decisions {
                assert!(ids.insert(d.id().to_string()), "decision {} twice", d.id());
                *actions.entry((d.profile.clone(), d.action)).or_default() += 1;
            }
        }
    }
    assert_eq!(ids.len(), candles * 2);
    assert_eq!(ensemble.pending(), 0);
    for p in ["committee", "technical"] {
        for a in [Action::Long, Action::Short, Action::Hold] {
            assert!(actions.get(&(p.to_string(), a)).copied().unwrap_or(0) > 0, "{p} never says {a:?}: {actions:?}");
        }
    }
}

/// The ensemble worker decodes a signal's bytes as a [`SignalVote`]: every field the stage reads must
/// come through as in the signal, whatever else the signal carries.
#[test]
fn a_signal_on_the_bus_opens_as_the_vote_the_stage_takes() {
    let mut full = signal(1_700_000_000_000, "rsi", Action::Short, 0.73);
    full.scores = BTreeMap::from([("rsi".to_string(), 0.73), ("trend".to_string(), 0.4)]);
    full.features = BTreeMap::from([("rsi_14".to_string(), 71.2), ("close".to_string(), 100.0)]);
    full.reasoning = "RSI 71.2 above 70: overbought".into();
    full.stop_loss = Some(103.5);
    full.take_profit = Some(94.0);
    let mut failed = signal(1_700_000_000_000, "claude", Action::Hold, 0.0);
    failed.status = SignalStatus::Error { reason: "timed out after 5000 ms".into() };
    for s in [full, failed] {
        let bytes = Envelope::wrap(&s.id(), &s.symbol, None, "inference", &s).unwrap().encode().unwrap();
        let vote: SignalVote = EnvelopeRef::decode(&bytes).unwrap().open().unwrap();
        assert_eq!(vote, SignalVote::from(&s));
        assert_eq!(vote.id(), s.id());
        // A signal of an unknown schema version is refused as a vote too.
        let mut env = Envelope::decode(&bytes).unwrap();
        env.v += 1;
        assert!(env.as_ref().open::<SignalVote>().is_err());
    }
}

/// A cycle's signal about the candle at `open_time`: its own join key, one ms after the
/// candle (the first cycle on it), a flat bar, the cycle's tag.
fn cycle_signal(open_time: i64, model: &str, action: Action, tag: &CycleTag) -> Signal {
    let mut s = signal(open_time, model, action, 0.9);
    s.candle_id = cycle_candle_id(&s.candle_id, &tag.id);
    tradeflow_inference::stage::stamp(&mut s, tag, 1);
    s
}

#[test]
fn a_cycle_on_a_decided_candle_is_decided_by_its_profiles_and_completes() {
    let profiles = Arc::new(vec![
        profile("rules", &[("rsi", 1.0)], Method::WeightedVote, None, 60_000),
        profile("llm", &[("rsi", 1.0), ("gpt", 1.0)], Method::WeightedVote, None, 60_000),
    ]);
    let mut stage = EnsembleStage::new(profiles);
    let t = 3_600_000;
    // The candle's own signals: both profiles decide it (llm at its deadline), the candle retires.
    assert_eq!(stage.on_signal(&signal(t, "rsi", Action::Long, 0.8), 0).decisions.len(), 1);
    assert_eq!(stage.on_tick(60_000).len(), 1);
    assert_eq!(stage.pending(), 0);
    assert!(stage.take_cycle_events().is_empty(), "a candle's own join is no cycle");
    // A late copy of the candle's signal is still late.
    assert_eq!(stage.on_signal(&signal(t, "rsi", Action::Long, 0.8), 61_000).late.len(), 1);

    // A cycle for the llm profile on the same candle: joined apart, decided by llm alone.
    let tag = CycleTag { id: "ctl:cycle:1".into(), profiles: vec!["llm".into()] };
    let first = stage.on_signal(&cycle_signal(t, "rsi", Action::Short, &tag), 70_000);
    assert!(first.late.is_empty() && first.decisions.is_empty(), "{first:?}");
    assert!(stage.take_cycle_events().is_empty(), "llm waits for gpt");
    let second = stage.on_signal(&cycle_signal(t, "gpt", Action::Short, &tag), 70_001);
    match &second.decisions[..] {
        [d] => {
            assert_eq!((d.profile.as_str(), d.action, d.trigger), ("llm", Action::Short, Trigger::Complete));
            assert_eq!(d.candle_id, format!("csv:BTC:1h:{t}/trigger:ctl:cycle:1"));
            assert_eq!(d.open_time, t + 1);
            assert_eq!((d.high, d.low, d.open), (100.0, 100.0, Some(100.0)), "a flat bar at the close");
        }
        other => panic!("expected llm's decision alone, got {other:?}"),
    }
    let events = stage.take_cycle_events();
    match &events[..] {
        [e] => {
            assert_eq!((e.phase, e.cycle.as_str(), e.symbol.as_str()), (CyclePhase::Complete, "ctl:cycle:1", "BTC"));
            assert_eq!(e.decided, ["llm"]);
            assert_eq!(e.models, ["gpt", "rsi"]);
            assert_eq!(e.time, 70_001);
        }
        other => panic!("expected one completion, got {other:?}"),
    }
    assert_eq!(stage.pending(), 0);

    // A cycle for every profile: both decide (rules at once, llm at its deadline).
    let all = CycleTag { id: "ctl:2".into(), profiles: vec![] };
    let mut s = cycle_signal(t, "rsi", Action::Long, &all);
    tradeflow_inference::stage::stamp(&mut s, &all, 0);
    s.open_time = t + 2;
    assert_eq!(stage.on_signal(&s, 80_000).decisions.len(), 1);
    assert_eq!(stage.on_tick(140_000).len(), 1);
    let events = stage.take_cycle_events();
    assert_eq!(events.iter().map(|e| e.decided.clone()).collect::<Vec<_>>(), [vec!["llm", "rules"]]);
    // The next candle is not late for it.
    assert_eq!(stage.on_signal(&signal(2 * t, "rsi", Action::Long, 0.8), 150_000).decisions.len(), 1);
}
