//! Execution on an exchange: the exchange half of the execution stage, for Binance USDⓈ-M
//! futures and Hyperliquid perpetuals ([`Venue`]). The logic below is the venues'; what is
//! written of Binance's requests is how [`Venue::Binance`] does it, and
//! [`crate::hyperliquid::venue`] says how Hyperliquid does the same (IOC orders for market
//! orders, reduce-only trigger orders for stops and take profits, cloids from our ids, read
//! back by `frontendOpenOrders` and `orderStatus`).
//!
//! An approved order becomes a MARKET order whose `newClientOrderId` is derived from our order
//! id, so a redelivered intent finds the order it already placed instead of opening a second
//! one ([`FuturesClient::place_order`] looks it up after any failure whose outcome is unknown).
//! What the exchange reports (executed quantity, average price) is booked with the paper
//! book's accounting — margin, realised PnL, fees at the account's taker rate — so exchange
//! accounts emit the same Fill, PositionUpdate and AccountUpdate messages as paper ones.
//!
//! # Protection
//! Stops, take profits and trailing stops rest on the exchange: after an entry fills, the
//! position's protection is placed as reduce-only conditional orders — STOP_MARKET,
//! TAKE_PROFIT_MARKET and TRAILING_STOP_MARKET on the mark price — through Binance's Algo Order
//! API (`POST /fapi/v1/algoOrder`, `algoType=CONDITIONAL`; Binance refuses these types on
//! `/fapi/v1/order` with -4120 since 2025-12-09, see [`crate::binance::algo`]), so it holds
//! while this process is down. Their `clientAlgoId`s derive from the entry's order id
//! (`<order id>:sl`, `:tp`, `:ts`, through `client_order_id`). Binance keeps a `clientAlgoId`
//! unique among open orders only, so placing is check-first: within a call the client looks
//! the order up before any re-POST, and an order whose earlier attempt ended without a known
//! outcome (a timeout) is looked up by its `clientAlgoId` before it is posted again on a later
//! message ([`FuturesClient::resume_algo_order`]). A retry never places a second one.
//!
//! On each message of the account for that symbol the desk first asks Binance about them
//! (`GET /fapi/v1/openAlgoOrders` for the symbol, then `GET /fapi/v1/algoOrder` for any that is
//! no longer open). One that fired became an ordinary MARKET order (`actualOrderId`): that
//! order is read (`GET /fapi/v1/order` by `orderId`) and, once final, its fill is booked as the
//! exit it was (at its average price, with its reason, fill id `<protective id>#1`); its
//! siblings are cancelled (`DELETE /fapi/v1/algoOrder`) and the protection is dropped from the
//! desk's state in the same step, which is what books the fill once. While a fired order's
//! ordinary order is not there yet (`TRIGGERING`) or not final, the message is retried rather
//! than guessed at. A close or reduce cancels the protection before sending its market order
//! (a protective order found fired in between is booked instead); a reduce places it again for
//! what is left. Placing protection never fails the message that opened the position (the
//! fill is already real): what could not be placed is retried on the account's next message
//! for the symbol, and an exchange refusal is logged as an error. Leverage is set once per
//! symbol before its first order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tracing::{error, warn};
use tradeflow_core::execution::{ExecEvent, FillReason};
use tradeflow_core::order::{Intent, OrderIntent, RiskMessage, Side};

use crate::binance::{
    AlgoOrderAck, FuturesClient, FuturesError, NewAlgoOrder, NewOrder, OrderAck, OrderSide, client_order_id,
};
use crate::hyperliquid::HyperliquidClient;
use crate::paper::{PaperBook, PaperConfig};
use crate::stage::ExecOutput;

/// An account executed on the exchange.
#[derive(Debug, Clone)]
pub struct ExchangeAccount {
    pub id: String,
    /// The ensemble profile it follows: its reports to risk go on `ens.decisions` under it.
    pub profile: String,
    pub starting_balance: f64,
    /// Leverage set on every symbol it trades.
    pub leverage: u32,
    /// Taker fee used to book fills (the exchanges report commissions per trade, not per order).
    pub taker_fee: f64,
    pub client: Venue,
    /// How often the executor reads the exchange's account for risk (`None`: only after
    /// fills).
    pub reconcile_every: Option<std::time::Duration>,
}

