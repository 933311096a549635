//! Datasets as files: what pyarrow reads from them, CSV import (refusals named by line and
//! column) and export, and how specs find datasets (or say what exists).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tradeflow_core::market::Interval;
use tradeflow_datasets::{DatasetError, Datasets};

const H: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000 / H * H;

fn csv(dir: &Path, name: &str, rows: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Rows with awkward decimals (no exact binary value) and a hole at hour 5.
fn rows() -> Vec<String> {
    (0..10)
        .filter(|k| *k != 5)
        .map(|k| {
            format!(
                "{},{},{},{},{},{}",
                T0 + k * H,
                0.1 + k as f64,
                0.3 + k as f64,
                0.1,
                0.2 + k as f64,
                1e-8 * k as f64
            )
        })
        .collect()
}

#[test]
fn pyarrow_reads_what_tradeflow_writes() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path().join("datasets"));
    let file = csv(dir.path(), "btc.csv", &rows());
    let summary = datasets.import_csv(&file, "csv", "BTCUSD", Interval::H1).unwrap();
    let script = r#"
import json, sys
try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError as e:
    print(f"pyarrow is not installed ({e})", file=sys.stderr)
    sys.exit(3)
t = pq.read_table(sys.argv[1])
meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items() if k.startswith(b"tradeflow.")}
print(json.dumps({
    "schema": [[f.name, str(f.type), f.nullable] for f in t.schema],
    "metadata": meta,
    "open_time": t.column("open_time").cast(pa.int64()).to_pylist(),
    "columns": {c: t.column(c).to_pylist() for c in ["open", "high", "low", "close", "volume", "symbol", "interval", "source"]},
}))
"#;
    let out = match Command::new("python3").arg("-c").arg(script).arg(&summary.path).output() {
        Ok(o) => o,
        Err(e) => {
            panic!("python3 is needed to check the Parquet files with pyarrow ({e}); scripts/setup.sh installs it")
        }
    };
    assert!(
        out.status.success(),
        "python3 with pyarrow could not read {} (scripts/setup.sh installs pyarrow):\n{}",
        summary.path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["schema"],
        serde_json::json!([
            ["open_time", "timestamp[ms, tz=UTC]", false],
            ["open", "double", false],
            ["high", "double", false],
            ["low", "double", false],
            ["close", "double", false],
            ["volume", "double", false],
            ["symbol", "string", false],
            ["interval", "string", false],
            ["source", "string", false]
        ])
    );
    assert_eq!(
        got["metadata"],
        serde_json::json!({"tradeflow.format": "1", "tradeflow.source": "csv", "tradeflow.symbol": "BTCUSD", "tradeflow.interval": "1h"})
    );
    let bars = datasets.read("BTCUSD:1h", None, None).unwrap().bars;
    assert_eq!(bars.len(), 9);
    let times: Vec<i64> = bars.iter().map(|b| b.open_time()).collect();
    assert_eq!(got["open_time"], serde_json::json!(times));
    let column = |name: &str| -> Vec<f64> {
        got["columns"][name].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
    };
    // Bit for bit: JSON carries Python's shortest round-trip text of each double.
    assert_eq!(column("open"), bars.iter().map(|b| b.open()).collect::<Vec<_>>());
    assert_eq!(column("high"), bars.iter().map(|b| b.high()).collect::<Vec<_>>());
    assert_eq!(column("low"), bars.iter().map(|b| b.low()).collect::<Vec<_>>());
    assert_eq!(column("close"), bars.iter().map(|b| b.close()).collect::<Vec<_>>());
    assert_eq!(column("volume"), bars.iter().map(|b| b.volume()).collect::<Vec<_>>());
    assert_eq!(bars[1].open(), 1.1);
    assert_eq!(got["columns"]["symbol"][8], "BTCUSD");
    assert_eq!(got["columns"]["interval"][0], "1h");
    assert_eq!(got["columns"]["source"][3], "csv");
}

