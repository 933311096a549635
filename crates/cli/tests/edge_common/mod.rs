//! A running pipeline with its edge, for the edge's integration tests: `tradeflow up` over a
//! private redis-server and SQLite, two symbols (the first `CANDLES` demo bars as BTCUSD and
//! ETHUSD), two profiles, two paper accounts, users of every role, the edge on a free port.
//! `start` returns once every stage and the audit writer have drained.

#![allow(dead_code)]

pub mod ws;

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tradeflow_bus::{Bus, Topology};
use tradeflow_testkit::TestRedis;

pub const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");
pub const STREAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
pub const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv");
/// Bars per symbol.
pub const CANDLES: usize = 600;
pub const SYMBOLS: [&str; 2] = ["BTCUSD", "ETHUSD"];
pub const ADMIN_PASSWORD: &str = "admin-pass-1";
pub const TRADER: (&str, &str) = ("ops", "ops-pass-1");
pub const VIEWER: (&str, &str) = ("watcher", "watch-pass-1");
pub const API_KEY: &str = "grafana-key-0123456789";

pub const PROFILES: &str = include_str!("../../../../tests/data/pipeline/profiles.toml");

pub const ACCOUNTS: &str = r#"
[[account]]
id = "alpha"
name = "Alpha"
profile = "technical"
starting_balance = 10000.0

[[account]]
id = "beta"
name = "Beta"
profile = "committee"
starting_balance = 5000.0
leverage = 3.0
allow_short = false
trailing_stop_pct = 0.03
"#;

/// Knobs of the edge under test.
#[derive(Clone)]
pub struct Options {
    pub anonymous_read: bool,
    pub read_per_minute: u32,
    pub write_per_minute: u32,
    pub auth_per_minute: u32,
    pub ws_client_queue: usize,
    pub body_limit_bytes: usize,
    /// TOML appended to the process config (e.g. an `[edge.prices]` table).
    pub extra_config: String,
    /// More arguments of `tradeflow up` (e.g. `--no-jobs`).
    pub up_args: Vec<String>,
    /// `[edge] models_refresh_s`: how often the learned models' live hit rates are measured.
    pub models_refresh_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            anonymous_read: false,
            read_per_minute: 100_000,
            write_per_minute: 10_000,
            auth_per_minute: 1_000,
            ws_client_queue: 256,
            body_limit_bytes: 65_536,
            extra_config: String::new(),
            up_args: Vec::new(),
            models_refresh_s: 60,
        }
    }
}

/// Fields drop in order: `up` goes before its Redis.
pub struct Edge {
    pub child: tokio::process::Child,
    pub redis: TestRedis,
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    pub bus: Bus,
    pub admin: String,
    pub trader: String,
    pub viewer: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the status; returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self.body
    }

    /// Asserts an error in the one format, with `status` and `code`.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(self.body["error"]["message"].is_string(), "body: {}", self.body);
        assert!(self.body.get("request_id").is_some_and(|r| r.is_string()), "body: {}", self.body);
        self.body
    }
}

fn write_inputs(dir: &std::path::Path, options: &Options) {
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let head: Vec<&str> = demo.lines().take(CANDLES + 1).collect();
    std::fs::write(dir.join("bars.csv"), head.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("profiles.toml"), PROFILES).unwrap();
    std::fs::write(dir.join("accounts.toml"), ACCOUNTS).unwrap();
    let hash = |p: &str| tradeflow_edge::auth::hash_password(p).unwrap();
    let config = format!(
        r#"
[edge]
anonymous_read = {anon}
body_limit_bytes = {body}
models_refresh_s = {refresh}
[edge.rate_limit]
read_per_minute = {read}
write_per_minute = {write}
auth_per_minute = {auth}
[edge.ws]
client_queue = {queue}
status_interval_s = 1
heartbeat_s = 5
[[edge.user]]
name = "{trader}"
password_hash = "{trader_hash}"
role = "trader"
[[edge.user]]
name = "{viewer}"
password_hash = "{viewer_hash}"
role = "viewer"
[[edge.api_key]]
name = "grafana"
key_sha256 = "{key}"
role = "viewer"
{extra}
"#,
        extra = options.extra_config,
        anon = options.anonymous_read,
        body = options.body_limit_bytes,
        refresh = options.models_refresh_s,
        read = options.read_per_minute,
        write = options.write_per_minute,
        auth = options.auth_per_minute,
        queue = options.ws_client_queue,
        trader = TRADER.0,
        trader_hash = hash(TRADER.1),
        viewer = VIEWER.0,
        viewer_hash = hash(VIEWER.1),
        key = tradeflow_edge::auth::api_key_digest(API_KEY),
    );
    std::fs::write(dir.join("tradeflow.toml"), config).unwrap();
}

