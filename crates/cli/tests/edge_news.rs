//! News end to end: two local feeds (tests/fixtures/news: an RSS feed and an Atom feed that
//! repeats two of its stories, one under another link with its title spelled otherwise, one
//! under the same link spelled otherwise) served by a local HTTP server, read twice by
//! `tradeflow worker news --once` into the pipeline `tradeflow up` runs: md.news holds each
//! story once, the audit store keeps them, `GET /api/v1/news` answers them.

mod edge_common;

use std::time::{Duration, Instant};

use axum::routing::get;
use edge_common::{BIN, Edge, STREAMS};
use serde_json::Value;
use tradeflow_bus::tap::{From, Tap};
use tradeflow_core::news::NewsItem;

const RSS: &str = include_str!("fixtures/news/coins.rss");
const ATOM: &str = include_str!("fixtures/news/mirror.atom");

/// Serves the fixtures at `/coins.rss` and `/mirror.atom`; returns the base URL.
async fn serve_feeds() -> String {
    let app = axum::Router::new()
        .route("/coins.rss", get(|| async { ([("content-type", "application/rss+xml")], RSS) }))
        .route("/mirror.atom", get(|| async { ([("content-type", "application/atom+xml")], ATOM) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// One `tradeflow worker news --once`; returns its summary line.
async fn poll_once(edge: &Edge, feeds: &str) -> String {
    let out = tokio::process::Command::new(BIN)
        .args(["worker", "news", "--once", "--max-age-hours", "1000000"])
        .args(["--feed", &format!("coinwire={feeds}/coins.rss")])
        .args(["--feed", &format!("mirror={feeds}/mirror.atom")])
        .args(["--symbols", "BTCUSD", "--symbols", "ETHUSD=Ether"])
        .env("REDIS_URL", edge.redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

async fn stream_items(edge: &Edge) -> Vec<NewsItem> {
    let mut tap = Tap::open(&edge.bus, &["md.news"], From::Start, Duration::from_millis(50)).await.unwrap();
    let mut items = Vec::new();
    loop {
        let batch = tap.next().await.unwrap();
        if batch.is_empty() {
            return items;
        }
        items.extend(batch.iter().map(|t| t.envelope.open::<NewsItem>().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_feed_is_ingested_once_stored_and_queryable() {
    let edge = Edge::start().await;
    let feeds = serve_feeds().await;

    let first = poll_once(&edge, &feeds).await;
    assert!(first.contains("5 stories read, 3 published, 2 duplicates"), "{first}");
    // Read again after a restart: everything is known from md.news.
    let again = poll_once(&edge, &feeds).await;
    assert!(again.contains("5 stories read, 0 published, 5 duplicates"), "{again}");

    let items = stream_items(&edge).await;
    let titles: Vec<&str> = items.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Regulators publish stablecoin guidance",
            "Ethereum developers schedule the next network upgrade",
            "Bitcoin tops $100,000 as ETF inflows surge"
        ],
        "md.news holds each story once, oldest first"
    );
    let btc = &items[2];
    assert_eq!(btc.symbols, ["BTCUSD"]);
    assert_eq!(btc.link, "https://coinwire.example/markets/bitcoin-tops-100k");
    assert_eq!(btc.source, "coinwire");
    assert_eq!(btc.summary, "Spot ETF buying lifted BTC to a record.");
    assert_eq!(items[1].symbols, ["ETHUSD"]);
    assert!(items[0].symbols.is_empty());

    // The audit writer stores them; the edge answers them.
    let v = &edge.viewer;
    let started = Instant::now();
    let all = loop {
        let page = edge.get("/api/v1/news?limit=500", Some(v)).await.expect(200);
        if page["items"].as_array().is_some_and(|a| a.len() >= 3) {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the store did not get the stories: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let listed: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(listed, [titles[2], titles[1], titles[0]], "newest first, each once");

    let btc_page = edge.get("/api/v1/news?symbol=btcusd", Some(v)).await.expect(200);
    let items_btc = btc_page["items"].as_array().unwrap();
    assert_eq!(items_btc.len(), 1, "{btc_page}");
    assert_eq!(items_btc[0]["title"], "Bitcoin tops $100,000 as ETF inflows surge");
    assert_eq!(items_btc[0]["symbols"], serde_json::json!(["BTCUSD"]));
    assert_eq!(items_btc[0]["published_at"], 1_796_544_000_000i64);
    assert_eq!(btc_page["limit"], 50);
    let market = edge.get("/api/v1/news?symbol=market", Some(v)).await.expect(200);
    assert_eq!(market["items"][0]["title"], "Regulators publish stablecoin guidance");
    // since: the two newer stories (07:00 and 08:00 UTC).
    let since = edge.get("/api/v1/news?since=2026-12-06T07:00:00Z", Some(v)).await.expect(200);
    assert_eq!(since["items"].as_array().map(Vec::len), Some(2), "{since}");
    let limited = edge.get("/api/v1/news?limit=1", Some(v)).await.expect(200);
    assert_eq!(limited["items"].as_array().map(Vec::len), Some(1));

    // Precise refusals.
    for (query, field) in
        [("limit=0", "limit"), ("limit=501", "limit"), ("since=yesterday", "since"), ("symbol=BTC%20USD", "symbol")]
    {
        let body = edge.get(&format!("/api/v1/news?{query}"), Some(v)).await.expect_error(400, "invalid_query");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
    edge.get("/api/v1/news", None).await.expect_error(401, "unauthorized");

    // Documented.
    let doc: Value = edge.get("/openapi.json", None).await.expect(200);
    assert!(doc["paths"].get("/api/v1/news").is_some(), "/api/v1/news missing from /openapi.json");
}
