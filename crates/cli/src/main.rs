//! `tradeflow`: the command line of the tradeflow pipeline.

mod backtest;
mod bench;
mod bench_backtest;
mod bench_jobs;
mod bench_models;
mod bench_ws;
mod commands;
mod config;
mod data;
mod edge;
mod hyperopt;
mod indicators;
mod jobs;
mod json_log;
mod models;
mod news;
mod process_metrics;
mod progress;
mod scheduler;
mod stages;
mod tasks;
mod up;
mod worker;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tradeflow_bus::Bus;

use crate::config::Settings;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tradeflow", version, about = "Redis Streams trading pipeline: streams, dead letters, benchmarks")]
struct Cli {
    /// Redis to use, e.g. redis://127.0.0.1:6379/
    #[arg(long, env = "REDIS_URL", global = true)]
    redis_url: Option<String>,
    /// Process configuration file (TOML: [redis] url, [bus] streams/namespace, [ingest], [edge]).
    #[arg(long, env = "TRADEFLOW_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Stream topology file; default ./streams.toml, else the built-in one.
    #[arg(long, env = "TRADEFLOW_STREAMS", global = true)]
    streams: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list and inspect the streams of streams.toml.
    Streams {
        #[command(subcommand)]
        command: commands::streams::StreamsCommand,
    },
    /// Inspect, replay and purge dead letters.
    Dlq {
        #[command(subcommand)]
        command: commands::dlq::DlqCommand,
    },
    /// Benchmarks (build with --release).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Run tradeflow on this machine: a private redis-server when no REDIS_URL is given.
    Up(up::UpArgs),
    /// Indicators of a candle CSV, TA-Lib-exact, as CSV (timestamp and the 26 reference columns).
    Indicators(indicators::IndicatorsArgs),
    /// Send an operator command on ctl.commands (obeyed by every worker).
    Ctl {
        #[command(subcommand)]
        command: commands::ctl::CtlCommand,
    },
    /// The HTTP edge alone: REST, WebSocket, stream health and DLQ APIs over a running pipeline.
    Edge(edge::EdgeArgs),
    /// Hash a password or an API key for the `[edge]` configuration (reads stdin).
    Auth {
        #[command(subcommand)]
        command: edge::AuthCommand,
    },
    /// Backtest: the live stages over candle files, in process, on the candles' clock.
    Backtest(backtest::BacktestArgs),
    /// Hyperparameter search over backtests: grid, random or TPE, in and out of sample.
    Hyperopt(Box<hyperopt::HyperoptArgs>),
    /// Jobs through the edge's API: submit, list, show, cancel, retry (`--wait` follows one).
    Tasks(tasks::TasksArgs),
    /// Datasets: historical candles as Parquet files (download from Binance, import, list, export).
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Learned models: train, list, show, deploy (through the gate), roll back.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Run one pipeline stage as a worker process (any number of them).
    Worker {
        #[command(subcommand)]
        command: worker::WorkerCommand,
    },
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRADEFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    match json_log::wants_json() {
        Ok(true) => {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::registry().with(filter).with(json_log::JsonLayer::new(std::io::stderr)).init();
        }
        Ok(false) => tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init(),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Backtest(_) | Command::Hyperopt(_) | Command::Indicators(_)) {
        // Offline commands that print reports: `tradeflow backtest --json | head` should end
        // quietly when the reader goes, as Unix tools do, not panic on a broken pipe (Rust
        // ignores SIGPIPE). Never for the servers: a peer closing a socket must not kill them.
        // SAFETY: restoring a signal's default disposition at start-up, before any thread.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Offline: no Redis, no topology, so a broken config cannot get in its way.
    if let Command::Indicators(args) = &cli.command {
        return indicators::run(args);
    }
    if let Command::Backtest(args) = &cli.command {
        return backtest::run(args);
    }
    if let Command::Hyperopt(args) = &cli.command {
        return hyperopt::run(args);
    }
    if let Command::Auth { command } = cli.command {
        return edge::run_auth(command);
    }
    if let Command::Tasks(args) = cli.command {
        return tasks::run(args).await;
    }
    if let Command::Data { command } = cli.command {
        return data::run(command).await;
    }
    // Offline too: the registry is the SQL store.
    if let Command::Models { command } = cli.command {
        return models::run(command).await;
    }
    let settings = Settings::load(cli.config.as_deref(), cli.redis_url, cli.streams.as_deref())?;
    match cli.command {
        Command::Streams { command } => commands::streams::run(&settings, command).await,
        Command::Dlq { command } => commands::dlq::run(&settings, command).await,
        Command::Bench { command } => bench::run(&settings, command).await,
        Command::Up(args) => up::run(&settings, args).await,
        Command::Indicators(args) => indicators::run(&args),
        Command::Worker { command } => worker::run(&settings, command).await,
        Command::Ctl { command } => commands::ctl::run(&settings, command).await,
        Command::Edge(args) => edge::run(&settings, args).await,
        Command::Auth { .. }
        | Command::Data { .. }
        | Command::Backtest(_)
        | Command::Hyperopt(_)
        | Command::Models { .. }
        | Command::Tasks(_) => Ok(()),
    }
}

/// Connects to the configured Redis (required for this command).
pub(crate) async fn connect(settings: &Settings) -> anyhow::Result<Bus> {
    let url = settings
        .redis_url
        .as_deref()
        .context("no Redis given: pass --redis-url, set REDIS_URL, or set [redis] url in the config file")?;
    let bus = Bus::connect(url, settings.topology.clone())
        .await
        .with_context(|| format!("cannot connect to Redis at {}", tradeflow_bus::cluster::redact(url)))?;
    Ok(bus.with_replication(settings.redis_replication))
}
