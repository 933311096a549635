//! Every statistic on small series, against values worked out by hand (the formula with the
//! series' own numbers, in the comments and the `hand` expressions) and against backtesting.py
//! 0.6.6 (the `bt` literals: `Backtest(df, S, cash=10_000, commission=…, finalize_trades=True)
//! .run()` on the same bars, with a strategy that places exactly these orders one bar earlier;
//! its equity curves and trade lists are the ones asserted here too).
//!
//! Cases: no trades; one trade; all losses (and durations rounded up to the hour); flat equity;
//! a mixed run of weekday bars (252 days a year) with a short.

use tradeflow_analytics::{
    Bar, ExitReason, Fill, Side, Span, Stats, StatsOptions, Trade, compute_stats, drawdown, equity_curve,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2024-01-01 00:00 UTC, a Monday.
const JAN_1: i64 = 1_704_067_200_000;
const CASH: f64 = 10_000.0;

fn bars(times: &[i64], open_close: &[(f64, f64)]) -> Vec<Bar> {
    times
        .iter()
        .zip(open_close)
        .map(|(&time_ms, &(open, close))| Bar { time_ms, open, high: open.max(close), low: open.min(close), close })
        .collect()
}

fn every(step: i64, n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| JAN_1 + i * step).collect()
}

/// A round trip at the opens of two bars, each side charged `rate` of its value.
fn trade(bars: &[Bar], side: Side, size: f64, entry: usize, exit: usize, rate: f64) -> Trade {
    let fill = |bar: usize| {
        let price = bars[bar].open;
        Fill { bar, time_ms: bars[bar].time_ms, price, commission: rate * size * price }
    };
    let reason = if exit == bars.len() - 1 { ExitReason::End } else { ExitReason::Signal };
    Trade::from_fills(side, size, fill(entry), fill(exit), reason)
}

/// `ours` equals the hand-worked value and backtesting.py's, both within 1e-9 relative
/// (or all three are undefined).
#[track_caller]
fn same(name: &str, ours: f64, hand: f64, bt: f64) {
    let close = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * b.abs().max(1e-300);
    assert!(close(ours, hand), "{name}: ours {ours}, by hand {hand}");
    assert!(close(ours, bt), "{name}: ours {ours}, backtesting.py {bt}");
}

fn span(ms: i64) -> Option<Span> {
    Some(Span(ms))
}

/// Sample covariance / sample variance of per-bar log returns (Beta), written out.
fn beta_by_hand(equity: &[f64], closes: &[f64]) -> f64 {
    let log = |xs: &[f64]| xs.windows(2).map(|w| (w[1] / w[0]).ln()).collect::<Vec<_>>();
    let (e, m) = (log(equity), log(closes));
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let (me, mm) = (mean(&e), mean(&m));
    let cov = e.iter().zip(&m).map(|(a, b)| (a - me) * (b - mm)).sum::<f64>();
    let var = m.iter().map(|b| (b - mm).powi(2)).sum::<f64>();
    cov / var
}

fn stats(bars: &[Bar], trades: &[Trade]) -> (Vec<f64>, Stats) {
    let equity = equity_curve(bars, trades, CASH).expect("a valid run");
    let s = compute_stats(bars, trades, &equity, &StatsOptions::default()).expect("stats");
    (equity, s)
}

fn assert_equity(ours: &[f64], bt: &[f64]) {
    assert_eq!(ours.len(), bt.len());
    for (i, (a, b)) in ours.iter().zip(bt).enumerate() {
        assert!((a - b).abs() < 1e-9, "equity at bar {i}: {a} vs {b}");
    }
}

/// Daily bars Monday 2024-01-01 … Sunday 2024-01-07: two weekend days of seven, so 365 a year.
fn week() -> Vec<Bar> {
    let oc = [
        (100.0, 100.0),
        (100.0, 110.0),
        (110.0, 105.0),
        (105.0, 120.0),
        (120.0, 115.0),
        (115.0, 118.0),
        (118.0, 118.0),
    ];
    bars(&every(DAY, 7), &oc)
}

