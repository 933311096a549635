//! `tradeflow backtest` as a user runs it: the backtesting.py reference reproduced through the
//! command line, byte-identical reruns, bad input reported with its line, and the files of
//! `--out`.

use std::path::Path;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");
const REFERENCE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001.json");
const REFERENCE_TRADES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/reference/bt_sma_cross_10_20_btcusd_1h_comm0.001_trades.csv"
);

fn backtest(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .arg("backtest")
        .args(args)
        .env_remove("TRADEFLOW_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

const SMA: &[&str] = &[
    "--strategy",
    "sma_cross",
    "--param",
    "fast=10",
    "--param",
    "slow=20",
    "--cash",
    "10000",
    "--commission",
    "0.001",
];

#[test]
fn sma_cross_reproduces_the_backtesting_py_reference_through_the_command_line() {
    let mut args = SMA.to_vec();
    args.extend(["--csv", DEMO, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&backtest(&args))).unwrap();
    let account = &report["accounts"][0];
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(REFERENCE).unwrap()).unwrap();
    let stats = account["stats"].as_object().unwrap();
    let mut compared = 0;
    for (key, got) in stats {
        let want = &reference[key];
        match (got.as_f64(), want.as_f64()) {
            (Some(g), Some(w)) => {
                assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{key}: {g} against {w}");
            }
            _ => assert_eq!(got, want, "{key}"),
        }
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} statistics");

    let trades = account["trades"].as_array().unwrap();
    let text = std::fs::read_to_string(REFERENCE_TRADES).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let reference: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(trades.len(), reference.len());
    for (t, r) in trades.iter().zip(&reference) {
        for key in ["entry_bar", "exit_bar", "entry_time_ms", "exit_time_ms"] {
            assert_eq!(t[key].as_i64().unwrap(), r[col(key)].parse::<i64>().unwrap(), "{key} of {t}");
        }
        // Exact but for backtesting.py's FractionalBacktest, which scales prices by the unit
        // (× 1e-8) and back: its prices can be an ulp or two off the file's.
        for key in ["entry_price", "exit_price"] {
            let (got, want) = (t[key].as_f64().unwrap(), r[col(key)].parse::<f64>().unwrap());
            assert!((got - want).abs() <= 4.0 * f64::EPSILON * want.abs(), "{key} of {t}: {want}");
        }
        let size: f64 = r[col("size")].parse().unwrap();
        assert!((t["size"].as_f64().unwrap() - size).abs() < 1e-8, "size of {t}");
        let pnl: f64 = r[col("pnl")].parse().unwrap();
        assert!((t["pnl"].as_f64().unwrap() - pnl).abs() <= 1e-6 * pnl.abs().max(1.0), "pnl of {t}");
    }
}

#[test]
fn the_same_inputs_give_byte_identical_output() {
    let args = ["--replay", &format!("BTCUSD={DEMO}"), "--models", "technical,rsi,macd", "--json"];
    let (a, b) = (ok(&backtest(&args)), ok(&backtest(&args)));
    assert!(a.len() > 1000);
    assert!(a == b, "two runs differ");
}

fn bad_file(dir: &Path) -> String {
    let path = dir.join("bad.csv");
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let mut lines: Vec<String> = demo.lines().take(200).map(str::to_string).collect();
    let fields: Vec<&str> = lines[50].split(',').collect();
    lines[50] = format!("{},abc,{},{},{},{}", fields[0], fields[2], fields[3], fields[4], fields[5]);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

#[test]
fn a_bad_row_is_reported_with_its_line_and_strict_stops_there() {
    let dir = tempfile::tempdir().unwrap();
    let file = bad_file(dir.path());
    let out = backtest(&["--csv", &file]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 51, column `open`: \"abc\" is not a number"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("198 candles (1 rows refused)"));

    let out = backtest(&["--csv", &file, "--strict"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--strict") && err.contains("line 51, column `open`"), "{err}");
}

#[test]
fn unknown_names_list_the_valid_ones_and_an_empty_range_says_so() {
    let cases: &[(&[&str], &str)] = &[
        (&["--strategy", "golden_goose"], "expected one of sma_cross"),
        (&["--strategy", "sma_cross", "--param", "speed=2"], "expected one of fast, slow"),
        (&["--models", "astrology"], "expected one of rsi, macd"),
        (&["--from", "2030-01-01"], "no candle in the input from 1893456000000"),
        (&["--from", "2018-02-01", "--to", "2018-01-01"], "the date range is empty"),
    ];
    for (args, expected) in cases {
        let out = backtest(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn out_writes_trades_equity_and_statistics_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = SMA.to_vec();
    let out_dir = dir.path().display().to_string();
    args.extend(["--csv", DEMO, "--to", "2018-01-01", "--out", &out_dir]);
    ok(&backtest(&args));
    let account = dir.path().join("sma_cross");
    let trades = std::fs::read_to_string(account.join("trades.csv")).unwrap();
    assert!(trades.starts_with("entry_bar,exit_bar,entry_time_ms,exit_time_ms,"));
    assert!(trades.lines().count() > 50);
    let equity = std::fs::read_to_string(account.join("equity.csv")).unwrap();
    // One point per bar before 2018: 2017-07-01 11:00 to 2017-12-31 23:00.
    assert_eq!(equity.lines().count() - 1, 4405);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(account.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["# Trades"].as_u64().unwrap() as usize, trades.lines().count() - 1);
}

#[test]
fn a_reader_that_goes_away_ends_the_report_quietly() {
    use std::io::Read;
    // `tradeflow backtest --json | head -c 100`: the pipe closes after 100 bytes.
    let mut child = std::process::Command::new(BIN)
        .args(["backtest", "--models", "technical,rsi", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}
