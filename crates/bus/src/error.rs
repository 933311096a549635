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

/// Attaches the Redis operation name to a Redis error.
pub(crate) trait RedisContext<T> {
    fn op(self, op: &'static str) -> Result<T, BusError>;
}

impl<T> RedisContext<T> for Result<T, redis::RedisError> {
    fn op(self, op: &'static str) -> Result<T, BusError> {
        self.map_err(|source| BusError::Redis { op, source })
    }
}
