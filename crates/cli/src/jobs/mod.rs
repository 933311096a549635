//! `tradeflow worker jobs`: runs backtest, hyperopt, download and train jobs from
//! `jobs.requests` (see [`handler`]); submitted through the edge (`POST /api/v1/tasks/{kind}`)
//! or `tradeflow tasks submit`, and the retrains of `[models.retrain]`
//! ([`crate::models::schedule`]).

pub mod config;
pub mod handler;
pub mod kinds;
pub mod progress;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use prometheus::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use tradeflow_audit::AuditStore;
use tradeflow_audit::query::jobs::JobFilter;
use tradeflow_bus::{Bus, BusMetrics, Consumer, Producer};
use tradeflow_core::control::ControlState;

use self::config::JobsConfig;
use self::handler::{GROUP, JobMetrics, JobsFactory, STREAM, Shared};

#[derive(Args)]
pub struct JobsArgs {
    /// `sqlite://FILE` or `postgres://user:password@host/db`: where job states and results live.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/tradeflow.db")]
    pub database_url: String,
    /// Threads of a job's parallel work (hyperopt's trials), default: the machine's cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// The data directory: datasets under <DATA_DIR>/datasets (backtests on them, downloads
    /// into them).
    #[arg(long, default_value = "data")]
    pub data_dir: std::path::PathBuf,
    /// Binance REST base URL for download jobs (testnets, proxies).
    #[arg(long, default_value = "https://api.binance.com")]
    pub binance_rest_url: String,
    /// Fleet member name (default: service@host:pid:random).
    #[arg(long)]
    pub member_name: Option<String>,
    #[command(flatten)]
    pub common: crate::worker::Common,
}

/// Where and how a jobs worker runs its jobs.
pub struct Setup {
    pub config: JobsConfig,
    pub threads: Option<usize>,
    pub member_name: Option<String>,
    pub data_dir: std::path::PathBuf,
    pub binance_rest_url: String,
    /// `[models.retrain]`: the retrain schedule this worker keeps.
    pub retrain: Option<crate::models::schedule::RetrainSchedule>,
}

impl Setup {
    /// `tradeflow up`'s: its data directory, Binance's public API.
    pub fn for_up(config: JobsConfig, data_dir: &std::path::Path) -> Setup {
        Setup {
            retrain: None,
            config,
            threads: None,
            member_name: None,
            data_dir: data_dir.to_path_buf(),
            binance_rest_url: "https://api.binance.com".into(),
        }
    }
}

/// Runs a jobs worker until `shutdown`.
pub async fn run(
    bus: &Bus,
    registry: &Registry,
    bus_metrics: &BusMetrics,
    store: Arc<AuditStore>,
    setup: Setup,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Setup { config, threads, member_name, data_dir, binance_rest_url, retrain } = setup;
    let defaults =
        tradeflow_backtest::params::Defaults { datasets_dir: data_dir.join("datasets"), ..crate::backtest::defaults() };
    let mut binance = tradeflow_datasets::BinanceConfig::new([]);
    binance.rest_url = binance_rest_url;
    let metrics = JobMetrics::register(registry)?;
    let control = crate::stages::follow_control(bus, shutdown.clone());
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let member = member_name.unwrap_or_else(|| tradeflow_bus::consumer::default_member_name("jobs"));
    let producer = Producer::new(bus.clone(), "jobs").with_metrics(bus_metrics.clone());
    let schedule = retrain.map(|r| {
        eprintln!(
            "jobs: retraining deployed learned models every {} day(s), checked every {} s",
            r.every_days, r.check_s
        );
        tokio::spawn(crate::models::schedule::run(store.clone(), producer.clone(), r, shutdown.clone()))
    });
    let shared = Shared {
        store: store.clone(),
        producer,
        config,
        control: control.clone(),
        metrics: metrics.clone(),
        worker: member.clone(),
        threads,
        defaults,
        binance,
        shutdown: shutdown.clone(),
    };
    let consumer = Consumer::new(bus.clone(), STREAM, GROUP, "jobs", JobsFactory(Arc::new(shared)))?
        .with_metrics(bus_metrics.clone())
        .with_member_name(member.clone());
    eprintln!(
        "jobs: worker {member}, {threads} thread(s) per job, datasets in {}, store {}",
        data_dir.join("datasets").display(),
        store.url()
    );
    let cancels = tokio::spawn(cancel_queued(store.clone(), control, shutdown.clone()));
    let gauge = tokio::spawn(count_queued(store, metrics, shutdown.clone()));
    consumer.run(shutdown.clone()).await?;
    shutdown.cancel();
    let _ = cancels.await;
    let _ = gauge.await;
    if let Some(s) = schedule {
        let _ = s.await;
    }
    Ok(())
}

/// Marks `cancelled` the queued jobs a `cancel_task` command names (the running ones are
/// stopped by the worker running them). Every jobs worker does it; the update is conditional,
/// so doing it twice changes nothing. A worker started later folds the command stream from its
/// start, so no cancel is missed while no worker runs.
async fn cancel_queued(store: Arc<AuditStore>, mut control: watch::Receiver<ControlState>, stop: CancellationToken) {
    let mut done: HashSet<(String, i64)> = HashSet::new();
    loop {
        let pending: Vec<(String, i64)> =
            control.borrow_and_update().cancelled_tasks.iter().filter(|t| !done.contains(*t)).cloned().collect();
        for (task, issued_at) in pending {
            match store.cancel_queued_job(&task, issued_at, tradeflow_core::time::now_ms()).await {
                Ok(_) => {
                    done.insert((task, issued_at));
                }
                Err(e) => warn!(error = %e, task, "cancelling a queued job failed; will retry"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = control.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Keeps `tradeflow_jobs_queued` up to date from the store.
async fn count_queued(store: Arc<AuditStore>, metrics: JobMetrics, stop: CancellationToken) {
    loop {
        match store.jobs(JobFilter { state: Some("queued"), ..Default::default() }, 0, 0).await {
            Ok((_, n)) => metrics.queued.set(n),
            Err(e) => warn!(error = %e, "counting queued jobs failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Opens the store for a jobs worker.
pub async fn store(url: &str) -> anyhow::Result<Arc<AuditStore>> {
    crate::stages::audit_store(url).await.context("the job store")
}
