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

#[derive(Debug, Clone)]
struct FakeOrder {
    qty: String,
    kind: String,
    side: String,
    status: &'static str,
    reduce_only: bool,
    stop_price: Option<String>,
    callback_rate: Option<String>,
    avg_price: &'static str,
}

#[derive(Default)]
struct Fake {
    /// clientOrderId → the order.
    orders: BTreeMap<String, FakeOrder>,
    posts: usize,
    deletes: usize,
    requests: usize,
    /// Answer every order with this Binance error.
    refuse: Option<(i64, &'static str)>,
    /// Refuse protective (non-MARKET) orders with this Binance error.
    refuse_protective: Option<(i64, &'static str)>,
    /// Answer protective orders with 503 (nothing placed).
    protective_503: bool,
}

impl Fake {
    /// The exchange fires a resting order: it fills at `avg_price`.
    fn fire(&mut self, cid: &str, avg_price: &'static str) {
        let o = self.orders.get_mut(cid).expect("a resting order");
        assert_eq!(o.status, "NEW");
        o.status = "FILLED";
        o.avg_price = avg_price;
    }

    fn resting(&self) -> Vec<(String, FakeOrder)> {
        self.orders.iter().filter(|(_, o)| o.status == "NEW").map(|(k, o)| (k.clone(), o.clone())).collect()
    }
}

fn order_json(id: &str, symbol: &str, o: &FakeOrder) -> serde_json::Value {
    let filled = o.status == "FILLED";
    serde_json::json!({
        "orderId": 7, "clientOrderId": id, "symbol": symbol, "status": o.status, "side": o.side, "type": o.kind,
        "executedQty": if filled { o.qty.as_str() } else { "0" }, "avgPrice": if filled { o.avg_price } else { "0" },
        "updateTime": 5
    })
}

fn binance_error(code: i64, msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": code, "msg": msg}))).into_response()
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
            let kind = params["type"].clone();
            if let Some((code, msg)) = f.refuse {
                return binance_error(code, msg);
            }
            if kind != "MARKET"
                && let Some((code, msg)) = f.refuse_protective
            {
                return binance_error(code, msg);
            }
            if kind != "MARKET" && f.protective_503 {
                return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable.").into_response();
            }
            let id = params["newClientOrderId"].clone();
            if f.orders.get(&id).is_some_and(|o| o.status == "NEW") {
                return binance_error(-4116, "ClientOrderId is duplicated.");
            }
            let order = FakeOrder {
                qty: params["quantity"].clone(),
                kind: kind.clone(),
                side: params["side"].clone(),
                status: if kind == "MARKET" { "FILLED" } else { "NEW" },
                reduce_only: params.get("reduceOnly").is_some_and(|v| v == "true"),
                stop_price: params.get("stopPrice").cloned(),
                callback_rate: params.get("callbackRate").cloned(),
                avg_price: "101.50",
            };
            f.orders.insert(id.clone(), order.clone());
            axum::Json(order_json(&id, &symbol, &order)).into_response()
        }
        (Method::GET, "/fapi/v1/order") => {
            let id = params["origClientOrderId"].clone();
            match f.orders.get(&id) {
                Some(o) => axum::Json(order_json(&id, &symbol, o)).into_response(),
                None => binance_error(-2013, "Order does not exist."),
            }
        }
        (Method::DELETE, "/fapi/v1/order") => {
            f.deletes += 1;
            let id = params["origClientOrderId"].clone();
            match f.orders.get_mut(&id) {
                Some(o) if o.status == "NEW" => {
                    o.status = "CANCELED";
                    let o = o.clone();
                    axum::Json(order_json(&id, &symbol, &o)).into_response()
                }
                _ => binance_error(-2011, "Unknown order sent."),
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
    BarMark {
        symbol: "BTCUSDT".into(),
        open_time: 0,
        close_time: 3_600_000,
        open: None,
        high: 102.0,
        low: 99.0,
        close: 100.0,
    }
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
        fill_sizing: None,
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
    let posts = state.lock().unwrap().posts;
    let again = desk.on_message(&order(1, Intent::Open)).await.unwrap();
    assert!(again.duplicate && again.events.is_empty());
    assert_eq!(state.lock().unwrap().posts, posts);
    // A mark asks the exchange only about the position's stop (one GET), and books nothing.
    let requests = state.lock().unwrap().requests;
    let mark =
        RiskMessage::Mark(Mark { id: "m".into(), decision_id: "d".into(), account: "live".into(), seq: 2, bar: bar() });
    assert!(desk.on_message(&mark).await.unwrap().events.is_empty());
    assert_eq!(state.lock().unwrap().requests, requests + 1);
    // The close takes the stop off, then is reduce-only and realises (101.5 − 101.5) × 2 = 0
    // before fees.
    let out = desk.on_message(&order(3, Intent::Close)).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, ExecEvent::Fill(f) if f.reason == FillReason::Exit && f.realized_pnl == 0.0))
    );
    let f = state.lock().unwrap();
    // Entry, its stop, the close; the stop cancelled.
    assert_eq!((f.posts, f.orders.len(), f.deletes), (3, 3, 1));
    assert!(f.resting().is_empty(), "nothing left resting: {:?}", f.resting());
    assert!(f.orders["csv:BTCUSDT:1h:3/p/live"].reduce_only);
    let book = desk.book("live").unwrap();
    assert!((book.balance() - (1_000.0 - 2.0 * 2.0 * 101.5 * 0.0004)).abs() < 1e-9);
    assert!(desk.state.protection("live", "BTCUSDT").is_empty());
}

