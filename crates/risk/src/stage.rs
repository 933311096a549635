//! The risk stage: decisions in, one message per decision and following account out (an
//! approved and sized [`OrderIntent`], a [`Rejection`] with its typed reason, or a [`Mark`]).
//!
//! Each account's state lives here: a shadow [`PaperBook`] (the very book the paper executor
//! runs, fed the very messages risk sends, so risk sizes on exactly the equity, margin and
//! positions the executor will have — no round trip, and the same results on every run), the
//! day's starting equity, the peak equity for the drawdown breaker, the losing streak and the
//! sequence number of the last message sent.
//!
//! `ens.decisions` is keyed by profile so that every decision an account trades reaches one
//! partition, in order: an account follows one profile.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tradeflow_core::control::ControlState;
use tradeflow_core::decision::{Decision, Trigger};
use tradeflow_core::execution::ExecEvent;
use tradeflow_core::order::{
    AccountAlert, BarMark, Direction, Intent, Mark, OrderIntent, OrderType, RefusalReason, Rejection, RiskMessage, Side,
};
use tradeflow_core::report::{AccountReport, ReportKind, ReportedPosition};
use tradeflow_core::request::{OrderRequest, RequestSize};
use tradeflow_core::signal::Action;
use tradeflow_exec::paper::PaperBook;

use crate::account::{AccountConfig, Sizing};
use tradeflow_core::order::FillSizing;

const DAY_MS: i64 = 86_400_000;
const SNAPSHOT_VERSION: u16 = 1;

/// Per-account state, checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AccountState {
    book: PaperBook,
    /// Number of the last message sent to this account.
    seq: u64,
    peak_equity: f64,
    /// UTC day (bar time / 1 day) and the equity it started with.
    day: i64,
    day_start_equity: f64,
    consecutive_losses: u32,
    cooldown_until: i64,
    /// Drawdown at which the breaker tripped; halted until reset.
    halted: Option<f64>,
    /// Ids of the control commands already acted on.
    applied_reset: Option<String>,
    applied_emergency: Option<String>,
    /// Id of the last close-all command acted on (absent from older checkpoints).
    #[serde(default)]
    applied_close_all: Option<String>,
    /// Latest bar per symbol (for closing at an emergency stop).
    last_bars: BTreeMap<String, BarMark>,
    /// Open time of the latest decision per symbol: a redelivered decision is ignored.
    watermarks: BTreeMap<String, i64>,
    /// Client ids of the latest manual requests, oldest first: a request is acted on once.
    #[serde(default)]
    requests: VecDeque<String>,
    /// Ids of the latest exchange reports: a report is taken once.
    #[serde(default)]
    reports: VecDeque<String>,
}

/// Client ids remembered per account. A client id is an idempotency key for retries, which
/// come within seconds; the edges refuse a reused id for a day through Redis as well.
const REQUESTS_REMEMBERED: usize = 4096;

impl AccountState {
    fn new(cfg: &AccountConfig) -> Self {
        Self {
            book: PaperBook::new(&cfg.id, cfg.starting_balance, cfg.paper.clone()),
            seq: 0,
            peak_equity: cfg.starting_balance,
            day: i64::MIN,
            day_start_equity: cfg.starting_balance,
            consecutive_losses: 0,
            cooldown_until: i64::MIN,
            halted: None,
            applied_reset: None,
            applied_emergency: None,
            applied_close_all: None,
            last_bars: BTreeMap::new(),
            watermarks: BTreeMap::new(),
            requests: VecDeque::new(),
            reports: VecDeque::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u16,
    accounts: BTreeMap<String, AccountState>,
}

/// What one input produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskOutput {
    /// For `risk.orders`, in order.
    pub messages: Vec<RiskMessage>,
    /// For `audit.events`.
    pub alerts: Vec<AccountAlert>,
}

impl RiskOutput {
    fn extend(&mut self, other: RiskOutput) {
        self.messages.extend(other.messages);
        self.alerts.extend(other.alerts);
    }
}

/// Read-only view of an account, for tests and the API.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    pub balance: f64,
    pub equity: f64,
    pub open_positions: usize,
    pub halted: bool,
    pub consecutive_losses: u32,
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub struct RiskStage {
    accounts: Arc<Vec<AccountConfig>>,
    state: BTreeMap<String, AccountState>,
}

impl RiskStage {
    pub fn new(accounts: Arc<Vec<AccountConfig>>) -> Self {
        let state = accounts.iter().map(|a| (a.id.clone(), AccountState::new(a))).collect();
        Self { accounts, state }
    }

    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec_named(&Snapshot { version: SNAPSHOT_VERSION, accounts: self.state.clone() })
            .map_err(|e| format!("encoding the risk checkpoint: {e}"))
    }

