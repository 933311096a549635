//! The whole pipeline, decisions to fills to SQL, on the demo feed:
//! - `tradeflow up --exit-when-drained`: every candle, signal, decision, order and fill in the
//!   audit store, each id once, every order filled, each account's last balance equal to a
//!   fold of its fills; the same on a Redis Cluster of three masters;
//! - the same feed through separate worker processes, three of every stateful stage, one of
//!   them SIGKILLed mid-run: the same rows as the one-process run.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tradeflow_audit::{AuditStore, Row, Table};
use tradeflow_bus::keys::partition_of;
use tradeflow_bus::{Bus, Topology, inspect};
use tradeflow_testkit::TestRedis;

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");
const CANDLES: i64 = 20_111;
const MODELS: &str = "rsi,macd,technical";

const PROFILES: &str = include_str!("../../../tests/data/pipeline/profiles.toml");

/// Two accounts, one per profile; the second with leverage, shorts off, a trailing stop and
/// tight limits so that refusals and stops happen on the demo feed.
const ACCOUNTS: &str = include_str!("../../../tests/data/pipeline/accounts.toml");

fn tradeflow(redis: &TestRedis, dir: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    tradeflow_on(&redis.url(), dir, args)
}

/// `tradeflow` with the bus at `url` (one server or a cluster).
fn tradeflow_on(url: &str, dir: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    // In `dir`: `up`'s default data directory (its edge secret and admin password) is relative.
    cmd.args(args)
        .current_dir(dir)
        .env("REDIS_URL", url)
        .env("TRADEFLOW_STREAMS", dir.join("streams.toml"))
        .env("TRADEFLOW_PROFILES", dir.join("profiles.toml"))
        .env("TRADEFLOW_ACCOUNTS", dir.join("accounts.toml"))
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("tradeflow.db").display()))
        .env_remove("TRADEFLOW_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profiles.toml"), PROFILES).unwrap();
    std::fs::write(dir.path().join("accounts.toml"), ACCOUNTS).unwrap();
    // The project's topology, except that exec.fills keeps what the audit writer acknowledged:
    // the test counts its messages against the store's rows after the run.
    let streams = std::fs::read_to_string(STREAMS).unwrap();
    let fills = "[streams.\"exec.fills\"]\n";
    assert!(streams.contains(fills), "streams.toml has no exec.fills section");
    std::fs::write(dir.path().join("streams.toml"), streams.replace(fills, &format!("{fills}trim_acked = false\n")))
        .unwrap();
    dir
}

/// Every row of every table, with the fields that depend on timing blanked: when the store
/// wrote it, model latency, and event times taken from the wall clock.
async fn rows(store: &AuditStore) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for &t in Table::ALL {
        let mut rows = Vec::new();
        for row in store.rows(t, i64::MAX, 0).await.unwrap() {
            let text = match row {
                Row::Signal(mut s) => {
                    s.latency_us = 0;
                    format!("{s:?}")
                }
                Row::SystemEvent(mut e) => {
                    e.time = 0;
                    e.service = String::new();
                    format!("{e:?}")
                }
                other => format!("{other:?}"),
            };
            rows.push(text);
        }
        rows.sort();
        out.insert(t.name(), rows);
    }
    out
}

async fn check_store(store: &AuditStore) {
    let count = |t| async move { store.count(t).await.unwrap() };
    assert_eq!(count(Table::Candle).await, CANDLES);
    assert_eq!(count(Table::Signal).await, CANDLES * 3, "one signal per model per candle");
    assert_eq!(count(Table::Decision).await, CANDLES * 2, "one decision per profile per candle");
    let orders = count(Table::Order).await;
    let rejections = count(Table::Rejection).await;
    assert!(orders > 100 && rejections > 10, "{orders} orders, {rejections} rejections");

    let fills_by_order: BTreeMap<String, usize> =
        store.rows(Table::Fill, i64::MAX, 0).await.unwrap().into_iter().fold(BTreeMap::new(), |mut m, r| {
            if let Row::Fill(f) = r {
                *m.entry(f.order_id).or_default() += 1;
            }
            m
        });
    for row in store.rows(Table::Order, i64::MAX, 0).await.unwrap() {
        let Row::Order(o) = row else { unreachable!() };
        assert!(fills_by_order.contains_key(&o.id), "order {} has no fill", o.id);
    }
    let mut reasons = BTreeMap::<String, usize>::new();
    for row in store.rows(Table::Rejection, i64::MAX, 0).await.unwrap() {
        let Row::Rejection(r) = row else { unreachable!() };
        assert!(!r.message.is_empty());
        *reasons.entry(r.reason).or_default() += 1;
    }
    assert!(reasons.contains_key("shorting_disabled"), "{reasons:?}");

    // The balance each account ended with is the fold of its fills.
    let balances = store.rows(Table::Balance, i64::MAX, 0).await.unwrap();
    for (account, start) in [("alpha", 10_000.0), ("beta", 5_000.0)] {
        let fills = store.fills(account).await.unwrap();
        assert!(!fills.is_empty(), "{account} traded");
        let folded = fills.iter().fold(start, |b, f| b + f.realized_pnl - f.fee);
        let last = balances
            .iter()
            .filter_map(|r| match r {
                Row::Balance(b) if b.account == account => Some(b),
                _ => None,
            })
            .max_by_key(|b| (b.seq, b.time))
            .unwrap();
        assert!((last.balance - folded).abs() < 1e-6, "{account}: stored {} folded {folded}", last.balance);
    }
    let reasons: BTreeMap<String, usize> =
        store.rows(Table::Fill, i64::MAX, 0).await.unwrap().into_iter().fold(BTreeMap::new(), |mut m, r| {
            if let Row::Fill(f) = r {
                *m.entry(f.reason).or_default() += 1;
            }
            m
        });
    assert!(reasons.contains_key("trailing_stop"), "beta's trailing stop fires on the demo feed: {reasons:?}");
}

