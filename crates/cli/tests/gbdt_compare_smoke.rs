//! Smoke test of `scripts/gbdt-compare/run.sh` (docs/models.md's comparison of the GBDT crates)
//! on the demo feed's first 1,500 candles: it must build its own small project (release, a few
//! minutes the first time), finish, and print both learners' figures.

mod smoke_common;

use std::process::Command;
use std::time::Duration;

use smoke_common::{BIN, root, run};

#[test]
fn the_gbdt_comparison_prints_both_learners() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(root().join("demo/btcusd_1h.csv")).unwrap();
    let head: Vec<&str> = demo.lines().take(1_501).collect();
    let csv = tmp.path().join("head.csv");
    std::fs::write(&csv, head.join("\n") + "\n").unwrap();
    let mut cmd = Command::new(root().join("scripts/gbdt-compare/run.sh"));
    cmd.arg(&csv).env("TRADEFLOW_BIN", BIN);
    let done = run(&mut cmd, Duration::from_secs(900));
    done.success();
    for learner in ["forust-ml 0.8: train", "gbdt 0.1.3: train"] {
        let line = done.stdout.lines().find(|l| l.starts_with(learner));
        let line = line.unwrap_or_else(|| panic!("no {learner:?} line in:\n{}", done.stdout));
        assert!(line.contains("test accuracy 0.") && line.contains("ns/row"), "{line}");
    }
}
