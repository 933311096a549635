//! The book of one paper account: positions, resting limit orders and the money.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tradeflow_core::execution::{
    AccountUpdate, ExecEvent, Fill, FillReason, Liquidity, PositionStatus, PositionUpdate,
};
use tradeflow_core::order::{BarMark, Direction, FillSizing, Intent, OrderIntent, OrderType, RiskMessage, Side};
use tradeflow_core::report::ReportedPosition;

use super::config::{FillAt, PaperConfig};

/// An open position (linear, isolated margin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub symbol: String,
    pub direction: Direction,
    /// Base-asset quantity, > 0.
    pub quantity: f64,
    /// Average entry price.
    pub entry_price: f64,
    pub leverage: f64,
    /// Isolated margin: entry notional / leverage (what is left of it after reductions).
    pub margin: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Trailing distance as a fraction of the best price (0.02 = 2 %).
    pub trailing_pct: Option<f64>,
    /// Current trailing stop level.
    pub trailing_stop: Option<f64>,
    /// Best price since entry: the highest high (long) or lowest low (short) of the bars marked
    /// after the entry, or the entry price.
    pub best_price: f64,
    pub liquidation_price: f64,
    /// Close of the last bar seen (the order's bar at entry).
    pub mark_price: f64,
    /// Close time of the bar the position was opened on.
    pub opened_at: i64,
}

impl Position {
    /// quantity × mark price.
    pub fn notional(&self) -> f64 {
        self.quantity * self.mark_price
    }

    /// sign × (mark − entry) × quantity.
    pub fn unrealized_pnl(&self) -> f64 {
        self.direction.sign() * (self.mark_price - self.entry_price) * self.quantity
    }

    /// The stop that triggers first: the tighter of the stop loss and the trailing stop (long:
    /// the higher, short: the lower), with the reason of its fill (a tie is a stop loss).
    pub fn effective_stop(&self) -> Option<(f64, FillReason)> {
        match (self.stop_loss, self.trailing_stop) {
            (Some(sl), Some(ts)) => {
                let trailing_tighter = match self.direction {
                    Direction::Long => ts > sl,
                    Direction::Short => ts < sl,
                };
                Some(if trailing_tighter { (ts, FillReason::TrailingStop) } else { (sl, FillReason::StopLoss) })
            }
            (Some(sl), None) => Some((sl, FillReason::StopLoss)),
            (None, Some(ts)) => Some((ts, FillReason::TrailingStop)),
            (None, None) => None,
        }
    }
}

/// What [`PaperBook::apply`] did with a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub events: Vec<ExecEvent>,
    /// The message's seq was already applied: nothing changed.
    pub duplicate: bool,
}

/// The paper book of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperBook {
    account: String,
    starting_balance: f64,
    config: PaperConfig,
    /// Σ realised PnL of every closing fill, in fill order.
    realized_pnl: f64,
    /// Σ fees of every fill, in fill order.
    fees: f64,
    last_seq: u64,
    positions: BTreeMap<String, Position>,
    /// Resting limit orders, one per symbol.
    pending: BTreeMap<String, OrderIntent>,
    /// Market orders held for the open of the symbol's next bar (`fill_at = "next_open"`), in
    /// the order they came.
    #[serde(default)]
    held: BTreeMap<String, Vec<OrderIntent>>,
    /// Close time of the last bar marked or executed on, per symbol.
    last_bar: BTreeMap<String, i64>,
}

impl PaperBook {
    pub fn new(account: &str, starting_balance: f64, config: PaperConfig) -> Self {
        Self {
            account: account.into(),
            starting_balance,
            config,
            realized_pnl: 0.0,
            fees: 0.0,
            last_seq: 0,
            positions: BTreeMap::new(),
            pending: BTreeMap::new(),
            held: BTreeMap::new(),
            last_bar: BTreeMap::new(),
        }
    }

    /// Applies one message of `risk.orders`: marks its bar, then executes it if it is an order.
    /// A message whose seq is not after the last one applied is a duplicate and changes nothing.
    ///
    /// The events of the message come as one batch: its fills (`<id>#1`, `<id>#2`…), then a
    /// position update per symbol touched and one account update.
    pub fn apply(&mut self, msg: &RiskMessage) -> Applied {
        let seq = msg.seq();
        if seq <= self.last_seq {
            return Applied { events: Vec::new(), duplicate: true };
        }
        let bar = msg.bar();
        let mut batch = Batch::new(msg.id(), seq, bar.close_time);
        self.mark_into(&mut batch, bar);
        if let RiskMessage::Order(order) = msg {
            self.execute_into(&mut batch, order);
        }
        self.last_seq = seq;
        Applied { events: batch.finish(self), duplicate: false }
    }

