//! The loop that consumes one partition for one group, while this process holds its lease.
//!
//! Order of work when the partition is gained:
//! 1. take over every entry pending in the group (XAUTOCLAIM min-idle 0 JUSTID): the lease
//!    says no one else may be handling them, and JUSTID leaves their delivery counts alone;
//! 2. re-read this consumer's pending entries from `0`, in order, with their delivery counts;
//! 3. read new entries with `>`, COUNT-batched, blocking on a connection of its own; a group
//!    with a `linger_ms` waits that long after a read that did not fill COUNT, so that entries
//!    accumulate (the audit writer: larger transactions, fewer round trips).
//!
//! Between reads it retries parked failures whose backoff has passed (XCLAIM by id, which
//! counts the delivery) and claims entries left idle longer than `claim_idle` under *other*
//! consumers. It never claims its own pending entries by idle time: those are either being
//! handled right now or parked for a retry, and claiming them would hand the same entry to
//! this process twice (the XAUTOCLAIM duplicate trap).
//!
//! Everything one batch decided (the handler's outputs, acks, the checkpoint, dead-letter moves)
//! goes to Redis in one MULTI: one round trip, all or nothing. A message's outputs therefore
//! exist exactly when it is acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::BusConn;
use redis::Value;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};
use tradeflow_core::time::now_ms;

use super::Shared;
use super::handler::{Delivery, Handler, Outcome, Tick};
use crate::backpressure;
use crate::checkpoint::Checkpoint;
use crate::dlq::{DeadLetterDraft, DeadLetterReason, add_move};
use crate::envelope::EnvelopeRef;
use crate::error::{BusError, RedisContext};
use crate::pack;
use crate::producer::{Outgoing, add_xadds, count_produced};
use crate::reply::{self, EntryId, RawEntry};

/// Least time between two trims of acknowledged entries by one partition worker.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// A failed entry waiting for its retry.
#[derive(Debug, Clone)]
struct Parked {
    deliveries: u32,
    due: Instant,
    /// Per message of the entry (one, or a pack's): handled or dead-lettered already, so the
    /// retry skips it. Kept in memory only: after a restart the whole entry is handled again,
    /// which the stages' idempotence on message ids absorbs (at-least-once delivery).
    settled: Vec<bool>,
}

/// A dead letter decided during a batch.
struct Dead<'e> {
    /// Index of the entry in the batch.
    index: usize,
    /// The one message dead-lettered, when the entry decoded into messages; `None`: the entry
    /// itself is unreadable and moves whole (acknowledged by its move).
    message: Option<&'e [u8]>,
    reason: DeadLetterReason,
    error: String,
    attempts: u32,
    message_id: Option<String>,
}

/// What became of one entry's messages during a batch.
struct EntryState {
    deliveries: u32,
    /// Per message: handled or dead-lettered.
    settled: Vec<bool>,
    /// The entry moves to the DLQ whole.
    dead: bool,
}

pub(crate) struct PartitionWorker<H: Handler> {
    sh: Arc<Shared>,
    p: u32,
    key: String,
    ckpt_key: String,
    handler: H,
    reader: Option<BusConn>,
    parked: BTreeMap<EntryId, Parked>,
    next_scan: Instant,
    next_tick: Option<Instant>,
    /// When to trim what every group has acknowledged next (streams with `trim_acked`).
    next_trim: Instant,
    /// The last trim failed (logged once until one succeeds again).
    trim_failing: bool,
    /// Highest entry id acknowledged by this worker, for checkpoints written by ticks.
    last_acked: Option<EntryId>,
    /// The partition's stop (shutdown or hand-over), checked between the batches of a read.
    stop: CancellationToken,
}

impl<H: Handler> PartitionWorker<H> {
    pub(crate) fn new(sh: Arc<Shared>, p: u32, handler: H) -> Self {
        let key = sh.bus.keys().partition(&sh.spec.name, p);
        let ckpt_key = sh.bus.keys().checkpoint(&sh.spec.name, p, &sh.group);
        let next_tick = handler.tick_interval().map(|i| Instant::now() + i);
        Self {
            sh,
            p,
            key,
            ckpt_key,
            handler,
            reader: None,
            parked: BTreeMap::new(),
            next_scan: Instant::now(),
            next_tick,
            next_trim: Instant::now(),
            trim_failing: false,
            last_acked: None,
            stop: CancellationToken::new(),
        }
    }

