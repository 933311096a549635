//! A run's summary statistics, under backtesting.py 0.6.6's names and definitions
//! (`backtesting/_stats.py`, `compute_stats`).
//!
//! Every percentage is × 100. A statistic that is undefined (no trades, no losses, a zero
//! deviation …) is NaN in Rust and `null` in JSON, where backtesting.py has NaN, NaT or ±∞.
//! Durations are [`Span`]s (milliseconds), written like pandas' `Timedelta`.

use serde::Serialize;

use crate::equity::{drawdown, drawdown_periods};
use crate::error::{InputError, check_run};
use crate::num::{div_or_nan, finite_or_null, geometric_mean, mean_or_nan, sample_var_or_nan};
use crate::time::{Calendar, DAY_MS, Span, Timestamp, data_period, round_up_ns, weekday};
use crate::{Bar, Trade};

/// What a run's statistics depend on besides its bars, trades and equity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsOptions {
    /// The first bar the strategy could trade on, i.e. the warm-up of its indicators
    /// (backtesting.py's `_indicator_warmup_nbars`: the first row where every indicator has a
    /// value; 19 for an SMA(20)). Buy & hold starts at this bar's close.
    pub first_trading_bar: usize,
    /// Annual risk-free rate (fraction) for Sharpe, Sortino and Alpha; backtesting.py's
    /// `Backtest.run` uses 0.
    pub risk_free_rate: f64,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions { first_trading_bar: 0, risk_free_rate: 0.0 }
    }
}

