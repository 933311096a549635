//! `tradeflow backtest`: the live stages over candle files, in process, on the candles' clock
//! (crates/backtest). Same configuration files and flags as the workers; `--strategy` expands
//! to such files (it prints them with `--show-config`), so a preset is nothing a user could
//! not have written.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tradeflow_backtest::report::backtest_on;
use tradeflow_backtest::{AccountReport, BacktestConfig, Report, ReportOptions};
use tradeflow_core::market::Interval;
use tradeflow_ensemble::Profile;
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_inference::llm::LlmConfig;
use tradeflow_inference::stage::StageConfig;
use tradeflow_ingest::timeline::Timeline;
use tradeflow_risk::{AccountConfig, parse_accounts};

use crate::worker::{feed, load_profiles, pair};

#[derive(Args)]
pub struct BacktestArgs {
    /// `[SYMBOL=]FILE`, repeatable: candle files merged by bar time as `worker ingest
    /// --replay` merges them. Default: the bundled demo feed as BTCUSD.
    #[arg(long = "replay", value_name = "[SYMBOL=]FILE")]
    replays: Vec<String>,
    /// One candle file (the same as one --replay FILE).
    #[arg(long, value_name = "FILE", conflicts_with = "replays")]
    csv: Option<PathBuf>,
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

/// The configuration files a preset stands for.
struct Preset {
    llm_config: String,
    profiles: String,
    accounts: String,
    models: Vec<String>,
    first_trading_bar: usize,
}

const STRATEGIES: &str = "sma_cross";

fn preset(name: &str, params: &[String], cash: f64, commission: f64) -> anyhow::Result<Preset> {
    let mut problems = Vec::new();
    if name != "sma_cross" {
        bail!("--strategy {name:?}: unknown; expected one of {STRATEGIES}");
    }
    let (mut fast, mut slow) = (10u32, 20u32);
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            problems.push(format!("--param {p:?}: expected NAME=VALUE"));
            continue;
        };
        let slot = match k.trim() {
            "fast" => &mut fast,
            "slow" => &mut slow,
            other => {
                problems.push(format!("--param {other:?}: unknown for sma_cross; expected one of fast, slow"));
                continue;
            }
        };
        match v.trim().parse::<u32>() {
            Ok(n) => *slot = n,
            Err(_) => problems.push(format!("--param {k}: expected a whole number, got {v:?}")),
        }
    }
    if !(cash.is_finite() && cash > 0.0) {
        problems.push(format!("--cash: must be a positive number, got {cash}"));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(Preset {
        llm_config: format!("[rules.sma_cross]\nfast = {fast}\nslow = {slow}\n"),
        profiles: "[[profile]]\nname = \"sma_cross\"\nmodels = { sma_cross = 1.0 }\nmethod = \"weighted_vote\"\n"
            .into(),
        // backtesting.py's conventions: all in, in 1e-8 units, at the next bar's open, the
        // commission on each fill, no slippage, long only; no risk limit that it does not have.
        accounts: format!(
            "[[account]]\nid = \"sma_cross\"\nprofile = \"sma_cross\"\nstarting_balance = {cash}\nleverage = 1.0\n\
             allow_short = false\nsizing = {{ method = \"all_in\" }}\n\
             paper = {{ taker_fee = {commission}, maker_fee = {commission}, slippage_bps = 0.0, \
             maintenance_margin_rate = 0.0, fill_at = \"next_open\", lot_step = 1e-8 }}\n\
             [account.risk]\nmax_open_positions = 1\nmax_position_pct_of_equity = 1.0\nmax_leverage = 1.0\n\
             daily_loss_limit = 1.0\nmax_drawdown = 1.0\ncooldown_after_losses = 0\nmin_notional = 0.0\n"
        ),
        models: vec!["sma_cross".into()],
        first_trading_bar: (slow as usize).saturating_sub(1),
    })
}