    /// State from a checkpoint; accounts added to the configuration since start fresh, accounts
    /// removed from it are dropped.
    pub fn restore(accounts: Arc<Vec<AccountConfig>>, bytes: &[u8]) -> Result<Self, String> {
        let s: Snapshot = rmp_serde::from_slice(bytes).map_err(|e| format!("decoding the risk checkpoint: {e}"))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(format!("risk checkpoint has layout {}, this build reads {SNAPSHOT_VERSION}", s.version));
        }
        let mut stage = Self::new(accounts);
        for (id, st) in s.accounts {
            if let Some(slot) = stage.state.get_mut(&id) {
                *slot = st;
            }
        }
        Ok(stage)
    }

    pub fn view(&self, account: &str) -> Option<AccountView> {
        self.state.get(account).map(|s| AccountView {
            balance: s.book.balance(),
            equity: s.book.equity(),
            open_positions: s.book.open_positions(),
            halted: s.halted.is_some(),
            consecutive_losses: s.consecutive_losses,
            seq: s.seq,
        })
    }

    pub fn book(&self, account: &str) -> Option<&PaperBook> {
        self.state.get(account).map(|s| &s.book)
    }

    /// Acts on operator commands not yet applied: resets, emergency closes.
    pub fn on_control(&mut self, control: &ControlState, now_ms: i64) -> RiskOutput {
        let mut out = RiskOutput::default();
        for cfg in self.accounts.iter() {
            let Some(st) = self.state.get_mut(&cfg.id) else { continue };
            out.extend(apply_control(cfg, st, control, now_ms));
        }
        out
    }

    /// One decision: a message for each account that follows its profile.
    pub fn on_decision(&mut self, d: &Decision, control: &ControlState) -> RiskOutput {
        let mut out = RiskOutput::default();
        let bar = BarMark {
            symbol: d.symbol.clone(),
            open_time: d.open_time,
            close_time: d.open_time + d.interval.millis(),
            open: d.open,
            high: d.high,
            low: d.low,
            close: d.close,
        };
        for cfg in self.accounts.iter().filter(|a| a.profile == d.profile) {
            let Some(st) = self.state.get_mut(&cfg.id) else { continue };
            if st.watermarks.get(&d.symbol).is_some_and(|w| d.open_time <= *w) {
                continue;
            }
            // The symbol is copied only the first time (this runs for every decision).
            match st.watermarks.get_mut(&d.symbol) {
                Some(w) => *w = d.open_time,
                None => {
                    st.watermarks.insert(d.symbol.clone(), d.open_time);
                }
            }
            out.extend(apply_control(cfg, st, control, bar.close_time));
            out.extend(step(cfg, st, d, &bar, control));
        }
        out
    }

    /// An exchange's report of an account (see [`tradeflow_core::report`]): risk takes the
    /// exchange's balance and positions into the account's book, its fills into the losing
    /// streak, and raises a `reconcile_mismatch` alert where its own book differed by more than
    /// the account's `reconcile_tolerance`. Paper accounts' books are exact: a report for one
    /// is ignored. Nothing is sent on `risk.orders`; the next sizing follows.
    pub fn on_report(&mut self, r: &AccountReport) -> RiskOutput {
        let mut out = RiskOutput::default();
        let Some(cfg) = self.accounts.iter().find(|a| a.id == r.account) else { return out };
        if cfg.executor == crate::account::ExecutorKind::Paper {
            return out;
        }
        let Some(st) = self.state.get_mut(&cfg.id) else { return out };
        if st.reports.iter().any(|id| *id == r.id) {
            return out;
        }
        // The first word from the exchange sets the yardsticks: the drawdown and the day's loss
        // are measured from the wallet as the exchange has it, not from the configured
        // `starting_balance` (a wallet below it would trip the breaker at the first report).
        let first = st.reports.is_empty();
        st.reports.push_back(r.id.clone());
        while st.reports.len() > REQUESTS_REMEMBERED {
            st.reports.pop_front();
        }
        let differences = differences(&st.book, r, cfg.risk.reconcile_tolerance);
        if !differences.is_empty() {
            let what = match r.kind {
                ReportKind::Fills { seq } => format!("the fills of message {seq}"),
                ReportKind::Reconcile => "a reconciliation".to_string(),
            };
            out.alerts.push(alert(
                &r.id,
                &cfg.id,
                "reconcile_mismatch",
                format!(
                    "the exchange differs from risk's book after {what}: {}; risk takes the exchange's figures",
                    differences.join("; ")
                ),
                r.time,
            ));
        }
        st.book.adopt(r.balance, &r.positions, r.time);
        if first {
            st.peak_equity = st.book.equity();
            st.day_start_equity = st.book.equity();
        }
        let events: Vec<ExecEvent> = r.fills.iter().cloned().map(ExecEvent::Fill).collect();
        tally(cfg, st, &events, r.time, &mut out);
        out
    }

    /// A manual order request: one message for its account (an order or a typed refusal), or
    /// nothing when the request was acted on before. A request for an account this stage does
    /// not hold (the edge's configuration differs from the workers') is an alert, not a loss.
    pub fn on_request(&mut self, r: &OrderRequest, control: &ControlState) -> RiskOutput {
        let mut out = RiskOutput::default();
        let Some(cfg) = self.accounts.iter().find(|a| a.id == r.account) else {
            out.alerts.push(alert(
                &r.id,
                &r.account,
                "unknown_account",
                format!("order request {} for an account this risk partition does not hold", r.id),
                r.requested_at,
            ));
            return out;
        };
        let Some(st) = self.state.get_mut(&cfg.id) else { return out };
        if st.requests.iter().any(|c| *c == r.client_id) {
            return out;
        }
        st.requests.push_back(r.client_id.clone());
        while st.requests.len() > REQUESTS_REMEMBERED {
            st.requests.pop_front();
        }
        // Operator commands first, as before a decision: an emergency stop refuses this entry.
        if let Some(bar) = st.last_bars.get(&r.symbol) {
            let time = bar.close_time;
            out.extend(apply_control(cfg, st, control, time));
        }
        out.extend(request_step(cfg, st, r, control));
        out
    }
}

fn apply_control(cfg: &AccountConfig, st: &mut AccountState, control: &ControlState, time: i64) -> RiskOutput {
    let mut out = RiskOutput::default();
    if let Some(reset) = control.resets.get(&cfg.id)
        && st.applied_reset.as_ref() != Some(reset)
    {
        st.applied_reset = Some(reset.clone());
        st.halted = None;
        st.consecutive_losses = 0;
        st.cooldown_until = i64::MIN;
        st.peak_equity = st.book.equity();
        out.alerts.push(alert(
            reset,
            &cfg.id,
            "reset",
            "circuit breaker and loss streak reset by an operator".into(),
            time,
        ));
    }
    if let Some(stop) = &control.emergency
        && st.applied_emergency.as_ref() != Some(stop)
    {
        st.applied_emergency = Some(stop.clone());
        let closed = if control.close_positions {
            close_everything(cfg, st, stop, &format!("emergency stop {stop}"), &mut out)
        } else {
            0
        };
        out.alerts.push(alert(
            stop,
            &cfg.id,
            "emergency_stop",
            format!("emergency stop: no new entries; {closed} positions closed"),
            time,
        ));
    }
    if let Some(close) = control.close_all.get(&cfg.id)
        && st.applied_close_all.as_ref() != Some(close)
    {
        st.applied_close_all = Some(close.clone());
        let closed = close_everything(cfg, st, close, &format!("close all {close}"), &mut out);
        out.alerts.push(alert(
            close,
            &cfg.id,
            "close_all",
            format!("close all by an operator: {closed} positions closed"),
            time,
        ));
    }
    out
}

/// Closes every open position of the account at its symbol's latest bar, entries held for the
/// next open included (an emergency stop's close, an operator's close-all); `cause` is the
/// command's id. Returns how many closes were sent.
fn close_everything(
    cfg: &AccountConfig,
    st: &mut AccountState,
    cause: &str,
    reason: &str,
    out: &mut RiskOutput,
) -> usize {
    let mut open: Vec<(String, Direction, f64)> =
        st.book.positions().map(|p| (p.symbol.clone(), p.direction, p.quantity)).collect();
    // An entry held for the next open (`fill_at = "next_open"`) is a position from then
    // on: its close is queued behind it, so the account ends up flat there too.
    for o in st.book.all_held_orders().filter(|o| o.intent == Intent::Open) {
        if !open.iter().any(|(s, _, _)| *s == o.bar.symbol) {
            open.push((o.bar.symbol.clone(), o.direction, o.quantity));
        }
    }
    let mut closed = 0;
    for (symbol, direction, quantity) in open {
        let Some(bar) = st.last_bars.get(&symbol).cloned() else { continue };
        st.seq += 1;
        let order = OrderIntent {
            id: format!("{cause}/{}/{symbol}", cfg.id),
            decision_id: cause.to_string(),
            account: cfg.id.clone(),
            seq: st.seq,
            bar,
            intent: Intent::Close,
            direction,
            side: direction.closing_side(),
            order_type: OrderType::Market,
            limit_price: None,
            quantity,
            leverage: cfg.leverage,
            stop_loss: None,
            take_profit: None,
            trailing_stop_pct: None,
            reason: reason.to_string(),
            fill_sizing: None,
        };
        let events = st.book.execute(&order);
        record_results(cfg, st, &events, order.bar.close_time, out);
        out.messages.push(RiskMessage::Order(order));
        closed += 1;
    }
    closed
}

fn alert(cause: &str, account: &str, kind: &str, message: String, time: i64) -> AccountAlert {
    AccountAlert { id: format!("{cause}/{account}/{kind}"), account: account.into(), kind: kind.into(), message, time }
}

