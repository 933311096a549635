//! Conditional orders through Binance's Algo Order API (USDⓈ-M futures).
//!
//! Since 2025-12-09 Binance refuses `STOP_MARKET`, `TAKE_PROFIT_MARKET`, `STOP`, `TAKE_PROFIT`
//! and `TRAILING_STOP_MARKET` on `POST /fapi/v1/order` with -4120 ("Order type not supported for
//! this endpoint. Please use the Algo Order API endpoints instead."): they live in its Algo
//! Service. Followed: Binance's derivatives change log (entry of 2025-11-06, effective
//! 2025-12-09; 2025-12-10: rejections reported in `ALGO_UPDATE`; 2026-10-23: `callbackRate` up
//! to 20) and the USDⓈ-M pages "New Algo Order", "Cancel Algo Order", "Query Algo Order",
//! "Current All Algo Open Orders" and "Event: Algo Order Update", as read on 2026-12-06.
//!
//! | request | endpoint | parameters sent |
//! | --- | --- | --- |
//! | place | `POST /fapi/v1/algoOrder` | `algoType=CONDITIONAL`, `symbol`, `side`, `type`, `quantity`, `triggerPrice` (stops, take profits) or `callbackRate` (trailing), `workingType=MARK_PRICE`, `reduceOnly=true`, `clientAlgoId` |
//! | look up | `GET /fapi/v1/algoOrder` | `clientAlgoId` (the endpoint takes `algoId` or `clientAlgoId`, no symbol) |
//! | cancel | `DELETE /fapi/v1/algoOrder` | `clientAlgoId` |
//! | list open | `GET /fapi/v1/openAlgoOrders` | `algoType=CONDITIONAL`, `symbol` |
//!
//! An algo order is `NEW` while it waits in the Algo Service; once the mark price crosses its
//! trigger it goes `TRIGGERING` (forwarded to the matching engine), `TRIGGERED` (an ordinary
//! order exists: `actualOrderId`), then `FINISHED` when that order is filled or cancelled;
//! `CANCELED`, `EXPIRED` and `REJECTED` end it without one. Its fill is the ordinary order's:
//! read it with [`FuturesClient::query_order_by_id`].
//!
//! `clientAlgoId` follows the rule of `newClientOrderId` (1–36 characters of
//! `[.A-Z:/a-z0-9_-]`), so it is derived from the caller's id by [`client_order_id`], and like
//! it is unique among *open* orders only: a re-POST after the first one fired would place a
//! second. Placement is therefore check-first exactly like plain orders (see
//! [`super::FuturesClient`]): after an unknown outcome the order is looked up by its
//! `clientAlgoId` (-2013 when Binance has none) before it is posted again, and a duplicate
//! refusal fetches the existing one. The docs name no error code for a duplicate
//! `clientAlgoId`; Binance's code for a duplicate client id is -4116, which is what is handled
//! (and -2010 "Duplicate order").

use std::fmt;

use reqwest::Method;
use serde_json::Value;

use super::client::{FuturesClient, UNKNOWN_ORDER};
use super::error::{FuturesError, clip};
use super::sign::client_order_id;
use super::types::{OrderSide, decimal, decode, int_field, normalize_symbol, num_field, side_field, str_field};

const ALGO_ORDER: &str = "/fapi/v1/algoOrder";
const OPEN_ALGO_ORDERS: &str = "/fapi/v1/openAlgoOrders";

/// Smallest and largest `callbackRate` (percent) Binance takes on a trailing stop (the largest
/// was 10 until the change log entry of 2026-10-23).
pub const CALLBACK_RATE_RANGE: (f64, f64) = (0.1, 20.0);

/// The conditional types this client places (all market orders once triggered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgoOrderType {
    /// A stop loss: a MARKET order once the mark price crosses `triggerPrice`.
    StopMarket,
    /// A take profit: a MARKET order once the mark price crosses `triggerPrice` the other way.
    TakeProfitMarket,
    /// A MARKET order once the mark price retraces `callbackRate` % from its best since placing.
    TrailingStopMarket,
}

impl AlgoOrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StopMarket => "STOP_MARKET",
            Self::TakeProfitMarket => "TAKE_PROFIT_MARKET",
            Self::TrailingStopMarket => "TRAILING_STOP_MARKET",
        }
    }
}

