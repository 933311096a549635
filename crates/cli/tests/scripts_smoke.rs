//! Smoke tests of the scripts the README documents, at small sizes, with this test build's
//! binary (TRADEFLOW_BIN) instead of the release build they make by default:
//! `scripts/setup.sh`, `scripts/run.sh` (then `scripts/sqlite-ceiling/run.sh` on the audit
//! store it wrote) and `scripts/bench-edge.sh`. `scripts/test.sh` runs this suite, so it is
//! not run from inside it.

mod smoke_common;

use std::time::Duration;

use smoke_common::{BIN, root, run};

const LIMIT: Duration = Duration::from_secs(240);

/// The first `n` candles of the demo feed, as a CSV file in `dir`.
fn demo_head(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let demo = std::fs::read_to_string(root().join("demo/btcusd_1h.csv")).unwrap();
    let path = dir.join("candles.csv");
    std::fs::write(&path, demo.lines().take(n + 1).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    path
}

fn script(path: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(root().join(path));
    cmd.env_remove("REDIS_URL").env_remove("TRADEFLOW_CONFIG").env_remove("TRADEFLOW_STREAMS");
    cmd
}

#[test]
fn setup_sh_finds_everything_installed() {
    let done = run(&mut script("scripts/setup.sh"), LIMIT);
    done.success();
    assert!(done.stdout.contains(" ready"), "stdout: {}", done.stdout);
}

/// `scripts/run.sh` over 300 demo candles until drained, then SQLite's own insert rate
/// (`scripts/sqlite-ceiling/run.sh`, built with -O0 here) over the audit store it wrote.
#[test]
fn run_sh_drains_and_sqlite_ceiling_measures_its_audit_store() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = demo_head(tmp.path(), 300);
    let data = tmp.path().join("data");
    let done = run(
        script("scripts/run.sh").env("TRADEFLOW_BIN", BIN).arg("--data-dir").arg(&data).args([
            "--replay",
            &format!("BTCUSD={}", feed.display()),
            "--exit-when-drained",
            "--no-edge",
        ]),
        LIMIT,
    );
    done.success();
    assert!(done.stdout.contains("ingest: 300 candles"), "stdout: {}", done.stdout);
    assert!(done.stdout.contains("audit store: candles 300, signals 300"), "stdout: {}", done.stdout);

    let db = data.join("tradeflow.db");
    let done = run(
        script("scripts/sqlite-ceiling/run.sh")
            .env("TMPDIR", tmp.path())
            .env("CEILING_OPT", "-O0")
            .arg(&db)
            .args(["2", "512"]),
        LIMIT,
    );
    done.success();
    // One line with the secondary indexes, one without: "N rows (...): ... R rows/s, C us cpu/row".
    let lines: Vec<&str> = done.stdout.lines().filter(|l| l.contains(" rows/s")).collect();
    assert_eq!(lines.len(), 2, "stdout: {}", done.stdout);
    for (line, indexes) in lines.iter().zip(["indexes 1", "indexes 0"]) {
        assert!(line.contains(indexes), "{line}");
        let rate: f64 = line.split(" rows/s").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(rate > 0.0, "{line}");
        let rows: u64 = line.split(' ').next().unwrap().parse().unwrap();
        assert!(rows > 600, "2 copies of the audit rows of 300 candles: {line}");
    }
}

/// `scripts/bench-edge.sh 1 2 20 1` over 300 candles: wrk on both routes, then `bench ws`.
#[test]
fn bench_edge_sh_prints_wrk_and_websocket_figures() {
    let done = run(
        script("scripts/bench-edge.sh")
            .env("TRADEFLOW_BIN", BIN)
            .env("BENCH_EDGE_CANDLES", "300")
            .args(["1", "2", "20", "1"]),
        LIMIT,
    );
    done.success();
    let out = &done.stdout;
    for route in ["/api/v1/trading/status", "/api/v1/market/prices"] {
        assert!(out.contains(&format!("-d1s {route}")), "stdout: {out}");
    }
    let rates: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse().expect("wrk's rate"))
        .collect();
    assert_eq!(rates.len(), 2, "stdout: {out}");
    assert!(rates.iter().all(|&r| r > 0.0), "stdout: {out}");
    assert_eq!(out.matches("status 200").count(), 2, "stdout: {out}");
    assert!(
        out.contains("websocket fan-out: 2 of 2 clients, 20 events/s for 1 s: 40 of 40 deliveries"),
        "stdout: {out}"
    );
}

