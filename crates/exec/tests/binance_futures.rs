//! The Binance futures client against a local fake of `/fapi/v1/{order,leverage,marginType}`
//! and of the Algo Order API (`/fapi/v1/algoOrder`, `/fapi/v1/openAlgoOrders`).
//!
//! The fake checks what Binance checks: the `X-MBX-APIKEY` header, the HMAC-SHA256 signature over
//! the raw query (less `&signature=…`) plus the raw body, computed here independently of the
//! client's `sign`, and the timestamp against its recvWindow. It keeps orders in a list, and like
//! Binance refuses a client order id only while an order with it is open: a blind re-POST of a
//! filled MARKET order would make a second order, which the tests would see. Knobs make it fail
//! on purpose (503s, a stall after accepting, 429s, lost lookups).
//!
//! Conditional orders follow Binance's documentation as read on 2026-12-06 (derivatives change
//! log of 2025-11-06, effective 2025-12-09; "New Algo Order", "Query Algo Order", "Cancel Algo
//! Order", "Current All Algo Open Orders"): `POST /fapi/v1/order` answers STOP_MARKET,
//! TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT and TRAILING_STOP_MARKET with -4120; the algo
//! endpoints take exactly their documented parameters (anything else is -1104, so the tests see
//! a wrong request shape), keep `clientAlgoId` unique among open algo orders (-4116, Binance's
//! duplicate client id code: the page names none), answer an unknown one with -2013 on GET and
//! -2011 on DELETE, and [`Fake::trigger`] turns an algo order into a filled MARKET order
//! (`actualOrderId`), after which its id is free again, as on Binance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tradeflow_exec::binance::{
    AlgoStatus, Credentials, FuturesClient, FuturesConfig, FuturesError, MarginType, NewAlgoOrder, NewOrder, OrderAck,
    OrderSide, OrderStatus, client_order_id, sign,
};

const API_KEY: &str = "test-api-key-0123456789";
const SECRET: &str = "test-secret-abcdefghijklmnopqrstuvwxyz";
/// The fake's fill price for BTCUSDT.
const BTC_PRICE: f64 = 50_000.1;

#[derive(Debug, Clone)]
struct FakeOrder {
    order_id: i64,
    client_order_id: String,
    symbol: String,
    side: String,
    status: &'static str,
    qty: f64,
    price: f64,
}

#[derive(Debug, Clone)]
struct FakeAlgo {
    algo_id: i64,
    client_algo_id: String,
    symbol: String,
    side: String,
    kind: String,
    qty: String,
    status: &'static str,
    actual_order_id: Option<i64>,
}

#[derive(Default)]
struct Fake {
    orders: Mutex<Vec<FakeOrder>>,
    algos: Mutex<Vec<FakeAlgo>>,
    leverage: Mutex<HashMap<String, u32>>,
    margin_type: Mutex<HashMap<String, String>>,
    /// (method, path) → requests received (signed or not).
    hits: Mutex<HashMap<(String, String), u32>>,
    /// Every signature received.
    signatures: Mutex<Vec<String>>,
    // Knobs.
    /// Answer this many order POSTs with 503 without placing anything.
    posts_503: AtomicU32,
    /// Place the next order, then answer only after this many ms.
    stall_after_placing_ms: AtomicU32,
    /// Answer this many requests with 429 Retry-After: 1.
    rate_limits: AtomicU32,
    /// Answer this many order lookups with -2013 although the order exists (still in flight).
    lookups_lost: AtomicU32,
    /// Leave avgPrice and cumQuote out of order answers.
    omit_avg_price: std::sync::atomic::AtomicBool,
    /// Place the next algo order, then answer only after this many ms.
    stall_after_algo_ms: AtomicU32,
    /// Answer this many algo lookups with -2013 although the order exists (still in flight).
    algo_lookups_lost: AtomicU32,
}

impl Fake {
    fn hits(&self, method: &str, path: &str) -> u32 {
        self.hits.lock().unwrap().get(&(method.to_string(), path.to_string())).copied().unwrap_or(0)
    }

    fn orders_with(&self, cid: &str) -> usize {
        self.orders.lock().unwrap().iter().filter(|o| o.client_order_id == cid).count()
    }

    fn algos_with(&self, cid: &str) -> usize {
        self.algos.lock().unwrap().iter().filter(|a| a.client_algo_id == cid).count()
    }

    /// The last algo order with `cid` triggers: a MARKET order fills at [`BTC_PRICE`] and the
    /// algo order is FINISHED. Returns the MARKET order's id.
    fn trigger(&self, cid: &str) -> i64 {
        let mut algos = self.algos.lock().unwrap();
        let a = algos.iter_mut().rev().find(|a| a.client_algo_id == cid).expect("an algo order");
        assert_eq!(a.status, "NEW");
        let mut orders = self.orders.lock().unwrap();
        let order_id = 1000 + orders.len() as i64;
        orders.push(FakeOrder {
            order_id,
            client_order_id: format!("autoclose-{order_id}"),
            symbol: a.symbol.clone(),
            side: a.side.clone(),
            status: "FILLED",
            qty: a.qty.parse().unwrap(),
            price: BTC_PRICE,
        });
        a.status = "FINISHED";
        a.actual_order_id = Some(order_id);
        order_id
    }
}

/// The parameters each algo endpoint documents (besides recvWindow, timestamp, signature).
const NEW_ALGO_PARAMS: [&str; 20] = [
    "algoType",
    "symbol",
    "side",
    "positionSide",
    "type",
    "timeInForce",
    "quantity",
    "price",
    "triggerPrice",
    "workingType",
    "priceMatch",
    "closePosition",
    "priceProtect",
    "reduceOnly",
    "activatePrice",
    "callbackRate",
    "clientAlgoId",
    "newOrderRespType",
    "selfTradePreventionMode",
    "goodTillDate",
];
const ALGO_ID_PARAMS: [&str; 2] = ["algoId", "clientAlgoId"];
const OPEN_ALGO_PARAMS: [&str; 3] = ["algoType", "symbol", "algoId"];
const CONDITIONAL: [&str; 5] = ["STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"];

