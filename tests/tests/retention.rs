//! Trimming acknowledged entries (`trim_acked`): what every group still needs stays, the rest
//! goes, and the consumers do it by themselves.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::retention::{Trimmed, trim_acked};
use tradeflow_bus::{Bus, BusMetrics, Consumer, Producer, Topology};
use tradeflow_testkit::{TestRedis, message_count, test_topology};
use tradeflow_tests::*;

/// One partition, unpacked entries, groups `a`, `b` and `c`, acknowledged entries trimmed
/// after `grace_ms`.
fn three_groups(grace_ms: u64) -> Topology {
    let text = format!(
        "namespace = \"t\"\n[streams.\"test.events\"]\ndescription = \"d\"\nkey = \"key\"\ngroups = [\"a\", \"b\", \"c\"]\npartitions = 1\npack_max = 1\ntrim_grace_ms = {grace_ms}\n"
    );
    Topology::parse(&text, "test").unwrap()
}

/// Makes every stream node hold one entry, so that `MINID ~` (whole nodes) trims exactly.
async fn one_entry_per_node(url: &str) {
    raw(url, redis::cmd("CONFIG").arg("SET").arg("stream-node-max-entries").arg(1)).await.unwrap();
}

async fn ids(url: &str, key: &str) -> Vec<String> {
    let Value::Array(entries) = raw(url, redis::cmd("XRANGE").arg(key).arg("-").arg("+")).await.unwrap() else {
        panic!("XRANGE reply is not an array")
    };
    entries
        .into_iter()
        .map(|e| match e {
            Value::Array(mut parts) => match parts.swap_remove(0) {
                Value::BulkString(id) => String::from_utf8(id).unwrap(),
                other => panic!("entry id {other:?}"),
            },
            other => panic!("entry {other:?}"),
        })
        .collect()
}

/// XREADGROUP of up to `count` new entries for `group` (none when 0); then acknowledges its
/// `ack` oldest pending entries.
async fn read_and_ack(url: &str, key: &str, group: &str, count: usize, ack: usize) {
    if count > 0 {
        let read = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg("c1")
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .clone();
        raw(url, &read).await.unwrap();
    }
    let pending = raw(url, redis::cmd("XPENDING").arg(key).arg(group).arg("-").arg("+").arg(ack)).await.unwrap();
    let Value::Array(rows) = pending else { panic!("XPENDING reply {pending:?}") };
    let mut xack = redis::cmd("XACK");
    xack.arg(key).arg(group);
    for row in rows {
        let Value::Array(mut fields) = row else { panic!("XPENDING row") };
        let Value::BulkString(id) = fields.swap_remove(0) else { panic!("XPENDING id") };
        xack.arg(id);
    }
    raw(url, &xack).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_every_group_has_acknowledged_is_trimmed() {
    let redis = TestRedis::start().await;
    let url = redis.url();
    one_entry_per_node(&url).await;
    // No init: the groups are created one by one below.
    let bus = Bus::connect(&url, three_groups(0)).await.unwrap();
    let key = bus.keys().partition(STREAM, 0);
    for i in 0..30 {
        raw(&url, redis::cmd("XADD").arg(&key).arg("*").arg("n").arg(i)).await.unwrap();
    }
    let all = ids(&url, &key).await;
    assert_eq!(all.len(), 30);

    // A listed group that does not exist yet will read from the start: nothing goes.
    bus.ensure_group(STREAM, "a").await.unwrap();
    bus.ensure_group(STREAM, "b").await.unwrap();
    read_and_ack(&url, &key, "a", 30, 30).await;
    read_and_ack(&url, &key, "b", 30, 30).await;
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::GroupMissing);
    assert_eq!(ids(&url, &key).await, all);

    // Created at 0, it has read nothing: nothing goes.
    bus.ensure_group(STREAM, "c").await.unwrap();
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(0));
    assert_eq!(ids(&url, &key).await, all);

    // c has read 20 and acknowledged 10: its oldest pending entry (the 11th) and all after stay.
    read_and_ack(&url, &key, "c", 20, 10).await;
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(10));
    assert_eq!(ids(&url, &key).await, all[10..]);

    // c acknowledges the rest of what it read: it still needs everything after its 20th.
    read_and_ack(&url, &key, "c", 0, 10).await;
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(9));
    assert_eq!(ids(&url, &key).await, all[19..]);

    // A group the topology does not list (an operator's own) counts too.
    raw(&url, redis::cmd("XGROUP").arg("CREATE").arg(&key).arg("ops").arg("0")).await.unwrap();
    read_and_ack(&url, &key, "c", 30, 30).await;
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(0));
    assert_eq!(ids(&url, &key).await, all[19..]);
    raw(&url, redis::cmd("XGROUP").arg("DESTROY").arg(&key).arg("ops")).await.unwrap();
    // Every group has read and acknowledged everything: the last entry stays (the newest
    // last-delivered id), so XADD ids keep increasing from it.
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(10));
    assert_eq!(ids(&url, &key).await, all[29..]);
}

fn start(bus: &Bus, sink: &Sink, metrics: BusMetrics) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let factory = SinkFactory {
        sink: sink.clone(),
        behaviour: Arc::new(Behaviour { member: "m1".into(), ..Default::default() }),
    };
    let consumer = Consumer::new(bus.clone(), STREAM, GROUP, "retention-test", factory).unwrap().with_metrics(metrics);
    let stop = CancellationToken::new();
    let s = stop.clone();
    (stop, tokio::spawn(async move { consumer.run(s).await.unwrap() }))
}

