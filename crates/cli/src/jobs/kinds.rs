//! What each kind of job runs: the same library calls as its command (`tradeflow backtest`,
//! `tradeflow hyperopt`, `tradeflow data download`), on the job's threads, stopping when asked.
//! Nothing here is specific to the bus: the handler drives these functions.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tradeflow_backtest::hyperopt::params::{HyperoptParams, Planned};
use tradeflow_backtest::hyperopt::{self, HyperoptError};
use tradeflow_backtest::params::{BacktestParams, Built, Defaults};
use tradeflow_backtest::report::backtest_on;
use tradeflow_backtest::sink::CHECK_EVERY;
use tradeflow_backtest::{BacktestError, Engine, Sink};
use tradeflow_core::job::JobKind;
use tradeflow_datasets::{BinanceConfig, Datasets, DownloadRequest};
use tradeflow_ingest::timeline::{Row, Timeline};

use super::progress::Reporter;

/// What a finished job leaves.
#[derive(Debug)]
pub struct Output {
    /// A few figures for listings and the `task_completed` event.
    pub summary: serde_json::Value,
    /// The whole result (JSON): a backtest's report, a hyperopt's outcome.
    pub result: String,
    /// A backtest's HTML report (its first account's).
    pub report_html: Option<String>,
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Parameters that can never run: the job fails at once, its request to the DLQ.
    #[error("invalid parameters: {0}")]
    Invalid(String),
    /// This run failed; another attempt may do better (a file briefly missing, a full disk).
    #[error("{0}")]
    Failed(String),
    /// Stopped on request (cancel, timeout, shutdown); the caller knows why.
    #[error("stopped")]
    Stopped,
}

/// What a job may use.
pub struct Context<'a> {
    pub stop: &'a AtomicBool,
    pub progress: Reporter,
    /// Threads for work that parallelises (hyperopt's trials).
    pub threads: usize,
    /// The installation's demo feed, default profiles and datasets directory.
    pub defaults: &'a Defaults,
    /// Binance's REST client settings (downloads).
    pub binance: &'a BinanceConfig,
    /// The worker's runtime, for the work that is async (a download's requests).
    pub runtime: tokio::runtime::Handle,
    /// The job store (the model registry of `train` jobs).
    pub store: &'a tradeflow_audit::AuditStore,
    /// Who submitted the job (a trained version's `created_by`).
    pub actor: &'a str,
}

/// Runs a job of `kind` with `params` (JSON).
pub fn run(kind: JobKind, params: &str, ctx: &Context<'_>) -> Result<Output, Failure> {
    let json: serde_json::Value =
        serde_json::from_str(params).map_err(|e| Failure::Invalid(format!("params are not JSON: {e}")))?;
    match kind {
        JobKind::Backtest => backtest(&json, ctx),
        JobKind::Hyperopt => study(&json, ctx),
        JobKind::Download => fetch(&json, ctx),
        JobKind::Train => train(&json, ctx),
    }
}

/// Counts rows for the progress report and says when to stop.
struct JobSink<'a> {
    ctx: &'a Context<'a>,
    done: u64,
    total: u64,
}

impl Sink for JobSink<'_> {
    fn after_row(&mut self, _time: i64, _feed: usize, _row: &Row, _engine: &Engine) {
        self.done += 1;
        if self.done.is_multiple_of(CHECK_EVERY as u64) || self.done == self.total {
            self.ctx.progress.report("candles", self.done, self.total);
        }
    }

    fn cancelled(&self) -> bool {
        self.ctx.stop.load(Ordering::Relaxed)
    }
}

fn backtest(json: &serde_json::Value, ctx: &Context<'_>) -> Result<Output, Failure> {
    let params = BacktestParams::from_api(json).map_err(|p| Failure::Invalid(p.join("; ")))?;
    let Built { config, options, .. } = params.build(ctx.defaults).map_err(|p| Failure::Invalid(p.join("; ")))?;
    let timeline = Timeline::load(&config.feeds).map_err(|e| Failure::Failed(e.to_string()))?;
    let (from, to) = (config.from_ms.unwrap_or(i64::MIN), config.to_ms.unwrap_or(i64::MAX));
    let total = timeline.iter().filter(|s| (from..to).contains(&s.time)).count() as u64;
    let mut sink = JobSink { ctx, done: 0, total };
    let report = match backtest_on(&config, &timeline, &options, &mut sink) {
        Ok(r) => r,
        Err(BacktestError::Cancelled) => return Err(Failure::Stopped),
        // The same configuration fails the same way every time.
        Err(e @ (BacktestError::Config(_) | BacktestError::Refused(_))) => return Err(Failure::Invalid(e.to_string())),
        // No candle in the range: a dataset may get them (a download still running), so this
        // is retried like any failure, up to the kind's max_attempts.
        Err(e) => return Err(Failure::Failed(e.to_string())),
    };
    let accounts: Vec<serde_json::Value> = report
        .accounts
        .iter()
        .map(|a| {
            let stat =
                |k: &str| a.stats.as_ref().and_then(|s| serde_json::to_value(s).ok()).and_then(|v| v.get(k).cloned());
            json!({
                "id": a.id,
                "return_pct": stat("Return [%]"),
                "sharpe": stat("Sharpe Ratio"),
                "max_drawdown_pct": stat("Max. Drawdown [%]"),
                "trades": a.trades.len(),
            })
        })
        .collect();
    let summary = json!({
        "candles": report.candles,
        "refused": report.refused.len(),
        "signals": report.signals,
        "decisions": report.decisions,
        "accounts": accounts,
    });
    let report_html =
        report.accounts.first().map(|a| tradeflow_backtest::html::account_html(a, &report.bars, &report.notes));
    let result = serde_json::to_string(&report).map_err(|e| Failure::Failed(format!("encoding the report: {e}")))?;
    Ok(Output { summary, result, report_html })
}

