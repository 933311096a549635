//! The learners on rows with a planted relation (the next move follows the sign of a feature
//! 70 % of the time) and on noise: learning, determinism under a seed, the model file.

use tradeflow_models::family::Params;
use tradeflow_models::labels::{LabelKind, LabelSpec};
use tradeflow_models::split::SplitSpec;
use tradeflow_models::train::Row;
use tradeflow_models::{Artifact, ArtifactError, FEATURE_COUNT, Family, TrainConfig, train};

/// `n` rows whose next close moves with the sign of feature 0 with probability `p`.
fn rows(n: usize, p: f64, seed: u64) -> Vec<Row> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut close = 100.0;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut f = [0.0; FEATURE_COUNT];
        for v in f.iter_mut() {
            *v = rng.f64() * 2.0 - 1.0;
        }
        out.push(Row { open_time: i as i64 * 3_600_000, close, features: Some(f) });
        let follow = rng.f64() < p;
        let sign = if (f[0] > 0.0) == follow { 1.0 } else { -1.0 };
        close *= 1.0 + sign * (0.001 + rng.f64() * 0.01);
    }
    out
}

fn config(family: Family) -> TrainConfig {
    let params =
        Params::from_pairs(family, &[("iterations".into(), "60".into())][..usize::from(family == Family::Gbt)])
            .expect("valid parameters");
    TrainConfig {
        labels: LabelSpec { horizon: 1, threshold: 0.0, kind: LabelKind::Binary },
        split: SplitSpec::default(),
        params,
        seed: 7,
    }
}

#[test]
fn both_families_learn_a_planted_relation_and_not_noise() {
    for family in [Family::Logistic, Family::Gbt] {
        let t = train(&rows(3000, 0.7, 1), &config(family)).expect("trains");
        let acc = t.report.test_accuracy().expect("measured");
        assert!(acc > 0.64, "{family:?} on the planted relation: test accuracy {acc}");
        let noise = train(&rows(3000, 0.5, 2), &config(family)).expect("trains");
        let acc = noise.report.test_accuracy().expect("measured");
        assert!((0.44..0.56).contains(&acc), "{family:?} on noise: test accuracy {acc}");
    }
}

#[test]
fn same_rows_and_seed_give_the_same_bytes_and_figures() {
    let data = rows(1500, 0.7, 3);
    for family in [Family::Logistic, Family::Gbt] {
        let a = train(&data, &config(family)).expect("trains");
        let b = train(&data, &config(family)).expect("trains");
        assert_eq!(a.artifact.to_bytes().unwrap(), b.artifact.to_bytes().unwrap(), "{family:?}");
        assert_eq!(a.report, b.report, "{family:?}");
    }
}

#[test]
fn the_model_file_round_trips_and_refuses_damage() {
    let data = rows(1500, 0.7, 4);
    let t = train(&data, &config(Family::Gbt)).expect("trains");
    let bytes = t.artifact.to_bytes().unwrap();
    let back = Artifact::from_bytes(&bytes).expect("loads");
    let x = data[10].features.unwrap();
    assert_eq!(back.model.predict(&x), t.artifact.model.predict(&x));
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(Artifact::from_bytes(&flipped), Err(ArtifactError::Checksum { .. })));
    assert!(matches!(Artifact::from_bytes(&bytes[..20]), Err(ArtifactError::TooShort(20))));
    assert!(matches!(
        Artifact::from_bytes(b"PK\x03\x04 not a model at all, just bytes of another file"),
        Err(ArtifactError::Magic(_))
    ));
}

#[test]
fn too_few_rows_is_named() {
    let e = train(&rows(100, 0.7, 5), &config(Family::Logistic)).unwrap_err();
    assert!(e.to_string().starts_with("too few rows: validation has"), "{e}");
}

#[test]
fn walk_forward_folds_are_later_and_purged() {
    let data = rows(3000, 0.7, 6);
    let wf = tradeflow_models::train::walk_forward(&data, &config(Family::Logistic), 4).expect("folds");
    assert_eq!(wf.folds.len(), 4);
    for f in &wf.folds {
        assert!(f.test.first_bar > f.train.last_bar + 1, "{f:?}");
        assert!(f.accuracy.unwrap() > 0.62, "{f:?}");
    }
    assert!(wf.folds.windows(2).all(|w| w[1].train.rows > w[0].train.rows));
    assert!(wf.mean_accuracy.unwrap() > 0.62);
    let noise = tradeflow_models::train::walk_forward(&rows(3000, 0.5, 7), &config(Family::Gbt), 3).unwrap();
    assert!((0.42..0.58).contains(&noise.mean_accuracy.unwrap()), "{noise:?}");
    assert!(tradeflow_models::train::walk_forward(&data, &config(Family::Gbt), 0).is_err());
}
