//! Smoke test of `tradeflow bench backtest` and of the backtesting.py peer script it runs
//! (scripts/peer/backtesting_py_sma.py), at small sizes: each must finish and print its JSON.
//! The figures of a debug build mean nothing; only their presence is checked.

mod smoke_common;

use std::time::Duration;

use smoke_common::{figure, root, run, tradeflow};

const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn bench_backtest_prints_both_chains_and_the_process_against_the_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let r =
        run(tradeflow(tmp.path()).args(["bench", "backtest", "--json", "--candles", "3000", "--repeat", "1"]), LIMIT)
            .json();
    assert_eq!(r["candles"], 3000, "{r}");
    figure(&r, "candles_per_s", f64::MIN_POSITIVE);
    figure(&r, "sma_cross_candles_per_s", f64::MIN_POSITIVE);
    figure(&r["process"], "seconds", f64::MIN_POSITIVE);
    figure(&r["process"], "trades", 1.0);
    // The peer is measured when python3 can import backtesting.py, else says why.
    let peer = &r["backtesting_py"];
    if peer["error"].is_null() {
        figure(peer, "run_s", f64::MIN_POSITIVE);
        assert_eq!(peer["trades"], r["process"]["trades"], "both ran the same strategy on the same bars: {r}");
        figure(&r, "process_speedup_over_backtesting_py_run", f64::MIN_POSITIVE);
    } else {
        assert!(peer["error"].as_str().unwrap().contains("backtesting"), "{r}");
        assert!(r["process_speedup_over_backtesting_py_run"].is_null(), "{r}");
    }
}

#[test]
fn the_peer_script_prints_json_or_why_not() {
    let script = root().join("scripts/peer/backtesting_py_sma.py");
    let demo = root().join("demo/btcusd_1h.csv");
    let out = std::process::Command::new("python3").arg(script).arg(demo).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if r["error"].is_null() {
        // backtesting.py's own figures for the reference run (tests/data/reference).
        assert_eq!((r["bars"].as_u64(), r["trades"].as_u64()), (Some(20_111), Some(545)), "{r}");
    } else {
        assert!(r["error"].as_str().unwrap().contains("pip install backtesting==0.6.6"), "{r}");
    }
}
