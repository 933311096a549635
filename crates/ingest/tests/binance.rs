//! The Binance klines source against local fakes that speak Binance's wire formats: the REST
//! server of `tradeflow_testkit::binance` for `GET /api/v3/klines` and a WebSocket server
//! (tokio-tungstenite) for the combined kline stream. Nothing leaves 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as WsResponse};
use tokio_util::sync::CancellationToken;
use tradeflow_bus::{Producer, Topology};
use tradeflow_core::market::{Candle, CandleRefused, Interval, RefusalKind};
use tradeflow_core::time::now_ms;
use tradeflow_ingest::IngestStage;
use tradeflow_ingest::binance::{
    BinanceConfig, BinanceError, BinanceItem, BinanceSeries, BinanceSource, BinanceStats, PageItem, RestClient,
    run_binance,
};
use tradeflow_ingest::replay::IngestMetrics;
use tradeflow_ingest::stage::IngestEvent;
use tradeflow_testkit::TestRedis;
use tradeflow_testkit::binance::{Scripted, Shared, T0, expected_raw, param, prices, rest_row, serve_rest};

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

// ---------------------------------------------------------------------------------------------
// The fake market (tradeflow_testkit::binance): klines per (symbol, interval), served by REST
// there and by the WebSocket below alike.

/// A WebSocket server: `handler(connection number, socket)` for every connection; the request
/// paths are recorded.
async fn serve_ws<F, Fut>(paths: Arc<Mutex<Vec<String>>>, handler: F) -> String
where
    F: Fn(usize, WebSocketStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        for n in 0.. {
            let (tcp, _) = listener.accept().await.unwrap();
            let paths = paths.clone();
            // The callback's signature is tungstenite's (its error type is an HTTP response).
            #[allow(clippy::result_large_err)]
            let record = move |req: &Request, resp: WsResponse| {
                paths.lock().unwrap().push(req.uri().to_string());
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else { continue };
            tokio::spawn(handler(n, ws));
        }
    });
    format!("ws://{addr}")
}

/// A combined-stream kline event of bar `k`; an update (`closed` false) has another close.
fn ws_event(symbol: &str, interval: Interval, k: i64, closed: bool) -> Message {
    let iv = interval.millis();
    let t = T0 + k * iv;
    let [o, h, l, c, v] = prices(k);
    let c = if closed { c } else { l.clone() };
    let text = json!({
        "stream": format!("{}@kline_{interval}", symbol.to_ascii_lowercase()),
        "data": {"e": "kline", "E": t + iv, "s": symbol, "k": {
            "t": t, "T": t + iv - 1, "s": symbol, "i": interval.to_string(), "f": 100, "L": 200,
            "o": o, "c": c, "h": h, "l": l, "v": v, "n": 100, "x": closed,
            "q": "1.0", "V": "0.5", "Q": "0.6", "B": "0"
        }}
    });
    Message::Text(text.to_string().into())
}

/// Reads until the client goes away.
async fn hold(mut ws: WebSocketStream<TcpStream>) {
    while let Some(Ok(_)) = ws.next().await {}
}

fn fast_config(rest_url: &str, ws_url: &str, series: &[(&str, Interval)]) -> BinanceConfig {
    let mut c = BinanceConfig::new(series.iter().map(|(s, i)| BinanceSeries::new(s, *i)));
    c.rest_url = rest_url.into();
    c.ws_url = ws_url.into();
    c.request_timeout = Duration::from_secs(2);
    c.retry_backoff = Duration::from_millis(10);
    c.retry_backoff_max = Duration::from_millis(50);
    c.reconnect_backoff = Duration::from_millis(20);
    c.reconnect_backoff_max = Duration::from_millis(100);
    c.weight_pause_max = Duration::from_millis(100);
    c
}

fn client(config: &BinanceConfig) -> (RestClient, Arc<BinanceStats>) {
    let stats = Arc::new(BinanceStats::default());
    (RestClient::new(config, stats.clone()).unwrap(), stats)
}

async fn all_pages(
    client: &RestClient,
    symbol: &str,
    interval: Interval,
    from: i64,
    to: i64,
) -> Result<Vec<PageItem>, BinanceError> {
    let mut pages = client.pages(symbol, interval, from, to);
    let mut items = Vec::new();
    while let Some(page) = pages.next_page().await? {
        items.extend(page);
    }
    Ok(items)
}

