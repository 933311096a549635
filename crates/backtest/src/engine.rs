//! The engine: the live stages, chained in one thread on the candles' own clock.
//!
//! Each input row goes through the whole chain before the next one is read:
//! `IngestStage::on_bar` → for each candle `InferenceStage::on_candle_votes` (with LLM
//! analysts: `on_candle_with_context` plus a `not analysed` signal per analyst) →
//! `EnsembleStage::on_view` → `RiskStage::on_decision` →
//! `ExecStage::on_message`. These are the very structs the workers run; the engine only moves
//! their outputs along, as the bus does, so a backtest's decisions, orders and fills are the
//! live pipeline's.
//!
//! Order across symbols: the rows of several files are merged by bar open time (ties to the
//! file listed first; [`tradeflow_ingest::timeline`]), the order `worker ingest --replay` and
//! `up` publish them in. Live, signals of different symbols may reach the ensemble in another
//! order when they travel on different partitions; a live run gives the same results as the
//! backtest when `md.candles` and `inf.signals` have one partition each (docs/backtest.md).
//!
//! The ensemble's clock is the candle's close time. A profile that waits on a model that never
//! answers decides at its deadline: live that is wall-clock time after the first signal, here
//! the first candle whose close time is past it (and the end of the run).

use std::collections::BTreeMap;
use std::sync::Arc;

use tradeflow_core::control::ControlState;
use tradeflow_core::decision::Decision;
use tradeflow_core::market::{Candle, CandleRefused};
use tradeflow_core::signal::SignalView;
use tradeflow_ensemble::{EnsembleStage, Profile};
use tradeflow_exec::paper::PaperBook;
use tradeflow_exec::stage::{ExecAccount, ExecStage};
use tradeflow_inference::llm::not_asked;
use tradeflow_inference::stage::{InferenceStage, StageConfig};
use tradeflow_ingest::timeline::{Feed, Row, Timeline};
use tradeflow_ingest::{IngestEvent, IngestStage};
use tradeflow_risk::AccountConfig;
use tradeflow_risk::stage::RiskStage;

use crate::error::BacktestError;
use crate::sink::Sink;

/// Why an LLM analyst's signals are `not analysed` in a backtest.
pub const NOT_ANALYSED: &str = "not analysed: backtests do not call LLM analysts";

/// Source name in candle ids, as `worker ingest --replay` names it, so that a backtest's ids
/// are the live run's.
pub const SOURCE: &str = "csv";

/// A row ingestion refused, and where it is.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub path: String,
    pub line: usize,
    pub refused: CandleRefused,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.refused;
        // A malformed row's reason already names the file, line and column.
        if r.reason.starts_with(&self.path) {
            write!(f, "{} ({}): {}", r.symbol, r.kind.as_str(), r.reason)
        } else {
            write!(f, "{}: line {}: {} ({}): {}", self.path, self.line, r.symbol, r.kind.as_str(), r.reason)
        }
    }
}

/// What a backtest runs: the same configuration the workers take.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    pub feeds: Vec<Feed>,
    /// Aggregations `(from, to)`, as `worker ingest --aggregate`.
    pub aggregate: Vec<(tradeflow_core::market::Interval, tradeflow_core::market::Interval)>,
    /// Rule models and their parameters (`--models`, the `[rules]` of `--llm-config`).
    pub inference: StageConfig,
    /// Names of the LLM analysts of `--llm-config`: each gives a `not analysed` signal.
    pub analysts: Vec<String>,
    pub profiles: Vec<Profile>,
    /// Every account is run on the paper book (an exchange account's fills are simulated).
    pub accounts: Vec<AccountConfig>,
    /// Stop at the first row that is not a candle, naming it.
    pub strict: bool,
    /// Only rows whose bar opens in `[from, to)` (epoch ms); the indicators start cold at
    /// `from`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// The stages of one run.
pub struct Engine {
    ingest: IngestStage,
    inference: InferenceStage,
    analysts: Vec<String>,
    ensemble: EnsembleStage,
    risk: RiskStage,
    exec: ExecStage,
    control: ControlState,
    strict: bool,
    range: (i64, i64),
}

