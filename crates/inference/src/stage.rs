//! The inference state machine: per series (source, symbol, interval) an indicator set, the
//! recent range and the last candle's indicators; per candle one signal per configured rule
//! model, and the [`ModelContext`] that the LLM analysts (run by the worker) read.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tradeflow_core::MessageId;
use tradeflow_core::market::Bar;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_core::signal::{
    Action, CycleTag, MarketCondition, ModelKind, STATUS_OK, Signal, SignalStatus, SignalView, cycle_candle_id,
};
use tradeflow_indicators::{COLUMNS, IndicatorRow, IndicatorSet, Next};
use tradeflow_models::{FeatureWindow, Features};

use crate::condition::{ConditionParams, RecentRange, assess};
use crate::llm::Analyst;
use crate::ml::{self, MlSet};
use crate::rules::{Previous, RuleParams, Strategy, Verdict, evaluate, vote};
use crate::sma_cross::SmaCross;

/// A model the stage runs on every candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelSpec {
    /// One rule strategy, named after it (`rsi`, `macd`, ...).
    Rule(Strategy),
    /// All rule strategies voting together (`technical`), with each one's score.
    Technical,
    /// The SMA crossover (`sma_cross`, parameters `[rules.sma_cross]`): long on a cross up,
    /// short on a cross down, hold otherwise; see [`crate::sma_cross`]. Not part of
    /// `technical`.
    SmaCross,
}

impl ModelSpec {
    /// Every rule model name, for messages.
    pub const NAMES: &'static str = "rsi, macd, bollinger, volume, stochastic, technical, sma_cross";

    pub fn name(&self) -> &'static str {
        match self {
            Self::Rule(s) => s.name(),
            Self::Technical => "technical",
            Self::SmaCross => "sma_cross",
        }
    }

    /// The rule model of this name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "technical" => Some(Self::Technical),
            "sma_cross" => Some(Self::SmaCross),
            n => Strategy::parse(n).map(Self::Rule),
        }
    }
}

/// What the stage runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StageConfig {
    pub models: Vec<ModelSpec>,
    pub rules: RuleParams,
    pub condition: ConditionParams,
    /// LLM analysts, one signal each per candle after the rule models. The stage only gives
    /// them their [`ModelContext`]; the worker calls them (they are async and use the network).
    /// Shared by every partition of the process: pacing, key rotation and cache are per analyst.
    pub analysts: Vec<Arc<Analyst>>,
    /// Learned models (`ml:NAME`), one signal each per candle after the rule models.
    pub ml: MlSet,
}

impl Default for StageConfig {
    /// The composite rule model alone: one signal per candle carrying every strategy's score.
    fn default() -> Self {
        Self {
            models: vec![ModelSpec::Technical],
            rules: RuleParams::default(),
            condition: ConditionParams::default(),
            analysts: Vec::new(),
            ml: MlSet::default(),
        }
    }
}

impl StageConfig {
    /// Models by name (rule models, and learned models as `ml:NAME`); every unknown or
    /// repeated name is reported.
    pub fn with_models(names: &[String]) -> Result<Self, Vec<String>> {
        let mut models = Vec::new();
        let mut learned: Vec<String> = Vec::new();
        let mut problems = Vec::new();
        for name in names {
            if name.starts_with(ml::PREFIX) {
                if !ml::valid_name(name) {
                    problems
                        .push(format!("learned model {name:?}: the name after ml: must be 1-64 of A-Z a-z 0-9 _ . -"));
                } else if learned.contains(name) {
                    problems.push(format!("model {name:?} is listed twice"));
                } else {
                    learned.push(name.clone());
                }
                continue;
            }
            match ModelSpec::parse(name) {
                Some(s) if models.contains(&s) => problems.push(format!("model {name:?} is listed twice")),
                Some(s) => models.push(s),
                None => {
                    problems.push(format!("unknown model {name:?}; expected one of {} or ml:NAME", ModelSpec::NAMES))
                }
            }
        }
        if models.is_empty() && learned.is_empty() && problems.is_empty() {
            problems.push("no model configured".into());
        }
        if problems.is_empty() {
            Ok(Self { models, ml: MlSet::new(learned), ..Self::default() })
        } else {
            Err(problems)
        }
    }