/// -1104 for a parameter the endpoint does not document.
fn unread(p: &HashMap<String, String>, documented: &[&str]) -> Option<Response> {
    let extra: Vec<&str> = p
        .keys()
        .map(String::as_str)
        .filter(|k| !documented.contains(k) && !["recvWindow", "timestamp"].contains(k))
        .collect();
    (!extra.is_empty())
        .then(|| error(StatusCode::BAD_REQUEST, -1104, &format!("Not all sent parameters were read: {extra:?}")))
}

fn algo_json(a: &FakeAlgo) -> Value {
    json!({
        "algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "algoType": "CONDITIONAL", "orderType": a.kind,
        "symbol": a.symbol, "side": a.side, "positionSide": "BOTH", "timeInForce": "GTC", "quantity": a.qty,
        "algoStatus": a.status, "actualOrderId": a.actual_order_id.map(|i| i.to_string()).unwrap_or_default(),
        "actualPrice": if a.actual_order_id.is_some() { format!("{BTC_PRICE:.5}") } else { "0.00000".into() },
        "triggerPrice": "48000.000", "price": "0.000", "workingType": "MARK_PRICE", "priceMatch": "NONE",
        "closePosition": false, "priceProtect": false, "reduceOnly": true,
        "createTime": 1_750_485_492_076_i64, "updateTime": 1_750_485_492_076_i64 + a.algo_id, "triggerTime": 0,
        "goodTillDate": 0,
    })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn error(status: StatusCode, code: i64, msg: &str) -> Response {
    json_response(status, json!({ "code": code, "msg": msg }))
}

fn order_json(o: &FakeOrder, omit_avg: bool) -> Value {
    let filled = if o.status == "FILLED" { o.qty } else { 0.0 };
    let mut v = json!({
        "orderId": o.order_id, "clientOrderId": o.client_order_id, "symbol": o.symbol, "status": o.status,
        "side": o.side, "type": if o.status == "FILLED" { "MARKET" } else { "LIMIT" },
        "origQty": format!("{:.3}", o.qty), "executedQty": format!("{filled:.3}"),
        "price": "0", "reduceOnly": false, "positionSide": "BOTH", "timeInForce": "GTC",
        "updateTime": 1_700_000_000_000_i64 + o.order_id,
    });
    if !omit_avg {
        let avg = if filled > 0.0 { o.price } else { 0.0 };
        v["avgPrice"] = json!(format!("{avg:.2}"));
        v["cumQuote"] = json!(format!("{:.5}", filled * avg));
    }
    v
}

async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    *fake.hits.lock().unwrap().entry((method.to_string(), path.clone())).or_default() += 1;

    if fake.rate_limits.load(Ordering::SeqCst) > 0 {
        fake.rate_limits.fetch_sub(1, Ordering::SeqCst);
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, -1003, "Too many requests; current limit is 2400.");
        r.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
        return r;
    }
    if headers.get("x-mbx-apikey").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return error(StatusCode::UNAUTHORIZED, -2015, "Invalid API-key, IP, or permissions for action.");
    }
    // The signature: HMAC over the raw query without `&signature=…`, followed by the raw body.
    let raw_query = uri.query().unwrap_or("");
    let Some((unsigned, signature)) = raw_query.rsplit_once("&signature=") else {
        return error(StatusCode::BAD_REQUEST, -1102, "Mandatory parameter 'signature' was not sent.");
    };
    fake.signatures.lock().unwrap().push(signature.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(unsigned.as_bytes());
    mac.update(&body);
    if hex::encode(mac.finalize().into_bytes()) != signature {
        return error(StatusCode::BAD_REQUEST, -1022, "Signature for this request is not valid.");
    }
    let mut p: HashMap<String, String> = form_urlencoded::parse(unsigned.as_bytes()).into_owned().collect();
    p.extend(form_urlencoded::parse(&body).into_owned());
    let (Some(ts), Some(window)) = (
        p.get("timestamp").and_then(|t| t.parse::<i64>().ok()),
        p.get("recvWindow").and_then(|t| t.parse::<i64>().ok()),
    ) else {
        return error(StatusCode::BAD_REQUEST, -1102, "timestamp and recvWindow are mandatory.");
    };
    let now = now_ms();
    if ts > now + 1000 || now - ts > window {
        return error(StatusCode::BAD_REQUEST, -1021, "Timestamp for this request is outside of the recvWindow.");
    }
    let symbol = p.get("symbol").cloned().unwrap_or_default();
    // Looking up or cancelling an algo order takes no symbol.
    let symbol_free = path == "/fapi/v1/algoOrder" && method != Method::POST;
    if !symbol_free && symbol != "BTCUSDT" && symbol != "ETHUSDT" {
        return error(StatusCode::BAD_REQUEST, -1121, "Invalid symbol.");
    }

    match (method.as_str(), path.as_str()) {
        ("POST", "/fapi/v1/order") => place(&fake, &p, &symbol).await,
        ("POST", "/fapi/v1/algoOrder") => place_algo(&fake, &p, &symbol).await,
        ("GET" | "DELETE", "/fapi/v1/algoOrder") => {
            if let Some(refused) = unread(&p, &ALGO_ID_PARAMS) {
                return refused;
            }
            let cid = p.get("clientAlgoId").cloned().unwrap_or_default();
            let mut algos = fake.algos.lock().unwrap();
            let found = algos.iter_mut().rev().find(|a| a.client_algo_id == cid);
            if method == Method::GET {
                if fake.algo_lookups_lost.load(Ordering::SeqCst) > 0 {
                    fake.algo_lookups_lost.fetch_sub(1, Ordering::SeqCst);
                    return error(StatusCode::BAD_REQUEST, -2013, "Order does not exist.");
                }
                return match found {
                    Some(a) => json_response(StatusCode::OK, algo_json(a)),
                    None => error(StatusCode::BAD_REQUEST, -2013, "Order does not exist."),
                };
            }
            match found {
                Some(a) if a.status == "NEW" => {
                    a.status = "CANCELED";
                    let body = json!({ "algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success" });
                    json_response(StatusCode::OK, body)
                }
                _ => error(StatusCode::BAD_REQUEST, -2011, "Unknown order sent."),
            }
        }
        ("GET", "/fapi/v1/openAlgoOrders") => {
            if let Some(refused) = unread(&p, &OPEN_ALGO_PARAMS) {
                return refused;
            }
            let algos = fake.algos.lock().unwrap();
            let open: Vec<Value> =
                algos.iter().filter(|a| a.status == "NEW" && a.symbol == symbol).map(algo_json).collect();
            json_response(StatusCode::OK, Value::Array(open))
        }
        ("GET", "/fapi/v1/order") => {
            let cid = p.get("origClientOrderId").cloned().unwrap_or_default();
            if fake.lookups_lost.load(Ordering::SeqCst) > 0 {
                fake.lookups_lost.fetch_sub(1, Ordering::SeqCst);
                return error(StatusCode::BAD_REQUEST, -2013, "Order does not exist.");
            }
            let by_id = p.get("orderId").and_then(|i| i.parse::<i64>().ok());
            let found = fake
                .orders
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|o| by_id.map_or(o.client_order_id == cid, |id| o.order_id == id))
                .cloned();
            match found {
                Some(o) => json_response(StatusCode::OK, order_json(&o, fake.omit_avg_price.load(Ordering::SeqCst))),
                None => error(StatusCode::BAD_REQUEST, -2013, "Order does not exist."),
            }
        }
        ("POST", "/fapi/v1/leverage") => {
            let leverage = p.get("leverage").and_then(|l| l.parse::<u32>().ok()).unwrap_or(0);
            if !(1..=125).contains(&leverage) {
                return error(StatusCode::BAD_REQUEST, -4028, &format!("Leverage {leverage} is not valid"));
            }
            fake.leverage.lock().unwrap().insert(symbol.clone(), leverage);
            json_response(
                StatusCode::OK,
                json!({ "leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol }),
            )
        }
        ("POST", "/fapi/v1/marginType") => {
            let wanted = p.get("marginType").cloned().unwrap_or_default();
            if wanted != "ISOLATED" && wanted != "CROSSED" {
                return error(StatusCode::BAD_REQUEST, -1116, "Invalid marginType.");
            }
            let mut types = fake.margin_type.lock().unwrap();
            if types.get(&symbol).map_or("CROSSED", String::as_str) == wanted {
                return error(StatusCode::BAD_REQUEST, -4046, "No need to change margin type.");
            }
            types.insert(symbol, wanted);
            json_response(StatusCode::OK, json!({ "code": 200, "msg": "success" }))
        }
        _ => error(StatusCode::NOT_FOUND, -1000, "no such endpoint"),
    }
}

async fn place_algo(fake: &Fake, p: &HashMap<String, String>, symbol: &str) -> Response {
    if let Some(refused) = unread(p, &NEW_ALGO_PARAMS) {
        return refused;
    }
    let kind = p.get("type").cloned().unwrap_or_default();
    if p.get("algoType").map(String::as_str) != Some("CONDITIONAL") || !CONDITIONAL.contains(&kind.as_str()) {
        return error(StatusCode::BAD_REQUEST, -1116, "Invalid orderType.");
    }
    let trailing = kind == "TRAILING_STOP_MARKET";
    if trailing != p.contains_key("callbackRate") || trailing == p.contains_key("triggerPrice") {
        return error(
            StatusCode::BAD_REQUEST,
            -1102,
            "Mandatory parameter 'triggerPrice' or 'callbackRate' was not sent, was empty/null, or malformed.",
        );
    }
    let cid = p.get("clientAlgoId").cloned().unwrap_or_default();
    let algo = {
        let mut algos = fake.algos.lock().unwrap();
        // Like newClientOrderId: unique among open orders only.
        if algos.iter().any(|a| a.client_algo_id == cid && a.status == "NEW") {
            return error(StatusCode::BAD_REQUEST, -4116, "ClientOrderId is duplicated.");
        }
        let algo = FakeAlgo {
            algo_id: 2_000_000 + algos.len() as i64,
            client_algo_id: cid,
            symbol: symbol.to_string(),
            side: p.get("side").cloned().unwrap_or_default(),
            kind,
            qty: p.get("quantity").cloned().unwrap_or_default(),
            status: "NEW",
            actual_order_id: None,
        };
        algos.push(algo.clone());
        algo
    };
    let stall = fake.stall_after_algo_ms.swap(0, Ordering::SeqCst);
    if stall > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(stall))).await;
    }
    json_response(StatusCode::OK, algo_json(&algo))
}

