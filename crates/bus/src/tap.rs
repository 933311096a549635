//! A tap: plain XREAD over every partition of some streams, outside any consumer group.
//!
//! For readers that must see everything and take nothing away from the workers: the control
//! follower (every worker learns every command) and the edge (prices, positions and events
//! for REST and WebSocket clients). A tap never acks, never claims and never dead-letters; an
//! entry it cannot decode is skipped and counted, the groups' own consumers deal with it.

use std::time::Duration;

use crate::cluster::BusConn;
use redis::Value;

use crate::connection::Bus;
use crate::envelope::Envelope;
use crate::error::{BusError, RedisContext};
use crate::pack;
use crate::reply::{self, EntryId, RawEntry};

/// Where a tap starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The first entry still in each partition.
    Start,
    /// After the last entry present when the tap is opened (only what comes next).
    Now,
}

/// One decoded entry.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// Logical stream name (`md.candles`).
    pub stream: String,
    pub partition: u32,
    pub entry_id: String,
    pub envelope: Envelope,
}

/// (stream, partition, key, last id read)
type Cursor = (String, u32, String, EntryId);

pub struct Tap {
    bus: Bus,
    cursors: Vec<Cursor>,
    block: Duration,
    count: usize,
    conn: Option<BusConn>,
    /// Entries skipped because they could not be decoded.
    pub undecodable: u64,
}

impl Tap {
    /// Opens a tap on `streams` (logical names). Unknown names are an error.
    pub async fn open(bus: &Bus, streams: &[&str], from: From, block: Duration) -> Result<Tap, BusError> {
        let mut cursors = Vec::new();
        for s in streams {
            let spec = bus.topology().stream(s)?;
            for p in 0..spec.partitions {
                cursors.push((s.to_string(), p, bus.keys().partition(s, p), EntryId::ZERO));
            }
        }
        let mut tap = Tap { bus: bus.clone(), cursors, block, count: 1000, conn: None, undecodable: 0 };
        if from == From::Now {
            // "$" would be resolved anew by every XREAD and lose what arrives between two
            // calls: start from each partition's last id instead.
            let mut pipe = redis::pipe();
            for (_, _, key, _) in &tap.cursors {
                pipe.cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1);
            }
            let mut conn = bus.conn();
            let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("XREVRANGE")?;
            for (cursor, v) in tap.cursors.iter_mut().zip(replies) {
                if let Some(last) = reply::entries("XREVRANGE", &v)?.into_iter().next() {
                    cursor.3 = last.id;
                }
            }
        }
        Ok(tap)
    }

    /// At most this many messages per partition and read (default 1000; one packed entry
    /// more than that still goes whole). A reader that hands each message to bounded queues
    /// (the edge's WebSocket clients) keeps its bursts below their size with a smaller count.
    pub fn with_count(mut self, count: usize) -> Tap {
        self.count = count.max(1);
        self
    }

    /// The next entries (waits up to the block time; empty when nothing came), in the order
    /// Redis added them, to the millisecond, across streams and partitions. A failed read
    /// drops the connection so the next call reconnects; the cursors stay, nothing is skipped.
    pub async fn next(&mut self) -> Result<Vec<Tapped>, BusError> {
        if self.conn.is_none() {
            self.conn = Some(self.bus.blocking_connection(self.block).await?);
        }
        let Some(conn) = self.conn.as_mut() else { return Ok(Vec::new()) };
        let read = if conn.is_cluster() {
            read_by_slot(conn, &self.cursors, self.count, self.block).await
        } else {
            let keys: Vec<usize> = (0..self.cursors.len()).collect();
            xread(&self.cursors, &keys, self.count, Some(self.block))
                .query_async(conn)
                .await
                .op("XREAD")
                .map(|v| vec![v])
        };
        let replies = match read {
            Ok(v) => v,
            Err(e) => {
                self.conn = None;
                return Err(e);
            }
        };
        let mut streams = Vec::new();
        for v in replies {
            streams.extend(per_stream(v)?);
        }
        // (the entry's millisecond, the message): XREAD answers stream after stream, and readers
        // want the order Redis accepted them in (a cycle's start on one stream before its
        // decisions on another).
        let mut out: Vec<(u64, Tapped)> = Vec::new();
        for (key, entries) in streams {
            let Some(i) = self.cursors.iter().position(|c| c.2 == key) else { continue };
            // `count` bounds messages, not entries: a pack holds several. Entries past the
            // budget are left for the next read (the cursor stops before them); the first entry
            // always goes, whatever its size.
            let mut budget = self.count;
            for (n, entry) in entries.into_iter().enumerate() {
                let messages = pack::messages(&entry);
                let size = messages.as_ref().map_or(1, Vec::len);
                if n > 0 && size > budget {
                    break;
                }
                budget = budget.saturating_sub(size);
                let cursor = &mut self.cursors[i];
                cursor.3 = cursor.3.max(entry.id);
                let Ok(messages) = messages else {
                    self.undecodable += 1;
                    continue;
                };
                for bytes in messages {
                    match Envelope::decode(bytes) {
                        Ok(envelope) => out.push((
                            entry.id.ms,
                            Tapped {
                                stream: cursor.0.clone(),
                                partition: cursor.1,
                                entry_id: entry.id.to_string(),
                                envelope,
                            },
                        )),
                        Err(_) => self.undecodable += 1,
                    }
                }
            }
        }
        // Stable: within one millisecond, the order of the streams given to `open` (sequence
        // numbers are per stream and say nothing across streams), each stream's own order kept.
        out.sort_by_key(|(ms, _)| *ms);
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }
}

