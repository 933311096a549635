//! The ensemble worker's bus handler: signals of one partition in, decisions out; deadlines
//! fire from the runner's tick even when no signal comes.
//!
//! Decisions are keyed by profile (not symbol): the accounts that follow a profile keep their
//! state in the risk partition of that profile, so every decision they trade must reach it, in
//! order.
//!
//! Decisions (and late-signal records) of a batch go out in the runner's MULTI/EXEC that
//! acknowledges the batch and checkpoints the join state: all of it or none. If that fails the
//! partition restarts from its checkpoint and the batch is handled again.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing::warn;
use tradeflow_bus::envelope::DecodeError;
use tradeflow_bus::{Delivery, EnvelopeRef, HandlerFactory, Outcome, Outgoing, Producer, StageHandler, StageLogic};
use tradeflow_core::MessageId;
use tradeflow_core::decision::{Decision, LateSignal};
use tradeflow_core::signal::SignalVote;
use tradeflow_core::time::now_ms;

use crate::profile::Profile;
use crate::stage::EnsembleStage;

pub const DECISIONS: &str = "ens.decisions";
pub const AUDIT: &str = "audit.events";

/// `tradeflow_ensemble_*` metrics.
#[derive(Clone)]
pub struct EnsembleMetrics {
    pub decisions: IntCounterVec,
    pub late: IntCounterVec,
    /// Confidence of each decision, by profile and action (hold included): how sure the
    /// ensemble is when it trades, and how often it is sure enough to.
    pub confidence: HistogramVec,
}

impl EnsembleMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let decisions = IntCounterVec::new(
            Opts::new("tradeflow_ensemble_decisions_total", "Decisions, by profile, action and trigger."),
            &["profile", "action", "trigger"],
        )?;
        let late = IntCounterVec::new(
            Opts::new(
                "tradeflow_ensemble_late_signals_total",
                "Signals that came after their candle was decided, by model.",
            ),
            &["model"],
        )?;
        let confidence = HistogramVec::new(
            HistogramOpts::new(
                "tradeflow_ensemble_decision_confidence",
                "Confidence of each decision (0..1), by profile and action.",
            )
            .buckets(prometheus::linear_buckets(0.1, 0.1, 10)?),
            &["profile", "action"],
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(late.clone()))?;
        registry.register(Box::new(confidence.clone()))?;
        Ok(Self { decisions, late, confidence })
    }
}

/// The ensemble stage as its worker drives it (through [`StageHandler`]).
pub struct EnsembleHandler {
    stage: EnsembleStage,
    producer: Producer,
    metrics: EnsembleMetrics,
    tick: Duration,
}

impl EnsembleHandler {
    /// The decisions, late-signal records and cycle completions (taken from the stage).
    fn prepare(&mut self, decisions: &[Decision], late: &[LateSignal], out: &mut Vec<Outgoing>) -> Result<(), String> {
        for d in decisions {
            let cause = MessageId::new(d.candle_id.clone()).ok();
            out.push(
                self.producer.prepare(DECISIONS, &d.id(), &d.profile, cause.as_ref(), d).map_err(|e| e.to_string())?,
            );
        }
        for l in late {
            out.push(self.producer.prepare(AUDIT, &l.id(), &l.symbol, None, l).map_err(|e| e.to_string())?);
        }
        // After the decisions they complete.
        for c in self.stage.take_cycle_events() {
            out.push(
                self.producer
                    .prepare(AUDIT, &c.message_id(), &c.symbol, MessageId::new(c.candle_id.clone()).ok().as_ref(), &c)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(())
    }

    fn count(&self, decisions: &[Decision], late: &[LateSignal]) {
        for d in decisions {
            let trigger = format!("{:?}", d.trigger).to_lowercase();
            self.metrics.decisions.with_label_values(&[d.profile.as_str(), d.action.as_str(), trigger.as_str()]).inc();
            self.metrics.confidence.with_label_values(&[d.profile.as_str(), d.action.as_str()]).observe(d.confidence);
        }
        for l in late {
            warn!(signal = %l.signal_id, "late signal recorded");
            self.metrics.late.with_label_values(&[l.model.as_str()]).inc();
        }
    }
}

impl StageLogic for EnsembleHandler {
    type Msg = SignalVote;
    type Saved = EnsembleStage;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<SignalVote, DecodeError> {
        envelope.open::<SignalVote>()
    }

    fn save(&self) -> EnsembleStage {
        self.stage.clone()
    }

    fn restore(&mut self, saved: EnsembleStage) {
        self.stage = saved;
    }

    async fn run(&mut self, batch: &[Delivery<SignalVote>]) -> Result<(Vec<Outgoing>, Vec<Outcome>), String> {
        let now = now_ms();
        let (mut decisions, mut late) = (Vec::new(), Vec::new());
        for d in batch {
            let o = self.stage.on_signal_vote(&d.msg, now);
            decisions.extend(o.decisions);
            late.extend(o.late);
        }
        let mut out = Vec::with_capacity(decisions.len() + late.len());
        self.prepare(&decisions, &late, &mut out)?;
        self.count(&decisions, &late);
        Ok((out, vec![Outcome::Done; batch.len()]))
    }

    fn checkpoint(&self) -> Result<Vec<u8>, String> {
        self.stage.snapshot()
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.tick)
    }

    fn tick_due(&self) -> bool {
        self.stage.next_deadline().is_some_and(|d| d <= now_ms())
    }

    /// Deadlines: a profile decides with what arrived.
    async fn on_tick(&mut self) -> Result<Option<Vec<Outgoing>>, String> {
        let decisions = self.stage.on_tick(now_ms());
        let mut out = Vec::new();
        self.prepare(&decisions, &[], &mut out)?;
        self.count(&decisions, &[]);
        Ok(Some(out))
    }
}

/// Makes the handler of each partition, restoring its checkpoint.
pub struct EnsembleFactory {
    pub profiles: Arc<Vec<Profile>>,
    pub producer: Producer,
    pub metrics: EnsembleMetrics,
    /// How often deadlines are checked.
    pub tick: Duration,
}

impl HandlerFactory for EnsembleFactory {
    type Handler = StageHandler<EnsembleHandler>;

    fn create(&self, _partition: u32, restored: Option<&[u8]>) -> Result<StageHandler<EnsembleHandler>, String> {
        let stage = match restored {
            Some(bytes) => EnsembleStage::restore(self.profiles.clone(), bytes)?,
            None => EnsembleStage::new(self.profiles.clone()),
        };
        Ok(StageHandler::new(EnsembleHandler {
            stage,
            producer: self.producer.clone(),
            metrics: self.metrics.clone(),
            tick: self.tick,
        }))
    }
}