async fn place(fake: &Fake, p: &HashMap<String, String>, symbol: &str) -> Response {
    if p.get("type").is_some_and(|t| CONDITIONAL.contains(&t.as_str())) {
        return error(
            StatusCode::BAD_REQUEST,
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        );
    }
    if fake.posts_503.load(Ordering::SeqCst) > 0 {
        fake.posts_503.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable.").into_response();
    }
    let cid = p.get("newClientOrderId").cloned().unwrap_or_default();
    let qty: f64 = p.get("quantity").and_then(|q| q.parse().ok()).unwrap_or(0.0);
    let kind = p.get("type").cloned().unwrap_or_default();
    if qty <= 0.0 {
        return error(StatusCode::BAD_REQUEST, -4003, "Quantity less than or equal to zero.");
    }
    if p.get("quantity").is_some_and(|q| q.split('.').nth(1).is_some_and(|d| d.len() > 3)) {
        return error(StatusCode::BAD_REQUEST, -1111, "Precision is over the maximum defined for this asset.");
    }
    if kind == "LIMIT" && (p.get("price").is_none() || p.get("timeInForce").map(String::as_str) != Some("GTC")) {
        return error(StatusCode::BAD_REQUEST, -1102, "price and timeInForce are mandatory for LIMIT.");
    }
    if p.get("newOrderRespType").map(String::as_str) != Some("RESULT") || p.contains_key("positionSide") {
        return error(StatusCode::BAD_REQUEST, -1104, "unexpected parameters");
    }
    let price = if kind == "LIMIT" { p["price"].parse().unwrap_or(0.0) } else { BTC_PRICE };
    let notional = qty * price;
    let reduce_only = p.get("reduceOnly").map(String::as_str) == Some("true");
    if reduce_only {
        return error(StatusCode::BAD_REQUEST, -2022, "ReduceOnly Order is rejected.");
    }
    if notional < 5.0 {
        return error(StatusCode::BAD_REQUEST, -4164, "Order's notional must be no smaller than 5.0");
    }
    let leverage = fake.leverage.lock().unwrap().get(symbol).copied().unwrap_or(20);
    if notional / f64::from(leverage) > 1000.0 {
        return error(StatusCode::BAD_REQUEST, -2019, "Margin is insufficient.");
    }
    let order = {
        let mut orders = fake.orders.lock().unwrap();
        // Like Binance: unique among open orders only.
        if orders.iter().any(|o| o.client_order_id == cid && o.status == "NEW") {
            return error(StatusCode::BAD_REQUEST, -4116, "ClientOrderId is duplicated.");
        }
        let order = FakeOrder {
            order_id: 1000 + orders.len() as i64,
            client_order_id: cid,
            symbol: symbol.to_string(),
            side: p.get("side").cloned().unwrap_or_default(),
            status: if kind == "MARKET" { "FILLED" } else { "NEW" },
            qty,
            price,
        };
        orders.push(order.clone());
        order
    };
    let stall = fake.stall_after_placing_ms.swap(0, Ordering::SeqCst);
    if stall > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(stall))).await;
    }
    json_response(StatusCode::OK, order_json(&order, fake.omit_avg_price.load(Ordering::SeqCst)))
}

