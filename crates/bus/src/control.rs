//! Following `ctl.commands`: every worker process folds the whole command stream into a
//! [`ControlState`] and shares it through a `watch` channel.
//!
//! A consumer group hands each entry to one consumer, but a command must reach every worker
//! (broadcast), so the follower reads with plain XREAD from the start of the stream: a worker
//! that starts (or restarts) late learns at once that trading is paused or stopped. The
//! stream is small (MAXLEN ~100k, one partition by default).

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tradeflow_core::control::{ControlCommand, ControlState};

use crate::connection::Bus;
use crate::error::BusError;
use crate::producer::Producer;
use crate::tap::{From, Tap};

pub const CONTROL_STREAM: &str = "ctl.commands";

/// Publishes a command (CLI, edge).
pub async fn send_command(producer: &Producer, command: &ControlCommand) -> Result<(), BusError> {
    let out = producer.prepare(CONTROL_STREAM, &command.message_id(), "all", None, command)?;
    producer.send(&[out]).await.map(|_| ())
}

/// Reads every command once, from the start of the stream, and keeps `tx` up to date until
/// `stop` is cancelled. Undecodable entries are skipped with a warning (they are the
/// `control` group's DLQ business, not the follower's).
pub async fn follow(bus: Bus, tx: watch::Sender<ControlState>, stop: CancellationToken) {
    let block = Duration::from_millis(200);
    let mut tap = loop {
        match Tap::open(&bus, &[CONTROL_STREAM], From::Start, block).await {
            Ok(t) => break t,
            Err(BusError::UnknownStream { .. }) => {
                warn!("no {CONTROL_STREAM} stream in the topology: operator commands are not followed");
                return;
            }
            Err(e) => {
                warn!(error = %e, "control follower cannot start; retrying");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
            }
        }
    };
    while !stop.is_cancelled() {
        let batch = tokio::select! {
            _ = stop.cancelled() => return,
            r = tap.next() => r,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "control follower read failed; reconnecting");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let mut state = tx.borrow().clone();
        for t in batch {
            match t.envelope.open::<ControlCommand>() {
                Ok(c) => {
                    info!(command = c.command.name(), id = %c.id, actor = %c.actor, "operator command");
                    state.apply(&c);
                }
                Err(e) => warn!(entry = %t.entry_id, error = %e, "unreadable control command skipped"),
            }
        }
        tx.send_replace(state);
    }
}
