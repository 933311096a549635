//! The results sink: per account its fills, counts and equity per bar time, and what they add up
//! to (round-trip trades) once the run is over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use tradeflow_analytics::{Bar, ExitReason, Fill as Leg, Side, Trade};
use tradeflow_core::execution::{ExecEvent, Fill, FillReason};
use tradeflow_core::order::{Direction, RiskMessage};
use tradeflow_exec::paper::PaperBook;
use tradeflow_ingest::timeline::Row;
use tradeflow_risk::AccountConfig;

use crate::engine::{Engine, Refusal};
use crate::sink::Sink;

/// One account's raw results.
#[derive(Debug, Clone, Default)]
pub struct AccountTape {
    pub fills: Vec<Fill>,
    pub orders: u64,
    pub rejections: u64,
    /// Equity after the last row of each bar time, in time order.
    pub equity: Vec<(i64, f64)>,
}

/// Keeps what the per-account results need.
pub struct Tape {
    accounts: Vec<AccountConfig>,
    pub tapes: BTreeMap<String, AccountTape>,
    pub candles: u64,
    /// Rows ingestion refused, with where they are.
    pub refused: Vec<Refusal>,
    pub signals: u64,
    pub decisions: u64,
    /// The series the statistics are about (symbol, interval) and the open times of its
    /// candles: rows ingestion refused or the date range left out are not bars of the run.
    series: Option<(String, tradeflow_core::market::Interval)>,
    pub accepted: TimeSet,
}

/// Hashes a bar time with one multiply and a fold. Why: SipHash's resistance to chosen keys is
/// not needed for a run's own bar times, and hashing them took a tenth of a 200,000-bar
/// `tradeflow backtest` process.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeHasher(u64);

const TIME_HASH_K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for TimeHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(TIME_HASH_K);
        }
    }

    fn write_i64(&mut self, x: i64) {
        self.0 = (self.0 ^ x as u64).wrapping_mul(TIME_HASH_K);
    }

    fn finish(&self) -> u64 {
        // The product's high bits depend on every bit of the key; fold them into the low ones
        // (bar times are multiples of 60,000: their own low bits are all alike).
        self.0 ^ (self.0 >> 32)
    }
}

/// A set of bar times.
pub type TimeSet = HashSet<i64, BuildHasherDefault<TimeHasher>>;

impl Tape {
    /// Also keeps the open times of `series`' candles.
    pub fn for_series(accounts: &[AccountConfig], symbol: &str, interval: tradeflow_core::market::Interval) -> Self {
        Self { series: Some((symbol.to_string(), interval)), ..Self::new(accounts) }
    }

    pub fn new(accounts: &[AccountConfig]) -> Self {
        Self {
            accounts: accounts.to_vec(),
            tapes: accounts.iter().map(|a| (a.id.clone(), AccountTape::default())).collect(),
            candles: 0,
            refused: Vec::new(),
            signals: 0,
            decisions: 0,
            series: None,
            accepted: TimeSet::default(),
        }
    }
}

impl Sink for Tape {
    fn candle(&mut self, candle: &tradeflow_core::market::Candle) {
        self.candles += 1;
        if let Some((symbol, interval)) = &self.series
            && !candle.aggregated
            && candle.interval == *interval
            && candle.symbol == *symbol
        {
            self.accepted.insert(candle.bar.open_time());
        }
    }

    fn refused(&mut self, refused: Refusal) {
        self.refused.push(refused);
    }

    fn signal(&mut self, _signal: &tradeflow_core::signal::SignalView<'_>) {
        self.signals += 1;
    }

    fn decision(&mut self, _decision: &tradeflow_core::decision::Decision) {
        self.decisions += 1;
    }

    fn risk_message(&mut self, m: &RiskMessage) {
        let Some(t) = self.tapes.get_mut(m.account()) else { return };
        match m {
            RiskMessage::Order(_) => t.orders += 1,
            RiskMessage::Rejected(_) => t.rejections += 1,
            RiskMessage::Mark(_) => {}
        }
    }

    fn exec_event(&mut self, e: &ExecEvent) {
        if let ExecEvent::Fill(f) = e
            && let Some(t) = self.tapes.get_mut(&f.account)
        {
            t.fills.push(f.clone());
        }
    }

    fn after_row(&mut self, time: i64, _feed: usize, _row: &Row, engine: &Engine) {
        // Every row: each account's book read in place ([`Engine::equities`] builds a map of
        // copied ids, which was a tenth of an sma_cross run).
        for a in &self.accounts {
            let equity = engine.book(&a.id).map_or(a.starting_balance, PaperBook::equity);
            let Some(t) = self.tapes.get_mut(&a.id) else { continue };
            match t.equity.last_mut() {
                Some(last) if last.0 == time => last.1 = equity,
                _ => t.equity.push((time, equity)),
            }
        }
    }
}