/// Starts a fake on 127.0.0.1; returns it and its base URL.
async fn start_fake() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = Router::new().fallback(handle).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, format!("http://{addr}"))
}

fn config(base: &str) -> FuturesConfig {
    FuturesConfig {
        base_url: Some(base.to_string()),
        timeout: Duration::from_millis(500),
        max_retries: 3,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..FuturesConfig::default()
    }
}

fn client(base: &str) -> FuturesClient {
    FuturesClient::with_credentials(&config(base), Credentials::new(API_KEY, SECRET)).unwrap()
}

/// The error's Display and Debug carry neither credential nor a signature.
fn assert_clean(e: &FuturesError, fake: &Fake) {
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(SECRET) && !text.contains(API_KEY), "credential in {text}");
        assert!(!text.contains("signature="), "signature in {text}");
        for s in fake.signatures.lock().unwrap().iter() {
            assert!(!text.contains(s.as_str()), "signature in {text}");
        }
    }
}

fn btc_market(cid: &str) -> NewOrder {
    NewOrder::market("BTCUSDT", OrderSide::Buy, 0.01, cid)
}

#[test]
fn the_official_signature_test_vector() {
    assert_eq!(
        sign(
            "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
            ""
        ),
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    );
}

#[tokio::test]
async fn a_market_order_fills_with_an_average_price() {
    let (fake, base) = start_fake().await;
    let ack = client(&base).place_order(&btc_market("m-1")).await.unwrap();
    assert_eq!(
        ack,
        OrderAck {
            order_id: 1000,
            client_order_id: "m-1".into(),
            symbol: "BTCUSDT".into(),
            status: OrderStatus::Filled,
            side: OrderSide::Buy,
            executed_qty: 0.01,
            avg_price: Some(50_000.1),
            cum_quote: Some(500.001),
            update_time: 1_700_000_001_000,
        }
    );
    assert_eq!((fake.hits("POST", "/fapi/v1/order"), fake.hits("GET", "/fapi/v1/order")), (1, 0));
    assert_eq!(fake.orders_with("m-1"), 1);
    // Query by the same id gives the same order.
    assert_eq!(client(&base).query_order("btcusdt", "m-1").await.unwrap(), ack);
}

#[tokio::test]
async fn a_limit_order_rests_and_a_long_id_is_hashed() {
    let (fake, base) = start_fake().await;
    let long_id = "intent:2024-06-01T12:00:00Z:BTCUSDT:ensemble-v2:long:0001";
    let order = NewOrder::limit("BTCUSDT", OrderSide::Sell, 0.002, 60_000.5, long_id);
    let ack = client(&base).place_order(&order).await.unwrap();
    let sent = client_order_id(long_id);
    assert!(sent.starts_with("tf-") && sent.len() == 35, "{sent}");
    assert_eq!(ack.client_order_id, sent);
    assert_eq!(
        (ack.status, ack.side, ack.executed_qty, ack.avg_price),
        (OrderStatus::New, OrderSide::Sell, 0.0, Some(0.0))
    );
    assert_eq!(fake.orders_with(&sent), 1);
    // The caller's id finds it.
    assert_eq!(client(&base).query_order("BTCUSDT", long_id).await.unwrap().order_id, ack.order_id);
}

