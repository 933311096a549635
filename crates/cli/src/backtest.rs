//! `tradeflow backtest`: the live stages over candle files, in process, on the candles' clock
//! (crates/backtest). Same configuration files and flags as the workers; `--strategy` expands
//! to such files (it prints them with `--show-config`), so a preset is nothing a user could
//! not have written.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tradeflow_backtest::params::{BacktestParams, Built, Defaults};
use tradeflow_backtest::report::backtest_on;
use tradeflow_backtest::{AccountReport, BacktestConfig, Report, ReportOptions};
use tradeflow_core::market::Interval;
use tradeflow_ingest::timeline::Timeline;

#[derive(Args)]
pub struct BacktestArgs {
    /// `[SYMBOL=]FILE`, repeatable: candle files merged by bar time as `worker ingest
    /// --replay` merges them. Default: the bundled demo feed as BTCUSD.
    #[arg(long = "replay", value_name = "[SYMBOL=]FILE")]
    replays: Vec<String>,
    /// One candle file (the same as one --replay FILE).
    #[arg(long, value_name = "FILE", conflicts_with = "replays")]
    csv: Option<PathBuf>,
    /// A dataset besides the files: `SYMBOL:INTERVAL` or `SOURCE:SYMBOL:INTERVAL` (see
    /// `tradeflow data list`), repeatable; --from/--to apply as to files.
    #[arg(long = "dataset", value_name = "SYMBOL:INTERVAL")]
    datasets: Vec<String>,
    /// With --dataset: the data directory (datasets in <DATA_DIR>/datasets).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Interval of the files' bars.
    #[arg(long, default_value = "1h")]
    interval: Interval,
    /// `FROM:TO` intervals to build from the ingested ones, e.g. 1h:4h; repeatable.
    #[arg(long = "aggregate", value_name = "FROM:TO")]
    aggregates: Vec<String>,
    /// Inference models, comma-separated (as `worker inference --models`).
    #[arg(long, value_delimiter = ',', default_value = "technical")]
    models: Vec<String>,
    /// Inference configuration (`[rules]`, `[condition]`, `[[analyst]]`), as the workers'.
    /// LLM analysts are not called: their signals are `not analysed`.
    #[arg(long, value_name = "FILE")]
    llm_config: Option<PathBuf>,
    /// Ensemble profiles (TOML `[[profile]]`), as the workers'.
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Accounts (TOML `[[account]]`), as the workers'; every one runs on the paper book.
    #[arg(long, value_name = "FILE")]
    accounts: Option<PathBuf>,
    /// A preset instead of --models/--llm-config/--profiles/--accounts: `sma_cross`
    /// (backtesting.py's SMA crossover, long only, all in, next-open fills).
    #[arg(long, conflicts_with_all = ["llm_config", "profiles", "accounts"])]
    strategy: Option<String>,
    /// A preset's parameter, `NAME=VALUE`, repeatable (sma_cross: fast, slow).
    #[arg(long = "param", value_name = "NAME=VALUE", requires = "strategy")]
    params: Vec<String>,
    /// A preset's starting cash.
    #[arg(long, default_value_t = 10_000.0, requires = "strategy")]
    cash: f64,
    /// A preset's commission rate on each fill (0.001 = 0.1 %).
    #[arg(long, default_value_t = 0.0, requires = "strategy")]
    commission: f64,
    /// Print the configuration files a preset stands for, and exit.
    #[arg(long, requires = "strategy")]
    show_config: bool,
    /// Only bars opening at or after this time: `YYYY-MM-DD` (UTC midnight) or epoch ms. The
    /// indicators start cold there.
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    /// Only bars opening before this time: `YYYY-MM-DD` (UTC midnight) or epoch ms.
    #[arg(long, value_parser = parse_time)]
    to: Option<i64>,
    /// Stop at the first row that is not a candle (naming its line and field) instead of
    /// reporting it and going on.
    #[arg(long)]
    strict: bool,
    /// Print the whole report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write trades.csv, equity.csv, stats.json and report.html (charts, statistics, trades)
    /// per account under DIR/<account>/.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(args: &BacktestArgs) -> anyhow::Result<()> {
    let params = args.params()?;
    if args.show_config {
        let Some(p) = params.preset().map_err(problems)? else {
            bail!("--show-config needs --strategy");
        };
        println!(
            "# --models {}\n# --llm-config\n{}\n# --profiles\n{}\n# --accounts\n{}",
            p.models.join(","),
            p.llm_config,
            p.profiles,
            p.accounts
        );
        return Ok(());
    }
    let Built { config, options, .. } = params.build(&args.defaults()).map_err(problems)?;
    let started = std::time::Instant::now();
    // A run that takes more than a second shows its rows' progress on stderr.
    let timeline = Timeline::load(&config.feeds)?;
    let (from, to) = (config.from_ms.unwrap_or(i64::MIN), config.to_ms.unwrap_or(i64::MAX));
    let mut rows = crate::progress::Rows::new(timeline.iter().filter(|s| (from..to).contains(&s.time)).count());
    let report = backtest_on(&config, &timeline, &options, &mut rows)?;
    rows.finish();
    let elapsed = started.elapsed();
    // Every refused row on stderr, with its file and line, so that a bad file can be fixed.
    for r in &report.refused {
        eprintln!("refused: {r}");
    }
    if let Some(dir) = &args.out {
        write_out(dir, &report)?;
    }
    if args.json {
        // Written as it is encoded: the report of a long run is tens of megabytes (its equity
        // curve), which a string would hold twice.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        serde_json::to_writer(&mut out, &report).context("encoding the report")?;
        writeln!(out).and_then(|()| out.flush()).context("writing the report to stdout")?;
    } else {
        print_summary(&report, elapsed);
    }
    Ok(())
}

