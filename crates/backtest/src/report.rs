//! The results of a run per account: round-trip trades, the equity curve, backtesting.py's
//! statistics (from `tradeflow-analytics`), and the counts and balance of the paper book.

use serde::Serialize;
use tradeflow_analytics::{Bar, InputError, Stats, StatsOptions, Trade, compute_stats, equity_curve};
use tradeflow_ingest::timeline::Timeline;
use tradeflow_risk::AccountConfig;

use crate::engine::{BacktestConfig, Engine, NOT_ANALYSED};
use crate::error::BacktestError;
use crate::sink::Sink;
use crate::tape::{SymbolBars, Tape, trades};

/// One point of an account's equity curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityPoint {
    pub time_ms: i64,
    /// Row of the bar in the first input file (0-based).
    pub bar: usize,
    pub equity: f64,
    /// Fraction below the running peak (0 at a new peak).
    pub drawdown: f64,
}

/// One account's results.
#[derive(Debug, Clone, Serialize)]
pub struct AccountReport {
    pub id: String,
    /// Symbol the statistics and trades are about (the first input file's).
    pub symbol: String,
    /// `null` when they cannot be computed (e.g. no bar), with `stats_error` saying why.
    pub stats: Option<Stats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_error: Option<String>,
    /// Round trips, a trade still open at the end closed at the last bar's open (reason `end`),
    /// as backtesting.py's `finalize_trades=True` does.
    pub trades: Vec<Trade>,
    pub equity: Vec<EquityPoint>,
    /// The paper book's balance after the last candle, open positions left open (as the live
    /// pipeline leaves them).
    pub final_balance: f64,
    /// The paper book's equity after the last candle (open positions at the last close).
    pub final_equity: f64,
    pub fill_count: usize,
    pub order_count: u64,
    pub rejection_count: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub accounts: Vec<AccountReport>,
    pub candles: u64,
    /// Rows refused by ingestion (malformed, invalid, out of order), each with its file, line
    /// and reason.
    pub refused: Vec<String>,
    pub signals: u64,
    pub decisions: u64,
    /// What a reader must know about how this run differs from a live one.
    pub notes: Vec<String>,
    /// The first input's bars that became candles, in time order: `accounts[_].equity[i]` is
    /// at `bars[i]`. For the HTML report's price chart; not in the JSON (the input has them).
    #[serde(skip)]
    pub bars: Vec<Bar>,
}

/// What the statistics need beyond the run itself.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// First bar the strategy can act on (its indicators' warm-up), for Buy & Hold and
    /// exposure; 0 when unknown.
    pub first_trading_bar: usize,
}

/// Runs `config` and builds the report.
pub fn backtest(config: &BacktestConfig, options: &ReportOptions) -> Result<Report, BacktestError> {
    if config.feeds.is_empty() {
        return Err(BacktestError::Config("no input file".into()));
    }
    let timeline = Timeline::load(&config.feeds)?;
    backtest_on(config, &timeline, options, &mut ())
}

