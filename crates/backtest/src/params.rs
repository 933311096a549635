//! A backtest's parameters as data: what `tradeflow backtest`'s flags say, with the
//! configuration files' text instead of their paths. The command line builds one from its
//! flags, a job submission (`POST /api/v1/tasks/backtest`) is one in JSON, and both become a
//! [`BacktestConfig`] here, so a backtest run as a job is the command line's.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tradeflow_core::market::Interval;
use tradeflow_datasets::Datasets;
use tradeflow_ensemble::Profile;
use tradeflow_ensemble::profile::parse_profiles;
use tradeflow_inference::llm::LlmConfig;
use tradeflow_ingest::timeline::Feed;
use tradeflow_risk::{AccountConfig, parse_accounts};

use crate::engine::BacktestConfig;
use crate::report::ReportOptions;

/// Presets `strategy` may name.
pub const STRATEGIES: &str = "sma_cross";

/// Every parameter of a backtest. Field names are the command line's flags (`llm_config` is
/// the text of the `--llm-config` file, `profiles` and `accounts` the text of theirs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacktestParams {
    /// `[SYMBOL=]FILE` candle files, merged by bar time. Empty: the bundled demo feed as
    /// BTCUSD. Files are the command line's; the API refuses them (see [`Self::from_api`]).
    pub replays: Vec<String>,
    /// Datasets (`SYMBOL:INTERVAL` or `SOURCE:SYMBOL:INTERVAL`, see `tradeflow data list`),
    /// besides the files; each with its own interval. One name or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub dataset: Vec<String>,
    /// The files' bar interval (default `1h`).
    pub interval: Option<String>,
    /// `FROM:TO` intervals to build, e.g. `1h:4h`.
    pub aggregate: Vec<String>,
    /// Inference models (default `technical`).
    pub models: Vec<String>,
    /// TOML: `[rules]`, `[condition]`, `[[analyst]]` (analysts are not called).
    pub llm_config: Option<String>,
    /// TOML `[[profile]]` tables (default: one profile following `technical`).
    pub profiles: Option<String>,
    /// TOML `[[account]]` tables (default: one paper account per profile).
    pub accounts: Option<String>,
    /// A preset instead of models, llm_config, profiles and accounts: `sma_cross`.
    pub strategy: Option<String>,
    /// The preset's `NAME=VALUE` parameters.
    pub params: Vec<String>,
    /// The preset's starting cash (default 10,000).
    pub cash: Option<f64>,
    /// The preset's commission rate per fill (default 0).
    pub commission: Option<f64>,
    /// `YYYY-MM-DD` (UTC) or epoch ms: bars opening at or after it.
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC) or epoch ms: bars opening before it.
    pub to: Option<String>,
    /// Stop at the first row that is not a candle.
    pub strict: bool,
}

/// What the parameters leave to the installation.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The bundled demo feed (BTCUSD, 1h).
    pub demo_feed: PathBuf,
    /// Profiles when none are given.
    pub profiles: String,
    /// Starting balance of the default paper accounts.
    pub balance: f64,
    /// Where `dataset` names are looked up (`<data-dir>/datasets`).
    pub datasets_dir: PathBuf,
}

impl Defaults {
    /// The workers' defaults (profile `technical`, paper accounts of
    /// [`tradeflow_risk::DEFAULT_BALANCE`]) with the demo feed at `demo_feed`.
    pub fn standard(demo_feed: PathBuf) -> Defaults {
        Defaults {
            demo_feed,
            profiles: tradeflow_ensemble::profile::DEFAULT_PROFILES.to_string(),
            balance: tradeflow_risk::DEFAULT_BALANCE,
            datasets_dir: PathBuf::from("data/datasets"),
        }
    }
}

/// A backtest ready to run.
#[derive(Debug, Clone)]
pub struct Built {
    pub config: BacktestConfig,
    pub options: ReportOptions,
    /// The `[rules]` text the run used (a preset's or the given one), for hyperopt's output.
    pub llm_text: Option<String>,
}

/// The configuration files a preset stands for.
#[derive(Debug, Clone)]
pub struct Preset {
    pub llm_config: String,
    pub profiles: String,
    pub accounts: String,
    pub models: Vec<String>,
    pub first_trading_bar: usize,
}

impl BacktestParams {
    /// Parameters that came over the API: the server's files are not the caller's to name.
    pub fn from_api(json: &serde_json::Value) -> Result<Self, Vec<String>> {
        let params: Self = serde_json::from_value(json.clone()).map_err(|e| vec![format!("params: {e}")])?;
        if !params.replays.is_empty() {
            return Err(vec![
                "params.replays: files on the server cannot be named over the API; leave it \
                             out for the bundled demo feed"
                    .into(),
            ]);
        }
        Ok(params)
    }

