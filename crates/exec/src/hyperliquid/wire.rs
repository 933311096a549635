//! What goes to and comes from `/exchange` and `/info`.
//!
//! The actions are structs whose fields are declared in the order the official SDK writes its
//! dictionaries: the signature covers their msgpack encoding (a map, keys in declaration order),
//! so one field out of place signs something Hyperliquid does not recompute. Numbers travel as
//! decimal strings ([`float_to_wire`]). Shapes follow Hyperliquid's API documentation
//! ("Exchange endpoint", "Info endpoint") and the SDK, read 2026-12-06.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::HyperliquidError;

/// An L1 action, `type` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// `{"type": "order", "orders": [...], "grouping": "na"}`.
    Order { orders: Vec<OrderWire>, grouping: String },
    /// `{"type": "cancel", "cancels": [{"a": asset, "o": oid}]}`.
    Cancel { cancels: Vec<CancelWire> },
    /// `{"type": "cancelByCloid", "cancels": [{"asset": asset, "cloid": "0x…"}]}`.
    CancelByCloid { cancels: Vec<CancelByCloidWire> },
    /// `{"type": "updateLeverage", "asset": asset, "isCross": bool, "leverage": n}`.
    #[serde(rename_all = "camelCase")]
    UpdateLeverage { asset: u32, is_cross: bool, leverage: u32 },
}

impl Action {
    /// One order, not grouped.
    pub fn order(order: OrderWire) -> Self {
        Self::Order { orders: vec![order], grouping: "na".into() }
    }
}

/// One order: asset, is buy, limit price, size, reduce only, type, client order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderWire {
    pub a: u32,
    pub b: bool,
    pub p: String,
    pub s: String,
    pub r: bool,
    pub t: OrderTypeWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<String>,
}

/// `{"limit": {"tif": …}}` or `{"trigger": {"isMarket", "triggerPx", "tpsl"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderTypeWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerWire>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitWire {
    /// `Gtc`, `Ioc` or `Alo`.
    pub tif: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerWire {
    pub is_market: bool,
    pub trigger_px: String,
    /// `sl` or `tp`.
    pub tpsl: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelWire {
    pub a: u32,
    pub o: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelByCloidWire {
    pub asset: u32,
    pub cloid: String,
}

/// The body of `POST /exchange`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeRequest {
    pub action: Action,
    pub nonce: u64,
    pub signature: super::signing::Signature,
    #[serde(default)]
    pub vault_address: Option<String>,
    #[serde(default)]
    pub expires_after: Option<u64>,
}

/// A number as Hyperliquid takes it: rounded to 8 decimals, no trailing zeros, no exponent
/// (`100`, `0.0147`, `1670.1`); refused when that rounding changes it by 1e-12 or more (the
/// caller must round to the asset's tick and lot first), or when it is not finite.
pub fn float_to_wire(x: f64) -> Result<String, HyperliquidError> {
    if !x.is_finite() {
        return Err(HyperliquidError::InvalidRequest(format!("{x} is not a finite number")));
    }
    let rounded = format!("{x:.8}");
    let back: f64 = rounded.parse().unwrap_or(f64::NAN);
    if (back - x).abs() >= 1e-12 {
        return Err(HyperliquidError::InvalidRequest(format!("{x} has more than 8 decimals")));
    }
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    Ok(match trimmed {
        "-0" | "" => "0".to_string(),
        t => t.to_string(),
    })
}

/// A perpetual's price as Hyperliquid accepts it: at most 5 significant figures and at most
/// `6 − szDecimals` decimals (integers are always accepted).
pub fn round_price(px: f64, sz_decimals: u32) -> f64 {
    if !(px.is_finite() && px > 0.0) {
        return px;
    }
    if px >= 100_000.0 {
        return px.round();
    }
    let significant: f64 = format!("{px:.4e}").parse().unwrap_or(px);
    let decimals = 6i32.saturating_sub(sz_decimals as i32).max(0);
    let scale = 10f64.powi(decimals);
    (significant * scale).round() / scale
}

/// A size rounded to `sz_decimals` decimals (the asset's lot).
pub fn round_size(sz: f64, sz_decimals: u32) -> f64 {
    let scale = 10f64.powi(sz_decimals as i32);
    (sz * scale).round() / scale
}

/// One perpetual of `/info` `meta`: its index in `universe` is its asset number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetMeta {
    pub name: String,
    pub sz_decimals: u32,
    #[serde(default)]
    pub max_leverage: Option<u32>,
    #[serde(default)]
    pub is_delisted: Option<bool>,
}

