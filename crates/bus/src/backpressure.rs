//! Backpressure: a partition whose unread backlog reaches its stream's `high_water` makes its
//! producers wait instead of letting `MAXLEN ~` trim entries a group has not read.
//!
//! The backlog of a partition is the largest of its groups' (the groups Redis has: a group
//! the topology lists that nobody created yet is not waited for, as `streams init` and every
//! consumer create them): `XINFO GROUPS` `lag`,
//! capped by `XLEN` (Redis 7.0 can count trimmed entries in `lag`; nothing unread can exceed
//! the stream), or `XLEN` itself where Redis cannot tell the lag.
//!
//! Asking Redis before every send would double the round trips of the hot path, so the bus
//! keeps, per partition, the last backlog it saw, when, and how many entries it added since:
//! its estimate is their sum. The estimate is refreshed
//! - in the send's own MULTI (after its XADDs, no extra round trip) once it is older than
//!   [`REFRESH_EVERY`];
//! - before the send, in one pipelined round trip for all such partitions, when it is unknown
//!   or within [`margin`] of `high_water` (other producers may have filled the rest).
//!
//! A send to a partition whose backlog is at or above `high_water` waits, polling from 5 ms
//! backing off to 100 ms, until it falls below; it then sends its whole batch, so a partition
//! can exceed `high_water` by one batch (at most `PIPELINE_CHUNK` entries): `high_water` sits
//! below `maxlen` (default 90 %) for that.
//!
//! Stages wait the same way before the MULTI that settles a batch whose outputs are bound for
//! a full partition (`consumer::partition`), holding the batch unacknowledged so that the wait
//! travels upstream; that MULTI's replies are ignored, so its estimate is refreshed only by
//! the round trip made near the mark.
//!
//! Streams with `overflow = "drop_oldest"` never wait: `MAXLEN ~` trims as it always did, and
//! the entries it trimmed before some group read them are counted in
//! `tradeflow_bus_dropped_total{stream}`. They are counted at each refresh (in the send's MULTI,
//! at most every [`REFRESH_EVERY`] per partition) from `XINFO STREAM` and `XINFO GROUPS`: the
//! entries gone from the head (`entries-added - length`) that the group had not read
//! (`entries-read`, 0 for a group that never read, or `entries-added - lag`), the largest over
//! the groups, and the counter grows by how much that number grew since the previous refresh.
//! It is an estimate: a group that reads past a gap between two refreshes hides the drops
//! before it, so the counter is a lower bound. Under `block` it stays 0 unless a batch
//! overshot `maxlen`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Value;
use tokio_util::sync::CancellationToken;

use crate::connection::Bus;
use crate::error::{BusError, RedisContext};
use crate::metrics::BusMetrics;
use crate::producer::Outgoing;
use crate::reply::{self, as_int, as_string, flat_map};
use crate::topology::{Overflow, StreamSpec};

/// How old a partition's known backlog may get before a send refreshes it.
pub const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// First and longest pause of a waiting producer between two looks at the backlog.
const WAIT_FIRST: Duration = Duration::from_millis(5);
const WAIT_MAX: Duration = Duration::from_millis(100);

/// How close to `high_water` an estimate may come before a send asks Redis first: room for
/// what other producers added since the last look (an eighth of the mark).
pub fn margin(high_water: u64) -> u64 {
    high_water / 8
}

/// What the bus last learned of one partition.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// Largest unread backlog of a group at `at`.
    backlog: u64,
    /// Entries this process added since `at`.
    added: u64,
    at: Instant,
    /// Unread entries trimmed away, as last estimated (see the module's comment).
    lost: u64,
}

/// Last known backlogs of the partitions this process produces to; shared by every producer
/// of one [`Bus`].
#[derive(Debug, Default)]
pub struct Backlogs {
    streams: Mutex<HashMap<String, Vec<Option<Known>>>>,
}

