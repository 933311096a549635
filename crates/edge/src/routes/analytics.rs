//! Analytics: performance (PnL, win rate, profit factor), risk (Sharpe, Sortino, Calmar, max
//! drawdown) and the portfolio (equity, exposure), per account.
//!
//! Definitions (the same in the leaderboard):
//! - **equity series** of an account: its starting balance, then the `equity` of each of its
//!   `balance_history` rows in (time, seq) order (one row per message risk sends the account:
//!   every trade, and every bar while it holds a position);
//! - **returns**: per update, `r_i = e_i / e_(i-1) − 1` over that series;
//! - **ROI** = (equity − starting balance) / starting balance;
//! - **win rate** = closing fills with realised PnL > 0 / closing fills (a closing fill is any
//!   fill but an entry: exit, stop loss, take profit, trailing stop, liquidation, emergency
//!   close; PnL before fees);
//! - **Sharpe** = mean(r) / sample standard deviation(r) (risk-free rate 0), per update;
//!   **Sortino** = mean(r) / downside deviation, downside deviation = √(Σ min(r, 0)² / n);
//!   both also **annualised** by × √(updates per year), updates per year = (rows − 1) / the
//!   years between the first and the last row (365-day years: crypto trades every day);
//! - **max drawdown** = the largest fall from a running peak of the series, as a fraction of
//!   that peak (0.12 = 12 %);
//! - **annualised return** = (last equity / starting balance)^(1 / years) − 1, years as above
//!   (it says little over a span of days); **Calmar** = annualised return / max drawdown.
//!
//! A figure that is undefined (too few points, a zero deviation or drawdown) is `null`; so is
//! one that was not measured (an account risk has sent no update for: its balance, equity
//! and PnL are unknown, not its starting balance), and `source` says where each account's
//! figures come from.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tradeflow_audit::query::trading::{EquityPoint, FillStats};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Viewer;
use crate::error::{ApiError, Json, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(performance)).routes(routes!(risk)).routes(routes!(portfolio))
}

/// `source` of figures from risk's latest account update (the live view).
pub const MEASURED: &str = "account_update";
/// `source` of figures from the store's balance rows.
pub const FROM_HISTORY: &str = "balance_history";
/// `source` when nothing was measured: the figures are `null`.
pub const NOT_MEASURED: &str = "none";

/// [`MEASURED`] or [`NOT_MEASURED`].
pub fn source(measured: bool) -> &'static str {
    if measured { MEASURED } else { NOT_MEASURED }
}

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

/// (end / start)^(1 / years) − 1; `None` for a zero span or a non-positive start.
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

/// (equity − start) / start.
pub fn roi(start: f64, equity: f64) -> f64 {
    if start > 0.0 { (equity - start) / start } else { 0.0 }
}

/// The risk figures of one account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct RiskFigures {
    pub account: String,
    pub starting_balance: f64,
    /// Equity of the latest balance row; `null` when there is none (not measured).
    pub equity: Option<f64>,
    /// `balance_history`, or `none` without a balance row.
    pub source: &'static str,
    /// Balance rows in the series.
    pub updates: usize,
    /// Times of the first and last row (epoch ms).
    pub first_update_at: Option<i64>,
    pub last_update_at: Option<i64>,
    /// ROI: (equity − starting balance) / starting balance; `null` without a balance row.
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

/// Risk figures of an account from its starting balance and its balance rows (oldest first).
pub fn risk_figures(account: &str, starting_balance: f64, points: &[EquityPoint]) -> RiskFigures {
    let mut series = Vec::with_capacity(points.len() + 1);
    series.push(starting_balance);
    series.extend(points.iter().map(|p| p.equity));
    let r = returns(&series);
    let equity = points.last().map(|p| p.equity);
    let (first, last) = (points.first().map(|p| p.time), points.last().map(|p| p.time));
    let years = match (first, last) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / YEAR_MS),
        _ => None,
    };
    let per_year = years.map(|y| (points.len() - 1) as f64 / y);
    let (s, so) = (sharpe(&r), sortino(&r));
    let scale = |x: Option<f64>| Some(x? * per_year?.sqrt()).and_then(finite);
    let dd = max_drawdown(&series);
    let annual = years.and_then(|y| annualised_return(starting_balance, equity?, y));
    RiskFigures {
        account: account.into(),
        starting_balance,
        equity,
        source: if points.is_empty() { NOT_MEASURED } else { FROM_HISTORY },
        updates: points.len(),
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

/// Balance rows grouped by account.
pub fn by_account(points: Vec<EquityPoint>) -> BTreeMap<String, Vec<EquityPoint>> {
    let mut out: BTreeMap<String, Vec<EquityPoint>> = BTreeMap::new();
    for p in points {
        out.entry(p.account.clone()).or_default().push(p);
    }
    out
}

/// `?account=`: one account (404 when unknown), or every configured one.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountFilter {
    /// One account; absent: every account.
    pub account: Option<String>,
}

