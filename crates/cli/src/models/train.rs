//! `tradeflow models train`: the candles of a file through the inference stage (the rows a
//! model would see live), a fit on the training part, figures on validation and test, the
//! trading evaluation of the test window, the gate's verdict, and the version in the registry.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;
use tradeflow_core::candle_csv::CandleReader;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_datasets::Datasets;
use tradeflow_inference::condition::ConditionParams;
use tradeflow_ingest::timeline::Feed;
use tradeflow_models::family::Params;
use tradeflow_models::gate::{GateConfig, GateFigures, GateVerdict};
use tradeflow_models::labels::{LabelKind, LabelSpec};
use tradeflow_models::split::SplitSpec;
use tradeflow_models::{Family, Report, TrainConfig, Trained, train};

use super::TrainArgs;
use super::evaluate::{TradingEval, evaluate};

/// Where the candles come from: a candle file, or a dataset of `crates/datasets` (Parquet,
/// `tradeflow data`). Stored in a version's parameters, so that a retrain reads the same
/// series again.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    Csv {
        path: PathBuf,
        symbol: String,
        interval: Interval,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    },
    /// `spec` is the resolved `SYMBOL:INTERVAL` (or `SOURCE:SYMBOL:INTERVAL`); `dir` the
    /// datasets directory it was read from.
    Dataset {
        dir: PathBuf,
        spec: String,
        interval: Interval,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    },
}

impl Source {
    /// A dataset source for `spec` under `dir` (`<data-dir>/datasets`), resolved now so that a
    /// missing or ambiguous dataset is refused before any work; the directory is kept absolute
    /// when it can be, for a retrain run from elsewhere.
    pub(crate) fn dataset(dir: &Path, spec: &str, from_ms: Option<i64>, to_ms: Option<i64>) -> anyhow::Result<Source> {
        let key = Datasets::new(dir).resolve(spec).with_context(|| format!("--dataset {spec}"))?;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok(Source::Dataset { dir, spec: key.spec(), interval: key.interval, from_ms, to_ms })
    }

    pub(crate) fn interval(&self) -> Interval {
        match self {
            Source::Csv { interval, .. } | Source::Dataset { interval, .. } => *interval,
        }
    }

    /// The same source up to its latest bar (a retrain's window).
    pub(crate) fn up_to_latest(self) -> Source {
        match self {
            Source::Csv { path, symbol, interval, from_ms, .. } => {
                Source::Csv { path, symbol, interval, from_ms, to_ms: None }
            }
            Source::Dataset { dir, spec, interval, from_ms, .. } => {
                Source::Dataset { dir, spec, interval, from_ms, to_ms: None }
            }
        }
    }

    /// The whole series as a backtest feed (the trading evaluation's): read whole, as
    /// `tradeflow backtest --dataset` does, so that bars are numbered from the same first row.
    pub(crate) fn feed(&self) -> anyhow::Result<Feed> {
        match self {
            Source::Csv { path, symbol, interval, .. } => Ok(Feed::csv(path, symbol, *interval)),
            Source::Dataset { dir, spec, .. } => {
                let c = Datasets::new(dir).read(spec, None, None).with_context(|| format!("dataset {spec}"))?;
                let name = format!("dataset {}", c.key.spec());
                Ok(Feed::bars(name, c.key.source.clone(), c.key.symbol.clone(), c.key.interval, c.raw()))
            }
        }
    }
}

/// What a version's `parameters` column holds: enough to train it again.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Parameters {
    pub config: TrainConfig,
    pub source: Source,
    pub gate: GateConfig,
    /// Walk-forward folds (0: none).
    #[serde(default)]
    pub folds: usize,
}

/// What a version's `metrics` column holds.
#[derive(Debug, Serialize)]
pub(crate) struct Metrics<'a> {
    pub report: &'a Report,
    pub trading: &'a Option<TradingEval>,
    pub gate: GateFigures,
    pub verdict: &'a GateVerdict,
    /// Seconds the fit and figures took (the trading evaluation apart).
    pub train_seconds: f64,
}

pub(crate) fn settings(args: &TrainArgs) -> anyhow::Result<(TrainConfig, GateConfig, Source)> {
    settings_in(args, &args.data_dir.join("datasets"))
}

