//! Figures of live accounts from their balance updates: what the edge's `/analytics/*` and
//! `/trading/leaderboard` report (the same definitions and values as before they moved here).
//!
//! - **equity series** of an account: its starting balance, then its equity at each balance
//!   update (time order);
//! - **returns**: per update, `r_i = e_i / e_(i-1) − 1` (a step from a non-positive equity is
//!   skipped);
//! - **PnL** = equity − starting balance; **ROI** = PnL / starting balance;
//! - **win rate** = winning closing fills / closing fills;
//! - **Sharpe** = mean(r) / sample standard deviation(r) (risk-free rate 0), per update;
//!   **Sortino** = mean(r) / downside deviation, downside deviation = √(Σ min(r, 0)² / n);
//!   both also **annualised** by × √(updates per year), updates per year = (updates − 1) / the
//!   years between the first and the last update (365-day years: crypto trades every day);
//! - **max drawdown** = the largest fall from a running peak of the series, as a fraction of
//!   that peak (0.12 = 12 %);
//! - **annualised return** = (last equity / starting balance)^(1 / years) − 1, years as above;
//!   **Calmar** = annualised return / max drawdown;
//! - **weight** of an account = its equity / the book's; **leverage** = gross exposure / equity;
//!   **exposure** per symbol: Σ quantity × mark price of the long and of the short positions,
//!   net = long − short, gross = long + short.
//!
//! A figure that is undefined (too few points, a zero deviation or drawdown) is `None`; so is
//! one that was not measured (an account's equity before its first update is unknown, not its
//! starting balance).
//! These are per-update figures of a live book; a backtest's statistics are [`crate::Stats`].

use std::cmp::Ordering;

use serde::Serialize;

use crate::trade::Side;

/// Milliseconds in a 365-day year.
pub const YEAR_MS: f64 = 365.0 * 86_400_000.0;

/// Per-update returns of an equity series (a step from a non-positive equity is skipped).
pub fn returns(equity: &[f64]) -> Vec<f64> {
    equity.windows(2).filter(|w| w[0] > 0.0).map(|w| w[1] / w[0] - 1.0).collect()
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() { None } else { Some(xs.iter().sum::<f64>() / xs.len() as f64) }
}

/// Sample standard deviation (n − 1); `None` below two values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// mean / sample standard deviation; `None` with fewer than two returns or no deviation.
pub fn sharpe(returns: &[f64]) -> Option<f64> {
    let s = sample_std(returns)?;
    if s == 0.0 { None } else { finite(mean(returns)? / s) }
}

/// mean / downside deviation (√(Σ min(r, 0)² / n)); `None` without returns or without a loss.
pub fn sortino(returns: &[f64]) -> Option<f64> {
    let m = mean(returns)?;
    let dd = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / returns.len() as f64).sqrt();
    if dd == 0.0 { None } else { finite(m / dd) }
}

/// The largest fall from a running peak, as a fraction of the peak (0 for a rising series).
pub fn max_drawdown(equity: &[f64]) -> f64 {
    let mut peak = f64::NEG_INFINITY;
    let mut worst: f64 = 0.0;
    for &e in equity {
        peak = peak.max(e);
        if peak > 0.0 {
            worst = worst.max((peak - e) / peak);
        }
    }
    worst
}

/// (end / start)^(1 / years) − 1; `None` for a zero span or a non-positive start; −1 when
/// everything was lost.
pub fn annualised_return(start: f64, end: f64, years: f64) -> Option<f64> {
    if years <= 0.0 || start <= 0.0 {
        return None;
    }
    if end <= 0.0 {
        return Some(-1.0);
    }
    finite((end / start).powf(1.0 / years) - 1.0)
}

/// Annualised return / max drawdown; `None` without a drawdown.
pub fn calmar(annual_return: Option<f64>, max_drawdown: f64) -> Option<f64> {
    if max_drawdown <= 0.0 { None } else { finite(annual_return? / max_drawdown) }
}

/// equity − start.
pub fn pnl(start: f64, equity: f64) -> f64 {
    equity - start
}

/// (equity − start) / start; 0 for a non-positive start.
pub fn roi(start: f64, equity: f64) -> f64 {
    if start > 0.0 { pnl(start, equity) / start } else { 0.0 }
}

/// Winning closing fills / closing fills; `None` before the first closing fill.
pub fn win_rate(wins: i64, closing: i64) -> Option<f64> {
    (closing > 0).then(|| wins as f64 / closing as f64)
}

/// Gross profit / |gross loss| (`gross_loss` ≤ 0); `None` without a loss.
pub fn profit_factor(gross_profit: f64, gross_loss: f64) -> Option<f64> {
    (gross_loss < 0.0).then(|| gross_profit / -gross_loss)
}

/// `sum / count`; `None` when `count` is 0 (average win, average loss).
pub fn average(sum: f64, count: i64) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}

/// `part / total`; `None` when the total is not positive: an account's share of the book's
/// equity, and the book's leverage (gross exposure / total equity) in `/analytics/portfolio`.
pub fn share(part: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| part / total)
}

