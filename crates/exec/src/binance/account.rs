//! What the account holds on Binance, read for reconciliation: the wallet balance
//! (`GET /fapi/v2/account`), the open positions (`GET /fapi/v2/positionRisk`) and the open
//! orders (`GET /fapi/v1/openOrders`). Shapes as Binance documents them for USDⓈ-M futures
//! ("Account Information V2", "Position Information V2", "Current All Open Orders"; read on
//! 2026-12-06): decimals come as strings, `positionAmt` is signed (negative: short) and every
//! symbol is listed, flat ones with `positionAmt` `"0"`.

use reqwest::Method;
use serde_json::Value;

use super::FuturesClient;
use super::error::FuturesError;
use super::error::clip;
use super::types::{decode, num_field, str_field};

const ACCOUNT: &str = "/fapi/v2/account";
const POSITION_RISK: &str = "/fapi/v2/positionRisk";
const OPEN_ORDERS: &str = "/fapi/v1/openOrders";

/// One symbol's position as `positionRisk` reports it (one-way mode: `positionSide` `BOTH`).
#[derive(Debug, Clone, PartialEq)]
pub struct PositionRisk {
    pub symbol: String,
    /// Signed base quantity: > 0 long, < 0 short.
    pub amount: f64,
    pub entry_price: f64,
    pub mark_price: f64,
    pub leverage: f64,
}

impl PositionRisk {
    fn from_json(v: &Value) -> Result<Self, FuturesError> {
        Ok(Self {
            symbol: str_field(v, "symbol")?.to_string(),
            amount: num_field(v, "positionAmt")?,
            entry_price: num_field(v, "entryPrice")?,
            mark_price: num_field(v, "markPrice")?,
            leverage: num_field(v, "leverage")?,
        })
    }
}

/// The open positions of a `positionRisk` body (flat symbols left out). Separate from
/// [`FuturesClient::open_positions`] so that the fuzz target `binance_futures` can feed it.
pub fn open_positions_of(body: &Value) -> Result<Vec<PositionRisk>, FuturesError> {
    let mut out = Vec::new();
    for item in array(body, "positionRisk")? {
        let p = PositionRisk::from_json(item)?;
        if p.amount != 0.0 {
            out.push(p);
        }
    }
    Ok(out)
}

fn array<'a>(body: &'a Value, what: &str) -> Result<&'a Vec<Value>, FuturesError> {
    body.as_array().ok_or_else(|| decode(what, format!("not a JSON array: {}", clip(&body.to_string()))))
}

impl FuturesClient {
    /// `GET /fapi/v2/account`'s `totalWalletBalance` (USDT: deposits, realised PnL, fees and
    /// funding; no unrealised PnL).
    pub async fn wallet_balance(&self) -> Result<f64, FuturesError> {
        let body = self.call(Method::GET, ACCOUNT, &[]).await?;
        num_field(&body, "totalWalletBalance")
    }

    /// `GET /fapi/v2/positionRisk`: the positions that are open (the flat symbols Binance lists
    /// too are left out).
    pub async fn open_positions(&self) -> Result<Vec<PositionRisk>, FuturesError> {
        let body = self.call(Method::GET, POSITION_RISK, &[]).await?;
        open_positions_of(&body)
    }

    /// `GET /fapi/v1/openOrders` for every symbol (weight 40): how many plain orders are open.
    /// Conditional orders are the Algo Order API's and are not among them.
    pub async fn open_order_count(&self) -> Result<u32, FuturesError> {
        let body = self.call(Method::GET, OPEN_ORDERS, &[]).await?;
        Ok(array(&body, "openOrders")?.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn positions_read_as_binance_writes_them() {
        let v = json!({"symbol": "BTCUSDT", "positionAmt": "-0.250", "entryPrice": "97000.1", "breakEvenPrice": "0.0",
            "markPrice": "96500.00000000", "unRealizedProfit": "125.0", "liquidationPrice": "0", "leverage": "5",
            "maxNotionalValue": "1000000", "marginType": "cross", "isolatedMargin": "0.00000000", "isAutoAddMargin": "false",
            "positionSide": "BOTH", "notional": "-24125.0", "isolatedWallet": "0", "updateTime": 1765000000000i64});
        let p = PositionRisk::from_json(&v).unwrap();
        assert_eq!(
            (p.symbol.as_str(), p.amount, p.entry_price, p.mark_price, p.leverage),
            ("BTCUSDT", -0.25, 97000.1, 96500.0, 5.0)
        );
        let bad =
            json!({"symbol": "BTCUSDT", "positionAmt": "lots", "entryPrice": "1", "markPrice": "1", "leverage": "5"});
        assert_eq!(
            PositionRisk::from_json(&bad).unwrap_err(),
            FuturesError::Decode { field: "positionAmt".into(), reason: "not a decimal number: \"lots\"".into() }
        );
    }
}
