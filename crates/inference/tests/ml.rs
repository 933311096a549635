//! Learned models through the inference stage: features without look-ahead, learning a
//! planted relation and not a random walk (with the gate's verdict), and serving: a deployed
//! version answers, a newer one replaces it, a damaged file or another feature schema is
//! refused with the reason while the other models go on.

use std::sync::Arc;

use tradeflow_core::market::{Bar, Candle, Interval};
use tradeflow_core::signal::{Action, ModelKind, SignalStatus};
use tradeflow_inference::ml::rows;
use tradeflow_inference::{InferenceStage, StageConfig};
use tradeflow_models::family::Params;
use tradeflow_models::labels::{LabelKind, LabelSpec};
use tradeflow_models::split::SplitSpec;
use tradeflow_models::{Family, GateConfig, GateFigures, TrainConfig, Trained, train};

/// `n` hourly candles from 100 whose next return has the sign of the last one with
/// probability `p` (0.5: a pure random walk), sizes 0.1–1 %.
fn series(n: usize, p: f64, seed: u64) -> Vec<Candle> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut close: f64 = 100.0;
    let mut last_up = true;
    (0..n)
        .map(|i| {
            let up = if rng.f64() < p { last_up } else { !last_up };
            last_up = up;
            let open = close;
            let size = 0.001 + rng.f64() * 0.009;
            close = if up { open * (1.0 + size) } else { open * (1.0 - size) };
            let high = open.max(close) * (1.0 + rng.f64() * 0.002);
            let low = open.min(close) * (1.0 - rng.f64() * 0.002);
            let bar = Bar::new(i as i64 * 3_600_000, open, high, low, close, 10.0 + rng.f64() * 5.0).unwrap();
            Candle { source: "synthetic".into(), symbol: "SYN".into(), interval: Interval::H1, bar, aggregated: false }
        })
        .collect()
}

fn config(family: Family) -> TrainConfig {
    TrainConfig {
        labels: LabelSpec { horizon: 1, threshold: 0.0, kind: LabelKind::Binary },
        split: SplitSpec::default(),
        params: Params::from_pairs(family, &[]).unwrap(),
        seed: 42,
    }
}

fn trained(family: Family, p: f64, seed: u64) -> Trained {
    let candles = series(4000, p, seed);
    train(&rows(&candles, &Default::default()), &config(family)).unwrap()
}

/// The gate's accuracy part (the Sharpe part needs the backtester: the CLI's tests).
fn gate() -> GateConfig {
    GateConfig { sharpe_vs_technical: false, ..GateConfig::default() }
}

#[test]
fn features_at_a_candle_do_not_change_with_later_candles() {
    let candles = series(400, 0.5, 1);
    let before = rows(&candles, &Default::default());
    assert!(before.iter().filter(|r| r.features.is_some()).count() > 300, "features warm up within 100 bars");
    for t in [60, 150, 299] {
        // Every candle after t replaced by another walk from the same close.
        let mut changed = candles[..=t].to_vec();
        let other = series(400 - t - 1, 0.9, 99 + t as u64);
        let scale = candles[t].bar.close() / 100.0;
        for (i, c) in other.iter().enumerate() {
            let b = c.bar;
            let bar = Bar::new(
                candles[t + 1 + i].bar.open_time(),
                b.open() * scale * 1.3,
                b.high() * scale * 1.3,
                b.low() * scale * 1.3,
                b.close() * scale * 1.3,
                b.volume() * 7.0,
            )
            .unwrap();
            changed.push(Candle { bar, ..c.clone() });
        }
        let after = rows(&changed, &Default::default());
        assert_eq!(before[..=t], after[..=t], "features up to bar {t} moved when later bars changed");
        assert_ne!(before[t + 1..], after[t + 1..], "the later bars did change");
    }
}

#[test]
fn both_families_learn_a_planted_relation_and_pass_the_gate() {
    for family in [Family::Logistic, Family::Gbt] {
        let t = trained(family, 0.7, 2);
        let acc = t.report.test_accuracy().unwrap();
        assert!(acc > 0.65, "{family:?}: test accuracy {acc}");
        let base = t.report.test_figures.majority.accuracy.unwrap();
        assert!(acc > base + 0.1, "{family:?}: {acc} against the majority's {base}");
        let verdict = gate().judge(&GateFigures { test_accuracy: Some(acc), ..Default::default() });
        assert!(verdict.passed, "{family:?}: {verdict}");
    }
}

