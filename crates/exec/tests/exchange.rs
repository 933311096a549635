//! Exchange accounts through the execution desk against a local fake of Binance USDⓈ-M
//! futures: the fill is booked at the exchange's average price, a redelivered intent places
//! no second order, marks ask nothing of the exchange, and a refusal says why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tradeflow_core::execution::{ExecEvent, FillReason};
use tradeflow_core::order::{BarMark, Direction, Intent, Mark, OrderIntent, OrderType, RiskMessage, Side};
use tradeflow_exec::binance::{Credentials, FuturesClient, FuturesConfig};
use tradeflow_exec::exchange::{DeskState, ExchangeAccount, ExchangeDesk, ExchangeError};

#[derive(Default)]
struct Fake {
    /// clientOrderId → quantity.
    orders: BTreeMap<String, String>,
    posts: usize,
    requests: usize,
    /// Answer every order with this Binance error.
    refuse: Option<(i64, &'static str)>,
}

async fn handle(State(fake): State<Arc<Mutex<Fake>>>, method: Method, uri: Uri, RawQuery(q): RawQuery) -> Response {
    let params: BTreeMap<String, String> =
        form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect();
    let mut f = fake.lock().unwrap();
    f.requests += 1;
    let symbol = params.get("symbol").cloned().unwrap_or_default();
    match (method, uri.path()) {
        (Method::POST, "/fapi/v1/leverage") => {
            let body = serde_json::json!({"leverage": params["leverage"].parse::<i64>().unwrap(), "maxNotionalValue": "1000000", "symbol": symbol});
            axum::Json(body).into_response()
        }
        (Method::POST, "/fapi/v1/order") => {
            f.posts += 1;
            if let Some((code, msg)) = f.refuse {
                return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": code, "msg": msg})))
                    .into_response();
            }
            let id = params["newClientOrderId"].clone();
            let qty = params["quantity"].clone();
            f.orders.insert(id.clone(), qty.clone());
            axum::Json(serde_json::json!({
                "orderId": 7, "clientOrderId": id, "symbol": symbol, "status": "FILLED", "side": params["side"],
                "executedQty": qty, "avgPrice": "101.50", "updateTime": 1
            }))
            .into_response()
        }
        (Method::GET, "/fapi/v1/order") => {
            let id = params["origClientOrderId"].clone();
            match f.orders.get(&id) {
                Some(qty) => axum::Json(serde_json::json!({
                    "orderId": 7, "clientOrderId": id, "symbol": symbol, "status": "FILLED", "side": "BUY",
                    "executedQty": qty, "avgPrice": "101.50", "updateTime": 1
                }))
                .into_response(),
                None => (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"code": -2013, "msg": "Order does not exist."})),
                )
                    .into_response(),
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn fake() -> (String, Arc<Mutex<Fake>>) {
    let state = Arc::new(Mutex::new(Fake::default()));
    let app = axum::Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn desk(url: &str) -> ExchangeDesk {
    let config = FuturesConfig {
        base_url: Some(url.into()),
        timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(10),
        ..FuturesConfig::default()
    };
    let client = FuturesClient::with_credentials(&config, Credentials::new("key", "secret")).unwrap();
    let account =
        ExchangeAccount { id: "live".into(), starting_balance: 1_000.0, leverage: 2, taker_fee: 0.0004, client };
    ExchangeDesk::new(vec![account], DeskState::default())
}

fn bar() -> BarMark {
    BarMark { symbol: "BTCUSDT".into(), open_time: 0, close_time: 3_600_000, high: 102.0, low: 99.0, close: 100.0 }
}

fn order(seq: u64, intent: Intent) -> RiskMessage {
    let direction = Direction::Long;
    RiskMessage::Order(OrderIntent {
        id: format!("csv:BTCUSDT:1h:{seq}/p/live"),
        decision_id: format!("csv:BTCUSDT:1h:{seq}/p"),
        account: "live".into(),
        seq,
        bar: bar(),
        intent,
        direction,
        side: if intent == Intent::Open { Side::Buy } else { Side::Sell },
        order_type: OrderType::Market,
        limit_price: None,
        quantity: 2.0,
        leverage: 2.0,
        stop_loss: Some(95.0),
        take_profit: None,
        trailing_stop_pct: None,
        reason: "test".into(),
    })
}

#[tokio::test]
async fn fills_at_the_exchange_price_once() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    let out = desk.on_message(&order(1, Intent::Open)).await.unwrap();
    let fills: Vec<_> =
        out.events.iter().filter_map(|e| if let ExecEvent::Fill(f) = e { Some(f) } else { None }).collect();
    assert_eq!(fills.len(), 1);
    assert_eq!((fills[0].price, fills[0].quantity, fills[0].reason), (101.5, 2.0, FillReason::Entry));
    assert!((fills[0].fee - 2.0 * 101.5 * 0.0004).abs() < 1e-12);
    assert!(out.events.iter().any(|e| matches!(e, ExecEvent::Account(_))));
    // Redelivered: nothing placed again.
    let again = desk.on_message(&order(1, Intent::Open)).await.unwrap();
    assert!(again.duplicate && again.events.is_empty());
    // A mark asks nothing of the exchange.
    let requests = state.lock().unwrap().requests;
    let mark =
        RiskMessage::Mark(Mark { id: "m".into(), decision_id: "d".into(), account: "live".into(), seq: 2, bar: bar() });
    assert!(desk.on_message(&mark).await.unwrap().events.is_empty());
    assert_eq!(state.lock().unwrap().requests, requests);
    // The close is reduce-only and realises (101.5 − 101.5) × 2 = 0 before fees.
    let out = desk.on_message(&order(3, Intent::Close)).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, ExecEvent::Fill(f) if f.reason == FillReason::Exit && f.realized_pnl == 0.0))
    );
    let f = state.lock().unwrap();
    assert_eq!((f.posts, f.orders.len()), (2, 2), "one order per intent");
    // One leverage call (set once per symbol) + two orders.
    assert_eq!(f.requests, 3);
    let book = desk.book("live").unwrap();
    assert!((book.balance() - (1_000.0 - 2.0 * 2.0 * 101.5 * 0.0004)).abs() < 1e-9);
}

#[tokio::test]
async fn a_refusal_names_the_binance_reason_and_is_not_retried() {
    let (url, state) = fake().await;
    state.lock().unwrap().refuse = Some((-2019, "Margin is insufficient."));
    let mut desk = desk(&url);
    match desk.on_message(&order(1, Intent::Open)).await {
        Err(ExchangeError::Refused(e)) => assert!(e.to_lowercase().contains("margin"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(state.lock().unwrap().posts, 1);
}
