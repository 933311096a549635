//! Benchmarks.
//!
//! `tradeflow bench indicators`: nanoseconds per candle of the full indicator set over the
//! BTC/USD 1h candles, looped until at least a second of work has been measured.
//!
//! `tradeflow bench bus`: messages per second through produce → consume → ack, beside the raw
//! `redis-benchmark -P 64 XADD` rate of the same Redis measured in the same run.
//!
//! Every bus scenario uses a fresh namespace on one Redis (a private redis-server unless
//! REDIS_URL is given), two producer tasks, ~200-byte payloads spread over 64 keys, and a no-op
//! handler that counts. The clock runs from the first XADD until the last message is acknowledged.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tradeflow_bus::embedded::{EmbeddedOptions, RedisServer};
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{
    Bus, Consumer, Delivery, Envelope, EnvelopeRef, Handler, HandlerFactory, Outcome, Producer, Topology,
};
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::{MessageId, Payload};
use tradeflow_indicators::{Bar, IndicatorSet, Next, Reset};

use crate::config::Settings;
use tradeflow_audit::worker::GROUP;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Backtests: the live stages in process on a seeded random walk (the full chain and
    /// sma_cross, candles/s on one thread), and the `tradeflow backtest` process beside
    /// backtesting.py 0.6.6 on the same file. No Redis.
    Backtest(crate::bench_backtest::BacktestBenchArgs),
    /// Jobs: submission → start latency of backtest jobs, jobs.events publish → receive
    /// latency, cancel → cancelled latency of running searches (a private Redis and SQLite
    /// store, a jobs worker and the audit writer in this process).
    Jobs(crate::bench_jobs::JobsBenchArgs),
    /// WebSocket fan-out of a running edge (`tradeflow up`): clients on /ws, alerts published
    /// on sys.events at a steady rate, publish → receive latency per delivery.
    Ws {
        #[arg(long)]
        json: bool,
        /// The edge, e.g. ws://127.0.0.1:8080
        #[arg(long, default_value = "ws://127.0.0.1:8080")]
        url: String,
        /// A JWT (viewer or above), env TRADEFLOW_TOKEN.
        #[arg(long, env = "TRADEFLOW_TOKEN")]
        token: Option<String>,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Events per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Bus throughput: 1 and 8 partitions, 1 and 3 consumers.
    Bus {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Messages per scenario.
        #[arg(long, default_value_t = 300_000)]
        messages: u64,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 200)]
        payload_bytes: usize,
        /// Messages per stream entry at most (streams.toml `pack_max`); 1: one entry each,
        /// comparable with the redis-benchmark XADD ceiling.
        #[arg(long, default_value_t = 64)]
        pack_max: u32,
    },
    /// Inference stage through Redis: candles/s from md.candles to inf.signals with the rule
    /// models, the demo feed replayed as 8 symbols (spread over partitions).
    Inference {
        #[arg(long)]
        json: bool,
        /// Symbols to replay the demo feed as.
        #[arg(long, default_value_t = 8)]
        symbols: u32,
        /// Models, comma-separated (as for `worker inference`).
        #[arg(long, value_delimiter = ',', default_value = "technical")]
        models: Vec<String>,
    },
    /// The whole pipeline in one process (5 rule models, 2 profiles, 2 paper accounts, audit
    /// into SQLite): candles/s end to end over the demo feed replayed as many symbols, then the
    /// candle-in → fill-out latency at a steady rate, then the audit writer's rows/s.
    Pipeline {
        #[arg(long)]
        json: bool,
        /// Candles for the throughput run (the demo feed as ⌈N / 20,111⌉ symbols; below 20,111,
        /// its first N candles as one symbol).
        #[arg(long, default_value_t = 1_000_000)]
        candles: u64,
        /// Candles per second for the latency run.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Length of the latency run.
        #[arg(long, default_value_t = 20.0)]
        latency_seconds: f64,
        /// Audit into PostgreSQL instead of SQLite: a server URL (postgres://user@host:port);
        /// each run creates a database of its own there and drops it afterwards.
        #[arg(long, value_name = "URL")]
        audit_url: Option<String>,
        /// Rows the audit writer's own benchmark writes (in batches of 2,000).
        #[arg(long, default_value_t = 200_000)]
        audit_rows: usize,
    },
    /// Learned models on the demo feed: training time per family, prediction latency per
    /// candle (the model alone and in the inference stage). No Redis.
    Models(crate::bench_models::ModelsBenchArgs),
    /// Indicator set: ns per candle over the BTC/USD 1h candles.
    Indicators {
        /// Print one JSON object {"ns_per_candle", "candles"} instead of a line of text.
        #[arg(long)]
        json: bool,
        /// Candle CSV to run on; default the bundled demo feed (demo/btcusd_1h.csv).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Measure for at least this long.
        #[arg(long, default_value_t = 1.0)]
        min_seconds: f64,
    },
}

#[derive(Serialize, Deserialize)]
struct BenchMsg {
    seq: u64,
    /// A MessagePack bin, so `payload_bytes` is what goes on the wire.
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

impl Payload for BenchMsg {
    const KIND: &'static str = "bench_msg";
    const VERSION: u16 = 1;
}

struct Counter(Arc<AtomicU64>);

impl Handler for Counter {
    type Msg = BenchMsg;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<BenchMsg, DecodeError> {
        envelope.open()
    }

    async fn handle(&mut self, _d: &Delivery<BenchMsg>) -> Outcome {
        self.0.fetch_add(1, Ordering::Relaxed);
        Outcome::Done
    }

    async fn handle_batch(&mut self, batch: &[Delivery<BenchMsg>]) -> Vec<Outcome> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        vec![Outcome::Done; batch.len()]
    }
}

struct CounterFactory(Arc<AtomicU64>);

