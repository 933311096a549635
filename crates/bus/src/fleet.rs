//! Fleet membership and partition leases.
//!
//! Every process consuming a (stream, group) is a member. Each heartbeat, one Lua script
//! renews the member's entry in a sorted set (score = expiry in Redis server time, so clocks of
//! the machines do not matter), drops expired members, renews the leases this member holds and
//! returns the live members. Partition `p` is assigned to the member at index `p mod n` of the
//! sorted member names: a fair share that every member computes alike. A member only works a
//! partition while it holds the partition's lease (`SET NX PX`), so at most one member consumes
//! it at a time; a member killed with SIGKILL stops renewing and its leases and membership
//! expire after `lease_ttl`, after which the survivors acquire them.

use redis::Value;

use crate::connection::Bus;
use crate::error::{BusError, RedisContext};
use crate::reply;

const HEARTBEAT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 10)
local held = {}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ttl)
    held[#held + 1] = 1
  else
    held[#held + 1] = 0
  end
end
return {redis.call('ZRANGE', KEYS[1], 0, -1), held}
"#;

const ACQUIRE_LUA: &str = r#"
local got = {}
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    got[#got + 1] = 1
  elseif cur then
    got[#got + 1] = 0
  else
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    got[#got + 1] = 1
  end
end
return got
"#;

const RELEASE_LUA: &str = r#"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"#;

/// KEYS: a fleet's member set. Returns the members whose expiry (score) is after Redis's own
/// clock. Read-only.
const LIVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now), '+inf')
"#;

/// The live members of the fleet consuming `stream` with `group`: those whose heartbeat has
/// not expired by Redis server time (a member killed without leaving stays listed in the set
/// until a survivor's heartbeat drops it, but is not live once its expiry has passed).
/// Sorted by name. Read-only: it never changes the set.
pub async fn live_members(bus: &Bus, stream: &str, group: &str) -> Result<Vec<String>, BusError> {
    bus.stream_group(stream, group)?;
    let v: Value =
        eval(LIVE_LUA, &[bus.keys().members(stream, group)]).query_async(&mut bus.conn()).await.op("fleet members")?;
    let mut members = reply::as_array("fleet members", &v)?
        .iter()
        .map(|m| reply::as_string("fleet members", m))
        .collect::<Result<Vec<_>, _>>()?;
    members.sort();
    Ok(members)
}

/// The partitions `member` should own among `members` (any order; sorted here).
pub fn assignment(members: &[String], member: &str, partitions: u32) -> Vec<u32> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    sorted.dedup();
    let Some(me) = sorted.iter().position(|m| *m == member) else {
        return Vec::new();
    };
    let n = sorted.len() as u32;
    (0..partitions).filter(|p| p % n == me as u32).collect()
}

/// One member's view of its fleet.
pub(crate) struct Fleet {
    bus: Bus,
    stream: String,
    group: String,
    pub(crate) member: String,
    ttl_ms: u64,
}

fn eval(lua: &str, keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(lua).arg(keys.len());
    for k in keys {
        cmd.arg(k);
    }
    cmd
}

impl Fleet {
    pub(crate) fn new(bus: Bus, stream: &str, group: &str, member: &str) -> Self {
        let ttl_ms = bus.topology().fleet.lease_ttl.as_millis() as u64;
        Self { bus, stream: stream.into(), group: group.into(), member: member.into(), ttl_ms }
    }

    fn lease_keys(&self, partitions: &[u32]) -> Vec<String> {
        partitions.iter().map(|p| self.bus.keys().lease(&self.stream, &self.group, *p)).collect()
    }

    /// Renews membership and the leases of `held`; returns the live members and, for each
    /// partition of `held`, whether the lease is still ours.
    pub(crate) async fn heartbeat(&self, held: &[u32]) -> Result<(Vec<String>, Vec<bool>), BusError> {
        let mut keys = vec![self.bus.keys().members(&self.stream, &self.group)];
        keys.extend(self.lease_keys(held));
        let mut cmd = eval(HEARTBEAT_LUA, &keys);
        cmd.arg(&self.member).arg(self.ttl_ms);
        let v: Value = cmd.query_async(&mut self.bus.conn()).await.op("fleet heartbeat")?;
        let parts = reply::as_array("fleet heartbeat", &v)?;
        let (Some(members), Some(flags)) = (parts.first(), parts.get(1)) else {
            return Err(BusError::Reply { op: "fleet heartbeat", reason: "expected [members, held]".into() });
        };
        let members = reply::as_array("fleet heartbeat", members)?
            .iter()
            .map(|m| reply::as_string("fleet heartbeat", m))
            .collect::<Result<Vec<_>, _>>()?;
        let flags = reply::as_array("fleet heartbeat", flags)?
            .iter()
            .map(|f| reply::as_int("fleet heartbeat", f).map(|i| i == 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((members, flags))
    }

    /// Tries to take the leases of `wanted`; returns those now held.
    pub(crate) async fn acquire(&self, wanted: &[u32]) -> Result<Vec<u32>, BusError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = eval(ACQUIRE_LUA, &self.lease_keys(wanted));
        cmd.arg(&self.member).arg(self.ttl_ms);
        let got: Vec<i64> = cmd.query_async(&mut self.bus.conn()).await.op("acquire leases")?;
        Ok(wanted.iter().zip(got).filter(|(_, g)| *g == 1).map(|(p, _)| *p).collect())
    }

    /// Gives up the leases of `partitions` that are still ours.
    pub(crate) async fn release(&self, partitions: &[u32]) -> Result<(), BusError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut cmd = eval(RELEASE_LUA, &self.lease_keys(partitions));
        cmd.arg(&self.member);
        let _: i64 = cmd.query_async(&mut self.bus.conn()).await.op("release leases")?;
        Ok(())
    }

    /// Leaves the fleet so the others rebalance at once instead of after the TTL.
    pub(crate) async fn leave(&self) -> Result<(), BusError> {
        let _: i64 = redis::cmd("ZREM")
            .arg(self.bus.keys().members(&self.stream, &self.group))
            .arg(&self.member)
            .query_async(&mut self.bus.conn())
            .await
            .op("leave fleet")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_a_fair_disjoint_cover() {
        let members: Vec<String> = ["c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let all: Vec<Vec<u32>> = members.iter().map(|m| assignment(&members, m, 8)).collect();
        let mut covered: Vec<u32> = all.concat();
        covered.sort();
        assert_eq!(covered, (0..8).collect::<Vec<_>>());
        for a in &all {
            assert!(a.len() == 2 || a.len() == 3);
        }
        assert_eq!(assignment(&members, "a", 8), vec![0, 3, 6]);
        assert!(assignment(&members, "zz", 8).is_empty());
    }
}
