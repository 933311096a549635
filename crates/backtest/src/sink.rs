//! What a run keeps: the engine hands every message to a [`Sink`], which keeps only what its
//! user needs (the results per account, or the audit rows for a parity check), so a long
//! backtest or a hyperopt trial pays for nothing else.

use tradeflow_core::decision::Decision;
use tradeflow_core::execution::ExecEvent;
use tradeflow_core::market::Candle;
use tradeflow_core::order::{AccountAlert, RiskMessage};
use tradeflow_core::signal::SignalView;
use tradeflow_ingest::timeline::Row;

use crate::engine::{Engine, Refusal};

/// Receives every message of a run, in the order the stages produced them.
pub trait Sink {
    fn candle(&mut self, _candle: &Candle) {}
    fn refused(&mut self, _refused: Refusal) {}
    fn signal(&mut self, _signal: &SignalView<'_>) {}
    fn decision(&mut self, _decision: &Decision) {}
    fn risk_message(&mut self, _message: &RiskMessage) {}
    fn exec_event(&mut self, _event: &ExecEvent) {}
    fn alert(&mut self, _alert: &AccountAlert) {}
    /// After input row `row` of feed `feed`, at bar time `time`, went through every stage.
    fn after_row(&mut self, _time: i64, _feed: usize, _row: &Row, _engine: &Engine) {}
    /// Asked every [`CHECK_EVERY`] rows: true stops the run with [`BacktestError::Cancelled`]
    /// (a job cancelled or past its time limit).
    ///
    /// [`BacktestError::Cancelled`]: crate::BacktestError::Cancelled
    fn cancelled(&self) -> bool {
        false
    }
}

/// Rows between two [`Sink::cancelled`] checks: a few milliseconds of the full chain.
pub const CHECK_EVERY: usize = 1024;

/// A sink that keeps nothing and says whether `flag` is set.
pub struct StopFlag<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Sink for StopFlag<'_> {
    fn cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Keeps nothing.
impl Sink for () {}

/// A borrowed sink gets everything its owner would.
impl<S: Sink + ?Sized> Sink for &mut S {
    fn candle(&mut self, candle: &Candle) {
        (**self).candle(candle);
    }
    fn refused(&mut self, refused: Refusal) {
        (**self).refused(refused);
    }
    fn signal(&mut self, signal: &SignalView<'_>) {
        (**self).signal(signal);
    }
    fn decision(&mut self, decision: &Decision) {
        (**self).decision(decision);
    }
    fn risk_message(&mut self, message: &RiskMessage) {
        (**self).risk_message(message);
    }
    fn exec_event(&mut self, event: &ExecEvent) {
        (**self).exec_event(event);
    }
    fn alert(&mut self, alert: &AccountAlert) {
        (**self).alert(alert);
    }
    fn after_row(&mut self, time: i64, feed: usize, row: &Row, engine: &Engine) {
        (**self).after_row(time, feed, row, engine);
    }
    fn cancelled(&self) -> bool {
        (**self).cancelled()
    }
}

/// Both sinks get everything.
impl<A: Sink, B: Sink> Sink for (A, B) {
    fn candle(&mut self, candle: &Candle) {
        self.0.candle(candle);
        self.1.candle(candle);
    }
    fn refused(&mut self, refused: Refusal) {
        self.0.refused(refused.clone());
        self.1.refused(refused);
    }
    fn signal(&mut self, signal: &SignalView<'_>) {
        self.0.signal(signal);
        self.1.signal(signal);
    }
    fn decision(&mut self, decision: &Decision) {
        self.0.decision(decision);
        self.1.decision(decision);
    }
    fn risk_message(&mut self, message: &RiskMessage) {
        self.0.risk_message(message);
        self.1.risk_message(message);
    }
    fn exec_event(&mut self, event: &ExecEvent) {
        self.0.exec_event(event);
        self.1.exec_event(event);
    }
    fn alert(&mut self, alert: &AccountAlert) {
        self.0.alert(alert);
        self.1.alert(alert);
    }
    fn after_row(&mut self, time: i64, feed: usize, row: &Row, engine: &Engine) {
        self.0.after_row(time, feed, row, engine);
        self.1.after_row(time, feed, row, engine);
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled() || self.1.cancelled()
    }
}