#[test]
fn no_trades() {
    let b = week();
    let (equity, s) = stats(&b, &[]);
    assert_eq!(equity, vec![CASH; 7]);
    assert_eq!(s.start.to_string(), "2024-01-01T00:00:00");
    assert_eq!(s.end.to_string(), "2024-01-07T00:00:00");
    assert_eq!(s.duration.to_string(), "6 days 00:00:00");
    same("exposure", s.exposure_time_pct, 0.0, 0.0);
    same("final", s.equity_final, CASH, 10000.0);
    same("peak", s.equity_peak, CASH, 10000.0);
    same("commissions", s.commissions, 0.0, 0.0); // backtesting.py leaves the key out at 0
    same("return", s.return_pct, 0.0, 0.0);
    // Buy & hold from the first close: (118 − 100) / 100.
    same("buy & hold", s.buy_and_hold_return_pct, 18.0, 18.0);
    // Every daily return is 0: g = 0, annual return 0, volatility √((0 + 1)^365 − 1) = 0.
    same("return ann", s.return_ann_pct, 0.0, 0.0);
    same("volatility", s.volatility_ann_pct, 0.0, 0.0);
    same("cagr", s.cagr_pct, 0.0, 0.0);
    // 0 / 0 volatility, 0 / 0 downside, 0 / 0 drawdown: undefined.
    same("sharpe", s.sharpe_ratio, f64::NAN, f64::NAN);
    same("sortino", s.sortino_ratio, f64::NAN, f64::NAN);
    same("calmar", s.calmar_ratio, f64::NAN, f64::NAN);
    // Flat equity has zero covariance with anything: beta 0, alpha = 0 − 0 × 18.
    same("beta", s.beta, 0.0, 0.0);
    same("alpha", s.alpha_pct, 0.0, 0.0);
    same("max dd", s.max_drawdown_pct, 0.0, -0.0);
    same("avg dd", s.avg_drawdown_pct, f64::NAN, f64::NAN);
    assert_eq!((s.max_drawdown_duration, s.avg_drawdown_duration), (None, None));
    assert_eq!(s.trades, 0);
    for (name, x) in [
        ("win rate", s.win_rate_pct),
        ("best", s.best_trade_pct),
        ("worst", s.worst_trade_pct),
        ("avg trade", s.avg_trade_pct),
        ("profit factor", s.profit_factor),
        ("expectancy", s.expectancy_pct),
        ("sqn", s.sqn),
        ("kelly", s.kelly_criterion),
    ] {
        same(name, x, f64::NAN, f64::NAN);
    }
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (None, None));

    // Undefined statistics are JSON null, durations strings.
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["Sharpe Ratio"].is_null() && json["Win Rate [%]"].is_null() && json["Avg. Trade Duration"].is_null());
    assert_eq!(json["Duration"], "6 days 00:00:00");
    assert_eq!(json["# Trades"], 0);
    assert_eq!(json["Commissions [$]"], 0.0);
}

