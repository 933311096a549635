//! The edge's foundation against a running pipeline: probes, metrics, login and roles, the
//! error format, request ids, rate-limit headers, the OpenAPI document and the Swagger UI.

mod edge_common;

use edge_common::{API_KEY, Edge};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_auth_errors_and_docs() {
    let edge = Edge::start().await;

    // Probes: no credentials needed, never rate-limited.
    let h = edge.get("/health", None).await.expect(200);
    assert_eq!(h["status"], "ok");
    let r = edge.get("/ready", None).await.expect(200);
    assert_eq!(r["redis"]["ok"], true);
    assert_eq!(r["database"]["ok"], true);
    let m = edge.client.get(edge.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    for name in ["tradeflow_edge_requests_total", "tradeflow_bus_acked_total", "tradeflow_edge_ws_clients"] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }

    // Login: wrong password and unknown user get the same 401; malformed bodies 4xx.
    let bad = edge.post("/api/v1/auth/login", None, Some(json!({"username": "admin", "password": "nope"}))).await;
    let bad = bad.expect_error(401, "unauthorized");
    let unknown = edge.post("/api/v1/auth/login", None, Some(json!({"username": "ghost", "password": "nope"}))).await;
    assert_eq!(unknown.expect_error(401, "unauthorized")["error"]["message"], bad["error"]["message"]);
    edge.post("/api/v1/auth/login", None, Some(json!({"username": "admin"}))).await.expect_error(422, "invalid_body");
    edge.post("/api/v1/auth/login", None, Some(json!({"username": 5, "password": "x"})))
        .await
        .expect_error(422, "invalid_body");
    let raw = edge
        .client
        .post(edge.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);

    // Who am I, by token and by API key; bad credentials are 401 even where reads are open.
    assert_eq!(edge.get("/api/v1/auth/me", Some(&edge.admin)).await.expect(200)["role"], "admin");
    assert_eq!(edge.get("/api/v1/auth/me", Some(&edge.trader)).await.expect(200)["role"], "trader");
    let by_key = edge.client.get(edge.url("/api/v1/auth/me")).header("x-api-key", API_KEY).send().await.unwrap();
    assert_eq!(by_key.json::<serde_json::Value>().await.unwrap()["subject"], "key:grafana");
    edge.get("/api/v1/auth/me", None).await.expect_error(401, "unauthorized");
    edge.get("/api/v1/auth/me", Some("x.y.z")).await.expect_error(401, "unauthorized");

    // Unknown routes and methods in the error format; request ids echoed.
    edge.get("/api/v1/nope", Some(&edge.admin)).await.expect_error(404, "not_found");
    edge.call(reqwest::Method::PUT, "/health", None, None).await.expect_error(405, "method_not_allowed");
    let tagged = edge.client.get(edge.url("/api/v1/nope")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(tagged.headers()["x-request-id"], "abc-123");
    assert_eq!(tagged.json::<serde_json::Value>().await.unwrap()["request_id"], "abc-123");

    // Rate-limit headers on limited routes, none on probes.
    let r = edge.get("/api/v1/auth/me", Some(&edge.viewer)).await;
    for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(r.headers.contains_key(h), "{h} missing");
    }
    assert!(!edge.get("/health", None).await.headers.contains_key("x-ratelimit-limit"));

    // The OpenAPI document and the offline Swagger UI.
    let doc = edge.get("/openapi.json", None).await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in ["/health", "/ready", "/metrics", "/ws", "/ws/stats", "/api/v1/auth/login", "/api/v1/scheduler/status"] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from /openapi.json");
    }
    let ui = edge.client.get(edge.url("/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"), "the Swagger UI page");

    // The document validates as OpenAPI 3 (openapi-spec-validator, installed by setup.sh)...
    let file = edge.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", file.to_str().unwrap()])
        .output()
        .expect("python3 (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused /openapi.json (scripts/setup.sh installs it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // ... and every operation it lists is served: routed (not the fallback 404), the method
    // allowed. (The reverse holds by construction: routes are registered only through
    // `utoipa_axum::routes!`, which documents them.)
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete =
            path.split('/').map(|seg| if seg.starts_with('{') { "zz" } else { seg }).collect::<Vec<_>>().join("/");
        for method in item.as_object().unwrap().keys() {
            let Ok(m) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            if path == "/ws" {
                continue; // an upgrade, checked in edge_ws.rs
            }
            operations += 1;
            let r = edge.call(m, &concrete, None, None).await;
            assert_ne!(r.status.as_u16(), 405, "{method} {path}: {}", r.body);
            assert!(
                !(r.status.as_u16() == 404 && r.body["error"]["message"] == "no such route"),
                "{method} {path} is documented but not routed"
            );
            assert!(r.status.as_u16() < 500 || r.status.as_u16() == 503, "{method} {path}: {} {}", r.status, r.body);
        }
    }
    assert!(operations >= 10, "{operations} operations documented");

    // Logins are audited with actor and IP (through audit.events and the audit worker).
    let store = edge.store().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let rows = store.rows(tradeflow_audit::Table::Audit, 1000, 0).await.unwrap();
        let logins: Vec<_> = rows
            .iter()
            .filter_map(|r| match r {
                tradeflow_audit::Row::Audit(a) if a.action == "login" => Some(a),
                _ => None,
            })
            .collect();
        let admin =
            logins.iter().any(|a| a.actor == "admin" && a.status == "ok" && a.ip.as_deref() == Some("127.0.0.1"));
        // A name that is no user is not recorded (it may be a password typed in the wrong field).
        let ghost = logins.iter().any(|a| a.actor == "<unknown user>" && a.status == "refused");
        if admin && ghost {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "within 20 s the audit log should hold admin's login (ok, from 127.0.0.1) and ghost's (refused): {logins:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `tradeflow edge` refuses to start without a signing secret (outside --dev) and reports
/// every problem of a broken `[edge]` at once.
#[tokio::test]
async fn start_up_refusals() {
    let redis = tradeflow_testkit::TestRedis::start().await;
    let run = |args: Vec<String>, env: Vec<(&'static str, String)>| {
        let mut cmd = std::process::Command::new(edge_common::BIN);
        cmd.args(args)
            .env("REDIS_URL", redis.url())
            .env("TRADEFLOW_STREAMS", edge_common::STREAMS)
            .env_remove("TRADEFLOW_JWT_SECRET")
            .env_remove("TRADEFLOW_CONFIG")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(vec!["edge".into(), "--listen".into(), "127.0.0.1:0".into()], vec![]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TRADEFLOW_JWT_SECRET") && err.contains("--dev"), "{err}");
    let out = run(
        vec!["edge".into(), "--listen".into(), "127.0.0.1:0".into()],
        vec![("TRADEFLOW_JWT_SECRET", "short".into())],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"), "{}", String::from_utf8_lossy(&out.stderr));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[edge]\nlisten = \"nowhere\"\ntoken_ttl_s = 1\n[edge.rate_limit]\nauth_per_minute = 0\n")
        .unwrap();
    let out = run(vec!["--config".into(), config.display().to_string(), "edge".into(), "--dev".into()], vec![]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["edge.listen", "edge.token_ttl_s", "edge.rate_limit.auth_per_minute"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}