/// The leaderboard's order of `(ROI, account id)`: higher ROI first, an unmeasured ROI
/// (`None`) last, ties by account id.
pub fn by_roi(a: (Option<f64>, &str), b: (Option<f64>, &str)) -> Ordering {
    let key = |r: Option<f64>| r.unwrap_or(f64::NEG_INFINITY);
    b.0.is_some().cmp(&a.0.is_some()).then(key(b.0).total_cmp(&key(a.0))).then_with(|| a.1.cmp(b.1))
}

/// A position's notional: quantity × mark price.
pub fn notional(quantity: f64, mark_price: f64) -> f64 {
    quantity * mark_price
}

/// The open positions of one symbol, in [`notional`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Exposure {
    pub long_notional: f64,
    pub short_notional: f64,
    pub positions: usize,
    pub unrealized_pnl: f64,
}

impl Exposure {
    /// Counts one open position.
    pub fn add(&mut self, side: Side, quantity: f64, mark_price: f64, unrealized_pnl: f64) {
        let notional = notional(quantity, mark_price);
        match side {
            Side::Long => self.long_notional += notional,
            Side::Short => self.short_notional += notional,
        }
        self.positions += 1;
        self.unrealized_pnl += unrealized_pnl;
    }

    /// long − short.
    pub fn net(&self) -> f64 {
        self.long_notional - self.short_notional
    }

    /// long + short.
    pub fn gross(&self) -> f64 {
        self.long_notional + self.short_notional
    }
}

/// The risk figures of one account's equity series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RiskFigures {
    pub starting_balance: f64,
    /// Equity of the latest update; `None` without one (not measured).
    pub equity: Option<f64>,
    /// Updates in the series.
    pub updates: usize,
    /// Times of the first and last update (epoch ms).
    pub first_update_at: Option<i64>,
    pub last_update_at: Option<i64>,
    /// ROI: (equity − starting balance) / starting balance; `None` without an update.
    pub total_return: Option<f64>,
    pub annualized_return: Option<f64>,
    /// Sample standard deviation of the per-update returns.
    pub volatility: Option<f64>,
    /// Per update, not annualised.
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    /// × √(updates per year).
    pub sharpe_annualized: Option<f64>,
    pub sortino_annualized: Option<f64>,
    /// Updates per 365-day year over the span of the series.
    pub updates_per_year: Option<f64>,
    /// Fraction of the peak (0.12 = 12 %).
    pub max_drawdown: f64,
    pub calmar: Option<f64>,
}

/// Risk figures from a starting balance and the account's updates, oldest first, as
/// `(time ms, equity)`.
pub fn risk_figures(starting_balance: f64, updates: &[(i64, f64)]) -> RiskFigures {
    let mut series = Vec::with_capacity(updates.len() + 1);
    series.push(starting_balance);
    series.extend(updates.iter().map(|u| u.1));
    let r = returns(&series);
    let equity = updates.last().map(|u| u.1);
    let (first, last) = (updates.first().map(|u| u.0), updates.last().map(|u| u.0));
    let years = match (first, last) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / YEAR_MS),
        _ => None,
    };
    let per_year = years.map(|y| (updates.len() - 1) as f64 / y);
    let (s, so) = (sharpe(&r), sortino(&r));
    let scale = |x: Option<f64>| Some(x? * per_year?.sqrt()).and_then(finite);
    let dd = max_drawdown(&series);
    let annual = years.and_then(|y| annualised_return(starting_balance, equity?, y));
    RiskFigures {
        starting_balance,
        equity,
        updates: updates.len(),
        first_update_at: first,
        last_update_at: last,
        total_return: equity.map(|e| roi(starting_balance, e)),
        annualized_return: annual,
        volatility: sample_std(&r),
        sharpe: s,
        sortino: so,
        sharpe_annualized: scale(s),
        sortino_annualized: scale(so),
        updates_per_year: per_year,
        max_drawdown: dd,
        calmar: calmar(annual, dd),
    }
}

