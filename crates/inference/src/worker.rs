//! The inference worker's bus handler: candles of one partition in, signals out.
//!
//! Per batch: the stage gives each candle's rule signals and context; then every LLM analyst
//! reads every context of the batch at once, each analysis ending by its analyst's timeout (an
//! analyst that fails or is slow gives an error signal, so the partition never waits longer
//! than the slowest timeout). Signals of a batch go out candle by candle (rule models, then
//! analysts) in the runner's MULTI/EXEC that acknowledges the batch and checkpoints the stage
//! state. If that fails the partition restarts from its checkpoint and the batch is handled
//! again, so no candle is counted twice (the analysts' answers come from their cache then).

use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};
use tracing::{debug, error};
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{Delivery, EnvelopeRef, Handler, HandlerFactory, Outcome, Outgoing, Producer};
use tradeflow_core::MessageId;
use tradeflow_core::market::Candle;
use tradeflow_core::signal::SignalStatus;

use crate::llm::run_analysts;
use crate::stage::{InferenceStage, StageConfig};

pub const SIGNALS: &str = "inf.signals";

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

pub struct InferenceHandler {
    stage: InferenceStage,
    producer: Producer,
    /// Signals for the runner to send with the batch's acknowledgement.
    outbox: Vec<Outgoing>,
    metrics: InferenceMetrics,
}

impl Handler for InferenceHandler {
    type Msg = Candle;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<Candle, DecodeError> {
        envelope.open::<Candle>()
    }

    async fn handle(&mut self, delivery: &Delivery<Candle>) -> Outcome {
        let mut outcomes = self.handle_batch(std::slice::from_ref(delivery)).await;
        outcomes.pop().unwrap_or(Outcome::Retry("no outcome".into()))
    }

    async fn handle_batch(&mut self, batch: &[Delivery<Candle>]) -> Vec<Outcome> {
        let before = self.stage.clone();
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
                match self.producer.prepare(SIGNALS, &s.id(), &s.symbol, cause.as_ref(), &s) {
                    Ok(o) => out.push(o),
                    Err(e) => {
                        self.stage = before;
                        return batch.iter().map(|_| Outcome::Retry(format!("encoding a signal: {e}"))).collect();
                    }
                }
                counted.push((s.model, s.action, s.status != SignalStatus::Ok));
            }
        }
        self.outbox.append(&mut out);
        for (model, action, error) in counted {
            self.metrics.signals.with_label_values(&[model.as_str(), action.as_str()]).inc();
            if error {
                self.metrics.errors.with_label_values(&[model.as_str()]).inc();
            }
        }
        vec![Outcome::Done; batch.len()]
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        match self.stage.snapshot() {
            Ok(s) => Some(s),
            Err(e) => {
                error!(error = %e, "no checkpoint written");
                None
            }
        }
    }

    fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }
}

/// Makes the handler of each partition, restoring its checkpoint.
pub struct InferenceFactory {
    pub config: Arc<StageConfig>,
    pub producer: Producer,
    pub metrics: InferenceMetrics,
}

impl HandlerFactory for InferenceFactory {
    type Handler = InferenceHandler;

    fn create(&self, _partition: u32, restored: Option<&[u8]>) -> Result<InferenceHandler, String> {
        let stage = match restored {
            Some(bytes) => InferenceStage::restore(self.config.clone(), bytes)?,
            None => InferenceStage::new(self.config.clone()),
        };
        Ok(InferenceHandler {
            stage,
            producer: self.producer.clone(),
            outbox: Vec::new(),
            metrics: self.metrics.clone(),
        })
    }
}
