//! The inference handler with LLM analysts through a real Redis: candles on md.candles, exactly
//! one signal per model per candle on inf.signals, whether the analyst answers, times out, or
//! is not asked (historical candles).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Response;
use prometheus::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::pack;
use tradeflow_bus::{Bus, Consumer, Envelope, Producer, Topology, reply};
use tradeflow_core::market::{Bar, Candle, Interval};
use tradeflow_core::signal::{ModelKind, Signal, SignalStatus};
use tradeflow_core::time::now_ms;
use tradeflow_inference::StageConfig;
use tradeflow_inference::llm::{Analyst, AnalystConfig, ApiKey, Dialect, LlmMetrics};
use tradeflow_inference::worker::{InferenceFactory, InferenceMetrics};
use tradeflow_testkit::TestRedis;

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

/// A fake provider answering `body` after `delay`, counting requests.
async fn fake(body: String, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let app = Router::new().fallback(move |_body: Bytes| {
        let body = body.clone();
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Response::builder().status(200).header("content-type", "application/json").body(Body::from(body)).unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, count)
}

async fn signals(bus: &Bus) -> Vec<Signal> {
    let mut conn = bus.conn();
    let mut out = Vec::new();
    for p in 0..bus.topology().stream("inf.signals").unwrap().partitions {
        let key = bus.keys().partition("inf.signals", p);
        let v: redis::Value = redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut conn).await.unwrap();
        for e in reply::entries("XRANGE", &v).unwrap() {
            for bytes in pack::messages(&e).unwrap() {
                out.push(Envelope::decode(bytes).unwrap().open().unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signal_per_model_per_candle_through_redis_with_a_fast_and_a_slow_analyst() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;

    let hold = r#"{"action":"hold","confidence":0.3,"reasoning":"Range-bound.","stop_loss":null,"take_profit":null}"#;
    let openai =
        json!({"choices": [{"message": {"content": hold}}], "usage": {"prompt_tokens": 900, "completion_tokens": 40}});
    let anthropic =
        json!({"content": [{"type": "text", "text": hold}], "usage": {"input_tokens": 900, "output_tokens": 40}});
    let (fast_url, fast_count) = fake(openai.to_string(), Duration::ZERO).await;
    let (slow_url, slow_count) = fake(anthropic.to_string(), Duration::from_secs(5)).await;

    let registry = Registry::new();
    let llm_metrics = LlmMetrics::register(&registry).unwrap();
    let mut fast =
        AnalystConfig::new("fast", Dialect::OpenAi, &format!("{fast_url}/v1"), "m", vec![ApiKey::new("K1", "sk-1")]);
    fast.min_interval_ms = 0;
    fast.max_candle_age_s = Some(3_600);
    let mut slow = AnalystConfig::new("slow", Dialect::Anthropic, &slow_url, "m", vec![ApiKey::new("K2", "sk-2")]);
    slow.min_interval_ms = 0;
    slow.timeout_ms = 300;
    slow.max_candle_age_s = Some(3_600);
    let analysts = vec![
        Arc::new(Analyst::new(fast, llm_metrics.clone()).unwrap()),
        Arc::new(Analyst::new(slow, llm_metrics.clone()).unwrap()),
    ];
    let config = StageConfig::default().with_analysts(analysts).unwrap();

    // Two symbols of recent one-minute candles; ETHUSDT starts with five from 2023 (a backfill).
    let last_open = now_ms() / 60_000 * 60_000 - 60_000;
    let mut candles = Vec::new();
    for i in 0..5i64 {
        let bar = Bar::new(1_699_999_200_000 + i * 60_000, 2_000.0, 2_001.0, 1_999.0, 2_000.5, 3.0).unwrap();
        candles.push(Candle {
            source: "test".into(),
            symbol: "ETHUSDT".into(),
            interval: Interval::M1,
            bar,
            aggregated: false,
        });
    }
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        for i in 0..20i64 {
            let open_time = last_open - (19 - i) * 60_000;
            let c = 100.0 + (i % 4) as f64;
            let bar = Bar::new(open_time, c - 0.5, c + 1.0, c - 1.0, c, 10.0 + i as f64).unwrap();
            candles.push(Candle {
                source: "test".into(),
                symbol: symbol.into(),
                interval: Interval::M1,
                bar,
                aggregated: false,
            });
        }
    }
    let producer = Producer::new(bus.clone(), "test");
    let out: Vec<_> =
        candles.iter().map(|c| producer.prepare("md.candles", &c.id(), &c.symbol, None, c).unwrap()).collect();
    producer.send(&out).await.unwrap();

    let factory = InferenceFactory {
        config: Arc::new(config),
        producer: Producer::new(bus.clone(), "inference"),
        metrics: InferenceMetrics::register(&registry).unwrap(),
        control: None,
    };
    let inference_metrics = factory.metrics.clone();
    let consumer = Consumer::new(bus.clone(), "md.candles", "inference", "inference", factory).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));

    let expected = candles.len() * 3;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = signals(&bus).await;
    while got.len() < expected {
        assert!(Instant::now() < deadline, "only {} of {expected} signals", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = signals(&bus).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let got = signals(&bus).await;
    assert_eq!(got.len(), expected);

    let mut ids = HashSet::new();
    let mut per_model = HashMap::<String, usize>::new();
    let mut last_open_time = HashMap::<(String, String), i64>::new();
    for s in &got {
        assert!(ids.insert(s.id().to_string()), "signal {} twice", s.id());
        *per_model.entry(s.model.clone()).or_default() += 1;
        // In stream order, each model's signals of a symbol follow the candles.
        let prev = last_open_time.insert((s.symbol.clone(), s.model.clone()), s.open_time);
        assert!(prev.is_none_or(|p| p < s.open_time), "{} out of order", s.id());
        let historical = s.open_time < 1_700_000_000_000;
        match s.model.as_str() {
            "technical" => assert_eq!(s.status, SignalStatus::Ok),
            "fast" | "slow" => {
                assert_eq!(s.model_kind, ModelKind::Llm);
                let reason = match &s.status {
                    SignalStatus::Ok => None,
                    SignalStatus::Error { reason } => Some(reason.as_str()),
                };
                if historical {
                    assert!(reason.is_some_and(|r| r.starts_with("not analysed: candle is ")), "{s:?}");
                } else if s.model == "fast" {
                    assert_eq!(reason, None, "{s:?}");
                    assert_eq!(s.reasoning, "Range-bound.");
                } else {
                    assert_eq!(reason, Some("timed out: no answer within 300 ms"), "{s:?}");
                }
            }
            other => panic!("unexpected model {other}"),
        }
    }
    for model in ["technical", "fast", "slow"] {
        assert_eq!(per_model.get(model), Some(&candles.len()), "{model}");
    }
    assert_eq!(fast_count.load(Ordering::SeqCst), 40, "one request per recent candle, none for the backfill");
    assert_eq!(slow_count.load(Ordering::SeqCst), 40);
    assert_eq!(llm_metrics.requests.with_label_values(&["fast", "skipped"]).get(), 5);
    assert_eq!(llm_metrics.requests.with_label_values(&["slow", "timeout"]).get(), 40);
    assert_eq!(llm_metrics.tokens.with_label_values(&["fast", "input"]).get(), 36_000);
    assert_eq!(inference_metrics.errors.with_label_values(&["slow"]).get(), 45);
    assert_eq!(inference_metrics.errors.with_label_values(&["fast"]).get(), 5);
}
