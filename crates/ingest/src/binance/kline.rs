//! The two kline wire formats, read field by field: a row of `GET /api/v3/klines` and a
//! `<symbol>@kline_<interval>` event of a combined WebSocket stream. Prices and volumes arrive
//! as decimal strings and are parsed with `str::parse::<f64>()` (correctly rounded); every
//! error names the field and quotes the value.

use serde_json::Value;
use tradeflow_core::market::RawBar;

/// One kline as Binance sent it, numbers parsed but not yet validated as a bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kline {
    pub raw: RawBar,
    /// Last millisecond of the bar (`open time + interval − 1`).
    pub close_time: i64,
}

/// Why a kline could not be read. `open_time` is set when at least the open time was readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct KlineError {
    pub open_time: Option<i64>,
    pub problem: String,
}

/// The fields of a REST kline row, by index.
pub const REST_FIELDS: [&str; 12] = [
    "open time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close time",
    "quote volume",
    "trade count",
    "taker buy base volume",
    "taker buy quote volume",
    "ignore",
];

/// Fields 0..=6 are the ones a bar needs; a row with more than 12 is accepted (Binance may add
/// fields), one with fewer than 7 is not.
const REST_NEEDED: usize = 7;

/// Reads one row of a klines response: `[open time, "open", "high", "low", "close", "volume",
/// close time, ...]`.
pub fn parse_rest_row(row: &Value) -> Result<Kline, KlineError> {
    let Value::Array(fields) = row else {
        return Err(KlineError { open_time: None, problem: format!("row is not an array: {}", show(row)) });
    };
    if fields.len() < REST_NEEDED {
        return Err(KlineError {
            open_time: integer(&rest_label(0), &fields.first().cloned().unwrap_or(Value::Null)).ok(),
            problem: format!("row has {} fields, a kline has 12: {}", fields.len(), show(row)),
        });
    }
    let open_time = integer(&rest_label(0), &fields[0]).map_err(|problem| KlineError { open_time: None, problem })?;
    let at = |problem| KlineError { open_time: Some(open_time), problem };
    let decimal_at = |i: usize| decimal(&rest_label(i), &fields[i]).map_err(at);
    let raw = RawBar {
        open_time,
        open: decimal_at(1)?,
        high: decimal_at(2)?,
        low: decimal_at(3)?,
        close: decimal_at(4)?,
        volume: decimal_at(5)?,
    };
    let close_time = integer(&rest_label(6), &fields[6]).map_err(at)?;
    Ok(Kline { raw, close_time })
}

fn rest_label(i: usize) -> String {
    format!("field {i} ({})", REST_FIELDS[i])
}

/// What one text frame of a combined stream carries.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    /// A kline update of a candle still open (`k.x` false): not a bar yet.
    Open { stream: String },
    /// A closed kline (`k.x` true), or a kline event that could not be read.
    Closed {
        stream: String,
        /// `data.s` and `k.i` as sent (empty when missing), to check against the stream.
        symbol: String,
        interval: String,
        kline: Result<Kline, KlineError>,
    },
    /// Anything else: a reply to a request, another event type.
    Other(String),
}

/// Reads one text frame of `/stream?streams=...`:
/// `{"stream":"btcusdt@kline_1m","data":{"e":"kline","s":"BTCUSDT","k":{"t":..,"T":..,"i":"1m",
/// "o":"..","c":"..","h":"..","l":"..","v":"..","x":true,..}}}`. Err when the frame is not JSON.
pub fn parse_ws_message(text: &str) -> Result<WsMessage, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("frame is not JSON ({e}): {}", clip(text)))?;
    let Some(stream) = value.get("stream").and_then(Value::as_str) else {
        return Ok(WsMessage::Other(clip(text)));
    };
    let stream = stream.to_string();
    let data = value.get("data").unwrap_or(&Value::Null);
    if data.get("e").and_then(Value::as_str) != Some("kline") {
        return Ok(WsMessage::Other(clip(text)));
    }
    let symbol = data.get("s").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(k) = data.get("k").filter(|k| k.is_object()) else {
        let kline = Err(KlineError { open_time: None, problem: format!("data.k is not an object: {}", clip(text)) });
        return Ok(WsMessage::Closed { stream, symbol, interval: String::new(), kline });
    };
    let interval = k.get("i").and_then(Value::as_str).unwrap_or_default().to_string();
    let field = |name: &str| k.get(name).unwrap_or(&Value::Null);
    let open_time = integer("k.t (open time)", field("t")).map_err(|problem| KlineError { open_time: None, problem });
    match field("x") {
        Value::Bool(false) => return Ok(WsMessage::Open { stream }),
        Value::Bool(true) => {}
        other => {
            let kline = Err(KlineError {
                open_time: open_time.ok(),
                problem: format!("k.x (closed): expected true or false, got {}", show(other)),
            });
            return Ok(WsMessage::Closed { stream, symbol, interval, kline });
        }
    }
    let kline = open_time.and_then(|open_time| {
        let at = |problem| KlineError { open_time: Some(open_time), problem };
        let raw = RawBar {
            open_time,
            open: decimal("k.o (open)", field("o")).map_err(at)?,
            high: decimal("k.h (high)", field("h")).map_err(at)?,
            low: decimal("k.l (low)", field("l")).map_err(at)?,
            close: decimal("k.c (close)", field("c")).map_err(at)?,
            volume: decimal("k.v (volume)", field("v")).map_err(at)?,
        };
        let close_time = integer("k.T (close time)", field("T")).map_err(at)?;
        Ok(Kline { raw, close_time })
    });
    Ok(WsMessage::Closed { stream, symbol, interval, kline })
}

