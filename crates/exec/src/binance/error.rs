//! [`FuturesError`]: what went wrong talking to Binance USDⓈ-M futures, with Binance's error codes
//! mapped to typed reasons.
//!
//! Binance answers a refused request with `{"code": -2019, "msg": "Margin is insufficient."}`
//! (HTTP 4xx, sometimes 5xx). No error ever carries the API key, the secret, the signature or a
//! request URL (whose query holds the signature): only a method and path, Binance's code and
//! message, or a description of a transport failure with the URL stripped.

use std::time::Duration;

use serde_json::Value;

/// Longest piece of a foreign body or value quoted in an error.
const CLIP: usize = 200;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FuturesError {
    /// The configuration is unusable; one message per problem, each naming its field.
    #[error("invalid Binance futures configuration: {}", .0.join("; "))]
    Config(Vec<String>),

    /// A credential's environment variable is unset or empty (its name, never its value).
    #[error("environment variable {var} is not set (or empty): set it to the Binance futures {what}")]
    MissingCredential { var: String, what: &'static str },

    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),

    /// The request was refused locally, before anything was sent.
    #[error("invalid request, not sent: {0}")]
    InvalidRequest(String),

    /// -1021.
    #[error(
        "Binance refused the timestamp (-1021: {msg}): the local clock differs from Binance's by more than \
         recvWindow; synchronise the clock (NTP) or raise recv_window_ms"
    )]
    ClockSkew { msg: String },

    /// -1022.
    #[error("Binance says the signature is invalid (-1022: {msg}): check that the API secret belongs to the API key")]
    InvalidSignature { msg: String },

    /// -2014 (API key format invalid), -2015 (invalid key, IP or permissions).
    #[error(
        "Binance refused the API key ({code}: {msg}): check the key, that it has USDⓈ-M futures trading enabled \
         and that this IP is whitelisted for it"
    )]
    InvalidApiKey { code: i64, msg: String },

    /// -2019.
    #[error("margin is insufficient (-2019: {msg}): reduce the quantity or the leverage, or add margin")]
    MarginInsufficient { msg: String },

    /// -4003.
    #[error("invalid quantity (-4003: {msg}): the quantity must be greater than zero")]
    InvalidQuantity { msg: String },

    /// -1111.
    #[error("too many decimals (-1111: {msg}): round quantity and price to the symbol's stepSize and tickSize")]
    Precision { msg: String },

    /// -4164.
    #[error(
        "order notional too small (-4164: {msg}): quantity × price must reach the symbol's MIN_NOTIONAL \
         (reduce-only orders are exempt)"
    )]
    MinNotional { msg: String },

    /// -2022.
    #[error("reduce-only order rejected (-2022: {msg}): there is no position it would reduce, or it would flip it")]
    ReduceOnlyRejected { msg: String },

    /// -1121.
    #[error("invalid symbol (-1121: {msg}): not a USDⓈ-M futures symbol (e.g. BTCUSDT)")]
    InvalidSymbol { msg: String },

    /// -4028.
    #[error("leverage not valid (-4028: {msg}): use 1 up to the symbol's maximum bracket leverage")]
    InvalidLeverage { msg: String },

    /// -2013.
    #[error("order does not exist (-2013: {msg})")]
    OrderNotFound { msg: String },

    /// -4116 (or -2010 "Duplicate order sent."): an open order already has this client order id.
    #[error("duplicate client order id ({code}: {msg}): an open order already uses it")]
    DuplicateClientOrderId { code: i64, msg: String },

    /// -4120 (`STOP_ORDER_SWITCH_ALGO`): a conditional type sent to `POST /fapi/v1/order`.
    #[error(
        "conditional order sent to the plain order endpoint (-4120: {msg}): since 2025-12-09 Binance takes \
         STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT and TRAILING_STOP_MARKET only through the Algo Order \
         API (POST /fapi/v1/algoOrder)"
    )]
    ConditionalNeedsAlgoApi { msg: String },

    /// HTTP 429 (request rate or weight limit) or 418 (IP banned after ignoring 429s).
    #[error("rate limited by Binance (HTTP {status}{}): {msg}", retry_after_text(*.retry_after))]
    RateLimited { status: u16, retry_after: Option<Duration>, msg: String },

    /// Any other Binance error code.
    #[error("Binance refused the request (HTTP {status}, code {code}): {msg}")]
    Api { status: u16, code: i64, msg: String },

    /// A non-2xx answer without Binance's `{"code","msg"}` body.
    #[error("HTTP {status} from Binance: {body}")]
    Http { status: u16, body: String },

    /// No (complete) answer in time: the request may or may not have been executed.
    #[error("no answer from Binance within {after:?}: the request may or may not have been executed")]
    Timeout { after: Duration },

    /// Connection refused or reset, DNS, TLS…: the request may or may not have been executed.
    #[error("connection to Binance failed: {0}")]
    Transport(String),

    /// A 2xx answer that could not be read; `field` names the JSON field (or `body`).
    #[error("cannot read Binance's answer: field `{field}`: {reason}")]
    Decode { field: String, reason: String },

    /// Every attempt failed with a retryable error (5xx, timeout, connection, 429/418).
    #[error("gave up after {attempts} attempts; the last failure: {last}")]
    RetriesExhausted { attempts: u32, last: Box<FuturesError> },
}

