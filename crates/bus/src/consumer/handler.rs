//! What a stage plugs into the consumer runner.

use std::future::Future;

use crate::envelope::{DecodeError, EnvelopeHead, EnvelopeRef};
use crate::producer::Outgoing;
use crate::reply::EntryId;

/// One decoded message handed to a handler.
#[derive(Debug, Clone)]
pub struct Delivery<M> {
    /// Stream entry id in its partition.
    pub entry_id: EntryId,
    pub partition: u32,
    /// 1 on first delivery; counts redeliveries, claims and retries.
    pub deliveries: u32,
    /// The envelope's fields; its payload is `msg`.
    pub envelope: EnvelopeHead,
    pub msg: M,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: acknowledge it.
    Done,
    /// Failed for now: retry after the stream's backoff; after `max_deliveries` attempts the
    /// entry goes to the DLQ with this error. The handler must leave no effect behind.
    Retry(String),
    /// Can never succeed (e.g. a payload that decodes but is invalid): to the DLQ now.
    Reject(String),
}

/// The stage logic driven by the runner, one instance per owned partition.
///
/// Messages of one partition arrive in stream order, one batch at a time; nothing else runs
/// on this instance meanwhile, so it may keep per-partition state without locks.
pub trait Handler: Send + Sync + 'static {
    type Msg: Send + Sync + 'static;

    /// Turns an envelope into the stage's message type. An error sends the entry to the DLQ
    /// at once with reason `decode_error`; nothing is retried. The envelope is borrowed from
    /// the Redis reply: [`EnvelopeRef::open`] decodes the payload without copying it first.
    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<Self::Msg, DecodeError>;

    /// Handles one message.
    fn handle(&mut self, delivery: &Delivery<Self::Msg>) -> impl Future<Output = Outcome> + Send;

    /// Handles a batch, returning one outcome per message, in order. The default calls
    /// [`Handler::handle`] for each; override it to batch the stage's own I/O.
    fn handle_batch(&mut self, batch: &[Delivery<Self::Msg>]) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            let mut out = Vec::with_capacity(batch.len());
            for d in batch {
                out.push(self.handle(d).await);
            }
            out
        }
    }

    /// The state to checkpoint after a batch, stored atomically with its acks. `None` (the
    /// default) for stateless stages: nothing is written.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// What the batch (or tick) just run produced, for the runner to send in the same
    /// MULTI/EXEC as the batch's acknowledgements, dead letters and checkpoint: the outputs
    /// exist if and only if their causes are acknowledged, and a hop costs one round trip
    /// fewer than a send of its own. Only outputs of messages whose outcome is
    /// [`Outcome::Done`] (or rejected) may be in it. If that round trip fails the partition
    /// restarts from its last checkpoint, so in-memory state never runs ahead of what was sent.
    /// The default (nothing) suits handlers that produce nothing or send on their own.
    fn take_outbox(&mut self) -> Vec<Outgoing> {
        Vec::new()
    }

    /// How often [`Handler::tick`] runs while the partition is owned; `None` (the default):
    /// never. For work driven by time rather than messages (e.g. join deadlines).
    fn tick_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Time-driven work. Return [`Tick::Changed`] when the state changed, so that the runner
    /// checkpoints it (with no ack), sending what [`Handler::take_outbox`] holds in the same
    /// MULTI/EXEC.
    fn tick(&mut self) -> impl Future<Output = Tick> + Send {
        async { Tick::Unchanged }
    }
}

/// What a [`Handler::tick`] did to the handler's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    Unchanged,
    Changed,
}

/// Makes the handler of a partition when this process gains it.
pub trait HandlerFactory: Send + Sync + 'static {
    type Handler: Handler;

    /// `restored` is the state of the partition's last checkpoint, if one was stored.
    fn create(&self, partition: u32, restored: Option<&[u8]>) -> Result<Self::Handler, String>;
}