impl Backlogs {
    fn with<R>(&self, stream: &str, partition: u32, f: impl FnOnce(&mut Option<Known>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let parts = match map.get_mut(stream) {
            Some(p) => p,
            None => map.entry(stream.to_string()).or_default(),
        };
        let i = partition as usize;
        if parts.len() <= i {
            parts.resize(i + 1, None);
        }
        f(&mut parts[i])
    }

    /// The estimated backlog and how old its last refresh is; `None` when never seen.
    fn estimate(&self, stream: &str, partition: u32) -> Option<(u64, Duration)> {
        self.with(stream, partition, |k| k.map(|k| (k.backlog.saturating_add(k.added), k.at.elapsed())))
    }

    /// Counts `n` entries this process appended.
    fn added(&self, stream: &str, partition: u32, n: u64) {
        self.with(stream, partition, |k| {
            if let Some(k) = k {
                k.added = k.added.saturating_add(n);
            }
        })
    }

    /// Records a fresh sample; returns how many more unread entries were lost since the last.
    fn record(&self, stream: &str, partition: u32, s: Sample) -> u64 {
        self.with(stream, partition, |k| {
            let before = k.map(|k| k.lost);
            *k = Some(Known { backlog: s.backlog, added: 0, at: Instant::now(), lost: s.lost });
            // The first sample of a partition only sets the baseline: what was lost before
            // this process looked is not its to count. A smaller number (a group read past
            // the gap) lowers the baseline.
            before.map_or(0, |b| s.lost.saturating_sub(b))
        })
    }
}

/// A partition's backlog as Redis reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sample {
    pub backlog: u64,
    pub lost: u64,
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn opt_int(op: &'static str, v: Option<&Value>) -> Result<Option<u64>, BusError> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(v) => Ok(Some(as_int(op, v)?.max(0) as u64)),
    }
}

/// Parses the replies of the refresh commands of one partition: `XINFO GROUPS` and either
/// `XLEN` (block) or `XINFO STREAM` (drop_oldest, which also gives `entries-added`). An error
/// reply (the partition does not exist yet) is an empty partition.
pub(crate) fn parse_sample(groups: &Value, stream: &Value) -> Result<Sample, BusError> {
    const OP: &str = "backlog refresh";
    if matches!(groups, Value::ServerError(_)) || matches!(stream, Value::ServerError(_)) {
        return Ok(Sample::default());
    }
    let (length, entries_added) = match stream {
        Value::Int(n) => ((*n).max(0) as u64, None),
        other => {
            let f = flat_map(OP, other)?;
            (opt_int(OP, field(&f, "length"))?.unwrap_or(0), opt_int(OP, field(&f, "entries-added"))?)
        }
    };
    let mut sample = Sample::default();
    for g in reply::as_array(OP, groups)? {
        let f = flat_map(OP, g)?;
        let lag = opt_int(OP, field(&f, "lag"))?;
        // Redis cannot tell the lag (deletions ahead of the group): all of the stream may be
        // unread, as far as the producer can know.
        sample.backlog = sample.backlog.max(lag.unwrap_or(length).min(length));
        if let Some(added) = entries_added {
            let never_read =
                field(&f, "last-delivered-id").map(|v| as_string(OP, v)).transpose()?.as_deref() == Some("0-0");
            let read = match (opt_int(OP, field(&f, "entries-read"))?, lag) {
                (Some(r), _) => Some(r),
                // Created at 0 and never read: Redis's own estimate would say it read what
                // was trimmed.
                (None, _) if never_read => Some(0),
                (None, Some(lag)) => Some(added.saturating_sub(lag)),
                (None, None) => None,
            };
            if let Some(read) = read {
                sample.lost = sample.lost.max(added.saturating_sub(length).saturating_sub(read));
            }
        } else if let Some(lag) = lag {
            sample.lost = sample.lost.max(lag.saturating_sub(length));
        }
    }
    Ok(sample)
}