/// `/info` `meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub universe: Vec<AssetMeta>,
}

/// `/info` `allMids`: `{"BTC": "97000.5", ...}`, each mid a decimal string.
pub fn parse_all_mids(body: &serde_json::Value) -> Result<BTreeMap<String, f64>, HyperliquidError> {
    let map = body.as_object().ok_or_else(|| HyperliquidError::decode("allMids", "not an object"))?;
    map.iter()
        .map(|(coin, px)| {
            let x = px.as_str().and_then(|t| t.parse::<f64>().ok()).filter(|x| x.is_finite());
            x.map(|x| (coin.clone(), x)).ok_or_else(|| {
                HyperliquidError::decode(&format!("allMids.{coin}"), format!("{px} is not a decimal string"))
            })
        })
        .collect()
}

/// The order inside an `orderStatus` or `frontendOpenOrders` answer (the fields used here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    pub coin: String,
    /// `B` (bid, buy) or `A` (ask, sell).
    pub side: String,
    pub limit_px: String,
    /// Size still open.
    pub sz: String,
    pub oid: u64,
    pub timestamp: i64,
    #[serde(default)]
    pub orig_sz: Option<String>,
    #[serde(default)]
    pub is_trigger: bool,
    #[serde(default)]
    pub trigger_px: Option<String>,
    #[serde(default)]
    pub reduce_only: bool,
    #[serde(default)]
    pub order_type: Option<String>,
    #[serde(default)]
    pub cloid: Option<String>,
}

/// `{"order": {...}, "status": "open" | "filled" | "canceled" | "triggered" | "rejected" | …,
/// "statusTimestamp": ms}` of an `orderStatus` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatusInfo {
    pub order: OrderInfo,
    pub status: String,
    pub status_timestamp: i64,
}

/// One fill of `/info` `userFills` (the fields used here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFill {
    pub coin: String,
    pub px: String,
    pub sz: String,
    pub side: String,
    pub time: i64,
    pub oid: u64,
    #[serde(default)]
    pub fee: Option<String>,
    #[serde(default)]
    pub tid: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_on_the_wire_are_the_sdks() {
        for (x, text) in
            [(100.0, "100"), (0.0147, "0.0147"), (1670.1, "1670.1"), (-0.0, "0"), (0.0, "0"), (1e-8, "0.00000001")]
        {
            assert_eq!(float_to_wire(x).unwrap(), text, "{x}");
        }
        assert!(float_to_wire(0.000012312312).is_err());
        assert!(float_to_wire(f64::NAN).is_err());
    }

    #[test]
    fn prices_have_five_significant_figures_and_the_assets_decimals() {
        assert_eq!(round_price(1670.123, 4), 1670.1);
        assert_eq!(round_price(0.123456, 0), 0.12346);
        assert_eq!(round_price(97_123.4, 5), 97_123.0);
        assert_eq!(round_price(123_456.7, 5), 123_457.0);
        assert_eq!(round_price(1.23456, 5), 1.2);
        assert_eq!(round_size(0.123456, 3), 0.123);
    }

    #[test]
    fn actions_are_tagged_with_their_type_first() {
        let a = Action::UpdateLeverage { asset: 1, is_cross: true, leverage: 5 };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"type":"updateLeverage","asset":1,"isCross":true,"leverage":5}"#);
        let back: Action = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
}
