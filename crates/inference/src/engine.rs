//! The inference models as the operator configures them (`--models`, `--llm-config`), built by
//! one piece of code for every process that runs them: the inference worker (`worker
//! inference`, `tradeflow up`), backtests (rule models only) and the edge's on-demand analyses
//! ([`Engine`]); and the stage run over a series to answer about its last bar ([`infer`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus::Registry;
use tradeflow_core::market::{Bar, Candle, Interval};
use tradeflow_core::signal::Signal;

use crate::llm::{Analyst, LlmConfig, LlmMetrics};
use crate::rules::Strategy;
use crate::stage::{InferenceStage, Inferred, ModelContext, ModelSpec, Skip, StageConfig};

/// Why the models cannot be built; each variant names the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--models: {}", .0.join("; "))]
    Models(Vec<String>),
    /// The file cannot be read or parsed, or its values are out of range: every problem.
    #[error("--llm-config {}:\n  {}", .path.display(), .problems.join("\n  "))]
    LlmFile { path: PathBuf, problems: Vec<String> },
    /// An analyst cannot be built, or the analysts' names clash with the rule models'.
    #[error("--llm-config {}: {}", .path.display(), .problems.join("; "))]
    Analysts { path: PathBuf, problems: Vec<String> },
    #[error("LLM metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// The inference configuration file at `path`, every problem reported at once.
pub fn load_llm_config(path: &Path) -> Result<LlmConfig, ConfigError> {
    LlmConfig::load(path).map_err(|problems| ConfigError::LlmFile { path: path.to_path_buf(), problems })
}

/// The rule models of `models` with the `[rules]` and `[condition]` of `llm` (its analysts
/// aside): what backtests run, and the rule half of [`stage_config`].
pub fn rule_config(models: &[String], llm: Option<&LlmConfig>) -> Result<StageConfig, ConfigError> {
    let config = StageConfig::with_models(models).map_err(ConfigError::Models)?;
    Ok(with_parameters(config, llm))
}

fn with_parameters(config: StageConfig, llm: Option<&LlmConfig>) -> StageConfig {
    match llm {
        Some(l) => StageConfig { rules: l.rules.clone(), condition: l.condition.clone(), ..config },
        None => config,
    }
}

/// `config` with the analysts of `llm` (read from `path`); `metrics` is asked for only when
/// there is an analyst.
fn with_analysts(
    config: StageConfig,
    path: &Path,
    llm: LlmConfig,
    metrics: impl FnOnce() -> Result<LlmMetrics, ConfigError>,
) -> Result<StageConfig, ConfigError> {
    if llm.analysts.is_empty() {
        return Ok(config);
    }
    let problems = |problems| ConfigError::Analysts { path: path.to_path_buf(), problems };
    let metrics = metrics()?;
    let analysts = llm
        .analysts
        .into_iter()
        .map(|a| Analyst::new(a, metrics.clone()).map(Arc::new))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| problems(vec![e]))?;
    config.with_analysts(analysts).map_err(problems)
}

/// What the inference worker runs: the rule models of `models` (at least one, each known) and
/// the analysts of `llm_config`, whose `tradeflow_llm_*` metrics go into `registry`.
pub fn stage_config(
    models: &[String],
    llm_config: Option<&Path>,
    registry: &Registry,
) -> Result<StageConfig, ConfigError> {
    let Some(path) = llm_config else { return rule_config(models, None) };
    let llm = load_llm_config(path)?;
    let config = rule_config(models, Some(&llm))?;
    with_analysts(config, path, llm, || Ok(LlmMetrics::register(registry)?))
}

/// Why a selection of models is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    #[error("models: give at least one model, or leave it out")]
    Empty { known: Vec<String> },
    #[error("model {name:?} is not configured")]
    Unknown { name: String, known: Vec<String> },
    #[error("no LLM analyst is configured (--llm-config)")]
    NoAnalyst,
    #[error("analyst {name:?} is not configured")]
    UnknownAnalyst { name: String, known: Vec<String> },
}

