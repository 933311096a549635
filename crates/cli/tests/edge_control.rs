//! The controls against a running pipeline (`tradeflow up`: every stage, the audit writer and
//! the edge): pause/resume (400 when already in that state), analysis cycles obeyed by the
//! inference workers (signals, decisions, `cycle_start`/`llm_decision`/`cycle_complete` on the
//! WebSocket, `tradeflow ctl trigger` alike), next-run, stats, the emergency stop and its
//! clearing (admin only), the per-account controls one by one and in bulk, each with the role
//! it needs and its audit row.

mod edge_common;

use std::time::{Duration, Instant};

use edge_common::ws::{Ws, next_json, on_channels};
use edge_common::{BIN, Edge, STREAMS};
use reqwest::Method;
use serde_json::{Value, json};
use tradeflow_audit::{Row, Table};

/// The status once the cycle `id` has finished (every symbol it started decided on).
async fn wait_cycle(edge: &Edge, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let s = edge.get("/api/v1/scheduler/status", Some(&edge.viewer)).await.expect(200);
        if s["last_cycle"]["id"] == id {
            return s;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "cycle {id} did not finish within 30 s: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every row of `table` in the store.
/// A WebSocket client on the `decisions` channel alone (cycles and their decisions).
async fn decisions_ws(edge: &Edge) -> Ws {
    let others = ["status", "alerts", "prices", "signals", "orders", "fills", "positions", "balances"];
    on_channels(edge, &edge.viewer, &["decisions"], &others).await
}

async fn rows(edge: &Edge, table: Table) -> Vec<Row> {
    let store = edge.store().await;
    let rows = store.rows(table, 100_000, 0).await.unwrap();
    store.close().await;
    rows
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
    edge.post("/api/v1/scheduler/pause", Some(&edge.trader), None).await.expect_error(409, "already_paused");
    edge.post("/api/v1/scheduler/resume", Some(&edge.trader), None).await.expect(200);
    edge.post("/api/v1/scheduler/resume", Some(&edge.trader), None).await.expect_error(409, "not_paused");

    // A trigger is a command the inference workers obey: the latest candle of each symbol
    // analysed again, its signals decided on by the profiles, like a candle's own.
    edge.check_roles(Method::POST, "/api/v1/scheduler/trigger", None, "trader").await;
    edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), Some(json!({"symbol": "NOPE"})))
        .await
        .expect_error(404, "not_found");
    edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), Some(json!({"profiles": ["nope"]})))
        .await
        .expect_error(404, "not_found");
    edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), Some(json!({"symbol": 7})))
        .await
        .expect_error(422, "invalid_body");
    let mut ws = decisions_ws(&edge).await;
    let ack = edge.post("/api/v1/scheduler/trigger", Some(&edge.trader), None).await.expect(200);
    assert_eq!(ack["applied"], true, "{ack}");
    let cycle = ack["command"].as_str().unwrap().to_string();
    let status = wait_cycle(&edge, &cycle).await;
    let last = &status["last_cycle"];
    let mut symbols: Vec<&str> = last["symbols"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    symbols.sort();
    assert_eq!(symbols, ["BTCUSD 1h", "ETHUSD 1h"], "{status}");
    // Finished only once every symbol the edge knew at the trigger was decided on, whichever
    // inference partition took it.
    let mut expected: Vec<&str> = last["expected"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    expected.sort();
    assert_eq!(expected, ["BTCUSD", "ETHUSD"], "{status}");
    // rsi, macd and technical on two symbols; both profiles decide on each.
    assert_eq!((last["signals"].as_u64(), last["decisions"].as_u64()), (Some(6), Some(4)), "{status}");
    assert_eq!(last["actor"], "ops", "{status}");

    // The arena's events, in order for each symbol: start, the profiles' decisions, complete.
    let mut seen: Vec<(String, String)> = Vec::new();
    while seen.iter().filter(|(t, _)| t == "cycle_complete").count() < 2 {
        let m = next_json(&mut ws).await;
        let kind = m["type"].as_str().unwrap_or_default().to_string();
        if kind == "heartbeat" {
            continue;
        }
        assert_eq!(m["channel"], "decisions", "{m}");
        let candle = m["data"]["candle_id"].as_str().unwrap_or_default();
        if kind == "decision" {
            assert!(!candle.contains("/trigger:"), "a cycle's decision sent as a plain one: {m}");
            continue;
        }
        assert!(candle.ends_with(&format!("/trigger:{cycle}")), "{m}");
        seen.push((kind, m["symbol"].as_str().unwrap().to_string()));
    }
    for symbol in ["BTCUSD", "ETHUSD"] {
        let of: Vec<&str> = seen.iter().filter(|(_, s)| s == symbol).map(|(t, _)| t.as_str()).collect();
        assert_eq!(of, ["cycle_start", "llm_decision", "llm_decision", "cycle_complete"], "{symbol}: {seen:?}");
    }

    // The cycle's signals and decisions are stored like any other.
    edge.wait_drained().await;
    let tagged = |id: &str| id.contains(&format!("/trigger:{cycle}"));
    let signals = rows(&edge, Table::Signal).await;
    let cycle_signals: Vec<_> = signals
        .iter()
        .filter_map(|r| match r {
            Row::Signal(s) if tagged(&s.candle_id) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(cycle_signals.len(), 6);
    let decisions = rows(&edge, Table::Decision).await;
    let cycle_decisions = decisions.iter().filter(|r| matches!(r, Row::Decision(d) if tagged(&d.candle_id))).count();
    assert_eq!(cycle_decisions, 4);

    // A trigger from the CLI, for one symbol and one profile, is obeyed alike.
    let out = tokio::process::Command::new(BIN)
        .args(["ctl", "trigger", "BTCUSD", "--profiles", "technical"])
        .env("REDIS_URL", edge.redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent = String::from_utf8_lossy(&out.stdout);
    let id = sent.split_once('(').and_then(|(_, r)| r.strip_suffix(")\n")).unwrap_or_else(|| panic!("{sent}"));
    let status = wait_cycle(&edge, id).await;
    assert_eq!(status["last_cycle"]["symbols"], json!(["BTCUSD 1h"]), "{status}");
    assert_eq!(status["last_cycle"]["expected"], json!(["BTCUSD"]), "{status}");
    assert_eq!(status["last_cycle"]["decisions"], 1, "only the cycle's profile decides: {status}");
    let stats = edge.get("/api/v1/scheduler/stats", Some(&edge.viewer)).await.expect(200);
    assert_eq!((stats["cycles"].as_u64(), stats["running"].as_u64()), (Some(2), Some(0)), "{stats}");

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
    edge.check_roles(Method::POST, "/api/v1/emergency/clear", None, "admin").await;
    edge.post("/api/v1/emergency/clear", Some(&edge.admin), None).await.expect(200);
    let status = edge.get("/api/v1/scheduler/status", Some(&edge.viewer)).await.expect(200);
    assert!(status["emergency"].is_null(), "{status}");
    edge.post("/api/v1/emergency/clear", Some(&edge.admin), None).await.expect_error(409, "no_emergency");

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
    for (action, actor) in [
        ("pause", "ops"),
        ("resume", "ops"),
        ("trigger", "ops"),
        ("emergency_stop", "admin"),
        ("emergency_clear", "admin"),
    ] {
        assert!(
            actions.iter().any(|(a, who, ip)| a == action && who == actor && ip.as_deref() == Some("127.0.0.1")),
            "{action} by {actor} missing: {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_controls_one_by_one_and_in_bulk() {
    let edge = Edge::start().await;
    let (t, a, v) = (Some(edge.trader.as_str()), Some(edge.admin.as_str()), Some(edge.viewer.as_str()));
    let paused = |s: &Value| s["paused_accounts"].clone();

    // Pause: risk refuses the account's entries (a manual order shows it), others trade on.
    edge.check_roles(Method::POST, "/api/v1/control/accounts/alpha/pause", None, "trader").await;
    let ack = edge.post("/api/v1/control/accounts/alpha/pause", t, None).await.expect(200);
    assert_eq!(
        (ack["account"].as_str(), ack["action"].as_str(), ack["applied"].as_bool()),
        (Some("alpha"), Some("pause"), Some(true))
    );
    assert_eq!(paused(&edge.get("/api/v1/scheduler/status", v).await.expect(200)), json!(["alpha"]));
    edge.post("/api/v1/control/accounts/alpha/pause", t, None).await.expect_error(409, "already_paused");
    let refused = edge
        .post("/api/v1/paper/orders", t, Some(json!({"account": "alpha", "symbol": "BTCUSD", "side": "buy"})))
        .await
        .expect(202);
    assert_eq!(
        (refused["status"].as_str(), refused["reason"].as_str()),
        (Some("rejected"), Some("paused")),
        "{refused}"
    );
    edge.post("/api/v1/control/accounts/alpha/resume", t, None).await.expect(200);
    edge.post("/api/v1/control/accounts/alpha/resume", t, None).await.expect_error(409, "not_paused");
    assert_eq!(paused(&edge.get("/api/v1/scheduler/status", v).await.expect(200)), json!([]));

    // Unknown accounts and actions.
    edge.post("/api/v1/control/accounts/ghost/pause", t, None).await.expect_error(404, "not_found");
    edge.post("/api/v1/control/accounts/alpha/explode", t, None).await.expect_error(404, "not_found");

    // Close-all: the open position goes at the latest price, without halting anything. The
    // feed's decisions may have opened one already; otherwise a manual buy does.
    let open = |p: Value| !p["items"].as_array().unwrap().is_empty();
    if !open(edge.get("/api/v1/trading/positions/alpha", v).await.expect(200)) {
        let bought = edge
            .post("/api/v1/paper/orders", t, Some(json!({"account": "alpha", "symbol": "BTCUSD", "side": "buy"})))
            .await
            .expect(202);
        assert_eq!(bought["status"], "filled", "{bought}");
    }
    edge.check_roles(Method::POST, "/api/v1/control/accounts/alpha/close-all", None, "trader").await;
    edge.post("/api/v1/control/accounts/alpha/close-all", t, None).await.expect(200);
    let started = Instant::now();
    while open(edge.get("/api/v1/trading/positions/alpha", v).await.expect(200)) {
        assert!(started.elapsed() < Duration::from_secs(20), "close-all left the position open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Reset is the admin's: it overrides a risk limit.
    edge.check_roles(Method::POST, "/api/v1/control/accounts/beta/reset", None, "admin").await;
    edge.post("/api/v1/control/accounts/beta/reset", a, None).await.expect(200);

    // Bulk: every account known (nothing sent otherwise), each once, 1 to 100.
    let both = json!({"action": "disable", "accounts": ["alpha", "beta"]});
    edge.check_roles(Method::POST, "/api/v1/control/accounts", Some(both.clone()), "trader").await;
    edge.post("/api/v1/control/accounts", t, Some(json!({"action": "reset", "accounts": ["alpha"]})))
        .await
        .expect_error(403, "forbidden");
    edge.post("/api/v1/control/accounts", t, Some(json!({"action": "disable", "accounts": []})))
        .await
        .expect_error(422, "invalid_body");
    edge.post("/api/v1/control/accounts", t, Some(json!({"action": "disable", "accounts": ["alpha", "alpha"]})))
        .await
        .expect_error(422, "invalid_body");
    edge.post("/api/v1/control/accounts", t, Some(json!({"action": "shout", "accounts": ["alpha"]})))
        .await
        .expect_error(422, "invalid_body");
    let unknown = edge
        .post("/api/v1/control/accounts", t, Some(json!({"action": "disable", "accounts": ["alpha", "ghost"]})))
        .await
        .expect_error(404, "not_found");
    assert_eq!(unknown["error"]["details"]["unknown"], json!(["ghost"]));
    let off = edge.post("/api/v1/control/accounts", t, Some(both)).await.expect(200);
    assert_eq!(off["applied"], true, "{off}");
    let accounts: Vec<&str> =
        off["results"].as_array().unwrap().iter().map(|r| r["account"].as_str().unwrap()).collect();
    assert_eq!(accounts, ["alpha", "beta"]);
    let refused = edge
        .post("/api/v1/paper/orders", t, Some(json!({"account": "beta", "symbol": "BTCUSD", "side": "buy"})))
        .await
        .expect(202);
    assert_eq!(refused["reason"], "trading_disabled", "{refused}");
    edge.post("/api/v1/control/accounts", t, Some(json!({"action": "enable", "accounts": ["alpha", "beta"]})))
        .await
        .expect(200);

    // Every control is in the audit log with its actor, refusals too.
    edge.wait_drained().await;
    let audit: Vec<(String, String, String)> = rows(&edge, Table::Audit)
        .await
        .into_iter()
        .filter_map(|r| match r {
            Row::Audit(a) => Some((a.action, a.actor, a.status)),
            _ => None,
        })
        .collect();
    for (action, actor, outcome) in [
        ("account_pause", "ops", "ok"),
        ("account_pause", "ops", "refused"),
        ("account_resume", "ops", "ok"),
        ("account_close_all", "ops", "ok"),
        ("account_reset", "admin", "ok"),
        ("accounts_disable", "ops", "ok"),
        ("accounts_disable", "ops", "refused"),
        ("accounts_enable", "ops", "ok"),
    ] {
        assert!(
            audit.iter().any(|(a, who, o)| a == action && who == actor && o == outcome),
            "{action} by {actor} ({outcome}) missing: {audit:?}"
        );
    }
}
