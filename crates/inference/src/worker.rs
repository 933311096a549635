//! The inference worker's bus handler: candles of one partition in, signals out.
//!
//! Per batch: the stage gives each candle's rule signals and context; then every LLM analyst
//! reads every context of the batch at once, each analysis ending by its analyst's timeout (an
//! analyst that fails or is slow gives an error signal, so the partition never waits longer
//! than the slowest timeout). Signals of a batch go out candle by candle (rule models, then
//! analysts) in the runner's MULTI/EXEC that acknowledges the batch and checkpoints the stage
//! state. If that fails the partition restarts from its checkpoint and the batch is handled
//! again, so no candle is counted twice (the analysts' answers come from their cache then).
//!
//! Analysis cycles: with the control state (`ctl.commands`), each partition checks every
//! [`CYCLE_CHECK`] for `trigger` commands it has not obeyed yet (and that are at most
//! [`CYCLE_MAX_AGE_MS`] old: a worker starting afresh does not replay history). For each, every
//! series of the trigger's symbol it holds gives its rule signals and its analysts' answers
//! about its latest candle again, now (the analysts are asked whatever the candle's age: an
//! operator asked), as the cycle's signals ([`tradeflow_core::signal::CycleTag`]), after a
//! [`CycleEvent`] `start` on `audit.events`; they go out with the checkpoint that remembers the
//! cycle as obeyed, so a cycle runs once per partition.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::watch;
use tracing::{debug, info};
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{Delivery, EnvelopeRef, HandlerFactory, Outcome, Outgoing, Producer, StageHandler, StageLogic};
use tradeflow_core::MessageId;
use tradeflow_core::control::{ControlState, CycleEvent, CyclePhase, TriggerSeen};
use tradeflow_core::market::Candle;
use tradeflow_core::signal::{CycleTag, Signal, SignalStatus};
use tradeflow_core::time::now_ms;

use crate::llm::run_analysts;
use crate::news::Headlines;
use crate::stage::{InferenceStage, StageConfig};

pub const SIGNALS: &str = "inf.signals";
pub const AUDIT: &str = "audit.events";
/// How often a partition looks for triggers to obey.
pub const CYCLE_CHECK: Duration = Duration::from_millis(250);
/// A trigger older than this is history, not a request (a worker that starts afresh).
pub const CYCLE_MAX_AGE_MS: i64 = 60_000;

/// `tradeflow_inference_*` metrics.
#[derive(Clone)]
pub struct InferenceMetrics {
    pub signals: IntCounterVec,
    pub skipped: IntCounterVec,
    /// Error signals (a model that failed or timed out), by model.
    pub errors: IntCounterVec,
}

impl InferenceMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let signals = IntCounterVec::new(
            Opts::new("tradeflow_inference_signals_total", "Signals emitted, by model and action."),
            &["model", "action"],
        )?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "tradeflow_inference_skipped_total",
                "Candles that produced no signal because they were not newer than their series' last (repeats).",
            ),
            &["interval"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "tradeflow_inference_signal_errors_total",
                "Error signals (the model failed, timed out or was not asked), by model; also counted in signals_total as hold.",
            ),
            &["model"],
        )?;
        registry.register(Box::new(signals.clone()))?;
        registry.register(Box::new(skipped.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        Ok(Self { signals, skipped, errors })
    }
}

/// The inference stage as its worker drives it (through [`StageHandler`]).
pub struct InferenceHandler {
    stage: InferenceStage,
    producer: Producer,
    metrics: InferenceMetrics,
    /// The operator commands, for `trigger`s; `None`: no analysis cycles.
    control: Option<watch::Receiver<ControlState>>,
}

impl InferenceHandler {
    /// Runs `trigger`'s cycle on this partition's series: its outputs and how many signals.
    async fn cycle(&mut self, trigger: &TriggerSeen) -> Result<(Vec<Outgoing>, usize), String> {
        let tag = CycleTag { id: trigger.id.clone(), profiles: trigger.profiles.clone() };
        let mut inferred = self.stage.on_trigger(&tag, trigger.symbol.as_deref());
        let analysts = self.stage.config().analysts.clone();
        if !analysts.is_empty() {
            // Asked now, at the candle's close: an operator's question is answered whatever
            // the candle's age (the age limit keeps replays from the analysts).
            let asked = inferred.iter().map(|(i, _)| {
                let ctx = &i.context;
                futures_util::future::join_all(analysts.iter().map(move |a| a.analyse_at(ctx, ctx.close_time())))
            });
            let answers: Vec<Vec<Signal>> = futures_util::future::join_all(asked).await;
            for ((i, n), llm) in inferred.iter_mut().zip(answers) {
                for mut s in llm {
                    crate::stage::stamp(&mut s, &tag, *n);
                    i.signals.push(s);
                }
            }
        }
        let cause = MessageId::from_parts(&[&trigger.id]);
        let mut out = Vec::new();
        let mut produced = 0;
        for (i, _) in &inferred {
            let start = CycleEvent {
                cycle: trigger.id.clone(),
                phase: CyclePhase::Start,
                symbol: i.context.symbol.clone(),
                candle_id: i.context.candle_id.clone(),
                models: i.signals.iter().map(|s| s.model.clone()).collect(),
                decided: Vec::new(),
                actor: trigger.actor.clone(),
                time: now_ms(),
            };
            out.push(
                self.producer
                    .prepare(AUDIT, &start.message_id(), &start.symbol, Some(&cause), &start)
                    .map_err(|e| e.to_string())?,
            );
            for s in &i.signals {
                out.push(
                    self.producer.prepare(SIGNALS, &s.id(), &s.symbol, Some(&cause), s).map_err(|e| e.to_string())?,
                );
            }
            produced += i.signals.len();
        }
        for (i, _) in &inferred {
            self.count(&i.signals);
        }
        Ok((out, produced))
    }