/// The statistics of one run. Field order and JSON keys are backtesting.py's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Time of the first bar.
    #[serde(rename = "Start")]
    pub start: Timestamp,
    /// Time of the last bar.
    #[serde(rename = "End")]
    pub end: Timestamp,
    /// End − Start (not rounded).
    #[serde(rename = "Duration")]
    pub duration: Span,
    /// Share of the bars (rows, not time) with a trade open: bars `entry_bar..=exit_bar` of any trade.
    #[serde(rename = "Exposure Time [%]", serialize_with = "finite_or_null")]
    pub exposure_time_pct: f64,
    /// Equity at the last bar.
    #[serde(rename = "Equity Final [$]", serialize_with = "finite_or_null")]
    pub equity_final: f64,
    /// Highest equity at any bar.
    #[serde(rename = "Equity Peak [$]", serialize_with = "finite_or_null")]
    pub equity_peak: f64,
    /// Σ of the trades' commissions (backtesting.py leaves the key out when it is 0; here it is 0).
    #[serde(rename = "Commissions [$]", serialize_with = "finite_or_null")]
    pub commissions: f64,
    /// (last equity − first equity) / first equity (the first bar's equity, not the cash).
    #[serde(rename = "Return [%]", serialize_with = "finite_or_null")]
    pub return_pct: f64,
    /// (last close − close at the first trading bar) / that close.
    #[serde(rename = "Buy & Hold Return [%]", serialize_with = "finite_or_null")]
    pub buy_and_hold_return_pct: f64,
    /// (1 + g)^N − 1: g = geometric mean of the period returns of the equity resampled to days
    /// (last value per calendar day, UTC; weeks, months or years for bars of 7, 31 or 365 days),
    /// N = periods per year (365 days when more than 60 % of 2/7 of the bars fall on weekends,
    /// else 252; 52, 12, 1 for weekly, monthly, yearly bars).
    #[serde(rename = "Return (Ann.) [%]", serialize_with = "finite_or_null")]
    pub return_ann_pct: f64,
    /// √((var + (1 + g)²)^N − (1 + g)^(2N)), var = sample variance (ddof 1) of the period
    /// returns: the volatility of a compounded return over N periods.
    #[serde(rename = "Volatility (Ann.) [%]", serialize_with = "finite_or_null")]
    pub volatility_ann_pct: f64,
    /// (last equity / first equity)^(1 / years) − 1, years = Duration in days (seconds
    /// included, fractions of a second not) / 365.25.
    #[serde(rename = "CAGR [%]", serialize_with = "finite_or_null")]
    pub cagr_pct: f64,
    /// (Return (Ann.) − risk-free) / Volatility (Ann.).
    #[serde(rename = "Sharpe Ratio", serialize_with = "finite_or_null")]
    pub sharpe_ratio: f64,
    /// (annual return − risk-free) / (√mean(min(r, 0)²) × √N), r = the period returns.
    #[serde(rename = "Sortino Ratio", serialize_with = "finite_or_null")]
    pub sortino_ratio: f64,
    /// Annual return / max drawdown (fractions).
    #[serde(rename = "Calmar Ratio", serialize_with = "finite_or_null")]
    pub calmar_ratio: f64,
    /// Return − risk-free − Beta × (Buy & Hold − risk-free), in percent (Jensen's alpha).
    #[serde(rename = "Alpha [%]", serialize_with = "finite_or_null")]
    pub alpha_pct: f64,
    /// cov(equity log returns, close log returns) / var(close log returns), per bar, ddof 1.
    #[serde(rename = "Beta", serialize_with = "finite_or_null")]
    pub beta: f64,
    /// −(largest drawdown), a negative percentage (0 without a drawdown).
    #[serde(rename = "Max. Drawdown [%]", serialize_with = "finite_or_null")]
    pub max_drawdown_pct: f64,
    /// −(mean depth of the drawdown periods).
    #[serde(rename = "Avg. Drawdown [%]", serialize_with = "finite_or_null")]
    pub avg_drawdown_pct: f64,
    /// Longest drawdown period (peak to recovery, or to the end), rounded up to the bar
    /// period's unit (hours for hourly bars).
    #[serde(rename = "Max. Drawdown Duration")]
    pub max_drawdown_duration: Option<Span>,
    /// Mean drawdown period length, rounded up likewise.
    #[serde(rename = "Avg. Drawdown Duration")]
    pub avg_drawdown_duration: Option<Span>,
    #[serde(rename = "# Trades")]
    pub trades: usize,
    /// Trades with pnl > 0 / trades.
    #[serde(rename = "Win Rate [%]", serialize_with = "finite_or_null")]
    pub win_rate_pct: f64,
    /// Largest trade return.
    #[serde(rename = "Best Trade [%]", serialize_with = "finite_or_null")]
    pub best_trade_pct: f64,
    /// Smallest trade return.
    #[serde(rename = "Worst Trade [%]", serialize_with = "finite_or_null")]
    pub worst_trade_pct: f64,
    /// Geometric mean of the trade returns (0 when one lost everything).
    #[serde(rename = "Avg. Trade [%]", serialize_with = "finite_or_null")]
    pub avg_trade_pct: f64,
    /// Longest trade (exit time − entry time), rounded up to the bar period's unit.
    #[serde(rename = "Max. Trade Duration")]
    pub max_trade_duration: Option<Span>,
    /// Mean trade duration, rounded up likewise.
    #[serde(rename = "Avg. Trade Duration")]
    pub avg_trade_duration: Option<Span>,
    /// Σ positive trade returns / |Σ negative trade returns| (returns, not pnl).
    #[serde(rename = "Profit Factor", serialize_with = "finite_or_null")]
    pub profit_factor: f64,
    /// Arithmetic mean of the trade returns.
    #[serde(rename = "Expectancy [%]", serialize_with = "finite_or_null")]
    pub expectancy_pct: f64,
    /// System Quality Number: √trades × mean(pnl) / sample std(pnl).
    #[serde(rename = "SQN", serialize_with = "finite_or_null")]
    pub sqn: f64,
    /// W − (1 − W) / (mean winning pnl / mean |losing pnl|), W = win rate (fraction).
    #[serde(rename = "Kelly Criterion", serialize_with = "finite_or_null")]
    pub kelly_criterion: f64,
}

