//! The bus on a Redis Cluster of three masters with a replica each, started by each test on
//! loopback (`tradeflow_testkit::cluster`): a fleet member SIGKILLed mid-batch, and a master
//! SIGKILLed mid-run with its replica promoted. Nothing is lost, and effects stay once.
//!
//! The sink (the effects the tests count) lives on a server of its own: its script updates keys
//! of several slots at once, which a cluster refuses; the bus itself needs no such thing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tradeflow_bus::connection::Replication;
use tradeflow_bus::{Bus, BusMetrics, Producer, inspect};
use tradeflow_testkit::cluster::TestCluster;
use tradeflow_testkit::{TestRedis, test_topology};
use tradeflow_tests::fleet::{self, PARTITIONS, keys, terminate};
use tradeflow_tests::*;

const EXE: &str = env!("CARGO_BIN_EXE_fleet_member");

async fn cluster_bus(cluster: &TestCluster, replication: Replication) -> Bus {
    let bus = Bus::connect(&cluster.url(), test_topology(PARTITIONS, 5)).await.expect("bus on the cluster");
    let bus = bus.with_replication(replication);
    bus.init().await.expect("streams created on the cluster");
    assert!(bus.is_cluster());
    bus
}

/// The masters the stream's partitions live on: the tests mean nothing unless several.
async fn masters_used(cluster: &TestCluster, bus: &Bus) -> BTreeSet<u16> {
    let mut masters = BTreeSet::new();
    for p in 0..PARTITIONS {
        masters.insert(cluster.master_of(&bus.keys().partition(STREAM, p)).await);
    }
    masters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_batch_on_a_cluster_loses_nothing_and_effects_stay_once() {
    let cluster = TestCluster::start().await;
    let sink = TestRedis::start().await;
    let bus = cluster_bus(&cluster, Replication::default()).await;
    let masters = masters_used(&cluster, &bus).await;
    assert_eq!(masters.len(), 3, "8 partitions over 3 masters: {masters:?}");
    fleet::a_member_killed_mid_batch(EXE, &bus, &cluster.url(), &sink.url(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_run_is_replaced_by_its_replica_and_nothing_is_lost_or_doubled() {
    let mut cluster = TestCluster::start().await;
    let sink_server = TestRedis::start().await;
    let sink = Sink::connect(&sink_server.url()).await.unwrap();
    // Every write waits for the replica: what a master acknowledged is on its replica before
    // anyone acts on it, so the promoted replica has it.
    let replication = Replication { wait_replicas: 1, wait_timeout_ms: 1000 };
    let bus = cluster_bus(&cluster, replication).await;
    let url = cluster.url();
    let args = ["--stateful", "--slow-ms", "1", "--sink", &sink_server.url(), "--wait-replicas", "1"];
    let a = fleet::member(EXE, &url, "a", &args);
    let b = fleet::member(EXE, &url, "b", &args);

    // Produced while the master dies, through the outage.
    let ks = keys(16);
    let per_key = 300u64;
    let total = ks.len() as u64 * per_key;
    let metrics = BusMetrics::unregistered();
    let producer = Producer::new(bus.clone(), "test").with_metrics(metrics.clone());
    let stop = CancellationToken::new();
    let sending = {
        let (ks, producer, stop) = (ks.clone(), producer.clone(), stop.clone());
        tokio::spawn(async move {
            for seq in (0..per_key).step_by(10) {
                let mut batch = Vec::new();
                for s in seq..seq + 10 {
                    for key in &ks {
                        let m = TestMsg { key: key.clone(), seq: s, pad: "x".repeat(40) };
                        batch.push(producer.prepare(STREAM, &msg_id(key, s), key, None, &m).unwrap());
                    }
                }
                producer.send_through_outages(&batch, &stop).await.expect("sent through the fail-over");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    fleet::wait_for("a quarter of the messages", Duration::from_secs(60), async || {
        sink.seen().await.unwrap() > total / 4
    })
    .await;

    let victim = cluster.master_of(&bus.keys().partition(STREAM, 0)).await;
    cluster.kill(victim);
    let killed = Instant::now();
    cluster.wait_healthy(Duration::from_secs(30)).await;
    let promoted = killed.elapsed();
    assert_ne!(cluster.master_of(&bus.keys().partition(STREAM, 0)).await, victim, "a replica took the slots");
    // The machine comes back: the old master rejoins as the new one's replica, and writes to
    // that shard stop waiting out WAIT's timeout for a replica that is gone.
    cluster.restart(victim, &[]);
    cluster.wait_healthy(Duration::from_secs(30)).await;

    tokio::time::timeout(Duration::from_secs(120), sending).await.expect("producer finishes").unwrap();
    assert_eq!(sink.wait_seen(total, Duration::from_secs(120)).await.unwrap(), total, "every message handled");
    assert_in_order(&sink, &ks, per_key).await.unwrap();
    terminate(a).await;
    terminate(b).await;
    let health = inspect::stream_health(&bus, STREAM).await.unwrap();
    assert_eq!(health.pending, 0, "everything acknowledged");
    // Each message counted once in the checkpointed state, whatever was handled twice.
    fleet::assert_tallies(&bus, total, ks.len() as u64 * (0..per_key).sum::<u64>()).await;
    // What the fail-over cost: producer chunks held and sent again (those applied before the
    // connection dropped are on the stream twice, same ids) and handlings repeated (a batch
    // redelivered), both absorbed.
    eprintln!(
        "master on port {victim} killed; slots served again after {promoted:?}; {} producer sends held and retried; {} repeated handlings absorbed by the sink",
        metrics.send_retries.get(),
        sink.duplicates().await.unwrap()
    );
}
