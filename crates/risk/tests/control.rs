//! Operator commands through a real Redis: the risk worker follows ctl.commands; an emergency
//! stop closes the open position at once (from the runner's tick, with no decision coming) and
//! every later entry is refused with `emergency_stop`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::control::{follow, send_command};
use tradeflow_bus::{Consumer, Producer, Topology};
use tradeflow_core::Payload;
use tradeflow_core::control::{Command, ControlCommand, ControlState};
use tradeflow_core::decision::Decision;
use tradeflow_core::order::{Intent, OrderIntent, Rejection};
use tradeflow_core::signal::Action;
use tradeflow_risk::AccountConfig;
use tradeflow_risk::worker::{RiskFactory, RiskMetrics};
use tradeflow_testkit::{TestRedis, envelopes};

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

fn decision(hour: i64, action: Action) -> Decision {
    Decision { confidence: 0.9, ..tradeflow_testkit::flat_decision("p", "BTC", hour * 3_600_000, action, 100.0) }
}

async fn wait_for<F: Fn(&[tradeflow_bus::Envelope]) -> bool>(bus: &tradeflow_bus::Bus, what: &str, f: F) {
    let start = Instant::now();
    loop {
        let envs = envelopes(bus, "risk.orders").await;
        if f(&envs) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: {} messages on risk.orders", envs.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_stop_closes_positions_and_refuses_entries() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let producer = Producer::new(bus.clone(), "test");
    let stop = CancellationToken::new();
    let (tx, control) = watch::channel(ControlState::default());
    tokio::spawn(follow(bus.clone(), tx, stop.clone()));
    let partitions = bus.topology().stream("ens.decisions").unwrap().partitions;
    let factory = RiskFactory {
        accounts: Arc::new(vec![AccountConfig::paper("a", "p", 10_000.0), AccountConfig::paper("b", "p", 10_000.0)]),
        partitions,
        producer: producer.clone(),
        metrics: RiskMetrics::register(&prometheus::Registry::new()).unwrap(),
        control,
    };
    let consumer = Consumer::new(bus.clone(), "ens.decisions", "risk", "risk", factory).unwrap();
    let task = tokio::spawn(consumer.run(stop.clone()));

    let send = |d: Decision| {
        let producer = producer.clone();
        async move {
            let out = producer.prepare("ens.decisions", &d.id(), &d.profile, None, &d).unwrap();
            producer.send(&[out]).await.unwrap();
        }
    };
    send(decision(0, Action::Long)).await;
    wait_for(&bus, "two entries", |e| e.iter().filter(|e| e.kind == OrderIntent::KIND).count() == 2).await;

    let cmd = ControlCommand::new(Command::EmergencyStop { close_positions: true }, "test", None, 1);
    send_command(&producer, &cmd).await.unwrap();
    // No decision comes: the tick acts on the command.
    wait_for(&bus, "two emergency closes", |e| {
        e.iter()
            .filter_map(|e| e.open::<OrderIntent>().ok())
            .filter(|o| o.intent == Intent::Close && o.reason.starts_with("emergency"))
            .count()
            == 2
    })
    .await;
    send(decision(1, Action::Long)).await;
    wait_for(&bus, "two refusals", |e| {
        e.iter().filter_map(|e| e.open::<Rejection>().ok()).filter(|r| r.reason.code() == "emergency_stop").count() == 2
    })
    .await;
    let alerts = envelopes(&bus, "audit.events").await;
    assert_eq!(alerts.iter().filter(|e| e.kind == "account_alert").count(), 2, "one alert per account");
    stop.cancel();
    task.await.unwrap().unwrap();
}
