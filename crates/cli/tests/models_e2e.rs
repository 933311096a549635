//! Learned models end to end: a model trained on the demo feed's first 70 % (`tradeflow
//! models train`), deployed (forced when the gate refuses it, which the audit log records),
//! served by `tradeflow up --models technical,ml:demo` under a profile weighting both: `ml`
//! signals and decisions counting them; a newer version deployed during the run is served from
//! the next candles on, without a restart; a damaged file deployed after it is refused with the
//! reason while that version and the rule model go on.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tradeflow_audit::{AuditStore, Row, Table};
use tradeflow_bus::{Bus, Topology};
use tradeflow_core::decision::Decision;
use tradeflow_core::signal::{ModelKind, Signal, SignalStatus};
use tradeflow_testkit::TestRedis;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");

fn tradeflow(redis: &TestRedis, db: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("REDIS_URL", redis.url())
        .env("DATABASE_URL", db)
        .env("TRADEFLOW_STREAMS", STREAMS)
        .env_remove("TRADEFLOW_CONFIG")
        .env_remove("TRADEFLOW_PROFILES")
        .env_remove("TRADEFLOW_ACCOUNTS")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn ok(cmd: &mut tokio::process::Command) -> String {
    let out = cmd.output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// The demo feed's rows `range` (header kept) in a file of `dir`.
fn part(dir: &std::path::Path, name: &str, range: std::ops::Range<usize>) -> String {
    let text = std::fs::read_to_string(DEMO).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let path = dir.join(name);
    let mut out = String::from(header);
    for r in &rows[range] {
        out.push('\n');
        out.push_str(r);
    }
    out.push('\n');
    std::fs::write(&path, out).unwrap();
    path.to_str().unwrap().to_string()
}

async fn ml_signals(bus: &Bus) -> Vec<Signal> {
    tradeflow_testkit::envelopes(bus, "inf.signals")
        .await
        .iter()
        .filter_map(|e| e.open::<Signal>().ok())
        .filter(|s| s.model == "ml:demo")
        .collect()
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_model_is_deployed_served_and_replaced_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/tf.db", dir.path().display());
    let redis = TestRedis::start().await;
    let rows = 20_111;
    let cut = rows * 7 / 10;
    let train = part(dir.path(), "train.csv", 0..cut);
    // The rest, replayed in two goes: before and after the newer version's deploy.
    let first = part(dir.path(), "live1.csv", cut..cut + 1500);
    let second = part(dir.path(), "live2.csv", cut + 1500..cut + 2500);
    let third = part(dir.path(), "live3.csv", cut + 2500..cut + 2700);

    let fast = ["--params", "iterations=40"];
    let said = ok(tradeflow(
        &redis,
        &db,
        &["models", "train", "--name", "demo", "--family", "gbt", "--csv", &train, "--symbol", "BTCUSD"],
    )
    .args(fast))
    .await;
    assert!(said.starts_with("demo v1 (gbt, 21 features"), "{said}");
    let said = ok(&mut tradeflow(
        &redis,
        &db,
        &["models", "train", "--name", "demo", "--family", "logistic", "--csv", &train, "--symbol", "BTCUSD"],
    ))
    .await;
    assert!(said.starts_with("demo v2 (logistic"), "{said}");

    // Deploy v1: through the gate if it passes, else refused with its figures and forced.
    let refused = tradeflow(&redis, &db, &["models", "deploy", "demo", "1"]).output().await.unwrap();
    let forced = !refused.status.success();
    if forced {
        let e = String::from_utf8_lossy(&refused.stderr);
        assert!(e.contains("deploy of demo v1 refused by the gate: test accuracy 0."), "{e}");
        let said = ok(&mut tradeflow(
            &redis,
            &db,
            &["models", "deploy", "demo", "1", "--force", "--reason", "e2e", "--actor", "tester"],
        ))
        .await;
        assert!(said.contains("demo v1 deployed (forced past the gate, audited)"), "{said}");
    }
    {
        let store = AuditStore::connect(&db).await.unwrap();
        let audit: Vec<_> = store
            .rows(Table::Audit, 100, 0)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| match r {
                Row::Audit(a) => Some(a),
                _ => None,
            })
            .collect();
        let actions: Vec<(&str, &str)> = audit.iter().map(|a| (a.action.as_str(), a.status.as_str())).collect();
        if forced {
            assert_eq!(actions, [("model_deploy", "refused"), ("model_deploy_forced", "ok")]);
            let a = &audit[1];
            assert_eq!((a.actor.as_str(), a.resource.as_str()), ("tester", "model_versions/demo/1"));
            let details: serde_json::Value = serde_json::from_str(&a.details).unwrap();
            assert_eq!(details["forced"], true);
            assert_eq!(details["reason"], "e2e");
            assert!(details["figures"]["test_accuracy"].as_f64().unwrap() > 0.3, "{details}");
            assert!(details["gate"]["checks"][0]["detail"].as_str().unwrap().starts_with("test accuracy"), "{details}");
        } else {
            assert_eq!(actions, [("model_deploy", "ok")]);
        }
        let v1 = store.model_version("demo", 1).await.unwrap().unwrap();
        assert_eq!((v1.state.as_str(), v1.forced), ("deployed", forced));
        store.close().await;
    }

    let profiles = dir.path().join("profiles.toml");
    std::fs::write(
        &profiles,
        "[[profile]]\nname = \"blend\"\nmodels = { technical = 1.0, \"ml:demo\" = 2.0 }\nmethod = \"weighted_vote\"\n",
    )
    .unwrap();
    let mut up = tradeflow(
        &redis,
        &db,
        &[
            "up",
            "--no-edge",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--models",
            "technical,ml:demo",
            "--profiles",
            profiles.to_str().unwrap(),
            "--replay",
            &format!("BTCUSD={first}"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stderr = up.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            eprintln!("up: {line}");
            let _ = tx.send(line);
        }
    });
    let bus = Bus::connect(&redis.url(), Topology::load(STREAMS).unwrap()).await.unwrap();
    wait_for("the first part's ml signals", async || ml_signals(&bus).await.len() >= 1500).await;
    let signals = ml_signals(&bus).await;
    assert!(signals.iter().all(|s| s.model_kind == ModelKind::Ml && s.status == SignalStatus::Ok), "{:?}", signals[0]);
    let answered: Vec<&Signal> = signals.iter().filter(|s| s.scores.contains_key("version")).collect();
    // The backtester-style cold start: the features warm up over the replay's first bars.
    assert!(answered.len() > 1400, "{} of {} answered", answered.len(), signals.len());
    assert!(answered.iter().all(|s| s.scores["version"] == 1.0));
    wait_for("the blend decisions", async || tradeflow_testkit::message_count(&bus, "ens.decisions").await >= 1500)
        .await;
    let decisions: Vec<Decision> = tradeflow_testkit::envelopes(&bus, "ens.decisions")
        .await
        .iter()
        .filter_map(|e| e.open::<Decision>().ok())
        .filter(|d| d.profile == "blend")
        .collect();
    let with_ml = decisions
        .iter()
        .filter(|d| {
            d.contributions.iter().any(|c| c.model == "ml:demo" && c.weight == 2.0 && c.status == SignalStatus::Ok)
        })
        .count();
    assert!(with_ml > 1400, "{with_ml} of {} decisions counted ml:demo", decisions.len());

    // A newer version deployed while `up` runs: served from the next candles on.
    let said = ok(&mut tradeflow(&redis, &db, &["models", "deploy", "demo", "2", "--force"])).await;
    assert!(said.contains("demo v2 deployed") && said.contains("v1 retired"), "{said}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(l)) if l.contains("ml:demo serves version 2") => break,
            Ok(Some(_)) => {}
            other => panic!("up never served version 2: {other:?}"),
        }
    }
    ok(&mut tradeflow(&redis, &db, &["worker", "ingest", "--replay", &format!("BTCUSD={second}")])).await;
    wait_for("the second part's ml signals", async || ml_signals(&bus).await.len() >= 2500).await;
    let later: Vec<Signal> = ml_signals(&bus).await.into_iter().skip(1500).collect();
    assert!(later.iter().all(|s| s.scores.get("version") == Some(&2.0)), "{:?}", later[0].scores);
    assert!(later[0].reasoning.starts_with("ml:demo v2 (logistic)"), "{}", later[0].reasoning);

    // A damaged file deployed (forced: its stored figures are v2's) is refused with the
    // reason by the running process; v2 goes on serving and the rule model is untouched.
    {
        let store = AuditStore::connect(&db).await.unwrap();
        let v2 = store.model_version("demo", 2).await.unwrap().unwrap();
        let mut bytes = store.model_file("demo", 2).await.unwrap().unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        let damaged = tradeflow_audit::query::models::NewModelVersion {
            name: "demo",
            family: &v2.family,
            parameters: &v2.parameters,
            feature_schema: &v2.feature_schema,
            feature_hash: &v2.feature_hash,
            train_from: v2.train_from,
            train_to: v2.train_to,
            test_from: v2.test_from,
            test_to: v2.test_to,
            test_accuracy: v2.test_accuracy,
            metrics: &v2.metrics,
            created_by: "tester",
            created_at: 0,
            bytes: &bytes,
        };
        assert_eq!(store.insert_model_version(&damaged).await.unwrap(), 3);
        store.close().await;
    }
    ok(&mut tradeflow(&redis, &db, &["models", "deploy", "demo", "3", "--force"])).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(l)) if l.contains("ml:demo version 3 refused: model file is corrupt: checksum") => break,
            Ok(Some(_)) => {}
            other => panic!("up never refused version 3: {other:?}"),
        }
    }
    // `ctl reload` makes the process read the registry again at once (and retry the refused
    // file); the polls in between do not (the refusal was logged once, with its error event).
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(l) = lines.try_recv() {
        assert!(!l.contains("ml:demo version 3 refused") || l.contains("learned model refused"), "logged again: {l}");
    }
    ok(&mut tradeflow(&redis, &db, &["ctl", "reload"])).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(l)) if l.starts_with("inference: ml:demo version 3 refused: model file is corrupt") => break,
            Ok(Some(_)) => {}
            other => panic!("reload did not read the registry again: {other:?}"),
        }
    }
    let technical_before = tradeflow_testkit::envelopes(&bus, "inf.signals")
        .await
        .iter()
        .filter_map(|e| e.open::<Signal>().ok())
        .filter(|s| s.model == "technical")
        .count();
    ok(&mut tradeflow(&redis, &db, &["worker", "ingest", "--replay", &format!("BTCUSD={third}")])).await;
    wait_for("the third part's ml signals", async || ml_signals(&bus).await.len() >= 2700).await;
    let last: Vec<Signal> = ml_signals(&bus).await.into_iter().skip(2500).collect();
    assert!(last.iter().all(|s| s.scores.get("version") == Some(&2.0) && s.status == SignalStatus::Ok));
    let technical_after = tradeflow_testkit::envelopes(&bus, "inf.signals")
        .await
        .iter()
        .filter_map(|e| e.open::<Signal>().ok())
        .filter(|s| s.model == "technical")
        .count();
    assert_eq!(technical_after, technical_before + 200);

    let pid = up.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), up.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