    /// Each rule strategy as a model of its own, and their composite.
    pub fn every_rule() -> Self {
        let mut models: Vec<ModelSpec> = Strategy::ALL.into_iter().map(ModelSpec::Rule).collect();
        models.push(ModelSpec::Technical);
        Self { models, ..Self::default() }
    }

    pub fn model_names(&self) -> Vec<&'static str> {
        self.models.iter().map(ModelSpec::name).collect()
    }

    /// The same rule models with these LLM analysts. Their names are checked against the
    /// rule models' (each model's signal id must be unique per candle).
    pub fn with_analysts(mut self, analysts: Vec<Arc<Analyst>>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        for (i, a) in analysts.iter().enumerate() {
            if self.models.iter().any(|m| m.name() == a.name()) {
                problems.push(format!("analyst {:?} has the name of a rule model", a.name()));
            }
            if analysts[..i].iter().any(|b| b.name() == a.name()) {
                problems.push(format!("analyst {:?} is configured twice", a.name()));
            }
        }
        self.analysts = analysts;
        if problems.is_empty() { Ok(self) } else { Err(problems) }
    }

    /// What runs, for the start-up line: `models technical; LLM analysts: gpt (openai
    /// gpt-4o-mini)` or `models technical; no LLM analyst configured (rule models only)`.
    pub fn describe(&self) -> String {
        let rules = self
            .model_names()
            .into_iter()
            .map(String::from)
            .chain(self.ml.names.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        if self.analysts.is_empty() {
            format!("models {rules}; no LLM analyst configured (rule models only)")
        } else {
            let llm = self.analysts.iter().map(|a| a.describe()).collect::<Vec<_>>().join(", ");
            format!("models {rules}; LLM analysts: {llm}")
        }
    }
}

/// What an analyst reads about a candle: the candle, its market condition, its indicators and
/// the latest indicators of the other intervals of the same source and symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelContext {
    pub candle_id: String,
    pub source: String,
    pub symbol: String,
    pub interval: Interval,
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub market: MarketCondition,
    /// This candle's indicators; [`ModelContext::indicators_by_name`] gives them by name.
    pub indicators: IndicatorRow,
    /// The latest candle of every other interval of this source and symbol, shortest first
    /// (the multi-timeframe summary). Empty when only one interval is ingested.
    pub timeframes: Vec<Timeframe>,
}

impl ModelContext {
    /// Open time of the next candle: when this one closed.
    pub fn close_time(&self) -> i64 {
        self.open_time + self.interval.millis()
    }

    /// This candle's indicators that have a value, by name.
    pub fn indicators_by_name(&self) -> Vec<(&'static str, f64)> {
        indicators_by_name(&self.indicators)
    }
}

/// The latest candle of one interval, as another interval's context sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeframe {
    pub interval: Interval,
    pub open_time: i64,
    pub close: f64,
    pub indicators: IndicatorRow,
}

/// The indicators of `row` that have a value (none during warm-up), by name: the 26 TA-Lib
/// columns, then `volume_sma_20` and `volume_ratio_20`.
pub fn indicators_by_name(row: &IndicatorRow) -> Vec<(&'static str, f64)> {
    COLUMNS
        .into_iter()
        .zip(row.values())
        .chain([("volume_sma_20", row.volume_sma_20), ("volume_ratio_20", row.volume_ratio_20)])
        .filter_map(|(name, v)| v.map(|v| (name, v)))
        .collect()
}

/// One candle's rule signals and the context the analysts get.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub signals: Vec<Signal>,
    pub context: ModelContext,
}

/// One rule model's vote about a candle: what its signal would tell the ensemble.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleVote {
    pub model: &'static str,
    pub action: Action,
    pub confidence: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

/// A candle's rule votes ([`InferenceStage::on_candle_votes`]).
#[derive(Debug, Clone)]
pub struct Votes<'c> {
    pub candle: &'c Candle,
    pub candle_id: String,
    pub votes: Vec<RuleVote>,
    /// The learned models' votes, after the rule models'.
    pub ml: Vec<MlVote>,
}

/// One learned model's vote about a candle.
#[derive(Debug, Clone, PartialEq)]
pub struct MlVote {
    pub model: String,
    pub action: Action,
    pub confidence: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub status: SignalStatus,
}