// Pinned to the values the edge's routes computed before their maths moved here: the first three
// tests were crates/edge/src/routes/analytics.rs's own, on the same numbers.
#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ratios_on_a_hand_computed_series() {
        // 100 → 110 → 99 → 108.9: returns +10 %, −10 %, +10 %.
        let equity = [100.0, 110.0, 99.0, 108.9];
        let r = returns(&equity);
        assert_eq!(r.len(), 3);
        assert!(close(r[0], 0.1) && close(r[1], -0.1) && close(r[2], 0.1));
        // mean 1/30; deviations 2/30, −4/30, 2/30 → variance (24/900)/2 → std 0.11547.
        assert!(close(sample_std(&r).unwrap(), (24.0f64 / 900.0 / 2.0).sqrt()));
        // Sharpe = (1/30) / √(12/900) = 1/(2√3); Sortino = (1/30) / √(0.01/3) = 1/√3.
        assert!(close(sharpe(&r).unwrap(), 1.0 / (2.0 * 3f64.sqrt())));
        assert!(close(sortino(&r).unwrap(), 1.0 / 3f64.sqrt()));
        // Peak 110, trough 99: 10 %.
        assert!(close(max_drawdown(&equity), 0.1));
        // Doubling in two years: √2 − 1 a year; with a 10 % drawdown, Calmar = that / 0.1.
        let a = annualised_return(100.0, 200.0, 2.0).unwrap();
        assert!(close(a, 2f64.sqrt() - 1.0));
        assert!(close(calmar(Some(a), 0.1).unwrap(), (2f64.sqrt() - 1.0) * 10.0));
        assert!(close(roi(10_000.0, 10_250.0), 0.025));
    }

    #[test]
    fn undefined_figures_are_none() {
        assert_eq!(sharpe(&[0.1]), None);
        assert_eq!(sharpe(&[0.1, 0.1]), None, "no deviation");
        assert_eq!(sortino(&[0.1, 0.2]), None, "no loss");
        assert_eq!(sortino(&[]), None);
        assert_eq!(max_drawdown(&[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(max_drawdown(&[]), 0.0);
        assert_eq!(calmar(Some(0.5), 0.0), None);
        assert_eq!(annualised_return(100.0, 110.0, 0.0), None);
        assert_eq!(annualised_return(100.0, -5.0, 1.0), Some(-1.0));
        assert_eq!(roi(0.0, 5.0), 0.0);
    }

    #[test]
    fn figures_start_from_the_starting_balance() {
        let day = 86_400_000;
        let updates = [(0, 110.0), (day, 99.0), (2 * day, 108.9)];
        let f = risk_figures(100.0, &updates);
        assert_eq!(f.updates, 3);
        assert!(close(f.total_return.unwrap(), 0.089));
        assert!(close(f.max_drawdown, 0.1));
        assert!(close(f.sharpe.unwrap(), 1.0 / (2.0 * 3f64.sqrt())));
        // Two intervals over two days: 365 updates a year.
        assert!(close(f.updates_per_year.unwrap(), 365.0));
        assert!(close(f.sharpe_annualized.unwrap(), f.sharpe.unwrap() * 365f64.sqrt()));
        let years = 2.0 * day as f64 / YEAR_MS;
        let annual = 1.089f64.powf(1.0 / years) - 1.0;
        assert!((f.annualized_return.unwrap() / annual - 1.0).abs() < 1e-9);
        assert!((f.calmar.unwrap() / (annual / 0.1) - 1.0).abs() < 1e-9);
        let empty = risk_figures(100.0, &[]);
        assert_eq!((empty.equity, empty.sharpe, empty.max_drawdown, empty.calmar), (None, None, 0.0, None));
        assert_eq!(empty.total_return, None, "not measured, not the start");
        // One update: no span, so nothing annualised.
        let one = risk_figures(100.0, &[(5, 90.0)]);
        assert_eq!((one.updates_per_year, one.annualized_return, one.sharpe), (None, None, None));
        assert!(close(one.max_drawdown, 0.1) && close(one.sortino.unwrap(), -1.0));
    }

    #[test]
    fn performance_and_leaderboard_helpers() {
        // The performance route: 3 wins of 5 closing fills; +300 against −100.
        assert_eq!(win_rate(3, 5), Some(0.6));
        assert_eq!(win_rate(0, 0), None);
        assert_eq!(profit_factor(300.0, -100.0), Some(3.0));
        assert_eq!(profit_factor(300.0, 0.0), None);
        assert_eq!(average(300.0, 3), Some(100.0));
        assert_eq!(average(0.0, 0), None);
        // The portfolio route: 2,500 of 10,000 equity; 15,000 gross exposure on it → 1.5.
        assert_eq!(share(2_500.0, 10_000.0), Some(0.25));
        assert_eq!(share(15_000.0, 10_000.0), Some(1.5));
        assert_eq!(share(5.0, 0.0), None);
        assert_eq!(pnl(10_000.0, 9_750.0), -250.0);
        // Unmeasured accounts last, even behind a total loss.
        let mut rows =
            [(Some(0.1), "b"), (None, "e"), (Some(0.2), "c"), (Some(0.1), "a"), (Some(-1.0), "d"), (None, "a0")];
        rows.sort_by(|x, y| by_roi(*x, *y));
        assert_eq!(rows.map(|r| r.1), ["c", "a", "b", "d", "a0", "e"]);
    }

    #[test]
    fn exposure_per_symbol() {
        // 2 long at 100, 1 long at 100, 0.5 short at 100: long 300, short 50.
        let mut e = Exposure::default();
        e.add(Side::Long, 2.0, 100.0, 5.0);
        e.add(Side::Long, 1.0, 100.0, -1.0);
        e.add(Side::Short, 0.5, 100.0, 2.0);
        assert_eq!((e.long_notional, e.short_notional, e.positions, e.unrealized_pnl), (300.0, 50.0, 3, 6.0));
        assert_eq!((e.net(), e.gross()), (250.0, 350.0));
        assert_eq!((Exposure::default().net(), Exposure::default().gross()), (0.0, 0.0));
        assert_eq!(notional(0.5, 100.0), 50.0);
    }
}
