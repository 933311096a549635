//! `GET /market/price/{symbol}` with exchange sources configured (`[edge.prices]`): Binance's
//! ticker first, then Hyperliquid's mid, then the latest candle, each answer saying its
//! source. Both exchanges are local fakes following their documentation of 2026-12-06
//! (Binance "Symbol Price Ticker": `{"symbol", "price", "time"}`, an unknown symbol `400
//! {"code": -1121, "msg": "Invalid symbol."}`; Hyperliquid "Retrieve mids for all coins":
//! `POST /info {"type": "allMids"}` → `{"ETH": "…"}`).

mod edge_common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use edge_common::{Edge, Options};
use serde_json::{Value, json};

#[derive(Default)]
struct Fakes {
    /// Binance symbol → price.
    binance: BTreeMap<String, String>,
    /// Hyperliquid coin → mid.
    mids: BTreeMap<String, String>,
    binance_calls: u32,
}

type Shared = Arc<Mutex<Fakes>>;

async fn ticker(State(f): State<Shared>, Query(q): Query<BTreeMap<String, String>>) -> (StatusCode, Json<Value>) {
    let mut f = f.lock().unwrap();
    f.binance_calls += 1;
    let symbol = q.get("symbol").cloned().unwrap_or_default();
    match f.binance.get(&symbol) {
        Some(p) => (StatusCode::OK, Json(json!({"symbol": symbol, "price": p, "time": 1_765_000_000_000i64}))),
        None => (StatusCode::BAD_REQUEST, Json(json!({"code": -1121, "msg": "Invalid symbol."}))),
    }
}

async fn info(State(f): State<Shared>, Json(q): Json<Value>) -> Json<Value> {
    assert_eq!(q["type"], "allMids");
    Json(json!(f.lock().unwrap().mids))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_then_other_exchange_then_last_candle() {
    let fakes: Shared = Arc::new(Mutex::new(Fakes {
        binance: BTreeMap::from([("BTCUSD".into(), "97000.10".into()), ("SOLUSD".into(), "150.5".into())]),
        mids: BTreeMap::from([("ETH".into(), "3100.25".into())]),
        binance_calls: 0,
    }));
    let app = axum::Router::new()
        .route("/fapi/v1/ticker/price", axum::routing::get(ticker))
        .route("/info", axum::routing::post(info))
        .with_state(fakes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let extra = format!("[edge.prices]\nbinance_url = \"{url}\"\nhyperliquid_url = \"{url}\"\ncache_ms = 0\n");
    let edge = Edge::start_with(Options { extra_config: extra, ..Options::default() }).await;
    let v = edge.viewer.clone();
    let last_close = |x: &Value| x["candle"]["close"].as_f64();

    // Binance has it.
    let p = edge.get("/api/v1/market/price/BTCUSD", Some(&v)).await.expect(200);
    assert_eq!(
        (p["source"].as_str(), p["price"].as_f64(), p["as_of"].as_i64()),
        (Some("binance"), Some(97000.1), Some(1_765_000_000_000))
    );
    assert_eq!(p["skipped"], json!([]));
    assert!(last_close(&p).is_some(), "the tracked symbol's candle comes along: {p}");

    // Binance does not list it: Hyperliquid's ETH mid, saying why Binance was skipped.
    let p = edge.get("/api/v1/market/price/ethusd", Some(&v)).await.expect(200);
    assert_eq!(
        (p["symbol"].as_str(), p["source"].as_str(), p["price"].as_f64()),
        (Some("ETHUSD"), Some("hyperliquid"), Some(3100.25))
    );
    assert_eq!(p["skipped"], json!([{"source": "binance", "reason": "HTTP 400: Invalid symbol."}]));

    // Neither has it any more: the latest candle.
    fakes.lock().unwrap().mids.clear();
    let p = edge.get("/api/v1/market/price/ETHUSD", Some(&v)).await.expect(200);
    assert_eq!(p["source"], "candle", "{p}");
    assert_eq!(p["price"].as_f64(), last_close(&p));
    assert_eq!(p["skipped"].as_array().map(Vec::len), Some(2));
    assert_eq!(p["skipped"][1], json!({"source": "hyperliquid", "reason": "no mid for coin \"ETH\""}));

    // Not tracked: an exchange's price without a candle, or 404 when none has it.
    let p = edge.get("/api/v1/market/price/SOLUSD", Some(&v)).await.expect(200);
    assert_eq!((p["source"].as_str(), p["price"].as_f64(), &p["candle"]), (Some("binance"), Some(150.5), &Value::Null));
    edge.get("/api/v1/market/price/DOGEUSD", Some(&v)).await.expect_error(404, "not_found");
    // A malformed symbol is refused before any exchange is asked.
    let calls = fakes.lock().unwrap().binance_calls;
    edge.get("/api/v1/market/price/BTC%20USD", Some(&v)).await.expect_error(400, "invalid_symbol");
    assert_eq!(fakes.lock().unwrap().binance_calls, calls);
}
