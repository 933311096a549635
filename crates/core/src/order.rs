//! What risk sends on `risk.orders` (key = account): for every decision of a profile and every
//! account that follows it, at most one of an [`OrderIntent`] (approved, sized), a
//! [`Rejection`] (with its typed [`RefusalReason`]) or a [`Mark`] (nothing to do, but the
//! account holds a position or a resting order in the symbol, so its book must see the candle
//! for stops, take-profits, liquidations and limit fills). A hold on an idle symbol sends nothing.
//!
//! Each carries the account's `seq`: risk numbers what it sends to an account 1, 2, 3… and the
//! executor applies each number once, so a redelivered or re-sent message never fills twice.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::payload::Payload;
use crate::signal::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

/// Which way a position is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Long,
    Short,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
        }
    }

    /// +1 for long, -1 for short: PnL = sign × (exit − entry) × quantity.
    pub fn sign(self) -> f64 {
        match self {
            Self::Long => 1.0,
            Self::Short => -1.0,
        }
    }

    /// The side that opens (or adds to) a position of this direction.
    pub fn opening_side(self) -> Side {
        match self {
            Self::Long => Side::Buy,
            Self::Short => Side::Sell,
        }
    }

    /// The side that closes (or reduces) it.
    pub fn closing_side(self) -> Side {
        match self {
            Self::Long => Side::Sell,
            Self::Short => Side::Buy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Market,
    Limit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Limit => "limit",
        }
    }
}

/// What an order does to the account's position in its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Open a position (the account holds none in this symbol).
    Open,
    /// Close the whole position.
    Close,
    /// Close part of it (`quantity`).
    Reduce,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Close => "close",
            Self::Reduce => "reduce",
        }
    }
}

/// The candle a decision was taken on, as the account's book sees it: the reference price of
/// orders and the range that stops, take-profits and liquidations are checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarMark {
    pub symbol: String,
    pub open_time: i64,
    /// When the bar closed; the time of everything that happens on it.
    pub close_time: i64,
    /// The bar's open: where a paper book with `fill_at = "next_open"` fills the market orders
    /// held from the symbol's previous bar. `None` in messages from before it was carried.
    #[serde(default)]
    pub open: Option<f64>,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

/// An approved, sized order. `id` is the order id: `<decision id>/<account>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderIntent {
    pub id: String,
    /// The decision (or control command) that caused it.
    pub decision_id: String,
    pub account: String,
    pub seq: u64,
    pub bar: BarMark,
    pub intent: Intent,
    /// Direction of the position opened, closed or reduced.
    pub direction: Direction,
    pub side: Side,
    pub order_type: OrderType,
    /// Limit orders only.
    pub limit_price: Option<f64>,
    /// Base-asset quantity, > 0.
    pub quantity: f64,
    pub leverage: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Trailing stop distance as a fraction of the best price since entry (0.02 = 2 %).
    pub trailing_stop_pct: Option<f64>,
    /// Why, in words: the decision's summary or the command.
    pub reason: String,
    /// Set when the book sizes the order itself at fill time (`quantity` is then risk's
    /// estimate at the decision bar's close, on which its checks ran). Absent in older
    /// messages: `quantity` is the size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_sizing: Option<FillSizing>,
}

/// How a book sizes an order at fill time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillSizing {
    /// As much as the account's available margin buys at the fill price, fees included:
    /// quantity = available margin × leverage / (price × (1 + taker fee × leverage)), floored
    /// to the book's lot step (backtesting.py's `buy()` with no size, at leverage 1).
    AllIn,
}

impl OrderIntent {
    pub fn order_id(&self) -> MessageId {
        MessageId::from_parts(&[&self.id])
    }
}

impl Payload for OrderIntent {
    const KIND: &'static str = "order_intent";
    const VERSION: u16 = 1;
}