impl Engine {
    pub fn new(config: &BacktestConfig) -> Result<Self, BacktestError> {
        let ingest = IngestStage::new(&config.aggregate).map_err(|errors| {
            BacktestError::Config(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?;
        let exec_accounts: Vec<ExecAccount> = config
            .accounts
            .iter()
            .map(|a| ExecAccount { id: a.id.clone(), starting_balance: a.starting_balance, paper: a.paper.clone() })
            .collect();
        Ok(Self {
            ingest,
            inference: InferenceStage::new(Arc::new(config.inference.clone())),
            analysts: config.analysts.clone(),
            ensemble: EnsembleStage::new(Arc::new(config.profiles.clone())),
            risk: RiskStage::new(Arc::new(config.accounts.clone())),
            exec: ExecStage::new(&exec_accounts),
            control: ControlState::default(),
            strict: config.strict,
            range: (config.from_ms.unwrap_or(i64::MIN), config.to_ms.unwrap_or(i64::MAX)),
        })
    }

    /// Every row of `timeline` in the date range, then the deadlines still pending at the end.
    pub fn run(&mut self, timeline: &Timeline, feeds: &[Feed], sink: &mut impl Sink) -> Result<(), BacktestError> {
        let (from, to) = self.range;
        for (n, step) in timeline.iter().enumerate() {
            if n.is_multiple_of(crate::sink::CHECK_EVERY) && sink.cancelled() {
                return Err(BacktestError::Cancelled);
            }
            if step.time < from || step.time >= to {
                continue;
            }
            let feed = &feeds[step.feed];
            self.row(feed, step.row, step.line, sink)?;
            sink.after_row(step.time, step.feed, step.row, self);
        }
        let decisions = self.ensemble.on_tick(i64::MAX);
        self.decide(decisions, sink)
    }

    /// One input row (line `line` of `feed`'s file, row `line` of a dataset) through the
    /// whole chain. A dataset's candles carry its source, as `worker ingest --dataset` sends them.
    pub fn row(&mut self, feed: &Feed, row: &Row, line: usize, sink: &mut impl Sink) -> Result<(), BacktestError> {
        let source = feed.source().unwrap_or(SOURCE);
        let events = match row {
            Ok(raw) => self.ingest.on_bar(source, &feed.symbol, feed.interval, *raw),
            Err(e) => vec![self.ingest.malformed(source, &feed.symbol, feed.interval, e.clone())],
        };
        for event in events {
            match event {
                IngestEvent::Candle(c) => self.candle(&c, sink)?,
                IngestEvent::Refused(r) => self.refused(r, feed, line, sink)?,
            }
        }
        Ok(())
    }

    fn refused(
        &mut self,
        r: CandleRefused,
        feed: &Feed,
        line: usize,
        sink: &mut impl Sink,
    ) -> Result<(), BacktestError> {
        let at = Refusal { path: feed.name(), line, refused: r };
        if self.strict {
            return Err(BacktestError::Refused(Box::new(at)));
        }
        sink.refused(at);
        Ok(())
    }

    fn candle(&mut self, candle: &Candle, sink: &mut impl Sink) -> Result<(), BacktestError> {
        let now = candle.bar.open_time() + candle.interval.millis();
        // Deadlines that passed before this candle closed come first, as they would live.
        let due = self.ensemble.on_tick(now);
        self.decide(due, sink)?;
        sink.candle(candle);
        if self.analysts.is_empty() {
            // Rule models alone: their votes, not whole signals (a backtest keeps no signal).
            let Ok(votes) = self.inference.on_candle_votes(candle) else { return Ok(()) };
            for v in votes.views() {
                sink.signal(&v);
                let out = self.ensemble.on_view(v, now);
                self.decide(out.decisions, sink)?;
            }
            return Ok(());
        }
        let Ok(mut inferred) = self.inference.on_candle_with_context(candle) else { return Ok(()) };
        let ctx = &inferred.context;
        inferred.signals.extend(self.analysts.iter().map(|a| not_asked(a, ctx, NOT_ANALYSED)));
        for s in &inferred.signals {
            let v = SignalView::from(s);
            sink.signal(&v);
            let out = self.ensemble.on_view(v, now);
            self.decide(out.decisions, sink)?;
        }
        Ok(())
    }

    fn decide(&mut self, decisions: Vec<Decision>, sink: &mut impl Sink) -> Result<(), BacktestError> {
        for d in decisions {
            sink.decision(&d);
            let out = self.risk.on_decision(&d, &self.control);
            for m in &out.messages {
                sink.risk_message(m);
                let applied = self.exec.on_message(m).map_err(|e| BacktestError::Exec(e.to_string()))?;
                for e in &applied.events {
                    sink.exec_event(e);
                }
            }
            for a in &out.alerts {
                sink.alert(a);
            }
        }
        Ok(())
    }

    /// The executor's book of `account` (none before its first message).
    pub fn book(&self, account: &str) -> Option<&PaperBook> {
        self.exec.book(account)
    }

    /// Equity of every account now: the executor's book, or the starting balance before it
    /// has one.
    pub fn equities(&self, accounts: &[AccountConfig]) -> BTreeMap<String, f64> {
        accounts
            .iter()
            .map(|a| (a.id.clone(), self.exec.book(&a.id).map_or(a.starting_balance, PaperBook::equity)))
            .collect()
    }
}
