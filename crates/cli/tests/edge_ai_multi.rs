//! `POST /api/v1/ai/analyze/multi` against a running pipeline and a local fake LLM provider
//! speaking the OpenAI chat-completions format (the response shape of OpenAI's API reference,
//! "The chat completion object", as documented on 2026-12-06: `choices[].message.content`,
//! `usage.prompt_tokens`/`completion_tokens`). Nothing leaves 127.0.0.1.
//!
//! Checked: the body refused field by field before anything is sent; a good answer field by
//! field; the prompt holds both charts; the first key refused (401) and the second used; the
//! analyst's cache answering the same request without a request; malformed answers (missing
//! field, wrong type, a chart unanswered, confidence out of range, not JSON) as 502
//! `llm_bad_answer` naming the field path; a provider error as 502 `llm_error`; tokens and
//! cost in `/ai/cost/statistics`; the route in the OpenAPI document.
//!
//! One test: the LLM configuration reaches `tradeflow up` through its environment
//! (`TRADEFLOW_LLM_CONFIG` and the key variables), which the process-wide environment of this
//! test binary carries to the child.

mod edge_common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Response, Uri};
use edge_common::{CANDLES, DEMO, Edge, last_bar_time};
use reqwest::Method;
use serde_json::{Value, json};

const PATH: &str = "/api/v1/ai/analyze/multi";
const FIRST_KEY: &str = "sk-multi-first-0001";
const SECOND_KEY: &str = "sk-multi-second-0002";
const INPUT_TOKENS: u64 = 1_000;
const OUTPUT_TOKENS: u64 = 100;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    key: Option<String>,
    body: Value,
    /// The status the fake answered.
    status: u16,
}

impl Seen {
    fn message(&self, i: usize) -> String {
        self.body["messages"][i]["content"].as_str().unwrap_or_default().to_string()
    }
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The close of the last demo bar (both symbols replay the same bars).
    close: f64,
}

fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl-multi",
        "object": "chat.completion",
        "created": 1_765_000_000,
        "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS},
    })
    .to_string()
}

/// The answer the fake gives to a user message, by the question in it.
fn answer(user: &str, close: f64) -> (u16, String) {
    let btc = json!({"symbol": "BTCUSD", "interval": "1h", "action": "long", "confidence": 0.7,
        "reasoning": "Higher lows above the 50 EMA.", "stop_loss": close * 0.95, "take_profit": close * 1.1});
    let eth = json!({"symbol": "ETHUSD", "interval": "1h", "action": "hold", "confidence": 0.4,
        "reasoning": "Range-bound.", "stop_loss": null, "take_profit": null});
    let overall = |answer: Value| json!({"action": "long", "confidence": 0.55, "summary": "BTC leads; ETH waits.", "answer": answer});
    let body = |v: Value| (200, completion(&v.to_string()));
    let question = user.lines().find_map(|l| l.strip_prefix("Question: ")).unwrap_or("");
    match question {
        "" => body(json!({"charts": [eth, btc], "overall": overall(Value::Null)})),
        "Which first?" => body(json!({"charts": [btc, eth], "overall": overall(json!("BTCUSD first."))})),
        "missing?" => {
            let mut eth = eth;
            eth.as_object_mut().unwrap().remove("confidence");
            body(json!({"charts": [btc, eth], "overall": overall(json!("x"))}))
        }
        "wrong type?" => {
            let mut btc = btc;
            btc["confidence"] = json!("high");
            body(json!({"charts": [btc, eth], "overall": overall(json!("x"))}))
        }
        "one chart?" => body(json!({"charts": [btc], "overall": overall(json!("x"))})),
        "range?" => {
            let mut btc = btc;
            btc["confidence"] = json!(1.5);
            body(json!({"charts": [btc, eth], "overall": overall(json!("x"))}))
        }
        "prose?" => (200, completion("Sure! BTC looks good.")),
        _ => (500, json!({"error": {"message": "the fake is down", "type": "server_error"}}).to_string()),
    }
}

