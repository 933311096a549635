//! Smoke tests of every `tradeflow bench` subcommand the README documents, at the smallest
//! sizes their flags allow: each must finish, exit 0 and print its JSON report with every
//! figure it measures (so that none can silently stop working again, as `bench inference` did:
//! it waited forever for a count the runner no longer gave). A benchmark's private Redis lives
//! in a temporary directory: none may be left behind, on a normal exit or on SIGTERM.
//! The figures of a debug build mean nothing; only their presence is checked.

mod smoke_common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use smoke_common::{entries, figure, run, signal_group, spawn, tradeflow};
use tradeflow_testkit::TestRedis;

/// Generous for a debug build on a loaded 2-core machine; a hang ends at it.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn bench_indicators_prints_ns_per_candle() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tradeflow(tmp.path()).args(["bench", "indicators", "--json", "--min-seconds", "0.01"]), LIMIT).json();
    figure(&r, "ns_per_candle", f64::MIN_POSITIVE);
    figure(&r, "candles", 1.0);
}

#[test]
fn bench_bus_prints_every_scenario_and_the_xadd_ceiling() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tradeflow(tmp.path()).args(["bench", "bus", "--json", "--messages", "1000"]), LIMIT).json();
    figure(&r, "msgs_per_s", f64::MIN_POSITIVE);
    // redis-benchmark comes with redis-tools (scripts/setup.sh): measured, not null.
    figure(&r, "redis_xadd_ceiling_per_s", f64::MIN_POSITIVE);
    let scenarios = r["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 4, "{r}");
    for s in scenarios {
        assert_eq!(s["messages"], 1000, "{s}");
        figure(s, "msgs_per_s", f64::MIN_POSITIVE);
        figure(s, "produce_per_s", f64::MIN_POSITIVE);
    }
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "the private Redis's directory is left behind");
}

#[test]
fn bench_inference_finishes_with_one_signal_per_candle() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tradeflow(tmp.path()).args(["bench", "inference", "--json", "--symbols", "1"]), LIMIT).json();
    let candles = figure(&r, "candles", 1000.0);
    assert_eq!(r["models"], 1, "{r}");
    assert_eq!(figure(&r, "signals", 1.0), candles, "one signal per candle with `technical`: {r}");
    assert_eq!(r["dead_lettered"], 0, "{r}");
    figure(&r, "candles_per_s", f64::MIN_POSITIVE);
    figure(&r, "signals_per_s", f64::MIN_POSITIVE);
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "the private Redis's directory is left behind");
}

#[test]
fn bench_pipeline_prints_throughput_latency_and_audit_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(
        tradeflow(tmp.path()).args([
            "bench",
            "pipeline",
            "--json",
            "--candles",
            "1000",
            "--rate",
            "500",
            "--latency-seconds",
            "1",
            "--audit-rows",
            "4000",
        ]),
        LIMIT,
    )
    .json();
    assert_eq!(r["candles"], 1000, "{r}");
    assert_eq!(r["audit_backend"], "sqlite", "{r}");
    for key in ["candles_per_s", "trading_candles_per_s", "seconds", "audit_rows_per_s", "rate_per_s"] {
        figure(&r, key, f64::MIN_POSITIVE);
    }
    figure(&r, "latency_samples", 1.0);
    for key in [
        "p50_ms",
        "p99_ms",
        "max_ms",
        "order_p50_ms",
        "order_p99_ms",
        "signal_p50_ms",
        "signal_p99_ms",
        "decision_p50_ms",
        "decision_p99_ms",
    ] {
        figure(&r, key, 0.0);
    }
    // The audit's catch-up against SQLite's own ceiling: the ceiling is always measured on
    // SQLite; a catch-up too short to time is null with the reason, never a made-up figure.
    figure(&r, "sqlite_ceiling_rows_per_s", f64::MIN_POSITIVE);
    if r["audit_catch_up_rows_per_s"].is_null() {
        assert!(r["audit_catch_up_note"].as_str().is_some_and(|n| n.contains("too soon")), "{r}");
        assert!(r["audit_catch_up_of_ceiling"].is_null(), "{r}");
    } else {
        figure(&r, "audit_catch_up_of_ceiling", f64::MIN_POSITIVE);
    }
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "a temporary directory is left behind");
}