#[test]
fn one_trade() {
    let b = week();
    // Long 10 from bar 2's open (110) to bar 4's open (120), 0.001 a side: fees 1.1 + 1.2.
    let t = [trade(&b, Side::Long, 10.0, 2, 4, 0.001)];
    assert!((t[0].pnl - 97.7).abs() < 1e-9, "10 × 10 − 2.3");
    let (equity, s) = stats(&b, &t);
    // 10000, 10000, 9998.9 + 10 × (105 − 110), 9998.9 + 10 × (120 − 110), then 10000 + 97.7.
    assert_equity(&equity, &[10000.0, 10000.0, 9948.9, 10098.9, 10097.7, 10097.7, 10097.7]);
    same("exposure", s.exposure_time_pct, 3.0 / 7.0 * 100.0, 42.857142857142854);
    same("final", s.equity_final, 10097.7, 10097.699999999999);
    same("peak", s.equity_peak, 10098.9, 10098.9);
    same("commissions", s.commissions, 2.3, 2.3);
    same("return", s.return_pct, 0.977, 0.9769999999999892);
    same("buy & hold", s.buy_and_hold_return_pct, 18.0, 18.0);
    // One bar a day: the daily returns are the bar returns; their geometric mean telescopes to
    // (10097.7 / 10000)^(1/6) − 1; 365 periods a year.
    let r: Vec<f64> = equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let g = (10097.7f64 / 10000.0).powf(1.0 / 6.0) - 1.0;
    let annual = (1.0 + g).powf(365.0) - 1.0;
    same("return ann", s.return_ann_pct, annual * 100.0, 80.66188880002822);
    let mean = r.iter().sum::<f64>() / 6.0;
    let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 5.0;
    let vol = ((var + (1.0 + g).powi(2)).powf(365.0) - (1.0 + g).powf(730.0)).sqrt();
    same("volatility", s.volatility_ann_pct, vol * 100.0, 23.8410766648689);
    // Six days = 6 / 365.25 years.
    same("cagr", s.cagr_pct, ((1.00977f64).powf(365.25 / 6.0) - 1.0) * 100.0, 80.73509112873126);
    same("sharpe", s.sharpe_ratio, annual / vol, 3.3833156922349827);
    // Downside: the two losing days, −0.00511 and −1.2 / 10098.9, over all six days.
    let downside = ((0.00511f64.powi(2) + (1.2f64 / 10098.9).powi(2)) / 6.0).sqrt();
    same("sortino", s.sortino_ratio, annual / (downside * 365f64.sqrt()), 20.23295408699736);
    // Deepest drawdown: 1 − 9948.9 / 10000 = 0.00511.
    same("calmar", s.calmar_ratio, annual / 0.00511, 157.85105440318452);
    let closes: Vec<f64> = b.iter().map(|b| b.close).collect();
    let beta = beta_by_hand(&equity, &closes);
    same("beta", s.beta, beta, 0.07312332706428358);
    same("alpha", s.alpha_pct, 0.977 - beta * 18.0, -0.33921988715711526);
    same("max dd", s.max_drawdown_pct, -0.511, -0.5110000000000059);
    // Two drawdowns: bars 1→3 (0.00511, 2 days) and 3→end (1.2 / 10098.9, 3 days).
    same("avg dd", s.avg_drawdown_pct, -(0.00511 + 1.2 / 10098.9) / 2.0 * 100.0, -0.26144124112527645);
    // Max 3 days; mean 2.5 days, rounded up to the bars' unit (days): 3 days.
    assert_eq!(s.max_drawdown_duration, span(3 * DAY));
    assert_eq!(s.avg_drawdown_duration, span(3 * DAY));
    assert_eq!(s.trades, 1);
    same("win rate", s.win_rate_pct, 100.0, 100.0);
    // Return: 120/110 − 1 − 2.3 / (10 × 110).
    let ret = (120.0 / 110.0 - 1.0 - 2.3 / 1100.0) * 100.0;
    same("best", s.best_trade_pct, ret, 8.881818181818174);
    same("worst", s.worst_trade_pct, ret, 8.881818181818174);
    same("avg trade", s.avg_trade_pct, ret, 8.881818181818169);
    same("expectancy", s.expectancy_pct, ret, 8.881818181818174);
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (span(2 * DAY), span(2 * DAY)));
    // No losing trade: profit factor x / NaN; one trade: no deviation for SQN; no loss for Kelly.
    same("profit factor", s.profit_factor, f64::NAN, f64::NAN);
    same("sqn", s.sqn, f64::NAN, f64::NAN);
    same("kelly", s.kelly_criterion, f64::NAN, f64::NAN);
}

