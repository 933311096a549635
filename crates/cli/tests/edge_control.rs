//! The scheduler and the emergency stop against a running pipeline: pause/resume (400 when
//! already in that state), analysis cycles (202, 409 while one runs, `tradeflow ctl trigger`
//! acted on), next-run, stats, the emergency stop (admin only), each command audited.

mod edge_common;

use std::time::Duration;

use edge_common::{BIN, Edge, STREAMS};
use reqwest::Method;
use serde_json::{Value, json};

async fn wait_cycles(edge: &Edge, n: u64) -> Value {
    for _ in 0..100 {
        let s = edge.get("/api/v1/scheduler/stats", Some(&edge.viewer)).await.expect(200);
        if s["cycles"].as_u64().unwrap() >= n {
            return edge.get("/api/v1/scheduler/status", Some(&edge.viewer)).await.expect(200);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} analysis cycles did not finish within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_and_emergency_stop() {
    let edge = Edge::start().await;

    let status = edge.get("/api/v1/scheduler/status", Some(&edge.viewer)).await.expect(200);
    assert_eq!(status["paused"], false);
    assert!(status["emergency"].is_null());
    edge.get("/api/v1/scheduler/status", None).await.expect_error(401, "unauthorized");

    // Next run: the next bar close of each tracked series (1h bars: last open + 2 h).
    let next = edge.get("/api/v1/scheduler/next-run", Some(&edge.viewer)).await.expect(200);
    let series = next["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{next}");
    for s in series {
        assert_eq!(s["next_close_at"].as_i64().unwrap(), s["last_open_time"].as_i64().unwrap() + 2 * 3_600_000);
    }

    // Pause and resume, each refused when it would change nothing.
    edge.check_roles(Method::POST, "/api/v1/scheduler/pause", None, "trader").await;
    edge.post("/api/v1/scheduler/pause", Some(&edge.trader), None).await.expect(200);
    assert_eq!(edge.get("/api/v1/scheduler/status", Some(&edge.viewer)).await.expect(200)["paused"], true);
    edge.post("/api/v1/scheduler/pause", Some(&edge.trader), None).await.expect_error(400, "already_paused");
    edge.post("/api/v1/scheduler/resume", Some(&edge.trader), None).await.expect(200);
    edge.post("/api/v1/scheduler/resume", Some(&edge.trader), None).await.expect_error(400, "not_paused");

    // Triggers: one runs, one sent at the same moment is refused while it runs.
    edge.check_roles(Method::POST, "/api/v1/scheduler/trigger", None, "trader").await;
    edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), Some(json!({"symbol": "NOPE"})))
        .await
        .expect_error(404, "not_found");
    edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), Some(json!({"symbol": 7})))
        .await
        .expect_error(422, "invalid_body");
    let (a, b) = tokio::join!(
        edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), None),
        edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), None)
    );
    let mut codes = [a.status.as_u16(), b.status.as_u16()];
    codes.sort();
    assert_eq!(codes, [202, 409], "{} / {}", a.body, b.body);
    let conflict = if a.status == 409 { a } else { b };
    assert_eq!(conflict.body["error"]["code"], "conflict");
    let status = wait_cycles(&edge, 1).await;
    let last = &status["last_cycle"];
    assert!(last["error"].is_null(), "{status}");
    assert_eq!(last["symbols"], 2, "{status}");
    assert!(last["signals"].as_u64().unwrap() >= 2, "{status}");

    // A trigger from the CLI is acted on by the edge.
    let out = tokio::process::Command::new(BIN)
        .args(["ctl", "trigger", "BTCUSD"])
        .env("REDIS_URL", edge.redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = wait_cycles(&edge, 2).await;
    assert_eq!(status["last_cycle"]["symbol"], "BTCUSD", "{status}");
    assert_eq!(status["last_cycle"]["symbols"], 1, "{status}");
    let stats = edge.get("/api/v1/scheduler/stats", Some(&edge.viewer)).await.expect(200);
    assert_eq!(stats["cycles"], 2);
    assert_eq!(stats["failures"], 0);

    // The emergency stop is the admin's.
    edge.check_roles(Method::POST, "/api/v1/emergency/stop-all", Some(json!({"close_positions": true})), "admin").await;
    edge.post("/api/v1/emergency/stop-all", Some(&edge.admin), Some(json!({"close_positions": "yes"})))
        .await
        .expect_error(422, "invalid_body");
    edge.post("/api/v1/emergency/stop-all", Some(&edge.admin), Some(json!({"close_positions": true})))
        .await
        .expect(200);
    let status = edge.get("/api/v1/scheduler/status", Some(&edge.viewer)).await.expect(200);
    assert!(status["emergency"].is_string(), "{status}");

    // Each command is in the audit log with its actor and address.
    edge.wait_drained().await;
    let store = edge.store().await;
    let rows = store.rows(tradeflow_audit::Table::Audit, 10_000, 0).await.unwrap();
    let actions: Vec<(String, String, Option<String>)> = rows
        .into_iter()
        .filter_map(|r| match r {
            tradeflow_audit::Row::Audit(a) => Some((a.action, a.actor, a.ip)),
            _ => None,
        })
        .collect();
    for (action, actor) in [("pause", "ops"), ("resume", "ops"), ("trigger", "ops"), ("emergency_stop", "admin")] {
        assert!(
            actions.iter().any(|(a, who, ip)| a == action && who == actor && ip.as_deref() == Some("127.0.0.1")),
            "{action} by {actor} missing: {actions:?}"
        );
    }
}
