//! `tradeflow indicators` end to end: the binary on the daily candles of `tests/data`, every cell
//! against TA-Lib's, and precise errors on malformed input.

#[path = "../../indicators/tests/support/reference.rs"]
mod reference;

use std::process::{Command, Output};

use reference::{ColumnStats, Table, compare_row, market, test_data};
use tradeflow_indicators::COLUMNS;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");

fn tradeflow(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("TRADEFLOW_CONFIG").output().expect("tradeflow runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

fn stderr(o: &Output) -> String {
    assert!(!o.status.success(), "succeeded on bad input: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_cell_of_the_daily_file_matches_talib() {
    let market = market("1d");
    let out = stdout(&tradeflow(&["indicators", "--csv", market.to_str().unwrap()]));
    let ours = Table::parse("tradeflow indicators output", &out).unwrap_or_else(|e| panic!("{e}"));
    let expected_header: Vec<&str> = ["timestamp"].into_iter().chain(COLUMNS).collect();
    assert_eq!(ours.header, expected_header);

    let reference = Table::read(&test_data("reference/talib_btcusd_1d.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours.rows.len(), reference.rows.len(), "one output row per candle");
    // The reference has `close` before the indicators.
    let first = reference.column(COLUMNS[0]).unwrap();
    let mut stats = [ColumnStats::default(); 26];
    for (i, (row, expected)) in ours.rows.iter().zip(&reference.rows).enumerate() {
        assert_eq!(row.timestamp, expected.timestamp, "row {i}");
        if let Err(e) = compare_row(i, row.line, &COLUMNS, &row.cells, &expected.cells[first..], &mut stats) {
            panic!("first mismatch at {e}");
        }
    }
}

#[test]
fn out_writes_the_same_as_standard_output() {
    let market = market("1d");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("indicators.csv");
    let printed = stdout(&tradeflow(&["indicators", "--csv", market.to_str().unwrap()]));
    let quiet = tradeflow(&["indicators", "--csv", market.to_str().unwrap(), "--out", path.to_str().unwrap()]);
    assert!(stdout(&quiet).is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), printed);
}

#[test]
fn malformed_input_is_reported_by_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "timestamp,open,high,low,close,volume\n1000,1,2,0.5,1.5,10\n2000,1.5,2,1,abc,10\n",
            "bad.csv: line 3, column `close`: \"abc\" is not a number",
        ),
        ("timestamp,open,high,low,close\n1000,1,2,0.5,1.5\n", "line 1: the header has no column `volume`"),
        (
            "timestamp,open,high,low,close,volume\n1000,1,2,0.5,1.5,10\n2000,1.5,2,1,1.5\n",
            "line 3: column `volume` is missing",
        ),
        (
            "timestamp,open,high,low,close,volume\n1000,1,2,0.5,1.5,10\n1000,1,2,0.5,1.5,10\n",
            "line 3: candle open time",
        ),
        ("timestamp,open,high,low,close,volume\n1000,1,2,3,1.5,10\n", "line 2: high 2 is below low 3"),
    ];
    for (text, message) in cases {
        let csv = dir.path().join("bad.csv");
        std::fs::write(&csv, text).unwrap();
        let out = dir.path().join("out.csv");
        let run = tradeflow(&["indicators", "--csv", csv.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        let err = stderr(&run);
        assert!(err.contains(message), "expected {message:?} in {err:?}");
        assert!(!out.exists(), "a failed run leaves no output file");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "and no temporary file");
    }
    let missing = stderr(&tradeflow(&["indicators", "--csv", "/nonexistent/candles.csv"]));
    assert!(missing.contains("cannot open /nonexistent/candles.csv"), "{missing}");
}

#[test]
fn bench_indicators_json_reports_ns_per_candle() {
    let out = stdout(&tradeflow(&["bench", "indicators", "--json", "--min-seconds", "0"]));
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let keys: Vec<&str> = report.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["candles", "ns_per_candle"]);
    assert!(report["ns_per_candle"].as_f64().is_some_and(|ns| ns > 0.0), "{report}");
    // At least three passes over the 20,111 hourly candles.
    assert!(report["candles"].as_u64().is_some_and(|n| n >= 3 * 20_111), "{report}");
}
