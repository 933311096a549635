//! A deterministic paper broker for one account: linear USDT-margined futures, isolated margin,
//! one position per symbol (one-way mode).
//!
//! Pure code: no I/O, no clock. Time comes from the bars of the messages of `risk.orders`, so
//! the same messages give the same book, bit for bit. The executor runs a [`PaperBook`] per paper
//! account; the risk stage runs the very same book as its shadow of the account (it calls
//! [`PaperBook::mark`], decides, then [`PaperBook::execute`]), which is why the book is cheap to
//! clone and serialisable.
//!
//! # What a bar does ([`PaperBook::mark`])
//!
//! For the bar's symbol only, in this order:
//!
//! 0. with `fill_at = "next_open"`, the market orders held from the symbol's previous bar fill
//!    at this bar's open (with slippage, taker fee), in the order they came;
//! 1. the symbol's resting limit order fills if the bar traded through it (buy: low ≤ limit,
//!    sell: high ≥ limit), at the limit price, maker fee, no slippage;
//! 2. if a position is open, exits are checked against the bar's range, worst first:
//!    liquidation (at the liquidation price), else the effective stop (the tighter of the stop
//!    loss and the trailing stop; at the stop with slippage against the account), else the take
//!    profit (at the take profit). Taker fee. A bar that touches both the stop and the take
//!    profit stops out;
//! 3. if the position is still open: its mark price becomes the bar's close, the best price
//!    since entry takes in the bar's high (long) or low (short), and the trailing stop ratchets
//!    from it (only ever tighter), so a bar's own extreme only moves the trailing level for the
//!    bars after it.
//!
//! A bar whose close time is not after the last bar marked (or executed on) for its symbol is
//! not marked again: its range was already applied.
//!
//! # What an order does ([`PaperBook::execute`])
//!
//! Market orders fill at the bar's close with slippage against the account, taker fee (or, with
//! `fill_at = "next_open"`, are held for the open of the symbol's next bar). With a `lot_step`
//! every quantity filled is floored to whole steps; an order with `fill_sizing = all_in` is
//! sized when it fills, to what the available margin buys ([`PaperBook::all_in_quantity`]). Limit
//! orders rest (one per symbol, a new limit order replaces the resting one) and fill on a later
//! bar. `Open` opens, adds to a position of the same direction (average entry, margins add) or
//! closes a position of the other direction then opens; `Close` closes the position, `Reduce`
//! closes part of it; both only act on a position of the order's direction.
//!
//! # Money
//!
//! balance = starting balance + Σ realised PnL − Σ fees; equity = balance + Σ unrealised PnL at
//! each position's last mark; the margin of a position is its entry notional / leverage.

mod book;
mod config;

pub use book::{Applied, PaperBook, Position};
pub use config::{FillAt, PaperConfig};