/// A decimal string, e.g. `"42000.01000000"`.
fn decimal(label: &str, v: &Value) -> Result<f64, String> {
    match v {
        Value::String(s) => s.parse::<f64>().map_err(|_| format!("{label}: {s:?} is not a number")),
        Value::Null => Err(format!("{label}: missing")),
        other => Err(format!("{label}: expected a decimal string, got {}", show(other))),
    }
}

/// Epoch milliseconds as a JSON integer.
fn integer(label: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{label}: expected integer milliseconds, got {n}")),
        Value::Null => Err(format!("{label}: missing")),
        other => Err(format!("{label}: expected integer milliseconds, got {}", show(other))),
    }
}

fn show(v: &Value) -> String {
    clip(&v.to_string())
}

/// At most 120 characters of `s`, for error messages.
pub(crate) fn clip(s: &str) -> String {
    tradeflow_net::http::clip(s, 120)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: i64 = 1_699_999_200_000;

    fn row(high: Value) -> Value {
        json!([T, "42000.01", high, "41999.5", "42000.10000000", "12.345", T + 59_999, "1", 7, "0", "0", "0"])
    }

    #[test]
    fn a_rest_row_parses_exactly() {
        let k = parse_rest_row(&row(json!("42010.99"))).unwrap();
        assert_eq!(k.close_time, T + 59_999);
        assert_eq!(
            k.raw,
            RawBar { open_time: T, open: 42000.01, high: 42010.99, low: 41999.5, close: 42000.1, volume: 12.345 }
        );
    }

    #[test]
    fn rest_errors_name_the_field_and_value() {
        let e = parse_rest_row(&row(json!("abc"))).unwrap_err();
        assert_eq!(e.open_time, Some(T));
        assert_eq!(e.to_string(), r#"field 2 (high): "abc" is not a number"#);
        let e = parse_rest_row(&row(json!(42010.99))).unwrap_err();
        assert_eq!(e.to_string(), "field 2 (high): expected a decimal string, got 42010.99");
        let e = parse_rest_row(&json!(["x", "1", "1", "1", "1", "1", 2])).unwrap_err();
        assert_eq!(
            (e.open_time, e.to_string()),
            (None, r#"field 0 (open time): expected integer milliseconds, got "x""#.into())
        );
        let e = parse_rest_row(&json!([T, "1", "1"])).unwrap_err();
        assert_eq!(e.open_time, Some(T));
        assert!(e.to_string().starts_with("row has 3 fields, a kline has 12"), "{e}");
        let e = parse_rest_row(&json!({"t": 1})).unwrap_err();
        assert_eq!(e.to_string(), r#"row is not an array: {"t":1}"#);
        let e = parse_rest_row(&json!([T, "1", "1", "1", "1", "1", "soon"])).unwrap_err();
        assert_eq!(e.to_string(), r#"field 6 (close time): expected integer milliseconds, got "soon""#);
    }

    fn event(x: Value, high: &str) -> String {
        json!({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": T + 60_000, "s": "BTCUSDT", "k": {
            "t": T, "T": T + 59_999, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 2,
            "o": "1.5", "c": "1.75", "h": high, "l": "1.25", "v": "1000", "n": 2, "x": x,
            "q": "0", "V": "0", "Q": "0", "B": "0"}}})
        .to_string()
    }

    #[test]
    fn ws_events_are_open_closed_or_other() {
        assert_eq!(
            parse_ws_message(&event(json!(false), "2")).unwrap(),
            WsMessage::Open { stream: "btcusdt@kline_1m".into() }
        );
        let WsMessage::Closed { stream, symbol, interval, kline } = parse_ws_message(&event(json!(true), "2")).unwrap()
        else {
            panic!("not closed")
        };
        assert_eq!((stream.as_str(), symbol.as_str(), interval.as_str()), ("btcusdt@kline_1m", "BTCUSDT", "1m"));
        assert_eq!(
            kline.unwrap(),
            Kline {
                raw: RawBar { open_time: T, open: 1.5, high: 2.0, low: 1.25, close: 1.75, volume: 1000.0 },
                close_time: T + 59_999
            }
        );
        let WsMessage::Closed { kline, .. } = parse_ws_message(&event(json!(true), "2,5")).unwrap() else {
            panic!("not closed")
        };
        assert_eq!(kline.unwrap_err().to_string(), r#"k.h (high): "2,5" is not a number"#);
        let WsMessage::Closed { kline, .. } = parse_ws_message(&event(json!("yes"), "2")).unwrap() else {
            panic!("not closed")
        };
        assert_eq!(kline.unwrap_err().to_string(), r#"k.x (closed): expected true or false, got "yes""#);
        assert!(matches!(parse_ws_message(r#"{"result":null,"id":1}"#).unwrap(), WsMessage::Other(_)));
        assert!(parse_ws_message("{oops").unwrap_err().starts_with("frame is not JSON"));
    }
}
