//! The edge's market and AI routes against a running pipeline: prices, ticker, snapshot,
//! candles and indicators checked against the demo bars and the TA-Lib reference; on-demand
//! analysis checked against the pipeline's own signals, its cache and its WebSocket event;
//! performance recomputed from the stored signals and the bars; feedback, history, storage,
//! models; roles, the error format and refusals of bad input.

mod edge_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edge_common::ws::{Ws, next_json, on_channels};
use edge_common::{CANDLES, DEMO, Edge, SYMBOLS};
use reqwest::Method;
use serde_json::{Value, json};
use tradeflow_audit::{Row, SignalRow, Table};

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/reference/talib_btcusd_1h.csv");
const HOUR: i64 = 3_600_000;
const MODELS: [&str; 3] = ["rsi", "macd", "technical"];

#[derive(Debug, Clone, Copy)]
struct DemoBar {
    t: i64,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
}

fn demo() -> Vec<DemoBar> {
    let text = std::fs::read_to_string(DEMO).unwrap();
    text.lines()
        .skip(1)
        .take(CANDLES)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let n = |i: usize| f[i].parse::<f64>().unwrap();
            DemoBar { t: f[0].parse().unwrap(), o: n(1), h: n(2), l: n(3), c: n(4), v: n(5) }
        })
        .collect()
}

