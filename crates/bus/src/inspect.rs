//! Stream health for operators: lengths, ids, groups, consumers, pending, lag, DLQ sizes.
//! Library functions shared by the CLI and the HTTP edge, and which stage reads what.

use redis::Value;
use serde::Serialize;

use crate::connection::Bus;
use crate::error::{BusError, RedisContext};
use crate::reply::{self, as_int, as_string, flat_map};

/// Health of one stream, all partitions.
#[derive(Debug, Clone, Serialize)]
pub struct StreamHealth {
    pub stream: String,
    pub description: String,
    pub partitions: Vec<PartitionHealth>,
    /// Sums over partitions. `length` counts stream entries: a packed entry holds several
    /// messages (see [`crate::pack`]).
    pub length: u64,
    pub dlq_length: u64,
    pub pending: u64,
    pub lag: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionHealth {
    pub partition: u32,
    pub key: String,
    /// False when the partition key does not exist yet (run `streams init`).
    pub exists: bool,
    pub length: u64,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub dlq_length: u64,
    pub groups: Vec<GroupHealth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupHealth {
    pub group: String,
    /// False when the group is missing on this partition.
    pub exists: bool,
    pub consumers: Vec<ConsumerHealth>,
    pub pending: u64,
    /// Entries not yet delivered to the group; None when Redis cannot tell (after deletions).
    pub lag: Option<u64>,
    pub last_delivered_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerHealth {
    pub name: String,
    pub pending: u64,
    pub idle_ms: u64,
}

fn field<'a>(fields: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Lag of `group` on one partition key (XINFO GROUPS), `None` when Redis reports it unknown.
pub(crate) async fn group_lag(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    group: &str,
) -> Result<Option<u64>, BusError> {
    let v: Value = redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(conn).await.op("XINFO GROUPS")?;
    for g in reply::as_array("XINFO GROUPS", &v)? {
        let f = flat_map("XINFO GROUPS", g)?;
        if field(&f, "name").map(|n| as_string("XINFO GROUPS", n)).transpose()?.as_deref() == Some(group) {
            return Ok(match field(&f, "lag") {
                None | Some(Value::Nil) => None,
                Some(l) => Some(as_int("XINFO GROUPS", l)?.max(0) as u64),
            });
        }
    }
    Ok(None)
}

/// Health of every stream of the topology.
pub async fn health(bus: &Bus) -> Result<Vec<StreamHealth>, BusError> {
    let mut out = Vec::new();
    for name in bus.topology().streams.keys() {
        out.push(stream_health(bus, name).await?);
    }
    Ok(out)
}

/// Health of one stream: one pipelined round trip for the stream and group info of all
/// partitions, one more for the consumers of all groups.
pub async fn stream_health(bus: &Bus, stream: &str) -> Result<StreamHealth, BusError> {
    let spec = bus.topology().stream(stream)?.clone();
    let keys = bus.keys();
    let mut conn = bus.conn();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for p in 0..spec.partitions {
        let key = keys.partition(stream, p);
        pipe.cmd("XINFO").arg("STREAM").arg(&key);
        pipe.cmd("XINFO").arg("GROUPS").arg(&key);
        pipe.cmd("XLEN").arg(keys.dlq(stream, p));
    }
    let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("XINFO")?;
    let mut partitions = Vec::new();
    for (p, chunk) in (0..spec.partitions).zip(replies.chunks(3)) {
        let [info, groups, dlq_len] = chunk else {
            return Err(BusError::Reply { op: "XINFO", reason: "short pipeline reply".into() });
        };
        let key = keys.partition(stream, p);
        let exists = !matches!(info, Value::ServerError(_));
        let (mut length, mut first_id, mut last_id) = (0, None, None);
        if exists {
            let f = flat_map("XINFO STREAM", info)?;
            length = field(&f, "length").map(|v| as_int("XINFO STREAM", v)).transpose()?.unwrap_or(0).max(0) as u64;
            if let Some(Value::Array(e)) = field(&f, "first-entry") {
                first_id = e.first().map(|i| as_string("XINFO STREAM", i)).transpose()?;
            }
            if let Some(Value::Array(e)) = field(&f, "last-entry") {
                last_id = e.first().map(|i| as_string("XINFO STREAM", i)).transpose()?;
            }
        }
        let mut found: Vec<GroupHealth> = Vec::new();
        if exists {
            for g in reply::as_array("XINFO GROUPS", groups)? {
                let f = flat_map("XINFO GROUPS", g)?;
                let name = field(&f, "name").map(|n| as_string("XINFO GROUPS", n)).transpose()?.unwrap_or_default();
                found.push(GroupHealth {
                    group: name,
                    exists: true,
                    consumers: Vec::new(),
                    pending: field(&f, "pending").map(|v| as_int("XINFO GROUPS", v)).transpose()?.unwrap_or(0).max(0)
                        as u64,
                    lag: match field(&f, "lag") {
                        None | Some(Value::Nil) => None,
                        Some(l) => Some(as_int("XINFO GROUPS", l)?.max(0) as u64),
                    },
                    last_delivered_id: field(&f, "last-delivered-id")
                        .map(|v| as_string("XINFO GROUPS", v))
                        .transpose()?,
                });
            }
        }
        // Groups the topology expects but Redis lacks are reported, not hidden.
        for g in &spec.groups {
            if !found.iter().any(|f| &f.group == g) {
                found.push(GroupHealth {
                    group: g.clone(),
                    exists: false,
                    consumers: Vec::new(),
                    pending: 0,
                    lag: None,
                    last_delivered_id: None,
                });
            }
        }
        partitions.push(PartitionHealth {
            partition: p,
            key,
            exists,
            length,
            first_id,
            last_id,
            dlq_length: as_int("XLEN", dlq_len).unwrap_or(0).max(0) as u64,
            groups: found,
        });
    }

    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut slots = Vec::new();
    for (pi, ph) in partitions.iter().enumerate() {
        for (gi, g) in ph.groups.iter().enumerate() {
            if g.exists {
                pipe.cmd("XINFO").arg("CONSUMERS").arg(&ph.key).arg(&g.group);
                slots.push((pi, gi));
            }
        }
    }
    if !slots.is_empty() {
        let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("XINFO CONSUMERS")?;
        for ((pi, gi), v) in slots.into_iter().zip(replies) {
            if matches!(v, Value::ServerError(_)) {
                continue;
            }
            for c in reply::as_array("XINFO CONSUMERS", &v)? {
                let f = flat_map("XINFO CONSUMERS", c)?;
                partitions[pi].groups[gi].consumers.push(ConsumerHealth {
                    name: field(&f, "name").map(|n| as_string("XINFO CONSUMERS", n)).transpose()?.unwrap_or_default(),
                    pending: field(&f, "pending").map(|v| as_int("XINFO CONSUMERS", v)).transpose()?.unwrap_or(0).max(0)
                        as u64,
                    idle_ms: field(&f, "idle").map(|v| as_int("XINFO CONSUMERS", v)).transpose()?.unwrap_or(0).max(0)
                        as u64,
                });
            }
        }
    }
    let sum = |f: &dyn Fn(&PartitionHealth) -> u64| partitions.iter().map(f).sum::<u64>();
    Ok(StreamHealth {
        stream: stream.to_string(),
        description: spec.description.clone(),
        length: sum(&|p| p.length),
        dlq_length: sum(&|p| p.dlq_length),
        pending: sum(&|p| p.groups.iter().map(|g| g.pending).sum()),
        lag: sum(&|p| p.groups.iter().filter_map(|g| g.lag).sum()),
        partitions,
    })
}

/// Entries in all partitions of `stream` (one pipelined XLEN per partition): cheap enough to
/// poll.
pub async fn stream_length(bus: &Bus, stream: &str) -> Result<u64, BusError> {
    let spec = bus.topology().stream(stream)?;
    let mut pipe = redis::pipe();
    for p in 0..spec.partitions {
        pipe.cmd("XLEN").arg(bus.keys().partition(stream, p));
    }
    let mut conn = bus.conn();
    let lens: Vec<u64> = pipe.query_async(&mut conn).await.map_err(|source| BusError::Redis { op: "XLEN", source })?;
    Ok(lens.iter().sum())
}

/// The trading path's stages, upstream first. Each one's consumer group bears its name; what
/// it reads is `streams.toml`'s to say ([`crate::Topology::streams_read_by`]).
pub const PIPELINE_STAGES: [&str; 4] = ["inference", "ensemble", "risk", "exec"];

/// The audit writer's group: it reads every stream that lists it.
pub const AUDIT_STAGE: &str = "audit";

/// (stream, group) pairs of the trading path's stages, upstream first.
pub fn pipeline_groups(topology: &crate::Topology) -> Vec<(String, String)> {
    PIPELINE_STAGES
        .iter()
        .flat_map(|stage| topology.streams_read_by(stage).into_iter().map(|s| (s.to_string(), stage.to_string())))
        .collect()
}

/// Each stage (the trading path's, then the audit writer) with the streams its group reads.
pub fn stage_streams(topology: &crate::Topology) -> Vec<(&'static str, Vec<&str>)> {
    PIPELINE_STAGES
        .iter()
        .chain(std::iter::once(&AUDIT_STAGE))
        .map(|stage| (*stage, topology.streams_read_by(stage)))
        .collect()
}

/// Whether `group` has nothing left to read or acknowledge on any partition of `stream`.
pub async fn drained(bus: &Bus, stream: &str, group: &str) -> Result<bool, BusError> {
    let h = stream_health(bus, stream).await?;
    // Redis reports no lag after deletions in a stream; the last delivered id tells then.
    Ok(h.partitions.iter().all(|p| {
        p.groups
            .iter()
            .filter(|g| g.group == group)
            .all(|g| g.pending == 0 && (g.lag == Some(0) || (p.last_id.is_some() && g.last_delivered_id == p.last_id)))
    }))
}

/// Counters of one stream over all partitions, for rate sampling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounters {
    /// Entries in the partitions now.
    pub length: u64,
    /// Entries ever added to the partitions (XINFO STREAM `entries-added`, trimmed ones
    /// included); the length on a Redis older than 7, which does not report it.
    pub entries_added: u64,
}

/// [`StreamCounters`] of `stream`: one pipelined XINFO STREAM per partition; a partition that
/// does not exist yet counts as empty.
pub async fn stream_counters(bus: &Bus, stream: &str) -> Result<StreamCounters, BusError> {
    let spec = bus.topology().stream(stream)?;
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for p in 0..spec.partitions {
        pipe.cmd("XINFO").arg("STREAM").arg(bus.keys().partition(stream, p));
    }
    let mut conn = bus.conn();
    let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("XINFO STREAM")?;
    let mut out = StreamCounters::default();
    for info in &replies {
        if matches!(info, Value::ServerError(_)) {
            continue;
        }
        let f = flat_map("XINFO STREAM", info)?;
        let length = field(&f, "length").map(|v| as_int("XINFO STREAM", v)).transpose()?.unwrap_or(0).max(0) as u64;
        let added = match field(&f, "entries-added") {
            Some(v) => as_int("XINFO STREAM", v)?.max(0) as u64,
            None => length,
        };
        out.length += length;
        out.entries_added += added;
    }
    Ok(out)
}

/// Dead letters of `stream` over all partitions (one pipelined XLEN per DLQ partition).
pub async fn dlq_length(bus: &Bus, stream: &str) -> Result<u64, BusError> {
    let spec = bus.topology().stream(stream)?;
    let mut pipe = redis::pipe();
    for p in 0..spec.partitions {
        pipe.cmd("XLEN").arg(bus.keys().dlq(stream, p));
    }
    let mut conn = bus.conn();
    let lens: Vec<u64> = pipe.query_async(&mut conn).await.op("XLEN")?;
    Ok(lens.iter().sum())
}