#[test]
fn all_losses_within_one_day() {
    // Hourly bars of one calendar day: no daily return, so nothing annualised.
    let oc = [
        (100.0, 100.0),
        (100.0, 99.0),
        (99.0, 98.0),
        (98.0, 99.0),
        (99.0, 97.0),
        (97.0, 96.0),
        (96.0, 95.0),
        (95.0, 95.0),
    ];
    let b = bars(&every(HOUR, 8), &oc);
    // Long 10: 99 → 98 (bars 2 → 3, 1 h) and 99 → 96 (bars 4 → 6, 2 h), 0.001 a side.
    let t = [trade(&b, Side::Long, 10.0, 2, 3, 0.001), trade(&b, Side::Long, 10.0, 4, 6, 0.001)];
    assert!((t[0].pnl + 11.97).abs() < 1e-9 && (t[1].pnl + 31.95).abs() < 1e-9);
    let (equity, s) = stats(&b, &t);
    assert_equity(&equity, &[10000.0, 10000.0, 9989.01, 9988.03, 9967.04, 9957.04, 9956.08, 9956.08]);
    assert_eq!(s.duration.to_string(), "0 days 07:00:00");
    same("exposure", s.exposure_time_pct, 5.0 / 8.0 * 100.0, 62.5);
    same("final", s.equity_final, 9956.08, 9956.080000000002);
    same("peak", s.equity_peak, 10000.0, 10000.0);
    same("commissions", s.commissions, 3.92, 3.92);
    same("return", s.return_pct, -0.4392, -0.43919999999998255);
    same("buy & hold", s.buy_and_hold_return_pct, -5.0, -5.0);
    for (name, x) in [
        ("return ann", s.return_ann_pct),
        ("volatility", s.volatility_ann_pct),
        ("sharpe", s.sharpe_ratio),
        ("sortino", s.sortino_ratio),
        ("calmar", s.calmar_ratio),
    ] {
        same(name, x, f64::NAN, f64::NAN);
    }
    // Seven hours = 25200 s / 86400 / 365.25 years.
    let years = 7.0 / 24.0 / 365.25;
    same("cagr", s.cagr_pct, (0.995608f64.powf(1.0 / years) - 1.0) * 100.0, -99.59625921895079);
    let closes: Vec<f64> = b.iter().map(|b| b.close).collect();
    let beta = beta_by_hand(&equity, &closes);
    same("beta", s.beta, beta, 0.05711306756105307);
    same("alpha", s.alpha_pct, -0.4392 - beta * -5.0, -0.15363466219471722);
    // Never back at the peak: one drawdown from bar 1 to the end (6 h), 43.92 / 10000 deep.
    same("max dd", s.max_drawdown_pct, -0.4392, -0.43919999999998405);
    same("avg dd", s.avg_drawdown_pct, -0.4392, -0.43919999999998405);
    assert_eq!((s.max_drawdown_duration, s.avg_drawdown_duration), (span(6 * HOUR), span(6 * HOUR)));
    assert_eq!(s.trades, 2);
    same("win rate", s.win_rate_pct, 0.0, 0.0);
    let (r1, r2) = (98.0 / 99.0 - 1.0 - 1.97 / 990.0, 96.0 / 99.0 - 1.0 - 1.95 / 990.0);
    same("best", s.best_trade_pct, r1 * 100.0, -1.2090909090909046);
    same("worst", s.worst_trade_pct, r2 * 100.0, -3.2272727272727244);
    same("avg trade", s.avg_trade_pct, (((1.0 + r1) * (1.0 + r2)).sqrt() - 1.0) * 100.0, -2.2233887758460913);
    same("expectancy", s.expectancy_pct, (r1 + r2) / 2.0 * 100.0, -2.2181818181818143);
    // Durations 1 h and 2 h: max 2 h; mean 1.5 h rounded up to the hour: 2 h.
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (span(2 * HOUR), span(2 * HOUR)));
    assert_eq!(s.avg_trade_duration.unwrap().to_string(), "0 days 02:00:00");
    // No winning return: 0 / |r1 + r2| = 0.
    same("profit factor", s.profit_factor, 0.0, 0.0);
    // √2 × mean / sample std = √2 × (−21.96) / (19.98 / √2) = −43.92 / 19.98.
    same("sqn", s.sqn, -43.92 / 19.98, -2.198198198198199);
    // No winning trade: the mean win is undefined.
    same("kelly", s.kelly_criterion, f64::NAN, f64::NAN);
}

