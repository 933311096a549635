//! The equity curve of a run, per bar, and its drawdown.

use crate::error::{InputError, check_run};
use crate::{Bar, Trade};

/// The account's equity at each bar's close, as backtesting.py records it: cash plus the
/// unrealised profit of the trades open at that close.
///
/// - A trade's entry commission leaves the cash at its entry bar; at its exit bar the cash
///   receives the rest of its `pnl` (so, over the round trip, exactly `pnl`). A trade is open
///   at the closes of bars `entry_bar..exit_bar` (its exit bar's close sees it closed: orders
///   fill at a bar's open, or inside it, before that bar's close is recorded).
/// - Unrealised profit at close `c`: `sign × size × (c − entry price)`, before the exit
///   commission (backtesting.py charges that only when the trade closes).
/// - Once the equity reaches 0 or less the account is out of money: that bar and every later one
///   are 0 (backtesting.py stops the run there).
///
/// The backtester can use it to cross-check the equity it tracks itself.
pub fn equity_curve(bars: &[Bar], trades: &[Trade], cash: f64) -> Result<Vec<f64>, InputError> {
    check_run(bars, trades)?;
    // Trades in entry order, and the open ones at each bar: a sweep, O(bars + trades × open).
    let mut order: Vec<&Trade> = trades.iter().collect();
    order.sort_by_key(|t| (t.entry_bar, t.exit_bar));
    let mut next = 0;
    let mut open: Vec<&Trade> = Vec::new();
    let mut cash = cash;
    let mut out = Vec::with_capacity(bars.len());
    for (i, bar) in bars.iter().enumerate() {
        while next < order.len() && order[next].entry_bar == i {
            cash -= order[next].entry_commission;
            open.push(order[next]);
            next += 1;
        }
        open.retain(|t| {
            if t.exit_bar == i {
                cash += t.pnl + t.entry_commission;
                false
            } else {
                true
            }
        });
        let equity = cash + open.iter().map(|t| t.unrealised_at(bar.close)).sum::<f64>();
        if equity <= 0.0 {
            out.resize(bars.len(), 0.0);
            return Ok(out);
        }
        out.push(equity);
    }
    Ok(out)
}

/// Drawdown per bar, as a fraction of the running peak: `1 − equity / max(equity so far)`
/// (0 at a new peak; NaN where the peak is 0).
pub fn drawdown(equity: &[f64]) -> Vec<f64> {
    let mut peak = f64::NEG_INFINITY;
    equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            1.0 - e / peak
        })
        .collect()
}

/// One drawdown: from the last bar at a peak (`start_bar`, drawdown 0) to the first bar back at
/// a peak (`end_bar`), or to the last bar when it never recovered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawdownPeriod {
    pub start_bar: usize,
    pub end_bar: usize,
    /// Time from `start_bar` to `end_bar`.
    pub duration_ms: i64,
    /// The deepest drawdown within it (fraction of the peak).
    pub depth: f64,
}

