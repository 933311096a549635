//! `tradeflow worker <stage>`: one stage as its own process, any number of them.
//!
//! Each worker serves Prometheus metrics on `--metrics-listen` (default: none) and stops
//! gracefully on SIGTERM/SIGINT: stop reading, finish and acknowledge what is in hand, exit 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use prometheus::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::{BusMetrics, Consumer, Producer};
use tradeflow_core::control::ControlState;
use tradeflow_core::market::{Interval, RefusalKind};
use tradeflow_ensemble::Profile;
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_ensemble::worker::{EnsembleFactory, EnsembleMetrics};
use tradeflow_exec::worker::ExecMetrics;
use tradeflow_inference::StageConfig;
use tradeflow_inference::worker::{InferenceFactory, InferenceMetrics};
use tradeflow_ingest::IngestStage;
use tradeflow_ingest::binance::{BinanceConfig, BinanceSeries, run_binance};
use tradeflow_ingest::replay::{Feed, IngestMetrics, Pace, ReplayConfig, replay};
use tradeflow_ingest::synthetic::{SyntheticConfig, run_synthetic};
use tradeflow_risk::worker::RiskMetrics;

use crate::config::{Settings, demo_feed};
use crate::stages;

#[derive(Subcommand)]
pub enum WorkerCommand {
    /// Candles in: replays candle CSV files and datasets into md.candles (refusals to audit.events).
    Ingest(IngestArgs),
    /// Candles to signals: one signal per model per candle into inf.signals.
    Inference(InferenceArgs),
    /// Signals to decisions: one decision per profile per candle into ens.decisions.
    Ensemble(EnsembleArgs),
    /// Decisions to orders: per account sizing, limits and circuit breaker into risk.orders.
    Risk(AccountsArgs),
    /// Orders to fills: the paper broker, fills and account updates into exec.fills.
    Exec(AccountsArgs),
    /// Every stream into the SQL audit store (SQLite or PostgreSQL).
    Audit(AuditArgs),
    /// News in: RSS/Atom feeds (and CryptoPanic) polled into md.news, each story once.
    News(crate::news::NewsArgs),
    /// Jobs: backtests, hyperparameter searches and downloads submitted through the edge
    /// (`POST /api/v1/tasks/{kind}`) or `tradeflow tasks submit`, one at a time per partition.
    Jobs(crate::jobs::JobsArgs),
}

