//! Learned models (`--models ml:NAME`) as the inference stage serves them, and the rows a
//! training reads, made by the stage itself.
//!
//! The stage asks each `ml:NAME` model about every candle with the features
//! [`tradeflow_models::FeatureWindow`] makes of what the stage computed anyway (the candle,
//! its indicators, its market condition). The models themselves live in an [`MlModels`] shared
//! by every partition of the process: whoever reads the registry (the CLI: at start, on
//! `reload`, on a deploy) installs the deployed version's file there, and the next candle is
//! answered by it, with no restart. A file that is damaged or made for another feature schema
//! is refused with the reason; the model keeps the version it served (or answers with an error
//! signal naming the reason when it has none) and every other model goes on.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tradeflow_core::market::Candle;
use tradeflow_core::signal::{Action, MarketCondition, SignalStatus};
use tradeflow_models::family::argmax;
use tradeflow_models::train::Row;
use tradeflow_models::{Artifact, FeatureInput, FeatureWindow, Features};

use crate::condition::ConditionParams;
use crate::stage::{InferenceStage, StageConfig};

/// The prefix of a learned model's name in `--models` and in profiles.
pub const PREFIX: &str = "ml:";

/// A version being served.
#[derive(Debug)]
pub struct Served {
    /// The registry name (without the prefix).
    pub name: String,
    pub version: i64,
    pub artifact: Artifact,
}

/// What a learned model answers with now.
#[derive(Debug, Clone)]
pub enum Slot {
    Served(Arc<Served>),
    /// No version is served: none deployed, or the deployed one was refused (the reason).
    Unavailable(String),
}

/// `tradeflow_model_*` metrics of the served models.
#[derive(Clone)]
pub struct MlMetrics {
    pub predictions: IntCounterVec,
    pub seconds: HistogramVec,
    pub deployed: IntGaugeVec,
}

impl MlMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let predictions = IntCounterVec::new(
            Opts::new(
                "tradeflow_model_predictions_total",
                "Predictions of learned models, by model, version and action.",
            ),
            &["model", "version", "action"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "tradeflow_model_prediction_seconds",
                "Time to predict one candle (features included), by learned model.",
            )
            .buckets(vec![1e-6, 2.5e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2]),
            &["model"],
        )?;
        let deployed = IntGaugeVec::new(
            Opts::new("tradeflow_model_deployed_version", "The version each learned model serves (0: none)."),
            &["model"],
        )?;
        registry.register(Box::new(predictions.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(deployed.clone()))?;
        Ok(Self { predictions, seconds, deployed })
    }
}

/// The learned models of a process, by registry name.
#[derive(Default)]
pub struct MlModels {
    slots: RwLock<BTreeMap<String, Slot>>,
    metrics: RwLock<Option<MlMetrics>>,
}

impl std::fmt::Debug for MlModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlModels").field("names", &self.names()).finish_non_exhaustive()
    }
}

impl MlModels {
    /// `names` (registry names), none served yet.
    pub fn new(names: &[String]) -> Self {
        let slots = names.iter().map(|n| (n.clone(), Slot::Unavailable("no version loaded yet".into()))).collect();
        Self { slots: RwLock::new(slots), metrics: RwLock::new(None) }
    }

    pub fn names(&self) -> Vec<String> {
        self.slots.read().map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// Counts predictions into `metrics` from now on.
    pub fn set_metrics(&self, metrics: MlMetrics) {
        if let Ok(mut m) = self.metrics.write() {
            *m = Some(metrics);
        }
    }

    pub fn slot(&self, name: &str) -> Slot {
        self.slots
            .read()
            .ok()
            .and_then(|s| s.get(name).cloned())
            .unwrap_or_else(|| Slot::Unavailable(format!("{PREFIX}{name} is not configured")))
    }

    /// The version `version` of `name` from its model file. A file that does not load is
    /// refused with the reason: the model keeps the version it serves, if any.
    pub fn install(&self, name: &str, version: i64, bytes: &[u8]) -> Result<(), String> {
        let outcome = Artifact::from_bytes(bytes)
            .map(|artifact| Served { name: name.to_string(), version, artifact })
            .map_err(|e| format!("{PREFIX}{name} version {version} refused: {e}"));
        let mut slots = self.slots.write().map_err(|_| "model slots poisoned".to_string())?;
        let Some(slot) = slots.get_mut(name) else { return Err(format!("{PREFIX}{name} is not configured here")) };
        match outcome {
            Ok(served) => {
                *slot = Slot::Served(Arc::new(served));
                self.gauge(name, version);
                Ok(())
            }
            Err(reason) => {
                if !matches!(slot, Slot::Served(_)) {
                    *slot = Slot::Unavailable(reason.clone());
                }
                Err(reason)
            }
        }
    }

    /// No version of `name` is deployed (any more).
    pub fn clear(&self, name: &str, reason: &str) {
        if let Ok(mut slots) = self.slots.write()
            && let Some(slot) = slots.get_mut(name)
        {
            *slot = Slot::Unavailable(reason.to_string());
            self.gauge(name, 0);
        }
    }

    /// The version `name` serves.
    pub fn served_version(&self, name: &str) -> Option<i64> {
        match self.slot(name) {
            Slot::Served(s) => Some(s.version),
            Slot::Unavailable(_) => None,
        }
    }

    fn gauge(&self, name: &str, version: i64) {
        if let Ok(m) = self.metrics.read()
            && let Some(m) = m.as_ref()
        {
            m.deployed.with_label_values(&[&format!("{PREFIX}{name}")]).set(version);
        }
    }

    fn count(&self, model: &str, version: i64, action: Action, seconds: f64) {
        if let Ok(m) = self.metrics.read()
            && let Some(m) = m.as_ref()
        {
            m.predictions.with_label_values(&[model, &version.to_string(), action.as_str()]).inc();
            m.seconds.with_label_values(&[model]).observe(seconds);
        }
    }
}

/// The learned models a stage runs: their names (`ml:NAME`, in `--models` order) and where
/// their versions are installed.
#[derive(Debug, Clone, Default)]
pub struct MlSet {
    pub names: Vec<String>,
    pub models: Arc<MlModels>,
}

impl PartialEq for MlSet {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names && Arc::ptr_eq(&self.models, &other.models)
    }
}

