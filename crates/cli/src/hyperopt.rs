//! `tradeflow hyperopt`: a search over backtests (crates/backtest/src/hyperopt). Takes
//! `tradeflow backtest`'s input flags for the base configuration, a space file naming the
//! parameters to vary, and writes the winner as configuration files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use tradeflow_backtest::hyperopt::params::{HyperoptParams, Planned};
use tradeflow_backtest::hyperopt::{self, Method, Objective, Outcome, Progress, Split, Study};
use tradeflow_ingest::timeline::Timeline;

use crate::backtest::BacktestArgs;
use crate::progress::Display;

#[derive(Args)]
#[command(
    mut_arg("json", |a| a.help("Print the outcome (every trial, the best with their out-of-sample figures) as one JSON object")),
    mut_arg("out", |a| a.help("Write the best parameters as llm-config.toml, profiles.toml and accounts.toml, and the outcome as hyperopt.json, under DIR")),
    mut_arg("show_config", |a| a.hide(true)),
)]
pub struct HyperoptArgs {
    #[command(flatten)]
    input: BacktestArgs,
    /// The search space (TOML `[param]` entries; docs/hyperopt.md).
    #[arg(long, value_name = "FILE")]
    space: PathBuf,
    /// What is maximised: sharpe, sortino, calmar, return, return_over_drawdown.
    #[arg(long, default_value = "sharpe", value_parser = parse_objective)]
    objective: Objective,
    /// How trials are chosen: grid (every point), random, tpe.
    #[arg(long, default_value = "tpe", value_parser = parse_method)]
    method: Method,
    /// Number of trials (default: the whole grid, or 100).
    #[arg(long)]
    trials: Option<usize>,
    /// Seed of the random and TPE draws: the same seed gives the same trials.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials run at once (default: the machine's cores); results do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// K rolling folds: the bars cut into K + 1 parts, fold i in sample on part i and out of
    /// sample on part i + 1.
    #[arg(long, value_name = "K", conflicts_with = "test_fraction")]
    walk_forward: Option<usize>,
    /// The last F of the bars out of sample (0 < F < 1).
    #[arg(long, value_name = "F")]
    test_fraction: Option<f64>,
    /// How many of the best trials to show (and run out of sample).
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// The account whose statistics are scored (default: the first).
    #[arg(long, value_name = "ID")]
    account: Option<String>,
}

fn parse_objective(s: &str) -> Result<Objective, String> {
    Objective::parse(s).ok_or_else(|| format!("{s:?}: expected one of {}", Objective::NAMES))
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::parse(s).ok_or_else(|| format!("{s:?}: expected one of {}", Method::NAMES))
}

impl HyperoptArgs {
    /// The flags as study parameters, with the files read.
    fn params(&self) -> anyhow::Result<HyperoptParams> {
        let space = std::fs::read_to_string(&self.space)
            .with_context(|| format!("--space: cannot read {}", self.space.display()))?;
        Ok(HyperoptParams {
            backtest: self.input.params()?,
            space,
            objective: Some(self.objective.name().to_string()),
            method: Some(self.method.name().to_string()),
            trials: self.trials,
            seed: self.seed,
            jobs: self.jobs,
            walk_forward: self.walk_forward,
            test_fraction: self.test_fraction,
            top: Some(self.top),
            account: self.account.clone(),
        })
    }
}

pub fn run(args: &HyperoptArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Planned { study, llm_text } = args.params()?.plan(&args.input.defaults(), cores).map_err(|p| {
        // The command line's names for the parameters' fields.
        let p: Vec<String> = p
            .into_iter()
            .map(|e| match e.strip_prefix("space: ") {
                Some(rest) => format!("--space {}: {rest}", args.space.display()),
                None => e.strip_prefix("backtest.").map_or(e.clone(), str::to_string),
            })
            .collect();
        crate::backtest::problems(p)
    })?;
    let timeline = Timeline::load(&study.base.config.feeds)?;
    let (trials, jobs) = (study.trials, study.jobs);
    let started = Instant::now();
    let display = Display::new("hyperopt", "trials", trials as u64);
    let outcome = hyperopt::run(&study, &timeline, &|p: Progress| {
        let best = format!("best {}", p.best.map_or("-".to_string(), |b| format!("{b:.4}")));
        display.update(p.phase, p.done as u64, p.total as u64, &best);
    })?;
    display.finish();
    let elapsed = started.elapsed();
    eprintln!(
        "hyperopt: {} trials in {:.2} s ({:.2} trials/s, {jobs} jobs)",
        outcome.trials.len(),
        elapsed.as_secs_f64(),
        outcome.trials.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if let Some(dir) = args.input.out() {
        write_out(dir, &study, &outcome, llm_text.as_deref())?;
    }
    if args.input.json() {
        println!("{}", serde_json::to_string(&outcome).context("encoding the outcome")?);
    } else {
        print_table(&outcome);
    }
    if outcome.best().is_none() {
        bail!("no trial has a {} figure: see the errors above", args.objective.name());
    }
    Ok(())
}

fn figure(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| format!("{x:.4}"))
}