/// The exchange an account trades on, with its client. The desk's logic is the same for
/// every venue; what differs (how an order, a protective order, a cancel are sent and read
/// back) is in the venue's methods.
#[derive(Debug, Clone)]
pub enum Venue {
    /// Binance USDⓈ-M futures; protection through the Algo Order API.
    Binance(FuturesClient),
    /// Hyperliquid perpetuals; protection as reduce-only trigger orders
    /// (see [`crate::hyperliquid::venue`]).
    Hyperliquid(HyperliquidClient),
}

impl From<FuturesClient> for Venue {
    fn from(c: FuturesClient) -> Self {
        Self::Binance(c)
    }
}

impl From<HyperliquidClient> for Venue {
    fn from(c: HyperliquidClient) -> Self {
        Self::Hyperliquid(c)
    }
}

/// What an order executed on the exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    pub quantity: f64,
    /// Average fill price, when the exchange reports one.
    pub price: Option<f64>,
    /// Exchange time of the fill or of the order's last change (ms).
    pub time: i64,
}

impl Executed {
    fn of_binance(ack: &OrderAck) -> Self {
        Self { quantity: ack.executed_qty, price: fill_price(ack), time: ack.update_time }
    }
}

impl Venue {
    async fn set_leverage(&self, symbol: &str, leverage: u32) -> Result<(), ExchangeError> {
        match self {
            Self::Binance(c) => c.set_leverage(symbol, leverage).await.map(|_| ()).map_err(classify),
            Self::Hyperliquid(c) => crate::hyperliquid::venue::set_leverage(c, symbol, leverage).await,
        }
    }

    /// A market order, idempotent by `id`.
    async fn market(
        &self,
        symbol: &str,
        side: Side,
        quantity: f64,
        id: &str,
        reduce_only: bool,
    ) -> Result<Executed, ExchangeError> {
        match self {
            Self::Binance(c) => {
                let mut request = NewOrder::market(symbol, exchange_side(side), quantity, id);
                if reduce_only {
                    request = request.reduce_only();
                }
                let ack = c.place_order(&request).await.map_err(classify)?;
                if ack.executed_qty <= 0.0 {
                    return Err(ExchangeError::Retry(format!(
                        "order {id} is {:?} with nothing executed yet; looked up again on retry",
                        ack.status
                    )));
                }
                Ok(Executed::of_binance(&ack))
            }
            Self::Hyperliquid(c) => crate::hyperliquid::venue::market(c, symbol, side, quantity, id, reduce_only).await,
        }
    }

    /// Places a protective order; `p.attempted`: an earlier try may have placed it.
    async fn place_protective(&self, symbol: &str, p: &Protective) -> Result<(), ExchangeError> {
        match self {
            Self::Binance(c) => {
                let request = p.request(symbol);
                let placed =
                    if p.attempted { c.resume_algo_order(&request).await } else { c.place_algo_order(&request).await };
                placed.map(|_| ()).map_err(classify)
            }
            Self::Hyperliquid(c) => crate::hyperliquid::venue::place_protective(c, symbol, p).await,
        }
    }

    /// Where each of `placed` stands (in that order).
    async fn standings(&self, symbol: &str, placed: &[&Protective]) -> Result<Vec<Standing>, ExchangeError> {
        match self {
            Self::Binance(c) => {
                // One request for the usual case (all still open); one more per order that is not.
                let open = c.open_algo_orders(symbol).await.map_err(classify)?;
                let mut answers = Vec::with_capacity(placed.len());
                for p in placed {
                    let sent = client_order_id(&p.id);
                    let answer = match open.iter().find(|a| a.client_algo_id == sent) {
                        Some(a) => binance_standing(c, symbol, p, Some(a)).await?,
                        None => self.standing(symbol, p).await?,
                    };
                    answers.push(answer);
                }
                Ok(answers)
            }
            Self::Hyperliquid(c) => crate::hyperliquid::venue::standings(c, symbol, placed).await,
        }
    }

    /// Where one protective order stands.
    async fn standing(&self, symbol: &str, p: &Protective) -> Result<Standing, ExchangeError> {
        match self {
            Self::Binance(c) => {
                let algo = match c.query_algo_order(&p.id).await {
                    Ok(a) => Some(a),
                    Err(FuturesError::OrderNotFound { .. }) => None,
                    Err(e) => return Err(classify(e)),
                };
                binance_standing(c, symbol, p, algo.as_ref()).await
            }
            Self::Hyperliquid(c) => crate::hyperliquid::venue::standing(c, symbol, p).await,
        }
    }

