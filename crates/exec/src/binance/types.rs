//! Orders going to Binance and the acknowledgements coming back.
//!
//! Binance sends decimal numbers as JSON strings (`"executedQty": "0.100"`) and ids and times as
//! JSON numbers; the readers here accept either for every number, name the field of anything
//! they cannot read, and never panic on what Binance sends.

use std::fmt;

use serde_json::Value;

use super::error::{FuturesError, clip};

/// BUY or SELL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderSide {
    Buy,
    Sell,
}

impl OrderSide {
    /// `BUY` / `SELL`, as Binance spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "BUY",
            Self::Sell => "SELL",
        }
    }
}

impl fmt::Display for OrderSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order types this client places through `POST /fapi/v1/order`. Conditional types
/// (stops, take profits, trailing stops) go through the Algo Order API instead: see
/// [`super::NewAlgoOrder`]; Binance refuses them here with -4120 since 2025-12-09.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// Fills at once against the book.
    Market,
    /// Rests at `price`, good till cancelled (`timeInForce=GTC`).
    Limit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "MARKET",
            Self::Limit => "LIMIT",
        }
    }
}

impl fmt::Display for OrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A symbol's margin mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarginType {
    Isolated,
    Crossed,
}

impl MarginType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Isolated => "ISOLATED",
            Self::Crossed => "CROSSED",
        }
    }
}

impl fmt::Display for MarginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order to place (one-way position mode: no `positionSide`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// Upper case is sent (`btcusdt` goes out as `BTCUSDT`).
    pub symbol: String,
    pub side: OrderSide,
    pub order_type: OrderType,
    /// In base-asset units, already rounded to the symbol's stepSize (it is sent as Rust prints
    /// the `f64`: the shortest decimal that reads back as the same number, never an exponent).
    pub quantity: f64,
    /// LIMIT orders only (required there), rounded to the symbol's tickSize.
    pub price: Option<f64>,
    /// Sent as `reduceOnly=true` when set; omitted otherwise.
    pub reduce_only: bool,
    /// The caller's id of this order; sent as `newClientOrderId` through
    /// [`super::client_order_id`]. Re-placing with the same id never makes a second order.
    pub client_order_id: String,
}

impl NewOrder {
    pub fn market(symbol: &str, side: OrderSide, quantity: f64, client_order_id: &str) -> Self {
        Self {
            symbol: symbol.to_string(),
            side,
            order_type: OrderType::Market,
            quantity,
            price: None,
            reduce_only: false,
            client_order_id: client_order_id.to_string(),
        }
    }

    pub fn limit(symbol: &str, side: OrderSide, quantity: f64, price: f64, client_order_id: &str) -> Self {
        Self {
            order_type: OrderType::Limit,
            price: Some(price),
            ..Self::market(symbol, side, quantity, client_order_id)
        }
    }

    /// The same order, reduce-only.
    pub fn reduce_only(self) -> Self {
        Self { reduce_only: true, ..self }
    }

    /// The parameters of `POST /fapi/v1/order` (without recvWindow, timestamp and signature),
    /// after checking what can be checked locally: symbol, positive finite quantity, a positive
    /// price exactly for LIMIT orders.
    pub(crate) fn params(&self, client_order_id: &str) -> Result<Vec<(&'static str, String)>, FuturesError> {
        let symbol = normalize_symbol(&self.symbol)?;
        if !(self.quantity.is_finite() && self.quantity > 0.0) {
            return Err(FuturesError::InvalidRequest(format!("quantity: {} is not a positive number", self.quantity)));
        }
        let mut params = vec![
            ("symbol", symbol),
            ("side", self.side.as_str().to_string()),
            ("type", self.order_type.as_str().to_string()),
            ("quantity", decimal(self.quantity)),
        ];
        match (self.order_type, self.price) {
            (OrderType::Limit, Some(price)) if price.is_finite() && price > 0.0 => {
                params.push(("price", decimal(price)));
                params.push(("timeInForce", "GTC".to_string()));
            }
            (OrderType::Limit, Some(price)) => {
                return Err(FuturesError::InvalidRequest(format!("price: {price} is not a positive number")));
            }
            (OrderType::Limit, None) => {
                return Err(FuturesError::InvalidRequest("price: a LIMIT order needs one".into()));
            }
            (OrderType::Market, None) => {}
            (_, Some(_)) => {
                return Err(FuturesError::InvalidRequest(format!(
                    "price: only LIMIT orders take one, this is {}",
                    self.order_type
                )));
            }
        }
        if self.reduce_only {
            params.push(("reduceOnly", "true".to_string()));
        }
        params.push(("newClientOrderId", client_order_id.to_string()));
        params.push(("newOrderRespType", "RESULT".to_string()));
        Ok(params)
    }
}