/// What a backtest's parameters leave to this installation: the bundled demo feed, the
/// workers' default profiles and paper balance.
pub(crate) fn defaults() -> Defaults {
    Defaults::standard(crate::config::demo_feed())
}

/// Every problem of a configuration, one per line.
pub(crate) fn problems(p: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!("{}", p.join("\n"))
}

/// `YYYY-MM-DD` (UTC midnight) or epoch milliseconds.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    tradeflow_backtest::params::parse_time(s)
}

fn print_summary(report: &Report, elapsed: std::time::Duration) {
    println!(
        "backtest: {} candles ({} rows refused), {} signals, {} decisions in {:.2} s",
        report.candles,
        report.refused.len(),
        report.signals,
        report.decisions,
        elapsed.as_secs_f64()
    );
    for n in &report.notes {
        println!("note: {n}");
    }
    let stat = |a: &AccountReport, key: &str| -> String {
        a.stats.as_ref().and_then(|s| serde_json::to_value(s).ok()).and_then(|v| v.get(key).cloned()).map_or(
            "null".into(),
            |v| match v {
                serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), |x| format!("{x:.2}")),
                other => other.to_string(),
            },
        )
    };
    println!(
        "{:<20} {:>14} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "account", "final balance", "return%", "maxDD%", "sharpe", "trades", "win%", "rejects"
    );
    for a in &report.accounts {
        println!(
            "{:<20} {:>14.2} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            a.id,
            a.final_balance,
            stat(a, "Return [%]"),
            stat(a, "Max. Drawdown [%]"),
            stat(a, "Sharpe Ratio"),
            a.trades.len(),
            stat(a, "Win Rate [%]"),
            a.rejection_count
        );
        if let Some(e) = &a.stats_error {
            println!("  {}: statistics not computed: {e}", a.id);
        }
    }
}

fn write_out(dir: &Path, report: &Report) -> anyhow::Result<()> {
    for a in &report.accounts {
        let d = dir.join(&a.id);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let mut trades = String::from(
            "entry_bar,exit_bar,entry_time_ms,exit_time_ms,side,entry_price,exit_price,size,pnl,commission,return_pct,duration_ms,exit_reason\n",
        );
        for t in &a.trades {
            let reason = serde_json::to_value(t.exit_reason).ok().and_then(|v| v.as_str().map(str::to_string));
            trades.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                t.entry_bar,
                t.exit_bar,
                t.entry_time_ms,
                t.exit_time_ms,
                if t.side == tradeflow_analytics::Side::Long { "long" } else { "short" },
                t.entry_price,
                t.exit_price,
                t.size,
                t.pnl,
                t.commission,
                t.return_pct,
                t.duration_ms,
                reason.unwrap_or_default()
            ));
        }
        write(&d.join("trades.csv"), &trades)?;
        let mut equity = String::from("bar,time_ms,equity,drawdown\n");
        for p in &a.equity {
            equity.push_str(&format!("{},{},{},{}\n", p.bar, p.time_ms, p.equity, p.drawdown));
        }
        write(&d.join("equity.csv"), &equity)?;
        let stats = serde_json::to_string_pretty(&a.stats).context("encoding the statistics")?;
        write(&d.join("stats.json"), &stats)?;
        write(&d.join("report.html"), &tradeflow_backtest::html::account_html(a, &report.bars, &report.notes))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// For `tradeflow hyperopt`, which takes the same input flags (it flattens [`BacktestArgs`]).
impl BacktestArgs {
    /// The configuration these flags stand for, its report options, and the text of the
    /// `--llm-config` (or the preset's) it came from.
    pub(crate) fn base(&self) -> anyhow::Result<(BacktestConfig, ReportOptions, Option<String>)> {
        let Built { config, options, llm_text } = self.params()?.build(&defaults()).map_err(problems)?;
        Ok((config, options, llm_text))
    }

    /// The flags as backtest parameters, with the configuration files read.
    pub(crate) fn params(&self) -> anyhow::Result<BacktestParams> {
        let read = |flag: &str, path: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
            path.as_ref()
                .map(|p| std::fs::read_to_string(p).with_context(|| format!("{flag}: cannot read {}", p.display())))
                .transpose()
        };
        let strategy = self.strategy.is_some();
        Ok(BacktestParams {
            replays: match &self.csv {
                Some(p) => vec![p.display().to_string()],
                None => self.replays.clone(),
            },
            dataset: self.datasets.clone(),
            interval: Some(self.interval.to_string()),
            aggregate: self.aggregates.clone(),
            models: if strategy { Vec::new() } else { self.models.clone() },
            llm_config: read("--llm-config", &self.llm_config)?,
            profiles: read("--profiles", &self.profiles)?,
            accounts: read("--accounts", &self.accounts)?,
            strategy: self.strategy.clone(),
            params: self.params.clone(),
            cash: strategy.then_some(self.cash),
            commission: strategy.then_some(self.commission),
            from: self.from.map(|t| t.to_string()),
            to: self.to.map(|t| t.to_string()),
            strict: self.strict,
        })
    }

    /// [`defaults`] with this command's datasets directory.
    pub(crate) fn defaults(&self) -> Defaults {
        Defaults { datasets_dir: self.data_dir.join("datasets"), ..defaults() }
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }

    pub(crate) fn out(&self) -> Option<&Path> {
        self.out.as_deref()
    }
}