/// Loss streak, cooldown and breaker bookkeeping from the fills of the shadow book.
///
/// For an exchange account only the fills the exchange reported count (they come through
/// [`RiskStage::on_report`]); the book's own predictions of them do not, or a trade would
/// count twice.
fn record_results(cfg: &AccountConfig, st: &mut AccountState, events: &[ExecEvent], time: i64, out: &mut RiskOutput) {
    let exact = cfg.executor == crate::account::ExecutorKind::Paper;
    tally(cfg, st, if exact { events } else { &[] }, time, out);
}

/// [`record_results`] on fills that count.
fn tally(cfg: &AccountConfig, st: &mut AccountState, events: &[ExecEvent], time: i64, out: &mut RiskOutput) {
    for e in events {
        let ExecEvent::Fill(f) = e else { continue };
        if f.realized_pnl == 0.0 && matches!(f.reason, tradeflow_core::execution::FillReason::Entry) {
            continue;
        }
        if f.realized_pnl - f.fee < 0.0 {
            st.consecutive_losses += 1;
            let n = cfg.risk.cooldown_after_losses;
            if n > 0 && st.consecutive_losses >= n && cfg.risk.cooldown_ms > 0 {
                st.cooldown_until = time + cfg.risk.cooldown_ms;
                out.alerts.push(alert(
                    &f.id,
                    &cfg.id,
                    "cooldown",
                    format!("{} losing trades in a row: no entries until {}", st.consecutive_losses, st.cooldown_until),
                    time,
                ));
            }
        } else {
            st.consecutive_losses = 0;
        }
    }
    let equity = st.book.equity();
    if equity > st.peak_equity {
        st.peak_equity = equity;
    }
    let drawdown = if st.peak_equity > 0.0 { (st.peak_equity - equity) / st.peak_equity } else { 0.0 };
    if st.halted.is_none() && drawdown >= cfg.risk.max_drawdown {
        st.halted = Some(drawdown);
        out.alerts.push(alert(
            &format!("{}#{time}", cfg.id),
            &cfg.id,
            "circuit_breaker",
            format!(
                "drawdown {:.2} % reached the maximum {:.2} %: trading halted until reset",
                drawdown * 100.0,
                cfg.risk.max_drawdown * 100.0
            ),
            time,
        ));
    }
}

fn step(cfg: &AccountConfig, st: &mut AccountState, d: &Decision, bar: &BarMark, control: &ControlState) -> RiskOutput {
    let mut out = RiskOutput::default();
    // A hold with nothing in the symbol changes nothing but the day and the last bar: its mark
    // would find nothing to do and not be sent (see `idle` below). Why here: the ids and the
    // mark were built for every such decision, most decisions of a quiet market.
    if d.action == Action::Hold && d.trigger != Trigger::Manual && !st.book.has_business(&bar.symbol) {
        remember_bar(st, bar);
        return out;
    }
    // The decision's id once: every message of this step carries it.
    let decision_id = d.id();
    let id = decision_id.child(&cfg.id).into_string();
    let decision_id = decision_id.into_string();
    st.seq += 1;
    let seq = st.seq;
    // Whether the executor's book needs this bar whatever is decided: the shadow's mark below
    // may fill a held order or stop a position out, and the executor must see the same bar.
    let had_business = st.book.has_business(&bar.symbol);
    // The bar first: stops, take-profits and liquidations happen before the decision is acted on.
    let events = st.book.mark(&id, seq, bar);
    remember_bar(st, bar);
    record_results(cfg, st, &events, bar.close_time, &mut out);

    let position = st.book.position(&bar.symbol).map(|p| (p.direction, p.quantity));
    let wanted = match d.action {
        Action::Long => Some(Direction::Long),
        Action::Short => Some(Direction::Short),
        Action::Hold => None,
    };
    let mark = || {
        RiskMessage::Mark(Mark {
            id: id.clone(),
            decision_id: decision_id.clone(),
            account: cfg.id.clone(),
            seq,
            bar: bar.clone(),
        })
    };
    let message = match (wanted, position) {
        // A manual hold is an operator's close: it closes, and never opens.
        (None, Some((have, quantity))) if d.trigger == Trigger::Manual => {
            RiskMessage::Order(order(cfg, d, (&id, &decision_id), seq, bar, Intent::Close, have, quantity))
        }
        (None, _) => mark(),
        (Some(w), Some((have, _))) if w == have => mark(),
        // The decision turned against the position: close it (exits are never refused).
        (Some(_), Some((have, quantity))) => {
            RiskMessage::Order(order(cfg, d, (&id, &decision_id), seq, bar, Intent::Close, have, quantity))
        }
        (Some(w), None) => match check_entry(cfg, st, &EntryAsk::of_decision(cfg, d, w), bar, control) {
            Ok(quantity) => RiskMessage::Order(order(cfg, d, (&id, &decision_id), seq, bar, Intent::Open, w, quantity)),
            Err(reason) => RiskMessage::Rejected(Rejection {
                id: id.clone(),
                decision_id: decision_id.clone(),
                account: cfg.id.clone(),
                seq,
                bar: bar.clone(),
                action: d.action,
                reason,
            }),
        },
    };
    if let RiskMessage::Order(o) = &message {
        let events = st.book.execute(o);
        record_results(cfg, st, &events, bar.close_time, &mut out);
    }
    // A mark only matters to a book with something in the symbol before or after the bar (a
    // position to check stops and liquidation against, a resting limit order, a market order
    // held for this open): otherwise it is not sent, and the seq it would have taken goes to
    // the next message. The executor's book is the same either way.
    let idle = !had_business && !st.book.has_business(&bar.symbol);
    if matches!(message, RiskMessage::Mark(_)) && idle {
        st.seq -= 1;
        return out;
    }
    out.messages.push(message);
    out
}

/// Keeps `bar` as its symbol's last and starts a new day's loss yardstick when it is one.
fn remember_bar(st: &mut AccountState, bar: &BarMark) {
    match st.last_bars.get_mut(&bar.symbol) {
        Some(last) => last.clone_from(bar),
        None => {
            st.last_bars.insert(bar.symbol.clone(), bar.clone());
        }
    }
    let day = bar.close_time.div_euclid(DAY_MS);
    if day != st.day {
        st.day = day;
        st.day_start_equity = st.book.equity();
    }
}

/// Where the book differs from an exchange's report beyond `tolerance` (a fraction of the
/// exchange's figure), in words.
fn differences(book: &PaperBook, r: &AccountReport, tolerance: f64) -> Vec<String> {
    let mut d = Vec::new();
    let off = |mine: f64, theirs: f64| (mine - theirs).abs() > tolerance * theirs.abs().max(1e-9);
    if off(book.balance(), r.balance) {
        d.push(format!("balance {:.8} here, {:.8} on the exchange", book.balance(), r.balance));
    }
    let reported = |symbol: &str| r.positions.iter().find(|p: &&ReportedPosition| p.symbol == symbol);
    for p in book.positions() {
        match reported(&p.symbol) {
            None => d.push(format!("{} {} {} here, none on the exchange", p.symbol, p.direction.as_str(), p.quantity)),
            Some(x) if x.direction != p.direction || off(p.quantity, x.quantity) => d.push(format!(
                "{} {} {} here, {} {} on the exchange",
                p.symbol,
                p.direction.as_str(),
                p.quantity,
                x.direction.as_str(),
                x.quantity
            )),
            Some(_) => {}
        }
    }
    for x in r.positions.iter().filter(|x| book.position(&x.symbol).is_none()) {
        d.push(format!("none here, {} {} {} on the exchange", x.symbol, x.direction.as_str(), x.quantity));
    }
    d
}

