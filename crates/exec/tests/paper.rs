//! The paper broker against hand-computed numbers (default config: taker 0.04 %, maker 0.02 %,
//! slippage 1 bp, maintenance margin 0.4 %; starting balance 10 000).

use proptest::prelude::*;
use tradeflow_core::execution::{
    AccountUpdate, ExecEvent, Fill, FillReason, Liquidity, PositionStatus, PositionUpdate,
};
use tradeflow_core::order::{
    BarMark, Direction, Intent, Mark, OrderIntent, OrderType, RefusalReason, Rejection, RiskMessage, Side,
};
use tradeflow_core::signal::Action;
use tradeflow_exec::paper::{PaperBook, PaperConfig};

const SYM: &str = "BTCUSDT";

fn assert_near(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want}");
}

fn book() -> PaperBook {
    PaperBook::new("acc", 10_000.0, PaperConfig::default())
}

/// Bar `n` of SYM: closes at `n` minutes.
fn bar(n: i64, high: f64, low: f64, close: f64) -> BarMark {
    BarMark { symbol: SYM.into(), open_time: (n - 1) * 60_000, close_time: n * 60_000, open: None, high, low, close }
}

fn order(seq: u64, bar: BarMark, intent: Intent, direction: Direction, quantity: f64) -> OrderIntent {
    let side = match intent {
        Intent::Open => direction.opening_side(),
        _ => direction.closing_side(),
    };
    OrderIntent {
        id: format!("d{seq}/acc"),
        decision_id: format!("d{seq}"),
        account: "acc".into(),
        seq,
        bar,
        intent,
        direction,
        side,
        order_type: OrderType::Market,
        limit_price: None,
        quantity,
        leverage: 5.0,
        stop_loss: None,
        take_profit: None,
        trailing_stop_pct: None,
        reason: "test".into(),
        fill_sizing: None,
    }
}

fn open(seq: u64, bar: BarMark, direction: Direction, quantity: f64) -> OrderIntent {
    order(seq, bar, Intent::Open, direction, quantity)
}

fn mark(seq: u64, bar: BarMark) -> RiskMessage {
    RiskMessage::Mark(Mark {
        id: format!("d{seq}/acc"),
        decision_id: format!("d{seq}"),
        account: "acc".into(),
        seq,
        bar,
    })
}

fn fills(events: &[ExecEvent]) -> Vec<&Fill> {
    events.iter().filter_map(|e| if let ExecEvent::Fill(f) = e { Some(f) } else { None }).collect()
}

fn only_fill(events: &[ExecEvent]) -> &Fill {
    let f = fills(events);
    assert_eq!(f.len(), 1, "{events:#?}");
    f[0]
}

fn position_update(events: &[ExecEvent]) -> &PositionUpdate {
    let p: Vec<_> = events.iter().filter_map(|e| if let ExecEvent::Position(p) = e { Some(p) } else { None }).collect();
    assert_eq!(p.len(), 1, "{events:#?}");
    p[0]
}

fn account_update(events: &[ExecEvent]) -> &AccountUpdate {
    let a: Vec<_> = events.iter().filter_map(|e| if let ExecEvent::Account(a) = e { Some(a) } else { None }).collect();
    assert_eq!(a.len(), 1, "{events:#?}");
    a[0]
}

fn ids(events: &[ExecEvent]) -> Vec<&str> {
    events.iter().map(ExecEvent::id).collect()
}

/// A book with a 5× long of 10 opened on bar 1 (close 100 → entry 100.01).
fn long_book(stop_loss: Option<f64>, take_profit: Option<f64>, trailing: Option<f64>) -> PaperBook {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 99.5, 100.0), Direction::Long, 10.0);
    o.stop_loss = stop_loss;
    o.take_profit = take_profit;
    o.trailing_stop_pct = trailing;
    assert_eq!(fills(&b.apply(&RiskMessage::Order(o)).events).len(), 1);
    b
}

/// A book with a 5× short of 10 opened on bar 1 (close 100 → entry 99.99).
fn short_book(stop_loss: Option<f64>, take_profit: Option<f64>) -> PaperBook {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 99.5, 100.0), Direction::Short, 10.0);
    o.stop_loss = stop_loss;
    o.take_profit = take_profit;
    assert_eq!(fills(&b.apply(&RiskMessage::Order(o)).events).len(), 1);
    b
}

