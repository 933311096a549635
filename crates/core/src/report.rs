//! What an exchange says an account holds, sent by the executor to the risk stage.
//!
//! Risk sizes and limits each account on a book of its own (the paper book the executor runs,
//! fed the same messages). For a paper account that book is exact. For an exchange account it
//! is a prediction: the exchange may fill at another price, fill part of an order, or charge
//! other fees. So the executor of an exchange account sends an [`AccountReport`] after every
//! message that produced fills (booked at what the exchange reported) and after every
//! reconciliation with the exchange's own account, position and open-order endpoints, and risk
//! takes the exchange's numbers: its equity, margin, positions and losing streak follow the
//! exchange, and a difference beyond the tolerance is an alert and an audit event.
//!
//! Reports travel on risk's input stream `ens.decisions`, keyed by the account's profile, like
//! manual order requests (see [`crate::request`]).

use serde::{Deserialize, Serialize};

use crate::execution::Fill;
use crate::ids::MessageId;
use crate::order::Direction;
use crate::payload::Payload;

/// Why the report was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportKind {
    /// After risk message `seq` of the account produced fills on the exchange.
    Fills { seq: u64 },
    /// The executor read the exchange's account, positions and open orders.
    Reconcile,
}

/// One open position as the exchange reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedPosition {
    pub symbol: String,
    pub direction: Direction,
    /// Base-asset quantity, > 0.
    pub quantity: f64,
    pub entry_price: f64,
    pub leverage: f64,
    /// The exchange's mark price, when it reported one.
    pub mark_price: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountReport {
    /// `<account>/report/<seq>` after fills, `<account>/reconcile/<time>` after a
    /// reconciliation.
    pub id: String,
    pub account: String,
    pub kind: ReportKind,
    /// When the exchange's figures were read (epoch ms).
    pub time: i64,
    /// Wallet balance: deposits plus realised PnL minus fees (no unrealised PnL).
    pub balance: f64,
    pub positions: Vec<ReportedPosition>,
    /// The fills of the message the report follows, as the exchange filled them (their
    /// realised PnL decides the losing streak); empty for a reconciliation.
    pub fills: Vec<Fill>,
    /// Open orders on the exchange (protective ones included), when they were read.
    pub open_orders: Option<u32>,
}

impl AccountReport {
    pub fn message_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.id])
    }
}

impl Payload for AccountReport {
    const KIND: &'static str = "account_report";
    const VERSION: u16 = 1;
}