impl fmt::Display for AlgoOrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reduce-only conditional order to place (one-way position mode: no `positionSide`),
/// triggered on the mark price.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlgoOrder {
    /// Upper case is sent.
    pub symbol: String,
    pub side: OrderSide,
    pub order_type: AlgoOrderType,
    /// In base-asset units, already rounded to the symbol's stepSize.
    pub quantity: f64,
    /// STOP_MARKET and TAKE_PROFIT_MARKET: the trigger (`triggerPrice`).
    pub trigger_price: Option<f64>,
    /// TRAILING_STOP_MARKET: the retracement that triggers it, in percent (1 = 1 %), within
    /// [`CALLBACK_RATE_RANGE`], sent to one decimal.
    pub callback_rate: Option<f64>,
    /// The caller's id; sent as `clientAlgoId` through [`client_order_id`].
    pub client_algo_id: String,
}

impl NewAlgoOrder {
    /// A reduce-only STOP_MARKET of `quantity`, triggered when the mark price crosses `stop`.
    pub fn stop_market(symbol: &str, side: OrderSide, quantity: f64, stop: f64, id: &str) -> Self {
        Self::new(symbol, side, AlgoOrderType::StopMarket, quantity, Some(stop), None, id)
    }

    /// A reduce-only TAKE_PROFIT_MARKET of `quantity`, triggered when the mark price crosses
    /// `target`.
    pub fn take_profit_market(symbol: &str, side: OrderSide, quantity: f64, target: f64, id: &str) -> Self {
        Self::new(symbol, side, AlgoOrderType::TakeProfitMarket, quantity, Some(target), None, id)
    }

    /// A reduce-only TRAILING_STOP_MARKET of `quantity` with a callback of `rate_pct` percent.
    pub fn trailing_stop_market(symbol: &str, side: OrderSide, quantity: f64, rate_pct: f64, id: &str) -> Self {
        Self::new(symbol, side, AlgoOrderType::TrailingStopMarket, quantity, None, Some(rate_pct), id)
    }

    fn new(
        symbol: &str,
        side: OrderSide,
        order_type: AlgoOrderType,
        quantity: f64,
        trigger_price: Option<f64>,
        callback_rate: Option<f64>,
        id: &str,
    ) -> Self {
        Self {
            symbol: symbol.to_string(),
            side,
            order_type,
            quantity,
            trigger_price,
            callback_rate,
            client_algo_id: id.to_string(),
        }
    }

    /// The parameters of `POST /fapi/v1/algoOrder` (without recvWindow, timestamp and
    /// signature), after checking what can be checked locally.
    pub(crate) fn params(&self, client_algo_id: &str) -> Result<Vec<(&'static str, String)>, FuturesError> {
        let symbol = normalize_symbol(&self.symbol)?;
        if !(self.quantity.is_finite() && self.quantity > 0.0) {
            return Err(FuturesError::InvalidRequest(format!("quantity: {} is not a positive number", self.quantity)));
        }
        let mut params = vec![
            ("algoType", "CONDITIONAL".to_string()),
            ("symbol", symbol),
            ("side", self.side.as_str().to_string()),
            ("type", self.order_type.as_str().to_string()),
            ("quantity", decimal(self.quantity)),
        ];
        let trailing = self.order_type == AlgoOrderType::TrailingStopMarket;
        match (trailing, self.trigger_price, self.callback_rate) {
            (false, Some(trigger), None) if trigger.is_finite() && trigger > 0.0 => {
                params.push(("triggerPrice", decimal(trigger)));
            }
            (false, Some(trigger), None) => {
                return Err(FuturesError::InvalidRequest(format!("triggerPrice: {trigger} is not a positive number")));
            }
            (true, None, Some(rate)) if (CALLBACK_RATE_RANGE.0..=CALLBACK_RATE_RANGE.1).contains(&rate) => {
                params.push(("callbackRate", decimal((rate * 10.0).round() / 10.0)));
            }
            (true, None, Some(rate)) => {
                return Err(FuturesError::InvalidRequest(format!(
                    "callbackRate: {rate} % is outside what Binance takes ({} to {})",
                    CALLBACK_RATE_RANGE.0, CALLBACK_RATE_RANGE.1
                )));
            }
            (false, _, _) => {
                return Err(FuturesError::InvalidRequest(format!(
                    "a {} order takes a triggerPrice and no callbackRate",
                    self.order_type
                )));
            }
            (true, _, _) => {
                return Err(FuturesError::InvalidRequest(
                    "a TRAILING_STOP_MARKET order takes a callbackRate and no triggerPrice".into(),
                ));
            }
        }
        params.push(("workingType", "MARK_PRICE".to_string()));
        params.push(("reduceOnly", "true".to_string()));
        params.push(("clientAlgoId", client_algo_id.to_string()));
        Ok(params)
    }
}