/// `bench ws` against the edge alone (`tradeflow edge`, anonymous reads) on a test Redis.
#[test]
fn bench_ws_prints_deliveries_and_latencies() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redis = rt.block_on(TestRedis::start());
    std::fs::write(tmp.path().join("tradeflow.toml"), "[edge]\nanonymous_read = true\n").unwrap();
    let mut edge =
        spawn(tradeflow(tmp.path()).env("REDIS_URL", redis.url()).env_remove("TRADEFLOW_JWT_SECRET").args([
            "--config",
            "tradeflow.toml",
            "edge",
            "--dev",
            "--listen",
            "127.0.0.1:0",
        ]));
    // `edge: http://ADDR/api/v1 (docs ...)` once it listens.
    let mut lines = BufReader::new(edge.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix("edge: http://") {
                    break rest.split('/').next().unwrap().to_string();
                }
            }
            _ => {
                signal_group(edge.id(), "KILL");
                panic!("the edge exited before listening ({:?})", edge.wait());
            }
        }
        assert!(started.elapsed() < LIMIT, "the edge did not start");
    };
    let r = run(
        tradeflow(tmp.path()).env("REDIS_URL", redis.url()).args([
            "bench",
            "ws",
            "--json",
            "--url",
            &format!("ws://{addr}"),
            "--clients",
            "2",
            "--rate",
            "20",
            "--seconds",
            "1",
        ]),
        LIMIT,
    );
    signal_group(edge.id(), "TERM");
    let _ = edge.wait();
    let r = r.json();
    assert_eq!(r["connected"], 2, "{r}");
    assert_eq!(r["published"], 20, "{r}");
    assert_eq!(r["delivered"], r["expected"], "{r}");
    assert_eq!(r["expected"], 40, "{r}");
    assert_eq!(r["dropped"], 0, "{r}");
    figure(&r, "deliveries_per_s", f64::MIN_POSITIVE);
    for key in ["p50_ms", "p99_ms", "max_ms"] {
        figure(&r, key, 0.0);
    }
    drop(redis);
}

/// SIGTERM in the middle of a run: the bench exits at once, its private redis-server killed
/// and its temporary directory removed (they were left behind before).
#[test]
fn a_bench_stopped_by_sigterm_leaves_no_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut bench = spawn(tradeflow(tmp.path()).args(["bench", "bus", "--json", "--messages", "10000000"]));
    // Its Redis's directory appears once the bench has started it.
    while !entries(tmp.path()).iter().any(|e| e.starts_with("tradeflow-bench-redis-")) {
        assert!(started.elapsed() < LIMIT, "no private Redis directory appeared");
        assert!(bench.try_wait().unwrap().is_none(), "the bench exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::process::Command::new("kill").args(["-TERM", &bench.id().to_string()]).status();
    let stopped = Instant::now();
    let done = smoke_common::finish(&mut bench, started, LIMIT, "bench bus");
    assert!(stopped.elapsed() < Duration::from_secs(10), "took {:?} to stop", stopped.elapsed());
    assert!(!done.status.success(), "a stopped bench is a failed run: {:?}", done.status);
    assert!(done.stderr.contains("stopped by SIGTERM"), "stderr: {}", done.stderr);
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left behind after SIGTERM");
}

#[test]
fn bench_jobs_prints_start_event_and_cancel_latencies() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(tradeflow(tmp.path()).args(["bench", "jobs", "--json", "--jobs", "2", "--cancels", "1"]), LIMIT).json();
    assert_eq!(r["jobs"], 2, "{r}");
    for what in ["start_latency_ms", "event_latency_ms", "cancel_latency_ms", "backtest_run_ms"] {
        assert!(r[what]["n"].as_u64().unwrap_or(0) >= 1, "{what}: {r}");
        figure(&r[what], "max", 0.0);
    }
    figure(&r, "backtest_jobs_per_s", f64::MIN_POSITIVE);
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "the private Redis's directory is left behind");
}

#[test]
fn bench_models_prints_training_time_and_latency_per_family() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(
        tradeflow(tmp.path()).args([
            "bench",
            "models",
            "--json",
            "--candles",
            "1500",
            "--iterations",
            "10",
            "--min-seconds",
            "0.01",
        ]),
        LIMIT,
    )
    .json();
    assert_eq!(r["candles"], 1500, "{r}");
    figure(&r, "rows_seconds", f64::MIN_POSITIVE);
    let families = r["families"].as_array().expect("families");
    assert_eq!(families.iter().map(|f| f["family"].as_str().unwrap()).collect::<Vec<_>>(), ["logistic", "gbt"]);
    for f in families {
        figure(f, "train_seconds", f64::MIN_POSITIVE);
        figure(f, "predict_ns_per_candle", f64::MIN_POSITIVE);
        figure(f, "test_accuracy", 0.3);
        figure(f, "model_file_bytes", 100.0);
        assert!(f["stage_ns_per_candle"].is_number(), "{f}");
    }
}

#[test]
fn bench_inference_serves_learned_models() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(
        tradeflow(tmp.path()).args([
            "bench",
            "inference",
            "--json",
            "--symbols",
            "1",
            "--models",
            "technical,ml:bench",
        ]),
        LIMIT,
    )
    .json();
    let candles = figure(&r, "candles", 1000.0);
    assert_eq!(r["models"], 2, "{r}");
    assert_eq!(figure(&r, "signals", 1.0), 2.0 * candles, "{r}");
    figure(&r, "candles_per_s", f64::MIN_POSITIVE);
}