impl Votes<'_> {
    /// Each vote as the ensemble reads a signal: the same fields a rule signal has.
    pub fn views(&self) -> impl Iterator<Item = SignalView<'_>> {
        let bar = &self.candle.bar;
        let learned = self.ml.iter().map(move |v| SignalView {
            candle_id: &self.candle_id,
            symbol: &self.candle.symbol,
            interval: self.candle.interval,
            open_time: bar.open_time(),
            open: Some(bar.open()),
            high: bar.high(),
            low: bar.low(),
            close: bar.close(),
            model: &v.model,
            action: v.action,
            confidence: v.confidence,
            stop_loss: v.stop_loss,
            take_profit: v.take_profit,
            status: &v.status,
            cycle: None,
        });
        self.votes
            .iter()
            .map(move |v| SignalView {
                candle_id: &self.candle_id,
                symbol: &self.candle.symbol,
                interval: self.candle.interval,
                open_time: bar.open_time(),
                open: Some(bar.open()),
                high: bar.high(),
                low: bar.low(),
                close: bar.close(),
                model: v.model,
                action: v.action,
                confidence: v.confidence,
                stop_loss: v.stop_loss,
                take_profit: v.take_profit,
                status: &STATUS_OK,
                cycle: None,
            })
            .chain(learned)
    }
}

/// State of one series, checkpointed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeriesState {
    indicators: IndicatorSet,
    range: RecentRange,
    prev: Previous,
    /// The last candle's close and indicators, for the other intervals' contexts.
    last: Option<(f64, IndicatorRow)>,
    /// The `sma_cross` window, kept only when that model runs (absent from older checkpoints).
    #[serde(default)]
    sma_cross: Option<SmaCross>,
    /// The latest candle and what the rule models read at it, for an analysis cycle on it
    /// (absent from older checkpoints: a cycle finds the series from its next candle on).
    #[serde(default)]
    latest: Option<Latest>,
    /// The closes the learned models' features need, kept only when one runs (absent from
    /// older checkpoints).
    #[serde(default)]
    features: Option<FeatureWindow>,
}

/// What an analysis cycle needs of a series' latest candle (its indicators are `last`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Latest {
    bar: Bar,
    /// What the crossing rules remembered before it.
    prev: Previous,
    market: MarketCondition,
    /// Cycles run on it so far: the n-th one's signals open n ms after it.
    cycles: u32,
}

impl Default for SeriesState {
    fn default() -> Self {
        Self {
            indicators: IndicatorSet::new(),
            range: RecentRange::default(),
            prev: Previous::default(),
            last: None,
            sma_cross: None,
            latest: None,
            features: None,
        }
    }
}

/// Snapshot layout version: a checkpoint of another layout is refused, not misread.
/// 2: each series keeps its last indicator row.
const SNAPSHOT_VERSION: u16 = 2;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: u16,
    series: BTreeMap<String, SeriesState>,
    /// Ids of the latest analysis cycles run (absent from older checkpoints).
    #[serde(default)]
    cycles: VecDeque<String>,
}

/// Cycle ids remembered, so that a trigger is obeyed once (the control state keeps fewer).
const CYCLES_KEPT: usize = 2 * tradeflow_core::control::TRIGGERS_KEPT;

/// Why a candle produced no signals.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Skip {
    /// Not after the last candle of its series: a repeat (same id: its signals were emitted)
    /// or a late bar.
    #[error("candle {id} is not after the last one of its series: {reason}")]
    NotNewer { id: String, reason: String },
}

#[derive(Debug, Clone)]
pub struct InferenceStage {
    config: Arc<StageConfig>,
    series: BTreeMap<String, SeriesState>,
    cycles: VecDeque<String>,
    /// A series key being looked up (kept to spare an allocation per candle; not state).
    key: String,
}

impl InferenceStage {
    pub fn new(config: Arc<StageConfig>) -> Self {
        Self { config, series: BTreeMap::new(), cycles: VecDeque::new(), key: String::new() }
    }

