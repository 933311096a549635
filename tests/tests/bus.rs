//! In-process bus tests against a real redis-server of their own.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::dlq::{Dlq, ReplaySelector};
use tradeflow_bus::envelope::ENVELOPE_FIELD;
use tradeflow_bus::inspect;
use tradeflow_bus::pack;
use tradeflow_bus::{Bus, BusMetrics, Consumer, Envelope, EnvelopeRef, Producer};
use tradeflow_testkit::{TestRedis, test_topology};
use tradeflow_tests::*;

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("K{i}")).collect()
}

fn start(
    bus: &Bus,
    sink: &Sink,
    b: Behaviour,
    metrics: BusMetrics,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let _ = tracing_subscriber::fmt().with_test_writer().with_ansi(false).with_env_filter("info").try_init();
    let factory = SinkFactory { sink: sink.clone(), behaviour: Arc::new(b.clone()) };
    let consumer = Consumer::new(bus.clone(), STREAM, GROUP, "bus-test", factory)
        .unwrap()
        .with_member_name(b.member.clone())
        .with_metrics(metrics);
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move { consumer.run(s).await.unwrap() });
    (stop, task)
}

/// Runs a consumer whose handler always fails key `p` until `seen` messages were handled and
/// `dead` letters written (or 20 s), then stops it; returns its metrics.
async fn run_with_poison(bus: &Bus, sink: &Sink, seen: u64, dead: u64) -> BusMetrics {
    let metrics = BusMetrics::unregistered();
    let b = Behaviour { member: "m1".into(), fail_key: Some("p".into()), log_attempts: true, ..Default::default() };
    let (stop, task) = start(bus, sink, b, metrics.clone());
    assert_eq!(sink.wait_seen(seen, Duration::from_secs(20)).await.unwrap(), seen);
    let dlq = Dlq::new(bus);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while dlq.stats(STREAM).await.unwrap().total < dead && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap();
    metrics
}