async fn entries(bus: &Bus, url: &str) -> usize {
    let mut n = 0;
    for p in 0..bus.topology().stream(STREAM).unwrap().partitions {
        n += ids(url, &bus.keys().partition(STREAM, p)).await.len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_trim_what_they_all_acknowledged_and_keep_what_a_group_still_needs() {
    let redis = TestRedis::start().await;
    let url = redis.url();
    one_entry_per_node(&url).await;
    // Group g runs; group "later" is listed but has no consumer yet.
    let text = "namespace = \"t\"\n[streams.\"test.events\"]\ndescription = \"d\"\nkey = \"key\"\ngroups = [\"g\", \"later\"]\npartitions = 2\npack_max = 1\nblock_ms = 100\ntrim_grace_ms = 0\n";
    let bus = redis.bus(Topology::parse(text, "test").unwrap()).await;
    let sink = Sink::connect(&url).await.unwrap();
    let keys: Vec<String> = (0..4).map(|i| format!("K{i}")).collect();
    produce(&Producer::new(bus.clone(), "test"), &keys, 25).await.unwrap();
    let produced = entries(&bus, &url).await;
    assert_eq!(produced, 100);

    let metrics = BusMetrics::unregistered();
    let (stop, task) = start(&bus, &sink, metrics.clone());
    assert_eq!(sink.wait_seen(100, Duration::from_secs(20)).await.unwrap(), 100);
    // Several trim periods pass: "later" still needs every entry. (A fixed wait: this looks
    // for something that must not happen, and the runner counts no trim passes to wait on.)
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(entries(&bus, &url).await, produced);
    assert_eq!(metrics.acked_trimmed.with_label_values(&[STREAM]).get(), 0);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(message_count(&bus, STREAM).await, 100, "nothing lost for the group that has not run yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_trims_its_stream_down_to_the_last_entry_of_each_partition() {
    for trim in [true, false] {
        let redis = TestRedis::start().await;
        let url = redis.url();
        one_entry_per_node(&url).await;
        let mut topology = test_topology(2, 5);
        topology.streams.get_mut(STREAM).unwrap().pack_max = 1;
        topology.streams.get_mut(STREAM).unwrap().trim_acked = trim;
        topology.streams.get_mut(STREAM).unwrap().trim_grace = Duration::ZERO;
        let bus = redis.bus(topology).await;
        let sink = Sink::connect(&url).await.unwrap();
        let keys: Vec<String> = (0..4).map(|i| format!("K{i}")).collect();
        produce(&Producer::new(bus.clone(), "test"), &keys, 25).await.unwrap();
        assert_eq!(entries(&bus, &url).await, 100);
        let mut used = 0;
        for p in 0..2 {
            used += usize::from(!ids(&url, &bus.keys().partition(STREAM, p)).await.is_empty());
        }

        let metrics = BusMetrics::unregistered();
        let (stop, task) = start(&bus, &sink, metrics.clone());
        assert_eq!(sink.wait_seen(100, Duration::from_secs(20)).await.unwrap(), 100);
        let want = if trim { used } else { 100 };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while entries(&bus, &url).await != want && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !trim {
            // Give a wrong trim every chance to happen (a fixed wait: nothing counts the trim
            // passes that did not trim).
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        assert_eq!(entries(&bus, &url).await, want, "trim_acked = {trim}");
        assert_eq!(metrics.acked_trimmed.with_label_values(&[STREAM]).get(), 100 - want as u64);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(sink.duplicates().await.unwrap(), 0);
    }
}

/// A fresh Redis whose one partition holds `n` entries that groups a, b and c have all read and
/// acknowledged, trimmed after `grace_ms`. Returns the server (keep it alive), the bus and the key.
async fn acked_by_all(n: usize, grace_ms: u64) -> (TestRedis, Bus, String) {
    let redis = TestRedis::start().await;
    let url = redis.url();
    one_entry_per_node(&url).await;
    let bus = redis.bus(three_groups(grace_ms)).await;
    let key = bus.keys().partition(STREAM, 0);
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("XADD").arg(&key).arg("*").arg("n").arg(i).ignore();
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = pipe.query_async(&mut conn).await.unwrap();
    for g in ["a", "b", "c"] {
        read_and_ack(&url, &key, g, n, n).await;
    }
    (redis, bus, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pass_releases_at_most_its_limit() {
    let (redis, bus, key) = acked_by_all(2500, 0).await;
    let limit = tradeflow_bus::retention::TRIM_LIMIT;
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(limit));
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(limit));
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(2499 - 2 * limit));
    assert_eq!(ids(&redis.url(), &key).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_stay_for_the_grace_period() {
    let (redis, bus, key) = acked_by_all(10, 1500).await;
    // Acknowledged by all, but younger than the grace: a reader without a group (the edge's
    // live feed) may not have read them yet.
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(0));
    // Real time: the script measures the grace on Redis's own clock (TIME), which no test
    // clock can move.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(trim_acked(&bus, STREAM, 0).await.unwrap(), Trimmed::Entries(9));
    assert_eq!(ids(&redis.url(), &key).await.len(), 1);
}
