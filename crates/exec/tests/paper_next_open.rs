//! The paper broker's backtesting.py options against hand-computed numbers: `fill_at =
//! "next_open"`, `lot_step`, and all-in sizing at fill time (`OrderIntent::fill_sizing`).

use tradeflow_core::execution::{ExecEvent, Fill, FillReason};
use tradeflow_core::order::{BarMark, Direction, FillSizing, Intent, Mark, OrderIntent, OrderType, RiskMessage};
use tradeflow_exec::paper::{FillAt, PaperBook, PaperConfig};

const SYM: &str = "BTCUSD";
const HOUR: i64 = 3_600_000;

/// backtesting.py's conventions: commission 0.001 on both legs, no spread, next-open fills,
/// units of 1e-8.
fn reference_config() -> PaperConfig {
    PaperConfig {
        taker_fee: 0.001,
        maker_fee: 0.001,
        slippage_bps: 0.0,
        fill_at: FillAt::NextOpen,
        lot_step: Some(1e-8),
        ..PaperConfig::default()
    }
}

/// Bar `n` (1 h): open time (n − 1) h, close time n h.
fn bar(n: i64, open: Option<f64>, high: f64, low: f64, close: f64) -> BarMark {
    BarMark { symbol: SYM.into(), open_time: (n - 1) * HOUR, close_time: n * HOUR, open, high, low, close }
}

