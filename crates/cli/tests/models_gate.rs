//! `tradeflow models train` with the whole gate (test accuracy ≥ 0.60 and the test window's
//! Sharpe through the backtester at least `technical`'s), on a synthetic series with a planted
//! relation (the next bar moves the way the last one did with probability 0.7) and on a pure
//! random walk: both families pass on the first and are refused on the second, with figures.

use std::process::Stdio;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");

/// `n` hourly bars from 100 whose next move follows the last one's direction with probability
/// `p`, sizes 0.1–1 %; a linear congruential generator keeps the file the same on every run.
fn series(path: &std::path::Path, n: usize, p: f64, seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from("timestamp,open,high,low,close,volume\n");
    let (mut close, mut up) = (100.0f64, true);
    for i in 0..n {
        up = if next() < p { up } else { !up };
        let open = close;
        let size = 0.001 + next() * 0.009;
        close = if up { open * (1.0 + size) } else { open * (1.0 - size) };
        let high = open.max(close) * (1.0 + next() * 0.002);
        let low = open.min(close) * (1.0 - next() * 0.002);
        let volume = 10.0 + next() * 5.0;
        out.push_str(&format!(
            "{},{open},{high},{low},{close},{volume}\n",
            1_500_000_000_000i64 + i as i64 * 3_600_000
        ));
    }
    std::fs::write(path, out).unwrap();
}

fn train(dir: &std::path::Path, csv: &std::path::Path, name: &str, family: &str) -> serde_json::Value {
    let db = format!("sqlite://{}/r.db", dir.display());
    let out = std::process::Command::new(BIN)
        .args(["models", "train", "--name", name, "--family", family, "--json", "--csv", csv.to_str().unwrap()])
        .args(["--symbol", "SYN", "--folds", "3", "--database-url", &db])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_gate_passes_a_planted_relation_and_refuses_a_random_walk_with_figures() {
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("planted.csv");
    let walk = dir.path().join("walk.csv");
    series(&planted, 4000, 0.7, 1);
    series(&walk, 4000, 0.5, 2);
    for family in ["logistic", "gbt"] {
        let r = train(dir.path(), &planted, &format!("p-{family}"), family);
        let acc = r["gate"]["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.62, "{family}: {acc}");
        let folds = r["report"]["walk_forward"]["folds"].as_array().unwrap();
        assert_eq!(folds.len(), 3, "{}", r["report"]["walk_forward"]);
        assert!(
            r["report"]["walk_forward"]["mean_accuracy"].as_f64().unwrap() > 0.6,
            "{}",
            r["report"]["walk_forward"]
        );
        let (sharpe, technical) = (r["gate"]["sharpe"].as_f64().unwrap(), r["gate"]["technical_sharpe"].as_f64());
        assert_eq!(r["verdict"]["passed"], true, "{family}: {}", r["verdict"]);
        assert!(technical.is_none_or(|t| sharpe >= t), "{family}: {sharpe} vs {technical:?}");
        assert!(r["trading"]["model"]["trades"].as_u64().unwrap() > 10, "{}", r["trading"]);

        // Retrained with the same settings (no version deployed: the latest's), same gate.
        let db = format!("sqlite://{}/r.db", dir.path().display());
        let out = std::process::Command::new(BIN)
            .args(["models", "retrain", &format!("p-{family}"), "--json", "--database-url", &db])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(again["version"], 2, "{again}");
        assert_eq!(again["gate"], r["gate"], "same settings, same data: same figures");

        let r = train(dir.path(), &walk, &format!("w-{family}"), family);
        let acc = r["gate"]["test_accuracy"].as_f64().unwrap();
        assert!((0.44..=0.56).contains(&acc), "{family}: {acc} on a random walk");
        assert_eq!(r["verdict"]["passed"], false);
        let accuracy_check = &r["verdict"]["checks"][0];
        assert_eq!(accuracy_check["passed"], false);
        assert_eq!(accuracy_check["detail"], format!("test accuracy {acc:.4} below minimum 0.6000"));
    }
}