fn study(json: &serde_json::Value, ctx: &Context<'_>) -> Result<Output, Failure> {
    let params = HyperoptParams::from_api(json).map_err(|p| Failure::Invalid(p.join("; ")))?;
    let Planned { study, .. } = params.plan(ctx.defaults, ctx.threads).map_err(|p| Failure::Invalid(p.join("; ")))?;
    let timeline = Timeline::load(&study.base.config.feeds).map_err(|e| Failure::Failed(e.to_string()))?;
    let report = |p: hyperopt::Progress| ctx.progress.report(p.phase, p.done as u64, p.total as u64);
    let outcome = match hyperopt::run_until(&study, &timeline, &report, ctx.stop) {
        Ok(o) => o,
        Err(HyperoptError::Cancelled) => return Err(Failure::Stopped),
        Err(e @ HyperoptError::Study(_)) => return Err(Failure::Invalid(e.to_string())),
        Err(e) => return Err(Failure::Failed(e.to_string())),
    };
    let best = outcome.best().map(|b| {
        json!({
            "number": b.trial.number,
            "params": b.trial.params,
            "in_sample": b.trial.in_sample,
            "out_of_sample": b.out_of_sample,
        })
    });
    let summary = json!({
        "trials": outcome.trials.len(),
        "objective": study.objective.name(),
        "best": best,
    });
    let result = serde_json::to_string(&outcome).map_err(|e| Failure::Failed(format!("encoding the outcome: {e}")))?;
    Ok(Output { summary, result, report_html: None })
}

/// A download of Binance spot klines into the dataset of its symbol and interval: the same
/// call as `tradeflow data download`, resumable, stopped between pages when asked.
fn fetch(json: &serde_json::Value, ctx: &Context<'_>) -> Result<Output, Failure> {
    let request = DownloadRequest::from_api(json).map_err(|p| Failure::Invalid(p.join("; ")))?;
    let datasets = Datasets::new(ctx.defaults.datasets_dir.clone());
    let cancel = tokio_util::sync::CancellationToken::new();
    let run = tradeflow_datasets::download(
        &datasets,
        ctx.binance,
        &request,
        |p| ctx.progress.report("pages", (p.fraction * 1e6) as u64, 1_000_000),
        &cancel,
    );
    // The stop flag is the job's; the download listens to a token: one follows the other.
    let summary = ctx.runtime.block_on(async {
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                    if ctx.stop.load(Ordering::Relaxed) {
                        cancel.cancel();
                    }
                }
            }
        }
    });
    let summary = match summary {
        Ok(s) if s.cancelled => return Err(Failure::Stopped),
        Ok(s) => s,
        Err(e) if e.is_bad_input() => return Err(Failure::Invalid(e.to_string())),
        Err(e) => return Err(Failure::Failed(e.to_string())),
    };
    let summary_json = json!({
        "dataset": summary.spec,
        "rows_added": summary.rows_added,
        "rows_total": summary.rows_total,
        "pages": summary.pages,
        "refused": summary.refused.len(),
        "gaps": summary.gaps.len(),
        "rows_per_second": summary.rows_per_second,
    });
    let result = serde_json::to_string(&summary).map_err(|e| Failure::Failed(format!("encoding the summary: {e}")))?;
    Ok(Output { summary: summary_json, result, report_html: None })
}

/// Trains a learned model as `tradeflow models train` does, over the demo feed or a dataset,
/// or retrains one as `tradeflow models retrain` does, into the registry (the gate's verdict in the summary; deploying stays an admin's decision).
fn train(json: &serde_json::Value, ctx: &Context<'_>) -> Result<Output, Failure> {
    let stopped = || ctx.stop.load(Ordering::Relaxed);
    let job = crate::models::train::train_job(json, ctx.defaults, ctx.actor, ctx.store, &ctx.runtime, &stopped)
        .map_err(|e| match e {
            Ok(invalid) => Failure::Invalid(invalid),
            Err(stop) if stop == crate::models::train::STOPPED => Failure::Stopped,
            Err(failed) => Failure::Failed(failed),
        })?;
    let result =
        serde_json::to_string(&job.record).map_err(|e| Failure::Failed(format!("encoding the record: {e}")))?;
    Ok(Output { summary: job.summary, result, report_html: None })
}
