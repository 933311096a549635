//! Headlines in an analyst's prompt: a story published on md.news (a real Redis) is read by the
//! inference worker's headline follower (attached when the worker creates its handlers) and
//! the fake LLM provider records it in the prompt of the next analysis of that symbol; an
//! analyst configured with `headlines = 0` is not given it. The fake answers the OpenAI chat
//! completions shape (`choices[].message.content`) as documented on 2026-12-06.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Response;
use prometheus::Registry;
use serde_json::{Value, json};
use tradeflow_bus::{HandlerFactory, Producer, Topology};
use tradeflow_core::MessageId;
use tradeflow_core::market::{Bar, Candle, Interval};
use tradeflow_core::news::NewsItem;
use tradeflow_core::signal::SignalStatus;
use tradeflow_core::time::now_ms;
use tradeflow_inference::llm::{Analyst, AnalystConfig, Dialect, LlmMetrics};
use tradeflow_inference::worker::{InferenceFactory, InferenceMetrics};
use tradeflow_inference::{InferenceStage, ModelContext, StageConfig};
use tradeflow_testkit::TestRedis;

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

/// A fake provider that records the user message of every request.
async fn fake() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let seen = prompts.clone();
    let hold = r#"{"action":"hold","confidence":0.3,"reasoning":"Waiting.","stop_loss":null,"take_profit":null}"#;
    let body = json!({"choices": [{"message": {"role": "assistant", "content": hold}}]}).to_string();
    let app = Router::new().fallback(move |request: Bytes| {
        let (seen, body) = (seen.clone(), body.clone());
        async move {
            let v: Value = serde_json::from_slice(&request).unwrap_or(Value::Null);
            let user = v["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].to_string());
            seen.lock().unwrap().push(user.unwrap_or_default());
            Response::builder().status(200).header("content-type", "application/json").body(Body::from(body)).unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, prompts)
}

fn context(symbol: &str) -> ModelContext {
    let mut stage = InferenceStage::new(Arc::new(StageConfig::default()));
    let last_open = now_ms() / 60_000 * 60_000 - 60_000;
    let mut last = None;
    for i in 0..30i64 {
        let bar = Bar::new(last_open - (29 - i) * 60_000, 99.0, 103.0, 98.0, 100.0 + (i % 3) as f64, 10.0).unwrap();
        let candle =
            Candle { source: "test".into(), symbol: symbol.into(), interval: Interval::M1, bar, aggregated: false };
        last = Some(stage.on_candle_with_context(&candle).unwrap().context);
    }
    last.unwrap()
}

fn analyst(name: &str, url: &str, headlines: usize) -> Arc<Analyst> {
    let mut c = AnalystConfig::new(name, Dialect::OpenAi, url, "test-model", Vec::new());
    c.min_interval_ms = 0;
    c.cache_ttl_s = 0;
    c.headlines = headlines;
    Arc::new(Analyst::new(c, LlmMetrics::register(&Registry::new()).unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_symbols_recent_headline_is_in_the_analysts_prompt() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    bus.init().await.unwrap();
    let producer = Producer::new(bus.clone(), "news");
    let now = now_ms();
    let story = |title: &str, symbols: &[&str], age_ms: i64| NewsItem {
        id: format!("news:{}", title.len()),
        source: "coinwire".into(),
        title: title.into(),
        link: String::new(),
        summary: String::new(),
        published_at: now - age_ms,
        fetched_at: now,
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
    };
    for item in [
        story("Bitcoin tops $100,000 as ETF inflows surge", &["BTCUSD"], 3_600_000),
        story("Ethereum developers schedule an upgrade", &["ETHUSD"], 1_800_000),
        story("Bitcoin miners sold reserves two days ago", &["BTCUSD"], 2 * 86_400_000),
    ] {
        producer.publish("md.news", &MessageId::new(item.id.clone()).unwrap(), item.key(), None, &item).await.unwrap();
    }

    let (url, prompts) = fake().await;
    let reader = analyst("reader", &url, 5);
    let deaf = analyst("deaf", &url, 0);
    let factory = InferenceFactory {
        config: Arc::new(StageConfig { analysts: vec![reader.clone(), deaf.clone()], ..StageConfig::default() }),
        producer: Producer::new(bus.clone(), "inference"),
        metrics: InferenceMetrics::register(&Registry::new()).unwrap(),
        control: None,
    };
    // Creating a partition's handler attaches the headlines and starts following md.news.
    let _handler = factory.create(0, None).unwrap();

    let ctx = context("BTCUSD");
    let started = Instant::now();
    while reader.headlines_for(&ctx, now_ms()).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the follower did not read md.news");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reader.analyse(&ctx).await.status, SignalStatus::Ok);
    assert_eq!(deaf.analyse(&ctx).await.status, SignalStatus::Ok);

    let prompts = prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 2);
    let (with, without) = (&prompts[0], &prompts[1]);
    assert!(with.contains("Recent news headlines about BTCUSD"), "{with}");
    assert!(with.contains("coinwire: Bitcoin tops $100,000 as ETF inflows surge"), "{with}");
    // Another symbol's story and one older than headline_max_age_s (24 h) are left out.
    assert!(!with.contains("Ethereum developers"), "{with}");
    assert!(!with.contains("two days ago"), "{with}");
    assert!(!without.contains("Bitcoin tops"), "{without}");
}