    /// The preset `strategy` names, if any.
    pub fn preset(&self) -> Result<Option<Preset>, Vec<String>> {
        match &self.strategy {
            None => Ok(None),
            Some(name) => {
                preset(name, &self.params, self.cash.unwrap_or(10_000.0), self.commission.unwrap_or(0.0)).map(Some)
            }
        }
    }

    /// The run these parameters describe; every problem found is reported, each naming its
    /// field.
    pub fn build(&self, defaults: &Defaults) -> Result<Built, Vec<String>> {
        let mut problems = Vec::new();
        if self.strategy.is_none() {
            for (set, name) in [
                (!self.params.is_empty(), "params"),
                (self.cash.is_some(), "cash"),
                (self.commission.is_some(), "commission"),
            ] {
                if set {
                    problems.push(format!("{name}: only with a strategy"));
                }
            }
        } else {
            for (set, name) in [
                (self.llm_config.is_some(), "llm_config"),
                (self.profiles.is_some(), "profiles"),
                (self.accounts.is_some(), "accounts"),
            ] {
                if set {
                    problems.push(format!("{name}: not with a strategy (the preset stands for it)"));
                }
            }
        }
        let preset = self.preset().unwrap_or_else(|p| {
            problems.extend(p);
            None
        });
        let interval = match self.interval.as_deref().unwrap_or("1h").parse::<Interval>() {
            Ok(i) => Some(i),
            Err(e) => {
                problems.push(format!("interval: {e}"));
                None
            }
        };
        let from = self.from.as_deref().map(|s| parse_time(s).map_err(|e| format!("from: {e}"))).transpose();
        let to = self.to.as_deref().map(|s| parse_time(s).map_err(|e| format!("to: {e}"))).transpose();
        let (from, to) = match (from, to) {
            (Ok(f), Ok(t)) => (f, t),
            (f, t) => {
                problems.extend(f.err());
                problems.extend(t.err());
                (None, None)
            }
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            problems.push(format!("from {f} is not before to {t}: the date range is empty"));
        }
        let mut feeds = Vec::new();
        if let Some(interval) = interval {
            if self.replays.is_empty() && self.dataset.is_empty() {
                feeds.push(Feed::csv(defaults.demo_feed.clone(), "BTCUSD", interval));
            }
            for r in &self.replays {
                match replay_feed(r, interval) {
                    Ok(f) => feeds.push(f),
                    Err(e) => problems.push(format!("replays: {e}")),
                }
            }
        }
        // Read whole, as a file is: a report numbers bars from the feed's first row, so a
        // dataset and the same bars in a file give the same report.
        let datasets = Datasets::new(defaults.datasets_dir.clone());
        for spec in &self.dataset {
            match datasets.read(spec, None, None) {
                Ok(c) => {
                    let name = format!("dataset {}", c.key.spec());
                    feeds.push(Feed::bars(name, c.key.source.clone(), c.key.symbol.clone(), c.key.interval, c.raw()));
                }
                Err(e) => problems.push(format!("dataset: {e}")),
            }
        }
        let mut aggregate = Vec::new();
        for a in &self.aggregate {
            match aggregate_pair(a) {
                Ok(p) => aggregate.push(p),
                Err(e) => problems.push(format!("aggregate: {e}")),
            }
        }
        let default_models = ["technical".to_string()];
        let models: &[String] = match &preset {
            Some(p) => &p.models,
            None if self.models.is_empty() => &default_models,
            None => &self.models,
        };
        let llm_text = preset.as_ref().map(|p| p.llm_config.clone()).or_else(|| self.llm_config.clone());
        let field = if preset.is_some() { "strategy" } else { "llm_config" };
        let llm = llm_text.as_deref().and_then(|text| match LlmConfig::parse(text, &|_| None) {
            Ok(l) => Some(l),
            Err(p) => {
                problems.extend(p.into_iter().map(|e| format!("{field}: {e}")));
                None
            }
        });
        let inference = match tradeflow_inference::engine::rule_config(models, llm.as_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("models: {e}"));
                None
            }
        };
        let analysts: Vec<String> = llm.map(|l| l.analysts.into_iter().map(|a| a.name).collect()).unwrap_or_default();
        let (profiles_text, field) = match (&preset, &self.profiles) {
            (Some(p), _) => (p.profiles.as_str(), "strategy"),
            (None, Some(t)) => (t.as_str(), "profiles"),
            (None, None) => (defaults.profiles.as_str(), "default profiles"),
        };
        let profiles: Vec<Profile> = parse_profiles(profiles_text).unwrap_or_else(|p| {
            problems.extend(p.into_iter().map(|e| format!("{field}: {e}")));
            Vec::new()
        });
        let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        let accounts: Vec<AccountConfig> = match (&preset, &self.accounts) {
            (Some(p), _) => parse_accounts(&p.accounts, &names).map_err(|e| ("strategy", e)),
            (None, Some(t)) => parse_accounts(t, &names).map_err(|e| ("accounts", e)),
            (None, None) => Ok(profiles
                .iter()
                .map(|p| AccountConfig::paper(&format!("paper-{}", p.name), &p.name, defaults.balance))
                .collect()),
        }
        .unwrap_or_else(|(field, p)| {
            if !profiles.is_empty() {
                problems.extend(p.into_iter().map(|e| format!("{field}: {e}")));
            }
            Vec::new()
        });
        match inference {
            Some(inference) if problems.is_empty() => Ok(Built {
                config: BacktestConfig {
                    feeds,
                    aggregate,
                    inference,
                    analysts,
                    profiles,
                    accounts,
                    strict: self.strict,
                    from_ms: from,
                    to_ms: to,
                },
                options: ReportOptions { first_trading_bar: preset.as_ref().map_or(0, |p| p.first_trading_bar) },
                llm_text,
            }),
            _ => Err(problems),
        }
    }
}

