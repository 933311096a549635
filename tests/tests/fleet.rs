//! Fleets of real processes (`fleet_member`) against a real redis-server: order per partition,
//! SIGKILL mid-batch, joining and leaving members, graceful shutdown.

use std::time::Duration;

use tokio::process::Child;
use tradeflow_bus::{Producer, inspect};
use tradeflow_testkit::{TestRedis, test_topology};
use tradeflow_tests::fleet::{self, PARTITIONS, count_of, keys, leases, terminate, wait_for};
use tradeflow_tests::*;

const EXE: &str = env!("CARGO_BIN_EXE_fleet_member");

fn member(url: &str, name: &str, extra: &[&str]) -> Child {
    fleet::member(EXE, url, name, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_keep_order_within_each_partition() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(PARTITIONS, 5)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let members: Vec<Child> = ["a", "b", "c"].iter().map(|n| member(&redis.url(), n, &[])).collect();
    let ks = keys(24);
    // Produce while the fleet forms and rebalances, so ownership moves mid-stream.
    produce(&Producer::new(bus.clone(), "test"), &ks, 250).await.unwrap();
    assert_eq!(sink.wait_seen(6000, Duration::from_secs(60)).await.unwrap(), 6000);
    assert_in_order(&sink, &ks, 250).await.unwrap();
    let handled_by = sink.handled_by().await.unwrap();
    let mut by_member: std::collections::BTreeMap<String, usize> = Default::default();
    for m in handled_by.values() {
        *by_member.entry(m.clone()).or_default() += 1;
    }
    for child in members {
        terminate(child).await;
    }
    assert_eq!(inspect::stream_health(&bus, STREAM).await.unwrap().pending, 0);
    assert_eq!(sink.duplicates().await.unwrap(), 0, "no crash, so no redelivery: {by_member:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_batch_loses_nothing_and_effects_stay_once() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(PARTITIONS, 5)).await;
    fleet::a_member_killed_mid_batch(EXE, &bus, &redis.url(), &redis.url(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_members_rebalance_fairly() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(PARTITIONS, 5)).await;
    let url = redis.url();
    let first = member(&url, "m1", &[]);
    wait_for("m1 to own all partitions", Duration::from_secs(10), async || {
        count_of(&leases(&bus).await, "m1") == PARTITIONS as usize
    })
    .await;

    let second = member(&url, "m2", &[]);
    let third = member(&url, "m3", &[]);
    wait_for("a fair 3/3/2 split", Duration::from_secs(15), async || {
        let l = leases(&bus).await;
        let mut c = [count_of(&l, "m1"), count_of(&l, "m2"), count_of(&l, "m3")];
        c.sort();
        c == [2, 3, 3]
    })
    .await;

    // A member that leaves gracefully hands its partitions over at once (no TTL wait).
    terminate(second).await;
    wait_for("a 4/4 split between the two left", Duration::from_secs(10), async || {
        let l = leases(&bus).await;
        count_of(&l, "m1") == 4 && count_of(&l, "m3") == 4
    })
    .await;

    // Work still flows, in order.
    let sink = Sink::connect(&url).await.unwrap();
    let ks = keys(8);
    produce(&Producer::new(bus.clone(), "test"), &ks, 50).await.unwrap();
    assert_eq!(sink.wait_seen(400, Duration::from_secs(30)).await.unwrap(), 400);
    assert_in_order(&sink, &ks, 50).await.unwrap();
    terminate(first).await;
    terminate(third).await;
    assert!(leases(&bus).await.iter().all(Option::is_none), "leases released on shutdown");
}