async fn all_drained(bus: &Bus) -> bool {
    for (stream, group) in [
        ("md.candles", "inference"),
        ("inf.signals", "ensemble"),
        ("ens.decisions", "risk"),
        ("risk.orders", "exec"),
        ("md.candles", "audit"),
        ("inf.signals", "audit"),
        ("ens.decisions", "audit"),
        ("risk.orders", "audit"),
        ("exec.fills", "audit"),
        ("audit.events", "audit"),
    ] {
        if !inspect::drained(bus, stream, group).await.unwrap() {
            return false;
        }
    }
    true
}

async fn stream_len(bus: &Bus, stream: &str) -> u64 {
    tradeflow_testkit::message_count(bus, stream).await
}

/// `tradeflow up --exit-when-drained` over the demo feed with the bus at `url`, in `dir`; then the
/// store's checks, and each `exec.fills` message one row (no duplicate, nothing lost; marks have
/// none). Returns the store.
async fn up_over_the_demo_feed(url: &str, dir: &std::path::Path) -> AuditStore {
    let up = tradeflow_on(
        url,
        dir,
        &[
            "up",
            "--exit-when-drained",
            "--listen",
            "127.0.0.1:0",
            "--models",
            MODELS,
            "--replay",
            &format!("BTCUSD={DEMO}"),
        ],
    )
    .stdout(Stdio::piped())
    .output()
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "{said}");
    assert!(said.contains("account alpha:"), "{said}");
    let store = AuditStore::connect(&format!("sqlite://{}", dir.join("tradeflow.db").display())).await.unwrap();
    check_store(&store).await;
    let bus = Bus::connect(url, Topology::load(STREAMS).unwrap()).await.unwrap();
    let fills_stream = stream_len(&bus, "exec.fills").await as i64;
    let fill_rows = store.count(Table::Fill).await.unwrap()
        + store.count(Table::Position).await.unwrap()
        + store.count(Table::Balance).await.unwrap();
    assert_eq!(fills_stream, fill_rows, "exec.fills messages vs rows: a duplicate message would differ");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_a_redis_cluster_stores_every_event_once_and_balances_fold_from_fills() {
    let dir = setup();
    let cluster = tradeflow_testkit::cluster::TestCluster::start().await;
    up_over_the_demo_feed(&cluster.url(), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_and_a_fleet_with_a_sigkill_store_the_same_rows() {
    // One process.
    let one = setup();
    let redis = TestRedis::start().await;
    let single = up_over_the_demo_feed(&redis.url(), one.path()).await;
    let expected = rows(&single).await;
    drop(redis);

    // A fleet: 3 of every stateful stage, 2 audit writers; one risk and one exec process killed.
    let fleet = setup();
    let redis = TestRedis::start().await;
    let bus = Bus::connect(&redis.url(), Topology::load(STREAMS).unwrap()).await.unwrap();
    bus.init().await.unwrap();
    let mut workers = Vec::new();
    for stage in ["inference", "ensemble", "risk", "exec"] {
        for i in 0..3 {
            let name = format!("{stage}-{i}");
            let mut args = vec!["worker", stage, "--member-name", &name];
            if stage == "inference" {
                args.extend(["--models", MODELS]);
            }
            workers.push((name.clone(), tradeflow(&redis, fleet.path(), &args).spawn().unwrap()));
        }
    }
    for i in 0..2 {
        let name = format!("audit-{i}");
        workers.push((
            name.clone(),
            tradeflow(&redis, fleet.path(), &["worker", "audit", "--member-name", &name]).spawn().unwrap(),
        ));
    }
    let ingest = tradeflow(&redis, fleet.path(), &["worker", "ingest", "--replay", &format!("BTCUSD={DEMO}")])
        .output()
        .await
        .unwrap();
    assert!(ingest.status.success());
    // Kill when the fills are flowing.
    let start = Instant::now();
    while stream_len(&bus, "exec.fills").await < 200 {
        assert!(start.elapsed() < Duration::from_secs(120), "no fills");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The owners of the partitions the accounts live in (partition p → member p mod 3).
    let risk_victim = format!("risk-{}", partition_of("technical", 8) % 3);
    let exec_victim = format!("exec-{}", partition_of("alpha", 8) % 3);
    for victim in [&risk_victim, &exec_victim] {
        let (_, child) = workers.iter_mut().find(|(n, _)| n == victim).unwrap();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while !all_drained(&bus).await {
        assert!(Instant::now() < deadline, "the fleet did not drain");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (name, child) in workers.iter_mut().filter(|(n, _)| *n != risk_victim && *n != exec_victim) {
        let pid = child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{name}: {status}");
    }
    let store =
        AuditStore::connect(&format!("sqlite://{}", fleet.path().join("tradeflow.db").display())).await.unwrap();
    check_store(&store).await;
    let got = rows(&store).await;
    for (table, want) in &expected {
        let have = &got[table];
        assert_eq!(have.len(), want.len(), "{table}: row count");
        if let Some((w, h)) = want.iter().zip(have).find(|(w, h)| w != h) {
            panic!("{table} differs:\n one process: {w}\n fleet:       {h}");
        }
    }
}
