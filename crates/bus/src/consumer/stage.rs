//! The wiring every stage's handler shares, once: a stage's logic ([`StageLogic`]) runs a
//! batch and prepares its outputs; [`StageHandler`] makes that a [`Handler`]: one message is a
//! batch of one, the outputs wait in an outbox for the runner's MULTI/EXEC, a batch (or tick)
//! whose outputs cannot be prepared leaves no trace (the state saved before it is restored and
//! every message is retried), and a checkpoint that cannot be encoded is logged, not written.

use std::future::Future;
use std::time::Duration;

use tracing::{error, warn};

use super::handler::{Delivery, Handler, Outcome, Tick};
use crate::envelope::{DecodeError, EnvelopeRef};
use crate::producer::Outgoing;

/// A stage as its worker drives it: pure state and the outputs it prepares.
pub trait StageLogic: Send + Sync + 'static {
    type Msg: Send + Sync + 'static;
    /// What a failed batch restores: the state the batch may have changed.
    type Saved: Send;

    /// Turns an envelope into the stage's input (an error dead-letters it; see [`Handler`]).
    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<Self::Msg, DecodeError>;

    fn save(&self) -> Self::Saved;

    fn restore(&mut self, saved: Self::Saved);

    /// Runs `batch`: the outputs to send with its acknowledgement and one outcome per message.
    /// `Err` (an output could not be prepared): nothing of the batch stands.
    fn run(
        &mut self,
        batch: &[Delivery<Self::Msg>],
    ) -> impl Future<Output = Result<(Vec<Outgoing>, Vec<Outcome>), String>> + Send;

    /// The state to checkpoint after a batch.
    fn checkpoint(&self) -> Result<Vec<u8>, String>;

    /// How often [`StageLogic::on_tick`] runs; `None`: never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Whether a tick has work (checked before the state is saved for it, so that idle ticks
    /// cost nothing).
    fn tick_due(&self) -> bool {
        true
    }

    /// Time-driven work: `Some(outputs)` when the state changed (checkpointed and sent),
    /// `None` when nothing happened, `Err` when an output could not be prepared (the state is
    /// restored; the work comes again at the next tick).
    fn on_tick(&mut self) -> impl Future<Output = Result<Option<Vec<Outgoing>>, String>> + Send {
        async { Ok(None) }
    }
}

/// A [`Handler`] over a [`StageLogic`].
pub struct StageHandler<L> {
    logic: L,
    /// Outputs for the runner to send with the acknowledgement (or the tick's checkpoint).
    outbox: Vec<Outgoing>,
}

impl<L: StageLogic> StageHandler<L> {
    pub fn new(logic: L) -> Self {
        Self { logic, outbox: Vec::new() }
    }

    pub fn logic(&self) -> &L {
        &self.logic
    }
}

impl<L: StageLogic> Handler for StageHandler<L> {
    type Msg = L::Msg;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<L::Msg, DecodeError> {
        self.logic.decode(envelope)
    }

    async fn handle(&mut self, delivery: &Delivery<L::Msg>) -> Outcome {
        let mut outcomes = self.handle_batch(std::slice::from_ref(delivery)).await;
        outcomes.pop().unwrap_or(Outcome::Retry("no outcome".into()))
    }

    async fn handle_batch(&mut self, batch: &[Delivery<L::Msg>]) -> Vec<Outcome> {
        let before = self.logic.save();
        match self.logic.run(batch).await {
            Ok((mut out, outcomes)) => {
                self.outbox.append(&mut out);
                outcomes
            }
            Err(e) => {
                self.logic.restore(before);
                batch.iter().map(|_| Outcome::Retry(format!("preparing the outputs: {e}"))).collect()
            }
        }
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        match self.logic.checkpoint() {
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

    fn tick_interval(&self) -> Option<Duration> {
        self.logic.tick_interval()
    }

    async fn tick(&mut self) -> Tick {
        if !self.logic.tick_due() {
            return Tick::Unchanged;
        }
        let before = self.logic.save();
        match self.logic.on_tick().await {
            Ok(Some(mut out)) => {
                self.outbox.append(&mut out);
                Tick::Changed
            }
            Ok(None) => Tick::Unchanged,
            Err(e) => {
                warn!(error = %e, "preparing a tick's outputs failed; tried again at the next tick");
                self.logic.restore(before);
                Tick::Unchanged
            }
        }
    }
}