fn retry_after_text(d: Option<Duration>) -> String {
    d.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default()
}

impl FuturesError {
    /// The error for Binance error `code` with message `msg`, received with HTTP `status`.
    pub fn from_code(status: u16, code: i64, msg: &str) -> Self {
        let msg = clip(msg);
        match code {
            -1021 => Self::ClockSkew { msg },
            -1022 => Self::InvalidSignature { msg },
            -2014 | -2015 => Self::InvalidApiKey { code, msg },
            -2019 => Self::MarginInsufficient { msg },
            -4003 => Self::InvalidQuantity { msg },
            -1111 => Self::Precision { msg },
            -4164 => Self::MinNotional { msg },
            -2022 => Self::ReduceOnlyRejected { msg },
            -1121 => Self::InvalidSymbol { msg },
            -4028 => Self::InvalidLeverage { msg },
            -2013 => Self::OrderNotFound { msg },
            -4116 => Self::DuplicateClientOrderId { code, msg },
            -4120 => Self::ConditionalNeedsAlgoApi { msg },
            // -2010 is "NEW_ORDER_REJECTED" in general; only its duplicate flavour is one.
            -2010 if msg.to_ascii_lowercase().contains("duplicate") => Self::DuplicateClientOrderId { code, msg },
            _ if status == 429 || status == 418 => Self::RateLimited { status, retry_after: None, msg },
            _ => Self::Api { status, code, msg },
        }
    }

    /// The error for a non-2xx answer: typed by Binance's code when the body is
    /// `{"code":..,"msg":..}`, else [`FuturesError::Http`] (or `RateLimited` for 429/418).
    pub fn from_response(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let parsed = serde_json::from_str::<Value>(body).ok().and_then(|v| {
            let code = v.get("code")?.as_i64()?;
            let msg = v.get("msg")?.as_str()?.to_string();
            Some((code, msg))
        });
        let error = match parsed {
            Some((code, msg)) => Self::from_code(status, code, &msg),
            None if status == 429 || status == 418 => Self::RateLimited { status, retry_after: None, msg: clip(body) },
            None => Self::Http { status, body: clip(body) },
        };
        match error {
            Self::RateLimited { status, msg, .. } => Self::RateLimited { status, retry_after, msg },
            other => other,
        }
    }

    /// Binance's error code, when the error is one.
    pub fn code(&self) -> Option<i64> {
        Some(match self {
            Self::ClockSkew { .. } => -1021,
            Self::InvalidSignature { .. } => -1022,
            Self::InvalidApiKey { code, .. } | Self::DuplicateClientOrderId { code, .. } | Self::Api { code, .. } => {
                *code
            }
            Self::MarginInsufficient { .. } => -2019,
            Self::InvalidQuantity { .. } => -4003,
            Self::Precision { .. } => -1111,
            Self::MinNotional { .. } => -4164,
            Self::ReduceOnlyRejected { .. } => -2022,
            Self::InvalidSymbol { .. } => -1121,
            Self::InvalidLeverage { .. } => -4028,
            Self::OrderNotFound { .. } => -2013,
            Self::ConditionalNeedsAlgoApi { .. } => -4120,
            _ => return None,
        })
    }

    /// Whether the outcome of the request is unknown: it may have been executed (timeouts,
    /// connection failures, 5xx answers, and retries exhausted on those).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport(_) => true,
            Self::Http { status, .. } | Self::Api { status, .. } => *status >= 500 || *status == 408,
            Self::RetriesExhausted { last, .. } => last.outcome_unknown(),
            _ => false,
        }
    }
}

