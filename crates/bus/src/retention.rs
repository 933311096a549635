//! Trimming what every consumer group has acknowledged.
//!
//! `MAXLEN` alone keeps up to `maxlen` entries per partition whether or not anyone still needs
//! them, and an entry can pack up to `pack_max` messages: at the defaults a busy partition could
//! grow to tens of gigabytes before its first trim, and a fresh deployment pays Redis a page
//! fault for every byte it ever stores (a profile of `bench pipeline`, 2026-12-04, found more
//! than half of redis-server's CPU in the kernel zeroing new pages for stream data). With
//! `trim_acked` (streams.toml, default on) the consumers trim each partition up to the oldest
//! entry some group still needs, so it holds its backlog; `MAXLEN` stays as the hard cap.
//!
//! An entry is kept for `trim_grace_ms` (default 10 s) whatever happens, for readers without
//! a group: the edge's live feed reads with plain XREAD and must not lose what it has not read
//! yet. After that it is kept while any group may still need it: unread by a group (after its
//! last-delivered id) or pending in it (delivered, not acknowledged: retries, parked backoffs,
//! packs not fully handled, entries of a dead consumer awaiting a claim). Groups Redis has that
//! the topology does not list count too. Nothing is trimmed while a group the topology lists
//! does not exist yet on the partition: it is created at id 0 and will read from the start.
//! The decision and the XTRIM run in one script, so no group can move in between.

use std::fmt;

use crate::Bus;
use crate::error::{BusError, RedisContext};

/// Most entries one pass removes: freeing them holds the single-threaded Redis, and a
/// partition may have a long backlog to release at once (its slowest group caught up). A
/// pass that removes this many is followed by another at once.
pub const TRIM_LIMIT: u64 = 1000;

/// KEYS: a partition. ARGV: the most entries to remove, the grace in milliseconds, then the
/// groups the topology lists for its stream. Returns the number of entries trimmed, or -1 when
/// one of those groups does not exist on the partition.
///
/// Each group keeps everything from its oldest pending entry (XPENDING summary), or else from
/// its last-delivered id, on; the partition is trimmed (MINID ~, whole nodes only) below the
/// oldest of those. Ids are compared as two decimal integers without a float conversion.
const TRIM_LUA: &str = r#"
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  local c = cmp(am, bm)
  if c ~= 0 then return c < 0 end
  return cmp(as, bs) < 0
end
local seen = {}
local keep = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, pending, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1]
    elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  seen[name] = true
  local from = last
  if pending > 0 then from = redis.call('XPENDING', KEYS[1], name)[2] end
  if keep == nil or older(from, keep) then keep = from end
end
for i = 3, #ARGV do
  if not seen[ARGV[i]] then return -1 end
end
if keep == nil or keep == '0-0' then return 0 end
-- Entry ids are Redis's clock in ms: keep the last ARGV[2] ms whatever was acknowledged.
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(ARGV[2])
if ms <= 0 then return 0 end
local young = string.format('%.0f', ms) .. '-0'
if older(young, keep) then keep = young end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', keep, 'LIMIT', ARGV[1])
"#;

/// What one trim pass did to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trimmed {
    /// Entries removed (0 when every group still needs the oldest node).
    Entries(u64),
    /// Nothing: a group the topology lists does not exist on the partition yet.
    GroupMissing,
}

impl fmt::Display for Trimmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trimmed::Entries(n) => write!(f, "{n} entries trimmed"),
            Trimmed::GroupMissing => f.write_str("not trimmed: a configured group does not exist yet"),
        }
    }
}

/// Trims partition `partition` of `stream` below the oldest entry any group still needs, at
/// most [`TRIM_LIMIT`] entries, in one atomic script. Runs whatever the stream's `trim_acked`
/// says (the consumers check it).
pub async fn trim_acked(bus: &Bus, stream: &str, partition: u32) -> Result<Trimmed, BusError> {
    let spec = bus.topology().stream(stream)?;
    let mut cmd = redis::cmd("EVAL");
    // Plain EVAL: a second's worth of trims costs one short script per partition, and EVAL
    // cannot fail with NOSCRIPT after a Redis restart emptied the script cache.
    cmd.arg(TRIM_LUA)
        .arg(1)
        .arg(bus.keys().partition(stream, partition))
        .arg(TRIM_LIMIT)
        .arg(spec.trim_grace.as_millis() as u64);
    for g in &spec.groups {
        cmd.arg(g);
    }
    let mut conn = bus.conn();
    let n: i64 = cmd.query_async(&mut conn).await.op("trim acknowledged entries")?;
    Ok(if n < 0 { Trimmed::GroupMissing } else { Trimmed::Entries(n as u64) })
}