/// Why risk refused a decision for an account. Every variant is a distinct, typed reason with
/// the numbers that made it so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum RefusalReason {
    TradingDisabled,
    /// The max-drawdown circuit breaker tripped; halted until an operator resets the account.
    Halted {
        drawdown: f64,
        max_drawdown: f64,
    },
    EmergencyStop,
    Paused,
    ShortingDisabled,
    ConfidenceBelowMinimum {
        confidence: f64,
        minimum: f64,
    },
    MaxOpenPositions {
        open: u32,
        max: u32,
    },
    MaxPositionNotional {
        notional: f64,
        max: f64,
    },
    MaxPositionPctOfEquity {
        pct: f64,
        max: f64,
    },
    MaxLeverage {
        requested: f64,
        max: f64,
    },
    InsufficientMargin {
        required: f64,
        available: f64,
    },
    MaxSymbolExposure {
        exposure: f64,
        max: f64,
    },
    DailyLossLimit {
        loss: f64,
        limit: f64,
    },
    Cooldown {
        consecutive_losses: u32,
        until: i64,
    },
    StopLossRequired,
    /// Sizing gave nothing worth an order (e.g. no equity left).
    SizeTooSmall {
        quantity: f64,
    },
    /// A manual request for a symbol the account has no price of yet (no bar of it has reached
    /// the account's risk partition).
    NoMarketPrice {
        symbol: String,
    },
    /// A reduce-only request (or a fraction of a position) with no position to reduce.
    NoPosition {
        symbol: String,
    },
    /// A manual entry the way the account already holds the symbol: one position per symbol.
    AlreadyPositioned {
        direction: Direction,
    },
    /// A manual request whose values cannot be traded as they are (an exit on the wrong side
    /// of the price, a reduce-only order the way of the position, a malformed field).
    InvalidRequest {
        field: String,
        message: String,
    },
}

impl RefusalReason {
    /// Stable snake_case name: metric label and SQL column.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TradingDisabled => "trading_disabled",
            Self::Halted { .. } => "halted",
            Self::EmergencyStop => "emergency_stop",
            Self::Paused => "paused",
            Self::ShortingDisabled => "shorting_disabled",
            Self::ConfidenceBelowMinimum { .. } => "confidence_below_minimum",
            Self::MaxOpenPositions { .. } => "max_open_positions",
            Self::MaxPositionNotional { .. } => "max_position_notional",
            Self::MaxPositionPctOfEquity { .. } => "max_position_pct_of_equity",
            Self::MaxLeverage { .. } => "max_leverage",
            Self::InsufficientMargin { .. } => "insufficient_margin",
            Self::MaxSymbolExposure { .. } => "max_symbol_exposure",
            Self::DailyLossLimit { .. } => "daily_loss_limit",
            Self::Cooldown { .. } => "cooldown",
            Self::StopLossRequired => "stop_loss_required",
            Self::SizeTooSmall { .. } => "size_too_small",
            Self::NoMarketPrice { .. } => "no_market_price",
            Self::NoPosition { .. } => "no_position",
            Self::AlreadyPositioned { .. } => "already_positioned",
            Self::InvalidRequest { .. } => "invalid_request",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TradingDisabled => write!(f, "trading is disabled for this account"),
            Self::Halted { drawdown, max_drawdown } => write!(
                f,
                "halted by the circuit breaker: drawdown {:.2} % reached the maximum {:.2} %; reset the account to trade again",
                drawdown * 100.0,
                max_drawdown * 100.0
            ),
            Self::EmergencyStop => write!(f, "emergency stop is in force"),
            Self::Paused => write!(f, "trading is paused"),
            Self::ShortingDisabled => write!(f, "short positions are not allowed for this account"),
            Self::ConfidenceBelowMinimum { confidence, minimum } => {
                write!(f, "confidence {confidence:.3} is below the minimum {minimum:.3}")
            }
            Self::MaxOpenPositions { open, max } => write!(f, "{open} positions open, at most {max} allowed"),
            Self::MaxPositionNotional { notional, max } => {
                write!(f, "position notional {notional:.2} exceeds the maximum {max:.2}")
            }
            Self::MaxPositionPctOfEquity { pct, max } => {
                write!(f, "position is {:.2} % of equity, at most {:.2} % allowed", pct * 100.0, max * 100.0)
            }
            Self::MaxLeverage { requested, max } => write!(f, "leverage {requested} exceeds the maximum {max}"),
            Self::InsufficientMargin { required, available } => {
                write!(f, "margin {required:.2} required, {available:.2} available")
            }
            Self::MaxSymbolExposure { exposure, max } => {
                write!(f, "exposure in the symbol would be {exposure:.2}, at most {max:.2} allowed")
            }
            Self::DailyLossLimit { loss, limit } => {
                write!(f, "today's loss {loss:.2} reached the daily limit {limit:.2}")
            }
            Self::Cooldown { consecutive_losses, until } => {
                write!(f, "cooling down after {consecutive_losses} consecutive losses until {until} (epoch ms)")
            }
            Self::StopLossRequired => write!(f, "a stop loss is required and the decision has none"),
            Self::SizeTooSmall { quantity } => write!(f, "sized quantity {quantity} is too small to trade"),
            Self::NoMarketPrice { symbol } => {
                write!(f, "no price of {symbol} has reached this account yet (no bar of it from its profile)")
            }
            Self::NoPosition { symbol } => write!(f, "no open position in {symbol} to reduce"),
            Self::AlreadyPositioned { direction } => {
                write!(f, "already {} in this symbol: one position per symbol", direction.as_str())
            }
            Self::InvalidRequest { field, message } => write!(f, "{field}: {message}"),
        }
    }
}