/// Where an algo order is in its life (`algoStatus`, `X` in `ALGO_UPDATE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AlgoStatus {
    /// Waiting in the Algo Service for its trigger.
    New,
    /// Triggered, being forwarded to the matching engine (no ordinary order yet).
    Triggering,
    /// The ordinary order (`actualOrderId`) is in the matching engine.
    Triggered,
    /// The ordinary order was filled or cancelled in the matching engine.
    Finished,
    Canceled,
    /// Cancelled by the system.
    Expired,
    /// Refused by the matching engine when triggered (e.g. a margin check).
    Rejected,
    /// A status this client does not know, as Binance sent it.
    Other(String),
}

impl AlgoStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "NEW" => Self::New,
            "TRIGGERING" => Self::Triggering,
            "TRIGGERED" => Self::Triggered,
            "FINISHED" => Self::Finished,
            "CANCELED" => Self::Canceled,
            "EXPIRED" => Self::Expired,
            "REJECTED" => Self::Rejected,
            other => Self::Other(other.to_string()),
        }
    }

    /// Still waiting for its trigger.
    pub fn is_waiting(&self) -> bool {
        matches!(self, Self::New)
    }

    /// Its trigger fired: an ordinary order exists or is being made.
    pub fn has_fired(&self) -> bool {
        matches!(self, Self::Triggering | Self::Triggered | Self::Finished)
    }
}

/// What Binance says about an algo order (`POST`, `GET /fapi/v1/algoOrder`, `openAlgoOrders`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlgoOrderAck {
    pub algo_id: i64,
    /// As Binance knows it (see [`client_order_id`]).
    pub client_algo_id: String,
    pub symbol: String,
    pub side: OrderSide,
    /// `STOP_MARKET`, `TAKE_PROFIT_MARKET`, … as Binance sent it.
    pub order_type: String,
    pub status: AlgoStatus,
    /// `None` when absent or 0.
    pub quantity: Option<f64>,
    /// The ordinary order a triggered algo order became; `None` before (Binance sends "").
    pub actual_order_id: Option<i64>,
    /// ms since the epoch; 0 when absent.
    pub update_time: i64,
}

impl AlgoOrderAck {
    /// Reads an algo order object; a missing or malformed field is a [`FuturesError::Decode`].
    pub fn from_json(v: &Value) -> Result<Self, FuturesError> {
        if !v.is_object() {
            return Err(decode("body", format!("not a JSON object: {}", clip(&v.to_string()))));
        }
        let actual_order_id = match v.get("actualOrderId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(_) => Some(int_field(v, "actualOrderId")?).filter(|id| *id > 0),
        };
        let quantity = match v.get("quantity") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(_) => Some(num_field(v, "quantity")?).filter(|q| *q > 0.0),
        };
        let update_time = match v.get("updateTime") {
            None | Some(Value::Null) => 0,
            Some(_) => int_field(v, "updateTime")?,
        };
        Ok(Self {
            algo_id: int_field(v, "algoId")?,
            client_algo_id: str_field(v, "clientAlgoId")?.to_string(),
            symbol: str_field(v, "symbol")?.to_string(),
            side: side_field(v, "side")?,
            order_type: str_field(v, "orderType")?.to_string(),
            status: AlgoStatus::parse(str_field(v, "algoStatus")?),
            quantity,
            actual_order_id,
            update_time,
        })
    }
}

impl FuturesClient {
    /// `POST /fapi/v1/algoOrder`, idempotent by `clientAlgoId` like
    /// [`FuturesClient::place_order`]: whatever fails and is retried within this call, at most
    /// one algo order with that id is placed.
    pub async fn place_algo_order(&self, order: &NewAlgoOrder) -> Result<AlgoOrderAck, FuturesError> {
        self.place_algo(order, false).await
    }