/// A manual request on the account's latest bar of its symbol, which is also the price it is
/// sized at and the bar its order carries: the executor's book has already marked that bar, so
/// the order is executed on it without marking it twice, exactly as the shadow book does here.
fn request_step(cfg: &AccountConfig, st: &mut AccountState, r: &OrderRequest, control: &ControlState) -> RiskOutput {
    let mut out = RiskOutput::default();
    let id = r.order_id();
    let direction = match r.side {
        Side::Buy => Direction::Long,
        Side::Sell => Direction::Short,
    };
    let action = match direction {
        Direction::Long => Action::Long,
        Direction::Short => Action::Short,
    };
    let Some(bar) = st.last_bars.get(&r.symbol).cloned() else {
        // Nothing to number it against: sequence 0, which every book ignores (it applies
        // numbers above its last), so the refusal reaches the audit store and the caller only.
        let bar = BarMark {
            symbol: r.symbol.clone(),
            open_time: 0,
            close_time: r.requested_at,
            open: None,
            high: 0.0,
            low: 0.0,
            close: 0.0,
        };
        let reason = RefusalReason::NoMarketPrice { symbol: r.symbol.clone() };
        out.messages.push(RiskMessage::Rejected(Rejection {
            id,
            decision_id: r.id.clone(),
            account: cfg.id.clone(),
            seq: 0,
            bar,
            action,
            reason,
        }));
        return out;
    };
    st.seq += 1;
    let seq = st.seq;
    let refuse = |reason: RefusalReason| {
        RiskMessage::Rejected(Rejection {
            id: id.clone(),
            decision_id: r.id.clone(),
            account: cfg.id.clone(),
            seq,
            bar: bar.clone(),
            action,
            reason,
        })
    };
    let invalid = |field: &str, message: String| refuse(RefusalReason::InvalidRequest { field: field.into(), message });
    let base = OrderIntent {
        id: id.clone(),
        decision_id: r.id.clone(),
        account: cfg.id.clone(),
        seq,
        bar: bar.clone(),
        intent: Intent::Open,
        direction,
        side: r.side,
        order_type: OrderType::Market,
        limit_price: None,
        quantity: 0.0,
        leverage: cfg.leverage,
        stop_loss: None,
        take_profit: None,
        trailing_stop_pct: None,
        reason: format!("manual {} by {} (request {})", r.side.as_str(), r.requested_by, r.client_id),
        fill_sizing: None,
    };
    let price = bar.close;
    let message = if let Some(problem) = r.validate().into_iter().next() {
        invalid(problem.field, problem.message)
    } else if cfg.executor != crate::account::ExecutorKind::Paper && r.order_type != OrderType::Market {
        invalid("order_type", format!("{} accounts place market orders only", cfg.executor.as_str()))
    } else if cfg.executor != crate::account::ExecutorKind::Paper && r.leverage.is_some_and(|l| l != cfg.leverage) {
        invalid(
            "leverage",
            format!("{} accounts trade at their configured leverage {}", cfg.executor.as_str(), cfg.leverage),
        )
    } else {
        match st.book.position(&r.symbol).map(|p| (p.direction, p.quantity)) {
            // Against the position: a reduce or a close, never a reversal in one step. Exits
            // are never refused (as for decisions).
            Some((have, held)) if have != direction => {
                let wanted = match r.size {
                    RequestSize::Account => held,
                    RequestSize::Quantity { quantity } => quantity,
                    RequestSize::Notional { notional } => notional / price,
                    RequestSize::Fraction { fraction } => fraction * held,
                };
                let quantity = cfg.paper.floor_to_lot(wanted.min(held));
                if wanted >= held || quantity >= held {
                    RiskMessage::Order(OrderIntent { intent: Intent::Close, direction: have, quantity: held, ..base })
                } else if quantity > 0.0 {
                    RiskMessage::Order(OrderIntent { intent: Intent::Reduce, direction: have, quantity, ..base })
                } else {
                    refuse(RefusalReason::SizeTooSmall { quantity })
                }
            }
            Some((have, _)) if r.reduce_only => invalid(
                "reduce_only",
                format!("a reduce-only {} would add to the {} position", r.side.as_str(), have.as_str()),
            ),
            // The request's own mistakes first: they are wrong whatever the account holds.
            // A paused or stopped account says so first: it would refuse the entry anyway.
            Some((have, _)) => match exit_levels_problem(r, direction, r.limit_price.unwrap_or(price)) {
                Some((field, message)) => invalid(field, message),
                None => refuse(
                    account_gate(cfg, st, control)
                        .err()
                        .unwrap_or(RefusalReason::AlreadyPositioned { direction: have }),
                ),
            },
            None if r.reduce_only || matches!(r.size, RequestSize::Fraction { .. }) => {
                refuse(RefusalReason::NoPosition { symbol: r.symbol.clone() })
            }
            None => {
                let reference = r.limit_price.unwrap_or(price);
                let leverage = r.leverage.unwrap_or(cfg.leverage);
                if let Some((field, message)) = exit_levels_problem(r, direction, reference) {
                    invalid(field, message)
                } else if leverage > cfg.leverage {
                    refuse(RefusalReason::MaxLeverage { requested: leverage, max: cfg.leverage })
                } else {
                    let ask = EntryAsk {
                        direction,
                        confidence: None,
                        stop_loss: r.stop_loss,
                        take_profit: r.take_profit,
                        quantity: match r.size {
                            RequestSize::Quantity { quantity } => Some(quantity),
                            RequestSize::Notional { notional } => Some(notional / reference),
                            RequestSize::Account | RequestSize::Fraction { .. } => None,
                        },
                        price: Some(reference),
                        leverage,
                    };
                    match check_entry(cfg, st, &ask, &bar, control) {
                        Ok(quantity) => RiskMessage::Order(OrderIntent {
                            order_type: r.order_type,
                            limit_price: r.limit_price,
                            quantity,
                            leverage,
                            stop_loss: r.stop_loss,
                            take_profit: r.take_profit,
                            trailing_stop_pct: cfg.trailing_stop_pct,
                            fill_sizing: (ask.quantity.is_none() && cfg.sizing == Sizing::AllIn)
                                .then_some(FillSizing::AllIn),
                            ..base
                        }),
                        Err(reason) => refuse(reason),
                    }
                }
            }
        }
    };
    if let RiskMessage::Order(o) = &message {
        let events = st.book.execute(o);
        record_results(cfg, st, &events, bar.close_time, &mut out);
    }
    out.messages.push(message);
    out
}