#[derive(Args)]
pub struct AccountsArgs {
    /// Ensemble profiles (the accounts' `profile` must name one); default: `technical`.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_PROFILES")]
    profiles: Option<PathBuf>,
    /// Accounts: a TOML file of `[[account]]` tables (id, profile, starting_balance, leverage,
    /// sizing, risk, paper ...). Default: one paper account `paper-<profile>` per profile with
    /// 10,000 quote.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_ACCOUNTS")]
    accounts: Option<PathBuf>,
    /// Fleet member name (default: service@host:pid:random).
    #[arg(long)]
    member_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct AuditArgs {
    /// `sqlite://FILE` or `postgres://user:password@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/tradeflow.db")]
    database_url: String,
    /// Fleet member name prefix (default: service@host:pid:random).
    #[arg(long)]
    member_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct EnsembleArgs {
    /// Profiles: a TOML file of `[[profile]]` tables (name, models = { model = weight },
    /// method, min_confidence, quorum, deadline_ms). Default: one profile `technical` following
    /// the `technical` model.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_PROFILES")]
    profiles: Option<PathBuf>,
    /// Fleet member name (default: service@host:pid:random).
    #[arg(long)]
    member_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub(crate) use tradeflow_ensemble::profile::DEFAULT_PROFILES;

/// Profiles from `path`, or the default; every problem reported at once.
pub(crate) fn load_profiles(path: Option<&Path>) -> anyhow::Result<Vec<Profile>> {
    let (text, name) = match path {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (DEFAULT_PROFILES.to_string(), "default profiles".to_string()),
    };
    parse_profiles(&text).map_err(|problems| anyhow::anyhow!("{name}:\n  {}", problems.join("\n  ")))
}

/// A consumer of inf.signals (group `ensemble`) joining them into decisions.
pub(crate) fn ensemble_consumer(
    bus: &tradeflow_bus::Bus,
    metrics: EnsembleMetrics,
    bus_metrics: &BusMetrics,
    profiles: Vec<Profile>,
    member_name: Option<String>,
) -> anyhow::Result<Consumer<EnsembleFactory>> {
    eprintln!(
        "ensemble: profiles {}",
        profiles
            .iter()
            .map(|p| format!("{} ({})", p.name, p.models.keys().cloned().collect::<Vec<_>>().join("+")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let factory = EnsembleFactory {
        profiles: Arc::new(profiles),
        producer: Producer::new(bus.clone(), "ensemble").with_metrics(bus_metrics.clone()),
        metrics,
        tick: std::time::Duration::from_millis(100),
    };
    let mut consumer =
        Consumer::new(bus.clone(), "inf.signals", "ensemble", "ensemble", factory)?.with_metrics(bus_metrics.clone());
    if let Some(name) = member_name {
        consumer = consumer.with_member_name(name);
    }
    Ok(consumer)
}

#[derive(Args, Clone, Debug, Default)]
pub struct Common {
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9101).
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
}

/// Sources and pacing of ingestion: from the flags, or, when no source flag is given, from the
/// `[ingest]` table of the config file (same names: `replay = ["BTCUSD=demo/btcusd_1h.csv"]`,
/// `binance = ["BTCUSDT:1m"]`, `synthetic = 10`, `interval`, `pace`, `passes`, `aggregate`, ...).
#[derive(Args, Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestArgs {
    /// `[SYMBOL=]FILE`, repeatable; the symbol defaults to the file stem in upper case.
    /// Default: the bundled demo feed as BTCUSD.
    #[arg(long = "replay", value_name = "[SYMBOL=]FILE")]
    #[serde(rename = "replay")]
    replays: Vec<String>,
    /// A dataset to replay besides the files: `SYMBOL:INTERVAL` or `SOURCE:SYMBOL:INTERVAL`
    /// (see `tradeflow data list`), repeatable; its candles carry the dataset's source.
    #[arg(long = "dataset", value_name = "SYMBOL:INTERVAL")]
    #[serde(rename = "dataset")]
    datasets: Vec<String>,
    /// With --dataset: the data directory (datasets in <DATA_DIR>/datasets).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Interval of the replayed bars.
    #[arg(long, default_value = "1h")]
    interval: Interval,
    /// `fast`, `x<speed-up>` (x1 = real time) or `<bars>/s`.
    #[arg(long, default_value = "fast")]
    #[serde(deserialize_with = "parsed")]
    pace: Pace,
    /// Replay the files this many times, each pass shifted in time (load tests).
    #[arg(long, default_value_t = 1)]
    passes: u32,
    /// `FROM:TO` intervals to build from the ingested ones, e.g. 1h:4h; repeatable.
    #[arg(long = "aggregate", value_name = "FROM:TO")]
    #[serde(rename = "aggregate")]
    aggregates: Vec<String>,
    /// Replay every bar of the files from the first, even those `md.candles` already holds
    /// (by default each series resumes after its last candle there; repeats are harmless,
    /// their ids are the same).
    #[arg(long)]
    from_start: bool,
    /// Binance spot instead of files: `SYMBOL:INTERVAL` (e.g. BTCUSDT:1m), repeatable. REST
    /// backfill, then the live WebSocket of closed bars.
    #[arg(long = "binance", value_name = "SYMBOL:INTERVAL", conflicts_with_all = ["replays", "datasets"])]
    binance: Vec<String>,
    /// Synthetic random walks instead of files: this many symbols (SYN0, SYN1, ...), for load
    /// tests. Bar times start --synthetic-bars intervals before now.
    #[arg(long, conflicts_with_all = ["replays", "datasets", "binance"])]
    synthetic: Option<u32>,
    /// With --synthetic: bars per symbol.
    #[arg(long, default_value_t = 10_000)]
    synthetic_bars: u64,
    /// With --synthetic: random seed (same seed, same bars).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// With --binance: hours of history to backfill first.
    #[arg(long, default_value_t = 0)]
    backfill_hours: u32,
    /// With --binance: backfill, then stop (no WebSocket).
    #[arg(long)]
    backfill_only: bool,
    /// Binance REST base URL (testnets, proxies).
    #[arg(long, default_value = "https://api.binance.com")]
    binance_rest_url: String,
    /// Binance WebSocket base URL.
    #[arg(long, default_value = "wss://stream.binance.com:9443")]
    binance_ws_url: String,
    #[command(flatten)]
    #[serde(skip)]
    common: Common,
}

impl IngestArgs {
    fn has_source(&self) -> bool {
        !self.replays.is_empty() || !self.datasets.is_empty() || !self.binance.is_empty() || self.synthetic.is_some()
    }
}

/// The flag defaults, for the `[ingest]` table.
impl Default for IngestArgs {
    fn default() -> Self {
        Self {
            replays: Vec::new(),
            datasets: Vec::new(),
            data_dir: PathBuf::from("data"),
            interval: Interval::H1,
            pace: Pace::Fast,
            passes: 1,
            aggregates: Vec::new(),
            from_start: false,
            binance: Vec::new(),
            synthetic: None,
            synthetic_bars: 10_000,
            seed: 1,
            backfill_hours: 0,
            backfill_only: false,
            binance_rest_url: "https://api.binance.com".into(),
            binance_ws_url: "wss://stream.binance.com:9443".into(),
            common: Common { metrics_listen: None },
        }
    }
}

/// A value given as its text form (`pace = "x60"`).
fn parsed<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = <String as serde::Deserialize>::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[derive(Args)]
pub struct InferenceArgs {
    /// Models to run, comma-separated: rsi, macd, bollinger, volume, stochastic (one rule
    /// each), technical (all five voting, with each one's score), sma_cross (the SMA
    /// crossover, `[rules.sma_cross]`), ml:NAME (a learned model's deployed version, from the
    /// registry: --database-url).
    #[arg(long, value_delimiter = ',', default_value = "technical")]
    models: Vec<String>,
    /// Inference configuration (TOML): `[rules]` strategy parameters, `[condition]`
    /// thresholds and `[[analyst]]` LLM analysts (keys come from the environment variables it
    /// names). Without it: default parameters and the rule models alone.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_LLM_CONFIG")]
    llm_config: Option<PathBuf>,
    /// Fleet member name (default: service@host:pid:random).
    #[arg(long)]
    member_name: Option<String>,
    /// The model registry (the audit store), read when --models names learned models (ml:NAME).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    cycle: crate::scheduler::CycleArgs,
    #[command(flatten)]
    common: Common,
}

pub async fn run(settings: &Settings, cmd: WorkerCommand) -> anyhow::Result<()> {
    let registry = Registry::new();
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    let bus = crate::connect(settings).await?;
    bus.init().await.context("cannot create the streams")?;
    let bus_metrics = BusMetrics::register(&registry)?;
    crate::process_metrics::register(&registry)?;
    match cmd {
        WorkerCommand::Ingest(mut args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            if !args.has_source()
                && let Some(from_file) = settings.ingest.clone()
            {
                args = IngestArgs { common: args.common, ..from_file };
            }
            let mut replays = replay_feeds(&args.replays, args.interval, &args.datasets)?;
            replays.extend(dataset_feeds(&args.datasets, &args.data_dir)?);
            let (config, mut stage) = ingest_setup(replays, args.pace, args.passes, &args.aggregates)?;
            let config = ReplayConfig { resume: !args.from_start, ..config };
            let producer = Producer::new(bus, "ingest").with_metrics(bus_metrics);
            let metrics = IngestMetrics::register(&registry)?;
            // Refusals by reason from 0 (see start_bus_counters), under this run's source.
            let source = if args.synthetic.is_some() {
                "synthetic"
            } else if args.binance.is_empty() {
                config.source.as_str()
            } else {
                tradeflow_ingest::binance::SOURCE
            };
            for kind in [
                RefusalKind::Malformed,
                RefusalKind::InvalidBar,
                RefusalKind::TimeBackwards,
                RefusalKind::ConflictingDuplicate,
            ] {
                metrics.refused.with_label_values(&[source, kind.as_str()]);
            }
            let report = if let Some(symbols) = args.synthetic {
                let interval_ms = args.interval.millis();
                let now = tradeflow_core::time::now_ms();
                let config = SyntheticConfig {
                    symbols,
                    bars: args.synthetic_bars,
                    interval: args.interval,
                    seed: args.seed,
                    start_time: (now / interval_ms - args.synthetic_bars as i64) * interval_ms,
                    pace: args.pace,
                };
                run_synthetic(&producer, &mut stage, &config, &metrics, &shutdown).await?
            } else if !args.binance.is_empty() {
                let config = binance_config(&args)?;
                run_binance(&producer, &mut stage, &config, &metrics, &shutdown).await?
            } else {
                replay(&producer, &mut stage, &config, &metrics, &shutdown).await?
            };
            println!("{}", ingest_summary(&report));
            shutdown.cancel();
            Ok(())
        }
        WorkerCommand::Inference(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            // Its LLM usage, for the cost statistics of every edge.
            let (r, b, stop) = (registry.clone(), bus.clone(), shutdown.clone());
            let publisher = tokio::spawn(tradeflow_edge::llm_usage::run_publisher(b, move || r.gather(), stop.clone()));
            // The operator's and the scheduler's `trigger`s: analysis cycles.
            let control = stages::follow_control(&bus, shutdown.clone());
            let scheduler = match args.cycle.cycle_every {
                Some(every) => {
                    let profiles = crate::scheduler::cycle_profiles(&args.cycle, None)?;
                    Some(tokio::spawn(crate::scheduler::run(bus.clone(), every, profiles, shutdown.clone())))
                }
                None => None,
            };
            let (consumer, ml) = inference_consumer(
                &bus,
                &registry,
                &bus_metrics,
                &args.models,
                args.llm_config.as_deref(),
                Some(control.clone()),
                args.member_name,
            )?;
            let store = match (&args.database_url, ml.is_empty()) {
                (Some(url), false) => Some(stages::audit_store(url).await?),
                _ => None,
            };
            let follower = follow_models(&ml, store, Some(control), shutdown.clone()).await?;
            consumer.run(shutdown.clone()).await?;
            if let Some(f) = follower {
                f.abort();
            }
            shutdown.cancel();
            if let Some(s) = scheduler {
                let _ = s.await;
            }
            // Its last counters, published once it stopped.
            stop.cancel();
            let _ = publisher.await;
            Ok(())
        }
        WorkerCommand::Ensemble(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            let metrics = EnsembleMetrics::register(&registry)?;
            start_bus_counters(&bus, &bus_metrics, "ensemble");
            let control = stages::follow_control(&bus, shutdown.clone());
            let build = || {
                let profiles = load_profiles(args.profiles.as_deref())?;
                // Late signals of every model a profile waits for, from 0 (see start_bus_counters).
                for model in profiles.iter().flat_map(|p| p.models.keys()) {
                    metrics.late.with_label_values(&[model.as_str()]);
                }
                ensemble_consumer(&bus, metrics.clone(), &bus_metrics, profiles, args.member_name.clone())
            };
            stages::run_reloadable("ensemble", build, control, shutdown).await
        }
        WorkerCommand::Risk(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            let metrics = RiskMetrics::register(&registry)?;
            start_bus_counters(&bus, &bus_metrics, "risk");
            let control = stages::follow_control(&bus, shutdown.clone());
            let stage_control = control.clone();
            let build = || {
                let profiles = load_profiles(args.profiles.as_deref())?;
                let accounts = stages::load_accounts(args.accounts.as_deref(), &profiles)?;
                let control = stage_control.clone();
                stages::risk_consumer(&bus, metrics.clone(), &bus_metrics, &accounts, control, args.member_name.clone())
            };
            stages::run_reloadable("risk", build, control, shutdown).await
        }
        WorkerCommand::Exec(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            let metrics = ExecMetrics::register(&registry)?;
            start_bus_counters(&bus, &bus_metrics, "exec");
            let control = stages::follow_control(&bus, shutdown.clone());
            let build = || {
                let profiles = load_profiles(args.profiles.as_deref())?;
                let accounts = stages::load_accounts(args.accounts.as_deref(), &profiles)?;
                stages::exec_consumer(&bus, metrics.clone(), &bus_metrics, &accounts, args.member_name.clone())
            };
            stages::run_reloadable("exec", build, control, shutdown).await
        }
        WorkerCommand::News(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            crate::news::run(args, settings.news.clone(), bus, &registry, bus_metrics, shutdown).await
        }
        WorkerCommand::Jobs(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            start_bus_counters(&bus, &bus_metrics, crate::jobs::handler::GROUP);
            let store = crate::jobs::store(&args.database_url).await?;
            let setup = crate::jobs::Setup {
                config: settings.jobs.clone(),
                threads: args.threads,
                member_name: args.member_name,
                data_dir: args.data_dir,
                binance_rest_url: args.binance_rest_url,
                retrain: settings.models.retrain.clone(),
            };
            crate::jobs::run(&bus, &registry, &bus_metrics, store, setup, shutdown).await
        }
        WorkerCommand::Audit(args) => {
            serve_metrics(args.common.metrics_listen, registry.clone(), shutdown.clone()).await?;
            start_bus_counters(&bus, &bus_metrics, "audit");
            let store = stages::audit_store(&args.database_url).await?;
            eprintln!("audit: writing to {} ({})", tradeflow_audit::redact_url(&args.database_url), store.backend());
            stages::run_audit(&bus, &registry, &bus_metrics, store, args.member_name, shutdown).await
        }
    }
}

/// The files of `replays` (`[SYMBOL=]FILE`); the demo feed as BTCUSD when there is neither a
/// file nor a dataset.
pub(crate) fn replay_feeds(replays: &[String], interval: Interval, datasets: &[String]) -> anyhow::Result<Vec<Feed>> {
    let default = [format!("BTCUSD={}", demo_feed().display())];
    let replays = if replays.is_empty() && datasets.is_empty() { &default[..] } else { replays };
    replays.iter().map(|r| feed(r, interval)).collect()
}

/// The datasets `specs` name (`SYMBOL:INTERVAL`, `SOURCE:SYMBOL:INTERVAL`) under
/// `<data_dir>/datasets`, read whole, each with its own interval and source.
pub(crate) fn dataset_feeds(specs: &[String], data_dir: &Path) -> anyhow::Result<Vec<Feed>> {
    let datasets = tradeflow_datasets::Datasets::in_data_dir(data_dir);
    specs
        .iter()
        .map(|spec| {
            let c = datasets.read(spec, None, None).with_context(|| format!("--dataset {spec}"))?;
            let name = format!("dataset {}", c.key.spec());
            Ok(Feed::bars(name, c.key.source.clone(), c.key.symbol.clone(), c.key.interval, c.raw()))
        })
        .collect()
}

/// The replay of `feeds` and the ingestion stage with `aggregates` (`FROM:TO`).
pub(crate) fn ingest_setup(
    feeds: Vec<Feed>,
    pace: Pace,
    passes: u32,
    aggregates: &[String],
) -> anyhow::Result<(ReplayConfig, IngestStage)> {
    let aggregate = aggregates.iter().map(|a| pair(a)).collect::<anyhow::Result<Vec<_>>>()?;
    let stage = IngestStage::new(&aggregate)
        .map_err(|errs| anyhow::anyhow!(errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))?;
    Ok((ReplayConfig { feeds, pace, passes, source: "csv".into(), resume: true }, stage))
}

pub(crate) fn ingest_summary(r: &tradeflow_ingest::replay::ReplayReport) -> String {
    let mut line = format!(
        "ingest: {} candles ({} aggregated), {} refused, {} repeated bars skipped",
        r.candles, r.aggregated, r.refused, r.duplicates
    );
    if r.already_sent > 0 {
        line +=
            &format!(", {} bars already on md.candles (resumed after them; --from-start sends all)", r.already_sent);
    }
    if r.rewinds > 0 {
        line += &format!(", {} time(s) back to bars Redis lost in a restart", r.rewinds);
    }
    line
}

/// A consumer of md.candles (group `inference`) running `models` and the LLM analysts of
/// `llm_config`.
pub(crate) fn inference_consumer(
    bus: &tradeflow_bus::Bus,
    registry: &Registry,
    bus_metrics: &BusMetrics,
    models: &[String],
    llm_config: Option<&Path>,
    control: Option<watch::Receiver<ControlState>>,
    member_name: Option<String>,
) -> anyhow::Result<(Consumer<InferenceFactory>, tradeflow_inference::ml::MlSet)> {
    let config = inference_config(models, llm_config, registry)?;
    eprintln!("inference: {}", config.describe());
    if !config.ml.is_empty() {
        config.ml.models.set_metrics(tradeflow_inference::ml::MlMetrics::register(registry)?);
    }
    let producer = Producer::new(bus.clone(), "inference").with_metrics(bus_metrics.clone());
    let metrics = InferenceMetrics::register(registry)?;
    for model in models.iter().map(String::as_str).chain(config.analysts.iter().map(|a| a.name())) {
        metrics.errors.with_label_values(&[model]);
    }
    start_bus_counters(bus, bus_metrics, "inference");
    let ml = config.ml.clone();
    let factory = InferenceFactory { config: Arc::new(config), producer, metrics, control };
    let mut consumer =
        Consumer::new(bus.clone(), "md.candles", "inference", "inference", factory)?.with_metrics(bus_metrics.clone());
    if let Some(name) = member_name {
        consumer = consumer.with_member_name(name);
    }
    Ok((consumer, ml))
}

/// Serves the deployed versions of the learned models of `ml` from the registry in `store`
/// (required when there is one), following deploys until `stop`.
pub(crate) async fn follow_models(
    ml: &tradeflow_inference::ml::MlSet,
    store: Option<Arc<tradeflow_audit::AuditStore>>,
    control: Option<watch::Receiver<ControlState>>,
    stop: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if ml.is_empty() {
        return Ok(None);
    }
    let store = store
        .context("--models names learned models (ml:NAME): the registry is needed (--database-url or DATABASE_URL)")?;
    Ok(Some(crate::models::serve::start(store, ml.models.clone(), control, stop).await))
}

/// Every bus counter of `group` on each stream it reads, and each dead-letter reason, at 0
/// before its first event. A counter series that first appears at 1 shows no increase, so the
/// alert rules (grafana/prometheus/alerts.yml: dead letters, restarts, lease losses, Redis
/// errors) would miss the first event, and the dashboards' panels would have no series until
/// something went wrong.
pub(crate) fn start_bus_counters(bus: &tradeflow_bus::Bus, metrics: &BusMetrics, group: &str) {
    use tradeflow_bus::dlq::DeadLetterReason;
    for stream in bus.topology().streams_read_by(group) {
        let labels = [stream, group];
        for counter in [
            &metrics.read,
            &metrics.acked,
            &metrics.retried,
            &metrics.trimmed,
            &metrics.claimed,
            &metrics.lease_losses,
            &metrics.redis_errors,
            &metrics.partition_restarts,
        ] {
            counter.with_label_values(&labels);
        }
        for reason in [DeadLetterReason::DecodeError, DeadLetterReason::MaxDeliveries, DeadLetterReason::Rejected] {
            metrics.dead_lettered.with_label_values(&[stream, group, reason.as_str()]);
        }
    }
}

/// The rule models and the LLM analysts, every problem reported at once (built by the
/// inference crate, as the edge builds its own).
fn inference_config(models: &[String], llm_config: Option<&Path>, registry: &Registry) -> anyhow::Result<StageConfig> {
    Ok(tradeflow_inference::engine::stage_config(models, llm_config, registry)?)
}

fn binance_config(args: &IngestArgs) -> anyhow::Result<BinanceConfig> {
    let mut series = Vec::new();
    for spec in &args.binance {
        let (symbol, interval) = spec
            .split_once(':')
            .with_context(|| format!("--binance {spec}: expected SYMBOL:INTERVAL, e.g. BTCUSDT:1m"))?;
        series.push(BinanceSeries::new(symbol, interval.parse().with_context(|| format!("--binance {spec}"))?));
    }
    let mut config = BinanceConfig::new(series);
    config.rest_url = args.binance_rest_url.clone();
    config.ws_url = args.binance_ws_url.clone();
    config.live = !args.backfill_only;
    if args.backfill_hours > 0 {
        config.backfill_from = Some(tradeflow_core::time::now_ms() - i64::from(args.backfill_hours) * 3_600_000);
    }
    config.validate()?;
    Ok(config)
}

/// `[SYMBOL=]FILE`.
pub(crate) fn feed(spec: &str, interval: Interval) -> anyhow::Result<Feed> {
    tradeflow_backtest::params::replay_feed(spec, interval).map_err(|e| anyhow::anyhow!("--replay {e}"))
}

/// `FROM:TO`.
pub(crate) fn pair(spec: &str) -> anyhow::Result<(Interval, Interval)> {
    tradeflow_backtest::params::aggregate_pair(spec).map_err(|e| anyhow::anyhow!("--aggregate {e}"))
}

pub(crate) fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stop requested: finishing in-flight work");
        shutdown.cancel();
    });
    Ok(())
}

/// Serves `GET /metrics` until `shutdown`.
pub async fn serve_metrics(
    addr: Option<SocketAddr>,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(addr) = addr else { return Ok(()) };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    tradeflow_bus::metrics::render(&registry),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_line_names_the_active_models() {
        let registry = Registry::new();
        let rules = inference_config(&["technical".into()], None, &registry).unwrap();
        assert_eq!(rules.describe(), "models technical; no LLM analyst configured (rule models only)");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("llm.toml");
        std::fs::write(
            &file,
            r#"
[[analyst]]
name = "local"
dialect = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "llama3.1:8b"
"#,
        )
        .unwrap();
        let both = inference_config(&["technical".into(), "rsi".into()], Some(&file), &registry).unwrap();
        assert_eq!(both.describe(), "models technical, rsi; LLM analysts: local (openai llama3.1:8b)");
        assert_eq!(both.analysts.len(), 1);
    }

    #[test]
    fn a_broken_llm_config_is_refused_with_every_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("llm.toml");
        std::fs::write(
            &file,
            "[[analyst]]\nname = \"rsi\"\ndialect = \"gemini\"\nmodel = \"m\"\napi_key_envs = [\"TRADEFLOW_TEST_UNSET_KEY\"]\n",
        )
        .unwrap();
        let err = inference_config(&["technical".into()], Some(&file), &Registry::new()).unwrap_err().to_string();
        for expected in [
            "analyst[0].name: \"rsi\" is the name of a rule model",
            "analyst[0].dialect: unknown dialect \"gemini\"",
            "analyst[0].api_key_envs[0]: environment variable TRADEFLOW_TEST_UNSET_KEY is not set",
        ] {
            assert!(err.contains(expected), "{err}");
        }
        let missing =
            inference_config(&["technical".into()], Some(Path::new("/nonexistent/llm.toml")), &Registry::new());
        assert!(missing.unwrap_err().to_string().contains("cannot read /nonexistent/llm.toml"));
    }
}