    /// Runs until `stop` is cancelled (then returns after the batch in hand is acked) or a
    /// Redis error ends it (the caller restores from the checkpoint and starts again).
    pub(crate) async fn run(mut self, stop: &CancellationToken) -> Result<(), BusError> {
        self.stop = stop.clone();
        self.take_over().await?;
        let mut after = EntryId::ZERO;
        while !stop.is_cancelled() {
            let entries = self.read(&after.to_string(), None).await?;
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                break;
            };
            let (first, last) = (first.id, last.id);
            after = last;
            let counts = self.pending_counts(first, last).await?;
            self.process(entries, Some(&counts)).await?;
        }
        while !stop.is_cancelled() {
            self.retry_due().await?;
            if Instant::now() >= self.next_scan {
                self.scan().await?;
                self.next_scan = Instant::now() + (self.sh.spec.claim_idle / 2).min(Duration::from_secs(5));
            }
            self.tick_if_due().await?;
            self.trim_if_due().await;
            let mut block = self.sh.spec.block;
            if let Some(due) = self.parked.values().map(|p| p.due).chain(self.next_tick).min() {
                block = block.min(due.saturating_duration_since(Instant::now())).max(Duration::from_millis(1));
            }
            let entries = self.read(">", Some(block)).await?;
            let full = entries.len() >= self.sh.spec.read_count;
            // Entries read are ours now: handle them even if a stop arrived meanwhile.
            if !entries.is_empty() {
                self.process(entries, None).await?;
            }
            if !full && !self.sh.linger.is_zero() {
                // Let entries accumulate, but never past a retry or tick that falls due.
                let until = self
                    .parked
                    .values()
                    .map(|p| p.due)
                    .chain(self.next_tick)
                    .fold(tokio::time::Instant::now() + self.sh.linger, |until, due| {
                        until.min(tokio::time::Instant::from_std(due))
                    });
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
        }
        Ok(())
    }

    /// Runs the handler's tick when due; checkpoints the state it changed.
    async fn tick_if_due(&mut self) -> Result<(), BusError> {
        let (Some(due), Some(interval)) = (self.next_tick, self.handler.tick_interval()) else { return Ok(()) };
        if Instant::now() < due {
            return Ok(());
        }
        self.next_tick = Some(Instant::now() + interval);
        if self.handler.tick().await == Tick::Unchanged {
            return Ok(());
        }
        let outbox = self.handler.take_outbox();
        let cluster = self.sh.bus.is_cluster();
        let mut pipe = redis::pipe();
        let entries = if cluster {
            crate::producer::entries_of(&self.sh.bus, &outbox)?.into_iter().map(|(_, _, members)| members).collect()
        } else {
            add_xadds(&mut pipe, &self.sh.bus, &outbox, true)?
        };
        let appends = backpressure::appends(&outbox, &entries);
        backpressure::admit(&self.sh.bus, Some(&self.sh.metrics), &appends, Some(&self.stop)).await?;
        if let Some(state) = self.handler.snapshot() {
            let last_id = self.last_acked.map(|id| id.to_string()).unwrap_or_default();
            let ckpt = Checkpoint { last_id, at: now_ms(), state };
            pipe.cmd("SET").arg(&self.ckpt_key).arg(ckpt.encode()?).ignore();
        } else if outbox.is_empty() {
            return Ok(());
        }
        if cluster && !outbox.is_empty() {
            // Outputs first, as a settle does (see there).
            crate::producer::append_by_partition(&self.sh.bus, &self.sh.metrics, &outbox).await?;
        }
        if !pipe.is_empty() {
            self.sh.bus.transact(pipe, Some(&self.sh.metrics), "tick outputs and checkpoint").await?;
        }
        backpressure::appended(&self.sh.bus, &appends);
        count_produced(&self.sh.metrics, &outbox);
        Ok(())
    }

