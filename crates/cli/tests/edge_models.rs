//! The model registry over the edge: versions listed and shown, a deploy the gate refuses
//! (409 with the figures), forced by an admin, a rollback, each in the audit log.

mod edge_common;

use std::time::{Duration, Instant};

use edge_common::Edge;
use serde_json::json;
use tradeflow_audit::query::models::NewModelVersion;
use tradeflow_audit::{Row, Table};

fn version<'a>(metrics: &'a str, parameters: &'a str) -> NewModelVersion<'a> {
    NewModelVersion {
        name: "trend",
        family: "gbt",
        parameters,
        feature_schema: "candle-features v1",
        feature_hash: "h",
        train_from: 1,
        train_to: 2,
        test_from: 3,
        test_to: 4,
        test_accuracy: Some(0.55),
        metrics,
        created_by: "tester",
        created_at: 5,
        bytes: b"not served here",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_deploy_through_the_gate_or_forced_and_roll_back_audited() {
    let edge = Edge::start().await;
    let store = edge.store().await;
    let gate = r#"{"gate": {"min_accuracy": 0.6, "sharpe_vs_technical": true}}"#;
    let weak = r#"{"gate": {"test_accuracy": 0.55, "sharpe": 0.2, "technical_sharpe": 0.1}}"#;
    let strong = r#"{"gate": {"test_accuracy": 0.7, "sharpe": 0.5, "technical_sharpe": 0.1}}"#;
    assert_eq!(store.insert_model_version(&version(strong, gate)).await.unwrap(), 1);
    assert_eq!(store.insert_model_version(&version(weak, gate)).await.unwrap(), 2);

    let v = edge.get("/api/v1/models/trend/versions", Some(&edge.viewer)).await.expect(200);
    assert_eq!(v["versions"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["deployed"], serde_json::Value::Null);
    assert!(v["versions"][0].get("metrics").is_none(), "{v}");
    let one = edge.get("/api/v1/models/trend/versions/2", Some(&edge.viewer)).await.expect(200);
    assert_eq!(one["metrics"]["gate"]["test_accuracy"], 0.55, "{one}");
    edge.get("/api/v1/models/nope/versions", Some(&edge.viewer)).await.expect_error(404, "not_found");
    edge.check_roles(reqwest::Method::POST, "/api/v1/models/trend/deploy", Some(json!({"version": 1})), "admin").await;

    let ok = edge.post("/api/v1/models/trend/deploy", Some(&edge.admin), Some(json!({"version": 1}))).await.expect(200);
    assert_eq!((ok["forced"].clone(), ok["previous"].clone()), (json!(false), serde_json::Value::Null), "{ok}");
    let refused = edge
        .post("/api/v1/models/trend/deploy", Some(&edge.admin), Some(json!({"version": 2})))
        .await
        .expect_error(409, "conflict");
    let message = refused["error"]["message"].as_str().unwrap_or_default().to_string() + &refused.to_string();
    assert!(message.contains("test accuracy 0.5500 below minimum 0.6000"), "{refused}");
    let forced = edge
        .post(
            "/api/v1/models/trend/deploy",
            Some(&edge.admin),
            Some(json!({"version": 2, "force": true, "reason": "drill"})),
        )
        .await
        .expect(200);
    assert_eq!((forced["forced"].clone(), forced["previous"].clone()), (json!(true), json!(1)), "{forced}");
    let back = edge.post("/api/v1/models/trend/rollback", Some(&edge.admin), None).await.expect(200);
    assert_eq!((back["from"].clone(), back["to"].clone()), (json!(2), json!(1)), "{back}");
    assert_eq!(store.deployed_of("trend").await.unwrap(), Some(1));
    // No ml:trend signal in this pipeline: a null live hit rate, with the reason.
    let p = edge.get("/api/v1/models/trend/performance?days=7", Some(&edge.viewer)).await.expect(200);
    assert_eq!((p["deployed_version"].clone(), p["test_accuracy"].clone()), (json!(1), json!(0.55)), "{p}");
    assert_eq!((p["signals"].clone(), p["live_hit_rate"].clone()), (json!(0), serde_json::Value::Null), "{p}");
    assert!(p["notes"][0].as_str().unwrap().starts_with("no long/short signal of ml:trend"), "{p}");
    edge.get("/api/v1/models/trend/performance?days=0", Some(&edge.viewer)).await.expect_error(400, "invalid_query");

    // The audit worker stores the edge's records.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = store.rows(Table::Audit, 1000, 0).await.unwrap();
        let mut actions: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|r| match r {
                Row::Audit(a) if a.action.starts_with("model_") => Some((a.action, a.status)),
                _ => None,
            })
            .collect();
        actions.sort();
        let want = [
            ("model_deploy", "ok"),
            ("model_deploy", "refused"),
            ("model_deploy_forced", "ok"),
            ("model_rollback", "ok"),
        ]
        .map(|(a, s)| (a.to_string(), s.to_string()));
        // check_roles' refusals (401/403) are not audited by role extractors: only these four.
        if actions.len() >= 4 {
            assert_eq!(actions, want);
            break;
        }
        assert!(Instant::now() < deadline, "audit rows: {actions:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    store.close().await;
}