/// Appends the refresh commands of one partition to `pipe` (two replies, for
/// [`parse_sample`]).
fn add_refresh(pipe: &mut redis::Pipeline, spec: &StreamSpec, key: &str) {
    pipe.cmd("XINFO").arg("GROUPS").arg(key);
    match spec.overflow {
        Overflow::Block => pipe.cmd("XLEN").arg(key),
        // XINFO STREAM also returns the first and last entries, which XLEN spares: only the
        // streams that count drops pay for it.
        Overflow::DropOldest => pipe.cmd("XINFO").arg("STREAM").arg(key),
    };
}

/// Entries one send appends to one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Append {
    pub stream: String,
    pub partition: u32,
    pub entries: u64,
}

/// Entries per partition that `add_xadds` appended for `msgs` (its `entries`).
pub(crate) fn appends(msgs: &[Outgoing], entries: &[Vec<usize>]) -> Vec<Append> {
    let mut out: Vec<Append> = Vec::new();
    for members in entries {
        let Some(m) = members.first().map(|&i| &msgs[i]) else { continue };
        match out.iter_mut().find(|a| a.stream == m.stream && a.partition == m.partition) {
            Some(a) => a.entries += 1,
            None => out.push(Append { stream: m.stream.clone(), partition: m.partition, entries: 1 }),
        }
    }
    out
}

/// What [`admit`] leaves to the send: the partitions whose refresh rides in its MULTI.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    pub refresh: Vec<(String, u32)>,
}

impl Admitted {
    /// Appends the refresh commands (two replies per partition, after the XADDs).
    pub fn add_commands(&self, pipe: &mut redis::Pipeline, bus: &Bus) -> Result<(), BusError> {
        for (stream, p) in &self.refresh {
            let spec = bus.topology().stream(stream)?;
            add_refresh(pipe, spec, &bus.keys().partition(stream, *p));
        }
        Ok(())
    }

    /// Number of replies [`add_commands`](Self::add_commands) adds.
    pub fn replies(&self) -> usize {
        self.refresh.len() * 2
    }
}

/// Before a send: waits while a `block` partition it appends to is full, and says which
/// partitions to refresh within the send. `stop` cancelled during a wait returns
/// [`BusError::Backpressure`].
pub(crate) async fn admit(
    bus: &Bus,
    metrics: Option<&BusMetrics>,
    appends: &[Append],
    stop: Option<&CancellationToken>,
) -> Result<Admitted, BusError> {
    let backlogs = bus.backlogs();
    let mut admitted = Admitted::default();
    let mut ask: Vec<&Append> = Vec::new();
    for a in appends {
        let spec = bus.topology().stream(&a.stream)?;
        let known = backlogs.estimate(&a.stream, a.partition);
        match spec.overflow {
            Overflow::Block => match known {
                Some((est, _))
                    if est.saturating_add(a.entries).saturating_add(margin(spec.high_water)) >= spec.high_water =>
                {
                    ask.push(a)
                }
                None => ask.push(a),
                Some((_, age)) if age >= REFRESH_EVERY => admitted.refresh.push((a.stream.clone(), a.partition)),
                Some(_) => {}
            },
            Overflow::DropOldest => {
                if known.is_none_or(|(_, age)| age >= REFRESH_EVERY) {
                    admitted.refresh.push((a.stream.clone(), a.partition));
                }
            }
        }
    }
    if ask.is_empty() {
        return Ok(admitted);
    }
    let samples = refresh(bus, metrics, ask.iter().map(|a| (a.stream.as_str(), a.partition))).await?;
    for (a, s) in ask.iter().zip(samples) {
        let spec = bus.topology().stream(&a.stream)?;
        if s.backlog >= spec.high_water {
            wait_below(bus, metrics, spec, a.partition, s.backlog, stop).await?;
        }
    }
    Ok(admitted)
}