fn with_protection(seq: u64, stop: Option<f64>, target: Option<f64>, trailing: Option<f64>) -> RiskMessage {
    let RiskMessage::Order(o) = order(seq, Intent::Open) else { unreachable!() };
    RiskMessage::Order(OrderIntent { stop_loss: stop, take_profit: target, trailing_stop_pct: trailing, ..o })
}

fn mark(seq: u64) -> RiskMessage {
    RiskMessage::Mark(Mark { id: format!("m{seq}"), decision_id: "d".into(), account: "live".into(), seq, bar: bar() })
}

#[tokio::test]
async fn protection_rests_on_the_exchange_and_a_fired_stop_is_booked() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&with_protection(1, Some(95.0), Some(110.0), Some(0.02))).await.unwrap();
    {
        let f = state.lock().unwrap();
        let resting = f.resting();
        assert_eq!(resting.len(), 3, "{resting:?}");
        let by_kind =
            |k: &str| resting.iter().find(|(_, o)| o.kind == k).map(|(id, o)| (id.clone(), o.clone())).unwrap();
        let (sl_id, sl) = by_kind("STOP_MARKET");
        assert_eq!(sl_id, "csv:BTCUSDT:1h:1/p/live:sl");
        assert_eq!(
            (sl.side.as_str(), sl.qty.as_str(), sl.stop_price.as_deref(), sl.reduce_only),
            ("SELL", "2", Some("95"), true)
        );
        let (_, tp) = by_kind("TAKE_PROFIT_MARKET");
        assert_eq!((tp.side.as_str(), tp.stop_price.as_deref()), ("SELL", Some("110")));
        let (_, ts) = by_kind("TRAILING_STOP_MARKET");
        assert_eq!((ts.side.as_str(), ts.callback_rate.as_deref()), ("SELL", Some("2")));
    }
    assert!(desk.state.protection("live", "BTCUSDT").iter().all(|p| p.placed));
    // Nothing fired: a mark books nothing.
    assert!(desk.on_message(&mark(2)).await.unwrap().events.is_empty());

    // The stop fires on the exchange at 94.90 while nobody watches; the next message books it.
    state.lock().unwrap().fire("csv:BTCUSDT:1h:1/p/live:sl", "94.90");
    let out = desk.on_message(&mark(3)).await.unwrap();
    let fills: Vec<_> =
        out.events.iter().filter_map(|e| if let ExecEvent::Fill(f) = e { Some(f) } else { None }).collect();
    assert_eq!(fills.len(), 1, "{:?}", out.events);
    let f = fills[0];
    assert_eq!((f.reason, f.price, f.quantity, f.side), (FillReason::StopLoss, 94.9, 2.0, Side::Sell));
    assert_eq!(f.id, "csv:BTCUSDT:1h:1/p/live:sl#1");
    // (94.90 − 101.50) × 2 = −13.20 realised; fees at the taker rate on both legs.
    assert!((f.realized_pnl - (-13.2)).abs() < 1e-9, "{}", f.realized_pnl);
    let book = desk.book("live").unwrap();
    assert!(book.position("BTCUSDT").is_none());
    let fees = 2.0 * 101.5 * 0.0004 + 2.0 * 94.9 * 0.0004;
    assert!((book.balance() - (1_000.0 - 13.2 - fees)).abs() < 1e-9, "{}", book.balance());
    // Its siblings are cancelled; nothing rests.
    assert!(state.lock().unwrap().resting().is_empty());
    assert!(desk.state.protection("live", "BTCUSDT").is_empty());
    // A close decided afterwards finds no position: nothing is sent.
    let posts = state.lock().unwrap().posts;
    let out = desk.on_message(&order(4, Intent::Close)).await.unwrap();
    assert!(out.events.is_empty());
    assert_eq!(state.lock().unwrap().posts, posts);
}