#[test]
fn long_market_open_fills_at_close_plus_slippage_with_taker_fee() {
    let mut b = book();
    let applied = b.apply(&RiskMessage::Order(open(1, bar(1, 100.5, 99.5, 100.0), Direction::Long, 10.0)));
    assert!(!applied.duplicate);
    assert_eq!(ids(&applied.events), ["d1/acc#1", "d1/acc/position/BTCUSDT", "d1/acc/account"]);

    let f = only_fill(&applied.events);
    assert_eq!((f.order_id.as_str(), f.account.as_str(), f.seq, f.symbol.as_str()), ("d1/acc", "acc", 1, SYM));
    assert_eq!(
        (f.side, f.direction, f.liquidity, f.reason),
        (Side::Buy, Direction::Long, Liquidity::Taker, FillReason::Entry)
    );
    assert_eq!((f.quantity, f.realized_pnl, f.time), (10.0, 0.0, 60_000));
    assert_near(f.price, 100.01, "entry price");
    assert_near(f.fee, 0.40004, "fee");

    let p = b.position(SYM).unwrap();
    assert_near(p.entry_price, 100.01, "entry");
    assert_near(p.margin, 200.02, "margin");
    assert_near(p.liquidation_price, 80.40804, "liquidation price");
    assert_eq!((p.mark_price, p.opened_at, p.leverage), (100.0, 60_000, 5.0));
    assert_near(p.best_price, 100.01, "best price");
    assert_near(p.unrealized_pnl(), -0.1, "unrealised");
    assert_near(p.notional(), 1000.0, "notional");

    assert_near(b.balance(), 9999.59996, "balance");
    assert_near(b.fees(), 0.40004, "fees");
    assert_eq!(b.realized_pnl(), 0.0);
    assert_near(b.unrealized_pnl(), -0.1, "book unrealised");
    assert_near(b.equity(), 9999.49996, "equity");
    assert_near(b.margin_used(), 200.02, "margin used");
    assert_near(b.available_margin(), 9799.47996, "available");
    assert_eq!((b.open_positions(), b.last_seq()), (1, 1));

    let pu = position_update(&applied.events);
    assert_eq!(
        (pu.status, pu.quantity, pu.direction, pu.seq, pu.time),
        (PositionStatus::Open, 10.0, Direction::Long, 1, 60_000)
    );
    assert_near(pu.liquidation_price.unwrap(), 80.40804, "update liquidation");
    let a = account_update(&applied.events);
    assert_eq!((a.open_positions, a.seq, a.time), (1, 1, 60_000));
    assert_near(a.balance, 9999.59996, "update balance");
    assert_near(a.equity, 9999.49996, "update equity");
}

#[test]
fn a_quiet_bar_moves_the_mark_and_emits_nothing() {
    let mut b = long_book(Some(95.0), Some(110.0), None);
    let applied = b.apply(&mark(2, bar(2, 104.0, 96.0, 103.0)));
    assert!(applied.events.is_empty() && !applied.duplicate);
    assert_eq!(b.position(SYM).unwrap().mark_price, 103.0);
    assert_near(b.unrealized_pnl(), 29.9, "unrealised at 103");
    assert_near(b.equity(), 10029.49996, "equity at 103");
    assert_eq!(b.last_seq(), 2);
}

#[test]
fn long_stop_loss_fills_at_the_stop_minus_slippage() {
    let mut b = long_book(Some(95.0), Some(110.0), None);
    let events = b.apply(&mark(2, bar(2, 101.0, 94.0, 96.0))).events;
    assert_eq!(ids(&events), ["d2/acc#1", "d2/acc/position/BTCUSDT", "d2/acc/account"]);
    let f = only_fill(&events);
    assert_eq!(
        (f.reason, f.side, f.direction, f.liquidity),
        (FillReason::StopLoss, Side::Sell, Direction::Long, Liquidity::Taker)
    );
    assert_eq!((f.order_id.as_str(), f.seq, f.time), ("d2/acc", 2, 120_000));
    assert_near(f.price, 94.9905, "exit price");
    assert_near(f.realized_pnl, -50.195, "realised");
    assert_near(f.fee, 0.379962, "exit fee");
    assert_near(b.fees(), 0.780002, "fees");
    assert_near(b.realized_pnl(), -50.195, "book realised");
    assert_near(b.balance(), 9949.024998, "balance");
    assert_eq!(b.equity(), b.balance());
    assert_eq!((b.open_positions(), b.margin_used()), (0, 0.0));
    let pu = position_update(&events);
    assert_eq!(
        (pu.status, pu.quantity, pu.unrealized_pnl, pu.liquidation_price),
        (PositionStatus::Closed, 0.0, 0.0, None)
    );
    assert_near(pu.mark_price, 94.9905, "closed at");
    assert_eq!(account_update(&events).open_positions, 0);
}