/// A request's stop loss or take profit on the wrong side of `reference` for `direction`:
/// the field and what it must be.
fn exit_levels_problem(r: &OrderRequest, direction: Direction, reference: f64) -> Option<(&'static str, String)> {
    let (below, above) = if direction == Direction::Long { ("below", "above") } else { ("above", "below") };
    if r.stop_loss.is_some() && valid_stop(direction, reference, r.stop_loss).is_none() {
        Some(("stop_loss", format!("must be {below} the price {reference} for a {}", r.side.as_str())))
    } else if r.take_profit.is_some() && valid_target(direction, reference, r.take_profit).is_none() {
        Some(("take_profit", format!("must be {above} the price {reference} for a {}", r.side.as_str())))
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn order(
    cfg: &AccountConfig,
    d: &Decision,
    (id, decision_id): (&str, &str),
    seq: u64,
    bar: &BarMark,
    intent: Intent,
    direction: Direction,
    quantity: f64,
) -> OrderIntent {
    let opening = intent == Intent::Open;
    let side = if opening { direction.opening_side() } else { direction.closing_side() };
    OrderIntent {
        id: id.into(),
        decision_id: decision_id.into(),
        account: cfg.id.clone(),
        seq,
        bar: bar.clone(),
        intent,
        direction,
        side,
        order_type: OrderType::Market,
        limit_price: None,
        quantity,
        leverage: cfg.leverage,
        stop_loss: if opening { valid_stop(direction, bar.close, d.stop_loss) } else { None },
        take_profit: if opening { valid_target(direction, bar.close, d.take_profit) } else { None },
        trailing_stop_pct: if opening { cfg.trailing_stop_pct } else { None },
        reason: format!("{} {} ({:.2}): {}", d.profile, d.action.as_str(), d.confidence, d.reasoning),
        fill_sizing: (opening && cfg.sizing == Sizing::AllIn).then_some(FillSizing::AllIn),
    }
}

/// A stop on the losing side of the price, or none.
fn valid_stop(direction: Direction, price: f64, stop: Option<f64>) -> Option<f64> {
    stop.filter(|s| s.is_finite() && *s > 0.0 && direction.sign() * (price - s) > 0.0)
}

fn valid_target(direction: Direction, price: f64, target: Option<f64>) -> Option<f64> {
    target.filter(|t| t.is_finite() && *t > 0.0 && direction.sign() * (t - price) > 0.0)
}

/// What an entry asks for: a decision's or a manual request's.
struct EntryAsk {
    direction: Direction,
    /// The decision's; none for a manual request (an operator's order has no confidence).
    confidence: Option<f64>,
    stop_loss: Option<f64>,
    take_profit: Option<f64>,
    /// A size the request named; none: the account's sizing method.
    quantity: Option<f64>,
    /// The price it is sized and checked at: a limit order's limit; none: the bar's close.
    price: Option<f64>,
    leverage: f64,
}

impl EntryAsk {
    fn of_decision(cfg: &AccountConfig, d: &Decision, direction: Direction) -> Self {
        Self {
            direction,
            confidence: Some(d.confidence),
            stop_loss: d.stop_loss,
            take_profit: d.take_profit,
            quantity: None,
            price: None,
            leverage: cfg.leverage,
        }
    }
}

/// The checks of an entry, in order; the first that fails is the reason. Returns the size.
/// Whether the account takes any entry at all (operators' switches and the circuit breaker),
/// whatever is asked: these reasons come before any about the order itself.
fn account_gate(cfg: &AccountConfig, st: &AccountState, control: &ControlState) -> Result<(), RefusalReason> {
    let enabled = control.trading.get(&cfg.id).copied().unwrap_or(cfg.trading_enabled);
    if !enabled {
        return Err(RefusalReason::TradingDisabled);
    }
    if control.emergency.is_some() {
        return Err(RefusalReason::EmergencyStop);
    }
    if let Some(drawdown) = st.halted {
        return Err(RefusalReason::Halted { drawdown, max_drawdown: cfg.risk.max_drawdown });
    }
    // The whole pipeline paused, or this account.
    if control.paused || control.paused_accounts.contains(&cfg.id) {
        return Err(RefusalReason::Paused);
    }
    Ok(())
}

fn check_entry(
    cfg: &AccountConfig,
    st: &AccountState,
    ask: &EntryAsk,
    bar: &BarMark,
    control: &ControlState,
) -> Result<f64, RefusalReason> {
    let direction = ask.direction;
    let r = &cfg.risk;
    account_gate(cfg, st, control)?;
    if direction == Direction::Short && !cfg.allow_short {
        return Err(RefusalReason::ShortingDisabled);
    }
    if let Some(confidence) = ask.confidence
        && confidence < r.min_confidence
    {
        return Err(RefusalReason::ConfidenceBelowMinimum { confidence, minimum: r.min_confidence });
    }
    let price = ask.price.unwrap_or(bar.close);
    let stop = valid_stop(direction, price, ask.stop_loss);
    if r.stop_loss_required && stop.is_none() {
        return Err(RefusalReason::StopLossRequired);
    }
    if st.cooldown_until > bar.close_time {
        return Err(RefusalReason::Cooldown { consecutive_losses: st.consecutive_losses, until: st.cooldown_until });
    }
    let equity = st.book.equity();
    let loss = st.day_start_equity - equity;
    let limit = r.daily_loss_limit * st.day_start_equity;
    if loss >= limit {
        return Err(RefusalReason::DailyLossLimit { loss, limit });
    }
    let open = st.book.open_positions() as u32;
    if open >= r.max_open_positions {
        return Err(RefusalReason::MaxOpenPositions { open, max: r.max_open_positions });
    }
    let quantity = match (ask.quantity, cfg.sizing) {
        // A size the operator named: checked below like any other.
        (Some(q), _) => cfg.paper.floor_to_lot(q),
        // An estimate at this close: the book sizes the order again at its fill price.
        (None, Sizing::AllIn) => st.book.all_in_quantity(price, ask.leverage),
        (None, _) => cfg.paper.floor_to_lot(size(
            cfg,
            equity,
            price,
            stop,
            valid_target(direction, price, ask.take_profit),
            ask.confidence.unwrap_or(1.0),
        )),
    };
    let notional = quantity * price;
    if !(quantity.is_finite() && quantity > 0.0) || notional < r.min_notional {
        return Err(RefusalReason::SizeTooSmall { quantity: if quantity.is_finite() { quantity } else { 0.0 } });
    }
    if let Some(max) = r.max_position_notional
        && notional > max
    {
        return Err(RefusalReason::MaxPositionNotional { notional, max });
    }
    let pct = notional / equity;
    if pct > r.max_position_pct_of_equity {
        return Err(RefusalReason::MaxPositionPctOfEquity { pct, max: r.max_position_pct_of_equity });
    }
    let total: f64 = st.book.positions().map(|p| p.notional()).sum::<f64>() + notional;
    let effective = total / equity;
    if effective > r.max_leverage {
        return Err(RefusalReason::MaxLeverage { requested: effective, max: r.max_leverage });
    }
    let required = notional / ask.leverage + notional * cfg.paper.taker_fee;
    let available = st.book.available_margin();
    if required > available {
        return Err(RefusalReason::InsufficientMargin { required, available });
    }
    if let Some(max) = r.max_symbol_exposure {
        let existing: f64 = st.book.positions().filter(|p| p.symbol == bar.symbol).map(|p| p.notional()).sum();
        if existing + notional > max {
            return Err(RefusalReason::MaxSymbolExposure { exposure: existing + notional, max });
        }
    }
    Ok(quantity)
}

/// Quantity for an entry at `price` (0 when the method sizes nothing).
fn size(cfg: &AccountConfig, equity: f64, price: f64, stop: Option<f64>, target: Option<f64>, confidence: f64) -> f64 {
    if equity <= 0.0 || price <= 0.0 {
        return 0.0;
    }
    match cfg.sizing {
        Sizing::FixedFraction { fraction } => fraction * equity / price,
        Sizing::FixedRisk { risk } => match stop {
            Some(s) if (price - s).abs() > 0.0 => risk * equity / (price - s).abs(),
            _ => 0.0,
        },
        Sizing::Kelly { cap, payoff } => {
            let b = match (stop, target) {
                (Some(s), Some(t)) if (price - s).abs() > 0.0 => (t - price).abs() / (price - s).abs(),
                _ => payoff,
            };
            let k = confidence - (1.0 - confidence) / b;
            if k <= 0.0 { 0.0 } else { k.min(cap) * equity / price }
        }
        // Sized by the book (check_entry does not come here for it).
        Sizing::AllIn => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use tradeflow_core::signal::Action;

    use super::*;

    fn decision(hour: i64, action: Action, trigger: Trigger) -> Decision {
        Decision { trigger, ..tradeflow_testkit::flat_decision("p", "BTC", hour * 3_600_000, action, 100.0) }
    }

    #[test]
    fn a_manual_hold_closes_and_never_opens() {
        let mut stage = RiskStage::new(Arc::new(vec![AccountConfig::paper("a", "p", 1000.0)]));
        let control = ControlState::default();
        // Flat: a manual hold sends nothing (no position to close, nothing opened).
        assert!(stage.on_decision(&decision(1, Action::Hold, Trigger::Manual), &control).messages.is_empty());
        let open = stage.on_decision(&decision(2, Action::Long, Trigger::Manual), &control);
        assert!(matches!(&open.messages[..], [RiskMessage::Order(o)] if o.intent == Intent::Open));
        // An ensemble hold keeps the position (a mark); a manual hold closes it.
        let hold = stage.on_decision(&decision(3, Action::Hold, Trigger::Complete), &control);
        assert!(matches!(&hold.messages[..], [RiskMessage::Mark(_)]));
        let close = stage.on_decision(&decision(4, Action::Hold, Trigger::Manual), &control);
        match &close.messages[..] {
            [RiskMessage::Order(o)] => {
                assert_eq!(
                    (o.intent, o.direction, o.side),
                    (Intent::Close, Direction::Long, o.direction.closing_side())
                );
            }
            other => panic!("expected a close, got {other:?}"),
        }
        assert_eq!(stage.view("a").unwrap().open_positions, 0);
        assert!(stage.on_decision(&decision(5, Action::Hold, Trigger::Manual), &control).messages.is_empty());
    }

    fn request(client: &str, side: Side, size: RequestSize) -> OrderRequest {
        OrderRequest {
            id: OrderRequest::id_for("a", client),
            client_id: client.into(),
            account: "a".into(),
            symbol: "BTC".into(),
            side,
            size,
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

    fn only(out: RiskOutput) -> RiskMessage {
        assert_eq!(out.messages.len(), 1, "{out:?}");
        out.messages.into_iter().next().unwrap()
    }

    fn refusal(out: RiskOutput) -> RefusalReason {
        match only(out) {
            RiskMessage::Rejected(r) => r.reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn manual_requests_are_sized_refused_and_partly_closed_by_risk_and_the_books_agree() {
        let accounts = Arc::new(vec![AccountConfig::paper("a", "p", 1000.0)]);
        let mut stage = RiskStage::new(accounts.clone());
        let mut exec = PaperBook::new("a", 1000.0, accounts[0].paper.clone());
        let control = ControlState::default();
        // No bar of the symbol yet: refused, numbered 0 (no book applies it).
        match only(stage.on_request(&request("c0", Side::Buy, RequestSize::Account), &control)) {
            RiskMessage::Rejected(r) => {
                assert_eq!((r.seq, r.reason.code()), (0, "no_market_price"));
                assert_eq!((r.id.as_str(), r.decision_id.as_str()), ("req:a:c0/a", "req:a:c0"));
            }
            other => panic!("{other:?}"),
        }
        for m in stage.on_decision(&decision(1, Action::Hold, Trigger::Complete), &control).messages {
            exec.apply(&m);
        }
        // Sized by the account's method at the last close (100).
        let open = only(stage.on_request(&request("c1", Side::Buy, RequestSize::Account), &control));
        let RiskMessage::Order(o) = &open else { panic!("{open:?}") };
        assert_eq!((o.intent, o.direction, o.bar.close), (Intent::Open, Direction::Long, 100.0));
        assert!(o.quantity > 0.0);
        let held = o.quantity;
        exec.apply(&open);
        // The same client id again: nothing at all.
        assert_eq!(stage.on_request(&request("c1", Side::Buy, RequestSize::Account), &control), RiskOutput::default());
        // Each refusal a request can meet.
        let same = refusal(stage.on_request(&request("c2", Side::Buy, RequestSize::Account), &control));
        assert_eq!(same, RefusalReason::AlreadyPositioned { direction: Direction::Long });
        let r = OrderRequest { reduce_only: true, ..request("c3", Side::Buy, RequestSize::Account) };
        assert_eq!(refusal(stage.on_request(&r, &control)).code(), "invalid_request");
        let r = OrderRequest {
            symbol: "ETH".into(),
            id: OrderRequest::id_for("a", "c4"),
            ..request("c4", Side::Buy, RequestSize::Account)
        };
        assert_eq!(refusal(stage.on_request(&r, &control)).code(), "no_market_price");
        // Half of it: a reduce, then the rest with a quantity larger than what is left: a close.
        let half =
            only(stage.on_request(&request("c5", Side::Sell, RequestSize::Fraction { fraction: 0.5 }), &control));
        let RiskMessage::Order(o) = &half else { panic!("{half:?}") };
        assert_eq!(o.intent, Intent::Reduce);
        assert!((o.quantity - held / 2.0).abs() <= 1e-6 * held, "{} vs {held}", o.quantity);
        exec.apply(&half);
        let rest = only(
            stage.on_request(&request("c6", Side::Sell, RequestSize::Quantity { quantity: held * 10.0 }), &control),
        );
        let RiskMessage::Order(o) = &rest else { panic!("{rest:?}") };
        assert_eq!(o.intent, Intent::Close);
        exec.apply(&rest);
        assert_eq!(stage.book("a").unwrap().open_positions(), 0);
        assert_eq!(exec.open_positions(), 0);
        assert_eq!(exec.balance(), stage.book("a").unwrap().balance());
        // Flat now: a reduce-only order has nothing to reduce.
        let r =
            OrderRequest { reduce_only: true, ..request("c7", Side::Sell, RequestSize::Fraction { fraction: 1.0 }) };
        assert_eq!(refusal(stage.on_request(&r, &control)).code(), "no_position");
        // An exit on the wrong side, leverage above the account's, a disabled account.
        let r = OrderRequest { stop_loss: Some(120.0), ..request("c8", Side::Buy, RequestSize::Account) };
        match refusal(stage.on_request(&r, &control)) {
            RefusalReason::InvalidRequest { field, .. } => assert_eq!(field, "stop_loss"),
            other => panic!("{other:?}"),
        }
        let r = OrderRequest { leverage: Some(5.0), ..request("c9", Side::Buy, RequestSize::Account) };
        assert_eq!(refusal(stage.on_request(&r, &control)).code(), "max_leverage");
        let mut off = ControlState::default();
        off.trading.insert("a".into(), false);
        assert_eq!(
            refusal(stage.on_request(&request("c10", Side::Buy, RequestSize::Account), &off)).code(),
            "trading_disabled"
        );
        // A named size is checked like any other: far beyond the equity.
        let r = request("c11", Side::Buy, RequestSize::Notional { notional: 1e9 });
        assert_eq!(refusal(stage.on_request(&r, &control)).code(), "max_position_pct_of_equity");
        // Sequence numbers stay contiguous for the executor.
        let seqs: Vec<u64> = [&open, &half, &rest].iter().map(|m| m.seq()).collect();
        assert_eq!(seqs, [1, 4, 5]);
    }

    #[test]
    fn the_first_exchange_report_sets_the_drawdown_yardstick() {
        let mut cfg = AccountConfig::paper("a", "p", 1000.0);
        cfg.executor = crate::account::ExecutorKind::BinanceFutures;
        let mut stage = RiskStage::new(Arc::new(vec![cfg]));
        let control = ControlState::default();
        // The wallet holds 600, not the configured 1000: a difference, not a 40 % drawdown.
        let wallet = |id: &str, balance: f64| AccountReport {
            id: id.into(),
            account: "a".into(),
            kind: ReportKind::Reconcile,
            time: 1_000,
            balance,
            positions: Vec::new(),
            fills: Vec::new(),
            open_orders: Some(0),
        };
        let out = stage.on_report(&wallet("a/reconcile/1", 600.0));
        let kinds: Vec<&str> = out.alerts.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["reconcile_mismatch"]);
        // The next entry is sized on the exchange's 600: 0.6 of what the configured 1000 gives.
        let entry = only(stage.on_decision(&decision(1, Action::Long, Trigger::Complete), &control));
        let RiskMessage::Order(o) = &entry else { panic!("{entry:?}") };
        let mut unreported = AccountConfig::paper("a", "p", 1000.0);
        unreported.executor = crate::account::ExecutorKind::BinanceFutures;
        let fresh = only(
            RiskStage::new(Arc::new(vec![unreported]))
                .on_decision(&decision(1, Action::Long, Trigger::Complete), &control),
        );
        let RiskMessage::Order(f) = &fresh else { panic!("{fresh:?}") };
        assert!((o.quantity - 0.6 * f.quantity).abs() < 1e-9, "{} vs {}", o.quantity, f.quantity);
        // From there a real fall trips it: 600 → 420 is 30 % (max 25 %).
        let out = stage.on_report(&wallet("a/reconcile/2", 420.0));
        assert!(out.alerts.iter().any(|a| a.kind == "circuit_breaker"), "{out:?}");
    }

    #[test]
    fn an_exchange_account_takes_the_exchange_figures_and_a_difference_is_an_alert() {
        let mut cfg = AccountConfig::paper("a", "p", 1000.0);
        cfg.executor = crate::account::ExecutorKind::BinanceFutures;
        let mut stage = RiskStage::new(Arc::new(vec![cfg]));
        let control = ControlState::default();
        let open = only(stage.on_decision(&decision(1, Action::Long, Trigger::Complete), &control));
        let RiskMessage::Order(o) = &open else { panic!("{open:?}") };
        let predicted = o.quantity;
        // The exchange filled less, higher: a partial fill with slippage, and a fee.
        let report = AccountReport {
            id: "a/report/1".into(),
            account: "a".into(),
            kind: ReportKind::Fills { seq: 1 },
            time: 3_600_000,
            balance: 999.5,
            positions: vec![ReportedPosition {
                symbol: "BTC".into(),
                direction: Direction::Long,
                quantity: predicted * 0.5,
                entry_price: 101.0,
                leverage: 1.0,
                mark_price: Some(100.0),
            }],
            fills: Vec::new(),
            open_orders: None,
        };
        let out = stage.on_report(&report);
        assert_eq!(out.messages, Vec::new());
        assert_eq!(out.alerts.len(), 1, "{out:?}");
        assert_eq!(out.alerts[0].kind, "reconcile_mismatch");
        let view = stage.view("a").unwrap();
        assert_eq!(view.balance, 999.5);
        // Equity at the exchange's entry and quantity, marked at the last price (100).
        let want = 999.5 + predicted * 0.5 * (100.0 - 101.0);
        assert!((view.equity - want).abs() < 1e-9, "{} vs {want}", view.equity);
        // The same report again changes nothing; one that agrees raises nothing.
        assert_eq!(stage.on_report(&report), RiskOutput::default());
        let agree = AccountReport { id: "a/reconcile/2".into(), kind: ReportKind::Reconcile, ..report.clone() };
        assert!(stage.on_report(&agree).alerts.is_empty());
        // Exchange-reported losses make the streak; the shadow's own fills do not count.
        let loss = |n: u32| tradeflow_core::execution::Fill {
            id: format!("x#{n}"),
            order_id: "x".into(),
            account: "a".into(),
            seq: 2,
            symbol: "BTC".into(),
            side: Side::Sell,
            direction: Direction::Long,
            quantity: 1.0,
            price: 90.0,
            fee: 0.1,
            realized_pnl: -10.0,
            liquidity: tradeflow_core::execution::Liquidity::Taker,
            reason: tradeflow_core::execution::FillReason::Exit,
            time: 0,
        };
        let lossy = AccountReport { id: "a/report/3".into(), fills: vec![loss(1), loss(2)], ..agree };
        stage.on_report(&lossy);
        assert_eq!(stage.view("a").unwrap().consecutive_losses, 2);
    }

    #[test]
    fn a_request_for_an_account_not_held_here_is_an_alert() {
        let mut stage = RiskStage::new(Arc::new(vec![AccountConfig::paper("a", "p", 1000.0)]));
        let r = OrderRequest {
            account: "zz".into(),
            id: OrderRequest::id_for("zz", "c"),
            ..request("c", Side::Buy, RequestSize::Account)
        };
        let out = stage.on_request(&r, &ControlState::default());
        assert!(out.messages.is_empty());
        assert_eq!(out.alerts[0].kind, "unknown_account");
    }

    /// backtesting.py's account: all in, next-open fills, units of 1e-8, commission 0.001.
    fn all_in_account() -> AccountConfig {
        let mut a = AccountConfig::paper("a", "p", 10_000.0);
        a.sizing = Sizing::AllIn;
        a.allow_short = false;
        a.paper = tradeflow_exec::paper::PaperConfig {
            taker_fee: 0.001,
            slippage_bps: 0.0,
            fill_at: tradeflow_exec::paper::FillAt::NextOpen,
            lot_step: Some(1e-8),
            ..Default::default()
        };
        a
    }

    fn bar_decision(hour: i64, action: Action, open: f64, close: f64) -> Decision {
        Decision {
            open: Some(open),
            high: open.max(close),
            low: open.min(close),
            ..tradeflow_testkit::flat_decision("p", "BTC", hour * 3_600_000, action, close)
        }
    }

    #[test]
    fn all_in_next_open_marks_reach_the_executor_and_both_books_agree() {
        let accounts = Arc::new(vec![all_in_account()]);
        let mut stage = RiskStage::new(accounts.clone());
        let control = ControlState::default();
        let mut exec = PaperBook::new("a", 10_000.0, accounts[0].paper.clone());
        let mut sent = Vec::new();
        let steps = [
            (1, Action::Long, 99.0, 100.0),   // entry decided: held
            (2, Action::Hold, 101.0, 103.0),  // fills at 101 on this bar: the mark must be sent
            (3, Action::Short, 104.0, 102.0), // exit decided (long-only: a close)
            (4, Action::Hold, 101.5, 100.0),  // fills at 101.5: the mark must be sent
            (5, Action::Hold, 100.0, 100.0),  // idle: nothing sent
        ];
        for (hour, action, open, close) in steps {
            let out = stage.on_decision(&bar_decision(hour, action, open, close), &control);
            for m in &out.messages {
                exec.apply(m);
            }
            sent.push(out.messages);
        }
        match &sent[0][..] {
            [RiskMessage::Order(o)] => {
                assert_eq!((o.intent, o.fill_sizing), (Intent::Open, Some(FillSizing::AllIn)));
                // Risk's estimate at the decision close: 10,000 / (100 × 1.001), floored to 1e-8.
                assert_eq!(o.quantity, 99.900_099_9);
            }
            other => panic!("expected the entry, got {other:?}"),
        }
        assert!(matches!(&sent[1][..], [RiskMessage::Mark(m)] if m.seq == 2), "{:?}", sent[1]);
        assert!(matches!(&sent[2][..], [RiskMessage::Order(o)] if o.intent == Intent::Close), "{:?}", sent[2]);
        assert!(matches!(&sent[3][..], [RiskMessage::Mark(m)] if m.seq == 4), "{:?}", sent[3]);
        assert!(sent[4].is_empty(), "{:?}", sent[4]);
        let shadow = stage.book("a").unwrap();
        assert_eq!(shadow.balance(), exec.balance());
        assert_eq!(shadow.open_positions(), 0);
        // Sized at the fill: 10,000 / (101 × 1.001) → 98.90 (not the estimate), sold at 101.5.
        let q = (10_000.0_f64 / (101.0 * 1.001) / 1e-8).floor() * 1e-8;
        let want = 10_000.0 + q * 0.5 - q * 101.0 * 0.001 - q * 101.5 * 0.001;
        assert!((exec.balance() - want).abs() < 1e-9, "{} vs {want}", exec.balance());
    }

    #[test]
    fn an_emergency_close_also_closes_an_entry_held_for_the_next_open() {
        let accounts = Arc::new(vec![all_in_account()]);
        let mut stage = RiskStage::new(accounts.clone());
        let mut exec = PaperBook::new("a", 10_000.0, accounts[0].paper.clone());
        let mut control = ControlState::default();
        for m in &stage.on_decision(&bar_decision(1, Action::Long, 99.0, 100.0), &control).messages {
            exec.apply(m);
        }
        assert_eq!(stage.book("a").unwrap().held_orders("BTC").len(), 1, "the entry waits for the next open");
        control.emergency = Some("stop-1".into());
        control.close_positions = true;
        let out = stage.on_control(&control, 2 * 3_600_000);
        match &out.messages[..] {
            [RiskMessage::Order(o)] => assert_eq!((o.intent, o.direction), (Intent::Close, Direction::Long)),
            other => panic!("expected one emergency close, got {other:?}"),
        }
        for m in &out.messages {
            exec.apply(m);
        }
        // The next bar fills the entry at its open, then the close behind it: flat.
        for m in &stage.on_decision(&bar_decision(2, Action::Hold, 101.0, 102.0), &control).messages {
            exec.apply(m);
        }
        assert_eq!(stage.book("a").unwrap().open_positions(), 0);
        assert_eq!(exec.open_positions(), 0);
        assert_eq!(exec.balance(), stage.book("a").unwrap().balance());
    }

    #[test]
    fn an_account_paused_or_closed_out_by_an_operator() {
        let accounts = Arc::new(vec![AccountConfig::paper("a", "p", 1000.0), AccountConfig::paper("b", "p", 1000.0)]);
        let mut stage = RiskStage::new(accounts);
        let mut control = ControlState::default();
        control.paused_accounts.insert("b".into());
        let out = stage.on_decision(&decision(1, Action::Long, Trigger::Complete), &control);
        let by_account: Vec<(&str, bool)> = out
            .messages
            .iter()
            .map(|m| match m {
                RiskMessage::Order(o) => (o.account.as_str(), true),
                RiskMessage::Rejected(r) => {
                    assert_eq!(r.reason, RefusalReason::Paused);
                    (r.account.as_str(), false)
                }
                RiskMessage::Mark(m) => panic!("unexpected mark {m:?}"),
            })
            .collect();
        assert_eq!(by_account, [("a", true), ("b", false)], "b is paused, a is not");
        // Close all of a: its position closes at the latest bar, once per command.
        control.close_all.insert("a".into(), "ctl:9:close".into());
        let out = stage.on_control(&control, 2 * 3_600_000);
        match &out.messages[..] {
            [RiskMessage::Order(o)] => {
                assert_eq!((o.account.as_str(), o.intent, o.id.as_str()), ("a", Intent::Close, "ctl:9:close/a/BTC"));
            }
            other => panic!("expected a's close, got {other:?}"),
        }
        assert!(out.alerts.iter().any(|al| al.kind == "close_all" && al.account == "a"), "{:?}", out.alerts);
        assert_eq!(stage.view("a").unwrap().open_positions, 0);
        assert!(stage.on_control(&control, 3 * 3_600_000).messages.is_empty(), "acted on once");
    }

    #[test]
    fn all_in_and_next_open_parse_and_next_open_is_for_paper_accounts() {
        let text = r#"
[[account]]
id = "bt"
profile = "p"
starting_balance = 10000.0
allow_short = false
sizing = { method = "all_in" }
paper = { taker_fee = 0.001, slippage_bps = 0.0, fill_at = "next_open", lot_step = 1e-8 }
"#;
        let a = crate::account::parse_accounts(text, &["p"]).unwrap();
        assert_eq!(a[0].sizing, Sizing::AllIn);
        assert_eq!(a[0].paper.fill_at, tradeflow_exec::paper::FillAt::NextOpen);
        assert_eq!(a[0].paper.lot_step, Some(1e-8));
        let mut live = a[0].clone();
        live.executor = crate::account::ExecutorKind::BinanceFutures;
        live.binance = Some(crate::account::BinanceAccount {
            testnet: true,
            base_url: None,
            api_key_env: "K".into(),
            secret_env: "S".into(),
        });
        let problems = live.validate("account[0]");
        assert!(problems.iter().any(|p| p.starts_with("account[0].paper.fill_at:")), "{problems:?}");
    }
}