    /// The triggers this partition has not run yet (recent enough to still be wanted).
    fn due(&self) -> Vec<TriggerSeen> {
        let Some(control) = &self.control else { return Vec::new() };
        let now = now_ms();
        control
            .borrow()
            .triggers
            .iter()
            .filter(|t| now - t.issued_at <= CYCLE_MAX_AGE_MS && !self.stage.cycle_seen(&t.id))
            .cloned()
            .collect()
    }

    fn count(&self, signals: &[Signal]) {
        for s in signals {
            self.metrics.signals.with_label_values(&[s.model.as_str(), s.action.as_str()]).inc();
            if s.status != SignalStatus::Ok {
                self.metrics.errors.with_label_values(&[s.model.as_str()]).inc();
            }
        }
    }
}

impl StageLogic for InferenceHandler {
    type Msg = Candle;
    type Saved = InferenceStage;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<Candle, DecodeError> {
        envelope.open::<Candle>()
    }

    fn save(&self) -> InferenceStage {
        self.stage.clone()
    }

    fn restore(&mut self, saved: InferenceStage) {
        self.stage = saved;
    }

    async fn run(&mut self, batch: &[Delivery<Candle>]) -> Result<(Vec<Outgoing>, Vec<Outcome>), String> {
        // Per candle that gave signals: its cause and its signals; and the analysts' contexts.
        let mut per_candle = Vec::with_capacity(batch.len());
        let mut contexts = Vec::new();
        let with_analysts = !self.stage.config().analysts.is_empty();
        for d in batch {
            let inferred = if with_analysts {
                self.stage.on_candle_with_context(&d.msg).map(|i| {
                    contexts.push(i.context);
                    i.signals
                })
            } else {
                self.stage.on_candle(&d.msg)
            };
            match inferred {
                Ok(signals) => per_candle.push((MessageId::new(d.envelope.id.clone()).ok(), signals)),
                Err(skip) => {
                    debug!(%skip, "candle skipped");
                    self.metrics.skipped.with_label_values(&[d.msg.interval.as_str()]).inc();
                }
            }
        }
        if !contexts.is_empty() {
            let answers = run_analysts(&self.stage.config().analysts, &contexts).await;
            for ((_, signals), llm) in per_candle.iter_mut().zip(answers) {
                signals.extend(llm);
            }
        }
        let mut out = Vec::new();
        let mut counted = Vec::new();
        for (cause, signals) in per_candle {
            for s in signals {
                out.push(
                    self.producer
                        .prepare(SIGNALS, &s.id(), &s.symbol, cause.as_ref(), &s)
                        .map_err(|e| format!("encoding a signal: {e}"))?,
                );
                counted.push((s.model, s.action, s.status != SignalStatus::Ok));
            }
        }
        for (model, action, error) in counted {
            self.metrics.signals.with_label_values(&[model.as_str(), action.as_str()]).inc();
            if error {
                self.metrics.errors.with_label_values(&[model.as_str()]).inc();
            }
        }
        Ok((out, vec![Outcome::Done; batch.len()]))
    }

    fn checkpoint(&self) -> Result<Vec<u8>, String> {
        self.stage.snapshot()
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.control.as_ref().map(|_| CYCLE_CHECK)
    }

    fn tick_due(&self) -> bool {
        !self.due().is_empty()
    }

    /// Analysis cycles: each trigger not run here yet, once.
    async fn on_tick(&mut self) -> Result<Option<Vec<Outgoing>>, String> {
        let due = self.due();
        if due.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for t in &due {
            // A failure sends nothing of any of them: tried again at the next tick.
            let (mut produced, n) = self.cycle(t).await.map_err(|e| format!("analysis cycle {}: {e}", t.id))?;
            info!(cycle = %t.id, symbol = ?t.symbol, signals = n, "analysis cycle");
            out.append(&mut produced);
        }
        Ok(Some(out))
    }
}

/// Gives the analysts that want headlines one shared book, followed from `md.news` for as long
/// as they hold it. Done by the first partition created; the analysts are shared by every
/// partition of the process, so later calls find them attached and do nothing.
fn attach_news(config: &StageConfig, producer: &Producer) {
    let wanting: Vec<_> = config.analysts.iter().filter(|a| a.wants_news()).collect();
    if wanting.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let book = Arc::new(Headlines::new());
    let attached = wanting.iter().filter(|a| a.attach_news(book.clone())).count();
    if attached > 0 {
        runtime.spawn(crate::news::follow(producer.bus().clone(), Arc::downgrade(&book)));
    }
}

/// Makes the handler of each partition, restoring its checkpoint.
pub struct InferenceFactory {
    pub config: Arc<StageConfig>,
    pub producer: Producer,
    pub metrics: InferenceMetrics,
    /// The operator commands: partitions obey `trigger`s (analysis cycles); `None`: they do not.
    pub control: Option<watch::Receiver<ControlState>>,
}

impl HandlerFactory for InferenceFactory {
    type Handler = StageHandler<InferenceHandler>;

    fn create(&self, _partition: u32, restored: Option<&[u8]>) -> Result<StageHandler<InferenceHandler>, String> {
        attach_news(&self.config, &self.producer);
        let stage = match restored {
            Some(bytes) => InferenceStage::restore(self.config.clone(), bytes)?,
            None => InferenceStage::new(self.config.clone()),
        };
        Ok(StageHandler::new(InferenceHandler {
            stage,
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
            control: self.control.clone(),
        }))
    }
}
