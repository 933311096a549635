//! Analytics: performance (PnL, win rate, profit factor), risk (Sharpe, Sortino, Calmar, max
//! drawdown) and the portfolio (equity, exposure), per account.
//!
//! The figures are computed by [`tradeflow_analytics::live`]; this module reads the rows,
//! groups them per account and says where each figure comes from. Definitions (the same in the
//! leaderboard):
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
use tradeflow_analytics::Side;
use tradeflow_analytics::live as figures;
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
    let updates: Vec<(i64, f64)> = points.iter().map(|p| (p.time, p.equity)).collect();
    let f = figures::risk_figures(starting_balance, &updates);
    RiskFigures {
        account: account.into(),
        starting_balance: f.starting_balance,
        equity: f.equity,
        source: if points.is_empty() { NOT_MEASURED } else { FROM_HISTORY },
        updates: f.updates,
        first_update_at: f.first_update_at,
        last_update_at: f.last_update_at,
        total_return: f.total_return,
        annualized_return: f.annualized_return,
        volatility: f.volatility,
        sharpe: f.sharpe,
        sortino: f.sortino,
        sharpe_annualized: f.sharpe_annualized,
        sortino_annualized: f.sortino_annualized,
        updates_per_year: f.updates_per_year,
        max_drawdown: f.max_drawdown,
        calmar: f.calmar,
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
pub struct AccountPerformance {
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
    pub items: Vec<AccountPerformance>,
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

/// Winning closing fills / closing fills of an account's fill statistics.
pub fn win_rate(stats: Option<&FillStats>) -> Option<f64> {
    stats.and_then(|s| figures::win_rate(s.wins, s.closing))
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
    let items: Vec<AccountPerformance> = accounts
        .into_iter()
        .map(|(id, start)| {
            let s = stats.get(&id);
            let a = live.get(&id);
            let equity = a.map(|a| a.equity);
            let gross_profit = s.map_or(0.0, |s| s.gross_profit);
            let gross_loss = s.map_or(0.0, |s| s.gross_loss);
            AccountPerformance {
                starting_balance: start,
                balance: a.map(|a| a.balance),
                equity,
                pnl: equity.map(|e| figures::pnl(start, e)),
                roi: equity.map(|e| figures::roi(start, e)),
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
                profit_factor: figures::profit_factor(gross_profit, gross_loss),
                average_win: s.and_then(|s| figures::average(s.gross_profit, s.wins)),
                average_loss: s.and_then(|s| figures::average(s.gross_loss, s.losses)),
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
        total_pnl: total_equity.map(|e| figures::pnl(total_starting_balance, e)),
        roi: total_equity.map(|e| figures::roi(total_starting_balance, e)),
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
                weight: equity.zip(total_equity).and_then(|(e, t)| figures::share(e, t)),
                open_positions: u.map(|u| u.open_positions),
                source: source(u.is_some()),
            }
        })
        .collect();
    let mut exposure: BTreeMap<String, figures::Exposure> = BTreeMap::new();
    for p in &positions {
        let side = match p.direction {
            tradeflow_core::order::Direction::Long => Side::Long,
            tradeflow_core::order::Direction::Short => Side::Short,
        };
        exposure.entry(p.symbol.clone()).or_default().add(side, p.quantity, p.mark_price, p.unrealized_pnl);
    }
    let gross: f64 = exposure.values().map(figures::Exposure::gross).sum();
    let net: f64 = exposure.values().map(figures::Exposure::net).sum();
    Json(Portfolio {
        accounts: accounts.len(),
        total_starting_balance,
        total_balance: total(|u| u.balance),
        total_equity,
        unrealized_pnl: total(|u| u.unrealized_pnl),
        realized_pnl: total(|u| u.realized_pnl),
        fees: total(|u| u.fees),
        margin_used: total(|u| u.margin_used),
        roi: total_equity.map(|e| figures::roi(total_starting_balance, e)),
        unmeasured_accounts: allocation.iter().filter(|a| a.equity.is_none()).map(|a| a.account.clone()).collect(),
        stale_since: state.live.stale_since(),
        open_positions: positions.len(),
        gross_exposure: gross,
        net_exposure: net,
        leverage: total_equity.and_then(|t| figures::share(gross, t)),
        allocation,
        exposure: exposure
            .into_iter()
            .map(|(symbol, e)| Exposure {
                symbol,
                long_notional: e.long_notional,
                short_notional: e.short_notional,
                net_notional: e.net(),
                positions: e.positions,
                unrealized_pnl: e.unrealized_pnl,
            })
            .collect(),
    })
}

// The maths is tested in tradeflow_analytics::live; here, only what the edge adds: where the
// figures come from, and `null` for what was not measured.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_name_their_source() {
        let points: Vec<EquityPoint> = [(0, 110.0), (86_400_000, 99.0)]
            .into_iter()
            .enumerate()
            .map(|(i, (time, equity))| EquityPoint { account: "a".into(), time, seq: i as i64 + 1, equity })
            .collect();
        let f = risk_figures("a", 100.0, &points);
        assert_eq!((f.account.as_str(), f.source, f.updates, f.equity), ("a", FROM_HISTORY, 2, Some(99.0)));
        assert_eq!(f.max_drawdown, figures::max_drawdown(&[100.0, 110.0, 99.0]));
        let empty = risk_figures("b", 100.0, &[]);
        assert_eq!(
            (empty.total_return, empty.equity, empty.source),
            (None, None, NOT_MEASURED),
            "not measured, not the start"
        );
    }
}
