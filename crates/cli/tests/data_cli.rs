//! `tradeflow data` as a user runs it: a download killed (SIGKILL) half-way and run again
//! writes the very file an uninterrupted download writes; `data list` reports a planted gap;
//! import refusals name the line and column; export, delete, and unknown datasets.

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tradeflow_core::market::Interval;
use tradeflow_core::time::iso_utc;
use tradeflow_testkit::binance::{Market, T0, serve_rest};

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const MIN: i64 = 60_000;

fn tradeflow(dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_remove("REDIS_URL").env_remove("TRADEFLOW_CONFIG").current_dir(dir).kill_on_drop(true);
    cmd
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    tradeflow(dir).args(args).output().await.expect("tradeflow runs")
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "succeeded:\n{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_download_run_again_writes_the_file_an_uninterrupted_download_writes() {
    const N: i64 = 20_000;
    let mut market = Market::default();
    // Bars 7000..7010 are missing: a gap, reported, never filled.
    for k in (0..N).filter(|k| !(7_000..7_010).contains(k)) {
        market.add("BTCUSDT", Interval::M1, k);
    }
    market.delay = Some(Duration::from_millis(100));
    let market = Arc::new(Mutex::new(market));
    let url = serve_rest(market.clone()).await;
    let (from, to) = (T0.to_string(), (T0 + N * MIN).to_string());
    let args = |dir: &str| {
        [
            "data",
            "download",
            "--binance",
            "BTCUSDT:1m",
            "--from",
            &from,
            "--to",
            &to,
            "--binance-rest-url",
            &url,
            "--data-dir",
            dir,
        ]
        .map(String::from)
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = |d: &str| tmp.path().join(d).join("datasets/binance/BTCUSDT/1m.parquet");

    // Killed once its file holds some of the bars.
    let mut child = tradeflow(tmp.path()).args(args("killed")).spawn().unwrap();
    let started = Instant::now();
    while !file("killed").exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no file written within 30 s");
        assert!(child.try_wait().unwrap().is_none(), "the download ended before it was killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let partial = ok(&run(tmp.path(), &["data", "list", "--json", "--data-dir", "killed"]).await);
    let partial: Value = serde_json::from_str(&partial).unwrap();
    let saved = partial[0]["rows"].as_u64().unwrap();
    assert!(saved > 0 && saved < (N - 10) as u64, "{partial}");

    let resumed = ok(&tradeflow(tmp.path()).args(args("killed")).arg("--json").output().await.unwrap());
    let resumed: Value = serde_json::from_str(&resumed).unwrap();
    assert_eq!(resumed["resumed_at"], partial[0]["last_bar"].as_i64().unwrap() + MIN, "{resumed}");
    assert_eq!(resumed["rows_added"].as_u64().unwrap() + saved, (N - 10) as u64);

    let whole = ok(&tradeflow(tmp.path()).args(args("whole")).output().await.unwrap());
    assert!(whole.contains(&format!("BTCUSDT:1m: {} rows added", N - 10)), "{whole}");
    assert!(whole.contains("1 gap(s)"), "{whole}");
    assert_eq!(std::fs::read(file("killed")).unwrap(), std::fs::read(file("whole")).unwrap(), "the same file");

    // `data list` reports the gap: in text and in JSON.
    let text = ok(&run(tmp.path(), &["data", "list", "--data-dir", "killed"]).await);
    assert!(text.lines().any(|l| l.split_whitespace().take(4).eq(["binance", "BTCUSDT", "1m", "19990"])), "{text}");
    let gap = format!("gap: {} to {} UTC, 10 bar(s) missing", iso_utc(T0 + 7_000 * MIN), iso_utc(T0 + 7_010 * MIN));
    assert!(text.contains(&gap), "{text}");
    let list: Value =
        serde_json::from_str(&ok(&run(tmp.path(), &["data", "list", "--json", "--data-dir", "killed"]).await)).unwrap();
    assert_eq!(list[0]["rows"], N - 10);
    assert_eq!(list[0]["gaps"], serde_json::json!([{"from": T0 + 7_000 * MIN, "to": T0 + 7_010 * MIN, "missing": 10}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_list_export_delete_and_their_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let h = 3_600_000i64;
    let t0 = 1_700_002_800_000i64;
    let row = |k: i64, close: &str| format!("{},10,11,9,{close},2", t0 + k * h);
    let header = "timestamp,open,high,low,close,volume";
    std::fs::write(dir.join("bad.csv"), [header, &row(0, "10"), &row(1, "x"), &row(2, "12")].join("\n")).unwrap();
    let e = failed(&run(dir, &["data", "import", "--csv", "bad.csv", "--symbol", "BTCUSD", "--interval", "1h"]).await);
    assert!(e.contains("2 row(s) refused, nothing written"), "{e}");
    assert!(e.contains("bad.csv: line 3, column `close`: \"x\" is not a number"), "{e}");
    assert!(e.contains("bad.csv line 4: close 12 is outside the bar's range"), "{e}");

    std::fs::write(dir.join("good.csv"), [header, &row(0, "10"), &row(1, "10.5"), &row(4, "10.25")].join("\n"))
        .unwrap();
    let out = ok(&run(dir, &["data", "import", "--csv", "good.csv", "--symbol", "BTCUSD", "--interval", "1h"]).await);
    assert!(out.contains("csv:BTCUSD:1h: 3 rows added"), "{out}");
    let gap = format!("gap: {} to {} UTC, 2 bar(s) missing", iso_utc(t0 + 2 * h), iso_utc(t0 + 4 * h));
    assert!(out.contains(&gap), "{out}");
    assert!(dir.join("data/datasets/csv/BTCUSD/1h.parquet").is_file(), "the default --data-dir is ./data");

    let list = ok(&run(dir, &["data", "list"]).await);
    let line = list.lines().find(|l| l.starts_with("csv ")).unwrap_or_else(|| panic!("{list}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (first, last) = (iso_utc(t0), iso_utc(t0 + 4 * h));
    assert_eq!(fields[..8], ["csv", "BTCUSD", "1h", "3", first.as_str(), last.as_str(), "1", "2"], "{list}");
    assert!(list.contains(&gap), "{list}");

    let out = ok(&run(dir, &["data", "export", "BTCUSD:1h", "--csv", "out.csv", "--from", "2023-11-14"]).await);
    assert!(out.contains("csv:BTCUSD:1h: 3 rows"), "{out}");
    let exported = std::fs::read_to_string(dir.join("out.csv")).unwrap();
    assert_eq!(exported, [header, &row(0, "10"), &row(1, "10.5"), &row(4, "10.25")].join("\n") + "\n");

    let e = failed(&run(dir, &["data", "export", "ETHUSD:1h", "--csv", "x.csv"]).await);
    assert!(e.contains("no dataset ETHUSD:1h in data/datasets; there are: csv:BTCUSD:1h"), "{e}");
    let e = failed(&run(dir, &["data", "download", "--binance", "BTCUSDT", "--from", "2024-01-01"]).await);
    assert!(e.contains("--binance BTCUSDT: expected SYMBOL:INTERVAL"), "{e}");
    let e = failed(&run(dir, &["data", "download", "--binance", "BTCUSDT:1h", "--from", "2024-02-30"]).await);
    assert!(e.contains("--from \"2024-02-30\": expected YYYY-MM-DD (UTC) or epoch milliseconds"), "{e}");

    let out = ok(&run(dir, &["data", "delete", "BTCUSD:1h"]).await);
    assert!(out.contains("deleted csv:BTCUSD:1h (3 rows"), "{out}");
    assert!(ok(&run(dir, &["data", "list"]).await).contains("no datasets in data/datasets"));
    assert_eq!(ok(&run(dir, &["data", "list", "--json"]).await).trim(), "[]");
    let e = failed(&run(dir, &["data", "delete", "BTCUSD:1h"]).await);
    assert!(e.contains("no dataset BTCUSD:1h in data/datasets; there is none yet"), "{e}");
}

/// A dataset made from the first `n` bars of the demo feed, imported under `dir/data`.
async fn demo_dataset(dir: &Path, n: usize) -> std::path::PathBuf {
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv")).unwrap();
    let csv = dir.join("demo.csv");
    std::fs::write(&csv, demo.lines().take(n + 1).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    ok(&run(dir, &["data", "import", "--csv", "demo.csv", "--symbol", "BTCUSD", "--interval", "1h"]).await);
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_ingest_and_backtest_take_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    demo_dataset(dir, 500).await;

    // `worker ingest --dataset`: the dataset's candles, under the dataset's source.
    let redis = tradeflow_testkit::TestRedis::start().await;
    let streams = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
    let out = ok(&tradeflow(dir)
        .args(["worker", "ingest", "--dataset", "csv:BTCUSD:1h"])
        .env("REDIS_URL", redis.url())
        .env("TRADEFLOW_STREAMS", streams)
        .output()
        .await
        .unwrap());
    assert!(out.contains("ingest: 500 candles (0 aggregated), 0 refused"), "{out}");
    let bus = redis.bus(tradeflow_bus::Topology::load(streams).unwrap()).await;
    let candles = tradeflow_testkit::envelopes(&bus, "md.candles").await;
    assert_eq!(candles.len(), 500);
    let c: tradeflow_core::market::Candle = candles[0].open().unwrap();
    assert_eq!((c.source.as_str(), c.symbol.as_str(), c.interval), ("csv", "BTCUSD", Interval::H1));
    let e = failed(
        &tradeflow(dir)
            .args(["worker", "ingest", "--dataset", "ETHUSD:1h"])
            .env("REDIS_URL", redis.url())
            .output()
            .await
            .unwrap(),
    );
    assert!(e.contains("--dataset ETHUSD:1h: no dataset ETHUSD:1h in data/datasets; there are: csv:BTCUSD:1h"), "{e}");

    // `backtest --dataset` reports what `backtest --csv` of the same bars reports.
    let report = |args: &[&str]| {
        let args: Vec<String> =
            ["backtest", "--json", "--from", "2017-07-05"].iter().chain(args).map(|s| s.to_string()).collect();
        let dir = dir.to_path_buf();
        async move {
            let mut r: Value =
                serde_json::from_str(&ok(&run(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()).await))
                    .unwrap();
            r.as_object_mut().unwrap().retain(|k, _| k != "elapsed_s" && k != "seconds");
            r
        }
    };
    let from_dataset = report(&["--dataset", "BTCUSD:1h"]).await;
    let from_csv = report(&["--replay", "BTCUSD=demo.csv"]).await;
    assert!(from_dataset["candles"].as_u64().unwrap() > 300, "{}", from_dataset["candles"]);
    assert_eq!(from_dataset["accounts"], from_csv["accounts"]);
    assert_eq!(from_dataset["candles"], from_csv["candles"]);
    let e = failed(&run(dir, &["backtest", "--dataset", "BTCUSD:4h"]).await);
    assert!(e.contains("dataset: no dataset BTCUSD:4h in data/datasets; there are: csv:BTCUSD:1h"), "{e}");
}
