//! The role matrix: every route of `/openapi.json` called without credentials and as a viewer,
//! a trader and an admin, against the policy below (the least role each route needs). A route
//! missing from the policy, or a policy entry no route has, fails the test, so a new route
//! cannot ship without its rule. Below its role a caller gets 401 (no credentials) or 403; at
//! or above it, anything but 401 and 403 (the bodies are empty objects and the ids unknown, so
//! most answers are 4xx of the route's own checks).

mod edge_common;

use std::collections::BTreeSet;

use edge_common::Edge;
use reqwest::Method;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Least {
    Public,
    Viewer,
    Trader,
    Admin,
}
use Least::*;

/// (method, path, least role).
const POLICY: &[(&str, &str, Least)] = &[
    ("POST", "/api/v1/ai/analyze", Trader),
    ("POST", "/api/v1/ai/market-condition", Trader),
    ("POST", "/api/v1/ai/strategy-recommendations", Trader),
    ("GET", "/api/v1/ai/cost/statistics", Viewer),
    ("GET", "/api/v1/ai/info", Viewer),
    ("GET", "/api/v1/ai/strategies", Viewer),
    ("GET", "/api/v1/models", Viewer),
    ("GET", "/api/v1/models/{name}/versions", Viewer),
    ("GET", "/api/v1/models/{name}/versions/{version}", Viewer),
    ("POST", "/api/v1/models/{name}/deploy", Admin),
    ("POST", "/api/v1/models/{name}/rollback", Admin),
    ("GET", "/api/v1/models/{name}/performance", Viewer),
    ("POST", "/api/v1/models/{name}/feedback", Trader),
    ("POST", "/api/v1/models/{name}/train", Trader),
    ("POST", "/api/v1/models/{name}/retrain", Trader),
    ("GET", "/api/v1/ai/performance", Viewer),
    ("POST", "/api/v1/ai/feedback", Trader),
    ("GET", "/api/v1/ai/history", Viewer),
    ("GET", "/api/v1/ai/storage/stats", Viewer),
    ("POST", "/api/v1/ai/storage/clear", Admin),
    ("POST", "/api/v1/ai/analyze/multi", Trader),
    ("GET", "/api/v1/analytics/performance", Viewer),
    ("GET", "/api/v1/analytics/risk", Viewer),
    ("GET", "/api/v1/analytics/portfolio", Viewer),
    ("GET", "/api/v1/audit", Admin),
    ("GET", "/api/v1/data/datasets", Viewer),
    ("DELETE", "/api/v1/data/datasets/{symbol}/{interval}", Admin),
    ("POST", "/api/v1/data/download", Trader),
    ("POST", "/api/v1/auth/login", Public),
    ("GET", "/api/v1/auth/me", Viewer),
    ("GET", "/api/v1/scheduler/status", Viewer),
    ("GET", "/api/v1/scheduler/stats", Viewer),
    ("GET", "/api/v1/scheduler/next-run", Viewer),
    ("POST", "/api/v1/scheduler/trigger", Trader),
    ("POST", "/api/v1/scheduler/pause", Trader),
    ("POST", "/api/v1/scheduler/resume", Trader),
    ("POST", "/api/v1/emergency/stop-all", Admin),
    ("POST", "/api/v1/emergency/clear", Admin),
    ("POST", "/api/v1/control/accounts/{id}/{action}", Trader),
    ("POST", "/api/v1/control/accounts", Trader),
    ("GET", "/health", Public),
    ("GET", "/ready", Public),
    ("GET", "/metrics", Public),
    ("GET", "/api/v1/market/prices", Viewer),
    ("GET", "/api/v1/market/price/{symbol}", Viewer),
    ("GET", "/api/v1/market/ticker/{symbol}", Viewer),
    ("GET", "/api/v1/market/snapshot", Viewer),
    ("GET", "/api/v1/market/candles/{symbol}", Viewer),
    ("GET", "/api/v1/market/indicators/{symbol}", Viewer),
    ("GET", "/api/v1/monitoring/health", Viewer),
    ("GET", "/api/v1/monitoring/alerts", Viewer),
    ("POST", "/api/v1/monitoring/alerts/{id}/acknowledge", Trader),
    ("POST", "/api/v1/monitoring/alerts/{id}/resolve", Trader),
    ("GET", "/api/v1/news", Viewer),
    ("POST", "/api/v1/trading/orders", Trader),
    ("POST", "/api/v1/paper/orders", Trader),
    ("POST", "/api/v1/paper/positions/{account}/{symbol}/close", Trader),
    ("GET", "/api/v1/backtests", Viewer),
    ("GET", "/api/v1/backtests/{id}", Viewer),
    ("GET", "/api/v1/backtests/{id}/report", Viewer),
    ("GET", "/api/v1/hyperopt/{id}", Viewer),
    ("GET", "/api/v1/streams", Viewer),
    ("GET", "/api/v1/streams/{name}/config", Viewer),
    ("GET", "/api/v1/streams/{name}/health", Viewer),
    ("GET", "/api/v1/health/streams", Viewer),
    ("GET", "/api/v1/streams/metrics", Viewer),
    ("GET", "/api/v1/streams/{name}/dlq/stats", Viewer),
    ("GET", "/api/v1/streams/{name}/dlq/messages", Viewer),
    ("POST", "/api/v1/streams/{name}/dlq/replay", Trader),
    ("DELETE", "/api/v1/streams/{name}/dlq", Admin),
    ("POST", "/api/v1/tasks/backtest", Trader),
    ("POST", "/api/v1/tasks/hyperopt", Trader),
    ("POST", "/api/v1/tasks/download", Trader),
    ("POST", "/api/v1/tasks/train", Trader),
    ("GET", "/api/v1/tasks", Viewer),
    ("GET", "/api/v1/tasks/{id}", Viewer),
    ("DELETE", "/api/v1/tasks/{id}", Trader),
    ("POST", "/api/v1/tasks/{id}/retry", Trader),
    ("GET", "/api/v1/tasks/stats", Viewer),
    ("GET", "/api/v1/tasks/quotas", Viewer),
    ("GET", "/api/v1/trading/accounts", Viewer),
    ("GET", "/api/v1/trading/accounts/{id}", Viewer),
    ("POST", "/api/v1/trading/accounts", Trader),
    ("PUT", "/api/v1/trading/accounts/{id}", Trader),
    ("PATCH", "/api/v1/trading/accounts/{id}", Trader),
    ("DELETE", "/api/v1/trading/accounts/{id}", Trader),
    ("POST", "/api/v1/trading/accounts/{id}/enable", Trader),
    ("POST", "/api/v1/trading/accounts/{id}/disable", Trader),
    ("GET", "/api/v1/trading/positions", Viewer),
    ("GET", "/api/v1/trading/positions/{account}", Viewer),
    ("GET", "/api/v1/trading/trades", Viewer),
    ("GET", "/api/v1/trading/trades/{account}", Viewer),
    ("GET", "/api/v1/trading/logs", Viewer),
    ("GET", "/api/v1/trading/balance-history", Viewer),
    ("GET", "/api/v1/trading/position-snapshots", Viewer),
    ("GET", "/api/v1/trading/leaderboard", Viewer),
    ("GET", "/api/v1/trading/status", Viewer),
    ("GET", "/ws", Public),
    ("GET", "/ws/stats", Viewer),
];

