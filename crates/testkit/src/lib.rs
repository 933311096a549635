//! Test support. Every test that needs Redis starts its own server here: a free loopback port
//! (never 6379), a private temp directory, AOF on so that `restart` keeps the data. Tests can
//! kill (SIGKILL) and restart it to exercise failure paths.

#[cfg(feature = "binance")]
pub mod binance;
pub mod cluster;
pub mod postgres;
use std::path::Path;

use tradeflow_bus::embedded::{EmbeddedError, EmbeddedOptions, RedisServer};
use tradeflow_bus::pack;
use tradeflow_bus::{Bus, Envelope, Topology, reply};

/// An isolated redis-server for one test; removed with its data when dropped.
pub struct TestRedis {
    server: RedisServer,
    // Declared after `server` so the process dies before its directory is removed.
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts a fresh server. Panics with the reason if it cannot (a test precondition).
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(r) => r,
            Err(e) => panic!("test redis-server did not start: {e}"),
        }
    }

    pub async fn try_start() -> Result<Self, EmbeddedError> {
        let dir = tempfile::Builder::new()
            .prefix("tradeflow-redis-")
            .tempdir()
            .map_err(|e| EmbeddedError::Dir { dir: "temp dir".into(), reason: e.to_string() })?;
        let server = RedisServer::start(EmbeddedOptions {
            dir: dir.path().to_path_buf(),
            port: None,
            appendonly: true,
            fsync: Default::default(),
        })
        .await?;
        Ok(Self { server, _dir: dir })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn dir(&self) -> &Path {
        self.server.dir()
    }

    /// SIGKILL the server.
    pub async fn kill(&mut self) {
        self.server.kill().await
    }

    /// Start it again on the same port with the same data (AOF).
    pub async fn restart(&mut self) {
        if let Err(e) = self.server.restart().await {
            panic!("test redis-server did not restart: {e}");
        }
    }

    /// A bus on this server with `topology`, every stream and group created.
    pub async fn bus(&self, topology: Topology) -> Bus {
        let bus = match Bus::connect(&self.url(), topology).await {
            Ok(b) => b,
            Err(e) => panic!("cannot connect to test redis: {e}"),
        };
        if let Err(e) = bus.init().await {
            panic!("cannot init streams: {e}");
        }
        bus
    }
}

/// A small topology for tests: one stream `test.events` with `partitions` partitions and group
/// `g`, fast fleet timings and short retry backoff.
pub fn test_topology(partitions: u32, max_deliveries: u32) -> Topology {
    let text = format!(
        r#"
namespace = "t"
[fleet]
heartbeat_ms = 200
lease_ttl_ms = 1500
[streams."test.events"]
description = "test events"
key = "key"
groups = ["g"]
partitions = {partitions}
max_deliveries = {max_deliveries}
retry_backoff_ms = 50
retry_backoff_max_ms = 200
claim_idle_ms = 2000
block_ms = 200
read_count = 100
"#
    );
    match Topology::parse(&text, "test topology") {
        Ok(t) => t,
        Err(e) => panic!("test topology is invalid: {e}"),
    }
}

/// Every envelope of `stream`, partition by partition, each in stream order. Panics on anything
/// that is not a decodable envelope: in a test that is a failure.
pub async fn envelopes(bus: &Bus, stream: &str) -> Vec<Envelope> {
    let mut out = Vec::new();
    for_each_message(bus, stream, |key, id, bytes| match Envelope::decode(bytes) {
        Ok(env) => out.push(env),
        Err(err) => panic!("{key} {id}: not an envelope: {err}"),
    })
    .await;
    out
}

/// How many messages `stream` holds (a packed entry counts its messages; `XLEN` counts entries).
pub async fn message_count(bus: &Bus, stream: &str) -> u64 {
    let mut n = 0;
    for_each_message(bus, stream, |_, _, _| n += 1).await;
    n
}

/// Visits the bytes of every message of `stream`, partition by partition, in stream order.
async fn for_each_message(bus: &Bus, stream: &str, mut visit: impl FnMut(&str, &str, &[u8])) {
    let partitions = match bus.topology().stream(stream) {
        Ok(spec) => spec.partitions,
        Err(e) => panic!("{e}"),
    };
    let mut conn = bus.conn();
    for p in 0..partitions {
        let key = bus.keys().partition(stream, p);
        let mut start = "-".to_string();
        loop {
            let v: redis::Value = match redis::cmd("XRANGE")
                .arg(&key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(5000)
                .query_async(&mut conn)
                .await
            {
                Ok(v) => v,
                Err(e) => panic!("XRANGE {key}: {e}"),
            };
            let page = match reply::entries("XRANGE", &v) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            for e in &page {
                let id = e.id.to_string();
                match pack::messages(e) {
                    Ok(messages) => messages.into_iter().for_each(|bytes| visit(&key, &id, bytes)),
                    Err(err) => panic!("{key} {id}: {err}"),
                }
            }
            match page.last() {
                Some(last) if page.len() == 5000 => start = format!("({}", last.id),
                _ => break,
            }
        }
    }
}

/// A decision of `profile` on an hourly candle of `symbol` opening at `open_time`, the bar
/// flat at `close` (high = low = close), confidence 0.8, no exits: what risk tests start from.
pub fn flat_decision(
    profile: &str,
    symbol: &str,
    open_time: i64,
    action: tradeflow_core::signal::Action,
    close: f64,
) -> tradeflow_core::decision::Decision {
    tradeflow_core::decision::Decision {
        candle_id: format!("csv:{symbol}:1h:{open_time}"),
        symbol: symbol.into(),
        interval: tradeflow_core::market::Interval::H1,
        open_time,
        open: Some(close),
        high: close,
        low: close,
        close,
        profile: profile.into(),
        action,
        confidence: 0.8,
        contributions: Vec::new(),
        missing: Vec::new(),
        trigger: tradeflow_core::decision::Trigger::Complete,
        reasoning: "test".into(),
        stop_loss: None,
        take_profit: None,
    }
}