/// The bars of one symbol's input, by row: what trades are placed against.
#[derive(Debug, Clone, Default)]
pub struct SymbolBars {
    /// Valid rows as bars (a malformed row is skipped here but keeps its row number below).
    pub bars: Vec<Bar>,
    /// Row number (0-based, in the file) of each bar.
    pub rows: Vec<usize>,
    /// Close time → index into `bars`.
    by_close: HashMap<i64, usize, BuildHasherDefault<TimeHasher>>,
}

impl SymbolBars {
    /// The rows of a file that became candles (`accepted`: their open times).
    pub fn new(rows: &[Row], interval_ms: i64, accepted: &TimeSet) -> Self {
        let mut s =
            Self { by_close: HashMap::with_capacity_and_hasher(accepted.len(), Default::default()), ..Self::default() };
        s.bars.reserve(accepted.len());
        s.rows.reserve(accepted.len());
        let mut seen = TimeSet::with_capacity_and_hasher(accepted.len(), Default::default());
        for (i, row) in rows.iter().enumerate() {
            if let Ok(raw) = row
                && accepted.contains(&raw.open_time)
                && seen.insert(raw.open_time)
            {
                s.by_close.insert(raw.open_time + interval_ms, s.bars.len());
                s.bars.push(Bar {
                    time_ms: raw.open_time,
                    open: raw.open,
                    high: raw.high,
                    low: raw.low,
                    close: raw.close,
                });
                s.rows.push(i);
            }
        }
        s
    }

    /// `trades` with their bars as rows of the input file instead of indices into `bars`.
    pub fn to_rows(&self, trades: &[Trade]) -> Vec<Trade> {
        let row = |i: usize| self.rows.get(i).copied().unwrap_or(i);
        trades.iter().map(|t| Trade { entry_bar: row(t.entry_bar), exit_bar: row(t.exit_bar), ..t.clone() }).collect()
    }

    /// Index into `bars` of the bar that closed at `close_time` (a fill's time).
    pub fn at_close(&self, close_time: i64) -> Option<usize> {
        self.by_close.get(&close_time).copied()
    }
}

/// An open entry waiting for its exit.
struct Open {
    side: Side,
    size: f64,
    leg: Leg,
}

/// Round trips of one account's fills of `symbol`, in exit order, their bars indices into
/// `bars.bars` (see [`SymbolBars::to_rows`]). A partial exit closes part of
/// the entry (its entry commission shared in proportion); trades still open are closed at the
/// last bar's open with reason `End` when `finalize` (backtesting.py's `finalize_trades`).
pub fn trades(fills: &[Fill], symbol: &str, bars: &SymbolBars, commission_rate: f64, finalize: bool) -> Vec<Trade> {
    let mut out = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    for f in fills.iter().filter(|f| f.symbol == symbol) {
        let Some(bar) = bars.at_close(f.time) else { continue };
        let leg = |commission| Leg { bar, time_ms: bars.bars[bar].time_ms, price: f.price, commission };
        if f.reason == FillReason::Entry {
            let side = match f.direction {
                Direction::Long => Side::Long,
                Direction::Short => Side::Short,
            };
            open.push(Open { side, size: f.quantity, leg: leg(f.fee) });
            continue;
        }
        let reason = exit_reason(f.reason);
        let mut left = f.quantity;
        while left > 0.0 && !open.is_empty() {
            let first = &mut open[0];
            let take = first.size.min(left);
            let share = take / first.size;
            let entry = Leg { commission: first.leg.commission * share, ..first.leg };
            let exit_fee = f.fee * take / f.quantity;
            out.push(Trade::from_fills(first.side, take, entry, leg(exit_fee), reason));
            first.leg.commission -= entry.commission;
            first.size -= take;
            left -= take;
            if first.size <= f64::EPSILON * take.max(1.0) {
                open.remove(0);
            }
        }
    }
    if finalize && let Some(last) = bars.bars.last() {
        let row = bars.bars.len() - 1;
        for o in open {
            let exit = Leg {
                bar: row,
                time_ms: last.time_ms,
                price: last.open,
                commission: commission_rate * o.size * last.open,
            };
            out.push(Trade::from_fills(o.side, o.size, o.leg, exit, ExitReason::End));
        }
    }
    out
}

fn exit_reason(r: FillReason) -> ExitReason {
    match r {
        FillReason::StopLoss => ExitReason::StopLoss,
        FillReason::TakeProfit => ExitReason::TakeProfit,
        FillReason::TrailingStop => ExitReason::TrailingStop,
        FillReason::Liquidation => ExitReason::Liquidation,
        FillReason::Entry | FillReason::Exit | FillReason::EmergencyClose => ExitReason::Signal,
    }
}
