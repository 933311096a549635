//! Exchange accounts through the execution desk against a local fake of Binance USDⓈ-M
//! futures: the fill is booked at the exchange's average price, a redelivered intent places
//! no second order, marks ask nothing of the exchange, and a refusal says why.
//!
//! The fake follows Binance as documented on 2026-12-06 (derivatives change log of
//! 2025-11-06, effective 2025-12-09; "New Algo Order", "Query Algo Order", "Cancel Algo Order",
//! "Current All Algo Open Orders"): `POST /fapi/v1/order` takes MARKET and LIMIT only and
//! answers a conditional type with -4120; stops, take profits and trailing stops live at
//! `/fapi/v1/algoOrder` (`clientAlgoId` unique among open algo orders, -4116 otherwise), are
//! listed by `/fapi/v1/openAlgoOrders`, and when the mark price crosses their trigger
//! ([`Fake::mark`]) become an ordinary MARKET order (`actualOrderId`) that fills.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tradeflow_core::execution::{ExecEvent, FillReason};
use tradeflow_core::order::{BarMark, Direction, Intent, Mark, OrderIntent, OrderType, RiskMessage, Side};
use tradeflow_exec::binance::{Credentials, FuturesClient, FuturesConfig};
use tradeflow_exec::exchange::{DeskState, ExchangeAccount, ExchangeDesk, ExchangeError};

const CONDITIONAL: [&str; 5] = ["STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"];

/// An ordinary order (`/fapi/v1/order`).
#[derive(Debug, Clone)]
struct FakeOrder {
    order_id: i64,
    qty: String,
    side: String,
    status: &'static str,
    reduce_only: bool,
    avg_price: String,
}

/// A conditional order in the Algo Service (`/fapi/v1/algoOrder`).
#[derive(Debug, Clone)]
struct FakeAlgo {
    algo_id: i64,
    kind: String,
    side: String,
    qty: String,
    status: &'static str,
    reduce_only: bool,
    working_type: Option<String>,
    trigger_price: Option<String>,
    callback_rate: Option<String>,
    /// A trailing stop's best mark price since placing.
    extreme: Option<f64>,
    actual_order_id: Option<i64>,
}

