//! Risk scenarios: one per refusal reason, the circuit breaker, the emergency stop, sizing, and
//! checkpoint/restore. Prices are chosen so that every expected number is computed by hand.

use std::sync::Arc;

use tradeflow_core::control::{Command, ControlCommand, ControlState};
use tradeflow_core::decision::Decision;
use tradeflow_core::order::{Direction, Intent, RefusalReason, RiskMessage};
use tradeflow_core::signal::Action;
use tradeflow_risk::{AccountConfig, RiskStage, Sizing};

const H: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % (24 * H); // midnight UTC

fn decision(symbol: &str, hour: i64, action: Action, close: f64) -> Decision {
    tradeflow_testkit::flat_decision("p", symbol, T0 + hour * H, action, close)
}

/// A paper account without fees or slippage, so that PnL is plain arithmetic.
fn account(id: &str) -> AccountConfig {
    let mut a = AccountConfig::paper(id, "p", 10_000.0);
    a.paper.taker_fee = 0.0;
    a.paper.maker_fee = 0.0;
    a.paper.slippage_bps = 0.0;
    a
}

fn stage(accounts: Vec<AccountConfig>) -> RiskStage {
    RiskStage::new(Arc::new(accounts))
}

fn only(out: tradeflow_risk::RiskOutput) -> RiskMessage {
    assert_eq!(out.messages.len(), 1, "{:?}", out.messages);
    out.messages.into_iter().next().unwrap()
}

fn refusal(m: RiskMessage) -> RefusalReason {
    match m {
        RiskMessage::Rejected(r) => r.reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn quantity(m: &RiskMessage) -> f64 {
    match m {
        RiskMessage::Order(o) => o.quantity,
        other => panic!("expected an order, got {other:?}"),
    }
}

fn refused_with(cfg: AccountConfig, control: &ControlState, d: Decision) -> RefusalReason {
    refusal(only(stage(vec![cfg]).on_decision(&d, control)))
}

fn none() -> ControlState {
    ControlState::default()
}

fn control(cmds: &[Command]) -> ControlState {
    let mut s = ControlState::default();
    for (i, c) in cmds.iter().enumerate() {
        s.apply(&ControlCommand::new(c.clone(), "test", None, i as i64));
    }
    s
}

#[test]
fn an_approved_entry_is_sized_and_numbered() {
    let mut s = stage(vec![account("a")]);
    let m = only(s.on_decision(&decision("BTC", 0, Action::Long, 100.0), &none()));
    let RiskMessage::Order(o) = &m else { panic!("{m:?}") };
    // Fixed fraction 0.1 of 10,000 at 100 → 10 units.
    assert_eq!((o.intent, o.direction, o.quantity, o.seq), (Intent::Open, Direction::Long, 10.0, 1));
    assert_eq!(o.id, format!("csv:BTC:1h:{T0}/p/a"));
    // Same direction again: nothing to do, the bar is still marked.
    assert!(matches!(only(s.on_decision(&decision("BTC", 1, Action::Long, 110.0), &none())), RiskMessage::Mark(_)));
    // Opposite: the position is closed.
    let m = only(s.on_decision(&decision("BTC", 2, Action::Short, 120.0), &none()));
    let RiskMessage::Order(o) = &m else { panic!("{m:?}") };
    assert_eq!((o.intent, o.direction, o.quantity, o.seq), (Intent::Close, Direction::Long, 10.0, 3));
    let v = s.view("a").unwrap();
    assert_eq!(v.balance, 10_200.0, "10 units × (120 − 100)");
    // A redelivered decision is ignored.
    assert!(s.on_decision(&decision("BTC", 2, Action::Short, 120.0), &none()).messages.is_empty());
}

#[test]
fn trading_disabled_by_config_and_by_command() {
    let mut a = account("a");
    a.trading_enabled = false;
    assert_eq!(refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)), RefusalReason::TradingDisabled);
    let off = control(&[Command::SetTrading { account: "a".into(), enabled: false }]);
    assert_eq!(
        refused_with(account("a"), &off, decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::TradingDisabled
    );
}

#[test]
fn paused_refuses_entries() {
    let c = control(&[Command::Pause]);
    assert_eq!(refused_with(account("a"), &c, decision("BTC", 0, Action::Long, 100.0)), RefusalReason::Paused);
    let c = control(&[Command::Pause, Command::Resume]);
    assert!(matches!(
        only(stage(vec![account("a")]).on_decision(&decision("BTC", 0, Action::Long, 100.0), &c)),
        RiskMessage::Order(_)
    ));
}

#[test]
fn shorting_disabled() {
    let mut a = account("a");
    a.allow_short = false;
    assert_eq!(refused_with(a, &none(), decision("BTC", 0, Action::Short, 100.0)), RefusalReason::ShortingDisabled);
}

#[test]
fn confidence_below_minimum() {
    let mut a = account("a");
    a.risk.min_confidence = 0.9;
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::ConfidenceBelowMinimum { confidence: 0.8, minimum: 0.9 }
    );
}

