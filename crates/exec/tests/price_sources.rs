//! The exchange price chain (Binance ticker, then Hyperliquid mids) against local fakes of
//! both, and its cache.
//!
//! The fakes follow Binance's "Symbol Price Ticker" (`GET /fapi/v1/ticker/price?symbol=`:
//! `{"symbol", "price", "time"}`, an unknown symbol `400 {"code": -1121, "msg": "Invalid
//! symbol."}`) and Hyperliquid's "Retrieve mids for all coins" (`POST /info {"type":
//! "allMids"}`: `{"BTC": "…"}`), as documented on 2026-12-06.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tradeflow_exec::price::{PriceSource, PriceSources, PriceSourcesConfig};

#[derive(Default)]
struct Counts {
    binance: AtomicU32,
    hyperliquid: AtomicU32,
}

async fn ticker(State(c): State<Arc<Counts>>, Query(q): Query<BTreeMap<String, String>>) -> (StatusCode, Json<Value>) {
    c.binance.fetch_add(1, Ordering::SeqCst);
    match q.get("symbol").map(String::as_str) {
        Some("BTCUSDT") => {
            (StatusCode::OK, Json(json!({"symbol": "BTCUSDT", "price": "97000.10", "time": 1_765_000_000_000i64})))
        }
        _ => (StatusCode::BAD_REQUEST, Json(json!({"code": -1121, "msg": "Invalid symbol."}))),
    }
}

async fn info(State(c): State<Arc<Counts>>, Json(q): Json<Value>) -> Json<Value> {
    c.hyperliquid.fetch_add(1, Ordering::SeqCst);
    assert_eq!(q, json!({"type": "allMids"}));
    Json(json!({"BTC": "96999.5", "ETH": "3100.25", "kPEPE": "0.0123"}))
}

async fn fakes() -> (String, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let app = axum::Router::new()
        .route("/fapi/v1/ticker/price", axum::routing::get(ticker))
        .route("/info", axum::routing::post(info))
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, counts)
}

fn sources(binance: Option<&str>, hyperliquid: Option<&str>, cache_ms: u64) -> PriceSources {
    PriceSources::new(PriceSourcesConfig {
        binance_url: binance.map(str::to_string),
        hyperliquid_url: hyperliquid.map(str::to_string),
        hyperliquid_coins: BTreeMap::from([("PEPEUSDT".to_string(), "kPEPE".to_string())]),
        cache_ms,
        ..PriceSourcesConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn binance_first_then_hyperliquid_and_every_miss_says_why() {
    let (url, counts) = fakes().await;
    let s = sources(Some(&url), Some(&url), 60_000);
    let q = s.price("BTCUSDT").await.unwrap();
    assert_eq!((q.price, q.source, q.time, q.cached), (97000.1, PriceSource::Binance, 1_765_000_000_000, false));
    // Binance does not list ETHUSD: Hyperliquid's ETH mid.
    let q = s.price("ETHUSD").await.unwrap();
    assert_eq!((q.price, q.source), (3100.25, PriceSource::Hyperliquid));
    assert_eq!(s.price("PEPEUSDT").await.unwrap().price, 0.0123);
    let misses = s.price("DOGEUSDT").await.unwrap_err();
    assert_eq!(misses.len(), 2);
    assert_eq!((misses[0].source, misses[0].reason.as_str()), (PriceSource::Binance, "HTTP 400: Invalid symbol."));
    assert_eq!((misses[1].source, misses[1].reason.as_str()), (PriceSource::Hyperliquid, "no mid for coin \"DOGE\""));
    assert_eq!((counts.binance.load(Ordering::SeqCst), counts.hyperliquid.load(Ordering::SeqCst)), (4, 3));
}

#[tokio::test]
async fn outcomes_are_reused_within_the_cache_period() {
    let (url, counts) = fakes().await;
    let s = sources(Some(&url), Some(&url), 60_000);
    assert!(!s.price("BTCUSDT").await.unwrap().cached);
    let again = s.price("BTCUSDT").await.unwrap();
    assert!(again.cached && again.source == PriceSource::Binance);
    // A miss is cached too: a source that does not know the symbol is not asked again.
    assert!(s.price("DOGEUSDT").await.is_err());
    assert!(s.price("DOGEUSDT").await.is_err());
    assert_eq!((counts.binance.load(Ordering::SeqCst), counts.hyperliquid.load(Ordering::SeqCst)), (2, 1));
    // Without a cache period every request asks.
    let uncached = sources(Some(&url), None, 0);
    uncached.price("BTCUSDT").await.unwrap();
    uncached.price("BTCUSDT").await.unwrap();
    assert_eq!(counts.binance.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_source_that_is_down_falls_through() {
    let (url, _) = fakes().await;
    // Nothing listens on a port just released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = sources(Some(&closed), Some(&url), 0);
    let q = s.price("BTCUSDT").await.unwrap();
    assert_eq!((q.price, q.source), (96999.5, PriceSource::Hyperliquid));
    let s = sources(Some(&closed), None, 0);
    let misses = s.price("BTCUSDT").await.unwrap_err();
    assert_eq!(misses.len(), 1);
    assert!(!misses[0].reason.contains(&closed), "no URL in the reason: {}", misses[0].reason);
}
