//! LLM analysts against local fake servers speaking the OpenAI chat-completions and Anthropic
//! Messages wire formats. Nothing leaves 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Response, Uri};
use prometheus::Registry;
use serde_json::{Value, json};
use tradeflow_core::market::{Bar, Candle, Interval};
use tradeflow_core::signal::{Action, ModelKind, Signal, SignalStatus};
use tradeflow_core::time::now_ms;
use tradeflow_inference::llm::{Analyst, AnalystConfig, ApiKey, Dialect, LlmMetrics, run_analysts};
use tradeflow_inference::{InferenceStage, ModelContext, StageConfig};

// ---------------------------------------------------------------------------------------------
// The fake provider.

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    /// The key from `Authorization: Bearer` or `x-api-key`.
    key: Option<String>,
    headers: HeaderMap,
    body: Value,
    at: Instant,
}

impl Seen {
    /// The user message (both dialects put it last).
    fn user(&self) -> String {
        let messages = self.body["messages"].as_array().unwrap();
        messages.last().unwrap()["content"].as_str().unwrap().to_string()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply { status, headers: Vec::new(), body: body.into(), delay: Duration::ZERO }
}

type Script = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

struct Fake {
    /// `http://127.0.0.1:PORT`.
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn keys(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.key.unwrap_or_default()).collect()
    }
}

async fn serve(State(state): State<FakeState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::to_string);
    let seen = Seen {
        path: uri.path().to_string(),
        key,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    let n = {
        let mut all = state.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let r = (state.script)(&seen, n);
    // A slow provider, simulated (the timeout tests); not a synchronisation.
    tokio::time::sleep(r.delay).await;
    let mut response = Response::builder().status(r.status).header("content-type", "application/json");
    for (k, v) in r.headers {
        response = response.header(k, v);
    }
    response.body(Body::from(r.body)).unwrap()
}

async fn fake(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(serve).with_state(FakeState { seen: seen.clone(), script: Arc::new(script) });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { url, seen }
}

fn openai_body(content: &str, input: u64, output: u64) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    })
    .to_string()
}

fn anthropic_body(content: &str, input: u64, output: u64) -> String {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": content}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input, "output_tokens": output},
    })
    .to_string()
}

/// A long answer about a candle closing at 100.
const LONG: &str = r#"{"action": "long", "confidence": 0.7, "reasoning": "Uptrend with rising volume.", "stop_loss": 97.5, "take_profit": 104}"#;
const HOLD: &str =
    r#"{"action": "hold", "confidence": 0.2, "reasoning": "Nothing to do.", "stop_loss": null, "take_profit": null}"#;

// ---------------------------------------------------------------------------------------------
// Candles and analysts.

/// The contexts of the last `n` of 60 one-minute candles of `symbol`, the last one just
/// closed; every one closes at 100.
fn contexts(symbol: &str, n: usize) -> Vec<ModelContext> {
    let mut stage = InferenceStage::new(Arc::new(StageConfig::default()));
    let last_open = now_ms() / 60_000 * 60_000 - 60_000;
    let mut out = Vec::new();
    for i in 0..60i64 {
        let open_time = last_open - (59 - i) * 60_000;
        let wiggle = (i % 7) as f64 * 0.3;
        let bar = Bar::new(open_time, 99.0 + wiggle, 101.0 + wiggle, 98.0, 100.0, 10.0 + (i % 5) as f64).unwrap();
        let candle =
            Candle { source: "test".into(), symbol: symbol.into(), interval: Interval::M1, bar, aggregated: false };
        out.push(stage.on_candle_with_context(&candle).unwrap().context);
    }
    out.split_off(60 - n)
}

fn config(name: &str, dialect: Dialect, base_url: &str, keys: &[(&str, &str)]) -> AnalystConfig {
    let keys = keys.iter().map(|(env, secret)| ApiKey::new(*env, *secret)).collect();
    let mut c = AnalystConfig::new(name, dialect, base_url, "test-model", keys);
    c.min_interval_ms = 0;
    c.timeout_ms = 5_000;
    c.max_candle_age_s = Some(3_600);
    c
}

fn analyst(config: AnalystConfig) -> (Arc<Analyst>, LlmMetrics, Registry) {
    let registry = Registry::new();
    let metrics = LlmMetrics::register(&registry).unwrap();
    (Arc::new(Analyst::new(config, metrics.clone()).unwrap()), metrics, registry)
}

