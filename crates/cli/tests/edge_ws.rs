//! The WebSocket against a running pipeline: a client subscribed to one symbol's signals
//! receives exactly those; a client that stops reading is dropped with a close reason while
//! the others get everything; the handshake needs credentials.

mod edge_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use edge_common::ws::{Ws, next_json};
use edge_common::{BIN, CANDLES, DEMO, Edge, Options, STREAMS};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const NEW_BARS: usize = 800;
const MODELS: usize = 3;

async fn connect(edge: &Edge, token: &str) -> Ws {
    let mut ws = edge_common::ws::connect(edge, token).await;
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert!(welcome["client_id"].is_string());
    ws
}

async fn subscribe(ws: &mut Ws, request: Value) {
    ws.send(Message::Text(request.to_string().into())).await.unwrap();
    loop {
        let m = next_json(ws).await;
        if m["type"] == "subscribed" {
            return;
        }
        assert_ne!(m["type"], "error", "{m}");
    }
}

/// Reads signal events until `want` arrived (or 60 s passed); returns (symbols, ids).
/// The first `want` signals of candles opening at or after `since` (the new bars): signals of
/// the start-up feed that the tap delivers late are not what is being counted.
async fn collect_signals(ws: &mut Ws, want: usize, since: i64) -> (BTreeSet<String>, Vec<String>) {
    let mut symbols = BTreeSet::new();
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.len() < want && Instant::now() < deadline {
        let m = next_json(ws).await;
        match m["type"].as_str() {
            Some("signal") if m["data"]["open_time"].as_i64().is_some_and(|t| t < since) => {}
            Some("signal") => {
                symbols.insert(m["symbol"].as_str().unwrap().to_string());
                ids.push(m["id"].as_str().unwrap().to_string());
                assert_eq!(m["channel"], "signals");
                assert!(m["data"]["confidence"].is_number(), "{m}");
            }
            Some("status_update" | "heartbeat" | "system_alert" | "unsubscribed") => {}
            other => panic!("unexpected event {other:?}: {m}"),
        }
    }
    (symbols, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_filter_and_a_stalled_client_is_dropped() {
    let edge = Edge::start_with(Options { ws_client_queue: 256, ..Options::default() }).await;

    // No credentials, no WebSocket.
    let anonymous = tokio_tungstenite::connect_async(format!("{}/ws", edge.base.replace("http://", "ws://"))).await;
    match anonymous {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401 handshake refusal, got {:?}", other.map(|(_, r)| r.status())),
    }

    let mut btc = connect(&edge, &edge.viewer).await;
    subscribe(&mut btc, json!({"type": "subscribe", "channels": ["signals"], "symbols": ["BTCUSD"]})).await;
    // Status and alerts are subscribed by default; this client wants only signals.
    btc.send(Message::Text(json!({"type": "unsubscribe", "channels": ["status", "alerts"]}).to_string().into()))
        .await
        .unwrap();
    let mut all = connect(&edge, &edge.trader).await;
    subscribe(&mut all, json!({"type": "subscribe", "channels": ["signals"]})).await;
    let mut stalled = connect(&edge, &edge.admin).await;
    subscribe(
        &mut stalled,
        json!({"type": "subscribe", "channels": ["signals", "decisions", "prices", "orders", "fills", "positions", "balances"]}),
    )
    .await;
    // Unknown channels are refused in the protocol's error shape.
    all.send(Message::Text(json!({"type": "subscribe", "channels": ["gossip"]}).to_string().into())).await.unwrap();
    // Signals of the candles the pipeline is still working through may come first: the
    // refusal is the first message that is not an event.
    let mut refusal = next_json(&mut all).await;
    for _ in 0..10_000 {
        if refusal.get("error").is_some() || refusal["channel"].is_null() {
            break;
        }
        refusal = next_json(&mut all).await;
    }
    assert_eq!(refusal["error"]["code"], "unknown_channel", "{refusal}");
    let stats = edge.get("/ws/stats", Some(&edge.viewer)).await.expect(200);
    assert_eq!(stats["clients"], 3, "{stats}");

    // New bars for both symbols, from a separate ingest process.
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let lines: Vec<&str> = demo.lines().collect();
    let mut text = String::from(lines[0]);
    for l in &lines[CANDLES + 1..CANDLES + 1 + NEW_BARS] {
        text.push('\n');
        text.push_str(l);
    }
    let bars = edge.dir.path().join("more.csv");
    std::fs::write(&bars, text + "\n").unwrap();
    let ingest = tokio::process::Command::new(BIN)
        .args(["worker", "ingest", "--replay", &format!("BTCUSD={}", bars.display())])
        .args(["--replay", &format!("ETHUSD={}", bars.display())])
        .env("REDIS_URL", edge.redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(ingest.success());

    let since: i64 = lines[CANDLES + 1].split(',').next().unwrap().parse().unwrap();
    let started = Instant::now();
    // Both readers read at once (a reader that waited its turn would be a stalled client).
    let btc_reader = tokio::spawn(async move {
        let got = collect_signals(&mut btc, NEW_BARS * MODELS, since).await;
        (btc, got)
    });
    let all_reader = tokio::spawn(async move {
        let got = collect_signals(&mut all, 2 * NEW_BARS * MODELS, since).await;
        (all, got)
    });
    let (mut btc, (symbols, ids)) = btc_reader.await.unwrap();
    assert_eq!(symbols, BTreeSet::from(["BTCUSD".to_string()]), "only the subscribed symbol");
    assert_eq!(ids.len(), NEW_BARS * MODELS, "every BTCUSD signal");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "no duplicates");
    let (_all, (symbols, ids)) = all_reader.await.unwrap();
    assert_eq!(symbols.len(), 2);
    assert_eq!(ids.len(), 2 * NEW_BARS * MODELS, "every signal of both symbols");
    println!("both readers had every event {:?} after the ingest ended", started.elapsed());

    // Nothing more arrives for the one-symbol client once the feed is drained.
    edge.wait_drained().await;
    let extra = tokio::time::timeout(Duration::from_millis(1500), btc.next()).await;
    if let Ok(Some(Ok(Message::Text(t)))) = extra
        && serde_json::from_str::<serde_json::Value>(&t).ok().and_then(|m| m["data"]["open_time"].as_i64())
            >= Some(since)
    {
        panic!("unexpected event after the feed: {t}");
    }

    // The stalled client fell behind and was dropped, with a reason, without holding up the
    // others (they had everything above).
    let stats = edge.get("/ws/stats", Some(&edge.viewer)).await.expect(200);
    assert!(stats["dropped_slow_total"].as_u64().unwrap() >= 1, "{stats}");
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = stalled.next().await {
            match m {
                Ok(Message::Close(c)) => return c,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stalled client's stream ends");
    let frame = close.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1013);
    assert!(frame.reason.contains("too slow"), "{}", frame.reason);
}