    /// The bar half of [`apply`](Self::apply): resting limit order, exits, mark and trailing
    /// stop of the bar's symbol. Does not look at or set the last seq.
    pub fn mark(&mut self, cause_id: &str, seq: u64, bar: &BarMark) -> Vec<ExecEvent> {
        let mut batch = Batch::new(cause_id, seq, bar.close_time);
        self.mark_into(&mut batch, bar);
        batch.finish(self)
    }

    /// The order half of [`apply`](Self::apply), on the order's bar (`order.bar.symbol` is the
    /// symbol traded). Does not look at or set the last seq.
    pub fn execute(&mut self, order: &OrderIntent) -> Vec<ExecEvent> {
        let mut batch = Batch::new(&order.id, order.seq, order.bar.close_time);
        self.execute_into(&mut batch, order);
        batch.finish(self)
    }

    /// Closes up to `quantity` of the `symbol` position at `price` as a taker, for `reason`: an
    /// exit that happened elsewhere (an exchange's stop order), booked with this book's
    /// accounting. `cause_id` names the fills (`<cause_id>#1`) and their order. Nothing happens
    /// without a position. Does not look at or set the last seq.
    #[allow(clippy::too_many_arguments)]
    pub fn close_at(
        &mut self,
        cause_id: &str,
        seq: u64,
        time: i64,
        symbol: &str,
        quantity: f64,
        price: f64,
        reason: FillReason,
    ) -> Vec<ExecEvent> {
        let mut batch = Batch::new(cause_id, seq, time);
        if quantity > 0.0 && price.is_finite() && price > 0.0 {
            self.close(&mut batch, symbol, quantity, price, Liquidity::Taker, reason, cause_id);
        }
        batch.finish(self)
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn config(&self) -> &PaperConfig {
        &self.config
    }

    pub fn starting_balance(&self) -> f64 {
        self.starting_balance
    }

    /// Wallet balance: starting balance + Σ realised PnL − Σ fees.
    pub fn balance(&self) -> f64 {
        self.starting_balance + self.realized_pnl - self.fees
    }

    /// balance + Σ unrealised PnL.
    pub fn equity(&self) -> f64 {
        self.balance() + self.unrealized_pnl()
    }

    pub fn unrealized_pnl(&self) -> f64 {
        self.positions.values().map(Position::unrealized_pnl).sum()
    }

    pub fn realized_pnl(&self) -> f64 {
        self.realized_pnl
    }

    pub fn fees(&self) -> f64 {
        self.fees
    }

    /// Σ margins of the open positions.
    pub fn margin_used(&self) -> f64 {
        self.positions.values().map(|p| p.margin).sum()
    }

    /// equity − margin used, never below 0.
    pub fn available_margin(&self) -> f64 {
        (self.equity() - self.margin_used()).max(0.0)
    }

    pub fn position(&self, symbol: &str) -> Option<&Position> {
        self.positions.get(symbol)
    }

    /// Open positions, by symbol.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.positions.values()
    }

    pub fn open_positions(&self) -> usize {
        self.positions.len()
    }

    /// The resting limit order of a symbol.
    pub fn pending_order(&self, symbol: &str) -> Option<&OrderIntent> {
        self.pending.get(symbol)
    }

    /// Resting limit orders, by symbol.
    pub fn pending_orders(&self) -> impl Iterator<Item = &OrderIntent> {
        self.pending.values()
    }

    /// The market orders of a symbol held for the open of its next bar (`fill_at =
    /// "next_open"`), in the order they fill.
    pub fn held_orders(&self, symbol: &str) -> &[OrderIntent] {
        self.held.get(symbol).map_or(&[], Vec::as_slice)
    }

    /// Every held market order, by symbol.
    pub fn all_held_orders(&self) -> impl Iterator<Item = &OrderIntent> {
        self.held.values().flatten()
    }