#[test]
fn stop_loss_required() {
    let mut a = account("a");
    a.risk.stop_loss_required = true;
    let mut d = decision("BTC", 0, Action::Long, 100.0);
    assert_eq!(refused_with(a.clone(), &none(), d.clone()), RefusalReason::StopLossRequired);
    // A stop on the wrong side of the price is no stop.
    d.stop_loss = Some(101.0);
    assert_eq!(refused_with(a.clone(), &none(), d.clone()), RefusalReason::StopLossRequired);
    d.stop_loss = Some(95.0);
    assert!(matches!(only(stage(vec![a]).on_decision(&d, &none())), RiskMessage::Order(_)));
}

#[test]
fn max_open_positions() {
    let mut a = account("a");
    a.risk.max_open_positions = 1;
    let mut s = stage(vec![a]);
    assert!(matches!(only(s.on_decision(&decision("BTC", 0, Action::Long, 100.0), &none())), RiskMessage::Order(_)));
    assert_eq!(
        refusal(only(s.on_decision(&decision("ETH", 0, Action::Long, 100.0), &none()))),
        RefusalReason::MaxOpenPositions { open: 1, max: 1 }
    );
}

#[test]
fn max_position_notional_and_pct_of_equity() {
    let mut a = account("a");
    a.risk.max_position_notional = Some(500.0);
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::MaxPositionNotional { notional: 1_000.0, max: 500.0 }
    );
    let mut a = account("a");
    a.sizing = Sizing::FixedFraction { fraction: 0.5 };
    a.risk.max_position_pct_of_equity = 0.25;
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::MaxPositionPctOfEquity { pct: 0.5, max: 0.25 }
    );
}

#[test]
fn max_leverage_and_margin() {
    let mut a = account("a");
    a.sizing = Sizing::FixedFraction { fraction: 3.0 };
    a.leverage = 5.0;
    a.risk.max_position_pct_of_equity = 10.0;
    a.risk.max_leverage = 2.0;
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::MaxLeverage { requested: 3.0, max: 2.0 }
    );
    let mut a = account("a");
    a.sizing = Sizing::FixedFraction { fraction: 2.0 };
    a.risk.max_position_pct_of_equity = 10.0;
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::InsufficientMargin { required: 20_000.0, available: 10_000.0 }
    );
}

#[test]
fn max_symbol_exposure() {
    let mut a = account("a");
    a.risk.max_symbol_exposure = Some(800.0);
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::MaxSymbolExposure { exposure: 1_000.0, max: 800.0 }
    );
}

#[test]
fn size_too_small() {
    let mut a = account("a");
    a.starting_balance = 10.0;
    assert_eq!(
        refused_with(a, &none(), decision("BTC", 0, Action::Long, 100.0)),
        RefusalReason::SizeTooSmall { quantity: 0.01 }
    );
}