/// `[SYMBOL=]FILE`: the symbol defaults to the file's name in capitals.
pub fn replay_feed(spec: &str, interval: Interval) -> Result<Feed, String> {
    let (symbol, path) = match spec.split_once('=') {
        Some((s, p)) => (s.to_string(), PathBuf::from(p)),
        None => {
            let path = PathBuf::from(spec);
            let stem = path.file_stem().and_then(|s| s.to_str()).ok_or_else(|| format!("{spec}: no file name"))?;
            (stem.to_uppercase(), path)
        }
    };
    if symbol.is_empty() || !symbol.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(format!("{spec}: symbol {symbol:?} must be letters, digits, '-', '_' or '.'"));
    }
    if !path.is_file() {
        return Err(format!("{spec}: {} is not a readable file", path.display()));
    }
    Ok(Feed::csv(path, symbol, interval))
}

/// A string or a list of strings (`"dataset": "BTCUSDT:1h"` or `["BTCUSDT:1h", ...]`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// `FROM:TO`, e.g. `1h:4h`.
pub fn aggregate_pair(spec: &str) -> Result<(Interval, Interval), String> {
    let (from, to) = spec.split_once(':').ok_or_else(|| format!("{spec}: expected FROM:TO, e.g. 1h:4h"))?;
    let parse = |s: &str| s.parse::<Interval>().map_err(|e| format!("{spec}: {e}"));
    Ok((parse(from)?, parse(to)?))
}

/// `YYYY-MM-DD` (UTC midnight) or epoch milliseconds, as every command takes dates.
pub fn parse_time(s: &str) -> Result<i64, String> {
    tradeflow_core::time::parse_day_or_ms(s)
}

