//! Deterministic message ids (DESIGN invariant 2).
//!
//! Every message id is derived from its cause, so a redelivered or replayed message carries the
//! same id and consumers can be idempotent on it:
//!
//! | message  | id                                   |
//! |----------|--------------------------------------|
//! | candle   | `source:symbol:interval:open_time_ms` |
//! | signal   | `<candle id>/<model>`                 |
//! | decision | `<candle id>/<profile>`               |
//! | order    | `<decision id>/<account>`             |
//! | fill     | `<order id>#<seq>`                    |

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::numfmt;

/// A deterministic message id. Plain text so that it reads well in logs, SQL and the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

/// Why a string cannot be a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("message id is empty")]
    Empty,
    #[error("message id is {len} bytes long, at most {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("message id contains a control or whitespace character at byte {at}")]
    BadChar { at: usize },
}

impl MessageId {
    /// Upper bound that keeps ids cheap to store as keys and in SQL indexes.
    pub const MAX_LEN: usize = 512;

    /// Wraps an id after checking it is non-empty, bounded and printable.
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { len: id.len(), max: Self::MAX_LEN });
        }
        if let Some((at, _)) = id.char_indices().find(|(_, c)| c.is_control() || c.is_whitespace()) {
            return Err(IdError::BadChar { at });
        }
        Ok(Self(id))
    }

    /// Id of a candle: source, symbol, interval and bar open time.
    pub fn candle(source: &str, symbol: &str, interval: &str, open_time_ms: i64) -> Self {
        // Built in one allocation of the right size: every candle and signal makes one, and
        // `format!` spent more growing its string than writing it.
        let len = source.len() + symbol.len() + interval.len() + 3 + numfmt::i64_len(open_time_ms);
        let mut s = String::with_capacity(len);
        for part in [source, ":", symbol, ":", interval, ":"] {
            s.push_str(part);
        }
        numfmt::push_i64(&mut s, open_time_ms);
        Self(s)
    }

    /// Id made of `:`-joined parts.
    pub fn from_parts(parts: &[&str]) -> Self {
        Self(parts.join(":"))
    }

    /// Id of something caused by `self` and named by `part` (signal, decision, order).
    pub fn child(&self, part: &str) -> Self {
        Self::child_of(&self.0, part)
    }

    /// [`MessageId::child`] of the id `parent` given as text, in one allocation.
    pub fn child_of(parent: &str, part: &str) -> Self {
        let mut s = String::with_capacity(parent.len() + 1 + part.len());
        s.push_str(parent);
        s.push('/');
        s.push_str(part);
        Self(s)
    }

    /// Id of the `seq`-th fill of an order.
    pub fn fill(order: &MessageId, seq: u32) -> Self {
        let mut s = String::with_capacity(order.0.len() + 11);
        s.push_str(&order.0);
        s.push('#');
        numfmt::push_u64(&mut s, u64::from(seq));
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_their_cause() {
        let candle = MessageId::candle("binance", "BTCUSDT", "1h", 1_500_000_000_000);
        assert_eq!(candle.as_str(), "binance:BTCUSDT:1h:1500000000000");
        let signal = candle.child("rsi");
        assert_eq!(signal.as_str(), "binance:BTCUSDT:1h:1500000000000/rsi");
        let order = candle.child("momentum").child("acct-1");
        assert_eq!(MessageId::fill(&order, 2).as_str(), "binance:BTCUSDT:1h:1500000000000/momentum/acct-1#2");
    }

    #[test]
    fn bad_ids_are_refused_with_the_reason() {
        assert_eq!(MessageId::new(""), Err(IdError::Empty));
        assert_eq!(MessageId::new("a b"), Err(IdError::BadChar { at: 1 }));
        assert_eq!(MessageId::new("x".repeat(600)), Err(IdError::TooLong { len: 600, max: 512 }));
        assert!(MessageId::new("ok:id/1").is_ok());
    }
}
