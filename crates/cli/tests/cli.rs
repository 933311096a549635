//! The `tradeflow` binary against a redis-server of the test's own.

use std::process::Output;

use serde_json::Value;
use tradeflow_bus::EnvelopeRef;
use tradeflow_bus::envelope::ENVELOPE_FIELD;
use tradeflow_testkit::TestRedis;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

async fn tradeflow(redis: Option<&TestRedis>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env_remove("REDIS_URL").env_remove("TRADEFLOW_CONFIG").env("TRADEFLOW_STREAMS", STREAMS);
    if let Some(r) = redis {
        cmd.env("REDIS_URL", r.url());
    }
    cmd.output().await.expect("tradeflow runs")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_init_is_idempotent_and_health_reports_every_stream() {
    let redis = TestRedis::start().await;
    let first = stdout(&tradeflow(Some(&redis), &["streams", "init"]).await);
    assert!(first.contains("102 created, 0 already there"), "{first}");
    let again = stdout(&tradeflow(Some(&redis), &["streams", "init"]).await);
    assert!(again.contains("0 created, 102 already there"), "{again}");

    let list: Value = serde_json::from_str(&stdout(&tradeflow(None, &["streams", "list", "--json"]).await)).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "audit.events",
            "ctl.commands",
            "ens.decisions",
            "exec.fills",
            "inf.signals",
            "jobs.events",
            "jobs.requests",
            "md.candles",
            "md.news",
            "risk.orders",
            "sys.events"
        ]
    );
    assert_eq!(list[7]["redis_keys"][3], "tf:{md.candles:3}");

    let health: Value =
        serde_json::from_str(&stdout(&tradeflow(Some(&redis), &["streams", "health", "--json"]).await)).unwrap();
    let candles = health.as_array().unwrap().iter().find(|s| s["stream"] == "md.candles").unwrap();
    assert_eq!(candles["partitions"].as_array().unwrap().len(), 8);
    let groups = candles["partitions"][0]["groups"].as_array().unwrap();
    assert!(groups.iter().all(|g| g["exists"] == true && g["pending"] == 0 && g["lag"] == 0), "{groups:?}");
    assert_eq!((candles["status"].as_str(), candles["issues"].as_array().map(Vec::len)), (Some("healthy"), Some(0)));
    let table = stdout(&tradeflow(Some(&redis), &["streams", "health"]).await);
    assert!(table.contains("md.candles") && table.contains("inference 0/0"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_list_stats_replay_and_purge() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(tradeflow_bus::Topology::load(STREAMS).unwrap()).await;
    // A dead letter made the way it happens in production: a consumer meets garbage.
    let key = bus.keys().partition("sys.events", 0);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: String =
        redis::cmd("XADD").arg(&key).arg("*").arg(ENVELOPE_FIELD).arg("not msgpack").query_async(&mut c).await.unwrap();
    let consumer = tradeflow_bus::Consumer::new(bus.clone(), "sys.events", "monitor", "cli-test", Nothing).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(consumer.run(stop.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tradeflow_bus::dlq::Dlq::new(&bus).stats("sys.events").await.unwrap().total == 0 {
        assert!(std::time::Instant::now() < deadline, "dead letter did not appear");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.cancel();
    run.await.unwrap().unwrap();

    let list: Value =
        serde_json::from_str(&stdout(&tradeflow(Some(&redis), &["dlq", "list", "sys.events", "--json"]).await))
            .unwrap();
    let d = &list[0];
    for field in [
        "dead_letter_reason",
        "error",
        "failed_at",
        "original_stream",
        "original_message_id",
        "service_name",
        "final_retry_count",
        "payload",
    ] {
        assert!(d.get(field).is_some(), "dlq list entry lacks {field}: {d}");
    }
    assert_eq!(d["dead_letter_reason"], "decode_error");
    assert_eq!(d["original_stream"], "sys.events");
    assert_eq!(d["service_name"], "cli-test");
    assert_eq!(d["final_retry_count"], 0);

    let stats: Value =
        serde_json::from_str(&stdout(&tradeflow(Some(&redis), &["dlq", "stats", "sys.events", "--json"]).await))
            .unwrap();
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["by_reason"]["decode_error"], 1);

    let id = d["id"].as_str().unwrap();
    let replay = stdout(&tradeflow(Some(&redis), &["dlq", "replay", "sys.events", "--id", id]).await);
    assert!(replay.contains("replayed 1 dead letter(s)"), "{replay}");
    let missing = tradeflow(Some(&redis), &["dlq", "replay", "sys.events", "--id", id]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let none = tradeflow(Some(&redis), &["dlq", "replay", "sys.events"]).await;
    assert!(!none.status.success(), "replay needs one of --id/--all/--reason");
    let purge = stdout(&tradeflow(Some(&redis), &["dlq", "purge", "sys.events"]).await);
    assert!(purge.contains("purged 0"), "{purge}");
    let unknown = tradeflow(Some(&redis), &["dlq", "list", "no.such"]).await;
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no stream named \"no.such\""));
}

#[tokio::test]
async fn a_broken_topology_and_a_missing_redis_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("streams.toml");
    std::fs::write(&bad, "[streams.\"x\"]\ndescription = \"d\"\nkey = \"k\"\ngroups = [\"g\"]\npartitions = 0\n")
        .unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["--streams", bad.to_str().unwrap(), "streams", "list"])
        .env_remove("REDIS_URL")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"streams."x".partitions: must be at least 1, got 0"#), "{err}");

    let out = tradeflow(None, &["streams", "health"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Redis given"));
}

#[tokio::test]
async fn up_once_starts_an_embedded_redis_and_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = tradeflow(None, &["up", "--once", "--data-dir", dir.path().to_str().unwrap()]).await;
    let text = stdout(&out);
    assert!(text.contains("embedded redis-server on redis://127.0.0.1:"), "{text}");
    assert!(text.contains("md.candles"), "{text}");
    assert!(dir.path().join("redis/redis.log").exists());
}

#[tokio::test]
async fn up_runs_ingest_and_inference_until_drained() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv")).unwrap();
    let small = dir.path().join("btc.csv");
    std::fs::write(&small, demo.lines().take(301).collect::<Vec<_>>().join("\n")).unwrap();
    let out = tradeflow(
        None,
        &[
            "up",
            "--exit-when-drained",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--replay",
            small.to_str().unwrap(),
        ],
    )
    .await;
    let text = stdout(&out);
    assert!(text.contains("ingest: 300 candles (0 aggregated), 0 refused"), "{text}");
    let signals = text.lines().find(|l| l.starts_with("inf.signals")).unwrap();
    let cols: Vec<&str> = signals.split_whitespace().collect();
    // Columns: stream, partitions, entries, messages sent, pending, dlq, groups.
    assert_eq!(cols[3], "300", "one technical signal per candle: {signals}");
    assert!(cols[2].parse::<u32>().unwrap() < 300, "signals travel packed: {signals}");
    let candles = text.lines().find(|l| l.starts_with("md.candles")).unwrap();
    assert_eq!(candles.split_whitespace().nth(3), Some("300"), "{candles}");
    let decisions = text.lines().find(|l| l.starts_with("ens.decisions")).unwrap();
    assert_eq!(
        decisions.split_whitespace().nth(3),
        Some("300"),
        "one decision of the default profile per candle: {decisions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_arguments_are_checked_with_clear_errors() {
    let redis = TestRedis::start().await;
    let cases: [(&[&str], &str); 5] = [
        (&["worker", "ingest", "--binance", "BTCUSDT"], "expected SYMBOL:INTERVAL"),
        (&["worker", "ingest", "--binance", "BTCUSDT:2d"], "unknown interval \"2d\""),
        (&["worker", "ingest", "--replay", "/nonexistent/x.csv"], "is not a readable file"),
        (&["worker", "ingest", "--aggregate", "4h:1h"], "cannot aggregate 4h into 1h"),
        (&["worker", "inference", "--models", "rsi,gpt"], "unknown model \"gpt\""),
    ];
    for (args, expected) in cases {
        let out = tradeflow(Some(&redis), args).await;
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_ingest_publishes_every_bar_of_every_symbol() {
    let redis = TestRedis::start().await;
    let out = tradeflow(
        Some(&redis),
        &["worker", "ingest", "--synthetic", "5", "--synthetic-bars", "200", "--interval", "1m"],
    )
    .await;
    assert!(stdout(&out).contains("ingest: 1000 candles (0 aggregated), 0 refused"), "{}", stdout(&out));
    let health: Value =
        serde_json::from_str(&stdout(&tradeflow(Some(&redis), &["streams", "health", "--json"]).await)).unwrap();
    let candles = health.as_array().unwrap().iter().find(|s| s["stream"] == "md.candles").unwrap();
    let entries = candles["length"].as_u64().unwrap();
    assert!((1..1000).contains(&entries), "the candles travel in packed entries: {entries}");
    // Work waits and nobody consumes it: the bus's rules say so, as the edge's do.
    assert_eq!(candles["status"], "degraded", "{candles}");
    let codes: Vec<(&str, &str)> = candles["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["code"].as_str().unwrap(), i["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(codes, [("no_workers", "warning"), ("no_workers", "warning")], "{candles}");
    let table = stdout(&tradeflow(Some(&redis), &["streams", "health"]).await);
    assert!(table.contains("warning md.candles: group inference has work waiting"), "{table}");
    let bus = redis.bus(tradeflow_bus::Topology::load(STREAMS).unwrap()).await;
    assert_eq!(tradeflow_testkit::envelopes(&bus, "md.candles").await.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sources_come_from_the_config_file_when_no_flag_names_one() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tradeflow.toml");
    std::fs::write(&config, "[ingest]\nsynthetic = 3\nsynthetic_bars = 50\ninterval = \"1m\"\npace = \"fast\"\n")
        .unwrap();
    let out = tradeflow(Some(&redis), &["--config", config.to_str().unwrap(), "worker", "ingest"]).await;
    assert!(stdout(&out).contains("ingest: 150 candles"), "{}", stdout(&out));

    std::fs::write(&config, "[ingest]\npace = \"slow\"\nsymbols = 3\n").unwrap();
    let out = tradeflow(Some(&redis), &["--config", config.to_str().unwrap(), "worker", "ingest"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is invalid") && err.contains("expected `fast`"), "{err}");
}

/// A bad cluster address and bad replica-wait settings are refused at start-up, all at once,
/// and the address's password is not repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_settings_are_validated_together_and_a_cluster_password_stays_out_of_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tradeflow.toml");
    std::fs::write(
        &config,
        "[redis]\nurl = \"redis+cluster://u:hunter2@h1:7000,h2\"\nwait_replicas = 1\nwait_timeout_ms = 0\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "streams", "health"])
        .env_remove("REDIS_URL")
        .env_remove("TRADEFLOW_CONFIG")
        .env("TRADEFLOW_STREAMS", STREAMS)
        .env("TRADEFLOW_REDIS_WAIT_REPLICAS", "one")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(err.contains("node \"h2\" is not host:port"), "{err}");
    assert!(err.contains("TRADEFLOW_REDIS_WAIT_REPLICAS \"one\": expected a whole number"), "{err}");
    assert!(err.contains("redis.wait_timeout_ms 0: expected 1 to 60000"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A handler that accepts nothing in particular: every envelope fails to decode as it.
struct Nothing;
struct NothingHandler;
impl tradeflow_bus::Handler for NothingHandler {
    type Msg = ();
    fn decode(&self, env: &EnvelopeRef<'_>) -> Result<(), tradeflow_bus::DecodeError> {
        Err(tradeflow_bus::DecodeError::UnexpectedKind { expected: "none".into(), got: env.kind.to_string() })
    }
    async fn handle(&mut self, _d: &tradeflow_bus::Delivery<()>) -> tradeflow_bus::Outcome {
        tradeflow_bus::Outcome::Done
    }
}
impl tradeflow_bus::HandlerFactory for Nothing {
    type Handler = NothingHandler;
    fn create(&self, _p: u32, _r: Option<&[u8]>) -> Result<NothingHandler, String> {
        Ok(NothingHandler)
    }
}

#[tokio::test]
async fn bench_bus_json_reports_throughput_beside_the_redis_ceiling() {
    // A functional check of the report's shape on a small run; the figures themselves come
    // from a release build (see docs/benchmarks.md).
    let out = tradeflow(None, &["bench", "bus", "--json", "--messages", "3000"]).await;
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(report["msgs_per_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["redis_xadd_ceiling_per_s"].as_f64().unwrap() > 0.0, "{report}");
    let scenarios = report["scenarios"].as_array().unwrap();
    let shapes: Vec<(u64, u64)> =
        scenarios.iter().map(|s| (s["partitions"].as_u64().unwrap(), s["consumers"].as_u64().unwrap())).collect();
    assert_eq!(shapes, [(1, 1), (1, 3), (8, 1), (8, 3)]);
    assert!(scenarios.iter().all(|s| s["messages"] == 3000));
}
