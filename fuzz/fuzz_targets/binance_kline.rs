//! Binance spot klines: any bytes of a `GET /api/v3/klines` body read as the REST client reads
//! it (a JSON array, each row by [`parse_rest_row`]) and as a text frame of the combined
//! WebSocket stream ([`parse_ws_message`]); each kline read is validated as a bar, as the
//! ingest stage does before it becomes a candle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_ingest::binance::{WsMessage, parse_rest_row, parse_ws_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = serde_json::from_slice::<Vec<serde_json::Value>>(data) {
        for row in &rows {
            if let Ok(k) = parse_rest_row(row) {
                let _ = k.raw.validate();
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(WsMessage::Closed { kline: Ok(k), .. }) = parse_ws_message(text) {
        let _ = k.raw.validate();
    }
});