    /// Cancels a protective order: true when it was open (and is cancelled now), false when
    /// the exchange has no open order by that id (it fired, was cancelled, or never placed).
    async fn cancel(&self, symbol: &str, p: &Protective) -> Result<bool, ExchangeError> {
        match self {
            Self::Binance(c) => c.cancel_algo_order(&p.id).await.map(|a| a.is_some()).map_err(classify),
            Self::Hyperliquid(c) => crate::hyperliquid::venue::cancel(c, symbol, p).await,
        }
    }
}

/// Why an exchange message did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Worth another attempt (timeouts, 5xx, rate limits, an order not filled yet); a retry
    /// reuses the same client order id.
    #[error("{0}")]
    Retry(String),
    /// The exchange refused the order for a reason a retry cannot change.
    #[error("{0}")]
    Refused(String),
}

/// Checkpointed state of the exchange accounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeskState {
    books: BTreeMap<String, PaperBook>,
    /// Last risk sequence number applied per account.
    seqs: BTreeMap<String, u64>,
    /// (account, symbol) pairs whose leverage is set.
    leverage_set: BTreeSet<(String, String)>,
    /// Protection of each open position: account → symbol → its orders on the exchange.
    #[serde(default)]
    protective: BTreeMap<String, BTreeMap<String, Vec<Protective>>>,
    /// Events booked by a message that then failed (an exit found on the exchange before the
    /// order that followed could not be placed): sent with the account's next message.
    #[serde(default)]
    unsent: Vec<ExecEvent>,
}

/// What a protective order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtectiveKind {
    StopLoss,
    TakeProfit,
    TrailingStop,
}

impl ProtectiveKind {
    fn reason(self) -> FillReason {
        match self {
            Self::StopLoss => FillReason::StopLoss,
            Self::TakeProfit => FillReason::TakeProfit,
            Self::TrailingStop => FillReason::TrailingStop,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::StopLoss => "sl",
            Self::TakeProfit => "tp",
            Self::TrailingStop => "ts",
        }
    }
}

/// A reduce-only order protecting a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protective {
    pub kind: ProtectiveKind,
    /// Our id of it (`<order id>:sl`…), sent as Binance's `clientAlgoId` through
    /// `client_order_id`, as Hyperliquid's `cloid` through `hyperliquid::cloid`.
    pub id: String,
    /// The closing side.
    pub side: Side,
    pub quantity: f64,
    /// Stop or target price; for a trailing stop, the callback in percent (1 = 1 %).
    pub level: f64,
    /// Whether the exchange has it; an unplaced one is placed on the account's next message.
    pub placed: bool,
    /// Whether a placement was tried: one that ended without a known outcome may have placed
    /// it, so the next try looks it up by its client id before posting.
    #[serde(default)]
    pub attempted: bool,
}

impl Protective {
    fn request(&self, symbol: &str) -> NewAlgoOrder {
        let side = exchange_side(self.side);
        match self.kind {
            ProtectiveKind::StopLoss => NewAlgoOrder::stop_market(symbol, side, self.quantity, self.level, &self.id),
            ProtectiveKind::TakeProfit => {
                NewAlgoOrder::take_profit_market(symbol, side, self.quantity, self.level, &self.id)
            }
            ProtectiveKind::TrailingStop => {
                NewAlgoOrder::trailing_stop_market(symbol, side, self.quantity, self.level, &self.id)
            }
        }
    }
}

/// Where a placed protective order stands on the exchange.
pub(crate) enum Standing {
    /// Waiting for its trigger.
    Resting,
    /// Fired, final, and executed this (quantity > 0).
    Filled(Executed),
    /// Cancelled, expired or rejected on the exchange, or fired without a fill, or unknown.
    Gone,
}

