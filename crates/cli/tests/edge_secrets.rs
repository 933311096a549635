//! Secrets never reach a log or an error body: `tradeflow up` with a generated JWT secret and
//! admin password, an LLM analyst and a Binance futures account, each with its key in the
//! environment, both services faked on loopback and refusing the keys as the real ones do.
//! The run goes through the error paths (bad logins, bad tokens and keys, malformed bodies,
//! unknown routes, failing analyst and exchange calls) and every line of its stdout and stderr
//! (at `debug`) and every answer body is searched for each secret.

mod edge_common;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use edge_common::{BIN, CANDLES, DEMO, STREAMS};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tradeflow_testkit::TestRedis;

const LLM_KEY: &str = "sk-test-LLMKEY-5b1d0c9e7a3f42d8b6e1";
const BINANCE_KEY: &str = "binance-test-KEY-9f8e7d6c5b4a39281706";
const BINANCE_SECRET: &str = "binance-test-SECRET-0a1b2c3d4e5f60718293";

#[derive(Default)]
struct Fake {
    llm: AtomicUsize,
    binance: AtomicUsize,
    /// Whether the keys arrived as configured (so that the run really used them).
    llm_key_seen: AtomicUsize,
    binance_key_seen: AtomicUsize,
}

/// One loopback server for both services. Answers as they document a refused key
/// (2026-12-06): OpenAI `401 {"error": {"message": "Incorrect API key provided: sk-te***e1 …",
/// "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}` (the key masked
/// but for a few characters); Binance futures `401 {"code": -2015, "msg": "Invalid API-key, IP,
/// or permissions for action, request ip: …"}`.
async fn fake_services() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let seen = fake.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                seen.llm.fetch_add(1, Ordering::SeqCst);
                if auth == format!("Bearer {LLM_KEY}") {
                    seen.llm_key_seen.fetch_add(1, Ordering::SeqCst);
                }
                let key = auth.trim_start_matches("Bearer ");
                let masked = format!("{}***{}", &key[..5.min(key.len())], &key[key.len().saturating_sub(2)..]);
                let body = json!({"error": {
                    "message": format!("Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."),
                    "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
                return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
            }
            seen.binance.fetch_add(1, Ordering::SeqCst);
            if headers.get("x-mbx-apikey").is_some_and(|v| v == BINANCE_KEY) {
                seen.binance_key_seen.fetch_add(1, Ordering::SeqCst);
            }
            let body =
                json!({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1"});
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), fake)
}

fn write_inputs(dir: &std::path::Path, fake: &str) {
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let head: Vec<&str> = demo.lines().take(CANDLES + 1).collect();
    std::fs::write(dir.join("bars.csv"), head.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("profiles.toml"),
        "[[profile]]\nname = \"technical\"\nmodels = { technical = 1.0 }\nmethod = \"confidence_weighted_mean\"\n",
    )
    .unwrap();
    let accounts = format!(
        r#"
[[account]]
id = "alpha"
profile = "technical"
starting_balance = 10000.0

[[account]]
id = "gamma"
profile = "technical"
executor = "binance_futures"
starting_balance = 1000.0
[account.binance]
base_url = "{fake}"
api_key_env = "TF_TEST_BINANCE_KEY"
secret_env = "TF_TEST_BINANCE_SECRET"
"#
    );
    std::fs::write(dir.join("accounts.toml"), accounts).unwrap();
    let llm = format!(
        r#"
[[analyst]]
name = "gpt"
dialect = "openai"
base_url = "{fake}/v1"
model = "gpt-4o-mini"
api_key_envs = ["TF_TEST_LLM_KEY"]
timeout_ms = 2000
min_interval_ms = 0
max_candle_age_s = 315360000
"#
    );
    std::fs::write(dir.join("llm.toml"), llm).unwrap();
    std::fs::write(dir.join("tradeflow.toml"), "[edge]\n").unwrap();
}

struct Run {
    base: String,
    client: reqwest::Client,
    /// Every answer body, as text.
    bodies: Mutex<Vec<String>>,
}

impl Run {
    async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.bodies.lock().unwrap().push(format!("{path} {status} {text}"));
        (status, text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_or_an_error_body() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (fake_url, fake) = fake_services().await;
    write_inputs(dir.path(), &fake_url);
    let bars = dir.path().join("bars.csv");
    let mut child = tokio::process::Command::new(BIN)
        .args(["--config", dir.path().join("tradeflow.toml").to_str().unwrap()])
        .args(["up", "--listen", "127.0.0.1:0", "--models", "technical"])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--llm-config", dir.path().join("llm.toml").to_str().unwrap()])
        .args(["--replay", &format!("BTCUSD={}", bars.display())])
        .env("REDIS_URL", redis.url())
        .env("TRADEFLOW_STREAMS", STREAMS)
        .env("TRADEFLOW_PROFILES", dir.path().join("profiles.toml"))
        .env("TRADEFLOW_ACCOUNTS", dir.path().join("accounts.toml"))
        .env("TRADEFLOW_LOG", "debug")
        .env("TF_TEST_LLM_KEY", LLM_KEY)
        .env("TF_TEST_BINANCE_KEY", BINANCE_KEY)
        .env("TF_TEST_BINANCE_SECRET", BINANCE_SECRET)
        .env_remove("TRADEFLOW_JWT_SECRET")
        .env_remove("TRADEFLOW_ADMIN_PASSWORD")
        .env_remove("DATABASE_URL")
        .env_remove("TRADEFLOW_EDGE_LISTEN")
        .env_remove("TRADEFLOW_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, mut stdout_lines) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = Vec::new();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (l, t) = (logs.clone(), tx.clone());
    readers.push(tokio::spawn(async move {
        let mut lines = out.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            l.lock().unwrap().push(line.clone());
            let _ = t.send(line);
        }
    }));
    let err = BufReader::new(child.stderr.take().unwrap());
    let l = logs.clone();
    readers.push(tokio::spawn(async move {
        let mut lines = err.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            l.lock().unwrap().push(line);
        }
    }));
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stdout_lines.recv().await {
            if let Some(rest) = line.strip_prefix("edge: http://") {
                return format!("http://{}", rest.split('/').next().unwrap());
            }
        }
        panic!("tradeflow up ended before its edge started");
    })
    .await
    .expect("the edge did not start within 60 s");

    // The generated secrets, from the files `up` keeps them in (mode 0600).
    let jwt_secret = std::fs::read_to_string(dir.path().join("edge.secret")).unwrap().trim().to_string();
    let password_file = dir.path().join("edge-admin.password");
    let admin_password = std::fs::read_to_string(&password_file).unwrap().trim().to_string();
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["edge.secret", "edge-admin.password", "edge-admin.hash"] {
            let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    assert!(jwt_secret.len() >= 32 && admin_password.len() >= 20, "generated secrets too short");
    assert!(
        logs.lock().unwrap().iter().any(|l| l.contains(&password_file.display().to_string())),
        "up names the file that holds the admin password"
    );

    tradeflow_net::tls::install_ring_provider();
    let run = Run {
        base,
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        bodies: Mutex::new(Vec::new()),
    };

    // Logins: wrong password, unknown user, the password under the wrong name, malformed
    // and mistyped bodies (the real password in them), a wrong content type.
    let pw = admin_password.as_str();
    for body in [
        json!({"username": "admin", "password": "wrong"}).to_string(),
        json!({"username": "ghost", "password": pw}).to_string(),
        json!({"username": pw, "password": pw}).to_string(),
        format!("{{\"username\": \"admin\", \"password\": \"{pw}\""),
        json!({"username": "admin", "password": [pw]}).to_string(),
        json!({"username": "admin", "password": pw, "otp": 1}).to_string(),
    ] {
        let (status, _) = run.call(Method::POST, "/api/v1/auth/login", &[], Some(&body)).await;
        assert!((400..500).contains(&status), "{status} for {body}");
    }
    let (status, login) = run
        .call(Method::POST, "/api/v1/auth/login", &[], Some(&json!({"username": "admin", "password": pw}).to_string()))
        .await;
    assert_eq!(status, 200, "{login}");
    let token = serde_json::from_str::<Value>(&login).unwrap()["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let auth: &[(&str, &str)] = &[("authorization", &bearer)];

    // Bad credentials: secrets sent where they do not belong, a tampered token.
    let tampered = format!("Bearer {token}x");
    let wrong_secret = format!("Bearer {jwt_secret}");
    for headers in [
        vec![("authorization", tampered.as_str())],
        vec![("authorization", wrong_secret.as_str())],
        vec![("x-api-key", LLM_KEY)],
        vec![("x-api-key", BINANCE_SECRET)],
        vec![("x-api-key", pw)],
    ] {
        let (status, _) = run.call(Method::GET, "/api/v1/auth/me", &headers, None).await;
        assert_eq!(status, 401);
    }

    // Unknown routes, wrong methods, malformed bodies, unknown resources.
    run.call(Method::GET, "/api/v1/nope", auth, None).await;
    run.call(Method::DELETE, "/health", &[], None).await;
    run.call(Method::POST, "/api/v1/trading/accounts", auth, Some("{\"id\": ")).await;
    run.call(Method::POST, "/api/v1/trading/accounts", auth, Some(&json!({"id": 5}).to_string())).await;
    run.call(Method::PATCH, "/api/v1/trading/accounts/gamma", auth, Some(&json!({"leverage": "x"}).to_string())).await;
    run.call(Method::GET, "/api/v1/trading/accounts/nobody", auth, None).await;
    run.call(Method::POST, "/api/v1/ai/analyze", auth, Some("[1, 2")).await;

    // Wait until the pipeline has called both services with their keys (and been refused).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while fake.llm_key_seen.load(Ordering::SeqCst) == 0 || fake.binance_key_seen.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the services were not called with the keys: llm {} ({} with the key), binance {} ({} with the key)",
            fake.llm.load(Ordering::SeqCst),
            fake.llm_key_seen.load(Ordering::SeqCst),
            fake.binance.load(Ordering::SeqCst),
            fake.binance_key_seen.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The edge's own analysis through the refused analyst, and the views that carry errors,
    // configurations and events.
    let (status, analysis) =
        run.call(Method::POST, "/api/v1/ai/analyze", auth, Some(&json!({"symbol": "BTCUSD"}).to_string())).await;
    assert!(status < 500, "{status} {analysis}");
    for path in [
        "/api/v1/trading/accounts/gamma",
        "/api/v1/trading/accounts",
        "/api/v1/ai/info",
        "/api/v1/ai/cost/statistics",
        "/api/v1/monitoring/alerts?limit=200",
        "/api/v1/monitoring/health",
        "/api/v1/streams/risk.orders/dlq/messages?limit=100",
        "/api/v1/streams/inf.signals/dlq/messages?limit=100",
        "/api/v1/trading/logs?limit=200",
        "/api/v1/audit?per_page=200",
        "/metrics",
        "/ready",
    ] {
        run.call(Method::GET, path, auth, None).await;
    }
    let (_, account) = run.call(Method::GET, "/api/v1/trading/accounts/gamma", auth, None).await;
    assert!(account.contains("TF_TEST_BINANCE_KEY"), "the view names the variable: {account}");

    // Stop `up` and read everything it wrote.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    for r in readers {
        r.await.unwrap();
    }

    let logs = logs.lock().unwrap();
    let bodies = run.bodies.lock().unwrap();
    assert!(logs.len() > 100, "debug logs were written ({} lines)", logs.len());
    assert!(logs.iter().any(|l| l.contains("401")), "the refusals were logged");
    for (name, secret) in [
        ("the JWT secret", jwt_secret.as_str()),
        ("the admin password", pw),
        ("the LLM key", LLM_KEY),
        ("the exchange key", BINANCE_KEY),
        ("the exchange secret", BINANCE_SECRET),
    ] {
        if let Some(line) = logs.iter().find(|l| l.contains(secret)) {
            panic!("{name} is in the logs: {line}");
        }
        if let Some(body) = bodies.iter().find(|b| b.contains(secret)) {
            panic!("{name} is in an answer: {body}");
        }
    }
}
