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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, replace_account, patch_account, delete_account))
        .routes(routes!(enable_account))
        .routes(routes!(disable_account))
        .routes(routes!(all_positions))
        .routes(routes!(account_positions))
        .routes(routes!(all_trades))
        .routes(routes!(account_trades))
        .routes(routes!(leaderboard))
        .routes(routes!(logs))
        .routes(routes!(balance_history))
        .routes(routes!(position_snapshots))
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

/// Writes the outcome of a mutation to the audit log: `ok` with `details`, or `refused` with
/// the error of a 4xx (a 5xx is a dependency failure, not the caller's doing). An audit
/// failure fails a change; it does not hide a refusal.
pub(crate) async fn audited<T>(
    state: &AppState,
    caller: &Caller,
    action: &str,
    resource: &str,
    outcome: Result<(T, Value), ApiError>,
) -> Result<T, ApiError> {
    match outcome {
        Ok((value, details)) => {
            state.audit(caller, action, resource, "ok", details).await?;
            Ok(value)
        }
        Err(e) if e.status.is_client_error() => {
            let details = json!({ "code": e.code, "message": e.message, "status": e.status.as_u16() });
            if let Err(a) = state.audit(caller, action, resource, "refused", details).await {
                tracing::warn!(error = %a, "a refused call could not be audited");
            }
            Err(e)
        }
        Err(e) => Err(e),
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

// ---------------------------------------------------------------------------------------------
// Status

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
async fn status(State(state): State<AppState>, _who: Viewer) -> Json<TradingStatus> {
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

// ---------------------------------------------------------------------------------------------
// Accounts: reads

/// Every configured account with its latest state.
#[utoipa::path(get, path = "/trading/accounts", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Items<AccountView>), (status = 401, body = crate::error::ErrorBody)))]
async fn list_accounts(State(state): State<AppState>, _who: Viewer) -> Json<Items<AccountView>> {
    let live = state.live.accounts();
    let items = configured(&state).iter().map(|a| account_view(&state, a, live.get(&a.id))).collect();
    Json(Items { items })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDetail {
    pub account: AccountView,
    /// The whole `[[account]]` table as the workers read it.
    #[schema(value_type = Object)]
    pub config: Value,
    pub positions: Vec<PositionView>,
}

fn detail(state: &AppState, a: &AccountConfig) -> AccountDetail {
    AccountDetail {
        account: account_view(state, a, state.live.account(&a.id).as_ref()),
        config: serde_json::to_value(a).unwrap_or(Value::Null),
        positions: state.live.positions(Some(&a.id)).into_iter().map(position_view).collect(),
    }
}

/// One account: its state, its whole configuration and its open positions.
#[utoipa::path(get, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = AccountDetail),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn get_account(
    State(state): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<AccountDetail>, ApiError> {
    let a = find_account(&state, &id)?;
    Ok(Json(detail(&state, &a)))
}

// ---------------------------------------------------------------------------------------------
// Accounts: changes

/// What an account change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountChange {
    pub account: AccountDetail,
    /// Id of the `reload` command sent to the workers.
    pub reload_command: String,
    /// What the reload does (the stages re-read the file; the edge does not see their answer).
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDeleted {
    pub id: String,
    pub deleted: bool,
    pub reload_command: String,
    /// What the reload does, as for the other changes.
    pub message: String,
}

/// What an account change's `reload` does, as far as the edge can tell: it sees the command
/// sent, not the stages' answer (they log it).
pub const RELOAD_NOTE: &str = "accounts file rewritten and reload sent: every ensemble, risk and execution \
    stage that reads this file (worker ensemble, worker risk, worker exec, and those inside tradeflow up) \
    re-reads it; a sound file takes over from the checkpoints (logged as `configuration reloaded`), a \
    broken one is refused and the running configuration stays (logged as `reload refused`)";

/// TOML text of a value, or `None` for null.
fn toml_value(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // A JSON string literal is a valid TOML basic string.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!("[{}]", items.iter().filter_map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            let fields: Vec<String> =
                m.iter().filter_map(|(k, v)| toml_value(v).map(|v| format!("{} = {v}", toml_key(k)))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
    })
}

fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// The accounts as an accounts file (`[[account]]` tables).
pub fn accounts_toml(accounts: &[AccountConfig]) -> String {
    let mut out = String::from("# Accounts, written by the tradeflow edge (account routes).\n");
    for a in accounts {
        out.push_str("\n[[account]]\n");
        if let Ok(Value::Object(m)) = serde_json::to_value(a) {
            for (k, v) in &m {
                if let Some(v) = toml_value(v) {
                    out.push_str(&format!("{} = {v}\n", toml_key(k)));
                }
            }
        }
    }
    out
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over it.
fn write_atomic(path: &FsPath, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(FsPath::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "accounts".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    written
}

/// Validates `next` as the workers would (the very file text they will read), writes it and
/// makes it the edge's accounts. `change` gets the current accounts and returns the new set
/// (or refuses). Runs under the accounts lock, so changes do not interleave.
fn change_accounts<T>(
    state: &AppState,
    change: impl FnOnce(&[AccountConfig]) -> Result<(Vec<AccountConfig>, T), ApiError>,
) -> Result<T, ApiError> {
    let Some(path) = state.pipeline.accounts_path.as_deref() else {
        return Err(ApiError::conflict(
            "the accounts are the defaults: start with `--accounts FILE` (or TRADEFLOW_ACCOUNTS) to manage them",
        ));
    };
    let mut guard = state.pipeline.accounts.write().unwrap_or_else(|p| p.into_inner());
    let (next, out) = change(&guard)?;
    let text = accounts_toml(&next);
    let names: Vec<&str> = state.pipeline.profiles.iter().map(|p| p.name.as_str()).collect();
    let parsed = tradeflow_risk::parse_accounts(&text, &names).map_err(|problems| {
        ApiError::unprocessable("invalid_account", problems.join("; ")).with_details(json!({ "problems": problems }))
    })?;
    write_atomic(path, &text)
        .map_err(|e| ApiError::unavailable(&format!("the accounts file {}", path.display()), e))?;
    *guard = parsed;
    Ok(out)
}

async fn reload(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    Ok(state.command(caller, Command::Reload).await?.id)
}

/// Creates an account (trader): the body is an `[[account]]` table as JSON (`id`, `profile`,
/// `starting_balance` required; see the README's Risk section). 422 with every problem when
/// it is not valid, 409 when the id is taken or without an accounts file.
#[utoipa::path(post, path = "/trading/accounts", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "an account: {id, name?, profile, executor?, starting_balance, leverage?, trading_enabled?, allow_short?, trailing_stop_pct?, sizing?, risk?, paper?}"),
    responses(
        (status = 201, body = AccountChange),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn create_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(body): Json<AccountConfig>,
) -> Result<(StatusCode, Json<AccountChange>), ApiError> {
    let caller = meta.caller(who);
    let id = body.id.clone();
    let outcome = async {
        change_accounts(&state, |current| {
            if current.iter().any(|a| a.id == body.id) {
                return Err(ApiError::conflict(format!("account {:?} exists", body.id))
                    .with_details(json!({ "resource": "account", "name": body.id })));
            }
            let mut next = current.to_vec();
            next.push(body);
            Ok((next, ()))
        })?;
        let reload_command = reload(&state, &caller).await?;
        let a = find_account(&state, &id)?;
        let config = serde_json::to_value(&a).unwrap_or(Value::Null);
        let change = AccountChange { account: detail(&state, &a), reload_command, message: RELOAD_NOTE.into() };
        Ok((change, json!({ "account": id, "config": config })))
    }
    .await;
    let change = audited(&state, &caller, "account_create", "/api/v1/trading/accounts", outcome).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

async fn update(state: &AppState, caller: &Caller, id: &str, next: AccountConfig) -> Result<AccountChange, ApiError> {
    if next.id != id {
        return Err(ApiError::unprocessable("invalid_body", format!("id: {:?} cannot become {:?}", id, next.id))
            .with_details(json!({ "field": "id" })));
    }
    change_accounts(state, |current| {
        let mut all = current.to_vec();
        let slot = all.iter_mut().find(|a| a.id == id).ok_or_else(|| ApiError::not_found("account", id))?;
        *slot = next;
        Ok((all, ()))
    })?;
    let reload_command = reload(state, caller).await?;
    let a = find_account(state, id)?;
    Ok(AccountChange { account: detail(state, &a), reload_command, message: RELOAD_NOTE.into() })
}

/// Replaces an account's configuration (trader): the whole `[[account]]` table; its `id` must
/// be the path's.
#[utoipa::path(put, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    request_body(content = Object, description = "the whole account, as for create"),
    responses(
        (status = 200, body = AccountChange),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn replace_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
    Json(body): Json<AccountConfig>,
) -> Result<Json<AccountChange>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/trading/accounts/{id}");
    let outcome = async {
        let config = serde_json::to_value(&body).unwrap_or(Value::Null);
        let change = update(&state, &caller, &id, body).await?;
        Ok((change, json!({ "account": id, "config": config })))
    }
    .await;
    Ok(Json(audited(&state, &caller, "account_update", &resource, outcome).await?))
}

/// RFC 7396 merge patch, except that `sizing` (a tagged choice) is replaced whole.
fn merge_patch(target: &mut Value, patch: &Value, top: bool) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if top && k == "sizing" {
                    t.insert(k.clone(), v.clone());
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v, false);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Changes some fields of an account (trader): a JSON merge patch (RFC 7396) of its
/// configuration; nested tables (`risk`, `paper`) merge, `sizing` is replaced whole, `null`
/// resets a field to its default.
#[utoipa::path(patch, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    request_body(content = Object, description = "the fields to change, e.g. {\"leverage\": 2, \"risk\": {\"max_open_positions\": 3}}"),
    responses(
        (status = 200, body = AccountChange),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn patch_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Result<Json<AccountChange>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/trading/accounts/{id}");
    let outcome = async {
        if !patch.is_object() {
            return Err(ApiError::unprocessable("invalid_body", "expected a JSON object of the fields to change"));
        }
        let current = find_account(&state, &id)?;
        let mut merged = serde_json::to_value(&current).unwrap_or(Value::Null);
        merge_patch(&mut merged, &patch, true);
        let next: AccountConfig = serde_json::from_value(merged)
            .map_err(|e| ApiError::unprocessable("invalid_body", format!("the patched account: {e}")))?;
        let change = update(&state, &caller, &id, next).await?;
        Ok((change, json!({ "account": id, "patch": patch })))
    }
    .await;
    Ok(Json(audited(&state, &caller, "account_update", &resource, outcome).await?))
}

/// Deletes an account (trader). 409 while it holds open positions (close them first) or when
/// it is the last account.
#[utoipa::path(delete, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = AccountDeleted),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn delete_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Json<AccountDeleted>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/trading/accounts/{id}");
    let outcome = async {
        find_account(&state, &id)?;
        let open = state.live.positions(Some(&id)).len();
        if open > 0 {
            return Err(ApiError::conflict(format!("account {id:?} holds {open} open positions: close them first"))
                .with_details(json!({ "open_positions": open })));
        }
        change_accounts(&state, |current| {
            if current.len() == 1 {
                return Err(ApiError::conflict("the last account cannot be deleted"));
            }
            Ok((current.iter().filter(|a| a.id != id).cloned().collect(), ()))
        })?;
        let reload_command = reload(&state, &caller).await?;
        let deleted = AccountDeleted { id: id.clone(), deleted: true, reload_command, message: RELOAD_NOTE.into() };
        Ok((deleted, json!({ "account": id })))
    }
    .await;
    Ok(Json(audited(&state, &caller, "account_delete", &resource, outcome).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TradingSwitch {
    pub account: String,
    /// What was asked.
    pub trading_enabled: bool,
    /// Id of the `set_trading` command.
    pub command: String,
    /// Whether this process's control follower applied it within the wait (2 s). `false`
    /// (answered 202): sent, not confirmed; the account view says when it is.
    pub applied: bool,
}

async fn switch(state: &AppState, caller: &Caller, id: &str, enabled: bool) -> Result<TradingSwitch, ApiError> {
    find_account(state, id)?;
    // Answer once this process's follower has applied it, so a read right after agrees; or
    // say that it has not.
    let (command, applied) = crate::routes::control::send_and_wait(
        state,
        caller,
        Command::SetTrading { account: id.to_string(), enabled },
        |s| s.trading.get(id) == Some(&enabled),
    )
    .await?;
    Ok(TradingSwitch { account: id.to_string(), trading_enabled: enabled, command, applied })
}

/// Lets an account open positions again (trader): a `set_trading` command.
#[utoipa::path(post, path = "/trading/accounts/{id}/enable", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = TradingSwitch, description = "applied"),
        (status = 202, body = TradingSwitch, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn enable_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TradingSwitch>), ApiError> {
    let caller = meta.caller(who);
    let outcome = switch(&state, &caller, &id, true).await.map(|s| (s, json!({ "account": id, "enabled": true })));
    let resource = format!("/api/v1/trading/accounts/{id}/enable");
    let s = audited(&state, &caller, "account_enable", &resource, outcome).await?;
    Ok((crate::routes::control::command_status(s.applied), Json(s)))
}

/// Stops an account from opening positions (trader): entries are refused with
/// `trading_disabled`; exits still happen.
#[utoipa::path(post, path = "/trading/accounts/{id}/disable", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = TradingSwitch, description = "applied"),
        (status = 202, body = TradingSwitch, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn disable_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TradingSwitch>), ApiError> {
    let caller = meta.caller(who);
    let outcome = switch(&state, &caller, &id, false).await.map(|s| (s, json!({ "account": id, "enabled": false })));
    let resource = format!("/api/v1/trading/accounts/{id}/disable");
    let s = audited(&state, &caller, "account_disable", &resource, outcome).await?;
    Ok((crate::routes::control::command_status(s.applied), Json(s)))
}

// ---------------------------------------------------------------------------------------------
// Positions, trades, logs, history

/// Open positions of every account, from the live view.
#[utoipa::path(get, path = "/trading/positions", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Items<PositionView>), (status = 401, body = crate::error::ErrorBody)))]
async fn all_positions(State(state): State<AppState>, _who: Viewer) -> Json<Items<PositionView>> {
    Json(Items { items: state.live.positions(None).into_iter().map(position_view).collect() })
}

/// Open positions of one account.
#[utoipa::path(get, path = "/trading/positions/{account}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("account" = String, Path, description = "account id")),
    responses(
        (status = 200, body = Items<PositionView>),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn account_positions(
    State(state): State<AppState>,
    _who: Viewer,
    Path(account): Path<String>,
) -> Result<Json<Items<PositionView>>, ApiError> {
    known_account(&state, &account)?;
    Ok(Json(Items { items: state.live.positions(Some(&account)).into_iter().map(position_view).collect() }))
}

/// A trade: a fill and the order that caused it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TradeView {
    pub id: String,
    pub order_id: String,
    pub account: String,
    pub symbol: String,
    /// buy or sell.
    pub side: String,
    pub quantity: f64,
    pub price: f64,
    pub fee: f64,
    /// Before fees; 0 for an entry.
    pub realized_pnl: f64,
    /// maker or taker.
    pub liquidity: String,
    /// entry, exit, stop_loss, take_profit, trailing_stop, liquidation, emergency_close.
    pub reason: String,
    pub seq: i64,
    pub time: i64,
    /// The order (none for a stop, take-profit or liquidation on a bar).
    pub order: Option<TradeOrderView>,
    /// Caused by a manual paper order.
    pub manual: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TradeOrderView {
    pub decision_id: String,
    /// open, close or reduce.
    pub intent: String,
    pub order_type: String,
    pub quantity: f64,
    pub reference_price: f64,
    pub leverage: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

pub(crate) fn fill_view(f: FillRow, order: Option<TradeOrderView>) -> TradeView {
    TradeView {
        manual: f.order_id.starts_with("req:") || f.order_id.starts_with("manual:"),
        id: f.id,
        order_id: f.order_id,
        account: f.account,
        symbol: f.symbol,
        side: f.side,
        quantity: f.quantity,
        price: f.price,
        fee: f.fee,
        realized_pnl: f.realized_pnl,
        liquidity: f.liquidity,
        reason: f.reason,
        seq: f.seq,
        time: f.time,
        order,
    }
}

fn trade_view(t: Trade) -> TradeView {
    let order = t.order.map(|o| TradeOrderView {
        decision_id: o.decision_id,
        intent: o.intent,
        order_type: o.order_type,
        quantity: o.quantity,
        reference_price: o.reference_price,
        leverage: o.leverage,
        stop_loss: o.stop_loss,
        take_profit: o.take_profit,
    });
    fill_view(t.fill, order)
}

async fn trades(state: &AppState, account: Option<&str>, page: Page) -> Result<Paged<TradeView>, ApiError> {
    let (limit, offset) = page.resolve(100)?;
    let rows = state.store()?.trades(account, limit, offset).await?;
    Ok(Paged { items: rows.into_iter().map(trade_view).collect(), limit, offset })
}

/// Trades (fills with their order) of every account, newest first.
#[utoipa::path(get, path = "/trading/trades", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(Page),
    responses(
        (status = 200, body = Paged<TradeView>),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
async fn all_trades(
    State(state): State<AppState>,
    _who: Viewer,
    Query(page): Query<Page>,
) -> Result<Json<Paged<TradeView>>, ApiError> {
    Ok(Json(trades(&state, None, page).await?))
}

/// Trades of one account, newest first.
#[utoipa::path(get, path = "/trading/trades/{account}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("account" = String, Path, description = "account id"), Page),
    responses(
        (status = 200, body = Paged<TradeView>),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn account_trades(
    State(state): State<AppState>,
    _who: Viewer,
    Path(account): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<TradeView>>, ApiError> {
    known_account(&state, &account)?;
    Ok(Json(trades(&state, Some(&account), page).await?))
}

/// `?account&limit&offset`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountPage {
    /// One account; absent: every account.
    pub account: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
    /// 0 or more.
    pub offset: Option<i64>,
}

impl AccountPage {
    fn resolve(&self, state: &AppState) -> Result<(i64, i64), ApiError> {
        let page = Page { limit: self.limit, offset: self.offset }.resolve(100)?;
        if let Some(a) = &self.account {
            known_account(state, a)?;
        }
        Ok(page)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntry {
    pub id: String,
    pub account: String,
    pub symbol: Option<String>,
    /// open_long, open_short, close_position, trade_rejected, auto_pause, cooldown, ...
    pub action: String,
    pub details: String,
    pub time: i64,
}

impl From<TradingLogRow> for LogEntry {
    fn from(r: TradingLogRow) -> Self {
        LogEntry { id: r.id, account: r.account, symbol: r.symbol, action: r.action, details: r.details, time: r.time }
    }
}

/// The trading action log (orders, rejections, circuit breaker, cooldown ...), newest first.
#[utoipa::path(get, path = "/trading/logs", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(AccountPage),
    responses(
        (status = 200, body = Paged<LogEntry>),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn logs(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<AccountPage>,
) -> Result<Json<Paged<LogEntry>>, ApiError> {
    let (limit, offset) = q.resolve(&state)?;
    let rows = state.store()?.trading_log(q.account.as_deref(), limit, offset).await?;
    Ok(Json(Paged { items: rows.into_iter().map(LogEntry::from).collect(), limit, offset }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceEntry {
    pub id: String,
    pub account: String,
    pub balance: f64,
    pub equity: f64,
    pub margin_used: f64,
    pub unrealized_pnl: f64,
    pub realized_pnl: f64,
    pub fees: f64,
    pub open_positions: i64,
    pub seq: i64,
    pub time: i64,
}

impl From<BalanceRow> for BalanceEntry {
    fn from(r: BalanceRow) -> Self {
        BalanceEntry {
            id: r.id,
            account: r.account,
            balance: r.balance,
            equity: r.equity,
            margin_used: r.margin_used,
            unrealized_pnl: r.unrealized_pnl,
            realized_pnl: r.realized_pnl,
            fees: r.fees,
            open_positions: r.open_positions,
            seq: r.seq,
            time: r.time,
        }
    }
}

/// Balance and equity after each change, newest first.
#[utoipa::path(get, path = "/trading/balance-history", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(AccountPage),
    responses(
        (status = 200, body = Paged<BalanceEntry>),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn balance_history(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<AccountPage>,
) -> Result<Json<Paged<BalanceEntry>>, ApiError> {
    let (limit, offset) = q.resolve(&state)?;
    let rows = state.store()?.balance_rows(q.account.as_deref(), limit, offset).await?;
    Ok(Json(Paged { items: rows.into_iter().map(BalanceEntry::from).collect(), limit, offset }))
}

/// `?account&symbol&limit&offset`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    pub account: Option<String>,
    /// A symbol with a price (404 otherwise).
    pub symbol: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotEntry {
    pub id: String,
    pub account: String,
    pub symbol: String,
    /// long or short.
    pub direction: String,
    /// 0 once closed.
    pub quantity: f64,
    pub entry_price: f64,
    pub mark_price: f64,
    pub unrealized_pnl: f64,
    pub liquidation_price: Option<f64>,
    /// The stop loss, or the trailing stop when there is no stop loss.
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// open or closed.
    pub status: String,
    pub seq: i64,
    pub time: i64,
}

impl From<PositionRow> for SnapshotEntry {
    fn from(r: PositionRow) -> Self {
        SnapshotEntry {
            id: r.id,
            account: r.account,
            symbol: r.symbol,
            direction: r.side,
            quantity: r.quantity,
            entry_price: r.entry_price,
            mark_price: r.mark_price,
            unrealized_pnl: r.unrealized_pnl,
            liquidation_price: r.liquidation_price,
            stop_loss: r.stop_loss,
            take_profit: r.take_profit,
            status: r.status,
            seq: r.seq,
            time: r.time,
        }
    }
}

/// Position snapshots (one per change of a position), newest first.
#[utoipa::path(get, path = "/trading/position-snapshots", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(SnapshotQuery),
    responses(
        (status = 200, body = Paged<SnapshotEntry>),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
async fn position_snapshots(
    State(state): State<AppState>,
    _who: Viewer,
    Query(q): Query<SnapshotQuery>,
) -> Result<Json<Paged<SnapshotEntry>>, ApiError> {
    let (limit, offset) = Page { limit: q.limit, offset: q.offset }.resolve(100)?;
    if let Some(a) = &q.account {
        known_account(&state, a)?;
    }
    if let Some(s) = &q.symbol
        && state.live.price(s).is_none()
    {
        return Err(ApiError::not_found("symbol", s));
    }
    let rows = state.store()?.position_rows(q.account.as_deref(), q.symbol.as_deref(), limit, offset).await?;
    Ok(Json(Paged { items: rows.into_iter().map(SnapshotEntry::from).collect(), limit, offset }))
}

// ---------------------------------------------------------------------------------------------
// Leaderboard

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
async fn leaderboard(State(state): State<AppState>, _who: Viewer) -> Result<Json<Leaderboard>, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_file_round_trips_through_the_workers_parser() {
        let mut a = AccountConfig::paper("a-1", "technical", 10_000.0);
        a.name = "Quote \"me\" \\ ünï".into();
        a.trailing_stop_pct = Some(0.00001);
        a.sizing = tradeflow_risk::Sizing::Kelly { cap: 0.2, payoff: 1.5 };
        a.risk.max_position_notional = Some(2500.0);
        let mut b = AccountConfig::paper("b", "committee", 5000.5);
        b.leverage = 3.0;
        b.allow_short = false;
        let text = accounts_toml(&[a.clone(), b.clone()]);
        let parsed = tradeflow_risk::parse_accounts(&text, &["technical", "committee"]).unwrap();
        assert_eq!(parsed, vec![a, b], "{text}");
    }

    #[test]
    fn merge_patch_merges_tables_and_replaces_sizing() {
        let mut t = json!({ "id": "a", "leverage": 1.0, "risk": { "max_open_positions": 5, "min_notional": 5.0 },
                            "sizing": { "method": "fixed_fraction", "fraction": 0.1 }, "trailing_stop_pct": 0.1 });
        let p = json!({ "leverage": 2.0, "risk": { "max_open_positions": 3 },
                        "sizing": { "method": "kelly", "cap": 0.2, "payoff": 1.5 }, "trailing_stop_pct": null });
        merge_patch(&mut t, &p, true);
        assert_eq!(
            t,
            json!({ "id": "a", "leverage": 2.0, "risk": { "max_open_positions": 3, "min_notional": 5.0 },
                    "sizing": { "method": "kelly", "cap": 0.2, "payoff": 1.5 } })
        );
    }

    #[test]
    fn atomic_writes_replace_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
