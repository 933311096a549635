//! Checkpoints of stateful stages: a state snapshot stored atomically with the XACK of the
//! messages it reflects.
//!
//! The snapshot and the ack go in one MULTI on keys that share the partition's hash tag, so the
//! stored state always reflects exactly the acknowledged messages: a new owner restores it and
//! the still-pending messages are redelivered to it, each applied once.

use redis::Value;
use serde::{Deserialize, Serialize};

use crate::connection::Bus;
use crate::error::{BusError, RedisContext};

/// What is stored under a checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The highest entry id acknowledged together with this state.
    pub last_id: String,
    /// Epoch ms when it was written.
    pub at: i64,
    /// The stage's own snapshot (opaque to the bus).
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

impl Checkpoint {
    pub fn encode(&self) -> Result<Vec<u8>, BusError> {
        rmp_serde::to_vec_named(self).map_err(|e| BusError::Invalid(format!("cannot encode checkpoint: {e}")))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BusError> {
        rmp_serde::from_slice(bytes).map_err(|e| BusError::Invalid(format!("checkpoint does not decode: {e}")))
    }

    /// Loads the checkpoint of `group` on partition `p` of `stream`, if any.
    pub async fn load(bus: &Bus, stream: &str, p: u32, group: &str) -> Result<Option<Self>, BusError> {
        let mut conn = bus.conn();
        let v: Value = redis::cmd("GET")
            .arg(bus.keys().checkpoint(stream, p, group))
            .query_async(&mut conn)
            .await
            .op("GET checkpoint")?;
        match v {
            Value::Nil => Ok(None),
            Value::BulkString(b) => Self::decode(&b).map(Some),
            other => Err(BusError::Reply { op: "GET checkpoint", reason: format!("unexpected {other:?}") }),
        }
    }
}
