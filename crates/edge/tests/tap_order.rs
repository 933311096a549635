//! The edge's tap hands messages on in the order Redis took them across streams and
//! partitions, not stream after stream as XREAD answers: a WebSocket client sees a cycle's
//! start (audit.events) before its decisions (ens.decisions) even when one read gets both.

use std::time::Duration;

use tradeflow_bus::tap::{From, Tap};
use tradeflow_bus::{Producer, Topology};
use tradeflow_core::signal::Action;
use tradeflow_testkit::{TestRedis, flat_decision};

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

#[tokio::test]
async fn one_read_across_streams_comes_in_time_order() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let producer = Producer::new(bus.clone(), "tap-test");
    // Written one after the other, a few milliseconds apart, alternating streams and keys
    // (so partitions too).
    let sent = [("audit.events", "a"), ("ens.decisions", "b"), ("audit.events", "c"), ("ens.decisions", "d")];
    for (n, (stream, profile)) in sent.iter().enumerate() {
        let d = flat_decision(profile, "BTCUSD", n as i64 * 3_600_000, Action::Hold, 100.0);
        let out = producer.prepare(stream, &d.id(), profile, None, &d).unwrap();
        producer.send(&[out]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // ens.decisions named first: a plain XREAD would answer all of it before audit.events.
    let mut tap =
        Tap::open(&bus, &["ens.decisions", "audit.events"], From::Start, Duration::from_millis(100)).await.unwrap();
    let read = tap.next().await.unwrap();
    let order: Vec<(&str, String)> = read
        .iter()
        .map(|t| (t.stream.as_str(), t.envelope.payload_json()["profile"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(&str, String)> = sent.iter().map(|(s, p)| (*s, p.to_string())).collect();
    assert_eq!(order, expected);
}
