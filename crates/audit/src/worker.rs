//! The audit worker: one consumer (group `audit`) per audited stream, all writing through one
//! store. A batch becomes one transaction; the batch is acknowledged only once it is
//! committed, so a crash before the commit redelivers it and the ids make the rewrite a no-op.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use tradeflow_bus::{DecodeError, Delivery, EnvelopeRef, Handler, HandlerFactory, Outcome};

use crate::error::AuditError;
use crate::mapping::rows_of;
use crate::rows::Table;
use crate::sqlite_writer::SharedRows;
use crate::store::AuditStore;

/// The audit writer's consumer group: it reads every stream `streams.toml` gives this group.
pub const GROUP: &str = tradeflow_bus::inspect::AUDIT_STAGE;

/// `tradeflow_audit_*` metrics.
#[derive(Clone)]
pub struct AuditMetrics {
    pub rows: IntCounterVec,
    pub duplicates: IntCounter,
    pub write_seconds: Histogram,
}

impl AuditMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rows = IntCounterVec::new(Opts::new("tradeflow_audit_rows_total", "Rows written, by table."), &["table"])?;
        let duplicates = IntCounter::new(
            "tradeflow_audit_duplicate_rows_total",
            "Rows whose id was already stored (redeliveries), skipped.",
        )?;
        let write_seconds = Histogram::with_opts(
            HistogramOpts::new("tradeflow_audit_write_seconds", "Time to write one batch (one transaction).")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )?;
        registry.register(Box::new(rows.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(write_seconds.clone()))?;
        Ok(Self { rows, duplicates, write_seconds })
    }
}

pub struct AuditHandler {
    store: Arc<AuditStore>,
    metrics: AuditMetrics,
}

impl Handler for AuditHandler {
    /// Shared, so that the store's writer thread reads the rows where they are.
    type Msg = SharedRows;

    fn decode(&self, envelope: &EnvelopeRef<'_>) -> Result<SharedRows, DecodeError> {
        rows_of(envelope).map(std::sync::Arc::new)
    }

    async fn handle(&mut self, delivery: &Delivery<SharedRows>) -> Outcome {
        let mut outcomes = self.handle_batch(std::slice::from_ref(delivery)).await;
        outcomes.pop().unwrap_or(Outcome::Retry("no outcome".into()))
    }

    async fn handle_batch(&mut self, batch: &[Delivery<SharedRows>]) -> Vec<Outcome> {
        let rows = || batch.iter().flat_map(|d| d.msg.iter());
        if rows().next().is_none() {
            return vec![Outcome::Done; batch.len()];
        }
        let started = Instant::now();
        let shared: Vec<SharedRows> = batch.iter().map(|d| d.msg.clone()).collect();
        match self.store.write_shared(&shared).await {
            Ok(report) => {
                self.metrics.write_seconds.observe(started.elapsed().as_secs_f64());
                let mut per_table = [0u64; Table::ALL.len()];
                for r in rows() {
                    per_table[r.table().index()] += 1;
                }
                for (table, n) in Table::ALL.iter().zip(per_table) {
                    if n > 0 {
                        self.metrics.rows.with_label_values(&[table.name()]).inc_by(n);
                    }
                }
                self.metrics.duplicates.inc_by(report.duplicates);
                vec![Outcome::Done; batch.len()]
            }
            // A refused row (a non-finite number where one is required) refuses the whole
            // transaction: retry one by one so the bad message alone goes to the DLQ.
            Err(e) if batch.len() > 1 && is_row_error(&e) => {
                let mut out = Vec::with_capacity(batch.len());
                for d in batch {
                    out.push(match self.store.write_shared(std::slice::from_ref(&d.msg)).await {
                        Ok(_) => Outcome::Done,
                        Err(e) if is_row_error(&e) => Outcome::Reject(e.to_string()),
                        Err(e) => Outcome::Retry(e.to_string()),
                    });
                }
                out
            }
            Err(e) if is_row_error(&e) => vec![Outcome::Reject(e.to_string())],
            Err(e) => batch.iter().map(|_| Outcome::Retry(format!("audit store: {e}"))).collect(),
        }
    }
}

pub struct AuditFactory {
    pub store: Arc<AuditStore>,
    pub metrics: AuditMetrics,
}

impl HandlerFactory for AuditFactory {
    type Handler = AuditHandler;

    fn create(&self, _partition: u32, _restored: Option<&[u8]>) -> Result<AuditHandler, String> {
        Ok(AuditHandler { store: self.store.clone(), metrics: self.metrics.clone() })
    }
}

/// An error that retrying cannot fix: the row itself is refused.
fn is_row_error(e: &AuditError) -> bool {
    matches!(e, AuditError::NonFinite { .. })
}
