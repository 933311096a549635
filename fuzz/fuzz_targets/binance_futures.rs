//! Binance USDⓈ-M futures answers, as the executor reads them: any bytes as a JSON body read as
//! an order ([`OrderAck::from_json`]), an algo order ([`AlgoOrderAck::from_json`]), the open
//! positions of `positionRisk` ([`open_positions_of`]) and, for any status, an error body
//! ([`FuturesError::from_response`]).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_exec::binance::account::open_positions_of;
use tradeflow_exec::binance::{AlgoOrderAck, FuturesError, OrderAck};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for status in [400, 401, 418, 429, 500, 503] {
        let e = FuturesError::from_response(status, text, None);
        let _ = (e.to_string(), e.code(), e.outcome_unknown());
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(text) else { return };
    if let Ok(ack) = OrderAck::from_json(&body) {
        let _ = ack.status.is_open();
    }
    if let Ok(ack) = AlgoOrderAck::from_json(&body) {
        let _ = (ack.status.is_waiting(), ack.status.has_fired());
    }
    let _ = open_positions_of(&body);
    // A list of orders, as `openOrders` and the algo listings answer.
    if let Some(items) = body.as_array() {
        for item in items {
            let _ = OrderAck::from_json(item);
            let _ = AlgoOrderAck::from_json(item);
        }
    }
});