fn requests(m: &LlmMetrics, analyst: &str, outcome: &str) -> u64 {
    m.requests.with_label_values(&[analyst, outcome]).get()
}

fn reason(s: &Signal) -> &str {
    match &s.status {
        SignalStatus::Error { reason } => reason,
        SignalStatus::Ok => panic!("expected an error signal, got {s:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_openai_answer_becomes_an_ok_signal_with_its_fields() {
    let server = fake(|_, _| reply(200, openai_body(LONG, 1_000, 200))).await;
    let mut c = config("gpt", Dialect::OpenAi, &format!("{}/v1", server.url), &[("GPT_KEY", "sk-test-1")]);
    c.price.input_per_mtok_usd = 3.0;
    c.price.output_per_mtok_usd = 15.0;
    c.temperature = Some(0.1);
    let (gpt, metrics, _registry) = analyst(c);
    let ctx = &contexts("BTCUSDT", 1)[0];

    let s = gpt.analyse(ctx).await;
    assert_eq!(s.status, SignalStatus::Ok, "{s:?}");
    assert_eq!((s.model.as_str(), s.model_kind, s.action), ("gpt", ModelKind::Llm, Action::Long));
    assert_eq!((s.confidence, s.stop_loss, s.take_profit), (0.7, Some(97.5), Some(104.0)));
    assert_eq!(s.reasoning, "Uptrend with rising volume.");
    assert_eq!(s.scores, [("llm".to_string(), 0.7)].into());
    assert_eq!(
        (s.candle_id.as_str(), s.symbol.as_str(), s.close, s.open_time),
        (ctx.candle_id.as_str(), "BTCUSDT", 100.0, ctx.open_time)
    );
    assert_eq!(s.market, ctx.market);
    assert_eq!(s.features.get("rsi_14"), ctx.indicators.rsi_14.as_ref(), "the indicators sent are the features");
    assert!(s.features.contains_key("ema_50") && s.features.contains_key("volume_ratio_20"), "{:?}", s.features);
    assert!(s.latency_us > 0);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.key.as_deref(), Some("sk-test-1"));
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["max_tokens"], 512);
    assert_eq!(r.body["temperature"], 0.1);
    assert_eq!(r.body["messages"][0]["role"], "system");
    assert!(r.body["messages"][0]["content"].as_str().unwrap().contains("exactly one JSON object"));
    let user = r.user();
    assert!(user.contains("Candle: BTCUSDT 1m from test") && user.contains("close 100."), "{user}");
    assert!(user.contains("Market condition: trend ") && user.contains("rsi_14="), "{user}");

    assert_eq!(requests(&metrics, "gpt", "ok"), 1);
    assert_eq!(metrics.tokens.with_label_values(&["gpt", "input"]).get(), 1_000);
    assert_eq!(metrics.tokens.with_label_values(&["gpt", "output"]).get(), 200);
    // (1000 × 3 + 200 × 15) / 1e6 USD.
    assert_eq!(metrics.cost_usd.with_label_values(&["gpt"]).get(), 0.006);
    assert_eq!(metrics.request_seconds.with_label_values(&["gpt"]).get_sample_count(), 1);
}

#[tokio::test]
async fn an_anthropic_answer_in_a_code_fence_becomes_an_ok_signal() {
    let fenced = format!("```json\n{HOLD}\n```");
    let server = fake(move |_, _| reply(200, anthropic_body(&fenced, 800, 60))).await;
    let mut c = config("claude", Dialect::Anthropic, &server.url, &[("CLAUDE_KEY", "sk-ant-test")]);
    c.max_tokens = 300;
    c.price.input_per_mtok_usd = 1.0;
    c.price.output_per_mtok_usd = 5.0;
    let (claude, metrics, _registry) = analyst(c);
    let ctx = &contexts("ETHUSDT", 1)[0];

    let s = claude.analyse(ctx).await;
    assert_eq!(s.status, SignalStatus::Ok, "{s:?}");
    assert_eq!((s.action, s.confidence, s.stop_loss, s.take_profit), (Action::Hold, 0.2, None, None));
    assert_eq!(s.reasoning, "Nothing to do.");

    let r = &server.seen()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.key.as_deref(), Some("sk-ant-test"));
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.headers["anthropic-version"], "2023-06-01");
    assert_eq!(r.body["max_tokens"], 300);
    assert!(r.body["system"].as_str().unwrap().contains("exactly one JSON object"));
    assert_eq!(r.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["messages"][0]["role"], "user");
    assert!(r.user().contains("Candle: ETHUSDT 1m"));
    // (800 × 1 + 60 × 5) / 1e6 USD.
    assert_eq!(metrics.cost_usd.with_label_values(&["claude"]).get(), 0.0011);
    assert_eq!(metrics.tokens.with_label_values(&["claude", "output"]).get(), 60);
}

