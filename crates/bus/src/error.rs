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
}

impl BusError {
    /// Whether Redis is away for now: the connection refused, dropped or timed out, or the
    /// server loading its data after a restart (`LOADING`) or between masters (`TRYAGAIN`,
    /// `MASTERDOWN`, `CLUSTERDOWN`). The same operation may succeed once it is back; anything
    /// else (a bad reply, an unknown stream, a script error) would fail again and is not this.
    pub fn is_transient(&self) -> bool {
        let BusError::Redis { source, .. } = self else { return false };
        source.is_io_error()
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
    }
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