impl MlSet {
    pub fn new(names: Vec<String>) -> Self {
        let registry: Vec<String> = names.iter().map(|n| registry_name(n).to_string()).collect();
        Self { names, models: Arc::new(MlModels::new(&registry)) }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// `ml:NAME` → `NAME`.
pub fn registry_name(model: &str) -> &str {
    model.strip_prefix(PREFIX).unwrap_or(model)
}

/// Whether `name` is a valid learned model name: `ml:` then 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    let n = registry_name(name);
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// What one learned model answers about a candle.
pub(crate) struct MlAnswer {
    pub action: Action,
    pub confidence: f64,
    pub scores: BTreeMap<String, f64>,
    pub reasoning: String,
    pub status: SignalStatus,
    pub latency_us: u64,
}

/// `model` (`ml:NAME`) about a candle with `features` (`None` while they warm up).
pub(crate) fn answer(set: &MlSet, model: &str, features: Option<&Features>, explain: bool) -> MlAnswer {
    let started = Instant::now();
    let hold = |reasoning: String, status| MlAnswer {
        action: Action::Hold,
        confidence: 0.0,
        scores: BTreeMap::new(),
        reasoning,
        status,
        latency_us: 0,
    };
    let served = match set.models.slot(registry_name(model)) {
        Slot::Served(s) => s,
        Slot::Unavailable(reason) => return hold(String::new(), SignalStatus::Error { reason }),
    };
    let Some(x) = features else { return hold("features warming up".into(), SignalStatus::Ok) };
    let classes = &served.artifact.model.classes;
    let mut p = [0.0; 3];
    let p = &mut p[..classes.len()];
    served.artifact.model.predict_into(x, p);
    let best = argmax(p);
    let action = classes[best].action();
    let mut scores = BTreeMap::new();
    let mut reasoning = String::new();
    if explain {
        for (c, v) in classes.iter().zip(p.iter()) {
            scores.insert(format!("p_{}", c.as_str()), *v);
        }
        scores.insert("version".into(), served.version as f64);
        reasoning = format!(
            "{model} v{} ({}): {}",
            served.version,
            served.artifact.model.family().as_str(),
            classes
                .iter()
                .zip(p.iter())
                .map(|(c, v)| format!("p({})={v:.3}", c.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let elapsed = started.elapsed();
    set.models.count(model, served.version, action, elapsed.as_secs_f64());
    MlAnswer {
        action,
        confidence: p[best],
        scores,
        reasoning,
        status: SignalStatus::Ok,
        latency_us: elapsed.as_micros() as u64,
    }
}

/// The features of `features` by name, for a signal.
pub(crate) fn named(features: &Features) -> BTreeMap<String, f64> {
    tradeflow_models::features::FEATURE_NAMES.iter().zip(features).map(|(n, v)| (n.to_string(), *v)).collect()
}

/// The feature window of one series: it keeps the closes the returns need.
pub(crate) fn features_of(
    window: &mut FeatureWindow,
    candle: &Candle,
    row: &tradeflow_indicators::IndicatorRow,
    market: &MarketCondition,
) -> Option<Features> {
    window.push(FeatureInput { bar: &candle.bar, row, market })
}

/// The rows a training reads: `candles` (one series, in order) through an inference stage with
/// no model and the `[condition]` parameters `condition`, each with the features the stage
/// would give a learned model at that candle. A candle the stage refuses (not after the one
/// before) is skipped, as live.
pub fn rows(candles: &[Candle], condition: &ConditionParams) -> Vec<Row> {
    let config = Arc::new(StageConfig { models: Vec::new(), condition: condition.clone(), ..StageConfig::default() });
    let mut stage = InferenceStage::new(config);
    let mut window = FeatureWindow::new();
    let mut out = Vec::with_capacity(candles.len());
    for c in candles {
        let Ok(inferred) = stage.on_candle_with_context(c) else { continue };
        let features = features_of(&mut window, c, &inferred.context.indicators, &inferred.context.market);
        out.push(Row { open_time: c.bar.open_time(), close: c.bar.close(), features });
    }
    out
}