#[test]
fn long_take_profit_fills_at_the_take_profit() {
    let mut b = long_book(Some(95.0), Some(110.0), None);
    let f = only_fill(&b.apply(&mark(2, bar(2, 111.0, 99.0, 109.0))).events).clone();
    assert_eq!((f.reason, f.side, f.liquidity, f.price), (FillReason::TakeProfit, Side::Sell, Liquidity::Taker, 110.0));
    assert_near(f.realized_pnl, 99.9, "realised");
    assert_near(f.fee, 0.44, "fee");
    assert_near(b.balance(), 10099.05996, "balance");
    assert!(b.position(SYM).is_none());
}

#[test]
fn stop_and_take_profit_in_one_bar_stops_out() {
    let mut b = long_book(Some(95.0), Some(110.0), None);
    let f = only_fill(&b.apply(&mark(2, bar(2, 111.0, 94.0, 105.0))).events).clone();
    assert_eq!(f.reason, FillReason::StopLoss);
    assert_near(f.price, 94.9905, "exit price");
    assert_near(b.balance(), 9949.024998, "balance");
}

#[test]
fn trailing_stop_ratchets_on_later_bars_and_triggers() {
    let mut b = long_book(Some(95.0), None, Some(0.02));
    assert_near(b.position(SYM).unwrap().trailing_stop.unwrap(), 98.0098, "initial trailing");

    // Each bar's high moves the level; the level is checked on the next bar.
    fn trailing(b: &mut PaperBook, seq: u64, bar: BarMark, want: Option<f64>) {
        let events = b.apply(&mark(seq, bar)).events;
        match want {
            Some(level) => {
                assert_eq!(ids(&events), [format!("d{seq}/acc/position/BTCUSDT")], "{events:#?}");
                let pu = position_update(&events);
                assert_eq!(pu.status, PositionStatus::Open);
                assert_near(pu.trailing_stop.unwrap(), level, "trailing in update");
            }
            None => assert!(events.is_empty(), "{events:#?}"),
        }
    }
    trailing(&mut b, 2, bar(2, 102.0, 99.0, 101.0), Some(99.96));
    trailing(&mut b, 3, bar(3, 105.0, 101.0, 104.0), Some(102.9));
    trailing(&mut b, 4, bar(4, 104.0, 103.5, 103.8), None);
    assert_near(b.position(SYM).unwrap().trailing_stop.unwrap(), 102.9, "unchanged");
    trailing(&mut b, 5, bar(5, 108.0, 103.0, 107.0), Some(105.84));
    // Its own high (→ 107.8) would stop this bar out (low 105.9), but it only counts from the next.
    trailing(&mut b, 6, bar(6, 110.0, 105.9, 108.0), Some(107.8));
    assert_eq!(b.position(SYM).unwrap().best_price, 110.0);

    let events = b.apply(&mark(7, bar(7, 109.0, 107.0, 107.2))).events;
    let f = only_fill(&events);
    assert_eq!((f.reason, f.side), (FillReason::TrailingStop, Side::Sell));
    assert_near(f.price, 107.78922, "exit price");
    assert_near(f.realized_pnl, 77.7922, "realised");
    assert_near(f.fee, 0.43115688, "fee");
    assert_near(b.balance(), 10076.96100312, "balance");
    assert_eq!(b.open_positions(), 0);
}

#[test]
fn stop_loss_tighter_than_trailing_is_a_stop_loss() {
    // Trailing 10 % → 90.009; the stop loss at 95 is tighter.
    let mut b = long_book(Some(95.0), None, Some(0.1));
    let f = only_fill(&b.apply(&mark(2, bar(2, 100.0, 89.0, 92.0))).events).clone();
    assert_eq!(f.reason, FillReason::StopLoss);
    assert_near(f.price, 94.9905, "exit price");
}

#[test]
fn short_stop_loss_and_take_profit_are_mirrored() {
    let b0 = short_book(Some(105.0), Some(90.0));
    let p = b0.position(SYM).unwrap();
    assert_near(p.entry_price, 99.99, "short entry");
    assert_near(p.liquidation_price, 119.58804, "short liquidation");
    assert_near(b0.fees(), 0.39996, "entry fee");

    let mut b = b0.clone();
    let f = only_fill(&b.apply(&mark(2, bar(2, 106.0, 99.0, 104.0))).events).clone();
    assert_eq!((f.reason, f.side, f.direction), (FillReason::StopLoss, Side::Buy, Direction::Short));
    assert_near(f.price, 105.0105, "stop exit");
    assert_near(f.realized_pnl, -50.205, "stop realised");
    assert_near(f.fee, 0.420042, "stop fee");
    assert_near(b.balance(), 9948.974998, "stop balance");

    let mut b = b0.clone();
    let f = only_fill(&b.apply(&mark(2, bar(2, 101.0, 89.0, 91.0))).events).clone();
    assert_eq!((f.reason, f.side, f.price), (FillReason::TakeProfit, Side::Buy, 90.0));
    assert_near(f.realized_pnl, 99.9, "tp realised");
    assert_near(f.fee, 0.36, "tp fee");
    assert_near(b.balance(), 10099.14004, "tp balance");

    // Both in one bar: the stop.
    let mut b = b0;
    let f = only_fill(&b.apply(&mark(2, bar(2, 106.0, 89.0, 100.0))).events).clone();
    assert_eq!(f.reason, FillReason::StopLoss);
}

