//! The contract between a message type and the bus envelope.

use serde::{Serialize, de::DeserializeOwned};

/// A message body the bus can carry.
///
/// `KIND` is written into the envelope so a consumer knows what it holds before decoding it;
/// `VERSION` is the schema version of this Rust type. A consumer refuses an envelope whose
/// version it does not know (DESIGN invariant 5) rather than decoding it by luck.
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable type name, e.g. `candle`. Never reuse a name for a different shape.
    const KIND: &'static str;
    /// Schema version; bump it on any incompatible change.
    const VERSION: u16;
}
