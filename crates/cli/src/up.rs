//! `tradeflow up`: the pipeline on one machine, in one process. With no REDIS_URL it starts a
//! private redis-server child (free loopback port, AOF on, data under --data-dir) and stops it
//! on exit.
//!
//! Today it runs ingestion (CSV replay, the bundled demo feed by default), inference and the
//! ensemble; the risk, execution and audit stages and the edge join as they are built.

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
use crate::worker;

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
    /// Serve Prometheus metrics on this address.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
}

pub async fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<()> {
    let mut embedded = None;
    let url = match &settings.redis_url {
        Some(url) => url.clone(),
        None => {
            let dir = args.data_dir.join("redis");
            let server = RedisServer::start(EmbeddedOptions { dir: dir.clone(), port: None, appendonly: true })
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
    let bus = Bus::connect(url, settings.topology.clone()).await.with_context(|| format!("cannot connect to {url}"))?;
    let created = bus.init().await?;
    println!(
        "topology {} (namespace {:?}): {} streams, {created} consumer groups created",
        settings.topology_source,
        bus.topology().namespace,
        bus.topology().streams.len()
    );
    if args.once {
        return print_health(&bus).await;
    }
    let shutdown = CancellationToken::new();
    worker::spawn_signal_handler(shutdown.clone())?;
    let registry = Registry::new();
    let bus_metrics = BusMetrics::register(&registry)?;
    worker::serve_metrics(args.metrics_listen, registry.clone(), shutdown.clone()).await?;

    let consumer =
        worker::inference_consumer(&bus, &registry, &bus_metrics, &args.models, args.llm_config.as_deref(), None)?;
    let stages = shutdown.child_token();
    let inference = tokio::spawn(consumer.run(stages.clone()));
    let profiles = worker::load_profiles(args.profiles.as_deref())?;
    // A profile waiting on a model this process does not run as a rule model (an LLM analyst,
    // or a typo) may decide at its deadline rather than on arrival.
    let deadline_grace = profiles
        .iter()
        .filter(|p| p.models.keys().any(|m| !args.models.contains(m)))
        .map(|p| Duration::from_millis(p.deadline_ms))
        .max();
    let ensemble = worker::ensemble_consumer(&bus, &registry, &bus_metrics, profiles, None)?;
    let ensemble = tokio::spawn(ensemble.run(stages.clone()));

    let (config, mut stage) = worker::ingest_setup(&args.replays, Interval::H1, Pace::Fast, 1, &[])?;
    let producer = Producer::new(bus.clone(), "ingest").with_metrics(bus_metrics);
    let report = replay(&producer, &mut stage, &config, &IngestMetrics::register(&registry)?, &shutdown).await?;
    println!("{}", worker::ingest_summary(&report));

    if args.exit_when_drained {
        wait_drained(&bus, "md.candles", "inference", &shutdown).await?;
        wait_drained(&bus, "inf.signals", "ensemble", &shutdown).await?;
        if let Some(grace) = deadline_grace {
            tokio::time::sleep(grace + Duration::from_millis(500)).await;
        }
        stages.cancel();
    } else {
        println!("running; REDIS_URL={url} for other tradeflow commands. Ctrl-C or SIGTERM stops.");
        shutdown.cancelled().await;
    }
    inference.await.context("inference task")??;
    ensemble.await.context("ensemble task")??;
    print_health(&bus).await
}

/// Until `group` has nothing left to read or acknowledge on `stream`.
async fn wait_drained(bus: &Bus, stream: &str, group: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
    while !shutdown.is_cancelled() {
        let h = inspect::stream_health(bus, stream).await?;
        // Redis reports no lag after deletions in a stream; the last delivered id tells then.
        let drained = h.partitions.iter().all(|p| {
            p.groups.iter().filter(|g| g.group == group).all(|g| {
                g.pending == 0 && (g.lag == Some(0) || (p.last_id.is_some() && g.last_delivered_id == p.last_id))
            })
        });
        if drained {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn print_health(bus: &Bus) -> anyhow::Result<()> {
    println!("{:<14} {:>5} {:>9} {:>8} {:>6}  groups", "stream", "parts", "length", "pending", "dlq");
    for s in inspect::health(bus).await? {
        let groups = s.partitions.first().map(|p| p.groups.iter().map(|g| g.group.clone()).collect::<Vec<_>>());
        println!(
            "{:<14} {:>5} {:>9} {:>8} {:>6}  {}",
            s.stream,
            s.partitions.len(),
            s.length,
            s.pending,
            s.dlq_length,
            groups.unwrap_or_default().join(",")
        );
    }
    Ok(())
}