/// One pipelined round trip: the samples of `parts`, recorded (and drops counted).
async fn refresh<'a>(
    bus: &Bus,
    metrics: Option<&BusMetrics>,
    parts: impl Iterator<Item = (&'a str, u32)> + Clone,
) -> Result<Vec<Sample>, BusError> {
    let mut pipe = redis::pipe();
    // A missing partition answers XINFO with an error: kept as a value, read as empty.
    pipe.ignore_errors();
    for (stream, p) in parts.clone() {
        add_refresh(&mut pipe, bus.topology().stream(stream)?, &bus.keys().partition(stream, p));
    }
    let mut conn = bus.conn();
    let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("XINFO GROUPS")?;
    let mut out = Vec::new();
    for ((stream, p), r) in parts.zip(replies.chunks(2)) {
        let [groups, len] = r else {
            return Err(BusError::Reply { op: "XINFO GROUPS", reason: "short pipeline reply".into() });
        };
        let s = parse_sample(groups, len)?;
        record(bus, metrics, stream, p, s);
        out.push(s);
    }
    Ok(out)
}

/// Records a sample taken by a send (within its MULTI), counting drops.
pub(crate) fn record(bus: &Bus, metrics: Option<&BusMetrics>, stream: &str, partition: u32, s: Sample) {
    let lost = bus.backlogs().record(stream, partition, s);
    if lost > 0 {
        if let Some(m) = metrics {
            m.dropped.with_label_values(&[stream]).inc_by(lost);
        }
        tracing::warn!(stream, partition, lost, "unread entries trimmed by MAXLEN");
    }
}

/// Counts entries a send appended.
pub(crate) fn appended(bus: &Bus, appends: &[Append]) {
    for a in appends {
        bus.backlogs().added(&a.stream, a.partition, a.entries);
    }
}

/// Keeps `tradeflow_bus_backpressure_waiting{stream}` up while a producer waits, whatever ends
/// the wait (a drop of the send's future included).
struct Waiting<'m> {
    metrics: Option<&'m BusMetrics>,
    stream: &'m str,
}

impl<'m> Waiting<'m> {
    fn new(metrics: Option<&'m BusMetrics>, stream: &'m str) -> Self {
        if let Some(m) = metrics {
            m.backpressure_waiting.with_label_values(&[stream]).inc();
        }
        Self { metrics, stream }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.metrics {
            m.backpressure_waiting.with_label_values(&[self.stream]).dec();
        }
    }
}