/// (id, starting balance) of the accounts asked for.
fn selected(state: &AppState, account: Option<&str>) -> Result<Vec<(String, f64)>, ApiError> {
    let accounts = crate::routes::trading::configured(state);
    let all: Vec<(String, f64)> = accounts.iter().map(|a| (a.id.clone(), a.starting_balance)).collect();
    match account {
        None => Ok(all),
        Some(id) => {
            all.into_iter().find(|(a, _)| a == id).map(|a| vec![a]).ok_or_else(|| ApiError::not_found("account", id))
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Performance {
    pub account: String,
    pub starting_balance: f64,
    /// From risk's latest account update; `null` before the first (`source: none`).
    pub balance: Option<f64>,
    pub equity: Option<f64>,
    /// equity − starting balance.
    pub pnl: Option<f64>,
    /// (equity − starting balance) / starting balance.
    pub roi: Option<f64>,
    pub realized_pnl: Option<f64>,
    pub unrealized_pnl: Option<f64>,
    pub fees: Option<f64>,
    /// `account_update` or `none`.
    pub source: &'static str,
    pub fills: i64,
    /// Fills that closed or reduced a position.
    pub closing_trades: i64,
    pub wins: i64,
    pub losses: i64,
    /// wins / closing trades.
    pub win_rate: Option<f64>,
    pub gross_profit: f64,
    pub gross_loss: f64,
    /// gross profit / |gross loss|.
    pub profit_factor: Option<f64>,
    pub average_win: Option<f64>,
    pub average_loss: Option<f64>,
    pub best_trade: Option<f64>,
    pub worst_trade: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceReport {
    pub items: Vec<Performance>,
    pub total_starting_balance: f64,
    /// `null` when an account is not measured (see `unmeasured_accounts`).
    pub total_equity: Option<f64>,
    pub total_pnl: Option<f64>,
    pub roi: Option<f64>,
    /// Accounts with no update from risk yet.
    pub unmeasured_accounts: Vec<String>,
    /// Set (epoch ms) while the tap that keeps these figures current cannot read Redis: they
    /// are what was known then, and may be stale since.
    pub stale_since: Option<i64>,
}

pub fn win_rate(stats: Option<&FillStats>) -> Option<f64> {
    stats.filter(|s| s.closing > 0).map(|s| s.wins as f64 / s.closing as f64)
}

/// Performance per account: PnL, ROI, win rate, profit factor, best and worst trade.
#[utoipa::path(get, path = "/analytics/performance", tag = "analytics", security(("bearer" = []), ("api_key" = [])),
    params(AccountFilter),
    responses(
        (status = 200, body = PerformanceReport),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn performance(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<AccountFilter>,
) -> Result<Json<PerformanceReport>, ApiError> {
    let accounts = selected(&state, q.account.as_deref())?;
    let stats: BTreeMap<String, FillStats> =
        state.store()?.fill_stats().await?.into_iter().map(|s| (s.account.clone(), s)).collect();
    let live = state.live.accounts();
    let items: Vec<Performance> = accounts
        .into_iter()
        .map(|(id, start)| {
            let s = stats.get(&id);
            let a = live.get(&id);
            let equity = a.map(|a| a.equity);
            let gross_profit = s.map_or(0.0, |s| s.gross_profit);
            let gross_loss = s.map_or(0.0, |s| s.gross_loss);
            Performance {
                starting_balance: start,
                balance: a.map(|a| a.balance),
                equity,
                pnl: equity.map(|e| e - start),
                roi: equity.map(|e| roi(start, e)),
                realized_pnl: a.map(|a| a.realized_pnl),
                unrealized_pnl: a.map(|a| a.unrealized_pnl),
                fees: a.map(|a| a.fees),
                source: source(a.is_some()),
                fills: s.map_or(0, |s| s.fills),
                closing_trades: s.map_or(0, |s| s.closing),
                wins: s.map_or(0, |s| s.wins),
                losses: s.map_or(0, |s| s.losses),
                win_rate: win_rate(s),
                gross_profit,
                gross_loss,
                profit_factor: (gross_loss < 0.0).then(|| gross_profit / -gross_loss),
                average_win: s.filter(|s| s.wins > 0).map(|s| s.gross_profit / s.wins as f64),
                average_loss: s.filter(|s| s.losses > 0).map(|s| s.gross_loss / s.losses as f64),
                best_trade: s.and_then(|s| s.best),
                worst_trade: s.and_then(|s| s.worst),
                account: id,
            }
        })
        .collect();
    let total_starting_balance: f64 = items.iter().map(|p| p.starting_balance).sum();
    let total_equity: Option<f64> = items.iter().map(|p| p.equity).sum();
    Ok(Json(PerformanceReport {
        total_starting_balance,
        total_equity,
        total_pnl: total_equity.map(|e| e - total_starting_balance),
        roi: total_equity.map(|e| roi(total_starting_balance, e)),
        unmeasured_accounts: items.iter().filter(|p| p.equity.is_none()).map(|p| p.account.clone()).collect(),
        stale_since: state.live.stale_since(),
        items,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RiskReport {
    pub items: Vec<RiskFigures>,
}

/// Risk per account from its equity series: Sharpe, Sortino (per update and annualised),
/// Calmar, max drawdown, volatility. See the module description for the definitions.
#[utoipa::path(get, path = "/analytics/risk", tag = "analytics", security(("bearer" = []), ("api_key" = [])),
    params(AccountFilter),
    responses(
        (status = 200, body = RiskReport),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn risk(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<AccountFilter>,
) -> Result<Json<RiskReport>, ApiError> {
    let accounts = selected(&state, q.account.as_deref())?;
    let series = by_account(state.store()?.equity_series(q.account.as_deref()).await?);
    let items = accounts
        .into_iter()
        .map(|(id, start)| risk_figures(&id, start, series.get(&id).map_or(&[][..], |v| &v[..])))
        .collect();
    Ok(Json(RiskReport { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Allocation {
    pub account: String,
    /// `null` before risk's first update of the account (`source: none`).
    pub equity: Option<f64>,
    /// Share of the total equity; `null` when an equity is not measured.
    pub weight: Option<f64>,
    pub open_positions: Option<u32>,
    /// `account_update` or `none`.
    pub source: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Exposure {
    pub symbol: String,
    /// Σ quantity × mark price of the long and of the short positions.
    pub long_notional: f64,
    pub short_notional: f64,
    /// long − short.
    pub net_notional: f64,
    pub positions: usize,
    pub unrealized_pnl: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Portfolio {
    pub accounts: usize,
    pub total_starting_balance: f64,
    /// Sums over the accounts from risk's latest updates; `null` when an account has none
    /// (see `unmeasured_accounts`): a sum that leaves one out would pass for the whole.
    pub total_balance: Option<f64>,
    pub total_equity: Option<f64>,
    pub unrealized_pnl: Option<f64>,
    pub realized_pnl: Option<f64>,
    pub fees: Option<f64>,
    pub margin_used: Option<f64>,
    /// (equity − starting balance) / starting balance, over every account.
    pub roi: Option<f64>,
    /// Accounts with no update from risk yet.
    pub unmeasured_accounts: Vec<String>,
    /// Set (epoch ms) while the tap that keeps these figures current cannot read Redis: they
    /// are what was known then, and may be stale since.
    pub stale_since: Option<i64>,
    pub open_positions: usize,
    /// Σ |notional| and Σ signed notional of the open positions.
    pub gross_exposure: f64,
    pub net_exposure: f64,
    /// gross exposure / total equity (`null` with the total equity).
    pub leverage: Option<f64>,
    pub allocation: Vec<Allocation>,
    pub exposure: Vec<Exposure>,
}

/// The whole book from the live view: equity, PnL, allocation per account, exposure per symbol.
#[utoipa::path(get, path = "/analytics/portfolio", tag = "analytics", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Portfolio), (status = 401, body = crate::error::ErrorBody)))]
async fn portfolio(State(state): State<AppState>, _who: Viewer) -> Json<Portfolio> {
    let accounts = crate::routes::trading::configured(&state);
    let live = state.live.accounts();
    let positions = state.live.positions(None);
    let updates: Vec<Option<&tradeflow_core::execution::AccountUpdate>> =
        accounts.iter().map(|a| live.get(&a.id)).collect();
    // Each total is `None` as soon as one account is not measured.
    let total = |f: fn(&tradeflow_core::execution::AccountUpdate) -> f64| -> Option<f64> {
        updates.iter().map(|u| u.map(f)).sum()
    };
    let total_equity = total(|u| u.equity);
    let total_starting_balance: f64 = accounts.iter().map(|a| a.starting_balance).sum();
    let allocation: Vec<Allocation> = accounts
        .iter()
        .zip(&updates)
        .map(|(a, u)| {
            let equity = u.map(|u| u.equity);
            Allocation {
                account: a.id.clone(),
                equity,
                weight: match (equity, total_equity) {
                    (Some(e), Some(t)) if t > 0.0 => Some(e / t),
                    _ => None,
                },
                open_positions: u.map(|u| u.open_positions),
                source: source(u.is_some()),
            }
        })
        .collect();
    let mut exposure: BTreeMap<String, Exposure> = BTreeMap::new();
    for p in &positions {
        let e = exposure.entry(p.symbol.clone()).or_insert_with(|| Exposure {
            symbol: p.symbol.clone(),
            long_notional: 0.0,
            short_notional: 0.0,
            net_notional: 0.0,
            positions: 0,
            unrealized_pnl: 0.0,
        });
        let notional = p.quantity * p.mark_price;
        match p.direction {
            tradeflow_core::order::Direction::Long => e.long_notional += notional,
            tradeflow_core::order::Direction::Short => e.short_notional += notional,
        }
        e.net_notional = e.long_notional - e.short_notional;
        e.positions += 1;
        e.unrealized_pnl += p.unrealized_pnl;
    }
    let gross: f64 = exposure.values().map(|e| e.long_notional + e.short_notional).sum();
    let net: f64 = exposure.values().map(|e| e.net_notional).sum();
    Json(Portfolio {
        accounts: accounts.len(),
        total_starting_balance,
        total_balance: total(|u| u.balance),
        total_equity,
        unrealized_pnl: total(|u| u.unrealized_pnl),
        realized_pnl: total(|u| u.realized_pnl),
        fees: total(|u| u.fees),
        margin_used: total(|u| u.margin_used),
        roi: total_equity.map(|e| roi(total_starting_balance, e)),
        unmeasured_accounts: allocation.iter().filter(|a| a.equity.is_none()).map(|a| a.account.clone()).collect(),
        stale_since: state.live.stale_since(),
        open_positions: positions.len(),
        gross_exposure: gross,
        net_exposure: net,
        leverage: total_equity.filter(|t| *t > 0.0).map(|t| gross / t),
        allocation,
        exposure: exposure.into_values().collect(),
    })
}

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
    }

    #[test]
    fn figures_start_from_the_starting_balance() {
        let day = 86_400_000;
        let points: Vec<EquityPoint> = [(0, 110.0), (day, 99.0), (2 * day, 108.9)]
            .into_iter()
            .enumerate()
            .map(|(i, (time, equity))| EquityPoint { account: "a".into(), time, seq: i as i64 + 1, equity })
            .collect();
        let f = risk_figures("a", 100.0, &points);
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
        let empty = risk_figures("b", 100.0, &[]);
        assert_eq!((empty.equity, empty.sharpe, empty.max_drawdown, empty.calmar), (None, None, 0.0, None));
        assert_eq!((empty.total_return, empty.source), (None, NOT_MEASURED), "not measured, not the start");
        assert_eq!(f.source, FROM_HISTORY);
    }
}