/// [`settings`] with `--dataset` looked up in `datasets_dir`.
pub(crate) fn settings_in(args: &TrainArgs, datasets_dir: &Path) -> anyhow::Result<(TrainConfig, GateConfig, Source)> {
    let mut problems = Vec::new();
    if !tradeflow_inference::ml::valid_name(&args.name) || args.name.starts_with(tradeflow_inference::ml::PREFIX) {
        problems.push(format!("--name {:?}: 1-64 of A-Z a-z 0-9 _ . - (without the ml: prefix)", args.name));
    }
    let family = Family::parse(&args.family);
    if family.is_none() {
        problems.push(format!("--family {:?}: expected logistic or gbt", args.family));
    }
    let kind = match args.labels.as_str() {
        "binary" => Some(LabelKind::Binary),
        "ternary" => Some(LabelKind::Ternary),
        other => {
            problems.push(format!("--labels {other:?}: expected binary or ternary"));
            None
        }
    };
    let mut pairs = Vec::new();
    for p in &args.params {
        match p.split_once('=') {
            Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
            None => problems.push(format!("--params {p:?}: expected K=V")),
        }
    }
    let params = match family.map(|f| Params::from_pairs(f, &pairs)) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            problems.extend(e);
            None
        }
        None => None,
    };
    let labels =
        LabelSpec { horizon: args.horizon, threshold: args.threshold, kind: kind.unwrap_or(LabelKind::Binary) };
    problems.extend(labels.problems().into_iter().map(|p| format!("--{p}")));
    let split = SplitSpec { train: args.train_share, validation: args.validation_share };
    problems.extend(split.problems());
    let gate = GateConfig { min_accuracy: args.min_accuracy, sharpe_vs_technical: !args.no_sharpe_gate };
    problems.extend(gate.problems().into_iter().map(|p| format!("--{p}")));
    let source = match (&args.csv, &args.dataset) {
        (Some(path), None) => {
            let symbol = match &args.symbol {
                Some(s) => s.clone(),
                None => path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_uppercase(),
            };
            if symbol.is_empty() || !symbol.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                problems.push(format!("--symbol {symbol:?}: letters, digits, '-', '_' or '.'"));
            }
            let interval = args.interval.unwrap_or(Interval::H1);
            Some(Source::Csv { path: path.clone(), symbol, interval, from_ms: args.from, to_ms: args.to })
        }
        (None, Some(spec)) => {
            if args.symbol.is_some() {
                problems.push("--symbol: a dataset names its symbol (SYMBOL:INTERVAL)".into());
            }
            match Source::dataset(datasets_dir, spec, args.from, args.to) {
                Ok(s) if args.interval.is_some_and(|i| i != s.interval()) => {
                    problems.push(format!("--interval: the dataset {spec} is {}", s.interval()));
                    None
                }
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    None
                }
            }
        }
        _ => {
            problems.push("one of --csv FILE or --dataset SYMBOL:INTERVAL".into());
            None
        }
    };
    if let (Some(f), Some(t)) = (args.from, args.to)
        && f >= t
    {
        problems.push(format!("--from {f} is not before --to {t}"));
    }
    match (params, source, problems.is_empty()) {
        (Some(params), Some(source), true) => {
            Ok((TrainConfig { labels, split, params, seed: args.seed }, gate, source))
        }
        _ => bail!("models train:\n  {}", problems.join("\n  ")),
    }
}

/// The candles of `source`, in order; a row that is not a candle stops with its line.
pub(crate) fn candles(source: &Source) -> anyhow::Result<Vec<Candle>> {
    let (path, symbol, interval, from_ms, to_ms) = match source {
        Source::Csv { path, symbol, interval, from_ms, to_ms } => (path, symbol, interval, from_ms, to_ms),
        Source::Dataset { dir, spec, from_ms, to_ms, .. } => {
            let c = Datasets::new(dir).read(spec, *from_ms, *to_ms).with_context(|| format!("dataset {spec}"))?;
            let (source, symbol, interval) = (c.key.source, c.key.symbol, c.key.interval);
            return Ok(c
                .bars
                .into_iter()
                .map(|bar| Candle { source: source.clone(), symbol: symbol.clone(), interval, bar, aggregated: false })
                .collect());
        }
    };
    let (from, to) = (from_ms.unwrap_or(i64::MIN), to_ms.unwrap_or(i64::MAX));
    let file = std::fs::File::open(path).with_context(|| format!("--csv {}: cannot open", path.display()))?;
    let reader =
        CandleReader::new(std::io::BufReader::new(file)).with_context(|| format!("--csv {}", path.display()))?;
    let mut bars = reader.bars();
    let mut out = Vec::new();
    while let Some(bar) = bars.next() {
        let bar = bar.with_context(|| format!("--csv {} line {}", path.display(), bars.line()))?;
        if (from..to).contains(&bar.open_time()) {
            out.push(Candle {
                source: "csv".into(),
                symbol: symbol.clone(),
                interval: *interval,
                bar,
                aggregated: false,
            });
        }
    }
    Ok(out)
}