    /// Whether the book has anything in `symbol` that its next bar acts on: a position, a
    /// resting limit order or a held market order.
    pub fn has_business(&self, symbol: &str) -> bool {
        self.positions.contains_key(symbol) || self.pending.contains_key(symbol) || self.held.contains_key(symbol)
    }

    /// The all-in quantity at `price` ([`FillSizing::AllIn`]): what the available margin buys
    /// at `leverage`, the taker fee included, floored to the lot step:
    /// available × leverage / (price × (1 + taker fee × leverage)). At leverage 1 on a flat
    /// account that is equity / (price × (1 + fee)), backtesting.py's all-in `buy()`. Without
    /// a lot step it is shrunk by a relative 1e-12, so that rounding never makes it ask for
    /// more margin than there is. 0 when nothing can be bought.
    pub fn all_in_quantity(&self, price: f64, leverage: f64) -> f64 {
        let available = self.available_margin();
        if !(price.is_finite() && price > 0.0 && leverage.is_finite() && leverage > 0.0 && available > 0.0) {
            return 0.0;
        }
        let quantity = available * leverage / (price * (1.0 + self.config.taker_fee * leverage));
        match self.config.lot_step {
            Some(_) => self.config.floor_to_lot(quantity),
            None => quantity * (1.0 - 1e-12),
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The account as it is now, as the update `<cause id>/account`.
    /// Takes an exchange's figures for the account (see [`tradeflow_core::report`]): its wallet
    /// balance (the realised PnL is set so that [`balance`](Self::balance) equals it, the fees
    /// kept) and its positions. A position the book holds in the same direction keeps its
    /// exits and trailing state and takes the exchange's quantity, entry and leverage; one the
    /// exchange does not report is gone; one the book did not hold is added without exits.
    /// Resting and held orders are left alone (the exchange's open orders are its own).
    pub fn adopt(&mut self, balance: f64, positions: &[ReportedPosition], time: i64) {
        self.realized_pnl = balance - self.starting_balance + self.fees;
        let mmr = self.config.maintenance_margin_rate;
        let mut next = BTreeMap::new();
        for r in positions.iter().filter(|r| r.quantity > 0.0 && r.entry_price > 0.0 && r.leverage > 0.0) {
            // The exchange's mark when it sent one; else the last price this book saw for the
            // symbol (a fill report carries none: the bar's close still marks it).
            let p = match self.positions.remove(&r.symbol) {
                Some(mut p) if p.direction == r.direction => {
                    p.quantity = r.quantity;
                    p.entry_price = r.entry_price;
                    p.leverage = r.leverage;
                    p.mark_price = r.mark_price.unwrap_or(p.mark_price);
                    p
                }
                _ => Position {
                    symbol: r.symbol.clone(),
                    direction: r.direction,
                    quantity: r.quantity,
                    entry_price: r.entry_price,
                    leverage: r.leverage,
                    margin: 0.0,
                    stop_loss: None,
                    take_profit: None,
                    trailing_pct: None,
                    trailing_stop: None,
                    best_price: r.entry_price,
                    liquidation_price: 0.0,
                    mark_price: r.mark_price.unwrap_or(r.entry_price),
                    opened_at: time,
                },
            };
            next.insert(r.symbol.clone(), p);
        }
        for p in next.values_mut() {
            p.margin = p.quantity * p.entry_price / p.leverage;
            p.liquidation_price = liquidation_price(p.direction, p.entry_price, p.leverage, mmr);
        }
        self.positions = next;
    }

    pub fn snapshot(&self, cause_id: &str, seq: u64, time: i64) -> AccountUpdate {
        AccountUpdate {
            id: format!("{cause_id}/account"),
            account: self.account.clone(),
            seq,
            balance: self.balance(),
            equity: self.equity(),
            margin_used: self.margin_used(),
            unrealized_pnl: self.unrealized_pnl(),
            realized_pnl: self.realized_pnl,
            fees: self.fees,
            open_positions: self.positions.len() as u32,
            time,
        }
    }

    fn mark_into(&mut self, batch: &mut Batch, bar: &BarMark) {
        let symbol = bar.symbol.as_str();
        if self.last_bar.get(symbol).is_some_and(|&last| bar.close_time <= last) {
            return;
        }
        match self.last_bar.get_mut(symbol) {
            Some(last) => *last = bar.close_time,
            None => {
                self.last_bar.insert(symbol.to_string(), bar.close_time);
            }
        }

        // 0. Market orders held for this open (`fill_at = "next_open"`). Like everything that
        // happens on a bar, their fills carry its close time.
        if let Some(orders) = self.held.remove(symbol) {
            for order in &orders {
                let reference = match bar.open {
                    Some(open) if open.is_finite() && open > 0.0 => open,
                    _ => order.bar.close,
                };
                let price = self.slipped(order_side(order), reference);
                self.fill_order(batch, order, price, Liquidity::Taker, reference, &order.id);
            }
        }

        // 1. The resting limit order (placed on an earlier bar).
        if let Some(order) = self.pending.get(symbol) {
            let limit = order.limit_price.unwrap_or(f64::NAN);
            let through = match order_side(order) {
                Side::Buy => bar.low <= limit,
                Side::Sell => bar.high >= limit,
            };
            if through && let Some(order) = self.pending.remove(symbol) {
                self.fill_order(batch, &order, limit, Liquidity::Maker, limit, &order.id);
            }
        }

        // 2. Exits, worst first.
        if let Some(p) = self.positions.get(symbol) {
            let exit = match p.direction {
                Direction::Long if bar.low <= p.liquidation_price => {
                    Some((p.liquidation_price, FillReason::Liquidation))
                }
                Direction::Short if bar.high >= p.liquidation_price => {
                    Some((p.liquidation_price, FillReason::Liquidation))
                }
                direction => {
                    let stop = p.effective_stop().filter(|&(stop, _)| match direction {
                        Direction::Long => bar.low <= stop,
                        Direction::Short => bar.high >= stop,
                    });
                    let take_profit = p.take_profit.filter(|&tp| match direction {
                        Direction::Long => bar.high >= tp,
                        Direction::Short => bar.low <= tp,
                    });
                    match (stop, take_profit) {
                        (Some((stop, reason)), _) => Some((self.slipped(direction.closing_side(), stop), reason)),
                        (None, Some(tp)) => Some((tp, FillReason::TakeProfit)),
                        (None, None) => None,
                    }
                }
            };
            if let Some((price, reason)) = exit {
                let (quantity, cause) = (p.quantity, batch.cause);
                self.close(batch, symbol, quantity, price, Liquidity::Taker, reason, cause);
            }
        }

        // 3. Mark and trailing stop.
        if let Some(p) = self.positions.get_mut(symbol) {
            p.mark_price = bar.close;
            let moved = match p.direction {
                Direction::Long => {
                    p.best_price = p.best_price.max(bar.high);
                    p.trailing_pct
                        .map(|pct| p.best_price * (1.0 - pct))
                        .filter(|&level| p.trailing_stop.is_none_or(|current| level > current))
                }
                Direction::Short => {
                    p.best_price = p.best_price.min(bar.low);
                    p.trailing_pct
                        .map(|pct| p.best_price * (1.0 + pct))
                        .filter(|&level| p.trailing_stop.is_none_or(|current| level < current))
                }
            };
            if let Some(level) = moved {
                p.trailing_stop = Some(level);
                batch.touch(symbol);
            }
        }
    }

    fn execute_into(&mut self, batch: &mut Batch, order: &OrderIntent) {
        let bar = &order.bar;
        let last = self.last_bar.entry(bar.symbol.clone()).or_insert(bar.close_time);
        *last = (*last).max(bar.close_time);
        if !is_valid(order) {
            return;
        }
        if order.order_type == OrderType::Limit && order.limit_price.is_some() {
            self.pending.insert(bar.symbol.clone(), order.clone());
            return;
        }
        if self.config.fill_at == FillAt::NextOpen {
            self.held.entry(bar.symbol.clone()).or_default().push(order.clone());
            return;
        }
        let price = self.slipped(order_side(order), bar.close);
        let cause = batch.cause;
        self.fill_order(batch, order, price, Liquidity::Taker, bar.close, cause);
    }

    /// Fills `order` at `price`; `mark` is the mark price of the position it leaves.
    fn fill_order(
        &mut self,
        batch: &mut Batch,
        order: &OrderIntent,
        price: f64,
        liquidity: Liquidity,
        mark: f64,
        order_id: &str,
    ) {
        let symbol = order.bar.symbol.as_str();
        match order.intent {
            Intent::Open => {
                if let Some(p) = self.positions.get(symbol)
                    && p.direction != order.direction
                {
                    let quantity = p.quantity;
                    self.close(batch, symbol, quantity, price, liquidity, FillReason::Exit, order_id);
                }
                self.open(batch, order, price, liquidity, mark, order_id);
            }
            Intent::Close | Intent::Reduce => {
                let Some(p) = self.positions.get(symbol).filter(|p| p.direction == order.direction) else {
                    return;
                };
                let (quantity, reason) = if order.intent == Intent::Close {
                    let emergency = order.reason.get(..9).is_some_and(|s| s.eq_ignore_ascii_case("emergency"));
                    (p.quantity, if emergency { FillReason::EmergencyClose } else { FillReason::Exit })
                } else {
                    (self.config.floor_to_lot(order.quantity).min(p.quantity), FillReason::Exit)
                };
                if quantity <= 0.0 {
                    return;
                }
                self.close(batch, symbol, quantity, price, liquidity, reason, order_id);
                if let Some(p) = self.positions.get_mut(symbol) {
                    p.mark_price = mark;
                }
            }
        }
    }

    /// Opens a position, or adds to the one of the same direction.
    fn open(
        &mut self,
        batch: &mut Batch,
        order: &OrderIntent,
        price: f64,
        liquidity: Liquidity,
        mark: f64,
        order_id: &str,
    ) {
        let symbol = order.bar.symbol.as_str();
        let direction = order.direction;
        let quantity = match order.fill_sizing {
            Some(FillSizing::AllIn) => self.all_in_quantity(price, order.leverage),
            None => self.config.floor_to_lot(order.quantity),
        };
        if !(quantity.is_finite() && quantity > 0.0) {
            return;
        }
        let fee = quantity * price * self.fee_rate(liquidity);
        self.fees += fee;
        let mmr = self.config.maintenance_margin_rate;
        match self.positions.get_mut(symbol) {
            Some(p) => {
                let total = p.quantity + quantity;
                let entry = (p.quantity * p.entry_price + quantity * price) / total;
                let margin = p.margin + quantity * price / order.leverage;
                if order.leverage != p.leverage {
                    p.leverage = total * entry / margin;
                }
                p.quantity = total;
                p.entry_price = entry;
                p.margin = margin;
                p.liquidation_price = liquidation_price(direction, entry, p.leverage, mmr);
                p.mark_price = mark;
                if order.stop_loss.is_some() {
                    p.stop_loss = order.stop_loss;
                }
                if order.take_profit.is_some() {
                    p.take_profit = order.take_profit;
                }
                if let Some(pct) = order.trailing_stop_pct {
                    p.trailing_pct = Some(pct);
                    let level = trailing_level(direction, p.best_price, pct);
                    p.trailing_stop = Some(match (direction, p.trailing_stop) {
                        (Direction::Long, Some(current)) => current.max(level),
                        (Direction::Short, Some(current)) => current.min(level),
                        (_, None) => level,
                    });
                }
            }
            None => {
                let position = Position {
                    symbol: symbol.to_string(),
                    direction,
                    quantity,
                    entry_price: price,
                    leverage: order.leverage,
                    margin: quantity * price / order.leverage,
                    stop_loss: order.stop_loss,
                    take_profit: order.take_profit,
                    trailing_pct: order.trailing_stop_pct,
                    trailing_stop: order.trailing_stop_pct.map(|pct| trailing_level(direction, price, pct)),
                    best_price: price,
                    liquidation_price: liquidation_price(direction, price, order.leverage, mmr),
                    mark_price: mark,
                    opened_at: batch.time,
                };
                self.positions.insert(symbol.to_string(), position);
            }
        }
        let side = direction.opening_side();
        batch.fill(self, symbol, order_id, side, direction, quantity, price, fee, 0.0, liquidity, FillReason::Entry);
    }

    /// Closes `quantity` (at most the whole position) at `price`.
    #[allow(clippy::too_many_arguments)]
    fn close(
        &mut self,
        batch: &mut Batch,
        symbol: &str,
        quantity: f64,
        price: f64,
        liquidity: Liquidity,
        reason: FillReason,
        order_id: &str,
    ) {
        let rate = self.fee_rate(liquidity);
        let Some(p) = self.positions.get_mut(symbol) else { return };
        let direction = p.direction;
        let quantity = quantity.min(p.quantity);
        let pnl = direction.sign() * (price - p.entry_price) * quantity;
        let fee = quantity * price * rate;
        if quantity >= p.quantity {
            if let Some(mut closed) = self.positions.remove(symbol) {
                closed.mark_price = price;
                batch.closed.insert(symbol.to_string(), closed);
            }
        } else {
            let released = quantity / p.quantity * p.margin;
            p.margin -= released;
            p.quantity -= quantity;
        }
        self.realized_pnl += pnl;
        self.fees += fee;
        let side = direction.closing_side();
        batch.fill(self, symbol, order_id, side, direction, quantity, price, fee, pnl, liquidity, reason);
    }

    fn fee_rate(&self, liquidity: Liquidity) -> f64 {
        match liquidity {
            Liquidity::Maker => self.config.maker_fee,
            Liquidity::Taker => self.config.taker_fee,
        }
    }

    /// `price` moved against the account: buy × (1 + slip), sell × (1 − slip).
    fn slipped(&self, side: Side, price: f64) -> f64 {
        let slip = self.config.slippage();
        match side {
            Side::Buy => price * (1.0 + slip),
            Side::Sell => price * (1.0 - slip),
        }
    }

    fn position_update(&self, batch: &Batch, symbol: &str) -> Option<PositionUpdate> {
        let (p, status) = match self.positions.get(symbol) {
            Some(p) => (p, PositionStatus::Open),
            None => (batch.closed.get(symbol)?, PositionStatus::Closed),
        };
        let open = status == PositionStatus::Open;
        Some(PositionUpdate {
            id: format!("{}/position/{symbol}", batch.cause),
            account: self.account.clone(),
            seq: batch.seq,
            symbol: symbol.to_string(),
            direction: p.direction,
            quantity: if open { p.quantity } else { 0.0 },
            entry_price: p.entry_price,
            mark_price: p.mark_price,
            unrealized_pnl: if open { p.unrealized_pnl() } else { 0.0 },
            leverage: p.leverage,
            liquidation_price: open.then_some(p.liquidation_price),
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
            trailing_stop: p.trailing_stop,
            status,
            time: batch.time,
        })
    }
}

/// The side an order trades: opening side of its direction for `Open`, closing side otherwise.
fn order_side(order: &OrderIntent) -> Side {
    match order.intent {
        Intent::Open => order.direction.opening_side(),
        Intent::Close | Intent::Reduce => order.direction.closing_side(),
    }
}

/// Orders the book cannot fill are ignored: a bar close, quantity (open, reduce), leverage
/// (open) or limit price that is not a positive number.
fn is_valid(order: &OrderIntent) -> bool {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    positive(order.bar.close)
        && (order.intent == Intent::Close || positive(order.quantity))
        && (order.intent != Intent::Open || positive(order.leverage))
        && order.limit_price.is_none_or(positive)
}

/// Long: entry × (1 − 1/leverage + mmr); short: entry × (1 + 1/leverage − mmr).
fn liquidation_price(direction: Direction, entry: f64, leverage: f64, mmr: f64) -> f64 {
    match direction {
        Direction::Long => entry * (1.0 - 1.0 / leverage + mmr),
        Direction::Short => entry * (1.0 + 1.0 / leverage - mmr),
    }
}

/// Long: best × (1 − pct); short: best × (1 + pct).
fn trailing_level(direction: Direction, best: f64, pct: f64) -> f64 {
    match direction {
        Direction::Long => best * (1.0 - pct),
        Direction::Short => best * (1.0 + pct),
    }
}

/// The events of one cause being gathered: fills as they happen, then the positions touched
/// and the account.
struct Batch<'a> {
    cause: &'a str,
    seq: u64,
    time: i64,
    fills: Vec<Fill>,
    /// Symbols whose position changed, in the order they first did.
    touched: Vec<String>,
    /// Positions closed by this cause, as they were when closed (mark = exit price).
    closed: BTreeMap<String, Position>,
}

impl<'a> Batch<'a> {
    fn new(cause: &'a str, seq: u64, time: i64) -> Self {
        Self { cause, seq, time, fills: Vec::new(), touched: Vec::new(), closed: BTreeMap::new() }
    }

