//! Trading: status, accounts, positions, trades, the leaderboard, logs and history; account
//! management.
//!
//! - `/trading/status`, the account views, open positions and the portfolio answer from memory
//!   (the live view, the pipeline configuration, the control state); trades, logs, history and
//!   the leaderboard's statistics come from the SQL store.
//! - Accounts are the `[[account]]` tables of the accounts file (`--accounts FILE`) the risk
//!   and exec workers read. Create, update and delete validate the whole new set with the
//!   workers' own parser, rewrite the file atomically (a temporary file beside it, renamed over
//!   it), update the edge's copy and send `reload`: every ensemble, risk and execution stage
//!   that reads the file (`worker ensemble|risk|exec`, and those inside `tradeflow up`)
//!   re-reads it; a sound file takes over from the checkpoints, a broken one is refused and
//!   the running configuration stays. Without an accounts file (the default accounts) they
//!   answer 409. Enable and
//!   disable are `set_trading` commands, which override the file's `trading_enabled`.
//! - Manual orders are in [`crate::routes::orders`].
//!
//! Every mutation, and every refusal after authentication, is written to the audit log.

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_analytics::live as figures;
use tradeflow_audit::query::trading::{FillStats, Trade};
use tradeflow_audit::{BalanceRow, FillRow, PositionRow, TradingLogRow};
use tradeflow_core::control::Command;
use tradeflow_core::execution::{AccountUpdate, PositionStatus, PositionUpdate};
use tradeflow_core::order::Direction;
use tradeflow_risk::AccountConfig;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Trader, Viewer};
use crate::error::{ApiError, Json, Page, Path, Query};
use crate::routes::analytics;
use crate::state::{AppState, Caller, RequestMeta};

mod accounts;
mod history;
mod leaderboard;
mod status;

// One route group a file; each file takes the shared items below with `use super::*`.
/// The accounts file the account routes write: public for the fuzz target `edge_bodies`, which
/// feeds account bodies through it and back through the workers' parser.
pub use accounts::accounts_toml;
pub(crate) use history::{TradeView, fill_view};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(status::router())
        .merge(accounts::router())
        .merge(history::router())
        .merge(leaderboard::router())
}

/// Seeds the live view from the store: each account's latest balance row and each
/// (account, symbol)'s latest position snapshot when it is open.
pub async fn seed(state: &AppState) -> Result<(), ApiError> {
    let Ok(store) = state.store() else { return Ok(()) };
    for b in store.latest_balances().await? {
        state.live.seed_account(AccountUpdate {
            id: b.id,
            account: b.account,
            seq: b.seq.max(0) as u64,
            balance: b.balance,
            equity: b.equity,
            margin_used: b.margin_used,
            unrealized_pnl: b.unrealized_pnl,
            realized_pnl: b.realized_pnl,
            fees: b.fees,
            open_positions: b.open_positions.clamp(0, u32::MAX as i64) as u32,
            time: b.time,
        });
    }
    let accounts = configured(state);
    for p in store.latest_positions().await? {
        let direction = match p.side.as_str() {
            "long" => Direction::Long,
            "short" => Direction::Short,
            _ => continue,
        };
        if p.status != "open" || p.quantity <= 0.0 {
            continue;
        }
        let leverage = accounts.iter().find(|a| a.id == p.account).map_or(1.0, |a| a.leverage);
        state.live.seed_position(PositionUpdate {
            id: p.id,
            account: p.account,
            seq: p.seq.max(0) as u64,
            symbol: p.symbol,
            direction,
            quantity: p.quantity,
            entry_price: p.entry_price,
            mark_price: p.mark_price,
            unrealized_pnl: p.unrealized_pnl,
            leverage,
            liquidation_price: p.liquidation_price,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
            trailing_stop: None,
            status: PositionStatus::Open,
            time: p.time,
        });
    }
    Ok(())
}

/// The configured accounts (a copy).
pub fn configured(state: &AppState) -> Vec<AccountConfig> {
    state.pipeline.accounts.read().unwrap_or_else(|p| p.into_inner()).clone()
}

pub(crate) fn find_account(state: &AppState, id: &str) -> Result<AccountConfig, ApiError> {
    let accounts = state.pipeline.accounts.read().unwrap_or_else(|p| p.into_inner());
    accounts.iter().find(|a| a.id == id).cloned().ok_or_else(|| ApiError::not_found("account", id))
}

