//! [`HyperliquidError`]: what went wrong talking to Hyperliquid.
//!
//! Hyperliquid answers a refused action with HTTP 200 and `{"status": "err", "response":
//! "<message>"}`, and an order it refuses inside an accepted action with `{"error": "<message>"}`
//! in its `statuses`. No error carries the private key or a signature.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HyperliquidError {
    /// The configuration is unusable; one message per problem, each naming its field.
    #[error("invalid Hyperliquid configuration: {}", .0.join("; "))]
    Config(Vec<String>),

    /// The key's environment variable is unset or empty (its name, never its value).
    #[error("environment variable {var} is not set (or empty): set it to the Hyperliquid signing key (hex)")]
    MissingKey { var: String },

    /// The signing key does not parse (never shows it).
    #[error("the Hyperliquid signing key is invalid: {0}")]
    InvalidKey(String),

    /// Encoding or signing an action failed.
    #[error("cannot sign the action: {0}")]
    Signing(String),

    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),

    /// The request was refused locally, before anything was sent.
    #[error("invalid request, not sent: {0}")]
    InvalidRequest(String),

    /// A coin Hyperliquid's perpetuals `meta` does not list.
    #[error("unknown coin {coin:?}: not among Hyperliquid's perpetuals (see /info meta)")]
    UnknownCoin { coin: String },

    /// Hyperliquid refused the action or the order (its message).
    #[error("Hyperliquid refused it: {0}")]
    Refused(String),

    /// No answer within the timeout.
    #[error("no answer within {after:?}")]
    Timeout { after: Duration },

    /// The connection failed (the URL is never included).
    #[error("transport: {0}")]
    Transport(String),

    /// HTTP 429: too many requests by weight for this address or IP.
    #[error("rate limited (HTTP 429)")]
    RateLimited,

    /// An HTTP status other than 200.
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },

    /// An answer that does not have the documented shape.
    #[error("unexpected answer at {field}: {reason}")]
    Decode { field: String, reason: String },

    /// Every retry failed; `outcome_unknown` of the last one tells whether an action may have
    /// gone through.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: Box<HyperliquidError> },
}

impl HyperliquidError {
    /// Whether a sent action may have been applied although no answer said so (a timeout, a
    /// dropped connection, a 5xx).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport(_) => true,
            Self::Http { status, .. } => *status >= 500,
            Self::RetriesExhausted { last, .. } => last.outcome_unknown(),
            _ => false,
        }
    }

    /// Worth another attempt later (the same client order id is reused).
    pub fn transient(&self) -> bool {
        self.outcome_unknown()
            || matches!(self, Self::RateLimited)
            || matches!(self, Self::RetriesExhausted { last, .. } if last.transient())
    }

    pub(crate) fn decode(field: &str, reason: impl Into<String>) -> Self {
        Self::Decode { field: field.into(), reason: reason.into() }
    }
}
