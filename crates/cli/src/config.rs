//! Process configuration: one optional TOML file, environment overrides, command-line flags
//! (flag > environment > file > default), validated at start-up with every problem reported.
//!
//! ```toml
//! # tradeflow.toml
//! [redis]
//! url = "redis://127.0.0.1:6379/"   # env REDIS_URL; a cluster: "redis+cluster://h1:7000,h2:7001"
//! fsync = "everysec"                # the embedded server's appendfsync: "always" | "everysec"; env TRADEFLOW_REDIS_FSYNC
//! wait_replicas = 0                 # WAIT for this many replicas after each write; env TRADEFLOW_REDIS_WAIT_REPLICAS
//! wait_timeout_ms = 1000            # how long that WAIT may take; env TRADEFLOW_REDIS_WAIT_TIMEOUT_MS
//! [bus]
//! streams = "streams.toml"          # env TRADEFLOW_STREAMS; relative to this file
//! namespace = "tf"                  # env TRADEFLOW_NAMESPACE; overrides streams.toml
//! [ingest]                          # sources of `tradeflow worker ingest` when no flag names one
//! binance = ["BTCUSDT:1m", "ETHUSDT:1h"]
//! backfill_hours = 24
//! aggregate = ["1h:4h"]
//! [news]                            # sources of `tradeflow worker news` when no flag names one
//! feeds = ["coindesk=https://www.coindesk.com/arc/outboundfeeds/rss/"]
//! symbols = ["BTCUSDT=BTC,Bitcoin"]
//! [models.retrain]                  # the jobs workers retrain deployed learned models (models::schedule)
//! every_days = 7
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use tradeflow_bus::Topology;

/// The bundled demo feed: `demo/btcusd_1h.csv` under the working directory when there is
/// one, else the copy in the source tree this binary was built from.
pub fn demo_feed() -> PathBuf {
    let local = PathBuf::from("demo/btcusd_1h.csv");
    if local.is_file() {
        local
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv"))
    }
}