#[test]
fn flat_equity() {
    // Six flat daily bars (Monday → Saturday); 5 units in at bar 2 and out at bar 4, no fees.
    let b = bars(&every(DAY, 6), &[(100.0, 100.0); 6]);
    let t = [trade(&b, Side::Long, 5.0, 2, 4, 0.0)];
    let (equity, s) = stats(&b, &t);
    assert_eq!(equity, vec![CASH; 6]);
    same("exposure", s.exposure_time_pct, 50.0, 50.0);
    same("return", s.return_pct, 0.0, 0.0);
    same("buy & hold", s.buy_and_hold_return_pct, 0.0, 0.0);
    same("return ann", s.return_ann_pct, 0.0, 0.0);
    same("volatility", s.volatility_ann_pct, 0.0, 0.0);
    same("cagr", s.cagr_pct, 0.0, 0.0);
    same("sharpe", s.sharpe_ratio, f64::NAN, f64::NAN);
    same("sortino", s.sortino_ratio, f64::NAN, f64::NAN);
    same("calmar", s.calmar_ratio, f64::NAN, f64::NAN);
    // Flat closes: zero market variance, beta 0 / 0.
    same("beta", s.beta, f64::NAN, f64::NAN);
    same("alpha", s.alpha_pct, f64::NAN, f64::NAN);
    same("max dd", s.max_drawdown_pct, 0.0, -0.0);
    same("avg dd", s.avg_drawdown_pct, f64::NAN, f64::NAN);
    assert_eq!(s.max_drawdown_duration, None);
    // A zero pnl is no win.
    same("win rate", s.win_rate_pct, 0.0, 0.0);
    same("best", s.best_trade_pct, 0.0, 0.0);
    same("worst", s.worst_trade_pct, 0.0, 0.0);
    same("avg trade", s.avg_trade_pct, 0.0, 0.0);
    same("expectancy", s.expectancy_pct, 0.0, 0.0);
    same("profit factor", s.profit_factor, f64::NAN, f64::NAN);
    same("sqn", s.sqn, f64::NAN, f64::NAN);
    same("kelly", s.kelly_criterion, f64::NAN, f64::NAN);
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (span(2 * DAY), span(2 * DAY)));
    assert_eq!(drawdown(&equity), vec![0.0; 6]);
}

