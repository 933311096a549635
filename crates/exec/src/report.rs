//! What an exchange account holds, reported to risk ([`AccountReport`]): after every message
//! that filled on the exchange (the desk's book, booked at the exchange's quantities and prices)
//! and at every reconciliation (read from the exchange itself: Binance's `/fapi/v2/account`,
//! `/fapi/v2/positionRisk` and `/fapi/v1/openOrders`; Hyperliquid's `clearinghouseState` and
//! `frontendOpenOrders`). Risk compares them with its own book, alerts on a difference and
//! takes the exchange's figures (see `tradeflow_core::report`).
//!
//! The desk's own book does not adopt a reconciliation's figures: it books what its orders did,
//! which is what its protective orders are sized on; risk, which sizes and limits, is where the
//! exchange's word is final.

use tradeflow_core::execution::{ExecEvent, Fill};
use tradeflow_core::order::Direction;
use tradeflow_core::report::{AccountReport, ReportKind, ReportedPosition};

use crate::exchange::{ExchangeAccount, ExchangeDesk, ExchangeError, Venue};
use crate::paper::PaperBook;

/// The positions of `book` as a report lists them.
fn positions_of(book: &PaperBook) -> Vec<ReportedPosition> {
    book.positions()
        .map(|p| ReportedPosition {
            symbol: p.symbol.clone(),
            direction: p.direction,
            quantity: p.quantity,
            entry_price: p.entry_price,
            leverage: p.leverage,
            mark_price: None,
        })
        .collect()
}

impl ExchangeDesk {
    /// The report after risk message `seq` of `account` produced `events` on the exchange:
    /// `None` when none of them is a fill (nothing the exchange did differs from a mark).
    pub fn fills_report(&self, account: &str, seq: u64, events: &[ExecEvent]) -> Option<AccountReport> {
        let fills: Vec<Fill> = events
            .iter()
            .filter_map(|e| match e {
                ExecEvent::Fill(f) if f.account == account => Some(f.clone()),
                _ => None,
            })
            .collect();
        let book = self.book(account)?;
        let time = fills.iter().map(|f| f.time).max()?;
        Some(AccountReport {
            id: format!("{account}/report/{seq}"),
            account: account.to_string(),
            kind: ReportKind::Fills { seq },
            time,
            balance: book.balance(),
            positions: positions_of(book),
            fills,
            open_orders: None,
        })
    }

    /// Reads what the exchange says `account` holds, as of `now` (epoch ms).
    pub async fn read_exchange(&self, account: &str, now: i64) -> Result<AccountReport, ExchangeError> {
        let cfg = self
            .account(account)
            .ok_or_else(|| ExchangeError::Refused(format!("account {account:?} is not an exchange account here")))?;
        let (balance, positions, open_orders) = read(cfg, self.book(account)).await?;
        Ok(AccountReport {
            id: format!("{account}/reconcile/{now}"),
            account: account.to_string(),
            kind: ReportKind::Reconcile,
            time: now,
            balance,
            positions,
            fills: Vec::new(),
            open_orders: Some(open_orders),
        })
    }
}

/// Balance, open positions and open orders as the venue reports them.
async fn read(
    cfg: &ExchangeAccount,
    book: Option<&PaperBook>,
) -> Result<(f64, Vec<ReportedPosition>, u32), ExchangeError> {
    let retry = |what: &str, e: &dyn std::fmt::Display| ExchangeError::Retry(format!("reading the {what}: {e}"));
    match &cfg.client {
        Venue::Binance(c) => {
            let balance = c.wallet_balance().await.map_err(|e| retry("account", &e))?;
            let positions = c.open_positions().await.map_err(|e| retry("positions", &e))?;
            let orders = c.open_order_count().await.map_err(|e| retry("open orders", &e))?;
            let positions = positions
                .into_iter()
                .map(|p| ReportedPosition {
                    symbol: p.symbol,
                    direction: if p.amount > 0.0 { Direction::Long } else { Direction::Short },
                    quantity: p.amount.abs(),
                    entry_price: p.entry_price,
                    leverage: p.leverage,
                    mark_price: Some(p.mark_price).filter(|m| *m > 0.0),
                })
                .collect();
            Ok((balance, positions, orders))
        }
        Venue::Hyperliquid(c) => {
            let state = c.account_state().await.map_err(|e| retry("clearinghouse state", &e))?;
            let orders = c.open_orders().await.map_err(|e| retry("open orders", &e))?;
            // Account value counts unrealised PnL; the balance risk keeps does not.
            let unrealised: f64 = state.positions.iter().map(|p| p.unrealized_pnl).sum();
            // Our symbol for a coin: the one the desk trades it as (coins map or suffix).
            let known: Vec<String> =
                book.map(|b| b.positions().map(|p| p.symbol.clone()).collect()).unwrap_or_default();
            let symbol_of = |coin: &str| {
                known
                    .iter()
                    .chain(c.config().coins.keys())
                    .find(|s| c.config().coin(s) == coin)
                    .cloned()
                    .unwrap_or_else(|| coin.to_string())
            };
            let positions = state
                .positions
                .iter()
                .filter(|p| p.size != 0.0)
                .map(|p| ReportedPosition {
                    symbol: symbol_of(&p.coin),
                    direction: if p.size > 0.0 { Direction::Long } else { Direction::Short },
                    quantity: p.size.abs(),
                    entry_price: p.entry_px.unwrap_or(0.0),
                    leverage: p.leverage.unwrap_or(cfg.leverage as f64),
                    mark_price: None,
                })
                .collect();
            Ok((state.account_value - unrealised, positions, orders.len() as u32))
        }
    }
}
