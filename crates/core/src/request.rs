//! Manual orders: what an operator asks of one account, as a message the risk stage takes.
//!
//! An [`OrderRequest`] travels on risk's input stream `ens.decisions`, keyed by the profile
//! the account follows, like the decisions it is traded beside: the account's state lives in
//! the one risk partition that profile hashes to, and a request must be ordered with that
//! account's decisions in one sequence (the bus checkpoints and acknowledges a partition of one
//! stream at a time, so a second input stream could not share that state exactly once). Risk
//! validates it, sizes it with the account's own method unless it names a size, checks it like
//! any entry and answers on `risk.orders` with an order or a typed refusal whose
//! `decision_id` is the request's id.
//!
//! Ids: a request is `req:<account>:<client id>`; its order (or refusal) `<request id>/<account>`.
//! The client id is the caller's idempotency key: risk acts on one id once, however often the
//! request arrives, and the edges agree on it through Redis before sending.

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::order::{OrderType, Side};
use crate::payload::Payload;

/// Longest client id accepted (Binance's `newClientOrderId` allows 36).
pub const CLIENT_ID_MAX: usize = 36;

/// How big an order the request wants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum RequestSize {
    /// Sized by the account's sizing method, as a decision would be (entries only; an order
    /// against a position closes all of it).
    Account,
    /// Base-asset quantity.
    Quantity { quantity: f64 },
    /// Quote-currency notional at the reference price.
    Notional { notional: f64 },
    /// A fraction of the open position, in (0, 1] (1 closes it all); for orders against a
    /// position only: with none it is refused (`no_position`).
    Fraction { fraction: f64 },
}

/// A manual order for one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// `req:<account>:<client_id>`.
    pub id: String,
    /// The caller's idempotency key: letters, digits, `-` and `_`, 1 to 36 of them.
    pub client_id: String,
    pub account: String,
    pub symbol: String,
    pub side: Side,
    pub size: RequestSize,
    pub order_type: OrderType,
    /// Limit orders only.
    pub limit_price: Option<f64>,
    /// At most the account's configured leverage; none: the account's.
    pub leverage: Option<f64>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Only reduce (or close) a position: never opens one.
    pub reduce_only: bool,
    /// Who asked (user or API key name).
    pub requested_by: String,
    pub requested_at: i64,
}

impl Payload for OrderRequest {
    const KIND: &'static str = "order_request";
    const VERSION: u16 = 1;
}

/// A problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl OrderRequest {
    /// The request id of a client id for an account.
    pub fn id_for(account: &str, client_id: &str) -> String {
        format!("req:{account}:{client_id}")
    }

    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.id])
    }

    /// Id of the order (or refusal) risk answers with.
    pub fn order_id(&self) -> String {
        format!("{}/{}", self.id, self.account)
    }

    /// What is wrong with the request's shape, every problem at once (empty: well formed).
    /// Whether it can be traded is risk's business (a typed refusal), not this.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut p = Vec::new();
        let mut bad = |field, message: String| p.push(FieldError { field, message });
        if self.client_id.is_empty()
            || self.client_id.len() > CLIENT_ID_MAX
            || !self.client_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bad(
                "client_id",
                format!("expected 1 to {CLIENT_ID_MAX} letters, digits, '-' or '_', got {:?}", self.client_id),
            );
        }
        if self.id != Self::id_for(&self.account, &self.client_id) {
            bad("id", format!("expected {:?}", Self::id_for(&self.account, &self.client_id)));
        }
        if self.account.is_empty() {
            bad("account", "must not be empty".into());
        }
        if self.symbol.is_empty() {
            bad("symbol", "must not be empty".into());
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        match self.size {
            RequestSize::Account => {}
            RequestSize::Quantity { quantity } if !positive(quantity) => {
                bad("size.quantity", format!("expected a positive number, got {quantity}"))
            }
            RequestSize::Notional { notional } if !positive(notional) => {
                bad("size.notional", format!("expected a positive number, got {notional}"))
            }
            RequestSize::Fraction { fraction } if !(positive(fraction) && fraction <= 1.0) => {
                bad("size.fraction", format!("expected a number in (0, 1], got {fraction}"))
            }
            _ => {}
        }
        match (self.order_type, self.limit_price) {
            (OrderType::Limit, None) => bad("limit_price", "a limit order needs a limit price".into()),
            (OrderType::Limit, Some(l)) if !positive(l) => {
                bad("limit_price", format!("expected a positive price, got {l}"))
            }
            (OrderType::Market, Some(_)) => bad("limit_price", "only limit orders take a limit price".into()),
            _ => {}
        }
        if let Some(l) = self.leverage
            && !(l.is_finite() && l >= 1.0)
        {
            bad("leverage", format!("expected a number of at least 1, got {l}"));
        }
        for (field, v) in [("stop_loss", self.stop_loss), ("take_profit", self.take_profit)] {
            if let Some(v) = v
                && !positive(v)
            {
                bad(field, format!("expected a positive price, got {v}"));
            }
        }
        if self.reduce_only && (self.stop_loss.is_some() || self.take_profit.is_some()) {
            bad("stop_loss", "exits are for orders that open a position, not reduce-only ones".into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> OrderRequest {
        OrderRequest {
            id: OrderRequest::id_for("a", "c1"),
            client_id: "c1".into(),
            account: "a".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            size: RequestSize::Account,
            order_type: OrderType::Market,
            limit_price: None,
            leverage: None,
            stop_loss: None,
            take_profit: None,
            reduce_only: false,
            requested_by: "t".into(),
            requested_at: 0,
        }
    }

    #[test]
    fn a_well_formed_request_has_no_problems() {
        assert!(request().validate().is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let r = OrderRequest {
            client_id: "bad id!".into(),
            size: RequestSize::Fraction { fraction: 1.5 },
            order_type: OrderType::Limit,
            leverage: Some(0.5),
            stop_loss: Some(-1.0),
            ..request()
        };
        let fields: Vec<&str> = r.validate().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["client_id", "id", "size.fraction", "limit_price", "leverage", "stop_loss"]);
    }
}