/// The configured models of a process that analyses on demand (the edge): the rule models it
/// was given and the analysts of its inference configuration, as [`stage_config`] builds them
/// for the workers, with two allowances: `models` may hold no rule model (analysts only, or
/// the indicators and market condition only) and names that are not rule models (the
/// analysts') are passed over; and when `registry` already holds the `tradeflow_llm_*` metrics
/// (the workers' analysts under `tradeflow up`), the engine's analysts count into a registry
/// of their own ([`Engine::private_registry`]).
pub struct Engine {
    config: Arc<StageConfig>,
    private_registry: Option<Registry>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("models", &self.names()).finish_non_exhaustive()
    }
}

impl Engine {
    pub fn build(models: &[String], llm_config: Option<&Path>, registry: &Registry) -> Result<Engine, ConfigError> {
        let rules: Vec<String> = models.iter().filter(|m| ModelSpec::parse(m).is_some()).cloned().collect();
        let config = if rules.is_empty() {
            StageConfig { models: Vec::new(), ..StageConfig::default() }
        } else {
            StageConfig::with_models(&rules).map_err(ConfigError::Models)?
        };
        let Some(path) = llm_config else { return Ok(Engine { config: Arc::new(config), private_registry: None }) };
        let llm = load_llm_config(path)?;
        let config = with_parameters(config, Some(&llm));
        let mut private_registry = None;
        let config = with_analysts(config, path, llm, || match LlmMetrics::register(registry) {
            Ok(m) => Ok(m),
            Err(_) => {
                let own = Registry::new();
                let m = LlmMetrics::register(&own)?;
                private_registry = Some(own);
                Ok(m)
            }
        })?;
        Ok(Engine { config: Arc::new(config), private_registry })
    }

    /// An engine of `config` as it is (tests, tools).
    pub fn of(config: StageConfig) -> Engine {
        Engine { config: Arc::new(config), private_registry: None }
    }

    /// The rule models and the analysts.
    pub fn config(&self) -> &Arc<StageConfig> {
        &self.config
    }

    /// Where the engine's analysts count when the process registry already had the metrics.
    pub fn private_registry(&self) -> Option<&Registry> {
        self.private_registry.as_ref()
    }

    pub fn rule_names(&self) -> Vec<&'static str> {
        self.config.model_names()
    }

    pub fn analyst_names(&self) -> Vec<&str> {
        self.config.analysts.iter().map(|a| a.name()).collect()
    }

    /// Every configured model: the rule models, then the analysts.
    pub fn names(&self) -> Vec<String> {
        self.rule_names()
            .into_iter()
            .map(String::from)
            .chain(self.analyst_names().into_iter().map(String::from))
            .collect()
    }

    /// `llm` for an analyst's name, `rule` for any other.
    pub fn kind_of(&self, name: &str) -> &'static str {
        if self.analyst_names().contains(&name) { "llm" } else { "rule" }
    }

    fn with_models(&self, models: Vec<ModelSpec>, analysts: Vec<Arc<Analyst>>) -> Arc<StageConfig> {
        Arc::new(StageConfig {
            models,
            rules: self.config.rules.clone(),
            condition: self.config.condition.clone(),
            analysts,
            ml: Default::default(),
        })
    }

    /// No model: the indicators and the market condition only.
    pub fn bare(&self) -> Arc<StageConfig> {
        self.with_models(Vec::new(), Vec::new())
    }

    /// Each rule strategy as a model (for [`crate::strategy::recommend`]).
    pub fn every_strategy(&self) -> Arc<StageConfig> {
        self.with_models(Strategy::ALL.into_iter().map(ModelSpec::Rule).collect(), Vec::new())
    }

    /// The configured models, or the subset `wanted` of them.
    pub fn select(&self, wanted: Option<&[String]>) -> Result<Arc<StageConfig>, SelectError> {
        let Some(wanted) = wanted else { return Ok(self.config.clone()) };
        let known = self.names();
        if wanted.is_empty() {
            return Err(SelectError::Empty { known });
        }
        if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
            return Err(SelectError::Unknown { name: bad.clone(), known });
        }
        let models = self.config.models.iter().copied().filter(|m| wanted.iter().any(|w| w == m.name())).collect();
        let analysts = self.config.analysts.iter().filter(|a| wanted.iter().any(|w| w == a.name())).cloned().collect();
        Ok(self.with_models(models, analysts))
    }

    /// The analyst called `name`, or the first configured one.
    pub fn analyst(&self, name: Option<&str>) -> Result<Arc<Analyst>, SelectError> {
        let first = self.config.analysts.first().ok_or(SelectError::NoAnalyst)?;
        let Some(name) = name else { return Ok(first.clone()) };
        self.config.analysts.iter().find(|a| a.name() == name).cloned().ok_or_else(|| SelectError::UnknownAnalyst {
            name: name.to_string(),
            known: self.analyst_names().into_iter().map(String::from).collect(),
        })
    }
}

