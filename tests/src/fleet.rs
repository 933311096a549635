//! Fleets of `fleet_member` processes, and the SIGKILL scenario run on one server and on a
//! cluster alike.

use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::Value;
use tokio::process::{Child, Command};
use tradeflow_bus::{Bus, Producer, inspect};

use crate::{GROUP, STREAM, Sink, Tally, assert_in_order, produce};

/// Partitions of the fleet tests' stream.
pub const PARTITIONS: u32 = 8;

/// Starts `fleet_member` (its path is `exe`: `env!("CARGO_BIN_EXE_fleet_member")` in a test).
pub fn member(exe: &str, url: &str, name: &str, extra: &[&str]) -> Child {
    Command::new(exe)
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
pub async fn terminate(mut child: Child) {
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

pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SYM{i}")).collect()
}

/// The holder of each partition's lease (`None`: free).
pub async fn leases(bus: &Bus) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let v: Value = redis::cmd("GET")
            .arg(bus.keys().lease(STREAM, GROUP, p))
            .query_async(&mut bus.conn())
            .await
            .unwrap_or(Value::Nil);
        out.push(match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        });
    }
    out
}

pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn count_of(leases: &[Option<String>], name: &str) -> usize {
    leases.iter().filter(|l| l.as_deref() == Some(name)).count()
}

/// Three members consume 2,400 messages; one is SIGKILLed mid-batch. Its partitions move to
/// the others, every message is handled, in order per key, and the checkpointed tallies count
/// each message once although some were delivered twice. `bus` is on `url`; the sink on
/// `sink_url`; `extra` goes to every member.
pub async fn a_member_killed_mid_batch(exe: &str, bus: &Bus, url: &str, sink_url: &str, extra: &[&str]) {
    let sink = Sink::connect(sink_url).await.unwrap();
    let ks = keys(16);
    let total = 16 * 150;
    produce(&Producer::new(bus.clone(), "test"), &ks, 150).await.unwrap();
    let mut args = vec!["--slow-ms", "3", "--stateful", "--sink", sink_url];
    args.extend_from_slice(extra);
    let a = member(exe, url, "a", &args);
    let b = member(exe, url, "b", &args);
    let mut victim = member(exe, url, "victim", &args);
    // Let all three own partitions and get well into their batches.
    wait_for("the victim to own partitions", Duration::from_secs(20), async || {
        count_of(&leases(bus).await, "victim") > 0
    })
    .await;
    wait_for("a third of the messages", Duration::from_secs(60), async || sink.seen().await.unwrap() > total / 3).await;

    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let killed_at = Instant::now();
    // It died holding a batch: entries pending under its name.
    let health = inspect::stream_health(bus, STREAM).await.unwrap();
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
        let l = leases(bus).await;
        count_of(&l, "a") + count_of(&l, "b") == PARTITIONS as usize
    })
    .await;
    let failover = killed_at.elapsed();
    assert!(failover < Duration::from_secs(10), "fail-over took {failover:?}");

    assert_eq!(sink.wait_seen(total, Duration::from_secs(90)).await.unwrap(), total);
    assert_in_order(&sink, &ks, 150).await.unwrap();
    terminate(a).await;
    terminate(b).await;
    let health = inspect::stream_health(bus, STREAM).await.unwrap();
    assert_eq!(health.pending, 0, "everything acked, including the victim's batch");
    assert_tallies(bus, total, 16 * (0..150u64).sum::<u64>()).await;
}

/// The checkpointed tallies of every partition add up to `count` messages and `seq_sum`.
pub async fn assert_tallies(bus: &Bus, count: u64, seq_sum: u64) {
    let mut tally = Tally::default();
    for p in 0..PARTITIONS {
        let c = tradeflow_bus::checkpoint::Checkpoint::load(bus, STREAM, p, GROUP).await.unwrap().expect("checkpoint");
        let t: Tally = serde_json::from_slice(&c.state).unwrap();
        tally.count += t.count;
        tally.seq_sum += t.seq_sum;
    }
    assert_eq!(tally.count, count);
    assert_eq!(tally.seq_sum, seq_sum);
}
