//! The bus's error type.

use crate::envelope::EncodeError;

/// What went wrong in the bus layer.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis {op} failed: {source}")]
    Redis {
        op: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("unexpected reply to {op}: {reason}")]
    Reply { op: &'static str, reason: String },
    #[error("no stream named {name:?} in the topology (known: {known})")]
    UnknownStream { name: String, known: String },
    #[error("stream {stream:?} has no consumer group {group:?} (its groups: {known})")]
    UnknownGroup { stream: String, group: String, known: String },
    #[error("stream {stream:?} has {partitions} partition(s); partition {partition} does not exist")]
    NoSuchPartition { stream: String, partition: u32, partitions: u32 },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("invalid message id: {0}")]
    Id(#[from] tradeflow_core::ids::IdError),
    #[error("dead letter {id} not found in {stream}")]
    DeadLetterNotFound { stream: String, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "stopped while waiting for room on {stream} partition {partition} (backlog {backlog}, high_water {high_water})"
    )]
    Backpressure { stream: String, partition: u32, backlog: u64, high_water: u64 },
}

impl BusError {
    /// Whether Redis is away for now: the connection refused, dropped or timed out, the
    /// server loading its data after a restart (`LOADING`) or between masters (`TRYAGAIN`,
    /// `MASTERDOWN`, `CLUSTERDOWN`, `NOREPLICAS`), or out of memory ([`is_oom`]). The same operation may
    /// succeed once it is back; anything else (a bad reply, an unknown stream, a script error)
    /// would fail again and is not this.
    pub fn is_transient(&self) -> bool {
        let BusError::Redis { source, .. } = self else { return false };
        is_oom(source)
            || source.is_io_error()
            || source.is_connection_dropped()
            || source.is_connection_refusal()
            || source.is_timeout()
            || matches!(
                source.kind(),
                redis::ErrorKind::Server(
                    redis::ServerErrorKind::BusyLoading
                        | redis::ServerErrorKind::TryAgain
                        | redis::ServerErrorKind::MasterDown
                        | redis::ServerErrorKind::ClusterDown
                )
            )
            // A cluster client that lost every connection to a slot's node (its master died,
            // the replica not yet promoted), or a master refusing writes for want of replicas
            // (`min-replicas-to-write`).
            || matches!(source.kind(), redis::ErrorKind::ClusterConnectionNotFound)
            || source.code() == Some("NOREPLICAS")
    }
}

/// Whether Redis refused a write for want of memory (`maxmemory` reached under
/// `noeviction`, or nothing left to evict): `OOM command not allowed when used memory >
/// 'maxmemory'` on the command itself, or, inside MULTI, on a queued command (redis-rs reports
/// the transaction as aborted, `EXECABORT`, with the queued errors) or on EXEC (`EXECABORT
/// Transaction discarded because of: OOM ...`). Nothing of the transaction was applied, so a
/// retry once consumers have drained (and trimmed) the streams, or an operator has raised
/// `maxmemory`, appends it once.
pub fn is_oom(e: &redis::RedisError) -> bool {
    let oom = |code: &str, detail: Option<&str>| {
        code == "OOM" || (code == "EXECABORT" && detail.is_some_and(|d| d.contains("OOM")))
    };
    oom(e.code().unwrap_or(""), e.detail())
        || e.clone().into_server_errors().is_some_and(|errs| errs.iter().any(|(_, s)| oom(s.code(), s.details())))
}

/// Attaches the Redis operation name to a Redis error.
pub(crate) trait RedisContext<T> {
    fn op(self, op: &'static str) -> Result<T, BusError>;
}

impl<T> RedisContext<T> for Result<T, redis::RedisError> {
    fn op(self, op: &'static str) -> Result<T, BusError> {
        self.map_err(|source| BusError::Redis { op, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str, detail: &str) -> redis::RedisError {
        redis::make_extension_error(code.into(), Some(detail.into()))
    }

    #[test]
    fn oom_refusals_are_transient() {
        let redis = |source| BusError::Redis { op: "XADD", source };
        let oom = server_error("OOM", "command not allowed when used memory > 'maxmemory'.");
        assert!(is_oom(&oom));
        assert!(redis(oom).is_transient());
        // EXEC refused as a whole for it.
        let exec = server_error(
            "EXECABORT",
            "Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.",
        );
        assert!(is_oom(&exec));
        // Discarded for another reason: not a matter of waiting.
        assert!(!is_oom(&server_error("EXECABORT", "Transaction discarded because of previous errors.")));
        let other = server_error("WRONGTYPE", "Operation against a key holding the wrong kind of value");
        assert!(!is_oom(&other));
        assert!(!redis(other).is_transient());
        assert!(!BusError::Invalid("OOM".into()).is_transient());
    }
}
