//! A local fake of Binance spot's `GET /api/v3/klines` (feature `binance`): klines per
//! (symbol, interval) served as Binance serves them (open time in `[startTime, endTime]`, at
//! most `limit`, oldest first; `-1121` for an unknown symbol), with scripted failures and
//! delays. The ingest crate's source tests and the datasets' downloads run against this one
//! fake, so that both are tested against the same wire format. Nothing leaves 127.0.0.1.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Response, Uri};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tradeflow_core::market::{Interval, RawBar};

/// 2023-11-14T22:00:00Z: a whole hour (and a whole week's multiple of minutes), long past, so
/// every bar from here is closed.
pub const T0: i64 = 1_699_999_200_000;

/// The decimal strings of bar `n` (open, high, low, close, volume): a valid bar.
pub fn prices(n: i64) -> [String; 5] {
    let base = 20_000 + n % 97;
    [
        format!("{base}.{:02}", n % 100),
        format!("{}.99000000", base + 1),
        format!("{}.01000000", base - 1),
        format!("{base}.{:02}", (n * 7) % 100),
        format!("{}.{:08}", n % 13, (n * 12_345) % 100_000_000),
    ]
}

/// The bar a client must read from bar `n` served at open time `t`.
pub fn expected_raw(t: i64, n: i64) -> RawBar {
    let p = prices(n);
    let f = |s: &String| s.parse::<f64>().unwrap_or(f64::NAN);
    RawBar { open_time: t, open: f(&p[0]), high: f(&p[1]), low: f(&p[2]), close: f(&p[3]), volume: f(&p[4]) }
}

/// A REST kline row of bar `n` at open time `t` (interval `iv` ms), all 12 fields.
pub fn rest_row(t: i64, iv: i64, n: i64) -> Value {
    let [o, h, l, c, v] = prices(n);
    json!([t, o, h, l, c, v, t + iv - 1, "12345.678", 42, "1.5", "30000.1", "0"])
}

/// What the next request gets instead of a normal answer.
pub enum Scripted {
    /// Answer with this status (and `Retry-After` seconds) instead of serving.
    Status { status: u16, retry_after: Option<u64>, body: &'static str },
    /// Serve normally, after this delay.
    Delay(Duration),
}

/// The fake market's state, shared with the test through [`Shared`].
#[derive(Default)]
pub struct Market {
    /// (SYMBOL, interval) → open time → row.
    pub klines: HashMap<(String, String), BTreeMap<i64, Value>>,
    /// One entry per request, first come first served.
    pub script: VecDeque<Scripted>,
    /// Query strings of the klines requests, in order.
    pub requests: Vec<String>,
    /// `X-MBX-USED-WEIGHT-1M` to report.
    pub weight: u64,
    /// Every request is answered this much later (a slow link, for tests that stop a client
    /// half-way).
    pub delay: Option<Duration>,
}

pub type Shared = Arc<Mutex<Market>>;

impl Market {
    /// Bar `k` of a series: open time `T0 + k × interval`.
    pub fn add(&mut self, symbol: &str, interval: Interval, k: i64) {
        let iv = interval.millis();
        let t = T0 + k * iv;
        self.klines.entry((symbol.into(), interval.to_string())).or_default().insert(t, rest_row(t, iv, k));
    }
}

/// The value of query parameter `name`.
pub fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn respond(status: u16, weight: u64, retry_after: Option<u64>, body: String) -> Response<Body> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json;charset=UTF-8")
        .header("x-mbx-used-weight-1m", weight.to_string());
    if let Some(s) = retry_after {
        r = r.header("retry-after", s.to_string());
    }
    r.body(Body::from(body)).unwrap_or_else(|_| Response::new(Body::empty()))
}

/// `GET /api/v3/klines` as Binance answers it.
async fn klines(State(market): State<Shared>, uri: Uri) -> Response<Body> {
    let query = uri.query().unwrap_or_default().to_string();
    let (scripted, weight, delay) = {
        let mut m = market.lock().unwrap_or_else(|e| e.into_inner());
        m.requests.push(query.clone());
        (m.script.pop_front(), m.weight, m.delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match scripted {
        Some(Scripted::Status { status, retry_after, body }) => {
            return respond(status, weight, retry_after, body.into());
        }
        Some(Scripted::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let number = |name: &str, default: i64| param(&query, name).map_or(Some(default), |v| v.parse().ok());
    let (Some(start), Some(end), Some(limit)) =
        (number("startTime", 0), number("endTime", i64::MAX), number("limit", 500))
    else {
        return respond(400, weight, None, r#"{"code":-1100,"msg":"Illegal characters found in a parameter."}"#.into());
    };
    let symbol = param(&query, "symbol").unwrap_or_default().to_string();
    let interval = param(&query, "interval").unwrap_or_default().to_string();
    let m = market.lock().unwrap_or_else(|e| e.into_inner());
    let Some(rows) = m.klines.get(&(symbol, interval)) else {
        return respond(400, weight, None, r#"{"code":-1121,"msg":"Invalid symbol."}"#.into());
    };
    let page: Vec<&Value> = rows.range(start..=end).map(|(_, r)| r).take(limit.max(0) as usize).collect();
    respond(200, weight, None, serde_json::to_string(&page).unwrap_or_default())
}

/// Serves `market` on a free loopback port; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve_rest(market: Shared) -> String {
    let app = Router::new().route("/api/v3/klines", get(klines)).with_state(market);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port for the fake Binance");
    let addr = listener.local_addr().expect("the fake Binance's address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}