#[test]
fn on_a_random_walk_both_stay_near_a_coin_and_the_gate_refuses_with_figures() {
    for family in [Family::Logistic, Family::Gbt] {
        let t = trained(family, 0.5, 3);
        let acc = t.report.test_accuracy().unwrap();
        assert!((0.44..=0.56).contains(&acc), "{family:?}: test accuracy {acc} on a random walk");
        let verdict = gate().judge(&GateFigures { test_accuracy: Some(acc), ..Default::default() });
        assert!(!verdict.passed);
        assert_eq!(verdict.refusals(), format!("test accuracy {acc:.4} below minimum 0.6000"));
    }
}

#[test]
fn the_stage_serves_installs_and_refuses_with_reasons() {
    let good = trained(Family::Gbt, 0.7, 4);
    let newer = trained(Family::Logistic, 0.7, 5);
    let config = StageConfig::with_models(&["technical".into(), "ml:trend".into()]).unwrap();
    let ml = config.ml.models.clone();
    let mut stage = InferenceStage::new(Arc::new(config));
    let candles = series(300, 0.7, 6);
    let kinds = |signals: &[tradeflow_core::signal::Signal]| {
        signals.iter().map(|s| (s.model.clone(), s.model_kind)).collect::<Vec<_>>()
    };
    // Nothing installed: an error signal naming why, the rule model unaffected.
    let s = stage.on_candle(&candles[0]).unwrap();
    assert_eq!(kinds(&s), [("technical".to_string(), ModelKind::Rule), ("ml:trend".to_string(), ModelKind::Ml)]);
    assert_eq!(s[1].status, SignalStatus::Error { reason: "no version loaded yet".into() });
    ml.install("trend", 1, &good.artifact.to_bytes().unwrap()).unwrap();
    let mut answered = 0;
    for c in &candles[1..200] {
        let s = stage.on_candle(c).unwrap();
        assert_eq!(s[1].status, SignalStatus::Ok);
        if s[1].reasoning != "features warming up" {
            answered += 1;
            assert_eq!(s[1].scores["version"], 1.0);
            let p = s[1].scores["p_long"] + s[1].scores["p_short"];
            assert!((p - 1.0).abs() < 1e-9, "{:?}", s[1].scores);
            assert!(s[1].action != Action::Hold && s[1].confidence >= 0.5);
            assert_eq!(s[1].features.len(), tradeflow_models::FEATURE_COUNT);
        }
    }
    assert!(answered > 100, "{answered}");
    // A damaged file is refused; version 1 goes on serving.
    let mut bytes = newer.artifact.to_bytes().unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let e = ml.install("trend", 2, &bytes).unwrap_err();
    assert!(e.starts_with("ml:trend version 2 refused: model file is corrupt: checksum"), "{e}");
    assert_eq!(ml.served_version("trend"), Some(1));
    // Another feature schema is refused with both schemas named.
    let mut other = trained(Family::Logistic, 0.7, 7).artifact;
    other.schema.version = 99;
    other.schema.hash = "0".repeat(32);
    let e = ml.install("trend", 3, &other.to_bytes().unwrap()).unwrap_err();
    assert!(e.contains("feature schema mismatch: the model was trained on candle-features v99"), "{e}");
    let s = stage.on_candle(&candles[200]).unwrap();
    assert_eq!(s[1].scores["version"], 1.0);
    // A sound newer version replaces it at the next candle.
    ml.install("trend", 4, &newer.artifact.to_bytes().unwrap()).unwrap();
    let s = stage.on_candle(&candles[201]).unwrap();
    assert_eq!(s[1].scores["version"], 4.0);
    assert!(s[1].reasoning.starts_with("ml:trend v4 (logistic): p(short)="), "{}", s[1].reasoning);
    // A model that never loaded answers with the reason, and the others go on.
    let lonely = StageConfig::with_models(&["rsi".into(), "ml:broken".into()]).unwrap();
    let e = lonely.ml.models.install("broken", 1, b"not a model").unwrap_err();
    assert!(e.contains("shorter than its 38-byte header"), "{e}");
    let mut stage = InferenceStage::new(Arc::new(lonely));
    let s = stage.on_candle(&candles[0]).unwrap();
    assert_eq!(s[0].status, SignalStatus::Ok);
    assert!(matches!(&s[1].status, SignalStatus::Error { reason } if reason.contains("ml:broken version 1 refused")));
}

#[test]
fn learned_model_names_are_checked() {
    let e = StageConfig::with_models(&["ml:".into(), "ml:a b".into(), "ml:x".into(), "ml:x".into()]).unwrap_err();
    assert_eq!(e.len(), 3, "{e:?}");
    let only = StageConfig::with_models(&["ml:x".into()]).unwrap();
    assert!(only.models.is_empty());
    assert_eq!(only.describe(), "models ml:x; no LLM analyst configured (rule models only)");
}