/// The configuration files preset `name` stands for.
pub fn preset(name: &str, params: &[String], cash: f64, commission: f64) -> Result<Preset, Vec<String>> {
    let mut problems = Vec::new();
    if name != "sma_cross" {
        return Err(vec![format!("strategy {name:?}: unknown; expected one of {STRATEGIES}")]);
    }
    let (mut fast, mut slow) = (10u32, 20u32);
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            problems.push(format!("param {p:?}: expected NAME=VALUE"));
            continue;
        };
        let slot = match k.trim() {
            "fast" => &mut fast,
            "slow" => &mut slow,
            other => {
                problems.push(format!("param {other:?}: unknown for sma_cross; expected one of fast, slow"));
                continue;
            }
        };
        match v.trim().parse::<u32>() {
            Ok(n) => *slot = n,
            Err(_) => problems.push(format!("param {k}: expected a whole number, got {v:?}")),
        }
    }
    if !(cash.is_finite() && cash > 0.0) {
        problems.push(format!("cash: must be a positive number, got {cash}"));
    }
    if !(commission.is_finite() && (0.0..1.0).contains(&commission)) {
        problems.push(format!("commission: must be a rate from 0 to below 1, got {commission}"));
    }
    if !problems.is_empty() {
        return Err(problems);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults::standard(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/btcusd_1h.csv")))
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let p = BacktestParams {
            interval: Some("7x".into()),
            from: Some("2020-13-01".into()),
            models: vec!["nonsense".into()],
            cash: Some(5.0),
            profiles: Some("[[profile]]\nname = 3\n".into()),
            ..Default::default()
        };
        let problems = p.build(&defaults()).unwrap_err();
        let text = problems.join("\n");
        for field in ["interval:", "from:", "models:", "cash: only with a strategy", "profiles:"] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }

    #[test]
    fn unknown_fields_and_files_are_refused_over_the_api() {
        let e = BacktestParams::from_api(&serde_json::json!({"bogus": 1})).unwrap_err();
        assert!(e[0].contains("bogus"), "{e:?}");
        let e = BacktestParams::from_api(&serde_json::json!({"replays": ["/etc/passwd"]})).unwrap_err();
        assert!(e[0].starts_with("params.replays"), "{e:?}");
        let ok = BacktestParams::from_api(&serde_json::json!({"strategy": "sma_cross", "params": ["fast=5"]})).unwrap();
        let built = ok.build(&defaults()).unwrap();
        assert_eq!(built.config.accounts[0].id, "sma_cross");
        assert_eq!(built.options.first_trading_bar, 19);
    }

    #[test]
    fn a_dataset_is_a_feed_and_backtests_as_its_csv_does() {
        let dir = tempfile::tempdir().unwrap();
        let demo = defaults().demo_feed;
        Datasets::new(dir.path()).import_csv(&demo, "csv", "BTCUSD", Interval::H1).unwrap();
        let d = Defaults { datasets_dir: dir.path().to_path_buf(), ..defaults() };
        let range = serde_json::json!({"from": "2018-01-01", "to": "2018-03-01"});
        let mut one = range.clone();
        one["dataset"] = "BTCUSD:1h".into();
        let from_dataset = BacktestParams::from_api(&one).unwrap().build(&d).unwrap();
        assert_eq!(from_dataset.config.feeds.len(), 1, "no demo feed beside a dataset");
        assert_eq!(from_dataset.config.feeds[0].name(), "dataset csv:BTCUSD:1h");
        let from_file = BacktestParams {
            replays: vec![format!("BTCUSD={}", demo.display())],
            from: Some("2018-01-01".into()),
            to: Some("2018-03-01".into()),
            ..Default::default()
        }
        .build(&d)
        .unwrap();
        let run = |b: &Built| crate::report::backtest(&b.config, &b.options).unwrap();
        let (a, b) = (run(&from_dataset), run(&from_file));
        assert!(a.candles > 1000, "{}", a.candles);
        assert_eq!((a.candles, a.signals, a.decisions), (b.candles, b.signals, b.decisions));
        let (ja, jb) = (serde_json::to_value(&a.accounts).unwrap(), serde_json::to_value(&b.accounts).unwrap());
        assert!(ja == jb, "the accounts' reports differ");

        let mut many = range;
        many["dataset"] = serde_json::json!(["ETHUSD:1h", "csv:BTCUSD:4h"]);
        let e = BacktestParams::from_api(&many).unwrap().build(&d).unwrap_err().join("\n");
        assert!(e.contains("dataset: no dataset ETHUSD:1h in"), "{e}");
        assert!(e.contains("dataset: no dataset csv:BTCUSD:4h in") && e.contains("there are: csv:BTCUSD:1h"), "{e}");
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
    fn presets_refuse_unknown_names_and_bad_parameters_all_at_once() {
        let e = preset("rsi_magic", &[], 1.0, 0.0).err().unwrap().join("\n");
        assert!(e.contains("sma_cross"), "{e}");
        let e = preset("sma_cross", &["fast=x".into(), "speed=3".into(), "slow".into()], -1.0, 2.0)
            .err()
            .unwrap()
            .join("\n");
        for part in ["param fast", "\"speed\"", "fast, slow", "NAME=VALUE", "cash", "commission"] {
            assert!(e.contains(part), "{part} missing from {e}");
        }
    }

    #[test]
    fn the_sma_cross_preset_is_valid_configuration() {
        let p = preset("sma_cross", &["fast=5".into(), "slow=30".into()], 5000.0, 0.001).unwrap();
        let llm = LlmConfig::parse(&p.llm_config, &|_| None).unwrap();
        assert_eq!((llm.rules.sma_cross.fast, llm.rules.sma_cross.slow), (5, 30));
        let profiles = parse_profiles(&p.profiles).unwrap();
        let accounts = parse_accounts(&p.accounts, &["sma_cross"]).unwrap();
        assert_eq!((profiles.len(), accounts.len(), p.first_trading_bar), (1, 1, 29));
        assert_eq!(accounts[0].paper.taker_fee, 0.001);
    }
}