    /// Trims the partition below the oldest entry any group still needs, at most once per
    /// [`TRIM_EVERY`] (at once again after a pass that hit its limit). Every group's worker does it; whichever runs first after the slowest
    /// group acknowledges frees the memory. A failure only delays the trim: Redis keeps the
    /// entries, and `MAXLEN` still bounds them.
    async fn trim_if_due(&mut self) {
        if !self.sh.spec.trim_acked || Instant::now() < self.next_trim {
            return;
        }
        self.next_trim = Instant::now() + TRIM_EVERY;
        match crate::retention::trim_acked(&self.sh.bus, &self.sh.spec.name, self.p).await {
            Ok(t) => {
                self.trim_failing = false;
                if let crate::retention::Trimmed::Entries(n @ 1..) = t {
                    self.sh.metrics.acked_trimmed.with_label_values(&[self.sh.spec.name.as_str()]).inc_by(n);
                    if n >= crate::retention::TRIM_LIMIT {
                        // More to release: the next pass runs after the next read.
                        self.next_trim = Instant::now();
                    }
                }
            }
            Err(e) if !self.trim_failing => {
                self.trim_failing = true;
                warn!(partition = self.p, error = %e, "could not trim acknowledged entries; will retry");
            }
            Err(_) => {}
        }
    }

    fn labels(&self) -> [&str; 2] {
        [self.sh.spec.name.as_str(), self.sh.group.as_str()]
    }