/// `symbol` trimmed and upper case, if it looks like a Binance symbol (1–20 letters and digits).
pub(crate) fn normalize_symbol(symbol: &str) -> Result<String, FuturesError> {
    let s = symbol.trim().to_ascii_uppercase();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FuturesError::InvalidRequest(format!(
            "symbol: {:?} is not a Binance symbol (1–20 letters and digits)",
            clip(symbol)
        )));
    }
    Ok(s)
}

/// `x` as a plain decimal (Rust's `Display` for `f64`: shortest round-trip, no exponent).
pub(crate) fn decimal(x: f64) -> String {
    format!("{x}")
}

/// An order's state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
    /// A status this client does not know (e.g. `EXPIRED_IN_MATCH`), as Binance sent it.
    Other(String),
}

impl OrderStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "NEW" => Self::New,
            "PARTIALLY_FILLED" => Self::PartiallyFilled,
            "FILLED" => Self::Filled,
            "CANCELED" => Self::Canceled,
            "REJECTED" => Self::Rejected,
            "EXPIRED" => Self::Expired,
            other => Self::Other(other.to_string()),
        }
    }

    /// Whether the order can still trade.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::New | Self::PartiallyFilled)
    }
}

/// What Binance says about an order (`POST` and `GET /fapi/v1/order`).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderAck {
    pub order_id: i64,
    /// As Binance knows it (see [`super::client_order_id`]).
    pub client_order_id: String,
    pub symbol: String,
    pub status: OrderStatus,
    pub side: OrderSide,
    pub executed_qty: f64,
    /// `None` when Binance left `avgPrice` out; an unfilled order has `Some(0.0)` (Binance's "0").
    pub avg_price: Option<f64>,
    /// Filled quote quantity; `None` when Binance left `cumQuote` out.
    pub cum_quote: Option<f64>,
    /// Binance's time of the last change, ms since the epoch.
    pub update_time: i64,
}

impl OrderAck {
    /// Reads an order object; a missing or malformed field is a [`FuturesError::Decode`] naming it.
    pub fn from_json(v: &Value) -> Result<Self, FuturesError> {
        if !v.is_object() {
            return Err(decode("body", format!("not a JSON object: {}", clip(&v.to_string()))));
        }
        let side = side_field(v, "side")?;
        Ok(Self {
            order_id: int_field(v, "orderId")?,
            client_order_id: str_field(v, "clientOrderId")?.to_string(),
            symbol: str_field(v, "symbol")?.to_string(),
            status: OrderStatus::parse(str_field(v, "status")?),
            side,
            executed_qty: num_field(v, "executedQty")?,
            avg_price: opt_num_field(v, "avgPrice")?,
            cum_quote: opt_num_field(v, "cumQuote")?,
            update_time: int_field(v, "updateTime")?,
        })
    }
}

