//! Producing: envelopes onto partitions with pipelined, batched XADD ... MAXLEN ~. Messages
//! of one batch bound for the same partition share an entry, up to the stream's `pack_max`
//! (see [`crate::pack`]).

use redis::Value;
use tradeflow_core::{MessageId, Payload};

use crate::connection::Bus;
use crate::envelope::{ENVELOPE_FIELD, Envelope};
use crate::error::{BusError, RedisContext};
use crate::keys::partition_of;
use crate::metrics::BusMetrics;
use crate::pack::{self, PACK_FIELD};

/// Commands per pipeline: large enough to amortise the round trip, small enough that one
/// reply does not hold a big buffer.
const PIPELINE_CHUNK: usize = 2048;

/// A message encoded and routed, ready to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub stream: String,
    pub partition: u32,
    pub id: String,
    pub bytes: Vec<u8>,
}

/// Sends envelopes. Cheap to clone; all clones share the bus connection.
#[derive(Clone)]
pub struct Producer {
    bus: Bus,
    service: String,
    metrics: Option<BusMetrics>,
}

impl Producer {
    /// A producer that signs its envelopes as `service`.
    pub fn new(bus: Bus, service: impl Into<String>) -> Self {
        Self { bus, service: service.into(), metrics: None }
    }

    pub fn with_metrics(mut self, metrics: BusMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Wraps and routes a payload: the partition is [`partition_of`] the key.
    pub fn prepare<T: Payload>(
        &self,
        stream: &str,
        id: &MessageId,
        key: &str,
        causation: Option<&MessageId>,
        payload: &T,
    ) -> Result<Outgoing, BusError> {
        let spec = self.bus.topology().stream(stream)?;
        Ok(Outgoing {
            stream: spec.name.clone(),
            partition: partition_of(key, spec.partitions),
            id: id.to_string(),
            bytes: Envelope::encode_new(id, key, causation, &self.service, payload)?,
        })
    }

    /// Routes an already built envelope (replays, tests, tools).
    pub fn prepare_envelope(&self, stream: &str, env: &Envelope) -> Result<Outgoing, BusError> {
        let spec = self.bus.topology().stream(stream)?;
        Ok(Outgoing {
            stream: spec.name.clone(),
            partition: partition_of(&env.key, spec.partitions),
            id: env.id.clone(),
            bytes: env.encode()?,
        })
    }

    /// Sends a batch in pipelined round trips, in order per partition. Returns, per message,
    /// the id of the stream entry that carries it (messages packed together share one).
    pub async fn send(&self, batch: &[Outgoing]) -> Result<Vec<String>, BusError> {
        let mut ids = Vec::with_capacity(batch.len());
        let mut conn = self.bus.conn();
        for chunk in batch.chunks(PIPELINE_CHUNK) {
            // MULTI/EXEC: a reader blocked on one of these streams is woken once the whole
            // chunk is in, not after its first XADD. Without it a candle's five signals reached
            // the ensemble as 1 + 4 entries, two read–handle–acknowledge cycles instead of one:
            // candle → decision went from p50 2 / p99 6 ms to p50 1 / p99 4–5 ms at 1,000
            // candles/s, with no measurable cost in throughput.
            let mut pipe = redis::pipe();
            pipe.atomic();
            let entries = add_xadds(&mut pipe, &self.bus, chunk, false)?;
            let replies: Vec<Value> = pipe.query_async(&mut conn).await.op("XADD")?;
            if replies.len() != entries.len() {
                return Err(BusError::Reply {
                    op: "XADD",
                    reason: format!("{} replies for {} entries", replies.len(), entries.len()),
                });
            }
            let mut chunk_ids = vec![String::new(); chunk.len()];
            for (r, members) in replies.iter().zip(&entries) {
                let id = crate::reply::as_string("XADD", r)?;
                for &i in members {
                    chunk_ids[i].clone_from(&id);
                }
            }
            ids.extend(chunk_ids);
            if let Some(m) = &self.metrics {
                count_produced(m, chunk);
            }
        }
        Ok(ids)
    }

    /// [`send`](Self::send), riding out Redis being away ([`BusError::is_transient`]: a
    /// restart, its AOF loading, a dropped connection): retried after 100 ms, doubling to 5 s,
    /// until sent or `stop`. Other errors, and `stop` during an outage, return the error.
    ///
    /// A resend is harmless: a batch whose MULTI was applied before the connection dropped is
    /// on the stream twice with the same message ids, and every consumer skips an id it has
    /// seen (the stages' dedupe), so effects stay exactly-once.
    pub async fn send_through_outages(
        &self,
        batch: &[Outgoing],
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<Vec<String>, BusError> {
        let mut backoff = std::time::Duration::from_millis(100);
        let mut down_since: Option<std::time::Instant> = None;
        loop {
            match self.send(batch).await {
                Ok(ids) => {
                    if let Some(since) = down_since {
                        tracing::info!(down_ms = since.elapsed().as_millis() as u64, "redis is back; batch sent");
                    }
                    return Ok(ids);
                }
                Err(e) if e.is_transient() && !stop.is_cancelled() => {
                    down_since.get_or_insert_with(std::time::Instant::now);
                    if let Some(m) = &self.metrics {
                        m.send_retries.inc();
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, messages = batch.len(), "redis unavailable; holding the batch");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => return Err(e),
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Wraps, routes and sends one payload.
    pub async fn publish<T: Payload>(
        &self,
        stream: &str,
        id: &MessageId,
        key: &str,
        causation: Option<&MessageId>,
        payload: &T,
    ) -> Result<String, BusError> {
        let out = self.prepare(stream, id, key, causation, payload)?;
        let mut ids = self.send(std::slice::from_ref(&out)).await?;
        ids.pop().ok_or(BusError::Reply { op: "XADD", reason: "no entry id returned".into() })
    }
}

/// Appends the XADDs (MAXLEN ~ of their streams) that carry `msgs` to `pipe`: the messages
/// bound for one partition, in their order, packed up to the stream's `pack_max` per entry.
/// Returns, per XADD appended, the indices in `msgs` of the messages it carries. With
/// `ignore`, each XADD's reply is dropped from the pipeline's result.
pub(crate) fn add_xadds(
    pipe: &mut redis::Pipeline,
    bus: &Bus,
    msgs: &[Outgoing],
    ignore: bool,
) -> Result<Vec<Vec<usize>>, BusError> {
    // Partitions in order of first appearance; order across partitions carries no meaning.
    let mut by_partition: Vec<((&str, u32), Vec<usize>)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        match by_partition.iter_mut().find(|((s, p), _)| *s == m.stream && *p == m.partition) {
            Some((_, members)) => members.push(i),
            None => by_partition.push(((m.stream.as_str(), m.partition), vec![i])),
        }
    }
    let mut entries = Vec::new();
    for ((stream, partition), members) in by_partition {
        let spec = bus.topology().stream(stream)?;
        if partition >= spec.partitions {
            return Err(BusError::NoSuchPartition {
                stream: stream.to_string(),
                partition,
                partitions: spec.partitions,
            });
        }
        let key = bus.keys().partition(&spec.name, partition);
        for members in members.chunks(spec.pack_max.max(1)) {
            let cmd = pipe.cmd("XADD").arg(&key).arg("MAXLEN").arg("~").arg(spec.maxlen).arg("*");
            match members {
                [one] => cmd.arg(ENVELOPE_FIELD).arg(&msgs[*one].bytes),
                _ => cmd.arg(PACK_FIELD).arg(pack::encode(members.iter().map(|&i| msgs[i].bytes.as_slice()))),
            };
            if ignore {
                pipe.ignore();
            }
            entries.push(members.to_vec());
        }
    }
    Ok(entries)
}

/// Counts sent messages by stream: one label lookup per run of same-stream messages.
pub(crate) fn count_produced(metrics: &BusMetrics, sent: &[Outgoing]) {
    for run in sent.chunk_by(|a, b| a.stream == b.stream) {
        metrics.produced.with_label_values(&[run[0].stream.as_str()]).inc_by(run.len() as u64);
    }
}
