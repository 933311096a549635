//! Open positions (live view), trades, trading logs, balance history and position snapshots
//! (SQL store).

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(all_positions))
        .routes(routes!(account_positions))
        .routes(routes!(all_trades))
        .routes(routes!(account_trades))
        .routes(routes!(logs))
        .routes(routes!(balance_history))
        .routes(routes!(position_snapshots))
}

/// Open positions of every account, from the live view.
#[utoipa::path(get, path = "/trading/positions", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Items<PositionView>), (status = 401, body = crate::error::ErrorBody)))]
pub(super) async fn all_positions(State(state): State<AppState>, _who: Viewer) -> Json<Items<PositionView>> {
    Json(Items { items: state.live.positions(None).into_iter().map(position_view).collect() })
}

/// Open positions of one account.
#[utoipa::path(get, path = "/trading/positions/{account}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("account" = String, Path, description = "account id")),
    responses(
        (status = 200, body = Items<PositionView>),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(super) async fn account_positions(
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

pub(super) fn trade_view(t: Trade) -> TradeView {
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

pub(super) async fn trades(state: &AppState, account: Option<&str>, page: Page) -> Result<Paged<TradeView>, ApiError> {
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
pub(super) async fn all_trades(
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
pub(super) async fn account_trades(
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
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// 0 or more.
    #[param(minimum = 0)]
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
pub(super) async fn logs(
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
pub(super) async fn balance_history(
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
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
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
pub(super) async fn position_snapshots(
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
