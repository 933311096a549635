//! Jobs end to end: `tradeflow up` with its edge, jobs submitted over REST, run by jobs
//! workers (in `up`, or `tradeflow worker jobs` processes), followed, cancelled, crashed and
//! dead-lettered; results compared with the command line's.

mod edge_common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use edge_common::{BIN, DEMO, Edge, Options, STREAMS};
use serde_json::{Value, json};

/// A hyperopt of the SMA crossover on the demo feed; `trials` random draws.
fn study(trials: usize, seed: u64) -> Value {
    json!({
        "backtest": {"strategy": "sma_cross"},
        "space": "[param]\n\"rules.sma_cross.fast\" = { int = [3, 40] }\n\"rules.sma_cross.slow\" = { int = [41, 120] }\n",
        "method": "random",
        "trials": trials,
        "seed": seed,
        "jobs": 1,
        "test_fraction": 0.3,
        "top": 3,
    })
}

async fn task(edge: &Edge, id: &str) -> Value {
    edge.get(&format!("/api/v1/tasks/{id}"), Some(&edge.admin)).await.expect(200)
}

/// Polls the task until `done(task)` holds, failing after `within`.
async fn wait_for(edge: &Edge, id: &str, within: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let t = task(edge, id).await;
        if done(&t) {
            return t;
        }
        assert!(started.elapsed() < within, "task {id} not {what} within {within:?}: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn over(t: &Value) -> bool {
    matches!(t["status"].as_str(), Some("succeeded" | "failed" | "cancelled"))
}

async fn submit(edge: &Edge, token: &str, kind: &str, params: Value) -> String {
    let body = edge.post(&format!("/api/v1/tasks/{kind}"), Some(token), Some(params)).await.expect(202);
    assert_eq!(body["status"], "queued", "{body}");
    body["task_id"].as_str().unwrap().to_string()
}

/// `tradeflow <args>` to completion; its stdout as JSON.
fn cli_json(args: &[&str]) -> Value {
    let out = std::process::Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_backtest_is_the_cli_backtest_and_bad_submissions_queue_nothing() {
    let options = Options {
        extra_config: "[jobs.hyperopt]\ntimeout_s = 1\n[edge.tasks.user_quota.admin]\nper_day = { backtest = 1 }\n"
            .into(),
        ..Options::default()
    };
    let edge = Edge::start_with(options).await;

    // Bad input: the one error format, each problem named, nothing queued.
    edge.post("/api/v1/tasks/mining", Some(&edge.trader), Some(json!({})))
        .await
        .expect_error(405, "method_not_allowed");
    edge.get("/api/v1/tasks?kind=mining", Some(&edge.trader)).await.expect_error(400, "unknown_kind");
    let e = edge
        .post(
            "/api/v1/tasks/backtest",
            Some(&edge.trader),
            Some(json!({"strategy": "sma_cross", "params": ["speed=3"], "bogus": 1})),
        )
        .await
        .expect_error(422, "invalid_params");
    assert!(e["error"]["message"].as_str().unwrap().contains("bogus"), "{e}");
    let e = edge
        .post(
            "/api/v1/tasks/backtest",
            Some(&edge.trader),
            Some(json!({"strategy": "sma_cross", "params": ["speed=3"]})),
        )
        .await
        .expect_error(422, "invalid_params");
    assert!(e["error"]["details"]["problems"][0].as_str().unwrap().contains("speed"), "{e}");
    edge.post("/api/v1/tasks/backtest", Some(&edge.trader), Some(json!({"replays": ["/etc/passwd"]})))
        .await
        .expect_error(422, "invalid_params");
    edge.post("/api/v1/tasks/hyperopt", Some(&edge.trader), Some(json!({"space": "[param.x]\n"})))
        .await
        .expect_error(422, "invalid_params");
    edge.post("/api/v1/tasks/backtest", Some(&edge.viewer), Some(json!({}))).await.expect_error(403, "forbidden");
    edge.post("/api/v1/tasks/backtest", None, Some(json!({}))).await.expect_error(401, "unauthorized");
    let page = edge.get("/api/v1/tasks", Some(&edge.admin)).await.expect(200);
    assert_eq!(page["total"], 0, "a refused submission queued something: {page}");

    // The same backtest over REST and on the command line; followed on the WebSocket.
    let mut ws = edge_common::ws::on_channels(&edge, &edge.admin, &["tasks"], &["status", "alerts"]).await;
    let params = json!({"strategy": "sma_cross", "params": ["fast=10", "slow=30"], "commission": 0.001});
    let id = submit(&edge, &edge.admin, "backtest", params).await;
    let mut seen = Vec::new();
    while !seen.contains(&"task_completed".to_string()) {
        let e = edge_common::ws::next_json(&mut ws).await;
        if e["channel"] == "tasks" && e["data"]["task_id"] == id {
            seen.push(e["type"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen.first().map(String::as_str), Some("task_started"), "{seen:?}");
    let done = wait_for(&edge, &id, Duration::from_secs(120), "finished", over).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!((done["attempt"].as_i64(), done["progress"].as_f64()), (Some(1), Some(1.0)), "{done}");
    let rest = edge.get(&format!("/api/v1/backtests/{id}?trades_limit=5000"), Some(&edge.admin)).await.expect(200);
    let cli = cli_json(&[
        "backtest",
        "--csv",
        DEMO,
        "--strategy",
        "sma_cross",
        "--param",
        "fast=10",
        "--param",
        "slow=30",
        "--commission",
        "0.001",
        "--json",
    ]);
    let (r, c) = (&rest["report"]["accounts"][0], &cli["accounts"][0]);
    assert_eq!(r["stats"], c["stats"], "statistics differ");
    assert_eq!(r["trades"], c["trades"], "trades differ");
    assert_eq!(r["equity"], c["equity"], "equity differs");
    assert_eq!(rest["report"]["candles"], cli["candles"]);
    assert!(r["trades"].as_array().unwrap().len() > 10, "too few trades to compare: {}", r["trades"]);
    // Trades page by page.
    let page = edge
        .get(&format!("/api/v1/backtests/{id}?trades_limit=2&trades_offset=1"), Some(&edge.admin))
        .await
        .expect(200);
    assert_eq!(page["report"]["accounts"][0]["trades"].as_array().unwrap()[..], c["trades"].as_array().unwrap()[1..3]);
    assert_eq!(page["report"]["accounts"][0]["trades_total"], c["trades"].as_array().unwrap().len());
    let html = edge
        .client
        .get(edge.url(&format!("/api/v1/backtests/{id}/report")))
        .bearer_auth(&edge.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.text().await.unwrap().contains("<svg"), "the report has no chart");
    // `tradeflow tasks`: the same API from the command line.
    let tasks = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(["tasks", "--edge", &edge.base, "--token", &edge.trader])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out =
        tasks(&["submit", "backtest", "--params", r#"{"strategy": "sma_cross", "params": ["fast=5"]}"#, "--wait"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((t["status"].as_str(), t["submitted_by"].as_str()), (Some("succeeded"), Some("ops")), "{t}");
    let out = tasks(&["list", "--json"]);
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["total"], 1, "a trader lists their own: {page}");
    let out = tasks(&["submit", "backtest", "--params", r#"{"models": ["astrology"]}"#]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("422"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tasks(&["cancel", t["task_id"].as_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"), "{}", String::from_utf8_lossy(&out.stderr));

    // Someone else's job is not there for a trader.
    edge.get(&format!("/api/v1/tasks/{id}"), Some(&edge.trader)).await.expect_error(404, "not_found");

    // Quotas: the admin's daily backtest is used up; the refusal names it and when it frees.
    let e = edge
        .post("/api/v1/tasks/backtest", Some(&edge.admin), Some(json!({"strategy": "sma_cross"})))
        .await
        .expect_error(429, "quota_exceeded");
    assert_eq!(e["error"]["details"]["quota"], "per_day.backtest", "{e}");
    assert!(e["error"]["details"]["frees_at"].as_i64().unwrap() > tradeflow_core::time::now_ms(), "{e}");
    let q = edge.get("/api/v1/tasks/quotas", Some(&edge.admin)).await.expect(200);
    assert_eq!(
        (q["limits"]["per_day"]["backtest"].as_i64(), q["usage"]["today"]["backtest"].as_i64()),
        (Some(1), Some(1)),
        "{q}"
    );
    let stats = edge.get("/api/v1/tasks/stats", Some(&edge.viewer)).await.expect(200);
    assert_eq!(stats["total"], 2, "{stats}");
    assert!(stats["kinds"][0]["mean_run_s"].as_f64().is_some(), "{stats}");
    // Train: a learned model on the demo feed into the registry, as `tradeflow models train`.
    edge.post("/api/v1/tasks/train", Some(&edge.trader), Some(json!({"name": "ml:bad", "family": "forest"})))
        .await
        .expect_error(422, "invalid_params");
    let train =
        submit(&edge, &edge.trader, "train", json!({"name": "demo", "family": "logistic", "no_trading_eval": true}))
            .await;
    let t = wait_for(&edge, &train, Duration::from_secs(120), "finished", over).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!((t["summary"]["name"].as_str(), t["summary"]["version"].as_i64()), (Some("demo"), Some(1)), "{t}");
    assert!(t["summary"]["test_accuracy"].as_f64().is_some(), "{t}");
    let versions = edge.get("/api/v1/models/demo/versions", Some(&edge.viewer)).await.expect(200);
    assert!(versions.to_string().contains("\"created_by\":\"ops\""), "the version is the submitter's: {versions}");

    // Timeouts: a search past its kind's timeout_s (1 s here) is failed with `timeout`.
    let slow = submit(&edge, &edge.trader, "hyperopt", study(20_000, 3)).await;
    let t = wait_for(&edge, &slow, Duration::from_secs(60), "finished", over).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert!(t["error"].as_str().unwrap().starts_with("timeout"), "{t}");
    assert_eq!(t["attempt"], 1, "a timeout is not retried: {t}");

    // The submission is in the audit log.
    let store = edge.store().await;
    let (rows, _) = store
        .audit_rows(
            tradeflow_audit::query::trading::AuditFilter { action: Some("task_submit"), ..Default::default() },
            10,
            0,
        )
        .await
        .unwrap();
    assert!(rows.iter().any(|r| r.resource == id && r.actor == "admin"), "no audit row for {id}");
}

/// A `tradeflow worker jobs` process over the edge's data directory, downloading from `binance`.
fn jobs_worker(edge: &Edge, name: &str, binance: &str) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["--config", edge.dir.path().join("tradeflow.toml").to_str().unwrap()])
        .args(["worker", "jobs", "--threads", "1", "--member-name", name])
        .args(["--data-dir", edge.dir.path().to_str().unwrap(), "--binance-rest-url", binance])
        .env("REDIS_URL", edge.redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .env("DATABASE_URL", format!("sqlite://{}", edge.dir.path().join("tradeflow.db").display()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_cancelled_dead_lettered_and_survive_a_crashed_worker() {
    let options = Options {
        up_args: vec!["--no-jobs".into()],
        extra_config: "[jobs.backtest]\nmax_attempts = 2\n[edge.tasks.user_quota.ops]\nmax_running = 1\n".into(),
        ..Options::default()
    };
    let edge = Edge::start_with(options).await;
    // A fake Binance with 500 hourly BTCUSDT bars, for download jobs.
    let mut market = tradeflow_testkit::binance::Market::default();
    for k in 0..500 {
        market.add("BTCUSDT", tradeflow_core::market::Interval::H1, k);
    }
    let binance = tradeflow_testkit::binance::serve_rest(std::sync::Arc::new(std::sync::Mutex::new(market))).await;
    let mut workers =
        vec![(jobs_worker(&edge, "jobs-a", &binance), "jobs-a"), (jobs_worker(&edge, "jobs-b", &binance), "jobs-b")];

    // Cancel: a long search stops within a second of the DELETE.
    let long = submit(&edge, &edge.trader, "hyperopt", study(20_000, 1)).await;
    wait_for(&edge, &long, Duration::from_secs(60), "running with progress", |t| {
        t["progress"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    // The trader may run one job at a time.
    let e = edge
        .post("/api/v1/tasks/backtest", Some(&edge.trader), Some(json!({})))
        .await
        .expect_error(429, "quota_exceeded");
    assert_eq!(e["error"]["details"]["quota"], "max_running", "{e}");
    let asked = Instant::now();
    let r = edge.delete(&format!("/api/v1/tasks/{long}"), Some(&edge.trader)).await;
    let took = asked.elapsed();
    assert_eq!(r.status, 200, "not cancelled within the DELETE's wait: {}", r.body);
    assert_eq!(r.body["status"], "cancelled", "{}", r.body);
    assert!(took < Duration::from_secs(1), "cancelled after {took:?}");
    edge.delete(&format!("/api/v1/tasks/{long}"), Some(&edge.trader)).await.expect_error(409, "conflict");
    // ... and the workers take the next job.
    let next = submit(&edge, &edge.trader, "backtest", json!({"strategy": "sma_cross"})).await;
    let t = wait_for(&edge, &next, Duration::from_secs(60), "finished", over).await;
    assert_eq!(t["status"], "succeeded", "{t}");

    // Poison: a backtest with no candle in its range fails every attempt; after max_attempts
    // (2) it is failed and its request is in the DLQ; the workers go on.
    let poison = submit(&edge, &edge.admin, "backtest", json!({"from": "2031-01-01"})).await;
    let t = wait_for(&edge, &poison, Duration::from_secs(60), "finished", over).await;
    assert_eq!((t["status"].as_str(), t["attempt"].as_i64()), (Some("failed"), Some(2)), "{t}");
    assert!(t["error"].as_str().unwrap().contains("no candle"), "{t}");
    // The task reads `failed` when the handler gives up; the request reaches the DLQ when the
    // consumer settles that answer, a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dlq = dead_letters(&edge).await;
        if dlq.iter().any(|d| d.contains(&poison)) {
            break;
        }
        assert!(Instant::now() < deadline, "the request is not in the DLQ after 10 s: {dlq:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = submit(&edge, &edge.admin, "backtest", json!({"strategy": "sma_cross"})).await;
    assert_eq!(wait_for(&edge, &after, Duration::from_secs(60), "finished", over).await["status"], "succeeded");

    // Download: a dataset from Binance as a job, then a backtest on it. A dataset that does not
    // exist yet is refused at submission.
    let e = edge
        .post("/api/v1/tasks/backtest", Some(&edge.trader), Some(json!({"dataset": "BTCUSDT:1h"})))
        .await
        .expect_error(422, "invalid_params");
    assert!(e["error"]["message"].as_str().unwrap().contains("dataset"), "{e}");
    let t0 = tradeflow_testkit::binance::T0;
    let bad = json!({"symbol": "BTC/USDT", "interval": "1h", "from": t0.to_string()});
    edge.post("/api/v1/data/download", Some(&edge.trader), Some(bad)).await.expect_error(422, "invalid_params");
    let params = json!({"symbol": "BTCUSDT", "interval": "1h", "from": t0.to_string(), "to": (t0 + 500 * 3_600_000).to_string()});
    let body = edge.post("/api/v1/data/download", Some(&edge.trader), Some(params)).await.expect(202);
    let download = body["task_id"].as_str().unwrap().to_string();
    let t = wait_for(&edge, &download, Duration::from_secs(60), "finished", over).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!((t["kind"].as_str(), t["summary"]["rows_added"].as_i64()), (Some("download"), Some(500)), "{t}");
    let list = edge.get("/api/v1/data/datasets", Some(&edge.viewer)).await.expect(200);
    assert!(list.to_string().contains("BTCUSDT:1h"), "{list}");
    let on_dataset = submit(&edge, &edge.admin, "backtest", json!({"dataset": "BTCUSDT:1h"})).await;
    let t = wait_for(&edge, &on_dataset, Duration::from_secs(60), "finished", over).await;
    assert_eq!((t["status"].as_str(), t["summary"]["candles"].as_i64()), (Some("succeeded"), Some(500)), "{t}");

    // Retry: the cancelled search runs again under its id (a short one would be nicer, but the
    // parameters are the task's own: cancel it again once it runs).
    let r = edge.post(&format!("/api/v1/tasks/{long}/retry"), Some(&edge.trader), None).await.expect(202);
    assert_eq!(r["task_id"], long);
    let t = wait_for(&edge, &long, Duration::from_secs(60), "running again", |t| t["status"] == "running").await;
    assert_eq!(t["attempt"], 2, "{t}");
    edge.delete(&format!("/api/v1/tasks/{long}"), Some(&edge.trader)).await.expect(200);

    // Crash: the worker running a search is SIGKILLed; the other one runs it again (attempt 2)
    // and finds the same best trial as an uninterrupted run.
    let params = study(60, 7);
    let crash = submit(&edge, &edge.admin, "hyperopt", params.clone()).await;
    let t =
        wait_for(&edge, &crash, Duration::from_secs(60), "under way", |t| t["progress"].as_f64().unwrap_or(0.0) >= 0.1)
            .await;
    let running_on = t["worker"].as_str().unwrap().to_string();
    let i = workers.iter().position(|(_, n)| *n == running_on).expect("a known worker runs it");
    let (mut victim, _) = workers.remove(i);
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let t = wait_for(&edge, &crash, Duration::from_secs(120), "finished", over).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["attempt"], 2, "{t}");
    assert_ne!(t["worker"].as_str().unwrap(), running_on, "{t}");
    let result = edge.get(&format!("/api/v1/hyperopt/{crash}"), Some(&edge.admin)).await.expect(200);
    let space = edge.dir.path().join("space.toml");
    std::fs::write(&space, params["space"].as_str().unwrap()).unwrap();
    let cli = cli_json(&[
        "hyperopt",
        "--csv",
        DEMO,
        "--strategy",
        "sma_cross",
        "--space",
        space.to_str().unwrap(),
        "--method",
        "random",
        "--trials",
        "60",
        "--seed",
        "7",
        "--jobs",
        "2",
        "--test-fraction",
        "0.3",
        "--top",
        "3",
        "--json",
    ]);
    assert_eq!(result["best"]["params"], cli["top"][0]["params"], "best trial differs: {}", result["best"]);
    assert_eq!(result["best"]["in_sample"], cli["top"][0]["in_sample"]);
    assert_eq!(result["outcome"]["trials"], cli["trials"]);
    let results = edge.store().await.job_result(&crash).await.unwrap();
    assert!(results.is_some(), "one result stored");
}

/// The DLQ entries of jobs.requests, as text.
async fn dead_letters(edge: &Edge) -> Vec<String> {
    let body = edge.get("/api/v1/streams/jobs.requests/dlq/messages?limit=100", Some(&edge.admin)).await.expect(200);
    body["messages"].as_array().map(|a| a.iter().map(Value::to_string).collect()).unwrap_or_default()
}