async fn serve(State(fake): State<Fake>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = body["messages"][1]["content"].as_str().unwrap_or_default().to_string();
    // The first key is refused, as a provider refuses a revoked key.
    let (status, text) = if key.as_deref() == Some(FIRST_KEY) {
        (401, json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}).to_string())
    } else {
        answer(&user, fake.close)
    };
    fake.seen.lock().unwrap().push(Seen { path: uri.path().into(), key, body, status });
    Response::builder().status(status).header("content-type", "application/json").body(Body::from(text)).unwrap()
}

fn last_close() -> f64 {
    let demo = std::fs::read_to_string(DEMO).unwrap();
    demo.lines().nth(CANDLES).unwrap().split(',').nth(4).unwrap().parse().unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_chart_analysis_through_a_fake_llm() {
    let close = last_close();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fake = Fake { seen: Arc::new(Mutex::new(Vec::new())), close };
    let app = Router::new().fallback(serve).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let seen = || fake.seen.lock().unwrap().clone();

    let dir = tempfile::tempdir().unwrap();
    let llm = dir.path().join("llm.toml");
    std::fs::write(
        &llm,
        format!(
            r#"
[[analyst]]
name = "fake"
dialect = "openai"
base_url = "{url}/v1"
model = "fake-model"
api_key_envs = ["TF_MULTI_KEY_1", "TF_MULTI_KEY_2"]
timeout_ms = 5000
min_interval_ms = 0
cache_ttl_s = 300
max_tokens = 1024
price = {{ input_per_mtok_usd = 1.0, output_per_mtok_usd = 2.0 }}
"#
        ),
    )
    .unwrap();
    // SAFETY: set before the pipeline starts, in the only test of this binary; nothing else
    // reads the environment concurrently (the fake server does not).
    unsafe {
        std::env::set_var("TRADEFLOW_LLM_CONFIG", &llm);
        std::env::set_var("TF_MULTI_KEY_1", FIRST_KEY);
        std::env::set_var("TF_MULTI_KEY_2", SECOND_KEY);
    }
    let edge = Edge::start().await;
    let t = edge.trader.clone();
    let two =
        json!({"charts": [{"symbol": "BTCUSD", "interval": "1h"}, {"symbol": "ETHUSD"}], "question": "Which first?"});

    // ---- documented, trader only.
    let doc = edge.get("/openapi.json", None).await.expect(200);
    assert!(doc["paths"][PATH]["post"].is_object(), "{PATH} missing from /openapi.json");
    edge.check_roles(Method::POST, PATH, Some(two.clone()), "trader").await;

    // ---- refused before anything is sent, naming the field.
    let refused = |e: Value, field: &str| {
        assert_eq!(e["error"]["details"]["field"], field, "{e}");
    };
    let e = edge.post(PATH, Some(&t), Some(json!({"charts": []}))).await.expect_error(422, "invalid_body");
    refused(e, "charts");
    let nine: Vec<Value> = (0..9).map(|_| json!({"symbol": "BTCUSD"})).collect();
    let e = edge.post(PATH, Some(&t), Some(json!({"charts": nine}))).await.expect_error(422, "invalid_body");
    assert_eq!(e["error"]["details"]["max"], 8);
    let e = edge
        .post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTCUSD"}, {"symbol": "DOGEUSD"}]})))
        .await
        .expect_error(404, "not_found");
    assert_eq!(e["error"]["details"]["name"], "DOGEUSD");
    refused(e, "charts[1].symbol");
    let e = edge
        .post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTC USD"}]})))
        .await
        .expect_error(422, "invalid_body");
    refused(e, "charts[0].symbol");
    let e = edge
        .post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTCUSD", "interval": "7h"}]})))
        .await
        .expect_error(422, "invalid_body");
    refused(e, "charts[0].interval");
    let e = edge
        .post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTCUSD"}, {"symbol": "btcusd", "interval": "1h"}]})))
        .await
        .expect_error(422, "invalid_body");
    refused(e.clone(), "charts[1]");
    assert!(e["error"]["message"].as_str().unwrap().contains("BTCUSD 1h is charts[0] again"), "{e}");
    for q in [json!(""), json!("   "), json!("q".repeat(1001))] {
        let e = edge
            .post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTCUSD"}], "question": q})))
            .await
            .expect_error(422, "invalid_body");
        refused(e, "question");
    }
    let e = edge
        .post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTCUSD"}], "analyst": "nope"})))
        .await
        .expect_error(422, "unknown_model");
    assert_eq!(
        (&e["error"]["details"]["field"], &e["error"]["details"]["known"]),
        (&json!("analyst"), &json!(["fake"]))
    );
    edge.post(PATH, Some(&t), Some(json!({"charts": [{"symbol": "BTCUSD", "size": 1}]})))
        .await
        .expect_error(422, "invalid_body");
    assert!(seen().is_empty(), "nothing is sent for a refused body: {:?}", seen());

    // ---- a good answer, field by field; the first key refused, the second used.
    let a = edge.post(PATH, Some(&t), Some(two.clone())).await.expect(200);
    assert_eq!(
        (a["analyst"].as_str(), a["dialect"].as_str(), a["model"].as_str()),
        (Some("fake"), Some("openai"), Some("fake-model"))
    );
    assert_eq!((a["cached"].as_bool(), a["question"].as_str()), (Some(false), Some("Which first?")));
    let charts = a["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2, "{a}");
    let (btc, eth) = (&charts[0], &charts[1]);
    assert_eq!((btc["symbol"].as_str(), btc["interval"].as_str()), (Some("BTCUSD"), Some("1h")));
    assert_eq!((btc["action"].as_str(), f(&btc["confidence"])), (Some("long"), 0.7));
    assert_eq!(btc["reasoning"], "Higher lows above the 50 EMA.");
    assert_eq!((f(&btc["stop_loss"]), f(&btc["take_profit"])), (close * 0.95, close * 1.1));
    assert_eq!(
        (f(&btc["close"]), btc["open_time"].as_i64(), btc["bars"].as_u64()),
        (close, Some(last_bar_time()), Some(CANDLES as u64))
    );
    assert!(btc["market"]["trend"].is_string() && btc["source"].as_str().is_some_and(|s| !s.is_empty()), "{btc}");
    assert_eq!(
        (eth["symbol"].as_str(), eth["action"].as_str(), f(&eth["confidence"])),
        (Some("ETHUSD"), Some("hold"), 0.4)
    );
    assert_eq!(
        (eth["stop_loss"].clone(), eth["take_profit"].clone(), eth["reasoning"].as_str()),
        (Value::Null, Value::Null, Some("Range-bound."))
    );
    assert_eq!(
        a["overall"],
        json!({"action": "long", "confidence": 0.55, "summary": "BTC leads; ETH waits.", "answer": "BTCUSD first."})
    );
    let s = seen();
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!((s[0].key.as_deref(), s[0].status), (Some(FIRST_KEY), 401));
    assert_eq!((s[1].key.as_deref(), s[1].status), (Some(SECOND_KEY), 200));
    let r = &s[1];
    assert_eq!(
        (r.path.as_str(), &r.body["model"], &r.body["max_tokens"]),
        ("/v1/chat/completions", &json!("fake-model"), &json!(1024))
    );
    assert!(r.message(0).contains("several charts"), "{}", r.message(0));
    let user = r.message(1);
    for part in ["2 charts.", "Chart 1: BTCUSD 1h", "Chart 2: ETHUSD 1h", "Recent candles", "Question: Which first?"] {
        assert!(user.contains(part), "{part:?} not in the prompt:\n{user}");
    }

    // ---- the same request again: the analyst's cache, no request; the key stays on the second.
    let again = edge.post(PATH, Some(&t), Some(two.clone())).await.expect(200);
    assert_eq!(again["cached"], true);
    assert_eq!((&again["charts"], &again["overall"]), (&a["charts"], &a["overall"]));
    assert_eq!(seen().len(), 2, "a cache hit makes no request");
    // No question: the answer must be null, and the charts come back in the order asked
    // whatever order the analyst used.
    let plain = json!({"charts": [{"symbol": "BTCUSD"}, {"symbol": "ETHUSD"}]});
    let p = edge.post(PATH, Some(&t), Some(plain)).await.expect(200);
    assert_eq!(
        (p["cached"].as_bool(), &p["overall"]["answer"], &p["question"]),
        (Some(false), &Value::Null, &Value::Null)
    );
    assert_eq!(
        (p["charts"][0]["symbol"].as_str(), p["charts"][1]["symbol"].as_str()),
        (Some("BTCUSD"), Some("ETHUSD"))
    );
    assert!(seen()[2..].iter().all(|s| s.key.as_deref() == Some(SECOND_KEY)));

    // ---- malformed answers: 502 naming the field path; never cached.
    let ask = |q: &str| json!({"charts": [{"symbol": "BTCUSD"}, {"symbol": "ETHUSD"}], "question": q});
    let cases = [
        ("missing?", "charts[1].confidence: missing; expected a number from 0 to 1"),
        ("wrong type?", "charts[0].confidence: expected a number from 0 to 1, got \"high\""),
        ("one chart?", "charts: no answer for ETHUSD 1h"),
        ("range?", "charts[0].confidence: expected a number from 0 to 1, got 1.5"),
        ("prose?", "not a JSON object"),
    ];
    for (q, problem) in cases {
        for _ in 0..2 {
            let before = seen().len();
            let e = edge.post(PATH, Some(&t), Some(ask(q))).await.expect_error(502, "llm_bad_answer");
            let message = e["error"]["message"].as_str().unwrap();
            assert!(message.contains(problem), "{q}: {message}");
            assert_eq!(message.matches("(answer: ").count(), 1, "the answer quoted once: {message}");
            assert_eq!(
                (&e["error"]["details"]["outcome"], &e["error"]["details"]["analyst"]),
                (&json!("malformed"), &json!("fake"))
            );
            assert_eq!(seen().len(), before + 1, "{q}: a malformed answer is not cached");
        }
    }
    let e = edge.post(PATH, Some(&t), Some(ask("down?"))).await.expect_error(502, "llm_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("HTTP 500"), "{e}");
    assert!(!e.to_string().contains(SECOND_KEY) && !e.to_string().contains(FIRST_KEY), "no key in errors: {e}");

    // ---- tokens and cost: every 2xx the fake gave, at the configured prices.
    let answered = seen().iter().filter(|s| s.status == 200).count() as u64;
    let cost = edge.get("/api/v1/ai/cost/statistics", Some(&edge.viewer)).await.expect(200);
    let fake_cost = cost["analysts"].as_array().unwrap().iter().find(|a| a["analyst"] == "fake").cloned().unwrap();
    assert_eq!(
        (fake_cost["input_tokens"].as_u64(), fake_cost["output_tokens"].as_u64()),
        (Some(answered * INPUT_TOKENS), Some(answered * OUTPUT_TOKENS)),
        "{fake_cost}"
    );
    let usd = answered as f64 * (INPUT_TOKENS as f64 * 1.0 + OUTPUT_TOKENS as f64 * 2.0) / 1e6;
    assert!((f(&fake_cost["cost_usd"]) - usd).abs() < 1e-9, "{fake_cost}");
    assert_eq!(fake_cost["requests"]["cached"].as_u64(), Some(1), "{fake_cost}");
}
