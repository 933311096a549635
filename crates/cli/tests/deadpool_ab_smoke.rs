//! Smoke test of `scripts/deadpool-ab/run.sh` (docs/performance.md's deadpool-redis
//! measurement) at one round (round 0): it must build, finish, and print both comparisons' figures.
//! Its first build compiles a small project of its own in release (about two minutes here).

mod smoke_common;

use std::process::Command;
use std::time::Duration;

use smoke_common::{root, run};

#[test]
fn the_deadpool_measurement_runs_one_round_and_prints_both_comparisons() {
    let mut cmd = Command::new(root().join("scripts/deadpool-ab/run.sh"));
    cmd.arg("1").env_remove("REDIS_URL");
    let done = run(&mut cmd, Duration::from_secs(900));
    done.success();
    let out = &done.stdout;
    for line in ["acquire round 0", "request round 0"] {
        let found: Vec<&str> = out.lines().filter(|l| l.starts_with(line)).collect();
        assert!(found.len() >= 2, "fewer than two arms of {line:?} in:\n{out}");
        for l in found {
            assert!(l.contains("p50") && !l.contains("NaN"), "{l}");
        }
    }
}