#[test]
fn short_trailing_stop_ratchets_down() {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 99.5, 100.0), Direction::Short, 10.0);
    o.trailing_stop_pct = Some(0.02);
    b.apply(&RiskMessage::Order(o));
    assert_near(b.position(SYM).unwrap().trailing_stop.unwrap(), 101.9898, "initial");
    let pu = position_update(&b.apply(&mark(2, bar(2, 100.0, 95.0, 96.0))).events).clone();
    assert_near(pu.trailing_stop.unwrap(), 96.9, "after low 95");
    let f = only_fill(&b.apply(&mark(3, bar(3, 97.0, 94.0, 96.5))).events).clone();
    assert_eq!((f.reason, f.side), (FillReason::TrailingStop, Side::Buy));
    assert_near(f.price, 96.90969, "exit = 96.9 × 1.0001");
}

#[test]
fn ten_x_long_is_liquidated_when_the_low_crosses_the_liquidation_price() {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 99.5, 100.0), Direction::Long, 10.0);
    o.leverage = 10.0;
    o.stop_loss = Some(85.0); // beyond the liquidation price: never reached
    b.apply(&RiskMessage::Order(o));
    let p = b.position(SYM).unwrap();
    assert_near(p.margin, 100.01, "margin");
    assert_near(p.liquidation_price, 90.40904, "liquidation price");

    assert!(b.apply(&mark(2, bar(2, 100.0, 90.5, 91.0))).events.is_empty());
    let events = b.apply(&mark(3, bar(3, 92.0, 90.0, 91.0))).events;
    let f = only_fill(&events);
    assert_eq!((f.reason, f.side, f.liquidity), (FillReason::Liquidation, Side::Sell, Liquidity::Taker));
    assert_near(f.price, 90.40904, "liquidated at");
    assert_near(f.realized_pnl, -96.0096, "realised = −margin + 0.4 % of 1000.1");
    assert_near(f.fee, 0.36163616, "fee");
    assert_near(b.balance(), 9903.22872384, "final balance");
    assert_eq!(b.open_positions(), 0);
}

#[test]
fn ten_x_short_liquidation_price() {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 99.5, 100.0), Direction::Short, 10.0);
    o.leverage = 10.0;
    b.apply(&RiskMessage::Order(o));
    assert_near(b.position(SYM).unwrap().liquidation_price, 109.58904, "short liquidation price");
    let f = only_fill(&b.apply(&mark(2, bar(2, 110.0, 100.0, 108.0))).events).clone();
    assert_eq!((f.reason, f.side), (FillReason::Liquidation, Side::Buy));
    assert_near(f.price, 109.58904, "liquidated at");
}

#[test]
fn limit_order_rests_then_fills_on_a_later_bar_as_maker() {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 97.0, 100.0), Direction::Long, 10.0);
    o.order_type = OrderType::Limit;
    o.limit_price = Some(98.0);
    o.stop_loss = Some(90.0);
    // The placing bar traded below 98, but the order was not there yet.
    assert!(b.apply(&RiskMessage::Order(o)).events.is_empty());
    assert_eq!(b.pending_order(SYM).unwrap().limit_price, Some(98.0));
    assert_eq!((b.open_positions(), b.balance()), (0, 10_000.0));

    assert!(b.apply(&mark(2, bar(2, 101.0, 98.5, 99.0))).events.is_empty());
    let events = b.apply(&mark(3, bar(3, 99.0, 97.5, 98.6))).events;
    assert_eq!(ids(&events), ["d3/acc#1", "d3/acc/position/BTCUSDT", "d3/acc/account"]);
    let f = only_fill(&events);
    assert_eq!((f.price, f.liquidity, f.reason, f.side), (98.0, Liquidity::Maker, FillReason::Entry, Side::Buy));
    assert_eq!((f.order_id.as_str(), f.time), ("d1/acc", 180_000));
    assert_near(f.fee, 0.196, "maker fee");
    assert!(b.pending_order(SYM).is_none());
    let p = b.position(SYM).unwrap();
    assert_eq!((p.entry_price, p.mark_price, p.opened_at, p.stop_loss), (98.0, 98.6, 180_000, Some(90.0)));
    assert_near(p.margin, 196.0, "margin");
    assert_near(b.balance(), 9999.804, "balance");
}

