//! Backpressure and bounded memory, against a real redis-server (its own, on a free loopback
//! port): a full partition makes its producer wait and loses nothing; `drop_oldest` never
//! waits and counts what MAXLEN trimmed unread; a Redis at `maxmemory` holds the batch until
//! there is room, and every message lands once; a stage whose output partition is full waits
//! with its batch unacknowledged.

use std::future::Future;
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::ConnectionManager;
use redis::streams::{StreamRangeReply, StreamReadReply};
use tokio_util::sync::CancellationToken;
use tradeflow_bus::embedded::{EmbeddedOptions, RedisServer};
use tradeflow_bus::envelope::ENVELOPE_VERSION;
use tradeflow_bus::{
    Bus, BusError, BusMetrics, Consumer, DecodeError, Delivery, Envelope, EnvelopeRef, Handler, HandlerFactory,
    Outcome, Outgoing, Producer, Topology,
};

const STREAM: &str = "t.bp";

/// A redis-server for one test, removed with its directory when dropped.
struct Server {
    redis: RedisServer,
    // After `redis`: the process dies before its directory is removed.
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::Builder::new().prefix("tradeflow-bp-").tempdir().expect("temp dir");
    let redis = RedisServer::start(EmbeddedOptions {
        dir: dir.path().to_path_buf(),
        port: None,
        appendonly: false,
        fsync: Default::default(),
    })
    .await
    .unwrap_or_else(|e| panic!("test redis-server did not start: {e}"));
    Server { redis, _dir: dir }
}

/// One partition, one group, one message per entry, tiny limits.
fn topology(maxlen: u64, high_water: u64, overflow: &str) -> Topology {
    let text = format!(
        r#"
        [streams."{STREAM}"]
        description = "backpressure test"
        key = "k"
        partitions = 1
        groups = ["g"]
        pack_max = 1
        maxlen = {maxlen}
        high_water = {high_water}
        overflow = "{overflow}"
        "#
    );
    Topology::parse(&text, "test topology").unwrap_or_else(|e| panic!("{e}"))
}

async fn setup(topology: Topology) -> (Server, Bus, Producer, BusMetrics) {
    let server = server().await;
    let bus = Bus::connect(&server.redis.url(), topology).await.unwrap_or_else(|e| panic!("connect: {e}"));
    bus.init().await.unwrap_or_else(|e| panic!("init: {e}"));
    let metrics = BusMetrics::unregistered();
    let producer = Producer::new(bus.clone(), "test").with_metrics(metrics.clone());
    (server, bus, producer, metrics)
}

/// The test's own connection: its blocking reads must not hold up the producer's commands.
async fn connection(server: &Server) -> ConnectionManager {
    let client = redis::Client::open(server.redis.url()).expect("client");
    client.get_connection_manager().await.expect("connect")
}

fn name(i: usize) -> String {
    format!("m{i:05}")
}

/// Message `i`; its body is its name, so the test can read it back without an envelope.
fn msg(i: usize) -> Outgoing {
    Outgoing { stream: STREAM.into(), partition: 0, id: name(i), bytes: name(i).into_bytes() }
}

fn key(bus: &Bus) -> String {
    bus.keys().partition(STREAM, 0)
}

/// Polls `check` until it holds; panics with `what` after a generous `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn xlen(conn: &mut ConnectionManager, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(conn).await.expect("XLEN")
}

/// The group's lag as Redis reports it.
async fn lag(conn: &mut ConnectionManager, key: &str) -> Option<u64> {
    let v: Value = redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(conn).await.expect("XINFO GROUPS");
    let Value::Array(groups) = v else { panic!("XINFO GROUPS: {v:?}") };
    let Some(Value::Array(fields)) = groups.first() else { panic!("no group") };
    let i = fields.iter().position(|f| matches!(f, Value::BulkString(b) if b == b"lag"))?;
    match &fields[i + 1] {
        Value::Int(n) => Some(*n as u64),
        _ => None,
    }
}

fn body(map: &std::collections::HashMap<String, Value>) -> String {
    match map.get("e") {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("entry without a body: {other:?}"),
    }
}

/// Reads (and acknowledges) up to 10 new entries as group `g`.
async fn read_some(conn: &mut ConnectionManager, key: &str) -> Vec<String> {
    let reply: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("COUNT")
        .arg(10)
        .arg("BLOCK")
        .arg(100)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .expect("XREADGROUP");
    let mut out = Vec::new();
    for k in reply.keys {
        for e in k.ids {
            let _: i64 = redis::cmd("XACK").arg(key).arg("g").arg(&e.id).query_async(conn).await.expect("XACK");
            out.push(body(&e.map));
        }
    }
    out
}

async fn everything(conn: &mut ConnectionManager, key: &str) -> Vec<String> {
    let r: StreamRangeReply = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(conn).await.expect("XRANGE");
    r.ids.iter().map(|e| body(&e.map)).collect()
}