#[test]
fn daily_loss_limit_then_a_new_day() {
    let mut a = account("a");
    a.sizing = Sizing::FixedFraction { fraction: 1.0 };
    // Margin to spare for the second position.
    a.leverage = 5.0;
    let mut s = stage(vec![a]);
    // 100 units of BTC at 100; ETH is the symbol we then try to enter.
    assert!(matches!(only(s.on_decision(&decision("BTC", 0, Action::Long, 100.0), &none())), RiskMessage::Order(_)));
    // BTC at 94: equity 9,400, a 600 loss ≥ 5 % of 10,000.
    assert!(matches!(only(s.on_decision(&decision("BTC", 1, Action::Long, 94.0), &none())), RiskMessage::Mark(_)));
    assert_eq!(
        refusal(only(s.on_decision(&decision("ETH", 1, Action::Long, 50.0), &none()))),
        RefusalReason::DailyLossLimit { loss: 600.0, limit: 500.0 }
    );
    // The next UTC day starts from 9,400: entries are allowed again.
    assert!(matches!(only(s.on_decision(&decision("BTC", 24, Action::Long, 94.0), &none())), RiskMessage::Mark(_)));
    assert!(matches!(only(s.on_decision(&decision("ETH", 24, Action::Long, 50.0), &none())), RiskMessage::Order(_)));
}

#[test]
fn the_circuit_breaker_trips_halts_and_resets() {
    let mut a = account("a");
    a.sizing = Sizing::FixedFraction { fraction: 1.0 };
    a.risk.max_drawdown = 0.1;
    a.risk.daily_loss_limit = 1.0;
    let mut s = stage(vec![a]);
    assert!(matches!(only(s.on_decision(&decision("BTC", 0, Action::Long, 100.0), &none())), RiskMessage::Order(_)));
    // 88: equity 8,800 = 12 % below the 10,000 peak → trips; the close of the position is an exit, allowed.
    let out = s.on_decision(&decision("BTC", 1, Action::Short, 88.0), &none());
    assert_eq!(out.alerts.len(), 1, "{:?}", out.alerts);
    assert_eq!(out.alerts[0].kind, "circuit_breaker");
    assert!(out.alerts[0].message.contains("12.00 %"), "{}", out.alerts[0].message);
    assert!(matches!(&out.messages[0], RiskMessage::Order(o) if o.intent == Intent::Close));
    assert!(s.view("a").unwrap().halted);
    // Halted: entries refused, days later too.
    let r = refusal(only(s.on_decision(&decision("BTC", 50, Action::Long, 100.0), &none())));
    assert!(matches!(r, RefusalReason::Halted { max_drawdown, .. } if max_drawdown == 0.1), "{r:?}");
    // An operator reset lifts it.
    let reset = control(&[Command::ResetAccount { account: "a".into() }]);
    let out = s.on_decision(&decision("BTC", 51, Action::Long, 100.0), &reset);
    assert_eq!(out.alerts.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["reset"]);
    assert!(matches!(&out.messages[0], RiskMessage::Order(o) if o.intent == Intent::Open));
}

#[test]
fn cooldown_after_consecutive_losses() {
    let mut a = account("a");
    a.risk.cooldown_after_losses = 2;
    a.risk.cooldown_ms = 10 * H;
    let mut s = stage(vec![a]);
    let steps = [(0, Action::Long, 100.0), (1, Action::Short, 95.0), (2, Action::Long, 95.0), (3, Action::Short, 90.0)];
    for (h, action, price) in steps {
        assert!(matches!(only(s.on_decision(&decision("BTC", h, action, price), &none())), RiskMessage::Order(_)));
    }
    assert_eq!(s.view("a").unwrap().consecutive_losses, 2);
    // Closed at the close of hour 3 (T0 + 4 h): cooling down until T0 + 14 h.
    assert_eq!(
        refusal(only(s.on_decision(&decision("BTC", 4, Action::Long, 90.0), &none()))),
        RefusalReason::Cooldown { consecutive_losses: 2, until: T0 + 14 * H }
    );
    assert!(matches!(only(s.on_decision(&decision("BTC", 14, Action::Long, 90.0), &none())), RiskMessage::Order(_)));
}

