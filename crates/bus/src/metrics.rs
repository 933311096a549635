//! Prometheus metrics of the bus, named `tradeflow_<thing>_<unit>`.
//!
//! Labels are bounded: stream and group names come from streams.toml, `reason` from a fixed
//! set, `partition` from the configured partition count. Never a message id or a key.

use prometheus::{
    CounterVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    exponential_buckets,
};

/// All bus metrics, registered once per process and shared (cheap to clone).
#[derive(Clone)]
pub struct BusMetrics {
    pub produced: IntCounterVec,
    pub read: IntCounterVec,
    pub acked: IntCounterVec,
    pub retried: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub trimmed: IntCounterVec,
    pub acked_trimmed: IntCounterVec,
    pub claimed: IntCounterVec,
    pub handle_seconds: HistogramVec,
    pub lag: IntGaugeVec,
    pub pending: IntGaugeVec,
    pub partitions_owned: IntGaugeVec,
    pub lease_losses: IntCounterVec,
    pub redis_errors: IntCounterVec,
    pub partition_restarts: IntCounterVec,
    pub send_retries: IntCounter,
    pub replica_shortfall: IntCounter,
    pub backpressure_wait_seconds: CounterVec,
    pub backpressure_waiting: IntGaugeVec,
    pub dropped: IntCounterVec,
}

impl BusMetrics {
    /// Creates and registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let sg = &["stream", "group"];
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let handle_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tradeflow_bus_handle_seconds",
                "Time a handler took for one batch, per stream and group.",
            )
            .buckets(exponential_buckets(0.000_05, 4.0, 10)?),
            sg,
        )?;
        registry.register(Box::new(handle_seconds.clone()))?;
        Ok(Self {
            produced: counter("tradeflow_bus_produced_total", "Messages added to a stream.", &["stream"])?,
            read: counter(
                "tradeflow_bus_read_total",
                "Messages delivered to a consumer (new, pending or claimed); a packed entry counts its messages.",
                sg,
            )?,
            acked: counter("tradeflow_bus_acked_total", "Messages handled successfully and acknowledged.", sg)?,
            retried: counter("tradeflow_bus_retried_total", "Handler failures that were scheduled for a retry.", sg)?,
            dead_lettered: counter(
                "tradeflow_bus_dead_lettered_total",
                "Messages (or undecodable entries) moved to the dead-letter stream, by reason.",
                &["stream", "group", "reason"],
            )?,
            trimmed: counter(
                "tradeflow_bus_trimmed_total",
                "Pending entries whose body had been trimmed from the stream; acknowledged and dropped.",
                sg,
            )?,
            acked_trimmed: counter(
                "tradeflow_bus_acked_trimmed_total",
                "Entries trimmed from a stream once every group had acknowledged them (trim_acked).",
                &["stream"],
            )?,
            claimed: counter("tradeflow_bus_claimed_total", "Pending entries taken over from another consumer.", sg)?,
            handle_seconds,
            lag: gauge(
                "tradeflow_bus_lag_messages",
                "Entries not yet delivered to the group (XINFO GROUPS lag).",
                &["stream", "group", "partition"],
            )?,
            pending: gauge(
                "tradeflow_bus_pending_messages",
                "Entries delivered but not yet acknowledged.",
                &["stream", "group", "partition"],
            )?,
            partitions_owned: gauge("tradeflow_bus_partitions_owned", "Partitions this process holds a lease on.", sg)?,
            lease_losses: counter(
                "tradeflow_bus_lease_losses_total",
                "Partition leases lost before they were released (renewal failed or expired).",
                sg,
            )?,
            redis_errors: counter(
                "tradeflow_bus_redis_errors_total",
                "Fleet heartbeats that failed to reach Redis (retried at the next heartbeat).",
                sg,
            )?,
            partition_restarts: counter(
                "tradeflow_bus_partition_restarts_total",
                "Partition loops that failed (Redis error, handler panic) and restarted from their checkpoint.",
                sg,
            )?,
            send_retries: {
                let c = IntCounter::new(
                    "tradeflow_bus_send_retries_total",
                    "Producer batches held and sent again because Redis was unavailable (restart, loading, dropped connection).",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            replica_shortfall: {
                let c = IntCounter::new(
                    "tradeflow_bus_replica_wait_shortfall_total",
                    "Writes (a producer transaction or a settle) that fewer replicas than [redis] wait_replicas acknowledged within wait_timeout_ms: they could be lost if their master failed now.",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            backpressure_wait_seconds: {
                let c = CounterVec::new(
                    Opts::new(
                        "tradeflow_bus_backpressure_wait_seconds_total",
                        "Time producers spent waiting for a partition of the stream to fall below its high_water.",
                    ),
                    &["stream"],
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            backpressure_waiting: gauge(
                "tradeflow_bus_backpressure_waiting",
                "Producers waiting now for a full partition of the stream (backlog at high_water, overflow = block).",
                &["stream"],
            )?,
            dropped: counter(
                "tradeflow_bus_dropped_total",
                "Entries trimmed by MAXLEN before some group read them (estimated at each backlog refresh; overflow = drop_oldest).",
                &["stream"],
            )?,
        })
    }

    /// Metrics on a private registry, for tools and tests that do not export them.
    pub fn unregistered() -> Self {
        match Self::register(&Registry::new()) {
            Ok(m) => m,
            // Registration into a fresh registry only fails on a programming error in the
            // names above, which the unit test below catches.
            Err(e) => panic!("bus metric definitions are invalid: {e}"),
        }
    }
}

/// Text exposition of a registry (what `/metrics` serves).
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut buf) {
        return format!("# metrics encoding failed: {e}\n");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_with_project_names() {
        let r = Registry::new();
        let m = BusMetrics::register(&r).unwrap();
        m.acked.with_label_values(&["md.candles", "inference"]).inc();
        let text = render(&r);
        assert!(text.contains("tradeflow_bus_acked_total{group=\"inference\",stream=\"md.candles\"} 1"));
        for family in r.gather() {
            let name = family.name();
            assert!(name.starts_with("tradeflow_"), "{name}");
        }
    }
}
