//! Following `ctl.commands`: every worker process folds the whole command stream into a
//! [`ControlState`] and shares it through a `watch` channel.
//!
//! A consumer group hands each entry to one consumer, but a command must reach every worker
//! (broadcast), so the follower reads with plain XREAD from the start of the stream: a worker
//! that starts (or restarts) late learns at once that trading is paused or stopped. The
//! stream is small (MAXLEN ~100k, one partition by default).

use std::time::Duration;

use redis::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tradeflow_core::control::{ControlCommand, ControlState};

use crate::connection::Bus;
use crate::envelope::{ENVELOPE_FIELD, Envelope};
use crate::error::BusError;
use crate::producer::Producer;
use crate::reply::{self, EntryId};

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
    let Ok(spec) = bus.topology().stream(CONTROL_STREAM).cloned() else {
        warn!("no {CONTROL_STREAM} stream in the topology: operator commands are not followed");
        return;
    };
    let keys: Vec<String> = (0..spec.partitions).map(|p| bus.keys().partition(CONTROL_STREAM, p)).collect();
    let mut last: Vec<EntryId> = vec![EntryId::ZERO; keys.len()];
    let block = Duration::from_millis(200);
    let mut conn = None;
    while !stop.is_cancelled() {
        if conn.is_none() {
            match bus.blocking_connection(block).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    warn!(error = %e, "control follower cannot connect; retrying");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(1000).arg("BLOCK").arg(block.as_millis() as u64).arg("STREAMS");
        for k in &keys {
            cmd.arg(k);
        }
        for id in &last {
            cmd.arg(id.to_string());
        }
        let reply = tokio::select! {
            _ = stop.cancelled() => return,
            r = cmd.query_async::<Value>(c) => r,
        };
        let v = match reply {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "control follower read failed; reconnecting");
                conn = None;
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                continue;
            }
        };
        let batches = match per_stream(&v) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "control follower could not read the reply");
                continue;
            }
        };
        let mut changed = false;
        let mut state = tx.borrow().clone();
        for (key, entries) in batches {
            let Some(i) = keys.iter().position(|k| *k == key) else { continue };
            for entry in entries {
                last[i] = last[i].max(entry.id);
                let Some(bytes) = entry.field(ENVELOPE_FIELD) else { continue };
                match Envelope::decode(bytes).and_then(|e| e.open::<ControlCommand>()) {
                    Ok(c) => {
                        info!(command = c.command.name(), id = %c.id, actor = %c.actor, "operator command");
                        state.apply(&c);
                        changed = true;
                    }
                    Err(e) => warn!(entry = %entry.id, error = %e, "unreadable control command skipped"),
                }
            }
        }
        if changed {
            tx.send_replace(state);
        }
    }
}

/// XREAD over several streams: `nil` or `[[key, [entries]], ...]`.
fn per_stream(v: &Value) -> Result<Vec<(String, Vec<reply::RawEntry>)>, BusError> {
    let bad = |reason: &str| BusError::Reply { op: "XREAD", reason: reason.into() };
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err(bad("expected an array of streams")),
    };
    let mut out = Vec::with_capacity(streams.len());
    for s in streams {
        let Value::Array(kv) = s else { return Err(bad("stream item is not an array")) };
        let (Some(k), Some(list)) = (kv.first(), kv.get(1)) else {
            return Err(bad("stream item lacks key or entries"));
        };
        let key = match k {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return Err(bad("stream key is not a string")),
        };
        out.push((key, reply::entries("XREAD", list)?));
    }
    Ok(out)
}