/// Waits until the backlog of `partition` falls below `high_water`.
async fn wait_below(
    bus: &Bus,
    metrics: Option<&BusMetrics>,
    spec: &StreamSpec,
    partition: u32,
    mut backlog: u64,
    stop: Option<&CancellationToken>,
) -> Result<(), BusError> {
    let stream = spec.name.as_str();
    let _waiting = Waiting::new(metrics, stream);
    let started = Instant::now();
    tracing::warn!(stream, partition, backlog, high_water = spec.high_water, "partition full; producer waits");
    let mut pause = WAIT_FIRST;
    while backlog >= spec.high_water {
        let slept = Instant::now();
        let stopped = match stop {
            Some(stop) => tokio::select! {
                _ = tokio::time::sleep(pause) => false,
                _ = stop.cancelled() => true,
            },
            None => {
                tokio::time::sleep(pause).await;
                false
            }
        };
        // Counted as it goes, so that a long wait shows in the rate before it ends.
        if let Some(m) = metrics {
            m.backpressure_wait_seconds.with_label_values(&[stream]).inc_by(slept.elapsed().as_secs_f64());
        }
        if stopped {
            return Err(BusError::Backpressure {
                stream: stream.to_string(),
                partition,
                backlog,
                high_water: spec.high_water,
            });
        }
        pause = (pause * 2).min(WAIT_MAX);
        backlog = refresh(bus, metrics, std::iter::once((stream, partition))).await?[0].backlog;
    }
    tracing::info!(
        stream,
        partition,
        waited_ms = started.elapsed().as_millis() as u64,
        "partition below high water; producer goes on"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn group(name: &str, last: &str, entries_read: Option<i64>, lag: Option<i64>) -> Value {
        Value::Array(vec![
            bulk("name"),
            bulk(name),
            bulk("last-delivered-id"),
            bulk(last),
            bulk("entries-read"),
            entries_read.map_or(Value::Nil, Value::Int),
            bulk("lag"),
            lag.map_or(Value::Nil, Value::Int),
        ])
    }

    fn stream_info(length: i64, added: i64) -> Value {
        Value::Array(vec![bulk("length"), Value::Int(length), bulk("entries-added"), Value::Int(added)])
    }

    #[test]
    fn backlog_is_the_largest_lag_capped_by_the_length() {
        let groups = Value::Array(vec![group("a", "1-1", Some(90), Some(10)), group("b", "1-0", Some(40), Some(60))]);
        assert_eq!(parse_sample(&groups, &Value::Int(100)).unwrap(), Sample { backlog: 60, lost: 0 });
        // Redis 7.0 can count trimmed entries in the lag: never more than the stream holds.
        let groups = Value::Array(vec![group("a", "1-1", Some(10), Some(500))]);
        assert_eq!(parse_sample(&groups, &Value::Int(200)).unwrap(), Sample { backlog: 200, lost: 300 });
        // Lag unknown: the whole stream may be unread.
        let groups = Value::Array(vec![group("a", "1-1", None, None)]);
        assert_eq!(parse_sample(&groups, &Value::Int(70)).unwrap().backlog, 70);
        // No groups, or no partition yet.
        assert_eq!(parse_sample(&Value::Array(vec![]), &Value::Int(70)).unwrap(), Sample::default());
        let missing = Value::ServerError(
            redis::make_extension_error("ERR".into(), Some("no such key".into())).into_server_errors().unwrap()[0]
                .1
                .clone(),
        );
        assert_eq!(parse_sample(&missing, &missing).unwrap(), Sample::default());
    }

    #[test]
    fn lost_entries_are_those_trimmed_before_a_group_read_them() {
        // A group created at 0 that never read: Redis estimates its lag as the length.
        let groups = Value::Array(vec![group("g", "0-0", None, Some(200))]);
        assert_eq!(parse_sample(&groups, &stream_info(200, 1000)).unwrap(), Sample { backlog: 200, lost: 800 });
        // A group that read 900 of 1000 and a stream holding the last 200: 100 unread remain.
        let groups = Value::Array(vec![group("g", "5-0", Some(900), Some(100))]);
        assert_eq!(parse_sample(&groups, &stream_info(200, 1000)).unwrap(), Sample { backlog: 100, lost: 0 });
        // One that read 300: 500 trimmed unread.
        let groups = Value::Array(vec![group("g", "5-0", Some(300), Some(700))]);
        assert_eq!(parse_sample(&groups, &stream_info(200, 1000)).unwrap(), Sample { backlog: 200, lost: 500 });
    }

    #[test]
    fn drops_count_what_grew_since_the_previous_sample() {
        let b = Backlogs::default();
        assert_eq!(b.record("s", 3, Sample { backlog: 10, lost: 50 }), 0, "the first sample sets the baseline");
        assert_eq!(b.record("s", 3, Sample { backlog: 10, lost: 80 }), 30);
        assert_eq!(b.record("s", 3, Sample { backlog: 10, lost: 20 }), 0, "a group read past the gap");
        assert_eq!(b.record("s", 3, Sample { backlog: 10, lost: 25 }), 5);
        b.added("s", 3, 7);
        let (est, _) = b.estimate("s", 3).unwrap();
        assert_eq!(est, 17, "known backlog plus what was added since");
        assert!(b.estimate("s", 0).is_none());
        assert!(b.estimate("other", 3).is_none());
    }
}