/// XREAD of the cursors at `which`, blocking up to `block` when given.
fn xread(cursors: &[Cursor], which: &[usize], count: usize, block: Option<Duration>) -> redis::Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(count);
    if let Some(b) = block {
        cmd.arg("BLOCK").arg(b.as_millis() as u64);
    }
    cmd.arg("STREAMS");
    for &i in which {
        cmd.arg(&cursors[i].2);
    }
    for &i in which {
        cmd.arg(cursors[i].3.to_string());
    }
    cmd
}

/// Longest pause between two polls of an idle tap on a cluster.
const CLUSTER_POLL_MAX: Duration = Duration::from_millis(20);

/// XREAD on a cluster, where one XREAD may only name keys of one slot. A blocking XREAD per
/// slot would not do: a BLOCK holds its node's multiplexed connection, so the reads of one
/// node would wait for each other. Instead every slot's partitions are read without BLOCK, all
/// at once (one XREAD per slot, pipelined on each node's connection); while nothing comes the
/// tap polls again, after 1 ms doubling to [`CLUSTER_POLL_MAX`], until `block` has passed. A tap
/// on a cluster therefore sees an entry up to 20 ms later than on one server, and an idle tap
/// costs one XREAD per slot it reads every 20 ms. A tap whose partitions share one slot blocks
/// as usual.
async fn read_by_slot(
    conn: &mut BusConn,
    cursors: &[Cursor],
    count: usize,
    block: Duration,
) -> Result<Vec<Value>, BusError> {
    let mut groups: Vec<(redis::cluster_routing::Slot, Vec<usize>)> = Vec::new();
    for (i, c) in cursors.iter().enumerate() {
        let slot = crate::cluster::slot_of(c.2.as_bytes());
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, members)) => members.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    if groups.len() == 1 {
        let v: Value = xread(cursors, &groups[0].1, count, Some(block)).query_async(conn).await.op("XREAD")?;
        return Ok(vec![v]);
    }
    let until = tokio::time::Instant::now() + block;
    let mut pause = Duration::from_millis(1);
    loop {
        let mut pipe = redis::pipe();
        for (_, members) in &groups {
            pipe.add_command(xread(cursors, members, count, None));
        }
        // One pipeline: [`BusConn`] sends each slot's XREAD to its node, concurrently.
        let replies: Vec<Value> = pipe.query_async(conn).await.op("XREAD")?;
        if replies.iter().any(|v| !matches!(v, Value::Nil)) || tokio::time::Instant::now() >= until {
            return Ok(replies);
        }
        tokio::time::sleep(pause.min(until.saturating_duration_since(tokio::time::Instant::now()))).await;
        pause = (pause * 2).min(CLUSTER_POLL_MAX);
    }
}

/// Up to `count` entries of partition `partition` of `stream`, newest first, older than
/// `before` (from the end when `None`): for readers that look back from the end, such as an
/// ingest finding the last candle it sent. Entries are returned raw ([`crate::pack::messages`]
/// opens them).
pub async fn read_back(
    bus: &Bus,
    stream: &str,
    partition: u32,
    before: Option<EntryId>,
    count: usize,
) -> Result<Vec<RawEntry>, BusError> {
    bus.topology().stream(stream)?;
    let end = before.map_or_else(|| "+".to_string(), |id| format!("({id}"));
    let v: Value = redis::cmd("XREVRANGE")
        .arg(bus.keys().partition(stream, partition))
        .arg(end)
        .arg("-")
        .arg("COUNT")
        .arg(count.max(1))
        .query_async(&mut bus.conn())
        .await
        .op("XREVRANGE")?;
    reply::entries("XREVRANGE", &v)
}

/// XREAD over several streams: `nil` or `[[key, [entries]], ...]`.
pub(crate) fn per_stream(v: Value) -> Result<Vec<(String, Vec<RawEntry>)>, BusError> {
    let bad = |reason: &str| BusError::Reply { op: "XREAD", reason: reason.into() };
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err(bad("expected an array of streams")),
    };
    let mut out = Vec::with_capacity(streams.len());
    for s in streams {
        let Value::Array(kv) = s else { return Err(bad("stream item is not an array")) };
        let mut kv = kv.into_iter();
        let (Some(k), Some(list)) = (kv.next(), kv.next()) else {
            return Err(bad("stream item lacks key or entries"));
        };
        let key = match k {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::SimpleString(s) => s,
            _ => return Err(bad("stream key is not a string")),
        };
        out.push((key, reply::into_entries("XREAD", list)?));
    }
    Ok(out)
}