fn order(seq: u64, bar: BarMark, intent: Intent, quantity: f64) -> OrderIntent {
    let direction = Direction::Long;
    OrderIntent {
        id: format!("d{seq}/acc"),
        decision_id: format!("d{seq}"),
        account: "acc".into(),
        seq,
        bar,
        intent,
        direction,
        side: if intent == Intent::Open { direction.opening_side() } else { direction.closing_side() },
        order_type: OrderType::Market,
        limit_price: None,
        quantity,
        leverage: 1.0,
        stop_loss: None,
        take_profit: None,
        trailing_stop_pct: None,
        reason: "test".into(),
        fill_sizing: None,
    }
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

#[test]
fn next_open_holds_market_orders_for_the_next_bars_open() {
    let mut b = PaperBook::new("acc", 10_000.0, reference_config());
    // Decided on bar 1 (close 100): nothing fills yet, the order is held.
    let entry = order(1, bar(1, Some(99.0), 101.0, 98.0, 100.0), Intent::Open, 2.0);
    let applied = b.apply(&RiskMessage::Order(entry));
    assert!(applied.events.is_empty(), "{:#?}", applied.events);
    assert_eq!(b.held_orders(SYM).len(), 1);
    assert!(b.has_business(SYM) && b.position(SYM).is_none());
    assert_eq!(b.balance(), 10_000.0);

    // Bar 2 opens at 102: the entry fills there, then the bar marks the position at its close.
    let applied = b.apply(&mark(2, bar(2, Some(102.0), 106.0, 101.0, 105.0)));
    let f = fills(&applied.events);
    assert_eq!(f.len(), 1, "{:#?}", applied.events);
    assert_eq!(
        (f[0].order_id.as_str(), f[0].reason, f[0].price, f[0].quantity),
        ("d1/acc", FillReason::Entry, 102.0, 2.0)
    );
    assert_eq!(f[0].time, 2 * HOUR, "a fill on bar 2 carries bar 2's close time");
    assert_eq!(f[0].fee, 2.0 * 102.0 * 0.001);
    let p = b.position(SYM).unwrap();
    assert_eq!((p.entry_price, p.mark_price, p.opened_at), (102.0, 105.0, 2 * HOUR));
    assert!(b.held_orders(SYM).is_empty());

    // An exit decided on bar 3 fills at bar 4's open.
    let exit = order(3, bar(3, Some(105.0), 108.0, 104.0, 107.0), Intent::Close, 0.0);
    assert!(fills(&b.apply(&RiskMessage::Order(exit)).events).is_empty());
    assert!(b.position(SYM).is_some(), "still open until the next open");
    let applied = b.apply(&mark(4, bar(4, Some(107.5), 109.0, 107.0, 108.0)));
    let f = fills(&applied.events);
    assert_eq!((f.len(), f[0].reason, f[0].price, f[0].time), (1, FillReason::Exit, 107.5, 4 * HOUR));
    assert!(b.position(SYM).is_none() && !b.has_business(SYM));
    // pnl = 2 × (107.5 − 102) − fees on both legs.
    let want = 10_000.0 + 2.0 * 5.5 - 2.0 * 102.0 * 0.001 - 2.0 * 107.5 * 0.001;
    assert!((b.balance() - want).abs() < 1e-9, "{} vs {want}", b.balance());
}

#[test]
fn a_held_entry_fills_before_the_bars_stop_is_checked() {
    let mut b = PaperBook::new("acc", 10_000.0, reference_config());
    let mut entry = order(1, bar(1, Some(100.0), 101.0, 99.0, 100.0), Intent::Open, 1.0);
    entry.stop_loss = Some(97.0);
    b.apply(&RiskMessage::Order(entry));
    // Bar 2 opens at 100 and trades down to 96: filled at the open, then stopped at 97 on the
    // same bar.
    let applied = b.apply(&mark(2, bar(2, Some(100.0), 100.5, 96.0, 96.5)));
    let f = fills(&applied.events);
    assert_eq!(
        f.iter().map(|f| (f.reason, f.price)).collect::<Vec<_>>(),
        [(FillReason::Entry, 100.0), (FillReason::StopLoss, 97.0)]
    );
    assert!(b.position(SYM).is_none());
}

#[test]
fn a_bar_without_its_open_fills_held_orders_at_the_decision_close() {
    let mut b = PaperBook::new("acc", 10_000.0, reference_config());
    b.apply(&RiskMessage::Order(order(1, bar(1, None, 101.0, 99.0, 100.0), Intent::Open, 1.0)));
    let applied = b.apply(&mark(2, bar(2, None, 103.0, 100.0, 102.0)));
    assert_eq!(fills(&applied.events)[0].price, 100.0);
}

#[test]
fn close_fills_are_unchanged_by_default() {
    // The default config fills at the order's close at once (with slippage), as before.
    let mut b = PaperBook::new("acc", 10_000.0, PaperConfig::default());
    let applied = b.apply(&RiskMessage::Order(order(1, bar(1, Some(99.0), 101.0, 98.0, 100.0), Intent::Open, 1.0)));
    assert_eq!(fills(&applied.events)[0].price, 100.0 * (1.0 + 1e-4));
    assert!(b.held_orders(SYM).is_empty());
}

#[test]
fn lot_step_floors_quantities() {
    let config =
        PaperConfig { fill_at: FillAt::Close, slippage_bps: 0.0, lot_step: Some(1e-8), ..PaperConfig::default() };
    let mut b = PaperBook::new("acc", 10_000.0, config.clone());
    let applied = b.apply(&RiskMessage::Order(order(1, bar(1, None, 101.0, 99.0, 100.0), Intent::Open, 1.234_567_899)));
    assert_eq!(fills(&applied.events)[0].quantity, 123_456_789.0 * 1e-8);
    // A reduce is floored too; less than a step does nothing.
    let reduce = order(2, bar(2, None, 101.0, 99.0, 100.0), Intent::Reduce, 0.5e-8);
    assert!(fills(&b.apply(&RiskMessage::Order(reduce)).events).is_empty());
    let reduce = order(3, bar(3, None, 101.0, 99.0, 100.0), Intent::Reduce, 0.2);
    assert_eq!(fills(&b.apply(&RiskMessage::Order(reduce)).events)[0].quantity, 0.2);
    // A whole number of steps in decimal keeps its last step despite binary rounding.
    let tenth = PaperConfig { lot_step: Some(0.1), ..config.clone() };
    assert_eq!(0.3_f64 / 0.1, 2.9999999999999996);
    assert!((tenth.floor_to_lot(0.3) - 0.3).abs() < 1e-15);
    assert_eq!(tenth.floor_to_lot(0.29), 0.2);
    assert_eq!(PaperConfig::default().floor_to_lot(1.234_567_899), 1.234_567_899, "no lot step: unchanged");
    // Not a positive number: refused with its field.
    let bad = PaperConfig { lot_step: Some(0.0), ..config };
    assert_eq!(bad.validate().unwrap_err(), ["lot_step: must be a positive number, got 0"]);
}

#[test]
fn all_in_is_sized_by_the_book_at_the_fill_price() {
    // backtesting.py's first SMA(10)/SMA(20) trade on the bundled BTC/USD hours: 10,000 cash
    // all in at the open 2449.6 with commission 0.001 buys 4.07822092 (units of 1e-8).
    let mut b = PaperBook::new("acc", 10_000.0, reference_config());
    let mut entry = order(1, bar(1, Some(2450.0), 2460.0, 2440.0, 2455.0), Intent::Open, 4.0);
    entry.fill_sizing = Some(FillSizing::AllIn);
    b.apply(&RiskMessage::Order(entry));
    let applied = b.apply(&mark(2, bar(2, Some(2449.6), 2450.03, 2431.65, 2440.87)));
    let f = fills(&applied.events);
    assert_eq!((f[0].price, f[0].quantity), (2449.6, 4.078_220_92));
    let want = (10_000.0_f64 / (2449.6 * 1.001) / 1e-8).floor() * 1e-8;
    assert_eq!(f[0].quantity, want);
    // The whole balance is committed: what is left cannot buy another unit.
    let left = b.balance() - f[0].quantity * 2449.6;
    assert!((0.0..2449.6 * 1.001 * 1e-8 + 1e-9).contains(&left), "left {left}");
    assert_eq!(b.all_in_quantity(2449.6, 1.0), 0.0, "nothing is available any more");
}

#[test]
fn a_book_with_held_orders_round_trips_through_serde() {
    let mut b = PaperBook::new("acc", 10_000.0, reference_config());
    b.apply(&RiskMessage::Order(order(1, bar(1, Some(99.0), 101.0, 98.0, 100.0), Intent::Open, 1.0)));
    let back: PaperBook = rmp_serde::from_slice(&rmp_serde::to_vec_named(&b).unwrap()).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.held_orders(SYM).len(), 1);
}