impl HandlerFactory for CounterFactory {
    type Handler = Counter;
    fn create(&self, _p: u32, _restored: Option<&[u8]>) -> Result<Counter, String> {
        Ok(Counter(self.0.clone()))
    }
}

#[derive(Serialize)]
struct Scenario {
    partitions: u32,
    consumers: u32,
    messages: u64,
    seconds: f64,
    msgs_per_s: f64,
    /// Rate of the producer alone (it finishes before the consumers).
    produce_per_s: f64,
}

#[derive(Serialize)]
struct Report {
    /// Best end-to-end rate with 8 partitions.
    msgs_per_s: f64,
    msgs_per_s_scenario: String,
    redis_xadd_ceiling_per_s: Option<f64>,
    redis_xadd_ceiling_note: String,
    payload_bytes: usize,
    pack_max: u32,
    cores: usize,
    redis: String,
    /// `[redis] wait_replicas`: replicas each write waited for (0: no WAIT).
    wait_replicas: u32,
    scenarios: Vec<Scenario>,
}

/// Producer tasks per scenario.
const PRODUCERS: u64 = 2;

pub async fn run(settings: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; benchmark figures need `cargo run --release`");
    }
    // On SIGINT/SIGTERM the benchmark is dropped where it stands: its private redis-server is
    // killed and its temporary directories are removed (by their handles' Drop), which a
    // process ended by the default signal action would not do.
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        r = bench(settings, cmd) => r,
        _ = term.recv() => bail!("benchmark stopped by SIGTERM"),
        _ = tokio::signal::ctrl_c() => bail!("benchmark interrupted (SIGINT)"),
    }
}

async fn bench(settings: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Backtest(args) => crate::bench_backtest::run(&args),
        BenchCommand::Jobs(args) => crate::bench_jobs::run(settings, &args).await,
        BenchCommand::Bus { json, messages, payload_bytes, pack_max } => {
            bus(settings, json, messages, payload_bytes, pack_max).await
        }
        BenchCommand::Ws { json, url, token, clients, rate, seconds } => {
            let r = crate::bench_ws::run(settings, &url, token.as_deref(), clients, rate, seconds).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
                println!(
                    "websocket fan-out: {} of {} clients, {} events/s for {} s: {} of {} deliveries ({:.0}/s), \
                     publish → receive p50 {} ms, p99 {} ms, max {} ms; {} clients dropped as slow",
                    r.connected,
                    r.clients,
                    r.rate_per_s,
                    r.seconds,
                    r.delivered,
                    r.expected,
                    r.deliveries_per_s,
                    ms(r.p50_ms),
                    ms(r.p99_ms),
                    ms(r.max_ms),
                    r.dropped
                );
            }
            Ok(())
        }
        BenchCommand::Inference { json, symbols, models } => inference(settings, json, symbols, &models).await,
        BenchCommand::Pipeline { json, candles, rate, latency_seconds, audit_url, audit_rows } => {
            let run = PipelineArgs { candles, rate, latency_seconds, audit_server: audit_url.as_deref(), audit_rows };
            pipeline(settings, json, run).await
        }
        BenchCommand::Models(args) => crate::bench_models::run(&args),
        BenchCommand::Indicators { json, csv, min_seconds } => {
            indicators(&csv.unwrap_or_else(crate::config::demo_feed), json, min_seconds)
        }
    }
}

#[derive(Serialize)]
struct IndicatorsReport {
    ns_per_candle: f64,
    /// Candles processed in the measured time (the file, several times over).
    candles: u64,
}

