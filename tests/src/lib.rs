//! Shared pieces of the cross-process bus tests: a test payload, an idempotent sink kept in
//! Redis (so several processes can write to it), and a handler that records into it.
//!
//! The sink records the first handling of each message id and counts repeats, so a test can
//! check "every message handled, effects once, in order per key" across process kills.

pub mod fleet;

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use serde::{Deserialize, Serialize};
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{Delivery, EnvelopeRef, Handler, HandlerFactory, Outcome, Producer};
use tradeflow_core::{MessageId, Payload};

pub const STREAM: &str = "test.events";
pub const GROUP: &str = "g";

/// The test message: `seq` counts up per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestMsg {
    pub key: String,
    pub seq: u64,
    /// Pads the encoded envelope to a realistic size.
    pub pad: String,
}

impl Payload for TestMsg {
    const KIND: &'static str = "test_msg";
    const VERSION: u16 = 1;
}

pub fn msg_id(key: &str, seq: u64) -> MessageId {
    MessageId::candle("test", key, "1m", seq as i64)
}

/// Produces `per_key` messages (seq 0..per_key) for each of `keys`, interleaved, in batches.
pub async fn produce(producer: &Producer, keys: &[String], per_key: u64) -> anyhow::Result<()> {
    produce_seqs(producer, keys, 0..per_key).await
}

/// Produces the messages of `seqs` for each of `keys`, interleaved, in batches.
pub async fn produce_seqs(producer: &Producer, keys: &[String], seqs: std::ops::Range<u64>) -> anyhow::Result<()> {
    let mut batch = Vec::new();
    for seq in seqs {
        for key in keys {
            let m = TestMsg { key: key.clone(), seq, pad: "x".repeat(40) };
            batch.push(producer.prepare(STREAM, &msg_id(key, seq), key, None, &m)?);
            if batch.len() >= 500 {
                producer.send(&batch).await?;
                batch.clear();
            }
        }
    }
    producer.send(&batch).await?;
    Ok(())
}

/// Records the first handling of an id (appending the seq to the key's order list) or counts
/// a duplicate. Atomic, so concurrent processes cannot both count as first.
const SINK_LUA: &str = r#"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[4]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return 0
"#;

/// The idempotent sink, in the Redis the test runs.
#[derive(Clone)]
pub struct Sink {
    conn: redis::aio::ConnectionManager,
}

impl Sink {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self { conn: client.get_connection_manager().await? })
    }

    /// Records a batch of (id, key, seq, member) in one pipeline.
    pub async fn record(&self, items: &[(String, String, u64, String)]) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (id, key, seq, member) in items {
            pipe.cmd("EVAL")
                .arg(SINK_LUA)
                .arg(3)
                .arg("sink:seen")
                .arg(format!("sink:order:{key}"))
                .arg("sink:dups")
                .arg(id)
                .arg(seq)
                .arg(id)
                .arg(member)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Appends to the attempt log (every handling attempt, duplicates included).
    pub async fn log_attempt(&self, what: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("RPUSH").arg("sink:attempts").arg(what).query_async(&mut conn).await?;
        Ok(())
    }

    pub async fn attempts(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LRANGE").arg("sink:attempts").arg(0).arg(-1).query_async(&mut conn).await?)
    }

    pub async fn seen(&self) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HLEN").arg("sink:seen").query_async(&mut conn).await?)
    }

    pub async fn order(&self, key: &str) -> anyhow::Result<Vec<u64>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("LRANGE").arg(format!("sink:order:{key}")).arg(0).arg(-1).query_async(&mut conn).await?)
    }

    pub async fn duplicates(&self) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        let v: Vec<(String, u64)> = redis::cmd("HGETALL").arg("sink:dups").query_async(&mut conn).await?;
        Ok(v.iter().map(|(_, n)| n).sum())
    }

    /// Which member handled each id first.
    pub async fn handled_by(&self) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGETALL").arg("sink:seen").query_async(&mut conn).await?)
    }

    /// Waits until `n` distinct ids were handled, or `timeout`.
    pub async fn wait_seen(&self, n: u64, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Errors (e.g. while a test restarts Redis) count as "not yet".
            let seen = self.seen().await.unwrap_or(0);
            if seen >= n || tokio::time::Instant::now() > deadline {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks that each key's first handlings are exactly 0, 1, 2, ... `per_key - 1`.
pub async fn assert_in_order(sink: &Sink, keys: &[String], per_key: u64) -> anyhow::Result<()> {
    for key in keys {
        let order = sink.order(key).await?;
        let expected: Vec<u64> = (0..per_key).collect();
        anyhow::ensure!(
            order == expected,
            "key {key}: handled out of order or incompletely: {:?}",
            first_break(&order)
        );
    }
    Ok(())
}

fn first_break(order: &[u64]) -> String {
    for (i, s) in order.iter().enumerate() {
        if *s != i as u64 {
            return format!("position {i} has seq {s} (len {})", order.len());
        }
    }
    format!("complete prefix of len {}", order.len())
}

/// How the sink handler behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub member: String,
    /// Sleep this long per message (lets a test kill a process mid-batch).
    pub slow: Duration,
    /// Messages of this key always fail (poison).
    pub fail_key: Option<String>,
    /// Keep a checkpointed running count and seq sum per partition.
    pub stateful: bool,
    /// Log every attempt (`<key>:<seq>:<deliveries>`) in `sink:attempts`.
    pub log_attempts: bool,
}

/// Checkpointed state of the stateful mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub seq_sum: u64,
}