#[test]
fn a_new_limit_order_replaces_the_resting_one() {
    let mut b = book();
    let mut o = open(1, bar(1, 100.5, 99.5, 100.0), Direction::Long, 10.0);
    o.order_type = OrderType::Limit;
    o.limit_price = Some(98.0);
    b.apply(&RiskMessage::Order(o));
    let mut o = open(2, bar(2, 100.5, 99.5, 100.0), Direction::Long, 5.0);
    o.order_type = OrderType::Limit;
    o.limit_price = Some(95.0);
    b.apply(&RiskMessage::Order(o));
    assert_eq!(b.pending_orders().count(), 1);
    assert!(b.apply(&mark(3, bar(3, 99.0, 97.0, 98.0))).events.is_empty(), "98 no longer rests");
    let f = only_fill(&b.apply(&mark(4, bar(4, 97.0, 94.0, 95.0))).events).clone();
    assert_eq!((f.price, f.quantity, f.order_id.as_str()), (95.0, 5.0, "d2/acc"));
}

#[test]
fn adding_to_a_position_averages_the_entry() {
    let mut b = long_book(None, None, None);
    let events = b.apply(&RiskMessage::Order(open(2, bar(2, 110.5, 100.0, 110.0), Direction::Long, 10.0))).events;
    let f = only_fill(&events);
    assert_eq!((f.reason, f.quantity, f.realized_pnl), (FillReason::Entry, 10.0, 0.0));
    assert_near(f.price, 110.011, "second entry");
    let p = b.position(SYM).unwrap();
    assert_eq!((p.quantity, p.opened_at, p.leverage), (20.0, 60_000, 5.0));
    assert_near(p.entry_price, 105.0105, "average entry");
    assert_near(p.margin, 420.042, "margins add");
    assert_near(p.liquidation_price, 84.428442, "liquidation from the new entry");
    assert_near(p.unrealized_pnl(), 99.79, "unrealised at 110");
    assert_near(b.fees(), 0.840084, "fees");
    assert_near(b.balance(), 9999.159916, "balance");
    assert_eq!(position_update(&events).quantity, 20.0);
}

#[test]
fn reduce_closes_part_and_releases_margin_pro_rata() {
    let mut b = long_book(None, None, None);
    let events = b
        .apply(&RiskMessage::Order(order(2, bar(2, 110.5, 100.0, 110.0), Intent::Reduce, Direction::Long, 4.0)))
        .events;
    let f = only_fill(&events);
    assert_eq!((f.reason, f.side, f.quantity), (FillReason::Exit, Side::Sell, 4.0));
    assert_near(f.price, 109.989, "exit price");
    assert_near(f.realized_pnl, 39.916, "realised");
    assert_near(f.fee, 0.1759824, "fee");
    let p = b.position(SYM).unwrap();
    assert_eq!((p.quantity, p.mark_price), (6.0, 110.0));
    assert_near(p.entry_price, 100.01, "entry unchanged");
    assert_near(p.margin, 120.012, "margin left");
    assert_near(b.balance(), 10039.3399776, "balance");
    assert_near(b.unrealized_pnl(), 59.94, "unrealised");
    assert_eq!(position_update(&events).status, PositionStatus::Open);

    // Reducing by more than is held closes the rest.
    let events = b
        .apply(&RiskMessage::Order(order(3, bar(3, 110.5, 100.0, 110.0), Intent::Reduce, Direction::Long, 50.0)))
        .events;
    assert_eq!(only_fill(&events).quantity, 6.0);
    assert_eq!(position_update(&events).status, PositionStatus::Closed);
    assert_eq!(b.open_positions(), 0);
}

#[test]
fn close_without_a_position_does_nothing() {
    let mut b = book();
    let applied =
        b.apply(&RiskMessage::Order(order(1, bar(1, 101.0, 99.0, 100.0), Intent::Close, Direction::Long, 1.0)));
    assert!(applied.events.is_empty() && !applied.duplicate);
    assert_eq!((b.last_seq(), b.balance(), b.open_positions()), (1, 10_000.0, 0));

    // Nor does closing the other direction.
    let mut b = long_book(None, None, None);
    let before = b.clone();
    let events = b.execute(&order(2, bar(2, 101.0, 99.0, 100.0), Intent::Close, Direction::Short, 10.0));
    assert!(events.is_empty());
    assert_eq!(b.position(SYM), before.position(SYM));
}