fn indicators(csv: &Path, json: bool, min_seconds: f64) -> anyhow::Result<()> {
    let file = std::fs::File::open(csv)
        .with_context(|| format!("cannot open the benchmark candles {} (pass --csv FILE)", csv.display()))?;
    let candles = CandleReader::new(std::io::BufReader::new(file))
        .and_then(|r| r.bars().collect::<Result<Vec<Bar>, _>>())
        .with_context(|| csv.display().to_string())?;
    anyhow::ensure!(!candles.is_empty(), "{} holds no candles", csv.display());
    let mut set = IndicatorSet::new();
    let pass = |set: &mut IndicatorSet| -> anyhow::Result<()> {
        set.reset();
        for candle in &candles {
            black_box(set.next(black_box(candle))?);
        }
        Ok(())
    };
    // One pass unmeasured: page in the data, warm the caches and the branch predictor.
    pass(&mut set)?;
    let started = Instant::now();
    let mut passes = 0u64;
    while passes < 3 || started.elapsed().as_secs_f64() < min_seconds {
        pass(&mut set)?;
        passes += 1;
    }
    let elapsed = started.elapsed();
    let total = passes * candles.len() as u64;
    let report = IndicatorsReport { ns_per_candle: elapsed.as_nanos() as f64 / total as f64, candles: total };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "indicators: {:.1} ns per candle ({} candles: {} passes over {}, {:.2} s)",
            report.ns_per_candle,
            total,
            passes,
            csv.display(),
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// The Redis a benchmark runs on: REDIS_URL, else a private redis-server (AOF off) in a
/// temporary directory; both live as long as the returned handle (the server is killed before
/// its directory is removed). Returns (url, host:port, handle).
pub(crate) async fn bench_redis(
    settings: &Settings,
) -> anyhow::Result<(String, String, Option<(RedisServer, tempfile::TempDir)>)> {
    Ok(match &settings.redis_url {
        Some(u) => match tradeflow_bus::cluster::Deployment::parse(u)? {
            tradeflow_bus::cluster::Deployment::Single(_) => {
                (u.clone(), redis::Client::open(u.as_str())?.get_connection_info().addr().to_string(), None)
            }
            tradeflow_bus::cluster::Deployment::Cluster(nodes) => {
                (u.clone(), format!("cluster of {}", nodes.len()), None)
            }
        },
        None => {
            let dir = tempfile::Builder::new().prefix("tradeflow-bench-redis-").tempdir()?;
            let s = RedisServer::start(EmbeddedOptions {
                dir: dir.path().to_path_buf(),
                port: None,
                appendonly: false,
                fsync: Default::default(),
            })
            .await?;
            (s.url(), s.port().to_string(), Some((s, dir)))
        }
    })
}

async fn bus(
    settings: &Settings,
    json: bool,
    messages: u64,
    payload_bytes: usize,
    pack_max: u32,
) -> anyhow::Result<()> {
    let (url, port, _server) = bench_redis(settings).await?;
    let mut scenarios = Vec::new();
    for (i, (partitions, consumers)) in [(1u32, 1u32), (1, 3), (8, 1), (8, 3)].into_iter().enumerate() {
        let s = scenario(&url, settings.redis_replication, i, partitions, consumers, messages, payload_bytes, pack_max)
            .await?;
        if !json {
            eprintln!(
                "{partitions} partition(s), {consumers} consumer(s): {:>9.0} msg/s end to end ({:.2} s; producer alone {:.0}/s)",
                s.msgs_per_s, s.seconds, s.produce_per_s
            );
        }
        scenarios.push(s);
    }
    let on_cluster = tradeflow_bus::cluster::Deployment::parse(&url)?.is_cluster();
    let (ceiling, note) = match if on_cluster { None } else { Some(xadd_ceiling(&url, &port, payload_bytes).await) } {
        None => (None, "not measured: redis-benchmark's XADD runs against one server, the bus is on a cluster".into()),
        Some(Ok(v)) => {
            (Some(v), "redis-benchmark -P 64 -n 500000 XADD <key> MAXLEN ~ 10000000 * e <payload>".to_string())
        }
        Some(Err(e)) => (None, format!("not measured: {e:#}")),
    };
    let best = scenarios
        .iter()
        .filter(|s| s.partitions == 8)
        .max_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s))
        .context("no 8-partition scenario ran")?;
    let report = Report {
        msgs_per_s: best.msgs_per_s,
        msgs_per_s_scenario: format!("{} partitions, {} consumer(s)", best.partitions, best.consumers),
        redis_xadd_ceiling_per_s: ceiling,
        redis_xadd_ceiling_note: note,
        payload_bytes,
        pack_max,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        redis: tradeflow_bus::cluster::redact(&url),
        wait_replicas: settings.redis_replication.wait_replicas,
        scenarios,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        match ceiling {
            Some(c) => eprintln!("redis-benchmark -P 64 XADD ceiling on the same Redis: {c:.0}/s"),
            None => eprintln!("redis-benchmark ceiling {}", report.redis_xadd_ceiling_note),
        }
        eprintln!("msgs_per_s = {:.0} ({})", report.msgs_per_s, report.msgs_per_s_scenario);
    }
    Ok(())
}

fn topology(ns: &str, partitions: u32, messages: u64, pack_max: u32) -> anyhow::Result<Topology> {
    let text = format!(
        r#"
namespace = "{ns}"
[fleet]
heartbeat_ms = 200
lease_ttl_ms = 2000
[streams."bench.events"]
description = "benchmark"
key = "key"
groups = ["bench"]
partitions = {partitions}
maxlen = {maxlen}
read_count = 1000
block_ms = 100
pack_max = {pack_max}
"#,
        maxlen = messages * 2
    );
    Ok(Topology::parse(&text, "bench topology")?)
}

