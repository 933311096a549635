//! `tradeflow up`: the pipeline on one machine, in one process. With no REDIS_URL it starts a
//! private redis-server child (free loopback port, AOF on, data under --data-dir) and stops it
//! on exit.
//!
//! It runs all six stages: ingestion (CSV replay, the bundled demo feed by default), inference,
//! the ensemble, risk, the paper executor and the audit writer (SQLite `<data-dir>/tradeflow.db`
//! unless DATABASE_URL names another store), and the HTTP edge on `--listen` (default
//! 127.0.0.1:8080; `--no-edge` leaves it out) with an `admin` user.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::embedded::{EmbeddedOptions, RedisServer};
use tradeflow_bus::{Bus, BusMetrics, Producer, inspect};
use tradeflow_core::market::Interval;
use tradeflow_ingest::replay::{IngestMetrics, Pace, replay};

use crate::config::Settings;
use crate::{stages, worker};

#[derive(Args)]
pub struct UpArgs {
    /// Where the embedded Redis keeps its data.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Only set up the streams, print their health and exit.
    #[arg(long)]
    once: bool,
    /// Exit once every replayed candle has gone through every stage (for scripts).
    #[arg(long)]
    exit_when_drained: bool,
    /// Replay every bar from the first, even those already on `md.candles` (by default each
    /// series resumes after its last candle there, so a second `up` over the same data
    /// directory sends only what is new).
    #[arg(long)]
    from_start: bool,
    /// `[SYMBOL=]FILE`, repeatable; default the bundled demo feed as BTCUSD.
    #[arg(long = "replay", value_name = "[SYMBOL=]FILE")]
    replays: Vec<String>,
    /// Inference models, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "technical")]
    models: Vec<String>,
    /// LLM analysts for inference: a TOML file of `[[analyst]]` tables (see `worker inference`).
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_LLM_CONFIG")]
    llm_config: Option<PathBuf>,
    /// Ensemble profiles (TOML `[[profile]]` tables); default: one profile following `technical`.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_PROFILES")]
    profiles: Option<PathBuf>,
    /// Accounts (TOML `[[account]]` tables); default: one paper account per profile.
    #[arg(long, value_name = "FILE", env = "TRADEFLOW_ACCOUNTS")]
    accounts: Option<PathBuf>,
    /// Audit store; default `sqlite://<data-dir>/tradeflow.db`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Serve Prometheus metrics on this address.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// The edge's address (default `[edge] listen`, env TRADEFLOW_EDGE_LISTEN, else
    /// 127.0.0.1:8080; port 0 picks a free one and prints it).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Run without a jobs worker (when `tradeflow worker jobs` processes run the jobs).
    #[arg(long)]
    pub no_jobs: bool,
    /// Run without the HTTP edge.
    #[arg(long)]
    no_edge: bool,
    #[command(flatten)]
    cycle: crate::scheduler::CycleArgs,
}

pub async fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<()> {
    let mut embedded = None;
    let url = match &settings.redis_url {
        Some(url) => url.clone(),
        None => {
            let dir = args.data_dir.join("redis");
            let server = RedisServer::start(EmbeddedOptions {
                dir: dir.clone(),
                port: None,
                appendonly: true,
                fsync: settings.redis_fsync,
            })
            .await
            .context("cannot start the embedded redis-server")?;
            println!("embedded redis-server on {} (data in {})", server.url(), dir.display());
            let url = server.url();
            embedded = Some(server);
            url
        }
    };
    let result = serve(settings, &url, &args).await;
    if let Some(mut server) = embedded {
        server.stop().await;
    }
    result
}

