//! `tradeflow ctl reload` makes a running `worker risk` re-read its accounts: a sound file takes
//! over (here: trading switched off, so the next entry is refused), a broken one is refused
//! with its problems and the running configuration stays.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tradeflow_bus::{Bus, Producer, Topology};
use tradeflow_core::Payload;
use tradeflow_core::decision::Decision;
use tradeflow_core::order::{OrderIntent, Rejection};
use tradeflow_core::signal::Action;
use tradeflow_testkit::{TestRedis, envelopes};

const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

fn tradeflow(redis: &TestRedis, accounts: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("REDIS_URL", redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .env("TRADEFLOW_ACCOUNTS", accounts)
        .env_remove("TRADEFLOW_CONFIG")
        .env_remove("TRADEFLOW_PROFILES")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn decision(symbol: &str) -> Decision {
    tradeflow_testkit::flat_decision("technical", symbol, 0, Action::Long, 100.0)
}

async fn send(producer: &Producer, d: &Decision) {
    let out = producer.prepare("ens.decisions", &d.id(), &d.profile, None, d).unwrap();
    producer.send(&[out]).await.unwrap();
}

/// The kind and (for rejections) reason of the risk message about `symbol`, once it is there.
async fn outcome(bus: &Bus, symbol: &str) -> String {
    let start = Instant::now();
    loop {
        for e in envelopes(bus, "risk.orders").await {
            if e.kind == OrderIntent::KIND && e.open::<OrderIntent>().unwrap().bar.symbol == symbol {
                return "order".into();
            }
            if e.kind == Rejection::KIND {
                let r: Rejection = e.open().unwrap();
                if r.bar.symbol == symbol {
                    return r.reason.code().into();
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no risk message for {symbol}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn expect_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) if line.contains(needle) => return line,
            Ok(Some(_)) => {}
            other => panic!("no line with {needle:?}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_a_sound_configuration_and_refuses_a_broken_one() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let producer = Producer::new(bus.clone(), "test");
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.toml");
    let account = "[[account]]\nid = \"a\"\nprofile = \"technical\"\nstarting_balance = 10000.0\n";
    std::fs::write(&accounts, account).unwrap();

    let mut risk = tradeflow(&redis, &accounts, &["worker", "risk"]).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let mut stderr = BufReader::new(risk.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            let _ = tx.send(line);
        }
    });
    send(&producer, &decision("BTC")).await;
    assert_eq!(outcome(&bus, "BTC").await, "order");

    std::fs::write(&accounts, format!("{account}trading_enabled = false\n")).unwrap();
    let ctl = tradeflow(&redis, &accounts, &["ctl", "reload"]).output().await.unwrap();
    assert!(ctl.status.success(), "{}", String::from_utf8_lossy(&ctl.stderr));
    expect_line(&mut lines, "risk: configuration reloaded").await;
    send(&producer, &decision("ETH")).await;
    assert_eq!(outcome(&bus, "ETH").await, "trading_disabled");

    std::fs::write(&accounts, "[[account]]\nid = \"a\"\nprofile = \"technical\"\nstarting_balance = -1.0\n").unwrap();
    assert!(tradeflow(&redis, &accounts, &["ctl", "reload"]).output().await.unwrap().status.success());
    expect_line(&mut lines, "reload refused").await;
    expect_line(&mut lines, "account[0].starting_balance: must be a positive number, got -1").await;
    send(&producer, &decision("SOL")).await;
    assert_eq!(outcome(&bus, "SOL").await, "trading_disabled", "the running configuration stays");

    let pid = risk.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(20), risk.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}