#[allow(clippy::too_many_arguments)]
async fn scenario(
    url: &str,
    replication: tradeflow_bus::connection::Replication,
    index: usize,
    partitions: u32,
    consumers: u32,
    messages: u64,
    payload_bytes: usize,
    pack_max: u32,
) -> anyhow::Result<Scenario> {
    let ns = format!("bench{}x{index}", std::process::id());
    let bus = Bus::connect(url, topology(&ns, partitions, messages, pack_max)?).await?.with_replication(replication);
    bus.init().await?;
    let count = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for c in 0..consumers {
        let consumer = Consumer::new(bus.clone(), "bench.events", "bench", "bench", CounterFactory(count.clone()))?
            .with_member_name(format!("bench-{c}"));
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move { consumer.run(stop).await }));
    }
    // Wait until the fleet has settled: every partition leased, the split stable.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut conn = bus.conn();
        let mut held = 0;
        for p in 0..partitions {
            let v: Option<String> =
                redis::cmd("GET").arg(bus.keys().lease("bench.events", "bench", p)).query_async(&mut conn).await?;
            held += u32::from(v.is_some());
        }
        if held == partitions {
            break;
        }
        if Instant::now() > deadline {
            bail!("consumers did not acquire all {partitions} partitions within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Two producer tasks on disjoint key sets: order per key holds, and one task's encoding
    // overlaps the other's round trip, as with several producing stages.
    let producer = Producer::new(bus.clone(), "bench");
    let started = Instant::now();
    let mut producing = Vec::new();
    for half in 0..PRODUCERS {
        let producer = producer.clone();
        let data = vec![b'x'; payload_bytes];
        producing.push(tokio::spawn(async move {
            let keys: Vec<String> = (0..32).map(|k| format!("KEY{half}-{k}")).collect();
            let mut batch = Vec::with_capacity(1000);
            for seq in (half..messages).step_by(PRODUCERS as usize) {
                let key = &keys[(seq / PRODUCERS % 32) as usize];
                let id = MessageId::candle("bench", key, "1m", seq as i64);
                batch.push(producer.prepare("bench.events", &id, key, None, &BenchMsg { seq, data: data.clone() })?);
                if batch.len() == 1000 {
                    producer.send(&batch).await?;
                    batch.clear();
                }
            }
            producer.send(&batch).await?;
            anyhow::Ok(started.elapsed())
        }));
    }
    let mut produce_time = Duration::ZERO;
    for p in producing {
        produce_time = produce_time.max(p.await??);
    }
    while count.load(Ordering::Relaxed) < messages {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {} of {messages} messages consumed after 600 s", count.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    for t in tasks {
        t.await??;
    }
    // Leave the Redis as we found it.
    let mut conn = bus.conn();
    for p in 0..partitions {
        let _: i64 = redis::cmd("DEL").arg(bus.keys().partition("bench.events", p)).query_async(&mut conn).await?;
    }
    Ok(Scenario {
        partitions,
        consumers,
        messages,
        seconds: elapsed.as_secs_f64(),
        msgs_per_s: messages as f64 / elapsed.as_secs_f64(),
        produce_per_s: messages as f64 / produce_time.as_secs_f64(),
    })
}

/// `redis-benchmark -P 64` XADD rate against the same server.
async fn xadd_ceiling(url: &str, addr: &str, payload_bytes: usize) -> anyhow::Result<f64> {
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.to_string()),
        None => ("127.0.0.1".to_string(), addr.to_string()),
    };
    let key = format!("bench-ceiling-{}", std::process::id());
    let payload = "x".repeat(payload_bytes);
    let out = tokio::process::Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port, "-P", "64", "-n", "500000", "--csv"])
        .args(["XADD", &key, "MAXLEN", "~", "10000000", "*", "e", &payload])
        .output()
        .await
        .context("cannot run redis-benchmark (Debian package redis-tools)")?;
    let client = tradeflow_bus::connection::client(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    if !out.status.success() {
        bail!("redis-benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // CSV: a header line, then "test","rps",...
    let line = text.lines().find(|l| l.starts_with("\"XADD")).context("redis-benchmark printed no XADD line")?;
    let rps = line.split("\",\"").nth(1).context("no rps column")?;
    Ok(rps.trim_matches('"').parse()?)
}

#[derive(Serialize)]
struct InferenceReport {
    candles_per_s: f64,
    signals_per_s: f64,
    candles: u64,
    /// Signals sent (counted by the runner as it commits them with each batch's acknowledgement).
    signals: u64,
    /// Candles the stage could not handle (none in a sound run).
    dead_lettered: u64,
    models: usize,
    seconds: f64,
}

/// Pre-loads md.candles (untimed), then times one in-process inference consumer from start
/// until every candle is acknowledged (its signals are committed with the acknowledgement).
async fn inference(settings: &Settings, json: bool, symbols: u32, models: &[String]) -> anyhow::Result<()> {
    use tradeflow_inference::StageConfig;
    use tradeflow_inference::worker::{InferenceFactory, InferenceMetrics};
    use tradeflow_ingest::replay::{IngestMetrics, Pace, replay};

    let (url, _port, _server) = bench_redis(settings).await?;
    let ns = format!("benchinf{}", std::process::id());
    let topology = Topology::parse(crate::config::BUILTIN_STREAMS, "built-in streams.toml")?.with_namespace(&ns)?;
    let bus = Bus::connect(&url, topology).await?;
    bus.init().await?;
    let sent = tradeflow_bus::BusMetrics::unregistered();
    let producer = Producer::new(bus.clone(), "bench").with_metrics(sent.clone());
    let registry = prometheus::Registry::new();
    let config = demo_symbols(&crate::config::demo_feed(), symbols, Pace::Fast);
    let mut stage = tradeflow_ingest::IngestStage::default();
    let loaded =
        replay(&producer, &mut stage, &config, &IngestMetrics::register(&registry)?, &CancellationToken::new()).await?;
    let stage_config = StageConfig::with_models(models).map_err(|p| anyhow::anyhow!("--models: {}", p.join("; ")))?;
    // Each learned model (`ml:NAME`) serves a gbt trained here on the demo feed's first 70 %
    // (default parameters: 200 trees of depth 6), as a deployed version would be.
    if !stage_config.ml.is_empty() {
        let candles = crate::bench_models::candles_of(&crate::config::demo_feed(), 20_111 * 7 / 10)?;
        let rows = tradeflow_inference::ml::rows(&candles, &Default::default());
        let trained =
            tradeflow_models::train(&rows, &crate::bench_models::bench_config(tradeflow_models::Family::Gbt, 200)?)?;
        let bytes = trained.artifact.to_bytes()?;
        for name in &stage_config.ml.names {
            let name = tradeflow_inference::ml::registry_name(name);
            stage_config.ml.models.install(name, 1, &bytes).map_err(anyhow::Error::msg)?;
        }
    }
    let models = stage_config.models.len() + stage_config.ml.names.len();
    let expected = loaded.candles * models as u64;
    let factory = InferenceFactory {
        config: Arc::new(stage_config),
        producer: producer.clone(),
        metrics: InferenceMetrics::register(&registry)?,
        control: None,
    };
    // The signals go out in the runner's MULTI/EXEC with each batch's acknowledgement, and the
    // runner counts them on the consumer's metrics, not on `producer`'s: the run is over once
    // every candle is acknowledged (or dead-lettered), whatever the streams keep (trim_acked).
    let counted = tradeflow_bus::BusMetrics::unregistered();
    let consumer =
        Consumer::new(bus.clone(), "md.candles", "inference", "bench", factory)?.with_metrics(counted.clone());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(consumer.run(stop.clone()));
    let settled = || {
        let acked = counted.acked.with_label_values(&["md.candles", "inference"]).get();
        // Every reason: this consumer is the only one counted here.
        let dead: u64 = prometheus::core::Collector::collect(&counted.dead_lettered)
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum();
        (acked, dead)
    };
    // No progress for this long means the run is stuck: say so instead of waiting on.
    let stall = Duration::from_secs(60);
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        let (acked, dead) = settled();
        if acked + dead >= loaded.candles {
            break;
        }
        if task.is_finished() {
            bail!("the inference consumer stopped after {acked} of {} candles", loaded.candles);
        }
        if acked + dead != last {
            (last, moved) = (acked + dead, Instant::now());
        } else if moved.elapsed() > stall {
            bail!("only {acked} of {} candles acknowledged, none in the last {} s", loaded.candles, stall.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.cancel();
    task.await??;
    let (_, dead) = settled();
    let signals = counted.produced.with_label_values(&["inf.signals"]).get();
    if dead > 0 || signals != expected {
        eprintln!(
            "warning: {dead} candles dead-lettered; {signals} signals sent, {expected} expected ({} candles × {models} models)",
            loaded.candles
        );
    }
    let mut conn = bus.conn();
    for stream in ["md.candles", "inf.signals", "audit.events"] {
        for p in 0..bus.topology().stream(stream)?.partitions {
            let _: i64 = redis::cmd("DEL").arg(bus.keys().partition(stream, p)).query_async(&mut conn).await?;
        }
    }
    let report = InferenceReport {
        candles_per_s: loaded.candles as f64 / elapsed,
        signals_per_s: signals as f64 / elapsed,
        candles: loaded.candles,
        signals,
        dead_lettered: dead,
        models,
        seconds: elapsed,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "inference: {:.0} candles/s ({:.0} signals/s, {} models, {} candles in {:.2} s)",
            report.candles_per_s, report.signals_per_s, models, report.candles, elapsed
        );
    }
    Ok(())
}

/// Rule models, profiles and accounts of `bench pipeline`.
const BENCH_MODELS: [&str; 5] = ["rsi", "macd", "bollinger", "volume", "stochastic"];
const BENCH_PROFILES: &str = r#"
[[profile]]
name = "committee"
models = { rsi = 1.0, macd = 1.0, bollinger = 1.0, volume = 0.5, stochastic = 1.0 }
method = "weighted_vote"

[[profile]]
name = "momentum"
models = { macd = 2.0, stochastic = 1.0, rsi = 1.0 }
method = "confidence_weighted_mean"
"#;

#[derive(Serialize)]
pub struct PipelineReport {
    /// End to end through all six stages, audit included.
    candles_per_s: f64,
    candles: u64,
    seconds: f64,
    /// The trading path alone: candles / time until every group but the audit's had drained.
    trading_candles_per_s: f64,
    /// Where the audit wrote: `sqlite` (a fresh file) or `postgres` (a fresh database).
    audit_backend: &'static str,
    /// Candle in (ingest XADD) → fill out (exec XADD), at a steady `rate_per_s`.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    latency_samples: usize,
    rate_per_s: f64,
    /// Candle in → risk message out, every candle × account (more samples than fills).
    order_p50_ms: f64,
    order_p99_ms: f64,
    /// Candle in → signal out (inference), and → decision out (ensemble).
    signal_p50_ms: f64,
    signal_p99_ms: f64,
    decision_p50_ms: f64,
    decision_p99_ms: f64,
    /// `tradeflow_audit::bench_write` into a fresh SQLite file (or PostgreSQL database).
    audit_rows_per_s: f64,
    /// The audit's rate once the trading path had drained: rows it wrote from then on / the
    /// time it took to drain. `null` when the catch-up was too short to time (see the note).
    audit_catch_up_rows_per_s: Option<f64>,
    audit_catch_up_rows: u64,
    /// SQLite's own insert rate for this run's audit rows (`tradeflow_audit::sqlite_ceiling`);
    /// `null` when the audit wrote into PostgreSQL.
    sqlite_ceiling_rows_per_s: Option<f64>,
    /// `audit_catch_up_rows_per_s / sqlite_ceiling_rows_per_s` (target ≥ 0.9).
    audit_catch_up_of_ceiling: Option<f64>,
    /// Why a figure above is `null`.
    audit_catch_up_note: Option<String>,
    models: usize,
    profiles: usize,
    accounts: usize,
    cores: usize,
}

struct PipelineRun {
    bus: Bus,
    registry: prometheus::Registry,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    audit: AuditTarget,
}

/// The audit catching up after the trading path, against SQLite's own ceiling for its rows.
struct CatchUp {
    rows: u64,
    rows_per_s: Option<f64>,
    ceiling_rows_per_s: Option<f64>,
    note: Option<String>,
}

impl CatchUp {
    /// A catch-up shorter than this is not timed: the drain checks are 100 ms apart.
    const MIN_SECONDS: f64 = 1.0;

    /// After `drained`, before the run's audit file is removed.
    async fn measure(run: &PipelineRun, drained: &Drained) -> anyhow::Result<Self> {
        let rows = run.audit_rows().saturating_sub(drained.audit_rows_at_trading);
        let seconds = drained.audit_s - drained.trading_s;
        let mut notes = Vec::new();
        let rows_per_s = if seconds >= Self::MIN_SECONDS {
            Some(rows as f64 / seconds)
        } else {
            notes.push(format!(
                "the audit drained {seconds:.2} s after the trading path, too soon to time a catch-up \
                 (at least {} s)",
                Self::MIN_SECONDS
            ));
            None
        };
        let ceiling_rows_per_s = match run.audit_file() {
            Some(file) => {
                // As many rows as the run wrote, between 100,000 and 2,000,000: long enough to
                // time, short enough not to dominate the bench.
                let total = run.audit_rows().clamp(100_000, 2_000_000) as usize;
                let source = run.audit_rows().clamp(1, 200_000) as usize;
                let replicas = total.div_ceil(source) as u32;
                let scratch = tempfile::Builder::new().prefix("tradeflow-ceiling-").tempdir()?;
                let dir = scratch.path().to_path_buf();
                let report = tokio::task::spawn_blocking(move || {
                    tradeflow_audit::sqlite_ceiling(&file, &dir, source, replicas, 8_192)
                })
                .await??;
                Some(report.rows_per_sec)
            }
            None => {
                notes.push("the ceiling is SQLite's; this run's audit wrote into PostgreSQL".into());
                None
            }
        };
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        Ok(Self { rows, rows_per_s, ceiling_rows_per_s, note })
    }

    fn of_ceiling(&self) -> Option<f64> {
        Some(self.rows_per_s? / self.ceiling_rows_per_s?)
    }

    fn describe(&self) -> String {
        let rate = self.rows_per_s.map_or("not timed".into(), |r| format!("{r:.0} rows/s"));
        let ceiling = self.ceiling_rows_per_s.map_or("not measured".into(), |r| format!("{r:.0} rows/s"));
        let share = self.of_ceiling().map_or(String::new(), |f| format!(" = {:.0} % of it", f * 100.0));
        let note = self.note.as_ref().map_or(String::new(), |n| format!(" ({n})"));
        format!(
            "audit catch-up: {} rows after the trading path drained, {rate}; SQLite's ceiling for these rows \
             {ceiling}{share}{note}",
            self.rows
        )
    }
}

/// When a run's groups drained, in seconds from its start.
struct Drained {
    groups: Vec<(String, f64)>,
    /// The last group but the audit's.
    trading_s: f64,
    /// The last group of all (the audit's, in practice).
    audit_s: f64,
    /// Rows the audit had written at `trading_s`.
    audit_rows_at_trading: u64,
}

/// Where a bench run's audit rows go: a fresh SQLite file, or a fresh PostgreSQL database.
struct AuditTarget {
    url: String,
    _dir: tempfile::TempDir,
    scratch: Option<tradeflow_audit::ScratchDatabase>,
}

impl AuditTarget {
    async fn create(server: Option<&str>, tag: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("tradeflow-bench-").tempdir()?;
        match server {
            None => Ok(Self {
                url: format!("sqlite://{}", dir.path().join("audit.db").display()),
                _dir: dir,
                scratch: None,
            }),
            Some(server) => {
                let name = format!("tradeflow_bench_{tag}_{}", std::process::id());
                let scratch = tradeflow_audit::ScratchDatabase::create(server, &name).await?;
                Ok(Self { url: scratch.url.clone(), _dir: dir, scratch: Some(scratch) })
            }
        }
    }

    async fn remove(self) -> anyhow::Result<()> {
        if let Some(s) = self.scratch {
            s.drop_now().await?;
        }
        Ok(())
    }
}

/// What the streams keep once every group has acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// As streams.toml says (`trim_acked`).
    AsConfigured,
    /// Everything: the run reads every message's `produced_at` back from the streams.
    Everything,
}

/// All stages in this process on a fresh namespace, audit into a fresh SQLite file (or a
/// fresh PostgreSQL database on `audit_server`).
async fn start_pipeline(
    settings: &Settings,
    url: &str,
    tag: &str,
    audit_server: Option<&str>,
    keep: Keep,
) -> anyhow::Result<PipelineRun> {
    let ns = format!("bench{tag}{}", std::process::id());
    // The operator's streams.toml (partitions, COUNT, lingers), on a namespace of its own.
    let mut topology = settings.topology.clone().with_namespace(&ns)?;
    if keep == Keep::Everything {
        for s in topology.streams.values_mut() {
            s.trim_acked = false;
        }
    }
    let bus = Bus::connect(url, topology).await?;
    bus.init().await?;
    let audit = AuditTarget::create(audit_server, tag).await?;
    let store = crate::stages::audit_store(&audit.url).await?;
    let profiles =
        tradeflow_ensemble::profile::parse_profiles(BENCH_PROFILES).map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let accounts: Vec<_> = profiles
        .iter()
        .map(|p| tradeflow_risk::AccountConfig::paper(&format!("paper-{}", p.name), &p.name, 10_000.0))
        .collect();
    let registry = prometheus::Registry::new();
    let bus_metrics = tradeflow_bus::BusMetrics::register(&registry)?;
    let models: Vec<String> = BENCH_MODELS.iter().map(|m| m.to_string()).collect();
    let stop = CancellationToken::new();
    let (_tx, control) = tokio::sync::watch::channel(tradeflow_core::control::ControlState::default());
    let spec =
        crate::stages::PipelineSpec { models: &models, llm_config: None, profiles, accounts, store, reload_from: None };
    let tasks = crate::stages::spawn_pipeline(&bus, &registry, &bus_metrics, spec, control, &stop)?;
    Ok(PipelineRun { bus, registry, stop, tasks, audit })
}

impl PipelineRun {
    async fn replay(
        &self,
        feed: &Path,
        symbols: u32,
        pace: tradeflow_ingest::replay::Pace,
        limit: Option<u64>,
    ) -> anyhow::Result<u64> {
        use tradeflow_ingest::replay::{IngestMetrics, replay};
        let config = demo_symbols(feed, symbols, pace);
        let mut stage = tradeflow_ingest::IngestStage::default();
        let sent = tradeflow_bus::BusMetrics::unregistered();
        let producer = Producer::new(self.bus.clone(), "ingest").with_metrics(sent.clone());
        let stop = CancellationToken::new();
        let registry = prometheus::Registry::new();
        let metrics = IngestMetrics::register(&registry)?;
        let run = replay(&producer, &mut stage, &config, &metrics, &stop);
        let report = match limit {
            None => run.await?,
            Some(n) => {
                let watcher = async {
                    // Messages sent, not stream entries: candles travel packed.
                    while sent.produced.with_label_values(&["md.candles"]).get() < n {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    stop.cancel();
                };
                let (r, ()) = tokio::join!(run, watcher);
                r?
            }
        };
        Ok(report.candles)
    }

    /// Waits until every stage has drained: when each (stream, group) drained, in seconds from
    /// `started` (where the time goes), and the rows the audit had written when the last group
    /// but the audit's drained (where its catch-up starts).
    async fn wait_drained(&self, started: Instant, limit: Duration) -> anyhow::Result<Drained> {
        let topology = self.bus.topology();
        let mut groups = crate::stages::pipeline_groups(topology);
        groups.extend(topology.streams_read_by(GROUP).into_iter().map(|s| (s.to_string(), GROUP.to_string())));
        let mut done = Vec::new();
        let mut audit_rows_at_trading = None;
        while !groups.is_empty() {
            let mut left = Vec::new();
            for (stream, group) in groups {
                if tradeflow_bus::inspect::drained(&self.bus, &stream, &group).await? {
                    done.push((format!("{stream}/{group}"), started.elapsed().as_secs_f64()));
                } else {
                    left.push((stream, group));
                }
            }
            groups = left;
            if audit_rows_at_trading.is_none() && groups.iter().all(|(_, g)| g == GROUP) {
                audit_rows_at_trading = Some(self.audit_rows());
            }
            if started.elapsed() > limit {
                bail!("the pipeline did not drain within {} s", limit.as_secs());
            }
            // Each check is a few XINFO round trips per partition: often enough to time the
            // stages, rare enough not to load the Redis being measured.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let trading_s =
            done.iter().filter(|(g, _)| !g.ends_with(&format!("/{GROUP}"))).map(|(_, t)| *t).fold(0.0, f64::max);
        let audit_s = done.iter().map(|(_, t)| *t).fold(0.0, f64::max);
        Ok(Drained { groups: done, trading_s, audit_s, audit_rows_at_trading: audit_rows_at_trading.unwrap_or(0) })
    }

    /// Rows the audit writer has written (`tradeflow_audit_rows_total`, every table).
    fn audit_rows(&self) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "tradeflow_audit_rows_total")
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as u64))
            .sum()
    }

    /// The audit file's path, when the audit writes into SQLite.
    fn audit_file(&self) -> Option<PathBuf> {
        self.audit.url.strip_prefix("sqlite://").map(PathBuf::from)
    }

    async fn finish(self) -> anyhow::Result<()> {
        self.stop.cancel();
        for t in self.tasks {
            t.await??;
        }
        let mut conn = self.bus.conn();
        for stream in self.bus.topology().streams.keys().cloned().collect::<Vec<String>>() {
            for p in 0..self.bus.topology().stream(&stream)?.partitions {
                for key in [self.bus.keys().partition(&stream, p), self.bus.keys().dlq(&stream, p)] {
                    let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
                }
            }
        }
        self.audit.remove().await
    }

    /// Per stream/group: batches handled, mean entries per batch, mean handler time per batch
    /// (from the bus metrics), to see where a hop's time goes.
    fn batches(&self) -> Vec<String> {
        let families = self.registry.gather();
        let label = |m: &prometheus::proto::Metric, name: &str| {
            m.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string()).unwrap_or_default()
        };
        let mut read = std::collections::HashMap::new();
        for f in families.iter().filter(|f| f.name() == "tradeflow_bus_read_total") {
            for m in f.get_metric() {
                read.insert((label(m, "stream"), label(m, "group")), m.get_counter().get_value());
            }
        }
        let mut out = Vec::new();
        for f in families.iter().filter(|f| f.name() == "tradeflow_bus_handle_seconds") {
            for m in f.get_metric() {
                let h = m.get_histogram();
                let (stream, group) = (label(m, "stream"), label(m, "group"));
                let n = h.get_sample_count().max(1) as f64;
                let entries = read.get(&(stream.clone(), group.clone())).copied().unwrap_or(0.0);
                out.push(format!(
                    "{stream}/{group} {} batches × {:.1} entries, {:.3} ms each",
                    h.get_sample_count(),
                    entries / n,
                    h.get_sample_sum() * 1000.0 / n
                ));
            }
        }
        out.sort();
        out
    }

    /// produced_at of every envelope of `stream`, by message id.
    async fn produced(&self, stream: &str) -> anyhow::Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        let mut conn = self.bus.conn();
        for p in 0..self.bus.topology().stream(stream)?.partitions {
            let v: redis::Value = redis::cmd("XRANGE")
                .arg(self.bus.keys().partition(stream, p))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await?;
            for e in tradeflow_bus::reply::entries("XRANGE", &v)? {
                for bytes in tradeflow_bus::pack::messages(&e)? {
                    let env = Envelope::decode(bytes)?;
                    out.push((env.kind, env.id, env.produced_at));
                }
            }
        }
        Ok(out)
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The candle id a message id starts with (`<candle id>/...`).
fn candle_of(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// What `bench pipeline` runs.
struct PipelineArgs<'a> {
    candles: u64,
    rate: f64,
    latency_seconds: f64,
    audit_server: Option<&'a str>,
    audit_rows: usize,
}

