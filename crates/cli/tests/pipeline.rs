//! `tradeflow worker ingest` and `tradeflow worker inference` as separate processes on a real
//! Redis: exactly one signal per model per candle.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tradeflow_bus::{Bus, Topology};
use tradeflow_core::signal::Signal;
use tradeflow_testkit::TestRedis;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");

fn tradeflow(redis: &TestRedis, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("REDIS_URL", redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .env_remove("TRADEFLOW_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn stream_len(bus: &Bus, stream: &str) -> u64 {
    tradeflow_testkit::message_count(bus, stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_inference_and_ensemble_processes_make_one_signal_per_model_and_one_decision_per_profile() {
    let redis = TestRedis::start().await;
    let bus = Bus::connect(&redis.url(), Topology::load(STREAMS).unwrap()).await.unwrap();
    let models = ["rsi", "macd", "bollinger", "volume", "stochastic", "technical"];
    let mut inference = tradeflow(&redis, &["worker", "inference", "--models", &models.join(",")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles.toml");
    std::fs::write(
        &profiles,
        "[[profile]]\nname = \"committee\"\nmodels = { rsi = 1.0, macd = 1.0, bollinger = 1.0, volume = 0.5, stochastic = 1.0 }\nmethod = \"weighted_vote\"\n\n[[profile]]\nname = \"technical\"\nmodels = { technical = 1.0 }\nmethod = \"confidence_weighted_mean\"\n",
    )
    .unwrap();
    let mut ensemble = tradeflow(&redis, &["worker", "ensemble", "--profiles", profiles.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ingest =
        tradeflow(&redis, &["worker", "ingest", "--replay", &format!("BTCUSD={DEMO}")]).output().await.unwrap();
    assert!(ingest.status.success(), "{}", String::from_utf8_lossy(&ingest.stderr));
    let said = String::from_utf8_lossy(&ingest.stdout);
    assert!(said.contains("ingest: 20111 candles (0 aggregated), 0 refused"), "{said}");

    let expected = 20_111 * models.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while stream_len(&bus, "inf.signals").await < expected {
        assert!(Instant::now() < deadline, "only {} of {expected} signals", stream_len(&bus, "inf.signals").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected_decisions = 20_111 * 2;
    while stream_len(&bus, "ens.decisions").await < expected_decisions {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected_decisions} decisions",
            stream_len(&bus, "ens.decisions").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Graceful stop: exit 0 with nothing pending.
    for worker in [&mut inference, &mut ensemble] {
        let pid = worker.id().unwrap().to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(20), worker.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{status}");
    }
    let decisions: HashSet<String> = tradeflow_testkit::envelopes(&bus, "ens.decisions")
        .await
        .iter()
        .map(|e| e.open::<tradeflow_core::decision::Decision>().unwrap().id().to_string())
        .collect();
    assert_eq!(decisions.len() as u64, expected_decisions, "one decision per profile per candle");

    // Exactly one signal per (candle, model): count them by id.
    let mut ids = HashSet::new();
    let mut per_model = std::collections::HashMap::<String, u64>::new();
    for env in tradeflow_testkit::envelopes(&bus, "inf.signals").await {
        let s: Signal = env.open().unwrap();
        assert!(ids.insert(s.id().to_string()), "signal {} twice", s.id());
        *per_model.entry(s.model).or_default() += 1;
    }
    assert_eq!(ids.len() as u64, expected);
    for m in models {
        assert_eq!(per_model.get(m), Some(&20_111), "{m}");
    }
    let health = tradeflow_bus::inspect::stream_health(&bus, "md.candles").await.unwrap();
    let inference_pending: u64 =
        health.partitions.iter().flat_map(|p| &p.groups).filter(|g| g.group == "inference").map(|g| g.pending).sum();
    assert_eq!(inference_pending, 0);
}