#[derive(Default)]
struct Fake {
    /// clientOrderId → the order.
    orders: BTreeMap<String, FakeOrder>,
    /// clientAlgoId → every algo order placed with it, oldest first (Binance lets an id be
    /// reused once the first is no longer open).
    algos: BTreeMap<String, Vec<FakeAlgo>>,
    next_id: i64,
    /// `POST /fapi/v1/order` requests, conditional ones included.
    posts: usize,
    /// `POST /fapi/v1/algoOrder` requests.
    algo_posts: usize,
    /// `DELETE /fapi/v1/algoOrder` requests.
    deletes: usize,
    requests: usize,
    /// Every answer sent with -4120.
    refused_4120: usize,
    /// Answer every order with this Binance error.
    refuse: Option<(i64, &'static str)>,
    /// Refuse algo orders with this Binance error.
    refuse_protective: Option<(i64, &'static str)>,
    /// Answer algo orders with 503 (nothing placed).
    protective_503: bool,
    /// Place the next algo order, then answer only after this long.
    stall_algo_post: Option<Duration>,
    /// The mark price moves here just before the next algo cancel arrives (a race).
    mark_before_cancel: Option<f64>,
    /// `totalWalletBalance` of `/fapi/v2/account` (a string, as Binance sends decimals).
    wallet: String,
    /// Base quantity held outside the desk's orders (a manual trade on the exchange's site).
    outside: f64,
}

impl Fake {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        1000 + self.next_id
    }

    fn algo(&self, cid: &str) -> Option<&FakeAlgo> {
        self.algos.get(cid).and_then(|v| v.last())
    }

    /// The mark price moves to `mark`: every waiting algo order it crosses triggers and its
    /// MARKET order fills at `mark`. Returns the clientAlgoIds that triggered.
    fn mark(&mut self, mark: f64) -> Vec<String> {
        let mut fired = Vec::new();
        for (cid, list) in &mut self.algos {
            let Some(a) = list.last_mut().filter(|a| a.status == "NEW") else { continue };
            let trigger = a.trigger_price.as_deref().and_then(|t| t.parse::<f64>().ok());
            let sell = a.side == "SELL";
            let crossed = match (a.kind.as_str(), trigger) {
                ("STOP_MARKET", Some(t)) => {
                    if sell {
                        mark <= t
                    } else {
                        mark >= t
                    }
                }
                ("TAKE_PROFIT_MARKET", Some(t)) => {
                    if sell {
                        mark >= t
                    } else {
                        mark <= t
                    }
                }
                ("TRAILING_STOP_MARKET", None) => {
                    let rate = a.callback_rate.as_deref().and_then(|r| r.parse::<f64>().ok()).unwrap_or(1.0) / 100.0;
                    let best = a.extreme.map_or(mark, |e| if sell { e.max(mark) } else { e.min(mark) });
                    a.extreme = Some(best);
                    if sell { mark <= best * (1.0 - rate) } else { mark >= best * (1.0 + rate) }
                }
                _ => false,
            };
            if crossed {
                fired.push(cid.clone());
            }
        }
        for cid in &fired {
            self.fill_algo(cid, &format!("{mark:.2}"));
        }
        fired
    }

    /// The algo order `cid` triggers without the fake checking the price: it goes TRIGGERING
    /// (no ordinary order yet).
    fn start_trigger(&mut self, cid: &str) {
        let a = self.algos.get_mut(cid).and_then(|v| v.last_mut()).expect("an algo order");
        assert_eq!(a.status, "NEW");
        a.status = "TRIGGERING";
    }

    /// The algo order `cid` (NEW or TRIGGERING) becomes an ordinary MARKET order filled at
    /// `avg_price`; the algo order is FINISHED.
    fn fill_algo(&mut self, cid: &str, avg_price: &str) {
        let order_id = self.id();
        let a = self.algos.get_mut(cid).and_then(|v| v.last_mut()).expect("an algo order");
        assert!(a.status == "NEW" || a.status == "TRIGGERING", "{}", a.status);
        a.status = "FINISHED";
        a.actual_order_id = Some(order_id);
        let order = FakeOrder {
            order_id,
            qty: a.qty.clone(),
            side: a.side.clone(),
            status: "FILLED",
            reduce_only: a.reduce_only,
            avg_price: avg_price.to_string(),
        };
        // Binance names the triggered order itself; the desk reads it by orderId.
        self.orders.insert(format!("autoclose-{order_id}"), order);
    }

    /// Algo orders waiting for their trigger.
    fn resting(&self) -> Vec<(String, FakeAlgo)> {
        self.algos
            .iter()
            .filter_map(|(k, v)| v.last().filter(|a| a.status == "NEW").map(|a| (k.clone(), a.clone())))
            .collect()
    }

    /// The signed position the filled orders (and any quantity traded outside) add up to,
    /// and its average entry price (of the buys, enough for these tests).
    fn position(&self) -> (f64, f64) {
        let filled = self.orders.values().filter(|o| o.status == "FILLED");
        let (mut amount, mut cost, mut bought) = (self.outside, 0.0, 0.0);
        for o in filled {
            let q: f64 = o.qty.parse().unwrap();
            if o.side == "BUY" {
                amount += q;
                cost += q * o.avg_price.parse::<f64>().unwrap();
                bought += q;
            } else {
                amount -= q;
            }
        }
        (amount, if bought > 0.0 { cost / bought } else { 0.0 })
    }

    fn algos_with(&self, cid: &str) -> usize {
        self.algos.get(cid).map_or(0, Vec::len)
    }
}

fn order_json(id: &str, symbol: &str, o: &FakeOrder) -> serde_json::Value {
    let filled = o.status == "FILLED";
    json!({
        "orderId": o.order_id, "clientOrderId": id, "symbol": symbol, "status": o.status, "side": o.side,
        "type": "MARKET", "executedQty": if filled { o.qty.as_str() } else { "0" },
        "avgPrice": if filled { o.avg_price.as_str() } else { "0" }, "updateTime": 5
    })
}

/// The fields of Binance's New/Query Algo Order answers that a client may read.
fn algo_json(cid: &str, symbol: &str, a: &FakeAlgo) -> serde_json::Value {
    json!({
        "algoId": a.algo_id, "clientAlgoId": cid, "algoType": "CONDITIONAL", "orderType": a.kind,
        "symbol": symbol, "side": a.side, "positionSide": "BOTH", "timeInForce": "GTC", "quantity": a.qty,
        "algoStatus": a.status, "actualOrderId": a.actual_order_id.map(|i| i.to_string()).unwrap_or_default(),
        "triggerPrice": a.trigger_price.clone().unwrap_or_else(|| "0.000".into()),
        "callbackRate": a.callback_rate.clone().unwrap_or_default(),
        "workingType": a.working_type.clone().unwrap_or_else(|| "CONTRACT_PRICE".into()),
        "reduceOnly": a.reduce_only, "closePosition": false, "priceProtect": false,
        "createTime": 1, "updateTime": 5, "triggerTime": 0, "goodTillDate": 0
    })
}

fn binance_error(code: i64, msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"code": code, "msg": msg}))).into_response()
}