/// The statistics of a run from its bars, its closed trades and its equity at each bar
/// ([`crate::equity_curve`] builds the one backtesting.py records).
pub fn compute_stats(
    bars: &[Bar],
    trades: &[Trade],
    equity: &[f64],
    options: &StatsOptions,
) -> Result<Stats, InputError> {
    check_run(bars, trades)?;
    if equity.len() != bars.len() {
        return Err(InputError::EquityLength { bars: bars.len(), equity: equity.len() });
    }
    if options.first_trading_bar >= bars.len() {
        return Err(InputError::FirstTradingBar { first: options.first_trading_bar, bars: bars.len() });
    }
    let n = bars.len();
    let times: Vec<i64> = bars.iter().map(|b| b.time_ms).collect();
    let period = data_period(&times);
    let rf = options.risk_free_rate;
    let (first, last) = (equity[0], equity[n - 1]);
    let duration_ms = times[n - 1] - times[0];

    let mut exposed = vec![false; n];
    for t in trades {
        exposed[t.entry_bar..=t.exit_bar].fill(true);
    }

    let return_pct = (last - first) / first * 100.0;
    let c0 = bars[options.first_trading_bar].close;
    let buy_and_hold_return_pct = (bars[n - 1].close - c0) / c0 * 100.0;

    // Annualisation: equity resampled to calendar periods, compounded.
    let (calendar, per_year) = annualisation(&times, period);
    let period_returns = resampled_returns(&times, equity, calendar);
    let g = geometric_mean(&period_returns);
    let annual = (1.0 + g).powf(per_year) - 1.0;
    let volatility = ((sample_var_or_nan(&period_returns) + (1.0 + g).powi(2)).powf(per_year)
        - (1.0 + g).powf(2.0 * per_year))
    .sqrt();
    let years =
        (duration_ms.div_euclid(DAY_MS) as f64 + (duration_ms.rem_euclid(DAY_MS) / 1_000) as f64 / 86_400.0) / 365.25;
    let cagr = if years == 0.0 { f64::NAN } else { (last / first).powf(1.0 / years) - 1.0 };
    let downside = mean_or_nan(&period_returns.iter().map(|r| r.min(0.0).powi(2)).collect::<Vec<_>>()).sqrt();
    // backtesting.py divides by a zero downside deviation to ±∞ (written as null here).
    let sortino = (annual - rf) / (downside * per_year.sqrt());

    let dd = drawdown(equity);
    let max_dd = dd.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let max_dd = if max_dd.is_finite() { max_dd } else { 0.0 };
    let beta = beta(equity, bars);
    let periods = drawdown_periods(&times, &dd);
    // Without any period backtesting.py averages the non-zero drawdowns themselves (a dip on the
    // last bar alone); its durations are then not time spans, written as null here.
    let depths: Vec<f64> = if periods.is_empty() {
        dd.iter().copied().filter(|d| *d != 0.0 && !d.is_nan()).collect()
    } else {
        periods.iter().map(|p| p.depth).collect()
    };
    let dd_durations: Vec<i64> = periods.iter().map(|p| p.duration_ms).collect();

    let pnl: Vec<f64> = trades.iter().map(|t| t.pnl).collect();
    let returns: Vec<f64> = trades.iter().map(|t| t.return_pct / 100.0).collect();
    let durations: Vec<i64> = trades.iter().map(|t| t.duration_ms).collect();
    let n_trades = trades.len();
    let win_rate =
        if n_trades == 0 { f64::NAN } else { pnl.iter().filter(|p| **p > 0.0).count() as f64 / n_trades as f64 };
    let wins: Vec<f64> = pnl.iter().copied().filter(|p| *p > 0.0).collect();
    let losses: Vec<f64> = pnl.iter().copied().filter(|p| *p < 0.0).collect();
    let sum_where = |keep: fn(f64) -> bool| returns.iter().copied().filter(|r| keep(*r)).sum::<f64>();

    Ok(Stats {
        start: Timestamp(times[0]),
        end: Timestamp(times[n - 1]),
        duration: Span(duration_ms),
        exposure_time_pct: exposed.iter().filter(|e| **e).count() as f64 / n as f64 * 100.0,
        equity_final: last,
        equity_peak: equity.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        commissions: trades.iter().map(|t| t.commission).sum(),
        return_pct,
        buy_and_hold_return_pct,
        return_ann_pct: annual * 100.0,
        volatility_ann_pct: volatility * 100.0,
        cagr_pct: cagr * 100.0,
        sharpe_ratio: div_or_nan(annual * 100.0 - rf * 100.0, volatility * 100.0),
        sortino_ratio: sortino,
        calmar_ratio: div_or_nan(annual, max_dd),
        alpha_pct: return_pct - rf * 100.0 - beta * (buy_and_hold_return_pct - rf * 100.0),
        beta,
        max_drawdown_pct: -max_dd * 100.0,
        avg_drawdown_pct: -mean_or_nan(&depths) * 100.0,
        max_drawdown_duration: dd_durations.iter().max().map(|&d| round_up_ns(i128::from(d) * 1_000_000, period)),
        avg_drawdown_duration: mean_duration(&dd_durations, period),
        trades: n_trades,
        win_rate_pct: win_rate * 100.0,
        best_trade_pct: returns.iter().copied().fold(f64::NAN, f64::max) * 100.0,
        worst_trade_pct: returns.iter().copied().fold(f64::NAN, f64::min) * 100.0,
        avg_trade_pct: geometric_mean(&returns) * 100.0,
        max_trade_duration: durations.iter().max().map(|&d| round_up_ns(i128::from(d) * 1_000_000, period)),
        avg_trade_duration: mean_duration(&durations, period),
        profit_factor: div_or_nan(sum_where(|r| r > 0.0), sum_where(|r| r < 0.0).abs()),
        expectancy_pct: mean_or_nan(&returns) * 100.0,
        sqn: (n_trades as f64).sqrt() * mean_or_nan(&pnl) / {
            // pandas' `pl.std() or np.nan`: NaN below two trades, and a zero deviation is NaN.
            let sd = sample_var_or_nan(&pnl).sqrt();
            if sd == 0.0 { f64::NAN } else { sd }
        },
        kelly_criterion: win_rate - (1.0 - win_rate) / (mean_or_nan(&wins) / -mean_or_nan(&losses)),
    })
}