#[test]
fn mixed_weekdays_with_a_short() {
    // Ten weekday bars, 2024-01-01 … 2024-01-12 (no weekend bar: 252 days a year), 0.002 a side.
    let days = [0, 1, 2, 3, 4, 7, 8, 9, 10, 11];
    let times: Vec<i64> = days.iter().map(|d| JAN_1 + d * DAY).collect();
    let oc = [
        (100.0, 100.0),
        (100.0, 102.0),
        (102.0, 104.0),
        (104.0, 101.0),
        (101.0, 99.0),
        (99.0, 103.0),
        (103.0, 106.0),
        (106.0, 104.0),
        (104.0, 108.0),
        (108.0, 110.0),
    ];
    let b = bars(&times, &oc);
    let t = [
        trade(&b, Side::Long, 20.0, 2, 4, 0.002),  // 102 → 101: −20 − 8.12
        trade(&b, Side::Short, 10.0, 5, 6, 0.002), // 99 → 103: −40 − 4.04
        trade(&b, Side::Long, 15.0, 7, 9, 0.002),  // 106 → 108, closed at the end: 30 − 6.42
    ];
    assert_eq!(t[2].exit_reason, ExitReason::End);
    let pnl = [-28.12, -44.04, 23.58];
    for (t, p) in t.iter().zip(pnl) {
        assert!((t.pnl - p).abs() < 1e-9);
    }
    let (equity, s) = stats(&b, &t);
    let bt_equity = [10000.0, 10000.0, 10035.92, 9975.92, 9971.88, 9929.9, 9927.84, 9894.66, 9954.66, 9951.42];
    assert_equity(&equity, &bt_equity);
    assert_eq!(s.duration.to_string(), "11 days 00:00:00");
    same("exposure", s.exposure_time_pct, 80.0, 80.0);
    same("final", s.equity_final, 9951.42, 9951.42);
    same("peak", s.equity_peak, 10035.92, 10035.92);
    same("commissions", s.commissions, 8.12 + 4.04 + 6.42, 18.58);
    same("return", s.return_pct, -0.4858, -0.48579999999999923);
    same("buy & hold", s.buy_and_hold_return_pct, 10.0, 10.0);
    // Nine daily returns; geometric mean (9951.42 / 10000)^(1/9) − 1; 252 a year.
    let r: Vec<f64> = bt_equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let g = (9951.42f64 / 10000.0).powf(1.0 / 9.0) - 1.0;
    let annual = (1.0 + g).powf(252.0) - 1.0;
    same("return ann", s.return_ann_pct, annual * 100.0, -12.746758721595153);
    let mean = r.iter().sum::<f64>() / 9.0;
    let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 8.0;
    let vol = ((var + (1.0 + g).powi(2)).powf(252.0) - (1.0 + g).powf(504.0)).sqrt();
    same("volatility", s.volatility_ann_pct, vol * 100.0, 5.1910590382529245);
    same("cagr", s.cagr_pct, (0.995142f64.powf(365.25 / 11.0) - 1.0) * 100.0, -14.930428137611617);
    same("sharpe", s.sharpe_ratio, annual / vol, -2.455521816967263);
    let downside = (r.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / 9.0).sqrt();
    same("sortino", s.sortino_ratio, annual / (downside * 252f64.sqrt()), -2.9890771375412584);
    // Peak 10035.92 (bar 2), trough 9894.66 (bar 7), never recovered: one drawdown, Jan 3 → 12.
    let max_dd = 1.0 - 9894.66 / 10035.92;
    same("calmar", s.calmar_ratio, annual / max_dd, -9.056027947701487);
    let closes: Vec<f64> = b.iter().map(|b| b.close).collect();
    let beta = beta_by_hand(&equity, &closes);
    same("beta", s.beta, beta, 0.07548644282033075);
    same("alpha", s.alpha_pct, -0.4858 - beta * 10.0, -1.2406644282033068);
    same("max dd", s.max_drawdown_pct, -max_dd * 100.0, -1.4075441015870993);
    same("avg dd", s.avg_drawdown_pct, -max_dd * 100.0, -1.4075441015870993);
    assert_eq!((s.max_drawdown_duration, s.avg_drawdown_duration), (span(9 * DAY), span(9 * DAY)));
    assert_eq!(s.trades, 3);
    same("win rate", s.win_rate_pct, 100.0 / 3.0, 33.33333333333333);
    let r1 = 101.0 / 102.0 - 1.0 - 8.12 / 2040.0;
    let r2 = -(103.0 / 99.0 - 1.0) - 4.04 / 990.0;
    let r3 = 108.0 / 106.0 - 1.0 - 6.42 / 1590.0;
    same("best", s.best_trade_pct, r3 * 100.0, 1.483018867924528);
    same("worst", s.worst_trade_pct, r2 * 100.0, -4.448484848484853);
    let avg = (((1.0 + r1) * (1.0 + r2) * (1.0 + r3)).powf(1.0 / 3.0) - 1.0) * 100.0;
    same("avg trade", s.avg_trade_pct, avg, -1.4777577546048803);
    same("expectancy", s.expectancy_pct, (r1 + r2 + r3) / 3.0 * 100.0, -1.4479657843697802);
    // 2 days (Jan 3 → 5), 1 day (Jan 8 → 9), 2 days (Jan 10 → 12): mean 1 day 16 h → 2 days.
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (span(2 * DAY), span(2 * DAY)));
    same("profit factor", s.profit_factor, r3 / -(r1 + r2), 0.25451178834031635);
    let m = (-28.12 - 44.04 + 23.58) / 3.0;
    let sd = (pnl.iter().map(|p| (p - m).powi(2)).sum::<f64>() / 2.0).sqrt();
    same("sqn", s.sqn, 3f64.sqrt() * m / sd, -0.7933715079724769);
    // W − (1 − W) / (mean win / mean |loss|) = 1/3 − (2/3) / (23.58 / 36.08).
    same("kelly", s.kelly_criterion, 1.0 / 3.0 - (2.0 / 3.0) / (23.58 / 36.08), -0.6867401752897937);
}

#[test]
fn a_dip_on_the_last_bar_only() {
    // Four flat daily bars; 10 units in and out at the last bar's open (a trade the run closes
    // where it opened), 0.001 a side: the equity dips by the fees on the last bar only.
    let b = bars(&every(DAY, 4), &[(100.0, 100.0); 4]);
    let t = [trade(&b, Side::Long, 10.0, 3, 3, 0.001)];
    let (equity, s) = stats(&b, &t);
    assert_equity(&equity, &[10000.0, 10000.0, 10000.0, 9998.0]);
    same("max dd", s.max_drawdown_pct, -0.02, -0.019999999999997797);
    // No drawdown period (backtesting.py needs two bars after the peak), so it averages the
    // non-zero drawdowns instead: the same 2 / 10000.
    same("avg dd", s.avg_drawdown_pct, -0.02, -0.019999999999997797);
    // backtesting.py then reports that drawdown fraction (0.0002) as the "durations"; no span.
    assert_eq!((s.max_drawdown_duration, s.avg_drawdown_duration), (None, None));
    // A trade within one bar lasts 0.
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (span(0), span(0)));
    same("exposure", s.exposure_time_pct, 25.0, 25.0);
}