/// The TA-Lib reference row of the bar opening at `t`: column → value (None when empty).
fn reference_row(t: i64) -> HashMap<String, Option<f64>> {
    let text = std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| panic!("{REFERENCE}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let line = lines.find(|l| l.starts_with(&format!("{t},"))).expect("the reference has the bar");
    header
        .iter()
        .zip(line.split(','))
        .map(|(h, v)| (h.to_string(), if v.is_empty() { None } else { Some(v.parse::<f64>().unwrap()) }))
        .collect()
}

fn candle_json(b: &DemoBar) -> Value {
    json!({ "open_time": b.t, "open": b.o, "high": b.h, "low": b.l, "close": b.c, "volume": b.v })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Only the signals channel: no status updates piling up while the test works elsewhere.
async fn connect(edge: &Edge, token: &str) -> Ws {
    on_channels(edge, token, &["signals"], &["status", "alerts"]).await
}

fn close_to(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// The next `ai_analysis` event (other events skipped).
async fn next_analysis(ws: &mut Ws) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["type"] == "ai_analysis" {
            return m;
        }
    }
}

/// Every signal the pipeline stored.
async fn stored_signals(edge: &Edge) -> Vec<SignalRow> {
    let store = edge.store().await;
    let mut out = Vec::new();
    loop {
        let page = store.rows(Table::Signal, 1000, out.len() as i64).await.unwrap();
        if page.is_empty() {
            break;
        }
        out.extend(page.into_iter().filter_map(|r| match r {
            Row::Signal(s) => Some(s),
            _ => None,
        }));
    }
    store.close().await;
    out
}

/// The stored signal of `model` about `symbol`'s bar opening at `t`.
fn stored_one(signals: &[SignalRow], symbol: &str, t: i64, model: &str) -> SignalRow {
    signals
        .iter()
        .find(|s| s.symbol == symbol && s.open_time == t && s.model == model)
        .unwrap_or_else(|| panic!("no stored {model} signal of {symbol} at {t}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_needs_credentials() {
    let edge = Edge::start().await;

    // Every read needs credentials.
    for path in [
        "/api/v1/market/prices",
        "/api/v1/market/price/BTCUSD",
        "/api/v1/market/ticker/BTCUSD",
        "/api/v1/market/snapshot",
        "/api/v1/market/candles/BTCUSD",
        "/api/v1/market/indicators/BTCUSD",
        "/api/v1/ai/info",
        "/api/v1/ai/strategies",
        "/api/v1/ai/performance",
        "/api/v1/ai/cost/statistics",
        "/api/v1/ai/history",
        "/api/v1/ai/storage/stats",
        "/api/v1/models",
    ] {
        edge.check_roles(Method::GET, path, None, "viewer").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_reads_match_the_demo_bars_and_talib() {
    let edge = Edge::start().await;
    let bars = demo();
    let last = *bars.last().unwrap();
    let v = edge.viewer.clone();

    // ---- prices: the live view, the 600th bar of each symbol.
    let p = edge.get("/api/v1/market/prices", Some(&v)).await.expect(200);
    assert_eq!(p["count"], 2, "{p}");
    let prices = p["prices"].as_array().unwrap();
    assert_eq!(prices.iter().map(|x| x["symbol"].as_str().unwrap()).collect::<Vec<_>>(), SYMBOLS);
    for x in prices {
        assert_eq!(
            (x["open_time"].as_i64(), f(&x["close"]), x["interval"].as_str()),
            (Some(last.t), last.c, Some("1h"))
        );
        assert_eq!((f(&x["open"]), f(&x["high"]), f(&x["low"]), f(&x["volume"])), (last.o, last.h, last.l, last.v));
    }
    // No exchange is configured: the price is the latest candle's close.
    let one = edge.get("/api/v1/market/price/BTCUSD", Some(&v)).await.expect(200);
    assert_eq!(
        (one["symbol"].as_str(), f(&one["price"]), one["source"].as_str()),
        (Some("BTCUSD"), last.c, Some("candle"))
    );
    assert_eq!((f(&one["candle"]["close"]), one["candle"]["open_time"].as_i64()), (last.c, Some(last.t)));
    assert_eq!(one["skipped"], json!([]));
    assert_eq!(edge.get("/api/v1/market/price/ethusd", Some(&v)).await.expect(200)["symbol"], "ETHUSD");
    let nf = edge.get("/api/v1/market/price/DOGEUSD", Some(&v)).await.expect_error(404, "not_found");
    assert_eq!(nf["error"]["details"]["known"], json!(SYMBOLS));
    edge.get("/api/v1/market/price/BTC%20USD", Some(&v)).await.expect_error(400, "invalid_symbol");
    edge.get(&format!("/api/v1/market/price/{}", "X".repeat(300)), Some(&v)).await.expect_error(400, "invalid_symbol");

    // ---- ticker: the 24 bars ending at the 600th.
    let day = &bars[CANDLES - 24..];
    let tk = edge.get("/api/v1/market/ticker/BTCUSD", Some(&v)).await.expect(200);
    assert_eq!(tk["bars"], 24, "{tk}");
    assert_eq!((tk["from"].as_i64(), tk["to"].as_i64()), (Some(day[0].t), Some(last.t + HOUR)));
    assert_eq!((f(&tk["open"]), f(&tk["last"])), (day[0].o, last.c));
    assert_eq!(f(&tk["high"]), day.iter().map(|b| b.h).fold(f64::MIN, f64::max));
    assert_eq!(f(&tk["low"]), day.iter().map(|b| b.l).fold(f64::MAX, f64::min));
    assert!(close_to(f(&tk["volume"]), day.iter().map(|b| b.v).sum(), 1e-12));
    assert!(close_to(f(&tk["change"]), last.c - day[0].o, 1e-12));
    assert!(close_to(f(&tk["change_pct"]), 100.0 * (last.c - day[0].o) / day[0].o, 1e-12));
    edge.get("/api/v1/market/ticker/BTCUSD?interval=7h", Some(&v)).await.expect_error(400, "invalid_query");
    edge.get("/api/v1/market/ticker/BTCUSD?interval=4h", Some(&v)).await.expect_error(404, "not_found");
    edge.get("/api/v1/market/ticker/NOPE", Some(&v)).await.expect_error(404, "not_found");

    // ---- snapshot: price, ticker and both profiles' latest decision per symbol.
    let snap = edge.get("/api/v1/market/snapshot", Some(&v)).await.expect(200);
    assert_eq!(snap["count"], 2);
    for s in snap["symbols"].as_array().unwrap() {
        assert_eq!(f(&s["price"]["close"]), last.c);
        assert_eq!(f(&s["ticker"]["last"]), last.c);
        let d = s["decisions"].as_array().unwrap();
        let mut profiles: Vec<&str> = d.iter().map(|d| d["profile"].as_str().unwrap()).collect();
        profiles.sort();
        assert_eq!(profiles, ["committee", "technical"], "{s}");
        for d in d {
            assert_eq!(d["open_time"].as_i64(), Some(last.t), "{d}");
            assert!(["long", "short", "hold"].contains(&d["action"].as_str().unwrap()));
        }
    }

    // ---- candles: the demo bars, in order; paging; bad parameters.
    let c = edge.get("/api/v1/market/candles/BTCUSD?limit=10", Some(&v)).await.expect(200);
    assert_eq!(
        (c["count"].as_u64(), c["interval"].as_str(), c["source"].as_str()),
        (Some(10), Some("1h"), Some("csv"))
    );
    for (got, want) in c["candles"].as_array().unwrap().iter().zip(&bars[CANDLES - 10..]) {
        assert_eq!(got, &candle_json(want));
    }
    let c = edge.get("/api/v1/market/candles/ETHUSD", Some(&v)).await.expect(200);
    assert_eq!(c["count"], 100);
    assert_eq!(c["candles"][0], candle_json(&bars[CANDLES - 100]));
    let c =
        edge.get(&format!("/api/v1/market/candles/BTCUSD?limit=5&before={}", bars[590].t), Some(&v)).await.expect(200);
    let got: Vec<i64> = c["candles"].as_array().unwrap().iter().map(|b| b["open_time"].as_i64().unwrap()).collect();
    assert_eq!(got, bars[585..590].iter().map(|b| b.t).collect::<Vec<_>>());
    let all = edge.get("/api/v1/market/candles/BTCUSD?limit=1000&interval=1h", Some(&v)).await.expect(200);
    assert_eq!(all["count"], CANDLES);
    assert_eq!(edge.get("/api/v1/market/candles/BTCUSD?interval=1d", Some(&v)).await.expect(200)["count"], 0);
    for bad in ["limit=0", "limit=1001", "limit=-5", "limit=abc", "interval=1x", "before=yesterday"] {
        let r = edge.get(&format!("/api/v1/market/candles/BTCUSD?{bad}"), Some(&v)).await;
        r.expect_error(400, "invalid_query");
    }
    edge.get("/api/v1/market/candles/NOPE", Some(&v)).await.expect_error(404, "not_found");

    // ---- indicators: TA-Lib's values at the 600th bar, within 1e-9 relative.
    let ind = edge.get("/api/v1/market/indicators/BTCUSD", Some(&v)).await.expect(200);
    assert_eq!((ind["open_time"].as_i64(), ind["bars_used"].as_u64()), (Some(last.t), Some(CANDLES as u64)));
    assert_eq!((ind["complete"].as_bool(), ind["warm_up_bars"].as_u64()), (Some(true), Some(50)));
    let reference = reference_row(last.t);
    let mut compared = 0;
    for (column, want) in &reference {
        if column == "timestamp" || column == "close" {
            continue;
        }
        let got = &ind["indicators"][column];
        match want {
            Some(want) => {
                assert!(close_to(f(got), *want, 1e-9), "{column}: edge {got}, TA-Lib {want}");
                compared += 1;
            }
            None => assert!(got.is_null(), "{column}: edge {got}, TA-Lib empty"),
        }
    }
    assert_eq!(compared, 26);
    assert!(ind["indicators"]["volume_ratio_20"].is_number());
    assert!(ind["market"]["trend"].is_string(), "{ind}");
    edge.get("/api/v1/market/indicators/BTCUSD?interval=nope", Some(&v)).await.expect_error(400, "invalid_query");
    edge.get("/api/v1/market/indicators/BTCUSD?interval=1w", Some(&v)).await.expect_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyses_feedback_history_storage_and_a_scheduler_cycle() {
    let edge = Edge::start().await;
    let bars = demo();
    let last = *bars.last().unwrap();
    let v = edge.viewer.clone();
    let t = edge.trader.clone();
    let a = edge.admin.clone();
    let signals = stored_signals(&edge).await;
    let stored = |symbol: &str, t: i64, model: &str| stored_one(&signals, symbol, t, model);

    // ---- analyze: the same answers as the pipeline's own signals about the last bar.
    let mut ws = connect(&edge, &v).await;
    edge.check_roles(Method::POST, "/api/v1/ai/analyze", Some(json!({"symbol": "BTCUSD"})), "trader").await;
    let an = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"symbol": "BTCUSD"}))).await.expect(200);
    assert_eq!(
        (an["cached"].as_bool(), an["stored"].as_bool(), an["source"].as_str()),
        (Some(false), Some(true), Some("store"))
    );
    assert_eq!((an["open_time"].as_i64(), f(&an["close"]), an["bars"].as_u64()), (Some(last.t), last.c, Some(600)));
    let models = an["models"].as_array().unwrap();
    assert_eq!(models.iter().map(|m| m["model"].as_str().unwrap()).collect::<Vec<_>>(), MODELS);
    for m in models {
        let s = stored("BTCUSD", last.t, m["model"].as_str().unwrap());
        assert_eq!(m["action"].as_str(), Some(s.action.as_str()), "{m}");
        assert_eq!(f(&m["confidence"]), s.confidence, "{m}");
        assert_eq!(m["reasoning"].as_str(), Some(s.reasoning.as_str()));
        assert_eq!(m["stop_loss"].as_f64(), s.stop_loss);
        assert_eq!((m["status"].as_str(), m["kind"].as_str()), (Some("ok"), Some("rule")));
        assert_eq!(an["market"], serde_json::from_str::<Value>(&s.market).unwrap());
    }
    let s = &an["summary"];
    assert_eq!(s["long"].as_u64().unwrap() + s["short"].as_u64().unwrap() + s["hold"].as_u64().unwrap(), 3);
    // Broadcast on the WebSocket.
    let event = next_analysis(&mut ws).await;
    assert_eq!((event["channel"].as_str(), event["symbol"].as_str()), (Some("signals"), Some("BTCUSD")));
    assert_eq!(event["id"], an["id"]);
    assert_eq!(event["data"]["models"], an["models"]);
    // The cache: the same analysis, marked.
    let hit = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"symbol": "btcusd"}))).await.expect(200);
    assert_eq!((hit["cached"].as_bool(), &hit["id"]), (Some(true), &an["id"]));
    assert_eq!(hit["models"], an["models"]);
    // A subset of the models is another analysis.
    let rsi = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"symbol": "ETHUSD", "models": ["rsi"]}))).await;
    let rsi = rsi.expect(200);
    assert_eq!((rsi["models"].as_array().unwrap().len(), rsi["cached"].as_bool()), (1, Some(false)));
    assert_eq!(next_analysis(&mut ws).await["symbol"], "ETHUSD");

    // Candles given in the request: bar 120 of the demo, answered as the pipeline did.
    let body: Vec<Value> = bars[..120].iter().map(candle_json).collect();
    let req = json!({"symbol": "DEMO", "interval": "1h", "candles": body});
    let own = edge.post("/api/v1/ai/analyze", Some(&t), Some(req.clone())).await.expect(200);
    assert_eq!(
        (own["source"].as_str(), own["symbol"].as_str(), own["bars"].as_u64()),
        (Some("request"), Some("DEMO"), Some(120))
    );
    for m in own["models"].as_array().unwrap() {
        let s = stored("BTCUSD", bars[119].t, m["model"].as_str().unwrap());
        // serde_json's default float parser may land an ulp off the exact value.
        assert_eq!(m["action"].as_str(), Some(s.action.as_str()), "{m}");
        assert!(close_to(f(&m["confidence"]), s.confidence, 1e-9), "{m} vs {}", s.confidence);
    }
    assert_eq!(edge.post("/api/v1/ai/analyze", Some(&t), Some(req)).await.expect(200)["cached"], true);
    let mut changed = bars[..120].to_vec();
    changed[119].v += 1.0;
    let changed: Vec<Value> = changed.iter().map(candle_json).collect();
    let other = edge
        .post("/api/v1/ai/analyze", Some(&t), Some(json!({"symbol": "DEMO", "interval": "1h", "candles": changed})))
        .await;
    assert_eq!(other.expect(200)["cached"], false, "other bars, another analysis");

    // ---- feedback.
    let fb_body = json!({"model": "rsi", "rating": 5, "analysis_id": an["id"], "comment": "spot on"});
    edge.check_roles(Method::POST, "/api/v1/ai/feedback", Some(fb_body.clone()), "trader").await;
    let fb = edge.post("/api/v1/ai/feedback", Some(&t), Some(fb_body)).await.expect(201);
    assert!(fb["id"].as_str().unwrap().starts_with("fb-"));
    let sig_id = stored("BTCUSD", last.t, "macd").id;
    edge.post("/api/v1/ai/feedback", Some(&t), Some(json!({"model": "macd", "rating": 2, "signal_id": sig_id})))
        .await
        .expect(201);
    for (body, status, code) in [
        (json!({"model": "rsi", "rating": 0}), 422, "invalid_body"),
        (json!({"model": "rsi", "rating": 6}), 422, "invalid_body"),
        (json!({"model": "rsi", "rating": "five"}), 422, "invalid_body"),
        (json!({"model": "rsi", "rating": 4.5}), 422, "invalid_body"),
        (json!({"rating": 4}), 422, "invalid_body"),
        (json!({"model": "oracle", "rating": 4}), 422, "unknown_model"),
        (json!({"model": "rsi", "rating": 4, "comment": "x".repeat(2001)}), 422, "invalid_body"),
        (json!({"model": "rsi", "rating": 4, "analysis_id": "ana-nope"}), 404, "not_found"),
        (json!({"model": "rsi", "rating": 4, "signal_id": "nope"}), 404, "not_found"),
    ] {
        edge.post("/api/v1/ai/feedback", Some(&t), Some(body)).await.expect_error(status, code);
    }

    // ---- history and storage.
    let h = edge.get("/api/v1/ai/history?days=1&limit=3", Some(&v)).await.expect(200);
    let ids: Vec<&str> = h["analyses"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(h["signals"].as_array().unwrap().len(), 3);
    let h = edge.get("/api/v1/ai/history", Some(&v)).await.expect(200);
    let first =
        h["analyses"].as_array().unwrap().iter().find(|x| x["id"] == an["id"]).expect("the analysis is stored").clone();
    assert_eq!((first["actor"].as_str(), first["symbol"].as_str()), (Some("ops"), Some("BTCUSD")));
    assert_eq!(first["models"], json!(MODELS));
    assert_eq!(first["result"]["models"], an["models"]);
    for bad in ["days=0", "days=400", "limit=0", "limit=1001", "limit=many"] {
        edge.get(&format!("/api/v1/ai/history?{bad}"), Some(&v)).await.expect_error(400, "invalid_query");
    }
    let ss = edge.get("/api/v1/ai/storage/stats", Some(&v)).await.expect(200);
    // BTCUSD, ETHUSD (rsi), the request's bars and the changed ones; two cache hits.
    assert_eq!((ss["analyses"].as_i64(), ss["feedback"].as_i64()), (Some(4), Some(2)), "{ss}");
    assert_eq!(
        (ss["cache_entries"].as_u64(), ss["analyses_run"].as_u64(), ss["cache_hits"].as_u64()),
        (Some(4), Some(4), Some(2))
    );

    // The two analyses of the request's bars are broadcast (a cache hit is not). Analysis
    // cycles are the inference workers' (tests/edge_control.rs).
    assert_eq!(next_analysis(&mut ws).await["id"], own["id"]);
    assert_eq!(next_analysis(&mut ws).await["data"]["source"], "request");

    // ---- clearing the storage: admin only, then empty, and the next analysis is fresh.
    edge.check_roles(Method::POST, "/api/v1/ai/storage/clear", None, "admin").await;
    edge.post("/api/v1/ai/storage/clear", Some(&a), Some(json!({"older_than_days": -1})))
        .await
        .expect_error(422, "invalid_body");
    edge.post("/api/v1/ai/storage/clear", Some(&a), Some(json!({"everything": true})))
        .await
        .expect_error(422, "invalid_body");
    let kept = edge.post("/api/v1/ai/storage/clear", Some(&a), Some(json!({"older_than_days": 1}))).await.expect(200);
    assert_eq!(kept["deleted_analyses"], 0);
    let cleared =
        edge.post("/api/v1/ai/storage/clear", Some(&a), Some(json!({"include_feedback": true}))).await.expect(200);
    assert_eq!(
        (cleared["deleted_analyses"].as_i64(), cleared["deleted_feedback"].as_i64()),
        (Some(4), Some(2)),
        "{cleared}"
    );
    let ss = edge.get("/api/v1/ai/storage/stats", Some(&v)).await.expect(200);
    assert_eq!(
        (ss["analyses"].as_i64(), ss["feedback"].as_i64(), ss["cache_entries"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    let again = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"symbol": "BTCUSD"}))).await.expect(200);
    assert_eq!(again["cached"], false);
    assert_ne!(again["id"], an["id"]);

    // ---- mutations are audited with the caller.
    let started = Instant::now();
    loop {
        let store = edge.store().await;
        let rows = store.rows(Table::Audit, 1000, 0).await.unwrap();
        store.close().await;
        let actions: Vec<(String, String)> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Audit(a) => Some((a.action.clone(), a.actor.clone())),
                _ => None,
            })
            .collect();
        let has = |action: &str, actor: &str| actions.iter().any(|(a, b)| a == action && b == actor);
        if has("ai_analyze", "ops") && has("ai_feedback", "ops") && has("ai_storage_clear", "admin") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "mutations not audited: {actions:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_analysis_requests_are_refused() {
    let edge = Edge::start().await;
    let bars = demo();
    let t = edge.trader.clone();

    // Refusals: every bad body is a 4xx in the one format.
    let few: Vec<Value> = bars[..49].iter().map(candle_json).collect();
    let e = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"interval": "1h", "candles": few}))).await;
    let e = e.expect_error(422, "insufficient_data");
    assert_eq!((e["error"]["details"]["needed"].as_u64(), e["error"]["details"]["got"].as_u64()), (Some(50), Some(49)));
    let mut unordered: Vec<Value> = bars[..60].iter().map(candle_json).collect();
    unordered.swap(10, 11);
    let e = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"interval": "1h", "candles": unordered}))).await;
    assert_eq!(e.expect_error(422, "invalid_candles")["error"]["details"]["index"], 11);
    let mut impossible: Vec<Value> = bars[..60].iter().map(candle_json).collect();
    impossible[5]["high"] = json!(1.0);
    let e = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"interval": "1h", "candles": impossible}))).await;
    assert_eq!(e.expect_error(422, "invalid_candles")["error"]["details"]["index"], 5);
    let mut early: Vec<Value> = bars[..60].iter().map(candle_json).collect();
    early[0]["open_time"] = json!(-1);
    let e = edge.post("/api/v1/ai/analyze", Some(&t), Some(json!({"interval": "1h", "candles": early}))).await;
    assert_eq!(e.expect_error(422, "invalid_candles")["error"]["details"]["index"], 0);
    let sixty: Vec<Value> = bars[..60].iter().map(candle_json).collect();
    for (body, status, code) in [
        (json!({}), 422, "invalid_body"),
        (json!({"symbol": 5}), 422, "invalid_body"),
        (json!({"symbol": "BTCUSD", "colour": "red"}), 422, "invalid_body"),
        (json!({"symbol": "BTCUSD", "interval": "7h"}), 422, "invalid_body"),
        (json!({"symbol": "BTCUSD", "models": []}), 422, "invalid_body"),
        (json!({"symbol": "BTCUSD", "models": ["oracle"]}), 422, "unknown_model"),
        (json!({"symbol": "BTCUSD", "interval": "4h"}), 422, "insufficient_data"),
        (json!({"candles": sixty}), 422, "invalid_body"),
        (json!({"candles": [{"open_time": 1, "open": 1.0}], "interval": "1h"}), 422, "invalid_body"),
        (json!({"candles": "many", "interval": "1h"}), 422, "invalid_body"),
        (json!({"symbol": "DOGEUSD"}), 404, "not_found"),
        (json!({"symbol": "BAD SYMBOL"}), 400, "invalid_symbol"),
    ] {
        let r = edge.post("/api/v1/ai/analyze", Some(&t), Some(body.clone())).await;
        assert!(r.status.is_client_error(), "{body}: {}", r.status);
        r.expect_error(status, code);
    }
    let huge: Vec<Value> = (0..2000).map(|i| candle_json(&bars[i % CANDLES])).collect();
    let huge = json!({"interval": "1h", "candles": huge});
    let r = edge.call_once(Method::POST, "/api/v1/ai/analyze", Some(&t), Some(huge)).await;
    r.expect_error(413, "payload_too_large");
    let raw = edge
        .client
        .post(edge.url("/api/v1/ai/analyze"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"symbol\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let no_type = edge.client.post(edge.url("/api/v1/ai/analyze")).bearer_auth(&t).body("{}").send().await.unwrap();
    assert_eq!(no_type.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_info_strategies_cost_and_models() {
    let edge = Edge::start().await;
    let v = edge.viewer.clone();

    // ---- info and strategies.
    let info = edge.get("/api/v1/ai/info", Some(&v)).await.expect(200);
    let names: Vec<&str> = info["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, MODELS);
    assert_eq!((info["llm_configured"].as_bool(), info["cache_ttl_s"].as_u64()), (Some(false), Some(300)));
    assert_eq!((info["warm_up_bars"].as_u64(), f(&info["rules"]["rsi_oversold"])), (Some(50), 30.0));
    assert_eq!(info["analysts"], json!([]));
    let st = edge.get("/api/v1/ai/strategies", Some(&v)).await.expect(200);
    let strategies = st["strategies"].as_array().unwrap();
    assert_eq!(strategies.len(), 5);
    let by_name = |n: &str| strategies.iter().find(|s| s["name"] == n).unwrap().clone();
    assert_eq!(
        (by_name("rsi")["runs_as_model"].as_bool(), by_name("bollinger")["runs_as_model"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(f(&by_name("rsi")["parameters"]["rsi_overbought"]), 70.0);
    assert_eq!(st["composite_configured"], true);

    // ---- cost: no analyst configured, zeros.
    let cost = edge.get("/api/v1/ai/cost/statistics", Some(&v)).await.expect(200);
    assert_eq!((cost["llm_configured"].as_bool(), f(&cost["total_cost_usd"])), (Some(false), 0.0));
    assert_eq!((cost["total_requests"].as_u64(), cost["total_input_tokens"].as_u64()), (Some(0), Some(0)));
    assert_eq!(cost["models"], json!(MODELS));
    assert_eq!(cost["analysts"], json!([]));

    // ---- models: the configured ones, online, with their last prediction.
    let ms = edge.get("/api/v1/models", Some(&v)).await.expect(200);
    assert_eq!((ms["count"].as_u64(), ms["online"].as_u64()), (Some(3), Some(3)), "{ms}");
    for m in ms["models"].as_array().unwrap() {
        assert_eq!(
            (m["configured"].as_bool(), m["online"].as_bool(), m["kind"].as_str()),
            (Some(true), Some(true), Some("rule"))
        );
        // What the edge's tap saw (it opens while the replay starts: maybe not the first few).
        let n = m["signals"].as_u64().unwrap();
        assert!(n > 0 && n <= (CANDLES * 2) as u64, "{m}");
        assert!(["long", "short", "hold"].contains(&m["last_action"].as_str().unwrap()), "{m}");
        assert!(
            m["last_confidence"].is_number() && m["last_latency_us"].is_number() && m["last_signal_at"].is_number()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn performance_is_recomputed_from_the_stored_signals() {
    let edge = Edge::start().await;
    let bars = demo();
    let v = edge.viewer.clone();
    let t = edge.trader.clone();

    let signals = stored_signals(&edge).await;
    // One rating of rsi, to be counted.
    edge.post("/api/v1/ai/feedback", Some(&t), Some(json!({"model": "rsi", "rating": 5, "comment": "spot on"})))
        .await
        .expect(201);

    // ---- performance: recomputed here from the stored signals and the demo closes.
    let perf = edge.get("/api/v1/ai/performance", Some(&v)).await.expect(200);
    let close_at: HashMap<i64, f64> = bars.iter().map(|b| (b.t, b.c)).collect();
    for model in MODELS {
        let p = perf["models"].as_array().unwrap().iter().find(|p| p["model"] == model).unwrap().clone();
        let mine: Vec<&SignalRow> = signals.iter().filter(|s| s.model == model).collect();
        assert_eq!(p["signals"].as_u64(), Some(mine.len() as u64), "{p}");
        assert_eq!(mine.len(), CANDLES * 2);
        let (mut n, mut hits, mut sum) = (0i64, 0i64, 0.0);
        for s in mine.iter().filter(|s| s.status == "ok" && s.action != "hold") {
            let Some(next) = close_at.get(&(s.open_time + HOUR)) else { continue };
            let now = close_at[&s.open_time];
            let dir = if s.action == "long" { 1.0 } else { -1.0 };
            n += 1;
            hits += i64::from(dir * (next - now) > 0.0);
            sum += dir * (next - now) / now;
        }
        assert!(n > 0, "{model} made no directional call");
        assert_eq!((p["outcomes"]["evaluated"].as_i64(), p["outcomes"]["hits"].as_i64()), (Some(n), Some(hits)), "{p}");
        assert!(close_to(f(&p["outcomes"]["mean_return"]), sum / n as f64, 1e-9), "{p}");
        assert!(close_to(f(&p["outcomes"]["hit_rate"]), hits as f64 / n as f64, 1e-12));
        let longs = p["long"].as_i64().unwrap() + p["short"].as_i64().unwrap() + p["hold"].as_i64().unwrap();
        assert_eq!(longs, (CANDLES * 2) as i64);
    }
    let rsi_perf = perf["models"].as_array().unwrap().iter().find(|p| p["model"] == "rsi").unwrap().clone();
    assert_eq!((rsi_perf["feedback"]["count"].as_i64(), f(&rsi_perf["feedback"]["mean_rating"])), (Some(1), 5.0));
    for bad in ["days=0", "days=366", "days=x"] {
        edge.get(&format!("/api/v1/ai/performance?{bad}"), Some(&v)).await.expect_error(400, "invalid_query");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_condition_and_strategy_recommendations() {
    let edge = Edge::start().await;
    let bars = demo();
    let last = *bars.last().unwrap();
    let t = edge.trader.clone();
    let signals = stored_signals(&edge).await;
    let stored = |symbol: &str, t: i64, model: &str| stored_one(&signals, symbol, t, model);

    let reference = reference_row(last.t);

    // ---- market condition and strategy recommendations (trader: they compute).
    edge.check_roles(Method::POST, "/api/v1/ai/market-condition", Some(json!({"symbol": "BTCUSD"})), "trader").await;
    let mc = edge.post("/api/v1/ai/market-condition", Some(&t), Some(json!({"symbol": "BTCUSD"}))).await.expect(200);
    let tech = stored("BTCUSD", last.t, "technical");
    assert_eq!(mc["market"], serde_json::from_str::<Value>(&tech.market).unwrap());
    assert_eq!(mc["open_time"].as_i64(), Some(last.t));
    assert!(mc["summary"].as_str().unwrap().contains("ADX"), "{mc}");
    assert!(close_to(f(&mc["indicators"]["adx_14"]), reference["adx_14"].unwrap(), 1e-9), "{mc}");
    edge.post("/api/v1/ai/market-condition", Some(&t), Some(json!({"symbol": "BTCUSD", "extra": 1})))
        .await
        .expect_error(422, "invalid_body");
    edge.post("/api/v1/ai/market-condition", Some(&t), Some(json!({"symbol": "NOPE"})))
        .await
        .expect_error(404, "not_found");
    edge.check_roles(Method::POST, "/api/v1/ai/strategy-recommendations", Some(json!({"symbol": "BTCUSD"})), "trader")
        .await;
    let rec =
        edge.post("/api/v1/ai/strategy-recommendations", Some(&t), Some(json!({"symbol": "BTCUSD"}))).await.expect(200);
    let ranked = rec["strategies"].as_array().unwrap();
    assert_eq!(ranked.len(), 5);
    assert!(ranked.windows(2).all(|w| f(&w[0]["suitability"]) >= f(&w[1]["suitability"])), "{rec}");
    let rsi_rec = ranked.iter().find(|s| s["strategy"] == "rsi").unwrap();
    let rsi_sig = stored("BTCUSD", last.t, "rsi");
    assert_eq!((rsi_rec["action"].as_str(), f(&rsi_rec["score"])), (Some(rsi_sig.action.as_str()), rsi_sig.confidence));
    assert_eq!(rec["market"], mc["market"]);
    let few: Vec<Value> = bars[..10].iter().map(candle_json).collect();
    edge.post("/api/v1/ai/strategy-recommendations", Some(&t), Some(json!({"candles": few, "interval": "1h"})))
        .await
        .expect_error(422, "insufficient_data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented() {
    let edge = Edge::start().await;

    // ---- the OpenAPI document names every route.
    let doc = edge.get("/openapi.json", None).await.expect(200);
    for p in [
        "/api/v1/market/prices",
        "/api/v1/market/price/{symbol}",
        "/api/v1/market/ticker/{symbol}",
        "/api/v1/market/snapshot",
        "/api/v1/market/candles/{symbol}",
        "/api/v1/market/indicators/{symbol}",
        "/api/v1/ai/analyze",
        "/api/v1/ai/info",
        "/api/v1/ai/strategies",
        "/api/v1/ai/performance",
        "/api/v1/ai/feedback",
        "/api/v1/ai/market-condition",
        "/api/v1/ai/strategy-recommendations",
        "/api/v1/ai/cost/statistics",
        "/api/v1/ai/history",
        "/api/v1/ai/storage/stats",
        "/api/v1/ai/storage/clear",
        "/api/v1/models",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from /openapi.json");
    }
}