/// A series to analyse: the bars, oldest first, strictly increasing open times.
#[derive(Debug, Clone)]
pub struct Series {
    pub source: String,
    pub symbol: String,
    pub interval: Interval,
    pub bars: Vec<Bar>,
}

/// Why a series has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("no candles to analyse")]
    Empty,
    /// A bar the stage refuses (not after the one before).
    #[error(transparent)]
    Candle(#[from] Skip),
    /// The stage's own checkpoint could not be taken or restored, or its task failed.
    #[error("{0}")]
    Stage(String),
}

/// What the stage would have answered about the last bar of `s`: the stage over every bar but
/// the last with no model (indicators, range and previous values only), then `config`'s rule
/// models on the last bar, with the context the analysts read.
pub fn last_bar(config: Arc<StageConfig>, s: &Series) -> Result<Inferred, SeriesError> {
    let candle = |bar: &Bar| Candle {
        source: s.source.clone(),
        symbol: s.symbol.clone(),
        interval: s.interval,
        bar: *bar,
        aggregated: false,
    };
    let Some((last, history)) = s.bars.split_last() else { return Err(SeriesError::Empty) };
    let bare = Arc::new(StageConfig {
        models: Vec::new(),
        analysts: Vec::new(),
        ml: Default::default(),
        ..StageConfig::clone(&config)
    });
    let mut warm = InferenceStage::new(bare);
    for bar in history {
        warm.on_candle(&candle(bar))?;
    }
    let snapshot = warm.snapshot().map_err(SeriesError::Stage)?;
    let mut stage = InferenceStage::restore(config, &snapshot).map_err(SeriesError::Stage)?;
    Ok(stage.on_candle_with_context(&candle(last))?)
}

/// [`last_bar`] on the blocking pool (a long series takes milliseconds of CPU).
pub async fn infer(config: Arc<StageConfig>, series: Series) -> Result<Inferred, SeriesError> {
    tokio::task::spawn_blocking(move || last_bar(config, &series))
        .await
        .map_err(|e| SeriesError::Stage(format!("the inference task failed: {e}")))?
}