#[tokio::test]
async fn a_reduce_moves_the_protection_to_what_is_left() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&with_protection(1, Some(95.0), None, None)).await.unwrap();
    let RiskMessage::Order(o) = order(2, Intent::Reduce) else { unreachable!() };
    desk.on_message(&RiskMessage::Order(OrderIntent { quantity: 0.5, ..o })).await.unwrap();
    let f = state.lock().unwrap();
    let resting = f.resting();
    assert_eq!(resting.len(), 1, "{resting:?}");
    let (id, sl) = &resting[0];
    assert_eq!(id, "csv:BTCUSDT:1h:2/p/live:sl");
    assert_eq!((sl.kind.as_str(), sl.qty.as_str(), sl.stop_price.as_deref()), ("STOP_MARKET", "1.5", Some("95")));
    assert_eq!(f.orders["csv:BTCUSDT:1h:1/p/live:sl"].status, "CANCELED");
}

#[tokio::test]
async fn a_refused_stop_does_not_undo_the_entry() {
    let (url, state) = fake().await;
    state.lock().unwrap().refuse_protective = Some((-2021, "Order would immediately trigger."));
    let mut desk = desk(&url);
    let out = desk.on_message(&with_protection(1, Some(95.0), None, None)).await.unwrap();
    assert!(out.events.iter().any(|e| matches!(e, ExecEvent::Fill(f) if f.reason == FillReason::Entry)));
    assert!(desk.book("live").unwrap().position("BTCUSDT").is_some());
    assert!(desk.state.protection("live", "BTCUSDT").is_empty(), "a refused order is not retried forever");
}

#[tokio::test]
async fn an_unplaced_stop_is_placed_on_the_next_message() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    // Binance answers the stop with 503s until the retries run out: the entry stands, the stop
    // waits in the desk's state.
    state.lock().unwrap().protective_503 = true;
    let out = desk.on_message(&with_protection(1, Some(95.0), None, None)).await.unwrap();
    assert!(out.events.iter().any(|e| matches!(e, ExecEvent::Fill(f) if f.reason == FillReason::Entry)));
    let listed = desk.state.protection("live", "BTCUSDT").to_vec();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].placed);
    assert!(state.lock().unwrap().resting().is_empty());
    state.lock().unwrap().protective_503 = false;
    desk.on_message(&mark(2)).await.unwrap();
    assert!(desk.state.protection("live", "BTCUSDT").iter().all(|p| p.placed));
    let resting = state.lock().unwrap().resting();
    assert_eq!(resting.len(), 1);
    assert_eq!(resting[0].0, "csv:BTCUSDT:1h:1/p/live:sl");
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