/// The calendar periods the equity is resampled to and how many make a year, from the bar period
/// (backtesting.py: whole days of the period 7, 31, 365 → weeks (52), months (12), years (1);
/// anything else → days, 365 a year when the data trades on weekends, else 252).
fn annualisation(times: &[i64], period: Option<i64>) -> (Calendar, f64) {
    let period_days = period.map(|p| p.div_euclid(DAY_MS));
    match period_days {
        Some(7) => (Calendar::Week, 52.0),
        Some(31) => (Calendar::Month, 12.0),
        Some(365) => (Calendar::Year, 1.0),
        _ => {
            let weekend = times.iter().filter(|t| weekday(t.div_euclid(DAY_MS)) >= 5).count() as f64;
            let has_weekends = weekend / times.len() as f64 > 2.0 / 7.0 * 0.6;
            (Calendar::Day, if has_weekends { 365.0 } else { 252.0 })
        }
    }
}

/// Simple returns between the last equity of consecutive calendar periods that have bars
/// (pandas: `resample(freq).last().dropna().pct_change().dropna()`; a 0 → 0 step is dropped).
fn resampled_returns(times: &[i64], equity: &[f64], calendar: Calendar) -> Vec<f64> {
    let mut last_per_period: Vec<f64> = Vec::new();
    let mut current = None;
    for (&t, &e) in times.iter().zip(equity) {
        let bucket = calendar.bucket(t);
        if current == Some(bucket) {
            if !e.is_nan() {
                *last_per_period.last_mut().expect("a period is open") = e;
            }
        } else {
            current = Some(bucket);
            last_per_period.push(e);
        }
    }
    last_per_period.retain(|e| !e.is_nan());
    last_per_period.windows(2).map(|w| w[1] / w[0] - 1.0).filter(|r| !r.is_nan()).collect()
}

/// Mean of durations, truncated to the nanosecond as pandas does, then rounded up.
fn mean_duration(durations_ms: &[i64], period: Option<i64>) -> Option<Span> {
    if durations_ms.is_empty() {
        return None;
    }
    let total_ns: i128 = durations_ms.iter().map(|&d| i128::from(d) * 1_000_000).sum();
    Some(round_up_ns(total_ns.div_euclid(durations_ms.len() as i128), period))
}

/// Beta of the equity against the closes, from per-bar log returns (NaN below two returns or
/// where a log return is undefined).
fn beta(equity: &[f64], bars: &[Bar]) -> f64 {
    let e: Vec<f64> = equity.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    let m: Vec<f64> = bars.windows(2).map(|w| (w[1].close / w[0].close).ln()).collect();
    if e.len() < 2 || e.iter().chain(&m).any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    let (me, mm) = (mean_or_nan(&e), mean_or_nan(&m));
    let cov: f64 = e.iter().zip(&m).map(|(a, b)| (a - me) * (b - mm)).sum::<f64>() / (e.len() - 1) as f64;
    cov / sample_var_or_nan(&m)
}