/// `scripts/soak.sh` for 30 s in 10 s windows at 50 candles/s, 2 WebSocket clients and 5 REST
/// requests a second: three windows, every figure measured, and the memory growth line.
#[test]
fn soak_sh_reports_windows_latencies_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("soak.json");
    let done = run(
        script("scripts/soak.sh")
            .env("TRADEFLOW_BIN", BIN)
            .env("SOAK_WINDOW_S", "10")
            .env("SOAK_RATE", "50")
            .env("SOAK_SYMBOLS", "2")
            .env("SOAK_WS_CLIENTS", "2")
            .env("SOAK_WS_EVENTS", "5")
            .env("SOAK_REST_RPS", "5")
            .env("SOAK_JSON", &json)
            .arg("0.5"),
        LIMIT,
    );
    done.success();
    assert!(done.stdout.contains("memory growth after the first window: up "), "stdout: {}", done.stdout);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let windows = report["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3, "{report}");
    for w in windows {
        assert!(w["candles_per_s"].as_f64().unwrap() > 0.0, "{w}");
        assert!(w["rest_requests"].as_u64().unwrap() > 0, "{w}");
        assert_eq!(w["rest_errors"], serde_json::json!({}), "{w}");
        assert!(w["rest_p99_ms"].as_f64().is_some(), "{w}");
        assert_eq!(w["ws_connected"], 2, "{w}");
        assert_eq!(w["ws_delivered"], w["ws_expected"], "{w}");
        for p in ["up", "redis-server", "ingest"] {
            assert!(w["rss_mb"][p].as_f64().unwrap() > 0.0, "{p}: {w}");
        }
    }
    assert!(report["growth_after_warmup_pct"]["up"].is_number(), "{report}");
}

/// `scripts/chaos.sh` at CI size: 20,000 demo candles of one symbol through two processes of
/// every stage, a worker SIGKILLed every 1-2 s (ingest included) and Redis twice; every table
/// of the chaos run equals the clean run's, nothing lost, nothing extra, no dead letter, the
/// invariants hold.
#[test]
fn chaos_sh_kills_workers_and_redis_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("chaos.json");
    let done = run(
        script("scripts/chaos.sh")
            .env("TRADEFLOW_BIN", BIN)
            .env("CHAOS_SYMBOLS", "1")
            .env("CHAOS_KILL_EVERY", "1-2")
            .env("CHAOS_COPIES", "2")
            .env("CHAOS_JSON", &json)
            .arg("20000"),
        LIMIT,
    );
    done.success();
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((report["lost"].as_u64(), report["extra"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(report["redis_kills"], 2, "{report}");
    assert_eq!(report["ingest_exits"], 0, "the ingest worker rides out Redis's restarts: {report}");
    assert!(report["kills_total"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["compared"]["fills"]["lost"], 0, "one symbol: the trading tables are compared too: {report}");
    assert!(report["compared"]["fills"]["rows"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["invariant_problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["dead_letters"], serde_json::json!({}), "{report}");
}

/// `CHAOS_CLUSTER=1 scripts/chaos.sh`: the chaos fleet on a Redis Cluster whose masters are
/// SIGKILLed (their replicas take over) while its workers are; nothing lost or doubled in the
/// store, and the duplicate stream entries are counted.
#[test]
fn chaos_sh_on_a_cluster_kills_masters_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("chaos.json");
    let done = run(
        script("scripts/chaos.sh")
            .env("TRADEFLOW_BIN", BIN)
            .env("CHAOS_CLUSTER", "1")
            .env("CHAOS_SYMBOLS", "1")
            .env("CHAOS_KILL_EVERY", "1-2")
            .env("CHAOS_COPIES", "2")
            .env("CHAOS_JSON", &json)
            .arg("10000"),
        LIMIT,
    );
    done.success();
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((report["lost"].as_u64(), report["extra"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(report["master_kills"].as_array().map(Vec::len), Some(2), "{report}");
    assert_eq!(report["ingest_exits"], 0, "{report}");
    assert_eq!(report["invariant_problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["compared"]["fills"]["lost"], 0, "{report}");
    let dups = &report["duplicate_entries"];
    assert_eq!(dups["clean"]["inf.signals"]["duplicates"], 0, "one process, no kill: {report}");
    assert_eq!(dups["chaos"]["md.candles"]["rows"], 10_000, "{report}");
    assert!(dups["chaos"]["inf.signals"]["duplicates"].as_u64().is_some(), "counted: {report}");
}

/// `scripts/redis-cluster.sh`: a cluster of three masters and three replicas starts, tradeflow
/// creates its streams on it and reads their health back, and the cluster stops.
#[test]
fn redis_cluster_sh_starts_a_cluster_tradeflow_runs_on_and_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let started = run(script("scripts/redis-cluster.sh").arg("start").arg(&dir), LIMIT);
    let url = started.stdout.trim().to_string();
    let tradeflow = |args: &[&str]| {
        run(std::process::Command::new(BIN).args(args).env("REDIS_URL", &url).env_remove("TRADEFLOW_CONFIG"), LIMIT)
    };
    let (init, health) = if started.status.success() {
        (Some(tradeflow(&["streams", "init"])), Some(tradeflow(&["streams", "health"])))
    } else {
        (None, None)
    };
    let stopped = run(script("scripts/redis-cluster.sh").arg("stop").arg(&dir), LIMIT);
    started.success();
    assert!(url.starts_with("redis+cluster://127.0.0.1:"), "{url}");
    assert_eq!(std::fs::read_to_string(dir.join("url")).unwrap().trim(), url);
    let init = init.unwrap();
    init.success();
    assert!(init.stdout.contains(" created"), "{}", init.stdout);
    let health = health.unwrap();
    health.success();
    assert!(health.stdout.contains("md.candles"), "{}", health.stdout);
    stopped.success();
    assert!(stopped.stderr.contains("stopped 6 nodes"), "{}", stopped.stderr);
}