#[tokio::test]
async fn malformed_answers_are_error_signals_naming_the_field() {
    let answers = [
        "I think you should buy.".to_string(),
        r#"{"action": "long", "confidence": 1.7, "reasoning": "sure", "stop_loss": null, "take_profit": null}"#.into(),
        r#"{"action": "long", "confidence": 0.5, "reasoning": "x", "stop_loss": 101, "take_profit": null}"#.into(),
        r#"{"action": "long", "confidence": 0.5, "reasoning": "x", "stop_loss": null, "take_profit": null, "leverage": 5}"#
            .into(),
    ];
    let to_serve = answers.clone();
    let server = fake(move |_, n| reply(200, openai_body(&to_serve[n], 100, 10))).await;
    let (gpt, metrics, _registry) = analyst(config("gpt", Dialect::OpenAi, &server.url, &[("K", "sk-1")]));
    let expected = [
        "malformed answer: not a JSON object: expected value at line 1 column 1",
        "malformed answer: confidence: expected a number from 0 to 1, got 1.7",
        "malformed answer: stop_loss: expected a price below the close 100 for a long signal, got 101",
        "malformed answer: leverage: unknown field; expected only action, confidence, reasoning, stop_loss, take_profit",
    ];
    for (ctx, expected) in contexts("BTCUSDT", 4).iter().zip(expected) {
        let s = gpt.analyse(ctx).await;
        assert!(reason(&s).starts_with(expected), "{s:?}");
        assert!(reason(&s).contains("(answer: "), "the answer is quoted: {s:?}");
        assert_eq!((s.action, s.confidence, s.model_kind), (Action::Hold, 0.0, ModelKind::Llm));
        assert_eq!(s.scores, [("llm".to_string(), 0.0)].into());
    }
    assert_eq!(requests(&metrics, "gpt", "malformed"), 4);
    // Tokens were spent all the same.
    assert_eq!(metrics.tokens.with_label_values(&["gpt", "input"]).get(), 400);

    // A 2xx that is not the dialect's response.
    let server = fake(|_, _| reply(200, r#"{"choices": []}"#)).await;
    let (gpt, _, _r) = analyst(config("gpt", Dialect::OpenAi, &server.url, &[("K", "sk-1")]));
    let s = gpt.analyse(&contexts("BTCUSDT", 1)[0]).await;
    assert_eq!(reason(&s), "malformed response: choices[0].message.content: expected a string");
}

#[tokio::test]
async fn a_429_moves_to_the_backup_key_and_rests_the_limited_one_until_retry_after() {
    // The primary is limited on its first request only, for one second.
    let server = fake(|seen, n| {
        if seen.key.as_deref() == Some("sk-primary") && n == 0 {
            Reply {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                body: r#"{"error": {"message": "Rate limit reached"}}"#.into(),
                delay: Duration::ZERO,
            }
        } else {
            reply(200, openai_body(LONG, 10, 10))
        }
    })
    .await;
    let (gpt, metrics, _registry) =
        analyst(config("gpt", Dialect::OpenAi, &server.url, &[("PRIMARY", "sk-primary"), ("BACKUP", "sk-backup")]));
    let ctx = contexts("BTCUSDT", 4);

    assert_eq!(gpt.analyse(&ctx[0]).await.status, SignalStatus::Ok);
    assert_eq!(server.keys(), ["sk-primary", "sk-backup"], "the backup at once");
    assert_eq!(gpt.analyse(&ctx[1]).await.status, SignalStatus::Ok);
    assert_eq!(server.keys(), ["sk-primary", "sk-backup", "sk-backup"], "the limited key rests");
    assert_eq!((requests(&metrics, "gpt", "rate_limited"), requests(&metrics, "gpt", "ok")), (1, 2));

    // The rest is kept on tokio's clock: move it instead of sleeping through the second. The
    // clock runs again (`resume`) before each request, so that the HTTP timeouts are not
    // auto-advanced while the fake answers.
    let skip = |by: Duration| async move {
        tokio::time::pause();
        tokio::time::advance(by).await;
        tokio::time::resume();
    };
    skip(Duration::from_millis(500)).await;
    assert_eq!(gpt.analyse(&ctx[2]).await.status, SignalStatus::Ok);
    assert_eq!(server.keys().last().map(String::as_str), Some("sk-backup"), "still resting before its Retry-After");
    skip(Duration::from_millis(600)).await;
    assert_eq!(gpt.analyse(&ctx[3]).await.status, SignalStatus::Ok);
    assert_eq!(server.keys().last().map(String::as_str), Some("sk-primary"), "back to the primary after its reset");
}

#[tokio::test]
async fn with_every_key_rate_limited_the_answer_is_an_error_without_waiting() {
    let server = fake(|_, _| Reply {
        status: 429,
        headers: vec![("retry-after", "30".into())],
        body: "{}".into(),
        delay: Duration::ZERO,
    })
    .await;
    let (gpt, metrics, _registry) =
        analyst(config("gpt", Dialect::OpenAi, &server.url, &[("PRIMARY", "sk-a"), ("BACKUP", "sk-b")]));
    let ctx = contexts("BTCUSDT", 2);
    let s = gpt.analyse(&ctx[0]).await;
    assert!(reason(&s).starts_with("all API keys rate-limited until "), "{s:?}");
    assert!(reason(&s).contains("PRIMARY rate-limited (HTTP 429) until") && reason(&s).contains("BACKUP"), "{s:?}");
    assert_eq!(server.keys(), ["sk-a", "sk-b"]);

    let started = Instant::now();
    let s = gpt.analyse(&ctx[1]).await;
    assert!(started.elapsed() < Duration::from_millis(100), "no waiting: {:?}", started.elapsed());
    assert!(reason(&s).starts_with("all API keys rate-limited until "), "{s:?}");
    assert_eq!(server.seen().len(), 2, "no request while every key rests");
    assert_eq!(requests(&metrics, "gpt", "rate_limited"), 3, "two 429s, then one analysis without a request");
}

#[tokio::test]
async fn a_401_moves_to_the_backup_key_and_keys_never_show() {
    // The provider echoes the refused key, as some do.
    let server = fake(|seen, _| match seen.key.as_deref() {
        Some("sk-live-SECRET-A") => {
            reply(401, r#"{"error": {"message": "Incorrect API key provided: sk-live-SECRET-A"}}"#)
        }
        Some(k) => reply(500, format!(r#"{{"error": {{"message": "boom for {k}"}}}}"#)),
        None => reply(400, "no key"),
    })
    .await;
    let keys = [("OPENAI_KEY", "sk-live-SECRET-A"), ("OPENAI_KEY_2", "sk-live-SECRET-B")];
    let c = config("gpt", Dialect::OpenAi, &server.url, &keys);
    let (gpt, metrics, registry) = analyst(c.clone());
    let ctx = contexts("BTCUSDT", 2);

    let s = gpt.analyse(&ctx[0]).await;
    assert_eq!(server.keys(), ["sk-live-SECRET-A", "sk-live-SECRET-B"], "the backup at once");
    assert_eq!(reason(&s), "HTTP 500 Internal Server Error: boom for ***");
    let s2 = gpt.analyse(&ctx[1]).await;
    assert_eq!(server.keys().len(), 3);
    assert_eq!(server.keys()[2], "sk-live-SECRET-B", "the refused key rests for an hour");
    assert_eq!(requests(&metrics, "gpt", "http_error"), 3);

    // Every key refused.
    let refusing = fake(|seen, _| {
        reply(
            401,
            format!(r#"{{"error": {{"message": "Incorrect API key provided: {}"}}}}"#, seen.key.clone().unwrap()),
        )
    })
    .await;
    let mut c2 = c.clone();
    c2.base_url = Some(refusing.url.clone());
    let (gpt2, _, _r) = analyst(c2);
    let s3 = gpt2.analyse(&ctx[0]).await;
    assert!(reason(&s3).starts_with("all API keys resting until "), "{s3:?}");
    assert!(reason(&s3).contains("OPENAI_KEY refused (HTTP 401) until"), "{s3:?}");

    // A server that is not there.
    let mut c3 = c.clone();
    c3.base_url = Some("http://127.0.0.1:1".into());
    let (gpt3, m3, _r) = analyst(c3);
    let s4 = gpt3.analyse(&ctx[0]).await;
    assert!(reason(&s4).starts_with("request failed: "), "{s4:?}");
    assert_eq!(requests(&m3, "gpt", "http_error"), 1);

    let texts = [
        format!("{s:?}"),
        format!("{s2:?}"),
        format!("{s3:?}"),
        format!("{s4:?}"),
        format!("{c:?}"),
        format!("{gpt:?}"),
        format!("{:?}", StageConfig::default().with_analysts(vec![gpt.clone()]).unwrap()),
        format!("{} {:?}", c.api_keys[0], c.api_keys[1]),
        tradeflow_bus::metrics::render(&registry),
    ];
    for t in texts {
        assert!(!t.contains("SECRET"), "a key leaked: {t}");
    }
    assert_eq!(format!("{:?}", c.api_keys[0]), "***");
}

#[tokio::test]
async fn a_slow_answer_times_out_within_the_timeout_and_the_rest_of_the_batch_comes_out() {
    let server = fake(|seen, _| {
        let mut r = reply(200, openai_body(HOLD, 10, 10));
        if seen.user().contains("SLOWUSD") {
            r.delay = Duration::from_secs(5);
        }
        r
    })
    .await;
    let mut c = config("gpt", Dialect::OpenAi, &server.url, &[("K", "sk-1")]);
    c.timeout_ms = 400;
    let (gpt, metrics, _registry) = analyst(c);
    let mut batch = contexts("FASTUSD", 3);
    batch.insert(1, contexts("SLOWUSD", 1).remove(0));

    let started = Instant::now();
    let signals = run_analysts(&[gpt], &batch).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(1_000), "took {took:?}");
    assert_eq!(signals.len(), 4);
    for (ctx, s) in batch.iter().zip(&signals) {
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!(s.candle_id, ctx.candle_id);
        if ctx.symbol == "SLOWUSD" {
            assert_eq!(reason(s), "timed out: no answer within 400 ms");
            assert!(s.latency_us >= 400_000, "{}", s.latency_us);
        } else {
            assert_eq!(s.status, SignalStatus::Ok, "{s:?}");
        }
    }
    assert_eq!((requests(&metrics, "gpt", "timeout"), requests(&metrics, "gpt", "ok")), (1, 3));
}

#[tokio::test]
async fn requests_are_paced_and_one_that_cannot_start_before_its_deadline_is_an_error_at_once() {
    let server = fake(|_, _| reply(200, openai_body(HOLD, 10, 10))).await;
    let mut c = config("gpt", Dialect::OpenAi, &server.url, &[("K", "sk-1")]);
    c.min_interval_ms = 300;
    c.timeout_ms = 800;
    let (gpt, metrics, _registry) = analyst(c);
    let batch = contexts("BTCUSDT", 4);

    let started = Instant::now();
    let signals = run_analysts(&[gpt], &batch).await;
    assert!(started.elapsed() < Duration::from_millis(1_000), "{:?}", started.elapsed());
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "turns at 0, 300 and 600 ms; the fourth (900 ms) is past the 800 ms timeout");
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(280), "requests {gap:?} apart");
    }
    let errors: Vec<&str> = signals.iter().flatten().filter(|s| s.status != SignalStatus::Ok).map(reason).collect();
    assert_eq!(errors.len(), 1, "{signals:?}");
    assert!(errors[0].starts_with("not sent: the next request turn is in "), "{}", errors[0]);
    assert!(errors[0].ends_with("past the 800 ms timeout (min_interval_ms 300)"), "{}", errors[0]);
    assert_eq!(requests(&metrics, "gpt", "timeout"), 1);
}

#[tokio::test]
async fn a_cached_answer_makes_no_second_request() {
    let server = fake(|_, _| reply(200, openai_body(LONG, 1_000, 200))).await;
    let mut c = config("gpt", Dialect::OpenAi, &server.url, &[("K", "sk-1")]);
    c.price.input_per_mtok_usd = 3.0;
    c.price.output_per_mtok_usd = 15.0;
    let (gpt, metrics, _registry) = analyst(c);
    let ctx = contexts("BTCUSDT", 2);

    let first = gpt.analyse(&ctx[1]).await;
    let again = gpt.analyse(&ctx[1]).await;
    assert_eq!(server.seen().len(), 1, "the cache answered");
    let strip = |mut s: Signal| {
        s.latency_us = 0;
        s
    };
    assert_eq!(strip(first), strip(again));
    assert_eq!((requests(&metrics, "gpt", "ok"), requests(&metrics, "gpt", "cached")), (1, 1));
    // Another candle is another request; the cost is counted per request from the usage.
    gpt.analyse(&ctx[0]).await;
    assert_eq!(server.seen().len(), 2);
    assert_eq!(metrics.cost_usd.with_label_values(&["gpt"]).get(), 0.012);
    assert_eq!(metrics.tokens.with_label_values(&["gpt", "input"]).get(), 2_000);

    // No cache: every analysis asks.
    let mut c = config("nocache", Dialect::OpenAi, &server.url, &[("K", "sk-1")]);
    c.cache_ttl_s = 0;
    let (nocache, _, _r) = analyst(c);
    nocache.analyse(&ctx[1]).await;
    nocache.analyse(&ctx[1]).await;
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn a_historical_candle_is_not_sent() {
    let server = fake(|_, _| reply(200, openai_body(LONG, 10, 10))).await;
    let mut c = config("gpt", Dialect::OpenAi, &server.url, &[("K", "sk-1")]);
    c.max_candle_age_s = None; // two intervals
    let (gpt, metrics, _registry) = analyst(c);
    let mut stage = InferenceStage::new(Arc::new(StageConfig::default()));
    // 2023-11-14T22:00:00Z.
    let bar = Bar::new(1_699_999_200_000, 100.0, 101.0, 99.0, 100.0, 5.0).unwrap();
    let candle =
        Candle { source: "csv".into(), symbol: "BTCUSD".into(), interval: Interval::H1, bar, aggregated: false };
    let ctx = stage.on_candle_with_context(&candle).unwrap().context;

    let s = gpt.analyse(&ctx).await;
    let age_s = (now_ms() - 1_699_999_200_000 - 3_600_000) / 1000;
    let r = reason(&s);
    assert!(r.starts_with("not analysed: candle is ") && r.ends_with(" s old (max 7200 s)"), "{r}");
    let said: i64 = r["not analysed: candle is ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((said - age_s).abs() <= 2, "{said} vs {age_s}");
    assert!(s.features.is_empty(), "nothing was sent");
    assert_eq!(server.seen().len(), 0);
    assert_eq!(requests(&metrics, "gpt", "skipped"), 1);
    // The just-closed candle of a 1-minute series is recent enough with the default.
    let s = gpt.analyse(&contexts("BTCUSDT", 1)[0]).await;
    assert_eq!(s.status, SignalStatus::Ok, "{s:?}");
}

#[tokio::test]
async fn several_analysts_run_side_by_side_one_signal_each_per_candle() {
    let openai = fake(|_, _| reply(200, openai_body(LONG, 10, 10))).await;
    let anthropic = fake(|_, _| reply(200, anthropic_body(HOLD, 10, 10))).await;
    let registry = Registry::new();
    let metrics = LlmMetrics::register(&registry).unwrap();
    let analysts: Vec<Arc<Analyst>> = [
        config("gpt", Dialect::OpenAi, &openai.url, &[("K1", "sk-1")]),
        config("deepseek", Dialect::OpenAi, &openai.url, &[("K2", "sk-2")]),
        config("claude", Dialect::Anthropic, &anthropic.url, &[("K3", "sk-3")]),
    ]
    .into_iter()
    .map(|c| Arc::new(Analyst::new(c, metrics.clone()).unwrap()))
    .collect();
    let stage = StageConfig::default().with_analysts(analysts.clone()).unwrap();
    assert_eq!(
        stage.describe(),
        "models technical; LLM analysts: gpt (openai test-model), deepseek (openai test-model), claude (anthropic test-model)"
    );
    let batch = contexts("BTCUSDT", 5);
    let signals = run_analysts(&analysts, &batch).await;
    for (ctx, s) in batch.iter().zip(&signals) {
        let models: Vec<&str> = s.iter().map(|s| s.model.as_str()).collect();
        assert_eq!(models, ["gpt", "deepseek", "claude"]);
        assert!(s.iter().all(|s| s.status == SignalStatus::Ok && s.candle_id == ctx.candle_id), "{s:?}");
    }
    assert_eq!((openai.seen().len(), anthropic.seen().len()), (10, 5));
    // A name is taken once, and never a rule model's.
    let twice = StageConfig::default().with_analysts(vec![analysts[0].clone(), analysts[0].clone()]).unwrap_err();
    assert_eq!(twice, ["analyst \"gpt\" is configured twice"]);
}
