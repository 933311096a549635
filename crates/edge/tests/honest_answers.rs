//! The edge answers what it knows, in process (its own Redis, no pipeline): a command that was
//! not seen applied is 202 with `applied: false`, never 200; `/health` is `ok` only while the
//! process can serve; `/ready` pings the database without reading a table; probes have an
//! allowance per address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use prometheus::Registry;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tradeflow_audit::AuditStore;
use tradeflow_bus::{Bus, Producer, Topology};
use tradeflow_core::control::ControlState;
use tradeflow_edge::auth::{Auth, Identity, Role};
use tradeflow_edge::{AppState, EdgeConfig, EdgeMetrics, Pipeline};
use tradeflow_risk::AccountConfig;
use tradeflow_testkit::TestRedis;

const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");

fn state(
    bus: Bus,
    control: watch::Receiver<ControlState>,
    store: Option<Arc<AuditStore>>,
    config: EdgeConfig,
) -> AppState {
    let auth = Auth::new(&config, Some(vec![7; 32]), Vec::new()).unwrap();
    let registry = Registry::new();
    AppState {
        producer: Producer::new(bus.clone(), "edge"),
        bus,
        store,
        auth: Arc::new(auth),
        hub: tradeflow_edge::hub::Hub::new(config.ws.clone()),
        config: Arc::new(config),
        live: Arc::default(),
        outcomes: Arc::default(),
        metrics: EdgeMetrics::register(&registry).unwrap(),
        registry,
        pipeline: Arc::new(Pipeline {
            accounts: vec![AccountConfig::paper("a", "technical", 1000.0)].into(),
            ..Pipeline::default()
        }),
        control,
        scheduler: Arc::default(),
        ai: Arc::default(),
        monitor: Arc::default(),
        serving: Arc::default(),
        started_at: Instant::now(),
    }
}

fn token(state: &AppState, role: Role) -> String {
    let who = Identity { subject: format!("test-{}", role.as_str()), role };
    state.auth.issue(&who).unwrap().0
}

/// One request through the whole service (every layer); (status, headers, JSON body).
async fn call(state: &AppState, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, _, body) = call_with_headers(state, method, path, token).await;
    (status, body)
}