async fn pipeline(settings: &Settings, json: bool, args: PipelineArgs<'_>) -> anyhow::Result<()> {
    let PipelineArgs { candles, rate, latency_seconds, audit_server, audit_rows } = args;
    let (url, _port, _server) = bench_redis(settings).await?;
    let backend = if audit_server.is_some() { "postgres" } else { "sqlite" };
    let per_feed = 20_111u64;
    let symbols = candles.div_ceil(per_feed).max(1) as u32;
    // Fewer candles than one feed holds (a quick or smoke run): a copy of the feed's first N.
    let head = if candles < per_feed { Some(demo_head(candles)?) } else { None };
    let feed = head.as_ref().map_or_else(crate::config::demo_feed, |(_, path)| path.clone());

    // Throughput: everything as fast as it goes, clock from the first candle until drained.
    let run = start_pipeline(settings, &url, "t", audit_server, Keep::AsConfigured).await?;
    let started = Instant::now();
    let loaded = run.replay(&feed, symbols, tradeflow_ingest::replay::Pace::Fast, None).await?;
    let replayed = started.elapsed().as_secs_f64();
    let drained = run.wait_drained(started, Duration::from_secs(3600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let trading_seconds = drained.trading_s;
    let catch_up = CatchUp::measure(&run, &drained).await?;
    run.finish().await?;
    if !json {
        eprintln!(
            "throughput: {loaded} candles through 6 stages in {seconds:.1} s = {:.0} candles/s",
            loaded as f64 / seconds
        );
        let groups: Vec<String> = drained.groups.iter().map(|(g, t)| format!("{g} {t:.1} s")).collect();
        eprintln!("  replayed in {replayed:.1} s; drained: {}", groups.join(", "));
        eprintln!(
            "  trading path (every group but the audit's drained): {:.0} candles/s; audit into {backend}",
            loaded as f64 / trading_seconds
        );
        eprintln!("  {}", catch_up.describe());
    }

    // Latency: a steady rate over 8 symbols.
    // Keeps every message: the samples are read back from the streams afterwards.
    let run = start_pipeline(settings, &url, "l", audit_server, Keep::Everything).await?;
    let n = (rate * latency_seconds) as u64;
    run.replay(&crate::config::demo_feed(), 8, tradeflow_ingest::replay::Pace::Rate(rate), Some(n)).await?;
    run.wait_drained(Instant::now(), Duration::from_secs(600)).await?;
    let candles_in: std::collections::HashMap<String, i64> =
        run.produced("md.candles").await?.into_iter().map(|(_, id, t)| (id, t)).collect();
    let mut fills = Vec::new();
    for (kind, id, t) in run.produced("exec.fills").await? {
        if kind == "fill"
            && let Some(c) = candles_in.get(candle_of(&id))
        {
            fills.push((t - c) as f64);
        }
    }
    // Candle in → each message of `stream` for that candle: where along the path the time goes.
    let since_candle = |produced: Vec<(String, String, i64)>| {
        let mut v: Vec<f64> =
            produced.iter().filter_map(|(_, id, t)| candles_in.get(candle_of(id)).map(|c| (t - c) as f64)).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let signals = since_candle(run.produced("inf.signals").await?);
    let decisions = since_candle(run.produced("ens.decisions").await?);
    let orders = since_candle(run.produced("risk.orders").await?);
    let batches = run.batches();
    run.finish().await?;
    fills.sort_by(f64::total_cmp);

    let target = AuditTarget::create(audit_server, "w").await?;
    let audit = tradeflow_audit::bench_write(&target.url, audit_rows, 2_000).await?;
    target.remove().await?;
    let report = PipelineReport {
        candles_per_s: loaded as f64 / seconds,
        candles: loaded,
        seconds,
        trading_candles_per_s: loaded as f64 / trading_seconds,
        audit_backend: backend,
        p50_ms: percentile(&fills, 0.5),
        p99_ms: percentile(&fills, 0.99),
        max_ms: fills.last().copied().unwrap_or(f64::NAN),
        latency_samples: fills.len(),
        rate_per_s: rate,
        order_p50_ms: percentile(&orders, 0.5),
        order_p99_ms: percentile(&orders, 0.99),
        signal_p50_ms: percentile(&signals, 0.5),
        signal_p99_ms: percentile(&signals, 0.99),
        decision_p50_ms: percentile(&decisions, 0.5),
        decision_p99_ms: percentile(&decisions, 0.99),
        audit_rows_per_s: audit,
        audit_catch_up_rows_per_s: catch_up.rows_per_s,
        audit_catch_up_rows: catch_up.rows,
        sqlite_ceiling_rows_per_s: catch_up.ceiling_rows_per_s,
        audit_catch_up_of_ceiling: catch_up.of_ceiling(),
        audit_catch_up_note: catch_up.note.clone(),
        models: BENCH_MODELS.len(),
        profiles: 2,
        accounts: 2,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "latency at {rate:.0} candles/s: candle in → fill out p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} fills); \
             candle → risk message p50 {:.1} ms, p99 {:.1} ms",
            report.p50_ms,
            report.p99_ms,
            report.max_ms,
            report.latency_samples,
            report.order_p50_ms,
            report.order_p99_ms
        );
        eprintln!(
            "  by hop, from the candle: signal p50 {:.1} / p99 {:.1} ms, decision p50 {:.1} / p99 {:.1} ms",
            report.signal_p50_ms, report.signal_p99_ms, report.decision_p50_ms, report.decision_p99_ms
        );
        eprintln!("  batches at {rate:.0} candles/s: {}", batches.join("; "));
        eprintln!("audit: {audit:.0} rows/s into {backend} (batches of 2,000)");
    }
    Ok(())
}

/// A candle file (the demo feed) replayed as `symbols` symbols SYM0, SYM1, … (source `bench`).
fn demo_symbols(
    feed: &Path,
    symbols: u32,
    pace: tradeflow_ingest::replay::Pace,
) -> tradeflow_ingest::replay::ReplayConfig {
    let feeds = (0..symbols)
        .map(|i| tradeflow_ingest::replay::Feed::csv(feed, format!("SYM{i}"), tradeflow_core::market::Interval::H1))
        .collect();
    // Every bar, every time: a bench measures sending them (its streams start empty anyway).
    tradeflow_ingest::replay::ReplayConfig { feeds, pace, passes: 1, source: "bench".into(), resume: false }
}

/// The demo feed's header and first `candles` rows, in a file of a temporary directory (removed
/// when the returned handle drops).
fn demo_head(candles: u64) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let demo = crate::config::demo_feed();
    let text = std::fs::read_to_string(&demo).with_context(|| format!("cannot read {}", demo.display()))?;
    let head: String = text.lines().take(candles as usize + 1).flat_map(|l| [l, "\n"]).collect();
    let dir = tempfile::Builder::new().prefix("tradeflow-bench-feed-").tempdir()?;
    let path = dir.path().join("candles.csv");
    std::fs::write(&path, head).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((dir, path))
}