/// Every analyst of `analysts` about `ctx`, asked now: an on-demand analysis is asked for, so
/// the bar's age does not matter (each analyses it "at" its close; `max_candle_age_s` is for
/// replays). One signal each, in order.
pub async fn ask_analysts(analysts: &[Arc<Analyst>], ctx: &ModelContext) -> Vec<Signal> {
    futures_util::future::join_all(analysts.iter().map(|a| a.analyse_at(ctx, ctx.close_time()))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wavy(n: i64) -> Vec<Bar> {
        (0..n)
            .map(|i| {
                let c = 100.0 + (i as f64 * 0.3).sin() * 4.0 + i as f64 * 0.05;
                Bar::new(i * 3_600_000, c, c + 1.0, c - 1.0, c + 0.25, 5.0 + (i % 7) as f64).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_stage_answers_about_the_last_bar_as_it_would_live() {
        // Run over the series in one stage, and through the warm/restore path: same signals.
        let bars = wavy(120);
        let config = Arc::new(StageConfig::every_rule());
        let series = Series { source: "t".into(), symbol: "X".into(), interval: Interval::H1, bars: bars.clone() };
        let ours = last_bar(config.clone(), &series).unwrap();
        let mut stage = InferenceStage::new(config);
        let mut last = None;
        for b in &bars {
            let c =
                Candle { source: "t".into(), symbol: "X".into(), interval: Interval::H1, bar: *b, aggregated: false };
            last = Some(stage.on_candle_with_context(&c).unwrap());
        }
        let theirs = last.unwrap();
        assert_eq!(ours.context, theirs.context);
        let strip = |s: &[Signal]| s.iter().map(|s| Signal { latency_us: 0, ..s.clone() }).collect::<Vec<_>>();
        assert_eq!(strip(&ours.signals), strip(&theirs.signals));
        assert_eq!(ours.signals.len(), 6);
    }

    #[test]
    fn extreme_but_valid_bars_do_not_panic() {
        for scale in [1e300, 1e-300, 1.0] {
            let bars: Vec<Bar> = (0..80)
                .map(|i| {
                    let c = scale * (1.0 + (i % 5) as f64);
                    Bar::new(i * 60_000, c, c * 1.5, c * 0.5, c, if i % 3 == 0 { 0.0 } else { 1e300 }).unwrap()
                })
                .collect();
            let series = Series { source: "t".into(), symbol: "X".into(), interval: Interval::M1, bars };
            let out = last_bar(Arc::new(StageConfig::every_rule()), &series).unwrap();
            serde_json::to_string(&out.signals).unwrap();
        }
    }

    #[test]
    fn an_empty_or_unordered_series_says_why() {
        let empty = Series { source: "t".into(), symbol: "X".into(), interval: Interval::H1, bars: Vec::new() };
        assert_eq!(last_bar(Arc::new(StageConfig::default()), &empty).unwrap_err(), SeriesError::Empty);
        let mut bars = wavy(60);
        bars.swap(10, 11);
        let unordered = Series { bars, ..empty };
        let err = last_bar(Arc::new(StageConfig::default()), &unordered).unwrap_err();
        assert!(matches!(err, SeriesError::Candle(_)), "{err}");
    }

    #[test]
    fn selections_name_what_is_known() {
        let engine = Engine::of(StageConfig::every_rule());
        assert_eq!(engine.select(None).unwrap().models.len(), 6);
        let rsi = engine.select(Some(&["rsi".into()])).unwrap();
        assert_eq!(rsi.model_names(), ["rsi"]);
        assert!(matches!(engine.select(Some(&[])), Err(SelectError::Empty { .. })));
        match engine.select(Some(&["oracle".into()])) {
            Err(SelectError::Unknown { name, known }) => {
                assert_eq!(name, "oracle");
                assert_eq!(known.len(), 6);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(engine.analyst(None).unwrap_err(), SelectError::NoAnalyst);
        assert_eq!(engine.bare().models.len(), 0);
        assert_eq!(engine.every_strategy().models.len(), 5);
    }

    #[test]
    fn the_edge_passes_over_analyst_names_and_may_have_no_rule_model() {
        let registry = Registry::new();
        let none = Engine::build(&[], None, &registry).unwrap();
        assert!(none.names().is_empty());
        let some = Engine::build(&["gpt".into(), "rsi".into()], None, &registry).unwrap();
        assert_eq!(some.names(), ["rsi"]);
        assert!(matches!(Engine::build(&["rsi".into(), "rsi".into()], None, &registry), Err(ConfigError::Models(_))));
        assert!(matches!(stage_config(&[], None, &registry), Err(ConfigError::Models(_))));
    }

    #[test]
    fn an_engine_beside_the_workers_counts_into_a_registry_of_its_own() {
        let path = std::env::temp_dir().join(format!("tradeflow-engine-test-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[rules]\nrsi_oversold = 25.0\n[[analyst]]\nname = \"local\"\ndialect = \"openai\"\n\
             base_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n",
        )
        .unwrap();
        let registry = Registry::new();
        let workers = stage_config(&["technical".into()], Some(&path), &registry);
        let edge = Engine::build(&["technical".into(), "local".into()], Some(&path), &registry);
        let missing = stage_config(&["technical".into()], Some(Path::new("/nonexistent/llm.toml")), &registry);
        std::fs::remove_file(&path).unwrap();
        let (workers, edge) = (workers.unwrap(), edge.unwrap());
        assert_eq!(workers.describe(), "models technical; LLM analysts: local (openai m)");
        assert!(edge.private_registry().is_some());
        assert_eq!(edge.names(), ["technical", "local"]);
        assert_eq!((edge.kind_of("local"), edge.kind_of("technical")), ("llm", "rule"));
        assert_eq!(edge.config().rules.rsi_oversold, 25.0);
        assert_eq!(edge.analyst(Some("local")).unwrap().name(), "local");
        assert!(matches!(edge.analyst(Some("gpt")), Err(SelectError::UnknownAnalyst { .. })));
        let missing = missing.unwrap_err().to_string();
        assert!(missing.starts_with("--llm-config /nonexistent/llm.toml:\n  cannot read"), "{missing}");
    }
}