#[test]
fn weekly_bars_compound_52_times_a_year() {
    // Eight Sunday bars from 2024-01-07: the bar period is 7 days, so the equity is resampled
    // to weeks ending on Sunday (one bar each) and compounded 52 times a year.
    let oc = [
        (100.0, 100.0),
        (100.0, 104.0),
        (104.0, 98.0),
        (98.0, 107.0),
        (107.0, 111.0),
        (111.0, 109.0),
        (109.0, 115.0),
        (115.0, 112.0),
    ];
    let b = bars(&(0..8).map(|i| JAN_1 + 6 * DAY + i * 7 * DAY).collect::<Vec<_>>(), &oc);
    let t = [trade(&b, Side::Long, 30.0, 2, 5, 0.001), trade(&b, Side::Long, 20.0, 6, 7, 0.001)];
    let (equity, s) = stats(&b, &t);
    let bt_equity = [10000.0, 10000.0, 9816.88, 10086.88, 10206.88, 10203.55, 10321.37, 10319.07];
    assert_equity(&equity, &bt_equity);
    let r: Vec<f64> = bt_equity.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let g = (10319.07f64 / 10000.0).powf(1.0 / 7.0) - 1.0;
    let annual = (1.0 + g).powf(52.0) - 1.0;
    same("return ann", s.return_ann_pct, annual * 100.0, 26.278630509964085);
    let mean = r.iter().sum::<f64>() / 7.0;
    let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0;
    let vol = ((var + (1.0 + g).powi(2)).powf(52.0) - (1.0 + g).powf(104.0)).sqrt();
    same("volatility", s.volatility_ann_pct, vol * 100.0, 12.958493163542967);
    same("sharpe", s.sharpe_ratio, annual / vol, 2.0279078885418245);
    let downside = (r.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / 7.0).sqrt();
    same("sortino", s.sortino_ratio, annual / (downside * 52f64.sqrt()), 5.263967971302476);
    // 49 days = 49 / 365.25 years.
    same("cagr", s.cagr_pct, ((10319.07f64 / 10000.0).powf(365.25 / 49.0) - 1.0) * 100.0, 26.379850347662593);
    // Deepest drawdown: bar 2, 1 − 9816.88 / 10000 (the dips at bars 5 and 7 are shallower).
    same("max dd", s.max_drawdown_pct, -(1.0 - 9816.88 / 10000.0) * 100.0, -1.8312000000000106);
    same("calmar", s.calmar_ratio, annual / (1.0 - 9816.88 / 10000.0), 14.350497220382227);
    // Peaks at bars 0, 1, 3, 4, 6: periods 1 → 3 (0.018312) and 4 → 6 (1 − 10203.55 / 10206.88),
    // both 14 days; the dip at the last bar (6 → 7) is one bar long, no period.
    let avg = -(0.018312 + (1.0 - 10203.55 / 10206.88)) / 2.0 * 100.0;
    same("avg dd", s.avg_drawdown_pct, avg, -0.9319125264527495);
    assert_eq!((s.max_drawdown_duration, s.avg_drawdown_duration), (span(14 * DAY), span(14 * DAY)));
    assert_eq!((s.max_trade_duration, s.avg_trade_duration), (span(21 * DAY), span(14 * DAY)));
    // Two winners: SQN = √2 × mean / sample std of (203.55, 115.52).
    let sd = (203.55f64 - 115.52).abs() / 2f64.sqrt();
    same("sqn", s.sqn, 2f64.sqrt() * (203.55 + 115.52) / 2.0 / sd, 3.6245598091559694);
}

#[test]
fn bad_inputs_are_refused() {
    let b = week();
    let equity = vec![CASH; 6];
    assert!(compute_stats(&b, &[], &equity, &StatsOptions::default()).is_err(), "one equity value short");
    let options = StatsOptions { first_trading_bar: 7, risk_free_rate: 0.0 };
    assert!(compute_stats(&b, &[], &[CASH; 7], &options).is_err(), "first trading bar past the end");
    assert!(compute_stats(&[], &[], &[], &StatsOptions::default()).is_err());
}