#[test]
fn an_import_with_bad_rows_names_each_line_and_column_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path().join("datasets"));
    let mut bad = rows();
    bad[2] = format!("{},1,1,1,abc,1", T0 + 2 * H);
    bad[4] = format!("{},1,2,3,1,1", T0 + 4 * H);
    bad.push(format!("{},1,1,1,1,1", T0 + 3 * H));
    let file = csv(dir.path(), "bad.csv", &bad);
    let e = datasets.import_csv(&file, "csv", "BTCUSD", Interval::H1).unwrap_err();
    let text = e.to_string();
    let DatasetError::Refused { refusals, .. } = &e else { panic!("{e}") };
    assert_eq!(refusals.len(), 3, "{text}");
    for needle in [
        "3 row(s) refused, nothing written".to_string(),
        "line 4, column `close`: \"abc\" is not a number".to_string(),
        "bad.csv line 6: high 2 is below low 3".to_string(),
        format!("bad.csv line 11: open time {} is before the last accepted bar's", T0 + 3 * H),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in:\n{text}");
    }
    assert!(e.is_bad_input());
    assert!(datasets.list().unwrap().is_empty(), "nothing was written");

    let e = datasets.import_csv(&csv(dir.path(), "empty.csv", &[]).with_extension("nope"), "csv", "X", Interval::H1);
    assert!(e.unwrap_err().to_string().contains("cannot open"));
    std::fs::write(dir.path().join("noheader.csv"), "time,open\n1,2\n").unwrap();
    let e = datasets.import_csv(&dir.path().join("noheader.csv"), "csv", "X", Interval::H1).unwrap_err();
    assert!(e.to_string().contains("line 1: the header has no column `timestamp`"), "{e}");
}

#[test]
fn import_appends_export_round_trips_and_specs_find_datasets_or_list_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path().join("datasets"));
    let all = rows();
    let first = datasets.import_csv(&csv(dir.path(), "a.csv", &all[..6]), "csv", "BTCUSD", Interval::H1).unwrap();
    assert_eq!((first.rows_added, first.repeats), (6, 0));
    // Overlapping rows are repeats; only what comes after the last bar is added.
    let second = datasets.import_csv(&csv(dir.path(), "b.csv", &all[3..]), "csv", "BTCUSD", Interval::H1).unwrap();
    assert_eq!((second.rows_added, second.repeats, second.rows_total), (3, 3, 9));
    assert_eq!(second.gaps.len(), 1);
    assert_eq!((second.gaps[0].from, second.gaps[0].to, second.gaps[0].missing), (T0 + 5 * H, T0 + 6 * H, 1));

    let out = dir.path().join("out.csv");
    let exported = datasets.export_csv("BTCUSD:1h", &out, None, None).unwrap();
    assert_eq!(exported.rows, 9);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 10);
    // Each value as the shortest text that reads back as the same double: the source's text.
    assert_eq!(text.lines().skip(1).collect::<Vec<_>>(), all.iter().map(String::as_str).collect::<Vec<_>>());
    let part = datasets.export_csv("csv:BTCUSD:1h", &out, Some(T0 + 2 * H), Some(T0 + 4 * H)).unwrap();
    assert_eq!(part.rows, 2);
    // Imported again as another source, it is the same bars.
    datasets.import_csv(&csv(dir.path(), "c.csv", &all), "other", "BTCUSD", Interval::H1).unwrap();
    let e = datasets.resolve("BTCUSD:1h").unwrap_err();
    assert!(e.to_string().contains("several sources (csv, other); name one: SOURCE:BTCUSD:1h"), "{e}");
    assert_eq!(
        datasets.read("other:BTCUSD:1h", None, None).unwrap().bars,
        datasets.read("csv:BTCUSD:1h", None, None).unwrap().bars
    );

    let e = datasets.read("ETHUSDT:1h", None, None).unwrap_err();
    assert!(e.is_bad_input());
    assert!(e.to_string().contains("no dataset ETHUSDT:1h in"), "{e}");
    assert!(e.to_string().contains("there are: csv:BTCUSD:1h, other:BTCUSD:1h"), "{e}");
    let e = datasets.read("csv:BTCUSD:4h", None, None).unwrap_err();
    assert!(e.to_string().contains("there are: csv:BTCUSD:1h"), "{e}");
    assert!(datasets.read("BTCUSD:1h:x:y", None, None).unwrap_err().to_string().contains("expected SYMBOL:INTERVAL"));
    assert!(datasets.read("csv:btcusd:1h", None, None).is_ok(), "symbols match regardless of case");

    let deleted = datasets.delete("other:BTCUSD:1h").unwrap();
    assert_eq!(deleted.rows, 9);
    assert_eq!(datasets.list().unwrap().iter().map(|d| d.spec.clone()).collect::<Vec<_>>(), vec!["csv:BTCUSD:1h"]);
    assert!(!dir.path().join("datasets/other").exists(), "empty directories go too");
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path());
    let key = tradeflow_datasets::DatasetKey::new("csv", "BTCUSD", Interval::H1).unwrap();
    let held = datasets.lock(&key).unwrap();
    let e = datasets.import_csv(&csv(dir.path(), "a.csv", &rows()), "csv", "BTCUSD", Interval::H1).unwrap_err();
    assert!(e.to_string().contains("is being written by another process"), "{e}");
    drop(held);
    datasets.import_csv(&csv(dir.path(), "a.csv", &rows()), "csv", "BTCUSD", Interval::H1).unwrap();
}