#[test]
fn close_on_a_decision_and_emergency_close() {
    let mut b = long_book(None, None, None);
    let events =
        b.apply(&RiskMessage::Order(order(2, bar(2, 101.0, 99.0, 100.0), Intent::Close, Direction::Long, 10.0))).events;
    let f = only_fill(&events);
    assert_eq!((f.reason, f.quantity), (FillReason::Exit, 10.0));
    assert_near(f.price, 99.99, "exit price");
    assert_near(f.realized_pnl, -0.2, "realised");

    let mut b = long_book(None, None, None);
    let mut o = order(2, bar(2, 101.0, 99.0, 100.0), Intent::Close, Direction::Long, 10.0);
    o.reason = "emergency stop e1".into();
    assert_eq!(only_fill(&b.apply(&RiskMessage::Order(o)).events).reason, FillReason::EmergencyClose);
}

#[test]
fn duplicate_seq_changes_nothing() {
    let mut b = long_book(Some(95.0), None, None);
    let msg = mark(2, bar(2, 101.0, 99.0, 100.5));
    assert!(!b.apply(&msg).duplicate);
    let before = b.clone();
    for m in [
        msg,
        mark(1, bar(3, 101.0, 90.0, 91.0)),
        RiskMessage::Order(open(2, bar(3, 101.0, 90.0, 91.0), Direction::Short, 1.0)),
    ] {
        let applied = b.apply(&m);
        assert!(applied.duplicate && applied.events.is_empty());
        assert_eq!(b, before);
    }
}

#[test]
fn a_bar_already_marked_is_not_marked_again() {
    // Risk closes positions on an emergency stop with the symbol's last bar; the executor marks
    // that bar again before executing: it must not re-apply its range.
    let mut b = long_book(Some(95.0), None, Some(0.02));
    assert!(!b.apply(&mark(2, bar(2, 110.0, 100.5, 109.0))).events.is_empty()); // trailing → 107.8
    let before = b.clone();
    assert!(b.mark("again", 3, &bar(2, 110.0, 100.5, 109.0)).is_empty());
    assert!(b.mark("older", 3, &bar(1, 100.0, 90.0, 95.0)).is_empty());
    assert_eq!(b, before);
}

#[test]
fn one_cause_numbers_its_fills_and_reports_once() {
    // The order reverses the long: close (exit) then open the short, at the same price.
    let mut b = long_book(None, None, None);
    let events = b.apply(&RiskMessage::Order(open(2, bar(2, 121.0, 119.0, 120.0), Direction::Short, 10.0))).events;
    assert_eq!(ids(&events), ["d2/acc#1", "d2/acc#2", "d2/acc/position/BTCUSDT", "d2/acc/account"]);
    let f = fills(&events);
    assert_eq!((f[0].reason, f[0].direction, f[0].side), (FillReason::Exit, Direction::Long, Side::Sell));
    assert_eq!((f[1].reason, f[1].direction, f[1].side), (FillReason::Entry, Direction::Short, Side::Sell));
    assert_near(f[0].price, 119.988, "exit");
    assert_near(f[0].realized_pnl, 199.78, "realised");
    assert_eq!(f[0].price, f[1].price);
    assert_near(f[1].fee, 0.479952, "entry fee");
    let pu = position_update(&events);
    assert_eq!((pu.direction, pu.status), (Direction::Short, PositionStatus::Open));
    assert_near(pu.liquidation_price.unwrap(), 143.505648, "short liquidation");
    assert_near(b.margin_used(), 239.976, "margin");
    assert_near(b.balance(), 10198.420056, "balance");

    // A bar stops the short out and the order of the same message opens a long: still one batch.
    let mut b = short_book(Some(105.0), None);
    let events = b.apply(&RiskMessage::Order(open(2, bar(2, 106.0, 100.0, 104.0), Direction::Long, 1.0))).events;
    assert_eq!(ids(&events), ["d2/acc#1", "d2/acc#2", "d2/acc/position/BTCUSDT", "d2/acc/account"]);
    let f = fills(&events);
    assert_eq!((f[0].reason, f[1].reason), (FillReason::StopLoss, FillReason::Entry));
    assert_eq!(position_update(&events).direction, Direction::Long);
}

