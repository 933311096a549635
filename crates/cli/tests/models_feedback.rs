//! Feedback and retraining of learned models through the edge of `tradeflow up`: a model
//! trained and retrained by `POST /models/{name}/train|retrain` (train jobs), users' ratings of
//! its signals (`POST /models/{name}/feedback`, audited) summed in its performance, the live
//! hit rate as `tradeflow_model_live_hit_rate` (absent until measured, then the stored
//! outcomes'), and the retrain schedule (`[models.retrain]`, a tiny interval) retraining the
//! deployed model by itself.

mod edge_common;

use std::time::{Duration, Instant};

use edge_common::{Edge, Options};
use serde_json::{Value, json};
use tradeflow_audit::{CandleRow, Row, SignalRow};

async fn wait_task(edge: &Edge, id: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let r = edge.get(&format!("/api/v1/tasks/{id}"), Some(&edge.admin)).await;
        if r.status.as_u16() == 200 && matches!(r.body["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return r.body;
        }
        assert!(started.elapsed() < within, "task {id} not over within {within:?}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hourly bars of SYN from `test` (closes given) and `ml:demo`'s signals on them.
fn series(closes: &[f64], actions: &[&str]) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, close) in closes.iter().enumerate() {
        let t = 3_600_000 * i as i64;
        rows.push(Row::Candle(CandleRow {
            id: format!("test:SYN:1h:{t}"),
            source: "test".into(),
            symbol: "SYN".into(),
            interval: "1h".into(),
            open_time: t,
            open: *close,
            high: close + 1.0,
            low: close - 1.0,
            close: *close,
            volume: 10.0,
        }));
    }
    for (i, action) in actions.iter().enumerate() {
        let t = 3_600_000 * i as i64;
        rows.push(Row::Signal(SignalRow {
            id: format!("test:SYN:1h:{t}/ml:demo"),
            candle_id: format!("test:SYN:1h:{t}"),
            symbol: "SYN".into(),
            interval: "1h".into(),
            open_time: t,
            model: "ml:demo".into(),
            model_kind: "ml".into(),
            action: (*action).into(),
            confidence: 0.6,
            status: "ok".into(),
            error: None,
            reasoning: String::new(),
            scores: r#"{"p_up":0.6,"version":2}"#.into(),
            features: "{}".into(),
            market: "{}".into(),
            stop_loss: None,
            take_profit: None,
            latency_us: 3,
        }));
    }
    rows
}

async fn hit_rate_line(edge: &Edge) -> Option<String> {
    let text = edge.client.get(edge.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with("tradeflow_model_live_hit_rate{")).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_hit_rate_train_retrain_and_the_schedule() {
    // every_days = 0.00003: about 2.6 s.
    let options = Options {
        models_refresh_s: 1,
        extra_config: "[models.retrain]\nevery_days = 0.00003\ncheck_s = 1\n".into(),
        ..Options::default()
    };
    let edge = Edge::start_with(options).await;
    let store = edge.store().await;

    // Train and retrain over the API: train jobs, 202 with the task id.
    let path = |what: &str| format!("/api/v1/models/demo/{what}");
    edge.check_roles(reqwest::Method::POST, &path("train"), Some(json!({"family": "logistic"})), "trader").await;
    edge.check_roles(reqwest::Method::POST, &path("retrain"), None, "trader").await;
    let e = edge
        .post(&path("train"), Some(&edge.trader), Some(json!({"name": "other", "family": "gbt"})))
        .await
        .expect_error(422, "invalid_params");
    assert!(e["error"]["message"].as_str().unwrap().contains("differs"), "{e}");
    edge.post(&path("train"), Some(&edge.trader), Some(json!({"family": "forest"})))
        .await
        .expect_error(422, "invalid_params");
    edge.post(&path("retrain"), Some(&edge.trader), None).await.expect_error(404, "not_found");
    let t = edge
        .post(&path("train"), Some(&edge.trader), Some(json!({"family": "logistic", "no_trading_eval": true})))
        .await
        .expect(202);
    let t = wait_task(&edge, t["task_id"].as_str().unwrap(), Duration::from_secs(180)).await;
    assert_eq!((t["status"].as_str(), t["summary"]["version"].as_i64()), (Some("succeeded"), Some(1)), "{t}");
    let r = edge.post(&path("retrain"), Some(&edge.trader), None).await.expect(202);
    let r = wait_task(&edge, r["task_id"].as_str().unwrap(), Duration::from_secs(180)).await;
    assert_eq!((r["status"].as_str(), r["summary"]["version"].as_i64()), (Some("succeeded"), Some(2)), "{r}");
    assert_eq!(r["summary"]["retrained_from"], 1, "{r}");
    assert_eq!(r["params"], json!({"name": "demo", "retrain": true}), "{r}");
    let v1 = store.model_version("demo", 1).await.unwrap().unwrap();
    let v2 = store.model_version("demo", 2).await.unwrap().unwrap();
    let settings = |p: &str| {
        let mut v: Value = serde_json::from_str(p).unwrap();
        v["source"]["csv"]["to_ms"] = Value::Null;
        v
    };
    assert_eq!(settings(&v2.parameters), settings(&v1.parameters), "the same settings");

    // Signals of ml:demo with outcomes: long 100→101 hit, short 101→99 hit, short 99→99.5
    // miss, long at the last bar not judged: 2 of 3.
    store.write(&series(&[100.0, 101.0, 99.0, 99.5], &["long", "short", "short", "long"])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hit_rate_line(&edge).await, None, "no deployed model: no series, not a made-up value");

    // Ratings.
    let fb = path("feedback");
    edge.check_roles(reqwest::Method::POST, &fb, Some(json!({"signal_id": "x", "rating": "good"})), "trader").await;
    let first = json!({"signal_id": "test:SYN:1h:0/ml:demo", "rating": "good", "comment": "clean"});
    let a = edge.post(&fb, Some(&edge.trader), Some(first)).await.expect(201);
    assert_eq!(
        (a["version"].clone(), a["action"].clone(), a["replaced"].clone()),
        (json!(2), json!("long"), json!(false)),
        "{a}"
    );
    let again = json!({"signal_id": "test:SYN:1h:0/ml:demo", "rating": "bad"});
    assert_eq!(edge.post(&fb, Some(&edge.trader), Some(again)).await.expect(200)["replaced"], true);
    let by_candle = json!({"symbol": "SYN", "interval": "1h", "open_time": 3_600_000, "rating": "good"});
    assert_eq!(
        edge.post(&fb, Some(&edge.admin), Some(by_candle)).await.expect(201)["signal_id"],
        "test:SYN:1h:3600000/ml:demo"
    );
    let bad = json!({"signal_id": "", "rating": "meh", "symbol": "SYN", "comment": 5});
    let e = edge.post(&fb, Some(&edge.trader), Some(bad)).await.expect_error(422, "invalid_body");
    assert_eq!(e["error"]["details"]["fields"], json!(["rating", "comment", "signal_id", "signal_id"]), "{e}");
    let missing = json!({"symbol": "SYN", "interval": "1h", "open_time": 7, "rating": "good"});
    edge.post(&fb, Some(&edge.trader), Some(missing)).await.expect_error(404, "not_found");
    edge.post("/api/v1/models/nope/feedback", Some(&edge.trader), Some(json!({"signal_id": "a", "rating": "good"})))
        .await
        .expect_error(404, "not_found");
    let p = edge.get(&path("performance"), Some(&edge.viewer)).await.expect(200);
    assert_eq!((p["signals"].clone(), p["hits"].clone()), (json!(3), json!(2)), "{p}");
    assert_eq!(p["feedback"]["good"], 1, "{p}");
    assert_eq!(p["feedback"]["bad"], 1, "{p}");
    assert_eq!(p["feedback"]["signals"], 2, "{p}");
    assert_eq!(p["feedback"]["good_share"], 0.5, "{p}");

    // Deployed: the live hit rate is measured from the stored outcomes.
    edge.post(&path("deploy"), Some(&edge.admin), Some(json!({"version": 1, "force": true}))).await.expect(200);
    let started = Instant::now();
    let line = loop {
        if let Some(l) = hit_rate_line(&edge).await {
            break l;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no tradeflow_model_live_hit_rate after the deploy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (labels, value) = line.rsplit_once(' ').unwrap();
    assert_eq!(labels, "tradeflow_model_live_hit_rate{model=\"ml:demo\"}");
    assert!((value.parse::<f64>().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{line}");

    // The schedule: v2 (the newest) is older than every_days, so the deployed model is retrained
    // with v1's settings by the scheduler.
    let id = "retrain-demo-after-v2";
    let started = Instant::now();
    while edge.get(&format!("/api/v1/tasks/{id}"), Some(&edge.admin)).await.status.as_u16() == 404 {
        assert!(started.elapsed() < Duration::from_secs(30), "the schedule submitted no retrain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = wait_task(&edge, id, Duration::from_secs(180)).await;
    assert_eq!((s["status"].as_str(), s["submitted_by"].as_str()), (Some("succeeded"), Some("scheduler")), "{s}");
    assert_eq!((s["summary"]["version"].as_i64(), s["summary"]["retrained_from"].as_i64()), (Some(3), Some(1)), "{s}");
    assert_eq!(store.model_version("demo", 3).await.unwrap().unwrap().created_by, "scheduler");
    assert_eq!(store.deployed_of("demo").await.unwrap(), Some(1), "deploying stays an admin's step");

    // The ratings and their refusals are in the audit log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (rows, _) = store
            .audit_rows(
                tradeflow_audit::query::trading::AuditFilter { action: Some("model_feedback"), ..Default::default() },
                100,
                0,
            )
            .await
            .unwrap();
        let mut statuses: Vec<String> = rows.into_iter().map(|r| r.status).collect();
        statuses.sort();
        if statuses.len() >= 6 {
            assert_eq!(statuses, ["ok", "ok", "ok", "refused", "refused", "refused"]);
            break;
        }
        assert!(Instant::now() < deadline, "model_feedback audit rows: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.close().await;
}
