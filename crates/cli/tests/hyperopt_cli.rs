//! `tradeflow hyperopt` through the binary: a small grid on a synthetic series whose best
//! `sma_cross` pair is 12/24 (a triangle trend plus a sine of period 12; see
//! crates/backtest/tests/hyperopt.rs), `--json`, `--out` files that `tradeflow backtest`
//! takes, the same trials whatever `--jobs`, and a broken space file.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn tradeflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tradeflow")).args(args).output().expect("run tradeflow")
}

fn write_series(path: &Path, bars: usize) {
    let price = |t: usize| {
        let phase = (t % 480) as f64 / 480.0;
        let tri = if phase < 0.5 { 4.0 * phase - 1.0 } else { 3.0 - 4.0 * phase };
        1000.0 + 300.0 * tri + 100.0 * (2.0 * std::f64::consts::PI * t as f64 / 12.0).sin()
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "timestamp,open,high,low,close,volume").unwrap();
    let mut prev = price(0);
    for t in 0..bars {
        let (o, c) = (prev, price(t));
        let time = 1_600_000_000_000i64 + t as i64 * 3_600_000;
        writeln!(f, "{time},{o:.6},{:.6},{:.6},{c:.6},1", o.max(c) * 1.0005, o.min(c) * 0.9995).unwrap();
        prev = c;
    }
}

const GRID: &str = "[param]\nrules.sma_cross.fast = { int = [6, 24], step = 6 }\nrules.sma_cross.slow = { int = [24, 48], step = 6 }\n";

fn json_out(o: &Output) -> Value {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object on stdout")
}

#[test]
fn grid_json_and_out_files_that_backtest_takes() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("syn.csv");
    write_series(&csv, 2400);
    let space = dir.path().join("space.toml");
    std::fs::write(&space, GRID).unwrap();
    let out = dir.path().join("best");
    let (csv_s, space_s, out_s) = (csv.to_str().unwrap(), space.to_str().unwrap(), out.to_str().unwrap());
    let common = ["hyperopt", "--strategy", "sma_cross", "--commission", "0.001", "--csv", csv_s, "--space", space_s];
    let o = tradeflow(&[&common[..], &["--method", "grid", "--jobs", "2", "--json", "--out", out_s]].concat());
    let v = json_out(&o);
    assert_eq!(v["trials"].as_array().unwrap().len(), 20);
    let best = &v["top"][0];
    assert_eq!(
        (&best["params"]["rules.sma_cross.fast"], &best["params"]["rules.sma_cross.slow"]),
        (&json!(12), &json!(24)),
        "{best}"
    );
    // Plain progress lines when stderr is not a terminal.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("hyperopt: trials 20/20 done, best"), "{stderr}");
    // The files of the winner give the winner's figure in a plain backtest.
    let d = |f: &str| out.join(f).display().to_string();
    let (llm, profiles, accounts) = (d("llm-config.toml"), d("profiles.toml"), d("accounts.toml"));
    let b = tradeflow(&[
        "backtest",
        "--csv",
        csv_s,
        "--models",
        "sma_cross",
        "--llm-config",
        &llm,
        "--profiles",
        &profiles,
        "--accounts",
        &accounts,
        "--json",
    ]);
    let report = json_out(&b);
    let sharpe = report["accounts"][0]["stats"]["Sharpe Ratio"].as_f64().unwrap();
    let in_sample = best["in_sample"].as_f64().unwrap();
    assert!((sharpe - in_sample).abs() <= 1e-9 * in_sample.abs(), "{sharpe} against {in_sample}");
}

#[test]
fn random_is_the_same_with_any_jobs_and_a_broken_space_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("syn.csv");
    write_series(&csv, 600);
    let space = dir.path().join("space.toml");
    std::fs::write(
        &space,
        "[param]\nrules.sma_cross.fast = { int = [3, 30] }\nrules.sma_cross.slow = { int = [20, 90] }\n",
    )
    .unwrap();
    let (csv_s, space_s) = (csv.to_str().unwrap(), space.to_str().unwrap());
    let run = |jobs: &str| {
        let o = tradeflow(&[
            "hyperopt",
            "--strategy",
            "sma_cross",
            "--csv",
            csv_s,
            "--space",
            space_s,
            "--method",
            "random",
            "--trials",
            "8",
            "--seed",
            "42",
            "--test-fraction",
            "0.3",
            "--jobs",
            jobs,
            "--json",
        ]);
        json_out(&o)
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one["trials"], two["trials"]);
    assert_eq!(one["top"], two["top"]);
    assert!(one["top"][0]["out_of_sample"].is_number(), "{}", one["top"][0]);

    std::fs::write(
        &space,
        "[param]\nrules.sma_cross.fats = { int = [3, 30] }\nrules.sma_cross.slow = { float = [20, 90] }\nprofile.nope.min_confidence = { float = [0.1, 0.2] }\n",
    )
    .unwrap();
    let o = tradeflow(&["hyperopt", "--strategy", "sma_cross", "--csv", csv_s, "--space", space_s]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    for part in [
        "param.\"rules.sma_cross.fats\": unknown parameter; valid under rules.sma_cross: rules.sma_cross.fast, rules.sma_cross.slow",
        "param.\"rules.sma_cross.slow\": the key is a whole number",
        "param.\"profile.nope.min_confidence\": unknown parameter; valid under profile: profile.sma_cross.",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from {stderr}");
    }
}
