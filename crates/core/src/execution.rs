//! What execution sends on `exec.fills` (key = account): fills, position snapshots and account
//! snapshots. Ids derive from the risk message that caused them: fill `<cause id>#<n>`,
//! position `<cause id>/position/<symbol>`, account `<cause id>/account`.

use serde::{Deserialize, Serialize};

use crate::order::{Direction, Side};
use crate::payload::Payload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liquidity {
    Maker,
    Taker,
}

impl Liquidity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Maker => "maker",
            Self::Taker => "taker",
        }
    }
}

/// Why a fill happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillReason {
    /// Opened a position.
    Entry,
    /// Closed or reduced it on a decision.
    Exit,
    StopLoss,
    TakeProfit,
    TrailingStop,
    Liquidation,
    /// Closed by an emergency stop.
    EmergencyClose,
}

impl FillReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Exit => "exit",
            Self::StopLoss => "stop_loss",
            Self::TakeProfit => "take_profit",
            Self::TrailingStop => "trailing_stop",
            Self::Liquidation => "liquidation",
            Self::EmergencyClose => "emergency_close",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub id: String,
    pub order_id: String,
    pub account: String,
    /// The risk seq of the message that caused it.
    pub seq: u64,
    pub symbol: String,
    pub side: Side,
    /// Direction of the position this fill opened or closed.
    pub direction: Direction,
    pub quantity: f64,
    pub price: f64,
    /// Quote currency, > 0 (a rebate would be negative).
    pub fee: f64,
    /// PnL realised by this fill before fees (0 for an entry).
    pub realized_pnl: f64,
    pub liquidity: Liquidity,
    pub reason: FillReason,
    pub time: i64,
}

impl Payload for Fill {
    const KIND: &'static str = "fill";
    const VERSION: u16 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionStatus {
    Open,
    Closed,
}

impl PositionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// A position after something changed it (a fill, a trailing stop that moved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionUpdate {
    pub id: String,
    pub account: String,
    pub seq: u64,
    pub symbol: String,
    pub direction: Direction,
    /// 0 when closed.
    pub quantity: f64,
    pub entry_price: f64,
    pub mark_price: f64,
    pub unrealized_pnl: f64,
    pub leverage: f64,
    pub liquidation_price: Option<f64>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Current trailing stop level, if one is set.
    pub trailing_stop: Option<f64>,
    pub status: PositionStatus,
    pub time: i64,
}

impl Payload for PositionUpdate {
    const KIND: &'static str = "position_update";
    const VERSION: u16 = 1;
}

/// The account after a change. `balance` = starting balance + Σ realised PnL − Σ fees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdate {
    pub id: String,
    pub account: String,
    pub seq: u64,
    pub balance: f64,
    /// balance + unrealised PnL.
    pub equity: f64,
    pub margin_used: f64,
    pub unrealized_pnl: f64,
    pub realized_pnl: f64,
    pub fees: f64,
    pub open_positions: u32,
    pub time: i64,
}

impl Payload for AccountUpdate {
    const KIND: &'static str = "account_update";
    const VERSION: u16 = 1;
}

/// Any message of `exec.fills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExecEvent {
    Fill(Fill),
    Position(PositionUpdate),
    Account(AccountUpdate),
}

impl ExecEvent {
    pub fn id(&self) -> &str {
        match self {
            Self::Fill(f) => &f.id,
            Self::Position(p) => &p.id,
            Self::Account(a) => &a.id,
        }
    }
}
