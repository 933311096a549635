//! Stream health for operators: lengths, ids, groups, consumers, pending, lag, DLQ sizes.
//! Library functions shared by the CLI and the HTTP edge, and which stage reads what.

use redis::Value;
use serde::Serialize;

use crate::connection::Bus;
use crate::error::{BusError, RedisContext};
use crate::reply::{self, EntryId, as_int, as_string, flat_map};

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

/// Lag of `group` on one partition key (XINFO GROUPS, and the last entry's id), `None` when
/// Redis reports it unknown. See [`lag_of`].
pub(crate) async fn group_lag(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    group: &str,
) -> Result<Option<u64>, BusError> {
    let mut pipe = redis::pipe();
    pipe.cmd("XINFO").arg("GROUPS").arg(key);
    pipe.cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1);
    let (groups, last): (Value, Value) = pipe.query_async(conn).await.op("XINFO GROUPS")?;
    let last_id = reply::entries("XREVRANGE", &last)?.first().map(|e| e.id.to_string());
    for g in reply::as_array("XINFO GROUPS", &groups)? {
        let f = flat_map("XINFO GROUPS", g)?;
        if field(&f, "name").map(|n| as_string("XINFO GROUPS", n)).transpose()?.as_deref() == Some(group) {
            let redis_lag = match field(&f, "lag") {
                None | Some(Value::Nil) => None,
                Some(l) => Some(as_int("XINFO GROUPS", l)?.max(0) as u64),
            };
            let delivered = field(&f, "last-delivered-id").map(|v| as_string("XINFO GROUPS", v)).transpose()?;
            return Ok(lag_of(redis_lag, delivered.as_deref(), last_id.as_deref()));
        }
    }
    Ok(None)
}

/// A group's lag on a partition: 0 when it has been delivered the partition's last entry (or
/// the partition is empty), else Redis's figure (`None`: Redis cannot tell, after deletions).
///
/// Redis's figure is `entries-added − entries-read`, two counters that a restart from the AOF
/// and a group moved back to its checkpoint (XGROUP SETID) can leave apart: measured in a chaos
/// run, a group delivered up to the last entry kept a "lag" of 320 for good after two Redis
/// restarts, which would hold `up --exit-when-drained` and the lag alert forever. Nothing after
/// the last delivered id means nothing to deliver, whatever the counters say.
pub fn lag_of(redis_lag: Option<u64>, last_delivered: Option<&str>, last_entry: Option<&str>) -> Option<u64> {
    let Some(last_entry) = last_entry.and_then(EntryId::parse) else { return Some(0) };
    match last_delivered.and_then(EntryId::parse) {
        Some(delivered) if delivered >= last_entry => Some(0),
        _ => redis_lag,
    }
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
    Ok(h.partitions
        .iter()
        .all(|p| p.groups.iter().filter(|g| g.group == group).all(|g| g.pending == 0 && known_lag(p, g) == Some(0))))
}

// ---------------------------------------------------------------------------------------------
// The health rules: one place for the CLI (`streams health`) and the edge (`/streams…`,
// `/health/streams`, `/monitoring/health`), so that they agree.

/// Lag (entries not yet delivered, summed over a group's partitions) above which a group is
/// `lag`ging and its stream (and the pipeline) `degraded`: about a minute of the whole demo
/// pipeline's output, far more than a healthy consumer ever leaves behind.
pub const LAG_DEGRADED: u64 = 1000;

/// The lag of `g` on partition `p`: Redis's, or 0 when the group has delivered up to the last
/// entry (Redis cannot tell the lag after deletions) or the partition is empty; `None` when
/// unknown.
pub fn known_lag(p: &PartitionHealth, g: &GroupHealth) -> Option<u64> {
    if !g.exists {
        return if p.length == 0 { Some(0) } else { None };
    }
    if p.length == 0 {
        return Some(0);
    }
    lag_of(g.lag, g.last_delivered_id.as_deref(), p.last_id.as_deref())
}

/// One group of a stream over all partitions.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupSummary {
    pub group: String,
    /// Fleet members consuming it whose heartbeat has not expired (by Redis time).
    pub live_workers: Vec<String>,
    pub pending: u64,
    /// Entries not yet delivered, summed over the partitions where Redis knows it.
    pub lag: u64,
    /// False when Redis could not tell the lag of some partition.
    pub lag_known: bool,
    /// Partitions on which the group does not exist.
    pub missing_on: Vec<u32>,
}

/// `group` of `h` over its partitions, consumed by `live_workers`.
pub fn group_summary(h: &StreamHealth, group: &str, live_workers: Vec<String>) -> GroupSummary {
    let mut s = GroupSummary {
        group: group.to_string(),
        live_workers,
        pending: 0,
        lag: 0,
        lag_known: true,
        missing_on: Vec::new(),
    };
    for p in &h.partitions {
        let Some(g) = p.groups.iter().find(|g| g.group == group) else { continue };
        if !g.exists {
            s.missing_on.push(p.partition);
        }
        s.pending += g.pending;
        match known_lag(p, g) {
            Some(l) => s.lag += l,
            None => s.lag_known = false,
        }
    }
    s
}