    /// Like [`FuturesClient::place_algo_order`] after an earlier call whose outcome is unknown
    /// (it ended with a timeout, say): looks the order up by its `clientAlgoId` first and posts
    /// it only if Binance has none. Binance keeps `clientAlgoId` unique among open orders only,
    /// so a blind re-POST after the first one fired would place a second.
    pub async fn resume_algo_order(&self, order: &NewAlgoOrder) -> Result<AlgoOrderAck, FuturesError> {
        self.place_algo(order, true).await
    }

    async fn place_algo(&self, order: &NewAlgoOrder, look_first: bool) -> Result<AlgoOrderAck, FuturesError> {
        let id = client_order_id(&order.client_algo_id);
        let params = order.params(&id)?;
        let lookup = algo_id_params(&id);
        let body = self.place_idempotent(ALGO_ORDER, &params, ALGO_ORDER, &lookup, &id, look_first).await?;
        AlgoOrderAck::from_json(&body)
    }

    /// `GET /fapi/v1/algoOrder` by `clientAlgoId` (the caller's id or the one sent). An unknown
    /// one (never placed, or cancelled unfilled more than 3 days ago, or older than 90 days) is
    /// [`FuturesError::OrderNotFound`].
    pub async fn query_algo_order(&self, client_algo_id: &str) -> Result<AlgoOrderAck, FuturesError> {
        let body = self.call(Method::GET, ALGO_ORDER, &algo_id_params(&client_order_id(client_algo_id))).await?;
        AlgoOrderAck::from_json(&body)
    }