fn n(stats: &std::sync::atomic::AtomicU64) -> u64 {
    stats.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// REST

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_backfill_pages_through_2500_closed_klines_and_keeps_the_rows_around_a_bad_one() {
    let market: Shared = Arc::default();
    {
        let mut m = market.lock().unwrap();
        for k in 0..2_500 {
            m.add("BTCUSDT", Interval::M1, k);
        }
        // A malformed row in the middle of the second page.
        let t = T0 + 1_234 * MIN;
        let row = m.klines.get_mut(&("BTCUSDT".into(), "1m".into())).unwrap().get_mut(&t).unwrap();
        row[2] = json!("abc");
        // And the bar forming right now: not closed, never a bar.
        let now = now_ms() / MIN * MIN;
        m.klines.get_mut(&("BTCUSDT".into(), "1m".into())).unwrap().insert(now, rest_row(now, MIN, 7));
    }
    let url = serve_rest(market.clone()).await;
    let config = fast_config(&url, "ws://unused", &[("BTCUSDT", Interval::M1)]);
    let (client, stats) = client(&config);
    let items = all_pages(&client, "BTCUSDT", Interval::M1, T0, i64::MAX).await.unwrap();

    assert_eq!(items.len(), 2_500, "2,499 bars and 1 malformed row; the forming bar is left out");
    let mut bars = Vec::new();
    for (k, item) in items.iter().enumerate() {
        let t = T0 + k as i64 * MIN;
        match item {
            PageItem::Bar(kline) => {
                assert_eq!(kline.raw, expected_raw(t, k as i64), "bar {k}");
                assert_eq!(kline.close_time, t + MIN - 1);
                bars.push(kline.raw);
            }
            PageItem::Malformed { open_time, reason } => {
                assert_eq!(k, 1_234);
                assert_eq!(*open_time, Some(t));
                assert!(reason.contains(r#"field 2 (high): "abc" is not a number"#), "{reason}");
                assert!(reason.contains("BTCUSDT 1m"), "{reason}");
            }
        }
    }
    assert_eq!(bars.len(), 2_499);
    // The strings, parsed exactly: "20000.00", "20001.99000000", ...
    assert_eq!((bars[0].open, bars[0].high, bars[0].low, bars[0].close), (20_000.0, 20_001.99, 19_999.01, 20_000.0));
    assert_eq!(bars[1].volume, 1.000_123_45);

    let requests = market.lock().unwrap().requests.clone();
    let starts: Vec<&str> = requests.iter().map(|q| param(q, "startTime").unwrap()).collect();
    assert_eq!(starts, [T0.to_string(), (T0 + 1_000 * MIN).to_string(), (T0 + 2_000 * MIN).to_string()]);
    assert!(requests.iter().all(|q| param(q, "limit") == Some("1000") && param(q, "interval") == Some("1m")));
    assert_eq!((n(&stats.rest_requests), n(&stats.rest_retries)), (3, 0));

    // Through the stage: a refusal for the bad row, a candle for every other.
    let mut stage = IngestStage::new(&[]).unwrap();
    let mut candles = 0;
    let mut refusals = Vec::new();
    for item in &items {
        let item = match item {
            PageItem::Bar(k) => BinanceItem::Bar { symbol: "BTCUSDT".into(), interval: Interval::M1, raw: k.raw },
            PageItem::Malformed { reason, .. } => {
                BinanceItem::Malformed { symbol: "BTCUSDT".into(), interval: Interval::M1, reason: reason.clone() }
            }
        };
        for event in item.feed(&mut stage) {
            match event {
                IngestEvent::Candle(_) => candles += 1,
                IngestEvent::Refused(r) => refusals.push(r),
            }
        }
    }
    assert_eq!(candles, 2_499);
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].kind, RefusalKind::Malformed);
    assert!(refusals[0].reason.contains("field 2 (high)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_retries_429_after_retry_after_and_5xx_and_timeouts_but_not_400() {
    let market: Shared = Arc::default();
    for k in 0..3 {
        market.lock().unwrap().add("BTCUSDT", Interval::H1, k);
    }
    let url = serve_rest(market.clone()).await;
    let mut config = fast_config(&url, "ws://unused", &[("BTCUSDT", Interval::H1)]);
    config.request_timeout = Duration::from_millis(300);
    config.max_retries = 3;
    let (client, stats) = client(&config);
    let script = |s: Vec<Scripted>| {
        let mut m = market.lock().unwrap();
        m.script = s.into();
        m.requests.clear();
    };
    let bars = |items: Vec<PageItem>| items.iter().filter(|i| matches!(i, PageItem::Bar(_))).count();

    // 429 with Retry-After: 1, then success.
    script(vec![Scripted::Status {
        status: 429,
        retry_after: Some(1),
        body: r#"{"code":-1003,"msg":"Too many requests."}"#,
    }]);
    let started = Instant::now();
    assert_eq!(bars(all_pages(&client, "BTCUSDT", Interval::H1, T0, i64::MAX).await.unwrap()), 3);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured: {:?}", started.elapsed());
    assert_eq!((market.lock().unwrap().requests.len(), n(&stats.rest_retries)), (2, 1));

    // 500 twice, then success.
    script(vec![
        Scripted::Status { status: 500, retry_after: None, body: "oops" },
        Scripted::Status { status: 500, retry_after: None, body: "oops" },
    ]);
    assert_eq!(bars(all_pages(&client, "BTCUSDT", Interval::H1, T0, i64::MAX).await.unwrap()), 3);
    assert_eq!((market.lock().unwrap().requests.len(), n(&stats.rest_retries)), (3, 3));

    // A timeout, then success.
    script(vec![Scripted::Delay(Duration::from_millis(1_000))]);
    assert_eq!(bars(all_pages(&client, "BTCUSDT", Interval::H1, T0, i64::MAX).await.unwrap()), 3);
    assert_eq!((market.lock().unwrap().requests.len(), n(&stats.rest_retries)), (2, 4));

    // 503 every time: gives up after 1 + max_retries attempts.
    script((0..10).map(|_| Scripted::Status { status: 503, retry_after: None, body: "down" }).collect());
    let e = all_pages(&client, "BTCUSDT", Interval::H1, T0, i64::MAX).await.unwrap_err();
    assert!(matches!(e, BinanceError::GaveUp { attempts: 4, .. }), "{e}");
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert!(!e.is_fatal());

    // 400: Binance's message, no retry.
    script(vec![]);
    let e = all_pages(&client, "NOPEUSDT", Interval::H1, T0, i64::MAX).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("Invalid symbol.") && text.contains("-1121") && text.contains("HTTP 400"), "{text}");
    assert!(e.is_fatal());
    assert_eq!(market.lock().unwrap().requests.len(), 1);

    // A 200 whose body is not klines.
    script(vec![Scripted::Status { status: 200, retry_after: None, body: "<html>maintenance</html>" }]);
    let e = all_pages(&client, "BTCUSDT", Interval::H1, T0, i64::MAX).await.unwrap_err();
    assert!(e.to_string().contains("not a JSON array of klines"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_pauses_when_the_used_weight_nears_the_limit() {
    let market: Shared = Arc::default();
    {
        let mut m = market.lock().unwrap();
        for k in 0..25 {
            m.add("ETHUSDT", Interval::M1, k);
        }
        m.weight = 4_900; // of 6,000: above 80 %
    }
    let url = serve_rest(market.clone()).await;
    let mut config = fast_config(&url, "ws://unused", &[("ETHUSDT", Interval::M1)]);
    config.page_limit = 10;
    let (client, stats) = client(&config);
    let items = all_pages(&client, "ETHUSDT", Interval::M1, T0, i64::MAX).await.unwrap();
    assert_eq!(items.len(), 25);
    assert_eq!(n(&stats.weight_pauses), 3, "one pause after each of the 3 pages");
    assert_eq!(n(&stats.used_weight), 4_900);

    market.lock().unwrap().weight = 4_700; // below 80 %
    let items = all_pages(&client, "ETHUSDT", Interval::M1, T0, i64::MAX).await.unwrap();
    assert_eq!(items.len(), 25);
    assert_eq!(n(&stats.weight_pauses), 3);
}

// ---------------------------------------------------------------------------------------------
// WebSocket

const SERIES: [(&str, Interval); 4] =
    [("BTCUSDT", Interval::M1), ("BTCUSDT", Interval::H1), ("ETHUSDT", Interval::M1), ("ETHUSDT", Interval::H1)];

/// Receives items until `want` bars arrived (at most `within`), then checks that nothing more
/// comes for a moment.
async fn collect_bars(rx: &mut mpsc::Receiver<BinanceItem>, want: usize, within: Duration) -> Vec<BinanceItem> {
    let deadline = tokio::time::Instant::now() + within;
    let mut items = Vec::new();
    while items.iter().filter(|i| matches!(i, BinanceItem::Bar { .. })).count() < want {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => panic!("the source stopped after {items:?}"),
            Err(_) => panic!("only {} items within {within:?}: {items:#?}", items.len()),
        }
    }
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("an item beyond the expected ones: {extra:?}");
    }
    items
}

/// Open times per series, in the order they arrived.
fn per_series(items: &[BinanceItem]) -> BTreeMap<(String, Interval), Vec<i64>> {
    let mut out: BTreeMap<(String, Interval), Vec<i64>> = BTreeMap::new();
    for item in items {
        if let BinanceItem::Bar { symbol, interval, raw } = item {
            out.entry((symbol.clone(), *interval)).or_default().push(raw.open_time);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_bars_are_the_closed_ones_and_a_dropped_connection_is_filled_by_rest_without_doubles() {
    let market: Shared = Arc::default();
    let rest_url = serve_rest(market.clone()).await;
    let pong_seen = Arc::new(AtomicBool::new(false));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (m, pong) = (market.clone(), pong_seen.clone());
    let ws_url = serve_ws(paths.clone(), move |conn, mut ws| {
        let (market, pong_seen) = (m.clone(), pong.clone());
        async move {
            match conn {
                0 => {
                    ws.send(Message::Ping(b"are you there".to_vec().into())).await.unwrap();
                    // Two bars per series: updates while they form, then the close.
                    for k in 0..2 {
                        for (symbol, interval) in SERIES {
                            ws.send(ws_event(symbol, interval, k, false)).await.unwrap();
                            ws.send(ws_event(symbol, interval, k, false)).await.unwrap();
                            market.lock().unwrap().add(symbol, interval, k);
                            ws.send(ws_event(symbol, interval, k, true)).await.unwrap();
                        }
                    }
                    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                        if let Message::Pong(payload) = frame {
                            pong_seen.store(&payload[..] == b"are you there", Ordering::SeqCst);
                            break;
                        }
                    }
                    // Three more bars close while the client is away: REST only.
                    for k in 2..5 {
                        for (symbol, interval) in SERIES {
                            market.lock().unwrap().add(symbol, interval, k);
                        }
                    }
                    // Dropped without a close frame.
                }
                1 => {
                    // The last REST-only bar again (an overlap), then two new ones.
                    for (symbol, interval) in SERIES {
                        ws.send(ws_event(symbol, interval, 4, true)).await.unwrap();
                    }
                    for k in 5..7 {
                        for (symbol, interval) in SERIES {
                            ws.send(ws_event(symbol, interval, k, false)).await.unwrap();
                            market.lock().unwrap().add(symbol, interval, k);
                            ws.send(ws_event(symbol, interval, k, true)).await.unwrap();
                        }
                    }
                    hold(ws).await;
                }
                _ => hold(ws).await,
            }
        }
    })
    .await;

    let config = fast_config(&rest_url, &ws_url, &SERIES);
    let source = BinanceSource::new(config).unwrap();
    let stats = source.stats();
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(tx, shutdown.clone()));

    let items = collect_bars(&mut rx, 7 * SERIES.len(), Duration::from_secs(8)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // Every bar has its closed values (never those of an update) ...
    for item in &items {
        let BinanceItem::Bar { interval, raw, .. } = item else { panic!("not a bar: {item:?}") };
        let k = (raw.open_time - T0) / interval.millis();
        assert_eq!(*raw, expected_raw(raw.open_time, k), "{item:?}");
    }
    // ... and every series has 7 of them, contiguous, in order, none twice.
    let series = per_series(&items);
    assert_eq!(series.len(), 4);
    for ((symbol, interval), times) in &series {
        let expected: Vec<i64> = (0..7).map(|k| T0 + k * interval.millis()).collect();
        assert_eq!(times, &expected, "{symbol} {interval}");
    }
    assert!(pong_seen.load(Ordering::SeqCst), "the client answered the ping");
    assert_eq!(
        paths.lock().unwrap()[0],
        "/stream?streams=btcusdt@kline_1m/btcusdt@kline_1h/ethusdt@kline_1m/ethusdt@kline_1h"
    );
    assert_eq!(n(&stats.ws_connections), 2);
    assert!(n(&stats.live_bars) >= 8, "the first 2 bars of each series came live");
    assert!(n(&stats.rest_bars) >= 12, "the 3 bars of the gap came by REST: {stats:?}");
    let gap_fills: Vec<String> = market.lock().unwrap().requests.clone();
    assert!(
        gap_fills.iter().any(|q| param(q, "symbol") == Some("ETHUSDT")
            && param(q, "interval") == Some("1h")
            && param(q, "startTime") == Some(&(T0 + 2 * HOUR).to_string())),
        "{gap_fills:?}"
    );

    // Through the stage: 28 candles, no refusal, no duplicate.
    let mut stage = IngestStage::new(&[]).unwrap();
    let mut candles = HashMap::<(String, Interval), Vec<i64>>::new();
    for item in &items {
        let events = item.feed(&mut stage);
        assert_eq!(events.len(), 1, "{item:?} → {events:?}");
        let IngestEvent::Candle(c) = &events[0] else { panic!("refused: {events:?}") };
        assert_eq!(c.source, "binance");
        candles.entry((c.symbol.clone(), c.interval)).or_default().push(c.bar.open_time());
    }
    assert_eq!(candles.values().map(Vec::len).sum::<usize>(), 28);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_rotate_and_a_hole_in_the_live_stream_is_filled_by_rest() {
    let market: Shared = Arc::default();
    let rest_url = serve_rest(market.clone()).await;
    let m = market.clone();
    let ws_url = serve_ws(Arc::default(), move |conn, mut ws| {
        let market = m.clone();
        async move {
            let live = |k: i64| {
                market.lock().unwrap().add("SOLUSDT", Interval::M1, k);
                ws_event("SOLUSDT", Interval::M1, k, true)
            };
            match conn {
                0 => ws.send(live(0)).await.unwrap(),
                1 => {
                    ws.send(live(1)).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    // Bar 2 closes but its event is lost; bar 3's arrives.
                    market.lock().unwrap().add("SOLUSDT", Interval::M1, 2);
                    ws.send(live(3)).await.unwrap();
                }
                2 => ws.send(live(4)).await.unwrap(),
                _ => {}
            }
            hold(ws).await;
        }
    })
    .await;

    let mut config = fast_config(&rest_url, &ws_url, &[("solusdt", Interval::M1)]);
    config.rotate_after = Duration::from_millis(1_000);
    config.close_margin = Duration::from_secs(30); // no second fill: the hole is the live path's to find
    let source = BinanceSource::new(config).unwrap();
    let stats = source.stats();
    let (tx, mut rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(tx, shutdown.clone()));
    let items = collect_bars(&mut rx, 5, Duration::from_secs(8)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let series = per_series(&items);
    let times = &series[&("SOLUSDT".to_string(), Interval::M1)];
    assert_eq!(times, &(0..5).map(|k| T0 + k * MIN).collect::<Vec<_>>());
    assert!(n(&stats.ws_rotations) >= 2, "{stats:?}");
    assert!(n(&stats.ws_connections) >= 3, "{stats:?}");
    // The fill of the hole asks for the bars before bar 3 only.
    let requests = market.lock().unwrap().requests.clone();
    let hole = format!("startTime={}&endTime={}", T0 + 2 * MIN, T0 + 3 * MIN - 1);
    assert!(requests.iter().any(|q| q.contains(&hole)), "{hole} not among {requests:?}");
}

// ---------------------------------------------------------------------------------------------
// End to end, through a real Redis

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_live_bars_reach_md_candles_and_the_bad_row_audit_events() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let producer = Producer::new(bus.clone(), "ingest-binance-test");

    let market: Shared = Arc::default();
    {
        let mut m = market.lock().unwrap();
        for k in 0..5 {
            m.add("BTCUSDT", Interval::M1, k);
        }
        let row = m.klines.get_mut(&("BTCUSDT".into(), "1m".into())).unwrap().get_mut(&(T0 + 2 * MIN)).unwrap();
        row[4] = json!("12,5"); // close
    }
    let rest_url = serve_rest(market.clone()).await;
    let connections = Arc::new(AtomicUsize::new(0));
    let (m, conns) = (market.clone(), connections.clone());
    let ws_url = serve_ws(Arc::default(), move |_, mut ws| {
        let (market, connections) = (m.clone(), conns.clone());
        async move {
            if connections.fetch_add(1, Ordering::SeqCst) == 0 {
                for k in 5..7 {
                    ws.send(ws_event("BTCUSDT", Interval::M1, k, false)).await.unwrap();
                    market.lock().unwrap().add("BTCUSDT", Interval::M1, k);
                    ws.send(ws_event("BTCUSDT", Interval::M1, k, true)).await.unwrap();
                }
            }
            hold(ws).await;
        }
    })
    .await;

    let mut config = fast_config(&rest_url, &ws_url, &[("btcusdt", Interval::M1)]);
    config.backfill_from = Some(T0);
    let mut stage = IngestStage::new(&[(Interval::M1, Interval::M5)]).unwrap();
    let metrics = IngestMetrics::register(&prometheus::Registry::new()).unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let watcher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            // 6 one-minute candles (bar 2 is refused) and the 5-minute one built from 0..=4.
            for _ in 0..200 {
                if tradeflow_testkit::envelopes(&bus, "md.candles").await.len() >= 7 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.cancel();
        })
    };
    let report = run_binance(&producer, &mut stage, &config, &metrics, &shutdown).await.unwrap();
    watcher.await.unwrap();

    let candles: Vec<Candle> =
        tradeflow_testkit::envelopes(&bus, "md.candles").await.iter().map(|e| e.open::<Candle>().unwrap()).collect();
    let mut got: Vec<(String, Interval, i64, bool)> =
        candles.iter().map(|c| (c.symbol.clone(), c.interval, c.bar.open_time(), c.aggregated)).collect();
    got.sort();
    let mut expected: Vec<(String, Interval, i64, bool)> =
        [0, 1, 3, 4, 5, 6].iter().map(|k| ("BTCUSDT".to_string(), Interval::M1, T0 + k * MIN, false)).collect();
    expected.push(("BTCUSDT".to_string(), Interval::M5, T0, true));
    expected.sort();
    assert_eq!(got, expected);
    for c in candles.iter().filter(|c| c.interval == Interval::M1) {
        let k = (c.bar.open_time() - T0) / MIN;
        assert_eq!(c.source, "binance");
        assert_eq!(c.id().to_string(), format!("binance:BTCUSDT:1m:{}", c.bar.open_time()));
        let raw = expected_raw(c.bar.open_time(), k);
        assert_eq!((c.bar.open(), c.bar.high(), c.bar.low(), c.bar.close()), (raw.open, raw.high, raw.low, raw.close));
    }
    let refusals: Vec<CandleRefused> = tradeflow_testkit::envelopes(&bus, "audit.events")
        .await
        .iter()
        .map(|e| e.open::<CandleRefused>().unwrap())
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].kind, RefusalKind::Malformed);
    assert_eq!((refusals[0].source.as_str(), refusals[0].symbol.as_str()), ("binance", "BTCUSDT"));
    assert!(refusals[0].reason.contains(r#"field 4 (close): "12,5" is not a number"#), "{}", refusals[0].reason);
    assert_eq!((report.candles, report.aggregated, report.refused, report.duplicates), (7, 1, 1, 0), "{report:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);

    // A restarted worker resumes from md.candles, not from `backfill_from`: the 5-minute bucket
    // at 5 is not out, so its bars go again from 5 (same ids), then 7..=9 are new.
    {
        let mut m = market.lock().unwrap();
        for k in 7..10 {
            m.add("BTCUSDT", Interval::M1, k);
        }
    }
    config.live = false;
    let mut stage = IngestStage::new(&[(Interval::M1, Interval::M5)]).unwrap();
    let report = run_binance(&producer, &mut stage, &config, &metrics, &CancellationToken::new()).await.unwrap();
    assert_eq!((report.candles, report.aggregated, report.refused), (6, 1, 0), "{report:?}");
    let envelopes = tradeflow_testkit::envelopes(&bus, "md.candles").await;
    let ids: std::collections::BTreeSet<String> = envelopes.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 9 + 2, "1m bars 0, 1, 3..=9 and two 5m: {ids:?}");
    assert_eq!(envelopes.len(), ids.len() + 2, "only bars 5 and 6 are on the stream twice");
}
