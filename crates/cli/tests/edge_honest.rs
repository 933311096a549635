//! The edge answers what happened, against a running pipeline: an account change says what the
//! reload does (and `tradeflow up` does reload); figures no update measured are `null` with
//! their `source`, not the starting balance; a standalone edge reports what the workers spend
//! on LLM analysts.

mod edge_common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edge_common::{BIN, DEMO, Edge, STREAMS};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tradeflow_bus::{Bus, Producer};
use tradeflow_core::Payload;
use tradeflow_core::order::{OrderIntent, Rejection};
use tradeflow_core::signal::Action;
use tradeflow_testkit::TestRedis;

/// What risk did with the decision about `symbol`: `order`, or the rejection's reason.
async fn risk_outcome(bus: &Bus, symbol: &str) -> Option<String> {
    for e in tradeflow_testkit::envelopes(bus, "risk.orders").await {
        if e.kind == OrderIntent::KIND && e.open::<OrderIntent>().unwrap().bar.symbol == symbol {
            return Some("order".into());
        }
        if e.kind == Rejection::KIND {
            let r: Rejection = e.open().unwrap();
            if r.bar.symbol == symbol {
                return Some(r.reason.code().into());
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_say_what_the_reload_does_and_unmeasured_figures_are_null() {
    let edge = Edge::start().await;
    let t = Some(edge.trader.as_str());
    let v = Some(edge.viewer.as_str());

    // Switch alpha off in its file: the answer says the stages re-read it ...
    let changed = edge
        .call(Method::PATCH, "/api/v1/trading/accounts/alpha", t, Some(json!({"trading_enabled": false})))
        .await
        .expect(200);
    let note = changed["message"].as_str().unwrap();
    assert!(note.contains("tradeflow up") && note.contains("re-reads it"), "{note}");
    assert!(!note.contains("next start"), "{note}");
    // ... and `tradeflow up`'s risk stage does: alpha's next entry is refused.
    let producer = Producer::new(edge.bus.clone(), "test");
    let started = Instant::now();
    for i in 0.. {
        let symbol = format!("ZZ{i}USD");
        let d = tradeflow_testkit::flat_decision("technical", &symbol, 0, Action::Long, 100.0);
        let out = producer.prepare("ens.decisions", &d.id(), &d.profile, None, &d).unwrap();
        producer.send(&[out]).await.unwrap();
        let outcome = loop {
            if let Some(o) = risk_outcome(&edge.bus, &symbol).await {
                break o;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no risk outcome for {symbol}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if outcome == "trading_disabled" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "up's risk stage did not reload: {symbol} → {outcome}");
    }

    // A new account: risk has sent no update for it, so nothing about its money is measured.
    let fresh = json!({"id": "fresh", "profile": "committee", "starting_balance": 777.0});
    let created = edge.post("/api/v1/trading/accounts", t, Some(fresh)).await.expect(201);
    assert!(created["message"].as_str().unwrap().contains("re-reads it"), "{created}");
    let view = edge.get("/api/v1/trading/accounts/fresh", v).await.expect(200);
    let a = &view["account"];
    for field in ["balance", "equity", "pnl", "roi", "realized_pnl", "unrealized_pnl", "fees", "open_positions"] {
        assert_eq!(a[field], Value::Null, "{field}: {a}");
    }
    assert_eq!((a["source"].as_str(), a["starting_balance"].as_f64()), (Some("none"), Some(777.0)), "{a}");
    let accounts = edge.get("/api/v1/trading/accounts", v).await.expect(200);
    let alpha = accounts["items"].as_array().unwrap().iter().find(|a| a["id"] == "alpha").unwrap().clone();
    assert_eq!(alpha["source"], "account_update", "{alpha}");
    assert!(alpha["equity"].is_f64(), "{alpha}");

    let status = edge.get("/api/v1/trading/status", v).await.expect(200);
    assert_eq!(
        (&status["total_equity"], &status["unmeasured_accounts"]),
        (&Value::Null, &json!(["fresh"])),
        "{status}"
    );
    let perf = edge.get("/api/v1/analytics/performance", v).await.expect(200);
    assert_eq!((&perf["total_equity"], &perf["roi"]), (&Value::Null, &Value::Null), "{perf}");
    let p = perf["items"].as_array().unwrap().iter().find(|p| p["account"] == "fresh").unwrap();
    assert_eq!((&p["equity"], &p["pnl"], p["source"].as_str()), (&Value::Null, &Value::Null, Some("none")), "{p}");
    let portfolio = edge.get("/api/v1/analytics/portfolio", v).await.expect(200);
    assert_eq!((&portfolio["total_equity"], &portfolio["leverage"]), (&Value::Null, &Value::Null), "{portfolio}");
    assert_eq!(portfolio["unmeasured_accounts"], json!(["fresh"]));
    let risk = edge.get("/api/v1/analytics/risk?account=fresh", v).await.expect(200);
    let r = &risk["items"][0];
    assert_eq!(
        (&r["equity"], &r["total_return"], r["source"].as_str()),
        (&Value::Null, &Value::Null, Some("none")),
        "{r}"
    );
    let board = edge.get("/api/v1/trading/leaderboard", v).await.expect(200);
    let last = board["items"].as_array().unwrap().last().unwrap();
    assert_eq!((last["account"].as_str(), &last["roi"]), (Some("fresh"), &Value::Null), "{board}");
}

/// An OpenAI-style endpoint on loopback that answers every chat completion with 200, a body
/// that is not the JSON asked for, and its token usage (so the analyst counts tokens and cost,
/// then records the answer as malformed). Returns its base URL and the count of requests.
async fn fake_llm() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({
                "choices": [{"message": {"role": "assistant", "content": "no opinion"}}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 100}
            }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_edge_reports_what_the_workers_spend() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (llm_url, requests) = fake_llm().await;
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let head: Vec<&str> = demo.lines().take(41).collect();
    std::fs::write(dir.path().join("bars.csv"), head.join("\n") + "\n").unwrap();
    // $2 per million input tokens, $10 per million output: $0.003 a request.
    std::fs::write(
        dir.path().join("llm.toml"),
        format!(
            "[[analyst]]\nname = \"gpt\"\ndialect = \"openai\"\nbase_url = \"{llm_url}\"\nmodel = \"m\"\n\
             min_interval_ms = 0\nmax_candle_age_s = 315360000\n\
             price = {{ input_per_mtok_usd = 2.0, output_per_mtok_usd = 10.0 }}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("tradeflow.toml"), "[edge]\nanonymous_read = true\n").unwrap();
    let tradeflow = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["--config", dir.path().join("tradeflow.toml").to_str().unwrap()])
            .args(args)
            .env("REDIS_URL", redis.url())
            .env("TRADEFLOW_STREAMS", STREAMS)
            .env_remove("TRADEFLOW_PROFILES")
            .env_remove("TRADEFLOW_ACCOUNTS")
            .env_remove("TRADEFLOW_JWT_SECRET")
            .env_remove("TRADEFLOW_LLM_CONFIG")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };

    // The workers: the whole pipeline without an edge, its analyst spending on every bar.
    let up = tradeflow(&[
        "up",
        "--no-edge",
        "--exit-when-drained",
        "--models",
        "technical",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--llm-config",
        dir.path().join("llm.toml").to_str().unwrap(),
        "--replay",
        &format!("BTCUSD={}", dir.path().join("bars.csv").display()),
    ])
    .output();
    let up = tokio::time::timeout(Duration::from_secs(120), up).await.expect("up finished").unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let n = requests.load(Ordering::SeqCst);
    assert!(n >= 10, "the analyst was asked about the bars ({n} requests)");

    // An edge of its own, with no analyst configured.
    let mut edge = tradeflow(&["edge", "--dev", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(edge.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("edge: http://") {
                return format!("http://{}", rest.split('/').next().unwrap());
            }
        }
        panic!("tradeflow edge ended before it listened");
    })
    .await
    .unwrap();
    tradeflow_net::tls::install_ring_provider();
    let cost: Value = reqwest::get(format!("{base}/api/v1/ai/cost/statistics")).await.unwrap().json().await.unwrap();
    assert_eq!(cost["llm_configured"], false, "{cost}");
    let expected = n as f64 * 0.003;
    let total = cost["total_cost_usd"].as_f64().unwrap();
    assert!((total - expected).abs() < 1e-9, "{total} USD reported, {expected} spent ({n} requests): {cost}");
    assert_eq!(cost["total_input_tokens"].as_u64(), Some(1000 * n as u64), "{cost}");
    let gpt = cost["analysts"].as_array().unwrap().iter().find(|a| a["analyst"] == "gpt").unwrap();
    assert_eq!(gpt["requests"]["malformed"].as_u64(), Some(n as u64), "{gpt}");
    let processes = cost["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 1, "{cost}");
    assert_eq!(processes[0]["this_process"], false, "{cost}");
}