    /// `DELETE /fapi/v1/algoOrder` by `clientAlgoId`; `Ok(Some(algoId))` when it was cancelled,
    /// `Ok(None)` when Binance has no open algo order with that id (-2011 "Unknown order sent."
    /// or -2013): it fired, was cancelled or was never placed; query it to know which.
    pub async fn cancel_algo_order(&self, client_algo_id: &str) -> Result<Option<i64>, FuturesError> {
        let params = algo_id_params(&client_order_id(client_algo_id));
        match self.call(Method::DELETE, ALGO_ORDER, &params).await {
            Ok(body) => Ok(Some(int_field(&body, "algoId")?)),
            Err(FuturesError::OrderNotFound { .. }) | Err(FuturesError::Api { code: UNKNOWN_ORDER, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /fapi/v1/openAlgoOrders` for `symbol` (weight 1): its conditional orders still open.
    pub async fn open_algo_orders(&self, symbol: &str) -> Result<Vec<AlgoOrderAck>, FuturesError> {
        let params = [("algoType", "CONDITIONAL".to_string()), ("symbol", normalize_symbol(symbol)?)];
        let body = self.call(Method::GET, OPEN_ALGO_ORDERS, &params).await?;
        let Value::Array(items) = &body else {
            return Err(decode("body", format!("not a JSON array: {}", clip(&body.to_string()))));
        };
        items.iter().map(AlgoOrderAck::from_json).collect()
    }
}

fn algo_id_params(id: &str) -> [(&'static str, String); 1] {
    [("clientAlgoId", id.to_string())]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(o: &NewAlgoOrder) -> String {
        o.params("cid").unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }

    #[test]
    fn request_shapes() {
        assert_eq!(
            text(&NewAlgoOrder::stop_market("btcusdt", OrderSide::Sell, 0.002, 48000.5, "x")),
            "algoType=CONDITIONAL&symbol=BTCUSDT&side=SELL&type=STOP_MARKET&quantity=0.002&triggerPrice=48000.5\
             &workingType=MARK_PRICE&reduceOnly=true&clientAlgoId=cid"
        );
        assert_eq!(
            text(&NewAlgoOrder::take_profit_market("BTCUSDT", OrderSide::Buy, 1.0, 40000.0, "x")),
            "algoType=CONDITIONAL&symbol=BTCUSDT&side=BUY&type=TAKE_PROFIT_MARKET&quantity=1&triggerPrice=40000\
             &workingType=MARK_PRICE&reduceOnly=true&clientAlgoId=cid"
        );
        assert_eq!(
            text(&NewAlgoOrder::trailing_stop_market("BTCUSDT", OrderSide::Sell, 1.0, 12.04, "x")),
            "algoType=CONDITIONAL&symbol=BTCUSDT&side=SELL&type=TRAILING_STOP_MARKET&quantity=1&callbackRate=12\
             &workingType=MARK_PRICE&reduceOnly=true&clientAlgoId=cid"
        );
        let bad = [
            NewAlgoOrder::stop_market("BTCUSDT", OrderSide::Sell, 1.0, 0.0, "x"),
            NewAlgoOrder::stop_market("BTCUSDT", OrderSide::Sell, 0.0, 1.0, "x"),
            NewAlgoOrder::take_profit_market("BTCUSDT", OrderSide::Sell, 1.0, f64::INFINITY, "x"),
            NewAlgoOrder::trailing_stop_market("BTCUSDT", OrderSide::Sell, 1.0, 0.05, "x"),
            NewAlgoOrder::trailing_stop_market("BTCUSDT", OrderSide::Sell, 1.0, 20.5, "x"),
            NewAlgoOrder {
                trigger_price: None,
                ..NewAlgoOrder::stop_market("BTCUSDT", OrderSide::Sell, 1.0, 1.0, "x")
            },
            NewAlgoOrder {
                callback_rate: Some(1.0),
                ..NewAlgoOrder::stop_market("BTCUSDT", OrderSide::Sell, 1.0, 1.0, "x")
            },
            NewAlgoOrder {
                trigger_price: Some(1.0),
                ..NewAlgoOrder::trailing_stop_market("BTCUSDT", OrderSide::Sell, 1.0, 1.0, "x")
            },
            NewAlgoOrder::stop_market("BTC/USDT", OrderSide::Sell, 1.0, 1.0, "x"),
        ];
        for o in bad {
            assert!(matches!(o.params("c"), Err(FuturesError::InvalidRequest(_))), "{o:?}");
        }
    }

    /// The shape of Binance's "Query Algo Order" example.
    fn query_json() -> Value {
        json!({
            "algoId": 2146760, "clientAlgoId": "6B2I9XVcJpCjqPAJ4YoFX7", "algoType": "CONDITIONAL",
            "orderType": "TAKE_PROFIT", "symbol": "BNBUSDT", "side": "SELL", "positionSide": "BOTH",
            "timeInForce": "GTC", "quantity": "0.01", "algoStatus": "CANCELED", "actualOrderId": "",
            "actualPrice": "0.00000", "triggerPrice": "750.000", "price": "750.000", "workingType": "CONTRACT_PRICE",
            "closePosition": false, "priceProtect": false, "reduceOnly": false, "createTime": 1750485492076_i64,
            "updateTime": 1750514545091_i64, "triggerTime": 0, "goodTillDate": 0
        })
    }

    #[test]
    fn reads_an_algo_order() {
        let a = AlgoOrderAck::from_json(&query_json()).unwrap();
        assert_eq!(
            a,
            AlgoOrderAck {
                algo_id: 2146760,
                client_algo_id: "6B2I9XVcJpCjqPAJ4YoFX7".into(),
                symbol: "BNBUSDT".into(),
                side: OrderSide::Sell,
                order_type: "TAKE_PROFIT".into(),
                status: AlgoStatus::Canceled,
                quantity: Some(0.01),
                actual_order_id: None,
                update_time: 1750514545091,
            }
        );
        let mut v = query_json();
        v["algoStatus"] = json!("FINISHED");
        v["actualOrderId"] = json!("8886774");
        let a = AlgoOrderAck::from_json(&v).unwrap();
        assert_eq!((a.status.has_fired(), a.actual_order_id), (true, Some(8886774)));
        v["actualOrderId"] = json!("soon");
        let e = AlgoOrderAck::from_json(&v).unwrap_err();
        assert!(matches!(&e, FuturesError::Decode { field, .. } if field == "actualOrderId"), "{e:?}");
        // The answer to a POST has no actualOrderId.
        let mut v = query_json();
        v.as_object_mut().unwrap().remove("actualOrderId");
        v["algoStatus"] = json!("NEW");
        let a = AlgoOrderAck::from_json(&v).unwrap();
        assert!(a.status.is_waiting() && a.actual_order_id.is_none());
        assert_eq!(AlgoStatus::parse("SOMETHING"), AlgoStatus::Other("SOMETHING".into()));
    }
}