fn conditional_refused(f: &mut Fake) -> Response {
    f.refused_4120 += 1;
    binance_error(-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
}

async fn handle(State(fake): State<Arc<Mutex<Fake>>>, method: Method, uri: Uri, RawQuery(q): RawQuery) -> Response {
    let params: BTreeMap<String, String> =
        form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect();
    let (response, stall) = {
        let mut f = fake.lock().unwrap();
        f.requests += 1;
        answer(&mut f, &method, uri.path(), &params)
    };
    if let Some(stall) = stall {
        tokio::time::sleep(stall).await;
    }
    response
}

fn answer(
    f: &mut Fake,
    method: &Method,
    path: &str,
    params: &BTreeMap<String, String>,
) -> (Response, Option<Duration>) {
    let symbol = params.get("symbol").cloned().unwrap_or_default();
    let response = match (method.clone(), path) {
        (Method::POST, "/fapi/v1/leverage") => {
            let body = json!({"leverage": params["leverage"].parse::<i64>().unwrap(), "maxNotionalValue": "1000000", "symbol": symbol});
            axum::Json(body).into_response()
        }
        (Method::POST, "/fapi/v1/order") => {
            f.posts += 1;
            let kind = params["type"].clone();
            if CONDITIONAL.contains(&kind.as_str()) {
                return (conditional_refused(f), None);
            }
            if let Some((code, msg)) = f.refuse {
                return (binance_error(code, msg), None);
            }
            let id = params["newClientOrderId"].clone();
            if f.orders.get(&id).is_some_and(|o| o.status == "NEW") {
                return (binance_error(-4116, "ClientOrderId is duplicated."), None);
            }
            let order = FakeOrder {
                order_id: f.id(),
                qty: params["quantity"].clone(),
                side: params["side"].clone(),
                status: "FILLED",
                reduce_only: params.get("reduceOnly").is_some_and(|v| v == "true"),
                avg_price: "101.50".into(),
            };
            f.orders.insert(id.clone(), order.clone());
            axum::Json(order_json(&id, &symbol, &order)).into_response()
        }
        (Method::GET, "/fapi/v1/order") => {
            let found = match (params.get("orderId"), params.get("origClientOrderId")) {
                (Some(oid), _) => f.orders.iter().find(|(_, o)| o.order_id.to_string() == *oid),
                (None, Some(cid)) => f.orders.get_key_value(cid),
                (None, None) => None,
            };
            match found {
                Some((id, o)) => axum::Json(order_json(id, &symbol, o)).into_response(),
                None => binance_error(-2013, "Order does not exist."),
            }
        }
        (Method::POST, "/fapi/v1/algoOrder") => {
            f.algo_posts += 1;
            if let Some((code, msg)) = f.refuse.or(f.refuse_protective) {
                return (binance_error(code, msg), None);
            }
            if f.protective_503 {
                return ((StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable.").into_response(), None);
            }
            let kind = params.get("type").cloned().unwrap_or_default();
            if params.get("algoType").map(String::as_str) != Some("CONDITIONAL")
                || !CONDITIONAL.contains(&kind.as_str())
            {
                return (binance_error(-1116, "Invalid orderType."), None);
            }
            let id = params["clientAlgoId"].clone();
            if f.algo(&id).is_some_and(|a| a.status == "NEW") {
                return (binance_error(-4116, "ClientOrderId is duplicated."), None);
            }
            let algo = FakeAlgo {
                algo_id: f.id(),
                kind,
                side: params["side"].clone(),
                qty: params["quantity"].clone(),
                status: "NEW",
                reduce_only: params.get("reduceOnly").is_some_and(|v| v == "true"),
                working_type: params.get("workingType").cloned(),
                trigger_price: params.get("triggerPrice").cloned(),
                callback_rate: params.get("callbackRate").cloned(),
                extreme: None,
                actual_order_id: None,
            };
            f.algos.entry(id.clone()).or_default().push(algo.clone());
            let stall = f.stall_algo_post.take();
            return (axum::Json(algo_json(&id, &symbol, &algo)).into_response(), stall);
        }
        (Method::GET, "/fapi/v1/algoOrder") => {
            let id = params.get("clientAlgoId").cloned().unwrap_or_default();
            match f.algo(&id) {
                // The real answer carries the symbol; the request has none.
                Some(a) => axum::Json(algo_json(&id, "BTCUSDT", a)).into_response(),
                None => binance_error(-2013, "Order does not exist."),
            }
        }
        (Method::DELETE, "/fapi/v1/algoOrder") => {
            f.deletes += 1;
            if let Some(mark) = f.mark_before_cancel.take() {
                f.mark(mark);
            }
            let id = params.get("clientAlgoId").cloned().unwrap_or_default();
            match f.algos.get_mut(&id).and_then(|v| v.last_mut()) {
                Some(a) if a.status == "NEW" => {
                    a.status = "CANCELED";
                    axum::Json(json!({"algoId": a.algo_id, "clientAlgoId": id, "code": "200", "msg": "success"}))
                        .into_response()
                }
                _ => binance_error(-2011, "Unknown order sent."),
            }
        }
        (Method::GET, "/fapi/v2/account") => axum::Json(json!({
            "feeTier": 0, "canTrade": true, "totalWalletBalance": f.wallet,
            "totalUnrealizedProfit": "0.00000000", "availableBalance": f.wallet, "assets": [], "positions": []
        }))
        .into_response(),
        (Method::GET, "/fapi/v2/positionRisk") => {
            // Every symbol is listed, flat ones with positionAmt "0".
            let (amount, entry) = f.position();
            let row = |symbol: &str, amount: f64, entry: f64| {
                json!({"symbol": symbol, "positionAmt": format!("{amount:.8}"), "entryPrice": format!("{entry:.8}"),
                       "markPrice": "100.00000000", "unRealizedProfit": "0.0", "liquidationPrice": "0",
                       "leverage": "2", "marginType": "cross", "positionSide": "BOTH", "updateTime": 5})
            };
            axum::Json(json!([row("BTCUSDT", amount, entry), row("ETHUSDT", 0.0, 0.0)])).into_response()
        }
        (Method::GET, "/fapi/v1/openOrders") => {
            let open: Vec<_> = f
                .orders
                .iter()
                .filter(|(_, o)| o.status == "NEW")
                .map(|(id, o)| order_json(id, "BTCUSDT", o))
                .collect();
            axum::Json(serde_json::Value::Array(open)).into_response()
        }
        (Method::GET, "/fapi/v1/openAlgoOrders") => {
            let open: Vec<_> = f.resting().iter().map(|(id, a)| algo_json(id, &symbol, a)).collect();
            axum::Json(serde_json::Value::Array(open)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    };
    (response, None)
}

async fn fake() -> (String, Arc<Mutex<Fake>>) {
    let state = Arc::new(Mutex::new(Fake { wallet: "1000.00000000".into(), ..Fake::default() }));
    let app = axum::Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn desk(url: &str) -> ExchangeDesk {
    desk_with(FuturesConfig {
        base_url: Some(url.into()),
        timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(10),
        ..FuturesConfig::default()
    })
}

fn desk_with(config: FuturesConfig) -> ExchangeDesk {
    let client = FuturesClient::with_credentials(&config, Credentials::new("key", "secret")).unwrap();
    let account = ExchangeAccount {
        id: "live".into(),
        profile: "p".into(),
        starting_balance: 1_000.0,
        leverage: 2,
        taker_fee: 0.0004,
        client: client.into(),
        reconcile_every: None,
    };
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
    // A mark asks the exchange only about the position's stop (one GET of the symbol's open
    // algo orders), and books nothing.
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
    // Entry and close on /fapi/v1/order, the stop on /fapi/v1/algoOrder, cancelled by the close.
    assert_eq!((f.posts, f.orders.len(), f.algo_posts, f.deletes, f.refused_4120), (2, 2, 1, 1, 0));
    assert_eq!(f.algo("csv:BTCUSDT:1h:1/p/live:sl").unwrap().status, "CANCELED");
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
            (sl.side.as_str(), sl.qty.as_str(), sl.trigger_price.as_deref(), sl.reduce_only),
            ("SELL", "2", Some("95"), true)
        );
        assert_eq!(sl.working_type.as_deref(), Some("MARK_PRICE"));
        let (_, tp) = by_kind("TAKE_PROFIT_MARKET");
        assert_eq!((tp.side.as_str(), tp.trigger_price.as_deref()), ("SELL", Some("110")));
        let (_, ts) = by_kind("TRAILING_STOP_MARKET");
        assert_eq!((ts.side.as_str(), ts.callback_rate.as_deref()), ("SELL", Some("2")));
        // Nothing conditional went to /fapi/v1/order: the entry alone.
        assert_eq!((f.posts, f.algo_posts, f.refused_4120), (1, 3, 0));
    }
    assert!(desk.state.protection("live", "BTCUSDT").iter().all(|p| p.placed));
    // Nothing fired: a mark books nothing.
    assert!(desk.on_message(&mark(2)).await.unwrap().events.is_empty());

    // The mark price falls to 94.90 while nobody watches: the stop triggers (the trailing stop,
    // 2 % under its best mark, too: the fake fires both; the desk books one, the first it
    // finds, and the position is closed by it).
    let fired = state.lock().unwrap().mark(100.0);
    assert!(fired.is_empty(), "{fired:?}");
    let fired = state.lock().unwrap().mark(94.9);
    assert_eq!(fired, ["csv:BTCUSDT:1h:1/p/live:sl", "csv:BTCUSDT:1h:1/p/live:ts"]);
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
    assert_eq!(state.lock().unwrap().algo("csv:BTCUSDT:1h:1/p/live:tp").unwrap().status, "CANCELED");
    assert!(desk.state.protection("live", "BTCUSDT").is_empty());
    // Booked once: the next message asks nothing more and books nothing.
    let requests = state.lock().unwrap().requests;
    assert!(desk.on_message(&mark(4)).await.unwrap().events.is_empty());
    assert_eq!(state.lock().unwrap().requests, requests);
    // A close decided afterwards finds no position: nothing is sent.
    let posts = state.lock().unwrap().posts;
    let out = desk.on_message(&order(5, Intent::Close)).await.unwrap();
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
    assert_eq!((sl.kind.as_str(), sl.qty.as_str(), sl.trigger_price.as_deref()), ("STOP_MARKET", "1.5", Some("95")));
    assert_eq!(f.algo("csv:BTCUSDT:1h:1/p/live:sl").unwrap().status, "CANCELED");
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

#[tokio::test]
async fn a_stop_that_fired_before_a_close_is_booked_instead_of_closing_again() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&with_protection(1, Some(95.0), None, None)).await.unwrap();
    state.lock().unwrap().mark(94.0);
    // The close first asks about the position's protection: the stop is no longer open, it
    // fired and its order filled at 94.00. That exit is booked; no close is sent.
    let out = desk.on_message(&order(2, Intent::Close)).await.unwrap();
    let fills: Vec<_> =
        out.events.iter().filter_map(|e| if let ExecEvent::Fill(f) = e { Some(f) } else { None }).collect();
    assert_eq!(fills.len(), 1, "{:?}", out.events);
    assert_eq!((fills[0].reason, fills[0].price), (FillReason::StopLoss, 94.0));
    let f = state.lock().unwrap();
    assert_eq!((f.posts, f.deletes), (1, 0));
    assert!(desk.book("live").unwrap().position("BTCUSDT").is_none());
}

#[tokio::test]
async fn a_stop_that_fires_while_a_close_cancels_it_is_booked_instead() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&with_protection(1, Some(95.0), Some(110.0), None)).await.unwrap();
    // The stop fires between the close's look at the protection and its cancel: the cancel
    // answers -2011, the look-up finds it fired and filled at 94.80. That exit is booked, the
    // take profit cancelled, and no close is sent.
    state.lock().unwrap().mark_before_cancel = Some(94.8);
    let out = desk.on_message(&order(2, Intent::Close)).await.unwrap();
    let fills: Vec<_> =
        out.events.iter().filter_map(|e| if let ExecEvent::Fill(f) = e { Some(f) } else { None }).collect();
    assert_eq!(fills.len(), 1, "{:?}", out.events);
    assert_eq!((fills[0].reason, fills[0].price), (FillReason::StopLoss, 94.8));
    let f = state.lock().unwrap();
    assert_eq!(f.posts, 1, "no close sent");
    assert_eq!(f.algo("csv:BTCUSDT:1h:1/p/live:tp").unwrap().status, "CANCELED");
    assert!(f.resting().is_empty());
    assert!(desk.book("live").unwrap().position("BTCUSDT").is_none());
}

#[tokio::test]
async fn a_stop_still_triggering_is_a_retry_then_booked_once() {
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&with_protection(1, Some(95.0), None, None)).await.unwrap();
    let sl = "csv:BTCUSDT:1h:1/p/live:sl";
    // Triggered, not in the matching engine yet: the fill is not known, so the message waits.
    state.lock().unwrap().start_trigger(sl);
    match desk.on_message(&mark(2)).await {
        Err(ExchangeError::Retry(e)) => assert!(e.contains("not in the matching engine yet"), "{e}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert!(desk.book("live").unwrap().position("BTCUSDT").is_some());
    // Its MARKET order fills; the retried message books it, once.
    state.lock().unwrap().fill_algo(sl, "94.50");
    let out = desk.on_message(&mark(2)).await.unwrap();
    let fills: Vec<_> =
        out.events.iter().filter_map(|e| if let ExecEvent::Fill(f) = e { Some(f) } else { None }).collect();
    assert_eq!(fills.len(), 1, "{:?}", out.events);
    assert_eq!((fills[0].reason, fills[0].price, fills[0].quantity), (FillReason::StopLoss, 94.5, 2.0));
    assert!(desk.on_message(&mark(3)).await.unwrap().events.is_empty());
    assert!(desk.on_message(&order(4, Intent::Close)).await.unwrap().events.is_empty());
    assert_eq!(state.lock().unwrap().posts, 1);
}

#[tokio::test]
async fn a_stop_whose_placing_timed_out_is_looked_up_not_placed_twice() {
    let (url, state) = fake().await;
    let mut desk = desk_with(FuturesConfig {
        base_url: Some(url.clone()),
        timeout: Duration::from_millis(300),
        max_retries: 0,
        backoff_initial: Duration::from_millis(10),
        ..FuturesConfig::default()
    });
    // Binance places the stop but its answer comes after the client gave up: the outcome is
    // unknown and the desk keeps the stop as not placed.
    state.lock().unwrap().stall_algo_post = Some(Duration::from_secs(1));
    desk.on_message(&with_protection(1, Some(95.0), None, None)).await.unwrap();
    let listed = desk.state.protection("live", "BTCUSDT").to_vec();
    assert_eq!((listed.len(), listed[0].placed, listed[0].attempted), (1, false, true));
    let sl = "csv:BTCUSDT:1h:1/p/live:sl";
    assert_eq!(state.lock().unwrap().algos_with(sl), 1);
    // It fires before the next message: no longer open, so Binance would take its clientAlgoId
    // again. The next message looks it up first and finds it instead of placing a second one…
    state.lock().unwrap().mark(94.0);
    desk.on_message(&mark(2)).await.unwrap();
    assert!(desk.state.protection("live", "BTCUSDT").iter().all(|p| p.placed));
    {
        let f = state.lock().unwrap();
        assert_eq!((f.algos_with(sl), f.algo_posts), (1, 1));
    }
    // …and the one after books its fill.
    let out = desk.on_message(&mark(3)).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, ExecEvent::Fill(f) if f.reason == FillReason::StopLoss && f.price == 94.0))
    );
    assert!(desk.book("live").unwrap().position("BTCUSDT").is_none());
    assert_eq!(state.lock().unwrap().algos_with(sl), 1);
}

