//! Dead-letter streams: the atomic move, and inspection, replay and purge.
//!
//! Each partition `tf:{S:P}` has its dead-letter stream `tf:{S:P}:dlq` in the same hash slot,
//! so moving an entry there and acknowledging it in the source is one Lua script: either both
//! happen or neither does, on a single Redis or a cluster.

use redis::Value;
use serde::Serialize;
use tradeflow_core::time::now_ms;

use crate::connection::Bus;
use crate::envelope::{ENVELOPE_FIELD, Envelope, payload_to_json};
use crate::error::{BusError, RedisContext};
use crate::reply::{self, EntryId, RawEntry};

/// Why an entry was dead-lettered. A closed set: it is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The entry could not be decoded (bad bytes, missing field, unknown schema version).
    DecodeError,
    /// The handler failed `max_deliveries` times, or the entry was delivered that many times
    /// without ever completing (e.g. it crashed the workers that took it).
    MaxDeliveries,
    /// The handler declared the message permanently unprocessable.
    Rejected,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DecodeError => "decode_error",
            Self::MaxDeliveries => "max_deliveries",
            Self::Rejected => "rejected",
        }
    }
}

/// KEYS: source partition, its DLQ. ARGV: group, DLQ maxlen, source entry id to acknowledge
/// (empty: none, for one message of a pack whose other messages are not all settled), then the
/// DLQ entry's field/value pairs. Adds to the DLQ and acks in the source, atomically.
const MOVE_LUA: &str = r#"
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 4))
if ARGV[3] == '' then return 0 end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
"#;

/// KEYS: DLQ partition, source partition. ARGV: DLQ entry id, source maxlen. Puts the original
/// payload back on its stream and removes the dead letter, atomically. Returns the new entry id,
/// or nil when the dead letter does not exist.
const REPLAY_LUA: &str = r#"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local f = e[1][2]
for i = 1, #f, 2 do
  if f[i] == 'payload' then
    local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', f[i + 1])
    redis.call('XDEL', KEYS[1], ARGV[1])
    return id
  end
end
return redis.error_reply('NOPAYLOAD dead letter ' .. ARGV[1] .. ' has no payload to replay')
"#;

/// Everything recorded about one dead-lettered entry.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterDraft<'a> {
    pub reason: DeadLetterReason,
    pub error: String,
    pub stream: &'a str,
    pub partition: u32,
    pub group: &'a str,
    pub service: &'a str,
    pub entry: &'a RawEntry,
    /// The one message of the entry that is dead-lettered (its envelope bytes; the entry is
    /// acknowledged with the batch once all its messages are settled). `None`: the whole entry,
    /// unreadable as messages, is moved and acknowledged by the move.
    pub message: Option<&'a [u8]>,
    pub message_id: Option<&'a str>,
    /// Handler attempts made (0 for decode errors).
    pub attempts: u32,
}

/// Adds the atomic move of `d` to a pipeline. Plain EVAL rather than EVALSHA: moves are rare,
/// and EVAL cannot fail with NOSCRIPT after a Redis restart emptied the script cache.
pub(crate) fn add_move(pipe: &mut redis::Pipeline, bus: &Bus, d: &DeadLetterDraft<'_>, dlq_maxlen: u64) {
    let keys = bus.keys();
    let inv = pipe
        .cmd("EVAL")
        .arg(MOVE_LUA)
        .arg(2)
        .arg(keys.partition(d.stream, d.partition))
        .arg(keys.dlq(d.stream, d.partition))
        .arg(d.group)
        .arg(dlq_maxlen)
        .arg(if d.message.is_some() { String::new() } else { d.entry.id.to_string() })
        .arg("dead_letter_reason")
        .arg(d.reason.as_str())
        .arg("error")
        .arg(&d.error)
        .arg("failed_at")
        .arg(now_ms())
        .arg("original_stream")
        .arg(d.stream)
        .arg("original_partition")
        .arg(d.partition)
        .arg("original_message_id")
        .arg(d.entry.id.to_string())
        .arg("message_id")
        .arg(d.message_id.unwrap_or(""))
        .arg("group")
        .arg(d.group)
        .arg("service_name")
        .arg(d.service)
        .arg("final_retry_count")
        .arg(d.attempts);
    if let Some(payload) = d.message.or_else(|| d.entry.field(ENVELOPE_FIELD)) {
        inv.arg("payload").arg(payload);
    } else {
        inv.arg("original_fields").arg(d.entry.field_names());
    }
}