async fn total_pending(bus: &Bus) -> u64 {
    inspect::stream_health(bus, STREAM).await.unwrap().pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_ack_in_order_and_shutdown_leaves_nothing_pending() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(4, 5)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let ks = keys(10);
    produce(&Producer::new(bus.clone(), "test"), &ks, 200).await.unwrap();

    let metrics = BusMetrics::unregistered();
    let (stop, task) = start(&bus, &sink, Behaviour { member: "m1".into(), ..Default::default() }, metrics.clone());
    assert_eq!(sink.wait_seen(2000, Duration::from_secs(30)).await.unwrap(), 2000);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("graceful shutdown is prompt").unwrap();

    assert_in_order(&sink, &ks, 200).await.unwrap();
    assert_eq!(sink.duplicates().await.unwrap(), 0);
    assert_eq!(total_pending(&bus).await, 0, "graceful shutdown must leave nothing pending");
    assert_eq!(metrics.acked.with_label_values(&[STREAM, GROUP]).get(), 2000);
    // A process that gives a partition up stops reporting its gauges (the next owner does).
    for p in ["0", "1", "2", "3"] {
        assert!(metrics.pending.remove_label_values(&[STREAM, GROUP, p]).is_err(), "stale pending gauge for {p}");
        assert!(metrics.lag.remove_label_values(&[STREAM, GROUP, p]).is_err(), "stale lag gauge for {p}");
    }
    assert_eq!(metrics.partitions_owned.with_label_values(&[STREAM, GROUP]).get(), 0);
    // The member left the fleet and released its leases.
    let members = raw(&redis.url(), redis::cmd("ZCARD").arg(bus.keys().members(STREAM, GROUP))).await.unwrap();
    assert_eq!(members, Value::Int(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dlq_with_every_field_and_does_not_hold_up_the_rest() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(1, 3)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let producer = Producer::new(bus.clone(), "test");
    let key = bus.keys().partition(STREAM, 0);
    let url = redis.url();

    producer
        .publish(STREAM, &msg_id("a", 0), "a", None, &TestMsg { key: "a".into(), seq: 0, pad: String::new() })
        .await
        .unwrap();
    // Three undecodable entries: garbage bytes, no envelope field, an unknown schema version.
    raw(&url, redis::cmd("XADD").arg(&key).arg("*").arg(ENVELOPE_FIELD).arg(&b"\xc1garbage"[..])).await.unwrap();
    raw(&url, redis::cmd("XADD").arg(&key).arg("*").arg("other").arg("x")).await.unwrap();
    let mut future =
        Envelope::wrap(&msg_id("v", 0), "v", None, "test", &TestMsg { key: "v".into(), seq: 0, pad: String::new() })
            .unwrap();
    future.v = 99;
    raw(&url, redis::cmd("XADD").arg(&key).arg("*").arg(ENVELOPE_FIELD).arg(future.encode().unwrap())).await.unwrap();
    // A message whose handler always fails, then more good ones behind it.
    producer
        .publish(STREAM, &msg_id("p", 0), "p", None, &TestMsg { key: "p".into(), seq: 0, pad: String::new() })
        .await
        .unwrap();
    for seq in 1..=20 {
        producer
            .publish(STREAM, &msg_id("a", seq), "a", None, &TestMsg { key: "a".into(), seq, pad: String::new() })
            .await
            .unwrap();
    }

    let metrics = run_with_poison(&bus, &sink, 21, 4).await;
    let dlq = Dlq::new(&bus);

    let stats = dlq.stats(STREAM).await.unwrap();
    assert_eq!(stats.total, 4, "{stats:?}");
    assert_eq!(stats.by_reason.get("decode_error"), Some(&3));
    assert_eq!(stats.by_reason.get("max_deliveries"), Some(&1));
    let letters = dlq.list(STREAM, 100).await.unwrap();
    for d in &letters {
        assert_eq!(d.original_stream, STREAM);
        assert_eq!(d.service_name, "bus-test");
        assert_eq!(d.group, GROUP);
        assert!(d.failed_at > 1_600_000_000_000, "failed_at is epoch ms");
        assert!(d.original_message_id.contains('-'), "a stream entry id");
        assert!(!d.error.is_empty());
        if d.dead_letter_reason == "decode_error" {
            assert_eq!(d.final_retry_count, 0, "decode errors are never retried");
        }
    }
    let errors: Vec<&str> = letters.iter().map(|d| d.error.as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("not valid MessagePack")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("no `e` or `p` field")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("schema version 99")), "{errors:?}");
    let poison = letters.iter().find(|d| d.dead_letter_reason == "max_deliveries").unwrap();
    assert_eq!(poison.final_retry_count, 3);
    assert!(poison.error.contains("poison key p always fails"));
    assert_eq!(poison.message_id, msg_id("p", 0).to_string());
    assert_eq!(poison.payload.as_ref().unwrap()["key"], "p");
    assert_eq!(poison.envelope.as_ref().unwrap()["type"], "test_msg");

    // Attempts: the poison exactly max_deliveries times, and every good message handled
    // before its first retry: the entries behind it did not wait for its backoff.
    let attempts = sink.attempts().await.unwrap();
    let p_attempts: Vec<usize> =
        attempts.iter().enumerate().filter(|(_, a)| a.starts_with("p:")).map(|(i, _)| i).collect();
    assert_eq!(p_attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[p_attempts[1]], "p:0:2");
    let last_good = attempts.iter().rposition(|a| a.starts_with("a:")).unwrap();
    assert!(last_good < p_attempts[1], "good entries were held up behind the poison: {attempts:?}");
    assert_eq!(metrics.dead_lettered.with_label_values(&[STREAM, GROUP, "decode_error"]).get(), 3);
    assert_eq!(metrics.retried.with_label_values(&[STREAM, GROUP]).get(), 2);
    assert_eq!(total_pending(&bus).await, 0, "dead letters are acked in the source");

    // Replay returns the poison to its stream and removes it from the DLQ.
    let before = bus_len(&url, &key).await;
    let replayed = dlq.replay(STREAM, &ReplaySelector::Id(poison.id.clone())).await.unwrap();
    assert_eq!(replayed.replayed, vec![poison.id.clone()]);
    assert_eq!(dlq.stats(STREAM).await.unwrap().total, 3);
    assert_eq!(bus_len(&url, &key).await, before + 1);
    // This time the handler accepts it.
    let (stop, task) =
        start(&bus, &sink, Behaviour { member: "m2".into(), ..Default::default() }, BusMetrics::unregistered());
    assert_eq!(sink.wait_seen(22, Duration::from_secs(20)).await.unwrap(), 22);
    stop.cancel();
    task.await.unwrap();
    // Replay by reason: the two with a payload go back, the one without stays, with why.
    let report = dlq.replay(STREAM, &ReplaySelector::Reason("decode_error".into())).await.unwrap();
    assert_eq!(report.replayed.len(), 2, "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.skipped[0].1.contains("no payload"), "{report:?}");
    let err = dlq.replay(STREAM, &ReplaySelector::Id("0/1-1".into())).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(dlq.purge(STREAM).await.unwrap(), 1);
    assert_eq!(dlq.stats(STREAM).await.unwrap().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packed_entry_is_handled_retried_and_dead_lettered_message_by_message() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(1, 3)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let producer = Producer::new(bus.clone(), "test");
    let key = bus.keys().partition(STREAM, 0);
    let url = redis.url();
    let msg = |k: &str, seq| TestMsg { key: k.into(), seq, pad: String::new() };

    // One send: a0..a4, the poison p0, a5..a9 bound for the one partition travel in one entry.
    let mut batch = Vec::new();
    for seq in 0..10 {
        if seq == 5 {
            batch.push(producer.prepare(STREAM, &msg_id("p", 0), "p", None, &msg("p", 0)).unwrap());
        }
        batch.push(producer.prepare(STREAM, &msg_id("a", seq), "a", None, &msg("a", seq)).unwrap());
    }
    let ids = producer.send(&batch).await.unwrap();
    assert!(ids.iter().all(|id| *id == ids[0]), "one entry carries the batch: {ids:?}");
    assert_eq!(bus_len(&url, &key).await, 1);
    // A hand-made pack with an undecodable message between two good ones.
    let good = |seq| Envelope::wrap(&msg_id("b", seq), "b", None, "test", &msg("b", seq)).unwrap().encode().unwrap();
    let (b0, b1) = (good(0), good(1));
    let packed = pack::encode([b0.as_slice(), b"\xc1garbage", b1.as_slice()]);
    raw(&url, redis::cmd("XADD").arg(&key).arg("*").arg(pack::PACK_FIELD).arg(packed)).await.unwrap();
    // And a pack that is not one.
    raw(&url, redis::cmd("XADD").arg(&key).arg("*").arg(pack::PACK_FIELD).arg(&[1u8, 9, 0, 0, 0][..])).await.unwrap();

    let metrics = run_with_poison(&bus, &sink, 12, 3).await;
    let dlq = Dlq::new(&bus);

    // The poison was attempted max_deliveries times, its neighbours once each.
    let attempts = sink.attempts().await.unwrap();
    assert_eq!(attempts.iter().filter(|a| a.starts_with("p:")).count(), 3, "{attempts:?}");
    for seq in 0..10 {
        let tries: Vec<&String> = attempts.iter().filter(|a| a.starts_with(&format!("a:{seq}:"))).collect();
        assert_eq!(tries, vec![&format!("a:{seq}:1")], "a{seq} is handled once, not with every retry of p0");
    }
    assert_eq!(sink.duplicates().await.unwrap(), 0);
    assert_in_order(&sink, &["a".to_string()], 10).await.unwrap();
    assert_eq!(metrics.acked.with_label_values(&[STREAM, GROUP]).get(), 12, "messages, not entries");
    assert_eq!(total_pending(&bus).await, 0, "every entry is acknowledged once all of its messages are settled");

    // Each dead message is a dead letter of its own, with its own bytes; the broken pack moves whole.
    let letters = dlq.list(STREAM, 100).await.unwrap();
    assert_eq!(letters.len(), 3, "{letters:?}");
    let poison = letters.iter().find(|d| d.dead_letter_reason == "max_deliveries").unwrap();
    assert_eq!(poison.message_id, msg_id("p", 0).to_string());
    assert_eq!(poison.payload.as_ref().unwrap()["key"], "p");
    let garbage = letters.iter().find(|d| d.error.contains("not valid MessagePack")).unwrap();
    assert_eq!(garbage.payload_bytes, 8);
    let broken = letters.iter().find(|d| d.error.contains("pack is malformed")).unwrap();
    assert!(broken.error.contains("message 0 claims 9 bytes"), "{}", broken.error);
    assert!(broken.payload.is_none(), "an unreadable pack has no single payload to replay");

    // The poison alone goes back, as a plain entry, and is handled this time.
    let before = bus_len(&url, &key).await;
    dlq.replay(STREAM, &ReplaySelector::Id(poison.id.clone())).await.unwrap();
    assert_eq!(bus_len(&url, &key).await, before + 1);
    let (stop, task) =
        start(&bus, &sink, Behaviour { member: "m2".into(), ..Default::default() }, BusMetrics::unregistered());
    assert_eq!(sink.wait_seen(13, Duration::from_secs(20)).await.unwrap(), 13);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(sink.duplicates().await.unwrap(), 0);
}

async fn bus_len(url: &str, key: &str) -> i64 {
    match raw(url, redis::cmd("XLEN").arg(key)).await.unwrap() {
        Value::Int(n) => n,
        other => panic!("XLEN returned {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_whose_body_was_trimmed_are_acked_and_counted() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(1, 5)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    produce(&Producer::new(bus.clone(), "test"), &keys(1), 5).await.unwrap();
    let key = bus.keys().partition(STREAM, 0);
    let entries = bus_len(&redis.url(), &key).await as u64;
    assert_eq!(entries, 1, "one send to one partition is one packed entry");
    // A consumer that read them and vanished, then the stream was trimmed under them.
    raw(&redis.url(), redis::cmd("XREADGROUP").arg("GROUP").arg(GROUP).arg("ghost").arg("STREAMS").arg(&key).arg(">"))
        .await
        .unwrap();
    raw(&redis.url(), redis::cmd("XTRIM").arg(&key).arg("MAXLEN").arg(0)).await.unwrap();
    assert_eq!(total_pending(&bus).await, entries);

    let metrics = BusMetrics::unregistered();
    let (stop, task) = start(&bus, &sink, Behaviour { member: "m1".into(), ..Default::default() }, metrics.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while total_pending(&bus).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(total_pending(&bus).await, 0);
    assert_eq!(metrics.trimmed.with_label_values(&[STREAM, GROUP]).get(), entries);
    assert_eq!(sink.seen().await.unwrap(), 0, "nothing to handle: the bodies are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpointed_state_continues_where_the_last_owner_acked() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(2, 5)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let producer = Producer::new(bus.clone(), "test");
    let ks = keys(4);
    produce(&producer, &ks, 100).await.unwrap();
    let b = Behaviour { member: "m1".into(), stateful: true, ..Default::default() };
    let (stop, task) = start(&bus, &sink, b, BusMetrics::unregistered());
    sink.wait_seen(400, Duration::from_secs(20)).await.unwrap();
    stop.cancel();
    task.await.unwrap();

    // More messages, a new owner: it must restore the tallies and add only the new ones.
    produce_seqs(&producer, &ks, 100..150).await.unwrap();
    let b = Behaviour { member: "m2".into(), stateful: true, ..Default::default() };
    let (stop, task) = start(&bus, &sink, b, BusMetrics::unregistered());
    sink.wait_seen(600, Duration::from_secs(20)).await.unwrap();
    stop.cancel();
    task.await.unwrap();

    let tally = tallies(&bus, 2).await;
    assert_eq!(tally.count, 600);
    assert_eq!(tally.seq_sum, 4 * (0..150u64).sum::<u64>());
}

/// The sum of the checkpointed tallies of all partitions.
pub async fn tallies(bus: &Bus, partitions: u32) -> Tally {
    let mut total = Tally::default();
    for p in 0..partitions {
        if let Some(c) = tradeflow_bus::checkpoint::Checkpoint::load(bus, STREAM, p, GROUP).await.unwrap() {
            let t: Tally = serde_json::from_slice(&c.state).unwrap();
            total.count += t.count;
            total.seq_sum += t.seq_sum;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_rides_out_a_redis_crash() {
    let mut redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(2, 5)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let producer = Producer::new(bus.clone(), "test");
    let ks = keys(4);
    produce(&producer, &ks, 50).await.unwrap();
    let (stop, task) =
        start(&bus, &sink, Behaviour { member: "m1".into(), ..Default::default() }, BusMetrics::unregistered());
    sink.wait_seen(200, Duration::from_secs(20)).await.unwrap();

    redis.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await;
    // The shared connection reconnects by itself; give it a moment on the first call.
    let mut sent = false;
    for _ in 0..50 {
        if produce_seqs(&producer, &ks, 50..100).await.is_ok() {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "producer did not recover after the Redis restart");
    assert_eq!(sink.wait_seen(400, Duration::from_secs(30)).await.unwrap(), 400);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), task).await.unwrap().unwrap();
    assert_in_order(&sink, &ks, 100).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_left_idle_under_another_consumer_are_claimed_and_handled_once() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(1, 5)).await;
    let sink = Sink::connect(&redis.url()).await.unwrap();
    let producer = Producer::new(bus.clone(), "test");
    // One publish per message: one entry each (a send of them all would be one packed entry).
    for seq in 0..10 {
        for k in keys(2) {
            producer
                .publish(STREAM, &msg_id(&k, seq), &k, None, &TestMsg { key: k.clone(), seq, pad: String::new() })
                .await
                .unwrap();
        }
    }
    let metrics = BusMetrics::unregistered();
    let (stop, task) = start(&bus, &sink, Behaviour { member: "m1".into(), ..Default::default() }, metrics.clone());
    assert_eq!(sink.wait_seen(20, Duration::from_secs(10)).await.unwrap(), 20);

    // While m1 owns the partition, a stray consumer ends up holding five entries (as after an
    // operator's manual read, or a member that lost its lease mid-read).
    let key = bus.keys().partition(STREAM, 0);
    let entries =
        raw(&redis.url(), redis::cmd("XRANGE").arg(&key).arg("-").arg("+").arg("COUNT").arg(5)).await.unwrap();
    let Value::Array(entries) = entries else { panic!("XRANGE") };
    let mut claim = redis::cmd("XCLAIM");
    claim.arg(&key).arg(GROUP).arg("stray").arg(0);
    for e in &entries {
        let Value::Array(parts) = e else { panic!("entry") };
        let Value::BulkString(id) = &parts[0] else { panic!("id") };
        claim.arg(id.clone());
    }
    claim.arg("FORCE");
    raw(&redis.url(), &claim).await.unwrap();
    assert_eq!(total_pending(&bus).await, 5);

    // After claim_idle (2 s in the test topology) m1 claims and handles them; the sink's
    // idempotency turns the redelivery into duplicates, not second effects.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while total_pending(&bus).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert_eq!(total_pending(&bus).await, 0);
    assert_eq!(metrics.claimed.with_label_values(&[STREAM, GROUP]).get(), 5);
    assert_eq!(sink.seen().await.unwrap(), 20);
    assert_eq!(sink.duplicates().await.unwrap(), 5);
}

/// Counts its ticks in checkpointed state.
struct Ticker {
    ticks: u64,
}

impl tradeflow_bus::Handler for Ticker {
    type Msg = ();
    fn decode(&self, _env: &EnvelopeRef<'_>) -> Result<(), tradeflow_bus::DecodeError> {
        Ok(())
    }
    async fn handle(&mut self, _d: &tradeflow_bus::Delivery<()>) -> tradeflow_bus::Outcome {
        tradeflow_bus::Outcome::Done
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(self.ticks.to_le_bytes().to_vec())
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
    async fn tick(&mut self) -> tradeflow_bus::Tick {
        self.ticks += 1;
        tradeflow_bus::Tick::Changed
    }
}

struct TickerFactory;

impl tradeflow_bus::HandlerFactory for TickerFactory {
    type Handler = Ticker;
    fn create(&self, _p: u32, restored: Option<&[u8]>) -> Result<Ticker, String> {
        let ticks = match restored {
            Some(b) => u64::from_le_bytes(b.try_into().map_err(|_| "bad tick checkpoint".to_string())?),
            None => 0,
        };
        Ok(Ticker { ticks })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_run_without_messages_and_their_state_is_checkpointed() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(test_topology(1, 5)).await;
    let ticks = |bus: Bus| async move {
        let c = tradeflow_bus::checkpoint::Checkpoint::load(&bus, STREAM, 0, GROUP).await.unwrap();
        c.map(|c| u64::from_le_bytes(c.state.as_slice().try_into().unwrap()))
    };
    // Runs a consumer until the checkpointed count satisfies `done` (every changed tick is
    // checkpointed; the consumer first joins its fleet, so no fixed time), then stops it.
    let run = |bus: Bus, what: &'static str, done: Box<dyn Fn(u64) -> bool + Send>| async move {
        let consumer = Consumer::new(bus.clone(), STREAM, GROUP, "tick-test", TickerFactory).unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move { consumer.run(s).await.unwrap() });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = ticks(bus.clone()).await;
            if now.is_some_and(&done) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "within 20 s no checkpoint {what}: last {now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
    };
    run(bus.clone(), "of 3 ticks", Box::new(|n| n >= 3)).await;
    // Read once stopped: a tick may have landed between the last look and the stop.
    let first = ticks(bus.clone()).await.unwrap();
    assert!(first >= 3, "ticked {first} times");
    // A new owner restores the count and goes on from it: its first checkpoint follows `first`
    // (a fresh count would write 1 first).
    run(bus.clone(), "from the new owner", Box::new(move |n| n != first)).await;
    let next = ticks(bus.clone()).await.unwrap();
    assert!(next > first, "{first} then {next}: the count was not restored");
    run(bus.clone(), "3 ticks further", Box::new(move |n| n >= first + 3)).await;
    let second = ticks(bus.clone()).await.unwrap();
    assert!(second >= first + 3, "{first} then {second}");
}

/// Records the size of every batch it is handed.
struct BatchSizes(Arc<std::sync::Mutex<Vec<usize>>>);

impl tradeflow_bus::Handler for BatchSizes {
    type Msg = ();

    fn decode(&self, _: &EnvelopeRef<'_>) -> Result<(), tradeflow_bus::DecodeError> {
        Ok(())
    }

    async fn handle(&mut self, _: &tradeflow_bus::Delivery<()>) -> tradeflow_bus::Outcome {
        tradeflow_bus::Outcome::Done
    }

    async fn handle_batch(&mut self, batch: &[tradeflow_bus::Delivery<()>]) -> Vec<tradeflow_bus::Outcome> {
        self.0.lock().unwrap().push(batch.len());
        vec![tradeflow_bus::Outcome::Done; batch.len()]
    }
}

struct BatchSizesFactory(Arc<std::sync::Mutex<Vec<usize>>>);

impl tradeflow_bus::HandlerFactory for BatchSizesFactory {
    type Handler = BatchSizes;

    fn create(&self, _: u32, _: Option<&[u8]>) -> Result<BatchSizes, String> {
        Ok(BatchSizes(self.0.clone()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_batches_hold_at_most_read_count_or_the_groups_batch_max_messages_and_never_split_a_pack() {
    let topology = tradeflow_bus::Topology::parse(
        r#"
namespace = "t"
[streams."test.events"]
description = "test events"
key = "key"
groups = ["small", "large"]
partitions = 1
read_count = 40
pack_max = 5
block_ms = 100
[groups.small]
batch_max = 12
[groups.large]
batch_max = 1000
"#,
        "test",
    )
    .unwrap();
    let redis = TestRedis::start().await;
    let bus = redis.bus(topology).await;
    // Sent before any consumer reads: 60 packed entries of 5 messages wait in the partition.
    produce(&Producer::new(bus.clone(), "test"), &keys(1), 300).await.unwrap();

    let mut sizes = Vec::new();
    for group in ["small", "large"] {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let consumer = Consumer::new(bus.clone(), STREAM, group, "bus-test", BatchSizesFactory(seen.clone())).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { consumer.run(stop).await.unwrap() }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().iter().sum::<usize>() < 300 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.unwrap();
        sizes.push(seen.lock().unwrap().clone());
    }
    // batch_max 12 with packs of 5: two packs per batch, a third would pass 12.
    assert_eq!(sizes[0], vec![10; 30], "group small");
    // batch_max 1000: a read of 40 entries (200 messages) is one batch.
    assert_eq!(sizes[1], vec![200, 100], "group large");
    assert_eq!(total_pending(&bus).await, 0);
}