#[tokio::test]
async fn fills_and_reconciliations_report_what_the_exchange_holds() {
    use tradeflow_core::report::ReportKind;
    let (url, state) = fake().await;
    let mut desk = desk(&url);
    // A mark fills nothing: no report.
    let out = desk.on_message(&mark(1)).await.unwrap();
    assert!(desk.fills_report("live", 1, &out.events).is_none());
    // The entry fills at the exchange's 101.5 (the bar closed at 100): the report carries the
    // exchange's price, the fee and the position at that price.
    let out = desk.on_message(&order(2, Intent::Open)).await.unwrap();
    let report = desk.fills_report("live", 2, &out.events).expect("a fill is reported");
    assert_eq!(
        (report.id.as_str(), report.kind, report.open_orders),
        ("live/report/2", ReportKind::Fills { seq: 2 }, None)
    );
    assert_eq!(report.fills.len(), 1);
    assert_eq!((report.fills[0].price, report.fills[0].quantity), (101.5, 2.0));
    assert!((report.balance - (1_000.0 - 2.0 * 101.5 * 0.0004)).abs() < 1e-9);
    assert_eq!(report.positions.len(), 1);
    let p = &report.positions[0];
    assert_eq!((p.symbol.as_str(), p.direction, p.quantity, p.entry_price), ("BTCUSDT", Direction::Long, 2.0, 101.5));
    // A fill of another account is not this account's.
    assert!(desk.fills_report("other", 2, &out.events).is_none());

    // Reconciliation reads the exchange: its wallet (which someone changed), the open position
    // (with 0.5 bought on the exchange's site), the flat symbol left out, no open plain orders.
    {
        let mut f = state.lock().unwrap();
        f.wallet = "950.25000000".into();
        f.outside = 0.5;
    }
    let report = desk.read_exchange("live", 7_000).await.unwrap();
    assert_eq!((report.id.as_str(), report.kind, report.time), ("live/reconcile/7000", ReportKind::Reconcile, 7_000));
    assert_eq!((report.balance, report.open_orders), (950.25, Some(0)));
    assert!(report.fills.is_empty());
    assert_eq!(report.positions.len(), 1, "{:?}", report.positions);
    let p = &report.positions[0];
    assert_eq!(
        (p.symbol.as_str(), p.direction, p.quantity, p.mark_price),
        ("BTCUSDT", Direction::Long, 2.5, Some(100.0))
    );
    assert_eq!((p.entry_price, p.leverage), (101.5, 2.0));
    // An account the desk does not hold is refused by name; an exchange that fails is a retry.
    let err = desk.read_exchange("nobody", 7_000).await.unwrap_err();
    assert!(err.to_string().contains("\"nobody\""), "{err}");
    state.lock().unwrap().wallet = "not a number".into();
    let err = desk.read_exchange("live", 8_000).await.unwrap_err();
    assert!(matches!(err, ExchangeError::Retry(_)), "{err}");
    assert!(err.to_string().contains("totalWalletBalance"), "{err}");
}