/// A client of its own, whose connection goes with it (see `Edge::call_once`).
pub fn once_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Open time of the last bar `start` replays (per symbol).
pub fn last_bar_time() -> i64 {
    let demo = std::fs::read_to_string(DEMO).unwrap();
    let line = demo.lines().nth(CANDLES).expect("the demo has CANDLES bars");
    line.split(',').next().unwrap().parse().unwrap()
}

impl Edge {
    pub async fn start() -> Edge {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Edge {
        let redis = TestRedis::start().await;
        let dir = tempfile::tempdir().unwrap();
        write_inputs(dir.path(), &options);
        let bars = dir.path().join("bars.csv");
        let mut child = tokio::process::Command::new(BIN)
            .args(["--config", dir.path().join("tradeflow.toml").to_str().unwrap()])
            .args(["up", "--listen", "127.0.0.1:0", "--models", "rsi,macd,technical"])
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .args(["--replay", &format!("BTCUSD={}", bars.display())])
            .args(["--replay", &format!("ETHUSD={}", bars.display())])
            .args(&options.up_args)
            .env("REDIS_URL", redis.url())
            .env("TRADEFLOW_STREAMS", STREAMS)
            .env("TRADEFLOW_PROFILES", dir.path().join("profiles.toml"))
            .env("TRADEFLOW_ACCOUNTS", dir.path().join("accounts.toml"))
            .env("TRADEFLOW_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TRADEFLOW_JWT_SECRET", "test-secret-0123456789abcdef0123456789abcdef")
            .env_remove("DATABASE_URL")
            .env_remove("TRADEFLOW_EDGE_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("[up] {line}");
                let _ = tx.send(line);
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = rx.recv().await {
                if let Some(rest) = line.strip_prefix("edge: http://") {
                    let addr = rest.split('/').next().unwrap();
                    return format!("http://{addr}");
                }
            }
            panic!("tradeflow up ended before its edge started");
        })
        .await
        .expect("the edge did not start within 60 s");
        let topology = Topology::load(STREAMS).unwrap();
        let bus = redis.bus(topology).await;
        tradeflow_net::tls::install_ring_provider();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut edge = Edge {
            redis,
            dir,
            child,
            base,
            client,
            bus,
            admin: String::new(),
            trader: String::new(),
            viewer: String::new(),
        };
        edge.wait_drained().await;
        edge.admin = edge.login("admin", ADMIN_PASSWORD).await;
        edge.trader = edge.login(TRADER.0, TRADER.1).await;
        edge.viewer = edge.login(VIEWER.0, VIEWER.1).await;
        edge
    }

    /// Waits until every stage and the audit writer have nothing left, the store holds every
    /// candle, and the edge's live view has folded in the last of it (see `wait_live`).
    pub async fn wait_drained(&self) {
        self.wait_bus_drained().await;
        self.wait_live().await;
    }