/// What an algo order's state means for the position; a fired one whose ordinary order does
/// not exist yet or is not final is a retry (its fill will be known shortly).
async fn binance_standing(
    client: &FuturesClient,
    symbol: &str,
    p: &Protective,
    algo: Option<&AlgoOrderAck>,
) -> Result<Standing, ExchangeError> {
    let Some(algo) = algo else { return Ok(Standing::Gone) };
    if algo.status.is_waiting() {
        return Ok(Standing::Resting);
    }
    if !algo.status.has_fired() {
        return Ok(Standing::Gone);
    }
    let Some(order_id) = algo.actual_order_id else {
        return Err(ExchangeError::Retry(format!(
            "protective order {} fired ({:?}); its order is not in the matching engine yet",
            p.id, algo.status
        )));
    };
    let ack = client.query_order_by_id(symbol, order_id).await.map_err(classify)?;
    if ack.status.is_open() {
        return Err(ExchangeError::Retry(format!(
            "protective order {} fired; its order {order_id} is {:?}, booked once final",
            p.id, ack.status
        )));
    }
    Ok(if ack.executed_qty > 0.0 { Standing::Filled(Executed::of_binance(&ack)) } else { Standing::Gone })
}

impl DeskState {
    /// The protection of `account`'s `symbol` position.
    pub fn protection(&self, account: &str, symbol: &str) -> &[Protective] {
        self.protective.get(account).and_then(|m| m.get(symbol)).map_or(&[], Vec::as_slice)
    }