#[tokio::test]
async fn an_answer_without_avg_price_and_cum_quote_parses() {
    let (fake, base) = start_fake().await;
    fake.omit_avg_price.store(true, Ordering::SeqCst);
    let ack = client(&base).place_order(&btc_market("no-avg")).await.unwrap();
    assert_eq!((ack.status, ack.executed_qty, ack.avg_price, ack.cum_quote), (OrderStatus::Filled, 0.01, None, None));
}

#[tokio::test]
async fn a_post_that_times_out_after_placing_is_found_not_placed_again() {
    let (fake, base) = start_fake().await;
    fake.stall_after_placing_ms.store(2000, Ordering::SeqCst); // the client gives up after 500 ms
    let ack = client(&base).place_order(&btc_market("stall-1")).await.unwrap();
    assert_eq!((ack.client_order_id.as_str(), ack.status, ack.order_id), ("stall-1", OrderStatus::Filled, 1000));
    // One POST, then a lookup that found it; a blind re-POST would have made a second (filled) order.
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 1);
    assert_eq!(fake.hits("GET", "/fapi/v1/order"), 1);
    assert_eq!(fake.orders_with("stall-1"), 1);
    assert_eq!(fake.orders.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn two_503s_then_success_make_one_order() {
    let (fake, base) = start_fake().await;
    fake.posts_503.store(2, Ordering::SeqCst);
    let ack = client(&base).place_order(&btc_market("flaky-1")).await.unwrap();
    assert_eq!(ack.status, OrderStatus::Filled);
    // POST 503, lookup -2013, POST 503, lookup -2013, POST ok.
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 3);
    assert_eq!(fake.hits("GET", "/fapi/v1/order"), 2);
    assert_eq!(fake.orders_with("flaky-1"), 1);
}

#[tokio::test]
async fn a_repost_refused_as_duplicate_returns_the_existing_order() {
    let (fake, base) = start_fake().await;
    // The POST places a resting order but its answer is lost; the lookup misses it (in flight),
    // so the client re-POSTs with the same id; Binance refuses it (-4116) and the client fetches it.
    fake.stall_after_placing_ms.store(2000, Ordering::SeqCst);
    fake.lookups_lost.store(1, Ordering::SeqCst);
    let order = NewOrder::limit("BTCUSDT", OrderSide::Buy, 0.01, 40_000.0, "dup-1");
    let ack = client(&base).place_order(&order).await.unwrap();
    assert_eq!((ack.client_order_id.as_str(), ack.status, ack.order_id), ("dup-1", OrderStatus::New, 1000));
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 2);
    assert_eq!(fake.hits("GET", "/fapi/v1/order"), 2);
    assert_eq!(fake.orders_with("dup-1"), 1);
}

#[tokio::test]
async fn endless_503s_exhaust_the_retries() {
    let (fake, base) = start_fake().await;
    fake.posts_503.store(100, Ordering::SeqCst);
    let e = client(&base).place_order(&btc_market("down-1")).await.unwrap_err();
    let FuturesError::RetriesExhausted { attempts, last } = &e else { panic!("{e:?}") };
    assert_eq!(*attempts, 4); // the first try and max_retries = 3 retries
    assert!(matches!(**last, FuturesError::Http { status: 503, .. }), "{last:?}");
    assert!(e.outcome_unknown());
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 4);
    assert_eq!(fake.hits("GET", "/fapi/v1/order"), 3);
    assert_eq!(fake.orders.lock().unwrap().len(), 0);
    assert_clean(&e, &fake);
}

#[tokio::test]
async fn insufficient_margin_is_typed_and_not_retried() {
    let (fake, base) = start_fake().await;
    let e = client(&base).place_order(&NewOrder::market("BTCUSDT", OrderSide::Buy, 10.0, "big-1")).await.unwrap_err();
    assert!(matches!(e, FuturesError::MarginInsufficient { .. }), "{e:?}");
    assert!(e.to_string().contains("margin is insufficient"), "{e}");
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 1);
    assert_eq!(fake.hits("GET", "/fapi/v1/order"), 0);
    assert_eq!(fake.orders.lock().unwrap().len(), 0);
    assert_clean(&e, &fake);
}