/// A decision risk refused for an account. `id` is the order id it would have had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub id: String,
    pub decision_id: String,
    pub account: String,
    pub seq: u64,
    pub bar: BarMark,
    pub action: Action,
    pub reason: RefusalReason,
}

impl Payload for Rejection {
    const KIND: &'static str = "rejection";
    const VERSION: u16 = 1;
}

/// A decision that asks nothing of the account (hold, or already positioned that way): the
/// account's book still marks the bar. `id` = `<decision id>/<account>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub id: String,
    pub decision_id: String,
    pub account: String,
    pub seq: u64,
    pub bar: BarMark,
}

impl Payload for Mark {
    const KIND: &'static str = "mark";
    const VERSION: u16 = 1;
}

/// Any message of `risk.orders`.
#[derive(Debug, Clone, PartialEq)]
pub enum RiskMessage {
    Order(OrderIntent),
    Rejected(Rejection),
    Mark(Mark),
}

impl RiskMessage {
    pub fn id(&self) -> &str {
        match self {
            Self::Order(o) => &o.id,
            Self::Rejected(r) => &r.id,
            Self::Mark(m) => &m.id,
        }
    }

    pub fn account(&self) -> &str {
        match self {
            Self::Order(o) => &o.account,
            Self::Rejected(r) => &r.account,
            Self::Mark(m) => &m.account,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Self::Order(o) => o.seq,
            Self::Rejected(r) => r.seq,
            Self::Mark(m) => m.seq,
        }
    }

    pub fn bar(&self) -> &BarMark {
        match self {
            Self::Order(o) => &o.bar,
            Self::Rejected(r) => &r.bar,
            Self::Mark(m) => &m.bar,
        }
    }
}

/// Something risk did to an account on its own: the circuit breaker tripped, a cooldown began,
/// an emergency stop halted it, an operator reset it. Sent to `audit.events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountAlert {
    /// `<cause id>/<account>/<kind>`.
    pub id: String,
    pub account: String,
    /// `circuit_breaker`, `cooldown`, `emergency_stop`, `reset`.
    pub kind: String,
    pub message: String,
    pub time: i64,
}

impl Payload for AccountAlert {
    const KIND: &'static str = "account_alert";
    const VERSION: u16 = 1;
}