pub fn run(args: &BacktestArgs) -> anyhow::Result<()> {
    let preset = match &args.strategy {
        Some(name) => Some(preset(name, &args.params, args.cash, args.commission)?),
        None => None,
    };
    if let (Some(p), true) = (&preset, args.show_config) {
        println!(
            "# --models {}\n# --llm-config\n{}\n# --profiles\n{}\n# --accounts\n{}",
            p.models.join(","),
            p.llm_config,
            p.profiles,
            p.accounts
        );
        return Ok(());
    }
    let config = config(args, preset.as_ref())?;
    let options = ReportOptions { first_trading_bar: preset.as_ref().map_or(0, |p| p.first_trading_bar) };
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

fn config(args: &BacktestArgs, preset: Option<&Preset>) -> anyhow::Result<BacktestConfig> {
    let replays: Vec<String> = match &args.csv {
        Some(p) => vec![p.display().to_string()],
        None if args.replays.is_empty() => vec![format!("BTCUSD={}", crate::config::demo_feed().display())],
        None => args.replays.clone(),
    };
    let feeds = replays.iter().map(|r| feed(r, args.interval)).collect::<anyhow::Result<Vec<_>>>()?;
    let aggregate = args.aggregates.iter().map(|a| pair(a)).collect::<anyhow::Result<Vec<_>>>()?;
    let models = preset.map_or(&args.models, |p| &p.models);
    let llm = match (preset, &args.llm_config) {
        (Some(p), _) => Some(parsed_llm(&p.llm_config, "--strategy")?),
        (None, Some(path)) => Some(
            LlmConfig::load(path)
                .map_err(|problems| anyhow::anyhow!("--llm-config {}:\n  {}", path.display(), problems.join("\n  ")))?,
        ),
        (None, None) => None,
    };
    let inference = rule_config(models, llm.as_ref())?;
    let analysts = llm.map(|l| l.analysts.into_iter().map(|a| a.name).collect()).unwrap_or_default();
    let profiles: Vec<Profile> = match preset {
        Some(p) => parse_profiles(&p.profiles).map_err(|e| anyhow::anyhow!("--strategy profiles: {}", e.join("; ")))?,
        None => load_profiles(args.profiles.as_deref())?,
    };
    let accounts: Vec<AccountConfig> = match preset {
        Some(p) => {
            let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
            parse_accounts(&p.accounts, &names).map_err(|e| anyhow::anyhow!("--strategy accounts: {}", e.join("; ")))?
        }
        None => crate::stages::load_accounts(args.accounts.as_deref(), &profiles)?,
    };
    if let (Some(f), Some(t)) = (args.from, args.to)
        && f >= t
    {
        bail!("--from {f} is not before --to {t}: the date range is empty");
    }
    Ok(BacktestConfig {
        feeds,
        aggregate,
        inference,
        analysts,
        profiles,
        accounts,
        strict: args.strict,
        from_ms: args.from,
        to_ms: args.to,
    })
}

/// `YYYY-MM-DD` (UTC midnight) or epoch milliseconds.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{s:?}: expected YYYY-MM-DD (UTC) or epoch milliseconds");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (y, m, d) = (
        y.parse::<i64>().map_err(|_| bad())?,
        m.parse::<u32>().map_err(|_| bad())?,
        d.parse::<u32>().map_err(|_| bad())?,
    );
    let days = tradeflow_core::time::days_from_civil(y, m, d);
    // A day the month does not have (2018-02-30) comes back as another date.
    if !(1..=12).contains(&m) || tradeflow_core::time::civil_from_days(days) != (y, m, d) {
        return Err(bad());
    }
    Ok(days * 86_400_000)
}

fn parsed_llm(text: &str, what: &str) -> anyhow::Result<LlmConfig> {
    LlmConfig::parse(text, &|_| None).map_err(|problems| anyhow::anyhow!("{what}: {}", problems.join("; ")))
}

/// The rule models of `models` with the `[rules]` and `[condition]` of `llm`, as the inference
/// worker builds them (its analysts aside).
pub(crate) fn rule_config(models: &[String], llm: Option<&LlmConfig>) -> anyhow::Result<StageConfig> {
    Ok(tradeflow_inference::engine::rule_config(models, llm)?)
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
        let preset = match &self.strategy {
            Some(name) => Some(preset(name, &self.params, self.cash, self.commission)?),
            None => None,
        };
        let config = config(self, preset.as_ref())?;
        let options = ReportOptions { first_trading_bar: preset.as_ref().map_or(0, |p| p.first_trading_bar) };
        let llm_text = match (&preset, &self.llm_config) {
            (Some(p), _) => Some(p.llm_config.clone()),
            (None, Some(path)) => {
                Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)
            }
            (None, None) => None,
        };
        Ok((config, options, llm_text))
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }

    pub(crate) fn out(&self) -> Option<&Path> {
        self.out.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_refuse_unknown_names_and_bad_parameters_all_at_once() {
        let e = preset("rsi_magic", &[], 1.0, 0.0).err().unwrap().to_string();
        assert!(e.contains("sma_cross"), "{e}");
        let e = preset("sma_cross", &["fast=x".into(), "speed=3".into(), "slow".into()], -1.0, 0.0)
            .err()
            .unwrap()
            .to_string();
        for part in ["--param fast", "\"speed\"", "fast, slow", "NAME=VALUE", "--cash"] {
            assert!(e.contains(part), "{part} missing from {e}");
        }
    }

    #[test]
    fn times_are_dates_or_milliseconds() {
        assert_eq!(parse_time("1970-01-01"), Ok(0));
        assert_eq!(parse_time("2017-07-01"), Ok(1_498_867_200_000));
        assert_eq!(parse_time("2020-03-01"), Ok(1_583_020_800_000));
        assert_eq!(parse_time("1499079600000"), Ok(1_499_079_600_000));
        for bad in ["2017-13-01", "2018-02-30", "2017-00-10", "2017/07/01", "yesterday", "2017-07"] {
            assert!(parse_time(bad).unwrap_err().contains("YYYY-MM-DD"), "{bad}");
        }
    }

    #[test]
    fn the_sma_cross_preset_is_valid_configuration() {
        let p = preset("sma_cross", &["fast=5".into(), "slow=30".into()], 5000.0, 0.001).unwrap();
        let llm = parsed_llm(&p.llm_config, "preset").unwrap();
        assert_eq!((llm.rules.sma_cross.fast, llm.rules.sma_cross.slow), (5, 30));
        let profiles = parse_profiles(&p.profiles).unwrap();
        let accounts = parse_accounts(&p.accounts, &["sma_cross"]).unwrap();
        assert_eq!((profiles.len(), accounts.len(), p.first_trading_bar), (1, 1, 29));
        assert_eq!(accounts[0].paper.taker_fee, 0.001);
    }
}
