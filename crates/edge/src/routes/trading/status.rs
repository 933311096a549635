//! `GET /trading/status`: the pipeline's trading state from memory.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountStatus {
    pub id: String,
    pub profile: String,
    pub executor: String,
    pub trading_enabled: bool,
    /// `null` before risk's first update of the account (`source: none`): not measured.
    pub balance: Option<f64>,
    pub equity: Option<f64>,
    pub open_positions: Option<u32>,
    pub updated_at: Option<i64>,
    /// `account_update` or `none` (see the account view).
    pub source: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TradingStatus {
    pub paused: bool,
    /// Id of the emergency stop in force.
    pub emergency: Option<String>,
    /// Not paused and no emergency stop.
    pub trading_active: bool,
    pub profiles: Vec<String>,
    pub accounts: Vec<AccountStatus>,
    /// Sums over the accounts; `null` when an account is not measured yet (see
    /// `unmeasured_accounts`): a sum that leaves one out would pass for the whole.
    pub total_equity: Option<f64>,
    pub total_balance: Option<f64>,
    /// Accounts with no update from risk yet.
    pub unmeasured_accounts: Vec<String>,
    /// Set (epoch ms) while the tap that keeps these figures current cannot read Redis: they
    /// are what was known then, and may be stale since.
    pub stale_since: Option<i64>,
    pub open_positions: usize,
    /// Symbols with a price.
    pub symbols: usize,
    /// Whether the account routes can change accounts (an accounts file is configured).
    pub accounts_editable: bool,
    pub events_seen: u64,
    pub last_event_at: Option<i64>,
}

/// Trading at a glance, from memory (no database round trip): pause and emergency state, each
/// account's switch, balance, equity and open positions.
#[utoipa::path(get, path = "/trading/status", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = TradingStatus), (status = 401, body = crate::error::ErrorBody)))]
pub(super) async fn status(State(state): State<AppState>, _who: Viewer) -> Json<TradingStatus> {
    let (paused, emergency, switches) = {
        let c = state.control.borrow();
        (c.paused, c.emergency.clone(), c.trading.clone())
    };
    let live = state.live.accounts();
    let accounts: Vec<AccountStatus> = state
        .pipeline
        .accounts
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|a| {
            let u = live.get(&a.id);
            AccountStatus {
                id: a.id.clone(),
                profile: a.profile.clone(),
                executor: a.executor.as_str().into(),
                trading_enabled: switches.get(&a.id).copied().unwrap_or(a.trading_enabled),
                balance: u.map(|u| u.balance),
                equity: u.map(|u| u.equity),
                open_positions: u.map(|u| u.open_positions),
                updated_at: u.map(|u| u.time),
                source: analytics::source(u.is_some()),
            }
        })
        .collect();
    let (events_seen, last_event_at) = state.live.activity();
    Json(TradingStatus {
        trading_active: !paused && emergency.is_none(),
        paused,
        emergency,
        profiles: state.pipeline.profiles.iter().map(|p| p.name.clone()).collect(),
        total_equity: accounts.iter().map(|a| a.equity).sum(),
        total_balance: accounts.iter().map(|a| a.balance).sum(),
        unmeasured_accounts: accounts.iter().filter(|a| a.equity.is_none()).map(|a| a.id.clone()).collect(),
        stale_since: state.live.stale_since(),
        accounts,
        open_positions: state.live.positions(None).len(),
        symbols: state.live.prices().len(),
        accounts_editable: state.pipeline.accounts_path.is_some(),
        events_seen,
        last_event_at,
    })
}