/// A concrete path: a tracked symbol and account where the route reads them, unknown ids
/// elsewhere.
fn concrete(path: &str) -> String {
    path.replace("{symbol}", "BTCUSD")
        .replace("{account}", "alpha")
        .replace("{name}", "md.candles")
        .replace("{action}", "pause")
        .replace("{interval}", "1h")
        .replace("{version}", "1")
        .replace("{id}", "no-such-id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_policy_says() {
    let edge = Edge::start().await;
    let doc = edge.get("/openapi.json", None).await.expect(200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let policy: BTreeSet<(String, String)> = POLICY.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    let unruled: Vec<_> = documented.difference(&policy).collect();
    let stale: Vec<_> = policy.difference(&documented).collect();
    assert!(unruled.is_empty(), "routes without a policy entry: {unruled:?}");
    assert!(stale.is_empty(), "policy entries no route has: {stale:?}");

    let who =
        [(Viewer, Some(edge.viewer.clone())), (Trader, Some(edge.trader.clone())), (Admin, Some(edge.admin.clone()))];
    let mut wrong = Vec::new();
    for &(method, path, least) in POLICY {
        if path == "/ws" {
            continue; // an upgrade, not a request: edge_ws checks its credentials
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let url = concrete(path);
        let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
        let r = edge.call(m.clone(), &url, None, body.clone()).await;
        let status = r.status.as_u16();
        let ok = if least == Public { status != 401 && status != 403 } else { status == 401 };
        if !ok {
            wrong.push(format!("{method} {path} without credentials: {status} {}", r.body));
        }
        for (role, token) in &who {
            let r = edge.call(m.clone(), &url, token.as_deref(), body.clone()).await;
            let status = r.status.as_u16();
            let ok = if *role < least { status == 403 } else { status != 401 && status != 403 };
            if !ok {
                wrong.push(format!("{method} {path} as {role:?}: {status} {}", r.body));
            }
            if *role < least {
                assert_eq!(r.body["error"]["code"], "forbidden", "{method} {path} as {role:?}: {}", r.body);
            }
        }
    }
    assert!(wrong.is_empty(), "{} answers against the policy:\n{}", wrong.len(), wrong.join("\n"));
}

/// Security headers on every kind of answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_the_security_headers() {
    let edge = Edge::start().await;
    for (path, token) in [
        ("/api/v1/trading/status", Some(edge.viewer.as_str())),
        ("/api/v1/trading/status", None),
        ("/no/such/route", None),
        ("/health", None),
        ("/docs/", None),
    ] {
        let r = edge.get(path, token).await;
        let h = &r.headers;
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(h.get(name).and_then(|v| v.to_str().ok()), Some(value), "{path}: {name}");
        }
        let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path.starts_with("/api") {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
    }
}

/// Failed logins slow down per user whatever the address: after five failures the sixth is
/// refused with 429 before its password is checked, the right password included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_slow_down_per_user() {
    let edge = Edge::start().await;
    let (user, password) = edge_common::TRADER;
    let attempt = |pw: &'static str| {
        edge.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": user, "password": pw})))
    };
    for _ in 0..5 {
        attempt("wrong-1").await.expect_error(401, "unauthorized");
    }
    attempt("wrong-2").await.expect_error(401, "unauthorized");
    let r = attempt(password).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "login_throttled");
    assert!(r.headers.get("retry-after").is_some());
    // Another user is not slowed.
    edge.login("admin", edge_common::ADMIN_PASSWORD).await;
    // After the wait (1 s for the sixth failure) the right password works and clears the count.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    edge.login(user, password).await;
    attempt("wrong-3").await.expect_error(401, "unauthorized");
}