/// Trains as `args` says: the version, its record and the gate's verdict.
pub(crate) struct Outcome {
    pub trained: Trained,
    pub trading: Option<TradingEval>,
    pub figures: GateFigures,
    pub verdict: GateVerdict,
    pub train_seconds: f64,
}

pub(crate) fn train_and_measure(
    name: &str,
    config: &TrainConfig,
    gate: &GateConfig,
    source: &Source,
    trading_eval: bool,
    folds: usize,
) -> anyhow::Result<Outcome> {
    let candles = candles(source)?;
    if candles.is_empty() {
        bail!("no candles in the source (check --from/--to)");
    }
    let started = Instant::now();
    let rows = tradeflow_inference::ml::rows(&candles, &ConditionParams::default());
    let mut trained = train(&rows, config)?;
    if folds > 0 {
        trained.report.walk_forward = Some(tradeflow_models::train::walk_forward(&rows, config, folds)?);
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let trading = if trading_eval { Some(evaluate(name, &trained, source.feed()?, source.interval())?) } else { None };
    let figures = GateFigures {
        test_accuracy: trained.report.test_accuracy(),
        sharpe: trading.as_ref().and_then(|t| t.model.sharpe),
        technical_sharpe: trading.as_ref().and_then(|t| t.technical.sharpe),
    };
    let verdict = gate.judge(&figures);
    Ok(Outcome { trained, trading, figures, verdict, train_seconds })
}

/// What a retrain starts from: the version whose settings it takes and the source it reads.
pub(crate) struct RetrainBase {
    pub base: i64,
    pub parameters: Parameters,
    pub source: Source,
}

/// The settings a retrain of `name` takes: the deployed version's (the latest's when none is
/// deployed), on the same source up to its latest bar. Shared by `models retrain`, the
/// `train` job's retrain and the retrain schedule.
pub(crate) async fn retrain_base(store: &tradeflow_audit::AuditStore, name: &str) -> anyhow::Result<RetrainBase> {
    let base = match store.deployed_of(name).await? {
        Some(v) => v,
        None => store
            .model_versions(Some(name))
            .await?
            .last()
            .map(|r| r.version)
            .with_context(|| format!("model {name:?} has no version to retrain"))?,
    };
    let row = store.model_version(name, base).await?.with_context(|| format!("no version {base} of {name:?}"))?;
    let parameters: Parameters = serde_json::from_str(&row.parameters)
        .with_context(|| format!("{name} v{base}: its parameters do not read as a training's"))?;
    let source = parameters.source.clone().up_to_latest();
    Ok(RetrainBase { base, parameters, source })
}

/// `models retrain NAME`: a new version with the settings of the deployed version (the latest
/// when none is deployed), on the same source up to its latest bar, through the same gate.
pub async fn retrain(store_args: &super::StoreArgs, name: &str, actor: &str, json: bool) -> anyhow::Result<()> {
    let store = tradeflow_audit::AuditStore::connect(&store_args.database_url).await?;
    let outcome = async {
        let RetrainBase { base, parameters: p, source } = retrain_base(&store, name).await?;
        let o = train_and_measure(name, &p.config, &p.gate, &source, true, p.folds)?;
        let version = store_version(&store, name, actor, &p.config, &p.gate, &source, p.folds, &o).await?;
        anyhow::Ok((base, version, o))
    }
    .await;
    store.close().await;
    let (base, version, o) = outcome?;
    if !json {
        println!("{name}: retrained with the settings of v{base}");
    }
    print_outcome(name, version, &o, json)
}

pub async fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (config, gate, source) = settings(args)?;
    let store = tradeflow_audit::AuditStore::connect(&args.store.database_url).await?;
    let outcome = train_and_measure(&args.name, &config, &gate, &source, !args.no_trading_eval, args.folds)?;
    let version = store_version(&store, &args.name, &args.actor, &config, &gate, &source, args.folds, &outcome).await?;
    store.close().await;
    print_outcome(&args.name, version, &outcome, args.json)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // each is one column group of the version
pub(crate) async fn store_version(
    store: &tradeflow_audit::AuditStore,
    name: &str,
    actor: &str,
    config: &TrainConfig,
    gate: &GateConfig,
    source: &Source,
    folds: usize,
    o: &Outcome,
) -> anyhow::Result<i64> {
    let report = &o.trained.report;
    let bytes = o.trained.artifact.to_bytes()?;
    let parameters =
        serde_json::to_string(&Parameters { config: *config, source: source.clone(), gate: *gate, folds })?;
    let metrics = serde_json::to_string(&Metrics {
        report,
        trading: &o.trading,
        gate: o.figures,
        verdict: &o.verdict,
        train_seconds: o.train_seconds,
    })?;
    let schema = format!("{} v{}", report.schema.name, report.schema.version);
    let version = store
        .insert_model_version(&tradeflow_audit::query::models::NewModelVersion {
            name,
            family: config.params.family().as_str(),
            parameters: &parameters,
            feature_schema: &schema,
            feature_hash: &report.schema.hash,
            train_from: report.train.from_ms,
            train_to: report.train.to_ms,
            test_from: report.test.from_ms,
            test_to: report.test.to_ms,
            test_accuracy: report.test_accuracy(),
            metrics: &metrics,
            created_by: actor,
            created_at: tradeflow_core::time::now_ms(),
            bytes: &bytes,
        })
        .await
        .context("storing the version in the registry")?;
    Ok(version)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "null".into(), |v| format!("{:.2}%", v * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "null".into(), |v| format!("{v:.3}"))
}

fn print_outcome(name: &str, version: i64, o: &Outcome, json: bool) -> anyhow::Result<()> {
    let r = &o.trained.report;
    if json {
        let v = serde_json::json!({
            "name": name, "version": version, "report": r, "trading": o.trading,
            "gate": o.figures, "verdict": o.verdict, "train_seconds": o.train_seconds,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "{name} v{version} ({}, {} features, schema {}): {} bars, {} usable rows, trained in {:.2} s",
        r.config.params.family().as_str(),
        r.schema.features.len(),
        r.schema.hash,
        r.bars,
        r.usable_rows,
        o.train_seconds
    );
    println!(
        "split: train {} rows, validation {}, test {} (purge gap {} bars)",
        r.train.rows, r.validation.rows, r.test.rows, r.purge_bars
    );
    for (part, f) in [("validation", &r.validation_figures), ("test", &r.test_figures)] {
        println!(
            "{part:<10} accuracy {} (majority {}, previous move {}), balanced {}, log loss {}, AUC {}",
            pct(f.model.accuracy),
            pct(f.majority.accuracy),
            pct(f.previous_move.accuracy),
            pct(f.model.balanced_accuracy),
            num(f.model.log_loss),
            num(f.model.roc_auc_macro)
        );
    }
    if let Some(wf) = &r.walk_forward {
        let each: Vec<String> = wf.folds.iter().map(|f| pct(f.accuracy)).collect();
        println!(
            "walk-forward {} folds: test accuracy {} (mean {})",
            wf.folds.len(),
            each.join(", "),
            pct(wf.mean_accuracy)
        );
    }
    if let Some(t) = &o.trading {
        for (who, leg) in [("model", &t.model), ("technical", &t.technical)] {
            println!(
                "test window {who:<9} return {} %, Sharpe {}, max drawdown {} %, trades {}",
                num(leg.return_pct),
                num(leg.sharpe),
                num(leg.max_drawdown_pct),
                leg.trades.map_or("null".into(), |n| n.to_string())
            );
        }
        println!("test window buy & hold return {} %", num(t.buy_and_hold_return_pct));
    }
    println!("gate: {}", o.verdict);
    Ok(())
}

/// The error of a `train` job stopped on request.
pub(crate) const STOPPED: &str = "stopped before its version was stored";

/// What a `train` job did.
pub(crate) struct TrainJob {
    pub summary: serde_json::Value,
    pub record: serde_json::Value,
}

/// Runs a `train` job: the same settings, training, measures and registry entry as `tradeflow
/// models train --csv <demo feed>` (or `--dataset` of the worker's datasets directory), or, for
/// `{"name", "retrain": true}`, as `tradeflow models retrain NAME`, by `actor`. Blocking (the
/// fit is CPU work); the registry reads and writes go through `runtime`.
pub(crate) fn train_job(
    json: &serde_json::Value,
    defaults: &tradeflow_backtest::params::Defaults,
    actor: &str,
    store: &tradeflow_audit::AuditStore,
    runtime: &tokio::runtime::Handle,
    stopped: &dyn Fn() -> bool,
) -> Result<TrainJob, Result<String, String>> {
    use tradeflow_models::job::TrainJob as Request;
    // Err(Ok(_)): the parameters can never run; Err(Err(_)): this run failed.
    let request = Request::from_api(json).map_err(|e| Ok(e.join("; ")))?;
    let (name, config, gate, source, folds, trading_eval, base) = match request {
        Request::Train(p) => {
            let p = *p;
            let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, Result<String, String>> {
                v.as_deref()
                    .map(|s| crate::backtest::parse_time(s).map_err(|e| Ok(format!("{field}: {e}"))))
                    .transpose()
            };
            let on_demo = p.dataset.is_none();
            let args = TrainArgs {
                name: p.name,
                family: p.family,
                csv: on_demo.then(|| defaults.demo_feed.clone()),
                dataset: p.dataset,
                data_dir: PathBuf::new(),
                symbol: on_demo.then(|| "BTCUSD".into()),
                interval: on_demo.then_some(Interval::H1),
                from: time("from", &p.from)?,
                to: time("to", &p.to)?,
                horizon: p.horizon,
                threshold: p.threshold,
                labels: p.labels,
                params: p.params,
                seed: p.seed,
                train_share: p.train_share,
                validation_share: p.validation_share,
                min_accuracy: p.min_accuracy,
                no_sharpe_gate: p.no_sharpe_gate,
                no_trading_eval: p.no_trading_eval,
                folds: p.folds,
                actor: actor.to_string(),
                json: true,
                store: super::StoreArgs { database_url: String::new() },
            };
            let (config, gate, source) =
                settings_in(&args, &defaults.datasets_dir).map_err(|e| Ok(format!("{e:#}")))?;
            (args.name, config, gate, source, args.folds, !args.no_trading_eval, None)
        }
        Request::Retrain(p) => {
            // A store that does not answer is this run's failure; a model without a version
            // (or with unreadable settings) stays so.
            let versions = runtime.block_on(store.model_versions(Some(&p.name))).map_err(|e| Err(e.to_string()))?;
            if versions.is_empty() {
                return Err(Ok(format!("model {:?} has no version to retrain", p.name)));
            }
            let b = runtime.block_on(retrain_base(store, &p.name)).map_err(|e| Ok(format!("{e:#}")))?;
            let q = b.parameters;
            (p.name, q.config, q.gate, b.source, q.folds, true, Some(b.base))
        }
    };
    let o =
        train_and_measure(&name, &config, &gate, &source, trading_eval, folds).map_err(|e| Err(format!("{e:#}")))?;
    // The learners take no stop request; a cancel that came during the fit keeps the
    // version out of the registry.
    if stopped() {
        return Err(Err(STOPPED.into()));
    }
    let version = runtime
        .block_on(store_version(store, &name, actor, &config, &gate, &source, folds, &o))
        .map_err(|e| Err(format!("{e:#}")))?;
    let summary = serde_json::json!({
        "name": name,
        "version": version,
        "retrained_from": base,
        "family": config.params.family().as_str(),
        "test_accuracy": o.trained.report.test_accuracy(),
        "gate": o.figures,
        "verdict": o.verdict,
        "train_seconds": o.train_seconds,
    });
    let record = serde_json::json!({
        "name": name, "version": version, "retrained_from": base, "report": o.trained.report,
        "trading": o.trading, "gate": o.figures, "verdict": o.verdict, "train_seconds": o.train_seconds,
    });
    Ok(TrainJob { summary, record })
}