/// A dead letter as listed to operators.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// `<partition>/<dlq entry id>`: what `dlq replay --id` takes.
    pub id: String,
    pub partition: u32,
    pub dead_letter_reason: String,
    pub error: String,
    pub failed_at: i64,
    pub original_stream: String,
    /// Stream entry id of the original in its partition.
    pub original_message_id: String,
    /// Deterministic message id from the envelope, when it could be read.
    pub message_id: String,
    pub group: String,
    pub service_name: String,
    pub final_retry_count: u32,
    /// The envelope header, when the payload decodes as an envelope.
    pub envelope: Option<serde_json::Value>,
    /// The payload decoded to JSON (the message body when the envelope decodes, else a
    /// description of the undecodable bytes); null when the entry had no payload.
    pub payload: Option<serde_json::Value>,
    pub payload_bytes: usize,
}

fn dead_letter(partition: u32, e: &RawEntry) -> DeadLetter {
    let text = |name: &str| e.field(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
    let num = |name: &str| text(name).parse::<i64>().unwrap_or(0);
    let raw = e.field("payload");
    let (envelope, payload) = match raw.map(Envelope::decode) {
        Some(Ok(env)) => (
            Some(serde_json::json!({
                "type": env.kind, "v": env.v, "id": env.id, "key": env.key,
                "causation": env.causation, "producer": env.producer, "produced_at": env.produced_at,
            })),
            Some(env.payload_json()),
        ),
        Some(Err(err)) => (
            None,
            Some(
                serde_json::json!({"envelope_error": err.to_string(), "raw": payload_to_json(raw.unwrap_or_default())}),
            ),
        ),
        None => (None, None),
    };
    DeadLetter {
        id: format!("{partition}/{}", e.id),
        partition,
        dead_letter_reason: text("dead_letter_reason"),
        error: text("error"),
        failed_at: num("failed_at"),
        original_stream: text("original_stream"),
        original_message_id: text("original_message_id"),
        message_id: text("message_id"),
        group: text("group"),
        service_name: text("service_name"),
        final_retry_count: num("final_retry_count").clamp(0, u32::MAX as i64) as u32,
        envelope,
        payload,
        payload_bytes: raw.map_or(0, <[u8]>::len),
    }
}

/// Counts of a stream's dead letters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DlqStats {
    pub stream: String,
    pub total: u64,
    pub by_reason: std::collections::BTreeMap<String, u64>,
    pub by_partition: std::collections::BTreeMap<u32, u64>,
    pub oldest_failed_at: Option<i64>,
    pub newest_failed_at: Option<i64>,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelector {
    /// One dead letter: `<partition>/<entry id>`, or a bare entry id if it is unambiguous.
    Id(String),
    All,
    Reason(String),
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// `<partition>/<dlq entry id>` of each dead letter put back on its stream.
    pub replayed: Vec<String>,
    /// Dead letters left in the DLQ, with the reason (e.g. no payload to replay).
    pub skipped: Vec<(String, String)>,
}

/// Page size when scanning a DLQ.
const PAGE: usize = 500;

/// Dead-letter operations on one bus.
pub struct Dlq<'b> {
    bus: &'b Bus,
}

impl<'b> Dlq<'b> {
    pub fn new(bus: &'b Bus) -> Self {
        Self { bus }
    }

    /// Every dead letter of `stream`, oldest first across partitions, at most `limit`.
    pub async fn list(&self, stream: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let mut all = Vec::new();
        self.scan(stream, |p, e| {
            all.push((e.id, p, dead_letter(p, e)));
            true
        })
        .await?;
        all.sort_by_key(|(id, p, _)| (*id, *p));
        Ok(all.into_iter().take(limit).map(|(_, _, d)| d).collect())
    }

    /// Counts by reason and partition.
    pub async fn stats(&self, stream: &str) -> Result<DlqStats, BusError> {
        let mut stats = DlqStats { stream: stream.to_string(), ..Default::default() };
        self.scan(stream, |p, e| {
            let d = dead_letter(p, e);
            stats.total += 1;
            *stats.by_reason.entry(d.dead_letter_reason).or_default() += 1;
            *stats.by_partition.entry(p).or_default() += 1;
            stats.oldest_failed_at = Some(stats.oldest_failed_at.map_or(d.failed_at, |o| o.min(d.failed_at)));
            stats.newest_failed_at = Some(stats.newest_failed_at.map_or(d.failed_at, |o| o.max(d.failed_at)));
            true
        })
        .await?;
        Ok(stats)
    }

