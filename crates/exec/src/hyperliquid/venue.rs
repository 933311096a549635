//! Hyperliquid as a venue of the exchange desk ([`crate::exchange`]): what the desk asks of an
//! exchange, done with [`HyperliquidClient`].
//!
//! - market orders are IOC limit orders at the mid ± slippage, placed check-first by cloid
//!   (the order's id through [`cloid`]); one that matched nothing is refused (a retry would
//!   not find liquidity the slippage did not);
//! - a stop loss or take profit is a reduce-only trigger order (`{"trigger": {"isMarket":
//!   true, "triggerPx", "tpsl": "sl" | "tp"}}`, limit `triggerPx` ± slippage, as Hyperliquid
//!   requires for a market trigger), its cloid from the protective id (`<order id>:sl`);
//!   Hyperliquid has no trailing stop order, so one is refused (and logged by the desk);
//! - a protective order is read back with one `frontendOpenOrders` (the usual case: all still
//!   open) and `orderStatus` by cloid for any that is not: `triggered` or `filled` with fills
//!   (`userFills` of its oid, which a triggered order keeps) is booked as the exit; triggered
//!   without a fill yet is a retry; any other status (canceled, rejected, …) is gone.

use tradeflow_core::order::Side;

use super::client::{HyperliquidClient, NewOrder, OrderKind, Tpsl};
use super::error::HyperliquidError;
use super::signing::cloid;
use crate::exchange::{ExchangeError, Executed, Protective, ProtectiveKind, Standing};

fn classify(e: HyperliquidError) -> ExchangeError {
    if e.transient() {
        ExchangeError::Retry(format!("hyperliquid: {e}"))
    } else {
        ExchangeError::Refused(format!("hyperliquid: {e}"))
    }
}

pub(crate) async fn set_leverage(c: &HyperliquidClient, symbol: &str, leverage: u32) -> Result<(), ExchangeError> {
    c.set_leverage(&c.config().coin(symbol), leverage).await.map_err(classify)
}

pub(crate) async fn market(
    c: &HyperliquidClient,
    symbol: &str,
    side: Side,
    quantity: f64,
    id: &str,
    reduce_only: bool,
) -> Result<Executed, ExchangeError> {
    let order = NewOrder {
        coin: c.config().coin(symbol),
        is_buy: side == Side::Buy,
        size: quantity,
        kind: OrderKind::Market,
        reduce_only,
        id: id.to_string(),
    };
    let ack = c.place_order(&order).await.map_err(classify)?;
    if ack.filled <= 0.0 {
        let e = format!("hyperliquid: order {id} ({}) is {} with nothing filled", ack.cloid, ack.status);
        // An IOC order is final at once: one that rests is unexpected but may still fill.
        return Err(if ack.is_open() { ExchangeError::Retry(e) } else { ExchangeError::Refused(e) });
    }
    Ok(Executed { quantity: ack.filled, price: ack.avg_px, time: ack.time })
}

pub(crate) async fn place_protective(c: &HyperliquidClient, symbol: &str, p: &Protective) -> Result<(), ExchangeError> {
    let tpsl = match p.kind {
        ProtectiveKind::StopLoss => Tpsl::StopLoss,
        ProtectiveKind::TakeProfit => Tpsl::TakeProfit,
        ProtectiveKind::TrailingStop => {
            return Err(ExchangeError::Refused(format!(
                "hyperliquid: {} is a trailing stop, and Hyperliquid has no trailing stop orders",
                p.id
            )));
        }
    };
    let order = NewOrder {
        coin: c.config().coin(symbol),
        is_buy: p.side == Side::Buy,
        size: p.quantity,
        kind: OrderKind::Trigger { trigger_px: p.level, tpsl },
        reduce_only: true,
        id: p.id.clone(),
    };
    c.place_order(&order).await.map(|_| ()).map_err(classify)
}

pub(crate) async fn standings(
    c: &HyperliquidClient,
    symbol: &str,
    placed: &[&Protective],
) -> Result<Vec<Standing>, ExchangeError> {
    let open = c.open_orders().await.map_err(classify)?;
    let mut out = Vec::with_capacity(placed.len());
    for p in placed {
        let sent = cloid(&p.id);
        if open.iter().any(|o| o.cloid.as_deref() == Some(sent.as_str())) {
            out.push(Standing::Resting);
        } else {
            out.push(standing(c, symbol, p).await?);
        }
    }
    Ok(out)
}

pub(crate) async fn standing(c: &HyperliquidClient, _symbol: &str, p: &Protective) -> Result<Standing, ExchangeError> {
    let Some(info) = c.order_status(&p.id).await.map_err(classify)? else { return Ok(Standing::Gone) };
    match info.status.as_str() {
        "open" => Ok(Standing::Resting),
        "triggered" | "filled" => {
            let status = info.status.clone();
            let ack = c.ack_of(info).await.map_err(classify)?;
            if ack.filled > 0.0 {
                Ok(Standing::Filled(Executed { quantity: ack.filled, price: ack.avg_px, time: ack.time }))
            } else if status == "filled" {
                // Filled, its fills beyond the latest 2000: booked at the mark.
                Ok(Standing::Filled(Executed { quantity: p.quantity, price: None, time: ack.time }))
            } else {
                Err(ExchangeError::Retry(format!(
                    "hyperliquid: protective order {} triggered; its fill is not visible yet",
                    p.id
                )))
            }
        }
        _ => Ok(Standing::Gone),
    }
}

pub(crate) async fn cancel(c: &HyperliquidClient, symbol: &str, p: &Protective) -> Result<bool, ExchangeError> {
    c.cancel_by_cloid(&c.config().coin(symbol), &p.id).await.map_err(classify)
}
