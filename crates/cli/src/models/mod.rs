//! `tradeflow models`: train learned models, list and show their versions, deploy one past
//! the gate (or forced, audited), roll back. Offline: the registry is the SQL store
//! (`DATABASE_URL`); the inference workers serving `ml:NAME` read it and pick up a deploy by
//! themselves ([`serve`]).

pub(crate) mod evaluate;
pub(crate) mod registry;
pub mod schedule;
pub(crate) mod serve;
pub(crate) mod train;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tradeflow_core::market::Interval;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Train a new version of a model (state `trained`) and measure it; prints the gate's verdict.
    Train(Box<TrainArgs>),
    /// Every model's versions (or one model's), with state and test accuracy.
    List {
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One version's parameters, figures and gate verdict (JSON); the deployed one by default.
    Show {
        name: String,
        version: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Deploy a version: it must pass its gate, unless --force (audited).
    Deploy(DeployArgs),
    /// Train a new version with the deployed version's settings (the latest's when none is
    /// deployed), on the same source up to its latest bar; prints the same gate's verdict.
    Retrain {
        name: String,
        #[arg(long, default_value = "cli")]
        actor: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Deploy again the version deployed before the current one.
    Rollback {
        name: String,
        #[arg(long, default_value = "cli")]
        actor: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The SQL store holding the registry (the audit store).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/tradeflow.db")]
    pub database_url: String,
}

#[derive(Args)]
pub struct DeployArgs {
    pub name: String,
    pub version: i64,
    /// Deploy even though the gate refuses; recorded in audit_log with the gate's figures.
    #[arg(long)]
    pub force: bool,
    /// Why (kept in the audit record of a forced deploy).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who deploys (the audit record's actor).
    #[arg(long, default_value = "cli")]
    pub actor: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct TrainArgs {
    /// The model's name (`ml:NAME` in --models and profiles): letters, digits, _ . -
    #[arg(long)]
    pub name: String,
    /// `logistic` or `gbt`.
    #[arg(long)]
    pub family: String,
    /// A candle file (timestamp, open, high, low, close, volume).
    #[arg(long, value_name = "FILE", required_unless_present = "dataset", conflicts_with = "dataset")]
    pub csv: Option<PathBuf>,
    /// A dataset of `tradeflow data` (Parquet): `SYMBOL:INTERVAL` or `SOURCE:SYMBOL:INTERVAL`,
    /// instead of --csv; its symbol and interval are the dataset's.
    #[arg(long, value_name = "SYMBOL:INTERVAL")]
    pub dataset: Option<String>,
    /// With --dataset: the data directory (datasets in <DATA_DIR>/datasets).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// The series' symbol (--csv; default: the file stem in upper case).
    #[arg(long, conflicts_with = "dataset")]
    pub symbol: Option<String>,
    /// The series' interval (--csv; default 1h; with --dataset, the dataset's).
    #[arg(long)]
    pub interval: Option<Interval>,
    /// Only bars opening at or after this time (`YYYY-MM-DD` UTC or epoch ms).
    #[arg(long, value_parser = crate::backtest::parse_time)]
    pub from: Option<i64>,
    /// Only bars opening before this time.
    #[arg(long, value_parser = crate::backtest::parse_time)]
    pub to: Option<i64>,
    /// Bars ahead of the labels' forward return.
    #[arg(long, default_value_t = 1)]
    pub horizon: usize,
    /// The forward return beyond which a bar is `long` (above) or `short` (below -T).
    #[arg(long, default_value_t = 0.0)]
    pub threshold: f64,
    /// `ternary` (long / hold / short) or `binary` (up / down).
    #[arg(long, default_value = "binary")]
    pub labels: String,
    /// A learner parameter `k=v`, repeatable (logistic: alpha, max_iterations,
    /// gradient_tolerance; gbt: iterations, learning_rate, max_depth, min_leaf_weight, l2, nbins).
    #[arg(long = "params", value_name = "K=V")]
    pub params: Vec<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Shares of the usable rows for training and validation (the rest is the test window).
    #[arg(long, default_value_t = 0.6)]
    pub train_share: f64,
    #[arg(long, default_value_t = 0.2)]
    pub validation_share: f64,
    /// Also walk forward with K folds (the usable rows in K + 1 blocks; fold k trains on the
    /// blocks before block k, tests on it); 0: no.
    #[arg(long, default_value_t = 0)]
    pub folds: usize,
    /// The gate: the least test accuracy a deploy needs.
    #[arg(long, default_value_t = 0.60)]
    pub min_accuracy: f64,
    /// The gate without its Sharpe part (the test window's Sharpe at least technical's).
    #[arg(long)]
    pub no_sharpe_gate: bool,
    /// Skip the backtests of the test window (no trading figures; the Sharpe part then fails).
    #[arg(long)]
    pub no_trading_eval: bool,
    /// Who trains (the version's created_by).
    #[arg(long, default_value = "cli")]
    pub actor: String,
    /// Print the version's record as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::Train(args) => train::run(&args).await,
        ModelsCommand::List { name, store } => registry::list(&store, name.as_deref()).await,
        ModelsCommand::Show { name, version, store } => registry::show(&store, &name, version).await,
        ModelsCommand::Deploy(args) => registry::deploy(&args).await,
        ModelsCommand::Rollback { name, actor, store } => registry::rollback(&store, &name, &actor).await,
        ModelsCommand::Retrain { name, actor, json, store } => train::retrain(&store, &name, &actor, json).await,
    }
}