async fn serve(settings: &Settings, url: &str, args: &UpArgs) -> anyhow::Result<()> {
    let bus = Bus::connect(url, settings.topology.clone())
        .await
        .with_context(|| format!("cannot connect to {}", tradeflow_bus::cluster::redact(url)))?
        .with_replication(settings.redis_replication);
    let created = bus.init().await?;
    println!(
        "topology {} (namespace {:?}): {} streams, {created} consumer groups created",
        settings.topology_source,
        bus.topology().namespace,
        bus.topology().streams.len()
    );
    if args.once {
        return print_health(&bus, &BusMetrics::unregistered()).await;
    }
    let shutdown = CancellationToken::new();
    worker::spawn_signal_handler(shutdown.clone())?;
    let registry = Registry::new();
    let bus_metrics = BusMetrics::register(&registry)?;
    crate::process_metrics::register(&registry)?;
    // Every stage's bus counters from 0, as each worker does alone.
    for group in ["inference", "ensemble", "risk", "exec", "audit", crate::jobs::handler::GROUP] {
        worker::start_bus_counters(&bus, &bus_metrics, group);
    }
    worker::serve_metrics(args.metrics_listen, registry.clone(), shutdown.clone()).await?;

    let stages = shutdown.child_token();
    let profiles = worker::load_profiles(args.profiles.as_deref())?;
    // A profile waiting on a model this process does not run as a rule model (an LLM analyst,
    // or a typo) may decide at its deadline rather than on arrival.
    let deadline_grace = profiles
        .iter()
        .filter(|p| p.models.keys().any(|m| !args.models.contains(m)))
        .map(|p| Duration::from_millis(p.deadline_ms))
        .max();
    let accounts = stages::load_accounts(args.accounts.as_deref(), &profiles)?;
    let database_url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", args.data_dir.join("tradeflow.db").display()),
    };
    let store = stages::audit_store(&database_url).await?;
    println!("audit store: {} ({})", tradeflow_audit::redact_url(&database_url), store.backend());
    let control = stages::follow_control(&bus, shutdown.clone());
    let spec = stages::PipelineSpec {
        models: &args.models,
        llm_config: args.llm_config.as_deref(),
        profiles,
        accounts: accounts.clone(),
        store: store.clone(),
        reload_from: Some((args.profiles.clone(), args.accounts.clone())),
    };
    let scheduler = match args.cycle.cycle_every {
        Some(every) => {
            let profiles = crate::scheduler::cycle_profiles(&args.cycle, Some(&spec.profiles))?;
            Some(tokio::spawn(crate::scheduler::run(bus.clone(), every, profiles, stages.clone())))
        }
        None => None,
    };
    let mut tasks = stages::spawn_pipeline(&bus, &registry, &bus_metrics, spec, control.clone(), &stages)?;
    // A jobs worker: backtests, searches and downloads submitted through the edge.
    if !args.no_jobs {
        tasks.push({
            let (bus, registry, bus_metrics, store) =
                (bus.clone(), registry.clone(), bus_metrics.clone(), store.clone());
            let setup = crate::jobs::Setup {
                retrain: settings.models.retrain.clone(),
                ..crate::jobs::Setup::for_up(settings.jobs.clone(), &args.data_dir)
            };
            let stop = stages.clone();
            tokio::spawn(async move { crate::jobs::run(&bus, &registry, &bus_metrics, store, setup, stop).await })
        });
    }
    let mut usage_publisher = None;
    let edge = if args.no_edge {
        // With no edge here to publish it, this process's LLM usage for the others' statistics.
        let (r, b) = (registry.clone(), bus.clone());
        usage_publisher =
            Some(tokio::spawn(tradeflow_edge::llm_usage::run_publisher(b, move || r.gather(), shutdown.clone())));
        None
    } else {
        let mut config = settings.edge.clone();
        // The datasets of this data directory, unless the configuration names others.
        if config.datasets_dir == std::path::Path::new(tradeflow_edge::config::DEFAULT_DATASETS_DIR) {
            config.datasets_dir = args.data_dir.join("datasets");
        }
        let listen = args.listen.unwrap_or_else(|| config.listen_addr());
        let parts = crate::edge::EdgeParts {
            bus: bus.clone(),
            registry: registry.clone(),
            store: Some(store.clone()),
            pipeline: tradeflow_edge::Pipeline {
                profiles: worker::load_profiles(args.profiles.as_deref())?,
                accounts: accounts.clone().into(),
                accounts_path: args.accounts.clone(),
                models: args.models.clone(),
                llm_config: args.llm_config.clone(),
            },
            control,
            secret: Some(crate::edge::secret_for_up(&config, &args.data_dir)?),
            extra_users: vec![crate::edge::admin_for_up(&args.data_dir).await?],
        };
        let (addr, task) = crate::edge::start(config, listen, parts, shutdown.clone()).await?;
        println!("edge: http://{addr}/api/v1 (docs http://{addr}/docs)");
        Some(task)
    };

    let feeds = worker::replay_feeds(&args.replays, Interval::H1, &[])?;
    let (config, mut stage) = worker::ingest_setup(feeds, Pace::Fast, 1, &[])?;
    let config = tradeflow_ingest::replay::ReplayConfig { resume: !args.from_start, ..config };
    let producer = Producer::new(bus.clone(), "ingest").with_metrics(bus_metrics.clone());
    let report = replay(&producer, &mut stage, &config, &IngestMetrics::register(&registry)?, &shutdown).await?;
    println!("{}", worker::ingest_summary(&report));

    if args.exit_when_drained {
        // Deadlines first (a profile may wait on a model that never answers), then everything.
        let upstream = stages::pipeline_groups(bus.topology());
        for (stream, group) in upstream.iter().filter(|(_, g)| g == "inference" || g == "ensemble") {
            while !shutdown.is_cancelled() && !stages::drained(&bus, stream, group).await? {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if let Some(grace) = deadline_grace {
            tokio::time::sleep(grace + Duration::from_millis(500)).await;
        }
        while !shutdown.is_cancelled() && !stages::all_drained(&bus).await? {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stages.cancel();
    } else {
        println!("running; REDIS_URL={url} for other tradeflow commands. Ctrl-C or SIGTERM stops.");
        shutdown.cancelled().await;
    }
    for t in tasks {
        t.await.context("pipeline task")??;
    }
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    // The control follower and the edge too, before the embedded Redis goes away under them.
    shutdown.cancel();
    if let Some(edge) = edge {
        edge.await.context("edge task")??;
    }
    if let Some(p) = usage_publisher {
        // Its last publication, before the embedded Redis stops.
        let _ = p.await;
    }
    print_health(&bus, &bus_metrics).await?;
    print_store(&store, &accounts).await
}

/// Per stream: entries in Redis (a pack holds several messages), the messages this run sent,
/// entries pending, dead letters, groups.
async fn print_health(bus: &Bus, metrics: &BusMetrics) -> anyhow::Result<()> {
    println!("{:<14} {:>5} {:>9} {:>9} {:>8} {:>6}  groups", "stream", "parts", "entries", "sent", "pending", "dlq");
    for s in inspect::health(bus).await? {
        let groups = s.partitions.first().map(|p| p.groups.iter().map(|g| g.group.clone()).collect::<Vec<_>>());
        println!(
            "{:<14} {:>5} {:>9} {:>9} {:>8} {:>6}  {}",
            s.stream,
            s.partitions.len(),
            s.length,
            metrics.produced.with_label_values(&[s.stream.as_str()]).get(),
            s.pending,
            s.dlq_length,
            groups.unwrap_or_default().join(",")
        );
    }
    Ok(())
}

/// Row counts of the audit store and each account's balance.
async fn print_store(
    store: &tradeflow_audit::AuditStore,
    accounts: &[tradeflow_risk::AccountConfig],
) -> anyhow::Result<()> {
    let mut counts = Vec::new();
    for &t in tradeflow_audit::Table::ALL {
        counts.push(format!("{} {}", t.name(), store.count(t).await?));
    }
    println!("audit store: {}", counts.join(", "));
    for a in accounts {
        let fills = store.fills(&a.id).await?;
        let balance = a.starting_balance + fills.iter().map(|f| f.realized_pnl - f.fee).sum::<f64>();
        println!("account {}: {} fills, balance {balance:.2} (started {:.2})", a.id, fills.len(), a.starting_balance);
    }
    Ok(())
}