/// The project's streams.toml, built in so the binary works from any directory.
pub const BUILTIN_STREAMS: &str = include_str!("../../../streams.toml");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    redis: RedisSection,
    #[serde(default)]
    bus: BusSection,
    ingest: Option<crate::worker::IngestArgs>,
    news: Option<crate::news::NewsArgs>,
    /// `[edge]`: parsed and validated by tradeflow-edge.
    edge: Option<toml::Value>,
    /// `[jobs]`: attempts and time limits per job kind.
    #[serde(default)]
    jobs: crate::jobs::config::JobsConfig,
    /// `[models]`: the retrain schedule.
    #[serde(default)]
    models: crate::models::schedule::ModelsConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisSection {
    url: Option<String>,
    /// The embedded server's appendfsync: `always` or `everysec` (env TRADEFLOW_REDIS_FSYNC).
    fsync: Option<String>,
    /// Replicas each write waits for (`WAIT`), 0 for none (env TRADEFLOW_REDIS_WAIT_REPLICAS).
    wait_replicas: Option<u32>,
    /// How long such a wait may take, ms (env TRADEFLOW_REDIS_WAIT_TIMEOUT_MS; default 1000).
    wait_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BusSection {
    streams: Option<PathBuf>,
    namespace: Option<String>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None`: no Redis given (commands that can start an embedded one will).
    pub redis_url: Option<String>,
    /// The embedded redis-server's appendfsync (`[redis] fsync`).
    pub redis_fsync: tradeflow_bus::embedded::Fsync,
    /// How writes wait for replicas (`[redis] wait_replicas`, `wait_timeout_ms`).
    pub redis_replication: tradeflow_bus::connection::Replication,
    pub topology: Topology,
    /// Where the topology came from, for messages.
    pub topology_source: String,
    /// `[ingest]` of the config file.
    pub ingest: Option<crate::worker::IngestArgs>,
    /// `[news]` of the config file (`tradeflow worker news` without source flags).
    pub news: Option<crate::news::NewsArgs>,
    /// `[edge]` of the config file, with its environment overrides.
    pub edge: tradeflow_edge::EdgeConfig,
    /// `[jobs]` of the config file.
    pub jobs: crate::jobs::config::JobsConfig,
    /// `[models]` of the config file (the retrain schedule the jobs workers keep).
    pub models: crate::models::schedule::ModelsConfig,
}

impl Settings {
    /// `config`: the --config file (must exist when given). `redis_url`: flag or REDIS_URL.
    pub fn load(config: Option<&Path>, redis_url: Option<String>, streams: Option<&Path>) -> anyhow::Result<Self> {
        let (file, base) = match config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
                let file: FileConfig =
                    toml::from_str(&text).with_context(|| format!("config {} is invalid", path.display()))?;
                (file, path.parent().map(Path::to_path_buf))
            }
            None => (FileConfig::default(), None),
        };
        let mut problems = Vec::new();

        let redis_url = redis_url.or(file.redis.url);
        let fsync_text = std::env::var("TRADEFLOW_REDIS_FSYNC").ok().or(file.redis.fsync);
        let redis_fsync = match fsync_text.as_deref().map(|f| (f, tradeflow_bus::embedded::Fsync::parse(f))) {
            None => Default::default(),
            Some((_, Some(f))) => f,
            Some((f, None)) => {
                problems.push(format!("redis.fsync {f:?}: expected \"always\" or \"everysec\""));
                Default::default()
            }
        };
        if let Some(url) = &redis_url
            && let Err(e) = tradeflow_bus::cluster::Deployment::parse(url)
        {
            problems.push(format!("redis url: {e}"));
        }
        let env_number = |name: &str, problems: &mut Vec<String>| -> Option<u64> {
            let text = std::env::var(name).ok()?;
            match text.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{name} {text:?}: expected a whole number"));
                    None
                }
            }
        };
        let wait_replicas = env_number("TRADEFLOW_REDIS_WAIT_REPLICAS", &mut problems)
            .or(file.redis.wait_replicas.map(u64::from))
            .unwrap_or(0);
        let wait_timeout_ms =
            env_number("TRADEFLOW_REDIS_WAIT_TIMEOUT_MS", &mut problems).or(file.redis.wait_timeout_ms).unwrap_or(1000);
        if wait_replicas > 16 {
            problems.push(format!("redis.wait_replicas {wait_replicas}: expected 0 to 16"));
        }
        if wait_replicas > 0 && !(1..=60_000).contains(&wait_timeout_ms) {
            problems.push(format!(
                "redis.wait_timeout_ms {wait_timeout_ms}: expected 1 to 60000 (0 would make WAIT block until the replicas answer, for ever if one is gone)"
            ));
        }
        let redis_replication =
            tradeflow_bus::connection::Replication { wait_replicas: wait_replicas.min(16) as u32, wait_timeout_ms };

        let streams_path = streams.map(Path::to_path_buf).or_else(|| {
            file.bus.streams.map(|p| match &base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p,
            })
        });
        let (topology, topology_source) = match streams_path {
            Some(p) => (Topology::load(&p), p.display().to_string()),
            None if Path::new("streams.toml").exists() => (Topology::load("streams.toml"), "streams.toml".to_string()),
            None => (Topology::parse(BUILTIN_STREAMS, "built-in streams.toml"), "built-in streams.toml".to_string()),
        };
        let namespace = std::env::var("TRADEFLOW_NAMESPACE").ok().or(file.bus.namespace);
        let topology = match topology {
            Ok(t) => match namespace {
                Some(ns) => match t.with_namespace(&ns) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        problems.push(e.to_string());
                        None
                    }
                },
                None => Some(t),
            },
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let edge = match tradeflow_edge::EdgeConfig::from_toml(file.edge) {
            Ok(e) => Some(e),
            Err(e) => {
                problems.extend(e.problems);
                None
            }
        };
        if let Some(t) = &topology
            && let Ok(spec) = t.stream(crate::jobs::handler::STREAM)
        {
            file.jobs.validate(spec.max_deliveries, &mut problems);
        }
        file.models.validate(&mut problems);
        match (topology, edge) {
            (Some(topology), Some(edge)) if problems.is_empty() => Ok(Self {
                redis_url,
                redis_fsync,
                redis_replication,
                topology,
                topology_source,
                ingest: file.ingest,
                news: file.news,
                edge,
                jobs: file.jobs,
                models: file.models,
            }),
            _ => bail!("configuration has {} problem(s):\n{}", problems.len(), problems.join("\n")),
        }
    }
}
