//! Redis key names and the partition function. Everything that names a key lives here.

use crate::topology::{StreamSpec, Topology};

/// Partition of `key` among `partitions`: FNV-1a 64-bit of the key's UTF-8 bytes, modulo the
/// partition count.
///
/// This is a wire contract: every process and every version must agree on it, or one key's
/// messages would be split across partitions and lose their order. FNV-1a is fixed by its
/// published constants (offset basis 0xcbf29ce484222325, prime 0x100000001b3), so it cannot
/// drift with a library upgrade the way `std`'s `DefaultHasher` may. Never change it.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (fnv1a64(key.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Key names of one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    pub fn new(topology: &Topology) -> Self {
        Self { ns: topology.namespace.clone() }
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Partition `p` of a stream: `tf:{md.candles:3}`. The braces are the cluster hash tag
    /// shared with the partition's DLQ and checkpoints.
    pub fn partition(&self, stream: &str, p: u32) -> String {
        format!("{}:{{{stream}:{p}}}", self.ns)
    }

    /// Dead-letter stream beside partition `p`.
    pub fn dlq(&self, stream: &str, p: u32) -> String {
        format!("{}:{{{stream}:{p}}}:dlq", self.ns)
    }

    /// Checkpoint (state snapshot + last acked id) of `group` on partition `p`.
    pub fn checkpoint(&self, stream: &str, p: u32, group: &str) -> String {
        format!("{}:{{{stream}:{p}}}:ckpt:{group}", self.ns)
    }

    /// Sorted set of live fleet members of `group` on `stream` (score = expiry, server ms).
    pub fn members(&self, stream: &str, group: &str) -> String {
        format!("{}:{{fleet:{stream}:{group}}}:members", self.ns)
    }

    /// Lease of partition `p` for `group`; same hash tag as the member set so one script can
    /// renew a member's leases and heartbeat in one round trip.
    pub fn lease(&self, stream: &str, group: &str, p: u32) -> String {
        format!("{}:{{fleet:{stream}:{group}}}:lease:{p}", self.ns)
    }

    /// All partition keys of a stream, in partition order.
    pub fn partitions(&self, spec: &StreamSpec) -> Vec<String> {
        (0..spec.partitions).map(|p| self.partition(&spec.name, p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published FNV-1a 64 test vectors, plus pinned partitions: if this test changes, the wire
    /// contract broke.
    #[test]
    fn partition_hash_is_stable() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        // Computed independently (Python reference implementation of FNV-1a 64).
        let pinned: Vec<u32> = ["BTCUSDT", "ETHUSDT", "acct-1", ""].iter().map(|k| partition_of(k, 8)).collect();
        assert_eq!(pinned, vec![4, 0, 4, 5]);
    }

    #[test]
    fn keys_share_the_partition_hash_tag() {
        let t =
            crate::topology::Topology::parse("[streams.\"x\"]\ndescription=\"d\"\nkey=\"k\"\ngroups=[\"g\"]\n", "t")
                .unwrap();
        let k = Keys::new(&t);
        assert_eq!(k.partition("md.candles", 3), "tf:{md.candles:3}");
        assert_eq!(k.dlq("md.candles", 3), "tf:{md.candles:3}:dlq");
        assert_eq!(k.checkpoint("md.candles", 3, "inference"), "tf:{md.candles:3}:ckpt:inference");
        assert_eq!(k.lease("md.candles", "inference", 2), "tf:{fleet:md.candles:inference}:lease:2");
    }
}