pub struct SinkHandler {
    sink: Sink,
    b: Arc<Behaviour>,
    tally: Tally,
}

impl Handler for SinkHandler {
    type Msg = TestMsg;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<TestMsg, DecodeError> {
        envelope.open::<TestMsg>()
    }

    async fn handle(&mut self, d: &Delivery<TestMsg>) -> Outcome {
        self.handle_batch(std::slice::from_ref(d)).await.pop().unwrap_or(Outcome::Retry("empty".into()))
    }

    async fn handle_batch(&mut self, batch: &[Delivery<TestMsg>]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut items = Vec::new();
        for d in batch {
            if self.b.log_attempts {
                let what = format!("{}:{}:{}", d.msg.key, d.msg.seq, d.deliveries);
                if let Err(e) = self.sink.log_attempt(&what).await {
                    outcomes.push(Outcome::Retry(e.to_string()));
                    continue;
                }
            }
            if !self.b.slow.is_zero() {
                tokio::time::sleep(self.b.slow).await;
            }
            if self.b.fail_key.as_deref() == Some(d.msg.key.as_str()) {
                outcomes.push(Outcome::Retry(format!("poison key {} always fails", d.msg.key)));
                continue;
            }
            items.push((d.envelope.id.clone(), d.msg.key.clone(), d.msg.seq, self.b.member.clone()));
            outcomes.push(Outcome::Done);
        }
        if let Err(e) = self.sink.record(&items).await {
            // Nothing was recorded and the tally is untouched: retry the whole batch.
            return batch.iter().map(|_| Outcome::Retry(format!("sink: {e}"))).collect();
        }
        // State changes only once the effects are in.
        for (_, _, seq, _) in &items {
            self.tally.count += 1;
            self.tally.seq_sum += seq;
        }
        outcomes
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        if self.b.stateful { serde_json::to_vec(&self.tally).ok() } else { None }
    }
}

pub struct SinkFactory {
    pub sink: Sink,
    pub behaviour: Arc<Behaviour>,
}

impl HandlerFactory for SinkFactory {
    type Handler = SinkHandler;

    fn create(&self, _partition: u32, restored: Option<&[u8]>) -> Result<SinkHandler, String> {
        let tally = match restored {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("bad checkpoint: {e}"))?,
            None => Tally::default(),
        };
        Ok(SinkHandler { sink: self.sink.clone(), b: self.behaviour.clone(), tally })
    }
}

/// Reads raw values for assertions.
pub async fn raw(url: &str, cmd: &redis::Cmd) -> anyhow::Result<Value> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    Ok(cmd.query_async(&mut c).await?)
}
