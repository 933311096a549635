//! Fleets of real processes (`fleet_member`) against a real redis-server: order per partition,
//! SIGKILL mid-batch, joining and leaving members, graceful shutdown.

use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::Value;
use tokio::process::{Child, Command};
use tradeflow_bus::{Bus, Producer, inspect};
use tradeflow_testkit::{TestRedis, test_topology};
use tradeflow_tests::*;

const PARTITIONS: u32 = 8;

fn member(url: &str, name: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fleet_member"))
        .arg(url)
        .arg(name)
        .arg(PARTITIONS.to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("fleet_member starts")
}

/// SIGTERM and wait; the member must exit 0.
async fn terminate(mut child: Child) {
    let pid = child.id().expect("running") as i32;
    // SAFETY: plain kill(2) on a child we own.
    let rc = unsafe { libc_kill(pid, 15) };
    assert_eq!(rc, 0);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits promptly").unwrap();
    assert!(status.success(), "graceful shutdown must exit 0, got {status}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SYM{i}")).collect()
}

async fn leases(url: &str, bus: &Bus) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let v = raw(url, redis::cmd("GET").arg(bus.keys().lease(STREAM, GROUP, p))).await.unwrap();
        out.push(match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        });
    }
    out
}

async fn wait_for(what: &str, timeout: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn count_of(leases: &[Option<String>], name: &str) -> usize {
    leases.iter().filter(|l| l.as_deref() == Some(name)).count()
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
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let ks = keys(16);
    let total = 16 * 150;
    produce(&Producer::new(bus.clone(), "test"), &ks, 150).await.unwrap();
    let slow = ["--slow-ms", "3", "--stateful"];
    let a = member(&redis.url(), "a", &slow);
    let b = member(&redis.url(), "b", &slow);
    let mut victim = member(&redis.url(), "victim", &slow);
    // Let all three own partitions and get well into their batches.
    wait_for("the victim to own partitions", Duration::from_secs(20), async || {
        count_of(&leases(&redis.url(), &bus).await, "victim") > 0
    })
    .await;
    wait_for("a third of the messages", Duration::from_secs(60), async || sink.seen().await.unwrap() > total / 3).await;

    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let killed_at = Instant::now();
    // It died holding a batch: entries pending under its name.
    let health = inspect::stream_health(&bus, STREAM).await.unwrap();
    let victim_pending: u64 = health
        .partitions
        .iter()
        .flat_map(|p| &p.groups)
        .flat_map(|g| &g.consumers)
        .filter(|c| c.name == "victim")
        .map(|c| c.pending)
        .sum();
    assert!(victim_pending > 0, "the kill should land mid-batch");

    // Its partitions move to the survivors within the bound (lease TTL 1.5 s + heartbeats).
    wait_for("the survivors to take every partition", Duration::from_secs(10), async || {
        let l = leases(&redis.url(), &bus).await;
        count_of(&l, "a") + count_of(&l, "b") == PARTITIONS as usize
    })
    .await;
    let failover = killed_at.elapsed();
    assert!(failover < Duration::from_secs(10), "fail-over took {failover:?}");

    assert_eq!(sink.wait_seen(total, Duration::from_secs(90)).await.unwrap(), total);
    assert_in_order(&sink, &ks, 150).await.unwrap();
    terminate(a).await;
    terminate(b).await;
    let health = inspect::stream_health(&bus, STREAM).await.unwrap();
    assert_eq!(health.pending, 0, "everything acked, including the victim's batch");
    // Checkpointed state counts each message exactly once although some were redelivered.
    let mut tally = Tally::default();
    for p in 0..PARTITIONS {
        let c = tradeflow_bus::checkpoint::Checkpoint::load(&bus, STREAM, p, GROUP).await.unwrap().expect("checkpoint");
        let t: Tally = serde_json::from_slice(&c.state).unwrap();
        tally.count += t.count;
        tally.seq_sum += t.seq_sum;
    }
    assert_eq!(tally.count, total);
    assert_eq!(tally.seq_sum, 16 * (0..150u64).sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_members_rebalance_fairly() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(PARTITIONS, 5)).await;
    let url = redis.url();
    let first = member(&url, "m1", &[]);
    wait_for("m1 to own all partitions", Duration::from_secs(10), async || {
        count_of(&leases(&url, &bus).await, "m1") == PARTITIONS as usize
    })
    .await;

    let second = member(&url, "m2", &[]);
    let third = member(&url, "m3", &[]);
    wait_for("a fair 3/3/2 split", Duration::from_secs(15), async || {
        let l = leases(&url, &bus).await;
        let mut c = [count_of(&l, "m1"), count_of(&l, "m2"), count_of(&l, "m3")];
        c.sort();
        c == [2, 3, 3]
    })
    .await;

    // A member that leaves gracefully hands its partitions over at once (no TTL wait).
    terminate(second).await;
    wait_for("a 4/4 split between the two left", Duration::from_secs(10), async || {
        let l = leases(&url, &bus).await;
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
    assert!(leases(&url, &bus).await.iter().all(Option::is_none), "leases released on shutdown");
}