    /// Waits until every consumer group has read and acknowledged everything and the store
    /// holds every candle. The audit worker acknowledges a batch only once it is committed, so
    /// drained audit groups mean a complete store.
    pub async fn wait_bus_drained(&self) {
        let started = Instant::now();
        let groups = [
            ("md.candles", "inference"),
            ("inf.signals", "ensemble"),
            ("ens.decisions", "risk"),
            ("risk.orders", "exec"),
            ("md.candles", "audit"),
            ("inf.signals", "audit"),
            ("ens.decisions", "audit"),
            ("risk.orders", "audit"),
            ("exec.fills", "audit"),
            ("audit.events", "audit"),
            ("ctl.commands", "audit"),
        ];
        // Counted in the store: md.candles keeps only what a group still needs (trim_acked).
        let store = self.store().await;
        loop {
            let candles = store.count(tradeflow_audit::Table::Candle).await.unwrap();
            let mut waiting = Vec::new();
            if candles < (CANDLES * SYMBOLS.len()) as i64 {
                waiting.push(format!("the store holds {candles} candles"));
            }
            for (s, g) in groups {
                if !tradeflow_bus::inspect::drained(&self.bus, s, g).await.unwrap() {
                    waiting.push(format!("{s}/{g} not drained"));
                }
            }
            if waiting.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the pipeline did not drain within 120 s: {waiting:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the edge's live view (folded from its tap, which reads the streams apart
    /// from the consumer groups) matches the store: every symbol priced at its last bar, every
    /// account at the seq of its latest stored balance, the same open positions.
    ///
    /// It reads through a client bound to 127.0.0.2, another address to the edge's per-address
    /// rate limits, so that the test's own allowance is untouched.
    pub async fn wait_live(&self) {
        let mut probe = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        if probe.get(self.url("/health")).send().await.is_err() {
            // Not every system routes all of 127/8 to the loopback (macOS has only .1).
            probe = self.client.clone();
        }
        let store = self.store().await;
        let last = last_bar_time();
        let started = Instant::now();
        loop {
            let Some(missing) = self.live_lag(&probe, &store, last).await else { return };
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the edge's live view did not catch up with the store within 30 s: {missing}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the live view still misses against the store, or None.
    async fn live_lag(
        &self,
        probe: &reqwest::Client,
        store: &tradeflow_audit::AuditStore,
        last: i64,
    ) -> Option<String> {
        let get = |path: String| async move {
            let r = probe.get(self.url(&path)).header("x-api-key", API_KEY).send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        };
        let (status, prices) = get("/api/v1/market/prices".into()).await;
        if status == 429 {
            // A test with a small read allowance (edge_limits): ask again.
            return Some("the probe is rate-limited".into());
        }
        assert_eq!(status, 200, "{prices}");
        for symbol in SYMBOLS {
            let at = prices["prices"]
                .as_array()
                .and_then(|all| all.iter().find(|p| p["symbol"] == symbol))
                .and_then(|p| p["open_time"].as_i64());
            if at.is_none_or(|t| t < last) {
                return Some(format!("{symbol} priced at {at:?}, its last bar opens at {last}"));
            }
        }
        for row in store.latest_balances().await.unwrap() {
            let (status, a) = get(format!("/api/v1/trading/accounts/{}", row.account)).await;
            match status.as_u16() {
                404 => continue, // deleted since
                429 => return Some("the probe is rate-limited".into()),
                _ => {}
            }
            assert_eq!(status, 200, "{a}");
            let seq = a["account"]["seq"].as_i64();
            if seq.is_none_or(|s| s < row.seq) {
                return Some(format!("account {} at seq {seq:?}, stored {}", row.account, row.seq));
            }
        }
        let mut stored: Vec<(String, String)> = store
            .latest_positions()
            .await
            .unwrap()
            .into_iter()
            .filter(|p| p.status == "open")
            .map(|p| (p.account, p.symbol))
            .collect();
        stored.sort();
        let (status, positions) = get("/api/v1/trading/positions".into()).await;
        if status == 429 {
            return Some("the probe is rate-limited".into());
        }
        assert_eq!(status, 200, "{positions}");
        let mut live: Vec<(String, String)> = positions["items"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|p| (p["account"].as_str().unwrap_or("").into(), p["symbol"].as_str().unwrap_or("").into()))
                    .collect()
            })
            .unwrap_or_default();
        live.sort();
        if live != stored {
            return Some(format!("open positions {live:?}, stored {stored:?}"));
        }
        None
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let r = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({ "username": user, "password": password })),
            )
            .await;
        let body = r.expect(200);
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_on(&self.client, method, path, token, body).await
    }

    /// `call` on a connection of its own, for a body the edge refuses with 413 before reading
    /// it: the edge then closes that connection without a `Connection: close`, and a pooled
    /// connection could carry the test's next request into the close (hyper's
    /// `IncompleteMessage`, seen 2 in 10 runs of edge_market on 2026-12-06).
    pub async fn call_once(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.call_on(&once_client(), method, path, token, body).await
    }

    async fn call_on(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call(reqwest::Method::POST, path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    /// The audit store `up` writes (SQLite in the temp dir).
    pub async fn store(&self) -> tradeflow_audit::AuditStore {
        let url = format!("sqlite://{}", self.dir.path().join("tradeflow.db").display());
        tradeflow_audit::AuditStore::connect(&url).await.unwrap()
    }

    /// Asserts 401 without a token and 403 with a role below `least` (for a mutating route).
    pub async fn check_roles(&self, method: reqwest::Method, path: &str, body: Option<Value>, least: &str) {
        self.call(method.clone(), path, None, body.clone()).await.expect_error(401, "unauthorized");
        self.call(method.clone(), path, Some("not.a.token"), body.clone()).await.expect_error(401, "unauthorized");
        if least != "viewer" {
            self.call(method.clone(), path, Some(&self.viewer), body.clone()).await.expect_error(403, "forbidden");
        }
        if least == "admin" {
            self.call(method, path, Some(&self.trader), body).await.expect_error(403, "forbidden");
        }
    }
}