    fn set_protection(&mut self, account: &str, symbol: &str, list: Vec<Protective>) {
        let m = self.protective.entry(account.to_string()).or_default();
        if list.is_empty() {
            m.remove(symbol);
        } else {
            m.insert(symbol.to_string(), list);
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExchangeDesk {
    accounts: BTreeMap<String, ExchangeAccount>,
    pub state: DeskState,
}

impl ExchangeDesk {
    pub fn new(accounts: Vec<ExchangeAccount>, state: DeskState) -> Self {
        Self { accounts: accounts.into_iter().map(|a| (a.id.clone(), a)).collect(), state }
    }

    pub fn handles(&self, account: &str) -> bool {
        self.accounts.contains_key(account)
    }

    pub fn account(&self, id: &str) -> Option<&ExchangeAccount> {
        self.accounts.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &ExchangeAccount> {
        self.accounts.values()
    }

    pub fn book(&self, account: &str) -> Option<&PaperBook> {
        self.state.books.get(account)
    }

    pub async fn on_message(&mut self, msg: &RiskMessage) -> Result<ExecOutput, ExchangeError> {
        let account = msg.account().to_string();
        let Some(cfg) = self.accounts.get(&account) else {
            return Err(ExchangeError::Refused(format!("account {account:?} is not an exchange account here")));
        };
        let last = self.state.seqs.get(&account).copied().unwrap_or(0);
        if msg.seq() <= last {
            return Ok(ExecOutput { events: Vec::new(), duplicate: true });
        }
        let mut events = std::mem::take(&mut self.state.unsent);
        match handle(cfg, &mut self.state, msg, &mut events).await {
            Ok(()) => {
                self.state.seqs.insert(account, msg.seq());
                Ok(ExecOutput { events, duplicate: false })
            }
            Err(e) => {
                self.state.unsent = events;
                Err(e)
            }
        }
    }
}

/// One message of an exchange account; what it books goes to `events`.
async fn handle(
    cfg: &ExchangeAccount,
    state: &mut DeskState,
    msg: &RiskMessage,
    events: &mut Vec<ExecEvent>,
) -> Result<(), ExchangeError> {
    let account = cfg.id.as_str();
    let bar = msg.bar();
    let symbol = bar.symbol.as_str();
    // What the exchange did on its own since the last message: a protective order that fired.
    reconcile(cfg, state, symbol, msg.seq(), events).await?;
    let RiskMessage::Order(order) = msg else {
        // Marks and rejections ask nothing more of the exchange.
        ensure_protection(cfg, state, symbol).await;
        return Ok(());
    };
    if !state.leverage_set.contains(&(account.to_string(), symbol.to_string())) {
        cfg.client.set_leverage(symbol, cfg.leverage).await?;
        state.leverage_set.insert((account.to_string(), symbol.to_string()));
    }
    let held = |state: &DeskState| state.books.get(account).and_then(|b| b.position(symbol)).is_some();
    let previous: Vec<Protective> = state.protection(account, symbol).to_vec();
    if order.intent != Intent::Open {
        if !held(state) {
            // Nothing to close here (a stop closed it, or it never opened): a reduce-only order
            // would only be refused.
            return Ok(());
        }
        // Protection off first, so that it cannot fire on a position being closed.
        if cancel_protection(cfg, state, symbol, order.seq, events).await? {
            return Ok(());
        }
    }
    let done = cfg.client.market(symbol, order.side, order.quantity, &order.id, order.intent != Intent::Open).await?;
    let price = done.price.filter(|p| p.is_finite() && *p > 0.0).unwrap_or(order.bar.close);
    let booked = OrderIntent {
        quantity: done.quantity,
        bar: tradeflow_core::order::BarMark { close: price, ..order.bar.clone() },
        stop_loss: None,
        take_profit: None,
        trailing_stop_pct: None,
        // The exchange filled what it filled: the book must not size it again.
        fill_sizing: None,
        ..order.clone()
    };
    let book = state.books.entry(account.to_string()).or_insert_with(|| {
        let config = PaperConfig {
            taker_fee: cfg.taker_fee,
            maker_fee: cfg.taker_fee,
            slippage_bps: 0.0,
            maintenance_margin_rate: 0.0,
            ..PaperConfig::default()
        };
        PaperBook::new(account, cfg.starting_balance, config)
    });
    events.extend(book.execute(&booked));

    // Protection for what is open now. Adding to a position replaces its protection (the old
    // orders cover the old quantity); a reduce keeps the levels for what is left.
    let Some(position) = book.position(symbol).cloned() else {
        state.set_protection(account, symbol, Vec::new());
        return Ok(());
    };
    let levels: Vec<(ProtectiveKind, f64)> = if order.intent == Intent::Open {
        [
            (ProtectiveKind::StopLoss, order.stop_loss),
            (ProtectiveKind::TakeProfit, order.take_profit),
            (ProtectiveKind::TrailingStop, order.trailing_stop_pct.map(|f| f * 100.0)),
        ]
        .into_iter()
        .filter_map(|(k, level)| level.map(|l| (k, l)))
        .collect()
    } else {
        previous.iter().map(|p| (p.kind, p.level)).collect()
    };
    if order.intent == Intent::Open
        && !previous.is_empty()
        && cancel_protection(cfg, state, symbol, order.seq, events).await?
    {
        return Ok(());
    }
    let list = levels
        .into_iter()
        .map(|(kind, level)| Protective {
            kind,
            id: format!("{}:{}", order.id, kind.suffix()),
            side: position.direction.closing_side(),
            quantity: position.quantity,
            level,
            placed: false,
            attempted: false,
        })
        .collect();
    state.set_protection(account, symbol, list);
    ensure_protection(cfg, state, symbol).await;
    Ok(())
}

/// Books a protective order of `symbol` that filled on the exchange, and cancels the others.
/// Every order is asked about before anything changes, so a failed request changes nothing.
async fn reconcile(
    cfg: &ExchangeAccount,
    state: &mut DeskState,
    symbol: &str,
    seq: u64,
    events: &mut Vec<ExecEvent>,
) -> Result<(), ExchangeError> {
    let account = cfg.id.as_str();
    let list = state.protection(account, symbol).to_vec();
    if !list.iter().any(|p| p.placed) {
        return Ok(());
    }
    let placed: Vec<&Protective> = list.iter().filter(|p| p.placed).collect();
    let standings = cfg.client.standings(symbol, &placed).await?;
    let answers: Vec<(&Protective, Standing)> = placed.into_iter().zip(standings).collect();
    if let Some((fired, ack)) =
        answers.iter().find_map(|(p, s)| if let Standing::Filled(a) = s { Some((*p, a)) } else { None })
    {
        book_exit(cfg, state, symbol, seq, fired, ack, events);
        cancel_rest(cfg, symbol, &list, &fired.id).await;
        state.set_protection(account, symbol, Vec::new());
        return Ok(());
    }
    // Cancelled or expired by someone else: the position is unprotected on that side.
    let gone: Vec<&str> =
        answers.iter().filter(|(_, s)| matches!(s, Standing::Gone)).map(|(p, _)| p.id.as_str()).collect();
    if !gone.is_empty() {
        error!(account, symbol, orders = ?gone, "protective orders are no longer on the exchange (cancelled, expired or rejected there)");
        let gone: Vec<String> = gone.into_iter().map(str::to_string).collect();
        let kept = list.iter().filter(|p| !gone.contains(&p.id)).cloned().collect();
        state.set_protection(account, symbol, kept);
    }
    Ok(())
}

/// Cancels the protective orders of `list` other than `fired` (best effort: they are
/// reduce-only and have no position left to act on).
async fn cancel_rest(cfg: &ExchangeAccount, symbol: &str, list: &[Protective], fired: &str) {
    for other in list.iter().filter(|o| o.id != fired && o.placed) {
        if let Err(e) = cfg.client.cancel(symbol, other).await {
            warn!(account = %cfg.id, symbol, order = %other.id, error = %e, "cannot cancel the rest of a position's protection; it is reduce-only and has no position left to act on");
        }
    }
}

/// Cancels the protection of `symbol`. Returns true when one of its orders had filled in the
/// meantime (booked here): the position is closed already.
async fn cancel_protection(
    cfg: &ExchangeAccount,
    state: &mut DeskState,
    symbol: &str,
    seq: u64,
    events: &mut Vec<ExecEvent>,
) -> Result<bool, ExchangeError> {
    let account = cfg.id.as_str();
    let list = state.protection(account, symbol).to_vec();
    for p in list.iter().filter(|p| p.placed) {
        if cfg.client.cancel(symbol, p).await? {
            continue;
        }
        // Not open any more: it may have just fired.
        if let Standing::Filled(ack) = cfg.client.standing(symbol, p).await? {
            book_exit(cfg, state, symbol, seq, p, &ack, events);
            cancel_rest(cfg, symbol, &list, &p.id).await;
            state.set_protection(account, symbol, Vec::new());
            return Ok(true);
        }
    }
    state.set_protection(account, symbol, Vec::new());
    Ok(false)
}

/// Places what of the protection of `symbol` the exchange does not have yet. Never fails: a
/// transient failure leaves it for the next message, a refusal is logged and dropped.
async fn ensure_protection(cfg: &ExchangeAccount, state: &mut DeskState, symbol: &str) {
    let account = cfg.id.as_str();
    let mut list = state.protection(account, symbol).to_vec();
    if list.iter().all(|p| p.placed) {
        return;
    }
    let mut refused = Vec::new();
    for p in list.iter_mut().filter(|p| !p.placed) {
        let placed = cfg.client.place_protective(symbol, p).await;
        p.attempted = true;
        match placed {
            Ok(_) => p.placed = true,
            Err(ExchangeError::Retry(e)) => {
                warn!(account, symbol, order = %p.id, error = %e, "protective order not placed yet; looked up, then placed if absent, on the next message");
            }
            Err(ExchangeError::Refused(e)) => {
                error!(account, symbol, order = %p.id, error = %e, "the exchange refused a protective order: the position has no {:?} there", p.kind);
                refused.push(p.id.clone());
            }
        }
    }
    list.retain(|p| !refused.contains(&p.id));
    state.set_protection(account, symbol, list);
}

/// Books the exit a protective order made on the exchange.
fn book_exit(
    cfg: &ExchangeAccount,
    state: &mut DeskState,
    symbol: &str,
    seq: u64,
    p: &Protective,
    done: &Executed,
    events: &mut Vec<ExecEvent>,
) {
    let Some(book) = state.books.get_mut(&cfg.id) else { return };
    let price = done
        .price
        .filter(|p| p.is_finite() && *p > 0.0)
        .or_else(|| book.position(symbol).map(|pos| pos.mark_price))
        .unwrap_or(f64::NAN);
    events.extend(book.close_at(&p.id, seq, done.time, symbol, done.quantity, price, p.kind.reason()));
}

/// The average fill price Binance reports (or cumQuote / executed when it leaves avgPrice out).
fn fill_price(ack: &OrderAck) -> Option<f64> {
    ack.avg_price
        .filter(|p| *p > 0.0)
        .or_else(|| ack.cum_quote.map(|q| q / ack.executed_qty))
        .filter(|p| p.is_finite() && *p > 0.0)
}

fn exchange_side(side: Side) -> OrderSide {
    match side {
        Side::Buy => OrderSide::Buy,
        Side::Sell => OrderSide::Sell,
    }
}

fn classify(e: FuturesError) -> ExchangeError {
    let retry = e.outcome_unknown()
        || matches!(e, FuturesError::Timeout { .. } | FuturesError::Transport(_) | FuturesError::RateLimited { .. });
    if retry { ExchangeError::Retry(format!("binance: {e}")) } else { ExchangeError::Refused(format!("binance: {e}")) }
}