/// A parameter value for the table: floats to 6 decimals (--json has them whole).
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => n
            .as_f64()
            .map_or(n.to_string(), |x| format!("{x:.6}").trim_end_matches('0').trim_end_matches('.').to_string()),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(outcome: &Outcome) {
    let with_out = !outcome.folds.out_of_sample.is_empty();
    println!(
        "hyperopt: method {}, objective {}, account {}, seed {}, {} trials{}",
        serde_json::to_value(outcome.method).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        outcome.objective.name(),
        outcome.account,
        outcome.seed,
        outcome.trials.len(),
        match outcome.split {
            Split::Whole => String::new(),
            Split::TestFraction(f) => format!(", last {f} of the bars out of sample"),
            Split::WalkForward(k) => format!(", walk-forward over {k} folds"),
        }
    );
    let names: Vec<&String> = outcome.top.first().map(|r| r.trial.params.keys().collect()).unwrap_or_default();
    let mut header = format!("{:>4} {:>6} {:>12}", "rank", "trial", "in sample");
    if with_out {
        header.push_str(&format!(" {:>14}", "out of sample"));
    }
    for n in &names {
        header.push_str(&format!("  {n}"));
    }
    println!("{header}");
    for r in &outcome.top {
        let mut line = format!("{:>4} {:>6} {:>12}", r.rank, r.trial.number, figure(r.trial.in_sample));
        if with_out {
            line.push_str(&format!(" {:>14}", figure(r.out_of_sample)));
        }
        for n in &names {
            let v = r.trial.params.get(*n).map_or(String::new(), shown);
            line.push_str(&format!("  {v:>width$}", width = n.len()));
        }
        println!("{line}");
        if let Some(e) = &r.trial.error {
            println!("       {e}");
        }
    }
    let failed = outcome.trials.iter().filter(|t| t.error.is_some()).count();
    if failed > 0 {
        println!("{failed} trials without a figure (invalid configuration or failed backtest); --json lists them");
    }
}

fn write_out(dir: &Path, study: &Study, outcome: &Outcome, llm_text: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
    };
    write("hyperopt.json", &serde_json::to_string_pretty(outcome).context("encoding the outcome")?)?;
    let Some(best) = outcome.best() else { return Ok(()) };
    let names: Vec<String> = study.space.params.iter().map(|p| p.name.clone()).collect();
    let values: Vec<serde_json::Value> =
        names.iter().map(|n| best.trial.params.get(n).cloned().unwrap_or(serde_json::Value::Null)).collect();
    let (config, _) = study
        .base
        .apply(&study.space, &values)
        .map_err(|problems| anyhow::anyhow!("the best trial's configuration: {}", problems.join("; ")))?;
    let files = hyperopt::files::config_files(&config, llm_text).map_err(anyhow::Error::msg)?;
    write("llm-config.toml", &files.llm_config)?;
    write("profiles.toml", &files.profiles)?;
    write("accounts.toml", &files.accounts)?;
    let models: Vec<&str> = config.inference.models.iter().map(|m| m.name()).collect();
    eprintln!(
        "best parameters (trial {}) written: tradeflow backtest --models {} --llm-config {d}/llm-config.toml \
         --profiles {d}/profiles.toml --accounts {d}/accounts.toml",
        best.trial.number,
        models.join(","),
        d = dir.display()
    );
    Ok(())
}
