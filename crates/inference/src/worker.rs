//! The inference worker's bus handler: candles of one partition in, signals out.
//!
//! Signals of a batch go out in one pipelined send, before the batch is acknowledged; the
//! stage state is checkpointed with that acknowledgement. If the send fails, the state goes
//! back to what it was before the batch and the batch is retried, so no candle is counted twice.

use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};
use tracing::{debug, error};
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{Delivery, Envelope, Handler, HandlerFactory, Outcome, Producer};
use tradeflow_core::MessageId;
use tradeflow_core::market::Candle;

use crate::stage::{InferenceStage, StageConfig};

pub const SIGNALS: &str = "inf.signals";

/// `tradeflow_inference_*` metrics.
#[derive(Clone)]
pub struct InferenceMetrics {
    pub signals: IntCounterVec,
    pub skipped: IntCounterVec,
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
        registry.register(Box::new(signals.clone()))?;
        registry.register(Box::new(skipped.clone()))?;
        Ok(Self { signals, skipped })
    }
}

pub struct InferenceHandler {
    stage: InferenceStage,
    producer: Producer,
    metrics: InferenceMetrics,
}

impl Handler for InferenceHandler {
    type Msg = Candle;

    fn decode(&self, envelope: &Envelope) -> Result<Candle, DecodeError> {
        envelope.open::<Candle>()
    }

    async fn handle(&mut self, delivery: &Delivery<Candle>) -> Outcome {
        let mut outcomes = self.handle_batch(std::slice::from_ref(delivery)).await;
        outcomes.pop().unwrap_or(Outcome::Retry("no outcome".into()))
    }

    async fn handle_batch(&mut self, batch: &[Delivery<Candle>]) -> Vec<Outcome> {
        let before = self.stage.clone();
        let mut out = Vec::new();
        let mut counted = Vec::new();
        for d in batch {
            match self.stage.on_candle(&d.msg) {
                Ok(signals) => {
                    let cause = MessageId::new(d.envelope.id.clone()).ok();
                    for s in signals {
                        match self.producer.prepare(SIGNALS, &s.id(), &s.symbol, cause.as_ref(), &s) {
                            Ok(o) => out.push(o),
                            Err(e) => {
                                self.stage = before;
                                return batch
                                    .iter()
                                    .map(|_| Outcome::Retry(format!("encoding a signal: {e}")))
                                    .collect();
                            }
                        }
                        counted.push((s.model, s.action));
                    }
                }
                Err(skip) => {
                    debug!(%skip, "candle skipped");
                    self.metrics.skipped.with_label_values(&[d.msg.interval.as_str()]).inc();
                }
            }
        }
        if let Err(e) = self.producer.send(&out).await {
            self.stage = before;
            return batch.iter().map(|_| Outcome::Retry(format!("publishing signals: {e}"))).collect();
        }
        for (model, action) in counted {
            self.metrics.signals.with_label_values(&[model.as_str(), action.as_str()]).inc();
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
        Ok(InferenceHandler { stage, producer: self.producer.clone(), metrics: self.metrics.clone() })
    }
}