fn sends(producer: &Producer, n: usize, batch: usize) -> tokio::task::JoinHandle<Result<(), BusError>> {
    let producer = producer.clone();
    tokio::spawn(async move {
        for start in (0..n).step_by(batch) {
            let msgs: Vec<Outgoing> = (start..n.min(start + batch)).map(msg).collect();
            producer.send(&msgs).await?;
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_partition_makes_its_producer_wait_and_loses_nothing() {
    // maxlen 200: without backpressure MAXLEN would trim 100 of the 300 before anyone read.
    let (server, bus, producer, metrics) = setup(topology(200, 50, "block")).await;
    let key = key(&bus);
    let mut conn = connection(&server).await;
    let waiting = || metrics.backpressure_waiting.with_label_values(&[STREAM]).get();
    const N: usize = 300;
    const BATCH: usize = 5;
    let sending = sends(&producer, N, BATCH);

    eventually(Duration::from_secs(30), "the producer to wait", || async { waiting() == 1 }).await;
    let held = xlen(&mut conn, &key).await;
    // Stopped at the mark; a batch may cross it by its own size, never more.
    assert!((50..50 + BATCH as u64).contains(&held), "partition held {held} entries at the mark");
    assert_eq!(lag(&mut conn, &key).await, Some(held), "all of it unread");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(xlen(&mut conn, &key).await, held, "nothing more is added while the group reads nothing");
    assert!(!sending.is_finished(), "the producer is still waiting");
    assert_eq!(waiting(), 1);

    // The group reads and acknowledges: the producer goes on, never ahead by more than the mark.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < N {
        assert!(Instant::now() < deadline, "read only {} of {N} messages", got.len());
        got.extend(read_some(&mut conn, &key).await);
        if let Some(l) = lag(&mut conn, &key).await {
            assert!(l < 50 + BATCH as u64, "backlog {l} went past the high-water mark");
        }
    }
    tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("the producer finishes once there is room")
        .expect("no panic")
        .expect("every send succeeds");

    let expected: Vec<String> = (0..N).map(name).collect();
    assert_eq!(got, expected, "every message read exactly once, in order");
    assert!(read_some(&mut conn, &key).await.is_empty(), "nothing more to read");
    assert_eq!(waiting(), 0);
    assert!(metrics.backpressure_wait_seconds.with_label_values(&[STREAM]).get() > 0.0);
    assert_eq!(metrics.dropped.with_label_values(&[STREAM]).get(), 0);
    assert_eq!(metrics.produced.with_label_values(&[STREAM]).get(), N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_never_waits_and_counts_what_maxlen_trimmed_unread() {
    let (server, bus, producer, metrics) = setup(topology(200, 50, "drop_oldest")).await;
    let key = key(&bus);
    let mut conn = connection(&server).await;
    const N: usize = 1000;
    tokio::time::timeout(Duration::from_secs(60), sends(&producer, N, 10))
        .await
        .expect("a drop_oldest producer never waits")
        .expect("no panic")
        .expect("every send succeeds");
    // Drops are counted when a send refreshes the partition's backlog, at most every 100 ms:
    // one more send after that long counts them all.
    tokio::time::sleep(tradeflow_bus::backpressure::REFRESH_EVERY + Duration::from_millis(50)).await;
    producer.send(&[msg(N)]).await.expect("send");

    let kept = xlen(&mut conn, &key).await;
    assert!(kept < 400, "MAXLEN ~ 200 trimmed the partition, which holds {kept}");
    let dropped = metrics.dropped.with_label_values(&[STREAM]).get();
    assert_eq!(dropped, (N as u64 + 1) - kept, "every trimmed entry was unread");
    assert_eq!(metrics.backpressure_wait_seconds.with_label_values(&[STREAM]).get(), 0.0);
    assert_eq!(metrics.backpressure_waiting.with_label_values(&[STREAM]).get(), 0);
    // What is left is the newest.
    let left = everything(&mut conn, &key).await;
    assert_eq!(left.last(), Some(&name(N)));
    assert_eq!(left.len() as u64, kept);
}

/// Redis's `used_memory`.
async fn used_memory(conn: &mut ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await.expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in INFO: {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_at_maxmemory_holds_the_batch_until_there_is_room() {
    let (server, bus, producer, metrics) = setup(topology(10_000, 9_000, "block")).await;
    let key = key(&bus);
    let mut conn = connection(&server).await;
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("noeviction").query_async(&mut conn).await.unwrap();
    let limit = used_memory(&mut conn).await + 256 * 1024;
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(limit).query_async(&mut conn).await.unwrap();
    // Fill Redis up to the limit, so that the next write is refused.
    let filler = vec![b'x'; 16 * 1024];
    let mut full = false;
    for i in 0..1000 {
        let r: redis::RedisResult<()> =
            redis::cmd("SET").arg(format!("filler:{i}")).arg(&filler).query_async(&mut conn).await;
        if let Err(e) = r {
            assert_eq!(e.code(), Some("OOM"), "the filler stopped for another reason: {e}");
            full = true;
            break;
        }
    }
    assert!(full, "redis never reached maxmemory {limit}");
    // Keep it full whatever Redis frees meanwhile (its cron shrinks idle client buffers, which
    // could take it back under a limit it only just passed): a limit well below what it uses.
    let pinned = used_memory(&mut conn).await - 512 * 1024;
    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(pinned).query_async(&mut conn).await.unwrap();

    const N: usize = 100;
    let stop = CancellationToken::new();
    let sending = tokio::spawn({
        let producer = producer.clone();
        let stop = stop.clone();
        async move { producer.send_through_outages(&(0..N).map(msg).collect::<Vec<_>>(), &stop).await }
    });
    eventually(Duration::from_secs(30), "the producer to retry", || async { metrics.send_retries.get() >= 2 }).await;
    assert!(!sending.is_finished(), "the batch is held, not given up");
    assert_eq!(xlen(&mut conn, &key).await, 0, "nothing was appended while redis was full");

    let _: () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query_async(&mut conn).await.unwrap();
    let ids = tokio::time::timeout(Duration::from_secs(30), sending)
        .await
        .expect("the batch goes out once there is room")
        .expect("no panic")
        .unwrap_or_else(|e| panic!("send_through_outages failed: {e}"));
    assert_eq!(ids.len(), N);
    let expected: Vec<String> = (0..N).map(name).collect();
    assert_eq!(everything(&mut conn, &key).await, expected, "every message on the stream exactly once");
    assert_eq!(metrics.produced.with_label_values(&[STREAM]).get(), N as u64);
    stop.cancel();
}

/// A stage that forwards every message of `t.in` to `t.out` through its outbox.
struct Forward {
    outbox: Vec<Outgoing>,
}

impl Handler for Forward {
    type Msg = String;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<String, DecodeError> {
        Ok(envelope.head().id)
    }

    async fn handle(&mut self, d: &Delivery<String>) -> Outcome {
        self.outbox.push(Outgoing {
            stream: OUT.into(),
            partition: 0,
            id: d.msg.clone(),
            bytes: d.msg.clone().into_bytes(),
        });
        Outcome::Done
    }

    fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }
}

struct ForwardFactory;

impl HandlerFactory for ForwardFactory {
    type Handler = Forward;

    fn create(&self, _partition: u32, _restored: Option<&[u8]>) -> Result<Forward, String> {
        Ok(Forward { outbox: Vec::new() })
    }
}

const IN: &str = "t.in";
const OUT: &str = "t.out";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_output_partition_is_full_waits_with_its_batch_unacknowledged() {
    // Batches of 5 on the way in, so that one batch's outputs cross the mark by at most 5.
    let topology = Topology::parse(
        r#"
        [fleet]
        heartbeat_ms = 100
        lease_ttl_ms = 1000
        [streams."t.in"]
        description = "stage input"
        key = "k"
        partitions = 1
        groups = ["fwd"]
        pack_max = 1
        read_count = 5
        block_ms = 100
        [streams."t.out"]
        description = "stage output"
        key = "k"
        partitions = 1
        groups = ["g"]
        pack_max = 1
        maxlen = 200
        high_water = 50
        "#,
        "stage topology",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (server, bus, producer, _) = setup(topology).await;
    let mut conn = connection(&server).await;
    let out_key = bus.keys().partition(OUT, 0);
    let stage_metrics = BusMetrics::unregistered();
    let shutdown = CancellationToken::new();
    let stage = Consumer::new(bus.clone(), IN, "fwd", "fwd", ForwardFactory)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_metrics(stage_metrics.clone());
    let stage = tokio::spawn(stage.run(shutdown.clone()));

    const N: usize = 300;
    let envelopes: Vec<Outgoing> = (0..N)
        .map(|i| {
            let env = Envelope {
                ev: ENVELOPE_VERSION,
                kind: "test".into(),
                v: 1,
                id: name(i),
                key: "k".into(),
                causation: None,
                producer: "test".into(),
                produced_at: 0,
                payload: Vec::new(),
            };
            producer.prepare_envelope(IN, &env).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    producer.send(&envelopes).await.unwrap_or_else(|e| panic!("send: {e}"));

    let waiting = || stage_metrics.backpressure_waiting.with_label_values(&[OUT]).get();
    eventually(Duration::from_secs(30), "the stage to wait for room on t.out", || async { waiting() == 1 }).await;
    let held = xlen(&mut conn, &out_key).await;
    assert!((50..55).contains(&held), "t.out held {held} entries at the mark");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(xlen(&mut conn, &out_key).await, held, "the stage adds nothing more while t.out is full");

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < N {
        assert!(Instant::now() < deadline, "read only {} of {N} forwarded messages", got.len());
        got.extend(read_some(&mut conn, &out_key).await);
        if let Some(l) = lag(&mut conn, &out_key).await {
            assert!(l < 55, "t.out's backlog {l} went past the high-water mark");
        }
    }
    let expected: Vec<String> = (0..N).map(name).collect();
    assert_eq!(got, expected, "every message forwarded exactly once, in order");
    assert_eq!(stage_metrics.dropped.with_label_values(&[OUT]).get(), 0);
    assert!(stage_metrics.backpressure_wait_seconds.with_label_values(&[OUT]).get() > 0.0);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), stage)
        .await
        .expect("the stage stops")
        .expect("no panic")
        .unwrap_or_else(|e| panic!("stage: {e}"));
    assert_eq!(waiting(), 0);
}