/// An account the edge knows: configured, or seen in the live view.
fn known_account(state: &AppState, id: &str) -> Result<(), ApiError> {
    if find_account(state, id).is_ok() || state.live.account(id).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found("account", id))
    }
}

// ---------------------------------------------------------------------------------------------
// Views

/// An account: its configuration's main fields and its latest state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub profile: String,
    /// `paper` or `binance_futures`.
    pub executor: String,
    pub starting_balance: f64,
    pub leverage: f64,
    pub allow_short: bool,
    pub trailing_stop_pct: Option<f64>,
    /// Whether it may open positions now: the operator's switch when one was sent, else the
    /// file's `trading_enabled`.
    pub trading_enabled: bool,
    /// The operator's switch (`enable`/`disable`), if any.
    pub trading_override: Option<bool>,
    /// Latest state, from risk's latest account update (tapped, or the latest balance row
    /// read at start). `null` while there is none: not measured, never the starting balance
    /// dressed as a measurement (`source` says which).
    pub balance: Option<f64>,
    pub equity: Option<f64>,
    pub unrealized_pnl: Option<f64>,
    pub realized_pnl: Option<f64>,
    pub fees: Option<f64>,
    pub margin_used: Option<f64>,
    pub open_positions: Option<u32>,
    /// equity − starting balance, and that over the starting balance.
    pub pnl: Option<f64>,
    pub roi: Option<f64>,
    /// Risk seq and time (epoch ms) of the latest update.
    pub seq: Option<u64>,
    pub updated_at: Option<i64>,
    /// `account_update`: the figures are risk's latest update for the account; `none`: no
    /// update has been seen (risk sends one with every trade and every bar while a position is
    /// open), so the figures are `null`.
    pub source: &'static str,
    /// Set (epoch ms) while the tap that keeps these figures current cannot read Redis: they
    /// are what was known then, and may be stale since.
    pub stale_since: Option<i64>,
}

fn account_view(state: &AppState, a: &AccountConfig, live: Option<&AccountUpdate>) -> AccountView {
    let overridden = state.control.borrow().trading.get(&a.id).copied();
    let equity = live.map(|u| u.equity);
    AccountView {
        id: a.id.clone(),
        name: a.name.clone(),
        profile: a.profile.clone(),
        executor: a.executor.as_str().into(),
        starting_balance: a.starting_balance,
        leverage: a.leverage,
        allow_short: a.allow_short,
        trailing_stop_pct: a.trailing_stop_pct,
        trading_enabled: overridden.unwrap_or(a.trading_enabled),
        trading_override: overridden,
        balance: live.map(|u| u.balance),
        equity,
        unrealized_pnl: live.map(|u| u.unrealized_pnl),
        realized_pnl: live.map(|u| u.realized_pnl),
        fees: live.map(|u| u.fees),
        margin_used: live.map(|u| u.margin_used),
        open_positions: live.map(|u| u.open_positions),
        pnl: equity.map(|e| figures::pnl(a.starting_balance, e)),
        roi: equity.map(|e| figures::roi(a.starting_balance, e)),
        seq: live.map(|u| u.seq),
        updated_at: live.map(|u| u.time),
        source: analytics::source(live.is_some()),
        stale_since: state.live.stale_since(),
    }
}

/// An open position, from the live view.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PositionView {
    pub account: String,
    pub symbol: String,
    /// `long` or `short`.
    pub direction: String,
    pub quantity: f64,
    pub entry_price: f64,
    pub mark_price: f64,
    /// quantity × mark price.
    pub notional: f64,
    pub unrealized_pnl: f64,
    pub leverage: f64,
    pub liquidation_price: Option<f64>,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub trailing_stop: Option<f64>,
    pub seq: u64,
    pub updated_at: i64,
}

fn position_view(p: PositionUpdate) -> PositionView {
    PositionView {
        notional: figures::notional(p.quantity, p.mark_price),
        account: p.account,
        symbol: p.symbol,
        direction: p.direction.as_str().into(),
        quantity: p.quantity,
        entry_price: p.entry_price,
        mark_price: p.mark_price,
        unrealized_pnl: p.unrealized_pnl,
        leverage: p.leverage,
        liquidation_price: p.liquidation_price,
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
        trailing_stop: p.trailing_stop,
        seq: p.seq,
        updated_at: p.time,
    }
}

/// A list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T: ToSchema> {
    pub items: Vec<T>,
}

/// A page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T: ToSchema> {
    pub items: Vec<T>,
    pub limit: i64,
    pub offset: i64,
}