    fn touch(&mut self, symbol: &str) {
        if !self.touched.iter().any(|s| s == symbol) {
            self.touched.push(symbol.to_string());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        book: &PaperBook,
        symbol: &str,
        order_id: &str,
        side: Side,
        direction: Direction,
        quantity: f64,
        price: f64,
        fee: f64,
        realized_pnl: f64,
        liquidity: Liquidity,
        reason: FillReason,
    ) {
        self.fills.push(Fill {
            id: format!("{}#{}", self.cause, self.fills.len() + 1),
            order_id: order_id.to_string(),
            account: book.account.clone(),
            seq: self.seq,
            symbol: symbol.to_string(),
            side,
            direction,
            quantity,
            price,
            fee,
            realized_pnl,
            liquidity,
            reason,
            time: self.time,
        });
        self.touch(symbol);
    }

    fn finish(self, book: &PaperBook) -> Vec<ExecEvent> {
        let any_fill = !self.fills.is_empty();
        let mut events: Vec<ExecEvent> = Vec::with_capacity(self.fills.len() + self.touched.len() + 1);
        // Position updates come after every fill of the cause, then the account.
        let updates: Vec<PositionUpdate> = self.touched.iter().filter_map(|s| book.position_update(&self, s)).collect();
        let (cause, seq, time) = (self.cause, self.seq, self.time);
        events.extend(self.fills.into_iter().map(ExecEvent::Fill));
        events.extend(updates.into_iter().map(ExecEvent::Position));
        if any_fill {
            events.push(ExecEvent::Account(book.snapshot(cause, seq, time)));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(direction: Direction, stop_loss: Option<f64>, trailing_stop: Option<f64>) -> Position {
        Position {
            symbol: "X".into(),
            direction,
            quantity: 1.0,
            entry_price: 100.0,
            leverage: 2.0,
            margin: 50.0,
            stop_loss,
            take_profit: None,
            trailing_pct: None,
            trailing_stop,
            best_price: 100.0,
            liquidation_price: 50.4,
            mark_price: 100.0,
            opened_at: 0,
        }
    }

    #[test]
    fn effective_stop_is_the_tighter_and_a_tie_is_a_stop_loss() {
        let long = |sl, ts| position(Direction::Long, sl, ts).effective_stop();
        assert_eq!(long(Some(95.0), Some(97.0)), Some((97.0, FillReason::TrailingStop)));
        assert_eq!(long(Some(95.0), Some(93.0)), Some((95.0, FillReason::StopLoss)));
        assert_eq!(long(Some(95.0), Some(95.0)), Some((95.0, FillReason::StopLoss)));
        assert_eq!(long(None, Some(93.0)), Some((93.0, FillReason::TrailingStop)));
        assert_eq!(long(None, None), None);
        let short = |sl, ts| position(Direction::Short, sl, ts).effective_stop();
        assert_eq!(short(Some(105.0), Some(103.0)), Some((103.0, FillReason::TrailingStop)));
        assert_eq!(short(Some(105.0), Some(107.0)), Some((105.0, FillReason::StopLoss)));
    }

    #[test]
    fn liquidation_prices() {
        assert_eq!(liquidation_price(Direction::Long, 100.0, 2.0, 0.0), 50.0);
        assert_eq!(liquidation_price(Direction::Short, 100.0, 2.0, 0.0), 150.0);
        assert_eq!(liquidation_price(Direction::Long, 100.0, 1.0, 0.5), 50.0);
    }

    #[test]
    fn invalid_orders_are_ignored() {
        let bar =
            BarMark { symbol: "X".into(), open_time: 0, close_time: 1, open: None, high: 1.0, low: 1.0, close: 1.0 };
        let mut o = OrderIntent {
            id: "o".into(),
            decision_id: "d".into(),
            account: "a".into(),
            seq: 1,
            bar,
            intent: Intent::Open,
            direction: Direction::Long,
            side: Side::Buy,
            order_type: OrderType::Market,
            limit_price: None,
            quantity: 1.0,
            leverage: 1.0,
            stop_loss: None,
            take_profit: None,
            trailing_stop_pct: None,
            reason: String::new(),
            fill_sizing: None,
        };
        assert!(is_valid(&o));
        o.leverage = 0.0;
        assert!(!is_valid(&o));
        let mut book = PaperBook::new("a", 100.0, PaperConfig::default());
        assert!(book.execute(&o).is_empty());
        assert_eq!(book.open_positions(), 0);
        o.leverage = 1.0;
        o.quantity = f64::NAN;
        assert!(book.execute(&o).is_empty());
    }
}