    /// Puts the selected dead letters back on their stream (in DLQ order) and removes them
    /// from the DLQ. A dead letter that cannot be replayed (it had no payload) stays and is
    /// reported as skipped; a single `--id` that cannot be replayed is an error.
    pub async fn replay(&self, stream: &str, selector: &ReplaySelector) -> Result<ReplayReport, BusError> {
        let spec = self.bus.topology().stream(stream)?.clone();
        let mut targets: Vec<(u32, EntryId)> = Vec::new();
        match selector {
            ReplaySelector::Id(id) => targets.push(self.resolve_id(stream, id).await?),
            ReplaySelector::All | ReplaySelector::Reason(_) => {
                self.scan(stream, |p, e| {
                    let wanted = match selector {
                        ReplaySelector::Reason(r) => e.field("dead_letter_reason") == Some(r.as_bytes()),
                        _ => true,
                    };
                    if wanted {
                        targets.push((p, e.id));
                    }
                    true
                })
                .await?;
            }
        }
        let keys = self.bus.keys();
        let mut conn = self.bus.conn();
        let mut report = ReplayReport::default();
        for chunk in targets.chunks(PAGE) {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for (p, id) in chunk {
                pipe.cmd("EVAL")
                    .arg(REPLAY_LUA)
                    .arg(2)
                    .arg(keys.dlq(stream, *p))
                    .arg(keys.partition(stream, *p))
                    .arg(id.to_string())
                    .arg(spec.maxlen);
            }
            let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("DLQ replay")?;
            for ((p, id), r) in chunk.iter().zip(replies) {
                match r {
                    Value::Nil => {}
                    Value::ServerError(e) => {
                        report.skipped.push((format!("{p}/{id}"), e.details().unwrap_or(e.code()).to_string()))
                    }
                    _ => report.replayed.push(format!("{p}/{id}")),
                }
            }
        }
        if let ReplaySelector::Id(id) = selector
            && report.replayed.is_empty()
        {
            return match report.skipped.pop() {
                Some((_, reason)) => Err(BusError::Invalid(format!("dead letter {id} cannot be replayed: {reason}"))),
                None => Err(BusError::DeadLetterNotFound { stream: stream.to_string(), id: id.clone() }),
            };
        }
        Ok(report)
    }

    /// Deletes every dead letter of `stream`. Returns how many there were.
    pub async fn purge(&self, stream: &str) -> Result<u64, BusError> {
        let spec = self.bus.topology().stream(stream)?;
        let keys: Vec<String> = (0..spec.partitions).map(|p| self.bus.keys().dlq(stream, p)).collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("XLEN").arg(k);
        }
        pipe.atomic();
        for k in &keys {
            pipe.cmd("DEL").arg(k).ignore();
        }
        let mut conn = self.bus.conn();
        let lens: Vec<u64> = pipe.query_async(&mut conn).await.op("DLQ purge")?;
        Ok(lens.iter().sum())
    }

    async fn resolve_id(&self, stream: &str, id: &str) -> Result<(u32, EntryId), BusError> {
        let not_found = || BusError::DeadLetterNotFound { stream: stream.to_string(), id: id.to_string() };
        let spec = self.bus.topology().stream(stream)?;
        if let Some((p, e)) = id.split_once('/') {
            let p: u32 = p
                .parse()
                .map_err(|_| BusError::Invalid(format!("dead letter id {id:?}: partition {p:?} is not a number")))?;
            if p >= spec.partitions {
                return Err(BusError::NoSuchPartition {
                    stream: stream.to_string(),
                    partition: p,
                    partitions: spec.partitions,
                });
            }
            let e = EntryId::parse(e)
                .ok_or_else(|| BusError::Invalid(format!("dead letter id {id:?}: {e:?} is not a stream entry id")))?;
            return Ok((p, e));
        }
        let e = EntryId::parse(id).ok_or_else(|| {
            BusError::Invalid(format!("dead letter id {id:?} is neither <partition>/<entry id> nor an entry id"))
        })?;
        let mut found = Vec::new();
        let mut conn = self.bus.conn();
        for p in 0..spec.partitions {
            let v: Value = redis::cmd("XRANGE")
                .arg(self.bus.keys().dlq(stream, p))
                .arg(e.to_string())
                .arg(e.to_string())
                .query_async(&mut conn)
                .await
                .op("XRANGE")?;
            if !reply::entries("XRANGE", &v)?.is_empty() {
                found.push(p);
            }
        }
        match found.as_slice() {
            [p] => Ok((*p, e)),
            [] => Err(not_found()),
            many => Err(BusError::Invalid(format!(
                "dead letter id {id:?} exists in partitions {many:?}; give it as <partition>/{id}"
            ))),
        }
    }

    /// Visits every DLQ entry of a stream, partition by partition, in pages. Stops early when
    /// `visit` returns false.
    async fn scan(&self, stream: &str, mut visit: impl FnMut(u32, &RawEntry) -> bool) -> Result<(), BusError> {
        let spec = self.bus.topology().stream(stream)?;
        let mut conn = self.bus.conn();
        for p in 0..spec.partitions {
            let key = self.bus.keys().dlq(stream, p);
            let mut start = "-".to_string();
            loop {
                let v: Value = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(&mut conn)
                    .await
                    .op("XRANGE")?;
                let page = reply::entries("XRANGE", &v)?;
                for e in &page {
                    if !visit(p, e) {
                        return Ok(());
                    }
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => start = format!("({}", last.id),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}