async fn call_with_headers(
    state: &AppState,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = tradeflow_edge::app(state.clone()).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_not_seen_applied_is_202_not_200() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;

    // No follower applies anything: every command is sent, none is confirmed.
    let (_tx, rx) = watch::channel(ControlState::default());
    let s = state(bus.clone(), rx, None, EdgeConfig::default());
    let (trader, admin) = (token(&s, Role::Trader), token(&s, Role::Admin));
    for (path, tok) in [
        ("/api/v1/scheduler/pause", &trader),
        ("/api/v1/emergency/stop-all", &admin),
        ("/api/v1/trading/accounts/a/disable", &trader),
    ] {
        let started = Instant::now();
        let (status, body) = call(&s, "POST", path, Some(tok)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
        assert_eq!(body["applied"], false, "{path}: {body}");
        let id = body["command"].as_str().unwrap_or_default();
        assert!(id.starts_with("ctl:"), "{path}: {body}");
        assert!(started.elapsed() >= Duration::from_secs(2), "{path} waited for the command");
        if path.contains("scheduler") {
            assert!(body["message"].as_str().unwrap().contains("not seen applied"), "{body}");
        }
        let sent = tradeflow_testkit::envelopes(&bus, "ctl.commands").await;
        assert!(
            sent.iter().any(|e| e.open::<tradeflow_core::control::ControlCommand>().is_ok_and(|c| c.id == id)),
            "{path}: the command is on ctl.commands"
        );
    }

    // With the real follower the same commands are confirmed: 200, `applied: true`.
    let (tx, rx) = watch::channel(ControlState::default());
    let stop = CancellationToken::new();
    tokio::spawn(tradeflow_bus::control::follow(bus.clone(), tx, stop.clone()));
    let s = state(bus.clone(), rx, None, EdgeConfig::default());
    for (path, tok) in [
        ("/api/v1/scheduler/resume", &trader),
        ("/api/v1/emergency/stop-all", &admin),
        ("/api/v1/trading/accounts/a/enable", &trader),
    ] {
        let (status, body) = call(&s, "POST", path, Some(tok)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["applied"], true, "{path}: {body}");
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_ok_only_while_the_process_can_serve() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    bus.init().await.unwrap();
    let (tx, rx) = watch::channel(ControlState::default());
    let s = state(bus, rx, None, EdgeConfig::default());
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = tradeflow_edge::start(s.clone(), listener, stop.clone()).await.unwrap();
    let server = tokio::spawn(server);

    let (status, body) = call(&s, "GET", "/health", None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")), "{body}");
    assert_eq!(body["problems"], serde_json::json!([]));

    // The control follower ends: commands can no longer be applied here.
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = call(&s, "GET", "/health", None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["status"], "failing", "{body}");
            let problems = body["problems"].to_string();
            assert!(problems.contains("control follower"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Shutting down: `stopping`.
    stop.cancel();
    let (status, body) = call(&s, "GET", "/health", None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("stopping")), "{body}");
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_pings_the_database_and_probes_are_rate_limited() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let store = Arc::new(AuditStore::connect(&url).await.unwrap());
    let (_tx, rx) = watch::channel(ControlState::default());
    let s = state(bus.clone(), rx, Some(store.clone()), EdgeConfig::default());
    let (status, body) = call(&s, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Readiness asks whether the database answers, not how many rows a table holds: with the
    // table a row count would read gone, the database still answers.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE audit_log").execute(&pool).await.unwrap();
    pool.close().await;
    let (status, body) = call(&s, "GET", "/ready", None).await;
    assert_eq!((status, &body["database"]["ok"]), (StatusCode::OK, &Value::Bool(true)), "{body}");
    // ... and when it does not answer, readiness says so.
    store.close().await;
    let (status, body) = call(&s, "GET", "/ready", None).await;
    assert_eq!((status, &body["database"]["ok"]), (StatusCode::SERVICE_UNAVAILABLE, &Value::Bool(false)), "{body}");

    // Probes stay unauthenticated but have an allowance per address (two a minute here).
    let mut config = EdgeConfig::default();
    config.rate_limit.probe_per_minute = 2;
    let (_tx, rx) = watch::channel(ControlState::default());
    let s = state(bus, rx, None, config);
    let app = tradeflow_edge::app(s.clone());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let req = Request::builder().uri("/health").body(Body::empty()).unwrap();
        let r = app.clone().oneshot(req).await.unwrap();
        statuses.push((
            r.status(),
            r.headers().contains_key("retry-after"),
            r.headers().contains_key("x-ratelimit-limit"),
        ));
    }
    assert_eq!(
        statuses,
        [(StatusCode::OK, false, false), (StatusCode::OK, false, false), (StatusCode::TOO_MANY_REQUESTS, true, true)]
    );
    // Another class is not touched by the probes' allowance.
    let (status, _, _) = call_with_headers(&s, "GET", "/api/v1/scheduler/status", Some(&token(&s, Role::Viewer))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_from_memory_say_since_when_they_may_be_stale() {
    let mut redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    bus.init().await.unwrap();
    let (_tx, rx) = watch::channel(ControlState::default());
    let s = state(bus, rx, None, EdgeConfig::default());
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = tokio::spawn(tradeflow_edge::start(s.clone(), listener, stop.clone()).await.unwrap());
    let viewer = token(&s, Role::Viewer);
    let stale = |body: &Value| body["stale_since"].clone();
    let (_, body) = call(&s, "GET", "/api/v1/trading/status", Some(&viewer)).await;
    assert_eq!(stale(&body), Value::Null, "{body}");

    // Redis goes away: the live view keeps what it had, and says since when.
    let before = tradeflow_core::time::now_ms();
    redis.kill().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let since = loop {
        let (status, body) = call(&s, "GET", "/api/v1/trading/status", Some(&viewer)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(t) = stale(&body).as_i64() {
            break t;
        }
        assert!(Instant::now() < deadline, "no stale_since with Redis gone: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(since >= before, "{since} < {before}");
    for path in ["/api/v1/trading/accounts", "/api/v1/analytics/portfolio"] {
        let (_, body) = call(&s, "GET", path, Some(&viewer)).await;
        let got = if path.ends_with("accounts") { stale(&body["items"][0]) } else { stale(&body) };
        assert_eq!(got.as_i64(), Some(since), "{path}: {body}");
    }

    // Back: the tap reads again and the mark goes.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = call(&s, "GET", "/api/v1/trading/status", Some(&viewer)).await;
        if stale(&body).is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "still stale with Redis back: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_and_closes_the_connection() {
    let redis = TestRedis::start().await;
    let bus = redis.bus(Topology::load(STREAMS).unwrap()).await;
    let (_tx, rx) = watch::channel(ControlState::default());
    let s = state(bus, rx, None, EdgeConfig { body_limit_bytes: 1024, ..EdgeConfig::default() });
    let body = format!("{{\"username\": \"{}\", \"password\": \"x\"}}", "u".repeat(4096));
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = tradeflow_edge::app(s.clone()).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The server does not read the rest of the body: the client must not reuse the connection.
    assert_eq!(response.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
}