pub(crate) fn decode(field: &str, reason: String) -> FuturesError {
    FuturesError::Decode { field: field.to_string(), reason }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, FuturesError> {
    match v.get(name) {
        Some(Value::Null) | None => Err(decode(name, "missing".into())),
        Some(x) => Ok(x),
    }
}

pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, FuturesError> {
    let x = field(v, name)?;
    x.as_str().ok_or_else(|| decode(name, format!("not a string: {}", clip(&x.to_string()))))
}

/// `BUY` or `SELL`.
pub(crate) fn side_field(v: &Value, name: &str) -> Result<OrderSide, FuturesError> {
    match str_field(v, name)? {
        "BUY" => Ok(OrderSide::Buy),
        "SELL" => Ok(OrderSide::Sell),
        other => Err(decode(name, format!("{:?} is neither BUY nor SELL", clip(other)))),
    }
}

/// An integer sent as a JSON number or a string of digits.
pub(crate) fn int_field(v: &Value, name: &str) -> Result<i64, FuturesError> {
    let x = field(v, name)?;
    match x {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| decode(name, format!("not an integer: {}", clip(&x.to_string()))))
}

/// A finite decimal sent as a string (`"0.100"`) or a JSON number.
pub(crate) fn num_field(v: &Value, name: &str) -> Result<f64, FuturesError> {
    let x = field(v, name)?;
    match x {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
    .ok_or_else(|| decode(name, format!("not a decimal number: {}", clip(&x.to_string()))))
}

/// Like [`num_field`], `None` when the field is absent or null.
pub(crate) fn opt_num_field(v: &Value, name: &str) -> Result<Option<f64>, FuturesError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => num_field(v, name).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ack_json() -> Value {
        json!({
            "orderId": 22542179, "clientOrderId": "c-1", "symbol": "BTCUSDT", "status": "FILLED",
            "side": "SELL", "executedQty": "0.100", "avgPrice": "50000.10", "cumQuote": "5000.010",
            "updateTime": 1566818724722_i64, "origQty": "0.100", "type": "MARKET"
        })
    }

    #[test]
    fn reads_an_ack() {
        let ack = OrderAck::from_json(&ack_json()).unwrap();
        assert_eq!(
            ack,
            OrderAck {
                order_id: 22542179,
                client_order_id: "c-1".into(),
                symbol: "BTCUSDT".into(),
                status: OrderStatus::Filled,
                side: OrderSide::Sell,
                executed_qty: 0.1,
                avg_price: Some(50000.1),
                cum_quote: Some(5000.01),
                update_time: 1566818724722,
            }
        );
    }

    #[test]
    fn avg_price_and_cum_quote_may_be_absent() {
        let mut v = ack_json();
        let o = v.as_object_mut().unwrap();
        o.remove("avgPrice");
        o.remove("cumQuote");
        o.insert("status".into(), json!("EXPIRED_IN_MATCH"));
        let ack = OrderAck::from_json(&v).unwrap();
        assert_eq!((ack.avg_price, ack.cum_quote), (None, None));
        assert_eq!(ack.status, OrderStatus::Other("EXPIRED_IN_MATCH".into()));
    }

    #[test]
    fn a_bad_field_is_named() {
        for (name, value, reason) in [
            ("executedQty", json!("lots"), "not a decimal number"),
            ("avgPrice", json!("NaN"), "not a decimal number"),
            ("orderId", json!(1.5), "not an integer"),
            ("side", json!("LONG"), "neither BUY nor SELL"),
            ("updateTime", Value::Null, "missing"),
            ("symbol", json!(7), "not a string"),
        ] {
            let mut v = ack_json();
            v.as_object_mut().unwrap().insert(name.into(), value);
            let e = OrderAck::from_json(&v).unwrap_err();
            let FuturesError::Decode { field, reason: r } = &e else { panic!("{e:?}") };
            assert_eq!(field, name);
            assert!(r.contains(reason), "{name}: {r}");
            assert!(e.to_string().contains(&format!("`{name}`")), "{e}");
        }
    }

    #[test]
    fn order_params() {
        let o = NewOrder::limit(" btcusdt ", OrderSide::Buy, 0.001, 50000.5, "x").reduce_only();
        let p = o.params("cid").unwrap();
        let text: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            text.join("&"),
            "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.001&price=50000.5&timeInForce=GTC&reduceOnly=true\
             &newClientOrderId=cid&newOrderRespType=RESULT"
        );
        let m = NewOrder::market("ETHUSDT", OrderSide::Sell, 2.0, "x").params("cid").unwrap();
        assert_eq!(m[3], ("quantity", "2".to_string()));
        assert!(!m.iter().any(|(k, _)| *k == "price" || *k == "reduceOnly" || *k == "timeInForce"));

        let bad = [
            NewOrder::market("BTCUSDT", OrderSide::Buy, 0.0, "x"),
            NewOrder::market("BTCUSDT", OrderSide::Buy, f64::NAN, "x"),
            NewOrder::market("BTC/USDT", OrderSide::Buy, 1.0, "x"),
            NewOrder { price: None, ..NewOrder::limit("BTCUSDT", OrderSide::Buy, 1.0, 1.0, "x") },
            NewOrder::limit("BTCUSDT", OrderSide::Buy, 1.0, -1.0, "x"),
            NewOrder { price: Some(1.0), ..NewOrder::market("BTCUSDT", OrderSide::Buy, 1.0, "x") },
        ];
        for o in bad {
            assert!(matches!(o.params("c"), Err(FuturesError::InvalidRequest(_))), "{o:?}");
        }
    }
}
