//! `tradeflow models train --dataset SYMBOL:INTERVAL`: a Parquet dataset of `tradeflow data`
//! trains the same model, with the same figures and trading evaluation, as the same bars in a
//! candle file; a retrain of the dataset's version reads the dataset again; a missing dataset,
//! a `--symbol` beside it and an interval that is not the dataset's are refused.

use std::process::{Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");

fn run(args: &[&str]) -> Output {
    std::process::Command::new(BIN).args(args).stdin(Stdio::null()).env_remove("DATABASE_URL").output().unwrap()
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn failed(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_dataset_trains_as_its_file_does_and_retrains_from_itself() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let head: Vec<&str> = demo.lines().take(3001).collect();
    let csv = dir.path().join("btcusd.csv");
    std::fs::write(&csv, head.join("\n") + "\n").unwrap();
    let data = dir.path().join("data");
    let (csv, data) = (csv.to_str().unwrap(), data.to_str().unwrap());
    let out = run(&["data", "import", "--csv", csv, "--symbol", "BTCUSD", "--interval", "1h", "--data-dir", data]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = format!("sqlite://{}/r.db", dir.path().display());
    let train = |name: &str, source: &[&str]| {
        let mut args = vec!["models", "train", "--name", name, "--family", "gbt", "--json", "--database-url", &db];
        args.extend_from_slice(source);
        args.extend_from_slice(&["--params", "iterations=30"]);
        ok_json(&args)
    };
    let from_file = train("file", &["--csv", csv, "--symbol", "BTCUSD"]);
    let from_dataset = train("set", &["--dataset", "BTCUSD:1h", "--data-dir", data]);
    assert!(from_dataset["report"]["test_figures"].is_object(), "{from_dataset}");
    assert_eq!(from_dataset["report"], from_file["report"], "the same rows, model and figures");
    assert!(from_dataset["trading"]["model"]["trades"].is_number(), "{}", from_dataset["trading"]);
    assert_eq!(from_dataset["trading"], from_file["trading"], "the same trading evaluation");

    // The version records the dataset; a retrain reads it again.
    let shown = ok_json(&["models", "show", "set", "1", "--database-url", &db]);
    let text = shown.to_string();
    assert!(text.contains("\"spec\":\"csv:BTCUSD:1h\"") || text.contains("\"spec\":\"BTCUSD:1h\""), "{text}");
    let again = ok_json(&["models", "retrain", "set", "--json", "--database-url", &db]);
    assert_eq!(again["version"], 2, "{again}");
    assert_eq!(
        again["report"]["test_figures"], from_dataset["report"]["test_figures"],
        "the same bars, the same figures"
    );

    // Refusals, each naming its flag.
    let e = failed(&[
        "models",
        "train",
        "--name",
        "x",
        "--family",
        "gbt",
        "--dataset",
        "NOPE:1h",
        "--data-dir",
        data,
        "--database-url",
        &db,
    ]);
    assert!(e.contains("--dataset NOPE:1h"), "{e}");
    let e = failed(&[
        "models",
        "train",
        "--name",
        "x",
        "--family",
        "gbt",
        "--dataset",
        "BTCUSD:1h",
        "--interval",
        "4h",
        "--data-dir",
        data,
        "--database-url",
        &db,
    ]);
    assert!(e.contains("--interval: the dataset"), "{e}");
    let e = failed(&[
        "models",
        "train",
        "--name",
        "x",
        "--family",
        "gbt",
        "--dataset",
        "BTCUSD:1h",
        "--symbol",
        "X",
        "--database-url",
        &db,
    ]);
    assert!(e.contains("--symbol"), "{e}");
    let e = failed(&["models", "train", "--name", "x", "--family", "gbt", "--database-url", &db]);
    assert!(e.contains("--csv") || e.contains("--dataset"), "{e}");
}