/// Something wrong with a stream.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Issue {
    pub stream: String,
    /// `critical` or `warning`.
    pub severity: &'static str,
    /// `missing_partition`, `missing_group` (critical); `dead_letters`, `lag`, `no_workers`
    /// (warning).
    pub code: &'static str,
    pub message: String,
}

/// What is wrong with stream `h` whose groups are `groups`:
/// - `missing_partition`, `missing_group` (critical): `streams init` was not run or a key was
///   deleted; consumers of that partition cannot work;
/// - `dead_letters` (warning): the DLQ holds messages;
/// - `lag` (warning): a group has more than [`LAG_DEGRADED`] entries not yet delivered;
/// - `no_workers` (warning): a group has entries waiting (lag or pending) and no live fleet
///   member consumes it.
pub fn issues_of(h: &StreamHealth, groups: &[GroupSummary]) -> Vec<Issue> {
    let mut out = Vec::new();
    let issue = |severity, code, message: String| Issue { stream: h.stream.clone(), severity, code, message };
    let missing: Vec<u32> = h.partitions.iter().filter(|p| !p.exists).map(|p| p.partition).collect();
    if !missing.is_empty() {
        out.push(issue(
            "critical",
            "missing_partition",
            format!("partitions {missing:?} do not exist (run `tradeflow streams init`)"),
        ));
    }
    for g in groups {
        if !g.missing_on.is_empty() {
            out.push(issue(
                "critical",
                "missing_group",
                format!("group {} is missing on partitions {:?}", g.group, g.missing_on),
            ));
        }
        if g.lag > LAG_DEGRADED {
            out.push(issue(
                "warning",
                "lag",
                format!("group {} has {} entries not yet delivered (threshold {LAG_DEGRADED})", g.group, g.lag),
            ));
        }
        if g.live_workers.is_empty() && (g.lag > 0 || g.pending > 0 || !g.lag_known) {
            out.push(issue(
                "warning",
                "no_workers",
                format!("group {} has work waiting (lag {}, pending {}) and no live worker", g.group, g.lag, g.pending),
            ));
        }
    }
    if h.dlq_length > 0 {
        out.push(issue("warning", "dead_letters", format!("{} dead letter(s)", h.dlq_length)));
    }
    out
}

/// `unhealthy` with a critical issue, `degraded` with a warning, else `healthy`.
pub fn status_of(issues: &[Issue]) -> &'static str {
    if issues.iter().any(|i| i.severity == "critical") {
        "unhealthy"
    } else if issues.is_empty() {
        "healthy"
    } else {
        "degraded"
    }
}

/// A stream's health with its groups, issues and status.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    #[serde(flatten)]
    pub health: StreamHealth,
    /// `healthy`, `degraded` or `unhealthy` (see [`issues_of`]).
    pub status: &'static str,
    pub issues: Vec<Issue>,
    pub group_summaries: Vec<GroupSummary>,
}

/// Assesses `stream`: its health, each group's live workers, lag and pending, its issues.
pub async fn assess(bus: &Bus, stream: &str) -> Result<Assessment, BusError> {
    let health = stream_health(bus, stream).await?;
    let spec = bus.topology().stream(stream)?;
    let mut groups = Vec::with_capacity(spec.groups.len());
    for group in &spec.groups {
        let live = crate::fleet::live_members(bus, stream, group).await?;
        groups.push(group_summary(&health, group, live));
    }
    let issues = issues_of(&health, &groups);
    Ok(Assessment { status: status_of(&issues), health, issues, group_summaries: groups })
}

/// [`assess`] for every stream of the topology.
pub async fn assess_all(bus: &Bus) -> Result<Vec<Assessment>, BusError> {
    let mut out = Vec::new();
    for name in bus.topology().streams.keys() {
        out.push(assess(bus, name).await?);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_delivered_the_last_entry_has_no_lag_whatever_redis_counts() {
        // The chaos run's partition: delivered up to the last entry, Redis still counting 320.
        assert_eq!(lag_of(Some(320), Some("1796660203325-0"), Some("1796660203325-0")), Some(0));
        assert_eq!(lag_of(None, Some("1796660203326-0"), Some("1796660203325-0")), Some(0));
        // Behind: Redis's figure, or unknown.
        assert_eq!(lag_of(Some(3), Some("1796660203320-0"), Some("1796660203325-0")), Some(3));
        assert_eq!(lag_of(None, Some("0-0"), Some("1796660203325-0")), None);
        assert_eq!(lag_of(Some(7), None, Some("5-0")), Some(7));
        // Nothing in the partition: nothing to deliver.
        assert_eq!(lag_of(Some(4), Some("0-0"), None), Some(0));
    }
}