/// The drawdown periods of a drawdown series, as backtesting.py delimits them
/// (`compute_drawdown_duration_peaks`): between consecutive bars that are at a peak (drawdown
/// exactly 0), the last bar counting as one, every gap of more than one bar is a period. So a
/// drawdown that starts on the very last bar is no period (its depth still counts in
/// [`crate::Stats`]' average drawdown when it is the only one, as in backtesting.py).
pub fn drawdown_periods(times_ms: &[i64], drawdown: &[f64]) -> Vec<DrawdownPeriod> {
    let n = drawdown.len().min(times_ms.len());
    let mut marks: Vec<usize> = (0..n).filter(|&i| drawdown[i] == 0.0).collect();
    if n > 0 && marks.last() != Some(&(n - 1)) {
        marks.push(n - 1);
    }
    marks
        .windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| DrawdownPeriod {
            start_bar: w[0],
            end_bar: w[1],
            duration_ms: times_ms[w[1]] - times_ms[w[0]],
            depth: drawdown[w[0]..=w[1]].iter().copied().fold(f64::NAN, f64::max),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExitReason, Fill, Side};

    fn bars(closes: &[f64]) -> Vec<Bar> {
        closes
            .iter()
            .enumerate()
            .map(|(i, &c)| Bar { time_ms: i as i64 * 3_600_000, open: c, high: c, low: c, close: c })
            .collect()
    }

    fn trade(side: Side, size: f64, (eb, ep): (usize, f64), (xb, xp): (usize, f64), fee: f64) -> Trade {
        let f = |bar: usize, price: f64| Fill { bar, time_ms: bar as i64 * 3_600_000, price, commission: fee };
        Trade::from_fills(side, size, f(eb, ep), f(xb, xp), ExitReason::Signal)
    }

    #[test]
    fn equity_is_cash_plus_unrealised_at_each_close() {
        // Cash 1000; closes 10, 11, 12, 9, 10. Long 10 units entered at bar 1 at 10.5 (fee 1 each
        // side), exited at bar 3 at 9.5. Bar 0: 1000. Bar 1: 999 + 10 × (11 − 10.5) = 1004.
        // Bar 2: 999 + 10 × 1.5 = 1014. Bar 3: closed, pnl 10 × (−1) − 2 = −12: 988. Bar 4: 988.
        let b = bars(&[10.0, 11.0, 12.0, 9.0, 10.0]);
        let t = trade(Side::Long, 10.0, (1, 10.5), (3, 9.5), 1.0);
        let e = equity_curve(&b, &[t], 1000.0).unwrap();
        assert_eq!(e, vec![1000.0, 1004.0, 1014.0, 988.0, 988.0]);
        // Drawdown: peak 1014 at bar 2, then 1 − 988/1014.
        let dd = drawdown(&e);
        assert_eq!(&dd[..3], &[0.0, 0.0, 0.0]);
        assert!((dd[3] - 26.0 / 1014.0).abs() < 1e-15 && dd[4] == dd[3]);
    }

    #[test]
    fn a_short_and_a_same_bar_round_trip() {
        // Short 5 at bar 0 at 10, out at bar 2 at 12 (no fees): bar 0: 1000 + 5 × (10 − 10) = 1000;
        // bar 1: 1000 − 5 × (11 − 10) = 995; bar 2: pnl −10 → 990. A long in and out within bar 3
        // (entry 9, exit 9.5, 2 units, fee 0.5 each): pnl 1 − 1 = 0 → 990.
        let b = bars(&[10.0, 11.0, 12.0, 9.0]);
        let trades =
            [trade(Side::Short, 5.0, (0, 10.0), (2, 12.0), 0.0), trade(Side::Long, 2.0, (3, 9.0), (3, 9.5), 0.5)];
        assert_eq!(equity_curve(&b, &trades, 1000.0).unwrap(), vec![1000.0, 995.0, 990.0, 990.0]);
    }

    #[test]
    fn out_of_money_is_zero_from_then_on() {
        // 100 units long at 10 with cash 500 (leveraged): close 5 → 500 − 500 = 0: out of money.
        let b = bars(&[10.0, 5.0, 20.0]);
        let t = trade(Side::Long, 100.0, (0, 10.0), (2, 20.0), 0.0);
        assert_eq!(equity_curve(&b, &[t], 500.0).unwrap(), vec![500.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_runs_are_refused() {
        let b = bars(&[1.0, 2.0]);
        let t = trade(Side::Long, 1.0, (1, 1.0), (2, 1.0), 0.0);
        assert!(matches!(equity_curve(&b, &[t], 1.0), Err(InputError::TradeBars { index: 0, .. })));
        assert_eq!(equity_curve(&[], &[], 1.0), Err(InputError::NoBars));
        let mut back = bars(&[1.0, 2.0]);
        back[1].time_ms = back[0].time_ms;
        assert!(matches!(equity_curve(&back, &[], 1.0), Err(InputError::BarOrder { index: 1, .. })));
    }

    #[test]
    fn periods_as_backtesting_py_delimits_them() {
        let t: Vec<i64> = (0..8).map(|i| i * 10).collect();
        // Peaks at 0, 3, 4 and 7; one-bar dip at 1..=2 → period 0..3; none between 3 and 4; 4..7.
        let dd = [0.0, 0.1, 0.2, 0.0, 0.0, 0.05, 0.3, 0.0];
        let p = drawdown_periods(&t, &dd);
        assert_eq!(
            p,
            vec![
                DrawdownPeriod { start_bar: 0, end_bar: 3, duration_ms: 30, depth: 0.2 },
                DrawdownPeriod { start_bar: 4, end_bar: 7, duration_ms: 30, depth: 0.3 },
            ]
        );
        // Never recovered: the period runs to the last bar.
        let p = drawdown_periods(&t[..3], &[0.0, 0.1, 0.2]);
        assert_eq!(p, vec![DrawdownPeriod { start_bar: 0, end_bar: 2, duration_ms: 20, depth: 0.2 }]);
        // A dip on the last bar only is no period.
        assert!(drawdown_periods(&t[..3], &[0.0, 0.0, 0.2]).is_empty());
        assert!(drawdown_periods(&t[..3], &[0.0, 0.0, 0.0]).is_empty());
    }
}