    /// The stage with the state of a checkpoint.
    pub fn restore(config: Arc<StageConfig>, snapshot: &[u8]) -> Result<Self, String> {
        let s: Snapshot =
            rmp_serde::from_slice(snapshot).map_err(|e| format!("inference checkpoint does not decode: {e}"))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(format!("inference checkpoint has layout {}, this build reads {SNAPSHOT_VERSION}", s.version));
        }
        Ok(Self { config, series: s.series, cycles: s.cycles, key: String::new() })
    }

    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        // Serialize borrows the map; the wrapper owns nothing else worth cloning.
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            version: u16,
            series: &'a BTreeMap<String, SeriesState>,
            cycles: &'a VecDeque<String>,
        }
        rmp_serde::to_vec_named(&SnapshotRef { version: SNAPSHOT_VERSION, series: &self.series, cycles: &self.cycles })
            .map_err(|e| format!("cannot encode the inference checkpoint: {e}"))
    }

    pub fn config(&self) -> &StageConfig {
        &self.config
    }

    /// One signal per configured rule model, or why there are none.
    pub fn on_candle(&mut self, candle: &Candle) -> Result<Vec<Signal>, Skip> {
        self.step(candle).map(|(signals, _, _)| signals)
    }

    /// [`InferenceStage::on_candle`] and the context the LLM analysts read about the candle.
    pub fn on_candle_with_context(&mut self, candle: &Candle) -> Result<Inferred, Skip> {
        let (signals, market, indicators) = self.step(candle)?;
        let context = ModelContext {
            candle_id: candle.id().to_string(),
            source: candle.source.clone(),
            symbol: candle.symbol.clone(),
            interval: candle.interval,
            open_time: candle.bar.open_time(),
            open: candle.bar.open(),
            high: candle.bar.high(),
            low: candle.bar.low(),
            close: candle.bar.close(),
            market,
            indicators,
            timeframes: self.timeframes(&format!("{}:{}:", candle.source, candle.symbol), candle.interval),
        };
        Ok(Inferred { signals, context })
    }

    /// The candle's rule votes: what its signals would tell the ensemble, without their
    /// explanations (scores, reasoning, features, market condition, latency). Why: a backtest
    /// keeps no signal, and building them was most of its inference time. The same models are
    /// asked the same way ([`answer`]); the series' state moves exactly as with
    /// [`InferenceStage::on_candle`].
    pub fn on_candle_votes<'c>(&mut self, candle: &'c Candle) -> Result<Votes<'c>, Skip> {
        let a = self.advance(candle, false)?;
        let candle_id = candle.id().into_string();
        let at = At::candle(candle, &candle_id, &a.row);
        let votes = rule_votes(&self.config, &at, &a.prev, a.sma_cross);
        let ml = ml_votes(&self.config, &at, a.features.as_ref());
        Ok(Votes { candle, candle_id, votes, ml })
    }

    /// The rule signals, the market condition and the indicators of `candle`.
    fn step(&mut self, candle: &Candle) -> Result<(Vec<Signal>, MarketCondition, IndicatorRow), Skip> {
        let a = self.advance(candle, true)?;
        // Formatted once: it was formatted again for each model's signal.
        let candle_id = candle.id().into_string();
        let at = At::candle(candle, &candle_id, &a.row);
        let mut out = rule_signals(&self.config, &at, &a.prev, &a.market, a.sma_cross);
        ml_signals(&self.config, &at, &a.market, a.features.as_ref(), &mut out);
        Ok((out, a.market, a.row))
    }

    /// Moves `candle`'s series on by it: its indicators, range, crossing memory, `sma_cross`
    /// window and latest candle. Gives the candle's indicators, its market condition, what the
    /// crossing rules remembered before it, and the `sma_cross` verdict when that model runs
    /// (explained when `explain`).
    fn advance(&mut self, candle: &Candle, explain: bool) -> Result<Advanced, Skip> {
        // The key is written into a kept buffer and copied only for a new series: it was an
        // allocation per candle.
        self.key.clear();
        let _ = write!(self.key, "{}:{}:{}", candle.source, candle.symbol, candle.interval);
        if !self.series.contains_key(&self.key) {
            self.series.insert(self.key.clone(), SeriesState::default());
        }
        let Some(state) = self.series.get_mut(&self.key) else { unreachable!("the series was inserted above") };
        let bar = candle.bar;
        let row = state
            .indicators
            .next(&bar)
            .map_err(|e| Skip::NotNewer { id: candle.id().to_string(), reason: e.to_string() })?;
        let (support, resistance) = state.range.push(&bar, self.config.condition.window);
        let market = assess(&bar, &row, support, resistance, &self.config.condition);
        let prev = state.prev;
        state.prev = Previous { macd_hist: row.macd_hist_12_26_9 };
        state.last = Some((bar.close(), row));
        state.latest = Some(Latest { bar, prev, market: market.clone(), cycles: 0 });
        let p = &self.config.rules.sma_cross;
        let sma_cross = self
            .config
            .models
            .contains(&ModelSpec::SmaCross)
            .then(|| state.sma_cross.get_or_insert_with(SmaCross::default).next(bar.close(), p, explain));
        let features = if self.config.ml.is_empty() {
            None
        } else {
            ml::features_of(state.features.get_or_insert_with(FeatureWindow::new), candle, &row, &market)
        };
        Ok(Advanced { row, market, prev, sma_cross, features })
    }

    /// Whether the analysis cycle `id` has run here (remembered with the checkpoint).
    pub fn cycle_seen(&self, id: &str) -> bool {
        self.cycles.iter().any(|c| c == id)
    }

    /// An analysis cycle (a `trigger`): for every series of `symbol` (every series when
    /// `None`) with a latest candle, its rule signals and its analysts' context once more,
    /// now. Each carries the cycle's candle id and `cycle` tag; [`stamp`] (applied here to
    /// the rule signals, by the worker to the analysts') gives them their place downstream.
    /// The rule models read the candle as they did (their answer is the candle's own, except
    /// `sma_cross`'s: a cross is an event of a candle, so between candles it holds).
    pub fn on_trigger(&mut self, cycle: &CycleTag, symbol: Option<&str>) -> Vec<(Inferred, u32)> {
        if !self.cycle_seen(&cycle.id) {
            self.cycles.push_back(cycle.id.clone());
            while self.cycles.len() > CYCLES_KEPT {
                self.cycles.pop_front();
            }
        }
        let keys: Vec<String> = self
            .series
            .iter()
            .filter(|(k, st)| st.latest.is_some() && symbol.is_none_or(|s| series_symbol(k) == Some(s)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some((source, sym, interval)) = split_key(&key) else { continue };
            let timeframes = self.timeframes(&format!("{source}:{sym}:"), interval);
            let Some(state) = self.series.get_mut(&key) else { continue };
            let (Some(latest), Some((_, row))) = (state.latest.as_mut(), state.last) else { continue };
            latest.cycles = latest.cycles.saturating_add(1);
            let n = latest.cycles;
            let (bar, prev, market) = (latest.bar, latest.prev, latest.market.clone());
            let p = &self.config.rules;
            let sma_cross = self.config.models.contains(&ModelSpec::SmaCross).then(|| {
                state
                    .sma_cross
                    .as_ref()
                    .map_or_else(|| Verdict::warming(true, "sma_cross"), |s| s.since_last(&p.sma_cross))
            });
            let candle_id = MessageId::candle(source, sym, interval.as_str(), bar.open_time()).into_string();
            let candle_id = cycle_candle_id(&candle_id, &cycle.id);
            let at = At { candle_id: &candle_id, symbol: sym, interval, bar: &bar, row: &row };
            let mut signals = rule_signals(&self.config, &at, &prev, &market, sma_cross);
            for s in &mut signals {
                stamp(s, cycle, n);
            }
            let context = ModelContext {
                candle_id,
                source: source.to_string(),
                symbol: sym.to_string(),
                interval,
                open_time: bar.open_time(),
                open: bar.open(),
                high: bar.high(),
                low: bar.low(),
                close: bar.close(),
                market,
                indicators: row,
                timeframes,
            };
            out.push((Inferred { signals, context }, n));
        }
        out
    }

    /// The latest candle of every interval but `own` among the series keyed `prefix<interval>`.
    fn timeframes(&self, prefix: &str, own: Interval) -> Vec<Timeframe> {
        let mut out: Vec<Timeframe> = self
            .series
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, s)| {
                let interval: Interval = k[prefix.len()..].parse().ok()?;
                let (close, row) = s.last?;
                (interval != own).then_some(Timeframe { interval, open_time: row.timestamp, close, indicators: row })
            })
            .collect();
        out.sort_by_key(|t| t.interval);
        out
    }
}