#[test]
fn emergency_stop_halts_every_account_and_closes_positions() {
    let mut s = stage(vec![account("a"), account("b")]);
    let out = s.on_decision(&decision("BTC", 0, Action::Long, 100.0), &none());
    assert_eq!(out.messages.len(), 2, "both accounts follow profile p");
    let stop = control(&[Command::EmergencyStop { close_positions: true }]);
    let out = s.on_control(&stop, 0);
    let closes: Vec<_> = out
        .messages
        .iter()
        .map(|m| match m {
            RiskMessage::Order(o) => (o.account.clone(), o.intent, o.quantity, o.seq),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(closes, [("a".to_string(), Intent::Close, 10.0, 2), ("b".to_string(), Intent::Close, 10.0, 2)]);
    assert_eq!(out.alerts.len(), 2);
    // Applied once.
    assert!(s.on_control(&stop, 1).messages.is_empty());
    // Every account refuses entries.
    let out = s.on_decision(&decision("BTC", 1, Action::Long, 100.0), &stop);
    assert_eq!(out.messages.len(), 2);
    for m in out.messages {
        assert_eq!(refusal(m), RefusalReason::EmergencyStop);
    }
}

#[test]
fn fixed_risk_and_kelly_sizing() {
    let mut a = account("a");
    a.sizing = Sizing::FixedRisk { risk: 0.01 };
    a.risk.stop_loss_required = true;
    let mut d = decision("BTC", 0, Action::Long, 100.0);
    d.stop_loss = Some(98.0);
    // 1 % of 10,000 = 100 at risk over a 2.0 stop distance → 50 units.
    assert_eq!(quantity(&only(stage(vec![a]).on_decision(&d, &none()))), 50.0);

    let mut a = account("a");
    a.sizing = Sizing::Kelly { cap: 0.25, payoff: 1.5 };
    let mut d = decision("BTC", 0, Action::Long, 100.0);
    d.confidence = 0.6;
    d.stop_loss = Some(98.0);
    d.take_profit = Some(104.0);
    // b = 4 / 2 = 2 → Kelly 0.6 − 0.4 / 2 = 0.4, capped at 0.25 → 2,500 notional → 25 units.
    assert_eq!(quantity(&only(stage(vec![a.clone()]).on_decision(&d, &none()))), 25.0);
    d.confidence = 0.3;
    // 0.3 − 0.7 / 2 < 0: nothing to size.
    assert_eq!(refusal(only(stage(vec![a]).on_decision(&d, &none()))), RefusalReason::SizeTooSmall { quantity: 0.0 });
}

#[test]
fn a_restored_stage_continues_exactly() {
    let path: Vec<Decision> = (0..40)
        .map(|h| {
            let price = 100.0 + ((h * 7) % 11) as f64 - 5.0;
            let action = [Action::Long, Action::Hold, Action::Short][(h as usize * 5) % 3];
            decision("BTC", h, action, price)
        })
        .collect();
    let accounts = vec![account("a")];
    let mut whole = stage(accounts.clone());
    let all: Vec<RiskMessage> = path.iter().flat_map(|d| whole.on_decision(d, &none()).messages).collect();
    let mut first = stage(accounts.clone());
    let mut got: Vec<RiskMessage> = path[..17].iter().flat_map(|d| first.on_decision(d, &none()).messages).collect();
    let mut second = RiskStage::restore(Arc::new(accounts), &first.snapshot().unwrap()).unwrap();
    got.extend(path[17..].iter().flat_map(|d| second.on_decision(d, &none()).messages));
    assert_eq!(got, all);
    assert_eq!(second.view("a"), whole.view("a"));
}
