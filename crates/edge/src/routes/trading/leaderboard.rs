//! `GET /trading/leaderboard`: the accounts ranked by the analytics crate's figures.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(leaderboard))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderboardEntry {
    /// 1 = best ROI (ties: account id).
    pub rank: usize,
    pub account: String,
    pub name: String,
    pub profile: String,
    pub starting_balance: f64,
    /// The live view's latest update, else the store's last balance row; `null` with neither
    /// (`source: none`), and then ranked last.
    pub equity: Option<f64>,
    pub pnl: Option<f64>,
    /// (equity − starting balance) / starting balance.
    pub roi: Option<f64>,
    /// `account_update`, `balance_history` or `none`.
    pub source: &'static str,
    /// Fills that closed or reduced a position.
    pub closing_trades: i64,
    pub wins: i64,
    /// Closing fills with realised PnL > 0 / closing fills.
    pub win_rate: Option<f64>,
    /// Per update of the equity series, not annualised (see `/analytics/risk`).
    pub sharpe: Option<f64>,
    pub sharpe_annualized: Option<f64>,
    /// Fraction of the peak.
    pub max_drawdown: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Leaderboard {
    pub items: Vec<LeaderboardEntry>,
    /// Always `roi`.
    pub ranked_by: &'static str,
}

/// Accounts ranked by ROI, with win rate, Sharpe and max drawdown computed from the store
/// (definitions: `/analytics/risk`).
#[utoipa::path(get, path = "/trading/leaderboard", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Leaderboard),
        (status = 401, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn leaderboard(State(state): State<AppState>, _who: Viewer) -> Result<Json<Leaderboard>, ApiError> {
    let store = state.store()?;
    let stats: BTreeMap<String, FillStats> =
        store.fill_stats().await?.into_iter().map(|s| (s.account.clone(), s)).collect();
    let series = analytics::by_account(store.equity_series(None).await?);
    let live = state.live.accounts();
    let mut items: Vec<LeaderboardEntry> = configured(&state)
        .into_iter()
        .map(|a| {
            let points = series.get(&a.id).map_or(&[][..], |v| &v[..]);
            let risk = analytics::risk_figures(&a.id, a.starting_balance, points);
            // The live view is the freshest; the store's last row otherwise.
            let (equity, source) = match live.get(&a.id) {
                Some(u) => (Some(u.equity), analytics::MEASURED),
                None => (risk.equity, risk.source),
            };
            let s = stats.get(&a.id);
            LeaderboardEntry {
                rank: 0,
                name: a.name,
                profile: a.profile,
                starting_balance: a.starting_balance,
                equity,
                pnl: equity.map(|e| figures::pnl(a.starting_balance, e)),
                roi: equity.map(|e| figures::roi(a.starting_balance, e)),
                source,
                closing_trades: s.map_or(0, |s| s.closing),
                wins: s.map_or(0, |s| s.wins),
                win_rate: analytics::win_rate(s),
                sharpe: risk.sharpe,
                sharpe_annualized: risk.sharpe_annualized,
                max_drawdown: risk.max_drawdown,
                account: a.id,
            }
        })
        .collect();
    // Best ROI first; accounts without a measured equity last.
    items.sort_by(|a, b| figures::by_roi((a.roi, &a.account), (b.roi, &b.account)));
    for (i, e) in items.iter_mut().enumerate() {
        e.rank = i + 1;
    }
    Ok(Json(Leaderboard { items, ranked_by: "roi" }))
}
