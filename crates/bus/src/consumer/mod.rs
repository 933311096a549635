//! The consumer runner: a fleet member that consumes the partitions it holds leases on.
//!
//! ```text
//! Consumer::run ── heartbeat every fleet.heartbeat ──► Fleet (membership, leases)
//!      │ gains partition p                   loses / gives up p
//!      ▼                                            ▼
//!  partition task: restore checkpoint → PartitionWorker::run   stop token → ack → release lease
//! ```
//! A partition task that fails (Redis error, handler panic) is restarted from the partition's
//! checkpoint after a backoff, so in-memory state never reflects an unacknowledged message.

mod handler;
mod partition;
mod stage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use handler::{Delivery, Handler, HandlerFactory, Outcome, Tick};
use partition::PartitionWorker;
pub use stage::{StageHandler, StageLogic};

use crate::checkpoint::Checkpoint;
use crate::connection::Bus;
use crate::error::BusError;
use crate::fleet::{Fleet, assignment};
use crate::metrics::BusMetrics;
use crate::topology::StreamSpec;

/// What every partition task of one consumer shares.
pub(crate) struct Shared {
    pub(crate) bus: Bus,
    pub(crate) spec: StreamSpec,
    pub(crate) group: String,
    /// Consumer name in the group; also the fleet member name.
    pub(crate) consumer: String,
    pub(crate) service: String,
    pub(crate) metrics: BusMetrics,
    /// The group's `linger_ms` (see [`crate::topology::GroupSpec::linger`]).
    pub(crate) linger: Duration,
    /// Most messages per handler batch: the group's `batch_max`, else the stream's `read_count`.
    pub(crate) batch_max: usize,
}

/// A default member name: service, host, process id and a random suffix, so two processes on
/// one host never share a consumer name.
pub fn default_member_name(service: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    format!("{service}@{host}:{}:{:04x}", std::process::id(), fastrand::u16(..))
}

/// Consumes one stream for one group as a member of that group's fleet.
pub struct Consumer<F: HandlerFactory> {
    shared: Shared,
    factory: Arc<F>,
}

struct Owned {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl<F: HandlerFactory> Consumer<F> {
    /// A consumer of `stream` for `group`, signing dead letters as `service`.
    pub fn new(bus: Bus, stream: &str, group: &str, service: &str, factory: F) -> Result<Self, BusError> {
        let spec = bus.stream_group(stream, group)?.clone();
        let group_spec = bus.topology().group(group);
        let (linger, batch_max) = (group_spec.linger, group_spec.batch_max.unwrap_or(spec.read_count).max(1));
        let shared = Shared {
            linger,
            batch_max,
            bus,
            spec,
            group: group.to_string(),
            consumer: default_member_name(service),
            service: service.to_string(),
            metrics: BusMetrics::unregistered(),
        };
        Ok(Self { shared, factory: Arc::new(factory) })
    }

    /// Uses these metrics (normally registered on the process's /metrics registry).
    pub fn with_metrics(mut self, metrics: BusMetrics) -> Self {
        self.shared.metrics = metrics;
        self
    }

    /// Overrides the member (and consumer) name.
    pub fn with_member_name(mut self, name: impl Into<String>) -> Self {
        self.shared.consumer = name.into();
        self
    }

    pub fn member_name(&self) -> &str {
        &self.shared.consumer
    }