#[test]
fn serde_round_trip_gives_an_equal_book() {
    let mut b = long_book(Some(95.0), Some(130.0), Some(0.03));
    let eth = BarMark {
        symbol: "ETHUSDT".into(),
        open_time: 0,
        close_time: 60_000,
        open: None,
        high: 2010.0,
        low: 1990.0,
        close: 2000.0,
    };
    b.apply(&RiskMessage::Order(open(2, eth, Direction::Short, 0.5)));
    let mut l = order(3, bar(2, 104.0, 99.0, 103.0), Intent::Reduce, Direction::Long, 1.0);
    l.order_type = OrderType::Limit;
    l.limit_price = Some(108.0);
    b.apply(&RiskMessage::Order(l));
    assert_eq!((b.open_positions(), b.pending_orders().count()), (2, 1));

    let bytes = rmp_serde::to_vec_named(&b).unwrap();
    let mut back: PaperBook = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, b);
    let m = mark(4, bar(3, 109.0, 101.0, 108.5));
    assert_eq!(back.apply(&m), b.apply(&m));
    assert_eq!(back, b);
}

#[test]
fn config_validation_lists_every_bad_field() {
    assert_eq!(PaperConfig::default().validate(), Ok(()));
    let bad = PaperConfig {
        taker_fee: 0.02,
        maker_fee: -0.001,
        slippage_bps: 501.0,
        maintenance_margin_rate: 0.5,
        ..PaperConfig::default()
    };
    let problems = bad.validate().unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
    for (p, field) in problems.iter().zip(["taker_fee", "maker_fee", "slippage_bps", "maintenance_margin_rate"]) {
        assert!(p.starts_with(&format!("{field}: ")), "{p}");
    }
    let nan = PaperConfig { slippage_bps: f64::NAN, ..PaperConfig::default() };
    assert_eq!(nan.validate().unwrap_err().len(), 1);
    let edges = PaperConfig {
        taker_fee: 0.01,
        maker_fee: 0.0,
        slippage_bps: 500.0,
        maintenance_margin_rate: 0.0,
        ..PaperConfig::default()
    };
    assert_eq!(edges.validate(), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Property: over random bar paths and orders, the money adds up, events are well formed, and
// mark-then-execute (as risk's shadow calls it) leaves the same book as apply.

#[derive(Debug, Clone)]
enum Step {
    Mark,
    Reject,
    Order {
        intent: Intent,
        long: bool,
        qty: f64,
        leverage: f64,
        sl: Option<f64>,
        tp: Option<f64>,
        trail: Option<f64>,
        limit: Option<f64>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let order = (
        prop_oneof![3 => Just(Intent::Open), 1 => Just(Intent::Close), 1 => Just(Intent::Reduce)],
        any::<bool>(),
        0.1f64..5.0,
        1.0f64..25.0,
        proptest::option::of(0.005f64..0.15),
        proptest::option::of(0.005f64..0.3),
        proptest::option::of(0.005f64..0.1),
        proptest::option::weighted(0.25, -0.05f64..0.05),
    )
        .prop_map(|(intent, long, qty, leverage, sl, tp, trail, limit)| Step::Order {
            intent,
            long,
            qty,
            leverage,
            sl,
            tp,
            trail,
            limit,
        });
    prop_oneof![3 => Just(Step::Mark), 1 => Just(Step::Reject), 3 => order]
}

/// (symbol index, close move, high wick, low wick, step)
type Msg = (usize, f64, f64, f64, Step);

fn messages() -> impl Strategy<Value = Vec<Msg>> {
    proptest::collection::vec((0usize..2, -0.06f64..0.06, 0.0f64..0.04, 0.0f64..0.04, step()), 1..80)
}

fn build(msgs: &[Msg]) -> Vec<RiskMessage> {
    let symbols = ["BTCUSDT", "ETHUSDT"];
    let mut price = [100.0f64, 2000.0];
    let mut out = Vec::new();
    for (i, (s, mv, up, down, step)) in msgs.iter().enumerate() {
        let seq = i as u64 + 1;
        let open = price[*s];
        let close = open * (1.0 + mv);
        price[*s] = close;
        let bar = BarMark {
            symbol: symbols[*s].into(),
            open_time: seq as i64 * 60_000 - 60_000,
            close_time: seq as i64 * 60_000,
            open: Some(open),
            high: open.max(close) * (1.0 + up),
            low: open.min(close) * (1.0 - down),
            close,
        };
        let id = format!("d{seq}/acc");
        out.push(match step {
            Step::Mark => {
                RiskMessage::Mark(Mark { id, decision_id: format!("d{seq}"), account: "acc".into(), seq, bar })
            }
            Step::Reject => RiskMessage::Rejected(Rejection {
                id,
                decision_id: format!("d{seq}"),
                account: "acc".into(),
                seq,
                bar,
                action: Action::Long,
                reason: RefusalReason::Paused,
            }),
            Step::Order { intent, long, qty, leverage, sl, tp, trail, limit } => {
                let direction = if *long { Direction::Long } else { Direction::Short };
                let sign = direction.sign();
                let mut o = order(seq, bar, *intent, direction, *qty);
                o.leverage = *leverage;
                o.stop_loss = sl.map(|d| close * (1.0 - sign * d));
                o.take_profit = tp.map(|d| close * (1.0 + sign * d));
                o.trailing_stop_pct = *trail;
                if let Some(off) = limit {
                    o.order_type = OrderType::Limit;
                    o.limit_price = Some(close * (1.0 + off));
                }
                RiskMessage::Order(o)
            }
        });
    }
    out
}

fn check_batch(cause: &RiskMessage, events: &[ExecEvent], book: &PaperBook) {
    let n_fills = fills(events).len();
    let mut expected = (1..=n_fills).map(|n| format!("{}#{n}", cause.id())).collect::<Vec<_>>();
    let positions: Vec<_> =
        events.iter().filter_map(|e| if let ExecEvent::Position(p) = e { Some(p) } else { None }).collect();
    expected.extend(positions.iter().map(|p| format!("{}/position/{}", cause.id(), p.symbol)));
    if n_fills > 0 {
        expected.push(format!("{}/account", cause.id()));
    }
    assert_eq!(ids(events), expected);
    assert!(positions.len() <= 1, "one symbol per message");
    for e in events {
        match e {
            ExecEvent::Fill(f) => {
                assert_eq!((f.seq, f.time, f.account.as_str()), (cause.seq(), cause.bar().close_time, "acc"));
                assert!(f.quantity > 0.0 && f.price > 0.0 && f.fee >= 0.0 && f.realized_pnl.is_finite());
                if f.reason == FillReason::Entry {
                    assert_eq!(f.realized_pnl, 0.0);
                }
            }
            ExecEvent::Position(p) => {
                let now = book.position(&p.symbol);
                assert_eq!(p.status == PositionStatus::Open, now.is_some());
                assert_eq!(p.quantity, now.map_or(0.0, |n| n.quantity));
            }
            ExecEvent::Account(a) => assert_eq!(*a, book.snapshot(cause.id(), cause.seq(), cause.bar().close_time)),
        }
    }
}

proptest! {
    #[test]
    fn balance_is_start_plus_realised_minus_fees(msgs in messages()) {
        let msgs = build(&msgs);
        let mut book = book();
        let mut shadow = book.clone();
        let (mut pnl, mut fee) = (0.0f64, 0.0f64);
        for msg in &msgs {
            let applied = book.apply(msg);
            prop_assert!(!applied.duplicate);
            check_batch(msg, &applied.events, &book);
            for f in fills(&applied.events) {
                pnl += f.realized_pnl;
                fee += f.fee;
            }
            prop_assert_eq!(book.realized_pnl(), pnl);
            prop_assert_eq!(book.fees(), fee);
            prop_assert_eq!(book.balance(), 10_000.0 + pnl - fee);
            prop_assert!(book.equity().is_finite());
            prop_assert!(book.available_margin() >= 0.0);
            for p in book.positions() {
                prop_assert!(p.quantity > 0.0 && p.margin > 0.0 && p.entry_price > 0.0, "{:?}", p);
            }

            // Risk's shadow: mark, then execute, separately. Same fills, same book.
            let mut shadow_fills = fills(&shadow.mark(msg.id(), msg.seq(), msg.bar())).into_iter().cloned().collect::<Vec<_>>();
            if let RiskMessage::Order(o) = msg {
                shadow_fills.extend(fills(&shadow.execute(o)).into_iter().cloned());
            }
            let key = |f: &Fill| (f.price, f.quantity, f.fee, f.realized_pnl, f.reason, f.side);
            prop_assert_eq!(shadow_fills.iter().map(key).collect::<Vec<_>>(), fills(&applied.events).into_iter().map(key).collect::<Vec<_>>());
            prop_assert_eq!(shadow.balance(), book.balance());
            prop_assert_eq!(shadow.positions().collect::<Vec<_>>(), book.positions().collect::<Vec<_>>());
            prop_assert_eq!(shadow.pending_orders().collect::<Vec<_>>(), book.pending_orders().collect::<Vec<_>>());

            // A redelivery changes nothing.
            let before = book.clone();
            let again = book.apply(msg);
            prop_assert!(again.duplicate && again.events.is_empty());
            prop_assert_eq!(&book, &before);
        }
        let back: PaperBook = rmp_serde::from_slice(&rmp_serde::to_vec_named(&book).unwrap()).unwrap();
        prop_assert_eq!(back, book);
    }
}