    /// Claims every pending entry of the group onto this consumer and drops consumers left
    /// with nothing pending.
    async fn take_over(&mut self) -> Result<(), BusError> {
        let mut conn = self.sh.bus.conn();
        let mut cursor = EntryId::ZERO;
        loop {
            let v: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(&self.sh.group)
                .arg(&self.sh.consumer)
                .arg(0)
                .arg(cursor.to_string())
                .arg("COUNT")
                .arg(1000)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await
                .op("XAUTOCLAIM")?;
            let (next, _ids, deleted) = reply::xautoclaim_justid(&v)?;
            if !deleted.is_empty() {
                // XAUTOCLAIM already removed them from the PEL: count, nothing more to do.
                self.sh.metrics.trimmed.with_label_values(&self.labels()).inc_by(deleted.len() as u64);
                warn!(partition = self.p, count = deleted.len(), "pending entries had been trimmed from the stream");
            }
            if next == EntryId::ZERO {
                break;
            }
            cursor = next;
        }
        let v: Value = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.key)
            .arg(&self.sh.group)
            .query_async(&mut conn)
            .await
            .op("XINFO CONSUMERS")?;
        let mut pipe = redis::pipe();
        let mut stale = 0;
        for c in reply::as_array("XINFO CONSUMERS", &v)? {
            let fields = reply::flat_map("XINFO CONSUMERS", c)?;
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
            let name = get("name").map(|n| reply::as_string("XINFO CONSUMERS", n)).transpose()?.unwrap_or_default();
            let pending = get("pending").map(|n| reply::as_int("XINFO CONSUMERS", n)).transpose()?.unwrap_or(0);
            if name != self.sh.consumer && pending == 0 {
                pipe.cmd("XGROUP").arg("DELCONSUMER").arg(&self.key).arg(&self.sh.group).arg(name).ignore();
                stale += 1;
            }
        }
        if stale > 0 {
            let _: () = pipe.query_async(&mut conn).await.op("XGROUP DELCONSUMER")?;
        }
        Ok(())
    }

    /// XREADGROUP on the dedicated connection; `block` only for `>` reads.
    async fn read(&mut self, id: &str, block: Option<Duration>) -> Result<Vec<RawEntry>, BusError> {
        if self.reader.is_none() {
            self.reader = Some(self.sh.bus.blocking_connection(self.sh.spec.block).await?);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&self.sh.group).arg(&self.sh.consumer).arg("COUNT").arg(self.sh.spec.read_count);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.key).arg(id);
        match cmd.query_async::<Value>(reader).await {
            Ok(v) => reply::xread_one(v),
            Err(e) => {
                // A group deleted under us is recreated (e.g. `streams init` was not run, or an
                // operator reset it); anything else drops the connection and surfaces.
                self.reader = None;
                if e.code() == Some("NOGROUP") {
                    let _ = self.sh.bus.ensure_group(&self.sh.spec.name, &self.sh.group).await;
                }
                Err(BusError::Redis { op: "XREADGROUP", source: e })
            }
        }
    }

    /// Delivery counts of this consumer's pending entries in `[first, last]`.
    async fn pending_counts(&self, first: EntryId, last: EntryId) -> Result<HashMap<EntryId, u32>, BusError> {
        let mut conn = self.sh.bus.conn();
        let v: Value = redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(&self.sh.group)
            .arg(first.to_string())
            .arg(last.to_string())
            .arg(self.sh.spec.read_count)
            .arg(&self.sh.consumer)
            .query_async(&mut conn)
            .await
            .op("XPENDING")?;
        Ok(reply::xpending_rows(&v)?.into_iter().map(|r| (r.id, r.deliveries)).collect())
    }

    /// Re-delivers parked entries whose backoff has passed.
    async fn retry_due(&mut self) -> Result<(), BusError> {
        let now = Instant::now();
        let due: Vec<(EntryId, u32)> = self
            .parked
            .iter()
            .filter(|(_, p)| p.due <= now)
            .take(self.sh.spec.read_count)
            .map(|(id, p)| (*id, p.deliveries + 1))
            .collect();
        let mut settled = HashMap::with_capacity(due.len());
        if due.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&self.key).arg(&self.sh.group).arg(&self.sh.consumer).arg(0);
        for (id, _) in &due {
            cmd.arg(id.to_string());
        }
        let mut conn = self.sh.bus.conn();
        let v: Value = cmd.query_async(&mut conn).await.op("XCLAIM")?;
        let entries = reply::into_entries("XCLAIM", v)?;
        for (id, _) in &due {
            if let Some(p) = self.parked.remove(id) {
                settled.insert(*id, p.settled);
            }
        }
        if entries.len() < due.len() {
            // Redis 7 drops deleted entries from the PEL instead of returning them.
            let gone = due.len() - entries.len();
            self.sh.metrics.trimmed.with_label_values(&self.labels()).inc_by(gone as u64);
            debug!(partition = self.p, gone, "parked entries no longer in the stream");
        }
        let counts: HashMap<EntryId, u32> = due.into_iter().collect();
        self.process_resumed(entries, Some(&counts), settled).await
    }

    /// Claims entries idle past `claim_idle` under other consumers, and refreshes the
    /// partition's lag and pending gauges.
    async fn scan(&mut self) -> Result<(), BusError> {
        let mut conn = self.sh.bus.conn();
        let v: Value =
            redis::cmd("XPENDING").arg(&self.key).arg(&self.sh.group).query_async(&mut conn).await.op("XPENDING")?;
        let (total, consumers) = reply::xpending_summary(&v)?;
        let p = self.p.to_string();
        let gauge_labels = [self.sh.spec.name.as_str(), self.sh.group.as_str(), p.as_str()];
        self.sh.metrics.pending.with_label_values(&gauge_labels).set(total as i64);
        if let Ok(lag) = crate::inspect::group_lag(&mut conn, &self.key, &self.sh.group).await {
            self.sh.metrics.lag.with_label_values(&gauge_labels).set(lag.unwrap_or(0) as i64);
        }
        let idle = self.sh.spec.claim_idle.as_millis() as u64;
        for (consumer, count) in consumers {
            if consumer == self.sh.consumer || count == 0 {
                continue;
            }
            let v: Value = redis::cmd("XPENDING")
                .arg(&self.key)
                .arg(&self.sh.group)
                .arg("IDLE")
                .arg(idle)
                .arg("-")
                .arg("+")
                .arg(self.sh.spec.read_count)
                .arg(&consumer)
                .query_async(&mut conn)
                .await
                .op("XPENDING")?;
            let rows = reply::xpending_rows(&v)?;
            if rows.is_empty() {
                continue;
            }
            let mut cmd = redis::cmd("XCLAIM");
            // min-idle again: an entry its consumer touched since XPENDING stays with it.
            cmd.arg(&self.key).arg(&self.sh.group).arg(&self.sh.consumer).arg(idle);
            for r in &rows {
                cmd.arg(r.id.to_string());
            }
            let v: Value = cmd.query_async(&mut conn).await.op("XCLAIM")?;
            let entries = reply::into_entries("XCLAIM", v)?;
            self.sh.metrics.claimed.with_label_values(&self.labels()).inc_by(entries.len() as u64);
            warn!(partition = self.p, from = %consumer, count = entries.len(), "claimed idle entries");
            let counts: HashMap<EntryId, u32> = rows.iter().map(|r| (r.id, r.deliveries + 1)).collect();
            self.process(entries, Some(&counts)).await?;
        }
        Ok(())
    }

    /// Decodes, handles and settles one batch. `counts` holds delivery counts for entries that
    /// were delivered before (pending, retried, claimed); new entries count 1.
    async fn process(
        &mut self,
        entries: Vec<RawEntry>,
        counts: Option<&HashMap<EntryId, u32>>,
    ) -> Result<(), BusError> {
        self.process_resumed(entries, counts, HashMap::new()).await
    }

    /// [`Self::process`], skipping the messages `settled` marks as done in retried entries.
    ///
    /// Each entry carries one message or a pack of them. Every message is decoded, handled,
    /// retried and dead-lettered on its own; the entry is acknowledged once all of its messages
    /// are settled, and parked for a retry of the others while any of them failed.
    ///
    /// A read of `read_count` packed entries can hold far more messages than that; they are
    /// handled in batches of at most `batch_max` messages (the group's, else `read_count`; an
    /// entry is never split), each
    /// settled on its own, so a batch stays as large as before packing: what a crash hands
    /// back, and how long outputs wait for their batch, do not grow with the pack size. On a
    /// stop (shutdown, hand-over) between two batches the rest of the read stays pending: the
    /// next owner claims it first thing, so a hand-over waits for one batch, not one read.
    async fn process_resumed(
        &mut self,
        entries: Vec<RawEntry>,
        counts: Option<&HashMap<EntryId, u32>>,
        mut settled: HashMap<EntryId, Vec<bool>>,
    ) -> Result<(), BusError> {
        let limit = self.sh.batch_max;
        let mut batch = Vec::new();
        let mut size = 0;
        for e in entries {
            let n = pack::messages(&e).map_or(1, |m| m.len());
            if !batch.is_empty() && size + n > limit {
                self.process_batch(std::mem::take(&mut batch), counts, &mut settled).await?;
                size = 0;
                if self.stop.is_cancelled() {
                    return Ok(());
                }
            }
            size += n;
            batch.push(e);
        }
        self.process_batch(batch, counts, &mut settled).await
    }

    /// One batch of [`Self::process_resumed`].
    async fn process_batch(
        &mut self,
        entries: Vec<RawEntry>,
        counts: Option<&HashMap<EntryId, u32>>,
        settled: &mut HashMap<EntryId, Vec<bool>>,
    ) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let sh = self.sh.clone();
        let spec = &sh.spec;
        let labels = [spec.name.as_str(), sh.group.as_str()];
        let mut states: Vec<EntryState> = Vec::with_capacity(entries.len());
        let mut dead: Vec<Dead<'_>> = Vec::new();
        let mut batch: Vec<Delivery<H::Msg>> = Vec::with_capacity(entries.len());
        // Per delivery: (entry index, message index in the entry, the message's bytes).
        let mut slots: Vec<(usize, usize, &[u8])> = Vec::with_capacity(entries.len());
        let mut trimmed = 0u64;
        let mut read = 0u64;

        for (index, e) in entries.iter().enumerate() {
            let deliveries = counts.and_then(|c| c.get(&e.id).copied()).unwrap_or(1);
            let mut st = EntryState { deliveries, settled: Vec::new(), dead: false };
            if e.fields.is_none() {
                trimmed += 1;
                states.push(st);
                continue;
            }
            let messages = match pack::messages(e) {
                Ok(m) => m,
                Err(err) => {
                    read += 1;
                    st.dead = true;
                    states.push(st);
                    dead.push(Dead {
                        index,
                        message: None,
                        reason: DeadLetterReason::DecodeError,
                        error: err.to_string(),
                        attempts: 0,
                        message_id: None,
                    });
                    continue;
                }
            };
            st.settled = settled
                .remove(&e.id)
                .filter(|s| s.len() == messages.len())
                .unwrap_or_else(|| vec![false; messages.len()]);
            for (sub, bytes) in messages.into_iter().enumerate() {
                if st.settled[sub] {
                    continue;
                }
                read += 1;
                let decoded = match EnvelopeRef::decode(bytes) {
                    Err(err) => Err((None, err)),
                    Ok(env) => match self.handler.decode(&env) {
                        Ok(msg) => Ok((env, msg)),
                        Err(err) => Err((Some(env.id.to_string()), err)),
                    },
                };
                match decoded {
                    Err((message_id, err)) => {
                        st.settled[sub] = true;
                        dead.push(Dead {
                            index,
                            message: Some(bytes),
                            reason: DeadLetterReason::DecodeError,
                            error: err.to_string(),
                            attempts: 0,
                            message_id,
                        });
                    }
                    Ok((env, _)) if deliveries > spec.max_deliveries => {
                        st.settled[sub] = true;
                        dead.push(Dead {
                            index,
                            message: Some(bytes),
                            reason: DeadLetterReason::MaxDeliveries,
                            error: format!(
                                "delivered {deliveries} times without completing (max_deliveries = {}); the workers that took it may have crashed on it",
                                spec.max_deliveries
                            ),
                            attempts: deliveries - 1,
                            message_id: Some(env.id.to_string()),
                        });
                    }
                    Ok((envelope, msg)) => {
                        slots.push((index, sub, bytes));
                        let envelope = envelope.head();
                        batch.push(Delivery { entry_id: e.id, partition: self.p, deliveries, envelope, msg });
                    }
                }
            }
            states.push(st);
        }
        self.sh.metrics.read.with_label_values(&labels).inc_by(read);

        let mut done = 0u64;
        if !batch.is_empty() {
            let started = Instant::now();
            let span = info_span!("handle", stream = %spec.name, group = %self.sh.group, partition = self.p,
                first_id = %batch[0].envelope.id, count = batch.len());
            let mut outcomes = self.handler.handle_batch(&batch).instrument(span).await;
            self.sh.metrics.handle_seconds.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
            if outcomes.len() != batch.len() {
                let err = format!("handler returned {} outcomes for {} messages", outcomes.len(), batch.len());
                warn!(partition = self.p, "{err}");
                outcomes.resize(batch.len(), Outcome::Retry(err));
            }
            for ((d, outcome), &(index, sub, bytes)) in batch.iter().zip(outcomes).zip(&slots) {
                let to_dlq = match outcome {
                    Outcome::Done => None,
                    Outcome::Retry(error) if d.deliveries >= spec.max_deliveries => {
                        Some((DeadLetterReason::MaxDeliveries, error))
                    }
                    Outcome::Retry(error) => {
                        debug!(partition = self.p, id = %d.envelope.id, deliveries = d.deliveries, %error, "handler failed; retry parked");
                        self.sh.metrics.retried.with_label_values(&labels).inc();
                        continue;
                    }
                    Outcome::Reject(error) => Some((DeadLetterReason::Rejected, error)),
                };
                states[index].settled[sub] = true;
                match to_dlq {
                    None => done += 1,
                    Some((reason, error)) => dead.push(Dead {
                        index,
                        message: Some(bytes),
                        reason,
                        error,
                        attempts: d.deliveries,
                        message_id: Some(d.envelope.id.clone()),
                    }),
                }
            }
        }

        // Settled entries are acknowledged; the others wait for a retry of what failed.
        let now = Instant::now();
        let mut acks: Vec<EntryId> = Vec::with_capacity(entries.len());
        for (e, st) in entries.iter().zip(states) {
            if st.dead {
                continue;
            }
            if st.settled.iter().all(|&s| s) {
                acks.push(e.id);
            } else {
                let due = now + spec.backoff_after(st.deliveries);
                self.parked.insert(e.id, Parked { deliveries: st.deliveries, due, settled: st.settled });
            }
        }

        let outbox = self.handler.take_outbox();
        self.settle(&entries, &acks, &dead, &outbox).await?;
        if trimmed > 0 {
            self.sh.metrics.trimmed.with_label_values(&labels).inc_by(trimmed);
            warn!(partition = self.p, trimmed, "acknowledged pending entries whose body was trimmed");
        }
        self.sh.metrics.acked.with_label_values(&labels).inc_by(done);
        for d in &dead {
            self.sh.metrics.dead_lettered.with_label_values(&[labels[0], labels[1], d.reason.as_str()]).inc();
            warn!(partition = self.p, entry = %entries[d.index].id, message = d.message_id.as_deref().unwrap_or(""),
                reason = d.reason.as_str(), error = %d.error, "dead-lettered");
        }
        Ok(())
    }

    /// One atomic round trip: the handler's outputs + checkpoint + XACK + dead-letter moves.
    async fn settle(
        &mut self,
        entries: &[RawEntry],
        acks: &[EntryId],
        dead: &[Dead<'_>],
        outbox: &[Outgoing],
    ) -> Result<(), BusError> {
        if acks.is_empty() && dead.is_empty() && outbox.is_empty() {
            return Ok(());
        }
        let cluster = self.sh.bus.is_cluster();
        let mut pipe = redis::pipe();
        // On one server, outputs first in the one MULTI. On a cluster they live on other
        // partitions' slots, which a MULTI cannot span: they go first, in transactions of their
        // own, and the acknowledgement, checkpoint and dead-letter moves (all of this
        // partition's slot) follow in one MULTI. A crash between the two leaves the batch
        // pending: it is handled again from the previous checkpoint, and the same outputs are
        // sent again with the same message ids, which every consumer skips (docs/bus.md
        // "Redis Cluster").
        let xadds = if cluster {
            crate::producer::entries_of(&self.sh.bus, outbox)?.into_iter().map(|(_, _, members)| members).collect()
        } else {
            add_xadds(&mut pipe, &self.sh.bus, outbox, true)?
        };
        // Outputs bound for a full partition (its stream's high_water, overflow = block) wait
        // here with their batch unacknowledged: this stage's own input backs up in turn, and
        // the wait travels upstream to the producers instead of MAXLEN trimming unread
        // entries downstream. Refreshes are not folded into this MULTI (its replies are
        // ignored): the estimate grows with what is added and is checked against Redis once
        // it comes near the mark. A stop during the wait fails the batch; its entries stay
        // pending for the next owner.
        let appends = backpressure::appends(outbox, &xadds);
        backpressure::admit(&self.sh.bus, Some(&self.sh.metrics), &appends, Some(&self.stop)).await?;
        if !acks.is_empty() {
            if let Some(state) = self.handler.snapshot() {
                let last_id =
                    acks.iter().copied().chain(self.last_acked).max().map(|id| id.to_string()).unwrap_or_default();
                let ckpt = Checkpoint { last_id, at: now_ms(), state };
                pipe.cmd("SET").arg(&self.ckpt_key).arg(ckpt.encode()?).ignore();
            }
            let mut xack = redis::cmd("XACK");
            xack.arg(&self.key).arg(&self.sh.group);
            for id in acks {
                xack.arg(id.to_string());
            }
            pipe.add_command(xack).ignore();
        }
        for d in dead {
            let draft = DeadLetterDraft {
                reason: d.reason,
                error: d.error.clone(),
                stream: &self.sh.spec.name,
                partition: self.p,
                group: &self.sh.group,
                service: &self.sh.service,
                entry: &entries[d.index],
                message: d.message,
                message_id: d.message_id.as_deref(),
                attempts: d.attempts,
            };
            add_move(&mut pipe, &self.sh.bus, &draft, self.sh.spec.dlq_maxlen);
            pipe.ignore();
            if d.message.is_none() {
                self.parked.remove(&entries[d.index].id);
            }
        }
        for id in acks {
            self.parked.remove(id);
        }
        if cluster && !outbox.is_empty() {
            crate::producer::append_by_partition(&self.sh.bus, &self.sh.metrics, outbox).await?;
        }
        if !pipe.is_empty() {
            self.sh.bus.transact(pipe, Some(&self.sh.metrics), "settle batch").await?;
        }
        backpressure::appended(&self.sh.bus, &appends);
        count_produced(&self.sh.metrics, outbox);
        if let Some(max) = acks.iter().max() {
            self.last_acked = self.last_acked.max(Some(*max));
        }
        Ok(())
    }
}