    /// Runs until `shutdown` is cancelled; then stops reading, lets every partition finish and
    /// acknowledge its batch in hand, releases the leases, leaves the fleet and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let sh = Arc::new(self.shared);
        let factory = self.factory;
        // A consumer started before `streams init` still finds its group.
        sh.bus.ensure_group(&sh.spec.name, &sh.group).await?;
        let fleet = Fleet::new(sh.bus.clone(), &sh.spec.name, &sh.group, &sh.consumer);
        let labels = [sh.spec.name.as_str(), sh.group.as_str()];
        let fleet_spec = sh.bus.topology().fleet.clone();
        // Renewals older than this may have let a lease expire: stop working those partitions.
        let renew_deadline = fleet_spec.lease_ttl.mul_f64(0.75);
        let mut owned: HashMap<u32, Owned> = HashMap::new();
        let mut releasing: Vec<(u32, JoinHandle<()>)> = Vec::new();
        let mut last_renewal = Instant::now();
        let owned_gauge = sh.metrics.partitions_owned.with_label_values(&labels);
        let mut reported_owned = 0i64;
        let mut ticker = tokio::time::interval(fleet_spec.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(stream = %sh.spec.name, group = %sh.group, member = %sh.consumer, "consumer started");

        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            // Partitions still finishing their last batch keep their lease renewed too, so no
            // one else starts on them before the hand-over.
            let mut held: Vec<u32> = owned.keys().chain(releasing.iter().map(|(p, _)| p)).copied().collect();
            held.sort_unstable();
            held.dedup();
            match fleet.heartbeat(&held).await {
                Ok((members, still)) => {
                    last_renewal = Instant::now();
                    for (p, ok) in held.iter().zip(still) {
                        if !ok && let Some(o) = owned.remove(p) {
                            warn!(partition = p, "lease lost; stopping the partition");
                            sh.metrics.lease_losses.with_label_values(&labels).inc();
                            o.stop.cancel();
                            releasing.push((*p, o.task));
                        }
                    }
                    let desired = assignment(&members, &sh.consumer, sh.spec.partitions);
                    let surplus: Vec<u32> = owned.keys().filter(|p| !desired.contains(p)).copied().collect();
                    for p in surplus {
                        if let Some(o) = owned.remove(&p) {
                            info!(partition = p, "rebalancing: handing the partition over");
                            o.stop.cancel();
                            releasing.push((p, o.task));
                        }
                    }
                    let wanted: Vec<u32> = desired
                        .iter()
                        .filter(|p| !owned.contains_key(p) && !releasing.iter().any(|(r, _)| r == *p))
                        .copied()
                        .collect();
                    match fleet.acquire(&wanted).await {
                        Ok(got) => {
                            for p in got {
                                info!(partition = p, "partition acquired");
                                owned.insert(p, spawn_partition(&sh, &factory, p));
                            }
                        }
                        Err(e) => warn!(error = %e, "acquiring leases failed"),
                    }
                }
                Err(e) => {
                    sh.metrics.redis_errors.with_label_values(&labels).inc();
                    warn!(error = %e, "fleet heartbeat failed");
                    if last_renewal.elapsed() > renew_deadline && !owned.is_empty() {
                        error!("leases could not be renewed in time; stopping all partitions");
                        for (p, o) in owned.drain() {
                            sh.metrics.lease_losses.with_label_values(&labels).inc();
                            o.stop.cancel();
                            releasing.push((p, o.task));
                        }
                    }
                }
            }
            // Hand over partitions whose task has finished its last batch.
            let mut done = Vec::new();
            releasing.retain_mut(|(p, task)| {
                if task.is_finished() {
                    done.push(*p);
                    false
                } else {
                    true
                }
            });
            if let Err(e) = fleet.release(&done).await {
                warn!(error = %e, "releasing leases failed; they will expire");
            }
            // add/sub rather than set: several members may share one process and its gauge.
            owned_gauge.add(owned.len() as i64 - reported_owned);
            reported_owned = owned.len() as i64;
        }

        info!(member = %sh.consumer, "shutting down: finishing in-flight batches");
        let mut all: Vec<u32> = Vec::new();
        for (p, o) in owned.drain() {
            o.stop.cancel();
            releasing.push((p, o.task));
        }
        for (p, task) in releasing {
            if let Err(e) = task.await {
                warn!(partition = p, error = %e, "partition task ended abnormally");
            }
            all.push(p);
        }
        owned_gauge.sub(reported_owned);
        fleet.release(&all).await?;
        fleet.leave().await?;
        info!(member = %sh.consumer, "consumer stopped");
        Ok(())
    }
}

/// Starts the supervised task of one partition.
fn spawn_partition<F: HandlerFactory>(sh: &Arc<Shared>, factory: &Arc<F>, p: u32) -> Owned {
    let stop = CancellationToken::new();
    let task = tokio::spawn(supervise(sh.clone(), factory.clone(), p, stop.clone()));
    Owned { stop, task }
}

/// Runs a partition until `stop`, restarting it from its checkpoint after any failure. When
/// it ends, the partition's gauges go too: the next owner reports them, and a stale value here
/// would count the partition twice.
async fn supervise<F: HandlerFactory>(sh: Arc<Shared>, factory: Arc<F>, p: u32, stop: CancellationToken) {
    run_supervised(&sh, factory, p, &stop).await;
    let p = p.to_string();
    let gauge_labels = [sh.spec.name.as_str(), sh.group.as_str(), p.as_str()];
    let _ = sh.metrics.lag.remove_label_values(&gauge_labels);
    let _ = sh.metrics.pending.remove_label_values(&gauge_labels);
}

async fn run_supervised<F: HandlerFactory>(sh: &Arc<Shared>, factory: Arc<F>, p: u32, stop: &CancellationToken) {
    let restarts = sh.metrics.partition_restarts.with_label_values(&[sh.spec.name.as_str(), sh.group.as_str()]);
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let attempt = {
            let (sh, factory, stop) = (sh.clone(), factory.clone(), stop.clone());
            // A task of its own, so that a panicking handler ends this attempt, not the process.
            tokio::spawn(async move {
                let ckpt = Checkpoint::load(&sh.bus, &sh.spec.name, p, &sh.group).await?;
                let handler = factory
                    .create(p, ckpt.as_ref().map(|c| c.state.as_slice()))
                    .map_err(|e| BusError::Invalid(format!("handler for partition {p} could not be created: {e}")))?;
                PartitionWorker::new(sh, p, handler).run(&stop).await
            })
        };
        let failure = match attempt.await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(join) if join.is_panic() => "handler panicked".to_string(),
            Err(join) => join.to_string(),
        };
        restarts.inc();
        warn!(partition = p, error = %failure, retry_in_ms = backoff.as_millis() as u64, "partition failed; restarting from its checkpoint");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