/// A decision at bar close 100 of `seq`.
fn decision(seq: i64, action: tradeflow_core::signal::Action) -> tradeflow_core::decision::Decision {
    tradeflow_core::decision::Decision {
        candle_id: format!("csv:BTCUSDT:1h:{}", seq * 3_600_000),
        symbol: "BTCUSDT".into(),
        interval: tradeflow_core::market::Interval::H1,
        open_time: seq * 3_600_000,
        open: Some(100.0),
        high: 100.0,
        low: 100.0,
        close: 100.0,
        profile: "p".into(),
        action,
        confidence: 0.8,
        contributions: Vec::new(),
        missing: Vec::new(),
        trigger: tradeflow_core::decision::Trigger::Complete,
        reasoning: "test".into(),
        stop_loss: None,
        take_profit: None,
    }
}

#[tokio::test]
async fn risk_follows_the_exchange_not_its_shadow() {
    use tradeflow_core::control::ControlState;
    use tradeflow_core::signal::Action;
    use tradeflow_risk::account::ExecutorKind;
    use tradeflow_risk::{AccountConfig, RiskStage};

    let (url, state) = fake().await;
    let mut desk = desk(&url);
    let mut cfg = AccountConfig::paper("live", "p", 1_000.0);
    cfg.executor = ExecutorKind::BinanceFutures;
    cfg.leverage = 2.0;
    let accounts = std::sync::Arc::new(vec![cfg]);
    let mut risk = RiskStage::new(accounts.clone());
    // The same decisions to a risk that never hears from the exchange: what the shadow predicts.
    let mut shadow = RiskStage::new(accounts);
    let control = ControlState::default();

    // Risk sizes at the bar's close (100); the exchange fills at 101.5.
    let out = risk.on_decision(&decision(1, Action::Long), &control);
    shadow.on_decision(&decision(1, Action::Long), &control);
    let [RiskMessage::Order(intent)] = out.messages.as_slice() else { panic!("{out:?}") };
    let sent = intent.quantity;
    let filled = desk.on_message(&RiskMessage::Order(intent.clone())).await.unwrap();
    let report = desk.fills_report("live", intent.seq, &filled.events).expect("a fill is reported");
    // Slippage is no mismatch: the balance is within the tolerance and the quantity agrees.
    let out = risk.on_report(&report);
    assert!(out.alerts.is_empty(), "{out:?}");

    // Risk's equity is the exchange's: fee at 101.5, marked at the last close (100).
    let fee = sent * 101.5 * 0.0004;
    let view = risk.view("live").unwrap();
    assert!((view.balance - (1_000.0 - fee)).abs() < 1e-9, "{view:?}");
    assert!((view.equity - (1_000.0 - fee - sent * 1.5)).abs() < 1e-9, "{view:?}");
    let predicted = shadow.view("live").unwrap();
    assert!(predicted.equity > view.equity + sent, "the shadow thought better: {predicted:?} vs {view:?}");

    // The next sizing follows: a close, then a new entry sized on the exchange's equity (the
    // default fixed fraction, 0.1 of equity at the close of 100), not on the shadow's.
    for (seq, action) in [(2, Action::Short), (3, Action::Long)] {
        let equity = risk.view("live").unwrap().equity;
        let (ours, theirs) =
            (risk.on_decision(&decision(seq, action), &control), shadow.on_decision(&decision(seq, action), &control));
        if let [RiskMessage::Order(o)] = ours.messages.as_slice() {
            let filled = desk.on_message(&RiskMessage::Order(o.clone())).await.unwrap();
            if let Some(r) = desk.fills_report("live", o.seq, &filled.events) {
                risk.on_report(&r);
            }
        }
        if seq == 3 {
            let (RiskMessage::Order(a), RiskMessage::Order(b)) = (&ours.messages[0], &theirs.messages[0]) else {
                panic!("{ours:?} {theirs:?}")
            };
            assert!((a.quantity - equity * 0.1 / 100.0).abs() < 1e-9, "{} vs equity {equity}", a.quantity);
            assert!((a.quantity - b.quantity).abs() > 1e-6, "the shadow sizes otherwise: {}", b.quantity);
        }
    }

    // A reconciliation that finds the wallet changed and 0.5 more bought on the exchange's
    // site raises the alert naming both, and risk takes the exchange's figures.
    let held = risk.book("live").unwrap().position("BTCUSDT").map(|p| p.quantity).unwrap_or(0.0);
    {
        let mut f = state.lock().unwrap();
        f.wallet = "900.00000000".into();
        f.outside = 0.5;
    }
    let reading = desk.read_exchange("live", 9 * 3_600_000).await.unwrap();
    let out = risk.on_report(&reading);
    let [alert] = out.alerts.as_slice() else { panic!("{out:?}") };
    assert_eq!(alert.kind, "reconcile_mismatch");
    assert!(alert.message.contains("balance") && alert.message.contains("BTCUSDT"), "{}", alert.message);
    let view = risk.view("live").unwrap();
    assert_eq!(view.balance, 900.0);
    let now = risk.book("live").unwrap().position("BTCUSDT").map(|p| p.quantity).unwrap();
    assert!((now - (held + 0.5)).abs() < 1e-9, "{held} + 0.5 vs {now}");
}