/// At most [`CLIP`] characters of `text`, marked when cut.
pub(crate) fn clip(text: &str) -> String {
    tradeflow_net::http::clip(text, CLIP)
}

pub(crate) use tradeflow_net::http::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: i64, msg: &str) -> String {
        serde_json::json!({ "code": code, "msg": msg }).to_string()
    }

    type Is = fn(&FuturesError) -> bool;

    #[test]
    fn codes_map_to_typed_reasons() {
        let cases: [(i64, Is); 14] = [
            (-1021, |e| matches!(e, FuturesError::ClockSkew { .. })),
            (-1022, |e| matches!(e, FuturesError::InvalidSignature { .. })),
            (-2014, |e| matches!(e, FuturesError::InvalidApiKey { code: -2014, .. })),
            (-2015, |e| matches!(e, FuturesError::InvalidApiKey { code: -2015, .. })),
            (-2019, |e| matches!(e, FuturesError::MarginInsufficient { .. })),
            (-4003, |e| matches!(e, FuturesError::InvalidQuantity { .. })),
            (-1111, |e| matches!(e, FuturesError::Precision { .. })),
            (-4164, |e| matches!(e, FuturesError::MinNotional { .. })),
            (-2022, |e| matches!(e, FuturesError::ReduceOnlyRejected { .. })),
            (-1121, |e| matches!(e, FuturesError::InvalidSymbol { .. })),
            (-4028, |e| matches!(e, FuturesError::InvalidLeverage { .. })),
            (-2013, |e| matches!(e, FuturesError::OrderNotFound { .. })),
            (-4116, |e| matches!(e, FuturesError::DuplicateClientOrderId { code: -4116, .. })),
            (-4120, |e| matches!(e, FuturesError::ConditionalNeedsAlgoApi { .. })),
        ];
        for (code, is) in cases {
            let e = FuturesError::from_response(400, &body(code, "m"), None);
            assert!(is(&e), "{code} gave {e:?}");
            assert_eq!(e.code(), Some(code));
            assert!(e.to_string().contains(&code.to_string()), "{e}");
        }
        let e = FuturesError::from_response(400, &body(-2010, "Duplicate order sent."), None);
        assert!(matches!(e, FuturesError::DuplicateClientOrderId { code: -2010, .. }));
        let e = FuturesError::from_response(400, &body(-2010, "Account has insufficient balance."), None);
        assert_eq!(e, FuturesError::Api { status: 400, code: -2010, msg: "Account has insufficient balance.".into() });
    }

    #[test]
    fn displays_say_what_to_do() {
        let e = FuturesError::from_response(400, &body(-2019, "Margin is insufficient."), None);
        assert_eq!(
            e.to_string(),
            "margin is insufficient (-2019: Margin is insufficient.): reduce the quantity or the leverage, or add margin"
        );
        let e = FuturesError::from_response(
            400,
            &body(-1021, "Timestamp for this request is outside of the recvWindow."),
            None,
        );
        assert!(e.to_string().contains("synchronise the clock"), "{e}");
        let e = FuturesError::from_response(
            400,
            &body(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
            ),
            None,
        );
        assert!(e.to_string().contains("only through the Algo Order API (POST /fapi/v1/algoOrder)"), "{e}");
        assert!(!e.outcome_unknown());
        let e = FuturesError::from_response(400, &body(-9999, "Something new."), None);
        assert_eq!(e.to_string(), "Binance refused the request (HTTP 400, code -9999): Something new.");
    }

    #[test]
    fn other_bodies_and_rate_limits() {
        let e = FuturesError::from_response(502, "<html>Bad gateway</html>", None);
        assert_eq!(e, FuturesError::Http { status: 502, body: "<html>Bad gateway</html>".into() });
        assert!(e.outcome_unknown());
        let e = FuturesError::from_response(429, &body(-1003, "Too many requests."), Some(Duration::from_secs(3)));
        assert_eq!(e.to_string(), "rate limited by Binance (HTTP 429, retry after 3 s): Too many requests.");
        assert!(!e.outcome_unknown());
        let e = FuturesError::from_response(418, "", None);
        assert!(matches!(e, FuturesError::RateLimited { status: 418, retry_after: None, .. }));
        let long = "x".repeat(1000);
        let FuturesError::Http { body, .. } = FuturesError::from_response(500, &long, None) else { panic!() };
        assert_eq!(body.chars().count(), CLIP + 1);
    }
}
