//! Execution on Binance USDⓈ-M futures: the exchange half of the execution stage.
//!
//! An approved order becomes a MARKET order whose `newClientOrderId` is derived from our order
//! id, so a redelivered intent finds the order it already placed instead of opening a second
//! one ([`FuturesClient::place_order`] looks it up after any failure whose outcome is unknown).
//! What the exchange reports (executed quantity, average price) is booked with the paper
//! book's accounting — margin, realised PnL, fees at the account's taker rate — so exchange
//! accounts emit the same Fill, PositionUpdate and AccountUpdate messages as paper ones.
//!
//! Stops and take-profits are not placed on the exchange (left out for now): exits come from
//! decisions. Leverage is set once per symbol before its first order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tradeflow_core::order::{Intent, OrderIntent, RiskMessage, Side};

use crate::binance::{FuturesClient, FuturesError, NewOrder, OrderSide};
use crate::paper::{PaperBook, PaperConfig};
use crate::stage::ExecOutput;

/// An account executed on the exchange.
#[derive(Debug, Clone)]
pub struct ExchangeAccount {
    pub id: String,
    pub starting_balance: f64,
    /// Leverage set on every symbol it trades.
    pub leverage: u32,
    /// Taker fee used to book fills (Binance reports commissions per trade, not per order).
    pub taker_fee: f64,
    pub client: FuturesClient,
}

/// Why an exchange message did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Worth another attempt (timeouts, 5xx, rate limits, an order not filled yet); a retry
    /// reuses the same client order id.
    #[error("{0}")]
    Retry(String),
    /// Binance refused the order for a reason a retry cannot change.
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
        let RiskMessage::Order(order) = msg else {
            // Marks and rejections ask nothing of the exchange.
            self.state.seqs.insert(account, msg.seq());
            return Ok(ExecOutput::default());
        };
        let symbol = order.bar.symbol.clone();
        if !self.state.leverage_set.contains(&(account.clone(), symbol.clone())) {
            cfg.client.set_leverage(&symbol, cfg.leverage).await.map_err(classify)?;
            self.state.leverage_set.insert((account.clone(), symbol.clone()));
        }
        let side = match order.side {
            Side::Buy => OrderSide::Buy,
            Side::Sell => OrderSide::Sell,
        };
        let mut request = NewOrder::market(&symbol, side, order.quantity, &order.id);
        if order.intent != Intent::Open {
            request = request.reduce_only();
        }
        let ack = cfg.client.place_order(&request).await.map_err(classify)?;
        if ack.executed_qty <= 0.0 {
            return Err(ExchangeError::Retry(format!(
                "order {} is {:?} with nothing executed yet; looked up again on retry",
                order.id, ack.status
            )));
        }
        let price = ack.avg_price.filter(|p| *p > 0.0).or_else(|| ack.cum_quote.map(|q| q / ack.executed_qty));
        let price = price.unwrap_or(order.bar.close);
        let booked = OrderIntent {
            quantity: ack.executed_qty,
            bar: tradeflow_core::order::BarMark { close: price, ..order.bar.clone() },
            stop_loss: None,
            take_profit: None,
            trailing_stop_pct: None,
            ..order.clone()
        };
        let book = self.state.books.entry(account.clone()).or_insert_with(|| {
            let config = PaperConfig {
                taker_fee: cfg.taker_fee,
                maker_fee: cfg.taker_fee,
                slippage_bps: 0.0,
                maintenance_margin_rate: 0.0,
            };
            PaperBook::new(&account, cfg.starting_balance, config)
        });
        let events = book.execute(&booked);
        self.state.seqs.insert(account, msg.seq());
        Ok(ExecOutput { events, duplicate: false })
    }
}

fn classify(e: FuturesError) -> ExchangeError {
    let retry = e.outcome_unknown()
        || matches!(e, FuturesError::Timeout { .. } | FuturesError::Transport(_) | FuturesError::RateLimited { .. });
    if retry { ExchangeError::Retry(format!("binance: {e}")) } else { ExchangeError::Refused(format!("binance: {e}")) }
}