#[tokio::test]
async fn order_refusals_are_typed() {
    let (fake, base) = start_fake().await;
    let c = client(&base);
    let e = c.place_order(&NewOrder::market("BTCUSDT", OrderSide::Buy, 0.0001, "tiny")).await.unwrap_err();
    assert!(matches!(e, FuturesError::Precision { .. }), "{e:?}");
    let e = c.place_order(&NewOrder::market("BTCUSDT", OrderSide::Buy, 0.00001, "tiny")).await.unwrap_err();
    assert!(matches!(e, FuturesError::Precision { .. }), "{e:?}");
    let e = c.place_order(&NewOrder::limit("BTCUSDT", OrderSide::Buy, 0.001, 1.0, "cheap")).await.unwrap_err();
    assert!(matches!(e, FuturesError::MinNotional { .. }), "{e:?}");
    let e = c.place_order(&btc_market("ro").reduce_only()).await.unwrap_err();
    assert!(matches!(e, FuturesError::ReduceOnlyRejected { .. }), "{e:?}");
    let e = c.query_order("BTCUSDT", "never-placed").await.unwrap_err();
    assert!(matches!(e, FuturesError::OrderNotFound { .. }), "{e:?}");
    // Refused locally: nothing sent.
    let before = fake.hits("POST", "/fapi/v1/order");
    let e = c.place_order(&NewOrder::market("BTCUSDT", OrderSide::Buy, -1.0, "neg")).await.unwrap_err();
    assert!(matches!(e, FuturesError::InvalidRequest(_)), "{e:?}");
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), before);
    assert_eq!(before, 4);
    assert_eq!(fake.orders.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn clock_skew_and_invalid_symbol_are_mapped() {
    let (fake, base) = start_fake().await;
    let late = client(&base).with_clock(|| now_ms() - 60_000);
    let e = late.place_order(&btc_market("skew-1")).await.unwrap_err();
    assert!(matches!(e, FuturesError::ClockSkew { .. }), "{e:?}");
    assert!(e.to_string().contains("recv_window_ms"), "{e}");
    let e = client(&base).place_order(&NewOrder::market("FOOUSDT", OrderSide::Buy, 1.0, "sym-1")).await.unwrap_err();
    assert!(matches!(e, FuturesError::InvalidSymbol { .. }), "{e:?}");
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 2);
    assert_eq!(fake.orders.lock().unwrap().len(), 0);
    assert_clean(&e, &fake);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_retries() {
    let (fake, base) = start_fake().await;
    fake.rate_limits.store(1, Ordering::SeqCst);
    let started = Instant::now();
    let ack = client(&base).place_order(&btc_market("rl-1")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(ack.status, OrderStatus::Filled);
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // Rate-limited requests never reach the engine: re-POSTed directly, no lookup.
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 2);
    assert_eq!(fake.hits("GET", "/fapi/v1/order"), 0);
    assert_eq!(fake.orders_with("rl-1"), 1);
}

#[tokio::test]
async fn leverage_and_margin_type() {
    let (fake, base) = start_fake().await;
    let c = client(&base);
    assert_eq!(c.set_leverage("btcusdt", 5).await.unwrap(), 5);
    assert_eq!(fake.leverage.lock().unwrap().get("BTCUSDT"), Some(&5));
    let e = c.set_leverage("BTCUSDT", 200).await.unwrap_err();
    assert!(matches!(e, FuturesError::InvalidLeverage { .. }), "{e:?}");
    assert!(e.to_string().contains("Leverage 200 is not valid"), "{e}");

    c.set_margin_type("BTCUSDT", MarginType::Isolated).await.unwrap();
    assert_eq!(fake.margin_type.lock().unwrap().get("BTCUSDT").map(String::as_str), Some("ISOLATED"));
    // Again: Binance answers -4046 "No need to change margin type.", which is success.
    c.set_margin_type("BTCUSDT", MarginType::Isolated).await.unwrap();
    // CROSSED is the fake's initial mode for ETHUSDT: -4046 too.
    c.set_margin_type("ETHUSDT", MarginType::Crossed).await.unwrap();
    assert_eq!(fake.hits("POST", "/fapi/v1/marginType"), 3);
    assert_eq!(fake.hits("POST", "/fapi/v1/leverage"), 2);
    // With leverage 5, 0.15 BTC (7500 USDT notional, 1500 margin) is more than the fake's 1000.
    let e = c.place_order(&NewOrder::market("BTCUSDT", OrderSide::Buy, 0.15, "lev-1")).await.unwrap_err();
    assert!(matches!(e, FuturesError::MarginInsufficient { .. }), "{e:?}");
}

#[tokio::test]
async fn a_wrong_secret_gives_invalid_signature() {
    let (fake, base) = start_fake().await;
    let wrong = "another-secret-that-is-not-the-right-one";
    let c = FuturesClient::with_credentials(&config(&base), Credentials::new(API_KEY, wrong)).unwrap();
    let e = c.place_order(&btc_market("sig-1")).await.unwrap_err();
    assert!(matches!(e, FuturesError::InvalidSignature { .. }), "{e:?}");
    assert!(e.to_string().contains("signature is invalid"), "{e}");
    assert!(!e.to_string().contains(wrong) && !format!("{e:?}").contains(wrong));
    assert_eq!(fake.hits("POST", "/fapi/v1/order"), 1);
    assert_eq!(fake.signatures.lock().unwrap().len(), 1);
    assert_clean(&e, &fake);

    let c = FuturesClient::with_credentials(&config(&base), Credentials::new("wrong-key", SECRET)).unwrap();
    let e = c.set_leverage("BTCUSDT", 3).await.unwrap_err();
    assert!(matches!(e, FuturesError::InvalidApiKey { code: -2015, .. }), "{e:?}");
}

#[tokio::test]
async fn secrets_never_show() {
    let (fake, base) = start_fake().await;
    let c = client(&base);
    let debug = format!("{c:?}");
    assert!(!debug.contains(SECRET) && !debug.contains(API_KEY), "{debug}");
    assert!(debug.contains("***") && debug.contains(&base), "{debug}");

    // Errors after a timeout and after connection failures.
    fake.stall_after_placing_ms.store(2000, Ordering::SeqCst);
    let quick = FuturesConfig { max_retries: 0, ..config(&base) };
    let c0 = FuturesClient::with_credentials(&quick, Credentials::new(API_KEY, SECRET)).unwrap();
    let e = c0.place_order(&btc_market("t-1")).await.unwrap_err();
    let FuturesError::RetriesExhausted { attempts: 1, last } = &e else { panic!("{e:?}") };
    assert!(matches!(**last, FuturesError::Timeout { .. }), "{last:?}");
    assert_clean(&e, &fake);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let c1 = FuturesClient::with_credentials(
        &FuturesConfig { max_retries: 1, ..config(&closed_url) },
        Credentials::new(API_KEY, SECRET),
    )
    .unwrap();
    let e = c1.set_leverage("BTCUSDT", 2).await.unwrap_err();
    let FuturesError::RetriesExhausted { attempts: 2, last } = &e else { panic!("{e:?}") };
    assert!(matches!(**last, FuturesError::Transport(_)), "{last:?}");
    assert_clean(&e, &fake);
    let e = c1.place_order(&btc_market("closed-1")).await.unwrap_err();
    let FuturesError::RetriesExhausted { attempts: 2, last } = &e else { panic!("{e:?}") };
    assert!(matches!(**last, FuturesError::Transport(_)), "{last:?}");
    assert!(e.to_string().contains("connection to Binance failed"), "{e}");
    assert_clean(&e, &fake);
}

#[test]
fn keys_come_from_the_environment_by_name() {
    // PATH is set wherever tests run: use it as a stand-in credential (no env mutation needed).
    let path = std::env::var("PATH").unwrap();
    let config = FuturesConfig { api_key_env: "PATH".into(), secret_env: "PATH".into(), ..FuturesConfig::default() };
    let c = FuturesClient::new(&config).unwrap();
    assert_eq!(c.base_url(), "https://fapi.binance.com");
    let debug = format!("{c:?}");
    assert!(!debug.contains(&path), "{debug}");

    let missing = FuturesConfig { secret_env: "TRADEFLOW_TEST_UNSET_SECRET_VAR".into(), ..config };
    let e = FuturesClient::new(&missing).unwrap_err();
    assert!(
        matches!(&e, FuturesError::MissingCredential { var, .. } if var == "TRADEFLOW_TEST_UNSET_SECRET_VAR"),
        "{e:?}"
    );
    assert!(!e.to_string().contains(&path));

    let bad = FuturesConfig { recv_window_ms: 0, timeout: Duration::ZERO, ..FuturesConfig::default() };
    let FuturesError::Config(problems) = FuturesClient::new(&bad).unwrap_err() else { panic!() };
    assert_eq!(problems.len(), 2, "{problems:?}");
    let testnet = FuturesConfig { testnet: true, ..FuturesConfig::default() };
    assert_eq!(testnet.effective_base_url(), "https://testnet.binancefuture.com");
}

/// A reduce-only stop for 0.01 BTC; `id` is the caller's id (sent through `client_order_id`).
fn btc_stop(id: &str) -> NewAlgoOrder {
    NewAlgoOrder::stop_market("BTCUSDT", OrderSide::Sell, 0.01, 48_000.0, id)
}

#[tokio::test]
async fn the_order_endpoint_refuses_conditional_types_with_4120() {
    let (fake, base) = start_fake().await;
    // What this client sent before 2025-12-09, signed and sent by hand (NewOrder can no longer
    // express it): Binance refuses it with -4120, typed with a reason that says where to go.
    let unsigned = format!(
        "symbol=BTCUSDT&side=SELL&type=STOP_MARKET&quantity=0.01&stopPrice=48000&workingType=MARK_PRICE\
         &reduceOnly=true&newClientOrderId=old-sl&newOrderRespType=RESULT&recvWindow=5000&timestamp={}",
        now_ms()
    );
    let url = format!("{base}/fapi/v1/order?{unsigned}&signature={}", sign(SECRET, &unsigned, ""));
    let response = reqwest::Client::new().post(url).header("X-MBX-APIKEY", API_KEY).send().await.unwrap();
    let status = response.status().as_u16();
    let e = FuturesError::from_response(status, &response.text().await.unwrap(), None);
    assert!(matches!(e, FuturesError::ConditionalNeedsAlgoApi { .. }), "{e:?}");
    assert_eq!(e.code(), Some(-4120));
    assert!(e.to_string().contains("Algo Order API (POST /fapi/v1/algoOrder)"), "{e}");
    assert_eq!(fake.orders.lock().unwrap().len(), 0);
    assert_eq!(fake.algos.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn an_algo_order_is_placed_looked_up_listed_and_cancelled() {
    let (fake, base) = start_fake().await;
    let c = client(&base);
    // A caller id too long for Binance goes out hashed, like a client order id.
    let id = "csv:BTCUSDT:1h:2024-06-01T12:00:00Z/profile-a/live:sl";
    let sent = client_order_id(id);
    let ack = c.place_algo_order(&btc_stop(id)).await.unwrap();
    assert_eq!((ack.client_algo_id.as_str(), ack.status.clone()), (sent.as_str(), AlgoStatus::New));
    assert_eq!((ack.symbol.as_str(), ack.side, ack.order_type.as_str()), ("BTCUSDT", OrderSide::Sell, "STOP_MARKET"));
    assert_eq!((ack.quantity, ack.actual_order_id), (Some(0.01), None));
    assert_eq!((fake.hits("POST", "/fapi/v1/algoOrder"), fake.hits("POST", "/fapi/v1/order")), (1, 0));
    // Looked up by the caller's id or the one sent.
    assert_eq!(c.query_algo_order(id).await.unwrap(), ack);
    assert_eq!(c.query_algo_order(&sent).await.unwrap().algo_id, ack.algo_id);
    let open = c.open_algo_orders("btcusdt").await.unwrap();
    assert_eq!(open.iter().map(|a| a.algo_id).collect::<Vec<_>>(), [ack.algo_id]);
    assert!(c.open_algo_orders("ETHUSDT").await.unwrap().is_empty());
    // Cancelled once; a second cancel is harmless.
    assert_eq!(c.cancel_algo_order(id).await.unwrap(), Some(ack.algo_id));
    assert_eq!(c.cancel_algo_order(id).await.unwrap(), None);
    assert_eq!(c.query_algo_order(id).await.unwrap().status, AlgoStatus::Canceled);
    assert!(c.open_algo_orders("BTCUSDT").await.unwrap().is_empty());
    // Unknown ids.
    let e = c.query_algo_order("never-placed").await.unwrap_err();
    assert!(matches!(e, FuturesError::OrderNotFound { .. }), "{e:?}");
    assert_eq!(c.cancel_algo_order("never-placed").await.unwrap(), None);
    assert_eq!(fake.algos_with(&sent), 1);
}

#[tokio::test]
async fn a_triggered_algo_order_leads_to_its_fill() {
    let (fake, base) = start_fake().await;
    let c = client(&base);
    c.place_algo_order(&btc_stop("fire-sl")).await.unwrap();
    let order_id = fake.trigger("fire-sl");
    let algo = c.query_algo_order("fire-sl").await.unwrap();
    assert_eq!((algo.status.clone(), algo.actual_order_id), (AlgoStatus::Finished, Some(order_id)));
    assert!(algo.status.has_fired() && !algo.status.is_waiting());
    let fill = c.query_order_by_id("BTCUSDT", order_id).await.unwrap();
    assert_eq!(
        (fill.status, fill.side, fill.executed_qty, fill.avg_price),
        (OrderStatus::Filled, OrderSide::Sell, 0.01, Some(BTC_PRICE))
    );
    // No longer open: cancelling finds nothing.
    assert_eq!(c.cancel_algo_order("fire-sl").await.unwrap(), None);
}

#[tokio::test]
async fn an_algo_post_that_times_out_after_placing_is_found_not_placed_again() {
    let (fake, base) = start_fake().await;
    fake.stall_after_algo_ms.store(2000, Ordering::SeqCst); // the client gives up after 500 ms
    let ack = client(&base).place_algo_order(&btc_stop("stall-sl")).await.unwrap();
    assert_eq!((ack.client_algo_id.as_str(), ack.status), ("stall-sl", AlgoStatus::New));
    // One POST, then a lookup by clientAlgoId that found it.
    assert_eq!(fake.hits("POST", "/fapi/v1/algoOrder"), 1);
    assert_eq!(fake.hits("GET", "/fapi/v1/algoOrder"), 1);
    assert_eq!(fake.algos_with("stall-sl"), 1);
}

#[tokio::test]
async fn a_retry_after_an_unknown_outcome_never_places_a_second_algo_order() {
    let (fake, base) = start_fake().await;
    // The first call times out with no retries left: Binance has the order, the caller does
    // not know it.
    fake.stall_after_algo_ms.store(2000, Ordering::SeqCst);
    let once = FuturesConfig { max_retries: 0, ..config(&base) };
    let c0 = FuturesClient::with_credentials(&once, Credentials::new(API_KEY, SECRET)).unwrap();
    let e = c0.place_algo_order(&btc_stop("lost-sl")).await.unwrap_err();
    assert!(e.outcome_unknown(), "{e:?}");
    assert_clean(&e, &fake);
    // It fires meanwhile, so its clientAlgoId is free again at Binance.
    let order_id = fake.trigger("lost-sl");
    // The retry looks first and finds it: no second order.
    let ack = client(&base).resume_algo_order(&btc_stop("lost-sl")).await.unwrap();
    assert_eq!((ack.status, ack.actual_order_id), (AlgoStatus::Finished, Some(order_id)));
    assert_eq!(fake.hits("POST", "/fapi/v1/algoOrder"), 1);
    assert_eq!(fake.algos_with("lost-sl"), 1);
    // What a blind re-POST would have done (why the retry looks first): a second order.
    client(&base).place_algo_order(&btc_stop("lost-sl")).await.unwrap();
    assert_eq!(fake.algos_with("lost-sl"), 2);
    // A resume of an order never placed places it.
    let ack = client(&base).resume_algo_order(&btc_stop("fresh-sl")).await.unwrap();
    assert_eq!(ack.status, AlgoStatus::New);
    assert_eq!(fake.algos_with("fresh-sl"), 1);
}

#[tokio::test]
async fn an_algo_repost_refused_as_duplicate_returns_the_existing_one() {
    let (fake, base) = start_fake().await;
    // The POST places it but the answer is lost; the lookup misses it (in flight); the re-POST
    // is refused as a duplicate and the client fetches the one that exists.
    fake.stall_after_algo_ms.store(2000, Ordering::SeqCst);
    fake.algo_lookups_lost.store(1, Ordering::SeqCst);
    let ack = client(&base).place_algo_order(&btc_stop("dup-sl")).await.unwrap();
    assert_eq!((ack.client_algo_id.as_str(), ack.status), ("dup-sl", AlgoStatus::New));
    assert_eq!(fake.hits("POST", "/fapi/v1/algoOrder"), 2);
    assert_eq!(fake.hits("GET", "/fapi/v1/algoOrder"), 2);
    assert_eq!(fake.algos_with("dup-sl"), 1);
}

#[tokio::test]
async fn algo_request_shapes_are_what_binance_documents() {
    let (fake, base) = start_fake().await;
    let c = client(&base);
    // The fake refuses any parameter the endpoint does not document (-1104): these pass.
    c.place_algo_order(&NewAlgoOrder::take_profit_market("BTCUSDT", OrderSide::Sell, 0.01, 60_000.0, "tp"))
        .await
        .unwrap();
    c.place_algo_order(&NewAlgoOrder::trailing_stop_market("ETHUSDT", OrderSide::Buy, 0.5, 1.5, "ts")).await.unwrap();
    assert_eq!(fake.algos.lock().unwrap().len(), 2);
    // Refused locally: nothing sent.
    let wide = NewAlgoOrder::trailing_stop_market("BTCUSDT", OrderSide::Sell, 0.01, 25.0, "ts2");
    assert!(matches!(c.place_algo_order(&wide).await.unwrap_err(), FuturesError::InvalidRequest(_)));
    assert_eq!(fake.hits("POST", "/fapi/v1/algoOrder"), 2);
}