/// [`backtest`] over `timeline`, already read from `config.feeds` (hyperopt reads the files
/// once for all its trials); `watch` also gets every message (e.g. `after_row` for a progress
/// display).
pub fn backtest_on(
    config: &BacktestConfig,
    timeline: &Timeline,
    options: &ReportOptions,
    watch: &mut impl Sink,
) -> Result<Report, BacktestError> {
    let Some(feed) = config.feeds.first() else {
        return Err(BacktestError::Config("no input file".into()));
    };
    let tape = Tape::for_series(&config.accounts, &feed.symbol, feed.interval);
    let mut engine = Engine::new(config)?;
    let mut sinks = (tape, watch);
    engine.run(timeline, &config.feeds, &mut sinks)?;
    let (tape, _) = sinks;
    if tape.candles == 0 {
        let within = |t: Option<i64>| t.map_or("…".to_string(), |t| t.to_string());
        return Err(BacktestError::Empty(if timeline.is_empty() {
            ": the files have no rows".into()
        } else if config.from_ms.is_some() || config.to_ms.is_some() {
            format!(
                " from {} to {} (epoch ms; the files' bars open from {} to {})",
                within(config.from_ms),
                within(config.to_ms),
                within(timeline.first_time()),
                within(timeline.first_time().map(|t| t + timeline.span_ms()))
            )
        } else {
            format!(": all {} rows were refused", timeline.len())
        }));
    }
    let bars = SymbolBars::new(timeline.rows(0), feed.interval.millis(), &tape.accepted);
    let accounts =
        config.accounts.iter().map(|a| account_report(a, &engine, &tape, &bars, &feed.symbol, options)).collect();
    let mut notes = Vec::new();
    if !config.analysts.is_empty() {
        notes.push(format!("LLM analysts {}: {NOT_ANALYSED}", config.analysts.join(", ")));
    }
    for a in config.accounts.iter().filter(|a| a.executor != tradeflow_risk::ExecutorKind::Paper) {
        notes.push(format!("account {}: executor {} simulated on the paper book", a.id, a.executor.as_str()));
    }
    if config.feeds.len() > 1 {
        notes.push(format!(
            "statistics and trades are about {} (the first input); equity covers every symbol",
            feed.symbol
        ));
    }
    Ok(Report {
        accounts,
        candles: tape.candles,
        refused: tape.refused.iter().map(ToString::to_string).collect(),
        signals: tape.signals,
        decisions: tape.decisions,
        notes,
        bars: bars.bars,
    })
}

fn account_report(
    a: &AccountConfig,
    engine: &Engine,
    tape: &Tape,
    bars: &SymbolBars,
    symbol: &str,
    options: &ReportOptions,
) -> AccountReport {
    let t = tape.tapes.get(&a.id).cloned().unwrap_or_default();
    let trades = trades(&t.fills, symbol, bars, a.paper.taker_fee, true);
    // The book's equity at each bar of the first input: the equity recorded after the last row
    // of the bar's time (every symbol's positions marked), carried over rows without one.
    let mut book_equity = Vec::with_capacity(bars.bars.len());
    let mut k = 0;
    let mut current = a.starting_balance;
    for b in &bars.bars {
        while k < t.equity.len() && t.equity[k].0 <= b.time_ms {
            current = t.equity[k].1;
            k += 1;
        }
        book_equity.push(current);
    }
    let traded_other = t.fills.iter().any(|f| f.symbol != symbol);
    // One symbol: backtesting.py's curve from the trades (the same as the book's, except that
    // the last bar counts a finalised trade's exit commission). Several: the book's.
    let (curve, stats) = match stats_for(a, bars, &trades, &book_equity, traded_other, options) {
        Ok((curve, stats)) => (curve, Ok(stats)),
        Err(e) => (book_equity.clone(), Err(e.to_string())),
    };
    let mut peak = f64::MIN;
    let equity = bars
        .bars
        .iter()
        .zip(&bars.rows)
        .zip(&curve)
        .map(|((b, row), e)| {
            peak = peak.max(*e);
            EquityPoint {
                time_ms: b.time_ms,
                bar: *row,
                equity: *e,
                drawdown: if peak > 0.0 { 1.0 - e / peak } else { 0.0 },
            }
        })
        .collect();
    let book = engine.book(&a.id);
    let (stats, stats_error) = match stats {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    AccountReport {
        id: a.id.clone(),
        symbol: symbol.into(),
        stats,
        stats_error,
        trades: bars.to_rows(&trades),
        equity,
        final_balance: book.map_or(a.starting_balance, |b| b.balance()),
        final_equity: book.map_or(a.starting_balance, |b| b.equity()),
        fill_count: t.fills.len(),
        order_count: t.orders,
        rejection_count: t.rejections,
    }
}

fn stats_for(
    a: &AccountConfig,
    bars: &SymbolBars,
    trades: &[Trade],
    book_equity: &[f64],
    traded_other: bool,
    options: &ReportOptions,
) -> Result<(Vec<f64>, Stats), InputError> {
    let curve = if traded_other { book_equity.to_vec() } else { equity_curve(&bars.bars, trades, a.starting_balance)? };
    let first_trading_bar = options.first_trading_bar.min(bars.bars.len().saturating_sub(1));
    let stats =
        compute_stats(&bars.bars, trades, &curve, &StatsOptions { first_trading_bar, ..StatsOptions::default() })?;
    Ok((curve, stats))
}