/// A candle's step through its series ([`InferenceStage::advance`]).
struct Advanced {
    row: IndicatorRow,
    market: MarketCondition,
    /// What the crossing rules remembered before the candle.
    prev: Previous,
    /// The `sma_cross` verdict when that model runs.
    sma_cross: Option<Verdict>,
    /// The learned models' features when one runs (`None` too while they warm up).
    features: Option<Features>,
}

/// The candle the rule models answer about.
struct At<'a> {
    candle_id: &'a str,
    symbol: &'a str,
    interval: Interval,
    bar: &'a Bar,
    row: &'a IndicatorRow,
}

impl<'a> At<'a> {
    /// `candle` itself (id `candle_id`), with its indicators `row`.
    fn candle(candle: &'a Candle, candle_id: &'a str, row: &'a IndicatorRow) -> Self {
        Self { candle_id, symbol: &candle.symbol, interval: candle.interval, bar: &candle.bar, row }
    }
}

/// What one rule model answers about a candle: the decisive part (action, confidence, exits)
/// and, when explaining, the scores, reasoning and features a signal carries.
struct Answer {
    action: Action,
    confidence: f64,
    scores: Vec<(&'static str, f64)>,
    reasoning: String,
    features: Vec<(&'static str, f64)>,
    stop_loss: Option<f64>,
    take_profit: Option<f64>,
}

/// `model`'s answer about the candle `at`: the one place where each rule model is asked, for
/// signals ([`rule_signals`]) and for votes ([`rule_votes`]) alike.
fn answer(
    model: ModelSpec,
    at: &At<'_>,
    prev: &Previous,
    p: &RuleParams,
    sma_cross: Option<&Verdict>,
    explain: bool,
) -> Answer {
    let (bar, row) = (at.bar, at.row);
    let (action, confidence, scores, reasoning, features) = match model {
        ModelSpec::Rule(s) => {
            let v = evaluate(s, bar, row, prev, p, explain);
            let scores = if explain { vec![(s.name(), v.score)] } else { Vec::new() };
            (v.action, v.score, scores, v.reasoning, v.features)
        }
        ModelSpec::Technical => {
            let verdicts: Vec<(Strategy, Verdict)> =
                Strategy::ALL.into_iter().map(|s| (s, evaluate(s, bar, row, prev, p, explain))).collect();
            let (action, confidence) = vote(&verdicts);
            if explain {
                let scores = verdicts.iter().map(|(s, v)| (s.name(), v.score)).collect();
                let reasoning = verdicts
                    .iter()
                    .map(|(s, v)| format!("{}: {} ({})", s.name(), v.action.as_str(), v.reasoning))
                    .collect::<Vec<_>>()
                    .join("; ");
                let features = verdicts.iter().flat_map(|(_, v)| v.features.iter().copied()).collect();
                (action, confidence, scores, reasoning, features)
            } else {
                (action, confidence, Vec::new(), String::new(), Vec::new())
            }
        }
        ModelSpec::SmaCross => {
            // Always computed by the caller when this model is configured.
            let v = sma_cross.cloned().unwrap_or_else(|| Verdict::warming(explain, "sma_cross"));
            let scores = if explain { vec![(model.name(), v.score)] } else { Vec::new() };
            (v.action, v.score, scores, v.reasoning, v.features)
        }
    };
    // The crossover leaves on the opposite cross: no suggested exits.
    let (stop_loss, take_profit) =
        if model == ModelSpec::SmaCross { (None, None) } else { exits(action, bar.close(), row) };
    Answer { action, confidence, scores, reasoning, features, stop_loss, take_profit }
}

/// One signal per configured rule model about the candle `at`.
fn rule_signals(
    config: &StageConfig,
    at: &At<'_>,
    prev: &Previous,
    market: &MarketCondition,
    sma_cross: Option<Verdict>,
) -> Vec<Signal> {
    let bar = at.bar;
    let mut out = Vec::with_capacity(config.models.len());
    for model in &config.models {
        let started = Instant::now();
        let a = answer(*model, at, prev, &config.rules, sma_cross.as_ref(), true);
        out.push(Signal {
            candle_id: at.candle_id.to_string(),
            symbol: at.symbol.to_string(),
            interval: at.interval,
            open_time: bar.open_time(),
            open: Some(bar.open()),
            high: bar.high(),
            low: bar.low(),
            close: bar.close(),
            model: model.name().to_string(),
            model_kind: ModelKind::Rule,
            action: a.action,
            confidence: a.confidence,
            scores: to_map(&a.scores),
            reasoning: a.reasoning,
            features: to_map(&a.features),
            market: market.clone(),
            stop_loss: a.stop_loss,
            take_profit: a.take_profit,
            latency_us: started.elapsed().as_micros() as u64,
            status: SignalStatus::Ok,
            cycle: None,
        });
    }
    out
}

/// One vote per configured rule model about the candle `at`: the signals' decisive fields.
fn rule_votes(config: &StageConfig, at: &At<'_>, prev: &Previous, sma_cross: Option<Verdict>) -> Vec<RuleVote> {
    config
        .models
        .iter()
        .map(|model| {
            let a = answer(*model, at, prev, &config.rules, sma_cross.as_ref(), false);
            RuleVote {
                model: model.name(),
                action: a.action,
                confidence: a.confidence,
                stop_loss: a.stop_loss,
                take_profit: a.take_profit,
            }
        })
        .collect()
}

/// One signal per learned model about the candle `at`, appended to `out`.
fn ml_signals(
    config: &StageConfig,
    at: &At<'_>,
    market: &MarketCondition,
    features: Option<&Features>,
    out: &mut Vec<Signal>,
) {
    let bar = at.bar;
    for model in &config.ml.names {
        let a = ml::answer(&config.ml, model, features, true);
        let (stop_loss, take_profit) = exits(a.action, bar.close(), at.row);
        out.push(Signal {
            candle_id: at.candle_id.to_string(),
            symbol: at.symbol.to_string(),
            interval: at.interval,
            open_time: bar.open_time(),
            open: Some(bar.open()),
            high: bar.high(),
            low: bar.low(),
            close: bar.close(),
            model: model.clone(),
            model_kind: ModelKind::Ml,
            action: a.action,
            confidence: a.confidence,
            scores: a.scores,
            reasoning: a.reasoning,
            features: features.map(ml::named).unwrap_or_default(),
            market: market.clone(),
            stop_loss,
            take_profit,
            latency_us: a.latency_us,
            status: a.status,
            cycle: None,
        });
    }
}

/// One vote per learned model about the candle `at`.
fn ml_votes(config: &StageConfig, at: &At<'_>, features: Option<&Features>) -> Vec<MlVote> {
    config
        .ml
        .names
        .iter()
        .map(|model| {
            let a = ml::answer(&config.ml, model, features, false);
            let (stop_loss, take_profit) = exits(a.action, at.bar.close(), at.row);
            MlVote {
                model: model.clone(),
                action: a.action,
                confidence: a.confidence,
                stop_loss,
                take_profit,
                status: a.status,
            }
        })
        .collect()
}

/// Gives a signal of the `n`-th cycle on its candle its place downstream (see [`CycleTag`]):
/// the cycle's tag, an open time `n` ms after the candle's (newer than the candle's own
/// decisions, older than the next candle), and a flat bar at the close.
pub fn stamp(signal: &mut Signal, cycle: &CycleTag, n: u32) {
    signal.open_time += i64::from(n);
    signal.open = Some(signal.close);
    signal.high = signal.close;
    signal.low = signal.close;
    signal.cycle = Some(cycle.clone());
}

/// `source:symbol:interval` → its parts (the symbol may hold `:`).
fn split_key(key: &str) -> Option<(&str, &str, Interval)> {
    let (source, rest) = key.split_once(':')?;
    let (symbol, interval) = rest.rsplit_once(':')?;
    Some((source, symbol, interval.parse().ok()?))
}

fn series_symbol(key: &str) -> Option<&str> {
    split_key(key).map(|(_, s, _)| s)
}

fn to_map(features: &[(&'static str, f64)]) -> BTreeMap<String, f64> {
    features.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Stop loss 2 ATR away, take profit 3 ATR away, on the side of the action.
fn exits(action: Action, close: f64, row: &IndicatorRow) -> (Option<f64>, Option<f64>) {
    match (action, row.atr_14) {
        (Action::Long, Some(atr)) => (Some(close - 2.0 * atr), Some(close + 3.0 * atr)),
        (Action::Short, Some(atr)) => (Some(close + 2.0 * atr), Some(close - 3.0 * atr)),
        _ => (None, None),
    }
}
